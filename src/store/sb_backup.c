/* The SQLite online backup: sqlite3_backup_step(-1) copies every page in
 * one read transaction of the source; then the uploads' files that the
 * copy names (a blob's file is whole before its record commits, and
 * never changes: copying it later is as good as at the snapshot). */
#include "sb_backup.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_error.h"

#define BUSY_MS 5000
#define STEP_TRIES 50 /* a busy step tried again, 100 ms apart */

static int fail(char *err, size_t elen, int rc, const char *what, sqlite3 *db)
{
    snprintf(err, elen, "%s: %s", what, db ? sqlite3_errmsg(db) : "failed");
    return rc;
}

/* fsync of path (a file, or a folder for the rename in it). */
static int sync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static uint64_t count_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    uint64_t n = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Checks the copy at path and counts what it holds. */
static int check_copy(const char *path, sb_backup_info *info, char *err,
                      size_t elen)
{
    sqlite3 *db = NULL;
    int rc = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        rc = fail(err, elen, SB_E_STORE, "cannot open the copy", db);
        goto out;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        rc = fail(err, elen, SB_E_STORE, "the copy does not check", db);
        sqlite3_finalize(st);
        goto out;
    }
    sqlite3_finalize(st);
    info->conversations = count_rows(db, "SELECT count(*) FROM convs");
    info->messages = count_rows(db, "SELECT count(*) FROM messages");
out:
    sqlite3_close(db); /* the last connection: no WAL is left beside it */
    return rc;
}

int sb_backup_sqlite(const char *src, const char *dst, sb_backup_info *info,
                     char *err, size_t elen)
{
    memset(info, 0, sizeof *info);
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= sizeof tmp) {
        snprintf(err, elen, "%s: path too long", dst);
        return -ENAMETOOLONG;
    }
    struct stat sst;
    if (access(dst, F_OK) == 0) {
        snprintf(err, elen, "%s exists: a backup never overwrites", dst);
        return -EEXIST;
    }
    if (stat(src, &sst) != 0) {
        int e = errno;
        snprintf(err, elen, "%s: %s", src, strerror(e));
        return -e;
    }
    unlink(tmp); /* what a failed backup left */
    sqlite3 *from = NULL, *to = NULL;
    int rc = 0;
    /* Read-write, never create: a reader of a WAL database shares its
     * index, which takes write access to the -shm file. */
    if (sqlite3_open_v2(src, &from, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        rc = fail(err, elen, SB_E_STORE, "cannot open the store", from);
        goto out;
    }
    sqlite3_busy_timeout(from, BUSY_MS);
    if (sqlite3_open_v2(tmp, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        NULL) != SQLITE_OK) {
        rc = fail(err, elen, SB_E_STORE, "cannot create the copy", to);
        goto out;
    }
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    if (!b) {
        rc = fail(err, elen, SB_E_STORE, "cannot start the backup", to);
        goto out;
    }
    int src_rc = SQLITE_BUSY;
    for (int i = 0; i < STEP_TRIES; i++) {
        src_rc = sqlite3_backup_step(b, -1);
        if (src_rc != SQLITE_BUSY && src_rc != SQLITE_LOCKED) break;
        sqlite3_sleep(100);
    }
    sqlite3_backup_finish(b);
    if (src_rc != SQLITE_DONE) {
        snprintf(err, elen, "backup: %s", sqlite3_errstr(src_rc));
        rc = SB_E_STORE;
        goto out;
    }
out:
    sqlite3_close(from);
    sqlite3_close(to);
    if (rc == 0) rc = check_copy(tmp, info, err, elen);
    if (rc == 0 && (rc = sync_path(tmp, O_RDONLY)) != 0)
        snprintf(err, elen, "%s: sync: %s", tmp, strerror(-rc));
    if (rc == 0 && rename(tmp, dst) != 0) {
        rc = -errno;
        snprintf(err, elen, "%s: %s", dst, strerror(-rc));
    }
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", dst);
    sync_path(dirname(dir), O_RDONLY | O_DIRECTORY);
    struct stat dst_st;
    if (stat(dst, &dst_st) == 0) info->bytes = (uint64_t)dst_st.st_size;
    return 0;
}

/* Copies (or links) the file src to dst: written to dst.tmp, synced,
 * renamed. Returns 0, or -errno. */
static int file_copy(const char *src, const char *dst, uint64_t *bytes)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= sizeof tmp)
        return -ENAMETOOLONG;
    unlink(tmp);
    if (link(src, tmp) == 0) {
        struct stat st;
        if (stat(tmp, &st) == 0) *bytes += (uint64_t)st.st_size;
    } else {
        int in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0) return -errno;
        int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (out < 0) {
            int e = -errno;
            close(in);
            return e;
        }
        char buf[65536];
        ssize_t k;
        int rc = 0;
        while ((k = read(in, buf, sizeof buf)) != 0) {
            if (k < 0 && errno == EINTR) continue;
            if (k < 0 || write(out, buf, (size_t)k) != k) {
                rc = -(errno ? errno : EIO);
                break;
            }
            *bytes += (uint64_t)k;
        }
        if (rc == 0 && fsync(out) != 0) rc = -errno;
        close(in);
        if (close(out) != 0 && rc == 0) rc = -errno;
        if (rc) {
            unlink(tmp);
            return rc;
        }
    }
    return rename(tmp, dst) == 0 ? 0 : -errno;
}

int sb_backup_media(const char *src_dir, const char *dst_dir,
                    const char *dst_db, sb_backup_info *info, char *err,
                    size_t elen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_open_v2(dst_db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return fail(err, elen, SB_E_STORE, "cannot open the copy", db);
    /* A store from before uploads has no media table: nothing to copy. */
    if (sqlite3_prepare_v2(db, "SELECT DISTINCT lower(hex(sha256)) FROM media",
                           -1, &st, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return 0;
    }
    info->uploads = count_rows(db, "SELECT count(*) FROM media");
    char dir[4096], from[4200], to[4096];
    snprintf(dir, sizeof dir, "%s/media", dst_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, elen, "%s: %s", dir, strerror(errno));
    }
    int step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 0);
        if (!h || strlen(h) != 64) continue;
        snprintf(dir, sizeof dir, "%s/media/%.2s", dst_dir, h);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            rc = -errno;
            snprintf(err, elen, "%s: %s", dir, strerror(errno));
            break;
        }
        if ((size_t)snprintf(from, sizeof from, "%s/media/%.2s/%s", src_dir, h,
                             h) >= sizeof from ||
            (size_t)snprintf(to, sizeof to, "%s/%s", dir, h) >= sizeof to) {
            rc = -ENAMETOOLONG;
            snprintf(err, elen, "%s: path too long", dst_dir);
            break;
        }
        if (access(to, F_OK) == 0) continue;
        rc = file_copy(from, to, &info->blob_bytes);
        if (rc) {
            snprintf(err, elen, "%s: %s", from, strerror(-rc));
            break;
        }
        info->blobs++;
        sync_path(dir, O_RDONLY | O_DIRECTORY);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    snprintf(dir, sizeof dir, "%s/media", dst_dir);
    if (rc == 0) sync_path(dir, O_RDONLY | O_DIRECTORY);
    return rc;
}
