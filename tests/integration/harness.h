/* Integration-test harness: runs the real switchboard binary on loopback
 * with a fresh data folder, and kills, restarts and stops it. Tests then
 * talk to it over real sockets with the real SDK. */
#ifndef SB_HARNESS_H
#define SB_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define HARNESS_SECRET "integration-test-secret"

typedef struct harness_server {
    pid_t pid;
    uint16_t port;
    char data_dir[256];
    /* The store's PostgreSQL URL ("": SQLite under data_dir): a new
     * database on the tests' cluster (pgtest.h) when there is one, also
     * written to data_dir/store.url for readers of the store. */
    char store[256];
    bool sqlite_only; /* set before the start: SQLite even with a cluster */
    char url[128];    /* ws://127.0.0.1:PORT/ws */
    const char *extra[16]; /* extra command-line options, NULL-terminated */
    /* The operations port the server announced (--admin-listen among the
     * extra options; 0: none). */
    uint16_t admin_port;
    /* Set before the start: the server's stderr (its log) is appended to
     * this file (NULL: the test's stderr). */
    const char *log_path;
} harness_server;

/* Path of the server binary: $SB_SERVER_BIN, else ./switchboard. */
const char *harness_server_bin(void);

/* Makes a fresh data folder (and, with the tests' PostgreSQL, a fresh
 * database) and starts the server on a free port (or on s->port if it is
 * set, as on a restart). Waits until it listens. Returns 0 or -1. */
int harness_start(harness_server *s);
/* Restarts on the same port and data folder. */
int harness_restart(harness_server *s);
/* kill -9, and reaps it. */
void harness_kill9(harness_server *s);
/* SIGTERM; waits for the exit; returns the exit status (or -1). */
int harness_stop(harness_server *s);
/* Non-blocking stop, for tests that keep their clients' loop running
 * while the server drains: harness_stop_begin() sends SIGTERM (0 or -1);
 * harness_stop_poll() returns 1 once the server has exited (*status: the
 * exit status, or -1 if it died of a signal), 0 while it still runs, -1
 * if there is no server. */
int harness_stop_begin(harness_server *s);
int harness_stop_poll(harness_server *s, int *status);
/* Removes the data folder (and drops the database). */
void harness_cleanup(harness_server *s);

/* Mints an HS256 token for the harness secret. exp_offset_s is added to
 * now for exp. Returns a static buffer (overwritten by the next call). */
const char *harness_token(const char *sub, const char *role,
                          int64_t exp_offset_s);

/* Milliseconds on a monotonic clock. */
int64_t harness_now_ms(void);

#endif
