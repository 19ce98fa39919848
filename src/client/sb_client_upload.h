/* One upload of the client SDK's transport: a file sent by HTTP POST to
 * the server's /media (docs/protocol.md, "Uploads") over its own TCP
 * connection (TLS for a wss:// server), with the session's token; the
 * file read in pieces as the socket takes them, the answer read to the
 * end. A transfer that moves no byte for idle_ms is given up. libuv; the
 * loop's thread only. */
#ifndef SB_CLIENT_UPLOAD_H
#define SB_CLIENT_UPLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sb_client_hs.h"
#include "sb_tls.h"

typedef struct sb_upload sb_upload;

/* The end of an upload: rc 0 with the HTTP status and the answer's body
 * (valid during the call), or rc < 0 (-errno of the connection, the file
 * or TLS; -ETIMEDOUT when it stalled; -EPROTO for an answer that is not
 * HTTP) with status 0. Called once, never from within sb_upload_start. */
typedef void (*sb_upload_cb)(void *ud, int rc, int status, const char *body,
                             size_t n);

/* Starts uploading the file at path as name for conversation conv_id to
 * url's server (its host, port and TLS; not its path). tls: the client
 * context for wss:// (NULL otherwise). Strings are copied. Returns 0, or
 * a negative code (the file cannot be opened: -errno) and then no
 * callback comes. */
int sb_upload_start(uv_loop_t *loop, sb_tls_ctx *tls, const sb_client_url *url,
                    const char *token, uint64_t conv_id, const char *path,
                    const char *name, uint32_t idle_ms, sb_upload_cb cb,
                    void *ud, sb_upload **out);

/* Gives the upload up: no callback comes after this; its memory goes
 * once libuv has let go of its handles. Accepts NULL. */
void sb_upload_cancel(sb_upload *u);

/* The percent-encoding of a query value (RFC 3986 unreserved kept) of s
 * into out (cap bytes). Returns its length, or -ENOSPC. */
int sb_upload_query_escape(const char *s, char *out, size_t cap);

#endif
