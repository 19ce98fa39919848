/* Image sizes and location stripping for JPEG, PNG, GIF and WebP: a walk
 * over each format's segments or chunks with every length checked against
 * the bytes left, copying what stays into the output. */
#include "sb_image.h"

#include <errno.h>
#include <string.h>

#include "sb_error.h"
#include "sb_limits.h"

/* ---- bytes ----------------------------------------------------------------
 */

static uint32_t be16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static uint32_t le16(const uint8_t *p)
{
    return (uint32_t)p[1] << 8 | p[0];
}

static uint32_t le24(const uint8_t *p)
{
    return (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 |
           p[0];
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static bool starts(const uint8_t *p, size_t n, const char *s, size_t len)
{
    return n >= len && memcmp(p, s, len) == 0;
}

static bool side_ok(uint32_t v)
{
    return v > 0 && v <= SB_MEDIA_SIDE_MAX;
}

sb_image_format sb_image_sniff(const uint8_t *p, size_t n)
{
    if (starts(p, n, "\xff\xd8\xff", 3)) return SB_IMAGE_JPEG;
    if (starts(p, n, "\x89PNG\r\n\x1a\n", 8)) return SB_IMAGE_PNG;
    if (starts(p, n, "GIF87a", 6) || starts(p, n, "GIF89a", 6))
        return SB_IMAGE_GIF;
    if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return SB_IMAGE_WEBP;
    return SB_IMAGE_NONE;
}

static const char *const MIMES[] = {
    [SB_IMAGE_NONE] = "",           [SB_IMAGE_JPEG] = "image/jpeg",
    [SB_IMAGE_PNG] = "image/png",   [SB_IMAGE_GIF] = "image/gif",
    [SB_IMAGE_WEBP] = "image/webp",
};

const char *sb_image_mime(sb_image_format f)
{
    return (unsigned)f < sizeof MIMES / sizeof MIMES[0] ? MIMES[f] : "";
}

sb_image_format sb_image_from_mime(const char *mime)
{
    for (int f = SB_IMAGE_JPEG; f <= SB_IMAGE_WEBP; f++)
        if (strcmp(mime, MIMES[f]) == 0) return (sb_image_format)f;
    return SB_IMAGE_NONE;
}

/* ---- EXIF (a TIFF structure inside a JPEG's APP1) --------------------------
 */

#define TAG_ORIENTATION 0x0112
#define TAG_GPS_IFD 0x8825
#define IFD_ENTRY 12
#define IFD_SCAN_MAX 2 /* IFD0 and IFD1 (the thumbnail's) */

typedef struct tiff {
    uint8_t *p; /* the TIFF header's first byte */
    size_t n;
    bool le; /* "II": little-endian */
} tiff;

static uint32_t t16(const tiff *t, size_t at)
{
    return t->le ? le16(t->p + at) : be16(t->p + at);
}

static uint32_t t32(const tiff *t, size_t at)
{
    return t->le ? le32(t->p + at) : be32(t->p + at);
}

static void t16_put(const tiff *t, size_t at, uint32_t v)
{
    uint8_t *p = t->p + at;
    if (t->le) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
    } else {
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
    }
}

/* Bytes of one value of a TIFF field type; 0 for an unknown type. */
static size_t type_size(uint32_t type)
{
    switch (type) {
    case 1: /* BYTE */
    case 2: /* ASCII */
    case 6: /* SBYTE */
    case 7: /* UNDEFINED */
        return 1;
    case 3: /* SHORT */
    case 8: /* SSHORT */
        return 2;
    case 4:  /* LONG */
    case 9:  /* SLONG */
    case 11: /* FLOAT */
        return 4;
    case 5:  /* RATIONAL */
    case 10: /* SRATIONAL */
    case 12: /* DOUBLE */
        return 8;
    default:
        return 0;
    }
}

/* Whether an IFD of the entries it says it has fits at off. */
static bool ifd_fits(const tiff *t, size_t off, uint32_t *count)
{
    if (off < 8 || off > t->n || t->n - off < 2) return false;
    *count = t16(t, off);
    return (size_t)*count * IFD_ENTRY + 6 <= t->n - off;
}

/* Whether [at, at + len) stays clear of the TIFF header and of the IFD
 * being walked, [lo, hi): zeroing it must leave what is read again the
 * same. */
static bool clear_of(size_t at, uint64_t len, size_t lo, size_t hi)
{
    return at >= 8 && (at + len <= lo || at >= hi);
}

/* Zeroes the GPS IFD at off: its entries, the values they point at and
 * its link to a next IFD. False when it does not fit, or reaches into the
 * header, the IFD [lo, hi) that points at it or (a value) the GPS IFD
 * itself. */
static bool gps_wipe(tiff *t, size_t off, size_t lo, size_t hi)
{
    uint32_t count;
    if (!ifd_fits(t, off, &count)) return false;
    if (!clear_of(off, (uint64_t)count * IFD_ENTRY + 6, lo, hi)) return false;
    for (uint32_t i = 0; i < count; i++) {
        size_t e = off + 2 + (size_t)i * IFD_ENTRY;
        size_t size = type_size(t16(t, e + 2));
        uint64_t total = (uint64_t)size * t32(t, e + 4);
        if (total <= 4) continue; /* the value is in the entry */
        uint32_t at = t32(t, e + 8);
        if (at > t->n || total > t->n - at) return false;
        if (!clear_of(at, total, lo, hi) ||
            !clear_of(at, total, off, off + (size_t)count * IFD_ENTRY + 6))
            return false;
    }
    for (uint32_t i = 0; i < count; i++) {
        size_t e = off + 2 + (size_t)i * IFD_ENTRY;
        size_t size = type_size(t16(t, e + 2));
        uint64_t total = (uint64_t)size * t32(t, e + 4);
        if (total <= 4) continue;
        memset(t->p + t32(t, e + 8), 0, (size_t)total);
    }
    memset(t->p + off, 0, (size_t)count * IFD_ENTRY + 6);
    return true;
}

/* Walks IFD0 and IFD1: reads the orientation, and removes each GPS
 * pointer (the entry taken out, the IFD it points at zeroed). False for
 * an EXIF block that does not hold together: the caller drops it. */
static bool exif_clean(uint8_t *p, size_t n, sb_image_info *info)
{
    tiff t = {.p = p, .n = n};
    if (n < 8) return false;
    if (memcmp(p, "II", 2) == 0)
        t.le = true;
    else if (memcmp(p, "MM", 2) != 0)
        return false;
    if (t16(&t, 2) != 42) return false;
    size_t off = t32(&t, 4);
    for (int ifd = 0; ifd < IFD_SCAN_MAX && off != 0; ifd++) {
        uint32_t count;
        if (!ifd_fits(&t, off, &count)) return false;
        for (uint32_t i = 0; i < count; i++) {
            size_t e = off + 2 + (size_t)i * IFD_ENTRY;
            uint32_t tag = t16(&t, e);
            if (ifd == 0 && tag == TAG_ORIENTATION && t16(&t, e + 2) == 3) {
                uint32_t o = t16(&t, e + 8);
                info->orientation = o >= 1 && o <= 8 ? (uint16_t)o : 1;
            }
            if (tag != TAG_GPS_IFD) continue;
            uint32_t gps = t32(&t, e + 8);
            size_t hi = off + 2 + (size_t)count * IFD_ENTRY + 4;
            if (!gps_wipe(&t, gps, off, hi)) return false;
            /* Take the entry out: the later ones and the next-IFD link
             * move up, the freed 12 bytes are zero. */
            size_t end = off + 2 + (size_t)count * IFD_ENTRY + 4;
            memmove(p + e, p + e + IFD_ENTRY, end - e - IFD_ENTRY);
            memset(p + end - IFD_ENTRY, 0, IFD_ENTRY);
            t16_put(&t, off, --count);
            info->gps_removed = true;
            i--; /* the entry now at e is the next one */
        }
        off = t32(&t, off + 2 + (size_t)count * IFD_ENTRY);
    }
    return true;
}

/* ---- JPEG -----------------------------------------------------------------
 */

static const char XMP_ID[] = "http://ns.adobe.com/xap/1.0/"; /* with NUL */
static const char XMP_EXT[] = "http://ns.adobe.com/xmp/extension/";
static const char MPF_ID[] = "MPF";

static bool is_sof(uint8_t m)
{
    return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
}

/* Markers that stand alone, with no length: RSTn, TEM. */
static bool is_standalone(uint8_t m)
{
    return (m >= 0xd0 && m <= 0xd7) || m == 0x01;
}

/* The end of the image that starts with the scan data at at: the byte
 * after its EOI, skipping the segments between scans of a progressive
 * image by their lengths. 0 when it has no EOI. */
static size_t jpeg_scan_end(const uint8_t *p, size_t n, size_t at)
{
    size_t i = at;
    while (i + 1 < n) {
        if (p[i] != 0xff) {
            i++;
            continue;
        }
        uint8_t m = p[i + 1];
        if (m == 0x00 || m == 0xff || is_standalone(m)) {
            i += m == 0xff ? 1 : 2; /* stuffing, fill, a restart */
            continue;
        }
        if (m == 0xd9) return i + 2;
        if (i + 4 > n) return 0;
        size_t len = be16(p + i + 2);
        if (len < 2 || len > n - i - 2) return 0;
        i += 2 + len;
    }
    return 0;
}

static int jpeg_clean(const uint8_t *p, size_t n, sb_buf *out,
                      sb_image_info *info)
{
    size_t start = out->len;
    int rc = sb_buf_append(out, p, 2); /* SOI */
    size_t i = 2;
    bool sized = false;
    while (rc == 0) {
        while (i < n && p[i] == 0xff && i + 1 < n && p[i + 1] == 0xff)
            i++; /* fill bytes before a marker */
        if (i + 2 > n || p[i] != 0xff) goto bad;
        uint8_t m = p[i + 1];
        if (is_standalone(m)) {
            rc = sb_buf_append(out, p + i, 2);
            i += 2;
            continue;
        }
        if (m == 0xd8 || m == 0xd9) goto bad; /* no image before */
        if (i + 4 > n) goto bad;
        size_t len = be16(p + i + 2);
        if (len < 2 || len > n - i - 2) goto bad;
        const uint8_t *seg = p + i + 4;
        size_t sn = len - 2;
        size_t whole = len + 2; /* with the marker */
        if (is_sof(m)) {
            if (sn < 6) goto bad;
            info->height = be16(seg + 1);
            info->width = be16(seg + 3);
            sized = true;
        }
        if (m == 0xda) { /* SOS: the scans follow, to EOI */
            if (!sized) goto bad;
            size_t end = jpeg_scan_end(p, n, i + whole);
            if (end == 0) goto bad;
            rc = sb_buf_append(out, p + i, end - i);
            if (end < n) info->changed = true; /* what followed the EOI */
            break;
        }
        if (m == 0xe1 && starts(seg, sn, "Exif\0\0", 6)) {
            size_t at = out->len;
            rc = sb_buf_append(out, p + i, whole);
            if (rc == 0) {
                bool gps = info->gps_removed;
                uint16_t orientation = info->orientation;
                info->gps_removed = false;
                if (!exif_clean(out->data + at + 10, sn - 6, info)) {
                    /* An EXIF that does not parse goes, and says nothing
                     * (an earlier one kept may have said the orientation). */
                    out->len = at;
                    info->changed = true;
                    info->orientation = orientation;
                } else if (info->gps_removed) {
                    info->changed = true;
                }
                info->gps_removed |= gps;
            }
        } else if ((m == 0xe1 && (starts(seg, sn, XMP_ID, sizeof XMP_ID) ||
                                  starts(seg, sn, XMP_EXT, sizeof XMP_EXT))) ||
                   (m == 0xe2 && starts(seg, sn, MPF_ID, sizeof MPF_ID))) {
            info->changed = true; /* XMP and the Multi-Picture index go */
        } else {
            rc = sb_buf_append(out, p + i, whole);
        }
        i += whole;
    }
    if (rc) goto fail;
    if (!side_ok(info->width) || !side_ok(info->height)) goto bad;
    if (!info->changed) out->len = start;
    return 0;
bad:
    rc = SB_E_INVALID;
fail:
    out->len = start;
    return rc;
}

/* ---- PNG ------------------------------------------------------------------
 */

static bool png_is_xmp(const uint8_t *type, const uint8_t *data, size_t n)
{
    static const char key[] = "XML:com.adobe.xmp"; /* with its NUL */
    return (memcmp(type, "iTXt", 4) == 0 || memcmp(type, "tEXt", 4) == 0 ||
            memcmp(type, "zTXt", 4) == 0) &&
           starts(data, n, key, sizeof key);
}

static int png_clean(const uint8_t *p, size_t n, sb_buf *out,
                     sb_image_info *info)
{
    size_t start = out->len;
    int rc = sb_buf_append(out, p, 8);
    size_t i = 8;
    bool first = true;
    while (rc == 0) {
        if (n - i < 12) goto bad;
        uint32_t len = be32(p + i);
        if (len > n - i - 12) goto bad;
        const uint8_t *type = p + i + 4, *data = p + i + 8;
        size_t whole = (size_t)len + 12;
        if (first) {
            if (memcmp(type, "IHDR", 4) != 0 || len < 8) goto bad;
            info->width = be32(data);
            info->height = be32(data + 4);
            first = false;
        }
        if (memcmp(type, "eXIf", 4) == 0) {
            info->changed = info->gps_removed = true; /* EXIF, GPS or not */
        } else if (png_is_xmp(type, data, len)) {
            info->changed = true;
        } else {
            rc = sb_buf_append(out, p + i, whole);
        }
        i += whole;
        if (memcmp(type, "IEND", 4) == 0) {
            if (i < n) info->changed = true;
            break;
        }
    }
    if (rc) goto fail;
    if (!side_ok(info->width) || !side_ok(info->height)) goto bad;
    if (!info->changed) out->len = start;
    return 0;
bad:
    rc = SB_E_INVALID;
fail:
    out->len = start;
    return rc;
}

/* ---- GIF ------------------------------------------------------------------
 */

static int gif_read(const uint8_t *p, size_t n, sb_image_info *info)
{
    if (n < 13) return SB_E_INVALID;
    info->width = le16(p + 6);
    info->height = le16(p + 8);
    return side_ok(info->width) && side_ok(info->height) ? 0 : SB_E_INVALID;
}

/* ---- WebP -----------------------------------------------------------------
 */

#define VP8X_XMP 0x04
#define VP8X_EXIF 0x08

/* The size a VP8 or VP8L bitstream says (VP8X says the canvas's). */
static bool webp_frame_size(const uint8_t *type, const uint8_t *d, size_t n,
                            sb_image_info *info)
{
    if (memcmp(type, "VP8 ", 4) == 0) {
        if (n < 10 || d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a)
            return false;
        info->width = le16(d + 6) & 0x3fff;
        info->height = le16(d + 8) & 0x3fff;
        return true;
    }
    if (memcmp(type, "VP8L", 4) == 0) {
        if (n < 5 || d[0] != 0x2f) return false;
        uint32_t bits = le32(d + 1);
        info->width = (bits & 0x3fff) + 1;
        info->height = ((bits >> 14) & 0x3fff) + 1;
        return true;
    }
    return false;
}

static int webp_clean(const uint8_t *p, size_t n, sb_buf *out,
                      sb_image_info *info)
{
    uint32_t riff = le32(p + 4);
    if (riff < 4 || riff > n - 8) return SB_E_INVALID;
    size_t end = (size_t)riff + 8; /* what follows the RIFF goes */
    size_t start = out->len;
    int rc = sb_buf_append(out, p, 12);
    size_t i = 12, vp8x = 0;
    bool sized = false;
    if (end < n) info->changed = true;
    while (rc == 0 && i < end) {
        if (end - i < 8) goto bad;
        uint32_t len = le32(p + i + 4);
        size_t padded = (size_t)len + (len & 1);
        if (padded > end - i - 8) goto bad;
        const uint8_t *type = p + i, *data = p + i + 8;
        if (memcmp(type, "VP8X", 4) == 0) {
            if (len < 10 || sized) goto bad;
            info->width = le24(data + 4) + 1;
            info->height = le24(data + 7) + 1;
            sized = true;
            vp8x = out->len;
        } else if (!sized && webp_frame_size(type, data, len, info)) {
            sized = true;
        }
        if (memcmp(type, "EXIF", 4) == 0) {
            info->changed = info->gps_removed = true;
        } else if (memcmp(type, "XMP ", 4) == 0) {
            info->changed = true;
        } else {
            rc = sb_buf_append(out, p + i, padded + 8);
        }
        i += padded + 8;
    }
    if (rc) goto fail;
    if (!sized || !side_ok(info->width) || !side_ok(info->height)) goto bad;
    if (!info->changed) {
        out->len = start;
        return 0;
    }
    if (vp8x) out->data[vp8x + 8] &= (uint8_t) ~(VP8X_EXIF | VP8X_XMP);
    put_le32(out->data + start + 4, (uint32_t)(out->len - start - 8));
    return 0;
bad:
    rc = SB_E_INVALID;
fail:
    out->len = start;
    return rc;
}

/* ---- the entry point ------------------------------------------------------
 */

int sb_image_clean(const uint8_t *p, size_t n, sb_buf *out, sb_image_info *info)
{
    memset(info, 0, sizeof *info);
    info->orientation = 1;
    info->format = sb_image_sniff(p, n);
    int rc;
    switch (info->format) {
    case SB_IMAGE_JPEG:
        rc = jpeg_clean(p, n, out, info);
        break;
    case SB_IMAGE_PNG:
        rc = png_clean(p, n, out, info);
        break;
    case SB_IMAGE_GIF:
        rc = gif_read(p, n, info);
        break;
    case SB_IMAGE_WEBP:
        rc = webp_clean(p, n, out, info);
        break;
    default:
        rc = SB_E_INVALID;
    }
    if (rc) {
        sb_image_format f = info->format;
        memset(info, 0, sizeof *info);
        info->format = f;
        return rc;
    }
    if (info->orientation >= 5) { /* turned a quarter: displayed across */
        uint32_t w = info->width;
        info->width = info->height;
        info->height = w;
    }
    return 0;
}
