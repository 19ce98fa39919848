/* The server's log: one line per event on stderr, as text for people or
 * as one JSON object per line for log shippers (--log-format), with a
 * minimum level (--log-level). Every line has the time (UTC, ms), the
 * level, an event name (a fixed snake_case word to filter on) and, when
 * they apply, the ids of the session, user, device, conversation and
 * request; then a free text. Callers never pass secrets: no token, no
 * message body, no password of a store URI (sb_store_describe).
 *
 * Process-wide: set up once in main, before any thread starts; every
 * line is written with one call, so lines from threads never interleave. */
#ifndef SB_LOG_H
#define SB_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define SB_LOG_LINE_BYTES_MAX 4096 /* longer texts are cut */

typedef enum sb_log_level {
    SB_LOG_DEBUG,
    SB_LOG_INFO,
    SB_LOG_WARN,
    SB_LOG_ERROR,
} sb_log_level;

typedef enum sb_log_format {
    SB_LOG_TEXT, /* 2025-01-02T03:04:05.678Z info listening session=7 ... */
    SB_LOG_JSON, /* {"time":"...","level":"info","event":"listening",...} */
} sb_log_format;

/* The ids a line carries; 0 and NULL (or "") are left out. */
typedef struct sb_log_ids {
    uint64_t session; /* the connection's id */
    const char *user;
    const char *device;
    uint64_t conv;
    uint32_t request; /* the frame's rid */
} sb_log_ids;

/* Where lines go (NULL: stderr), their format and the least level
 * written. Before any line; not thread-safe. */
void sb_log_setup(FILE *out, sb_log_format format, sb_log_level min);

/* Whether a line of level would be written: callers that build costly
 * texts ask first. */
bool sb_log_enabled(sb_log_level level);

/* Writes one line: event (a word of [a-z0-9_]), ids (NULL: none) and the
 * text fmt makes. Any thread. */
void sb_log(sb_log_level level, const char *event, const sb_log_ids *ids,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "debug", "info", "warn" or "error" into *out; -EINVAL otherwise. */
int sb_log_level_parse(const char *s, sb_log_level *out);
/* "text" or "json" into *out; -EINVAL otherwise. */
int sb_log_format_parse(const char *s, sb_log_format *out);
const char *sb_log_level_name(sb_log_level level);

#endif
