/* The MEDIA_URL frame: its ids checked, looked up as the user may see
 * them, each one seen answered with a link signed for this user. */
#include "sb_mediaurl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_gwcore.h"
#include "sb_medialink.h"

/* What a lookup owns while the store has it: the ids (the frame goes
 * away) and the records it fills. */
typedef struct lookup {
    size_t n;
    char ids[SB_MEDIA_URL_IDS_MAX][SB_MEDIA_ID_LEN + 1];
    const char *ptrs[SB_MEDIA_URL_IDS_MAX];
    sb_store_media out[SB_MEDIA_URL_IDS_MAX];
} lookup;

static int mediaurl_check(sb_gw *gw, const sess *s, const Sbp__Frame *f)
{
    (void)gw;
    (void)s;
    const Sbp__MediaUrl *u = f->media_url;
    if (u->n_ids == 0) return SB_E_INVALID;
    if (u->n_ids > SB_MEDIA_URL_IDS_MAX) return SB_E_TOO_LARGE;
    for (size_t i = 0; i < u->n_ids; i++)
        if (!sb_media_id_valid(u->ids[i])) return SB_E_INVALID;
    return 0;
}

static void mediaurl_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    lookup *lk = r->data;
    if (r->rc != 0) {
        sb__gw_error(gw, s, r->rid, r->rc);
    } else if (s) {
        Sbp__MediaLink links[SB_MEDIA_URL_IDS_MAX];
        Sbp__MediaLink *ptrs[SB_MEDIA_URL_IDS_MAX];
        char urls[SB_MEDIA_URL_IDS_MAX][SB_MEDIA_LINK_BYTES_MAX];
        int64_t exp_s = gw->now_ms / 1000 + gw->cfg.media_link_s;
        size_t n = 0;
        for (size_t i = 0; i < lk->n; i++) {
            if (!lk->out[i].id[0]) continue; /* not the user's to see */
            if (sb_media_link_sign(gw->secret, gw->cfg.secret_len, lk->ids[i],
                                   s->user_id, s->role, exp_s, urls[n],
                                   sizeof urls[n]) < 0)
                continue;
            sbp__media_link__init(&links[n]);
            links[n].id = lk->ids[i];
            links[n].url = urls[n];
            links[n].expires_ts = exp_s * 1000;
            ptrs[n] = &links[n];
            n++;
        }
        if (n == 0) {
            sb__gw_error(gw, s, r->rid, SB_E_NOT_FOUND);
        } else {
            Sbp__MediaUrlResp resp = SBP__MEDIA_URL_RESP__INIT;
            resp.links = ptrs;
            resp.n_links = n;
            sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_MEDIA_URL_RESP, &resp);
        }
    }
    free(lk);
    free(r);
}

static void on_mediaurl(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    const Sbp__MediaUrl *u = f->media_url;
    lookup *lk = calloc(1, sizeof *lk);
    sb_req *r =
        lk ? sb__gw_req_new(gw, SB_REQ_MEDIA_GET, s, f->rid, mediaurl_done)
           : NULL;
    if (!r) {
        free(lk);
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        return;
    }
    lk->n = u->n_ids;
    for (size_t i = 0; i < u->n_ids; i++) {
        memcpy(lk->ids[i], u->ids[i], SB_MEDIA_ID_LEN + 1);
        lk->ptrs[i] = lk->ids[i];
    }
    r->data = lk;
    sb__gw_copy_str(r->u.media_get.user_id, sizeof r->u.media_get.user_id,
                    s->user_id);
    r->u.media_get.all = s->role == SBP__ROLE__ROLE_ADMIN;
    r->u.media_get.ids = lk->ptrs;
    r->u.media_get.n = lk->n;
    r->u.media_get.out = lk->out;
    sb__gw_submit(gw, r);
}

static const sb_gw_row ROWS[] = {
    {.body = SBP__FRAME__BODY_MEDIA_URL,
     .flags = SB_GW_READY | SB_GW_RATED,
     .check = mediaurl_check,
     .handle = on_mediaurl},
};

void sb__mediaurl_register(sb_gw *gw)
{
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, NULL);
}
