/* TLS connections over a BIO of our own that reads the bytes being fed and
 * writes onto the caller's buffer: a connection keeps no buffer of its own
 * between calls (OpenSSL's memory BIOs keep theirs for good), and with
 * SSL_MODE_RELEASE_BUFFERS neither does OpenSSL's record layer. */
#include "sb_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
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
    sb_buf pending; /* plaintext written before the handshake was done */
    /* During a call: the bytes to read and where written bytes go. */
    const uint8_t *in;
    size_t in_len;
    sb_buf *out;
    bool out_failed; /* a write did not fit in memory */
};

/* ---- the BIO --------------------------------------------------------------
 */

static int bio_read(BIO *b, char *buf, int len)
{
    sb_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->in_len == 0 || len <= 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = (size_t)len < t->in_len ? (size_t)len : t->in_len;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static int bio_write(BIO *b, const char *buf, int len)
{
    sb_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    /* OpenSSL writes only within our calls, which all give out. */
    if (!t->out || sb_buf_append(t->out, buf, (size_t)len) != 0) {
        t->out_failed = true;
        return -1;
    }
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *g_bio_method;
static pthread_once_t g_bio_once = PTHREAD_ONCE_INIT;

/* The method lives as long as the process: SSL objects may outlive any
 * context of ours. */
static void bio_method_make(void)
{
    BIO_METHOD *m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "switchboard");
    if (m && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_write(m, bio_write) && BIO_meth_set_ctrl(m, bio_ctrl) &&
        BIO_meth_set_create(m, bio_create)) {
        g_bio_method = m;
        return;
    }
    BIO_meth_free(m);
}

/* Sets what the calls into OpenSSL read and write. */
static void io_begin(sb_tls *t, const uint8_t *p, size_t n, sb_buf *out)
{
    t->in = p;
    t->in_len = n;
    t->out = out;
    t->out_failed = false;
}

static int io_end(sb_tls *t)
{
    t->in = NULL;
    t->in_len = 0;
    t->out = NULL;
    ERR_clear_error();
    return t->out_failed ? -ENOMEM : 0;
}

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
    pthread_once(&g_bio_once, bio_method_make);
    sb_tls *t = calloc(1, sizeof *t);
    if (!t || !g_bio_method) {
        free(t);
        return -ENOMEM;
    }
    t->ssl = SSL_new(ctx->ctx);
    BIO *bio = BIO_new(g_bio_method);
    if (!t->ssl || !bio) {
        BIO_free(bio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio); /* one BIO both ways, owned by ssl */
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
    io_begin(t, p, n, out);
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
    /* Reading stops where the input ends, at a failure or at the peer's
     * close_notify (after which the rest is not TLS to read); input left
     * otherwise would be lost, so the connection fails. */
    if (rc == 0 && t->in_len) rc = -EPROTO;
    int re = io_end(t);
    return rc ? rc : re;
}

int sb_tls_write(sb_tls *t, const uint8_t *p, size_t n, sb_buf *out)
{
    io_begin(t, NULL, 0, out);
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
    int re = io_end(t);
    return rc ? rc : re;
}

void sb_tls_close(sb_tls *t, sb_buf *out)
{
    io_begin(t, NULL, 0, out);
    if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
    io_end(t);
}

bool sb_tls_ready(const sb_tls *t)
{
    return SSL_is_init_finished(t->ssl);
}
