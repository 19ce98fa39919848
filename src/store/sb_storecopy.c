/* The copy of sb_storecopy.h: SQLite read with its own connection, rows
 * sent to PostgreSQL a thousand at a time as one JSON document per INSERT
 * (json_to_recordset), each chunk in a transaction of its own.
 *
 * Per table: users, conversations, device cursors and settings are
 * upserted (a row copied before takes the source's values); members and
 * tags, which the server also deletes, are replaced whole; messages
 * continue past the highest msg_id already copied, then the two flags a
 * message can change (recalled, tagged) are brought in line. Uploads'
 * records are upserted and the links of messages to them replaced; their
 * files go into the database's blobs through the store's own blob_put. */
#include "sb_storecopy.h"

#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb_error.h"
#include "sb_sqlite_int.h"
#include "sb_store.h"

#define CHUNK_ROWS 1000

/* A column: its name (the same in both stores) and its PostgreSQL type;
 * bytes travel as hex. */
typedef struct col {
    const char *name, *type;
} col;

typedef enum copy_mode {
    UPSERT,  /* rows copied before take the source's values */
    REPLACE, /* the table is emptied first */
    APPEND,  /* messages: past the highest key already there */
} copy_mode;

typedef struct table {
    const char *name;
    const col *cols;
    size_t n_cols;
    const char *key; /* the primary key: ON CONFLICT's target */
    /* The SQLite order the chunks go by: the rowid, or for a table
     * without one its key (tags). */
    bool rowid;
    copy_mode mode;
} table;

static const col USERS[] = {{"user_id", "text"},
                            {"role", "int"},
                            {"locale", "text"},
                            {"created_ts", "bigint"},
                            {"seen_ts", "bigint"}};
static const col CONVS[] = {{"conv_id", "bigint"},
                            {"kind", "int"},
                            {"state", "int"},
                            {"title", "text"},
                            {"last_seq", "bigint"},
                            {"created_ts", "bigint"},
                            {"updated_ts", "bigint"},
                            {"desk", "text"},
                            {"grp", "text"},
                            {"agent", "text"},
                            {"customer", "text"},
                            {"queued_ts", "bigint"},
                            {"assigned_ts", "bigint"},
                            {"first_response_ts", "bigint"},
                            {"closed_ts", "bigint"},
                            {"last_agent", "text"},
                            {"csat_asked_ts", "bigint"},
                            {"csat_rating", "int"},
                            {"csat_comment", "text"},
                            {"csat_ts", "bigint"},
                            {"transfer_note", "text"},
                            {"transfer_from", "text"},
                            {"notes_of", "bigint"}};
static const col MEMBERS[] = {{"conv_id", "bigint"},
                              {"user_id", "text"},
                              {"role", "int"},
                              {"read_seq", "bigint"},
                              {"delivered_seq", "bigint"},
                              {"joined_ts", "bigint"}};
static const col MESSAGES[] = {
    {"msg_id", "bigint"}, {"conv_id", "bigint"},     {"seq", "bigint"},
    {"sender", "text"},   {"sender_device", "text"}, {"client_msg_id", "bytea"},
    {"type", "int"},      {"body", "text"},          {"quote_seq", "bigint"},
    {"lang", "text"},     {"server_ts", "bigint"},   {"extra", "bytea"},
    {"recalled", "int"},  {"tagged", "int"},         {"review", "int"}};
static const col CURSORS[] = {{"user_id", "text"},
                              {"device_id", "text"},
                              {"conv_id", "bigint"},
                              {"acked_seq", "bigint"}};
static const col TAGS[] = {
    {"conv_id", "bigint"}, {"seq", "bigint"}, {"tag", "text"}};
static const col CONFIG[] = {
    {"key", "text"}, {"value", "text"}, {"updated_ts", "bigint"}};
static const col MEDIA[] = {{"media_id", "text"},  {"sha256", "bytea"},
                            {"conv_id", "bigint"}, {"owner", "text"},
                            {"name", "text"},      {"mime", "text"},
                            {"size", "bigint"},    {"width", "int"},
                            {"height", "int"},     {"created_ts", "bigint"}};
static const col MEDIA_REFS[] = {
    {"media_id", "text"}, {"conv_id", "bigint"}, {"seq", "bigint"}};
static const col CONTACTS[] = {{"user_id", "text"},   {"name", "text"},
                               {"email", "text"},     {"attrs", "bytea"},
                               {"verified", "int"},   {"updated_ts", "bigint"},
                               {"updated_by", "text"}};

#define N(a) (sizeof(a) / sizeof *(a))
static const table TABLES[] = {
    {"users", USERS, N(USERS), "user_id", true, UPSERT},
    {"convs", CONVS, N(CONVS), "conv_id", true, UPSERT},
    {"members", MEMBERS, N(MEMBERS), "conv_id, user_id", true, REPLACE},
    {"messages", MESSAGES, N(MESSAGES), "msg_id", true, APPEND},
    {"device_cursors", CURSORS, N(CURSORS), "user_id, device_id, conv_id", true,
     UPSERT},
    {"tags", TAGS, N(TAGS), "conv_id, seq, tag", false, REPLACE},
    {"config", CONFIG, N(CONFIG), "key", true, UPSERT},
    {"contacts", CONTACTS, N(CONTACTS), "user_id", true, UPSERT},
    {"media", MEDIA, N(MEDIA), "media_id", true, UPSERT},
    {"media_refs", MEDIA_REFS, N(MEDIA_REFS), "media_id, conv_id, seq", true,
     REPLACE},
};

typedef struct copy {
    sqlite3 *src;
    PGconn *dst;
    sb_store *pg;     /* the store's own connection, for blobs */
    const char *data; /* the SQLite store's folder */
    void (*progress)(void *ud, const char *line);
    void *ud;
    char *err;
    size_t err_len;
} copy;

static int fail(copy *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(copy *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->err_len, fmt, ap);
    va_end(ap);
    return rc;
}

static void say(copy *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(copy *c, const char *fmt, ...)
{
    if (!c->progress) return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->progress(c->ud, line);
}

/* ---- PostgreSQL ------------------------------------------------------------
 */

/* Runs sql with params; *out (if out) the result, NULL after a failure. */
static int pg_run(copy *c, const char *sql, int n, const char *const *v,
                  PGresult **out)
{
    if (out) *out = NULL;
    PGresult *r = PQexecParams(c->dst, sql, n, NULL, v, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = fail(c, SB_E_STORE, "PostgreSQL: %s", PQresultErrorMessage(r));
        PQclear(r);
        return rc;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return 0;
}

static int pg_int(copy *c, const char *sql, int64_t *v)
{
    PGresult *r;
    int rc = pg_run(c, sql, 0, NULL, &r);
    if (rc) return rc;
    *v = PQntuples(r) && !PQgetisnull(r, 0, 0)
             ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
             : 0;
    PQclear(r);
    return 0;
}

/* The INSERT of one chunk of t: a JSON array of rows in $1. */
static char *insert_sql(const table *t)
{
    size_t cap = 4096;
    char *sql = malloc(cap), *o = sql;
    if (!sql) return NULL;
    o += sprintf(o, "INSERT INTO %s(", t->name);
    for (size_t i = 0; i < t->n_cols; i++)
        o += sprintf(o, "%s%s", i ? ", " : "", t->cols[i].name);
    o += sprintf(o, ") OVERRIDING SYSTEM VALUE SELECT ");
    for (size_t i = 0; i < t->n_cols; i++) {
        const col *k = &t->cols[i];
        if (strcmp(k->type, "bytea") == 0)
            o += sprintf(o, "%sdecode(x.%s, 'hex')", i ? ", " : "", k->name);
        else
            o += sprintf(o, "%sx.%s", i ? ", " : "", k->name);
    }
    o += sprintf(o, " FROM json_to_recordset($1::json) AS x(");
    for (size_t i = 0; i < t->n_cols; i++) {
        const col *k = &t->cols[i];
        o += sprintf(o, "%s%s %s", i ? ", " : "", k->name,
                     strcmp(k->type, "bytea") == 0 ? "text" : k->type);
    }
    o += sprintf(o, ") ON CONFLICT (%s) DO ", t->key);
    if (t->mode != UPSERT) {
        o += sprintf(o, "NOTHING");
        return sql;
    }
    o += sprintf(o, "UPDATE SET ");
    bool first = true;
    for (size_t i = 0; i < t->n_cols; i++) {
        if (strstr(t->key, t->cols[i].name)) continue;
        o += sprintf(o, "%s%s = excluded.%s", first ? "" : ", ",
                     t->cols[i].name, t->cols[i].name);
        first = false;
    }
    return sql;
}

/* ---- SQLite
 * ------------------------------------------------------------------ */

/* The row st is on, as a JSON object of t's columns. */
static json_t *row_json(const table *t, sqlite3_stmt *st)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < t->n_cols; i++) {
        json_t *v = NULL;
        int ty = sqlite3_column_type(st, (int)i);
        if (ty == SQLITE_NULL) {
            v = json_null();
        } else if (strcmp(t->cols[i].type, "bytea") == 0) {
            const unsigned char *b = sqlite3_column_blob(st, (int)i);
            int n = sqlite3_column_bytes(st, (int)i);
            char *h = malloc(2 * (size_t)n + 1);
            if (h) {
                for (int k = 0; k < n; k++)
                    sprintf(h + 2 * k, "%02x", b[k]);
                h[2 * n] = '\0';
                v = json_string(h);
                free(h);
            }
        } else if (strcmp(t->cols[i].type, "text") == 0) {
            v = json_stringn((const char *)sqlite3_column_text(st, (int)i),
                             (size_t)sqlite3_column_bytes(st, (int)i));
        } else {
            v = json_integer(sqlite3_column_int64(st, (int)i));
        }
        if (!v || json_object_set_new(o, t->cols[i].name, v)) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* The SELECT of t's chunks: rows past the last one, in order. */
static int select_prepare(copy *c, const table *t, sqlite3_stmt **st)
{
    char sql[1024];
    int n = snprintf(sql, sizeof sql, "SELECT ");
    for (size_t i = 0; i < t->n_cols; i++)
        n += snprintf(sql + n, sizeof sql - (size_t)n, "%s%s", i ? ", " : "",
                      t->cols[i].name);
    if (t->rowid)
        n += snprintf(sql + n, sizeof sql - (size_t)n,
                      ", rowid FROM %s WHERE rowid > ?1 ORDER BY rowid"
                      " LIMIT %d",
                      t->name, CHUNK_ROWS);
    else /* tags */
        n += snprintf(sql + n, sizeof sql - (size_t)n,
                      " FROM %s WHERE (%s) > (?1, ?2, ?3) ORDER BY %s"
                      " LIMIT %d",
                      t->name, t->key, t->key, CHUNK_ROWS);
    if (sqlite3_prepare_v2(c->src, sql, -1, st, NULL) != SQLITE_OK)
        return fail(c, SB_E_STORE, "SQLite: %s", sqlite3_errmsg(c->src));
    return 0;
}

/* Copies t in chunks; *rows counts them (new ones only for APPEND). */
static int table_copy(copy *c, const table *t, uint64_t *rows)
{
    *rows = 0;
    int64_t after = 0;
    char buf[64];
    if (t->mode == REPLACE) {
        snprintf(buf, sizeof buf, "DELETE FROM %s", t->name);
        int rc = pg_run(c, buf, 0, NULL, NULL);
        if (rc) return rc;
    } else if (t->mode == APPEND) {
        snprintf(buf, sizeof buf, "SELECT max(%s) FROM %s", t->key, t->name);
        int rc = pg_int(c, buf, &after);
        if (rc) return rc;
    }
    sqlite3_stmt *st = NULL;
    char *sql = insert_sql(t);
    int rc = sql ? select_prepare(c, t, &st) : -ENOMEM;
    /* The key of the last row copied (tags: conv_id, seq, tag). */
    int64_t k0 = -1, k1 = -1;
    char k2[SB_TAG_BYTES_MAX + 1] = "";
    for (bool more = true; rc == 0 && more;) {
        if (t->rowid) {
            sqlite3_bind_int64(st, 1, after);
        } else {
            sqlite3_bind_int64(st, 1, k0);
            sqlite3_bind_int64(st, 2, k1);
            sqlite3_bind_text(st, 3, k2, -1, SQLITE_TRANSIENT);
        }
        json_t *a = json_array();
        size_t n = 0;
        int step;
        while (a && (step = sqlite3_step(st)) == SQLITE_ROW) {
            if (json_array_append_new(a, row_json(t, st))) {
                step = SQLITE_NOMEM;
                break;
            }
            n++;
            if (t->rowid) {
                after = sqlite3_column_int64(st, (int)t->n_cols);
            } else {
                k0 = sqlite3_column_int64(st, 0);
                k1 = sqlite3_column_int64(st, 1);
                snprintf(k2, sizeof k2, "%s", sqlite3_column_text(st, 2));
            }
        }
        sqlite3_reset(st);
        if (!a || step != SQLITE_DONE) {
            json_decref(a);
            rc = fail(c, SB_E_STORE, "SQLite: reading %s: %s", t->name,
                      sqlite3_errmsg(c->src));
            break;
        }
        more = n == CHUNK_ROWS;
        char *js = n ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (n && !js) {
            rc = -ENOMEM;
            break;
        }
        if (n) {
            const char *v[1] = {js};
            rc = pg_run(c, sql, 1, v, NULL);
        }
        free(js);
        *rows += n;
    }
    sqlite3_finalize(st);
    free(sql);
    return rc;
}

/* The flags a copied message may have changed since: the ids recalled or
 * tagged on either side, set as the source has them. */
static int message_flags(copy *c)
{
    static const char *const flags[] = {"recalled", "tagged"};
    for (size_t f = 0; f < 2; f++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT coalesce(json_agg(msg_id), '[]') FROM messages"
                 " WHERE %s <> 0",
                 flags[f]);
        PGresult *r;
        int rc = pg_run(c, sql, 0, NULL, &r);
        if (rc) return rc;
        json_t *had = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
        PQclear(r);
        json_t *now = json_array();
        sqlite3_stmt *st = NULL;
        snprintf(sql, sizeof sql, "SELECT msg_id FROM messages WHERE %s <> 0",
                 flags[f]);
        rc = had && now ? 0 : -ENOMEM;
        if (rc == 0 &&
            sqlite3_prepare_v2(c->src, sql, -1, &st, NULL) != SQLITE_OK)
            rc = fail(c, SB_E_STORE, "SQLite: %s", sqlite3_errmsg(c->src));
        while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
            if (json_array_append_new(
                    now, json_integer(sqlite3_column_int64(st, 0))))
                rc = -ENOMEM;
        sqlite3_finalize(st);
        char *a = rc == 0 ? json_dumps(had, JSON_COMPACT) : NULL;
        char *b = rc == 0 ? json_dumps(now, JSON_COMPACT) : NULL;
        json_decref(had);
        json_decref(now);
        if (rc == 0 && (!a || !b)) rc = -ENOMEM;
        if (rc == 0) {
            snprintf(sql, sizeof sql,
                     "UPDATE messages SET %s = CASE WHEN msg_id IN (SELECT"
                     " json_array_elements_text($2::json)::bigint) THEN 1"
                     " ELSE 0 END WHERE msg_id IN (SELECT"
                     " json_array_elements_text($1::json)::bigint UNION"
                     " SELECT json_array_elements_text($2::json)::bigint)",
                     flags[f]);
            const char *v[2] = {a, b};
            rc = pg_run(c, sql, 2, v, NULL);
        }
        free(a);
        free(b);
        if (rc) return rc;
    }
    return 0;
}

/* ---- checks
 * ------------------------------------------------------------------ */

static int src_int(copy *c, const char *sql, int64_t *v)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->src, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return fail(c, SB_E_STORE, "SQLite: %s", sqlite3_errmsg(c->src));
    }
    *v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* Every table has as many rows on both sides, and every conversation the
 * same last_seq, message count and highest seq. */
static int verify(copy *c)
{
    char sql[256];
    for (size_t i = 0; i < N(TABLES); i++) {
        int64_t a = 0, b = 0;
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", TABLES[i].name);
        int rc = src_int(c, sql, &a);
        if (rc == 0) rc = pg_int(c, sql, &b);
        if (rc) return rc;
        if (a != b)
            return fail(c, SB_E_STORE, "%s: %lld rows in SQLite, %lld copied",
                        TABLES[i].name, (long long)a, (long long)b);
    }
    static const char per_conv[] =
        "SELECT c.conv_id, c.last_seq, count(m.seq), coalesce(max(m.seq), 0)"
        " FROM convs c LEFT JOIN messages m ON m.conv_id = c.conv_id"
        " GROUP BY c.conv_id, c.last_seq ORDER BY c.conv_id";
    PGresult *r;
    int rc = pg_run(c, per_conv, 0, NULL, &r);
    if (rc) return rc;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->src, per_conv, -1, &st, NULL) != SQLITE_OK) {
        PQclear(r);
        return fail(c, SB_E_STORE, "SQLite: %s", sqlite3_errmsg(c->src));
    }
    int row = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        bool same = row < PQntuples(r);
        for (int k = 0; same && k < 4; k++)
            same = sqlite3_column_int64(st, k) ==
                   strtoll(PQgetvalue(r, row, k), NULL, 10);
        if (!same)
            rc = fail(c, SB_E_STORE,
                      "conversation %lld: last_seq, message count or highest"
                      " seq differ",
                      (long long)sqlite3_column_int64(st, 0));
        row++;
    }
    sqlite3_finalize(st);
    if (rc == 0 && row != PQntuples(r))
        rc = fail(c, SB_E_STORE, "conversations: %d in SQLite, %d copied", row,
                  PQntuples(r));
    PQclear(r);
    int64_t lost = 0;
    if (rc == 0)
        rc = pg_int(c,
                    "SELECT count(*) FROM media m WHERE NOT EXISTS(SELECT 1"
                    " FROM blobs b WHERE b.sha256 = m.sha256)",
                    &lost);
    if (rc == 0 && lost)
        rc = fail(c, SB_E_STORE, "%lld uploads without their bytes",
                  (long long)lost);
    return rc;
}

/* ---- uploads' bytes ------------------------------------------------------ */

static int hex_byte(const char *h)
{
    int v = 0;
    for (int i = 0; i < 2; i++) {
        char ch = h[i];
        v = v * 16 + (ch >= 'a' ? ch - 'a' + 10 : ch - '0');
    }
    return v;
}

/* Copies src to dst (a new file): 0 or -errno. */
static int file_copy(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wbx") : NULL;
    int rc = in && out ? 0 : -errno;
    char buf[65536];
    size_t k;
    while (rc == 0 && (k = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, k, out) != k) rc = -EIO;
    if (in && ferror(in)) rc = -EIO;
    if (in) fclose(in);
    if (out && fclose(out) != 0 && rc == 0) rc = -errno;
    if (rc && out) unlink(dst);
    return rc;
}

/* The files of every upload whose blob the database lacks, from the
 * folder's media/ into the database (a copy of each file goes in: the
 * store takes the file it is given). */
static int blobs_copy(copy *c, uint64_t *n)
{
    *n = 0;
    PGresult *r;
    int rc =
        pg_run(c,
               "SELECT DISTINCT encode(m.sha256, 'hex'), m.size FROM media m"
               " WHERE NOT EXISTS(SELECT 1 FROM blobs b"
               " WHERE b.sha256 = m.sha256)",
               0, NULL, &r);
    if (rc) return rc;
    char from[4200], tmp[4200];
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        const char *h = PQgetvalue(r, i, 0);
        if (strlen(h) != 2 * SB_SHA256_BYTES) continue;
        uint8_t sha[SB_SHA256_BYTES];
        for (int k = 0; k < SB_SHA256_BYTES; k++)
            sha[k] = (uint8_t)hex_byte(h + 2 * k);
        snprintf(from, sizeof from, "%s/media/%.2s/%s", c->data, h, h);
        snprintf(tmp, sizeof tmp, "%s/media/%s.copy", c->data, h);
        unlink(tmp);
        if ((rc = file_copy(from, tmp)) != 0) {
            rc = fail(c, rc, "%s: %s", from, strerror(-rc));
            break;
        }
        rc = sb_store_blob_put(
            c->pg, sha, tmp, (uint64_t)strtoull(PQgetvalue(r, i, 1), NULL, 10));
        if (rc) {
            unlink(tmp);
            rc = fail(c, rc, "storing %s in PostgreSQL failed", from);
        }
        (*n)++;
    }
    PQclear(r);
    return rc;
}

/* ---- the copy
 * ------------------------------------------------------------------ */

/* The source has this build's schema: the columns copied are its. The
 * copy reads it without writing, so an older one is brought up to date by
 * this build's server (or any sb_store_open of it) first. */
static int source_check(copy *c)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(c->src, "PRAGMA user_version", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (v == SB_SQLITE_SCHEMA_VERSION) return 0;
    if (v < 0)
        return fail(c, SB_E_STORE, "cannot read the SQLite store's version: %s",
                    sqlite3_errmsg(c->src));
    return fail(c, SB_E_INVALID,
                "the SQLite store is at schema version %lld, this build's is "
                "%d: start this build's server on it once first",
                (long long)v, SB_SQLITE_SCHEMA_VERSION);
}

/* An empty database, or one an earlier copy left (marked in sb_meta). */
static int target_check(copy *c)
{
    int64_t convs, copied;
    int rc = pg_int(c, "SELECT count(*) FROM convs", &convs);
    if (rc == 0)
        rc = pg_int(c,
                    "SELECT count(*) FROM sb_meta WHERE key = 'copied_from_"
                    "sqlite'",
                    &copied);
    if (rc) return rc;
    if (convs && !copied)
        return fail(c, SB_E_INVALID,
                    "the database holds conversations of its own: copy only "
                    "into an empty one");
    return pg_run(c,
                  "INSERT INTO sb_meta VALUES('copied_from_sqlite', 1)"
                  " ON CONFLICT (key) DO NOTHING",
                  0, NULL, NULL);
}

int sb_storecopy(const char *sqlite_path, const char *uri,
                 void (*progress)(void *ud, const char *line), void *ud,
                 sb_storecopy_report *rep, char *err, size_t err_len)
{
    copy c = {.progress = progress, .ud = ud, .err = err, .err_len = err_len};
    memset(rep, 0, sizeof *rep);
    err[0] = '\0';
    if (!sb_store_is_url(uri))
        return fail(&c, SB_E_INVALID, "%s: not a postgresql:// URI", uri);
    /* The server's own open makes (or updates) the schema. */
    sb_store *pg = NULL;
    int rc = sb_store_open(uri, SB_DURABILITY_FSYNC, &pg);
    sb_store_close(pg);
    if (rc)
        return fail(&c, rc,
                    "cannot open the PostgreSQL store (is the URI "
                    "right, does the database exist?)");
    if (sqlite3_open_v2(sqlite_path, &c.src, SQLITE_OPEN_READONLY, NULL) !=
        SQLITE_OK) {
        rc = fail(&c, SB_E_STORE, "%s: %s", sqlite_path,
                  c.src ? sqlite3_errmsg(c.src) : "cannot open");
        goto out;
    }
    sqlite3_busy_timeout(c.src, 5000);
    if ((rc = source_check(&c))) goto out;
    char *slash = strrchr(sqlite_path, '/');
    char data[4096];
    snprintf(data, sizeof data, "%.*s", slash ? (int)(slash - sqlite_path) : 1,
             slash ? sqlite_path : ".");
    c.data = data;
    if ((rc = sb_store_open(uri, SB_DURABILITY_FSYNC, &c.pg))) {
        rc = fail(&c, rc, "cannot open the PostgreSQL store");
        goto out;
    }
    c.dst = PQconnectdb(uri);
    if (PQstatus(c.dst) != CONNECTION_OK) {
        rc = fail(&c, SB_E_STORE, "PostgreSQL: %s", PQerrorMessage(c.dst));
        goto out;
    }
    if ((rc = pg_run(&c, "SET client_min_messages = warning", 0, NULL, NULL)) ||
        (rc = target_check(&c)))
        goto out;
    uint64_t *counts[] = {&rep->users,        &rep->convs,    &rep->members,
                          &rep->messages_new, &rep->cursors,  &rep->tags,
                          &rep->settings,     &rep->contacts, &rep->uploads,
                          &rep->upload_refs};
    _Static_assert(N(counts) == N(TABLES), "a count per table");
    for (size_t i = 0; i < N(TABLES); i++) {
        if ((rc = table_copy(&c, &TABLES[i], counts[i]))) goto out;
        say(&c, "%s: %llu rows%s", TABLES[i].name,
            (unsigned long long)*counts[i],
            TABLES[i].mode == APPEND ? " new" : "");
    }
    int64_t messages;
    if ((rc = message_flags(&c)) ||
        (rc = pg_int(&c, "SELECT count(*) FROM messages", &messages)) ||
        /* New conversations and messages take ids past the copied ones. */
        (rc = pg_run(&c,
                     "SELECT setval(pg_get_serial_sequence('convs', "
                     "'conv_id'), greatest((SELECT max(conv_id) FROM convs),"
                     " 1)), setval(pg_get_serial_sequence('messages', "
                     "'msg_id'), greatest((SELECT max(msg_id) FROM messages),"
                     " 1))",
                     0, NULL, NULL)))
        goto out;
    rep->messages = (uint64_t)messages;
    if ((rc = blobs_copy(&c, &rep->blobs_new))) goto out;
    say(&c, "uploads' files: %llu copied", (unsigned long long)rep->blobs_new);
    if ((rc = verify(&c))) goto out;
    say(&c, "verified: every table's rows, every conversation's last_seq and "
            "messages");
out:
    PQfinish(c.dst);
    sqlite3_close(c.src);
    sb_store_close(c.pg);
    return rc;
}
