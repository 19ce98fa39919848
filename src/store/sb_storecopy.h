/* Moving a deployment out of SQLite: copies a whole SQLite store into a
 * PostgreSQL one, every row with its ids and seqs as they are, and checks
 * the result. The copy can be run again: rows already there are brought
 * up to date and messages continue from the last one copied, so a first
 * pass can run while the server serves, and a short second one after it
 * stopped (docs/operations.md). */
#ifndef SB_STORECOPY_H
#define SB_STORECOPY_H

#include <stddef.h>
#include <stdint.h>

typedef struct sb_storecopy_report {
    uint64_t users, convs, members, messages, cursors, tags, settings;
    uint64_t contacts;
    uint64_t messages_new;         /* of messages: copied by this run */
    uint64_t uploads, upload_refs; /* media records, and messages' links */
    uint64_t blobs_new;            /* uploads' files copied into the database */
} sb_storecopy_report;

/* Copies the SQLite store at sqlite_path (a file the server made) into the
 * PostgreSQL database at uri, which must be empty or hold an earlier copy
 * of a store (a database that holds conversations of its own is refused),
 * and the uploads' files beside it (the folder's media/..) into the
 * database's blobs, those not there yet. progress(ud, line), when set,
 * hears each step. Then verifies: the same number of rows in every table,
 * every conversation's last_seq and message count equal, every upload's
 * bytes there. Returns 0, or a negative code with the reason in err. */
int sb_storecopy(const char *sqlite_path, const char *uri,
                 void (*progress)(void *ud, const char *line), void *ud,
                 sb_storecopy_report *rep, char *err, size_t err_len);

#endif
