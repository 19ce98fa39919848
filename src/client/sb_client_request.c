/* The client core's requests: the table (see sb_client_request.h), the
 * generic sb_client_core_request() and the typed helpers over it, and
 * TYPING, a frame written like a request that nothing answers. */
#include "sb_client_request.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "sb_client_core_int.h"
#include "sb_error.h"
#include "sb_utf8.h"

/* The frames that answer each kind of request, besides an ERROR. */
static const Sbp__Frame__BodyCase ANSWERS[][2] = {
    [SBP__FRAME__BODY_OPEN] = {SBP__FRAME__BODY_OPEN_RESP},
    [SBP__FRAME__BODY_HISTORY] = {SBP__FRAME__BODY_HISTORY_RESP},
    [SBP__FRAME__BODY_TRANSFER] = {SBP__FRAME__BODY_OK},
    [SBP__FRAME__BODY_CLOSE] = {SBP__FRAME__BODY_OK},
    [SBP__FRAME__BODY_HANDOFF] = {SBP__FRAME__BODY_OK},
    [SBP__FRAME__BODY_RECALL] = {SBP__FRAME__BODY_OK},
    [SBP__FRAME__BODY_TAG] = {SBP__FRAME__BODY_OK},
    [SBP__FRAME__BODY_AGENT_STATE] = {SBP__FRAME__BODY_AGENT_STATE},
    [SBP__FRAME__BODY_CONV_LIST] = {SBP__FRAME__BODY_CONV_LIST_RESP},
    [SBP__FRAME__BODY_SEARCH] = {SBP__FRAME__BODY_SEARCH_RESP},
    [SBP__FRAME__BODY_CANNED_LIST] = {SBP__FRAME__BODY_CANNED_LIST_RESP},
    [SBP__FRAME__BODY_ADMIN] = {SBP__FRAME__BODY_ADMIN_RESP,
                                SBP__FRAME__BODY_OK},
    [SBP__FRAME__BODY_CLAIM] = {SBP__FRAME__BODY_OK},
    [SBP__FRAME__BODY_AGENT_LIST] = {SBP__FRAME__BODY_AGENT_LIST_RESP},
    [SBP__FRAME__BODY_CSAT] = {SBP__FRAME__BODY_OK},
    [SBP__FRAME__BODY_REPORT] = {SBP__FRAME__BODY_REPORT_RESP},
    [SBP__FRAME__BODY_NOTES_OPEN] = {SBP__FRAME__BODY_OPEN_RESP},
    [SBP__FRAME__BODY_CONTACT_GET] = {SBP__FRAME__BODY_CONTACT_RESP},
    [SBP__FRAME__BODY_CONTACT_SET] = {SBP__FRAME__BODY_CONTACT_RESP},
};
#define N_KINDS (sizeof ANSWERS / sizeof *ANSWERS)

static bool is_request(Sbp__Frame__BodyCase kind)
{
    return (size_t)kind < N_KINDS &&
           ANSWERS[kind][0] != SBP__FRAME__BODY__NOT_SET;
}

static bool answers(Sbp__Frame__BodyCase kind, Sbp__Frame__BodyCase answer)
{
    assert(is_request(kind));
    return answer != SBP__FRAME__BODY__NOT_SET &&
           (ANSWERS[kind][0] == answer || ANSWERS[kind][1] == answer);
}

int sb__client_request_init(sb_client_core *cc)
{
    cc->req.slots = calloc(cc->cfg.requests_max, sizeof *cc->req.slots);
    return cc->req.slots ? 0 : -ENOMEM;
}

void sb__client_request_free(sb_client_core *cc)
{
    free(cc->req.slots);
}

/* The pending request rid (not 0), or NULL. */
static cc_req *req_find(sb_client_core *cc, uint32_t rid)
{
    for (uint32_t i = 0; rid && i < cc->cfg.requests_max; i++) {
        cc_req *r = &cc->req.slots[i];
        if (r->kind != SBP__FRAME__BODY__NOT_SET && r->rid == rid) return r;
    }
    return NULL;
}

/* Frees r's slot, then tells the application. */
static void respond(sb_client_core *cc, cc_req *r, int err,
                    const Sbp__Frame *resp)
{
    cc_req done = *r;
    r->kind = SBP__FRAME__BODY__NOT_SET;
    if (cc->cbs.on_response)
        cc->cbs.on_response(cc->ud, done.rid, done.kind, err, resp);
}

void sb__client_request_on_answer(sb_client_core *cc, const Sbp__Frame *f)
{
    cc_req *r = req_find(cc, f->rid);
    if (!r || !answers(r->kind, f->body_case)) return;
    bool whole =
        f->body_case != SBP__FRAME__BODY_OPEN_RESP || f->open_resp->conv;
    respond(cc, r, whole ? 0 : SB_E_INVALID, whole ? f : NULL);
}

bool sb__client_request_on_error(sb_client_core *cc, const Sbp__Frame *f)
{
    cc_req *r = req_find(cc, f->rid);
    if (!r) return false;
    respond(cc, r, SB_E(f->error->code), f);
    return true;
}

void sb__client_request_fail_all(sb_client_core *cc, int err)
{
    for (uint32_t i = 0; i < cc->cfg.requests_max; i++)
        if (cc->req.slots[i].kind != SBP__FRAME__BODY__NOT_SET)
            respond(cc, &cc->req.slots[i], err, NULL);
}

void sb__client_request_tick(sb_client_core *cc)
{
    for (uint32_t i = 0; i < cc->cfg.requests_max; i++) {
        cc_req *r = &cc->req.slots[i];
        if (r->kind != SBP__FRAME__BODY__NOT_SET &&
            cc->now_ms >= r->deadline_ms)
            respond(cc, r, -ETIMEDOUT, NULL);
    }
}

int sb_client_core_request(sb_client_core *cc, Sbp__Frame *f, uint32_t *rid_out)
{
    assert(cc && f);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (!is_request(f->body_case)) return -EINVAL;
    cc_req *r = NULL;
    for (uint32_t i = 0; !r && i < cc->cfg.requests_max; i++)
        if (cc->req.slots[i].kind == SBP__FRAME__BODY__NOT_SET)
            r = &cc->req.slots[i];
    if (!r) return -ENOBUFS;
    f->rid = sb__client_new_rid(cc);
    int rc = sb__client_emit(cc, f);
    if (rc) return rc;
    r->rid = f->rid;
    r->kind = f->body_case;
    r->deadline_ms = cc->now_ms + cc->cfg.request_timeout_ms;
    if (rid_out) *rid_out = f->rid;
    return 0;
}

const char *sb_client_answer_text(const Sbp__Frame *resp)
{
    if (resp && resp->body_case == SBP__FRAME__BODY_ADMIN_RESP)
        return resp->admin_resp->text;
    if (resp && resp->body_case == SBP__FRAME__BODY_ERROR)
        return resp->error->text;
    return "";
}

/* ---- typed helpers ------------------------------------------------------- */

static char *str_or_empty(const char *s)
{
    return (char *)(s ? s : "");
}

static int open_req(sb_client_core *cc, const char *const *members,
                    size_t n_members, const char *title, Sbp__ConvKind kind,
                    const char *desk, uint32_t *rid_out)
{
    assert(cc && (members || n_members == 0));
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (n_members >= SB_MEMBERS_MAX) return SB_E_INVALID;
    for (size_t i = 0; i < n_members; i++)
        if (!members[i] || strlen(members[i]) > SB_ID_BYTES_MAX)
            return SB_E_INVALID;
    int rc = sb__client_check_str(desk, SB_ID_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__Open o = SBP__OPEN__INIT;
    o.n_members = n_members;
    o.members = (char **)members;
    o.title = str_or_empty(title);
    o.kind = kind;
    o.desk = str_or_empty(desk);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_OPEN;
    f.open = &o;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_open(sb_client_core *cc, const char *const *members,
                        size_t n_members, const char *title, Sbp__ConvKind kind,
                        uint32_t *rid_out)
{
    return open_req(cc, members, n_members, title, kind, NULL, rid_out);
}

int sb_client_core_open_service(sb_client_core *cc, const char *desk,
                                uint32_t *rid_out)
{
    return open_req(cc, NULL, 0, NULL, SBP__CONV_KIND__CONV_SERVICE, desk,
                    rid_out);
}

int sb_client_core_history(sb_client_core *cc, uint64_t conv_id,
                           uint64_t before_seq, uint32_t limit,
                           uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0) return SB_E_INVALID;
    Sbp__History h = SBP__HISTORY__INIT;
    h.conv_id = conv_id;
    h.before_seq = before_seq;
    h.limit = limit;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_HISTORY;
    f.history = &h;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_transfer(sb_client_core *cc, uint64_t conv_id,
                            const char *to_agent, const char *to_group,
                            uint32_t *rid_out)
{
    return sb_client_core_transfer_note(cc, conv_id, to_agent, to_group, NULL,
                                        rid_out);
}

int sb_client_core_transfer_note(sb_client_core *cc, uint64_t conv_id,
                                 const char *to_agent, const char *to_group,
                                 const char *note, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    bool agent = to_agent && to_agent[0], group = to_group && to_group[0];
    if (conv_id == 0 || agent == group) return SB_E_INVALID;
    int rc = sb__client_check_str(to_agent, SB_ID_BYTES_MAX, true);
    if (!rc) rc = sb__client_check_str(to_group, SB_ID_BYTES_MAX, true);
    if (!rc && note && strlen(note) > SB_NOTE_BYTES_MAX) rc = SB_E_TOO_LARGE;
    if (!rc) rc = sb__client_check_str(note, SB_NOTE_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__Transfer t = SBP__TRANSFER__INIT;
    t.conv_id = conv_id;
    t.to_agent = str_or_empty(to_agent);
    t.to_group = str_or_empty(to_group);
    t.note = str_or_empty(note);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_TRANSFER;
    f.transfer = &t;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_claim(sb_client_core *cc, uint64_t conv_id,
                         bool over_capacity, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0) return SB_E_INVALID;
    Sbp__Claim c = SBP__CLAIM__INIT;
    c.conv_id = conv_id;
    c.over_capacity = over_capacity;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CLAIM;
    f.claim = &c;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_agent_list(sb_client_core *cc, const char *desk,
                              uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    int rc = sb__client_check_str(desk, SB_ID_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__AgentList l = SBP__AGENT_LIST__INIT;
    l.desk = str_or_empty(desk);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_AGENT_LIST;
    f.agent_list = &l;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_close_conv(sb_client_core *cc, uint64_t conv_id,
                              uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0) return SB_E_INVALID;
    Sbp__Close c = SBP__CLOSE__INIT;
    c.conv_id = conv_id;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CLOSE;
    f.close = &c;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_handoff(sb_client_core *cc, uint64_t conv_id,
                           const char *group, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0) return SB_E_INVALID;
    int rc = sb__client_check_str(group, SB_ID_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__Handoff h = SBP__HANDOFF__INIT;
    h.conv_id = conv_id;
    h.group = str_or_empty(group);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_HANDOFF;
    f.handoff = &h;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_recall(sb_client_core *cc, uint64_t conv_id, uint64_t seq,
                          uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0 || seq == 0) return SB_E_INVALID;
    Sbp__Recall r = SBP__RECALL__INIT;
    r.conv_id = conv_id;
    r.seq = seq;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_RECALL;
    f.recall = &r;
    return sb_client_core_request(cc, &f, rid_out);
}

static int check_tags(const char *const *v, size_t n)
{
    if (n > SB_TAGS_MAX) return SB_E_TOO_LARGE;
    for (size_t i = 0; i < n; i++) {
        int rc = v[i] ? sb__client_check_str(v[i], SB_TAG_BYTES_MAX, false)
                      : SB_E_INVALID;
        if (rc) return rc;
    }
    return 0;
}

int sb_client_core_tag(sb_client_core *cc, uint64_t conv_id, uint64_t seq,
                       const char *const *add, size_t n_add,
                       const char *const *remove, size_t n_remove,
                       uint32_t *rid_out)
{
    assert(cc && (add || n_add == 0) && (remove || n_remove == 0));
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0 || n_add + n_remove == 0) return SB_E_INVALID;
    int rc = check_tags(add, n_add);
    if (!rc) rc = check_tags(remove, n_remove);
    if (rc) return rc;
    Sbp__Tag t = SBP__TAG__INIT;
    t.conv_id = conv_id;
    t.seq = seq;
    t.n_add = n_add;
    t.add = (char **)add;
    t.n_remove = n_remove;
    t.remove = (char **)remove;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_TAG;
    f.tag = &t;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_agent_state(sb_client_core *cc, Sbp__AgentStatus status,
                               uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (status != SBP__AGENT_STATUS__AGENT_ONLINE &&
        status != SBP__AGENT_STATUS__AGENT_AWAY)
        return SB_E_INVALID;
    Sbp__AgentState a = SBP__AGENT_STATE__INIT;
    a.status = status;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_AGENT_STATE;
    f.agent_state = &a;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_conv_list(sb_client_core *cc, const char *cursor,
                             uint32_t limit, Sbp__ConvState state,
                             const char *tag, bool mine, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if ((int)state < 0 || state > SBP__CONV_STATE__STATE_CLOSED)
        return SB_E_INVALID;
    int rc = sb__client_check_str(cursor, SB_LIST_CURSOR_BYTES_MAX, true);
    if (!rc) rc = sb__client_check_str(tag, SB_TAG_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__ConvList l = SBP__CONV_LIST__INIT;
    l.cursor = str_or_empty(cursor);
    l.limit = limit;
    l.state = state;
    l.tag = str_or_empty(tag);
    l.mine = mine;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CONV_LIST;
    f.conv_list = &l;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_search(sb_client_core *cc, uint64_t conv_id,
                          const char *query, uint32_t limit, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    size_t n = strlen(query ? query : "");
    if (n > SB_QUERY_BYTES_MAX) return SB_E_TOO_LARGE;
    int rc = sb__client_check_str(query, SB_QUERY_BYTES_MAX, false);
    if (rc) return rc;
    Sbp__Search q = SBP__SEARCH__INIT;
    q.conv_id = conv_id;
    q.query = (char *)query;
    q.limit = limit;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_SEARCH;
    f.search = &q;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_canned_list(sb_client_core *cc, const char *desk,
                               uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    int rc = sb__client_check_str(desk, SB_ID_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__CannedList c = SBP__CANNED_LIST__INIT;
    c.desk = str_or_empty(desk);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CANNED_LIST;
    f.canned_list = &c;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_admin_cmd(sb_client_core *cc, const char *op,
                             const char *body, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    int rc = sb__client_check_str(op, SB_ID_BYTES_MAX, false);
    if (rc) return rc;
    if (!sb_utf8_valid(body ? body : "", strlen(body ? body : "")))
        return SB_E_BAD_UTF8;
    Sbp__Admin a = SBP__ADMIN__INIT;
    a.op = (char *)op;
    a.body = str_or_empty(body);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_ADMIN;
    f.admin = &a;
    /* The server refuses a larger message unread, so without the rid that
     * would tell us which request failed: measure it here (a rid adds at
     * most 6 bytes). */
    if (cc->sess.frame_bytes_max) {
        sb_buf b = SB_BUF_INIT;
        rc = sb_frame_encode(cc->cfg.enc, &f, &b);
        size_t n = b.len;
        sb_buf_free(&b);
        if (rc) return rc;
        if (n + 6 > cc->sess.frame_bytes_max) return SB_E_TOO_LARGE;
    }
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_csat(sb_client_core *cc, uint64_t conv_id, uint32_t rating,
                        const char *comment, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0 || rating < 1 || rating > SB_CSAT_RATING_MAX)
        return SB_E_INVALID;
    if (comment && strlen(comment) > SB_CSAT_COMMENT_BYTES_MAX)
        return SB_E_TOO_LARGE;
    int rc = sb__client_check_str(comment, SB_CSAT_COMMENT_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__Csat x = SBP__CSAT__INIT;
    x.conv_id = conv_id;
    x.rating = rating;
    x.comment = str_or_empty(comment);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CSAT;
    f.csat = &x;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_report(sb_client_core *cc, const char *from, const char *to,
                          const char *tz, const char *const *by, size_t n_by,
                          const char *desk, const char *group,
                          const char *agent, uint32_t *rid_out)
{
    assert(cc && (by || n_by == 0));
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (n_by > 4) return SB_E_INVALID;
    int rc = 0;
    const char *ids[] = {from, to, tz, desk, group, agent};
    for (size_t i = 0; rc == 0 && i < sizeof ids / sizeof *ids; i++)
        rc = sb__client_check_str(ids[i], SB_ID_BYTES_MAX, i >= 2);
    for (size_t i = 0; rc == 0 && i < n_by; i++)
        rc = sb__client_check_str(by[i], SB_ID_BYTES_MAX, false);
    if (rc) return rc;
    Sbp__Report r = SBP__REPORT__INIT;
    r.from = (char *)from;
    r.to = (char *)to;
    r.tz = str_or_empty(tz);
    r.by = (char **)by;
    r.n_by = n_by;
    r.desk = str_or_empty(desk);
    r.group = str_or_empty(group);
    r.agent = str_or_empty(agent);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_REPORT;
    f.report = &r;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_notes_open(sb_client_core *cc, uint64_t conv_id, bool create,
                              uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0) return SB_E_INVALID;
    Sbp__NotesOpen x = SBP__NOTES_OPEN__INIT;
    x.conv_id = conv_id;
    x.create = create;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_NOTES_OPEN;
    f.notes_open = &x;
    return sb_client_core_request(cc, &f, rid_out);
}

/* Whose contact: a conversation's customer (conv_id) or a user (user_id),
 * exactly one of them. */
static int contact_whose(uint64_t conv_id, const char *user_id)
{
    if ((conv_id != 0) == (user_id && user_id[0])) return SB_E_INVALID;
    return conv_id ? 0 : sb__client_check_str(user_id, SB_ID_BYTES_MAX, false);
}

int sb_client_core_contact_get(sb_client_core *cc, uint64_t conv_id,
                               const char *user_id, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    int rc = contact_whose(conv_id, user_id);
    if (rc) return rc;
    Sbp__ContactGet x = SBP__CONTACT_GET__INIT;
    x.conv_id = conv_id;
    x.user_id = str_or_empty(user_id);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CONTACT_GET;
    f.contact_get = &x;
    return sb_client_core_request(cc, &f, rid_out);
}

/* A contact's field: over max bytes is SB_E_TOO_LARGE, the rest as
 * sb__client_check_str. */
static int contact_field(const char *v, size_t max, bool empty_ok)
{
    if (v && strlen(v) > max) return SB_E_TOO_LARGE;
    return sb__client_check_str(v, max, empty_ok);
}

int sb_client_core_contact_set(sb_client_core *cc,
                               const sb_client_contact_change *ch,
                               uint32_t *rid_out)
{
    assert(cc && ch && (ch->n_attrs == 0 || (ch->keys && ch->values)));
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    int rc = contact_whose(ch->conv_id, ch->user_id);
    if (rc == 0) rc = contact_field(ch->name, SB_CONTACT_NAME_BYTES_MAX, true);
    if (rc == 0)
        rc = contact_field(ch->email, SB_CONTACT_EMAIL_BYTES_MAX, true);
    if (rc == 0 && ch->n_attrs > SB_CONTACT_ATTRS_MAX) rc = SB_E_TOO_LARGE;
    for (size_t i = 0; rc == 0 && i < ch->n_attrs; i++) {
        rc = contact_field(ch->keys[i], SB_CONTACT_KEY_BYTES_MAX, false);
        if (rc == 0)
            rc = contact_field(ch->values[i], SB_CONTACT_VALUE_BYTES_MAX, true);
    }
    if (rc) return rc;
    Sbp__ContactAttr room[SB_CONTACT_ATTRS_MAX];
    Sbp__ContactAttr *attrs[SB_CONTACT_ATTRS_MAX];
    for (size_t i = 0; i < ch->n_attrs; i++) {
        sbp__contact_attr__init(&room[i]);
        room[i].key = (char *)ch->keys[i];
        room[i].value = str_or_empty(ch->values[i]);
        attrs[i] = &room[i];
    }
    char *clear[2];
    size_t n_clear = 0;
    if (ch->clear_name) clear[n_clear++] = "name";
    if (ch->clear_email) clear[n_clear++] = "email";
    Sbp__ContactSet x = SBP__CONTACT_SET__INIT;
    x.conv_id = ch->conv_id;
    x.user_id = str_or_empty(ch->user_id);
    x.name = str_or_empty(ch->name);
    x.email = str_or_empty(ch->email);
    x.attributes = attrs;
    x.n_attributes = ch->n_attrs;
    x.clear = clear;
    x.n_clear = n_clear;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CONTACT_SET;
    f.contact_set = &x;
    return sb_client_core_request(cc, &f, rid_out);
}

int sb_client_core_typing(sb_client_core *cc, uint64_t conv_id, bool on)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0) return SB_E_INVALID;
    Sbp__Typing t = SBP__TYPING__INIT;
    t.conv_id = conv_id;
    t.on = on;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_TYPING;
    f.typing = &t;
    return sb__client_emit(cc, &f);
}
