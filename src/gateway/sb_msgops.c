/* The message operations (sb_msgops.h) on the delivery core. Each answers
 * its request: a response, OK, or an ERROR (ERR_STORE's code when out of
 * memory). */
#include "sb_msgops.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_desk.h"
#include "sb_error.h"
#include "sb_gwcore.h"
#include "sb_page.h"
#include "sb_sysmsg.h"
#include "sb_view.h"

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- recall ----------------------------------------------------------------
 */

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
    sb__gw_reply_rc(gw, s, r->rid, r->rc);
    free(r);
}

/* Stores the recall of m by s, with its event. Returns 0 or -ENOMEM. */
static int recall_store(sb_gw *gw, sess *s, uint32_t rid, const Sbp__Message *m)
{
    char seq[24];
    snprintf(seq, sizeof seq, "%" PRIu64, m->seq);
    sb_req *w = sb__gw_req_new(gw, SB_REQ_MSG_RECALL, s, rid, recall_done);
    Sbp__Message *ev =
        sb_sysmsg_event(m->conv_id, "msg.recalled", s->user_id, seq);
    if (!w || !ev) {
        free(w);
        if (ev) sbp__message__free_unpacked(ev, NULL);
        return -ENOMEM;
    }
    w->u.recall.conv_id = m->conv_id;
    w->u.recall.seq = m->seq;
    w->msgs[w->n_msgs++] = ev;
    sb__gw_submit(gw, w);
    return 0;
}

/* Whether s may recall m now: its sender, not an event, within the desk's
 * window (a message recalled already may be again: OK). 0 or the code. */
static int recall_allowed(sb_gw *gw, const sess *s, const Sbp__Message *m)
{
    conv *c = sb_map_get(&gw->convs, m->conv_id);
    const sb_desk_def *def =
        gw->cfg.desk && c ? sb_desk_get(gw->cfg.desk, c->desk) : NULL;
    int64_t window_ms = (int64_t)(def ? def->recall_window_s : 120) * 1000;
    if (strcmp(m->sender, s->user_id) != 0) return SB_E_FORBIDDEN;
    if (m->type == SBP__MSG_TYPE__MSG_EVENT) return SB_E_INVALID;
    if (!m->recalled && gw->now_ms - m->server_ts > window_ms)
        return SB_E_TOO_LATE;
    return 0;
}

/* The message to recall is known: check who and when, then store; the
 * answer comes when the recall is stored (recall_done). */
static void recall_checked(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__Message *m = r->u.msg_get.msg;
    int rc = r->rc;
    if (!s) goto out;
    if (rc == 0) rc = recall_allowed(gw, s, m);
    if (rc == 0 && !m->recalled && (rc = recall_store(gw, s, r->rid, m)) == 0)
        goto out;
    if (rc == SB_E_FORBIDDEN)
        sb__gw_error_text(gw, s, r->rid, rc, "only its sender may recall it");
    else
        sb__gw_reply_rc(gw, s, r->rid, rc);
out:
    if (m) sbp__message__free_unpacked(m, NULL);
    free(r);
}

static void on_recall(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)ud;
    sb_req *r = sb__gw_req_new(gw, SB_REQ_MSG_GET, s, f->rid, recall_checked);
    if (!r) {
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    r->u.msg_get.conv_id = c->id;
    r->u.msg_get.seq = f->recall->seq;
    sb__gw_submit(gw, r);
}

/* ---- tags and typing -------------------------------------------------------
 */

/* The tags are stored with their event (every device of every member
 * learns them, by PUSH or at its next SYNC): answered once both are. */
static void tag_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    free_strs(r->u.tag.add, r->u.tag.n_add);
    free_strs(r->u.tag.remove, r->u.tag.n_remove);
    for (size_t i = 0; i < r->n_msgs; i++) {
        if (r->rc == 0)
            sb__gw_deliver(gw, r->msgs[i], NULL);
        else
            sbp__message__free_unpacked(r->msgs[i], NULL);
    }
    sb__gw_reply_rc(gw, s, r->rid, r->rc);
    free(r);
}

/* The event of a tag change on conv_id (seq 0: the conversation) by
 * user: args [user, seq], then the target's tags after the change (the
 * store adds them). NULL when out of memory. */
static Sbp__Message *tag_event(uint64_t conv_id, uint64_t seq, const char *user)
{
    char n[24];
    snprintf(n, sizeof n, "%" PRIu64, seq);
    return sb_sysmsg_event(conv_id, seq ? "msg.tagged" : "conv.tagged", user,
                           n);
}

static void on_tag(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    Sbp__Tag *t = f->tag;
    sb_req *r = sb__gw_req_new(gw, SB_REQ_TAG, s, f->rid, tag_done);
    Sbp__Message *ev = t->n_add + t->n_remove
                           ? tag_event(t->conv_id, t->seq, s->user_id)
                           : NULL;
    if (!r || (t->n_add + t->n_remove && !ev)) {
        free(r);
        if (ev) sbp__message__free_unpacked(ev, NULL);
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    if (ev) r->msgs[r->n_msgs++] = ev;
    r->u.tag.conv_id = t->conv_id;
    r->u.tag.seq = t->seq;
    /* The request takes the frame's arrays. */
    r->u.tag.add = t->add;
    r->u.tag.n_add = t->n_add;
    r->u.tag.remove = t->remove;
    r->u.tag.n_remove = t->n_remove;
    t->add = t->remove = NULL;
    t->n_add = t->n_remove = 0;
    sb__gw_submit(gw, r);
}

static void on_typing(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)ud;
    Sbp__Typing t = SBP__TYPING__INIT;
    t.conv_id = c->id;
    t.user_id = s->user_id;
    t.on = f->typing->on;
    sb__gw_send_members(gw, c, SBP__FRAME__BODY_TYPING, &t, s);
}

/* ---- the conversation list and search --------------------------------------
 */

static void conv_list_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__ConvListResp *resp = r->u.conv_list.resp;
    if (r->rc != 0) {
        sb__gw_error(gw, s, r->rid, r->rc);
    } else if (s && resp) {
        for (size_t i = 0; i < resp->n_convs; i++)
            sb__view_conv(gw, s, resp->convs[i]);
        if (sb__page_cut_conv_list(gw, s, resp) != 0)
            sb__gw_error(gw, s, r->rid, -ENOMEM);
        else
            sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_CONV_LIST_RESP, resp);
    }
    if (resp) sbp__conv_list_resp__free_unpacked(resp, NULL);
    free_strs(r->u.conv_list.groups, r->u.conv_list.n_groups);
    free(r);
}

/* Agents see the queues of their groups (not their messages): the names
 * of s's groups go with the request. Returns 0 or -ENOMEM. */
static int conv_list_groups(sb_gw *gw, const sess *s, sb_req *r)
{
    const char *names[SB_DESK_GROUPS_MAX];
    size_t n = sb_desk_agent_groups(gw->cfg.desk, s->user_id, names,
                                    SB_DESK_GROUPS_MAX);
    if (n == 0) return 0;
    if (!(r->u.conv_list.groups = calloc(n, sizeof(char *)))) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(r->u.conv_list.groups[i] = strdup(names[i]))) return -ENOMEM;
        r->u.conv_list.n_groups++;
    }
    return 0;
}

static void on_conv_list(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    const Sbp__ConvList *l = f->conv_list;
    if (strlen(l->cursor) > SB_LIST_CURSOR_BYTES_MAX ||
        strlen(l->tag) > SB_TAG_BYTES_MAX) {
        sb__gw_error(gw, s, f->rid, SB_E_INVALID);
        return;
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_CONV_LIST, s, f->rid, conv_list_done);
    if (!r) {
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    sb__gw_copy_str(r->u.conv_list.user_id, sizeof r->u.conv_list.user_id,
                    s->user_id);
    r->u.conv_list.all = s->role == SBP__ROLE__ROLE_ADMIN && !l->mine;
    r->u.conv_list.state = l->state;
    sb__gw_copy_str(r->u.conv_list.tag, sizeof r->u.conv_list.tag, l->tag);
    sb__gw_copy_str(r->u.conv_list.cursor, sizeof r->u.conv_list.cursor,
                    l->cursor);
    r->u.conv_list.limit = l->limit ? l->limit : 50;
    if (r->u.conv_list.limit > 200) r->u.conv_list.limit = 200;
    if (gw->cfg.desk && !l->mine &&
        (l->state == 0 || l->state == SBP__CONV_STATE__STATE_QUEUED) &&
        conv_list_groups(gw, s, r) != 0) {
        free_strs(r->u.conv_list.groups, r->u.conv_list.n_groups);
        free(r);
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    sb__gw_submit(gw, r);
}

static void search_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__SearchResp *resp = r->u.search.resp;
    if (r->rc != 0) {
        sb__gw_error(gw, s, r->rid, r->rc);
    } else if (s && resp) {
        resp->n_messages =
            sb__view_drop_hidden(s, resp->messages, resp->n_messages);
        sb__view_msgs(s, resp->messages, resp->n_messages);
        sb__page_cut_search(gw, s, resp);
        sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_SEARCH_RESP, resp);
    }
    if (resp) sbp__search_resp__free_unpacked(resp, NULL);
    free(r->u.search.query);
    free(r);
}

static void on_search(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    const Sbp__Search *q = f->search;
    size_t n = strlen(q->query);
    if (n == 0 || n > SB_QUERY_BYTES_MAX) {
        sb__gw_error(gw, s, f->rid, n ? SB_E_TOO_LARGE : SB_E_INVALID);
        return;
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_SEARCH, s, f->rid, search_done);
    if (!r || !(r->u.search.query = strdup(q->query))) {
        free(r);
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    sb__gw_copy_str(r->u.search.user_id, sizeof r->u.search.user_id,
                    s->user_id);
    r->u.search.all = s->role == SBP__ROLE__ROLE_ADMIN;
    r->u.search.conv_id = q->conv_id;
    r->u.search.limit = q->limit ? q->limit : 50;
    sb__gw_submit(gw, r);
}

/* ---- canned replies --------------------------------------------------------
 */

static void on_canned(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    const char *name = f->canned_list->desk;
    const sb_desk_def *def =
        gw->cfg.desk ? sb_desk_get(gw->cfg.desk, name) : NULL;
    if (def && name[0] && strcmp(def->id, name) != 0) def = NULL;
    bool staff =
        s->role == SBP__ROLE__ROLE_AGENT || s->role == SBP__ROLE__ROLE_ADMIN;
    if (!staff) {
        sb__gw_error_text(gw, s, f->rid, SB_E_FORBIDDEN,
                          "canned replies are for agents and admins");
        return;
    }
    if (!def) {
        sb__gw_error_text(gw, s, f->rid, SB_E_NOT_FOUND, "no such desk");
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
        sb__gw_send(gw, s, f->rid, SBP__FRAME__BODY_CANNED_LIST_RESP, &resp);
    } else {
        sb__gw_error(gw, s, f->rid, -ENOMEM);
    }
    free(items);
    free(ptrs);
}

static const sb_gw_row ROWS[] = {
    {.body = SBP__FRAME__BODY_RECALL,
     .flags = SB_GW_READY | SB_GW_CONV | SB_GW_MEMBER,
     .handle = on_recall},
    {.body = SBP__FRAME__BODY_TAG,
     .flags = SB_GW_READY | SB_GW_CONV | SB_GW_ACCESS,
     .roles =
         SB_GW_ROLE(SBP__ROLE__ROLE_AGENT) | SB_GW_ROLE(SBP__ROLE__ROLE_ADMIN),
     .handle = on_tag},
    {.body = SBP__FRAME__BODY_TYPING,
     .flags = SB_GW_READY | SB_GW_CONV | SB_GW_MEMBER,
     .handle = on_typing},
    {.body = SBP__FRAME__BODY_CONV_LIST,
     .flags = SB_GW_READY,
     .handle = on_conv_list},
    {.body = SBP__FRAME__BODY_SEARCH,
     .flags = SB_GW_READY,
     .handle = on_search},
    {.body = SBP__FRAME__BODY_CANNED_LIST,
     .flags = SB_GW_READY,
     .handle = on_canned},
};

void sb__msgops_register(sb_gw *gw)
{
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, NULL);
}
