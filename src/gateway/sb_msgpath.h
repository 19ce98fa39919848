/* The delivery core's frame kinds on the message path: SEND (validated,
 * filtered, stored, acknowledged, delivered), ACK and READ (delivery and
 * read receipts), SYNC and HISTORY (pages of stored messages) and OPEN of
 * a direct conversation. */
#ifndef SB_MSGPATH_H
#define SB_MSGPATH_H

#include "sb_gateway.h"

/* Registers the module's rows in gw's frame table. */
void sb__msgpath_register(sb_gw *gw);

#endif
