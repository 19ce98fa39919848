/* The desk configuration in force, kept in the store: at start it comes
 * from the store, or from the --desk file when the store has none or the
 * file changed since it was last imported (a hash of the file is stored
 * with it); admins' desk ops edit it while the server runs, and the file,
 * read again by sb_reload, is imported if it changed. Each change is
 * validated, stored through the store's writer (never on the loop
 * thread), then put in force in the gateway without a restart
 * (sb_gw_desk_swap). Changes are applied one at a time, in the order they
 * came. Part of the server's shell: loop thread only, but for
 * sb_deskmgr_file_load(). */
#ifndef SB_DESKMGR_H
#define SB_DESKMGR_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "sb_desk.h"
#include "sb_deskcfg.h"
#include "sb_gateway.h"
#include "sb_storeq.h"

#define SB_DESKMGR_QUEUE_MAX 16 /* changes waiting for the one being stored */

/* Store keys: the document, and the hash of the file last imported. */
#define SB_DESKMGR_KEY_DOC "desk"
#define SB_DESKMGR_KEY_HASH "desk.file_hash"

typedef struct sb_deskmgr sb_deskmgr;

typedef struct sb_deskmgr_config {
    uv_loop_t *loop;
    sb_storeq *storeq; /* outlives the manager's requests (see drain) */
    const char *file;  /* --desk FILE (copied), or NULL */
    /* One log line (no newline); error: something failed. NULL: quiet. */
    void (*log)(void *ud, bool error, const char *line);
    void *log_ud;
} sb_deskmgr_config;

/* Makes a manager; no I/O yet. Returns 0 or -ENOMEM. */
int sb_deskmgr_new(const sb_deskmgr_config *c, sb_deskmgr **out);

/* Loads the configuration in force at start (above): reads the file, asks
 * the store and, to import, writes to it, running the loop until the
 * store has answered (call before anything else uses the loop).
 * *desk gets the configuration (NULL when there is none anywhere), owned
 * by the manager. Returns 0, or a negative code after logging why (a file
 * that does not load or parse, a store that fails). */
int sb_deskmgr_boot(sb_deskmgr *m, sb_desk **desk);

/* The gateway that changes are put in force in (NULL: none yet). */
void sb_deskmgr_set_gw(sb_deskmgr *m, sb_gw *gw);

/* An admin's op. For the desk ops ("desk-show", "desk-set" and the
 * sb_deskcfg_apply edits with a "desk-" prefix) the answer comes later
 * through sb_gw_admin_text() (what was done, or the document for
 * desk-show) or sb_gw_admin_done() with the reason it was refused; returns
 * 0 then, or SB_E_RATE_LIMITED when SB_DESKMGR_QUEUE_MAX changes wait
 * already. Returns SB_E_INVALID, and answers nothing, for any other op. */
int sb_deskmgr_admin(sb_deskmgr *m, uint64_t conn_id, uint32_t rid,
                     const char *op, const char *body);

/* A desk file read, hashed and parsed: what an import needs. Owns text
 * and desk. */
typedef struct sb_deskmgr_file {
    char *text; /* NUL-terminated */
    size_t len;
    char hash[SB_DESKCFG_HASH_HEX + 1];
    sb_desk *desk;
} sb_deskmgr_file;

/* Reads the desk file at path (at most SB_DESK_FILE_BYTES_MAX bytes),
 * hashes and parses it into *f. Any thread: it touches no manager.
 * Returns 0, or a negative code with err saying why (the file cannot be
 * read, is too large or does not parse) and *f empty. */
int sb_deskmgr_file_load(const char *path, sb_deskmgr_file *f, char *err,
                         size_t elen);
/* Frees what f owns and empties it. */
void sb_deskmgr_file_clear(sb_deskmgr_file *f);

/* Imports f, the manager's --desk file read again (its contents taken; f
 * is left empty): queued as a change when its hash differs from the last
 * import's, else logged as unchanged. Needs a manager made with a file. */
void sb_deskmgr_import(sb_deskmgr *m, sb_deskmgr_file *f);

/* The server drains: changes waiting are refused (ERR_UNAVAILABLE) and no
 * new store request is made; the one being stored completes. */
void sb_deskmgr_drain(sb_deskmgr *m);

/* Frees the manager and the configuration in force: after the gateway is
 * freed and the loop has no work of the manager's left. Accepts NULL. */
void sb_deskmgr_free(sb_deskmgr *m);

#endif
