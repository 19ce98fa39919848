/* The client core's outbox: the sends not yet answered, each with its
 * client_msg_id, written within the window and written again (same id)
 * after a timeout, a retryable ERROR or a reconnect until SEND_ACK; and
 * the SENT messages watched for the receipts (READ_NOTIFY) that make them
 * DELIVERED and READ. Every status reaches the application through here,
 * once and in order. A part of sb_client_core (see sb_client_core_int.h);
 * its API functions are in sb_client_core.h. */
#ifndef SB_CLIENT_OUTBOX_H
#define SB_CLIENT_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_client_core.h"

typedef struct cc_out cc_out;     /* one send */
typedef struct cc_track cc_track; /* one SENT message awaiting receipts */

typedef struct cc_outbox {
    cc_out *head, *tail;     /* in the order of the sends */
    size_t len;              /* at most outbox_max */
    size_t n_inflight;       /* written, awaiting SEND_ACK; at most window */
    size_t n_uploading;      /* attachments being uploaded */
    uint32_t window;         /* window_max, within WELCOME's */
    uint32_t body_bytes_max; /* the config's, then WELCOME's */
    cc_track *track;         /* a ring from track_head, grows up to track_max */
    size_t n_track, track_cap, track_head;
} cc_outbox;

/* Frames in (READY only). */
void sb__client_outbox_on_send_ack(sb_client_core *cc, const Sbp__Frame *f);
void sb__client_outbox_on_read_notify(sb_client_core *cc, const Sbp__Frame *f);
/* An ERROR: true if it answered a send (by client_msg_id or rid), which
 * then fails or waits to be written again. */
bool sb__client_outbox_on_error(sb_client_core *cc, uint32_t rid,
                                const Sbp__Error *e);

/* A WELCOME: the window and body limit it gives. */
void sb__client_outbox_on_welcome(sb_client_core *cc, const Sbp__Welcome *w);
/* The connection is gone: sends in flight go back to the queue. */
void sb__client_outbox_on_disconnect(sb_client_core *cc);
/* READY: a send unanswered for send_timeout_ms is written again, or fails
 * when its attempts have run out. */
void sb__client_outbox_tick(sb_client_core *cc);
/* READY: writes the sends due, within the window. */
void sb__client_outbox_pump(sb_client_core *cc);

void sb__client_outbox_free(sb_client_core *cc);

#endif
