/* Test photos: a JPEG made with libjpeg (a gradient of w x h pixels)
 * with an EXIF block in front, as a phone writes it: the camera's make,
 * an orientation, and a GPS IFD with a latitude and longitude; in either
 * byte order. Also PNG and WebP files with an EXIF chunk. For the tests
 * of location stripping, in C and (a copy on disk) in the browser. */
#ifndef SB_TEST_PHOTO_H
#define SB_TEST_PHOTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The GPS position every photo carries: 48 51' 29.6" N, 2 17' 40.2" E. */
#define PHOTO_MAKE "SBCAM"

typedef struct photo_opts {
    int w, h;
    int orientation; /* EXIF's (1..8); 0: no orientation tag */
    bool gps;        /* a GPS IFD */
    bool big_endian; /* "MM" rather than "II" */
    bool xmp;        /* an XMP packet that names the position too */
    bool trailer;    /* bytes after the image's end (a second image) */
} photo_opts;

/* A JPEG as opts say, malloc'd into *out (*n bytes). Returns 0 or -1. */
int photo_jpeg(const photo_opts *o, uint8_t **out, size_t *n);
/* A 2x2 PNG with an eXIf chunk carrying the GPS IFD and an XMP iTXt. */
int photo_png_exif(uint8_t **out, size_t *n);
/* A lossless 2x3 WebP (VP8X + VP8L) with EXIF and XMP chunks. */
int photo_webp_exif(uint8_t **out, size_t *n);
/* Whether p holds the GPS position in any of its forms: the latitude's
 * rational (48/1), "GPSLatitude" of XMP, or the GPS IFD's tags. */
bool photo_has_gps(const uint8_t *p, size_t n);

#endif
