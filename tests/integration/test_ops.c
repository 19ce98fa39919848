/* integ_ops: the operations port and the log, against the real server.
 *
 *  - metrics: a customer and an agent send 2 x 150 messages; a scrape of
 *    /metrics taken while they are in flight passes `promtool check
 *    metrics`, and so does one after; switchboard_messages_stored_total
 *    grew by exactly 300, and the SENDs, SEND_ACK latencies, sessions,
 *    connections, pushes, commits, the WAL and the process figures moved
 *    as they must.
 *  - readyz_drain: /readyz says "ready"; after SIGTERM, while a client
 *    that never answers the close holds the drain, /readyz and /healthz
 *    answer 503 "draining" and switchboard_draining is 1; exit status 0.
 *  - readyz_full_disk (root: a tmpfs of the test's own; skipped
 *    otherwise): with the disk full a SEND gets ERR_STORE and /readyz 503
 *    "store cannot commit"; space freed, the next SEND is stored and
 *    /readyz is 200 again.
 *  - json_log: --log-format json --log-level debug: every line of the log
 *    parses as a JSON object with time, level, event and msg; a session's
 *    line carries its session and user ids, a refused request its
 *    session, user, conversation and request ids; and neither a token,
 *    the secret nor a message body is anywhere in the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

#define WAIT_MS 15000
#define N_EACH 150
#define SCRAPE_BYTES (1u << 20)

static it_env E;
static char MNT[64]; /* readyz_full_disk's tmpfs */
static bool mounted;

static int teardown(void **state)
{
    (void)state;
    if (E.srv.pid > 0) harness_stop(&E.srv);
    if (mounted) umount2(MNT, MNT_DETACH);
    mounted = false;
    it_env_free(&E);
    if (MNT[0]) rmdir(MNT);
    MNT[0] = '\0';
    return 0;
}

/* GET path on the operations port: the status, the body in buf. */
static int get(const char *path, char *buf, size_t cap)
{
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     path);
    bool closed;
    int status =
        it_http(E.srv.admin_port, req, (size_t)n, buf, cap, WAIT_MS, &closed);
    char *body = strstr(buf, "\r\n\r\n");
    if (body) memmove(buf, body + 4, strlen(body + 4) + 1);
    return status;
}

/* The value of series (a metric name with its labels, as written) in a
 * scrape; -1 when it is not there. */
static double value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* promtool's verdict on a scrape (its lint included). */
static void promtool_check(const char *text, const char *when)
{
    char path[] = "/tmp/sbmetrics.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "ops: promtool failed on the scrape %s\n", when);
    unlink(path);
    assert_int_equal(rc, 0);
}

static const char *const ADMIN[] = {"--admin-listen", "127.0.0.1:0", NULL};

/* ---- metrics ------------------------------------------------------------- */

static void test_metrics(void **state)
{
    (void)state;
    assert_int_equal(system("command -v promtool >/dev/null"), 0);
    it_env_init(&E);
    E.unlimited = true;
    assert_int_equal(it_server_start(&E, ADMIN), 0);
    assert_true(E.srv.admin_port != 0);
    it_device *ag = it_device_new(&E, "ann", "agent", "ann-d1");
    it_device *cu = it_device_new(&E, "carl", "customer", "carl-d1");
    assert_int_equal(it_device_start(ag), 0);
    assert_int_equal(it_device_start(cu), 0);
    assert_true(it_device_wait_ready(ag, WAIT_MS));
    assert_true(it_device_wait_ready(cu, WAIT_MS));
    uint64_t conv = it_open(ag, "carl", WAIT_MS);
    assert_true(conv != 0);
    it_device *devs[] = {ag, cu};
    /* What the opening left behind settles first. */
    it_run_for(&E, 200);

    static char before[SCRAPE_BYTES], during[SCRAPE_BYTES], after[SCRAPE_BYTES];
    assert_int_equal(get("/metrics", before, sizeof before), 200);
    assert_int_equal(it_send_n(ag, conv, 0, N_EACH, "a"), 0);
    assert_int_equal(it_send_n(cu, conv, 0, N_EACH, "c"), 0);
    it_run_for(&E, 30);
    assert_int_equal(get("/metrics", during, sizeof during), 200);
    promtool_check(during, "under load");
    assert_true(it_wait_sent(devs, 2, WAIT_MS));
    assert_true(it_wait_surfaced(devs, 2, conv, 2 * N_EACH, WAIT_MS));
    it_run_for(&E, 100);
    assert_int_equal(get("/metrics", after, sizeof after), 200);
    promtool_check(after, "after the load");

#define DELTA(series) (value(after, series) - value(before, series))
    assert_true(value(before, "switchboard_messages_stored_total") >= 0);
    assert_int_equal(DELTA("switchboard_messages_stored_total"), 2 * N_EACH);
    assert_int_equal(DELTA("switchboard_sends_total"), 2 * N_EACH);
    assert_int_equal(DELTA("switchboard_frames_received_total{kind=\"send\"}"),
                     2 * N_EACH);
    assert_int_equal(DELTA("switchboard_frames_sent_total{kind=\"send_ack\"}"),
                     2 * N_EACH);
    assert_int_equal(DELTA("switchboard_send_ack_duration_seconds_count"),
                     2 * N_EACH);
    assert_true(DELTA("switchboard_pushes_total") >= 2 * N_EACH);
    assert_true(DELTA("switchboard_frames_received_total{kind=\"ack\"}") > 0);
    assert_true(DELTA("switchboard_store_commits_total") > 0);
    assert_true(DELTA("switchboard_store_batch_requests_count") > 0);
    assert_true(DELTA("switchboard_store_commit_duration_seconds_count") > 0);
    assert_int_equal(value(after, "switchboard_sessions{encoding=\"protobuf\","
                                  "role=\"agent\"}"),
                     1);
    assert_int_equal(value(after, "switchboard_sessions{encoding=\"protobuf\","
                                  "role=\"customer\"}"),
                     1);
    assert_int_equal(
        value(after,
              "switchboard_connections{kind=\"protobuf\",tls=\"false\"}"),
        2);
    assert_int_equal(value(after, "switchboard_ready"), 1);
    assert_int_equal(value(after, "switchboard_store_healthy"), 1);
    assert_int_equal(value(after, "switchboard_draining"), 0);
    assert_true(value(after, "switchboard_store_wal_bytes") > 0);
    assert_true(value(after, "switchboard_store_db_bytes") > 0);
    assert_true(value(after, "switchboard_process_resident_memory_bytes") >
                1e6);
    assert_true(value(after, "switchboard_process_open_fds") > 3);
    assert_true(value(after, "switchboard_process_cpu_seconds_total") > 0);
    assert_true(value(after, "switchboard_process_start_time_seconds") > 1.6e9);
    assert_int_equal(value(after, "switchboard_build_info{version=\"" SB_VERSION
                                  "\",store=\"sqlite\"}"),
                     1);
    assert_int_equal(DELTA("switchboard_errors_total{code=\"ERR_STORE\"}"), 0);
#undef DELTA
    assert_int_equal(E.violations, 0);
}

/* ---- readiness ----------------------------------------------------------- */

static void test_readyz_drain(void **state)
{
    (void)state;
    it_env_init(&E);
    assert_int_equal(it_server_start(&E, ADMIN), 0);
    static char buf[SCRAPE_BYTES];
    assert_int_equal(get("/readyz", buf, sizeof buf), 200);
    assert_string_equal(buf, "ready\n");
    assert_int_equal(get("/healthz", buf, sizeof buf), 200);
    /* A session that never answers the close holds the drain (2 s). */
    it_raw r;
    assert_int_equal(it_raw_open(&r, E.srv.port, SB_ENC_PROTO, NULL), 0);
    assert_int_equal(it_raw_hello(&r, harness_token("dora", "customer", 3600),
                                  "d1", WAIT_MS),
                     0);
    assert_int_equal(harness_stop_begin(&E.srv), 0);
    int64_t deadline = harness_now_ms() + 2000;
    int status = 0;
    while (harness_now_ms() < deadline &&
           (status = get("/readyz", buf, sizeof buf)) == 200)
        usleep(10000);
    assert_int_equal(status, 503);
    assert_non_null(strstr(buf, "draining"));
    assert_int_equal(get("/healthz", buf, sizeof buf), 503);
    assert_int_equal(get("/metrics", buf, sizeof buf), 200);
    assert_int_equal(value(buf, "switchboard_draining"), 1);
    assert_int_equal(value(buf, "switchboard_ready"), 0);
    int exit_status = -2;
    deadline = harness_now_ms() + WAIT_MS;
    while (harness_now_ms() < deadline &&
           harness_stop_poll(&E.srv, &exit_status) == 0)
        usleep(10000);
    assert_int_equal(exit_status, 0);
    it_raw_close(&r);
}

/* Fills the file system of dir: a file written until ENOSPC. */
static void fill(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    static char zeros[65536];
    while (write(fd, zeros, sizeof zeros) > 0) {
    }
    /* The last blocks, smaller than the chunk. */
    while (write(fd, zeros, 512) > 0) {
    }
    assert_int_equal(errno, ENOSPC);
    close(fd);
}

static int raw_send(it_raw *r, uint64_t conv, int i, Sbp__Frame **resp)
{
    uint8_t cmid[SB_CLIENT_MSG_ID_BYTES] = {0x42, (uint8_t)i};
    uint32_t rid = it_raw_send_msg(r, cmid, conv, "full disk test");
    for (;;) {
        Sbp__Frame *f = it_raw_recv(r, WAIT_MS);
        if (!f) return -1;
        if (f->rid == rid && (f->body_case == SBP__FRAME__BODY_SEND_ACK ||
                              f->body_case == SBP__FRAME__BODY_ERROR)) {
            *resp = f;
            return 0;
        }
        sb_frame_free(f);
    }
}

static void test_readyz_full_disk(void **state)
{
    (void)state;
    if (geteuid() != 0) skip(); /* mounting a tmpfs needs root */
    snprintf(MNT, sizeof MNT, "/tmp/sbopsdisk.XXXXXX");
    assert_non_null(mkdtemp(MNT));
    assert_int_equal(
        mount("tmpfs", MNT, "tmpfs", MS_NOSUID | MS_NODEV, "size=2m,mode=0700"),
        0);
    mounted = true;
    it_env_init(&E);
    E.srv.sqlite_only = true;
    snprintf(E.srv.data_dir, sizeof E.srv.data_dir, "%s", MNT);
    assert_int_equal(it_server_start(&E, ADMIN), 0);
    it_raw r;
    assert_int_equal(it_raw_open(&r, E.srv.port, SB_ENC_PROTO, NULL), 0);
    assert_int_equal(it_raw_hello(&r, harness_token("fay", "agent", 3600),
                                  "fay-d1", WAIT_MS),
                     0);
    /* A member is a user the server has met: gus connects once. */
    it_raw r2;
    assert_int_equal(it_raw_open(&r2, E.srv.port, SB_ENC_PROTO, NULL), 0);
    assert_int_equal(it_raw_hello(&r2, harness_token("gus", "customer", 3600),
                                  "gus-d1", WAIT_MS),
                     0);
    it_raw_close(&r2);
    char *mem[1] = {(char *)"gus"};
    Sbp__Open op = SBP__OPEN__INIT;
    op.n_members = 1;
    op.members = mem;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_OPEN;
    f.open = &op;
    uint32_t rid = it_raw_send(&r, &f);
    Sbp__Frame *g = it_raw_expect(&r, SBP__FRAME__BODY_OPEN_RESP, rid, WAIT_MS);
    assert_non_null(g);
    uint64_t conv = g->open_resp->conv->conv_id;
    sb_frame_free(g);

    char filler[128];
    snprintf(filler, sizeof filler, "%s/filler", MNT);
    fill(filler);
    assert_int_equal(raw_send(&r, conv, 1, &g), 0);
    assert_int_equal(g->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(g->error->code, SBP__ERROR_CODE__ERR_STORE);
    sb_frame_free(g);
    static char buf[SCRAPE_BYTES];
    assert_int_equal(get("/readyz", buf, sizeof buf), 503);
    assert_non_null(strstr(buf, "store cannot commit"));
    /* Liveness stays: a restart would not free the disk. */
    assert_int_equal(get("/healthz", buf, sizeof buf), 200);
    assert_int_equal(get("/metrics", buf, sizeof buf), 200);
    assert_int_equal(value(buf, "switchboard_store_healthy"), 0);
    assert_true(value(buf, "switchboard_store_commit_failures_total") >= 1);
    assert_int_equal(value(buf, "switchboard_errors_total{code=\"ERR_STORE\"}"),
                     1);

    assert_int_equal(unlink(filler), 0);
    assert_int_equal(raw_send(&r, conv, 2, &g), 0);
    assert_int_equal(g->body_case, SBP__FRAME__BODY_SEND_ACK);
    sb_frame_free(g);
    assert_int_equal(get("/readyz", buf, sizeof buf), 200);
    it_raw_close(&r);
}

/* ---- the log ------------------------------------------------------------- */

static void test_json_log(void **state)
{
    (void)state;
    char log[] = "/tmp/sbopslog.XXXXXX";
    int fd = mkstemp(log);
    assert_true(fd >= 0);
    close(fd);
    static const char *const extra[] = {"--log-format", "json", "--log-level",
                                        "debug", NULL};
    it_env_init(&E);
    E.srv.log_path = log;
    assert_int_equal(it_server_start(&E, extra), 0);
    it_device *ag = it_device_new(&E, "hal", "agent", "hal-d1");
    it_device *cu = it_device_new(&E, "ivy", "customer", "ivy-d1");
    char tokens[2][1024];
    snprintf(tokens[0], sizeof tokens[0], "%s", ag->token);
    snprintf(tokens[1], sizeof tokens[1], "%s", cu->token);
    assert_int_equal(it_device_start(ag), 0);
    assert_int_equal(it_device_start(cu), 0);
    assert_true(it_device_wait_ready(ag, WAIT_MS));
    assert_true(it_device_wait_ready(cu, WAIT_MS));
    uint64_t conv = it_open(ag, "ivy", WAIT_MS);
    assert_true(conv != 0);
    static const char BODY[] = "the-body-nobody-logs-7f3a";
    assert_int_equal(it_send_text(cu, conv, BODY), 0);
    assert_int_equal(it_send_text(ag, conv, BODY), 0);
    it_device *devs[] = {ag, cu};
    assert_true(it_wait_sent(devs, 2, WAIT_MS));
    /* Someone else's conversation: refused, with every id. */
    it_raw r;
    assert_int_equal(it_raw_open(&r, E.srv.port, SB_ENC_PROTO, NULL), 0);
    char mallory[1024];
    snprintf(mallory, sizeof mallory, "%s",
             harness_token("mallory", "agent", 3600));
    assert_int_equal(it_raw_hello(&r, mallory, "mal-d1", WAIT_MS), 0);
    uint8_t cmid[SB_CLIENT_MSG_ID_BYTES] = {7};
    uint32_t rid = it_raw_send_msg(&r, cmid, conv, BODY);
    Sbp__Frame *g = it_raw_expect(&r, SBP__FRAME__BODY_ERROR, rid, WAIT_MS);
    assert_non_null(g);
    sb_frame_free(g);
    it_raw_close(&r);
    assert_int_equal(harness_stop(&E.srv), 0);

    FILE *f = fopen(log, "r");
    assert_non_null(f);
    static char line[8192];
    int lines = 0, ready = 0, refused = 0;
    while (fgets(line, sizeof line, f)) {
        lines++;
        for (int i = 0; i < 2; i++)
            assert_null(strstr(line, tokens[i]));
        assert_null(strstr(line, mallory));
        assert_null(strstr(line, HARNESS_SECRET));
        assert_null(strstr(line, BODY));
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        if (!j) fprintf(stderr, "ops: not JSON: %s", line);
        assert_non_null(j);
        assert_true(json_is_string(json_object_get(j, "time")));
        assert_true(json_is_string(json_object_get(j, "level")));
        assert_true(json_is_string(json_object_get(j, "msg")));
        const char *ev = json_string_value(json_object_get(j, "event"));
        assert_non_null(ev);
        const char *user = json_string_value(json_object_get(j, "user"));
        if (strcmp(ev, "session_ready") == 0 && user &&
            strcmp(user, "hal") == 0) {
            assert_true(json_integer_value(json_object_get(j, "session")) > 0);
            assert_string_equal(json_string_value(json_object_get(j, "device")),
                                "hal-d1");
            ready++;
        }
        if (strcmp(ev, "request_refused") == 0 && user &&
            strcmp(user, "mallory") == 0) {
            assert_true(json_integer_value(json_object_get(j, "session")) > 0);
            assert_int_equal(json_integer_value(json_object_get(j, "conv")),
                             conv);
            assert_int_equal(json_integer_value(json_object_get(j, "request")),
                             rid);
            assert_non_null(strstr(json_string_value(json_object_get(j, "msg")),
                                   "ERR_FORBIDDEN"));
            refused++;
        }
        json_decref(j);
    }
    fclose(f);
    unlink(log);
    assert_true(lines >= 4);
    assert_int_equal(ready, 1);
    assert_int_equal(refused, 1);
}

int main(void)
{
    /* A mount namespace of the test's own (the server inherits it), so
     * that the full-disk tmpfs goes with them whatever happens. */
    if (geteuid() == 0 &&
        (unshare(CLONE_NEWNS) != 0 ||
         mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0))
        fprintf(stderr, "ops: no private mount namespace (%s)\n",
                strerror(errno));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_metrics, teardown),
        cmocka_unit_test_teardown(test_readyz_drain, teardown),
        cmocka_unit_test_teardown(test_readyz_full_disk, teardown),
        cmocka_unit_test_teardown(test_json_log, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
