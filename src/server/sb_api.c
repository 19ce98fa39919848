/* The REST API (sb_api.h): the route table, the bearer check and the rate
 * per token, each request turned into one frame on a session of its own,
 * and the frame's answer turned into the HTTP response. */
#include "sb_api.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sb_b64.h"
#include "sb_desk.h"
#include "sb_error.h"
#include "sb_identity.h"
#include "sb_map.h"
#include "sb_reportfmt.h"
#include "sb_token.h"

#define PATH_SEGS_MAX 8
#define SEG_BYTES_MAX 128
#define PARAMS_MAX 8
#define PARAM_BYTES_MAX 256

/* How the answer frame of a request becomes its HTTP response. */
typedef enum answer_kind {
    ANS_SEND,        /* send_ack: 201 (200 for a duplicate) */
    ANS_HISTORY,     /* history_resp */
    ANS_LIST,        /* conv_list_resp */
    ANS_OK,          /* ok */
    ANS_ADMIN,       /* admin_resp: its text, a JSON document, as the body */
    ANS_REPORT_JSON, /* report_resp, rendered as JSON (sb_reportfmt) */
    ANS_REPORT_CSV,  /* report_resp, rendered as CSV */
    ANS_CONTACT,     /* contact_resp: {contact, conversations} */
    ANS_IDENTIFY,    /* admin_resp of contact-identify: a token minted */
    ANS_THEN,        /* open_resp of NOTES_OPEN: the next frame follows */
} answer_kind;

typedef struct pend {
    uint64_t conn; /* the HTTP connection; 0 once gone */
    uint64_t sess; /* its gateway session */
    uint32_t rid;
    answer_kind kind;
    bool done; /* answered: the session ends at the next flush */
    int64_t deadline_ms;
    struct pend *next;
    /* ANS_THEN: the frame that follows on the same session (its body gets
     * the notes conversation's conv_id) and how it is answered; with
     * none_empty, notes that do not exist answer an empty page. */
    json_t *then;
    const char *then_name;
    answer_kind then_kind;
    bool none_empty;
    int64_t now_ms; /* when the request came */
    /* ANS_IDENTIFY: whom the token is for. */
    char user[SB_ID_BYTES_MAX + 1];
    char locale[SB_LOCALE_BYTES_MAX + 1];
} pend;

typedef struct bucket {
    uint64_t mtokens; /* thousandths */
    int64_t refill_ms;
} bucket;

struct sb_api {
    sb_api_config cfg;
    sb_api_io io;
    sb_gw *gw;
    sb_map by_sess; /* session id -> pend */
    sb_map by_conn; /* HTTP connection id -> pend */
    sb_map buckets; /* hash of a token -> bucket */
    pend *all;
    size_t n_pending;
    uint32_t next_rid;
    int64_t now_ms; /* the time of the last request or flush */
};

/* A request as the handlers see it. */
typedef struct api_req {
    sb_api *api;
    uint64_t conn;
    const sb_http_req *http;
    int64_t now_ms;
    sb_claims who;
    char seg[PATH_SEGS_MAX][SEG_BYTES_MAX]; /* the path's segments */
    size_t n_seg;
    char pkey[PARAMS_MAX][32], pval[PARAMS_MAX][PARAM_BYTES_MAX];
    size_t n_params;
    json_t *body; /* the JSON body, an object; NULL: none */
} api_req;

static void feed(sb_api *api, pend *p, const char *name, json_t *body,
                 int64_t now_ms);
static bool rate_take(sb_api *api, const char *token, int64_t now);

/* ---- answers --------------------------------------------------------------
 */

static void answer_json(sb_api *api, uint64_t conn, int status, json_t *j,
                        const char *headers)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!text) {
        static const char OOM[] = "{\"error\":{\"status\":500,\"code\":"
                                  "\"internal\",\"message\":\"out of "
                                  "memory\"}}";
        api->io.answer(api->io.ud, conn, 500, "application/json", NULL, OOM,
                       sizeof OOM - 1);
        return;
    }
    api->io.answer(api->io.ud, conn, status, "application/json", headers, text,
                   strlen(text));
    free(text);
}

/* The error body: {"error": {"status", "code", "message"}}. */
static void answer_error_h(sb_api *api, uint64_t conn, int status,
                           const char *code, const char *message,
                           const char *headers)
{
    json_t *j = json_pack("{s:{s:i,s:s,s:s}}", "error", "status", status,
                          "code", code, "message", message);
    answer_json(api, conn, status, j, headers);
    json_decref(j);
}

static void answer_error(sb_api *api, uint64_t conn, int status,
                         const char *code, const char *message)
{
    answer_error_h(api, conn, status, code, message, NULL);
}

/* A wire ErrorCode as an HTTP status and a code name. */
static int error_status(Sbp__ErrorCode code, const char **name)
{
    switch (code) {
    case SBP__ERROR_CODE__ERR_UNAUTHENTICATED:
    case SBP__ERROR_CODE__ERR_BAD_TOKEN:
    case SBP__ERROR_CODE__ERR_TOKEN_EXPIRED:
        *name = "unauthorized";
        return 401;
    case SBP__ERROR_CODE__ERR_FORBIDDEN:
        *name = "forbidden";
        return 403;
    case SBP__ERROR_CODE__ERR_NOT_FOUND:
        *name = "not_found";
        return 404;
    case SBP__ERROR_CODE__ERR_TOO_LARGE:
        *name = "too_large";
        return 413;
    case SBP__ERROR_CODE__ERR_BAD_FRAME:
    case SBP__ERROR_CODE__ERR_BAD_UTF8:
    case SBP__ERROR_CODE__ERR_INVALID:
    case SBP__ERROR_CODE__ERR_UNKNOWN_TYPE:
        *name = "invalid";
        return 400;
    case SBP__ERROR_CODE__ERR_RATE_LIMITED:
    case SBP__ERROR_CODE__ERR_TOO_MANY_PENDING:
        *name = "rate_limited";
        return 429;
    case SBP__ERROR_CODE__ERR_BLOCKED:
        *name = "blocked";
        return 422;
    case SBP__ERROR_CODE__ERR_STATE:
    case SBP__ERROR_CODE__ERR_TOO_LATE:
    case SBP__ERROR_CODE__ERR_ALREADY:
        *name = "conflict";
        return 409;
    case SBP__ERROR_CODE__ERR_STORE:
        *name = "store";
        return 503;
    case SBP__ERROR_CODE__ERR_UNAVAILABLE:
        *name = "unavailable";
        return 503;
    default:
        *name = "internal";
        return 500;
    }
}

static void answer_rc(sb_api *api, uint64_t conn, int rc, const char *text)
{
    const char *name;
    int status = error_status(sb_error_code(rc), &name);
    answer_error(api, conn, status, name,
                 text && *text ? text : sb_strerror(rc));
}

/* ---- pending requests -----------------------------------------------------
 */

static void pend_finish(sb_api *api, pend *p)
{
    if (p->done) return;
    p->done = true;
    if (p->conn) sb_map_del(&api->by_conn, p->conn);
    p->conn = 0;
}

/* A REPORT_RESP (in f, the frame as JSON) rendered in format fmt, the
 * rendering sbctl report prints; false when f is not one. */
static bool answer_report(sb_api *api, uint64_t conn, json_t *f,
                          sb_report_format fmt)
{
    if (!json_object_get(f, "report_resp")) return false;
    char *text = json_dumps(f, JSON_COMPACT);
    Sbp__Frame *fr = NULL;
    sb_buf b = SB_BUF_INIT;
    bool ok = text &&
              sb_frame_decode(SB_ENC_JSON, (const uint8_t *)text, strlen(text),
                              &fr) == 0 &&
              fr->body_case == SBP__FRAME__BODY_REPORT_RESP &&
              sb_report_render(fr->report_resp, fmt, &b) == 0;
    free(text);
    if (fr) sb_frame_free(fr);
    if (!ok) {
        sb_buf_free(&b);
        return false;
    }
    api->io.answer(api->io.ud, conn, 200, sb_report_format_type(fmt), NULL,
                   b.data, b.len);
    sb_buf_free(&b);
    return true;
}

/* The contact stored for a signed identity (f: contact-identify's
 * ADMIN_RESP, the contact as JSON): the answer is a customer token for
 * its user, {"token", "user_id", "expires_ts", "contact"}. False when f
 * is not that answer. */
static bool answer_identify(sb_api *api, pend *p, json_t *f)
{
    json_t *b = json_object_get(f, "admin_resp");
    const char *text = json_string_value(json_object_get(b, "text"));
    json_t *contact = text ? json_loads(text, 0, NULL) : NULL;
    if (!contact) return false;
    int64_t now_s = p->now_ms / 1000;
    sb_claims cl = {.role = SBP__ROLE__ROLE_CUSTOMER,
                    .iat = now_s,
                    .exp = now_s + SB_IDENTITY_TOKEN_TTL_S};
    snprintf(cl.sub, sizeof cl.sub, "%s", p->user);
    snprintf(cl.locale, sizeof cl.locale, "%s", p->locale);
    if (api->cfg.token_iss)
        snprintf(cl.iss, sizeof cl.iss, "%s", api->cfg.token_iss);
    if (api->cfg.token_aud)
        snprintf(cl.aud, sizeof cl.aud, "%s", api->cfg.token_aud);
    char tok[SB_TOKEN_BYTES_MAX];
    if (sb_token_sign(api->cfg.secret, api->cfg.secret_len, &cl, tok,
                      sizeof tok) < 0) {
        json_decref(contact);
        answer_error(api, p->conn, 500, "internal", "cannot sign a token");
        return true;
    }
    json_t *out =
        json_pack("{s:s,s:s,s:I,s:o}", "token", tok, "user_id", p->user,
                  "expires_ts", (json_int_t)cl.exp * 1000, "contact", contact);
    answer_json(api, p->conn, 200, out, NULL);
    json_decref(out);
    return true;
}

/* The frame's answer, as the HTTP response of p. */
static void answer_frame(sb_api *api, pend *p, json_t *f)
{
    uint64_t conn = p->conn;
    json_t *e = json_object_get(f, "error");
    const char *ecode = json_string_value(json_object_get(e, "code"));
    if (e && p->none_empty && ecode && strcmp(ecode, "ERR_NOT_FOUND") == 0) {
        json_t *empty = json_pack("{s:[],s:b}", "messages", "more", 0);
        answer_json(api, conn, 200, empty, NULL);
        json_decref(empty);
        return;
    }
    if (e) {
        json_t *code = json_object_get(e, "code");
        const ProtobufCEnumValue *v =
            json_is_string(code)
                ? protobuf_c_enum_descriptor_get_value_by_name(
                      &sbp__error_code__descriptor, json_string_value(code))
                : NULL;
        const char *name;
        int status = error_status(v ? (Sbp__ErrorCode)v->value
                                    : SBP__ERROR_CODE__ERR_INTERNAL,
                                  &name);
        const char *text = json_string_value(json_object_get(e, "text"));
        answer_error(api, conn, status, name, text ? text : "refused");
        return;
    }
    json_t *b;
    switch (p->kind) {
    case ANS_SEND: {
        b = json_object_get(f, "send_ack");
        if (!b) break;
        bool dup = json_is_true(json_object_get(b, "duplicate"));
        json_object_set_new(b, "duplicate", json_boolean(dup));
        answer_json(api, conn, dup ? 200 : 201, b, NULL);
        return;
    }
    case ANS_HISTORY: {
        b = json_object_get(f, "history_resp");
        if (!b) break;
        json_t *msgs = json_object_get(b, "messages");
        if (!msgs) json_object_set_new(b, "messages", msgs = json_array());
        json_object_set_new(
            b, "more", json_boolean(json_is_true(json_object_get(b, "more"))));
        /* The page before this one starts below its first message. */
        json_t *first = json_array_get(msgs, 0);
        json_int_t seq = json_integer_value(json_object_get(first, "seq"));
        if (json_is_true(json_object_get(b, "more")) && seq > 0)
            json_object_set_new(b, "next_before_seq", json_integer(seq));
        answer_json(api, conn, 200, b, NULL);
        return;
    }
    case ANS_LIST: {
        b = json_object_get(f, "conv_list_resp");
        if (!b) break;
        json_t *convs = json_object_get(b, "convs");
        json_t *out = json_pack("{s:O,s:b}", "conversations",
                                convs ? convs : json_array(), "more",
                                json_is_true(json_object_get(b, "more")));
        json_t *cur = json_object_get(b, "next_cursor");
        if (json_is_string(cur) && json_string_length(cur))
            json_object_set(out, "next_cursor", cur);
        answer_json(api, conn, 200, out, NULL);
        json_decref(out);
        return;
    }
    case ANS_OK:
        if (!json_object_get(f, "ok")) break;
        b = json_pack("{s:b}", "ok", 1);
        answer_json(api, conn, 200, b, NULL);
        json_decref(b);
        return;
    case ANS_ADMIN: {
        if (json_object_get(f, "ok")) {
            b = json_pack("{s:b}", "ok", 1);
            answer_json(api, conn, 200, b, NULL);
            json_decref(b);
            return;
        }
        b = json_object_get(f, "admin_resp");
        if (!b) break;
        const char *text = json_string_value(json_object_get(b, "text"));
        json_t *doc = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
        if (!doc) doc = json_pack("{s:s}", "text", text ? text : "");
        answer_json(api, conn, 200, doc, NULL);
        json_decref(doc);
        return;
    }
    case ANS_REPORT_JSON:
    case ANS_REPORT_CSV:
        if (answer_report(api, conn, f,
                          p->kind == ANS_REPORT_CSV ? SB_REPORT_CSV
                                                    : SB_REPORT_JSON))
            return;
        break;
    case ANS_CONTACT: {
        b = json_object_get(f, "contact_resp");
        if (!b) break;
        json_t *out = json_pack("{s:O,s:O}", "contact",
                                json_object_get(b, "contact")
                                    ? json_object_get(b, "contact")
                                    : json_object(),
                                "conversations",
                                json_object_get(b, "conversations")
                                    ? json_object_get(b, "conversations")
                                    : json_array());
        answer_json(api, conn, 200, out, NULL);
        json_decref(out);
        return;
    }
    case ANS_IDENTIFY:
        if (answer_identify(api, p, f)) return;
        break;
    case ANS_THEN:
        break;
    }
    answer_error(api, conn, 500, "internal", "unexpected answer");
}

/* The notes conversation notes_id is open: p's next frame goes on the
 * same session, answered as p->then_kind. */
static void then_run(sb_api *api, pend *p, json_int_t notes_id)
{
    json_t *body = p->then;
    p->then = NULL;
    json_object_set_new(body, "conv_id", json_integer(notes_id));
    p->kind = p->then_kind;
    p->rid = ++api->next_rid ? api->next_rid : ++api->next_rid;
    feed(api, p, p->then_name, body, api->now_ms);
}

bool sb_api_frame(sb_api *api, uint64_t id, const uint8_t *p, size_t n)
{
    pend *pd = sb_map_get(&api->by_sess, id);
    if (!pd) return false;
    if (pd->done) return true;
    json_t *f = json_loadb((const char *)p, n, 0, NULL);
    if (!f) return true;
    /* Frames that answer nothing of ours (rid 0) are not the answer. */
    json_int_t rid = json_integer_value(json_object_get(f, "rid"));
    if ((uint32_t)rid == pd->rid) {
        json_t *conv = json_object_get(json_object_get(f, "open_resp"), "conv");
        json_t *id = json_object_get(conv, "conv_id");
        if (pd->kind == ANS_THEN && pd->conn && json_is_integer(id)) {
            then_run(api, pd, json_integer_value(id));
        } else {
            if (pd->conn) answer_frame(api, pd, f);
            pend_finish(api, pd);
        }
    }
    json_decref(f);
    return true;
}

/* What a request's pending entry starts with beyond its frame: a second
 * frame (ANS_THEN) and whom an identity's token is for. */
typedef struct pend_opts {
    json_t *then; /* taken */
    const char *then_name;
    answer_kind then_kind;
    bool none_empty;
    const char *user, *locale;
} pend_opts;

/* Opens a session for rq as user (role) and feeds it frame (taken), with
 * o (NULL: none): its answer comes back through sb_api_frame. */
static void run_frame_o(api_req *rq, const char *user, Sbp__Role role,
                        answer_kind kind, const char *name, json_t *body,
                        const pend_opts *o)
{
    sb_api *api = rq->api;
    json_t *then = o ? o->then : NULL;
    if (api->n_pending >= SB_API_PENDING_MAX) {
        json_decref(body);
        json_decref(then);
        answer_error(api, rq->conn, 503, "unavailable",
                     "too many requests in flight; retry later");
        return;
    }
    pend *p = calloc(1, sizeof *p);
    if (!p) {
        json_decref(body);
        json_decref(then);
        answer_error(api, rq->conn, 500, "internal", "out of memory");
        return;
    }
    p->conn = rq->conn;
    p->sess = api->io.new_id(api->io.ud);
    p->rid = ++api->next_rid ? api->next_rid : ++api->next_rid;
    p->kind = kind;
    p->deadline_ms = rq->now_ms + SB_API_DEADLINE_MS;
    p->now_ms = rq->now_ms;
    if (o) {
        p->then = then;
        p->then_name = o->then_name;
        p->then_kind = o->then_kind;
        p->none_empty = o->none_empty;
        snprintf(p->user, sizeof p->user, "%s", o->user ? o->user : "");
        snprintf(p->locale, sizeof p->locale, "%s", o->locale ? o->locale : "");
    }
    int rc = sb_gw_api_open(api->gw, p->sess, user, role, rq->who.locale,
                            rq->now_ms);
    if (rc) {
        json_decref(p->then);
        free(p);
        json_decref(body);
        answer_rc(api, rq->conn, rc, NULL);
        return;
    }
    if (sb_map_put(&api->by_sess, p->sess, p) != 0 ||
        sb_map_put(&api->by_conn, p->conn, p) != 0) {
        sb_map_del(&api->by_sess, p->sess);
        sb_gw_conn_closed(api->gw, p->sess);
        json_decref(p->then);
        free(p);
        json_decref(body);
        answer_error(api, rq->conn, 500, "internal", "out of memory");
        return;
    }
    p->next = api->all;
    api->all = p;
    api->n_pending++;
    feed(api, p, name, body, rq->now_ms);
}

static void run_frame(api_req *rq, const char *user, Sbp__Role role,
                      answer_kind kind, const char *name, json_t *body)
{
    run_frame_o(rq, user, role, kind, name, body, NULL);
}

/* Feeds p's session a frame name with body (taken) and p's rid. */
static void feed(sb_api *api, pend *p, const char *name, json_t *body,
                 int64_t now_ms)
{
    json_t *frame =
        json_pack("{s:I,s:o}", "rid", (json_int_t)p->rid, name, body);
    char *text = frame ? json_dumps(frame, JSON_COMPACT) : NULL;
    json_decref(frame);
    if (!text) {
        answer_error(api, p->conn, 500, "internal", "out of memory");
        pend_finish(api, p);
        return;
    }
    sb_gw_conn_frame(api->gw, p->sess, (const uint8_t *)text, strlen(text),
                     now_ms);
    free(text);
}

/* ---- request parsing ------------------------------------------------------
 */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes n bytes of s into out (cap bytes); -1 if malformed or
 * too long, or if it decodes to a NUL. */
static int url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = h * 16 + l;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == 0 || w + 1 >= cap) return -1;
        out[w++] = (char)c;
    }
    out[w] = '\0';
    return 0;
}

/* Splits the target into path segments and query parameters. */
static int parse_target(api_req *rq, const char *target)
{
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    size_t i = 0;
    while (i < plen) {
        while (i < plen && target[i] == '/')
            i++;
        if (i == plen) break;
        size_t j = i;
        while (j < plen && target[j] != '/')
            j++;
        if (rq->n_seg == PATH_SEGS_MAX ||
            url_decode(target + i, j - i, rq->seg[rq->n_seg], SEG_BYTES_MAX) !=
                0)
            return -1;
        rq->n_seg++;
        i = j;
    }
    if (!q) return 0;
    const char *p = q + 1;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (len && eq) {
            if (rq->n_params == PARAMS_MAX ||
                url_decode(p, (size_t)(eq - p), rq->pkey[rq->n_params],
                           sizeof rq->pkey[0]) != 0 ||
                url_decode(eq + 1, len - (size_t)(eq - p) - 1,
                           rq->pval[rq->n_params], sizeof rq->pval[0]) != 0)
                return -1;
            rq->n_params++;
        }
        p += len;
        if (*p == '&') p++;
    }
    return 0;
}

static const char *param(const api_req *rq, const char *key)
{
    for (size_t i = 0; i < rq->n_params; i++)
        if (strcmp(rq->pkey[i], key) == 0) return rq->pval[i];
    return NULL;
}

/* A decimal of 1..max; false if s is not one. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || strlen(s) > 20) return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (v > max) return false;
    *out = v;
    return true;
}

/* A page size: the parameter, or def; false when out of 1..max. */
static bool page_limit(const api_req *rq, uint64_t def, uint64_t *out)
{
    const char *s = param(rq, "limit");
    if (!s) {
        *out = def;
        return true;
    }
    return parse_u64(s, SB_API_PAGE_MAX, out) && *out >= 1;
}

static bool conv_id_of(api_req *rq, uint64_t *id)
{
    if (parse_u64(rq->seg[3], INT64_MAX, id) && *id > 0) return true;
    answer_error(rq->api, rq->conn, 400, "invalid",
                 "the conversation id is a positive integer");
    return false;
}

/* A 16-byte client_msg_id from 32 hex digits or a UUID (dashes allowed). */
static bool client_id_parse(const char *s, uint8_t out[16])
{
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '-') continue;
        int h = hexval(*p);
        if (h < 0 || n == 32) return false;
        if (n % 2 == 0)
            out[n / 2] = (uint8_t)(h << 4);
        else
            out[n / 2] |= (uint8_t)h;
        n++;
    }
    return n == 32;
}

/* A string member of the body, or NULL when absent; *bad when present
 * and not a string. */
static const char *body_str(const api_req *rq, const char *key, bool *bad)
{
    json_t *v = rq->body ? json_object_get(rq->body, key) : NULL;
    if (v && !json_is_string(v)) *bad = true;
    return v ? json_string_value(v) : NULL;
}

/* ---- handlers -------------------------------------------------------------
 */

/* The identity frames run under: admins and integrations act as admins. */
static const char *actor(const api_req *rq)
{
    return rq->who.sub;
}

static void h_openapi(api_req *rq)
{
    size_t n;
    const char *doc = sb_api_openapi(&n);
    rq->api->io.answer(rq->api->io.ud, rq->conn, 200, "application/json", NULL,
                       doc, n);
}

static void h_conv_list(api_req *rq)
{
    uint64_t limit;
    if (!page_limit(rq, 50, &limit)) {
        answer_error(rq->api, rq->conn, 400, "invalid", "limit is 1..200");
        return;
    }
    json_t *b = json_pack("{s:I}", "limit", (json_int_t)limit);
    const char *cursor = param(rq, "cursor"), *tag = param(rq, "tag"),
               *state = param(rq, "state");
    if (cursor) json_object_set_new(b, "cursor", json_string(cursor));
    if (tag) json_object_set_new(b, "tag", json_string(tag));
    if (state) {
        static const char *const STATES[] = {"open", "bot", "queued",
                                             "assigned", "closed"};
        int k = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(state, STATES[i]) == 0) k = i + 1;
        if (k < 0) {
            json_decref(b);
            answer_error(rq->api, rq->conn, 400, "invalid",
                         "state is open, bot, queued, assigned or closed");
            return;
        }
        json_object_set_new(b, "state", json_integer(k));
    }
    run_frame(rq, actor(rq), SBP__ROLE__ROLE_ADMIN, ANS_LIST, "conv_list", b);
}

static void h_history(api_req *rq)
{
    uint64_t id, limit, before = 0;
    if (!conv_id_of(rq, &id)) return;
    const char *bs = param(rq, "before_seq");
    if (!page_limit(rq, 50, &limit) ||
        (bs && !parse_u64(bs, INT64_MAX, &before))) {
        answer_error(rq->api, rq->conn, 400, "invalid",
                     "limit is 1..200, before_seq a seq");
        return;
    }
    json_t *b =
        json_pack("{s:I,s:I,s:I}", "conv_id", (json_int_t)id, "before_seq",
                  (json_int_t)before, "limit", (json_int_t)limit);
    run_frame(rq, actor(rq), SBP__ROLE__ROLE_ADMIN, ANS_HISTORY, "history", b);
}

static void h_send(api_req *rq)
{
    uint64_t id;
    if (!conv_id_of(rq, &id)) return;
    bool bad = false;
    const char *cid = body_str(rq, "client_msg_id", &bad);
    const char *text = body_str(rq, "body", &bad);
    const char *type = body_str(rq, "type", &bad);
    json_t *as = json_object_get(rq->body, "as");
    uint8_t raw[16];
    if (bad || !cid || !client_id_parse(cid, raw) || !text) {
        answer_error(rq->api, rq->conn, 400, "invalid",
                     "want client_msg_id (32 hex digits or a UUID) and "
                     "body (a string)");
        return;
    }
    const char *user = actor(rq);
    Sbp__Role role = SBP__ROLE__ROLE_ADMIN;
    if (as) {
        const char *u = json_string_value(json_object_get(as, "user"));
        const char *r = json_string_value(json_object_get(as, "role"));
        if (!json_is_object(as) || !u || !r ||
            (strcmp(r, "agent") != 0 && strcmp(r, "bot") != 0)) {
            answer_error(rq->api, rq->conn, 400, "invalid",
                         "as is {\"user\": ID, \"role\": \"agent\"|\"bot\"}");
            return;
        }
        user = u;
        role = sb_role_from_name(r);
    }
    char b64[32];
    sb_b64_encode(raw, sizeof raw, b64, 0);
    json_t *b = json_pack("{s:s,s:I,s:s,s:s}", "client_msg_id", b64, "conv_id",
                          (json_int_t)id, "body", text, "type",
                          type ? type : "MSG_TEXT");
    json_t *qr = json_object_get(rq->body, "quick_replies");
    if (qr) json_object_set(b, "quick_replies", qr);
    json_t *quote = json_object_get(rq->body, "quote_seq");
    if (quote) json_object_set(b, "quote_seq", quote);
    run_frame(rq, user, role, ANS_SEND, "send", b);
}

static void h_close(api_req *rq)
{
    uint64_t id;
    if (!conv_id_of(rq, &id)) return;
    run_frame(rq, actor(rq), SBP__ROLE__ROLE_ADMIN, ANS_OK, "close",
              json_pack("{s:I}", "conv_id", (json_int_t)id));
}

static void h_transfer(api_req *rq)
{
    uint64_t id;
    if (!conv_id_of(rq, &id)) return;
    bool bad = false;
    const char *agent = body_str(rq, "to_agent", &bad);
    const char *group = body_str(rq, "to_group", &bad);
    if (bad || (!agent && !group)) {
        answer_error(rq->api, rq->conn, 400, "invalid",
                     "want to_agent or to_group (strings)");
        return;
    }
    json_t *b = json_pack("{s:I}", "conv_id", (json_int_t)id);
    if (agent) json_object_set_new(b, "to_agent", json_string(agent));
    if (group) json_object_set_new(b, "to_group", json_string(group));
    run_frame(rq, actor(rq), SBP__ROLE__ROLE_ADMIN, ANS_OK, "transfer", b);
}

/* A JSON array of strings, or absent; false otherwise. */
static bool str_array(const json_t *v)
{
    if (!v) return true;
    if (!json_is_array(v)) return false;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (!json_is_string(e)) return false;
    return true;
}

static void h_tag(api_req *rq)
{
    uint64_t id;
    if (!conv_id_of(rq, &id)) return;
    json_t *add = json_object_get(rq->body, "add"),
           *rm = json_object_get(rq->body, "remove"),
           *seq = json_object_get(rq->body, "seq");
    if (!str_array(add) || !str_array(rm) || (!add && !rm) ||
        (seq && (!json_is_integer(seq) || json_integer_value(seq) < 0))) {
        answer_error(rq->api, rq->conn, 400, "invalid",
                     "want add and/or remove (arrays of strings) and an "
                     "optional seq");
        return;
    }
    json_t *b = json_pack("{s:I}", "conv_id", (json_int_t)id);
    if (add) json_object_set(b, "add", add);
    if (rm) json_object_set(b, "remove", rm);
    if (seq) json_object_set(b, "seq", seq);
    run_frame(rq, actor(rq), SBP__ROLE__ROLE_ADMIN, ANS_OK, "tag", b);
}

/* An admin op with body (a JSON document, taken; NULL: "") through the
 * ADMIN frame. */
static void admin_op(api_req *rq, const char *op, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    json_t *b = json_pack("{s:s,s:s}", "op", op, "body", text ? text : "");
    free(text);
    run_frame(rq, actor(rq), SBP__ROLE__ROLE_ADMIN, ANS_ADMIN, "admin", b);
}

static void h_desk_get(api_req *rq)
{
    admin_op(rq, "desk-show", NULL);
}

static void h_desk_put(api_req *rq)
{
    if (!rq->body) {
        answer_error(rq->api, rq->conn, 400, "invalid",
                     "want the desk document (JSON) as the body");
        return;
    }
    admin_op(rq, "desk-set", json_incref(rq->body));
}

static void h_user_export(api_req *rq)
{
    admin_op(rq, "user-export", json_pack("{s:s}", "user", rq->seg[3]));
}

static void h_user_erase(api_req *rq)
{
    admin_op(rq, "user-erase", json_pack("{s:s}", "user", rq->seg[3]));
}

static void h_webhooks_get(api_req *rq)
{
    admin_op(rq, "webhooks-show", NULL);
}

static void h_webhooks_put(api_req *rq)
{
    if (!rq->body) {
        answer_error(rq->api, rq->conn, 400, "invalid",
                     "want the webhook configuration (JSON) as the body");
        return;
    }
    admin_op(rq, "webhooks-set", json_incref(rq->body));
}

static void h_webhooks_failed(api_req *rq)
{
    uint64_t limit;
    if (!page_limit(rq, 100, &limit)) {
        answer_error(rq->api, rq->conn, 400, "invalid", "limit is 1..200");
        return;
    }
    admin_op(rq, "webhooks-failed",
             json_pack("{s:I}", "limit", (json_int_t)limit));
}

static void h_webhooks_replay(api_req *rq)
{
    admin_op(rq, "webhooks-replay",
             rq->body ? json_incref(rq->body) : json_object());
}

/* A report (docs/protocol.md#reports): the REPORT frame of the query's
 * from, to, tz, by (comma-separated keys), desk, group and agent, its
 * answer rendered as JSON (the default) or CSV (format=csv). */
static void h_reports(api_req *rq)
{
    static const char *const FIELDS[] = {"from", "to",    "tz",
                                         "desk", "group", "agent"};
    const char *format = param(rq, "format");
    sb_report_format fmt = SB_REPORT_JSON;
    if ((format && sb_report_format_parse(format, &fmt) != 0) ||
        fmt == SB_REPORT_TABLE || !param(rq, "from")) {
        answer_error(rq->api, rq->conn, 400, "invalid",
                     "from=YYYY-MM-DD is required; format is json or csv");
        return;
    }
    json_t *b = json_object();
    for (size_t i = 0; b && i < sizeof FIELDS / sizeof *FIELDS; i++) {
        const char *v = param(rq, FIELDS[i]);
        if (i == 1 && !v) v = param(rq, "from"); /* to: the from day */
        if (v) json_object_set_new(b, FIELDS[i], json_string(v));
    }
    const char *by = param(rq, "by");
    if (b && by && by[0]) {
        char keys[PARAM_BYTES_MAX];
        snprintf(keys, sizeof keys, "%s", by);
        char *k[4];
        size_t n = 0;
        if (sb_report_by_split(keys, k, 4, &n) != 0) {
            json_decref(b);
            answer_error(rq->api, rq->conn, 400, "invalid",
                         "by: at most desk, group, agent and day");
            return;
        }
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
            json_array_append_new(a, json_string(k[i]));
        json_object_set_new(b, "by", a);
    }
    if (!b) {
        answer_error(rq->api, rq->conn, 500, "internal", "out of memory");
        return;
    }
    run_frame(rq, actor(rq), SBP__ROLE__ROLE_ADMIN,
              fmt == SB_REPORT_CSV ? ANS_REPORT_CSV : ANS_REPORT_JSON, "report",
              b);
}

/* ---- the agent side: notes and contacts ---------------------------------
 */

/* A note's writer: the "as" agent, or the token's subject with an admin's
 * reach; false (answered) for a malformed "as". */
static bool note_writer(api_req *rq, const char **user, Sbp__Role *role)
{
    json_t *as = json_object_get(rq->body, "as");
    *user = actor(rq);
    *role = SBP__ROLE__ROLE_ADMIN;
    if (!as) return true;
    const char *u = json_string_value(json_object_get(as, "user"));
    const char *r = json_string_value(json_object_get(as, "role"));
    if (!json_is_object(as) || !u || !r || strcmp(r, "agent") != 0) {
        answer_error(rq->api, rq->conn, 400, "invalid",
                     "as is {\"user\": ID, \"role\": \"agent\"}");
        return false;
    }
    *user = u;
    *role = SBP__ROLE__ROLE_AGENT;
    return true;
}

/* The notes of a service conversation, a page as its messages are
 * (NOTES_OPEN, then HISTORY of the notes): empty when it has none. */
static void h_notes_get(api_req *rq)
{
    uint64_t id, limit, before = 0;
    if (!conv_id_of(rq, &id)) return;
    const char *bs = param(rq, "before_seq");
    if (!page_limit(rq, 50, &limit) ||
        (bs && !parse_u64(bs, INT64_MAX, &before))) {
        answer_error(rq->api, rq->conn, 400, "invalid",
                     "limit is 1..200, before_seq a seq");
        return;
    }
    pend_opts o = {.then =
                       json_pack("{s:I,s:I}", "before_seq", (json_int_t)before,
                                 "limit", (json_int_t)limit),
                   .then_name = "history",
                   .then_kind = ANS_HISTORY,
                   .none_empty = true};
    run_frame_o(rq, actor(rq), SBP__ROLE__ROLE_ADMIN, ANS_THEN, "notes_open",
                json_pack("{s:I,s:b}", "conv_id", (json_int_t)id, "create", 0),
                &o);
}

/* A note (NOTES_OPEN making the notes if needed, then SEND to them), as an
 * agent (who joins the notes) or with an admin's reach. */
static void h_notes_post(api_req *rq)
{
    uint64_t id;
    if (!conv_id_of(rq, &id)) return;
    bool bad = false;
    const char *cid = body_str(rq, "client_msg_id", &bad);
    const char *text = body_str(rq, "body", &bad);
    uint8_t raw[16];
    if (bad || !cid || !client_id_parse(cid, raw) || !text) {
        answer_error(rq->api, rq->conn, 400, "invalid",
                     "want client_msg_id (32 hex digits or a UUID) and "
                     "body (a string)");
        return;
    }
    const char *user;
    Sbp__Role role;
    if (!note_writer(rq, &user, &role)) return;
    char b64[32];
    sb_b64_encode(raw, sizeof raw, b64, 0);
    pend_opts o = {.then = json_pack("{s:s,s:s,s:s}", "client_msg_id", b64,
                                     "body", text, "type", "MSG_TEXT"),
                   .then_name = "send",
                   .then_kind = ANS_SEND};
    run_frame_o(rq, user, role, ANS_THEN, "notes_open",
                json_pack("{s:I,s:b}", "conv_id", (json_int_t)id, "create", 1),
                &o);
}

static bool user_id_of(api_req *rq, const char **id)
{
    *id = rq->seg[3];
    size_t n = strlen(*id);
    if (n >= 1 && n <= SB_ID_BYTES_MAX) return true;
    answer_error(rq->api, rq->conn, 400, "invalid",
                 "the user id is 1..64 bytes");
    return false;
}

static void h_contact_get(api_req *rq)
{
    const char *user;
    if (!user_id_of(rq, &user)) return;
    run_frame(rq, actor(rq), SBP__ROLE__ROLE_ADMIN, ANS_CONTACT, "contact_get",
              json_pack("{s:s}", "user_id", user));
}

/* The attributes of a JSON object {key: "value"} as ContactAttr objects
 * for a frame, into *out (a new array); false when it is not one. */
static bool attrs_json(const json_t *v, json_t **out)
{
    *out = json_array();
    if (!v) return *out != NULL;
    if (!json_is_object(v) || !*out) return false;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        if (!json_is_string(x)) return false;
        json_array_append_new(*out,
                              json_pack("{s:s,s:O}", "key", k, "value", x));
    }
    return true;
}

/* A change to a contact: name, email, attributes ({key: value}, "" to
 * remove one), clear (["name", "email"]). */
static void h_contact_put(api_req *rq)
{
    const char *user;
    if (!user_id_of(rq, &user)) return;
    bool bad = false;
    const char *name = body_str(rq, "name", &bad);
    const char *email = body_str(rq, "email", &bad);
    json_t *clear = json_object_get(rq->body, "clear");
    json_t *attrs = NULL;
    if (bad || !str_array(clear) ||
        !attrs_json(json_object_get(rq->body, "attributes"), &attrs)) {
        json_decref(attrs);
        answer_error(rq->api, rq->conn, 400, "invalid",
                     "want name and email (strings), attributes (an object "
                     "of strings) and clear (an array of \"name\", "
                     "\"email\")");
        return;
    }
    json_t *b = json_pack("{s:s,s:s,s:s,s:o}", "user_id", user, "name",
                          name ? name : "", "email", email ? email : "",
                          "attributes", attrs);
    if (clear) json_object_set(b, "clear", clear);
    run_frame(rq, actor(rq), SBP__ROLE__ROLE_ADMIN, ANS_CONTACT, "contact_set",
              b);
}

/* POST /api/identify, the widget's sign-in with the site's signed
 * identity (sb_identity.h): no bearer token; the user_hash is the proof.
 * The contact the page gives is stored, verified, and the answer is a
 * customer token for the user. */
static void h_identify(api_req *rq)
{
    sb_api *api = rq->api;
    bool bad = false;
    const char *desk = body_str(rq, "desk", &bad);
    const char *user = body_str(rq, "user_id", &bad);
    const char *hash = body_str(rq, "user_hash", &bad);
    const char *name = body_str(rq, "name", &bad);
    const char *email = body_str(rq, "email", &bad);
    const char *locale = body_str(rq, "locale", &bad);
    json_t *attrs = json_object_get(rq->body, "attributes");
    if (bad || !user || !user[0] || strlen(user) > SB_ID_BYTES_MAX || !hash ||
        (locale && strlen(locale) > SB_LOCALE_BYTES_MAX) ||
        (attrs && !json_is_object(attrs))) {
        answer_error(api, rq->conn, 400, "invalid",
                     "want user_id (1..64 bytes) and user_hash (strings); "
                     "desk, name, email, locale (strings) and attributes "
                     "(an object) are optional");
        return;
    }
    const sb_desk *d = sb_gw_desk(api->gw);
    const sb_desk_def *def = d ? sb_desk_get(d, desk ? desk : "") : NULL;
    if (!def || (desk && desk[0] && strcmp(def->id, desk) != 0) ||
        !def->identity_secret[0]) {
        answer_error(api, rq->conn, 403, "forbidden",
                     "this desk takes no signed identity");
        return;
    }
    if (!sb_identity_check(def->identity_secret, user, hash)) {
        answer_error(api, rq->conn, 401, "unauthorized",
                     "user_hash is not this user id's");
        return;
    }
    if (sb_desk_is_agent(d, user)) {
        answer_error(api, rq->conn, 403, "forbidden",
                     "an agent's id cannot sign in as a customer");
        return;
    }
    char key[SB_ID_BYTES_MAX + 16];
    snprintf(key, sizeof key, "identify\n%s", user);
    if (!rate_take(api, key, rq->now_ms)) {
        answer_error_h(api, rq->conn, 429, "rate_limited",
                       "too many sign-ins for this user; retry later",
                       "Retry-After: 1\r\n");
        return;
    }
    json_t *b = json_pack("{s:s}", "user", user);
    if (name) json_object_set_new(b, "name", json_string(name));
    if (email) json_object_set_new(b, "email", json_string(email));
    if (attrs) json_object_set(b, "attributes", attrs);
    char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    json_t *frame = json_pack("{s:s,s:s}", "op", "contact-identify", "body",
                              text ? text : "");
    free(text);
    pend_opts o = {.user = user, .locale = locale};
    run_frame_o(rq, "site", SBP__ROLE__ROLE_ADMIN, ANS_IDENTIFY, "admin", frame,
                &o);
}

static void h_conv_get(api_req *rq);

/* ---- the route table ------------------------------------------------------
 *
 * A pattern's segments match the path's one for one; "*" matches any one
 * segment (an id, which the handler reads from rq->seg). Each route has
 * its entry in the OpenAPI document (docs/openapi.json). */

typedef struct api_route {
    const char *method;
    const char *pattern;
    bool auth;      /* a bearer token of role admin or integration */
    bool json_body; /* a JSON object body is required */
    void (*handle)(api_req *rq);
} api_route;

static const api_route ROUTES[] = {
    {"GET", "/api/v1/openapi.json", false, false, h_openapi},
    {"GET", "/api/v1/conversations", true, false, h_conv_list},
    {"GET", "/api/v1/conversations/*", true, false, h_conv_get},
    {"GET", "/api/v1/conversations/*/messages", true, false, h_history},
    {"POST", "/api/v1/conversations/*/messages", true, true, h_send},
    {"POST", "/api/v1/conversations/*/close", true, false, h_close},
    {"POST", "/api/v1/conversations/*/transfer", true, true, h_transfer},
    {"POST", "/api/v1/conversations/*/tags", true, true, h_tag},
    {"GET", "/api/v1/desk", true, false, h_desk_get},
    {"PUT", "/api/v1/desk", true, true, h_desk_put},
    {"GET", "/api/v1/users/*/export", true, false, h_user_export},
    {"POST", "/api/v1/users/*/erase", true, false, h_user_erase},
    {"GET", "/api/v1/webhooks", true, false, h_webhooks_get},
    {"PUT", "/api/v1/webhooks", true, true, h_webhooks_put},
    {"GET", "/api/v1/webhooks/failed", true, false, h_webhooks_failed},
    {"POST", "/api/v1/webhooks/replay", true, false, h_webhooks_replay},
    {"GET", "/api/v1/reports", true, false, h_reports},
    {"GET", "/api/v1/conversations/*/notes", true, false, h_notes_get},
    {"POST", "/api/v1/conversations/*/notes", true, true, h_notes_post},
    {"GET", "/api/v1/contacts/*", true, false, h_contact_get},
    {"PUT", "/api/v1/contacts/*", true, true, h_contact_put},
    {"POST", "/api/identify", false, true, h_identify},
};

/* One conversation, with its members and routing fields: the admin op
 * "conv-get" (sb_dataops), as no frame reads one by id. */
static void h_conv_get(api_req *rq)
{
    uint64_t id;
    if (!conv_id_of(rq, &id)) return;
    admin_op(rq, "conv-get", json_pack("{s:I}", "conv_id", (json_int_t)id));
}

static bool route_matches(const api_route *rt, const api_req *rq)
{
    char pat[128];
    snprintf(pat, sizeof pat, "%s", rt->pattern);
    size_t n = 0;
    for (char *save, *t = strtok_r(pat, "/", &save); t;
         t = strtok_r(NULL, "/", &save), n++) {
        if (n == rq->n_seg) return false;
        if (strcmp(t, "*") != 0 && strcmp(t, rq->seg[n]) != 0) return false;
    }
    return n == rq->n_seg;
}

/* Takes a token from the bucket of token; false when it is empty. */
static bool rate_take(sb_api *api, const char *token, int64_t now)
{
    if (api->cfg.rate_per_s == 0) return true;
    uint64_t key = sb_map_hash_str(token);
    uint64_t cap = (uint64_t)api->cfg.rate_burst * 1000;
    bucket *b = sb_map_get(&api->buckets, key);
    if (!b) {
        if (api->buckets.len >= SB_API_BUCKETS_MAX) {
            /* Full: forget them all rather than grow without bound; every
             * token starts with a full bucket again. */
            for (size_t i = 0; i < api->buckets.cap; i++)
                free(api->buckets.slots[i].val);
            sb_map_free(&api->buckets);
        }
        if (!(b = calloc(1, sizeof *b))) return false;
        b->mtokens = cap;
        b->refill_ms = now;
        if (sb_map_put(&api->buckets, key, b) != 0) {
            free(b);
            return false;
        }
    }
    if (now > b->refill_ms) {
        uint64_t add = (uint64_t)(now - b->refill_ms) * api->cfg.rate_per_s;
        b->mtokens = add >= cap - b->mtokens ? cap : b->mtokens + add;
        b->refill_ms = now;
    }
    if (b->mtokens < 1000) return false;
    b->mtokens -= 1000;
    return true;
}

/* The bearer token: 0 and rq->who filled, or the answer given. */
static int authenticate(api_req *rq)
{
    sb_api *api = rq->api;
    const char *h = rq->http->authorization;
    static const char HDR[] = "WWW-Authenticate: Bearer\r\n";
    if (strncasecmp(h, "Bearer ", 7) != 0 || !h[7]) {
        answer_error_h(api, rq->conn, 401, "unauthorized",
                       "want Authorization: Bearer <token>", HDR);
        return -1;
    }
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    sb_token_check chk = {.now_s = rq->now_ms / 1000,
                          .skew_s = api->cfg.token_skew_s,
                          .iss = api->cfg.token_iss,
                          .aud = api->cfg.token_aud};
    int rc = sb_token_verify_ex(api->cfg.secret, api->cfg.secret_len, tok,
                                strlen(tok), &chk, &rq->who);
    if (rc) {
        answer_error_h(api, rq->conn, 401, "unauthorized", sb_strerror(rc),
                       HDR);
        return -1;
    }
    if (rq->who.role != SBP__ROLE__ROLE_ADMIN &&
        rq->who.role != SBP__ROLE__ROLE_INTEGRATION) {
        answer_error(api, rq->conn, 403, "forbidden",
                     "the REST API takes tokens of role admin or "
                     "integration");
        return -1;
    }
    if (!rate_take(api, tok, rq->now_ms)) {
        answer_error_h(api, rq->conn, 429, "rate_limited",
                       "too many requests for this token; retry later",
                       "Retry-After: 1\r\n");
        return -1;
    }
    return 0;
}

void sb_api_request(sb_api *api, uint64_t conn_id, const sb_http_req *http,
                    int64_t now_ms)
{
    api_req *rq = calloc(1, sizeof *rq);
    if (!rq) {
        answer_error(api, conn_id, 500, "internal", "out of memory");
        return;
    }
    rq->api = api;
    rq->conn = conn_id;
    rq->http = http;
    rq->now_ms = now_ms;
    api->now_ms = now_ms;
    const char *method = sb_http_req_method(http);
    const api_route *rt = NULL;
    bool other_method = false;
    if (http->too_long) {
        answer_error(api, conn_id, 431, "too_large", "a header is too long");
        goto out;
    }
    if (parse_target(rq, http->path) != 0) {
        answer_error(api, conn_id, 400, "invalid", "malformed path or query");
        goto out;
    }
    for (size_t i = 0; i < sizeof ROUTES / sizeof *ROUTES; i++) {
        if (!route_matches(&ROUTES[i], rq)) continue;
        if (strcmp(ROUTES[i].method, method) == 0) {
            rt = &ROUTES[i];
            break;
        }
        other_method = true;
    }
    if (!rt) {
        if (other_method)
            answer_error(api, conn_id, 405, "method_not_allowed",
                         "this path takes another method");
        else
            answer_error(api, conn_id, 404, "not_found", "no such endpoint");
        goto out;
    }
    if (http->body_too_large) {
        answer_error(api, conn_id, 413, "too_large", "the body is over 1 MiB");
        goto out;
    }
    if (rt->auth && authenticate(rq) != 0) goto out;
    if (http->body_len) {
        if (strncasecmp(http->content_type, "application/json", 16) != 0) {
            answer_error(api, conn_id, 415, "unsupported_media_type",
                         "the body must be application/json");
            goto out;
        }
        json_error_t err;
        rq->body = json_loadb(http->body, http->body_len, 0, &err);
        if (!json_is_object(rq->body)) {
            char msg[256];
            snprintf(msg, sizeof msg, "the body is not a JSON object: %s",
                     rq->body ? "another JSON value" : err.text);
            answer_error(api, conn_id, 400, "invalid", msg);
            goto out;
        }
    } else if (rt->json_body) {
        answer_error(api, conn_id, 400, "invalid",
                     "this endpoint takes a JSON object body");
        goto out;
    }
    rt->handle(rq);
out:
    json_decref(rq->body);
    free(rq);
}

/* ---- life -----------------------------------------------------------------
 */

int sb_api_new(const sb_api_config *c, const sb_api_io *io, sb_gw *gw,
               sb_api **out)
{
    assert(io->answer && io->new_id && gw);
    sb_api *api = calloc(1, sizeof *api);
    if (!api) return -ENOMEM;
    api->cfg = *c;
    api->io = *io;
    api->gw = gw;
    *out = api;
    return 0;
}

static void pend_drop(sb_api *api, pend *p)
{
    json_decref(p->then);
    sb_map_del(&api->by_sess, p->sess);
    if (p->conn) sb_map_del(&api->by_conn, p->conn);
    sb_gw_conn_closed(api->gw, p->sess);
    api->n_pending--;
    free(p);
}

void sb_api_flush(sb_api *api, int64_t now_ms)
{
    api->now_ms = now_ms;
    for (pend **pp = &api->all; *pp;) {
        pend *p = *pp;
        if (!p->done && now_ms > p->deadline_ms) {
            if (p->conn)
                answer_error(api, p->conn, 504, "timeout",
                             "the request took too long");
            pend_finish(api, p);
        }
        if (!p->done) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        pend_drop(api, p);
    }
}

void sb_api_conn_gone(sb_api *api, uint64_t conn_id)
{
    pend *p = sb_map_del(&api->by_conn, conn_id);
    if (p) p->conn = 0;
}

size_t sb_api_pending(const sb_api *api)
{
    return api->n_pending;
}

void sb_api_free(sb_api *api)
{
    if (!api) return;
    while (api->all) {
        pend *p = api->all;
        api->all = p->next;
        pend_drop(api, p);
    }
    for (size_t i = 0; i < api->buckets.cap; i++)
        free(api->buckets.slots[i].val);
    sb_map_free(&api->buckets);
    sb_map_free(&api->by_sess);
    sb_map_free(&api->by_conn);
    free(api);
}
