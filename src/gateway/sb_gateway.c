/* The gateway as the shell sees it: the delivery core (sb_gwcore.c) with
 * the modules above it, each registering its frame kinds in the core's
 * table: authentication (sb_auth.c), the message path (sb_msgpath.c),
 * admin commands (sb_admin.c),
 * the message operations (sb_msgops.c), signed links to uploads
 * (sb_mediaurl.c), the customer-service lifecycle (sb_service.c), the
 * desk's team (sb_team.c), customers' ratings (sb_csat.c), reports
 * (sb_gwreport.c), private notes (sb_notes.c) and contacts
 * (sb_contact.c). */
#include "sb_gateway.h"

#include <string.h>

#include "sb_admin.h"
#include "sb_auth.h"
#include "sb_contact.h"
#include "sb_csat.h"
#include "sb_gwcore.h"
#include "sb_gwreport.h"
#include "sb_mediaurl.h"
#include "sb_msgops.h"
#include "sb_msgpath.h"
#include "sb_notes.h"
#include "sb_service.h"
#include "sb_team.h"

void sb_gw_config_default(sb_gw_config *c)
{
    memset(c, 0, sizeof *c);
    c->token_skew_s = 60;
    c->frame_bytes_max = 65536;
    c->body_bytes_max = 8192;
    c->pending_sends_max = 64;
    c->sends_per_s = 50;
    c->send_burst = 100;
    c->sync_page_max = 200;
    c->sync_bytes_max = 256 * 1024;
    c->history_page_max = 200;
    c->heartbeat_ms = 30000;
    c->hello_timeout_ms = 10000;
    c->retry_ms_initial = 2000;
    c->retry_ms_max = 30000;
    c->retry_attempts_max = 5;
    c->unacked_max = 4096;
    c->push_batch_max = 64;
    c->push_batch_bytes_max = 32768; /* half of frame_bytes_max */
    c->receipts_ms = 200;
    c->cursors_ms = 1000;
    c->sessions_max = 200000;
    c->media_link_s = 900;
}

int sb_gw_new(const sb_gw_config *c, const sb_gw_io *io, sb_gw **out)
{
    int rc = sb__gw_new(c, io, out);
    if (rc) return rc;
    sb__auth_register(*out);
    sb__msgpath_register(*out);
    sb__admin_register(*out);
    sb__msgops_register(*out);
    sb__mediaurl_register(*out);
    sb__team_register(*out);
    sb__csat_register(*out);
    sb__report_register(*out);
    sb__notes_register(*out);
    sb__contact_register(*out);
    if ((rc = sb__svc_register(*out)) != 0) {
        sb_gw_free(*out);
        *out = NULL;
    }
    return rc;
}
