/* integ_api: the REST API (/api/v1) and the webhooks against the real
 * server, over real sockets, with a real HTTP receiver of this test's own
 * for the webhooks (a thread that answers 200, 500 or never).
 *
 * - auth and errors: no token, a bad or expired one, a customer's or an
 *   agent's (403), an integration's token on the WebSocket (refused);
 *   malformed JSON, a wrong content type, a body over the limit, a page
 *   over the limit, a bad or unknown conversation, an unknown path, a
 *   wrong method, a rate per token (429): each answered with its status,
 *   a code and a message, the server serving on.
 * - conversations: list, read, history paged; transfer to an agent,
 *   send as that agent (pushed to the customer's device, in order with
 *   its own messages; the same client_msg_id again gives the same seq
 *   and stores nothing), tags, close; sending as an agent that is not a
 *   member is refused; the desk read and changed.
 * - webhooks: message.created, conversation.assigned|transferred|closed
 *   posted with a signature the test verifies (HMAC-SHA256 over
 *   "t.body"); a failing endpoint retried with backoff, then listed as
 *   failed and replayed once it works; an endpoint that hangs while
 *   1,000 messages flow slows nothing (the time is compared with the
 *   same traffic before the endpoint was configured).
 * - a user's data: export (conversations and messages), erasure (bodies
 *   gone, seqs kept, search finds nothing, the answer says what was kept).
 * - ratings and reports: csat.submitted posted once with the rating;
 *   /api/v1/reports as JSON and CSV, and its refusals; a rating's comment
 *   erased with its customer's data.
 * - notes and contacts: notes written and read over REST, never listed,
 *   never in the customer's export, note.created and never
 *   message.created; contacts read, changed, refused, exported, erased.
 * The OpenAPI document is served and is JSON with every path; its
 * validation against the OpenAPI 3 schema is the test api_openapi. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <netinet/in.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "itsvc.h"
#include "sb_error.h"
#include "sb_tz.h"

#define HOOK_SECRET "whsec_test_0123456789abcdef"
#define HOOK_EVENTS_MAX 4096

static const char DESK[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\"],\"default_group\":\"g1\","
    "\"unmatched_max\":2,\"recall_window_s\":120,"
    "\"greeting\":{\"en\":\"Welcome\"},\"fallback\":{\"en\":\"Sorry?\"},"
    "\"out_of_hours\":{\"en\":\"Nobody is here\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true}]},"
    "\"canned\":[]}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":5},"
    "{\"id\":\"a2\",\"groups\":[\"g1\"],\"capacity\":5}]}";

static it_env E;
static its_ctx S = {.env = &E, .client_name = "integ_api", .requests_max = 64};

/* ---- the webhook receiver ------------------------------------------------ */

enum { RX_OK, RX_FAIL, RX_HANG };

typedef struct rx_event {
    char *body;
    char sig[160];
} rx_event;

static struct {
    int fd;
    uint16_t port;
    pthread_t th;
    atomic_int mode, stop, requests;
    pthread_mutex_t mu;
    rx_event ev[HOOK_EVENTS_MAX];
    size_t n;
    int hung[64]; /* connections held open */
    size_t n_hung;
} RX = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Reads one request from fd: the Switchboard-Signature header into sig
 * and the body (malloc'd). false if the peer goes away first. */
static bool rx_read(int fd, char *sig, size_t cap, char **body)
{
    char buf[1 << 16];
    size_t n = 0;
    char *end = NULL;
    while (!end) {
        if (n == sizeof buf - 1) return false;
        ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
        if (k <= 0) return false;
        n += (size_t)k;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t len = cl ? strtoul(cl + 15, NULL, 10) : 0;
    const char *s = strcasestr(buf, "Switchboard-Signature:");
    sig[0] = '\0';
    if (s) {
        s += 22;
        while (*s == ' ')
            s++;
        size_t k = strcspn(s, "\r\n");
        snprintf(sig, cap, "%.*s", (int)k, s);
    }
    size_t head = (size_t)(end + 4 - buf);
    char *b = malloc(len + 1);
    size_t have = n - head < len ? n - head : len;
    memcpy(b, buf + head, have);
    while (have < len) {
        ssize_t k = read(fd, b + have, len - have);
        if (k <= 0) {
            free(b);
            return false;
        }
        have += (size_t)k;
    }
    b[len] = '\0';
    *body = b;
    return true;
}

static void *rx_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&RX.stop)) {
        struct pollfd p = {.fd = RX.fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(RX.fd, NULL, NULL);
        if (c < 0) continue;
        char sig[160], *body = NULL;
        if (!rx_read(c, sig, sizeof sig, &body)) {
            close(c);
            continue;
        }
        atomic_fetch_add(&RX.requests, 1);
        int mode = atomic_load(&RX.mode);
        if (mode == RX_HANG) {
            free(body);
            if (RX.n_hung < 64)
                RX.hung[RX.n_hung++] = c; /* never answered */
            else
                close(c);
            continue;
        }
        if (mode == RX_OK) {
            pthread_mutex_lock(&RX.mu);
            if (RX.n < HOOK_EVENTS_MAX) {
                RX.ev[RX.n].body = body;
                snprintf(RX.ev[RX.n].sig, sizeof RX.ev[RX.n].sig, "%s", sig);
                RX.n++;
                body = NULL;
            }
            pthread_mutex_unlock(&RX.mu);
        }
        free(body);
        const char *ans = mode == RX_OK
                              ? "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                                "Connection: close\r\n\r\n"
                              : "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n"
                                "Connection: close\r\n\r\n";
        ssize_t w = write(c, ans, strlen(ans));
        (void)w;
        close(c);
    }
    return NULL;
}

static void rx_start(int mode)
{
    RX.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(RX.fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(RX.fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(RX.fd, 128), 0);
    socklen_t al = sizeof a;
    getsockname(RX.fd, (struct sockaddr *)&a, &al);
    RX.port = ntohs(a.sin_port);
    atomic_store(&RX.mode, mode);
    atomic_store(&RX.stop, 0);
    atomic_store(&RX.requests, 0);
    RX.n = 0;
    RX.n_hung = 0;
    assert_int_equal(pthread_create(&RX.th, NULL, rx_main, NULL), 0);
}

static void rx_stop(void)
{
    atomic_store(&RX.stop, 1);
    pthread_join(RX.th, NULL);
    close(RX.fd);
    for (size_t i = 0; i < RX.n_hung; i++)
        close(RX.hung[i]);
    for (size_t i = 0; i < RX.n; i++)
        free(RX.ev[i].body);
    RX.n = RX.n_hung = 0;
}

/* Events received of name (and containing needle, when set). */
static size_t rx_count(const char *name, const char *needle)
{
    size_t k = 0;
    pthread_mutex_lock(&RX.mu);
    for (size_t i = 0; i < RX.n; i++) {
        json_t *j = json_loads(RX.ev[i].body, 0, NULL);
        const char *ev = json_string_value(json_object_get(j, "event"));
        if (ev && strcmp(ev, name) == 0 &&
            (!needle || strstr(RX.ev[i].body, needle)))
            k++;
        json_decref(j);
    }
    pthread_mutex_unlock(&RX.mu);
    return k;
}

static bool rx_wait(const char *name, const char *needle, size_t want,
                    int timeout_ms)
{
    int64_t end = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < end) {
        if (rx_count(name, needle) >= want) return true;
        it_run_for(&E, 20);
    }
    return rx_count(name, needle) >= want;
}

/* Verifies the signature of every event received: t=<s>,v1=<hex of
 * HMAC-SHA256(secret, "<t>.<body>")>, t within 5 minutes. */
static void rx_verify_all(void)
{
    pthread_mutex_lock(&RX.mu);
    for (size_t i = 0; i < RX.n; i++) {
        long long t = 0;
        char v1[80] = "";
        assert_int_equal(sscanf(RX.ev[i].sig, "t=%lld,v1=%64s", &t, v1), 2);
        long long now = (long long)time(NULL);
        assert_true(t > now - 300 && t <= now + 5);
        char *signed_text = NULL;
        assert_true(asprintf(&signed_text, "%lld.%s", t, RX.ev[i].body) > 0);
        uint8_t mac[32];
        unsigned mlen = sizeof mac;
        HMAC(EVP_sha256(), HOOK_SECRET, (int)strlen(HOOK_SECRET),
             (const uint8_t *)signed_text, strlen(signed_text), mac, &mlen);
        free(signed_text);
        char hex[65];
        for (int k = 0; k < 32; k++)
            snprintf(hex + 2 * k, 3, "%02x", mac[k]);
        assert_string_equal(v1, hex);
        json_t *j = json_loads(RX.ev[i].body, 0, NULL);
        assert_non_null(j);
        assert_true(json_is_string(json_object_get(j, "id")));
        assert_non_null(json_object_get(j, "data"));
        json_decref(j);
    }
    pthread_mutex_unlock(&RX.mu);
}

/* ---- HTTP ------------------------------------------------------------------
 */

typedef struct resp {
    int status;
    json_t *json; /* the body parsed (NULL if not JSON) */
    char raw[1 << 20];
} resp;

static resp R; /* the last answer; large, so not on the stack */

/* method path with token (NULL: none), body (NULL: none) of type ctype. */
static int call_ct(const char *method, const char *path, const char *token,
                   const char *body, const char *ctype)
{
    static char req[1 << 21];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: x\r\n%s%s%s"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     method, path, token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "", ctype,
                     body ? strlen(body) : 0, body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof req);
    bool closed;
    json_decref(R.json);
    R.json = NULL;
    R.status = it_http(E.srv.port, req, (size_t)n, R.raw, sizeof R.raw, 20000,
                       &closed);
    const char *b = strstr(R.raw, "\r\n\r\n");
    if (b) R.json = json_loads(b + 4, JSON_DECODE_ANY, NULL);
    return R.status;
}

static int call(const char *method, const char *path, const char *token,
                const char *body)
{
    return call_ct(method, path, token, body, "application/json");
}

/* The error code of the last answer ("" when it is none). */
static const char *err_code(void)
{
    const char *c = json_string_value(
        json_object_get(json_object_get(R.json, "error"), "code"));
    return c ? c : "";
}

static void expect_error(int status, const char *code)
{
    if (R.status != status || strcmp(err_code(), code) != 0)
        fail_msg("want %d %s, got %d: %s", status, code, R.status, R.raw);
    /* Every error names its status and says why. */
    json_t *e = json_object_get(R.json, "error");
    assert_int_equal(json_integer_value(json_object_get(e, "status")), status);
    assert_true(strlen(json_string_value(json_object_get(e, "message"))) > 0);
}

static char ADMIN[1024], INTEG[1024];

/* Runs `sbctl ARGS` as root (admin) against the server; returns its exit
 * status and its output in out. */
static int sbctl(const char *args, char *out, size_t cap)
{
    char bin[512], cmd[4096];
    snprintf(bin, sizeof bin, "%s", harness_server_bin());
    snprintf(cmd, sizeof cmd, "'%s/sbctl' %s --url '%s' --token '%s' 2>&1",
             dirname(bin), args, E.srv.url, ADMIN);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The server, with the desk (customer service) or without (direct
 * conversations only), and more options. */
static void server_start_ex(bool desk, const char *const *more)
{
    it_env_init(&E);
    snprintf(E.srv.data_dir, sizeof E.srv.data_dir, "/tmp/sbapi.XXXXXX");
    assert_non_null(mkdtemp(E.srv.data_dir));
    static char path[300];
    snprintf(path, sizeof path, "%s/desk.json", E.srv.data_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(DESK, f);
    fclose(f);
    const char *extra[16] = {"--durability", "os", "--desk", path};
    size_t n = desk ? 4 : 2;
    for (size_t i = 0; more && more[i] && n < 15; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    E.unlimited = true;
    assert_int_equal(it_server_start(&E, extra), 0);
    snprintf(ADMIN, sizeof ADMIN, "%s", harness_token("root", "admin", 3600));
    snprintf(INTEG, sizeof INTEG, "%s",
             harness_token("crm", "integration", 3600));
}

static void server_start(const char *const *more)
{
    server_start_ex(true, more);
}

static int teardown(void **state)
{
    (void)state;
    its_free_all(&S);
    it_env_free(&E);
    json_decref(R.json);
    R.json = NULL;
    return 0;
}

/* ---- auth and errors -------------------------------------------------------
 */

static void test_auth_and_errors(void **state)
{
    (void)state;
    const char *more[] = {"--api-rate", "5", "--api-burst", "20", NULL};
    server_start(more);
    call("GET", "/api/v1/conversations", NULL, NULL);
    expect_error(401, "unauthorized");
    assert_non_null(strcasestr(R.raw, "WWW-Authenticate: Bearer"));
    call("GET", "/api/v1/conversations", "not.a.token", NULL);
    expect_error(401, "unauthorized");
    call("GET", "/api/v1/conversations", harness_token("root", "admin", -100),
         NULL);
    expect_error(401, "unauthorized");
    call("GET", "/api/v1/conversations", harness_token("cu1", "customer", 3600),
         NULL);
    expect_error(403, "forbidden");
    call("GET", "/api/v1/conversations", harness_token("a1", "agent", 3600),
         NULL);
    expect_error(403, "forbidden");
    assert_int_equal(call("GET", "/api/v1/conversations", INTEG, NULL), 200);
    assert_true(json_is_array(json_object_get(R.json, "conversations")));

    /* Bad input, each with its answer. */
    call("POST", "/api/v1/conversations/1/messages", INTEG, "{not json");
    expect_error(400, "invalid");
    call("POST", "/api/v1/conversations/1/messages", INTEG, "[1,2]");
    expect_error(400, "invalid");
    call_ct("POST", "/api/v1/conversations/1/messages", INTEG, "{}",
            "text/plain");
    expect_error(415, "unsupported_media_type");
    call("POST", "/api/v1/conversations/1/messages", INTEG, "{\"body\":\"x\"}");
    expect_error(400, "invalid"); /* no client_msg_id */
    call("POST", "/api/v1/conversations/1/messages", INTEG,
         "{\"body\":\"x\",\"client_msg_id\":\"xyz\"}");
    expect_error(400, "invalid");
    size_t big_len = (3u << 20) / 2; /* over the 1 MiB of a body */
    char *big = malloc(big_len + 1);
    memset(big, 'a', big_len);
    memcpy(big, "{\"body\":\"", 9);
    strcpy(big + big_len - 2, "\"}");
    call("POST", "/api/v1/conversations/1/messages", INTEG, big);
    free(big);
    expect_error(413, "too_large");
    call("GET", "/api/v1/conversations?limit=1000", INTEG, NULL);
    expect_error(400, "invalid");
    call("GET", "/api/v1/conversations/abc/messages", INTEG, NULL);
    expect_error(400, "invalid");
    call("GET", "/api/v1/conversations/999999", INTEG, NULL);
    expect_error(404, "not_found");
    call("GET", "/api/v1/conversations/999999/messages", INTEG, NULL);
    expect_error(404, "not_found");
    call("GET", "/api/v1/nothing", INTEG, NULL);
    expect_error(404, "not_found");
    call("DELETE", "/api/v1/desk", INTEG, NULL);
    expect_error(405, "method_not_allowed");
    call("PUT", "/api/v1/webhooks", INTEG,
         "{\"endpoints\":[{\"id\":\"x\",\"url\":\"ftp://x\","
         "\"secret\":\"0123456789abcdef\",\"events\":[\"*\"]}]}");
    expect_error(400, "invalid");
    call("PUT", "/api/v1/webhooks", INTEG,
         "{\"endpoints\":[{\"id\":\"x\",\"url\":\"http://x\","
         "\"secret\":\"short\",\"events\":[\"*\"]}]}");
    expect_error(400, "invalid");
    call("PUT", "/api/v1/webhooks", INTEG,
         "{\"endpoints\":[{\"id\":\"x\",\"url\":\"http://x\","
         "\"secret\":\"0123456789abcdef\",\"events\":[\"no.such\"]}]}");
    expect_error(400, "invalid");

    /* An integration's token opens no WebSocket session. */
    it_raw r;
    assert_int_equal(it_raw_open(&r, E.srv.port, SB_ENC_PROTO, NULL), 0);
    int rc = it_raw_hello(&r, INTEG, "crm-dev", 5000);
    assert_int_equal(rc, SBP__ERROR_CODE__ERR_FORBIDDEN);
    it_raw_close(&r);

    /* The rate per token: a burst of 20, then 429 with Retry-After;
     * another token is not affected. */
    int limited = 0;
    for (int i = 0; i < 40 && !limited; i++)
        if (call("GET", "/api/v1/desk", INTEG, NULL) == 429) limited = i + 1;
    assert_true(limited > 0);
    expect_error(429, "rate_limited");
    assert_non_null(strcasestr(R.raw, "Retry-After:"));
    assert_int_equal(call("GET", "/api/v1/desk", ADMIN, NULL), 200);

    /* The document needs no token. */
    assert_int_equal(call("GET", "/api/v1/openapi.json", NULL, NULL), 200);
    assert_string_equal(json_string_value(json_object_get(R.json, "openapi")),
                        "3.0.3");
    json_t *paths = json_object_get(R.json, "paths");
    const char *want[] = {
        "/api/v1/conversations", "/api/v1/conversations/{id}/messages",
        "/api/v1/users/{id}/erase", "/api/v1/webhooks/replay"};
    for (size_t i = 0; i < 4; i++)
        assert_non_null(json_object_get(paths, want[i]));
}

/* ---- conversations and webhooks -------------------------------------------
 */

static void webhooks_set(const char *events, int max_attempts)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"endpoints\":[{\"id\":\"crm\",\"url\":\"http://127.0.0.1:%u/"
             "hook\",\"secret\":\"" HOOK_SECRET "\",\"events\":[%s]}],"
             "\"max_attempts\":%d,\"retry_base_ms\":100,"
             "\"retry_max_ms\":400}",
             RX.port, events, max_attempts);
    if (call("PUT", "/api/v1/webhooks", ADMIN, body) != 200)
        fail_msg("webhooks-set: %s", R.raw);
}

static void test_conversations_and_webhooks(void **state)
{
    (void)state;
    server_start(NULL);
    rx_start(RX_OK);
    webhooks_set("\"*\"", 5);
    assert_int_equal(call("GET", "/api/v1/webhooks", ADMIN, NULL), 200);
    json_t *ep = json_array_get(json_object_get(R.json, "endpoints"), 0);
    assert_string_equal(json_string_value(json_object_get(ep, "id")), "crm");
    assert_null(strstr(R.raw, HOOK_SECRET)); /* never shown */

    its_dev *a1 = its_connect(&S, "a1", "agent", "a1-desk", "en");
    its_dev *cu = its_connect(&S, "cu1", "customer", "cu1-phone", "en");
    uint64_t conv = its_open_service(cu, NULL);
    its_expect_msg(cu, conv, NULL, "Welcome");
    its_say_ok(cu, conv, "my order is late", 0);

    /* Listed and read. */
    char path[256];
    assert_int_equal(call("GET", "/api/v1/conversations?limit=10", INTEG, NULL),
                     200);
    json_t *c0 = json_array_get(json_object_get(R.json, "conversations"), 0);
    assert_int_equal(json_integer_value(json_object_get(c0, "conv_id")), conv);
    snprintf(path, sizeof path, "/api/v1/conversations/%llu",
             (unsigned long long)conv);
    assert_int_equal(call("GET", path, INTEG, NULL), 200);
    assert_string_equal(json_string_value(json_object_get(R.json, "customer")),
                        "cu1");

    /* Sending as a1 before it is a member: refused. */
    snprintf(path, sizeof path, "/api/v1/conversations/%llu/messages",
             (unsigned long long)conv);
    const char *as_a1 =
        "{\"client_msg_id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\","
        "\"body\":\"Hello from the CRM\",\"as\":{\"user\":\"a1\","
        "\"role\":\"agent\"}}";
    call("POST", path, INTEG, as_a1);
    expect_error(403, "forbidden");
    char tpath[256];
    snprintf(tpath, sizeof tpath, "/api/v1/conversations/%llu/transfer",
             (unsigned long long)conv);

    /* The customer asks for a person: a1, online, is assigned. */
    its_say_ok(cu, conv, "a human please", 0);
    its_dev *both[2] = {cu, a1};
    its_expect_state(both, 2, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);

    /* Sent as a1: 201, pushed to the customer and to a1's own device. */
    assert_int_equal(call("POST", path, INTEG, as_a1), 201);
    json_int_t seq = json_integer_value(json_object_get(R.json, "seq"));
    json_int_t msg_id = json_integer_value(json_object_get(R.json, "msg_id"));
    assert_true(seq > 2);
    assert_false(json_is_true(json_object_get(R.json, "duplicate")));
    const its_msg *m = its_expect_msg(cu, conv, "a1", "Hello from the CRM");
    assert_non_null(m);
    assert_int_equal(m->seq, seq);
    assert_int_equal(m->msg_id, msg_id);
    its_expect_msg(a1, conv, "a1", "Hello from the CRM");
    /* The same client id again: the same seq, nothing new stored. */
    assert_int_equal(call("POST", path, INTEG, as_a1), 200);
    assert_true(json_is_true(json_object_get(R.json, "duplicate")));
    assert_int_equal(json_integer_value(json_object_get(R.json, "seq")), seq);
    /* A customer message after it keeps the order everywhere. */
    uint64_t after = its_say_ok(cu, conv, "thanks", 0);
    assert_true(after > (uint64_t)seq);
    its_expect_msg(a1, conv, "cu1", "thanks");

    /* History, paged: the newest page, then the one before it. */
    char hpath[256];
    snprintf(hpath, sizeof hpath, "/api/v1/conversations/%llu/messages?limit=2",
             (unsigned long long)conv);
    assert_int_equal(call("GET", hpath, INTEG, NULL), 200);
    json_t *msgs = json_object_get(R.json, "messages");
    assert_int_equal(json_array_size(msgs), 2);
    json_int_t last =
        json_integer_value(json_object_get(json_array_get(msgs, 1), "seq"));
    assert_int_equal(last, after);
    assert_true(json_is_true(json_object_get(R.json, "more")));
    json_int_t before =
        json_integer_value(json_object_get(R.json, "next_before_seq"));
    snprintf(hpath, sizeof hpath,
             "/api/v1/conversations/%llu/messages?limit=2&before_seq=%lld",
             (unsigned long long)conv, (long long)before);
    assert_int_equal(call("GET", hpath, INTEG, NULL), 200);
    json_t *older = json_array_get(json_object_get(R.json, "messages"), 1);
    assert_int_equal(json_integer_value(json_object_get(older, "seq")),
                     before - 1);

    /* Tags, a transfer to a2 (a1 is its agent no more), a close. */
    char p2[256];
    snprintf(p2, sizeof p2, "/api/v1/conversations/%llu/tags",
             (unsigned long long)conv);
    assert_int_equal(call("POST", p2, INTEG, "{\"add\":[\"vip\"]}"), 200);
    call("POST", p2, INTEG, "{\"add\":\"vip\"}");
    expect_error(400, "invalid");
    assert_int_equal(call("GET", "/api/v1/conversations?tag=vip", INTEG, NULL),
                     200);
    assert_int_equal(json_array_size(json_object_get(R.json, "conversations")),
                     1);
    its_dev *a2 = its_connect(&S, "a2", "agent", "a2-desk", "en");
    assert_int_equal(call("POST", tpath, INTEG, "{\"to_agent\":\"a2\"}"), 200);
    its_dev *three[2] = {cu, a2};
    its_expect_state(three, 2, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a2",
                     NULL, 0);
    snprintf(p2, sizeof p2, "/api/v1/conversations/%llu/close",
             (unsigned long long)conv);
    assert_int_equal(call("POST", p2, INTEG, NULL), 200);
    its_expect_state(three, 2, conv, SBP__CONV_STATE__STATE_CLOSED, NULL, NULL,
                     0);
    /* A closed conversation is transferred nowhere. */
    call("POST", tpath, INTEG, "{\"to_agent\":\"a1\"}");
    expect_error(409, "conflict");

    /* The webhooks heard all of it, signed. */
    assert_true(rx_wait("message.created", "Hello from the CRM", 1, 10000));
    assert_true(rx_wait("message.created", "my order is late", 1, 10000));
    assert_true(rx_wait("conversation.assigned", NULL, 1, 10000));
    assert_true(rx_wait("conversation.transferred", "\"a2\"", 1, 10000));
    assert_true(rx_wait("conversation.closed", NULL, 1, 10000));
    /* The duplicate made no second event. */
    it_run_for(&E, 300);
    assert_int_equal(rx_count("message.created", "Hello from the CRM"), 1);
    rx_verify_all();

    /* The desk, read and changed through the API: a2's capacity. */
    assert_int_equal(call("GET", "/api/v1/desk", INTEG, NULL), 200);
    json_t *desk = json_deep_copy(R.json);
    json_t *agents = json_object_get(desk, "agents");
    size_t i;
    json_t *a;
    json_array_foreach(
        agents, i,
        a) if (strcmp(json_string_value(json_object_get(a, "id")), "a2") == 0)
        json_object_set_new(a, "capacity", json_integer(7));
    char *text = json_dumps(desk, JSON_COMPACT);
    json_decref(desk);
    int st = call("PUT", "/api/v1/desk", INTEG, text);
    free(text);
    if (st != 200) fail_msg("desk-set: %s", R.raw);
    assert_int_equal(call("GET", "/api/v1/desk", INTEG, NULL), 200);
    assert_non_null(strstr(R.raw, "\"capacity\":7"));
    rx_stop();
}

/* ---- failing and hanging endpoints --------------------------------------- */

static void test_failed_and_replay(void **state)
{
    (void)state;
    server_start_ex(false, NULL);
    rx_start(RX_FAIL);
    webhooks_set("\"message.created\"", 3);
    it_device *c = it_device_new(&E, "cu5", "customer", "cu5-d");
    it_device *a = it_device_new(&E, "a9", "agent", "a9-d");
    assert_int_equal(it_device_start(c), 0);
    assert_int_equal(it_device_start(a), 0);
    assert_true(it_device_wait_ready(c, 5000) && it_device_wait_ready(a, 5000));
    uint64_t conv = it_open(c, "a9", 5000);
    assert_true(conv > 0);
    assert_int_equal(it_send_n(c, conv, 0, 3, "doomed"), 0);
    it_device *devs[2] = {c, a};
    assert_true(it_wait_surfaced(devs, 2, conv, 3, 10000));
    /* Three events, three attempts each (backoff 100..400 ms), then
     * failed. */
    json_t *failed = NULL;
    int64_t end = harness_now_ms() + 20000;
    while (harness_now_ms() < end) {
        assert_int_equal(call("GET", "/api/v1/webhooks/failed", ADMIN, NULL),
                         200);
        failed = json_object_get(R.json, "failed");
        if (json_array_size(failed) == 3) break;
        it_run_for(&E, 200);
    }
    if (json_array_size(failed) != 3) fail_msg("failed: %s", R.raw);
    json_t *f0 = json_array_get(failed, 0);
    assert_int_equal(json_integer_value(json_object_get(f0, "attempts")), 3);
    assert_string_equal(json_string_value(json_object_get(f0, "last_error")),
                        "HTTP 500");
    assert_string_equal(json_string_value(json_object_get(f0, "endpoint")),
                        "crm");
    assert_true(atomic_load(&RX.requests) >= 9);
    json_int_t first = json_integer_value(json_object_get(f0, "id"));

    /* The same list from sbctl. */
    static char out[1 << 16];
    assert_int_equal(sbctl("webhooks failed", out, sizeof out), 0);
    json_t *list = json_loads(out, 0, NULL);
    if (json_array_size(json_object_get(list, "failed")) != 3)
        fail_msg("sbctl webhooks failed: %s", out);
    json_decref(list);
    assert_non_null(strstr(out, "HTTP 500"));
    assert_int_not_equal(sbctl("webhooks replay x", out, sizeof out), 0);

    /* The endpoint works again: one replayed by id (sbctl), then the rest
     * (the API). */
    atomic_store(&RX.mode, RX_OK);
    char args[64];
    snprintf(args, sizeof args, "webhooks replay %lld", (long long)first);
    assert_int_equal(sbctl(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "{\"replayed\":1}"));
    assert_true(rx_wait("message.created", "doomed#0", 1, 10000));
    assert_int_equal(call("POST", "/api/v1/webhooks/replay", ADMIN, NULL), 200);
    assert_int_equal(json_integer_value(json_object_get(R.json, "replayed")),
                     2);
    assert_true(rx_wait("message.created", "doomed", 3, 10000));
    assert_int_equal(call("GET", "/api/v1/webhooks/failed", ADMIN, NULL), 200);
    assert_int_equal(json_array_size(json_object_get(R.json, "failed")), 0);
    rx_verify_all();
    rx_stop();
}

/* 500 messages each way between two devices; returns the milliseconds
 * from the first send to the last surfaced. */
static int64_t traffic(it_device *c, it_device *a, uint64_t conv, uint64_t base,
                       const char *tag)
{
    int64_t t0 = harness_now_ms();
    assert_int_equal(it_send_n(c, conv, 0, 500, tag), 0);
    assert_int_equal(it_send_n(a, conv, 0, 500, tag), 0);
    it_device *devs[2] = {c, a};
    assert_true(it_wait_sent(devs, 2, 60000));
    assert_true(it_wait_surfaced(devs, 2, conv, base + 1000, 60000));
    return harness_now_ms() - t0;
}

static void test_hanging_endpoint(void **state)
{
    (void)state;
    server_start_ex(false, NULL);
    it_device *c = it_device_new(&E, "cu7", "customer", "cu7-d");
    it_device *a = it_device_new(&E, "a7", "agent", "a7-d");
    assert_int_equal(it_device_start(c), 0);
    assert_int_equal(it_device_start(a), 0);
    assert_true(it_device_wait_ready(c, 5000) && it_device_wait_ready(a, 5000));
    uint64_t conv = it_open(c, "a7", 5000);
    assert_true(conv > 0);
    /* With an endpoint that answers at once, then with one that takes
     * every post and never answers (once it holds posts): the same
     * traffic, the same outbox writes. */
    rx_start(RX_OK);
    webhooks_set("\"message.created\"", 10);
    int64_t plain = traffic(c, a, conv, 0, "plain");
    assert_true(rx_wait("message.created", "plain#499", 2, 20000));
    atomic_store(&RX.mode, RX_HANG);
    atomic_store(&RX.requests, 0);
    traffic(c, a, conv, 1000, "first");
    int64_t end = harness_now_ms() + 10000;
    while (atomic_load(&RX.requests) < 8 && harness_now_ms() < end)
        it_run_for(&E, 20);
    assert_true(atomic_load(&RX.requests) >= 8); /* posts are held */
    int64_t hung = traffic(c, a, conv, 2000, "hung");
    fprintf(stderr,
            "1,000 messages: %lld ms with an endpoint that answers, "
            "%lld ms with one that hangs\n",
            (long long)plain, (long long)hung);
    assert_true(hung < 3 * plain + 3000);
    it_device *devs[2] = {c, a};
    assert_int_equal(it_check_conv(&E, conv, devs, 2, 3000), 0);
    /* The events wait in the outbox: nothing failed yet (10 attempts). */
    assert_int_equal(call("GET", "/api/v1/webhooks/failed", ADMIN, NULL), 200);
    assert_int_equal(json_array_size(json_object_get(R.json, "failed")), 0);
    rx_stop();
}

/* ---- a user's data ---------------------------------------------------------
 */

static void test_export_and_erase(void **state)
{
    (void)state;
    server_start(NULL);
    rx_start(RX_HANG); /* events about cu3 stay in the outbox */
    webhooks_set("\"message.created\"", 10);
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1-desk", "en");
    its_dev *cu = its_connect(&S, "cu3", "customer", "cu3-phone", "en");
    uint64_t conv = its_open_service(cu, NULL);
    uint64_t s1 = its_say_ok(cu, conv, "my address is 1 Elm Street", 0);
    its_say_ok(cu, conv, "human", 0);
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);
    its_say_ok(a1, conv, "noted, thanks", 0);

    assert_int_equal(call("GET", "/api/v1/users/cu3/export", INTEG, NULL), 200);
    assert_int_equal(json_array_size(json_object_get(R.json, "conversations")),
                     1);
    assert_non_null(strstr(R.raw, "1 Elm Street"));
    assert_non_null(strstr(R.raw, "noted, thanks"));
    assert_false(json_is_true(json_object_get(R.json, "truncated")));

    assert_int_equal(call("POST", "/api/v1/users/cu3/erase", INTEG, NULL), 200);
    json_t *er = json_object_get(R.json, "erased");
    assert_int_equal(json_integer_value(json_object_get(er, "message_bodies")),
                     2);
    assert_true(json_integer_value(json_object_get(er, "device_cursors")) >= 0);
    assert_true(json_array_size(json_object_get(R.json, "kept")) >= 1);
    assert_non_null(json_object_get(R.json, "attachments"));

    /* Bodies gone, seqs kept, others' messages kept, search finds
     * nothing, no pending event about cu3 holds its words. */
    char path[256];
    snprintf(path, sizeof path, "/api/v1/conversations/%llu/messages?limit=50",
             (unsigned long long)conv);
    assert_int_equal(call("GET", path, INTEG, NULL), 200);
    assert_null(strstr(R.raw, "Elm Street"));
    assert_non_null(strstr(R.raw, "noted, thanks"));
    json_t *msgs = json_object_get(R.json, "messages");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        assert_int_equal(json_integer_value(json_object_get(m, "seq")), i + 1);
        if ((uint64_t)json_integer_value(json_object_get(m, "seq")) == s1)
            assert_null(json_object_get(m, "body"));
    }
    uint32_t rid;
    int rc = sb_client_search(a1->c, conv, "Elm", 10, &rid);
    its_ans *an = its_wait_ans(a1, rc, rid, "search");
    assert_int_equal(an->err, 0);
    Sbp__SearchResp *sr = sbp__search_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(sr);
    assert_int_equal(sr->n_messages, 0);
    sbp__search_resp__free_unpacked(sr, NULL);
    assert_int_equal(call("GET", "/api/v1/users/cu3/export", INTEG, NULL), 200);
    assert_null(strstr(R.raw, "Elm Street"));
    /* Erasing again finds nothing more. */
    assert_int_equal(call("POST", "/api/v1/users/cu3/erase", INTEG, NULL), 200);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(R.json, "erased"), "message_bodies")),
                     0);
    rx_stop();
}

/* csat.submitted posted with the rating (once: a second rating is
 * refused and posts nothing); reports as JSON and CSV; the rating's
 * comment erased with its customer's data, the rating kept. */
static void test_csat_and_reports(void **state)
{
    (void)state;
    server_start(NULL);
    rx_start(RX_OK);
    webhooks_set("\"csat.submitted\"", 5);
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1-desk", "en");
    its_dev *cu = its_connect(&S, "cu5", "customer", "cu5-phone", "en");
    uint64_t conv = its_open_service(cu, NULL);
    its_say_ok(cu, conv, "human", 0);
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);
    its_say_ok(a1, conv, "How can I help?", 0);
    char path[256];
    snprintf(path, sizeof path, "/api/v1/conversations/%llu/close",
             (unsigned long long)conv);
    assert_int_equal(call("POST", path, INTEG, NULL), 200);
    its_expect_msg(cu, conv, "system", "Please rate this conversation");
    uint32_t rid = 0;
    int rc = sb_client_csat(cu->c, conv, 5, "Great help", &rid);
    assert_int_equal(its_wait_ans(cu, rc, rid, "csat")->err, 0);
    if (!rx_wait("csat.submitted", "\"rating\":5", 1, 10000))
        fail_msg("no csat.submitted event");
    pthread_mutex_lock(&RX.mu);
    json_t *ev = json_loads(RX.ev[0].body, 0, NULL);
    pthread_mutex_unlock(&RX.mu);
    json_t *data = json_object_get(ev, "data");
    assert_int_equal(json_integer_value(json_object_get(data, "conv_id")),
                     conv);
    assert_string_equal(json_string_value(json_object_get(data, "customer")),
                        "cu5");
    assert_string_equal(json_string_value(json_object_get(data, "comment")),
                        "Great help");
    json_decref(ev);
    rx_verify_all();
    /* A second rating is refused and posts nothing. */
    rc = sb_client_csat(cu->c, conv, 1, NULL, &rid);
    assert_int_equal(its_wait_ans(cu, rc, rid, "csat")->err, SB_E_ALREADY);
    it_run_for(&E, 500);
    assert_int_equal(rx_count("csat.submitted", NULL), 1);

    /* Reports, for an integration's token: JSON, then CSV. */
    char day[11], q[256];
    sb_tz_date_format(sb_tz_day_of((int64_t)time(NULL)), day);
    snprintf(q, sizeof q, "/api/v1/reports?from=%s&by=agent", day);
    assert_int_equal(call("GET", q, INTEG, NULL), 200);
    json_t *row = json_array_get(json_object_get(R.json, "rows"), 0);
    assert_string_equal(json_string_value(json_object_get(row, "agent")), "a1");
    assert_int_equal(json_integer_value(json_object_get(row, "conversations")),
                     1);
    assert_int_equal(json_integer_value(json_object_get(row, "csat_responses")),
                     1);
    assert_true(json_real_value(json_object_get(row, "csat_average")) == 5.0);
    assert_string_equal(json_string_value(json_object_get(R.json, "tz")),
                        "UTC");
    /* Berlin's today, which is UTC's tomorrow from 23:00 or 22:00 UTC. */
    sb_tz *berlin = NULL;
    assert_int_equal(sb_tz_load("Europe/Berlin", &berlin), 0);
    int64_t now = (int64_t)time(NULL);
    char bday[11];
    sb_tz_date_format(sb_tz_day_of(now + sb_tz_offset(berlin, now)), bday);
    sb_tz_free(berlin);
    snprintf(q, sizeof q,
             "/api/v1/reports?from=%s&to=%s&tz=Europe%%2FBerlin&by=agent"
             "&format=csv",
             bday, bday);
    assert_int_equal(call("GET", q, ADMIN, NULL), 200);
    assert_non_null(strcasestr(R.raw, "Content-Type: text/csv"));
    assert_non_null(strstr(R.raw, "\r\n\r\nagent,conversations,closed,"));
    assert_non_null(strstr(R.raw, "\r\na1,"));
    assert_non_null(strstr(R.raw, ",1,1,5.0000,1.0000\r\n*,"));
    /* Refusals: the reason, the status. */
    snprintf(q, sizeof q, "/api/v1/reports?from=%s&tz=Mars%%2FOlympus", day);
    call("GET", q, INTEG, NULL);
    expect_error(400, "invalid");
    assert_non_null(strstr(R.raw, "Mars/Olympus"));
    call("GET", "/api/v1/reports?by=agent", INTEG, NULL);
    expect_error(400, "invalid");
    call("GET", "/api/v1/reports?from=2027-01-01&format=xml", INTEG, NULL);
    expect_error(400, "invalid");
    call("GET", "/api/v1/reports?from=2027-01-01&by=week", INTEG, NULL);
    expect_error(400, "invalid");
    call("GET", "/api/v1/reports?from=2027-01-01",
         harness_token("a1", "agent", 3600), NULL);
    expect_error(403, "forbidden");

    /* Erasing the customer empties the comment; the rating stays. */
    assert_int_equal(call("POST", "/api/v1/users/cu5/erase", INTEG, NULL), 200);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(R.json, "erased"), "rating_comments")),
                     1);
    snprintf(path, sizeof path, "/api/v1/conversations/%llu",
             (unsigned long long)conv);
    assert_int_equal(call("GET", path, INTEG, NULL), 200);
    assert_int_equal(json_integer_value(json_object_get(R.json, "csat_rating")),
                     5);
    assert_null(strstr(R.raw, "Great help"));
    rx_stop();
}

/* ---- notes and contacts ------------------------------------------------
 */

/* Private notes over REST: written as the conversation's agent (made on
 * demand, idempotent), read back, never listed as a conversation, never
 * in the customer's export, told as note.created and never as
 * message.created; a writer who is no member refused. Contacts: read,
 * changed, refused for an agent's id and bad fields, in the export, gone
 * with the erasure. */
static void test_notes_and_contacts(void **state)
{
    (void)state;
    server_start(NULL);
    rx_start(RX_OK);
    webhooks_set("\"*\"", 5);
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1-desk", "en");
    its_dev *cu = its_connect(&S, "cu4", "customer", "cu4-phone", "en");
    uint64_t conv = its_open_service(cu, NULL);
    its_say_ok(cu, conv, "human", 0);
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);
    its_say_ok(a1, conv, "hello from a1", 0);
    char path[256];
    snprintf(path, sizeof path, "/api/v1/conversations/%llu/notes",
             (unsigned long long)conv);
    /* None yet: an empty page. */
    assert_int_equal(call("GET", path, INTEG, NULL), 200);
    assert_int_equal(json_array_size(json_object_get(R.json, "messages")), 0);
    const char *note =
        "{\"client_msg_id\":\"5b0c66a1-3a7e-4d8c-9d3e-0f1e2d3c4b5a\","
        "\"body\":\"vip-note-7731 handle with care @a2\","
        "\"as\":{\"user\":\"a1\",\"role\":\"agent\"}}";
    assert_int_equal(call("POST", path, INTEG, note), 201);
    json_int_t notes_id =
        json_integer_value(json_object_get(R.json, "conv_id"));
    assert_true(notes_id > 0 && (uint64_t)notes_id != conv);
    assert_int_equal(json_integer_value(json_object_get(R.json, "seq")), 1);
    /* Again: the same note. */
    assert_int_equal(call("POST", path, INTEG, note), 200);
    assert_true(json_is_true(json_object_get(R.json, "duplicate")));
    /* A writer who is no member of the conversation, a bot: refused. */
    call("POST", path, INTEG,
         "{\"client_msg_id\":\"00000000000000000000000000000001\","
         "\"body\":\"x\",\"as\":{\"user\":\"a2\",\"role\":\"agent\"}}");
    expect_error(403, "forbidden");
    call("POST", path, INTEG,
         "{\"client_msg_id\":\"00000000000000000000000000000002\","
         "\"body\":\"x\",\"as\":{\"user\":\"b\",\"role\":\"bot\"}}");
    expect_error(400, "invalid");
    /* Read back, as the notes and as the notes conversation's messages. */
    assert_int_equal(call("GET", path, INTEG, NULL), 200);
    assert_int_equal(json_array_size(json_object_get(R.json, "messages")), 1);
    assert_non_null(strstr(R.raw, "vip-note-7731"));
    char npath[256];
    snprintf(npath, sizeof npath, "/api/v1/conversations/%lld/messages",
             (long long)notes_id);
    assert_int_equal(call("GET", npath, INTEG, NULL), 200);
    assert_non_null(strstr(R.raw, "vip-note-7731"));
    /* Of a conversation that is no service one: refused. */
    snprintf(npath, sizeof npath, "/api/v1/conversations/%lld/notes",
             (long long)notes_id);
    call("GET", npath, INTEG, NULL);
    expect_error(400, "invalid");
    /* Not listed as a conversation. */
    assert_int_equal(call("GET", "/api/v1/conversations?limit=50", INTEG, NULL),
                     200);
    assert_null(strstr(R.raw, "vip-note-7731"));
    json_t *cs = json_object_get(R.json, "conversations");
    size_t i;
    json_t *c;
    json_array_foreach(cs, i, c)
    {
        assert_int_not_equal(json_integer_value(json_object_get(c, "conv_id")),
                             notes_id);
    }
    /* The customer's export holds none of it. */
    assert_int_equal(call("GET", "/api/v1/users/cu4/export", INTEG, NULL), 200);
    assert_non_null(strstr(R.raw, "hello from a1"));
    assert_null(strstr(R.raw, "vip-note-7731"));
    assert_true(json_is_null(json_object_get(R.json, "contact")));
    /* note.created, never message.created. */
    assert_true(rx_wait("message.created", "hello from a1", 1, 10000));
    assert_true(rx_wait("note.created", "vip-note-7731", 1, 10000));
    it_run_for(&E, 300);
    assert_int_equal(rx_count("message.created", "vip-note-7731"), 0);
    assert_int_equal(rx_count("note.created", "vip-note-7731"), 1);

    /* Contacts. */
    assert_int_equal(call("GET", "/api/v1/contacts/cu4", INTEG, NULL), 200);
    json_t *ct = json_object_get(R.json, "contact");
    assert_string_equal(json_string_value(json_object_get(ct, "user_id")),
                        "cu4");
    assert_null(json_object_get(ct, "name"));
    assert_int_equal(json_array_size(json_object_get(R.json, "conversations")),
                     1);
    assert_int_equal(call("PUT", "/api/v1/contacts/cu4", INTEG,
                          "{\"name\":\"Cu Four\",\"email\":\"cu4@example.org\","
                          "\"attributes\":{\"plan\":\"gold\"}}"),
                     200);
    ct = json_object_get(R.json, "contact");
    assert_string_equal(json_string_value(json_object_get(ct, "name")),
                        "Cu Four");
    assert_string_equal(json_string_value(json_object_get(ct, "updated_by")),
                        "crm");
    assert_non_null(strstr(R.raw, "\"gold\""));
    assert_int_equal(
        call("PUT", "/api/v1/contacts/cu4", INTEG,
             "{\"clear\":[\"email\"],\"attributes\":{\"plan\":\"\"}}"),
        200);
    assert_null(strstr(R.raw, "gold"));
    assert_null(strstr(R.raw, "cu4@example.org"));
    call("PUT", "/api/v1/contacts/cu4", INTEG, "{\"email\":\"nope\"}");
    expect_error(400, "invalid");
    call("PUT", "/api/v1/contacts/cu4", INTEG, "{\"attributes\":[1]}");
    expect_error(400, "invalid");
    call("PUT", "/api/v1/contacts/a1", INTEG, "{\"name\":\"Agent\"}");
    expect_error(403, "forbidden");
    call("GET", "/api/v1/contacts/nobody", INTEG, NULL);
    expect_error(404, "not_found");
    assert_int_equal(call("GET", "/api/v1/users/cu4/export", INTEG, NULL), 200);
    ct = json_object_get(R.json, "contact");
    assert_string_equal(json_string_value(json_object_get(ct, "name")),
                        "Cu Four");
    assert_int_equal(call("POST", "/api/v1/users/cu4/erase", INTEG, NULL), 200);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(R.json, "erased"), "contacts")),
                     1);
    assert_int_equal(call("GET", "/api/v1/contacts/cu4", INTEG, NULL), 200);
    assert_null(strstr(R.raw, "Cu Four"));
    rx_verify_all();
    rx_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_auth_and_errors, teardown),
        cmocka_unit_test_teardown(test_conversations_and_webhooks, teardown),
        cmocka_unit_test_teardown(test_failed_and_replay, teardown),
        cmocka_unit_test_teardown(test_hanging_endpoint, teardown),
        cmocka_unit_test_teardown(test_export_and_erase, teardown),
        cmocka_unit_test_teardown(test_csat_and_reports, teardown),
        cmocka_unit_test_teardown(test_notes_and_contacts, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
