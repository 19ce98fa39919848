/* The HTTP requests the gateway's port answers, by a table of {upgrade or
 * not, method, path, handler}: the WebSocket upgrade of GET /ws (checked
 * and handed back to the caller to switch the connection), GET /healthz,
 * GET /ws without an upgrade (426), GET /demo/token (sb_demo), the public
 * description of a desk's chat widget (GET /api/widget?desk=ID, JSON from
 * the desk configuration in force), every other method and path under
 * /api/ (the REST API, sb_api), uploads and their bytes under /media (the
 * media service, sb_media) and the static files under --web (sb_static).
 * A path no route takes is 404, one taken for another method 405, a
 * request with an overlong header 431. A handler sees a narrow context:
 * the request, the peer, whether the server drains and the ways to answer
 * or hand the request on; no connection, no server. */
#ifndef SB_ROUTES_H
#define SB_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sb_codec.h"
#include "sb_demo.h"
#include "sb_http.h"

/* What the routes serve; the strings stay the caller's and must outlive
 * every sb_routes_serve() call. */
typedef struct sb_routes_config {
    const char *web_dir; /* static files; NULL: none */
    /* WebSocket upgrades carrying an Origin header (browsers) are taken
     * only from these origins (exact, case-insensitive); n_origins 0: from
     * any. Requests without Origin are not browsers' and pass. */
    const char *const *origins;
    size_t n_origins;
    /* permessage-deflate is accepted when the client offers it. */
    bool deflate;
    sb_demo_config demo;
} sb_routes_config;

/* One complete request and the ways to answer it; valid during the
 * sb_routes_serve() call. */
typedef struct sb_route_req {
    const sb_routes_config *cfg;
    const sb_http_req *http;     /* complete (http->complete) */
    const struct sockaddr *peer; /* NULL: unknown */
    bool draining;               /* the server is shutting down */
    bool store_down; /* the store does not answer (sb_storeq_healthy) */
    int64_t now_ms;
    /* The desks in force (NULL: none), valid during the call. */
    const struct sb_desk *desk;
    /* Answers with a complete response (sb_http_respond_headers) with
     * header lines headers (NULL: none); body is valid during the call. */
    void (*answer)(void *ud, int status, const char *type, const char *headers,
                   const void *body, size_t n);
    /* Takes the request's WebSocket upgrade, checked: the caller answers
     * 101 echoing subprotocol proto ("" for none) with the
     * Sec-WebSocket-Extensions value ext ("" for none), and speaks
     * encoding enc with the permessage-deflate of deflate from then on. */
    void (*upgrade)(void *ud, sb_encoding enc, const char *proto,
                    const sb_wsdeflate_params *deflate, const char *ext);
    /* Hands the request to the REST API (sb_api), which answers it later
     * (any method under /api/). NULL: there is none (404). */
    void (*api)(void *ud);
    /* Takes the request for the media service (POST /media, GET
     * /media/<id>, their OPTIONS): the caller's transfer answers it. */
    void (*media)(void *ud);
    void *ud;
} sb_route_req;

/* Serves rq: calls rq->answer, rq->upgrade, rq->api or rq->media exactly
 * once, before it returns. */
void sb_routes_serve(const sb_route_req *rq);

/* Liveness (GET /healthz, here and on the operations port): the process
 * serves. Returns the status (503 while draining, else 200) and the text
 * to answer with (static). */
int sb_routes_health(bool draining, bool store_down, const char **text);

#endif
