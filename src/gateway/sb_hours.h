/* Business hours of a skill group: a time zone (IANA, from tzdata), the
 * shifts of each weekday (several a day: split shifts) and holidays
 * (whole local days closed), parsed from the desk document's "hours". It
 * says whether the group is open at an instant and when that changes next,
 * in the zone's local time, daylight-saving changes included. Pure but
 * for the time zone's file, read once at parse.
 *
 *   {"tz": "Europe/Berlin",
 *    "week": {"mon": ["09:00-12:30", "13:30-18:00"], ..., "sun": []},
 *    "holidays": ["2025-12-25", "2025-12-26"]}
 *
 * A day missing from "week" is closed. A shift is HH:MM-HH:MM with its
 * start before its end, both on the same local day ("24:00" ends it at
 * midnight): a night shift is two, 22:00-24:00 and the next day's
 * 00:00-06:00, which count as one opening. A shift whose local times the
 * clocks skip is shortened by the gap. */
#ifndef SB_HOURS_H
#define SB_HOURS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_tz.h"

#define SB_HOURS_SHIFTS_MAX 8      /* per weekday */
#define SB_HOURS_HOLIDAYS_MAX 1000 /* per group */

typedef struct sb_hours sb_hours;

/* Parses j (the object above); where names it in a refusal. Returns 0,
 * SB_E_INVALID with err saying what is wrong (an unknown time zone too),
 * or -ENOMEM. The caller frees *out. */
int sb_hours_parse(const json_t *j, const char *where, sb_hours **out,
                   char *err, size_t err_len);
/* Accepts NULL. */
void sb_hours_free(sb_hours *h);

const sb_tz *sb_hours_tz(const sb_hours *h);

/* Whether h is open at now_ms (ms since the epoch). *next_ms gets the
 * instant that changes: the end of this opening (shifts that follow on
 * without a break count as one) when open, the start of the next shift
 * when closed; INT64_MAX when none comes. */
bool sb_hours_open_at(const sb_hours *h, int64_t now_ms, int64_t *next_ms);

/* Local date "YYYY-MM-DD", time "HH:MM" and weekday (0 Sunday) of t_ms in
 * h's zone. */
void sb_hours_local(const sb_hours *h, int64_t t_ms, char date[11],
                    char hhmm[6], unsigned *weekday);

#endif
