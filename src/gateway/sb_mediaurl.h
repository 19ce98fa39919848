/* MEDIA_URL: signed links to uploads, for a page whose <img> or download
 * link cannot send the session's token. The store says which of the ids
 * the user may see (sb_store_media_get); each of those gets a link of its
 * own (sb_medialink) valid for media_link_s seconds. */
#ifndef SB_MEDIAURL_H
#define SB_MEDIAURL_H

#include "sb_gateway.h"

/* Registers the module's row in gw's frame table. */
void sb__mediaurl_register(sb_gw *gw);

#endif
