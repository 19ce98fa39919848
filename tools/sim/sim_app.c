/* A simulated device (sim_world.h): a real C SDK core, the transport
 * around it (its WebSocket end of a simulated connection), the log an
 * application keeps of what it surfaced (kept across crashes, as an app's
 * database is), and what its user does: customers open, write, ask for a
 * person, close and read, and now and then try what they may not; agents
 * go on and off duty, answer, transfer and close; the external bot
 * answers late or hands off. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_token.h"
#include "sim_world.h"

int64_t sim_app_now(const sim_app *a)
{
    return SIM_T0_MS + a->w->now + a->clock_off;
}

/* ---- the transport ---------------------------------------------------------
 */

static void io_connect(void *ud)
{
    sim_app *a = ud;
    sim_world *w = a->w;
    a->connect_at = w->now + sim_rng_range(&w->rng, 5, 60);
    sim_tracef(&w->tr, w->now, "%s: connects", a->device);
}

static void io_close(void *ud, uint16_t code)
{
    sim_app *a = ud;
    a->close_pending = true;
    a->close_code = code;
    a->connect_at = 0;
}

static void io_rand(void *ud, uint8_t *p, size_t n)
{
    sim_app *a = ud;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)sim_rng_next(&a->w->rng);
}

/* The device's WebSocket output onto the wire. */
static void app_flush(sim_app *a, sim_conn *k)
{
    sim_world *w = a->w;
    sb_buf out = SB_BUF_INIT;
    if (sb_ws_pull(k->cws, &out) == 0 && out.len)
        (void)sim_pipe_write(&k->up, out.data, out.len,
                             w->now + k->latency_ms +
                                 sim_rng_range(&w->rng, 0, 5));
    sb_buf_free(&out);
}

void sim_app_pump(sim_app *a)
{
    if (!a->cc) return;
    sim_conn *k = a->conn;
    const uint8_t *p;
    size_t n;
    bool live = k && !k->dead;
    while (sb_client_core_next_frame(a->cc, &p, &n))
        if (live) sb_ws_send(k->cws, k->enc == SB_ENC_JSON, p, n);
    if (a->close_pending) {
        /* The core dropped the connection: what it queued and a close go
         * out, then it is the server's to end. */
        a->close_pending = false;
        if (live) {
            sb_ws_close(k->cws, a->close_code, "");
            app_flush(a, k);
            k->app = NULL;
            sim_tracef(&a->w->tr, a->w->now, "%s: closes conn %llu (%u)",
                       a->device, (unsigned long long)k->id, a->close_code);
        }
        a->conn = NULL;
        return;
    }
    if (live) app_flush(a, k);
}

/* ---- the application's callbacks
 * ---------------------------------------------
 */

static sim_send *send_find(sim_app *a, const uint8_t *cmid)
{
    for (size_t i = 0; i < a->nsends; i++)
        if (memcmp(a->sends[i].cmid, cmid, SB_CLIENT_MSG_ID_BYTES) == 0)
            return &a->sends[i];
    return NULL;
}

static void on_state(void *ud, sb_client_state st, int err)
{
    sim_app *a = ud;
    sim_tracef(&a->w->tr, a->w->now, "%s: %s (%s)", a->device,
               sb_client_state_name(st), err ? sb_client_err_name(err) : "ok");
}

static bool is_bot_or_system(const char *sender)
{
    return strcmp(sender, SIM_BOT) == 0 || strcmp(sender, "system") == 0 ||
           strcmp(sender, "bot") == 0;
}

static void on_message(void *ud, const Sbp__Message *m)
{
    sim_app *a = ud;
    sim_world *w = a->w;
    sim_tracef(&w->tr, w->now,
               "%s: surfaces conv %" PRIu64 " seq %" PRIu64 " from %s",
               a->device, m->conv_id, m->seq, m->sender);
    sim_check_surfaced(a, m);
    /* The external bot answers customers, late. */
    if (a->role == SBP__ROLE__ROLE_BOT && m->type == SBP__MSG_TYPE__MSG_TEXT &&
        !is_bot_or_system(m->sender) && m->sender[0] != 'a' &&
        a->nreplies < SIM_REPLIES_MAX) {
        a->reply_conv[a->nreplies] = m->conv_id;
        a->reply_due[a->nreplies++] =
            w->now + sim_rng_range(&w->rng, 100, 4000);
    }
}

static void on_send_status(void *ud, const sb_client_send_info *info)
{
    sim_app *a = ud;
    sim_world *w = a->w;
    sim_send *s = send_find(a, info->client_msg_id);
    sim_tracef(
        &w->tr, w->now, "%s: send to conv %" PRIu64 " %s seq %" PRIu64 "%s%s%s",
        a->device, info->conv_id, sb_client_send_status_name(info->status),
        info->seq, info->duplicate ? " (duplicate)" : "", info->err ? " " : "",
        info->err ? sb_client_err_name(info->err) : "");
    if (!s) return; /* one made before a crash of this device's core */
    if (info->status != SB_SEND_FAILED && info->status <= s->status &&
        s->status != SB_SEND_PENDING) {
        sim_violation(w, "%s: send status %s after %s", a->device,
                      sb_client_send_status_name(info->status),
                      sb_client_send_status_name(s->status));
        return;
    }
    s->status = info->status;
    s->err = info->err;
    if (info->status == SB_SEND_SENT) {
        if (s->seq && s->seq != info->seq)
            sim_violation(
                w, "%s: a send acknowledged as seq %" PRIu64 " and %" PRIu64,
                a->device, s->seq, info->seq);
        s->seq = info->seq;
        w->st.acked++;
        sim_check_acked(a, s);
    }
}

static void on_response(void *ud, uint32_t rid, Sbp__Frame__BodyCase req,
                        int err, const Sbp__Frame *resp)
{
    sim_app *a = ud;
    sim_world *w = a->w;
    sim_tracef(&w->tr, w->now, "%s: answer to rid %u: %s", a->device, rid,
               err ? sb_client_err_name(err) : "ok");
    if (req == SBP__FRAME__BODY_OPEN) {
        a->open_pending = false;
        if (!err && resp->body_case == SBP__FRAME__BODY_OPEN_RESP &&
            resp->open_resp->conv->kind == SBP__CONV_KIND__CONV_SERVICE)
            a->conv = resp->open_resp->conv->conv_id;
    }
    if (!err && resp && resp->body_case == SBP__FRAME__BODY_HISTORY_RESP)
        for (size_t i = 0; i < resp->history_resp->n_messages; i++)
            sim_check_held(a, resp->history_resp->messages[i]);
}

static void on_conv_update(void *ud, const Sbp__Conversation *c)
{
    sim_app *a = ud;
    sim_tracef(&a->w->tr, a->w->now, "%s: conv %" PRIu64 " is %d, agent %s",
               a->device, c->conv_id, (int)c->state, c->agent);
    if (a->role == SBP__ROLE__ROLE_CUSTOMER &&
        strcmp(c->customer, a->user) == 0)
        a->conv = c->conv_id;
    if (a->role != SBP__ROLE__ROLE_AGENT) return;
    bool mine = c->state == SBP__CONV_STATE__STATE_ASSIGNED &&
                strcmp(c->agent, a->user) == 0;
    size_t i;
    for (i = 0; i < a->nassigned; i++)
        if (a->assigned[i] == c->conv_id) break;
    if (mine && i == a->nassigned && a->nassigned < SIM_ASSIGNED_MAX)
        a->assigned[a->nassigned++] = c->conv_id;
    else if (!mine && i < a->nassigned)
        a->assigned[i] = a->assigned[--a->nassigned];
}

static const sb_client_cbs CBS = {
    .on_state = on_state,
    .on_message = on_message,
    .on_send_status = on_send_status,
    .on_response = on_response,
    .on_conv_update = on_conv_update,
};

/* ---- life
 * ---------------------------------------------------------------------
 */

void sim_app_init(sim_app *a, sim_world *w, int idx, const char *user,
                  const char *device, Sbp__Role role)
{
    memset(a, 0, sizeof *a);
    a->w = w;
    a->idx = idx;
    snprintf(a->user, sizeof a->user, "%s", user);
    snprintf(a->device, sizeof a->device, "%s", device);
    a->role = role;
    a->enc = sim_rng_below(&w->rng, 6) == 0 ? SB_ENC_JSON : SB_ENC_PROTO;
    sb_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "%s", user);
    c.role = role;
    c.exp = SIM_T0_MS / 1000 + 86400;
    if (sb_token_sign((const uint8_t *)SIM_SECRET, strlen(SIM_SECRET), &c,
                      a->token, sizeof a->token) < 0)
        sim_violation(w, "cannot sign a token");
}

int sim_app_start(sim_app *a)
{
    sim_world *w = a->w;
    sb_client_config cfg;
    sb_client_config_default(&cfg);
    cfg.enc = a->enc;
    cfg.token = a->token;
    cfg.device_id = a->device;
    cfg.send_timeout_ms = 3000;
    cfg.send_attempts_max = 0; /* a message is given up only when refused */
    cfg.window_max = 8;
    cfg.outbox_max = 256;
    cfg.request_timeout_ms = 8000;
    cfg.connect_timeout_ms = 5000;
    cfg.backoff_ms_base = 100;
    cfg.backoff_ms_max = 2000;
    cfg.heartbeat_ms = 10000;
    cfg.gap_retry_ms = 500;
    sb_client_core_io io = {.ud = a,
                            .connect = io_connect,
                            .close = io_close,
                            .rand_bytes = io_rand};
    int rc = sb_client_core_new(&cfg, &CBS, a, &io, &a->cc);
    if (rc) return rc;
    /* What the app surfaced before it crashed, it keeps. */
    for (size_t i = 0; i < a->nlogs; i++)
        (void)sb_client_core_set_cursor(a->cc, a->logs[i].conv_id,
                                        a->logs[i].last);
    a->start_at = 0;
    sim_tracef(&w->tr, w->now, "%s (%s, %s) starts", a->device, a->user,
               a->enc == SB_ENC_JSON ? "json" : "proto");
    sb_client_core_start(a->cc, sim_app_now(a));
    sim_app_pump(a);
    return 0;
}

void sim_app_crash(sim_app *a, int64_t restart_at)
{
    sim_world *w = a->w;
    sim_tracef(&w->tr, w->now, "%s CRASHES%s", a->device,
               restart_at ? "" : " (end)");
    if (restart_at) w->st.app_crashes++;
    sim_conn *k = a->conn;
    a->conn = NULL;
    if (k && !k->dead) {
        k->app = NULL; /* the kernel drops its socket */
        sim_conn_cut(w, k, "device crashed");
    }
    sb_client_core_free(a->cc);
    a->cc = NULL;
    for (size_t i = 0; i < a->nsends; i++)
        if (a->sends[i].status == SB_SEND_PENDING) a->sends[i].lost = true;
    a->connect_at = 0;
    a->close_pending = false;
    a->open_pending = false;
    a->nreplies = 0;
    a->start_at = restart_at;
}

void sim_app_free(sim_app *a)
{
    sb_client_core_free(a->cc);
    a->cc = NULL;
}

/* ---- what users do
 * --------------------------------------------------------------
 */

static void send_text(sim_app *a, uint64_t conv)
{
    static const char *const words[] = {"hello", "human please", "refund",
                                        "thanks", "where is my order"};
    sim_world *w = a->w;
    if (a->nsends == SIM_SENDS_MAX) return;
    char body[128];
    snprintf(body, sizeof body, "%s#%d %s", a->device, ++a->bodies,
             words[sim_rng_below(&w->rng, 5)]);
    sim_send *s = &a->sends[a->nsends];
    memset(s, 0, sizeof *s);
    int rc = sb_client_core_send(a->cc, conv, SBP__MSG_TYPE__MSG_TEXT, body,
                                 strlen(body), 0, s->cmid);
    sim_tracef(&w->tr, w->now, "%s: send \"%s\" to conv %" PRIu64 "%s",
               a->device, body, conv, rc ? " refused by the SDK" : "");
    if (rc) return;
    s->conv_id = conv;
    a->nsends++;
}

/* A conversation id that exists or almost does (a run makes a handful):
 * what a curious client tries. */
static uint64_t any_conv(sim_app *a)
{
    return (uint64_t)sim_rng_range(&a->w->rng, 1, 10);
}

/* What a client may not do, tried now and then: it must be refused. */
static void trespass(sim_app *a)
{
    sim_world *w = a->w;
    const char *whom[] = {SIM_GHOST, "c1", "c2", "a1", "nobody"};
    switch (sim_rng_below(&w->rng, 3)) {
    case 0:
        (void)sb_client_core_history(a->cc, any_conv(a), 0, 10, NULL);
        break;
    case 1:
        send_text(a, any_conv(a));
        break;
    default: {
        const char *m[1] = {whom[sim_rng_below(&w->rng, 5)]};
        if (strcmp(m[0], a->user) != 0)
            (void)sb_client_core_open(a->cc, m, 1, "",
                                      SBP__CONV_KIND__CONV_DIRECT, NULL);
    }
    }
}

static void act_customer(sim_app *a)
{
    sim_world *w = a->w;
    sim_rng *r = &w->rng;
    if (!a->conv) {
        if (!a->open_pending && sim_rng_chance(r, 20000) &&
            sb_client_core_open_service(a->cc, "", NULL) == 0)
            a->open_pending = true;
    } else if (sim_rng_chance(r, 15000)) {
        send_text(a, a->conv);
    } else if (sim_rng_chance(r, 1500)) {
        (void)sb_client_core_close_conv(a->cc, a->conv, NULL);
    } else if (sim_rng_chance(r, 3000)) {
        (void)sb_client_core_read(a->cc, a->conv,
                                  sb_client_core_cursor(a->cc, a->conv));
    } else if (sim_rng_chance(r, 1500)) {
        (void)sb_client_core_history(a->cc, a->conv, 0, 10, NULL);
    }
    if (sim_rng_chance(r, 1500)) trespass(a);
}

static void act_agent(sim_app *a)
{
    sim_world *w = a->w;
    sim_rng *r = &w->rng;
    if (sim_rng_chance(r, 2000))
        (void)sb_client_core_agent_state(a->cc,
                                         sim_rng_below(r, 10) < 7
                                             ? SBP__AGENT_STATUS__AGENT_ONLINE
                                             : SBP__AGENT_STATUS__AGENT_AWAY,
                                         NULL);
    if (!a->nassigned) return;
    uint64_t conv = a->assigned[sim_rng_below(r, (uint32_t)a->nassigned)];
    if (sim_rng_chance(r, 15000)) {
        send_text(a, conv);
    } else if (sim_rng_chance(r, 1500)) {
        const char *to = strcmp(a->user, "a1") == 0 ? "a2" : "a1";
        if (sim_rng_below(r, 2))
            (void)sb_client_core_transfer(a->cc, conv, to, "", NULL);
        else
            (void)sb_client_core_transfer(a->cc, conv, "", "g1", NULL);
    } else if (sim_rng_chance(r, 1000)) {
        (void)sb_client_core_close_conv(a->cc, conv, NULL);
    } else if (sim_rng_chance(r, 3000)) {
        (void)sb_client_core_read(a->cc, conv,
                                  sb_client_core_cursor(a->cc, conv));
    }
}

static void act_bot(sim_app *a)
{
    sim_world *w = a->w;
    for (size_t i = 0; i < a->nreplies;) {
        if (a->reply_due[i] > w->now) {
            i++;
            continue;
        }
        uint64_t conv = a->reply_conv[i];
        a->reply_conv[i] = a->reply_conv[--a->nreplies];
        a->reply_due[i] = a->reply_due[a->nreplies];
        if (sim_rng_below(&w->rng, 5) == 0) {
            (void)sb_client_core_handoff(a->cc, conv, "", NULL);
            continue;
        }
        if (a->nsends == SIM_SENDS_MAX) continue;
        sim_send *s = &a->sends[a->nsends];
        memset(s, 0, sizeof *s);
        const char *quick[1] = {"Talk to a person"};
        if (sb_client_core_send_robot(a->cc, conv, "Let me look.", 12, quick, 1,
                                      s->cmid) == 0) {
            s->conv_id = conv;
            a->nsends++;
        }
    }
}

void sim_app_act(sim_app *a)
{
    if (!a->cc || a->w->quiet || sb_client_core_state(a->cc) != SB_CLIENT_READY)
        return;
    switch (a->role) {
    case SBP__ROLE__ROLE_CUSTOMER:
        act_customer(a);
        break;
    case SBP__ROLE__ROLE_AGENT:
        act_agent(a);
        break;
    case SBP__ROLE__ROLE_BOT:
        act_bot(a);
        break;
    default:
        break;
    }
}
