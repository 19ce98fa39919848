/* The client's side of the WebSocket opening handshake: URL parsing (and
 * lists of URLs), the upgrade request, and the checks on the server's 101
 * answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sb_client_hs.h"
#include "sb_codec.h"

static void test_url(void **state)
{
    (void)state;
    sb_client_url u;
    assert_int_equal(sb_client_url_parse("ws://127.0.0.1:8080/ws", &u), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.path, "/ws");
    assert_int_equal(sb_client_url_parse("ws://example.com", &u), 0);
    assert_string_equal(u.host, "example.com");
    assert_int_equal(u.port, 80);
    assert_string_equal(u.path, "/ws");
    assert_int_equal(sb_client_url_parse("ws://[::1]:9/x/y", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9);
    assert_string_equal(u.path, "/x/y");
    assert_int_equal(sb_client_url_parse("WS://h:1", &u), 0);
    assert_false(u.tls);
    /* wss://: TLS, port 443 unless given. */
    assert_int_equal(sb_client_url_parse("wss://example.com", &u), 0);
    assert_true(u.tls);
    assert_string_equal(u.host, "example.com");
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "/ws");
    assert_int_equal(sb_client_url_parse("WSS://127.0.0.1:8443/x", &u), 0);
    assert_true(u.tls);
    assert_int_equal(u.port, 8443);
    const char *bad[] = {"http://h/ws", "ws://",        "ws://:80/ws",
                         "ws://h:0",    "ws://h:65536", "ws://h:12x",
                         "ws://h:/ws",  "ws://[::1",    "ws://h/a b",
                         NULL,          "wss://",       "https://h",
                         "wss//h"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sb_client_url_parse(bad[i], &u), -EINVAL);
    char longhost[400] = "ws://";
    memset(longhost + 5, 'a', 300);
    assert_int_equal(sb_client_url_parse(longhost, &u), -EINVAL);
}

static void test_url_list(void **state)
{
    (void)state;
    const char *u[4];
    char one[] = "ws://127.0.0.1:1/ws";
    assert_int_equal(sb_client_urls_split(one, u, 4), 1);
    assert_string_equal(u[0], "ws://127.0.0.1:1/ws");
    char three[] = "ws://a:1/ws,wss://b,ws://[::1]:3/x";
    assert_int_equal(sb_client_urls_split(three, u, 4), 3);
    assert_string_equal(u[0], "ws://a:1/ws");
    assert_string_equal(u[1], "wss://b");
    assert_string_equal(u[2], "ws://[::1]:3/x");
    char five[] = "ws://a,ws://b,ws://c,ws://d,ws://e";
    assert_int_equal(sb_client_urls_split(five, u, 4), -EINVAL);
    const char *bad[] = {"",
                         ",",
                         "ws://a,",
                         ",ws://a",
                         "ws://a,,ws://b",
                         "ws://a,http://b",
                         "ws://a, ws://b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char b[32];
        snprintf(b, sizeof b, "%s", bad[i]);
        assert_int_equal(sb_client_urls_split(b, u, 4), -EINVAL);
    }
}

static void test_request(void **state)
{
    (void)state;
    sb_client_url u;
    assert_int_equal(sb_client_url_parse("ws://localhost:8080/ws", &u), 0);
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_client_hs_request(
                         &u, "dGhlIHNhbXBsZSBub25jZQ==", SB_SUBPROTO_JSON, &b),
                     0);
    assert_int_equal(sb_buf_append(&b, "", 1), 0);
    const char *r = (const char *)b.data;
    assert_true(strncmp(r, "GET /ws HTTP/1.1\r\n", 18) == 0);
    assert_non_null(strstr(r, "\r\nHost: localhost:8080\r\n"));
    assert_non_null(strstr(r, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(r, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(r, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_non_null(
        strstr(r, "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    assert_non_null(
        strstr(r, "\r\nSec-WebSocket-Protocol: switchboard.v1.json\r\n"));
    assert_true(strcmp(r + strlen(r) - 4, "\r\n\r\n") == 0);
    sb_buf_free(&b);
}

static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";

static int check(const char *resp, int *status)
{
    return sb_client_hs_response((const uint8_t *)resp, strlen(resp), KEY,
                                 SB_SUBPROTO_PROTO, status);
}

static void test_response(void **state)
{
    (void)state;
    int status;
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: WebSocket\r\n"
                     "Connection: keep-alive, Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                     "Sec-WebSocket-Protocol: switchboard.v1.proto\r\n"
                     "\r\n";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s\x82\x01x", ok); /* a frame right after */
    int head = check(buf, &status);
    assert_int_equal(head, (int)strlen(ok));
    assert_int_equal(status, 101);
    /* Byte by byte: "need more" until the blank line. */
    for (size_t n = 0; n < strlen(ok); n++)
        assert_int_equal(sb_client_hs_response((const uint8_t *)ok, n, KEY,
                                               SB_SUBPROTO_PROTO, &status),
                         0);
    /* Wrong accept, wrong or missing subprotocol, not 101, no upgrade. */
    const char *bad[] = {
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: AAAAMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Protocol: switchboard.v1.proto\r\n\r\n",
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Protocol: switchboard.v1.json\r\n\r\n",
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Protocol: switchboard.v1.proto\r\n\r\n",
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: close\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Protocol: switchboard.v1.proto\r\n\r\n",
        "garbage garbage\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(check(bad[i], &status), -EPROTO);
    assert_int_equal(
        check("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", &status),
        -EPROTO);
    assert_int_equal(status, 403);
    /* A head that never ends is bounded. */
    static char huge[SB_CLIENT_HS_BYTES_MAX + 100];
    memset(huge, 'a', sizeof huge - 1);
    memcpy(huge, "HTTP/1.1 101 OK\r\nX: ", 20);
    assert_int_equal(check(huge, &status), -EMSGSIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_url_list),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
