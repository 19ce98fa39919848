/* The store's agent side (SQLite, or the PostgreSQL of pgtest.h:
 * test_agent_pg): a service conversation's notes made once and joined,
 * kept out of its members and of the customer's reads (SYNC, the list,
 * search), with a seq space of their own; the refusals (no such
 * conversation, not a service one, a customer or a bot joining, no notes
 * without create); the store queue's NOTES_OPEN undone whole when a member
 * is refused; contacts made, merged and checked field by field, a known
 * agent's id refused, a contact's conversations newest first, erasure;
 * CONTACT_GET and CONTACT_SET through the queue with their access checks;
 * the migration of a store of the version before (SQLite 7, PostgreSQL
 * 4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "pgtest.h"
#include "sb_error.h"
#include "sb_req.h"
#include "sb_sqlite_int.h" /* the schema of each version */
#include "sb_store.h"
#include "sb_storeq.h"

#define NOW 1800000000000LL

static bool on_pg(void)
{
    return pgtest_url() != NULL;
}

static uint64_t svc_open(sb_store *s, const char *cust, int64_t at)
{
    Sbp__Conversation *c = NULL;
    bool created;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(
        sb_store_service_open(s, cust, "d", "g1", at, &c, &created), 0);
    assert_int_equal(sb_store_commit(s), 0);
    uint64_t id = c->conv_id;
    sbp__conversation__free_unpacked(c, NULL);
    return id;
}

static void route(sb_store *s, uint64_t c, Sbp__ConvState st, const char *agent)
{
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_conv_route(s, c, st, "g1", agent, NOW, NULL), 0);
    assert_int_equal(sb_store_commit(s), 0);
}

/* NOTES_OPEN in a transaction of its own (rolled back when refused). */
static int notes_open(sb_store *s, uint64_t conv, bool create, const char *user,
                      Sbp__Role role, Sbp__Conversation **out, bool *changed)
{
    const char *ids[1] = {user};
    bool ch = false;
    assert_int_equal(sb_store_begin(s), 0);
    int rc = sb_store_notes_open(s, conv, create, ids, &role, user ? 1 : 0, NOW,
                                 out, &ch);
    if (rc)
        sb_store_rollback(s);
    else
        assert_int_equal(sb_store_commit(s), 0);
    if (changed) *changed = ch;
    return rc;
}

static int append(sb_store *s, uint64_t conv, const char *sender, uint8_t n,
                  const char *body, uint64_t *seq)
{
    uint8_t id[16];
    memset(id, n, sizeof id);
    Sbp__Message m = SBP__MESSAGE__INIT;
    m.conv_id = conv;
    m.sender = (char *)sender;
    m.sender_device = "dev";
    m.client_msg_id.data = id;
    m.client_msg_id.len = sizeof id;
    m.type = SBP__MSG_TYPE__MSG_TEXT;
    m.body = (char *)body;
    m.lang = "en";
    bool dup;
    assert_int_equal(sb_store_begin(s), 0);
    int rc = sb_store_append(s, &m, NOW + n, &dup);
    if (rc)
        sb_store_rollback(s);
    else
        assert_int_equal(sb_store_commit(s), 0);
    if (seq) *seq = m.seq;
    return rc;
}

static bool has_member(const Sbp__Conversation *c, const char *user)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (strcmp(c->members[i]->user_id, user) == 0) return true;
    return false;
}

/* ---- notes -----------------------------------------------------------------
 */

static void test_notes(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    uint64_t conv = svc_open(s, "cu", NOW);
    route(s, conv, SBP__CONV_STATE__STATE_ASSIGNED, "ann");
    uint64_t m1;
    assert_int_equal(append(s, conv, "cu", 1, "hello there", &m1), 0);

    /* None yet, and refusals. */
    Sbp__Conversation *n = NULL;
    const Sbp__Role AGENT = SBP__ROLE__ROLE_AGENT;
    assert_int_equal(notes_open(s, conv, false, "ann", AGENT, &n, NULL),
                     SB_E_NOT_FOUND);
    assert_int_equal(notes_open(s, 9999, true, "ann", AGENT, &n, NULL),
                     SB_E_NOT_FOUND);
    assert_int_equal(
        notes_open(s, conv, true, "cu", SBP__ROLE__ROLE_CUSTOMER, &n, NULL),
        SB_E_INVALID);
    assert_int_equal(
        notes_open(s, conv, true, "bot", SBP__ROLE__ROLE_BOT, &n, NULL),
        SB_E_INVALID);
    assert_int_equal(notes_open(s, conv, true, "", AGENT, &n, NULL),
                     SB_E_INVALID);

    /* Made, with ann; made once. */
    bool changed = false;
    assert_int_equal(notes_open(s, conv, true, "ann", AGENT, &n, &changed), 0);
    assert_true(changed);
    assert_int_equal(n->kind, SBP__CONV_KIND__CONV_NOTES);
    assert_int_equal(n->notes_of, conv);
    assert_string_equal(n->desk, "d");
    assert_int_equal(n->n_members, 1);
    assert_true(has_member(n, "ann"));
    uint64_t notes = n->conv_id;
    sbp__conversation__free_unpacked(n, NULL);
    assert_int_equal(notes_open(s, conv, true, "ann", AGENT, &n, &changed), 0);
    assert_false(changed);
    assert_int_equal(n->conv_id, notes);
    sbp__conversation__free_unpacked(n, NULL);
    /* Notes of notes, or of a direct conversation: refused. */
    assert_int_equal(notes_open(s, notes, true, "ann", AGENT, &n, NULL),
                     SB_E_INVALID);
    /* An admin joins; with nobody, the notes as they are. */
    assert_int_equal(
        notes_open(s, conv, false, "root", SBP__ROLE__ROLE_ADMIN, &n, &changed),
        0);
    assert_true(changed);
    assert_int_equal(n->n_members, 2);
    sbp__conversation__free_unpacked(n, NULL);
    assert_int_equal(notes_open(s, conv, false, NULL, AGENT, &n, &changed), 0);
    assert_false(changed);
    sbp__conversation__free_unpacked(n, NULL);

    /* Notes have their own seqs; the conversation keeps its own. */
    uint64_t n1, m2;
    assert_int_equal(append(s, notes, "ann", 2, "secret note", &n1), 0);
    assert_int_equal(n1, 1);
    assert_int_equal(append(s, conv, "ann", 3, "public answer", &m2), 0);
    assert_int_equal(m2, m1 + 1);
    Sbp__Conversation *c = NULL;
    assert_int_equal(sb_store_conv_get(s, conv, &c), 0);
    assert_false(has_member(c, "root"));
    assert_int_equal(c->notes_of, 0);
    sbp__conversation__free_unpacked(c, NULL);

    /* The customer's reads meet no note. */
    Sbp__SyncResp *sy = NULL;
    assert_int_equal(sb_store_sync(s, "cu", false, NULL, 0, 0, 0, &sy), 0);
    for (size_t i = 0; i < sy->n_messages; i++)
        assert_int_equal(sy->messages[i]->conv_id, conv);
    for (size_t i = 0; i < sy->n_convs; i++)
        assert_int_equal(sy->convs[i]->conv_id, conv);
    sbp__sync_resp__free_unpacked(sy, NULL);
    Sbp__SearchResp *sr = NULL;
    assert_int_equal(sb_store_search(s, "cu", false, 0, "secret", 10, &sr), 0);
    assert_int_equal(sr->n_messages, 0);
    sbp__search_resp__free_unpacked(sr, NULL);
    assert_int_equal(sb_store_search(s, "ann", false, 0, "secret", 10, &sr), 0);
    assert_int_equal(sr->n_messages, 1);
    assert_int_equal(sr->messages[0]->conv_id, notes);
    sbp__search_resp__free_unpacked(sr, NULL);
    /* Lists hold the conversation, not its notes: ann's and everyone's. */
    Sbp__ConvListResp *l = NULL;
    assert_int_equal(
        sb_store_conv_list(s, "ann", false, 0, "", NULL, 0, "", 50, &l), 0);
    assert_int_equal(l->n_convs, 1);
    assert_int_equal(l->convs[0]->conv_id, conv);
    sbp__conv_list_resp__free_unpacked(l, NULL);
    assert_int_equal(
        sb_store_conv_list(s, "root", true, 0, "", NULL, 0, "", 50, &l), 0);
    assert_int_equal(l->n_convs, 1);
    sbp__conv_list_resp__free_unpacked(l, NULL);
    /* ann syncs both. */
    assert_int_equal(sb_store_sync(s, "ann", false, NULL, 0, 0, 0, &sy), 0);
    bool saw_note = false;
    for (size_t i = 0; i < sy->n_messages; i++)
        saw_note |= sy->messages[i]->conv_id == notes;
    assert_true(saw_note);
    sbp__sync_resp__free_unpacked(sy, NULL);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* ---- contacts --------------------------------------------------------------
 */

static int put(sb_store *s, const char *user, const sb_store_contact_change *ch,
               Sbp__Contact **out)
{
    assert_int_equal(sb_store_begin(s), 0);
    int rc = sb_store_contact_put(s, user, ch, NOW, out);
    if (rc)
        sb_store_rollback(s);
    else
        assert_int_equal(sb_store_commit(s), 0);
    return rc;
}

static const char *attr(const Sbp__Contact *c, const char *key)
{
    for (size_t i = 0; i < c->n_attributes; i++)
        if (strcmp(c->attributes[i]->key, key) == 0)
            return c->attributes[i]->value;
    return NULL;
}

static Sbp__ContactAttr *kv(Sbp__ContactAttr *a, const char *k, const char *v)
{
    sbp__contact_attr__init(a);
    a->key = (char *)k;
    a->value = (char *)v;
    return a;
}

static void test_contacts(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    Sbp__Contact *c = NULL;
    assert_int_equal(sb_store_contact_get(s, "cu", &c), SB_E_NOT_FOUND);

    Sbp__ContactAttr r[4];
    Sbp__ContactAttr *a[4] = {kv(&r[0], "plan", "pro"),
                              kv(&r[1], "order", "42"),
                              kv(&r[2], "city", "Paris")};
    sb_store_contact_change ch = {.name = "Ada",
                                  .email = "ada@example.org",
                                  .attrs = a,
                                  .n_attrs = 3,
                                  .verified = true,
                                  .by = "site"};
    assert_int_equal(put(s, "cu", &ch, &c), 0);
    assert_string_equal(c->name, "Ada");
    assert_true(c->verified);
    assert_int_equal(c->updated_ts, NOW);
    assert_int_equal(c->n_attributes, 3);
    /* Sorted by key. */
    assert_string_equal(c->attributes[0]->key, "city");
    assert_string_equal(c->attributes[2]->key, "plan");
    sbp__contact__free_unpacked(c, NULL);

    /* Merged: a value replaced, one removed, one added; empty fields keep
     * theirs; verified stays. */
    a[0] = kv(&r[0], "plan", "");
    a[1] = kv(&r[1], "order", "43");
    a[2] = kv(&r[2], "vip", "yes");
    ch = (sb_store_contact_change){
        .name = "", .attrs = a, .n_attrs = 3, .by = "ann"};
    assert_int_equal(put(s, "cu", &ch, NULL), 0);
    assert_int_equal(sb_store_contact_get(s, "cu", &c), 0);
    assert_string_equal(c->name, "Ada");
    assert_string_equal(c->email, "ada@example.org");
    assert_null(attr(c, "plan"));
    assert_string_equal(attr(c, "order"), "43");
    assert_string_equal(attr(c, "vip"), "yes");
    assert_string_equal(attr(c, "city"), "Paris");
    assert_true(c->verified);
    assert_string_equal(c->updated_by, "ann");
    sbp__contact__free_unpacked(c, NULL);
    ch = (sb_store_contact_change){.clear_email = true, .by = "ann"};
    assert_int_equal(put(s, "cu", &ch, &c), 0);
    assert_string_equal(c->email, "");
    sbp__contact__free_unpacked(c, NULL);

    /* Refusals change nothing. */
    char big[SB_CONTACT_VALUE_BYTES_MAX + 2];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    a[0] = kv(&r[0], "k", big);
    ch = (sb_store_contact_change){.attrs = a, .n_attrs = 1};
    assert_int_equal(put(s, "cu", &ch, NULL), SB_E_TOO_LARGE);
    a[0] = kv(&r[0], "no spaces", "x");
    assert_int_equal(put(s, "cu", &ch, NULL), SB_E_INVALID);
    a[0] = kv(&r[0], "", "x");
    assert_int_equal(put(s, "cu", &ch, NULL), SB_E_INVALID);
    ch = (sb_store_contact_change){.email = "no-at-sign"};
    assert_int_equal(put(s, "cu", &ch, NULL), SB_E_INVALID);
    ch = (sb_store_contact_change){.name = "bad\xff"};
    assert_int_equal(put(s, "cu", &ch, NULL), SB_E_INVALID);
    ch = (sb_store_contact_change){.name = "line\nbreak"};
    assert_int_equal(put(s, "cu", &ch, NULL), SB_E_INVALID);
    /* More than SB_CONTACT_ATTRS_MAX once merged. */
    char keys[SB_CONTACT_ATTRS_MAX][8];
    Sbp__ContactAttr many[SB_CONTACT_ATTRS_MAX];
    Sbp__ContactAttr *pm[SB_CONTACT_ATTRS_MAX];
    for (size_t i = 0; i < SB_CONTACT_ATTRS_MAX; i++) {
        snprintf(keys[i], sizeof keys[i], "k%zu", i);
        pm[i] = kv(&many[i], keys[i], "1");
    }
    ch =
        (sb_store_contact_change){.attrs = pm, .n_attrs = SB_CONTACT_ATTRS_MAX};
    assert_int_equal(put(s, "cu", &ch, NULL), SB_E_TOO_LARGE);
    assert_int_equal(sb_store_contact_get(s, "cu", &c), 0);
    assert_int_equal(c->n_attributes, 3);
    assert_string_equal(c->name, "Ada");
    sbp__contact__free_unpacked(c, NULL);
    /* An agent's id is no contact. */
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(
        sb_store_user_upsert(s, "ann", SBP__ROLE__ROLE_AGENT, "en", NOW), 0);
    assert_int_equal(sb_store_commit(s), 0);
    ch = (sb_store_contact_change){.name = "Ann"};
    assert_int_equal(put(s, "ann", &ch, NULL), SB_E_FORBIDDEN);

    /* The customer's conversations, newest first. */
    uint64_t c1 = svc_open(s, "cu", NOW);
    route(s, c1, SBP__CONV_STATE__STATE_CLOSED, "");
    uint64_t c2 = svc_open(s, "cu", NOW + 1);
    svc_open(s, "other", NOW + 2);
    Sbp__Conversation **list = NULL;
    size_t k = 0;
    assert_int_equal(sb_store_customer_convs(s, "cu", 0, &list, &k), 0);
    assert_int_equal(k, 2);
    assert_int_equal(list[0]->conv_id, c2);
    assert_int_equal(list[1]->conv_id, c1);
    for (size_t i = 0; i < k; i++)
        sbp__conversation__free_unpacked(list[i], NULL);
    free(list);

    /* Erasure takes the contact. */
    sb_store_erased e;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_user_erase(s, "cu", &e), 0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_int_equal(e.contacts, 1);
    assert_int_equal(sb_store_contact_get(s, "cu", &c), SB_E_NOT_FOUND);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* ---- through the store queue ----------------------------------------------
 */

typedef struct waiter {
    uv_loop_t *loop;
    int done;
} waiter;

static void req_done(sb_req *r)
{
    ((waiter *)r->ctx)->done++;
}

static void run(sb_storeq *q, uv_loop_t *loop, sb_req *r)
{
    waiter w = {loop, 0};
    r->ctx = &w;
    r->done = req_done;
    sb_storeq_submit(q, r);
    while (!w.done)
        uv_run(loop, UV_RUN_ONCE);
}

static void contact_free(sb_req *r)
{
    if (r->u.contact.contact)
        sbp__contact__free_unpacked(r->u.contact.contact, NULL);
    for (size_t i = 0; i < r->u.contact.n_convs; i++)
        sbp__conversation__free_unpacked(r->u.contact.convs[i], NULL);
    free(r->u.contact.convs);
}

static void test_queue(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    uint64_t conv = svc_open(s, "cu", NOW);
    route(s, conv, SBP__CONV_STATE__STATE_ASSIGNED, "ann");
    sb_store_close(s);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sb_storeq *q = NULL;
    assert_int_equal(sb_storeq_start(&loop, t.path, SB_DURABILITY_OS, &q), 0);

    /* A NOTES_OPEN whose second member is refused makes nothing. */
    sb_req r = {.kind = SB_REQ_NOTES_OPEN};
    r.u.notes.conv_id = conv;
    r.u.notes.create = true;
    r.u.notes.n = 2;
    snprintf(r.u.notes.user_ids[0], sizeof r.u.notes.user_ids[0], "ann");
    r.u.notes.roles[0] = SBP__ROLE__ROLE_AGENT;
    snprintf(r.u.notes.user_ids[1], sizeof r.u.notes.user_ids[1], "cu");
    r.u.notes.roles[1] = SBP__ROLE__ROLE_CUSTOMER;
    run(q, &loop, &r);
    assert_int_equal(r.rc, SB_E_INVALID);
    assert_null(r.u.notes.conv);
    r = (sb_req){.kind = SB_REQ_NOTES_OPEN};
    r.u.notes.conv_id = conv;
    run(q, &loop, &r);
    assert_int_equal(r.rc, SB_E_NOT_FOUND);
    /* Made, with ann. */
    r = (sb_req){.kind = SB_REQ_NOTES_OPEN};
    r.u.notes.conv_id = conv;
    r.u.notes.create = true;
    r.u.notes.n = 1;
    snprintf(r.u.notes.user_ids[0], sizeof r.u.notes.user_ids[0], "ann");
    r.u.notes.roles[0] = SBP__ROLE__ROLE_AGENT;
    run(q, &loop, &r);
    assert_int_equal(r.rc, 0);
    assert_true(r.u.notes.changed);
    assert_true(has_member(r.u.notes.conv, "ann"));
    sbp__conversation__free_unpacked(r.u.notes.conv, NULL);

    /* Contacts: ann, a member, reaches the customer's; bob does not; by
     * user id, only with all. */
    Sbp__ContactAttr ra;
    Sbp__ContactAttr *pa[1] = {kv(&ra, "plan", "pro")};
    r = (sb_req){.kind = SB_REQ_CONTACT_SET};
    r.u.contact.conv_id = conv;
    snprintf(r.u.contact.asker, sizeof r.u.contact.asker, "ann");
    r.u.contact.change.name = "Cu";
    r.u.contact.change.attrs = pa;
    r.u.contact.change.n_attrs = 1;
    run(q, &loop, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.u.contact.user_id, "cu");
    assert_string_equal(r.u.contact.contact->updated_by, "ann");
    assert_int_equal(r.u.contact.n_convs, 1);
    contact_free(&r);
    r = (sb_req){.kind = SB_REQ_CONTACT_GET};
    r.u.contact.conv_id = conv;
    snprintf(r.u.contact.asker, sizeof r.u.contact.asker, "bob");
    run(q, &loop, &r);
    assert_int_equal(r.rc, SB_E_FORBIDDEN);
    assert_null(r.u.contact.contact);
    r = (sb_req){.kind = SB_REQ_CONTACT_GET};
    snprintf(r.u.contact.user_id, sizeof r.u.contact.user_id, "cu");
    snprintf(r.u.contact.asker, sizeof r.u.contact.asker, "ann");
    run(q, &loop, &r);
    assert_int_equal(r.rc, SB_E_FORBIDDEN);
    r.u.contact.all = true;
    run(q, &loop, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.u.contact.contact->name, "Cu");
    contact_free(&r);
    /* A customer never set, with a conversation: an empty contact. */
    r = (sb_req){.kind = SB_REQ_CONTACT_GET};
    snprintf(r.u.contact.user_id, sizeof r.u.contact.user_id, "nobody");
    r.u.contact.all = true;
    run(q, &loop, &r);
    assert_int_equal(r.rc, SB_E_NOT_FOUND);

    sb_storeq_stop(q);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    pgtest_tmpdb_remove(&t);
}

/* ---- migration -------------------------------------------------------------
 */

/* A store of the version before the agent side's: its conversations read
 * as before (no notes), notes and contacts work. */
static void test_migrate(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    static const char ROWS[] =
        "INSERT INTO convs(conv_id, kind, state, title, last_seq, created_ts,"
        " updated_ts, desk, grp, agent, customer)"
        " VALUES(5, 2, 4, '', 0, 1800000000000, 1800000000000, 'd', 'g1',"
        " 'ann', 'cu')";
    if (on_pg()) {
        sb_store *s = NULL;
        assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
        sb_store_close(s);
        assert_int_equal(pgtest_exec(t.path,
                                     "DROP TABLE media, media_refs, blobs,"
                                     " blob_chunks;"
                                     "DROP TABLE contacts;"
                                     "DROP INDEX convs_notes;"
                                     "ALTER TABLE convs DROP COLUMN notes_of;"
                                     "UPDATE sb_meta SET value = 4"
                                     " WHERE key = 'schema_version'"),
                         0);
        assert_int_equal(pgtest_exec(t.path, ROWS), 0);
    } else {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
        for (int v = 1; v <= 7; v++)
            assert_int_equal(
                sqlite3_exec(db, sb__sqlite_schema(v), NULL, NULL, NULL),
                SQLITE_OK);
        assert_int_equal(
            sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL),
            SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, ROWS, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    }
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    Sbp__Conversation *c = NULL;
    assert_int_equal(sb_store_conv_get(s, 5, &c), 0);
    assert_int_equal(c->kind, SBP__CONV_KIND__CONV_SERVICE);
    assert_int_equal(c->notes_of, 0);
    sbp__conversation__free_unpacked(c, NULL);
    assert_int_equal(
        notes_open(s, 5, true, "ann", SBP__ROLE__ROLE_AGENT, &c, NULL), 0);
    assert_int_equal(c->notes_of, 5);
    sbp__conversation__free_unpacked(c, NULL);
    sb_store_contact_change ch = {.name = "Cu"};
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_contact_put(s, "cu", &ch, NOW, NULL), 0);
    assert_int_equal(sb_store_commit(s), 0);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notes),
        cmocka_unit_test(test_contacts),
        cmocka_unit_test(test_queue),
        cmocka_unit_test(test_migrate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
