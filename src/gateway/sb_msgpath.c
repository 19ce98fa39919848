/* The message path's frame kinds (sb_msgpath.h), on the delivery core. */
#include "sb_msgpath.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_gwcore.h"
#include "sb_medialink.h"
#include "sb_page.h"
#include "sb_sysmsg.h"
#include "sb_view.h"

/* ---- SEND ------------------------------------------------------------------
 */

/* Counts a message against each category of flt it matched (categories
 * bits), under the category's policy. */
static void filter_count(sb_gw *gw, const sb_filter *flt, uint64_t categories)
{
    sb_gw_stats *st = &gw->stats;
    for (size_t i = 0; i < sb_filter_categories(flt) && i < 64; i++) {
        if (!(categories >> i & 1)) continue;
        const char *name = sb_filter_category_name(flt, i);
        sb_filter_policy p = sb_filter_category_policy(flt, i);
        size_t k = 0;
        while (k < st->n_filter && (st->filter[k].policy != p ||
                                    strcmp(st->filter[k].category, name) != 0))
            k++;
        if (k == SB_GW_FILTER_COUNTS_MAX) {
            st->filter_other++;
            continue;
        }
        if (k == st->n_filter) {
            sb__gw_copy_str(st->filter[k].category,
                            sizeof st->filter[k].category, name);
            st->filter[k].policy = p;
            st->n_filter++;
        }
        st->filter[k].messages++;
    }
}

/* Runs the filter in force over a SEND's body of len bytes. Returns 0 with
 * *v filled (v->masked set for a mask verdict), SB_E_BLOCKED, or -ENOMEM. */
static int filter_body(sb_gw *gw, const char *body, size_t len,
                       sb_filter_verdict *v)
{
    memset(v, 0, sizeof *v);
    const sb_filter *flt =
        gw->cfg.filter_get ? gw->cfg.filter_get(gw->cfg.filter_ud) : NULL;
    if (!flt) return 0;
    int rc = sb_filter_scan(flt, body, len, v);
    if (v->categories) filter_count(gw, flt, v->categories);
    if (rc == 0 && v->policy == SB_FILTER_BLOCK) rc = SB_E_BLOCKED;
    if (rc) sb_filter_verdict_clear(v);
    return rc;
}

/* Quick replies of a SEND: at most SB_QUICK_MAX, each with a title of
 * 1..SB_QUICK_BYTES_MAX bytes (the payload, when given, as long). */
static int quick_replies_check(const Sbp__Send *snd)
{
    if (snd->n_quick_replies > SB_QUICK_MAX) return SB_E_TOO_LARGE;
    for (size_t i = 0; i < snd->n_quick_replies; i++) {
        const Sbp__QuickReply *q = snd->quick_replies[i];
        size_t t = strlen(q->title), p = strlen(q->payload);
        if (t == 0) return SB_E_INVALID;
        if (t > SB_QUICK_BYTES_MAX || p > SB_QUICK_BYTES_MAX)
            return SB_E_TOO_LARGE;
    }
    return 0;
}

/* A SEND's fields, checked before its conversation is loaded. */
static int send_check(sb_gw *gw, const sess *s, const Sbp__Frame *f)
{
    const Sbp__Send *snd = f->send;
    if (gw->draining) return SB_E_UNAVAILABLE;
    if (snd->client_msg_id.len != SB_CLIENT_MSG_ID_BYTES) return SB_E_INVALID;
    if (strlen(snd->body) > gw->cfg.body_bytes_max) return SB_E_TOO_LARGE;
    if (snd->type == SBP__MSG_TYPE__MSG_SYSTEM ||
        snd->type == SBP__MSG_TYPE__MSG_EVENT || (int)snd->type < 0 ||
        (int)snd->type > SBP__MSG_TYPE__MSG_ROBOT ||
        (snd->type == SBP__MSG_TYPE__MSG_ROBOT &&
         s->role != SBP__ROLE__ROLE_BOT))
        return SB_E_INVALID;
    if (snd->conv_id == 0) return SB_E_INVALID;
    /* Cards carry a title; images and files the id of an upload, whose
     * record the store checks (the sender's, for this conversation) and
     * fills the message's media from. */
    if (snd->type == SBP__MSG_TYPE__MSG_CARD &&
        (!snd->card || !snd->card->title[0]))
        return SB_E_INVALID;
    bool media_type = snd->type == SBP__MSG_TYPE__MSG_IMAGE ||
                      snd->type == SBP__MSG_TYPE__MSG_FILE;
    if (media_type && (!snd->media || !sb_media_id_valid(snd->media->id)))
        return SB_E_INVALID;
    if (!media_type && snd->media) return SB_E_INVALID;
    /* Quick replies go under a bot's robot message only. */
    if (snd->n_quick_replies && snd->type != SBP__MSG_TYPE__MSG_ROBOT)
        return SB_E_INVALID;
    return quick_replies_check(snd);
}

static void on_send(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)ud;
    Sbp__Send *snd = f->send;
    if (s->pending_sends >= gw->cfg.pending_sends_max) {
        sb__gw_frame_error(gw, s, f, SB_E_TOO_MANY_PENDING);
        return;
    }
    /* A closed service conversation is read-only for its last agent (who
     * stays a member): only its customer writes, and that reopens it. */
    if (c->kind == SBP__CONV_KIND__CONV_SERVICE &&
        c->state == SBP__CONV_STATE__STATE_CLOSED &&
        strcmp(s->user_id, c->customer) != 0) {
        sb__gw_frame_error(gw, s, f, SB_E_STATE);
        return;
    }
    sb_filter_verdict v;
    int rc = filter_body(gw, snd->body, strlen(snd->body), &v);
    if (rc) {
        if (rc == SB_E_BLOCKED) gw->stats.blocked++;
        sb__gw_frame_error(gw, s, f, rc);
        return;
    }
    Sbp__Message *m = malloc(sizeof *m);
    if (!m) {
        sb_filter_verdict_clear(&v);
        sb__gw_frame_error(gw, s, f, -ENOMEM);
        return;
    }
    sbp__message__init(m);
    m->conv_id = snd->conv_id;
    m->type = snd->type ? snd->type : SBP__MSG_TYPE__MSG_TEXT;
    m->quote_seq = snd->quote_seq;
    m->sender = strdup(s->user_id);
    m->sender_device = strdup(sb__gw_sess_device(s));
    m->lang = strdup(s->locale);
    /* Steal the body (or the filter's masked one) and id from the frame
     * rather than copy them. */
    bool masked = v.masked != NULL;
    if (masked) {
        m->body = v.masked;
        v.masked = NULL;
        gw->stats.masked++;
    } else {
        m->body = snd->body;
        snd->body = (char *)protobuf_c_empty_string;
    }
    m->review = (v.policies & 1u << SB_FILTER_REVIEW) != 0;
    gw->stats.flagged += m->review;
    m->client_msg_id = snd->client_msg_id;
    snd->client_msg_id.data = NULL;
    snd->client_msg_id.len = 0;
    /* A card travels as sent; a media reference as the store fills it. */
    m->card = snd->card;
    m->media = snd->media;
    snd->card = NULL;
    snd->media = NULL;
    m->quick_replies = snd->quick_replies;
    m->n_quick_replies = snd->n_quick_replies;
    snd->quick_replies = NULL;
    snd->n_quick_replies = 0;
    if (!m->sender || !m->sender_device || !m->lang ||
        sb__gw_append_send(gw, s, f->rid, m, masked) != 0) {
        /* The id goes back to the frame, which the ERROR names. */
        snd->client_msg_id = m->client_msg_id;
        m->client_msg_id.data = NULL;
        m->client_msg_id.len = 0;
        sbp__message__free_unpacked(m, NULL);
        sb__gw_frame_error(gw, s, f, -ENOMEM);
        return;
    }
    gw->stats.sends++;
}

/* ---- ACK and READ ----------------------------------------------------------
 */

static void on_ack(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)ud;
    /* A device pushed a message while its user was a member may
     * acknowledge it after the user left (a reopened conversation drops
     * its last agent); anyone else is refused as the row's SB_GW_ACCESS
     * would. */
    if (!sb__gw_may_access(s, c) && !sb__gw_pushed(s, c->id)) {
        sb__gw_error_text(gw, s, f->rid, SB_E_FORBIDDEN, SB_GW_NOT_MEMBER);
        return;
    }
    sb__gw_acked(gw, s, c, f->ack->seq);
}

static void on_read(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)ud;
    const Sbp__Read *rd = f->read;
    if (!sb__view_may_read(gw, s, c)) {
        sb__gw_error(gw, s, f->rid, SB_E_FORBIDDEN);
        return;
    }
    /* Nobody has read past the last message: a READ beyond it reads up
     * to it. */
    uint64_t seq = rd->seq < c->last_seq ? rd->seq : c->last_seq;
    /* An admin may read any conversation, and an agent a queued one of
     * its group, but neither has receipts in one it is not a member of. */
    member *m = sb__gw_conv_member(c, s->user_id);
    if (!m || seq <= m->read_seq) return;
    m->read_seq = seq;
    sb__gw_receipt_dirty(gw, c, m);
    sb_req *r =
        sb__gw_req_new(gw, SB_REQ_READ_SET, s, f->rid, sb__gw_quiet_done);
    if (!r) return; /* READ has no answer: the receipt goes out unstored */
    sb__gw_copy_str(r->u.read.user_id, sizeof r->u.read.user_id, s->user_id);
    r->u.read.conv_id = rd->conv_id;
    r->u.read.seq = seq;
    sb__gw_submit(gw, r);
}

/* ---- SYNC and HISTORY ------------------------------------------------------
 */

static void sync_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__SyncResp *resp = r->u.sync.resp;
    for (size_t i = 0; i < r->u.sync.n_cursors; i++)
        sbp__cursor__free_unpacked(r->u.sync.cursors[i], NULL);
    free(r->u.sync.cursors);
    if (r->rc != 0) {
        sb__gw_error(gw, s, r->rid, r->rc);
    } else if (s) {
        sb__view_msgs(s, resp->messages, resp->n_messages);
        for (size_t i = 0; i < resp->n_convs; i++)
            sb__view_conv(gw, s, resp->convs[i]);
        sb__page_cut_sync(gw, s, resp);
        sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_SYNC_RESP, resp);
    }
    if (resp) sbp__sync_resp__free_unpacked(resp, NULL);
    free(r);
}

static void on_sync(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    Sbp__Sync *sy = f->sync;
    if (sy->n_cursors > SB_SYNC_CURSORS_MAX) {
        sb__gw_error(gw, s, f->rid, SB_E_TOO_LARGE);
        return;
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_SYNC, s, f->rid, sync_done);
    if (!r) {
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    sb__gw_copy_str(r->u.sync.user_id, sizeof r->u.sync.user_id, s->user_id);
    r->u.sync.all = s->role == SBP__ROLE__ROLE_ADMIN;
    /* The request takes the frame's cursor array. */
    r->u.sync.cursors = sy->cursors;
    r->u.sync.n_cursors = sy->n_cursors;
    sy->cursors = NULL;
    sy->n_cursors = 0;
    uint32_t limit = sy->limit ? sy->limit : gw->cfg.sync_page_max;
    r->u.sync.limit =
        limit < gw->cfg.sync_page_max ? limit : gw->cfg.sync_page_max;
    /* The store's bound on body bytes saves reading what the page would
     * not carry; sync_done cuts the page to its frame. */
    size_t page = sb__page_bytes_max(gw);
    r->u.sync.bytes_max =
        gw->cfg.sync_bytes_max < page ? gw->cfg.sync_bytes_max : page;
    sb__gw_submit(gw, r);
}

static void history_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__HistoryResp *resp = r->u.history.resp;
    if (r->rc != 0) {
        sb__gw_error(gw, s, r->rid, r->rc);
    } else if (s) {
        sb__view_msgs(s, resp->messages, resp->n_messages);
        sb__page_cut_history(gw, s, resp);
        sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_HISTORY_RESP, resp);
    }
    if (resp) sbp__history_resp__free_unpacked(resp, NULL);
    free(r);
}

static void on_history(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)ud;
    const Sbp__History *h = f->history;
    if (!sb__view_may_read(gw, s, c)) {
        sb__gw_error(gw, s, f->rid, SB_E_FORBIDDEN);
        return;
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_HISTORY, s, f->rid, history_done);
    if (!r) {
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    uint32_t limit = h->limit ? h->limit : 50;
    r->u.history.conv_id = h->conv_id;
    r->u.history.before_seq = h->before_seq;
    r->u.history.limit =
        limit < gw->cfg.history_page_max ? limit : gw->cfg.history_page_max;
    sb__gw_submit(gw, r);
}

/* ---- OPEN ------------------------------------------------------------------
 */

static void free_create(sb_req *r)
{
    for (size_t i = 0; i < r->u.create.n; i++)
        free(r->u.create.user_ids[i]);
    free(r->u.create.user_ids);
    free(r->u.create.roles);
    free(r->u.create.title);
    if (r->u.create.conv)
        sbp__conversation__free_unpacked(r->u.create.conv, NULL);
}

static void open_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    if (r->rc == SB_E_NOT_FOUND) {
        sb__gw_error_text(gw, s, r->rid, r->rc,
                          "a member is not a user the server knows");
    } else if (r->rc == SB_E_FORBIDDEN) {
        sb__gw_error_text(gw, s, r->rid, r->rc,
                          "a customer talks to the service side only");
    } else if (r->rc != 0) {
        sb__gw_error(gw, s, r->rid, r->rc);
    } else if (s) {
        sb__gw_conv_cache(gw, r->u.create.conv);
        sb__view_conv(gw, s, r->u.create.conv);
        Sbp__OpenResp o = SBP__OPEN_RESP__INIT;
        o.conv = r->u.create.conv;
        sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_OPEN_RESP, &o);
    }
    free_create(r);
    free(r);
}

/* The request's members: the opener first, then each other member once,
 * with ROLE_UNSPECIFIED for the store to look up. Returns 0 or -ENOMEM
 * (what was made is free_create's). */
static int open_members(sb_req *r, const sess *s, const Sbp__Open *o)
{
    char **ids = calloc(o->n_members + 1, sizeof *ids);
    Sbp__Role *roles = calloc(o->n_members + 1, sizeof *roles);
    r->u.create.user_ids = ids;
    r->u.create.roles = roles;
    if (!ids || !roles || !(ids[0] = strdup(s->user_id))) return -ENOMEM;
    roles[0] = s->role;
    size_t n = r->u.create.n = 1;
    for (size_t i = 0; i < o->n_members; i++) {
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup |= strcmp(ids[k], o->members[i]) == 0;
        if (dup) continue;
        if (!(ids[n] = strdup(o->members[i]))) return -ENOMEM;
        roles[n] = SBP__ROLE__ROLE_UNSPECIFIED;
        n = ++r->u.create.n;
    }
    return 0;
}

static void on_open(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    const Sbp__Open *o = f->open;
    if (s->role == SBP__ROLE__ROLE_CUSTOMER && gw->hooks.open &&
        gw->hooks.open(gw->hooks.ud, s, f))
        return;
    if (o->n_members + 1 > SB_MEMBERS_MAX ||
        strlen(o->title) > SB_TITLE_BYTES_MAX) {
        sb__gw_error(gw, s, f->rid, SB_E_TOO_LARGE);
        return;
    }
    for (size_t i = 0; i < o->n_members; i++) {
        if (!sb__gw_valid_id(o->members[i])) {
            sb__gw_error(gw, s, f->rid, SB_E_INVALID);
            return;
        }
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_CONV_CREATE, s, f->rid, open_done);
    if (!r || !(r->u.create.title = strdup(o->title)) ||
        open_members(r, s, o) != 0) {
        if (r) free_create(r);
        free(r);
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    /* Customers may only talk to the service side; the store refuses a
     * conversation between a customer and another customer. */
    r->u.create.kind = o->kind ? o->kind
                               : (s->role == SBP__ROLE__ROLE_CUSTOMER
                                      ? SBP__CONV_KIND__CONV_SERVICE
                                      : SBP__CONV_KIND__CONV_DIRECT);
    sb__gw_submit(gw, r);
}

static const sb_gw_row ROWS[] = {
    {.body = SBP__FRAME__BODY_SEND,
     .flags = SB_GW_READY | SB_GW_RATED | SB_GW_CONV | SB_GW_ACCESS,
     .check = send_check,
     .handle = on_send},
    /* Access is on_ack's to check: a device may acknowledge what it was
     * pushed after its user left the conversation. */
    {.body = SBP__FRAME__BODY_ACK,
     .flags = SB_GW_READY | SB_GW_CONV,
     .handle = on_ack},
    {.body = SBP__FRAME__BODY_READ,
     .flags = SB_GW_READY | SB_GW_CONV,
     .handle = on_read},
    {.body = SBP__FRAME__BODY_SYNC, .flags = SB_GW_READY, .handle = on_sync},
    /* Who may read is the handler's: the agents of a queued
     * conversation's group too (sb__view_may_read). */
    {.body = SBP__FRAME__BODY_HISTORY,
     .flags = SB_GW_READY | SB_GW_CONV,
     .handle = on_history},
    {.body = SBP__FRAME__BODY_OPEN, .flags = SB_GW_READY, .handle = on_open},
};

void sb__msgpath_register(sb_gw *gw)
{
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, NULL);
}
