/* The simulated world (sim_world.h): its clock, the server (the gateway
 * core on the simulated store, crashed and restarted), the connections
 * between the devices and the server, the faults, and the run. */
#include "sim_world.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sb_desk.h"
#include "sb_error.h"

#define SIM_GW_TICK_MS 50
#define SIM_APP_TICK_MS 100
#define SIM_PING_MS 10000 /* the shell's heartbeat, as it would send it */
#define SIM_CLOSE_WAIT_MS 2000

static const char DESK_FMT[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\"],\"unmatched_max\":2,"
    "\"recall_window_s\":60,\"greeting\":{\"en\":\"Welcome\"},"
    "\"fallback\":{\"en\":\"Sorry?\"},"
    "\"out_of_hours\":{\"en\":\"Nobody is here\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true},"
    "{\"keywords\":[\"refund\"],\"answer\":\"Refunds take 5 days\","
    "\"quick_replies\":[\"Status\"]}]}%s}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":2}%s]}";

void sim_violation(sim_world *w, const char *fmt, ...)
{
    if (w->violated) return;
    w->violated = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->violation, sizeof w->violation, fmt, ap);
    va_end(ap);
    sim_tracef(&w->tr, w->now, "VIOLATION: %s", w->violation);
}

int64_t sim_server_now(const sim_world *w)
{
    return SIM_T0_MS + w->now + w->server_off;
}

/* ---- frames, as the trace and the answer check see them ------------------
 */

/* A frame's rid and body kind, read from its protobuf bytes without
 * decoding it (a JSON one is decoded). */
static void frame_peek(sb_encoding enc, const uint8_t *p, size_t n,
                       uint32_t *rid, int *body)
{
    *rid = 0;
    *body = 0;
    if (enc == SB_ENC_JSON) {
        Sbp__Frame *f = NULL;
        if (sb_frame_decode(enc, p, n, &f) != 0) return;
        *rid = f->rid;
        *body = (int)f->body_case;
        sb_frame_free(f);
        return;
    }
    size_t i = 0;
    while (i < n) {
        uint64_t key = 0, v = 0;
        for (unsigned sh = 0; i < n && sh < 64; sh += 7) {
            key |= (uint64_t)(p[i] & 0x7f) << sh;
            if (!(p[i++] & 0x80)) break;
        }
        if ((key & 7) != 0) {
            *body = (int)(key >> 3);
            return;
        }
        for (unsigned sh = 0; i < n && sh < 64; sh += 7) {
            v |= (uint64_t)(p[i] & 0x7f) << sh;
            if (!(p[i++] & 0x80)) break;
        }
        if (key >> 3 == 1) *rid = (uint32_t)v;
    }
}

/* Frame kinds a client sends that the server answers. */
static bool wants_answer(int body)
{
    switch (body) {
    case SBP__FRAME__BODY_ACK:
    case SBP__FRAME__BODY_READ:
    case SBP__FRAME__BODY_TYPING:
    case 0:
        return false;
    default:
        return true;
    }
}

static const char *kind_name(int body)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&sbp__frame__descriptor,
                                                (unsigned)body);
    return fd ? fd->name : "?";
}

/* ---- the server ------------------------------------------------------------
 */

static sim_conn *conn_find(sim_world *w, uint64_t id)
{
    for (sim_conn *k = w->conns; k; k = k->next)
        if (k->id == id && !k->dead) return k;
    return NULL;
}

static int64_t latency(sim_world *w, const sim_conn *k)
{
    return w->now + k->latency_ms + sim_rng_range(&w->rng, 0, 5);
}

/* The server's WebSocket output onto the wire. */
static void server_flush(sim_world *w, sim_conn *k)
{
    sb_buf out = SB_BUF_INIT;
    if (sb_ws_pull(k->sws, &out) == 0 && out.len)
        (void)sim_pipe_write(&k->down, out.data, out.len, latency(w, k));
    sb_buf_free(&out);
}

static void io_send(void *ud, uint64_t id, const uint8_t *p, size_t n)
{
    sim_world *w = ud;
    sim_conn *k = conn_find(w, id);
    if (w->discard || !k || k->server_closing) return;
    uint32_t rid;
    int body;
    frame_peek(k->enc, p, n, &rid, &body);
    w->st.frames_down++;
    sim_tracef(&w->tr, w->now, "server -> conn %llu: %s rid %u (%zu bytes)",
               (unsigned long long)id, kind_name(body), rid, n);
    for (size_t i = 0; rid && i < k->npend; i++)
        if (k->pend_rid[i] == rid) {
            k->pend_rid[i] = k->pend_rid[--k->npend];
            k->pend_ms[i] = k->pend_ms[k->npend];
            break;
        }
    if (sb_ws_send(k->sws, k->enc == SB_ENC_JSON, p, n) == 0)
        server_flush(w, k);
}

static void io_close(void *ud, uint64_t id, uint16_t code, const char *why)
{
    sim_world *w = ud;
    sim_conn *k = conn_find(w, id);
    if (w->discard || !k || k->server_closing) return;
    sim_tracef(&w->tr, w->now, "server closes conn %llu: %u %s",
               (unsigned long long)id, code, why ? why : "");
    k->server_closing = true;
    k->server_close_ms = w->now;
    sb_ws_close(k->sws, code, why);
    server_flush(w, k);
}

static void io_store(void *ud, sb_req *r)
{
    sim_world *w = ud;
    sim_store_submit(w->store, r, w->now);
}

static int64_t io_now(void *ud)
{
    return sim_server_now(ud);
}

static int server_start(sim_world *w)
{
    char desk[2048], err[256];
    snprintf(desk, sizeof desk, DESK_FMT,
             w->p.ext_bot ? ",\"bot\":\"" SIM_BOT "\"" : "",
             w->p.two_agents
                 ? ",{\"id\":\"a2\",\"groups\":[\"g1\"],\"capacity\":2}"
                 : "");
    int rc = sb_desk_parse(desk, strlen(desk), &w->desk, err, sizeof err);
    if (rc) {
        fprintf(stderr, "sbsim: desk: %s\n", err);
        return rc;
    }
    sb_gw_config c;
    sb_gw_config_default(&c);
    c.secret = (const uint8_t *)SIM_SECRET;
    c.secret_len = strlen(SIM_SECRET);
    c.desk = w->desk;
    c.heartbeat_ms = SIM_PING_MS;
    c.retry_ms_initial = 500;
    c.retry_ms_max = 2000;
    c.retry_attempts_max = 3;
    c.sync_page_max = 20; /* small pages: SYNC loops */
    c.history_page_max = 20;
    c.push_batch_max = w->p.push_batch_max;
    sb_gw_io io = {.ud = w,
                   .send = io_send,
                   .close = io_close,
                   .store = io_store,
                   .now = io_now};
    rc = sb_gw_new(&c, &io, &w->gw);
    if (rc) {
        sb_desk_free(w->desk);
        w->desk = NULL;
        return rc;
    }
    sb_gw_start(w->gw, sim_server_now(w));
    sim_tracef(&w->tr, w->now, "server starts");
    return 0;
}

/* The server dies: whatever the store held and had not committed is gone
 * (what it committed stays), every connection drops, and nothing it was
 * about to say is said. */
static void server_crash(sim_world *w)
{
    sim_tracef(&w->tr, w->now, "SERVER CRASH (%zu store requests held)",
               sim_store_pending(w->store));
    w->st.server_crashes++;
    w->discard = true;
    sim_store_crash(w->store);
    for (sim_conn *k = w->conns; k; k = k->next) {
        k->gw_open = false; /* the gateway goes with its sessions */
        if (!k->dead) sim_conn_cut(w, k, "server gone");
    }
    sb_gw_free(w->gw);
    sb_desk_free(w->desk);
    w->gw = NULL;
    w->desk = NULL;
    w->discard = false;
    w->restart_at = w->now + sim_rng_range(&w->rng, 100, 2000);
}

/* ---- connections
 * -------------------------------------------------------------
 */

static void cws_msg(void *ud, bool text, const uint8_t *p, size_t n)
{
    (void)text;
    sim_conn *k = ud;
    sim_app *a = k->app;
    if (!a || !a->cc || a->conn != k) return;
    sb_client_core_on_frame(a->cc, p, n, sim_app_now(a));
}

static void server_msg(void *ud, bool text, const uint8_t *p, size_t n)
{
    (void)text;
    sim_conn *k = ud;
    sim_world *w = k->w;
    if (!w->gw || !k->gw_open || k->server_closing) return;
    uint32_t rid;
    int body;
    frame_peek(k->enc, p, n, &rid, &body);
    w->st.frames_up++;
    sim_tracef(&w->tr, w->now, "conn %llu -> server: %s rid %u",
               (unsigned long long)k->id, kind_name(body), rid);
    if (wants_answer(body) && rid && k->npend < SIM_PENDING_MAX) {
        k->pend_rid[k->npend] = rid;
        k->pend_ms[k->npend++] = w->now;
    }
    sb_gw_conn_frame(w->gw, k->id, p, n, sim_server_now(w));
}

static void ws_rand(void *ud, uint8_t *p, size_t n)
{
    sim_world *w = ((sim_conn *)ud)->w;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)sim_rng_next(&w->rng);
}

static const sb_ws_cbs CWS = {.on_msg = cws_msg, .rand_bytes = ws_rand};
static const sb_ws_cbs SWS = {.on_msg = server_msg, .rand_bytes = ws_rand};

void sim_conn_cut(sim_world *w, sim_conn *k, const char *why)
{
    if (k->dead) return;
    k->dead = true;
    w->st.cuts++;
    sim_tracef(&w->tr, w->now,
               "conn %llu cut (%s): %zu bytes up, %zu down lost",
               (unsigned long long)k->id, why, sim_pipe_len(&k->up),
               sim_pipe_len(&k->down));
    sim_pipe_clear(&k->up);
    sim_pipe_clear(&k->down);
    if (k->gw_open && w->gw && !w->discard) sb_gw_conn_closed(w->gw, k->id);
    k->gw_open = false;
    sim_app *a = k->app;
    k->app = NULL;
    if (a && a->conn == k) {
        a->conn = NULL;
        if (a->cc) {
            sb_client_core_on_close(a->cc, -ECONNRESET, 0, sim_app_now(a));
            sim_app_pump(a);
        }
    }
}

/* The connection a device asked for is up, or refused. */
static void connect_answer(sim_world *w, sim_app *a)
{
    a->connect_at = 0;
    if (!a->cc) return;
    if (!w->gw) {
        sim_tracef(&w->tr, w->now, "%s: connection refused", a->device);
        sb_client_core_on_close(a->cc, -ECONNREFUSED, 0, sim_app_now(a));
        sim_app_pump(a);
        return;
    }
    sim_conn *k = calloc(1, sizeof *k);
    if (!k || sb_ws_new(true, 1u << 20, &CWS, k, &k->cws) != 0 ||
        sb_ws_new(false, 1u << 20, &SWS, k, &k->sws) != 0) {
        if (k) {
            sb_ws_free(k->cws);
            free(k);
        }
        sim_violation(w, "out of memory");
        return;
    }
    k->id = ++w->next_conn;
    k->w = w;
    k->app = a;
    k->enc = a->enc;
    k->latency_ms = (int)sim_rng_range(&w->rng, 1, w->p.latency_max_ms);
    k->next = w->conns;
    w->conns = k;
    int rc = sb_gw_conn_open(w->gw, k->id, k->enc, sim_server_now(w));
    sim_tracef(&w->tr, w->now, "%s: conn %llu opens (%s, latency %d ms)%s",
               a->device, (unsigned long long)k->id,
               k->enc == SB_ENC_JSON ? "json" : "proto", k->latency_ms,
               rc ? ": server refuses" : "");
    if (rc) {
        /* The shell closes it with 4013 right away. */
        k->gw_open = false;
        k->server_closing = true;
        k->server_close_ms = w->now;
        sb_ws_close(k->sws, SB_WS_CLOSE_TRY_AGAIN, "busy");
        server_flush(w, k);
    } else {
        k->gw_open = true;
    }
    a->conn = k;
    sb_client_core_on_open(a->cc, sim_app_now(a));
    sim_app_pump(a);
}

/* Moves what is due on k's pipes, in chunks of any size. */
static void conn_deliver(sim_world *w, sim_conn *k)
{
    const uint8_t *b;
    size_t n = sim_pipe_due(&k->up, w->now, &b);
    if (n && (k->gw_open || k->server_closing)) {
        size_t take = sim_rng_chance(&w->rng, 500000)
                          ? n
                          : (size_t)sim_rng_range(&w->rng, 1, (int64_t)n);
        /* sb_ws_feed may reach the gateway, which may write to the pipes:
         * feed a copy. */
        uint8_t *copy = malloc(take);
        if (copy) {
            memcpy(copy, b, take);
            sim_pipe_consume(&k->up, take);
            int rc = sb_ws_feed(k->sws, copy, take);
            free(copy);
            server_flush(w, k);
            if (k->dead) return;
            if (rc != 0 || sb_ws_close_received(k->sws)) {
                /* The device's close (or a protocol error): the server's
                 * answer goes out, then the shell drops the connection. */
                sim_conn_cut(w, k, rc ? "protocol error" : "client closed");
                return;
            }
        }
    } else if (n) {
        sim_pipe_consume(&k->up, n); /* nobody reads them */
    }
    n = sim_pipe_due(&k->down, w->now, &b);
    if (!n) return;
    sim_app *a = k->app;
    if (!a || !a->cc || a->conn != k) {
        sim_pipe_consume(&k->down, n);
        return;
    }
    size_t take = sim_rng_chance(&w->rng, 500000)
                      ? n
                      : (size_t)sim_rng_range(&w->rng, 1, (int64_t)n);
    uint8_t *copy = malloc(take);
    if (!copy) return;
    memcpy(copy, b, take);
    sim_pipe_consume(&k->down, take);
    sb_client_core_on_rx(a->cc, sim_app_now(a));
    (void)sb_ws_feed(k->cws, copy, take);
    free(copy);
    if (k->dead || a->conn != k) return;
    if (sb_ws_close_received(k->cws)) {
        uint16_t code = sb_ws_close_code(k->cws);
        sim_tracef(&w->tr, w->now, "%s: conn %llu closed by the server (%u)",
                   a->device, (unsigned long long)k->id, code);
        a->conn = NULL;
        k->app = NULL;
        sb_client_core_on_close(a->cc, 0, code, sim_app_now(a));
        sim_conn_cut(w, k, "closed");
    }
    if (a->cc) sim_app_pump(a);
}

static void conns_reap(sim_world *w)
{
    for (sim_conn **pp = &w->conns; *pp;) {
        sim_conn *k = *pp;
        if (!k->dead) {
            pp = &k->next;
            continue;
        }
        *pp = k->next;
        sb_ws_free(k->cws);
        sb_ws_free(k->sws);
        sim_pipe_free(&k->up);
        sim_pipe_free(&k->down);
        free(k);
    }
}

/* ---- faults
 * ------------------------------------------------------------------
 */

static sim_conn *random_conn(sim_world *w)
{
    size_t n = 0;
    for (sim_conn *k = w->conns; k; k = k->next)
        n += !k->dead;
    if (!n) return NULL;
    size_t pick = sim_rng_below(&w->rng, (uint32_t)n);
    for (sim_conn *k = w->conns; k; k = k->next)
        if (!k->dead && pick-- == 0) return k;
    return NULL;
}

static void faults(sim_world *w)
{
    const sim_params *p = &w->p;
    if (w->gw && sim_rng_chance(&w->rng, p->server_crash)) server_crash(w);
    if (sim_rng_chance(&w->rng, p->app_crash)) {
        sim_app *a = &w->apps[sim_rng_below(&w->rng, (uint32_t)w->napps)];
        if (a->cc) sim_app_crash(a, w->now + sim_rng_range(&w->rng, 100, 3000));
    }
    if (sim_rng_chance(&w->rng, p->cut)) {
        sim_conn *k = random_conn(w);
        if (k) sim_conn_cut(w, k, "network");
    }
    if (sim_rng_chance(&w->rng, p->stall)) {
        sim_conn *k = random_conn(w);
        if (k) {
            sim_pipe *pp = sim_rng_below(&w->rng, 2) ? &k->up : &k->down;
            pp->stall_until = w->now + sim_rng_range(&w->rng, 200, 8000);
            w->st.stalls++;
            sim_tracef(&w->tr, w->now, "conn %llu stalls %s for %lld ms",
                       (unsigned long long)k->id, pp == &k->up ? "up" : "down",
                       (long long)(pp->stall_until - w->now));
        }
    }
    if (sim_rng_chance(&w->rng, p->clock_jump)) {
        int64_t d = sim_rng_range(&w->rng, -2000, 5000);
        w->st.jumps++;
        if (sim_rng_below(&w->rng, 3) == 0) {
            w->server_off += d;
            sim_tracef(&w->tr, w->now, "server clock jumps %+lld ms",
                       (long long)d);
        } else {
            sim_app *a = &w->apps[sim_rng_below(&w->rng, (uint32_t)w->napps)];
            a->clock_off += d;
            sim_tracef(&w->tr, w->now, "%s: clock jumps %+lld ms", a->device,
                       (long long)d);
        }
    }
}

/* ---- the run
 * -------------------------------------------------------------------
 */

static void params_pick(sim_world *w)
{
    sim_params *p = &w->p;
    sim_rng *r = &w->rng;
    p->customers = (int)sim_rng_range(r, 1, 3);
    p->two_agents = sim_rng_below(r, 4) != 0;
    p->ext_bot = sim_rng_below(r, 3) == 0;
    p->ghost = sim_rng_below(r, 2) == 0;
    p->fault_ms = sim_rng_range(r, 4000, 12000);
    p->quiet_ms = 15000;
    p->server_crash = (uint32_t)sim_rng_range(r, 0, 600);
    p->app_crash = (uint32_t)sim_rng_range(r, 0, 1500);
    p->cut = (uint32_t)sim_rng_range(r, 0, 3000);
    p->stall = (uint32_t)sim_rng_range(r, 0, 2000);
    p->clock_jump = (uint32_t)sim_rng_range(r, 0, 500);
    p->store.stall_per_m = (uint32_t)sim_rng_range(r, 0, 800);
    p->store.commit_fail_per_m = (uint32_t)sim_rng_range(r, 0, 3000);
    p->store.read_fail_per_m = (uint32_t)sim_rng_range(r, 0, 3000);
    p->latency_max_ms = (int)sim_rng_range(r, 1, 80);
    p->push_batch_max = sim_rng_below(r, 2) ? 1 : 64;
}

static void apps_make(sim_world *w)
{
    char user[32], dev[32];
    size_t n = 0;
    sim_app_init(&w->apps[n], w, (int)n, "a1", "a1-desk",
                 SBP__ROLE__ROLE_AGENT);
    n++;
    if (w->p.two_agents) {
        sim_app_init(&w->apps[n], w, (int)n, "a2", "a2-desk",
                     SBP__ROLE__ROLE_AGENT);
        n++;
    }
    if (w->p.ext_bot) {
        sim_app_init(&w->apps[n], w, (int)n, SIM_BOT, SIM_BOT "-svc",
                     SBP__ROLE__ROLE_BOT);
        n++;
    }
    for (int c = 1; c <= w->p.customers; c++) {
        int devices = sim_rng_below(&w->rng, 2) ? 2 : 1;
        for (int d = 1; d <= devices; d++) {
            snprintf(user, sizeof user, "c%d", c);
            snprintf(dev, sizeof dev, "c%d-dev%d", c, d);
            sim_app_init(&w->apps[n], w, (int)n, user, dev,
                         SBP__ROLE__ROLE_CUSTOMER);
            n++;
        }
    }
    if (w->p.ghost) {
        sim_app *g = &w->apps[n];
        sim_app_init(g, w, (int)n, SIM_GHOST, SIM_GHOST "-dev",
                     SBP__ROLE__ROLE_CUSTOMER);
        g->start_at = sim_rng_range(&w->rng, 1000, w->p.fault_ms);
        n++;
    }
    assert(n <= SIM_APPS_MAX);
    w->napps = n;
}

static void step(sim_world *w)
{
    w->now += SIM_STEP_MS;
    w->st.steps++;
    bool in_faults = w->now < w->p.fault_ms;
    if (w->faults && !in_faults) {
        sim_tracef(&w->tr, w->now, "quiet phase: no more faults");
        w->faults = false;
    }
    /* New conversations and messages stop a while before the end. */
    w->quiet = w->now > w->p.fault_ms + w->p.quiet_ms / 4;
    if (w->faults) faults(w);
    if (!w->gw && w->now >= w->restart_at && !w->violated) {
        if (server_start(w) != 0) sim_violation(w, "server cannot start");
    }
    for (size_t i = 0; i < w->napps; i++) {
        sim_app *a = &w->apps[i];
        if (!a->cc && a->start_at && w->now >= a->start_at &&
            sim_app_start(a) != 0)
            sim_violation(w, "app cannot start");
        if (a->cc && a->connect_at && w->now >= a->connect_at)
            connect_answer(w, a);
    }
    for (sim_conn *k = w->conns; k; k = k->next) {
        if (k->dead) continue;
        conn_deliver(w, k);
        if (!k->dead && k->server_closing &&
            w->now - k->server_close_ms >= SIM_CLOSE_WAIT_MS)
            sim_conn_cut(w, k, "close handshake timed out");
        if (!k->dead && k->gw_open && w->now % SIM_PING_MS == 0) {
            sb_ws_ping(k->sws);
            server_flush(w, k);
        }
    }
    sim_store_step(w->store, w->now, w->faults ? &w->p.store : NULL);
    if (w->gw && w->now % SIM_GW_TICK_MS == 0)
        sb_gw_tick(w->gw, sim_server_now(w));
    for (size_t i = 0; i < w->napps; i++) {
        sim_app *a = &w->apps[i];
        if (!a->cc) continue;
        if ((w->now + a->idx * SIM_STEP_MS) % SIM_APP_TICK_MS == 0)
            sb_client_core_tick(a->cc, sim_app_now(a));
        sim_app_act(a);
        sim_app_pump(a);
    }
    if (w->gw) sb_gw_flush(w->gw);
    for (sim_conn *k = w->conns; k; k = k->next)
        if (!k->dead) server_flush(w, k);
    conns_reap(w);
    sim_check_step(w);
}

static void world_free(sim_world *w)
{
    for (size_t i = 0; i < w->napps; i++)
        if (w->apps[i].cc) sim_app_crash(&w->apps[i], 0);
    if (w->gw) {
        w->discard = true;
        sim_store_crash(w->store);
        for (sim_conn *k = w->conns; k; k = k->next) {
            k->gw_open = false;
            sim_conn_cut(w, k, "end");
        }
        sb_gw_free(w->gw);
        sb_desk_free(w->desk);
        w->gw = NULL;
    }
    for (sim_conn *k = w->conns; k; k = k->next)
        k->dead = true;
    conns_reap(w);
    for (size_t i = 0; i < w->napps; i++)
        sim_app_free(&w->apps[i]);
    sim_store_free(w->store);
    sim_trace_free(&w->tr);
}

int sim_run(uint64_t seed, bool trace, FILE *trace_out, sim_result *res)
{
    memset(res, 0, sizeof *res);
    sim_world *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->seed = seed;
    sim_rng_seed(&w->rng, seed);
    w->tr.on = trace;
    w->tr.hash = 0xcbf29ce484222325ull;
    params_pick(w);
    sim_tracef(&w->tr, 0,
               "seed %llu: %d customers, %s, %s, %s; faults for %lld ms; "
               "crash %u/%u, cut %u, stall %u, jump %u, store stall %u "
               "fail %u/%u per million steps",
               (unsigned long long)seed, w->p.customers,
               w->p.two_agents ? "agents a1 a2" : "agent a1",
               w->p.ext_bot ? "external bot" : "built-in bot",
               w->p.ghost ? "a late customer" : "no late customer",
               (long long)w->p.fault_ms, w->p.server_crash, w->p.app_crash,
               w->p.cut, w->p.stall, w->p.clock_jump, w->p.store.stall_per_m,
               w->p.store.commit_fail_per_m, w->p.store.read_fail_per_m);
    int rc = sim_store_new(&w->rng, &w->tr, &w->store);
    if (rc == 0) rc = server_start(w);
    if (rc) {
        sim_store_free(w->store);
        free(w);
        return rc;
    }
    apps_make(w);
    w->faults = true;
    for (size_t i = 0; i < w->napps; i++)
        if (!w->apps[i].start_at && sim_app_start(&w->apps[i]) != 0)
            sim_violation(w, "app cannot start");
    int64_t end = w->p.fault_ms + w->p.quiet_ms;
    while (w->now < end && !w->violated)
        step(w);
    if (!w->violated) sim_check_end(w);
    w->st.commits = sim_store_commits(w->store);
    w->st.commit_failures = sim_store_failures(w->store);
    res->ok = !w->violated;
    snprintf(res->violation, sizeof res->violation, "%s", w->violation);
    res->st = w->st;
    sim_tracef(&w->tr, w->now, "end: %s", res->ok ? "ok" : w->violation);
    res->trace_hash = w->tr.hash;
    res->trace_lines = w->tr.lines;
    if (trace_out) sim_trace_dump(&w->tr, trace_out);
    world_free(w);
    free(w);
    return 0;
}
