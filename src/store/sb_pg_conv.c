/* The PostgreSQL backend's conversations: users, conversations and their
 * members, device cursors and read receipts, the customer-service state
 * (service conversations, routing, first response), tags, and the paged
 * conversation list. Each operation follows the SQLite store's of the same
 * name, statement for statement. */
#include "sb_pg_int.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"

/* ---- users and conversations -----------------------------------------------
 */

int sb__pg_user_upsert(sb_store *base, const char *user_id, Sbp__Role role,
                       const char *locale, int64_t now_ms)
{
    sb_pg_params p = {0};
    sb__pg_str(&p, user_id);
    sb__pg_int(&p, role);
    sb__pg_str(&p, locale);
    sb__pg_int(&p, now_ms);
    return sb__pg_exec(sb__pg(base), PS_USER_UPSERT, &p, NULL);
}

int sb__pg_user_role(sb_store *base, const char *user_id, Sbp__Role *role)
{
    sb_pg_params p = {0};
    sb__pg_str(&p, user_id);
    PGresult *r;
    int rc = sb__pg_exec(sb__pg(base), PS_USER_ROLE, &p, &r);
    if (rc == 0 && PQntuples(r) == 0) rc = SB_E_NOT_FOUND;
    if (rc == 0) *role = (Sbp__Role)sb__pg_get_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

static int members_load(sb_pg *s, Sbp__Conversation *c)
{
    sb_pg_params p = {0};
    sb__pg_u64(&p, c->conv_id);
    sb__pg_int(&p, SB_MEMBERS_MAX);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_MEMBERS_GET, &p, &r);
    if (rc) return rc;
    int n = PQntuples(r);
    rc = -ENOMEM;
    if (n && !(c->members = calloc((size_t)n, sizeof *c->members))) goto out;
    for (int i = 0; i < n; i++) {
        Sbp__Member *m = malloc(sizeof *m);
        if (!m) goto out;
        sbp__member__init(m);
        c->members[c->n_members++] = m;
        m->role = (Sbp__Role)sb__pg_get_i64(r, i, PB_ROLE);
        m->read_seq = (uint64_t)sb__pg_get_i64(r, i, PB_READ_SEQ);
        m->delivered_seq = (uint64_t)sb__pg_get_i64(r, i, PB_DELIVERED_SEQ);
        if (sb__pg_get_text(r, i, PB_USER_ID, &m->user_id)) goto out;
    }
    rc = 0;
out:
    PQclear(r);
    return rc;
}

int sb__pg_tags_load(sb_pg *s, uint64_t conv_id, uint64_t seq, char ***tags,
                     size_t *n_tags)
{
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_u64(&p, seq);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_TAGS_GET, &p, &r);
    if (rc) return rc;
    int n = PQntuples(r); /* the statement's LIMIT keeps it small */
    char **a = n ? calloc((size_t)n, sizeof *a) : NULL;
    rc = n && !a ? -ENOMEM : 0;
    for (int i = 0; rc == 0 && i < n; i++)
        if (!(a[i] = sb__store_strndup(PQgetvalue(r, i, 0),
                                       (size_t)PQgetlength(r, i, 0))))
            rc = -ENOMEM;
    PQclear(r);
    if (rc) {
        for (int i = 0; a && i < n; i++)
            free(a[i]);
        free(a);
        return rc;
    }
    *tags = a;
    *n_tags = (size_t)n;
    return 0;
}

int sb__pg_conv_load(sb_pg *s, uint64_t conv_id, Sbp__Conversation **out)
{
    *out = NULL;
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_CONV_GET, &p, &r);
    if (rc) return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return SB_E_NOT_FOUND;
    }
    Sbp__Conversation *c = malloc(sizeof *c);
    rc = -ENOMEM;
    if (!c) goto err;
    sbp__conversation__init(c);
    c->conv_id = conv_id;
    c->kind = (Sbp__ConvKind)sb__pg_get_i64(r, 0, PC_KIND);
    c->state = (Sbp__ConvState)sb__pg_get_i64(r, 0, PC_STATE);
    c->last_seq = (uint64_t)sb__pg_get_i64(r, 0, PC_LAST_SEQ);
    c->created_ts = sb__pg_get_i64(r, 0, PC_CREATED_TS);
    c->updated_ts = sb__pg_get_i64(r, 0, PC_UPDATED_TS);
    if (c->kind == SBP__CONV_KIND__CONV_SERVICE) {
        int64_t first = sb__pg_get_i64(r, 0, PC_FIRST_RESPONSE_TS);
        int64_t closed = sb__pg_get_i64(r, 0, PC_CLOSED_TS);
        c->first_response_ms = first ? first - c->created_ts : 0;
        c->resolution_ms = closed ? closed - c->created_ts : 0;
        c->csat_rating = (uint32_t)sb__pg_get_i64(r, 0, PC_CSAT_RATING);
        if (sb__pg_get_text(r, 0, PC_CSAT_COMMENT, &c->csat_comment) ||
            sb__pg_get_text(r, 0, PC_LAST_AGENT, &c->last_agent))
            goto err;
    } else if (c->kind == SBP__CONV_KIND__CONV_NOTES) {
        c->notes_of = (uint64_t)sb__pg_get_i64(r, 0, PC_NOTES_OF);
    }
    if (sb__pg_get_text(r, 0, PC_TITLE, &c->title) ||
        sb__pg_get_text(r, 0, PC_DESK, &c->desk) ||
        sb__pg_get_text(r, 0, PC_GROUP, &c->group) ||
        sb__pg_get_text(r, 0, PC_AGENT, &c->agent) ||
        sb__pg_get_text(r, 0, PC_CUSTOMER, &c->customer) ||
        sb__pg_get_text(r, 0, PC_TRANSFER_NOTE, &c->transfer_note) ||
        sb__pg_get_text(r, 0, PC_TRANSFER_FROM, &c->transfer_from))
        goto err;
    PQclear(r);
    r = NULL;
    if ((rc = members_load(s, c)) ||
        (rc = sb__pg_tags_load(s, conv_id, 0, &c->tags, &c->n_tags)))
        goto err;
    *out = c;
    return 0;
err:
    PQclear(r);
    if (c) sbp__conversation__free_unpacked(c, NULL);
    return rc;
}

static int conv_insert(sb_pg *s, Sbp__ConvKind kind, Sbp__ConvState state,
                       const char *title, const char *desk, const char *group,
                       const char *customer, int64_t now_ms, uint64_t *conv_id)
{
    sb_pg_params p = {0};
    sb__pg_int(&p, kind);
    sb__pg_int(&p, state);
    sb__pg_str(&p, title);
    sb__pg_int(&p, now_ms);
    sb__pg_str(&p, desk);
    sb__pg_str(&p, group);
    sb__pg_str(&p, customer);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_CONV_INSERT, &p, &r);
    if (rc == 0) *conv_id = (uint64_t)sb__pg_get_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

static int member_insert(sb_pg *s, uint64_t conv_id, const char *user_id,
                         Sbp__Role role, int64_t now_ms)
{
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_str(&p, user_id);
    sb__pg_int(&p, role);
    sb__pg_int(&p, now_ms);
    return sb__pg_exec(s, PS_MEMBER_INSERT, &p, NULL);
}

int sb__pg_conv_create(sb_store *base, Sbp__ConvKind kind, const char *title,
                       const char *const *user_ids, const Sbp__Role *role,
                       size_t n, const char *customer, int64_t now_ms,
                       Sbp__Conversation **out)
{
    sb_pg *s = sb__pg(base);
    /* A service conversation starts with the bot (DESIGN.md section 4). */
    Sbp__ConvState state = kind == SBP__CONV_KIND__CONV_SERVICE
                               ? SBP__CONV_STATE__STATE_BOT
                               : SBP__CONV_STATE__STATE_OPEN;
    uint64_t conv_id;
    int rc =
        conv_insert(s, kind, state, title, "", "", customer, now_ms, &conv_id);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = member_insert(s, conv_id, user_ids[i], role[i], now_ms);
    return rc ? rc : sb__pg_conv_load(s, conv_id, out);
}

int sb__pg_conv_member(sb_pg *s, uint64_t conv_id, const char *user_id,
                       uint64_t *last_seq, bool *member)
{
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_str(&p, user_id);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_CONV_MEMBER, &p, &r);
    if (rc == 0 && PQntuples(r) == 0) rc = SB_E_NOT_FOUND;
    if (rc == 0) {
        *last_seq = (uint64_t)sb__pg_get_i64(r, 0, 0);
        *member = sb__pg_get_bool(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

/* The device cursor is kept for non-members too (an admin reading
 * everything); only a member has a delivered_seq to raise. */
int sb__pg_cursor_ack(sb_store *base, const char *user_id,
                      const char *device_id, uint64_t conv_id, uint64_t seq)
{
    sb_pg *s = sb__pg(base);
    uint64_t last_seq = 0;
    bool member = false;
    int rc = sb__pg_conv_member(s, conv_id, user_id, &last_seq, &member);
    if (rc) return rc;
    if (seq > last_seq) return SB_E_INVALID;
    if (seq == 0) return 0;
    sb_pg_params p = {0};
    sb__pg_str(&p, user_id);
    sb__pg_str(&p, device_id);
    sb__pg_u64(&p, conv_id);
    sb__pg_u64(&p, seq);
    if ((rc = sb__pg_exec(s, PS_CURSOR_UPSERT, &p, NULL)) || !member) return rc;
    p = (sb_pg_params){0};
    sb__pg_u64(&p, conv_id);
    sb__pg_str(&p, user_id);
    sb__pg_u64(&p, seq);
    return sb__pg_exec(s, PS_DELIVERED_RAISE, &p, NULL);
}

/* Runs statement id with the JSON text of a (consumed) as its one
 * parameter. */
static int exec_json(sb_pg *s, int id, json_t *a, PGresult **out)
{
    char *js = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (!js) return -ENOMEM;
    sb_pg_params p = {0};
    sb__pg_str(&p, js);
    int rc = sb__pg_exec(s, id, &p, out);
    free(js);
    return rc;
}

/* Three statements for all: each item's conversation and membership, the
 * cursors raised, the members' delivered_seq raised. */
int sb__pg_cursor_ack_many(sb_store *base, sb_store_cursor_item *items,
                           size_t n)
{
    sb_pg *s = sb__pg(base);
    json_t *k = json_array();
    if (!k) return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (items[i].rc == 0 &&
            json_array_append_new(k, json_pack("{s:I, s:I, s:s}", "i",
                                               (json_int_t)i, "c",
                                               (json_int_t)items[i].conv_id,
                                               "u", items[i].user_id))) {
            json_decref(k);
            return -ENOMEM;
        }
    PGresult *r;
    int rc = exec_json(s, PS_CURSORS_CHECK, k, &r);
    if (rc) return rc;
    json_t *up = json_array(), *mem = json_array();
    rc = up && mem ? 0 : -ENOMEM;
    for (int row = 0; rc == 0 && row < PQntuples(r); row++) {
        sb_store_cursor_item *c = &items[sb__pg_get_i64(r, row, 0)];
        if (PQgetisnull(r, row, 1)) {
            c->rc = SB_E_NOT_FOUND;
            continue;
        }
        if (c->seq > (uint64_t)sb__pg_get_i64(r, row, 1)) {
            c->rc = SB_E_INVALID; /* beyond the last: no device has it */
            continue;
        }
        if (c->seq == 0) continue;
        json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "u", c->user_id, "d",
                              c->device_id, "c", (json_int_t)c->conv_id, "s",
                              (json_int_t)c->seq);
        if (!o || json_array_append(up, o) ||
            (sb__pg_get_bool(r, row, 2) && json_array_append(mem, o)))
            rc = -ENOMEM;
        json_decref(o);
    }
    PQclear(r);
    if (rc == 0 && json_array_size(up)) {
        rc = exec_json(s, PS_CURSORS_UPSERT, up, NULL);
        up = NULL;
    }
    if (rc == 0 && json_array_size(mem)) {
        rc = exec_json(s, PS_DELIVERED_RAISE_MANY, mem, NULL);
        mem = NULL;
    }
    json_decref(up);
    json_decref(mem);
    return rc;
}

int sb__pg_read_set(sb_store *base, uint64_t conv_id, const char *user_id,
                    uint64_t seq)
{
    sb_pg *s = sb__pg(base);
    uint64_t last_seq = 0;
    bool member = false;
    int rc = sb__pg_conv_member(s, conv_id, user_id, &last_seq, &member);
    if (rc) return rc;
    if (!member) return SB_E_FORBIDDEN;
    if (seq > last_seq) return SB_E_INVALID;
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_str(&p, user_id);
    sb__pg_u64(&p, seq);
    return sb__pg_exec(s, PS_READ_RAISE, &p, NULL);
}

int sb__pg_conv_get(sb_store *base, uint64_t conv_id, Sbp__Conversation **out)
{
    sb_pg *s = sb__pg(base);
    bool own;
    int rc = sb__pg_read_begin(s, &own);
    if (rc) return rc;
    rc = sb__pg_conv_load(s, conv_id, out);
    sb__pg_read_end(s, own);
    return rc;
}

/* ---- customer service ------------------------------------------------------
 */

int sb__pg_service_open(sb_store *base, const char *customer, const char *desk,
                        const char *group, int64_t now_ms,
                        Sbp__Conversation **out, bool *created)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_str(&p, customer);
    sb__pg_str(&p, desk);
    int64_t found;
    int rc = sb__pg_exec(s, PS_SVC_LOCK, &p, NULL);
    if (rc == 0) rc = sb__pg_int_query(s, PS_SVC_FIND, &p, &found);
    if (rc) return rc;
    if (found) return sb__pg_conv_load(s, (uint64_t)found, out);
    uint64_t conv_id;
    rc =
        conv_insert(s, SBP__CONV_KIND__CONV_SERVICE, SBP__CONV_STATE__STATE_BOT,
                    "", desk, group, customer, now_ms, &conv_id);
    if (rc == 0)
        rc = member_insert(s, conv_id, customer, SBP__ROLE__ROLE_CUSTOMER,
                           now_ms);
    if (rc == 0) rc = sb__pg_conv_load(s, conv_id, out);
    if (rc == 0) *created = true;
    return rc;
}

static int member_del(sb_pg *s, uint64_t conv_id, const char *user_id)
{
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_str(&p, user_id);
    return sb__pg_exec(s, PS_MEMBER_DEL, &p, NULL);
}

static int member_put(sb_pg *s, uint64_t conv_id, const char *user_id,
                      Sbp__Role role, int64_t now_ms)
{
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_str(&p, user_id);
    sb__pg_int(&p, role);
    sb__pg_int(&p, now_ms);
    return sb__pg_exec(s, PS_MEMBER_PUT, &p, NULL);
}

/* Members of conv other than a and b. */
static int members_other(sb_pg *s, uint64_t conv_id, const char *a,
                         const char *b, int64_t *n)
{
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_str(&p, a);
    sb__pg_str(&p, b);
    return sb__pg_int_query(s, PS_MEMBER_COUNT, &p, n);
}

/* A transfer (ASSIGNED to another agent) counts as entering ASSIGNED:
 * assigned_ts is when the current agent got the conversation. */
int sb__pg_conv_route(sb_store *base, uint64_t conv_id, Sbp__ConvState state,
                      const char *group, const char *agent, int64_t now_ms,
                      Sbp__Conversation **out)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_ROUTE_GET, &p, &r);
    if (rc) return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return SB_E_NOT_FOUND;
    }
    Sbp__ConvState was = (Sbp__ConvState)sb__pg_get_i64(r, 0, 0);
    char was_agent[SB_ID_BYTES_MAX + 1];
    snprintf(was_agent, sizeof was_agent, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    bool moved = strcmp(was_agent, agent) != 0;
    if (agent[0]) {
        int64_t others;
        if ((rc = members_other(s, conv_id, was_agent, agent, &others)))
            return rc;
        if (others + 1 > SB_MEMBERS_MAX) return SB_E_INVALID;
    }
    if (moved && was_agent[0] && (rc = member_del(s, conv_id, was_agent)))
        return rc;
    if (agent[0] &&
        (rc = member_put(s, conv_id, agent, SBP__ROLE__ROLE_AGENT, now_ms)))
        return rc;
    bool closing = state == SBP__CONV_STATE__STATE_CLOSED;
    p = (sb_pg_params){0};
    sb__pg_u64(&p, conv_id);
    sb__pg_int(&p, state);
    sb__pg_str(&p, group);
    sb__pg_str(&p, agent);
    sb__pg_int(&p, now_ms);
    sb__pg_bool(&p, state == SBP__CONV_STATE__STATE_QUEUED &&
                        was != SBP__CONV_STATE__STATE_QUEUED);
    sb__pg_bool(&p, state == SBP__CONV_STATE__STATE_ASSIGNED &&
                        (was != SBP__CONV_STATE__STATE_ASSIGNED || moved));
    /* closed_ts: 1 set now, 0 clear, 2 keep (closed again) */
    sb__pg_int(&p, !closing ? 0 : was == SBP__CONV_STATE__STATE_CLOSED ? 2 : 1);
    if ((rc = sb__pg_exec(s, PS_ROUTE_SET, &p, NULL))) return rc;
    return out ? sb__pg_conv_load(s, conv_id, out) : 0;
}

int sb__pg_conv_note(sb_store *base, uint64_t conv_id, const char *from,
                     const char *note)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_str(&p, note);
    sb__pg_str(&p, from);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_CONV_NOTE, &p, &r);
    if (rc) return rc;
    bool changed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return changed ? 0 : SB_E_NOT_FOUND;
}

int sb__pg_first_response(sb_store *base, uint64_t conv_id, int64_t now_ms)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    int rc;
    if (now_ms == 0 && (rc = sb__pg_int_query(s, PS_AGENT_FIRST, &p, &now_ms)))
        return rc;
    if (now_ms) {
        sb__pg_int(&p, now_ms);
        PGresult *r;
        if ((rc = sb__pg_exec(s, PS_FIRST_RESPONSE, &p, &r))) return rc;
        bool changed = strcmp(PQcmdTuples(r), "0") != 0;
        PQclear(r);
        if (changed) return 0;
    }
    uint64_t last_seq;
    bool member;
    return sb__pg_conv_member(s, conv_id, "", &last_seq, &member);
}

static int tag_step(sb_pg *s, int id, uint64_t conv_id, uint64_t seq,
                    const char *tag)
{
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_u64(&p, seq);
    sb__pg_str(&p, tag);
    return sb__pg_exec(s, id, &p, NULL);
}

/* Removals first, then additions: a tag in both lists stays. The limit is
 * checked on the result, under a savepoint that a refusal rolls back. */
int sb__pg_tag(sb_store *base, uint64_t conv_id, uint64_t seq, char *const *add,
               size_t n_add, char *const *remove, size_t n_remove)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    if (seq) sb__pg_u64(&p, seq);
    PGresult *r;
    int rc = sb__pg_exec(s, seq ? PS_MSG_ID : PS_CONV_SEQ, &p, &r);
    if (rc == 0 && PQntuples(r) == 0) rc = SB_E_NOT_FOUND;
    PQclear(r);
    if (rc || n_add + n_remove == 0) return rc;

    if ((rc = sb__store_savepoint(&s->base))) return rc;
    for (size_t i = 0; i < n_remove && rc == 0; i++)
        rc = tag_step(s, PS_TAG_DEL, conv_id, seq, remove[i]);
    for (size_t i = 0; i < n_add && rc == 0; i++)
        rc = tag_step(s, PS_TAG_ADD, conv_id, seq, add[i]);
    int64_t n = 0;
    if (rc == 0) {
        p = (sb_pg_params){0};
        sb__pg_u64(&p, conv_id);
        sb__pg_u64(&p, seq);
        rc = sb__pg_int_query(s, PS_TAG_COUNT, &p, &n);
    }
    if (rc) return rc; /* a store failure: the caller rolls back */
    if (n > SB_TAGS_MAX) {
        rc = sb__store_savepoint_end(&s->base, false);
        return rc ? rc : SB_E_TOO_LARGE;
    }
    if (seq) {
        p = (sb_pg_params){0};
        sb__pg_u64(&p, conv_id);
        sb__pg_u64(&p, seq);
        sb__pg_bool(&p, n > 0);
        if ((rc = sb__pg_exec(s, PS_MSG_TAGGED, &p, NULL))) return rc;
    }
    return sb__store_savepoint_end(&s->base, true);
}

int sb__pg_member_put(sb_store *base, uint64_t conv_id, const char *user_id,
                      Sbp__Role role, int64_t now_ms)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_CONV_SEQ, &p, &r);
    if (rc == 0 && PQntuples(r) == 0) rc = SB_E_NOT_FOUND;
    PQclear(r);
    if (rc) return rc;
    int64_t others;
    if ((rc = members_other(s, conv_id, user_id, user_id, &others))) return rc;
    if (others + 1 > SB_MEMBERS_MAX) return SB_E_TOO_LARGE;
    return member_put(s, conv_id, user_id, role, now_ms);
}

int sb__pg_member_del(sb_store *base, uint64_t conv_id, const char *user_id)
{
    return member_del(sb__pg(base), conv_id, user_id);
}

/* ---- conversation list
 * ------------------------------------------------------- */

/* The statement of one conv_list page, as the SQLite store's. Parameters:
 * $1 user, $2 state, $3 tag, $4 $5 the cursor (updated_ts, conv_id; $4
 * NULL: none), $6 rows, $7... the queued groups. */
static void list_sql(char *sql, size_t size, bool all, Sbp__ConvState state,
                     bool tag, size_t n_groups)
{
    int n = snprintf(sql, size,
                     "SELECT c.conv_id, c.updated_ts FROM convs c WHERE ");
    if (all && tag)
        n += snprintf(sql + n, size - (size_t)n,
                      "c.conv_id IN (SELECT conv_id FROM tags"
                      " WHERE tag = $3 AND seq = 0)");
    else if (all && state)
        n += snprintf(sql + n, size - (size_t)n, "c.state = $2");
    else if (all)
        n += snprintf(sql + n, size - (size_t)n, "true");
    else {
        n += snprintf(sql + n, size - (size_t)n,
                      "c.conv_id IN (SELECT conv_id FROM members"
                      " WHERE user_id = $1");
        if (n_groups) {
            n += snprintf(sql + n, size - (size_t)n,
                          " UNION SELECT conv_id FROM convs WHERE state = 3"
                          " AND kind = 2 AND grp IN (");
            for (size_t i = 0; i < n_groups; i++)
                n += snprintf(sql + n, size - (size_t)n, "%s$%zu",
                              i ? ", " : "", 7 + i);
            n += snprintf(sql + n, size - (size_t)n, ")");
        }
        n += snprintf(sql + n, size - (size_t)n, ")");
    }
    snprintf(sql + n, size - (size_t)n,
             " AND c.kind <> 3" /* notes: through their conversation */
             " AND ($2 = 0 OR c.state = $2)"
             " AND ($3 = '' OR EXISTS(SELECT 1 FROM tags t"
             " WHERE t.conv_id = c.conv_id AND t.seq = 0 AND t.tag = $3))"
             " AND ($4 IS NULL OR c.updated_ts < $4"
             " OR (c.updated_ts = $4 AND c.conv_id < $5))"
             " ORDER BY c.updated_ts DESC, c.conv_id DESC LIMIT $6");
}

/* What a list entry says for the asking user: read_seq and unread (not
 * counting its own messages) if a member, and the last message. */
static int list_entry_fill(sb_pg *s, const char *user_id, Sbp__Conversation *c)
{
    sb_pg_params p = {0};
    sb__pg_u64(&p, c->conv_id);
    sb__pg_str(&p, user_id);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_MEMBER_READ, &p, &r);
    if (rc) return rc;
    if (PQntuples(r)) {
        c->read_seq = (uint64_t)sb__pg_get_i64(r, 0, 0);
        c->unread = (uint64_t)sb__pg_get_i64(r, 0, 1);
    }
    PQclear(r);
    if (c->last_seq == 0) return 0;
    return sb__pg_msg_load(s, c->conv_id, c->last_seq, &c->last_message);
}

int sb__pg_conv_list(sb_store *base, const char *user_id, bool all,
                     Sbp__ConvState state, const char *tag,
                     char *const *queued_groups, size_t n_groups,
                     const sb_store_list_after *after, uint32_t limit,
                     Sbp__ConvListResp **out)
{
    sb_pg *s = sb__pg(base);
    bool own = false;
    PGresult *res = NULL;
    Sbp__ConvListResp *r = malloc(sizeof *r);
    int rc = -ENOMEM;
    if (!r) return rc;
    sbp__conv_list_resp__init(r);
    if (!(r->convs = malloc(limit * sizeof *r->convs))) goto err;
    if ((rc = sb__pg_read_begin(s, &own))) goto err;
    char sql[1024 + SB_STORE_LIST_GROUPS_MAX * 8];
    list_sql(sql, sizeof sql, all, state, tag[0] != 0, n_groups);
    /* Six parameters, then the groups: more than an sb_pg_params holds. */
    char num[4][24];
    const char *v[6 + SB_STORE_LIST_GROUPS_MAX] = {user_id, num[0], tag};
    snprintf(num[0], sizeof num[0], "%d", (int)state);
    if (after->set) {
        snprintf(num[1], sizeof num[1], "%lld", (long long)after->ts);
        snprintf(num[2], sizeof num[2], "%llu",
                 (unsigned long long)after->conv_id);
        v[3] = num[1];
        v[4] = num[2];
    }
    snprintf(num[3], sizeof num[3], "%llu", (unsigned long long)limit + 1);
    v[5] = num[3];
    for (size_t i = 0; i < n_groups; i++)
        v[6 + i] = queued_groups[i];
    /* text user, int state, text tag, bigint cursor, rows, text groups */
    Oid types[6 + SB_STORE_LIST_GROUPS_MAX] = {25, 23, 25, 20, 20, 20};
    for (size_t i = 0; i < n_groups; i++)
        types[6 + i] = 25;
    if ((rc = sb__pg_exec_params(s, sql, 6 + (int)n_groups, types, v, NULL,
                                 NULL, &res)))
        goto err;
    int64_t last_ts = 0;
    for (int row = 0; row < PQntuples(res); row++) {
        if (r->n_convs == limit) {
            r->more = true;
            break;
        }
        Sbp__Conversation *c;
        if ((rc = sb__pg_conv_load(s, (uint64_t)sb__pg_get_i64(res, row, 0),
                                   &c)))
            goto err;
        r->convs[r->n_convs++] = c;
        last_ts = sb__pg_get_i64(res, row, 1);
        if ((rc = list_entry_fill(s, user_id, c))) goto err;
    }
    if (r->n_convs) {
        char next[48];
        snprintf(next, sizeof next, "%lld:%llu", (long long)last_ts,
                 (unsigned long long)r->convs[r->n_convs - 1]->conv_id);
        if (!(r->next_cursor = strdup(next))) {
            rc = -ENOMEM;
            goto err;
        }
    }
    PQclear(res);
    sb__pg_read_end(s, own);
    *out = r;
    return 0;
err:
    PQclear(res);
    sb__pg_read_end(s, own);
    sbp__conv_list_resp__free_unpacked(r, NULL);
    return rc;
}

/* ---- service conversations
 * --------------------------------------------------- */

int sb__pg_service_convs(sb_store *base, Sbp__ConvState state,
                         Sbp__Conversation ***out, size_t *n_out)
{
    sb_pg *s = sb__pg(base);
    bool own;
    int rc = sb__pg_read_begin(s, &own);
    if (rc) return rc;
    sb_pg_params p = {0};
    sb__pg_int(&p, state);
    PGresult *r;
    Sbp__Conversation **list = NULL;
    size_t n = 0;
    if ((rc = sb__pg_exec(s, PS_SVC_CONVS, &p, &r))) goto out;
    int rows = PQntuples(r);
    rc = -ENOMEM;
    if (rows && !(list = calloc((size_t)rows, sizeof *list))) goto out;
    rc = 0;
    for (int i = 0; rc == 0 && i < rows; i++) {
        rc = sb__pg_conv_load(s, (uint64_t)sb__pg_get_i64(r, i, 0), &list[n]);
        if (rc == 0) n++;
    }
out:
    PQclear(r);
    sb__pg_read_end(s, own);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            sbp__conversation__free_unpacked(list[i], NULL);
        free(list);
        return rc;
    }
    *out = list;
    *n_out = n;
    return 0;
}
