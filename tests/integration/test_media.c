/* Integration: attachments against the real server, over real sockets,
 * in both encodings, on SQLite and (as integ_media_pg) on PostgreSQL.
 *
 *  1. A photo with a GPS position uploaded (POST /media), sent as an
 *     image message, delivered with its id, type, size and dimensions
 *     (the server's, not the sender's word), fetched by the other member
 *     with the token and with a signed link of MEDIA_URL: the bytes have
 *     no location (our check and exiftool's), the headers keep a browser
 *     from running them. A file is served as an attachment.
 *  2. Isolation: a non-member gets nothing by any path (the bearer URL,
 *     a member's link with another id, MEDIA_URL, SYNC, HISTORY, SEARCH),
 *     nor does anyone for a guessed id; an upload is its uploader's until
 *     a message carries it; recalled, the members lose it; another's
 *     upload cannot be sent, nor one into another conversation; a link
 *     expires.
 *  3. Bad uploads: no token, a bad or expired one, no or a bad
 *     conversation, not a member, chunked or no length, oversize, HTML,
 *     SVG named .png, a cut-short JPEG, a body that stops (the connection
 *     closes; or it stalls: 408), too many at once, too many an hour,
 *     Expect: 100-continue both ways, an early refusal read whole while
 *     the body is still being sent; none leaves a file behind, and the
 *     server serves on.
 *  4. On PostgreSQL: no blob in the data folder, and a second gateway on
 *     the same database serves an upload the first took.
 *  5. The C SDK (sbctl's): an attachment uploaded, then sent, once; its
 *     send waits in the outbox while the server is down and goes when it
 *     is back; a refused upload (HTML) makes the send FAILED and sends
 *     nothing; a file that cannot be read fails at once.
 *  6. The REST API: a non-member's export names neither the conversation
 *     nor the upload; the uploader's erasure removes its uploads (nobody
 *     fetches them after) and their bytes from the store.
 *  7. SQLite: `sbctl store backup` copies the uploads' files with the
 *     database; a server on the restored folder serves them.
 *  8. A full disk (root: a tmpfs of the test's own as the data folder):
 *     an upload that does not fit is answered 507 and leaves nothing;
 *     once there is room, uploads are taken again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <sys/time.h>

#include "itest.h"
#include "pgtest.h"
#include "photo.h"
#include "sb_medialink.h"

#define WAIT_MS 10000
#define BYTES_MAX 2000000
#define IDLE_MS 1500
#define LINK_S 3
#define PER_HOUR 12

static it_env E;
static harness_server B; /* a second gateway (PostgreSQL) */

static void meet_agents(void);

static int setup(void **state)
{
    (void)state;
    it_env_init(&E);
    static const char *const extra[] = {"--media-bytes-max",
                                        "2000000",
                                        "--media-idle-ms",
                                        "1500",
                                        "--media-link-s",
                                        "3",
                                        "--media-uploads-per-hour",
                                        "12",
                                        "--media-uploads-per-user",
                                        "2",
                                        "--sends-per-s",
                                        "0",
                                        NULL};
    assert_int_equal(it_server_start(&E, extra), 0);
    meet_agents();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (B.pid) {
        harness_kill9(&B);
        B.store[0] = '\0'; /* the database is E.srv's to drop */
        harness_cleanup(&B);
        memset(&B, 0, sizeof B);
    }
    it_env_free(&E);
    return 0;
}

/* ---- HTTP ---------------------------------------------------------------- */

typedef struct http_res {
    int status;
    char head[4096];
    uint8_t *body;
    size_t n;
    bool closed;
} http_res;

static void res_free(http_res *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Reads a whole response from fd (until the server closes). */
static void read_res(int fd, http_res *r, int timeout_ms)
{
    size_t len = 0, cap = 65536;
    uint8_t *buf = malloc(cap);
    int64_t deadline = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < deadline) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0) continue;
        if (len + 65536 > cap) buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + len, cap - len, 0);
        if (k <= 0) {
            r->closed = true;
            break;
        }
        len += (size_t)k;
    }
    r->status = -1;
    uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
    if (end && len >= 12 && memcmp(buf, "HTTP/1.1 ", 9) == 0) {
        r->status = atoi((char *)buf + 9);
        size_t hn = (size_t)(end - buf) + 4;
        if (hn >= sizeof r->head) hn = sizeof r->head - 1;
        memcpy(r->head, buf, hn);
        r->head[hn] = '\0';
        r->n = len - (size_t)(end + 4 - buf);
        r->body = malloc(r->n + 1);
        memcpy(r->body, end + 4, r->n);
        r->body[r->n] = '\0';
    }
    free(buf);
}

static int send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One request: head (its blank line added here), then body; the whole
 * answer. */
static int http_do(uint16_t port, const char *head, const void *body, size_t n,
                   http_res *r)
{
    memset(r, 0, sizeof *r);
    int fd = it_tcp_connect(port);
    if (fd < 0) return -1;
    char h[8192];
    snprintf(h, sizeof h, "%s\r\n", head);
    send_all(fd, h, strlen(h));
    if (n) send_all(fd, body, n); /* an early answer may cut it short */
    read_res(fd, r, WAIT_MS);
    close(fd);
    return r->status;
}

/* The value of header name in r's head ("" if none). */
static const char *hdr(const http_res *r, const char *name)
{
    static char v[1024];
    v[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *s = p + 3 + nl;
            while (*s == ' ')
                s++;
            size_t k = strcspn(s, "\r\n");
            if (k >= sizeof v) k = sizeof v - 1;
            memcpy(v, s, k);
            v[k] = '\0';
            break;
        }
    return v;
}

static int upload_on(uint16_t port, const char *token, uint64_t conv,
                     const char *name, const void *p, size_t n, http_res *r)
{
    char head[4096];
    snprintf(head, sizeof head,
             "POST /media?conv=%llu&name=%s HTTP/1.1\r\nHost: t\r\n"
             "Authorization: Bearer %s\r\nContent-Type: image/png\r\n"
             "Content-Length: %zu\r\n",
             (unsigned long long)conv, name, token, n);
    return http_do(port, head, p, n, r);
}

static int upload(const char *user, const char *role, uint64_t conv,
                  const char *name, const void *p, size_t n, http_res *r)
{
    return upload_on(E.srv.port, harness_token(user, role, 600), conv, name, p,
                     n, r);
}

/* The id of a 201's record, and its other fields checked as JSON. */
static void upload_id(const http_res *r, char id[SB_MEDIA_ID_LEN + 1])
{
    assert_int_equal(r->status, 201);
    json_error_t err;
    json_t *j = json_loadb((const char *)r->body, r->n, 0, &err);
    assert_non_null(j);
    const char *s = json_string_value(json_object_get(j, "id"));
    assert_non_null(s);
    assert_true(sb_media_id_valid(s));
    snprintf(id, SB_MEDIA_ID_LEN + 1, "%s", s);
    char loc[64];
    snprintf(loc, sizeof loc, "/media/%s", s);
    assert_string_equal(hdr(r, "Location"), loc);
    json_decref(j);
}

static json_int_t upload_int(const http_res *r, const char *key)
{
    json_t *j = json_loadb((const char *)r->body, r->n, 0, NULL);
    json_int_t v = json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

static int fetch_on(uint16_t port, const char *path, const char *token,
                    http_res *r)
{
    char head[4096];
    int k = snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: t\r\n", path);
    if (token)
        snprintf(head + k, sizeof head - (size_t)k,
                 "Authorization: Bearer %s\r\n", token);
    return http_do(port, head, NULL, 0, r);
}

static int fetch(const char *id, const char *user, const char *role,
                 http_res *r)
{
    char path[64];
    snprintf(path, sizeof path, "/media/%s", id);
    return fetch_on(E.srv.port, path,
                    user ? harness_token(user, role, 600) : NULL, r);
}

/* Nothing left in the upload folder (each refusal cleans up). */
static bool tmp_empty(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/media/tmp", E.data_dir);
    for (int i = 0; i < 100; i++) {
        DIR *d = opendir(dir);
        if (!d) return true;
        struct dirent *e;
        int n = 0;
        while ((e = readdir(d)))
            n += e->d_name[0] != '.';
        closedir(d);
        if (n == 0) return true;
        usleep(20000);
    }
    return false;
}

/* exiftool's list of GPS tags in p ("" when none); NULL without it. */
static char *exif_gps(const uint8_t *p, size_t n)
{
    if (system("command -v exiftool >/dev/null 2>&1") != 0) return NULL;
    char path[] = "/tmp/sbmedia-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "exiftool -s -s -s -gps:all %s 2>&1", path);
    FILE *f = popen(cmd, "r");
    static char out[4096];
    size_t k = fread(out, 1, sizeof out - 1, f);
    out[k] = '\0';
    pclose(f);
    unlink(path);
    return out;
}

/* ---- raw clients ----------------------------------------------------------
 */

static uint64_t welcome_media_max;

static void peer(it_raw *r, const char *user, const char *role, sb_encoding enc)
{
    assert_int_equal(it_raw_open(r, E.srv.port, enc, NULL), 0);
    Sbp__Hello h = SBP__HELLO__INIT;
    h.token = (char *)harness_token(user, role, 600);
    h.device_id = (char *)"d1";
    h.protocol = 1;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_HELLO;
    f.hello = &h;
    uint32_t rid = it_raw_send(r, &f);
    Sbp__Frame *w = it_raw_expect(r, SBP__FRAME__BODY_WELCOME, rid, WAIT_MS);
    assert_non_null(w);
    welcome_media_max = w->welcome->media_bytes_max;
    sb_frame_free(w);
}

/* A member is a user the server has met (OPEN refuses others): the
 * agents the tests open conversations with connect once, on a device of
 * their own. */
static void meet(uint16_t port, const char *user)
{
    it_raw r;
    assert_int_equal(it_raw_open(&r, port, SB_ENC_PROTO, NULL), 0);
    assert_int_equal(
        it_raw_hello(&r, harness_token(user, "agent", 600), "meet", WAIT_MS),
        0);
    it_raw_close(&r);
}

static void meet_agents(void)
{
    meet(E.srv.port, "bob");
    meet(E.srv.port, "cai");
}

static uint64_t open_conv(it_raw *r, const char *member)
{
    char *m[] = {(char *)member};
    Sbp__Open o = SBP__OPEN__INIT;
    o.members = m;
    o.n_members = 1;
    o.kind = SBP__CONV_KIND__CONV_DIRECT;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_OPEN;
    f.open = &o;
    uint32_t rid = it_raw_send(r, &f);
    Sbp__Frame *g = it_raw_expect(r, SBP__FRAME__BODY_OPEN_RESP, rid, WAIT_MS);
    assert_non_null(g);
    uint64_t id = g->open_resp->conv->conv_id;
    sb_frame_free(g);
    return id;
}

/* The answer (SEND_ACK or ERROR) to a request rid. */
static Sbp__Frame *answer(it_raw *r, uint32_t rid)
{
    int64_t deadline = harness_now_ms() + WAIT_MS;
    while (harness_now_ms() < deadline) {
        Sbp__Frame *g = it_raw_recv(r, 200);
        if (!g) continue;
        if (g->rid == rid) return g;
        sb_frame_free(g);
    }
    fail_msg("no answer to request %u", rid);
    return NULL;
}

/* A SEND naming upload id (and a size and URL of the sender's own, which
 * the server must not believe). */
static Sbp__Frame *send_media(it_raw *r, uint64_t conv, Sbp__MsgType type,
                              const char *id, uint8_t tag)
{
    uint8_t cmid[16];
    memset(cmid, tag, sizeof cmid);
    Sbp__Media md = SBP__MEDIA__INIT;
    md.id = (char *)id;
    md.url = (char *)"https://tracker.example/pixel.gif";
    md.size = 1;
    md.width = 9999;
    Sbp__Send s = SBP__SEND__INIT;
    s.client_msg_id.data = cmid;
    s.client_msg_id.len = 16;
    s.conv_id = conv;
    s.type = type;
    s.media = &md;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_SEND;
    f.send = &s;
    return answer(r, it_raw_send(r, &f));
}

static Sbp__Frame *media_url(it_raw *r, const char *const *ids, size_t n)
{
    Sbp__MediaUrl u = SBP__MEDIA_URL__INIT;
    u.ids = (char **)ids;
    u.n_ids = n;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_MEDIA_URL;
    f.media_url = &u;
    return answer(r, it_raw_send(r, &f));
}

/* The next PUSH of a message of conv (with media) that r gets. */
static Sbp__Message *next_media_push(it_raw *r, uint64_t conv,
                                     Sbp__Frame **keep)
{
    int64_t deadline = harness_now_ms() + WAIT_MS;
    while (harness_now_ms() < deadline) {
        Sbp__Frame *g = it_raw_recv(r, 200);
        if (!g) continue;
        if (g->body_case == SBP__FRAME__BODY_PUSH)
            for (size_t i = 0; i < g->push->n_messages; i++) {
                Sbp__Message *m = g->push->messages[i];
                if (m->conv_id == conv && m->media) {
                    *keep = g;
                    return m;
                }
            }
        sb_frame_free(g);
    }
    return NULL;
}

static uint32_t send_frame(it_raw *r, Sbp__Frame *f)
{
    return it_raw_send(r, f);
}

/* ---- 1 and 2: the way of a photo, and who may see it -------------------- */

static void photo_way(sb_encoding enc)
{
    it_raw alice, bob, eve, root;
    peer(&alice, "alice", "customer", enc);
    assert_int_equal(welcome_media_max, BYTES_MAX);
    peer(&bob, "bob", "agent", enc);
    peer(&eve, "eve", "customer", enc);
    peer(&root, "root", "admin", enc);
    uint64_t conv = open_conv(&alice, "bob");
    uint64_t other = open_conv(&alice, "cai");

    /* A photo taken somewhere, turned a quarter. */
    photo_opts po = {.w = 64,
                     .h = 48,
                     .orientation = 6,
                     .gps = true,
                     .xmp = true,
                     .trailer = true};
    uint8_t *photo;
    size_t photo_n;
    assert_int_equal(photo_jpeg(&po, &photo, &photo_n), 0);
    assert_true(photo_has_gps(photo, photo_n));
    http_res r;
    upload("alice", "customer", conv, "IMG_0001%20(1).jpg", photo, photo_n, &r);
    char id[SB_MEDIA_ID_LEN + 1];
    upload_id(&r, id);
    assert_int_equal(upload_int(&r, "width"), 48); /* as displayed */
    assert_int_equal(upload_int(&r, "height"), 64);
    assert_int_equal(upload_int(&r, "conv_id"), (json_int_t)conv);
    json_int_t size = upload_int(&r, "size");
    assert_true(size > 0 && size < (json_int_t)photo_n);
    res_free(&r);

    /* Before a message carries it: its uploader's only. */
    assert_int_equal(fetch(id, "alice", "customer", &r), 200);
    assert_false(photo_has_gps(r.body, r.n));
    assert_int_equal((json_int_t)r.n, size);
    char *gps = exif_gps(r.body, r.n);
    if (gps) assert_string_equal(gps, "");
    res_free(&r);
    assert_int_equal(fetch(id, "bob", "agent", &r), 404);
    res_free(&r);
    assert_int_equal(fetch(id, "root", "admin", &r), 404);
    res_free(&r);

    /* Sent as an image: every member's device gets what the server
     * stored, whatever the sender said. */
    Sbp__Frame *a = send_media(&alice, conv, SBP__MSG_TYPE__MSG_IMAGE, id, 1);
    assert_int_equal(a->body_case, SBP__FRAME__BODY_SEND_ACK);
    uint64_t seq = a->send_ack->seq;
    sb_frame_free(a);
    Sbp__Frame *keep;
    Sbp__Message *m = next_media_push(&bob, conv, &keep);
    assert_non_null(m);
    assert_int_equal(m->type, SBP__MSG_TYPE__MSG_IMAGE);
    assert_int_equal(m->seq, seq);
    assert_string_equal(m->media->id, id);
    char url[64];
    snprintf(url, sizeof url, "/media/%s", id);
    assert_string_equal(m->media->url, url);
    assert_string_equal(m->media->mime, "image/jpeg");
    assert_string_equal(m->media->name, "IMG_0001 (1).jpg");
    assert_int_equal(m->media->size, (uint64_t)size);
    assert_int_equal(m->media->width, 48);
    assert_int_equal(m->media->height, 64);
    sb_frame_free(keep);

    /* The member fetches it: with the token, and by a signed link. */
    assert_int_equal(fetch(id, "bob", "agent", &r), 200);
    assert_string_equal(hdr(&r, "Content-Type"), "image/jpeg");
    assert_string_equal(hdr(&r, "X-Content-Type-Options"), "nosniff");
    assert_non_null(strstr(hdr(&r, "Content-Disposition"), "inline"));
    assert_non_null(strstr(hdr(&r, "Content-Security-Policy"), "sandbox"));
    assert_false(photo_has_gps(r.body, r.n));
    uint8_t *clean = r.body;
    size_t clean_n = r.n;
    r.body = NULL;
    res_free(&r);
    const char *ids[] = {id};
    Sbp__Frame *l = media_url(&bob, ids, 1);
    assert_int_equal(l->body_case, SBP__FRAME__BODY_MEDIA_URL_RESP);
    assert_int_equal(l->media_url_resp->n_links, 1);
    char link[SB_MEDIA_LINK_BYTES_MAX];
    snprintf(link, sizeof link, "%s", l->media_url_resp->links[0]->url);
    sb_frame_free(l);
    assert_int_equal(fetch_on(E.srv.port, link, NULL, &r), 200);
    assert_int_equal(r.n, clean_n);
    assert_memory_equal(r.body, clean, clean_n);
    res_free(&r);
    /* The plain URL without a token is nothing. */
    assert_int_equal(fetch(id, NULL, NULL, &r), 401);
    assert_string_equal(hdr(&r, "WWW-Authenticate"), "Bearer");
    res_free(&r);
    /* The link's token for another id, or changed: refused. */
    char other_link[SB_MEDIA_LINK_BYTES_MAX];
    snprintf(other_link, sizeof other_link, "/media/%032x%s", 7,
             strstr(link, "?t="));
    assert_int_equal(fetch_on(E.srv.port, other_link, NULL, &r), 401);
    res_free(&r);
    snprintf(other_link, sizeof other_link, "%s", link);
    other_link[strlen(other_link) - 3] ^= 1;
    assert_int_equal(fetch_on(E.srv.port, other_link, NULL, &r), 401);
    res_free(&r);
    /* An admin sees what a message carries. */
    assert_int_equal(fetch(id, "root", "admin", &r), 200);
    res_free(&r);

    /* 2. Isolation. A non-member: by the URL with its own token, by
     * MEDIA_URL, by SYNC, HISTORY and SEARCH. */
    assert_int_equal(fetch(id, "eve", "customer", &r), 404);
    res_free(&r);
    l = media_url(&eve, ids, 1);
    assert_int_equal(l->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(l->error->code, SBP__ERROR_CODE__ERR_NOT_FOUND);
    sb_frame_free(l);
    Sbp__Sync sy = SBP__SYNC__INIT;
    Sbp__Frame fs = SBP__FRAME__INIT;
    fs.body_case = SBP__FRAME__BODY_SYNC;
    fs.sync = &sy;
    l = answer(&eve, send_frame(&eve, &fs));
    assert_int_equal(l->body_case, SBP__FRAME__BODY_SYNC_RESP);
    for (size_t i = 0; i < l->sync_resp->n_messages; i++)
        assert_int_not_equal(l->sync_resp->messages[i]->conv_id, conv);
    sb_frame_free(l);
    Sbp__History hi = SBP__HISTORY__INIT;
    hi.conv_id = conv;
    Sbp__Frame fh = SBP__FRAME__INIT;
    fh.body_case = SBP__FRAME__BODY_HISTORY;
    fh.history = &hi;
    l = answer(&eve, send_frame(&eve, &fh));
    assert_int_equal(l->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(l->error->code, SBP__ERROR_CODE__ERR_FORBIDDEN);
    sb_frame_free(l);
    Sbp__Search se = SBP__SEARCH__INIT;
    se.query = (char *)"IMG_0001";
    Sbp__Frame fse = SBP__FRAME__INIT;
    fse.body_case = SBP__FRAME__BODY_SEARCH;
    fse.search = &se;
    l = answer(&eve, send_frame(&eve, &fse));
    if (l->body_case == SBP__FRAME__BODY_SEARCH_RESP)
        assert_int_equal(l->search_resp->n_messages, 0);
    sb_frame_free(l);
    se.conv_id = conv;
    l = answer(&eve, send_frame(&eve, &fse));
    assert_true(l->body_case == SBP__FRAME__BODY_ERROR ||
                l->search_resp->n_messages == 0);
    sb_frame_free(l);
    /* A guessed id: nothing, for anyone. */
    char guess[SB_MEDIA_ID_LEN + 1];
    snprintf(guess, sizeof guess, "%s", id);
    guess[0] = guess[0] == 'a' ? 'b' : 'a';
    assert_int_equal(fetch(guess, "root", "admin", &r), 404);
    res_free(&r);
    assert_int_equal(fetch("../../switchboard.db", "root", "admin", &r), 404);
    res_free(&r);
    /* Another's upload cannot be sent, nor one into another
     * conversation. */
    a = send_media(&bob, conv, SBP__MSG_TYPE__MSG_IMAGE, id, 2);
    assert_int_equal(a->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(a->error->code, SBP__ERROR_CODE__ERR_NOT_FOUND);
    sb_frame_free(a);
    a = send_media(&alice, other, SBP__MSG_TYPE__MSG_IMAGE, id, 3);
    assert_int_equal(a->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(a->error->code, SBP__ERROR_CODE__ERR_NOT_FOUND);
    sb_frame_free(a);

    /* A text file: a file message, served as an attachment; not an
     * image. */
    static const char text[] = "order 1234: the kettle leaks\n";
    upload("alice", "customer", conv, "report.txt", text, sizeof text - 1, &r);
    char tid[SB_MEDIA_ID_LEN + 1];
    upload_id(&r, tid);
    res_free(&r);
    a = send_media(&alice, conv, SBP__MSG_TYPE__MSG_IMAGE, tid, 4);
    assert_int_equal(a->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(a->error->code, SBP__ERROR_CODE__ERR_INVALID);
    sb_frame_free(a);
    a = send_media(&alice, conv, SBP__MSG_TYPE__MSG_FILE, tid, 5);
    assert_int_equal(a->body_case, SBP__FRAME__BODY_SEND_ACK);
    sb_frame_free(a);
    assert_int_equal(fetch(tid, "bob", "agent", &r), 200);
    assert_string_equal(hdr(&r, "Content-Type"), "text/plain");
    assert_non_null(strstr(hdr(&r, "Content-Disposition"), "attachment"));
    assert_non_null(strstr(hdr(&r, "Content-Disposition"), "report.txt"));
    assert_int_equal(r.n, sizeof text - 1);
    res_free(&r);

    /* Recalled: the members lose it, the uploader keeps it. */
    Sbp__Recall rc = SBP__RECALL__INIT;
    rc.conv_id = conv;
    rc.seq = seq;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.body_case = SBP__FRAME__BODY_RECALL;
    fr.recall = &rc;
    l = answer(&alice, send_frame(&alice, &fr));
    assert_int_equal(l->body_case, SBP__FRAME__BODY_OK);
    sb_frame_free(l);
    assert_int_equal(fetch(id, "bob", "agent", &r), 404);
    res_free(&r);
    assert_int_equal(fetch_on(E.srv.port, link, NULL, &r), 404);
    res_free(&r);
    assert_int_equal(fetch(id, "alice", "customer", &r), 200);
    res_free(&r);

    /* The link expires. */
    l = media_url(&bob, (const char *const[]){tid}, 1);
    snprintf(link, sizeof link, "%s", l->media_url_resp->links[0]->url);
    sb_frame_free(l);
    assert_int_equal(fetch_on(E.srv.port, link, NULL, &r), 200);
    res_free(&r);
    usleep((LINK_S + 1) * 1000000);
    assert_int_equal(fetch_on(E.srv.port, link, NULL, &r), 401);
    assert_non_null(strstr((char *)r.body, "expired"));
    res_free(&r);

    free(clean);
    free(photo);
    it_raw_close(&alice);
    it_raw_close(&bob);
    it_raw_close(&eve);
    it_raw_close(&root);
    assert_true(tmp_empty());
}

static void test_photo_proto(void **state)
{
    (void)state;
    photo_way(SB_ENC_PROTO);
}

static void test_photo_json(void **state)
{
    (void)state;
    photo_way(SB_ENC_JSON);
}

/* ---- 3. bad uploads -------------------------------------------------------
 */

/* Opens a connection and sends an upload's head and the first k bytes of
 * a body of n. */
static int upload_begin(const char *user, uint64_t conv, size_t n,
                        const void *p, size_t k, const char *extra)
{
    int fd = it_tcp_connect(E.srv.port);
    assert_true(fd >= 0);
    char head[4096];
    snprintf(head, sizeof head,
             "POST /media?conv=%llu&name=x.bin HTTP/1.1\r\n"
             "Authorization: Bearer %s\r\nContent-Length: %zu\r\n%s\r\n",
             (unsigned long long)conv, harness_token(user, "customer", 600), n,
             extra ? extra : "");
    assert_int_equal(send_all(fd, head, strlen(head)), 0);
    if (k) assert_int_equal(send_all(fd, p, k), 0);
    return fd;
}

static void test_bad_uploads(void **state)
{
    (void)state;
    it_raw alice;
    peer(&alice, "ann", "customer", SB_ENC_PROTO);
    uint64_t conv = open_conv(&alice, "bob");
    static const char text[] = "plain words\n";
    http_res r;
    char head[4096];

    /* Who: no token, a bad one, an expired one. */
    snprintf(head, sizeof head,
             "POST /media?conv=%llu HTTP/1.1\r\nContent-Length: 12\r\n",
             (unsigned long long)conv);
    assert_int_equal(http_do(E.srv.port, head, text, 12, &r), 401);
    res_free(&r);
    assert_int_equal(upload_on(E.srv.port, "a.b.c", conv, "x", text, 12, &r),
                     401);
    res_free(&r);
    assert_int_equal(upload_on(E.srv.port,
                               harness_token("ann", "customer", -3600), conv,
                               "x", text, 12, &r),
                     401);
    assert_non_null(strstr((char *)r.body, "expired"));
    res_free(&r);
    /* Where: no conversation, a bad one, one that does not exist, one
     * that is not theirs. */
    snprintf(head, sizeof head,
             "POST /media HTTP/1.1\r\nContent-Length: 12\r\n"
             "Authorization: Bearer %s\r\n",
             harness_token("ann", "customer", 600));
    assert_int_equal(http_do(E.srv.port, head, text, 12, &r), 400);
    res_free(&r);
    assert_int_equal(upload("ann", "customer", 0, "x", text, 12, &r), 400);
    res_free(&r);
    assert_int_equal(upload("ann", "customer", 987654, "x", text, 12, &r), 404);
    res_free(&r);
    assert_int_equal(upload("mallory", "customer", conv, "x", text, 12, &r),
                     403);
    res_free(&r);
    /* A name that is not UTF-8. */
    assert_int_equal(upload("ann", "customer", conv, "%FF%FE", text, 12, &r),
                     400);
    res_free(&r);
    /* How: chunked, no length, too large (refused before the body). */
    snprintf(head, sizeof head,
             "POST /media?conv=%llu HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
             "Authorization: Bearer %s\r\n",
             (unsigned long long)conv, harness_token("ann", "customer", 600));
    assert_int_equal(
        http_do(E.srv.port, head, "c\r\nplain words\n\r\n0\r\n\r\n", 22, &r),
        411);
    res_free(&r);
    snprintf(head, sizeof head,
             "POST /media?conv=%llu HTTP/1.1\r\nAuthorization: Bearer %s\r\n",
             (unsigned long long)conv, harness_token("ann", "customer", 600));
    assert_int_equal(http_do(E.srv.port, head, NULL, 0, &r), 411);
    res_free(&r);
    snprintf(head, sizeof head,
             "POST /media?conv=%llu HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
             "Content-Length: %d\r\n",
             (unsigned long long)conv, harness_token("ann", "customer", 600),
             BYTES_MAX + 1);
    int64_t t0 = harness_now_ms();
    assert_int_equal(http_do(E.srv.port, head, NULL, 0, &r), 413);
    assert_true(harness_now_ms() - t0 < 3000);
    res_free(&r);
    /* What: HTML, SVG named .png, a cut-short JPEG. */
    static const char html[] = "<!DOCTYPE html><html><body><script>alert(1)"
                               "</script></body></html>\n";
    assert_int_equal(
        upload("ann", "customer", conv, "cat.png", html, sizeof html - 1, &r),
        415);
    assert_non_null(strstr((char *)r.body, "text/html"));
    res_free(&r);
    static const char svg[] =
        "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
        "width=\"10\" height=\"10\"><script>alert(1)</script></svg>\n";
    assert_int_equal(
        upload("ann", "customer", conv, "cat.png", svg, sizeof svg - 1, &r),
        415);
    assert_non_null(strstr((char *)r.body, "svg"));
    res_free(&r);
    photo_opts po = {.w = 32, .h = 32, .gps = true};
    uint8_t *photo;
    size_t photo_n;
    assert_int_equal(photo_jpeg(&po, &photo, &photo_n), 0);
    assert_int_equal(
        upload("ann", "customer", conv, "half.jpg", photo, photo_n / 2, &r),
        415);
    assert_non_null(strstr((char *)r.body, "not a whole"));
    res_free(&r);
    assert_true(tmp_empty());

    /* A body that stops: the connection closes halfway; or it stalls
     * (408 after --media-idle-ms). Neither leaves anything. */
    int fd = upload_begin("ann", conv, 5000, text, 12, NULL);
    usleep(200000);
    close(fd);
    fd = upload_begin("ann", conv, 5000, text, 12, NULL);
    t0 = harness_now_ms();
    read_res(fd, &r, WAIT_MS);
    close(fd);
    assert_int_equal(r.status, 408);
    assert_true(harness_now_ms() - t0 >= IDLE_MS - 100);
    res_free(&r);
    assert_true(tmp_empty());

    /* Too many at once: two of one user's in progress, a third waits
     * for nothing. */
    int f1 = upload_begin("ann", conv, 3000, text, 12, NULL);
    int f2 = upload_begin("ann", conv, 3000, text, 12, NULL);
    usleep(200000);
    assert_int_equal(upload("ann", "customer", conv, "x", text, 12, &r), 429);
    res_free(&r);
    close(f1);
    close(f2);
    usleep(200000);
    assert_int_equal(upload("ann", "customer", conv, "x", text, 12, &r), 201);
    res_free(&r);

    /* Expect: 100-continue: the body goes only after the go-ahead, and
     * not at all to one who may not upload there. */
    fd = upload_begin("ann", conv, 12, NULL, 0, "Expect: 100-continue\r\n");
    char buf[256];
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pf, 1, WAIT_MS), 1);
    ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(k > 0);
    buf[k] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 100 Continue\r\n\r\n"));
    send_all(fd, text, 12);
    read_res(fd, &r, WAIT_MS);
    assert_int_equal(r.status, 201);
    res_free(&r);
    close(fd);
    fd = upload_begin("mallory", conv, 12, NULL, 0, "Expect: 100-continue\r\n");
    read_res(fd, &r, WAIT_MS);
    assert_int_equal(r.status, 403);
    res_free(&r);
    close(fd);

    /* Refused early while a large body is still on its way: the client
     * reads the answer whole (the server drops the rest a moment). */
    size_t big_n = 1500000;
    uint8_t *big = calloc(1, big_n);
    assert_int_equal(upload("mallory", "customer", conv, "x", big, big_n, &r),
                     403);
    assert_non_null(strstr((char *)r.body, "not a member"));
    res_free(&r);
    free(big);

    /* Too many an hour: ann has used some; ivy uses them all. */
    int ok = 0, limited = 0;
    char retry[32] = "";
    it_raw ivy;
    peer(&ivy, "ivy", "customer", SB_ENC_JSON);
    uint64_t ic = open_conv(&ivy, "bob");
    for (int i = 0; i < PER_HOUR + 2; i++) {
        int st = upload("ivy", "customer", ic, "x", text, 12, &r);
        if (st == 201) ok++;
        if (st == 429) {
            limited++;
            snprintf(retry, sizeof retry, "%s", hdr(&r, "Retry-After"));
        }
        res_free(&r);
    }
    assert_int_equal(ok, PER_HOUR);
    assert_int_equal(limited, 2);
    assert_true(atoi(retry) > 0);
    it_raw_close(&ivy);

    assert_true(tmp_empty());
    /* The server serves on. */
    snprintf(head, sizeof head, "GET /healthz HTTP/1.1\r\n");
    assert_int_equal(http_do(E.srv.port, head, NULL, 0, &r), 200);
    res_free(&r);
    free(photo);
    it_raw_close(&alice);
}

/* ---- 3b. heads in one read or in pieces -----------------------------------
 */

/* An upload's head that comes whole in one read is parsed in the server's
 * scratch; one in pieces is kept on the connection until whole; either
 * way the body, whether it came with the head or after it, is the media
 * service's. */
static void test_head_pieces(void **state)
{
    (void)state;
    it_raw alice;
    peer(&alice, "ann", "customer", SB_ENC_PROTO);
    uint64_t conv = open_conv(&alice, "bob");
    static const char text[] = "plain words\n";
    for (int way = 0; way < 3; way++) {
        int fd = it_tcp_connect(E.srv.port);
        assert_true(fd >= 0);
        char head[4096];
        int k = snprintf(head, sizeof head,
                         "POST /media?conv=%llu&name=p%d.txt HTTP/1.1\r\n"
                         "Authorization: Bearer %s\r\n",
                         (unsigned long long)conv, way,
                         harness_token("ann", "customer", 600));
        if (way == 2) { /* the head in two pieces, the body with the last */
            assert_int_equal(send_all(fd, head, (size_t)k), 0);
            usleep(100000);
            k = 0;
        }
        snprintf(head + k, sizeof head - (size_t)k,
                 "Content-Length: 12\r\n\r\n");
        assert_int_equal(send_all(fd, head, strlen(head)), 0);
        if (way == 1) usleep(100000); /* the body in a later read */
        assert_int_equal(send_all(fd, text, 12), 0);
        http_res r;
        memset(&r, 0, sizeof r);
        read_res(fd, &r, WAIT_MS);
        close(fd);
        assert_int_equal(r.status, 201);
        assert_int_equal(upload_int(&r, "size"), 12);
        res_free(&r);
    }
    it_raw_close(&alice);
}

/* ---- 4. PostgreSQL: the bytes in the database -----------------------------
 */

static void test_cluster(void **state)
{
    (void)state;
    if (!pgtest_url()) skip();
    it_raw alice, bob;
    peer(&alice, "pat", "customer", SB_ENC_PROTO);
    uint64_t conv = open_conv(&alice, "bob");
    size_t n = 1300000; /* two chunks */
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)("0123456789 abcdef\n"[i % 18]);
    http_res r;
    upload("pat", "customer", conv, "log.txt", p, n, &r);
    char id[SB_MEDIA_ID_LEN + 1];
    upload_id(&r, id);
    res_free(&r);
    Sbp__Frame *a = send_media(&alice, conv, SBP__MSG_TYPE__MSG_FILE, id, 9);
    assert_int_equal(a->body_case, SBP__FRAME__BODY_SEND_ACK);
    sb_frame_free(a);
    /* No blob in the folder: only the folder for arriving uploads. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/media", E.data_dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        assert_true(e->d_name[0] == '.' || strcmp(e->d_name, "tmp") == 0);
    closedir(d);
    /* A second gateway on the same database serves it. */
    snprintf(B.store, sizeof B.store, "%s", E.srv.store);
    for (int i = 0; E.srv.extra[i]; i++)
        B.extra[i] = E.srv.extra[i];
    assert_int_equal(harness_start(&B), 0);
    char path[64];
    snprintf(path, sizeof path, "/media/%s", id);
    assert_int_equal(
        fetch_on(B.port, path, harness_token("bob", "agent", 600), &r), 200);
    assert_int_equal(r.n, n);
    assert_memory_equal(r.body, p, n);
    res_free(&r);
    /* And B's links work on A. */
    it_raw_close(&alice);
    assert_int_equal(it_raw_open(&bob, B.port, SB_ENC_JSON, NULL), 0);
    assert_int_equal(
        it_raw_hello(&bob, harness_token("bob", "agent", 600), "d2", WAIT_MS),
        0);
    Sbp__Frame *l = media_url(&bob, (const char *const[]){id}, 1);
    assert_int_equal(l->body_case, SBP__FRAME__BODY_MEDIA_URL_RESP);
    assert_int_equal(
        fetch_on(E.srv.port, l->media_url_resp->links[0]->url, NULL, &r), 200);
    assert_int_equal(r.n, n);
    res_free(&r);
    sb_frame_free(l);
    it_raw_close(&bob);
    free(p);
}

/* ---- 5. the C SDK ---------------------------------------------------------
 */

/* The messages of conv as bob sees them (HISTORY over a raw client). */
static Sbp__Frame *history(uint64_t conv)
{
    it_raw bob;
    peer(&bob, "bob", "agent", SB_ENC_PROTO);
    Sbp__History h = SBP__HISTORY__INIT;
    h.conv_id = conv;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_HISTORY;
    f.history = &h;
    Sbp__Frame *g = answer(&bob, send_frame(&bob, &f));
    assert_int_equal(g->body_case, SBP__FRAME__BODY_HISTORY_RESP);
    it_raw_close(&bob);
    return g;
}

static bool sdk_done(void *arg)
{
    it_device *d = arg;
    return d->n_sent + d->n_failed >= d->n_sends;
}

static void test_sdk(void **state)
{
    (void)state;
    it_device *a = it_device_new(&E, "sam", "customer", "phone");
    assert_int_equal(it_device_start(a), 0);
    assert_true(it_device_wait_ready(a, WAIT_MS));
    uint64_t conv = it_open(a, "bob", WAIT_MS);
    assert_true(conv != 0);
    char dir[] = "/tmp/sbsdkmedia.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char photo_path[256], html_path[256];
    snprintf(photo_path, sizeof photo_path, "%s/IMG 2.jpg", dir);
    snprintf(html_path, sizeof html_path, "%s/page.png", dir);
    photo_opts po = {.w = 30, .h = 20, .gps = true};
    uint8_t *photo;
    size_t photo_n;
    assert_int_equal(photo_jpeg(&po, &photo, &photo_n), 0);
    FILE *f = fopen(photo_path, "wb");
    fwrite(photo, 1, photo_n, f);
    fclose(f);
    f = fopen(html_path, "wb");
    fputs("<html><script>alert(1)</script></html>\n", f);
    fclose(f);

    /* Uploaded, then sent: an image message with the server's record. */
    assert_int_equal(it_send_file(a, conv, SBP__MSG_TYPE__MSG_IMAGE, photo_path,
                                  NULL, "the receipt", NULL),
                     0);
    assert_true(it_run_until(&E, sdk_done, a, WAIT_MS));
    assert_int_equal(a->n_failed, 0);
    Sbp__Frame *h = history(conv);
    assert_int_equal(h->history_resp->n_messages, 1);
    Sbp__Message *m = h->history_resp->messages[0];
    assert_int_equal(m->type, SBP__MSG_TYPE__MSG_IMAGE);
    assert_string_equal(m->body, "the receipt");
    assert_string_equal(m->media->name, "IMG 2.jpg");
    assert_string_equal(m->media->mime, "image/jpeg");
    assert_int_equal(m->media->width, 30);
    assert_int_equal(m->media->height, 20);
    sb_frame_free(h);
    sb_client_stats st;
    sb_client_get_stats(a->c, &st);
    assert_int_equal(st.uploads, 1);

    /* The server goes away: the attachment waits in the outbox, then
     * goes up and out once, when the server is back. */
    assert_int_equal(harness_stop(&E.srv), 0);
    assert_int_equal(it_send_file(a, conv, SBP__MSG_TYPE__MSG_FILE, photo_path,
                                  "again.jpg", NULL, NULL),
                     0);
    it_run_for(&E, 700);
    assert_int_equal(a->n_sent, 1);
    assert_int_equal(harness_restart(&E.srv), 0);
    assert_true(it_run_until(&E, sdk_done, a, 3 * WAIT_MS));
    assert_int_equal(a->n_sent, 2);
    assert_int_equal(a->n_failed, 0);
    h = history(conv);
    assert_int_equal(h->history_resp->n_messages, 2);
    assert_string_equal(h->history_resp->messages[1]->media->name, "again.jpg");
    sb_frame_free(h);

    /* Refused by the server: FAILED, and nothing sent. */
    assert_int_equal(it_send_file(a, conv, SBP__MSG_TYPE__MSG_IMAGE, html_path,
                                  NULL, "look", NULL),
                     0);
    assert_true(it_run_until(&E, sdk_done, a, WAIT_MS));
    assert_int_equal(a->n_failed, 1);
    /* A file that is not there. */
    char gone[300];
    snprintf(gone, sizeof gone, "%s/nothing.pdf", dir);
    assert_int_equal(
        it_send_file(a, conv, SBP__MSG_TYPE__MSG_FILE, gone, NULL, NULL, NULL),
        0);
    assert_true(it_run_until(&E, sdk_done, a, WAIT_MS));
    assert_int_equal(a->n_failed, 2);
    h = history(conv);
    assert_int_equal(h->history_resp->n_messages, 2); /* nothing half-made */
    sb_frame_free(h);
    assert_int_equal(E.violations, 0);
    it_device_stop(a);
    unlink(photo_path);
    unlink(html_path);
    rmdir(dir);
    free(photo);
}

/* ---- 6. export and erasure (the REST API) ----------------------------------
 */

/* Whether the blob of bytes p[0..n) is in the store (a file for SQLite,
 * a row for PostgreSQL); with age_back, it is made an hour older first. */
static bool blob_there(const uint8_t *p, size_t n, bool age_back)
{
    uint8_t sha[SHA256_DIGEST_LENGTH];
    SHA256(p, n, sha);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", sha[i]);
    if (E.srv.store[0]) {
        char sql[256];
        if (age_back) {
            snprintf(sql, sizeof sql,
                     "UPDATE blobs SET created_ts = created_ts - 3600000"
                     " WHERE sha256 = decode('%s', 'hex')",
                     hex);
            assert_int_equal(pgtest_exec(E.srv.store, sql), 0);
        }
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM blobs WHERE sha256 = decode('%s',"
                 " 'hex')",
                 hex);
        return pgtest_int(E.srv.store, sql) == 1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/media/%.2s/%s", E.data_dir, hex, hex);
    if (age_back) {
        struct timeval tv[2];
        gettimeofday(&tv[0], NULL);
        tv[0].tv_sec -= 3600;
        tv[1] = tv[0];
        assert_int_equal(utimes(path, tv), 0);
    }
    return access(path, F_OK) == 0;
}

static void test_erase_export(void **state)
{
    (void)state;
    it_raw alice;
    peer(&alice, "ada", "customer", SB_ENC_JSON);
    uint64_t conv = open_conv(&alice, "bob");
    photo_opts po = {.w = 24, .h = 24, .gps = true};
    uint8_t *photo;
    size_t photo_n;
    assert_int_equal(photo_jpeg(&po, &photo, &photo_n), 0);
    http_res r;
    upload("ada", "customer", conv, "me.jpg", photo, photo_n, &r);
    char id[SB_MEDIA_ID_LEN + 1];
    upload_id(&r, id);
    res_free(&r);
    Sbp__Frame *a = send_media(&alice, conv, SBP__MSG_TYPE__MSG_IMAGE, id, 1);
    assert_int_equal(a->body_case, SBP__FRAME__BODY_SEND_ACK);
    sb_frame_free(a);
    it_raw_close(&alice);
    assert_int_equal(fetch(id, "bob", "agent", &r), 200);
    uint8_t *stored = r.body;
    size_t stored_n = r.n;
    r.body = NULL;
    res_free(&r);
    assert_true(blob_there(stored, stored_n, false));

    /* Exports: a non-member's holds nothing of it; the uploader's does. */
    const char *admin = harness_token("root", "admin", 600);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/users/eve/export");
    assert_int_equal(fetch_on(E.srv.port, path, admin, &r), 200);
    assert_null(strstr((char *)r.body, id));
    assert_null(strstr((char *)r.body, "me.jpg"));
    res_free(&r);
    snprintf(path, sizeof path, "/api/v1/users/ada/export");
    assert_int_equal(fetch_on(E.srv.port, path, admin, &r), 200);
    assert_non_null(strstr((char *)r.body, id));
    res_free(&r);

    /* Erasure: the uploads go (nobody fetches them), and their bytes
     * (made an hour old here: the sweep spares younger ones, which an
     * upload on its way may be about to name). */
    assert_true(blob_there(stored, stored_n, true));
    char head[2048];
    snprintf(head, sizeof head,
             "POST /api/v1/users/ada/erase HTTP/1.1\r\nHost: t\r\n"
             "Authorization: Bearer %s\r\nContent-Length: 0\r\n",
             admin);
    assert_int_equal(http_do(E.srv.port, head, NULL, 0, &r), 200);
    json_t *j = json_loadb((const char *)r.body, r.n, 0, NULL);
    assert_non_null(j);
    json_t *att = json_object_get(j, "attachments");
    assert_int_equal(json_integer_value(json_object_get(att, "uploads")), 1);
    json_decref(j);
    res_free(&r);
    assert_int_equal(fetch(id, "bob", "agent", &r), 404);
    res_free(&r);
    assert_int_equal(fetch(id, "ada", "customer", &r), 404);
    res_free(&r);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = !blob_there(stored, stored_n, false);
        if (!gone) usleep(50000);
    }
    assert_true(gone);
    free(stored);
    free(photo);
}

/* ---- 7. backup and restore ----------------------------------------------- */

static void test_backup(void **state)
{
    (void)state;
    if (pgtest_url()) skip(); /* PostgreSQL's own tools back it up */
    it_raw alice;
    peer(&alice, "bea", "customer", SB_ENC_PROTO);
    uint64_t conv = open_conv(&alice, "bob");
    photo_opts po = {.w = 20, .h = 10, .gps = true};
    uint8_t *photo;
    size_t photo_n;
    assert_int_equal(photo_jpeg(&po, &photo, &photo_n), 0);
    http_res r;
    char id[2][SB_MEDIA_ID_LEN + 1];
    upload("bea", "customer", conv, "p.jpg", photo, photo_n, &r);
    upload_id(&r, id[0]);
    res_free(&r);
    upload("bea", "customer", conv, "same.jpg", photo, photo_n, &r);
    upload_id(&r, id[1]); /* the same bytes: one file */
    res_free(&r);
    Sbp__Frame *a =
        send_media(&alice, conv, SBP__MSG_TYPE__MSG_IMAGE, id[0], 1);
    assert_int_equal(a->body_case, SBP__FRAME__BODY_SEND_ACK);
    sb_frame_free(a);
    it_raw_close(&alice);
    assert_int_equal(fetch(id[0], "bob", "agent", &r), 200);
    uint8_t *want = r.body;
    size_t want_n = r.n;
    r.body = NULL;
    res_free(&r);

    char dir[64], bin[512], cmd[1600];
    snprintf(dir, sizeof dir, "/tmp/sbmediabk.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(bin, sizeof bin, "%s", harness_server_bin());
    char *slash = strrchr(bin, '/');
    if (slash) *slash = '\0';
    snprintf(cmd, sizeof cmd,
             "'%s/sbctl' store backup --data '%s' '%s/copy' > '%s/out' 2>&1",
             slash ? bin : ".", E.data_dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/out", dir);
    FILE *f = fopen(cmd, "r");
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_non_null(strstr(line, "2 uploads (1 files"));
    /* The restore: the copy as a fresh data folder. */
    it_env_free(&E);
    it_env_init(&E);
    snprintf(E.srv.data_dir, sizeof E.srv.data_dir, "%s/copy", dir);
    E.srv.sqlite_only = true;
    assert_int_equal(it_server_start(&E, NULL), 0);
    assert_int_equal(fetch(id[0], "bob", "agent", &r), 200);
    assert_int_equal(r.n, want_n);
    assert_memory_equal(r.body, want, want_n);
    res_free(&r);
    assert_int_equal(fetch(id[1], "bea", "customer", &r), 200);
    res_free(&r);
    it_env_free(&E); /* removes the copy */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(want);
    free(photo);
}

/* ---- 8. a full disk -------------------------------------------------------
 */

static char MNT[64];
static bool mounted;

static int full_setup(void **state)
{
    (void)state;
    if (geteuid() != 0) return 0;
    snprintf(MNT, sizeof MNT, "/tmp/sbmediafull.XXXXXX");
    assert_non_null(mkdtemp(MNT));
    assert_int_equal(
        mount("tmpfs", MNT, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0700"),
        0);
    mounted = true;
    it_env_init(&E);
    snprintf(E.srv.data_dir, sizeof E.srv.data_dir, "%s/data", MNT);
    mkdir(E.srv.data_dir, 0700);
    static const char *const extra[] = {"--media-bytes-max", "2000000",
                                        "--sends-per-s", "0", NULL};
    assert_int_equal(it_server_start(&E, extra), 0);
    meet_agents();
    return 0;
}

static int full_teardown(void **state)
{
    teardown(state);
    if (mounted) umount2(MNT, MNT_DETACH);
    mounted = false;
    if (MNT[0]) rmdir(MNT);
    return 0;
}

static void test_disk_full(void **state)
{
    (void)state;
    if (geteuid() != 0) skip();
    it_raw alice;
    peer(&alice, "fay", "customer", SB_ENC_PROTO);
    uint64_t conv = open_conv(&alice, "bob");
    size_t n = 1900000;
    uint8_t *p = calloc(1, n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t) "some text\n"[i % 10];
    http_res r;
    /* The first fits (SQLite's database and its WAL live there too; on
     * PostgreSQL the folder only holds arriving uploads). */
    assert_int_equal(upload("fay", "customer", conv, "a.txt", p, n, &r), 201);
    res_free(&r);
    /* The disk fills up but for 400 KiB. */
    struct statvfs vs;
    assert_int_equal(statvfs(MNT, &vs), 0);
    uint64_t room = (uint64_t)vs.f_bavail * vs.f_frsize;
    char filler[128];
    snprintf(filler, sizeof filler, "%s/filler", MNT);
    FILE *f = fopen(filler, "wb");
    assert_non_null(f);
    for (uint64_t i = 0; room > (400u << 10) && i < room - (400u << 10);
         i += 4096)
        fwrite(p, 1, 4096, f);
    fclose(f);
    p[0] = 'S'; /* other bytes: another blob */
    assert_int_equal(upload("fay", "customer", conv, "b.txt", p, n, &r), 507);
    assert_non_null(strstr((char *)r.body, "disk is full"));
    res_free(&r);
    assert_true(tmp_empty());
    /* Room again: taken. */
    unlink(filler);
    assert_int_equal(upload("fay", "customer", conv, "b.txt", p, n, &r), 201);
    char id[SB_MEDIA_ID_LEN + 1];
    upload_id(&r, id);
    res_free(&r);
    assert_int_equal(fetch(id, "fay", "customer", &r), 200);
    assert_int_equal(r.n, n);
    assert_memory_equal(r.body, p, n);
    res_free(&r);
    free(p);
    it_raw_close(&alice);
}

int main(void)
{
    /* A mount namespace of our own for the full-disk test's tmpfs (the
     * server inherits it). */
    if (geteuid() == 0 && unshare(CLONE_NEWNS) == 0)
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_photo_proto, setup, teardown),
        cmocka_unit_test_setup_teardown(test_photo_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_uploads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sdk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, full_setup,
                                        full_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
