/* The HTTP route table, fed parsed requests: each route's answer, 404 for
 * a path no route takes, 405 for another method, 431 for an overlong
 * header, the WebSocket upgrade's checks and its permessage-deflate
 * (taken when offered and configured, the two headers of one list joined,
 * an unusable offer declined); the demo token's refusals and
 * claims; peer address keys and loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "sb_addr.h"
#include "sb_demo.h"
#include "sb_desk.h"
#include "sb_routes.h"
#include "sb_token.h"

#define SECRET "route-test-secret"
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

/* What the router did with one request. */
typedef struct result {
    int calls;
    int status; /* 101 for an upgrade */
    char type[64];
    char headers[512];
    char body[8192];
    sb_encoding enc;
    char proto[32];
    sb_wsdeflate_params deflate;
    char ext[128];
} result;

static void on_answer(void *ud, int status, const char *type,
                      const char *headers, const void *body, size_t n)
{
    result *r = ud;
    r->calls++;
    r->status = status;
    snprintf(r->type, sizeof r->type, "%s", type);
    snprintf(r->headers, sizeof r->headers, "%s", headers ? headers : "");
    assert_true(n < sizeof r->body);
    memcpy(r->body, body, n);
    r->body[n] = '\0';
}

/* The media service takes it: status 999 stands for that. */
static void on_media(void *ud)
{
    result *r = ud;
    r->calls++;
    r->status = 999;
}

static void on_upgrade(void *ud, sb_encoding enc, const char *proto,
                       const sb_wsdeflate_params *deflate, const char *ext)
{
    result *r = ud;
    r->calls++;
    r->status = 101;
    r->enc = enc;
    snprintf(r->proto, sizeof r->proto, "%s", proto);
    r->deflate = *deflate;
    snprintf(r->ext, sizeof r->ext, "%s", ext);
}

static struct sockaddr_in loopback4, remote4;

static sb_routes_config config(void)
{
    static const char *const origins[] = {"https://support.example.com"};
    return (sb_routes_config){.origins = origins,
                              .n_origins = 1,
                              .deflate = true,
                              .demo = {.on = true,
                                       .secret = (const uint8_t *)SECRET,
                                       .secret_len = strlen(SECRET),
                                       .token_iss = "sb-test"}};
}

/* The desks the next serve_from() answers with (NULL: none). */
static const sb_desk *desks;

/* Serves the request text (headers end added) and returns what was done. */
static result serve_from(const sb_routes_config *cfg,
                         const struct sockaddr *peer, bool draining,
                         const char *head)
{
    static sb_http_req req;
    char text[4096];
    snprintf(text, sizeof text, "%s\r\n", head);
    sb_http_req_init(&req);
    long used = sb_http_req_feed(&req, text, strlen(text));
    assert_true(used > 0);
    assert_true(req.complete);
    result res;
    memset(&res, 0, sizeof res);
    sb_route_req rq = {.cfg = cfg,
                       .http = &req,
                       .peer = peer,
                       .draining = draining,
                       .now_ms = 1700000000000,
                       .desk = desks,
                       .answer = on_answer,
                       .upgrade = on_upgrade,
                       .media = on_media,
                       .ud = &res};
    sb_routes_serve(&rq);
    assert_int_equal(res.calls, 1);
    return res;
}

static result serve(const char *head)
{
    sb_routes_config cfg = config();
    return serve_from(&cfg, (struct sockaddr *)&loopback4, false, head);
}

static void expect(const char *head, int status, const char *body)
{
    result r = serve(head);
    assert_int_equal(r.status, status);
    if (body) assert_string_equal(r.body, body);
}

/* Requests pipelined in one write: the first is the one answered (the
 * answer closes the connection), whatever follows it; the bytes after an
 * upgrade request are the peer's first WebSocket bytes. */
static void test_pipelined(void **state)
{
    (void)state;
    static const char first[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char *const after[] = {
        "POST /other HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "GET /nope HTTP/1.1\r\n\r\n", "garbage", "G"};
    for (size_t i = 0; i < sizeof after / sizeof *after; i++) {
        char text[256];
        snprintf(text, sizeof text, "%s%s", first, after[i]);
        static sb_http_req req;
        sb_http_req_init(&req);
        long used = sb_http_req_feed(&req, text, strlen(text));
        assert_int_equal(used, (long)strlen(first));
        assert_true(req.complete);
        assert_string_equal(req.path, "/healthz");
        assert_string_equal(sb_http_req_method(&req), "GET");
        result res;
        memset(&res, 0, sizeof res);
        sb_routes_config cfg = config();
        sb_route_req rq = {.cfg = &cfg,
                           .http = &req,
                           .peer = (struct sockaddr *)&loopback4,
                           .now_ms = 1700000000000,
                           .answer = on_answer,
                           .upgrade = on_upgrade,
                           .ud = &res};
        sb_routes_serve(&rq);
        assert_int_equal(res.status, 200);
        assert_string_equal(res.body, "ok\n");
    }
    /* An upgrade with WebSocket bytes behind it in the same read. */
    char text[512];
    int n = snprintf(text, sizeof text,
                     "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     KEY);
    memcpy(text + n, "\x82\x80wxyz", 6);
    static sb_http_req req;
    sb_http_req_init(&req);
    assert_int_equal(sb_http_req_feed(&req, text, (size_t)n + 6), n);
    assert_true(req.complete && sb_http_req_is_upgrade(&req));
}

static int setup(void **state)
{
    (void)state;
    loopback4.sin_family = AF_INET;
    loopback4.sin_addr.s_addr = htonl(0x7f000001);
    remote4.sin_family = AF_INET;
    remote4.sin_addr.s_addr = htonl(0xc0000201);
    return 0;
}

static void test_plain_routes(void **state)
{
    (void)state;
    expect("GET /healthz HTTP/1.1\r\n", 200, "ok\n");
    sb_routes_config cfg = config();
    result r = serve_from(&cfg, NULL, true, "GET /healthz HTTP/1.1\r\n");
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "draining\n");
    assert_string_equal(r.type, "text/plain");
    expect("GET /ws HTTP/1.1\r\n", 426, "WebSocket upgrade required\n");
    expect("GET /ws?x=1 HTTP/1.1\r\n", 404, "not found\n");
    expect("GET /healthz?x HTTP/1.1\r\n", 404, "not found\n");
    /* No --web: every other path is not found. */
    expect("GET / HTTP/1.1\r\n", 404, "not found\n");
    expect("GET /index.html HTTP/1.1\r\n", 404, "not found\n");
}

/* GET /api/widget: the desk's look from the configuration in force,
 * public and cacheable; unknown desks 404, odd ids 400, no desks 404. */
static void test_widget_route(void **state)
{
    (void)state;
    expect("GET /api/widget HTTP/1.1\r\n", 404, "no such desk\n");
    static const char CFG[] =
        "{\"desks\":[{\"id\":\"sup\",\"groups\":[\"g\"],\"widget\":{"
        "\"color\":\"#123\"}},{\"id\":\"two\",\"groups\":[\"h\"]}]}";
    sb_desk *d = NULL;
    char err[128];
    assert_int_equal(sb_desk_parse(CFG, sizeof CFG - 1, &d, err, sizeof err),
                     0);
    desks = d;
    result r = serve("GET /api/widget HTTP/1.1\r\n");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.type, "application/json");
    assert_string_equal(r.headers, "Cache-Control: public, max-age=60\r\n"
                                   "Access-Control-Allow-Origin: *\r\n");
    assert_non_null(strstr(r.body, "\"desk\":\"sup\""));
    assert_non_null(strstr(r.body, "\"color\":\"#123\""));
    r = serve("GET /api/widget?x=1&desk=two HTTP/1.1\r\n");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"desk\":\"two\""));
    expect("GET /api/widget?desk=three HTTP/1.1\r\n", 404, "no such desk\n");
    expect("GET /api/widget?desk=%2e%2e HTTP/1.1\r\n", 400, "want desk=ID\n");
    expect("GET /api/widget?desk=<x> HTTP/1.1\r\n", 400, "want desk=ID\n");
    /* Other methods are the REST API's (none here). */
    expect("POST /api/widget HTTP/1.1\r\n", 404, "not found\n");
    expect("GET /api/widgets HTTP/1.1\r\n", 404, "not found\n");
    desks = NULL;
    sb_desk_free(d);
}

static void test_methods_and_limits(void **state)
{
    (void)state;
    expect("POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n", 405,
           "GET only\n");
    expect("HEAD / HTTP/1.1\r\n", 405, "GET only\n");
    expect("DELETE /nothing/here HTTP/1.1\r\n", 405, "GET only\n");
    char head[2600];
    snprintf(head, sizeof head, "GET /%02100d HTTP/1.1\r\n", 0);
    expect(head, 431, "header too large\n");
    snprintf(head, sizeof head,
             "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: "
             "Upgrade\r\nOrigin: https://%0260d\r\n",
             0);
    expect(head, 431, "header too large\n");
}

/* Uploads and their bytes go to the media service, for its methods. */
static void test_media_routes(void **state)
{
    (void)state;
    expect("POST /media?conv=1 HTTP/1.1\r\nContent-Length: 3\r\n", 999, NULL);
    expect("POST /media HTTP/1.1\r\nContent-Length: 3\r\n", 999, NULL);
    expect("OPTIONS /media HTTP/1.1\r\n", 999, NULL);
    expect("GET /media/0123 HTTP/1.1\r\n", 999, NULL);
    expect("OPTIONS /media/0123 HTTP/1.1\r\n", 999, NULL);
    expect("GET /media/ HTTP/1.1\r\n", 404, "not found\n");
    expect("GET /media HTTP/1.1\r\n", 404, "not found\n");
    expect("GET /mediax HTTP/1.1\r\n", 404, "not found\n");
    expect("DELETE /media/0123 HTTP/1.1\r\n", 405, "GET only\n");
}

/* Parsing for the media service: the body's start, its length, the
 * bearer token, Expect, query parameters. */
static void test_http_fields(void **state)
{
    (void)state;
    static sb_http_req req;
    const char *text =
        "POST /media?conv=12&name=caf%C3%A9+menu.pdf HTTP/1.1\r\n"
        "Authorization: Bearer abc.def.ghi\r\n"
        "Expect: 100-continue\r\n"
        "Content-Length: 4\r\n\r\nBODY";
    size_t n = strlen(text);
    /* Fed whole, or a byte at a time: the body starts at the same byte. */
    for (int split = 0; split < 2; split++) {
        sb_http_req_init(&req);
        size_t at = 0;
        while (!req.complete) {
            size_t k = split ? 1 : n - at;
            long used = sb_http_req_feed(&req, text + at, k);
            assert_true(used >= 0);
            at += (size_t)used;
            if (!req.complete) assert_int_equal((size_t)used, k);
        }
        assert_string_equal(text + at, "BODY");
    }
    assert_string_equal(sb_http_req_method(&req), "POST");
    assert_int_equal(sb_http_req_content_length(&req), 4);
    assert_false(sb_http_req_chunked(&req));
    assert_string_equal(sb_http_req_bearer(&req), "abc.def.ghi");
    assert_true(sb_http_req_expects_continue(&req));
    char v[64];
    assert_int_equal(sb_http_query(req.path, "conv", v, sizeof v), 2);
    assert_string_equal(v, "12");
    assert_int_equal(sb_http_query(req.path, "name", v, sizeof v), 14);
    assert_string_equal(v, "caf\xc3\xa9 menu.pdf");
    assert_int_equal(sb_http_query(req.path, "nam", v, sizeof v), -ENOENT);
    assert_int_equal(sb_http_query(req.path, "name", v, 5), -ENOSPC);
    assert_int_equal(sb_http_query("/x?a=%4", "a", v, sizeof v), -EINVAL);
    assert_int_equal(sb_http_query("/x?a=%zz", "a", v, sizeof v), -EINVAL);
    assert_int_equal(sb_http_query("/x?a=%00", "a", v, sizeof v), -EINVAL);
    assert_int_equal(sb_http_query("/x?b=1&a=", "a", v, sizeof v), 0);
    assert_int_equal(sb_http_query("/x", "a", v, sizeof v), -ENOENT);

    text = "POST /media HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
           "Authorization: Basic eA==\r\n\r\n";
    sb_http_req_init(&req);
    assert_true(sb_http_req_feed(&req, text, strlen(text)) > 0);
    assert_true(req.complete);
    assert_true(sb_http_req_chunked(&req));
    assert_int_equal(sb_http_req_content_length(&req), -1);
    assert_null(sb_http_req_bearer(&req));
    assert_false(sb_http_req_expects_continue(&req));
    text = "GET /media/x HTTP/1.1\r\n\r\n";
    sb_http_req_init(&req);
    assert_true(sb_http_req_feed(&req, text, strlen(text)) > 0);
    assert_int_equal(sb_http_req_content_length(&req), -1);
}

static void on_api(void *ud)
{
    result *r = ud;
    r->calls++;
    r->status = 1; /* taken by the REST API */
}

/* Every method under /api/ goes to the REST API with its headers and body
 * read; without one it is not found. Bodies are bounded. */
static void test_api_routes(void **state)
{
    (void)state;
    static const char TEXT[] =
        "PUT /api/v1/desk HTTP/1.1\r\nAuthorization: Bearer abc.def\r\n"
        "Content-Type: application/json\r\nContent-Length: 8\r\n\r\n"
        "{\"a\": 1}";
    static sb_http_req req;
    sb_http_req_init(&req);
    /* In two pieces: the body arrives after the headers. */
    long used = sb_http_req_feed(&req, TEXT, sizeof TEXT - 6);
    assert_true(used > 0);
    assert_false(req.complete);
    used = sb_http_req_feed(&req, TEXT + sizeof TEXT - 6, 5);
    assert_true(used > 0);
    assert_true(req.complete);
    assert_string_equal(req.authorization, "Bearer abc.def");
    assert_string_equal(req.content_type, "application/json");
    assert_int_equal(req.body_len, 8);
    assert_string_equal(req.body, "{\"a\": 1}");
    assert_string_equal(sb_http_req_method(&req), "PUT");
    sb_routes_config cfg = config();
    result res;
    memset(&res, 0, sizeof res);
    sb_route_req rq = {.cfg = &cfg,
                       .http = &req,
                       .answer = on_answer,
                       .upgrade = on_upgrade,
                       .api = on_api,
                       .ud = &res};
    sb_routes_serve(&rq);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.status, 1);
    memset(&res, 0, sizeof res);
    rq.api = NULL;
    sb_routes_serve(&rq);
    assert_int_equal(res.status, 404);
    sb_http_req_clear(&req);

    /* A body announced over the limit is not read: complete, flagged. */
    char head[256];
    snprintf(head, sizeof head,
             "POST /api/v1/x HTTP/1.1\r\nContent-Length: %u\r\n\r\nxx",
             SB_HTTP_BODY_BYTES_MAX + 1);
    sb_http_req_init(&req);
    assert_true(sb_http_req_feed(&req, head, strlen(head)) > 0);
    assert_true(req.complete && req.body_too_large);
    assert_null(req.body);
    sb_http_req_clear(&req);
    /* Sent in chunks past the limit: the same. */
    sb_http_req_init(&req);
    snprintf(head, sizeof head,
             "POST /api/v1/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
             "\r\n");
    assert_true(sb_http_req_feed(&req, head, strlen(head)) > 0);
    static char chunk[70000];
    int n = snprintf(chunk, sizeof chunk, "%x\r\n", 65536);
    memset(chunk + n, 'a', 65536);
    memcpy(chunk + n + 65536, "\r\n", 2);
    size_t len = (size_t)n + 65538;
    for (int i = 0; i < 20 && !req.complete; i++)
        sb_http_req_feed(&req, chunk, len);
    assert_true(req.complete && req.body_too_large);
    assert_null(req.body);
    sb_http_req_clear(&req);
}

static const char *upgrade_head(const char *path, const char *extra)
{
    static char head[3072];
    snprintf(head, sizeof head,
             "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
             "Sec-WebSocket-Version: 13\r\n%s",
             path, extra);
    return head;
}

static void test_upgrade(void **state)
{
    (void)state;
    result r = serve(upgrade_head("/ws", ""));
    assert_int_equal(r.status, 101);
    assert_int_equal(r.enc, SB_ENC_PROTO);
    assert_string_equal(r.proto, "");
    r = serve(upgrade_head("/ws",
                           "Sec-WebSocket-Protocol: x, " SB_SUBPROTO_JSON
                           "\r\nOrigin: https://SUPPORT.example.com\r\n"));
    assert_int_equal(r.status, 101);
    assert_int_equal(r.enc, SB_ENC_JSON);
    assert_string_equal(r.proto, SB_SUBPROTO_JSON);
    expect(upgrade_head("/other", ""), 404, "not found\n");
    expect(upgrade_head("/ws?x", ""), 404, "not found\n");
    expect(upgrade_head("/healthz", ""), 404, "not found\n");
    expect(upgrade_head("/ws", "Origin: https://evil.example\r\n"), 403,
           "origin not allowed\n");
    expect(upgrade_head("/ws", "Sec-WebSocket-Protocol: chat\r\n"), 400,
           "bad WebSocket handshake\n");
    expect("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n",
           400, "bad WebSocket handshake\n");
    expect("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 8\r\n",
           400, "bad WebSocket handshake\n");
    /* Any origin when none is configured. */
    sb_routes_config cfg = config();
    cfg.n_origins = 0;
    r = serve_from(&cfg, NULL, false,
                   upgrade_head("/ws", "Origin: https://evil.example\r\n"));
    assert_int_equal(r.status, 101);
}

static void test_upgrade_deflate(void **state)
{
    (void)state;
    static const char ANSWER[] = "permessage-deflate; "
                                 "server_no_context_takeover; "
                                 "client_no_context_takeover";
    /* Not offered: plain. */
    result r = serve(upgrade_head("/ws", ""));
    assert_false(r.deflate.on);
    assert_string_equal(r.ext, "");
    /* A browser's offer. */
    r = serve(upgrade_head("/ws", "Sec-WebSocket-Extensions: "
                                  "permessage-deflate; "
                                  "client_max_window_bits\r\n"));
    assert_int_equal(r.status, 101);
    assert_true(r.deflate.on);
    assert_int_equal(r.deflate.window_bits, 15);
    assert_string_equal(r.ext, ANSWER);
    /* Two header lines form one list: the first offer unusable. */
    r = serve(upgrade_head("/ws",
                           "Sec-WebSocket-Extensions: permessage-deflate; "
                           "server_max_window_bits=8\r\n"
                           "Sec-WebSocket-Extensions: permessage-deflate; "
                           "server_max_window_bits=11\r\n"));
    assert_true(r.deflate.on);
    assert_int_equal(r.deflate.window_bits, 11);
    /* Only unusable offers: the upgrade goes on without the extension. */
    r = serve(upgrade_head("/ws", "Sec-WebSocket-Extensions: foo, "
                                  "permessage-deflate; bar\r\n"));
    assert_int_equal(r.status, 101);
    assert_false(r.deflate.on);
    assert_string_equal(r.ext, "");
    /* Turned off in the configuration: never. */
    sb_routes_config cfg = config();
    cfg.deflate = false;
    r = serve_from(&cfg, (struct sockaddr *)&loopback4, false,
                   upgrade_head("/ws", "Sec-WebSocket-Extensions: "
                                       "permessage-deflate\r\n"));
    assert_int_equal(r.status, 101);
    assert_false(r.deflate.on);
    assert_string_equal(r.ext, "");
    /* An offer longer than the field: the request is refused (431). */
    char head[2048], big[700];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(head, sizeof head, "Sec-WebSocket-Extensions: %s\r\n", big);
    expect(upgrade_head("/ws", head), 431, "header too large\n");
}

static void test_demo_token_route(void **state)
{
    (void)state;
    result r = serve("GET /demo/token?user=ann&role=agent&locale=zh-CN "
                     "HTTP/1.1\r\n");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.type, "application/json");
    const char *prefix = "{\"token\":\"";
    assert_memory_equal(r.body, prefix, strlen(prefix));
    char *tok = r.body + strlen(prefix);
    *strchr(tok, '"') = '\0';
    sb_claims cl;
    sb_token_check chk = {.now_s = 1700000000, .iss = "sb-test"};
    assert_int_equal(sb_token_verify_ex((const uint8_t *)SECRET, strlen(SECRET),
                                        tok, strlen(tok), &chk, &cl),
                     0);
    assert_string_equal(cl.sub, "ann");
    assert_int_equal(cl.role, sb_role_from_name("agent"));
    assert_string_equal(cl.locale, "zh-CN");
    assert_int_equal(cl.iat, 1700000000);
    assert_int_equal(cl.exp, 1700000000 + 12 * 3600);

    expect("GET /demo/token?role=customer HTTP/1.1\r\n", 400,
           "want user=NAME&role=customer|agent\n");
    expect("GET /demo/token?user=ann&role=admin HTTP/1.1\r\n", 400, NULL);
    expect("GET /demo/token?user=a%20b&role=agent HTTP/1.1\r\n", 400, NULL);
    expect("GET /demo/token HTTP/1.1\r\n", 400, NULL);
    expect("GET /demo/tokens?user=ann&role=agent HTTP/1.1\r\n", 404, NULL);
    /* Only for a loopback peer, only in demo mode: else no such path. */
    sb_routes_config cfg = config();
    const char *ok = "GET /demo/token?user=ann&role=customer HTTP/1.1\r\n";
    assert_int_equal(
        serve_from(&cfg, (struct sockaddr *)&remote4, false, ok).status, 404);
    assert_int_equal(serve_from(&cfg, NULL, false, ok).status, 404);
    cfg.demo.on = false;
    result off = serve_from(&cfg, (struct sockaddr *)&loopback4, false, ok);
    assert_int_equal(off.status, 404);
    assert_string_equal(off.body, "not found\n");
}

static void test_demo_banner(void **state)
{
    (void)state;
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    sb_demo_banner(f, "127.0.0.1", 8080, false, true, 1700000000);
    fclose(f);
    assert_non_null(strstr(text, "Token for alice (customer)"));
    assert_non_null(strstr(text, "Token for bob (agent)"));
    assert_null(strstr(text, "Token for root"));
    assert_non_null(strstr(text, "agent http://127.0.0.1:8080/agent?user=bob"));
    free(text);
    f = open_memstream(&text, &len);
    sb_demo_banner(f, "::1", 9, true, false, 1700000000);
    fclose(f);
    assert_non_null(strstr(text, "Token for root (admin)"));
    assert_non_null(strstr(text, "sbctl service open"));
    assert_null(strstr(text, "Pages:"));
    free(text);
}

static void test_addr(void **state)
{
    (void)state;
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    struct sockaddr *sa6 = (struct sockaddr *)&a6;
    assert_int_equal(sb_addr_key((struct sockaddr *)&remote4),
                     1ull << 32 | 0xc0000201);
    assert_true(sb_addr_is_loopback((struct sockaddr *)&loopback4));
    assert_false(sb_addr_is_loopback((struct sockaddr *)&remote4));
    assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.1", &a6.sin6_addr), 1);
    assert_int_equal(sb_addr_key(sa6), 1ull << 32 | 0xc0000201);
    assert_false(sb_addr_is_loopback(sa6));
    assert_int_equal(inet_pton(AF_INET6, "::ffff:127.1.2.3", &a6.sin6_addr), 1);
    assert_true(sb_addr_is_loopback(sa6));
    /* IPv6: the /64, whatever the host part. */
    assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:aaaa::1", &a6.sin6_addr),
                     1);
    uint64_t k = sb_addr_key(sa6);
    assert_int_equal(k, 0x20010db800010002ull);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:bbbb::9", &a6.sin6_addr),
                     1);
    assert_int_equal(sb_addr_key(sa6), k);
    assert_false(sb_addr_is_loopback(sa6));
    assert_int_equal(inet_pton(AF_INET6, "::1", &a6.sin6_addr), 1);
    assert_true(sb_addr_is_loopback(sa6));
    assert_int_equal(inet_pton(AF_INET6, "::2", &a6.sin6_addr), 1);
    assert_false(sb_addr_is_loopback(sa6));
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_int_equal(sb_addr_key((struct sockaddr *)&un), 0);
    assert_false(sb_addr_is_loopback((struct sockaddr *)&un));
    assert_int_equal(sb_addr_key(NULL), 0);
    assert_false(sb_addr_is_loopback(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_routes),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_methods_and_limits),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_upgrade_deflate),
        cmocka_unit_test(test_media_routes),
        cmocka_unit_test(test_http_fields),
        cmocka_unit_test(test_api_routes),
        cmocka_unit_test(test_demo_token_route),
        cmocka_unit_test(test_demo_banner),
        cmocka_unit_test(test_addr),
        cmocka_unit_test_setup(test_widget_route, setup),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
