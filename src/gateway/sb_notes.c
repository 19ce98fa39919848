/* Private notes (sb_notes.h) on the delivery core. */
#include "sb_notes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_desk.h"
#include "sb_error.h"
#include "sb_gwcore.h"
#include "sb_view.h"

/* ---- mentions --------------------------------------------------------------
 */

static bool id_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
}

size_t sb__notes_mentions(const char *text, char (*ids)[SB_ID_BYTES_MAX + 1],
                          size_t max)
{
    size_t n = 0;
    for (const char *p = text; *p && n < max; p++) {
        if (*p != '@' || (p > text && id_char((unsigned char)p[-1]))) continue;
        const char *q = p + 1;
        while (id_char((unsigned char)*q))
            q++;
        /* A sentence may end just after the id: "ask @bob." */
        while (q > p + 1 && q[-1] == '.')
            q--;
        size_t len = (size_t)(q - p - 1);
        if (len == 0 || len > SB_ID_BYTES_MAX) continue;
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strlen(ids[i]) == len && memcmp(ids[i], p + 1, len) == 0;
        if (seen) continue;
        memcpy(ids[n], p + 1, len);
        ids[n][len] = '\0';
        n++;
    }
    return n;
}

/* ---- answers and news ------------------------------------------------------
 */

/* The members of notes conversation pc changed: every device of every
 * member (and, in a cluster, every node that has one) gets its new form,
 * which refreshes each node's copy of it. */
static void members_changed(sb_gw *gw, conv *c, Sbp__Conversation *pc)
{
    Sbp__ConvUpdate u = SBP__CONV_UPDATE__INIT;
    u.conv = pc;
    sb__gw_send_members(gw, c, SBP__FRAME__BODY_CONV_UPDATE, &u, NULL);
}

/* NOTE_MENTION of note m (of notes c) to each of the n users in ids. */
static void mention_send(sb_gw *gw, const conv *c, Sbp__Message *m,
                         char (*ids)[SB_ID_BYTES_MAX + 1], size_t n)
{
    Sbp__NoteMention nm = SBP__NOTE_MENTION__INIT;
    nm.conv_id = c->notes_of;
    nm.notes_conv_id = c->id;
    nm.note = m;
    for (size_t i = 0; i < n; i++)
        sb__gw_send_user(gw, ids[i], SBP__FRAME__BODY_NOTE_MENTION, &nm);
}

/* What a mention waits for while its teammates are made members: the note
 * and whom to tell. */
typedef struct mention {
    Sbp__Message *note;
    size_t n;
    char ids[SB_NOTE_MENTIONS_MAX][SB_ID_BYTES_MAX + 1];
} mention;

static void mention_free(mention *x)
{
    if (!x) return;
    if (x->note) sbp__message__free_unpacked(x->note, NULL);
    free(x);
}

/* ---- NOTES_OPEN ------------------------------------------------------------
 */

/* The store made or joined the notes: the asker gets them (OPEN_RESP), a
 * mention's teammates hear of their note; the members hear of a change. */
static void open_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    mention *x = r->data;
    Sbp__Conversation *pc = r->u.notes.conv;
    conv *c = r->rc == 0 && pc ? sb__gw_conv_refresh(gw, pc) : NULL;
    if (r->rc != 0) {
        if (r->rid) sb__gw_error(gw, s, r->rid, r->rc);
    } else if (r->rid && s) {
        Sbp__OpenResp o = SBP__OPEN_RESP__INIT;
        sb__view_conv(gw, s, pc);
        o.conv = pc;
        sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_OPEN_RESP, &o);
    }
    if (c && r->u.notes.changed) members_changed(gw, c, pc);
    if (c && x) mention_send(gw, c, x->note, x->ids, x->n);
    mention_free(x);
    if (pc) sbp__conversation__free_unpacked(pc, NULL);
    free(r);
}

/* The request to make (create) and join the notes of service conversation
 * conv_id; NULL when out of memory. */
static sb_req *open_req(sb_gw *gw, const sess *s, uint32_t rid,
                        uint64_t conv_id, bool create)
{
    sb_req *r = sb__gw_req_new(gw, SB_REQ_NOTES_OPEN, s, rid, open_done);
    if (!r) return NULL;
    r->u.notes.conv_id = conv_id;
    r->u.notes.create = create;
    return r;
}

static void join(sb_req *r, const char *user_id, Sbp__Role role)
{
    size_t i = r->u.notes.n++;
    sb__gw_copy_str(r->u.notes.user_ids[i], sizeof r->u.notes.user_ids[i],
                    user_id);
    r->u.notes.roles[i] = role;
}

/* An agent, or an admin on a device, follows the notes it opens: it gets
 * the notes that follow by PUSH. A request of the REST API (no device)
 * on an admin's behalf reads them without joining. */
static bool joins(const sess *s)
{
    return s->role == SBP__ROLE__ROLE_AGENT ||
           (s->role == SBP__ROLE__ROLE_ADMIN && s->user);
}

static void on_notes_open(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)ud;
    if (c->kind != SBP__CONV_KIND__CONV_SERVICE) {
        sb__gw_error_text(gw, s, f->rid, SB_E_INVALID,
                          "notes are kept for service conversations");
        return;
    }
    sb_req *r = open_req(gw, s, f->rid, c->id, f->notes_open->create);
    if (!r) {
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    if (joins(s)) join(r, s->user_id, s->role);
    sb__gw_submit(gw, r);
}

/* ---- a note's mentions -----------------------------------------------------
 */

void sb__notes_stored(sb_gw *gw, conv *c, const Sbp__Message *m)
{
    if (!c->notes_of || !gw->cfg.desk) return;
    char ids[SB_NOTE_MENTIONS_MAX][SB_ID_BYTES_MAX + 1];
    size_t n = sb__notes_mentions(m->body, ids, SB_NOTE_MENTIONS_MAX);
    /* Teammates only: the desks' agents, not the note's writer. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], m->sender) != 0 &&
            sb_desk_is_agent(gw->cfg.desk, ids[i]))
            memmove(ids[k++], ids[i], sizeof ids[i]);
    if (k == 0) return;
    mention *x = calloc(1, sizeof *x);
    Sbp__Message *note = NULL;
    if (x) {
        /* A copy of the stored note for the NOTE_MENTION frames. */
        size_t len = sbp__message__get_packed_size(m);
        uint8_t *buf = malloc(len ? len : 1);
        if (buf) {
            sbp__message__pack(m, buf);
            note = sbp__message__unpack(NULL, len, buf);
            free(buf);
        }
    }
    if (!x || !note) {
        free(x);
        return; /* out of memory: no mention; the note itself is stored */
    }
    x->note = note;
    x->n = k;
    memcpy(x->ids, ids, sizeof x->ids);
    /* Those who are not members yet become members first, so that the
     * notes that follow reach them too; then every one hears. */
    sb_req *r = open_req(gw, NULL, 0, c->notes_of, false);
    if (r) {
        for (size_t i = 0; i < k; i++)
            if (!sb__gw_conv_member(c, ids[i]))
                join(r, ids[i], SBP__ROLE__ROLE_AGENT);
        if (r->u.notes.n) {
            r->data = x;
            sb__gw_submit(gw, r);
            return;
        }
        free(r);
    }
    mention_send(gw, c, x->note, x->ids, x->n);
    mention_free(x);
}

/* ---- registration ----------------------------------------------------------
 */

static const sb_gw_row ROWS[] = {
    {.body = SBP__FRAME__BODY_NOTES_OPEN,
     .flags = SB_GW_READY | SB_GW_RATED | SB_GW_CONV | SB_GW_ACCESS,
     .roles =
         SB_GW_ROLE(SBP__ROLE__ROLE_AGENT) | SB_GW_ROLE(SBP__ROLE__ROLE_ADMIN),
     .why = "private notes are for agents and admins",
     .handle = on_notes_open},
};

void sb__notes_register(sb_gw *gw)
{
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, NULL);
}
