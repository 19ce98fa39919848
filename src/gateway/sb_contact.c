/* Contacts (sb_contact.h) on the delivery core. */
#include "sb_contact.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_gwcore.h"
#include "sb_view.h"

static void str_clear(char **p)
{
    if (*p && *p != protobuf_c_empty_string) free(*p);
    *p = (char *)protobuf_c_empty_string;
}

void sb__contact_conv_strip(Sbp__Conversation *pc)
{
    for (size_t i = 0; i < pc->n_members; i++)
        sbp__member__free_unpacked(pc->members[i], NULL);
    free(pc->members);
    pc->members = NULL;
    pc->n_members = 0;
    if (pc->last_message) sbp__message__free_unpacked(pc->last_message, NULL);
    pc->last_message = NULL;
    str_clear(&pc->csat_comment);
    str_clear(&pc->title);
}

static void contact_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    if (r->rc != 0) {
        sb__gw_error(gw, s, r->rid, r->rc);
    } else if (s) {
        /* What this reader is shown of each (sb_view: a transfer's note
         * only for its agent), less what a summary leaves out. */
        for (size_t i = 0; i < r->u.contact.n_convs; i++) {
            sb__view_conv(gw, s, r->u.contact.convs[i]);
            sb__contact_conv_strip(r->u.contact.convs[i]);
        }
        Sbp__ContactResp resp = SBP__CONTACT_RESP__INIT;
        resp.contact = r->u.contact.contact;
        resp.conversations = r->u.contact.convs;
        resp.n_conversations = r->u.contact.n_convs;
        sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_CONTACT_RESP, &resp);
    }
    if (r->u.contact.contact)
        sbp__contact__free_unpacked(r->u.contact.contact, NULL);
    for (size_t i = 0; i < r->u.contact.n_convs; i++)
        sbp__conversation__free_unpacked(r->u.contact.convs[i], NULL);
    free(r->u.contact.convs);
    /* A CONTACT_SET's change points into its body, kept until now. */
    if (r->data) sbp__contact_set__free_unpacked(r->data, NULL);
    free(r);
}

/* Whose contact: a conversation's customer, or (admins) a user named. */
static int whose_check(const sess *s, uint64_t conv_id, const char *user_id)
{
    if (conv_id) return user_id[0] ? SB_E_INVALID : 0;
    if (s->role != SBP__ROLE__ROLE_ADMIN) return SB_E_FORBIDDEN;
    return sb__gw_valid_id(user_id) ? 0 : SB_E_INVALID;
}

static sb_req *contact_req(sb_gw *gw, sess *s, uint32_t rid, sb_req_kind kind,
                           uint64_t conv_id, const char *user_id)
{
    sb_req *r = sb__gw_req_new(gw, kind, s, rid, contact_done);
    if (!r) return NULL;
    r->u.contact.conv_id = conv_id;
    sb__gw_copy_str(r->u.contact.user_id, sizeof r->u.contact.user_id, user_id);
    sb__gw_copy_str(r->u.contact.asker, sizeof r->u.contact.asker, s->user_id);
    r->u.contact.all = s->role == SBP__ROLE__ROLE_ADMIN;
    return r;
}

static int get_check(sb_gw *gw, const sess *s, const Sbp__Frame *f)
{
    (void)gw;
    return whose_check(s, f->contact_get->conv_id, f->contact_get->user_id);
}

static void on_get(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    const Sbp__ContactGet *g = f->contact_get;
    sb_req *r =
        contact_req(gw, s, f->rid, SB_REQ_CONTACT_GET, g->conv_id, g->user_id);
    if (!r) {
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    sb__gw_submit(gw, r);
}

/* The change's fields, checked as the store will (so that a refusal
 * comes before the queue): sizes here, the rest there. */
static int set_check(sb_gw *gw, const sess *s, const Sbp__Frame *f)
{
    (void)gw;
    const Sbp__ContactSet *x = f->contact_set;
    int rc = whose_check(s, x->conv_id, x->user_id);
    if (rc) return rc;
    if (strlen(x->name) > SB_CONTACT_NAME_BYTES_MAX ||
        strlen(x->email) > SB_CONTACT_EMAIL_BYTES_MAX ||
        x->n_attributes > SB_CONTACT_ATTRS_MAX)
        return SB_E_TOO_LARGE;
    for (size_t i = 0; i < x->n_clear; i++)
        if (strcmp(x->clear[i], "name") != 0 &&
            strcmp(x->clear[i], "email") != 0)
            return SB_E_INVALID;
    return 0;
}

static void on_set(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    Sbp__ContactSet *x = f->contact_set;
    sb_req *r =
        contact_req(gw, s, f->rid, SB_REQ_CONTACT_SET, x->conv_id, x->user_id);
    /* The change outlives the frame: the request takes the body's fields
     * (r->data, freed with the request), leaving the frame an empty body. */
    Sbp__ContactSet *keep = r ? malloc(sizeof *keep) : NULL;
    if (!keep) {
        free(r);
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    *keep = *x;
    sbp__contact_set__init(x);
    sb_store_contact_change *ch = &r->u.contact.change;
    ch->name = keep->name;
    ch->email = keep->email;
    ch->attrs = keep->attributes;
    ch->n_attrs = keep->n_attributes;
    for (size_t i = 0; i < keep->n_clear; i++) {
        ch->clear_name |= strcmp(keep->clear[i], "name") == 0;
        ch->clear_email |= strcmp(keep->clear[i], "email") == 0;
    }
    r->data = keep;
    sb__gw_submit(gw, r);
}

static const sb_gw_row ROWS[] = {
    {.body = SBP__FRAME__BODY_CONTACT_GET,
     .flags = SB_GW_READY | SB_GW_RATED,
     .roles =
         SB_GW_ROLE(SBP__ROLE__ROLE_AGENT) | SB_GW_ROLE(SBP__ROLE__ROLE_ADMIN),
     .why = "contacts are for agents and admins",
     .check = get_check,
     .handle = on_get},
    {.body = SBP__FRAME__BODY_CONTACT_SET,
     .flags = SB_GW_READY | SB_GW_RATED,
     .roles =
         SB_GW_ROLE(SBP__ROLE__ROLE_AGENT) | SB_GW_ROLE(SBP__ROLE__ROLE_ADMIN),
     .why = "contacts are for agents and admins",
     .check = set_check,
     .handle = on_set},
};

void sb__contact_register(sb_gw *gw)
{
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, NULL);
}
