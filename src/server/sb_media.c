/* The media service: upload and download transfers as state machines over
 * their connection, the store's requests, libuv's file requests and a
 * worker job; per-user upload buckets; the temporary folder. A transfer
 * is freed only when its connection is gone and nothing of its own is out
 * (pending counts what is: a file request, a worker job, a store request;
 * never more than one at a time). */
#include "sb_media.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_error.h"
#include "sb_log.h"
#include "sb_map.h"
#include "sb_medialink.h"
#include "sb_mediaproc.h"
#include "sb_token.h"
#include "sb_utf8.h"

/* Body bytes held in memory per upload before reading stops: the file
 * write catches up. */
#define HOLD_BYTES (1u << 20)
/* A download reads the blob in pieces of this size, and stops while the
 * connection has more than DOWNLOAD_UNSENT_MAX bytes to write. */
#define DOWNLOAD_CHUNK (256u << 10)
#define DOWNLOAD_UNSENT_MAX (1u << 20)
/* An upload answered before its body ended reads (and drops) the rest
 * for this long, so that the client gets to read the answer. */
#define LINGER_MS 2000
/* Users whose upload buckets are kept; the full ones are forgotten. */
#define USERS_MAX 100000
#define HOUR_MS 3600000
#define LINE_BYTES 256

typedef struct ustate {
    char id[SB_ID_BYTES_MAX + 1];
    uint64_t hash;
    uint64_t mtokens; /* uploads left, in thousandths */
    int64_t refill_ms;
    uint32_t active;
    struct ustate *next; /* the hash chain */
} ustate;

struct sb_media {
    sb_media_config cfg;
    char *tmp_dir;
    uint8_t secret[256];
    char iss[SB_TOKEN_ISS_BYTES_MAX + 1], aud[SB_TOKEN_ISS_BYTES_MAX + 1];
    sb_mediaproc *proc;
    sb_map users; /* hash(user id) -> ustate chain */
    size_t n_users;
    sb_media_xfer *all;
    size_t n_xfers;
    int64_t now_ms; /* the last time an entry point was given */
    int64_t gc_ms;  /* the last sweep of unnamed blobs asked */
    bool gc_running;
    bool closing, draining;
    sb_media_stats stats;
};

typedef enum xstate {
    XS_CHECK,   /* the store looks up the conversation or the record */
    XS_OPEN,    /* the upload's file is being made */
    XS_BODY,    /* the body arrives and is written */
    XS_PROCESS, /* the worker pass */
    XS_BLOB,    /* the bytes go into the store */
    XS_RECORD,  /* the record goes into the store */
    XS_SEND,    /* a download's bytes go out */
    XS_LINGER,  /* answered before the body ended: the rest is dropped */
    XS_END,     /* answered; the connection closes */
} xstate;

struct sb_media_xfer {
    sb_media *m;
    sb_media_conn conn;
    bool gone;   /* the connection is closed */
    int pending; /* requests of its own out (0 or 1) */
    xstate st;
    bool upload;
    int64_t started_ms, last_ms;
    char origin[256]; /* the request's Origin, when one allowed */
    char user[SB_ID_BYTES_MAX + 1];
    Sbp__Role role;
    ustate *us; /* counted among the user's uploads at once */

    /* upload */
    uint64_t conv_id;
    char name[SB_MEDIA_NAME_BYTES_MAX + 1];
    char id[SB_MEDIA_ID_LEN + 1];
    int64_t length, received;
    bool expect_continue;
    bool continued; /* "100 Continue" written: the body may come */
    char path[1024];
    bool file; /* path names a file of ours */
    uv_file fd;
    sb_buf early;   /* body bytes before the file was open */
    sb_buf hold[2]; /* [w]: being written; [!w]: gathering */
    int w;
    bool writing, paused;
    uv_fs_t fs;
    uv_work_t work;
    sb_mediaproc_result res;

    /* store requests: one at a time */
    sb_req req;
    Sbp__Conversation *conv;
    sb_store_media rec;
    const char *ids[1];

    /* download */
    uint8_t *chunk;
    uint64_t off;
    bool head_sent;

    struct sb_media_xfer *prev, *next;
};

/* ---- setup ----------------------------------------------------------------
 */

void sb_media_config_default(sb_media_config *c)
{
    c->bytes_max = 10u << 20;
    c->uploads_per_hour = 100;
    c->uploads_per_user = 4;
    c->uploads_max = 64;
    c->idle_ms = 30000;
    c->time_ms_max = 600000;
}

/* Removes what a previous run left in the temporary folder. */
static void tmp_clear(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1200];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

/* mkdir -p of dir, the last two levels at most (DATA/media/tmp). */
static int dir_make(const char *dir)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST) return 0;
    if (errno != ENOENT) return -errno;
    char parent[1024];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (!slash || slash == parent) return -ENOENT;
    *slash = '\0';
    if (mkdir(parent, 0700) != 0 && errno != EEXIST) return -errno;
    return mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : -errno;
}

int sb_media_new(const sb_media_config *c, sb_media **out)
{
    *out = NULL;
    if (c->secret_len == 0 || c->secret_len > 256 || !c->tmp_dir)
        return -EINVAL;
    sb_media *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->cfg = *c;
    memcpy(m->secret, c->secret, c->secret_len);
    m->cfg.secret = m->secret;
    snprintf(m->iss, sizeof m->iss, "%s", c->token_iss ? c->token_iss : "");
    snprintf(m->aud, sizeof m->aud, "%s", c->token_aud ? c->token_aud : "");
    int rc = -ENOMEM;
    if (!(m->tmp_dir = strdup(c->tmp_dir))) goto err;
    if ((rc = dir_make(m->tmp_dir))) goto err;
    tmp_clear(m->tmp_dir);
    if ((rc = sb_mediaproc_new(c->types, c->n_types, &m->proc))) goto err;
    *out = m;
    return 0;
err:
    free(m->tmp_dir);
    free(m);
    return rc;
}

static void media_free(sb_media *m)
{
    for (size_t i = 0; i < m->users.cap; i++) {
        ustate *u = m->users.slots[i].val;
        while (u) {
            ustate *next = u->next;
            free(u);
            u = next;
        }
    }
    sb_map_free(&m->users);
    sb_mediaproc_free(m->proc);
    free(m->tmp_dir);
    free(m);
}

void sb_media_close(sb_media *m)
{
    if (!m) return;
    m->closing = true;
    if (m->n_xfers == 0 && !m->gc_running) media_free(m);
}

/* ---- the sweep of blobs no record names -------------------------------------
 */

static void gc_done(sb_req *r)
{
    sb_media *m = r->ctx;
    m->gc_running = false;
    if (r->rc == 0 && r->u.blob_gc.removed)
        sb_log(SB_LOG_INFO, "media_gc", NULL,
               "%" PRIu64 " uploads' files no record names removed",
               r->u.blob_gc.removed);
    free(r);
    if (m->closing && m->n_xfers == 0) media_free(m);
}

/* Asks the store to remove the blobs no record names (one sweep at a
 * time; none while closing). */
static void gc_start(sb_media *m)
{
    if (m->gc_running || m->closing) return;
    sb_req *r = calloc(1, sizeof *r);
    if (!r) return;
    r->kind = SB_REQ_BLOB_GC;
    r->done = gc_done;
    r->ctx = m;
    r->u.blob_gc.older_than_ms = m->now_ms - SB_MEDIA_GC_AGE_MS;
    m->gc_running = true;
    m->gc_ms = m->now_ms;
    sb_storeq_submit(m->cfg.storeq, r);
}

void *sb_media_erased(sb_media *m, const char *user_id, uint64_t uploads)
{
    (void)user_id;
    gc_start(m);
    return json_pack(
        "{s:I,s:s}", "uploads", (json_int_t)uploads, "bytes",
        "each upload's bytes leave the store unless another upload has the "
        "same ones: now for those stored over 10 minutes ago, within the "
        "hour for the others");
}

void sb_media_drain(sb_media *m)
{
    m->draining = true;
}

void sb_media_get_stats(const sb_media *m, sb_media_stats *out)
{
    *out = m->stats;
}

/* ---- per-user buckets -----------------------------------------------------
 */

static ustate *user_get(sb_media *m, const char *id, bool make)
{
    uint64_t h = sb_map_hash_str(id);
    for (ustate *u = sb_map_get(&m->users, h); u; u = u->next)
        if (strcmp(u->id, id) == 0) return u;
    if (!make || m->n_users >= USERS_MAX) return NULL;
    ustate *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    snprintf(u->id, sizeof u->id, "%s", id);
    u->hash = h;
    u->mtokens = (uint64_t)m->cfg.uploads_per_hour * 1000;
    u->next = sb_map_get(&m->users, h);
    if (sb_map_put(&m->users, h, u) != 0) {
        free(u);
        return NULL;
    }
    m->n_users++;
    return u;
}

static void user_refill(const sb_media *m, ustate *u, int64_t now)
{
    uint64_t cap = (uint64_t)m->cfg.uploads_per_hour * 1000;
    if (now > u->refill_ms) {
        /* thousandths of an upload per ms: per_hour * 1000 / HOUR_MS */
        uint64_t add = (uint64_t)(now - u->refill_ms) *
                       m->cfg.uploads_per_hour * 1000 / HOUR_MS;
        if (add > 0) {
            u->mtokens = add >= cap - u->mtokens ? cap : u->mtokens + add;
            u->refill_ms = now;
        }
    }
}

/* Forgets users with no upload running and a full bucket: their chains
 * are cut in place, and the keys left with none removed after the walk
 * (a removal moves other entries). */
static void users_sweep(sb_media *m, int64_t now)
{
    uint64_t dead[256];
    size_t n_dead = 0;
    uint64_t full = (uint64_t)m->cfg.uploads_per_hour * 1000;
    for (size_t i = 0; i < m->users.cap && n_dead < 256; i++) {
        if (!m->users.slots[i].val) continue;
        ustate *keep = NULL, **tail = &keep, *next;
        for (ustate *u = m->users.slots[i].val; u; u = next) {
            next = u->next;
            user_refill(m, u, now);
            if (u->active == 0 && u->mtokens >= full) {
                free(u);
                m->n_users--;
            } else {
                *tail = u;
                tail = &u->next;
            }
        }
        *tail = NULL;
        if (keep)
            m->users.slots[i].val = keep; /* the same key: in place */
        else
            dead[n_dead++] = m->users.slots[i].key;
    }
    for (size_t i = 0; i < n_dead; i++)
        sb_map_del(&m->users, dead[i]);
}

/* ---- transfers: life ------------------------------------------------------
 */

static void xfer_unlink_file(sb_media_xfer *x)
{
    if (!x->file) return;
    unlink(x->path);
    x->file = false;
}

/* Frees x if its connection is gone and nothing of its own is out; then
 * the service too, if it was let go and this was its last. */
static void xfer_maybe_free(sb_media_xfer *x)
{
    if (!x->gone || x->pending > 0) return;
    sb_media *m = x->m;
    if (x->fd >= 0) {
        close(x->fd);
        x->fd = -1;
    }
    xfer_unlink_file(x);
    if (x->us) {
        x->us->active--;
        m->stats.active--;
    }
    if (x->conv) sbp__conversation__free_unpacked(x->conv, NULL);
    sb_buf_free(&x->early);
    sb_buf_free(&x->hold[0]);
    sb_buf_free(&x->hold[1]);
    free(x->chunk);
    if (x->prev)
        x->prev->next = x->next;
    else
        m->all = x->next;
    if (x->next) x->next->prev = x->prev;
    m->n_xfers--;
    free(x);
    if (m->closing && m->n_xfers == 0 && !m->gc_running) media_free(m);
}

/* The exchange is over: the connection closes once its bytes are out. */
static void xfer_end(sb_media_xfer *x)
{
    if (x->st == XS_END) return;
    x->st = XS_END;
    if (!x->gone) x->conn.done(x->conn.ud);
}

/* CORS for a page of an allowed origin (nothing without an Origin). */
static int cors_headers(const sb_media_xfer *x, char *out, size_t cap)
{
    if (!x->origin[0]) return 0;
    return snprintf(out, cap,
                    "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n",
                    x->origin);
}

/* Answers with status and a line of text (or a body of type), then ends
 * the exchange: at once, or after dropping the rest of an upload's body. */
static void xfer_answer(sb_media_xfer *x, int status, const char *type,
                        const char *extra, const char *body, size_t n)
{
    if (x->gone || x->st == XS_END || x->st == XS_LINGER) return;
    if (x->upload && status >= 300) x->m->stats.refused++;
    char headers[768];
    int k = cors_headers(x, headers, sizeof headers);
    snprintf(headers + k, sizeof headers - (size_t)k, "%s%s",
             status == 401 ? "WWW-Authenticate: Bearer\r\n" : "",
             extra ? extra : "");
    sb_buf out = SB_BUF_INIT;
    if (sb_http_respond_ex(&out, status, type, headers, body, n) == 0)
        x->conn.write(x->conn.ud, &out);
    sb_buf_free(&out);
    /* A client waiting for "100 Continue" sends no body: nothing to
     * drop. */
    bool body_coming = !x->expect_continue || x->continued;
    if (x->upload && body_coming && x->received < x->length && status >= 300) {
        /* The client may still be sending: read on (and drop) a moment,
         * so that it reads the answer rather than a reset. */
        x->st = XS_LINGER;
        x->last_ms = x->m->now_ms;
        if (x->paused) {
            x->paused = false;
            x->conn.reading(x->conn.ud, true);
        }
        return;
    }
    xfer_end(x);
}

/* Answers with status and one line of text (and the header lines of
 * extra, NULL: none). */
static void xfer_vtext(sb_media_xfer *x, int status, const char *extra,
                       const char *fmt, va_list ap)
{
    char line[LINE_BYTES];
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    if (n < 0) n = 0;
    if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    line[n] = '\0';
    xfer_answer(x, status, "text/plain; charset=utf-8", extra, line, (size_t)n);
}

static void xfer_text(sb_media_xfer *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void xfer_text_h(sb_media_xfer *x, int status, const char *extra,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void xfer_text(sb_media_xfer *x, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    xfer_vtext(x, status, NULL, fmt, ap);
    va_end(ap);
}

static void xfer_text_h(sb_media_xfer *x, int status, const char *extra,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    xfer_vtext(x, status, extra, fmt, ap);
    va_end(ap);
}

static void reading(sb_media_xfer *x, bool on)
{
    if (x->gone || x->paused == !on) return;
    x->paused = !on;
    x->conn.reading(x->conn.ud, on);
}

/* ---- the store ------------------------------------------------------------
 */

static void req_done(sb_req *r);

/* The transfer's store request, made ready for kind: the caller fills
 * its arguments, then submits it. */
static sb_req *req_prep(sb_media_xfer *x, sb_req_kind kind)
{
    assert(x->pending == 0);
    memset(&x->req, 0, sizeof x->req);
    x->req.kind = kind;
    x->req.done = req_done;
    x->req.data = x;
    return &x->req;
}

static void submit(sb_media_xfer *x)
{
    x->pending++;
    sb_storeq_submit(x->m->cfg.storeq, &x->req);
}

/* What a store failure means to the client. */
static void store_failed(sb_media_xfer *x, int rc)
{
    if (rc == -ENOTSUP)
        xfer_text(x, 503,
                  "this server keeps no uploads (its store is in "
                  "memory)");
    else if (rc == SB_E_UNAVAILABLE)
        xfer_text(x, 503, "the server is shutting down");
    else
        xfer_text(x, 503, "the store failed (%s); try again later",
                  sb_strerror(rc));
}

/* ---- uploads --------------------------------------------------------------
 */

static void body_write(sb_media_xfer *x);
static void upload_process(sb_media_xfer *x);

/* Whether the session's user may upload into c: a member, or an admin
 * (as the gateway lets them see it). */
static bool may_access(const sb_media_xfer *x, const Sbp__Conversation *c)
{
    if (x->role == SBP__ROLE__ROLE_ADMIN) return true;
    for (size_t i = 0; i < c->n_members; i++)
        if (strcmp(c->members[i]->user_id, x->user) == 0) return true;
    return false;
}

static void on_open(uv_fs_t *req)
{
    sb_media_xfer *x = req->data;
    ssize_t rc = req->result;
    uv_fs_req_cleanup(req);
    x->pending--;
    if (rc >= 0) {
        x->fd = (uv_file)rc;
        x->file = true;
    }
    if (x->gone) {
        xfer_maybe_free(x);
        return;
    }
    if (rc < 0) {
        xfer_text(x, rc == UV_ENOSPC || rc == -EDQUOT ? 507 : 500,
                  "cannot store the upload: %s", uv_strerror((int)rc));
        return;
    }
    x->st = XS_BODY;
    if (x->expect_continue) {
        sb_buf out = SB_BUF_INIT;
        if (sb_http_respond_continue(&out) == 0)
            x->conn.write(x->conn.ud, &out);
        x->continued = true;
        sb_buf_free(&out);
    }
    /* What came early is the first to write. */
    sb_buf *g = &x->hold[!x->w];
    sb_buf tmp = *g;
    *g = x->early;
    x->early = tmp;
    x->early.len = 0;
    body_write(x);
    if (x->hold[!x->w].len < HOLD_BYTES) reading(x, true);
}

static void upload_checked(sb_media_xfer *x)
{
    int rc = x->req.rc;
    if (rc == SB_E_NOT_FOUND) {
        xfer_text(x, 404, "no conversation %" PRIu64, x->conv_id);
        return;
    }
    if (rc) {
        store_failed(x, rc);
        return;
    }
    if (!may_access(x, x->conv)) {
        xfer_text(x, 403, "not a member of conversation %" PRIu64, x->conv_id);
        return;
    }
    snprintf(x->path, sizeof x->path, "%s/%s.part", x->m->tmp_dir, x->id);
    x->st = XS_OPEN;
    x->fs.data = x;
    x->pending++;
    int r = uv_fs_open(x->m->cfg.loop, &x->fs, x->path,
                       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600, on_open);
    if (r) {
        x->pending--;
        xfer_text(x, 500, "cannot store the upload: %s", uv_strerror(r));
    }
}

static void on_write(uv_fs_t *req)
{
    sb_media_xfer *x = req->data;
    ssize_t rc = req->result;
    uv_fs_req_cleanup(req);
    x->pending--;
    x->writing = false;
    if (x->gone) {
        xfer_maybe_free(x);
        return;
    }
    if (x->st != XS_BODY) return; /* answered meanwhile (a timeout) */
    sb_buf *b = &x->hold[x->w];
    if (rc < 0 || (size_t)rc != b->len) {
        int e = rc < 0 ? (int)rc : UV_ENOSPC; /* short: the disk filled */
        xfer_unlink_file(x);
        xfer_text(x, e == UV_ENOSPC || e == -EDQUOT ? 507 : 500,
                  "cannot store the upload: %s",
                  e == UV_ENOSPC ? "the server's disk is full"
                                 : uv_strerror(e));
        return;
    }
    b->len = 0;
    body_write(x);
}

/* Writes what was gathered, if nothing is being written; once all of the
 * body is on disk, processes it. */
static void body_write(sb_media_xfer *x)
{
    if (x->writing || x->gone || x->st != XS_BODY) return;
    sb_buf *next = &x->hold[!x->w];
    if (next->len == 0) {
        if (x->received == x->length) upload_process(x);
        return;
    }
    x->w = !x->w; /* what was gathered is now being written */
    sb_buf *b = &x->hold[x->w];
    uv_buf_t buf = uv_buf_init((char *)b->data, (unsigned)b->len);
    x->fs.data = x;
    x->writing = true;
    x->pending++;
    int r = uv_fs_write(x->m->cfg.loop, &x->fs, x->fd, &buf, 1, -1, on_write);
    if (r) {
        x->writing = false;
        x->pending--;
        xfer_unlink_file(x);
        xfer_text(x, 500, "cannot store the upload: %s", uv_strerror(r));
        return;
    }
    /* Room again for what the peer sends. */
    if (x->paused && x->hold[!x->w].len < HOLD_BYTES) reading(x, true);
}

static void work_run(uv_work_t *w)
{
    sb_media_xfer *x = w->data;
    sb_mediaproc_run(x->m->proc, x->path, (uint64_t)x->length, &x->res);
}

static void work_done(uv_work_t *w, int status)
{
    sb_media_xfer *x = w->data;
    x->pending--;
    if (x->gone) {
        xfer_maybe_free(x);
        return;
    }
    const sb_mediaproc_result *r = &x->res;
    if (status != 0) {
        xfer_text(x, 500, "the upload could not be processed");
        return;
    }
    switch (r->refusal) {
    case SB_MEDIAPROC_TYPE:
        xfer_text(x, 415, "files of type %s are not taken", r->mime);
        return;
    case SB_MEDIAPROC_IMAGE:
        xfer_text(x, 415, "not a whole %s image", r->mime);
        return;
    case SB_MEDIAPROC_IO:
        xfer_text(x, r->err == -ENOSPC || r->err == -EDQUOT ? 507 : 500,
                  "cannot store the upload: %s",
                  r->err == -ENOSPC ? "the server's disk is full"
                                    : strerror(-r->err));
        return;
    case SB_MEDIAPROC_OK:
        break;
    }
    if (r->image.gps_removed) x->m->stats.gps_removed++;
    x->st = XS_BLOB;
    sb_req *q = req_prep(x, SB_REQ_BLOB_PUT);
    memcpy(q->u.blob.sha256, r->sha256, SB_SHA256_BYTES);
    q->u.blob.path = x->path;
    q->u.blob.size = r->size;
    submit(x);
}

static void upload_process(sb_media_xfer *x)
{
    close(x->fd); /* a local file: at once */
    x->fd = -1;
    x->st = XS_PROCESS;
    x->work.data = x;
    x->pending++;
    int r = uv_queue_work(x->m->cfg.loop, &x->work, work_run, work_done);
    if (r) {
        x->pending--;
        xfer_text(x, 500, "the upload could not be processed");
    }
}

static void upload_stored_blob(sb_media_xfer *x)
{
    int rc = x->req.rc;
    if (rc) {
        store_failed(x, rc);
        return;
    }
    x->file = false; /* the store has it now */
    sb_store_media *rec = &x->rec;
    memset(rec, 0, sizeof *rec);
    memcpy(rec->id, x->id, sizeof rec->id);
    memcpy(rec->sha256, x->res.sha256, SB_SHA256_BYTES);
    rec->conv_id = x->conv_id;
    snprintf(rec->owner, sizeof rec->owner, "%s", x->user);
    snprintf(rec->name, sizeof rec->name, "%s", x->name);
    snprintf(rec->mime, sizeof rec->mime, "%s", x->res.mime);
    rec->size = x->res.size;
    rec->width = x->res.image.width;
    rec->height = x->res.image.height;
    rec->created_ts = x->last_ms;
    x->st = XS_RECORD;
    req_prep(x, SB_REQ_MEDIA_PUT)->u.media_put.m = *rec;
    submit(x);
}

static void upload_recorded(sb_media_xfer *x)
{
    int rc = x->req.rc;
    if (rc == SB_E_NOT_FOUND) {
        xfer_text(x, 404, "no conversation %" PRIu64, x->conv_id);
        return;
    }
    if (rc) {
        store_failed(x, rc);
        return;
    }
    const sb_store_media *r = &x->rec;
    json_t *j = json_pack("{s:s,s:I,s:s,s:s,s:I,s:i,s:i,s:s}", "id", r->id,
                          "conv_id", (json_int_t)r->conv_id, "name", r->name,
                          "mime", r->mime, "size", (json_int_t)r->size, "width",
                          (int)r->width, "height", (int)r->height, "url", "");
    char url[8 + SB_MEDIA_ID_LEN];
    snprintf(url, sizeof url, "/media/%s", r->id);
    if (j) json_object_set_new(j, "url", json_string(url));
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) {
        xfer_text(x, 500, "out of memory");
        return;
    }
    x->m->stats.uploads++;
    x->m->stats.upload_bytes += r->size;
    char loc[64 + SB_MEDIA_ID_LEN];
    snprintf(loc, sizeof loc, "Location: %s\r\n", url);
    xfer_answer(x, 201, "application/json", loc, body, strlen(body));
    free(body);
}

/* A file name as stored: the client's, with control characters and path
 * separators made '_'; "file" when it gave none. False for one that is
 * not UTF-8. */
static bool name_take(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in);
    if (n == 0) {
        snprintf(out, cap, "file");
        return true;
    }
    if (n >= cap || !sb_utf8_valid(in, n)) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        out[i] = c < 0x20 || c == 0x7f || c == '/' || c == '\\' ? '_' : (char)c;
    }
    out[n] = '\0';
    return true;
}

/* The user of the request's bearer token (or of its link's t=, for a
 * download): 0, or answers 401 and returns -1. */
static int authenticate(sb_media_xfer *x, const sb_http_req *req,
                        const char *id, int64_t now_ms)
{
    sb_media *m = x->m;
    char t[SB_MEDIA_TOKEN_BYTES_MAX];
    int tn = id ? sb_http_query(req->path, "t", t, sizeof t) : -ENOENT;
    if (tn >= 0) {
        int rc =
            sb_media_link_verify(m->secret, m->cfg.secret_len, id, t,
                                 (size_t)tn, now_ms / 1000, x->user, &x->role);
        if (rc == 0) return 0;
        xfer_text(x, 401, "%s",
                  rc == SB_E_TOKEN_EXPIRED ? "the link has expired"
                                           : "not a valid link");
        return -1;
    }
    const char *bearer = sb_http_req_bearer(req);
    if (!bearer) {
        xfer_text(x, 401, "an Authorization: Bearer token is required");
        return -1;
    }
    sb_claims cl;
    sb_token_check chk = {.now_s = now_ms / 1000,
                          .skew_s = m->cfg.token_skew_s,
                          .iss = m->iss,
                          .aud = m->aud};
    int rc = sb_token_verify_ex(m->secret, m->cfg.secret_len, bearer,
                                strlen(bearer), &chk, &cl);
    if (rc) {
        xfer_text(x, 401, "%s",
                  rc == SB_E_TOKEN_EXPIRED ? "the token has expired"
                                           : "not a valid token");
        return -1;
    }
    memcpy(x->user, cl.sub, sizeof x->user);
    x->role = cl.role;
    return 0;
}

static void upload_start(sb_media_xfer *x, const sb_http_req *req,
                         int64_t now_ms)
{
    sb_media *m = x->m;
    x->upload = true;
    x->length = sb_http_req_content_length(req);
    x->expect_continue = sb_http_req_expects_continue(req);
    if (m->draining) {
        xfer_text(x, 503, "the server is shutting down");
        return;
    }
    if (m->cfg.bytes_max == 0) {
        xfer_text(x, 503, "this server takes no uploads");
        return;
    }
    if (authenticate(x, req, NULL, now_ms)) return;
    char conv[24], name[SB_MEDIA_NAME_BYTES_MAX * 3 + 1];
    char *end;
    int rc = sb_http_query(req->path, "conv", conv, sizeof conv);
    errno = 0;
    x->conv_id = rc > 0 ? strtoull(conv, &end, 10) : 0;
    if (rc <= 0 || *end || errno || x->conv_id == 0 || conv[0] == '-') {
        xfer_text(x, 400, "want POST /media?conv=<conversation id>");
        return;
    }
    rc = sb_http_query(req->path, "name", name, sizeof name);
    if ((rc < 0 && rc != -ENOENT) ||
        !name_take(rc < 0 ? "" : name, x->name, sizeof x->name)) {
        xfer_text(x, 400, "the name must be UTF-8, at most %d bytes",
                  SB_MEDIA_NAME_BYTES_MAX);
        return;
    }
    if (sb_http_req_chunked(req) || x->length < 0) {
        xfer_text(x, 411, "an upload needs a Content-Length");
        return;
    }
    if (x->length == 0) {
        xfer_text(x, 400, "the upload is empty");
        return;
    }
    if ((uint64_t)x->length > m->cfg.bytes_max) {
        xfer_text(x, 413, "an upload may have at most %" PRIu64 " bytes",
                  m->cfg.bytes_max);
        return;
    }
    ustate *u = m->stats.active < m->cfg.uploads_max
                    ? user_get(m, x->user, true)
                    : NULL;
    if (!u) {
        xfer_text_h(x, 503, "Retry-After: 5\r\n",
                    "too many uploads at once; try again soon");
        return;
    }
    if (u->active >= m->cfg.uploads_per_user) {
        xfer_text(x, 429, "at most %u uploads at once",
                  m->cfg.uploads_per_user);
        return;
    }
    if (m->cfg.uploads_per_hour) {
        if (u->refill_ms == 0) u->refill_ms = now_ms;
        user_refill(m, u, now_ms);
        if (u->mtokens < 1000) {
            uint64_t wait_s = ((1000 - u->mtokens) * HOUR_MS /
                                   (1000 * (uint64_t)m->cfg.uploads_per_hour) +
                               999) /
                              1000;
            if (wait_s == 0) wait_s = 1;
            char extra[48];
            snprintf(extra, sizeof extra, "Retry-After: %" PRIu64 "\r\n",
                     wait_s);
            xfer_text_h(x, 429, extra,
                        "at most %u uploads an hour; try again in %" PRIu64
                        " s",
                        m->cfg.uploads_per_hour, wait_s);
            return;
        }
        u->mtokens -= 1000;
    }
    u->active++;
    m->stats.active++;
    x->us = u;
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        xfer_text(x, 500, "no randomness");
        return;
    }
    sb_media_id_make(rnd, x->id);
    /* The body waits until the conversation is known to be theirs. */
    reading(x, false);
    x->st = XS_CHECK;
    req_prep(x, SB_REQ_CONV_GET)->u.conv_get.conv_id = x->conv_id;
    submit(x);
}

/* ---- downloads ------------------------------------------------------------
 */

static void download_next(sb_media_xfer *x);

/* Content-Disposition: inline for the raster images a page shows,
 * attachment for everything else; the name as ASCII and in full. */
static void disposition(const sb_store_media *r, char *out, size_t cap)
{
    char ascii[SB_MEDIA_NAME_BYTES_MAX + 1],
        pct[SB_MEDIA_NAME_BYTES_MAX * 3 + 1];
    size_t a = 0, p = 0;
    for (const unsigned char *s = (const unsigned char *)r->name; *s; s++) {
        bool plain = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                     (*s >= '0' && *s <= '9') || *s == '.' || *s == '-' ||
                     *s == '_';
        ascii[a++] = plain || *s == ' ' ? (char)*s : '_';
        if (plain) {
            pct[p++] = (char)*s;
        } else {
            snprintf(pct + p, 4, "%%%02X", *s);
            p += 3;
        }
    }
    ascii[a] = pct[p] = '\0';
    bool inline_ok = sb_image_from_mime(r->mime) != SB_IMAGE_NONE;
    snprintf(out, cap,
             "Content-Disposition: %s; filename=\"%s\"; "
             "filename*=UTF-8''%s\r\n",
             inline_ok ? "inline" : "attachment", ascii, pct);
}

static void download_got(sb_media_xfer *x)
{
    int rc = x->req.rc;
    if (rc == SB_E_NOT_FOUND && !x->head_sent) {
        xfer_text(x, 404, "no such upload");
        return;
    }
    if (rc) {
        if (!x->head_sent)
            store_failed(x, rc);
        else
            xfer_end(x); /* cut short: the client sees fewer bytes */
        return;
    }
    size_t got = x->req.u.blob.got;
    if (got == 0 && x->off < x->rec.size) { /* the blob is shorter */
        if (!x->head_sent)
            xfer_text(x, 503, "the upload's bytes are missing");
        else
            xfer_end(x);
        return;
    }
    sb_buf out = SB_BUF_INIT;
    if (!x->head_sent) {
        char headers[1500];
        int k = cors_headers(x, headers, sizeof headers);
        disposition(&x->rec, headers + k, sizeof headers - (size_t)k);
        k = (int)strlen(headers);
        snprintf(headers + k, sizeof headers - (size_t)k,
                 "Content-Security-Policy: default-src 'none'; sandbox\r\n"
                 "Cache-Control: private, max-age=300\r\n"
                 "Referrer-Policy: no-referrer\r\n");
        if (sb_http_respond_head(&out, 200, x->rec.mime, headers,
                                 x->rec.size) != 0) {
            sb_buf_free(&out);
            xfer_end(x);
            return;
        }
        x->head_sent = true;
    }
    if (got > x->rec.size - x->off) got = (size_t)(x->rec.size - x->off);
    if (sb_buf_append(&out, x->chunk, got) != 0) {
        sb_buf_free(&out);
        xfer_end(x);
        return;
    }
    x->off += got;
    x->conn.write(x->conn.ud, &out);
    sb_buf_free(&out);
    if (x->gone) return;
    if (x->off >= x->rec.size) {
        x->m->stats.downloads++;
        x->m->stats.download_bytes += x->rec.size;
        xfer_end(x);
        return;
    }
    x->st = XS_SEND;
    if (x->conn.unsent(x->conn.ud) <= DOWNLOAD_UNSENT_MAX) download_next(x);
}

static void download_next(sb_media_xfer *x)
{
    if (x->pending || x->gone) return;
    sb_req *q = req_prep(x, SB_REQ_BLOB_READ);
    memcpy(q->u.blob.sha256, x->rec.sha256, SB_SHA256_BYTES);
    q->u.blob.off = x->off;
    q->u.blob.buf = x->chunk;
    q->u.blob.cap = DOWNLOAD_CHUNK;
    submit(x);
}

static void download_found(sb_media_xfer *x)
{
    int rc = x->req.rc;
    if (rc == 0 && !x->rec.id[0]) rc = SB_E_NOT_FOUND;
    if (rc == SB_E_NOT_FOUND) {
        xfer_text(x, 404, "no such upload");
        return;
    }
    if (rc) {
        store_failed(x, rc);
        return;
    }
    if (!(x->chunk = malloc(DOWNLOAD_CHUNK))) {
        xfer_text(x, 500, "out of memory");
        return;
    }
    x->st = XS_SEND;
    download_next(x);
}

static void download_start(sb_media_xfer *x, const sb_http_req *req,
                           int64_t now_ms)
{
    const char *p = req->path + sizeof "/media/" - 1;
    size_t n = strcspn(p, "?#");
    if (n != SB_MEDIA_ID_LEN) {
        xfer_text(x, 404, "no such upload");
        return;
    }
    memcpy(x->id, p, n);
    x->id[n] = '\0';
    if (!sb_media_id_valid(x->id)) {
        xfer_text(x, 404, "no such upload");
        return;
    }
    if (authenticate(x, req, x->id, now_ms)) return;
    x->st = XS_CHECK;
    x->ids[0] = x->id;
    sb_req *q = req_prep(x, SB_REQ_MEDIA_GET);
    snprintf(q->u.media_get.user_id, sizeof q->u.media_get.user_id, "%s",
             x->user);
    q->u.media_get.all = x->role == SBP__ROLE__ROLE_ADMIN;
    q->u.media_get.ids = x->ids;
    q->u.media_get.n = 1;
    q->u.media_get.out = &x->rec;
    submit(x);
}

/* ---- dispatch -------------------------------------------------------------
 */

static void req_done(sb_req *r)
{
    sb_media_xfer *x = r->data;
    x->pending--;
    if (r->kind == SB_REQ_CONV_GET) {
        x->conv = r->u.conv_get.conv;
        r->u.conv_get.conv = NULL;
    }
    if (x->gone) {
        xfer_maybe_free(x);
        return;
    }
    switch (x->st) {
    case XS_CHECK:
        if (x->upload)
            upload_checked(x);
        else
            download_found(x);
        return;
    case XS_BLOB:
        upload_stored_blob(x);
        return;
    case XS_RECORD:
        upload_recorded(x);
        return;
    case XS_SEND:
        download_got(x);
        return;
    default:
        return; /* answered meanwhile (a timeout): nothing more to do */
    }
}

/* The origin of a browser's request, if the service takes calls from
 * it: copied into x->origin. False for one not allowed. */
static bool origin_take(sb_media_xfer *x, const sb_http_req *req)
{
    const sb_media_config *c = &x->m->cfg;
    if (!req->origin[0]) return true;
    bool ok = c->n_origins == 0;
    for (size_t i = 0; !ok && i < c->n_origins; i++)
        ok = strcasecmp(req->origin, c->origins[i]) == 0;
    if (ok) snprintf(x->origin, sizeof x->origin, "%s", req->origin);
    return ok;
}

static void preflight(sb_media_xfer *x)
{
    if (!x->origin[0]) {
        xfer_text(x, 403, "origin not allowed");
        return;
    }
    xfer_answer(x, 204, "text/plain",
                "Access-Control-Allow-Methods: POST, GET\r\n"
                "Access-Control-Allow-Headers: Authorization, Content-Type\r\n"
                "Access-Control-Max-Age: 600\r\n",
                "", 0);
}

sb_media_xfer *sb_media_start(sb_media *m, const sb_http_req *req,
                              const sb_media_conn *conn, int64_t now_ms)
{
    m->now_ms = now_ms;
    sb_media_xfer *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->m = m;
    x->conn = *conn;
    x->fd = -1;
    x->started_ms = x->last_ms = now_ms;
    x->length = -1;
    x->next = m->all;
    if (m->all) m->all->prev = x;
    m->all = x;
    m->n_xfers++;
    const char *method = sb_http_req_method(req);
    bool item = strncmp(req->path, "/media/", 7) == 0;
    if (!origin_take(x, req)) {
        xfer_text(x, 403, "origin not allowed");
    } else if (strcmp(method, "OPTIONS") == 0) {
        preflight(x);
    } else if (!item && strcmp(method, "POST") == 0) {
        upload_start(x, req, now_ms);
    } else if (item && strcmp(method, "GET") == 0) {
        download_start(x, req, now_ms);
    } else {
        xfer_text_h(x, 405, item ? "Allow: GET\r\n" : "Allow: POST\r\n", "%s",
                    item ? "GET only" : "POST only");
    }
    return x;
}

void sb_media_feed(sb_media_xfer *x, const uint8_t *p, size_t n, int64_t now_ms)
{
    x->m->now_ms = now_ms;
    if (x->gone || n == 0 || !x->upload) return;
    size_t want =
        x->length > x->received ? (size_t)(x->length - x->received) : 0;
    if (n > want) n = want; /* past the body: not ours */
    if (n == 0) return;
    x->received += (int64_t)n;
    x->last_ms = now_ms;
    switch (x->st) {
    case XS_CHECK:
    case XS_OPEN:
        /* Reading stopped; these came with the headers. */
        if (sb_buf_append(&x->early, p, n) != 0)
            xfer_text(x, 500, "out of memory");
        return;
    case XS_BODY: {
        sb_buf *g = &x->hold[!x->w];
        if (sb_buf_append(g, p, n) != 0) {
            xfer_text(x, 500, "out of memory");
            return;
        }
        if (g->len >= HOLD_BYTES) reading(x, false);
        body_write(x);
        return;
    }
    case XS_LINGER:
        if (x->received == x->length) xfer_end(x);
        return;
    default:
        return;
    }
}

void sb_media_drained(sb_media_xfer *x, int64_t now_ms)
{
    x->m->now_ms = now_ms;
    if (x->gone || x->st != XS_SEND || x->pending) return;
    x->last_ms = now_ms;
    if (x->conn.unsent(x->conn.ud) <= DOWNLOAD_UNSENT_MAX) download_next(x);
}

void sb_media_gone(sb_media_xfer *x)
{
    x->gone = true;
    xfer_maybe_free(x);
}

void sb_media_sweep(sb_media *m, int64_t now_ms)
{
    m->now_ms = now_ms;
    for (sb_media_xfer *x = m->all; x; x = x->next) {
        if (x->gone || x->st == XS_END) continue;
        if (x->st == XS_LINGER) {
            if (now_ms - x->last_ms > LINGER_MS) xfer_end(x);
            continue;
        }
        bool idle = now_ms - x->last_ms > (int64_t)m->cfg.idle_ms;
        bool late = now_ms - x->started_ms > (int64_t)m->cfg.time_ms_max;
        if (x->st == XS_BODY && (idle || late)) {
            /* The rest of the body is not coming (soon enough). */
            reading(x, false);
            xfer_unlink_file(x);
            sb_log(SB_LOG_INFO, "upload_timeout", &(sb_log_ids){0},
                   "%s: %" PRId64 " of %" PRId64 " bytes in %" PRId64 " ms",
                   x->user, x->received, x->length, now_ms - x->started_ms);
            x->received = x->length; /* no lingering for a stalled peer */
            xfer_text(x, 408, "the upload %s",
                      idle ? "stalled" : "took too long");
        } else if (x->st == XS_SEND &&
                   (late || (idle && x->conn.unsent(x->conn.ud) > 0))) {
            xfer_end(x); /* a peer that does not read */
        }
    }
    if (m->n_users > 0) users_sweep(m, now_ms);
    if (m->gc_ms == 0) m->gc_ms = now_ms; /* the first an hour after start */
    if (now_ms - m->gc_ms >= SB_MEDIA_GC_EVERY_MS) gc_start(m);
}
