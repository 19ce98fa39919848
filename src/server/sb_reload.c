/* The reloader: a table of the parts the server reloads while it runs,
 * each with how it loads (on the thread pool) and how it goes in force
 * (on the loop thread), and one slot per part for the run in progress,
 * the run asked for behind it and the admins waiting for either. */
#include "sb_reload.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_deskmgr.h"
#include "sb_error.h"

#define ERR_BYTES 512 /* why a load failed: a file name and a reason */

typedef enum part_id { PART_FILTER, PART_DESK, PART_COUNT } part_id;

typedef struct waiter {
    uint64_t conn;
    uint32_t rid;
} waiter;

/* One part's reloads. */
typedef struct slot {
    uv_work_t work;
    sb_reload *r;
    part_id id;
    bool running, again; /* again: a reload asked for while running */
    /* The run's result, written on the thread pool. */
    int rc;
    char err[ERR_BYTES];
    sb_filter *filter;
    sb_deskmgr_file desk;
    /* Admins waiting for the run in progress (cur) or the next (next). */
    waiter cur[SB_RELOAD_WAITERS_MAX], next[SB_RELOAD_WAITERS_MAX];
    size_t n_cur, n_next;
} slot;

struct sb_reload {
    sb_reload_config cfg;
    sb_gw *gw;
    sb_deskmgr *deskmgr;
    sb_filter *filter; /* the word lists in force; NULL: none */
    bool draining;
    slot slots[PART_COUNT];
};

/* What the server reloads, and how. */
typedef struct part {
    const char *admin_op; /* the admin op reloading it alone; NULL: none */
    const char *off;      /* that op's refusal when it is not configured */
    const char *not_done; /* a refusal's log line: "NOT_DONE, STAYS: why" */
    const char *stays;
    /* The file or folder it loads from; NULL: not configured. */
    const char *(*source)(const sb_reload *r);
    /* On the thread pool: loads src into s; 0, or a negative code with
     * s->err saying why. */
    int (*load)(const char *src, slot *s);
    /* On the loop thread, after a load returned 0: puts the result in
     * force, taking it, and logs so. */
    void (*apply)(sb_reload *r, slot *s);
    /* Frees a result not taken. */
    void (*discard)(slot *s);
} part;

static void say(sb_reload *r, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(sb_reload *r, bool error, const char *fmt, ...)
{
    if (!r->cfg.log) return;
    char line[ERR_BYTES + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    r->cfg.log(r->cfg.log_ud, error, line);
}

/* ---- the parts ----------------------------------------------------------- */

static const char *filter_source(const sb_reload *r)
{
    return r->cfg.filter_dir;
}

static int filter_load(const char *dir, slot *s)
{
    return sb_filter_load_dir(dir, &s->filter, s->err, sizeof s->err);
}

/* "WHAT DIR: N words in N categories (N KiB)", the lists in force. */
static void filter_log(sb_reload *r, const char *what)
{
    say(r, false, "%s %s: %zu words in %zu categories (%zu KiB)", what,
        r->cfg.filter_dir, sb_filter_words(r->filter),
        sb_filter_categories(r->filter), sb_filter_bytes(r->filter) >> 10);
}

/* The gateway holds no reference to the lists between two events: the
 * old ones go at once. */
static void filter_apply(sb_reload *r, slot *s)
{
    sb_filter *old = r->filter;
    r->filter = s->filter;
    s->filter = NULL;
    sb_filter_release(old);
    filter_log(r, "word lists reloaded from");
}

static void filter_discard(slot *s)
{
    sb_filter_release(s->filter);
    s->filter = NULL;
}

static const char *desk_source(const sb_reload *r)
{
    return r->cfg.desk_file;
}

static int desk_load(const char *file, slot *s)
{
    return sb_deskmgr_file_load(file, &s->desk, s->err, sizeof s->err);
}

/* The desk manager stores the file, if it changed, before it goes in
 * force, and logs how that went. */
static void desk_apply(sb_reload *r, slot *s)
{
    sb_deskmgr_import(r->deskmgr, &s->desk);
}

static void desk_discard(slot *s)
{
    sb_deskmgr_file_clear(&s->desk);
}

static const part PARTS[] = {
    [PART_FILTER] = {.admin_op = "reload-filter",
                     .off = "no word lists to reload (no --filter)",
                     .not_done = "word lists not reloaded",
                     .stays = "the old ones stay",
                     .source = filter_source,
                     .load = filter_load,
                     .apply = filter_apply,
                     .discard = filter_discard},
    [PART_DESK] = {.not_done = "desk file not imported",
                   .stays = "the configuration in force stays",
                   .source = desk_source,
                   .load = desk_load,
                   .apply = desk_apply,
                   .discard = desk_discard},
};
_Static_assert(sizeof PARTS / sizeof PARTS[0] == PART_COUNT, "a row per part");

/* ---- runs ---------------------------------------------------------------- */

static void answer(sb_reload *r, const waiter *w, size_t n, int rc,
                   const char *text)
{
    for (size_t i = 0; r->gw && i < n; i++)
        sb_gw_admin_done(r->gw, w[i].conn, w[i].rid, rc, text);
}

static void run(sb_reload *r, part_id id);

/* A run is over (status: the thread pool's, 0 if the load ran): its
 * result goes in force or is refused, its admins are answered, and the
 * run asked for behind it starts. */
static void finish(slot *s, int status)
{
    sb_reload *r = s->r;
    const part *p = &PARTS[s->id];
    int rc = status ? status : s->rc;
    const char *why = status ? uv_strerror(status) : s->err;
    if (rc == 0)
        p->apply(r, s);
    else
        say(r, true, "%s, %s: %s", p->not_done, p->stays, why);
    p->discard(s);
    answer(r, s->cur, s->n_cur, rc ? SB_E_INVALID : 0, why);
    memcpy(s->cur, s->next, s->n_next * sizeof s->next[0]);
    s->n_cur = s->n_next;
    s->n_next = 0;
    if (!s->again) return;
    s->again = false;
    if (!r->draining) {
        run(r, s->id);
        return;
    }
    answer(r, s->cur, s->n_cur, SB_E_UNAVAILABLE,
           "the server is shutting down");
    s->n_cur = 0;
}

static void load_work(uv_work_t *w)
{
    slot *s = w->data;
    const part *p = &PARTS[s->id];
    s->rc = p->load(p->source(s->r), s);
}

static void load_done(uv_work_t *w, int status)
{
    slot *s = w->data;
    s->running = false;
    finish(s, status);
}

/* Starts a run of part id on the thread pool, or asks for one behind the
 * run in progress. */
static void run(sb_reload *r, part_id id)
{
    slot *s = &r->slots[id];
    assert(PARTS[id].source(r));
    if (s->running) {
        s->again = true;
        return;
    }
    s->rc = 0;
    s->err[0] = '\0';
    int rc = uv_queue_work(r->cfg.loop, &s->work, load_work, load_done);
    if (rc)
        finish(s, rc);
    else
        s->running = true;
}

/* ---- entry points -------------------------------------------------------- */

static void desk_log(void *ud, bool error, const char *line)
{
    say(ud, error, "%s", line);
}

int sb_reload_new(const sb_reload_config *c, sb_reload **out)
{
    assert(c && c->loop && c->storeq && out);
    *out = NULL;
    sb_reload *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    r->cfg = *c;
    for (part_id id = 0; id < PART_COUNT; id++) {
        r->slots[id].r = r;
        r->slots[id].id = id;
        r->slots[id].work.data = &r->slots[id];
    }
    sb_deskmgr_config dmc = {.loop = c->loop,
                             .storeq = c->storeq,
                             .file = c->desk_file,
                             .log = desk_log,
                             .log_ud = r};
    int rc = sb_deskmgr_new(&dmc, &r->deskmgr);
    if (rc) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int sb_reload_start(sb_reload *r, sb_desk **desk)
{
    int rc = sb_deskmgr_boot(r->deskmgr, desk);
    if (rc || !r->cfg.filter_dir) return rc;
    char err[SB_FILTER_ERR_BYTES];
    rc = sb_filter_load_dir(r->cfg.filter_dir, &r->filter, err, sizeof err);
    if (rc) {
        say(r, true, "cannot load word lists: %s", err);
        return rc;
    }
    filter_log(r, "word lists from");
    return 0;
}

const sb_filter *sb_reload_filter(void *ud)
{
    return ((const sb_reload *)ud)->filter;
}

void sb_reload_set_gw(sb_reload *r, sb_gw *gw)
{
    r->gw = gw;
    sb_deskmgr_set_gw(r->deskmgr, gw);
}

void sb_reload_all(sb_reload *r)
{
    if (r->draining) return;
    for (part_id id = 0; id < PART_COUNT; id++)
        if (PARTS[id].source(r)) run(r, id);
}

int sb_reload_admin(sb_reload *r, uint64_t conn_id, uint32_t rid,
                    const char *op, const char *body)
{
    int rc = sb_deskmgr_admin(r->deskmgr, conn_id, rid, op, body);
    if (rc != SB_E_INVALID) return rc;
    for (part_id id = 0; id < PART_COUNT; id++) {
        const part *p = &PARTS[id];
        if (!p->admin_op || strcmp(op, p->admin_op) != 0) continue;
        if (!p->source(r)) {
            sb_gw_admin_done(r->gw, conn_id, rid, SB_E_INVALID, p->off);
            return 0;
        }
        if (r->draining) return SB_E_UNAVAILABLE;
        slot *s = &r->slots[id];
        waiter *w = s->running ? s->next : s->cur;
        size_t *n = s->running ? &s->n_next : &s->n_cur;
        if (*n == SB_RELOAD_WAITERS_MAX) return SB_E_RATE_LIMITED;
        w[(*n)++] = (waiter){.conn = conn_id, .rid = rid};
        run(r, id);
        return 0;
    }
    return SB_E_INVALID;
}

void sb_reload_drain(sb_reload *r)
{
    r->draining = true;
    sb_deskmgr_drain(r->deskmgr);
}

void sb_reload_free(sb_reload *r)
{
    if (!r) return;
    for (part_id id = 0; id < PART_COUNT; id++)
        assert(!r->slots[id].running);
    sb_deskmgr_free(r->deskmgr);
    sb_filter_release(r->filter);
    free(r);
}
