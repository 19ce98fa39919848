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
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "sb_error.h"

#define WAIT_MS 10000
#define DEVS_MAX 16
#define MSGS_MAX 64
#define ANS_MAX 32
#define TEXT_BYTES 4096

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

/* ---- devices ----------------------------------------------------------- */

typedef struct bd_msg {
    uint64_t conv, seq;
    Sbp__MsgType type;
    char sender[SB_USER_ID_BYTES_MAX + 1];
    char body[256];
    size_t n_quick;
    char quick[2][64];
} bd_msg;

typedef struct bd_ans {
    uint32_t rid;
    int err;
    char text[TEXT_BYTES];
} bd_ans;

typedef struct bd_dev {
    char name[160], user[SB_USER_ID_BYTES_MAX + 1], device[80];
    char token[1024];
    sb_client_config cfg;
    sb_client *c;
    bd_msg msgs[MSGS_MAX];
    size_t n_msgs;
    bd_ans ans[ANS_MAX];
    size_t n_ans;
    /* the last CONV_UPDATE */
    unsigned updates;
    uint64_t upd_conv;
    Sbp__ConvState upd_state;
    char upd_agent[SB_USER_ID_BYTES_MAX + 1], upd_group[65];
    uint32_t upd_pos;
    size_t upd_members;
    /* the last send */
    uint8_t send_id[SB_CLIENT_MSG_ID_BYTES];
    sb_client_send_status send_status;
    int send_err;
} bd_dev;

static it_env E;
static bd_dev *DEVS[DEVS_MAX];
static size_t N_DEVS;

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void cb_message(void *ud, const Sbp__Message *m)
{
    bd_dev *d = ud;
    if (d->n_msgs == MSGS_MAX) fail_msg("%s: too many messages", d->name);
    bd_msg *s = &d->msgs[d->n_msgs++];
    memset(s, 0, sizeof *s);
    s->conv = m->conv_id;
    s->seq = m->seq;
    s->type = m->type;
    copy(s->sender, sizeof s->sender, m->sender);
    copy(s->body, sizeof s->body, m->body);
    s->n_quick = m->n_quick_replies;
    for (size_t i = 0; i < m->n_quick_replies && i < 2; i++)
        copy(s->quick[i], sizeof s->quick[i], m->quick_replies[i]->title);
}

static void cb_conv_update(void *ud, const Sbp__Conversation *c)
{
    bd_dev *d = ud;
    d->updates++;
    d->upd_conv = c->conv_id;
    d->upd_state = c->state;
    copy(d->upd_agent, sizeof d->upd_agent, c->agent);
    copy(d->upd_group, sizeof d->upd_group, c->group);
    d->upd_pos = c->queue_position;
    d->upd_members = c->n_members;
}

static void ans_put(bd_dev *d, uint32_t rid, int err, const char *text)
{
    if (d->n_ans == ANS_MAX) fail_msg("%s: too many answers", d->name);
    bd_ans *a = &d->ans[d->n_ans++];
    a->rid = rid;
    a->err = err;
    copy(a->text, sizeof a->text, text);
}

static void cb_open(void *ud, uint32_t rid, int err, const Sbp__Conversation *c)
{
    char id[32] = "";
    if (c) snprintf(id, sizeof id, "%" PRIu64 " %zu", c->conv_id, c->n_members);
    ans_put(ud, rid, err, id);
}

static void cb_done(void *ud, uint32_t rid, int err)
{
    ans_put(ud, rid, err, "");
}

static void cb_admin(void *ud, uint32_t rid, int err, const char *text)
{
    ans_put(ud, rid, err, text);
}

static void cb_send_status(void *ud, const sb_client_send_info *s)
{
    bd_dev *d = ud;
    if (memcmp(s->client_msg_id, d->send_id, sizeof d->send_id) != 0) return;
    if (s->status == SB_SEND_SENT || s->status == SB_SEND_FAILED) {
        d->send_status = s->status;
        d->send_err = s->err;
    }
}

static const sb_client_cbs CBS = {
    .on_message = cb_message,
    .on_send_status = cb_send_status,
    .on_open = cb_open,
    .on_done = cb_done,
    .on_conv_update = cb_conv_update,
    .on_admin = cb_admin,
};

static bool dev_ready(void *arg)
{
    bd_dev *d = arg;
    return d->c && sb_client_get_state(d->c) == SB_CLIENT_READY;
}

static bd_dev *dev_connect(const char *user, const char *role)
{
    assert_true(N_DEVS < DEVS_MAX);
    bd_dev *d = calloc(1, sizeof *d);
    assert_non_null(d);
    DEVS[N_DEVS++] = d;
    copy(d->user, sizeof d->user, user);
    snprintf(d->device, sizeof d->device, "%s-d%zu", user, N_DEVS);
    snprintf(d->name, sizeof d->name, "%s/%s", user, d->device);
    copy(d->token, sizeof d->token, harness_token(user, role, 3600));
    sb_client_config_default(&d->cfg);
    d->cfg.url = E.url;
    d->cfg.enc = E.enc;
    d->cfg.token = d->token;
    d->cfg.device_id = d->device;
    d->cfg.locale = "en";
    d->cfg.client_name = "integ_desk_bot";
    d->cfg.backoff_ms_base = 20;
    d->cfg.backoff_ms_max = 200;
    assert_int_equal(sb_client_new(&E.loop, &d->cfg, &CBS, d, &d->c), 0);
    sb_client_start(d->c);
    if (!it_run_until(&E, dev_ready, d, WAIT_MS))
        fail_msg("%s did not get READY", d->name);
    return d;
}

static void on_freed(void *ud)
{
    ((bd_dev *)ud)->c = NULL;
}

static bool dev_freed(void *arg)
{
    return ((bd_dev *)arg)->c == NULL;
}

/* Disconnects d (the server sees its last session go). */
static void dev_stop(bd_dev *d)
{
    if (d->c) sb_client_close(d->c, on_freed);
    if (!it_run_until(&E, dev_freed, d, WAIT_MS))
        fail_msg("%s not freed", d->name);
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_DEVS; i++)
        if (DEVS[i]->c) dev_stop(DEVS[i]);
    for (size_t i = 0; i < N_DEVS; i++)
        free(DEVS[i]);
    N_DEVS = 0;
    it_env_free(&E);
    return 0;
}

static void start_server(const char *desk, sb_encoding enc)
{
    it_env_init(&E);
    E.enc = enc;
    snprintf(E.srv.data_dir, sizeof E.srv.data_dir, "/tmp/sbbot.XXXXXX");
    assert_non_null(mkdtemp(E.srv.data_dir));
    static char path[300];
    snprintf(path, sizeof path, "%s/desk.json", E.srv.data_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(desk, 1, strlen(desk), f), strlen(desk));
    assert_int_equal(fclose(f), 0);
    const char *extra[] = {"--desk", path, "--durability", "os", NULL};
    assert_int_equal(it_server_start(&E, extra), 0);
}

/* ---- waiting ----------------------------------------------------------- */

typedef struct ans_arg {
    bd_dev *d;
    uint32_t rid;
} ans_arg;

static bd_ans *ans_find(bd_dev *d, uint32_t rid)
{
    for (size_t i = 0; i < d->n_ans; i++)
        if (d->ans[i].rid == rid) return &d->ans[i];
    return NULL;
}

static bool ans_arrived(void *arg)
{
    ans_arg *a = arg;
    return ans_find(a->d, a->rid) != NULL;
}

static bd_ans *wait_ans(bd_dev *d, int rc, uint32_t rid, const char *what)
{
    if (rc)
        fail_msg("%s: %s refused by the SDK: %s", d->name, what,
                 sb_client_err_name(rc));
    ans_arg a = {d, rid};
    if (!it_run_until(&E, ans_arrived, &a, WAIT_MS))
        fail_msg("%s: no answer to %s", d->name, what);
    return ans_find(d, rid);
}

/* An admin op over the SDK; returns the answer. */
static bd_ans *admin(bd_dev *d, const char *op, const char *body)
{
    uint32_t rid = 0;
    int rc = sb_client_admin_cmd(d->c, op, body, &rid);
    return wait_ans(d, rc, rid, op);
}

static bd_ans *admin_ok(bd_dev *d, const char *op, const char *body)
{
    bd_ans *a = admin(d, op, body);
    if (a->err)
        fail_msg("%s: %s refused: %s %s", d->name, op,
                 sb_client_err_name(a->err), a->text);
    return a;
}

/* Opens the customer's service conversation; returns its id, and the
 * number of its members in *members. */
static uint64_t open_service(bd_dev *d, size_t *members)
{
    uint32_t rid = 0;
    int rc = sb_client_open_service(d->c, "d", &rid);
    bd_ans *a = wait_ans(d, rc, rid, "service open");
    if (a->err)
        fail_msg("%s: open failed: %s", d->name, sb_client_err_name(a->err));
    uint64_t id = 0;
    size_t n = 0;
    assert_int_equal(sscanf(a->text, "%" SCNu64 " %zu", &id, &n), 2);
    if (members) *members = n;
    return id;
}

static bool send_ended(void *arg)
{
    return ((bd_dev *)arg)->send_status != SB_SEND_PENDING;
}

/* Waits for the last send to end; its error (0: SENT). */
static int send_wait(bd_dev *d, int rc)
{
    if (rc)
        fail_msg("%s: send refused by the SDK: %s", d->name,
                 sb_client_err_name(rc));
    if (!it_run_until(&E, send_ended, d, WAIT_MS))
        fail_msg("%s: send not answered", d->name);
    return d->send_status == SB_SEND_SENT ? 0 : d->send_err;
}

static int say(bd_dev *d, uint64_t conv, const char *text)
{
    d->send_status = SB_SEND_PENDING;
    return send_wait(d, sb_client_send_text(d->c, conv, text, d->send_id));
}

static int say_robot(bd_dev *d, uint64_t conv, const char *text,
                     const char *const *quick, size_t n)
{
    d->send_status = SB_SEND_PENDING;
    return send_wait(
        d, sb_client_send_robot(d->c, conv, text, quick, n, d->send_id));
}

typedef struct find_arg {
    bd_dev *d;
    uint64_t conv;
    const char *sender, *body;
} find_arg;

static const bd_msg *find_msg(bd_dev *d, uint64_t conv, const char *sender,
                              const char *body)
{
    for (size_t i = 0; i < d->n_msgs; i++) {
        const bd_msg *m = &d->msgs[i];
        if (m->conv == conv && (!sender || strcmp(m->sender, sender) == 0) &&
            (!body || strstr(m->body, body)))
            return m;
    }
    return NULL;
}

static bool msg_arrived(void *arg)
{
    find_arg *a = arg;
    return find_msg(a->d, a->conv, a->sender, a->body) != NULL;
}

/* Waits until d surfaces a message of conv from sender containing body. */
static const bd_msg *expect_msg(bd_dev *d, uint64_t conv, const char *sender,
                                const char *body)
{
    find_arg a = {d, conv, sender, body};
    if (!it_run_until(&E, msg_arrived, &a, WAIT_MS)) {
        for (size_t i = 0; i < d->n_msgs; i++)
            fprintf(stderr, "  %s has %" PRIu64 ":%" PRIu64 " %s %s\n", d->name,
                    d->msgs[i].conv, d->msgs[i].seq, d->msgs[i].sender,
                    d->msgs[i].body);
        fail_msg("%s: no message from %s with \"%s\"", d->name,
                 sender ? sender : "anyone", body ? body : "");
    }
    return find_msg(d, conv, sender, body);
}

typedef struct upd_arg {
    bd_dev *d;
    uint64_t conv;
    Sbp__ConvState state;
    const char *agent, *group;
} upd_arg;

static bool upd_arrived(void *arg)
{
    upd_arg *a = arg;
    return a->d->updates && a->d->upd_conv == a->conv &&
           a->d->upd_state == a->state &&
           (!a->agent || strcmp(a->d->upd_agent, a->agent) == 0) &&
           (!a->group || strcmp(a->d->upd_group, a->group) == 0);
}

/* Waits until d's last CONV_UPDATE says conv is in state (with agent and
 * group, when given). */
static void expect_state(bd_dev *d, uint64_t conv, Sbp__ConvState st,
                         const char *agent, const char *group)
{
    upd_arg a = {d, conv, st, agent, group};
    if (!it_run_until(&E, upd_arrived, &a, WAIT_MS))
        fail_msg("%s: conv %" PRIu64 " not in state %d (agent %s, group %s);"
                 " last update: conv %" PRIu64 " state %d agent %s group %s",
                 d->name, conv, (int)st, agent ? agent : "-",
                 group ? group : "-", d->upd_conv, (int)d->upd_state,
                 d->upd_agent, d->upd_group);
}

/* Customer c asks for a person: the built-in bot hands off. */
static void ask_human(bd_dev *c, uint64_t conv)
{
    assert_int_equal(say(c, conv, "a human please"), 0);
}

/* ---- external bot -------------------------------------------------------- */

static void external_bot(sb_encoding enc)
{
    start_server(DESK_BOT, enc);
    bd_dev *bot = dev_connect("helper", "bot");
    bd_dev *cu = dev_connect("cu1", "customer");

    /* The bot joins the new conversation and hears of it. */
    size_t members = 0;
    uint64_t conv = open_service(cu, &members);
    assert_int_equal(members, 2);
    expect_state(bot, conv, SBP__CONV_STATE__STATE_BOT, "", NULL);
    assert_int_equal(bot->upd_members, 2);

    /* Its robot message with quick replies reaches the customer. */
    const char *quick[] = {"Track my order", "Talk to a person"};
    assert_int_equal(say_robot(bot, conv, "Hi, I am the helper bot", quick, 2),
                     0);
    const bd_msg *m = expect_msg(cu, conv, "helper", "helper bot");
    assert_int_equal(m->type, SBP__MSG_TYPE__MSG_ROBOT);
    assert_int_equal(m->n_quick, 2);
    assert_string_equal(m->quick[0], "Track my order");
    assert_string_equal(m->quick[1], "Talk to a person");
    /* Robot messages and quick replies stay the bot's. */
    cu->send_status = SB_SEND_PENDING;
    assert_int_equal(send_wait(cu, sb_client_send_robot(cu->c, conv, "x", quick,
                                                        1, cu->send_id)),
                     SB_E_INVALID);

    /* The customer's message goes to the bot; the built-in bot, which
     * would answer "refund", stays quiet. */
    assert_int_equal(say(cu, conv, "where is my refund"), 0);
    expect_msg(bot, conv, "cu1", "refund");
    assert_int_equal(say_robot(bot, conv, "Checking your refund", quick + 1, 1),
                     0);
    expect_msg(cu, conv, "helper", "Checking");
    assert_null(find_msg(cu, conv, "bot", NULL));

    /* The bot hands off: queued (nobody online), the bot out. */
    uint32_t rid = 0;
    int rc = sb_client_handoff(bot->c, conv, "", &rid);
    assert_int_equal(wait_ans(bot, rc, rid, "handoff")->err, 0);
    expect_state(cu, conv, SBP__CONV_STATE__STATE_QUEUED, "", "g1");
    assert_int_equal(cu->upd_pos, 1);
    expect_state(bot, conv, SBP__CONV_STATE__STATE_QUEUED, "", "g1");
    assert_int_equal(bot->upd_members, 1);
    expect_msg(cu, conv, "bot", "Nobody is here"); /* out of hours */
    assert_int_equal(say_robot(bot, conv, "still here?", quick, 1),
                     SB_E_FORBIDDEN);

    /* An agent comes online and gets it, with all that was said. */
    bd_dev *ag = dev_connect("a1", "agent");
    expect_state(cu, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", "g1");
    expect_msg(ag, conv, "cu1", "refund");
    const bd_msg *g = expect_msg(ag, conv, "helper", "helper bot");
    assert_int_equal(g->n_quick, 2);
    assert_int_equal(say(ag, conv, "Hello, I am a1"), 0);
    expect_msg(cu, conv, "a1", "I am a1");
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
    bd_dev *cu = dev_connect("cu2", "customer");
    size_t members = 0;
    uint64_t conv = open_service(cu, &members);
    assert_int_equal(members, 1);
    const bd_msg *m = expect_msg(cu, conv, "bot", "Welcome");
    assert_int_equal(m->type, SBP__MSG_TYPE__MSG_ROBOT);
    assert_int_equal(m->n_quick, 1);
    assert_int_equal(say(cu, conv, "refund?"), 0);
    expect_msg(cu, conv, "bot", "Refunds take 5 days");

    bd_dev *bot = dev_connect("helper", "bot");
    bd_dev *cu3 = dev_connect("cu3", "customer");
    uint64_t conv3 = open_service(cu3, &members);
    assert_int_equal(members, 2);
    expect_state(bot, conv3, SBP__CONV_STATE__STATE_BOT, "", NULL);
    dev_stop(bot);
    assert_int_equal(say(cu3, conv3, "my refund"), 0);
    expect_msg(cu3, conv3, "bot", "Refunds take 5 days");
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
    bd_dev *ad = dev_connect("root", "admin");
    bd_dev *a1 = dev_connect("a1", "agent");
    bd_dev *c1 = dev_connect("c1", "customer");
    bd_dev *c2 = dev_connect("c2", "customer");
    bd_dev *c3 = dev_connect("c3", "customer");
    (void)a1;

    uint64_t v1 = open_service(c1, NULL);
    ask_human(c1, v1);
    expect_state(c1, v1, SBP__CONV_STATE__STATE_ASSIGNED, "a1", "g1");
    uint64_t v2 = open_service(c2, NULL);
    ask_human(c2, v2);
    expect_state(c2, v2, SBP__CONV_STATE__STATE_QUEUED, "", "g1");

    /* A non-admin is refused, saying why. */
    bd_ans *a = admin(c1, "desk-show", NULL);
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
    uint64_t v3 = open_service(c3, NULL);
    uint32_t rid = 0;
    int rc = sb_client_handoff(c3->c, v3, "g2", &rid);
    assert_int_equal(wait_ans(c3, rc, rid, "handoff")->err, 0);
    expect_state(c3, v3, SBP__CONV_STATE__STATE_QUEUED, "", "g2");
    admin_ok(ad, "desk-group-rm", "{\"name\":\"g2\"}");
    expect_state(c3, v3, SBP__CONV_STATE__STATE_QUEUED, "", "g1");
    expect_msg(c3, v3, "system", "went back to the g1 queue");

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
    bd_dev *a3 = dev_connect("a3", "agent");
    a = admin_ok(ad, "desk-agent-set", "{\"id\":\"a3\",\"groups\":[\"g1\"]}");
    assert_non_null(strstr(a->text, "agent a3 added"));
    expect_state(c3, v3, SBP__CONV_STATE__STATE_ASSIGNED, "a3", "g1");
    expect_msg(a3, v3, "system", "a3 has joined");
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
