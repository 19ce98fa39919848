/* A fake shell for driving the gateway core in unit tests: it records the
 * frames sent and the closes asked per connection, applies store requests
 * synchronously to a real SQLite store in memory, and lets the test set
 * the time. */
#ifndef SB_GWFAKE_H
#define SB_GWFAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "sb_codec.h"
#include "sb_gateway.h"
#include "sb_store.h"

#define GWFAKE_SECRET "unit-secret"
#define GWFAKE_T0 1800000000000LL
#define GWFAKE_CONNS 64
#define GWFAKE_FRAMES 512

typedef struct gwfake {
    sb_gw *gw;
    /* A second gateway on the same shell and store (NULL: none): its turn
     * ends with the first's (gwfake_pump). The test keeps the two
     * gateways' connection ids apart. */
    sb_gw *other;
    sb_store *store;
    sb_req *queue[4096];
    size_t nq;
    Sbp__Frame *frames[GWFAKE_CONNS][GWFAKE_FRAMES];
    size_t nframes[GWFAKE_CONNS];
    /* The encoded size of each frame recorded, and the largest frame sent
     * to each connection. */
    size_t sizes[GWFAKE_CONNS][GWFAKE_FRAMES];
    size_t size_max[GWFAKE_CONNS];
    /* Each connection's encoding (gwfake_encoding; SB_ENC_PROTO by default):
     * frames sent to it are decoded in it. */
    sb_encoding enc[GWFAKE_CONNS];
    uint16_t closed[GWFAKE_CONNS];
    int64_t now;
    /* Set: every write request fails as a failed commit does (a full
     * disk): SB_E_STORE, nothing applied. Reads are applied. */
    bool fail_writes;
    /* Set (fail_count > 0): the next fail_count requests of kind
     * fail_kind fail as a failed commit or read does, nothing applied. */
    sb_req_kind fail_kind;
    unsigned fail_count;
    /* Set: gwfake_feed() (and what calls it) leaves the store requests
     * queued, so that the next gwfake_pump() completes them all in one
     * loop turn, as a group commit does. */
    bool defer_pump;
    /* Set: gwfake_pump() answers reads queued together last first (the
     * store's readers answer in any order), writes still in order. */
    bool reads_reversed;
    /* Device cursors the gateway stored (SB_REQ_CURSOR_SET applied). */
    size_t cursor_acks;
} gwfake;

extern gwfake GF;

/* Sets up GF with cfg (secret and io filled in here). */
void gwfake_setup(sb_gw_config *cfg);
void gwfake_teardown(void);
/* Replaces the gateway with one made from cfg (secret and io filled in). */
void gwfake_regw(sb_gw_config *cfg);
/* The io a test may pass to sb_gw_new itself. */
sb_gw_io gwfake_io(void);
/* Applies queued store requests until none remain, then ends the turn
 * (sb_gw_flush: queued messages go out in PUSH frames). */
void gwfake_pump(void);
void gwfake_clear(uint64_t conn);
/* Applies the first queued store request of kind alone (its completion
 * too); false if none is queued. */
bool gwfake_apply_kind(sb_req_kind kind);
/* Encodes fr and feeds it on conn, then pumps. */
void gwfake_feed(uint64_t conn, const Sbp__Frame *fr);
/* Frames to and from conn are in enc from now on (the next HELLO opens
 * it in enc). */
void gwfake_encoding(uint64_t conn, sb_encoding enc);
/* Feeds n raw bytes on conn as one WebSocket message, then pumps. */
void gwfake_feed_raw(uint64_t conn, const void *p, size_t n);
/* Opens conn and says HELLO as sub/role from device, in locale; the raw
 * form leaves the answer to the test. */
void gwfake_hello_raw(uint64_t conn, const char *sub, const char *role,
                      const char *device, const char *locale);
/* The same, and checks that a WELCOME came back. */
void gwfake_hello(uint64_t conn, const char *sub, const char *role,
                  const char *device, const char *locale);
Sbp__Frame *gwfake_last(uint64_t conn);
/* The last frame of kind k sent to conn, or NULL. */
Sbp__Frame *gwfake_last_of(uint64_t conn, Sbp__Frame__BodyCase k);
size_t gwfake_count(uint64_t conn, Sbp__Frame__BodyCase k);
/* Sends a text message from conn; the id byte makes client_msg_id. */
void gwfake_send(uint64_t conn, uint64_t conv, uint8_t id_byte,
                 const char *body, uint64_t quote_seq);
void gwfake_tick(int64_t advance_ms);
/* A cumulative ACK of conv through seq from conn. */
void gwfake_ack(uint64_t conn, uint64_t conv, uint64_t seq);

#endif
