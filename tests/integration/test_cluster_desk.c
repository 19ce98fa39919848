/* integ_cluster_desk: customer service on a cluster of three nodes (one
 * PostgreSQL database, one nats-server), with the customers and agents
 * spread over the nodes, whichever owns the desks.
 *
 * - across_nodes: three agents of capacity 2, one per node; eight
 *   customers, each on another node than the agent it gets, ask for a
 *   human: six are assigned least loaded
 *   first, two queued with positions 1 and 2, every customer and agent
 *   told on its own node; an agent's answer, a customer's typing and an
 *   agent's recall reach the other side on another node; an agent's close on a
 * node that does not own the desks hands the head of the queue to that agent
 * and moves the other up; AGENT_STATE from any node answers with the owner's
 * load.
 * - owner_killed: an agent with two customers and three more customers
 *   queued, none on the owner; the owner is killed -9: another node takes
 *   the desks over (the time is printed), the agent's load is still 2,
 *   the agent's close hands it the head of the queue, the others move up,
 *   a second agent gets the other two, and no conversation was ever
 *   assigned to two agents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include <string.h>

#include "itcluster.h"
#include "itsvc.h"
#include "sb_error.h"

static const char DESK[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\"],\"unmatched_max\":2,"
    "\"greeting\":{\"en\":\"Welcome\"},\"fallback\":{\"en\":\"Sorry?\"},"
    "\"out_of_hours\":{\"en\":\"Nobody is here\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true}]}}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a2\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a3\",\"groups\":[\"g1\"],\"capacity\":2}]}";

static it_env E;
static itc C;
static its_ctx S = {
    .env = &E, .client_name = "integ_cluster_desk", .requests_max = 64};

static int teardown(void **state)
{
    (void)state;
    its_free_all(&S);
    memset(&S.devs, 0, sizeof S.devs);
    S.n_devs = 0;
    itc_free(&C);
    return 0;
}

/* A device of user on node i. */
static its_dev *on_node(int i, const char *user, const char *role,
                        const char *device)
{
    char keep[sizeof E.url];
    snprintf(keep, sizeof keep, "%s", E.url);
    snprintf(E.url, sizeof E.url, "%s", itc_url(&C, i));
    its_dev *d = its_connect(&S, user, role, device, "en");
    snprintf(E.url, sizeof E.url, "%s", keep);
    return d;
}

/* The load AGENT_STATE answers for d's agent (going online). */
static uint32_t agent_load(its_dev *d)
{
    uint32_t rid;
    int rc = sb_client_agent_state(d->c, SBP__AGENT_STATUS__AGENT_ONLINE, &rid);
    its_ans *an = its_wait_ans(d, rc, rid, "agent state");
    assert_int_equal(an->err, 0);
    Sbp__AgentState *as = sbp__agent_state__unpack(NULL, an->len, an->buf);
    assert_non_null(as);
    uint32_t load = as->load;
    sbp__agent_state__free_unpacked(as, NULL);
    return load;
}

static void close_ok(its_dev *d, uint64_t conv)
{
    uint32_t rid;
    int rc = sb_client_close_conv(d->c, conv, &rid);
    its_ans *an = its_wait_ans(d, rc, rid, "close");
    if (an->err)
        fail_msg("%s: close failed: %s", d->name, sb_client_err_name(an->err));
}

/* How many times conv was assigned, by the events its customer surfaced. */
static size_t assignments(its_dev *cust, uint64_t conv)
{
    its_conv *c = its_conv_of(cust, conv);
    size_t n = 0;
    for (size_t i = 0; c && i < c->n; i++)
        n += strcmp(c->msgs[i].event, "conv.assigned") == 0;
    return n;
}

static void test_across_nodes(void **state)
{
    (void)state;
    if (!itc_start(&C, &E, DESK)) skip();
    int owner = itc_wait_owner(&C, 10000);
    assert_true(owner >= 0);
    its_dev *ag[3];
    const char *names[3] = {"a1", "a2", "a3"};
    for (int i = 0; i < 3; i++) {
        ag[i] = on_node(i, names[i], "agent", names[i]);
        it_run_for(&E, 1100); /* the owner hears of it; a1 idle longest */
    }
    enum { CUSTS = 8 };
    its_dev *cu[CUSTS];
    uint64_t conv[CUSTS];
    const char *want[6] = {"a1", "a2", "a3", "a1", "a2", "a3"};
    for (int i = 0; i < CUSTS; i++) {
        char user[16], dev[16];
        snprintf(user, sizeof user, "cust%d", i);
        snprintf(dev, sizeof dev, "cust%d-p", i);
        cu[i] = on_node((i + 1) % 3, user, "customer", dev);
        conv[i] = its_open_service(cu[i], NULL);
        its_expect_msg(cu[i], conv[i], NULL, "Welcome");
        its_say_ok(cu[i], conv[i], "human", 0);
        if (i < 6)
            its_expect_state(&cu[i], 1, conv[i],
                             SBP__CONV_STATE__STATE_ASSIGNED, want[i], NULL, 0);
        else
            its_expect_state(&cu[i], 1, conv[i], SBP__CONV_STATE__STATE_QUEUED,
                             NULL, NULL, (uint32_t)(i - 5));
    }
    for (int i = 0; i < 6; i++) {
        its_dev *pair[2] = {cu[i], ag[i % 3]};
        its_expect_state(pair, 2, conv[i], SBP__CONV_STATE__STATE_ASSIGNED,
                         want[i], NULL, 0);
    }
    /* Every customer is on another node than its agent. */
    its_say_ok(ag[0], conv[3], "hello from a1", 0);
    its_expect_msg(cu[3], conv[3], "a1", "hello from a1");
    its_say_ok(ag[2], conv[5], "hello from a3", 0);
    its_expect_msg(cu[5], conv[5], "a3", "hello from a3");
    its_say_ok(cu[4], conv[4], "thanks", 0);
    its_expect_msg(ag[1], conv[4], "cust4", "thanks");
    /* Typing and a recall cross nodes too. */
    unsigned typing0 = ag[1]->typing_on;
    assert_int_equal(sb_client_typing(cu[4]->c, conv[4], true), 0);
    for (int64_t end = harness_now_ms() + 5000;
         ag[1]->typing_on == typing0 && harness_now_ms() < end;)
        it_run_for(&E, 20);
    assert_true(ag[1]->typing_on > typing0);
    uint64_t oops = its_say_ok(ag[1], conv[4], "oops", 0);
    uint32_t rid;
    int rc = sb_client_recall(ag[1]->c, conv[4], oops, &rid);
    assert_int_equal(its_wait_ans(ag[1], rc, rid, "recall")->err, 0);
    its_dev *both[2] = {cu[4], ag[1]};
    its_expect_all(both, 2, conv[4],
                   (its_match){.event = "msg.recalled", .after = oops},
                   "msg.recalled");
    for (int64_t end = harness_now_ms() + 5000;
         !its_conv_of(cu[4], conv[4])->n_recalled && harness_now_ms() < end;)
        it_run_for(&E, 20);
    assert_int_equal(its_conv_of(cu[4], conv[4])->recalled[0], oops);
    for (int i = 0; i < 3; i++)
        assert_int_equal(agent_load(ag[i]), 2);
    /* a2 closes cust1's: cust6 goes to a2, cust7 moves up. */
    close_ok(ag[1], conv[1]);
    its_dev *pair[2] = {cu[6], ag[1]};
    its_expect_state(pair, 2, conv[6], SBP__CONV_STATE__STATE_ASSIGNED, "a2",
                     NULL, 0);
    its_expect_state(&cu[7], 1, conv[7], SBP__CONV_STATE__STATE_QUEUED, NULL,
                     NULL, 1);
    its_expect_state(&cu[1], 1, conv[1], SBP__CONV_STATE__STATE_CLOSED, NULL,
                     NULL, 0);
    for (int i = 0; i < CUSTS; i++)
        assert_true(assignments(cu[i], conv[i]) <= 1);
    for (size_t i = 0; i < S.n_devs; i++)
        assert_int_equal(S.devs[i]->violations, 0);
    printf("integ_cluster_desk across_nodes: desks on node %d; 6 assigned "
           "a1,a2,a3,a1,a2,a3 across nodes, 2 queued; a close on node 2 "
           "handed the queue's head to its agent\n",
           owner + 1);
}

static void test_owner_killed(void **state)
{
    (void)state;
    if (!itc_start(&C, &E, DESK)) skip();
    int owner = itc_wait_owner(&C, 10000);
    assert_true(owner >= 0);
    int n1 = (owner + 1) % 3, n2 = (owner + 2) % 3;
    its_dev *a1 = on_node(n1, "a1", "agent", "a1");
    it_run_for(&E, 1100);
    enum { CUSTS = 5 };
    its_dev *cu[CUSTS];
    uint64_t conv[CUSTS];
    for (int i = 0; i < CUSTS; i++) {
        char user[16], dev[16];
        snprintf(user, sizeof user, "kc%d", i);
        snprintf(dev, sizeof dev, "kc%d-p", i);
        cu[i] = on_node(i % 2 ? n1 : n2, user, "customer", dev);
        conv[i] = its_open_service(cu[i], NULL);
        its_say_ok(cu[i], conv[i], "human", 0);
        if (i < 2)
            its_expect_state(&cu[i], 1, conv[i],
                             SBP__CONV_STATE__STATE_ASSIGNED, "a1", NULL, 0);
        else
            its_expect_state(&cu[i], 1, conv[i], SBP__CONV_STATE__STATE_QUEUED,
                             NULL, NULL, (uint32_t)(i - 1));
    }
    int64_t t0 = harness_now_ms();
    harness_kill9(C.node[owner]);
    int next = itc_wait_owner(&C, 15000);
    int64_t took = harness_now_ms() - t0;
    assert_true(next >= 0 && next != owner);
    /* The routing state came back from the store. */
    assert_int_equal(agent_load(a1), 2);
    close_ok(a1, conv[0]);
    its_dev *pair[2] = {cu[2], a1};
    its_expect_state(pair, 2, conv[2], SBP__CONV_STATE__STATE_ASSIGNED, "a1",
                     NULL, 0);
    its_expect_state(&cu[3], 1, conv[3], SBP__CONV_STATE__STATE_QUEUED, NULL,
                     NULL, 1);
    its_expect_state(&cu[4], 1, conv[4], SBP__CONV_STATE__STATE_QUEUED, NULL,
                     NULL, 2);
    /* a2 (capacity 2) takes the two left, in queue order. */
    its_dev *a2 = on_node(n2, "a2", "agent", "a2");
    for (int i = 3; i < 5; i++) {
        its_dev *pair2[2] = {cu[i], a2};
        its_expect_state(pair2, 2, conv[i], SBP__CONV_STATE__STATE_ASSIGNED,
                         "a2", NULL, 0);
    }
    assert_int_equal(agent_load(a2), 2);
    assert_int_equal(agent_load(a1), 2);
    for (int i = 0; i < CUSTS; i++)
        assert_true(assignments(cu[i], conv[i]) <= 1);
    for (size_t i = 0; i < S.n_devs; i++)
        assert_int_equal(S.devs[i]->violations, 0);
    printf("integ_cluster_desk owner_killed: node %d owned the desks and was "
           "killed; node %d took them over %lld ms later with a1's load and "
           "the queue as they were\n",
           owner + 1, next + 1, (long long)took);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_across_nodes, teardown),
        cmocka_unit_test_teardown(test_owner_killed, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
