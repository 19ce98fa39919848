/* What one reader is shown (sb_view.h). The store's results are changed
 * in place before they are encoded for the reader: every string dropped
 * is freed, and an emptied one points at protobuf-c's empty string, which
 * sbp__*__free_unpacked leaves alone. */
#include "sb_view.h"

#include <stdlib.h>
#include <string.h>

#include "sb_desk.h"
#include "sb_sysmsg.h"

static bool is_customer(const sess *s)
{
    return s->role == SBP__ROLE__ROLE_CUSTOMER;
}

static void str_clear(char **p)
{
    if (*p && *p != protobuf_c_empty_string) free(*p);
    *p = (char *)protobuf_c_empty_string;
}

static void strs_clear(char ***v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

bool sb__view_may_read(sb_gw *gw, const sess *s, const conv *c)
{
    if (sb__gw_may_access(s, (conv *)c)) return true;
    const sb_desk *d = gw->cfg.desk;
    return d && s->role == SBP__ROLE__ROLE_AGENT &&
           c->kind == SBP__CONV_KIND__CONV_SERVICE &&
           c->state == SBP__CONV_STATE__STATE_QUEUED &&
           sb_desk_in_group(d, s->user_id, sb_desk_group(d, c->group));
}

bool sb__view_note_for(sb_gw *gw, Sbp__Role role, const char *user_id,
                       Sbp__ConvState state, const char *agent,
                       const char *group)
{
    if (role == SBP__ROLE__ROLE_ADMIN) return true;
    if (role != SBP__ROLE__ROLE_AGENT) return false;
    if (agent[0] && strcmp(agent, user_id) == 0 &&
        state != SBP__CONV_STATE__STATE_QUEUED)
        return true;
    const sb_desk *d = gw->cfg.desk;
    return d && state == SBP__CONV_STATE__STATE_QUEUED &&
           sb_desk_in_group(d, user_id, sb_desk_group(d, group));
}

/* A staff-only event as a customer sees it: its key, nothing else. */
static void event_hide(Sbp__Message *m)
{
    strs_clear(&m->event->args, &m->event->n_args);
    str_clear(&m->body);
}

void sb__view_msgs(const sess *s, Sbp__Message *const *msgs, size_t n)
{
    bool customer = is_customer(s);
    for (size_t i = 0; i < n; i++) {
        Sbp__Message *m = msgs[i];
        if (customer) strs_clear(&m->tags, &m->n_tags);
        if (customer && m->event && sb_sysmsg_staff_only(m->event->key))
            event_hide(m);
        else
            sb_sysmsg_render(&m, 1, s->locale);
    }
}

size_t sb__view_drop_hidden(const sess *s, Sbp__Message **msgs, size_t n)
{
    if (!is_customer(s)) return n;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        Sbp__Message *m = msgs[i];
        if (m->event && sb_sysmsg_staff_only(m->event->key))
            sbp__message__free_unpacked(m, NULL);
        else
            msgs[w++] = m;
    }
    return w;
}

void sb__view_conv(sb_gw *gw, const sess *s, Sbp__Conversation *pc)
{
    /* Receipts: the gateway's copy moves first (an ACK, a READ), the
     * store follows. */
    conv *c = sb_map_get(&gw->convs, pc->conv_id);
    for (size_t i = 0; c && i < pc->n_members; i++) {
        Sbp__Member *pm = pc->members[i];
        member *m = sb__gw_conv_member(c, pm->user_id);
        if (!m) continue;
        if (m->read_seq > pm->read_seq) pm->read_seq = m->read_seq;
        if (m->delivered_seq > pm->delivered_seq)
            pm->delivered_seq = m->delivered_seq;
    }
    if (gw->cfg.desk)
        pc->queue_position = sb_desk_position(gw->cfg.desk, pc->conv_id);
    if (!sb__view_note_for(gw, s->role, s->user_id, pc->state, pc->agent,
                           pc->group)) {
        str_clear(&pc->transfer_note);
        str_clear(&pc->transfer_from);
    }
    if (is_customer(s)) strs_clear(&pc->tags, &pc->n_tags);
    if (pc->last_message) sb__view_msgs(s, &pc->last_message, 1);
}
