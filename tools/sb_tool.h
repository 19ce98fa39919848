/* Helpers the load generators share (sbbench, sbconns, sbwirebench). */
#ifndef SB_TOOL_H
#define SB_TOOL_H

#include <stdint.h>

/* The monotonic clock in nanoseconds. */
int64_t sb_tool_now_ns(void);

/* Prints "<program>: msg" to stderr and exits with 1. */
_Noreturn void sb_tool_die(const char *msg);

#endif
