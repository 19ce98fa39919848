/* A cluster for integration tests: a nats-server of the test's own
 * (natstest.h) and ITC_NODES gateway nodes on one PostgreSQL database (the
 * tests' cluster, pgtest.h), each with its operations port; the first node
 * is the env's server (e->srv), whose database the others share. */
#ifndef SB_ITCLUSTER_H
#define SB_ITCLUSTER_H

#include <stdbool.h>

#include "itest.h"
#include "natstest.h"

#define ITC_NODES 3

typedef struct itc {
    it_env *env;
    natstest nats;
    harness_server *node[ITC_NODES]; /* node[0] is &env->srv */
    harness_server more[ITC_NODES - 1];
    char names[ITC_NODES][16]; /* n1, n2, ... */
    char desk_path[300];
} itc;

/* Starts nats-server and the nodes (with desk, a desk file's JSON, when
 * not NULL; e is initialised here). False when there is no PostgreSQL or
 * nats-server to run: the caller skips the test. */
bool itc_start(itc *c, it_env *e, const char *desk);
/* Stops everything (kill -9) and frees the env. */
void itc_free(itc *c);
/* Node i's WebSocket URL. */
const char *itc_url(itc *c, int i);
/* Every node's URL, node first's first and the others after it in turn,
 * comma-separated (a device's list: see it_device). */
const char *itc_urls_from(itc *c, int first);
/* The node that owns the desks now (its metrics say so), or -1. */
int itc_owner(itc *c);
/* Waits (timeout_ms at most) until one node owns the desks; returns it or
 * -1. */
int itc_wait_owner(itc *c, int timeout_ms);

#endif
