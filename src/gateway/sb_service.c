/* The customer-service lifecycle on top of the delivery core: service
 * conversations (bot -> queued -> assigned -> closed, transfer, reopen),
 * the built-in rule bot or an external one (a client with role bot that
 * joins the conversation while it is online), routing to agents, a new
 * desk configuration put in force while conversations are under way, and
 * the workbench requests (conversation list, search, canned replies, tags,
 * recall, typing, agent status). Routing is decided here, synchronously,
 * in the desk's state; the store follows in order, each change stored
 * with its event message. No I/O and no clock, like the rest of the
 * core. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_desk.h"
#include "sb_error.h"
#include "sb_gateway_int.h"
#include "sb_i18n.h"

#define SVC_SENDER_SYSTEM "system"
#define SVC_SENDER_BOT "bot"
#define SVC_QUEUE_NOTIFY_MAX 1000 /* queued customers told their position */

static void quiet_done(sb_req *r);
static void route_done(sb_req *r);
static void open_done(sb_req *r);
static void recall_checked(sb_req *r);
static void recall_done(sb_req *r);
static void tag_done(sb_req *r);
static void send_list(sb_req *r);
static void search_done(sb_req *r);
static void start_done(sb_req *r);

/* ---- messages the server writes --------------------------------------------
 */

static Sbp__Message *msg_new(uint64_t conv_id, const char *sender,
                             Sbp__MsgType type, const char *body,
                             const char *lang)
{
    Sbp__Message *m = malloc(sizeof *m);
    if (!m) return NULL;
    sbp__message__init(m);
    m->conv_id = conv_id;
    m->type = type;
    m->sender = strdup(sender);
    m->body = strdup(body ? body : "");
    m->lang = strdup(lang ? lang : "");
    if (!m->sender || !m->body || !m->lang) {
        sbp__message__free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}

/* An event: stored as key and arguments, rendered per recipient. */
static Sbp__Message *event_new(uint64_t conv_id, const char *key,
                               const char *a0, const char *a1)
{
    Sbp__Message *m =
        msg_new(conv_id, SVC_SENDER_SYSTEM, SBP__MSG_TYPE__MSG_EVENT, "", "");
    Sbp__Event *e = malloc(sizeof *e);
    if (!m || !e) goto oom;
    sbp__event__init(e);
    m->event = e;
    e->key = strdup(key);
    e->args = calloc(2, sizeof *e->args);
    if (!e->key || !e->args) goto oom;
    const char *a[2] = {a0, a1};
    for (int i = 0; i < 2 && a[i]; i++) {
        if (!(e->args[i] = strdup(a[i]))) goto oom;
        e->n_args++;
    }
    /* The stored body is the English text, for tools that read the store. */
    char text[512];
    sb_i18n_render("en", key, e->args, e->n_args, text, sizeof text);
    free(m->body);
    if (!(m->body = strdup(text))) goto oom;
    return m;
oom:
    if (m)
        sbp__message__free_unpacked(m, NULL);
    else
        free(e);
    return NULL;
}

/* A robot message with quick replies. */
static Sbp__Message *robot_new(uint64_t conv_id, const char *text,
                               char *const *quick, size_t n_quick,
                               const char *lang)
{
    Sbp__Message *m =
        msg_new(conv_id, SVC_SENDER_BOT, SBP__MSG_TYPE__MSG_ROBOT, text, lang);
    if (!m || n_quick == 0) return m;
    m->quick_replies = calloc(n_quick, sizeof *m->quick_replies);
    if (!m->quick_replies) goto oom;
    for (size_t i = 0; i < n_quick; i++) {
        Sbp__QuickReply *q = malloc(sizeof *q);
        if (!q) goto oom;
        sbp__quick_reply__init(q);
        m->quick_replies[m->n_quick_replies++] = q;
        if (!(q->title = strdup(quick[i])) || !(q->payload = strdup(quick[i])))
            goto oom;
    }
    return m;
oom:
    sbp__message__free_unpacked(m, NULL);
    return NULL;
}

static void append(sb_gw *gw, Sbp__Message *m)
{
    if (!m) return;
    sb_req *r =
        sb__gw_req_new(gw, SB_REQ_MSG_APPEND, NULL, 0, sb__gw_append_done);
    if (!r) {
        sbp__message__free_unpacked(m, NULL);
        return;
    }
    r->u.append.msg = m;
    r->now_ms = gw->now_ms;
    sb__gw_submit(gw, r);
}

static const char *human_label(const char *lang)
{
    static char buf[2][64];
    int i = (lang && strncmp(lang, "zh", 2) == 0);
    sb_i18n_render(i ? "zh-CN" : "en", "bot.human", NULL, 0, buf[i],
                   sizeof buf[i]);
    return buf[i];
}

/* ---- the external bot
 * ---------------------------------------------------------- */

/* Whether user_id has a ready session with role. */
static bool user_ready(sb_gw *gw, const char *user_id, Sbp__Role role)
{
    user *u = sb__gw_user_get(gw, user_id);
    for (sess *s = u ? u->sessions : NULL; s; s = s->user_next)
        if (s->state == SESS_READY && s->role == role) return true;
    return false;
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

/* ---- conversation updates
 * ------------------------------------------------------ */

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
        Sbp__Frame f = SBP__FRAME__INIT;
        f.body_case = SBP__FRAME__BODY_CONV_UPDATE;
        f.conv_update = &u;
        sb__gw_send_members(gw, c, &f, NULL);
        user *u2 = also && !sb__gw_conv_member(c, also)
                       ? sb__gw_user_get(gw, also)
                       : NULL;
        for (sess *s = u2 ? u2->sessions : NULL; s; s = s->user_next)
            if (s->state == SESS_READY) sb__gw_send_frame(gw, s, &f);
    }
    free(mp);
    free(ms);
}

static void notify_conv(sb_gw *gw, conv *c)
{
    notify_conv_also(gw, c, NULL);
}

/* Queued customers of group hear their new position. */
static void notify_queue(sb_gw *gw, int group)
{
    static uint64_t ids[SVC_QUEUE_NOTIFY_MAX];
    if (group < 0) return;
    size_t n =
        sb_desk_queue_list(gw->cfg.desk, group, ids, SVC_QUEUE_NOTIFY_MAX);
    for (size_t i = 0; i < n; i++) {
        conv *c = sb_map_get(&gw->convs, ids[i]);
        if (c) notify_conv(gw, c);
    }
}

/* OK to the request rid of s, if there was one (a routing pass may run
 * for nobody's request). */
static void send_ok(sb_gw *gw, sess *s, uint32_t rid)
{
    if (s && rid) sb__gw_send_ok(gw, s, rid);
}

/* Moves c to state with group and agent at once in memory, then has the
 * store follow with the event messages msgs (taken). requester and rid get
 * the OK once it is stored. An external bot member leaves a conversation
 * that leaves STATE_BOT; join_bot (NULL: none) joins one that enters it. */
static void route_bot(sb_gw *gw, conv *c, Sbp__ConvState st, const char *group,
                      const char *agent, Sbp__Message **msgs, size_t n,
                      const sess *requester, uint32_t rid, const char *join_bot)
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
        return;
    }
    r->u.route.conv_id = c->id;
    r->u.route.state = st;
    sb__gw_copy_str(r->u.route.group, sizeof r->u.route.group, group);
    sb__gw_copy_str(r->u.route.agent, sizeof r->u.route.agent, agent);
    if (bot) sb__gw_copy_str(r->u.route.bot, sizeof r->u.route.bot, bot);
    r->now_ms = gw->now_ms;
    r->data = left;
    for (size_t i = 0; i < n; i++)
        if (msgs[i]) r->msgs[r->n_msgs++] = msgs[i];
    sb__gw_submit(gw, r);
}

static void route(sb_gw *gw, conv *c, Sbp__ConvState st, const char *group,
                  const char *agent, Sbp__Message **msgs, size_t n,
                  const sess *requester, uint32_t rid)
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
    sb_desk_dequeue(d, id);
    conv *c = sb_map_get(&gw->convs, id);
    if (!c || c->state != SBP__CONV_STATE__STATE_QUEUED) return;
    sb_desk_add_load(d, agent, +1, gw->now_ms);
    Sbp__Message *ev = event_new(c->id, "conv.assigned", agent, NULL);
    route(gw, c, SBP__CONV_STATE__STATE_ASSIGNED, c->group, agent, &ev, 1, NULL,
          0);
}

/* Hands queued conversations to agent while it has room, oldest first. */
static void assign_from_queue(sb_gw *gw, const char *agent)
{
    sb_desk *d = gw->cfg.desk;
    if (!d || !gw->routing_ready) return;
    while (agent_has_room(gw, agent)) {
        uint64_t id = sb_desk_next_for(d, agent);
        if (!id) break;
        int g = sb_desk_queued_group(d, id);
        assign_queued(gw, id, agent);
        notify_queue(gw, g);
    }
}

/* Hands every queued conversation, in queue order, to the agent of its
 * group that has room (least loaded first), if any: after a change of
 * configuration that may have made room anywhere. */
static void assign_all_queued(sb_gw *gw)
{
    sb_desk *d = gw->cfg.desk;
    if (!d || !gw->routing_ready) return;
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

/* The conversation needs a human of group: an agent with room now, or the
 * queue (with the out-of-hours text when nobody of the group is online). */
static void handoff(sb_gw *gw, conv *c, int group, const char *lang,
                    Sbp__Message *first, const char *except,
                    const sess *requester, uint32_t rid)
{
    sb_desk *d = gw->cfg.desk;
    const char *gname = sb_desk_group_name(d, group);
    const char *agent =
        gw->routing_ready ? sb_desk_pick_except(d, group, except) : NULL;
    if (!first) first = event_new(c->id, "conv.handoff", NULL, NULL);
    if (agent) {
        sb_desk_add_load(d, agent, +1, gw->now_ms);
        Sbp__Message *ev[2] = {first,
                               event_new(c->id, "conv.assigned", agent, NULL)};
        route(gw, c, SBP__CONV_STATE__STATE_ASSIGNED, gname, agent, ev, 2,
              requester, rid);
        return;
    }
    if (sb_desk_enqueue(d, c->id, group, gw->now_ms) != 0) {
        /* The queue is full: the conversation stays where it is. */
        if (first) sbp__message__free_unpacked(first, NULL);
        return;
    }
    char pos[16];
    snprintf(pos, sizeof pos, "%u", sb_desk_position(d, c->id));
    Sbp__Message *msgs[3] = {first, event_new(c->id, "conv.queued", pos, NULL),
                             NULL};
    if (!sb_desk_group_staffed(d, group)) {
        const sb_desk_def *def = sb_desk_get(d, c->desk);
        msgs[2] = msg_new(c->id, SVC_SENDER_BOT, SBP__MSG_TYPE__MSG_SYSTEM,
                          sb_desk_text(&def->out_of_hours, lang), lang);
    }
    route(gw, c, SBP__CONV_STATE__STATE_QUEUED, gname, "", msgs, 3, requester,
          rid);
}

/* Takes c away from its agent (closed or transferred): the agent's room
 * goes to the queue. */
static void release_agent(sb_gw *gw, conv *c, char *freed, size_t cap)
{
    freed[0] = '\0';
    if (c->state == SBP__CONV_STATE__STATE_ASSIGNED && c->agent[0]) {
        sb_desk_add_load(gw->cfg.desk, c->agent, -1, gw->now_ms);
        sb__gw_copy_str(freed, cap, c->agent);
    }
    if (c->state == SBP__CONV_STATE__STATE_QUEUED) {
        int g = sb_desk_queued_group(gw->cfg.desk, c->id);
        sb_desk_dequeue(gw->cfg.desk, c->id);
        notify_queue(gw, g);
    }
}

/* c needs routing again because its group or its agent is gone from the
 * configuration: back to its group, or to the desk's default group. */
static void requeue(sb_gw *gw, conv *c)
{
    sb_desk *d = gw->cfg.desk;
    int g = sb_desk_group(d, c->group);
    if (g < 0) g = sb_desk_get(d, c->desk)->default_group;
    Sbp__Message *ev =
        event_new(c->id, "conv.requeued", sb_desk_group_name(d, g), NULL);
    handoff(gw, c, g, "en", ev, NULL, NULL, 0);
}

/* ---- the bot ----------------------------------------------------------------
 */

static void bot_turn(sb_gw *gw, conv *c, const Sbp__Message *m)
{
    const sb_desk_def *def = sb_desk_get(gw->cfg.desk, c->desk);
    if (!def || m->type != SBP__MSG_TYPE__MSG_TEXT) return;
    const sb_desk_rule *rule;
    sb_bot_verdict v = sb_desk_bot(def, m->lang, m->body, &rule);
    if (v == SB_BOT_UNMATCHED && ++c->unmatched >= def->unmatched_max &&
        def->unmatched_max > 0)
        v = SB_BOT_HANDOFF;
    switch (v) {
    case SB_BOT_ANSWER:
        c->unmatched = 0;
        append(gw, robot_new(c->id, rule->answer, rule->quick, rule->n_quick,
                             m->lang));
        break;
    case SB_BOT_UNMATCHED: {
        char *q[1] = {(char *)human_label(m->lang)};
        append(gw, robot_new(c->id, sb_desk_text(&def->fallback, m->lang), q, 1,
                             m->lang));
        break;
    }
    case SB_BOT_HANDOFF: {
        int g = sb_desk_group(gw->cfg.desk, c->group);
        handoff(gw, c, g >= 0 ? g : def->default_group, m->lang, NULL, NULL,
                NULL, 0);
        break;
    }
    }
}

void sb__svc_after_message(sb_gw *gw, conv *c, const Sbp__Message *m)
{
    if (!gw->cfg.desk) return;
    if (strcmp(m->sender, c->customer) == 0) {
        if (c->state == SBP__CONV_STATE__STATE_CLOSED) {
            /* A customer writing after the close reopens: the bot first,
             * the desk's external bot when it is online (it reads this
             * message once it is a member). */
            c->unmatched = 0;
            const char *ext = desk_bot(gw, sb_desk_get(gw->cfg.desk, c->desk));
            Sbp__Message *ev = event_new(c->id, "conv.reopened", NULL, NULL);
            route_bot(gw, c, SBP__CONV_STATE__STATE_BOT, c->group, "", &ev, 1,
                      NULL, 0, ext);
            if (ext) return;
        }
        /* An external bot answers while it is online; when it is not, the
         * built-in bot does, so that nobody waits on a bot that is gone. */
        const char *ext = bot_member(c);
        if (c->state == SBP__CONV_STATE__STATE_BOT &&
            !(ext && user_ready(gw, ext, SBP__ROLE__ROLE_BOT)))
            bot_turn(gw, c, m);
    } else if (c->agent[0] && strcmp(m->sender, c->agent) == 0 &&
               !c->first_response) {
        c->first_response = true;
        sb_req *r =
            sb__gw_req_new(gw, SB_REQ_FIRST_RESPONSE, NULL, 0, quiet_done);
        if (r) {
            r->u.first_response.conv_id = c->id;
            sb__gw_submit(gw, r);
        }
    }
}

/* ---- OPEN of a service conversation ----------------------------------------
 */

void sb__svc_open(sb_gw *gw, sess *s, const Sbp__Frame *f)
{
    const sb_desk_def *def = sb_desk_get(gw->cfg.desk, f->open->desk);
    sb_req *r = sb__gw_req_new(gw, SB_REQ_SERVICE_OPEN, s, f->rid, open_done);
    if (!def || !r) {
        free(r);
        sb__gw_send_error(gw, s, f->rid, def ? -ENOMEM : SB_E_NOT_FOUND, NULL);
        return;
    }
    sb__gw_copy_str(r->u.svc_open.customer, sizeof r->u.svc_open.customer,
                    s->user_id);
    sb__gw_copy_str(r->u.svc_open.desk, sizeof r->u.svc_open.desk, def->id);
    sb__gw_copy_str(r->u.svc_open.group, sizeof r->u.svc_open.group,
                    sb_desk_group_name(gw->cfg.desk, def->default_group));
    r->now_ms = gw->now_ms;
    /* The desk's external bot, when online, joins a new conversation and
     * greets itself; otherwise the built-in bot greets. */
    const char *ext = desk_bot(gw, def);
    if (ext) {
        sb__gw_copy_str(r->u.svc_open.bot, sizeof r->u.svc_open.bot, ext);
        sb__gw_submit(gw, r);
        return;
    }
    char *q[1] = {(char *)human_label(s->locale)};
    Sbp__Message *greet =
        robot_new(0, sb_desk_text(&def->greeting, s->locale), q, 1, s->locale);
    if (greet) r->msgs[r->n_msgs++] = greet;
    sb__gw_submit(gw, r);
}

static void open_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__Conversation *pc = r->u.svc_open.conv;
    if (r->rc == 0 && pc) {
        conv *c = sb__gw_conv_refresh(gw, pc);
        if (s) {
            Sbp__OpenResp o = SBP__OPEN_RESP__INIT;
            o.conv = pc;
            Sbp__Frame f = SBP__FRAME__INIT;
            f.rid = r->rid;
            f.body_case = SBP__FRAME__BODY_OPEN_RESP;
            f.open_resp = &o;
            sb__gw_send_frame(gw, s, &f);
        }
        /* An external bot learns of its new conversation. */
        if (c && r->u.svc_open.created && r->u.svc_open.bot[0])
            notify_conv(gw, c);
    } else if (s) {
        sb__gw_send_error(gw, s, r->rid, r->rc, NULL);
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

/* ---- requests
 * ------------------------------------------------------------------ */

static bool is_service(const conv *c)
{
    return c->kind == SBP__CONV_KIND__CONV_SERVICE;
}

static bool is_staff(const sess *s)
{
    return s->role == SBP__ROLE__ROLE_AGENT || s->role == SBP__ROLE__ROLE_ADMIN;
}

static void on_transfer(sb_gw *gw, sess *s, Sbp__Frame **fp)
{
    Sbp__Frame *f = *fp;
    const Sbp__Transfer *t = f->transfer;
    conv *c = sb__gw_conv_need(gw, s, t->conv_id, fp);
    if (!c) return;
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
        sb__gw_send_error(gw, s, f->rid, rc, NULL);
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
        notify_queue(gw, qg);
    }
    if (t->to_agent[0]) {
        sb_desk_add_load(d, t->to_agent, +1, gw->now_ms);
        Sbp__Message *ev =
            event_new(c->id, "conv.transferred", t->to_agent, NULL);
        route(gw, c, SBP__CONV_STATE__STATE_ASSIGNED, c->group, t->to_agent,
              &ev, 1, s, f->rid);
    } else {
        Sbp__Message *ev =
            event_new(c->id, "conv.transferred", t->to_group, NULL);
        handoff(gw, c, g, "en", ev, old_agent, s, f->rid);
    }
    if (old_agent[0]) {
        sb_desk_add_load(d, old_agent, -1, gw->now_ms);
        assign_from_queue(gw, old_agent);
    }
}

static void on_close(sb_gw *gw, sess *s, Sbp__Frame **fp)
{
    Sbp__Frame *f = *fp;
    conv *c = sb__gw_conv_need(gw, s, f->close->conv_id, fp);
    if (!c) return;
    int rc = 0;
    if (!gw->cfg.desk || !is_service(c))
        rc = SB_E_STATE;
    else if (!(s->role == SBP__ROLE__ROLE_ADMIN ||
               strcmp(c->customer, s->user_id) == 0 ||
               (c->agent[0] && strcmp(c->agent, s->user_id) == 0)))
        rc = SB_E_FORBIDDEN;
    if (rc) {
        sb__gw_send_error(gw, s, f->rid, rc, NULL);
        return;
    }
    if (c->state == SBP__CONV_STATE__STATE_CLOSED) {
        send_ok(gw, s, f->rid);
        return;
    }
    char freed[SB_ID_BYTES_MAX + 1];
    release_agent(gw, c, freed, sizeof freed);
    Sbp__Message *ev = event_new(c->id, "conv.closed", s->user_id, NULL);
    route(gw, c, SBP__CONV_STATE__STATE_CLOSED, c->group, "", &ev, 1, s,
          f->rid);
    if (freed[0]) assign_from_queue(gw, freed);
}

static void on_handoff(sb_gw *gw, sess *s, Sbp__Frame **fp)
{
    Sbp__Frame *f = *fp;
    conv *c = sb__gw_conv_need(gw, s, f->handoff->conv_id, fp);
    if (!c) return;
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
        sb__gw_send_error(gw, s, f->rid, rc, NULL);
        return;
    }
    if (g < 0) g = sb_desk_get(d, c->desk)->default_group;
    handoff(gw, c, g, s->locale, NULL, NULL, s, f->rid);
}

static void on_recall(sb_gw *gw, sess *s, Sbp__Frame **fp)
{
    Sbp__Frame *f = *fp;
    conv *c = sb__gw_conv_need(gw, s, f->recall->conv_id, fp);
    if (!c) return;
    if (!sb__gw_conv_member(c, s->user_id)) {
        sb__gw_send_error(gw, s, f->rid, SB_E_FORBIDDEN, NULL);
        return;
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_MSG_GET, s, f->rid, recall_checked);
    if (!r) return;
    r->u.msg_get.conv_id = c->id;
    r->u.msg_get.seq = f->recall->seq;
    sb__gw_submit(gw, r);
}

/* The message to recall is known: check who and when, then store. */
static void recall_checked(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__Message *m = r->u.msg_get.msg;
    if (!s) goto out;
    int rc = r->rc;
    conv *c = sb_map_get(&gw->convs, r->u.msg_get.conv_id);
    const sb_desk_def *def =
        gw->cfg.desk && c ? sb_desk_get(gw->cfg.desk, c->desk) : NULL;
    int64_t window_ms = (int64_t)(def ? def->recall_window_s : 120) * 1000;
    if (rc == 0 && strcmp(m->sender, s->user_id) != 0) rc = SB_E_FORBIDDEN;
    if (rc == 0 && m->type == SBP__MSG_TYPE__MSG_EVENT) rc = SB_E_INVALID;
    if (rc == 0 && !m->recalled && gw->now_ms - m->server_ts > window_ms)
        rc = SB_E_TOO_LATE;
    if (rc) {
        sb__gw_send_error(gw, s, r->rid, rc, NULL);
        goto out;
    }
    if (m->recalled) {
        send_ok(gw, s, r->rid);
        goto out;
    }
    sb_req *w = sb__gw_req_new(gw, SB_REQ_MSG_RECALL, s, r->rid, recall_done);
    if (!w) goto out;
    w->u.recall.conv_id = m->conv_id;
    w->u.recall.seq = m->seq;
    w->now_ms = gw->now_ms;
    char seq[24];
    snprintf(seq, sizeof seq, "%" PRIu64, m->seq);
    Sbp__Message *ev = event_new(m->conv_id, "msg.recalled", s->user_id, seq);
    if (ev) w->msgs[w->n_msgs++] = ev;
    sb__gw_submit(gw, w);
out:
    if (m) sbp__message__free_unpacked(m, NULL);
    free(r);
}

static void on_tag(sb_gw *gw, sess *s, Sbp__Frame **fp)
{
    Sbp__Frame *f = *fp;
    Sbp__Tag *t = f->tag;
    conv *c = sb__gw_conv_need(gw, s, t->conv_id, fp);
    if (!c) return;
    if (!is_staff(s) || !sb__gw_may_access(s, c)) {
        sb__gw_send_error(gw, s, f->rid, SB_E_FORBIDDEN, NULL);
        return;
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_TAG, s, f->rid, tag_done);
    if (!r) return;
    r->u.tag.conv_id = t->conv_id;
    r->u.tag.seq = t->seq;
    r->now_ms = gw->now_ms;
    /* The request takes the frame's arrays. */
    r->u.tag.add = t->add;
    r->u.tag.n_add = t->n_add;
    r->u.tag.remove = t->remove;
    r->u.tag.n_remove = t->n_remove;
    t->add = t->remove = NULL;
    t->n_add = t->n_remove = 0;
    sb__gw_submit(gw, r);
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void on_typing(sb_gw *gw, sess *s, Sbp__Frame **fp)
{
    Sbp__Frame *f = *fp;
    conv *c = sb__gw_conv_need(gw, s, f->typing->conv_id, fp);
    if (!c) return;
    if (!sb__gw_conv_member(c, s->user_id)) {
        sb__gw_send_error(gw, s, f->rid, SB_E_FORBIDDEN, NULL);
        return;
    }
    Sbp__Typing t = SBP__TYPING__INIT;
    t.conv_id = c->id;
    t.user_id = s->user_id;
    t.on = f->typing->on;
    Sbp__Frame out = SBP__FRAME__INIT;
    out.body_case = SBP__FRAME__BODY_TYPING;
    out.typing = &t;
    sb__gw_send_members(gw, c, &out, s);
}

static void send_agent_state(sb_gw *gw, sess *s, uint32_t rid)
{
    Sbp__AgentState a = SBP__AGENT_STATE__INIT;
    a.status = sb_desk_status(gw->cfg.desk, s->user_id);
    sb_desk_agent_load(gw->cfg.desk, s->user_id, &a.capacity, &a.load);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = SBP__FRAME__BODY_AGENT_STATE;
    f.agent_state = &a;
    sb__gw_send_frame(gw, s, &f);
}

static void on_agent_state(sb_gw *gw, sess *s, const Sbp__Frame *f)
{
    sb_desk *d = gw->cfg.desk;
    if (!d || !sb_desk_is_agent(d, s->user_id)) {
        sb__gw_send_error(gw, s, f->rid, SB_E_FORBIDDEN, NULL);
        return;
    }
    Sbp__AgentStatus st = f->agent_state->status;
    if (st != SBP__AGENT_STATUS__AGENT_ONLINE &&
        st != SBP__AGENT_STATUS__AGENT_AWAY) {
        sb__gw_send_error(gw, s, f->rid, SB_E_INVALID, NULL);
        return;
    }
    sb_desk_set_status(d, s->user_id, st, gw->now_ms);
    send_agent_state(gw, s, f->rid);
    if (st == SBP__AGENT_STATUS__AGENT_ONLINE)
        assign_from_queue(gw, s->user_id);
}

static void on_conv_list(sb_gw *gw, sess *s, const Sbp__Frame *f)
{
    const Sbp__ConvList *l = f->conv_list;
    if (strlen(l->cursor) > SB_LIST_CURSOR_BYTES_MAX ||
        strlen(l->tag) > SB_TAG_BYTES_MAX) {
        sb__gw_send_error(gw, s, f->rid, SB_E_INVALID, NULL);
        return;
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_CONV_LIST, s, f->rid, send_list);
    if (!r) return;
    sb__gw_copy_str(r->u.conv_list.user_id, sizeof r->u.conv_list.user_id,
                    s->user_id);
    r->u.conv_list.all = s->role == SBP__ROLE__ROLE_ADMIN && !l->mine;
    r->u.conv_list.state = l->state;
    sb__gw_copy_str(r->u.conv_list.tag, sizeof r->u.conv_list.tag, l->tag);
    sb__gw_copy_str(r->u.conv_list.cursor, sizeof r->u.conv_list.cursor,
                    l->cursor);
    r->u.conv_list.limit = l->limit ? l->limit : 50;
    if (r->u.conv_list.limit > 200) r->u.conv_list.limit = 200;
    /* Agents see the queue of their groups (not its messages). */
    if (gw->cfg.desk && !l->mine &&
        (l->state == 0 || l->state == SBP__CONV_STATE__STATE_QUEUED)) {
        const char *names[SB_DESK_GROUPS_MAX];
        size_t n = sb_desk_agent_groups(gw->cfg.desk, s->user_id, names,
                                        SB_DESK_GROUPS_MAX);
        if (n) {
            r->u.conv_list.groups = calloc(n, sizeof *r->u.conv_list.groups);
            for (size_t i = 0; r->u.conv_list.groups && i < n; i++)
                if ((r->u.conv_list.groups[i] = strdup(names[i])))
                    r->u.conv_list.n_groups++;
        }
    }
    sb__gw_submit(gw, r);
}

static void on_search(sb_gw *gw, sess *s, const Sbp__Frame *f)
{
    const Sbp__Search *q = f->search;
    size_t n = strlen(q->query);
    if (n == 0 || n > SB_QUERY_BYTES_MAX) {
        sb__gw_send_error(gw, s, f->rid, n ? SB_E_TOO_LARGE : SB_E_INVALID,
                          NULL);
        return;
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_SEARCH, s, f->rid, search_done);
    if (!r || !(r->u.search.query = strdup(q->query))) {
        free(r);
        return;
    }
    sb__gw_copy_str(r->u.search.user_id, sizeof r->u.search.user_id,
                    s->user_id);
    r->u.search.all = s->role == SBP__ROLE__ROLE_ADMIN;
    r->u.search.conv_id = q->conv_id;
    r->u.search.limit = q->limit ? q->limit : 50;
    sb__gw_submit(gw, r);
}

static void on_canned(sb_gw *gw, sess *s, const Sbp__Frame *f)
{
    const sb_desk_def *def =
        gw->cfg.desk ? sb_desk_get(gw->cfg.desk, f->canned_list->desk) : NULL;
    if (!is_staff(s) || !def) {
        sb__gw_send_error(gw, s, f->rid, def ? SB_E_FORBIDDEN : SB_E_NOT_FOUND,
                          NULL);
        return;
    }
    Sbp__Canned *items = calloc(def->n_canned + 1, sizeof *items);
    Sbp__Canned **ptrs = calloc(def->n_canned + 1, sizeof *ptrs);
    if (items && ptrs) {
        for (size_t i = 0; i < def->n_canned; i++) {
            sbp__canned__init(&items[i]);
            items[i].key = def->canned[i].key;
            items[i].title = def->canned[i].title;
            items[i].text = def->canned[i].text;
            ptrs[i] = &items[i];
        }
        Sbp__CannedListResp resp = SBP__CANNED_LIST_RESP__INIT;
        resp.n_items = def->n_canned;
        resp.items = ptrs;
        Sbp__Frame out = SBP__FRAME__INIT;
        out.rid = f->rid;
        out.body_case = SBP__FRAME__BODY_CANNED_LIST_RESP;
        out.canned_list_resp = &resp;
        sb__gw_send_frame(gw, s, &out);
    }
    free(items);
    free(ptrs);
}

bool sb__svc_frame(sb_gw *gw, sess *s, Sbp__Frame **fp)
{
    Sbp__Frame *f = *fp;
    switch (f->body_case) {
    case SBP__FRAME__BODY_TRANSFER:
        on_transfer(gw, s, fp);
        return true;
    case SBP__FRAME__BODY_CLOSE:
        on_close(gw, s, fp);
        return true;
    case SBP__FRAME__BODY_HANDOFF:
        on_handoff(gw, s, fp);
        return true;
    case SBP__FRAME__BODY_RECALL:
        on_recall(gw, s, fp);
        return true;
    case SBP__FRAME__BODY_TAG:
        on_tag(gw, s, fp);
        return true;
    case SBP__FRAME__BODY_TYPING:
        on_typing(gw, s, fp);
        return true;
    case SBP__FRAME__BODY_AGENT_STATE:
        on_agent_state(gw, s, f);
        return true;
    case SBP__FRAME__BODY_CONV_LIST:
        on_conv_list(gw, s, f);
        return true;
    case SBP__FRAME__BODY_SEARCH:
        on_search(gw, s, f);
        return true;
    case SBP__FRAME__BODY_CANNED_LIST:
        on_canned(gw, s, f);
        return true;
    default:
        return false;
    }
}

/* ---- store completions
 * --------------------------------------------------------- */

static void route_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    conv *c = sb_map_get(&gw->convs, r->u.route.conv_id);
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
    if (s && r->rid) {
        if (r->rc == 0)
            send_ok(gw, s, r->rid);
        else
            sb__gw_send_error(gw, s, r->rid, r->rc, NULL);
    }
    if (r->u.route.conv)
        sbp__conversation__free_unpacked(r->u.route.conv, NULL);
    free(r);
}

static void start_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
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
                requeue(gw, c); /* its group is no longer configured */
        } else if (c && pc->agent[0]) {
            if (sb_desk_is_agent(d, pc->agent))
                sb_desk_add_load(d, pc->agent, +1, gw->now_ms);
            else
                requeue(gw, c); /* its agent is no longer configured */
        }
        sbp__conversation__free_unpacked(pc, NULL);
    }
    free(r->u.service_convs.list);
    /* Both lists are in: route what waits to whoever is online. */
    if (r->u.service_convs.state == SBP__CONV_STATE__STATE_ASSIGNED) {
        gw->routing_ready = true;
        for (size_t i = 0; i < gw->sessions.cap; i++) {
            sess *s = gw->sessions.slots[i].val;
            if (s && s->state == SESS_READY && s->role == SBP__ROLE__ROLE_AGENT)
                assign_from_queue(gw, s->user_id);
        }
    }
    free(r);
}

static void send_list(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__ConvListResp *resp = r->u.conv_list.resp;
    if (s && r->rc != 0) sb__gw_send_error(gw, s, r->rid, r->rc, NULL);
    if (s && r->rc == 0 && resp) {
        for (size_t i = 0; i < resp->n_convs; i++) {
            Sbp__Conversation *pc = resp->convs[i];
            if (pc->last_message)
                sb__gw_render(gw, &pc->last_message, 1, s->locale);
            if (gw->cfg.desk)
                pc->queue_position =
                    sb_desk_position(gw->cfg.desk, pc->conv_id);
        }
        Sbp__Frame f = SBP__FRAME__INIT;
        f.rid = r->rid;
        f.body_case = SBP__FRAME__BODY_CONV_LIST_RESP;
        f.conv_list_resp = resp;
        sb__gw_send_frame(gw, s, &f);
    }
    if (resp) sbp__conv_list_resp__free_unpacked(resp, NULL);
    free_strs(r->u.conv_list.groups, r->u.conv_list.n_groups);
    free(r);
}

static void quiet_done(sb_req *r)
{
    sb__gw_req_back(r->ctx, r, false);
    free(r);
}

/* OK or ERROR for the request r answers. */
static void answer(sb_gw *gw, sess *s, const sb_req *r)
{
    if (!s) return;
    if (r->rc == 0)
        send_ok(gw, s, r->rid);
    else
        sb__gw_send_error(gw, s, r->rid, r->rc, NULL);
}

static void recall_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    for (size_t i = 0; i < r->n_msgs; i++) {
        if (r->rc == 0)
            sb__gw_deliver(gw, r->msgs[i], NULL);
        else
            sbp__message__free_unpacked(r->msgs[i], NULL);
    }
    answer(gw, s, r);
    free(r);
}

static void tag_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    free_strs(r->u.tag.add, r->u.tag.n_add);
    free_strs(r->u.tag.remove, r->u.tag.n_remove);
    answer(gw, s, r);
    free(r);
}

static void search_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__SearchResp *resp = r->u.search.resp;
    if (s && r->rc != 0) sb__gw_send_error(gw, s, r->rid, r->rc, NULL);
    if (s && r->rc == 0 && resp) {
        sb__gw_render(gw, resp->messages, resp->n_messages, s->locale);
        Sbp__Frame f = SBP__FRAME__INIT;
        f.rid = r->rid;
        f.body_case = SBP__FRAME__BODY_SEARCH_RESP;
        f.search_resp = resp;
        sb__gw_send_frame(gw, s, &f);
    }
    if (resp) sbp__search_resp__free_unpacked(resp, NULL);
    free(r->u.search.query);
    free(r);
}

/* ---- presence and start
 * ------------------------------------------------------- */

void sb__svc_presence(sb_gw *gw, const char *user_id, bool online)
{
    sb_desk *d = gw->cfg.desk;
    if (!d || !sb_desk_is_agent(d, user_id)) return;
    sb_desk_set_status(d, user_id,
                       online ? SBP__AGENT_STATUS__AGENT_ONLINE
                              : SBP__AGENT_STATUS__AGENT_OFFLINE,
                       gw->now_ms);
    if (online) assign_from_queue(gw, user_id);
}

int sb__svc_desk_swap(sb_gw *gw, sb_desk *nd, sb_desk **old_out)
{
    assert(nd && old_out);
    sb_desk *old = gw->cfg.desk;
    uint64_t *orphans = NULL;
    size_t n = 0;
    int rc = sb_desk_adopt(nd, old, &orphans, &n);
    if (rc) return rc;
    gw->cfg.desk = nd;
    *old_out = old;
    /* Agents that are connected are online, new ones too. */
    for (size_t i = 0; i < gw->sessions.cap; i++) {
        sess *s = gw->sessions.slots[i].val;
        if (s && s->state == SESS_READY && s->role == SBP__ROLE__ROLE_AGENT &&
            sb_desk_is_agent(nd, s->user_id) &&
            sb_desk_status(nd, s->user_id) == SBP__AGENT_STATUS__AGENT_OFFLINE)
            sb_desk_set_status(nd, s->user_id, SBP__AGENT_STATUS__AGENT_ONLINE,
                               gw->now_ms);
    }
    if (!old) {
        /* Customer service starts now: queues and loads come from the
         * store, as at a start. */
        gw->routing_ready = false;
        sb__svc_start(gw);
    }
    /* Nothing is lost: conversations queued for a group that is gone, and
     * those of an agent that is gone, are routed again. */
    for (size_t i = 0; i < n; i++) {
        conv *c = sb_map_get(&gw->convs, orphans[i]);
        if (c && c->state == SBP__CONV_STATE__STATE_QUEUED) requeue(gw, c);
    }
    free(orphans);
    for (size_t i = 0; i < gw->convs.cap; i++) {
        conv *c = gw->convs.slots[i].val;
        if (c && is_service(c) && c->state == SBP__CONV_STATE__STATE_ASSIGNED &&
            c->agent[0] && !sb_desk_is_agent(nd, c->agent))
            requeue(gw, c);
    }
    /* Room the change made (an agent added, a capacity raised) goes to
     * the queue at once; every queued customer hears its position. */
    assign_all_queued(gw);
    for (int g = 0; g < SB_DESK_GROUPS_MAX && sb_desk_group_name(nd, g)[0]; g++)
        notify_queue(gw, g);
    return 0;
}

void sb__svc_start(sb_gw *gw)
{
    if (!gw->cfg.desk) {
        gw->routing_ready = true;
        return;
    }
    /* Queued first, then assigned: the reader answers in order, and the
     * second answer marks routing ready. */
    Sbp__ConvState states[2] = {SBP__CONV_STATE__STATE_QUEUED,
                                SBP__CONV_STATE__STATE_ASSIGNED};
    for (int i = 0; i < 2; i++) {
        sb_req *r =
            sb__gw_req_new(gw, SB_REQ_SERVICE_CONVS, NULL, 0, start_done);
        if (!r) continue;
        r->u.service_convs.state = states[i];
        sb__gw_submit(gw, r);
    }
}
