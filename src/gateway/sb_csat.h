/* Customer satisfaction (CSAT) above the delivery core: at the close of a
 * service conversation (of a desk that asks, sb_desk_def.csat) the
 * customer is asked for a rating, an event ("csat.request") that the
 * customer's pages show as a form; the customer's CSAT frame stores the
 * rating (1..5) and an optional comment, once per conversation: a second
 * is refused (ERR_ALREADY) and the first stays. The members hear of it by
 * an event ("csat.submitted"), and they and the agent who had the
 * conversation last by a CONV_UPDATE carrying the rating and the comment.
 * A stored rating is reported in one place, csat_stored. */
#ifndef SB_CSAT_H
#define SB_CSAT_H

#include "sb_gateway.h"

struct conv;

/* Registers the CSAT frame's row in gw's table. */
void sb__csat_register(sb_gw *gw);

/* c (a service conversation) was just closed: its customer is asked for a
 * rating, unless its desk does not ask or it is rated already. */
void sb__csat_ask(sb_gw *gw, struct conv *c);

#endif
