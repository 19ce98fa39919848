/* The PostgreSQL backend's uploads: media records and the messages
 * carrying them, and blobs in the database in chunks (blob_chunks), with
 * a row in blobs written last, once every chunk is: a blob that has its
 * row is whole. Two gateways storing the same bytes at once write the
 * same rows, and the conflicts do nothing. */
#include "sb_pg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sb_error.h"

/* A chunk of a blob: one row, one statement. */
#define CHUNK_BYTES (1u << 20)

#define MEDIA_COLS                                                             \
    "m.media_id, m.sha256, m.conv_id, m.owner, m.name, m.mime, m.size,"        \
    " m.width, m.height, m.created_ts"

static void text_copy(const PGresult *r, int col, char *dst, size_t cap)
{
    size_t n = (size_t)PQgetlength(r, 0, col);
    if (n >= cap) n = cap - 1;
    memcpy(dst, PQgetvalue(r, 0, col), n);
    dst[n] = '\0';
}

static int media_row(const PGresult *r, sb_store_media *m)
{
    memset(m, 0, sizeof *m);
    text_copy(r, 0, m->id, sizeof m->id);
    ProtobufCBinaryData sha = {0};
    int rc = sb__pg_get_bytes(r, 0, 1, &sha);
    if (rc) return rc;
    bool ok = sha.len == SB_SHA256_BYTES;
    if (ok) memcpy(m->sha256, sha.data, SB_SHA256_BYTES);
    free(sha.data);
    if (!ok) return SB_E_STORE;
    m->conv_id = (uint64_t)sb__pg_get_i64(r, 0, 2);
    text_copy(r, 3, m->owner, sizeof m->owner);
    text_copy(r, 4, m->name, sizeof m->name);
    text_copy(r, 5, m->mime, sizeof m->mime);
    m->size = (uint64_t)sb__pg_get_i64(r, 0, 6);
    m->width = (uint32_t)sb__pg_get_i64(r, 0, 7);
    m->height = (uint32_t)sb__pg_get_i64(r, 0, 8);
    m->created_ts = sb__pg_get_i64(r, 0, 9);
    return 0;
}

/* Runs a query of one record in a snapshot of its own (or the open
 * transaction's). */
static int media_query(sb_pg *s, const char *sql, const sb_pg_params *p,
                       sb_store_media *out)
{
    bool own;
    int rc = sb__pg_read_begin(s, &own);
    if (rc) return rc;
    PGresult *r;
    if ((rc = sb__pg_exec_sql(s, sql, p, &r)) == 0) {
        rc = PQntuples(r) == 0 ? SB_E_NOT_FOUND : media_row(r, out);
        PQclear(r);
    }
    sb__pg_read_end(s, own);
    return rc;
}

int sb__pg_media_put(sb_store *base, const sb_store_media *m)
{
    sb_pg *s = sb__pg(base);
    static const char sql[] =
        "INSERT INTO media(media_id, sha256, conv_id, owner, name, mime,"
        " size, width, height, created_ts)"
        " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10"
        " WHERE EXISTS(SELECT 1 FROM convs WHERE conv_id = $3)"
        " ON CONFLICT (media_id) DO NOTHING RETURNING 1";
    sb_pg_params p = {0};
    sb__pg_str(&p, m->id);
    sb__pg_bin(&p, m->sha256, SB_SHA256_BYTES);
    sb__pg_u64(&p, m->conv_id);
    sb__pg_str(&p, m->owner);
    sb__pg_str(&p, m->name);
    sb__pg_str(&p, m->mime);
    sb__pg_u64(&p, m->size);
    sb__pg_int(&p, m->width);
    sb__pg_int(&p, m->height);
    sb__pg_int(&p, m->created_ts);
    PGresult *r;
    int rc = sb__pg_exec_sql(s, sql, &p, &r);
    if (rc) return rc;
    rc = PQntuples(r) == 1 ? 0 : SB_E_NOT_FOUND;
    PQclear(r);
    return rc;
}

int sb__pg_media_find(sb_store *base, const char *id, sb_store_media *out)
{
    static const char sql[] =
        "SELECT " MEDIA_COLS " FROM media m WHERE m.media_id = $1";
    sb_pg_params p = {0};
    sb__pg_str(&p, id);
    return media_query(sb__pg(base), sql, &p, out);
}

int sb__pg_media_get(sb_store *base, const char *id, const char *user_id,
                     bool all, sb_store_media *out)
{
    /* The uploader; else a message not recalled carries it and the user
     * is a member of that conversation (or all). */
    static const char sql[] =
        "SELECT " MEDIA_COLS " FROM media m WHERE m.media_id = $1"
        " AND (m.owner = $2 OR EXISTS(SELECT 1 FROM media_refs r"
        " JOIN messages g ON g.conv_id = r.conv_id AND g.seq = r.seq"
        " WHERE r.media_id = m.media_id AND g.recalled = 0"
        " AND ($3::int <> 0 OR EXISTS(SELECT 1 FROM members b"
        " WHERE b.conv_id = r.conv_id AND b.user_id = $2))))";
    sb_pg_params p = {0};
    sb__pg_str(&p, id);
    sb__pg_str(&p, user_id);
    sb__pg_bool(&p, all);
    return media_query(sb__pg(base), sql, &p, out);
}

int sb__pg_media_ref(sb_store *base, const char *id, uint64_t conv_id,
                     uint64_t seq)
{
    static const char sql[] =
        "INSERT INTO media_refs(media_id, conv_id, seq) VALUES($1, $2, $3)"
        " ON CONFLICT DO NOTHING";
    sb_pg_params p = {0};
    sb__pg_str(&p, id);
    sb__pg_u64(&p, conv_id);
    sb__pg_u64(&p, seq);
    return sb__pg_exec_sql(sb__pg(base), sql, &p, NULL);
}

/* ---- blobs ----------------------------------------------------------------
 */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads the next chunk of fd into buf (up to cap bytes): its length, 0
 * at the end, -1 on an error. */
static ssize_t read_full(int fd, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) break;
        n += (size_t)k;
    }
    return (ssize_t)n;
}

/* Whether blob sha256 is stored (its row written). */
static int blob_has(sb_pg *s, const uint8_t *sha256, bool *has)
{
    sb_pg_params p = {0};
    sb__pg_bin(&p, sha256, SB_SHA256_BYTES);
    PGresult *r;
    int rc =
        sb__pg_exec_sql(s, "SELECT 1 FROM blobs WHERE sha256 = $1", &p, &r);
    *has = rc == 0 && PQntuples(r) > 0;
    PQclear(r);
    return rc;
}

/* The chunks of the file at path, then the blob's row, in the open
 * transaction. */
static int blob_write(sb_pg *s, const uint8_t *sha256, const char *path,
                      uint64_t size)
{
    static const char chunk_sql[] =
        "INSERT INTO blob_chunks(sha256, n, data) VALUES($1, $2, $3)"
        " ON CONFLICT DO NOTHING";
    static const char blob_sql[] =
        "INSERT INTO blobs(sha256, size, chunk_bytes, created_ts)"
        " VALUES($1, $2, $3, $4) ON CONFLICT DO NOTHING";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return SB_E_STORE;
    uint8_t *buf = malloc(CHUNK_BYTES);
    int rc = buf ? 0 : -ENOMEM;
    uint64_t total = 0;
    for (int n = 0; rc == 0; n++) {
        ssize_t k = read_full(fd, buf, CHUNK_BYTES);
        if (k < 0) rc = SB_E_STORE;
        if (k <= 0) break;
        sb_pg_params p = {0};
        sb__pg_bin(&p, sha256, SB_SHA256_BYTES);
        sb__pg_int(&p, n);
        sb__pg_bin(&p, buf, (size_t)k);
        rc = sb__pg_exec_sql(s, chunk_sql, &p, NULL);
        total += (uint64_t)k;
    }
    free(buf);
    close(fd);
    if (rc == 0 && total != size) rc = SB_E_STORE; /* not the file meant */
    if (rc) return rc;
    sb_pg_params p = {0};
    sb__pg_bin(&p, sha256, SB_SHA256_BYTES);
    sb__pg_u64(&p, size);
    sb__pg_int(&p, CHUNK_BYTES);
    sb__pg_int(&p, wall_ms());
    return sb__pg_exec_sql(s, blob_sql, &p, NULL);
}

int sb__pg_blob_put(sb_store *base, const uint8_t sha256[SB_SHA256_BYTES],
                    const char *path, uint64_t size)
{
    sb_pg *s = sb__pg(base);
    int rc = base->ops->begin(base);
    bool has = false;
    if (rc == 0) rc = blob_has(s, sha256, &has);
    if (rc == 0 && !has) rc = blob_write(s, sha256, path, size);
    if (rc == 0 && has) {
        /* Stored before: made young again, so that the sweep of blobs no
         * record names leaves it to the record about to name it. */
        sb_pg_params p = {0};
        sb__pg_bin(&p, sha256, SB_SHA256_BYTES);
        sb__pg_int(&p, wall_ms());
        rc = sb__pg_exec_sql(
            s, "UPDATE blobs SET created_ts = $2 WHERE sha256 = $1", &p, NULL);
    }
    if (rc == 0) rc = base->ops->commit(base);
    if (rc) {
        base->ops->rollback(base);
        /* Another gateway stored the same bytes at the same moment. */
        return rc == SB_E_RETRY ? SB_E_STORE : rc;
    }
    unlink(path);
    return 0;
}

int sb__pg_blob_read(sb_store *base, const uint8_t sha256[SB_SHA256_BYTES],
                     uint64_t off, uint8_t *buf, size_t cap, size_t *got)
{
    sb_pg *s = sb__pg(base);
    bool own;
    int rc = sb__pg_read_begin(s, &own);
    if (rc) return rc;
    PGresult *r = NULL;
    sb_pg_params p = {0};
    sb__pg_bin(&p, sha256, SB_SHA256_BYTES);
    rc = sb__pg_exec_sql(
        s, "SELECT size, chunk_bytes FROM blobs WHERE sha256 = $1", &p, &r);
    if (rc == 0 && PQntuples(r) == 0) rc = SB_E_NOT_FOUND;
    uint64_t size = 0, chunk = 0;
    if (rc == 0) {
        size = (uint64_t)sb__pg_get_i64(r, 0, 0);
        chunk = (uint64_t)sb__pg_get_i64(r, 0, 1);
        if (chunk == 0) rc = SB_E_STORE;
    }
    PQclear(r);
    if (rc == 0 && off < size) {
        /* What is wanted of the chunk that holds off (substring counts
         * from 1), never past the chunk or the blob. */
        uint64_t in = off % chunk;
        uint64_t want = cap;
        if (want > chunk - in) want = chunk - in;
        if (want > size - off) want = size - off;
        sb_pg_params q = {0};
        sb__pg_bin(&q, sha256, SB_SHA256_BYTES);
        sb__pg_u64(&q, off / chunk);
        sb__pg_u64(&q, in + 1);
        sb__pg_u64(&q, want);
        r = NULL;
        rc = sb__pg_exec_sql(s,
                             "SELECT substring(data FROM $3::int FOR $4::int)"
                             " FROM blob_chunks WHERE sha256 = $1"
                             " AND n = $2::int",
                             &q, &r);
        ProtobufCBinaryData d = {0};
        if (rc == 0 && PQntuples(r) == 0) rc = SB_E_STORE; /* a lost chunk */
        if (rc == 0) rc = sb__pg_get_bytes(r, 0, 0, &d);
        if (rc == 0 && d.len > cap) rc = SB_E_STORE;
        if (rc == 0) {
            if (d.len) memcpy(buf, d.data, d.len);
            *got = d.len;
        }
        free(d.data);
        PQclear(r);
    }
    sb__pg_read_end(s, own);
    return rc;
}

int sb__pg_blob_gc(sb_store *base, int64_t older_than_ms, uint64_t *removed)
{
    sb_pg *s = sb__pg(base);
    static const char orphans[] =
        "SELECT b.sha256 FROM blobs b WHERE b.created_ts < $1"
        " AND NOT EXISTS(SELECT 1 FROM media m WHERE m.sha256 = b.sha256)";
    char chunks_sql[sizeof orphans + 96], blobs_sql[sizeof orphans + 96];
    snprintf(chunks_sql, sizeof chunks_sql,
             "DELETE FROM blob_chunks WHERE sha256 IN (%s)", orphans);
    snprintf(blobs_sql, sizeof blobs_sql,
             "DELETE FROM blobs WHERE sha256 IN (%s)", orphans);
    sb_pg_params p = {0};
    sb__pg_int(&p, older_than_ms);
    int rc = base->ops->begin(base);
    PGresult *r = NULL;
    if (rc == 0) rc = sb__pg_exec_sql(s, chunks_sql, &p, NULL);
    if (rc == 0) rc = sb__pg_exec_sql(s, blobs_sql, &p, &r);
    if (rc == 0) *removed = strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    if (rc == 0) rc = base->ops->commit(base);
    if (rc) base->ops->rollback(base);
    return rc == SB_E_RETRY ? SB_E_STORE : rc;
}
