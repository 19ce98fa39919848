/* The customer-service lifecycle above the delivery core: service
 * conversations (bot -> queued -> assigned -> closed, transfer, reopen),
 * the built-in rule bot or an external one, routing to agents by the
 * desk's rules, agent status and presence, and a new desk configuration
 * put in force while conversations are under way. */
#ifndef SB_SERVICE_H
#define SB_SERVICE_H

#include "sb_gateway.h"

/* Registers the module's rows and hooks in gw. Returns 0 or -ENOMEM. */
int sb__svc_register(sb_gw *gw);

#endif
