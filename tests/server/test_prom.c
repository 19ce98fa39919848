/* The Prometheus writer and the metrics built on it: families and samples
 * as the text format wants them, label values escaped, histograms
 * cumulative with +Inf, _sum and _count in base units; readiness and its
 * reasons; a whole rendering of a made-up snapshot through promtool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb_metrics.h"
#include "sb_prom.h"

static char *text_of(sb_buf *b)
{
    sb_buf_append(b, "", 1);
    return (char *)b->data;
}

static void test_samples(void **state)
{
    (void)state;
    sb_buf b = SB_BUF_INIT;
    sb_prom p = {.out = &b};
    char l[SB_PROM_LABELS_BYTES_MAX];
    sb_prom_family(&p, "x_total", SB_PROM_COUNTER, "Things.");
    sb_prom_u64(&p, "x_total", NULL, 3);
    sb_prom_u64(&p, "x_total",
                sb_prom_labels(l, sizeof l, "a", "q\"b\\c\nd", "e", "", NULL),
                18446744073709551615ull);
    sb_prom_f64(&p, "y", "", 0.25);
    assert_int_equal(p.rc, 0);
    assert_string_equal(text_of(&b), "# HELP x_total Things.\n"
                                     "# TYPE x_total counter\n"
                                     "x_total 3\n"
                                     "x_total{a=\"q\\\"b\\\\c\\nd\",e=\"\"} "
                                     "18446744073709551615\n"
                                     "y 0.25\n");
    sb_buf_free(&b);
    /* Values too long for the buffer are cut, never overrun it. */
    char small[16], big[64];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sb_prom_labels(small, sizeof small, "k", big, NULL);
    assert_true(strlen(small) < sizeof small);
    assert_int_equal(small[strlen(small) - 1], '"');
}

static void test_histogram(void **state)
{
    (void)state;
    sb_hist h;
    sb_hist_init(&h, &SB_HIST_MS);
    sb_hist_add(&h, 0);     /* <= 1 */
    sb_hist_add(&h, 3);     /* <= 5 */
    sb_hist_add(&h, 5);     /* <= 5: bounds are inclusive */
    sb_hist_add(&h, 99999); /* over the last */
    assert_int_equal(sb_hist_count(&h), 4);
    sb_hist g;
    sb_hist_init(&g, &SB_HIST_MS);
    sb_hist_add(&g, 1);
    sb_hist_merge(&h, &g);
    sb_buf b = SB_BUF_INIT;
    sb_prom p = {.out = &b};
    sb_prom_hist(&p, "t_seconds", "k=\"v\"", &h, 1e-3);
    const char *t = text_of(&b);
    assert_non_null(strstr(t, "t_seconds_bucket{k=\"v\",le=\"0.001\"} 2\n"));
    assert_non_null(strstr(t, "t_seconds_bucket{k=\"v\",le=\"0.002\"} 2\n"));
    assert_non_null(strstr(t, "t_seconds_bucket{k=\"v\",le=\"0.005\"} 4\n"));
    assert_non_null(strstr(t, "t_seconds_bucket{k=\"v\",le=\"10\"} 4\n"));
    assert_non_null(strstr(t, "t_seconds_bucket{k=\"v\",le=\"+Inf\"} 5\n"));
    assert_non_null(strstr(t, "t_seconds_sum{k=\"v\"} 100.008\n"));
    assert_non_null(strstr(t, "t_seconds_count{k=\"v\"} 5\n"));
    sb_buf_free(&b);
    /* The atomic kind reads back what its writer added. */
    sb_ahist a;
    sb_ahist_init(&a, &SB_HIST_COUNT);
    sb_ahist_add(&a, 3);
    sb_ahist_add(&a, 5000);
    sb_ahist_read(&a, &h);
    assert_int_equal(h.counts[2], 1); /* <= 4 */
    assert_int_equal(h.counts[SB_HIST_COUNT.n], 1);
    assert_int_equal(h.sum, 5003);
}

static sb_metrics_snap *snap_new(void)
{
    sb_metrics_snap *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->have_store = true;
    s->store.healthy = true;
    sb_hist_init(&s->store.commit_us, &SB_HIST_US);
    sb_hist_init(&s->store.batch_writes, &SB_HIST_COUNT);
    sb_hist_init(&s->gw.send_ack_ms, &SB_HIST_MS);
    sb_hist_init(&s->gw.queue_wait_ms, &SB_HIST_HUMAN_MS);
    sb_hist_init(&s->gw.first_response_ms, &SB_HIST_HUMAN_MS);
    sb_hist_init(&s->gw.resolution_ms, &SB_HIST_HUMAN_MS);
    return s;
}

static void test_ready(void **state)
{
    (void)state;
    sb_metrics_snap *s = snap_new();
    char why[256];
    assert_true(sb_metrics_ready(s, why, sizeof why));
    assert_string_equal(why, "");
    s->draining = true;
    s->store.healthy = false;
    s->store.write_wait_ms = SB_METRICS_WRITE_WAIT_MS_MAX + 1;
    assert_false(sb_metrics_ready(s, why, sizeof why));
    assert_string_equal(why, "draining; store cannot commit or is out of "
                             "reach; store behind: a write waits over 5 s");
    /* A short buffer is cut, still terminated. */
    assert_false(sb_metrics_ready(s, why, 12));
    assert_string_equal(why, "draining; s");
    free(s);
}

static void test_render(void **state)
{
    (void)state;
    sb_metrics_snap *s = snap_new();
    s->sqlite = true;
    s->gw.frames_in[SBP__FRAME__BODY_SEND] = 9;
    s->gw.errors_by_code[SBP__ERROR_CODE__ERR_STORE] = 2;
    s->gw.n_filter = 1;
    snprintf(s->gw.filter[0].category, sizeof s->gw.filter[0].category, "ads");
    s->gw.filter[0].policy = SB_FILTER_MASK;
    s->gw.filter[0].messages = 4;
    s->n_groups = 1;
    snprintf(s->groups[0].name, sizeof s->groups[0].name, "billing");
    s->groups[0].s.queued = 2;
    s->groups[0].s.agents[SBP__AGENT_STATUS__AGENT_ONLINE] = 3;
    s->store.messages_stored = 77;
    sb_metrics_process_read(s);
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_metrics_render(s, &b), 0);
    const char *t = text_of(&b);
    assert_non_null(strstr(t, "switchboard_messages_stored_total 77\n"));
    assert_non_null(
        strstr(t, "switchboard_frames_received_total{kind=\"send\"} 9\n"));
    assert_non_null(
        strstr(t, "switchboard_errors_total{code=\"ERR_STORE\"} 2\n"));
    assert_non_null(strstr(t, "switchboard_filter_matches_total{category="
                              "\"ads\",action=\"mask\"} 4\n"));
    assert_non_null(
        strstr(t, "switchboard_queue_length{group=\"billing\"} 2\n"));
    assert_non_null(strstr(t, "switchboard_agents{group=\"billing\","
                              "status=\"online\"} 3\n"));
    assert_non_null(strstr(t, "switchboard_process_resident_memory_bytes "));
    if (system("command -v promtool >/dev/null") == 0) {
        char path[] = "/tmp/sbprom.XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
        close(fd);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
        int rc = system(cmd);
        unlink(path);
        assert_int_equal(rc, 0);
    }
    sb_buf_free(&b);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_ready),
        cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
