/* Which node of a cluster owns the desks: the one that holds an advisory
 * lock in the PostgreSQL store, on a connection of its own that a thread
 * keeps. PostgreSQL releases the lock when that connection ends (the node
 * died, or its link to the database broke), and another node takes it
 * within a second or two; a holder that cannot reach the database gives
 * ownership up before the lock can pass on. Changes reach the loop thread
 * through a uv_async. */
#ifndef SB_DESKOWN_H
#define SB_DESKOWN_H

#include <stdbool.h>
#include <uv.h>

typedef struct sb_deskown sb_deskown;

/* Starts trying to take the lock on the database of url. on_change runs
 * on the loop when this node takes it (own true) or loses it. Returns 0
 * or -ENOMEM. */
int sb_deskown_start(uv_loop_t *loop, const char *url,
                     void (*on_change)(void *ud, bool own), void *ud,
                     sb_deskown **out);
/* Gives the lock up now and stops trying (a node that drains): on_change
 * says so if it was held. */
void sb_deskown_release(sb_deskown *d);
/* Stops the thread and frees d (its handle closes with the loop). */
void sb_deskown_stop(sb_deskown *d);

#endif
