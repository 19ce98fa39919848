/* integ_abuse: abusive clients are contained, and a well-behaved pair on
 * the same server does not notice.
 *
 * Each test starts its own server with the limits it exercises and (but
 * for the last two) a well-behaved SDK pair (a customer and an agent)
 * chatting 10 messages a second each on a background thread. Meanwhile,
 * on the main thread:
 *  - flood: a client sends far over its SEND rate: each SEND over it is
 *    answered ERR_RATE_LIMITED with its client_msg_id, the accepted ones
 *    are stored densely in the order accepted, and resending the refused
 *    ones later stores them all: nothing lost, nothing silently dropped;
 *  - slowloris: clients trickling header bytes, and silent ones, are
 *    dropped at the handshake deadline (--handshake-ms);
 *  - never_reads: a device that stops reading while 12 MB of pushes go to
 *    it is dropped once its unsent bytes pass --out-bytes-max, the user's
 *    other device (reading) gets everything, and the lazy device catches
 *    up by SYNC when it comes back, in order;
 *  - malformed: 10,000 malformed frames over 80 connections (protobuf and
 *    JSON): each answered by an ERROR, or after the 101st bad frame of a
 *    session by a clean close (1008);
 *  - cross_conversation: a customer, an agent, a bot and an admin outside
 *    a conversation try SEND, SEND with a quote, HISTORY, READ, ACK and
 *    RECALL in it: ERR_FORBIDDEN for all but the admin, who may (except
 *    recall another user's message); quotes cannot reach another
 *    conversation; the store has nothing of theirs;
 *  - identity: with --token-iss/--token-aud, tokens with the wrong or no
 *    audience or issuer, a forged signature, alg none, expired or not yet
 *    valid are refused with their code and close 1008;
 *  - origin_and_addr: --origin and --conns-per-addr (403, 429).
 * After each of the first five, the pair has everything, in order, once,
 * as the store has it, without a reconnect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"
#include "sb_b64.h"
#include "sb_token.h"

#define WAIT_MS 15000

static it_env E; /* main thread: the server and main-thread devices */

/* ---- the well-behaved pair, on its own thread and loop ------------------ */

static it_pair P;

static void pair_start(void)
{
    memset(&P, 0, sizeof P);
    P.cust = "pair-cust";
    P.agent = "pair-agent";
    P.interval_ms = 100; /* 10 a second each */
    assert_int_equal(it_pair_start(&P, &E, WAIT_MS), 0);
}

static void pair_stop(void)
{
    it_pair_stop(&P);
}

/* Stops the pair and checks it was undisturbed: everything sent, surfaced
 * by both in order, as stored, on its first connection. */
static void pair_check(const char *what)
{
    /* A second of chat at least, whatever the test took. */
    int64_t left = P.started_ms + 1000 - harness_now_ms();
    if (left > 0) {
        struct timespec ts = {0, (long)left * 1000000};
        nanosleep(&ts, NULL);
    }
    pair_stop();
    fprintf(stderr,
            "%s: the pair sent %zu + %zu, problems %d, violations %u, "
            "connections %u + %u\n",
            what, P.sent[0], P.sent[1], P.problems, P.violations, P.readies[0],
            P.readies[1]);
    assert_int_equal(P.problems, 0);
    assert_int_equal(P.violations, 0);
    assert_true(P.sent[0] > 0 && P.sent[1] > 0);
    assert_int_equal(P.readies[0], 1);
    assert_int_equal(P.readies[1], 1);
}

static void server_start(const char *const *extra)
{
    it_env_init(&E);
    assert_int_equal(it_server_start(&E, extra), 0);
}

static int teardown(void **state)
{
    (void)state;
    pair_stop();
    it_env_free(&E);
    return 0;
}

/* ---- raw helpers
 * ------------------------------------------------------------- */

static void raw_hello(it_raw *r, sb_encoding enc, const char *user,
                      const char *role, const char *dev)
{
    assert_int_equal(it_raw_open(r, E.srv.port, enc, NULL), 0);
    assert_int_equal(
        it_raw_hello(r, harness_token(user, role, 3600), dev, WAIT_MS), 0);
}

/* OPEN with one member; returns the conversation. */
static uint64_t raw_open_conv(it_raw *r, const char *member)
{
    char *m[1] = {(char *)member};
    Sbp__Open o = SBP__OPEN__INIT;
    o.n_members = 1;
    o.members = m;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_OPEN;
    f.open = &o;
    uint32_t rid = it_raw_send(r, &f);
    Sbp__Frame *g = it_raw_expect(r, SBP__FRAME__BODY_OPEN_RESP, rid, WAIT_MS);
    assert_non_null(g);
    uint64_t conv = g->open_resp->conv->conv_id;
    sb_frame_free(g);
    return conv;
}

/* The answer to request rid: the ERROR code, or 0 for any other frame
 * with that rid. Frames for other requests (pushes) are skipped. */
static int answer_of(it_raw *r, uint32_t rid)
{
    int64_t deadline = harness_now_ms() + WAIT_MS;
    while (harness_now_ms() < deadline) {
        Sbp__Frame *f = it_raw_recv(r, 100);
        if (!f) {
            if (r->eof && !r->head) fail_msg("connection ended (rid %u)", rid);
            continue;
        }
        int code = -1;
        if (f->rid == rid)
            code = f->body_case == SBP__FRAME__BODY_ERROR ? (int)f->error->code
                                                          : 0;
        sb_frame_free(f);
        if (code >= 0) return code;
    }
    fail_msg("no answer to rid %u", rid);
    return -1;
}

/* For requests answered only when refused (ACK, READ): sends a SYNC after
 * f and returns the first ERROR code for f's rid, or 0 when the SYNC is
 * answered first. */
static int refusal_of(it_raw *r, Sbp__Frame *f)
{
    uint32_t rid = it_raw_send(r, f);
    assert_true(rid != 0);
    Sbp__Sync s = SBP__SYNC__INIT;
    Sbp__Frame sf = SBP__FRAME__INIT;
    sf.body_case = SBP__FRAME__BODY_SYNC;
    sf.sync = &s;
    uint32_t srid = it_raw_send(r, &sf);
    int64_t deadline = harness_now_ms() + WAIT_MS;
    while (harness_now_ms() < deadline) {
        Sbp__Frame *g = it_raw_recv(r, 100);
        if (!g) {
            if (r->eof && !r->head) fail_msg("connection ended");
            continue;
        }
        int code = -1;
        if (g->rid == rid && g->body_case == SBP__FRAME__BODY_ERROR)
            code = (int)g->error->code;
        else if (g->rid == srid)
            code = 0;
        sb_frame_free(g);
        if (code >= 0) return code;
    }
    fail_msg("no answer to rid %u nor to the SYNC after it", rid);
    return -1;
}

static void cmid_make(uint8_t *id, uint8_t tag, uint32_t i)
{
    memset(id, tag, SB_CLIENT_MSG_ID_BYTES);
    id[0] = (uint8_t)(i >> 24);
    id[1] = (uint8_t)(i >> 16);
    id[2] = (uint8_t)(i >> 8);
    id[3] = (uint8_t)i;
}

static uint32_t cmid_index(const uint8_t *id)
{
    return (uint32_t)id[0] << 24 | (uint32_t)id[1] << 16 |
           (uint32_t)id[2] << 8 | id[3];
}

/* ---- flood
 * ------------------------------------------------------------------- */

#define FLOOD 150

typedef struct flood {
    uint64_t seq[FLOOD]; /* 0: not stored yet */
    bool refused[FLOOD];
    uint64_t next_seq; /* the seq the next accepted SEND must get */
    int acks, limited;
} flood;

/* Reads the answers to n SENDs and checks them: a SEND_ACK with the next
 * seq, or ERR_RATE_LIMITED with the request's client_msg_id. */
static void flood_answers(it_raw *r, flood *fl, int n)
{
    int answers = 0;
    int64_t deadline = harness_now_ms() + WAIT_MS;
    while (answers < n && harness_now_ms() < deadline) {
        Sbp__Frame *a = it_raw_recv(r, 100);
        if (!a) {
            assert_false(r->eof);
            continue;
        }
        if (a->body_case == SBP__FRAME__BODY_SEND_ACK) {
            const Sbp__SendAck *k = a->send_ack;
            assert_int_equal(k->client_msg_id.len, SB_CLIENT_MSG_ID_BYTES);
            uint32_t i = cmid_index(k->client_msg_id.data);
            assert_true(i < FLOOD);
            assert_int_equal(fl->seq[i], 0);
            /* Accepted SENDs are stored in the order they were accepted. */
            assert_int_equal(k->seq, fl->next_seq);
            fl->next_seq++;
            fl->seq[i] = k->seq;
            fl->refused[i] = false;
            fl->acks++;
            answers++;
        } else if (a->body_case == SBP__FRAME__BODY_ERROR) {
            assert_int_equal(a->error->code, SBP__ERROR_CODE__ERR_RATE_LIMITED);
            assert_int_equal(a->error->client_msg_id.len,
                             SB_CLIENT_MSG_ID_BYTES);
            uint32_t i = cmid_index(a->error->client_msg_id.data);
            assert_true(i < FLOOD);
            fl->refused[i] = true;
            fl->limited++;
            answers++;
        }
        sb_frame_free(a);
    }
    assert_int_equal(answers, n); /* every SEND answered: none dropped */
}

static void test_flood(void **state)
{
    (void)state;
    const char *args[] = {"--sends-per-s",
                          "50",
                          "--send-burst",
                          "20",
                          "--durability",
                          "os",
                          NULL};
    server_start(args);
    pair_start();
    int64_t t0 = harness_now_ms();

    /* The receiving agent, an SDK device on this thread's loop. */
    it_device *agent = it_device_new(&E, "flood-agent", "agent", "fa-1");
    assert_int_equal(it_device_start(agent), 0);
    assert_true(it_device_wait_ready(agent, WAIT_MS));
    it_raw r;
    raw_hello(&r, SB_ENC_PROTO, "flooder", "customer", "fl-1");
    uint64_t conv = raw_open_conv(&r, "flood-agent");

    /* FLOOD SENDs back to back: far over 50/s with bursts of 20. */
    static flood fl;
    memset(&fl, 0, sizeof fl);
    fl.next_seq = 1;
    uint8_t id[SB_CLIENT_MSG_ID_BYTES];
    char body[64];
    for (uint32_t i = 0; i < FLOOD; i++) {
        cmid_make(id, 0xF1, i);
        snprintf(body, sizeof body, "flood #%u", i);
        assert_true(it_raw_send_msg(&r, id, conv, body) != 0);
    }
    flood_answers(&r, &fl, FLOOD);
    fprintf(stderr, "flood: %d of %d accepted at once, %d rate-limited\n",
            fl.acks, FLOOD, fl.limited);
    assert_true(fl.acks >= 20); /* the burst */
    assert_true(fl.limited > 0);
    assert_int_equal(fl.acks + fl.limited, FLOOD);

    /* Resending the refused ones with the same ids, a little at a time:
     * all stored in the end. */
    int rounds = 0;
    while (fl.acks < FLOOD) {
        assert_true(++rounds < 40);
        struct timespec ts = {0, 300 * 1000000};
        nanosleep(&ts, NULL);
        int n = 0;
        for (uint32_t i = 0; i < FLOOD && n < 10; i++) {
            if (!fl.refused[i]) continue;
            cmid_make(id, 0xF1, i);
            snprintf(body, sizeof body, "flood #%u", i);
            assert_true(it_raw_send_msg(&r, id, conv, body) != 0);
            fl.refused[i] = false;
            n++;
        }
        flood_answers(&r, &fl, n);
    }
    it_raw_close(&r);

    /* The store has exactly the FLOOD messages, seqs 1..FLOOD, each at the
     * seq its SEND_ACK said; the agent surfaced them all, in order. */
    assert_true(it_wait_surfaced(&agent, 1, conv, FLOOD, WAIT_MS));
    it_row *rows = NULL;
    long nrows = it_store_rows(E.data_dir, conv, &rows);
    assert_int_equal(nrows, FLOOD);
    for (long k = 0; k < nrows; k++) {
        assert_int_equal(rows[k].seq, (uint64_t)k + 1);
        uint32_t i = cmid_index(rows[k].cmid);
        assert_true(i < FLOOD);
        assert_int_equal(fl.seq[i], rows[k].seq);
    }
    /* The agent surfaced exactly the stored messages, in seq order. */
    it_conv_log *lg = it_log(agent, conv);
    assert_non_null(lg);
    assert_int_equal(lg->base + lg->n, FLOOD);
    for (size_t k = 0; k < lg->n; k++) {
        assert_int_equal(lg->msgs[k].seq, rows[k].seq);
        assert_int_equal(lg->msgs[k].msg_id, rows[k].msg_id);
        assert_memory_equal(lg->msgs[k].cmid, rows[k].cmid,
                            SB_CLIENT_MSG_ID_BYTES);
    }
    free(rows);
    assert_int_equal(E.violations, 0);
    fprintf(stderr, "flood: all %d stored after %d resend rounds, %lld ms\n",
            FLOOD, rounds, (long long)(harness_now_ms() - t0));
    pair_check("flood");
}

/* ---- slowloris
 * ---------------------------------------------------------------- */

#define LORIS 20

static void test_slowloris(void **state)
{
    (void)state;
    const char *args[] = {"--handshake-ms", "500", NULL};
    server_start(args);
    pair_start();
    /* Half trickle a header byte every 100 ms, half say nothing. */
    int fd[LORIS];
    int64_t opened = harness_now_ms(), closed_at[LORIS];
    for (int i = 0; i < LORIS; i++) {
        fd[i] = it_tcp_connect(E.srv.port);
        assert_true(fd[i] >= 0);
        closed_at[i] = 0;
    }
    static const char head[] = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ";
    size_t sent = 0;
    int open = LORIS;
    while (open > 0 && harness_now_ms() - opened < 5000) {
        for (int i = 0; i < LORIS; i++) {
            if (closed_at[i]) continue;
            if (i % 2 == 0) {
                char c = sent < sizeof head - 1 ? head[sent] : 'a';
                if (send(fd[i], &c, 1, MSG_NOSIGNAL) < 0) {
                    closed_at[i] = harness_now_ms();
                    open--;
                    continue;
                }
            }
            struct pollfd pf = {.fd = fd[i], .events = POLLIN};
            char buf[256];
            if (poll(&pf, 1, 0) == 1 && recv(fd[i], buf, sizeof buf, 0) <= 0) {
                closed_at[i] = harness_now_ms();
                open--;
            }
        }
        sent++;
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
    }
    int64_t first = INT64_MAX, last = 0;
    for (int i = 0; i < LORIS; i++) {
        close(fd[i]);
        assert_true(closed_at[i] != 0);
        int64_t t = closed_at[i] - opened;
        if (t < first) first = t;
        if (t > last) last = t;
    }
    fprintf(stderr,
            "slowloris: %d connections dropped %lld..%lld ms after "
            "opening (deadline 500 ms, swept each second)\n",
            LORIS, (long long)first, (long long)last);
    assert_true(first >= 450);
    assert_true(last <= 2600);
    /* The server still answers at once. */
    char resp[512];
    bool closed;
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(it_http(E.srv.port, req, sizeof req - 1, resp, sizeof resp,
                             WAIT_MS, &closed),
                     200);
    pair_check("slowloris");
}

/* ---- a client that never reads
 * ------------------------------------------------- */

#define LAZY_MSGS 1500
#define LAZY_BODY 8000

static void test_never_reads(void **state)
{
    (void)state;
    const char *args[] = {"--out-bytes-max",
                          "2097152",
                          "--sends-per-s",
                          "0",
                          "--durability",
                          "os",
                          NULL};
    server_start(args);
    pair_start();
    int64_t t0 = harness_now_ms();

    /* "lazy" has two devices: one that reads (SDK) and one that never does
     * (raw). The kernels hold a few MB of what is sent to it (a receive
     * buffer that never grows, the server's send buffer): 12 MB is more. */
    it_raw lazy;
    raw_hello(&lazy, SB_ENC_PROTO, "lazy", "agent", "lazy-1");
    it_device *awake = it_device_new(&E, "lazy", "agent", "lazy-2");
    it_device *talker = it_device_new(&E, "talker", "customer", "t-1");
    assert_int_equal(it_device_start(awake), 0);
    assert_int_equal(it_device_start(talker), 0);
    assert_true(it_device_wait_ready(awake, WAIT_MS));
    assert_true(it_device_wait_ready(talker, WAIT_MS));
    uint64_t conv = it_open(talker, "lazy", WAIT_MS);
    assert_true(conv != 0);

    /* 12 MB of pushes to each of lazy's devices. */
    static char body[LAZY_BODY + 32];
    for (int i = 0; i < LAZY_MSGS; i++) {
        int n = snprintf(body, sizeof body, "#%d ", i);
        memset(body + n, 'a' + i % 26, LAZY_BODY - (size_t)n);
        body[LAZY_BODY] = '\0';
        assert_int_equal(it_send_text(talker, conv, body), 0);
    }
    assert_true(it_wait_sent(&talker, 1, 60000));
    assert_int_equal(talker->n_failed, 0);
    assert_true(it_wait_surfaced(&awake, 1, conv, LAZY_MSGS, 60000));
    int64_t t_sent = harness_now_ms();

    /* The lazy device was dropped: what the kernels held, then EOF. (Its
     * receive buffer must not be shrunk below the loopback MSS: TCP would
     * then never reopen the window and the FIN would not arrive.) */
    int pushes = 0;
    int64_t deadline = harness_now_ms() + WAIT_MS;
    while (!lazy.eof && harness_now_ms() < deadline) {
        Sbp__Frame *f = it_raw_recv(&lazy, 100);
        if (f && f->body_case == SBP__FRAME__BODY_PUSH)
            pushes += (int)f->push->n_messages;
        sb_frame_free(f);
    }
    assert_true(lazy.eof);
    it_raw_close(&lazy);
    fprintf(stderr,
            "never_reads: %d messages sent in %lld ms; the lazy "
            "device got %d before it was dropped\n",
            LAZY_MSGS, (long long)(t_sent - t0), pushes);
    assert_true(pushes < LAZY_MSGS);
    /* The reading device was never disconnected. */
    assert_int_equal(awake->readies, 1);

    /* It comes back and catches up by SYNC: everything, in order. */
    it_device *back = it_device_new(&E, "lazy", "agent", "lazy-1");
    assert_int_equal(it_device_start(back), 0);
    assert_true(it_wait_surfaced(&back, 1, conv, LAZY_MSGS, 60000));
    it_device *all[3] = {talker, awake, back};
    assert_int_equal(it_check_conv(&E, conv, all, 3, LAZY_MSGS), 0);
    assert_int_equal(it_check_store(&E, conv, back, NULL), 0);
    assert_int_equal(E.violations, 0);
    fprintf(stderr, "never_reads: caught up by SYNC in %lld ms\n",
            (long long)(harness_now_ms() - t_sent));
    pair_check("never_reads");
}

/* ---- 10,000 malformed frames
 * ---------------------------------------------------- */

#define BAD_CONNS 80
#define BAD_A 150 /* frames on a connection that is closed after 101 */
#define BAD_B 100 /* frames on a connection that stays */

/* Malformed frame k of a kind the gateway counts as bad (undecodable,
 * not UTF-8) for profile A, or of any kind for profile B; into b. */
static void bad_frame(it_raw *r, bool counted, int k, sb_buf *b)
{
    b->len = 0;
    uint8_t id[SB_CLIENT_MSG_ID_BYTES];
    cmid_make(id, 0xBA, (uint32_t)k);
    Sbp__Send s = SBP__SEND__INIT;
    s.client_msg_id.data = id;
    s.client_msg_id.len = sizeof id;
    s.conv_id = 1;
    s.body = "x";
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = (uint32_t)k + 1;
    f.body_case = SBP__FRAME__BODY_SEND;
    f.send = &s;
    int kind = counted ? k % 3 : k % 6;
    if (r->enc == SB_ENC_JSON) {
        static const char *const texts[] = {
            "{\"rid\":1,\"send\":",
            "[1,2,3]",
            "{\"send\":{\"conv_id\":\"x\"}}",
            "{\"welcome\":{}}",
            "{}",
            "{\"send\":{\"client_msg_id\":\"AQ==\"}}"};
        const char *t = texts[kind];
        sb_buf_append(b, t, strlen(t));
        return;
    }
    switch (kind) {
    case 0: /* garbage, from a tag with wire type 7 (none such) */
        for (int i = 0; i < 24; i++) {
            uint8_t c = i == 0 ? 0x0F : (uint8_t)(0xFF - i * 7 - k);
            sb_buf_append(b, &c, 1);
        }
        break;
    case 1: /* a SEND cut short */
        sb_frame_encode(SB_ENC_PROTO, &f, b);
        b->len = b->len / 2;
        break;
    case 2: /* a body that is not UTF-8 */
        s.body = "bad \xC3\x28 utf8";
        sb_frame_encode(SB_ENC_PROTO, &f, b);
        break;
    case 3: { /* a frame kind clients may not send */
        Sbp__Welcome w = SBP__WELCOME__INIT;
        f.body_case = SBP__FRAME__BODY_WELCOME;
        f.welcome = &w;
        sb_frame_encode(SB_ENC_PROTO, &f, b);
        break;
    }
    case 4: /* no body at all */
        f.body_case = SBP__FRAME__BODY__NOT_SET;
        sb_frame_encode(SB_ENC_PROTO, &f, b);
        break;
    default: /* a client_msg_id of 15 bytes */
        s.client_msg_id.len = 15;
        sb_frame_encode(SB_ENC_PROTO, &f, b);
        break;
    }
}

static void test_malformed(void **state)
{
    (void)state;
    const char *args[] = {"--durability", "os", NULL};
    server_start(args);
    pair_start();
    int64_t t0 = harness_now_ms();
    int frames = 0, errors = 0, closes = 0, alive = 0;
    sb_buf b = SB_BUF_INIT;
    char dev[32];
    for (int c = 0; c < BAD_CONNS; c++) {
        bool counted = c % 2 == 0; /* profile A */
        sb_encoding enc = c % 4 == 3 ? SB_ENC_JSON : SB_ENC_PROTO;
        snprintf(dev, sizeof dev, "bad-%d", c);
        it_raw r;
        raw_hello(&r, enc, "mallory", "customer", dev);
        int n = counted ? BAD_A : BAD_B, written = 0;
        for (int k = 0; k < n; k++) {
            bad_frame(&r, counted, k, &b);
            if (it_raw_send_ws(&r, enc == SB_ENC_JSON, b.data, b.len) != 0)
                break; /* the server closed: the rest is not read */
            written++;
        }
        frames += n;
        /* One ERROR per frame read, in order, until the close. */
        int got = 0;
        int64_t deadline = harness_now_ms() + WAIT_MS;
        while (got < n && harness_now_ms() < deadline) {
            Sbp__Frame *f = it_raw_recv(&r, 100);
            if (!f) {
                if (r.eof || r.tap_close >= 0) break;
                continue;
            }
            assert_int_equal(f->body_case, SBP__FRAME__BODY_ERROR);
            got++;
            sb_frame_free(f);
        }
        errors += got;
        if (counted) {
            /* 100 bad frames are borne; the 101st closes the session. */
            assert_int_equal(got, 101);
            assert_int_equal(it_raw_wait_close(&r, WAIT_MS),
                             SB_WS_CLOSE_POLICY);
            closes++;
        } else {
            assert_int_equal(got, n);
            assert_int_equal(written, n);
            Sbp__Sync s = SBP__SYNC__INIT;
            Sbp__Frame f = SBP__FRAME__INIT;
            f.body_case = SBP__FRAME__BODY_SYNC;
            f.sync = &s;
            uint32_t rid = it_raw_send(&r, &f);
            assert_int_equal(answer_of(&r, rid), 0);
            alive++;
        }
        it_raw_close(&r);
    }
    sb_buf_free(&b);
    fprintf(stderr,
            "malformed: %d frames on %d connections in %lld ms: "
            "%d ERRORs, %d closed 1008 after 101, %d alive\n",
            frames, BAD_CONNS, (long long)(harness_now_ms() - t0), errors,
            closes, alive);
    assert_int_equal(frames, 10000);
    pair_check("malformed");
}

/* ---- cross-conversation attempts
 * ------------------------------------------------ */

typedef struct outsider {
    const char *user, *role;
    bool admin;
} outsider;

static void test_cross_conversation(void **state)
{
    (void)state;
    const char *args[] = {"--durability", "os", NULL};
    server_start(args);
    pair_start();
    /* alice (customer) and bob (agent) in conv; three messages. */
    it_raw alice, bob;
    raw_hello(&bob, SB_ENC_PROTO, "bob", "agent", "bob-1");
    raw_hello(&alice, SB_ENC_PROTO, "alice", "customer", "alice-1");
    uint64_t conv = raw_open_conv(&alice, "bob");
    uint8_t id[SB_CLIENT_MSG_ID_BYTES];
    for (uint32_t i = 0; i < 3; i++) {
        cmid_make(id, 0xA1, i);
        assert_int_equal(
            answer_of(&alice, it_raw_send_msg(&alice, id, conv, "private")), 0);
    }
    it_raw_close(&bob);

    const outsider who[] = {{"carol", "customer", false},
                            {"dave", "agent", false},
                            {"botty", "bot", false},
                            {"root", "admin", true}};
    const int FORBIDDEN = SBP__ERROR_CODE__ERR_FORBIDDEN;
    int refused = 0, allowed = 0;
    for (size_t w = 0; w < 4; w++) {
        it_raw r;
        char dev[32];
        snprintf(dev, sizeof dev, "%s-1", who[w].user);
        raw_hello(&r, SB_ENC_PROTO, who[w].user, who[w].role, dev);
        int want = who[w].admin ? 0 : FORBIDDEN;
        Sbp__Frame f = SBP__FRAME__INIT;

        /* write */
        cmid_make(id, (uint8_t)(0xC0 + w), 0);
        assert_int_equal(answer_of(&r, it_raw_send_msg(&r, id, conv, "in")),
                         want);
        /* write, quoting */
        Sbp__Send s = SBP__SEND__INIT;
        cmid_make(id, (uint8_t)(0xC0 + w), 1);
        s.client_msg_id.data = id;
        s.client_msg_id.len = sizeof id;
        s.conv_id = conv;
        s.body = "quoting you";
        s.quote_seq = 1;
        f.body_case = SBP__FRAME__BODY_SEND;
        f.send = &s;
        f.rid = 0;
        assert_int_equal(answer_of(&r, it_raw_send(&r, &f)), want);
        /* read history */
        Sbp__History h = SBP__HISTORY__INIT;
        h.conv_id = conv;
        f.body_case = SBP__FRAME__BODY_HISTORY;
        f.history = &h;
        f.rid = 0;
        assert_int_equal(answer_of(&r, it_raw_send(&r, &f)), want);
        /* read receipt, delivery ACK */
        Sbp__Read rd = SBP__READ__INIT;
        rd.conv_id = conv;
        rd.seq = 2;
        f.body_case = SBP__FRAME__BODY_READ;
        f.read = &rd;
        f.rid = 0;
        assert_int_equal(refusal_of(&r, &f), want);
        Sbp__Ack a = SBP__ACK__INIT;
        a.conv_id = conv;
        a.seq = 2;
        f.body_case = SBP__FRAME__BODY_ACK;
        f.ack = &a;
        f.rid = 0;
        assert_int_equal(refusal_of(&r, &f), want);
        /* recall someone else's message: only its sender may */
        Sbp__Recall rc = SBP__RECALL__INIT;
        rc.conv_id = conv;
        rc.seq = 1;
        f.body_case = SBP__FRAME__BODY_RECALL;
        f.recall = &rc;
        f.rid = 0;
        assert_int_equal(answer_of(&r, it_raw_send(&r, &f)), FORBIDDEN);
        if (who[w].admin)
            allowed += 5;
        else
            refused += 6;
        it_raw_close(&r);
    }

    /* A quote reaches only into its own conversation: dave's own
     * conversation has no seq 3 to quote, whatever alice's has. */
    it_raw d;
    raw_hello(&d, SB_ENC_PROTO, "dave", "agent", "dave-2");
    uint64_t own = raw_open_conv(&d, "carol");
    Sbp__Send s = SBP__SEND__INIT;
    cmid_make(id, 0xD0, 0);
    s.client_msg_id.data = id;
    s.client_msg_id.len = sizeof id;
    s.conv_id = own;
    s.body = "quoting what is not here";
    s.quote_seq = 3;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_SEND;
    f.send = &s;
    assert_int_equal(answer_of(&d, it_raw_send(&d, &f)),
                     SBP__ERROR_CODE__ERR_INVALID);
    it_raw_close(&d);

    /* The store: alice's three and the admin's two; nothing else. */
    it_row *rows = NULL;
    long n = it_store_rows(E.data_dir, conv, &rows);
    int mine = 0, admin = 0;
    for (long k = 0; k < n; k++) {
        if (strcmp(rows[k].sender, "alice") == 0)
            mine++;
        else if (strcmp(rows[k].sender, "root") == 0)
            admin++;
        else
            fail_msg("a message of %s in alice's conversation", rows[k].sender);
    }
    free(rows);
    assert_int_equal(mine, 3);
    assert_int_equal(admin, 2);
    it_raw_close(&alice);
    fprintf(stderr,
            "cross_conversation: %d attempts refused (customer, agent, "
            "bot), %d allowed (admin)\n",
            refused, allowed);
    pair_check("cross_conversation");
}

/* ---- identity
 * ------------------------------------------------------------------ */

#define ISS "https://id.example.com"
#define AUD "switchboard-test"

static const char *mint(const char *iss, const char *aud, int64_t exp_off,
                        int64_t nbf_off, const char *secret)
{
    static char tok[1024];
    sb_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "ivan");
    c.role = SBP__ROLE__ROLE_CUSTOMER;
    int64_t now = (int64_t)time(NULL);
    c.exp = now + exp_off;
    c.nbf = nbf_off ? now + nbf_off : 0;
    snprintf(c.iss, sizeof c.iss, "%s", iss);
    snprintf(c.aud, sizeof c.aud, "%s", aud);
    assert_true(sb_token_sign((const uint8_t *)secret, strlen(secret), &c, tok,
                              sizeof tok) > 0);
    return tok;
}

static void hello_expect(const char *token, int code, const char *what)
{
    it_raw r;
    assert_int_equal(it_raw_open(&r, E.srv.port, SB_ENC_PROTO, NULL), 0);
    int rc = it_raw_hello(&r, token, "ivan-1", WAIT_MS);
    if (rc != code)
        fail_msg("%s: HELLO answered %d, expected %d", what, rc, code);
    if (code != 0 && it_raw_wait_close(&r, WAIT_MS) != SB_WS_CLOSE_POLICY)
        fail_msg("%s: not closed 1008", what);
    it_raw_close(&r);
}

static void test_identity(void **state)
{
    (void)state;
    const char *args[] = {"--token-iss", ISS, "--token-aud", AUD, NULL};
    server_start(args);
    const int BAD = SBP__ERROR_CODE__ERR_BAD_TOKEN;
    const int EXPIRED = SBP__ERROR_CODE__ERR_TOKEN_EXPIRED;
    hello_expect(mint(ISS, AUD, 3600, 0, HARNESS_SECRET), 0, "a good token");
    hello_expect(mint(ISS, "billing", 3600, 0, HARNESS_SECRET), BAD,
                 "wrong audience");
    hello_expect(mint(ISS, "", 3600, 0, HARNESS_SECRET), BAD, "no audience");
    hello_expect(mint("https://evil.example.com", AUD, 3600, 0, HARNESS_SECRET),
                 BAD, "wrong issuer");
    hello_expect(mint("", AUD, 3600, 0, HARNESS_SECRET), BAD, "no issuer");
    hello_expect(mint(ISS, AUD, 3600, 0, "another-secret"), BAD,
                 "forged signature");
    hello_expect(mint(ISS, AUD, -3600, 0, HARNESS_SECRET), EXPIRED, "expired");
    hello_expect(mint(ISS, AUD, 7200, 3600, HARNESS_SECRET), EXPIRED,
                 "not yet valid");
    /* alg none: the good token's header swapped, signature dropped. */
    const char *good = mint(ISS, AUD, 3600, 0, HARNESS_SECRET);
    const char *dot = strchr(good, '.');
    char none[1200], hdr[64];
    const char *hn = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    sb_b64_encode((const uint8_t *)hn, strlen(hn), hdr, 1);
    snprintf(none, sizeof none, "%s%.*s.", hdr, (int)(strrchr(good, '.') - dot),
             dot);
    hello_expect(none, BAD, "alg none");
}

/* ---- Origin allow-list, connections per address
 * ----------------------------------- */

static int upgrade_status(const char *origin)
{
    char req[512], resp[1024];
    int n = snprintf(req, sizeof req,
                     "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     origin ? "Origin: " : "", origin ? origin : "",
                     origin ? "\r\n" : "");
    bool closed;
    return it_http(E.srv.port, req, (size_t)n, resp, sizeof resp, 300, &closed);
}

static void test_origin_and_addr(void **state)
{
    (void)state;
    const char *args[] = {"--origin",
                          "https://support.example.com",
                          "--origin",
                          "http://localhost:8080",
                          "--conns-per-addr",
                          "6",
                          NULL};
    server_start(args);
    assert_int_equal(upgrade_status("https://support.example.com"), 101);
    assert_int_equal(upgrade_status("http://localhost:8080"), 101);
    assert_int_equal(upgrade_status(NULL), 101); /* not a browser */
    assert_int_equal(upgrade_status("https://evil.example.com"), 403);
    assert_int_equal(upgrade_status("https://support.example.com.evil.net"),
                     403);
    assert_int_equal(upgrade_status("null"), 403);

    /* Six open from 127.0.0.1; the seventh is refused, until one closes. */
    int fd[6];
    for (int i = 0; i < 6; i++)
        assert_true((fd[i] = it_tcp_connect(E.srv.port)) >= 0);
    const char hz[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char resp[512];
    bool closed;
    assert_int_equal(it_http(E.srv.port, hz, sizeof hz - 1, resp, sizeof resp,
                             WAIT_MS, &closed),
                     429);
    close(fd[0]);
    int status = 0;
    for (int i = 0; i < 50 && status != 200; i++) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
        status = it_http(E.srv.port, hz, sizeof hz - 1, resp, sizeof resp,
                         WAIT_MS, &closed);
    }
    assert_int_equal(status, 200);
    for (int i = 1; i < 6; i++)
        close(fd[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_flood, teardown),
        cmocka_unit_test_teardown(test_slowloris, teardown),
        cmocka_unit_test_teardown(test_never_reads, teardown),
        cmocka_unit_test_teardown(test_malformed, teardown),
        cmocka_unit_test_teardown(test_cross_conversation, teardown),
        cmocka_unit_test_teardown(test_identity, teardown),
        cmocka_unit_test_teardown(test_origin_and_addr, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
