/* sd_notify messages, and the watchdog's timer. */
#include "sb_notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

struct sb_notify {
    uv_timer_t watchdog;
    bool watching; /* the timer runs */
};

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

int sb_notify_start(uv_loop_t *loop, sb_notify **out)
{
    *out = NULL;
    if (!getenv("NOTIFY_SOCKET")) return 0;
    sb_notify *n = calloc(1, sizeof *n);
    if (!n) return -ENOMEM;
    uint64_t usec = 0;
    /* > 0 when systemd asks this process for pings (WATCHDOG_USEC, and
     * WATCHDOG_PID naming it when set). */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uint64_t every_ms = usec / 2000;
        if (every_ms == 0) every_ms = 1;
        uv_timer_init(loop, &n->watchdog);
        n->watchdog.data = n;
        uv_timer_start(&n->watchdog, on_watchdog, 0, every_ms);
        n->watching = true;
    }
    *out = n;
    return 0;
}

void sb_notify_ready(sb_notify *n, const char *status)
{
    if (!n) return;
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void sb_notify_stopping(sb_notify *n)
{
    if (n) sd_notify(0, "STOPPING=1\nSTATUS=draining");
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void sb_notify_close(sb_notify *n)
{
    if (!n) return;
    if (n->watching)
        uv_close((uv_handle_t *)&n->watchdog, on_closed);
    else
        free(n);
}
