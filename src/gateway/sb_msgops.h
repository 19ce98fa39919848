/* Operations on messages and conversations above the delivery core:
 * recall, tags, typing, search, the conversation list and canned
 * replies. */
#ifndef SB_MSGOPS_H
#define SB_MSGOPS_H

#include "sb_gateway.h"

/* Registers the module's rows in gw's frame table. */
void sb__msgops_register(sb_gw *gw);

#endif
