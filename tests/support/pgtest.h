/* PostgreSQL for tests: the throwaway cluster that the test scripts start
 * (scripts/pgtest.sh; ctest's pg fixture), found through SB_TEST_PG_FILE
 * (a file holding its URL) or SB_TEST_PG (the URL itself). Without either,
 * tests that can run on both stores run on SQLite. */
#ifndef SB_PGTEST_H
#define SB_PGTEST_H

#include <stddef.h>
#include <stdint.h>

/* The cluster's URL (no database), or NULL when there is none. */
const char *pgtest_url(void);
/* Makes a new, empty database on the cluster and writes its URL into
 * out[cap]. Aborts the test run if it cannot. */
void pgtest_db_new(char *out, size_t cap);
/* Drops the database of url (its connections too). */
void pgtest_db_drop(const char *url);
/* The first column of the first row of sql run on url's database, on a
 * connection of its own (what a fresh reader sees). */
int64_t pgtest_int(const char *url, const char *sql);
/* Runs sql on url's database; 0 or -1. */
int pgtest_exec(const char *url, const char *sql);

/* A store of one test's own: a new database on the cluster when there is
 * one, else a SQLite file in a new folder under /tmp. */
typedef struct pgtest_tmpdb {
    char dir[64];   /* "" on PostgreSQL */
    char path[256]; /* the file, or the database's URL */
} pgtest_tmpdb;
/* Makes t's store's place. Aborts the test run if it cannot. */
void pgtest_tmpdb_make(pgtest_tmpdb *t);
/* Removes t's database, or its file (with SQLite's companions) and
 * folder. */
void pgtest_tmpdb_remove(pgtest_tmpdb *t);

#endif
