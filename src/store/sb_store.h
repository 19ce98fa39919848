/* The store of record: users, conversations, members, messages,
 * idempotency records, device cursors and the server's settings (the desk
 * configuration). This interface is the same for every database behind
 * it: the embedded one is SQLite in WAL mode (sb_sqlite*.c), chosen by a
 * path; PostgreSQL (sb_pg*.c), chosen by a URI, is one that several
 * gateways share.
 *
 * An sb_store is one connection and must be used by one thread at a time.
 * The server runs one writer connection (all writes, batched into
 * transactions by sb_storeq) and one reader connection (SYNC, HISTORY,
 * lookups). Every function returns 0 or a negative code (sb_error.h):
 * SB_E_NOT_FOUND, SB_E_INVALID, SB_E_FORBIDDEN for request-level failures
 * that leave the transaction usable, SB_E_STORE for a failure of the
 * database (disk full, I/O error) after which the caller must roll back.
 *
 * Messages and conversations handed out are heap-allocated protobuf-c
 * structs (every string, array and sub-message malloc'd), owned by the
 * caller and freed with the matching sbp__*__free_unpacked(p, NULL). */
#ifndef SB_STORE_H
#define SB_STORE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_limits.h"
#include "switchboard.pb-c.h"

typedef struct sb_store sb_store;

/* A write transaction lost a race with another writer of the same
 * database (a deadlock, a serialization failure, the same idempotency key
 * stored at the same time): roll back and run it again. Only a database
 * that several writers share answers it. */
#define SB_E_RETRY (-EAGAIN)

typedef enum sb_durability {
    SB_DURABILITY_FSYNC = 0, /* fsync at every commit (synchronous=FULL) */
    SB_DURABILITY_OS = 1,    /* leave flushing to the OS (synchronous=NORMAL):
                                survives a process crash, not a power cut */
} sb_durability;

#define SB_STORE_PAGE_MAX 500 /* messages per SYNC/HISTORY page */

/* Whether rc refuses one request and leaves the transaction usable
 * (SB_E_NOT_FOUND, SB_E_INVALID, SB_E_FORBIDDEN, SB_E_TOO_LARGE,
 * SB_E_STATE, SB_E_ALREADY). */
bool sb_store_rc_is_request_level(int rc);

/* Opens (creating if needed) the database at where, and brings its schema
 * up to date: a PostgreSQL connection URI ("postgresql://user@host/db";
 * the database must exist; libpq's PG* environment variables fill in what
 * it leaves out), or else an SQLite file's path (":memory:" allowed for
 * tests). Returns 0 or SB_E_STORE. */
int sb_store_open(const char *where, sb_durability d, sb_store **out);
/* Whether where names a PostgreSQL database (a postgresql:// or
 * postgres:// URI) rather than an SQLite file. */
bool sb_store_is_url(const char *where);
/* where as logs may show it: a URI without its password. */
void sb_store_describe(const char *where, char *out, size_t cap);
/* Closes the connection; accepts NULL. */
void sb_store_close(sb_store *s);

/* Whether the database answers now (connecting again if it was out of
 * reach): 0 or SB_E_STORE; -ENOTSUP for a database that is never out of
 * reach (a file). Outside a transaction. */
int sb_store_ping(sb_store *s);

int sb_store_begin(sb_store *s);
int sb_store_commit(sb_store *s);
/* Rolls back the open transaction, if any. Can't fail. */
void sb_store_rollback(sb_store *s);

/* Sets the connection's page cache (KiB), where the database has one. The
 * writer's holds the hot index pages of every conversation being written;
 * a miss is a read. */
int sb_store_cache(sb_store *s, uint32_t kib);

/* Checkpoints, for a caller that runs them itself (sb_storeq does, on a
 * thread of its own, so that commits never wait for one). After
 * sb_store_wal_watch the connection no longer checkpoints at commit; it
 * calls hook(ud, frames) after each commit with the frames in the WAL.
 * Returns 0, or -ENOTSUP for a database without a WAL to checkpoint (and
 * -ENOMEM), when the connection goes on as it did. */
int sb_store_wal_watch(sb_store *s, void (*hook)(void *ud, int frames),
                       void *ud);
/* A passive checkpoint: copies what it can of the WAL into the database
 * without waiting for anyone. *log is the WAL's size in frames, *done how
 * many of them are in the database now. 0; -EBUSY when it could not start
 * now (another checkpoint running, or the WAL's index read while a commit
 * was changing it: a passive checkpoint does not wait), a moment later it
 * can; SB_E_STORE when it failed (the database file cannot grow); -ENOTSUP
 * without a WAL. */
int sb_store_checkpoint(sb_store *s, int *log, int *done);
/* Syncs the database file itself (not its WAL): what checkpoints copied
 * into it is on the disk after. A checkpoint that copies the WAL to its
 * end syncs the file too, and that sync covers every page copied since
 * the last one. 0; SB_E_STORE; -ENOTSUP for a database without a file. */
int sb_store_db_sync(sb_store *s);

/* ---- writes (inside a transaction) ------------------------------------- */

/* Stores a new message. In: msg->conv_id, sender, sender_device,
 * client_msg_id (16 bytes), type, body, quote_seq, lang, review (the
 * content filter's flag), and now_ms. The
 * (sender, client_msg_id) pair is the idempotency key: if it was stored
 * before, nothing is written, *duplicate is set and msg's msg_id, conv_id,
 * seq and server_ts are set to the original's. Otherwise the conversation's
 * next seq is taken (dense: last_seq + 1) and msg_id, seq and server_ts
 * (= now_ms) are filled in, and msg->quote when quote_seq is set and
 * msg->quote is NULL (malloc'd as a read's: sbp__message__free_unpacked
 * frees it with the message; a caller whose message is on the stack frees
 * it with sbp__quote__free_unpacked). Returns SB_E_NOT_FOUND if the
 * conversation does
 * not exist, SB_E_INVALID if quote_seq is not an earlier seq of it (or the
 * sender or client_msg_id is malformed); a refused append writes nothing.
 * An empty client_msg_id (len 0) stores the message without idempotency
 * key, for messages the server makes itself. */
int sb_store_append(sb_store *s, Sbp__Message *msg, int64_t now_ms,
                    bool *duplicate);

/* One message of sb_store_append_many: in, msg and now_ms; out, rc (0 or
 * a request-level refusal, as sb_store_append's) and duplicate. */
typedef struct sb_store_append_item {
    Sbp__Message *msg;
    int64_t now_ms;
    int rc;
    bool duplicate;
} sb_store_append_item;

/* Stores n messages as n calls of sb_store_append in this order would,
 * each with its own result in items[i]; a database that can does it in
 * a few statements for all of them (the writer's group commit). Returns 0,
 * or the failure that dooms the transaction (SB_E_STORE, SB_E_RETRY,
 * -ENOMEM): then no item's result counts. */
int sb_store_append_many(sb_store *s, sb_store_append_item *items, size_t n);

/* Locks the conversations ids[0..n) (sorted, distinct) for the rest of the
 * transaction, in that order: the writer takes every conversation a batch
 * will write at its start, so that writers sharing a database (several
 * gateways on one PostgreSQL) never wait for each other in a cycle. A
 * database with one writer at a time does nothing. */
int sb_store_lock_convs(sb_store *s, const uint64_t *ids, size_t n);

/* Creates or updates a user (role and locale as last seen). */
int sb_store_user_upsert(sb_store *s, const char *user_id, Sbp__Role role,
                         const char *locale, int64_t now_ms);

/* Creates a conversation with the n members given (user ids and roles; the
 * creator among them) and returns it in *out (caller frees). A member
 * given ROLE_UNSPECIFIED gets the role the user was last seen with;
 * SB_E_NOT_FOUND if the user was never seen (membership never waits for a
 * role to be learnt later). SB_E_INVALID for an unknown kind, no
 * members, more than SB_MEMBERS_MAX, or a repeated or malformed user
 * id; SB_E_FORBIDDEN if two members are customers (a customer talks to the
 * service side only). A SERVICE conversation starts in STATE_BOT, a DIRECT
 * one in STATE_OPEN. */
int sb_store_conv_create(sb_store *s, Sbp__ConvKind kind, const char *title,
                         const char *const *user_ids, const Sbp__Role *roles,
                         size_t n, int64_t now_ms, Sbp__Conversation **out);

/* Records that a device has every message of conv through seq (monotonic:
 * a lower seq changes nothing), and raises the member's delivered_seq.
 * SB_E_NOT_FOUND without the conversation, SB_E_INVALID for a seq beyond
 * its last. */
int sb_store_cursor_ack(sb_store *s, const char *user_id, const char *device_id,
                        uint64_t conv_id, uint64_t seq);

/* One cursor of sb_store_cursor_ack_many: in, the ids, conv_id and seq;
 * out, rc (0 or a request-level refusal, as sb_store_cursor_ack's). */
typedef struct sb_store_cursor_item {
    const char *user_id, *device_id;
    uint64_t conv_id, seq;
    int rc;
} sb_store_cursor_item;

/* n cursors at once, as n calls of sb_store_cursor_ack would store them
 * (each monotonic, so their order does not matter), each with its own
 * result; a database that can does it in a few statements for all. Returns
 * 0, or the failure that dooms the transaction. */
int sb_store_cursor_ack_many(sb_store *s, sb_store_cursor_item *items,
                             size_t n);

/* Raises a member's read_seq to seq (monotonic), and delivered_seq with it.
 * SB_E_FORBIDDEN if user is not a member, SB_E_NOT_FOUND without the
 * conversation, SB_E_INVALID for a seq beyond its last. */
int sb_store_read_set(sb_store *s, uint64_t conv_id, const char *user_id,
                      uint64_t seq);

/* ---- reads ------------------------------------------------------------- */

/* The role a user was last seen with; SB_E_NOT_FOUND if never seen. */
int sb_store_user_role(sb_store *s, const char *user_id, Sbp__Role *role);

/* A conversation with its members (each with its read_seq and
 * delivered_seq); SB_E_NOT_FOUND if none. */
int sb_store_conv_get(sb_store *s, uint64_t conv_id, Sbp__Conversation **out);

/* One page of catch-up for a device of user_id: for every conversation the
 * user is a member of (every conversation if all is set, for admins), the
 * messages with seq greater than the cursor given for it (0 when none is
 * given), ordered by (conv_id, seq), at most limit messages (capped at
 * SB_STORE_PAGE_MAX; 0 means the cap) and about bytes_max bytes of bodies
 * (0: no byte bound; at least one message is returned if any remain).
 * resp->more tells whether more remain; resp->convs holds each conversation
 * that has messages in the page or is unknown to the cursors (at most
 * SB_STORE_PAGE_MAX of the latter per page; `more` when cut). Cursors for
 * conversations the user may not see are ignored. */
int sb_store_sync(sb_store *s, const char *user_id, bool all,
                  Sbp__Cursor *const *cursors, size_t n_cursors, uint32_t limit,
                  size_t bytes_max, Sbp__SyncResp **out);

/* Up to limit messages of conv with seq < before_seq (before_seq 0: the
 * newest), returned in ascending seq; resp->more when older ones remain.
 * limit is capped at SB_STORE_PAGE_MAX (0 means the cap). SB_E_NOT_FOUND if
 * the conversation does not exist. */
int sb_store_history(sb_store *s, uint64_t conv_id, uint64_t before_seq,
                     uint32_t limit, Sbp__HistoryResp **out);

/* ---- customer service -------------------------------------------------- */

/* Structured parts of a message (msg->event, quick_replies, card, media)
 * are stored by sb_store_append when set and returned by every read.
 * Reads also fill msg->quote (seq, sender, type, the first 200 bytes of
 * the body, recalled) from the message quote_seq points at, msg->tags,
 * and msg->recalled; a recalled message is returned with an empty body and
 * no card or media. Conversations come back with desk, group, agent,
 * customer, tags and updated_ts set. */

/* The customer's service conversation at desk that is not CLOSED, if any
 * (*created false); else a new CONV_SERVICE conversation in STATE_BOT with
 * the customer as its member (role customer), desk and group recorded
 * (*created true). */
int sb_store_service_open(sb_store *s, const char *customer, const char *desk,
                          const char *group, int64_t now_ms,
                          Sbp__Conversation **out, bool *created);

/* Moves a conversation to state with group and agent ("" for none).
 * Membership follows the assignment: a previous agent other than agent
 * stops being a member; agent (when not "") becomes one, role agent.
 * Records the time of entering QUEUED (queued_ts), ASSIGNED (assigned_ts)
 * and CLOSED (closed_ts); leaving CLOSED clears closed_ts. SB_E_NOT_FOUND
 * if there is no such conversation. Returns the result in *out if out. */
int sb_store_conv_route(sb_store *s, uint64_t conv_id, Sbp__ConvState state,
                        const char *group, const char *agent, int64_t now_ms,
                        Sbp__Conversation **out);

/* Sets the note of conv's last transfer (text, "" for none; at most
 * SB_NOTE_BYTES_MAX bytes) and who wrote it (a user id, "" with no
 * note): conversations return them as transfer_note and transfer_from.
 * SB_E_NOT_FOUND without the conversation, SB_E_INVALID for a bad id or
 * text, SB_E_TOO_LARGE for a note over the limit. */
int sb_store_conv_note(sb_store *s, uint64_t conv_id, const char *from,
                       const char *note);

/* Records now_ms as the first agent response of conv, if none is yet.
 * now_ms 0: the time of the first message the conversation's agent sent
 * since it was assigned (nothing is recorded if there is none). */
int sb_store_first_response(sb_store *s, uint64_t conv_id, int64_t now_ms);

/* One message; SB_E_NOT_FOUND if none. */
int sb_store_msg_get(sb_store *s, uint64_t conv_id, uint64_t seq,
                     Sbp__Message **out);

/* Marks a message recalled (idempotent). SB_E_NOT_FOUND if none. */
int sb_store_recall(sb_store *s, uint64_t conv_id, uint64_t seq);

/* Adds and removes tags (1..SB_TAG_BYTES_MAX bytes, at most
 * SB_TAGS_MAX per target) on conv (seq 0) or one of its messages.
 * SB_E_NOT_FOUND for a missing target, SB_E_INVALID for a bad tag,
 * SB_E_TOO_LARGE past the limit. */
int sb_store_tag(sb_store *s, uint64_t conv_id, uint64_t seq, char *const *add,
                 size_t n_add, char *const *remove, size_t n_remove);

/* A page of conversations for a list, newest activity (updated_ts) first,
 * then conv_id: those user_id is a member of (all: every conversation),
 * with state (0: any) and tag ("": any) as filters; queued_groups, when
 * not NULL, adds the QUEUED service conversations of those skill groups
 * (an agent's view of the queue, members or not). cursor is "" or the
 * next_cursor of the previous page. Each entry has last_message, unread
 * (the messages after the user's read_seq that others sent; 0 for
 * non-members) and read_seq. */
int sb_store_conv_list(sb_store *s, const char *user_id, bool all,
                       Sbp__ConvState state, const char *tag,
                       char *const *queued_groups, size_t n_groups,
                       const char *cursor, uint32_t limit,
                       Sbp__ConvListResp **out);

/* Messages whose body matches every word of query (a full-text index; the
 * query is taken as plain words, never as an index's syntax), in conv (0: every
 * conversation user_id is a member of; all: every one), newest first, at
 * most limit (capped at SB_STORE_PAGE_MAX). Recalled messages never
 * match. */
int sb_store_search(sb_store *s, const char *user_id, bool all,
                    uint64_t conv_id, const char *query, uint32_t limit,
                    Sbp__SearchResp **out);

/* Service conversations in state (QUEUED or ASSIGNED), oldest queued_ts
 * first: what the gateway rebuilds its queues and agent loads from at
 * start. */
int sb_store_service_convs(sb_store *s, Sbp__ConvState state,
                           Sbp__Conversation ***out, size_t *n_out);

/* The search index is filled behind the appends, not by them (FTS5 would
 * cost more per message than the rest of an append); sb_store_search scans
 * the messages past it, so it finds everything either way, only slower
 * the further the index lags. This indexes up to max_msgs more messages
 * inside the caller's write transaction (sb_storeq does it when idle and
 * whenever the lag grows large); max_msgs 0 only reports, and needs no
 * transaction. *left (if left): how many remain unindexed after. */
int sb_store_index(sb_store *s, uint32_t max_msgs, uint64_t *left);

/* Makes user_id a member of conv with role, or gives a member that role
 * (an external bot joining a service conversation). SB_E_NOT_FOUND
 * without the conversation, SB_E_INVALID for a malformed id or role,
 * SB_E_TOO_LARGE past SB_MEMBERS_MAX. */
int sb_store_member_put(sb_store *s, uint64_t conv_id, const char *user_id,
                        Sbp__Role role, int64_t now_ms);
/* user_id stops being a member of conv (nothing happens if it is not
 * one). */
int sb_store_member_del(sb_store *s, uint64_t conv_id, const char *user_id);

/* ---- satisfaction and reports ----------------------------------------------
 *
 * A service conversation's rating (CSAT): asked for at its close, given
 * once. Reports read the figures of the conversations opened in a span
 * (sb_report.h computes them). */

/* Records that conv's customer was asked to rate it (at now_ms), unless it
 * is rated already: *asked says whether it was. SB_E_NOT_FOUND without
 * the conversation. */
int sb_store_csat_ask(sb_store *s, uint64_t conv_id, int64_t now_ms,
                      bool *asked);
/* Stores the customer's rating (1..SB_CSAT_RATING_MAX) and comment (at
 * most SB_CSAT_COMMENT_BYTES_MAX bytes of UTF-8, NULL or "" for none) of
 * conv: once. SB_E_NOT_FOUND without the conversation, SB_E_STATE when
 * no rating was asked for, SB_E_ALREADY when it is rated already (the
 * first rating stays), SB_E_INVALID / SB_E_TOO_LARGE for a bad rating or
 * comment. */
int sb_store_csat_set(sb_store *s, uint64_t conv_id, uint32_t rating,
                      const char *comment, int64_t now_ms);

/* What a report reads of one service conversation (times in ms, 0 for
 * none); the strings are valid during the callback only. */
typedef struct sb_store_report_row {
    uint64_t conv_id;
    const char *desk, *group;
    const char *agent; /* the last agent it was assigned to, "" if none */
    int64_t created_ts, queued_ts, assigned_ts, first_response_ts, closed_ts;
    int64_t csat_asked_ts;
    uint32_t csat_rating;
} sb_store_report_row;

/* Calls each(ud, row) for every service conversation created in
 * [from_ms, to_ms) whose desk, group and last agent are the ones given
 * ("" or NULL: any), oldest first, in one snapshot; stops at the first
 * non-zero return of each, and returns it. Else 0 or SB_E_STORE. */
int sb_store_report_scan(sb_store *s, int64_t from_ms, int64_t to_ms,
                         const char *desk, const char *group, const char *agent,
                         int (*each)(void *ud, const sb_store_report_row *r),
                         void *ud);

/* ---- the agent side: private notes and contacts ---------------------------
 *
 * A service conversation's private notes are a conversation of their own
 * (kind CONV_NOTES, notes_of naming the service conversation, its desk
 * copied), made when first asked for, whose members are the service side
 * only: its customer is never one, so that none of the customer's reads
 * (SYNC, HISTORY, search, list, export) can reach a note. Contacts are
 * what the service side knows of a customer, one per user id. */

/* The notes of service conversation conv_id (made when create and it has
 * none), with the n users given (agents or admins; may be 0) made members
 * (a member keeps its role), returned in *out (caller frees) with
 * *created saying whether it was made now. SB_E_NOT_FOUND without the
 * conversation, or without notes when create is not set; SB_E_INVALID
 * when conv_id is not a service conversation, or for a bad id or role (a
 * customer or a bot); SB_E_TOO_LARGE past SB_MEMBERS_MAX. */
int sb_store_notes_open(sb_store *s, uint64_t conv_id, bool create,
                        const char *const *user_ids, const Sbp__Role *roles,
                        size_t n, int64_t now_ms, Sbp__Conversation **out,
                        bool *changed);

/* The contact of user_id into *out (caller frees); SB_E_NOT_FOUND when
 * none was ever set. */
int sb_store_contact_get(sb_store *s, const char *user_id, Sbp__Contact **out);

/* A change to a contact: name and email replace the stored ones when not
 * NULL or "", clear_name and clear_email empty them, each attribute is
 * set (an empty value removes it); verified marks the contact as vouched
 * for by the site (it stays so); by is who makes the change. */
typedef struct sb_store_contact_change {
    const char *name, *email;
    bool clear_name, clear_email;
    Sbp__ContactAttr *const *attrs;
    size_t n_attrs;
    bool verified;
    const char *by;
} sb_store_contact_change;

/* Applies ch to the contact of user_id (made if it has none) and returns
 * it as stored in *out (if out; caller frees). SB_E_INVALID for a bad id,
 * field, key or value (over its limit: SB_E_TOO_LARGE, as is a result of
 * more than SB_CONTACT_ATTRS_MAX attributes); SB_E_FORBIDDEN when the
 * user is known with another role than customer (an agent's id cannot
 * become a contact). */
int sb_store_contact_put(sb_store *s, const char *user_id,
                         const sb_store_contact_change *ch, int64_t now_ms,
                         Sbp__Contact **out);

/* The service conversations whose customer is user_id, newest first, at
 * most limit (capped at SB_CONTACT_CONVS_MAX), into *out (an array of n;
 * caller frees each and the array). */
int sb_store_customer_convs(sb_store *s, const char *user_id, uint32_t limit,
                            Sbp__Conversation ***out, size_t *n);

/* ---- configuration ----------------------------------------------------------
 *
 * Named settings the server keeps in the store rather than in files (the
 * desk configuration, edited by admins while the server runs): a key of
 * 1..SB_STORE_CONFIG_KEY_BYTES_MAX bytes, a UTF-8 text value. */

#define SB_STORE_CONFIG_KEY_BYTES_MAX 64
#define SB_STORE_CONFIG_BYTES_MAX (8u << 20)

/* The value stored under key into *out (malloc'd, NUL-terminated; the
 * caller frees) and its length into *len. SB_E_NOT_FOUND if none. */
int sb_store_config_get(sb_store *s, const char *key, char **out, size_t *len);
/* Stores len bytes of value under key, replacing what was there; inside
 * a write transaction. SB_E_INVALID for a bad key or a value that is not
 * UTF-8 (or holds a NUL), SB_E_TOO_LARGE over SB_STORE_CONFIG_BYTES_MAX. */
int sb_store_config_set(sb_store *s, const char *key, const char *value,
                        size_t len, int64_t now_ms);

/* ---- webhook outbox --------------------------------------------------------
 *
 * Events for the company's systems (sb_webhook), one row per event and
 * endpoint, written in the transaction of what they tell of and delivered
 * from here by the gateway with retries: pending until due (next_ts),
 * claimed by a delivery for a lease, then deleted when delivered or kept
 * as failed once its attempts are spent (listed and replayed by admins). */

#define SB_STORE_EVENT_BYTES_MAX 32
#define SB_STORE_HOOK_ERROR_BYTES_MAX 200

typedef enum sb_hook_state {
    SB_HOOK_PENDING = 0,
    SB_HOOK_FAILED = 2,
} sb_hook_state;

/* One outbox row as reads return it (payload malloc'd; free the array
 * with sb_store_hooks_free). */
typedef struct sb_store_hook {
    int64_t id;
    char event[SB_STORE_EVENT_BYTES_MAX + 1];
    char endpoint[SB_ID_BYTES_MAX + 1];
    char subject[SB_ID_BYTES_MAX + 1]; /* the user the data is about */
    char *payload;                     /* a JSON document */
    sb_hook_state state;
    uint32_t attempts;
    int64_t next_ts, created_ts;
    char last_error[SB_STORE_HOOK_ERROR_BYTES_MAX + 1];
} sb_store_hook;

void sb_store_hooks_free(sb_store_hook *h, size_t n);

/* Adds a pending event for endpoint, due now. subject ("" for none) is
 * the user whose data payload holds (erasure drops it). */
int sb_store_outbox_add(sb_store *s, const char *event, const char *endpoint,
                        const char *subject, const char *payload,
                        int64_t now_ms);
/* Claims up to limit pending events due by now_ms, oldest first: each is
 * due again lease_ms later (a delivery that never reports is retried
 * then), and comes back in *out (caller frees). A write. */
int sb_store_outbox_claim(sb_store *s, int64_t now_ms, int64_t lease_ms,
                          uint32_t limit, sb_store_hook **out, size_t *n);
/* A delivery's outcome: delivered (the row goes), or failed with error,
 * then due again at next_ts with attempts counted, or (give_up) kept as
 * failed. SB_E_NOT_FOUND if the row is gone (replayed or erased). */
int sb_store_outbox_result(sb_store *s, int64_t id, bool delivered,
                           bool give_up, uint32_t attempts, int64_t next_ts,
                           const char *error);
/* Up to limit failed events, oldest first (a read). */
int sb_store_outbox_failed(sb_store *s, uint32_t limit, sb_store_hook **out,
                           size_t *n);
/* Makes failed event id (0: every failed one) pending again, due now, its
 * attempts from 0; *n gets how many. */
int sb_store_outbox_replay(sb_store *s, int64_t id, int64_t now_ms,
                           uint64_t *n);

/* ---- a user's data (GDPR) ---------------------------------------------------
 */

/* What an erasure did. */
typedef struct sb_store_erased {
    uint64_t messages;      /* messages of the user whose bodies and
                               structured parts (card, media, quick
                               replies) were removed */
    uint64_t cursors;       /* device cursors deleted */
    uint64_t outbox_events; /* webhook events about the user dropped */
    uint64_t uploads;       /* the user's uploads' records deleted (their
                               bytes go with sb_store_blob_gc) */
    uint64_t csat_comments; /* comments of the user's ratings emptied (the
                               ratings stay) */
    uint64_t contacts;      /* the user's contact deleted (0 or 1) */
} sb_store_erased;

/* Erases what user_id wrote: the body and structured parts of every
 * message it sent (ids, seqs, times, types and membership stay, so that
 * every conversation keeps its dense seqs), its uploads' records, its
 * device cursors, its pending or failed webhook events, its words from
 * the search index, the comments of its ratings (as the customer of a
 * conversation) and its contact. Idempotent. */
int sb_store_user_erase(sb_store *s, const char *user_id, sb_store_erased *out);

/* ---- media -----------------------------------------------------------------
 *
 * Uploads (images and files that messages carry). Their bytes are stored
 * once per content, by SHA-256 (a blob): in files under the data folder
 * for SQLite (DIR/media/ab/abcd...), in the database itself for
 * PostgreSQL (every gateway of a cluster reads them). Each upload is a
 * media record: its id, its blob, the conversation it was uploaded for,
 * its uploader, name, type, size and, for images, dimensions. A message
 * of type MSG_IMAGE or MSG_FILE names its upload by msg->media->id:
 * sb_store_append takes it only from the uploader and into that
 * conversation, and fills the message's media from the record (url,
 * size, name, mime, width, height); MSG_IMAGE wants an image. */

#define SB_SHA256_BYTES 32

typedef struct sb_store_media {
    char id[SB_MEDIA_ID_LEN + 1];
    uint8_t sha256[SB_SHA256_BYTES];
    uint64_t conv_id;
    char owner[SB_ID_BYTES_MAX + 1];
    char name[SB_MEDIA_NAME_BYTES_MAX + 1];
    char mime[SB_MEDIA_MIME_BYTES_MAX + 1];
    uint64_t size;
    uint32_t width, height; /* 0 for a file that is not an image */
    int64_t created_ts;
} sb_store_media;

/* Stores the record of an upload whose blob is stored (sb_store_blob_put),
 * inside a write transaction. SB_E_INVALID for a malformed record (id,
 * owner, name or type), SB_E_NOT_FOUND without the conversation. */
int sb_store_media_put(sb_store *s, const sb_store_media *m);

/* The record of upload id as user_id may see it: its uploader always;
 * anyone else only once a message that is not recalled carries it, and
 * then a member of its conversation (or anyone, with all: admins).
 * SB_E_NOT_FOUND for an upload that does not exist or that the user may
 * not see (the same answer: an id tells nothing). */
int sb_store_media_get(sb_store *s, const char *id, const char *user_id,
                       bool all, sb_store_media *out);

/* Stores the bytes of the finished file at path (size bytes, whose
 * SHA-256 is sha256) as the blob of that hash, unless one is stored
 * already; the file is moved or removed either way (the caller no longer
 * owns it once this returns 0). Runs its own transaction where it needs
 * one, never inside the caller's. 0, SB_E_STORE (the disk or database is
 * full or failed: the file stays where it was), -ENOTSUP for a store
 * with no place for blobs (an SQLite database in memory). */
int sb_store_blob_put(sb_store *s, const uint8_t sha256[SB_SHA256_BYTES],
                      const char *path, uint64_t size);

/* Removes the blobs that no upload's record names any more (an erased
 * user's) and that were stored before older_than_ms (a blob is stored
 * before its record: a younger one may be an upload's on its way).
 * Outside a transaction; *removed (if set) counts them. 0, SB_E_STORE,
 * -ENOTSUP. */
int sb_store_blob_gc(sb_store *s, int64_t older_than_ms, uint64_t *removed);

/* Reads up to cap bytes of blob sha256 from offset off into buf; *got is
 * how many (0 only at or past its end; fewer than cap may come before
 * it). SB_E_NOT_FOUND without the blob, SB_E_STORE, -ENOTSUP. */
int sb_store_blob_read(sb_store *s, const uint8_t sha256[SB_SHA256_BYTES],
                       uint64_t off, uint8_t *buf, size_t cap, size_t *got);

/* ---- test hook --------------------------------------------------------- */

/* Caps this connection's database at `pages` pages (SQLite's max_page_count,
 * never below the current size), so that a write needing more space fails
 * with SQLITE_FULL exactly as on a full disk; 0 lifts the cap. For tests
 * only. Returns 0 or SB_E_STORE. */
int sb__store_max_pages(sb_store *s, uint32_t pages);

/* ---- for sb_storeq ----------------------------------------------------- */

/* Marks a point in the open write transaction; savepoint_end releases it,
 * first undoing everything since (keep false). Used to make a request and
 * the messages appended with it one: a refusal of either undoes both.
 * Returns 0 or SB_E_STORE. */
int sb__store_savepoint(sb_store *s);
int sb__store_savepoint_end(sb_store *s, bool keep);

#endif
