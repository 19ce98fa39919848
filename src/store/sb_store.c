/* The store's front: every sb_store_* call checks its arguments here, the
 * same for every database, then runs the backend's operation (its
 * sb_store_ops). Also the helpers the backends share: the checks of ids,
 * names and tags, the packing of a message's structured parts, the split
 * of a search query. */
#include "sb_store_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_image.h"
#include "sb_medialink.h"
#include "sb_utf8.h"

#define TEXT_BYTES_MAX SB_ID_BYTES_MAX /* desk and group names */
/* A fixed-size string field of a struct: NUL-terminated within it. */
#define FIXED_STR_OK(f) (memchr((f), '\0', sizeof(f)) != NULL)

/* ---- checks ---------------------------------------------------------------
 */

/* An id: 1..SB_ID_BYTES_MAX bytes. */
static bool id_valid(const char *id)
{
    return id && id[0] && strnlen(id, SB_ID_BYTES_MAX + 1) <= SB_ID_BYTES_MAX;
}

/* A short name that may be empty (desk, skill group): at most max bytes of
 * UTF-8; NULL counts as "". */
static bool text_valid(const char *t, size_t max)
{
    if (!t) return true;
    size_t n = strnlen(t, max + 1);
    return n <= max && sb_utf8_valid(t, n);
}

/* A tag: 1..SB_TAG_BYTES_MAX bytes of UTF-8, no control characters. */
static bool tag_valid(const char *t)
{
    if (!t) return false;
    size_t n = strnlen(t, SB_TAG_BYTES_MAX + 1);
    if (n == 0 || n > SB_TAG_BYTES_MAX || !sb_utf8_valid(t, n)) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f) return false;
    return true;
}

/* ---- shared by backends ---------------------------------------------------
 */

size_t sb__store_utf8_cut(const char *t, size_t n, size_t max)
{
    if (n <= max) return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)t[k] & 0xc0) == 0x80)
        k--;
    return k;
}

char *sb__store_strndup(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

int sb__store_extra_pack(const Sbp__Message *msg, uint8_t *buf, size_t size,
                         uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!msg->event && !msg->n_quick_replies && !msg->card && !msg->media)
        return 0;
    Sbp__Message x = SBP__MESSAGE__INIT;
    x.event = msg->event;
    x.n_quick_replies = msg->n_quick_replies;
    x.quick_replies = msg->quick_replies;
    x.card = msg->card;
    x.media = msg->media;
    size_t n = sbp__message__get_packed_size(&x);
    uint8_t *p = n <= size ? buf : malloc(n);
    if (!p) return -ENOMEM;
    sbp__message__pack(&x, p);
    *out = p;
    *len = n;
    return 0;
}

int sb__store_extra_merge(const uint8_t *p, size_t n, Sbp__Message *m)
{
    if (!p || n == 0) return 0;
    Sbp__Message *x = sbp__message__unpack(NULL, n, p);
    if (!x) return SB_E_STORE;
    m->event = x->event;
    m->n_quick_replies = x->n_quick_replies;
    m->quick_replies = x->quick_replies;
    m->card = x->card;
    m->media = x->media;
    x->event = NULL;
    x->n_quick_replies = 0;
    x->quick_replies = NULL;
    x->card = NULL;
    x->media = NULL;
    sbp__message__free_unpacked(x, NULL);
    return 0;
}

void sb__store_recall_blank(Sbp__Message *m)
{
    if (m->body != protobuf_c_empty_string) free(m->body);
    m->body = (char *)protobuf_c_empty_string;
    if (m->card) sbp__card__free_unpacked(m->card, NULL);
    if (m->media) sbp__media__free_unpacked(m->media, NULL);
    m->card = NULL;
    m->media = NULL;
}

char *sb__store_like_patterns(const sb_store_words *w, const char *pat[])
{
    size_t size = 0;
    for (size_t i = 0; i < w->n; i++)
        size += 2 * w->len[i] + 3;
    char *buf = malloc(size ? size : 1), *o = buf;
    if (!buf) return NULL;
    for (size_t i = 0; i < w->n; i++) {
        pat[i] = o;
        *o++ = '%';
        for (size_t k = 0; k < w->len[i]; k++) {
            char c = w->p[i][k];
            if (c == '%' || c == '_' || c == '\\') *o++ = '\\';
            *o++ = c;
        }
        *o++ = '%';
        *o++ = '\0';
    }
    return buf;
}

/* Bytes of white space at p: ASCII, or U+3000 (the ideographic space CJK
 * input methods type). */
static size_t space_at(const char *p, size_t n)
{
    unsigned char c = (unsigned char)p[0];
    if (c == ' ' || (c >= '\t' && c <= '\r')) return 1;
    if (n >= 3 && c == 0xe3 && (unsigned char)p[1] == 0x80 &&
        (unsigned char)p[2] == 0x80)
        return 3;
    return 0;
}

/* The words of a query: at most SB_STORE_SEARCH_WORDS_MAX, split at white
 * space. SB_E_INVALID for none or for text that is not UTF-8,
 * SB_E_TOO_LARGE for too long a query or too many words. */
static int words_split(const char *q, sb_store_words *w)
{
    size_t len = strnlen(q, SB_QUERY_BYTES_MAX + 1);
    if (len > SB_QUERY_BYTES_MAX) return SB_E_TOO_LARGE;
    if (!sb_utf8_valid(q, len)) return SB_E_INVALID;
    w->n = w->n_indexed = 0;
    size_t i = 0;
    while (i < len) {
        size_t sp = space_at(q + i, len - i);
        if (sp) {
            i += sp;
            continue;
        }
        size_t start = i, chars = 0;
        while (i < len && !space_at(q + i, len - i)) {
            chars++;
            i++;
            while (i < len && ((unsigned char)q[i] & 0xc0) == 0x80)
                i++;
        }
        if (w->n == SB_STORE_SEARCH_WORDS_MAX) return SB_E_TOO_LARGE;
        w->p[w->n] = q + start;
        w->len[w->n] = i - start;
        w->indexed[w->n] = chars >= SB_STORE_TRIGRAM_CHARS;
        w->n_indexed += w->indexed[w->n];
        w->n++;
    }
    return w->n ? 0 : SB_E_INVALID;
}

/* A conv_list cursor: "" or "<updated_ts>:<conv_id>" of the last entry of
 * the page before (sb_store_conv_list makes them). */
static int list_cursor_parse(const char *c, sb_store_list_after *a)
{
    a->set = false;
    if (!c || !c[0]) return 0;
    if (strnlen(c, SB_LIST_CURSOR_BYTES_MAX + 1) > SB_LIST_CURSOR_BYTES_MAX)
        return SB_E_INVALID;
    char *end;
    errno = 0;
    long long t = strtoll(c, &end, 10);
    if (end == c || *end != ':' || errno) return SB_E_INVALID;
    const char *p = end + 1;
    if (*p < '0' || *p > '9') return SB_E_INVALID;
    unsigned long long v = strtoull(p, &end, 10);
    if (*end || errno) return SB_E_INVALID;
    a->ts = t;
    a->conv_id = v;
    a->set = true;
    return 0;
}

static int cursor_cmp(const void *a, const void *b)
{
    const sb_store_cursor *x = a, *y = b;
    return x->conv_id < y->conv_id ? -1 : x->conv_id > y->conv_id;
}

const sb_store_cursor *sb__store_cursor_find(const sb_store_cursor *cur,
                                             size_t n, uint64_t conv_id)
{
    sb_store_cursor key = {conv_id, 0};
    return n ? bsearch(&key, cur, n, sizeof *cur, cursor_cmp) : NULL;
}

/* Sorts the cursors by conv_id; of repeated conversations the highest seq
 * counts. *out is malloc'd (NULL for none). */
static int cursors_sort(Sbp__Cursor *const *cursors, size_t n,
                        sb_store_cursor **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (n == 0) return 0;
    sb_store_cursor *a = malloc(n * sizeof *a);
    if (!a) return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cursors[i]) continue;
        a[k].conv_id = cursors[i]->conv_id;
        a[k++].seq = cursors[i]->seq;
    }
    qsort(a, k, sizeof *a, cursor_cmp);
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        if (w > 0 && a[w - 1].conv_id == a[i].conv_id) {
            if (a[i].seq > a[w - 1].seq) a[w - 1].seq = a[i].seq;
        } else {
            a[w++] = a[i];
        }
    }
    *out = a;
    *n_out = w;
    return 0;
}

bool sb_store_rc_is_request_level(int rc)
{
    return rc == SB_E_NOT_FOUND || rc == SB_E_INVALID || rc == SB_E_FORBIDDEN ||
           rc == SB_E_TOO_LARGE || rc == SB_E_STATE || rc == SB_E_ALREADY;
}

/* ---- open, close, transactions ----------------------------------------- */

bool sb_store_is_url(const char *where)
{
    return strncmp(where, "postgresql://", 13) == 0 ||
           strncmp(where, "postgres://", 11) == 0;
}

void sb_store_describe(const char *where, char *out, size_t cap)
{
    const char *scheme = strstr(where, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon =
        at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    if (!sb_store_is_url(where) || !colon) {
        snprintf(out, cap, "%s", where);
        return;
    }
    /* scheme://user:password@rest -> scheme://user:***@rest */
    snprintf(out, cap, "%.*s:***%s", (int)(colon - where), where, at);
}

int sb_store_open(const char *where, sb_durability d, sb_store **out)
{
    assert(where && out);
    assert(d == SB_DURABILITY_FSYNC || d == SB_DURABILITY_OS);
    *out = NULL;
    if (sb_store_is_url(where)) return sb__pg_open(where, d, out);
    return sb__sqlite_open(where, d, out);
}

void sb_store_close(sb_store *s)
{
    if (s) s->ops->close(s);
}

int sb_store_ping(sb_store *s)
{
    assert(s && !s->ops->in_write(s));
    return s->ops->ping ? s->ops->ping(s) : -ENOTSUP;
}

int sb_store_begin(sb_store *s)
{
    assert(s && !s->ops->in_write(s)); /* no nested transactions */
    return s->ops->begin(s);
}

int sb_store_commit(sb_store *s)
{
    assert(s && s->ops->in_write(s));
    return s->ops->commit(s);
}

void sb_store_rollback(sb_store *s)
{
    assert(s);
    s->ops->rollback(s);
}

int sb__store_savepoint(sb_store *s)
{
    assert(s && s->ops->in_write(s));
    return s->ops->savepoint(s);
}

int sb__store_savepoint_end(sb_store *s, bool keep)
{
    assert(s && s->ops->in_write(s));
    return s->ops->savepoint_end(s, keep);
}

/* ---- maintenance ------------------------------------------------------- */

int sb_store_cache(sb_store *s, uint32_t kib)
{
    assert(s && kib > 0);
    return s->ops->cache ? s->ops->cache(s, kib) : 0;
}

int sb_store_wal_watch(sb_store *s, void (*hook)(void *ud, int frames),
                       void *ud)
{
    assert(s && hook);
    return s->ops->wal_watch ? s->ops->wal_watch(s, hook, ud) : -ENOTSUP;
}

int sb_store_checkpoint(sb_store *s, int *log, int *done)
{
    assert(s && log && done);
    return s->ops->checkpoint ? s->ops->checkpoint(s, log, done) : -ENOTSUP;
}

int sb_store_db_sync(sb_store *s)
{
    assert(s);
    return s->ops->db_sync ? s->ops->db_sync(s) : -ENOTSUP;
}

int sb__store_max_pages(sb_store *s, uint32_t pages)
{
    assert(s);
    return s->ops->max_pages ? s->ops->max_pages(s, pages) : -ENOTSUP;
}

int sb_store_index(sb_store *s, uint32_t max_msgs, uint64_t *left)
{
    assert(s);
    assert(max_msgs == 0 || s->ops->in_write(s));
    return s->ops->index(s, max_msgs, left);
}

/* ---- writes ------------------------------------------------------------ */

/* What a message to store must have: a sender, a 16-byte client_msg_id
 * or none, whole quick replies. */
static int append_check(const Sbp__Message *msg)
{
    if (!msg || !id_valid(msg->sender)) return SB_E_INVALID;
    if (msg->client_msg_id.len != 0 &&
        (msg->client_msg_id.len != SB_CLIENT_MSG_ID_BYTES ||
         !msg->client_msg_id.data))
        return SB_E_INVALID;
    if (msg->n_quick_replies && !msg->quick_replies) return SB_E_INVALID;
    for (size_t i = 0; i < msg->n_quick_replies; i++)
        if (!msg->quick_replies[i]) return SB_E_INVALID;
    return 0;
}

/* A copy of t for a field of msg's media, replacing what it held. */
static int media_field_set(char **field, const char *t)
{
    char *d = strdup(t);
    if (!d) return -ENOMEM;
    if (*field && *field != protobuf_c_empty_string) free(*field);
    *field = d;
    return 0;
}

/* A message that names an upload (msg->media->id): the upload must be
 * its sender's, for its conversation, and an image for MSG_IMAGE; its
 * media then says what the store has (the client's word counts for
 * nothing). An unknown upload and another's answer the same. */
static int media_attach(sb_store *s, Sbp__Message *msg)
{
    Sbp__Media *md = msg->media;
    if (!md || !md->id || !md->id[0]) return 0;
    if (!sb_media_id_valid(md->id)) return SB_E_INVALID;
    sb_store_media m;
    int rc = s->ops->media_find(s, md->id, &m);
    if (rc) return rc;
    if (m.conv_id != msg->conv_id || strcmp(m.owner, msg->sender) != 0)
        return SB_E_NOT_FOUND;
    if (msg->type == SBP__MSG_TYPE__MSG_IMAGE &&
        sb_image_from_mime(m.mime) == SB_IMAGE_NONE)
        return SB_E_INVALID;
    char url[8 + SB_MEDIA_ID_LEN];
    snprintf(url, sizeof url, "/media/%s", m.id);
    if ((rc = media_field_set(&md->url, url)) ||
        (rc = media_field_set(&md->name, m.name)) ||
        (rc = media_field_set(&md->mime, m.mime)))
        return rc;
    md->size = m.size;
    md->width = m.width;
    md->height = m.height;
    return 0;
}

/* After msg was stored (not a duplicate): its upload, if it names one,
 * is carried by it. */
static int media_carried(sb_store *s, const Sbp__Message *msg)
{
    const Sbp__Media *md = msg->media;
    if (!md || !md->id || !md->id[0]) return 0;
    return s->ops->media_ref(s, md->id, msg->conv_id, msg->seq);
}

int sb_store_append(sb_store *s, Sbp__Message *msg, int64_t now_ms,
                    bool *duplicate)
{
    assert(s && msg && duplicate);
    assert(s->ops->in_write(s));
    *duplicate = false;
    int rc = append_check(msg);
    if (rc == 0) rc = media_attach(s, msg);
    if (rc == 0) rc = s->ops->append(s, msg, now_ms, duplicate);
    if (rc == 0 && !*duplicate) rc = media_carried(s, msg);
    return rc;
}

int sb_store_append_many(sb_store *s, sb_store_append_item *items, size_t n)
{
    assert(s && (items || n == 0));
    assert(s->ops->in_write(s));
    /* The backend stores only the messages that pass the checks; the
     * others keep their refusal. */
    for (size_t i = 0; i < n; i++) {
        items[i].duplicate = false;
        items[i].rc = append_check(items[i].msg);
        if (items[i].rc == 0) items[i].rc = media_attach(s, items[i].msg);
        if (items[i].rc && !sb_store_rc_is_request_level(items[i].rc))
            return items[i].rc;
    }
    int rc = 0;
    if (s->ops->append_many) {
        rc = s->ops->append_many(s, items, n);
    } else {
        for (size_t i = 0; i < n && rc == 0; i++) {
            sb_store_append_item *a = &items[i];
            if (a->rc) continue;
            a->rc = s->ops->append(s, a->msg, a->now_ms, &a->duplicate);
            if (a->rc && !sb_store_rc_is_request_level(a->rc)) rc = a->rc;
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        if (items[i].rc == 0 && !items[i].duplicate)
            rc = media_carried(s, items[i].msg);
    return rc;
}

int sb_store_lock_convs(sb_store *s, const uint64_t *ids, size_t n)
{
    assert(s && (ids || n == 0));
    assert(s->ops->in_write(s));
    for (size_t i = 1; i < n; i++)
        assert(ids[i - 1] < ids[i]);
    return s->ops->lock_convs && n ? s->ops->lock_convs(s, ids, n) : 0;
}

int sb_store_user_upsert(sb_store *s, const char *user_id, Sbp__Role role,
                         const char *locale, int64_t now_ms)
{
    assert(s && s->ops->in_write(s));
    if (!id_valid(user_id)) return SB_E_INVALID;
    return s->ops->user_upsert(s, user_id, role, locale ? locale : "", now_ms);
}

/* Everything is checked before the backend writes, so that a refused
 * request leaves the transaction as it found it. */
int sb_store_conv_create(sb_store *s, Sbp__ConvKind kind, const char *title,
                         const char *const *user_ids, const Sbp__Role *roles,
                         size_t n, int64_t now_ms, Sbp__Conversation **out)
{
    assert(s && out);
    assert(n == 0 || (user_ids && roles));
    assert(s->ops->in_write(s));
    *out = NULL;
    if (kind != SBP__CONV_KIND__CONV_DIRECT &&
        kind != SBP__CONV_KIND__CONV_SERVICE)
        return SB_E_INVALID;
    if (n == 0 || n > SB_MEMBERS_MAX) return SB_E_INVALID;
    Sbp__Role role[SB_MEMBERS_MAX];
    size_t customers = 0;
    const char *customer = "";
    for (size_t i = 0; i < n; i++) {
        if (!id_valid(user_ids[i])) return SB_E_INVALID;
        if ((int)roles[i] < (int)SBP__ROLE__ROLE_UNSPECIFIED ||
            (int)roles[i] > (int)SBP__ROLE__ROLE_ADMIN)
            return SB_E_INVALID;
        for (size_t j = 0; j < i; j++)
            if (strcmp(user_ids[i], user_ids[j]) == 0) return SB_E_INVALID;
        role[i] = roles[i];
        /* A member is a user the server has met: one never seen could
         * later connect with any role (a customer, reading another
         * customer's conversation). */
        if (role[i] == SBP__ROLE__ROLE_UNSPECIFIED) {
            int rc = s->ops->user_role(s, user_ids[i], &role[i]);
            if (rc) return rc;
            if (role[i] == SBP__ROLE__ROLE_UNSPECIFIED) return SB_E_NOT_FOUND;
        }
        if (role[i] == SBP__ROLE__ROLE_CUSTOMER) {
            customers++;
            customer = user_ids[i];
        }
    }
    /* A customer talks to the service side, never to another customer. */
    if (customers > 1) return SB_E_FORBIDDEN;
    return s->ops->conv_create(
        s, kind, title ? title : "", user_ids, role, n,
        kind == SBP__CONV_KIND__CONV_SERVICE ? customer : "", now_ms, out);
}

int sb_store_cursor_ack(sb_store *s, const char *user_id, const char *device_id,
                        uint64_t conv_id, uint64_t seq)
{
    assert(s && s->ops->in_write(s));
    if (!id_valid(user_id) || !id_valid(device_id)) return SB_E_INVALID;
    return s->ops->cursor_ack(s, user_id, device_id, conv_id, seq);
}

int sb_store_cursor_ack_many(sb_store *s, sb_store_cursor_item *items, size_t n)
{
    assert(s && (items || n == 0));
    assert(s->ops->in_write(s));
    for (size_t i = 0; i < n; i++)
        items[i].rc = id_valid(items[i].user_id) && id_valid(items[i].device_id)
                          ? 0
                          : SB_E_INVALID;
    if (s->ops->cursor_ack_many) return s->ops->cursor_ack_many(s, items, n);
    for (size_t i = 0; i < n; i++) {
        sb_store_cursor_item *c = &items[i];
        if (c->rc) continue;
        c->rc =
            s->ops->cursor_ack(s, c->user_id, c->device_id, c->conv_id, c->seq);
        if (c->rc && !sb_store_rc_is_request_level(c->rc)) return c->rc;
    }
    return 0;
}

int sb_store_read_set(sb_store *s, uint64_t conv_id, const char *user_id,
                      uint64_t seq)
{
    assert(s && s->ops->in_write(s));
    if (!id_valid(user_id)) return SB_E_INVALID;
    return s->ops->read_set(s, conv_id, user_id, seq);
}

int sb_store_service_open(sb_store *s, const char *customer, const char *desk,
                          const char *group, int64_t now_ms,
                          Sbp__Conversation **out, bool *created)
{
    assert(s && out && created);
    assert(s->ops->in_write(s));
    *out = NULL;
    *created = false;
    if (!id_valid(customer) || !text_valid(desk, TEXT_BYTES_MAX) ||
        !text_valid(group, TEXT_BYTES_MAX))
        return SB_E_INVALID;
    return s->ops->service_open(s, customer, desk ? desk : "",
                                group ? group : "", now_ms, out, created);
}

int sb_store_conv_route(sb_store *s, uint64_t conv_id, Sbp__ConvState state,
                        const char *group, const char *agent, int64_t now_ms,
                        Sbp__Conversation **out)
{
    assert(s && s->ops->in_write(s));
    if (out) *out = NULL;
    if (!group) group = "";
    if (!agent) agent = "";
    if ((int)state < (int)SBP__CONV_STATE__STATE_OPEN ||
        (int)state > (int)SBP__CONV_STATE__STATE_CLOSED ||
        !text_valid(group, TEXT_BYTES_MAX) || (agent[0] && !id_valid(agent)))
        return SB_E_INVALID;
    return s->ops->conv_route(s, conv_id, state, group, agent, now_ms, out);
}

int sb_store_conv_note(sb_store *s, uint64_t conv_id, const char *from,
                       const char *note)
{
    assert(s && s->ops->in_write(s));
    if (!from) from = "";
    if (!note) note = "";
    if (strlen(note) > SB_NOTE_BYTES_MAX) return SB_E_TOO_LARGE;
    if ((from[0] && !id_valid(from)) || !text_valid(note, SB_NOTE_BYTES_MAX))
        return SB_E_INVALID;
    return s->ops->conv_note(s, conv_id, from, note);
}

int sb_store_first_response(sb_store *s, uint64_t conv_id, int64_t now_ms)
{
    assert(s && s->ops->in_write(s));
    return s->ops->first_response(s, conv_id, now_ms);
}

int sb_store_csat_ask(sb_store *s, uint64_t conv_id, int64_t now_ms,
                      bool *asked)
{
    assert(s && asked && s->ops->in_write(s));
    *asked = false;
    return s->ops->csat_ask(s, conv_id, now_ms, asked);
}

int sb_store_csat_set(sb_store *s, uint64_t conv_id, uint32_t rating,
                      const char *comment, int64_t now_ms)
{
    assert(s && s->ops->in_write(s));
    if (!comment) comment = "";
    size_t n = strnlen(comment, SB_CSAT_COMMENT_BYTES_MAX + 1);
    if (n > SB_CSAT_COMMENT_BYTES_MAX) return SB_E_TOO_LARGE;
    if (rating < 1 || rating > SB_CSAT_RATING_MAX || !sb_utf8_valid(comment, n))
        return SB_E_INVALID;
    return s->ops->csat_set(s, conv_id, rating, comment, now_ms);
}

int sb_store_report_scan(sb_store *s, int64_t from_ms, int64_t to_ms,
                         const char *desk, const char *group, const char *agent,
                         int (*each)(void *ud, const sb_store_report_row *r),
                         void *ud)
{
    assert(s && each);
    if (!desk) desk = "";
    if (!group) group = "";
    if (!agent) agent = "";
    if (from_ms > to_ms || !text_valid(desk, TEXT_BYTES_MAX) ||
        !text_valid(group, TEXT_BYTES_MAX) ||
        !text_valid(agent, SB_ID_BYTES_MAX))
        return SB_E_INVALID;
    return s->ops->report_scan(s, from_ms, to_ms, desk, group, agent, each, ud);
}

int sb_store_recall(sb_store *s, uint64_t conv_id, uint64_t seq)
{
    assert(s && s->ops->in_write(s));
    return s->ops->recall(s, conv_id, seq);
}

int sb_store_tag(sb_store *s, uint64_t conv_id, uint64_t seq, char *const *add,
                 size_t n_add, char *const *remove, size_t n_remove)
{
    assert(s);
    assert(n_add == 0 || add);
    assert(n_remove == 0 || remove);
    assert(s->ops->in_write(s));
    if (n_add > SB_TAGS_MAX || n_remove > SB_TAGS_MAX) return SB_E_TOO_LARGE;
    for (size_t i = 0; i < n_add; i++)
        if (!tag_valid(add[i])) return SB_E_INVALID;
    for (size_t i = 0; i < n_remove; i++)
        if (!tag_valid(remove[i])) return SB_E_INVALID;
    return s->ops->tag(s, conv_id, seq, add, n_add, remove, n_remove);
}

int sb_store_member_put(sb_store *s, uint64_t conv_id, const char *user_id,
                        Sbp__Role role, int64_t now_ms)
{
    assert(s && s->ops->in_write(s));
    if (!id_valid(user_id) || (int)role <= (int)SBP__ROLE__ROLE_UNSPECIFIED ||
        (int)role > (int)SBP__ROLE__ROLE_ADMIN)
        return SB_E_INVALID;
    return s->ops->member_put(s, conv_id, user_id, role, now_ms);
}

int sb_store_member_del(sb_store *s, uint64_t conv_id, const char *user_id)
{
    assert(s && s->ops->in_write(s));
    if (!id_valid(user_id)) return SB_E_INVALID;
    return s->ops->member_del(s, conv_id, user_id);
}

static bool config_key_valid(const char *key)
{
    size_t n = key ? strnlen(key, SB_STORE_CONFIG_KEY_BYTES_MAX + 1) : 0;
    return n >= 1 && n <= SB_STORE_CONFIG_KEY_BYTES_MAX &&
           sb_utf8_valid(key, n);
}

int sb_store_config_set(sb_store *s, const char *key, const char *value,
                        size_t len, int64_t now_ms)
{
    assert(s && (value || len == 0));
    assert(s->ops->in_write(s));
    if (!value) value = "";
    if (!config_key_valid(key) || memchr(value, '\0', len) ||
        !sb_utf8_valid(value, len))
        return SB_E_INVALID;
    if (len > SB_STORE_CONFIG_BYTES_MAX) return SB_E_TOO_LARGE;
    return s->ops->config_set(s, key, value, len, now_ms);
}

/* ---- reads ------------------------------------------------------------- */

int sb_store_user_role(sb_store *s, const char *user_id, Sbp__Role *role)
{
    assert(s && role);
    if (!id_valid(user_id)) return SB_E_NOT_FOUND;
    return s->ops->user_role(s, user_id, role);
}

int sb_store_conv_get(sb_store *s, uint64_t conv_id, Sbp__Conversation **out)
{
    assert(s && out);
    *out = NULL;
    return s->ops->conv_get(s, conv_id, out);
}

int sb_store_sync(sb_store *s, const char *user_id, bool all,
                  Sbp__Cursor *const *cursors, size_t n_cursors, uint32_t limit,
                  size_t bytes_max, Sbp__SyncResp **out)
{
    assert(s && out);
    assert(n_cursors == 0 || cursors);
    *out = NULL;
    if (!all && !id_valid(user_id)) return SB_E_INVALID;
    if (limit == 0 || limit > SB_STORE_PAGE_MAX) limit = SB_STORE_PAGE_MAX;
    sb_store_cursor *cur;
    size_t n_cur;
    int rc = cursors_sort(cursors, n_cursors, &cur, &n_cur);
    if (rc) return rc;
    rc = s->ops->sync(s, user_id ? user_id : "", all, cur, n_cur, limit,
                      bytes_max, out);
    free(cur);
    return rc;
}

int sb_store_history(sb_store *s, uint64_t conv_id, uint64_t before_seq,
                     uint32_t limit, Sbp__HistoryResp **out)
{
    assert(s && out);
    *out = NULL;
    if (limit == 0 || limit > SB_STORE_PAGE_MAX) limit = SB_STORE_PAGE_MAX;
    if (before_seq == 0) before_seq = UINT64_MAX;
    return s->ops->history(s, conv_id, before_seq, limit, out);
}

int sb_store_msg_get(sb_store *s, uint64_t conv_id, uint64_t seq,
                     Sbp__Message **out)
{
    assert(s && out);
    *out = NULL;
    return s->ops->msg_get(s, conv_id, seq, out);
}

int sb_store_conv_list(sb_store *s, const char *user_id, bool all,
                       Sbp__ConvState state, const char *tag,
                       char *const *queued_groups, size_t n_groups,
                       const char *cursor, uint32_t limit,
                       Sbp__ConvListResp **out)
{
    assert(s && out);
    assert(n_groups == 0 || queued_groups);
    *out = NULL;
    if (!tag) tag = "";
    if (!queued_groups || all) n_groups = 0;
    if (!all && !id_valid(user_id)) return SB_E_INVALID;
    if ((int)state < 0 || (int)state > (int)SBP__CONV_STATE__STATE_CLOSED)
        return SB_E_INVALID;
    if (tag[0] && !tag_valid(tag)) return SB_E_INVALID;
    if (n_groups > SB_STORE_LIST_GROUPS_MAX) return SB_E_INVALID;
    for (size_t i = 0; i < n_groups; i++)
        if (!queued_groups[i] || !text_valid(queued_groups[i], TEXT_BYTES_MAX))
            return SB_E_INVALID;
    sb_store_list_after after;
    int rc = list_cursor_parse(cursor, &after);
    if (rc) return rc;
    if (limit == 0 || limit > SB_STORE_PAGE_MAX) limit = SB_STORE_PAGE_MAX;
    return s->ops->conv_list(s, user_id ? user_id : "", all, state, tag,
                             queued_groups, n_groups, &after, limit, out);
}

int sb_store_search(sb_store *s, const char *user_id, bool all,
                    uint64_t conv_id, const char *query, uint32_t limit,
                    Sbp__SearchResp **out)
{
    assert(s && out);
    *out = NULL;
    if (!query || (!all && !id_valid(user_id))) return SB_E_INVALID;
    if (limit == 0 || limit > SB_STORE_PAGE_MAX) limit = SB_STORE_PAGE_MAX;
    sb_store_words w;
    int rc = words_split(query, &w);
    if (rc) return rc;
    return s->ops->search(s, user_id ? user_id : "", all, conv_id, &w, limit,
                          out);
}

int sb_store_service_convs(sb_store *s, Sbp__ConvState state,
                           Sbp__Conversation ***out, size_t *n_out)
{
    assert(s && out && n_out);
    *out = NULL;
    *n_out = 0;
    if (state != SBP__CONV_STATE__STATE_BOT &&
        state != SBP__CONV_STATE__STATE_QUEUED &&
        state != SBP__CONV_STATE__STATE_ASSIGNED)
        return SB_E_INVALID;
    return s->ops->service_convs(s, state, out, n_out);
}

int sb_store_config_get(sb_store *s, const char *key, char **out, size_t *len)
{
    assert(s && out && len);
    *out = NULL;
    *len = 0;
    if (!config_key_valid(key)) return SB_E_INVALID;
    return s->ops->config_get(s, key, out, len);
}

/* ---- webhook outbox, a user's data -----------------------------------------
 */

void sb_store_hooks_free(sb_store_hook *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++)
        free(h[i].payload);
    free(h);
}

/* An event name: 1..SB_STORE_EVENT_BYTES_MAX bytes of [a-z._]. */
static bool event_valid(const char *e)
{
    size_t n = e ? strnlen(e, SB_STORE_EVENT_BYTES_MAX + 1) : 0;
    if (n == 0 || n > SB_STORE_EVENT_BYTES_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!((e[i] >= 'a' && e[i] <= 'z') || e[i] == '.' || e[i] == '_'))
            return false;
    return true;
}

int sb_store_outbox_add(sb_store *s, const char *event, const char *endpoint,
                        const char *subject, const char *payload,
                        int64_t now_ms)
{
    assert(s && s->ops->in_write(s));
    if (!event_valid(event) || !id_valid(endpoint) || !payload ||
        (subject && subject[0] && !id_valid(subject)) ||
        !sb_utf8_valid(payload, strlen(payload)))
        return SB_E_INVALID;
    if (strlen(payload) > SB_STORE_CONFIG_BYTES_MAX) return SB_E_TOO_LARGE;
    return s->ops->outbox_add(s, event, endpoint, subject ? subject : "",
                              payload, now_ms);
}

int sb_store_outbox_claim(sb_store *s, int64_t now_ms, int64_t lease_ms,
                          uint32_t limit, sb_store_hook **out, size_t *n)
{
    assert(s && out && n && s->ops->in_write(s));
    *out = NULL;
    *n = 0;
    if (limit == 0 || limit > SB_STORE_PAGE_MAX || lease_ms <= 0)
        return SB_E_INVALID;
    return s->ops->outbox_claim(s, now_ms, lease_ms, limit, out, n);
}

int sb_store_outbox_result(sb_store *s, int64_t id, bool delivered,
                           bool give_up, uint32_t attempts, int64_t next_ts,
                           const char *error)
{
    assert(s && s->ops->in_write(s));
    if (id <= 0) return SB_E_INVALID;
    char err[SB_STORE_HOOK_ERROR_BYTES_MAX + 1];
    size_t n = error ? strlen(error) : 0;
    if (n && !sb_utf8_valid(error, n)) n = 0;
    n = sb__store_utf8_cut(error ? error : "", n,
                           SB_STORE_HOOK_ERROR_BYTES_MAX);
    memcpy(err, error ? error : "", n);
    err[n] = '\0';
    return s->ops->outbox_result(s, id, delivered, give_up, attempts, next_ts,
                                 err);
}

int sb_store_outbox_failed(sb_store *s, uint32_t limit, sb_store_hook **out,
                           size_t *n)
{
    assert(s && out && n);
    *out = NULL;
    *n = 0;
    if (limit == 0 || limit > SB_STORE_PAGE_MAX) return SB_E_INVALID;
    return s->ops->outbox_failed(s, limit, out, n);
}

int sb_store_outbox_replay(sb_store *s, int64_t id, int64_t now_ms, uint64_t *n)
{
    assert(s && n && s->ops->in_write(s));
    *n = 0;
    if (id < 0) return SB_E_INVALID;
    return s->ops->outbox_replay(s, id, now_ms, n);
}

int sb_store_user_erase(sb_store *s, const char *user_id, sb_store_erased *out)
{
    assert(s && out && s->ops->in_write(s));
    memset(out, 0, sizeof *out);
    if (!id_valid(user_id)) return SB_E_INVALID;
    return s->ops->user_erase(s, user_id, out);
}

/* ---- media ------------------------------------------------------------- */

/* A file name: 1..SB_MEDIA_NAME_BYTES_MAX bytes of UTF-8 without control
 * characters or path separators. */
static bool media_name_valid(const char *t)
{
    size_t n = strnlen(t, SB_MEDIA_NAME_BYTES_MAX + 1);
    if (n == 0 || n > SB_MEDIA_NAME_BYTES_MAX || !sb_utf8_valid(t, n))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\') return false;
    }
    return true;
}

/* A MIME type as the server writes them: "type/subtype", printable
 * ASCII, at most SB_MEDIA_MIME_BYTES_MAX bytes. */
static bool media_mime_valid(const char *t)
{
    size_t n = strnlen(t, SB_MEDIA_MIME_BYTES_MAX + 1), slash = 0;
    if (n == 0 || n > SB_MEDIA_MIME_BYTES_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        if (t[i] <= ' ' || t[i] > '~' || t[i] == ';') return false;
        slash += t[i] == '/';
    }
    return slash == 1 && t[0] != '/' && t[n - 1] != '/';
}

int sb_store_media_put(sb_store *s, const sb_store_media *m)
{
    assert(s && m && s->ops->in_write(s));
    if (!sb_media_id_valid(m->id) || !id_valid(m->owner) ||
        !FIXED_STR_OK(m->name) || !media_name_valid(m->name) ||
        !FIXED_STR_OK(m->mime) || !media_mime_valid(m->mime) ||
        m->width > SB_MEDIA_SIDE_MAX || m->height > SB_MEDIA_SIDE_MAX)
        return SB_E_INVALID;
    return s->ops->media_put(s, m);
}

int sb_store_media_get(sb_store *s, const char *id, const char *user_id,
                       bool all, sb_store_media *out)
{
    assert(s && out);
    memset(out, 0, sizeof *out);
    if (!sb_media_id_valid(id) || (!all && !id_valid(user_id)))
        return SB_E_NOT_FOUND;
    return s->ops->media_get(s, id, user_id ? user_id : "", all, out);
}

int sb_store_blob_put(sb_store *s, const uint8_t sha256[SB_SHA256_BYTES],
                      const char *path, uint64_t size)
{
    assert(s && sha256 && path && !s->ops->in_write(s));
    return s->ops->blob_put ? s->ops->blob_put(s, sha256, path, size)
                            : -ENOTSUP;
}

int sb_store_blob_gc(sb_store *s, int64_t older_than_ms, uint64_t *removed)
{
    assert(s && !s->ops->in_write(s));
    uint64_t n = 0;
    int rc = s->ops->blob_gc ? s->ops->blob_gc(s, older_than_ms, &n) : -ENOTSUP;
    if (removed) *removed = n;
    return rc;
}

int sb_store_blob_read(sb_store *s, const uint8_t sha256[SB_SHA256_BYTES],
                       uint64_t off, uint8_t *buf, size_t cap, size_t *got)
{
    assert(s && sha256 && buf && got && cap > 0);
    *got = 0;
    return s->ops->blob_read ? s->ops->blob_read(s, sha256, off, buf, cap, got)
                             : -ENOTSUP;
}
