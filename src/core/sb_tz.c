/* Time zones from TZif files (RFC 8536): the transitions of the 64-bit
 * block (the 32-bit one for a version 1 file) and the footer's POSIX TZ
 * rule for the instants past the last transition. The civil calendar
 * after Howard Hinnant's days_from_civil and civil_from_days. */
#include "sb_tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_error.h"

#define TZ_DIR_DEFAULT "/usr/share/zoneinfo"
#define TRANSITIONS_MAX 5000
#define TYPES_MAX 256
#define FOOTER_BYTES_MAX 128
#define DAY_S 86400

/* One end of a POSIX daylight-saving rule: the day it falls on in a year
 * and the local time of day of the change. */
typedef struct rule_date {
    char kind; /* 'J' (1..365, no Feb 29), 'D' (0..365), 'M' (month.week.day) */
    int n, m, w, d;
    int32_t time; /* seconds after local midnight; may be negative or > 1 day */
} rule_date;

typedef struct posix_rule {
    bool set;     /* the file has a footer rule */
    bool has_dst; /* ... with daylight-saving time */
    int32_t std;  /* seconds east of UTC */
    int32_t dst;
    rule_date start, end;
} posix_rule;

struct sb_tz {
    char name[SB_TZ_NAME_BYTES_MAX + 1];
    size_t n_trans;
    int64_t *trans; /* ascending */
    uint8_t *idx;   /* the type after each transition */
    size_t n_types;
    int32_t utoff[TYPES_MAX];
    posix_rule rule;
};

/* ---- the calendar ------------------------------------------------------- */

int64_t sb_tz_days(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void sb_tz_civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

unsigned sb_tz_weekday(int64_t days)
{
    /* 1970-01-01 was a Thursday. */
    int64_t w = (days + 4) % 7;
    return (unsigned)(w < 0 ? w + 7 : w);
}

int64_t sb_tz_day_of(int64_t t)
{
    return t >= 0 ? t / DAY_S : -((-t + DAY_S - 1) / DAY_S);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned D[12] = {31, 28, 31, 30, 31, 30,
                                   31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : D[m - 1];
}

int sb_tz_date_parse(const char *s, int64_t *days)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return SB_E_INVALID;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return SB_E_INVALID;
    int64_t y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
                (s[3] - '0');
    unsigned m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
    unsigned d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > month_days(y, m))
        return SB_E_INVALID;
    *days = sb_tz_days(y, m, d);
    return 0;
}

void sb_tz_date_format(int64_t days, char out[11])
{
    int64_t y;
    unsigned m, d;
    sb_tz_civil(days, &y, &m, &d);
    if (y < 0 || y > 9999) y = 0;
    snprintf(out, 11, "%04d-%02u-%02u", (int)y, m % 100, d % 100);
}

/* ---- the POSIX rule ----------------------------------------------------- */

/* A zone abbreviation: letters, or anything but '>' within <...>. */
static bool rule_name(const char **pp)
{
    const char *p = *pp;
    if (*p == '<') {
        const char *q = strchr(p, '>');
        if (!q || q == p + 1) return false;
        *pp = q + 1;
        return true;
    }
    const char *s = p;
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
        p++;
    if (p - s < 1) return false;
    *pp = p;
    return true;
}

/* [+-]hh[:mm[:ss]] into seconds, hours at most max_h. */
static bool rule_hms(const char **pp, int max_h, int32_t *out)
{
    const char *p = *pp;
    int sign = 1;
    if (*p == '+' || *p == '-') sign = *p++ == '-' ? -1 : 1;
    if (*p < '0' || *p > '9') return false;
    int32_t v[3] = {0, 0, 0};
    for (int part = 0; part < 3; part++) {
        if (part > 0) {
            if (*p != ':') break;
            p++;
        }
        int digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 3) {
            v[part] = v[part] * 10 + (*p++ - '0');
            digits++;
        }
        if (digits == 0) return false;
    }
    if (v[0] > max_h || v[1] > 59 || v[2] > 59) return false;
    *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
    *pp = p;
    return true;
}

static bool rule_int(const char **pp, int lo, int hi, int *out)
{
    const char *p = *pp;
    int v = 0, digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 4) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (!digits || v < lo || v > hi) return false;
    *out = v;
    *pp = p;
    return true;
}

static bool rule_date_parse(const char **pp, rule_date *r)
{
    const char *p = *pp;
    if (*p == 'J') {
        p++;
        r->kind = 'J';
        if (!rule_int(&p, 1, 365, &r->n)) return false;
    } else if (*p == 'M') {
        p++;
        r->kind = 'M';
        if (!rule_int(&p, 1, 12, &r->m) || *p++ != '.' ||
            !rule_int(&p, 1, 5, &r->w) || *p++ != '.' ||
            !rule_int(&p, 0, 6, &r->d))
            return false;
    } else {
        r->kind = 'D';
        if (!rule_int(&p, 0, 365, &r->n)) return false;
    }
    r->time = 7200;
    if (*p == '/') {
        p++;
        if (!rule_hms(&p, 167, &r->time)) return false;
    }
    *pp = p;
    return true;
}

/* "CET-1CEST,M3.5.0,M10.5.0/3" and the like (POSIX offsets count west). */
static bool rule_parse(const char *s, posix_rule *r)
{
    memset(r, 0, sizeof *r);
    const char *p = s;
    int32_t off;
    if (!rule_name(&p) || !rule_hms(&p, 24, &off)) return false;
    r->std = -off;
    r->set = true;
    if (*p == '\0') return true;
    if (!rule_name(&p)) return false;
    r->has_dst = true;
    r->dst = r->std + 3600;
    if (*p && *p != ',') {
        if (!rule_hms(&p, 24, &off)) return false;
        r->dst = -off;
    }
    if (*p == '\0') {
        /* No dates: the United States' rules, as glibc assumes. */
        r->start = (rule_date){.kind = 'M', .m = 3, .w = 2, .time = 7200};
        r->end = (rule_date){.kind = 'M', .m = 11, .w = 1, .time = 7200};
        return true;
    }
    if (*p++ != ',' || !rule_date_parse(&p, &r->start) || *p++ != ',' ||
        !rule_date_parse(&p, &r->end))
        return false;
    return *p == '\0';
}

/* The day (since the epoch) rule date r falls on in year y. */
static int64_t rule_day(const rule_date *r, int64_t y)
{
    int64_t jan1 = sb_tz_days(y, 1, 1);
    if (r->kind == 'J') return jan1 + r->n - 1 + (leap(y) && r->n >= 60);
    if (r->kind == 'D') return jan1 + r->n;
    int64_t first = sb_tz_days(y, (unsigned)r->m, 1);
    int64_t day = first + (r->d - (int)sb_tz_weekday(first) + 7) % 7;
    day += (int64_t)(r->w - 1) * 7;
    while (day >= first + month_days(y, (unsigned)r->m))
        day -= 7;
    return day;
}

static int32_t rule_offset(const posix_rule *r, int64_t t)
{
    if (!r->has_dst) return r->std;
    int64_t y;
    unsigned m, d;
    sb_tz_civil(sb_tz_day_of(t + r->std), &y, &m, &d);
    /* Both changes as instants: the start is read on standard time, the
     * end on daylight-saving time. */
    int64_t start = rule_day(&r->start, y) * DAY_S + r->start.time - r->std;
    int64_t end = rule_day(&r->end, y) * DAY_S + r->end.time - r->dst;
    bool dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    return dst ? r->dst : r->std;
}

/* ---- TZif --------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_head {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_head;

static bool head_read(const uint8_t *p, size_t n, tzif_head *h, char *version)
{
    if (n < 44 || memcmp(p, "TZif", 4) != 0) return false;
    *version = (char)p[4];
    h->isut = be32(p + 20);
    h->isstd = be32(p + 24);
    h->leap = be32(p + 28);
    h->time = be32(p + 32);
    h->type = be32(p + 36);
    h->chars = be32(p + 40);
    return h->time <= TRANSITIONS_MAX && h->type >= 1 && h->type <= TYPES_MAX &&
           h->chars <= 1024 && h->leap <= 1024 &&
           (h->isut == 0 || h->isut == h->type) &&
           (h->isstd == 0 || h->isstd == h->type);
}

/* The bytes of a data block after its header, with times of tb bytes. */
static size_t block_len(const tzif_head *h, size_t tb)
{
    return h->time * tb + h->time + h->type * 6 + h->chars +
           h->leap * (tb + 4) + h->isstd + h->isut;
}

int sb_tz_parse(const uint8_t *p, size_t n, const char *name, sb_tz **out)
{
    *out = NULL;
    tzif_head h;
    char version;
    if (!head_read(p, n, &h, &version)) return SB_E_NOT_FOUND;
    size_t off = 44, tb = 4;
    if (version >= '2') {
        /* Skip the 32-bit block for the 64-bit one after it. */
        off += block_len(&h, 4);
        if (off > n || !head_read(p + off, n - off, &h, &version))
            return SB_E_NOT_FOUND;
        off += 44;
        tb = 8;
    }
    if (block_len(&h, tb) > n - off) return SB_E_NOT_FOUND;
    sb_tz *z = calloc(1, sizeof *z);
    if (!z) return -ENOMEM;
    snprintf(z->name, sizeof z->name, "%s", name);
    z->n_trans = h.time;
    z->n_types = h.type;
    z->trans = malloc((h.time ? h.time : 1) * sizeof *z->trans);
    z->idx = malloc(h.time ? h.time : 1);
    if (!z->trans || !z->idx) {
        sb_tz_free(z);
        return -ENOMEM;
    }
    const uint8_t *q = p + off;
    for (size_t i = 0; i < h.time; i++, q += tb)
        z->trans[i] = tb == 8 ? be64(q) : (int32_t)be32(q);
    for (size_t i = 0; i < h.time; i++)
        z->idx[i] = *q++;
    for (size_t i = 0; i < h.type; i++, q += 6)
        z->utoff[i] = (int32_t)be32(q);
    q += h.chars + h.leap * (tb + 4) + h.isstd + h.isut;
    bool ok = true;
    for (size_t i = 0; i < h.time; i++)
        if (z->idx[i] >= h.type || (i && z->trans[i] <= z->trans[i - 1]))
            ok = false;
    for (size_t i = 0; i < h.type; i++)
        if (z->utoff[i] <= -26 * 3600 || z->utoff[i] >= 26 * 3600) ok = false;
    /* The footer: "\n" rule "\n", empty when the file has none. */
    if (ok && tb == 8 && q < p + n && *q == '\n') {
        const uint8_t *e = memchr(q + 1, '\n', (size_t)(p + n - q - 1));
        size_t len = e ? (size_t)(e - q - 1) : 0;
        if (e && len > 0 && len < FOOTER_BYTES_MAX) {
            char rule[FOOTER_BYTES_MAX];
            memcpy(rule, q + 1, len);
            rule[len] = '\0';
            ok = rule_parse(rule, &z->rule);
        }
    }
    if (!ok) {
        sb_tz_free(z);
        return SB_E_NOT_FOUND;
    }
    *out = z;
    return 0;
}

static bool name_ok(const char *name)
{
    size_t n = name ? strnlen(name, SB_TZ_NAME_BYTES_MAX + 1) : 0;
    if (n == 0 || n > SB_TZ_NAME_BYTES_MAX || name[0] == '/' ||
        name[n - 1] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == '/' || c == '_' || c == '-' ||
                  c == '+';
        if (!ok || (c == '/' && name[i + 1] == '/')) return false;
    }
    return true;
}

int sb_tz_load(const char *name, sb_tz **out)
{
    *out = NULL;
    if (!name_ok(name)) return SB_E_INVALID;
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && dir[0] ? dir : TZ_DIR_DEFAULT,
             name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > (off_t)SB_TZ_FILE_BYTES_MAX) {
        if (fd >= 0) close(fd);
        if (strcmp(name, "UTC") != 0) return SB_E_NOT_FOUND;
        /* UTC needs no file: a zone of one type, offset 0. */
        sb_tz *z = calloc(1, sizeof *z);
        if (!z) return -ENOMEM;
        snprintf(z->name, sizeof z->name, "UTC");
        z->n_types = 1;
        *out = z;
        return 0;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    int rc = got == n ? sb_tz_parse(buf, n, name, out) : SB_E_NOT_FOUND;
    free(buf);
    return rc;
}

void sb_tz_free(sb_tz *z)
{
    if (!z) return;
    free(z->trans);
    free(z->idx);
    free(z);
}

const char *sb_tz_name(const sb_tz *z)
{
    return z->name;
}

int32_t sb_tz_offset(const sb_tz *z, int64_t t)
{
    if (z->n_trans == 0)
        return z->rule.set ? rule_offset(&z->rule, t) : z->utoff[0];
    if (t < z->trans[0]) return z->utoff[0];
    if (t >= z->trans[z->n_trans - 1] && z->rule.set)
        return rule_offset(&z->rule, t);
    size_t lo = 0, hi = z->n_trans; /* the last transition <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->utoff[z->idx[lo]];
}

int64_t sb_tz_from_local(const sb_tz *z, int64_t local)
{
    /* The offsets in force a day either side (zones change theirs at most
     * once in two days), and which of the two readings holds. */
    int32_t before = sb_tz_offset(z, local - DAY_S);
    int32_t after = sb_tz_offset(z, local + DAY_S);
    int64_t a = local - before, b = local - after;
    bool a_ok = sb_tz_offset(z, a) == before;
    bool b_ok = sb_tz_offset(z, b) == after;
    if (a_ok && b_ok) return a < b ? a : b;
    if (a_ok) return a;
    if (b_ok) return b;
    return a; /* in a gap: read on the clocks before it */
}
