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
    uint64_t uploads;    /* records of uploads (sb_backup_media) */
    uint64_t blobs;      /* their files copied (the others were there) */
    uint64_t blob_bytes; /* of those */
} sb_backup_info;

/* Copies the SQLite database at src (which must exist) to dst, a file
 * that must not: the copy is written to dst.tmp, checked (PRAGMA
 * quick_check), synced and renamed to dst, so that dst is whole or
 * absent. A busy source is waited for (a few seconds). Returns 0 with
 * *info filled, or a negative code with err saying why (-EEXIST for an
 * existing dst, SB_E_STORE for SQLite's failures, -errno). */
int sb_backup_sqlite(const char *src, const char *dst, sb_backup_info *info,
                     char *err, size_t elen);

/* Copies the uploads' files that the backup at dst_db names (its media
 * records: those of the database as of the copy) from the data folder
 * src_dir (src_dir/media/..) to dst_dir/media/.., each linked when the
 * two folders share a file system, else copied, and synced; a file
 * already there (an earlier backup's, the same bytes) is kept. Returns 0
 * with info's uploads and blobs counts, or a negative code with err. */
int sb_backup_media(const char *src_dir, const char *dst_dir,
                    const char *dst_db, sb_backup_info *info, char *err,
                    size_t elen);

#endif
