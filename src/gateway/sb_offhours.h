/* What the bot says about business hours (sb_hours.h), in the customer's
 * language (sb_i18n): that the team is away and when it is back, with the
 * offer to leave a message and an email address; and, when the customer
 * leaves one, that it was noted. Pure: no I/O. */
#ifndef SB_OFFHOURS_H
#define SB_OFFHOURS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_hours.h"
#include "switchboard.pb-c.h"

#define SB_OFFHOURS_EMAIL_BYTES_MAX 254

/* The bot's message (MSG_SYSTEM from "bot") to conv_id in lang: the team
 * of hours h is away until back_ms, told as the zone's local date, weekday
 * and time. NULL when out of memory. The caller frees it. */
Sbp__Message *sb_offhours_closed(uint64_t conv_id, const sb_hours *h,
                                 int64_t back_ms, const char *lang);

/* The first email address in text (local@domain.tld, at most
 * SB_OFFHOURS_EMAIL_BYTES_MAX bytes) into out (cap bytes with the NUL);
 * false when there is none that fits. */
bool sb_offhours_email(const char *text, char *out, size_t cap);

/* The bot's message that the customer's email address was noted. */
Sbp__Message *sb_offhours_noted(uint64_t conv_id, const char *email,
                                const char *lang);

#endif
