/* The SQLite backend's uploads: media records and the messages carrying
 * them in the database, blobs as files under the database's folder,
 * DIR/media/<first two hex digits>/<64 hex digits of the SHA-256>. A
 * blob's file is complete before its name exists (moved into place,
 * synced with its folder when commits are), so a file by that name is
 * always the whole blob. */
#include "sb_sqlite_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_error.h"

/* The columns a record is read from, in order. */
#define MEDIA_COLS                                                             \
    "m.media_id, m.sha256, m.conv_id, m.owner, m.name, m.mime, m.size,"        \
    " m.width, m.height, m.created_ts"

int sb__sqlite_media_dir(const char *path, char **out)
{
    *out = NULL;
    if (!path[0] || strcmp(path, ":memory:") == 0 ||
        strncmp(path, "file:", 5) == 0)
        return 0;
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) : 1;
    size_t cap = dir + sizeof "/media";
    char *d = malloc(cap);
    if (!d) return -ENOMEM;
    snprintf(d, cap, "%.*s/media", (int)dir, slash ? path : ".");
    *out = d;
    return 0;
}

/* Copies a text column into a fixed field of cap bytes (cut if longer,
 * which the checks on the way in never let happen). */
static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, t, n);
    dst[n] = '\0';
}

static int media_row(sqlite3_stmt *st, sb_store_media *m)
{
    memset(m, 0, sizeof *m);
    col_copy(st, 0, m->id, sizeof m->id);
    if (sqlite3_column_bytes(st, 1) != SB_SHA256_BYTES) return SB_E_STORE;
    memcpy(m->sha256, sqlite3_column_blob(st, 1), SB_SHA256_BYTES);
    m->conv_id = (uint64_t)sqlite3_column_int64(st, 2);
    col_copy(st, 3, m->owner, sizeof m->owner);
    col_copy(st, 4, m->name, sizeof m->name);
    col_copy(st, 5, m->mime, sizeof m->mime);
    m->size = (uint64_t)sqlite3_column_int64(st, 6);
    m->width = (uint32_t)sqlite3_column_int64(st, 7);
    m->height = (uint32_t)sqlite3_column_int64(st, 8);
    m->created_ts = sqlite3_column_int64(st, 9);
    return 0;
}

/* Runs a prepared query of one record: 0 with *out, SB_E_NOT_FOUND. */
static int media_query(sb_sqlite *s, sqlite3_stmt *st, sb_store_media *out)
{
    bool own;
    int rc = sb__sqlite_read_begin(s, &own);
    if (rc) return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = media_row(st, out);
    else
        rc = step == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    sqlite3_reset(st);
    sb__sqlite_read_end(s, own);
    return rc;
}

int sb__sqlite_media_put(sb_store *base, const sb_store_media *m)
{
    sb_sqlite *s = sb__sqlite(base);
    static const char sql[] =
        "INSERT INTO media(media_id, sha256, conv_id, owner, name, mime,"
        " size, width, height, created_ts)"
        " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10"
        " WHERE EXISTS(SELECT 1 FROM convs WHERE conv_id = ?3)";
    sqlite3_stmt *st = NULL;
    int rc = sb__sqlite_prepare(s, sql, sizeof sql - 1, &st);
    if (rc) return rc;
    sb__sqlite_bind_str(st, 1, m->id);
    sqlite3_bind_blob(st, 2, m->sha256, SB_SHA256_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, sb__sqlite_i64(m->conv_id));
    sb__sqlite_bind_str(st, 4, m->owner);
    sb__sqlite_bind_str(st, 5, m->name);
    sb__sqlite_bind_str(st, 6, m->mime);
    sqlite3_bind_int64(st, 7, sb__sqlite_i64(m->size));
    sqlite3_bind_int64(st, 8, m->width);
    sqlite3_bind_int64(st, 9, m->height);
    sqlite3_bind_int64(st, 10, m->created_ts);
    int step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT)
        rc = SB_E_INVALID; /* the id is taken: ids are random, never */
    else if (step != SQLITE_DONE)
        rc = SB_E_STORE;
    else
        rc = sqlite3_changes(s->db) == 1 ? 0 : SB_E_NOT_FOUND;
    sqlite3_finalize(st);
    return rc;
}

int sb__sqlite_media_find(sb_store *base, const char *id, sb_store_media *out)
{
    sb_sqlite *s = sb__sqlite(base);
    static const char sql[] =
        "SELECT " MEDIA_COLS " FROM media m WHERE m.media_id = ?1";
    sqlite3_stmt *st = NULL;
    int rc = sb__sqlite_prepare(s, sql, sizeof sql - 1, &st);
    if (rc) return rc;
    sb__sqlite_bind_str(st, 1, id);
    rc = media_query(s, st, out);
    sqlite3_finalize(st);
    return rc;
}

int sb__sqlite_media_get(sb_store *base, const char *id, const char *user_id,
                         bool all, sb_store_media *out)
{
    sb_sqlite *s = sb__sqlite(base);
    /* The uploader; else a message not recalled carries it and the user
     * is a member of that conversation (or all). */
    static const char sql[] =
        "SELECT " MEDIA_COLS " FROM media m WHERE m.media_id = ?1"
        " AND (m.owner = ?2 OR EXISTS(SELECT 1 FROM media_refs r"
        " JOIN messages g ON g.conv_id = r.conv_id AND g.seq = r.seq"
        " WHERE r.media_id = m.media_id AND g.recalled = 0"
        " AND (?3 OR EXISTS(SELECT 1 FROM members b"
        " WHERE b.conv_id = r.conv_id AND b.user_id = ?2))))";
    sqlite3_stmt *st = NULL;
    int rc = sb__sqlite_prepare(s, sql, sizeof sql - 1, &st);
    if (rc) return rc;
    sb__sqlite_bind_str(st, 1, id);
    sb__sqlite_bind_str(st, 2, user_id);
    sqlite3_bind_int(st, 3, all);
    rc = media_query(s, st, out);
    sqlite3_finalize(st);
    return rc;
}

int sb__sqlite_media_ref(sb_store *base, const char *id, uint64_t conv_id,
                         uint64_t seq)
{
    sb_sqlite *s = sb__sqlite(base);
    static const char sql[] =
        "INSERT INTO media_refs(media_id, conv_id, seq) VALUES(?1, ?2, ?3)"
        " ON CONFLICT DO NOTHING";
    sqlite3_stmt *st = NULL;
    int rc = sb__sqlite_prepare(s, sql, sizeof sql - 1, &st);
    if (rc) return rc;
    sb__sqlite_bind_str(st, 1, id);
    sqlite3_bind_int64(st, 2, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 3, sb__sqlite_i64(seq));
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SB_E_STORE;
    sqlite3_finalize(st);
    return rc;
}

/* ---- blobs ----------------------------------------------------------------
 */

/* The folder (shard) and file of blob sha256 under media_dir: 0, or
 * SB_E_STORE when they do not fit in cap bytes. */
static int blob_paths(const char *media_dir,
                      const uint8_t sha256[SB_SHA256_BYTES], char *dir,
                      char *file, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    char h[2 * SB_SHA256_BYTES + 1];
    for (size_t i = 0; i < SB_SHA256_BYTES; i++) {
        h[2 * i] = hex[sha256[i] >> 4];
        h[2 * i + 1] = hex[sha256[i] & 15];
    }
    h[2 * SB_SHA256_BYTES] = '\0';
    int n = snprintf(dir, cap, "%s/%.2s", media_dir, h);
    if (n < 0 || (size_t)n >= cap) return SB_E_STORE;
    n = snprintf(file, cap, "%s/%s", dir, h);
    return n < 0 || (size_t)n >= cap ? SB_E_STORE : 0;
}

/* fsync of a file or folder by path: 0 or -errno. */
static int sync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* Makes folder path unless it exists; *made says whether it did. */
static int dir_ensure(const char *path, bool *made)
{
    *made = mkdir(path, 0700) == 0;
    return *made || errno == EEXIST ? 0 : -errno;
}

int sb__sqlite_blob_put(sb_store *base, const uint8_t sha256[SB_SHA256_BYTES],
                        const char *path, uint64_t size)
{
    sb_sqlite *s = sb__sqlite(base);
    if (!s->media_dir) return -ENOTSUP;
    char dir[1024], file[1024];
    if (blob_paths(s->media_dir, sha256, dir, file, sizeof dir))
        return SB_E_STORE;
    struct stat st;
    if (stat(file, &st) == 0 && (uint64_t)st.st_size == size) {
        /* Stored before: the same bytes. Made young again, so that the
         * sweep of blobs no record names (sb_store_blob_gc) leaves it to
         * the record about to name it. */
        unlink(path);
        return utimensat(AT_FDCWD, file, NULL, 0) == 0 ? 0 : SB_E_STORE;
    }
    bool top, shard;
    if (dir_ensure(s->media_dir, &top) || dir_ensure(dir, &shard))
        return SB_E_STORE;
    /* The bytes reach the disk before the name does, and the name before
     * the record that points at it commits. */
    if (s->media_fsync && sync_path(path, false)) return SB_E_STORE;
    if (rename(path, file) != 0) return SB_E_STORE;
    if (s->media_fsync &&
        (sync_path(dir, true) || (shard && sync_path(s->media_dir, true))))
        return SB_E_STORE;
    return 0;
}

int sb__sqlite_blob_read(sb_store *base, const uint8_t sha256[SB_SHA256_BYTES],
                         uint64_t off, uint8_t *buf, size_t cap, size_t *got)
{
    sb_sqlite *s = sb__sqlite(base);
    if (!s->media_dir) return -ENOTSUP;
    char dir[1024], file[1024];
    if (blob_paths(s->media_dir, sha256, dir, file, sizeof dir))
        return SB_E_STORE;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? SB_E_NOT_FOUND : SB_E_STORE;
    ssize_t n;
    do
        n = pread(fd, buf, cap, (off_t)off);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0) return SB_E_STORE;
    *got = (size_t)n;
    return 0;
}

/* Whether a record names blob hex (64 hex digits). */
static int blob_named(sb_sqlite *s, const char *hex, bool *named)
{
    uint8_t sha[SB_SHA256_BYTES];
    for (int i = 0; i < SB_SHA256_BYTES; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return SB_E_INVALID;
        sha[i] = (uint8_t)v;
    }
    static const char sql[] = "SELECT 1 FROM media WHERE sha256 = ?1 LIMIT 1";
    sqlite3_stmt *st = NULL;
    int rc = sb__sqlite_prepare(s, sql, sizeof sql - 1, &st);
    if (rc) return rc;
    sqlite3_bind_blob(st, 1, sha, SB_SHA256_BYTES, SQLITE_STATIC);
    int step = sqlite3_step(st);
    *named = step == SQLITE_ROW;
    rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : SB_E_STORE;
    sqlite3_finalize(st);
    return rc;
}

static bool is_hex(const char *p, size_t n)
{
    if (strlen(p) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

int sb__sqlite_blob_gc(sb_store *base, int64_t older_than_ms, uint64_t *removed)
{
    sb_sqlite *s = sb__sqlite(base);
    if (!s->media_dir) return -ENOTSUP;
    DIR *top = opendir(s->media_dir);
    if (!top) return errno == ENOENT ? 0 : SB_E_STORE;
    int rc = 0;
    struct dirent *e;
    char dir[1024], file[1300];
    while (rc == 0 && (e = readdir(top))) {
        if (!is_hex(e->d_name, 2)) continue; /* tmp/, dot entries */
        snprintf(dir, sizeof dir, "%s/%s", s->media_dir, e->d_name);
        DIR *d = opendir(dir);
        if (!d) continue;
        struct dirent *f;
        while (rc == 0 && (f = readdir(d))) {
            if (!is_hex(f->d_name, 2 * SB_SHA256_BYTES)) continue;
            snprintf(file, sizeof file, "%s/%s", dir, f->d_name);
            struct stat st;
            if (stat(file, &st) != 0) continue;
            int64_t mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 +
                               st.st_mtim.tv_nsec / 1000000;
            if (mtime_ms >= older_than_ms) continue;
            bool named = true;
            rc = blob_named(s, f->d_name, &named);
            if (rc == 0 && !named && unlink(file) == 0) (*removed)++;
        }
        closedir(d);
    }
    closedir(top);
    return rc;
}
