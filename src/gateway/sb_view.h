/* What one reader is shown of stored messages and conversations: events
 * rendered in the reader's locale, the service side's own events (tag
 * changes) and tags withheld from customers, a transfer's note for the
 * agent it went to only, and members' receipts as the gateway knows them
 * (ahead of the store). Every answer that carries messages or
 * conversations (SYNC_RESP, HISTORY_RESP, SEARCH_RESP, CONV_LIST_RESP,
 * OPEN_RESP, CONV_UPDATE) goes through here. No I/O, like the core. */
#ifndef SB_VIEW_H
#define SB_VIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_gwcore.h"

/* Whether s may read c's messages (HISTORY): a member, an admin, or,
 * while c waits in the queue of a skill group, an agent of that group
 * (read-only: it is not a member until it takes the conversation). */
bool sb__view_may_read(sb_gw *gw, const sess *s, const conv *c);

/* Whether a reader (role, user_id) is shown the transfer note of a
 * conversation in state with agent and group: admins; the conversation's
 * agent; while it is queued, the agents of its group. Never a customer. */
bool sb__view_note_for(sb_gw *gw, Sbp__Role role, const char *user_id,
                       Sbp__ConvState state, const char *agent,
                       const char *group);

/* Prepares msgs (heap-allocated, as the store returns them) for s, in
 * place: events rendered in s's locale; for a customer, a staff-only event
 * keeps its key and loses its arguments and body, and tags are dropped. */
void sb__view_msgs(const sess *s, Sbp__Message *const *msgs, size_t n);
/* For a customer, takes the staff-only events out of msgs (freed) and
 * returns how many messages are left; for others, n. A search answers
 * with what its reader may look for. */
size_t sb__view_drop_hidden(const sess *s, Sbp__Message **msgs, size_t n);
/* Prepares pc (heap-allocated) for s, in place: the members' receipts
 * raised to what the gateway has in memory, the queue position, the
 * transfer note kept only for its reader (sb__view_note_for), tags
 * dropped for a customer, and its last message as sb__view_msgs. */
void sb__view_conv(sb_gw *gw, const sess *s, Sbp__Conversation *pc);

#endif
