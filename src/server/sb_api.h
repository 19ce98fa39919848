/* The REST API under /api/v1 on the gateway's port (docs/api.md, the
 * OpenAPI document at /api/v1/openapi.json): JSON requests with a bearer
 * token of role admin or integration, each turned into the frame a client
 * would send and carried out by the gateway core on a session of its own
 * (sb_gw_api_open), so that a REST request meets the same checks, the
 * same store queue and the same delivery as a frame: a message sent here
 * is stored, acknowledged and pushed to every device like any other, in
 * order, and is idempotent by its client_msg_id exactly as SEND is. The
 * frame's answer becomes the HTTP response; errors are JSON with a status,
 * a code and a message. Limits: the body (SB_HTTP_BODY_BYTES_MAX), the
 * page size, requests per token (a token bucket), requests in flight.
 * Part of the server's shell: loop thread only. */
#ifndef SB_API_H
#define SB_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_gateway.h"
#include "sb_http.h"

#define SB_API_PENDING_MAX 1024      /* requests in flight, then 503 */
#define SB_API_BUCKETS_MAX 4096      /* tokens whose rate is tracked */
#define SB_API_PAGE_MAX 200          /* conversations or messages per page */
#define SB_API_DEADLINE_MS 30000     /* a request not answered by then: 504 */
#define SB_API_EXPORT_MSGS_MAX 20000 /* messages in one export */

typedef struct sb_api sb_api;

typedef struct sb_api_config {
    const uint8_t *secret; /* the HS256 key of the WebSocket's tokens;
                              the caller's, outliving the API */
    size_t secret_len;
    const char *token_iss, *token_aud; /* NULL or "": not checked */
    int64_t token_skew_s;
    /* Requests per token: a bucket refilled at rate_per_s holding at most
     * rate_burst; an empty one answers 429. rate_per_s 0: no limit. */
    uint32_t rate_per_s, rate_burst;
} sb_api_config;

typedef struct sb_api_io {
    void *ud;
    /* Answers HTTP request conn_id (ignored when the connection is gone):
     * status, content type, extra header lines (each ending in CRLF, or
     * NULL) and the body, valid during the call. */
    void (*answer)(void *ud, uint64_t conn_id, int status, const char *type,
                   const char *headers, const void *body, size_t n);
    /* A fresh id for a gateway session, unique among connections. */
    uint64_t (*new_id)(void *ud);
} sb_api_io;

/* Makes the API over gateway gw (which must outlive it). Returns 0 or
 * -ENOMEM. */
int sb_api_new(const sb_api_config *c, const sb_api_io *io, sb_gw *gw,
               sb_api **out);
/* Frees the API and ends its sessions (sb_gw_conn_closed); requests in
 * flight are not answered. Accepts NULL. */
void sb_api_free(sb_api *api);

/* A complete HTTP request under /api/ on connection conn_id: answered
 * through io->answer, now or later. */
void sb_api_request(sb_api *api, uint64_t conn_id, const sb_http_req *http,
                    int64_t now_ms);
/* A frame the gateway sends on session id (sb_gw_io.send): true when the
 * session is one of the API's (then the frame is taken here), false for
 * any other connection's. */
bool sb_api_frame(sb_api *api, uint64_t id, const uint8_t *p, size_t n);
/* Ends the sessions of requests answered since the last call, and answers
 * 504 to those past SB_API_DEADLINE_MS. Call once per loop turn, outside
 * the gateway's callbacks. */
void sb_api_flush(sb_api *api, int64_t now_ms);
/* HTTP connection conn_id is gone: its request, if pending, is answered
 * to no one. */
void sb_api_conn_gone(sb_api *api, uint64_t conn_id);
/* Requests in flight. */
size_t sb_api_pending(const sb_api *api);

/* The OpenAPI 3 document served at /api/v1/openapi.json (static). */
const char *sb_api_openapi(size_t *len);

#endif
