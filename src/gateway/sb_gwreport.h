/* The REPORT frame above the delivery core: the report of an admin or an
 * integration (the REST API's sessions) (sb_report.h) is checked here and
 * computed by the store (SB_REQ_REPORT, a long read on a reader of its
 * own), and answered with REPORT_RESP or an ERROR saying what was wrong. */
#ifndef SB_GWREPORT_H
#define SB_GWREPORT_H

#include "sb_gateway.h"

/* Registers the module's row in gw's frame table. */
void sb__report_register(sb_gw *gw);

#endif
