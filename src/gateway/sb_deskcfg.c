/* The desk configuration as a document: an admin's edit is made on the
 * JSON tree (jansson), the tree is written out, and the text must pass
 * sb_desk_parse, the one validator of desk documents, before it counts. */
#include "sb_deskcfg.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"

#define LANG_BYTES_MAX 15
#define KEY_BYTES_MAX 64 /* a canned reply's key */

static int say(char *msg, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int say(char *msg, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (msg && len) vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return rc;
}

/* A string member of arg of 1..max bytes (0..max when empty_ok), or NULL
 * with msg set. */
static const char *arg_str(const json_t *arg, const char *name, size_t max,
                           bool empty_ok, char *msg, size_t mlen)
{
    const json_t *v = json_object_get(arg, name);
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    if (!s || (n == 0 && !empty_ok) || n > max || strlen(s) != n) {
        say(msg, mlen, SB_E_INVALID, "\"%s\": want a text of %s..%zu bytes",
            name, empty_ok ? "0" : "1", max);
        return NULL;
    }
    return s;
}

/* The desk named by arg's optional "desk" (the first one without it)
 * into *out and its id into *id (NULL if it has none); SB_E_NOT_FOUND or
 * SB_E_INVALID with msg set. */
static int desk_of(json_t *root, const json_t *arg, json_t **out,
                   const char **id_out, char *msg, size_t mlen)
{
    json_t *desks = json_object_get(root, "desks");
    const json_t *want = json_object_get(arg, "desk");
    if (want && !json_is_string(want))
        return say(msg, mlen, SB_E_INVALID, "\"desk\": want a desk id");
    size_t i;
    json_t *d;
    json_array_foreach(desks, i, d)
    {
        const char *id = json_string_value(json_object_get(d, "id"));
        if (json_is_object(d) &&
            (!want || (id && strcmp(id, json_string_value(want)) == 0))) {
            *out = d;
            *id_out = id;
            return 0;
        }
    }
    return say(msg, mlen, SB_E_NOT_FOUND, "no desk %s",
               want ? json_string_value(want) : "at all");
}

/* The index in array of the object whose member field is value, -1. */
static long find_by(const json_t *array, const char *field, const char *value)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v)
    {
        const char *s = json_string_value(json_object_get(v, field));
        if (s && strcmp(s, value) == 0) return (long)i;
    }
    return -1;
}

/* The index of the string value in array, -1. */
static long find_str(const json_t *array, const char *value)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v)
    {
        const char *s = json_string_value(v);
        if (s && strcmp(s, value) == 0) return (long)i;
    }
    return -1;
}

/* The array member name of obj, made (empty) if missing; NULL if the
 * member is there and not an array. */
static json_t *array_member(json_t *obj, const char *name)
{
    json_t *a = json_object_get(obj, name);
    if (a) return json_is_array(a) ? a : NULL;
    a = json_array();
    if (!a || json_object_set_new(obj, name, a) != 0) return NULL;
    return a;
}

/* "a,b" of an agent's groups, for the message. */
static void join_groups(const json_t *groups, char *out, size_t cap)
{
    size_t used = 0, i;
    json_t *g;
    out[0] = '\0';
    json_array_foreach(groups, i, g)
    {
        int n = snprintf(out + used, cap - used, "%s%s", i ? "," : "",
                         json_string_value(g) ? json_string_value(g) : "?");
        if (n < 0 || (size_t)n >= cap - used) break;
        used += (size_t)n;
    }
}

static int op_agent_set(json_t *root, const json_t *arg, char *msg, size_t mlen)
{
    const char *id = arg_str(arg, "id", SB_ID_BYTES_MAX, false, msg, mlen);
    if (!id) return SB_E_INVALID;
    json_t *groups = json_object_get(arg, "groups");
    json_t *cap = json_object_get(arg, "capacity");
    if (groups && (!json_is_array(groups) || json_array_size(groups) == 0))
        return say(msg, mlen, SB_E_INVALID,
                   "\"groups\": want a non-empty array of group names");
    if (cap && (!json_is_integer(cap) || json_integer_value(cap) < 1 ||
                json_integer_value(cap) > SB_DESKCFG_CAPACITY_MAX))
        return say(msg, mlen, SB_E_INVALID, "\"capacity\": want 1..%d",
                   SB_DESKCFG_CAPACITY_MAX);
    json_t *agents = array_member(root, "agents");
    if (!agents) return say(msg, mlen, SB_E_INVALID, "agents: not an array");
    long i = find_by(agents, "id", id);
    json_t *a;
    bool added = i < 0;
    if (added) {
        if (!groups)
            return say(msg, mlen, SB_E_INVALID,
                       "agent %s is new: \"groups\" is required", id);
        a = json_pack("{s:s}", "id", id);
        if (!a || json_array_append_new(agents, a) != 0) return -ENOMEM;
    } else {
        a = json_array_get(agents, (size_t)i);
        if (!json_is_object(a))
            return say(msg, mlen, SB_E_INVALID, "agents[%ld]: not an object",
                       i);
    }
    if (groups && json_object_set(a, "groups", groups) != 0) return -ENOMEM;
    if (cap && json_object_set(a, "capacity", cap) != 0) return -ENOMEM;
    char gs[256];
    join_groups(json_object_get(a, "groups"), gs, sizeof gs);
    json_t *c = json_object_get(a, "capacity");
    char cs[32] = "default";
    if (json_is_integer(c))
        snprintf(cs, sizeof cs, "%lld", (long long)json_integer_value(c));
    return say(msg, mlen, 0, "agent %s %s: groups %s, capacity %s", id,
               added ? "added" : "updated", gs, cs);
}

static int op_agent_rm(json_t *root, const json_t *arg, char *msg, size_t mlen)
{
    const char *id = arg_str(arg, "id", SB_ID_BYTES_MAX, false, msg, mlen);
    if (!id) return SB_E_INVALID;
    json_t *agents = json_object_get(root, "agents");
    long i = find_by(agents, "id", id);
    if (i < 0) return say(msg, mlen, SB_E_NOT_FOUND, "no agent %s", id);
    json_array_remove(agents, (size_t)i);
    return say(msg, mlen, 0, "agent %s removed", id);
}

/* Whether any desk but skip lists group name. */
static bool group_elsewhere(json_t *root, const json_t *skip, const char *name)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(root, "desks"), i, d)
    {
        if (d != skip && find_str(json_object_get(d, "groups"), name) >= 0)
            return true;
    }
    return false;
}

static int op_group_add(json_t *root, const json_t *arg, char *msg, size_t mlen)
{
    const char *name = arg_str(arg, "name", SB_ID_BYTES_MAX, false, msg, mlen);
    if (!name) return SB_E_INVALID;
    json_t *desk;
    const char *did;
    int rc = desk_of(root, arg, &desk, &did, msg, mlen);
    if (rc) return rc;
    json_t *groups = array_member(desk, "groups");
    if (!groups) return say(msg, mlen, SB_E_INVALID, "groups: not an array");
    if (find_str(groups, name) >= 0)
        return say(msg, mlen, SB_E_INVALID, "desk %s has group %s already", did,
                   name);
    if (json_array_append_new(groups, json_string(name)) != 0) return -ENOMEM;
    return say(msg, mlen, 0, "group %s added to desk %s", name, did);
}

static int op_group_rm(json_t *root, const json_t *arg, char *msg, size_t mlen)
{
    const char *name = arg_str(arg, "name", SB_ID_BYTES_MAX, false, msg, mlen);
    if (!name) return SB_E_INVALID;
    json_t *desk;
    const char *did;
    int rc = desk_of(root, arg, &desk, &did, msg, mlen);
    if (rc) return rc;
    json_t *groups = json_object_get(desk, "groups");
    long gi = find_str(groups, name);
    if (gi < 0)
        return say(msg, mlen, SB_E_NOT_FOUND, "desk %s has no group %s", did,
                   name);
    const char *dg = json_string_value(json_object_get(desk, "default_group"));
    if (dg ? strcmp(dg, name) == 0 : gi == 0)
        return say(msg, mlen, SB_E_INVALID,
                   "group %s is desk %s's default group (set another "
                   "\"default_group\" with desk-set first)",
                   name, did);
    json_array_remove(groups, (size_t)gi);
    if (group_elsewhere(root, desk, name))
        return say(msg, mlen, 0, "group %s removed from desk %s", name, did);
    /* The group is gone: the agents leave it, and none may be left with
     * no group at all. */
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(root, "agents"), i, a)
    {
        json_t *ag = json_object_get(a, "groups");
        long k = find_str(ag, name);
        if (k < 0) continue;
        if (json_array_size(ag) == 1)
            return say(msg, mlen, SB_E_INVALID,
                       "agent %s would be left without a group: give it "
                       "another first",
                       json_string_value(json_object_get(a, "id")));
        json_array_remove(ag, (size_t)k);
    }
    json_t *hours = json_object_get(root, "hours");
    if (json_is_object(hours)) json_object_del(hours, name);
    return say(msg, mlen, 0, "group %s removed from desk %s and its agents",
               name, did);
}

static int op_canned_add(json_t *root, const json_t *arg, char *msg,
                         size_t mlen)
{
    const char *key = arg_str(arg, "key", KEY_BYTES_MAX, false, msg, mlen);
    const char *text =
        key ? arg_str(arg, "text", SB_DESK_FILE_BYTES_MAX, false, msg, mlen)
            : NULL;
    if (!key || !text) return SB_E_INVALID;
    const json_t *t = json_object_get(arg, "title");
    const char *title =
        t ? arg_str(arg, "title", SB_DESK_FILE_BYTES_MAX, false, msg, mlen)
          : key;
    if (!title) return SB_E_INVALID;
    json_t *desk;
    const char *did;
    int rc = desk_of(root, arg, &desk, &did, msg, mlen);
    if (rc) return rc;
    json_t *canned = array_member(desk, "canned");
    if (!canned) return say(msg, mlen, SB_E_INVALID, "canned: not an array");
    json_t *c =
        json_pack("{s:s, s:s, s:s}", "key", key, "title", title, "text", text);
    if (!c) return -ENOMEM;
    long i = find_by(canned, "key", key);
    if ((i < 0 ? json_array_append_new(canned, c)
               : json_array_set_new(canned, (size_t)i, c)) != 0)
        return -ENOMEM;
    return say(msg, mlen, 0, "canned reply %s %s in desk %s", key,
               i < 0 ? "added" : "replaced", did);
}

static int op_canned_rm(json_t *root, const json_t *arg, char *msg, size_t mlen)
{
    const char *key = arg_str(arg, "key", KEY_BYTES_MAX, false, msg, mlen);
    if (!key) return SB_E_INVALID;
    json_t *desk;
    const char *did;
    int rc = desk_of(root, arg, &desk, &did, msg, mlen);
    if (rc) return rc;
    json_t *canned = json_object_get(desk, "canned");
    long i = find_by(canned, "key", key);
    if (i < 0)
        return say(msg, mlen, SB_E_NOT_FOUND, "desk %s has no canned reply %s",
                   did, key);
    json_array_remove(canned, (size_t)i);
    return say(msg, mlen, 0, "canned reply %s removed from desk %s", key, did);
}

static int op_text(json_t *root, const json_t *arg, char *msg, size_t mlen)
{
    static const char *const KINDS[] = {"greeting", "out_of_hours", "fallback"};
    const char *kind = arg_str(arg, "kind", 32, false, msg, mlen);
    if (!kind) return SB_E_INVALID;
    size_t k = 0;
    while (k < 3 && strcmp(kind, KINDS[k]) != 0)
        k++;
    if (k == 3)
        return say(msg, mlen, SB_E_INVALID,
                   "\"kind\": greeting, out_of_hours or fallback");
    const char *lang = arg_str(arg, "lang", LANG_BYTES_MAX, false, msg, mlen);
    const char *text =
        lang ? arg_str(arg, "text", SB_DESK_FILE_BYTES_MAX, true, msg, mlen)
             : NULL;
    if (!lang || !text) return SB_E_INVALID;
    json_t *desk;
    const char *did;
    int rc = desk_of(root, arg, &desk, &did, msg, mlen);
    if (rc) return rc;
    json_t *set = json_object_get(desk, kind);
    if (!set) {
        set = json_object();
        if (!set || json_object_set_new(desk, kind, set) != 0) return -ENOMEM;
    }
    if (!json_is_object(set))
        return say(msg, mlen, SB_E_INVALID, "desk %s: %s: not an object", did,
                   kind);
    if (!text[0]) {
        if (json_object_del(set, lang) != 0)
            return say(msg, mlen, SB_E_NOT_FOUND, "desk %s has no %s in %s",
                       did, kind, lang);
        return say(msg, mlen, 0, "%s in %s removed from desk %s", kind, lang,
                   did);
    }
    if (json_object_set_new(set, lang, json_string(text)) != 0) return -ENOMEM;
    return say(msg, mlen, 0, "%s in %s set for desk %s", kind, lang, did);
}

static int op_bot(json_t *root, const json_t *arg, char *msg, size_t mlen)
{
    const char *user = arg_str(arg, "user", SB_ID_BYTES_MAX, true, msg, mlen);
    if (!user) return SB_E_INVALID;
    json_t *desk;
    const char *did;
    int rc = desk_of(root, arg, &desk, &did, msg, mlen);
    if (rc) return rc;
    if (!user[0]) {
        json_object_del(desk, "bot");
        return say(msg, mlen, 0, "desk %s has no external bot", did);
    }
    if (json_object_set_new(desk, "bot", json_string(user)) != 0)
        return -ENOMEM;
    return say(msg, mlen, 0, "desk %s's external bot is %s", did, user);
}

/* The object member name of obj, made (empty) if missing; NULL if the
 * member is there and not an object. */
static json_t *object_member(json_t *obj, const char *name)
{
    json_t *o = json_object_get(obj, name);
    if (o) return json_is_object(o) ? o : NULL;
    o = json_object();
    if (!o || json_object_set_new(obj, name, o) != 0) return NULL;
    return o;
}

static int op_widget(json_t *root, const json_t *arg, char *msg, size_t mlen)
{
    static const char *const KINDS[] = {"title", "reply_time", "greeting"};
    const json_t *c = json_object_get(arg, "color");
    const json_t *kind_j = json_object_get(arg, "kind");
    if (!c && !kind_j)
        return say(msg, mlen, SB_E_INVALID,
                   "want \"color\", or \"kind\" (title, reply_time, "
                   "greeting) with \"lang\" and \"text\"");
    const char *color = c ? arg_str(arg, "color", 7, true, msg, mlen) : NULL;
    if (c && !color) return SB_E_INVALID;
    const char *kind = NULL, *lang = NULL, *text = NULL;
    if (kind_j) {
        if (!(kind = arg_str(arg, "kind", 32, false, msg, mlen)))
            return SB_E_INVALID;
        size_t k = 0;
        while (k < 3 && strcmp(kind, KINDS[k]) != 0)
            k++;
        if (k == 3)
            return say(msg, mlen, SB_E_INVALID,
                       "\"kind\": title, reply_time or greeting");
        lang = arg_str(arg, "lang", LANG_BYTES_MAX, false, msg, mlen);
        text =
            lang ? arg_str(arg, "text", SB_DESK_FILE_BYTES_MAX, true, msg, mlen)
                 : NULL;
        if (!lang || !text) return SB_E_INVALID;
    }
    json_t *desk;
    const char *did;
    int rc = desk_of(root, arg, &desk, &did, msg, mlen);
    if (rc) return rc;
    json_t *w = object_member(desk, "widget");
    if (!w)
        return say(msg, mlen, SB_E_INVALID, "desk %s: widget: not an object",
                   did);
    if (color && !color[0]) json_object_del(w, "color");
    if (color && color[0] &&
        json_object_set_new(w, "color", json_string(color)) != 0)
        return -ENOMEM;
    if (kind) {
        json_t *set = object_member(w, kind);
        if (!set)
            return say(msg, mlen, SB_E_INVALID,
                       "desk %s: widget.%s: not an object", did, kind);
        if (!text[0])
            json_object_del(set, lang);
        else if (json_object_set_new(set, lang, json_string(text)) != 0)
            return -ENOMEM;
    }
    return say(msg, mlen, 0, "desk %s's widget: %s%s%s%s%s%s", did,
               color ? "color " : "", color ? (color[0] ? color : "none") : "",
               color && kind ? ", " : "", kind ? kind : "", kind ? " in " : "",
               kind ? lang : "");
}

static int op_avatar(json_t *root, const json_t *arg, char *msg, size_t mlen)
{
    const char *id = arg_str(arg, "id", SB_ID_BYTES_MAX, false, msg, mlen);
    const char *url =
        id ? arg_str(arg, "url", SB_DESK_URL_BYTES_MAX, true, msg, mlen) : NULL;
    if (!id || !url) return SB_E_INVALID;
    json_t *agents = json_object_get(root, "agents");
    long i = find_by(agents, "id", id);
    json_t *a = i < 0 ? NULL : json_array_get(agents, (size_t)i);
    if (!json_is_object(a))
        return say(msg, mlen, SB_E_NOT_FOUND, "no agent %s", id);
    if (!url[0]) {
        json_object_del(a, "avatar");
        return say(msg, mlen, 0, "agent %s has no picture", id);
    }
    if (json_object_set_new(a, "avatar", json_string(url)) != 0) return -ENOMEM;
    return say(msg, mlen, 0, "agent %s's picture is %s", id, url);
}

/* The key the site signs its customers' ids with: {"secret", "desk"};
 * "" removes it (the desk takes no signed identity). Its length is
 * checked by sb_desk_parse with the whole document. */
static int op_identity(json_t *root, const json_t *arg, char *msg, size_t mlen)
{
    const char *secret =
        arg_str(arg, "secret", SB_DESK_SECRET_BYTES_MAX, true, msg, mlen);
    if (!secret) return SB_E_INVALID;
    json_t *desk;
    const char *did;
    int rc = desk_of(root, arg, &desk, &did, msg, mlen);
    if (rc) return rc;
    if (!secret[0]) {
        json_object_del(desk, "identity_secret");
        return say(msg, mlen, 0, "desk %s takes no signed identity", did);
    }
    if (json_object_set_new(desk, "identity_secret", json_string(secret)) != 0)
        return -ENOMEM;
    return say(msg, mlen, 0, "desk %s's identity secret set", did);
}

/* A group's business hours: {"group", "hours": {tz, week, holidays}};
 * "hours" null or missing removes them (the group is always open). The
 * hours themselves are checked by sb_desk_parse with the whole document. */
static int op_hours(json_t *root, const json_t *arg, char *msg, size_t mlen)
{
    const char *group =
        arg_str(arg, "group", SB_ID_BYTES_MAX, false, msg, mlen);
    if (!group) return SB_E_INVALID;
    bool known = false;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(root, "desks"), i, d)
    {
        if (find_str(json_object_get(d, "groups"), group) >= 0) known = true;
    }
    if (!known) return say(msg, mlen, SB_E_NOT_FOUND, "no group %s", group);
    json_t *h = json_object_get(arg, "hours");
    json_t *all = json_object_get(root, "hours");
    if (all && !json_is_object(all))
        return say(msg, mlen, SB_E_INVALID, "hours: not an object");
    if (!h || json_is_null(h)) {
        if (!all || json_object_del(all, group) != 0)
            return say(msg, mlen, SB_E_NOT_FOUND, "group %s has no hours",
                       group);
        return say(msg, mlen, 0, "group %s has no hours: always open", group);
    }
    if (!json_is_object(h))
        return say(msg, mlen, SB_E_INVALID,
                   "\"hours\": want {\"tz\", \"week\", \"holidays\"}");
    if (!all) {
        all = json_object();
        if (!all || json_object_set_new(root, "hours", all) != 0)
            return -ENOMEM;
    }
    if (json_object_set(all, group, h) != 0) return -ENOMEM;
    const char *tz = json_string_value(json_object_get(h, "tz"));
    return say(msg, mlen, 0, "hours of group %s set (%s)", group,
               tz ? tz : "no tz");
}

typedef int (*edit_fn)(json_t *root, const json_t *arg, char *msg, size_t mlen);

static const struct {
    const char *op;
    edit_fn fn;
} EDITS[] = {
    {"agent-set", op_agent_set},
    {"agent-rm", op_agent_rm},
    {"group-add", op_group_add},
    {"group-rm", op_group_rm},
    {"canned-add", op_canned_add},
    {"canned-rm", op_canned_rm},
    {"text", op_text},
    {"bot", op_bot},
    {"widget", op_widget},
    {"avatar", op_avatar},
    {"hours", op_hours},
    {"identity", op_identity},
};

/* " (1 desk, 2 groups, 3 agents)" of a parsed configuration. */
static void counts(const sb_desk *d, char *out, size_t cap)
{
    size_t desks, groups, agents;
    sb_desk_counts(d, &desks, &groups, &agents);
    snprintf(out, cap, " (%zu desk%s, %zu group%s, %zu agent%s)", desks,
             desks == 1 ? "" : "s", groups, groups == 1 ? "" : "s", agents,
             agents == 1 ? "" : "s");
}

int sb_deskcfg_apply(const char *doc, size_t len, const char *op,
                     const char *arg, size_t arg_len, char **out_doc,
                     size_t *out_len, sb_desk **out_desk, char *msg,
                     size_t msg_len)
{
    assert(op && out_doc && out_len && out_desk);
    assert(arg || arg_len == 0);
    *out_doc = NULL;
    *out_len = 0;
    *out_desk = NULL;
    char done[SB_DESKCFG_MSG_BYTES] = "";
    char why[SB_DESKCFG_MSG_BYTES] = "";
    char *text = NULL;
    size_t n = 0;
    json_t *root = NULL, *args = NULL;
    int rc;

    if (arg_len > SB_DESK_FILE_BYTES_MAX)
        return say(msg, msg_len, SB_E_TOO_LARGE, "over %u bytes",
                   SB_DESK_FILE_BYTES_MAX);
    if (strcmp(op, "set") == 0) {
        if (!(text = malloc(arg_len + 1))) return -ENOMEM;
        memcpy(text, arg, arg_len);
        text[arg_len] = '\0';
        n = arg_len;
        snprintf(done, sizeof done, "desk configuration replaced");
    } else {
        size_t k = 0;
        while (k < sizeof EDITS / sizeof *EDITS && strcmp(op, EDITS[k].op))
            k++;
        if (k == sizeof EDITS / sizeof *EDITS)
            return say(msg, msg_len, SB_E_INVALID, "unknown op desk-%s", op);
        if (!doc)
            return say(msg, msg_len, SB_E_NOT_FOUND,
                       "no desk configuration yet: desk-set one first");
        json_error_t je;
        args = json_loadb(arg_len ? arg : "{}", arg_len ? arg_len : 2,
                          JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(args)) {
            rc = say(msg, msg_len, SB_E_INVALID,
                     "arguments: want a JSON object (%s)",
                     args ? "not an object" : je.text);
            goto out;
        }
        root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(root) ||
            !json_is_array(json_object_get(root, "desks"))) {
            rc = say(msg, msg_len, SB_E_INVALID,
                     "the desk configuration in force is not a document");
            goto out;
        }
        if ((rc = EDITS[k].fn(root, args, done, sizeof done))) {
            if (rc == -ENOMEM) goto out;
            say(msg, msg_len, rc, "%s", done);
            goto out;
        }
        rc = -ENOMEM;
        if (!(text = json_dumps(root, JSON_INDENT(2)))) goto out;
        n = strlen(text);
    }
    if (n > SB_DESK_FILE_BYTES_MAX) {
        rc = say(msg, msg_len, SB_E_TOO_LARGE, "over %u bytes",
                 SB_DESK_FILE_BYTES_MAX);
        goto out;
    }
    rc = sb_desk_parse(text, n, out_desk, why, sizeof why);
    if (rc) {
        if (rc != -ENOMEM)
            say(msg, msg_len, rc,
                "refused, the configuration in force "
                "stays: %s",
                why);
        goto out;
    }
    char tail[96];
    counts(*out_desk, tail, sizeof tail);
    say(msg, msg_len, 0, "%s%s", done, tail);
    *out_doc = text;
    *out_len = n;
    text = NULL;
out:
    free(text);
    json_decref(root);
    json_decref(args);
    if (rc == -ENOMEM) say(msg, msg_len, rc, "out of memory");
    return rc;
}

void sb_deskcfg_hash(const void *text, size_t len,
                     char out[SB_DESKCFG_HASH_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(text, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        /* Cannot happen with a working libcrypto; an empty hash differs
         * from every real one, so the file is imported again. */
        out[0] = '\0';
        return;
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
}
