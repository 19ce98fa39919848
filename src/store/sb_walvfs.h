/* A VFS shim over SQLite's default one that gathers the writes made to a
 * write-ahead log between two syncs into a few large writes, and lets a
 * thread that copies pages into a database file (a checkpointer) give up
 * its core now and then.
 *
 * SQLite writes each WAL frame as two writes (a 24-byte header, then the
 * page), each a system call; a commit of fifty pages makes a hundred. With
 * the shim they collect in a buffer that goes to the file in one write when
 * SQLite syncs the WAL (every commit, with synchronous = FULL), reads it,
 * asks its size, truncates or closes it, or when the buffer is full. Other
 * connections only learn of new frames from the WAL index, which SQLite
 * updates after that sync, so they never look for bytes still in the
 * buffer. Without a sync per commit (synchronous = NORMAL) that no longer
 * holds: the shim is only for connections that sync every commit. Files
 * other than WALs pass straight through. */
#ifndef SB_WALVFS_H
#define SB_WALVFS_H

#define SB_WALVFS_NAME "sb-wal"
#define SB_WALVFS_BUF_BYTES (1u << 20) /* per WAL being written */

/* For tests (the torture run): "write:N,sync:M" in this environment
 * variable makes every Nth write and every Mth sync of a WAL fail as an
 * I/O error does (0: never), from the shim's registration on. */
#define SB_WALVFS_FAULTS_ENV "SB_WALVFS_FAULTS"

/* From now on the calling thread's page writes to database files (not
 * WALs) through the shim yield the CPU every `pages` writes (0: never, the
 * default). A checkpoint copies thousands of pages in one call; woken
 * threads on its core would otherwise wait for its time slice to end. */
void sb_walvfs_yield_every(unsigned pages);

/* Registers the shim (once per process; safe from any thread). Returns 0
 * or SB_E_STORE. Open with SB_WALVFS_NAME as the VFS to use it. */
int sb_walvfs_register(void);

#endif
