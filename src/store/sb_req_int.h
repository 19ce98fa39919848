/* The store requests' table, shared by sb_req.c (which fills it) and the
 * store's threads (sb_storeq.c, which run requests through it). Not for
 * the owners of requests. */
#ifndef SB_REQ_INT_H
#define SB_REQ_INT_H

#include "sb_req.h"
#include "sb_store.h"

typedef struct sb__req_op {
    const char *name;
    bool write;
    bool blob; /* neither a write nor a read: the blob thread's */
    /* Runs the request on s and returns its rc: a read, or a write inside
     * the transaction its batch has open. A request-level failure
     * (sb_store_rc_is_request_level) leaves the transaction usable and the
     * request without effect; any other dooms the batch. */
    int (*run)(sb_store *s, sb_req *r);
    /* The conversation a write changes (its row: last_seq, state), which
     * the batch locks at its start; 0 for none. NULL for reads. */
    uint64_t (*conv)(const sb_req *r);
    /* Clears what run gave r after r's transaction did not commit: its
     * results are void. */
    void (*undo)(sb_req *r);
    /* A read that takes long (a report): the store queue runs it on a
     * reader of its own, so that the others' reads do not wait for it. */
    bool long_read;
} sb__req_op;

/* One row per sb_req_kind: the OPS table. */
extern const sb__req_op sb__req_ops[];

/* Whether k is a kind of request (one with a row). */
bool sb__req_kind_ok(sb_req_kind k);
/* Frees r's webhook endpoints (r->hooks) and sets it NULL. */
void sb__req_hooks_free(sb_req *r);
/* Room the writer keeps for sb__req_write_batch, for batches of up to
 * cap requests. */
typedef struct sb__req_scratch {
    sb_store_append_item *items;
    sb_store_cursor_item *cursors;
    uint64_t *ids;
    size_t cap;
} sb__req_scratch;

int sb__req_scratch_init(sb__req_scratch *x, size_t cap);
void sb__req_scratch_free(sb__req_scratch *x);

/* Applies a chain of writes in one transaction: the conversations they
 * change are locked first, in conv_id order; consecutive appends go to
 * the store together (sb_store_append_many), and the device cursors all
 * together at the end (sb_store_cursor_ack_many: each only raises its
 * cursor, so when within the batch does not matter). Request-level failures
 * only set that request's rc; a lost race with another writer (SB_E_RETRY) runs
 * the whole transaction again, a few times; any other failure, or a failed
 * commit, rolls everything back and every request of the chain fails with
 * SB_E_STORE (those applied before the failure too: nothing of theirs was
 * kept). x: room for the chain (NULL: a chain of one). Returns true if the
 * transaction committed. */
bool sb__req_write_batch(sb_store *s, sb_req *batch, sb__req_scratch *x);

#endif
