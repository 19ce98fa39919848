/* nats-server for tests: a child process of the test on a free loopback
 * port, which the test may kill -9 and start again on the same port. */
#ifndef SB_NATSTEST_H
#define SB_NATSTEST_H

#include <stdint.h>
#include <sys/types.h>

typedef struct natstest {
    pid_t pid;
    uint16_t port;
    char url[64]; /* nats://127.0.0.1:PORT */
} natstest;

/* Whether nats-server can be run here ($SB_NATS_SERVER or on PATH). */
int natstest_available(void);
/* Starts nats-server (on n->port if set, else a free port) and waits until
 * it accepts connections (5 s at most). Returns 0 or -1. */
int natstest_start(natstest *n);
/* kill -9, and reaps it. */
void natstest_kill9(natstest *n);

#endif
