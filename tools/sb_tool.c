/* Helpers the load generators share: see sb_tool.h. */
#include "sb_tool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int64_t sb_tool_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void sb_tool_die(const char *msg)
{
    fprintf(stderr, "%s: %s\n", program_invocation_short_name, msg);
    exit(1);
}
