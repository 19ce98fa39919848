/* The Switchboard C client SDK: one client is one device's connection to
 * the gateway, kept alive across failures (reconnect with backoff, resend,
 * SYNC), over libuv. It is a thin transport (TCP, HTTP upgrade, WebSocket
 * framing with sb_ws, timers) around the sans-IO sb_client_core, whose
 * types, callbacks and configuration it shares. Many clients may share one
 * uv_loop; per-client memory is a few KiB plus the outbox.
 *
 * Threads: a client belongs to the thread running its loop. Every function
 * below must be called on that thread; callbacks run on it.
 *
 * Ownership: sb_client_new() copies the config strings and the callbacks,
 * which the core calls directly. Pointers passed to callbacks (messages,
 * send infos, answer frames, conversations, error texts) are valid only
 * during the callback; copy what you keep. Callbacks may call any function
 * here, sb_client_close() included (the client is then freed later, from
 * the loop, never from within your callback).
 *
 * Signals: libuv writes to sockets with write(2), so a write to a
 * connection the server has already closed raises SIGPIPE, whose default
 * kills the process. Ignore it (signal(SIGPIPE, SIG_IGN)) in a program
 * using the SDK: the write then fails and the client reconnects. */
#ifndef SB_CLIENT_H
#define SB_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sb_client_core.h"

typedef struct sb_client sb_client;

/* Creates a client on loop, state IDLE; nothing happens until
 * sb_client_start(). cfg->url is "ws://host[:port][/path]" or "wss://..."
 * (numeric hosts skip DNS); or cfg->urls, several of them (cluster nodes:
 * "Several servers" in sb_client_core.h), ws:// and wss:// mixed as may
 * be. cbs (may be NULL) and ud are handed back to every callback.
 * Returns 0, -EINVAL (a bad URL, more than SB_CLIENT_URLS_MAX, a bad
 * config) or -ENOMEM; on failure nothing is left to free. */
int sb_client_new(uv_loop_t *loop, const sb_client_config *cfg,
                  const sb_client_cbs *cbs, void *ud, sb_client **out);

/* Starts connecting. From now on the client reconnects by itself until it
 * is closed or its token is refused (state STOPPED, on_state says why). */
void sb_client_start(sb_client *c);

/* Stops and frees the client. The ACKs and READs due are written, then a
 * WebSocket close (1000), best effort; the socket and timer are closed,
 * and once libuv has called back for every handle the memory is freed and
 * on_closed (if not NULL) is called with ud. From the moment of this call
 * no other callback comes (not even on_state STOPPED); the outbox is
 * dropped. Safe inside any callback. Calling it twice is a programmer
 * error. */
void sb_client_close(sb_client *c, void (*on_closed)(void *ud));

/* See sb_client_core_send(): queues a message (written when READY,
 * resent with the same client_msg_id until SEND_ACK). id_out (16 bytes)
 * may be NULL. Status changes come through on_send_status. */
int sb_client_send(sb_client *c, uint64_t conv_id, Sbp__MsgType type,
                   const char *body, size_t len, uint64_t quote_seq,
                   uint8_t *id_out);
/* A bot's MSG_ROBOT with quick replies (sb_client_core_send_robot). */
int sb_client_send_robot(sb_client *c, uint64_t conv_id, const char *body,
                         const char *const *quick, size_t n_quick,
                         uint8_t *id_out);
/* An attachment (sb_client_core_send_file()): the file at path uploaded
 * over HTTP(S) to the server's /media with the client's token, then sent
 * as MSG_IMAGE or MSG_FILE naming the upload; the send waits in the
 * outbox, across reconnects, until the upload is done. */
int sb_client_send_file(sb_client *c, uint64_t conv_id, Sbp__MsgType type,
                        const char *path, const char *name, const char *caption,
                        uint8_t *id_out);
/* Convenience: a NUL-terminated MSG_TEXT. */
int sb_client_send_text(sb_client *c, uint64_t conv_id, const char *text,
                        uint8_t *id_out);
/* See sb_client_core_read(), _sync(), _set_cursor() and _typing(). */
int sb_client_read(sb_client *c, uint64_t conv_id, uint64_t seq);
void sb_client_sync(sb_client *c);
int sb_client_set_cursor(sb_client *c, uint64_t conv_id, uint64_t seq);
int sb_client_typing(sb_client *c, uint64_t conv_id, bool on);

/* Requests: see the sb_client_core_ functions of the same names for
 * arguments and returns. READY only; each is answered once through
 * on_response with the rid set in *rid_out, and also returns -ESHUTDOWN
 * once sb_client_close() was called. */
int sb_client_open(sb_client *c, const char *const *members, size_t n,
                   const char *title, Sbp__ConvKind kind, uint32_t *rid_out);
int sb_client_history(sb_client *c, uint64_t conv_id, uint64_t before_seq,
                      uint32_t limit, uint32_t *rid_out);
int sb_client_open_service(sb_client *c, const char *desk, uint32_t *rid_out);
int sb_client_transfer(sb_client *c, uint64_t conv_id, const char *to_agent,
                       const char *to_group, uint32_t *rid_out);
int sb_client_transfer_note(sb_client *c, uint64_t conv_id,
                            const char *to_agent, const char *to_group,
                            const char *note, uint32_t *rid_out);
int sb_client_claim(sb_client *c, uint64_t conv_id, bool over_capacity,
                    uint32_t *rid_out);
int sb_client_agent_list(sb_client *c, const char *desk, uint32_t *rid_out);
/* CLOSE of a conversation (not of the client: that is sb_client_close). */
int sb_client_close_conv(sb_client *c, uint64_t conv_id, uint32_t *rid_out);
int sb_client_handoff(sb_client *c, uint64_t conv_id, const char *group,
                      uint32_t *rid_out);
int sb_client_recall(sb_client *c, uint64_t conv_id, uint64_t seq,
                     uint32_t *rid_out);
int sb_client_tag(sb_client *c, uint64_t conv_id, uint64_t seq,
                  const char *const *add, size_t n_add,
                  const char *const *remove, size_t n_remove,
                  uint32_t *rid_out);
int sb_client_agent_state(sb_client *c, Sbp__AgentStatus status,
                          uint32_t *rid_out);
int sb_client_conv_list(sb_client *c, const char *cursor, uint32_t limit,
                        Sbp__ConvState state, const char *tag, bool mine,
                        uint32_t *rid_out);
int sb_client_search(sb_client *c, uint64_t conv_id, const char *query,
                     uint32_t limit, uint32_t *rid_out);
int sb_client_canned_list(sb_client *c, const char *desk, uint32_t *rid_out);
int sb_client_admin_cmd(sb_client *c, const char *op, const char *body,
                        uint32_t *rid_out);
int sb_client_csat(sb_client *c, uint64_t conv_id, uint32_t rating,
                   const char *comment, uint32_t *rid_out);
int sb_client_report(sb_client *c, const char *from, const char *to,
                     const char *tz, const char *const *by, size_t n_by,
                     const char *desk, const char *group, const char *agent,
                     uint32_t *rid_out);

int sb_client_notes_open(sb_client *c, uint64_t conv_id, bool create,
                         uint32_t *rid_out);
int sb_client_contact_get(sb_client *c, uint64_t conv_id, const char *user_id,
                          uint32_t *rid_out);
int sb_client_contact_set(sb_client *c, const sb_client_contact_change *ch,
                          uint32_t *rid_out);

/* Accessors (also valid in callbacks). */
sb_client_state sb_client_get_state(const sb_client *c);
/* Highest contiguous seq surfaced in conv_id. */
uint64_t sb_client_cursor(const sb_client *c, uint64_t conv_id);
void sb_client_get_stats(const sb_client *c, sb_client_stats *out);
const sb_client_session *sb_client_session_info(const sb_client *c);
/* The URL connected to now, or tried next (sb_client_core_url()). */
const char *sb_client_get_url(const sb_client *c);
int sb_client_last_error(const sb_client *c);
/* True while the connection is open with permessage-deflate (the config
 * offered it and the server took it). */
bool sb_client_deflate(const sb_client *c);
uint16_t sb_client_close_code(const sb_client *c);

#endif
