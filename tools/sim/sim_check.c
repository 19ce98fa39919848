/* The invariants (sim_world.h), checked against the store of record (what
 * is committed), the gateway's routing state and what each device
 * surfaced:
 *
 * - I1: a send a device was told is stored (SEND_ACK) is in the store at
 *   that seq, with its sender and client_msg_id, at the moment it is told
 *   (the store commits before it answers, or the ack is a lie);
 * - I2, I3: each device surfaces each conversation's messages in seq order,
 *   each once (and a send is acknowledged with one seq only);
 * - I5: no device surfaces or reads a message of a conversation its user
 *   is not (or never was) a member of, and no customer shares a
 *   conversation with another customer;
 * - I4, at the end: every device of every member has every message of its
 *   conversations; every send not lost with its device's crash was
 *   acknowledged, or refused for a reason that is final;
 * - routing: no conversation assigned to two agents, an assigned one's
 *   agent its only agent member, a closed one's its last agent or none,
 *   the agents' loads and the queues the
 *   same as the store's, queue positions 1..n;
 * - every request the server received is answered, or its connection
 *   ends. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sb_desk.h"
#include "sb_error.h"
#include "sb_gwcore.h"
#include "sim_world.h"

#define CHECK_EVERY_STEPS 50
#define CHECK_QUEUE_MAX 256
/* Conversation ids tried past the last one found, at the end. */
#define CHECK_CONV_GAP 3

static sim_log *log_get(sim_app *a, uint64_t conv_id)
{
    for (size_t i = 0; i < a->nlogs; i++)
        if (a->logs[i].conv_id == conv_id) return &a->logs[i];
    if (a->nlogs == SIM_CONVS_MAX) return NULL;
    sim_log *l = &a->logs[a->nlogs++];
    memset(l, 0, sizeof *l);
    l->conv_id = conv_id;
    return l;
}

static const Sbp__Member *member_of(const Sbp__Conversation *c,
                                    const char *user)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (strcmp(c->members[i]->user_id, user) == 0) return c->members[i];
    return NULL;
}

/* Whether an event of conv (of its last_seq messages) made user its
 * agent: an agent reads the whole of a conversation it was given. */
static bool ever_assigned(sb_store *db, uint64_t conv, uint64_t last_seq,
                          const char *user)
{
    for (uint64_t s = 1; s <= last_seq; s++) {
        Sbp__Message *m = NULL;
        if (sb_store_msg_get(db, conv, s, &m) != 0) continue;
        bool hit = m->event && m->event->n_args > 0 &&
                   (strcmp(m->event->key, "conv.assigned") == 0 ||
                    strcmp(m->event->key, "conv.transferred") == 0) &&
                   strcmp(m->event->args[0], user) == 0;
        sbp__message__free_unpacked(m, NULL);
        if (hit) return true;
    }
    return false;
}

/* Whether a's user may hold messages of conv, by what the store says: a
 * customer its own service conversations, or direct ones it is a member of with
 * no other customer; an agent those it is or was assigned, or a member of; the
 * external bot its desk's. */
static bool may_see(sim_app *a, uint64_t conv)
{
    sim_world *w = a->w;
    sb_store *db = sim_store_db(w->store);
    Sbp__Conversation *c = NULL;
    if (sb_store_conv_get(db, conv, &c) != 0) return false;
    bool ok = false;
    bool service = c->kind == SBP__CONV_KIND__CONV_SERVICE;
    switch (a->role) {
    case SBP__ROLE__ROLE_CUSTOMER:
        if (service) {
            ok = strcmp(c->customer, a->user) == 0;
            break;
        }
        ok = member_of(c, a->user) != NULL;
        for (size_t i = 0; ok && i < c->n_members; i++) {
            Sbp__Role role = SBP__ROLE__ROLE_UNSPECIFIED;
            const char *u = c->members[i]->user_id;
            if (strcmp(u, a->user) != 0 &&
                sb_store_user_role(db, u, &role) == 0 &&
                role == SBP__ROLE__ROLE_CUSTOMER)
                ok = false; /* a customer talking to a customer */
        }
        break;
    case SBP__ROLE__ROLE_AGENT:
        ok = member_of(c, a->user) ||
             (service && ever_assigned(db, conv, c->last_seq, a->user));
        break;
    case SBP__ROLE__ROLE_BOT:
        ok = member_of(c, a->user) || (service && w->p.ext_bot);
        break;
    default:
        break;
    }
    sbp__conversation__free_unpacked(c, NULL);
    return ok;
}

void sim_check_held(sim_app *a, const Sbp__Message *m)
{
    sim_log *l = log_get(a, m->conv_id);
    if (l && l->allowed) return;
    if (!may_see(a, m->conv_id)) {
        sim_violation(a->w,
                      "isolation: %s (%s) holds seq %" PRIu64
                      " of conv %" PRIu64 ", which is not its user's",
                      a->device, a->user, m->seq, m->conv_id);
        return;
    }
    if (l) l->allowed = true;
}

void sim_check_surfaced(sim_app *a, const Sbp__Message *m)
{
    sim_world *w = a->w;
    w->st.surfaced++;
    sim_log *l = log_get(a, m->conv_id);
    if (!l) {
        sim_violation(w, "%s: more than %d conversations", a->device,
                      SIM_CONVS_MAX);
        return;
    }
    if (m->seq != l->last + 1) {
        sim_violation(w,
                      "order: %s surfaced seq %" PRIu64 " of conv %" PRIu64
                      " after seq %" PRIu64,
                      a->device, m->seq, m->conv_id, l->last);
        return;
    }
    l->last = m->seq;
    sim_check_held(a, m);
}

void sim_check_acked(sim_app *a, const sim_send *s)
{
    sim_world *w = a->w;
    Sbp__Message *m = NULL;
    int rc = sb_store_msg_get(sim_store_db(w->store), s->conv_id, s->seq, &m);
    if (rc) {
        sim_violation(w,
                      "I1: %s was told its message is seq %" PRIu64
                      " of conv %" PRIu64 ", which the store does not hold",
                      a->device, s->seq, s->conv_id);
        return;
    }
    if (strcmp(m->sender, a->user) != 0 ||
        m->client_msg_id.len != SB_CLIENT_MSG_ID_BYTES ||
        memcmp(m->client_msg_id.data, s->cmid, SB_CLIENT_MSG_ID_BYTES) != 0)
        sim_violation(w,
                      "I1: %s was told its message is seq %" PRIu64
                      " of conv %" PRIu64
                      ", where the store holds another message (%s's)",
                      a->device, s->seq, s->conv_id, m->sender);
    sbp__message__free_unpacked(m, NULL);
}

/* Requests the server received on a live connection and never answered. */
static void check_answers(sim_world *w, int64_t older_than_ms)
{
    for (sim_conn *k = w->conns; k; k = k->next) {
        if (k->dead || !k->gw_open || k->server_closing) continue;
        for (size_t i = 0; i < k->npend; i++)
            if (w->now - k->pend_ms[i] > older_than_ms)
                sim_violation(w,
                              "conn %" PRIu64 ": request rid %u unanswered "
                              "for %" PRId64 " ms",
                              k->id, k->pend_rid[i], w->now - k->pend_ms[i]);
    }
}

/* Each queue lists its conversations at positions 1..n, and none of them
 * is assigned. */
static void check_queues(sim_world *w)
{
    if (!w->gw || !w->desk) return;
    uint64_t ids[CHECK_QUEUE_MAX];
    for (int g = 0; g < SB_DESK_GROUPS_MAX && sb_desk_group_name(w->desk, g)[0];
         g++) {
        size_t n = sb_desk_queue_list(w->desk, g, ids, CHECK_QUEUE_MAX);
        for (size_t i = 0; i < n; i++) {
            if (sb_desk_position(w->desk, ids[i]) != i + 1)
                sim_violation(w,
                              "queue: conv %" PRIu64 " listed %zu, at position "
                              "%u",
                              ids[i], i + 1, sb_desk_position(w->desk, ids[i]));
            conv *c = sb_map_get(&w->gw->convs, ids[i]);
            if (c && c->state == SBP__CONV_STATE__STATE_ASSIGNED)
                sim_violation(w, "queue: conv %" PRIu64 " queued and assigned",
                              ids[i]);
        }
    }
}

/* The agents' loads and statuses, in the trace as they change. */
static void trace_agents(sim_world *w)
{
    static const char *const agents[2] = {"a1", "a2"};
    if (!w->tr.on || !w->desk) return;
    for (int i = 0; i < 2; i++) {
        uint32_t cap, load;
        sb_desk_agent_load(w->desk, agents[i], &cap, &load);
        int st = (int)sb_desk_status(w->desk, agents[i]);
        if (load == w->agent_load[i] && st == w->agent_status[i]) continue;
        sim_tracef(&w->tr, w->now, "desk: %s status %d load %u", agents[i], st,
                   load);
        w->agent_load[i] = load;
        w->agent_status[i] = st;
    }
}

void sim_check_step(sim_world *w)
{
    trace_agents(w);
    if (sim_store_unexpected(w->store))
        sim_violation(w, "the store failed a batch on its own");
    if (w->st.steps % CHECK_EVERY_STEPS) return;
    check_answers(w, SIM_ANSWER_MS);
    check_queues(w);
}

/* ---- the end
 * ------------------------------------------------------------------
 */

static void check_devices(sim_world *w)
{
    for (size_t i = 0; i < w->napps; i++) {
        sim_app *a = &w->apps[i];
        if (!a->cc || sb_client_core_state(a->cc) != SB_CLIENT_READY) {
            sim_violation(
                w, "%s is not connected at the end (%s)", a->device,
                a->cc ? sb_client_state_name(sb_client_core_state(a->cc))
                      : "not running");
            return;
        }
        for (size_t k = 0; k < a->nsends; k++) {
            const sim_send *s = &a->sends[k];
            if (s->lost ||
                (s->status >= SB_SEND_SENT && s->status <= SB_SEND_READ))
                continue;
            /* Refusals that are final: not (or no longer) a member, no
             * such conversation, not in a state that takes it. */
            bool final =
                s->status == SB_SEND_FAILED &&
                (s->err == SB_E_FORBIDDEN || s->err == SB_E_NOT_FOUND ||
                 s->err == SB_E_STATE || s->err == SB_E_INVALID);
            if (!final)
                sim_violation(w, "%s: a send to conv %" PRIu64 " ended %s (%s)",
                              a->device, s->conv_id,
                              sb_client_send_status_name(s->status),
                              s->err ? sb_client_err_name(s->err) : "");
        }
    }
}

/* c as the store has it: every device of every member has all of it, and
 * its routing is sound. */
static void check_conv(sim_world *w, const Sbp__Conversation *c,
                       uint32_t *agent_load)
{
    for (size_t i = 0; i < c->n_members; i++) {
        const char *u = c->members[i]->user_id;
        for (size_t k = 0; k < w->napps; k++) {
            sim_app *a = &w->apps[k];
            if (strcmp(a->user, u) != 0) continue;
            sim_log *l = log_get(a, c->conv_id);
            uint64_t got = l ? l->last : 0;
            if (got != c->last_seq)
                sim_violation(w,
                              "I4: %s has conv %" PRIu64 " through seq %" PRIu64
                              " of %" PRIu64,
                              a->device, c->conv_id, got, c->last_seq);
        }
    }
    if (c->kind != SBP__CONV_KIND__CONV_SERVICE) return;
    size_t agents = 0;
    for (size_t i = 0; i < c->n_members; i++)
        agents += c->members[i]->role == SBP__ROLE__ROLE_AGENT;
    bool assigned = c->state == SBP__CONV_STATE__STATE_ASSIGNED;
    bool closed = c->state == SBP__CONV_STATE__STATE_CLOSED;
    bool its_agent = agents == 1 && c->agent[0] && member_of(c, c->agent);
    if (assigned ? !its_agent
        : closed ? agents != 0 && !its_agent
                 : agents != 0)
        sim_violation(w,
                      "routing: conv %" PRIu64 " in state %d, agent \"%s\", "
                      "%zu agent members",
                      c->conv_id, (int)c->state, c->agent, agents);
    if (assigned) {
        if (strcmp(c->agent, "a1") == 0) agent_load[0]++;
        if (strcmp(c->agent, "a2") == 0) agent_load[1]++;
    }
    bool queued = c->state == SBP__CONV_STATE__STATE_QUEUED;
    if (queued != (sb_desk_position(w->desk, c->conv_id) > 0))
        sim_violation(w, "queue: conv %" PRIu64 " is %s in the store and %s",
                      c->conv_id, queued ? "queued" : "not queued",
                      queued ? "in no queue" : "in a queue");
    conv *cached = sb_map_get(&w->gw->convs, c->conv_id);
    if (cached &&
        (cached->state != c->state || strcmp(cached->agent, c->agent) != 0))
        sim_violation(w,
                      "routing: the gateway has conv %" PRIu64
                      " in state %d with \"%s\", the store in %d with \"%s\"",
                      c->conv_id, (int)cached->state, cached->agent,
                      (int)c->state, c->agent);
}

void sim_check_end(sim_world *w)
{
    check_answers(w, 5000);
    check_devices(w);
    if (!w->gw) {
        sim_violation(w, "the server is down at the end");
        return;
    }
    check_queues(w);
    sb_store *db = sim_store_db(w->store);
    uint32_t load[2] = {0, 0};
    for (uint64_t id = 1, misses = 0; misses < CHECK_CONV_GAP && !w->violated;
         id++) {
        Sbp__Conversation *c = NULL;
        if (sb_store_conv_get(db, id, &c) != 0) {
            misses++;
            continue;
        }
        misses = 0;
        w->st.convs++;
        check_conv(w, c, load);
        sbp__conversation__free_unpacked(c, NULL);
    }
    const char *agents[2] = {"a1", "a2"};
    for (int i = 0; i < 2 && !w->violated; i++) {
        uint32_t cap, have;
        sb_desk_agent_load(w->desk, agents[i], &cap, &have);
        if (have != load[i])
            sim_violation(w,
                          "routing: %s's load is %u, the store assigns it %u",
                          agents[i], have, load[i]);
    }
}
