/* Test photos with a location: libjpeg for the picture, the EXIF block
 * (TIFF structure, GPS IFD) and the PNG and WebP containers by hand. */
#include "photo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <zlib.h>

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
    bool be;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void u8(bytes *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}

static void u16(bytes *b, unsigned v)
{
    if (b->be) {
        u8(b, v >> 8);
        u8(b, v);
    } else {
        u8(b, v);
        u8(b, v >> 8);
    }
}

static void u32(bytes *b, uint32_t v)
{
    if (b->be) {
        u16(b, v >> 16);
        u16(b, v & 0xffff);
    } else {
        u16(b, v & 0xffff);
        u16(b, v >> 16);
    }
}

static void be32(bytes *b, uint32_t v)
{
    u8(b, v >> 24);
    u8(b, v >> 16);
    u8(b, v >> 8);
    u8(b, v);
}

static void le32(bytes *b, uint32_t v)
{
    u8(b, v);
    u8(b, v >> 8);
    u8(b, v >> 16);
    u8(b, v >> 24);
}

static void entry(bytes *b, unsigned tag, unsigned type, uint32_t count,
                  uint32_t value)
{
    u16(b, tag);
    u16(b, type);
    u32(b, count);
    if (type == 3 && count == 1) { /* a SHORT sits in the first half */
        u16(b, value);
        u16(b, 0);
    } else {
        u32(b, value);
    }
}

/* The TIFF structure of the EXIF block: IFD0 (make, orientation, GPS
 * pointer), the GPS IFD (latitude and longitude with their references),
 * then the values. */
static void tiff_make(bytes *t, const photo_opts *o)
{
    t->be = o->big_endian;
    put(t, o->big_endian ? "MM" : "II", 2);
    u16(t, 42);
    u32(t, 8);
    unsigned n0 = 1 + (o->orientation ? 1 : 0) + (o->gps ? 1 : 0);
    uint32_t ifd0_end = 8 + 2 + 12 * n0 + 4;
    uint32_t gps_at = ifd0_end;
    uint32_t gps_end = o->gps ? gps_at + 2 + 12 * 4 + 4 : gps_at;
    uint32_t make_at = gps_end, lat_at = make_at + 6, lon_at = lat_at + 24;
    u16(t, n0);
    entry(t, 0x010f, 2, 6, make_at);
    if (o->orientation) entry(t, 0x0112, 3, 1, (uint32_t)o->orientation);
    if (o->gps) entry(t, 0x8825, 4, 1, gps_at);
    u32(t, 0);
    if (o->gps) {
        u16(t, 4);
        entry(t, 0x0001, 2, 2, 0); /* "N" inline, set below */
        t->p[t->n - 4] = 'N';
        entry(t, 0x0002, 5, 3, lat_at);
        entry(t, 0x0003, 2, 2, 0);
        t->p[t->n - 4] = 'E';
        entry(t, 0x0004, 5, 3, lon_at);
        u32(t, 0);
    }
    put(t, PHOTO_MAKE, 6);
    if (o->gps) {
        static const uint32_t lat[] = {48, 1, 51, 1, 296, 10};
        static const uint32_t lon[] = {2, 1, 17, 1, 402, 10};
        for (int i = 0; i < 6; i++)
            u32(t, lat[i]);
        for (int i = 0; i < 6; i++)
            u32(t, lon[i]);
    }
}

static const char XMP[] =
    "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF><rdf:Description "
    "exif:GPSLatitude=\"48,51.4933N\" exif:GPSLongitude=\"2,17.67E\"/>"
    "</rdf:RDF></x:xmpmeta>";

/* The picture alone, as libjpeg writes it (SOI, JFIF, tables, scan). */
static int jpeg_plain(int w, int h, uint8_t **out, size_t *n)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned long size = 0;
    unsigned char *mem = NULL;
    jpeg_mem_dest(&c, &mem, &size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 80, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * 3);
    while (c.next_scanline < c.image_height) {
        int y = (int)c.next_scanline;
        for (int x = 0; x < w; x++) {
            row[3 * x] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
            row[3 * x + 1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
            row[3 * x + 2] = 128;
        }
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    *out = malloc(size);
    if (!*out) return -1;
    memcpy(*out, mem, size);
    *n = size;
    free(mem);
    return 0;
}

int photo_jpeg(const photo_opts *o, uint8_t **out, size_t *n)
{
    uint8_t *plain;
    size_t pn;
    if (jpeg_plain(o->w, o->h, &plain, &pn)) return -1;
    bytes b = {0}, t = {0};
    put(&b, plain, 2); /* SOI */
    tiff_make(&t, o);
    size_t len = 2 + 6 + t.n;
    u8(&b, 0xff);
    u8(&b, 0xe1);
    u8(&b, (unsigned)(len >> 8));
    u8(&b, (unsigned)len);
    put(&b, "Exif\0\0", 6);
    put(&b, t.p, t.n);
    if (o->xmp) {
        static const char id[] = "http://ns.adobe.com/xap/1.0/";
        size_t xl = 2 + sizeof id + sizeof XMP - 1;
        u8(&b, 0xff);
        u8(&b, 0xe1);
        u8(&b, (unsigned)(xl >> 8));
        u8(&b, (unsigned)xl);
        put(&b, id, sizeof id);
        put(&b, XMP, sizeof XMP - 1);
    }
    put(&b, plain + 2, pn - 2);
    if (o->trailer) { /* a second image, with its own location */
        put(&b, plain, 2);
        u8(&b, 0xff);
        u8(&b, 0xe1);
        u8(&b, (unsigned)(len >> 8));
        u8(&b, (unsigned)len);
        put(&b, "Exif\0\0", 6);
        put(&b, t.p, t.n);
        put(&b, plain + 2, pn - 2);
    }
    free(plain);
    free(t.p);
    *out = b.p;
    *n = b.n;
    return 0;
}

static void png_chunk(bytes *b, const char *type, const void *data, size_t n)
{
    be32(b, (uint32_t)n);
    size_t at = b->n;
    put(b, type, 4);
    if (n) put(b, data, n);
    be32(b, (uint32_t)crc32(0, b->p + at, (uInt)(n + 4)));
}

int photo_png_exif(uint8_t **out, size_t *n)
{
    bytes b = {0}, t = {0}, ihdr = {.be = true}, x = {0};
    put(&b, "\x89PNG\r\n\x1a\n", 8);
    be32(&ihdr, 2);
    be32(&ihdr, 2);
    static const uint8_t rest[] = {8, 2, 0, 0, 0}; /* 8-bit RGB */
    put(&ihdr, rest, sizeof rest);
    png_chunk(&b, "IHDR", ihdr.p, ihdr.n);
    photo_opts o = {.w = 2, .h = 2, .gps = true, .big_endian = true};
    tiff_make(&t, &o);
    png_chunk(&b, "eXIf", t.p, t.n);
    static const char key[] = "XML:com.adobe.xmp";
    put(&x, key, sizeof key);
    put(&x, "\0\0\0\0", 4); /* compression, method, language, keyword */
    put(&x, XMP, sizeof XMP - 1);
    png_chunk(&b, "iTXt", x.p, x.n);
    uint8_t raw[2 * 7] = {0};
    for (int i = 0; i < 14; i++)
        raw[i] = i % 7 == 0 ? 0 : (uint8_t)(i * 40);
    uint8_t z[64];
    uLongf zn = sizeof z;
    if (compress(z, &zn, raw, sizeof raw) != Z_OK) return -1;
    png_chunk(&b, "IDAT", z, zn);
    png_chunk(&b, "IEND", NULL, 0);
    put(&b, "TRAILER", 7);
    free(t.p);
    free(ihdr.p);
    free(x.p);
    *out = b.p;
    *n = b.n;
    return 0;
}

static void riff_chunk(bytes *b, const char *type, const void *data, size_t n)
{
    put(b, type, 4);
    le32(b, (uint32_t)n);
    put(b, data, n);
    if (n & 1) u8(b, 0);
}

int photo_webp_exif(uint8_t **out, size_t *n)
{
    bytes b = {0}, t = {0}, x = {0};
    put(&b, "RIFF\0\0\0\0WEBP", 12);
    /* VP8X: flags (EXIF 0x08, XMP 0x04), reserved, canvas 2x3 (minus 1) */
    static const uint8_t vp8x[10] = {0x0c, 0, 0, 0, 1, 0, 0, 2, 0, 0};
    riff_chunk(&b, "VP8X", vp8x, sizeof vp8x);
    /* VP8L: the signature, 14 bits of width - 1, 14 of height - 1, then
     * a few bytes standing for the bitstream. */
    uint32_t bits = (2 - 1) | (3 - 1) << 14;
    uint8_t vp8l[9] = {0x2f,
                       (uint8_t)bits,
                       (uint8_t)(bits >> 8),
                       (uint8_t)(bits >> 16),
                       (uint8_t)(bits >> 24),
                       0,
                       0,
                       0,
                       0};
    riff_chunk(&b, "VP8L", vp8l, sizeof vp8l);
    photo_opts o = {.w = 2, .h = 3, .gps = true};
    tiff_make(&t, &o);
    riff_chunk(&b, "EXIF", t.p, t.n);
    put(&x, XMP, sizeof XMP - 1);
    riff_chunk(&b, "XMP ", x.p, x.n);
    uint32_t riff = (uint32_t)(b.n - 8);
    memcpy(b.p + 4,
           (uint8_t[]){(uint8_t)riff, (uint8_t)(riff >> 8),
                       (uint8_t)(riff >> 16), (uint8_t)(riff >> 24)},
           4);
    free(t.p);
    free(x.p);
    *out = b.p;
    *n = b.n;
    return 0;
}

static bool has(const uint8_t *p, size_t n, const void *s, size_t len)
{
    for (size_t i = 0; i + len <= n; i++)
        if (memcmp(p + i, s, len) == 0) return true;
    return false;
}

bool photo_has_gps(const uint8_t *p, size_t n)
{
    /* 296/10 (the latitude's seconds) in either byte order, and XMP's
     * name for it. */
    static const uint8_t le[8] = {0x28, 1, 0, 0, 10, 0, 0, 0};
    static const uint8_t be[8] = {0, 0, 1, 0x28, 0, 0, 0, 10};
    return has(p, n, le, 8) || has(p, n, be, 8) || has(p, n, "GPSLatitude", 11);
}
