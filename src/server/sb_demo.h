/* Demo mode (--demo): the known token secret, the banner with sample
 * tokens printed at start, and the tokens GET /demo/token mints for the
 * demo pages, only for a peer on this machine. Nothing here runs without
 * --demo. No state; any thread. */
#ifndef SB_DEMO_H
#define SB_DEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "sb_limits.h"

/* The secret --demo signs and verifies with when none is given. */
#define SB_DEMO_SECRET "switchboard-demo-secret-change-me"
/* Room for the answer of sb_demo_token(). */
#define SB_DEMO_JSON_BYTES (SB_TOKEN_BYTES_MAX + 32)

typedef struct sb_demo_config {
    bool on; /* --demo; off: sb_demo_token() refuses every request */
    const uint8_t *secret;
    size_t secret_len;
    const char *token_iss; /* put in minted tokens; NULL: none */
    const char *token_aud;
} sb_demo_config;

/* The answer to GET /demo/token?user=NAME&role=customer|agent[&locale=L]
 * (target is the request target, query included): a token for that user,
 * signed with c's secret, valid 12 hours from now_s, as {"token":"..."} in
 * json (cap bytes, SB_DEMO_JSON_BYTES suffice). Returns 0; -ENOENT when
 * demo mode is off or peer (NULL: unknown) is not a loopback address, to
 * be answered as if there were no such path; -EINVAL when user is missing,
 * a parameter holds other than [A-Za-z0-9_.-] or is too long, or role is
 * neither customer nor agent; another negative code if signing fails. */
int sb_demo_token(const sb_demo_config *c, const char *target,
                  const struct sockaddr *peer, int64_t now_s, char *json,
                  size_t cap);

/* Prints the demo banner to f: the URLs of the server on host:port, the
 * demo secret, tokens for alice (customer), bob (agent) and, with desks,
 * root (admin), valid 7 days from now_s, and how to try them with sbctl
 * (with desks: the customer-service commands) and, with web pages, in a
 * browser. */
void sb_demo_banner(FILE *f, const char *host, uint16_t port, bool desk,
                    bool web, int64_t now_s);

#endif
