/* The test helper of pgtest.h, on libpq. */
#include "pgtest.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char url_buf[256];

const char *pgtest_url(void)
{
    url_buf[0] = '\0';
    const char *u = getenv("SB_TEST_PG");
    const char *file = getenv("SB_TEST_PG_FILE");
    if (u && u[0]) {
        snprintf(url_buf, sizeof url_buf, "%s", u);
    } else if (file && file[0]) {
        FILE *f = fopen(file, "r");
        if (!f) return NULL;
        if (!fgets(url_buf, sizeof url_buf, f)) url_buf[0] = '\0';
        fclose(f);
        url_buf[strcspn(url_buf, "\r\n")] = '\0';
    }
    return url_buf[0] ? url_buf : NULL;
}

static PGconn *connect_db(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pgtest: %s: %s", url, PQerrorMessage(c));
        abort();
    }
    return c;
}

int pgtest_exec(const char *url, const char *sql)
{
    PGconn *c = connect_db(url);
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
             PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) fprintf(stderr, "pgtest: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

void pgtest_db_new(char *out, size_t cap)
{
    static unsigned n;
    const char *base = pgtest_url();
    if (!base) abort();
    char admin[300], sql[128], name[64];
    snprintf(name, sizeof name, "sbt_%ld_%u", (long)getpid(), ++n);
    snprintf(admin, sizeof admin, "%s/postgres", base);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (pgtest_exec(admin, sql) != 0) abort();
    snprintf(out, cap, "%s/%s", base, name);
}

void pgtest_db_drop(const char *url)
{
    const char *base = pgtest_url();
    const char *name = strrchr(url, '/');
    if (!base || !name) return;
    char admin[300], sql[128];
    snprintf(admin, sizeof admin, "%s/postgres", base);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)",
             name + 1);
    pgtest_exec(admin, sql);
}

int64_t pgtest_int(const char *url, const char *sql)
{
    PGconn *c = connect_db(url);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        fprintf(stderr, "pgtest: %s: %s", sql, PQerrorMessage(c));
        abort();
    }
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

void pgtest_tmpdb_make(pgtest_tmpdb *t)
{
    if (pgtest_url()) {
        t->dir[0] = '\0';
        pgtest_db_new(t->path, sizeof t->path);
        return;
    }
    snprintf(t->dir, sizeof t->dir, "/tmp/sbstore.XXXXXX");
    if (!mkdtemp(t->dir)) abort();
    snprintf(t->path, sizeof t->path, "%s/sb.db", t->dir);
}

void pgtest_tmpdb_remove(pgtest_tmpdb *t)
{
    if (pgtest_url()) {
        pgtest_db_drop(t->path);
        return;
    }
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[300];
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        snprintf(p, sizeof p, "%s%s", t->path, sfx[i]);
        unlink(p);
    }
    rmdir(t->dir);
}
