/* TLS over memory buffers (OpenSSL 3), for both ends of a connection: the
 * bytes read from the socket go in through sb_tls_feed(), which gives back
 * the plaintext they complete and the bytes to send in return (handshake,
 * alerts); sb_tls_write() turns plaintext into the bytes to send. No I/O
 * and no blocking: the server shell and the client SDK move the bytes.
 *
 * Servers present a certificate chain and key from PEM files; clients
 * verify the server's chain against a CA file or the system's CAs, and its
 * name or address against the host they connected to. TLS 1.2 at least;
 * no renegotiation. */
#ifndef SB_TLS_H
#define SB_TLS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"

/* The peer's certificate failed verification (untrusted, expired, another
 * host's). Other TLS failures are -EPROTO. */
#define SB_TLS_E_VERIFY (-EKEYREJECTED)

typedef struct sb_tls_ctx sb_tls_ctx;
typedef struct sb_tls sb_tls;

/* A server context from a PEM certificate chain and its PEM private key.
 * Returns 0, or -EINVAL with a one-line reason in err (err_len > 0). */
int sb_tls_ctx_server(const char *cert_file, const char *key_file, char *err,
                      size_t err_len, sb_tls_ctx **out);
/* A client context that trusts the PEM certificates of ca_file, or the
 * system's default CAs when ca_file is NULL or "". Returns 0, or -EINVAL
 * with a reason in err. */
int sb_tls_ctx_client(const char *ca_file, char *err, size_t err_len,
                      sb_tls_ctx **out);
/* Accepts NULL. Connections made from ctx keep it alive. */
void sb_tls_ctx_free(sb_tls_ctx *ctx);

/* A connection of ctx's side. host (clients only; NULL for servers) is
 * what the server's certificate must name: an IP address or a DNS name
 * (also sent as SNI). Returns 0, -EINVAL or -ENOMEM. */
int sb_tls_new(sb_tls_ctx *ctx, const char *host, sb_tls **out);
/* Accepts NULL. */
void sb_tls_free(sb_tls *t);

/* Takes n bytes from the peer. Appends the plaintext they complete to
 * plain and what must be sent back to out (send it even on failure: it
 * may be an alert). Returns 0; -ESHUTDOWN once the peer has closed the TLS
 * session (close_notify: treat as the end of the stream); SB_TLS_E_VERIFY
 * when the peer's certificate is refused; -EPROTO for any other failure;
 * -ENOMEM. */
int sb_tls_feed(sb_tls *t, const uint8_t *p, size_t n, sb_buf *plain,
                sb_buf *out);

/* Encrypts n bytes of plaintext onto out. Before the handshake is done
 * they wait inside t and go out with the first sb_tls_feed() that
 * completes it (a client's first call also starts the handshake). Returns
 * 0, -EPROTO or -ENOMEM. */
int sb_tls_write(sb_tls *t, const uint8_t *p, size_t n, sb_buf *out);

/* Appends a close_notify alert to out (best effort). */
void sb_tls_close(sb_tls *t, sb_buf *out);

/* True once the handshake is done. */
bool sb_tls_ready(const sb_tls *t);

#endif
