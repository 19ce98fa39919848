/* The service manager's protocol (systemd's sd_notify, from libsystemd):
 * READY=1 once the server serves, STOPPING=1 when it drains, STATUS=
 * lines, and WATCHDOG=1 at
 * half the interval systemd asks for (WatchdogSec=), sent from a timer of
 * the event loop so that a loop that stops turning stops the pings and
 * systemd restarts the server. Without NOTIFY_SOCKET (not started by
 * systemd) every call does nothing. Loop thread only. */
#ifndef SB_NOTIFY_H
#define SB_NOTIFY_H

#include <stdint.h>
#include <uv.h>

typedef struct sb_notify sb_notify;

/* Reads the environment systemd set and, when it asks for a watchdog,
 * starts its timer on loop. *out is NULL when there is nothing to tell
 * (no NOTIFY_SOCKET): every other function accepts NULL. Returns 0 or
 * -ENOMEM. */
int sb_notify_start(uv_loop_t *loop, sb_notify **out);

/* READY=1 with a STATUS line saying what serves. */
void sb_notify_ready(sb_notify *n, const char *status);
/* STOPPING=1: the server drains. The watchdog keeps being fed until
 * sb_notify_close. */
void sb_notify_stopping(sb_notify *n);

/* Stops the watchdog's timer and frees n once the timer's handle has
 * closed (on the loop's next turn). */
void sb_notify_close(sb_notify *n);

#endif
