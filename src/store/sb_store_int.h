/* The store's backend interface: what a database behind sb_store.h
 * implements (sb_sqlite*.c, sb_pg*.c), and the helpers every backend shares.
 * sb_store.c checks each call's arguments, then calls the backend's
 * operation: a backend sees only arguments that passed those checks, and
 * does the database's part (lookups, writes, row decoding). Not for the
 * store's users. */
#ifndef SB_STORE_INT_H
#define SB_STORE_INT_H

#include "sb_store.h"

/* Words of a search query, as the store's front splits them. */
#define SB_STORE_SEARCH_WORDS_MAX 16
/* Skill groups whose queues one conv_list looks at. */
#define SB_STORE_LIST_GROUPS_MAX 64
/* A word shorter than this many characters cannot use a trigram index. */
#define SB_STORE_TRIGRAM_CHARS 3

typedef struct sb_store_words {
    const char *p[SB_STORE_SEARCH_WORDS_MAX]; /* into the query */
    size_t len[SB_STORE_SEARCH_WORDS_MAX];
    bool indexed[SB_STORE_SEARCH_WORDS_MAX]; /* long enough for a trigram
                                                index */
    size_t n, n_indexed;
} sb_store_words;

/* A SYNC cursor as backends get them: sorted by conv_id, one per
 * conversation. */
typedef struct sb_store_cursor {
    uint64_t conv_id, seq;
} sb_store_cursor;

/* A conv_list page's start: after (updated_ts, conv_id), or the first. */
typedef struct sb_store_list_after {
    bool set;
    int64_t ts;
    uint64_t conv_id;
} sb_store_list_after;

/* A backend's operations, each the part of the sb_store_* function of the
 * same name that needs the database (see sb_store.h for what each does
 * and returns). Writes run inside the transaction begin opened. The
 * maintenance operations at the end may be NULL where a database has no
 * such thing (checkpoints, a page cache). */
typedef struct sb_store_ops {
    const char *name;
    void (*close)(sb_store *s);
    int (*begin)(sb_store *s);
    int (*commit)(sb_store *s);
    void (*rollback)(sb_store *s);
    int (*savepoint)(sb_store *s);
    int (*savepoint_end)(sb_store *s, bool keep);
    /* Whether a write transaction is open (for assertions). */
    bool (*in_write)(const sb_store *s);

    int (*append)(sb_store *s, Sbp__Message *msg, int64_t now_ms,
                  bool *duplicate);
    /* Stores the items whose rc is 0 (the others failed the front's
     * checks). NULL: the front calls append for each. */
    int (*append_many)(sb_store *s, sb_store_append_item *items, size_t n);
    /* NULL: nothing to lock (one writer at a time). */
    int (*lock_convs)(sb_store *s, const uint64_t *ids, size_t n);
    int (*user_upsert)(sb_store *s, const char *user_id, Sbp__Role role,
                       const char *locale, int64_t now_ms);
    /* roles are resolved (never ROLE_UNSPECIFIED for a user the store
     * knows); customer is the customer member of a service conversation,
     * "" otherwise. */
    int (*conv_create)(sb_store *s, Sbp__ConvKind kind, const char *title,
                       const char *const *user_ids, const Sbp__Role *roles,
                       size_t n, const char *customer, int64_t now_ms,
                       Sbp__Conversation **out);
    int (*cursor_ack)(sb_store *s, const char *user_id, const char *device_id,
                      uint64_t conv_id, uint64_t seq);
    /* Stores the items whose rc is 0 (the others failed the front's
     * checks). NULL: the front calls cursor_ack for each. */
    int (*cursor_ack_many)(sb_store *s, sb_store_cursor_item *items, size_t n);
    int (*read_set)(sb_store *s, uint64_t conv_id, const char *user_id,
                    uint64_t seq);
    int (*service_open)(sb_store *s, const char *customer, const char *desk,
                        const char *group, int64_t now_ms,
                        Sbp__Conversation **out, bool *created);
    int (*conv_route)(sb_store *s, uint64_t conv_id, Sbp__ConvState state,
                      const char *group, const char *agent, int64_t now_ms,
                      Sbp__Conversation **out);
    int (*first_response)(sb_store *s, uint64_t conv_id, int64_t now_ms);
    int (*conv_note)(sb_store *s, uint64_t conv_id, const char *from,
                     const char *note);
    int (*recall)(sb_store *s, uint64_t conv_id, uint64_t seq);
    int (*tag)(sb_store *s, uint64_t conv_id, uint64_t seq, char *const *add,
               size_t n_add, char *const *remove, size_t n_remove);
    int (*member_put)(sb_store *s, uint64_t conv_id, const char *user_id,
                      Sbp__Role role, int64_t now_ms);
    int (*member_del)(sb_store *s, uint64_t conv_id, const char *user_id);
    int (*config_set)(sb_store *s, const char *key, const char *value,
                      size_t len, int64_t now_ms);
    int (*index)(sb_store *s, uint32_t max_msgs, uint64_t *left);

    int (*user_role)(sb_store *s, const char *user_id, Sbp__Role *role);
    int (*conv_get)(sb_store *s, uint64_t conv_id, Sbp__Conversation **out);
    /* cursors sorted by conv_id, one per conversation (the highest seq). */
    int (*sync)(sb_store *s, const char *user_id, bool all,
                const sb_store_cursor *cursors, size_t n_cursors,
                uint32_t limit, size_t bytes_max, Sbp__SyncResp **out);
    int (*history)(sb_store *s, uint64_t conv_id, uint64_t before_seq,
                   uint32_t limit, Sbp__HistoryResp **out);
    int (*msg_get)(sb_store *s, uint64_t conv_id, uint64_t seq,
                   Sbp__Message **out);
    int (*conv_list)(sb_store *s, const char *user_id, bool all,
                     Sbp__ConvState state, const char *tag,
                     char *const *queued_groups, size_t n_groups,
                     const sb_store_list_after *after, uint32_t limit,
                     Sbp__ConvListResp **out);
    int (*search)(sb_store *s, const char *user_id, bool all, uint64_t conv_id,
                  const sb_store_words *w, uint32_t limit,
                  Sbp__SearchResp **out);
    int (*service_convs)(sb_store *s, Sbp__ConvState state,
                         Sbp__Conversation ***out, size_t *n_out);
    int (*config_get)(sb_store *s, const char *key, char **out, size_t *len);
    int (*csat_ask)(sb_store *s, uint64_t conv_id, int64_t now_ms, bool *asked);
    int (*csat_set)(sb_store *s, uint64_t conv_id, uint32_t rating,
                    const char *comment, int64_t now_ms);
    /* desk, group and agent: "" for any. */
    int (*report_scan)(sb_store *s, int64_t from_ms, int64_t to_ms,
                       const char *desk, const char *group, const char *agent,
                       int (*each)(void *ud, const sb_store_report_row *r),
                       void *ud);

    /* Notes and contacts (sb_storeagent.c is their front). notes_find:
     * the notes conversation of conv_id in *id, 0 if none; notes_create
     * makes one (no members). contact_write stores c whole (attributes
     * included) as user_id's contact. customer_convs: conv ids, newest
     * first. */
    int (*notes_find)(sb_store *s, uint64_t conv_id, uint64_t *id);
    int (*notes_create)(sb_store *s, uint64_t conv_id, const char *desk,
                        int64_t now_ms, uint64_t *id);
    int (*contact_get)(sb_store *s, const char *user_id, Sbp__Contact **out);
    int (*contact_write)(sb_store *s, const Sbp__Contact *c);
    int (*customer_convs)(sb_store *s, const char *user_id, uint32_t limit,
                          uint64_t *ids, size_t *n);

    int (*outbox_add)(sb_store *s, const char *event, const char *endpoint,
                      const char *subject, const char *payload, int64_t now_ms);
    int (*outbox_claim)(sb_store *s, int64_t now_ms, int64_t lease_ms,
                        uint32_t limit, sb_store_hook **out, size_t *n);
    int (*outbox_result)(sb_store *s, int64_t id, bool delivered, bool give_up,
                         uint32_t attempts, int64_t next_ts, const char *error);
    int (*outbox_failed)(sb_store *s, uint32_t limit, sb_store_hook **out,
                         size_t *n);
    int (*outbox_replay)(sb_store *s, int64_t id, int64_t now_ms, uint64_t *n);
    int (*user_erase)(sb_store *s, const char *user_id, sb_store_erased *out);
    /* Media (sb_store.h). media_find reads the record of id for the
     * front's checks of an append (no access rule: the front applies
     * them); media_ref records that the message (conv_id, seq) carries
     * upload id, after its append. */
    int (*media_put)(sb_store *s, const sb_store_media *m);
    int (*media_get)(sb_store *s, const char *id, const char *user_id, bool all,
                     sb_store_media *out);
    int (*media_find)(sb_store *s, const char *id, sb_store_media *out);
    int (*media_ref)(sb_store *s, const char *id, uint64_t conv_id,
                     uint64_t seq);
    int (*blob_put)(sb_store *s, const uint8_t sha256[SB_SHA256_BYTES],
                    const char *path, uint64_t size);
    int (*blob_read)(sb_store *s, const uint8_t sha256[SB_SHA256_BYTES],
                     uint64_t off, uint8_t *buf, size_t cap, size_t *got);
    int (*blob_gc)(sb_store *s, int64_t older_than_ms, uint64_t *removed);

    /* Maintenance; NULL: the database has none (the call answers
     * -ENOTSUP, or does nothing where it cannot fail). */
    int (*ping)(sb_store *s);
    int (*cache)(sb_store *s, uint32_t kib);
    int (*wal_watch)(sb_store *s, void (*hook)(void *ud, int frames), void *ud);
    int (*checkpoint)(sb_store *s, int *log, int *done);
    int (*db_sync)(sb_store *s);
    int (*max_pages)(sb_store *s, uint32_t pages);
} sb_store_ops;

/* The head of every backend's connection struct. */
struct sb_store {
    const sb_store_ops *ops;
};

/* Each backend's open: an SQLite file's path, a PostgreSQL URI. */
int sb__sqlite_open(const char *path, sb_durability d, sb_store **out);
int sb__pg_open(const char *uri, sb_durability d, sb_store **out);

/* ---- shared by backends ------------------------------------------------ */

/* The length of the longest prefix of t[0..n) of at most max bytes that
 * ends on a character boundary (t is valid UTF-8). */
size_t sb__store_utf8_cut(const char *t, size_t n, size_t max);
/* A copy of p[0..n) with a NUL after it; NULL when out of memory. */
char *sb__store_strndup(const char *p, size_t n);

/* A message's structured parts (event, quick replies, card, media) are
 * stored as one packed Sbp__Message holding only them (its "extra"). Packs
 * msg's into *out (buf when it fits, else malloc'd: free it when *out !=
 * buf); *len 0 when there are none, the common case that costs nothing. */
int sb__store_extra_pack(const Sbp__Message *msg, uint8_t *buf, size_t size,
                         uint8_t **out, size_t *len);
/* Moves the structured parts packed in p[0..n) into m; SB_E_STORE if they
 * are not what extra_pack made. */
int sb__store_extra_merge(const uint8_t *p, size_t n, Sbp__Message *m);
/* A recalled message is read with no body, card or media. */
void sb__store_recall_blank(Sbp__Message *m);

/* The cursor of conv_id among n sorted ones, or NULL. */
const sb_store_cursor *sb__store_cursor_find(const sb_store_cursor *cur,
                                             size_t n, uint64_t conv_id);

/* The LIKE pattern of each word (%word% with %, _ and \ escaped by \),
 * in one malloc'd buffer (free it), pat[i] pointing into it. */
char *sb__store_like_patterns(const sb_store_words *w, const char *pat[]);

#endif
