/* The client core's requests: a table of requests_max slots, each a rid
 * awaiting its answer with the request's kind and deadline. An answer
 * frame of a kind its request takes, an ERROR with its rid, the deadline
 * or the end of the connection frees the slot and calls on_response, once.
 * The typed helpers of sb_client_core.h build the frames. A part of
 * sb_client_core (see sb_client_core_int.h). */
#ifndef SB_CLIENT_REQUEST_H
#define SB_CLIENT_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "sb_client_core.h"

typedef struct cc_req {
    uint32_t rid;
    Sbp__Frame__BodyCase kind; /* the request's; NOT_SET: a free slot */
    int64_t deadline_ms;
} cc_req;

typedef struct cc_requests {
    cc_req *slots; /* requests_max */
} cc_requests;

/* Allocates the table. 0 or -ENOMEM. */
int sb__client_request_init(sb_client_core *cc);
void sb__client_request_free(sb_client_core *cc);

/* A frame that may answer a request (READY only): taken if its rid awaits
 * a frame of its kind, else dropped (late: the request timed out). */
void sb__client_request_on_answer(sb_client_core *cc, const Sbp__Frame *f);
/* An ERROR frame: true if it answered a request. */
bool sb__client_request_on_error(sb_client_core *cc, const Sbp__Frame *f);

/* Every request pending fails with err (the connection is gone). */
void sb__client_request_fail_all(sb_client_core *cc, int err);
/* READY: the requests past their deadline fail with -ETIMEDOUT. */
void sb__client_request_tick(sb_client_core *cc);

#endif
