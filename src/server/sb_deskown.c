/* The desk owner's lock (sb_deskown.h). */
#include "sb_deskown.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The lock: one key for all the desks of the cluster ("SBDESKOW"). */
#define DESK_LOCK "6003083431051922263"
/* How often a node without the lock tries it, and how often the holder
 * checks its connection (a failed check gives ownership up). */
#define TRY_EVERY_MS 500
#define CHECK_EVERY_MS 1000

struct sb_deskown {
    uv_async_t async;
    void (*on_change)(void *ud, bool own);
    void *ud;
    char *url;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, released;
    atomic_bool own; /* the thread's view */
    bool told;       /* the loop's view, last told to on_change */
    PGconn *conn;    /* the thread's */
};

static void on_async(uv_async_t *a)
{
    sb_deskown *d = a->data;
    bool own = atomic_load(&d->own);
    if (own != d->told) {
        d->told = own;
        d->on_change(d->ud, own);
    }
}

static void set_own(sb_deskown *d, bool own)
{
    atomic_store(&d->own, own);
    uv_async_send(&d->async);
}

static PGconn *connect_db(const char *url)
{
    /* Short timeouts: a holder whose database went away must notice
     * before PostgreSQL lets the lock go to another node. */
    const char *keys[] = {"dbname",
                          "connect_timeout",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "options",
                          "application_name",
                          NULL};
    const char *vals[] = {url,
                          "2",
                          "1",
                          "2",
                          "1",
                          "2",
                          "3000",
                          "-c statement_timeout=2000",
                          "switchboard desk owner",
                          NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c && PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        c = NULL;
    }
    return c;
}

/* Runs sql; true if it answered a single boolean true (or, want_row
 * false, if it ran at all). */
static bool query(PGconn *c, const char *sql, bool want_true)
{
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (ok && want_true)
        ok = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return ok;
}

static void *run(void *arg)
{
    sb_deskown *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        bool released = d->released;
        pthread_mutex_unlock(&d->mu);
        bool own = atomic_load(&d->own);
        if (released) {
            if (d->conn) PQfinish(d->conn); /* the lock goes with it */
            d->conn = NULL;
            if (own) set_own(d, false);
        } else {
            if (!d->conn) d->conn = connect_db(d->url);
            if (d->conn && !own &&
                query(d->conn, "SELECT pg_try_advisory_lock(" DESK_LOCK ")",
                      true))
                set_own(d, true);
            else if (d->conn && own && !query(d->conn, "SELECT 1", false))
                set_own(d, false);
            if (d->conn && PQstatus(d->conn) != CONNECTION_OK) {
                PQfinish(d->conn);
                d->conn = NULL;
                if (atomic_load(&d->own)) set_own(d, false);
            }
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long ms = atomic_load(&d->own) ? CHECK_EVERY_MS : TRY_EVERY_MS;
        until.tv_sec += ms / 1000;
        until.tv_nsec += (ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&d->mu);
        if (!d->stop && d->released == released)
            pthread_cond_timedwait(&d->cv, &d->mu, &until);
    }
    pthread_mutex_unlock(&d->mu);
    if (d->conn) PQfinish(d->conn);
    d->conn = NULL;
    return NULL;
}

int sb_deskown_start(uv_loop_t *loop, const char *url,
                     void (*on_change)(void *ud, bool own), void *ud,
                     sb_deskown **out)
{
    *out = NULL;
    sb_deskown *d = calloc(1, sizeof *d);
    if (!d || !(d->url = strdup(url))) {
        free(d);
        return -ENOMEM;
    }
    d->on_change = on_change;
    d->ud = ud;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    uv_async_init(loop, &d->async, on_async);
    d->async.data = d;
    if (pthread_create(&d->thread, NULL, run, d) != 0) {
        uv_close((uv_handle_t *)&d->async, NULL);
        free(d->url);
        free(d);
        return -ENOMEM;
    }
    *out = d;
    return 0;
}

void sb_deskown_release(sb_deskown *d)
{
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    d->released = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void on_closed(uv_handle_t *h)
{
    sb_deskown *d = h->data;
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->url);
    free(d);
}

void sb_deskown_stop(sb_deskown *d)
{
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    uv_close((uv_handle_t *)&d->async, on_closed);
}
