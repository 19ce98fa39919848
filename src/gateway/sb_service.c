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
#include "sb_offhours.h"
#include "sb_sysmsg.h"

#define SVC_SENDER_BOT "bot"
#define SVC_QUEUE_NOTIFY_MAX 1000 /* queued customers told their position */

/* The module's state, one per gateway. */
typedef struct svc {
    sb_gw *gw;
    bool routing_ready; /* queues and loads rebuilt from the store */
    uint64_t queued[SVC_QUEUE_NOTIFY_MAX]; /* notify_queue's */
} svc;

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
        mp[i] = &ms[i];
    }
    pc->n_members = c->n_members;
    pc->members = mp;
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
        sb__gw_send_members(gw, c, SBP__FRAME__BODY_CONV_UPDATE, &u, NULL);
        if (also && !sb__gw_conv_member(c, also))
            sb__gw_send_user(gw, also, SBP__FRAME__BODY_CONV_UPDATE, &u);
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
    /* The agent (or bot) losing the conversation still hears of the
     * change. */
    char *left = c->agent[0] && strcmp(c->agent, agent) != 0 ? strdup(c->agent)
                 : bot && st != SBP__CONV_STATE__STATE_BOT   ? strdup(bot)
                                                             : NULL;
    c->state = st;
    sb__gw_copy_str(c->group, sizeof c->group, group);
    sb__gw_copy_str(c->agent, sizeof c->agent, agent);
    sb_req *r =
        sb__gw_req_new(gw, SB_REQ_CONV_ROUTE, requester, rid, route_done);
    if (!r) {
        free(left);
        for (size_t i = 0; i < n; i++)
            if (msgs[i]) sbp__message__free_unpacked(msgs[i], NULL);
        if (rid) sb__gw_error(gw, requester, rid, -ENOMEM);
        return;
    }
    r->u.route.conv_id = c->id;
    r->u.route.state = st;
    sb__gw_copy_str(r->u.route.group, sizeof r->u.route.group, group);
    sb__gw_copy_str(r->u.route.agent, sizeof r->u.route.agent, agent);
    if (bot) sb__gw_copy_str(r->u.route.bot, sizeof r->u.route.bot, bot);
    r->data = left;
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

/* Takes queued conversation id out of the queue and gives it to agent. */
static void assign_queued(sb_gw *gw, uint64_t id, const char *agent)
{
    sb_desk *d = gw->cfg.desk;
    int64_t since = sb_desk_queued_since(d, id);
    sb_desk_dequeue(d, id);
    conv *c = sb_map_get(&gw->convs, id);
    if (!c || c->state != SBP__CONV_STATE__STATE_QUEUED) return;
    if (since >= 0 && gw->now_ms > since)
        sb_hist_add(&gw->stats.queue_wait_ms, (uint64_t)(gw->now_ms - since));
    sb_desk_add_load(d, agent, +1, gw->now_ms);
    Sbp__Message *ev = sb_sysmsg_event(c->id, "conv.assigned", agent, NULL);
    route(gw, c, SBP__CONV_STATE__STATE_ASSIGNED, c->group, agent, &ev, 1, NULL,
          0);
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
        assign_queued(gw, id, agent);
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
            assign_queued(gw, ids[i], agent);
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
 * recorded. */
static void on_stored(void *ud, conv *c, const Sbp__Message *m)
{
    svc *v = ud;
    sb_gw *gw = v->gw;
    if (!gw->cfg.desk || c->kind != SBP__CONV_KIND__CONV_SERVICE) return;
    if (strcmp(m->sender, c->customer) == 0) {
        if (c->state == SBP__CONV_STATE__STATE_CLOSED) {
            /* A customer writing after the close reopens: the bot first,
             * the desk's external bot when it is online (it reads this
             * message once it is a member). */
            c->unmatched = 0;
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
    const sb_desk_def *def = sb_desk_get(gw->cfg.desk, o->desk);
    sb_req *r = sb__gw_req_new(gw, SB_REQ_SERVICE_OPEN, s, f->rid, open_done);
    if (!def || !r) {
        free(r);
        sb__gw_error(gw, s, f->rid, def ? -ENOMEM : SB_E_NOT_FOUND);
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

static void open_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__Conversation *pc = r->u.svc_open.conv;
    if (r->rc == 0 && pc) {
        conv *c = sb__gw_conv_refresh(gw, pc);
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
    if (!d || !is_service(c))
        rc = SB_E_STATE;
    else if (!(s->role == SBP__ROLE__ROLE_ADMIN ||
               (c->agent[0] && strcmp(c->agent, s->user_id) == 0)))
        rc = SB_E_FORBIDDEN;
    else if (c->state != SBP__CONV_STATE__STATE_ASSIGNED &&
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
    int rc = 0;
    if (!gw->cfg.desk || !is_service(c))
        rc = SB_E_STATE;
    else if (!(s->role == SBP__ROLE__ROLE_ADMIN ||
               strcmp(c->customer, s->user_id) == 0 ||
               (c->agent[0] && strcmp(c->agent, s->user_id) == 0)))
        rc = SB_E_FORBIDDEN;
    if (rc || c->state == SBP__CONV_STATE__STATE_CLOSED) {
        sb__gw_reply_rc(gw, s, f->rid, rc);
        return;
    }
    char freed[SB_ID_BYTES_MAX + 1];
    release_agent(v, c, freed, sizeof freed);
    Sbp__Message *ev = sb_sysmsg_event(c->id, "conv.closed", s->user_id, NULL);
    route(gw, c, SBP__CONV_STATE__STATE_CLOSED, c->group, "", &ev, 1, s,
          f->rid);
    sb__csat_ask(gw, c);
    if (freed[0]) assign_from_queue(v, freed);
}

static void on_handoff(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    svc *v = ud;
    sb_desk *d = gw->cfg.desk;
    int g = d ? sb_desk_group(d, f->handoff->group) : -1;
    int rc = 0;
    if (!d || !is_service(c) || c->state != SBP__CONV_STATE__STATE_BOT)
        rc = SB_E_STATE;
    else if (!(strcmp(c->customer, s->user_id) == 0 ||
               (s->role == SBP__ROLE__ROLE_BOT && sb__gw_may_access(s, c)) ||
               s->role == SBP__ROLE__ROLE_ADMIN))
        rc = SB_E_FORBIDDEN;
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
        sb__gw_error(gw, s, f->rid, SB_E_FORBIDDEN);
        return;
    }
    Sbp__AgentStatus st = f->agent_state->status;
    if (st != SBP__AGENT_STATUS__AGENT_ONLINE &&
        st != SBP__AGENT_STATUS__AGENT_AWAY) {
        sb__gw_error(gw, s, f->rid, SB_E_INVALID);
        return;
    }
    sb_desk_set_status(d, s->user_id, st, gw->now_ms);
    Sbp__AgentState a = SBP__AGENT_STATE__INIT;
    a.status = sb_desk_status(d, s->user_id);
    sb_desk_agent_load(d, s->user_id, &a.capacity, &a.load);
    sb__gw_send(gw, s, f->rid, SBP__FRAME__BODY_AGENT_STATE, &a);
    if (st == SBP__AGENT_STATUS__AGENT_ONLINE) assign_from_queue(v, s->user_id);
}

/* ---- store completions -----------------------------------------------------
 */

static void route_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    conv *c = sb_map_get(&gw->convs, r->u.route.conv_id);
    if (r->rc == 0 && r->u.route.conv &&
        r->u.route.state == SBP__CONV_STATE__STATE_CLOSED &&
        r->u.route.conv->resolution_ms > 0)
        sb_hist_add(&gw->stats.resolution_ms,
                    (uint64_t)r->u.route.conv->resolution_ms);
    if (r->rc == 0 && r->u.route.conv && c) {
        /* Members follow the assignment; the routing fields in memory are
         * already ahead of the store, keep them. */
        Sbp__ConvState st = c->state;
        char group[SB_ID_BYTES_MAX + 1], agent[SB_ID_BYTES_MAX + 1];
        sb__gw_copy_str(group, sizeof group, c->group);
        sb__gw_copy_str(agent, sizeof agent, c->agent);
        sb__gw_conv_refresh(gw, r->u.route.conv);
        c->state = st;
        sb__gw_copy_str(c->group, sizeof c->group, group);
        sb__gw_copy_str(c->agent, sizeof c->agent, agent);
    }
    for (size_t i = 0; i < r->n_msgs; i++) {
        if (r->rc == 0 && c)
            sb__gw_deliver(gw, r->msgs[i], NULL);
        else
            sbp__message__free_unpacked(r->msgs[i], NULL);
    }
    if (c) notify_conv_also(gw, c, r->data);
    free(r->data);
    if (r->rid) sb__gw_reply_rc(gw, s, r->rid, r->rc);
    if (r->u.route.conv)
        sbp__conversation__free_unpacked(r->u.route.conv, NULL);
    free(r);
}

static void assign_cb(void *ud, const char *agent)
{
    assign_from_queue(ud, agent);
}

/* One of the start's two lists: its conversations back in their queues
 * and agents' loads. */
static void start_done(sb_req *r)
{
    svc *v = r->data;
    sb_gw *gw = v->gw;
    sb__gw_req_back(gw, r, false);
    sb_desk *d = gw->cfg.desk;
    for (size_t i = 0; i < r->u.service_convs.n; i++) {
        Sbp__Conversation *pc = r->u.service_convs.list[i];
        conv *c = r->rc == 0 ? sb__gw_conv_refresh(gw, pc) : NULL;
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
    /* Both lists are in: route what waits to whoever is online. */
    if (r->u.service_convs.state == SBP__CONV_STATE__STATE_ASSIGNED) {
        v->routing_ready = true;
        sb__gw_online_each(gw, SBP__ROLE__ROLE_AGENT, assign_cb, v);
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
        return;
    }
    sb_desk_hours_update(v->gw->cfg.desk, v->gw->now_ms);
    /* Queued first, then assigned: the reader answers in order, and the
     * second answer marks routing ready. */
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

/* The node no longer owns the desks (a cluster): the next owner rebuilds
 * the routing state from the store. */
static void on_stop(void *ud)
{
    svc *v = ud;
    v->routing_ready = false;
    if (v->gw->cfg.desk) sb_desk_routing_clear(v->gw->cfg.desk);
}

/* An agent is online while it has a ready session. */
static void on_presence(void *ud, const char *user_id, Sbp__Role role,
                        bool online)
{
    svc *v = ud;
    sb_desk *d = v->gw->cfg.desk;
    if (role != SBP__ROLE__ROLE_AGENT || !d || !sb_desk_is_agent(d, user_id))
        return;
    sb_desk_set_status(d, user_id,
                       online ? SBP__AGENT_STATUS__AGENT_ONLINE
                              : SBP__AGENT_STATUS__AGENT_OFFLINE,
                       v->gw->now_ms);
    if (online) assign_from_queue(v, user_id);
}

static void agent_now_online(void *ud, const char *agent)
{
    svc *v = ud;
    sb_desk *d = v->gw->cfg.desk;
    if (sb_desk_is_agent(d, agent) &&
        sb_desk_status(d, agent) == SBP__AGENT_STATUS__AGENT_OFFLINE)
        sb_desk_set_status(d, agent, SBP__AGENT_STATUS__AGENT_ONLINE,
                           v->gw->now_ms);
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

/* Time passed: a group whose shift starts hands its queue out to the
 * agents online with room, and its customers hear their positions. */
static void on_tick(void *ud)
{
    svc *v = ud;
    sb_desk *d = v->gw->cfg.desk;
    uint64_t opened = d ? sb_desk_hours_update(d, v->gw->now_ms) : 0;
    if (!opened || !v->routing_ready) return;
    assign_all_queued(v);
    for (int g = 0; g < SB_DESK_GROUPS_MAX; g++)
        if (opened >> g & 1) notify_queue(v, g);
}

static const sb_gw_row ROWS[] = {
    {.body = SBP__FRAME__BODY_TRANSFER,
     .flags = SB_GW_READY | SB_GW_DESK | SB_GW_CONV,
     .handle = on_transfer},
    {.body = SBP__FRAME__BODY_CLOSE,
     .flags = SB_GW_READY | SB_GW_DESK | SB_GW_CONV,
     .handle = on_close},
    {.body = SBP__FRAME__BODY_HANDOFF,
     .flags = SB_GW_READY | SB_GW_DESK | SB_GW_CONV,
     .handle = on_handoff},
    {.body = SBP__FRAME__BODY_AGENT_STATE,
     .flags = SB_GW_READY | SB_GW_DESK,
     .handle = on_agent_state},
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
                     .free = free};
    sb__gw_hooks_set(gw, &h);
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, v);
    return 0;
}
