/* The desk configuration in force: boot from the store or the --desk file,
 * admins' desk ops and file imports as a queue of changes, each validated
 * (sb_deskcfg), stored with a CONFIG_SET on the store's writer, then put
 * in force in the gateway (sb_gw_desk_swap). One change is stored at a
 * time, so an edit always applies to the document the one before it
 * left. */
#include "sb_deskmgr.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_deskcfg.h"
#include "sb_error.h"

#define OP_BYTES_MAX 31 /* a desk op's name after "desk-" */
#define ERR_BYTES 512

/* One change waiting to be stored: an admin's op, or a file import. */
typedef struct job {
    struct job *next;
    bool import;
    uint64_t conn;
    uint32_t rid;
    char op[OP_BYTES_MAX + 1];
    char *body; /* the op's input; freed once applied */
    /* Ready to store. */
    char *doc;
    size_t len;
    sb_desk *desk;
    char hash[SB_DESKCFG_HASH_HEX + 1]; /* imports: the file's */
    char msg[SB_DESKCFG_MSG_BYTES];     /* what was done, or why not */
} job;

struct sb_deskmgr {
    sb_deskmgr_config cfg;
    char *file;
    sb_gw *gw;
    sb_desk *desk; /* in force; owned */
    char *doc;     /* its document */
    size_t len;
    char hash[SB_DESKCFG_HASH_HEX + 1]; /* of the file last imported */
    job *head, *tail;
    size_t n_jobs;
    job *storing; /* its CONFIG_SET is in flight */
    bool draining;
    /* At start. */
    bool booting;
    int boot_rc;
    sb_deskmgr_file boot_file;
};

/* One log line; error: something failed. */
static void say(sb_deskmgr *m, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(sb_deskmgr *m, bool error, const char *fmt, ...)
{
    if (!m->cfg.log) return;
    char line[ERR_BYTES + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    m->cfg.log(m->cfg.log_ud, error, line);
}

/* Reads a whole file of at most SB_DESK_FILE_BYTES_MAX bytes into *out
 * (malloc'd, NUL-terminated). Returns 0, -errno or SB_E_TOO_LARGE, with
 * err saying why. */
static int read_file(const char *path, char **out, size_t *len, char *err,
                     size_t elen)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, elen, "%s: %s", path, strerror(e));
        return -e;
    }
    char *buf = malloc(SB_DESK_FILE_BYTES_MAX + 2);
    size_t n = buf ? fread(buf, 1, SB_DESK_FILE_BYTES_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        snprintf(err, elen, "%s: out of memory", path);
        return -ENOMEM;
    }
    if (bad || n > SB_DESK_FILE_BYTES_MAX) {
        free(buf);
        snprintf(err, elen, "%s: %s", path,
                 bad ? "read error" : "larger than the desk file limit");
        return bad ? -EIO : SB_E_TOO_LARGE;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int sb_deskmgr_file_load(const char *path, sb_deskmgr_file *f, char *err,
                         size_t elen)
{
    memset(f, 0, sizeof *f);
    int rc = read_file(path, &f->text, &f->len, err, elen);
    if (rc) return rc;
    sb_deskcfg_hash(f->text, f->len, f->hash);
    char why[256];
    rc = sb_desk_parse(f->text, f->len, &f->desk, why, sizeof why);
    if (rc) {
        snprintf(err, elen, "%.200s: %s", path, why);
        sb_deskmgr_file_clear(f);
    }
    return rc;
}

void sb_deskmgr_file_clear(sb_deskmgr_file *f)
{
    free(f->text);
    sb_desk_free(f->desk);
    memset(f, 0, sizeof *f);
}

/* A request for the desk document and the hash of its file, completed by
 * done; data is the change it stores, if any. */
static sb_req *config_req(sb_deskmgr *m, sb_req_kind kind, sb_req_done_cb done,
                          void *data)
{
    sb_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->kind = kind;
    r->done = done;
    r->ctx = m;
    r->data = data;
    snprintf(r->u.config.keys[0], sizeof r->u.config.keys[0], "%s",
             SB_DESKMGR_KEY_DOC);
    snprintf(r->u.config.keys[1], sizeof r->u.config.keys[1], "%s",
             SB_DESKMGR_KEY_HASH);
    r->u.config.n = 2;
    return r;
}

int sb_deskmgr_new(const sb_deskmgr_config *c, sb_deskmgr **out)
{
    assert(c && c->loop && c->storeq && out);
    *out = NULL;
    sb_deskmgr *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->cfg = *c;
    if (c->file && !(m->file = strdup(c->file))) {
        free(m);
        return -ENOMEM;
    }
    m->cfg.file = m->file;
    *out = m;
    return 0;
}

void sb_deskmgr_set_gw(sb_deskmgr *m, sb_gw *gw)
{
    m->gw = gw;
}

/* ---- at start ------------------------------------------------------------ */

static void boot_end(sb_deskmgr *m, int rc)
{
    m->boot_rc = rc;
    m->booting = false;
}

static void boot_stored(sb_req *r);

/* The store's answer: its document and the hash of the file it came from,
 * if any. The file wins when it is new to the store. */
static void boot_got(sb_req *r)
{
    sb_deskmgr *m = r->ctx;
    sb_deskmgr_file *f = &m->boot_file;
    char *doc = r->u.config.values[0], *hash = r->u.config.values[1];
    size_t len = r->u.config.lens[0];
    int rc = r->rc;
    if (rc) {
        say(m, true, "cannot read the desk configuration from the store: %s",
            sb_strerror(rc));
    } else if (f->text && (!doc || !hash || strcmp(hash, f->hash) != 0)) {
        /* Import: store the file's text with its hash, then use it. */
        sb_req *w = config_req(m, SB_REQ_CONFIG_SET, boot_stored, NULL);
        rc = -ENOMEM;
        if (w) {
            w->u.config.values[0] = f->text;
            w->u.config.lens[0] = f->len;
            w->u.config.values[1] = f->hash;
            w->u.config.lens[1] = strlen(f->hash);
            sb_storeq_submit(m->cfg.storeq, w);
            rc = 0;
            m->boot_rc = doc ? 1 : 2; /* what the log line will say */
        }
        free(doc);
        free(hash);
        if (rc) boot_end(m, rc);
        free(r);
        return;
    } else if (doc) {
        char why[ERR_BYTES];
        rc = sb_desk_parse(doc, len, &m->desk, why, sizeof why);
        if (rc) {
            say(m, true,
                "the desk configuration in the store does not parse: %s", why);
        } else {
            m->doc = doc;
            m->len = len;
            doc = NULL;
            snprintf(m->hash, sizeof m->hash, "%s", hash ? hash : "");
            say(m, false, "desk configuration from the store%s%s%s",
                m->file ? " (" : "", m->file ? m->file : "",
                m->file ? " unchanged since its import)" : "");
        }
    }
    free(doc);
    free(hash);
    boot_end(m, rc);
    free(r);
}

/* The file is stored: it is the configuration in force. */
static void boot_stored(sb_req *r)
{
    sb_deskmgr *m = r->ctx;
    int rc = r->rc;
    free(r);
    if (rc) {
        say(m, true, "cannot store the desk configuration: %s",
            sb_strerror(rc));
        boot_end(m, rc);
        return;
    }
    say(m, false, "desk configuration imported from %s (%s)", m->file,
        m->boot_rc == 2 ? "the store had none"
                        : "changed since its last import");
    sb_deskmgr_file *f = &m->boot_file;
    m->desk = f->desk;
    m->doc = f->text;
    m->len = f->len;
    snprintf(m->hash, sizeof m->hash, "%s", f->hash);
    f->desk = NULL;
    f->text = NULL;
    boot_end(m, 0);
}

int sb_deskmgr_boot(sb_deskmgr *m, sb_desk **desk)
{
    assert(m && desk && !m->desk);
    *desk = NULL;
    if (m->file) {
        char err[ERR_BYTES];
        int rc = sb_deskmgr_file_load(m->file, &m->boot_file, err, sizeof err);
        if (rc) {
            say(m, true, "cannot load desks: %s", err);
            return rc;
        }
    }
    sb_req *r = config_req(m, SB_REQ_CONFIG_GET, boot_got, NULL);
    if (!r) return -ENOMEM;
    m->booting = true;
    sb_storeq_submit(m->cfg.storeq, r);
    /* Nothing else runs on the loop yet: wait for the store here. */
    while (m->booting)
        if (uv_run(m->cfg.loop, UV_RUN_ONCE) == 0 && m->booting) {
            say(m, true, "the store did not answer for the desk configuration");
            return SB_E_INTERNAL; /* the request is lost: a bug */
        }
    sb_deskmgr_file_clear(&m->boot_file);
    *desk = m->boot_rc == 0 ? m->desk : NULL;
    return m->boot_rc;
}

/* ---- changes ------------------------------------------------------------- */

static void job_free(job *j)
{
    if (!j) return;
    free(j->body);
    free(j->doc);
    sb_desk_free(j->desk);
    free(j);
}

/* Tells whoever asked for j how it went: the admin, or the log. */
static void answer(sb_deskmgr *m, job *j, int rc, const char *text)
{
    if (j->import) {
        if (rc)
            say(m, true,
                "desk file not imported, the configuration in force "
                "stays: %s",
                text);
        else
            say(m, false, "%s", text);
        return;
    }
    if (!m->gw) return;
    if (rc)
        sb_gw_admin_done(m->gw, j->conn, j->rid, rc, text);
    else
        sb_gw_admin_text(m->gw, j->conn, j->rid, text);
}

static void stored(sb_req *r);

/* Starts storing the next change, if none is being stored. Admins' edits
 * are applied here, to the document in force. */
static void pump(sb_deskmgr *m)
{
    while (!m->storing && m->head) {
        job *j = m->head;
        m->head = j->next;
        if (!m->head) m->tail = NULL;
        m->n_jobs--;
        if (m->draining) {
            answer(m, j, SB_E_UNAVAILABLE, "the server is shutting down");
            job_free(j);
            continue;
        }
        if (!j->import) {
            int rc = sb_deskcfg_apply(m->doc, m->len, j->op, j->body,
                                      strlen(j->body), &j->doc, &j->len,
                                      &j->desk, j->msg, sizeof j->msg);
            free(j->body);
            j->body = NULL;
            if (rc) {
                answer(m, j, rc, j->msg);
                job_free(j);
                continue;
            }
        }
        sb_req *r = config_req(m, SB_REQ_CONFIG_SET, stored, j);
        if (!r) {
            answer(m, j, -ENOMEM, "out of memory");
            job_free(j);
            continue;
        }
        r->u.config.values[0] = j->doc;
        r->u.config.lens[0] = j->len;
        /* An admin's edit keeps the hash of the file last imported. */
        r->u.config.n = j->import ? 2 : 1;
        r->u.config.values[1] = j->hash;
        r->u.config.lens[1] = strlen(j->hash);
        m->storing = j;
        sb_storeq_submit(m->cfg.storeq, r);
    }
}

static void enqueue(sb_deskmgr *m, job *j)
{
    j->next = NULL;
    if (m->tail)
        m->tail->next = j;
    else
        m->head = j;
    m->tail = j;
    m->n_jobs++;
    pump(m);
}

/* A change is stored: it goes in force. */
static void stored(sb_req *r)
{
    sb_deskmgr *m = r->ctx;
    job *j = r->data;
    int rc = r->rc;
    free(r);
    assert(j == m->storing);
    m->storing = NULL;
    if (rc) {
        char why[ERR_BYTES];
        snprintf(why, sizeof why,
                 "not stored (%s): the configuration in force stays",
                 sb_strerror(rc));
        answer(m, j, rc == SB_E_TOO_LARGE ? rc : SB_E_STORE, why);
        job_free(j);
        pump(m);
        return;
    }
    sb_desk *old = m->desk;
    rc = m->gw ? sb_gw_desk_swap(m->gw, j->desk, &old) : 0;
    if (rc) {
        /* Only out of memory: the store has it, the next start applies
         * it. */
        answer(m, j, rc,
               "stored, but not put in force (out of memory): it "
               "applies at the next start");
    } else {
        sb_desk_free(old);
        m->desk = j->desk;
        j->desk = NULL;
        free(m->doc);
        m->doc = j->doc;
        m->len = j->len;
        j->doc = NULL;
        if (j->import) snprintf(m->hash, sizeof m->hash, "%s", j->hash);
        answer(m, j, 0, j->msg);
    }
    job_free(j);
    pump(m);
}

int sb_deskmgr_admin(sb_deskmgr *m, uint64_t conn_id, uint32_t rid,
                     const char *op, const char *body)
{
    if (!m || strncmp(op, "desk-", 5) != 0) return SB_E_INVALID;
    const char *name = op + 5;
    if (strcmp(name, "show") == 0) {
        if (!m->doc)
            sb_gw_admin_done(m->gw, conn_id, rid, SB_E_NOT_FOUND,
                             "no desk configuration: start with --desk FILE, "
                             "or send one with desk-set");
        else
            sb_gw_admin_text(m->gw, conn_id, rid, m->doc);
        return 0;
    }
    if (strlen(name) > OP_BYTES_MAX) return SB_E_INVALID;
    if (m->draining) return SB_E_UNAVAILABLE;
    if (m->n_jobs >= SB_DESKMGR_QUEUE_MAX) return SB_E_RATE_LIMITED;
    job *j = calloc(1, sizeof *j);
    if (!j || !(j->body = strdup(body ? body : ""))) {
        free(j);
        return -ENOMEM;
    }
    j->conn = conn_id;
    j->rid = rid;
    snprintf(j->op, sizeof j->op, "%s", name);
    enqueue(m, j);
    return 0;
}

/* ---- file imports -------------------------------------------------------- */

void sb_deskmgr_import(sb_deskmgr *m, sb_deskmgr_file *f)
{
    assert(m && m->file && f && f->text && f->desk);
    job *j = NULL;
    if (m->doc && strcmp(f->hash, m->hash) == 0) {
        say(m, false, "desk file %s unchanged since its import", m->file);
    } else if (m->draining || !(j = calloc(1, sizeof *j))) {
        say(m, true, "desk file not imported: %s",
            m->draining ? "the server is shutting down" : "out of memory");
    } else {
        j->import = true;
        j->doc = f->text;
        j->len = f->len;
        j->desk = f->desk;
        f->text = NULL;
        f->desk = NULL;
        snprintf(j->hash, sizeof j->hash, "%s", f->hash);
        snprintf(j->msg, sizeof j->msg, "desk configuration imported from %s",
                 m->file);
    }
    sb_deskmgr_file_clear(f);
    if (j) enqueue(m, j);
}

void sb_deskmgr_drain(sb_deskmgr *m)
{
    if (!m) return;
    m->draining = true;
    pump(m); /* answers what waits, unless a change is being stored */
}

void sb_deskmgr_free(sb_deskmgr *m)
{
    if (!m) return;
    job *next;
    for (job *j = m->head; j; j = next) {
        next = j->next;
        job_free(j);
    }
    job_free(m->storing); /* its request never came back (a failed start) */
    sb_desk_free(m->desk);
    free(m->doc);
    sb_deskmgr_file_clear(&m->boot_file);
    free(m->file);
    free(m);
}
