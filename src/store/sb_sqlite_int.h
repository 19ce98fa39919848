/* The SQLite backend's private parts, shared by its files: sb_sqlite.c
 * (schema, migrations, statements, transactions, checkpoints, settings),
 * sb_sqlite_msg.c (messages: append, reads, recall, search) and
 * sb_sqlite_conv.c (users, conversations, members, routing, tags, lists).
 * One sb_sqlite is one connection, used by one thread at a time. */
#ifndef SB_SQLITE_INT_H
#define SB_SQLITE_INT_H

#include <sqlite3.h>

#include "sb_store_int.h"

/* The columns a message is read from, in order; MC_<NAME> is a column's
 * position in every statement that selects MSG_COLS. */
#define SB_SQLITE_MSG_COLUMNS(X)                                               \
    X(MSG_ID, "", "msg_id")                                                    \
    X(CONV_ID, ", ", "conv_id")                                                \
    X(SEQ, ", ", "seq")                                                        \
    X(SENDER, ", ", "sender")                                                  \
    X(SENDER_DEVICE, ", ", "sender_device")                                    \
    X(CLIENT_MSG_ID, ", ", "client_msg_id")                                    \
    X(TYPE, ", ", "type")                                                      \
    X(BODY, ", ", "body")                                                      \
    X(QUOTE_SEQ, ", ", "quote_seq")                                            \
    X(LANG, ", ", "lang")                                                      \
    X(SERVER_TS, ", ", "server_ts")                                            \
    X(EXTRA, ", ", "extra")                                                    \
    X(RECALLED, ", ", "recalled")                                              \
    X(TAGGED, ", ", "tagged")                                                  \
    X(REVIEW, ", ", "review")

/* The columns a conversation is read from (with WHERE conv_id = ?1). */
#define SB_SQLITE_CONV_COLUMNS(X)                                              \
    X(KIND, "", "kind")                                                        \
    X(STATE, ", ", "state")                                                    \
    X(TITLE, ", ", "title")                                                    \
    X(LAST_SEQ, ", ", "last_seq")                                              \
    X(CREATED_TS, ", ", "created_ts")                                          \
    X(DESK, ", ", "desk")                                                      \
    X(GROUP, ", ", "grp")                                                      \
    X(AGENT, ", ", "agent")                                                    \
    X(CUSTOMER, ", ", "customer")                                              \
    X(UPDATED_TS, ", ", "updated_ts")                                          \
    X(FIRST_RESPONSE_TS, ", ", "first_response_ts")                            \
    X(CLOSED_TS, ", ", "closed_ts")                                            \
    X(CSAT_RATING, ", ", "csat_rating")                                        \
    X(CSAT_COMMENT, ", ", "csat_comment")                                      \
    X(LAST_AGENT, ", ", "last_agent")                                          \
    X(TRANSFER_NOTE, ", ", "transfer_note")                                    \
    X(TRANSFER_FROM, ", ", "transfer_from")                                    \
    X(NOTES_OF, ", ", "notes_of")

/* The columns a member is read from. */
#define SB_SQLITE_MEMBER_COLUMNS(X)                                            \
    X(USER_ID, "", "user_id")                                                  \
    X(ROLE, ", ", "role")                                                      \
    X(READ_SEQ, ", ", "read_seq")                                              \
    X(DELIVERED_SEQ, ", ", "delivered_seq")

#define SB_SQLITE_COL_SQL(id, sep, name) sep name
#define SB_SQLITE_COL_SQL_M(id, sep, name) sep "m." name

enum sb_sqlite_msg_col {
#define MC_(id, sep, name) MC_##id,
    SB_SQLITE_MSG_COLUMNS(MC_)
#undef MC_
};
enum sb_sqlite_conv_col {
#define CC_(id, sep, name) CC_##id,
    SB_SQLITE_CONV_COLUMNS(CC_)
#undef CC_
};
enum sb_sqlite_member_col {
#define MB_(id, sep, name) MB_##id,
    SB_SQLITE_MEMBER_COLUMNS(MB_)
#undef MB_
};

/* "msg_id, conv_id, ...", and the same with "m." before each. */
#define SB_SQLITE_MSG_COLS SB_SQLITE_MSG_COLUMNS(SB_SQLITE_COL_SQL)
#define SB_SQLITE_MSG_COLS_M SB_SQLITE_MSG_COLUMNS(SB_SQLITE_COL_SQL_M)

/* The connection's prepared statements, cached for its life. */
enum sb_sqlite_stmt {
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
    ST_CONV_NOTE,
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

typedef struct sb_sqlite_wal sb_sqlite_wal;

typedef struct sb_sqlite {
    sb_store base;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    sb_sqlite_wal *wal; /* set by wal_watch */
    /* Where blobs live: the database's folder + "/media"; NULL for a
     * database in memory. Files are synced when commits are. */
    char *media_dir;
    bool media_fsync;
} sb_sqlite;

static inline sb_sqlite *sb__sqlite(sb_store *s)
{
    return (sb_sqlite *)s;
}

/* The schema version this build writes, and each version's SQL: what
 * takes a database from version v - 1 to v (sb__sqlite_schema(1) creates
 * the first schema). Tests build old databases from them. */
#define SB_SQLITE_SCHEMA_VERSION 10
const char *sb__sqlite_schema(int version);

/* ---- helpers (sb_sqlite.c) --------------------------------------------- */

/* SQLite keeps signed 64-bit integers; ids and seqs beyond that range exist
 * nowhere, so clamping them finds nothing rather than wrapping around. */
static inline sqlite3_int64 sb__sqlite_i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

void sb__sqlite_bind_str(sqlite3_stmt *st, int i, const char *v);
/* Steps a statement whose rows, if any, are not wanted, then resets it:
 * 0 or SB_E_STORE. */
int sb__sqlite_step_reset(sqlite3_stmt *st);
/* The first column of the first row (0 if none), then resets: 0 or
 * SB_E_STORE. */
int sb__sqlite_int_query(sqlite3_stmt *st, int64_t *out);
/* Copies a text column into *dst; an empty or NULL column leaves *dst at
 * its protobuf-c default (which free_unpacked knows not to free). */
int sb__sqlite_col_text(sqlite3_stmt *st, int i, char **dst);
int sb__sqlite_col_blob(sqlite3_stmt *st, int i, ProtobufCBinaryData *dst);
/* Reads run in one snapshot: if no transaction is open, a read transaction
 * is opened for the call and *own says so; read_end closes it. */
int sb__sqlite_read_begin(sb_sqlite *s, bool *own);
void sb__sqlite_read_end(sb_sqlite *s, bool own);
bool sb__sqlite_in_write(const sb_store *s);
/* Prepares sql (n bytes) for one use; 0 or SB_E_STORE. */
int sb__sqlite_prepare(sb_sqlite *s, const char *sql, size_t n,
                       sqlite3_stmt **out);

/* ---- messages (sb_sqlite_msg.c) ---------------------------------------- */

/* Builds a message from a row of SB_SQLITE_MSG_COLS. */
int sb__sqlite_msg_from_row(sb_sqlite *s, sqlite3_stmt *st, Sbp__Message **out);
/* One message by (conv, seq), no transaction of its own. */
int sb__sqlite_msg_load(sb_sqlite *s, uint64_t conv_id, uint64_t seq,
                        Sbp__Message **out);
int sb__sqlite_append(sb_store *s, Sbp__Message *msg, int64_t now_ms,
                      bool *duplicate);
int sb__sqlite_sync(sb_store *s, const char *user_id, bool all,
                    const sb_store_cursor *cur, size_t n_cur, uint32_t limit,
                    size_t bytes_max, Sbp__SyncResp **out);
int sb__sqlite_history(sb_store *s, uint64_t conv_id, uint64_t before_seq,
                       uint32_t limit, Sbp__HistoryResp **out);
int sb__sqlite_msg_get(sb_store *s, uint64_t conv_id, uint64_t seq,
                       Sbp__Message **out);
int sb__sqlite_recall(sb_store *s, uint64_t conv_id, uint64_t seq);
int sb__sqlite_search(sb_store *s, const char *user_id, bool all,
                      uint64_t conv_id, const sb_store_words *w, uint32_t limit,
                      Sbp__SearchResp **out);
int sb__sqlite_index(sb_store *s, uint32_t max_msgs, uint64_t *left);

/* ---- conversations (sb_sqlite_conv.c) ---------------------------------- */

/* Loads a conversation with its members and tags (no transaction of its
 * own); SB_E_NOT_FOUND if none. */
int sb__sqlite_conv_load(sb_sqlite *s, uint64_t conv_id,
                         Sbp__Conversation **out);
/* A conversation's last_seq and whether user_id is a member ("": nobody);
 * SB_E_NOT_FOUND if there is no such conversation. */
int sb__sqlite_conv_member(sb_sqlite *s, uint64_t conv_id, const char *user_id,
                           uint64_t *last_seq, bool *member);
/* The tags of a conversation (seq 0) or of one of its messages. */
int sb__sqlite_tags_load(sb_sqlite *s, uint64_t conv_id, uint64_t seq,
                         char ***tags, size_t *n_tags);
int sb__sqlite_user_upsert(sb_store *s, const char *user_id, Sbp__Role role,
                           const char *locale, int64_t now_ms);
int sb__sqlite_user_role(sb_store *s, const char *user_id, Sbp__Role *role);
int sb__sqlite_conv_create(sb_store *s, Sbp__ConvKind kind, const char *title,
                           const char *const *user_ids, const Sbp__Role *roles,
                           size_t n, const char *customer, int64_t now_ms,
                           Sbp__Conversation **out);
int sb__sqlite_cursor_ack(sb_store *s, const char *user_id,
                          const char *device_id, uint64_t conv_id,
                          uint64_t seq);
int sb__sqlite_read_set(sb_store *s, uint64_t conv_id, const char *user_id,
                        uint64_t seq);
int sb__sqlite_conv_get(sb_store *s, uint64_t conv_id, Sbp__Conversation **out);
int sb__sqlite_service_open(sb_store *s, const char *customer, const char *desk,
                            const char *group, int64_t now_ms,
                            Sbp__Conversation **out, bool *created);
int sb__sqlite_conv_route(sb_store *s, uint64_t conv_id, Sbp__ConvState state,
                          const char *group, const char *agent, int64_t now_ms,
                          Sbp__Conversation **out);
int sb__sqlite_first_response(sb_store *s, uint64_t conv_id, int64_t now_ms);
int sb__sqlite_conv_note(sb_store *s, uint64_t conv_id, const char *from,
                         const char *note);
int sb__sqlite_tag(sb_store *s, uint64_t conv_id, uint64_t seq,
                   char *const *add, size_t n_add, char *const *remove,
                   size_t n_remove);
int sb__sqlite_member_put(sb_store *s, uint64_t conv_id, const char *user_id,
                          Sbp__Role role, int64_t now_ms);
int sb__sqlite_member_del(sb_store *s, uint64_t conv_id, const char *user_id);
int sb__sqlite_conv_list(sb_store *s, const char *user_id, bool all,
                         Sbp__ConvState state, const char *tag,
                         char *const *queued_groups, size_t n_groups,
                         const sb_store_list_after *after, uint32_t limit,
                         Sbp__ConvListResp **out);
int sb__sqlite_service_convs(sb_store *s, Sbp__ConvState state,
                             Sbp__Conversation ***out, size_t *n_out);

/* ---- media (sb_sqlite_media.c) ---------------------------------------- */

/* The blob folder of the database at path into *out (malloc'd; NULL for
 * one in memory). 0 or -ENOMEM. */
int sb__sqlite_media_dir(const char *path, char **out);
int sb__sqlite_media_put(sb_store *s, const sb_store_media *m);
int sb__sqlite_media_get(sb_store *s, const char *id, const char *user_id,
                         bool all, sb_store_media *out);
int sb__sqlite_media_find(sb_store *s, const char *id, sb_store_media *out);
int sb__sqlite_media_ref(sb_store *s, const char *id, uint64_t conv_id,
                         uint64_t seq);
int sb__sqlite_blob_put(sb_store *s, const uint8_t sha256[SB_SHA256_BYTES],
                        const char *path, uint64_t size);
int sb__sqlite_blob_read(sb_store *s, const uint8_t sha256[SB_SHA256_BYTES],
                         uint64_t off, uint8_t *buf, size_t cap, size_t *got);
int sb__sqlite_blob_gc(sb_store *s, int64_t older_than_ms, uint64_t *removed);

/* ---- satisfaction and reports (sb_sqlite_report.c) --------------------- */

int sb__sqlite_csat_ask(sb_store *s, uint64_t conv_id, int64_t now_ms,
                        bool *asked);
int sb__sqlite_csat_set(sb_store *s, uint64_t conv_id, uint32_t rating,
                        const char *comment, int64_t now_ms);
int sb__sqlite_report_scan(sb_store *s, int64_t from_ms, int64_t to_ms,
                           const char *desk, const char *group,
                           const char *agent,
                           int (*each)(void *ud, const sb_store_report_row *r),
                           void *ud);

/* Appends formatted text to sql[size] at *n; false once it no longer
 * fits (*n is then size). */
bool sb__sqlite_sql_add(char *sql, size_t size, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The webhook outbox and a user's erasure (sb_sqlite_hook.c). */
int sb__sqlite_outbox_add(sb_store *s, const char *event, const char *endpoint,
                          const char *subject, const char *payload,
                          int64_t now_ms);
int sb__sqlite_outbox_claim(sb_store *s, int64_t now_ms, int64_t lease_ms,
                            uint32_t limit, sb_store_hook **out, size_t *n);
int sb__sqlite_outbox_result(sb_store *s, int64_t id, bool delivered,
                             bool give_up, uint32_t attempts, int64_t next_ts,
                             const char *error);
int sb__sqlite_outbox_failed(sb_store *s, uint32_t limit, sb_store_hook **out,
                             size_t *n);
int sb__sqlite_outbox_replay(sb_store *s, int64_t id, int64_t now_ms,
                             uint64_t *n);
/* ---- the agent side (sb_sqlite_agent.c) -------------------------------- */

int sb__sqlite_notes_find(sb_store *s, uint64_t conv_id, uint64_t *id);
int sb__sqlite_notes_create(sb_store *s, uint64_t conv_id, const char *desk,
                            int64_t now_ms, uint64_t *id);
int sb__sqlite_contact_get(sb_store *s, const char *user_id,
                           Sbp__Contact **out);
int sb__sqlite_contact_write(sb_store *s, const Sbp__Contact *c);
int sb__sqlite_customer_convs(sb_store *s, const char *user_id, uint32_t limit,
                              uint64_t *ids, size_t *n);

int sb__sqlite_user_erase(sb_store *s, const char *user_id,
                          sb_store_erased *out);

#endif
