/* Business hours (sb_hours.h): shifts as minutes of the local day, turned
 * into instants one local day at a time through the zone (sb_tz), so that
 * a day of 23 or 25 hours is read as its clocks show it. */
#include "sb_hours.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"

#define DAY_S 86400
#define MINUTES_PER_DAY 1440

typedef struct shift {
    uint16_t start, end; /* minutes of the local day, start < end <= 1440 */
} shift;

struct sb_hours {
    sb_tz *tz;
    shift shifts[7][SB_HOURS_SHIFTS_MAX]; /* by weekday, 0 Sunday; sorted */
    uint8_t n_shifts[7];
    int64_t *holidays; /* local days since the epoch, sorted, distinct */
    size_t n_holidays;
};

static const char *const DAYS[7] = {"sun", "mon", "tue", "wed",
                                    "thu", "fri", "sat"};

static int fail(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && len) vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return SB_E_INVALID;
}

/* "HH:MM" (00:00..24:00) at p into minutes; false if it is not one. */
static bool hhmm(const char *p, uint16_t *out)
{
    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9' || p[2] != ':' ||
        p[3] < '0' || p[3] > '5' || p[4] < '0' || p[4] > '9')
        return false;
    unsigned h = (unsigned)(p[0] - '0') * 10 + (unsigned)(p[1] - '0');
    unsigned m = (unsigned)(p[3] - '0') * 10 + (unsigned)(p[4] - '0');
    if (h > 24 || (h == 24 && m)) return false;
    *out = (uint16_t)(h * 60 + m);
    return true;
}

static int shift_cmp(const void *a, const void *b)
{
    return (int)((const shift *)a)->start - (int)((const shift *)b)->start;
}

static int day_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int parse_day(sb_hours *h, unsigned wd, const json_t *list,
                     const char *where, char *err, size_t elen)
{
    if (!json_is_array(list) || json_array_size(list) > SB_HOURS_SHIFTS_MAX)
        return fail(err, elen, "%s.week.%s: want at most %d shifts", where,
                    DAYS[wd], SB_HOURS_SHIFTS_MAX);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        shift sh;
        if (!s || strlen(s) != 11 || s[5] != '-' || !hhmm(s, &sh.start) ||
            !hhmm(s + 6, &sh.end) || sh.start >= sh.end)
            return fail(err, elen,
                        "%s.week.%s[%zu]: want \"HH:MM-HH:MM\", the start "
                        "before the end",
                        where, DAYS[wd], i);
        h->shifts[wd][h->n_shifts[wd]++] = sh;
    }
    qsort(h->shifts[wd], h->n_shifts[wd], sizeof(shift), shift_cmp);
    for (size_t k = 1; k < h->n_shifts[wd]; k++)
        if (h->shifts[wd][k].start < h->shifts[wd][k - 1].end)
            return fail(err, elen, "%s.week.%s: shifts overlap", where,
                        DAYS[wd]);
    return 0;
}

static int parse_holidays(sb_hours *h, const json_t *list, const char *where,
                          char *err, size_t elen)
{
    if (!list) return 0;
    if (!json_is_array(list) || json_array_size(list) > SB_HOURS_HOLIDAYS_MAX)
        return fail(err, elen, "%s.holidays: want at most %d dates", where,
                    SB_HOURS_HOLIDAYS_MAX);
    size_t n = json_array_size(list);
    h->holidays = malloc((n ? n : 1) * sizeof *h->holidays);
    if (!h->holidays) return -ENOMEM;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (sb_tz_date_parse(json_string_value(v), &h->holidays[i]) != 0)
            return fail(err, elen, "%s.holidays[%zu]: want YYYY-MM-DD", where,
                        i);
    }
    qsort(h->holidays, n, sizeof *h->holidays, day_cmp);
    size_t w = 0;
    for (i = 0; i < n; i++)
        if (w == 0 || h->holidays[w - 1] != h->holidays[i])
            h->holidays[w++] = h->holidays[i];
    h->n_holidays = w;
    return 0;
}

int sb_hours_parse(const json_t *j, const char *where, sb_hours **out,
                   char *err, size_t elen)
{
    *out = NULL;
    if (!json_is_object(j))
        return fail(err, elen, "%s: want an object with tz and week", where);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        if (strcmp(key, "tz") && strcmp(key, "week") && strcmp(key, "holidays"))
            return fail(err, elen, "%s: unknown member \"%s\"", where, key);
    }
    sb_hours *h = calloc(1, sizeof *h);
    if (!h) return -ENOMEM;
    const char *tz = json_string_value(json_object_get(j, "tz"));
    int rc = sb_tz_load(tz ? tz : "", &h->tz);
    if (rc == -ENOMEM) goto out;
    if (rc) {
        rc = fail(err, elen, "%s.tz: %s is not a time zone of tzdata", where,
                  tz ? tz : "(missing)");
        goto out;
    }
    const json_t *week = json_object_get(j, "week");
    if (!json_is_object(week)) {
        rc = fail(err, elen, "%s.week: want an object of weekdays", where);
        goto out;
    }
    json_object_foreach((json_t *)week, key, v)
    {
        unsigned wd = 0;
        while (wd < 7 && strcmp(key, DAYS[wd]) != 0)
            wd++;
        if (wd == 7) {
            rc = fail(err, elen,
                      "%s.week: \"%s\" is not mon, tue, wed, thu, fri, sat "
                      "or sun",
                      where, key);
            goto out;
        }
        if ((rc = parse_day(h, wd, v, where, err, elen))) goto out;
    }
    unsigned total = 0;
    for (unsigned wd = 0; wd < 7; wd++)
        total += h->n_shifts[wd];
    if (total == 0) {
        rc = fail(err, elen, "%s.week: no shift at all", where);
        goto out;
    }
    rc = parse_holidays(h, json_object_get(j, "holidays"), where, err, elen);
out:
    if (rc) {
        sb_hours_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void sb_hours_free(sb_hours *h)
{
    if (!h) return;
    sb_tz_free(h->tz);
    free(h->holidays);
    free(h);
}

const sb_tz *sb_hours_tz(const sb_hours *h)
{
    return h->tz;
}

static bool holiday(const sb_hours *h, int64_t day)
{
    return h->n_holidays &&
           bsearch(&day, h->holidays, h->n_holidays, sizeof day, day_cmp);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

bool sb_hours_open_at(const sb_hours *h, int64_t now_ms, int64_t *next_ms)
{
    int64_t now_s = floor_div(now_ms, 1000);
    int64_t today = sb_tz_day_of(now_s + sb_tz_offset(h->tz, now_s));
    bool open = false;
    int64_t cover_end = 0; /* while open: where the opening reaches */
    /* From yesterday (a shift until midnight) on, past every holiday:
     * some day ahead has a shift, since the week has one. */
    int64_t last = today + (int64_t)h->n_holidays + 15;
    for (int64_t d = today - 1; d <= last; d++) {
        if (holiday(h, d)) continue;
        unsigned wd = sb_tz_weekday(d);
        for (unsigned i = 0; i < h->n_shifts[wd]; i++) {
            const shift *sh = &h->shifts[wd][i];
            int64_t s = sb_tz_from_local(h->tz, d * DAY_S + sh->start * 60);
            int64_t e = sb_tz_from_local(h->tz, d * DAY_S + sh->end * 60);
            if (e <= s) continue; /* inside a gap of the clocks */
            s *= 1000;
            e *= 1000;
            if (open) {
                if (s > cover_end) {
                    *next_ms = cover_end;
                    return true;
                }
                if (e > cover_end) cover_end = e;
            } else if (e > now_ms) {
                if (s > now_ms) {
                    *next_ms = s;
                    return false;
                }
                open = true;
                cover_end = e;
            }
        }
    }
    *next_ms = open ? cover_end : INT64_MAX;
    return open;
}

void sb_hours_local(const sb_hours *h, int64_t t_ms, char date[11],
                    char hhmm_out[6], unsigned *weekday)
{
    int64_t t = floor_div(t_ms, 1000);
    int64_t local = t + sb_tz_offset(h->tz, t);
    int64_t day = sb_tz_day_of(local);
    int64_t min = (local - day * DAY_S) / 60;
    sb_tz_date_format(day, date);
    snprintf(hhmm_out, 6, "%02u:%02u", (unsigned)(min / 60) % 100u,
             (unsigned)(min % 60) % 100u);
    *weekday = sb_tz_weekday(day);
}
