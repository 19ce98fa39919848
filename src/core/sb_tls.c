/* TLS connections over OpenSSL memory BIOs. */
#include "sb_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLS_READ_CHUNK 16384 /* one TLS record's plaintext at most */

struct sb_tls_ctx {
    SSL_CTX *ctx;
    bool client;
};

struct sb_tls {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    sb_buf pending;   /* plaintext written before the handshake was done */
};

/* The last OpenSSL error (or what), for err; clears the queue. */
static void set_err(char *err, size_t err_len, const char *what,
                    const char *file)
{
    unsigned long e = ERR_peek_last_error();
    char reason[160] = "";
    if (e) ERR_error_string_n(e, reason, sizeof reason);
    if (err_len)
        snprintf(err, err_len, "%s %s%s%s", what, file ? file : "",
                 reason[0] ? ": " : "", reason);
    ERR_clear_error();
}

static SSL_CTX *ctx_base(const SSL_METHOD *m)
{
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (!ctx) return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    /* Idle connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

int sb_tls_ctx_server(const char *cert_file, const char *key_file, char *err,
                      size_t err_len, sb_tls_ctx **out)
{
    *out = NULL;
    sb_tls_ctx *c = calloc(1, sizeof *c);
    if (!c || !(c->ctx = ctx_base(TLS_server_method()))) {
        set_err(err, err_len, "out of memory", NULL);
        free(c);
        return -ENOMEM;
    }
    if (SSL_CTX_use_certificate_chain_file(c->ctx, cert_file) != 1) {
        set_err(err, err_len, "cannot load the certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        set_err(err, err_len, "cannot load the key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c->ctx) != 1) {
        set_err(err, err_len, "the key does not match the certificate",
                key_file);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    sb_tls_ctx_free(c);
    return -EINVAL;
}

int sb_tls_ctx_client(const char *ca_file, char *err, size_t err_len,
                      sb_tls_ctx **out)
{
    *out = NULL;
    sb_tls_ctx *c = calloc(1, sizeof *c);
    if (!c || !(c->ctx = ctx_base(TLS_client_method()))) {
        set_err(err, err_len, "out of memory", NULL);
        free(c);
        return -ENOMEM;
    }
    c->client = true;
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file && ca_file[0]
                 ? SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL)
                 : SSL_CTX_set_default_verify_paths(c->ctx);
    if (ok != 1) {
        set_err(err, err_len, "cannot load the CA certificates",
                ca_file && ca_file[0] ? ca_file : "(system default)");
        sb_tls_ctx_free(c);
        return -EINVAL;
    }
    *out = c;
    return 0;
}

void sb_tls_ctx_free(sb_tls_ctx *ctx)
{
    if (!ctx) return;
    SSL_CTX_free(ctx->ctx); /* reference counted: live SSLs keep it */
    free(ctx);
}

int sb_tls_new(sb_tls_ctx *ctx, const char *host, sb_tls **out)
{
    *out = NULL;
    sb_tls *t = calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    t->ssl = SSL_new(ctx->ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return -ENOMEM;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    if (!ctx->client) {
        SSL_set_accept_state(t->ssl);
        *out = t;
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    int ok = 0;
    if (host && host[0]) {
        unsigned char addr[16];
        bool ip = inet_pton(AF_INET, host, addr) == 1 ||
                  inet_pton(AF_INET6, host, addr) == 1;
        if (ip)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
        else
            ok = SSL_set1_host(t->ssl, host) &&
                 SSL_set_tlsext_host_name(t->ssl, host);
    }
    if (ok != 1) {
        sb_tls_free(t);
        ERR_clear_error();
        return -EINVAL;
    }
    *out = t;
    return 0;
}

void sb_tls_free(sb_tls *t)
{
    if (!t) return;
    SSL_free(t->ssl);
    sb_buf_free(&t->pending);
    free(t);
}

/* Moves what OpenSSL has to send onto out. */
static int drain(sb_tls *t, sb_buf *out)
{
    size_t n = BIO_ctrl_pending(t->wbio);
    if (n == 0) return 0;
    if (sb_buf_reserve(out, n) != 0) return -ENOMEM;
    int got = BIO_read(t->wbio, out->data + out->len, (int)n);
    if (got > 0) out->len += (size_t)got;
    return 0;
}

/* The code for a failed SSL call. */
static int fail_code(sb_tls *t, int r)
{
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN) return -ESHUTDOWN;
    if (SSL_get_verify_result(t->ssl) != X509_V_OK) return SB_TLS_E_VERIFY;
    return -EPROTO;
}

/* Writes n bytes of plaintext; the handshake must be done. */
static int write_now(sb_tls *t, const uint8_t *p, size_t n)
{
    while (n) {
        size_t w = 0;
        int r = SSL_write_ex(t->ssl, p, n, &w);
        if (r <= 0) {
            int rc = fail_code(t, r);
            return rc ? rc : -EPROTO;
        }
        p += w;
        n -= w;
    }
    return 0;
}

int sb_tls_feed(sb_tls *t, const uint8_t *p, size_t n, sb_buf *plain,
                sb_buf *out)
{
    if (n && BIO_write(t->rbio, p, (int)n) != (int)n) return -ENOMEM;
    int rc = 0;
    for (;;) {
        if (sb_buf_reserve(plain, TLS_READ_CHUNK) != 0) {
            rc = -ENOMEM;
            break;
        }
        size_t got = 0;
        int r =
            SSL_read_ex(t->ssl, plain->data + plain->len, TLS_READ_CHUNK, &got);
        if (r > 0) {
            plain->len += got;
            continue;
        }
        rc = fail_code(t, r);
        break;
    }
    if (rc == 0 && t->pending.len && SSL_is_init_finished(t->ssl)) {
        rc = write_now(t, t->pending.data, t->pending.len);
        sb_buf_free(&t->pending);
    }
    int rd = drain(t, out);
    ERR_clear_error();
    return rc ? rc : rd;
}

int sb_tls_write(sb_tls *t, const uint8_t *p, size_t n, sb_buf *out)
{
    int rc = 0;
    if (!SSL_is_init_finished(t->ssl)) {
        rc = sb_buf_append(&t->pending, p, n);
        if (rc == 0) {
            int r = SSL_do_handshake(t->ssl);
            if (r <= 0) rc = fail_code(t, r);
        }
    } else {
        rc = write_now(t, p, n);
    }
    int rd = drain(t, out);
    ERR_clear_error();
    return rc ? rc : rd;
}

void sb_tls_close(sb_tls *t, sb_buf *out)
{
    if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
    drain(t, out);
    ERR_clear_error();
}

bool sb_tls_ready(const sb_tls *t)
{
    return SSL_is_init_finished(t->ssl);
}
