/* The run's trace (sim_trace.h). */
#include "sim_trace.h"

#include <stdarg.h>

void sim_trace_line(sim_trace *tr, int64_t now_ms, const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%7lld.%03lld ",
                     (long long)(now_ms / 1000), (long long)(now_ms % 1000));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    for (size_t i = 0; i < len; i++)
        tr->hash = (tr->hash ^ (uint8_t)line[i]) * 0x100000001b3ull;
    tr->lines++;
    (void)sb_buf_append(&tr->text, line, len);
}

void sim_trace_dump(const sim_trace *tr, FILE *f)
{
    if (tr->text.len) fwrite(tr->text.data, 1, tr->text.len, f);
}

void sim_trace_free(sim_trace *tr)
{
    sb_buf_free(&tr->text);
}
