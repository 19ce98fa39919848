/* The link between the gateway nodes of a cluster: a NATS core connection
 * (libnats) that carries the nodes' events (sb_gw_io.publish/subscribe)
 * and the requests to the node that owns the desks. libnats runs its own
 * threads; what they receive is queued and handed to the loop thread
 * through a uv_async, so every callback of this module runs on the loop.
 *
 * Subjects: one per user, "sb.u.<hex of the user id>" (a node subscribes
 * while it has a session of the user), one per node, "sb.n.<hex of the
 * node name>", and any other the caller names. Ids are hex-encoded since
 * NATS gives '.', '*', '>' and spaces meanings. */
#ifndef SB_NATS_H
#define SB_NATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sb_limits.h"

/* Enough for "sb.u." or "sb.n." and a hex-encoded id. */
#define SB_NATS_SUBJECT_MAX (8 + 2 * SB_ID_BYTES_MAX)
/* Messages received and not yet taken by the loop, then dropped (the
 * nodes repair what is lost from the store). */
#define SB_NATS_INBOX_MAX 65536
#define SB_NATS_INBOX_BYTES_MAX (64u << 20)

typedef struct sb_nats sb_nats;

typedef struct sb_nats_config {
    uv_loop_t *loop;
    const char *urls; /* "nats://host:port[,nats://...]" */
    const char *node; /* this node's name, for the connection's name */
    /* A message on a subscribed subject (p, n valid during the call). */
    void (*on_msg)(void *ud, const char *subject, const uint8_t *p, size_t n);
    /* The connection came up (first time or again, connected true) or
     * went down (false). */
    void (*on_link)(void *ud, bool connected);
    void *ud;
} sb_nats_config;

typedef struct sb_nats_stats {
    uint64_t published, publish_failed, received, dropped, reconnects;
    bool connected;
} sb_nats_stats;

/* Connects (in the background: the server starts while NATS is down and
 * the link comes up when it can). Returns 0, -EINVAL (bad URL list) or
 * -ENOMEM. */
int sb_nats_start(const sb_nats_config *c, sb_nats **out);
/* Closes the connection and frees n; no callback runs afterwards. */
void sb_nats_stop(sb_nats *n);

/* Writes the subject of user_id (prefix "sb.u.") or of a node ("sb.n.")
 * into out (SB_NATS_SUBJECT_MAX bytes). */
void sb_nats_subject(char *out, const char *prefix, const char *id);
/* Subscribes to subject (on true) or unsubscribes (false). Subscribing
 * twice, or unsubscribing from what is not subscribed, does nothing.
 * Returns 0 or a negative code. */
int sb_nats_sub(sb_nats *n, const char *subject, bool on);
/* Publishes p (n bytes) on subject; lost if the link is down long enough
 * to fill libnats's reconnect buffer. */
void sb_nats_pub(sb_nats *n, const char *subject, const uint8_t *p, size_t len);
void sb_nats_get_stats(const sb_nats *n, sb_nats_stats *out);

#endif
