/* Raster images as uploads bring them (JPEG, PNG, GIF, WebP): their size
 * in pixels, as a viewer displays them, and a copy without what would
 * tell where a photo was taken. JPEG loses the GPS data of its EXIF (the
 * rest of EXIF stays: orientation, camera), its XMP, its Multi-Picture
 * index and whatever follows the image's end (a phone's second images,
 * a polyglot's payload); PNG its eXIf and XMP chunks and what follows
 * IEND; WebP its EXIF and XMP chunks and what follows the RIFF. GIF has
 * no such data and stays as it is. No I/O: bytes in, bytes out. */
#ifndef SB_IMAGE_H
#define SB_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"

typedef enum sb_image_format {
    SB_IMAGE_NONE = 0,
    SB_IMAGE_JPEG,
    SB_IMAGE_PNG,
    SB_IMAGE_GIF,
    SB_IMAGE_WEBP,
} sb_image_format;

typedef struct sb_image_info {
    sb_image_format format;
    /* As displayed: an EXIF orientation that turns the picture (5 to 8)
     * swaps the stored width and height. */
    uint32_t width, height;
    uint16_t orientation; /* EXIF's, 1 when there is none */
    bool gps_removed;     /* a location was in it and is not in the copy */
    bool changed;         /* the copy differs from the input */
} sb_image_info;

/* The format p[0..n) starts like, by its signature; SB_IMAGE_NONE for
 * none of the four. */
sb_image_format sb_image_sniff(const uint8_t *p, size_t n);

/* The MIME type of a format ("image/jpeg"...; "" for NONE). */
const char *sb_image_mime(sb_image_format f);
/* The format of a MIME type, SB_IMAGE_NONE for any other type. */
sb_image_format sb_image_from_mime(const char *mime);

/* Reads the image in p[0..n) and cleans it. On success fills *info and,
 * when info->changed, appends the cleaned image to out (else out's length
 * is left as it was: the input is clean; out may have grown its room
 * either way, sb_buf_free it). Returns 0; SB_E_INVALID when p is not a
 * whole image of the format its signature says (cut short, no size, a
 * segment or chunk running past the end, a side of 0 or over
 * SB_MEDIA_SIDE_MAX), or -ENOMEM. */
int sb_image_clean(const uint8_t *p, size_t n, sb_buf *out,
                   sb_image_info *info);

#endif
