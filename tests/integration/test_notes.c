/* integ_notes: private notes and contacts against the real server
 * (started with --desk on a file written here), driven by the C SDK, raw
 * frames and plain HTTP over real sockets, in both encodings, on SQLite
 * (integ_notes) and on PostgreSQL (integ_notes_pg).
 *
 * - notes: the agent opens a conversation's notes (made on demand), writes
 *   notes that mention a teammate (who hears of it, becomes a member and
 *   gets the next note pushed); the customer gets no note by any path:
 *   nothing pushed, nothing in a fresh device's SYNC, HISTORY of the notes
 *   refused and of the conversation without them, SEARCH finds none, the
 *   conversation list holds no notes and its last message is no note,
 *   NOTES_OPEN, SEND, ACK and READ to the notes refused, the conversation's
 *   seqs dense on every device; an agent who is no member gets nothing
 *   either (NOTES_OPEN, HISTORY, SEND, SEARCH, CONTACT_GET); the admin
 *   reads them; the agent a conversation is transferred to opens the
 *   notes and reads what was written before.
 * - contacts: POST /api/identify with the site's signed identity (a bad
 *   hash, a missing one, a desk without a secret, an agent's id and an
 *   admin's refused), the customer signs in with the token it answers,
 *   the agent reads the contact (verified, the attributes, the customer's
 *   conversations without their members) and changes it; refusals for a
 *   customer, an agent of another conversation, bad fields; an admin by
 *   user id; a second sign-in updates it.
 * - sbctl note, notes, contact and identity-hash against the server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <jansson.h>
#include <libgen.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "itsvc.h"
#include "sb_error.h"

#define SITE_SECRET "site-secret-0123456789"

static const char DESK[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\"],"
    "\"identity_secret\":\"" SITE_SECRET "\","
    "\"greeting\":{\"en\":\"Welcome\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true}]}},"
    "{\"id\":\"d2\",\"groups\":[\"g2\"]}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":5},"
    "{\"id\":\"a2\",\"groups\":[\"g1\"],\"capacity\":5},"
    "{\"id\":\"a3\",\"groups\":[\"g1\"],\"capacity\":5}]}";

static it_env E;
static its_ctx S = {.env = &E, .client_name = "integ_notes"};

static int teardown(void **state)
{
    (void)state;
    bool freed = its_free_all(&S);
    it_env_free(&E);
    if (!freed) fail_msg("clients not freed");
    return 0;
}

static void start(sb_encoding enc)
{
    its_server_start(&E, "sbnotes", DESK);
    E.enc = enc;
}

static its_dev *dev(const char *user, const char *role)
{
    char device[80];
    snprintf(device, sizeof device, "%s-d%zu", user, S.n_devs + 1);
    return its_connect(&S, user, role, device, "en");
}

/* ---- requests --------------------------------------------------------------
 */

/* NOTES_OPEN: 0 with the notes conversation in *out (caller frees), or the
 * refusal. */
static int notes_open(its_dev *d, uint64_t conv, bool create,
                      Sbp__Conversation **out)
{
    uint32_t rid = 0;
    int rc = sb_client_notes_open(d->c, conv, create, &rid);
    its_ans *a = its_wait_ans(d, rc, rid, "notes open");
    if (out) *out = NULL;
    if (a->err) return a->err;
    Sbp__Conversation *c = sbp__conversation__unpack(NULL, a->len, a->buf);
    assert_non_null(c);
    if (out)
        *out = c;
    else
        sbp__conversation__free_unpacked(c, NULL);
    return 0;
}

static bool member_of(const Sbp__Conversation *c, const char *user)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (strcmp(c->members[i]->user_id, user) == 0) return true;
    return false;
}

/* HISTORY of conv: 0 with the page in *out (caller frees), or the
 * refusal. */
static int history(its_dev *d, uint64_t conv, Sbp__HistoryResp **out)
{
    uint32_t rid = 0;
    int rc = sb_client_history(d->c, conv, 0, 200, &rid);
    its_ans *a = its_wait_ans(d, rc, rid, "history");
    *out = NULL;
    if (a->err) return a->err;
    *out = sbp__history_resp__unpack(NULL, a->len, a->buf);
    assert_non_null(*out);
    return 0;
}

/* Messages a SEARCH of query (in conv, 0: all) finds for d. */
static size_t search(its_dev *d, uint64_t conv, const char *query,
                     uint64_t *first_conv)
{
    uint32_t rid = 0;
    int rc = sb_client_search(d->c, conv, query, 50, &rid);
    its_ans *a = its_wait_ans(d, rc, rid, "search");
    assert_int_equal(a->err, 0);
    Sbp__SearchResp *r = sbp__search_resp__unpack(NULL, a->len, a->buf);
    assert_non_null(r);
    size_t n = r->n_messages;
    if (first_conv) *first_conv = n ? r->messages[0]->conv_id : 0;
    sbp__search_resp__free_unpacked(r, NULL);
    return n;
}

/* Whether any message of h holds text. */
static bool page_has(const Sbp__HistoryResp *h, const char *text)
{
    for (size_t i = 0; i < h->n_messages; i++)
        if (strstr(h->messages[i]->body, text)) return true;
    return false;
}

/* Whether d surfaced any message of conv holding text. */
static bool surfaced(its_dev *d, uint64_t conv, const char *text)
{
    its_conv *c = its_conv_of(d, conv);
    for (size_t i = 0; c && i < c->n; i++)
        if (strstr(c->msgs[i].body, text)) return true;
    return false;
}

static bool mentioned(void *arg)
{
    return ((its_dev *)arg)->mentions > 0;
}

/* A raw connection of user (role) in E's encoding, past HELLO. */
static void raw_open(it_raw *r, const char *user, const char *role)
{
    assert_int_equal(it_raw_open(r, E.srv.port, E.enc, NULL), 0);
    assert_int_equal(
        it_raw_hello(r, harness_token(user, role, 3600), "raw-dev", 5000), 0);
}

/* Sends f on r and returns the ERROR code that answers it (0: none came
 * within a moment). */
static int raw_refusal(it_raw *r, Sbp__Frame *f)
{
    f->rid = 0;
    uint32_t rid = it_raw_send(r, f);
    assert_true(rid != 0);
    Sbp__Frame *e = it_raw_expect(r, SBP__FRAME__BODY_ERROR, rid, 2000);
    int code = e ? (int)e->error->code : 0;
    if (e) sb_frame_free(e);
    return code;
}

/* ---- notes -----------------------------------------------------------------
 */

static void notes(sb_encoding enc)
{
    start(enc);
    its_dev *a1 = dev("a1", "agent");
    its_dev *adm = dev("root", "admin");
    its_dev *cu = dev("cu1", "customer");
    uint64_t conv = its_open_service(cu, NULL);
    its_say_ok(cu, conv, "a human please", 0);
    its_dev *pair[2] = {cu, a1};
    its_expect_state(pair, 2, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);
    its_dev *a2 = dev("a2", "agent");
    its_dev *a3 = dev("a3", "agent");

    /* Only the service side opens notes, and only of a conversation it
     * may see. */
    assert_int_equal(notes_open(cu, conv, true, NULL), SB_E_FORBIDDEN);
    assert_int_equal(notes_open(a3, conv, true, NULL), SB_E_FORBIDDEN);
    assert_int_equal(notes_open(a1, conv, false, NULL), SB_E_NOT_FOUND);
    Sbp__Conversation *nc = NULL;
    assert_int_equal(notes_open(a1, conv, true, &nc), 0);
    assert_int_equal(nc->kind, SBP__CONV_KIND__CONV_NOTES);
    assert_int_equal(nc->notes_of, conv);
    assert_true(member_of(nc, "a1"));
    assert_false(member_of(nc, "cu1"));
    uint64_t notes_id = nc->conv_id;
    assert_true(notes_id != conv);
    sbp__conversation__free_unpacked(nc, NULL);
    /* Opened again: the same notes. */
    assert_int_equal(notes_open(a1, conv, true, &nc), 0);
    assert_int_equal(nc->conv_id, notes_id);
    sbp__conversation__free_unpacked(nc, NULL);

    /* Messages and notes interleaved. */
    uint64_t m1 = its_say_ok(cu, conv, "where is my parcel?", 0);
    uint64_t n1 =
        its_say_ok(a1, notes_id, "refund order 42? @a2 please check", 0);
    assert_int_equal(n1, 1);
    /* a2 is told, and is a member from now on. */
    if (!it_run_until(&E, mentioned, a2, ITS_WAIT_MS))
        fail_msg("a2 heard of no mention");
    assert_int_equal(a2->mention_conv, conv);
    assert_int_equal(a2->mention_notes, notes_id);
    assert_string_equal(a2->mention_from, "a1");
    assert_non_null(strstr(a2->mention_body, "order 42"));
    assert_int_equal(a3->mentions, 0);
    its_say_ok(a1, notes_id, "second note: order 42 was paid twice", 0);
    /* a2 gets the note pushed, and the one before it by SYNC. */
    its_expect_msg(a2, notes_id, "a1", "paid twice");
    its_expect_msg(a2, notes_id, "a1", "@a2 please check");
    /* a2 answers in the notes: a1 has it pushed. */
    its_say_ok(a2, notes_id, "@a1 confirmed, refund the second one", 0);
    its_expect_msg(a1, notes_id, "a2", "refund the second one");
    uint64_t m2 = its_say_ok(a1, conv, "Your refund is on its way", 0);
    assert_int_equal(m2, m1 + 1); /* the notes took no seq of conv's */
    its_expect_msg(cu, conv, "a1", "refund is on its way");

    /* The customer: nothing pushed, its seqs dense, no notes anywhere. */
    it_run_for(&E, 300);
    assert_null(its_conv_of(cu, notes_id));
    assert_false(surfaced(cu, conv, "order 42"));
    assert_int_equal(cu->mentions, 0);
    /* A fresh device's SYNC. */
    its_dev *cu2 = its_connect(&S, "cu1", "customer", "cu1-new", "en");
    its_expect_msg(cu2, conv, "a1", "refund is on its way");
    assert_null(its_conv_of(cu2, notes_id));
    assert_false(surfaced(cu2, conv, "order 42"));
    assert_int_equal(
        its_conv_of(cu2, conv)->n,
        its_conv_of(cu2, conv)->msgs[its_conv_of(cu2, conv)->n - 1].seq);
    /* HISTORY. */
    Sbp__HistoryResp *h = NULL;
    assert_int_equal(history(cu, notes_id, &h), SB_E_FORBIDDEN);
    assert_int_equal(history(cu, conv, &h), 0);
    assert_false(page_has(h, "order 42"));
    assert_true(page_has(h, "refund is on its way"));
    sbp__history_resp__free_unpacked(h, NULL);
    /* SEARCH. */
    assert_int_equal(search(cu, 0, "order 42", NULL), 0);
    assert_int_equal(search(cu, conv, "order 42", NULL), 0);
    uint64_t hit = 0;
    assert_true(search(a1, 0, "order 42", &hit) >= 2);
    assert_int_equal(hit, notes_id);
    /* The conversation list. */
    uint32_t rid = 0;
    int rc = sb_client_conv_list(cu->c, NULL, 50, 0, NULL, false, &rid);
    its_ans *a = its_wait_ans(cu, rc, rid, "list");
    assert_int_equal(a->err, 0);
    Sbp__ConvListResp *l = sbp__conv_list_resp__unpack(NULL, a->len, a->buf);
    assert_non_null(l);
    assert_int_equal(l->n_convs, 1);
    assert_int_equal(l->convs[0]->conv_id, conv);
    assert_int_equal(l->convs[0]->last_seq, m2);
    assert_non_null(l->convs[0]->last_message);
    assert_null(strstr(l->convs[0]->last_message->body, "order"));
    sbp__conv_list_resp__free_unpacked(l, NULL);
    /* The agent's list holds the conversation, not its notes. */
    rc = sb_client_conv_list(a1->c, NULL, 50, 0, NULL, false, &rid);
    a = its_wait_ans(a1, rc, rid, "list");
    l = sbp__conv_list_resp__unpack(NULL, a->len, a->buf);
    assert_non_null(l);
    for (size_t i = 0; i < l->n_convs; i++)
        assert_int_not_equal(l->convs[i]->kind, SBP__CONV_KIND__CONV_NOTES);
    sbp__conv_list_resp__free_unpacked(l, NULL);
    /* Writing to the notes. */
    assert_int_equal(its_say(cu, notes_id, "let me in", 0), SB_E_FORBIDDEN);
    assert_int_equal(its_say(a3, notes_id, "me too", 0), SB_E_FORBIDDEN);
    /* ACK, READ and NOTES_OPEN as raw frames of the customer. */
    it_raw r;
    raw_open(&r, "cu1", "customer");
    Sbp__Ack ack = SBP__ACK__INIT;
    ack.conv_id = notes_id;
    ack.seq = 1;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_ACK;
    f.ack = &ack;
    assert_int_equal(raw_refusal(&r, &f), SBP__ERROR_CODE__ERR_FORBIDDEN);
    Sbp__Read rd = SBP__READ__INIT;
    rd.conv_id = notes_id;
    rd.seq = 1;
    f.body_case = SBP__FRAME__BODY_READ;
    f.read = &rd;
    assert_int_equal(raw_refusal(&r, &f), SBP__ERROR_CODE__ERR_FORBIDDEN);
    Sbp__NotesOpen no = SBP__NOTES_OPEN__INIT;
    no.conv_id = conv;
    f.body_case = SBP__FRAME__BODY_NOTES_OPEN;
    f.notes_open = &no;
    assert_int_equal(raw_refusal(&r, &f), SBP__ERROR_CODE__ERR_FORBIDDEN);
    /* Notes of what is not a service conversation: refused. */
    no.conv_id = notes_id;
    it_raw_close(&r);
    raw_open(&r, "root", "admin");
    assert_int_equal(raw_refusal(&r, &f), SBP__ERROR_CODE__ERR_INVALID);
    it_raw_close(&r);

    /* An agent that is no member gets nothing. */
    assert_int_equal(history(a3, notes_id, &h), SB_E_FORBIDDEN);
    assert_int_equal(search(a3, 0, "order 42", NULL), 0);
    assert_null(its_conv_of(a3, notes_id));
    /* The admin reads them. */
    assert_int_equal(history(adm, notes_id, &h), 0);
    assert_int_equal(h->n_messages, 3);
    assert_true(page_has(h, "paid twice"));
    sbp__history_resp__free_unpacked(h, NULL);

    /* Transferred to a3, who opens the notes and reads what came before. */
    rc = sb_client_transfer(adm->c, conv, "a3", NULL, &rid);
    assert_int_equal(its_wait_ans(adm, rc, rid, "transfer")->err, 0);
    its_dev *three[3] = {cu, a3};
    its_expect_state(three, 2, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a3",
                     NULL, 0);
    assert_int_equal(notes_open(a3, conv, false, &nc), 0);
    assert_true(member_of(nc, "a3"));
    sbp__conversation__free_unpacked(nc, NULL);
    assert_int_equal(history(a3, notes_id, &h), 0);
    assert_true(page_has(h, "paid twice"));
    sbp__history_resp__free_unpacked(h, NULL);
    /* A note of a3's reaches a1 and a2, never the customer. */
    its_say_ok(a3, notes_id, "taking over, thanks", 0);
    its_expect_msg(a1, notes_id, "a3", "taking over");
    its_expect_msg(a2, notes_id, "a3", "taking over");
    it_run_for(&E, 300);
    assert_null(its_conv_of(cu, notes_id));
    assert_null(its_conv_of(cu2, notes_id));
    assert_int_equal(E.violations, 0);
}

static void test_notes(void **state)
{
    (void)state;
    notes(SB_ENC_PROTO);
}

static void test_notes_json(void **state)
{
    (void)state;
    notes(SB_ENC_JSON);
}

/* ---- contacts --------------------------------------------------------------
 */

static char HTTP_OUT[1 << 16];

/* POST path with a JSON body; the status, the body parsed in *out. */
static int post(const char *path, const char *body, json_t **out)
{
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     path, strlen(body), body);
    assert_true(n > 0 && (size_t)n < sizeof req);
    bool closed;
    int st = it_http(E.srv.port, req, (size_t)n, HTTP_OUT, sizeof HTTP_OUT,
                     10000, &closed);
    const char *b = strstr(HTTP_OUT, "\r\n\r\n");
    *out = b ? json_loads(b + 4, 0, NULL) : NULL;
    return st;
}

static void user_hash(const char *secret, const char *user, char hex[65])
{
    uint8_t mac[32];
    unsigned n = sizeof mac;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const uint8_t *)user,
         strlen(user), mac, &n);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

/* POST /api/identify for user with hash (NULL: the right one) and more
 * JSON members (",..." or ""); the status, the answer in *out. */
static int identify(const char *desk, const char *user, const char *hash,
                    const char *more, json_t **out)
{
    char h[65], body[4096];
    if (!hash) {
        user_hash(SITE_SECRET, user, h);
        hash = h;
    }
    snprintf(body, sizeof body,
             "{\"desk\":\"%s\",\"user_id\":\"%s\",\"user_hash\":\"%s\"%s}",
             desk, user, hash, more);
    return post("/api/identify", body, out);
}

static const char *err_of(const json_t *j)
{
    const char *c =
        json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    return c ? c : "";
}

/* CONTACT_GET of conv's customer (or, conv 0, of user): 0 with the answer
 * in *out (caller frees), or the refusal. */
static int contact_get(its_dev *d, uint64_t conv, const char *user,
                       Sbp__ContactResp **out)
{
    uint32_t rid = 0;
    int rc = sb_client_contact_get(d->c, conv, user, &rid);
    if (rc) return rc;
    its_ans *a = its_wait_ans(d, rc, rid, "contact get");
    *out = NULL;
    if (a->err) return a->err;
    *out = sbp__contact_resp__unpack(NULL, a->len, a->buf);
    assert_non_null(*out);
    return 0;
}

static int contact_set(its_dev *d, const sb_client_contact_change *ch,
                       Sbp__ContactResp **out)
{
    uint32_t rid = 0;
    int rc = sb_client_contact_set(d->c, ch, &rid);
    if (rc) return rc;
    its_ans *a = its_wait_ans(d, rc, rid, "contact set");
    if (out) *out = NULL;
    if (a->err) return a->err;
    Sbp__ContactResp *r = sbp__contact_resp__unpack(NULL, a->len, a->buf);
    assert_non_null(r);
    if (out)
        *out = r;
    else
        sbp__contact_resp__free_unpacked(r, NULL);
    return 0;
}

static const char *attr(const Sbp__Contact *c, const char *key)
{
    for (size_t i = 0; i < c->n_attributes; i++)
        if (strcmp(c->attributes[i]->key, key) == 0)
            return c->attributes[i]->value;
    return NULL;
}

static void contacts(sb_encoding enc)
{
    start(enc);
    its_dev *a1 = dev("a1", "agent");
    its_dev *adm = dev("root", "admin");

    /* The site's signed identity, and its refusals. */
    json_t *j = NULL;
    char bad[65];
    user_hash("another-secret-0123456", "cu9", bad);
    assert_int_equal(identify("d", "cu9", bad, "", &j), 401);
    assert_string_equal(err_of(j), "unauthorized");
    json_decref(j);
    assert_int_equal(post("/api/identify", "{\"user_id\":\"cu9\"}", &j), 400);
    json_decref(j);
    assert_int_equal(identify("d2", "cu9", NULL, "", &j), 403);
    json_decref(j);
    assert_int_equal(identify("d", "a2", NULL, "", &j), 403);
    json_decref(j);
    /* root has signed in as an admin: its id is no customer's. */
    assert_int_equal(identify("d", "root", NULL, "", &j), 403);
    json_decref(j);
    assert_int_equal(identify("d", "cu9", NULL,
                              ",\"name\":\"Ada Lovelace\",\"email\":"
                              "\"ada@example.org\",\"locale\":\"en\","
                              "\"attributes\":{\"plan\":\"pro\",\"order\":"
                              "\"42\"}",
                              &j),
                     200);
    const char *tok = json_string_value(json_object_get(j, "token"));
    assert_non_null(tok);
    assert_string_equal(json_string_value(json_object_get(j, "user_id")),
                        "cu9");
    assert_true(json_is_true(
        json_object_get(json_object_get(j, "contact"), "verified")));
    char token[1024];
    snprintf(token, sizeof token, "%s", tok);
    json_decref(j);

    /* The customer signs in with it and asks for a person. */
    its_dev *cu = its_connect_token(&S, "cu9", token, "cu9-web", "en");
    uint64_t conv = its_open_service(cu, NULL);
    its_say_ok(cu, conv, "a human please", 0);
    its_dev *pair[2] = {cu, a1};
    its_expect_state(pair, 2, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);
    its_dev *a2 = dev("a2", "agent");

    /* The agent reads it. */
    Sbp__ContactResp *r = NULL;
    assert_int_equal(contact_get(a1, conv, NULL, &r), 0);
    assert_string_equal(r->contact->user_id, "cu9");
    assert_string_equal(r->contact->name, "Ada Lovelace");
    assert_string_equal(r->contact->email, "ada@example.org");
    assert_string_equal(attr(r->contact, "plan"), "pro");
    assert_string_equal(attr(r->contact, "order"), "42");
    assert_true(r->contact->verified);
    assert_string_equal(r->contact->updated_by, "site");
    assert_int_equal(r->n_conversations, 1);
    assert_int_equal(r->conversations[0]->conv_id, conv);
    assert_int_equal(r->conversations[0]->state,
                     SBP__CONV_STATE__STATE_ASSIGNED);
    assert_string_equal(r->conversations[0]->agent, "a1");
    assert_int_equal(r->conversations[0]->n_members, 0);
    sbp__contact_resp__free_unpacked(r, NULL);

    /* Nobody else does. */
    assert_int_equal(contact_get(a2, conv, NULL, &r), SB_E_FORBIDDEN);
    assert_int_equal(contact_get(a2, 0, "cu9", &r), SB_E_FORBIDDEN);
    assert_int_equal(contact_get(cu, conv, NULL, &r), SB_E_FORBIDDEN);
    sb_client_contact_change ch = {.conv_id = conv, .name = "Eve"};
    assert_int_equal(contact_set(cu, &ch, NULL), SB_E_FORBIDDEN);
    assert_int_equal(contact_set(a2, &ch, NULL), SB_E_FORBIDDEN);

    /* The agent changes it: the name, one attribute removed, one added. */
    const char *keys[] = {"plan", "vip"}, *values[] = {"", "yes"};
    ch = (sb_client_contact_change){.conv_id = conv,
                                    .name = "Ada King",
                                    .keys = keys,
                                    .values = values,
                                    .n_attrs = 2};
    assert_int_equal(contact_set(a1, &ch, &r), 0);
    assert_string_equal(r->contact->name, "Ada King");
    assert_string_equal(r->contact->email, "ada@example.org");
    assert_null(attr(r->contact, "plan"));
    assert_string_equal(attr(r->contact, "vip"), "yes");
    assert_string_equal(attr(r->contact, "order"), "42");
    assert_true(r->contact->verified);
    assert_string_equal(r->contact->updated_by, "a1");
    sbp__contact_resp__free_unpacked(r, NULL);
    /* Bad fields: refused with nothing changed. */
    ch = (sb_client_contact_change){.conv_id = conv, .email = "not-an-email"};
    assert_int_equal(contact_set(a1, &ch, NULL), SB_E_INVALID);
    const char *bad_key[] = {"two words"}, *v1[] = {"x"};
    ch = (sb_client_contact_change){
        .conv_id = conv, .keys = bad_key, .values = v1, .n_attrs = 1};
    assert_int_equal(contact_set(a1, &ch, NULL), SB_E_INVALID);
    char long_name[SB_CONTACT_NAME_BYTES_MAX + 2];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    /* The SDK refuses it; sent raw, the server does. */
    ch = (sb_client_contact_change){.conv_id = conv, .name = long_name};
    assert_int_equal(contact_set(a1, &ch, NULL), SB_E_TOO_LARGE);
    it_raw raw;
    raw_open(&raw, "a1", "agent");
    Sbp__ContactSet cs = SBP__CONTACT_SET__INIT;
    cs.conv_id = conv;
    cs.name = long_name;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CONTACT_SET;
    f.contact_set = &cs;
    assert_int_equal(raw_refusal(&raw, &f), SBP__ERROR_CODE__ERR_TOO_LARGE);
    char *clear[] = {"phone"};
    cs.name = "";
    cs.clear = clear;
    cs.n_clear = 1;
    assert_int_equal(raw_refusal(&raw, &f), SBP__ERROR_CODE__ERR_INVALID);
    it_raw_close(&raw);
    assert_int_equal(contact_get(a1, conv, NULL, &r), 0);
    assert_string_equal(r->contact->name, "Ada King");
    assert_string_equal(r->contact->email, "ada@example.org");
    sbp__contact_resp__free_unpacked(r, NULL);

    /* The admin by user id; a user with no contact nor conversation is
     * not found. */
    assert_int_equal(contact_get(adm, 0, "cu9", &r), 0);
    assert_string_equal(r->contact->name, "Ada King");
    sbp__contact_resp__free_unpacked(r, NULL);
    assert_int_equal(contact_get(adm, 0, "nobody", &r), SB_E_NOT_FOUND);
    /* A second sign-in: what the page says now. */
    assert_int_equal(
        identify("d", "cu9", NULL, ",\"email\":\"ada@lovelace.org\"", &j), 200);
    json_decref(j);
    assert_int_equal(contact_get(a1, conv, NULL, &r), 0);
    assert_string_equal(r->contact->email, "ada@lovelace.org");
    assert_string_equal(r->contact->name, "Ada King");
    assert_string_equal(r->contact->updated_by, "site");
    sbp__contact_resp__free_unpacked(r, NULL);
    assert_int_equal(E.violations, 0);
}

static void test_contacts(void **state)
{
    (void)state;
    contacts(SB_ENC_PROTO);
}

static void test_contacts_json(void **state)
{
    (void)state;
    contacts(SB_ENC_JSON);
}

/* ---- sbctl -----------------------------------------------------------------
 */

/* Runs `sbctl CMD` with the server's URL and token (NULL: neither), then
 * ARGS; returns its exit status and its output in out. */
static int sbctl(const char *token, const char *args, char *out, size_t cap)
{
    char bin[512], cmd[4096], name[64];
    snprintf(bin, sizeof bin, "%s", harness_server_bin());
    size_t k = strcspn(args, " ");
    snprintf(name, sizeof name, "%.*s", (int)k, args);
    if (token)
        snprintf(cmd, sizeof cmd,
                 "'%s/sbctl' %s --url '%s' --token '%s'%s 2>&1", dirname(bin),
                 name, E.srv.url, token, args + k);
    else
        snprintf(cmd, sizeof cmd, "'%s/sbctl' %s 2>&1", dirname(bin), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_sbctl(void **state)
{
    (void)state;
    start(SB_ENC_PROTO);
    its_dev *a1 = dev("a1", "agent");
    its_dev *cu = dev("cu1", "customer");
    uint64_t conv = its_open_service(cu, NULL);
    its_say_ok(cu, conv, "a human please", 0);
    its_dev *pair[2] = {cu, a1};
    its_expect_state(pair, 2, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);
    char a1_tok[1024], cu_tok[1024], out[8192], args[256];
    snprintf(a1_tok, sizeof a1_tok, "%s", harness_token("a1", "agent", 600));
    snprintf(cu_tok, sizeof cu_tok, "%s",
             harness_token("cu1", "customer", 600));
    /* No notes yet: nothing printed. */
    snprintf(args, sizeof args, "notes --conv %llu", (unsigned long long)conv);
    assert_int_equal(sbctl(a1_tok, args, out, sizeof out), 0);
    assert_string_equal(out, "");
    snprintf(args, sizeof args, "note --conv %llu -- written by sbctl @a2",
             (unsigned long long)conv);
    assert_int_equal(sbctl(a1_tok, args, out, sizeof out), 0);
    assert_non_null(strstr(out, "seq=1"));
    snprintf(args, sizeof args, "notes --conv %llu", (unsigned long long)conv);
    assert_int_equal(sbctl(a1_tok, args, out, sizeof out), 0);
    assert_non_null(strstr(out, " 1 a1 written by sbctl @a2"));
    /* The customer: refused. */
    assert_int_equal(sbctl(cu_tok, args, out, sizeof out), 1);
    assert_non_null(strstr(out, "ERR_FORBIDDEN"));
    snprintf(args, sizeof args, "note --conv %llu -- mine",
             (unsigned long long)conv);
    assert_int_equal(sbctl(cu_tok, args, out, sizeof out), 1);
    /* The contact, changed and shown. */
    snprintf(args, sizeof args,
             "contact --conv %llu --name 'Cu One' --attr plan=pro",
             (unsigned long long)conv);
    assert_int_equal(sbctl(a1_tok, args, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"Cu One\""));
    assert_non_null(strstr(out, "\"plan\""));
    snprintf(args, sizeof args, "contact --conv %llu",
             (unsigned long long)conv);
    assert_int_equal(sbctl(a1_tok, args, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"Cu One\""));
    assert_int_equal(sbctl(cu_tok, args, out, sizeof out), 1);
    assert_int_equal(sbctl(a1_tok, "contact --user cu1", out, sizeof out), 1);
    assert_int_equal(sbctl(a1_tok, "contact", out, sizeof out), 2);
    /* The hash a site computes. */
    char want[65];
    user_hash(SITE_SECRET, "cu9", want);
    assert_int_equal(sbctl(NULL,
                           "identity-hash --secret " SITE_SECRET " --user cu9",
                           out, sizeof out),
                     0);
    assert_non_null(strstr(out, want));
    /* An admin changes the desk's identity secret; a short one is refused
     * and the one in force stays (the site's hash still signs in). */
    char adm_tok[1024], cmd[2048];
    snprintf(adm_tok, sizeof adm_tok, "%s",
             harness_token("root", "admin", 600));
    snprintf(cmd, sizeof cmd,
             "admin desk identity short --url '%s' --token '%s'", E.srv.url,
             adm_tok);
    assert_int_equal(sbctl(NULL, cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "identity_secret"));
    snprintf(cmd, sizeof cmd,
             "admin desk identity " SITE_SECRET " --url '%s' --token '%s'",
             E.srv.url, a1_tok);
    assert_int_equal(sbctl(NULL, cmd, out, sizeof out), 1);
    snprintf(cmd, sizeof cmd,
             "admin desk identity " SITE_SECRET " --url '%s' --token '%s'",
             E.srv.url, adm_tok);
    assert_int_equal(sbctl(NULL, cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "identity secret set"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_notes, teardown),
        cmocka_unit_test_teardown(test_notes_json, teardown),
        cmocka_unit_test_teardown(test_contacts, teardown),
        cmocka_unit_test_teardown(test_contacts_json, teardown),
        cmocka_unit_test_teardown(test_sbctl, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
