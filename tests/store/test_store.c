/* The embedded store and its threads: dense seqs, idempotency across a
 * reopen, refusals that leave no trace, monotonic cursors and receipts, SYNC
 * and HISTORY paging, group commit and ordered completion, draining on
 * stop, and a full disk (SQLite's max_page_count; and a file size limit:
 * the WAL's write failing at the commit's sync, a checkpoint failing and
 * not retried in a loop) that loses nothing.
 * Customer service: service open, routing and its times, structured parts,
 * recall and quotes on every read path, tags, the conversation list and its
 * paging, search (English, Chinese, short words, scopes), the v1 -> v2
 * migration, and requests with their messages as one through storeq. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "pgtest.h"
#include "sb_error.h"
#include "sb_sqlite_int.h" /* the schema of each version */
#include "sb_store.h"
#include "sb_storeq.h"

#define NOW 1800000000000LL

/* ---- helpers ------------------------------------------------------------- */

/* The tests run on SQLite, or on the PostgreSQL of pgtest.h when there is
 * one; the SQLite store's own mechanics (its WAL, checkpoints, page
 * limits, file format) are tested on SQLite only. */
static bool on_pg(void)
{
    return pgtest_url() != NULL;
}

#define SQLITE_ONLY()                                                          \
    do {                                                                       \
        if (on_pg()) skip();                                                   \
    } while (0)

/* A store of its own for one test: in memory, or a new database. */
static int mem_open(sb_store **s)
{
    char url[256];
    if (!on_pg()) return sb_store_open(":memory:", SB_DURABILITY_OS, s);
    pgtest_db_new(url, sizeof url);
    return sb_store_open(url, SB_DURABILITY_OS, s);
}

/* One integer from SQL run on a separate, read-only connection: what a
 * fresh reader of the file sees, bypassing the store's API. */
static int64_t raw_int(const char *path, const char *sql)
{
    if (sb_store_is_url(path)) return pgtest_int(path, sql);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void cmid_set(uint8_t out[16], uint64_t n)
{
    memset(out, 0xa5, 16);
    memcpy(out, &n, sizeof n);
}

static uint64_t conv_new_k(sb_store *s, Sbp__ConvKind kind,
                           const char *const *users, size_t n)
{
    Sbp__Role roles[SB_MEMBERS_MAX];
    for (size_t i = 0; i < n; i++)
        roles[i] = i == 0 ? SBP__ROLE__ROLE_CUSTOMER : SBP__ROLE__ROLE_AGENT;
    Sbp__Conversation *c = NULL;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(
        sb_store_conv_create(s, kind, "t", users, roles, n, NOW, &c), 0);
    assert_int_equal(sb_store_commit(s), 0);
    uint64_t id = c->conv_id;
    sbp__conversation__free_unpacked(c, NULL);
    return id;
}

static uint64_t conv_new(sb_store *s, const char *const *users, size_t n)
{
    return conv_new_k(s, SBP__CONV_KIND__CONV_DIRECT, users, n);
}

/* Appends inside the caller's transaction. */
static int append_in(sb_store *s, uint64_t conv, const char *sender, uint64_t n,
                     const char *body, uint64_t quote, Sbp__Message *ack,
                     bool *dup)
{
    uint8_t id[16];
    Sbp__Message m = SBP__MESSAGE__INIT;
    cmid_set(id, n);
    m.conv_id = conv;
    m.sender = (char *)sender;
    m.sender_device = "dev1";
    m.client_msg_id.data = id;
    m.client_msg_id.len = sizeof id;
    m.type = SBP__MSG_TYPE__MSG_TEXT;
    m.body = (char *)body;
    m.quote_seq = quote;
    m.lang = "en";
    bool d = false;
    int rc = sb_store_append(s, &m, NOW + (int64_t)n, &d);
    if (m.quote) sbp__quote__free_unpacked(m.quote, NULL);
    m.quote = NULL;
    if (ack) *ack = m;
    if (ack) ack->client_msg_id.data = NULL; /* points into this frame */
    if (dup) *dup = d;
    return rc;
}

/* Appends in a transaction of its own; rolls back on failure. */
static int append1(sb_store *s, uint64_t conv, const char *sender, uint64_t n,
                   const char *body, uint64_t quote, Sbp__Message *ack,
                   bool *dup)
{
    int rc = sb_store_begin(s);
    if (rc) return rc;
    rc = append_in(s, conv, sender, n, body, quote, ack, dup);
    if (rc == 0) rc = sb_store_commit(s);
    if (rc) sb_store_rollback(s);
    return rc;
}

static uint64_t last_seq(sb_store *s, uint64_t conv)
{
    Sbp__Conversation *c = NULL;
    assert_int_equal(sb_store_conv_get(s, conv, &c), 0);
    uint64_t v = c->last_seq;
    sbp__conversation__free_unpacked(c, NULL);
    return v;
}

/* ---- append -------------------------------------------------------------- */

static void test_append_dense(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    const char *u[] = {"alice", "bob"};
    uint64_t c[3];
    for (int i = 0; i < 3; i++)
        c[i] = conv_new(s, u, 2);
    assert_true(c[0] != c[1] && c[1] != c[2]);

    uint64_t want[3] = {0, 0, 0}, prev_id = 0, n = 0;
    assert_int_equal(sb_store_begin(s), 0);
    for (int i = 0; i < 300; i++) {
        int k = (i * 7 + i / 5) % 3;
        Sbp__Message ack;
        bool dup = true;
        assert_int_equal(append_in(s, c[k], i % 2 ? "alice" : "bob", ++n, "hi",
                                   0, &ack, &dup),
                         0);
        assert_false(dup);
        assert_int_equal(ack.seq, ++want[k]);
        assert_int_equal(ack.conv_id, c[k]);
        assert_true(ack.msg_id > prev_id); /* unique, increasing */
        prev_id = ack.msg_id;
        assert_int_equal(ack.server_ts, NOW + (int64_t)n);
    }
    assert_int_equal(sb_store_commit(s), 0);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(last_seq(s, c[k]), want[k]);
        Sbp__HistoryResp *h = NULL;
        assert_int_equal(sb_store_history(s, c[k], 0, 500, &h), 0);
        assert_int_equal(h->n_messages, want[k]);
        for (size_t i = 0; i < h->n_messages; i++) {
            Sbp__Message *m = h->messages[i];
            assert_int_equal(m->seq, i + 1);
            assert_int_equal(m->conv_id, c[k]);
            assert_string_equal(m->body, "hi");
            assert_string_equal(m->lang, "en");
            assert_string_equal(m->sender_device, "dev1");
            assert_int_equal(m->type, SBP__MSG_TYPE__MSG_TEXT);
            assert_int_equal(m->client_msg_id.len, 16);
        }
        assert_false(h->more);
        sbp__history_resp__free_unpacked(h, NULL);
    }
    sb_store_close(s);
}

static void test_append_duplicate(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_FSYNC, &s), 0);
    const char *u[] = {"alice", "bob"};
    uint64_t c1 = conv_new(s, u, 2), c2 = conv_new(s, u, 2);

    Sbp__Message a, b;
    bool dup = true;
    assert_int_equal(append1(s, c1, "alice", 1, "first", 0, &a, &dup), 0);
    assert_false(dup);
    assert_int_equal(append1(s, c1, "alice", 2, "second", 0, NULL, &dup), 0);
    int64_t rows = raw_int(t.path, "SELECT count(*) FROM messages");
    assert_int_equal(rows, 2);

    /* A retry (even with another body, time and conversation) is answered
     * with the original and stores nothing. */
    assert_int_equal(append1(s, c2, "alice", 1, "retry", 0, &b, &dup), 0);
    assert_true(dup);
    assert_int_equal(b.msg_id, a.msg_id);
    assert_int_equal(b.conv_id, c1);
    assert_int_equal(b.seq, a.seq);
    assert_int_equal(b.server_ts, a.server_ts);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), rows);
    assert_int_equal(last_seq(s, c1), 2);
    assert_int_equal(last_seq(s, c2), 0);

    /* ... across a reopen of the file too. */
    sb_store_close(s);
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_FSYNC, &s), 0);
    assert_int_equal(append1(s, c1, "alice", 1, "again", 0, &b, &dup), 0);
    assert_true(dup);
    assert_int_equal(b.msg_id, a.msg_id);
    assert_int_equal(b.seq, 1);
    assert_int_equal(b.server_ts, a.server_ts);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), rows);

    /* The same client_msg_id from another sender is another message. */
    assert_int_equal(append1(s, c1, "bob", 1, "bob's", 0, &b, &dup), 0);
    assert_false(dup);
    assert_int_equal(b.seq, 3);
    assert_true(b.msg_id != a.msg_id);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"),
                     rows + 1);

    /* Server-made messages carry no key: each is new. */
    Sbp__Message m = SBP__MESSAGE__INIT;
    m.conv_id = c1;
    m.sender = "system";
    m.type = SBP__MSG_TYPE__MSG_SYSTEM;
    m.body = "joined";
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sb_store_begin(s), 0);
        assert_int_equal(sb_store_append(s, &m, NOW, &dup), 0);
        assert_false(dup);
        assert_int_equal(sb_store_commit(s), 0);
        assert_int_equal(m.seq, 4 + (uint64_t)i);
    }
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

static void test_append_refused(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    const char *u[] = {"alice"};
    uint64_t c = conv_new(s, u, 1);
    bool dup;
    for (uint64_t i = 1; i <= 3; i++)
        assert_int_equal(append1(s, c, "alice", i, "x", 0, NULL, &dup), 0);

    assert_int_equal(append1(s, c + 100, "alice", 10, "x", 0, NULL, &dup),
                     SB_E_NOT_FOUND);
    assert_int_equal(append1(s, UINT64_MAX, "alice", 11, "x", 0, NULL, &dup),
                     SB_E_NOT_FOUND);
    /* quote_seq must name an earlier message: 4 would be this one. */
    assert_int_equal(append1(s, c, "alice", 12, "x", 4, NULL, &dup),
                     SB_E_INVALID);
    assert_int_equal(append1(s, c, "alice", 13, "x", UINT64_MAX, NULL, &dup),
                     SB_E_INVALID);
    /* Refusals inside a longer transaction leave it usable and clean. */
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(append_in(s, c, "alice", 14, "x", 99, NULL, &dup),
                     SB_E_INVALID);
    assert_int_equal(append_in(s, 777, "alice", 15, "x", 0, NULL, &dup),
                     SB_E_NOT_FOUND);
    Sbp__Message bad = SBP__MESSAGE__INIT;
    uint8_t short_id[8] = {1};
    bad.conv_id = c;
    bad.sender = "alice";
    bad.client_msg_id.data = short_id;
    bad.client_msg_id.len = sizeof short_id;
    assert_int_equal(sb_store_append(s, &bad, NOW, &dup), SB_E_INVALID);
    bad.client_msg_id.len = 0;
    bad.sender = "";
    assert_int_equal(sb_store_append(s, &bad, NOW, &dup), SB_E_INVALID);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(last_seq(s, c), 3);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), 3);

    /* No seq was consumed; a valid quote works. */
    Sbp__Message ack;
    assert_int_equal(append1(s, c, "alice", 12, "quoting", 3, &ack, &dup), 0);
    assert_int_equal(ack.seq, 4);
    Sbp__HistoryResp *h = NULL;
    assert_int_equal(sb_store_history(s, c, 0, 1, &h), 0);
    assert_int_equal(h->n_messages, 1);
    assert_int_equal(h->messages[0]->quote_seq, 3);
    sbp__history_resp__free_unpacked(h, NULL);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* ---- users, conversations, cursors, receipts ----------------------------- */

static void test_user(void **state)
{
    (void)state;
    sb_store *s = NULL;
    Sbp__Role r;
    assert_int_equal(mem_open(&s), 0);
    assert_int_equal(sb_store_user_role(s, "carol", &r), SB_E_NOT_FOUND);
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(
        sb_store_user_upsert(s, "carol", SBP__ROLE__ROLE_AGENT, "zh-CN", NOW),
        0);
    assert_int_equal(
        sb_store_user_upsert(s, "", SBP__ROLE__ROLE_AGENT, "en", NOW),
        SB_E_INVALID);
    char long_id[80];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_int_equal(
        sb_store_user_upsert(s, long_id, SBP__ROLE__ROLE_AGENT, "en", NOW),
        SB_E_INVALID);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(sb_store_user_role(s, "carol", &r), 0);
    assert_int_equal(r, SBP__ROLE__ROLE_AGENT);
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(
        sb_store_user_upsert(s, "carol", SBP__ROLE__ROLE_ADMIN, "", NOW + 1),
        0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(sb_store_user_role(s, "carol", &r), 0);
    assert_int_equal(r, SBP__ROLE__ROLE_ADMIN);
    sb_store_close(s);
}

static void test_conv_create_get(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    const char *u[] = {"cust", "agent1", "bot"};
    Sbp__Role roles[] = {SBP__ROLE__ROLE_CUSTOMER, SBP__ROLE__ROLE_AGENT,
                         SBP__ROLE__ROLE_BOT};
    Sbp__Conversation *c = NULL, *g = NULL;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_conv_create(s, SBP__CONV_KIND__CONV_SERVICE,
                                          "Refund", u, roles, 3, NOW, &c),
                     0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_true(c->conv_id > 0);
    assert_int_equal(c->kind, SBP__CONV_KIND__CONV_SERVICE);
    assert_int_equal(c->state, SBP__CONV_STATE__STATE_BOT);
    assert_string_equal(c->title, "Refund");
    assert_int_equal(c->last_seq, 0);
    assert_int_equal(c->created_ts, NOW);
    assert_int_equal(c->n_members, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(c->members[i]->user_id, u[i]);
        assert_int_equal(c->members[i]->role, roles[i]);
    }
    assert_int_equal(sb_store_conv_get(s, c->conv_id, &g), 0);
    assert_int_equal(g->n_members, 3);
    assert_string_equal(g->members[2]->user_id, "bot");
    assert_int_equal(g->state, SBP__CONV_STATE__STATE_BOT);
    sbp__conversation__free_unpacked(g, NULL);
    assert_int_equal(sb_store_conv_get(s, c->conv_id + 1, &g), SB_E_NOT_FOUND);
    assert_null(g);

    /* Refusals create nothing (the next conversation takes the next id). */
    const char *dupu[] = {"a", "b", "a"};
    const char *many[SB_MEMBERS_MAX + 1];
    Sbp__Role many_roles[SB_MEMBERS_MAX + 1];
    char names[SB_MEMBERS_MAX + 1][8];
    for (int i = 0; i <= SB_MEMBERS_MAX; i++) {
        snprintf(names[i], sizeof names[i], "u%d", i);
        many[i] = names[i];
        many_roles[i] = i ? SBP__ROLE__ROLE_AGENT : SBP__ROLE__ROLE_CUSTOMER;
    }
    Sbp__Conversation *x = NULL;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_conv_create(s, SBP__CONV_KIND__CONV_DIRECT, "",
                                          dupu, roles, 3, NOW, &x),
                     SB_E_INVALID);
    assert_int_equal(sb_store_conv_create(s, SBP__CONV_KIND__CONV_DIRECT, "", u,
                                          roles, 0, NOW, &x),
                     SB_E_INVALID);
    assert_int_equal(
        sb_store_conv_create(s, (Sbp__ConvKind)9, "", u, roles, 3, NOW, &x),
        SB_E_INVALID);
    assert_int_equal(sb_store_conv_create(s, SBP__CONV_KIND__CONV_DIRECT, "",
                                          many, many_roles, SB_MEMBERS_MAX + 1,
                                          NOW, &x),
                     SB_E_INVALID);
    assert_null(x);
    assert_int_equal(sb_store_conv_create(s, SBP__CONV_KIND__CONV_DIRECT, NULL,
                                          many, many_roles, SB_MEMBERS_MAX, NOW,
                                          &x),
                     0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(x->conv_id, c->conv_id + 1);
    assert_int_equal(x->n_members, SB_MEMBERS_MAX);
    assert_int_equal(x->state, SBP__CONV_STATE__STATE_OPEN);
    assert_string_equal(x->title, "");
    sbp__conversation__free_unpacked(x, NULL);

    /* ROLE_UNSPECIFIED takes the role the user was last seen with; two
     * customers in one conversation are refused. */
    const char *pair[] = {"cust", "cust2"}, *mixed[] = {"cust", "agent1"};
    Sbp__Role asked[] = {SBP__ROLE__ROLE_CUSTOMER, SBP__ROLE__ROLE_UNSPECIFIED};
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(
        sb_store_user_upsert(s, "cust2", SBP__ROLE__ROLE_CUSTOMER, "en", NOW),
        0);
    assert_int_equal(
        sb_store_user_upsert(s, "agent1", SBP__ROLE__ROLE_AGENT, "en", NOW), 0);
    assert_int_equal(sb_store_conv_create(s, SBP__CONV_KIND__CONV_SERVICE, "",
                                          pair, asked, 2, NOW, &x),
                     SB_E_FORBIDDEN);
    assert_null(x);
    assert_int_equal(sb_store_conv_create(s, SBP__CONV_KIND__CONV_SERVICE, "",
                                          mixed, asked, 2, NOW, &x),
                     0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(x->conv_id, c->conv_id + 2);
    assert_int_equal(x->members[1]->role, SBP__ROLE__ROLE_AGENT);
    sbp__conversation__free_unpacked(x, NULL);
    /* Never seen: refused, whatever role the user turns up with later. */
    const char *unseen[] = {"cust", "ghost"};
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_conv_create(s, SBP__CONV_KIND__CONV_SERVICE, "",
                                          unseen, asked, 2, NOW, &x),
                     SB_E_NOT_FOUND);
    assert_null(x);
    assert_int_equal(sb_store_commit(s), 0);
    sbp__conversation__free_unpacked(c, NULL);
    sb_store_close(s);
}

static void receipt_of(sb_store *s, uint64_t conv, const char *user,
                       uint64_t *read, uint64_t *delivered)
{
    Sbp__Conversation *c = NULL;
    assert_int_equal(sb_store_conv_get(s, conv, &c), 0);
    bool found = false;
    for (size_t i = 0; i < c->n_members; i++) {
        if (strcmp(c->members[i]->user_id, user) == 0) {
            *read = c->members[i]->read_seq;
            *delivered = c->members[i]->delivered_seq;
            found = true;
        }
    }
    sbp__conversation__free_unpacked(c, NULL);
    assert_true(found);
}

static int cursor_ack1(sb_store *s, const char *user, const char *dev,
                       uint64_t conv, uint64_t seq)
{
    assert_int_equal(sb_store_begin(s), 0);
    int rc = sb_store_cursor_ack(s, user, dev, conv, seq);
    assert_int_equal(sb_store_commit(s), 0);
    return rc;
}

static int read_set1(sb_store *s, const char *user, uint64_t conv, uint64_t seq)
{
    assert_int_equal(sb_store_begin(s), 0);
    int rc = sb_store_read_set(s, conv, user, seq);
    assert_int_equal(sb_store_commit(s), 0);
    return rc;
}

static void test_cursor_read_monotonic(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    const char *u[] = {"alice", "bob"};
    uint64_t c = conv_new(s, u, 2), rd = 9, dl = 9;
    bool dup;
    for (uint64_t i = 1; i <= 10; i++)
        assert_int_equal(append1(s, c, "alice", i, "m", 0, NULL, &dup), 0);

    receipt_of(s, c, "bob", &rd, &dl);
    assert_int_equal(rd, 0);
    assert_int_equal(dl, 0);

    assert_int_equal(cursor_ack1(s, "bob", "phone", c, 5), 0);
    assert_int_equal(cursor_ack1(s, "bob", "phone", c, 3), 0); /* lower */
    assert_int_equal(cursor_ack1(s, "bob", "laptop", c, 2), 0);
    receipt_of(s, c, "bob", &rd, &dl);
    assert_int_equal(dl, 5);
    assert_int_equal(rd, 0);
    assert_int_equal(raw_int(t.path, "SELECT acked_seq FROM device_cursors "
                                     "WHERE device_id = 'phone'"),
                     5);
    assert_int_equal(raw_int(t.path, "SELECT acked_seq FROM device_cursors "
                                     "WHERE device_id = 'laptop'"),
                     2);
    assert_int_equal(cursor_ack1(s, "bob", "laptop", c, 8), 0);
    receipt_of(s, c, "bob", &rd, &dl);
    assert_int_equal(dl, 8);
    assert_int_equal(cursor_ack1(s, "bob", "phone", c, 11), SB_E_INVALID);
    assert_int_equal(cursor_ack1(s, "bob", "phone", c + 1, 1), SB_E_NOT_FOUND);
    assert_int_equal(cursor_ack1(s, "bob", "", c, 1), SB_E_INVALID);
    /* A non-member (an admin reading all) keeps a device cursor only. */
    assert_int_equal(cursor_ack1(s, "root", "console", c, 4), 0);
    assert_int_equal(raw_int(t.path, "SELECT acked_seq FROM device_cursors "
                                     "WHERE user_id = 'root'"),
                     4);

    assert_int_equal(read_set1(s, "bob", c, 6), 0);
    assert_int_equal(read_set1(s, "bob", c, 4), 0); /* lower */
    receipt_of(s, c, "bob", &rd, &dl);
    assert_int_equal(rd, 6);
    assert_int_equal(dl, 8);
    assert_int_equal(read_set1(s, "bob", c, 10), 0);
    receipt_of(s, c, "bob", &rd, &dl);
    assert_int_equal(rd, 10);
    assert_int_equal(dl, 10); /* what was read was delivered */
    assert_int_equal(read_set1(s, "mallory", c, 3), SB_E_FORBIDDEN);
    assert_int_equal(read_set1(s, "bob", c + 1, 3), SB_E_NOT_FOUND);
    assert_int_equal(read_set1(s, "bob", c, 11), SB_E_INVALID);
    receipt_of(s, c, "alice", &rd, &dl);
    assert_int_equal(rd, 0);
    assert_int_equal(dl, 0);

    Sbp__Conversation *none = (Sbp__Conversation *)1;
    assert_int_equal(sb_store_conv_get(s, c + 1, &none), SB_E_NOT_FOUND);
    assert_null(none);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* ---- sync and history ---------------------------------------------------- */

#define NCONV 6

typedef struct world {
    sb_store *s;
    uint64_t conv[NCONV]; /* in conv_id order */
    uint64_t count[NCONV];
    bool alice_in[NCONV];
} world;

static size_t body_len(uint64_t conv, uint64_t seq)
{
    return (size_t)((conv * 37 + seq * 13) % 180) + 1;
}

static void body_make(char *buf, uint64_t conv, uint64_t seq)
{
    size_t n = body_len(conv, seq);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + (conv + seq) % 26);
    buf[n] = '\0';
}

/* Conversations with alice in some and bob in others, messages
 * interleaved among them, one conversation of alice's left empty. */
static void world_make(world *w)
{
    static const uint64_t sizes[NCONV] = {40, 0, 30, 65, 1, 7};
    static const bool alice[NCONV] = {true, true, false, true, true, false};
    memset(w, 0, sizeof *w);
    assert_int_equal(mem_open(&w->s), 0);
    for (int i = 0; i < NCONV; i++) {
        const char *ab[] = {"alice", "bob"}, *b[] = {"bob"};
        w->conv[i] = alice[i] ? conv_new(w->s, ab, 2) : conv_new(w->s, b, 1);
        w->alice_in[i] = alice[i];
    }
    uint64_t n = 0, left = 0;
    for (int i = 0; i < NCONV; i++)
        left += sizes[i];
    assert_int_equal(sb_store_begin(w->s), 0);
    unsigned r = 12345;
    while (left) {
        r = r * 1103515245u + 12345u;
        int k = (int)((r >> 16) % NCONV);
        if (w->count[k] == sizes[k]) continue;
        char body[200];
        body_make(body, w->conv[k], w->count[k] + 1);
        Sbp__Message ack;
        assert_int_equal(
            append_in(w->s, w->conv[k], "bob", ++n, body, 0, &ack, NULL), 0);
        assert_int_equal(ack.seq, ++w->count[k]);
        left--;
    }
    assert_int_equal(sb_store_commit(w->s), 0);
}

typedef struct client {
    Sbp__Cursor cur[16];
    size_t n;
} client;

static Sbp__Cursor *client_find(client *c, uint64_t conv)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->cur[i].conv_id == conv) return &c->cur[i];
    return NULL;
}

static void client_set(client *c, uint64_t conv, uint64_t seq)
{
    Sbp__Cursor *k = client_find(c, conv);
    if (!k) {
        assert_true(c->n < 16);
        k = &c->cur[c->n++];
        sbp__cursor__init(k);
        k->conv_id = conv;
    }
    if (seq > k->seq) k->seq = seq;
}

/* Many cursors in one batch, as the writer stores them: each with its own
 * answer, the highest of a device's winning, a non-member keeping only its
 * device cursor, and the refused ones changing nothing. */
static void test_cursor_ack_many(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    const char *u[] = {"alice", "bob"};
    uint64_t c = conv_new(s, u, 2), rd = 9, dl = 9;
    for (uint64_t i = 1; i <= 10; i++)
        assert_int_equal(append1(s, c, "alice", i, "m", 0, NULL, NULL), 0);
    sb_store_cursor_item it[] = {
        {"bob", "phone", c, 4, 99},  {"bob", "phone", c, 7, 99},
        {"bob", "phone", c, 5, 99},  {"bob", "laptop", c, 2, 99},
        {"bob", "phone", c, 11, 99}, {"bob", "phone", c + 1, 1, 99},
        {"bob", "", c, 1, 99},       {"root", "console", c, 6, 99},
        {"bob", "tablet", c, 0, 99},
    };
    size_t n = sizeof it / sizeof *it;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_cursor_ack_many(s, it, n), 0);
    assert_int_equal(sb_store_commit(s), 0);
    int want[] = {0, 0, 0, 0, SB_E_INVALID, SB_E_NOT_FOUND, SB_E_INVALID, 0, 0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(it[i].rc, want[i]);
    receipt_of(s, c, "bob", &rd, &dl);
    assert_int_equal(dl, 7);
    assert_int_equal(rd, 0);
    assert_int_equal(raw_int(t.path, "SELECT acked_seq FROM device_cursors "
                                     "WHERE device_id = 'phone'"),
                     7);
    assert_int_equal(raw_int(t.path, "SELECT acked_seq FROM device_cursors "
                                     "WHERE device_id = 'laptop'"),
                     2);
    assert_int_equal(raw_int(t.path, "SELECT acked_seq FROM device_cursors "
                                     "WHERE user_id = 'root'"),
                     6);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM device_cursors"), 3);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* Pages through SYNC as a client does (cursors advanced by what arrived, a
 * cursor added for every conversation listed) and checks that the
 * messages arrive exactly once, in (conv, seq) order, each page within its
 * limits, `more` false only once everything has come, and every visible
 * conversation listed. Starts from the client's cursors. */
static void sync_all(world *w, const char *user, bool all, client *cl,
                     uint32_t limit, size_t bytes_max)
{
    /* Expected stream: visible conversations in order, from the cursor. */
    uint64_t exp_conv[512], exp_seq[512];
    size_t n_exp = 0, got = 0;
    bool listed[NCONV] = {false}, known[NCONV] = {false};
    for (int k = 0; k < NCONV; k++) {
        bool visible = all || (strcmp(user, "alice") ? true : w->alice_in[k]);
        if (!visible) continue;
        Sbp__Cursor *c = client_find(cl, w->conv[k]);
        known[k] = c != NULL;
        for (uint64_t q = (c ? c->seq : 0) + 1; q <= w->count[k]; q++) {
            exp_conv[n_exp] = w->conv[k];
            exp_seq[n_exp++] = q;
        }
    }
    uint32_t page_max =
        limit && limit < SB_STORE_PAGE_MAX ? limit : SB_STORE_PAGE_MAX;
    for (int pages = 0;; pages++) {
        assert_true(pages < 1000);
        Sbp__Cursor *ptrs[16];
        for (size_t i = 0; i < cl->n; i++)
            ptrs[i] = &cl->cur[i];
        Sbp__SyncResp *r = NULL;
        assert_int_equal(
            sb_store_sync(w->s, user, all, ptrs, cl->n, limit, bytes_max, &r),
            0);
        assert_true(r->n_messages <= page_max);
        size_t bytes = 0;
        for (size_t i = 0; i < r->n_messages; i++) {
            Sbp__Message *m = r->messages[i];
            assert_true(got < n_exp);
            assert_int_equal(m->conv_id, exp_conv[got]);
            assert_int_equal(m->seq, exp_seq[got]);
            char body[200];
            body_make(body, m->conv_id, m->seq);
            assert_string_equal(m->body, body);
            got++;
            bytes += strlen(m->body);
            /* the page lists every conversation it has messages of */
            bool in = false;
            for (size_t j = 0; j < r->n_convs; j++)
                in = in || r->convs[j]->conv_id == m->conv_id;
            assert_true(in);
        }
        if (bytes_max && r->n_messages > 1) assert_true(bytes <= bytes_max);
        assert_int_equal(r->more, got < n_exp);
        for (size_t j = 0; j < r->n_convs; j++) {
            Sbp__Conversation *c = r->convs[j];
            int k = 0;
            while (k < NCONV && w->conv[k] != c->conv_id)
                k++;
            assert_true(k < NCONV);
            assert_true(all || strcmp(user, "alice") || w->alice_in[k]);
            assert_true(c->n_members >= 1);
            assert_int_equal(c->last_seq, w->count[k]);
            listed[k] = true;
            client_set(cl, c->conv_id, 0);
        }
        for (size_t i = 0; i < r->n_messages; i++)
            client_set(cl, r->messages[i]->conv_id, r->messages[i]->seq);
        bool more = r->more;
        sbp__sync_resp__free_unpacked(r, NULL);
        if (!more) break;
    }
    assert_int_equal(got, n_exp);
    /* Every visible conversation unknown to the cursors was listed. */
    for (int k = 0; k < NCONV; k++) {
        bool visible = all || (strcmp(user, "alice") ? true : w->alice_in[k]);
        if (visible && !known[k]) assert_true(listed[k]);
        if (!visible) assert_false(listed[k]);
    }
    /* Caught up: an empty page without more. */
    Sbp__Cursor *ptrs[16];
    for (size_t i = 0; i < cl->n; i++)
        ptrs[i] = &cl->cur[i];
    Sbp__SyncResp *r = NULL;
    assert_int_equal(
        sb_store_sync(w->s, user, all, ptrs, cl->n, limit, bytes_max, &r), 0);
    assert_int_equal(r->n_messages, 0);
    assert_false(r->more);
    assert_int_equal(r->n_convs, 0);
    sbp__sync_resp__free_unpacked(r, NULL);
}

static void test_sync_paging(void **state)
{
    (void)state;
    world w;
    world_make(&w);
    static const struct {
        uint32_t limit;
        size_t bytes_max;
    } cases[] = {{1, 0},   {2, 0},     {7, 0},   {40, 0},  {0, 0},
                 {500, 1}, {500, 300}, {5, 250}, {1000, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        client cl = {.n = 0};
        sync_all(&w, "alice", false, &cl, cases[i].limit, cases[i].bytes_max);
        client adm = {.n = 0};
        sync_all(&w, "root", true, &adm, cases[i].limit, cases[i].bytes_max);
    }

    /* Starting cursors: only what comes after them; a cursor for a
     * conversation alice is not in gives her nothing of it. */
    client cl = {.n = 0};
    client_set(&cl, w.conv[0], 10);
    client_set(&cl, w.conv[3], 64);
    client_set(&cl, w.conv[2], 5); /* bob's only */
    sync_all(&w, "alice", false, &cl, 9, 0);
    client cl2 = {.n = 0};
    client_set(&cl2, w.conv[0], 40);
    client_set(&cl2, w.conv[1], 0);
    client_set(&cl2, w.conv[3], 65);
    client_set(&cl2, w.conv[4], 1);
    sync_all(&w, "alice", false, &cl2, 3, 0);

    /* Someone in nothing gets nothing. */
    Sbp__SyncResp *r = NULL;
    assert_int_equal(sb_store_sync(w.s, "nobody", false, NULL, 0, 0, 0, &r), 0);
    assert_int_equal(r->n_messages, 0);
    assert_int_equal(r->n_convs, 0);
    assert_false(r->more);
    sbp__sync_resp__free_unpacked(r, NULL);
    sb_store_close(w.s);
}

static void test_history_paging(void **state)
{
    (void)state;
    world w;
    world_make(&w);
    uint64_t c = w.conv[3]; /* 65 messages */
    Sbp__HistoryResp *h = NULL;
    uint64_t before = 0, expect_top = 65;
    int pages = 0;
    for (;;) {
        assert_int_equal(sb_store_history(w.s, c, before, 10, &h), 0);
        assert_int_equal(h->conv_id, c);
        uint64_t n = expect_top < 10 ? expect_top : 10;
        assert_int_equal(h->n_messages, n);
        for (size_t i = 0; i < h->n_messages; i++)
            assert_int_equal(h->messages[i]->seq, expect_top - n + 1 + i);
        assert_int_equal(h->more, expect_top - n > 0);
        bool more = h->more;
        before = h->messages[0]->seq;
        expect_top -= n;
        sbp__history_resp__free_unpacked(h, NULL);
        pages++;
        if (!more) break;
    }
    assert_int_equal(pages, 7);
    assert_int_equal(expect_top, 0);

    assert_int_equal(sb_store_history(w.s, c, 1, 10, &h), 0);
    assert_int_equal(h->n_messages, 0);
    assert_false(h->more);
    sbp__history_resp__free_unpacked(h, NULL);
    assert_int_equal(sb_store_history(w.s, c, 0, 0, &h), 0); /* the cap */
    assert_int_equal(h->n_messages, 65);
    assert_false(h->more);
    sbp__history_resp__free_unpacked(h, NULL);
    assert_int_equal(sb_store_history(w.s, c, 1000, 65, &h), 0);
    assert_int_equal(h->n_messages, 65);
    assert_false(h->more);
    sbp__history_resp__free_unpacked(h, NULL);
    assert_int_equal(sb_store_history(w.s, w.conv[1], 0, 10, &h), 0);
    assert_int_equal(h->n_messages, 0);
    sbp__history_resp__free_unpacked(h, NULL);
    h = (Sbp__HistoryResp *)1;
    assert_int_equal(sb_store_history(w.s, 9999, 0, 10, &h), SB_E_NOT_FOUND);
    assert_null(h);
    sb_store_close(w.s);
}

/* ---- persistence and a full disk ----------------------------------------- */

static void test_persistence(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_FSYNC, &s), 0);
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(
        sb_store_user_upsert(s, "alice", SBP__ROLE__ROLE_CUSTOMER, "en", NOW),
        0);
    assert_int_equal(sb_store_commit(s), 0);
    const char *u[] = {"alice", "bob"};
    uint64_t c = conv_new(s, u, 2);
    assert_int_equal(sb_store_begin(s), 0);
    for (uint64_t i = 1; i <= 100; i++)
        assert_int_equal(append_in(s, c, "alice", i, "p", 0, NULL, NULL), 0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(read_set1(s, "bob", c, 50), 0);
    /* An uncommitted transaction is gone after close. */
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(append_in(s, c, "alice", 1000, "lost", 0, NULL, NULL), 0);
    sb_store_close(s);

    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_FSYNC, &s), 0);
    Sbp__Role r;
    assert_int_equal(sb_store_user_role(s, "alice", &r), 0);
    assert_int_equal(r, SBP__ROLE__ROLE_CUSTOMER);
    assert_int_equal(last_seq(s, c), 100);
    uint64_t rd = 0, dl = 0;
    receipt_of(s, c, "bob", &rd, &dl);
    assert_int_equal(rd, 50);
    Sbp__Message ack;
    bool dup;
    assert_int_equal(append1(s, c, "alice", 1000, "kept", 0, &ack, &dup), 0);
    assert_false(dup);
    assert_int_equal(ack.seq, 101);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), 101);
    sb_store_close(s);

    /* A database from a newer schema is refused, not clobbered. */
    if (on_pg()) {
        assert_int_equal(pgtest_exec(t.path, "UPDATE sb_meta SET value = 99"
                                             " WHERE key = 'schema_version'"),
                         0);
    } else {
        sqlite3 *db;
        assert_true(raw_int(t.path, "PRAGMA user_version") >= 2);
        assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
        assert_int_equal(
            sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
            SQLITE_OK);
        sqlite3_close(db);
    }
    s = (sb_store *)1;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_FSYNC, &s),
                     SB_E_STORE);
    assert_null(s);
    pgtest_tmpdb_remove(&t);
}

static void test_full_disk(void **state)
{
    (void)state;
    SQLITE_ONLY();
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_FSYNC, &s), 0);
    const char *u[] = {"alice"};
    uint64_t c = conv_new(s, u, 1);
    char big[2048];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';

    /* The disk is full: the database may not grow past its size now. */
    assert_int_equal(sb__store_max_pages(s, 1), 0);
    uint64_t ok = 0, n = 0;
    int rc = 0;
    while (rc == 0) {
        assert_true(n < 10000);
        Sbp__Message ack;
        rc = append1(s, c, "alice", ++n, big, 0, &ack, NULL);
        if (rc == 0) assert_int_equal(ack.seq, ++ok);
    }
    assert_int_equal(rc, SB_E_STORE);
    /* Several appends in one transaction: the failure takes them all. */
    assert_int_equal(sb_store_begin(s), 0);
    rc = 0;
    for (int i = 0; i < 50 && rc == 0; i++)
        rc = append_in(s, c, "alice", 5000 + (uint64_t)i, big, 0, NULL, NULL);
    if (rc == 0) rc = sb_store_commit(s);
    assert_int_equal(rc, SB_E_STORE);
    sb_store_rollback(s);
    assert_int_equal(last_seq(s, c), ok);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"),
                     (int64_t)ok);
    assert_int_equal(raw_int(t.path, "SELECT max(seq) FROM messages"),
                     (int64_t)ok);
    /* Reads still work on a full disk. */
    Sbp__HistoryResp *h = NULL;
    assert_int_equal(sb_store_history(s, c, 0, 0, &h), 0);
    assert_int_equal(h->n_messages, ok);
    sbp__history_resp__free_unpacked(h, NULL);

    /* Space freed: the same retry goes through with the next seq. */
    assert_int_equal(sb__store_max_pages(s, 0), 0);
    Sbp__Message ack;
    bool dup = true;
    assert_int_equal(append1(s, c, "alice", n, big, 0, &ack, &dup), 0);
    assert_false(dup);
    assert_int_equal(ack.seq, ok + 1);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"),
                     (int64_t)ok + 1);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* ---- storeq -------------------------------------------------------------- */

typedef struct qctx {
    sb_req **order; /* completion order */
    size_t n, cap;
    sb_storeq *q;
    sb_req *extra; /* submitted from a callback, if set */
} qctx;

static qctx *cur_ctx; /* the running test's, set by q_start */

static void on_done(sb_req *r);

/* Submits r to q with the running test's completion. */
static void qsubmit(sb_storeq *q, sb_req *r)
{
    r->done = on_done;
    r->ctx = cur_ctx;
    sb_storeq_submit(q, r);
}

static void on_done(sb_req *r)
{
    qctx *c = r->ctx;
    assert_true(c->n < c->cap);
    c->order[c->n++] = r;
    if (c->extra && r->owner == 1) {
        sb_req *x = c->extra;
        c->extra = NULL;
        qsubmit(c->q, x);
    }
}

/* Initialises loop and starts a storeq on path whose completions go to
 * ctx (room for cap of them). */
static sb_storeq *q_start(uv_loop_t *loop, const char *path, sb_durability d,
                          qctx *ctx, size_t cap)
{
    assert_int_equal(uv_loop_init(loop), 0);
    *ctx = (qctx){.cap = cap};
    ctx->order = calloc(cap, sizeof *ctx->order);
    assert_non_null(ctx->order);
    sb_storeq *q = NULL;
    assert_int_equal(sb_storeq_start(loop, path, d, &q), 0);
    ctx->q = q;
    cur_ctx = ctx;
    return q;
}

/* Stops q, lets the loop close the queue's handle, and closes the loop. */
static void q_stop(uv_loop_t *loop, sb_storeq *q)
{
    sb_storeq_stop(q);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(loop), 0);
}

typedef struct appreq {
    sb_req req;
    Sbp__Message msg;
    uint8_t id[16];
} appreq;

static void appreq_init(appreq *a, uint64_t conv, const char *sender,
                        uint64_t n, const char *body)
{
    memset(a, 0, sizeof *a);
    a->req.kind = SB_REQ_MSG_APPEND;
    sbp__message__init(&a->msg);
    cmid_set(a->id, n);
    a->msg.conv_id = conv;
    a->msg.sender = (char *)sender;
    a->msg.sender_device = "dev";
    a->msg.client_msg_id.data = a->id;
    a->msg.client_msg_id.len = 16;
    a->msg.type = SBP__MSG_TYPE__MSG_TEXT;
    a->msg.body = (char *)body;
    a->req.u.append.msg = &a->msg;
    a->req.now_ms = NOW;
}

/* Submits and runs the loop until the requests complete; the queue keeps
 * the loop alive only while requests are pending. */
static void run_all(uv_loop_t *loop, sb_storeq *q)
{
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(sb_storeq_pending(q), 0);
}

static uint64_t q_conv_create(uv_loop_t *loop, sb_storeq *q, qctx *ctx,
                              const char *u0, const char *u1)
{
    char *ids[2] = {(char *)u0, (char *)u1};
    Sbp__Role roles[2] = {SBP__ROLE__ROLE_CUSTOMER, SBP__ROLE__ROLE_AGENT};
    sb_req r;
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_CONV_CREATE;
    r.u.create.kind = SBP__CONV_KIND__CONV_SERVICE;
    r.u.create.title = "q";
    r.u.create.user_ids = ids;
    r.u.create.roles = roles;
    r.u.create.n = u1 ? 2 : 1;
    r.now_ms = NOW;
    size_t before = ctx->n;
    qsubmit(q, &r);
    run_all(loop, q);
    assert_int_equal(ctx->n, before + 1);
    assert_int_equal(r.rc, 0);
    assert_non_null(r.u.create.conv);
    uint64_t id = r.u.create.conv->conv_id;
    sbp__conversation__free_unpacked(r.u.create.conv, NULL);
    return id;
}

static void test_storeq_group_commit(void **state)
{
    (void)state;
    enum { N = 10000, NC = 10 };
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    uv_loop_t loop;
    qctx ctx;
    sb_storeq *q = q_start(&loop, t.path, SB_DURABILITY_FSYNC, &ctx, N + 100);
    uint64_t conv[NC];
    for (int i = 0; i < NC; i++)
        conv[i] = q_conv_create(&loop, q, &ctx, "cust", "agent");
    uint64_t commits0 = sb_storeq_commits(q);
    assert_int_equal(commits0, NC);

    appreq *a = calloc(N, sizeof *a);
    for (int i = 0; i < N; i++)
        appreq_init(&a[i], conv[i % NC], i % 2 ? "cust" : "agent", (uint64_t)i,
                    "hello");
    ctx.n = 0;
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < N; i++)
        qsubmit(q, &a[i].req);
    assert_int_equal(sb_storeq_pending(q), N);
    run_all(&loop, q);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    uint64_t commits = sb_storeq_commits(q) - commits0;
    print_message("storeq: %d appends in %.3f s (%.0f/s), %llu commits\n", N,
                  secs, N / secs, (unsigned long long)commits);

    assert_int_equal(ctx.n, N);
    uint64_t next[NC] = {0};
    /* Completions in submission order: all of them with one writer
     * (SQLite), each conversation's with several (PostgreSQL). */
    size_t done_before[NC] = {0};
    for (size_t k = 0; k < ctx.n; k++) {
        size_t i = (size_t)((appreq *)ctx.order[k] - a);
        assert_true(i < (size_t)N);
        if (!on_pg()) assert_int_equal(i, k);
        assert_int_equal(i / NC, done_before[i % NC]++);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].req.rc, 0);
        assert_false(a[i].req.u.append.duplicate);
        assert_int_equal(a[i].msg.seq, ++next[i % NC]);
    }
    assert_true(commits >= (N + SB_STOREQ_BATCH_MAX - 1) / SB_STOREQ_BATCH_MAX);
    assert_true(commits <= N / 10);

    /* Reads after completed writes see them. */
    sb_req h, g, sy, rc;
    memset(&h, 0, sizeof h);
    h.kind = SB_REQ_HISTORY;
    h.u.history.conv_id = conv[3];
    h.u.history.limit = 10;
    memset(&g, 0, sizeof g);
    g.kind = SB_REQ_CONV_GET;
    g.u.conv_get.conv_id = conv[9];
    memset(&sy, 0, sizeof sy);
    sy.kind = SB_REQ_SYNC;
    snprintf(sy.u.sync.user_id, sizeof sy.u.sync.user_id, "agent");
    sy.u.sync.limit = 100;
    memset(&rc, 0, sizeof rc);
    rc.kind = SB_REQ_CONV_GET;
    rc.u.conv_get.conv_id = conv[0];
    ctx.n = 0;
    qsubmit(q, &h);
    qsubmit(q, &g);
    qsubmit(q, &sy);
    qsubmit(q, &rc);
    run_all(&loop, q);
    assert_int_equal(ctx.n, 4);
    assert_int_equal(h.rc, 0);
    assert_int_equal(h.u.history.resp->n_messages, 10);
    assert_int_equal(h.u.history.resp->messages[9]->seq, N / NC);
    assert_true(h.u.history.resp->more);
    sbp__history_resp__free_unpacked(h.u.history.resp, NULL);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.u.conv_get.conv->last_seq, N / NC);
    sbp__conversation__free_unpacked(g.u.conv_get.conv, NULL);
    assert_int_equal(sy.rc, 0);
    assert_int_equal(sy.u.sync.resp->n_messages, 100);
    assert_true(sy.u.sync.resp->more);
    /* the page is all of conv[0]'s; the others are listed on later pages */
    assert_int_equal(sy.u.sync.resp->n_convs, 1);
    assert_int_equal(sy.u.sync.resp->convs[0]->conv_id, conv[0]);
    sbp__sync_resp__free_unpacked(sy.u.sync.resp, NULL);
    assert_int_equal(rc.rc, 0);
    assert_int_equal(rc.u.conv_get.conv->n_members, 2);
    sbp__conversation__free_unpacked(rc.u.conv_get.conv, NULL);

    /* Retries through the queue are duplicates with the original answer. */
    appreq d;
    appreq_init(&d, conv[0], "agent", 0, "again");
    ctx.n = 0;
    qsubmit(q, &d.req);
    run_all(&loop, q);
    assert_int_equal(d.req.rc, 0);
    assert_true(d.req.u.append.duplicate);
    assert_int_equal(d.msg.msg_id, a[0].msg.msg_id);
    assert_int_equal(d.msg.seq, 1);

    q_stop(&loop, q);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), N);
    free(a);
    free(ctx.order);
    pgtest_tmpdb_remove(&t);
}

/* Checkpoints run beside the commits, and the WAL starts over now and
 * then however steady the writes: with small thresholds, many commits
 * leave a bounded WAL, and every message is there, in order, before and
 * after a reopen. Ahead of the restarts the checkpointer syncs the
 * database file, at most once per WAL. */
static void test_storeq_checkpoints(void **state)
{
    (void)state;
    SQLITE_ONLY();
    enum { ROUNDS = 250, PER = 20, NC = 10, N = ROUNDS * PER };
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    uv_loop_t loop;
    qctx ctx;
    sb_storeq *q = q_start(&loop, t.path, SB_DURABILITY_FSYNC, &ctx, N + 100);
    sb__storeq_ckpt_limits(q, 16, 4, 64);
    uint64_t conv[NC];
    for (int i = 0; i < NC; i++)
        conv[i] = q_conv_create(&loop, q, &ctx, "cust", "agent");
    appreq *a = calloc(N, sizeof *a);
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", t.path);
    off_t wal_max = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < PER; k++) {
            int i = r * PER + k;
            appreq_init(&a[i], conv[i % NC], i % 2 ? "cust" : "agent",
                        (uint64_t)i, "a message long enough to fill pages");
            qsubmit(q, &a[i].req);
        }
        run_all(&loop, q);
        struct stat st;
        if (stat(wal, &st) == 0 && st.st_size > wal_max) wal_max = st.st_size;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(a[i].req.rc, 0);
    uint64_t ckpts = sb_storeq_checkpoints(q);
    uint64_t syncs = sb__storeq_ckpt_syncs(q);
    print_message("storeq: %llu checkpoints, %llu syncs ahead of a restart, "
                  "WAL at most %lld bytes\n",
                  (unsigned long long)ckpts, (unsigned long long)syncs,
                  (long long)wal_max);
    assert_true(ckpts >= 10);
    assert_true(syncs >= 1 && syncs < ckpts);
    /* 2 x 64 frames and one batch's worth beyond: the WAL started over. */
    assert_true(wal_max < 400 * 4096);
    q_stop(&loop, q);

    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_FSYNC, &s), 0);
    for (int c = 0; c < NC; c++) {
        Sbp__HistoryResp *h = NULL;
        assert_int_equal(sb_store_history(s, conv[c], 0, 500, &h), 0);
        assert_int_equal(h->n_messages, N / NC);
        for (size_t i = 0; i < h->n_messages; i++)
            assert_int_equal(h->messages[i]->seq, i + 1);
        sbp__history_resp__free_unpacked(h, NULL);
    }
    sb_store_close(s);
    free(a);
    free(ctx.order);
    pgtest_tmpdb_remove(&t);
}

static void test_storeq_stop_drains(void **state)
{
    (void)state;
    enum { N = 2000 };
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    uv_loop_t loop;
    qctx ctx;
    sb_storeq *q = q_start(&loop, t.path, SB_DURABILITY_OS, &ctx, N + 100);
    uint64_t c = q_conv_create(&loop, q, &ctx, "cust", "agent");
    ctx.n = 0;

    appreq *a = calloc(N, sizeof *a);
    for (int i = 0; i < N; i++)
        appreq_init(&a[i], c, "cust", (uint64_t)i, "drain me");
    sb_req reads[5], bogus, late;
    memset(reads, 0, sizeof reads);
    memset(&bogus, 0, sizeof bogus);
    memset(&late, 0, sizeof late);
    for (int i = 0; i < 5; i++) {
        reads[i].kind = SB_REQ_HISTORY;
        reads[i].u.history.conv_id = c;
    }
    bogus.kind = (sb_req_kind)99;
    late.kind = SB_REQ_CONV_GET;
    late.u.conv_get.conv_id = c;
    a[N - 1].req.owner = 1; /* its callback submits `late` */
    ctx.extra = &late;
    for (int i = 0; i < N; i++) {
        qsubmit(q, &a[i].req);
        if (i % 500 == 0) qsubmit(q, &reads[i / 500]);
    }
    qsubmit(q, &reads[4]);
    qsubmit(q, &bogus);
    assert_int_equal(sb_storeq_pending(q), N + 6);

    sb_storeq_stop(q); /* without running the loop first */
    assert_int_equal(ctx.n, N + 7);
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].req.rc, 0);
        assert_int_equal(a[i].msg.seq, (uint64_t)i + 1);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(reads[i].rc, 0);
        sbp__history_resp__free_unpacked(reads[i].u.history.resp, NULL);
    }
    assert_int_equal(bogus.rc, SB_E_INVALID);
    assert_int_equal(late.rc, SB_E_UNAVAILABLE);
    assert_null(late.u.conv_get.conv);
    /* writes completed in submission order, reads among them */
    for (size_t i = 0, w = 0; i < ctx.n; i++) {
        if (ctx.order[i]->kind != SB_REQ_MSG_APPEND) continue;
        assert_ptr_equal(ctx.order[i], &a[w++].req);
    }
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);

    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    assert_int_equal(last_seq(s, c), N);
    sb_store_close(s);
    free(a);
    free(ctx.order);
    pgtest_tmpdb_remove(&t);
}

static void test_storeq_full_disk(void **state)
{
    (void)state;
    SQLITE_ONLY();
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    uv_loop_t loop;
    qctx ctx;
    sb_storeq *q = q_start(&loop, t.path, SB_DURABILITY_FSYNC, &ctx, 100);
    uint64_t c = q_conv_create(&loop, q, &ctx, "cust", "agent");
    size_t big_len = 256 * 1024;
    char *big = malloc(big_len + 1);
    memset(big, 'B', big_len);
    big[big_len] = '\0';

    /* One batch: a small append that fits, a refused one, and one the full
     * disk rejects. Nothing commits, so every one of them fails. */
    appreq small, missing, large;
    appreq_init(&small, c, "cust", 1, "small");
    appreq_init(&missing, c + 50, "cust", 2, "nowhere");
    appreq_init(&large, c, "cust", 3, big);
    sb__storeq_max_pages(q, 1);
    sb__storeq_hold(q, true);
    uint64_t commits = sb_storeq_commits(q);
    qsubmit(q, &small.req);
    qsubmit(q, &missing.req);
    qsubmit(q, &large.req);
    sb__storeq_hold(q, false);
    ctx.n = 0;
    run_all(&loop, q);
    assert_int_equal(ctx.n, 3);
    assert_int_equal(small.req.rc, SB_E_STORE);
    assert_int_equal(small.msg.seq, 0);
    assert_int_equal(missing.req.rc, SB_E_STORE);
    assert_int_equal(large.req.rc, SB_E_STORE);
    assert_int_equal(sb_storeq_commits(q), commits);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), 0);
    assert_int_equal(raw_int(t.path, "SELECT max(last_seq) FROM convs"), 0);

    /* Alone, the small one fits (still capped): a new message, seq 1. */
    qsubmit(q, &small.req);
    run_all(&loop, q);
    assert_int_equal(small.req.rc, 0);
    assert_false(small.req.u.append.duplicate);
    assert_int_equal(small.msg.seq, 1);
    qsubmit(q, &large.req);
    run_all(&loop, q);
    assert_int_equal(large.req.rc, SB_E_STORE);

    /* Space freed: the retry succeeds with the next seq. */
    sb__storeq_max_pages(q, 0);
    qsubmit(q, &large.req);
    run_all(&loop, q);
    assert_int_equal(large.req.rc, 0);
    assert_int_equal(large.msg.seq, 2);
    qsubmit(q, &missing.req);
    run_all(&loop, q);
    assert_int_equal(missing.req.rc, SB_E_NOT_FOUND);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), 2);
    assert_int_equal(raw_int(t.path, "SELECT sum(length(body)) FROM messages"),
                     (int64_t)(big_len + 5));

    q_stop(&loop, q);
    free(big);
    free(ctx.order);
    pgtest_tmpdb_remove(&t);
}

/* ---- writes that fail in the file system -------------------------------- */

/* Files may not grow past bytes (RLIMIT_FSIZE; 0: as before). A write past
 * it fails with EFBIG as one to a full disk fails with ENOSPC: SQLite
 * calls either a failed write (SQLITE_IOERR_WRITE, SQLITE_FULL). */
static void fsize_limit(off_t bytes);

/* Teardown of the tests that limit file sizes: a failed assertion leaves
 * their test early, and the limit would fail the tests after it. */
static int fsize_reset(void **state)
{
    (void)state;
    fsize_limit(0);
    return 0;
}

static void fsize_limit(off_t bytes)
{
    static rlim_t saved;
    static bool have;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
    if (!have) {
        saved = rl.rlim_cur;
        have = true;
        signal(SIGXFSZ, SIG_IGN); /* the write fails instead */
    }
    rl.rlim_cur = bytes ? (rlim_t)bytes : saved;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static off_t file_size(const char *path, const char *sfx)
{
    char p[300];
    snprintf(p, sizeof p, "%s%s", path, sfx);
    struct stat st;
    return stat(p, &st) == 0 ? st.st_size : 0;
}

static bool raw_intact(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

/* Seqs 1..n, in order, after a reopen. */
static void assert_dense(const char *path, uint64_t conv, uint64_t n)
{
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(path, SB_DURABILITY_FSYNC, &s), 0);
    assert_int_equal(last_seq(s, conv), n);
    for (uint64_t before = 0, seen = 0; seen < n;) {
        Sbp__HistoryResp *h = NULL;
        assert_int_equal(sb_store_history(s, conv, before, 200, &h), 0);
        assert_true(h->n_messages > 0);
        for (size_t i = 0; i < h->n_messages; i++)
            assert_int_equal(h->messages[i]->seq,
                             n - seen - h->n_messages + 1 + i);
        seen += h->n_messages;
        before = h->messages[0]->seq;
        sbp__history_resp__free_unpacked(h, NULL);
    }
    sb_store_close(s);
}

/* Bodies that fill a page each and give the search index nothing to do
 * (no words), so that CPU time measures the store's own work. */
static char *page_body(void)
{
    static char body[3001];
    memset(body, ' ', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    return body;
}

/* The WAL cannot grow: the shim (sb_walvfs) holds a commit's frames until
 * the sync, so the write fails there. The batch fails whole, nothing of it
 * is kept, and the WAL's tail it left behind is written over by the next
 * commit: one that fits passes, and once the WAL can grow again the
 * refused ones are stored, seqs dense, the file intact. */
/* Whether the search index holds every message stored. */
static bool index_caught_up(const char *path)
{
    return raw_int(path, "SELECT value FROM meta WHERE key = 'fts_upto'") ==
           raw_int(path, "SELECT max(msg_id) FROM messages");
}

static void test_storeq_wal_write_fails(void **state)
{
    (void)state;
    SQLITE_ONLY();
    enum { N = 40 };
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    uv_loop_t loop;
    qctx ctx;
    sb_storeq *q = q_start(&loop, t.path, SB_DURABILITY_FSYNC, &ctx, 4 * N);
    uint64_t c = q_conv_create(&loop, q, &ctx, "cust", "agent");
    appreq first, *a = calloc(N, sizeof *a);
    appreq_init(&first, c, "cust", 1000, "before");
    qsubmit(q, &first.req);
    run_all(&loop, q);
    assert_int_equal(first.req.rc, 0);
    /* The search index takes it in now (the writer does so when idle),
     * not between the steps below: its commit would take the room left
     * for the small message. */
    for (int i = 0; i < 1000 && !index_caught_up(t.path); i++)
        usleep(10 * 1000);
    assert_true(index_caught_up(t.path));

    /* Room for a few frames more, not for N pages. */
    off_t wal = file_size(t.path, "-wal"), db = file_size(t.path, "");
    fsize_limit((wal > db ? wal : db) + 32 * 1024);
    uint64_t commits = sb_storeq_commits(q);
    sb__storeq_hold(q, true);
    for (int i = 0; i < N; i++) {
        appreq_init(&a[i], c, "cust", (uint64_t)i, page_body());
        qsubmit(q, &a[i].req);
    }
    sb__storeq_hold(q, false);
    run_all(&loop, q);
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].req.rc, SB_E_STORE);
        assert_int_equal(a[i].msg.seq, 0);
    }
    assert_int_equal(sb_storeq_commits(q), commits);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), 1);
    assert_true(raw_intact(t.path));

    appreq small;
    appreq_init(&small, c, "cust", 1001, "small");
    qsubmit(q, &small.req);
    run_all(&loop, q);
    assert_int_equal(small.req.rc, 0);
    assert_int_equal(small.msg.seq, 2);

    fsize_limit(0);
    for (int i = 0; i < N; i++)
        qsubmit(q, &a[i].req);
    run_all(&loop, q);
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].req.rc, 0);
        assert_false(a[i].req.u.append.duplicate);
        assert_int_equal(a[i].msg.seq, (uint64_t)i + 3);
    }
    assert_true(raw_intact(t.path));
    q_stop(&loop, q);
    assert_dense(t.path, c, N + 2);
    free(a);
    free(ctx.order);
    pgtest_tmpdb_remove(&t);
}

/* CPU time of the whole process, in ms. */
static int64_t cpu_ms(void)
{
    struct rusage ru;
    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* The database file cannot grow while the WAL can: a checkpoint fails and
 * leaves the WAL as it was, still due. It is not tried again in a loop
 * (a checkpointer retrying at once spins on a full disk, copying the same
 * frames), but after a pause at the next batch; once the file can grow it
 * completes, and nothing was lost. */
static void test_storeq_checkpoint_fails(void **state)
{
    (void)state;
    SQLITE_ONLY();
    enum { N0 = 300, N = 100 };
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    appreq *a = calloc(N0 + N + 1, sizeof *a);
    /* A database of N0 pages and more, the WAL empty: a stop checkpoints
     * everything. */
    uv_loop_t loop;
    qctx ctx;
    sb_storeq *q =
        q_start(&loop, t.path, SB_DURABILITY_FSYNC, &ctx, N0 + N + 10);
    uint64_t c = q_conv_create(&loop, q, &ctx, "cust", "agent");
    for (int i = 0; i < N0; i++) {
        appreq_init(&a[i], c, "cust", (uint64_t)i, page_body());
        qsubmit(q, &a[i].req);
    }
    run_all(&loop, q);
    sb_storeq_stop(q);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    off_t db = file_size(t.path, "");
    assert_true(db >= N0 * 4096);
    assert_int_equal(file_size(t.path, "-wal"), 0);

    assert_int_equal(sb_storeq_start(&loop, t.path, SB_DURABILITY_FSYNC, &q),
                     0);
    ctx.q = q;
    sb__storeq_ckpt_limits(q, 64, 16, 1 << 20);
    fsize_limit(db + 16 * 1024); /* the WAL stays far below */
    uint64_t ckpts = sb_storeq_checkpoints(q);
    for (int i = N0; i < N0 + N; i++) {
        appreq_init(&a[i], c, "cust", (uint64_t)i, page_body());
        qsubmit(q, &a[i].req);
    }
    run_all(&loop, q);
    for (int i = N0; i < N0 + N; i++)
        assert_int_equal(a[i].req.rc, 0);
    /* A checkpoint is due and fails; a second the checkpointer idles. */
    usleep(100 * 1000);
    int64_t cpu0 = cpu_ms();
    usleep(1000 * 1000);
    int64_t spent = cpu_ms() - cpu0;
    uint64_t ckpts_failing = sb_storeq_checkpoints(q);
    fsize_limit(0);
    print_message("storeq: %lld ms of CPU in 1 s with a failing checkpoint\n",
                  (long long)spent);
    /* A loop retrying it spends most of the second; an idle checkpointer
     * a few ms (up to 120 under ASan on an overloaded machine). */
    assert_true(spent < 300);
    assert_int_equal(ckpts_failing, ckpts);

    /* The file may grow: the next batch's checkpoint completes. */
    appreq_init(&a[N0 + N], c, "cust", N0 + N, "last");
    qsubmit(q, &a[N0 + N].req);
    run_all(&loop, q);
    assert_int_equal(a[N0 + N].req.rc, 0);
    for (int i = 0; i < 500 && sb_storeq_checkpoints(q) == ckpts; i++)
        usleep(10 * 1000);
    assert_true(sb_storeq_checkpoints(q) > ckpts);
    q_stop(&loop, q);
    assert_true(raw_intact(t.path));
    assert_dense(t.path, c, N0 + N + 1);
    free(a);
    free(ctx.order);
    pgtest_tmpdb_remove(&t);
}

/* Byte of a WAL index (the -shm file) that SQLite's unix VFS locks for a
 * checkpoint: its lock area starts at 120, the checkpoint lock is the
 * second. */
#define SHM_CKPT_LOCK_BYTE 121

/* A passive checkpoint that cannot start now (here another process holds
 * the checkpoint lock; under load a commit changing the WAL's index does
 * the same) is not a failure to wait a second for: the first batch after
 * the lock is gone checkpoints. (A second's pause after each would let the
 * WAL grow without bound under load.) */
static void test_storeq_checkpoint_busy(void **state)
{
    (void)state;
    SQLITE_ONLY();
    enum { N = 100 };
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    appreq *a = calloc(N + 2, sizeof *a);
    uv_loop_t loop;
    qctx ctx;
    sb_storeq *q = q_start(&loop, t.path, SB_DURABILITY_FSYNC, &ctx, N + 10);
    sb__storeq_ckpt_limits(q, 16, 4, 1 << 20); /* no restarts */

    /* Locked before the first commit, so that no checkpoint is running
     * (or counted late) when it is taken. */
    int locked[2], release[2];
    char shm[300], b = 0;
    snprintf(shm, sizeof shm, "%s-shm", t.path);
    assert_int_equal(pipe(locked), 0);
    assert_int_equal(pipe(release), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* holds the lock until told, in a process of its own */
        int fd = open(shm, O_RDWR);
        struct flock fl = {.l_type = F_WRLCK,
                           .l_whence = SEEK_SET,
                           .l_start = SHM_CKPT_LOCK_BYTE,
                           .l_len = 1};
        if (fd < 0 || fcntl(fd, F_SETLKW, &fl) < 0) _exit(1);
        if (write(locked[1], &b, 1) != 1 || read(release[0], &b, 1) < 0)
            _exit(1);
        _exit(0);
    }
    assert_int_equal(read(locked[0], &b, 1), 1);
    uint64_t c = q_conv_create(&loop, q, &ctx, "cust", "agent");

    uint64_t ckpts = sb_storeq_checkpoints(q);
    for (int i = 0; i < N; i++) {
        appreq_init(&a[i], c, "cust", (uint64_t)i, page_body());
        qsubmit(q, &a[i].req);
    }
    run_all(&loop, q);
    usleep(100 * 1000);
    assert_int_equal(sb_storeq_checkpoints(q), ckpts); /* all refused */
    assert_true(file_size(t.path, "-wal") > N * 4096);

    assert_int_equal(write(release[1], &b, 1), 1);
    int st = -1;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    usleep(20 * 1000);
    appreq_init(&a[N], c, "cust", N, "after");
    qsubmit(q, &a[N].req);
    run_all(&loop, q);
    for (int i = 0; i < 200 && sb_storeq_checkpoints(q) == ckpts; i++)
        usleep(10 * 1000);
    assert_true(sb_storeq_checkpoints(q) > ckpts);
    for (int i = 0; i <= N; i++)
        assert_int_equal(a[i].req.rc, 0);
    q_stop(&loop, q);
    assert_dense(t.path, c, N + 1);
    for (int i = 0; i < 2; i++) {
        close(locked[i]);
        close(release[i]);
    }
    free(a);
    free(ctx.order);
    pgtest_tmpdb_remove(&t);
}

static void test_storeq_start_refusals(void **state)
{
    (void)state;
    SQLITE_ONLY();
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sb_storeq *q = (sb_storeq *)1;
    assert_int_equal(
        sb_storeq_start(&loop, "/nonexistent/dir/sb.db", SB_DURABILITY_OS, &q),
        SB_E_STORE);
    assert_null(q);
    sb_storeq_stop(NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* In memory both threads share one connection: reads interleave with
 * batches and never see a write that has not committed. */
static void test_storeq_memory(void **state)
{
    (void)state;
    SQLITE_ONLY();
    enum { N = 3000 };
    uv_loop_t loop;
    qctx ctx;
    sb_storeq *q =
        q_start(&loop, ":memory:", SB_DURABILITY_OS, &ctx, 2 * N + 100);
    uint64_t c = q_conv_create(&loop, q, &ctx, "cust", "agent");
    appreq *a = calloc(N, sizeof *a);
    sb_req *g = calloc(N, sizeof *g);
    ctx.n = 0;
    for (int i = 0; i < N; i++) {
        appreq_init(&a[i], c, "cust", (uint64_t)i, "m");
        qsubmit(q, &a[i].req);
        g[i].kind = SB_REQ_CONV_GET;
        g[i].u.conv_get.conv_id = c;
        qsubmit(q, &g[i]);
    }
    run_all(&loop, q);
    assert_int_equal(ctx.n, 2 * N);
    /* Reads interleave with the batches; what they see never goes back.
     * (A read may complete just before the callbacks of a batch whose
     * commit it saw: it only ever sees what has committed.) */
    uint64_t completed = 0, seen = 0;
    for (size_t i = 0; i < ctx.n; i++) {
        sb_req *r = ctx.order[i];
        assert_int_equal(r->rc, 0);
        if (r->kind == SB_REQ_MSG_APPEND) {
            assert_int_equal(((appreq *)r)->msg.seq, ++completed);
        } else {
            uint64_t ls = r->u.conv_get.conv->last_seq;
            assert_true(ls >= seen);
            seen = ls;
            sbp__conversation__free_unpacked(r->u.conv_get.conv, NULL);
        }
    }
    assert_int_equal(completed, N);
    q_stop(&loop, q);
    free(g);
    free(a);
    free(ctx.order);
}

/* One batch of SB_STOREQ_BATCH_MAX appends (held, then released at once)
 * with reads racing it: every read sees all of the batch or none of it. */
static void batch_isolation(const char *path)
{
    enum { N = SB_STOREQ_BATCH_MAX, R = 300 };
    uv_loop_t loop;
    qctx ctx;
    sb_storeq *q = q_start(&loop, path, SB_DURABILITY_OS, &ctx, N + R + 10);
    uint64_t c = q_conv_create(&loop, q, &ctx, "cust", "agent");
    uint64_t commits = sb_storeq_commits(q);
    appreq *a = calloc(N, sizeof *a);
    sb_req *g = calloc(R, sizeof *g);
    char body[512];
    memset(body, 'r', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    sb__storeq_hold(q, true);
    for (int i = 0; i < N; i++) {
        appreq_init(&a[i], c, "cust", (uint64_t)i, body);
        qsubmit(q, &a[i].req);
    }
    sb__storeq_hold(q, false);
    for (int i = 0; i < R; i++) {
        g[i].kind = SB_REQ_CONV_GET;
        g[i].u.conv_get.conv_id = c;
        qsubmit(q, &g[i]);
    }
    run_all(&loop, q);
    assert_int_equal(sb_storeq_commits(q), commits + 1);
    size_t none = 0, all = 0;
    for (int i = 0; i < R; i++) {
        assert_int_equal(g[i].rc, 0);
        uint64_t ls = g[i].u.conv_get.conv->last_seq;
        assert_true(ls == 0 || ls == N);
        none += ls == 0;
        all += ls == N;
        sbp__conversation__free_unpacked(g[i].u.conv_get.conv, NULL);
    }
    print_message("%s: %zu reads before the batch, %zu after\n", path, none,
                  all);
    for (int i = 0; i < N; i++)
        assert_int_equal(a[i].msg.seq, i + 1);
    q_stop(&loop, q);
    free(g);
    free(a);
    free(ctx.order);
}

static void test_storeq_batch_isolation(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    batch_isolation(t.path);
    if (!on_pg()) batch_isolation(":memory:");
    pgtest_tmpdb_remove(&t);
}

/* sb_storeq_apply: each kind of request, synchronously. */
static void test_storeq_apply(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    sb_req r;
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_USER_UPSERT;
    snprintf(r.u.user.user_id, sizeof r.u.user.user_id, "ann");
    snprintf(r.u.user.locale, sizeof r.u.user.locale, "en");
    r.u.user.role = SBP__ROLE__ROLE_AGENT;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    memset(r.u.user.user_id, 'x', sizeof r.u.user.user_id); /* no NUL */
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_INVALID);

    char *ids[] = {"ann", "ben"};
    Sbp__Role roles[] = {SBP__ROLE__ROLE_AGENT, SBP__ROLE__ROLE_CUSTOMER};
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_CONV_CREATE;
    r.u.create.kind = SBP__CONV_KIND__CONV_DIRECT;
    r.u.create.user_ids = ids;
    r.u.create.roles = roles;
    r.u.create.n = 2;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    uint64_t c = r.u.create.conv->conv_id;
    sbp__conversation__free_unpacked(r.u.create.conv, NULL);

    appreq a;
    appreq_init(&a, c, "ben", 1, "hi");
    sb_storeq_apply(s, &a.req);
    assert_int_equal(a.req.rc, 0);
    assert_int_equal(a.msg.seq, 1);
    appreq_init(&a, c, "ben", 2, "hi");
    a.msg.quote_seq = 5;
    sb_storeq_apply(s, &a.req);
    assert_int_equal(a.req.rc, SB_E_INVALID);

    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_CURSOR_SET;
    snprintf(r.u.cursor.user_id, sizeof r.u.cursor.user_id, "ann");
    snprintf(r.u.cursor.device_id, sizeof r.u.cursor.device_id, "d");
    r.u.cursor.conv_id = c;
    r.u.cursor.seq = 1;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_READ_SET;
    snprintf(r.u.read.user_id, sizeof r.u.read.user_id, "zed");
    r.u.read.conv_id = c;
    r.u.read.seq = 1;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_FORBIDDEN);

    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_CONV_GET;
    r.u.conv_get.conv_id = c;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.u.conv_get.conv->n_members, 2);
    assert_string_equal(r.u.conv_get.conv->members[0]->user_id, "ann");
    assert_int_equal(r.u.conv_get.conv->members[0]->delivered_seq, 1);
    sbp__conversation__free_unpacked(r.u.conv_get.conv, NULL);

    Sbp__Cursor cur = SBP__CURSOR__INIT, *curs[] = {&cur};
    cur.conv_id = c;
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_SYNC;
    snprintf(r.u.sync.user_id, sizeof r.u.sync.user_id, "ann");
    r.u.sync.cursors = curs;
    r.u.sync.n_cursors = 1;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.u.sync.resp->n_messages, 1);
    assert_int_equal(r.u.sync.resp->n_convs, 1);
    sbp__sync_resp__free_unpacked(r.u.sync.resp, NULL);

    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_CONV_GET;
    r.u.conv_get.conv_id = c + 1;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_NOT_FOUND);
    assert_null(r.u.conv_get.conv);
    memset(&r, 0, sizeof r);
    r.kind = (sb_req_kind)0;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_INVALID);
    sb_store_close(s);
}

/* ---- customer service ------------------------------------------------------
 */

static uint64_t svc_open1(sb_store *s, const char *cust, const char *desk,
                          const char *group, int64_t now, bool *created)
{
    Sbp__Conversation *c = NULL;
    bool cr = false;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_service_open(s, cust, desk, group, now, &c, &cr),
                     0);
    assert_int_equal(sb_store_commit(s), 0);
    uint64_t id = c->conv_id;
    sbp__conversation__free_unpacked(c, NULL);
    if (created) *created = cr;
    return id;
}

static int route1(sb_store *s, uint64_t conv, Sbp__ConvState st,
                  const char *group, const char *agent, int64_t now)
{
    int rc = sb_store_begin(s);
    if (rc == 0) rc = sb_store_conv_route(s, conv, st, group, agent, now, NULL);
    if (rc == 0) rc = sb_store_commit(s);
    if (rc) sb_store_rollback(s);
    return rc;
}

static int tag1(sb_store *s, uint64_t conv, uint64_t seq, const char *add,
                const char *rem)
{
    char *a[1] = {(char *)add}, *r[1] = {(char *)rem};
    int rc = sb_store_begin(s);
    if (rc == 0)
        rc = sb_store_tag(s, conv, seq, a, add ? 1 : 0, r, rem ? 1 : 0);
    if (rc == 0) rc = sb_store_commit(s);
    if (rc) sb_store_rollback(s);
    return rc;
}

static int recall1(sb_store *s, uint64_t conv, uint64_t seq)
{
    int rc = sb_store_begin(s);
    if (rc == 0) rc = sb_store_recall(s, conv, seq);
    if (rc == 0) rc = sb_store_commit(s);
    if (rc) sb_store_rollback(s);
    return rc;
}

static uint64_t index_all(sb_store *s)
{
    uint64_t left = 1;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_index(s, 1000000, &left), 0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(left, 0);
    return left;
}

static bool has_member(const Sbp__Conversation *c, const char *user,
                       Sbp__Role role)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (strcmp(c->members[i]->user_id, user) == 0)
            return c->members[i]->role == role;
    return false;
}

static Sbp__Conversation *conv_get1(sb_store *s, uint64_t conv)
{
    Sbp__Conversation *c = NULL;
    assert_int_equal(sb_store_conv_get(s, conv, &c), 0);
    return c;
}

static Sbp__Message *msg_get1(sb_store *s, uint64_t conv, uint64_t seq)
{
    Sbp__Message *m = NULL;
    assert_int_equal(sb_store_msg_get(s, conv, seq, &m), 0);
    return m;
}

/* The bodies a search returns, "|"-joined, newest first. */
static char *search_bodies(sb_store *s, const char *user, bool all,
                           uint64_t conv, const char *q, uint32_t limit)
{
    static char out[4096];
    Sbp__SearchResp *r = NULL;
    assert_int_equal(sb_store_search(s, user, all, conv, q, limit, &r), 0);
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n_messages; i++) {
        assert_false(r->messages[i]->recalled);
        if (i > 0)
            assert_true(r->messages[i - 1]->msg_id > r->messages[i]->msg_id);
        n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", i ? "|" : "",
                              r->messages[i]->body);
    }
    sbp__search_resp__free_unpacked(r, NULL);
    return out;
}

static void test_service_open(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    bool created = false;
    uint64_t c1 = svc_open1(s, "cust", "shop", "sales", NOW, &created);
    assert_true(created);
    Sbp__Conversation *c = conv_get1(s, c1);
    assert_int_equal(c->kind, SBP__CONV_KIND__CONV_SERVICE);
    assert_int_equal(c->state, SBP__CONV_STATE__STATE_BOT);
    assert_string_equal(c->desk, "shop");
    assert_string_equal(c->group, "sales");
    assert_string_equal(c->customer, "cust");
    assert_string_equal(c->agent, "");
    assert_int_equal(c->created_ts, NOW);
    assert_int_equal(c->updated_ts, NOW);
    assert_int_equal(c->n_members, 1);
    assert_true(has_member(c, "cust", SBP__ROLE__ROLE_CUSTOMER));
    assert_int_equal(c->first_response_ms, 0);
    assert_int_equal(c->resolution_ms, 0);
    sbp__conversation__free_unpacked(c, NULL);

    /* Open again: the same one, whatever its state short of CLOSED. */
    assert_int_equal(svc_open1(s, "cust", "shop", "other", NOW + 5, &created),
                     c1);
    assert_false(created);
    assert_int_equal(
        route1(s, c1, SBP__CONV_STATE__STATE_QUEUED, "sales", "", NOW + 6), 0);
    assert_int_equal(svc_open1(s, "cust", "shop", "", NOW + 7, &created), c1);
    assert_false(created);
    /* Another desk, another customer: others. */
    uint64_t c2 = svc_open1(s, "cust", "bank", "", NOW, &created);
    assert_true(created && c2 != c1);
    uint64_t c3 = svc_open1(s, "cust2", "shop", "", NOW, &created);
    assert_true(created && c3 != c1 && c3 != c2);
    /* After CLOSED, a new conversation. */
    assert_int_equal(
        route1(s, c1, SBP__CONV_STATE__STATE_CLOSED, "sales", "", NOW + 8), 0);
    uint64_t c4 = svc_open1(s, "cust", "shop", "sales", NOW + 9, &created);
    assert_true(created);
    assert_true(c4 != c1 && c4 != c2 && c4 != c3);
    assert_int_equal(svc_open1(s, "cust", "shop", "", NOW + 10, &created), c4);
    assert_false(created);

    /* Refusals write nothing. */
    Sbp__Conversation *x = (Sbp__Conversation *)1;
    char longname[80];
    memset(longname, 'd', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(
        sb_store_service_open(s, "", "shop", "", NOW, &x, &created),
        SB_E_INVALID);
    assert_null(x);
    assert_int_equal(
        sb_store_service_open(s, "cust9", longname, "", NOW, &x, &created),
        SB_E_INVALID);
    assert_int_equal(
        sb_store_service_open(s, "cust9", "", "\xff", NOW, &x, &created),
        SB_E_INVALID);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(svc_open1(s, "cust9", "", "", NOW, &created), c4 + 1);
    sb_store_close(s);
}

static int64_t conv_col(sb_store *s, const char *path, uint64_t conv,
                        const char *col)
{
    (void)s;
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT %s FROM convs WHERE conv_id = %llu", col,
             (unsigned long long)conv);
    return raw_int(path, sql);
}

static void test_route(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    uint64_t c = svc_open1(s, "cust", "shop", "", NOW, NULL);
    assert_int_equal(
        route1(s, c, SBP__CONV_STATE__STATE_QUEUED, "sales", "", NOW + 10), 0);
    Sbp__Conversation *g = conv_get1(s, c);
    assert_int_equal(g->state, SBP__CONV_STATE__STATE_QUEUED);
    assert_string_equal(g->group, "sales");
    assert_string_equal(g->agent, "");
    assert_int_equal(g->updated_ts, NOW + 10);
    sbp__conversation__free_unpacked(g, NULL);
    assert_int_equal(conv_col(s, t.path, c, "queued_ts"), NOW + 10);
    /* Queued again (another group): still queued since the first time. */
    assert_int_equal(
        route1(s, c, SBP__CONV_STATE__STATE_QUEUED, "vip", "", NOW + 15), 0);
    assert_int_equal(conv_col(s, t.path, c, "queued_ts"), NOW + 10);

    /* Assigned to a: a joins as an agent. */
    Sbp__Conversation *out = NULL;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_conv_route(s, c, SBP__CONV_STATE__STATE_ASSIGNED,
                                         "vip", "a", NOW + 20, &out),
                     0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(out->state, SBP__CONV_STATE__STATE_ASSIGNED);
    assert_string_equal(out->agent, "a");
    assert_string_equal(out->group, "vip");
    assert_true(has_member(out, "a", SBP__ROLE__ROLE_AGENT));
    assert_true(has_member(out, "cust", SBP__ROLE__ROLE_CUSTOMER));
    assert_int_equal(out->n_members, 2);
    sbp__conversation__free_unpacked(out, NULL);
    assert_int_equal(conv_col(s, t.path, c, "assigned_ts"), NOW + 20);

    /* a answers: the first response is a's first message since assigned */
    Sbp__Message ack; /* append1 stores n at NOW + n */
    assert_int_equal(append1(s, c, "a", 1, "before assigned", 0, &ack, NULL),
                     0);
    assert_int_equal(append1(s, c, "cust", 21, "hello?", 0, &ack, NULL), 0);
    assert_int_equal(
        append1(s, c, "a", 22, "hi, how can I help", 0, &ack, NULL), 0);
    assert_int_equal(append1(s, c, "a", 23, "still there?", 0, NULL, NULL), 0);
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_first_response(s, c, 0), 0);
    assert_int_equal(sb_store_first_response(s, c, NOW + 999), 0); /* kept */
    assert_int_equal(sb_store_first_response(s, c + 100, NOW), SB_E_NOT_FOUND);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(conv_col(s, t.path, c, "first_response_ts"), NOW + 22);

    /* Transferred to b: a leaves, b joins; assigned_ts moves. */
    assert_int_equal(
        route1(s, c, SBP__CONV_STATE__STATE_ASSIGNED, "vip", "b", NOW + 30), 0);
    g = conv_get1(s, c);
    assert_string_equal(g->agent, "b");
    assert_false(has_member(g, "a", SBP__ROLE__ROLE_AGENT));
    assert_true(has_member(g, "b", SBP__ROLE__ROLE_AGENT));
    assert_int_equal(g->n_members, 2);
    assert_int_equal(g->first_response_ms, 22);
    assert_int_equal(g->resolution_ms, 0);
    sbp__conversation__free_unpacked(g, NULL);
    assert_int_equal(conv_col(s, t.path, c, "assigned_ts"), NOW + 30);
    /* a may no longer read receipts of its own: not a member. */
    assert_int_equal(read_set1(s, "a", c, 1), SB_E_FORBIDDEN);
    assert_int_equal(read_set1(s, "b", c, 1), 0);

    /* Closed (b stays on it): closed_ts and resolution. */
    assert_int_equal(
        route1(s, c, SBP__CONV_STATE__STATE_CLOSED, "vip", "b", NOW + 100), 0);
    g = conv_get1(s, c);
    assert_int_equal(g->state, SBP__CONV_STATE__STATE_CLOSED);
    assert_int_equal(g->resolution_ms, 100);
    assert_int_equal(g->first_response_ms, 22);
    assert_true(has_member(g, "b", SBP__ROLE__ROLE_AGENT));
    sbp__conversation__free_unpacked(g, NULL);
    /* Closed again: the first close counts. Reopened: no longer closed. */
    assert_int_equal(
        route1(s, c, SBP__CONV_STATE__STATE_CLOSED, "vip", "b", NOW + 200), 0);
    assert_int_equal(conv_col(s, t.path, c, "closed_ts"), NOW + 100);
    assert_int_equal(
        route1(s, c, SBP__CONV_STATE__STATE_BOT, "vip", "", NOW + 300), 0);
    g = conv_get1(s, c);
    assert_int_equal(g->resolution_ms, 0);
    assert_string_equal(g->agent, "");
    assert_int_equal(g->n_members, 1); /* b left with the assignment */
    sbp__conversation__free_unpacked(g, NULL);
    assert_int_equal(conv_col(s, t.path, c, "closed_ts"), 0);

    /* Refusals. */
    assert_int_equal(
        route1(s, c + 50, SBP__CONV_STATE__STATE_QUEUED, "", "", NOW),
        SB_E_NOT_FOUND);
    assert_int_equal(
        route1(s, c, SBP__CONV_STATE__STATE_UNSPECIFIED, "", "", NOW),
        SB_E_INVALID);
    assert_int_equal(route1(s, c, (Sbp__ConvState)9, "", "", NOW),
                     SB_E_INVALID);
    char longid[80];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(
        route1(s, c, SBP__CONV_STATE__STATE_ASSIGNED, "", longid, NOW),
        SB_E_INVALID);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* Appends a message with structured parts: an event, quick replies, a
 * card and media (whatever is non-NULL). */
static uint64_t append_parts(sb_store *s, uint64_t conv, const char *sender,
                             Sbp__MsgType type, const char *body, bool event,
                             bool quick, bool card, bool media)
{
    Sbp__Message m = SBP__MESSAGE__INIT;
    Sbp__Event ev = SBP__EVENT__INIT;
    Sbp__QuickReply q1 = SBP__QUICK_REPLY__INIT, q2 = SBP__QUICK_REPLY__INIT;
    Sbp__QuickReply *qs[2] = {&q1, &q2};
    Sbp__Card cd = SBP__CARD__INIT;
    Sbp__Media md = SBP__MEDIA__INIT;
    char *args[2] = {"a1", "42"};
    m.conv_id = conv;
    m.sender = (char *)sender;
    m.type = type;
    m.body = (char *)body;
    if (event) {
        ev.key = "conv.assigned";
        ev.args = args;
        ev.n_args = 2;
        m.event = &ev;
    }
    if (quick) {
        q1.title = "Yes";
        q1.payload = "yes";
        q2.title = "Talk to a human";
        q2.payload = "human";
        m.quick_replies = qs;
        m.n_quick_replies = 2;
    }
    if (card) {
        cd.title = "Blue shoes";
        cd.price = "49.90";
        cd.link = "https://shop.example/p/1";
        m.card = &cd;
    }
    if (media) {
        md.url = "https://cdn.example/x.png";
        md.size = 123456;
        md.mime = "image/png";
        md.width = 640;
        md.height = 480;
        m.media = &md;
    }
    bool dup;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_append(s, &m, NOW, &dup), 0);
    assert_int_equal(sb_store_commit(s), 0);
    return m.seq;
}

static void test_structured_parts(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    const char *u[] = {"cust", "agent"};
    uint64_t c = conv_new(s, u, 2);
    uint64_t ev = append_parts(s, c, "bot", SBP__MSG_TYPE__MSG_EVENT,
                               "a1 joined", true, false, false, false);
    uint64_t robot = append_parts(s, c, "bot", SBP__MSG_TYPE__MSG_ROBOT,
                                  "Anything else?", false, true, false, false);
    uint64_t card = append_parts(s, c, "agent", SBP__MSG_TYPE__MSG_CARD, "",
                                 false, false, true, true);
    uint64_t plain = append_parts(s, c, "cust", SBP__MSG_TYPE__MSG_TEXT, "hi",
                                  false, false, false, false);

    Sbp__HistoryResp *h = NULL;
    assert_int_equal(sb_store_history(s, c, 0, 0, &h), 0);
    assert_int_equal(h->n_messages, 4);
    Sbp__Message *m = h->messages[ev - 1];
    assert_non_null(m->event);
    assert_string_equal(m->event->key, "conv.assigned");
    assert_int_equal(m->event->n_args, 2);
    assert_string_equal(m->event->args[1], "42");
    assert_null(m->card);
    m = h->messages[robot - 1];
    assert_int_equal(m->n_quick_replies, 2);
    assert_string_equal(m->quick_replies[1]->title, "Talk to a human");
    assert_string_equal(m->quick_replies[1]->payload, "human");
    assert_null(m->event);
    m = h->messages[card - 1];
    assert_non_null(m->card);
    assert_string_equal(m->card->price, "49.90");
    assert_non_null(m->media);
    assert_int_equal(m->media->size, 123456);
    assert_int_equal(m->media->height, 480);
    m = h->messages[plain - 1];
    assert_null(m->event);
    assert_null(m->card);
    assert_null(m->media);
    assert_int_equal(m->n_quick_replies, 0);
    assert_int_equal(m->n_tags, 0);
    assert_null(m->quote);
    sbp__history_resp__free_unpacked(h, NULL);

    /* The same through SYNC and msg_get. */
    Sbp__SyncResp *r = NULL;
    assert_int_equal(sb_store_sync(s, "cust", false, NULL, 0, 0, 0, &r), 0);
    assert_int_equal(r->n_messages, 4);
    assert_int_equal(r->messages[robot - 1]->n_quick_replies, 2);
    assert_non_null(r->messages[card - 1]->media);
    sbp__sync_resp__free_unpacked(r, NULL);
    m = msg_get1(s, c, ev);
    assert_string_equal(m->event->args[0], "a1");
    sbp__message__free_unpacked(m, NULL);
    assert_int_equal(sb_store_msg_get(s, c, 99, &m), SB_E_NOT_FOUND);
    assert_null(m);
    assert_int_equal(raw_int(":memory:", "SELECT 1"), 1);
    sb_store_close(s);
}

static void test_recall_quote(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    const char *u[] = {"cust", "agent"};
    uint64_t c = conv_new(s, u, 2);
    /* A long Chinese body: 100 characters of 3 bytes; the quote keeps 66
     * whole characters (198 bytes), never half of one. */
    char zh[301];
    for (int i = 0; i < 100; i++)
        memcpy(zh + 3 * i, "\xe9\x80\x80", 3); /* 退 */
    zh[300] = '\0';
    assert_int_equal(append1(s, c, "cust", 1, zh, 0, NULL, NULL), 0);
    assert_int_equal(
        append1(s, c, "cust", 2, "my secret refund code", 0, NULL, NULL), 0);
    assert_int_equal(append1(s, c, "agent", 3, "got it", 1, NULL, NULL), 0);
    assert_int_equal(
        append1(s, c, "agent", 4, "about that code", 2, NULL, NULL), 0);
    uint64_t cardseq = append_parts(s, c, "agent", SBP__MSG_TYPE__MSG_CARD,
                                    "card refund", false, false, true, true);

    Sbp__Message *m = msg_get1(s, c, 3);
    assert_non_null(m->quote);
    assert_int_equal(m->quote->seq, 1);
    assert_string_equal(m->quote->sender, "cust");
    assert_int_equal(m->quote->type, SBP__MSG_TYPE__MSG_TEXT);
    assert_int_equal(strlen(m->quote->body), 198);
    assert_memory_equal(m->quote->body, zh, 198);
    assert_false(m->quote->recalled);
    sbp__message__free_unpacked(m, NULL);
    m = msg_get1(s, c, 4);
    assert_string_equal(m->quote->body, "my secret refund code");
    sbp__message__free_unpacked(m, NULL);
    assert_string_equal(search_bodies(s, "cust", false, 0, "refund", 0),
                        "card refund|my secret refund code");

    /* Recall seq 2 (idempotent) and the card. */
    assert_int_equal(recall1(s, c, 2), 0);
    assert_int_equal(recall1(s, c, 2), 0);
    assert_int_equal(recall1(s, c, cardseq), 0);
    assert_int_equal(recall1(s, c, 77), SB_E_NOT_FOUND);
    assert_int_equal(recall1(s, c + 9, 1), SB_E_NOT_FOUND);
    m = msg_get1(s, c, 2);
    assert_true(m->recalled);
    assert_string_equal(m->body, "");
    sbp__message__free_unpacked(m, NULL);
    m = msg_get1(s, c, cardseq);
    assert_true(m->recalled);
    assert_null(m->card);
    assert_null(m->media);
    sbp__message__free_unpacked(m, NULL);
    /* The quote of a recalled message says so and shows nothing of it. */
    m = msg_get1(s, c, 4);
    assert_true(m->quote->recalled);
    assert_string_equal(m->quote->body, "");
    assert_string_equal(m->quote->sender, "cust");
    sbp__message__free_unpacked(m, NULL);
    /* Every read path. */
    Sbp__HistoryResp *h = NULL;
    assert_int_equal(sb_store_history(s, c, 0, 0, &h), 0);
    assert_true(h->messages[1]->recalled);
    assert_string_equal(h->messages[1]->body, "");
    assert_true(h->messages[3]->quote->recalled);
    assert_int_equal(strlen(h->messages[2]->quote->body), 198);
    sbp__history_resp__free_unpacked(h, NULL);
    Sbp__SyncResp *r = NULL;
    assert_int_equal(sb_store_sync(s, "agent", false, NULL, 0, 0, 0, &r), 0);
    assert_string_equal(r->messages[1]->body, "");
    assert_true(r->messages[1]->recalled);
    assert_null(r->messages[cardseq - 1]->card);
    assert_true(r->messages[3]->quote->recalled);
    sbp__sync_resp__free_unpacked(r, NULL);
    Sbp__ConvListResp *l = NULL;
    assert_int_equal(
        sb_store_conv_list(s, "cust", false, 0, "", NULL, 0, "", 0, &l), 0);
    assert_int_equal(l->n_convs, 1);
    assert_true(l->convs[0]->last_message->recalled);
    assert_int_equal(l->convs[0]->last_message->seq, cardseq);
    assert_null(l->convs[0]->last_message->card);
    sbp__conv_list_resp__free_unpacked(l, NULL);
    /* Search finds it no more, by scan or through the index. */
    assert_string_equal(search_bodies(s, "cust", false, 0, "refund", 0), "");
    assert_string_equal(search_bodies(s, "cust", false, 0, "about", 0),
                        "about that code");
    index_all(s);
    assert_string_equal(search_bodies(s, "cust", false, 0, "refund", 0), "");
    assert_string_equal(search_bodies(s, "cust", false, 0, "code", 0),
                        "about that code");
    /* Recalled after indexing: it leaves the index too. */
    assert_int_equal(recall1(s, c, 4), 0);
    assert_string_equal(search_bodies(s, "cust", false, 0, "code", 0), "");
    assert_string_equal(search_bodies(s, "cust", true, 0, "that", 0), "");

    /* An append comes back with its quote, as a read would give it. */
    uint8_t id[16];
    Sbp__Message q = SBP__MESSAGE__INIT;
    bool dup;
    cmid_set(id, 9);
    q.conv_id = c;
    q.sender = "agent";
    q.client_msg_id.data = id;
    q.client_msg_id.len = 16;
    q.body = "quoting";
    for (uint64_t quoted = 1; quoted <= 2; quoted++) {
        q.quote_seq = quoted;
        id[15] = (uint8_t)quoted;
        assert_int_equal(sb_store_begin(s), 0);
        assert_int_equal(sb_store_append(s, &q, NOW, &dup), 0);
        assert_int_equal(sb_store_commit(s), 0);
        assert_non_null(q.quote);
        assert_int_equal(q.quote->seq, quoted);
        assert_string_equal(q.quote->sender, "cust");
        assert_int_equal(q.quote->recalled, quoted == 2);
        assert_int_equal(strlen(q.quote->body), quoted == 2 ? 0 : 198);
        sbp__quote__free_unpacked(q.quote, NULL);
        q.quote = NULL;
    }
    sb_store_close(s);
}

static void test_tags(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    const char *u[] = {"cust", "agent"};
    uint64_t c = conv_new(s, u, 2);
    assert_int_equal(append1(s, c, "cust", 1, "one", 0, NULL, NULL), 0);
    assert_int_equal(append1(s, c, "cust", 2, "two", 1, NULL, NULL), 0);

    assert_int_equal(tag1(s, c, 0, "vip", NULL), 0);
    assert_int_equal(tag1(s, c, 0, "refund", NULL), 0);
    assert_int_equal(tag1(s, c, 0, "vip", NULL), 0); /* already there */
    assert_int_equal(tag1(s, c, 0, "\xe9\x80\x80\xe6\xac\xbe", NULL), 0);
    Sbp__Conversation *g = conv_get1(s, c);
    assert_int_equal(g->n_tags, 3);
    assert_string_equal(g->tags[0], "refund"); /* sorted */
    assert_string_equal(g->tags[1], "vip");
    assert_string_equal(g->tags[2], "\xe9\x80\x80\xe6\xac\xbe");
    sbp__conversation__free_unpacked(g, NULL);
    assert_int_equal(tag1(s, c, 0, NULL, "refund"), 0);
    assert_int_equal(tag1(s, c, 0, NULL, "never-there"), 0);
    g = conv_get1(s, c);
    assert_int_equal(g->n_tags, 2);
    sbp__conversation__free_unpacked(g, NULL);

    /* A message's tags, on every read of it; the message quoting it does
     * not inherit them. */
    assert_int_equal(tag1(s, c, 1, "important", NULL), 0);
    assert_int_equal(tag1(s, c, 1, "follow-up", "x"), 0);
    Sbp__Message *m = msg_get1(s, c, 1);
    assert_int_equal(m->n_tags, 2);
    assert_string_equal(m->tags[0], "follow-up");
    assert_string_equal(m->tags[1], "important");
    sbp__message__free_unpacked(m, NULL);
    m = msg_get1(s, c, 2);
    assert_int_equal(m->n_tags, 0);
    sbp__message__free_unpacked(m, NULL);
    assert_int_equal(raw_int(t.path, "SELECT sum(tagged) FROM messages"), 1);
    Sbp__HistoryResp *h = NULL;
    assert_int_equal(sb_store_history(s, c, 0, 0, &h), 0);
    assert_int_equal(h->messages[0]->n_tags, 2);
    sbp__history_resp__free_unpacked(h, NULL);
    /* In one request: removals first, so a tag in both lists stays. */
    char *add[] = {"important"}, *rem[] = {"important", "follow-up"};
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_tag(s, c, 1, add, 1, rem, 2), 0);
    assert_int_equal(sb_store_commit(s), 0);
    m = msg_get1(s, c, 1);
    assert_int_equal(m->n_tags, 1);
    sbp__message__free_unpacked(m, NULL);
    assert_int_equal(tag1(s, c, 1, NULL, "important"), 0);
    assert_int_equal(raw_int(t.path, "SELECT sum(tagged) FROM messages"), 0);
    m = msg_get1(s, c, 1);
    assert_int_equal(m->n_tags, 0);
    sbp__message__free_unpacked(m, NULL);

    /* Limits: SB_TAGS_MAX per target, refused whole past it. */
    char names[SB_TAGS_MAX + 1][8];
    char *many[SB_TAGS_MAX + 1];
    for (int i = 0; i <= SB_TAGS_MAX; i++) {
        snprintf(names[i], sizeof names[i], "t%02d", i);
        many[i] = names[i];
    }
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_tag(s, c, 2, many, SB_TAGS_MAX + 1, NULL, 0),
                     SB_E_TOO_LARGE);
    assert_int_equal(sb_store_tag(s, c, 2, many, SB_TAGS_MAX - 1, NULL, 0), 0);
    assert_int_equal(sb_store_tag(s, c, 2, many + SB_TAGS_MAX - 1, 2, NULL, 0),
                     SB_E_TOO_LARGE); /* 31 + 2 */
    assert_int_equal(sb_store_tag(s, c, 2, many + SB_TAGS_MAX - 1, 2, many, 1),
                     0); /* 31 - 1 + 2 */
    assert_int_equal(sb_store_commit(s), 0);
    m = msg_get1(s, c, 2);
    assert_int_equal(m->n_tags, SB_TAGS_MAX);
    assert_string_equal(m->tags[0], "t01");
    sbp__message__free_unpacked(m, NULL);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM tags WHERE seq = 2"),
                     SB_TAGS_MAX);

    /* Bad tags and missing targets. */
    char tag33[SB_TAG_BYTES_MAX + 2];
    memset(tag33, 'x', sizeof tag33 - 1);
    tag33[sizeof tag33 - 1] = '\0';
    assert_int_equal(tag1(s, c, 0, "", NULL), SB_E_INVALID);
    assert_int_equal(tag1(s, c, 0, tag33, NULL), SB_E_INVALID);
    tag33[SB_TAG_BYTES_MAX] = '\0'; /* exactly the maximum */
    assert_int_equal(tag1(s, c, 0, tag33, NULL), 0);
    assert_int_equal(tag1(s, c, 0, "a\nb", NULL), SB_E_INVALID);
    assert_int_equal(tag1(s, c, 0, "\xc3", NULL), SB_E_INVALID);
    assert_int_equal(tag1(s, c, 0, NULL, ""), SB_E_INVALID);
    assert_int_equal(tag1(s, c, 3, "x", NULL), SB_E_NOT_FOUND);
    assert_int_equal(tag1(s, c + 5, 0, "x", NULL), SB_E_NOT_FOUND);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* Every conversation of the list pages, in order, each exactly once. */
static size_t list_all(sb_store *s, const char *user, bool all,
                       Sbp__ConvState st, const char *tag, char **groups,
                       size_t n_groups, uint32_t limit, uint64_t *ids,
                       size_t cap)
{
    char cursor[64] = "";
    size_t n = 0;
    int64_t prev_ts = INT64_MAX;
    uint64_t prev_id = UINT64_MAX;
    for (int page = 0; page < 1000; page++) {
        Sbp__ConvListResp *r = NULL;
        assert_int_equal(sb_store_conv_list(s, user, all, st, tag, groups,
                                            n_groups, cursor, limit, &r),
                         0);
        assert_true(r->n_convs <= limit);
        for (size_t i = 0; i < r->n_convs; i++) {
            Sbp__Conversation *c = r->convs[i];
            assert_true(c->updated_ts < prev_ts ||
                        (c->updated_ts == prev_ts && c->conv_id < prev_id));
            prev_ts = c->updated_ts;
            prev_id = c->conv_id;
            assert_true(n < cap);
            ids[n++] = c->conv_id;
        }
        bool more = r->more;
        if (r->n_convs) snprintf(cursor, sizeof cursor, "%s", r->next_cursor);
        sbp__conv_list_resp__free_unpacked(r, NULL);
        if (!more) break;
    }
    return n;
}

static bool in_ids(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

static void test_conv_list(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    enum { N = 12 };
    uint64_t c[N];
    char cust[N][16];
    /* Twelve service conversations of twelve customers; agent a1 on the
     * even ones. updated_ts in pairs, so ties are broken by conv_id. */
    for (int i = 0; i < N; i++) {
        snprintf(cust[i], sizeof cust[i], "cust%02d", i);
        c[i] = svc_open1(s, cust[i], "shop", "sales", NOW + i / 2, NULL);
        if (i % 2 == 0)
            assert_int_equal(route1(s, c[i], SBP__CONV_STATE__STATE_ASSIGNED,
                                    "sales", "a1", NOW + i / 2),
                             0);
    }
    /* c[1], c[3] queued for sales, c[5] for vip; c[0] tagged. */
    assert_int_equal(
        route1(s, c[1], SBP__CONV_STATE__STATE_QUEUED, "sales", "", NOW), 0);
    assert_int_equal(
        route1(s, c[3], SBP__CONV_STATE__STATE_QUEUED, "sales", "", NOW + 1),
        0);
    assert_int_equal(
        route1(s, c[5], SBP__CONV_STATE__STATE_QUEUED, "vip", "", NOW + 2), 0);
    assert_int_equal(tag1(s, c[0], 0, "vip", NULL), 0);
    assert_int_equal(tag1(s, c[4], 0, "vip", NULL), 0);
    assert_int_equal(tag1(s, c[4], 0, "refund", NULL), 0);
    /* unread: a1 read c[0] to 1 of 3 (at NOW + 10..12: the latest) */
    for (uint64_t k = 10; k <= 12; k++)
        assert_int_equal(append1(s, c[0], cust[0], k, "m", 0, NULL, NULL), 0);
    assert_int_equal(read_set1(s, "a1", c[0], 1), 0);

    uint64_t ids[64];
    /* a1's own: the six even ones. */
    size_t n = list_all(s, "a1", false, 0, "", NULL, 0, 4, ids, 64);
    assert_int_equal(n, 6);
    for (int i = 0; i < N; i += 2)
        assert_true(in_ids(ids, n, c[i]));
    /* c[0] had the latest activity. */
    Sbp__ConvListResp *r = NULL;
    assert_int_equal(
        sb_store_conv_list(s, "a1", false, 0, "", NULL, 0, "", 2, &r), 0);
    assert_int_equal(r->n_convs, 2);
    assert_true(r->more);
    Sbp__Conversation *top = r->convs[0];
    assert_int_equal(top->conv_id, c[0]);
    assert_int_equal(top->unread, 2);
    assert_int_equal(top->read_seq, 1);
    assert_int_equal(top->last_message->seq, 3);
    assert_string_equal(top->customer, cust[0]);
    assert_string_equal(top->agent, "a1");
    assert_int_equal(top->n_tags, 1);
    assert_int_equal(r->convs[1]->unread, 0);
    assert_null(r->convs[1]->last_message);
    sbp__conv_list_resp__free_unpacked(r, NULL);
    /* The customer sees it with its own unread count: its own three
     * messages are not unread. */
    assert_int_equal(
        sb_store_conv_list(s, cust[0], false, 0, "", NULL, 0, "", 0, &r), 0);
    assert_int_equal(r->n_convs, 1);
    assert_int_equal(r->convs[0]->unread, 0);
    assert_false(r->more);
    sbp__conv_list_resp__free_unpacked(r, NULL);

    /* Filters. */
    n = list_all(s, "a1", false, 0, "vip", NULL, 0, 1, ids, 64);
    assert_int_equal(n, 2);
    assert_true(in_ids(ids, n, c[0]) && in_ids(ids, n, c[4]));
    n = list_all(s, "a1", false, 0, "refund", NULL, 0, 10, ids, 64);
    assert_int_equal(n, 1);
    n = list_all(s, "", true, 0, "vip", NULL, 0, 10, ids, 64);
    assert_int_equal(n, 2);
    n = list_all(s, "", true, SBP__CONV_STATE__STATE_QUEUED, "", NULL, 0, 2,
                 ids, 64);
    assert_int_equal(n, 3);
    n = list_all(s, "", true, SBP__CONV_STATE__STATE_BOT, "", NULL, 0, 2, ids,
                 64);
    assert_int_equal(n, 3); /* 7, 9, 11 */
    n = list_all(s, "", true, 0, "", NULL, 0, 5, ids, 64);
    assert_int_equal(n, N);
    /* An agent's view of the queue: a1's own plus what waits in sales. */
    char *groups[] = {"sales", "support"};
    n = list_all(s, "a1", false, 0, "", groups, 2, 3, ids, 64);
    assert_int_equal(n, 8);
    assert_true(in_ids(ids, n, c[1]) && in_ids(ids, n, c[3]));
    assert_false(in_ids(ids, n, c[5]));
    n = list_all(s, "a1", false, SBP__CONV_STATE__STATE_QUEUED, "", groups, 2,
                 3, ids, 64);
    assert_int_equal(n, 2);
    Sbp__ConvListResp *q = NULL;
    assert_int_equal(sb_store_conv_list(s, "a1", false,
                                        SBP__CONV_STATE__STATE_QUEUED, "",
                                        groups, 1, "", 0, &q),
                     0);
    assert_int_equal(q->convs[0]->unread, 0); /* not a member */
    assert_int_equal(q->convs[0]->read_seq, 0);
    sbp__conv_list_resp__free_unpacked(q, NULL);

    /* Refusals. */
    assert_int_equal(
        sb_store_conv_list(s, "a1", false, 0, "", NULL, 0, "x:1", 0, &r),
        SB_E_INVALID);
    assert_null(r);
    assert_int_equal(
        sb_store_conv_list(s, "a1", false, 0, "", NULL, 0, "5:", 0, &r),
        SB_E_INVALID);
    assert_int_equal(
        sb_store_conv_list(s, "a1", false, 0, "", NULL, 0, "5:1x", 0, &r),
        SB_E_INVALID);
    assert_int_equal(
        sb_store_conv_list(s, "", false, 0, "", NULL, 0, "", 0, &r),
        SB_E_INVALID);
    assert_int_equal(sb_store_conv_list(s, "a1", false, (Sbp__ConvState)7, "",
                                        NULL, 0, "", 0, &r),
                     SB_E_INVALID);
    assert_int_equal(
        sb_store_conv_list(s, "a1", false, 0, "a\tb", NULL, 0, "", 0, &r),
        SB_E_INVALID);
    sb_store_close(s);
}

/* Paging while the list changes under it: conversations keep coming in and
 * getting messages between pages. No page repeats an entry, and every
 * conversation whose activity did not change is listed exactly once. */
static void test_conv_list_paging_concurrent(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    enum { N = 40 };
    uint64_t c[N + 40];
    size_t nc = 0;
    const char *u[] = {"cust", "agent"};
    for (int i = 0; i < N; i++) {
        c[nc++] = conv_new(s, u, 2); /* all at NOW: ties throughout */
        if (i % 3 == 0)
            assert_int_equal(
                append1(s, c[i], "agent", (uint64_t)i + 1, "x", 0, NULL, NULL),
                0);
    }
    bool moved[N + 40] = {false};
    uint64_t seen[N + 40];
    size_t n_seen = 0;
    char cursor[64] = "";
    uint64_t k = 1000;
    for (int page = 0;; page++) {
        assert_true(page < 100);
        Sbp__ConvListResp *r = NULL;
        assert_int_equal(sb_store_conv_list(s, "agent", false, 0, "", NULL, 0,
                                            cursor, 3, &r),
                         0);
        for (size_t i = 0; i < r->n_convs; i++) {
            assert_false(in_ids(seen, n_seen, r->convs[i]->conv_id));
            seen[n_seen++] = r->convs[i]->conv_id;
        }
        bool more = r->more;
        if (r->n_convs) snprintf(cursor, sizeof cursor, "%s", r->next_cursor);
        sbp__conv_list_resp__free_unpacked(r, NULL);
        if (!more) break;
        /* Activity: a message to one already listed and to one not yet
         * listed (both move to the top), and a new conversation. */
        size_t a = (size_t)page % nc, b = (size_t)(page * 7 + 5) % nc;
        assert_int_equal(append1(s, c[a], "cust", ++k, "y", 0, NULL, NULL), 0);
        assert_int_equal(append1(s, c[b], "cust", ++k, "y", 0, NULL, NULL), 0);
        moved[a] = moved[b] = true;
        moved[nc] = true;
        c[nc++] = conv_new(s, u, 2);
    }
    for (size_t i = 0; i < nc; i++)
        if (!moved[i]) assert_true(in_ids(seen, n_seen, c[i]));
    sb_store_close(s);
}

static void test_search(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    const char *u1[] = {"cust1", "agent"}, *u2[] = {"cust2", "agent"};
    uint64_t c1 = conv_new(s, u1, 2), c2 = conv_new(s, u2, 2);
    uint64_t n = 0;
    const char *m1[] = {
        "I want a refund for order 123",
        "\xe6\x88\x91\xe6\x83\xb3\xe9\x80\x80\xe6\xac\xbe", /* 我想退款 */
        "When will the REFUND arrive?",
        ("\xe9\x80\x80\xe6\xac\xbe\xe4\xbb\x80\xe4\xb9\x88\xe6\x97\xb6\xe5\x80"
         "\x99\xe5\x88\xb0\xe8\xb4\xa6"), /* 退款什么时候到账 */
        "100% sure_thing",
        "say \"hi\" OR bye",
    };
    for (size_t i = 0; i < sizeof m1 / sizeof *m1; i++)
        assert_int_equal(append1(s, c1, "cust1", ++n, m1[i], 0, NULL, NULL), 0);
    assert_int_equal(
        append1(s, c2, "cust2", ++n, "refund me too", 0, NULL, NULL), 0);
    assert_int_equal(append1(s, c2, "cust2", ++n,
                             "\xe9\x80\x80\xe6\xac\xbe\xe5\x90\xa7", 0, NULL,
                             NULL),
                     0); /* 退款吧 */

    /* Twice: first by scan (nothing indexed yet), then half indexed, then
     * through the index, with the same answers. */
    for (int round = 0; round < 3; round++) {
        if (round == 1) {
            uint64_t left = 0;
            assert_int_equal(sb_store_begin(s), 0);
            assert_int_equal(sb_store_index(s, 3, &left), 0);
            assert_int_equal(sb_store_commit(s), 0);
            /* PostgreSQL's index follows the inserts: nothing lags. */
            assert_int_equal(left, on_pg() ? 0 : 5);
            assert_int_equal(sb_store_index(s, 0, &left), 0);
            assert_int_equal(left, on_pg() ? 0 : 5);
        } else if (round == 2) {
            index_all(s);
        }
        /* English, any case, newest first; a customer never sees another
         * customer's message; the agent and an admin see both. */
        assert_string_equal(search_bodies(s, "cust1", false, 0, "refund", 0),
                            "When will the REFUND arrive?|"
                            "I want a refund for order 123");
        assert_string_equal(search_bodies(s, "cust2", false, 0, "refund", 0),
                            "refund me too");
        assert_string_equal(search_bodies(s, "cust2", false, 0, "order", 0),
                            "");
        assert_string_equal(search_bodies(s, "agent", false, 0, "refund", 0),
                            "refund me too|When will the REFUND arrive?|"
                            "I want a refund for order 123");
        assert_string_equal(search_bodies(s, "nobody", false, 0, "refund", 0),
                            "");
        assert_string_equal(search_bodies(s, "", true, 0, "refund", 2),
                            "refund me too|When will the REFUND arrive?");
        assert_string_equal(search_bodies(s, "agent", false, c1, "refund", 1),
                            "When will the REFUND arrive?");
        /* Every word, short ones too (below three characters the index
         * cannot help: a scan within the scope). */
        assert_string_equal(
            search_bodies(s, "cust1", false, 0, "refund  123", 0),
            "I want a refund for order 123");
        assert_string_equal(search_bodies(s, "cust1", false, 0, "refund 12", 0),
                            "I want a refund for order 123");
        assert_string_equal(search_bodies(s, "cust1", false, 0, "i refund", 0),
                            "When will the REFUND arrive?|"
                            "I want a refund for order 123");
        assert_string_equal(search_bodies(s, "cust1", false, c1, "12", 0),
                            "I want a refund for order 123");
        /* Chinese: substrings, through trigrams from three characters. */
        assert_string_equal(
            search_bodies(s, "cust1", false, 0,
                          "\xe4\xbb\x80\xe4\xb9\x88\xe6\x97\xb6\xe5\x80\x99",
                          0),
            m1[3]); /* 什么时候 */
        assert_string_equal(
            search_bodies(s, "cust1", false, 0, "\xe9\x80\x80\xe6\xac\xbe", 0),
            "\xe9\x80\x80\xe6\xac\xbe\xe4\xbb\x80\xe4\xb9\x88\xe6\x97\xb6\xe5"
            "\x80\x99\xe5\x88\xb0\xe8\xb4\xa6|"
            "\xe6\x88\x91\xe6\x83\xb3\xe9\x80\x80\xe6\xac\xbe"); /* 退款 */
        assert_string_equal(
            search_bodies(s, "", true, 0, "\xe9\x80\x80\xe6\xac\xbe", 1),
            "\xe9\x80\x80\xe6\xac\xbe\xe5\x90\xa7");
        assert_string_equal(
            search_bodies(s, "cust1", false, 0,
                          "\xe9\x80\x80\xe6\xac\xbe\xe3\x80\x80\xe5\x88\xb0"
                          "\xe8\xb4\xa6",
                          0), /* 退款　到账, an ideographic space */
            m1[3]);
        /* Never FTS or LIKE syntax: the characters themselves. */
        assert_string_equal(search_bodies(s, "cust1", false, 0, "100%", 0),
                            "100% sure_thing");
        assert_string_equal(search_bodies(s, "cust1", false, 0, "e_t", 0),
                            "100% sure_thing");
        assert_string_equal(search_bodies(s, "cust1", false, 0, "%", 0),
                            "100% sure_thing");
        assert_string_equal(search_bodies(s, "cust1", false, 0, "\"hi\"", 0),
                            "say \"hi\" OR bye");
        assert_string_equal(search_bodies(s, "cust1", false, 0, "OR NEAR(", 0),
                            "");
        assert_string_equal(search_bodies(s, "cust1", false, 0, "refund*", 0),
                            "");
    }
    assert_int_equal(raw_int(":memory:", "SELECT 1"), 1);

    /* Refusals. */
    Sbp__SearchResp *r = NULL;
    assert_int_equal(sb_store_search(s, "cust2", false, c1, "refund", 0, &r),
                     SB_E_FORBIDDEN);
    assert_null(r);
    assert_int_equal(
        sb_store_search(s, "cust2", false, c1 + 99, "refund", 0, &r),
        SB_E_NOT_FOUND);
    assert_int_equal(sb_store_search(s, "", true, c1 + 99, "refund", 0, &r),
                     SB_E_NOT_FOUND);
    assert_int_equal(sb_store_search(s, "cust1", false, 0, "  \t", 0, &r),
                     SB_E_INVALID);
    assert_int_equal(sb_store_search(s, "cust1", false, 0, "\xff", 0, &r),
                     SB_E_INVALID);
    assert_int_equal(sb_store_search(s, "", false, 0, "refund", 0, &r),
                     SB_E_INVALID);
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sb_store_search(s, "cust1", false, 0, big, 0, &r),
                     SB_E_TOO_LARGE);
    assert_int_equal(sb_store_search(s, "cust1", false, 0,
                                     "a b c d e f g h i j k l m n o p q", 0,
                                     &r),
                     SB_E_TOO_LARGE);
    sb_store_close(s);
}

static void test_service_convs(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    uint64_t c[5];
    for (int i = 0; i < 5; i++) {
        char cu[16];
        snprintf(cu, sizeof cu, "cu%d", i);
        c[i] = svc_open1(s, cu, "shop", "sales", NOW, NULL);
    }
    /* Queued in the order 3, 0, 4, 1; 2 stays with the bot. */
    int order[] = {3, 0, 4, 1};
    for (int i = 0; i < 4; i++)
        assert_int_equal(route1(s, c[order[i]], SBP__CONV_STATE__STATE_QUEUED,
                                "sales", "", NOW + 10 * (i + 1)),
                         0);
    assert_int_equal(route1(s, c[4], SBP__CONV_STATE__STATE_ASSIGNED, "sales",
                            "a1", NOW + 100),
                     0);
    Sbp__Conversation **list = NULL;
    size_t n = 0;
    assert_int_equal(
        sb_store_service_convs(s, SBP__CONV_STATE__STATE_QUEUED, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[0]->conv_id, c[3]);
    assert_int_equal(list[1]->conv_id, c[0]);
    assert_int_equal(list[2]->conv_id, c[1]);
    assert_string_equal(list[0]->group, "sales");
    for (size_t i = 0; i < n; i++)
        sbp__conversation__free_unpacked(list[i], NULL);
    free(list);
    assert_int_equal(
        sb_store_service_convs(s, SBP__CONV_STATE__STATE_ASSIGNED, &list, &n),
        0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0]->agent, "a1");
    sbp__conversation__free_unpacked(list[0], NULL);
    free(list);
    assert_int_equal(
        sb_store_service_convs(s, SBP__CONV_STATE__STATE_BOT, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0]->conv_id, c[2]);
    sbp__conversation__free_unpacked(list[0], NULL);
    free(list);
    assert_int_equal(
        sb_store_service_convs(s, SBP__CONV_STATE__STATE_CLOSED, &list, &n),
        SB_E_INVALID);
    assert_null(list);
    sb_store_close(s);
}

/* Rows a version 1 database could hold (the schema is the store's own
 * first version, sb__sqlite_schema(1)). */
static const char V1_ROWS_SQL[] =
    "PRAGMA user_version = 1;"
    "INSERT INTO users VALUES('cust', 1, 'en', 1, 1), ('agent', 2, '', 1, 1);"
    "INSERT INTO convs VALUES(7, 2, 2, 'old', 3, 1000, 2000),"
    " (8, 1, 1, 'direct', 0, 1000, 1000);"
    "INSERT INTO members VALUES(7, 'cust', 1, 2, 3, 1000),"
    " (7, 'agent', 2, 0, 0, 1000), (8, 'agent', 2, 0, 0, 1000);"
    "INSERT INTO messages VALUES(1, 7, 1, 'cust', 'd', x'0102030405060708090a0b"
    "0c0d0e0f10', 1, 'where is my parcel', 0, 'en', 1500),"
    " (2, 7, 2, 'agent', 'd', NULL, 1, 'on its way', 1, '', 1600),"
    " (3, 7, 3, 'cust', 'd', NULL, 1, 'thanks', 0, '', 2000);";

static void test_migrate_v1(void **state)
{
    (void)state;
    SQLITE_ONLY();
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL),
        SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db, sb__sqlite_schema(1), NULL, NULL, &err);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, V1_ROWS_SQL, NULL, NULL, &err);
    if (rc != SQLITE_OK) print_error("v1: %s\n", err);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);

    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_FSYNC, &s), 0);
    assert_true(raw_int(t.path, "PRAGMA user_version") >= 2);
    /* Old rows read as before, with the new fields at their defaults and
     * the service conversation's customer found among its members. */
    Sbp__Conversation *c = conv_get1(s, 7);
    assert_string_equal(c->title, "old");
    assert_string_equal(c->customer, "cust");
    assert_string_equal(c->desk, "");
    assert_string_equal(c->agent, "");
    assert_string_equal(c->transfer_note, "");
    assert_int_equal(c->updated_ts, 2000);
    assert_int_equal(c->n_tags, 0);
    assert_int_equal(c->n_members, 2);
    sbp__conversation__free_unpacked(c, NULL);
    c = conv_get1(s, 8);
    assert_string_equal(c->customer, "");
    sbp__conversation__free_unpacked(c, NULL);
    Sbp__Message *m = msg_get1(s, 7, 2);
    assert_string_equal(m->body, "on its way");
    assert_false(m->recalled);
    assert_false(m->review);
    assert_non_null(m->quote);
    assert_string_equal(m->quote->body, "where is my parcel");
    sbp__message__free_unpacked(m, NULL);
    /* Idempotency records and seqs carry on. */
    Sbp__Message ack;
    bool dup = false;
    uint8_t id[16];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(i + 1);
    Sbp__Message retry = SBP__MESSAGE__INIT;
    retry.conv_id = 7;
    retry.sender = "cust";
    retry.client_msg_id.data = id;
    retry.client_msg_id.len = 16;
    retry.body = "where is my parcel";
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_append(s, &retry, NOW, &dup), 0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_true(dup);
    assert_int_equal(retry.seq, 1);
    assert_int_equal(append1(s, 7, "agent", 1, "parcel found", 0, &ack, &dup),
                     0);
    assert_int_equal(ack.seq, 4);
    /* The new parts work on the old conversation: routing, tags, recall,
     * search over old and new messages. */
    assert_int_equal(
        route1(s, 7, SBP__CONV_STATE__STATE_ASSIGNED, "g", "a2", NOW), 0);
    assert_int_equal(tag1(s, 7, 1, "lost", NULL), 0);
    assert_string_equal(search_bodies(s, "cust", false, 0, "parcel", 0),
                        "parcel found|where is my parcel");
    index_all(s);
    assert_int_equal(recall1(s, 7, 4), 0);
    assert_string_equal(search_bodies(s, "cust", false, 0, "parcel", 0),
                        "where is my parcel");
    sb_store_close(s);

    /* The idempotency key's index leads with client_msg_id (schema 10),
     * and it is the messages' only index on the sender. */
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM pragma_index_info("
                                     "'messages_idem') WHERE seqno = 0 AND"
                                     " name = 'client_msg_id'"),
                     1);
    assert_int_equal(
        raw_int(t.path, "SELECT count(*) FROM pragma_index_list('messages')"
                        " l, pragma_index_info(l.name) i"
                        " WHERE i.name = 'sender'"),
        1);

    /* Opening again changes nothing. */
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_FSYNC, &s), 0);
    m = msg_get1(s, 7, 1);
    assert_int_equal(m->n_tags, 1);
    sbp__message__free_unpacked(m, NULL);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), 4);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* The content filter's review flag: stored with its message, given back by
 * every read, and indexed for whoever reviews the flagged messages. */
static void test_review_flag(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    const char *u[] = {"cust", "agent"};
    uint64_t c = conv_new(s, u, 2);
    uint8_t id[16];
    cmid_set(id, 1);
    Sbp__Message m = SBP__MESSAGE__INIT;
    m.conv_id = c;
    m.sender = "cust";
    m.sender_device = "dev1";
    m.client_msg_id.data = id;
    m.client_msg_id.len = sizeof id;
    m.type = SBP__MSG_TYPE__MSG_TEXT;
    m.body = "free money";
    m.review = true;
    bool dup = true;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_append(s, &m, NOW, &dup), 0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_false(dup);
    assert_int_equal(append1(s, c, "agent", 2, "hello", 0, NULL, NULL), 0);

    Sbp__Message *r = msg_get1(s, c, 1);
    assert_true(r->review);
    sbp__message__free_unpacked(r, NULL);
    Sbp__HistoryResp *h = NULL;
    assert_int_equal(sb_store_history(s, c, 0, 10, &h), 0);
    assert_int_equal(h->n_messages, 2);
    assert_true(h->messages[0]->review);
    assert_false(h->messages[1]->review);
    sbp__history_resp__free_unpacked(h, NULL);
    sb_store_close(s);
}

/* ---- customer service through storeq ---------------------------------------
 */

static Sbp__Message *event_msg(const char *key)
{
    Sbp__Message *m = calloc(1, sizeof *m);
    sbp__message__init(m);
    m->sender = strdup("system");
    m->type = SBP__MSG_TYPE__MSG_EVENT;
    m->body = strdup(key);
    m->event = calloc(1, sizeof *m->event);
    sbp__event__init(m->event);
    m->event->key = strdup(key);
    return m;
}

static void free_msgs(sb_req *r)
{
    for (size_t i = 0; i < r->n_msgs; i++)
        sbp__message__free_unpacked(r->msgs[i], NULL);
    r->n_msgs = 0;
}

static void route_req(sb_req *r, uint64_t conv, Sbp__ConvState st,
                      const char *group, const char *agent, int64_t now)
{
    memset(r, 0, sizeof *r);
    r->kind = SB_REQ_CONV_ROUTE;
    r->u.route.conv_id = conv;
    r->u.route.state = st;
    snprintf(r->u.route.group, sizeof r->u.route.group, "%s", group);
    snprintf(r->u.route.agent, sizeof r->u.route.agent, "%s", agent);
    r->now_ms = now;
}

/* A route and its event messages: one transaction, all or nothing, both
 * for a refused message and for a full disk. */
static void test_storeq_route_atomic(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    uv_loop_t loop;
    qctx ctx;
    sb_storeq *q = q_start(&loop, t.path, SB_DURABILITY_FSYNC, &ctx, 64);

    /* SERVICE_OPEN with a greeting: the greeting lands in the new
     * conversation; opened again, no greeting. */
    sb_req o;
    memset(&o, 0, sizeof o);
    o.kind = SB_REQ_SERVICE_OPEN;
    snprintf(o.u.svc_open.customer, sizeof o.u.svc_open.customer, "cust");
    snprintf(o.u.svc_open.desk, sizeof o.u.svc_open.desk, "shop");
    snprintf(o.u.svc_open.group, sizeof o.u.svc_open.group, "sales");
    o.now_ms = NOW;
    o.msgs[o.n_msgs++] = event_msg("bot.greeting");
    qsubmit(q, &o);
    run_all(&loop, q);
    assert_int_equal(o.rc, 0);
    assert_true(o.u.svc_open.created);
    uint64_t c = o.u.svc_open.conv->conv_id;
    assert_int_equal(o.msgs[0]->conv_id, c);
    assert_int_equal(o.msgs[0]->seq, 1);
    assert_int_equal(o.msgs[0]->server_ts, NOW);
    assert_int_equal(o.u.svc_open.conv->last_seq, 1);
    sbp__conversation__free_unpacked(o.u.svc_open.conv, NULL);
    free_msgs(&o);
    o.msgs[o.n_msgs++] = event_msg("bot.greeting");
    o.u.svc_open.conv = NULL;
    qsubmit(q, &o);
    run_all(&loop, q);
    assert_int_equal(o.rc, 0);
    assert_false(o.u.svc_open.created);
    assert_int_equal(o.u.svc_open.conv->conv_id, c);
    assert_int_equal(o.msgs[0]->seq, 0);
    assert_int_equal(o.msgs[0]->conv_id, 0);
    sbp__conversation__free_unpacked(o.u.svc_open.conv, NULL);
    free_msgs(&o);

    /* A route with two events: one commit, seqs 2 and 3. */
    sb_req r;
    route_req(&r, c, SBP__CONV_STATE__STATE_ASSIGNED, "sales", "a1", NOW + 5);
    r.msgs[r.n_msgs++] = event_msg("conv.handoff");
    r.msgs[r.n_msgs++] = event_msg("conv.assigned");
    r.msgs[1]->conv_id = r.msgs[0]->conv_id = c;
    uint64_t commits = sb_storeq_commits(q);
    qsubmit(q, &r);
    run_all(&loop, q);
    assert_int_equal(r.rc, 0);
    assert_int_equal(sb_storeq_commits(q), commits + 1);
    assert_int_equal(r.msgs[0]->seq, 2);
    assert_int_equal(r.msgs[1]->seq, 3);
    assert_int_equal(r.msgs[1]->server_ts, NOW + 5);
    assert_string_equal(r.u.route.conv->agent, "a1");
    assert_int_equal(r.u.route.conv->last_seq, 3); /* with its messages */
    assert_int_equal(r.u.route.conv->updated_ts, NOW + 5);
    sbp__conversation__free_unpacked(r.u.route.conv, NULL);
    free_msgs(&r);

    /* A refused message (no sender) refuses the route with it; the other
     * requests of the batch go through. */
    sb_req bad, good;
    route_req(&bad, c, SBP__CONV_STATE__STATE_CLOSED, "sales", "", NOW + 6);
    bad.msgs[bad.n_msgs++] = event_msg("conv.closed");
    bad.msgs[bad.n_msgs++] = event_msg("conv.oops");
    bad.msgs[0]->conv_id = bad.msgs[1]->conv_id = c;
    free(bad.msgs[1]->sender);
    bad.msgs[1]->sender = strdup("");
    appreq a1;
    appreq_init(&a1, c, "cust", 1, "before");
    route_req(&good, c, SBP__CONV_STATE__STATE_ASSIGNED, "sales", "a2",
              NOW + 7);
    good.msgs[good.n_msgs++] = event_msg("conv.transferred");
    good.msgs[0]->conv_id = c;
    sb__storeq_hold(q, true);
    qsubmit(q, &a1.req);
    qsubmit(q, &bad);
    qsubmit(q, &good);
    sb__storeq_hold(q, false);
    run_all(&loop, q);
    assert_int_equal(a1.req.rc, 0);
    assert_int_equal(a1.msg.seq, 4);
    assert_int_equal(bad.rc, SB_E_INVALID);
    assert_null(bad.u.route.conv);
    assert_int_equal(bad.msgs[0]->seq, 0);
    assert_int_equal(bad.msgs[1]->seq, 0);
    assert_int_equal(good.rc, 0);
    assert_int_equal(good.msgs[0]->seq, 5);
    assert_string_equal(good.u.route.conv->agent, "a2");
    assert_false(has_member(good.u.route.conv, "a1", SBP__ROLE__ROLE_AGENT));
    sbp__conversation__free_unpacked(good.u.route.conv, NULL);
    free_msgs(&bad);
    free_msgs(&good);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), 5);
    assert_int_equal(raw_int(t.path, "SELECT state FROM convs"),
                     SBP__CONV_STATE__STATE_ASSIGNED);

    /* A full disk: the route, its messages and the rest of the batch are
     * all rolled back; once space is back, the same requests go through. */
    char *big = malloc(256 * 1024 + 1);
    memset(big, 'B', 256 * 1024);
    big[256 * 1024] = '\0';
    route_req(&r, c, SBP__CONV_STATE__STATE_CLOSED, "sales", "a2", NOW + 9);
    r.msgs[r.n_msgs++] = event_msg("conv.closed");
    r.msgs[0]->conv_id = c;
    free(r.msgs[0]->body);
    r.msgs[0]->body = big;
    sb_req tg;
    memset(&tg, 0, sizeof tg);
    char *add[] = {"closed-by-a2"};
    tg.kind = SB_REQ_TAG;
    tg.u.tag.conv_id = c;
    tg.u.tag.add = add;
    tg.u.tag.n_add = 1;
    /* (SQLite's file is capped; PostgreSQL's full disk is the integration
     * tests'.) */
    if (!on_pg()) {
        sb__storeq_max_pages(q, 1);
        sb__storeq_hold(q, true);
        commits = sb_storeq_commits(q);
        qsubmit(q, &tg);
        qsubmit(q, &r);
        sb__storeq_hold(q, false);
        run_all(&loop, q);
        assert_int_equal(tg.rc, SB_E_STORE);
        assert_int_equal(r.rc, SB_E_STORE);
        assert_null(r.u.route.conv);
        assert_int_equal(r.msgs[0]->seq, 0);
        assert_int_equal(sb_storeq_commits(q), commits);
        assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), 5);
        assert_int_equal(raw_int(t.path, "SELECT state FROM convs"),
                         SBP__CONV_STATE__STATE_ASSIGNED);
        assert_int_equal(raw_int(t.path, "SELECT closed_ts FROM convs"), 0);
        assert_int_equal(raw_int(t.path, "SELECT count(*) FROM tags"), 0);
        sb__storeq_max_pages(q, 0);
    }
    qsubmit(q, &tg);
    qsubmit(q, &r);
    run_all(&loop, q);
    assert_int_equal(tg.rc, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.msgs[0]->seq, 6);
    assert_int_equal(r.u.route.conv->state, SBP__CONV_STATE__STATE_CLOSED);
    assert_int_equal(r.u.route.conv->resolution_ms, 9);
    assert_int_equal(r.u.route.conv->n_tags, 1);
    sbp__conversation__free_unpacked(r.u.route.conv, NULL);
    free_msgs(&r);

    /* The writer fills SQLite's search index once idle. */
    bool indexed = on_pg();
    for (int i = 0; i < 300 && !indexed; i++) {
        indexed = raw_int(t.path, "SELECT value FROM meta"
                                  " WHERE key = 'fts_upto'") == 6;
        if (!indexed) usleep(10 * 1000);
    }
    assert_true(indexed);
    if (!on_pg())
        assert_int_equal(raw_int(t.path, "SELECT count(*) FROM msg_fts"
                                         " WHERE msg_fts MATCH 'transferred'"),
                         1);
    q_stop(&loop, q);
    free(ctx.order);
    pgtest_tmpdb_remove(&t);
}

/* sb_storeq_apply: each customer-service kind, synchronously. */
static void test_storeq_apply_service(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    sb_req r;
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_SERVICE_OPEN;
    snprintf(r.u.svc_open.customer, sizeof r.u.svc_open.customer, "cust");
    r.now_ms = NOW;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    uint64_t c = r.u.svc_open.conv->conv_id;
    sbp__conversation__free_unpacked(r.u.svc_open.conv, NULL);

    route_req(&r, c, SBP__CONV_STATE__STATE_ASSIGNED, "g", "ag", NOW + 1);
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    sbp__conversation__free_unpacked(r.u.route.conv, NULL);
    route_req(&r, c, SBP__CONV_STATE__STATE_ASSIGNED, "g", "ag", NOW + 1);
    memset(r.u.route.agent, 'x', sizeof r.u.route.agent); /* no NUL */
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_INVALID);
    assert_null(r.u.route.conv);
    route_req(&r, c, SBP__CONV_STATE__STATE_ASSIGNED, "g", "ag", NOW + 1);
    r.n_msgs = SB_REQ_MSGS_MAX + 1;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_INVALID);

    appreq a;
    appreq_init(&a, c, "cust", 1, "need a refund");
    sb_storeq_apply(s, &a.req);
    assert_int_equal(a.req.rc, 0);
    appreq_init(&a, c, "ag", 2, "sure");
    a.msg.quote_seq = 1;
    a.req.now_ms = NOW + 40;
    sb_storeq_apply(s, &a.req);
    assert_int_equal(a.req.rc, 0);
    assert_string_equal(a.msg.quote->body, "need a refund");
    sbp__quote__free_unpacked(a.msg.quote, NULL);

    /* FIRST_RESPONSE takes the agent's reply time. */
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_FIRST_RESPONSE;
    r.u.first_response.conv_id = c;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    Sbp__Conversation *g = conv_get1(s, c);
    assert_int_equal(g->first_response_ms, 40);
    sbp__conversation__free_unpacked(g, NULL);

    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_TAG;
    char *add[] = {"vip"}, *bad[] = {""};
    r.u.tag.conv_id = c;
    r.u.tag.add = add;
    r.u.tag.n_add = 1;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    r.u.tag.add = bad;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_INVALID);
    r.u.tag.add = NULL;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_INVALID);

    /* RECALL with its event at the writer's clock (no now_ms given). */
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_MSG_RECALL;
    r.u.recall.conv_id = c;
    r.u.recall.seq = 1;
    r.msgs[r.n_msgs++] = event_msg("msg.recalled");
    r.msgs[0]->conv_id = c;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.msgs[0]->seq, 3);
    assert_true(r.msgs[0]->server_ts > 0);
    free_msgs(&r);

    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_MSG_GET;
    r.u.msg_get.conv_id = c;
    r.u.msg_get.seq = 2;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_true(r.u.msg_get.msg->quote->recalled);
    sbp__message__free_unpacked(r.u.msg_get.msg, NULL);
    r.u.msg_get.seq = 9;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_NOT_FOUND);
    assert_null(r.u.msg_get.msg);

    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_CONV_LIST;
    snprintf(r.u.conv_list.user_id, sizeof r.u.conv_list.user_id, "ag");
    snprintf(r.u.conv_list.tag, sizeof r.u.conv_list.tag, "vip");
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.u.conv_list.resp->n_convs, 1);
    /* The customer's message and the recall event; not ag's own. */
    assert_int_equal(r.u.conv_list.resp->convs[0]->unread, 2);
    sbp__conv_list_resp__free_unpacked(r.u.conv_list.resp, NULL);
    memset(r.u.conv_list.cursor, '9', sizeof r.u.conv_list.cursor);
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_INVALID);
    assert_null(r.u.conv_list.resp);

    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_SEARCH;
    snprintf(r.u.search.user_id, sizeof r.u.search.user_id, "ag");
    r.u.search.query = "sure";
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.u.search.resp->n_messages, 1);
    sbp__search_resp__free_unpacked(r.u.search.resp, NULL);
    r.u.search.query = NULL;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_INVALID);

    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_SERVICE_CONVS;
    r.u.service_convs.state = SBP__CONV_STATE__STATE_ASSIGNED;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.u.service_convs.n, 1);
    sbp__conversation__free_unpacked(r.u.service_convs.list[0], NULL);
    free(r.u.service_convs.list);
    sb_store_close(s);
}

/* The webhook outbox: events written with the writes they tell of (a
 * stored message, not a duplicate; a route's state), one row per endpoint
 * that wants them; claimed with a lease, retried, failed, listed and
 * replayed; and a user's erasure: the bodies of what the user sent (not
 * others'), the seqs kept, search and the outbox cleared of it. */
static void test_outbox_and_erase(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    const char *users[] = {"alice", "bob"};
    uint64_t conv = conv_new(s, users, 2);

    /* Two endpoints: one wants messages, the other conversation events. */
    sb_req_hooks h = {.n = 2};
    snprintf(h.endpoint[0], sizeof h.endpoint[0], "crm");
    snprintf(h.endpoint[1], sizeof h.endpoint[1], "bi");
    h.wants[0] = SB_HOOK_MESSAGE_CREATED;
    h.wants[1] = SB_HOOK_CONV_CLOSED;
    uint8_t id[16] = {7};
    Sbp__Message m = SBP__MESSAGE__INIT;
    m.conv_id = conv;
    m.sender = "alice";
    m.client_msg_id.data = id;
    m.client_msg_id.len = sizeof id;
    m.type = SBP__MSG_TYPE__MSG_TEXT;
    m.body = "secret plans";
    for (int i = 0; i < 2; i++) { /* the second is a duplicate */
        sb_req r;
        memset(&r, 0, sizeof r);
        r.kind = SB_REQ_MSG_APPEND;
        r.u.append.msg = &m;
        r.now_ms = NOW;
        r.hooks = malloc(sizeof h);
        memcpy(r.hooks, &h, sizeof h);
        sb_storeq_apply(s, &r);
        assert_int_equal(r.rc, 0);
        assert_null(r.hooks); /* the store's, freed */
        assert_int_equal(r.u.append.duplicate, i == 1);
    }
    if (m.quote) sbp__quote__free_unpacked(m.quote, NULL);
    assert_int_equal(append1(s, conv, "bob", 2, "bob's words", 0, NULL, NULL),
                     0);

    /* One event, for crm only; claimed once within its lease. */
    sb_req c;
    memset(&c, 0, sizeof c);
    c.kind = SB_REQ_OUTBOX_CLAIM;
    c.u.outbox.lease_ms = 60000;
    c.u.outbox.limit = 10;
    c.now_ms = NOW + 10;
    sb_storeq_apply(s, &c);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.u.outbox.n_rows, 1);
    sb_store_hook *row = &c.u.outbox.rows[0];
    assert_string_equal(row->event, "message.created");
    assert_string_equal(row->endpoint, "crm");
    assert_string_equal(row->subject, "alice");
    assert_non_null(strstr(row->payload, "secret plans"));
    int64_t ev = row->id;
    sb_store_hooks_free(c.u.outbox.rows, c.u.outbox.n_rows);
    sb_storeq_apply(s, &c);
    assert_int_equal(c.u.outbox.n_rows, 0);

    /* Failed twice: due again, then kept as failed. */
    sb_req r;
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_OUTBOX_RESULT;
    r.u.outbox.id = ev;
    r.u.outbox.attempts = 1;
    r.u.outbox.next_ts = NOW + 100;
    snprintf(r.u.outbox.error, sizeof r.u.outbox.error, "HTTP 500");
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    c.now_ms = NOW + 100;
    sb_storeq_apply(s, &c);
    assert_int_equal(c.u.outbox.n_rows, 1);
    assert_int_equal(c.u.outbox.rows[0].attempts, 1);
    sb_store_hooks_free(c.u.outbox.rows, c.u.outbox.n_rows);
    r.u.outbox.attempts = 2;
    r.u.outbox.give_up = true;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    c.now_ms = NOW + 1000000;
    sb_storeq_apply(s, &c);
    assert_int_equal(c.u.outbox.n_rows, 0); /* failed: not claimed */
    sb_req f;
    memset(&f, 0, sizeof f);
    f.kind = SB_REQ_OUTBOX_FAILED;
    f.u.outbox.limit = 10;
    sb_storeq_apply(s, &f);
    assert_int_equal(f.rc, 0);
    assert_int_equal(f.u.outbox.n_rows, 1);
    assert_string_equal(f.u.outbox.rows[0].last_error, "HTTP 500");
    assert_int_equal(f.u.outbox.rows[0].attempts, 2);
    sb_store_hooks_free(f.u.outbox.rows, f.u.outbox.n_rows);
    /* Replayed: pending from its first attempt; delivered: gone. */
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_OUTBOX_REPLAY;
    r.now_ms = NOW + 2000;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.u.outbox.n, 1);
    c.now_ms = NOW + 2000;
    sb_storeq_apply(s, &c);
    assert_int_equal(c.u.outbox.n_rows, 1);
    assert_int_equal(c.u.outbox.rows[0].attempts, 0);
    sb_store_hooks_free(c.u.outbox.rows, c.u.outbox.n_rows);
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_OUTBOX_RESULT;
    r.u.outbox.id = ev;
    r.u.outbox.delivered = true;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_NOT_FOUND);

    /* A route to CLOSED: conversation.closed for bi only, in the route's
     * transaction; an explicit event (a CSAT rating's) for crm. */
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_CONV_ROUTE;
    r.u.route.conv_id = conv;
    r.u.route.state = SBP__CONV_STATE__STATE_CLOSED;
    r.now_ms = NOW + 3000;
    r.hooks = malloc(sizeof h);
    memcpy(r.hooks, &h, sizeof h);
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    if (r.u.route.conv) sbp__conversation__free_unpacked(r.u.route.conv, NULL);
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_OUTBOX_ADD;
    r.hooks = calloc(1, sizeof *r.hooks);
    r.hooks->n = 1;
    snprintf(r.hooks->endpoint[0], sizeof r.hooks->endpoint[0], "crm");
    r.hooks->wants[0] = SB_HOOK_CSAT_SUBMITTED;
    r.hooks->event = SB_HOOK_CSAT_SUBMITTED;
    r.hooks->payload = strdup("{\"rating\":5}");
    snprintf(r.hooks->subject, sizeof r.hooks->subject, "alice");
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    c.now_ms = NOW + 4000;
    sb_storeq_apply(s, &c);
    assert_int_equal(c.u.outbox.n_rows, 2);
    bool closed = false, csat = false;
    for (size_t i = 0; i < c.u.outbox.n_rows; i++) {
        closed |=
            strcmp(c.u.outbox.rows[i].event, "conversation.closed") == 0 &&
            strcmp(c.u.outbox.rows[i].endpoint, "bi") == 0;
        csat |= strcmp(c.u.outbox.rows[i].event, "csat.submitted") == 0 &&
                strcmp(c.u.outbox.rows[i].endpoint, "crm") == 0;
    }
    assert_true(closed && csat);
    sb_store_hooks_free(c.u.outbox.rows, c.u.outbox.n_rows);

    /* The search index has alice's words first. */
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_index(s, 100, NULL), 0);
    assert_int_equal(sb_store_commit(s), 0);
    Sbp__SearchResp *found = NULL;
    assert_int_equal(
        sb_store_search(s, "bob", false, conv, "plans", 10, &found), 0);
    assert_int_equal(found->n_messages, 1);
    sbp__search_resp__free_unpacked(found, NULL);

    /* Erasure of alice: her body, her event; bob's words stay. */
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_USER_ERASE;
    snprintf(r.u.erase.user_id, sizeof r.u.erase.user_id, "alice");
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.u.erase.erased.messages, 1);
    assert_int_equal(r.u.erase.erased.outbox_events, 1);
    Sbp__HistoryResp *hr = NULL;
    assert_int_equal(sb_store_history(s, conv, 0, 10, &hr), 0);
    assert_int_equal(hr->n_messages, 2); /* seqs 1 and 2, both kept */
    sbp__history_resp__free_unpacked(hr, NULL);
    Sbp__Message *got = NULL;
    assert_int_equal(sb_store_msg_get(s, conv, 1, &got), 0);
    assert_string_equal(got->body, "");
    sbp__message__free_unpacked(got, NULL);
    assert_int_equal(sb_store_msg_get(s, conv, 2, &got), 0);
    assert_string_equal(got->body, "bob's words");
    sbp__message__free_unpacked(got, NULL);
    Sbp__SearchResp *sr = NULL;
    assert_int_equal(sb_store_search(s, "bob", false, conv, "plans", 10, &sr),
                     0);
    assert_int_equal(sr->n_messages, 0);
    sbp__search_resp__free_unpacked(sr, NULL);
    sb_storeq_apply(s, &r);
    assert_int_equal(r.u.erase.erased.messages, 0); /* idempotent */
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* Settings in the store: stored through storeq as one, read back after a
 * reopen, refused when malformed; and an external bot's membership of a
 * service conversation following its state. */
static int note1(sb_store *s, uint64_t conv, const char *from, const char *note)
{
    int rc = sb_store_begin(s);
    if (rc == 0) rc = sb_store_conv_note(s, conv, from, note);
    if (rc == 0) rc = sb_store_commit(s);
    if (rc) sb_store_rollback(s);
    return rc;
}

/* A transfer's note: set with a route (or alone), read back by every read
 * of the conversation, cleared with "", its limits; a TAG's event gets
 * the tags after the change, and only once however often its request
 * runs. */
static void test_note_and_tag_event(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(mem_open(&s), 0);
    uint64_t c = svc_open1(s, "cust", "shop", "", NOW, NULL);
    Sbp__Conversation *g = conv_get1(s, c);
    assert_string_equal(g->transfer_note, "");
    assert_string_equal(g->transfer_from, "");
    sbp__conversation__free_unpacked(g, NULL);

    sb_req r;
    route_req(&r, c, SBP__CONV_STATE__STATE_ASSIGNED, "g", "bob", NOW + 1);
    r.u.route.note = "VIP: refund approved";
    snprintf(r.u.route.note_from, sizeof r.u.route.note_from, "ann");
    r.msgs[r.n_msgs++] = event_msg("conv.transferred");
    r.msgs[0]->conv_id = c;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.u.route.conv->transfer_note, "VIP: refund approved");
    assert_string_equal(r.u.route.conv->transfer_from, "ann");
    assert_string_equal(r.u.route.conv->agent, "bob");
    sbp__conversation__free_unpacked(r.u.route.conv, NULL);
    free_msgs(&r);
    /* A route without a note leaves it; the list shows it. */
    route_req(&r, c, SBP__CONV_STATE__STATE_CLOSED, "g", "bob", NOW + 2);
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.u.route.conv->transfer_note, "VIP: refund approved");
    assert_string_equal(r.u.route.conv->agent, "bob"); /* closed, kept */
    assert_true(has_member(r.u.route.conv, "bob", SBP__ROLE__ROLE_AGENT));
    sbp__conversation__free_unpacked(r.u.route.conv, NULL);
    Sbp__ConvListResp *l = NULL;
    assert_int_equal(sb_store_conv_list(s, "bob", false,
                                        SBP__CONV_STATE__STATE_CLOSED, "", NULL,
                                        0, "", 10, &l),
                     0);
    assert_int_equal(l->n_convs, 1);
    assert_string_equal(l->convs[0]->transfer_note, "VIP: refund approved");
    sbp__conv_list_resp__free_unpacked(l, NULL);
    /* Cleared; the limits. */
    assert_int_equal(note1(s, c, "", ""), 0);
    g = conv_get1(s, c);
    assert_string_equal(g->transfer_note, "");
    assert_string_equal(g->transfer_from, "");
    sbp__conversation__free_unpacked(g, NULL);
    char big[SB_NOTE_BYTES_MAX + 2];
    memset(big, 'n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(note1(s, c, "ann", big), SB_E_TOO_LARGE);
    big[SB_NOTE_BYTES_MAX] = '\0';
    assert_int_equal(note1(s, c, "ann", big), 0);
    assert_int_equal(note1(s, c, "ann", "bad \xff utf-8"), SB_E_INVALID);
    assert_int_equal(note1(s, 999999, "ann", "x"), SB_E_NOT_FOUND);
    g = conv_get1(s, c);
    assert_int_equal(strlen(g->transfer_note), SB_NOTE_BYTES_MAX);
    sbp__conversation__free_unpacked(g, NULL);

    /* TAG with its event: [user, seq] then the tags after the change. */
    Sbp__Message ack;
    assert_int_equal(append1(s, c, "cust", 10, "refund please", 0, &ack, NULL),
                     0);
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_TAG;
    char *add[] = {"refund", "urgent"};
    r.u.tag.conv_id = c;
    r.u.tag.seq = ack.seq;
    r.u.tag.add = add;
    r.u.tag.n_add = 2;
    Sbp__Message *ev = event_msg("msg.tagged");
    ev->conv_id = c;
    ev->event->args = calloc(2, sizeof(char *));
    ev->event->args[0] = strdup("bob");
    ev->event->args[1] = strdup("1");
    ev->event->n_args = 2;
    r.msgs[r.n_msgs++] = ev;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(ev->event->n_args, 4);
    assert_string_equal(ev->event->args[0], "bob");
    assert_string_equal(ev->event->args[2], "refund");
    assert_string_equal(ev->event->args[3], "urgent");
    uint64_t first = ev->seq;
    /* The same request again (a transaction run twice): the tags are
     * replaced, not added again. */
    r.u.tag.n_add = 1;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(ev->event->n_args, 4);
    assert_true(ev->seq > first);
    Sbp__Message *m = msg_get1(s, c, ev->seq);
    assert_non_null(m->event);
    assert_int_equal(m->event->n_args, 4);
    sbp__message__free_unpacked(m, NULL);
    free_msgs(&r);
    sb_store_close(s);
}

static void test_config_and_bot_members(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    if (!on_pg())
        assert_int_equal(raw_int(t.path, "PRAGMA user_version"),
                         SB_SQLITE_SCHEMA_VERSION);
    char *v = NULL;
    size_t n = 0;
    assert_int_equal(sb_store_config_get(s, "desk", &v, &n), SB_E_NOT_FOUND);
    assert_null(v);

    sb_req r;
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_CONFIG_SET;
    r.u.config.n = 2;
    snprintf(r.u.config.keys[0], sizeof r.u.config.keys[0], "desk");
    snprintf(r.u.config.keys[1], sizeof r.u.config.keys[1], "desk.hash");
    r.u.config.values[0] = "{\"desks\":[]}";
    r.u.config.lens[0] = strlen(r.u.config.values[0]);
    r.u.config.values[1] = "abc";
    r.u.config.lens[1] = 3;
    r.now_ms = NOW;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    /* A bad second value undoes the first. */
    r.u.config.values[0] = "changed";
    r.u.config.lens[0] = 7;
    r.u.config.values[1] = "\xff";
    r.u.config.lens[1] = 1;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_INVALID);
    r.u.config.n = 0;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, SB_E_INVALID);
    sb_store_close(s);

    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_CONFIG_GET;
    r.u.config.n = 2;
    snprintf(r.u.config.keys[0], sizeof r.u.config.keys[0], "desk");
    snprintf(r.u.config.keys[1], sizeof r.u.config.keys[1], "nothing");
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.u.config.values[0], "{\"desks\":[]}");
    assert_int_equal(r.u.config.lens[0], 12);
    assert_null(r.u.config.values[1]);
    free(r.u.config.values[0]);
    assert_int_equal(sb_store_config_get(s, "desk.hash", &v, &n), 0);
    assert_string_equal(v, "abc");
    free(v);
    assert_int_equal(sb_store_config_get(s, "", &v, &n), SB_E_INVALID);

    /* The bot joins the conversation it opens with, and leaves when the
     * conversation leaves STATE_BOT. */
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_SERVICE_OPEN;
    snprintf(r.u.svc_open.customer, sizeof r.u.svc_open.customer, "cust");
    snprintf(r.u.svc_open.bot, sizeof r.u.svc_open.bot, "helper");
    r.now_ms = NOW;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    Sbp__Conversation *c = r.u.svc_open.conv;
    assert_int_equal(c->n_members, 2);
    assert_string_equal(c->members[1]->user_id, "helper");
    assert_int_equal(c->members[1]->role, SBP__ROLE__ROLE_BOT);
    uint64_t id = c->conv_id;
    sbp__conversation__free_unpacked(c, NULL);
    route_req(&r, id, SBP__CONV_STATE__STATE_QUEUED, "g", "", NOW + 1);
    snprintf(r.u.route.bot, sizeof r.u.route.bot, "helper");
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.u.route.conv->n_members, 1);
    sbp__conversation__free_unpacked(r.u.route.conv, NULL);
    route_req(&r, id, SBP__CONV_STATE__STATE_BOT, "g", "", NOW + 2);
    snprintf(r.u.route.bot, sizeof r.u.route.bot, "helper");
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.u.route.conv->n_members, 2);
    sbp__conversation__free_unpacked(r.u.route.conv, NULL);
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(
        sb_store_member_put(s, 999, "helper", SBP__ROLE__ROLE_BOT, NOW),
        SB_E_NOT_FOUND);
    assert_int_equal(sb_store_member_put(s, id, "", SBP__ROLE__ROLE_BOT, NOW),
                     SB_E_INVALID);
    assert_int_equal(sb_store_member_del(s, id, "nobody"), 0);
    sb_store_rollback(s);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_dense),
        cmocka_unit_test(test_append_duplicate),
        cmocka_unit_test(test_append_refused),
        cmocka_unit_test(test_user),
        cmocka_unit_test(test_conv_create_get),
        cmocka_unit_test(test_cursor_read_monotonic),
        cmocka_unit_test(test_cursor_ack_many),
        cmocka_unit_test(test_sync_paging),
        cmocka_unit_test(test_history_paging),
        cmocka_unit_test(test_persistence),
        cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_storeq_group_commit),
        cmocka_unit_test(test_storeq_checkpoints),
        cmocka_unit_test(test_storeq_stop_drains),
        cmocka_unit_test(test_storeq_full_disk),
        cmocka_unit_test_teardown(test_storeq_wal_write_fails, fsize_reset),
        cmocka_unit_test_teardown(test_storeq_checkpoint_fails, fsize_reset),
        cmocka_unit_test(test_storeq_checkpoint_busy),
        cmocka_unit_test(test_storeq_start_refusals),
        cmocka_unit_test(test_storeq_memory),
        cmocka_unit_test(test_storeq_batch_isolation),
        cmocka_unit_test(test_storeq_apply),
        cmocka_unit_test(test_service_open),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_structured_parts),
        cmocka_unit_test(test_recall_quote),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_conv_list),
        cmocka_unit_test(test_conv_list_paging_concurrent),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_service_convs),
        cmocka_unit_test(test_migrate_v1),
        cmocka_unit_test(test_review_flag),
        cmocka_unit_test(test_storeq_route_atomic),
        cmocka_unit_test(test_storeq_apply_service),
        cmocka_unit_test(test_config_and_bot_members),
        cmocka_unit_test(test_note_and_tag_event),
        cmocka_unit_test(test_outbox_and_erase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
