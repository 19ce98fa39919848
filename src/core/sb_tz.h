/* Time zones by IANA name, from the system's tzdata (the TZif files under
 * /usr/share/zoneinfo, or $TZDIR): a zone's offset from UTC at an instant
 * and the instant of a local wall time, computed from the file's
 * transitions and, past the last one, from its POSIX TZ rule. The process's
 * TZ and localtime() are never touched, so any thread may use any zone.
 * Also the civil calendar (days since 1970-01-01 <-> year, month, day).
 *
 * A loaded zone is immutable: share it between threads freely. */
#ifndef SB_TZ_H
#define SB_TZ_H

#include <stddef.h>
#include <stdint.h>

#define SB_TZ_NAME_BYTES_MAX 64
#define SB_TZ_FILE_BYTES_MAX (256u << 10)

typedef struct sb_tz sb_tz;

/* Loads zone name ("Europe/Berlin", "UTC"): 1..SB_TZ_NAME_BYTES_MAX bytes
 * of letters, digits, '/', '_', '-' and '+', no "." component. Returns 0,
 * SB_E_INVALID for a malformed name, SB_E_NOT_FOUND when tzdata has no
 * such zone or its file is not TZif, or -ENOMEM. The caller frees *out. */
int sb_tz_load(const char *name, sb_tz **out);
/* The same from the n bytes of a TZif file (for tests); name is copied. */
int sb_tz_parse(const uint8_t *p, size_t n, const char *name, sb_tz **out);
/* Accepts NULL. */
void sb_tz_free(sb_tz *z);

/* The name it was loaded by; valid as long as z. */
const char *sb_tz_name(const sb_tz *z);

/* Seconds east of UTC in force at instant t (seconds since the epoch). */
int32_t sb_tz_offset(const sb_tz *z, int64_t t);

/* The instant of local wall time local (seconds since 1970-01-01 00:00 as
 * read on the zone's clocks). A time that the clocks skip (a gap when they
 * go forward) is taken as if read before the change, which lands after
 * the gap (02:30 on the day Berlin skips 02:00-03:00 is 03:30); a time
 * that happens twice (the clocks go back) is its first occurrence. */
int64_t sb_tz_from_local(const sb_tz *z, int64_t local);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t sb_tz_days(int64_t y, unsigned m, unsigned d);
void sb_tz_civil(int64_t days, int64_t *y, unsigned *m, unsigned *d);
/* 0 Sunday .. 6 Saturday. */
unsigned sb_tz_weekday(int64_t days);
/* Floor division of t by 86400: the day an instant or local time is in. */
int64_t sb_tz_day_of(int64_t t);

/* Parses "YYYY-MM-DD" (a real date, years 1970..9999) into days since the
 * epoch. Returns 0 or SB_E_INVALID. */
int sb_tz_date_parse(const char *s, int64_t *days);
/* Writes days as "YYYY-MM-DD" into out (11 bytes with the NUL). */
void sb_tz_date_format(int64_t days, char out[11]);

#endif
