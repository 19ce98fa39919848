/* The embedded store and its threads: dense seqs, idempotency across a
 * reopen, refusals that leave no trace, monotonic cursors and receipts, SYNC
 * and HISTORY paging, group commit and ordered completion, draining on
 * stop, and a full disk (SQLite's max_page_count) that loses nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "sb_error.h"
#include "sb_store.h"
#include "sb_storeq.h"

#define NOW 1800000000000LL

/* ---- helpers ------------------------------------------------------------- */

typedef struct tmpdb {
    char dir[64];
    char path[96];
} tmpdb;

static void tmpdb_make(tmpdb *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/sbstore.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/sb.db", t->dir);
}

static void tmpdb_remove(tmpdb *t)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[128];
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        snprintf(p, sizeof p, "%s%s", t->path, sfx[i]);
        unlink(p);
    }
    rmdir(t->dir);
}

/* One integer from SQL run on a separate, read-only connection: what a
 * fresh reader of the file sees, bypassing the store's API. */
static int64_t raw_int(const char *path, const char *sql)
{
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
    Sbp__Role roles[SB_STORE_MEMBERS_MAX];
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
    assert_int_equal(sb_store_open(":memory:", SB_DURABILITY_OS, &s), 0);
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
    tmpdb t;
    tmpdb_make(&t);
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
    tmpdb_remove(&t);
}

static void test_append_refused(void **state)
{
    (void)state;
    tmpdb t;
    tmpdb_make(&t);
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
    tmpdb_remove(&t);
}

/* ---- users, conversations, cursors, receipts ----------------------------- */

static void test_user(void **state)
{
    (void)state;
    sb_store *s = NULL;
    Sbp__Role r;
    assert_int_equal(sb_store_open(":memory:", SB_DURABILITY_OS, &s), 0);
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
    assert_int_equal(sb_store_open(":memory:", SB_DURABILITY_OS, &s), 0);
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
    const char *many[SB_STORE_MEMBERS_MAX + 1];
    Sbp__Role many_roles[SB_STORE_MEMBERS_MAX + 1];
    char names[SB_STORE_MEMBERS_MAX + 1][8];
    for (int i = 0; i <= SB_STORE_MEMBERS_MAX; i++) {
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
                                          many, many_roles,
                                          SB_STORE_MEMBERS_MAX + 1, NOW, &x),
                     SB_E_INVALID);
    assert_null(x);
    assert_int_equal(sb_store_conv_create(s, SBP__CONV_KIND__CONV_DIRECT, NULL,
                                          many, many_roles,
                                          SB_STORE_MEMBERS_MAX, NOW, &x),
                     0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(x->conv_id, c->conv_id + 1);
    assert_int_equal(x->n_members, SB_STORE_MEMBERS_MAX);
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
    /* never seen: stays unspecified */
    const char *unseen[] = {"cust", "ghost"};
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_conv_create(s, SBP__CONV_KIND__CONV_SERVICE, "",
                                          unseen, asked, 2, NOW, &x),
                     0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(x->members[1]->role, SBP__ROLE__ROLE_UNSPECIFIED);
    sbp__conversation__free_unpacked(x, NULL);
    sbp__conversation__free_unpacked(c, NULL);
    sb_store_close(s);
}

static void receipt_of(sb_store *s, uint64_t conv, const char *user,
                       uint64_t *read, uint64_t *delivered)
{
    Sbp__ReadNotify **list = NULL;
    size_t n = 0;
    assert_int_equal(sb_store_receipts(s, conv, &list, &n), 0);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(list[i]->conv_id, conv);
        if (strcmp(list[i]->user_id, user) == 0) {
            *read = list[i]->read_seq;
            *delivered = list[i]->delivered_seq;
            found = true;
        }
        sbp__read_notify__free_unpacked(list[i], NULL);
    }
    free(list);
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
    tmpdb t;
    tmpdb_make(&t);
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

    Sbp__ReadNotify **list = (Sbp__ReadNotify **)1;
    size_t n = 9;
    assert_int_equal(sb_store_receipts(s, c + 1, &list, &n), SB_E_NOT_FOUND);
    assert_null(list);
    assert_int_equal(n, 0);
    sb_store_close(s);
    tmpdb_remove(&t);
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
    assert_int_equal(sb_store_open(":memory:", SB_DURABILITY_OS, &w->s), 0);
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
    tmpdb t;
    tmpdb_make(&t);
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
    assert_int_equal(raw_int(t.path, "PRAGMA user_version"), 1);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), 101);
    sb_store_close(s);

    /* A file from a newer schema is refused, not clobbered. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    s = (sb_store *)1;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_FSYNC, &s),
                     SB_E_STORE);
    assert_null(s);
    tmpdb_remove(&t);
}

static void test_full_disk(void **state)
{
    (void)state;
    tmpdb t;
    tmpdb_make(&t);
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
    tmpdb_remove(&t);
}

/* ---- storeq -------------------------------------------------------------- */

typedef struct qctx {
    sb_req **order; /* completion order */
    size_t n, cap;
    sb_storeq *q;
    sb_req *extra; /* submitted from a callback, if set */
} qctx;

static void on_done(sb_req *r, void *ud)
{
    qctx *c = ud;
    assert_true(c->n < c->cap);
    c->order[c->n++] = r;
    if (c->extra && r->owner == 1) {
        sb_req *x = c->extra;
        c->extra = NULL;
        sb_storeq_submit(c->q, x);
    }
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
    a->req.kind = SB_REQ_APPEND;
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
    a->req.u.append.now_ms = NOW;
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
    r.u.create.now_ms = NOW;
    size_t before = ctx->n;
    sb_storeq_submit(q, &r);
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
    tmpdb t;
    tmpdb_make(&t);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qctx ctx = {.cap = N + 100};
    ctx.order = calloc(ctx.cap, sizeof *ctx.order);
    sb_storeq *q = NULL;
    assert_int_equal(
        sb_storeq_start(&loop, t.path, SB_DURABILITY_FSYNC, on_done, &ctx, &q),
        0);
    ctx.q = q;
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
        sb_storeq_submit(q, &a[i].req);
    assert_int_equal(sb_storeq_pending(q), N);
    run_all(&loop, q);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    uint64_t commits = sb_storeq_commits(q) - commits0;
    print_message("storeq: %d appends in %.3f s (%.0f/s), %llu commits\n", N,
                  secs, N / secs, (unsigned long long)commits);

    assert_int_equal(ctx.n, N);
    uint64_t next[NC] = {0};
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(ctx.order[i], &a[i].req); /* submission order */
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
    rc.kind = SB_REQ_RECEIPTS;
    rc.u.receipts.conv_id = conv[0];
    ctx.n = 0;
    sb_storeq_submit(q, &h);
    sb_storeq_submit(q, &g);
    sb_storeq_submit(q, &sy);
    sb_storeq_submit(q, &rc);
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
    assert_int_equal(rc.u.receipts.n, 2);
    for (size_t i = 0; i < rc.u.receipts.n; i++)
        sbp__read_notify__free_unpacked(rc.u.receipts.list[i], NULL);
    free(rc.u.receipts.list);

    /* Retries through the queue are duplicates with the original answer. */
    appreq d;
    appreq_init(&d, conv[0], "agent", 0, "again");
    ctx.n = 0;
    sb_storeq_submit(q, &d.req);
    run_all(&loop, q);
    assert_int_equal(d.req.rc, 0);
    assert_true(d.req.u.append.duplicate);
    assert_int_equal(d.msg.msg_id, a[0].msg.msg_id);
    assert_int_equal(d.msg.seq, 1);

    sb_storeq_stop(q);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* closes the async */
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), N);
    free(a);
    free(ctx.order);
    tmpdb_remove(&t);
}

static void test_storeq_stop_drains(void **state)
{
    (void)state;
    enum { N = 2000 };
    tmpdb t;
    tmpdb_make(&t);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qctx ctx = {.cap = N + 100};
    ctx.order = calloc(ctx.cap, sizeof *ctx.order);
    sb_storeq *q = NULL;
    assert_int_equal(
        sb_storeq_start(&loop, t.path, SB_DURABILITY_OS, on_done, &ctx, &q), 0);
    ctx.q = q;
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
        sb_storeq_submit(q, &a[i].req);
        if (i % 500 == 0) sb_storeq_submit(q, &reads[i / 500]);
    }
    sb_storeq_submit(q, &reads[4]);
    sb_storeq_submit(q, &bogus);
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
        if (ctx.order[i]->kind != SB_REQ_APPEND) continue;
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
    tmpdb_remove(&t);
}

static void test_storeq_full_disk(void **state)
{
    (void)state;
    tmpdb t;
    tmpdb_make(&t);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qctx ctx = {.cap = 100};
    ctx.order = calloc(ctx.cap, sizeof *ctx.order);
    sb_storeq *q = NULL;
    assert_int_equal(
        sb_storeq_start(&loop, t.path, SB_DURABILITY_FSYNC, on_done, &ctx, &q),
        0);
    ctx.q = q;
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
    sb_storeq_submit(q, &small.req);
    sb_storeq_submit(q, &missing.req);
    sb_storeq_submit(q, &large.req);
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
    sb_storeq_submit(q, &small.req);
    run_all(&loop, q);
    assert_int_equal(small.req.rc, 0);
    assert_false(small.req.u.append.duplicate);
    assert_int_equal(small.msg.seq, 1);
    sb_storeq_submit(q, &large.req);
    run_all(&loop, q);
    assert_int_equal(large.req.rc, SB_E_STORE);

    /* Space freed: the retry succeeds with the next seq. */
    sb__storeq_max_pages(q, 0);
    sb_storeq_submit(q, &large.req);
    run_all(&loop, q);
    assert_int_equal(large.req.rc, 0);
    assert_int_equal(large.msg.seq, 2);
    sb_storeq_submit(q, &missing.req);
    run_all(&loop, q);
    assert_int_equal(missing.req.rc, SB_E_NOT_FOUND);
    assert_int_equal(raw_int(t.path, "SELECT count(*) FROM messages"), 2);
    assert_int_equal(raw_int(t.path, "SELECT sum(length(body)) FROM messages"),
                     (int64_t)(big_len + 5));

    sb_storeq_stop(q);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(big);
    free(ctx.order);
    tmpdb_remove(&t);
}

static void test_storeq_start_refusals(void **state)
{
    (void)state;
    uv_loop_t loop;
    qctx ctx = {.cap = 1};
    assert_int_equal(uv_loop_init(&loop), 0);
    sb_storeq *q = (sb_storeq *)1;
    assert_int_equal(sb_storeq_start(&loop, "/nonexistent/dir/sb.db",
                                     SB_DURABILITY_OS, on_done, &ctx, &q),
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
    enum { N = 3000 };
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qctx ctx = {.cap = 2 * N + 100};
    ctx.order = calloc(ctx.cap, sizeof *ctx.order);
    sb_storeq *q = NULL;
    assert_int_equal(
        sb_storeq_start(&loop, ":memory:", SB_DURABILITY_OS, on_done, &ctx, &q),
        0);
    ctx.q = q;
    uint64_t c = q_conv_create(&loop, q, &ctx, "cust", "agent");
    appreq *a = calloc(N, sizeof *a);
    sb_req *g = calloc(N, sizeof *g);
    ctx.n = 0;
    for (int i = 0; i < N; i++) {
        appreq_init(&a[i], c, "cust", (uint64_t)i, "m");
        sb_storeq_submit(q, &a[i].req);
        g[i].kind = SB_REQ_CONV_GET;
        g[i].u.conv_get.conv_id = c;
        sb_storeq_submit(q, &g[i]);
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
        if (r->kind == SB_REQ_APPEND) {
            assert_int_equal(((appreq *)r)->msg.seq, ++completed);
        } else {
            uint64_t ls = r->u.conv_get.conv->last_seq;
            assert_true(ls >= seen);
            seen = ls;
            sbp__conversation__free_unpacked(r->u.conv_get.conv, NULL);
        }
    }
    assert_int_equal(completed, N);
    sb_storeq_stop(q);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
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
    assert_int_equal(uv_loop_init(&loop), 0);
    qctx ctx = {.cap = N + R + 10};
    ctx.order = calloc(ctx.cap, sizeof *ctx.order);
    sb_storeq *q = NULL;
    assert_int_equal(
        sb_storeq_start(&loop, path, SB_DURABILITY_OS, on_done, &ctx, &q), 0);
    ctx.q = q;
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
        sb_storeq_submit(q, &a[i].req);
    }
    sb__storeq_hold(q, false);
    for (int i = 0; i < R; i++) {
        g[i].kind = SB_REQ_CONV_GET;
        g[i].u.conv_get.conv_id = c;
        sb_storeq_submit(q, &g[i]);
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
    sb_storeq_stop(q);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(g);
    free(a);
    free(ctx.order);
}

static void test_storeq_batch_isolation(void **state)
{
    (void)state;
    tmpdb t;
    tmpdb_make(&t);
    batch_isolation(t.path);
    batch_isolation(":memory:");
    tmpdb_remove(&t);
}

/* sb_storeq_apply: each kind of request, synchronously. */
static void test_storeq_apply(void **state)
{
    (void)state;
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(":memory:", SB_DURABILITY_OS, &s), 0);
    sb_req r;
    memset(&r, 0, sizeof r);
    r.kind = SB_REQ_USER;
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
    r.kind = SB_REQ_CURSOR_ACK;
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
    r.kind = SB_REQ_RECEIPTS;
    r.u.receipts.conv_id = c;
    sb_storeq_apply(s, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.u.receipts.n, 2);
    assert_string_equal(r.u.receipts.list[0]->user_id, "ann");
    assert_int_equal(r.u.receipts.list[0]->delivered_seq, 1);
    for (size_t i = 0; i < r.u.receipts.n; i++)
        sbp__read_notify__free_unpacked(r.u.receipts.list[i], NULL);
    free(r.u.receipts.list);

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_dense),
        cmocka_unit_test(test_append_duplicate),
        cmocka_unit_test(test_append_refused),
        cmocka_unit_test(test_user),
        cmocka_unit_test(test_conv_create_get),
        cmocka_unit_test(test_cursor_read_monotonic),
        cmocka_unit_test(test_sync_paging),
        cmocka_unit_test(test_history_paging),
        cmocka_unit_test(test_persistence),
        cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_storeq_group_commit),
        cmocka_unit_test(test_storeq_stop_drains),
        cmocka_unit_test(test_storeq_full_disk),
        cmocka_unit_test(test_storeq_start_refusals),
        cmocka_unit_test(test_storeq_memory),
        cmocka_unit_test(test_storeq_batch_isolation),
        cmocka_unit_test(test_storeq_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
