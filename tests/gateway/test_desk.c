/* Desk configuration, the rule bot and routing: capacity, least-loaded and
 * longest-idle choice, queue order and positions, out-of-hours; a new
 * configuration taking over the routing state of the old one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_desk.h"
#include "sb_error.h"

static const char CFG[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\",\"g2\"],"
    "\"greeting\":{\"en\":\"Hi\",\"zh-CN\":\"\xe4\xbd\xa0\xe5\xa5\xbd\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true},"
    "{\"keywords\":[\"Refund\"],\"answer\":\"R\",\"quick_replies\":[\"a\","
    "\"b\"]}],"
    "\"zh-CN\":[{\"keywords\":[\"\xe4\xba\xba\xe5\xb7\xa5\"],\"handoff\":true}]"
    "}}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a2\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a3\",\"groups\":[\"g1\",\"g2\"],\"capacity\":2}]}";

static sb_desk *load(void)
{
    sb_desk *d = NULL;
    char err[256];
    int rc = sb_desk_parse(CFG, sizeof CFG - 1, &d, err, sizeof err);
    if (rc) fail_msg("parse: %s", err);
    return d;
}

static void test_texts_and_bot(void **state)
{
    (void)state;
    sb_desk *d = load();
    const sb_desk_def *def = sb_desk_get(d, "");
    assert_string_equal(def->id, "d");
    assert_string_equal(sb_desk_text(&def->greeting, "en-GB"), "Hi");
    assert_string_equal(sb_desk_text(&def->greeting, "zh-CN"),
                        "\xe4\xbd\xa0\xe5\xa5\xbd");
    assert_string_equal(sb_desk_text(&def->greeting, "fr"), "Hi");
    const sb_desk_rule *r;
    assert_int_equal(sb_desk_bot(def, "en", "I want a REFUND now", &r),
                     SB_BOT_ANSWER);
    assert_string_equal(r->answer, "R");
    assert_int_equal(r->n_quick, 2);
    assert_int_equal(sb_desk_bot(def, "en", "a Human please", &r),
                     SB_BOT_HANDOFF);
    assert_int_equal(sb_desk_bot(def, "en", "weather?", &r), SB_BOT_UNMATCHED);
    assert_int_equal(
        sb_desk_bot(def, "zh-CN", "\xe8\xbd\xac\xe4\xba\xba\xe5\xb7\xa5", &r),
        SB_BOT_HANDOFF);
    sb_desk_free(d);
}

/* Three agents of capacity 2 and ten customers. */
static void test_capacity_and_queue(void **state)
{
    (void)state;
    sb_desk *d = load();
    int g1 = sb_desk_group(d, "g1");
    assert_true(g1 >= 0);
    assert_false(sb_desk_group_staffed(d, g1));
    assert_null(sb_desk_pick(d, g1));
    /* a2 came online first, then a1, then a3: a2 idles longest. */
    sb_desk_set_status(d, "a2", SBP__AGENT_STATUS__AGENT_ONLINE, 100);
    sb_desk_set_status(d, "a1", SBP__AGENT_STATUS__AGENT_ONLINE, 200);
    sb_desk_set_status(d, "a3", SBP__AGENT_STATUS__AGENT_ONLINE, 300);
    const char *want[6] = {"a2", "a1", "a3", "a2", "a1", "a3"};
    for (int i = 0; i < 6; i++) {
        const char *a = sb_desk_pick(d, g1);
        assert_non_null(a);
        assert_string_equal(a, want[i]);
        sb_desk_add_load(d, a, +1, 1000 + i);
    }
    /* Everyone is full: the other four customers queue, in order. */
    assert_null(sb_desk_pick(d, g1));
    assert_true(sb_desk_group_staffed(d, g1));
    for (uint64_t c = 7; c <= 10; c++)
        assert_int_equal(sb_desk_enqueue(d, c, g1, 2000 + (int64_t)c), 0);
    for (uint64_t c = 7; c <= 10; c++)
        assert_int_equal(sb_desk_position(d, c), c - 6);
    /* a3 closes one: the head of the queue is next, and positions move. */
    sb_desk_add_load(d, "a3", -1, 3000);
    assert_string_equal(sb_desk_pick(d, g1), "a3");
    assert_int_equal(sb_desk_next_for(d, "a3"), 7);
    assert_true(sb_desk_dequeue(d, 7));
    sb_desk_add_load(d, "a3", +1, 3001);
    assert_int_equal(sb_desk_position(d, 8), 1);
    assert_int_equal(sb_desk_position(d, 7), 0);
    /* Going away takes an agent out of routing. */
    sb_desk_add_load(d, "a1", -1, 4000);
    sb_desk_set_status(d, "a1", SBP__AGENT_STATUS__AGENT_AWAY, 4001);
    assert_null(sb_desk_pick(d, g1));
    sb_desk_set_status(d, "a1", SBP__AGENT_STATUS__AGENT_ONLINE, 4002);
    assert_string_equal(sb_desk_pick(d, g1), "a1");
    sb_desk_free(d);
}

static void test_queue_across_groups(void **state)
{
    (void)state;
    sb_desk *d = load();
    int g1 = sb_desk_group(d, "g1"), g2 = sb_desk_group(d, "g2");
    sb_desk_enqueue(d, 1, g2, 10);
    sb_desk_enqueue(d, 2, g1, 20);
    sb_desk_enqueue(d, 3, g2, 30);
    assert_int_equal(sb_desk_position(d, 3), 2);
    assert_int_equal(sb_desk_position(d, 2), 1);
    /* a1 is g1 only; a3 is in both and takes the longest waiting. */
    assert_int_equal(sb_desk_next_for(d, "a1"), 2);
    assert_int_equal(sb_desk_next_for(d, "a3"), 1);
    assert_int_equal(sb_desk_queued_group(d, 3), g2);
    uint64_t list[4];
    assert_int_equal(sb_desk_queue_list(d, g2, list, 4), 2);
    assert_int_equal(list[0], 1);
    assert_int_equal(list[1], 3);
    sb_desk_free(d);
}

static void test_bad_config(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "[]",
        "{\"desks\":[]}",
        "{\"desks\":[{\"groups\":[\"g\"]}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[]}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"],\"default_group\":\"x\"}]"
        "}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"]}],\"agents\":[{\"id\":"
        "\"a\",\"groups\":[\"nope\"]}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"]}],\"agents\":[{\"id\":"
        "\"a\",\"groups\":[\"g\"]},{\"id\":\"a\",\"groups\":[\"g\"]}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"],\"rules\":{\"en\":[{"
        "\"keywords\":[]}]}}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"],\"rules\":{\"en\":[{"
        "\"keywords\":[\"x\"]}]}}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"],\"bot\":7}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"],\"widget\":[]}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"],\"widget\":{"
        "\"color\":\"blue\"}}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"],\"widget\":{"
        "\"color\":\"#12345\"}}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"],\"widget\":{"
        "\"logo\":\"x\"}}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"],\"widget\":{"
        "\"title\":\"not per language\"}}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"]}],\"agents\":[{\"id\":"
        "\"a\",\"groups\":[\"g\"],\"avatar\":\"javascript:alert(1)\"}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"]}],\"agents\":[{\"id\":"
        "\"a\",\"groups\":[\"g\"],\"avatar\":\"https://x/a b.png\"}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"]}],\"agents\":[{\"id\":"
        "\"a\",\"groups\":[\"g\"],\"avatar\":\"//evil.example/a.png\"}]}",
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g\"]}],\"agents\":[{\"id\":"
        "\"a\",\"groups\":[\"g\"],\"avatar\":\"https://x/a.png\"},{\"id\":"
        "\"b\",\"groups\":[\"g\"],\"avatar\":\"/b.png\\\"><x\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sb_desk *d = NULL;
        char err[256] = "";
        assert_int_equal(
            sb_desk_parse(bad[i], strlen(bad[i]), &d, err, sizeof err),
            SB_E_INVALID);
        assert_null(d);
        assert_true(strlen(err) > 0);
    }
}

/* Two desks: the team of each (by their groups) and the widget's public
 * description, nothing but what the widget shows. */
static void test_teams_and_widget(void **state)
{
    (void)state;
    static const char TWO[] =
        "{\"desks\":[{\"id\":\"d\",\"name\":\"Acme\",\"groups\":[\"g1\","
        "\"g2\"],\"canned\":[{\"key\":\"k\",\"text\":\"secret canned\"}],"
        "\"widget\":{\"color\":\"#abc\",\"title\":{\"en\":\"Help\","
        "\"zh-CN\":\"\xe5\xb8\xae\xe5\x8a\xa9\"},\"reply_time\":{\"en\":"
        "\"soon\"}"
        "}},{\"id\":\"e\",\"groups\":[\"h\"]}],"
        "\"agents\":[{\"id\":\"b1\",\"groups\":[\"g2\"],\"avatar\":\"/"
        "b1.png\"},"
        "{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":4,"
        "\"avatar\":\"https://cdn.example.com/a1.png\"},"
        "{\"id\":\"x1\",\"groups\":[\"h\"],\"avatar\":\"/x1.png\"}]}";
    sb_desk *d = NULL;
    char err[256];
    if (sb_desk_parse(TWO, sizeof TWO - 1, &d, err, sizeof err))
        fail_msg("parse: %s", err);
    sb_desk_agent_info a1, b1, x1, at;
    assert_true(sb_desk_agent_find(d, "a1", &a1));
    assert_true(sb_desk_agent_find(d, "b1", &b1));
    assert_true(sb_desk_agent_find(d, "x1", &x1));
    assert_false(sb_desk_agent_find(d, "zz", &at));
    assert_int_equal(a1.capacity, 4);
    assert_string_equal(a1.avatar, "https://cdn.example.com/a1.png");
    assert_true(sb_desk_agent_at(d, 0, &at)); /* by id */
    assert_string_equal(at.id, "a1");
    assert_false(sb_desk_agent_at(d, 3, &at));
    assert_true(sb_desk_same_desk(d, a1.groups, b1.groups));
    assert_false(sb_desk_same_desk(d, a1.groups, x1.groups));
    assert_string_equal(sb_desk_of_agent(d, "b1")->id, "d");
    assert_string_equal(sb_desk_of_agent(d, "x1")->id, "e");
    assert_null(sb_desk_of_agent(d, "zz"));
    assert_true(sb_desk_agent_on(d, sb_desk_get(d, "d"), "a1"));
    assert_false(sb_desk_agent_on(d, sb_desk_get(d, "e"), "a1"));

    char *json = NULL;
    assert_int_equal(sb_desk_widget_json(d, "d", &json), 0);
    assert_string_equal(
        json,
        "{\"desk\":\"d\",\"name\":\"Acme\",\"color\":\"#abc\","
        "\"title\":{\"en\":\"Help\",\"zh-CN\":\"\xe5\xb8\xae\xe5\x8a\xa9\"},"
        "\"reply_time\":{\"en\":\"soon\"},\"greeting\":{},"
        "\"avatars\":[{\"agent\":\"a1\",\"url\":"
        "\"https://cdn.example.com/a1.png\"},{\"agent\":\"b1\",\"url\":"
        "\"/b1.png\"}]}");
    free(json);
    assert_int_equal(sb_desk_widget_json(d, "", &json), 0);
    assert_non_null(strstr(json, "\"desk\":\"d\""));
    free(json);
    assert_int_equal(sb_desk_widget_json(d, "e", &json), 0);
    assert_string_equal(
        json, "{\"desk\":\"e\",\"name\":\"e\",\"color\":\"\","
              "\"title\":{},\"reply_time\":{},\"greeting\":{},"
              "\"avatars\":[{\"agent\":\"x1\",\"url\":\"/x1.png\"}]}");
    free(json);
    assert_int_equal(sb_desk_widget_json(d, "zz", &json), SB_E_NOT_FOUND);
    assert_null(json);
    sb_desk_free(d);
}

static void test_shipped_demo_desk(void **state)
{
    (void)state;
    const char *dir = getenv("SB_SOURCE_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/conf/desk.json", dir ? dir : "..");
    sb_desk *d = NULL;
    char err[256];
    int rc = sb_desk_load(path, &d, err, sizeof err);
    if (rc) fail_msg("%s", err);
    const sb_desk_def *def = sb_desk_get(d, "support");
    assert_int_equal(def->n_canned, 3);
    const sb_desk_rule *r;
    assert_int_equal(sb_desk_bot(def, "zh-CN", "我要退款", &r), SB_BOT_ANSWER);
    assert_string_equal(def->widget.color, "#2563eb");
    assert_string_equal(sb_desk_text(&def->widget.title, "zh-CN"), "Acme 客服");
    sb_desk_agent_info a;
    assert_true(sb_desk_agent_find(d, "bob", &a));
    assert_string_equal(a.avatar, "/avatar-bob.svg");
    sb_desk_free(d);
}

/* A new configuration keeps statuses, loads and idle times by agent id
 * and the queue by group name, in order; what was queued for a group it
 * lacks comes back as orphans; a lower capacity stops new assignments
 * until the load is below it. */
static void test_adopt(void **state)
{
    (void)state;
    sb_desk *old = load();
    int g1 = sb_desk_group(old, "g1"), g2 = sb_desk_group(old, "g2");
    sb_desk_set_status(old, "a1", SBP__AGENT_STATUS__AGENT_ONLINE, 100);
    sb_desk_set_status(old, "a2", SBP__AGENT_STATUS__AGENT_AWAY, 200);
    sb_desk_set_status(old, "a3", SBP__AGENT_STATUS__AGENT_ONLINE, 300);
    sb_desk_add_load(old, "a1", +1, 400);
    sb_desk_add_load(old, "a1", +1, 401);
    sb_desk_add_load(old, "a3", +1, 402);
    sb_desk_enqueue(old, 11, g2, 10);
    sb_desk_enqueue(old, 12, g1, 20);
    sb_desk_enqueue(old, 13, g2, 30);
    sb_desk_enqueue(old, 14, g1, 40);

    /* g2 is gone, g0 is new (so group indexes move), a2 is gone, a4 is
     * new, a1's capacity drops to 1 and a3's grows to 4. */
    static const char NEW[] =
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g0\",\"g1\"],\"bot\":\"b1\"}],"
        "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":1},"
        "{\"id\":\"a3\",\"groups\":[\"g1\"],\"capacity\":4},"
        "{\"id\":\"a4\",\"groups\":[\"g0\",\"g1\"]}]}";
    sb_desk *d = NULL;
    char err[256];
    if (sb_desk_parse(NEW, sizeof NEW - 1, &d, err, sizeof err))
        fail_msg("parse: %s", err);
    assert_string_equal(sb_desk_get(d, "")->bot, "b1");
    uint64_t *orphans = NULL;
    size_t n = 0;
    assert_int_equal(sb_desk_adopt(d, old, &orphans, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(orphans[0], 11);
    assert_int_equal(orphans[1], 13);
    free(orphans);
    sb_desk_free(old);

    int n1 = sb_desk_group(d, "g1");
    assert_int_equal(n1, 1);
    assert_int_equal(sb_desk_queue_len(d), 2);
    assert_int_equal(sb_desk_queued_group(d, 12), n1);
    assert_int_equal(sb_desk_position(d, 14), 2);
    uint64_t list[4];
    assert_int_equal(sb_desk_queue_list(d, -1, list, 4), 2);
    assert_int_equal(list[0], 12);
    assert_int_equal(sb_desk_status(d, "a1"), SBP__AGENT_STATUS__AGENT_ONLINE);
    assert_int_equal(sb_desk_status(d, "a4"), SBP__AGENT_STATUS__AGENT_OFFLINE);
    assert_false(sb_desk_is_agent(d, "a2"));
    uint32_t cap, ld;
    sb_desk_agent_load(d, "a1", &cap, &ld);
    assert_int_equal(cap, 1);
    assert_int_equal(ld, 2);
    sb_desk_agent_load(d, "a3", &cap, &ld);
    assert_int_equal(cap, 4);
    assert_int_equal(ld, 1);
    /* a1 is over its new capacity: a3 gets the next ones. */
    assert_string_equal(sb_desk_pick(d, n1), "a3");
    sb_desk_add_load(d, "a3", +3, 500);
    assert_null(sb_desk_pick(d, n1));
    sb_desk_add_load(d, "a1", -1, 600);
    assert_null(sb_desk_pick(d, n1)); /* load 1 of capacity 1 */
    sb_desk_add_load(d, "a1", -1, 700);
    assert_string_equal(sb_desk_pick(d, n1), "a1");
    /* Nothing to take over: nothing changes. */
    sb_desk *fresh = load();
    assert_int_equal(sb_desk_adopt(fresh, NULL, &orphans, &n), 0);
    assert_int_equal(n, 0);
    free(orphans);
    sb_desk_free(fresh);
    sb_desk_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_texts_and_bot),
        cmocka_unit_test(test_capacity_and_queue),
        cmocka_unit_test(test_queue_across_groups),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_teams_and_widget),
        cmocka_unit_test(test_shipped_demo_desk),
        cmocka_unit_test(test_adopt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
