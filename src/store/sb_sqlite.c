/* The SQLite backend: the schema and its migrations, the prepared
 * statements of every path (cached for the life of the connection), the
 * transactions, the WAL's checkpoints and the server's settings. A
 * connection is one sb_sqlite; sb_sqlite_msg.c and sb_sqlite_conv.c hold
 * the operations on messages and on conversations. */
#include "sb_sqlite_int.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_walvfs.h"

#define BUSY_TIMEOUT_MS 5000
#define CACHE_KIB 8192 /* page cache per connection */

#define STR_(x) #x
#define STR(x) STR_(x)

/* Version 1, as first shipped. A new database is created at version 1 and
 * then migrated like an old one, so both end with the same schema. */
static const char SCHEMA_V1_SQL[] =
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

/* Version 2, customer service: routing fields and times of a conversation;
 * a message's structured parts (extra: a packed Sbp__Message holding only
 * event, quick_replies, card and media), recall and whether it has tags;
 * tags (seq 0: the conversation's); the trigram search index over bodies,
 * filled up to meta.fts_upto (a msg_id). Existing service conversations
 * get their customer from their members. */
static const char SCHEMA_V2_SQL[] =
    "ALTER TABLE convs ADD COLUMN desk TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE convs ADD COLUMN grp TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE convs ADD COLUMN agent TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE convs ADD COLUMN customer TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE convs ADD COLUMN queued_ts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE convs ADD COLUMN assigned_ts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE convs ADD COLUMN first_response_ts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE convs ADD COLUMN closed_ts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN extra BLOB;"
    "ALTER TABLE messages ADD COLUMN recalled INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN tagged INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE tags("
    " conv_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " tag TEXT NOT NULL,"
    " PRIMARY KEY(conv_id, seq, tag)) WITHOUT ROWID;"
    "CREATE INDEX tags_conv ON tags(tag, conv_id) WHERE seq = 0;"
    /* a customer's open conversation at a desk; queues in arrival order */
    "CREATE INDEX convs_service ON convs(customer, desk, state);"
    "CREATE INDEX convs_queue ON convs(state, queued_ts);"
    "CREATE VIRTUAL TABLE msg_fts USING fts5(body, content='messages',"
    " content_rowid='msg_id', tokenize='trigram');"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "INSERT INTO meta(key, value) VALUES('fts_upto', 0);"
    "UPDATE convs SET customer = coalesce((SELECT m.user_id FROM members m"
    " WHERE m.conv_id = convs.conv_id AND m.role = 1"
    " ORDER BY m.rowid LIMIT 1), '') WHERE kind = 2;";

/* Version 3: the content filter's review flag on a message, and an index
 * of the flagged messages for whoever reviews them. */
static const char SCHEMA_V3_SQL[] =
    "ALTER TABLE messages ADD COLUMN review INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX messages_review ON messages(msg_id) WHERE review <> 0;";

/* Version 4: settings the server keeps in the store (sb_store_config_*),
 * such as the desk configuration that admins edit while it runs. */
static const char SCHEMA_V4_SQL[] = "CREATE TABLE config("
                                    " key TEXT PRIMARY KEY,"
                                    " value TEXT NOT NULL,"
                                    " updated_ts INTEGER NOT NULL);";

/* Version 5: the webhook outbox (sb_store_outbox_*): one row per event
 * and endpoint, pending (state 0) or failed (2), due at next_ts; subject
 * is the user whose data the payload holds. */
static const char SCHEMA_V5_SQL[] =
    "CREATE TABLE webhook_outbox("
    " id INTEGER PRIMARY KEY,"
    " event TEXT NOT NULL,"
    " endpoint TEXT NOT NULL,"
    " subject TEXT NOT NULL DEFAULT '',"
    " payload TEXT NOT NULL,"
    " state INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_ts INTEGER NOT NULL,"
    " created_ts INTEGER NOT NULL,"
    " last_error TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX webhook_outbox_due ON webhook_outbox(state, next_ts);"
    "CREATE INDEX webhook_outbox_subject ON webhook_outbox(subject)"
    " WHERE subject <> '';";

/* Version 6, satisfaction and reports: a service conversation's last
 * agent (kept after its close, for reports by agent; the agent in charge
 * now for existing ones), its rating (asked for when, the rating, its
 * comment, given when) and an index of service conversations by when
 * they were opened, which reports scan a span of. */
static const char SCHEMA_V6_SQL[] =
    "ALTER TABLE convs ADD COLUMN last_agent TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE convs ADD COLUMN csat_asked_ts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE convs ADD COLUMN csat_rating INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE convs ADD COLUMN csat_comment TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE convs ADD COLUMN csat_ts INTEGER NOT NULL DEFAULT 0;"
    "UPDATE convs SET last_agent = agent WHERE agent <> '';"
    "CREATE INDEX convs_report ON convs(created_ts) WHERE kind = 2;";

/* Version 7: the note of a conversation's last transfer, for the agent
 * it went to, and who wrote it. */
static const char SCHEMA_V7_SQL[] =
    "ALTER TABLE convs ADD COLUMN transfer_note TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE convs ADD COLUMN transfer_from TEXT NOT NULL DEFAULT '';";

/* Version 8, the agent side: a notes conversation's service conversation
 * (notes_of; one notes conversation each), and contacts (a customer's
 * name, email and attributes, packed as a Sbp__Contact holding only
 * them). */
static const char SCHEMA_V8_SQL[] =
    "ALTER TABLE convs ADD COLUMN notes_of INTEGER NOT NULL DEFAULT 0;"
    "CREATE UNIQUE INDEX convs_notes ON convs(notes_of) WHERE notes_of <> 0;"
    "CREATE TABLE contacts("
    " user_id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL DEFAULT '',"
    " email TEXT NOT NULL DEFAULT '',"
    " attrs BLOB,"
    " verified INTEGER NOT NULL DEFAULT 0,"
    " updated_ts INTEGER NOT NULL,"
    " updated_by TEXT NOT NULL DEFAULT '');";
/* Version 9: uploads (sb_store_media_*): one record per upload, its
 * bytes a file under the data folder named by their SHA-256; and which
 * messages carry each upload (who may see it follows from them). */
static const char SCHEMA_V9_SQL[] = "CREATE TABLE media("
                                    " media_id TEXT PRIMARY KEY,"
                                    " sha256 BLOB NOT NULL,"
                                    " conv_id INTEGER NOT NULL,"
                                    " owner TEXT NOT NULL,"
                                    " name TEXT NOT NULL,"
                                    " mime TEXT NOT NULL,"
                                    " size INTEGER NOT NULL,"
                                    " width INTEGER NOT NULL DEFAULT 0,"
                                    " height INTEGER NOT NULL DEFAULT 0,"
                                    " created_ts INTEGER NOT NULL);"
                                    "CREATE INDEX media_sha ON media(sha256);"
                                    "CREATE INDEX media_conv ON media(conv_id);"
                                    "CREATE TABLE media_refs("
                                    " media_id TEXT NOT NULL,"
                                    " conv_id INTEGER NOT NULL,"
                                    " seq INTEGER NOT NULL,"
                                    " PRIMARY KEY(media_id, conv_id, seq));";

/* Version 10: the idempotency key's unique index leads with client_msg_id
 * (messages_idem). The SDKs' ids begin with the time they were made, so a
 * new key lands at the index's right edge, in a leaf the commit writes
 * anyway, instead of in a leaf of its sender's own. SQLite cannot drop a
 * table's UNIQUE constraint: the table is rebuilt, every row and msg_id
 * kept, with its columns in their old order and its other indexes. */
static const char SCHEMA_V10_SQL[] =
    "CREATE TABLE messages_v10("
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
    " extra BLOB,"
    " recalled INTEGER NOT NULL DEFAULT 0,"
    " tagged INTEGER NOT NULL DEFAULT 0,"
    " review INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE(conv_id, seq));"
    "INSERT INTO messages_v10 SELECT msg_id, conv_id, seq, sender,"
    " sender_device, client_msg_id, type, body, quote_seq, lang, server_ts,"
    " extra, recalled, tagged, review FROM messages;"
    "DROP TABLE messages;"
    "ALTER TABLE messages_v10 RENAME TO messages;"
    "CREATE UNIQUE INDEX messages_idem ON messages(client_msg_id, sender);"
    "CREATE INDEX messages_review ON messages(msg_id) WHERE review <> 0;";

/* MIGRATIONS[v] takes a database from version v to v + 1. */
static const char *const MIGRATIONS[SB_SQLITE_SCHEMA_VERSION] = {
    SCHEMA_V1_SQL, SCHEMA_V2_SQL, SCHEMA_V3_SQL, SCHEMA_V4_SQL, SCHEMA_V5_SQL,
    SCHEMA_V6_SQL, SCHEMA_V7_SQL, SCHEMA_V8_SQL, SCHEMA_V9_SQL, SCHEMA_V10_SQL,
};

const char *sb__sqlite_schema(int version)
{
    assert(version >= 1 && version <= SB_SQLITE_SCHEMA_VERSION);
    return MIGRATIONS[version - 1];
}

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
                      "lang, server_ts, extra, review)"
                      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
                      " ?12)"
                      " ON CONFLICT(client_msg_id, sender) DO NOTHING",
    [ST_USER_UPSERT] =
        "INSERT INTO users(user_id, role, locale, created_ts, seen_ts)"
        " VALUES(?1, ?2, ?3, ?4, ?4)"
        " ON CONFLICT(user_id) DO UPDATE SET role = excluded.role,"
        " locale = CASE WHEN excluded.locale = '' THEN users.locale"
        " ELSE excluded.locale END,"
        " seen_ts = excluded.seen_ts",
    [ST_USER_ROLE] = "SELECT role FROM users WHERE user_id = ?1",
    [ST_CONV_INSERT] = "INSERT INTO convs(kind, state, title, last_seq, "
                       "created_ts, updated_ts, desk, grp, customer)"
                       " VALUES(?1, ?2, ?3, 0, ?4, ?4, ?5, ?6, ?7)",
    [ST_MEMBER_INSERT] = "INSERT INTO members(conv_id, user_id, role, "
                         "read_seq, delivered_seq, joined_ts)"
                         " VALUES(?1, ?2, ?3, 0, 0, ?4)",
    [ST_CONV_GET] = "SELECT " SB_SQLITE_CONV_COLUMNS(
        SB_SQLITE_COL_SQL) " FROM convs WHERE conv_id = ?1",
    [ST_MEMBERS_GET] = "SELECT " SB_SQLITE_MEMBER_COLUMNS(
        SB_SQLITE_COL_SQL) " FROM members WHERE conv_id = ?1"
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
    [ST_MSGS_AFTER] = "SELECT " SB_SQLITE_MSG_COLS " FROM messages"
                      " WHERE conv_id = ?1 AND seq > ?2"
                      " ORDER BY seq LIMIT ?3",
    [ST_MSGS_BEFORE] = "SELECT " SB_SQLITE_MSG_COLS " FROM messages"
                       " WHERE conv_id = ?1 AND seq < ?2"
                       " ORDER BY seq DESC LIMIT ?3",
    [ST_SAVEPOINT] = "SAVEPOINT sb",
    [ST_RELEASE] = "RELEASE sb",
    [ST_ROLLBACK_TO] = "ROLLBACK TO sb",
    [ST_TAGS_GET] = "SELECT tag FROM tags WHERE conv_id = ?1 AND seq = ?2"
                    " ORDER BY tag LIMIT " STR(SB_TAGS_MAX),
    /* substr counts characters: at least the bytes wanted, cut in C */
    [ST_QUOTE_GET] = "SELECT sender, type, substr(body, 1, " STR(
        SB_QUOTE_BYTES) "), recalled FROM messages"
                        " WHERE conv_id = ?1 AND seq = ?2",
    [ST_MSG_GET] = "SELECT " SB_SQLITE_MSG_COLS " FROM messages"
                   " WHERE conv_id = ?1 AND seq = ?2",
    [ST_MSG_ID] = "SELECT msg_id FROM messages WHERE conv_id = ?1 AND seq = ?2",
    [ST_SVC_FIND] = "SELECT conv_id FROM convs WHERE customer = ?1"
                    " AND desk = ?2 AND kind = ?3 AND state <> ?4"
                    " ORDER BY conv_id DESC LIMIT 1",
    [ST_ROUTE_GET] = "SELECT state, agent FROM convs WHERE conv_id = ?1",
    /* queued_ts: when it last began to wait for an agent; one assigned
     * without waiting in the queue waited from then (no time). */
    [ST_ROUTE_SET] = "UPDATE convs SET state = ?2, grp = ?3, agent = ?4,"
                     " last_agent = CASE WHEN ?4 <> '' THEN ?4"
                     " ELSE last_agent END,"
                     " updated_ts = max(updated_ts, ?5),"
                     " queued_ts = CASE WHEN ?6 OR (?7 AND state <> 3)"
                     " THEN ?5 ELSE queued_ts END,"
                     " assigned_ts = CASE WHEN ?7 THEN ?5 ELSE assigned_ts END,"
                     " closed_ts = CASE ?8 WHEN 1 THEN ?5 WHEN 0 THEN 0"
                     " ELSE closed_ts END"
                     " WHERE conv_id = ?1",
    [ST_MEMBER_DEL] = "DELETE FROM members WHERE conv_id = ?1 AND user_id = ?2",
    [ST_MEMBER_AGENT] = "INSERT INTO members(conv_id, user_id, role, "
                        "read_seq, delivered_seq, joined_ts)"
                        " VALUES(?1, ?2, ?3, 0, 0, ?4)"
                        " ON CONFLICT(conv_id, user_id)"
                        " DO UPDATE SET role = excluded.role",
    [ST_MEMBER_COUNT] = "SELECT count(*) FROM members WHERE conv_id = ?1"
                        " AND user_id <> ?2 AND user_id <> ?3",
    /* A member's read_seq, and its unread messages: those after it that
     * others sent. */
    [ST_MEMBER_READ] = "SELECT m.read_seq, (SELECT count(*) FROM messages g"
                       " WHERE g.conv_id = ?1 AND g.seq > m.read_seq"
                       " AND g.sender <> ?2) FROM members m"
                       " WHERE m.conv_id = ?1 AND m.user_id = ?2",
    [ST_CONV_NOTE] = "UPDATE convs SET transfer_note = ?2, transfer_from = ?3"
                     " WHERE conv_id = ?1",
    [ST_FIRST_RESPONSE] = "UPDATE convs SET first_response_ts = ?2"
                          " WHERE conv_id = ?1 AND first_response_ts = 0",
    [ST_AGENT_FIRST] = "SELECT min(m.server_ts) FROM convs c JOIN messages m"
                       " ON m.conv_id = c.conv_id WHERE c.conv_id = ?1"
                       " AND c.agent <> '' AND m.sender = c.agent"
                       " AND m.server_ts >= c.assigned_ts",
    [ST_RECALL_GET] = "SELECT msg_id, recalled, body FROM messages"
                      " WHERE conv_id = ?1 AND seq = ?2",
    [ST_RECALL_SET] = "UPDATE messages SET recalled = 1 WHERE msg_id = ?1",
    [ST_TAG_ADD] = "INSERT INTO tags(conv_id, seq, tag) VALUES(?1, ?2, ?3)"
                   " ON CONFLICT DO NOTHING",
    [ST_TAG_DEL] = "DELETE FROM tags WHERE conv_id = ?1 AND seq = ?2"
                   " AND tag = ?3",
    [ST_TAG_COUNT] = "SELECT count(*) FROM tags WHERE conv_id = ?1"
                     " AND seq = ?2",
    [ST_MSG_TAGGED] = "UPDATE messages SET tagged = ?3"
                      " WHERE conv_id = ?1 AND seq = ?2",
    [ST_SVC_CONVS] = "SELECT conv_id FROM convs WHERE state = ?1"
                     " AND kind = ?2 ORDER BY queued_ts, conv_id",
    [ST_FTS_UPTO] = "SELECT value FROM meta WHERE key = 'fts_upto'",
    [ST_FTS_SET] = "UPDATE meta SET value = ?1 WHERE key = 'fts_upto'",
    /* One statement for many rows: FTS5 flushes its pending terms at
     * every statement, so row by row would cost many times more. */
    [ST_FTS_FILL] = "INSERT INTO msg_fts(rowid, body)"
                    " SELECT msg_id, body FROM messages"
                    " WHERE msg_id > ?1 AND msg_id <= ?2 AND recalled = 0",
    [ST_FTS_DELETE] = "INSERT INTO msg_fts(msg_fts, rowid, body)"
                      " VALUES('delete', ?1, ?2)",
    [ST_MSG_MAX] = "SELECT max(msg_id) FROM messages",
};

struct sb_sqlite_wal {
    void (*hook)(void *ud, int frames);
    void *ud;
};

static const sb_store_ops SQLITE_OPS;

/* ---- helpers ----------------------------------------------------------- */

void sb__sqlite_bind_str(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_STATIC);
}

int sb__sqlite_step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : SB_E_STORE;
}

int sb__sqlite_int_query(sqlite3_stmt *st, int64_t *out)
{
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : SB_E_STORE;
}

int sb__sqlite_col_text(sqlite3_stmt *st, int i, char **dst)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    if (!t || n <= 0) return 0;
    char *p = sb__store_strndup((const char *)t, (size_t)n);
    if (!p) return -ENOMEM;
    *dst = p;
    return 0;
}

int sb__sqlite_col_blob(sqlite3_stmt *st, int i, ProtobufCBinaryData *dst)
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

int sb__sqlite_read_begin(sb_sqlite *s, bool *own)
{
    *own = false;
    if (!sqlite3_get_autocommit(s->db)) return 0;
    if (sb__sqlite_step_reset(s->st[ST_BEGIN_READ])) return SB_E_STORE;
    *own = true;
    return 0;
}

static void sqlite_rollback(sb_store *base);

void sb__sqlite_read_end(sb_sqlite *s, bool own)
{
    if (!own) return;
    if (sb__sqlite_step_reset(s->st[ST_COMMIT])) sqlite_rollback(&s->base);
}

bool sb__sqlite_in_write(const sb_store *base)
{
    return !sqlite3_get_autocommit(((const sb_sqlite *)base)->db);
}

int sb__sqlite_prepare(sb_sqlite *s, const char *sql, size_t n,
                       sqlite3_stmt **out)
{
    return sqlite3_prepare_v2(s->db, sql, (int)n, out, NULL) == SQLITE_OK
               ? 0
               : SB_E_STORE;
}

bool sb__sqlite_sql_add(char *sql, size_t size, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = *n < size ? vsnprintf(sql + *n, size - *n, fmt, ap) : -1;
    va_end(ap);
    if (k < 0 || (size_t)k >= size - *n) {
        *n = size;
        return false;
    }
    *n += (size_t)k;
    return true;
}

/* ---- open / close / transactions --------------------------------------- */

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

/* Creates the schema of a new database or brings an old one up to date,
 * in place and in one transaction: every migration from its version on.
 * The version is re-read under the write lock: two connections may open
 * the file at once. */
static int schema_ensure(sqlite3 *db)
{
    int64_t v = 0;
    if (pragma_int(db, "PRAGMA user_version", &v)) return SB_E_STORE;
    if (v == SB_SQLITE_SCHEMA_VERSION) return 0;
    if (v > SB_SQLITE_SCHEMA_VERSION || v < 0)
        return SB_E_STORE; /* a newer build's */
    if (exec_sql(db, "BEGIN IMMEDIATE")) return SB_E_STORE;
    if (pragma_int(db, "PRAGMA user_version", &v)) goto err;
    if (v > SB_SQLITE_SCHEMA_VERSION || v < 0) goto err;
    if (v < SB_SQLITE_SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d",
                 SB_SQLITE_SCHEMA_VERSION);
        for (; v < SB_SQLITE_SCHEMA_VERSION; v++)
            if (exec_sql(db, MIGRATIONS[v])) goto err;
        if (exec_sql(db, sql)) goto err;
    }
    if (exec_sql(db, "COMMIT")) goto err;
    return 0;
err:
    exec_sql(db, "ROLLBACK");
    return SB_E_STORE;
}

static int sqlite_cache(sb_store *base, uint32_t kib)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA cache_size = -%lu", (unsigned long)kib);
    return exec_sql(sb__sqlite(base)->db, sql);
}

static void sqlite_close(sb_store *base)
{
    sb_sqlite *s = sb__sqlite(base);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db); /* rolls back an open transaction */
    free(s->wal);
    free(s->media_dir);
    free(s);
}

int sb__sqlite_open(const char *path, sb_durability d, sb_store **out)
{
    *out = NULL;
    sb_sqlite *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->base.ops = &SQLITE_OPS;
    /* NOMUTEX: a connection is used by one thread at a time (header). */
    int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    /* Syncing every commit, the WAL's writes can be gathered (sb_walvfs). */
    const char *vfs = d == SB_DURABILITY_FSYNC && sb_walvfs_register() == 0
                          ? SB_WALVFS_NAME
                          : NULL;
    if (sb__sqlite_media_dir(path, &s->media_dir)) goto err;
    s->media_fsync = d == SB_DURABILITY_FSYNC;
    if (sqlite3_open_v2(path, &s->db, flags, vfs) != SQLITE_OK) goto err;
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    /* journal_mode answers "memory" for ":memory:"; that is fine. */
    if (exec_sql(s->db, "PRAGMA journal_mode = WAL") ||
        exec_sql(s->db, d == SB_DURABILITY_FSYNC
                            ? "PRAGMA synchronous = FULL"
                            : "PRAGMA synchronous = NORMAL") ||
        exec_sql(s->db, "PRAGMA temp_store = MEMORY") ||
        sqlite_cache(&s->base, CACHE_KIB))
        goto err;
    if (schema_ensure(s->db)) goto err;
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, STMT_SQL[i], -1,
                               SQLITE_PREPARE_PERSISTENT, &s->st[i],
                               NULL) != SQLITE_OK)
            goto err;
    }
    *out = &s->base;
    return 0;
err:
    sqlite_close(&s->base);
    return SB_E_STORE;
}

static int sqlite_begin(sb_store *base)
{
    return sb__sqlite_step_reset(sb__sqlite(base)->st[ST_BEGIN]);
}

static int sqlite_commit(sb_store *base)
{
    return sb__sqlite_step_reset(sb__sqlite(base)->st[ST_COMMIT]);
}

static void sqlite_rollback(sb_store *base)
{
    sb_sqlite *s = sb__sqlite(base);
    /* After SQLITE_FULL or an I/O error SQLite may have rolled back
     * already; ROLLBACK without a transaction would be an error. */
    if (!sqlite3_get_autocommit(s->db))
        sb__sqlite_step_reset(s->st[ST_ROLLBACK]);
}

static int sqlite_savepoint(sb_store *base)
{
    return sb__sqlite_step_reset(sb__sqlite(base)->st[ST_SAVEPOINT]);
}

static int sqlite_savepoint_end(sb_store *base, bool keep)
{
    sb_sqlite *s = sb__sqlite(base);
    if (!keep && sb__sqlite_step_reset(s->st[ST_ROLLBACK_TO]))
        return SB_E_STORE;
    return sb__sqlite_step_reset(s->st[ST_RELEASE]);
}

/* ---- checkpoints ------------------------------------------------------- */

static int on_wal(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    sb_sqlite_wal *w = arg;
    w->hook(w->ud, frames);
    return SQLITE_OK;
}

static int sqlite_wal_watch(sb_store *base, void (*hook)(void *ud, int frames),
                            void *ud)
{
    sb_sqlite *s = sb__sqlite(base);
    assert(!s->wal);
    s->wal = malloc(sizeof *s->wal);
    if (!s->wal) return -ENOMEM; /* SQLite keeps checkpointing at commit */
    *s->wal = (sb_sqlite_wal){hook, ud};
    /* Replaces the automatic checkpoint, which is itself a WAL hook. */
    sqlite3_wal_hook(s->db, on_wal, s->wal);
    return 0;
}

static int sqlite_checkpoint(sb_store *base, int *log, int *done)
{
    int rc = sqlite3_wal_checkpoint_v2(sb__sqlite(base)->db, NULL,
                                       SQLITE_CHECKPOINT_PASSIVE, log, done);
    if (rc == SQLITE_BUSY) return -EBUSY;
    return rc == SQLITE_OK ? 0 : SB_E_STORE;
}

static int sqlite_db_sync(sb_store *base)
{
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(sb__sqlite(base)->db, "main",
                             SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK ||
        !f || !f->pMethods)
        return -ENOTSUP;
    /* The flags SQLite gives a checkpoint's sync of the database. */
    return f->pMethods->xSync(f, SQLITE_SYNC_NORMAL) == SQLITE_OK ? 0
                                                                  : SB_E_STORE;
}

static int sqlite_max_pages(sb_store *base, uint32_t pages)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lu",
             (unsigned long)(pages ? pages : 0xfffffffeu));
    return exec_sql(sb__sqlite(base)->db, sql);
}

/* ---- settings ---------------------------------------------------------- */

/* Settings are read and written rarely (at start, on an admin's command):
 * their statements are prepared for each call rather than kept. */

static int sqlite_config_get(sb_store *base, const char *key, char **out,
                             size_t *len)
{
    sb_sqlite *s = sb__sqlite(base);
    static const char sql[] = "SELECT value FROM config WHERE key = ?1";
    sqlite3_stmt *st = NULL;
    bool own;
    int rc = sb__sqlite_read_begin(s, &own);
    if (rc) return rc;
    if ((rc = sb__sqlite_prepare(s, sql, sizeof sql - 1, &st))) goto out;
    rc = SB_E_STORE;
    sb__sqlite_bind_str(st, 1, key);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = SB_E_NOT_FOUND;
    } else if (step == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        size_t n = v ? (size_t)sqlite3_column_bytes(st, 0) : 0;
        rc = -ENOMEM;
        if ((*out = sb__store_strndup(v ? v : "", n))) {
            *len = n;
            rc = 0;
        }
    }
out:
    sqlite3_finalize(st);
    sb__sqlite_read_end(s, own);
    return rc;
}

static int sqlite_config_set(sb_store *base, const char *key, const char *value,
                             size_t len, int64_t now_ms)
{
    sb_sqlite *s = sb__sqlite(base);
    static const char sql[] = "INSERT INTO config(key, value, updated_ts)"
                              " VALUES(?1, ?2, ?3) ON CONFLICT(key) DO UPDATE"
                              " SET value = excluded.value,"
                              " updated_ts = excluded.updated_ts";
    sqlite3_stmt *st = NULL;
    int rc = sb__sqlite_prepare(s, sql, sizeof sql - 1, &st);
    if (rc) return rc;
    sb__sqlite_bind_str(st, 1, key);
    sqlite3_bind_text(st, 2, value, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SB_E_STORE;
    sqlite3_finalize(st);
    return rc;
}

static const sb_store_ops SQLITE_OPS = {
    .name = "sqlite",
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .savepoint = sqlite_savepoint,
    .savepoint_end = sqlite_savepoint_end,
    .in_write = sb__sqlite_in_write,
    .append = sb__sqlite_append,
    .user_upsert = sb__sqlite_user_upsert,
    .conv_create = sb__sqlite_conv_create,
    .cursor_ack = sb__sqlite_cursor_ack,
    .read_set = sb__sqlite_read_set,
    .service_open = sb__sqlite_service_open,
    .conv_route = sb__sqlite_conv_route,
    .first_response = sb__sqlite_first_response,
    .conv_note = sb__sqlite_conv_note,
    .recall = sb__sqlite_recall,
    .tag = sb__sqlite_tag,
    .member_put = sb__sqlite_member_put,
    .member_del = sb__sqlite_member_del,
    .config_set = sqlite_config_set,
    .index = sb__sqlite_index,
    .user_role = sb__sqlite_user_role,
    .conv_get = sb__sqlite_conv_get,
    .sync = sb__sqlite_sync,
    .history = sb__sqlite_history,
    .msg_get = sb__sqlite_msg_get,
    .conv_list = sb__sqlite_conv_list,
    .search = sb__sqlite_search,
    .service_convs = sb__sqlite_service_convs,
    .config_get = sqlite_config_get,
    .outbox_add = sb__sqlite_outbox_add,
    .outbox_claim = sb__sqlite_outbox_claim,
    .outbox_result = sb__sqlite_outbox_result,
    .outbox_failed = sb__sqlite_outbox_failed,
    .outbox_replay = sb__sqlite_outbox_replay,
    .user_erase = sb__sqlite_user_erase,
    .media_put = sb__sqlite_media_put,
    .media_get = sb__sqlite_media_get,
    .media_find = sb__sqlite_media_find,
    .media_ref = sb__sqlite_media_ref,
    .blob_put = sb__sqlite_blob_put,
    .blob_read = sb__sqlite_blob_read,
    .blob_gc = sb__sqlite_blob_gc,
    .csat_ask = sb__sqlite_csat_ask,
    .csat_set = sb__sqlite_csat_set,
    .report_scan = sb__sqlite_report_scan,
    .notes_find = sb__sqlite_notes_find,
    .notes_create = sb__sqlite_notes_create,
    .contact_get = sb__sqlite_contact_get,
    .contact_write = sb__sqlite_contact_write,
    .customer_convs = sb__sqlite_customer_convs,
    .cache = sqlite_cache,
    .wal_watch = sqlite_wal_watch,
    .checkpoint = sqlite_checkpoint,
    .db_sync = sqlite_db_sync,
    .max_pages = sqlite_max_pages,
};
