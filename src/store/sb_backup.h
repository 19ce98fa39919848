/* Online backups of the SQLite store: a consistent copy of a database
 * that a running server keeps writing, made with SQLite's online backup
 * API in one step, so inside one read transaction: the copy is the
 * database as of one commit, every message acknowledged before it
 * included, while the server's writer carries on in the WAL. For sbctl
 * and tests; nothing of the server's runs here. */
#ifndef SB_BACKUP_H
#define SB_BACKUP_H

#include <stddef.h>
#include <stdint.h>

/* What a backup holds. */
typedef struct sb_backup_info {
    uint64_t bytes;         /* of the copy */
    uint64_t conversations; /* rows of each table */
    uint64_t messages;
} sb_backup_info;

/* Copies the SQLite database at src (which must exist) to dst, a file
 * that must not: the copy is written to dst.tmp, checked (PRAGMA
 * quick_check), synced and renamed to dst, so that dst is whole or
 * absent. A busy source is waited for (a few seconds). Returns 0 with
 * *info filled, or a negative code with err saying why (-EEXIST for an
 * existing dst, SB_E_STORE for SQLite's failures, -errno). */
int sb_backup_sqlite(const char *src, const char *dst, sb_backup_info *info,
                     char *err, size_t elen);

#endif
