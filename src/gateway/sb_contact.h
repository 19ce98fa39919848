/* Contacts above the delivery core: what the service side knows of a
 * customer (a name, an email, attributes), read (CONTACT_GET) and changed
 * (CONTACT_SET) by agents and admins, answered by CONTACT_RESP with the
 * customer's past conversations (their ids, states, desks, agents and
 * times; no message, no member list, no rating comment). An agent reaches
 * only the customer of a service conversation it is a member of; an admin
 * any, by conversation or by user id. A customer or a bot reaches none.
 * The site sets a customer's contact through its signed identity
 * (sb_identity, the server's), not through these frames. */
#ifndef SB_CONTACT_H
#define SB_CONTACT_H

#include "sb_gateway.h"

/* Registers the CONTACT_GET and CONTACT_SET rows in gw's table. */
void sb__contact_register(sb_gw *gw);

/* What a CONTACT_RESP lists of one of the customer's conversations: pc
 * (heap-allocated, as the store returns it) loses its members, rating
 * comment, last message and title, in place. */
void sb__contact_conv_strip(Sbp__Conversation *pc);

#endif
