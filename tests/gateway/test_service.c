/* The customer-service lifecycle driven through the gateway core without
 * sockets: bot, handoff, queue, routing by capacity, transfer, close,
 * reopen, quote, recall, tags, locales and authorization; a new desk
 * configuration put in force while conversations are under way; two
 * gateways in one process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gwfake.h"
#include "sb_desk.h"
#include "sb_medialink.h"

static const char DESK[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\",\"g2\"],\"unmatched_max\":2,"
    "\"recall_window_s\":60,"
    "\"greeting\":{\"en\":\"Welcome\",\"zh-CN\":\"\xe6\xac\xa2\xe8\xbf\x8e\"},"
    "\"fallback\":{\"en\":\"Sorry?\"},"
    "\"out_of_hours\":{\"en\":\"Nobody is here\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true},"
    "{\"keywords\":[\"refund\"],\"answer\":\"Refunds take 5 days\","
    "\"quick_replies\":[\"Status\",\"Talk to a person\"]}]},"
    "\"canned\":[{\"key\":\"hi\",\"text\":\"Hello!\"}]}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a2\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a3\",\"groups\":[\"g1\",\"g2\"],\"capacity\":2}]}";

static sb_desk *desk;

static int setup(void **state)
{
    (void)state;
    char err[256];
    if (sb_desk_parse(DESK, sizeof DESK - 1, &desk, err, sizeof err))
        fail_msg("desk: %s", err);
    sb_gw_config c;
    sb_gw_config_default(&c);
    c.desk = desk;
    gwfake_setup(&c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gwfake_teardown();
    sb_desk_free(desk);
    return 0;
}

static uint64_t service_open(uint64_t c)
{
    Sbp__Open o = SBP__OPEN__INIT;
    o.kind = SBP__CONV_KIND__CONV_SERVICE;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 9;
    fr.body_case = SBP__FRAME__BODY_OPEN;
    fr.open = &o;
    gwfake_feed(c, &fr);
    Sbp__Frame *r = gwfake_last_of(c, SBP__FRAME__BODY_OPEN_RESP);
    assert_non_null(r);
    assert_int_equal(r->open_resp->conv->kind, SBP__CONV_KIND__CONV_SERVICE);
    return r->open_resp->conv->conv_id;
}

/* The last message pushed to c. */
static Sbp__Message *last_push(uint64_t c)
{
    Sbp__Frame *f = gwfake_last_of(c, SBP__FRAME__BODY_PUSH);
    assert_non_null(f);
    return f->push->messages[f->push->n_messages - 1];
}

/* Whether c was pushed a message whose body contains text. */
static bool pushed(uint64_t c, const char *text)
{
    for (size_t i = 0; i < GF.nframes[c]; i++) {
        Sbp__Frame *f = GF.frames[c][i];
        if (f->body_case != SBP__FRAME__BODY_PUSH) continue;
        for (size_t k = 0; k < f->push->n_messages; k++)
            if (strstr(f->push->messages[k]->body, text)) return true;
    }
    return false;
}

static Sbp__Conversation *last_update(uint64_t c)
{
    Sbp__Frame *f = gwfake_last_of(c, SBP__FRAME__BODY_CONV_UPDATE);
    return f ? f->conv_update->conv : NULL;
}

static void expect_error(uint64_t c, Sbp__ErrorCode code)
{
    Sbp__Frame *f = gwfake_last(c);
    assert_int_equal(f->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(f->error->code, code);
}

static void transfer(uint64_t c, uint64_t conv, const char *agent,
                     const char *group)
{
    Sbp__Transfer t = SBP__TRANSFER__INIT;
    t.conv_id = conv;
    t.to_agent = (char *)(agent ? agent : "");
    t.to_group = (char *)(group ? group : "");
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 31;
    fr.body_case = SBP__FRAME__BODY_TRANSFER;
    fr.transfer = &t;
    gwfake_feed(c, &fr);
}

static void close_conv(uint64_t c, uint64_t conv)
{
    Sbp__Close cl = SBP__CLOSE__INIT;
    cl.conv_id = conv;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 32;
    fr.body_case = SBP__FRAME__BODY_CLOSE;
    fr.close = &cl;
    gwfake_feed(c, &fr);
}

static void test_full_scenario(void **state)
{
    (void)state;
    gwfake_hello(10, "cu1", "customer", "phone", "en");
    gwfake_hello(11, "cu1", "customer", "laptop", "zh-CN");
    uint64_t conv = service_open(10);
    /* The bot greets on every device of the customer, with a button. */
    Sbp__Message *g = last_push(11);
    assert_int_equal(g->type, SBP__MSG_TYPE__MSG_ROBOT);
    assert_string_equal(g->body, "Welcome");
    assert_int_equal(g->n_quick_replies, 1);
    assert_true(pushed(10, "Welcome"));
    /* A question the rules know. */
    gwfake_send(10, conv, 1, "I want a refund", 0);
    uint64_t refund_seq =
        gwfake_last_of(10, SBP__FRAME__BODY_SEND_ACK)->send_ack->seq;
    Sbp__Message *a = last_push(10);
    assert_string_equal(a->body, "Refunds take 5 days");
    assert_int_equal(a->n_quick_replies, 2);
    assert_true(pushed(11, "I want a refund")); /* the other device */
    /* Asking for a human with nobody online: queued, position told, the
     * out-of-hours text. */
    gwfake_send(10, conv, 2, "a human please", 0);
    assert_true(pushed(10, "number 1 in the queue"));
    assert_true(pushed(11, "\xe7\xac\xac 1 \xe4\xbd\x8d")); /* zh-CN */
    assert_true(pushed(10, "Nobody is here"));
    Sbp__Conversation *u = last_update(10);
    assert_non_null(u);
    assert_int_equal(u->state, SBP__CONV_STATE__STATE_QUEUED);
    assert_int_equal(u->queue_position, 1);
    /* An agent comes online and gets it at once; the event renders in
     * each recipient's locale. */
    gwfake_hello(20, "a1", "agent", "desk", "zh-CN");
    assert_true(pushed(10, "a1 has joined the conversation."));
    assert_true(pushed(20, "\xe5\xae\xa2\xe6\x9c\x8d a1"));
    u = last_update(20);
    assert_int_equal(u->state, SBP__CONV_STATE__STATE_ASSIGNED);
    assert_string_equal(u->agent, "a1");
    /* The agent quotes the question and answers. */
    gwfake_clear(10);
    gwfake_send(20, conv, 3, "Let me check", refund_seq);
    Sbp__Message *r = last_push(10);
    assert_string_equal(r->body, "Let me check");
    assert_int_equal(r->quote_seq, refund_seq);
    assert_non_null(r->quote);
    assert_string_equal(r->quote->body, "I want a refund");
    assert_string_equal(r->quote->sender, "cu1");
    /* Transfer to another group: a3 is the only agent of g2. */
    gwfake_hello(30, "a3", "agent", "desk", "en");
    transfer(20, conv, NULL, "g2");
    assert_int_equal(gwfake_last_of(20, SBP__FRAME__BODY_OK) != NULL, 1);
    assert_true(pushed(30, "a3 has joined"));
    u = last_update(30);
    assert_string_equal(u->agent, "a3");
    assert_string_equal(u->group, "g2");
    /* a1 is out of the conversation now. */
    gwfake_send(20, conv, 4, "still here?", 0);
    expect_error(20, SBP__ERROR_CODE__ERR_FORBIDDEN);
    /* a3 closes; the customer writes again and it reopens with the bot. */
    close_conv(30, conv);
    assert_true(pushed(10, "closed by a3"));
    assert_int_equal(last_update(10)->state, SBP__CONV_STATE__STATE_CLOSED);
    gwfake_clear(10);
    gwfake_send(10, conv, 5, "one more refund question", 0);
    assert_true(pushed(10, "reopened"));
    assert_true(pushed(10, "Refunds take 5 days"));
    assert_int_equal(last_update(10)->state, SBP__CONV_STATE__STATE_BOT);
    /* Everything is in the history, in order, seen by the customer. */
    Sbp__History h = SBP__HISTORY__INIT;
    h.conv_id = conv;
    h.limit = 100;
    Sbp__Frame hf = SBP__FRAME__INIT;
    hf.rid = 77;
    hf.body_case = SBP__FRAME__BODY_HISTORY;
    hf.history = &h;
    gwfake_feed(11, &hf);
    Sbp__HistoryResp *hr =
        gwfake_last_of(11, SBP__FRAME__BODY_HISTORY_RESP)->history_resp;
    assert_true(hr->n_messages >= 12);
    for (size_t i = 0; i < hr->n_messages; i++)
        assert_int_equal(hr->messages[i]->seq, i + 1);
}

static void handoff_customer(uint64_t c, uint8_t id)
{
    uint64_t conv = service_open(c);
    gwfake_send(c, conv, id, "human", 0);
}

/* Three agents of capacity 2 and ten customers. */
static void test_capacity(void **state)
{
    (void)state;
    gwfake_hello(20, "a1", "agent", "d", "en");
    gwfake_tick(10);
    gwfake_hello(21, "a2", "agent", "d", "en");
    gwfake_tick(10);
    gwfake_hello(22, "a3", "agent", "d", "en");
    char name[16];
    for (uint64_t i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "cust%u", (unsigned)i);
        gwfake_hello(40 + i, name, "customer", "p", "en");
        handoff_customer(40 + i, (uint8_t)(0x10 + i));
        gwfake_tick(1);
    }
    /* Least loaded first, longest idle on ties: a1, a2, a3, a1, a2, a3. */
    const char *want[6] = {"a1", "a2", "a3", "a1", "a2", "a3"};
    for (uint64_t i = 0; i < 6; i++) {
        Sbp__Conversation *u = last_update(40 + i);
        assert_int_equal(u->state, SBP__CONV_STATE__STATE_ASSIGNED);
        assert_string_equal(u->agent, want[i]);
    }
    for (uint64_t i = 6; i < 10; i++) {
        Sbp__Conversation *u = last_update(40 + i);
        assert_int_equal(u->state, SBP__CONV_STATE__STATE_QUEUED);
        assert_int_equal(u->queue_position, i - 5);
    }
    /* a2 closes one: the head of the queue is assigned at once, the rest
     * move up. */
    uint64_t conv1 = last_update(41)->conv_id;
    close_conv(21, conv1);
    assert_string_equal(last_update(46)->agent, "a2");
    for (uint64_t i = 7; i < 10; i++)
        assert_int_equal(last_update(40 + i)->queue_position, i - 6);
}

/* A gateway that has just started rebuilds its queues and loads from the
 * store; a desk request that comes meanwhile waits for them (an
 * AGENT_STATE then answers the agent's real load, not 0). */
static void test_desk_waits_for_routing(void **state)
{
    (void)state;
    gwfake_hello(20, "a1", "agent", "d", "en");
    gwfake_hello(40, "cust0", "customer", "p", "en");
    handoff_customer(40, 0x10);
    assert_string_equal(last_update(40)->agent, "a1");
    /* A new gateway on the same store; its start's reads not answered. */
    sb_gw_free(GF.gw);
    sb_gw_config c;
    sb_gw_config_default(&c);
    c.desk = desk;
    c.secret = (const uint8_t *)GWFAKE_SECRET;
    c.secret_len = strlen(GWFAKE_SECRET);
    sb_gw_io io = gwfake_io();
    assert_int_equal(sb_gw_new(&c, &io, &GF.gw), 0);
    sb_desk_routing_clear(desk);
    GF.defer_pump = true;
    sb_gw_start(GF.gw, GF.now);
    gwfake_clear(20);
    gwfake_hello_raw(20, "a1", "agent", "d2", "en");
    assert_true(gwfake_apply_kind(SB_REQ_USER_UPSERT));
    assert_non_null(gwfake_last_of(20, SBP__FRAME__BODY_WELCOME));
    Sbp__AgentState a = SBP__AGENT_STATE__INIT;
    a.status = SBP__AGENT_STATUS__AGENT_ONLINE;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 77;
    fr.body_case = SBP__FRAME__BODY_AGENT_STATE;
    fr.agent_state = &a;
    gwfake_feed(20, &fr);
    assert_null(gwfake_last_of(20, SBP__FRAME__BODY_AGENT_STATE));
    gwfake_pump(); /* the start's reads: routing ready, then the request */
    GF.defer_pump = false;
    Sbp__Frame *r = gwfake_last_of(20, SBP__FRAME__BODY_AGENT_STATE);
    assert_non_null(r);
    assert_int_equal(r->rid, 77);
    assert_int_equal(r->agent_state->load, 1);
}

/* Whether c was pushed an event of key. */
static bool pushed_event(uint64_t c, const char *key)
{
    for (size_t i = 0; i < GF.nframes[c]; i++) {
        Sbp__Frame *f = GF.frames[c][i];
        if (f->body_case != SBP__FRAME__BODY_PUSH) continue;
        for (size_t k = 0; k < f->push->n_messages; k++) {
            const Sbp__Message *m = f->push->messages[k];
            if (m->event && strcmp(m->event->key, key) == 0) return true;
        }
    }
    return false;
}

/* The conversation as the store has it. */
static Sbp__Conversation *stored(uint64_t conv)
{
    Sbp__Conversation *c = NULL;
    assert_int_equal(sb_store_conv_get(GF.store, conv, &c), 0);
    return c;
}

/* A routing write the store fails to make (a failed commit) is made again
 * at the next tick while it is the conversation's latest: the store ends
 * with the agent the gateway chose (a member), not with the state before,
 * and the agent's answer comes once it is in. Found by sbsim (seed 100). */
static void test_route_written_again(void **state)
{
    (void)state;
    gwfake_hello(20, "a1", "agent", "d", "en");
    gwfake_hello(10, "cu1", "customer", "p", "en");
    uint64_t conv = service_open(10);
    GF.fail_kind = SB_REQ_CONV_ROUTE;
    GF.fail_count = 1;
    gwfake_send(10, conv, 1, "human", 0);
    assert_int_equal(GF.fail_count, 0);
    Sbp__Conversation *c = stored(conv);
    assert_int_equal(c->state, SBP__CONV_STATE__STATE_BOT);
    sbp__conversation__free_unpacked(c, NULL);
    gwfake_tick(100);
    c = stored(conv);
    assert_int_equal(c->state, SBP__CONV_STATE__STATE_ASSIGNED);
    assert_string_equal(c->agent, "a1");
    bool member = false;
    for (size_t i = 0; i < c->n_members; i++)
        member |= strcmp(c->members[i]->user_id, "a1") == 0;
    assert_true(member);
    sbp__conversation__free_unpacked(c, NULL);
    assert_true(pushed_event(20, "conv.assigned"));
    /* A later routing write supersedes a failed one: the close is what
     * the store keeps, the failed assignment's events never come after
     * it. */
    GF.fail_kind = SB_REQ_CONV_ROUTE;
    GF.fail_count = 1;
    GF.defer_pump = true;
    transfer(20, conv, NULL, "g1");
    close_conv(10, conv);
    GF.defer_pump = false;
    gwfake_pump();
    gwfake_tick(100);
    c = stored(conv);
    assert_int_equal(c->state, SBP__CONV_STATE__STATE_CLOSED);
    uint64_t closed_seq = c->last_seq;
    sbp__conversation__free_unpacked(c, NULL);
    /* All failed in one batch (the transfer, the group's assignment, the
     * close): the superseded writes' events go with the latest made
     * again, ahead of its own. */
    gwfake_send(10, conv, 2, "human", 0); /* reopens; handed to a1 */
    c = stored(conv);
    assert_int_equal(c->state, SBP__CONV_STATE__STATE_ASSIGNED);
    sbp__conversation__free_unpacked(c, NULL);
    GF.fail_kind = SB_REQ_CONV_ROUTE;
    GF.fail_count = 3;
    GF.defer_pump = true;
    transfer(20, conv, NULL, "g1");
    close_conv(10, conv);
    GF.defer_pump = false;
    gwfake_pump();
    assert_int_equal(GF.fail_count, 0);
    gwfake_tick(100);
    c = stored(conv);
    assert_int_equal(c->state, SBP__CONV_STATE__STATE_CLOSED);
    uint64_t last = c->last_seq;
    sbp__conversation__free_unpacked(c, NULL);
    uint64_t transferred = 0, closed = 0;
    for (uint64_t q = closed_seq + 1; q <= last; q++) {
        Sbp__Message *m = NULL;
        assert_int_equal(sb_store_msg_get(GF.store, conv, q, &m), 0);
        if (m->event && strcmp(m->event->key, "conv.transferred") == 0)
            transferred = q;
        if (m->event && strcmp(m->event->key, "conv.closed") == 0) closed = q;
        sbp__message__free_unpacked(m, NULL);
    }
    assert_true(transferred > 0);
    assert_true(closed > transferred);
}

/* A service OPEN from another device that resumes the conversation while
 * its handoff is on its way to the store: the stored form it reads (still
 * with the bot) does not take the assignment back, so the next message
 * does not hand it off again and the agent's load stays one. Found by
 * sbsim (seed 156). */
static void test_resume_keeps_routing(void **state)
{
    (void)state;
    gwfake_hello(20, "a1", "agent", "d", "en");
    gwfake_hello(10, "cu1", "customer", "phone", "en");
    gwfake_hello(11, "cu1", "customer", "laptop", "en");
    uint64_t conv = service_open(10);
    GF.defer_pump = true;
    gwfake_send(10, conv, 1, "human", 0);
    Sbp__Open o = SBP__OPEN__INIT;
    o.kind = SBP__CONV_KIND__CONV_SERVICE;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 12;
    fr.body_case = SBP__FRAME__BODY_OPEN;
    fr.open = &o;
    gwfake_feed(11, &fr);
    GF.defer_pump = false;
    gwfake_pump();
    Sbp__Frame *f = gwfake_last_of(11, SBP__FRAME__BODY_OPEN_RESP);
    assert_non_null(f);
    assert_int_equal(f->open_resp->conv->state,
                     SBP__CONV_STATE__STATE_ASSIGNED);
    gwfake_send(10, conv, 2, "human", 0);
    uint32_t cap, load;
    sb_desk_agent_load(desk, "a1", &cap, &load);
    assert_int_equal(load, 1);
    Sbp__Conversation *c = stored(conv);
    assert_int_equal(c->state, SBP__CONV_STATE__STATE_ASSIGNED);
    sbp__conversation__free_unpacked(c, NULL);
}

/* A start whose read of the queued conversations fails reads it again:
 * the queue is rebuilt, and the next agent online gets what waits. Found
 * by sbsim (seed 68). */
static void test_start_read_again(void **state)
{
    (void)state;
    gwfake_hello(10, "cu1", "customer", "p", "en");
    handoff_customer(10, 1);
    uint64_t conv = last_update(10)->conv_id;
    assert_int_equal(last_update(10)->state, SBP__CONV_STATE__STATE_QUEUED);
    sb_gw_conn_closed(GF.gw, 10);
    gwfake_clear(10);
    /* A new gateway (a restart) on the same store. */
    sb_desk *fresh = NULL;
    char err[256];
    assert_int_equal(
        sb_desk_parse(DESK, sizeof DESK - 1, &fresh, err, sizeof err), 0);
    sb_gw_config cfg;
    sb_gw_config_default(&cfg);
    cfg.desk = fresh;
    GF.fail_kind = SB_REQ_SERVICE_CONVS;
    GF.fail_count = 1;
    gwfake_regw(&cfg);
    sb_desk_free(desk);
    desk = fresh;
    assert_int_equal(GF.fail_count, 0);
    gwfake_tick(100);
    gwfake_hello(20, "a1", "agent", "d", "en");
    Sbp__Conversation *c = stored(conv);
    assert_int_equal(c->state, SBP__CONV_STATE__STATE_ASSIGNED);
    assert_string_equal(c->agent, "a1");
    sbp__conversation__free_unpacked(c, NULL);
}

/* A closed conversation's last agent is pushed the close's events and may
 * acknowledge them only after the customer's next message has reopened the
 * conversation and dropped the agent: that ends the push's resends and is
 * no error. An ACK of someone never a member is refused. */
static void test_ack_after_reopen(void **state)
{
    (void)state;
    gwfake_hello(20, "a1", "agent", "d", "en");
    gwfake_hello(21, "a2", "agent", "d", "en");
    gwfake_hello(40, "cust0", "customer", "p", "en");
    handoff_customer(40, 0x10);
    uint64_t conv = last_update(40)->conv_id;
    assert_string_equal(last_update(40)->agent, "a1");
    gwfake_clear(20);
    close_conv(20, conv);
    Sbp__Message *m = last_push(20);
    assert_non_null(m);
    assert_non_null(m->event); /* the close's events */
    uint64_t seq = m->seq;
    gwfake_send(40, conv, 0x11, "one more question", 0);
    assert_int_equal(last_update(40)->state, SBP__CONV_STATE__STATE_BOT);
    gwfake_clear(20);
    gwfake_ack(20, conv, seq);
    assert_null(gwfake_last_of(20, SBP__FRAME__BODY_ERROR));
    gwfake_tick(10000); /* past every resend's due time */
    assert_int_equal(gwfake_count(20, SBP__FRAME__BODY_PUSH), 0);
    gwfake_ack(21, conv, 1);
    expect_error(21, SBP__ERROR_CODE__ERR_FORBIDDEN);
}

static void test_authorization(void **state)
{
    (void)state;
    gwfake_hello(20, "a1", "agent", "d", "en");
    gwfake_hello(21, "a2", "agent", "d", "en");
    gwfake_hello(10, "cu1", "customer", "p", "en");
    gwfake_hello(12, "cu2", "customer", "p", "en");
    uint64_t conv = service_open(10);
    gwfake_send(10, conv, 1, "human", 0);
    assert_string_equal(last_update(10)->agent, "a1");
    /* Another customer: no reading, writing, quoting or recalling. */
    gwfake_send(12, conv, 2, "hi", 0);
    expect_error(12, SBP__ERROR_CODE__ERR_FORBIDDEN);
    Sbp__History h = SBP__HISTORY__INIT;
    h.conv_id = conv;
    Sbp__Frame hf = SBP__FRAME__INIT;
    hf.body_case = SBP__FRAME__BODY_HISTORY;
    hf.history = &h;
    gwfake_feed(12, &hf);
    expect_error(12, SBP__ERROR_CODE__ERR_FORBIDDEN);
    Sbp__Recall rc = SBP__RECALL__INIT;
    rc.conv_id = conv;
    rc.seq = 2;
    Sbp__Frame rf = SBP__FRAME__INIT;
    rf.body_case = SBP__FRAME__BODY_RECALL;
    rf.recall = &rc;
    gwfake_feed(12, &rf);
    expect_error(12, SBP__ERROR_CODE__ERR_FORBIDDEN);
    /* The other agent, not assigned: nothing either. */
    gwfake_send(21, conv, 3, "hi", 0);
    expect_error(21, SBP__ERROR_CODE__ERR_FORBIDDEN);
    gwfake_feed(21, &hf);
    expect_error(21, SBP__ERROR_CODE__ERR_FORBIDDEN);
    /* Customers do not tag; the assigned agent does. */
    char *tags[1] = {"vip"};
    Sbp__Tag t = SBP__TAG__INIT;
    t.conv_id = conv;
    t.n_add = 1;
    t.add = tags;
    Sbp__Frame tf = SBP__FRAME__INIT;
    tf.rid = 5;
    tf.body_case = SBP__FRAME__BODY_TAG;
    tf.tag = &t;
    gwfake_feed(10, &tf);
    expect_error(10, SBP__ERROR_CODE__ERR_FORBIDDEN);
    gwfake_feed(20, &tf);
    assert_int_equal(gwfake_last(20)->body_case, SBP__FRAME__BODY_OK);
    /* The customer recalls its own message within the window; the agent
     * cannot recall the customer's. */
    uint64_t seq = gwfake_last_of(10, SBP__FRAME__BODY_SEND_ACK)->send_ack->seq;
    rc.seq = seq;
    rf.rid = 6;
    gwfake_feed(20, &rf);
    expect_error(20, SBP__ERROR_CODE__ERR_FORBIDDEN);
    gwfake_feed(10, &rf);
    assert_int_equal(gwfake_last_of(10, SBP__FRAME__BODY_OK)->rid, 6);
    assert_true(pushed(20, "cu1 recalled a message."));
    /* Too late for another. */
    gwfake_send(10, conv, 7, "oops", 0);
    rc.seq = gwfake_last_of(10, SBP__FRAME__BODY_SEND_ACK)->send_ack->seq;
    GF.now += 61000;
    gwfake_feed(10, &rf);
    expect_error(10, SBP__ERROR_CODE__ERR_TOO_LATE);
    /* Canned replies are for agents. */
    Sbp__CannedList cl = SBP__CANNED_LIST__INIT;
    Sbp__Frame cf = SBP__FRAME__INIT;
    cf.body_case = SBP__FRAME__BODY_CANNED_LIST;
    cf.canned_list = &cl;
    gwfake_feed(10, &cf);
    expect_error(10, SBP__ERROR_CODE__ERR_FORBIDDEN);
    gwfake_feed(20, &cf);
    assert_int_equal(gwfake_last(20)->canned_list_resp->n_items, 1);
    /* A desk named is one of the configuration's, never the first one in
     * its place: an OPEN or a canned list for a desk that does not exist
     * is ERR_NOT_FOUND. */
    cl.desk = "nope";
    gwfake_feed(20, &cf);
    expect_error(20, SBP__ERROR_CODE__ERR_NOT_FOUND);
    cl.desk = "d";
    gwfake_feed(20, &cf);
    assert_int_equal(gwfake_last(20)->canned_list_resp->n_items, 1);
    Sbp__Open o = SBP__OPEN__INIT;
    o.kind = SBP__CONV_KIND__CONV_SERVICE;
    o.desk = "nope";
    Sbp__Frame of = SBP__FRAME__INIT;
    of.rid = 12;
    of.body_case = SBP__FRAME__BODY_OPEN;
    of.open = &o;
    gwfake_hello(11, "cu2", "customer", "p", "en");
    gwfake_feed(11, &of);
    expect_error(11, SBP__ERROR_CODE__ERR_NOT_FOUND);
}

/* Cards and images travel with the message; without what makes them
 * they are refused. */
static void test_card_and_media(void **state)
{
    (void)state;
    gwfake_hello(20, "a1", "agent", "d", "en");
    gwfake_hello(10, "cu1", "customer", "p", "en");
    uint64_t conv = service_open(10);
    gwfake_send(10, conv, 1, "human", 0);
    uint8_t id[16];
    memset(id, 0x77, sizeof id);
    Sbp__Card card = SBP__CARD__INIT;
    card.title = "Blue kettle";
    card.price = "39.00 EUR";
    card.link = "https://shop.example/kettle";
    Sbp__Send snd = SBP__SEND__INIT;
    snd.client_msg_id.data = id;
    snd.client_msg_id.len = 16;
    snd.conv_id = conv;
    snd.type = SBP__MSG_TYPE__MSG_CARD;
    snd.card = &card;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 40;
    fr.body_case = SBP__FRAME__BODY_SEND;
    fr.send = &snd;
    gwfake_feed(20, &fr);
    Sbp__Message *m = last_push(10);
    assert_int_equal(m->type, SBP__MSG_TYPE__MSG_CARD);
    assert_non_null(m->card);
    assert_string_equal(m->card->title, "Blue kettle");
    assert_string_equal(m->card->price, "39.00 EUR");
    /* An image without an upload's id, or with a link of its own. */
    id[0] = 0x78;
    snd.type = SBP__MSG_TYPE__MSG_IMAGE;
    snd.card = NULL;
    gwfake_feed(20, &fr);
    expect_error(20, SBP__ERROR_CODE__ERR_INVALID);
    Sbp__Media media = SBP__MEDIA__INIT;
    media.url = "https://cdn.example/k.png";
    media.size = 12345;
    snd.media = &media;
    gwfake_feed(20, &fr);
    expect_error(20, SBP__ERROR_CODE__ERR_INVALID);
    /* An id nobody uploaded. */
    media.id = "00112233445566778899aabbccddeeff";
    gwfake_feed(20, &fr);
    expect_error(20, SBP__ERROR_CODE__ERR_NOT_FOUND);
    /* The agent's upload: the message carries what the store has, not
     * the sender's word (its URL, size). */
    sb_store_media rec = {.conv_id = conv,
                          .size = 777,
                          .width = 64,
                          .height = 48,
                          .created_ts = GWFAKE_T0};
    snprintf(rec.id, sizeof rec.id, "%s", media.id);
    snprintf(rec.owner, sizeof rec.owner, "a1");
    snprintf(rec.name, sizeof rec.name, "kettle.png");
    snprintf(rec.mime, sizeof rec.mime, "image/png");
    assert_int_equal(sb_store_begin(GF.store), 0);
    assert_int_equal(sb_store_media_put(GF.store, &rec), 0);
    assert_int_equal(sb_store_commit(GF.store), 0);
    gwfake_feed(20, &fr);
    m = last_push(10);
    assert_int_equal(m->type, SBP__MSG_TYPE__MSG_IMAGE);
    assert_string_equal(m->media->id, rec.id);
    assert_string_equal(m->media->url,
                        "/media/00112233445566778899aabbccddeeff");
    assert_string_equal(m->media->mime, "image/png");
    assert_string_equal(m->media->name, "kettle.png");
    assert_int_equal(m->media->size, 777);
    assert_int_equal(m->media->width, 64);
    assert_int_equal(m->media->height, 48);
    /* The customer cannot send the agent's upload; nor can anyone attach
     * media to a text. */
    gwfake_clear(10);
    Sbp__Send snd2 = snd;
    uint8_t id2[16];
    memset(id2, 0x79, sizeof id2);
    snd2.client_msg_id.data = id2;
    Sbp__Frame fr2 = fr;
    fr2.send = &snd2;
    gwfake_feed(10, &fr2);
    expect_error(10, SBP__ERROR_CODE__ERR_NOT_FOUND);
    id2[0] = 0x7a;
    snd2.type = SBP__MSG_TYPE__MSG_TEXT;
    snd2.body = "look";
    gwfake_feed(10, &fr2);
    expect_error(10, SBP__ERROR_CODE__ERR_INVALID);

    /* MEDIA_URL: a signed link for those who may see it (both members,
     * now that a message carries it); none for an unknown id. */
    char *ids[] = {rec.id, "ffffffffffffffffffffffffffffffff"};
    Sbp__MediaUrl mu = SBP__MEDIA_URL__INIT;
    mu.ids = ids;
    mu.n_ids = 2;
    Sbp__Frame fu = SBP__FRAME__INIT;
    fu.rid = 41;
    fu.body_case = SBP__FRAME__BODY_MEDIA_URL;
    fu.media_url = &mu;
    gwfake_feed(10, &fu);
    const Sbp__Frame *got = gwfake_last(10);
    assert_int_equal(got->body_case, SBP__FRAME__BODY_MEDIA_URL_RESP);
    assert_int_equal(got->rid, 41);
    assert_int_equal(got->media_url_resp->n_links, 1);
    const Sbp__MediaLink *ln = got->media_url_resp->links[0];
    assert_string_equal(ln->id, rec.id);
    assert_memory_equal(ln->url,
                        "/media/00112233445566778899aabbccddeeff?t=", 42);
    assert_true(ln->expires_ts > GWFAKE_T0);
    char user[SB_ID_BYTES_MAX + 1];
    Sbp__Role role;
    const char *t = strstr(ln->url, "?t=") + 3;
    assert_int_equal(sb_media_link_verify(
                         (const uint8_t *)GWFAKE_SECRET, strlen(GWFAKE_SECRET),
                         rec.id, t, strlen(t), GWFAKE_T0 / 1000, user, &role),
                     0);
    assert_string_equal(user, "cu1");
    assert_int_equal(role, SBP__ROLE__ROLE_CUSTOMER);
    mu.n_ids = 1;
    mu.ids = &ids[1];
    gwfake_feed(10, &fu);
    expect_error(10, SBP__ERROR_CODE__ERR_NOT_FOUND);
    /* Malformed ids, too many, none. */
    char *bad[] = {"../x"};
    mu.ids = bad;
    gwfake_feed(10, &fu);
    expect_error(10, SBP__ERROR_CODE__ERR_INVALID);
    mu.n_ids = 0;
    gwfake_feed(10, &fu);
    expect_error(10, SBP__ERROR_CODE__ERR_INVALID);
    char *many[SB_MEDIA_URL_IDS_MAX + 1];
    for (size_t i = 0; i <= SB_MEDIA_URL_IDS_MAX; i++)
        many[i] = rec.id;
    mu.ids = many;
    mu.n_ids = SB_MEDIA_URL_IDS_MAX + 1;
    gwfake_feed(10, &fu);
    expect_error(10, SBP__ERROR_CODE__ERR_TOO_LARGE);
}

/* The gateway's routing state in a configuration put in force while it
 * runs: a lower capacity keeps the conversations an agent has; an agent
 * added while connected takes the queue at once; an agent removed hands
 * its conversations back to the queue and on to the agent with room. */
static void test_desk_swap(void **state)
{
    (void)state;
    gwfake_hello(20, "a1", "agent", "d", "en");
    gwfake_hello(24, "a4", "agent", "d", "en"); /* not an agent yet */
    for (uint64_t i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "cust%u", (unsigned)i);
        gwfake_hello(40 + i, name, "customer", "p", "en");
        handoff_customer(40 + i, (uint8_t)(0x10 + i));
    }
    assert_string_equal(last_update(40)->agent, "a1");
    assert_string_equal(last_update(41)->agent, "a1");
    assert_int_equal(last_update(42)->state, SBP__CONV_STATE__STATE_QUEUED);

    static const char NEW[] =
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\",\"g2\"]}],"
        "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":1},"
        "{\"id\":\"a4\",\"groups\":[\"g1\"],\"capacity\":2}]}";
    sb_desk *nd = NULL, *old = NULL;
    char err[256];
    if (sb_desk_parse(NEW, sizeof NEW - 1, &nd, err, sizeof err))
        fail_msg("desk: %s", err);
    assert_int_equal(sb_gw_desk_swap(GF.gw, nd, &old), 0);
    assert_ptr_equal(old, desk);
    sb_desk_free(old);
    desk = nd;
    gwfake_pump();
    assert_string_equal(last_update(42)->agent, "a4");
    assert_true(pushed(42, "a4 has joined"));
    uint32_t cap, load;
    sb_desk_agent_load(nd, "a1", &cap, &load);
    assert_int_equal(cap, 1);
    assert_int_equal(load, 2); /* kept, no new one until below 1 */

    static const char NO_A1[] =
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\"]}],"
        "\"agents\":[{\"id\":\"a4\",\"groups\":[\"g1\"],\"capacity\":3}]}";
    if (sb_desk_parse(NO_A1, sizeof NO_A1 - 1, &nd, err, sizeof err))
        fail_msg("desk: %s", err);
    assert_int_equal(sb_gw_desk_swap(GF.gw, nd, &old), 0);
    sb_desk_free(old);
    desk = nd;
    gwfake_pump();
    for (uint64_t i = 0; i < 3; i++)
        assert_string_equal(last_update(40 + i)->agent, "a4");
    assert_true(pushed(40, "went back to the g1 queue"));
    sb_desk_agent_load(nd, "a4", &cap, &load);
    assert_int_equal(load, 3);
    /* a1 is out of its old conversations. */
    gwfake_send(20, last_update(40)->conv_id, 9, "still mine?", 0);
    expect_error(20, SBP__ERROR_CODE__ERR_FORBIDDEN);
}

/* Events stored in the same turn as other messages go in the same PUSH,
 * each rendered in the receiving device's locale. */
static void test_events_in_batch(void **state)
{
    (void)state;
    gwfake_hello(10, "cu1", "customer", "phone", "en");
    gwfake_hello(11, "cu1", "customer", "laptop", "zh-CN");
    uint64_t conv = service_open(10);
    gwfake_clear(10);
    gwfake_clear(11);
    /* Handoff with nobody online: the text, two events and the
     * out-of-hours text, stored by two requests in one turn; then where
     * the conversation stands. */
    gwfake_send(10, conv, 2, "a human please", 0);
    static const char *const zh[] = {
        "a human please",
        "\xe6\xad\xa3\xe5\x9c\xa8\xe4\xb8\xba", /* connecting you */
        "\xe7\xac\xac 1 \xe4\xbd\x8d",          /* number 1 */
        "Nobody is here"};
    static const char *const en[] = {"Connecting you to a person",
                                     "You are number 1 in the queue.",
                                     "Nobody is here"};
    assert_int_equal(GF.nframes[11], 2);
    assert_int_equal(GF.frames[11][0]->body_case, SBP__FRAME__BODY_PUSH);
    assert_int_equal(GF.frames[11][1]->body_case, SBP__FRAME__BODY_CONV_UPDATE);
    Sbp__Push *p = GF.frames[11][0]->push;
    assert_int_equal(p->n_messages, 4);
    uint64_t seq = p->messages[0]->seq;
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(p->messages[i]->seq, seq + i);
        assert_non_null(strstr(p->messages[i]->body, zh[i]));
    }
    assert_int_equal(p->messages[1]->type, SBP__MSG_TYPE__MSG_EVENT);
    assert_int_equal(p->messages[2]->type, SBP__MSG_TYPE__MSG_EVENT);
    /* The sender's device: its SEND_ACK, then the rest in English. */
    assert_int_equal(GF.nframes[10], 3);
    assert_int_equal(GF.frames[10][0]->body_case, SBP__FRAME__BODY_SEND_ACK);
    assert_int_equal(GF.frames[10][0]->send_ack->seq, seq);
    assert_int_equal(GF.frames[10][1]->body_case, SBP__FRAME__BODY_PUSH);
    assert_int_equal(GF.frames[10][2]->body_case, SBP__FRAME__BODY_CONV_UPDATE);
    p = GF.frames[10][1]->push;
    assert_int_equal(p->n_messages, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(p->messages[i]->seq, seq + 1 + i);
        assert_non_null(strstr(p->messages[i]->body, en[i]));
    }
}

/* Swaps the fake shell's two gateways: the helpers talk to GF.gw. */
static void swap_gateways(void)
{
    sb_gw *g = GF.gw;
    GF.gw = GF.other;
    GF.other = g;
}

/* Two gateways in one process, each with its own desk, share nothing:
 * queues, agents' status and loads are each one's own. */
static void test_two_gateways(void **state)
{
    (void)state;
    sb_desk *desk2;
    char err[256];
    if (sb_desk_parse(DESK, sizeof DESK - 1, &desk2, err, sizeof err))
        fail_msg("desk: %s", err);
    sb_gw_config c;
    sb_gw_config_default(&c);
    c.desk = desk2;
    c.secret = (const uint8_t *)GWFAKE_SECRET;
    c.secret_len = strlen(GWFAKE_SECRET);
    sb_gw_io io = gwfake_io();
    assert_int_equal(sb_gw_new(&c, &io, &GF.other), 0);
    sb_gw_start(GF.other, GF.now);
    gwfake_pump();
    /* A customer of each asks for a person: each is first in its queue. */
    gwfake_hello(10, "cu1", "customer", "p", "en");
    handoff_customer(10, 1);
    assert_int_equal(last_update(10)->queue_position, 1);
    swap_gateways();
    gwfake_hello(11, "cu2", "customer", "p", "en");
    handoff_customer(11, 2);
    assert_int_equal(last_update(11)->queue_position, 1);
    /* An agent online on the second gateway gets its customer only. */
    gwfake_hello(20, "a1", "agent", "d", "en");
    assert_string_equal(last_update(11)->agent, "a1");
    assert_int_equal(sb_desk_status(desk2, "a1"),
                     SBP__AGENT_STATUS__AGENT_ONLINE);
    swap_gateways();
    assert_int_equal(last_update(10)->state, SBP__CONV_STATE__STATE_QUEUED);
    assert_int_equal(sb_desk_status(desk, "a1"),
                     SBP__AGENT_STATUS__AGENT_OFFLINE);
    assert_int_equal(sb_desk_queue_len(desk), 1);
    assert_int_equal(sb_desk_queue_len(desk2), 0);
    sb_gw_conn_closed(GF.other, 11);
    sb_gw_conn_closed(GF.other, 20);
    gwfake_pump();
    sb_gw_free(GF.other);
    GF.other = NULL;
    sb_desk_free(desk2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_scenario, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_desk_waits_for_routing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_authorization, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_written_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_start_read_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_keeps_routing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_card_and_media, setup, teardown),
        cmocka_unit_test_setup_teardown(test_desk_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_in_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_gateways, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
