/* The customer-service lifecycle (sb_service.h) on the delivery core: the
 * rule bot, or an external bot (a client with role bot that joins the
 * conversation while it is online), handoff to the queue, routing to
 * agents, transfer, close and reopen, agent status. Routing is decided
 * here, synchronously, in the desk's state; the store follows in order,
 * each change stored with its event message. No I/O and no clock, like
 * the core. */
#include "sb_service.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_csat.h"
#include "sb_desk.h"
#include "sb_error.h"
#include "sb_gwcore.h"
#include "sb_i18n.h"
#include "sb_notes.h"
#include "sb_offhours.h"
#include "sb_sysmsg.h"
#include "sb_team.h"
#include "sb_view.h"

#define SVC_SENDER_BOT "bot"
#define SVC_QUEUE_NOTIFY_MAX 1000 /* queued customers told their position */

/* The start's two lists (start_done), each a bit once read. */
#define SVC_LIST_QUEUED 1u
#define SVC_LIST_ASSIGNED 2u

/* The module's state, one per gateway. */
typedef struct svc {
    sb_gw *gw;
    bool routing_ready; /* queues and loads rebuilt from the store */
    unsigned lists_in;  /* SVC_LIST_* read since the start */
    /* Store requests the store failed that are made again at the next
     * tick, in order (linked by next): a routing write the store must
     * follow, a start list that must be read. */
    sb_req *again, *again_tail;
    uint64_t queued[SVC_QUEUE_NOTIFY_MAX]; /* notify_queue's */
} svc;

/* What a routing write carries besides its request (its data). */
typedef struct route_note {
    uint32_t gen; /* its conversation's route_gen when it was made */
    /* The agent or bot the change takes the conversation from ("": none),
     * who still hears of it. */
    char left[SB_ID_BYTES_MAX + 1];
} route_note;

static void again_push(svc *v, sb_req *r)
{
    r->next = NULL;
    if (v->again_tail)
        v->again_tail->next = r;
    else
        v->again = r;
    v->again_tail = r;
}

static void route_done(sb_req *r);
static void open_done(sb_req *r);
static void start_done(sb_req *r);

/* ---- messages the bot writes -----------------------------------------------
 */

/* A robot message offering a person, in lang: text and the button. */
static Sbp__Message *robot_offer(uint64_t conv_id, const char *text,
                                 const char *lang)
{
    char label[64];
    sb_i18n_render(lang && strncmp(lang, "zh", 2) == 0 ? "zh-CN" : "en",
                   "bot.human", NULL, 0, label, sizeof label);
    char *q[1] = {label};
    return sb_sysmsg_robot(conv_id, text, q, 1, lang);
}

/* Stores and delivers a message of the bot (NULL: none, out of memory). */
static void bot_says(sb_gw *gw, Sbp__Message *m)
{
    if (m && sb__gw_append(gw, NULL, 0, m) != 0)
        sbp__message__free_unpacked(m, NULL);
}

/* ---- the external bot ------------------------------------------------------
 */

/* Whether user_id has a ready session with role (in a cluster, on any
 * node). */
static bool user_ready(sb_gw *gw, const char *user_id, Sbp__Role role)
{
    return sb__gw_user_online(gw, user_id, role);
}

/* The desk's external bot if it is online now: it takes new
 * conversations. NULL otherwise (the built-in bot does). */
static const char *desk_bot(sb_gw *gw, const sb_desk_def *def)
{
    return def && def->bot[0] && user_ready(gw, def->bot, SBP__ROLE__ROLE_BOT)
               ? def->bot
               : NULL;
}

/* c's member with role bot (an external bot), or NULL. */
static const char *bot_member(conv *c)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (c->members[i].role == SBP__ROLE__ROLE_BOT)
            return c->members[i].user_id;
    return NULL;
}

/* ---- conversation updates --------------------------------------------------
 */

static void fill_conv(sb_gw *gw, const conv *c, Sbp__Conversation *pc,
                      Sbp__Member **mp, Sbp__Member *ms)
{
    pc->conv_id = c->id;
    pc->kind = c->kind;
    pc->state = c->state;
    pc->desk = (char *)c->desk;
    pc->group = (char *)c->group;
    pc->agent = (char *)c->agent;
    pc->customer = (char *)c->customer;
    pc->queue_position = sb_desk_position(gw->cfg.desk, c->id);
    pc->csat_rating = c->csat_rating;
    for (size_t i = 0; i < c->n_members; i++) {
        sbp__member__init(&ms[i]);
        ms[i].user_id = (char *)c->members[i].user_id;
        ms[i].role = c->members[i].role;
        ms[i].read_seq = c->members[i].read_seq;
        ms[i].delivered_seq = c->members[i].delivered_seq;
        mp[i] = &ms[i];
    }
    pc->n_members = c->n_members;
    pc->members = mp;
}

/* CONV_UPDATE u of c to user_id's devices, with the transfer note when it
 * is for that user (sb_view.h). */
static void notify_user(sb_gw *gw, const conv *c, Sbp__ConvUpdate *u,
                        const char *user_id, Sbp__Role role)
{
    bool note = c->note && sb__view_note_for(gw, role, user_id, c->state,
                                             c->agent, c->group);
    u->conv->transfer_note = note ? c->note : (char *)protobuf_c_empty_string;
    u->conv->transfer_from =
        note ? (char *)c->note_from : (char *)protobuf_c_empty_string;
    sb__gw_send_user(gw, user_id, SBP__FRAME__BODY_CONV_UPDATE, u);
}

/* Tells every device of every member, and of also (a user who just left
 * it, or NULL), where c stands now. */
static void notify_conv_also(sb_gw *gw, conv *c, const char *also)
{
    Sbp__Member **mp = calloc(c->n_members + 1, sizeof *mp);
    Sbp__Member *ms = calloc(c->n_members + 1, sizeof *ms);
    if (mp && ms) {
        Sbp__Conversation pc = SBP__CONVERSATION__INIT;
        fill_conv(gw, c, &pc, mp, ms);
        Sbp__ConvUpdate u = SBP__CONV_UPDATE__INIT;
        u.conv = &pc;
        for (size_t i = 0; i < c->n_members; i++)
            notify_user(gw, c, &u, c->members[i].user_id, c->members[i].role);
        if (also && !sb__gw_conv_member(c, also))
            notify_user(gw, c, &u, also, SBP__ROLE__ROLE_UNSPECIFIED);
    }
    free(mp);
    free(ms);
}

static void notify_conv(sb_gw *gw, conv *c)
{
    notify_conv_also(gw, c, NULL);
}

/* Queued customers of group hear their new position. */
static void notify_queue(svc *v, int group)
{
    if (group < 0) return;
    size_t n = sb_desk_queue_list(v->gw->cfg.desk, group, v->queued,
                                  SVC_QUEUE_NOTIFY_MAX);
    for (size_t i = 0; i < n; i++) {
        conv *c = sb_map_get(&v->gw->convs, v->queued[i]);
        if (c) notify_conv(v->gw, c);
    }
}

/* Sets c's transfer note (text, "" for none) and its writer in memory;
 * the next route stores them. Out of memory keeps the old note. */
static void set_note(conv *c, const char *text, const char *from)
{
    char *note = text[0] ? strdup(text) : NULL;
    if (text[0] && !note) return;
    free(c->note);
    c->note = note;
    sb__gw_copy_str(c->note_from, sizeof c->note_from, from);
    c->note_dirty = true;
}

/* Moves c to state with group and agent at once in memory, then has the
 * store follow with the event messages msgs (taken; NULL entries are left
 * out). requester gets the answer to rid once it is stored (rid 0: none).
 * An external bot member leaves a conversation that leaves STATE_BOT;
 * join_bot (NULL: none) joins one that enters it. */
static void route_bot(sb_gw *gw, conv *c, Sbp__ConvState st, const char *group,
                      const char *agent, Sbp__Message **msgs, size_t n,
                      sess *requester, uint32_t rid, const char *join_bot)
{
    assert(n <= SB_REQ_MSGS_MAX);
    assert(!join_bot || st == SBP__CONV_STATE__STATE_BOT);
    const char *bot =
        st == SBP__CONV_STATE__STATE_BOT ? join_bot : bot_member(c);
    route_note *note = calloc(1, sizeof *note);
    sb_req *r =
        sb__gw_req_new(gw, SB_REQ_CONV_ROUTE, requester, rid, route_done);
    if (!r || !note) {
        free(r);
        free(note);
        for (size_t i = 0; i < n; i++)
            if (msgs[i]) sbp__message__free_unpacked(msgs[i], NULL);
        if (rid) sb__gw_error(gw, requester, rid, -ENOMEM);
        return;
    }
    /* The agent (or bot) losing the conversation still hears of the
     * change. */
    if (c->agent[0] && strcmp(c->agent, agent) != 0)
        sb__gw_copy_str(note->left, sizeof note->left, c->agent);
    else if (bot && st != SBP__CONV_STATE__STATE_BOT)
        sb__gw_copy_str(note->left, sizeof note->left, bot);
    /* The last agent of a closed conversation that reopens is no member
     * from now on, as the store will have it: the customer's message that
     * reopens it is not delivered to it. (One transferring it away stays
     * one until the store has the move: its acknowledgements of what it
     * was sent until then still count.) */
    if (note->left[0] && c->state == SBP__CONV_STATE__STATE_CLOSED)
        sb__gw_conv_member_drop(c, note->left);
    note->gen = ++c->route_gen;
    c->state = st;
    sb__gw_copy_str(c->group, sizeof c->group, group);
    sb__gw_copy_str(c->agent, sizeof c->agent, agent);
    r->u.route.conv_id = c->id;
    r->u.route.state = st;
    if (c->note_dirty) {
        /* The note set since the last route goes with this one. */
        r->u.route.note = strdup(c->note ? c->note : "");
        sb__gw_copy_str(r->u.route.note_from, sizeof r->u.route.note_from,
                        c->note_from);
        if (r->u.route.note) c->note_dirty = false;
    }
    sb__gw_copy_str(r->u.route.group, sizeof r->u.route.group, group);
    sb__gw_copy_str(r->u.route.agent, sizeof r->u.route.agent, agent);
    if (bot) sb__gw_copy_str(r->u.route.bot, sizeof r->u.route.bot, bot);
    r->data = note;
    for (size_t i = 0; i < n; i++)
        if (msgs[i]) r->msgs[r->n_msgs++] = msgs[i];
    sb__gw_submit(gw, r);
}

static void route(sb_gw *gw, conv *c, Sbp__ConvState st, const char *group,
                  const char *agent, Sbp__Message **msgs, size_t n,
                  sess *requester, uint32_t rid)
{
    route_bot(gw, c, st, group, agent, msgs, n, requester, rid, NULL);
}

static bool agent_has_room(sb_gw *gw, const char *agent)
{
    uint32_t cap, load;
    sb_desk_agent_load(gw->cfg.desk, agent, &cap, &load);
    return sb_desk_status(gw->cfg.desk, agent) ==
               SBP__AGENT_STATUS__AGENT_ONLINE &&
           load < cap;
}

/* Takes queued conversation id out of the queue and gives it to agent;
 * requester (NULL: none) gets the answer to rid once it is stored. */
static void assign_queued(sb_gw *gw, uint64_t id, const char *agent,
                          sess *requester, uint32_t rid)
{
    sb_desk *d = gw->cfg.desk;
    int64_t since = sb_desk_queued_since(d, id);
    sb_desk_dequeue(d, id);
    conv *c = sb_map_get(&gw->convs, id);
    if (!c || c->state != SBP__CONV_STATE__STATE_QUEUED) {
        if (rid) sb__gw_error(gw, requester, rid, SB_E_STATE);
        return;
    }
    if (since >= 0 && gw->now_ms > since)
        sb_hist_add(&gw->stats.queue_wait_ms, (uint64_t)(gw->now_ms - since));
    sb_desk_add_load(d, agent, +1, gw->now_ms);
    Sbp__Message *ev = sb_sysmsg_event(c->id, "conv.assigned", agent, NULL);
    route(gw, c, SBP__CONV_STATE__STATE_ASSIGNED, c->group, agent, &ev, 1,
          requester, rid);
}

/* Hands queued conversations to agent while it has room, oldest first. */
static void assign_from_queue(svc *v, const char *agent)
{
    sb_gw *gw = v->gw;
    sb_desk *d = gw->cfg.desk;
    if (!d || !v->routing_ready) return;
    while (agent_has_room(gw, agent)) {
        uint64_t id = sb_desk_next_for(d, agent);
        if (!id) break;
        int g = sb_desk_queued_group(d, id);
        assign_queued(gw, id, agent, NULL, 0);
        notify_queue(v, g);
    }
}

/* Hands every queued conversation, in queue order, to the agent of its
 * group that has room (least loaded first), if any: after a change of
 * configuration that may have made room anywhere. */
static void assign_all_queued(svc *v)
{
    sb_gw *gw = v->gw;
    sb_desk *d = gw->cfg.desk;
    if (!d || !v->routing_ready) return;
    size_t n = sb_desk_queue_len(d);
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return;
    n = sb_desk_queue_list(d, -1, ids, n);
    /* A group nobody had room for keeps none: assigning only takes room,
     * so the rest of its queue is not looked at again. */
    bool full[SB_DESK_GROUPS_MAX] = {false};
    for (size_t i = 0; i < n; i++) {
        int g = sb_desk_queued_group(d, ids[i]);
        assert(g >= 0 && g < SB_DESK_GROUPS_MAX);
        if (full[g]) continue;
        const char *agent = sb_desk_pick(d, g);
        if (agent)
            assign_queued(gw, ids[i], agent, NULL, 0);
        else
            full[g] = true;
    }
    free(ids);
}

/* The language of c's customer: that of a ready session of theirs, else
 * English. */
static const char *customer_lang(sb_gw *gw, const conv *c)
{
    user *u = sb__gw_user_get(gw, c->customer);
    for (sess *s = u ? u->sessions : NULL; s; s = s->user_next)
        if (s->state == SESS_READY && s->locale[0]) return s->locale;
    return "en";
}

/* The conversation needs a human of group: an agent with room now, or the
 * queue: outside the group's business hours with when it is back, or with
 * the out-of-hours text when nobody of the group is online. lang is the
 * customer's (NULL: found from its sessions).
 * first (taken; NULL: the handoff event) is the first event stored.
 * Returns 0, or the queue's code when it has no room: then c stays where
 * it is and requester has the ERROR for rid. */
static int handoff(svc *v, conv *c, int group, const char *lang,
                   Sbp__Message *first, const char *except, sess *requester,
                   uint32_t rid)
{
    sb_gw *gw = v->gw;
    sb_desk *d = gw->cfg.desk;
    const char *gname = sb_desk_group_name(d, group);
    if (!lang) lang = customer_lang(gw, c);
    const char *agent =
        v->routing_ready ? sb_desk_pick_except(d, group, except) : NULL;
    if (!first) first = sb_sysmsg_event(c->id, "conv.handoff", NULL, NULL);
    if (agent) {
        sb_hist_add(&gw->stats.queue_wait_ms, 0); /* nobody waits */
        sb_desk_add_load(d, agent, +1, gw->now_ms);
        Sbp__Message *ev[2] = {
            first, sb_sysmsg_event(c->id, "conv.assigned", agent, NULL)};
        route(gw, c, SBP__CONV_STATE__STATE_ASSIGNED, gname, agent, ev, 2,
              requester, rid);
        return 0;
    }
    int rc = sb_desk_enqueue(d, c->id, group, gw->now_ms);
    if (rc) {
        if (first) sbp__message__free_unpacked(first, NULL);
        rc = rc == -ENOBUFS ? SB_E_UNAVAILABLE : rc; /* the queue is full */
        if (rid) sb__gw_error(gw, requester, rid, rc);
        return rc;
    }
    char pos[16];
    snprintf(pos, sizeof pos, "%u", sb_desk_position(d, c->id));
    Sbp__Message *msgs[3] = {
        first, sb_sysmsg_event(c->id, "conv.queued", pos, NULL), NULL};
    if (!sb_desk_group_open(d, group)) {
        msgs[2] = sb_offhours_closed(c->id, sb_desk_group_hours(d, group),
                                     sb_desk_group_next_change(d, group), lang);
    } else if (!sb_desk_group_staffed(d, group)) {
        const sb_desk_def *def = sb_desk_get(d, c->desk);
        msgs[2] =
            sb_sysmsg_new(c->id, SVC_SENDER_BOT, SBP__MSG_TYPE__MSG_SYSTEM,
                          sb_desk_text(&def->out_of_hours, lang), lang);
    }
    route(gw, c, SBP__CONV_STATE__STATE_QUEUED, gname, "", msgs, 3, requester,
          rid);
    return 0;
}

/* Takes c away from its agent (closed or transferred): the agent's room
 * goes to the queue. */
static void release_agent(svc *v, conv *c, char *freed, size_t cap)
{
    sb_desk *d = v->gw->cfg.desk;
    freed[0] = '\0';
    if (c->state == SBP__CONV_STATE__STATE_ASSIGNED && c->agent[0]) {
        sb_desk_add_load(d, c->agent, -1, v->gw->now_ms);
        sb__gw_copy_str(freed, cap, c->agent);
    }
    if (c->state == SBP__CONV_STATE__STATE_QUEUED) {
        int g = sb_desk_queued_group(d, c->id);
        sb_desk_dequeue(d, c->id);
        notify_queue(v, g);
    }
}

/* c needs routing again because its group or its agent is gone from the
 * configuration: back to its group, or to the desk's default group. */
static void requeue(svc *v, conv *c)
{
    sb_desk *d = v->gw->cfg.desk;
    int g = sb_desk_group(d, c->group);
    if (g < 0) g = sb_desk_get(d, c->desk)->default_group;
    Sbp__Message *ev =
        sb_sysmsg_event(c->id, "conv.requeued", sb_desk_group_name(d, g), NULL);
    handoff(v, c, g, NULL, ev, NULL, NULL, 0);
}

/* ---- the bot ---------------------------------------------------------------
 */

static void bot_turn(svc *v, conv *c, const Sbp__Message *m)
{
    sb_gw *gw = v->gw;
    const sb_desk_def *def = sb_desk_get(gw->cfg.desk, c->desk);
    if (!def || m->type != SBP__MSG_TYPE__MSG_TEXT) return;
    const sb_desk_rule *rule;
    sb_bot_verdict verdict = sb_desk_bot(def, m->lang, m->body, &rule);
    if (verdict == SB_BOT_UNMATCHED && ++c->unmatched >= def->unmatched_max &&
        def->unmatched_max > 0)
        verdict = SB_BOT_HANDOFF;
    switch (verdict) {
    case SB_BOT_ANSWER:
        c->unmatched = 0;
        bot_says(gw, sb_sysmsg_robot(c->id, rule->answer, rule->quick,
                                     rule->n_quick, m->lang));
        break;
    case SB_BOT_UNMATCHED:
        bot_says(gw, robot_offer(c->id, sb_desk_text(&def->fallback, m->lang),
                                 m->lang));
        break;
    case SB_BOT_HANDOFF: {
        int g = sb_desk_group(gw->cfg.desk, c->group);
        handoff(v, c, g >= 0 ? g : def->default_group, m->lang, NULL, NULL,
                NULL, 0);
        break;
    }
    }
}

/* A customer waiting out of its group's hours who leaves an email address
 * hears that it was noted. */
static void note_email(sb_gw *gw, conv *c, const Sbp__Message *m)
{
    char email[SB_OFFHOURS_EMAIL_BYTES_MAX + 1];
    if (m->type != SBP__MSG_TYPE__MSG_TEXT ||
        sb_desk_group_open(gw->cfg.desk,
                           sb_desk_group(gw->cfg.desk, c->group)) ||
        !sb_offhours_email(m->body, email, sizeof email))
        return;
    bot_says(gw, sb_offhours_noted(c->id, email, m->lang));
}

/* The hook for a message a session sent: the customer's goes to the bot
 * (and reopens a closed conversation), the agent's first answer is
 * recorded; a note's mentions go to the notes module. */
static void on_stored(void *ud, conv *c, const Sbp__Message *m)
{
    svc *v = ud;
    sb_gw *gw = v->gw;
    if (c->kind == SBP__CONV_KIND__CONV_NOTES) {
        sb__notes_stored(gw, c, m);
        return;
    }
    if (!gw->cfg.desk || c->kind != SBP__CONV_KIND__CONV_SERVICE) return;
    if (strcmp(m->sender, c->customer) == 0) {
        if (c->state == SBP__CONV_STATE__STATE_CLOSED) {
            /* A customer writing after the close reopens: the bot first,
             * the desk's external bot when it is online (it reads this
             * message once it is a member). */
            c->unmatched = 0;
            set_note(c, "", "");
            const char *ext = desk_bot(gw, sb_desk_get(gw->cfg.desk, c->desk));
            Sbp__Message *ev =
                sb_sysmsg_event(c->id, "conv.reopened", NULL, NULL);
            route_bot(gw, c, SBP__CONV_STATE__STATE_BOT, c->group, "", &ev, 1,
                      NULL, 0, ext);
            if (ext) return;
        }
        /* An external bot answers while it is online; when it is not, the
         * built-in bot does, so that nobody waits on a bot that is gone. */
        const char *ext = bot_member(c);
        if (c->state == SBP__CONV_STATE__STATE_BOT &&
            !(ext && user_ready(gw, ext, SBP__ROLE__ROLE_BOT)))
            bot_turn(v, c, m);
        else if (c->state == SBP__CONV_STATE__STATE_QUEUED)
            note_email(gw, c, m);
    } else if (c->agent[0] && strcmp(m->sender, c->agent) == 0 &&
               !c->first_response) {
        c->first_response = true;
        if (c->created_ms && m->server_ts > c->created_ms)
            sb_hist_add(&gw->stats.first_response_ms,
                        (uint64_t)(m->server_ts - c->created_ms));
        sb_req *r = sb__gw_req_new(gw, SB_REQ_FIRST_RESPONSE, NULL, 0,
                                   sb__gw_quiet_done);
        if (r) {
            r->u.first_response.conv_id = c->id;
            sb__gw_submit(gw, r);
        }
    }
}

/* ---- OPEN of a service conversation ----------------------------------------
 */

/* The hook for a customer's OPEN: a service conversation when the desk is
 * configured and the OPEN names no other member or asks for one. */
static bool on_open(void *ud, sess *s, const Sbp__Frame *f)
{
    svc *v = ud;
    sb_gw *gw = v->gw;
    const Sbp__Open *o = f->open;
    if (!gw->cfg.desk ||
        !(o->kind == SBP__CONV_KIND__CONV_SERVICE || o->n_members == 0))
        return false;
    if (sb__gw_desk_elsewhere(gw)) {
        sb__gw_desk_forward(gw, s, f);
        return true;
    }
    if (!v->routing_ready) {
        sb__gw_desk_hold(gw, s, f);
        return true;
    }
    /* "" is the first desk; any other name must be a desk's. */
    const sb_desk_def *def = sb_desk_get(gw->cfg.desk, o->desk);
    if (def && o->desk[0] && strcmp(def->id, o->desk) != 0) def = NULL;
    sb_req *r =
        def ? sb__gw_req_new(gw, SB_REQ_SERVICE_OPEN, s, f->rid, open_done)
            : NULL;
    if (!r) {
        sb__gw_error_text(gw, s, f->rid, def ? -ENOMEM : SB_E_NOT_FOUND,
                          def ? NULL : "no such desk");
        return true;
    }
    sb__gw_copy_str(r->u.svc_open.customer, sizeof r->u.svc_open.customer,
                    s->user_id);
    sb__gw_copy_str(r->u.svc_open.desk, sizeof r->u.svc_open.desk, def->id);
    sb__gw_copy_str(r->u.svc_open.group, sizeof r->u.svc_open.group,
                    sb_desk_group_name(gw->cfg.desk, def->default_group));
    /* The desk's external bot, when online, joins a new conversation and
     * greets itself; otherwise the built-in bot greets. */
    const char *ext = desk_bot(gw, def);
    if (ext) {
        sb__gw_copy_str(r->u.svc_open.bot, sizeof r->u.svc_open.bot, ext);
    } else {
        Sbp__Message *greet =
            robot_offer(0, sb_desk_text(&def->greeting, s->locale), s->locale);
        if (greet) r->msgs[r->n_msgs++] = greet;
    }
    sb__gw_submit(gw, r);
    return true;
}

/* Replaces a protobuf-c string field's value (malloc'd, or the empty
 * string) with a copy of v; out of memory leaves it as it was. */
static void set_str(char **field, const char *v)
{
    char *copy = strdup(v);
    if (!copy) return;
    if (*field != protobuf_c_empty_string) free(*field);
    *field = copy;
}

static void open_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__Conversation *pc = r->u.svc_open.conv;
    if (r->rc == 0 && pc) {
        conv *c = sb__gw_conv_refresh(gw, pc);
        if (c) {
            /* The routing as decided, which the store may not have yet. */
            pc->state = c->state;
            set_str(&pc->group, c->group);
            set_str(&pc->agent, c->agent);
        }
        if (s) sb__view_conv(gw, s, pc);
        Sbp__OpenResp o = SBP__OPEN_RESP__INIT;
        o.conv = pc;
        sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_OPEN_RESP, &o);
        /* An external bot learns of its new conversation. */
        if (c && r->u.svc_open.created && r->u.svc_open.bot[0])
            notify_conv(gw, c);
    } else {
        sb__gw_error(gw, s, r->rid, r->rc);
    }
    for (size_t i = 0; i < r->n_msgs; i++) {
        if (r->rc == 0 && r->u.svc_open.created && r->msgs[i]->seq)
            sb__gw_deliver(gw, r->msgs[i], NULL);
        else
            sbp__message__free_unpacked(r->msgs[i], NULL);
    }
    if (pc) sbp__conversation__free_unpacked(pc, NULL);
    free(r);
}

/* ---- requests --------------------------------------------------------------
 */

static bool is_service(const conv *c)
{
    return c->kind == SBP__CONV_KIND__CONV_SERVICE;
}

static void on_transfer(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    svc *v = ud;
    const Sbp__Transfer *t = f->transfer;
    sb_desk *d = gw->cfg.desk;
    int rc = 0, g = -1;
    /* Members only (the row's SB_GW_ACCESS): the note's size, the kind,
     * then who may, then the state. */
    if (strlen(t->note) > SB_NOTE_BYTES_MAX) {
        sb__gw_error(gw, s, f->rid, SB_E_TOO_LARGE);
        return;
    }
    if (!d || !is_service(c)) {
        sb__gw_error(gw, s, f->rid, SB_E_STATE);
        return;
    }
    if (!(s->role == SBP__ROLE__ROLE_ADMIN ||
          (c->agent[0] && strcmp(c->agent, s->user_id) == 0))) {
        sb__gw_error_text(gw, s, f->rid, SB_E_FORBIDDEN,
                          "only its agent or an admin may transfer it");
        return;
    }
    if (c->state != SBP__CONV_STATE__STATE_ASSIGNED &&
        c->state != SBP__CONV_STATE__STATE_QUEUED)
        rc = SB_E_STATE;
    else if (t->to_agent[0]) {
        if (!sb_desk_is_agent(d, t->to_agent))
            rc = SB_E_NOT_FOUND;
        else if (strcmp(t->to_agent, c->agent) == 0 ||
                 sb_desk_status(d, t->to_agent) !=
                     SBP__AGENT_STATUS__AGENT_ONLINE)
            rc = SB_E_STATE;
    } else if ((g = sb_desk_group(d, t->to_group)) < 0) {
        rc = t->to_group[0] ? SB_E_NOT_FOUND : SB_E_INVALID;
    }
    if (rc) {
        sb__gw_error(gw, s, f->rid, rc);
        return;
    }
    /* The note goes to the store with the route, to whoever gets the
     * conversation next (sb_view.h); a transfer without one clears it. */
    set_note(c, t->note, t->note[0] ? s->user_id : "");
    /* Route first, so that the agent handing the conversation on is not
     * chosen again; then its room goes to the queue, in queue order. */
    char old_agent[SB_ID_BYTES_MAX + 1] = "";
    if (c->state == SBP__CONV_STATE__STATE_ASSIGNED)
        sb__gw_copy_str(old_agent, sizeof old_agent, c->agent);
    if (c->state == SBP__CONV_STATE__STATE_QUEUED) {
        int qg = sb_desk_queued_group(d, c->id);
        sb_desk_dequeue(d, c->id);
        notify_queue(v, qg);
    }
    if (t->to_agent[0]) {
        sb_desk_add_load(d, t->to_agent, +1, gw->now_ms);
        Sbp__Message *ev =
            sb_sysmsg_event(c->id, "conv.transferred", t->to_agent, NULL);
        route(gw, c, SBP__CONV_STATE__STATE_ASSIGNED, c->group, t->to_agent,
              &ev, 1, s, f->rid);
    } else {
        Sbp__Message *ev =
            sb_sysmsg_event(c->id, "conv.transferred", t->to_group, NULL);
        if (handoff(v, c, g, NULL, ev, old_agent, s, f->rid) != 0) return;
    }
    if (old_agent[0]) {
        sb_desk_add_load(d, old_agent, -1, gw->now_ms);
        assign_from_queue(v, old_agent);
    }
}

static void on_close(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    svc *v = ud;
    if (!gw->cfg.desk || !is_service(c)) {
        sb__gw_error(gw, s, f->rid, SB_E_STATE);
        return;
    }
    if (!(s->role == SBP__ROLE__ROLE_ADMIN ||
          strcmp(c->customer, s->user_id) == 0 ||
          (c->agent[0] && strcmp(c->agent, s->user_id) == 0))) {
        sb__gw_error_text(gw, s, f->rid, SB_E_FORBIDDEN,
                          "only its customer, its agent or an admin may "
                          "close it");
        return;
    }
    if (c->state == SBP__CONV_STATE__STATE_CLOSED) {
        sb__gw_reply_rc(gw, s, f->rid, 0);
        return;
    }
    char freed[SB_ID_BYTES_MAX + 1];
    release_agent(v, c, freed, sizeof freed);
    /* A closed conversation keeps its last agent, who stays a member: it
     * is in that agent's closed list and history, read-only. */
    Sbp__Message *ev = sb_sysmsg_event(c->id, "conv.closed", s->user_id, NULL);
    route(gw, c, SBP__CONV_STATE__STATE_CLOSED, c->group, freed, &ev, 1, s,
          f->rid);
    sb__csat_ask(gw, c);
    if (freed[0]) assign_from_queue(v, freed);
}

/* An agent takes a queued conversation of one of its groups, whatever its
 * status (taking one is being at work), within its capacity unless it
 * says over_capacity. */
static void on_claim(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    svc *v = ud;
    sb_desk *d = gw->cfg.desk;
    int g = d ? sb_desk_queued_group(d, c->id) : -1;
    uint32_t cap = 0, load = 0;
    if (d) sb_desk_agent_load(d, s->user_id, &cap, &load);
    if (!d || !is_service(c) || c->state != SBP__CONV_STATE__STATE_QUEUED ||
        g < 0) {
        sb__gw_error_text(gw, s, f->rid, SB_E_STATE, "not in a queue");
    } else if (!sb_desk_in_group(d, s->user_id, g)) {
        sb__gw_error_text(gw, s, f->rid, SB_E_FORBIDDEN,
                          "not an agent of the conversation's group");
    } else if (load >= cap && !f->claim->over_capacity) {
        sb__gw_error_text(gw, s, f->rid, SB_E_STATE,
                          "at capacity (over_capacity takes it anyway)");
    } else {
        assign_queued(gw, c->id, s->user_id, s, f->rid);
        notify_queue(v, g);
    }
}

static void on_handoff(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    svc *v = ud;
    sb_desk *d = gw->cfg.desk;
    int g = d ? sb_desk_group(d, f->handoff->group) : -1;
    int rc = 0;
    if (d && is_service(c) &&
        !(strcmp(c->customer, s->user_id) == 0 ||
          s->role == SBP__ROLE__ROLE_BOT || s->role == SBP__ROLE__ROLE_ADMIN)) {
        sb__gw_error_text(gw, s, f->rid, SB_E_FORBIDDEN,
                          "only its customer, its bot or an admin may hand it "
                          "off");
        return;
    }
    if (!d || !is_service(c) || c->state != SBP__CONV_STATE__STATE_BOT)
        rc = SB_E_STATE;
    else if (f->handoff->group[0] && g < 0)
        rc = SB_E_NOT_FOUND;
    if (rc) {
        sb__gw_error(gw, s, f->rid, rc);
        return;
    }
    if (g < 0) g = sb_desk_get(d, c->desk)->default_group;
    handoff(v, c, g, s->locale, NULL, NULL, s, f->rid);
}

static void on_agent_state(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    svc *v = ud;
    sb_desk *d = gw->cfg.desk;
    if (!d || !sb_desk_is_agent(d, s->user_id)) {
        sb__gw_error_text(gw, s, f->rid, SB_E_FORBIDDEN,
                          "only a desk's agents have an agent state");
        return;
    }
    Sbp__AgentStatus st = f->agent_state->status;
    if (st != SBP__AGENT_STATUS__AGENT_ONLINE &&
        st != SBP__AGENT_STATUS__AGENT_AWAY) {
        sb__gw_error(gw, s, f->rid, SB_E_INVALID);
        return;
    }
    Sbp__AgentStatus was = sb_desk_status(d, s->user_id);
    sb_desk_set_status(d, s->user_id, st, gw->now_ms);
    if (st != was) sb__team_presence(gw, s->user_id, st);
    Sbp__AgentState a = SBP__AGENT_STATE__INIT;
    a.status = sb_desk_status(d, s->user_id);
    sb_desk_agent_load(d, s->user_id, &a.capacity, &a.load);
    sb__gw_send(gw, s, f->rid, SBP__FRAME__BODY_AGENT_STATE, &a);
    if (st == SBP__AGENT_STATUS__AGENT_ONLINE) assign_from_queue(v, s->user_id);
}

/* ---- store completions -----------------------------------------------------
 */

/* A routing write is done (stored, or refused for good): the members get
 * its events and the conversation as it stands, the requester s its
 * answer. Takes r. */
static void route_end(sb_gw *gw, sess *s, sb_req *r)
{
    route_note *note = r->data;
    conv *c = sb_map_get(&gw->convs, r->u.route.conv_id);
    if (r->rc == 0 && r->u.route.conv &&
        r->u.route.state == SBP__CONV_STATE__STATE_CLOSED &&
        r->u.route.conv->resolution_ms > 0)
        sb_hist_add(&gw->stats.resolution_ms,
                    (uint64_t)r->u.route.conv->resolution_ms);
    /* Members follow the assignment; the routing in memory (the transfer
     * note too) is already ahead of the store, and stays. */
    if (r->rc == 0 && r->u.route.conv && c)
        sb__gw_conv_refresh(gw, r->u.route.conv);
    /* A note the store did not take goes with the next route. */
    if (r->rc != 0 && r->u.route.note && c) c->note_dirty = true;
    for (size_t i = 0; i < r->n_msgs; i++) {
        if (r->rc == 0 && c)
            sb__gw_deliver(gw, r->msgs[i], NULL);
        else
            sbp__message__free_unpacked(r->msgs[i], NULL);
    }
    if (c) notify_conv_also(gw, c, note->left[0] ? note->left : NULL);
    free(note);
    free(r->u.route.note);
    if (r->rid) sb__gw_reply_rc(gw, s, r->rid, r->rc);
    if (r->u.route.conv)
        sbp__conversation__free_unpacked(r->u.route.conv, NULL);
    free(r);
}

/* Whether r, a routing write, is still its conversation's latest: then
 * the store must have it. A later one carries the state in full, and r's
 * events would come after it. */
static bool route_latest(sb_gw *gw, const sb_req *r)
{
    const route_note *note = r->data;
    conv *c = sb_map_get(&gw->convs, r->u.route.conv_id);
    return c && note->gen == c->route_gen;
}

/* The first routing write of conv_id on the list from r on, or NULL. */
static sb_req *route_waiting(sb_req *r, uint64_t conv_id)
{
    for (; r; r = r->next)
        if (r->kind == SB_REQ_CONV_ROUTE && r->u.route.conv_id == conv_id)
            return r;
    return NULL;
}

/* r, a routing write the store failed, is no longer its conversation's
 * latest: the later write carries the routing in full, but not r's events
 * ("assigned to a2"). While the later write waits to be made again too,
 * they go with it, ahead of its own (room permitting); once it is made,
 * they would come after it (an assignment after the close) and are
 * dropped. r is answered as failed. */
static void route_superseded(sb_gw *gw, sess *s, sb_req *r, sb_req *later)
{
    if (later && later->n_msgs + r->n_msgs <= SB_REQ_MSGS_MAX) {
        memmove(later->msgs + r->n_msgs, later->msgs,
                later->n_msgs * sizeof *later->msgs);
        memcpy(later->msgs, r->msgs, r->n_msgs * sizeof *r->msgs);
        later->n_msgs += r->n_msgs;
        r->n_msgs = 0;
    }
    route_end(gw, s, r);
}

static void route_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    /* Routing is decided in memory first: the store failing to write it
     * (not refusing it) must not leave memory ahead of the store for
     * good, with an agent that is not a member, a queue the store does
     * not know of. The same write is made again at the next tick, and
     * answered once it is in; one a later write superseded meanwhile is
     * done with there (on_tick). */
    if (r->rc == SB_E_STORE) {
        if (r->u.route.conv)
            sbp__conversation__free_unpacked(r->u.route.conv, NULL);
        r->u.route.conv = NULL;
        r->rc = 0;
        again_push(gw->hooks.ud, r);
        return;
    }
    route_end(gw, s, r);
}

static void assign_cb(void *ud, const char *agent)
{
    assign_from_queue(ud, agent);
}

/* One of the start's two lists: its conversations back in their queues
 * and agents' loads. A list the store failed to read is read again at the
 * next tick: routing waits for both. */
static void start_done(sb_req *r)
{
    svc *v = r->data;
    sb_gw *gw = v->gw;
    sb__gw_req_back(gw, r, false);
    if (r->rc != 0) {
        r->rc = 0;
        again_push(v, r);
        return;
    }
    sb_desk *d = gw->cfg.desk;
    for (size_t i = 0; i < r->u.service_convs.n; i++) {
        Sbp__Conversation *pc = r->u.service_convs.list[i];
        conv *c = r->rc == 0 ? sb__gw_conv_reload(gw, pc) : NULL;
        if (c && pc->state == SBP__CONV_STATE__STATE_QUEUED) {
            int g = sb_desk_group(d, pc->group);
            if (g >= 0)
                sb_desk_enqueue(d, pc->conv_id, g, pc->updated_ts);
            else
                requeue(v, c); /* its group is no longer configured */
        } else if (c && pc->agent[0]) {
            if (sb_desk_is_agent(d, pc->agent))
                sb_desk_add_load(d, pc->agent, +1, gw->now_ms);
            else
                requeue(v, c); /* its agent is no longer configured */
        }
        sbp__conversation__free_unpacked(pc, NULL);
    }
    free(r->u.service_convs.list);
    v->lists_in |= r->u.service_convs.state == SBP__CONV_STATE__STATE_QUEUED
                       ? SVC_LIST_QUEUED
                       : SVC_LIST_ASSIGNED;
    /* Both lists are in: route what waits to whoever is online. */
    if (v->lists_in == (SVC_LIST_QUEUED | SVC_LIST_ASSIGNED)) {
        v->routing_ready = true;
        sb__gw_online_each(gw, SBP__ROLE__ROLE_AGENT, assign_cb, v);
        sb__gw_desk_ready(gw, true);
    }
    free(r);
}

/* ---- hooks -----------------------------------------------------------------
 */

/* Rebuilds queues and loads from the store. */
static void on_start(void *ud)
{
    svc *v = ud;
    if (!v->gw->cfg.desk) {
        v->routing_ready = true;
        sb__gw_desk_ready(v->gw, true);
        return;
    }
    sb_desk_hours_update(v->gw->cfg.desk, v->gw->now_ms);
    /* Routing is ready once both lists are in (start_done). */
    v->lists_in = 0;
    Sbp__ConvState states[2] = {SBP__CONV_STATE__STATE_QUEUED,
                                SBP__CONV_STATE__STATE_ASSIGNED};
    for (int i = 0; i < 2; i++) {
        sb_req *r =
            sb__gw_req_new(v->gw, SB_REQ_SERVICE_CONVS, NULL, 0, start_done);
        if (!r) continue;
        r->data = v;
        r->u.service_convs.state = states[i];
        sb__gw_submit(v->gw, r);
    }
}

/* Drops the requests waiting to be made again: the routing writes
 * answered as refused (reply: their requesters hear it), the start lists
 * freed. */
static void again_drop(svc *v, bool reply)
{
    sb_req *r = v->again;
    v->again = v->again_tail = NULL;
    for (sb_req *next; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (r->kind == SB_REQ_CONV_ROUTE && reply) {
            r->rc = SB_E_STORE;
            route_end(v->gw, sb__gw_sess_get(v->gw, r->owner), r);
            continue;
        }
        if (r->kind == SB_REQ_CONV_ROUTE) {
            for (size_t i = 0; i < r->n_msgs; i++)
                sbp__message__free_unpacked(r->msgs[i], NULL);
            free(r->data);
            free(r->u.route.note);
        }
        free(r);
    }
}

/* sb_gw_free(): the requests waiting to be made again go too. */
static void on_free(void *ud)
{
    again_drop(ud, false);
    free(ud);
}

/* The node no longer owns the desks (a cluster): the next owner rebuilds
 * the routing state from the store, and this node writes none of its
 * own any more. */
static void on_stop(void *ud)
{
    svc *v = ud;
    again_drop(v, true);
    v->routing_ready = false;
    if (v->gw->cfg.desk) sb_desk_routing_clear(v->gw->cfg.desk);
    sb__gw_desk_ready(v->gw, false);
}

/* An agent is online while it has a ready session. */
static void on_presence(void *ud, const char *user_id, Sbp__Role role,
                        bool online)
{
    svc *v = ud;
    sb_desk *d = v->gw->cfg.desk;
    if (role != SBP__ROLE__ROLE_AGENT || !d || !sb_desk_is_agent(d, user_id))
        return;
    Sbp__AgentStatus st = online ? SBP__AGENT_STATUS__AGENT_ONLINE
                                 : SBP__AGENT_STATUS__AGENT_OFFLINE;
    bool changed = sb_desk_status(d, user_id) != st;
    sb_desk_set_status(d, user_id, st, v->gw->now_ms);
    if (changed) sb__team_presence(v->gw, user_id, st);
    if (online) assign_from_queue(v, user_id);
}

static void agent_now_online(void *ud, const char *agent)
{
    svc *v = ud;
    sb_desk *d = v->gw->cfg.desk;
    if (sb_desk_is_agent(d, agent) &&
        sb_desk_status(d, agent) == SBP__AGENT_STATUS__AGENT_OFFLINE) {
        sb_desk_set_status(d, agent, SBP__AGENT_STATUS__AGENT_ONLINE,
                           v->gw->now_ms);
        sb__team_presence(v->gw, agent, SBP__AGENT_STATUS__AGENT_ONLINE);
    }
}

static int on_desk_swap(void *ud, sb_desk *nd, sb_desk **old_out)
{
    svc *v = ud;
    sb_gw *gw = v->gw;
    sb_desk *old = gw->cfg.desk;
    uint64_t *orphans = NULL;
    size_t n = 0;
    int rc = sb_desk_adopt(nd, old, &orphans, &n);
    if (rc) return rc;
    sb_desk_hours_update(nd, gw->now_ms);
    gw->cfg.desk = nd;
    *old_out = old;
    /* Another node routes: this one keeps the configuration only. */
    if (sb__gw_desk_elsewhere(gw)) {
        free(orphans);
        return 0;
    }
    /* Agents that are connected are online, new ones too. */
    sb__gw_online_each(gw, SBP__ROLE__ROLE_AGENT, agent_now_online, v);
    if (!old) {
        /* Customer service starts now: queues and loads come from the
         * store, as at a start. */
        v->routing_ready = false;
        sb__gw_desk_ready(gw, false);
        on_start(v);
    }
    /* Nothing is lost: conversations queued for a group that is gone, and
     * those of an agent that is gone, are routed again. */
    for (size_t i = 0; i < n; i++) {
        conv *c = sb_map_get(&gw->convs, orphans[i]);
        if (c && c->state == SBP__CONV_STATE__STATE_QUEUED) requeue(v, c);
    }
    free(orphans);
    for (size_t i = 0; i < gw->convs.cap; i++) {
        conv *c = gw->convs.slots[i].val;
        if (c && is_service(c) && c->state == SBP__CONV_STATE__STATE_ASSIGNED &&
            c->agent[0] && !sb_desk_is_agent(nd, c->agent))
            requeue(v, c);
    }
    /* Room the change made (an agent added, a capacity raised) goes to
     * the queue at once; every queued customer hears its position. */
    assign_all_queued(v);
    for (int g = 0; g < SB_DESK_GROUPS_MAX && sb_desk_group_name(nd, g)[0]; g++)
        notify_queue(v, g);
    return 0;
}

/* Time passed: the store requests to make again go (a routing write that
 * is no longer its conversation's latest is done with: refused, its
 * events stored alone);
 * a group whose shift starts hands its queue out to the agents online
 * with room, and its customers hear their positions. */
static void on_tick(void *ud)
{
    svc *v = ud;
    sb_req *r = v->again;
    v->again = v->again_tail = NULL;
    while (r) {
        sb_req *next = r->next;
        r->next = NULL;
        if (r->kind == SB_REQ_CONV_ROUTE && !route_latest(v->gw, r)) {
            r->rc = SB_E_STORE;
            route_superseded(v->gw, sb__gw_sess_get(v->gw, r->owner), r,
                             route_waiting(next, r->u.route.conv_id));
        } else {
            sb__gw_submit(v->gw, r);
        }
        r = next;
    }
    sb_desk *d = v->gw->cfg.desk;
    uint64_t opened = d ? sb_desk_hours_update(d, v->gw->now_ms) : 0;
    if (!opened || !v->routing_ready) return;
    assign_all_queued(v);
    for (int g = 0; g < SB_DESK_GROUPS_MAX; g++)
        if (opened >> g & 1) notify_queue(v, g);
}

static const sb_gw_row ROWS[] = {
    {.body = SBP__FRAME__BODY_TRANSFER,
     .flags = SB_GW_READY | SB_GW_DESK | SB_GW_CONV | SB_GW_ACCESS,
     .handle = on_transfer},
    {.body = SBP__FRAME__BODY_CLOSE,
     .flags = SB_GW_READY | SB_GW_DESK | SB_GW_CONV | SB_GW_ACCESS,
     .handle = on_close},
    {.body = SBP__FRAME__BODY_HANDOFF,
     .flags = SB_GW_READY | SB_GW_DESK | SB_GW_CONV | SB_GW_ACCESS,
     .handle = on_handoff},
    {.body = SBP__FRAME__BODY_AGENT_STATE,
     .flags = SB_GW_READY | SB_GW_DESK,
     .handle = on_agent_state},
    {.body = SBP__FRAME__BODY_CLAIM,
     .flags = SB_GW_READY | SB_GW_DESK | SB_GW_CONV,
     .roles = SB_GW_ROLE(SBP__ROLE__ROLE_AGENT),
     .why = "agents only",
     .handle = on_claim},
};

int sb__svc_register(sb_gw *gw)
{
    svc *v = calloc(1, sizeof *v);
    if (!v) return -ENOMEM;
    v->gw = gw;
    sb_gw_hooks h = {.ud = v,
                     .open = on_open,
                     .stored = on_stored,
                     .presence = on_presence,
                     .tick = on_tick,
                     .start = on_start,
                     .stop = on_stop,
                     .desk_swap = on_desk_swap,
                     .free = on_free};
    sb__gw_hooks_set(gw, &h);
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, v);
    return 0;
}
