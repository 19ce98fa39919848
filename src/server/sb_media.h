/* The media service on the gateway's port: uploads (POST /media), their
 * bytes served back (GET /media/<id>) and the CORS preflights of both.
 * One transfer per connection, driven by the shell (sb_server) with the
 * bytes it reads and the room it has to write; the work that blocks runs
 * elsewhere: the file written through libuv's thread pool, its type,
 * image pass and hash in a worker (sb_mediaproc), the records and blobs
 * on the store's threads (sb_storeq). Every step is bounded: the size of
 * an upload, the bytes held in memory (reading stops while they are
 * written), uploads at once (per user and in all), uploads per user per
 * hour, and how long a transfer may go without moving a byte.
 *
 * An upload: "POST /media?conv=<id>&name=<file name>" with
 * "Authorization: Bearer <token>" (the session's) and Content-Length;
 * the uploader must be a member of the conversation (or an admin). It is
 * answered 201 with the upload's record in JSON, or an error status
 * with a line of text saying why (docs/protocol.md lists them). A
 * download: "GET /media/<id>" with the token, or the t= of a signed link
 * (sb_medialink), served to whoever may see the upload (sb_store_media_get)
 * with headers that keep a browser from running it.
 *
 * Threads: the loop's. */
#ifndef SB_MEDIA_H
#define SB_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sb_buf.h"
#include "sb_http.h"
#include "sb_storeq.h"

/* Blobs no record names are swept once they are this old (a blob is
 * stored moments before the record that names it), every hour. */
#define SB_MEDIA_GC_AGE_MS (10 * 60 * 1000)
#define SB_MEDIA_GC_EVERY_MS (60 * 60 * 1000)

typedef struct sb_media sb_media;
typedef struct sb_media_xfer sb_media_xfer;

typedef struct sb_media_config {
    uv_loop_t *loop;
    sb_storeq *storeq;
    /* Where uploads are written while they arrive (made if missing; what
     * is left there from before is removed at start). Copied. */
    const char *tmp_dir;
    /* The token secret (copied), and the issuer and audience tokens must
     * name (NULL or "": not checked), as the gateway's. */
    const uint8_t *secret;
    size_t secret_len;
    const char *token_iss, *token_aud;
    int64_t token_skew_s;
    uint64_t bytes_max;        /* one upload, in bytes; 0: no uploads */
    uint32_t uploads_per_hour; /* per user (0: no limit) */
    uint32_t uploads_per_user; /* at once, per user */
    uint32_t uploads_max;      /* at once, in all */
    uint32_t idle_ms;          /* a transfer moving no byte this long ends */
    uint32_t time_ms_max;      /* a transfer ends after this long anyway */
    /* The types uploads may have (NULL: sb_mediaproc's defaults), and the
     * origins whose pages may call (CORS; n_origins 0: any). Both stay
     * the caller's and must outlive the service. */
    const char *const *types;
    size_t n_types;
    const char *const *origins;
    size_t n_origins;
} sb_media_config;

/* Fills c's limits with the defaults (docs/operations.md lists them). */
void sb_media_config_default(sb_media_config *c);

/* What a transfer asks of its connection. */
typedef struct sb_media_conn {
    void *ud;
    /* Writes (takes) the bytes of b. */
    void (*write)(void *ud, sb_buf *b);
    /* Stops or starts reading the peer's bytes. */
    void (*reading)(void *ud, bool on);
    /* Bytes written and not yet on the wire. */
    size_t (*unsent)(void *ud);
    /* The exchange is over: close once what was written is out. No call
     * comes after it. */
    void (*done)(void *ud);
} sb_media_conn;

/* Counts, for the metrics. */
typedef struct sb_media_stats {
    uint64_t uploads;      /* stored */
    uint64_t upload_bytes; /* of those, as stored */
    uint64_t refused;      /* uploads answered with an error */
    uint64_t gps_removed;  /* photos that had a location */
    uint64_t downloads;    /* served whole */
    uint64_t download_bytes;
    uint32_t active; /* uploads in progress */
} sb_media_stats;

/* Makes the service (tmp_dir emptied, libmagic loaded). Returns 0 or a
 * negative code: -ENOENT (no libmagic database), -errno for tmp_dir. */
int sb_media_new(const sb_media_config *c, sb_media **out);
/* Lets the service go: it is freed once its last transfer is (store
 * requests and worker jobs still out finish first). Accepts NULL. */
void sb_media_close(sb_media *m);
/* New uploads are refused (503) from now on: the server drains. */
void sb_media_drain(sb_media *m);

/* Takes a complete request whose target is /media or under it; the
 * transfer answers on conn (copied), maybe before this returns. Returns
 * the transfer, or NULL when out of memory (nothing was written: the
 * caller answers). */
sb_media_xfer *sb_media_start(sb_media *m, const sb_http_req *req,
                              const sb_media_conn *conn, int64_t now_ms);
/* Bytes of the request's body (the first ones may have come with its
 * headers). */
void sb_media_feed(sb_media_xfer *x, const uint8_t *p, size_t n,
                   int64_t now_ms);
/* The connection wrote out part of what it had: a download goes on. */
void sb_media_drained(sb_media_xfer *x, int64_t now_ms);
/* The connection is gone: the transfer makes no more calls on it, and
 * goes away once what it has out comes back. */
void sb_media_gone(sb_media_xfer *x);
/* Deadlines: call about once a second. */
void sb_media_sweep(sb_media *m, int64_t now_ms);

void sb_media_get_stats(const sb_media *m, sb_media_stats *out);

/* A user's uploads were erased (their records: sb_store_user_erase): their
 * bytes are swept from the store now, those stored over SB_MEDIA_GC_AGE_MS
 * ago (the sweep runs every hour too, for the others). Returns what the
 * erasure's answer says of attachments (a new JSON reference, or NULL). */
void *sb_media_erased(sb_media *m, const char *user_id, uint64_t uploads);

#endif
