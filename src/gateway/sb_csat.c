/* Customer satisfaction (sb_csat.h) on the delivery core. */
#include "sb_csat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_desk.h"
#include "sb_error.h"
#include "sb_gwcore.h"
#include "sb_sysmsg.h"

/* The asking is stored with its event; nobody waits for it. */
static void ask_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sb__gw_req_back(gw, r, false);
    for (size_t i = 0; i < r->n_msgs; i++) {
        if (r->rc == 0 && r->u.csat.asked && r->msgs[i]->seq)
            sb__gw_deliver(gw, r->msgs[i], NULL);
        else
            sbp__message__free_unpacked(r->msgs[i], NULL);
    }
    free(r);
}

void sb__csat_ask(sb_gw *gw, conv *c)
{
    const sb_desk_def *def =
        gw->cfg.desk ? sb_desk_get(gw->cfg.desk, c->desk) : NULL;
    if (!def || !def->csat || c->csat_rating || !c->customer[0]) return;
    sb_req *r = sb__gw_req_new(gw, SB_REQ_CSAT_ASK, NULL, 0, ask_done);
    Sbp__Message *ev = sb_sysmsg_event(c->id, "csat.request", NULL, NULL);
    if (!r || !ev) {
        free(r);
        if (ev) sbp__message__free_unpacked(ev, NULL);
        return;
    }
    r->u.csat.conv_id = c->id;
    r->msgs[r->n_msgs++] = ev;
    sb__gw_submit(gw, r);
}

/* Replaces a string field of a stored conversation with a copy of v (it
 * keeps its text when out of memory). */
static void free_str(char **field, const char *v)
{
    char *d = strdup(v);
    if (!d) return;
    if (*field != protobuf_c_empty_string) free(*field);
    *field = d;
}

/* A rating is stored: c's members see it (its event, and the conversation
 * with its rating and comment); the one place a stored rating is
 * reported here. Its webhook event (csat.submitted) was written with it
 * (the shell attaches it to the CSAT_SET: sb_webhook_attach). */
static void csat_stored(sb_gw *gw, conv *c, Sbp__Conversation *pc)
{
    c->csat_rating = pc->csat_rating;
    /* Routing in memory is ahead of the store: the update tells it. */
    pc->state = c->state;
    free_str(&pc->group, c->group);
    free_str(&pc->agent, c->agent);
    pc->queue_position =
        gw->cfg.desk ? sb_desk_position(gw->cfg.desk, c->id) : 0;
    Sbp__ConvUpdate u = SBP__CONV_UPDATE__INIT;
    u.conv = pc;
    sb__gw_send_members(gw, c, SBP__FRAME__BODY_CONV_UPDATE, &u, NULL);
    /* The agent who had it, a member no more once it was closed, hears of
     * its rating too. */
    if (pc->last_agent[0] && !sb__gw_conv_member(c, pc->last_agent))
        sb__gw_send_user(gw, pc->last_agent, SBP__FRAME__BODY_CONV_UPDATE, &u);
}

static void set_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    conv *c = sb_map_get(&gw->convs, r->u.csat.conv_id);
    for (size_t i = 0; i < r->n_msgs; i++) {
        if (r->rc == 0 && c)
            sb__gw_deliver(gw, r->msgs[i], NULL);
        else
            sbp__message__free_unpacked(r->msgs[i], NULL);
    }
    if (r->rc == 0 && c && r->u.csat.conv) csat_stored(gw, c, r->u.csat.conv);
    if (r->rc == SB_E_ALREADY)
        sb__gw_error_text(gw, s, r->rid, r->rc,
                          "the conversation is rated already");
    else if (r->rc == SB_E_STATE)
        sb__gw_error_text(gw, s, r->rid, r->rc,
                          "no rating was asked for: the conversation has "
                          "not been closed");
    else
        sb__gw_reply_rc(gw, s, r->rid, r->rc);
    if (r->u.csat.conv) sbp__conversation__free_unpacked(r->u.csat.conv, NULL);
    free(r->u.csat.comment);
    free(r);
}

static int csat_check(sb_gw *gw, const sess *s, const Sbp__Frame *f)
{
    (void)gw;
    (void)s;
    const Sbp__Csat *x = f->csat;
    if (x->conv_id == 0 || x->rating < 1 || x->rating > SB_CSAT_RATING_MAX)
        return SB_E_INVALID;
    if (strlen(x->comment) > SB_CSAT_COMMENT_BYTES_MAX) return SB_E_TOO_LARGE;
    return 0;
}

static void on_csat(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)ud;
    const Sbp__Csat *x = f->csat;
    if (c->kind != SBP__CONV_KIND__CONV_SERVICE) {
        sb__gw_error_text(gw, s, f->rid, SB_E_STATE,
                          "only service conversations are rated");
        return;
    }
    if (strcmp(c->customer, s->user_id) != 0) {
        sb__gw_error_text(gw, s, f->rid, SB_E_FORBIDDEN,
                          "only the conversation's customer rates it");
        return;
    }
    if (c->csat_rating) {
        sb__gw_error_text(gw, s, f->rid, SB_E_ALREADY,
                          "the conversation is rated already");
        return;
    }
    char rating[4];
    snprintf(rating, sizeof rating, "%u", x->rating);
    sb_req *r = sb__gw_req_new(gw, SB_REQ_CSAT_SET, s, f->rid, set_done);
    Sbp__Message *ev = sb_sysmsg_event(c->id, "csat.submitted", rating, NULL);
    char *comment = strdup(x->comment);
    if (!r || !ev || !comment) {
        free(r);
        free(comment);
        if (ev) sbp__message__free_unpacked(ev, NULL);
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    r->u.csat.conv_id = c->id;
    r->u.csat.rating = x->rating;
    r->u.csat.comment = comment;
    sb__gw_copy_str(r->u.csat.customer, sizeof r->u.csat.customer, c->customer);
    r->msgs[r->n_msgs++] = ev;
    sb__gw_submit(gw, r);
}

static const sb_gw_row ROWS[] = {
    {.body = SBP__FRAME__BODY_CSAT,
     .flags = SB_GW_READY | SB_GW_RATED | SB_GW_CONV | SB_GW_MEMBER,
     .roles = SB_GW_ROLE(SBP__ROLE__ROLE_CUSTOMER),
     .why = "only the conversation's customer rates it",
     .check = csat_check,
     .handle = on_csat},
};

void sb__csat_register(sb_gw *gw)
{
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, NULL);
}
