/* The SQLite backend's agent side: a service conversation's notes
 * conversation (found by notes_of, made with none of the service
 * conversation's members) and contacts (one row per user id; the
 * attributes packed as a Sbp__Contact holding only them). Rare next to
 * messages: the statements are prepared per call. */
#include "sb_sqlite_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"

int sb__sqlite_notes_find(sb_store *base, uint64_t conv_id, uint64_t *id)
{
    sb_sqlite *s = sb__sqlite(base);
    static const char SQL[] = "SELECT conv_id FROM convs"
                              " WHERE notes_of = ?1 AND kind = 3";
    sqlite3_stmt *st;
    bool own;
    *id = 0;
    int rc = sb__sqlite_read_begin(s, &own);
    if (rc) return rc;
    if ((rc = sb__sqlite_prepare(s, SQL, sizeof SQL - 1, &st)) == 0) {
        sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
        int64_t v = 0;
        rc = sb__sqlite_int_query(st, &v);
        *id = (uint64_t)v;
        sqlite3_finalize(st);
    }
    sb__sqlite_read_end(s, own);
    return rc;
}

int sb__sqlite_notes_create(sb_store *base, uint64_t conv_id, const char *desk,
                            int64_t now_ms, uint64_t *id)
{
    sb_sqlite *s = sb__sqlite(base);
    static const char SQL[] =
        "INSERT INTO convs(kind, state, title, last_seq, created_ts,"
        " updated_ts, desk, notes_of) VALUES(3, 1, '', 0, ?2, ?2, ?3, ?1)";
    sqlite3_stmt *st;
    int rc = sb__sqlite_prepare(s, SQL, sizeof SQL - 1, &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 2, now_ms);
    sb__sqlite_bind_str(st, 3, desk);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SB_E_STORE;
    sqlite3_finalize(st);
    if (rc == 0) *id = (uint64_t)sqlite3_last_insert_rowid(s->db);
    return rc;
}

/* Moves the attributes packed in p[0..n) into c. */
static int attrs_unpack(const void *p, size_t n, Sbp__Contact *c)
{
    if (!p || n == 0) return 0;
    Sbp__Contact *a = sbp__contact__unpack(NULL, n, p);
    if (!a) return SB_E_STORE;
    c->attributes = a->attributes;
    c->n_attributes = a->n_attributes;
    a->attributes = NULL;
    a->n_attributes = 0;
    sbp__contact__free_unpacked(a, NULL);
    return 0;
}

int sb__sqlite_contact_get(sb_store *base, const char *user_id,
                           Sbp__Contact **out)
{
    sb_sqlite *s = sb__sqlite(base);
    static const char SQL[] =
        "SELECT name, email, attrs, verified, updated_ts, updated_by"
        " FROM contacts WHERE user_id = ?1";
    sqlite3_stmt *st = NULL;
    Sbp__Contact *c = NULL;
    bool own;
    *out = NULL;
    int rc = sb__sqlite_read_begin(s, &own);
    if (rc) return rc;
    if ((rc = sb__sqlite_prepare(s, SQL, sizeof SQL - 1, &st))) goto out;
    sb__sqlite_bind_str(st, 1, user_id);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
        goto out;
    }
    rc = -ENOMEM;
    if (!(c = malloc(sizeof *c))) goto out;
    sbp__contact__init(c);
    if (!(c->user_id = strdup(user_id))) goto out;
    c->verified = sqlite3_column_int(st, 3) != 0;
    c->updated_ts = sqlite3_column_int64(st, 4);
    if ((rc = sb__sqlite_col_text(st, 0, &c->name)) ||
        (rc = sb__sqlite_col_text(st, 1, &c->email)) ||
        (rc = sb__sqlite_col_text(st, 5, &c->updated_by)) ||
        (rc = attrs_unpack(sqlite3_column_blob(st, 2),
                           (size_t)sqlite3_column_bytes(st, 2), c)))
        goto out;
    *out = c;
    c = NULL;
out:
    if (c) sbp__contact__free_unpacked(c, NULL);
    sqlite3_finalize(st);
    sb__sqlite_read_end(s, own);
    return rc;
}

int sb__sqlite_contact_write(sb_store *base, const Sbp__Contact *c)
{
    sb_sqlite *s = sb__sqlite(base);
    static const char SQL[] =
        "INSERT INTO contacts(user_id, name, email, attrs, verified,"
        " updated_ts, updated_by) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        " ON CONFLICT(user_id) DO UPDATE SET name = excluded.name,"
        " email = excluded.email, attrs = excluded.attrs,"
        " verified = excluded.verified, updated_ts = excluded.updated_ts,"
        " updated_by = excluded.updated_by";
    Sbp__Contact only = SBP__CONTACT__INIT;
    only.attributes = c->attributes;
    only.n_attributes = c->n_attributes;
    size_t len = c->n_attributes ? sbp__contact__get_packed_size(&only) : 0;
    uint8_t *packed = len ? malloc(len) : NULL;
    if (len && !packed) return -ENOMEM;
    if (len) sbp__contact__pack(&only, packed);
    sqlite3_stmt *st;
    int rc = sb__sqlite_prepare(s, SQL, sizeof SQL - 1, &st);
    if (rc == 0) {
        sb__sqlite_bind_str(st, 1, c->user_id);
        sb__sqlite_bind_str(st, 2, c->name);
        sb__sqlite_bind_str(st, 3, c->email);
        if (len)
            sqlite3_bind_blob(st, 4, packed, (int)len, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 4);
        sqlite3_bind_int(st, 5, c->verified);
        sqlite3_bind_int64(st, 6, c->updated_ts);
        sb__sqlite_bind_str(st, 7, c->updated_by);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SB_E_STORE;
        sqlite3_finalize(st);
    }
    free(packed);
    return rc;
}

int sb__sqlite_customer_convs(sb_store *base, const char *user_id,
                              uint32_t limit, uint64_t *ids, size_t *n)
{
    sb_sqlite *s = sb__sqlite(base);
    static const char SQL[] = "SELECT conv_id FROM convs WHERE customer = ?1"
                              " AND kind = 2 ORDER BY conv_id DESC LIMIT ?2";
    sqlite3_stmt *st;
    bool own;
    *n = 0;
    int rc = sb__sqlite_read_begin(s, &own);
    if (rc) return rc;
    if ((rc = sb__sqlite_prepare(s, SQL, sizeof SQL - 1, &st)) == 0) {
        sb__sqlite_bind_str(st, 1, user_id);
        sqlite3_bind_int64(st, 2, limit);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW && *n < limit)
            ids[(*n)++] = (uint64_t)sqlite3_column_int64(st, 0);
        if (step != SQLITE_ROW && step != SQLITE_DONE) rc = SB_E_STORE;
        sqlite3_finalize(st);
    }
    sb__sqlite_read_end(s, own);
    return rc;
}
