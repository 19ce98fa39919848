/* The embedded store on SQLite: the schema and its migrations, the prepared
 * statements of every path (cached for the life of the connection), and the
 * translation between rows and the protocol's protobuf-c structs. One
 * sb_store is one connection; the threads sharing a database are sb_storeq's.
 *
 * Search runs on an FTS5 trigram index over message bodies that is filled
 * behind the appends (sb_store_index), not by them: FTS5 costs more per
 * message than the whole append does. A search scans the few messages past
 * the index mark instead, so it never misses one. */
#include "sb_store.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sb_error.h"
#include "sb_walvfs.h"
#include "sb_utf8.h"

#define SCHEMA_VERSION 4
#define BUSY_TIMEOUT_MS 5000
#define CACHE_KIB 8192                 /* page cache per connection */
#define TEXT_BYTES_MAX SB_ID_BYTES_MAX /* desk and group names */
#define LIST_GROUPS_MAX 64             /* queued groups per conv_list */
#define SEARCH_WORDS_MAX 16            /* words per query */
#define TRIGRAM_CHARS 3                /* shorter words cannot use the index */

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

/* MIGRATIONS[v] takes a database from version v to v + 1. */
static const char *const MIGRATIONS[SCHEMA_VERSION] = {
    SCHEMA_V1_SQL,
    SCHEMA_V2_SQL,
    SCHEMA_V3_SQL,
    SCHEMA_V4_SQL,
};

#define MSG_COLS_(p)                                                           \
    p "msg_id, " p "conv_id, " p "seq, " p "sender, " p "sender_device, " p    \
      "client_msg_id, " p "type, " p "body, " p "quote_seq, " p "lang, " p     \
      "server_ts, " p "extra, " p "recalled, " p "tagged, " p "review"
#define MSG_COLS MSG_COLS_("")

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
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_TAGS_GET,
    ST_QUOTE_GET,
    ST_MSG_GET,
    ST_MSG_ID,
    ST_SVC_FIND,
    ST_ROUTE_GET,
    ST_ROUTE_SET,
    ST_MEMBER_DEL,
    ST_MEMBER_AGENT,
    ST_MEMBER_COUNT,
    ST_MEMBER_READ,
    ST_FIRST_RESPONSE,
    ST_AGENT_FIRST,
    ST_RECALL_GET,
    ST_RECALL_SET,
    ST_TAG_ADD,
    ST_TAG_DEL,
    ST_TAG_COUNT,
    ST_MSG_TAGGED,
    ST_SVC_CONVS,
    ST_FTS_UPTO,
    ST_FTS_SET,
    ST_FTS_FILL,
    ST_FTS_DELETE,
    ST_MSG_MAX,
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
                      "lang, server_ts, extra, review)"
                      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
                      " ?12)"
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
                       "created_ts, updated_ts, desk, grp, customer)"
                       " VALUES(?1, ?2, ?3, 0, ?4, ?4, ?5, ?6, ?7)",
    [ST_MEMBER_INSERT] = "INSERT INTO members(conv_id, user_id, role, "
                         "read_seq, delivered_seq, joined_ts)"
                         " VALUES(?1, ?2, ?3, 0, 0, ?4)",
    [ST_CONV_GET] = "SELECT kind, state, title, last_seq, created_ts, desk,"
                    " grp, agent, customer, updated_ts, first_response_ts,"
                    " closed_ts FROM convs WHERE conv_id = ?1",
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
    [ST_SAVEPOINT] = "SAVEPOINT sb",
    [ST_RELEASE] = "RELEASE sb",
    [ST_ROLLBACK_TO] = "ROLLBACK TO sb",
    [ST_TAGS_GET] = "SELECT tag FROM tags WHERE conv_id = ?1 AND seq = ?2"
                    " ORDER BY tag LIMIT " STR(SB_TAGS_MAX),
    /* substr counts characters: at least the bytes wanted, cut in C */
    [ST_QUOTE_GET] = "SELECT sender, type, substr(body, 1, " STR(
        SB_QUOTE_BYTES) "), recalled FROM messages"
                        " WHERE conv_id = ?1 AND seq = ?2",
    [ST_MSG_GET] = "SELECT " MSG_COLS " FROM messages"
                   " WHERE conv_id = ?1 AND seq = ?2",
    [ST_MSG_ID] = "SELECT msg_id FROM messages WHERE conv_id = ?1 AND seq = ?2",
    [ST_SVC_FIND] = "SELECT conv_id FROM convs WHERE customer = ?1"
                    " AND desk = ?2 AND kind = ?3 AND state <> ?4"
                    " ORDER BY conv_id DESC LIMIT 1",
    [ST_ROUTE_GET] = "SELECT state, agent FROM convs WHERE conv_id = ?1",
    [ST_ROUTE_SET] = "UPDATE convs SET state = ?2, grp = ?3, agent = ?4,"
                     " updated_ts = max(updated_ts, ?5),"
                     " queued_ts = CASE WHEN ?6 THEN ?5 ELSE queued_ts END,"
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
    [ST_MEMBER_READ] = "SELECT read_seq FROM members"
                       " WHERE conv_id = ?1 AND user_id = ?2",
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

typedef struct wal_watch wal_watch;

struct sb_store {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    wal_watch *wal; /* set by sb_store_wal_watch */
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
    return id && id[0] && strnlen(id, SB_ID_BYTES_MAX + 1) <= SB_ID_BYTES_MAX;
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

static char *str_dup_n(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* A short name that may be empty (desk, skill group); NULL counts as "". */
static bool text_valid(const char *t, size_t max)
{
    if (!t) return true;
    size_t n = strnlen(t, max + 1);
    return n <= max && sb_utf8_valid(t, n);
}

/* A tag: 1..SB_TAG_BYTES_MAX bytes of UTF-8, no control characters. */
static bool tag_valid(const char *t)
{
    if (!t) return false;
    size_t n = strnlen(t, SB_TAG_BYTES_MAX + 1);
    if (n == 0 || n > SB_TAG_BYTES_MAX || !sb_utf8_valid(t, n)) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f) return false;
    return true;
}

/* The length of the longest prefix of t[0..n) of at most max bytes that
 * ends on a character boundary (t is valid UTF-8). */
static size_t utf8_cut(const char *t, size_t n, size_t max)
{
    if (n <= max) return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)t[k] & 0xc0) == 0x80)
        k--;
    return k;
}

/* The tags of a conversation (seq 0) or of one of its messages, into a
 * repeated string field (left empty when there are none). */
static int tags_load(sb_store *s, uint64_t conv_id, uint64_t seq, char ***tags,
                     size_t *n_tags)
{
    sqlite3_stmt *st = s->st[ST_TAGS_GET];
    char **a = NULL;
    size_t n = 0;
    int rc;
    sqlite3_bind_int64(st, 1, i64(conv_id));
    sqlite3_bind_int64(st, 2, i64(seq));
    /* The statement's LIMIT keeps n within SB_TAGS_MAX. */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!a && !(a = calloc(SB_TAGS_MAX, sizeof *a))) goto nomem;
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t) continue;
        if (!(a[n] = str_dup_n(t, (size_t)sqlite3_column_bytes(st, 0))))
            goto nomem;
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        rc = SB_E_STORE;
        goto err;
    }
    *tags = a;
    *n_tags = n;
    return 0;
nomem:
    sqlite3_reset(st);
    rc = -ENOMEM;
err:
    for (size_t i = 0; i < n; i++)
        free(a[i]);
    free(a);
    return rc;
}

/* What a message shows of the message it quotes: sender, type, recall and
 * the first SB_QUOTE_BYTES bytes of its body. Nothing if it is not
 * there (append lets no message quote one that is not). */
static int quote_load(sb_store *s, uint64_t conv_id, uint64_t seq,
                      Sbp__Quote **out)
{
    sqlite3_stmt *st = s->st[ST_QUOTE_GET];
    Sbp__Quote *q = NULL;
    sqlite3_bind_int64(st, 1, i64(conv_id));
    sqlite3_bind_int64(st, 2, i64(seq));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? 0 : SB_E_STORE;
        goto out;
    }
    rc = -ENOMEM;
    if (!(q = malloc(sizeof *q))) goto out;
    sbp__quote__init(q);
    q->seq = seq;
    q->type = (Sbp__MsgType)sqlite3_column_int(st, 1);
    q->recalled = sqlite3_column_int(st, 3) != 0;
    if (col_text(st, 0, &q->sender)) goto out;
    const char *body = (const char *)sqlite3_column_text(st, 2);
    size_t n = (size_t)sqlite3_column_bytes(st, 2);
    if (!q->recalled && body && n) {
        char *b = str_dup_n(body, utf8_cut(body, n, SB_QUOTE_BYTES));
        if (!b) goto out;
        q->body = b;
    }
    *out = q;
    q = NULL;
    rc = 0;
out:
    sqlite3_reset(st);
    if (q) sbp__quote__free_unpacked(q, NULL);
    return rc;
}

/* Moves the structured parts packed in a row's extra column into m. */
static int extra_merge(sqlite3_stmt *st, int col, Sbp__Message *m)
{
    const uint8_t *b = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (!b || n <= 0) return 0;
    Sbp__Message *x = sbp__message__unpack(NULL, (size_t)n, b);
    if (!x) return SB_E_STORE; /* not what append packed */
    m->event = x->event;
    m->n_quick_replies = x->n_quick_replies;
    m->quick_replies = x->quick_replies;
    m->card = x->card;
    m->media = x->media;
    x->event = NULL;
    x->n_quick_replies = 0;
    x->quick_replies = NULL;
    x->card = NULL;
    x->media = NULL;
    sbp__message__free_unpacked(x, NULL);
    return 0;
}

/* Builds a message from a row of MSG_COLS: structured parts merged in, a
 * recall applied (no body, card or media). Tags and the quote cost a
 * lookup each, made only for a message that has them. */
static int msg_from_row(sb_store *s, sqlite3_stmt *st, Sbp__Message **out)
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
    m->recalled = sqlite3_column_int(st, 12) != 0;
    m->review = sqlite3_column_int(st, 14) != 0;
    int rc = -ENOMEM;
    if (col_text(st, 3, &m->sender) || col_text(st, 4, &m->sender_device) ||
        col_blob(st, 5, &m->client_msg_id) ||
        (!m->recalled && col_text(st, 7, &m->body)) ||
        col_text(st, 9, &m->lang))
        goto err;
    if ((rc = extra_merge(st, 11, m))) goto err;
    if (m->recalled) {
        if (m->card) sbp__card__free_unpacked(m->card, NULL);
        if (m->media) sbp__media__free_unpacked(m->media, NULL);
        m->card = NULL;
        m->media = NULL;
    }
    if (sqlite3_column_int(st, 13) &&
        (rc = tags_load(s, m->conv_id, m->seq, &m->tags, &m->n_tags)))
        goto err;
    if (m->quote_seq &&
        (rc = quote_load(s, m->conv_id, m->quote_seq, &m->quote)))
        goto err;
    *out = m;
    return 0;
err:
    sbp__message__free_unpacked(m, NULL);
    return rc;
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

/* Creates the schema of a new database or brings an old one up to date,
 * in place and in one transaction: every migration from its version on.
 * The version is re-read under the write lock: two connections may open
 * the file at once. */
static int schema_ensure(sqlite3 *db)
{
    int64_t v = 0;
    if (pragma_int(db, "PRAGMA user_version", &v)) return SB_E_STORE;
    if (v == SCHEMA_VERSION) return 0;
    if (v > SCHEMA_VERSION || v < 0) return SB_E_STORE; /* a newer build's */
    if (exec_sql(db, "BEGIN IMMEDIATE")) return SB_E_STORE;
    if (pragma_int(db, "PRAGMA user_version", &v)) goto err;
    if (v > SCHEMA_VERSION || v < 0) goto err;
    if (v < SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        for (; v < SCHEMA_VERSION; v++)
            if (exec_sql(db, MIGRATIONS[v])) goto err;
        if (exec_sql(db, sql)) goto err;
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
    /* Syncing every commit, the WAL's writes can be gathered (sb_walvfs). */
    const char *vfs = d == SB_DURABILITY_FSYNC && sb_walvfs_register() == 0
                          ? SB_WALVFS_NAME
                          : NULL;
    if (sqlite3_open_v2(path, &s->db, flags, vfs) != SQLITE_OK) goto err;
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    /* journal_mode answers "memory" for ":memory:"; that is fine. */
    if (exec_sql(s->db, "PRAGMA journal_mode = WAL") ||
        exec_sql(s->db, d == SB_DURABILITY_FSYNC ? "PRAGMA synchronous = FULL"
                                                 : "PRAGMA synchronous = "
                                                   "NORMAL") ||
        exec_sql(s->db, "PRAGMA temp_store = MEMORY") ||
        sb_store_cache(s, CACHE_KIB))
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
    free(s->wal);
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

int sb_store_cache(sb_store *s, uint32_t kib)
{
    assert(s && kib > 0);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA cache_size = -%lu", (unsigned long)kib);
    return exec_sql(s->db, sql);
}

struct wal_watch {
    void (*hook)(void *ud, int frames);
    void *ud;
};

static int on_wal(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    wal_watch *w = arg;
    w->hook(w->ud, frames);
    return SQLITE_OK;
}

void sb_store_wal_watch(sb_store *s, void (*hook)(void *ud, int frames),
                        void *ud)
{
    assert(s && hook && !s->wal);
    s->wal = malloc(sizeof *s->wal);
    if (!s->wal) return; /* then SQLite keeps checkpointing at commit */
    *s->wal = (wal_watch){hook, ud};
    /* Replaces the automatic checkpoint, which is itself a WAL hook. */
    sqlite3_wal_hook(s->db, on_wal, s->wal);
}

int sb_store_checkpoint(sb_store *s, int *log, int *done)
{
    assert(s && log && done);
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                       log, done);
    if (rc == SQLITE_BUSY) return -EBUSY;
    return rc == SQLITE_OK ? 0 : SB_E_STORE;
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
/* Packs the structured parts of msg (event, quick replies, card, media)
 * into *out (buf when it fits, else malloc'd); *len 0 when there are none,
 * the common case that costs nothing. */
static int extra_pack(const Sbp__Message *msg, uint8_t *buf, size_t size,
                      uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!msg->event && !msg->n_quick_replies && !msg->card && !msg->media)
        return 0;
    Sbp__Message x = SBP__MESSAGE__INIT;
    x.event = msg->event;
    x.n_quick_replies = msg->n_quick_replies;
    x.quick_replies = msg->quick_replies;
    x.card = msg->card;
    x.media = msg->media;
    size_t n = sbp__message__get_packed_size(&x);
    uint8_t *p = n <= size ? buf : malloc(n);
    if (!p) return -ENOMEM;
    sbp__message__pack(&x, p);
    *out = p;
    *len = n;
    return 0;
}

int sb_store_append(sb_store *s, Sbp__Message *msg, int64_t now_ms,
                    bool *duplicate)
{
    assert(s && msg && duplicate);
    assert(in_write_txn(s));
    *duplicate = false;
    bool keyed = msg->client_msg_id.len != 0;
    if (!id_valid(msg->sender)) return SB_E_INVALID;
    if (keyed && (msg->client_msg_id.len != SB_CLIENT_MSG_ID_BYTES ||
                  !msg->client_msg_id.data))
        return SB_E_INVALID;
    if (msg->n_quick_replies && !msg->quick_replies) return SB_E_INVALID;
    for (size_t i = 0; i < msg->n_quick_replies; i++)
        if (!msg->quick_replies[i]) return SB_E_INVALID;

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
    uint8_t xbuf[512], *x;
    size_t xlen;
    if ((rc = extra_pack(msg, xbuf, sizeof xbuf, &x, &xlen))) return rc;
    if (xlen)
        sqlite3_bind_blob(st, 11, x, (int)xlen, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 11);
    sqlite3_bind_int(st, 12, msg->review);
    rc = step_reset(st);
    if (x != xbuf) free(x);
    if (rc) return SB_E_STORE;
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
    /* The live PUSH carries the quote too, as every read does. */
    if (msg->quote_seq && !msg->quote &&
        (rc = quote_load(s, msg->conv_id, msg->quote_seq, &msg->quote)))
        return rc;
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
        m->role = (Sbp__Role)sqlite3_column_int(st, 1);
        m->read_seq = (uint64_t)sqlite3_column_int64(st, 2);
        m->delivered_seq = (uint64_t)sqlite3_column_int64(st, 3);
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
    c->updated_ts = sqlite3_column_int64(st, 9);
    if (c->kind == SBP__CONV_KIND__CONV_SERVICE) {
        int64_t first = sqlite3_column_int64(st, 10);
        int64_t closed = sqlite3_column_int64(st, 11);
        c->first_response_ms = first ? first - c->created_ts : 0;
        c->resolution_ms = closed ? closed - c->created_ts : 0;
    }
    if ((rc = col_text(st, 2, &c->title)) || (rc = col_text(st, 5, &c->desk)) ||
        (rc = col_text(st, 6, &c->group)) ||
        (rc = col_text(st, 7, &c->agent)) ||
        (rc = col_text(st, 8, &c->customer)))
        goto err;
    sqlite3_reset(st);
    if ((rc = members_load(s, c))) goto err;
    if ((rc = tags_load(s, conv_id, 0, &c->tags, &c->n_tags))) goto err;
    *out = c;
    return 0;
err:
    sqlite3_reset(st);
    if (c) sbp__conversation__free_unpacked(c, NULL);
    return rc;
}

static int conv_insert(sb_store *s, Sbp__ConvKind kind, Sbp__ConvState state,
                       const char *title, const char *desk, const char *group,
                       const char *customer, int64_t now_ms, uint64_t *conv_id)
{
    sqlite3_stmt *st = s->st[ST_CONV_INSERT];
    sqlite3_bind_int(st, 1, (int)kind);
    sqlite3_bind_int(st, 2, (int)state);
    bind_str(st, 3, title);
    sqlite3_bind_int64(st, 4, now_ms);
    bind_str(st, 5, desk);
    bind_str(st, 6, group);
    bind_str(st, 7, customer);
    if (step_reset(st)) return SB_E_STORE;
    *conv_id = (uint64_t)sqlite3_last_insert_rowid(s->db);
    return 0;
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
    if (n == 0 || n > SB_MEMBERS_MAX) return SB_E_INVALID;
    Sbp__Role role[SB_MEMBERS_MAX];
    size_t customers = 0;
    const char *customer = "";
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
        if (role[i] == SBP__ROLE__ROLE_CUSTOMER) {
            customers++;
            customer = user_ids[i];
        }
    }
    /* A customer talks to the service side, never to another customer. */
    if (customers > 1) return SB_E_FORBIDDEN;

    /* A service conversation starts with the bot (DESIGN.md section 4). */
    Sbp__ConvState state = kind == SBP__CONV_KIND__CONV_SERVICE
                               ? SBP__CONV_STATE__STATE_BOT
                               : SBP__CONV_STATE__STATE_OPEN;
    uint64_t conv_id;
    int rc = conv_insert(s, kind, state, title, "", "",
                         kind == SBP__CONV_KIND__CONV_SERVICE ? customer : "",
                         now_ms, &conv_id);
    if (rc) return rc;

    sqlite3_stmt *st = s->st[ST_MEMBER_INSERT];
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
        if ((rc = msg_from_row(s, st, &m))) goto out;
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
        if ((rc = msg_from_row(s, st, &m))) goto err;
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

/* ---- customer service ------------------------------------------------------
 */

int sb__store_savepoint(sb_store *s)
{
    assert(s);
    assert(in_write_txn(s));
    return step_reset(s->st[ST_SAVEPOINT]);
}

int sb__store_savepoint_end(sb_store *s, bool keep)
{
    assert(s);
    if (!keep && step_reset(s->st[ST_ROLLBACK_TO])) return SB_E_STORE;
    return step_reset(s->st[ST_RELEASE]);
}

static int int_query(sqlite3_stmt *st, int64_t *out)
{
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : SB_E_STORE;
}

int sb_store_service_open(sb_store *s, const char *customer, const char *desk,
                          const char *group, int64_t now_ms,
                          Sbp__Conversation **out, bool *created)
{
    assert(s && out && created);
    assert(in_write_txn(s));
    *out = NULL;
    *created = false;
    if (!id_valid(customer) || !text_valid(desk, TEXT_BYTES_MAX) ||
        !text_valid(group, TEXT_BYTES_MAX))
        return SB_E_INVALID;
    sqlite3_stmt *st = s->st[ST_SVC_FIND];
    bind_str(st, 1, customer);
    bind_str(st, 2, desk);
    sqlite3_bind_int(st, 3, SBP__CONV_KIND__CONV_SERVICE);
    sqlite3_bind_int(st, 4, SBP__CONV_STATE__STATE_CLOSED);
    int64_t found;
    int rc = int_query(st, &found);
    if (rc) return rc;
    if (found) return conv_load(s, (uint64_t)found, out);

    uint64_t conv_id;
    rc =
        conv_insert(s, SBP__CONV_KIND__CONV_SERVICE, SBP__CONV_STATE__STATE_BOT,
                    "", desk, group, customer, now_ms, &conv_id);
    if (rc) return rc;
    st = s->st[ST_MEMBER_INSERT];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    bind_str(st, 2, customer);
    sqlite3_bind_int(st, 3, SBP__ROLE__ROLE_CUSTOMER);
    sqlite3_bind_int64(st, 4, now_ms);
    if (step_reset(st)) return SB_E_STORE;
    if ((rc = conv_load(s, conv_id, out))) return rc;
    *created = true;
    return 0;
}

/* A transfer (ASSIGNED to another agent) counts as entering ASSIGNED:
 * assigned_ts is when the current agent got the conversation. */
int sb_store_conv_route(sb_store *s, uint64_t conv_id, Sbp__ConvState state,
                        const char *group, const char *agent, int64_t now_ms,
                        Sbp__Conversation **out)
{
    assert(s);
    assert(in_write_txn(s));
    if (out) *out = NULL;
    if (!group) group = "";
    if (!agent) agent = "";
    if ((int)state < (int)SBP__CONV_STATE__STATE_OPEN ||
        (int)state > (int)SBP__CONV_STATE__STATE_CLOSED ||
        !text_valid(group, TEXT_BYTES_MAX) || (agent[0] && !id_valid(agent)))
        return SB_E_INVALID;

    sqlite3_stmt *st = s->st[ST_ROUTE_GET];
    char was_agent[SB_ID_BYTES_MAX + 1] = "";
    Sbp__ConvState was = SBP__CONV_STATE__STATE_UNSPECIFIED;
    sqlite3_bind_int64(st, 1, i64(conv_id));
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
        sqlite3_bind_int64(st, 1, i64(conv_id));
        bind_str(st, 2, was_agent);
        bind_str(st, 3, agent);
        if ((rc = int_query(st, &others))) return rc;
        if (others + 1 > SB_MEMBERS_MAX) return SB_E_INVALID;
    }

    if (moved && was_agent[0]) {
        st = s->st[ST_MEMBER_DEL];
        sqlite3_bind_int64(st, 1, i64(conv_id));
        bind_str(st, 2, was_agent);
        if (step_reset(st)) return SB_E_STORE;
    }
    if (agent[0]) {
        st = s->st[ST_MEMBER_AGENT];
        sqlite3_bind_int64(st, 1, i64(conv_id));
        bind_str(st, 2, agent);
        sqlite3_bind_int(st, 3, SBP__ROLE__ROLE_AGENT);
        sqlite3_bind_int64(st, 4, now_ms);
        if (step_reset(st)) return SB_E_STORE;
    }
    bool closing = state == SBP__CONV_STATE__STATE_CLOSED;
    st = s->st[ST_ROUTE_SET];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    sqlite3_bind_int(st, 2, (int)state);
    bind_str(st, 3, group);
    bind_str(st, 4, agent);
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
    if (step_reset(st)) return SB_E_STORE;
    return out ? conv_load(s, conv_id, out) : 0;
}

int sb_store_first_response(sb_store *s, uint64_t conv_id, int64_t now_ms)
{
    assert(s);
    assert(in_write_txn(s));
    sqlite3_stmt *st = s->st[ST_AGENT_FIRST];
    if (now_ms == 0) {
        sqlite3_bind_int64(st, 1, i64(conv_id));
        int rc = int_query(st, &now_ms);
        if (rc) return rc;
    }
    st = s->st[ST_FIRST_RESPONSE];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    sqlite3_bind_int64(st, 2, now_ms);
    if (now_ms && step_reset(st)) return SB_E_STORE;
    if (now_ms && sqlite3_changes(s->db) > 0) return 0;
    uint64_t last_seq;
    bool member;
    return conv_member(s, conv_id, "", &last_seq, &member);
}

/* One message by (conv, seq), no transaction of its own. */
static int msg_load(sb_store *s, uint64_t conv_id, uint64_t seq,
                    Sbp__Message **out)
{
    sqlite3_stmt *st = s->st[ST_MSG_GET];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    sqlite3_bind_int64(st, 2, i64(seq));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = msg_from_row(s, st, out);
    else
        rc = rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    sqlite3_reset(st);
    return rc;
}

int sb_store_msg_get(sb_store *s, uint64_t conv_id, uint64_t seq,
                     Sbp__Message **out)
{
    assert(s && out);
    *out = NULL;
    bool own;
    int rc = read_begin(s, &own);
    if (rc) return rc;
    rc = msg_load(s, conv_id, seq, out);
    read_end(s, own);
    return rc;
}

/* The body stays in the table (for review and audit); reads blank it. It
 * leaves the search index, which needs the very text it indexed to forget
 * it: recall is the only change a body ever sees. */
int sb_store_recall(sb_store *s, uint64_t conv_id, uint64_t seq)
{
    assert(s);
    assert(in_write_txn(s));
    int64_t upto;
    int rc = int_query(s->st[ST_FTS_UPTO], &upto);
    if (rc) return rc;
    sqlite3_stmt *st = s->st[ST_RECALL_GET];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    sqlite3_bind_int64(st, 2, i64(seq));
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    }
    int64_t msg_id = sqlite3_column_int64(st, 0);
    bool recalled = sqlite3_column_int(st, 1) != 0;
    sqlite3_stmt *del = s->st[ST_FTS_DELETE];
    if (!recalled && msg_id <= upto) {
        sqlite3_bind_int64(del, 1, msg_id);
        sqlite3_bind_text(del, 2, (const char *)sqlite3_column_text(st, 2),
                          sqlite3_column_bytes(st, 2), SQLITE_TRANSIENT);
    }
    sqlite3_reset(st);
    if (recalled) return 0;
    if (msg_id <= upto) {
        rc = step_reset(del);
        sqlite3_bind_null(del, 2); /* drop the copy of the body */
        if (rc) return rc;
    }
    st = s->st[ST_RECALL_SET];
    sqlite3_bind_int64(st, 1, msg_id);
    return step_reset(st);
}

static int tag_step(sb_store *s, int id, uint64_t conv_id, uint64_t seq,
                    const char *tag)
{
    sqlite3_stmt *st = s->st[id];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    sqlite3_bind_int64(st, 2, i64(seq));
    bind_str(st, 3, tag);
    return step_reset(st);
}

/* Removals first, then additions: a tag in both lists stays. The limit is
 * checked on the result, under a savepoint that a refusal rolls back. */
int sb_store_tag(sb_store *s, uint64_t conv_id, uint64_t seq, char *const *add,
                 size_t n_add, char *const *remove, size_t n_remove)
{
    assert(s);
    assert(n_add == 0 || add);
    assert(n_remove == 0 || remove);
    assert(in_write_txn(s));
    if (n_add > SB_TAGS_MAX || n_remove > SB_TAGS_MAX) return SB_E_TOO_LARGE;
    for (size_t i = 0; i < n_add; i++)
        if (!tag_valid(add[i])) return SB_E_INVALID;
    for (size_t i = 0; i < n_remove; i++)
        if (!tag_valid(remove[i])) return SB_E_INVALID;
    sqlite3_stmt *st = s->st[seq ? ST_MSG_ID : ST_CONV_SEQ];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    if (seq) sqlite3_bind_int64(st, 2, i64(seq));
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    if (n_add + n_remove == 0) return 0;

    if ((rc = sb__store_savepoint(s))) return rc;
    for (size_t i = 0; i < n_remove && rc == 0; i++)
        rc = tag_step(s, ST_TAG_DEL, conv_id, seq, remove[i]);
    for (size_t i = 0; i < n_add && rc == 0; i++)
        rc = tag_step(s, ST_TAG_ADD, conv_id, seq, add[i]);
    int64_t n = 0;
    if (rc == 0) {
        st = s->st[ST_TAG_COUNT];
        sqlite3_bind_int64(st, 1, i64(conv_id));
        sqlite3_bind_int64(st, 2, i64(seq));
        rc = int_query(st, &n);
    }
    if (rc) return rc; /* a store failure: the caller rolls back */
    if (n > SB_TAGS_MAX) {
        rc = sb__store_savepoint_end(s, false);
        return rc ? rc : SB_E_TOO_LARGE;
    }
    if (seq) {
        st = s->st[ST_MSG_TAGGED];
        sqlite3_bind_int64(st, 1, i64(conv_id));
        sqlite3_bind_int64(st, 2, i64(seq));
        sqlite3_bind_int(st, 3, n > 0);
        if (step_reset(st)) return SB_E_STORE;
    }
    return sb__store_savepoint_end(s, true);
}

/* ---- conversation list -----------------------------------------------------
 */

/* A conv_list cursor: "" or "<updated_ts>:<conv_id>" of the last entry of
 * the page before. */
static int list_cursor_parse(const char *c, bool *set, int64_t *ts,
                             uint64_t *id)
{
    *set = false;
    if (!c || !c[0]) return 0;
    if (strnlen(c, SB_LIST_CURSOR_BYTES_MAX + 1) > SB_LIST_CURSOR_BYTES_MAX)
        return SB_E_INVALID;
    char *end;
    errno = 0;
    long long t = strtoll(c, &end, 10);
    if (end == c || *end != ':' || errno) return SB_E_INVALID;
    const char *p = end + 1;
    if (*p < '0' || *p > '9') return SB_E_INVALID;
    unsigned long long v = strtoull(p, &end, 10);
    if (*end || errno) return SB_E_INVALID;
    *ts = t;
    *id = v;
    *set = true;
    return 0;
}

/* Appends formatted text to sql[size]; false once it no longer fits. */
static bool sql_add(char *sql, size_t size, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool sql_add(char *sql, size_t size, size_t *n, const char *fmt, ...)
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

/* The statement of one conv_list page. Parameters: ?1 user, ?2 state,
 * ?3 tag, ?4 ?5 the cursor (updated_ts, conv_id; ?4 NULL: none), ?6 rows,
 * ?7 QUEUED, ?8 CONV_SERVICE, ?9... the queued groups. The candidates come
 * from an index (the user's memberships, the queues of the groups, a tag,
 * a state) whenever one fits; keyset order makes the pages stable. */
static int list_prepare(sb_store *s, bool all, Sbp__ConvState state, bool tag,
                        size_t n_groups, sqlite3_stmt **out)
{
    char sql[1024 + LIST_GROUPS_MAX * 8];
    size_t n = 0;
    sql_add(sql, sizeof sql, &n,
            "SELECT c.conv_id, c.updated_ts FROM convs c WHERE ");
    if (all && tag) {
        sql_add(sql, sizeof sql, &n,
                "c.conv_id IN (SELECT conv_id FROM tags"
                " WHERE tag = ?3 AND seq = 0)");
    } else if (all && state) {
        sql_add(sql, sizeof sql, &n, "c.state = ?2");
    } else if (all) {
        sql_add(sql, sizeof sql, &n, "1");
    } else {
        sql_add(sql, sizeof sql, &n,
                "c.conv_id IN (SELECT conv_id FROM members WHERE user_id = ?1");
        if (n_groups) {
            sql_add(sql, sizeof sql, &n,
                    " UNION SELECT conv_id FROM convs WHERE state = ?7"
                    " AND kind = ?8 AND grp IN (");
            for (size_t i = 0; i < n_groups; i++)
                sql_add(sql, sizeof sql, &n, "%s?%zu", i ? ", " : "", 9 + i);
            sql_add(sql, sizeof sql, &n, ")");
        }
        sql_add(sql, sizeof sql, &n, ")");
    }
    bool ok =
        sql_add(sql, sizeof sql, &n,
                " AND (?2 = 0 OR c.state = ?2)"
                " AND (?3 = '' OR EXISTS(SELECT 1 FROM tags t WHERE t.conv_id ="
                " c.conv_id AND t.seq = 0 AND t.tag = ?3))"
                " AND (?4 IS NULL OR c.updated_ts < ?4 OR (c.updated_ts = ?4"
                " AND c.conv_id < ?5))"
                " ORDER BY c.updated_ts DESC, c.conv_id DESC LIMIT ?6");
    assert(ok); /* the buffer holds the longest statement */
    (void)ok;
    return sqlite3_prepare_v2(s->db, sql, (int)n, out, NULL) == SQLITE_OK
               ? 0
               : SB_E_STORE;
}

/* Fills in what a list entry says for the asking user: read_seq and
 * unread if a member, and the last message. */
static int list_entry_fill(sb_store *s, const char *user_id,
                           Sbp__Conversation *c)
{
    sqlite3_stmt *st = s->st[ST_MEMBER_READ];
    sqlite3_bind_int64(st, 1, i64(c->conv_id));
    bind_str(st, 2, user_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        c->read_seq = (uint64_t)sqlite3_column_int64(st, 0);
        c->unread = c->last_seq > c->read_seq ? c->last_seq - c->read_seq : 0;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SB_E_STORE;
    if (c->last_seq == 0) return 0;
    return msg_load(s, c->conv_id, c->last_seq, &c->last_message);
}

int sb_store_conv_list(sb_store *s, const char *user_id, bool all,
                       Sbp__ConvState state, const char *tag,
                       char *const *queued_groups, size_t n_groups,
                       const char *cursor, uint32_t limit,
                       Sbp__ConvListResp **out)
{
    assert(s && out);
    assert(n_groups == 0 || queued_groups);
    *out = NULL;
    if (!tag) tag = "";
    if (!queued_groups) n_groups = 0;
    if (!all && !id_valid(user_id)) return SB_E_INVALID;
    if ((int)state < 0 || (int)state > (int)SBP__CONV_STATE__STATE_CLOSED)
        return SB_E_INVALID;
    if (tag[0] && !tag_valid(tag)) return SB_E_INVALID;
    if (n_groups > LIST_GROUPS_MAX) return SB_E_INVALID;
    for (size_t i = 0; i < n_groups; i++)
        if (!queued_groups[i] || !text_valid(queued_groups[i], TEXT_BYTES_MAX))
            return SB_E_INVALID;
    bool after;
    int64_t after_ts = 0;
    uint64_t after_id = 0;
    int rc = list_cursor_parse(cursor, &after, &after_ts, &after_id);
    if (rc) return rc;
    if (limit == 0 || limit > SB_STORE_PAGE_MAX) limit = SB_STORE_PAGE_MAX;

    bool own = false;
    sqlite3_stmt *st = NULL;
    Sbp__ConvListResp *r = malloc(sizeof *r);
    rc = -ENOMEM;
    if (!r) return rc;
    sbp__conv_list_resp__init(r);
    if (!(r->convs = malloc(limit * sizeof *r->convs))) goto err;
    if ((rc = read_begin(s, &own))) goto err;
    if ((rc =
             list_prepare(s, all, state, tag[0] != 0, all ? 0 : n_groups, &st)))
        goto err;
    bind_str(st, 1, user_id);
    sqlite3_bind_int(st, 2, (int)state);
    bind_str(st, 3, tag);
    if (after) {
        sqlite3_bind_int64(st, 4, after_ts);
        sqlite3_bind_int64(st, 5, i64(after_id));
    }
    sqlite3_bind_int64(st, 6, (sqlite3_int64)limit + 1);
    if (!all && n_groups) {
        sqlite3_bind_int(st, 7, SBP__CONV_STATE__STATE_QUEUED);
        sqlite3_bind_int(st, 8, SBP__CONV_KIND__CONV_SERVICE);
        for (size_t i = 0; i < n_groups; i++)
            bind_str(st, 9 + (int)i, queued_groups[i]);
    }
    int step;
    int64_t last_ts = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (r->n_convs == limit) {
            r->more = true;
            break;
        }
        Sbp__Conversation *c;
        if ((rc = conv_load(s, (uint64_t)sqlite3_column_int64(st, 0), &c)))
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
    read_end(s, own);
    *out = r;
    return 0;
err:
    sqlite3_finalize(st);
    read_end(s, own);
    sbp__conv_list_resp__free_unpacked(r, NULL);
    return rc;
}

/* ---- search -------------------------------------------------------------- */

typedef struct words {
    const char *p[SEARCH_WORDS_MAX];
    size_t len[SEARCH_WORDS_MAX];
    bool indexed[SEARCH_WORDS_MAX]; /* long enough for the trigram index */
    size_t n, n_indexed;
} words;

/* Bytes of white space at p: ASCII, or U+3000 (the ideographic space CJK
 * input methods type). */
static size_t space_at(const char *p, size_t n)
{
    unsigned char c = (unsigned char)p[0];
    if (c == ' ' || (c >= '\t' && c <= '\r')) return 1;
    if (n >= 3 && c == 0xe3 && (unsigned char)p[1] == 0x80 &&
        (unsigned char)p[2] == 0x80)
        return 3;
    return 0;
}

static int words_split(const char *q, words *w)
{
    size_t len = strnlen(q, SB_QUERY_BYTES_MAX + 1);
    if (len > SB_QUERY_BYTES_MAX) return SB_E_TOO_LARGE;
    if (!sb_utf8_valid(q, len)) return SB_E_INVALID;
    w->n = w->n_indexed = 0;
    size_t i = 0;
    while (i < len) {
        size_t sp = space_at(q + i, len - i);
        if (sp) {
            i += sp;
            continue;
        }
        size_t start = i, chars = 0;
        while (i < len && !space_at(q + i, len - i)) {
            chars++;
            i++;
            while (i < len && ((unsigned char)q[i] & 0xc0) == 0x80)
                i++;
        }
        if (w->n == SEARCH_WORDS_MAX) return SB_E_TOO_LARGE;
        w->p[w->n] = q + start;
        w->len[w->n] = i - start;
        w->indexed[w->n] = chars >= TRIGRAM_CHARS;
        w->n_indexed += w->indexed[w->n];
        w->n++;
    }
    return w->n ? 0 : SB_E_INVALID;
}

/* The FTS5 expression: every indexed word as a quoted string ("" inside
 * doubled), so the query is never FTS syntax; strings side by side AND. */
static char *match_expr(const words *w)
{
    size_t size = 1;
    for (size_t i = 0; i < w->n; i++)
        size += 2 * w->len[i] + 3;
    char *m = malloc(size), *o = m;
    if (!m) return NULL;
    for (size_t i = 0; i < w->n; i++) {
        if (!w->indexed[i]) continue;
        if (o != m) *o++ = ' ';
        *o++ = '"';
        for (size_t k = 0; k < w->len[i]; k++) {
            if (w->p[i][k] == '"') *o++ = '"';
            *o++ = w->p[i][k];
        }
        *o++ = '"';
    }
    *o = '\0';
    return m;
}

/* A LIKE pattern per word: %word% with %, _ and \ escaped by \. */
static char *like_patterns(const words *w, const char *pat[])
{
    size_t size = 0;
    for (size_t i = 0; i < w->n; i++)
        size += 2 * w->len[i] + 3;
    char *buf = malloc(size), *o = buf;
    if (!buf) return NULL;
    for (size_t i = 0; i < w->n; i++) {
        pat[i] = o;
        *o++ = '%';
        for (size_t k = 0; k < w->len[i]; k++) {
            char c = w->p[i][k];
            if (c == '%' || c == '_' || c == '\\') *o++ = '\\';
            *o++ = c;
        }
        *o++ = '%';
        *o++ = '\0';
    }
    return buf;
}

typedef struct search_ctx {
    const char *user_id;
    bool all;
    uint64_t conv_id;
    const words *w;
    const char *match;
    const char **pat;
    uint32_t limit;
} search_ctx;

/* Runs one half of a search, adding to r, newest first. Parameters: ?1
 * the lowest msg_id (exclusive) of a scan, ?2 the conversation or the
 * user, ?3 the FTS expression, ?4 rows, ?5... LIKE patterns. fts: the
 * indexed words through the index, the short ones by LIKE on its hits.
 * Otherwise a scan of the messages past msg_id lo (a query of short words
 * only: lo 0, every message in scope) with every word by LIKE; past the
 * index mark the scan goes by msg_id (the + keeps SQLite off the
 * conversation index there). */
static int search_run(sb_store *s, const search_ctx *x, bool fts, int64_t lo,
                      Sbp__SearchResp *r)
{
    char sql[2048 + SEARCH_WORDS_MAX * 48];
    size_t n = 0;
    const char *plus = !fts && lo ? "+" : "";
    sql_add(sql, sizeof sql, &n, "SELECT " MSG_COLS_("m.") " FROM ");
    if (fts)
        sql_add(sql, sizeof sql, &n,
                "msg_fts f JOIN messages m ON m.msg_id = f.rowid"
                " WHERE f.msg_fts MATCH ?3");
    else
        sql_add(sql, sizeof sql, &n, "messages m WHERE m.msg_id > ?1");
    sql_add(sql, sizeof sql, &n, " AND m.recalled = 0");
    if (x->conv_id)
        sql_add(sql, sizeof sql, &n, " AND %sm.conv_id = ?2", plus);
    else if (!x->all)
        sql_add(sql, sizeof sql, &n,
                " AND %sm.conv_id IN (SELECT conv_id FROM members"
                " WHERE user_id = ?2)",
                plus);
    for (size_t i = 0; i < x->w->n; i++)
        if (!fts || !x->w->indexed[i])
            sql_add(sql, sizeof sql, &n, " AND m.body LIKE ?%zu ESCAPE '\\'",
                    5 + i);
    bool ok = sql_add(sql, sizeof sql, &n, " ORDER BY %s DESC LIMIT ?4",
                      fts                     ? "f.rowid"
                      : x->conv_id && lo == 0 ? "m.seq"
                                              : "m.msg_id");
    assert(ok);
    (void)ok;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, (int)n, &st, NULL) != SQLITE_OK)
        return SB_E_STORE;
    sqlite3_bind_int64(st, 1, lo);
    if (x->conv_id)
        sqlite3_bind_int64(st, 2, i64(x->conv_id));
    else
        bind_str(st, 2, x->user_id);
    bind_str(st, 3, x->match);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)(x->limit - r->n_messages));
    for (size_t i = 0; i < x->w->n; i++)
        bind_str(st, 5 + (int)i, x->pat[i]);
    int rc, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW &&
           r->n_messages < x->limit) {
        Sbp__Message *m;
        if ((rc = msg_from_row(s, st, &m))) goto out;
        r->messages[r->n_messages++] = m;
    }
    rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : SB_E_STORE;
out:
    sqlite3_finalize(st);
    return rc;
}

/* Messages past the index mark are found by a scan; they are newer than
 * any indexed one, so that half comes first. */
int sb_store_search(sb_store *s, const char *user_id, bool all,
                    uint64_t conv_id, const char *query, uint32_t limit,
                    Sbp__SearchResp **out)
{
    assert(s && out);
    *out = NULL;
    if (!query || (!all && !id_valid(user_id))) return SB_E_INVALID;
    if (limit == 0 || limit > SB_STORE_PAGE_MAX) limit = SB_STORE_PAGE_MAX;
    words w;
    int rc = words_split(query, &w);
    if (rc) return rc;

    const char *pat[SEARCH_WORDS_MAX];
    search_ctx x = {.user_id = user_id,
                    .all = all,
                    .conv_id = conv_id,
                    .w = &w,
                    .pat = pat,
                    .limit = limit};
    char *match = match_expr(&w), *pats = like_patterns(&w, pat);
    bool own = false;
    x.match = match;
    Sbp__SearchResp *r = malloc(sizeof *r);
    rc = -ENOMEM;
    if (r) sbp__search_resp__init(r);
    if (!r || !match || !pats ||
        !(r->messages = malloc(limit * sizeof *r->messages)))
        goto out;
    if ((rc = read_begin(s, &own))) goto out;
    if (conv_id) {
        uint64_t last_seq;
        bool member = false;
        rc = conv_member(s, conv_id, all ? "" : user_id, &last_seq, &member);
        if (rc == 0 && !all && !member) rc = SB_E_FORBIDDEN;
        if (rc) goto out;
    }
    int64_t upto = 0;
    if (w.n_indexed && (rc = int_query(s->st[ST_FTS_UPTO], &upto))) goto out;
    if ((rc = search_run(s, &x, false, upto, r))) goto out;
    if (w.n_indexed && r->n_messages < limit)
        rc = search_run(s, &x, true, 0, r);
out:
    read_end(s, own);
    free(match);
    free(pats);
    if (rc) {
        if (r) sbp__search_resp__free_unpacked(r, NULL);
        return rc;
    }
    *out = r;
    return 0;
}

int sb_store_index(sb_store *s, uint32_t max_msgs, uint64_t *left)
{
    assert(s);
    assert(max_msgs == 0 || in_write_txn(s));
    bool own = false;
    int64_t upto, top;
    int rc = max_msgs ? 0 : read_begin(s, &own);
    if (rc) return rc;
    if ((rc = int_query(s->st[ST_FTS_UPTO], &upto)) ||
        (rc = int_query(s->st[ST_MSG_MAX], &top)))
        goto out;
    if (max_msgs && top > upto) {
        int64_t hi = top - upto > (int64_t)max_msgs ? upto + max_msgs : top;
        sqlite3_stmt *st = s->st[ST_FTS_FILL];
        sqlite3_bind_int64(st, 1, upto);
        sqlite3_bind_int64(st, 2, hi);
        if ((rc = step_reset(st))) goto out;
        st = s->st[ST_FTS_SET];
        sqlite3_bind_int64(st, 1, hi);
        if ((rc = step_reset(st))) goto out;
        upto = hi;
    }
    if (left) *left = top > upto ? (uint64_t)(top - upto) : 0;
out:
    read_end(s, own);
    return rc;
}

/* ---- service conversations -------------------------------------------------
 */

int sb_store_service_convs(sb_store *s, Sbp__ConvState state,
                           Sbp__Conversation ***out, size_t *n_out)
{
    assert(s && out && n_out);
    *out = NULL;
    *n_out = 0;
    if (state != SBP__CONV_STATE__STATE_BOT &&
        state != SBP__CONV_STATE__STATE_QUEUED &&
        state != SBP__CONV_STATE__STATE_ASSIGNED)
        return SB_E_INVALID;
    Sbp__Conversation **list = NULL;
    size_t n = 0, cap = 0;
    bool own;
    int rc = read_begin(s, &own);
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
        if ((rc =
                 conv_load(s, (uint64_t)sqlite3_column_int64(st, 0), &list[n])))
            goto err;
        n++;
    }
    if (step != SQLITE_DONE) {
        rc = SB_E_STORE;
        goto err;
    }
    sqlite3_reset(st);
    read_end(s, own);
    *out = list;
    *n_out = n;
    return 0;
err:
    sqlite3_reset(st);
    read_end(s, own);
    for (size_t i = 0; i < n; i++)
        sbp__conversation__free_unpacked(list[i], NULL);
    free(list);
    return rc;
}

/* ---- configuration ------------------------------------------------------- */

/* Configuration is read and written rarely (at start, on an admin's
 * command): its statements are prepared for each call rather than kept. */

static bool config_key_valid(const char *key)
{
    size_t n = key ? strnlen(key, SB_STORE_CONFIG_KEY_BYTES_MAX + 1) : 0;
    return n >= 1 && n <= SB_STORE_CONFIG_KEY_BYTES_MAX &&
           sb_utf8_valid(key, n);
}

int sb_store_config_get(sb_store *s, const char *key, char **out, size_t *len)
{
    assert(s && out && len);
    *out = NULL;
    *len = 0;
    if (!config_key_valid(key)) return SB_E_INVALID;
    sqlite3_stmt *st = NULL;
    bool own;
    int rc = read_begin(s, &own);
    if (rc) return rc;
    rc = SB_E_STORE;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM config WHERE key = ?1", -1,
                           &st, NULL) != SQLITE_OK)
        goto out;
    bind_str(st, 1, key);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = SB_E_NOT_FOUND;
    } else if (step == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        rc = -ENOMEM;
        if ((*out = str_dup_n(v ? v : "", v ? n : 0))) {
            *len = v ? n : 0;
            rc = 0;
        }
    }
out:
    sqlite3_finalize(st);
    read_end(s, own);
    return rc;
}

int sb_store_config_set(sb_store *s, const char *key, const char *value,
                        size_t len, int64_t now_ms)
{
    assert(s && (value || len == 0));
    assert(in_write_txn(s));
    if (!config_key_valid(key) || memchr(value ? value : "", '\0', len) ||
        !sb_utf8_valid(value ? value : "", len))
        return SB_E_INVALID;
    if (len > SB_STORE_CONFIG_BYTES_MAX) return SB_E_TOO_LARGE;
    sqlite3_stmt *st = NULL;
    int rc = SB_E_STORE;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO config(key, value, updated_ts)"
                           " VALUES(?1, ?2, ?3) ON CONFLICT(key) DO UPDATE"
                           " SET value = excluded.value,"
                           " updated_ts = excluded.updated_ts",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    bind_str(st, 1, key);
    sqlite3_bind_text(st, 2, value ? value : "", (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SB_E_STORE;
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- members other than the customer and the agent --------------------- */

int sb_store_member_put(sb_store *s, uint64_t conv_id, const char *user_id,
                        Sbp__Role role, int64_t now_ms)
{
    assert(s);
    assert(in_write_txn(s));
    if (!id_valid(user_id) || (int)role <= (int)SBP__ROLE__ROLE_UNSPECIFIED ||
        (int)role > (int)SBP__ROLE__ROLE_ADMIN)
        return SB_E_INVALID;
    int64_t last;
    sqlite3_stmt *st = s->st[ST_CONV_SEQ];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    /* Members other than this one, plus one. */
    st = s->st[ST_MEMBER_COUNT];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    bind_str(st, 2, user_id);
    bind_str(st, 3, user_id);
    if ((rc = int_query(st, &last))) return rc;
    if (last + 1 > SB_MEMBERS_MAX) return SB_E_TOO_LARGE;
    st = s->st[ST_MEMBER_AGENT];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    bind_str(st, 2, user_id);
    sqlite3_bind_int(st, 3, (int)role);
    sqlite3_bind_int64(st, 4, now_ms);
    return step_reset(st);
}

int sb_store_member_del(sb_store *s, uint64_t conv_id, const char *user_id)
{
    assert(s);
    assert(in_write_txn(s));
    if (!id_valid(user_id)) return SB_E_INVALID;
    sqlite3_stmt *st = s->st[ST_MEMBER_DEL];
    sqlite3_bind_int64(st, 1, i64(conv_id));
    bind_str(st, 2, user_id);
    return step_reset(st);
}
