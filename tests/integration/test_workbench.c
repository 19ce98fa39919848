/* integ_workbench: what the agent workbench and the customer widget need
 * of the server (issue 13), against the real server with a desk of two
 * desks, driven by the C SDK and a raw client over real sockets.
 *
 * - masked: a masked word comes back in SEND_ACK.body and in the sender's
 *   own surfaced message; an untouched one carries no body; a blocked one
 *   is refused (both encodings).
 * - receipts: the members' read_seq and delivered_seq with the
 *   conversation in OPEN_RESP, CONV_LIST_RESP, SYNC_RESP.convs and
 *   CONV_UPDATE.
 * - closed: a closed conversation keeps its last agent, listed for it
 *   under CLOSED and mine, its history readable, SEND refused
 *   (ERR_STATE); the customer's next message reopens it without that
 *   agent, who neither reads it nor gets it.
 * - claim: an agent of the group takes a queued conversation (away or
 *   not); the others in the queue move up; a customer, an agent of
 *   another group, a conversation not queued and a full agent are
 *   refused, over_capacity takes it anyway; the group's agents read the
 *   queued history, read-only.
 * - tags: a tag change is an event with the tags after it on every
 *   device, a device offline at the time gets it at its SYNC; customers
 *   learn only that one happened, never the tags (HISTORY, SEARCH,
 *   CONV_LIST).
 * - note: a transfer's note reaches the agent it goes to (CONV_UPDATE,
 *   CONV_LIST; while queued the agents of the group), never the customer
 *   (CONV_UPDATE, CONV_LIST, OPEN_RESP, SYNC_RESP); one over 1,024 bytes
 *   is refused.
 * - team: AGENT_LIST of one's desk (agents with groups, status, load,
 *   capacity; the groups), refused for customers, other desks and unknown
 *   ones; AGENT_PRESENCE to the desk's other agents on every status
 *   change, not to another desk's.
 * - widget: GET /api/widget: the desk's look, cacheable and open to any
 *   page, changed live by admins; bad desks and bad values refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itsvc.h"
#include "sb_error.h"

#define WAIT_MS 10000

/* Desk d (groups g1, g2) and desk e (h1). a1 has room for one
 * conversation and a picture. */
static const char DESK[] =
    "{\"desks\":[{\"id\":\"d\",\"name\":\"Acme\",\"groups\":[\"g1\",\"g2\"],"
    "\"default_group\":\"g1\",\"unmatched_max\":2,"
    "\"greeting\":{\"en\":\"Welcome\"},\"fallback\":{\"en\":\"Sorry?\"},"
    "\"out_of_hours\":{\"en\":\"Nobody is here\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true}]},"
    "\"widget\":{\"color\":\"#0f766e\",\"title\":{\"en\":\"Acme help\"},"
    "\"reply_time\":{\"en\":\"in minutes\"},"
    "\"greeting\":{\"en\":\"Hello there\"}}},"
    "{\"id\":\"e\",\"groups\":[\"h1\"],"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true}]}}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":1,"
    "\"avatar\":\"https://cdn.example.com/a1.png\"},"
    "{\"id\":\"a2\",\"groups\":[\"g1\",\"g2\"],\"capacity\":2},"
    "{\"id\":\"a3\",\"groups\":[\"g2\"],\"capacity\":2},"
    "{\"id\":\"e1\",\"groups\":[\"h1\"],\"capacity\":2}]}";

static it_env E;
static its_ctx S = {
    .env = &E, .client_name = "integ_workbench", .requests_max = 64};
static char filter_dir[64];

static int teardown(void **state)
{
    (void)state;
    its_free_all(&S);
    it_env_free(&E);
    return 0;
}

/* ---- requests and answers ------------------------------------------------ */

static int req_err(its_dev *d, int rc, uint32_t rid, const char *what)
{
    return its_wait_ans(d, rc, rid, what)->err;
}

static void expect_ok(its_dev *d, int rc, uint32_t rid, const char *what)
{
    int err = req_err(d, rc, rid, what);
    if (err)
        fail_msg("%s: %s failed: %s", d->name, what, sb_client_err_name(err));
}

static void expect_err(its_dev *d, int rc, uint32_t rid, int want,
                       const char *what)
{
    int err = req_err(d, rc, rid, what);
    if (err != want)
        fail_msg("%s: %s: %s, expected %s", d->name, what,
                 sb_client_err_name(err), sb_client_err_name(want));
}

static void set_status(its_dev *d, Sbp__AgentStatus st)
{
    uint32_t rid = 0;
    int rc = sb_client_agent_state(d->c, st, &rid);
    expect_ok(d, rc, rid, "agent status");
}

/* The answer to a CONV_LIST (state, mine) of d; the caller frees it. */
static Sbp__ConvListResp *conv_list(its_dev *d, Sbp__ConvState st, bool mine)
{
    uint32_t rid;
    int rc = sb_client_conv_list(d->c, NULL, 50, st, NULL, mine, &rid);
    its_ans *a = its_wait_ans(d, rc, rid, "conv list");
    if (a->err)
        fail_msg("%s: conv list: %s", d->name, sb_client_err_name(a->err));
    Sbp__ConvListResp *l = sbp__conv_list_resp__unpack(NULL, a->len, a->buf);
    assert_non_null(l);
    return l;
}

static const Sbp__Conversation *list_find(const Sbp__ConvListResp *l,
                                          uint64_t conv)
{
    for (size_t i = 0; i < l->n_convs; i++)
        if (l->convs[i]->conv_id == conv) return l->convs[i];
    return NULL;
}

static const Sbp__Member *member_of(const Sbp__Conversation *c,
                                    const char *user)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (strcmp(c->members[i]->user_id, user) == 0) return c->members[i];
    return NULL;
}

/* The HISTORY of conv for d (its error in *err); the caller frees it. */
static Sbp__HistoryResp *history(its_dev *d, uint64_t conv, int *err)
{
    uint32_t rid;
    int rc = sb_client_history(d->c, conv, 0, 100, &rid);
    its_ans *a = its_wait_ans(d, rc, rid, "history");
    *err = a->err;
    return a->err ? NULL : sbp__history_resp__unpack(NULL, a->len, a->buf);
}

/* A customer of desk d handed to a person (a1 when online with room). */
static uint64_t handed_off(its_dev *cu)
{
    uint64_t conv = its_open_service(cu, NULL);
    its_say_ok(cu, conv, "human", 0);
    return conv;
}

/* ---- a raw client's SYNC ------------------------------------------------- */

/* A fresh raw device of user, SYNC from nothing: the first SYNC_RESP
 * (sb_frame_free it). */
static Sbp__Frame *raw_sync(const char *user, const char *role)
{
    it_raw r;
    assert_int_equal(it_raw_open(&r, E.srv.port, SB_ENC_PROTO, NULL), 0);
    assert_int_equal(
        it_raw_hello(&r, harness_token(user, role, 3600), "raw", WAIT_MS), 0);
    Sbp__Sync sy = SBP__SYNC__INIT;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_SYNC;
    f.sync = &sy;
    uint32_t rid = it_raw_send(&r, &f);
    Sbp__Frame *g = it_raw_expect(&r, SBP__FRAME__BODY_SYNC_RESP, rid, WAIT_MS);
    assert_non_null(g);
    it_raw_close(&r);
    return g;
}

static const Sbp__Conversation *sync_conv(const Sbp__Frame *g, uint64_t conv)
{
    for (size_t i = 0; i < g->sync_resp->n_convs; i++)
        if (g->sync_resp->convs[i]->conv_id == conv)
            return g->sync_resp->convs[i];
    return NULL;
}

/* ---- masked words -------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void run_masked(sb_encoding enc)
{
    snprintf(filter_dir, sizeof filter_dir, "/tmp/sbwbf.XXXXXX");
    assert_non_null(mkdtemp(filter_dir));
    write_file(filter_dir, "mask.txt", "policy: mask\n|darn|\n");
    write_file(filter_dir, "block.txt", "policy: block\n|badword|\n");
    const char *extra[] = {"--filter", filter_dir, NULL};
    its_server_start_with(&E, "sbwb", DESK, extra);
    E.enc = enc;
    its_dev *cu = its_connect(&S, "cu", "customer", "cu-phone", "en");
    its_dev *cu2 = its_connect(&S, "cu", "customer", "cu-laptop", "en");
    uint64_t conv = its_open_service(cu, NULL);
    uint64_t seq = its_say_ok(cu, conv, "darn it", 0);
    assert_string_equal(cu->last_stored_body, "**** it");
    /* The sender's own message, as this device surfaced it, and as the
     * sender's other device got it. */
    assert_string_equal(its_msg_at(cu, conv, seq)->body, "**** it");
    const its_msg *other = its_expect_msg(cu2, conv, "cu", "it");
    assert_string_equal(other->body, "**** it");
    its_say_ok(cu, conv, "all good", 0);
    assert_string_equal(cu->last_stored_body, "");
    assert_int_equal(its_say(cu, conv, "you badword", 0), SB_E_BLOCKED);
    for (size_t i = 0; i < S.n_devs; i++)
        assert_int_equal(S.devs[i]->violations, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", filter_dir);
    assert_int_equal(system(cmd), 0);
}

static void test_masked(void **state)
{
    (void)state;
    run_masked(SB_ENC_PROTO);
}

static void test_masked_json(void **state)
{
    (void)state;
    run_masked(SB_ENC_JSON);
}

/* ---- receipts ------------------------------------------------------------ */

static void test_receipts(void **state)
{
    (void)state;
    its_server_start(&E, "sbwb", DESK);
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1", "en");
    its_dev *cu = its_connect(&S, "cu", "customer", "cu", "en");
    uint64_t conv = handed_off(cu);
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);
    uint64_t mine = its_say_ok(cu, conv, "read me", 0);
    its_expect_msg(a1, conv, "cu", "read me");
    assert_int_equal(sb_client_read(a1->c, conv, mine), 0);
    uint64_t theirs = its_say_ok(a1, conv, "and me", 0);
    its_expect_msg(cu, conv, "a1", "and me");
    it_run_for(&E, 600); /* the READ, the ACK and their receipts */

    /* OPEN_RESP of the customer's conversation, again. */
    uint32_t rid;
    int rc = sb_client_open_service(cu->c, "d", &rid);
    its_ans *an = its_wait_ans(cu, rc, rid, "open again");
    assert_int_equal(an->err, 0);
    Sbp__Conversation *oc = sbp__conversation__unpack(NULL, an->len, an->buf);
    assert_non_null(oc);
    assert_int_equal(oc->conv_id, conv);
    assert_non_null(member_of(oc, "a1"));
    assert_true(member_of(oc, "a1")->read_seq >= mine);
    assert_true(member_of(oc, "cu")->delivered_seq >= theirs);
    sbp__conversation__free_unpacked(oc, NULL);

    /* CONV_LIST_RESP, each side. */
    Sbp__ConvListResp *l = conv_list(cu, 0, false);
    const Sbp__Conversation *lc = list_find(l, conv);
    assert_non_null(lc);
    assert_true(member_of(lc, "a1")->read_seq >= mine);
    sbp__conv_list_resp__free_unpacked(l, NULL);
    l = conv_list(a1, 0, true);
    lc = list_find(l, conv);
    assert_non_null(lc);
    assert_true(member_of(lc, "cu")->delivered_seq >= theirs);
    sbp__conv_list_resp__free_unpacked(l, NULL);

    /* SYNC_RESP.convs of a new device. */
    Sbp__Frame *g = raw_sync("cu", "customer");
    const Sbp__Conversation *sc = sync_conv(g, conv);
    assert_non_null(sc);
    assert_true(member_of(sc, "a1")->read_seq >= mine);
    sb_frame_free(g);

    /* CONV_UPDATE: the close tells both, with a1 (still a member). */
    rc = sb_client_close_conv(a1->c, conv, &rid);
    expect_ok(a1, rc, rid, "close");
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_CLOSED, "a1", NULL,
                     0);
    its_conv *uc = its_conv_of(cu, conv);
    bool seen = false;
    for (size_t i = 0; i < ITS_MEMBERS_MAX; i++)
        if (strcmp(uc->member[i].user, "a1") == 0) {
            seen = true;
            assert_true(uc->member[i].read_seq >= mine);
        }
    assert_true(seen);
}

/* ---- closed conversations ------------------------------------------------ */

/* What `sbctl list ARGS` prints as user (role), into out. */
static void sbctl_list(const char *user, const char *role, const char *args,
                       char *out, size_t cap)
{
    char bin[512], cmd[2048];
    snprintf(bin, sizeof bin, "%s", harness_server_bin());
    snprintf(cmd, sizeof cmd, "'%s/sbctl' list %s --url '%s' --token '%s'",
             dirname(bin), args, E.url, harness_token(user, role, 3600));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
}

static void test_closed(void **state)
{
    (void)state;
    its_server_start(&E, "sbwb", DESK);
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1", "en");
    its_dev *cu = its_connect(&S, "cu", "customer", "cu", "en");
    uint64_t conv = handed_off(cu);
    its_dev *both[2] = {cu, a1};
    its_expect_state(both, 2, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);
    its_say_ok(a1, conv, "how can I help?", 0);
    uint32_t rid;
    int rc = sb_client_close_conv(a1->c, conv, &rid);
    expect_ok(a1, rc, rid, "close");
    its_expect_state(both, 2, conv, SBP__CONV_STATE__STATE_CLOSED, "a1", NULL,
                     0);

    /* Listed for a1 as closed and its own, with a1 as its agent. */
    Sbp__ConvListResp *l = conv_list(a1, SBP__CONV_STATE__STATE_CLOSED, true);
    const Sbp__Conversation *lc = list_find(l, conv);
    assert_non_null(lc);
    assert_string_equal(lc->agent, "a1");
    assert_int_equal(lc->state, SBP__CONV_STATE__STATE_CLOSED);
    sbp__conv_list_resp__free_unpacked(l, NULL);
    /* sbctl says the same. */
    char out[4096], want[64];
    sbctl_list("a1", "agent", "--state closed --mine", out, sizeof out);
    snprintf(want, sizeof want, "%" PRIu64 " closed ", conv);
    if (!strstr(out, want) || !strstr(out, " agent=a1 "))
        fail_msg("sbctl list --state closed --mine: %s", out);
    /* Readable, not writable; its room is a1's again. */
    int err;
    Sbp__HistoryResp *h = history(a1, conv, &err);
    assert_int_equal(err, 0);
    assert_true(h->n_messages > 0);
    sbp__history_resp__free_unpacked(h, NULL);
    assert_int_equal(its_say(a1, conv, "one more thing", 0), SB_E_STATE);
    rc = sb_client_agent_state(a1->c, SBP__AGENT_STATUS__AGENT_ONLINE, &rid);
    its_ans *an = its_wait_ans(a1, rc, rid, "agent state");
    Sbp__AgentState *as = sbp__agent_state__unpack(NULL, an->len, an->buf);
    assert_non_null(as);
    assert_int_equal(as->load, 0);
    sbp__agent_state__free_unpacked(as, NULL);

    /* The customer writes again: back with the bot, a1 out of it. */
    uint64_t again = its_say_ok(cu, conv, "hello again", 0);
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_BOT, NULL, NULL, 0);
    its_expect_state(&a1, 1, conv, SBP__CONV_STATE__STATE_BOT, "", NULL, 0);
    h = history(a1, conv, &err);
    assert_null(h);
    assert_int_equal(err, SB_E_FORBIDDEN);
    l = conv_list(a1, SBP__CONV_STATE__STATE_CLOSED, true);
    assert_null(list_find(l, conv));
    sbp__conv_list_resp__free_unpacked(l, NULL);
    it_run_for(&E, 300);
    assert_null(its_msg_at(a1, conv, again));
    assert_int_equal(a1->errors, 0);
}

/* ---- claim --------------------------------------------------------------- */

static void test_claim(void **state)
{
    (void)state;
    its_server_start(&E, "sbwb", DESK);
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1", "en");
    its_dev *a3 = its_connect(&S, "a3", "agent", "a3", "en");
    set_status(a1, SBP__AGENT_STATUS__AGENT_AWAY);
    its_dev *cu1 = its_connect(&S, "cu1", "customer", "cu1", "en");
    its_dev *cu2 = its_connect(&S, "cu2", "customer", "cu2", "en");
    its_dev *cu3 = its_connect(&S, "cu3", "customer", "cu3", "en");
    uint64_t c1 = handed_off(cu1), c2 = handed_off(cu2), c3 = handed_off(cu3);
    its_expect_state(&cu1, 1, c1, SBP__CONV_STATE__STATE_QUEUED, NULL, "g1", 1);
    its_expect_state(&cu2, 1, c2, SBP__CONV_STATE__STATE_QUEUED, NULL, "g1", 2);
    its_expect_state(&cu3, 1, c3, SBP__CONV_STATE__STATE_QUEUED, NULL, "g1", 3);

    uint32_t rid;
    int rc = sb_client_claim(cu1->c, c1, false, &rid);
    expect_err(cu1, rc, rid, SB_E_FORBIDDEN, "a customer's claim");
    rc = sb_client_claim(a3->c, c1, false, &rid);
    expect_err(a3, rc, rid, SB_E_FORBIDDEN, "a claim from another group");
    /* The group's agents read the queue, read-only; others do not. */
    int err;
    Sbp__HistoryResp *h = history(a1, c1, &err);
    assert_int_equal(err, 0);
    assert_non_null(h);
    bool said = false;
    for (size_t i = 0; i < h->n_messages; i++)
        said |= strcmp(h->messages[i]->body, "human") == 0;
    assert_true(said);
    sbp__history_resp__free_unpacked(h, NULL);
    assert_null(history(a3, c1, &err));
    assert_int_equal(err, SB_E_FORBIDDEN);
    assert_int_equal(its_say(a1, c1, "not yet mine", 0), SB_E_FORBIDDEN);

    /* a1, away, takes the first: the others move up. */
    rc = sb_client_claim(a1->c, c1, false, &rid);
    expect_ok(a1, rc, rid, "claim");
    its_dev *p1[2] = {cu1, a1};
    its_expect_state(p1, 2, c1, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL, 0);
    its_expect_state(&cu2, 1, c2, SBP__CONV_STATE__STATE_QUEUED, NULL, NULL, 1);
    its_expect_state(&cu3, 1, c3, SBP__CONV_STATE__STATE_QUEUED, NULL, NULL, 2);
    its_expect_all(&cu1, 1, c1, (its_match){.event = "conv.assigned"},
                   "conv.assigned");
    its_say_ok(a1, c1, "Hi, a1 here", 0);
    its_expect_msg(cu1, c1, "a1", "Hi, a1 here");
    rc = sb_client_claim(a1->c, c1, false, &rid);
    expect_err(a1, rc, rid, SB_E_STATE, "a claim of an assigned one");
    /* Full (capacity 1): refused, unless over capacity. */
    rc = sb_client_claim(a1->c, c2, false, &rid);
    expect_err(a1, rc, rid, SB_E_STATE, "a claim past the capacity");
    rc = sb_client_claim(a1->c, c2, true, &rid);
    expect_ok(a1, rc, rid, "a claim over capacity");
    its_expect_state(&cu2, 1, c2, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);
    its_expect_state(&cu3, 1, c3, SBP__CONV_STATE__STATE_QUEUED, NULL, NULL, 1);
    rc = sb_client_agent_state(a1->c, SBP__AGENT_STATUS__AGENT_AWAY, &rid);
    its_ans *an = its_wait_ans(a1, rc, rid, "agent state");
    Sbp__AgentState *as = sbp__agent_state__unpack(NULL, an->len, an->buf);
    assert_non_null(as);
    assert_int_equal(as->load, 2);
    sbp__agent_state__free_unpacked(as, NULL);
    /* A bot conversation is not in a queue. */
    its_dev *cu4 = its_connect(&S, "cu4", "customer", "cu4", "en");
    uint64_t c4 = its_open_service(cu4, NULL);
    rc = sb_client_claim(a1->c, c4, false, &rid);
    expect_err(a1, rc, rid, SB_E_STATE, "a claim of a bot conversation");
    for (size_t i = 0; i < S.n_devs; i++)
        assert_int_equal(S.devs[i]->violations, 0);
}

/* ---- tags ---------------------------------------------------------------- */

static void test_tags(void **state)
{
    (void)state;
    its_server_start(&E, "sbwb", DESK);
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1-desk", "en");
    its_dev *a1b = its_connect(&S, "a1", "agent", "a1-phone", "en");
    its_dev *cu = its_connect(&S, "cu", "customer", "cu", "en");
    uint64_t conv = handed_off(cu);
    its_dev *all[3] = {a1, a1b, cu};
    its_expect_state(all, 3, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);
    uint64_t refund = its_say_ok(cu, conv, "I want a refund", 0);
    its_expect_msg(a1b, conv, "cu", "refund");
    const char *add[] = {"refund"};
    uint32_t rid;
    int rc = sb_client_tag(a1->c, conv, refund, add, 1, NULL, 0, &rid);
    expect_ok(a1, rc, rid, "tag a message");
    uint64_t ev = its_expect_all(
        all, 3, conv, (its_match){.event = "msg.tagged"}, "msg.tagged");
    char seq[24];
    snprintf(seq, sizeof seq, "%" PRIu64, refund);
    for (int i = 0; i < 2; i++) {
        const its_msg *m = its_msg_at(all[i], conv, ev);
        assert_int_equal(m->n_args, 3);
        assert_string_equal(m->args[0], "a1");
        assert_string_equal(m->args[1], seq);
        assert_string_equal(m->args[2], "refund");
        assert_string_equal(m->body, "a1 changed the tags of a message.");
    }
    const its_msg *hidden = its_msg_at(cu, conv, ev);
    assert_int_equal(hidden->n_args, 0);
    assert_string_equal(hidden->body, "");
    const char *vip[] = {"vip"};
    rc = sb_client_tag(a1->c, conv, 0, vip, 1, NULL, 0, &rid);
    expect_ok(a1, rc, rid, "tag the conversation");
    uint64_t ev2 = its_expect_all(
        all, 3, conv, (its_match){.event = "conv.tagged"}, "conv.tagged");
    rc = sb_client_tag(a1->c, conv, refund, NULL, 0, add, 1, &rid);
    expect_ok(a1, rc, rid, "untag the message");
    uint64_t ev3 = its_expect_all(
        all, 3, conv, (its_match){.event = "msg.tagged", .after = ev2},
        "msg.tagged (removed)");
    assert_int_equal(its_msg_at(a1b, conv, ev3)->n_args, 2);
    rc = sb_client_tag(a1->c, conv, refund, add, 1, NULL, 0, &rid);
    expect_ok(a1, rc, rid, "tag the message again");
    uint64_t ev4 = its_expect_all(
        all, 3, conv, (its_match){.event = "msg.tagged", .after = ev3},
        "msg.tagged (again)");

    /* A device that was offline learns every change at its SYNC. */
    its_dev *late = its_connect(&S, "a1", "agent", "a1-late", "en");
    its_expect_all(&late, 1, conv,
                   (its_match){.event = "msg.tagged", .after = ev3},
                   "msg.tagged on the late device");
    const its_msg *lm = its_msg_at(late, conv, ev4);
    assert_int_equal(lm->n_args, 3);
    assert_string_equal(lm->args[2], "refund");
    const its_msg *lc = its_msg_at(late, conv, ev2);
    assert_int_equal(lc->n_args, 3);
    assert_string_equal(lc->args[1], "0");
    assert_string_equal(lc->args[2], "vip");

    /* The customer's reads: no tags, no tag events' contents. */
    int err;
    Sbp__HistoryResp *h = history(cu, conv, &err);
    assert_int_equal(err, 0);
    for (size_t i = 0; i < h->n_messages; i++) {
        const Sbp__Message *m = h->messages[i];
        assert_int_equal(m->n_tags, 0);
        if (m->event && strstr(m->event->key, "tagged")) {
            assert_int_equal(m->event->n_args, 0);
            assert_string_equal(m->body, "");
        }
    }
    sbp__history_resp__free_unpacked(h, NULL);
    h = history(a1, conv, &err);
    assert_int_equal(err, 0);
    bool tagged = false;
    for (size_t i = 0; i < h->n_messages; i++)
        if (h->messages[i]->seq == refund)
            tagged = h->messages[i]->n_tags == 1 &&
                     strcmp(h->messages[i]->tags[0], "refund") == 0;
    assert_true(tagged);
    sbp__history_resp__free_unpacked(h, NULL);
    rc = sb_client_search(cu->c, conv, "changed the tags", 10, &rid);
    its_ans *an = its_wait_ans(cu, rc, rid, "customer search");
    assert_int_equal(an->err, 0);
    Sbp__SearchResp *sr = sbp__search_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(sr);
    assert_int_equal(sr->n_messages, 0);
    sbp__search_resp__free_unpacked(sr, NULL);
    rc = sb_client_search(a1->c, conv, "changed the tags", 10, &rid);
    an = its_wait_ans(a1, rc, rid, "agent search");
    sr = sbp__search_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(sr);
    assert_true(sr->n_messages >= 1);
    sbp__search_resp__free_unpacked(sr, NULL);
    Sbp__ConvListResp *l = conv_list(cu, 0, false);
    assert_int_equal(list_find(l, conv)->n_tags, 0);
    sbp__conv_list_resp__free_unpacked(l, NULL);
    l = conv_list(a1, 0, true);
    assert_int_equal(list_find(l, conv)->n_tags, 1);
    sbp__conv_list_resp__free_unpacked(l, NULL);
    for (size_t i = 0; i < S.n_devs; i++)
        assert_int_equal(S.devs[i]->violations, 0);
}

/* ---- the transfer note --------------------------------------------------- */

#define NOTE "VIP: refund approved, order 77"

static void test_note(void **state)
{
    (void)state;
    its_server_start(&E, "sbwb", DESK);
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1", "en");
    its_dev *a2 = its_connect(&S, "a2", "agent", "a2", "en");
    its_dev *cu = its_connect(&S, "cu", "customer", "cu", "en");
    set_status(a2, SBP__AGENT_STATUS__AGENT_AWAY);
    uint64_t conv = handed_off(cu);
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);
    set_status(a2, SBP__AGENT_STATUS__AGENT_ONLINE);
    /* a1's ACKs of what it got go out first: one arriving after the
     * transfer is refused (a1 is no longer a member). */
    it_run_for(&E, 300);
    uint32_t rid;
    int rc = sb_client_transfer_note(a1->c, conv, "a2", NULL, NOTE, &rid);
    expect_ok(a1, rc, rid, "transfer with a note");
    its_dev *both[2] = {cu, a2};
    its_expect_state(both, 2, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a2", NULL,
                     0);
    assert_string_equal(its_conv_of(a2, conv)->note, NOTE);
    assert_string_equal(its_conv_of(a2, conv)->note_from, "a1");
    assert_string_equal(its_conv_of(cu, conv)->note, "");
    assert_string_equal(its_conv_of(cu, conv)->note_from, "");
    assert_string_equal(its_conv_of(a1, conv)->note, "");

    Sbp__ConvListResp *l = conv_list(a2, 0, true);
    assert_string_equal(list_find(l, conv)->transfer_note, NOTE);
    assert_string_equal(list_find(l, conv)->transfer_from, "a1");
    sbp__conv_list_resp__free_unpacked(l, NULL);
    l = conv_list(cu, 0, false);
    assert_string_equal(list_find(l, conv)->transfer_note, "");
    sbp__conv_list_resp__free_unpacked(l, NULL);
    rc = sb_client_open_service(cu->c, "d", &rid);
    its_ans *an = its_wait_ans(cu, rc, rid, "open again");
    Sbp__Conversation *oc = sbp__conversation__unpack(NULL, an->len, an->buf);
    assert_non_null(oc);
    assert_string_equal(oc->transfer_note, "");
    sbp__conversation__free_unpacked(oc, NULL);
    Sbp__Frame *g = raw_sync("cu", "customer");
    assert_string_equal(sync_conv(g, conv)->transfer_note, "");
    for (size_t i = 0; i < g->sync_resp->n_messages; i++)
        assert_null(strstr(g->sync_resp->messages[i]->body, "VIP"));
    sb_frame_free(g);
    g = raw_sync("a2", "agent");
    assert_string_equal(sync_conv(g, conv)->transfer_note, NOTE);
    sb_frame_free(g);

    /* To a group with nobody online in it: queued, its agents see the
     * note (a2 is one, away), the customer does not. */
    set_status(a2, SBP__AGENT_STATUS__AGENT_AWAY);
    its_dev *a3 = its_connect(&S, "a3", "agent", "a3", "en");
    set_status(a3, SBP__AGENT_STATUS__AGENT_AWAY);
    rc = sb_client_transfer_note(a2->c, conv, NULL, "g2", "for billing", &rid);
    expect_ok(a2, rc, rid, "transfer to a group with a note");
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_QUEUED, NULL, "g2",
                     1);
    l = conv_list(a3, SBP__CONV_STATE__STATE_QUEUED, false);
    assert_non_null(list_find(l, conv));
    assert_string_equal(list_find(l, conv)->transfer_note, "for billing");
    sbp__conv_list_resp__free_unpacked(l, NULL);
    l = conv_list(cu, 0, false);
    assert_string_equal(list_find(l, conv)->transfer_note, "");
    sbp__conv_list_resp__free_unpacked(l, NULL);
    /* The one who takes it gets it; a transfer without a note clears it. */
    rc = sb_client_claim(a3->c, conv, false, &rid);
    expect_ok(a3, rc, rid, "claim");
    its_expect_state(&a3, 1, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a3", NULL,
                     0);
    assert_string_equal(its_conv_of(a3, conv)->note, "for billing");
    set_status(a2, SBP__AGENT_STATUS__AGENT_ONLINE);
    rc = sb_client_transfer(a3->c, conv, "a2", NULL, &rid);
    expect_ok(a3, rc, rid, "transfer without a note");
    its_expect_state(&a2, 1, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a2", NULL,
                     0);
    assert_string_equal(its_conv_of(a2, conv)->note, "");

    /* Over 1,024 bytes: refused by the SDK, and by the server. */
    char big[1100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(
        sb_client_transfer_note(a2->c, conv, "a1", NULL, big, &rid),
        SB_E_TOO_LARGE);
    it_raw r;
    assert_int_equal(it_raw_open(&r, E.srv.port, SB_ENC_PROTO, NULL), 0);
    assert_int_equal(
        it_raw_hello(&r, harness_token("a2", "agent", 3600), "raw", WAIT_MS),
        0);
    Sbp__Transfer t = SBP__TRANSFER__INIT;
    t.conv_id = conv;
    t.to_agent = "a1";
    t.note = big;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_TRANSFER;
    f.transfer = &t;
    uint32_t r1 = it_raw_send(&r, &f);
    Sbp__Frame *e = it_raw_expect(&r, SBP__FRAME__BODY_ERROR, r1, WAIT_MS);
    assert_non_null(e);
    assert_int_equal(e->error->code, SBP__ERROR_CODE__ERR_TOO_LARGE);
    sb_frame_free(e);
    it_raw_close(&r);
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a2", NULL,
                     0);
}

/* ---- the team ------------------------------------------------------------ */

static Sbp__AgentListResp *agent_list(its_dev *d, const char *desk, int *err)
{
    uint32_t rid;
    int rc = sb_client_agent_list(d->c, desk, &rid);
    its_ans *a = its_wait_ans(d, rc, rid, "agent list");
    *err = a->err;
    return a->err ? NULL : sbp__agent_list_resp__unpack(NULL, a->len, a->buf);
}

static const Sbp__AgentInfo *agent_in(const Sbp__AgentListResp *l,
                                      const char *id)
{
    for (size_t i = 0; i < l->n_agents; i++)
        if (strcmp(l->agents[i]->user_id, id) == 0) return l->agents[i];
    return NULL;
}

static void test_team(void **state)
{
    (void)state;
    its_server_start(&E, "sbwb", DESK);
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1", "en");
    its_dev *a2 = its_connect(&S, "a2", "agent", "a2", "en");
    its_dev *e1 = its_connect(&S, "e1", "agent", "e1", "en");
    its_dev *cu = its_connect(&S, "cu", "customer", "cu", "en");
    its_dev *ad = its_connect(&S, "root", "admin", "root", "en");
    uint64_t conv = handed_off(cu);
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL,
                     0);

    int err;
    Sbp__AgentListResp *l = agent_list(a1, NULL, &err);
    assert_non_null(l);
    assert_string_equal(l->desk, "d");
    assert_int_equal(l->n_groups, 2);
    assert_string_equal(l->groups[0], "g1");
    assert_string_equal(l->groups[1], "g2");
    assert_int_equal(l->n_agents, 3);
    assert_null(agent_in(l, "e1"));
    const Sbp__AgentInfo *x = agent_in(l, "a1");
    assert_int_equal(x->status, SBP__AGENT_STATUS__AGENT_ONLINE);
    assert_int_equal(x->load, 1);
    assert_int_equal(x->capacity, 1);
    assert_int_equal(x->n_groups, 1);
    x = agent_in(l, "a2");
    assert_int_equal(x->n_groups, 2);
    assert_int_equal(agent_in(l, "a3")->status,
                     SBP__AGENT_STATUS__AGENT_OFFLINE);
    sbp__agent_list_resp__free_unpacked(l, NULL);
    l = agent_list(e1, NULL, &err);
    assert_string_equal(l->desk, "e");
    assert_int_equal(l->n_agents, 1);
    sbp__agent_list_resp__free_unpacked(l, NULL);
    assert_null(agent_list(a1, "e", &err));
    assert_int_equal(err, SB_E_FORBIDDEN);
    assert_null(agent_list(a1, "nope", &err));
    assert_int_equal(err, SB_E_NOT_FOUND);
    assert_null(agent_list(cu, NULL, &err));
    assert_int_equal(err, SB_E_FORBIDDEN);
    l = agent_list(ad, "e", &err);
    assert_non_null(l);
    assert_string_equal(agent_in(l, "e1")->user_id, "e1");
    sbp__agent_list_resp__free_unpacked(l, NULL);

    /* Presence: every change of a teammate, none of another desk's. */
    set_status(a2, SBP__AGENT_STATUS__AGENT_AWAY);
    assert_true(
        its_wait_presence(a1, "a2", SBP__AGENT_STATUS__AGENT_AWAY, WAIT_MS));
    its_dev *a3 = its_connect(&S, "a3", "agent", "a3", "en");
    assert_true(
        its_wait_presence(a1, "a3", SBP__AGENT_STATUS__AGENT_ONLINE, WAIT_MS));
    assert_true(
        its_wait_presence(a2, "a3", SBP__AGENT_STATUS__AGENT_ONLINE, WAIT_MS));
    its_stop(a3);
    assert_true(
        its_wait_presence(a1, "a3", SBP__AGENT_STATUS__AGENT_OFFLINE, WAIT_MS));
    l = agent_list(a1, NULL, &err);
    assert_int_equal(agent_in(l, "a2")->status, SBP__AGENT_STATUS__AGENT_AWAY);
    assert_int_equal(agent_in(l, "a3")->status,
                     SBP__AGENT_STATUS__AGENT_OFFLINE);
    sbp__agent_list_resp__free_unpacked(l, NULL);
    it_run_for(&E, 200);
    assert_int_equal(e1->n_presence, 0);
    assert_int_equal(cu->n_presence, 0);
    for (size_t i = 0; i < a1->n_presence; i++)
        assert_string_not_equal(a1->presence[i].user, "a1");
}

/* ---- the widget ---------------------------------------------------------- */

/* GET path; the status, the response in resp. */
static int http_get(const char *path, char *resp, size_t cap)
{
    char req[256];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    bool closed;
    return it_http(E.srv.port, req, strlen(req), resp, cap, WAIT_MS, &closed);
}

static void admin_op(its_dev *ad, const char *op, const char *body, int want)
{
    uint32_t rid;
    int rc = sb_client_admin_cmd(ad->c, op, body, &rid);
    its_ans *a = its_wait_ans(ad, rc, rid, op);
    if (a->err != want)
        fail_msg("%s %s: %s (%s), expected %s", op, body,
                 sb_client_err_name(a->err), a->text, sb_client_err_name(want));
}

static void test_widget(void **state)
{
    (void)state;
    its_server_start(&E, "sbwb", DESK);
    static char resp[8192];
    assert_int_equal(http_get("/api/widget", resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "Cache-Control: public, max-age=60\r\n"));
    assert_non_null(strstr(resp, "Access-Control-Allow-Origin: *\r\n"));
    assert_non_null(strstr(resp, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(resp, "\"desk\":\"d\""));
    assert_non_null(strstr(resp, "\"color\":\"#0f766e\""));
    assert_non_null(strstr(resp, "\"title\":{\"en\":\"Acme help\"}"));
    assert_non_null(strstr(resp, "\"reply_time\":{\"en\":\"in minutes\"}"));
    assert_non_null(strstr(resp, "\"greeting\":{\"en\":\"Hello there\"}"));
    assert_non_null(strstr(
        resp, "{\"agent\":\"a1\",\"url\":\"https://cdn.example.com/a1.png\"}"));
    /* Nothing of the rest of the configuration. */
    assert_null(strstr(resp, "capacity"));
    assert_null(strstr(resp, "human"));
    assert_int_equal(http_get("/api/widget?desk=e", resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "\"desk\":\"e\""));
    assert_non_null(strstr(resp, "\"avatars\":[]"));
    assert_int_equal(http_get("/api/widget?desk=zz", resp, sizeof resp), 404);
    assert_int_equal(http_get("/api/widget?desk=a%20b", resp, sizeof resp),
                     400);

    /* Admins change it live; bad values are refused. */
    its_dev *ad = its_connect(&S, "root", "admin", "root", "en");
    admin_op(ad, "desk-widget", "{\"color\":\"#112233\"}", 0);
    admin_op(ad, "desk-widget",
             "{\"kind\":\"title\",\"lang\":\"zh-CN\",\"text\":\"Acme "
             "\xe5\xae\xa2\xe6\x9c\x8d\"}",
             0);
    admin_op(ad, "desk-avatar",
             "{\"id\":\"a2\",\"url\":\"https://cdn.example.com/a2.png\"}", 0);
    assert_int_equal(http_get("/api/widget?desk=d", resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "\"color\":\"#112233\""));
    assert_non_null(
        strstr(resp, "\"zh-CN\":\"Acme \xe5\xae\xa2\xe6\x9c\x8d\""));
    assert_non_null(strstr(resp, "\"agent\":\"a2\""));
    admin_op(ad, "desk-widget", "{\"color\":\"#12\"}", SB_E_INVALID);
    admin_op(ad, "desk-widget",
             "{\"kind\":\"logo\",\"lang\":\"en\","
             "\"text\":\"x\"}",
             SB_E_INVALID);
    admin_op(ad, "desk-avatar",
             "{\"id\":\"a2\",\"url\":\"javascript:alert(1)\"}", SB_E_INVALID);
    admin_op(ad, "desk-avatar", "{\"id\":\"zz\",\"url\":\"/x.png\"}",
             SB_E_NOT_FOUND);
    assert_int_equal(http_get("/api/widget?desk=d", resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "\"color\":\"#112233\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_masked, teardown),
        cmocka_unit_test_teardown(test_masked_json, teardown),
        cmocka_unit_test_teardown(test_receipts, teardown),
        cmocka_unit_test_teardown(test_closed, teardown),
        cmocka_unit_test_teardown(test_claim, teardown),
        cmocka_unit_test_teardown(test_tags, teardown),
        cmocka_unit_test_teardown(test_note, teardown),
        cmocka_unit_test_teardown(test_team, teardown),
        cmocka_unit_test_teardown(test_widget, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
