/* sb_image: sizes of JPEG, PNG, GIF and WebP images, and the location
 * taken out of photos: the GPS IFD of EXIF in either byte order (the rest
 * of EXIF kept, the orientation read), XMP, what follows the image's end;
 * PNG's eXIf and XMP chunks; WebP's EXIF and XMP chunks with its VP8X
 * flags and RIFF size made right. A cleaned photo still decodes (libjpeg)
 * to the same size, and cleaning it again changes nothing. Cut-short and
 * damaged images are refused without reading past their end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>
#include <string.h>

#include "photo.h"
#include "sb_error.h"
#include "sb_image.h"

static bool has(const uint8_t *p, size_t n, const char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i + len <= n; i++)
        if (memcmp(p + i, s, len) == 0) return true;
    return false;
}

/* The size libjpeg reads from a JPEG in memory. */
static void jpeg_size(const uint8_t *p, size_t n, int *w, int *h)
{
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr err;
    d.err = jpeg_std_error(&err);
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, p, (unsigned long)n);
    assert_int_equal(jpeg_read_header(&d, TRUE), JPEG_HEADER_OK);
    jpeg_start_decompress(&d);
    *w = (int)d.output_width;
    *h = (int)d.output_height;
    JSAMPARRAY row = (*d.mem->alloc_sarray)((j_common_ptr)&d, JPOOL_IMAGE,
                                            d.output_width * 3, 1);
    while (d.output_scanline < d.output_height)
        jpeg_read_scanlines(&d, row, 1);
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
}

/* Cleans p and checks the result has no location and stays clean. */
static void clean_photo(const uint8_t *p, size_t n, sb_buf *out,
                        sb_image_info *info)
{
    assert_true(photo_has_gps(p, n));
    assert_int_equal(sb_image_clean(p, n, out, info), 0);
    assert_true(info->changed);
    assert_true(out->len > 0 && out->len <= n);
    assert_false(photo_has_gps(out->data, out->len));
    sb_buf again = SB_BUF_INIT;
    sb_image_info i2;
    assert_int_equal(sb_image_clean(out->data, out->len, &again, &i2), 0);
    assert_false(i2.changed);
    assert_false(i2.gps_removed);
    assert_int_equal(again.len, 0);
    assert_int_equal(i2.width, info->width);
    assert_int_equal(i2.height, info->height);
    sb_buf_free(&again);
}

static void test_jpeg_gps_le(void **state)
{
    (void)state;
    photo_opts o = {.w = 40, .h = 30, .orientation = 6, .gps = true};
    uint8_t *p;
    size_t n;
    assert_int_equal(photo_jpeg(&o, &p, &n), 0);
    assert_int_equal(sb_image_sniff(p, n), SB_IMAGE_JPEG);
    sb_buf out = SB_BUF_INIT;
    sb_image_info info;
    clean_photo(p, n, &out, &info);
    assert_int_equal(info.format, SB_IMAGE_JPEG);
    assert_true(info.gps_removed);
    assert_int_equal(info.orientation, 6);
    /* Turned a quarter: displayed 30 wide, 40 high. */
    assert_int_equal(info.width, 30);
    assert_int_equal(info.height, 40);
    /* The rest of EXIF stays: the camera's make. */
    assert_true(has(out.data, out.len, PHOTO_MAKE));
    assert_true(has(out.data, out.len, "Exif"));
    int w, h;
    jpeg_size(out.data, out.len, &w, &h);
    assert_int_equal(w, 40);
    assert_int_equal(h, 30);
    sb_buf_free(&out);
    free(p);
}

static void test_jpeg_gps_be_xmp_trailer(void **state)
{
    (void)state;
    photo_opts o = {.w = 17,
                    .h = 9,
                    .gps = true,
                    .big_endian = true,
                    .xmp = true,
                    .trailer = true};
    uint8_t *p;
    size_t n;
    assert_int_equal(photo_jpeg(&o, &p, &n), 0);
    sb_buf out = SB_BUF_INIT;
    sb_image_info info;
    clean_photo(p, n, &out, &info);
    assert_int_equal(info.width, 17);
    assert_int_equal(info.height, 9);
    assert_int_equal(info.orientation, 1);
    assert_false(has(out.data, out.len, "xmpmeta"));
    assert_true(has(out.data, out.len, PHOTO_MAKE));
    /* The image ends with its EOI: the second one is gone. */
    assert_int_equal(out.data[out.len - 2], 0xff);
    assert_int_equal(out.data[out.len - 1], 0xd9);
    int w, h;
    jpeg_size(out.data, out.len, &w, &h);
    assert_int_equal(w, 17);
    sb_buf_free(&out);
    free(p);
}

static void test_jpeg_clean_stays(void **state)
{
    (void)state;
    photo_opts o = {.w = 8, .h = 8, .orientation = 1};
    uint8_t *p;
    size_t n;
    assert_int_equal(photo_jpeg(&o, &p, &n), 0);
    sb_buf out = SB_BUF_INIT;
    sb_image_info info;
    assert_int_equal(sb_image_clean(p, n, &out, &info), 0);
    assert_false(info.changed);
    assert_false(info.gps_removed);
    assert_int_equal(out.len, 0);
    assert_int_equal(info.width, 8);
    sb_buf_free(&out);
    free(p);
}

/* Every prefix of a photo is refused (no EOI), and reading never goes
 * past it (ASan would say). */
static void test_jpeg_cut(void **state)
{
    (void)state;
    photo_opts o = {.w = 16, .h = 16, .gps = true, .xmp = true};
    uint8_t *p;
    size_t n;
    assert_int_equal(photo_jpeg(&o, &p, &n), 0);
    for (size_t k = 0; k < n - 1; k++) {
        uint8_t *cut = malloc(k ? k : 1);
        memcpy(cut, p, k);
        sb_buf out = SB_BUF_INIT;
        sb_image_info info;
        assert_int_equal(sb_image_clean(cut, k, &out, &info), SB_E_INVALID);
        assert_int_equal(out.len, 0);
        sb_buf_free(&out);
        free(cut);
    }
    free(p);
}

/* An EXIF block whose IFD points outside it is dropped whole; the
 * picture stays. */
static void test_jpeg_bad_exif(void **state)
{
    (void)state;
    photo_opts o = {.w = 8, .h = 4, .gps = true, .orientation = 3};
    uint8_t *p;
    size_t n;
    assert_int_equal(photo_jpeg(&o, &p, &n), 0);
    /* The TIFF header's IFD0 offset: at SOI + APP1 head + "Exif\0\0" + 4. */
    size_t at = 2 + 4 + 6 + 4;
    p[at] = 0xf0;
    p[at + 1] = 0xff;
    sb_buf out = SB_BUF_INIT;
    sb_image_info info;
    assert_int_equal(sb_image_clean(p, n, &out, &info), 0);
    assert_true(info.changed);
    assert_false(has(out.data, out.len, "Exif"));
    assert_false(photo_has_gps(out.data, out.len));
    assert_int_equal(info.orientation, 1);
    int w, h;
    jpeg_size(out.data, out.len, &w, &h);
    assert_int_equal(w, 8);
    sb_buf_free(&out);
    free(p);
}

/* A GPS value that points into the TIFF header (or the IFD that names
 * the GPS IFD) is no location to zero: the EXIF block goes whole, and the
 * copy cleans without change (zeroing the header made the EXIF block
 * unreadable the second time). */
static void test_jpeg_gps_into_header(void **state)
{
    (void)state;
    photo_opts o = {.w = 8, .h = 4, .gps = true, .big_endian = true};
    uint8_t *p;
    size_t n;
    assert_int_equal(photo_jpeg(&o, &p, &n), 0);
    uint8_t *t = p + 2 + 4 + 6; /* the TIFF header, "MM" */
    assert_memory_equal(t, "MM", 2);
#define BE16(x) ((size_t)(x)[0] << 8 | (x)[1])
#define BE32(x) (BE16(x) << 16 | BE16((x) + 2))
    size_t ifd0 = BE32(t + 4), gps = 0;
    for (size_t i = 0; i < BE16(t + ifd0); i++) {
        const uint8_t *e = t + ifd0 + 2 + i * 12;
        if (BE16(e) == 0x8825) gps = BE32(e + 8);
    }
    assert_true(gps > 0);
    bool moved = false;
    for (size_t i = 0; i < BE16(t + gps) && !moved; i++) {
        uint8_t *e = t + gps + 2 + i * 12;
        if (BE16(e + 2) == 5) { /* a RATIONAL: its value is elsewhere */
            e[8] = e[9] = e[10] = 0;
            e[11] = 2; /* over the magic 42 and IFD0's offset */
            moved = true;
        }
    }
#undef BE32
#undef BE16
    assert_true(moved);
    sb_buf out = SB_BUF_INIT;
    sb_image_info info;
    assert_int_equal(sb_image_clean(p, n, &out, &info), 0);
    assert_true(info.changed);
    assert_false(has(out.data, out.len, "Exif"));
    sb_buf again = SB_BUF_INIT;
    sb_image_info i2;
    assert_int_equal(sb_image_clean(out.data, out.len, &again, &i2), 0);
    assert_false(i2.changed);
    assert_int_equal(again.len, 0);
    sb_buf_free(&again);
    sb_buf_free(&out);
    free(p);
}

/* A second EXIF block that does not parse goes, and takes nothing of the
 * first's with it: the orientation that one says stays, so the copy reads
 * the same sizes again (the fuzzer found the sides swapped between the
 * two). */
static void test_jpeg_second_exif_bad(void **state)
{
    (void)state;
    photo_opts o = {.w = 8, .h = 4, .orientation = 6};
    uint8_t *p;
    size_t n;
    assert_int_equal(photo_jpeg(&o, &p, &n), 0);
    size_t app1 = 2 + 2 + ((size_t)p[4] << 8 | p[5]); /* after the EXIF */
    static const uint8_t bad[] = {0xff, 0xe1, 0x00, 0x10, 'E', 'x',
                                  'i',  'f',  0,    0,    'I', 'I',
                                  0,    0,    0,    0,    0,   0};
    uint8_t *q = malloc(n + sizeof bad);
    assert_non_null(q);
    memcpy(q, p, app1);
    memcpy(q + app1, bad, sizeof bad);
    memcpy(q + app1 + sizeof bad, p + app1, n - app1);
    sb_buf out = SB_BUF_INIT;
    sb_image_info info;
    assert_int_equal(sb_image_clean(q, n + sizeof bad, &out, &info), 0);
    assert_true(info.changed);
    assert_int_equal(info.orientation, 6);
    assert_int_equal(info.width, 4); /* displayed turned a quarter */
    assert_int_equal(info.height, 8);
    sb_buf again = SB_BUF_INIT;
    sb_image_info i2;
    assert_int_equal(sb_image_clean(out.data, out.len, &again, &i2), 0);
    assert_false(i2.changed);
    assert_int_equal(i2.width, 4);
    assert_int_equal(i2.height, 8);
    sb_buf_free(&again);
    sb_buf_free(&out);
    free(q);
    free(p);
}

static void test_png(void **state)
{
    (void)state;
    uint8_t *p;
    size_t n;
    assert_int_equal(photo_png_exif(&p, &n), 0);
    assert_int_equal(sb_image_sniff(p, n), SB_IMAGE_PNG);
    sb_buf out = SB_BUF_INIT;
    sb_image_info info;
    clean_photo(p, n, &out, &info);
    assert_int_equal(info.format, SB_IMAGE_PNG);
    assert_int_equal(info.width, 2);
    assert_int_equal(info.height, 2);
    assert_false(has(out.data, out.len, "eXIf"));
    assert_false(has(out.data, out.len, "xmpmeta"));
    assert_false(has(out.data, out.len, "TRAILER"));
    assert_true(has(out.data, out.len, "IDAT"));
    assert_memory_equal(out.data + out.len - 8, "IEND", 4);
    for (size_t k = 0; k < n - 7; k++) { /* without IEND: refused */
        sb_buf o2 = SB_BUF_INIT;
        assert_int_equal(sb_image_clean(p, k, &o2, &info), SB_E_INVALID);
        sb_buf_free(&o2);
    }
    sb_buf_free(&out);
    free(p);
}

static void test_webp(void **state)
{
    (void)state;
    uint8_t *p;
    size_t n;
    assert_int_equal(photo_webp_exif(&p, &n), 0);
    assert_int_equal(sb_image_sniff(p, n), SB_IMAGE_WEBP);
    sb_buf out = SB_BUF_INIT;
    sb_image_info info;
    clean_photo(p, n, &out, &info);
    assert_int_equal(info.width, 2);
    assert_int_equal(info.height, 3);
    assert_false(has(out.data, out.len, "EXIF"));
    assert_false(has(out.data, out.len, "XMP "));
    /* The RIFF size is the file's, the VP8X flags say no EXIF or XMP. */
    uint32_t riff = out.data[4] | out.data[5] << 8 | out.data[6] << 16 |
                    (uint32_t)out.data[7] << 24;
    assert_int_equal(riff, out.len - 8);
    assert_memory_equal(out.data + 12, "VP8X", 4);
    assert_int_equal(out.data[20] & 0x0c, 0);
    for (size_t k = 0; k < n; k++) {
        sb_buf o2 = SB_BUF_INIT;
        assert_int_equal(sb_image_clean(p, k, &o2, &info), SB_E_INVALID);
        sb_buf_free(&o2);
    }
    sb_buf_free(&out);
    free(p);
}

static void test_gif_and_others(void **state)
{
    (void)state;
    static const uint8_t gif[] = "GIF89a\x20\x01\x10\x00\x80\x00\x00";
    sb_buf out = SB_BUF_INIT;
    sb_image_info info;
    assert_int_equal(sb_image_clean(gif, sizeof gif - 1, &out, &info), 0);
    assert_int_equal(info.format, SB_IMAGE_GIF);
    assert_int_equal(info.width, 288);
    assert_int_equal(info.height, 16);
    assert_false(info.changed);
    static const uint8_t wide[] = "GIF89a\x00\x00\x10\x00\x80\x00\x00";
    assert_int_equal(sb_image_clean(wide, sizeof wide - 1, &out, &info),
                     SB_E_INVALID); /* a side of 0 */
    static const char svg[] = "<svg xmlns='http://www.w3.org/2000/svg'/>";
    assert_int_equal(sb_image_sniff((const uint8_t *)svg, sizeof svg),
                     SB_IMAGE_NONE);
    assert_int_equal(
        sb_image_clean((const uint8_t *)svg, sizeof svg, &out, &info),
        SB_E_INVALID);
    assert_int_equal(sb_image_from_mime("image/png"), SB_IMAGE_PNG);
    assert_int_equal(sb_image_from_mime("image/svg+xml"), SB_IMAGE_NONE);
    assert_string_equal(sb_image_mime(SB_IMAGE_WEBP), "image/webp");
    /* A JPEG that claims a side of 40000 pixels. */
    photo_opts o = {.w = 8, .h = 8};
    uint8_t *p;
    size_t n;
    assert_int_equal(photo_jpeg(&o, &p, &n), 0);
    for (size_t i = 2; i + 8 < n; i++) {
        if (p[i] == 0xff && p[i + 1] == 0xc0) { /* SOF0: height at +5 */
            p[i + 5] = 0x9c;
            p[i + 6] = 0x40;
            break;
        }
    }
    assert_int_equal(sb_image_clean(p, n, &out, &info), SB_E_INVALID);
    free(p);
    sb_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jpeg_gps_le),
        cmocka_unit_test(test_jpeg_gps_into_header),
        cmocka_unit_test(test_jpeg_second_exif_bad),
        cmocka_unit_test(test_jpeg_gps_be_xmp_trailer),
        cmocka_unit_test(test_jpeg_clean_stays),
        cmocka_unit_test(test_jpeg_cut),
        cmocka_unit_test(test_jpeg_bad_exif),
        cmocka_unit_test(test_png),
        cmocka_unit_test(test_webp),
        cmocka_unit_test(test_gif_and_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
