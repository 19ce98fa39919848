/* The operations port (--admin-listen): a second, plain-HTTP listener for
 * monitoring, apart from the clients' port. GET /metrics answers the
 * Prometheus text format (sb_metrics), GET /readyz 200 "ready" or 503
 * with the reasons, GET /healthz the liveness answer of the main port.
 * One request per connection, at most SB_OPSPORT_CONNS_MAX at once, each
 * complete within SB_OPSPORT_REQUEST_MS.
 *
 * A scrape never holds the loop up: the snapshot of the server's numbers
 * is a copy made on the loop thread; reading /proc and rendering the text
 * run on libuv's thread pool, and the answer is written when they are
 * done. Part of the server's shell: loop thread only. */
#ifndef SB_OPSPORT_H
#define SB_OPSPORT_H

#include <stdint.h>
#include <uv.h>

#include "sb_metrics.h"

#define SB_OPSPORT_CONNS_MAX 64
#define SB_OPSPORT_SCRAPES_MAX 4 /* /metrics being rendered at once */
#define SB_OPSPORT_REQUEST_MS 5000

typedef struct sb_opsport sb_opsport;

typedef struct sb_opsport_config {
    uv_loop_t *loop;
    const char *host; /* copied */
    uint16_t port;    /* 0: any free one */
    /* Fills s (zeroed first) with the server's numbers now: loop thread,
     * no I/O. */
    void (*snapshot)(void *ud, sb_metrics_snap *s);
    void *ud;
} sb_opsport_config;

/* Listens on host:port. *bound gets the port bound. Returns 0, or a
 * negative libuv code (an address that does not parse, a port taken)
 * with nothing left running. */
int sb_opsport_start(const sb_opsport_config *c, sb_opsport **out,
                     uint16_t *bound);

/* Stops listening and drops the connections; the handles close on the
 * loop's next turns and the port is freed once the scrapes running on
 * the thread pool are done. Accepts NULL. */
void sb_opsport_close(sb_opsport *o);

#endif
