/* Writes the seed corpora of the fuzz targets: a few valid and nearly
 * valid inputs of each kind, so that fuzzing starts deep in each decoder.
 * Usage: mkseeds DIR (DIR/<target>/<name> files are written; the seeds
 * under fuzz/corpus/ are committed). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sb_b64.h"
#include "sb_codec.h"
#include "sb_token.h"

static const char *root;

static void put(const char *target, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static void put_str(const char *target, const char *name, const char *s)
{
    put(target, name, s, strlen(s));
}

/* ---- HTTP ---------------------------------------------------------------- */

static void http_seed(const char *name, uint8_t chunk, const char *req)
{
    size_t n = strlen(req);
    uint8_t *b = malloc(n + 1);
    b[0] = chunk;
    memcpy(b + 1, req, n);
    put("fuzz_http", name, b, n + 1);
    free(b);
}

static void http_seeds(void)
{
    const char *up = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: switchboard.v1.json, "
                     "switchboard.v1.proto\r\n"
                     "Origin: https://support.example.com\r\n\r\n"
                     "\x81\x85\x01\x02\x03\x04ignored";
    http_seed("upgrade", 0, up);
    http_seed("upgrade_chunked", 7, up);
    http_seed("healthz", 0, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    http_seed("post", 3, "POST /ws HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    http_seed("proto_twice", 0,
              "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
              "Connection: keep-alive, Upgrade\r\n"
              "Sec-WebSocket-Protocol: chat\r\n"
              "Sec-WebSocket-Protocol: switchboard.v1.proto\r\n"
              "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n");
    http_seed("http10", 1, "GET /index.html?x=1#y HTTP/1.0\r\n\r\n");
    http_seed("chunked_te", 0,
              "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n0\r\n\r\n");
}

/* ---- WebSocket ----------------------------------------------------------- */

/* One masked client frame into b. */
static size_t ws_frame(uint8_t *b, uint8_t b0, const char *payload, size_t n)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    b[h++] = b0;
    if (n < 126) {
        b[h++] = (uint8_t)(0x80 | n);
    } else {
        b[h++] = 0x80 | 126;
        b[h++] = (uint8_t)(n >> 8);
        b[h++] = (uint8_t)n;
    }
    memcpy(b + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        b[h + i] = (uint8_t)(payload[i] ^ key[i % 4]);
    return h + n;
}

static void ws_seeds(void)
{
    uint8_t b[2048];
    size_t n = 0;
    /* mode 0: raw frames; max 97*40+1 bytes; whole input at once */
    b[n++] = 0;
    b[n++] = 40;
    b[n++] = 0;
    n += ws_frame(b + n, 0x81, "hello", 5); /* text */
    n += ws_frame(b + n, 0x02, "frag", 4);  /* binary, more */
    n += ws_frame(b + n, 0x89, "p", 1);     /* ping between */
    n += ws_frame(b + n, 0x80, "ment", 4);  /* continuation */
    char big[300];
    memset(big, 'x', sizeof big);
    n += ws_frame(b + n, 0x82, big, sizeof big); /* 16-bit length */
    n += ws_frame(b + n, 0x88,
                  "\x03\xe8"
                  "bye",
                  5); /* close 1000 */
    put("fuzz_ws", "raw_frames", b, n);
    b[2] = 5; /* the same in 5-byte chunks */
    put("fuzz_ws", "raw_chunks", b, n);
    b[1] = 1; /* a 98-byte bound: the 300-byte message is too big */
    put("fuzz_ws", "raw_toobig", b, n);

    /* mode 1: frame descriptions: op (FIN|opcode, 0x20 unmasked),
     * length byte, [key], payload */
    const uint8_t desc[] = {
        1,    20,  0,   0x01, 3, 1, 2,   3,   4, 'a',
        'b',  'c',                            /* text, no FIN */
        0x89, 2,   9,   9,    9, 9, 'h', 'i', /* ping */
        0x80, 2,   5,   6,    7, 8, 'd', 'e', /* continuation, FIN */
        0x82, 126, 0,   4,    0, 0, 0,   0,   1, 2,
        3,    4,                                    /* 16-bit form */
        0x82, 127, 0,   2,    0, 0, 0,   0,   1, 2, /* 64-bit form */
        0xA1, 1,   'u',                             /* unmasked: refused */
    };
    put("fuzz_ws", "frames", desc, sizeof desc);
    const uint8_t desc2[] = {
        1,    255, 3,    0x88, 4,   0,   0,
        0,    0,   0x03, 0xF3, 'n', 'o',      /* close 1011 */
        0x81, 1,   0,    0,    0,   0,   'x', /* after the close */
    };
    put("fuzz_ws", "frames_close", desc2, sizeof desc2);

    /* mode 2: round trip; length byte = len/3 << 1 | text */
    const uint8_t rt[] = {2,   0,   4,   (2 << 1) | 1, 'h', 'e', 'l',
                          'l', 'o', '!', (1 << 1),     0,   1,   2,
                          0,   1};
    put("fuzz_ws", "roundtrip", rt, sizeof rt);
}

/* ---- frames -------------------------------------------------------------- */

static void frame_seed(const char *name, const Sbp__Frame *f)
{
    sb_buf b = SB_BUF_INIT;
    if (sb_frame_encode(SB_ENC_PROTO, f, &b) == 0)
        put("fuzz_proto", name, b.data, b.len);
    b.len = 0;
    if (sb_frame_encode(SB_ENC_JSON, f, &b) == 0)
        put("fuzz_json", name, b.data, b.len);
    sb_buf_free(&b);
}

static void frame_seeds(void)
{
    static uint8_t cid[16] = {0, 1, 2,  3,  4,  5,  6,  7,
                              8, 9, 10, 11, 12, 13, 14, 15};
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = 7;

    Sbp__Hello h = SBP__HELLO__INIT;
    h.token = "eyJhbGciOiJIUzI1NiJ9.e30.x";
    h.device_id = "phone-1";
    h.client = "seed/1";
    h.protocol = 1;
    h.locale = "zh-CN";
    f.body_case = SBP__FRAME__BODY_HELLO;
    f.hello = &h;
    frame_seed("hello", &f);

    Sbp__Send s = SBP__SEND__INIT;
    s.client_msg_id = (ProtobufCBinaryData){16, cid};
    s.conv_id = 3;
    s.type = SBP__MSG_TYPE__MSG_TEXT;
    s.body = "h\xc3\xa9llo \xe4\xbd\xa0\xe5\xa5\xbd";
    s.quote_seq = 2;
    f.body_case = SBP__FRAME__BODY_SEND;
    f.send = &s;
    frame_seed("send", &f);

    Sbp__Ack a = SBP__ACK__INIT;
    a.conv_id = 3;
    a.seq = 1ull << 40;
    f.body_case = SBP__FRAME__BODY_ACK;
    f.ack = &a;
    frame_seed("ack", &f);

    Sbp__Cursor c1 = SBP__CURSOR__INIT, c2 = SBP__CURSOR__INIT;
    c1.conv_id = 1;
    c2.conv_id = 2;
    c2.seq = 99;
    Sbp__Cursor *cs[] = {&c1, &c2};
    Sbp__Sync sy = SBP__SYNC__INIT;
    sy.cursors = cs;
    sy.n_cursors = 2;
    sy.limit = 100;
    f.body_case = SBP__FRAME__BODY_SYNC;
    f.sync = &sy;
    frame_seed("sync", &f);

    Sbp__Csat ct = SBP__CSAT__INIT;
    ct.conv_id = 3;
    ct.rating = 4;
    ct.comment = "quick \xe5\xbe\x88\xe5\xa5\xbd";
    f.body_case = SBP__FRAME__BODY_CSAT;
    f.csat = &ct;
    frame_seed("csat", &f);

    char *by[] = {"agent", "day"};
    Sbp__Report rp = SBP__REPORT__INIT;
    rp.from = "2025-06-01";
    rp.to = "2025-06-30";
    rp.tz = "Europe/Berlin";
    rp.by = by;
    rp.n_by = 2;
    f.body_case = SBP__FRAME__BODY_REPORT;
    f.report = &rp;
    frame_seed("report", &f);

    Sbp__ReportRow rr = SBP__REPORT_ROW__INIT;
    rr.agent = "ann";
    rr.day = "2025-06-01";
    rr.conversations = 3;
    rr.csat_average = 13.0 / 3.0;
    rr.csat_response_rate = 0.75;
    Sbp__ReportRow *rows[] = {&rr};
    Sbp__ReportResp rs = SBP__REPORT_RESP__INIT;
    rs.rows = rows;
    rs.n_rows = 1;
    rs.total = &rr;
    f.body_case = SBP__FRAME__BODY_REPORT_RESP;
    f.report_resp = &rs;
    frame_seed("report_resp", &f);

    Sbp__History hi = SBP__HISTORY__INIT;
    hi.conv_id = 3;
    hi.before_seq = 50;
    hi.limit = 20;
    f.body_case = SBP__FRAME__BODY_HISTORY;
    f.history = &hi;
    frame_seed("history", &f);

    Sbp__Read rd = SBP__READ__INIT;
    rd.conv_id = 3;
    rd.seq = 4;
    f.body_case = SBP__FRAME__BODY_READ;
    f.read = &rd;
    frame_seed("read", &f);

    char *members[] = {"bob", "bot-1"};
    Sbp__Open op = SBP__OPEN__INIT;
    op.members = members;
    op.n_members = 2;
    op.title = "refund";
    op.kind = SBP__CONV_KIND__CONV_SERVICE;
    f.body_case = SBP__FRAME__BODY_OPEN;
    f.open = &op;
    frame_seed("open", &f);

    Sbp__Message m = SBP__MESSAGE__INIT;
    m.msg_id = 10;
    m.conv_id = 3;
    m.seq = 1;
    m.sender = "alice";
    m.sender_device = "phone-1";
    m.client_msg_id = (ProtobufCBinaryData){16, cid};
    m.type = SBP__MSG_TYPE__MSG_ROBOT;
    m.body = "{\"quick\":[\"yes\",\"no\"]}";
    char *tags[] = {"vip", "refund"};
    m.tags = tags;
    m.n_tags = 2;
    m.server_ts = 1800000000000;
    m.lang = "en";
    Sbp__Message *ms[] = {&m};
    Sbp__Push p = SBP__PUSH__INIT;
    p.messages = ms;
    p.n_messages = 1;
    f.rid = 0;
    f.body_case = SBP__FRAME__BODY_PUSH;
    f.push = &p;
    frame_seed("push", &f);

    Sbp__Error e = SBP__ERROR__INIT;
    e.code = SBP__ERROR_CODE__ERR_RATE_LIMITED;
    e.text = "rate limited";
    e.client_msg_id = (ProtobufCBinaryData){16, cid};
    f.rid = 9;
    f.body_case = SBP__FRAME__BODY_ERROR;
    f.error = &e;
    frame_seed("error", &f);

    Sbp__Member mb = SBP__MEMBER__INIT;
    mb.user_id = "alice";
    mb.role = SBP__ROLE__ROLE_CUSTOMER;
    Sbp__Member *mbs[] = {&mb};
    Sbp__Conversation cv = SBP__CONVERSATION__INIT;
    cv.conv_id = 3;
    cv.kind = SBP__CONV_KIND__CONV_SERVICE;
    cv.state = SBP__CONV_STATE__STATE_QUEUED;
    cv.title = "t";
    cv.members = mbs;
    cv.n_members = 1;
    cv.last_seq = 5;
    Sbp__Conversation *cvs[] = {&cv};
    Sbp__SyncResp sr = SBP__SYNC_RESP__INIT;
    sr.messages = ms;
    sr.n_messages = 1;
    sr.more = 1;
    sr.convs = cvs;
    sr.n_convs = 1;
    f.body_case = SBP__FRAME__BODY_SYNC_RESP;
    f.sync_resp = &sr;
    frame_seed("sync_resp", &f);

    /* JSON spellings the encoder does not produce but the decoder takes. */
    put_str(
        "fuzz_json", "doc_example",
        "{\"rid\":7,\"send\":{\"client_msg_id\":\"AAECAwQFBgcICQoLDA0ODw==\","
        "\"conv_id\":3,\"type\":\"MSG_TEXT\",\"body\":\"hi\"}}");
    put_str("fuzz_json", "strings_and_numbers",
            "{\"rid\":\"4294967295\",\"sync\":{\"cursors\":[{\"conv_id\":"
            "\"18446744073709551615\",\"seq\":1},null],\"limit\":null},"
            "\"unknown\":[1,{\"a\":true}]}");
    put_str("fuzz_json", "escapes",
            "{\"hello\":{\"token\":\"a\\u0000b\",\"device_id\":"
            "\"\\ud83d\\ude00\",\"protocol\":1,\"locale\":\"en\"}}");
    put_str(
        "fuzz_json", "enum_number",
        "{\"error\":{\"code\":99,\"text\":\"x\",\"client_msg_id\":\"AQ\"}}");
    put_str("fuzz_json", "nested",
            "{\"push\":{\"messages\":[{\"seq\":1,\"tags\":[\"a\",\"b\"]},"
            "{\"seq\":2,\"type\":5}]}}");
}

/* ---- time zones ---------------------------------------------------------- */

static size_t be32_put(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
    return 4;
}

/* A TZif version 2 file: n transitions (times[], 64-bit) alternating
 * between a standard and a daylight type, and the footer rule ("" none). */
static void tz_seed(const char *name, const int64_t *times, size_t n,
                    const char *rule)
{
    uint8_t b[1024];
    size_t k = 0;
    for (int block = 0; block < 2; block++) {
        size_t nt = block ? n : 0; /* transitions in the 64-bit block only */
        memcpy(b + k, "TZif2", 5);
        memset(b + k + 5, 0, 15);
        k += 20;
        k += be32_put(b + k, 0); /* isut */
        k += be32_put(b + k, 0); /* isstd */
        k += be32_put(b + k, 0); /* leap */
        k += be32_put(b + k, (uint32_t)nt);
        k += be32_put(b + k, 2); /* types */
        k += be32_put(b + k, 9); /* chars: "CET\0CEST\0" */
        for (size_t i = 0; i < nt; i++) {
            k += be32_put(b + k, (uint32_t)((uint64_t)times[i] >> 32));
            k += be32_put(b + k, (uint32_t)times[i]);
        }
        for (size_t i = 0; i < nt; i++)
            b[k++] = (uint8_t)(i % 2 ? 0 : 1);
        k += be32_put(b + k, 3600); /* CET */
        b[k++] = 0;
        b[k++] = 0;
        k += be32_put(b + k, 7200); /* CEST */
        b[k++] = 1;
        b[k++] = 4;
        memcpy(b + k, "CET\0CEST\0", 9);
        k += 9;
    }
    b[k++] = '\n';
    memcpy(b + k, rule, strlen(rule));
    k += strlen(rule);
    b[k++] = '\n';
    put("fuzz_tz", name, b, k);
}

static void tz_seeds(void)
{
    const int64_t berlin[] = {1743296400, 1761440400, 1774746000, 1792890000};
    tz_seed("berlin", berlin, 4, "CET-1CEST,M3.5.0,M10.5.0/3");
    tz_seed("rule_only", NULL, 0, "AEST-10AEDT,M10.1.0,M4.1.0/3");
    tz_seed("no_rule", berlin, 4, "");
    tz_seed("julian", NULL, 0, "<+0545>-5:45<+0645>,J60/2,300/-1");
}

/* ---- tokens -------------------------------------------------------------- */

/* A token with a hand-made header and payload and a real or fake MAC. */
static void token_raw(const char *name, const char *hdr, const char *pl)
{
    char t[1024];
    size_t n = sb_b64_encode((const uint8_t *)hdr, strlen(hdr), t, 1);
    t[n++] = '.';
    n += sb_b64_encode((const uint8_t *)pl, strlen(pl), t + n, 1);
    t[n++] = '.';
    n += sb_b64_encode((const uint8_t *)"0123456789abcdef0123456789abcdef", 32,
                       t + n, 1);
    put("fuzz_token", name, t, n);
}

static void token_seeds(void)
{
    static const uint8_t KEY[] = "fuzz-secret";
    sb_claims c;
    memset(&c, 0, sizeof c);
    strcpy(c.sub, "alice");
    c.role = SBP__ROLE__ROLE_CUSTOMER;
    c.exp = 1800000000LL + 3600;
    c.nbf = 1800000000LL - 10;
    c.iat = 1800000000LL - 10;
    strcpy(c.locale, "zh-CN");
    char t[1024];
    int n = sb_token_sign(KEY, sizeof KEY - 1, &c, t, sizeof t);
    if (n > 0) put("fuzz_token", "valid", t, (size_t)n);
    c.exp = 1800000000LL - 3600;
    n = sb_token_sign(KEY, sizeof KEY - 1, &c, t, sizeof t);
    if (n > 0) put("fuzz_token", "expired", t, (size_t)n);
    token_raw("alg_none", "{\"alg\":\"none\",\"typ\":\"JWT\"}",
              "{\"sub\":\"alice\",\"role\":\"admin\",\"exp\":9999999999}");
    token_raw("alg_hs512", "{\"alg\":\"HS512\"}",
              "{\"sub\":\"alice\",\"role\":\"admin\",\"exp\":9999999999}");
    token_raw("dup_keys", "{\"alg\":\"HS256\",\"alg\":\"none\"}",
              "{\"sub\":\"a\",\"sub\":\"b\",\"role\":\"agent\",\"exp\":1}");
    token_raw("types", "{\"alg\":\"HS256\"}",
              "{\"sub\":\"x\",\"role\":\"bot\",\"exp\":1.5,\"nbf\":\"1\","
              "\"iss\":\"https://id.example.com\",\"aud\":[\"sb\"]}");
    /* '!' inputs: claims to sign: role, exp, nbf, locale flag, sub */
    put_str("fuzz_token", "sign_agent",
            "!\x02\x10\x00\x01"
            "bob");
    put_str("fuzz_token", "sign_locale",
            "!\x04\x10\x03\x04"
            "en-GBroot");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkseeds DIR\n");
        return 2;
    }
    root = argv[1];
    mkdir(root, 0755);
    http_seeds();
    ws_seeds();
    frame_seeds();
    token_seeds();
    tz_seeds();
    return 0;
}
