/* Replies cut to a frame (sb_page.h). */
#include "sb_page.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_codec.h"

/* What a reply's fields around its items may take beyond their size when
 * the frame is measured without them: a JSON array's brackets and name. */
#define PAGE_SLACK_BYTES 64

size_t sb__page_bytes_max(const sb_gw *gw)
{
    size_t max = gw->cfg.frame_bytes_max;
    if (gw->cfg.page_bytes_max && gw->cfg.page_bytes_max < max)
        max = gw->cfg.page_bytes_max;
    return max;
}

/* The encoded size of a frame of kind k with body (borrowed) for s, and
 * the slack. */
static size_t frame_bytes(sb_gw *gw, const sess *s, Sbp__Frame__BodyCase k,
                          void *body)
{
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = UINT32_MAX; /* the longest a rid encodes */
    f.body_case = k;
    /* Every body of the oneof shares one place (sb_gwcore.c). */
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&sbp__frame__descriptor,
                                                (unsigned)k);
    memcpy((char *)&f + fd->offset, &body, sizeof body);
    gw->scratch.len = 0;
    if (sb_frame_encode(s->enc, &f, &gw->scratch) != 0) return SIZE_MAX;
    return gw->scratch.len + PAGE_SLACK_BYTES;
}

/* How many of items[0..n), taken from the front (or from the back, with
 * from_back), fit in room bytes of a frame in enc; at least one when n >
 * 0, so that every page makes progress (a single item larger than a frame
 * goes alone). */
static size_t fit(sb_encoding enc, const ProtobufCMessage *const *items,
                  size_t n, size_t room, bool from_back)
{
    size_t used = 0, k;
    for (k = 0; k < n; k++) {
        size_t b = sb_item_bytes(enc, items[from_back ? n - 1 - k : k]);
        if (b > room - used) break;
        used += b;
    }
    return k > 0 || n == 0 ? k : 1;
}

/* The room a reply's items have: the page less the frame without them. */
static size_t room_for(sb_gw *gw, const sess *s, Sbp__Frame__BodyCase k,
                       void *body)
{
    size_t max = sb__page_bytes_max(gw);
    size_t base = frame_bytes(gw, s, k, body);
    return base < max ? max - base : 0;
}

/* Keeps msgs[0..keep) of *n (or the last keep, with from_back), freeing
 * the others. */
static void keep_msgs(Sbp__Message **msgs, size_t *n, size_t keep,
                      bool from_back)
{
    size_t cut = *n - keep;
    size_t first = from_back ? 0 : keep;
    for (size_t i = first; i < first + cut; i++)
        sbp__message__free_unpacked(msgs[i], NULL);
    if (from_back) memmove(msgs, msgs + cut, keep * sizeof *msgs);
    *n = keep;
}

void sb__page_cut_sync(sb_gw *gw, const sess *s, Sbp__SyncResp *r)
{
    size_t n = r->n_messages, nc = r->n_convs;
    bool more = r->more;
    r->n_messages = 0;
    r->more = true;
    size_t room = room_for(gw, s, SBP__FRAME__BODY_SYNC_RESP, r);
    size_t max = sb__page_bytes_max(gw);
    /* The conversations the page names come with it; when they alone
     * would take more than half the frame, those at the end wait for the
     * next page. */
    if (max - room > max / 2 && nc > 0) {
        size_t keep = fit(s->enc, (const ProtobufCMessage *const *)r->convs, nc,
                          max / 2, false);
        for (size_t i = keep; i < nc; i++)
            sbp__conversation__free_unpacked(r->convs[i], NULL);
        r->n_convs = keep;
        more |= keep < nc;
        room = room_for(gw, s, SBP__FRAME__BODY_SYNC_RESP, r);
    }
    r->n_messages = n;
    r->more = more;
    size_t keep = fit(s->enc, (const ProtobufCMessage *const *)r->messages, n,
                      room, false);
    if (keep < n) {
        keep_msgs(r->messages, &r->n_messages, keep, false);
        r->more = true;
    }
}

void sb__page_cut_history(sb_gw *gw, const sess *s, Sbp__HistoryResp *r)
{
    size_t n = r->n_messages;
    bool more = r->more;
    r->n_messages = 0;
    r->more = true;
    size_t room = room_for(gw, s, SBP__FRAME__BODY_HISTORY_RESP, r);
    r->n_messages = n;
    r->more = more;
    size_t keep = fit(s->enc, (const ProtobufCMessage *const *)r->messages, n,
                      room, true);
    if (keep < n) {
        keep_msgs(r->messages, &r->n_messages, keep, true);
        r->more = true;
    }
}

void sb__page_cut_search(sb_gw *gw, const sess *s, Sbp__SearchResp *r)
{
    size_t n = r->n_messages;
    r->n_messages = 0;
    size_t room = room_for(gw, s, SBP__FRAME__BODY_SEARCH_RESP, r);
    r->n_messages = n;
    size_t keep = fit(s->enc, (const ProtobufCMessage *const *)r->messages, n,
                      room, false);
    if (keep < n) keep_msgs(r->messages, &r->n_messages, keep, false);
}

int sb__page_cut_conv_list(sb_gw *gw, const sess *s, Sbp__ConvListResp *r)
{
    size_t n = r->n_convs;
    r->n_convs = 0;
    size_t room = room_for(gw, s, SBP__FRAME__BODY_CONV_LIST_RESP, r);
    r->n_convs = n;
    size_t keep =
        fit(s->enc, (const ProtobufCMessage *const *)r->convs, n, room, false);
    if (keep == n) return 0;
    /* The cursor of sb_store_conv_list: "<updated_ts>:<conv_id>" of the
     * last entry given. */
    char cur[SB_LIST_CURSOR_BYTES_MAX + 1];
    const Sbp__Conversation *last = r->convs[keep - 1];
    snprintf(cur, sizeof cur, "%" PRId64 ":%" PRIu64, last->updated_ts,
             last->conv_id);
    char *next = strdup(cur);
    if (!next) return -ENOMEM;
    for (size_t i = keep; i < n; i++)
        sbp__conversation__free_unpacked(r->convs[i], NULL);
    r->n_convs = keep;
    if (r->next_cursor != protobuf_c_empty_string) free(r->next_cursor);
    r->next_cursor = next;
    r->more = true;
    return 0;
}
