/* What an upload's bytes are, decided on a worker thread once the whole
 * file is on disk: its type by its content (libmagic, never the name the
 * client gave), checked against the allowed types; for a raster image,
 * its size in pixels and its copy without location data (sb_image),
 * which takes the file's place; then the SHA-256 of what is kept, its
 * name in the store. Blocking file I/O: call it from the thread pool. */
#ifndef SB_MEDIAPROC_H
#define SB_MEDIAPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_image.h"
#include "sb_limits.h"

/* The types taken when the configuration names none: the raster images
 * browsers show, PDF, plain text, archives, office documents, audio and
 * video that browsers play. */
extern const char *const SB_MEDIAPROC_TYPES_DEFAULT[];

typedef struct sb_mediaproc sb_mediaproc;

/* Loads libmagic's database and keeps the list of allowed types (copied;
 * NULL: the defaults). Returns 0, -ENOENT (no database), -ENOMEM. */
int sb_mediaproc_new(const char *const *types, size_t n, sb_mediaproc **out);
void sb_mediaproc_free(sb_mediaproc *p);
/* Whether type is among the allowed ones. Any thread. */
bool sb_mediaproc_allowed(const sb_mediaproc *p, const char *type);

/* Why a file is refused. */
typedef enum sb_mediaproc_refusal {
    SB_MEDIAPROC_OK = 0,
    SB_MEDIAPROC_TYPE,  /* its type is not allowed */
    SB_MEDIAPROC_IMAGE, /* an image type, but not a whole image */
    SB_MEDIAPROC_IO,    /* the file could not be read or written (a full
                           disk: errno says) */
} sb_mediaproc_refusal;

typedef struct sb_mediaproc_result {
    sb_mediaproc_refusal refusal;
    int err;                                /* SB_MEDIAPROC_IO: -errno */
    char mime[SB_MEDIA_MIME_BYTES_MAX + 1]; /* what the content is */
    sb_image_info image;                    /* format NONE: not an image */
    uint8_t sha256[32];
    uint64_t size; /* of the file kept (smaller once cleaned) */
} sb_mediaproc_result;

/* Reads the file at path (size bytes, at most bytes_max) and decides:
 * fills *r. A cleaned image replaces the file at path. Thread-safe;
 * blocking. */
void sb_mediaproc_run(sb_mediaproc *p, const char *path, uint64_t size,
                      sb_mediaproc_result *r);

#endif
