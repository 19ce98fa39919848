/* sbconns: many devices on the C SDK, for the connection benchmarks of
 * scripts/bench-conns.sh (DESIGN.md §7: RSS per idle connection,
 * reconnect storm).
 *
 * One process runs N devices of one role. Agents (a-RUN-I) open a direct
 * conversation with their customer (c-RUN-I, maybe in another process)
 * and send one message into it; customers wait for it. Every device then
 * stays connected and idle, reconnecting by itself (the SDK's backoff
 * with full jitter) whenever its connection ends. The process says on
 * stdout, one line each, with CLOCK_MONOTONIC times in ns:
 *
 *   up N T          all N devices are ready (WELCOME, synced, the first
 *                   message of their conversation surfaced) at T
 *   back N T0 T1 P50 P90 P99
 *                   after a wave in which all N lost their connection
 *                   (first at T0), all are ready again at T1: WELCOME,
 *                   SYNC done and every message sent so far surfaced;
 *                   P50 P90 P99: when half, 90 % and 99 % were
 *   sent N T        (agents, after SIGUSR1) each sent --k messages more
 *                   and all are acknowledged; customers, on SIGUSR1, wait
 *                   for those --k more before they count as ready again
 *
 * With --hello-only the devices have no conversation: up (or back) once
 * connected and synced.
 *
 * With --trace, stderr gets a line every TRACE_MS while a wave is under
 * way ("trace MS_SINCE_WAVE_START ..."): the devices in each state and
 * the errors that ended attempts since the wave began, by name.
 *
 * SIGTERM ends it with a line of counts ("stats ..."). sbconns --now
 * prints the CLOCK_MONOTONIC time in ns (for the script's own events). */
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
#include "sb_error.h"
#include "sb_token.h"
#include "sb_tool.h"

/* Devices started per ramp step (every RAMP_MS), so that the first
 * connections do not overflow the server's accept queue: the storm the
 * benchmark measures is the reconnect, not this. */
#define RAMP_STEP 500
/* An agent's OPEN names a customer the server must have seen (a HELLO):
 * refused with ERR_NOT_FOUND while the customer's process is still
 * connecting, it is asked again OPEN_RETRY_TICKS ticks (of 100 ms) later,
 * OPEN_TRIES_MAX times at most: the server closes a session after 100
 * refused frames. */
#define OPEN_RETRY_TICKS 10
#define OPEN_TRIES_MAX 60
#define RAMP_MS 20
/* --trace: a line this often while a wave is under way. */
#define TRACE_MS 200
/* --trace: distinct error codes counted per wave. */
#define TRACE_ERRS_MAX 16

typedef struct conns conns;

typedef struct dev {
    conns *b;
    sb_client *c;
    uint32_t idx;
    char user[48], partner[48];
    uint64_t conv_id;
    uint32_t expect;     /* messages of the conversation sent so far */
    uint32_t surfaced;   /* of them, surfaced here */
    uint32_t acked;      /* agents: own messages acknowledged */
    bool ready;          /* up at least once */
    bool down;           /* lost its connection, not ready again yet */
    bool synced;         /* synced since its last WELCOME */
    bool opening;        /* agents: OPEN asked */
    uint16_t open_tries; /* agents: OPENs refused so far */
    uint64_t open_tick;  /* agents: no OPEN before this tick */
} dev;

struct conns {
    uv_loop_t *loop;
    const char *url, *secret, *run, *ca_file;
    bool agent, json, deflate, hello_only, trace;
    uint32_t n, first, k, started, n_up, n_down, wave_down, n_acked_goal;
    uint32_t body_bytes;
    uint32_t sources; /* --sources: 127.0.0.2 .. 127.0.0.(1 + sources) */
    dev *devs;
    uv_timer_t ramp, tick;
    uv_signal_t sigterm, sigusr1;
    int64_t t_up, t_wave_start;
    int64_t *back_at; /* this wave's ready times, in order */
    bool up_said, sending;
    uint64_t waves;
    uint64_t ticks; /* of on_tick */
    char *body;
    int trace_err[TRACE_ERRS_MAX];    /* --trace: codes seen this wave */
    uint32_t trace_n[TRACE_ERRS_MAX]; /* and how often */
    uint32_t trace_errs;
    uint64_t trace_ticks; /* on_tick calls since the wave began */
};

/* --trace: err ended an attempt or a connection. */
static void trace_err(conns *b, int err)
{
    uint32_t i = 0;
    while (i < b->trace_errs && b->trace_err[i] != err)
        i++;
    if (i == b->trace_errs) {
        if (i == TRACE_ERRS_MAX) return;
        b->trace_err[b->trace_errs++] = err;
        b->trace_n[i] = 0;
    }
    b->trace_n[i]++;
}

/* --trace: one line on the wave under way. */
static void trace_line(conns *b)
{
    uint32_t by[SB_CLIENT_STOPPED + 1] = {0};
    for (uint32_t i = 0; i < b->started; i++)
        by[sb_client_get_state(b->devs[i].c)]++;
    fprintf(stderr,
            "trace %" PRId64 " connecting=%u hello=%u ready=%u backoff=%u "
            "down=%u",
            (sb_tool_now_ns() - b->t_wave_start) / 1000000,
            by[SB_CLIENT_CONNECTING], by[SB_CLIENT_HELLO_SENT],
            by[SB_CLIENT_READY], by[SB_CLIENT_BACKOFF], b->n_down);
    for (uint32_t i = 0; i < b->trace_errs; i++)
        fprintf(stderr, " %s=%u", sb_client_err_name(b->trace_err[i]),
                b->trace_n[i]);
    fputc('\n', stderr);
}

/* Ready: connected, synced, and every message of its conversation that
 * is known to have been sent surfaced (agents: also their own acked). */
static bool dev_ready(const dev *d)
{
    const conns *b = d->b;
    if (!d->synced || sb_client_get_state(d->c) != SB_CLIENT_READY)
        return false;
    if (b->hello_only) return true;
    if (b->agent) return d->conv_id && d->acked >= d->expect;
    return d->conv_id && d->surfaced >= d->expect;
}

static void check_ready(dev *d)
{
    conns *b = d->b;
    if (!dev_ready(d)) return;
    int64_t t = sb_tool_now_ns();
    if (!d->ready) {
        d->ready = true;
        if (++b->n_up == b->n && !b->up_said) {
            b->up_said = true;
            printf("up %u %" PRId64 "\n", b->n, t);
            fflush(stdout);
        }
    }
    if (d->down) {
        d->down = false;
        uint32_t k = b->wave_down - b->n_down; /* this one's rank */
        if (k < b->n) b->back_at[k] = t;
        if (--b->n_down == 0 && b->wave_down == b->n) {
            b->waves++;
            printf("back %u %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
                   " %" PRId64 "\n",
                   b->n, b->t_wave_start, t, b->back_at[b->n / 2],
                   b->back_at[b->n * 9 / 10], b->back_at[b->n * 99 / 100]);
            fflush(stdout);
            if (b->trace) trace_line(b);
            b->wave_down = 0;
        }
    }
}

static void on_state(void *ud, sb_client_state st, int err)
{
    dev *d = ud;
    conns *b = d->b;
    if (b->trace && b->n_down && st == SB_CLIENT_BACKOFF) trace_err(b, err);
    if (st == SB_CLIENT_STOPPED) {
        fprintf(stderr, "sbconns: %s stopped: %s\n", d->user,
                sb_client_err_name(err));
        exit(1);
    }
    if (st == SB_CLIENT_READY) {
        d->synced = false; /* until the SYNC of this session is done */
        return;
    }
    if (st == SB_CLIENT_BACKOFF && d->ready && !d->down) {
        d->down = true;
        d->synced = false;
        if (b->n_down++ == 0) {
            b->wave_down = 0;
            b->t_wave_start = sb_tool_now_ns();
            b->trace_errs = 0;
            b->trace_ticks = 0;
            if (b->trace) trace_err(b, err);
        }
        b->wave_down++;
    }
}

static void on_synced(void *ud)
{
    dev *d = ud;
    d->synced = true;
    check_ready(d);
}

static void on_message(void *ud, const Sbp__Message *m)
{
    dev *d = ud;
    if (strcmp(m->sender, d->user) == 0) return;
    if (!d->conv_id) d->conv_id = m->conv_id;
    d->surfaced++;
    check_ready(d);
}

static void agent_send(dev *d)
{
    conns *b = d->b;
    if (sb_client_send(d->c, d->conv_id, SBP__MSG_TYPE__MSG_TEXT, b->body,
                       b->body_bytes, 0, NULL) != 0)
        sb_tool_die("send refused");
    d->expect++;
}

static void on_send_status(void *ud, const sb_client_send_info *s)
{
    dev *d = ud;
    conns *b = d->b;
    if (s->status == SB_SEND_FAILED) sb_tool_die("a send failed");
    if (s->status != SB_SEND_SENT) return;
    d->acked++;
    if (b->sending && d->acked == d->expect && ++b->n_acked_goal == b->n) {
        b->sending = false;
        printf("sent %u %" PRId64 "\n", b->n, sb_tool_now_ns());
        fflush(stdout);
    }
    check_ready(d);
}

/* The answer to an agent's OPEN: the conversation, then its first
 * message. */
static void on_response(void *ud, uint32_t rid, Sbp__Frame__BodyCase req,
                        int err, const Sbp__Frame *resp)
{
    (void)rid;
    (void)req;
    dev *d = ud;
    if (err == SB_E_NOT_FOUND && ++d->open_tries < OPEN_TRIES_MAX) {
        d->opening = false; /* the customer has not connected yet */
        d->open_tick = d->b->ticks + OPEN_RETRY_TICKS;
        return;
    }
    if (err != 0) {
        fprintf(stderr, "sbconns: open failed: %s\n", sb_client_err_name(err));
        exit(1);
    }
    d->conv_id = resp->open_resp->conv->conv_id;
    agent_send(d);
}

static const sb_client_cbs CBS = {
    .on_state = on_state,
    .on_message = on_message,
    .on_send_status = on_send_status,
    .on_response = on_response,
    .on_synced = on_synced,
};

/* Agents open their conversation once first ready. */
static void on_tick(uv_timer_t *t)
{
    conns *b = t->data;
    b->ticks++;
    if (b->trace && b->n_down && ++b->trace_ticks % (TRACE_MS / 100) == 0)
        trace_line(b);
    if (!b->agent || b->hello_only) return;
    for (uint32_t i = 0; i < b->started; i++) {
        dev *d = &b->devs[i];
        if (d->opening || d->open_tick > b->ticks || !d->synced ||
            sb_client_get_state(d->c) != SB_CLIENT_READY)
            continue;
        const char *members[1] = {d->partner};
        /* The answer sends the first message. */
        d->opening = sb_client_open(d->c, members, 1, "sbconns",
                                    SBP__CONV_KIND__CONV_DIRECT, NULL) == 0;
    }
}

static void dev_start(conns *b, dev *d)
{
    sb_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "%s", d->user);
    cl.role = b->agent ? SBP__ROLE__ROLE_AGENT : SBP__ROLE__ROLE_CUSTOMER;
    cl.exp = (int64_t)time(NULL) + 24 * 3600;
    char tok[1024];
    if (sb_token_sign((const uint8_t *)b->secret, strlen(b->secret), &cl, tok,
                      sizeof tok) < 0)
        sb_tool_die("cannot sign a token");
    sb_client_config cfg;
    sb_client_config_default(&cfg);
    cfg.url = b->url;
    cfg.enc = b->json ? SB_ENC_JSON : SB_ENC_PROTO;
    cfg.token = tok;
    cfg.device_id = "d";
    cfg.ca_file = b->ca_file;
    cfg.deflate = b->deflate;
    char src[32];
    if (b->sources) {
        snprintf(src, sizeof src, "127.0.0.%u", 2 + d->idx % b->sources);
        cfg.source_addr = src;
    }
    if (sb_client_new(b->loop, &cfg, &CBS, d, &d->c) != 0)
        sb_tool_die("cannot create a client");
    if (!b->agent) d->expect = 1; /* the agent's first message */
    sb_client_start(d->c);
}

static void on_ramp(uv_timer_t *t)
{
    conns *b = t->data;
    for (uint32_t k = 0; k < RAMP_STEP && b->started < b->n; k++) {
        dev *d = &b->devs[b->started++];
        dev_start(b, d);
    }
    if (b->started == b->n) uv_timer_stop(t);
}

/* SIGUSR1: agents send k more messages into each conversation;
 * customers expect them (a device is ready again only once it has them). */
static void on_sigusr1(uv_signal_t *h, int sig)
{
    (void)sig;
    conns *b = h->data;
    if (b->n_up < b->n || b->hello_only)
        sb_tool_die("SIGUSR1 before all devices were up, or with --hello-only");
    if (!b->agent) {
        for (uint32_t i = 0; i < b->n; i++)
            b->devs[i].expect += b->k;
        return;
    }
    b->sending = true;
    b->n_acked_goal = 0;
    for (uint32_t i = 0; i < b->n; i++)
        for (uint32_t j = 0; j < b->k; j++)
            agent_send(&b->devs[i]);
}

static void on_sigterm(uv_signal_t *h, int sig)
{
    (void)sig;
    conns *b = h->data;
    uint64_t connects = 0, readies = 0, surfaced = 0, dups = 0;
    for (uint32_t i = 0; i < b->started; i++) {
        sb_client_stats st;
        sb_client_get_stats(b->devs[i].c, &st);
        connects += st.connects;
        readies += st.readies;
        surfaced += st.surfaced;
        dups += st.duplicates;
    }
    printf("stats devices=%u connects=%" PRIu64 " welcomes=%" PRIu64
           " surfaced=%" PRIu64 " duplicates=%" PRIu64 " waves=%" PRIu64
           " down=%u wave_down=%u up=%u\n",
           b->started, connects, readies, surfaced, dups, b->waves, b->n_down,
           b->wave_down, b->n_up);
    fflush(stdout);
    /* No teardown of thousands of clients: the process ends. */
    _exit(0);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sbconns [options]   (devices for bench-conns.sh)\n"
               "  --url URL         ws://127.0.0.1:8080/ws (wss:// with --ca)\n"
               "  --secret S        token secret of the server (or SB_SECRET)\n"
               "  --role R          customer or agent\n"
               "  --devices N       devices in this process (1000)\n"
               "  --first I         index of the first (0): devices I..I+N-1\n"
               "  --run ID          names a-ID-i and c-ID-i (shared by the "
               "processes)\n"
               "  --k K             agents: messages per conversation on "
               "SIGUSR1 (10)\n"
               "  --body-bytes B    message size (100)\n"
               "  --json            the JSON subprotocol\n"
               "  --no-deflate      do not offer permessage-deflate\n"
               "  --hello-only      no conversations: connect and stay idle\n"
               "  --ca FILE         wss://: the server certificate's CA\n"
               "  --sources N       connect from N loopback addresses, "
               "127.0.0.2 on\n"
               "  --trace           stderr: states and errors during waves\n"
               "  --now             print the monotonic clock (ns) and exit\n");
}

int main(int argc, char **argv)
{
    static conns b;
    b.url = "ws://127.0.0.1:8080/ws";
    b.secret = getenv("SB_SECRET");
    b.n = 1000;
    b.k = 10;
    b.body_bytes = 100;
    b.deflate = true;
    b.run = "r";
    const char *role = "customer";
    static const struct option opts[] = {{"url", 1, 0, 'u'},
                                         {"secret", 1, 0, 's'},
                                         {"role", 1, 0, 'r'},
                                         {"devices", 1, 0, 'n'},
                                         {"first", 1, 0, 'f'},
                                         {"run", 1, 0, 'R'},
                                         {"k", 1, 0, 'k'},
                                         {"json", 0, 0, 'j'},
                                         {"no-deflate", 0, 0, 'D'},
                                         {"ca", 1, 0, 'c'},
                                         {"help", 0, 0, 'h'},
                                         {"body-bytes", 1, 0, 'B'},
                                         {"hello-only", 0, 0, 'H'},
                                         {"now", 0, 0, 'N'},
                                         {"trace", 0, 0, 'T'},
                                         {"sources", 1, 0, 'S'},
                                         {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u':
            b.url = optarg;
            break;
        case 's':
            b.secret = optarg;
            break;
        case 'r':
            role = optarg;
            break;
        case 'n':
            b.n = (uint32_t)atol(optarg);
            break;
        case 'f':
            b.first = (uint32_t)atol(optarg);
            break;
        case 'R':
            b.run = optarg;
            break;
        case 'k':
            b.k = (uint32_t)atol(optarg);
            break;
        case 'B':
            b.body_bytes = (uint32_t)atol(optarg);
            break;
        case 'j':
            b.json = true;
            break;
        case 'D':
            b.deflate = false;
            break;
        case 'c':
            b.ca_file = optarg;
            break;
        case 'H':
            b.hello_only = true;
            break;
        case 'T':
            b.trace = true;
            break;
        case 'S':
            b.sources = (uint32_t)atol(optarg);
            break;
        case 'N':
            printf("%" PRId64 "\n", sb_tool_now_ns());
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!b.secret) sb_tool_die("--secret or SB_SECRET is required");
    if (strcmp(role, "agent") != 0 && strcmp(role, "customer") != 0)
        sb_tool_die("--role customer or agent");
    if (b.n == 0 || b.n > 100000 || b.body_bytes < 1 || b.body_bytes > 4000 ||
        b.sources > 250)
        sb_tool_die("bad sizes");
    b.agent = strcmp(role, "agent") == 0;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* A write to a socket the server has already closed (it closes right
     * after its close frame while it drains) must fail, not kill. */
    signal(SIGPIPE, SIG_IGN);
    b.loop = uv_default_loop();
    b.devs = calloc(b.n, sizeof *b.devs);
    b.back_at = calloc(b.n, sizeof *b.back_at);
    b.body = malloc(b.body_bytes);
    if (!b.devs || !b.body || !b.back_at) sb_tool_die("out of memory");
    memset(b.body, 'm', b.body_bytes);
    for (uint32_t i = 0; i < b.n; i++) {
        dev *d = &b.devs[i];
        d->b = &b;
        d->idx = b.first + i;
        snprintf(d->user, sizeof d->user, "%c-%s-%u", b.agent ? 'a' : 'c',
                 b.run, d->idx);
        snprintf(d->partner, sizeof d->partner, "%c-%s-%u", b.agent ? 'c' : 'a',
                 b.run, d->idx);
    }
    uv_timer_init(b.loop, &b.ramp);
    uv_timer_init(b.loop, &b.tick);
    b.ramp.data = b.tick.data = &b;
    uv_timer_start(&b.ramp, on_ramp, 0, RAMP_MS);
    uv_timer_start(&b.tick, on_tick, 100, 100);
    uv_signal_init(b.loop, &b.sigterm);
    uv_signal_init(b.loop, &b.sigusr1);
    b.sigterm.data = b.sigusr1.data = &b;
    uv_signal_start(&b.sigterm, on_sigterm, SIGTERM);
    uv_signal_start(&b.sigusr1, on_sigusr1, SIGUSR1);
    uv_run(b.loop, UV_RUN_DEFAULT);
    return 0;
}
