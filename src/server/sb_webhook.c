/* Webhooks (sb_webhook.h): the configuration, the outbox's dispatcher on
 * the loop and the delivery thread around libcurl's multi interface. */
#include "sb_webhook.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sb_error.h"

#define TICK_MS 200
#define RELOAD_MS 30000 /* the configuration is read again this often */
#define SIG_BYTES 128
#define FAILED_LIST_MAX 200

typedef struct endpoint {
    char id[SB_ID_BYTES_MAX + 1];
    char url[SB_WEBHOOK_URL_BYTES_MAX + 1];
    char secret[SB_WEBHOOK_SECRET_BYTES_MAX + 1];
    uint32_t wants; /* sb_hook_event bits */
} endpoint;

typedef struct wh_config {
    endpoint ep[SB_WEBHOOK_ENDPOINTS_MAX];
    size_t n;
    uint32_t max_attempts;
    uint32_t retry_base_ms, retry_max_ms;
} wh_config;

/* One post, made on the loop, carried out on the delivery thread, then
 * reported back. */
typedef struct job {
    int64_t id;
    uint32_t attempts; /* before this one */
    char url[SB_WEBHOOK_URL_BYTES_MAX + 1];
    char *body;
    char sig[SIG_BYTES];
    char event_id[32];
    bool ok;
    char error[SB_STORE_HOOK_ERROR_BYTES_MAX + 1];
    CURL *easy;
    struct curl_slist *headers;
    struct job *next;
} job;

struct sb_webhook {
    uv_loop_t *loop;
    sb_storeq *q;
    sb_gw *gw;
    wh_config cfg;
    bool loaded, stopping, claiming, loading;
    int64_t last_load_ms;
    size_t inflight; /* jobs handed to the thread, not yet reported */
    uv_timer_t timer;
    uv_async_t async;
    uv_thread_t thread;
    bool thread_started;
    uv_mutex_t mu;
    CURLM *multi;
    job *in;          /* loop -> thread, under mu */
    job *out;         /* thread -> loop, under mu */
    bool thread_stop; /* under mu */
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the configuration ----------------------------------------------------
 */

static void config_default(wh_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_attempts = 10;
    c->retry_base_ms = 5000;
    c->retry_max_ms = 3600000;
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SB_ID_BYTES_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* An unsigned member of o in lo..hi, def when absent; false otherwise. */
static bool uint_in(const json_t *o, const char *key, uint32_t lo, uint32_t hi,
                    uint32_t def, uint32_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        *out = def;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo ||
        json_integer_value(v) > hi)
        return false;
    *out = (uint32_t)json_integer_value(v);
    return true;
}

/* Parses the document text into c; on failure, err says what is wrong. */
static int config_parse(const char *text, wh_config *c, char *err, size_t cap)
{
    config_default(c);
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    int rc = SB_E_INVALID;
    if (!json_is_object(root)) {
        snprintf(err, cap, "not a JSON object: %s", root ? "" : je.text);
        goto out;
    }
    json_t *eps = json_object_get(root, "endpoints");
    if (eps && (!json_is_array(eps) ||
                json_array_size(eps) > SB_WEBHOOK_ENDPOINTS_MAX)) {
        snprintf(err, cap, "endpoints: an array of at most %d",
                 SB_WEBHOOK_ENDPOINTS_MAX);
        goto out;
    }
    if (!uint_in(root, "max_attempts", 1, 50, 10, &c->max_attempts) ||
        !uint_in(root, "retry_base_ms", 100, 3600000, 5000,
                 &c->retry_base_ms) ||
        !uint_in(root, "retry_max_ms", 100, 86400000, 3600000,
                 &c->retry_max_ms) ||
        c->retry_max_ms < c->retry_base_ms) {
        snprintf(err, cap,
                 "max_attempts is 1..50, retry_base_ms 100..3600000, "
                 "retry_max_ms retry_base_ms..86400000");
        goto out;
    }
    size_t i;
    json_t *e;
    json_array_foreach(eps, i, e)
    {
        endpoint *ep = &c->ep[i];
        const char *id = json_string_value(json_object_get(e, "id"));
        const char *url = json_string_value(json_object_get(e, "url"));
        const char *sec = json_string_value(json_object_get(e, "secret"));
        json_t *evs = json_object_get(e, "events");
        if (!json_is_object(e) || !id || !id_ok(id)) {
            snprintf(err, cap,
                     "endpoints[%zu].id: 1..64 of letters, digits, - and _", i);
            goto out;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(c->ep[k].id, id) == 0) {
                snprintf(err, cap, "endpoints[%zu].id: %s twice", i, id);
                goto out;
            }
        if (!url || strlen(url) > SB_WEBHOOK_URL_BYTES_MAX ||
            (strncmp(url, "http://", 7) != 0 &&
             strncmp(url, "https://", 8) != 0)) {
            snprintf(err, cap,
                     "endpoints[%zu].url: an http:// or https:// URL of at "
                     "most %d bytes",
                     i, SB_WEBHOOK_URL_BYTES_MAX);
            goto out;
        }
        if (!sec || strlen(sec) < 16 ||
            strlen(sec) > SB_WEBHOOK_SECRET_BYTES_MAX) {
            snprintf(err, cap, "endpoints[%zu].secret: 16..%d bytes", i,
                     SB_WEBHOOK_SECRET_BYTES_MAX);
            goto out;
        }
        if (!json_is_array(evs) || json_array_size(evs) == 0) {
            snprintf(err, cap, "endpoints[%zu].events: a non-empty array", i);
            goto out;
        }
        size_t k;
        json_t *ev;
        json_array_foreach(evs, k, ev)
        {
            const char *name = json_string_value(ev);
            sb_hook_event bit =
                name ? (strcmp(name, "*") == 0 ? (1u << SB_HOOK_EVENTS) - 1
                                               : sb_hook_event_from_name(name))
                     : 0;
            if (!bit) {
                snprintf(err, cap, "endpoints[%zu].events[%zu]: no such event",
                         i, k);
                goto out;
            }
            ep->wants |= bit;
        }
        snprintf(ep->id, sizeof ep->id, "%s", id);
        snprintf(ep->url, sizeof ep->url, "%s", url);
        snprintf(ep->secret, sizeof ep->secret, "%s", sec);
        c->n++;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* The configuration as webhooks-show tells it: secrets are not shown. */
static char *config_show(const wh_config *c)
{
    json_t *eps = json_array();
    for (size_t i = 0; i < c->n; i++) {
        json_t *evs = json_array();
        for (int k = 0; k < SB_HOOK_EVENTS; k++)
            if (c->ep[i].wants & (1u << k))
                json_array_append_new(evs,
                                      json_string(sb_hook_event_name(1u << k)));
        json_array_append_new(eps, json_pack("{s:s,s:s,s:o,s:b}", "id",
                                             c->ep[i].id, "url", c->ep[i].url,
                                             "events", evs, "secret_set", 1));
    }
    json_t *j =
        json_pack("{s:o,s:i,s:i,s:i}", "endpoints", eps, "max_attempts",
                  (int)c->max_attempts, "retry_base_ms", (int)c->retry_base_ms,
                  "retry_max_ms", (int)c->retry_max_ms);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

static const endpoint *endpoint_find(const sb_webhook *wh, const char *id)
{
    for (size_t i = 0; i < wh->cfg.n; i++)
        if (strcmp(wh->cfg.ep[i].id, id) == 0) return &wh->cfg.ep[i];
    return NULL;
}

static uint32_t wanted(const sb_webhook *wh, uint32_t events)
{
    uint32_t any = 0;
    for (size_t i = 0; i < wh->cfg.n; i++)
        any |= wh->cfg.ep[i].wants & events;
    return any;
}

/* ---- attaching events to writes -------------------------------------------
 */

static sb_req_hooks *hooks_make(const sb_webhook *wh)
{
    sb_req_hooks *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    for (size_t i = 0; i < wh->cfg.n; i++) {
        snprintf(h->endpoint[i], sizeof h->endpoint[i], "%s", wh->cfg.ep[i].id);
        h->wants[i] = wh->cfg.ep[i].wants;
    }
    h->n = wh->cfg.n;
    return h;
}

/* csat.submitted, with the rating a CSAT_SET stores: its data is
 * {"conv_id", "customer", "rating", "comment"}. */
static void attach_csat(sb_webhook *wh, sb_req *r)
{
    if (!wanted(wh, SB_HOOK_CSAT_SUBMITTED)) return;
    json_t *j = json_pack(
        "{s:I,s:s,s:i,s:s}", "conv_id", (json_int_t)r->u.csat.conv_id,
        "customer", r->u.csat.customer, "rating", (int)r->u.csat.rating,
        "comment", r->u.csat.comment ? r->u.csat.comment : "");
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    /* Out of memory: the rating goes on without its event. */
    if (text)
        sb_webhook_attach_event(wh, r, SB_HOOK_CSAT_SUBMITTED,
                                r->u.csat.customer, text);
    free(text);
}

void sb_webhook_attach(sb_webhook *wh, sb_req *r)
{
    if (!wh || r->hooks) return;
    if (r->kind == SB_REQ_CSAT_SET) {
        attach_csat(wh, r);
        return;
    }
    /* A note is the service side's own: never message.created, which a
     * company may pass on to its customers, but note.created. */
    uint32_t ev = r->kind == SB_REQ_MSG_APPEND
                      ? (r->u.append.note ? SB_HOOK_NOTE_CREATED
                                          : SB_HOOK_MESSAGE_CREATED)
                  : r->kind == SB_REQ_CONV_ROUTE
                      ? SB_HOOK_CONV_QUEUED | SB_HOOK_CONV_ASSIGNED |
                            SB_HOOK_CONV_TRANSFERRED | SB_HOOK_CONV_CLOSED
                      : 0;
    if (!ev || !wanted(wh, ev)) return;
    /* Out of memory: the write goes on without its event. */
    r->hooks = hooks_make(wh);
}

int sb_webhook_attach_event(sb_webhook *wh, sb_req *r, sb_hook_event ev,
                            const char *subject, const char *payload)
{
    if (!sb_hook_event_name(ev) || !payload || r->hooks ||
        (subject && strlen(subject) > SB_ID_BYTES_MAX))
        return SB_E_INVALID;
    if (!wanted(wh, ev)) return 0;
    sb_req_hooks *h = hooks_make(wh);
    if (!h || !(h->payload = strdup(payload))) {
        free(h);
        return -ENOMEM;
    }
    h->event = ev;
    snprintf(h->subject, sizeof h->subject, "%s", subject ? subject : "");
    r->hooks = h;
    return 0;
}

static void quiet_done(sb_req *r)
{
    free(r);
}

int sb_webhook_emit(sb_webhook *wh, sb_hook_event ev, const char *subject,
                    const char *payload)
{
    sb_req *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    r->kind = SB_REQ_OUTBOX_ADD;
    r->done = quiet_done;
    r->ctx = wh;
    int rc = sb_webhook_attach_event(wh, r, ev, subject, payload);
    if (rc || !r->hooks) {
        free(r);
        return rc;
    }
    sb_storeq_submit(wh->q, r);
    return 0;
}

/* ---- the delivery thread --------------------------------------------------
 */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static void job_free(job *j)
{
    if (!j) return;
    curl_slist_free_all(j->headers);
    free(j->body);
    free(j);
}

/* The easy handle of j, in the multi handle; false when it cannot be. */
static bool job_add(CURLM *multi, job *j)
{
    char h[SIG_BYTES + 64];
    j->easy = curl_easy_init();
    if (!j->easy) return false;
    j->headers = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(h, sizeof h, "Switchboard-Signature: %s", j->sig);
    j->headers = curl_slist_append(j->headers, h);
    snprintf(h, sizeof h, "Switchboard-Event-Id: %s", j->event_id);
    j->headers = curl_slist_append(j->headers, h);
    j->headers = curl_slist_append(j->headers, "Expect:");
    CURL *e = j->easy;
    curl_easy_setopt(e, CURLOPT_URL, j->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(j->body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)SB_WEBHOOK_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "Switchboard-Webhooks/1");
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    return curl_multi_add_handle(multi, e) == CURLM_OK;
}

/* Hands j back to the loop. */
static void job_report(sb_webhook *wh, job *j)
{
    uv_mutex_lock(&wh->mu);
    j->next = wh->out;
    wh->out = j;
    uv_mutex_unlock(&wh->mu);
    uv_async_send(&wh->async);
}

/* Unlinks j from the list at *head. */
static void job_unlink(job **head, job *j)
{
    for (job **pp = head; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            j->next = NULL;
            return;
        }
}

static void thread_main(void *arg)
{
    sb_webhook *wh = arg;
    job *active = NULL; /* in the multi handle */
    for (;;) {
        uv_mutex_lock(&wh->mu);
        bool stop = wh->thread_stop;
        job *in = wh->in;
        wh->in = NULL;
        uv_mutex_unlock(&wh->mu);
        if (stop) {
            while (in) {
                job *j = in;
                in = j->next;
                job_free(j);
            }
            break;
        }
        while (in) {
            job *j = in;
            in = j->next;
            j->next = NULL;
            if (!job_add(wh->multi, j)) {
                j->ok = false;
                snprintf(j->error, sizeof j->error, "cannot make the request");
                job_report(wh, j);
                continue;
            }
            j->next = active;
            active = j;
        }
        int running;
        curl_multi_perform(wh->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(wh->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            job *j;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            j->ok = m->data.result == CURLE_OK && status >= 200 && status < 300;
            if (m->data.result != CURLE_OK)
                snprintf(j->error, sizeof j->error, "%s",
                         curl_easy_strerror(m->data.result));
            else if (!j->ok)
                snprintf(j->error, sizeof j->error, "HTTP %ld", status);
            curl_multi_remove_handle(wh->multi, m->easy_handle);
            curl_easy_cleanup(m->easy_handle);
            j->easy = NULL;
            job_unlink(&active, j);
            job_report(wh, j);
        }
        curl_multi_poll(wh->multi, NULL, 0, 1000, NULL);
    }
    /* Posts under way are abandoned: their events' leases bring them
     * back. */
    while (active) {
        job *j = active;
        active = j->next;
        curl_multi_remove_handle(wh->multi, j->easy);
        curl_easy_cleanup(j->easy);
        job_free(j);
    }
}

/* ---- the dispatcher -------------------------------------------------------
 */

void sb_webhook_sign(const char *secret, int64_t t_s, const char *body,
                     size_t n, char *out, size_t cap)
{
    char ts[24];
    int tn = snprintf(ts, sizeof ts, "%lld", (long long)t_s);
    uint8_t mac[32];
    unsigned int len;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    size_t got = 0;
    bool ok = ctx &&
              EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret),
                           params) &&
              EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)tn) &&
              EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
              EVP_MAC_update(ctx, (const unsigned char *)body, n) &&
              EVP_MAC_final(ctx, mac, &got, sizeof mac);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    len = ok ? (unsigned)got : 0;
    char hex[65];
    for (unsigned i = 0; i < len && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    hex[2 * (len < 32 ? len : 32)] = '\0';
    snprintf(out, cap, "t=%s,v1=%s", ts, hex);
}

static void result_done(sb_req *r)
{
    free(r);
}

/* Stores the outcome of j (taken). */
static void job_result(sb_webhook *wh, job *j)
{
    sb_req *r = calloc(1, sizeof *r);
    if (r) {
        r->kind = SB_REQ_OUTBOX_RESULT;
        r->done = result_done;
        r->ctx = wh;
        r->u.outbox.id = j->id;
        r->u.outbox.delivered = j->ok;
        uint32_t attempts = j->attempts + 1;
        r->u.outbox.attempts = attempts;
        r->u.outbox.give_up = attempts >= wh->cfg.max_attempts;
        /* Exponential backoff with jitter: half the delay, plus up to as
         * much again, so that failed events spread out. */
        uint64_t delay = (uint64_t)wh->cfg.retry_base_ms
                         << (attempts - 1 < 20 ? attempts - 1 : 20);
        if (delay > wh->cfg.retry_max_ms) delay = wh->cfg.retry_max_ms;
        delay = delay / 2 + (uint64_t)rand() % (delay / 2 + 1);
        r->u.outbox.next_ts = wall_ms() + (int64_t)delay;
        snprintf(r->u.outbox.error, sizeof r->u.outbox.error, "%s", j->error);
        sb_storeq_submit(wh->q, r);
    }
    job_free(j);
}

static void on_async(uv_async_t *a)
{
    sb_webhook *wh = a->data;
    uv_mutex_lock(&wh->mu);
    job *out = wh->out;
    wh->out = NULL;
    uv_mutex_unlock(&wh->mu);
    while (out) {
        job *j = out;
        out = j->next;
        assert(wh->inflight > 0);
        wh->inflight--;
        if (wh->stopping)
            job_free(j);
        else
            job_result(wh, j);
    }
}

static void dispatch(sb_webhook *wh);

static void claim_done(sb_req *r)
{
    sb_webhook *wh = r->ctx;
    wh->claiming = false;
    sb_store_hook *rows = r->u.outbox.rows;
    size_t n = r->rc == 0 ? r->u.outbox.n_rows : 0;
    job *batch = NULL;
    for (size_t i = 0; i < n && !wh->stopping; i++) {
        const sb_store_hook *h = &rows[i];
        const endpoint *ep = endpoint_find(wh, h->endpoint);
        job *j = calloc(1, sizeof *j);
        if (!j) break;
        j->id = h->id;
        j->attempts = h->attempts;
        snprintf(j->event_id, sizeof j->event_id, "evt_%lld", (long long)h->id);
        if (!ep) {
            snprintf(j->error, sizeof j->error,
                     "no endpoint %s in the configuration", h->endpoint);
            j->attempts = wh->cfg.max_attempts; /* gives up now */
            job_result(wh, j);
            continue;
        }
        snprintf(j->url, sizeof j->url, "%s", ep->url);
        json_t *data = json_loads(h->payload, JSON_DECODE_ANY, NULL);
        json_t *body =
            json_pack("{s:s,s:s,s:I,s:o}", "id", j->event_id, "event", h->event,
                      "created_ts", (json_int_t)h->created_ts, "data",
                      data ? data : json_null());
        j->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (!j->body) {
            free(j);
            break;
        }
        sb_webhook_sign(ep->secret, wall_ms() / 1000, j->body, strlen(j->body),
                        j->sig, sizeof j->sig);
        j->next = batch;
        batch = j;
        wh->inflight++;
    }
    sb_store_hooks_free(rows, r->u.outbox.n_rows);
    bool full = r->rc == 0 && n > 0 && n == r->u.outbox.limit;
    free(r);
    if (batch) {
        uv_mutex_lock(&wh->mu);
        job *last = batch;
        while (last->next)
            last = last->next;
        last->next = wh->in;
        wh->in = batch;
        uv_mutex_unlock(&wh->mu);
        curl_multi_wakeup(wh->multi);
    }
    if (full) dispatch(wh); /* more may be due */
}

/* Claims the events due, as many as the thread has room for. */
static void dispatch(sb_webhook *wh)
{
    if (wh->stopping || !wh->loaded || wh->claiming || wh->cfg.n == 0 ||
        wh->inflight >= SB_WEBHOOK_INFLIGHT_MAX)
        return;
    sb_req *r = calloc(1, sizeof *r);
    if (!r) return;
    r->kind = SB_REQ_OUTBOX_CLAIM;
    r->done = claim_done;
    r->ctx = wh;
    r->u.outbox.lease_ms = SB_WEBHOOK_LEASE_MS;
    r->u.outbox.limit = (uint32_t)(SB_WEBHOOK_INFLIGHT_MAX - wh->inflight);
    wh->claiming = true;
    sb_storeq_submit(wh->q, r);
}

/* ---- loading the configuration --------------------------------------------
 */

static void load_done(sb_req *r)
{
    sb_webhook *wh = r->ctx;
    wh->loading = false;
    if (r->rc == 0 && !wh->stopping) {
        wh_config c;
        char err[256];
        if (!r->u.config.values[0])
            config_default(&wh->cfg);
        else if (config_parse(r->u.config.values[0], &c, err, sizeof err) == 0)
            wh->cfg = c;
        wh->loaded = true;
    }
    free(r->u.config.values[0]);
    free(r);
}

static void load(sb_webhook *wh)
{
    if (wh->loading || wh->stopping) return;
    sb_req *r = calloc(1, sizeof *r);
    if (!r) return;
    r->kind = SB_REQ_CONFIG_GET;
    r->done = load_done;
    r->ctx = wh;
    r->u.config.n = 1;
    snprintf(r->u.config.keys[0], sizeof r->u.config.keys[0], "%s",
             SB_WEBHOOK_CONFIG_KEY);
    wh->loading = true;
    wh->last_load_ms = wall_ms();
    sb_storeq_submit(wh->q, r);
}

static void on_tick(uv_timer_t *t)
{
    sb_webhook *wh = t->data;
    /* Gateways sharing a database see each other's changes this way. */
    if (wall_ms() - wh->last_load_ms >= RELOAD_MS) load(wh);
    dispatch(wh);
}

/* ---- admin ops ------------------------------------------------------------
 */

/* The op's answer: its rid and connection ride in the request. */
static void admin_answer(sb_webhook *wh, sb_req *r, int rc, const char *text)
{
    if (!wh->gw) return;
    if (rc)
        sb_gw_admin_done(wh->gw, r->owner, r->rid, rc, text);
    else if (text)
        sb_gw_admin_text(wh->gw, r->owner, r->rid, text);
    else
        sb_gw_admin_done(wh->gw, r->owner, r->rid, 0, NULL);
}

static void set_done(sb_req *r)
{
    sb_webhook *wh = r->ctx;
    wh_config *c = r->data;
    if (r->rc == 0) {
        wh->cfg = *c;
        wh->loaded = true;
    }
    admin_answer(wh, r, r->rc, NULL);
    free(r->u.config.values[0]);
    free(c);
    free(r);
    dispatch(wh);
}

static void failed_done(sb_req *r)
{
    sb_webhook *wh = r->ctx;
    if (r->rc) {
        admin_answer(wh, r, r->rc, NULL);
    } else {
        json_t *list = json_array();
        for (size_t i = 0; i < r->u.outbox.n_rows; i++) {
            const sb_store_hook *h = &r->u.outbox.rows[i];
            json_t *data = json_loads(h->payload, JSON_DECODE_ANY, NULL);
            json_array_append_new(
                list,
                json_pack("{s:I,s:s,s:s,s:s,s:i,s:I,s:I,s:s,s:o}", "id",
                          (json_int_t)h->id, "event", h->event, "endpoint",
                          h->endpoint, "subject", h->subject, "attempts",
                          (int)h->attempts, "created_ts",
                          (json_int_t)h->created_ts, "last_attempt_ts",
                          (json_int_t)h->next_ts, "last_error", h->last_error,
                          "data", data ? data : json_null()));
        }
        json_t *j = json_pack("{s:o}", "failed", list);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        admin_answer(wh, r, text ? 0 : -ENOMEM, text);
        free(text);
    }
    sb_store_hooks_free(r->u.outbox.rows, r->u.outbox.n_rows);
    free(r);
}

static void replay_done(sb_req *r)
{
    sb_webhook *wh = r->ctx;
    char text[64];
    snprintf(text, sizeof text, "{\"replayed\":%llu}",
             (unsigned long long)r->u.outbox.n);
    admin_answer(wh, r, r->rc, r->rc ? NULL : text);
    free(r);
    dispatch(wh);
}

int sb_webhook_admin(sb_webhook *wh, uint64_t conn_id, uint32_t rid,
                     const char *op, const char *body)
{
    if (strncmp(op, "webhooks-", 9) != 0) return SB_E_INVALID;
    const char *what = op + 9;
    if (strcmp(what, "show") == 0) {
        char *text = config_show(&wh->cfg);
        if (!text) return -ENOMEM;
        sb_gw_admin_text(wh->gw, conn_id, rid, text);
        free(text);
        return 0;
    }
    sb_req *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    r->ctx = wh;
    r->owner = conn_id;
    r->rid = rid;
    json_t *args = body && *body ? json_loads(body, 0, NULL) : json_object();
    int rc = 0;
    if (strcmp(what, "set") == 0) {
        char err[256];
        wh_config *c = malloc(sizeof *c);
        if (!c) {
            rc = -ENOMEM;
        } else if (config_parse(body, c, err, sizeof err) != 0) {
            free(c);
            sb_gw_admin_done(wh->gw, conn_id, rid, SB_E_INVALID, err);
            free(r);
            json_decref(args);
            return 0;
        } else {
            r->kind = SB_REQ_CONFIG_SET;
            r->done = set_done;
            r->data = c;
            r->u.config.n = 1;
            snprintf(r->u.config.keys[0], sizeof r->u.config.keys[0], "%s",
                     SB_WEBHOOK_CONFIG_KEY);
            r->u.config.values[0] = strdup(body);
            r->u.config.lens[0] = strlen(body);
            if (!r->u.config.values[0]) {
                free(c);
                rc = -ENOMEM;
            }
        }
    } else if (strcmp(what, "failed") == 0) {
        json_t *l = json_object_get(args, "limit");
        json_int_t limit = l ? json_integer_value(l) : 100;
        if (!json_is_object(args) || limit < 1 || limit > FAILED_LIST_MAX) {
            rc = SB_E_INVALID;
        } else {
            r->kind = SB_REQ_OUTBOX_FAILED;
            r->done = failed_done;
            r->u.outbox.limit = (uint32_t)limit;
        }
    } else if (strcmp(what, "replay") == 0) {
        json_t *id = json_object_get(args, "id");
        if (!json_is_object(args) ||
            (id && (!json_is_integer(id) || json_integer_value(id) < 1))) {
            rc = SB_E_INVALID;
        } else {
            r->kind = SB_REQ_OUTBOX_REPLAY;
            r->done = replay_done;
            r->u.outbox.id = id ? json_integer_value(id) : 0;
        }
    } else {
        free(r);
        json_decref(args);
        return SB_E_INVALID;
    }
    json_decref(args);
    if (rc) {
        free(r);
        if (rc == SB_E_INVALID) {
            sb_gw_admin_done(wh->gw, conn_id, rid, rc,
                             "want {\"limit\": 1..200} or {\"id\": N}");
            return 0;
        }
        return rc;
    }
    sb_storeq_submit(wh->q, r);
    return 0;
}

/* ---- life -----------------------------------------------------------------
 */

int sb_webhook_start(uv_loop_t *loop, sb_storeq *storeq, sb_webhook **out)
{
    *out = NULL;
    sb_webhook *wh = calloc(1, sizeof *wh);
    if (!wh) return -ENOMEM;
    wh->loop = loop;
    wh->q = storeq;
    config_default(&wh->cfg);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        !(wh->multi = curl_multi_init())) {
        free(wh);
        return -ENOMEM;
    }
    curl_multi_setopt(wh->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long)SB_WEBHOOK_INFLIGHT_MAX);
    uv_mutex_init(&wh->mu);
    uv_timer_init(loop, &wh->timer);
    uv_async_init(loop, &wh->async, on_async);
    wh->timer.data = wh->async.data = wh;
    int rc = uv_thread_create(&wh->thread, thread_main, wh);
    if (rc) {
        uv_close((uv_handle_t *)&wh->timer, NULL);
        uv_close((uv_handle_t *)&wh->async, NULL);
        curl_multi_cleanup(wh->multi);
        uv_mutex_destroy(&wh->mu);
        free(wh); /* the handles close at the caller's next loop run */
        return rc;
    }
    wh->thread_started = true;
    uv_timer_start(&wh->timer, on_tick, TICK_MS, TICK_MS);
    load(wh);
    *out = wh;
    return 0;
}

void sb_webhook_set_gw(sb_webhook *wh, sb_gw *gw)
{
    if (wh) wh->gw = gw;
}

void sb_webhook_stop(sb_webhook *wh)
{
    if (!wh || wh->stopping) return;
    wh->stopping = true;
    uv_mutex_lock(&wh->mu);
    wh->thread_stop = true;
    uv_mutex_unlock(&wh->mu);
    curl_multi_wakeup(wh->multi);
    uv_thread_join(&wh->thread);
    wh->thread_started = false;
    uv_timer_stop(&wh->timer);
    uv_close((uv_handle_t *)&wh->timer, NULL);
    uv_close((uv_handle_t *)&wh->async, NULL);
}

void sb_webhook_free(sb_webhook *wh)
{
    if (!wh) return;
    assert(!wh->thread_started);
    while (wh->out) {
        job *j = wh->out;
        wh->out = j->next;
        job_free(j);
    }
    while (wh->in) {
        job *j = wh->in;
        wh->in = j->next;
        job_free(j);
    }
    curl_multi_cleanup(wh->multi);
    uv_mutex_destroy(&wh->mu);
    free(wh);
}
