/* The PostgreSQL backend's private parts, shared by its files: sb_pg.c
 * (connection, reconnection, statements with a deadline, schema and
 * migrations, transactions, settings), sb_pg_msg.c (messages: append, one
 * at a time and many at once, reads, recall, search) and sb_pg_conv.c
 * (users, conversations, members, routing, tags, lists). One sb_pg is one
 * libpq connection, used by one thread at a time. */
#ifndef SB_PG_INT_H
#define SB_PG_INT_H

#include <libpq-fe.h>

#include "sb_store_int.h"

/* The columns a message is read from, in order; PM_<NAME> is a column's
 * position in every statement that selects SB_PG_MSG_COLS. */
#define SB_PG_MSG_COLUMNS(X)                                                   \
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

/* The columns a conversation is read from. */
#define SB_PG_CONV_COLUMNS(X)                                                  \
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
#define SB_PG_MEMBER_COLUMNS(X)                                                \
    X(USER_ID, "", "user_id")                                                  \
    X(ROLE, ", ", "role")                                                      \
    X(READ_SEQ, ", ", "read_seq")                                              \
    X(DELIVERED_SEQ, ", ", "delivered_seq")

#define SB_PG_COL_SQL(id, sep, name) sep name
#define SB_PG_COL_SQL_M(id, sep, name) sep "m." name

enum sb_pg_msg_col {
#define PM_(id, sep, name) PM_##id,
    SB_PG_MSG_COLUMNS(PM_)
#undef PM_
};
enum sb_pg_conv_col {
#define PC_(id, sep, name) PC_##id,
    SB_PG_CONV_COLUMNS(PC_)
#undef PC_
};
enum sb_pg_member_col {
#define PB_(id, sep, name) PB_##id,
    SB_PG_MEMBER_COLUMNS(PB_)
#undef PB_
};

#define SB_PG_MSG_COLS SB_PG_MSG_COLUMNS(SB_PG_COL_SQL)
#define SB_PG_MSG_COLS_M SB_PG_MSG_COLUMNS(SB_PG_COL_SQL_M)

/* The connection's statements, prepared on first use (again after a
 * reconnection). */
enum sb_pg_stmt {
    PS_DUP_FIND,
    PS_CONV_SEQ,
    PS_MSG_INSERT,
    PS_CONV_BUMP,
    PS_LOCK_CONVS,
    PS_DUPS_FIND,
    PS_MSGS_INSERT,
    PS_CURSORS_CHECK,
    PS_CURSORS_UPSERT,
    PS_DELIVERED_RAISE_MANY,
    PS_USER_UPSERT,
    PS_USER_ROLE,
    PS_CONV_INSERT,
    PS_MEMBER_INSERT,
    PS_CONV_GET,
    PS_MEMBERS_GET,
    PS_CONV_MEMBER,
    PS_CURSOR_UPSERT,
    PS_DELIVERED_RAISE,
    PS_READ_RAISE,
    PS_CONVS_OF_USER,
    PS_CONVS_ALL,
    PS_MSGS_AFTER,
    PS_MSGS_BEFORE,
    PS_TAGS_GET,
    PS_QUOTE_GET,
    PS_MSG_GET,
    PS_MSG_ID,
    PS_SVC_LOCK,
    PS_SVC_FIND,
    PS_ROUTE_GET,
    PS_ROUTE_SET,
    PS_MEMBER_DEL,
    PS_MEMBER_PUT,
    PS_MEMBER_COUNT,
    PS_MEMBER_READ,
    PS_FIRST_RESPONSE,
    PS_CONV_NOTE,
    PS_AGENT_FIRST,
    PS_RECALL_GET,
    PS_RECALL_SET,
    PS_TAG_ADD,
    PS_TAG_DEL,
    PS_TAG_COUNT,
    PS_MSG_TAGGED,
    PS_SVC_CONVS,
    PS_CONFIG_GET,
    PS_CONFIG_SET,
    PS_COUNT
};

/* A conversation the open transaction has locked, and its last_seq as the
 * transaction moves it (found: the conversation exists). */
typedef struct sb_pg_seq {
    uint64_t id;
    int64_t last_seq;
    bool found;
} sb_pg_seq;

typedef struct sb_pg {
    sb_store base;
    PGconn *conn; /* NULL while the server is out of reach */
    char *where;  /* the connection URI */
    sb_durability durability;
    bool prepared[PS_COUNT];
    /* A transaction is open, and whether it writes. A read opened for one
     * call (read_begin) is not a write. */
    bool in_txn, in_write;
    /* The connection broke in the open transaction: every statement fails
     * until the rollback. */
    bool broken;
    bool has_trgm; /* the trigram index exists: searches may use it */
    /* A run of appends met a stored idempotency key: the next looks for
     * them before it inserts (sb__pg_append_many). */
    bool dups_expected;
    /* The BEGIN of the open transaction while it waits to go out with the
     * first statement, in one round trip; NULL once sent. */
    const char *begin_sql;
    /* The conversations the open transaction has locked, sorted by id:
     * its appends take their last_seq from here, without asking again. */
    sb_pg_seq *locked;
    size_t n_locked, locked_cap;
} sb_pg;

static inline sb_pg *sb__pg(sb_store *s)
{
    return (sb_pg *)s;
}

/* The schema version this build writes. */
#define SB_PG_SCHEMA_VERSION 6

/* Parameters of one statement: integers are formatted in place, strings
 * and bytes point at the caller's memory (valid until the call returns). */
#define SB_PG_PARAMS_MAX 16
typedef struct sb_pg_params {
    int n;
    const char *v[SB_PG_PARAMS_MAX];
    int len[SB_PG_PARAMS_MAX];
    int fmt[SB_PG_PARAMS_MAX];
    char num[SB_PG_PARAMS_MAX][24];
} sb_pg_params;

void sb__pg_int(sb_pg_params *p, int64_t v);
void sb__pg_u64(sb_pg_params *p, uint64_t v);
void sb__pg_str(sb_pg_params *p, const char *v);
/* Bytes, sent in binary (a bytea parameter); n 0: NULL. */
void sb__pg_bin(sb_pg_params *p, const void *v, size_t n);
/* A flag, as the schema keeps them: an integer 0 or 1. */
void sb__pg_bool(sb_pg_params *p, bool v);

/* Runs prepared statement id with p (NULL: none) and waits for its result
 * within the backend's deadline. *out (if out) gets the result (the
 * caller PQclears it). Returns 0, SB_E_RETRY for a lost race with another
 * writer (deadlock, serialization failure, unique violation), or
 * SB_E_STORE (the statement failed, or the server is out of reach: the
 * connection is dropped and made again by the next transaction). */
int sb__pg_exec(sb_pg *s, int id, const sb_pg_params *p, PGresult **out);
/* The same for a statement made for this call (not prepared). */
int sb__pg_exec_sql(sb_pg *s, const char *sql, const sb_pg_params *p,
                    PGresult **out);
/* The same with n parameters in arrays of the caller's (text unless
 * fmt[i] is 1), of the types given (NULL: the server infers them). */
int sb__pg_exec_params(sb_pg *s, const char *sql, int n, const Oid *types,
                       const char *const *v, const int *len, const int *fmt,
                       PGresult **out);
/* The first column of the first row as an integer (0 if no row). */
int sb__pg_int_query(sb_pg *s, int id, const sb_pg_params *p, int64_t *out);
/* Reads run in one snapshot: if no transaction is open, a read-only one is
 * opened for the call and *own says so; read_end closes it. */
int sb__pg_read_begin(sb_pg *s, bool *own);
void sb__pg_read_end(sb_pg *s, bool own);

/* Column values of a text-format result. */
int64_t sb__pg_get_i64(const PGresult *r, int row, int col);
bool sb__pg_get_bool(const PGresult *r, int row, int col);
/* A text column into *dst (malloc'd); an empty or NULL one leaves *dst at
 * its protobuf-c default. 0 or -ENOMEM. */
int sb__pg_get_text(const PGresult *r, int row, int col, char **dst);
/* A bytea column (hex text) into *dst; NULL or empty leaves it empty. */
int sb__pg_get_bytes(const PGresult *r, int row, int col,
                     ProtobufCBinaryData *dst);

/* ---- messages (sb_pg_msg.c) --------------------------------------------- */

int sb__pg_msg_from_row(sb_pg *s, const PGresult *r, int row,
                        Sbp__Message **out);
int sb__pg_msg_load(sb_pg *s, uint64_t conv_id, uint64_t seq,
                    Sbp__Message **out);
int sb__pg_append(sb_store *s, Sbp__Message *msg, int64_t now_ms,
                  bool *duplicate);
int sb__pg_append_many(sb_store *s, sb_store_append_item *items, size_t n);
int sb__pg_lock_convs(sb_store *s, const uint64_t *ids, size_t n);
/* The locked conversation id of the open transaction, or NULL. */
sb_pg_seq *sb__pg_locked_find(sb_pg *s, uint64_t id);
/* Forgets the locked conversations' last_seq (a transaction's end, or a
 * savepoint given back). */
void sb__pg_locked_clear(sb_pg *s);
int sb__pg_sync(sb_store *s, const char *user_id, bool all,
                const sb_store_cursor *cur, size_t n_cur, uint32_t limit,
                size_t bytes_max, Sbp__SyncResp **out);
int sb__pg_history(sb_store *s, uint64_t conv_id, uint64_t before_seq,
                   uint32_t limit, Sbp__HistoryResp **out);
int sb__pg_msg_get(sb_store *s, uint64_t conv_id, uint64_t seq,
                   Sbp__Message **out);
int sb__pg_recall(sb_store *s, uint64_t conv_id, uint64_t seq);
int sb__pg_search(sb_store *s, const char *user_id, bool all, uint64_t conv_id,
                  const sb_store_words *w, uint32_t limit,
                  Sbp__SearchResp **out);

/* ---- conversations (sb_pg_conv.c) --------------------------------------- */

int sb__pg_conv_load(sb_pg *s, uint64_t conv_id, Sbp__Conversation **out);
int sb__pg_conv_member(sb_pg *s, uint64_t conv_id, const char *user_id,
                       uint64_t *last_seq, bool *member);
int sb__pg_tags_load(sb_pg *s, uint64_t conv_id, uint64_t seq, char ***tags,
                     size_t *n_tags);
int sb__pg_user_upsert(sb_store *s, const char *user_id, Sbp__Role role,
                       const char *locale, int64_t now_ms);
int sb__pg_user_role(sb_store *s, const char *user_id, Sbp__Role *role);
int sb__pg_conv_create(sb_store *s, Sbp__ConvKind kind, const char *title,
                       const char *const *user_ids, const Sbp__Role *roles,
                       size_t n, const char *customer, int64_t now_ms,
                       Sbp__Conversation **out);
int sb__pg_cursor_ack(sb_store *s, const char *user_id, const char *device_id,
                      uint64_t conv_id, uint64_t seq);
int sb__pg_cursor_ack_many(sb_store *s, sb_store_cursor_item *items, size_t n);
int sb__pg_read_set(sb_store *s, uint64_t conv_id, const char *user_id,
                    uint64_t seq);
int sb__pg_conv_get(sb_store *s, uint64_t conv_id, Sbp__Conversation **out);
int sb__pg_service_open(sb_store *s, const char *customer, const char *desk,
                        const char *group, int64_t now_ms,
                        Sbp__Conversation **out, bool *created);
int sb__pg_conv_route(sb_store *s, uint64_t conv_id, Sbp__ConvState state,
                      const char *group, const char *agent, int64_t now_ms,
                      Sbp__Conversation **out);
int sb__pg_first_response(sb_store *s, uint64_t conv_id, int64_t now_ms);
int sb__pg_conv_note(sb_store *s, uint64_t conv_id, const char *from,
                     const char *note);
int sb__pg_tag(sb_store *s, uint64_t conv_id, uint64_t seq, char *const *add,
               size_t n_add, char *const *remove, size_t n_remove);
int sb__pg_member_put(sb_store *s, uint64_t conv_id, const char *user_id,
                      Sbp__Role role, int64_t now_ms);
int sb__pg_member_del(sb_store *s, uint64_t conv_id, const char *user_id);
int sb__pg_conv_list(sb_store *s, const char *user_id, bool all,
                     Sbp__ConvState state, const char *tag,
                     char *const *queued_groups, size_t n_groups,
                     const sb_store_list_after *after, uint32_t limit,
                     Sbp__ConvListResp **out);
int sb__pg_service_convs(sb_store *s, Sbp__ConvState state,
                         Sbp__Conversation ***out, size_t *n_out);

/* ---- media (sb_pg_media.c) ----------------------------------------------- */

int sb__pg_media_put(sb_store *s, const sb_store_media *m);
int sb__pg_media_get(sb_store *s, const char *id, const char *user_id, bool all,
                     sb_store_media *out);
int sb__pg_media_find(sb_store *s, const char *id, sb_store_media *out);
int sb__pg_media_ref(sb_store *s, const char *id, uint64_t conv_id,
                     uint64_t seq);
int sb__pg_blob_put(sb_store *s, const uint8_t sha256[SB_SHA256_BYTES],
                    const char *path, uint64_t size);
int sb__pg_blob_read(sb_store *s, const uint8_t sha256[SB_SHA256_BYTES],
                     uint64_t off, uint8_t *buf, size_t cap, size_t *got);
int sb__pg_blob_gc(sb_store *s, int64_t older_than_ms, uint64_t *removed);
/* The webhook outbox and a user's erasure (sb_pg_hook.c). */
int sb__pg_outbox_add(sb_store *s, const char *event, const char *endpoint,
                      const char *subject, const char *payload, int64_t now_ms);
int sb__pg_outbox_claim(sb_store *s, int64_t now_ms, int64_t lease_ms,
                        uint32_t limit, sb_store_hook **out, size_t *n);
int sb__pg_outbox_result(sb_store *s, int64_t id, bool delivered, bool give_up,
                         uint32_t attempts, int64_t next_ts, const char *error);
int sb__pg_outbox_failed(sb_store *s, uint32_t limit, sb_store_hook **out,
                         size_t *n);
int sb__pg_outbox_replay(sb_store *s, int64_t id, int64_t now_ms, uint64_t *n);
int sb__pg_user_erase(sb_store *s, const char *user_id, sb_store_erased *out);

/* ---- the agent side: notes and contacts (sb_pg_agent.c) ---------------- */

int sb__pg_notes_find(sb_store *s, uint64_t conv_id, uint64_t *id);
int sb__pg_notes_create(sb_store *s, uint64_t conv_id, const char *desk,
                        int64_t now_ms, uint64_t *id);
int sb__pg_contact_get(sb_store *s, const char *user_id, Sbp__Contact **out);
int sb__pg_contact_write(sb_store *s, const Sbp__Contact *c);
int sb__pg_customer_convs(sb_store *s, const char *user_id, uint32_t limit,
                          uint64_t *ids, size_t *n);

/* ---- satisfaction and reports (sb_pg_report.c) ------------------------- */

int sb__pg_csat_ask(sb_store *s, uint64_t conv_id, int64_t now_ms, bool *asked);
int sb__pg_csat_set(sb_store *s, uint64_t conv_id, uint32_t rating,
                    const char *comment, int64_t now_ms);
int sb__pg_report_scan(sb_store *s, int64_t from_ms, int64_t to_ms,
                       const char *desk, const char *group, const char *agent,
                       int (*each)(void *ud, const sb_store_report_row *r),
                       void *ud);

#endif
