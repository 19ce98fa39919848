/* The NATS link of a cluster node (sb_nats.h). */
#include "sb_nats.h"

#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sb_map.h"

#define NATS_URLS_MAX 16
#define NATS_RECONNECT_WAIT_MS 250
#define NATS_RECONNECT_JITTER_MS 100
#define NATS_PING_MS 2000
#define NATS_RECONNECT_BUF (8 << 20)

/* What a libnats thread hands to the loop: a message, or a change of the
 * link (in the order they happened). */
typedef struct item {
    struct item *next;
    int link; /* 0: a message; 1: up; -1: down */
    size_t len;
    char subject[SB_NATS_SUBJECT_MAX + 1];
    uint8_t data[];
} item;

/* A subscription, chained on its subject's hash. */
typedef struct sub {
    struct sub *next;
    natsSubscription *ns;
    char subject[SB_NATS_SUBJECT_MAX + 1];
} sub;

struct sb_nats {
    sb_nats_config cfg;
    natsConnection *nc;
    natsOptions *opts;
    sb_map subs; /* sb_map_hash_str(subject) -> sub chain */
    uv_async_t async;
    pthread_mutex_t mu; /* guards the inbox and stopping */
    item *head, *tail;
    size_t queued, queued_bytes;
    bool stopping;
    atomic_uint_fast64_t received, dropped, reconnects;
    atomic_bool connected;
    uint64_t published, publish_failed;
};

void sb_nats_subject(char *out, const char *prefix, const char *id)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = strlen(prefix);
    memcpy(out, prefix, k);
    for (size_t i = 0; id[i] && i < SB_ID_BYTES_MAX; i++) {
        out[k++] = hex[(unsigned char)id[i] >> 4];
        out[k++] = hex[(unsigned char)id[i] & 15];
    }
    out[k] = '\0';
}

/* ---- libnats's threads -----------------------------------------------------
 */

static void enqueue(sb_nats *n, item *it)
{
    pthread_mutex_lock(&n->mu);
    if (n->stopping || (it->link == 0 && (n->queued >= SB_NATS_INBOX_MAX ||
                                          n->queued_bytes + it->len >
                                              SB_NATS_INBOX_BYTES_MAX))) {
        pthread_mutex_unlock(&n->mu);
        if (it->link == 0) atomic_fetch_add(&n->dropped, 1);
        free(it);
        return;
    }
    if (n->tail)
        n->tail->next = it;
    else
        n->head = it;
    n->tail = it;
    n->queued++;
    n->queued_bytes += it->len;
    pthread_mutex_unlock(&n->mu);
    uv_async_send(&n->async);
}

static void on_nats_msg(natsConnection *nc, natsSubscription *ns, natsMsg *msg,
                        void *closure)
{
    (void)nc;
    (void)ns;
    sb_nats *n = closure;
    const char *subj = natsMsg_GetSubject(msg);
    int len = natsMsg_GetDataLength(msg);
    item *it = len >= 0 && strlen(subj) <= SB_NATS_SUBJECT_MAX
                   ? malloc(sizeof *it + (size_t)len)
                   : NULL;
    if (!it) {
        atomic_fetch_add(&n->dropped, 1);
        natsMsg_Destroy(msg);
        return;
    }
    atomic_fetch_add(&n->received, 1);
    it->next = NULL;
    it->link = 0;
    it->len = (size_t)len;
    strcpy(it->subject, subj);
    memcpy(it->data, natsMsg_GetData(msg), (size_t)len);
    natsMsg_Destroy(msg);
    enqueue(n, it);
}

static void link_changed(sb_nats *n, bool up)
{
    atomic_store(&n->connected, up);
    item *it = calloc(1, sizeof *it);
    if (!it) return; /* the state is in connected; the loop misses a resync */
    it->link = up ? 1 : -1;
    enqueue(n, it);
}

static void on_connected(natsConnection *nc, void *closure)
{
    (void)nc;
    link_changed(closure, true);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    sb_nats *n = closure;
    atomic_fetch_add(&n->reconnects, 1);
    link_changed(n, true);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    link_changed(closure, false);
}

/* ---- the loop thread
 * ----------------------------------------------------------- */

static void on_async(uv_async_t *a)
{
    sb_nats *n = a->data;
    pthread_mutex_lock(&n->mu);
    item *it = n->head;
    n->head = n->tail = NULL;
    n->queued = n->queued_bytes = 0;
    pthread_mutex_unlock(&n->mu);
    while (it) {
        item *next = it->next;
        if (it->link)
            n->cfg.on_link(n->cfg.ud, it->link > 0);
        else
            n->cfg.on_msg(n->cfg.ud, it->subject, it->data, it->len);
        free(it);
        it = next;
    }
}

/* Splits the comma-separated list into urls (pointers into buf). */
static int split_urls(char *buf, const char **urls, int *count)
{
    int k = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (k == NATS_URLS_MAX || strncmp(t, "nats://", 7) != 0 || !t[7])
            return -EINVAL;
        urls[k++] = t;
    }
    *count = k;
    return k ? 0 : -EINVAL;
}

int sb_nats_start(const sb_nats_config *c, sb_nats **out)
{
    *out = NULL;
    char *buf = strdup(c->urls ? c->urls : "");
    sb_nats *n = calloc(1, sizeof *n);
    if (!buf || !n) {
        free(buf);
        free(n);
        return -ENOMEM;
    }
    const char *urls[NATS_URLS_MAX];
    int count = 0;
    int rc = split_urls(buf, urls, &count);
    if (rc) {
        free(buf);
        free(n);
        return rc;
    }
    n->cfg = *c;
    pthread_mutex_init(&n->mu, NULL);
    uv_async_init(c->loop, &n->async, on_async);
    n->async.data = n;
    natsStatus s = natsOptions_Create(&n->opts);
    if (s == NATS_OK) s = natsOptions_SetServers(n->opts, urls, count);
    if (s == NATS_OK) s = natsOptions_SetName(n->opts, c->node);
    if (s == NATS_OK) s = natsOptions_SetNoEcho(n->opts, true);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(n->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(n->opts, NATS_RECONNECT_WAIT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectJitter(n->opts, NATS_RECONNECT_JITTER_MS,
                                           NATS_RECONNECT_JITTER_MS);
    if (s == NATS_OK) s = natsOptions_SetPingInterval(n->opts, NATS_PING_MS);
    if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(n->opts, 2);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(n->opts, NATS_RECONNECT_BUF);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(n->opts, on_disconnected, n);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(n->opts, on_reconnected, n);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(n->opts, true, on_connected, n);
    free(buf); /* libnats copied the URLs */
    if (s == NATS_OK) {
        s = natsConnection_Connect(&n->nc, n->opts);
        if (s == NATS_OK)
            link_changed(n, true); /* at once: no connected callback */
        else if (s == NATS_NOT_YET_CONNECTED)
            s = NATS_OK; /* on_connected tells when it is */
    }
    if (s != NATS_OK) {
        sb_nats_stop(n);
        return s == NATS_NO_MEMORY ? -ENOMEM : -EINVAL;
    }
    *out = n;
    return 0;
}

int sb_nats_sub(sb_nats *n, const char *subject, bool on)
{
    uint64_t h = sb_map_hash_str(subject);
    sub *head = sb_map_get(&n->subs, h), *prev = NULL, *s = head;
    while (s && strcmp(s->subject, subject) != 0) {
        prev = s;
        s = s->next;
    }
    if (on) {
        if (s) return 0;
        if (strlen(subject) > SB_NATS_SUBJECT_MAX) return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s) return -ENOMEM;
        strcpy(s->subject, subject);
        natsStatus st =
            natsConnection_Subscribe(&s->ns, n->nc, subject, on_nats_msg, n);
        if (st == NATS_OK)
            natsSubscription_SetPendingLimits(s->ns, SB_NATS_INBOX_MAX,
                                              SB_NATS_INBOX_BYTES_MAX);
        s->next = head;
        if (st != NATS_OK || sb_map_put(&n->subs, h, s) != 0) {
            if (s->ns) natsSubscription_Destroy(s->ns);
            free(s);
            return st == NATS_OK ? -ENOMEM : -EIO;
        }
        return 0;
    }
    if (!s) return 0;
    if (prev)
        prev->next = s->next;
    else if (s->next)
        sb_map_put(&n->subs, h, s->next); /* replaces: cannot fail */
    else
        sb_map_del(&n->subs, h);
    natsSubscription_Unsubscribe(s->ns);
    natsSubscription_Destroy(s->ns);
    free(s);
    return 0;
}

void sb_nats_pub(sb_nats *n, const char *subject, const uint8_t *p, size_t len)
{
    if (natsConnection_Publish(n->nc, subject, p, (int)len) == NATS_OK)
        n->published++;
    else
        n->publish_failed++;
}

void sb_nats_get_stats(const sb_nats *n, sb_nats_stats *out)
{
    out->published = n->published;
    out->publish_failed = n->publish_failed;
    out->received = atomic_load(&((sb_nats *)n)->received);
    out->dropped = atomic_load(&((sb_nats *)n)->dropped);
    out->reconnects = atomic_load(&((sb_nats *)n)->reconnects);
    out->connected = atomic_load(&((sb_nats *)n)->connected);
}

static void on_async_closed(uv_handle_t *h)
{
    sb_nats *n = h->data;
    pthread_mutex_destroy(&n->mu);
    free(n);
}

void sb_nats_stop(sb_nats *n)
{
    if (!n) return;
    pthread_mutex_lock(&n->mu);
    n->stopping = true;
    pthread_mutex_unlock(&n->mu);
    for (size_t i = 0; i < n->subs.cap; i++) {
        sub *s = n->subs.slots[i].val;
        while (s) {
            sub *next = s->next;
            natsSubscription_Destroy(s->ns);
            free(s);
            s = next;
        }
    }
    sb_map_free(&n->subs);
    if (n->nc) {
        /* What was published reaches the server before the close (a
         * draining node's last messages). */
        if (atomic_load(&n->connected))
            natsConnection_FlushTimeout(n->nc, 1000);
        natsConnection_Close(n->nc);
        natsConnection_Destroy(n->nc);
    }
    natsOptions_Destroy(n->opts);
    /* libnats's threads are gone once this returns: no callback can queue
     * anything after it. */
    nats_CloseAndWait(2000);
    pthread_mutex_lock(&n->mu);
    item *it = n->head;
    n->head = n->tail = NULL;
    pthread_mutex_unlock(&n->mu);
    while (it) {
        item *next = it->next;
        free(it);
        it = next;
    }
    uv_close((uv_handle_t *)&n->async, on_async_closed);
}
