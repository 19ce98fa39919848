/* Private notes above the delivery core. A service conversation's notes
 * are a conversation of their own (kind CONV_NOTES, notes_of naming it)
 * whose members are agents and admins, never the customer: SEND, PUSH,
 * ACK, SYNC, HISTORY and SEARCH carry notes as any message, to the notes'
 * members only, in a seq space apart from the customer's, so that every
 * device keeps the delivery guarantees in both and no read of the
 * customer's can meet a note. This module makes and joins the notes
 * (NOTES_OPEN) and tells the teammates a note mentions ("@id"), who
 * become members of the notes (NOTE_MENTION, on any node). */
#ifndef SB_NOTES_H
#define SB_NOTES_H

#include "sb_gateway.h"

struct conv;

/* Registers the NOTES_OPEN frame's row in gw's table. */
void sb__notes_register(sb_gw *gw);

/* A session's message m is stored in notes conversation c (not a
 * duplicate): the teammates it mentions become members and hear of it.
 * m is valid during the call. */
void sb__notes_stored(sb_gw *gw, struct conv *c, const Sbp__Message *m);

/* The user ids "@id" in text names (id: 1..SB_ID_BYTES_MAX bytes of
 * [A-Za-z0-9_.-], after the start or a character that is none of those),
 * each once, in order, at most max; returns how many. ids[i] has room for
 * an id. */
size_t sb__notes_mentions(const char *text, char (*ids)[SB_ID_BYTES_MAX + 1],
                          size_t max);

#endif
