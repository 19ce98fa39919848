/* The store's threads: a writer that applies write requests in batches, one
 * transaction and one commit (fsync) per batch (group commit), and a reader
 * that answers read requests on its own connection (WAL lets it run beside
 * the writer). Requests are submitted from the loop thread and completed
 * there: the done callback runs on the loop thread, through a uv_async.
 *
 * A request is owned by the caller from submit to its done callback; the
 * store only fills its result fields. */
#ifndef SB_STOREQ_H
#define SB_STOREQ_H

#include <uv.h>

#include "sb_store.h"

#define SB_STOREQ_BATCH_MAX 4096 /* writes per transaction */

typedef enum sb_req_kind {
    /* writes */
    SB_REQ_APPEND = 1,  /* u.append */
    SB_REQ_USER,        /* u.user */
    SB_REQ_CONV_CREATE, /* u.create */
    SB_REQ_CURSOR_ACK,  /* u.cursor */
    SB_REQ_READ_SET,    /* u.read */
    /* reads */
    SB_REQ_CONV_GET, /* u.conv_get */
    SB_REQ_SYNC,     /* u.sync */
    SB_REQ_HISTORY,  /* u.history */
    SB_REQ_RECEIPTS, /* u.receipts */
    /* customer service: writes */
    SB_REQ_SERVICE_OPEN,   /* u.svc_open, then appends msgs if created */
    SB_REQ_ROUTE,          /* u.route, then appends msgs */
    SB_REQ_RECALL,         /* u.recall, then appends msgs */
    SB_REQ_TAG,            /* u.tag, then appends msgs */
    SB_REQ_FIRST_RESPONSE, /* u.conv_get.conv_id (time: see
                              sb_store_first_response, now_ms 0) */
    /* customer service: reads */
    SB_REQ_MSG_GET,       /* u.msg_get */
    SB_REQ_CONV_LIST,     /* u.conv_list */
    SB_REQ_SEARCH,        /* u.search */
    SB_REQ_SERVICE_CONVS, /* u.service_convs */
    /* configuration (sb_store_config_*) */
    SB_REQ_CONFIG_SET, /* u.config: write keys = values, as one */
    SB_REQ_CONFIG_GET, /* u.config: read the values of keys */
} sb_req_kind;

/* Messages appended with a customer-service write. */
#define SB_REQ_MSGS_MAX 4
#define SB_REQ_CONFIG_KEYS_MAX 2 /* settings per CONFIG request */

typedef struct sb_req sb_req;
struct sb_req {
    sb_req_kind kind;
    int rc;         /* result: 0 or a negative code */
    uint64_t owner; /* caller's tag, e.g. a session id */
    uint32_t rid;   /* caller's tag, e.g. the frame's request id */
    void *data;     /* caller's pointer */
    sb_req *next;   /* internal: queue link */
    union {
        struct {
            Sbp__Message *msg; /* in/out, owned by the caller */
            int64_t now_ms;
            bool duplicate; /* out */
        } append;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            Sbp__Role role;
            char locale[SB_LOCALE_BYTES_MAX + 1];
            int64_t now_ms;
        } user;
        struct {
            Sbp__ConvKind kind;
            char *title;      /* owned by the caller */
            char **user_ids;  /* owned by the caller */
            Sbp__Role *roles; /* owned by the caller */
            size_t n;
            int64_t now_ms;
            Sbp__Conversation *conv; /* out, then owned by the caller */
        } create;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            char device_id[SB_ID_BYTES_MAX + 1];
            uint64_t conv_id, seq;
        } cursor;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            uint64_t conv_id, seq;
        } read;
        struct {
            uint64_t conv_id;
            Sbp__Conversation *conv; /* out, then owned by the caller */
        } conv_get;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            bool all;
            Sbp__Cursor **cursors; /* owned by the caller */
            size_t n_cursors;
            uint32_t limit;
            size_t bytes_max;
            Sbp__SyncResp *resp; /* out, then owned by the caller */
        } sync;
        struct {
            uint64_t conv_id, before_seq;
            uint32_t limit;
            Sbp__HistoryResp *resp; /* out, then owned by the caller */
        } history;
        struct {
            uint64_t conv_id;
            Sbp__ReadNotify **list; /* out, then owned by the caller */
            size_t n;
        } receipts;
        struct {
            char customer[SB_ID_BYTES_MAX + 1], desk[SB_ID_BYTES_MAX + 1],
                group[SB_ID_BYTES_MAX + 1];
            /* An external bot ("": none) that joins a conversation this
             * creates, as a member with role bot. */
            char bot[SB_ID_BYTES_MAX + 1];
            int64_t now_ms;
            Sbp__Conversation *conv; /* out, then owned by the caller */
            bool created;            /* out */
        } svc_open;
        struct {
            uint64_t conv_id;
            Sbp__ConvState state;
            char group[SB_ID_BYTES_MAX + 1], agent[SB_ID_BYTES_MAX + 1];
            /* An external bot ("": none): it becomes a member (role bot)
             * when state is STATE_BOT, and stops being one otherwise. */
            char bot[SB_ID_BYTES_MAX + 1];
            int64_t now_ms;
            Sbp__Conversation *conv; /* out, then owned by the caller */
        } route;
        struct {
            uint64_t conv_id, seq;
            int64_t now_ms; /* for the msgs; 0: the writer's clock */
        } recall;
        struct {
            uint64_t conv_id, seq;
            char **add, **remove; /* owned by the caller */
            size_t n_add, n_remove;
            int64_t now_ms; /* for the msgs; 0: the writer's clock */
        } tag;
        struct {
            uint64_t conv_id, seq;
            Sbp__Message *msg; /* out, then owned by the caller */
        } msg_get;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            bool all;
            Sbp__ConvState state;
            char tag[SB_TAG_BYTES_MAX + 1];
            char **groups; /* owned by the caller; NULL: none */
            size_t n_groups;
            char cursor[SB_LIST_CURSOR_BYTES_MAX + 1];
            uint32_t limit;
            Sbp__ConvListResp *resp; /* out, then owned by the caller */
        } conv_list;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            bool all;
            uint64_t conv_id;
            char *query; /* owned by the caller */
            uint32_t limit;
            Sbp__SearchResp *resp; /* out, then owned by the caller */
        } search;
        struct {
            Sbp__ConvState state;
            Sbp__Conversation **list; /* out, then owned by the caller */
            size_t n;
        } service_convs;
        struct {
            size_t n; /* keys used, 1..SB_REQ_CONFIG_KEYS_MAX */
            char keys[SB_REQ_CONFIG_KEYS_MAX]
                     [SB_STORE_CONFIG_KEY_BYTES_MAX + 1];
            /* SET: the values (owned by the caller) and their lengths;
             * GET: out, NULL for a key with nothing stored, then owned by
             * the caller. */
            char *values[SB_REQ_CONFIG_KEYS_MAX];
            size_t lens[SB_REQ_CONFIG_KEYS_MAX];
            int64_t now_ms;
        } config;
    } u;
    /* Messages appended in the same transaction after a SERVICE_OPEN (only
     * if it created the conversation), ROUTE, RECALL or TAG: each gets its
     * conversation's next seq (msgs[i]->conv_id is set by the store for
     * SERVICE_OPEN) at the request's now_ms. Owned by the caller; filled
     * like u.append.msg. A request and its messages are one: if either is
     * refused, neither is stored (rc says why) and no message has a seq. */
    Sbp__Message *msgs[SB_REQ_MSGS_MAX];
    size_t n_msgs;
};

typedef struct sb_storeq sb_storeq;

/* Called on the loop thread for each completed request, in completion
 * order; writes complete in submission order. */
typedef void (*sb_storeq_done_cb)(sb_req *req, void *ud);

/* Opens two connections to path and starts the writer and reader threads.
 * For ":memory:" (tests, demos) both threads share one connection, taking
 * turns: a read waits for the batch being written, and reads never see an
 * uncommitted write. The queue keeps the loop alive only while requests
 * are pending. Returns 0 or a negative code; on failure nothing is left
 * running. */
int sb_storeq_start(uv_loop_t *loop, const char *path, sb_durability d,
                    sb_storeq_done_cb cb, void *ud, sb_storeq **out);

/* Queues req (loop thread only). Can't fail: a request the store cannot
 * carry out completes with req->rc set. */
void sb_storeq_submit(sb_storeq *q, sb_req *req);

/* Number of requests submitted and not yet completed. */
size_t sb_storeq_pending(const sb_storeq *q);

/* Finishes every queued request (their callbacks run, from within this
 * call), stops the threads, closes the connections and frees q. Loop
 * thread only, never from a done callback; accepts NULL. A request
 * submitted by a callback during stop completes with SB_E_UNAVAILABLE.
 * It does not run the loop (uv_run must not be re-entered from a callback):
 * its uv_async handle is closed and freed on the loop's next turn, so run
 * the loop once more before uv_loop_close. */
void sb_storeq_stop(sb_storeq *q);

/* Whether requests of kind k are writes (the writer's; the others are the
 * reader's). */
bool sb_req_is_write(sb_req_kind k);

/* Applies one request synchronously on the given connection, outside any
 * batching: what the threads do for each request, for tests and tools.
 * Writes are wrapped in their own transaction. */
void sb_storeq_apply(sb_store *s, sb_req *req);

/* Number of write transactions committed so far (any thread). */
uint64_t sb_storeq_commits(const sb_storeq *q);
/* Checkpoints finished so far, by either thread (for tests and stats). */
uint64_t sb_storeq_checkpoints(const sb_storeq *q);

/* ---- test hooks ---------------------------------------------------------- */

/* While held, the writer starts no new batch (requests queue up); release
 * to let it take them all at once. Stop overrides a hold. */
void sb__storeq_hold(sb_storeq *q, bool hold);
/* Test hook: the checkpoint thresholds (frames waiting before a
 * checkpoint, the tail the writer copies itself, the WAL size from which
 * it does), instead of the defaults in sb_storeq.c. */
void sb__storeq_ckpt_limits(sb_storeq *q, int frames, int tail, int restart);
/* Applies sb__store_max_pages(pages) to the writer's connection before its
 * next batch. */
void sb__storeq_max_pages(sb_storeq *q, uint32_t pages);

#endif
