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
    /* Runs the request on s and returns its rc: a read, or a write inside
     * the transaction its batch has open. A request-level failure
     * (sb__req_rc_is_request_level) leaves the transaction usable and the
     * request without effect; any other dooms the batch. */
    int (*run)(sb_store *s, sb_req *r);
    /* Clears what run gave r after r's transaction did not commit: its
     * results are void. */
    void (*undo)(sb_req *r);
} sb__req_op;

/* One row per sb_req_kind: the OPS table. */
extern const sb__req_op sb__req_ops[];

/* Whether k is a kind of request (one with a row). */
bool sb__req_kind_ok(sb_req_kind k);
/* Whether rc refuses one request and leaves its transaction usable
 * (SB_E_NOT_FOUND, SB_E_INVALID, SB_E_FORBIDDEN, SB_E_TOO_LARGE). */
bool sb__req_rc_is_request_level(int rc);

#endif
