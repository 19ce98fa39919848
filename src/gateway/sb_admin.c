/* Admin commands (sb_admin.h) on the delivery core. */
#include "sb_admin.h"

#include "sb_error.h"
#include "sb_gwcore.h"

static void on_admin(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    int rc = gw->io.admin ? gw->io.admin(gw->io.ud, s->id, f->rid, f->admin->op,
                                         f->admin->body)
                          : SB_E_INVALID;
    if (rc == SB_E_INVALID)
        sb__gw_error_text(gw, s, f->rid, rc, "unknown admin op");
    else if (rc)
        sb__gw_error(gw, s, f->rid, rc);
}

/* The session that asked, if it is still there. */
static sess *asker(sb_gw *gw, uint64_t conn_id)
{
    sess *s = sb__gw_sess_get(gw, conn_id);
    return s && s->state == SESS_READY ? s : NULL;
}

void sb_gw_admin_done(sb_gw *gw, uint64_t conn_id, uint32_t rid, int rc,
                      const char *text)
{
    sess *s = asker(gw, conn_id);
    if (rc == 0)
        sb__gw_reply_rc(gw, s, rid, 0);
    else
        sb__gw_error_text(gw, s, rid, rc, text);
}

void sb_gw_admin_text(sb_gw *gw, uint64_t conn_id, uint32_t rid,
                      const char *text)
{
    Sbp__AdminResp a = SBP__ADMIN_RESP__INIT;
    a.text = (char *)(text ? text : "");
    sb__gw_send(gw, asker(gw, conn_id), rid, SBP__FRAME__BODY_ADMIN_RESP, &a);
}

static const sb_gw_row ROWS[] = {
    {.body = SBP__FRAME__BODY_ADMIN,
     .flags = SB_GW_READY,
     .roles = SB_GW_ROLE(SBP__ROLE__ROLE_ADMIN),
     .why = "admin commands need a token with role admin",
     .handle = on_admin},
};

void sb__admin_register(sb_gw *gw)
{
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, NULL);
}
