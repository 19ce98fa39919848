/* What the server changes while it runs, behind one reload mechanism: the
 * sensitive-word lists of --filter (sb_filter) and the desk configuration
 * (sb_deskmgr, which also takes the admins' desk edits). A reload reads
 * and compiles a part on the thread pool, then puts it in force on the
 * loop thread between two events; a part that does not load is refused
 * (logged) and the one in force stays. SIGHUP reloads every part
 * (sb_reload_all); an admin op reloads one ("reload-filter") and is
 * answered once the part is in force or refused. A reload asked for while
 * one of the same part runs follows it. Part of the server's shell: loop
 * thread only. */
#ifndef SB_RELOAD_H
#define SB_RELOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "sb_desk.h"
#include "sb_filter.h"
#include "sb_gateway.h"
#include "sb_storeq.h"

#define SB_RELOAD_WAITERS_MAX 16 /* admins waiting for one part's reload */

typedef struct sb_reload sb_reload;

typedef struct sb_reload_config {
    uv_loop_t *loop;
    sb_storeq *storeq;      /* keeps the desk configuration; outlives the
                               reloader's requests (see sb_deskmgr) */
    const char *filter_dir; /* word lists, NAME.txt; NULL: none */
    const char *desk_file;  /* --desk FILE; NULL: the store's only */
    /* One log line (no newline); error: something failed, printed even
     * when informational lines are not. */
    void (*log)(void *ud, bool error, const char *line);
    void *log_ud;
} sb_reload_config;

/* Makes a reloader; no I/O yet. filter_dir and desk_file are the caller's
 * and outlive it. Returns 0 or -ENOMEM. */
int sb_reload_new(const sb_reload_config *c, sb_reload **out);

/* At start, before anything else uses the loop: loads the desk
 * configuration (sb_deskmgr_boot, which runs the loop until the store has
 * answered) and the word lists. *desk gets the desk configuration (NULL
 * when there is none), owned by the reloader. Returns 0, or a negative
 * code after logging why. */
int sb_reload_start(sb_reload *r, sb_desk **desk);

/* The word lists in force (NULL: none), for sb_gw_config.filter_get with
 * the reloader as ud. Valid until the current event ends: a reload swaps
 * them between two. */
const sb_filter *sb_reload_filter(void *ud);

/* The gateway that admins are answered through and desk changes put in
 * force in (NULL: none yet). */
void sb_reload_set_gw(sb_reload *r, sb_gw *gw);

/* SIGHUP: reloads every configured part (nothing while draining). */
void sb_reload_all(sb_reload *r);

/* An admin's op: "reload-filter" (answered with sb_gw_admin_done once the
 * lists are in force or refused; at once when there is no --filter), or
 * a desk op (sb_deskmgr_admin). Returns 0; SB_E_RATE_LIMITED when
 * SB_RELOAD_WAITERS_MAX admins wait already, SB_E_UNAVAILABLE while
 * draining, or what sb_deskmgr_admin returns; SB_E_INVALID, and answers
 * nothing, for any other op. */
int sb_reload_admin(sb_reload *r, uint64_t conn_id, uint32_t rid,
                    const char *op, const char *body);

/* The server drains: no reload starts from now on, and desk changes
 * waiting are refused (sb_deskmgr_drain); loads running complete. */
void sb_reload_drain(sb_reload *r);

/* Frees the reloader, the word lists and the desk configuration in force:
 * after the gateway is freed and the loop has no work of the reloader's
 * left. Accepts NULL. */
void sb_reload_free(sb_reload *r);

#endif
