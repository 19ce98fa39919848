/* The server's log lines, as text or JSON, built in a buffer of
 * SB_LOG_LINE_BYTES_MAX and written with one fwrite. */
#include "sb_log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sb_utf8.h"

static FILE *log_out;
static sb_log_format log_format = SB_LOG_TEXT;
static sb_log_level log_min = SB_LOG_INFO;

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

void sb_log_setup(FILE *out, sb_log_format format, sb_log_level min)
{
    log_out = out;
    log_format = format;
    log_min = min;
}

bool sb_log_enabled(sb_log_level level)
{
    return level >= log_min;
}

const char *sb_log_level_name(sb_log_level level)
{
    return level <= SB_LOG_ERROR ? LEVEL_NAMES[level] : "error";
}

int sb_log_level_parse(const char *s, sb_log_level *out)
{
    for (int i = SB_LOG_DEBUG; i <= SB_LOG_ERROR; i++)
        if (strcasecmp(s, LEVEL_NAMES[i]) == 0) {
            *out = (sb_log_level)i;
            return 0;
        }
    return -EINVAL;
}

int sb_log_format_parse(const char *s, sb_log_format *out)
{
    if (strcasecmp(s, "text") == 0)
        *out = SB_LOG_TEXT;
    else if (strcasecmp(s, "json") == 0)
        *out = SB_LOG_JSON;
    else
        return -EINVAL;
    return 0;
}

/* A line being built; what does not fit is cut. */
typedef struct line {
    char b[SB_LOG_LINE_BYTES_MAX];
    size_t n;
} line;

static void put(line *l, const char *p, size_t n)
{
    size_t room = sizeof l->b - 1 - l->n; /* one byte kept for '\n' */
    if (n > room) n = room;
    memcpy(l->b + l->n, p, n);
    l->n += n;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void putf(line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void putf(line *l, const char *fmt, ...)
{
    size_t room = sizeof l->b - 1 - l->n;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->b + l->n, room + 1, fmt, ap);
    va_end(ap);
    if (n > 0) l->n += (size_t)n < room ? (size_t)n : room;
}

/* The length of the UTF-8 sequence starting at p (at most left bytes), or
 * 0 when it is not a valid one. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    size_t n = *p < 0x80 ? 1 : *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
    if (n > left || !sb_utf8_valid((const char *)p, n)) return 0;
    return n;
}

/* s as the inside of a JSON string: quotes, backslashes and controls
 * escaped, bytes that are not UTF-8 as U+FFFD; cut where the line would
 * have no room left to close the string and the object. */
static void put_json_str(line *l, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    /* Room is kept for the longest escape and the line's closing "}. */
    while (i < len && l->n + 6 + 3 < sizeof l->b) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(l, e, 2);
            i++;
        } else if (c < 0x20) {
            putf(l, "\\u%04x", c);
            i++;
        } else {
            size_t n = utf8_seq(p + i, len - i);
            if (n == 0) {
                puts_(l, "\\ufffd");
                i++;
            } else {
                put(l, s + i, n);
                i += n;
            }
        }
    }
}

/* Text values: spaces and controls would split the line's fields. */
static void put_text_val(line *l, const char *s)
{
    for (; *s; s++) {
        char c = (unsigned char)*s <= ' ' ? '_' : *s;
        put(l, &c, 1);
    }
}

static void put_time(line *l)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char t[32];
    size_t n = strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    put(l, t, n);
    putf(l, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void put_ids_text(line *l, const sb_log_ids *ids)
{
    if (ids->session)
        putf(l, " session=%llu", (unsigned long long)ids->session);
    if (ids->user && ids->user[0]) {
        puts_(l, " user=");
        put_text_val(l, ids->user);
    }
    if (ids->device && ids->device[0]) {
        puts_(l, " device=");
        put_text_val(l, ids->device);
    }
    if (ids->conv) putf(l, " conv=%llu", (unsigned long long)ids->conv);
    if (ids->request) putf(l, " request=%u", ids->request);
}

static void put_json_field(line *l, const char *key, const char *val)
{
    putf(l, ",\"%s\":\"", key);
    put_json_str(l, val, strlen(val));
    puts_(l, "\"");
}

static void put_ids_json(line *l, const sb_log_ids *ids)
{
    if (ids->session)
        putf(l, ",\"session\":%llu", (unsigned long long)ids->session);
    if (ids->user && ids->user[0]) put_json_field(l, "user", ids->user);
    if (ids->device && ids->device[0]) put_json_field(l, "device", ids->device);
    if (ids->conv) putf(l, ",\"conv\":%llu", (unsigned long long)ids->conv);
    if (ids->request) putf(l, ",\"request\":%u", ids->request);
}

void sb_log(sb_log_level level, const char *event, const sb_log_ids *ids,
            const char *fmt, ...)
{
    if (!sb_log_enabled(level)) return;
    static const sb_log_ids none = {0};
    if (!ids) ids = &none;
    char msg[SB_LOG_LINE_BYTES_MAX];
    va_list ap;
    va_start(ap, fmt);
    int mn = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t msg_len = mn < 0                     ? 0
                     : (size_t)mn >= sizeof msg ? sizeof msg - 1
                                                : (size_t)mn;
    line l = {.n = 0};
    if (log_format == SB_LOG_JSON) {
        puts_(&l, "{\"time\":\"");
        put_time(&l);
        putf(&l, "\",\"level\":\"%s\"", sb_log_level_name(level));
        put_json_field(&l, "event", event);
        put_ids_json(&l, ids);
        puts_(&l, ",\"msg\":\"");
        put_json_str(&l, msg, msg_len);
        puts_(&l, "\"}");
    } else {
        put_time(&l);
        putf(&l, " %-5s %s", sb_log_level_name(level), event);
        put_ids_text(&l, ids);
        puts_(&l, ": ");
        put(&l, msg, msg_len);
    }
    l.b[l.n++] = '\n';
    FILE *out = log_out ? log_out : stderr;
    fwrite(l.b, 1, l.n, out);
    fflush(out);
}
