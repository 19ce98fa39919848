/* The client core's inbox: per conversation the cursor (the highest seq
 * surfaced with nothing missing before it), the messages held behind a
 * gap, the ACK and READ due; and the SYNC loop that fills gaps and catches
 * up after every WELCOME. Every message reaches the application through
 * here, exactly once and in seq order. A part of sb_client_core (see
 * sb_client_core_int.h); its API functions are in sb_client_core.h. */
#ifndef SB_CLIENT_INBOX_H
#define SB_CLIENT_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_client_core.h"
#include "sb_map.h"

typedef struct cc_held cc_held; /* a message held behind a gap */

typedef struct cc_conv {
    uint64_t conv_id;
    uint64_t surfaced;                  /* highest contiguous seq surfaced */
    uint64_t acked;                     /* last ACK written */
    uint64_t read_seq;                  /* READ asked for by the app */
    uint64_t read_sent;                 /* READ written */
    uint64_t peer_delivered, peer_read; /* max over other participants,
                                           for the outbox's receipts */
    cc_held *held;                      /* ascending seq, all > surfaced+1 */
    struct cc_conv *dirty_next;
    bool dirty; /* on the dirty list: an ACK or READ may be due */
} cc_conv;

typedef struct cc_inbox {
    sb_map convs;   /* conv_id -> cc_conv, at most convs_max */
    cc_conv *dirty; /* the dirty list */
    size_t held_now;
    uint32_t sync_rid, sync_limit;
    bool sync_inflight, need_sync;
    bool sync_failed;        /* the last SYNC got an ERROR: try again */
    int64_t gap_retry_at_ms; /* 0: none */
} cc_inbox;

/* The conversation conv_id; with create, made if new. NULL if it is not
 * known (without create), or when the table is full or out of memory. */
cc_conv *sb__client_conv_get(sb_client_core *cc, uint64_t conv_id, bool create);

/* The one way into the inbox: PUSH, SYNC_RESP and own SEND_ACKs. */
void sb__client_inbox_offer(sb_client_core *cc, const Sbp__Message *m);

/* Frames in (READY only). */
void sb__client_inbox_on_push(sb_client_core *cc, const Sbp__Frame *f);
void sb__client_inbox_on_sync_resp(sb_client_core *cc, const Sbp__Frame *f);
/* An ERROR with rid: true if it refused the SYNC in flight. */
bool sb__client_inbox_on_sync_error(sb_client_core *cc, uint32_t rid);

/* A WELCOME: ACK and READ again what the lost connection may have lost,
 * SYNC (unless disabled) in pages of the size w allows. */
void sb__client_inbox_on_welcome(sb_client_core *cc, const Sbp__Welcome *w);
/* The connection is gone: no SYNC is in flight. */
void sb__client_inbox_on_disconnect(sb_client_core *cc);
/* The server asks for a SYNC (SYNC_HINT): one is sent at the next pump. */
void sb__client_inbox_on_sync_hint(sb_client_core *cc, const Sbp__Frame *f);
/* READY: a gap that outlived the last SYNC asks for another. */
void sb__client_inbox_tick(sb_client_core *cc);

/* READY: writes the SYNC, if one is due. */
void sb__client_inbox_pump_sync(sb_client_core *cc);
/* READY: writes the ACK and READ due in every conversation. */
void sb__client_inbox_flush_receipts(sb_client_core *cc);

void sb__client_inbox_free(sb_client_core *cc);

#endif
