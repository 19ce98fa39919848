/* permessage-deflate: the negotiation's parameters and zlib without
 * context takeover. */
#include "sb_wsdeflate.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define NAME "permessage-deflate"
/* zlib's memLevel: the hash table of a message compressed from a fresh
 * state. 2^(7+memLevel) entries, cleared at every message. */
#define DEFLATE_MEM_LEVEL 6
#define WINDOW_BITS_MIN 9
#define WINDOW_BITS_MAX 15

/* ---- the Sec-WebSocket-Extensions grammar (RFC 6455 §9.1) ---------------
 *
 * extension-list = 1#( extension-token *( ";" extension-param ) )
 * extension-param = token [ "=" ( token / quoted-string ) ]
 */

/* One element of the list, as far as permessage-deflate cares. */
typedef struct element {
    bool deflate; /* its name is permessage-deflate */
    bool bad;     /* malformed, or a parameter deflate does not allow */
    bool server_nct, client_nct;
    int server_bits; /* -1 absent, else 8..15 */
    int client_bits; /* -1 absent, 0 without a value, else 8..15 */
} element;

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* A token at s: its length (0 if none). */
static size_t token_len(const char *s)
{
    size_t n = 0;
    while (is_tchar(s[n]))
        n++;
    return n;
}

static bool token_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncmp(s, word, n) == 0;
}

/* A parameter value at s (a token or a quoted string), unquoted into v
 * (v_len bytes). Returns the end of the value, or NULL if malformed or
 * too long. */
static const char *value_at(const char *s, char *v, size_t v_len)
{
    size_t n = 0;
    if (*s == '"') {
        for (s++; *s != '"'; s++) {
            if (*s == '\\') s++;
            if (*s == '\0' || n + 1 >= v_len) return NULL;
            v[n++] = *s;
        }
        s++;
    } else {
        size_t k = token_len(s);
        if (k == 0 || k >= v_len) return NULL;
        memcpy(v, s, k);
        n = k;
        s += k;
    }
    v[n] = '\0';
    return s;
}

/* A window size value: 1*DIGIT, 8..15. Returns it or -1. */
static int window_bits(const char *v)
{
    if (!v[0] || strlen(v) > 2 || strspn(v, "0123456789") != strlen(v))
        return -1;
    int b = atoi(v);
    return b >= 8 && b <= 15 ? b : -1;
}

/* Applies one parameter of a permessage-deflate element. */
static void deflate_param(element *e, const char *name, size_t n,
                          const char *value /* NULL: none */)
{
    if (token_is(name, n, "server_no_context_takeover")) {
        if (value || e->server_nct) e->bad = true;
        e->server_nct = true;
    } else if (token_is(name, n, "client_no_context_takeover")) {
        if (value || e->client_nct) e->bad = true;
        e->client_nct = true;
    } else if (token_is(name, n, "server_max_window_bits")) {
        int b = value ? window_bits(value) : -1;
        if (b < 0 || e->server_bits >= 0) e->bad = true;
        e->server_bits = b < 0 ? 15 : b;
    } else if (token_is(name, n, "client_max_window_bits")) {
        int b = value ? window_bits(value) : 0;
        if (b < 0 || e->client_bits >= 0) e->bad = true;
        e->client_bits = b < 0 ? 0 : b;
    } else {
        e->bad = true;
    }
}

/* Reads the element at s into e. Returns where the next one starts (after
 * its comma) or the end of the string. A malformed element is read to its
 * comma and marked bad. */
static const char *element_at(const char *s, element *e)
{
    *e = (element){.server_bits = -1, .client_bits = -1};
    s = skip_ws(s);
    size_t n = token_len(s);
    if (n == 0) e->bad = true;
    e->deflate = token_is(s, n, NAME);
    s = skip_ws(s + n);
    while (!e->bad && *s == ';') {
        s = skip_ws(s + 1);
        const char *name = s;
        size_t k = token_len(s);
        if (k == 0) {
            e->bad = true;
            break;
        }
        s = skip_ws(s + k);
        char value[16];
        bool has_value = *s == '=';
        if (has_value) {
            const char *end = value_at(skip_ws(s + 1), value, sizeof value);
            if (!end) {
                e->bad = true;
                break;
            }
            s = skip_ws(end);
        }
        if (e->deflate) deflate_param(e, name, k, has_value ? value : NULL);
    }
    if (*s != ',' && *s != '\0') e->bad = true;
    /* To the comma that ends the element, past any quoted commas. */
    bool quoted = false;
    for (; *s && (quoted || *s != ','); s++) {
        if (quoted && *s == '\\' && s[1])
            s++;
        else if (*s == '"')
            quoted = !quoted;
    }
    return *s == ',' ? s + 1 : s;
}

bool sb_wsdeflate_accept(const char *offers, sb_wsdeflate_params *p, char *resp,
                         size_t resp_len)
{
    assert(resp_len >= 128);
    *p = (sb_wsdeflate_params){0};
    resp[0] = '\0';
    for (const char *s = offers; *s;) {
        element e;
        s = element_at(s, &e);
        /* A window of 8 is refused: zlib makes a raw stream of 8 with a
         * window of 9, which the client could not read. */
        if (!e.deflate || e.bad || e.server_bits == 8) continue;
        p->on = true;
        p->window_bits = e.server_bits > 0 ? (uint8_t)e.server_bits : 15;
        int n = snprintf(resp, resp_len,
                         NAME "; server_no_context_takeover; "
                              "client_no_context_takeover");
        if (e.server_bits > 0)
            snprintf(resp + n, resp_len - (size_t)n,
                     "; server_max_window_bits=%d", e.server_bits);
        return true;
    }
    return false;
}

int sb_wsdeflate_check_answer(const char *answer, sb_wsdeflate_params *p)
{
    *p = (sb_wsdeflate_params){0};
    if (*skip_ws(answer) == '\0') return 0;
    element e;
    const char *rest = element_at(answer, &e);
    if (*rest || !e.deflate || e.bad || !e.server_nct || e.client_bits >= 0)
        return -EPROTO;
    p->on = true;
    p->window_bits = 15; /* client_max_window_bits was not offered */
    return 0;
}

/* ---- the streams ----------------------------------------------------------
 */

struct sb_wsdeflate {
    int level;
    z_stream def[WINDOW_BITS_MAX + 1]; /* by window bits, made on use */
    bool def_ok[WINDOW_BITS_MAX + 1];
    z_stream inf;
    bool inf_ok;
};

int sb_wsdeflate_new(int level, sb_wsdeflate **out)
{
    assert(level >= 1 && level <= 9);
    *out = calloc(1, sizeof **out);
    if (!*out) return -ENOMEM;
    (*out)->level = level;
    return 0;
}

void sb_wsdeflate_free(sb_wsdeflate *z)
{
    if (!z) return;
    for (int b = 0; b <= WINDOW_BITS_MAX; b++)
        if (z->def_ok[b]) deflateEnd(&z->def[b]);
    if (z->inf_ok) inflateEnd(&z->inf);
    free(z);
}

int sb_wsdeflate_compress(sb_wsdeflate *z, int window_bits, const uint8_t *p,
                          size_t n, sb_buf *out)
{
    assert(window_bits >= WINDOW_BITS_MIN && window_bits <= WINDOW_BITS_MAX);
    z_stream *s = &z->def[window_bits];
    if (!z->def_ok[window_bits]) {
        memset(s, 0, sizeof *s);
        if (deflateInit2(s, z->level, Z_DEFLATED, -window_bits,
                         DEFLATE_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
            return -ENOMEM;
        z->def_ok[window_bits] = true;
    } else if (deflateReset(s) != Z_OK) {
        return -ENOMEM;
    }
    size_t start = out->len;
    s->next_in = (Bytef *)p;
    s->avail_in = (uInt)n;
    /* deflateBound covers the data; the sync flush adds an empty stored
     * block (5 bytes). */
    size_t room = deflateBound(s, (uLong)n) + 16;
    for (;;) {
        if (sb_buf_reserve(out, room) != 0) {
            out->len = start;
            return -ENOMEM;
        }
        s->next_out = out->data + out->len;
        s->avail_out = (uInt)room;
        int rc = deflate(s, Z_SYNC_FLUSH);
        out->len += room - s->avail_out;
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            out->len = start;
            return -ENOMEM;
        }
        if (s->avail_in == 0 && s->avail_out > 0) break;
        room = 4096;
    }
    /* A sync flush ends with 00 00 ff ff, which the receiver puts back. */
    assert(out->len - start >= 4 &&
           memcmp(out->data + out->len - 4, "\0\0\xff\xff", 4) == 0);
    out->len -= 4;
    return 0;
}

int sb_wsdeflate_decompress(sb_wsdeflate *z, const uint8_t *p, size_t n,
                            size_t max, sb_buf *out)
{
    static const uint8_t TAIL[4] = {0, 0, 0xff, 0xff};
    z_stream *s = &z->inf;
    if (!z->inf_ok) {
        memset(s, 0, sizeof *s);
        if (inflateInit2(s, -WINDOW_BITS_MAX) != Z_OK) return -ENOMEM;
        z->inf_ok = true;
    } else if (inflateReset(s) != Z_OK) {
        return -ENOMEM;
    }
    size_t start = out->len;
    int rc = 0;
    const uint8_t *in[2] = {p, TAIL};
    size_t in_len[2] = {n, sizeof TAIL};
    for (int part = 0; part < 2 && rc == 0; part++) {
        s->next_in = (Bytef *)in[part];
        s->avail_in = (uInt)in_len[part];
        while (rc == 0) {
            /* Room for one byte past max: producing it means too large. */
            size_t made = out->len - start;
            size_t room = max + 1 - made;
            size_t want = n * 4 > 4096 ? n * 4 : 4096;
            if (room > want) room = want;
            if (sb_buf_reserve(out, room) != 0) {
                rc = -ENOMEM;
                break;
            }
            s->next_out = out->data + out->len;
            s->avail_out = (uInt)room;
            int zr = inflate(s, Z_SYNC_FLUSH);
            out->len += room - s->avail_out;
            if (out->len - start > max)
                rc = -EMSGSIZE;
            else if (zr == Z_STREAM_END)
                part = 2; /* a final block: what follows is ignored */
            else if (zr == Z_MEM_ERROR)
                rc = -ENOMEM;
            else if (zr != Z_OK && zr != Z_BUF_ERROR)
                rc = -EBADMSG;
            if (part == 2 || (s->avail_in == 0 && s->avail_out > 0)) break;
        }
    }
    if (rc != 0) out->len = start;
    return rc;
}
