/* The gateway's I/O shell: a libuv event loop with one TCP listener whose
 * connections speak HTTP/1.1 (sb_http; answered by sb_routes) and, after
 * the upgrade of GET /ws, WebSocket (sb_ws over wslay); the store's
 * threads (sb_storeq); and the timers and signals that drive the delivery
 * core (sb_gateway), the reloads (sb_reload) and the drain; the REST API
 * (sb_api) and the webhooks (sb_webhook) beside them. It owns every
 * socket; the core owns every session. */
#ifndef SB_SERVER_H
#define SB_SERVER_H

#include <stdint.h>

#include "sb_gateway.h"
#include "sb_media.h"
#include "sb_store.h"

typedef struct sb_server_config {
    char host[64];
    uint16_t port;
    const char *data_dir; /* the store lives at data_dir/switchboard.db */
    /* A PostgreSQL URI: the store lives there instead (NULL: data_dir). */
    const char *store;
    /* NATS servers ("nats://host:port[,...]") through which this node
     * joins a cluster of gateways on the same PostgreSQL store (sb_nats);
     * NULL: a gateway alone. gw.node names the node (NULL: the host's
     * name and the port). */
    const char *nats;
    const char *web_dir;    /* static files; NULL: none */
    const char *desk_file;  /* customer-service desks (JSON) to import into
                               the store (sb_deskmgr); NULL: the store's */
    const char *filter_dir; /* sensitive-word lists, NAME.txt; NULL: none */
    sb_durability durability;
    /* Writer connections on PostgreSQL (1 to SB_STOREQ_WRITERS_MAX; 0:
     * the default); SQLite has one. */
    uint32_t store_writers;
    sb_gw_config gw;
    uint32_t idle_ms;            /* close a WebSocket silent this long */
    uint32_t handshake_ms;       /* an HTTP request must complete in this */
    uint32_t out_bytes_max;      /* unsent bytes per connection, then close */
    uint32_t conns_max;          /* open TCP connections */
    uint32_t conns_per_addr_max; /* open TCP connections per IPv4 address
                                    or IPv6 /64, then 429; 0: no limit */
    /* permessage-deflate (RFC 7692) when a client offers it, for messages
     * of deflate_min_bytes and more. */
    bool deflate;
    uint32_t deflate_min_bytes;
    /* WebSocket upgrades carrying an Origin header (browsers) are taken
     * only from these origins ("https://host[:port]", exact); n_origins
     * 0: from any. Requests without Origin are not browsers' and pass. */
    const char *const *origins;
    size_t n_origins;
    /* TLS on the port (HTTPS and wss://) with this PEM certificate chain
     * and key; NULL: plain HTTP and ws://. */
    const char *tls_cert;
    const char *tls_key;
    uint32_t drain_ms_max; /* SIGTERM: wait this long for the store */
    bool demo;             /* GET /demo/token mints tokens for loopback peers */
    /* The REST API's requests per token (sb_api): a bucket refilled at
     * api_rate_per_s holding api_rate_burst; 0: no limit. */
    uint32_t api_rate_per_s, api_rate_burst;
    /* The operations port (sb_opsport: /metrics, /readyz, /healthz) on
     * admin_host:admin_port; admin false: none. */
    bool admin;
    char admin_host[64];
    uint16_t admin_port;
    /* Uploads (sb_media): the limits and types; the rest is filled in by
     * the server (bytes_max 0: no uploads). */
    sb_media_config media;
} sb_server_config;

void sb_server_config_default(sb_server_config *c);

/* What sb_server_run tells its caller once it serves: the bound ports. */
typedef struct sb_server_ports {
    uint16_t port;       /* HTTP and WebSocket */
    uint16_t admin_port; /* the operations port; 0: none */
} sb_server_ports;

/* Runs the server until SIGTERM or SIGINT, then drains: stops accepting,
 * lets pending SENDs commit and be acknowledged, closes sessions with
 * SB_WS_CLOSE_GOING_AWAY and returns 0. SIGHUP reloads the word lists of
 * filter_dir on a worker thread and swaps them in between two messages;
 * lists that do not compile are refused (logged) and the ones in force
 * stay. It also imports desk_file again if it changed (sb_reload). Returns
 * a negative code if it cannot start (the port is taken, the store cannot
 * be opened, the word lists do not compile). on_ready, if set, is called
 * once the server listens, with the bound ports; systemd hears READY=1
 * then too (sb_notify). Log lines go through sb_log. */
int sb_server_run(const sb_server_config *c,
                  void (*on_ready)(const sb_server_ports *ports));

#endif
