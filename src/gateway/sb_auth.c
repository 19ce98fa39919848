/* Authentication (sb_auth.h) on the delivery core. A refused HELLO gets
 * its ERROR and the close (policy): the connection may not try again. */
#include "sb_auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_gwcore.h"
#include "sb_ws.h"

/* The user's record is stored: the session is ready, and WELCOME says so. */
static void hello_ready(sb_gw *gw, sess *s, sb_req *r)
{
    /* The user's record not written because the store fails to write (a
     * full disk): the session goes on. Reads still work and each write is
     * refused with its own ERR_STORE, so a device that (re)connects then
     * can catch up; the next HELLO writes it. */
    if (r->rc != 0 && r->rc != SB_E_STORE) {
        sb__gw_error(gw, s, r->rid, r->rc);
        sb__gw_close(gw, s, SB_WS_CLOSE_INTERNAL, "store unavailable");
        return;
    }
    int rc = sb__gw_sess_ready(gw, s);
    if (rc == -EEXIST) return; /* a stale connection, closed */
    if (rc != 0) {
        sb__gw_close(gw, s, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    Sbp__Welcome w = SBP__WELCOME__INIT;
    w.user_id = s->user_id;
    w.role = s->role;
    w.session_id = s->id;
    w.server_ts = gw->now_ms;
    w.heartbeat_ms = gw->cfg.heartbeat_ms;
    w.frame_bytes_max = gw->cfg.frame_bytes_max;
    w.body_bytes_max = gw->cfg.body_bytes_max;
    w.pending_sends_max = gw->cfg.pending_sends_max;
    w.sync_page_max = gw->cfg.sync_page_max;
    w.media_bytes_max = gw->cfg.media_bytes_max;
    sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_WELCOME, &w);
}

static void hello_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    if (s && s->state == SESS_HELLO_PENDING) hello_ready(gw, s, r);
    free(r);
}

static void on_hello(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    const Sbp__Hello *h = f->hello;
    if (s->state != SESS_NEW) {
        sb__gw_error(gw, s, f->rid, SB_E_ALREADY);
        return;
    }
    sb_claims cl;
    sb_token_check chk = {.now_s = gw->now_ms / 1000,
                          .skew_s = gw->cfg.token_skew_s,
                          .iss = gw->token_iss,
                          .aud = gw->token_aud};
    int rc = sb_token_verify_ex(gw->secret, gw->cfg.secret_len, h->token,
                                strlen(h->token), &chk, &cl);
    if (rc == 0 && !sb__gw_valid_id(h->device_id)) rc = SB_E_INVALID;
    if (rc == 0 && h->protocol > 1) rc = SB_E_INVALID;
    /* An integration's token is for the REST API, which opens its own
     * sessions (sb_gw_api_open): it is no device. */
    if (rc == 0 && cl.role == SBP__ROLE__ROLE_INTEGRATION) rc = SB_E_FORBIDDEN;
    if (rc != 0) {
        sb__gw_error(gw, s, f->rid, rc);
        sb__gw_close(gw, s, SB_WS_CLOSE_POLICY, sb_strerror(rc));
        return;
    }
    if (sb__gw_sess_set_ids(s, cl.sub, h->device_id) != 0) {
        sb__gw_close(gw, s, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    sb__gw_copy_str(s->locale, sizeof s->locale,
                    h->locale[0] ? h->locale
                                 : (cl.locale[0] ? cl.locale : "en"));
    s->role = cl.role;
    s->state = SESS_HELLO_PENDING;
    sb_req *r = sb__gw_req_new(gw, SB_REQ_USER_UPSERT, s, f->rid, hello_done);
    if (!r) {
        sb__gw_close(gw, s, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    sb__gw_copy_str(r->u.user.user_id, sizeof r->u.user.user_id, s->user_id);
    sb__gw_copy_str(r->u.user.locale, sizeof r->u.user.locale, s->locale);
    r->u.user.role = s->role;
    sb__gw_submit(gw, r);
}

/* Any session state but closing: the dispatcher answers HELLO itself. */
static const sb_gw_row ROWS[] = {
    {.body = SBP__FRAME__BODY_HELLO, .handle = on_hello},
};

void sb__auth_register(sb_gw *gw)
{
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, NULL);
}
