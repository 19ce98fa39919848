/* Upload processing: libmagic on the file's first bytes (one handle,
 * shared under a lock: libmagic's handles are not thread-safe), the
 * image pass of sb_image over the whole file, and SHA-256 with OpenSSL. */
#include "sb_mediaproc.h"

#include <errno.h>
#include <fcntl.h>
#include <magic.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "sb_buf.h"

/* libmagic looks at this much of the start of a file. */
#define HEAD_BYTES (1u << 20)
#define HASH_CHUNK (1u << 16)
#define TYPES_MAX 64

const char *const SB_MEDIAPROC_TYPES_DEFAULT[] = {
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/zip",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml."
    "presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    NULL,
};

struct sb_mediaproc {
    magic_t magic;
    uv_mutex_t mu;
    char *types[TYPES_MAX];
    size_t n_types;
};

void sb_mediaproc_free(sb_mediaproc *p)
{
    if (!p) return;
    if (p->magic) {
        magic_close(p->magic);
        uv_mutex_destroy(&p->mu);
    }
    for (size_t i = 0; i < p->n_types; i++)
        free(p->types[i]);
    free(p);
}

int sb_mediaproc_new(const char *const *types, size_t n, sb_mediaproc **out)
{
    *out = NULL;
    if (!types) {
        types = SB_MEDIAPROC_TYPES_DEFAULT;
        for (n = 0; types[n]; n++) {
        }
    }
    if (n > TYPES_MAX) return -EINVAL;
    sb_mediaproc *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(p->types[i] = strdup(types[i]))) {
            sb_mediaproc_free(p);
            return -ENOMEM;
        }
        p->n_types++;
    }
    /* No decompression: a small upload must not become a large job. */
    p->magic = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS |
                          MAGIC_NO_CHECK_ELF | MAGIC_ERROR);
    if (!p->magic || magic_load(p->magic, NULL) != 0 ||
        uv_mutex_init(&p->mu) != 0) {
        if (p->magic) magic_close(p->magic);
        p->magic = NULL;
        sb_mediaproc_free(p);
        return -ENOENT;
    }
    *out = p;
    return 0;
}

bool sb_mediaproc_allowed(const sb_mediaproc *p, const char *type)
{
    for (size_t i = 0; i < p->n_types; i++)
        if (strcmp(p->types[i], type) == 0) return true;
    return false;
}

/* Reads up to cap bytes from the start of fd into buf: how many, or
 * -errno. */
static ssize_t read_at(int fd, uint8_t *buf, size_t cap, off_t off)
{
    size_t n = 0;
    while (n < cap) {
        ssize_t k = pread(fd, buf + n, cap - n, off + (off_t)n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -errno;
        if (k == 0) break;
        n += (size_t)k;
    }
    return (ssize_t)n;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -errno;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The type libmagic finds in the first bytes. */
static void detect(sb_mediaproc *p, const uint8_t *head, size_t n, char *mime,
                   size_t cap)
{
    uv_mutex_lock(&p->mu);
    const char *t = magic_buffer(p->magic, head, n);
    snprintf(mime, cap, "%s", t ? t : "application/octet-stream");
    uv_mutex_unlock(&p->mu);
}

/* Replaces the file at path with the n bytes at data: written beside it,
 * then moved over it. */
static int replace(const char *path, const uint8_t *data, size_t n)
{
    char tmp[1100];
    if (snprintf(tmp, sizeof tmp, "%s.clean", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    int rc = write_all(fd, data, n);
    if (close(fd) != 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
    if (rc) unlink(tmp);
    return rc;
}

/* The image pass: the whole file in memory (an upload is bounded), its
 * size in pixels, and its clean copy in its place. */
static void image_pass(const char *path, int fd, uint64_t size,
                       sb_mediaproc_result *r)
{
    uint8_t *data = malloc(size ? (size_t)size : 1);
    if (!data) {
        r->refusal = SB_MEDIAPROC_IO;
        r->err = -ENOMEM;
        return;
    }
    ssize_t n = read_at(fd, data, (size_t)size, 0);
    sb_buf clean = SB_BUF_INIT;
    int rc = n < 0 ? (int)n : (uint64_t)n != size ? -EIO : 0;
    if (rc == 0) {
        rc = sb_image_clean(data, (size_t)size, &clean, &r->image);
        if (rc == -ENOMEM) {
            r->refusal = SB_MEDIAPROC_IO;
            r->err = rc;
        } else if (rc || sb_image_from_mime(r->mime) != r->image.format) {
            r->refusal = SB_MEDIAPROC_IMAGE;
        } else if (r->image.changed) {
            rc = replace(path, clean.data, clean.len);
            if (rc) {
                r->refusal = SB_MEDIAPROC_IO;
                r->err = rc;
            } else {
                r->size = clean.len;
            }
        }
    } else {
        r->refusal = SB_MEDIAPROC_IO;
        r->err = rc;
    }
    sb_buf_free(&clean);
    free(data);
}

/* SHA-256 of the file at path: 0 or -errno. */
static int hash_file(const char *path, uint8_t out[32], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    uint8_t *buf = malloc(HASH_CHUNK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = buf && ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
                 ? 0
                 : -ENOMEM;
    uint64_t total = 0;
    off_t off = 0;
    while (rc == 0) {
        ssize_t k = read_at(fd, buf, HASH_CHUNK, off);
        if (k < 0) rc = (int)k;
        if (k <= 0) break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)k) != 1) rc = -ENOMEM;
        off += k;
        total += (uint64_t)k;
    }
    unsigned int len = 32;
    if (rc == 0 && EVP_DigestFinal_ex(ctx, out, &len) != 1) rc = -ENOMEM;
    EVP_MD_CTX_free(ctx);
    free(buf);
    close(fd);
    *size = total;
    return rc;
}

void sb_mediaproc_run(sb_mediaproc *p, const char *path, uint64_t size,
                      sb_mediaproc_result *r)
{
    memset(r, 0, sizeof *r);
    r->size = size;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        r->refusal = SB_MEDIAPROC_IO;
        r->err = -errno;
        return;
    }
    size_t head_n = size < HEAD_BYTES ? (size_t)size : HEAD_BYTES;
    uint8_t *head = malloc(head_n ? head_n : 1);
    ssize_t got = head ? read_at(fd, head, head_n, 0) : -ENOMEM;
    if (got < 0) {
        r->refusal = SB_MEDIAPROC_IO;
        r->err = (int)got;
    } else {
        detect(p, head, (size_t)got, r->mime, sizeof r->mime);
        if (!sb_mediaproc_allowed(p, r->mime))
            r->refusal = SB_MEDIAPROC_TYPE;
        else if (sb_image_from_mime(r->mime) != SB_IMAGE_NONE)
            image_pass(path, fd, size, r);
    }
    free(head);
    close(fd);
    if (r->refusal) return;
    int rc = hash_file(path, r->sha256, &r->size);
    if (rc) {
        r->refusal = SB_MEDIAPROC_IO;
        r->err = rc;
    }
}
