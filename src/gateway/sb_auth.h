/* Authentication above the delivery core: a connection's HELLO, its token
 * checked (HS256, expiry, issuer and audience), the user's record stored,
 * then WELCOME and a ready session. */
#ifndef SB_AUTH_H
#define SB_AUTH_H

#include "sb_gateway.h"

/* Registers the module's row in gw's frame table. */
void sb__auth_register(sb_gw *gw);

#endif
