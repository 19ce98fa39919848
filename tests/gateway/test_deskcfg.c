/* The desk configuration as a document: each admin edit gives a document
 * that parses and says what it did; refused edits (bad arguments, a
 * broken document, a group still needed) give a reason and nothing else;
 * the file hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_deskcfg.h"
#include "sb_error.h"

static const char DOC[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\",\"g2\"],"
    "\"greeting\":{\"en\":\"Hi\"},"
    "\"canned\":[{\"key\":\"hi\",\"title\":\"Hi\",\"text\":\"Hello!\"}]},"
    "{\"id\":\"e\",\"groups\":[\"g3\"]}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a2\",\"groups\":[\"g1\",\"g2\"]},"
    "{\"id\":\"a3\",\"groups\":[\"g2\"]}]}";

/* The document in force for the test: edits chain on it. */
static char *cur;
static size_t cur_len;
static char msg[SB_DESKCFG_MSG_BYTES];

static int setup(void **state)
{
    (void)state;
    cur = strdup(DOC);
    cur_len = strlen(DOC);
    return cur ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(cur);
    cur = NULL;
    return 0;
}

/* Applies op with arg to the current document; on success the result
 * becomes current and the parsed desk is returned (caller frees). */
static sb_desk *edit(const char *op, const char *arg, int want)
{
    char *out = NULL;
    size_t n = 0;
    sb_desk *d = NULL;
    int rc = sb_deskcfg_apply(cur, cur_len, op, arg, arg ? strlen(arg) : 0,
                              &out, &n, &d, msg, sizeof msg);
    if (rc != want)
        fail_msg("%s %s: rc %d, want %d: %s", op, arg ? arg : "", rc, want,
                 msg);
    assert_true(msg[0] != '\0');
    if (rc) {
        assert_null(out);
        assert_null(d);
        return NULL;
    }
    assert_non_null(d);
    assert_int_equal(strlen(out), n);
    free(cur);
    cur = out;
    cur_len = n;
    return d;
}

static void test_agents(void **state)
{
    (void)state;
    sb_desk *d = edit("agent-set", "{\"id\":\"a1\",\"capacity\":5}", 0);
    assert_non_null(strstr(msg, "agent a1 updated: groups g1, capacity 5"));
    uint32_t cap, load;
    sb_desk_agent_load(d, "a1", &cap, &load);
    assert_int_equal(cap, 5);
    sb_desk_free(d);
    d = edit("agent-set", "{\"id\":\"a4\",\"groups\":[\"g2\",\"g3\"]}", 0);
    assert_true(sb_desk_is_agent(d, "a4"));
    assert_true(sb_desk_in_group(d, "a4", sb_desk_group(d, "g3")));
    assert_non_null(strstr(msg, "(2 desks, 3 groups, 4 agents)"));
    sb_desk_free(d);
    d = edit("agent-set", "{\"id\":\"a4\",\"groups\":[\"g1\"]}", 0);
    assert_false(sb_desk_in_group(d, "a4", sb_desk_group(d, "g3")));
    sb_desk_free(d);
    /* Refusals name the problem. */
    edit("agent-set", "{\"id\":\"a5\"}", SB_E_INVALID);
    assert_non_null(strstr(msg, "groups"));
    edit("agent-set", "{\"id\":\"a5\",\"groups\":[\"nope\"]}", SB_E_INVALID);
    assert_non_null(strstr(msg, "unknown group"));
    edit("agent-set", "{\"id\":\"a1\",\"capacity\":0}", SB_E_INVALID);
    edit("agent-set", "{\"capacity\":2}", SB_E_INVALID);
    edit("agent-set", "[1]", SB_E_INVALID);
    edit("agent-set", "{\"id\":", SB_E_INVALID);
    edit("agent-rm", "{\"id\":\"zz\"}", SB_E_NOT_FOUND);
    d = edit("agent-rm", "{\"id\":\"a4\"}", 0);
    assert_false(sb_desk_is_agent(d, "a4"));
    sb_desk_free(d);
}

static void test_groups(void **state)
{
    (void)state;
    sb_desk *d = edit("group-add", "{\"name\":\"g9\",\"desk\":\"e\"}", 0);
    assert_true(sb_desk_group(d, "g9") >= 0);
    sb_desk_free(d);
    edit("group-add", "{\"name\":\"g9\",\"desk\":\"e\"}", SB_E_INVALID);
    edit("group-add", "{\"name\":\"g9\",\"desk\":\"nope\"}", SB_E_NOT_FOUND);
    /* The default group stays; a3 has no other group than g2. */
    edit("group-rm", "{\"name\":\"g1\"}", SB_E_INVALID);
    assert_non_null(strstr(msg, "default group"));
    edit("group-rm", "{\"name\":\"g2\"}", SB_E_INVALID);
    assert_non_null(strstr(msg, "agent a3"));
    sb_desk_free(
        edit("agent-set", "{\"id\":\"a3\",\"groups\":[\"g1\",\"g2\"]}", 0));
    d = edit("group-rm", "{\"name\":\"g2\"}", 0);
    assert_int_equal(sb_desk_group(d, "g2"), -1);
    assert_true(sb_desk_in_group(d, "a2", sb_desk_group(d, "g1")));
    sb_desk_free(d);
    edit("group-rm", "{\"name\":\"g2\"}", SB_E_NOT_FOUND);
}

static void test_canned_texts_bot(void **state)
{
    (void)state;
    sb_desk *d =
        edit("canned-add",
             "{\"key\":\"bye\",\"title\":\"Bye\",\"text\":\"See you\"}", 0);
    assert_int_equal(sb_desk_get(d, "d")->n_canned, 2);
    sb_desk_free(d);
    d = edit("canned-add", "{\"key\":\"bye\",\"text\":\"Later\"}", 0);
    const sb_desk_def *def = sb_desk_get(d, "d");
    assert_int_equal(def->n_canned, 2);
    assert_string_equal(def->canned[1].text, "Later");
    assert_string_equal(def->canned[1].title, "bye");
    sb_desk_free(d);
    d = edit("canned-rm", "{\"key\":\"hi\"}", 0);
    assert_int_equal(sb_desk_get(d, "d")->n_canned, 1);
    sb_desk_free(d);
    edit("canned-rm", "{\"key\":\"hi\"}", SB_E_NOT_FOUND);
    edit("canned-add", "{\"key\":\"x\"}", SB_E_INVALID);

    d = edit("text",
             "{\"kind\":\"out_of_hours\",\"lang\":\"zh-CN\",\"text\":\"\xe4\xb8"
             "\x8b\xe7\x8f\xad\"}",
             0);
    assert_string_equal(
        sb_desk_text(&sb_desk_get(d, "d")->out_of_hours, "zh-CN"),
        "\xe4\xb8\x8b\xe7\x8f\xad");
    sb_desk_free(d);
    d = edit("text",
             "{\"kind\":\"greeting\",\"lang\":\"en\",\"text\":\"Yo\","
             "\"desk\":\"e\"}",
             0);
    assert_string_equal(sb_desk_text(&sb_desk_get(d, "e")->greeting, "en"),
                        "Yo");
    assert_string_equal(sb_desk_text(&sb_desk_get(d, "d")->greeting, "en"),
                        "Hi");
    sb_desk_free(d);
    d = edit("text", "{\"kind\":\"greeting\",\"lang\":\"en\",\"text\":\"\"}",
             0);
    assert_string_equal(sb_desk_text(&sb_desk_get(d, "d")->greeting, "en"), "");
    sb_desk_free(d);
    edit("text", "{\"kind\":\"motd\",\"lang\":\"en\",\"text\":\"x\"}",
         SB_E_INVALID);

    d = edit("bot", "{\"user\":\"helper\"}", 0);
    assert_string_equal(sb_desk_get(d, "d")->bot, "helper");
    assert_string_equal(sb_desk_get(d, "e")->bot, "");
    sb_desk_free(d);
    d = edit("bot", "{\"user\":\"\"}", 0);
    assert_string_equal(sb_desk_get(d, "d")->bot, "");
    sb_desk_free(d);
}

/* The chat widget's look and the agents' pictures. */
static void test_widget_avatar(void **state)
{
    (void)state;
    sb_desk *d = edit("widget", "{\"color\":\"#123456\"}", 0);
    assert_string_equal(sb_desk_get(d, "d")->widget.color, "#123456");
    sb_desk_free(d);
    d = edit("widget",
             "{\"kind\":\"title\",\"lang\":\"en\",\"text\":\"Help\","
             "\"desk\":\"e\"}",
             0);
    assert_string_equal(sb_desk_text(&sb_desk_get(d, "e")->widget.title, "en"),
                        "Help");
    assert_string_equal(sb_desk_get(d, "e")->widget.color, "");
    sb_desk_free(d);
    d = edit("widget",
             "{\"color\":\"\",\"kind\":\"reply_time\",\"lang\":\"en\","
             "\"text\":\"soon\"}",
             0);
    assert_string_equal(sb_desk_get(d, "d")->widget.color, "");
    assert_string_equal(
        sb_desk_text(&sb_desk_get(d, "d")->widget.reply_time, "en"), "soon");
    sb_desk_free(d);
    d = edit("widget",
             "{\"kind\":\"reply_time\",\"lang\":\"en\",\"text\":\"\"}", 0);
    assert_int_equal(sb_desk_get(d, "d")->widget.reply_time.n, 0);
    sb_desk_free(d);
    edit("widget", "{}", SB_E_INVALID);
    edit("widget", "{\"color\":\"red\"}", SB_E_INVALID);
    edit("widget", "{\"kind\":\"logo\",\"lang\":\"en\",\"text\":\"x\"}",
         SB_E_INVALID);
    edit("widget", "{\"kind\":\"title\",\"text\":\"x\"}", SB_E_INVALID);
    edit("widget", "{\"color\":\"#fff\",\"desk\":\"zz\"}", SB_E_NOT_FOUND);

    d = edit("avatar", "{\"id\":\"a2\",\"url\":\"/pics/a2.png\"}", 0);
    sb_desk_agent_info a;
    assert_true(sb_desk_agent_find(d, "a2", &a));
    assert_string_equal(a.avatar, "/pics/a2.png");
    sb_desk_free(d);
    d = edit("avatar", "{\"id\":\"a2\",\"url\":\"\"}", 0);
    assert_true(sb_desk_agent_find(d, "a2", &a));
    assert_string_equal(a.avatar, "");
    sb_desk_free(d);
    edit("avatar", "{\"id\":\"a2\",\"url\":\"data:x\"}", SB_E_INVALID);
    edit("avatar", "{\"id\":\"zz\",\"url\":\"/x.png\"}", SB_E_NOT_FOUND);
    edit("avatar", "{\"url\":\"/x.png\"}", SB_E_INVALID);
}

static void test_set_and_refusals(void **state)
{
    (void)state;
    static const char NEW[] =
        "{\"desks\":[{\"id\":\"n\",\"groups\":[\"x\"]}],\"agents\":[]}";
    sb_desk *d = edit("set", NEW, 0);
    assert_string_equal(cur, NEW); /* kept as written */
    assert_non_null(sb_desk_get(d, "n"));
    sb_desk_free(d);
    edit("set", "{\"desks\":[]}", SB_E_INVALID);
    assert_non_null(strstr(msg, "configuration in force stays"));
    edit("set", "{not json", SB_E_INVALID);
    edit("frobnicate", "{}", SB_E_INVALID);
    assert_string_equal(cur, NEW);

    /* Without a document only set applies. */
    char *out = NULL;
    size_t n = 0;
    assert_int_equal(sb_deskcfg_apply(NULL, 0, "agent-rm", "{\"id\":\"a\"}", 12,
                                      &out, &n, &d, msg, sizeof msg),
                     SB_E_NOT_FOUND);
    assert_int_equal(sb_deskcfg_apply(NULL, 0, "set", NEW, sizeof NEW - 1, &out,
                                      &n, &d, msg, sizeof msg),
                     0);
    free(out);
    sb_desk_free(d);
}

static void test_hash(void **state)
{
    (void)state;
    char h[SB_DESKCFG_HASH_HEX + 1], h2[SB_DESKCFG_HASH_HEX + 1];
    sb_deskcfg_hash("abc", 3, h);
    assert_string_equal(
        h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sb_deskcfg_hash("abd", 3, h2);
    assert_string_not_equal(h, h2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canned_texts_bot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_widget_avatar, setup, teardown),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
