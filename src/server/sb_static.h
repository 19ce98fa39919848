/* The files under --web, served read-only: which file a request target
 * names (refusing "..", backslashes and anything outside the folder), its
 * content type, and its bytes up to a size cap. Any thread; no state. */
#ifndef SB_STATIC_H
#define SB_STATIC_H

#include <stddef.h>

#define SB_STATIC_FILE_BYTES_MAX (16u << 20)
#define SB_STATIC_TARGET_BYTES_MAX 255 /* a target's path, query dropped */

/* Writes into full (cap bytes) the file under root that target names:
 * the query and fragment are dropped; "/" is index.html and a bare name
 * with no dot and no folder ("/agent") is that name with ".html". Returns
 * 0, or -ENOENT for a target refused: empty, not starting with '/',
 * longer than SB_STATIC_TARGET_BYTES_MAX, holding ".." or a backslash, or
 * too long for full. */
int sb_static_path(const char *root, const char *target, char *full,
                   size_t cap);

/* The Content-Type for path, by its extension; application/octet-stream
 * for any it does not know. The string is static. */
const char *sb_static_content_type(const char *path);

/* Reads the regular file at full into *body (malloc'd, the caller frees
 * it) and its length into *len. Returns 0, -ENOENT when there is no such
 * regular file or it is larger than SB_STATIC_FILE_BYTES_MAX, or -EIO
 * when reading fails; *body is NULL then. */
int sb_static_read(const char *full, char **body, size_t *len);

#endif
