/* Admin commands above the delivery core: an ADMIN frame from a session
 * with role admin goes to the shell (sb_gw_io.admin), which answers it
 * later with sb_gw_admin_done() or sb_gw_admin_text(). */
#ifndef SB_ADMIN_H
#define SB_ADMIN_H

#include "sb_gateway.h"

/* Registers the module's row in gw's frame table. */
void sb__admin_register(sb_gw *gw);

#endif
