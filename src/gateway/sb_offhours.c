/* The bot's texts about business hours (sb_offhours.h). */
#include "sb_offhours.h"

#include <stdio.h>
#include <string.h>

#include "sb_i18n.h"
#include "sb_sysmsg.h"

#define TEXT_BYTES_MAX 1024

Sbp__Message *sb_offhours_closed(uint64_t conv_id, const sb_hours *h,
                                 int64_t back_ms, const char *lang)
{
    char date[11], hhmm[6], day[64], key[8], text[TEXT_BYTES_MAX];
    unsigned wd;
    sb_hours_local(h, back_ms, date, hhmm, &wd);
    snprintf(key, sizeof key, "day.%u", wd);
    sb_i18n_render(lang, key, NULL, 0, day, sizeof day);
    char *args[4] = {date, day, hhmm, (char *)sb_tz_name(sb_hours_tz(h))};
    sb_i18n_render(lang, "hours.closed", args, 4, text, sizeof text);
    return sb_sysmsg_new(conv_id, "bot", SBP__MSG_TYPE__MSG_SYSTEM, text, lang);
}

static bool local_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c && strchr("._%+-", c));
}

static bool domain_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-';
}

bool sb_offhours_email(const char *text, char *out, size_t cap)
{
    for (const char *at = strchr(text, '@'); at; at = strchr(at + 1, '@')) {
        const char *s = at, *e = at + 1;
        while (s > text && local_char(s[-1]))
            s--;
        while (*e && domain_char(*e))
            e++;
        /* Trailing dots end the sentence, not the address. */
        while (e > at + 1 && e[-1] == '.')
            e--;
        const char *dot = NULL;
        for (const char *p = at + 1; p < e; p++)
            if (*p == '.') dot = p;
        size_t n = (size_t)(e - s);
        if (s == at || !dot || dot == at + 1 || e - dot < 3 || at[1] == '.' ||
            at[1] == '-' || s[0] == '.' || n > SB_OFFHOURS_EMAIL_BYTES_MAX ||
            n >= cap)
            continue;
        memcpy(out, s, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

Sbp__Message *sb_offhours_noted(uint64_t conv_id, const char *email,
                                const char *lang)
{
    char text[TEXT_BYTES_MAX];
    char *args[1] = {(char *)email};
    sb_i18n_render(lang, "hours.noted", args, 1, text, sizeof text);
    return sb_sysmsg_new(conv_id, "bot", SBP__MSG_TYPE__MSG_SYSTEM, text, lang);
}
