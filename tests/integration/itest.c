/* Integration-test toolkit: see itest.h. */
#include "itest.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sb_b64.h"
#include "sb_client_hs.h"
#include "sb_error.h"

#define IT_VIOLATION_LINES_MAX 20

/* ---- environment ------------------------------------------------------------
 */

static void wake_cb(uv_timer_t *t)
{
    (void)t;
}

void it_env_init(it_env *e)
{
    memset(e, 0, sizeof *e);
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&e->loop) != 0) abort();
    uv_timer_init(&e->loop, &e->wake);
    e->enc = SB_ENC_PROTO;
    e->inited = true;
}

bool it_server_has_option(const char *opt)
{
    static char help[8192];
    static bool loaded;
    if (!loaded) {
        loaded = true;
        char cmd[600];
        snprintf(cmd, sizeof cmd, "'%s' --help 2>&1", harness_server_bin());
        FILE *f = popen(cmd, "r");
        if (f) {
            size_t n = fread(help, 1, sizeof help - 1, f);
            help[n] = '\0';
            pclose(f);
        }
    }
    const char *p = help;
    size_t n = strlen(opt);
    while ((p = strstr(p, opt)) != NULL) {
        char c = p[n];
        if (c == ' ' || c == '\t' || c == '\n' || c == '=' || c == ',' ||
            c == '\0')
            return true;
        p += n;
    }
    return false;
}

int it_server_start(it_env *e, const char *const *extra)
{
    size_t n = 0;
    for (; extra && extra[n] && n < 13; n++)
        e->srv.extra[n] = extra[n];
    if (e->unlimited && it_server_has_option("--sends-per-s")) {
        e->srv.extra[n++] = "--sends-per-s";
        e->srv.extra[n++] = "0";
    }
    e->srv.extra[n] = NULL;
    if (harness_start(&e->srv) != 0) {
        fprintf(stderr, "itest: cannot start %s\n", harness_server_bin());
        return -1;
    }
    snprintf(e->url, sizeof e->url, "%s", e->srv.url);
    snprintf(e->data_dir, sizeof e->data_dir, "%s", e->srv.data_dir);
    return 0;
}

bool it_run_until(it_env *e, bool (*pred)(void *), void *arg, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    uv_timer_start(&e->wake, wake_cb, 5, 5);
    bool ok;
    for (;;) {
        if (pred(arg)) {
            ok = true;
            break;
        }
        if (harness_now_ms() >= deadline) {
            ok = false;
            break;
        }
        uv_run(&e->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&e->wake);
    return ok;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

void it_run_for(it_env *e, int ms)
{
    it_run_until(e, never, NULL, ms);
}

typedef struct size_arg {
    const size_t *p;
    size_t want;
} size_arg;

static bool size_reached(void *arg)
{
    size_arg *a = arg;
    return *a->p >= a->want;
}

bool it_wait_size(it_env *e, const size_t *counter, size_t want, int timeout_ms)
{
    size_arg a = {counter, want};
    return it_run_until(e, size_reached, &a, timeout_ms);
}

static void send_free_all(it_env *e)
{
    for (size_t i = 0; i < e->sends.cap; i++) {
        it_send *s = e->sends.slots[i].val;
        while (s) {
            it_send *n = s->hash_next;
            free(s);
            s = n;
        }
    }
    sb_map_free(&e->sends);
    e->n_sends = 0;
}

static bool all_freed(void *arg)
{
    it_env *e = arg;
    for (size_t i = 0; i < e->n_devs; i++)
        if (e->devs[i]->c) return false;
    return true;
}

static void on_client_freed(void *ud);

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

void it_env_free(it_env *e)
{
    if (!e->inited) return;
    e->inited = false;
    for (size_t i = 0; i < e->n_devs; i++) {
        it_device *d = e->devs[i];
        if (d->c) {
            sb_client_get_stats(d->c, &d->stats);
            sb_client_close(d->c, on_client_freed);
        }
    }
    if (!it_run_until(e, all_freed, e, 5000))
        fprintf(stderr, "itest: clients not freed within 5 s\n");
    for (size_t i = 0; i < e->n_devs; i++) {
        it_device *d = e->devs[i];
        for (size_t k = 0; k < d->n_convs; k++)
            free(d->convs[k].msgs);
        free(d->hist.seqs);
        free(d->hist.msg_ids);
        free(d);
    }
    e->n_devs = 0;
    send_free_all(e);
    /* Handles a test left open (a failed assertion skips its cleanup). */
    uv_walk(&e->loop, walk_close, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&e->loop) != 0)
        fprintf(stderr, "itest: loop still has handles\n");
    harness_cleanup(&e->srv);
}

/* ---- violations, hashing
 * ------------------------------------------------------ */

void it_violation(it_env *e, it_device *d, const char *fmt, ...)
{
    e->violations++;
    if (d) d->violations++;
    if (e->violations > IT_VIOLATION_LINES_MAX) {
        if (e->violations == IT_VIOLATION_LINES_MAX + 1)
            fprintf(stderr, "VIOLATION: (further lines suppressed)\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "VIOLATION [%s]: ", d ? d->name : "env");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

uint64_t it_hash(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t cmid_key(const uint8_t *cmid)
{
    uint64_t k;
    memcpy(&k, cmid, sizeof k);
    return k ? k : 1;
}

it_send *it_send_find(it_env *e, const uint8_t *cmid)
{
    for (it_send *s = sb_map_get(&e->sends, cmid_key(cmid)); s;
         s = s->hash_next)
        if (memcmp(s->cmid, cmid, SB_CLIENT_MSG_ID_BYTES) == 0) return s;
    return NULL;
}

void it_sends_each(it_env *e, void (*fn)(it_send *s, void *arg), void *arg)
{
    for (size_t i = 0; i < e->sends.cap; i++)
        for (it_send *s = e->sends.slots[i].val; s; s = s->hash_next)
            fn(s, arg);
}

static void hexid(const uint8_t *id, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    size_t k = n < 16 ? n : 16;
    for (size_t i = 0; i < k; i++) {
        out[2 * i] = hx[id[i] >> 4];
        out[2 * i + 1] = hx[id[i] & 15];
    }
    out[2 * k] = '\0';
}

/* ---- device logs
 * --------------------------------------------------------------- */

it_conv_log *it_log(it_device *d, uint64_t conv_id)
{
    for (size_t i = 0; i < d->n_convs; i++)
        if (d->convs[i].conv_id == conv_id) return &d->convs[i];
    return NULL;
}

static it_conv_log *log_get(it_device *d, uint64_t conv_id)
{
    it_conv_log *lg = it_log(d, conv_id);
    if (lg || d->n_convs == IT_CONVS_MAX) return lg;
    lg = &d->convs[d->n_convs++];
    memset(lg, 0, sizeof *lg);
    lg->conv_id = conv_id;
    return lg;
}

static uint64_t log_last(const it_conv_log *lg)
{
    return lg->last;
}

uint64_t it_surfaced(it_device *d, uint64_t conv_id)
{
    it_conv_log *lg = it_log(d, conv_id);
    return lg ? log_last(lg) : 0;
}

/* ---- client callbacks
 * ------------------------------------------------------------ */

static void cb_state(void *ud, sb_client_state st, int err)
{
    it_device *d = ud;
    d->state = st;
    d->state_err = err;
    if (st == SB_CLIENT_READY) {
        d->readies++;
        d->ready_ms = harness_now_ms();
    }
    if (st == SB_CLIENT_BACKOFF || st == SB_CLIENT_STOPPED) {
        if (st == SB_CLIENT_BACKOFF) d->backoffs++;
        if (st == SB_CLIENT_STOPPED) {
            d->stops++;
            d->last_stop_err = err;
        }
        uint16_t code = d->c ? sb_client_close_code(d->c) : 0;
        if (d->n_close_codes < IT_CLOSE_CODES_MAX) {
            d->close_errs[d->n_close_codes] = err;
            d->close_codes[d->n_close_codes++] = code;
        }
    }
}

static void cb_message(void *ud, const Sbp__Message *m)
{
    it_device *d = ud;
    it_env *e = d->env;
    it_conv_log *lg = log_get(d, m->conv_id);
    if (!lg) {
        it_violation(e, d, "too many conversations for the test log");
        return;
    }
    uint64_t last = log_last(lg);
    if (m->seq <= last)
        it_violation(e, d,
                     "I2: conv %" PRIu64 " seq %" PRIu64
                     " surfaced again (already through %" PRIu64 ")",
                     m->conv_id, m->seq, last);
    else if (m->seq != last + 1)
        it_violation(e, d,
                     "I3: conv %" PRIu64 " seq %" PRIu64
                     " surfaced after %" PRIu64 " (gap or disorder)",
                     m->conv_id, m->seq, last);
    if (lg->n == lg->cap) {
        size_t cap = lg->cap ? lg->cap * 2 : 256;
        it_msg *p = realloc(lg->msgs, cap * sizeof *p);
        if (!p) abort();
        lg->msgs = p;
        lg->cap = cap;
    }
    if (m->seq > lg->last) lg->last = m->seq;
    it_msg *r = &lg->msgs[lg->n++];
    memset(r, 0, sizeof *r);
    r->seq = m->seq;
    r->msg_id = m->msg_id;
    size_t bl = strlen(m->body);
    r->body_hash = it_hash(m->body, bl);
    r->body_len = (uint32_t)bl;
    if (m->client_msg_id.len == SB_CLIENT_MSG_ID_BYTES)
        memcpy(r->cmid, m->client_msg_id.data, SB_CLIENT_MSG_ID_BYTES);
    snprintf(r->sender, sizeof r->sender, "%s", m->sender);
    r->own = strcmp(m->sender, d->user) == 0 &&
             strcmp(m->sender_device, d->device_id) == 0;
    d->surfaced_total++;
    if (m->msg_id == 0)
        it_violation(e, d, "conv %" PRIu64 " seq %" PRIu64 " has msg_id 0",
                     m->conv_id, m->seq);
    /* What the app sees must be what was sent. */
    if (m->client_msg_id.len != SB_CLIENT_MSG_ID_BYTES) return;
    it_send *s = it_send_find(e, m->client_msg_id.data);
    if (!s) return;
    if (s->conv_id != m->conv_id || s->body_hash != r->body_hash ||
        s->body_len != r->body_len || strcmp(s->dev->user, m->sender) != 0 ||
        strcmp(s->dev->device_id, m->sender_device) != 0)
        it_violation(e, d,
                     "conv %" PRIu64 " seq %" PRIu64
                     ": message differs from what %s sent (conv %" PRIu64
                     ", sender %s/%s)",
                     m->conv_id, m->seq, s->dev->name, s->conv_id, m->sender,
                     m->sender_device);
    if (s->seq && (s->seq != m->seq || s->msg_id != m->msg_id))
        it_violation(e, d,
                     "conv %" PRIu64 ": surfaced seq %" PRIu64
                     " msg_id %" PRIu64 " but SEND_ACK said seq %" PRIu64
                     " msg_id %" PRIu64,
                     m->conv_id, m->seq, m->msg_id, s->seq, s->msg_id);
}

static void cb_send_status(void *ud, const sb_client_send_info *i)
{
    it_device *d = ud;
    it_env *e = d->env;
    it_send *s = it_send_find(e, i->client_msg_id);
    char hx[33];
    hexid(i->client_msg_id, SB_CLIENT_MSG_ID_BYTES, hx);
    if (!s || s->dev != d) {
        it_violation(e, d, "status %s for a send it did not make (%s)",
                     sb_client_send_status_name(i->status), hx);
        return;
    }
    sb_client_send_status prev = s->status;
    bool ok;
    switch (i->status) {
    case SB_SEND_SENT:
        ok = prev == SB_SEND_PENDING;
        if (ok) {
            s->seq = i->seq;
            s->msg_id = i->msg_id;
            s->duplicate = i->duplicate;
            d->n_sent++;
            if (i->duplicate) d->n_dup_acks++;
            if (i->seq == 0 || i->msg_id == 0 || i->conv_id != s->conv_id)
                it_violation(e, d,
                             "SENT %s with seq %" PRIu64 " msg_id %" PRIu64
                             " conv %" PRIu64 " (sent to %" PRIu64 ")",
                             hx, i->seq, i->msg_id, i->conv_id, s->conv_id);
        }
        break;
    case SB_SEND_DELIVERED:
        ok = prev == SB_SEND_SENT;
        if (ok) d->n_delivered++;
        break;
    case SB_SEND_READ:
        ok = prev == SB_SEND_DELIVERED;
        if (ok) d->n_read++;
        break;
    case SB_SEND_FAILED:
        ok = prev == SB_SEND_PENDING;
        if (ok) {
            d->n_failed++;
            s->err = i->err;
            fprintf(stderr, "itest [%s]: send %s FAILED: %s %s\n", d->name, hx,
                    sb_client_err_name(i->err), i->text);
        }
        break;
    default:
        ok = false;
        break;
    }
    if (!ok) {
        it_violation(e, d, "send %s: status %s after %s", hx,
                     sb_client_send_status_name(i->status),
                     sb_client_send_status_name(prev));
        return;
    }
    if (i->status != SB_SEND_SENT && i->status != SB_SEND_FAILED &&
        (i->seq != s->seq || i->msg_id != s->msg_id))
        it_violation(e, d,
                     "send %s: %s with seq %" PRIu64 ", SENT had %" PRIu64, hx,
                     sb_client_send_status_name(i->status), i->seq, s->seq);
    s->status = i->status;
}

static void cb_receipt(void *ud, const Sbp__ReadNotify *r)
{
    it_device *d = ud;
    (void)r;
    d->receipts++;
}

static void cb_synced(void *ud)
{
    it_device *d = ud;
    d->synced++;
}

static void cb_open(void *ud, uint32_t rid, int err,
                    const Sbp__Conversation *conv)
{
    it_device *d = ud;
    if (rid != d->open_rid) return;
    d->open_done = true;
    d->open_err = err;
    d->open_conv = conv ? conv->conv_id : 0;
}

static void cb_history(void *ud, uint32_t rid, int err,
                       const Sbp__HistoryResp *h)
{
    it_device *d = ud;
    it_history *hi = &d->hist;
    if (rid != hi->rid) return;
    hi->done = true;
    hi->err = err;
    if (err || !h) return;
    hi->more = h->more;
    for (size_t i = 0; i < h->n_messages; i++) {
        if (hi->n == hi->cap) {
            size_t cap = hi->cap ? hi->cap * 2 : 256;
            uint64_t *a = realloc(hi->seqs, cap * sizeof *a);
            if (!a) abort();
            hi->seqs = a;
            a = realloc(hi->msg_ids, cap * sizeof *a);
            if (!a) abort();
            hi->msg_ids = a;
            hi->cap = cap;
        }
        hi->seqs[hi->n] = h->messages[i]->seq;
        hi->msg_ids[hi->n] = h->messages[i]->msg_id;
        hi->n++;
    }
}

static void cb_response(void *ud, uint32_t rid, Sbp__Frame__BodyCase req,
                        int err, const Sbp__Frame *f)
{
    const Sbp__Frame *a = err ? NULL : f;
    if (req == SBP__FRAME__BODY_OPEN)
        cb_open(ud, rid, err, a ? a->open_resp->conv : NULL);
    else if (req == SBP__FRAME__BODY_HISTORY)
        cb_history(ud, rid, err, a ? a->history_resp : NULL);
}

static void cb_error(void *ud, int err, const char *text)
{
    it_device *d = ud;
    d->errors++;
    fprintf(stderr, "itest [%s]: ERROR frame %s: %s\n", d->name,
            sb_client_err_name(err), text);
}

static const sb_client_cbs IT_CBS = {
    .on_state = cb_state,
    .on_message = cb_message,
    .on_send_status = cb_send_status,
    .on_receipt = cb_receipt,
    .on_synced = cb_synced,
    .on_response = cb_response,
    .on_error = cb_error,
};

/* ---- devices
 * ---------------------------------------------------------------------- */

it_device *it_device_new(it_env *e, const char *user, const char *role,
                         const char *device_id)
{
    if (e->n_devs == IT_DEVICES_MAX) abort();
    it_device *d = calloc(1, sizeof *d);
    if (!d) abort();
    d->env = e;
    snprintf(d->user, sizeof d->user, "%s", user);
    snprintf(d->role, sizeof d->role, "%s", role);
    snprintf(d->device_id, sizeof d->device_id, "%s", device_id);
    snprintf(d->name, sizeof d->name, "%s/%s", user, device_id);
    snprintf(d->token, sizeof d->token, "%s", harness_token(user, role, 3600));
    sb_client_config_default(&d->cfg);
    snprintf(d->url, sizeof d->url, "%s", e->url);
    d->cfg.url = d->url;
    if (strchr(d->url, ',')) {
        snprintf(d->url_list, sizeof d->url_list, "%s", d->url);
        int n = sb_client_urls_split(d->url_list, d->urls, SB_CLIENT_URLS_MAX);
        if (n < 0) {
            fprintf(stderr, "itest: bad URL list %s\n", d->url);
            abort();
        }
        d->cfg.urls = d->urls;
        d->cfg.n_urls = (size_t)n;
    }
    d->cfg.enc = e->enc;
    d->cfg.token = d->token;
    d->cfg.device_id = d->device_id;
    d->cfg.client_name = "itest";
    d->cfg.backoff_ms_base = 20;
    d->cfg.backoff_ms_max = 200;
    d->cfg.outbox_max = 16384;
    d->cfg.track_max = 8192;
    d->cfg.connect_timeout_ms = 5000;
    e->devs[e->n_devs++] = d;
    return d;
}

int it_device_start(it_device *d)
{
    if (d->c) return -EALREADY;
    d->client_freed = false;
    d->state = SB_CLIENT_IDLE;
    int rc = sb_client_new(&d->env->loop, &d->cfg, &IT_CBS, d, &d->c);
    if (rc) {
        fprintf(stderr, "itest [%s]: sb_client_new: %d\n", d->name, rc);
        d->c = NULL;
        return rc;
    }
    d->generation++;
    /* Cursors given with it_device_set_cursor(). */
    for (size_t i = 0; i < d->n_convs; i++)
        if (d->convs[i].last)
            sb_client_set_cursor(d->c, d->convs[i].conv_id, d->convs[i].last);
    sb_client_start(d->c);
    return 0;
}

static bool dev_ready(void *arg)
{
    it_device *d = arg;
    return d->c && sb_client_get_state(d->c) == SB_CLIENT_READY;
}

bool it_device_wait_ready(it_device *d, int timeout_ms)
{
    return it_run_until(d->env, dev_ready, d, timeout_ms);
}

static void on_client_freed(void *ud)
{
    it_device *d = ud;
    d->client_freed = true;
    d->c = NULL;
}

static bool dev_freed(void *arg)
{
    it_device *d = arg;
    return d->c == NULL;
}

void it_device_stop(it_device *d)
{
    if (!d->c) return;
    sb_client_get_stats(d->c, &d->stats);
    sb_client_close(d->c, on_client_freed);
    if (!it_run_until(d->env, dev_freed, d, 5000))
        it_violation(d->env, d, "client not freed 5 s after sb_client_close");
}

int it_device_restart(it_device *d, bool restore_cursors)
{
    it_device_stop(d);
    d->client_freed = false;
    d->state = SB_CLIENT_IDLE;
    int rc = sb_client_new(&d->env->loop, &d->cfg, &IT_CBS, d, &d->c);
    if (rc) {
        d->c = NULL;
        return rc;
    }
    d->generation++;
    if (restore_cursors)
        for (size_t i = 0; i < d->n_convs; i++) {
            uint64_t last = log_last(&d->convs[i]);
            if (last) sb_client_set_cursor(d->c, d->convs[i].conv_id, last);
        }
    sb_client_start(d->c);
    return 0;
}

int it_device_set_cursor(it_device *d, uint64_t conv_id, uint64_t seq)
{
    it_conv_log *lg = log_get(d, conv_id);
    if (!lg || lg->n) return -EINVAL;
    lg->base = lg->last = seq;
    return d->c ? sb_client_set_cursor(d->c, conv_id, seq) : 0;
}

static bool open_done(void *arg)
{
    it_device *d = arg;
    return d->open_done;
}

uint64_t it_open(it_device *d, const char *member, int timeout_ms)
{
    d->open_done = false;
    d->open_err = 0;
    d->open_conv = 0;
    const char *members[1] = {member};
    int rc = sb_client_open(d->c, members, 1, "itest",
                            SBP__CONV_KIND__CONV_UNSPECIFIED, &d->open_rid);
    if (rc) {
        d->open_err = rc;
        return 0;
    }
    if (!it_run_until(d->env, open_done, d, timeout_ms)) {
        d->open_err = -ETIMEDOUT;
        return 0;
    }
    return d->open_err ? 0 : d->open_conv;
}

/* Registers the send id of d (with body) in the env. */
static void send_register(it_device *d, uint64_t conv_id, const uint8_t *id,
                          const char *body, size_t n)
{
    it_env *e = d->env;
    it_send *s = calloc(1, sizeof *s);
    if (!s) abort();
    memcpy(s->cmid, id, SB_CLIENT_MSG_ID_BYTES);
    s->conv_id = conv_id;
    s->dev = d;
    s->body_hash = it_hash(body, n);
    s->body_len = (uint32_t)n;
    s->status = SB_SEND_PENDING;
    if (it_send_find(e, id))
        it_violation(e, d, "the SDK made a client_msg_id twice");
    uint64_t k = cmid_key(id);
    s->hash_next = sb_map_get(&e->sends, k);
    if (sb_map_put(&e->sends, k, s) != 0) abort();
    e->n_sends++;
    d->n_sends++;
}

int it_send_text(it_device *d, uint64_t conv_id, const char *body)
{
    uint8_t id[SB_CLIENT_MSG_ID_BYTES];
    size_t n = strlen(body);
    int rc =
        sb_client_send(d->c, conv_id, SBP__MSG_TYPE__MSG_TEXT, body, n, 0, id);
    if (rc) return rc;
    send_register(d, conv_id, id, body, n);
    return 0;
}

int it_send_file(it_device *d, uint64_t conv_id, Sbp__MsgType type,
                 const char *path, const char *name, const char *caption,
                 uint8_t *id_out)
{
    uint8_t id[SB_CLIENT_MSG_ID_BYTES];
    int rc = sb_client_send_file(d->c, conv_id, type, path, name, caption, id);
    if (rc) return rc;
    send_register(d, conv_id, id, caption ? caption : "",
                  caption ? strlen(caption) : 0);
    if (id_out) memcpy(id_out, id, sizeof id);
    return 0;
}

int it_send_n(it_device *d, uint64_t conv_id, int first, int n, const char *tag)
{
    char body[128];
    for (int i = first; i < first + n; i++) {
        snprintf(body, sizeof body, "%s#%d", tag, i);
        int rc = it_send_text(d, conv_id, body);
        if (rc) return rc;
    }
    return 0;
}

typedef struct devs_arg {
    it_device *const *devs;
    size_t n;
    uint64_t conv_id, seq;
} devs_arg;

static bool devs_sent(void *arg)
{
    devs_arg *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        it_device *d = a->devs[i];
        if (d->n_sent + d->n_failed < d->n_sends) return false;
    }
    return true;
}

bool it_wait_sent(it_device *const *devs, size_t n, int timeout_ms)
{
    devs_arg a = {devs, n, 0, 0};
    if (n == 0) return true;
    return it_run_until(devs[0]->env, devs_sent, &a, timeout_ms);
}

bool it_device_saw_close(const it_device *d, uint16_t code)
{
    for (size_t i = 0; i < d->n_close_codes; i++)
        if (d->close_codes[i] == code) return true;
    return false;
}

void it_load_devices(it_env *e, it_load *l)
{
    char user[32], dev[32];
    for (size_t i = 0; i < l->n; i++) {
        snprintf(user, sizeof user, "agent%zu", i);
        snprintf(dev, sizeof dev, "agent%zu-desk", i);
        l->all[2 * i + 1] = l->agent[i] = it_device_new(e, user, "agent", dev);
        snprintf(user, sizeof user, "cust%zu", i);
        snprintf(dev, sizeof dev, "cust%zu-app", i);
        l->all[2 * i] = l->cust[i] = it_device_new(e, user, "customer", dev);
    }
}

bool it_load_open(it_load *l, int timeout_ms)
{
    char user[32];
    for (size_t i = 0; i < l->n; i++) {
        snprintf(user, sizeof user, "agent%zu", i);
        l->conv[i] = it_open(l->cust[i], user, timeout_ms);
        if (l->conv[i] == 0) return false;
    }
    return true;
}

static void load_top_up(const it_load *l, it_device *d, uint64_t conv_id)
{
    char body[96];
    while (d->n_sends < l->per_dev &&
           d->n_sends - (d->n_sent + d->n_failed) < l->inflight) {
        snprintf(body, sizeof body, "%s, conv %llu, #%zu", d->user,
                 (unsigned long long)conv_id, d->n_sends);
        if (it_send_text(d, conv_id, body) != 0) break;
    }
}

static void on_load(uv_timer_t *t)
{
    const it_load *l = t->data;
    for (size_t i = 0; i < l->n; i++) {
        load_top_up(l, l->cust[i], l->conv[i]);
        load_top_up(l, l->agent[i], l->conv[i]);
    }
}

void it_load_start(it_env *e, it_load *l)
{
    assert(!l->on);
    uv_timer_init(&e->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, on_load, 0, 2);
    l->on = true;
}

void it_load_stop(it_load *l)
{
    if (!l->on) return;
    uv_timer_stop(&l->timer);
    l->on = false;
}

size_t it_load_acked(const it_load *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += l->cust[i]->n_sent + l->agent[i]->n_sent;
    return n;
}

int it_load_converged(it_env *e, const it_load *l, int sent_ms, size_t *sends,
                      size_t *stored)
{
    assert(!l->on);
    int problems = 0;
    bool sent = it_wait_sent(l->all, 2 * l->n, sent_ms);
    size_t n_sends = 0, n_acked = 0, n_failed = 0, n_stored = 0;
    for (size_t i = 0; i < 2 * l->n; i++) {
        n_sends += l->all[i]->n_sends;
        n_acked += l->all[i]->n_sent;
        n_failed += l->all[i]->n_failed;
    }
    if (!sent || n_failed) {
        fprintf(stderr, "itest: %zu of %zu sends acked, %zu failed\n", n_acked,
                n_sends, n_failed);
        problems++;
    }
    for (size_t i = 0; i < l->n; i++) {
        uint64_t n = l->cust[i]->n_sends + l->agent[i]->n_sends;
        it_device *pair[2] = {l->cust[i], l->agent[i]};
        if (!it_wait_surfaced(pair, 2, l->conv[i], n, 60000)) {
            fprintf(stderr,
                    "itest: conv %llu: %s through %llu, %s through %llu, "
                    "expected %llu\n",
                    (unsigned long long)l->conv[i], l->cust[i]->name,
                    (unsigned long long)it_surfaced(l->cust[i], l->conv[i]),
                    l->agent[i]->name,
                    (unsigned long long)it_surfaced(l->agent[i], l->conv[i]),
                    (unsigned long long)n);
            problems++;
        }
    }
    it_run_for(e, 300); /* late duplicates would show now */
    for (size_t i = 0; i < l->n; i++) {
        uint64_t n = l->cust[i]->n_sends + l->agent[i]->n_sends;
        it_device *pair[2] = {l->cust[i], l->agent[i]};
        size_t in_store = 0;
        problems += it_check_conv(e, l->conv[i], pair, 2, n);
        problems += it_check_store(e, l->conv[i], l->cust[i], &in_store);
        problems += it_check_store(e, l->conv[i], l->agent[i], NULL);
        n_stored += in_store;
    }
    if (sends) *sends = n_sends;
    if (stored) *stored = n_stored;
    return problems;
}

typedef struct load_arg {
    const it_load *l;
    size_t want;
} load_arg;

static bool load_acked(void *arg)
{
    const load_arg *a = arg;
    return it_load_acked(a->l) >= a->want;
}

bool it_load_wait_acked(it_env *e, const it_load *l, size_t want,
                        int timeout_ms)
{
    load_arg a = {l, want};
    return it_run_until(e, load_acked, &a, timeout_ms);
}

bool it_server_exited(void *arg)
{
    it_exit *x = arg;
    x->rc = harness_stop_poll(x->srv, &x->status);
    return x->rc != 0;
}

static bool devs_surfaced(void *arg)
{
    devs_arg *a = arg;
    for (size_t i = 0; i < a->n; i++)
        if (it_surfaced(a->devs[i], a->conv_id) < a->seq) return false;
    return true;
}

bool it_wait_surfaced(it_device *const *devs, size_t n, uint64_t conv_id,
                      uint64_t seq, int timeout_ms)
{
    devs_arg a = {devs, n, conv_id, seq};
    if (n == 0) return true;
    return it_run_until(devs[0]->env, devs_surfaced, &a, timeout_ms);
}

static bool hist_done(void *arg)
{
    it_device *d = arg;
    return d->hist.done;
}

static int cmp_pair(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

int it_history_all(it_device *d, uint64_t conv_id, uint32_t page,
                   int timeout_ms)
{
    it_history *h = &d->hist;
    h->n = 0;
    uint64_t before = 0;
    int64_t deadline = harness_now_ms() + timeout_ms;
    for (int pages = 0; pages < 100000; pages++) {
        h->done = false;
        h->err = 0;
        h->more = false;
        size_t had = h->n;
        int rc = sb_client_history(d->c, conv_id, before, page, &h->rid);
        if (rc) return -1;
        int left = (int)(deadline - harness_now_ms());
        if (left <= 0 || !it_run_until(d->env, hist_done, d, left) || h->err)
            return -1;
        if (h->n == had) break;
        uint64_t lowest = h->seqs[had];
        for (size_t i = had; i < h->n; i++)
            if (h->seqs[i] < lowest) lowest = h->seqs[i];
        if (!h->more || lowest <= 1) break;
        before = lowest;
    }
    /* Sort ascending by seq (pairs). */
    uint64_t *pairs = malloc((h->n ? h->n : 1) * 2 * sizeof *pairs);
    if (!pairs) abort();
    for (size_t i = 0; i < h->n; i++) {
        pairs[2 * i] = h->seqs[i];
        pairs[2 * i + 1] = h->msg_ids[i];
    }
    qsort(pairs, h->n, 2 * sizeof *pairs, cmp_pair);
    for (size_t i = 0; i < h->n; i++) {
        h->seqs[i] = pairs[2 * i];
        h->msg_ids[i] = pairs[2 * i + 1];
    }
    free(pairs);
    return 0;
}

/* ---- cross-device checks
 * ------------------------------------------------------ */

typedef struct conv_check {
    it_env *e;
    uint64_t conv_id, n;
    const it_msg **table; /* by seq, 1..n */
    int problems;
} conv_check;

static void check_send(it_send *s, void *arg)
{
    conv_check *k = arg;
    if (s->conv_id != k->conv_id || s->status < SB_SEND_SENT ||
        s->status == SB_SEND_FAILED)
        return;
    char hx[33];
    hexid(s->cmid, SB_CLIENT_MSG_ID_BYTES, hx);
    if (s->seq == 0 || s->seq > k->n) {
        fprintf(stderr,
                "check: send %s of %s acked with seq %" PRIu64
                " beyond the %" PRIu64 " surfaced\n",
                hx, s->dev->name, s->seq, k->n);
        k->problems++;
        return;
    }
    const it_msg *m = k->table[s->seq];
    if (!m || m->msg_id != s->msg_id ||
        memcmp(m->cmid, s->cmid, SB_CLIENT_MSG_ID_BYTES) != 0 ||
        m->body_hash != s->body_hash) {
        fprintf(stderr,
                "check: send %s of %s (seq %" PRIu64 ", msg_id %" PRIu64
                ") is not what devices surfaced at that seq\n",
                hx, s->dev->name, s->seq, s->msg_id);
        k->problems++;
    }
}

int it_check_conv(it_env *e, uint64_t conv_id, it_device *const *devs, size_t n,
                  uint64_t n_expected)
{
    conv_check k = {e, conv_id, n_expected, NULL, 0};
    k.table = calloc(n_expected + 1, sizeof *k.table);
    if (!k.table) abort();
    for (size_t i = 0; i < n; i++) {
        it_device *d = devs[i];
        it_conv_log *lg = it_log(d, conv_id);
        if (!lg) {
            if (n_expected) {
                fprintf(stderr,
                        "check: %s surfaced nothing in conv %" PRIu64
                        " (expected %" PRIu64 ")\n",
                        d->name, conv_id, n_expected);
                k.problems++;
            }
            continue;
        }
        if (lg->base + lg->n != n_expected) {
            fprintf(stderr,
                    "check: %s surfaced %zu messages in conv %" PRIu64
                    " after cursor %" PRIu64 "; expected through %" PRIu64 "\n",
                    d->name, lg->n, conv_id, lg->base, n_expected);
            k.problems++;
        }
        for (size_t j = 0; j < lg->n; j++) {
            const it_msg *m = &lg->msgs[j];
            if (m->seq != lg->base + 1 + j) {
                fprintf(stderr,
                        "check: %s conv %" PRIu64
                        " position %zu has seq %" PRIu64 " (expected %" PRIu64
                        ")\n",
                        d->name, conv_id, j, m->seq, lg->base + 1 + j);
                k.problems++;
                break;
            }
            if (m->seq > n_expected) continue;
            const it_msg *t = k.table[m->seq];
            if (!t) {
                k.table[m->seq] = m;
            } else if (t->msg_id != m->msg_id ||
                       memcmp(t->cmid, m->cmid, SB_CLIENT_MSG_ID_BYTES) != 0 ||
                       t->body_hash != m->body_hash ||
                       strcmp(t->sender, m->sender) != 0) {
                fprintf(stderr,
                        "check: conv %" PRIu64 " seq %" PRIu64
                        ": %s has msg_id %" PRIu64 ", another device %" PRIu64
                        " (or body/sender/id differ)\n",
                        conv_id, m->seq, d->name, m->msg_id, t->msg_id);
                k.problems++;
            }
        }
    }
    it_sends_each(e, check_send, &k);
    free(k.table);
    return k.problems;
}

/* ---- store
 * --------------------------------------------------------------------- */

/* The rows from the store on PostgreSQL whose URL is in url_file. */
static long pg_store_rows(const char *url_file, uint64_t conv_id, it_row **rows)
{
    char url[300] = "";
    FILE *f = fopen(url_file, "r");
    if (!f || !fgets(url, sizeof url, f)) {
        if (f) fclose(f);
        return -1;
    }
    fclose(f);
    url[strcspn(url, "\r\n")] = '\0';
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "itest: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    char sql[256], id[24];
    snprintf(id, sizeof id, "%" PRIu64, conv_id);
    snprintf(sql, sizeof sql,
             "SELECT conv_id, seq, msg_id, encode(client_msg_id, 'hex'),"
             " sender, body FROM messages %s ORDER BY conv_id, seq",
             conv_id ? "WHERE conv_id = $1" : "");
    const char *v[1] = {id};
    PGresult *res =
        PQexecParams(c, sql, conv_id ? 1 : 0, NULL, v, NULL, NULL, 0);
    long n = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "itest: %s", PQerrorMessage(c));
        goto out;
    }
    n = PQntuples(res);
    it_row *r = calloc(n ? (size_t)n : 1, sizeof *r);
    if (!r) abort();
    for (long i = 0; i < n; i++) {
        it_row *w = &r[i];
        w->conv_id = strtoull(PQgetvalue(res, (int)i, 0), NULL, 10);
        w->seq = strtoull(PQgetvalue(res, (int)i, 1), NULL, 10);
        w->msg_id = strtoull(PQgetvalue(res, (int)i, 2), NULL, 10);
        const char *h = PQgetvalue(res, (int)i, 3);
        size_t hl = strlen(h) / 2;
        if (hl > SB_CLIENT_MSG_ID_BYTES) hl = SB_CLIENT_MSG_ID_BYTES;
        for (size_t k = 0; k < hl; k++)
            sscanf(h + 2 * k, "%2hhx", &w->cmid[k]);
        w->cmid_len = strlen(h) / 2;
        snprintf(w->sender, sizeof w->sender, "%s", PQgetvalue(res, (int)i, 4));
        const char *body = PQgetvalue(res, (int)i, 5);
        size_t len = (size_t)PQgetlength(res, (int)i, 5);
        w->body_hash = it_hash((const unsigned char *)body, len);
        w->body_len = (uint32_t)len;
    }
    *rows = r;
out:
    PQclear(res);
    PQfinish(c);
    return n;
}

long it_store_rows(const char *data_dir, uint64_t conv_id, it_row **rows)
{
    *rows = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/store.url", data_dir);
    if (access(path, F_OK) == 0) return pg_store_rows(path, conv_id, rows);
    snprintf(path, sizeof path, "%s/switchboard.db", data_dir);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "itest: cannot open %s: %s\n", path,
                db ? sqlite3_errmsg(db) : "?");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 5000);
    const char *sql =
        conv_id ? "SELECT conv_id, seq, msg_id, client_msg_id, sender, body "
                  "FROM messages WHERE conv_id = ?1 ORDER BY seq"
                : "SELECT conv_id, seq, msg_id, client_msg_id, sender, body "
                  "FROM messages ORDER BY conv_id, seq";
    sqlite3_stmt *st = NULL;
    long n = 0;
    size_t cap = 0;
    it_row *r = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "itest: %s\n", sqlite3_errmsg(db));
        n = -1;
        goto out;
    }
    if (conv_id) sqlite3_bind_int64(st, 1, (sqlite3_int64)conv_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((size_t)n == cap) {
            cap = cap ? cap * 2 : 1024;
            it_row *p = realloc(r, cap * sizeof *p);
            if (!p) abort();
            r = p;
        }
        it_row *w = &r[n++];
        memset(w, 0, sizeof *w);
        w->conv_id = (uint64_t)sqlite3_column_int64(st, 0);
        w->seq = (uint64_t)sqlite3_column_int64(st, 1);
        w->msg_id = (uint64_t)sqlite3_column_int64(st, 2);
        int bl = sqlite3_column_bytes(st, 3);
        const void *b = sqlite3_column_blob(st, 3);
        w->cmid_len = (size_t)bl;
        if (b && bl > 0)
            memcpy(w->cmid, b,
                   bl < SB_CLIENT_MSG_ID_BYTES ? (size_t)bl
                                               : SB_CLIENT_MSG_ID_BYTES);
        const unsigned char *s = sqlite3_column_text(st, 4);
        snprintf(w->sender, sizeof w->sender, "%s", s ? (const char *)s : "");
        const unsigned char *body = sqlite3_column_text(st, 5);
        int len = sqlite3_column_bytes(st, 5);
        w->body_hash =
            it_hash(body ? body : (const unsigned char *)"", (size_t)len);
        w->body_len = (uint32_t)len;
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "itest: reading messages: %s\n", sqlite3_errmsg(db));
        n = -1;
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (n < 0) {
        free(r);
        return -1;
    }
    *rows = r;
    return n;
}

typedef struct store_check {
    uint64_t conv_id;
    const it_row *rows;
    long n;
    size_t sends; /* registered sends to the conv */
    int problems;
} store_check;

static void store_check_send(it_send *s, void *arg)
{
    store_check *k = arg;
    if (s->conv_id != k->conv_id) return;
    k->sends++;
    if (s->status < SB_SEND_SENT || s->status == SB_SEND_FAILED) return;
    char hx[33];
    hexid(s->cmid, SB_CLIENT_MSG_ID_BYTES, hx);
    if (s->seq == 0 || (long)s->seq > k->n) {
        fprintf(stderr,
                "store: acked send %s of %s (seq %" PRIu64
                ") is not in the store (I1)\n",
                hx, s->dev->name, s->seq);
        k->problems++;
        return;
    }
    const it_row *r = &k->rows[s->seq - 1];
    if (r->seq != s->seq || r->msg_id != s->msg_id ||
        r->cmid_len != SB_CLIENT_MSG_ID_BYTES ||
        memcmp(r->cmid, s->cmid, SB_CLIENT_MSG_ID_BYTES) != 0 ||
        r->body_hash != s->body_hash || strcmp(r->sender, s->dev->user) != 0) {
        fprintf(stderr,
                "store: acked send %s of %s (seq %" PRIu64 ", msg_id %" PRIu64
                ") differs from the stored row (msg_id %" PRIu64 ") (I1)\n",
                hx, s->dev->name, s->seq, s->msg_id, r->msg_id);
        k->problems++;
    }
}

static int cmp_row_key(const void *a, const void *b)
{
    const it_row *x = *(const it_row *const *)a, *y = *(const it_row *const *)b;
    int c = strcmp(x->sender, y->sender);
    if (c) return c;
    if (x->cmid_len != y->cmid_len) return x->cmid_len < y->cmid_len ? -1 : 1;
    return memcmp(x->cmid, y->cmid, x->cmid_len);
}

int it_check_store(it_env *e, uint64_t conv_id, it_device *d, size_t *n_out)
{
    it_row *rows = NULL;
    long n = it_store_rows(e->data_dir, conv_id, &rows);
    if (n_out) *n_out = n > 0 ? (size_t)n : 0;
    if (n < 0) return 1;
    store_check k = {conv_id, rows, n, 0, 0};
    for (long i = 0; i < n; i++) {
        if (rows[i].seq != (uint64_t)i + 1) {
            fprintf(stderr,
                    "store: conv %" PRIu64 " row %ld has seq %" PRIu64
                    " (seqs not dense, I3)\n",
                    conv_id, i, rows[i].seq);
            k.problems++;
            break;
        }
    }
    /* (sender, client_msg_id) unique. */
    const it_row **byk = malloc((n ? (size_t)n : 1) * sizeof *byk);
    if (!byk) abort();
    for (long i = 0; i < n; i++)
        byk[i] = &rows[i];
    qsort(byk, (size_t)n, sizeof *byk, cmp_row_key);
    for (long i = 1; i < n; i++)
        if (byk[i]->cmid_len && cmp_row_key(&byk[i - 1], &byk[i]) == 0) {
            fprintf(stderr,
                    "store: conv %" PRIu64 " seqs %" PRIu64 " and %" PRIu64
                    " have the same (sender, client_msg_id) (I2)\n",
                    conv_id, byk[i - 1]->seq, byk[i]->seq);
            k.problems++;
        }
    free(byk);
    /* Every acked send is there, as acked (I1). */
    it_sends_each(e, store_check_send, &k);
    if ((long)k.sends != n) {
        fprintf(stderr,
                "store: conv %" PRIu64 " holds %ld messages, %zu distinct "
                "client_msg_ids were sent to it\n",
                conv_id, n, k.sends);
        k.problems++;
    }
    /* The device converged to the store (I4). */
    if (d) {
        it_conv_log *lg = it_log(d, conv_id);
        size_t have = lg ? lg->n : 0;
        uint64_t base = lg ? lg->base : 0;
        if (base != 0 || (long)have != n) {
            fprintf(stderr,
                    "store: conv %" PRIu64 " has %ld messages, %s surfaced %zu "
                    "(from cursor %" PRIu64 ") (I4)\n",
                    conv_id, n, d->name, have, base);
            k.problems++;
        }
        for (long i = 0; lg && i < n && (size_t)i < have; i++) {
            const it_msg *m = &lg->msgs[i];
            const it_row *r = &rows[i];
            if (m->seq != r->seq || m->msg_id != r->msg_id ||
                m->body_hash != r->body_hash ||
                memcmp(m->cmid, r->cmid, SB_CLIENT_MSG_ID_BYTES) != 0) {
                fprintf(stderr,
                        "store: conv %" PRIu64 " seq %" PRIu64
                        " msg_id %" PRIu64 " but %s surfaced seq %" PRIu64
                        " msg_id %" PRIu64 " (I4)\n",
                        conv_id, r->seq, r->msg_id, d->name, m->seq, m->msg_id);
                k.problems++;
                break;
            }
        }
    }
    free(rows);
    return k.problems;
}

typedef struct acked_check {
    const it_row *rows;
    long n;
    size_t acked;
    int problems;
} acked_check;

static void acked_check_send(it_send *s, void *arg)
{
    acked_check *k = arg;
    if (s->status < SB_SEND_SENT || s->status == SB_SEND_FAILED) return;
    k->acked++;
    /* Rows are ordered by (conv_id, seq): binary search. */
    long lo = 0, hi = k->n - 1;
    const it_row *r = NULL;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        const it_row *m = &k->rows[mid];
        if (m->conv_id == s->conv_id && m->seq == s->seq) {
            r = m;
            break;
        }
        if (m->conv_id < s->conv_id ||
            (m->conv_id == s->conv_id && m->seq < s->seq))
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    if (!r || r->msg_id != s->msg_id ||
        memcmp(r->cmid, s->cmid, SB_CLIENT_MSG_ID_BYTES) != 0 ||
        r->body_hash != s->body_hash) {
        char hx[33];
        hexid(s->cmid, SB_CLIENT_MSG_ID_BYTES, hx);
        fprintf(stderr,
                "store: acked send %s of %s (conv %" PRIu64 " seq %" PRIu64
                " msg_id %" PRIu64 ") %s (I1)\n",
                hx, s->dev->name, s->conv_id, s->seq, s->msg_id,
                r ? "differs from the stored row" : "is missing");
        k->problems++;
    }
}

int it_check_acked_in_store(it_env *e, size_t *acked)
{
    it_row *rows = NULL;
    long n = it_store_rows(e->data_dir, 0, &rows);
    if (acked) *acked = 0;
    if (n < 0) return 1;
    acked_check k = {rows, n, 0, 0};
    it_sends_each(e, acked_check_send, &k);
    free(rows);
    if (acked) *acked = k.acked;
    return k.problems;
}

/* ---- raw client
 * --------------------------------------------------------------- */

static uint64_t raw_rand(it_raw *r)
{
    uint64_t x = r->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->rng = x;
    return x;
}

static void raw_ws_rand(void *ud, uint8_t *p, size_t n)
{
    it_raw *r = ud;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)raw_rand(r);
}

static void raw_ws_msg(void *ud, bool text, const uint8_t *p, size_t n)
{
    it_raw *r = ud;
    it_rx *x = malloc(sizeof *x + n);
    if (!x) abort();
    x->next = NULL;
    x->text = text;
    x->n = n;
    if (n) memcpy(x->p, p, n);
    if (r->tail)
        r->tail->next = x;
    else
        r->head = x;
    r->tail = x;
}

int it_tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int it_raw_write(it_raw *r, const void *p, size_t n)
{
    return write_all(r->fd, p, n);
}

static void raw_flush(it_raw *r)
{
    if (!r->ws) return;
    sb_buf out = SB_BUF_INIT;
    if (sb_ws_pull(r->ws, &out) == 0 && out.len)
        (void)write_all(r->fd, out.data, out.len);
    sb_buf_free(&out);
}

/* Follows the server's frames (unmasked) through the bytes received and
 * notes the code of the first close frame, and when pings came. */
static void raw_tap(it_raw *r, const uint8_t *p, size_t n)
{
    if (r->tap_close >= 0) return;
    if (sb_buf_append(&r->tap, p, n) != 0) return;
    for (;;) {
        const uint8_t *b = r->tap.data;
        size_t len = r->tap.len;
        if (len < 2) return;
        size_t hdr = 2;
        uint64_t plen = b[1] & 0x7f;
        if (plen == 126) {
            if (len < 4) return;
            plen = (uint64_t)b[2] << 8 | b[3];
            hdr = 4;
        } else if (plen == 127) {
            if (len < 10) return;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | b[2 + i];
            hdr = 10;
        }
        if (b[1] & 0x80) hdr += 4; /* a server must not mask; cope anyway */
        if (len < hdr + plen) return;
        if (b[0] & 0x40) r->compressed_rx++; /* RSV1: permessage-deflate */
        if ((b[0] & 0x0f) == 0x9 && r->tap_pings++ < IT_RAW_PINGS_MAX)
            r->tap_ping_ms[r->tap_pings - 1] = harness_now_ms();
        if ((b[0] & 0x0f) == 0x8) {
            r->tap_close = plen >= 2 && !(b[1] & 0x80)
                               ? (int)(b[hdr] << 8 | b[hdr + 1])
                               : 1005;
            sb_buf_free(&r->tap);
            return;
        }
        sb_buf_consume(&r->tap, hdr + (size_t)plen);
    }
}

/* Waits up to timeout_ms for bytes and feeds them. 1: bytes read, 0:
 * timeout, -1: the connection ended. */
static int raw_pump(it_raw *r, int timeout_ms)
{
    if (r->eof) return -1;
    struct pollfd pf = {.fd = r->fd, .events = POLLIN};
    int pr = poll(&pf, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (pr < 0) return errno == EINTR ? 0 : -1;
    if (pr == 0) return 0;
    uint8_t buf[65536];
    ssize_t n = recv(r->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
    if (n <= 0) {
        r->eof = true;
        r->io_err = n < 0 ? errno : 0;
        return -1;
    }
    raw_tap(r, buf, (size_t)n);
    if (r->ws) {
        (void)sb_ws_feed(r->ws, buf, (size_t)n);
        raw_flush(r);
    }
    return 1;
}

static int raw_open(it_raw *r, uint16_t port, sb_encoding enc,
                    const char *subproto, bool deflate, uint32_t min_bytes)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->enc = enc;
    r->tap_close = -1;
    r->rng = (uint64_t)(uintptr_t)r ^ ((uint64_t)harness_now_ms() << 20) ^
             ((uint64_t)getpid() << 40) ^ 0x9e3779b97f4a7c15ull;
    if (!r->rng) r->rng = 1;
    r->fd = it_tcp_connect(port);
    if (r->fd < 0) return -1;
    const char *proto =
        subproto ? subproto
                 : (enc == SB_ENC_JSON ? SB_SUBPROTO_JSON : SB_SUBPROTO_PROTO);
    uint8_t nonce[16];
    raw_ws_rand(r, nonce, sizeof nonce);
    char key[SB_WS_KEY_LEN + 8];
    sb_b64_encode(nonce, sizeof nonce, key, 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", port);
    sb_client_url u;
    sb_buf req = SB_BUF_INIT, in = SB_BUF_INIT;
    int rc = -1;
    if (sb_client_url_parse(url, &u) != 0 ||
        sb_client_hs_request(&u, key, proto, deflate, &req) != 0 ||
        write_all(r->fd, req.data, req.len) != 0)
        goto out;
    int64_t deadline = harness_now_ms() + 5000;
    int head = 0;
    while (harness_now_ms() < deadline) {
        struct pollfd pf = {.fd = r->fd, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0) continue;
        uint8_t buf[4096];
        ssize_t n = recv(r->fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        if (sb_buf_append(&in, buf, (size_t)n) != 0) break;
        int status = 0;
        head = sb_client_hs_response(in.data, in.len, key, proto, deflate,
                                     &r->deflate, &status);
        r->http_status = status;
        if (head != 0) break;
    }
    if (head <= 0) goto out;
    sb_ws_cbs cbs = {.on_msg = raw_ws_msg, .rand_bytes = raw_ws_rand};
    sb_ws_config wc = {.client = true,
                       .msg_bytes_max = 16u << 20,
                       .deflate = r->deflate,
                       .deflate_min_bytes = min_bytes};
    if (sb_ws_new(NULL, &wc, &cbs, r, &r->ws) != 0) goto out;
    if (in.len > (size_t)head) {
        raw_tap(r, in.data + head, in.len - (size_t)head);
        (void)sb_ws_feed(r->ws, in.data + head, in.len - (size_t)head);
        raw_flush(r);
    }
    rc = 0;
out:
    sb_buf_free(&req);
    sb_buf_free(&in);
    if (rc) {
        close(r->fd);
        r->fd = -1;
    }
    return rc;
}

int it_raw_open(it_raw *r, uint16_t port, sb_encoding enc, const char *subproto)
{
    return raw_open(r, port, enc, subproto, false, 0);
}

int it_raw_open_deflate(it_raw *r, uint16_t port, sb_encoding enc, bool deflate,
                        uint32_t min_bytes)
{
    return raw_open(r, port, enc, NULL, deflate, min_bytes);
}

void it_raw_close(it_raw *r)
{
    while (r->head) {
        it_rx *x = r->head;
        r->head = x->next;
        free(x);
    }
    r->tail = NULL;
    sb_ws_free(r->ws);
    r->ws = NULL;
    sb_buf_free(&r->tap);
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
}

int it_raw_send_ws(it_raw *r, bool text, const void *p, size_t n)
{
    if (!r->ws) return -ENOTCONN;
    int rc = sb_ws_send(r->ws, text, p, n);
    if (rc) return rc;
    sb_buf out = SB_BUF_INIT;
    rc = sb_ws_pull(r->ws, &out);
    if (rc == 0) rc = write_all(r->fd, out.data, out.len);
    sb_buf_free(&out);
    return rc;
}

uint32_t it_raw_send(it_raw *r, Sbp__Frame *f)
{
    if (f->rid == 0) {
        if (++r->rid == 0) r->rid = 1;
        f->rid = r->rid;
    }
    sb_buf b = SB_BUF_INIT;
    int rc = sb_frame_encode(r->enc, f, &b);
    if (rc == 0) rc = it_raw_send_ws(r, r->enc == SB_ENC_JSON, b.data, b.len);
    sb_buf_free(&b);
    return rc == 0 ? f->rid : 0;
}

Sbp__Frame *it_raw_recv(it_raw *r, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    while (!r->head) {
        int64_t left = deadline - harness_now_ms();
        if (left <= 0) return NULL;
        if (raw_pump(r, (int)(left < 50 ? left : 50)) < 0 && !r->head)
            return NULL;
    }
    it_rx *x = r->head;
    r->head = x->next;
    if (!r->head) r->tail = NULL;
    Sbp__Frame *f = NULL;
    int rc = sb_frame_decode(r->enc, x->p, x->n, &f);
    if (rc != 0) {
        fprintf(stderr,
                "itest raw: undecodable frame from the server (%zu "
                "bytes, rc %d)\n",
                x->n, rc);
        f = NULL;
    }
    free(x);
    return f;
}

Sbp__Frame *it_raw_expect(it_raw *r, Sbp__Frame__BodyCase bc, uint32_t rid,
                          int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - harness_now_ms();
        if (left <= 0) return NULL;
        Sbp__Frame *f = it_raw_recv(r, (int)left);
        if (!f) {
            if (r->eof && !r->head) return NULL;
            continue;
        }
        if (f->body_case == bc && (rid == 0 || f->rid == rid)) return f;
        sb_frame_free(f);
    }
}

int it_raw_wait_close(it_raw *r, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        if (r->tap_close >= 0) return r->tap_close;
        if (r->eof) return 0;
        int64_t left = deadline - harness_now_ms();
        if (left <= 0) return -1;
        raw_pump(r, (int)(left < 50 ? left : 50));
    }
}

int it_raw_hello(it_raw *r, const char *token, const char *device_id,
                 int timeout_ms)
{
    Sbp__Hello h = SBP__HELLO__INIT;
    h.token = (char *)token;
    h.device_id = (char *)device_id;
    h.client = (char *)"itest-raw";
    h.protocol = 1;
    h.locale = (char *)"en";
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_HELLO;
    f.hello = &h;
    uint32_t rid = it_raw_send(r, &f);
    if (!rid) return -1;
    int64_t deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - harness_now_ms();
        if (left <= 0) return -1;
        Sbp__Frame *g = it_raw_recv(r, (int)left);
        if (!g) {
            if (r->eof && !r->head) return -1;
            continue;
        }
        int rc = -2;
        if (g->body_case == SBP__FRAME__BODY_WELCOME)
            rc = 0;
        else if (g->body_case == SBP__FRAME__BODY_ERROR)
            rc = (int)g->error->code;
        sb_frame_free(g);
        if (rc != -2) return rc;
    }
}

uint32_t it_raw_send_msg(it_raw *r, const uint8_t *cmid, uint64_t conv_id,
                         const char *body)
{
    Sbp__Send s = SBP__SEND__INIT;
    s.client_msg_id.data = (uint8_t *)cmid;
    s.client_msg_id.len = SB_CLIENT_MSG_ID_BYTES;
    s.conv_id = conv_id;
    s.type = SBP__MSG_TYPE__MSG_TEXT;
    s.body = (char *)body;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_SEND;
    f.send = &s;
    return it_raw_send(r, &f);
}

int it_http_fd(int fd, const void *req, size_t n, char *resp, size_t cap,
               int timeout_ms, bool *closed)
{
    if (closed) *closed = false;
    if (cap) resp[0] = '\0';
    if (fd < 0) return -1;
    if (write_all(fd, req, n) != 0) {
        /* The server may answer and close before reading everything. */
    }
    size_t len = 0;
    int64_t deadline = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < deadline) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0) continue;
        char buf[4096];
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k <= 0) {
            if (closed) *closed = true;
            break;
        }
        size_t take = (size_t)k;
        if (cap && len + take > cap - 1) take = cap - 1 - len;
        memcpy(resp + len, buf, take);
        len += take;
        resp[len] = '\0';
    }
    close(fd);
    int status = -1;
    if (len >= 12 && strncmp(resp, "HTTP/1.", 7) == 0) status = atoi(resp + 9);
    return status;
}

int it_http(uint16_t port, const void *req, size_t n, char *resp, size_t cap,
            int timeout_ms, bool *closed)
{
    if (closed) *closed = false;
    if (cap) resp[0] = '\0';
    return it_http_fd(it_tcp_connect(port), req, n, resp, cap, timeout_ms,
                      closed);
}

/* ---- a well-behaved pair in the background ---------------------------------
 */

static void pair_tick(uv_timer_t *t)
{
    it_pair *p = t->data;
    uint64_t conv = atomic_load(&p->conv);
    for (int i = 0; i < 2; i++)
        if (!p->max_sends || p->d[i]->n_sends < p->max_sends)
            it_send_n(p->d[i], conv, p->next[i]++, 1, i ? p->agent : p->cust);
}

static void *pair_main(void *arg)
{
    it_pair *p = arg;
    int64_t t0 = harness_now_ms();
    uint64_t conv = atomic_load(&p->conv);
    if (it_device_start(p->d[1]) == 0 && it_device_wait_ready(p->d[1], 15000) &&
        it_device_start(p->d[0]) == 0 && it_device_wait_ready(p->d[0], 15000))
        conv = it_open(p->d[0], p->agent, 15000);
    if (!conv) {
        atomic_store(&p->ready, -1);
        return NULL;
    }
    atomic_store(&p->conv, conv);
    uv_timer_init(&p->env.loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, pair_tick, 0, p->interval_ms);
    atomic_store(&p->ready, 1);
    while (!atomic_load(&p->stop))
        it_run_for(&p->env, 20);
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, NULL);
    bool ok = it_wait_sent(p->d, 2, 30000);
    uint64_t n = p->d[0]->n_sends + p->d[1]->n_sends;
    ok = ok && it_wait_surfaced(p->d, 2, conv, n, 30000);
    it_run_for(&p->env, 200);
    p->problems = ok ? 0 : 1;
    if (!ok) fprintf(stderr, "pair: not all sent or surfaced\n");
    p->problems += it_check_conv(&p->env, conv, p->d, 2, n);
    p->problems += it_check_store(&p->env, conv, p->d[0], NULL);
    p->violations = p->env.violations;
    for (int i = 0; i < 2; i++) {
        p->sent[i] = p->d[i]->n_sent;
        p->surfaced[i] = it_surfaced(p->d[i], conv);
        p->readies[i] = p->d[i]->readies;
        p->backoffs[i] = p->d[i]->backoffs;
    }
    p->ms = (long long)(harness_now_ms() - t0);
    return NULL;
}

int it_pair_start(it_pair *p, const it_env *e, int wait_ms)
{
    atomic_init(&p->ready, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->conv, 0);
    memset(p->next, 0, sizeof p->next);
    it_env_init(&p->env);
    snprintf(p->env.url, sizeof p->env.url, "%s", e->url);
    snprintf(p->env.data_dir, sizeof p->env.data_dir, "%s", e->data_dir);
    /* Devices (and their tokens: the harness's token buffer is not
     * thread-safe) are made here, before the thread runs. */
    char dev[2][80];
    snprintf(dev[0], sizeof dev[0], "%s-d1", p->cust);
    snprintf(dev[1], sizeof dev[1], "%s-d1", p->agent);
    p->d[1] = it_device_new(&p->env, p->agent, "agent", dev[1]);
    p->d[0] = it_device_new(&p->env, p->cust, "customer", dev[0]);
    if (pthread_create(&p->th, NULL, pair_main, p) != 0) {
        it_env_free(&p->env);
        return -1;
    }
    p->started = true;
    int64_t deadline = harness_now_ms() + 2 * wait_ms;
    while (atomic_load(&p->ready) == 0 && harness_now_ms() < deadline) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    p->started_ms = harness_now_ms();
    return atomic_load(&p->ready) == 1 ? 0 : -1;
}

void it_pair_stop(it_pair *p)
{
    if (!p->started) return;
    atomic_store(&p->stop, 1);
    pthread_join(p->th, NULL);
    p->started = false;
    it_env_free(&p->env);
}

uint64_t it_pair_conv(it_pair *p)
{
    return atomic_load(&p->conv);
}
