/* Reports (sb_gwreport.h) on the delivery core. */
#include "sb_gwreport.h"

#include <errno.h>
#include <stdlib.h>

#include "sb_error.h"
#include "sb_gwcore.h"

static void report_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    if (r->rc == 0 && r->u.report.resp)
        sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_REPORT_RESP,
                    r->u.report.resp);
    else if (r->rc == SB_E_RATE_LIMITED)
        sb__gw_error_text(gw, s, r->rid, r->rc,
                          "too many reports running: try again shortly");
    else
        sb__gw_error_text(gw, s, r->rid, r->rc ? r->rc : SB_E_INTERNAL,
                          r->u.report.err);
    if (r->u.report.resp)
        sbp__report_resp__free_unpacked(r->u.report.resp, NULL);
    free(r);
}

static void on_report(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    sb_req *r = sb__gw_req_new(gw, SB_REQ_REPORT, s, f->rid, report_done);
    if (!r) {
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    int rc = sb_report_query_set(&r->u.report.query, f->report, r->u.report.err,
                                 sizeof r->u.report.err);
    if (rc) {
        sb__gw_error_text(gw, s, f->rid, rc, r->u.report.err);
        free(r);
        return;
    }
    sb__gw_submit(gw, r);
}

static const sb_gw_row ROWS[] = {
    {.body = SBP__FRAME__BODY_REPORT,
     .flags = SB_GW_READY | SB_GW_RATED,
     .roles = SB_GW_ROLE(SBP__ROLE__ROLE_ADMIN) |
              SB_GW_ROLE(SBP__ROLE__ROLE_INTEGRATION),
     .why = "reports need a token with role admin or integration",
     .handle = on_report},
};

void sb__report_register(sb_gw *gw)
{
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, NULL);
}
