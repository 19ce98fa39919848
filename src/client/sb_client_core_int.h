/* The client core's private header: the state its parts share and the
 * helpers they all use. sb_client_core.c owns the connection state machine,
 * the frame dispatcher and the out queue; sb_client_inbox.c, the messages
 * coming in; sb_client_outbox.c, the messages going out; and
 * sb_client_request.c, the requests and their answers. Each part keeps its
 * state in its member of sb_client_core and changes the others' only
 * through their functions. Applications include sb_client_core.h. */
#ifndef SB_CLIENT_CORE_INT_H
#define SB_CLIENT_CORE_INT_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_client_core.h"
#include "sb_client_inbox.h"
#include "sb_client_outbox.h"
#include "sb_client_request.h"

struct sb_client_core {
    sb_client_config cfg; /* strings point at the copies below */
    char *token, *device_id, *client_name, *locale;
    char *urls[SB_CLIENT_URLS_MAX]; /* copies, in the configured order */
    size_t n_urls;
    uint8_t url_order[SB_CLIENT_URLS_MAX]; /* indexes into urls, as tried */
    size_t url_pos;                        /* in url_order: now or next */
    uint32_t round_fails; /* attempts failed since the round began */
    sb_client_cbs cbs;
    void *ud;
    sb_client_core_io io;

    sb_client_state state;
    int depth;        /* nesting of entry points; work is done at 0 */
    bool pump_needed; /* frames may be due */
    int64_t now_ms, last_rx_ms, reconnect_at_ms;
    int64_t conn_started_ms; /* the connect timeout runs from here */
    int64_t ready_ms;        /* when the connection became READY */
    uint32_t backoff_attempt, backoff_ms;
    int last_err;
    uint16_t close_code;
    uint32_t next_rid, hello_rid;
    uint32_t heartbeat_ms; /* WELCOME's, else the config's */
    sb_client_session sess;

    cc_inbox in;
    cc_outbox out;
    cc_requests req;

    sb_buf outq; /* [u32 length][frame] records */
    size_t outq_off;

    sb_client_stats st;
};

/* Entry points nest through callbacks; frames are produced at depth 0. */
static inline void sb__client_enter(sb_client_core *cc)
{
    cc->depth++;
}

static inline void sb__client_leave(sb_client_core *cc)
{
    assert(cc->depth > 0);
    cc->depth--;
}

/* The next request id (never 0). */
uint32_t sb__client_new_rid(sb_client_core *cc);

/* Appends f, encoded, to the out queue. 0, -ENOBUFS (outq_bytes_max
 * already queued) or -ENOMEM. */
int sb__client_emit(sb_client_core *cc, const Sbp__Frame *f);

/* A string argument: NULL is "". 0, SB_E_INVALID (empty when it may not
 * be, or longer than max bytes) or SB_E_BAD_UTF8. */
int sb__client_check_str(const char *s, size_t max, bool empty_ok);

#endif
