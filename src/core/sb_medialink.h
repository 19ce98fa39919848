/* Uploads' ids and the signed links by which a page loads them. An id is
 * 16 random bytes as 32 lowercase hex digits: it names an upload and
 * grants nothing. A link, "/media/<id>?t=<token>", carries a token that
 * says who asked for it (user and role) and until when, signed with a
 * key drawn from the server's token secret (HMAC-SHA256): a page's <img>
 * cannot send the Authorization header, and a link works only for the
 * user it was made for, only for a while, and only as long as that user
 * may still see the upload (the server checks again when it serves).
 * The clock comes in as an argument. */
#ifndef SB_MEDIALINK_H
#define SB_MEDIALINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_limits.h"
#include "switchboard.pb-c.h"

/* A link's length at most, with its NUL. */
#define SB_MEDIA_LINK_BYTES_MAX 320
/* A token's length at most (the t= value), with its NUL. */
#define SB_MEDIA_TOKEN_BYTES_MAX 256

/* Whether id is SB_MEDIA_ID_LEN lowercase hex digits and nothing else. */
bool sb_media_id_valid(const char *id);
/* The id of 16 random bytes. */
void sb_media_id_make(const uint8_t rnd[16], char out[SB_MEDIA_ID_LEN + 1]);

/* Writes the link to upload id for user (with role) that expires at
 * exp_s (seconds since the epoch) into out (cap bytes). Returns its
 * length, or -EINVAL (a bad id or user), -ENOSPC. */
int sb_media_link_sign(const uint8_t *secret, size_t secret_len, const char *id,
                       const char *user, Sbp__Role role, int64_t exp_s,
                       char *out, size_t cap);

/* Checks token (the t= value of a link, len bytes) for upload id at
 * now_s: 0 with the user and role it was made for; SB_E_BAD_TOKEN
 * (malformed, signed with another key or for another upload) or
 * SB_E_TOKEN_EXPIRED. */
int sb_media_link_verify(const uint8_t *secret, size_t secret_len,
                         const char *id, const char *token, size_t len,
                         int64_t now_s, char user[SB_ID_BYTES_MAX + 1],
                         Sbp__Role *role);

#endif
