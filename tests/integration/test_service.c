/* integ_service: the customer-service lifecycle against the real server
 * (started with --desk on a desk file written here), driven by the C SDK
 * over real sockets.
 *
 * - scenario: a customer with two devices (en, zh-CN) opens; the bot
 *   greets with quick replies and answers a question; the customer asks
 *   for a human and is queued (conv_update with the position, the
 *   out-of-hours text: the only agent of the group is away); the agent
 *   goes online and gets the conversation, with everything said so far;
 *   typing, a quoted reply (the quote filled on the customer's devices), a
 *   recall (on_recalled everywhere), tags, list, search, canned replies;
 *   transfer to another group's agent; close; reopen by a customer
 *   message. Every step is checked on every device of every participant,
 *   and the same event renders in en and zh-CN per device.
 * - capacity: 3 agents of capacity 2, 10 customers: least loaded first
 *   (longest idle on ties), the rest queued with positions 1..4; a close
 *   hands the head of the queue to the agent at once and the others move
 *   up.
 * - out of hours: nobody online; the customer is queued with the
 *   out-of-hours text and keeps writing; an agent connects and gets the
 *   conversation with nothing lost.
 * - transfer to a group: a full agent's transfer away hands its room to
 *   the head of the queue (docs/protocol.md), not back to itself.
 * - authorization: another customer cannot read, write, quote, tag or
 *   recall; an agent only where assigned or transferred to; wrong-role
 *   requests get a clear error code; a recall past the window is too late.
 * The scenario runs in both encodings (protobuf and JSON).
 *
 * The SDK's invariants are checked as messages surface (seq dense and
 * ascending per conversation on every device). */
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
#include <unistd.h>

#include "itsvc.h"
#include "sb_error.h"

/* The catalog's zh-CN texts (src/gateway/sb_i18n.c). */
#define ZH_QUEUED_1 /* 您当前排在第 1 位。 */                          \
    "\xe6\x82\xa8\xe5\xbd\x93\xe5\x89\x8d\xe6\x8e\x92\xe5\x9c\xa8\xe7\xac\xac" \
    " 1 \xe4\xbd\x8d\xe3\x80\x82"
#define ZH_ASSIGNED_A1 /* 客服 a1 已接入会话。 */                      \
    "\xe5\xae\xa2\xe6\x9c\x8d a1 \xe5\xb7\xb2\xe6\x8e\xa5\xe5\x85\xa5\xe4\xbc" \
    "\x9a\xe8\xaf\x9d\xe3\x80\x82"
#define ZH_RECALLED_CU1 /* cu1 撤回了一条消息。 */                     \
    "cu1 \xe6\x92\xa4\xe5\x9b\x9e\xe4\xba\x86\xe4\xb8\x80\xe6\x9d\xa1\xe6\xb6" \
    "\x88\xe6\x81\xaf\xe3\x80\x82"

/* Groups g1 (a1, a2) and g2 (a3); the bot hands off on "human". */
static const char DESK_SCENARIO[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\",\"g2\"],"
    "\"default_group\":\"g1\",\"unmatched_max\":2,\"recall_window_s\":120,"
    "\"greeting\":{\"en\":\"Welcome\",\"zh-CN\":\"\xe6\xac\xa2\xe8\xbf\x8e\"},"
    "\"fallback\":{\"en\":\"Sorry?\"},"
    "\"out_of_hours\":{\"en\":\"Nobody is here\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true},"
    "{\"keywords\":[\"refund\"],\"answer\":\"Refunds take 5 days\","
    "\"quick_replies\":[\"Status\",\"Talk to a person\"]}]},"
    "\"canned\":[{\"key\":\"hi\",\"title\":\"Hi\",\"text\":\"Hello!\"},"
    "{\"key\":\"bye\",\"title\":\"Bye\",\"text\":\"Bye!\"}]}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a2\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a3\",\"groups\":[\"g2\"],\"capacity\":2}]}";

/* Three agents of capacity 2 in one group; recalls expire after 1 s. */
static const char DESK_CAPACITY[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\"],\"unmatched_max\":2,"
    "\"recall_window_s\":1,"
    "\"greeting\":{\"en\":\"Welcome\"},\"fallback\":{\"en\":\"Sorry?\"},"
    "\"out_of_hours\":{\"en\":\"Nobody is here\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true}]},"
    "\"canned\":[{\"key\":\"hi\",\"text\":\"Hello!\"}]}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a2\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a3\",\"groups\":[\"g1\"],\"capacity\":2}]}";

/* ---- devices ------------------------------------------------------------- */

static it_env E;
static its_ctx S = {
    .env = &E, .client_name = "integ_service", .requests_max = 64};

static int teardown(void **state)
{
    (void)state;
    its_free_all(&S);
    it_env_free(&E);
    return 0;
}

/* ---- requests and answers ------------------------------------------------ */

/* The request's error (0: OK). */
static int req_err(its_dev *d, int rc, uint32_t rid, const char *what)
{
    its_ans *a = its_wait_ans(d, rc, rid, what);
    return a->err;
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

/* ---- what devices surfaced ----------------------------------------------- */

typedef struct surf_arg {
    its_dev **devs;
    size_t n;
    uint64_t conv, seq;
} surf_arg;

static bool all_surfaced(void *arg)
{
    surf_arg *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        its_conv *c = its_conv_of(a->devs[i], a->conv);
        if (!c || c->n < a->seq) return false;
    }
    return true;
}

/* Every device surfaced conv 1..seq, the same messages (msg_id) at every
 * seq. */
static void expect_same(its_dev **devs, size_t n, uint64_t conv, uint64_t seq)
{
    surf_arg a = {devs, n, conv, seq};
    if (!it_run_until(&E, all_surfaced, &a, ITS_WAIT_MS))
        fail_msg("conv %" PRIu64 " not surfaced through %" PRIu64
                 " on every device",
                 conv, seq);
    for (uint64_t s = 1; s <= seq; s++)
        for (size_t i = 1; i < n; i++)
            if (its_msg_at(devs[i], conv, s)->msg_id !=
                its_msg_at(devs[0], conv, s)->msg_id)
                fail_msg("conv %" PRIu64 " seq %" PRIu64 " differs on %s", conv,
                         s, devs[i]->name);
}

static uint64_t last_seq(its_dev *d, uint64_t conv)
{
    its_conv *c = its_conv_of(d, conv);
    return c ? c->n : 0;
}

static bool has_recalled(its_dev *d, uint64_t conv, uint64_t seq)
{
    its_conv *c = its_conv_of(d, conv);
    for (size_t i = 0; c && i < c->n_recalled; i++)
        if (c->recalled[i] == seq) return true;
    return false;
}

static bool typing_seen(void *arg)
{
    its_dev **two = arg;
    return two[0]->typing_on > 0 && two[1]->typing_on > 0;
}

/* How many messages of conv on d contain body. */
static size_t count_body(its_dev *d, uint64_t conv, const char *body)
{
    its_conv *c = its_conv_of(d, conv);
    size_t n = 0;
    for (size_t i = 0; c && i < c->n; i++)
        n += strstr(c->msgs[i].body, body) != NULL;
    return n;
}

/* ---- the scenario -------------------------------------------------------- */

static void run_scenario(sb_encoding enc)
{
    its_server_start(&E, "sbsvc", DESK_SCENARIO);
    E.enc = enc; /* of the devices made from now on */
    /* a3 (g2) online, a1 (g1) connected but away: nobody of g1 online. */
    its_dev *a3 = its_connect(&S, "a3", "agent", "a3-desk", "en");
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1-desk", "zh-CN");
    uint32_t rid;
    int rc = sb_client_agent_state(a1->c, SBP__AGENT_STATUS__AGENT_AWAY, &rid);
    its_ans *an = its_wait_ans(a1, rc, rid, "agent status away");
    assert_int_equal(an->err, 0);
    Sbp__AgentState *as = sbp__agent_state__unpack(NULL, an->len, an->buf);
    assert_non_null(as);
    assert_int_equal(as->status, SBP__AGENT_STATUS__AGENT_AWAY);
    assert_int_equal(as->capacity, 2);
    assert_int_equal(as->load, 0);
    sbp__agent_state__free_unpacked(as, NULL);

    its_dev *phone = its_connect(&S, "cu1", "customer", "cu1-phone", "en");
    its_dev *laptop = its_connect(&S, "cu1", "customer", "cu1-laptop", "zh-CN");
    its_dev *cust[2] = {phone, laptop};

    /* Open: the bot greets on both devices, with a quick reply. */
    uint64_t conv = its_open_service(phone, NULL);
    uint64_t s = its_expect_all(
        cust, 2, conv,
        (its_match){.type = SBP__MSG_TYPE__MSG_ROBOT, .body = "Welcome"},
        "the greeting");
    assert_int_equal(s, 1);
    for (size_t i = 0; i < 2; i++) {
        assert_true(its_msg_at(cust[i], conv, 1)->n_quick >= 1);
        assert_string_equal(its_msg_at(cust[i], conv, 1)->quick[0],
                            "Talk to a person");
    }
    /* Opening again resumes the same conversation, no second greeting. */
    assert_int_equal(its_open_service(laptop, NULL), conv);

    /* A question the rules know: the answer with its quick replies. */
    uint64_t refund = its_say_ok(phone, conv, "I want a refund", 0);
    s = its_expect_all(cust, 2, conv,
                       (its_match){.type = SBP__MSG_TYPE__MSG_ROBOT,
                                   .body = "Refunds take 5 days",
                                   .after = refund},
                       "the bot's answer");
    assert_int_equal(its_msg_at(laptop, conv, s)->n_quick, 2);
    assert_string_equal(its_msg_at(laptop, conv, refund)->body,
                        "I want a refund");

    /* A human, please: queued (position 1 by conv_update and by event,
     * rendered per device), and the out-of-hours text. */
    uint64_t ask = its_say_ok(phone, conv, "a human please", 0);
    its_expect_state(cust, 2, conv, SBP__CONV_STATE__STATE_QUEUED, NULL, NULL,
                     1);
    s = its_expect_all(cust, 2, conv,
                       (its_match){.event = "conv.queued", .after = ask},
                       "conv.queued");
    assert_string_equal(its_msg_at(phone, conv, s)->body,
                        "You are number 1 in the queue.");
    assert_string_equal(its_msg_at(laptop, conv, s)->body, ZH_QUEUED_1);
    its_expect_all(cust, 2, conv,
                   (its_match){.type = SBP__MSG_TYPE__MSG_SYSTEM,
                               .body = "Nobody is here",
                               .after = ask},
                   "the out-of-hours text");
    /* Written while waiting: must not be lost. */
    uint64_t waiting = its_say_ok(laptop, conv, "still waiting", 0);

    /* a1 goes online and gets it at once. */
    rc = sb_client_agent_state(a1->c, SBP__AGENT_STATUS__AGENT_ONLINE, &rid);
    expect_ok(a1, rc, rid, "agent status online");
    its_dev *with_a1[3] = {phone, laptop, a1};
    its_expect_state(with_a1, 3, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1",
                     NULL, 0);
    uint64_t joined =
        its_expect_all(with_a1, 3, conv, (its_match){.event = "conv.assigned"},
                       "conv.assigned");
    /* One event, rendered in each device's locale. */
    assert_string_equal(its_msg_at(phone, conv, joined)->body,
                        "a1 has joined the conversation.");
    assert_string_equal(its_msg_at(laptop, conv, joined)->body, ZH_ASSIGNED_A1);
    assert_string_equal(its_msg_at(a1, conv, joined)->body, ZH_ASSIGNED_A1);
    /* The agent has everything said so far, in order. */
    expect_same(with_a1, 3, conv, joined);
    assert_string_equal(its_msg_at(a1, conv, waiting)->body, "still waiting");
    assert_string_equal(its_msg_at(a1, conv, refund)->body, "I want a refund");
    rc = sb_client_agent_state(a1->c, SBP__AGENT_STATUS__AGENT_ONLINE, &rid);
    an = its_wait_ans(a1, rc, rid, "agent status");
    as = sbp__agent_state__unpack(NULL, an->len, an->buf);
    assert_non_null(as);
    assert_int_equal(as->load, 1);
    sbp__agent_state__free_unpacked(as, NULL);

    /* Typing reaches the customer's devices, not the typist's. */
    assert_int_equal(sb_client_typing(a1->c, conv, true), 0);
    assert_true(it_run_until(&E, typing_seen, cust, ITS_WAIT_MS));
    assert_string_equal(phone->typing_user, "a1");
    assert_string_equal(laptop->typing_user, "a1");
    assert_int_equal(a1->typing_on, 0);

    /* A quoted reply: the quote is filled on the customer's devices. */
    uint64_t reply = its_say_ok(a1, conv, "Let me check that refund", refund);
    its_expect_all(cust, 2, conv, (its_match){.sender = "a1", .after = joined},
                   "the agent's reply");
    for (size_t i = 0; i < 2; i++) {
        const its_msg *m = its_msg_at(cust[i], conv, reply);
        assert_string_equal(m->body, "Let me check that refund");
        assert_int_equal(m->quote_seq, refund);
        assert_true(m->has_quote);
        assert_int_equal(m->q_seq, refund);
        assert_string_equal(m->q_sender, "cu1");
        assert_string_equal(m->q_body, "I want a refund");
    }

    /* A recall: every device surfaces the event and is told to hide it. */
    uint64_t oops = its_say_ok(phone, conv, "my card is 1234", 0);
    rc = sb_client_recall(phone->c, conv, oops, &rid);
    expect_ok(phone, rc, rid, "recall");
    uint64_t rec = its_expect_all(
        with_a1, 3, conv, (its_match){.event = "msg.recalled", .after = oops},
        "msg.recalled");
    assert_string_equal(its_msg_at(a1, conv, rec)->body, ZH_RECALLED_CU1);
    assert_string_equal(its_msg_at(phone, conv, rec)->body,
                        "cu1 recalled a message.");
    for (size_t i = 0; i < 3; i++)
        assert_true(has_recalled(with_a1[i], conv, oops));
    /* Reads give it back recalled, with an empty body. */
    rc = sb_client_history(laptop->c, conv, 0, 100, &rid);
    an = its_wait_ans(laptop, rc, rid, "history");
    assert_int_equal(an->err, 0);
    Sbp__HistoryResp *hr = sbp__history_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(hr);
    bool seen = false;
    for (size_t i = 0; i < hr->n_messages; i++) {
        assert_int_equal(hr->messages[i]->seq, i + 1);
        if (hr->messages[i]->seq != oops) continue;
        seen = true;
        assert_true(hr->messages[i]->recalled);
        assert_string_equal(hr->messages[i]->body, "");
    }
    assert_true(seen);
    sbp__history_resp__free_unpacked(hr, NULL);

    /* Tags, the list and search from the agent's workbench. */
    const char *vip[] = {"vip"}, *rf[] = {"refund"};
    rc = sb_client_tag(a1->c, conv, 0, vip, 1, NULL, 0, &rid);
    expect_ok(a1, rc, rid, "tag the conversation");
    rc = sb_client_tag(a1->c, conv, refund, rf, 1, NULL, 0, &rid);
    expect_ok(a1, rc, rid, "tag a message");
    rc = sb_client_conv_list(a1->c, NULL, 10, 0, "vip", true, &rid);
    an = its_wait_ans(a1, rc, rid, "list by tag");
    assert_int_equal(an->err, 0);
    Sbp__ConvListResp *lr = sbp__conv_list_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(lr);
    assert_int_equal(lr->n_convs, 1);
    assert_int_equal(lr->convs[0]->conv_id, conv);
    assert_int_equal(lr->convs[0]->state, SBP__CONV_STATE__STATE_ASSIGNED);
    assert_string_equal(lr->convs[0]->agent, "a1");
    assert_string_equal(lr->convs[0]->customer, "cu1");
    assert_non_null(lr->convs[0]->last_message);
    sbp__conv_list_resp__free_unpacked(lr, NULL);
    rc = sb_client_search(a1->c, conv, "refund", 10, &rid);
    an = its_wait_ans(a1, rc, rid, "search");
    assert_int_equal(an->err, 0);
    Sbp__SearchResp *sr = sbp__search_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(sr);
    bool found = false;
    for (size_t i = 0; i < sr->n_messages; i++) {
        assert_int_equal(sr->messages[i]->conv_id, conv);
        found |= sr->messages[i]->seq == refund;
        assert_true(sr->messages[i]->seq != oops); /* recalled: never */
        if (sr->messages[i]->seq == refund) {
            assert_int_equal(sr->messages[i]->n_tags, 1);
            assert_string_equal(sr->messages[i]->tags[0], "refund");
        }
    }
    assert_true(found);
    sbp__search_resp__free_unpacked(sr, NULL);
    rc = sb_client_canned_list(a1->c, "d", &rid);
    an = its_wait_ans(a1, rc, rid, "canned");
    assert_int_equal(an->err, 0);
    Sbp__CannedListResp *cr =
        sbp__canned_list_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(cr);
    assert_int_equal(cr->n_items, 2);
    assert_string_equal(cr->items[0]->key, "hi");
    sbp__canned_list_resp__free_unpacked(cr, NULL);

    /* Transfer to group g2: a3, its only agent, gets it with the history;
     * a1 is out. */
    rc = sb_client_transfer(a1->c, conv, NULL, "g2", &rid);
    expect_ok(a1, rc, rid, "transfer to g2");
    its_dev *with_a3[3] = {phone, laptop, a3};
    its_expect_state(with_a3, 3, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a3",
                     NULL, 0);
    uint64_t moved =
        its_expect_all(with_a3, 3, conv,
                       (its_match){.event = "conv.transferred", .after = rec},
                       "conv.transferred");
    uint64_t joined3 = its_expect_all(
        with_a3, 3, conv,
        (its_match){.event = "conv.assigned", .body = "a3", .after = moved},
        "conv.assigned a3");
    expect_same(with_a3, 3, conv, joined3);
    assert_string_equal(its_conv_of(phone, conv)->group, "g2");
    assert_int_equal(its_say(a1, conv, "am I still here?", 0), SB_E_FORBIDDEN);
    its_say_ok(a3, conv, "Hello from billing", 0);

    /* a3 closes: its OK says so; the agent leaves the conversation with
     * the close (members follow the assignment), the customer's devices
     * are told. */
    rc = sb_client_close_conv(a3->c, conv, &rid);
    expect_ok(a3, rc, rid, "close");
    its_expect_state(cust, 2, conv, SBP__CONV_STATE__STATE_CLOSED, NULL, NULL,
                     0);
    uint64_t closed = its_expect_all(
        cust, 2, conv, (its_match){.event = "conv.closed"}, "conv.closed");
    assert_string_equal(its_msg_at(phone, conv, closed)->body,
                        "The conversation was closed by a3.");
    /* The customer writes again: reopened, the bot answers. */
    uint64_t again = its_say_ok(phone, conv, "one more refund question", 0);
    its_expect_state(cust, 2, conv, SBP__CONV_STATE__STATE_BOT, NULL, NULL, 0);
    uint64_t reopened = its_expect_all(
        cust, 2, conv, (its_match){.event = "conv.reopened", .after = closed},
        "conv.reopened");
    assert_true(reopened > closed);
    its_expect_all(cust, 2, conv,
                   (its_match){.type = SBP__MSG_TYPE__MSG_ROBOT,
                               .body = "Refunds take 5 days",
                               .after = again},
                   "the bot after the reopen");

    /* Both customer devices hold the same conversation, dense and in
     * order, with nothing surfaced twice. */
    it_run_for(&E, 200);
    expect_same(cust, 2, conv, last_seq(phone, conv));
    assert_int_equal(last_seq(phone, conv), last_seq(laptop, conv));
    assert_int_equal(count_body(laptop, conv, "Welcome"), 1); /* one greeting */
    for (size_t i = 0; i < S.n_devs; i++) {
        assert_int_equal(S.devs[i]->violations, 0);
        assert_int_equal(S.devs[i]->errors, 0);
    }
    assert_int_equal(E.violations, 0);
    printf("integ_service scenario [%s]: %" PRIu64 " messages, the same on 2 "
           "customer devices; 3 agents\n",
           enc == SB_ENC_JSON ? "json" : "proto", last_seq(phone, conv));
}

static void test_scenario(void **state)
{
    (void)state;
    run_scenario(SB_ENC_PROTO);
}

/* The same with the JSON subprotocol: the customer-service frames through
 * the server's and the SDK's JSON codecs. */
static void test_scenario_json(void **state)
{
    (void)state;
    run_scenario(SB_ENC_JSON);
}

/* ---- capacity ------------------------------------------------------------ */

static void test_capacity(void **state)
{
    (void)state;
    its_server_start(&E, "sbsvc", DESK_CAPACITY);
    its_dev *ag[3];
    const char *names[3] = {"a1", "a2", "a3"};
    for (int i = 0; i < 3; i++) {
        ag[i] = its_connect(&S, names[i], "agent", names[i], "en");
        it_run_for(&E, 30); /* distinct idle times: a1 idle longest */
    }
    its_dev *cu[10];
    uint64_t conv[10];
    const char *want[6] = {"a1", "a2", "a3", "a1", "a2", "a3"};
    for (int i = 0; i < 10; i++) {
        char user[16], dev[16];
        snprintf(user, sizeof user, "cust%d", i);
        snprintf(dev, sizeof dev, "cust%d-p", i);
        cu[i] = its_connect(&S, user, "customer", dev, "en");
        conv[i] = its_open_service(cu[i], NULL);
        its_say_ok(cu[i], conv[i], "human", 0);
        /* Routed before the next one asks. */
        if (i < 6)
            its_expect_state(&cu[i], 1, conv[i],
                             SBP__CONV_STATE__STATE_ASSIGNED, want[i], NULL, 0);
        else
            its_expect_state(&cu[i], 1, conv[i], SBP__CONV_STATE__STATE_QUEUED,
                             NULL, NULL, (uint32_t)(i - 5));
    }
    /* Least loaded first, longest idle on ties; the agents got them too. */
    for (int i = 0; i < 6; i++) {
        its_dev *ad = ag[(i % 3)];
        its_dev *pair[2] = {cu[i], ad};
        its_expect_state(pair, 2, conv[i], SBP__CONV_STATE__STATE_ASSIGNED,
                         want[i], NULL, 0);
    }
    for (int i = 6; i < 10; i++) {
        assert_int_equal(its_conv_of(cu[i], conv[i])->queue_pos, i - 5);
        /* The queue event said the same. */
        char pos[64];
        snprintf(pos, sizeof pos, "number %d in the queue", i - 5);
        its_expect_all(&cu[i], 1, conv[i],
                       (its_match){.event = "conv.queued", .body = pos},
                       "conv.queued");
        /* Agents were online, all full: no out-of-hours text. */
        assert_null(its_find_msg(cu[i], conv[i],
                                 &(its_match){.body = "Nobody is here"}));
    }
    /* Agents see the queue of their group in their list. */
    uint32_t rid;
    int rc = sb_client_conv_list(
        ag[0]->c, NULL, 50, SBP__CONV_STATE__STATE_QUEUED, NULL, false, &rid);
    its_ans *an = its_wait_ans(ag[0], rc, rid, "list queued");
    assert_int_equal(an->err, 0);
    Sbp__ConvListResp *lr = sbp__conv_list_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(lr);
    assert_int_equal(lr->n_convs, 4);
    sbp__conv_list_resp__free_unpacked(lr, NULL);
    rc = sb_client_agent_state(ag[1]->c, SBP__AGENT_STATUS__AGENT_ONLINE, &rid);
    an = its_wait_ans(ag[1], rc, rid, "agent state");
    Sbp__AgentState *as = sbp__agent_state__unpack(NULL, an->len, an->buf);
    assert_non_null(as);
    assert_int_equal(as->load, 2);
    assert_int_equal(as->capacity, 2);
    sbp__agent_state__free_unpacked(as, NULL);

    /* a2 closes cust1's: the head of the queue (cust6) goes to a2 at once,
     * the others move up. */
    int64_t t0 = harness_now_ms();
    rc = sb_client_close_conv(ag[1]->c, conv[1], &rid);
    expect_ok(ag[1], rc, rid, "close");
    its_dev *pair[2] = {cu[6], ag[1]};
    its_expect_state(pair, 2, conv[6], SBP__CONV_STATE__STATE_ASSIGNED, "a2",
                     NULL, 0);
    int64_t took = harness_now_ms() - t0;
    for (int i = 7; i < 10; i++)
        its_expect_state(&cu[i], 1, conv[i], SBP__CONV_STATE__STATE_QUEUED,
                         NULL, NULL, (uint32_t)(i - 6));
    its_expect_state(&cu[1], 1, conv[1], SBP__CONV_STATE__STATE_CLOSED, NULL,
                     NULL, 0);
    /* The new agent has cust6's whole conversation. */
    expect_same(pair, 2, conv[6],
                its_expect_all(pair, 2, conv[6],
                               (its_match){.event = "conv.assigned"},
                               "conv.assigned"));
    for (size_t i = 0; i < S.n_devs; i++)
        assert_int_equal(S.devs[i]->violations, 0);
    printf("integ_service capacity: 6 assigned a1,a2,a3,a1,a2,a3, 4 queued; "
           "a close handed the queue's head over in %lld ms\n",
           (long long)took);
}

/* ---- out of hours -------------------------------------------------------- */

static void test_out_of_hours(void **state)
{
    (void)state;
    its_server_start(&E, "sbsvc", DESK_CAPACITY);
    its_dev *cu = its_connect(&S, "night", "customer", "night-p", "en");
    uint64_t conv = its_open_service(cu, NULL);
    uint64_t ask = its_say_ok(cu, conv, "human", 0);
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_QUEUED, NULL, NULL,
                     1);
    its_expect_all(&cu, 1, conv,
                   (its_match){.type = SBP__MSG_TYPE__MSG_SYSTEM,
                               .body = "Nobody is here",
                               .after = ask},
                   "the out-of-hours text");
    uint64_t w[3];
    w[0] = its_say_ok(cu, conv, "my order 42 never came", 0);
    w[1] = its_say_ok(cu, conv, "it was a birthday present", 0);
    w[2] = its_say_ok(cu, conv, "please call me", 0);
    /* An agent arrives: connecting makes it online; it gets the
     * conversation with every word. */
    it_run_for(&E, 50);
    its_dev *ag = its_connect(&S, "a2", "agent", "a2-late", "en");
    its_dev *both[2] = {cu, ag};
    its_expect_state(both, 2, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a2", NULL,
                     0);
    uint64_t joined = its_expect_all(
        both, 2, conv, (its_match){.event = "conv.assigned"}, "conv.assigned");
    assert_true(joined > w[2]);
    expect_same(both, 2, conv, joined);
    assert_string_equal(its_msg_at(ag, conv, w[0])->body,
                        "my order 42 never came");
    assert_string_equal(its_msg_at(ag, conv, w[2])->body, "please call me");
    uint64_t r = its_say_ok(ag, conv, "Calling you now", w[2]);
    its_expect_all(&cu, 1, conv, (its_match){.sender = "a2", .after = joined},
                   "the reply");
    assert_int_equal(its_msg_at(cu, conv, r)->quote_seq, w[2]);
    assert_true(its_msg_at(cu, conv, r)->has_quote);
    assert_int_equal(its_msg_at(cu, conv, r)->q_seq, w[2]);
    assert_int_equal(cu->violations + ag->violations, 0);
}

/* ---- transfer to a group and the queue ----------------------------------- */

/* docs/protocol.md: a transfer to a group goes "back through routing", the
 * previous agent "stops being a member", and queued conversations are
 * assigned in queue order the moment an agent has room ("a transfer
 * away"). So with a1 (capacity 2) full and cust2 waiting, a1's transfer of
 * cust0 to the group hands a1's room to cust2 and queues cust0 behind. */
static void test_transfer_to_group_queue_order(void **state)
{
    (void)state;
    its_server_start(&E, "sbsvc", DESK_CAPACITY);
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1", "en");
    its_dev *cu[3];
    uint64_t conv[3];
    for (int i = 0; i < 3; i++) {
        char user[16];
        snprintf(user, sizeof user, "cust%d", i);
        cu[i] = its_connect(&S, user, "customer", user, "en");
        conv[i] = its_open_service(cu[i], NULL);
        its_say_ok(cu[i], conv[i], "human", 0);
        its_expect_state(&cu[i], 1, conv[i],
                         i < 2 ? SBP__CONV_STATE__STATE_ASSIGNED
                               : SBP__CONV_STATE__STATE_QUEUED,
                         i < 2 ? "a1" : NULL, NULL, i < 2 ? 0 : 1);
    }
    uint32_t rid;
    int rc = sb_client_transfer(a1->c, conv[0], NULL, "g1", &rid);
    expect_ok(a1, rc, rid, "transfer to the group");
    its_dev *p2[2] = {cu[2], a1};
    its_expect_state(p2, 2, conv[2], SBP__CONV_STATE__STATE_ASSIGNED, "a1",
                     NULL, 0);
    its_expect_state(&cu[0], 1, conv[0], SBP__CONV_STATE__STATE_QUEUED, NULL,
                     NULL, 1);
    /* Back in the queue of a1's own group: a1 may read it (the agents of
     * the group see what waits), not write in it. */
    rc = sb_client_history(a1->c, conv[0], 0, 10, &rid);
    expect_ok(a1, rc, rid, "history of the queued conversation");
    assert_int_equal(its_say(a1, conv[0], "still mine?", 0), SB_E_FORBIDDEN);
}

/* ---- authorization ------------------------------------------------------- */

static void test_authorization(void **state)
{
    (void)state;
    its_server_start(&E, "sbsvc", DESK_CAPACITY);
    its_dev *a1 = its_connect(&S, "a1", "agent", "a1", "en");
    it_run_for(&E, 30);
    its_dev *a2 = its_connect(&S, "a2", "agent", "a2", "en");
    its_dev *c1 = its_connect(&S, "cu1", "customer", "cu1-p", "en");
    its_dev *c2 = its_connect(&S, "cu2", "customer", "cu2-p", "en");
    uint64_t x = its_open_service(c1, NULL);
    uint64_t mine = its_say_ok(c1, x, "human", 0);
    its_dev *px[2] = {c1, a1};
    its_expect_state(px, 2, x, SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL, 0);
    uint64_t y = its_open_service(c2, NULL);
    its_say_ok(c2, y, "human", 0);
    its_dev *py[2] = {c2, a2};
    its_expect_state(py, 2, y, SBP__CONV_STATE__STATE_ASSIGNED, "a2", NULL, 0);
    uint32_t rid;
    int rc;

    /* Another customer: no reading, writing, quoting, tagging, recalling,
     * closing; not in its list, not in its search. */
    rc = sb_client_history(c2->c, x, 0, 10, &rid);
    expect_err(c2, rc, rid, SB_E_FORBIDDEN, "history of another's");
    assert_int_equal(its_say(c2, x, "hi", 0), SB_E_FORBIDDEN);
    assert_int_equal(its_say(c2, x, "quoting you", mine), SB_E_FORBIDDEN);
    const char *t[] = {"spam"};
    rc = sb_client_tag(c2->c, x, 0, t, 1, NULL, 0, &rid);
    expect_err(c2, rc, rid, SB_E_FORBIDDEN, "tag of another's");
    rc = sb_client_recall(c2->c, x, mine, &rid);
    expect_err(c2, rc, rid, SB_E_FORBIDDEN, "recall in another's");
    rc = sb_client_close_conv(c2->c, x, &rid);
    expect_err(c2, rc, rid, SB_E_FORBIDDEN, "close of another's");
    rc = sb_client_conv_list(c2->c, NULL, 50, 0, NULL, false, &rid);
    its_ans *an = its_wait_ans(c2, rc, rid, "list");
    assert_int_equal(an->err, 0);
    Sbp__ConvListResp *lr = sbp__conv_list_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(lr);
    for (size_t i = 0; i < lr->n_convs; i++)
        assert_true(lr->convs[i]->conv_id != x);
    sbp__conv_list_resp__free_unpacked(lr, NULL);
    rc = sb_client_search(c2->c, x, "human", 10, &rid);
    an = its_wait_ans(c2, rc, rid, "search in another's");
    if (an->err == 0) {
        Sbp__SearchResp *sr = sbp__search_resp__unpack(NULL, an->len, an->buf);
        assert_non_null(sr);
        assert_int_equal(sr->n_messages, 0);
        sbp__search_resp__free_unpacked(sr, NULL);
    } else {
        assert_int_equal(an->err, SB_E_FORBIDDEN);
    }
    assert_null(its_conv_of(c2, x)); /* nothing of x ever reached cu2 */

    /* Customers tag nothing, not even their own; they recall only their
     * own messages. */
    rc = sb_client_tag(c1->c, x, 0, t, 1, NULL, 0, &rid);
    expect_err(c1, rc, rid, SB_E_FORBIDDEN, "customer tags");
    const its_msg *greet = its_msg_at(c1, x, 1);
    assert_non_null(greet);
    rc = sb_client_recall(c1->c, x, greet->seq, &rid);
    expect_err(c1, rc, rid, SB_E_FORBIDDEN, "recall of the bot's message");

    /* Wrong-role requests: a clear code, the session goes on. */
    rc = sb_client_agent_state(c1->c, SBP__AGENT_STATUS__AGENT_ONLINE, &rid);
    expect_err(c1, rc, rid, SB_E_FORBIDDEN, "agent status as a customer");
    rc = sb_client_canned_list(c1->c, NULL, &rid);
    expect_err(c1, rc, rid, SB_E_FORBIDDEN, "canned as a customer");
    rc = sb_client_transfer(c1->c, x, "a2", NULL, &rid);
    expect_err(c1, rc, rid, SB_E_FORBIDDEN, "transfer as a customer");
    assert_int_equal(its_say_type(c1, x, SBP__MSG_TYPE__MSG_ROBOT, "beep", 0),
                     SB_E_INVALID); /* robot messages are the bot's */

    /* An agent not assigned: nothing in x. */
    rc = sb_client_history(a2->c, x, 0, 10, &rid);
    expect_err(a2, rc, rid, SB_E_FORBIDDEN, "history, not assigned");
    assert_int_equal(its_say(a2, x, "hello?", 0), SB_E_FORBIDDEN);
    rc = sb_client_tag(a2->c, x, 0, t, 1, NULL, 0, &rid);
    expect_err(a2, rc, rid, SB_E_FORBIDDEN, "tag, not assigned");
    rc = sb_client_transfer(a2->c, x, "a2", NULL, &rid);
    expect_err(a2, rc, rid, SB_E_FORBIDDEN, "transfer, not assigned");
    rc = sb_client_close_conv(a2->c, x, &rid);
    expect_err(a2, rc, rid, SB_E_FORBIDDEN, "close, not assigned");
    /* Transfers: to nobody, to an offline agent, then to a2 for real. */
    rc = sb_client_transfer(a1->c, x, "nobody", NULL, &rid);
    expect_err(a1, rc, rid, SB_E_NOT_FOUND, "transfer to an unknown agent");
    rc = sb_client_transfer(a1->c, x, "a3", NULL, &rid);
    expect_err(a1, rc, rid, SB_E_STATE, "transfer to an offline agent");
    rc = sb_client_transfer(a1->c, x, "a2", NULL, &rid);
    expect_ok(a1, rc, rid, "transfer to a2");
    its_dev *px2[2] = {c1, a2};
    its_expect_state(px2, 2, x, SBP__CONV_STATE__STATE_ASSIGNED, "a2", NULL, 0);
    rc = sb_client_history(a2->c, x, 0, 10, &rid);
    expect_ok(a2, rc, rid, "history once transferred");
    its_say_ok(a2, x, "I have it now", mine);
    rc = sb_client_history(a1->c, x, 0, 10, &rid);
    expect_err(a1, rc, rid, SB_E_FORBIDDEN, "history after transferring");
    rc = sb_client_tag(a1->c, x, 0, t, 1, NULL, 0, &rid);
    expect_err(a1, rc, rid, SB_E_FORBIDDEN, "tag after transferring");

    /* A recall past the desk's window (1 s) is too late. */
    uint64_t late = its_say_ok(c1, x, "too late to take back", 0);
    it_run_for(&E, 1300);
    rc = sb_client_recall(c1->c, x, late, &rid);
    expect_err(c1, rc, rid, SB_E_TOO_LATE, "recall past the window");
    assert_false(has_recalled(c1, x, late));

    /* Handoff is the customer's (or a bot's): an agent gets FORBIDDEN on a
     * conversation still with the bot; its customer may. */
    its_dev *c3 = its_connect(&S, "cu3", "customer", "cu3-p", "en");
    uint64_t z = its_open_service(c3, NULL);
    rc = sb_client_handoff(a1->c, z, NULL, &rid);
    expect_err(a1, rc, rid, SB_E_FORBIDDEN, "handoff as an agent");
    rc = sb_client_handoff(c3->c, z, NULL, &rid);
    expect_ok(c3, rc, rid, "handoff by its customer");
    its_expect_state(&c3, 1, z, SBP__CONV_STATE__STATE_ASSIGNED, NULL, NULL, 0);
    rc = sb_client_handoff(c3->c, z, NULL, &rid);
    expect_err(c3, rc, rid, SB_E_STATE, "handoff when assigned already");
    /* The sessions survived every refusal. */
    it_run_for(&E, 100);
    for (size_t i = 0; i < S.n_devs; i++) {
        assert_int_equal(sb_client_get_state(S.devs[i]->c), SB_CLIENT_READY);
        assert_int_equal(S.devs[i]->violations, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_scenario, teardown),
        cmocka_unit_test_teardown(test_scenario_json, teardown),
        cmocka_unit_test_teardown(test_capacity, teardown),
        cmocka_unit_test_teardown(test_out_of_hours, teardown),
        cmocka_unit_test_teardown(test_transfer_to_group_queue_order, teardown),
        cmocka_unit_test_teardown(test_authorization, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
