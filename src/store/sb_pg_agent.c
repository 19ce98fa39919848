/* The PostgreSQL backend's agent side (as sb_sqlite_agent.c): notes
 * conversations found by notes_of and made bare, and contacts with their
 * attributes packed as a Sbp__Contact. Two gateways making the same notes
 * conversation at once: the unique index on notes_of refuses the second,
 * whose batch runs again (SB_E_RETRY) and finds the first's. Statements
 * are made per call. */
#include "sb_pg_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"

int sb__pg_notes_find(sb_store *base, uint64_t conv_id, uint64_t *id)
{
    sb_pg *s = sb__pg(base);
    bool own;
    *id = 0;
    int rc = sb__pg_read_begin(s, &own);
    if (rc) return rc;
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    PGresult *r;
    rc = sb__pg_exec_sql(s,
                         "SELECT conv_id FROM convs WHERE notes_of = $1::bigint"
                         " AND kind = 3",
                         &p, &r);
    if (rc == 0 && PQntuples(r) > 0) *id = (uint64_t)sb__pg_get_i64(r, 0, 0);
    if (rc == 0) PQclear(r);
    sb__pg_read_end(s, own);
    return rc;
}

int sb__pg_notes_create(sb_store *base, uint64_t conv_id, const char *desk,
                        int64_t now_ms, uint64_t *id)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_int(&p, now_ms);
    sb__pg_str(&p, desk);
    PGresult *r;
    int rc = sb__pg_exec_sql(
        s,
        "INSERT INTO convs(kind, state, title, last_seq, created_ts,"
        " updated_ts, desk, notes_of) VALUES(3, 1, '', 0, $2::bigint,"
        " $2::bigint, $3::text, $1::bigint) RETURNING conv_id",
        &p, &r);
    if (rc) return rc;
    *id = PQntuples(r) ? (uint64_t)sb__pg_get_i64(r, 0, 0) : 0;
    PQclear(r);
    return *id ? 0 : SB_E_STORE;
}

int sb__pg_contact_get(sb_store *base, const char *user_id, Sbp__Contact **out)
{
    sb_pg *s = sb__pg(base);
    bool own;
    *out = NULL;
    int rc = sb__pg_read_begin(s, &own);
    if (rc) return rc;
    sb_pg_params p = {0};
    sb__pg_str(&p, user_id);
    PGresult *r = NULL;
    Sbp__Contact *c = NULL;
    ProtobufCBinaryData attrs = {0, NULL};
    rc = sb__pg_exec_sql(s,
                         "SELECT name, email, attrs, verified, updated_ts,"
                         " updated_by FROM contacts WHERE user_id = $1::text",
                         &p, &r);
    if (rc) {
        r = NULL;
        goto out;
    }
    if (PQntuples(r) == 0) {
        rc = SB_E_NOT_FOUND;
        goto out;
    }
    rc = -ENOMEM;
    if (!(c = malloc(sizeof *c))) goto out;
    sbp__contact__init(c);
    if (!(c->user_id = strdup(user_id))) goto out;
    c->verified = sb__pg_get_bool(r, 0, 3);
    c->updated_ts = sb__pg_get_i64(r, 0, 4);
    if ((rc = sb__pg_get_text(r, 0, 0, &c->name)) ||
        (rc = sb__pg_get_text(r, 0, 1, &c->email)) ||
        (rc = sb__pg_get_text(r, 0, 5, &c->updated_by)) ||
        (rc = sb__pg_get_bytes(r, 0, 2, &attrs)))
        goto out;
    if (attrs.len) {
        Sbp__Contact *a = sbp__contact__unpack(NULL, attrs.len, attrs.data);
        if (!a) {
            rc = SB_E_STORE;
            goto out;
        }
        c->attributes = a->attributes;
        c->n_attributes = a->n_attributes;
        a->attributes = NULL;
        a->n_attributes = 0;
        sbp__contact__free_unpacked(a, NULL);
    }
    *out = c;
    c = NULL;
out:
    free(attrs.data);
    if (c) sbp__contact__free_unpacked(c, NULL);
    PQclear(r);
    sb__pg_read_end(s, own);
    return rc;
}

int sb__pg_contact_write(sb_store *base, const Sbp__Contact *c)
{
    sb_pg *s = sb__pg(base);
    Sbp__Contact only = SBP__CONTACT__INIT;
    only.attributes = c->attributes;
    only.n_attributes = c->n_attributes;
    size_t len = c->n_attributes ? sbp__contact__get_packed_size(&only) : 0;
    uint8_t *packed = len ? malloc(len) : NULL;
    if (len && !packed) return -ENOMEM;
    if (len) sbp__contact__pack(&only, packed);
    sb_pg_params p = {0};
    sb__pg_str(&p, c->user_id);
    sb__pg_str(&p, c->name);
    sb__pg_str(&p, c->email);
    sb__pg_bin(&p, packed, len);
    sb__pg_bool(&p, c->verified);
    sb__pg_int(&p, c->updated_ts);
    sb__pg_str(&p, c->updated_by);
    int rc = sb__pg_exec_sql(
        s,
        "INSERT INTO contacts(user_id, name, email, attrs, verified,"
        " updated_ts, updated_by) VALUES($1::text, $2::text, $3::text,"
        " $4::bytea, $5::int, $6::bigint, $7::text)"
        " ON CONFLICT (user_id) DO UPDATE SET name = excluded.name,"
        " email = excluded.email, attrs = excluded.attrs,"
        " verified = excluded.verified, updated_ts = excluded.updated_ts,"
        " updated_by = excluded.updated_by",
        &p, NULL);
    free(packed);
    return rc;
}

int sb__pg_customer_convs(sb_store *base, const char *user_id, uint32_t limit,
                          uint64_t *ids, size_t *n)
{
    sb_pg *s = sb__pg(base);
    bool own;
    *n = 0;
    int rc = sb__pg_read_begin(s, &own);
    if (rc) return rc;
    sb_pg_params p = {0};
    sb__pg_str(&p, user_id);
    sb__pg_int(&p, limit);
    PGresult *r;
    rc = sb__pg_exec_sql(s,
                         "SELECT conv_id FROM convs WHERE customer = $1::text"
                         " AND kind = 2 ORDER BY conv_id DESC LIMIT $2::int",
                         &p, &r);
    if (rc == 0) {
        for (int i = 0; i < PQntuples(r) && *n < limit; i++)
            ids[(*n)++] = (uint64_t)sb__pg_get_i64(r, i, 0);
        PQclear(r);
    }
    sb__pg_read_end(s, own);
    return rc;
}
