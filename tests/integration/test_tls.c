/* integ_tls: the server on TLS (--tls-cert/--tls-key) with a certificate
 * made at test time, and its clients over wss://.
 *
 * An SDK pair trusting the certificate (sb_client_config.ca_file) chats
 * 100 messages each way: everything surfaced once, in order, as stored.
 * A client trusting another CA is refused (TLS_CERT_REJECTED, never
 * READY), as are ws:// and plain HTTP to the TLS port. sbctl reads the
 * history over wss:// with --ca, and fails with the wrong --ca. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"
#include "sb_tls.h"
#include "tls_cert.h"

#define WAIT_MS 15000
#define MSGS 100

static it_env E;
static char dir[64], pem[128], key[128], other[128];

static int teardown(void **state)
{
    (void)state;
    it_env_free(&E);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return 0;
}

static bool never_ready(it_device *d, int ms)
{
    it_run_for(d->env, ms);
    return d->readies == 0;
}

/* Runs sbctl (next to the server binary) with args; returns its exit
 * status and its stdout in out. */
static int sbctl(char *out, size_t cap, const char *fmt, ...)
{
    char bin[512], args[1024], cmd[2048];
    snprintf(bin, sizeof bin, "%s", harness_server_bin());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s/sbctl' %s 2>&1", dirname(bin), args);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_tls(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    snprintf(dir, sizeof dir, "/tmp/sbtls.XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(tls_cert_make(dir, "server"), 0);
    assert_int_equal(tls_cert_make(dir, "other"), 0);
    snprintf(pem, sizeof pem, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(other, sizeof other, "%s/other.pem", dir);

    it_env_init(&E);
    const char *args[] = {"--tls-cert",   pem,  "--tls-key", key,
                          "--durability", "os", NULL};
    assert_int_equal(it_server_start(&E, args), 0);
    snprintf(E.url, sizeof E.url, "wss://127.0.0.1:%u/ws", E.srv.port);

    /* The pair, trusting the server's certificate. */
    it_device *cust = it_device_new(&E, "tls-cust", "customer", "tc-1");
    it_device *agent = it_device_new(&E, "tls-agent", "agent", "ta-1");
    cust->cfg.ca_file = agent->cfg.ca_file = pem;
    assert_int_equal(it_device_start(agent), 0);
    assert_int_equal(it_device_start(cust), 0);
    assert_true(it_device_wait_ready(agent, WAIT_MS));
    assert_true(it_device_wait_ready(cust, WAIT_MS));
    uint64_t conv = it_open(cust, "tls-agent", WAIT_MS);
    assert_true(conv != 0);
    for (int i = 0; i < MSGS; i++) {
        assert_int_equal(it_send_n(cust, conv, i, 1, "over-tls-c"), 0);
        assert_int_equal(it_send_n(agent, conv, i, 1, "over-tls-a"), 0);
    }
    it_device *both[2] = {cust, agent};
    assert_true(it_wait_sent(both, 2, WAIT_MS));
    assert_true(it_wait_surfaced(both, 2, conv, 2 * MSGS, WAIT_MS));
    assert_int_equal(it_check_conv(&E, conv, both, 2, 2 * MSGS), 0);
    assert_int_equal(it_check_store(&E, conv, cust, NULL), 0);
    assert_int_equal(E.violations, 0);
    assert_int_equal(cust->readies, 1);
    assert_int_equal(agent->readies, 1);

    /* Another CA: the certificate is refused, the client never READY. */
    it_device *wrong = it_device_new(&E, "tls-cust", "customer", "tc-2");
    wrong->cfg.ca_file = other;
    assert_int_equal(it_device_start(wrong), 0);
    assert_true(never_ready(wrong, 1500));
    assert_int_equal(sb_client_last_error(wrong->c), SB_TLS_E_VERIFY);
    /* ws:// to the TLS port, and plain HTTP: no answer, a close. */
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", E.srv.port);
    it_device *plain = it_device_new(&E, "tls-cust", "customer", "tc-3");
    plain->cfg.url = url;
    assert_int_equal(it_device_start(plain), 0);
    assert_true(never_ready(plain, 1000));
    char resp[512];
    bool closed = false;
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(it_http(E.srv.port, req, sizeof req - 1, resp, sizeof resp,
                             2000, &closed),
                     -1);
    assert_true(closed);
    /* The pair never noticed. */
    assert_int_equal(cust->readies, 1);
    assert_int_equal(agent->readies, 1);

    /* sbctl over wss:// with --ca, and with the wrong one. */
    char tok[1024], out[16384];
    snprintf(tok, sizeof tok, "%s", harness_token("tls-agent", "agent", 600));
    int st = sbctl(out, sizeof out,
                   "history --url wss://127.0.0.1:%u/ws --ca '%s' --token %s "
                   "--conv %llu --limit 200",
                   E.srv.port, pem, tok, (unsigned long long)conv);
    if (st != 0) fail_msg("sbctl history over wss: exit %d: %s", st, out);
    assert_non_null(strstr(out, "over-tls-c#99"));
    assert_non_null(strstr(out, "over-tls-a#0"));
    st = sbctl(out, sizeof out,
               "history --url wss://127.0.0.1:%u/ws --ca '%s' --token %s "
               "--conv %llu --timeout-ms 1500",
               E.srv.port, other, tok, (unsigned long long)conv);
    assert_true(st != 0);
    assert_non_null(strstr(out, "TLS_CERT_REJECTED"));
    fprintf(stderr, "tls: %d messages over wss://, refusals checked, %lld ms\n",
            2 * MSGS, (long long)(harness_now_ms() - t0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_tls, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
