/* integ_desk_bot: an external bot and live desk changes against the real
 * server (started with --desk on a file written here), driven by the C
 * SDK over real sockets.
 *
 * - external bot: a bot-role client named as the desk's "bot" joins the
 *   customer's new conversation (CONV_UPDATE), greets with a robot message
 *   carrying quick replies that the customer surfaces, reads the
 *   customer's message (the built-in bot stays quiet), hands off: the
 *   conversation is queued, the bot leaves it (its sends are refused) and
 *   an agent coming online gets it with everything said so far. Protobuf
 *   and JSON.
 * - bot offline: the built-in bot greets and answers instead, also in a
 *   conversation the external bot joined before it went away.
 * - admin over the SDK: while conversations wait, a capacity raised
 *   assigns one at once; a skill group removed sends its queue to the
 *   desk's default group (nothing lost) and an agent added takes it; a
 *   broken configuration is refused with the reason and the old one
 *   stays; a non-admin gets ERR_FORBIDDEN with the reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <string.h>

#include "itsvc.h"
#include "sb_error.h"

static const char DESK_BOT[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\"],\"bot\":\"helper\","
    "\"greeting\":{\"en\":\"Welcome\"},\"fallback\":{\"en\":\"Sorry?\"},"
    "\"out_of_hours\":{\"en\":\"Nobody is here\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true},"
    "{\"keywords\":[\"refund\"],\"answer\":\"Refunds take 5 days\","
    "\"quick_replies\":[\"Status\"]}]}}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":2}]}";

static const char DESK_ADMIN[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\",\"g2\"],"
    "\"default_group\":\"g1\",\"greeting\":{\"en\":\"Welcome\"},"
    "\"out_of_hours\":{\"en\":\"Nobody is here\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true}]}}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":1},"
    "{\"id\":\"a2\",\"groups\":[\"g1\",\"g2\"],\"capacity\":1}]}";

/* ---- devices and requests ------------------------------------------------ */

static it_env E;
static its_ctx S = {.env = &E, .client_name = "integ_desk_bot"};

/* A device <user>-d<n> (the test's n-th), locale en, READY. */
static its_dev *dev_connect(const char *user, const char *role)
{
    char device[80];
    snprintf(device, sizeof device, "%s-d%zu", user, S.n_devs + 1);
    return its_connect(&S, user, role, device, "en");
}

static int teardown(void **state)
{
    (void)state;
    bool freed = its_free_all(&S);
    it_env_free(&E);
    if (!freed) fail_msg("clients not freed");
    return 0;
}

static void start_server(const char *desk, sb_encoding enc)
{
    its_server_start(&E, "sbbot", desk);
    E.enc = enc;
}

/* An admin op over the SDK; returns the answer. */
static its_ans *admin(its_dev *d, const char *op, const char *body)
{
    uint32_t rid = 0;
    int rc = sb_client_admin_cmd(d->c, op, body, &rid);
    return its_wait_ans(d, rc, rid, op);
}

static its_ans *admin_ok(its_dev *d, const char *op, const char *body)
{
    its_ans *a = admin(d, op, body);
    if (a->err)
        fail_msg("%s: %s refused: %s %s", d->name, op,
                 sb_client_err_name(a->err), a->text);
    return a;
}

/* Waits until d's last CONV_UPDATE of conv says state (with agent and
 * group, when given). */
static void expect_state(its_dev *d, uint64_t conv, Sbp__ConvState st,
                         const char *agent, const char *group)
{
    its_expect_state(&d, 1, conv, st, agent, group, 0);
}

/* Customer c asks for a person: the built-in bot hands off. */
static void ask_human(its_dev *c, uint64_t conv)
{
    assert_int_equal(its_say(c, conv, "a human please", 0), 0);
}

/* ---- external bot -------------------------------------------------------- */

static void external_bot(sb_encoding enc)
{
    start_server(DESK_BOT, enc);
    its_dev *bot = dev_connect("helper", "bot");
    its_dev *cu = dev_connect("cu1", "customer");

    /* The bot joins the new conversation and hears of it. */
    size_t members = 0;
    uint64_t conv = its_open_service(cu, &members);
    assert_int_equal(members, 2);
    expect_state(bot, conv, SBP__CONV_STATE__STATE_BOT, "", NULL);
    assert_int_equal(its_conv_of(bot, conv)->members, 2);

    /* Its robot message with quick replies reaches the customer. */
    const char *quick[] = {"Track my order", "Talk to a person"};
    assert_int_equal(
        its_say_robot(bot, conv, "Hi, I am the helper bot", quick, 2), 0);
    const its_msg *m = its_expect_msg(cu, conv, "helper", "helper bot");
    assert_int_equal(m->type, SBP__MSG_TYPE__MSG_ROBOT);
    assert_int_equal(m->n_quick, 2);
    assert_string_equal(m->quick[0], "Track my order");
    assert_string_equal(m->quick[1], "Talk to a person");
    /* Robot messages and quick replies stay the bot's. */
    assert_int_equal(its_say_robot(cu, conv, "x", quick, 1), SB_E_INVALID);

    /* The customer's message goes to the bot; the built-in bot, which
     * would answer "refund", stays quiet. */
    assert_int_equal(its_say(cu, conv, "where is my refund", 0), 0);
    its_expect_msg(bot, conv, "cu1", "refund");
    assert_int_equal(
        its_say_robot(bot, conv, "Checking your refund", quick + 1, 1), 0);
    its_expect_msg(cu, conv, "helper", "Checking");
    assert_null(its_find_msg(cu, conv, &(its_match){.sender = "bot"}));

    /* The bot hands off: queued (nobody online), the bot out. */
    uint32_t rid = 0;
    int rc = sb_client_handoff(bot->c, conv, "", &rid);
    assert_int_equal(its_wait_ans(bot, rc, rid, "handoff")->err, 0);
    expect_state(cu, conv, SBP__CONV_STATE__STATE_QUEUED, "", "g1");
    assert_int_equal(its_conv_of(cu, conv)->queue_pos, 1);
    expect_state(bot, conv, SBP__CONV_STATE__STATE_QUEUED, "", "g1");
    assert_int_equal(its_conv_of(bot, conv)->members, 1);
    its_expect_msg(cu, conv, "bot", "Nobody is here"); /* out of hours */
    assert_int_equal(its_say_robot(bot, conv, "still here?", quick, 1),
                     SB_E_FORBIDDEN);

    /* An agent comes online and gets it, with all that was said. */
    its_dev *ag = dev_connect("a1", "agent");
    expect_state(cu, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", "g1");
    its_expect_msg(ag, conv, "cu1", "refund");
    const its_msg *g = its_expect_msg(ag, conv, "helper", "helper bot");
    assert_int_equal(g->n_quick, 2);
    assert_int_equal(its_say(ag, conv, "Hello, I am a1", 0), 0);
    its_expect_msg(cu, conv, "a1", "I am a1");
}

static void test_external_bot(void **state)
{
    (void)state;
    external_bot(SB_ENC_PROTO);
}

static void test_external_bot_json(void **state)
{
    (void)state;
    external_bot(SB_ENC_JSON);
}

/* With the external bot offline the built-in bot answers: in a new
 * conversation, and in one the bot had joined before it went away. */
static void test_bot_offline(void **state)
{
    (void)state;
    start_server(DESK_BOT, SB_ENC_PROTO);
    its_dev *cu = dev_connect("cu2", "customer");
    size_t members = 0;
    uint64_t conv = its_open_service(cu, &members);
    assert_int_equal(members, 1);
    const its_msg *m = its_expect_msg(cu, conv, "bot", "Welcome");
    assert_int_equal(m->type, SBP__MSG_TYPE__MSG_ROBOT);
    assert_int_equal(m->n_quick, 1);
    assert_int_equal(its_say(cu, conv, "refund?", 0), 0);
    its_expect_msg(cu, conv, "bot", "Refunds take 5 days");

    its_dev *bot = dev_connect("helper", "bot");
    its_dev *cu3 = dev_connect("cu3", "customer");
    uint64_t conv3 = its_open_service(cu3, &members);
    assert_int_equal(members, 2);
    expect_state(bot, conv3, SBP__CONV_STATE__STATE_BOT, "", NULL);
    its_stop(bot);
    assert_int_equal(its_say(cu3, conv3, "my refund", 0), 0);
    its_expect_msg(cu3, conv3, "bot", "Refunds take 5 days");
    /* Asking for a person works as with the built-in bot alone. */
    ask_human(cu3, conv3);
    expect_state(cu3, conv3, SBP__CONV_STATE__STATE_QUEUED, "", "g1");
}

/* ---- admin over the SDK ----------------------------------------------------
 */

static void test_admin_live(void **state)
{
    (void)state;
    start_server(DESK_ADMIN, SB_ENC_PROTO);
    its_dev *ad = dev_connect("root", "admin");
    its_dev *a1 = dev_connect("a1", "agent");
    its_dev *c1 = dev_connect("c1", "customer");
    its_dev *c2 = dev_connect("c2", "customer");
    its_dev *c3 = dev_connect("c3", "customer");
    (void)a1;

    uint64_t v1 = its_open_service(c1, NULL);
    ask_human(c1, v1);
    expect_state(c1, v1, SBP__CONV_STATE__STATE_ASSIGNED, "a1", "g1");
    uint64_t v2 = its_open_service(c2, NULL);
    ask_human(c2, v2);
    expect_state(c2, v2, SBP__CONV_STATE__STATE_QUEUED, "", "g1");

    /* A non-admin is refused, saying why. */
    its_ans *a = admin(c1, "desk-show", NULL);
    assert_int_equal(a->err, SB_E_FORBIDDEN);
    assert_non_null(strstr(a->text, "role admin"));
    a = admin(a1, "desk-agent-set", "{\"id\":\"a1\",\"capacity\":9}");
    assert_int_equal(a->err, SB_E_FORBIDDEN);

    /* More room for a1: c2 is assigned at once. */
    a = admin_ok(ad, "desk-agent-set", "{\"id\":\"a1\",\"capacity\":2}");
    assert_non_null(strstr(a->text, "capacity 2"));
    expect_state(c2, v2, SBP__CONV_STATE__STATE_ASSIGNED, "a1", "g1");

    /* c3 waits in g2 (a2 is offline); g2 goes: c3 moves to the default
     * group's queue, nothing lost. */
    uint64_t v3 = its_open_service(c3, NULL);
    uint32_t rid = 0;
    int rc = sb_client_handoff(c3->c, v3, "g2", &rid);
    assert_int_equal(its_wait_ans(c3, rc, rid, "handoff")->err, 0);
    expect_state(c3, v3, SBP__CONV_STATE__STATE_QUEUED, "", "g2");
    admin_ok(ad, "desk-group-rm", "{\"name\":\"g2\"}");
    expect_state(c3, v3, SBP__CONV_STATE__STATE_QUEUED, "", "g1");
    its_expect_msg(c3, v3, "system", "went back to the g1 queue");

    /* A broken configuration is refused, the old one stays. */
    a = admin(ad, "desk-set", "{\"desks\":[{\"id\":\"d\"}]}");
    assert_int_equal(a->err, SB_E_INVALID);
    assert_non_null(strstr(a->text, "groups"));
    a = admin(ad, "desk-agent-set", "{\"id\":\"a3\",\"groups\":[\"g2\"]}");
    assert_int_equal(a->err, SB_E_INVALID);
    assert_non_null(strstr(a->text, "unknown group"));
    a = admin_ok(ad, "desk-show", NULL);
    assert_non_null(strstr(a->text, "\"capacity\": 2"));
    assert_null(strstr(a->text, "\"g2\""));

    /* An agent added while online takes the queue at once. */
    its_dev *a3 = dev_connect("a3", "agent");
    a = admin_ok(ad, "desk-agent-set", "{\"id\":\"a3\",\"groups\":[\"g1\"]}");
    assert_non_null(strstr(a->text, "agent a3 added"));
    expect_state(c3, v3, SBP__CONV_STATE__STATE_ASSIGNED, "a3", "g1");
    its_expect_msg(a3, v3, "system", "a3 has joined");
    a = admin(ad, "desk-frobnicate", "{}");
    assert_int_equal(a->err, SB_E_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_external_bot, teardown),
        cmocka_unit_test_teardown(test_external_bot_json, teardown),
        cmocka_unit_test_teardown(test_bot_offline, teardown),
        cmocka_unit_test_teardown(test_admin_live, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
