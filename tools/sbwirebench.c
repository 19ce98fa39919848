/* sbwirebench: bytes on the wire and time of bulk answers, with and
 * without permessage-deflate (scripts/bench-deflate.sh).
 *
 * Against a running server: a writer fills one conversation with --msgs
 * chat messages (English and Chinese sentences of 20 to 200 bytes), then
 * for protobuf and JSON, each without and with permessage-deflate, a
 * reader on a connection of its own asks --reps times for a HISTORY page
 * of 200 and for a whole SYNC of the conversation (pages until more is
 * false). Each line of output gives the wire bytes received for one
 * answer (WebSocket frames, as read from the socket) and the median,
 * 10th and 90th percentile time from the request written to the answer
 * decoded. With --frames, no server: the compressed size and the time to
 * compress and decompress a PUSH frame of one message of each size, for
 * the threshold below which messages go uncompressed. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sb_b64.h"
#include "sb_client_hs.h"
#include "sb_codec.h"
#include "sb_token.h"
#include "sb_ws.h"
#include "sb_wsdeflate.h"
#include "sb_tool.h"

#define REPS_MAX 1000

/* ---- chat text -------------------------------------------------------- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 32);
}

/* Customer-service chat, about len bytes of UTF-8: words drawn from a
 * vocabulary of English and Chinese with numbers between them (ordinary
 * text compresses better; chat in a support queue, order numbers and all,
 * about as well as this). */
static void chat_text(char *p, size_t len)
{
    static const char *const words[] = {"hello",        "hi",
                                        "order",        "number",
                                        "parcel",       "delivery",
                                        "refund",       "return",
                                        "please",       "thanks",
                                        "thank",        "you",
                                        "for",          "waiting",
                                        "checked",      "warehouse",
                                        "tomorrow",     "today",
                                        "noon",         "arrive",
                                        "arrived",      "not",
                                        "yet",          "still",
                                        "status",       "tracking",
                                        "link",         "says",
                                        "stuck",        "in",
                                        "transit",      "could",
                                        "check",        "would",
                                        "like",         "a",
                                        "the",          "my",
                                        "your",         "it",
                                        "is",           "was",
                                        "will",         "be",
                                        "has",          "have",
                                        "been",         "i",
                                        "we",           "can",
                                        "help",         "with",
                                        "anything",     "else",
                                        "address",      "phone",
                                        "email",        "changed",
                                        "wrong",        "size",
                                        "color",        "damaged",
                                        "box",          "opened",
                                        "missing",      "item",
                                        "items",        "invoice",
                                        "receipt",      "payment",
                                        "card",         "charged",
                                        "twice",        "cancel",
                                        "subscription", "account",
                                        "password",     "reset",
                                        "login",        "app",
                                        "website",      "error",
                                        "again",        "sorry",
                                        "apologize",    "inconvenience",
                                        "ticket",       "escalate",
                                        "manager",      "agent",
                                        "minutes",      "hours",
                                        "days",         "week",
                                        "monday",       "friday",
                                        "weekend",      "express",
                                        "standard",     "shipping",
                                        "free",         "fee",
                                        "price",        "discount",
                                        "coupon",       "code",
                                        "expired",      "valid",
                                        "until",        "end",
                                        "of",           "month",
                                        "ok",           "great",
                                        "perfect",      "understood",
                                        "sure",         "right",
                                        "away",         "now",
                                        "您好",         "订单",
                                        "号码",         "包裹",
                                        "还没",         "收到",
                                        "请",           "帮我",
                                        "查一下",       "物流",
                                        "信息",         "退款",
                                        "退货",         "申请",
                                        "感谢",         "您的",
                                        "耐心",         "等待",
                                        "预计",         "明天",
                                        "上午",         "送达",
                                        "还有",         "其他",
                                        "可以",         "帮您",
                                        "的吗",         "地址",
                                        "电话",         "修改",
                                        "错了",         "尺码",
                                        "颜色",         "破损",
                                        "缺少",         "发票",
                                        "付款",         "扣了",
                                        "两次",         "取消",
                                        "账号",         "密码",
                                        "登录",         "不好意思",
                                        "给您",         "带来",
                                        "不便",         "好的",
                                        "谢谢"};
    size_t n = 0, nw = sizeof words / sizeof *words;
    while (n + 24 < len) {
        uint32_t r = rnd();
        if (r % 11 == 0) {
            n += (size_t)snprintf(p + n, 24, "%u ", rnd() % 10000000);
            continue;
        }
        const char *w = words[r % nw];
        size_t k = strlen(w);
        memcpy(p + n, w, k);
        n += k;
        p[n++] = r % 7 == 0 ? ',' : r % 13 == 0 ? '.' : ' ';
        if (p[n - 1] != ' ') p[n++] = ' ';
    }
    p[n] = '\0';
}

/* Cuts s to at most n bytes at a UTF-8 character boundary. */
static void utf8_cut(char *s, size_t n)
{
    if (strlen(s) <= n) return;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    s[n] = '\0';
}

/* ---- a blocking WebSocket client ---------------------------------------- */

typedef struct cli {
    int fd;
    sb_ws *ws;
    sb_encoding enc;
    uint64_t rng;
    uint32_t rid;
    uint64_t wire_in; /* bytes read from the socket */
    Sbp__Frame *got;  /* the last frame decoded */
} cli;

static void cli_rand(void *ud, uint8_t *p, size_t n)
{
    cli *c = ud;
    for (size_t i = 0; i < n; i++) {
        c->rng = c->rng * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (uint8_t)(c->rng >> 56);
    }
}

static void cli_msg(void *ud, bool text, const uint8_t *p, size_t n)
{
    (void)text;
    cli *c = ud;
    sb_frame_free(c->got);
    c->got = NULL;
    if (sb_frame_decode(c->enc, p, n, &c->got) != 0)
        sb_tool_die("undecodable frame");
}

static const sb_ws_cbs CLI_CBS = {.on_msg = cli_msg, .rand_bytes = cli_rand};

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) sb_tool_die("write failed");
        p += w;
        n -= (size_t)w;
    }
}

/* Reads once (waiting up to 30 s) and feeds the bytes. */
static void cli_pump(cli *c)
{
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    if (poll(&pf, 1, 30000) <= 0) sb_tool_die("timeout");
    static uint8_t buf[1 << 16];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n <= 0) sb_tool_die("the server closed");
    c->wire_in += (uint64_t)n;
    if (c->ws) {
        if (sb_ws_feed(c->ws, buf, (size_t)n) != 0)
            sb_tool_die("bad WebSocket data");
        sb_buf out = SB_BUF_INIT;
        if (sb_ws_pull(c->ws, &out) == 0 && out.len)
            write_all(c->fd, out.data, out.len); /* pongs */
        sb_buf_free(&out);
    }
}

static void cli_open(cli *c, const char *url, sb_encoding enc, bool deflate)
{
    memset(c, 0, sizeof *c);
    c->enc = enc;
    c->rng = (uint64_t)sb_tool_now_ns() | 1;
    sb_client_url u;
    if (sb_client_url_parse(url, &u) != 0 || u.tls) sb_tool_die("bad --url");
    char port[8];
    snprintf(port, sizeof port, "%u", u.port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(u.host, port, &hints, &ai) != 0)
        sb_tool_die("cannot resolve");
    c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0)
        sb_tool_die("cannot connect");
    freeaddrinfo(ai);
    uint8_t nonce[16];
    cli_rand(c, nonce, sizeof nonce);
    char key[SB_WS_KEY_LEN + 8];
    sb_b64_encode(nonce, sizeof nonce, key, 0);
    const char *proto =
        enc == SB_ENC_JSON ? SB_SUBPROTO_JSON : SB_SUBPROTO_PROTO;
    sb_buf b = SB_BUF_INIT;
    if (sb_client_hs_request(&u, key, proto, deflate, &b) != 0)
        sb_tool_die("request");
    write_all(c->fd, b.data, b.len);
    b.len = 0;
    int head = 0, status = 0;
    sb_wsdeflate_params agreed;
    while (head == 0) {
        uint8_t buf[4096];
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n <= 0 || sb_buf_append(&b, buf, (size_t)n) != 0)
            sb_tool_die("upgrade");
        head = sb_client_hs_response(b.data, b.len, key, proto, deflate,
                                     &agreed, &status);
        if (head < 0) sb_tool_die("upgrade refused");
    }
    if (deflate && !agreed.on) sb_tool_die("the server did not take deflate");
    sb_ws_config cfg = {.client = true,
                        .msg_bytes_max = 64u << 20,
                        .deflate = agreed,
                        .deflate_min_bytes = 512};
    if (sb_ws_new(NULL, &cfg, &CLI_CBS, c, &c->ws) != 0) sb_tool_die("memory");
    if ((size_t)head < b.len &&
        sb_ws_feed(c->ws, b.data + head, b.len - (size_t)head) != 0)
        sb_tool_die("bad WebSocket data");
    sb_buf_free(&b);
}

static uint32_t cli_send(cli *c, Sbp__Frame *f)
{
    f->rid = ++c->rid;
    sb_buf b = SB_BUF_INIT, out = SB_BUF_INIT;
    if (sb_frame_encode(c->enc, f, &b) != 0 ||
        sb_ws_send(c->ws, c->enc == SB_ENC_JSON, b.data, b.len) != 0 ||
        sb_ws_pull(c->ws, &out) != 0)
        sb_tool_die("send");
    write_all(c->fd, out.data, out.len);
    sb_buf_free(&b);
    sb_buf_free(&out);
    return f->rid;
}

/* The next frame with body case bc and rid (0: any); dies on ERROR. */
static Sbp__Frame *cli_expect(cli *c, Sbp__Frame__BodyCase bc, uint32_t rid)
{
    for (;;) {
        while (!c->got)
            cli_pump(c);
        Sbp__Frame *f = c->got;
        c->got = NULL;
        if (f->body_case == bc && (!rid || f->rid == rid)) return f;
        if (f->body_case == SBP__FRAME__BODY_ERROR && f->rid == rid) {
            fprintf(stderr, "sbwirebench: ERROR %d %s\n", f->error->code,
                    f->error->text);
            exit(1);
        }
        sb_frame_free(f);
    }
}

static void cli_hello(cli *c, const char *secret, const char *user,
                      Sbp__Role role, const char *device)
{
    sb_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "%s", user);
    cl.role = role;
    cl.exp = (int64_t)time(NULL) + 3600;
    char tok[1024];
    if (sb_token_sign((const uint8_t *)secret, strlen(secret), &cl, tok,
                      sizeof tok) < 0)
        sb_tool_die("token");
    Sbp__Hello h = SBP__HELLO__INIT;
    h.token = tok;
    h.device_id = (char *)device;
    h.client = (char *)"sbwirebench";
    h.protocol = 1;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_HELLO;
    f.hello = &h;
    uint32_t rid = cli_send(c, &f);
    sb_frame_free(cli_expect(c, SBP__FRAME__BODY_WELCOME, rid));
}

static void cli_close(cli *c)
{
    sb_frame_free(c->got);
    sb_ws_free(c->ws);
    close(c->fd);
}

/* ---- the measurements -----------------------------------------------------
 */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(int64_t *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    return (double)v[(int)(p * (n - 1) + 0.5)] / 1e6;
}

/* Fills conversation conv (opened by agent for customer) with n
 * messages; returns its id. */
static uint64_t fill(const char *url, const char *secret, const char *run,
                     uint32_t n)
{
    char agent[64], cust[64];
    snprintf(agent, sizeof agent, "wa-%s", run);
    snprintf(cust, sizeof cust, "wc-%s", run);
    /* OPEN names only users the server has seen: the customer says
     * HELLO first. */
    cli cu;
    cli_open(&cu, url, SB_ENC_PROTO, false);
    cli_hello(&cu, secret, cust, SBP__ROLE__ROLE_CUSTOMER, "w");
    cli_close(&cu);
    cli w;
    cli_open(&w, url, SB_ENC_PROTO, false);
    cli_hello(&w, secret, agent, SBP__ROLE__ROLE_AGENT, "w");
    char *members[1] = {cust};
    Sbp__Open op = SBP__OPEN__INIT;
    op.members = members;
    op.n_members = 1;
    op.kind = SBP__CONV_KIND__CONV_DIRECT;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_OPEN;
    f.open = &op;
    uint32_t rid = cli_send(&w, &f);
    Sbp__Frame *g = cli_expect(&w, SBP__FRAME__BODY_OPEN_RESP, rid);
    uint64_t conv = g->open_resp->conv->conv_id;
    sb_frame_free(g);
    /* In windows of 32 SENDs, each waiting for its acks. */
    char body[512];
    uint8_t cmid[16];
    for (uint32_t i = 0; i < n;) {
        uint32_t k = n - i < 32 ? n - i : 32;
        uint32_t last = 0;
        for (uint32_t j = 0; j < k; j++) {
            chat_text(body, 60 + rnd() % 180);
            cli_rand(&w, cmid, sizeof cmid);
            Sbp__Send s = SBP__SEND__INIT;
            s.client_msg_id.data = cmid;
            s.client_msg_id.len = sizeof cmid;
            s.conv_id = conv;
            s.type = SBP__MSG_TYPE__MSG_TEXT;
            s.body = body;
            Sbp__Frame sf = SBP__FRAME__INIT;
            sf.body_case = SBP__FRAME__BODY_SEND;
            sf.send = &s;
            last = cli_send(&w, &sf);
        }
        sb_frame_free(cli_expect(&w, SBP__FRAME__BODY_SEND_ACK, last));
        i += k;
    }
    cli_close(&w);
    return conv;
}

static void measure(const char *url, const char *secret, const char *run,
                    uint64_t conv, uint32_t msgs, int reps, sb_encoding enc,
                    bool deflate)
{
    char cust[64];
    snprintf(cust, sizeof cust, "wc-%s", run);
    cli c;
    cli_open(&c, url, enc, deflate);
    cli_hello(&c, secret, cust, SBP__ROLE__ROLE_CUSTOMER,
              deflate ? "r-z" : "r");
    static int64_t t_hist[REPS_MAX], t_sync[REPS_MAX];
    uint64_t b_hist = 0, b_sync = 0;
    size_t n_hist = 0, n_sync = 0;
    for (int r = 0; r < reps; r++) {
        /* HISTORY: the newest 200. */
        Sbp__History h = SBP__HISTORY__INIT;
        h.conv_id = conv;
        h.limit = 200;
        Sbp__Frame f = SBP__FRAME__INIT;
        f.body_case = SBP__FRAME__BODY_HISTORY;
        f.history = &h;
        uint64_t w0 = c.wire_in;
        int64_t t0 = sb_tool_now_ns();
        uint32_t rid = cli_send(&c, &f);
        Sbp__Frame *g = cli_expect(&c, SBP__FRAME__BODY_HISTORY_RESP, rid);
        t_hist[r] = sb_tool_now_ns() - t0;
        b_hist = c.wire_in - w0;
        n_hist = g->history_resp->n_messages;
        sb_frame_free(g);
        /* SYNC from nothing: every page until more is false. */
        w0 = c.wire_in;
        t0 = sb_tool_now_ns();
        uint64_t have = 0;
        n_sync = 0;
        for (;;) {
            Sbp__Cursor cur = SBP__CURSOR__INIT;
            cur.conv_id = conv;
            cur.seq = have;
            Sbp__Cursor *curs[1] = {&cur};
            Sbp__Sync s = SBP__SYNC__INIT;
            s.cursors = curs;
            s.n_cursors = 1;
            s.limit = 200;
            Sbp__Frame sf = SBP__FRAME__INIT;
            sf.body_case = SBP__FRAME__BODY_SYNC;
            sf.sync = &s;
            rid = cli_send(&c, &sf);
            g = cli_expect(&c, SBP__FRAME__BODY_SYNC_RESP, rid);
            for (size_t i = 0; i < g->sync_resp->n_messages; i++)
                if (g->sync_resp->messages[i]->conv_id == conv &&
                    g->sync_resp->messages[i]->seq > have)
                    have = g->sync_resp->messages[i]->seq;
            n_sync += g->sync_resp->n_messages;
            bool more = g->sync_resp->more;
            sb_frame_free(g);
            if (!more) break;
        }
        t_sync[r] = sb_tool_now_ns() - t0;
        b_sync = c.wire_in - w0;
    }
    const char *e = enc == SB_ENC_JSON ? "json" : "proto";
    printf("{\"answer\":\"history-200\",\"encoding\":\"%s\",\"deflate\":%s,"
           "\"messages\":%zu,\"wire_bytes\":%" PRIu64 ",\"ms_p50\":%.3f,"
           "\"ms_p10\":%.3f,\"ms_p90\":%.3f,\"reps\":%d}\n",
           e, deflate ? "true" : "false", n_hist, b_hist,
           pct_ms(t_hist, reps, 0.5), pct_ms(t_hist, reps, 0.1),
           pct_ms(t_hist, reps, 0.9), reps);
    printf("{\"answer\":\"sync-%u\",\"encoding\":\"%s\",\"deflate\":%s,"
           "\"messages\":%zu,\"wire_bytes\":%" PRIu64 ",\"ms_p50\":%.3f,"
           "\"ms_p10\":%.3f,\"ms_p90\":%.3f,\"reps\":%d}\n",
           msgs, e, deflate ? "true" : "false", n_sync, b_sync,
           pct_ms(t_sync, reps, 0.5), pct_ms(t_sync, reps, 0.1),
           pct_ms(t_sync, reps, 0.9), reps);
    fflush(stdout);
    cli_close(&c);
}

/* No server: one PUSH frame of one message per size, compressed. */
static void frames(int level)
{
    static const size_t sizes[] = {50,  100,  200,  300,  400, 512,
                                   768, 1024, 2048, 4096, 8000};
    sb_wsdeflate *z;
    if (sb_wsdeflate_new(level, &z) != 0) sb_tool_die("memory");
    for (int e = 0; e < 2; e++) {
        sb_encoding enc = e ? SB_ENC_JSON : SB_ENC_PROTO;
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            char body[9000];
            chat_text(body, sizes[k] + 64);
            utf8_cut(body, sizes[k]);
            Sbp__Message m = SBP__MESSAGE__INIT;
            m.msg_id = 123456789;
            m.conv_id = 4242;
            m.seq = 1234;
            m.sender = (char *)"customer-12345";
            m.sender_device = (char *)"phone-1";
            m.type = SBP__MSG_TYPE__MSG_TEXT;
            m.body = body;
            m.server_ts = 1796000000000;
            Sbp__Message *ms[1] = {&m};
            Sbp__Push p = SBP__PUSH__INIT;
            p.messages = ms;
            p.n_messages = 1;
            Sbp__Frame f = SBP__FRAME__INIT;
            f.body_case = SBP__FRAME__BODY_PUSH;
            f.push = &p;
            sb_buf plain = SB_BUF_INIT, zb = SB_BUF_INIT, back = SB_BUF_INIT;
            if (sb_frame_encode(enc, &f, &plain) != 0) sb_tool_die("encode");
            enum { N = 20000 };
            int64_t t0 = sb_tool_now_ns();
            for (int i = 0; i < N; i++) {
                zb.len = 0;
                sb_wsdeflate_compress(z, 15, plain.data, plain.len, &zb);
            }
            int64_t t1 = sb_tool_now_ns();
            for (int i = 0; i < N; i++) {
                back.len = 0;
                sb_wsdeflate_decompress(z, zb.data, zb.len, 1 << 20, &back);
            }
            int64_t t2 = sb_tool_now_ns();
            if (back.len != plain.len ||
                memcmp(back.data, plain.data, plain.len) != 0)
                sb_tool_die("round trip");
            printf("{\"frame\":\"push-1\",\"encoding\":\"%s\",\"level\":%d,"
                   "\"body_bytes\":%zu,\"frame_bytes\":%zu,"
                   "\"deflated_bytes\":%zu,\"saved_bytes\":%ld,"
                   "\"deflate_us\":%.2f,\"inflate_us\":%.2f}\n",
                   e ? "json" : "proto", level, sizes[k], plain.len, zb.len,
                   (long)plain.len - (long)zb.len, (double)(t1 - t0) / N / 1e3,
                   (double)(t2 - t1) / N / 1e3);
            sb_buf_free(&plain);
            sb_buf_free(&zb);
            sb_buf_free(&back);
        }
    }
    sb_wsdeflate_free(z);
}

int main(int argc, char **argv)
{
    /* A write to a connection the server closed fails, not kills. */
    signal(SIGPIPE, SIG_IGN);
    const char *url = "ws://127.0.0.1:8080/ws", *secret = getenv("SB_SECRET");
    uint32_t msgs = 1000;
    int reps = 20, level = 6;
    bool only_frames = false;
    static const struct option opts[] = {
        {"url", 1, 0, 'u'},  {"secret", 1, 0, 's'}, {"msgs", 1, 0, 'm'},
        {"reps", 1, 0, 'r'}, {"frames", 0, 0, 'f'}, {"level", 1, 0, 'l'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u':
            url = optarg;
            break;
        case 's':
            secret = optarg;
            break;
        case 'm':
            msgs = (uint32_t)atol(optarg);
            break;
        case 'r':
            reps = atoi(optarg);
            break;
        case 'f':
            only_frames = true;
            break;
        case 'l':
            level = atoi(optarg);
            break;
        case 'h':
            printf("usage: sbwirebench [--url URL --secret S --msgs 1000 "
                   "--reps 20] | --frames [--level 6]\n");
            return 0;
        default:
            return 2;
        }
    }
    if (level < 1 || level > 9) sb_tool_die("--level 1..9");
    if (only_frames) {
        frames(level);
        return 0;
    }
    if (!secret) sb_tool_die("--secret or SB_SECRET is required");
    if (reps < 1 || reps > REPS_MAX || msgs < 200) sb_tool_die("bad sizes");
    char run[32];
    snprintf(run, sizeof run, "%lld", (long long)(sb_tool_now_ns() / 1000000));
    uint64_t conv = fill(url, secret, run, msgs);
    for (int e = 0; e < 2; e++)
        for (int d = 0; d < 2; d++)
            measure(url, secret, run, conv, msgs, reps,
                    e ? SB_ENC_JSON : SB_ENC_PROTO, d == 1);
    return 0;
}
