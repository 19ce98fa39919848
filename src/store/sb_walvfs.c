/* The WAL write-gathering VFS shim: see sb_walvfs.h. */
#include "sb_walvfs.h"

#include <assert.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "sb_error.h"

typedef struct wfile {
    sqlite3_file base;  /* base.pMethods: &methods, or NULL if not open */
    sqlite3_file *real; /* the default VFS's file, after this struct */
    bool wal;           /* gathers writes */
    uint8_t *buf;       /* WAL bytes [off, off + len) not yet written */
    size_t len;
    sqlite3_int64 off;
} wfile;

static sqlite3_vfs *g_real; /* the default VFS */
/* sb_walvfs_yield_every's: the thread's setting, and its writes since the
 * last yield. */
static _Thread_local unsigned t_yield_every, t_writes;
static sqlite3_vfs g_vfs;
static int g_rc = SB_E_STORE;
static uv_once_t g_once = UV_ONCE_INIT;

/* Faults for tests (SB_WALVFS_FAULTS_ENV): every write_every-th write and
 * sync_every-th sync of a WAL fails as an I/O error does (0: never). The
 * counts are the process's, over the writer's and the checkpointer's
 * threads. */
static unsigned g_write_every, g_sync_every;
static atomic_uint g_writes, g_syncs;

static bool fault(unsigned every, atomic_uint *count)
{
    return every && (atomic_fetch_add(count, 1) + 1) % every == 0;
}

#define REAL(f) (((wfile *)(f))->real)
#define RM(f) (REAL(f)->pMethods)

/* The unix VFS writes at most 128 KiB - 1 bytes per call (it masks the
 * length with 0x1ffff and calls a longer write a full disk). */
#define WRITE_CHUNK (124u << 10)

/* Writes the gathered bytes out. */
static int wal_flush(wfile *w)
{
    int rc = SQLITE_OK;
    if (w->len && fault(g_write_every, &g_writes)) {
        w->len = 0;
        return SQLITE_IOERR_WRITE;
    }
    for (size_t at = 0; at < w->len && rc == SQLITE_OK; at += WRITE_CHUNK) {
        size_t n = w->len - at < WRITE_CHUNK ? w->len - at : WRITE_CHUNK;
        rc = RM(w)->xWrite(w->real, w->buf + at, (int)n,
                           w->off + (sqlite3_int64)at);
    }
    w->len = 0;
    return rc;
}

static int x_close(sqlite3_file *f)
{
    wfile *w = (wfile *)f;
    int rc = wal_flush(w);
    int rc2 = RM(w)->xClose(w->real);
    free(w->buf);
    w->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int x_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    wfile *w = (wfile *)f;
    int rc = wal_flush(w);
    return rc != SQLITE_OK ? rc : RM(w)->xRead(w->real, p, n, off);
}

static int x_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    wfile *w = (wfile *)f;
    if (!w->wal) {
        if (t_yield_every && ++t_writes >= t_yield_every) {
            t_writes = 0;
            sched_yield();
        }
        return RM(w)->xWrite(w->real, p, n, off);
    }
    assert(n >= 0);
    size_t sz = (size_t)n;
    /* Inside what is gathered (a checksum rewritten, say): in place. */
    if (w->len && off >= w->off && off + n <= w->off + (sqlite3_int64)w->len) {
        memcpy(w->buf + (off - w->off), p, sz);
        return SQLITE_OK;
    }
    /* Right after it, with room: gather. */
    if (w->len && off == w->off + (sqlite3_int64)w->len &&
        w->len + sz <= SB_WALVFS_BUF_BYTES) {
        memcpy(w->buf + w->len, p, sz);
        w->len += sz;
        return SQLITE_OK;
    }
    int rc = wal_flush(w);
    if (rc != SQLITE_OK) return rc;
    if (!w->buf) w->buf = malloc(SB_WALVFS_BUF_BYTES);
    if (!w->buf || sz > WRITE_CHUNK) return RM(w)->xWrite(w->real, p, n, off);
    memcpy(w->buf, p, sz);
    w->len = sz;
    w->off = off;
    return SQLITE_OK;
}

static int x_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    wfile *w = (wfile *)f;
    int rc = wal_flush(w);
    return rc != SQLITE_OK ? rc : RM(w)->xTruncate(w->real, size);
}

static int x_sync(sqlite3_file *f, int flags)
{
    wfile *w = (wfile *)f;
    int rc = wal_flush(w);
    if (rc == SQLITE_OK && w->wal && fault(g_sync_every, &g_syncs))
        return SQLITE_IOERR_FSYNC; /* what was written may or may not stay */
    return rc != SQLITE_OK ? rc : RM(w)->xSync(w->real, flags);
}

static int x_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    wfile *w = (wfile *)f;
    int rc = wal_flush(w);
    return rc != SQLITE_OK ? rc : RM(w)->xFileSize(w->real, size);
}

static int x_lock(sqlite3_file *f, int lock)
{
    return RM(f)->xLock(REAL(f), lock);
}

static int x_unlock(sqlite3_file *f, int lock)
{
    return RM(f)->xUnlock(REAL(f), lock);
}

static int x_check_reserved(sqlite3_file *f, int *out)
{
    return RM(f)->xCheckReservedLock(REAL(f), out);
}

static int x_file_control(sqlite3_file *f, int op, void *arg)
{
    wfile *w = (wfile *)f;
    int rc = wal_flush(w); /* whatever it is, the file is as written */
    return rc != SQLITE_OK ? rc : RM(w)->xFileControl(w->real, op, arg);
}

static int x_sector_size(sqlite3_file *f)
{
    return RM(f)->xSectorSize(REAL(f));
}

static int x_device_chars(sqlite3_file *f)
{
    return RM(f)->xDeviceCharacteristics(REAL(f));
}

static int x_shm_map(sqlite3_file *f, int pg, int pgsz, int extend,
                     void volatile **p)
{
    return RM(f)->xShmMap(REAL(f), pg, pgsz, extend, p);
}

static int x_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return RM(f)->xShmLock(REAL(f), offset, n, flags);
}

static void x_shm_barrier(sqlite3_file *f)
{
    RM(f)->xShmBarrier(REAL(f));
}

static int x_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return RM(f)->xShmUnmap(REAL(f), delete_flag);
}

static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p)
{
    return RM(f)->xFetch(REAL(f), off, n, p);
}

static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return RM(f)->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods g_methods = {
    .iVersion = 3,
    .xClose = x_close,
    .xRead = x_read,
    .xWrite = x_write,
    .xTruncate = x_truncate,
    .xSync = x_sync,
    .xFileSize = x_file_size,
    .xLock = x_lock,
    .xUnlock = x_unlock,
    .xCheckReservedLock = x_check_reserved,
    .xFileControl = x_file_control,
    .xSectorSize = x_sector_size,
    .xDeviceCharacteristics = x_device_chars,
    .xShmMap = x_shm_map,
    .xShmLock = x_shm_lock,
    .xShmBarrier = x_shm_barrier,
    .xShmUnmap = x_shm_unmap,
    .xFetch = x_fetch,
    .xUnfetch = x_unfetch,
};

/* Where the real file's part starts in a wfile: after it, aligned for
 * anything it holds. */
static size_t wfile_head(void)
{
    return (sizeof(wfile) + 15) & ~(size_t)15;
}

static int x_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
                  int flags, int *out_flags)
{
    (void)vfs;
    wfile *w = (wfile *)f;
    memset(w, 0, sizeof *w);
    w->real = (sqlite3_file *)((char *)f + wfile_head());
    int rc = g_real->xOpen(g_real, name, w->real, flags, out_flags);
    if (rc != SQLITE_OK) return rc; /* base.pMethods stays NULL */
    /* The shim's methods stand in for the real ones, version for version. */
    if (!w->real->pMethods || w->real->pMethods->iVersion < 3) {
        if (w->real->pMethods) w->real->pMethods->xClose(w->real);
        return SQLITE_CANTOPEN;
    }
    w->wal = (flags & SQLITE_OPEN_WAL) != 0;
    w->base.pMethods = &g_methods;
    return SQLITE_OK;
}

static int x_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return g_real->xDelete(g_real, name, sync_dir);
}

static int x_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return g_real->xAccess(g_real, name, flags, out);
}

static int x_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return g_real->xFullPathname(g_real, name, n, out);
}

static void *x_dl_open(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return g_real->xDlOpen(g_real, name);
}

static void x_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
    (void)vfs;
    g_real->xDlError(g_real, n, msg);
}

static void (*x_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    (void)vfs;
    return g_real->xDlSym(g_real, h, sym);
}

static void x_dl_close(sqlite3_vfs *vfs, void *h)
{
    (void)vfs;
    g_real->xDlClose(g_real, h);
}

static int x_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return g_real->xRandomness(g_real, n, out);
}

static int x_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return g_real->xSleep(g_real, us);
}

static int x_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return g_real->xCurrentTime(g_real, out);
}

static int x_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return g_real->xGetLastError(g_real, n, out);
}

static int x_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return g_real->xCurrentTimeInt64(g_real, out);
}

static void do_register(void)
{
    const char *faults = getenv(SB_WALVFS_FAULTS_ENV);
    if (faults &&
        sscanf(faults, "write:%u,sync:%u", &g_write_every, &g_sync_every) != 2)
        g_write_every = g_sync_every = 0;
    g_real = sqlite3_vfs_find(NULL);
    if (!g_real || g_real->iVersion < 2) return;
    g_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)wfile_head() + g_real->szOsFile,
        .mxPathname = g_real->mxPathname,
        .zName = SB_WALVFS_NAME,
        .xOpen = x_open,
        .xDelete = x_delete,
        .xAccess = x_access,
        .xFullPathname = x_full_pathname,
        .xDlOpen = x_dl_open,
        .xDlError = x_dl_error,
        .xDlSym = x_dl_sym,
        .xDlClose = x_dl_close,
        .xRandomness = x_randomness,
        .xSleep = x_sleep,
        .xCurrentTime = x_current_time,
        .xGetLastError = x_last_error,
        .xCurrentTimeInt64 = x_current_time64,
    };
    if (sqlite3_vfs_register(&g_vfs, 0) == SQLITE_OK) g_rc = 0;
}

void sb_walvfs_yield_every(unsigned pages)
{
    t_yield_every = pages;
    t_writes = 0;
}

int sb_walvfs_register(void)
{
    uv_once(&g_once, do_register);
    return g_rc;
}
