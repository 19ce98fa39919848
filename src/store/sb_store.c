/* The embedded store on SQLite: the schema and its version, the prepared
 * statements of every path (cached for the life of the connection), and the
 * translation between rows and the protocol's protobuf-c structs. One
 * sb_store is one connection; the threads sharing a database are sb_storeq's.
 */
#include "sb_store.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sb_error.h"

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 5000
#define CACHE_KIB 8192       /* page cache per connection */
#define USER_ID_BYTES_MAX 64 /* user and device ids */
#define CLIENT_MSG_ID_BYTES 16

static const char SCHEMA_SQL[] =
    "CREATE TABLE users("
    " user_id TEXT PRIMARY KEY,"
    " role INTEGER NOT NULL,"
    " locale TEXT NOT NULL DEFAULT '',"
    " created_ts INTEGER NOT NULL,"
    " seen_ts INTEGER NOT NULL);"
    "CREATE TABLE convs("
    " conv_id INTEGER PRIMARY KEY,"
    " kind INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " title TEXT NOT NULL DEFAULT '',"
    " last_seq INTEGER NOT NULL DEFAULT 0,"
    " created_ts INTEGER NOT NULL,"
    " updated_ts INTEGER NOT NULL);"
    "CREATE TABLE members("
    " conv_id INTEGER NOT NULL,"
    " user_id TEXT NOT NULL,"
    " role INTEGER NOT NULL,"
    " read_seq INTEGER NOT NULL DEFAULT 0,"
    " delivered_seq INTEGER NOT NULL DEFAULT 0,"
    " joined_ts INTEGER NOT NULL,"
    " PRIMARY KEY(conv_id, user_id));"
    /* (user_id, conv_id): the user's conversations, already in sync order */
    "CREATE INDEX members_user ON members(user_id, conv_id);"
    "CREATE TABLE messages("
    " msg_id INTEGER PRIMARY KEY,"
    " conv_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " sender TEXT NOT NULL,"
    " sender_device TEXT NOT NULL DEFAULT '',"
    " client_msg_id BLOB,"
    " type INTEGER NOT NULL,"
    " body TEXT NOT NULL DEFAULT '',"
    " quote_seq INTEGER NOT NULL DEFAULT 0,"
    " lang TEXT NOT NULL DEFAULT '',"
    " server_ts INTEGER NOT NULL,"
    " UNIQUE(conv_id, seq),"
    " UNIQUE(sender, client_msg_id));"
    "CREATE TABLE device_cursors("
    " user_id TEXT NOT NULL,"
    " device_id TEXT NOT NULL,"
    " conv_id INTEGER NOT NULL,"
    " acked_seq INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(user_id, device_id, conv_id));";

#define MSG_COLS                                                               \
    "msg_id, conv_id, seq, sender, sender_device, client_msg_id, type, body, " \
    "quote_seq, lang, server_ts"

enum stmt_id {
    ST_BEGIN,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_DUP_FIND,
    ST_CONV_BUMP,
    ST_CONV_SEQ,
    ST_MSG_INSERT,
    ST_USER_UPSERT,
    ST_USER_ROLE,
    ST_CONV_INSERT,
    ST_MEMBER_INSERT,
    ST_CONV_GET,
    ST_MEMBERS_GET,
    ST_CONV_MEMBER,
    ST_CURSOR_UPSERT,
    ST_DELIVERED_RAISE,
    ST_READ_RAISE,
    ST_CONVS_OF_USER,
    ST_CONVS_ALL,
    ST_MSGS_AFTER,
    ST_MSGS_BEFORE,
    ST_COUNT
};

static const char *const STMT_SQL[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_DUP_FIND] = "SELECT msg_id, conv_id, seq, server_ts FROM messages"
                    " WHERE sender = ?1 AND client_msg_id = ?2",
    [ST_CONV_BUMP] = "UPDATE convs SET last_seq = ?3, updated_ts = ?2"
                     " WHERE conv_id = ?1",
    [ST_CONV_SEQ] = "SELECT last_seq FROM convs WHERE conv_id = ?1",
    [ST_MSG_INSERT] = "INSERT INTO messages(conv_id, seq, sender, "
                      "sender_device, client_msg_id, type, body, quote_seq, "
                      "lang, server_ts)"
                      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                      " ON CONFLICT(sender, client_msg_id) DO NOTHING",
    [ST_USER_UPSERT] =
        "INSERT INTO users(user_id, role, locale, created_ts, seen_ts)"
        " VALUES(?1, ?2, ?3, ?4, ?4)"
        " ON CONFLICT(user_id) DO UPDATE SET role = excluded.role,"
        " locale = CASE WHEN excluded.locale = '' THEN users.locale"
        " ELSE excluded.locale END,"
        " seen_ts = excluded.seen_ts",
    [ST_USER_ROLE] = "SELECT role FROM users WHERE user_id = ?1",
    [ST_CONV_INSERT] = "INSERT INTO convs(kind, state, title, last_seq, "
                       "created_ts, updated_ts) VALUES(?1, ?2, ?3, 0, ?4, ?4)",
    [ST_MEMBER_INSERT] = "INSERT INTO members(conv_id, user_id, role, "
                         "read_seq, delivered_seq, joined_ts)"
                         " VALUES(?1, ?2, ?3, 0, 0, ?4)",
    [ST_CONV_GET] = "SELECT kind, state, title, last_seq, created_ts"
                    " FROM convs WHERE conv_id = ?1",
    [ST_MEMBERS_GET] = "SELECT user_id, role, read_seq, delivered_seq"
                       " FROM members WHERE conv_id = ?1"
                       " ORDER BY rowid LIMIT ?2",
    [ST_CONV_MEMBER] = "SELECT c.last_seq, m.user_id IS NOT NULL"
                       " FROM convs c LEFT JOIN members m"
                       " ON m.conv_id = c.conv_id AND m.user_id = ?2"
                       " WHERE c.conv_id = ?1",
    [ST_CURSOR_UPSERT] =
        "INSERT INTO device_cursors(user_id, device_id, conv_id, acked_seq)"
        " VALUES(?1, ?2, ?3, ?4)"
        " ON CONFLICT DO UPDATE SET acked_seq = excluded.acked_seq"
        " WHERE excluded.acked_seq > acked_seq",
    [ST_DELIVERED_RAISE] = "UPDATE members SET delivered_seq = ?3"
                           " WHERE conv_id = ?1 AND user_id = ?2"
                           " AND delivered_seq < ?3",
    [ST_READ_RAISE] = "UPDATE members SET read_seq = max(read_seq, ?3),"
                      " delivered_seq = max(delivered_seq, ?3)"
                      " WHERE conv_id = ?1 AND user_id = ?2"
                      " AND (read_seq < ?3 OR delivered_seq < ?3)",
    [ST_CONVS_OF_USER] = "SELECT c.conv_id, c.last_seq FROM members m"
                         " JOIN convs c ON c.conv_id = m.conv_id"
                         " WHERE m.user_id = ?1 ORDER BY m.conv_id",
    [ST_CONVS_ALL] = "SELECT conv_id, last_seq FROM convs ORDER BY conv_id",
    [ST_MSGS_AFTER] = "SELECT " MSG_COLS " FROM messages"
                      " WHERE conv_id = ?1 AND seq > ?2"
                      " ORDER BY seq LIMIT ?3",
    [ST_MSGS_BEFORE] = "SELECT " MSG_COLS " FROM messages"
                       " WHERE conv_id = ?1 AND seq < ?2"
                       " ORDER BY seq DESC LIMIT ?3",
};

struct sb_store {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
};

/* ---- helpers ------------------------------------------------------------- */

/* SQLite keeps signed 64-bit integers; ids and seqs beyond that range exist
 * nowhere, so clamping them finds nothing rather than wrapping around. */
static sqlite3_int64 i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static bool id_valid(const char *id)
{
    return id && id[0] &&
           strnlen(id, USER_ID_BYTES_MAX + 1) <= USER_ID_BYTES_MAX;
}

static void bind_str(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_STATIC);
}

/* Steps a statement whose rows, if any, are not wanted, then resets it. */
static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : SB_E_STORE;
}

/* Copies a text column into *dst; an empty or NULL column leaves *dst at its
 * protobuf-c default (which free_unpacked knows not to free). */
static int col_text(sqlite3_stmt *st, int i, char **dst)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    if (!t || n <= 0) return 0;
    char *p = malloc((size_t)n + 1);
    if (!p) return -ENOMEM;
    memcpy(p, t, (size_t)n);
    p[n] = '\0';
    *dst = p;
    return 0;
}

static int col_blob(sqlite3_stmt *st, int i, ProtobufCBinaryData *dst)
{
    const void *b = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    if (!b || n <= 0) return 0;
    uint8_t *p = malloc((size_t)n);
    if (!p) return -ENOMEM;
    memcpy(p, b, (size_t)n);
    dst->data = p;
    dst->len = (size_t)n;
    return 0;
}

/* Builds a message from a row of MSG_COLS. */
static int msg_from_row(sqlite3_stmt *st, Sbp__Message **out)
{
    Sbp__Message *m = malloc(sizeof *m);
    if (!m) return -ENOMEM;
    sbp__message__init(m);
    m->msg_id = (uint64_t)sqlite3_column_int64(st, 0);
    m->conv_id = (uint64_t)sqlite3_column_int64(st, 1);
    m->seq = (uint64_t)sqlite3_column_int64(st, 2);
    m->type = (Sbp__MsgType)sqlite3_column_int(st, 6);
    m->quote_seq = (uint64_t)sqlite3_column_int64(st, 8);
    m->server_ts = sqlite3_column_int64(st, 10);
    if (col_text(st, 3, &m->sender) || col_text(st, 4, &m->sender_device) ||
        col_blob(st, 5, &m->client_msg_id) || col_text(st, 7, &m->body) ||
        col_text(st, 9, &m->lang)) {
        sbp__message__free_unpacked(m, NULL);
        return -ENOMEM;
    }
    *out = m;
    return 0;
}

/* Reads run in one snapshot: if no transaction is open, a read transaction
 * is opened for the call and *own says so. */
static int read_begin(sb_store *s, bool *own)
{
    *own = false;
    if (!sqlite3_get_autocommit(s->db)) return 0;
    if (step_reset(s->st[ST_BEGIN_READ])) return SB_E_STORE;
    *own = true;
    return 0;
}

static void read_end(sb_store *s, bool own)
{
    if (!own) return;
    if (step_reset(s->st[ST_COMMIT])) sb_store_rollback(s);
}

static inline bool in_write_txn(const sb_store *s)
{
    return !sqlite3_get_autocommit(s->db);
}

/* ---- open / close / transactions ----------------------------------------- */

static int exec_sql(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0
                                                                : SB_E_STORE;
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = SB_E_STORE;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) goto out;
    if (sqlite3_step(st) != SQLITE_ROW) goto out;
    *out = sqlite3_column_int64(st, 0);
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

/* Creates the schema of a new database, or checks an existing one. The
 * version is re-read under the write lock: two connections may open a new
 * file at once. */
static int schema_ensure(sqlite3 *db)
{
    int64_t v = 0;
    if (pragma_int(db, "PRAGMA user_version", &v)) return SB_E_STORE;
    if (v == SCHEMA_VERSION) return 0;
    if (v > SCHEMA_VERSION) return SB_E_STORE; /* written by a newer build */
    if (exec_sql(db, "BEGIN IMMEDIATE")) return SB_E_STORE;
    if (pragma_int(db, "PRAGMA user_version", &v)) goto err;
    if (v == 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        if (exec_sql(db, SCHEMA_SQL) || exec_sql(db, sql)) goto err;
    } else if (v != SCHEMA_VERSION) {
        goto err;
    }
    if (exec_sql(db, "COMMIT")) goto err;
    return 0;
err:
    exec_sql(db, "ROLLBACK");
    return SB_E_STORE;
}

int sb_store_open(const char *path, sb_durability d, sb_store **out)
{
    assert(path && out);
    assert(d == SB_DURABILITY_FSYNC || d == SB_DURABILITY_OS);
    *out = NULL;
    sb_store *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    /* NOMUTEX: a connection is used by one thread at a time (header). */
    int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) goto err;
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA cache_size = -%d", CACHE_KIB);
    /* journal_mode answers "memory" for ":memory:"; that is fine. */
    if (exec_sql(s->db, "PRAGMA journal_mode = WAL") ||
        exec_sql(s->db, d == SB_DURABILITY_FSYNC ? "PRAGMA synchronous = FULL"
                                                 : "PRAGMA synchronous = "
                                                   "NORMAL") ||
        exec_sql(s->db, "PRAGMA temp_store = MEMORY") || exec_sql(s->db, sql))
        goto err;
    if (schema_ensure(s->db)) goto err;
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, STMT_SQL[i], -1,
                               SQLITE_PREPARE_PERSISTENT, &s->st[i],
                               NULL) != SQLITE_OK)
            goto err;
    }
    *out = s;
    return 0;
err:
    sb_store_close(s);
    return SB_E_STORE;
}

void sb_store_close(sb_store *s)
{
    if (!s) return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db); /* rolls back an open transaction */
    free(s);
}

int sb_store_begin(sb_store *s)
{
    assert(s);
    assert(sqlite3_get_autocommit(s->db)); /* no nested transactions */
    return step_reset(s->st[ST_BEGIN]);
}

int sb_store_commit(sb_store *s)
{
    assert(s);
    assert(in_write_txn(s));
    return step_reset(s->st[ST_COMMIT]);
}

void sb_store_rollback(sb_store *s)
{
    assert(s);
    /* After SQLITE_FULL or an I/O error SQLite may have rolled back
     * already; ROLLBACK without a transaction would be an error. */
    if (!sqlite3_get_autocommit(s->db)) step_reset(s->st[ST_ROLLBACK]);
}

int sb__store_max_pages(sb_store *s, uint32_t pages)
{
    assert(s);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lu",
             (unsigned long)(pages ? pages : 0xfffffffeu));
    return exec_sql(s->db, sql);
}

/* ---- writes -------------------------------------------------------------- */

/* Finds the message stored under (sender, client_msg_id). Returns 1 and
 * fills msg if there is one, 0 if not, or SB_E_STORE. */
static int dup_find(sb_store *s, Sbp__Message *msg)
{
    sqlite3_stmt *st = s->st[ST_DUP_FIND];
    bind_str(st, 1, msg->sender);
    sqlite3_bind_blob(st, 2, msg->client_msg_id.data,
                      (int)msg->client_msg_id.len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        msg->msg_id = (uint64_t)sqlite3_column_int64(st, 0);
        msg->conv_id = (uint64_t)sqlite3_column_int64(st, 1);
        msg->seq = (uint64_t)sqlite3_column_int64(st, 2);
        msg->server_ts = sqlite3_column_int64(st, 3);
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : SB_E_STORE;
    }
    sqlite3_reset(st);
    return rc;
}

/* Three statements on the hot path: read last_seq, insert (the unique
 * (sender, client_msg_id) index doubles as the duplicate check), raise
 * last_seq. Refusals are decided before the first write, so they leave
 * nothing; the one writer holds the write lock, so last_seq cannot move
 * between the read and the update. A message without client_msg_id (len 0)
 * has no idempotency key: for messages the server makes itself. */
int sb_store_append(sb_store *s, Sbp__Message *msg, int64_t now_ms,
                    bool *duplicate)
{
    assert(s && msg && duplicate);
    assert(in_write_txn(s));
    *duplicate = false;
    bool keyed = msg->client_msg_id.len != 0;
    if (!id_valid(msg->sender)) return SB_E_INVALID;
    if (keyed && (msg->client_msg_id.len != CLIENT_MSG_ID_BYTES ||
                  !msg->client_msg_id.data))
        return SB_E_INVALID;

    sqlite3_stmt *st = s->st[ST_CONV_SEQ];
    sqlite3_bind_int64(st, 1, i64(msg->conv_id));
    int rc = sqlite3_step(st);
    int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) + 1 : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SB_E_STORE;
    int refused = rc == SQLITE_DONE                 ? SB_E_NOT_FOUND
                  : msg->quote_seq >= (uint64_t)seq ? SB_E_INVALID
                                                    : 0;
    if (refused) {
        /* A retry is answered with the original whatever else it says. */
        rc = keyed ? dup_find(s, msg) : 0;
        if (rc == 1) *duplicate = true;
        return rc == 1 ? 0 : rc < 0 ? rc : refused;
    }

    st = s->st[ST_MSG_INSERT];
    sqlite3_bind_int64(st, 1, i64(msg->conv_id));
    sqlite3_bind_int64(st, 2, seq);
    bind_str(st, 3, msg->sender);
    bind_str(st, 4, msg->sender_device);
    if (keyed)
        sqlite3_bind_blob(st, 5, msg->client_msg_id.data,
                          (int)msg->client_msg_id.len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int(st, 6, (int)msg->type);
    bind_str(st, 7, msg->body);
    sqlite3_bind_int64(st, 8, i64(msg->quote_seq));
    bind_str(st, 9, msg->lang);
    sqlite3_bind_int64(st, 10, now_ms);
    if (step_reset(st)) return SB_E_STORE;
    if (sqlite3_changes(s->db) == 0) {
        /* (sender, client_msg_id) was taken: a retry. Nothing written. */
        rc = dup_find(s, msg);
        if (rc != 1) return rc < 0 ? rc : SB_E_STORE;
        *duplicate = true;
        return 0;
    }
    int64_t msg_id = sqlite3_last_insert_rowid(s->db);

    st = s->st[ST_CONV_BUMP];
    sqlite3_bind_int64(st, 1, i64(msg->conv_id));
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_int64(st, 3, seq);
    if (step_reset(st)) return SB_E_STORE; /* the insert stays: roll back */
    msg->msg_id = (uint64_t)msg_id;
    msg->seq = (uint64_t)seq;
    msg->server_ts = now_ms;
    return 0;
}

int sb_store_user_upsert(sb_store *s, const char *user_id, Sbp__Role role,
                         const char *locale, int64_t now_ms)
{
    assert(s);
    assert(in_write_txn(s));
    if (!id_valid(user_id)) return SB_E_INVALID;
    sqlite3_stmt *st = s->st[ST_USER_UPSERT];
    bind_str(st, 1, user_id);
    sqlite3_bind_int(st, 2, (int)role);
    bind_str(st, 3, locale);
    sqlite3_bind_int64(st, 4, now_ms);
    return step_reset(st);
}

static int members_load(sb_store *s, Sbp__Conversation *c)
{
    sqlite3_stmt *st = s->st[ST_MEMBERS_GET];
    size_t cap = 0;
    int rc = 0;
    sqlite3_bind_int64(st, 1, i64(c->conv_id));
    sqlite3_bind_int(st, 2, SB_STORE_MEMBERS_MAX);
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
        m->role = (Sbp__Role)sqlite3_column_int(st, 1);
        if (col_text(st, 0, &m->user_id)) goto nomem;
    }
    rc = rc == SQLITE_DONE ? 0 : SB_E_STORE;
    sqlite3_reset(st);
    return rc;
nomem:
    sqlite3_reset(st);
    return -ENOMEM;
}

/* Loads a conversation with its members (no transaction of its own). */
static int conv_load(sb_store *s, uint64_t conv_id, Sbp__Conversation **out)
{
    sqlite3_stmt *st = s->st[ST_CONV_GET];
    Sbp__Conversation *c = NULL;
    int rc;
    *out = NULL;
    sqlite3_bind_int64(st, 1, i64(conv_id));
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
    c->kind = (Sbp__ConvKind)sqlite3_column_int(st, 0);
    c->state = (Sbp__ConvState)sqlite3_column_int(st, 1);
    c->last_seq = (uint64_t)sqlite3_column_int64(st, 3);
    c->created_ts = sqlite3_column_int64(st, 4);
    if ((rc = col_text(st, 2, &c->title))) goto err;
    sqlite3_reset(st);
    if ((rc = members_load(s, c))) goto err;
    *out = c;
    return 0;
err:
    sqlite3_reset(st);
    if (c) sbp__conversation__free_unpacked(c, NULL);
    return rc;
}

/* The role a user was last seen with: 0, SB_E_NOT_FOUND or SB_E_STORE. */
static int role_find(sb_store *s, const char *user_id, Sbp__Role *role)
{
    sqlite3_stmt *st = s->st[ST_USER_ROLE];
    bind_str(st, 1, user_id);
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

int sb_store_conv_create(sb_store *s, Sbp__ConvKind kind, const char *title,
                         const char *const *user_ids, const Sbp__Role *roles,
                         size_t n, int64_t now_ms, Sbp__Conversation **out)
{
    assert(s && out);
    assert(n == 0 || (user_ids && roles));
    assert(in_write_txn(s));
    *out = NULL;
    /* Everything is checked before the first write, so that a refused
     * request leaves the transaction as it found it. */
    if (kind != SBP__CONV_KIND__CONV_DIRECT &&
        kind != SBP__CONV_KIND__CONV_SERVICE)
        return SB_E_INVALID;
    if (n == 0 || n > SB_STORE_MEMBERS_MAX) return SB_E_INVALID;
    Sbp__Role role[SB_STORE_MEMBERS_MAX];
    size_t customers = 0;
    for (size_t i = 0; i < n; i++) {
        if (!id_valid(user_ids[i])) return SB_E_INVALID;
        if ((int)roles[i] < (int)SBP__ROLE__ROLE_UNSPECIFIED ||
            (int)roles[i] > (int)SBP__ROLE__ROLE_ADMIN)
            return SB_E_INVALID;
        for (size_t j = 0; j < i; j++)
            if (strcmp(user_ids[i], user_ids[j]) == 0) return SB_E_INVALID;
        role[i] = roles[i];
        if (role[i] == SBP__ROLE__ROLE_UNSPECIFIED) {
            int rc = role_find(s, user_ids[i], &role[i]);
            if (rc && rc != SB_E_NOT_FOUND) return rc;
        }
        if (role[i] == SBP__ROLE__ROLE_CUSTOMER) customers++;
    }
    /* A customer talks to the service side, never to another customer. */
    if (customers > 1) return SB_E_FORBIDDEN;

    /* A service conversation starts with the bot (DESIGN.md section 4). */
    Sbp__ConvState state = kind == SBP__CONV_KIND__CONV_SERVICE
                               ? SBP__CONV_STATE__STATE_BOT
                               : SBP__CONV_STATE__STATE_OPEN;
    sqlite3_stmt *st = s->st[ST_CONV_INSERT];
    sqlite3_bind_int(st, 1, (int)kind);
    sqlite3_bind_int(st, 2, (int)state);
    bind_str(st, 3, title);
    sqlite3_bind_int64(st, 4, now_ms);
    if (step_reset(st)) return SB_E_STORE;
    uint64_t conv_id = (uint64_t)sqlite3_last_insert_rowid(s->db);

    st = s->st[ST_MEMBER_INSERT];
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, i64(conv_id));
        bind_str(st, 2, user_ids[i]);
        sqlite3_bind_int(st, 3, (int)role[i]);
        sqlite3_bind_int64(st, 4, now_ms);
        if (step_reset(st)) return SB_E_STORE;
    }
    return conv_load(s, conv_id, out);
}

/* Reads a conversation's last_seq and whether user_id is a member. */
static int conv_member(sb_store *s, uint64_t conv_id, const char *user_id,
                       uint64_t *last_seq, bool *member)
{
    sqlite3_stmt *st = s->st[ST_CONV_MEMBER];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    bind_str(st, 2, user_id);
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
int sb_store_cursor_ack(sb_store *s, const char *user_id, const char *device_id,
                        uint64_t conv_id, uint64_t seq)
{
    assert(s);
    assert(in_write_txn(s));
    if (!id_valid(user_id) || !id_valid(device_id)) return SB_E_INVALID;
    uint64_t last_seq = 0;
    bool member = false;
    int rc = conv_member(s, conv_id, user_id, &last_seq, &member);
    if (rc) return rc;
    if (seq > last_seq) return SB_E_INVALID;
    if (seq == 0) return 0;

    sqlite3_stmt *st = s->st[ST_CURSOR_UPSERT];
    bind_str(st, 1, user_id);
    bind_str(st, 2, device_id);
    sqlite3_bind_int64(st, 3, i64(conv_id));
    sqlite3_bind_int64(st, 4, i64(seq));
    if (step_reset(st)) return SB_E_STORE;
    if (!member) return 0;
    st = s->st[ST_DELIVERED_RAISE];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    bind_str(st, 2, user_id);
    sqlite3_bind_int64(st, 3, i64(seq));
    return step_reset(st);
}

/* What was read was delivered: read_seq raises delivered_seq with it.
 * SB_E_NOT_FOUND without the conversation, SB_E_INVALID beyond last_seq. */
int sb_store_read_set(sb_store *s, uint64_t conv_id, const char *user_id,
                      uint64_t seq)
{
    assert(s);
    assert(in_write_txn(s));
    if (!id_valid(user_id)) return SB_E_INVALID;
    uint64_t last_seq = 0;
    bool member = false;
    int rc = conv_member(s, conv_id, user_id, &last_seq, &member);
    if (rc) return rc;
    if (!member) return SB_E_FORBIDDEN;
    if (seq > last_seq) return SB_E_INVALID;
    sqlite3_stmt *st = s->st[ST_READ_RAISE];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    bind_str(st, 2, user_id);
    sqlite3_bind_int64(st, 3, i64(seq));
    return step_reset(st);
}

/* ---- reads --------------------------------------------------------------- */

int sb_store_user_role(sb_store *s, const char *user_id, Sbp__Role *role)
{
    assert(s && role);
    if (!id_valid(user_id)) return SB_E_NOT_FOUND;
    return role_find(s, user_id, role);
}

int sb_store_conv_get(sb_store *s, uint64_t conv_id, Sbp__Conversation **out)
{
    assert(s && out);
    bool own;
    *out = NULL;
    int rc = read_begin(s, &own);
    if (rc) return rc;
    rc = conv_load(s, conv_id, out);
    read_end(s, own);
    return rc;
}

int sb_store_receipts(sb_store *s, uint64_t conv_id, Sbp__ReadNotify ***out,
                      size_t *n_out)
{
    assert(s && out && n_out);
    Sbp__ReadNotify **list = NULL;
    size_t n = 0;
    bool own;
    *out = NULL;
    *n_out = 0;
    int rc = read_begin(s, &own);
    if (rc) return rc;

    uint64_t last_seq;
    bool member;
    if ((rc = conv_member(s, conv_id, "", &last_seq, &member))) goto out;
    list = calloc(SB_STORE_MEMBERS_MAX, sizeof *list);
    if (!list) {
        rc = -ENOMEM;
        goto out;
    }
    sqlite3_stmt *st = s->st[ST_MEMBERS_GET];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    sqlite3_bind_int(st, 2, SB_STORE_MEMBERS_MAX);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        Sbp__ReadNotify *r = malloc(sizeof *r);
        if (!r) break;
        sbp__read_notify__init(r);
        list[n++] = r;
        r->conv_id = conv_id;
        r->read_seq = (uint64_t)sqlite3_column_int64(st, 2);
        r->delivered_seq = (uint64_t)sqlite3_column_int64(st, 3);
        if (col_text(st, 0, &r->user_id)) break;
    }
    if (rc == SQLITE_ROW)
        rc = -ENOMEM;
    else
        rc = rc == SQLITE_DONE ? 0 : SB_E_STORE;
    sqlite3_reset(st);
out:
    read_end(s, own);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            sbp__read_notify__free_unpacked(list[i], NULL);
        free(list);
        return rc;
    }
    *out = list;
    *n_out = n;
    return 0;
}

typedef struct cursor_ent {
    uint64_t conv_id, seq;
} cursor_ent;

static int cursor_cmp(const void *a, const void *b)
{
    const cursor_ent *x = a, *y = b;
    return x->conv_id < y->conv_id ? -1 : x->conv_id > y->conv_id;
}

/* Sorts the cursors by conv_id; of repeated conversations the highest seq
 * counts. */
static int cursors_sort(Sbp__Cursor *const *cursors, size_t n, cursor_ent **out,
                        size_t *n_out)
{
    cursor_ent *a = NULL;
    size_t k = 0;
    *out = NULL;
    *n_out = 0;
    if (n == 0) return 0;
    a = malloc(n * sizeof *a);
    if (!a) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!cursors[i]) continue;
        a[k].conv_id = cursors[i]->conv_id;
        a[k++].seq = cursors[i]->seq;
    }
    qsort(a, k, sizeof *a, cursor_cmp);
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        if (w > 0 && a[w - 1].conv_id == a[i].conv_id) {
            if (a[i].seq > a[w - 1].seq) a[w - 1].seq = a[i].seq;
        } else {
            a[w++] = a[i];
        }
    }
    *out = a;
    *n_out = w;
    return 0;
}

static int convs_push(Sbp__SyncResp *r, size_t *cap, Sbp__Conversation *c)
{
    if (r->n_convs == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        Sbp__Conversation **a = realloc(r->convs, ncap * sizeof *a);
        if (!a) return -ENOMEM;
        r->convs = a;
        *cap = ncap;
    }
    r->convs[r->n_convs++] = c;
    return 0;
}

/* Adds to the page the messages of one conversation after seq cur. Sets
 * *stop when the page is full or over its bytes (with *more when a message
 * was left out for it), and *added when a message went in. */
static int sync_conv(sb_store *s, uint64_t conv_id, uint64_t cur,
                     uint32_t limit, size_t bytes_max, size_t *bytes,
                     Sbp__SyncResp *r, bool *added, bool *stop)
{
    sqlite3_stmt *st = s->st[ST_MSGS_AFTER];
    int rc;
    *added = false;
    /* One row past the page tells whether it is full. */
    sqlite3_bind_int64(st, 1, i64(conv_id));
    sqlite3_bind_int64(st, 2, i64(cur));
    sqlite3_bind_int64(st, 3, (sqlite3_int64)(limit - r->n_messages) + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(st, 7);
        if (r->n_messages == limit ||
            (bytes_max && r->n_messages > 0 && *bytes + len > bytes_max)) {
            r->more = true;
            *stop = true;
            break;
        }
        Sbp__Message *m;
        if ((rc = msg_from_row(st, &m))) goto out;
        r->messages[r->n_messages++] = m;
        *bytes += len;
        *added = true;
    }
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : SB_E_STORE;
    if (r->n_messages == limit) *stop = true;
out:
    sqlite3_reset(st);
    return rc;
}

/* The walk goes through the user's conversations in conv_id order. It stops
 * once the page is full and a conversation with more messages is found, or
 * once SB_STORE_PAGE_MAX conversations unknown to the cursors (and without
 * messages in the page) have been listed and another is found; either way
 * `more` is set. A client that pages on with its cursors advanced (and a
 * cursor for every conversation listed) gets everything exactly once. */
int sb_store_sync(sb_store *s, const char *user_id, bool all,
                  Sbp__Cursor *const *cursors, size_t n_cursors, uint32_t limit,
                  size_t bytes_max, Sbp__SyncResp **out)
{
    assert(s && out);
    assert(n_cursors == 0 || cursors);
    *out = NULL;
    if (!all && !id_valid(user_id)) return SB_E_INVALID;
    if (limit == 0 || limit > SB_STORE_PAGE_MAX) limit = SB_STORE_PAGE_MAX;

    cursor_ent *cur = NULL;
    size_t n_cur = 0, convs_cap = 0, bytes = 0, unknown = 0;
    bool own = false, full = false;
    sqlite3_stmt *walk = NULL;
    Sbp__SyncResp *r = malloc(sizeof *r);
    int rc = -ENOMEM;
    if (!r) goto err;
    sbp__sync_resp__init(r);
    r->messages = malloc(limit * sizeof *r->messages);
    if (!r->messages) goto err;
    if ((rc = cursors_sort(cursors, n_cursors, &cur, &n_cur))) goto err;
    if ((rc = read_begin(s, &own))) goto err;

    walk = s->st[all ? ST_CONVS_ALL : ST_CONVS_OF_USER];
    if (!all) bind_str(walk, 1, user_id);
    int step;
    while ((step = sqlite3_step(walk)) == SQLITE_ROW) {
        cursor_ent key = {(uint64_t)sqlite3_column_int64(walk, 0), 0};
        uint64_t last_seq = (uint64_t)sqlite3_column_int64(walk, 1);
        const cursor_ent *c =
            n_cur ? bsearch(&key, cur, n_cur, sizeof *cur, cursor_cmp) : NULL;
        uint64_t from = c ? c->seq : 0;
        bool added = false, list = false;
        if (last_seq > from) {
            if (full) {
                r->more = true;
                break;
            }
            rc = sync_conv(s, key.conv_id, from, limit, bytes_max, &bytes, r,
                           &added, &full);
            if (rc) goto err;
            list = added;
        }
        if (!c && !added) {
            if (unknown == SB_STORE_PAGE_MAX) {
                r->more = true;
                break;
            }
            unknown++;
            list = true;
        }
        if (list) {
            Sbp__Conversation *conv;
            if ((rc = conv_load(s, key.conv_id, &conv))) goto err;
            if ((rc = convs_push(r, &convs_cap, conv))) {
                sbp__conversation__free_unpacked(conv, NULL);
                goto err;
            }
        }
        if (r->more) break;
    }
    if (step != SQLITE_DONE && step != SQLITE_ROW) {
        rc = SB_E_STORE;
        goto err;
    }
    sqlite3_reset(walk);
    read_end(s, own);
    free(cur);
    *out = r;
    return 0;
err:
    if (walk) sqlite3_reset(walk);
    read_end(s, own);
    free(cur);
    if (r) sbp__sync_resp__free_unpacked(r, NULL);
    return rc;
}

int sb_store_history(sb_store *s, uint64_t conv_id, uint64_t before_seq,
                     uint32_t limit, Sbp__HistoryResp **out)
{
    assert(s && out);
    *out = NULL;
    if (limit == 0 || limit > SB_STORE_PAGE_MAX) limit = SB_STORE_PAGE_MAX;
    if (before_seq == 0) before_seq = UINT64_MAX;

    bool own = false;
    sqlite3_stmt *st = s->st[ST_MSGS_BEFORE];
    Sbp__HistoryResp *r = malloc(sizeof *r);
    int rc = -ENOMEM;
    if (!r) return rc;
    sbp__history_resp__init(r);
    r->conv_id = conv_id;
    r->messages = malloc(limit * sizeof *r->messages);
    if (!r->messages) goto err;
    if ((rc = read_begin(s, &own))) goto err;

    uint64_t last_seq;
    bool member;
    if ((rc = conv_member(s, conv_id, "", &last_seq, &member))) goto err;
    /* Newest first, one row past the page to tell whether older remain. */
    sqlite3_bind_int64(st, 1, i64(conv_id));
    sqlite3_bind_int64(st, 2, i64(before_seq));
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (r->n_messages == limit) {
            r->more = true;
            break;
        }
        Sbp__Message *m;
        if ((rc = msg_from_row(st, &m))) goto err;
        r->messages[r->n_messages++] = m;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = SB_E_STORE;
        goto err;
    }
    sqlite3_reset(st);
    read_end(s, own);
    for (size_t i = 0, j = r->n_messages; i + 1 < j; i++, j--) {
        Sbp__Message *t = r->messages[i];
        r->messages[i] = r->messages[j - 1];
        r->messages[j - 1] = t;
    }
    *out = r;
    return 0;
err:
    sqlite3_reset(st);
    read_end(s, own);
    sbp__history_resp__free_unpacked(r, NULL);
    return rc;
}
