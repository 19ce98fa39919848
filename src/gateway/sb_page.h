/* Replies of many items (SYNC_RESP, HISTORY_RESP, SEARCH_RESP,
 * CONV_LIST_RESP) cut to what one frame may carry: the store pages by
 * count (and roughly by body bytes), but a client reads at most the
 * frame_bytes_max it was told, and the shell drops a connection with more
 * than its output bound queued. Whatever is cut comes with the next page
 * (`more` set). */
#ifndef SB_PAGE_H
#define SB_PAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_gwcore.h"

/* The bytes one reply frame may take: frame_bytes_max, or page_bytes_max
 * when that is set and smaller. */
size_t sb__page_bytes_max(const sb_gw *gw);

/* Cuts each kind of reply to sb__page_bytes_max() for s: the items that do
 * not fit are freed and `more` is set. A SYNC_RESP keeps its first
 * messages (by conv_id, seq), a HISTORY_RESP its newest, a SEARCH_RESP
 * its first (newest) hits; a CONV_LIST_RESP keeps its first entries and
 * its next_cursor then names the last kept (sb__page_cut_conv_list
 * returns 0, or -ENOMEM with the reply as it was). */
void sb__page_cut_sync(sb_gw *gw, const sess *s, Sbp__SyncResp *r);
void sb__page_cut_history(sb_gw *gw, const sess *s, Sbp__HistoryResp *r);
void sb__page_cut_search(sb_gw *gw, const sess *s, Sbp__SearchResp *r);
int sb__page_cut_conv_list(sb_gw *gw, const sess *s, Sbp__ConvListResp *r);

#endif
