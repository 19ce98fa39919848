/* Webhooks: events posted to the company's endpoints (docs/api.md).
 *
 * The configuration is a store setting ("webhooks", a JSON document that
 * admins read and change with the admin ops webhooks-show and
 * webhooks-set, or PUT /api/v1/webhooks): endpoints, each with an id, a
 * URL, a secret and the events it wants, and the retry policy. Events are
 * written to the store's outbox in the transaction of what they tell of
 * (sb_webhook_attach on the writes the gateway submits: message.created,
 * conversation.queued|assigned|transferred|closed, csat.submitted), or by
 * themselves (sb_webhook_emit). A dispatcher on the loop claims the
 * events due and hands them to a delivery thread (libcurl's multi
 * interface), which posts each with an HMAC-SHA256 signature over a
 * timestamp and the body:
 *
 *   Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC(secret, "t.body")>
 *
 * A 2xx answer deletes the event; anything else (an error, a timeout) is
 * retried with exponential backoff and jitter, and after max_attempts the
 * event is kept as failed: the admin ops webhooks-failed and
 * webhooks-replay list and retry those. Deliveries never run on the loop
 * or the store's writer: an endpoint that hangs holds one of the
 * delivery thread's slots until its timeout, nothing else. Loop thread
 * only, but for the delivery thread it owns. */
#ifndef SB_WEBHOOK_H
#define SB_WEBHOOK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "sb_gateway.h"
#include "sb_req.h"
#include "sb_storeq.h"

#define SB_WEBHOOK_ENDPOINTS_MAX SB_REQ_HOOK_ENDPOINTS_MAX
#define SB_WEBHOOK_URL_BYTES_MAX 512
#define SB_WEBHOOK_SECRET_BYTES_MAX 128
#define SB_WEBHOOK_INFLIGHT_MAX 32  /* posts under way at once */
#define SB_WEBHOOK_TIMEOUT_MS 10000 /* one post, connection included */
#define SB_WEBHOOK_LEASE_MS 60000   /* a claimed event is due again then */
#define SB_WEBHOOK_CONFIG_KEY "webhooks"

typedef struct sb_webhook sb_webhook;

/* Makes the webhooks of the store behind storeq (both outlive them) and
 * starts loading their configuration; deliveries start once it is in.
 * Returns 0 or a negative code (no thread, no memory). */
int sb_webhook_start(uv_loop_t *loop, sb_storeq *storeq, sb_webhook **out);
/* The gateway that admin ops are answered through. */
void sb_webhook_set_gw(sb_webhook *wh, sb_gw *gw);
/* Stops the dispatcher and the delivery thread (posts under way are
 * abandoned: their events are due again after their lease) and closes
 * its handles; the loop must run afterwards for them to close, then
 * sb_webhook_free. */
void sb_webhook_stop(sb_webhook *wh);
void sb_webhook_free(sb_webhook *wh);

/* Attaches to write r, before it is submitted, the endpoints that want
 * the events it causes (sb_req.hooks), when any does: a MSG_APPEND, a
 * CONV_ROUTE, or a CSAT_SET (csat.submitted, with the rating). Nothing for
 * other kinds or when none wants them. */
void sb_webhook_attach(sb_webhook *wh, sb_req *r);
/* Attaches event ev with payload (a JSON document, copied) about subject
 * (a user id, "" for none) to write r, to be stored in r's transaction:
 * for a write of another module that an event tells of (a CSAT rating's).
 * Returns 0 (also when no endpoint wants ev), SB_E_INVALID, or -ENOMEM. */
int sb_webhook_attach_event(sb_webhook *wh, sb_req *r, sb_hook_event ev,
                            const char *subject, const char *payload);
/* Stores event ev with payload about subject in the outbox by itself (a
 * write of its own). Returns 0 (also when no endpoint wants ev), or a
 * negative code. */
int sb_webhook_emit(sb_webhook *wh, sb_hook_event ev, const char *subject,
                    const char *payload);

/* An admin's op: "webhooks-show", "webhooks-set" (body: the document),
 * "webhooks-failed" (body: {"limit": N} or ""), "webhooks-replay" (body:
 * {"id": N}, or {} for every failed event). Answered later with
 * sb_gw_admin_text (a JSON document) or sb_gw_admin_done. Returns 0, or
 * SB_E_INVALID (answering nothing) for an op that is not one of these. */
int sb_webhook_admin(sb_webhook *wh, uint64_t conn_id, uint32_t rid,
                     const char *op, const char *body);

/* The signature header's value for body at time t_s with secret:
 * "t=<t_s>,v1=<64 hex digits>" into out (cap >= 96). */
void sb_webhook_sign(const char *secret, int64_t t_s, const char *body,
                     size_t n, char *out, size_t cap);

#endif
