/* sbbench: the cs-chat load generator of DESIGN.md §7, on the C SDK.
 *
 * P conversations, each one customer and one agent connection; each side
 * sends M messages of a B-byte text to the other, closed loop with W in
 * flight per client (or open loop at a fixed total rate). Latency is from
 * the send call to the message surfacing at the receiver (both in this
 * process, one monotonic clock). Prints one JSON object. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "sb_client.h"
#include "sb_client_hs.h"
#include "sb_token.h"
#include "sb_tool.h"

typedef struct bench bench;

/* Open loop: messages a client owes while its window is full. */
#define OWED_MAX 256

typedef struct peer {
    bench *b;
    sb_client *c;
    int idx; /* conversation index */
    bool agent;
    char user[32];
    uint64_t conv_id;
    uint32_t sent;         /* sends issued */
    uint32_t acked;        /* SENT statuses */
    uint32_t inflight;     /* issued, not yet SENT */
    int64_t next_expected; /* next message index from the other side */
    uint32_t received;
    bool ready;
    int64_t owed[OWED_MAX]; /* open loop: their scheduled times, a ring */
    uint32_t owed_head, owed_len;
} peer;

struct bench {
    uv_loop_t *loop;
    const char *url;
    const char *urls[SB_CLIENT_URLS_MAX]; /* url, split at its commas */
    size_t n_urls;
    const char *secret;
    sb_encoding enc;
    bool no_deflate;
    uint32_t convs, msgs, window, body_bytes, rate, timeout_s;
    bool spread; /* conversation i: agent on node i, customer on i + 1 */
    int server_pid;
    peer *peers; /* 2 per conversation: [2i] agent, [2i+1] customer */
    uint32_t n_ready, n_opened;
    uint64_t delivered, dup, ooo, send_failed;
    uint64_t expected;
    double *lat_ms;
    int64_t *lat_sent; /* --lat-out: each latency's send time */
    uint64_t n_lat;
    const char *lat_out;
    int64_t t_start, t_end, t_last_delivery;
    uint64_t open_loop_issued;
    uint32_t rr; /* open loop: next peer to send */
    uv_timer_t timer;
    int phase; /* 0 connect, 1 open, 2 run, 3 done */
    char *body_pad;
};

/* Body: "<send time ns> <index> " padded to body_bytes. The send time is
 * now, or in the open loop the time the schedule gave the message (so a
 * message that waited for the window counts its wait). */
static void issue_send(peer *p, int64_t t)
{
    bench *b = p->b;
    char body[4096];
    int n = snprintf(body, sizeof body, "%" PRId64 " %u ", t, p->sent);
    size_t want = b->body_bytes < sizeof body ? b->body_bytes : sizeof body - 1;
    if ((size_t)n < want) {
        memcpy(body + n, b->body_pad, want - (size_t)n);
        n = (int)want;
    }
    int rc = sb_client_send(p->c, p->conv_id, SBP__MSG_TYPE__MSG_TEXT, body,
                            (size_t)n, 0, NULL);
    if (rc != 0) {
        b->send_failed++;
        return;
    }
    p->sent++;
    p->inflight++;
}

static void fill_window(peer *p)
{
    bench *b = p->b;
    while (p->sent < b->msgs && p->inflight < b->window)
        issue_send(p, sb_tool_now_ns());
}

/* Open loop: sends what the client owes, as far as its window lets. */
static void drain_owed(peer *p)
{
    while (p->owed_len && p->inflight < p->b->window) {
        int64_t t = p->owed[p->owed_head];
        p->owed_head = (p->owed_head + 1) % OWED_MAX;
        p->owed_len--;
        issue_send(p, t);
    }
}

static void on_message(void *ud, const Sbp__Message *m)
{
    peer *p = ud;
    bench *b = p->b;
    if (strcmp(m->sender, p->user) == 0) return; /* own message */
    int64_t t = 0;
    unsigned idx = 0;
    if (sscanf(m->body, "%" SCNd64 " %u", &t, &idx) != 2) return;
    int64_t now = sb_tool_now_ns();
    if ((int64_t)idx < p->next_expected) {
        b->dup++;
        return;
    }
    if ((int64_t)idx > p->next_expected) b->ooo++;
    p->next_expected = (int64_t)idx + 1;
    p->received++;
    b->delivered++;
    b->t_last_delivery = now;
    if (b->n_lat < b->expected) {
        if (b->lat_sent) b->lat_sent[b->n_lat] = t;
        b->lat_ms[b->n_lat++] = (double)(now - t) / 1e6;
    }
}

static void on_send_status(void *ud, const sb_client_send_info *s)
{
    peer *p = ud;
    bench *b = p->b;
    if (s->status == SB_SEND_SENT) {
        p->acked++;
        p->inflight--;
        if (b->rate == 0 && b->phase == 2) fill_window(p);
    } else if (s->status == SB_SEND_FAILED) {
        b->send_failed++;
        p->inflight--;
    }
    if (b->rate && (s->status == SB_SEND_SENT || s->status == SB_SEND_FAILED))
        drain_owed(p);
}

static void on_state(void *ud, sb_client_state st, int err)
{
    peer *p = ud;
    if (st == SB_CLIENT_READY && !p->ready) {
        p->ready = true;
        p->b->n_ready++;
    }
    if (st == SB_CLIENT_STOPPED) {
        fprintf(stderr, "sbbench: %s stopped: %s\n", p->user,
                sb_client_err_name(err));
        exit(1);
    }
}

/* The answer to the agent's OPEN (its only request). */
static void on_response(void *ud, uint32_t rid, Sbp__Frame__BodyCase req,
                        int err, const Sbp__Frame *resp)
{
    (void)rid;
    (void)req;
    peer *p = ud;
    if (err != 0) {
        fprintf(stderr, "sbbench: open failed: %s\n", sb_client_err_name(err));
        exit(1);
    }
    uint64_t conv_id = resp->open_resp->conv->conv_id;
    p->conv_id = conv_id;
    p->b->peers[p->idx * 2 + 1].conv_id = conv_id;
    p->b->n_opened++;
}

static const sb_client_cbs CBS = {
    .on_state = on_state,
    .on_message = on_message,
    .on_send_status = on_send_status,
    .on_response = on_response,
};

static void start_run(bench *b)
{
    b->phase = 2;
    b->t_start = sb_tool_now_ns();
    if (b->rate == 0)
        for (uint32_t i = 0; i < 2 * b->convs; i++)
            fill_window(&b->peers[i]);
}

/* Hands out what the rate owes since the start, round robin; message k
 * is due at t_start + k / rate. A client with its window full sends it
 * when a SEND_ACK opens the window, stamped with the due time. */
static void open_loop_tick(bench *b)
{
    int64_t elapsed = sb_tool_now_ns() - b->t_start;
    uint64_t owed = (uint64_t)((double)elapsed / 1e9 * b->rate);
    uint64_t total = (uint64_t)b->msgs * 2 * b->convs;
    if (owed > total) owed = total;
    uint32_t n = 2 * b->convs;
    for (uint32_t guard = 0; b->open_loop_issued < owed && guard < 4 * n;
         guard++) {
        peer *p = &b->peers[b->rr];
        b->rr = (b->rr + 1) % n;
        if (p->sent + p->owed_len >= b->msgs) continue;
        if (p->owed_len == OWED_MAX)
            sb_tool_die(
                "open loop: a client owes too many messages (the server is "
                "not keeping up with --rate at this --window)");
        int64_t due =
            b->t_start + (int64_t)((double)b->open_loop_issued * 1e9 / b->rate);
        p->owed[(p->owed_head + p->owed_len) % OWED_MAX] = due;
        p->owed_len++;
        drain_owed(p);
        b->open_loop_issued++;
    }
}

static void on_timer(uv_timer_t *t)
{
    bench *b = t->data;
    int64_t now = sb_tool_now_ns();
    if (b->phase == 0 && b->n_ready == 2 * b->convs) {
        b->phase = 1;
        for (uint32_t i = 0; i < b->convs; i++) {
            peer *agent = &b->peers[2 * i];
            const char *members[1] = {b->peers[2 * i + 1].user};
            if (sb_client_open(agent->c, members, 1, "bench",
                               SBP__CONV_KIND__CONV_DIRECT, NULL) != 0)
                sb_tool_die("open request failed");
        }
    } else if (b->phase == 1 && b->n_opened == b->convs) {
        start_run(b);
    } else if (b->phase == 2) {
        if (b->rate) open_loop_tick(b);
        if (b->delivered >= b->expected ||
            now - b->t_start > (int64_t)b->timeout_s * 1000000000LL) {
            b->phase = 3;
            b->t_end = b->delivered >= b->expected ? b->t_last_delivery : now;
            uv_stop(b->loop);
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, uint64_t n, double p)
{
    if (n == 0) return 0;
    uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static void proc_stats(int pid, long *rss_kb, double *cpu_s)
{
    *rss_kb = -1;
    *cpu_s = -1;
    if (pid <= 0) return;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %ld", rss_kb) == 1) break;
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                   &ut, &st) == 2)
            *cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: sbbench [options]   (the cs-chat workload, DESIGN.md §7)\n"
        "  --url URL[,URL...] ws://127.0.0.1:8080/ws; several (cluster "
        "nodes,\n"
        "                     comma-separated): each client starts at a "
        "random one\n"
        "  --spread           with several URLs: conversation i's agent on "
        "node i,\n"
        "                     its customer on the next (every message "
        "crosses nodes)\n"
        "  --secret S         token secret of the server (or env SB_SECRET)\n"
        "  --convs P          conversations (500)\n"
        "  --msgs M           messages per side (200)\n"
        "  --window W         sends in flight per client (16); in the open "
        "loop a\n"
        "                     client with W in flight holds the next until "
        "one is acked\n"
        "  --rate R           open loop: R messages/s in total (0: closed "
        "loop)\n"
        "  --body-bytes B     message size (100)\n"
        "  --json             use the JSON subprotocol\n"
        "  --no-deflate       do not offer permessage-deflate\n"
        "  --server-pid PID   report this process's peak RSS and CPU seconds\n"
        "  --lat-out FILE     write each message's send time (ms from the "
        "start)\n"
        "                     and latency (ms), one per line, for plots\n"
        "  --timeout-s T      give up after T seconds of run (120)\n"
        "  --help, --version\n");
}

int main(int argc, char **argv)
{
    bench b;
    memset(&b, 0, sizeof b);
    b.url = "ws://127.0.0.1:8080/ws";
    b.secret = getenv("SB_SECRET");
    b.convs = 500;
    b.msgs = 200;
    b.window = 16;
    b.body_bytes = 100;
    b.timeout_s = 120;
    static const struct option opts[] = {
        {"url", 1, 0, 'u'},        {"secret", 1, 0, 's'},
        {"convs", 1, 0, 'P'},      {"msgs", 1, 0, 'M'},
        {"window", 1, 0, 'W'},     {"rate", 1, 0, 'r'},
        {"body-bytes", 1, 0, 'B'}, {"json", 0, 0, 'j'},
        {"server-pid", 1, 0, 'p'}, {"timeout-s", 1, 0, 't'},
        {"lat-out", 1, 0, 'L'},    {"spread", 0, 0, 'S'},
        {"no-deflate", 0, 0, 'D'}, {"help", 0, 0, 'h'},
        {"version", 0, 0, 'V'},    {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u':
            b.url = optarg;
            break;
        case 's':
            b.secret = optarg;
            break;
        case 'P':
            b.convs = (uint32_t)atol(optarg);
            break;
        case 'M':
            b.msgs = (uint32_t)atol(optarg);
            break;
        case 'W':
            b.window = (uint32_t)atol(optarg);
            break;
        case 'r':
            b.rate = (uint32_t)atol(optarg);
            break;
        case 'B':
            b.body_bytes = (uint32_t)atol(optarg);
            break;
        case 'j':
            b.enc = SB_ENC_JSON;
            break;
        case 'D':
            b.no_deflate = true;
            break;
        case 'p':
            b.server_pid = atoi(optarg);
            break;
        case 't':
            b.timeout_s = (uint32_t)atol(optarg);
            break;
        case 'L':
            b.lat_out = optarg;
            break;
        case 'S':
            b.spread = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("sbbench %s\n", SB_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!b.secret) sb_tool_die("--secret or SB_SECRET is required");
    static char url_list[4096];
    if (strlen(b.url) >= sizeof url_list) sb_tool_die("--url too long");
    snprintf(url_list, sizeof url_list, "%s", b.url);
    int n_urls = sb_client_urls_split(url_list, b.urls, SB_CLIENT_URLS_MAX);
    if (n_urls < 0) sb_tool_die("bad --url: ws:// URLs separated by commas");
    b.n_urls = (size_t)n_urls;
    if (b.convs == 0 || b.msgs == 0 || b.window == 0 || b.body_bytes < 32 ||
        b.convs > 50000 || b.body_bytes > 4000)
        sb_tool_die("bad sizes");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* A write to a connection the server closed fails, not kills. */
    signal(SIGPIPE, SIG_IGN);
    b.loop = uv_default_loop();
    b.expected = (uint64_t)b.convs * 2 * b.msgs;
    b.lat_ms = malloc(b.expected * sizeof *b.lat_ms);
    b.peers = calloc(2 * b.convs, sizeof *b.peers);
    b.body_pad = malloc(4096);
    if (b.lat_out) b.lat_sent = malloc(b.expected * sizeof *b.lat_sent);
    if (!b.lat_ms || !b.peers || !b.body_pad || (b.lat_out && !b.lat_sent))
        sb_tool_die("out of memory");
    memset(b.body_pad, 'x', 4096);

    int64_t run_id =
        (int64_t)time(NULL) * 1000 + (sb_tool_now_ns() / 1000000) % 1000;
    for (uint32_t i = 0; i < 2 * b.convs; i++) {
        peer *p = &b.peers[i];
        p->b = &b;
        p->idx = (int)(i / 2);
        p->agent = (i % 2) == 0;
        snprintf(p->user, sizeof p->user, "%c%" PRId64 "-%u",
                 p->agent ? 'a' : 'c', run_id, i / 2);
        sb_claims cl;
        memset(&cl, 0, sizeof cl);
        snprintf(cl.sub, sizeof cl.sub, "%s", p->user);
        cl.role = p->agent ? SBP__ROLE__ROLE_AGENT : SBP__ROLE__ROLE_CUSTOMER;
        cl.exp = (int64_t)time(NULL) + 3600;
        char tok[1024];
        if (sb_token_sign((const uint8_t *)b.secret, strlen(b.secret), &cl, tok,
                          sizeof tok) < 0)
            sb_tool_die("cannot sign token");
        sb_client_config cfg;
        sb_client_config_default(&cfg);
        if (b.spread) {
            /* Agent and customer of a conversation on different nodes. */
            cfg.url = b.urls[(i / 2 + (p->agent ? 0 : 1)) % b.n_urls];
        } else {
            cfg.urls = b.urls;
            cfg.n_urls = b.n_urls;
        }
        cfg.enc = b.enc;
        cfg.deflate = !b.no_deflate;
        cfg.token = tok;
        cfg.device_id = "bench";
        cfg.window_max = b.window;
        /* The bench waits for SENT only: no send is watched for its
         * DELIVERED and READ statuses (the receipts still come and are
         * decoded), as an application that shows no ticks would set. */
        cfg.track_max = 0;
        cfg.outbox_max = b.msgs + 16;
        cfg.send_timeout_ms = 30000;
        cfg.backoff_ms_base = 100;
        cfg.backoff_ms_max = 2000;
        if (sb_client_new(b.loop, &cfg, &CBS, p, &p->c) != 0)
            sb_tool_die("cannot create client");
        sb_client_start(p->c);
    }
    uv_timer_init(b.loop, &b.timer);
    b.timer.data = &b;
    uv_timer_start(&b.timer, on_timer, 1, 1);
    int64_t t_setup = sb_tool_now_ns();
    uv_run(b.loop, UV_RUN_DEFAULT);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double client_cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                        (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    long rss_kb;
    double cpu_s;
    proc_stats(b.server_pid, &rss_kb, &cpu_s);
    if (b.lat_out) {
        FILE *f = fopen(b.lat_out, "w");
        if (!f) sb_tool_die("cannot write --lat-out");
        for (uint64_t i = 0; i < b.n_lat; i++)
            fprintf(f, "%.3f %.3f\n", (double)(b.lat_sent[i] - b.t_start) / 1e6,
                    b.lat_ms[i]);
        if (fclose(f) != 0) sb_tool_die("cannot write --lat-out");
    }
    qsort(b.lat_ms, b.n_lat, sizeof *b.lat_ms, cmp_double);
    double elapsed = (double)(b.t_end - b.t_start) / 1e9;
    printf("{\"workload\":\"cs-chat\",\"mode\":\"%s\",\"encoding\":\"%s\","
           "\"convs\":%u,\"msgs\":%u,\"window\":%u,\"rate\":%u,"
           "\"body_bytes\":%u,\"setup_s\":%.2f,\"elapsed_s\":%.3f,"
           "\"delivered\":%" PRIu64 ",\"delivered_per_s\":%.0f,"
           "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
           "\"dup\":%" PRIu64 ",\"ooo\":%" PRIu64 ",\"lost\":%" PRIu64 ","
           "\"send_failed\":%" PRIu64 ",\"server_rss_kb\":%ld,"
           "\"server_cpu_s\":%.2f,\"client_cpu_s\":%.2f}\n",
           b.rate ? "open" : "closed", b.enc == SB_ENC_JSON ? "json" : "proto",
           b.convs, b.msgs, b.window, b.rate, b.body_bytes,
           (double)(b.t_start - t_setup) / 1e9, elapsed, b.delivered,
           elapsed > 0 ? (double)b.delivered / elapsed : 0.0,
           pct(b.lat_ms, b.n_lat, 0.50), pct(b.lat_ms, b.n_lat, 0.99),
           pct(b.lat_ms, b.n_lat, 0.999), b.dup, b.ooo,
           b.expected - (b.delivered < b.expected ? b.delivered : b.expected),
           b.send_failed, rss_kb, cpu_s, client_cpu);
    /* Exit without tearing down a thousand clients: the process ends. */
    return b.delivered == b.expected && b.dup == 0 && b.ooo == 0 ? 0 : 1;
}
