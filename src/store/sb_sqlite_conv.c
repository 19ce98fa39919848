/* The SQLite backend's conversations: users, conversations and their
 * members, device cursors and read receipts, the customer-service state
 * (service conversations, routing, first response), tags, and the paged
 * conversation list. */
#include "sb_sqlite_int.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"

int sb__sqlite_user_upsert(sb_store *base, const char *user_id, Sbp__Role role,
                           const char *locale, int64_t now_ms)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st = s->st[ST_USER_UPSERT];
    sb__sqlite_bind_str(st, 1, user_id);
    sqlite3_bind_int(st, 2, (int)role);
    sb__sqlite_bind_str(st, 3, locale);
    sqlite3_bind_int64(st, 4, now_ms);
    return sb__sqlite_step_reset(st);
}

static int members_load(sb_sqlite *s, Sbp__Conversation *c)
{
    sqlite3_stmt *st = s->st[ST_MEMBERS_GET];
    size_t cap = 0;
    int rc = 0;
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(c->conv_id));
    sqlite3_bind_int(st, 2, SB_MEMBERS_MAX);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (c->n_members == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            Sbp__Member **a = realloc(c->members, ncap * sizeof *a);
            if (!a) goto nomem;
            c->members = a;
            cap = ncap;
        }
        Sbp__Member *m = malloc(sizeof *m);
        if (!m) goto nomem;
        sbp__member__init(m);
        c->members[c->n_members++] = m;
        m->role = (Sbp__Role)sqlite3_column_int(st, MB_ROLE);
        m->read_seq = (uint64_t)sqlite3_column_int64(st, MB_READ_SEQ);
        m->delivered_seq = (uint64_t)sqlite3_column_int64(st, MB_DELIVERED_SEQ);
        if (sb__sqlite_col_text(st, MB_USER_ID, &m->user_id)) goto nomem;
    }
    rc = rc == SQLITE_DONE ? 0 : SB_E_STORE;
    sqlite3_reset(st);
    return rc;
nomem:
    sqlite3_reset(st);
    return -ENOMEM;
}

/* Loads a conversation with its members (no transaction of its own). */
int sb__sqlite_conv_load(sb_sqlite *s, uint64_t conv_id,
                         Sbp__Conversation **out)
{
    sqlite3_stmt *st = s->st[ST_CONV_GET];
    Sbp__Conversation *c = NULL;
    int rc;
    *out = NULL;
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
        goto err;
    }
    c = malloc(sizeof *c);
    if (!c) {
        rc = -ENOMEM;
        goto err;
    }
    sbp__conversation__init(c);
    c->conv_id = conv_id;
    c->kind = (Sbp__ConvKind)sqlite3_column_int(st, CC_KIND);
    c->state = (Sbp__ConvState)sqlite3_column_int(st, CC_STATE);
    c->last_seq = (uint64_t)sqlite3_column_int64(st, CC_LAST_SEQ);
    c->created_ts = sqlite3_column_int64(st, CC_CREATED_TS);
    c->updated_ts = sqlite3_column_int64(st, CC_UPDATED_TS);
    if (c->kind == SBP__CONV_KIND__CONV_SERVICE) {
        int64_t first = sqlite3_column_int64(st, CC_FIRST_RESPONSE_TS);
        int64_t closed = sqlite3_column_int64(st, CC_CLOSED_TS);
        c->first_response_ms = first ? first - c->created_ts : 0;
        c->resolution_ms = closed ? closed - c->created_ts : 0;
        c->csat_rating = (uint32_t)sqlite3_column_int(st, CC_CSAT_RATING);
        if ((rc = sb__sqlite_col_text(st, CC_CSAT_COMMENT, &c->csat_comment)) ||
            (rc = sb__sqlite_col_text(st, CC_LAST_AGENT, &c->last_agent)))
            goto err;
    } else if (c->kind == SBP__CONV_KIND__CONV_NOTES) {
        c->notes_of = (uint64_t)sqlite3_column_int64(st, CC_NOTES_OF);
    }
    if ((rc = sb__sqlite_col_text(st, CC_TITLE, &c->title)) ||
        (rc = sb__sqlite_col_text(st, CC_DESK, &c->desk)) ||
        (rc = sb__sqlite_col_text(st, CC_GROUP, &c->group)) ||
        (rc = sb__sqlite_col_text(st, CC_AGENT, &c->agent)) ||
        (rc = sb__sqlite_col_text(st, CC_CUSTOMER, &c->customer)) ||
        (rc = sb__sqlite_col_text(st, CC_TRANSFER_NOTE, &c->transfer_note)) ||
        (rc = sb__sqlite_col_text(st, CC_TRANSFER_FROM, &c->transfer_from)))
        goto err;
    sqlite3_reset(st);
    if ((rc = members_load(s, c))) goto err;
    if ((rc = sb__sqlite_tags_load(s, conv_id, 0, &c->tags, &c->n_tags)))
        goto err;
    *out = c;
    return 0;
err:
    sqlite3_reset(st);
    if (c) sbp__conversation__free_unpacked(c, NULL);
    return rc;
}

static int conv_insert(sb_sqlite *s, Sbp__ConvKind kind, Sbp__ConvState state,
                       const char *title, const char *desk, const char *group,
                       const char *customer, int64_t now_ms, uint64_t *conv_id)
{
    sqlite3_stmt *st = s->st[ST_CONV_INSERT];
    sqlite3_bind_int(st, 1, (int)kind);
    sqlite3_bind_int(st, 2, (int)state);
    sb__sqlite_bind_str(st, 3, title);
    sqlite3_bind_int64(st, 4, now_ms);
    sb__sqlite_bind_str(st, 5, desk);
    sb__sqlite_bind_str(st, 6, group);
    sb__sqlite_bind_str(st, 7, customer);
    if (sb__sqlite_step_reset(st)) return SB_E_STORE;
    *conv_id = (uint64_t)sqlite3_last_insert_rowid(s->db);
    return 0;
}

int sb__sqlite_user_role(sb_store *base, const char *user_id, Sbp__Role *role)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st = s->st[ST_USER_ROLE];
    sb__sqlite_bind_str(st, 1, user_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *role = (Sbp__Role)sqlite3_column_int(st, 0);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    }
    sqlite3_reset(st);
    return rc;
}

int sb__sqlite_conv_create(sb_store *base, Sbp__ConvKind kind,
                           const char *title, const char *const *user_ids,
                           const Sbp__Role *role, size_t n,
                           const char *customer, int64_t now_ms,
                           Sbp__Conversation **out)
{
    sb_sqlite *s = sb__sqlite(base);
    /* A service conversation starts with the bot (DESIGN.md section 4). */
    Sbp__ConvState state = kind == SBP__CONV_KIND__CONV_SERVICE
                               ? SBP__CONV_STATE__STATE_BOT
                               : SBP__CONV_STATE__STATE_OPEN;
    uint64_t conv_id;
    int rc =
        conv_insert(s, kind, state, title, "", "", customer, now_ms, &conv_id);
    if (rc) return rc;

    sqlite3_stmt *st = s->st[ST_MEMBER_INSERT];
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
        sb__sqlite_bind_str(st, 2, user_ids[i]);
        sqlite3_bind_int(st, 3, (int)role[i]);
        sqlite3_bind_int64(st, 4, now_ms);
        if (sb__sqlite_step_reset(st)) return SB_E_STORE;
    }
    return sb__sqlite_conv_load(s, conv_id, out);
}

int sb__sqlite_conv_member(sb_sqlite *s, uint64_t conv_id, const char *user_id,
                           uint64_t *last_seq, bool *member)
{
    sqlite3_stmt *st = s->st[ST_CONV_MEMBER];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sb__sqlite_bind_str(st, 2, user_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *last_seq = (uint64_t)sqlite3_column_int64(st, 0);
        *member = sqlite3_column_int(st, 1) != 0;
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    }
    sqlite3_reset(st);
    return rc;
}

/* The device cursor is kept for non-members too (an admin reading
 * everything); only a member has a delivered_seq to raise. A seq beyond the
 * conversation's last is refused: no device can have it. */
int sb__sqlite_cursor_ack(sb_store *base, const char *user_id,
                          const char *device_id, uint64_t conv_id, uint64_t seq)
{
    sb_sqlite *s = sb__sqlite(base);
    uint64_t last_seq = 0;
    bool member = false;
    int rc = sb__sqlite_conv_member(s, conv_id, user_id, &last_seq, &member);
    if (rc) return rc;
    if (seq > last_seq) return SB_E_INVALID;
    if (seq == 0) return 0;

    sqlite3_stmt *st = s->st[ST_CURSOR_UPSERT];
    sb__sqlite_bind_str(st, 1, user_id);
    sb__sqlite_bind_str(st, 2, device_id);
    sqlite3_bind_int64(st, 3, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 4, sb__sqlite_i64(seq));
    if (sb__sqlite_step_reset(st)) return SB_E_STORE;
    if (!member) return 0;
    st = s->st[ST_DELIVERED_RAISE];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sb__sqlite_bind_str(st, 2, user_id);
    sqlite3_bind_int64(st, 3, sb__sqlite_i64(seq));
    return sb__sqlite_step_reset(st);
}

/* What was read was delivered: read_seq raises delivered_seq with it.
 * SB_E_NOT_FOUND without the conversation, SB_E_INVALID beyond last_seq. */
int sb__sqlite_read_set(sb_store *base, uint64_t conv_id, const char *user_id,
                        uint64_t seq)
{
    sb_sqlite *s = sb__sqlite(base);
    uint64_t last_seq = 0;
    bool member = false;
    int rc = sb__sqlite_conv_member(s, conv_id, user_id, &last_seq, &member);
    if (rc) return rc;
    if (!member) return SB_E_FORBIDDEN;
    if (seq > last_seq) return SB_E_INVALID;
    sqlite3_stmt *st = s->st[ST_READ_RAISE];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sb__sqlite_bind_str(st, 2, user_id);
    sqlite3_bind_int64(st, 3, sb__sqlite_i64(seq));
    return sb__sqlite_step_reset(st);
}

int sb__sqlite_conv_get(sb_store *base, uint64_t conv_id,
                        Sbp__Conversation **out)
{
    sb_sqlite *s = sb__sqlite(base);
    bool own;
    int rc = sb__sqlite_read_begin(s, &own);
    if (rc) return rc;
    rc = sb__sqlite_conv_load(s, conv_id, out);
    sb__sqlite_read_end(s, own);
    return rc;
}

/* ---- customer service -------------------------------------------------- */

int sb__sqlite_service_open(sb_store *base, const char *customer,
                            const char *desk, const char *group, int64_t now_ms,
                            Sbp__Conversation **out, bool *created)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st = s->st[ST_SVC_FIND];
    sb__sqlite_bind_str(st, 1, customer);
    sb__sqlite_bind_str(st, 2, desk);
    sqlite3_bind_int(st, 3, SBP__CONV_KIND__CONV_SERVICE);
    sqlite3_bind_int(st, 4, SBP__CONV_STATE__STATE_CLOSED);
    int64_t found;
    int rc = sb__sqlite_int_query(st, &found);
    if (rc) return rc;
    if (found) return sb__sqlite_conv_load(s, (uint64_t)found, out);

    uint64_t conv_id;
    rc =
        conv_insert(s, SBP__CONV_KIND__CONV_SERVICE, SBP__CONV_STATE__STATE_BOT,
                    "", desk, group, customer, now_ms, &conv_id);
    if (rc) return rc;
    st = s->st[ST_MEMBER_INSERT];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sb__sqlite_bind_str(st, 2, customer);
    sqlite3_bind_int(st, 3, SBP__ROLE__ROLE_CUSTOMER);
    sqlite3_bind_int64(st, 4, now_ms);
    if (sb__sqlite_step_reset(st)) return SB_E_STORE;
    if ((rc = sb__sqlite_conv_load(s, conv_id, out))) return rc;
    *created = true;
    return 0;
}

/* A transfer (ASSIGNED to another agent) counts as entering ASSIGNED:
 * assigned_ts is when the current agent got the conversation. */
int sb__sqlite_conv_route(sb_store *base, uint64_t conv_id,
                          Sbp__ConvState state, const char *group,
                          const char *agent, int64_t now_ms,
                          Sbp__Conversation **out)
{
    sb_sqlite *s = sb__sqlite(base);

    sqlite3_stmt *st = s->st[ST_ROUTE_GET];
    char was_agent[SB_ID_BYTES_MAX + 1] = "";
    Sbp__ConvState was = SBP__CONV_STATE__STATE_UNSPECIFIED;
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        was = (Sbp__ConvState)sqlite3_column_int(st, 0);
        const char *a = (const char *)sqlite3_column_text(st, 1);
        snprintf(was_agent, sizeof was_agent, "%s", a ? a : "");
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    bool moved = strcmp(was_agent, agent) != 0;
    if (agent[0]) {
        /* Members other than the outgoing and incoming agents, plus one. */
        int64_t others;
        st = s->st[ST_MEMBER_COUNT];
        sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
        sb__sqlite_bind_str(st, 2, was_agent);
        sb__sqlite_bind_str(st, 3, agent);
        if ((rc = sb__sqlite_int_query(st, &others))) return rc;
        if (others + 1 > SB_MEMBERS_MAX) return SB_E_INVALID;
    }

    if (moved && was_agent[0]) {
        st = s->st[ST_MEMBER_DEL];
        sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
        sb__sqlite_bind_str(st, 2, was_agent);
        if (sb__sqlite_step_reset(st)) return SB_E_STORE;
    }
    if (agent[0]) {
        st = s->st[ST_MEMBER_AGENT];
        sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
        sb__sqlite_bind_str(st, 2, agent);
        sqlite3_bind_int(st, 3, SBP__ROLE__ROLE_AGENT);
        sqlite3_bind_int64(st, 4, now_ms);
        if (sb__sqlite_step_reset(st)) return SB_E_STORE;
    }
    bool closing = state == SBP__CONV_STATE__STATE_CLOSED;
    st = s->st[ST_ROUTE_SET];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int(st, 2, (int)state);
    sb__sqlite_bind_str(st, 3, group);
    sb__sqlite_bind_str(st, 4, agent);
    sqlite3_bind_int64(st, 5, now_ms);
    sqlite3_bind_int(st, 6,
                     state == SBP__CONV_STATE__STATE_QUEUED &&
                         was != SBP__CONV_STATE__STATE_QUEUED);
    sqlite3_bind_int(st, 7,
                     state == SBP__CONV_STATE__STATE_ASSIGNED &&
                         (was != SBP__CONV_STATE__STATE_ASSIGNED || moved));
    /* closed_ts: 1 set now, 0 clear, 2 keep (closed again) */
    sqlite3_bind_int(st, 8,
                     !closing                               ? 0
                     : was == SBP__CONV_STATE__STATE_CLOSED ? 2
                                                            : 1);
    if (sb__sqlite_step_reset(st)) return SB_E_STORE;
    return out ? sb__sqlite_conv_load(s, conv_id, out) : 0;
}

int sb__sqlite_conv_note(sb_store *base, uint64_t conv_id, const char *from,
                         const char *note)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st = s->st[ST_CONV_NOTE];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sb__sqlite_bind_str(st, 2, note);
    sb__sqlite_bind_str(st, 3, from);
    if (sb__sqlite_step_reset(st)) return SB_E_STORE;
    return sqlite3_changes(s->db) > 0 ? 0 : SB_E_NOT_FOUND;
}

int sb__sqlite_first_response(sb_store *base, uint64_t conv_id, int64_t now_ms)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st = s->st[ST_AGENT_FIRST];
    if (now_ms == 0) {
        sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
        int rc = sb__sqlite_int_query(st, &now_ms);
        if (rc) return rc;
    }
    st = s->st[ST_FIRST_RESPONSE];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 2, now_ms);
    if (now_ms && sb__sqlite_step_reset(st)) return SB_E_STORE;
    if (now_ms && sqlite3_changes(s->db) > 0) return 0;
    uint64_t last_seq;
    bool member;
    return sb__sqlite_conv_member(s, conv_id, "", &last_seq, &member);
}

static int tag_step(sb_sqlite *s, int id, uint64_t conv_id, uint64_t seq,
                    const char *tag)
{
    sqlite3_stmt *st = s->st[id];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 2, sb__sqlite_i64(seq));
    sb__sqlite_bind_str(st, 3, tag);
    return sb__sqlite_step_reset(st);
}

/* Removals first, then additions: a tag in both lists stays. The limit is
 * checked on the result, under a savepoint that a refusal rolls back. */
int sb__sqlite_tag(sb_store *base, uint64_t conv_id, uint64_t seq,
                   char *const *add, size_t n_add, char *const *remove,
                   size_t n_remove)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st = s->st[seq ? ST_MSG_ID : ST_CONV_SEQ];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    if (seq) sqlite3_bind_int64(st, 2, sb__sqlite_i64(seq));
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    if (n_add + n_remove == 0) return 0;

    if ((rc = sb__store_savepoint(&s->base))) return rc;
    for (size_t i = 0; i < n_remove && rc == 0; i++)
        rc = tag_step(s, ST_TAG_DEL, conv_id, seq, remove[i]);
    for (size_t i = 0; i < n_add && rc == 0; i++)
        rc = tag_step(s, ST_TAG_ADD, conv_id, seq, add[i]);
    int64_t n = 0;
    if (rc == 0) {
        st = s->st[ST_TAG_COUNT];
        sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
        sqlite3_bind_int64(st, 2, sb__sqlite_i64(seq));
        rc = sb__sqlite_int_query(st, &n);
    }
    if (rc) return rc; /* a store failure: the caller rolls back */
    if (n > SB_TAGS_MAX) {
        rc = sb__store_savepoint_end(&s->base, false);
        return rc ? rc : SB_E_TOO_LARGE;
    }
    if (seq) {
        st = s->st[ST_MSG_TAGGED];
        sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
        sqlite3_bind_int64(st, 2, sb__sqlite_i64(seq));
        sqlite3_bind_int(st, 3, n > 0);
        if (sb__sqlite_step_reset(st)) return SB_E_STORE;
    }
    return sb__store_savepoint_end(&s->base, true);
}

/* ---- conversation list ------------------------------------------------- */

/* The statement of one conv_list page. Parameters: ?1 user, ?2 state,
 * ?3 tag, ?4 ?5 the cursor (updated_ts, conv_id; ?4 NULL: none), ?6 rows,
 * ?7 QUEUED, ?8 CONV_SERVICE, ?9... the queued groups. The candidates come
 * from an index (the user's memberships, the queues of the groups, a tag,
 * a state) whenever one fits; keyset order makes the pages stable. */
static int list_prepare(sb_sqlite *s, bool all, Sbp__ConvState state, bool tag,
                        size_t n_groups, sqlite3_stmt **out)
{
    char sql[1024 + SB_STORE_LIST_GROUPS_MAX * 8];
    size_t n = 0;
    sb__sqlite_sql_add(sql, sizeof sql, &n,
                       "SELECT c.conv_id, c.updated_ts FROM convs c WHERE ");
    if (all && tag) {
        sb__sqlite_sql_add(sql, sizeof sql, &n,
                           "c.conv_id IN (SELECT conv_id FROM tags"
                           " WHERE tag = ?3 AND seq = 0)");
    } else if (all && state) {
        sb__sqlite_sql_add(sql, sizeof sql, &n, "c.state = ?2");
    } else if (all) {
        sb__sqlite_sql_add(sql, sizeof sql, &n, "1");
    } else {
        sb__sqlite_sql_add(
            sql, sizeof sql, &n,
            "c.conv_id IN (SELECT conv_id FROM members WHERE user_id = ?1");
        if (n_groups) {
            sb__sqlite_sql_add(
                sql, sizeof sql, &n,
                " UNION SELECT conv_id FROM convs WHERE state = ?7"
                " AND kind = ?8 AND grp IN (");
            for (size_t i = 0; i < n_groups; i++)
                sb__sqlite_sql_add(sql, sizeof sql, &n, "%s?%zu", i ? ", " : "",
                                   9 + i);
            sb__sqlite_sql_add(sql, sizeof sql, &n, ")");
        }
        sb__sqlite_sql_add(sql, sizeof sql, &n, ")");
    }
    bool ok = sb__sqlite_sql_add(
        sql, sizeof sql, &n,
        " AND c.kind <> 3" /* notes are read through their conversation */
        " AND (?2 = 0 OR c.state = ?2)"
        " AND (?3 = '' OR EXISTS(SELECT 1 FROM tags t WHERE t.conv_id ="
        " c.conv_id AND t.seq = 0 AND t.tag = ?3))"
        " AND (?4 IS NULL OR c.updated_ts < ?4 OR (c.updated_ts = ?4"
        " AND c.conv_id < ?5))"
        " ORDER BY c.updated_ts DESC, c.conv_id DESC LIMIT ?6");
    assert(ok); /* the buffer holds the longest statement */
    (void)ok;
    return sb__sqlite_prepare(s, sql, n, out);
}

/* Fills in what a list entry says for the asking user: read_seq and
 * unread (not counting its own messages) if a member, and the last
 * message. */
static int list_entry_fill(sb_sqlite *s, const char *user_id,
                           Sbp__Conversation *c)
{
    sqlite3_stmt *st = s->st[ST_MEMBER_READ];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(c->conv_id));
    sb__sqlite_bind_str(st, 2, user_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        c->read_seq = (uint64_t)sqlite3_column_int64(st, 0);
        c->unread = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SB_E_STORE;
    if (c->last_seq == 0) return 0;
    return sb__sqlite_msg_load(s, c->conv_id, c->last_seq, &c->last_message);
}

int sb__sqlite_conv_list(sb_store *base, const char *user_id, bool all,
                         Sbp__ConvState state, const char *tag,
                         char *const *queued_groups, size_t n_groups,
                         const sb_store_list_after *after, uint32_t limit,
                         Sbp__ConvListResp **out)
{
    sb_sqlite *s = sb__sqlite(base);
    bool own = false;
    sqlite3_stmt *st = NULL;
    Sbp__ConvListResp *r = malloc(sizeof *r);
    int rc = -ENOMEM;
    if (!r) return rc;
    sbp__conv_list_resp__init(r);
    if (!(r->convs = malloc(limit * sizeof *r->convs))) goto err;
    if ((rc = sb__sqlite_read_begin(s, &own))) goto err;
    if ((rc = list_prepare(s, all, state, tag[0] != 0, n_groups, &st)))
        goto err;
    sb__sqlite_bind_str(st, 1, user_id);
    sqlite3_bind_int(st, 2, (int)state);
    sb__sqlite_bind_str(st, 3, tag);
    if (after->set) {
        sqlite3_bind_int64(st, 4, after->ts);
        sqlite3_bind_int64(st, 5, sb__sqlite_i64(after->conv_id));
    }
    sqlite3_bind_int64(st, 6, (sqlite3_int64)limit + 1);
    if (n_groups) {
        sqlite3_bind_int(st, 7, SBP__CONV_STATE__STATE_QUEUED);
        sqlite3_bind_int(st, 8, SBP__CONV_KIND__CONV_SERVICE);
        for (size_t i = 0; i < n_groups; i++)
            sb__sqlite_bind_str(st, 9 + (int)i, queued_groups[i]);
    }
    int step;
    int64_t last_ts = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (r->n_convs == limit) {
            r->more = true;
            break;
        }
        Sbp__Conversation *c;
        if ((rc = sb__sqlite_conv_load(s, (uint64_t)sqlite3_column_int64(st, 0),
                                       &c)))
            goto err;
        r->convs[r->n_convs++] = c;
        last_ts = sqlite3_column_int64(st, 1);
        if ((rc = list_entry_fill(s, user_id, c))) goto err;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = SB_E_STORE;
        goto err;
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
    sqlite3_finalize(st);
    sb__sqlite_read_end(s, own);
    *out = r;
    return 0;
err:
    sqlite3_finalize(st);
    sb__sqlite_read_end(s, own);
    sbp__conv_list_resp__free_unpacked(r, NULL);
    return rc;
}

/* ---- service conversations --------------------------------------------- */

int sb__sqlite_service_convs(sb_store *base, Sbp__ConvState state,
                             Sbp__Conversation ***out, size_t *n_out)
{
    sb_sqlite *s = sb__sqlite(base);
    Sbp__Conversation **list = NULL;
    size_t n = 0, cap = 0;
    bool own;
    int rc = sb__sqlite_read_begin(s, &own);
    if (rc) return rc;
    sqlite3_stmt *st = s->st[ST_SVC_CONVS];
    sqlite3_bind_int(st, 1, (int)state);
    sqlite3_bind_int(st, 2, SBP__CONV_KIND__CONV_SERVICE);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            Sbp__Conversation **a = realloc(list, ncap * sizeof *a);
            if (!a) {
                rc = -ENOMEM;
                goto err;
            }
            list = a;
            cap = ncap;
        }
        if ((rc = sb__sqlite_conv_load(s, (uint64_t)sqlite3_column_int64(st, 0),
                                       &list[n])))
            goto err;
        n++;
    }
    if (step != SQLITE_DONE) {
        rc = SB_E_STORE;
        goto err;
    }
    sqlite3_reset(st);
    sb__sqlite_read_end(s, own);
    *out = list;
    *n_out = n;
    return 0;
err:
    sqlite3_reset(st);
    sb__sqlite_read_end(s, own);
    for (size_t i = 0; i < n; i++)
        sbp__conversation__free_unpacked(list[i], NULL);
    free(list);
    return rc;
}

/* ---- members other than the customer and the agent --------------------- */

int sb__sqlite_member_put(sb_store *base, uint64_t conv_id, const char *user_id,
                          Sbp__Role role, int64_t now_ms)
{
    sb_sqlite *s = sb__sqlite(base);
    int64_t last;
    sqlite3_stmt *st = s->st[ST_CONV_SEQ];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    /* Members other than this one, plus one. */
    st = s->st[ST_MEMBER_COUNT];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sb__sqlite_bind_str(st, 2, user_id);
    sb__sqlite_bind_str(st, 3, user_id);
    if ((rc = sb__sqlite_int_query(st, &last))) return rc;
    if (last + 1 > SB_MEMBERS_MAX) return SB_E_TOO_LARGE;
    st = s->st[ST_MEMBER_AGENT];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sb__sqlite_bind_str(st, 2, user_id);
    sqlite3_bind_int(st, 3, (int)role);
    sqlite3_bind_int64(st, 4, now_ms);
    return sb__sqlite_step_reset(st);
}

int sb__sqlite_member_del(sb_store *base, uint64_t conv_id, const char *user_id)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st = s->st[ST_MEMBER_DEL];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sb__sqlite_bind_str(st, 2, user_id);
    return sb__sqlite_step_reset(st);
}
