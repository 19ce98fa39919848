/* integ_bad_input: hostile and broken clients, and I5.
 *
 * While a well-behaved SDK pair (carol, customer; dave, agent) chats on a
 * background thread, raw clients on the main thread send, each on its own
 * connection: forged, expired, alg-none and garbage tokens; requests on a
 * conversation the user is not in; WebSocket messages over the limit
 * (whole and fragmented); undecodable protobuf; malformed JSON; invalid
 * UTF-8; frame kinds a client may not send; bodies over the limit; bad
 * fields; requests before HELLO; a second HELLO; a flood of bad frames;
 * an unmasked frame; HTTP garbage. Each gets its error code or clean
 * close. At the end the pair has everything, in order, exactly once,
 * without ever having been disconnected, and /healthz still answers 200. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "itest.h"
#include "sb_b64.h"
#include "sb_token.h"

#define WAIT_MS 10000
#define PAIR_MAX 3000 /* messages per side at most */

enum {
    ERR_BAD_FRAME = 1,
    ERR_UNKNOWN_TYPE = 2,
    ERR_UNAUTHENTICATED = 3,
    ERR_BAD_TOKEN = 4,
    ERR_TOKEN_EXPIRED = 5,
    ERR_FORBIDDEN = 6,
    ERR_NOT_FOUND = 7,
    ERR_TOO_LARGE = 8,
    ERR_BAD_UTF8 = 9,
    ERR_INVALID = 10,
    ERR_ALREADY = 16,
};

static it_env E; /* main thread: the server */

/* ---- the well-behaved pair, on its own thread and loop ------------------ */

static it_pair P;

static void pair_start(void)
{
    memset(&P, 0, sizeof P);
    P.cust = "carol";
    P.agent = "dave";
    P.interval_ms = 25; /* 40 messages/s each: under the SEND rate */
    P.max_sends = PAIR_MAX;
    assert_int_equal(it_pair_start(&P, &E, WAIT_MS), 0);
}

static void pair_stop(void)
{
    it_pair_stop(&P);
}

static int teardown(void **state)
{
    (void)state;
    pair_stop();
    it_env_free(&E);
    return 0;
}

/* ---- raw helpers -----------------------------------------------------------
 */

static void raw_open(it_raw *r, sb_encoding enc)
{
    assert_int_equal(it_raw_open(r, E.srv.port, enc, NULL), 0);
}

static void raw_hello(it_raw *r, sb_encoding enc, const char *user,
                      const char *role, const char *dev)
{
    raw_open(r, enc);
    assert_int_equal(
        it_raw_hello(r, harness_token(user, role, 3600), dev, WAIT_MS), 0);
}

/* The next ERROR (skipping other frames) must have code, and rid unless 0. */
static void expect_error(it_raw *r, uint32_t rid, int code, const char *what)
{
    Sbp__Frame *f = it_raw_expect(r, SBP__FRAME__BODY_ERROR, 0, WAIT_MS);
    if (!f)
        fail_msg("%s: no ERROR frame (connection ended: %d, close code %d)",
                 what, r->eof, r->tap_close);
    int got = (int)f->error->code;
    uint32_t grid = f->rid;
    sb_frame_free(f);
    if (got != code || (rid && grid != rid))
        fail_msg("%s: ERROR code %d rid %u, expected code %d rid %u", what, got,
                 grid, code, rid);
}

static void expect_close(it_raw *r, int code, const char *what)
{
    int got = it_raw_wait_close(r, WAIT_MS);
    if (got != code) fail_msg("%s: close %d, expected %d", what, got, code);
    /* And the server drops the connection. */
    int64_t deadline = harness_now_ms() + WAIT_MS;
    while (!r->eof && harness_now_ms() < deadline) {
        Sbp__Frame *f = it_raw_recv(r, 50);
        if (f) sb_frame_free(f);
    }
    if (!r->eof) fail_msg("%s: connection not closed", what);
}

/* The session still answers: SYNC gets a SYNC_RESP. */
static void expect_alive(it_raw *r, const char *what)
{
    Sbp__Sync s = SBP__SYNC__INIT;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_SYNC;
    f.sync = &s;
    uint32_t rid = it_raw_send(r, &f);
    Sbp__Frame *g = it_raw_expect(r, SBP__FRAME__BODY_SYNC_RESP, rid, WAIT_MS);
    if (!g) fail_msg("%s: session no longer answers", what);
    sb_frame_free(g);
}

static void hello_refused(const char *token, int code, const char *what)
{
    it_raw r;
    raw_open(&r, SB_ENC_PROTO);
    int rc = it_raw_hello(&r, token, "eve-d1", WAIT_MS);
    if (rc != code)
        fail_msg("%s: HELLO answered %d, expected %d", what, rc, code);
    expect_close(&r, SB_WS_CLOSE_POLICY, what);
    it_raw_close(&r);
}

static void b64url_json(const char *json, char *out)
{
    sb_b64_encode((const uint8_t *)json, strlen(json), out, 1);
}

/* A masked client frame, built by hand: fin, opcode, payload. */
static size_t ws_frame(uint8_t *out, bool fin, uint8_t opcode, const uint8_t *p,
                       size_t n)
{
    size_t k = 0;
    out[k++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        out[k++] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        out[k++] = 0x80 | 126;
        out[k++] = (uint8_t)(n >> 8);
        out[k++] = (uint8_t)n;
    } else {
        out[k++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[k++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(out + k, mask, 4);
    k += 4;
    for (size_t i = 0; i < n; i++)
        out[k + i] = p[i] ^ mask[i & 3];
    return k + n;
}

static uint32_t send_json(it_raw *r, const char *text)
{
    assert_int_equal(it_raw_send_ws(r, true, text, strlen(text)), 0);
    return 0;
}

/* ---- the test
 * ----------------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    /* Pin the SEND rate limit where the server has one. */
    bool rate = it_server_has_option("--sends-per-s");
    const char *limits[] = {"--sends-per-s", "50", "--send-burst", "20", NULL};
    assert_int_equal(it_server_start(&E, rate ? limits : NULL), 0);
    pair_start();
    int64_t t_pair = harness_now_ms();
    uint64_t pconv = it_pair_conv(&P);
    int cases = 0;
    it_raw r;
    char tok[2048];
    const char *json_utf8 = "?";
    int surrogate_code = 0;

    /* 1. Tokens. */
    {
        sb_claims c;
        memset(&c, 0, sizeof c);
        snprintf(c.sub, sizeof c.sub, "eve");
        c.role = SBP__ROLE__ROLE_ADMIN;
        c.exp = (int64_t)time(NULL) + 3600;
        const char *wrong = "not-the-server-secret";
        assert_true(sb_token_sign((const uint8_t *)wrong, strlen(wrong), &c,
                                  tok, sizeof tok) > 0);
        hello_refused(tok, ERR_BAD_TOKEN, "token signed with another secret");
        cases++;
        /* A valid token with one signature byte changed. */
        snprintf(tok, sizeof tok, "%s", harness_token("eve", "admin", 3600));
        char *last = tok + strlen(tok) - 2;
        *last = *last == 'A' ? 'B' : 'A';
        hello_refused(tok, ERR_BAD_TOKEN, "tampered signature");
        cases++;
        hello_refused(harness_token("eve", "customer", -3600),
                      ERR_TOKEN_EXPIRED, "expired token");
        cases++;
        char h[256], p[256];
        char payload[200];
        snprintf(payload, sizeof payload,
                 "{\"exp\":%lld,\"role\":\"admin\",\"sub\":\"eve\"}",
                 (long long)time(NULL) + 3600);
        b64url_json("{\"alg\":\"none\",\"typ\":\"JWT\"}", h);
        b64url_json(payload, p);
        snprintf(tok, sizeof tok, "%s.%s.", h, p);
        hello_refused(tok, ERR_BAD_TOKEN, "alg none");
        cases++;
        b64url_json("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", h);
        snprintf(tok, sizeof tok, "%s.%s.%s", h, p,
                 strrchr(harness_token("eve", "admin", 3600), '.') + 1);
        hello_refused(tok, ERR_BAD_TOKEN, "alg HS512");
        cases++;
        hello_refused("garbage", ERR_BAD_TOKEN, "garbage token");
        cases++;
        hello_refused("a.b.c", ERR_BAD_TOKEN, "three garbage parts");
        cases++;
    }

    /* 2. Isolation (I5): eve (customer) and mallory (agent) are not in
     * the pair's conversation. */
    raw_hello(&r, SB_ENC_PROTO, "eve", "customer", "eve-d1");
    uint8_t cmid[16];
    memset(cmid, 0xEE, sizeof cmid);
    uint32_t rid = it_raw_send_msg(&r, cmid, pconv, "let me in");
    expect_error(&r, rid, ERR_FORBIDDEN, "SEND to another's conversation");
    Sbp__History h = SBP__HISTORY__INIT;
    h.conv_id = pconv;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_HISTORY;
    f.history = &h;
    rid = it_raw_send(&r, &f);
    expect_error(&r, rid, ERR_FORBIDDEN, "HISTORY of another's conversation");
    Sbp__Ack ak = SBP__ACK__INIT;
    ak.conv_id = pconv;
    ak.seq = 1;
    f.body_case = SBP__FRAME__BODY_ACK;
    f.ack = &ak;
    f.rid = 0;
    rid = it_raw_send(&r, &f);
    expect_error(&r, rid, ERR_FORBIDDEN, "ACK in another's conversation");
    Sbp__Read rd = SBP__READ__INIT;
    rd.conv_id = pconv;
    rd.seq = 1;
    f.body_case = SBP__FRAME__BODY_READ;
    f.read = &rd;
    f.rid = 0;
    rid = it_raw_send(&r, &f);
    expect_error(&r, rid, ERR_FORBIDDEN, "READ in another's conversation");
    rid = it_raw_send_msg(&r, cmid, 987654321, "nowhere");
    expect_error(&r, rid, ERR_NOT_FOUND, "SEND to no conversation");
    /* SYNC without cursors shows nothing of the pair's conversation. */
    {
        Sbp__Sync s = SBP__SYNC__INIT;
        f.body_case = SBP__FRAME__BODY_SYNC;
        f.sync = &s;
        f.rid = 0;
        rid = it_raw_send(&r, &f);
        Sbp__Frame *g =
            it_raw_expect(&r, SBP__FRAME__BODY_SYNC_RESP, rid, WAIT_MS);
        assert_non_null(g);
        for (size_t i = 0; i < g->sync_resp->n_messages; i++)
            assert_true(g->sync_resp->messages[i]->conv_id != pconv);
        for (size_t i = 0; i < g->sync_resp->n_convs; i++)
            assert_true(g->sync_resp->convs[i]->conv_id != pconv);
        sb_frame_free(g);
        /* A cursor naming the pair's conversation gives nothing either. */
        Sbp__Cursor cu = SBP__CURSOR__INIT;
        cu.conv_id = pconv;
        Sbp__Cursor *cup[1] = {&cu};
        s.n_cursors = 1;
        s.cursors = cup;
        f.rid = 0;
        rid = it_raw_send(&r, &f);
        g = it_raw_expect(&r, SBP__FRAME__BODY_SYNC_RESP, rid, WAIT_MS);
        assert_non_null(g);
        for (size_t i = 0; i < g->sync_resp->n_messages; i++)
            assert_true(g->sync_resp->messages[i]->conv_id != pconv);
        sb_frame_free(g);
    }
    /* A customer may not open with another customer. */
    char *mem[1] = {(char *)"carol"};
    Sbp__Open op = SBP__OPEN__INIT;
    op.n_members = 1;
    op.members = mem;
    f.body_case = SBP__FRAME__BODY_OPEN;
    f.open = &op;
    f.rid = 0;
    rid = it_raw_send(&r, &f);
    expect_error(&r, rid, ERR_FORBIDDEN, "customer opening with a customer");
    /* ... or with a user the server has never met, who could connect as a
     * customer later. */
    mem[0] = (char *)"ghost-never-seen";
    f.rid = 0;
    rid = it_raw_send(&r, &f);
    expect_error(&r, rid, ERR_NOT_FOUND, "customer opening with an unknown id");
    /* eve's own conversation with dave, for the cases below. */
    mem[0] = (char *)"dave";
    f.rid = 0;
    rid = it_raw_send(&r, &f);
    Sbp__Frame *g = it_raw_expect(&r, SBP__FRAME__BODY_OPEN_RESP, rid, WAIT_MS);
    assert_non_null(g);
    uint64_t econv = g->open_resp->conv->conv_id;
    sb_frame_free(g);
    expect_alive(&r, "after refusals");
    it_raw_close(&r);
    cases += 8;

    raw_hello(&r, SB_ENC_PROTO, "mallory", "agent", "mallory-d1");
    rid = it_raw_send_msg(&r, cmid, pconv, "an agent, but not this one's");
    expect_error(&r, rid, ERR_FORBIDDEN, "agent not a member");
    it_raw_close(&r);
    cases++;

    /* 3. Bad fields and kinds on a protobuf session. */
    raw_hello(&r, SB_ENC_PROTO, "eve", "customer", "eve-d2");
    {
        uint8_t junk[64];
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (uint8_t)(0xFF - i);
        assert_int_equal(it_raw_send_ws(&r, false, junk, sizeof junk), 0);
        expect_error(&r, 0, ERR_BAD_FRAME, "undecodable protobuf");
        cases++;
        /* A text message on a protobuf session is not a frame either. */
        assert_int_equal(it_raw_send_ws(&r, true, "{\"rid\":1}", 9), 0);
        expect_error(&r, 0, ERR_BAD_FRAME, "JSON on a protobuf session");
        cases++;
        /* A NUL in a protobuf body: refused, never cut short at it. */
        {
            Sbp__Send sd = SBP__SEND__INIT;
            sd.client_msg_id.data = cmid;
            sd.client_msg_id.len = sizeof cmid;
            sd.conv_id = econv;
            sd.body = "nul ? inside";
            Sbp__Frame sf = SBP__FRAME__INIT;
            sf.rid = 77;
            sf.body_case = SBP__FRAME__BODY_SEND;
            sf.send = &sd;
            sb_buf b = SB_BUF_INIT;
            assert_int_equal(sb_frame_encode(SB_ENC_PROTO, &sf, &b), 0);
            *(uint8_t *)memchr(b.data, '?', b.len) = 0;
            assert_int_equal(it_raw_send_ws(&r, false, b.data, b.len), 0);
            sb_buf_free(&b);
            expect_error(&r, 77, ERR_BAD_UTF8, "NUL in a protobuf body");
            cases++;
        }
        /* Invalid UTF-8 in a protobuf string. */
        rid = it_raw_send_msg(&r, cmid, econv, "bad \xC3\x28 utf8 \xFF");
        expect_error(&r, rid, ERR_BAD_UTF8, "invalid UTF-8 body (protobuf)");
        cases++;
        /* Overlong encoding and a surrogate. */
        rid = it_raw_send_msg(&r, cmid, econv, "\xC0\xAF and \xED\xA0\x80");
        expect_error(&r, rid, ERR_BAD_UTF8, "overlong / surrogate UTF-8");
        cases++;
        /* A frame kind the client may not send. */
        Sbp__Welcome w = SBP__WELCOME__INIT;
        w.user_id = (char *)"eve";
        Sbp__Frame wf = SBP__FRAME__INIT;
        wf.body_case = SBP__FRAME__BODY_WELCOME;
        wf.welcome = &w;
        rid = it_raw_send(&r, &wf);
        expect_error(&r, rid, ERR_UNKNOWN_TYPE, "client sent a WELCOME");
        Sbp__Push pu = SBP__PUSH__INIT;
        wf.body_case = SBP__FRAME__BODY_PUSH;
        wf.push = &pu;
        wf.rid = 0;
        rid = it_raw_send(&r, &wf);
        expect_error(&r, rid, ERR_UNKNOWN_TYPE, "client sent a PUSH");
        wf.body_case = SBP__FRAME__BODY__NOT_SET;
        wf.rid = 0;
        rid = it_raw_send(&r, &wf);
        expect_error(&r, rid, ERR_UNKNOWN_TYPE, "frame with no body");
        cases += 3;
        /* Body over 8192 bytes. */
        char *big = malloc(8194);
        assert_non_null(big);
        memset(big, 'x', 8193);
        big[8193] = '\0';
        rid = it_raw_send_msg(&r, cmid, econv, big);
        expect_error(&r, rid, ERR_TOO_LARGE, "body of 8193 bytes");
        big[8192] = '\0'; /* exactly the limit is fine */
        uint8_t okid[16];
        memset(okid, 0x42, sizeof okid);
        rid = it_raw_send_msg(&r, okid, econv, big);
        g = it_raw_expect(&r, SBP__FRAME__BODY_SEND_ACK, rid, WAIT_MS);
        assert_non_null(g);
        sb_frame_free(g);
        free(big);
        cases += 2;
        /* client_msg_id of the wrong size, conv_id 0, a server-only type. */
        Sbp__Send s = SBP__SEND__INIT;
        s.client_msg_id.data = cmid;
        s.client_msg_id.len = 15;
        s.conv_id = econv;
        s.body = (char *)"short id";
        Sbp__Frame sf = SBP__FRAME__INIT;
        sf.body_case = SBP__FRAME__BODY_SEND;
        sf.send = &s;
        rid = it_raw_send(&r, &sf);
        expect_error(&r, rid, ERR_INVALID, "client_msg_id of 15 bytes");
        s.client_msg_id.len = 16;
        s.conv_id = 0;
        sf.rid = 0;
        rid = it_raw_send(&r, &sf);
        expect_error(&r, rid, ERR_INVALID, "conv_id 0");
        s.conv_id = econv;
        s.type = SBP__MSG_TYPE__MSG_SYSTEM;
        sf.rid = 0;
        rid = it_raw_send(&r, &sf);
        expect_error(&r, rid, ERR_INVALID, "customer sending MSG_SYSTEM");
        s.type = SBP__MSG_TYPE__MSG_ROBOT;
        sf.rid = 0;
        rid = it_raw_send(&r, &sf);
        expect_error(&r, rid, ERR_INVALID, "customer sending MSG_ROBOT");
        s.type = (Sbp__MsgType)99;
        sf.rid = 0;
        rid = it_raw_send(&r, &sf);
        expect_error(&r, rid, ERR_INVALID, "unknown message type");
        cases += 5;
        /* A second HELLO. */
        assert_int_equal(it_raw_hello(&r,
                                      harness_token("eve", "customer", 3600),
                                      "eve-d2", WAIT_MS),
                         ERR_ALREADY);
        cases++;
        expect_alive(&r, "after bad frames");
    }
    it_raw_close(&r);

    /* 3b. A flood of SENDs: over the rate, ERR_RATE_LIMITED (retryable)
     * for those, with their client_msg_id; the session lives on. */
    int limited = -1;
    if (rate) {
        raw_hello(&r, SB_ENC_PROTO, "eve", "customer", "eve-flood");
        enum { FLOOD = 120 };
        uint8_t fid[16];
        for (int i = 0; i < FLOOD; i++) {
            memset(fid, 0xF0, sizeof fid);
            fid[0] = (uint8_t)i;
            assert_true(it_raw_send_msg(&r, fid, econv, "flood") != 0);
        }
        int answers = 0, acks = 0, other = 0;
        limited = 0;
        int64_t deadline = harness_now_ms() + WAIT_MS;
        while (answers < FLOOD && harness_now_ms() < deadline) {
            Sbp__Frame *a = it_raw_recv(&r, 100);
            if (!a) {
                assert_false(r.eof);
                continue;
            }
            if (a->body_case == SBP__FRAME__BODY_SEND_ACK) {
                answers++;
                acks++;
            } else if (a->body_case == SBP__FRAME__BODY_ERROR) {
                answers++;
                assert_int_equal(a->error->client_msg_id.len, 16);
                if (a->error->code == SBP__ERROR_CODE__ERR_RATE_LIMITED)
                    limited++;
                else if (a->error->code !=
                         SBP__ERROR_CODE__ERR_TOO_MANY_PENDING)
                    other++;
            }
            sb_frame_free(a);
        }
        assert_int_equal(answers, FLOOD);
        assert_int_equal(other, 0);
        assert_true(limited > 0);
        assert_true(acks >= 20); /* the burst */
        expect_alive(&r, "after a flood of SENDs");
        it_raw_close(&r);
        cases++;
    }

    /* 4. A JSON session. */
    raw_hello(&r, SB_ENC_JSON, "eve", "customer", "eve-d3");
    {
        char buf[256];
        send_json(&r, "{\"rid\":1,\"send\":{\"conv_id\":");
        expect_error(&r, 0, ERR_BAD_FRAME, "malformed JSON");
        send_json(&r, "[1,2,3]");
        expect_error(&r, 0, ERR_BAD_FRAME, "JSON that is not an object");
        char cid[32];
        sb_b64_encode(cmid, 16, cid, 0);
        /* Invalid UTF-8 by escape: a lone surrogate. The text is UTF-8;
         * the string it denotes is not. */
        snprintf(
            buf, sizeof buf,
            "{\"rid\":5,\"send\":{\"client_msg_id\":\"%s\",\"conv_id\":%llu,"
            "\"body\":\"bad \\ud800 surrogate\"}}",
            cid, (unsigned long long)econv);
        send_json(&r, buf);
        {
            Sbp__Frame *e =
                it_raw_expect(&r, SBP__FRAME__BODY_ERROR, 0, WAIT_MS);
            if (!e) fail_msg("lone surrogate in JSON: no ERROR");
            int code = (int)e->error->code;
            sb_frame_free(e);
            if (code != ERR_BAD_UTF8 && code != ERR_BAD_FRAME)
                fail_msg("lone surrogate in JSON: ERROR %d", code);
            surrogate_code = code;
        }
        send_json(&r, "{\"rid\":6,\"welcome\":{\"user_id\":\"eve\"}}");
        expect_error(&r, 6, ERR_UNKNOWN_TYPE, "JSON welcome from a client");
        send_json(&r, "{\"rid\":7,\"no_such_kind\":{}}");
        expect_error(&r, 7, ERR_UNKNOWN_TYPE, "JSON frame of no known kind");
        /* Body over the limit. */
        size_t n = 8300 + 200;
        char *big = malloc(n);
        assert_non_null(big);
        int k = snprintf(big, n,
                         "{\"rid\":8,\"send\":{\"client_msg_id\":\"%s\","
                         "\"conv_id\":%llu,\"body\":\"",
                         cid, (unsigned long long)econv);
        memset(big + k, 'y', 8200);
        k += 8200;
        snprintf(big + k, n - (size_t)k, "\"}}");
        send_json(&r, big);
        expect_error(&r, 8, ERR_TOO_LARGE, "JSON body of 8200 bytes");
        free(big);
        /* A JSON body with \u0000: a string may not contain NUL, refused
         * as in protobuf. */
        snprintf(
            buf, sizeof buf,
            "{\"rid\":10,\"send\":{\"client_msg_id\":\"%s\",\"conv_id\":%llu,"
            "\"body\":\"nul \\u0000 inside\"}}",
            cid, (unsigned long long)econv);
        send_json(&r, buf);
        expect_error(&r, 10, ERR_BAD_UTF8, "NUL in a JSON body");
        /* A binary message is not a frame of a JSON session. */
        const uint8_t pb[] = {0x08, 0x07, 0x62, 0x02, 0x08, 0x01};
        assert_int_equal(it_raw_send_ws(&r, false, pb, sizeof pb), 0);
        expect_error(&r, 0, ERR_BAD_FRAME, "binary message on a JSON session");
        cases++;
        /* And a good one still works. */
        snprintf(
            buf, sizeof buf,
            "{\"rid\":9,\"send\":{\"client_msg_id\":\"%s\",\"conv_id\":%llu,"
            "\"type\":\"MSG_TEXT\",\"body\":\"fine \\u00e9\"}}",
            cid, (unsigned long long)econv);
        send_json(&r, buf);
        g = it_raw_expect(&r, SBP__FRAME__BODY_SEND_ACK, 9, WAIT_MS);
        assert_non_null(g);
        sb_frame_free(g);
        cases += 8;
        /* Raw invalid UTF-8 in a text message: the WebSocket layer fails
         * the connection with 1007 (RFC 6455 8.1) before any frame is
         * decoded, so there is no ERR_BAD_UTF8 to give. */
        snprintf(
            buf, sizeof buf,
            "{\"rid\":11,\"send\":{\"client_msg_id\":\"%s\",\"conv_id\":%llu,"
            "\"body\":\"bad \xFF\xFE utf8\"}}",
            cid, (unsigned long long)econv);
        send_json(&r, buf);
        Sbp__Frame *e = it_raw_expect(&r, SBP__FRAME__BODY_ERROR, 0, 2000);
        if (e) {
            /* An ERR_BAD_UTF8 answer is what protocol.md promises. */
            assert_int_equal(e->error->code, ERR_BAD_UTF8);
            sb_frame_free(e);
            json_utf8 = "ERR_BAD_UTF8";
        } else {
            expect_close(&r, 1007, "raw invalid UTF-8 in a JSON text message");
            json_utf8 = "close 1007";
        }
        cases++;
    }
    it_raw_close(&r);

    /* 5. Before HELLO. */
    raw_open(&r, SB_ENC_PROTO);
    {
        Sbp__Sync s = SBP__SYNC__INIT;
        f.body_case = SBP__FRAME__BODY_SYNC;
        f.sync = &s;
        f.rid = 0;
        rid = it_raw_send(&r, &f);
        expect_error(&r, rid, ERR_UNAUTHENTICATED, "SYNC before HELLO");
        expect_close(&r, SB_WS_CLOSE_POLICY, "SYNC before HELLO");
    }
    it_raw_close(&r);
    raw_open(&r, SB_ENC_PROTO);
    rid = it_raw_send_msg(&r, cmid, pconv, "who am I");
    expect_error(&r, rid, ERR_UNAUTHENTICATED, "SEND before HELLO");
    expect_close(&r, SB_WS_CLOSE_POLICY, "SEND before HELLO");
    it_raw_close(&r);
    raw_open(&r, SB_ENC_PROTO);
    {
        uint8_t junk[3] = {0xFF, 0xFF, 0xFF};
        assert_int_equal(it_raw_send_ws(&r, false, junk, 3), 0);
        expect_error(&r, 0, ERR_BAD_FRAME, "garbage before HELLO");
        expect_close(&r, SB_WS_CLOSE_POLICY, "garbage before HELLO");
    }
    it_raw_close(&r);
    cases += 3;

    /* 6. Size limits at the WebSocket layer. */
    raw_hello(&r, SB_ENC_PROTO, "eve", "customer", "eve-d4");
    {
        size_t n = 70000;
        uint8_t *big = calloc(1, n);
        assert_non_null(big);
        (void)it_raw_send_ws(&r, false, big, n); /* may be cut short */
        expect_close(&r, SB_WS_CLOSE_TOO_BIG, "message of 70000 bytes");
        it_raw_close(&r);
        /* Fragments of 40000 bytes each, 80000 in all. */
        raw_hello(&r, SB_ENC_PROTO, "eve", "customer", "eve-d5");
        uint8_t *fr = malloc(40000 + 16);
        assert_non_null(fr);
        size_t k = ws_frame(fr, false, 0x2, big, 40000);
        (void)it_raw_write(&r, fr, k);
        k = ws_frame(fr, true, 0x0, big, 40000);
        (void)it_raw_write(&r, fr, k);
        expect_close(&r, SB_WS_CLOSE_TOO_BIG, "fragmented message of 80000");
        free(fr);
        free(big);
        cases += 2;
    }
    it_raw_close(&r);

    /* 7. WebSocket protocol errors: each is closed with 1002 (RFC 6455
     * 7.4.1), never with a close that carries no status. */
    raw_hello(&r, SB_ENC_PROTO, "eve", "customer", "eve-d6");
    {
        const uint8_t unmasked[] = {0x82, 0x03, 'a', 'b', 'c'};
        (void)it_raw_write(&r, unmasked, sizeof unmasked);
        expect_close(&r, SB_WS_CLOSE_PROTOCOL, "unmasked frame");
        cases++;
    }
    it_raw_close(&r);
    {
        uint8_t fr[256], pay[126] = {0};
        size_t lens[4];
        uint8_t frames[4][256];
        lens[0] = ws_frame(frames[0], false, 0x9, pay, 0);  /* ping, FIN=0 */
        lens[1] = ws_frame(frames[1], true, 0x9, pay, 126); /* over 125 */
        lens[2] = ws_frame(frames[2], true, 0x8, pay, 1);   /* close, 1 byte */
        /* A 64-bit length with its top bit set. */
        const uint8_t top[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0,
                               1,    0,    0,    1, 2, 3, 4};
        memcpy(frames[3], top, sizeof top);
        lens[3] = sizeof top;
        const char *what[4] = {"ping with FIN=0", "control frame of 126 bytes",
                               "close frame of 1 byte",
                               "64-bit length with the top bit set"};
        for (int i = 0; i < 4; i++) {
            char dev[16];
            snprintf(dev, sizeof dev, "eve-ws%d", i);
            raw_hello(&r, SB_ENC_PROTO, "eve", "customer", dev);
            memcpy(fr, frames[i], lens[i]);
            (void)it_raw_write(&r, fr, lens[i]);
            expect_close(&r, SB_WS_CLOSE_PROTOCOL, what[i]);
            it_raw_close(&r);
            cases++;
        }
    }

    /* 8. A flood of undecodable frames: closed 1008 after 100. */
    raw_hello(&r, SB_ENC_PROTO, "eve", "customer", "eve-d7");
    {
        uint8_t junk[2] = {0xFF, 0x01};
        for (int i = 0; i < 101; i++)
            if (it_raw_send_ws(&r, false, junk, 2) != 0) break;
        int errors = 0;
        Sbp__Frame *e;
        while ((e = it_raw_recv(&r, 2000)) != NULL) {
            errors += e->body_case == SBP__FRAME__BODY_ERROR;
            sb_frame_free(e);
        }
        assert_true(errors >= 100);
        expect_close(&r, SB_WS_CLOSE_POLICY, "flood of bad frames");
        cases++;
    }
    it_raw_close(&r);

    /* 9. HTTP garbage and bad upgrades. */
    {
        char resp[4096];
        bool closed = false;
        const char *garbage = "GARBAGE\x01\x02 nonsense\r\n\r\n";
        int st = it_http(E.srv.port, garbage, strlen(garbage), resp,
                         sizeof resp, WAIT_MS, &closed);
        assert_int_equal(st, 400);
        assert_true(closed);
        uint8_t bin[512];
        for (size_t i = 0; i < sizeof bin; i++)
            bin[i] = (uint8_t)(i * 37 + 1);
        st = it_http(E.srv.port, bin, sizeof bin, resp, sizeof resp, WAIT_MS,
                     &closed);
        assert_int_equal(st, 400);
        assert_true(closed);
        /* A head over 8 KiB. */
        size_t n = 12000;
        char *head = malloc(n + 64);
        assert_non_null(head);
        int k = snprintf(head, n + 64, "GET /healthz HTTP/1.1\r\nX-Long: ");
        memset(head + k, 'z', n - (size_t)k);
        memcpy(head + n, "\r\n\r\n", 5);
        st = it_http(E.srv.port, head, n + 4, resp, sizeof resp, WAIT_MS,
                     &closed);
        free(head);
        assert_true(st == 400 || st == 431);
        assert_true(closed);
        /* Requests pipelined in one write: the first is answered. */
        const char *two = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                          "POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        st = it_http(E.srv.port, two, strlen(two), resp, sizeof resp, WAIT_MS,
                     &closed);
        assert_int_equal(st, 200);
        assert_non_null(strstr(resp, "ok"));
        cases++;
        /* An upgrade offering only a subprotocol the server does not have. */
        assert_int_not_equal(
            it_raw_open(&r, E.srv.port, SB_ENC_PROTO, "chat.v9"), 0);
        assert_int_equal(r.http_status, 400);
        it_raw_close(&r);
        cases += 4;
    }

    /* The pair kept going: let it run a while more (a second in all at
     * least), then check it. */
    int64_t t_raw = harness_now_ms();
    int64_t until = t_raw + 200 > t_pair + 1000 ? t_raw + 200 : t_pair + 1000;
    while (harness_now_ms() < until) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    pair_stop();
    if (P.problems || P.violations)
        fprintf(stderr, "pair: %d problems, %u violations\n", P.problems,
                P.violations);
    assert_int_equal(P.problems, 0);
    assert_int_equal(P.violations, 0);
    assert_true(P.sent[0] > 0 && P.sent[1] > 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(P.readies[i], 1); /* never disconnected */
        assert_int_equal(P.backoffs[i], 0);
        assert_int_equal(P.surfaced[i], P.sent[0] + P.sent[1]);
    }

    /* The server is still up. */
    char resp[1024];
    bool closed = false;
    const char *hz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(it_http(E.srv.port, hz, strlen(hz), resp, sizeof resp,
                             WAIT_MS, &closed),
                     200);
    assert_true(strstr(resp, "ok") != NULL);

    printf("integ_bad_input: %d bad-input cases answered as specified in "
           "%lld ms (JSON: raw invalid UTF-8 -> %s, \\ud800 escape -> ERROR "
           "%d; SEND flood: %d rate-limited); meanwhile the pair "
           "exchanged %zu+%zu msgs, all surfaced once in order, never "
           "disconnected; /healthz 200\n",
           cases, (long long)(t_raw - t0), json_utf8, surrogate_code, limited,
           P.sent[0], P.sent[1]);
    it_env_free(&E);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_bad_input, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
