/* A customer's identity signed by the site's backend, as Intercom's
 * identity verification: the site keeps a desk's identity secret on its
 * server and gives its page, for the signed-in user, the user's id and
 * user_hash = hex(HMAC-SHA256(secret, user id)); the widget hands both to
 * POST /api/identify (the server's sb_api), which checks the hash here,
 * stores what the page says of the user as its verified contact and
 * answers with a customer token for that id (sbctl identity-hash makes
 * one for a test). Nobody without the secret can make a hash,
 * so nobody can pose as another customer. Pure: no I/O, any thread. */
#ifndef SB_IDENTITY_H
#define SB_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#define SB_IDENTITY_HASH_HEX 64 /* a user_hash: SHA-256 in hex */
/* How long a token minted for a signed identity lasts (the widget asks
 * again when its page loads). */
#define SB_IDENTITY_TOKEN_TTL_S (12 * 3600)

/* The user_hash of user_id under secret: lowercase hex, NUL-terminated,
 * into out. */
void sb_identity_hash(const char *secret, const char *user_id,
                      char out[SB_IDENTITY_HASH_HEX + 1]);

/* Whether hash (hex, either case) is user_id's under secret; compared in
 * constant time. False for a malformed hash and an empty secret. */
bool sb_identity_check(const char *secret, const char *user_id,
                       const char *hash);

#endif
