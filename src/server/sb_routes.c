/* The HTTP route table and its handlers. */
#include "sb_routes.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sb_desk.h"
#include "sb_error.h"
#include "sb_static.h"
#include "sb_ws.h"

/* How a route's path matches a request target. */
typedef enum route_match {
    MATCH_EXACT,  /* the whole target */
    MATCH_QUERY,  /* the path, alone or followed by a query */
    MATCH_PREFIX, /* targets that start with the path */
    MATCH_UNDER,  /* the path is a prefix of the target, and more follows */
    MATCH_ANY,    /* every target */
} route_match;

typedef struct route {
    bool upgrade;       /* WebSocket upgrade requests, or plain ones */
    const char *method; /* "": any */
    const char *path;
    route_match match;
    void (*handle)(const sb_route_req *rq);
} route;

static void answer_text(const sb_route_req *rq, int status, const char *text)
{
    rq->answer(rq->ud, status, "text/plain", NULL, text, strlen(text));
}

static void not_found(const sb_route_req *rq)
{
    answer_text(rq, 404, "not found\n");
}

/* A browser's upgrade (it sends Origin) must come from an allowed origin
 * when a list is configured; clients that send no Origin are not
 * browsers, which are the ones a page could misuse. */
static bool origin_allowed(const sb_routes_config *cfg, const char *origin)
{
    if (cfg->n_origins == 0 || !origin[0]) return true;
    for (size_t i = 0; i < cfg->n_origins; i++)
        if (strcasecmp(origin, cfg->origins[i]) == 0) return true;
    return false;
}

static void ws_upgrade(const sb_route_req *rq)
{
    const sb_http_req *r = rq->http;
    if (!origin_allowed(rq->cfg, r->origin)) {
        answer_text(rq, 403, "origin not allowed\n");
        return;
    }
    sb_encoding enc;
    const char *proto = sb_http_pick_subprotocol(r->ws_protocols, &enc);
    if (strlen(r->ws_key) != SB_WS_KEY_LEN ||
        strcmp(r->ws_version, "13") != 0 || !proto) {
        answer_text(rq, 400, "bad WebSocket handshake\n");
        return;
    }
    sb_wsdeflate_params deflate = {0};
    char ext[128] = "";
    if (rq->cfg->deflate)
        sb_wsdeflate_accept(r->ws_extensions, &deflate, ext, sizeof ext);
    rq->upgrade(rq->ud, enc, proto, &deflate, ext);
}

/* A store out of reach is said, but the answer stays 200: restarting the
 * gateway would not bring the database back, and the gateway reconnects
 * by itself. */
int sb_routes_health(bool draining, bool store_down, const char **text)
{
    *text = draining     ? "draining\n"
            : store_down ? "ok, store unavailable\n"
                         : "ok\n";
    return draining ? 503 : 200;
}

static void healthz(const sb_route_req *rq)
{
    const char *text;
    int status = sb_routes_health(rq->draining, rq->store_down, &text);
    answer_text(rq, status, text);
}

static void upgrade_required(const sb_route_req *rq)
{
    answer_text(rq, 426, "WebSocket upgrade required\n");
}

static void demo_token(const sb_route_req *rq)
{
    char json[SB_DEMO_JSON_BYTES];
    int rc = sb_demo_token(&rq->cfg->demo, rq->http->path, rq->peer,
                           rq->now_ms / 1000, json, sizeof json);
    if (rc == -ENOENT)
        not_found(rq); /* as if there were no such path */
    else if (rc == -EINVAL)
        answer_text(rq, 400, "want user=NAME&role=customer|agent\n");
    else if (rc)
        answer_text(rq, 500, "cannot sign\n");
    else
        rq->answer(rq->ud, 200, "application/json", NULL, json, strlen(json));
}

/* The value of name in target's query ("" if absent) into out; false when
 * it is longer than cap - 1 or holds a byte an id of the desk
 * configuration would not (ids here are plain: letters, digits, ".-_"). */
static bool query_id(const char *target, const char *name, char *out,
                     size_t cap)
{
    out[0] = '\0';
    const char *q = strchr(target, '?');
    size_t nl = strlen(name);
    for (const char *p = q; p && *p; p = strchr(p + 1, '&')) {
        const char *k = p + 1;
        if (strncmp(k, name, nl) != 0 || k[nl] != '=') continue;
        const char *v = k + nl + 1;
        size_t n = strcspn(v, "&");
        if (n >= cap) return false;
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)v[i]) && !strchr(".-_", v[i]))
                return false;
        memcpy(out, v, n);
        out[n] = '\0';
    }
    return true;
}

/* The public look of a desk's chat widget: any page may read it (the
 * widget's loader runs on other sites), caches may keep it a minute. */
static void widget(const sb_route_req *rq)
{
    char id[SB_ID_BYTES_MAX + 1];
    char *json = NULL;
    if (!query_id(rq->http->path, "desk", id, sizeof id)) {
        answer_text(rq, 400, "want desk=ID\n");
        return;
    }
    int rc =
        rq->desk ? sb_desk_widget_json(rq->desk, id, &json) : SB_E_NOT_FOUND;
    if (rc == SB_E_NOT_FOUND)
        answer_text(rq, 404, "no such desk\n");
    else if (rc)
        answer_text(rq, 503, "out of memory\n");
    else
        rq->answer(rq->ud, 200, "application/json",
                   "Cache-Control: public, max-age=60\r\n"
                   "Access-Control-Allow-Origin: *\r\n",
                   json, strlen(json));
    free(json);
}

static void media(const sb_route_req *rq)
{
    rq->media(rq->ud);
}

static void static_file(const sb_route_req *rq)
{
    char full[1024], *body;
    size_t len;
    if (!rq->cfg->web_dir ||
        sb_static_path(rq->cfg->web_dir, rq->http->path, full, sizeof full)) {
        not_found(rq);
        return;
    }
    int rc = sb_static_read(full, &body, &len);
    if (rc == -ENOENT) {
        not_found(rq);
    } else if (rc) {
        answer_text(rq, 503, "read failed\n");
    } else {
        rq->answer(rq->ud, 200, sb_static_content_type(full), NULL, body, len);
        free(body);
    }
}

static void api(const sb_route_req *rq)
{
    if (rq->api)
        rq->api(rq->ud);
    else
        not_found(rq);
}

/* First match wins; a target whose path matches rows of other methods
 * only is answered 405. */
static const route ROUTES[] = {
    {true, "GET", "/ws", MATCH_EXACT, ws_upgrade},
    {false, "GET", "/healthz", MATCH_EXACT, healthz},
    {false, "GET", "/ws", MATCH_EXACT, upgrade_required},
    {false, "GET", "/demo/token", MATCH_QUERY, demo_token},
    {false, "GET", "/api/widget", MATCH_QUERY, widget},
    {false, "", "/api/", MATCH_PREFIX, api},
    {false, "POST", "/media", MATCH_QUERY, media},
    {false, "OPTIONS", "/media", MATCH_QUERY, media},
    {false, "GET", "/media/", MATCH_UNDER, media},
    {false, "OPTIONS", "/media/", MATCH_UNDER, media},
    {false, "GET", "", MATCH_ANY, static_file},
};

static bool path_matches(const route *rt, const char *target)
{
    switch (rt->match) {
    case MATCH_EXACT:
        return strcmp(target, rt->path) == 0;
    case MATCH_QUERY: {
        size_t n = strlen(rt->path);
        return strncmp(target, rt->path, n) == 0 &&
               (target[n] == '\0' || target[n] == '?');
    }
    case MATCH_PREFIX:
        return strncmp(target, rt->path, strlen(rt->path)) == 0;
    case MATCH_UNDER: {
        size_t n = strlen(rt->path);
        return strncmp(target, rt->path, n) == 0 && target[n] != '\0';
    }
    case MATCH_ANY:
        return true;
    }
    return false;
}

void sb_routes_serve(const sb_route_req *rq)
{
    const sb_http_req *r = rq->http;
    if (r->too_long) {
        answer_text(rq, 431, "header too large\n");
        return;
    }
    bool upgrade = sb_http_req_is_upgrade(r);
    const char *method = sb_http_req_method(r);
    bool other_method = false;
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        const route *rt = &ROUTES[i];
        if (rt->upgrade != upgrade || !path_matches(rt, r->path)) continue;
        if (!rt->method[0] || strcmp(rt->method, method) == 0) {
            rt->handle(rq);
            return;
        }
        other_method = true;
    }
    if (other_method)
        answer_text(rq, 405, "GET only\n");
    else
        not_found(rq);
}
