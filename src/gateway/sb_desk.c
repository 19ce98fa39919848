/* Desks: configuration parsed from JSON, the rule bot, and the routing
 * state (agent status and load, FIFO queues per skill group), which a new
 * configuration can take over from the one it replaces. */
#include "sb_desk.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_utf8.h"

typedef struct agent {
    char id[SB_ID_BYTES_MAX + 1];
    char *avatar;    /* a picture's URL, NULL for none */
    uint64_t groups; /* bit i: member of group i */
    uint32_t capacity, load;
    Sbp__AgentStatus status;
    int64_t idle_since_ms;
} agent;

typedef struct qent {
    uint64_t conv_id;
    int group;
    int64_t enqueued_ms;
} qent;

struct sb_desk {
    sb_desk_def *desks;
    size_t n_desks;
    char *groups[SB_DESK_GROUPS_MAX];
    size_t n_groups;
    agent *agents; /* sorted by id */
    size_t n_agents;
    size_t n_agents_alloc; /* entries of agents, parsed or half-parsed */
    qent *queue;           /* all groups, in arrival order */
    size_t q_len, q_cap;
    /* Business hours by group (NULL: always open), whether each group is
     * open as of the last sb_desk_hours_update and when that changes. */
    sb_hours *hours[SB_DESK_GROUPS_MAX];
    bool closed[SB_DESK_GROUPS_MAX];
    int64_t next_change[SB_DESK_GROUPS_MAX];
    int64_t hours_at; /* the time of the last update */
};

/* ---- loading ------------------------------------------------------------- */

static int fail(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && len) vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return SB_E_INVALID;
}

static char *dup_checked(const json_t *j)
{
    if (!json_is_string(j)) return NULL;
    const char *s = json_string_value(j);
    return strdup(s);
}

static void text_set_free(sb_desk_text_set *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->lang[i]);
        free(t->text[i]);
    }
    t->n = 0;
}

/* {"en": "...", "zh-CN": "..."} */
static int parse_texts(const json_t *j, sb_desk_text_set *t, const char *what,
                       char *err, size_t elen)
{
    if (!j) return 0;
    if (!json_is_object(j)) return fail(err, elen, "%s: want an object", what);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        if (t->n == SB_DESK_LANGS_MAX)
            return fail(err, elen, "%s: too many languages", what);
        if (!json_is_string(v))
            return fail(err, elen, "%s.%s: want a string", what, k);
        t->lang[t->n] = strdup(k);
        t->text[t->n] = dup_checked(v);
        if (!t->lang[t->n] || !t->text[t->n]) return -ENOMEM;
        t->n++;
    }
    return 0;
}

static int group_index(sb_desk *d, const char *name, bool create)
{
    for (size_t i = 0; i < d->n_groups; i++)
        if (strcmp(d->groups[i], name) == 0) return (int)i;
    if (!create || d->n_groups == SB_DESK_GROUPS_MAX) return -1;
    d->groups[d->n_groups] = strdup(name);
    if (!d->groups[d->n_groups]) return -1;
    return (int)d->n_groups++;
}

static void lower_ascii(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static void rule_free(sb_desk_rule *r)
{
    for (size_t i = 0; i < r->n_keywords; i++)
        free(r->keywords[i]);
    free(r->keywords);
    free(r->answer);
    for (size_t i = 0; i < r->n_quick; i++)
        free(r->quick[i]);
}

static int parse_rule(const json_t *j, sb_desk_rule *r, const char *where,
                      char *err, size_t elen)
{
    memset(r, 0, sizeof *r);
    json_t *kw = json_object_get(j, "keywords");
    if (!json_is_array(kw) || json_array_size(kw) == 0)
        return fail(err, elen, "%s: keywords: want a non-empty array", where);
    r->keywords = calloc(json_array_size(kw), sizeof *r->keywords);
    if (!r->keywords) return -ENOMEM;
    size_t i;
    json_t *v;
    json_array_foreach(kw, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return fail(err, elen, "%s: keywords[%zu]: want text", where, i);
        r->keywords[r->n_keywords] = strdup(json_string_value(v));
        if (!r->keywords[r->n_keywords]) return -ENOMEM;
        lower_ascii(r->keywords[r->n_keywords++]);
    }
    r->handoff = json_is_true(json_object_get(j, "handoff"));
    json_t *ans = json_object_get(j, "answer");
    if (!r->handoff && !json_is_string(ans))
        return fail(err, elen, "%s: answer: want text", where);
    if (ans && !(r->answer = dup_checked(ans)))
        return fail(err, elen, "%s: answer: want text", where);
    json_t *qr = json_object_get(j, "quick_replies");
    if (qr) {
        if (!json_is_array(qr) || json_array_size(qr) > SB_QUICK_MAX)
            return fail(err, elen, "%s: quick_replies: at most %d texts", where,
                        SB_QUICK_MAX);
        json_array_foreach(qr, i, v)
        {
            if (!(r->quick[r->n_quick] = dup_checked(v)))
                return fail(err, elen, "%s: quick_replies[%zu]: want text",
                            where, i);
            r->n_quick++;
        }
    }
    return 0;
}

static void def_free(sb_desk_def *def)
{
    free(def->name);
    text_set_free(&def->widget.title);
    text_set_free(&def->widget.reply_time);
    text_set_free(&def->widget.greeting);
    text_set_free(&def->greeting);
    text_set_free(&def->out_of_hours);
    text_set_free(&def->fallback);
    for (size_t l = 0; l < def->rule_langs.n; l++) {
        for (size_t i = 0; i < def->n_rules[l]; i++)
            rule_free(&def->rules[l][i]);
        free(def->rules[l]);
    }
    text_set_free(&def->rule_langs);
    for (size_t i = 0; i < def->n_canned; i++) {
        free(def->canned[i].key);
        free(def->canned[i].title);
        free(def->canned[i].text);
    }
    free(def->canned);
}

/* A link the widget may show (an agent's picture): an absolute http(s)
 * URL or a path on this server, of 1..SB_DESK_URL_BYTES_MAX bytes, with
 * nothing that could end an attribute or a CSS url(). */
static bool url_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SB_DESK_URL_BYTES_MAX) return false;
    if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0 &&
        !(s[0] == '/' && s[1] != '/'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || strchr("\"'<>\\`()", c)) return false;
    }
    return true;
}

/* #rgb or #rrggbb. */
static bool color_ok(const char *s)
{
    size_t n = strlen(s);
    if ((n != 4 && n != 7) || s[0] != '#') return false;
    for (size_t i = 1; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return false;
    return true;
}

/* The desk's "widget": {"color", "title", "reply_time", "greeting"}. */
static int parse_widget(const json_t *j, sb_desk_widget *w, const char *id,
                        char *err, size_t elen)
{
    if (!j) return 0;
    if (!json_is_object(j))
        return fail(err, elen, "desk %s: widget: want an object", id);
    const json_t *color = json_object_get(j, "color");
    if (color) {
        const char *c = json_string_value(color);
        if (!c || !color_ok(c))
            return fail(err, elen,
                        "desk %s: widget.color: want #rgb or #rrggbb", id);
        snprintf(w->color, sizeof w->color, "%s", c);
    }
    static const char *const KEYS[] = {"title", "reply_time", "greeting"};
    sb_desk_text_set *sets[] = {&w->title, &w->reply_time, &w->greeting};
    char where[128];
    for (size_t i = 0; i < 3; i++) {
        snprintf(where, sizeof where, "desk %s: widget.%s", id, KEYS[i]);
        int rc =
            parse_texts(json_object_get(j, KEYS[i]), sets[i], where, err, elen);
        if (rc) return rc;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        if (strcmp(k, "color") && strcmp(k, "title") &&
            strcmp(k, "reply_time") && strcmp(k, "greeting"))
            return fail(err, elen,
                        "desk %s: widget.%s: unknown (color, title, "
                        "reply_time, greeting)",
                        id, k);
    }
    return 0;
}

static int parse_desk(sb_desk *d, const json_t *j, sb_desk_def *def, size_t idx,
                      char *err, size_t elen)
{
    char where[128];
    const char *id = json_string_value(json_object_get(j, "id"));
    if (!id || !*id || strlen(id) > SB_ID_BYTES_MAX)
        return fail(err, elen, "desks[%zu].id: want 1..%d bytes", idx,
                    SB_ID_BYTES_MAX);
    snprintf(def->id, sizeof def->id, "%s", id);
    json_t *name = json_object_get(j, "name");
    def->name = strdup(json_is_string(name) ? json_string_value(name) : id);
    if (!def->name) return -ENOMEM;
    json_t *groups = json_object_get(j, "groups");
    if (!json_is_array(groups) || json_array_size(groups) == 0)
        return fail(err, elen, "desk %s: groups: want a non-empty array", id);
    size_t i;
    json_t *v;
    json_array_foreach(groups, i, v)
    {
        int g =
            json_is_string(v) ? group_index(d, json_string_value(v), true) : -1;
        if (g < 0)
            return fail(err, elen, "desk %s: groups[%zu]: bad or too many", id,
                        i);
        def->groups |= 1ULL << g;
    }
    const char *dg = json_string_value(json_object_get(j, "default_group"));
    def->default_group = group_index(
        d, dg ? dg : json_string_value(json_array_get(groups, 0)), false);
    if (def->default_group < 0)
        return fail(err, elen, "desk %s: default_group: not one of groups", id);
    json_t *bot = json_object_get(j, "bot");
    if (bot) {
        const char *b = json_string_value(bot);
        if (!b || strlen(b) > SB_ID_BYTES_MAX)
            return fail(err, elen,
                        "desk %s: bot: want a user id of 0..%d bytes", id,
                        SB_ID_BYTES_MAX);
        snprintf(def->bot, sizeof def->bot, "%s", b);
    }
    json_t *secret = json_object_get(j, "identity_secret");
    if (secret) {
        const char *k = json_string_value(secret);
        size_t n = k ? strlen(k) : 0;
        if (!k || n < SB_DESK_SECRET_BYTES_MIN || n > SB_DESK_SECRET_BYTES_MAX)
            return fail(err, elen,
                        "desk %s: identity_secret: want %d..%d bytes", id,
                        SB_DESK_SECRET_BYTES_MIN, SB_DESK_SECRET_BYTES_MAX);
        snprintf(def->identity_secret, sizeof def->identity_secret, "%s", k);
    }
    json_t *csat = json_object_get(j, "csat");
    if (csat && !json_is_boolean(csat))
        return fail(err, elen, "desk %s: csat: want true or false", id);
    def->csat = !json_is_false(csat);
    json_t *um = json_object_get(j, "unmatched_max");
    def->unmatched_max =
        json_is_integer(um) ? (uint32_t)json_integer_value(um) : 2;
    json_t *rw = json_object_get(j, "recall_window_s");
    def->recall_window_s =
        json_is_integer(rw) ? (uint32_t)json_integer_value(rw) : 120;
    int rc;
    snprintf(where, sizeof where, "desk %s: greeting", id);
    if ((rc = parse_texts(json_object_get(j, "greeting"), &def->greeting, where,
                          err, elen)))
        return rc;
    snprintf(where, sizeof where, "desk %s: out_of_hours", id);
    if ((rc = parse_texts(json_object_get(j, "out_of_hours"),
                          &def->out_of_hours, where, err, elen)))
        return rc;
    snprintf(where, sizeof where, "desk %s: fallback", id);
    if ((rc = parse_texts(json_object_get(j, "fallback"), &def->fallback, where,
                          err, elen)))
        return rc;
    json_t *rules = json_object_get(j, "rules");
    if (rules) {
        if (!json_is_object(rules))
            return fail(err, elen, "desk %s: rules: want {lang: [...]}", id);
        const char *lang;
        json_t *list;
        json_object_foreach(rules, lang, list)
        {
            size_t l = def->rule_langs.n;
            if (l == SB_DESK_LANGS_MAX)
                return fail(err, elen, "desk %s: rules: too many languages",
                            id);
            if (!json_is_array(list) ||
                json_array_size(list) > SB_DESK_RULES_MAX)
                return fail(err, elen, "desk %s: rules.%s: want at most %d", id,
                            lang, SB_DESK_RULES_MAX);
            def->rule_langs.lang[l] = strdup(lang);
            def->rules[l] =
                calloc(json_array_size(list) + 1, sizeof *def->rules[l]);
            def->rule_langs.n++;
            if (!def->rule_langs.lang[l] || !def->rules[l]) return -ENOMEM;
            json_array_foreach(list, i, v)
            {
                snprintf(where, sizeof where, "desk %s: rules.%s[%zu]", id,
                         lang, i);
                rc = parse_rule(v, &def->rules[l][i], where, err, elen);
                def->n_rules[l] = i + 1; /* freed even when half-built */
                if (rc) return rc;
            }
        }
    }
    if ((rc = parse_widget(json_object_get(j, "widget"), &def->widget, id, err,
                           elen)))
        return rc;
    json_t *canned = json_object_get(j, "canned");
    if (canned) {
        if (!json_is_array(canned))
            return fail(err, elen, "desk %s: canned: want an array", id);
        def->canned = calloc(json_array_size(canned) + 1, sizeof *def->canned);
        if (!def->canned) return -ENOMEM;
        json_array_foreach(canned, i, v)
        {
            sb_desk_canned *c = &def->canned[def->n_canned++];
            c->key = dup_checked(json_object_get(v, "key"));
            c->text = dup_checked(json_object_get(v, "text"));
            json_t *t = json_object_get(v, "title");
            c->title = t ? dup_checked(t) : (c->key ? strdup(c->key) : NULL);
            if (!c->key || !c->text || !c->title)
                return fail(err, elen, "desk %s: canned[%zu]: key and text", id,
                            i);
        }
    }
    return 0;
}

static int agent_cmp(const void *a, const void *b)
{
    return strcmp(((const agent *)a)->id, ((const agent *)b)->id);
}

static int parse_agents(sb_desk *d, const json_t *list, char *err, size_t elen)
{
    if (!list) return 0;
    if (!json_is_array(list) || json_array_size(list) > SB_DESK_AGENTS_MAX)
        return fail(err, elen, "agents: want an array of at most %d",
                    SB_DESK_AGENTS_MAX);
    d->agents = calloc(json_array_size(list) + 1, sizeof *d->agents);
    if (!d->agents) return -ENOMEM;
    d->n_agents_alloc = json_array_size(list) + 1;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        agent *a = &d->agents[i];
        const char *id = json_string_value(json_object_get(v, "id"));
        if (!id || !*id || strlen(id) > SB_ID_BYTES_MAX)
            return fail(err, elen, "agents[%zu].id: want 1..%d bytes", i,
                        SB_ID_BYTES_MAX);
        snprintf(a->id, sizeof a->id, "%s", id);
        json_t *av = json_object_get(v, "avatar");
        if (av) {
            const char *url = json_string_value(av);
            if (!url || !url_ok(url))
                return fail(err, elen,
                            "agents[%zu].avatar: want an http(s) URL or a "
                            "path of at most %d bytes",
                            i, SB_DESK_URL_BYTES_MAX);
            if (!(a->avatar = strdup(url))) return -ENOMEM;
        }
        json_t *cap = json_object_get(v, "capacity");
        a->capacity = json_is_integer(cap) && json_integer_value(cap) > 0
                          ? (uint32_t)json_integer_value(cap)
                          : 3;
        json_t *gs = json_object_get(v, "groups");
        if (!json_is_array(gs) || json_array_size(gs) == 0)
            return fail(err, elen, "agents[%zu].groups: want group names", i);
        size_t k;
        json_t *g;
        json_array_foreach(gs, k, g)
        {
            int gi = json_is_string(g)
                         ? group_index(d, json_string_value(g), false)
                         : -1;
            if (gi < 0)
                return fail(err, elen, "agents[%zu].groups[%zu]: unknown group",
                            i, k);
            a->groups |= 1ULL << gi;
        }
        a->status = SBP__AGENT_STATUS__AGENT_OFFLINE;
    }
    d->n_agents = json_array_size(list);
    qsort(d->agents, d->n_agents, sizeof *d->agents, agent_cmp);
    for (i = 1; i < d->n_agents; i++)
        if (strcmp(d->agents[i - 1].id, d->agents[i].id) == 0)
            return fail(err, elen, "agents: %s twice", d->agents[i].id);
    return 0;
}

/* "hours": {"group": {...}} for groups the desks have. */
static int parse_hours(sb_desk *d, const json_t *j, char *err, size_t elen)
{
    if (!j) return 0;
    if (!json_is_object(j))
        return fail(err, elen, "hours: want {\"group\": {tz, week}}");
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)j, name, v)
    {
        int g = group_index(d, name, false);
        if (g < 0)
            return fail(err, elen, "hours: %s is not a group of the desks",
                        name);
        char where[128];
        snprintf(where, sizeof where, "hours.%s", name);
        int rc = sb_hours_parse(v, where, &d->hours[g], err, elen);
        if (rc) return rc;
    }
    return 0;
}

int sb_desk_parse(const char *text, size_t len, sb_desk **out, char *err,
                  size_t elen)
{
    *out = NULL;
    if (!sb_utf8_valid(text, len)) return fail(err, elen, "not UTF-8");
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) return fail(err, elen, "line %d: %s", je.line, je.text);
    sb_desk *d = calloc(1, sizeof *d);
    int rc = -ENOMEM;
    if (!d) goto out;
    json_t *desks = json_object_get(j, "desks");
    if (!json_is_array(desks) || json_array_size(desks) == 0) {
        rc = fail(err, elen, "desks: want a non-empty array");
        goto out;
    }
    d->desks = calloc(json_array_size(desks), sizeof *d->desks);
    if (!d->desks) goto out;
    size_t i;
    json_t *v;
    json_array_foreach(desks, i, v)
    {
        d->n_desks = i + 1;
        if ((rc = parse_desk(d, v, &d->desks[i], i, err, elen))) goto out;
    }
    rc = parse_agents(d, json_object_get(j, "agents"), err, elen);
    if (rc == 0) rc = parse_hours(d, json_object_get(j, "hours"), err, elen);
out:
    json_decref(j);
    if (rc) {
        sb_desk_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

int sb_desk_load(const char *path, sb_desk **out, char *err, size_t elen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        fail(err, elen, "%s: %s", path, strerror(e));
        return -e;
    }
    char *buf = malloc(SB_DESK_FILE_BYTES_MAX + 1);
    size_t n = buf ? fread(buf, 1, SB_DESK_FILE_BYTES_MAX + 1, f) : 0;
    fclose(f);
    if (!buf) return -ENOMEM;
    if (n > SB_DESK_FILE_BYTES_MAX) {
        free(buf);
        return fail(err, elen, "%s: larger than %u bytes", path,
                    SB_DESK_FILE_BYTES_MAX);
    }
    char inner[256];
    int rc = sb_desk_parse(buf, n, out, inner, sizeof inner);
    free(buf);
    if (rc) fail(err, elen, "%s: %s", path, inner);
    return rc;
}

void sb_desk_free(sb_desk *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n_desks; i++)
        def_free(&d->desks[i]);
    free(d->desks);
    for (size_t i = 0; i < d->n_groups; i++) {
        free(d->groups[i]);
        sb_hours_free(d->hours[i]);
    }
    for (size_t i = 0; d->agents && i < d->n_agents_alloc; i++)
        free(d->agents[i].avatar);
    free(d->agents);
    free(d->queue);
    free(d);
}

/* ---- lookups ------------------------------------------------------------- */

const sb_desk_def *sb_desk_get(const sb_desk *d, const char *id)
{
    if (!d || d->n_desks == 0) return NULL;
    for (size_t i = 0; id && *id && i < d->n_desks; i++)
        if (strcmp(d->desks[i].id, id) == 0) return &d->desks[i];
    return &d->desks[0];
}

void sb_desk_counts(const sb_desk *d, size_t *desks, size_t *groups,
                    size_t *agents)
{
    *desks = d ? d->n_desks : 0;
    *groups = d ? d->n_groups : 0;
    *agents = d ? d->n_agents : 0;
}

int sb_desk_group(const sb_desk *d, const char *name)
{
    for (size_t i = 0; i < d->n_groups; i++)
        if (strcmp(d->groups[i], name) == 0) return (int)i;
    return -1;
}

const char *sb_desk_group_name(const sb_desk *d, int group)
{
    return group >= 0 && (size_t)group < d->n_groups ? d->groups[group] : "";
}

/* Index of the best language of set for locale, -1 if the set is empty. */
static int pick_lang(const sb_desk_text_set *t, const char *locale)
{
    if (t->n == 0) return -1;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->lang[i], locale) == 0) return (int)i;
    size_t pre = strcspn(locale, "-_");
    for (size_t i = 0; i < t->n; i++)
        if (pre && strncmp(t->lang[i], locale, pre) == 0 &&
            (t->lang[i][pre] == '\0' || t->lang[i][pre] == '-'))
            return (int)i;
    return 0;
}

const char *sb_desk_text(const sb_desk_text_set *t, const char *locale)
{
    int i = pick_lang(t, locale ? locale : "");
    return i < 0 ? "" : t->text[i];
}

/* {"en": "...", ...} of t, or NULL when out of memory. */
static json_t *texts_json(const sb_desk_text_set *t)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < t->n; i++)
        if (json_object_set_new(o, t->lang[i], json_string(t->text[i])) != 0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

int sb_desk_widget_json(const sb_desk *d, const char *id, char **out)
{
    *out = NULL;
    const sb_desk_def *def = sb_desk_get(d, id);
    if (!def || (id && id[0] && strcmp(def->id, id) != 0))
        return SB_E_NOT_FOUND;
    const sb_desk_widget *w = &def->widget;
    json_t *avatars = json_array();
    json_t *j = json_pack("{s:s, s:s, s:s, s:o*, s:o*, s:o*, s:o*}", "desk",
                          def->id, "name", def->name, "color", w->color,
                          "title", texts_json(&w->title), "reply_time",
                          texts_json(&w->reply_time), "greeting",
                          texts_json(&w->greeting), "avatars", avatars);
    if (!j) return -ENOMEM;
    for (size_t i = 0; i < d->n_agents; i++) {
        const agent *a = &d->agents[i];
        if (!a->avatar || !(a->groups & def->groups)) continue;
        if (json_array_size(avatars) == SB_DESK_AVATARS_MAX) break;
        if (json_array_append_new(avatars,
                                  json_pack("{s:s, s:s}", "agent", a->id, "url",
                                            a->avatar)) != 0) {
            json_decref(j);
            return -ENOMEM;
        }
    }
    *out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return *out ? 0 : -ENOMEM;
}

/* ---- the rule bot ----------------------------------------------------------
 */

sb_bot_verdict sb_desk_bot(const sb_desk_def *def, const char *locale,
                           const char *text, const sb_desk_rule **rule)
{
    *rule = NULL;
    int l = pick_lang(&def->rule_langs, locale ? locale : "");
    if (l < 0) return SB_BOT_UNMATCHED;
    /* ASCII case folding is enough for keywords: CJK has no case. */
    size_t n = strlen(text);
    char *low = malloc(n + 1);
    if (!low) return SB_BOT_UNMATCHED;
    memcpy(low, text, n + 1);
    lower_ascii(low);
    sb_bot_verdict v = SB_BOT_UNMATCHED;
    for (size_t i = 0; i < def->n_rules[l] && v == SB_BOT_UNMATCHED; i++) {
        const sb_desk_rule *r = &def->rules[l][i];
        for (size_t k = 0; k < r->n_keywords; k++) {
            if (strstr(low, r->keywords[k])) {
                *rule = r;
                v = r->handoff ? SB_BOT_HANDOFF : SB_BOT_ANSWER;
                break;
            }
        }
    }
    free(low);
    return v;
}

/* ---- agents ----------------------------------------------------------------
 */

static agent *find_agent(const sb_desk *d, const char *id)
{
    if (!d || !id || d->n_agents == 0) return NULL;
    agent key;
    snprintf(key.id, sizeof key.id, "%s", id);
    return bsearch(&key, d->agents, d->n_agents, sizeof *d->agents, agent_cmp);
}

bool sb_desk_is_agent(const sb_desk *d, const char *user_id)
{
    return find_agent(d, user_id) != NULL;
}

void sb_desk_set_status(sb_desk *d, const char *id, Sbp__AgentStatus st,
                        int64_t now_ms)
{
    agent *a = find_agent(d, id);
    if (!a) return;
    if (a->status != SBP__AGENT_STATUS__AGENT_ONLINE &&
        st == SBP__AGENT_STATUS__AGENT_ONLINE)
        a->idle_since_ms = now_ms;
    a->status = st;
}

Sbp__AgentStatus sb_desk_status(const sb_desk *d, const char *id)
{
    agent *a = find_agent(d, id);
    return a ? a->status : SBP__AGENT_STATUS__AGENT_OFFLINE;
}

void sb_desk_agent_load(const sb_desk *d, const char *id, uint32_t *cap,
                        uint32_t *load)
{
    agent *a = find_agent(d, id);
    *cap = a ? a->capacity : 0;
    *load = a ? a->load : 0;
}

void sb_desk_add_load(sb_desk *d, const char *id, int delta, int64_t now_ms)
{
    agent *a = find_agent(d, id);
    if (!a) return;
    if (delta > 0) {
        a->load += (uint32_t)delta;
    } else {
        a->load = a->load >= (uint32_t)-delta ? a->load - (uint32_t)-delta : 0;
        a->idle_since_ms = now_ms;
    }
}

size_t sb_desk_agent_groups(const sb_desk *d, const char *id, const char **out,
                            size_t max)
{
    agent *a = find_agent(d, id);
    size_t n = 0;
    for (size_t g = 0; a && g < d->n_groups && n < max; g++)
        if (a->groups >> g & 1) out[n++] = d->groups[g];
    return n;
}

bool sb_desk_in_group(const sb_desk *d, const char *id, int group)
{
    agent *a = find_agent(d, id);
    return a && group >= 0 && (a->groups >> group & 1);
}

bool sb_desk_agent_at(const sb_desk *d, size_t i, sb_desk_agent_info *out)
{
    if (!d || i >= d->n_agents) return false;
    const agent *a = &d->agents[i];
    *out = (sb_desk_agent_info){.id = a->id,
                                .groups = a->groups,
                                .status = a->status,
                                .capacity = a->capacity,
                                .load = a->load,
                                .avatar = a->avatar ? a->avatar : ""};
    return true;
}

bool sb_desk_agent_find(const sb_desk *d, const char *id,
                        sb_desk_agent_info *out)
{
    agent *a = find_agent(d, id);
    return a && sb_desk_agent_at(d, (size_t)(a - d->agents), out);
}

bool sb_desk_same_desk(const sb_desk *d, uint64_t groups_a, uint64_t groups_b)
{
    for (size_t i = 0; d && i < d->n_desks; i++)
        if ((d->desks[i].groups & groups_a) && (d->desks[i].groups & groups_b))
            return true;
    return false;
}

const sb_desk_def *sb_desk_of_agent(const sb_desk *d, const char *id)
{
    agent *a = find_agent(d, id);
    for (size_t i = 0; a && i < d->n_desks; i++)
        if (d->desks[i].groups & a->groups) return &d->desks[i];
    return NULL;
}

bool sb_desk_agent_on(const sb_desk *d, const sb_desk_def *def, const char *id)
{
    agent *a = find_agent(d, id);
    return a && def && (def->groups & a->groups) != 0;
}

const char *sb_desk_pick(const sb_desk *d, int group)
{
    return sb_desk_pick_except(d, group, NULL);
}

const char *sb_desk_pick_except(const sb_desk *d, int group, const char *except)
{
    const agent *best = NULL;
    if (!d || group < 0 || d->closed[group]) return NULL;
    for (size_t i = 0; i < d->n_agents; i++) {
        const agent *a = &d->agents[i];
        if ((except && strcmp(a->id, except) == 0) ||
            !(a->groups >> group & 1) ||
            a->status != SBP__AGENT_STATUS__AGENT_ONLINE ||
            a->load >= a->capacity)
            continue;
        /* Agents are sorted by id, so ties keep the smaller id. */
        if (!best || a->load < best->load ||
            (a->load == best->load && a->idle_since_ms < best->idle_since_ms))
            best = a;
    }
    return best ? best->id : NULL;
}

bool sb_desk_group_staffed(const sb_desk *d, int group)
{
    for (size_t i = 0; d && group >= 0 && i < d->n_agents; i++)
        if ((d->agents[i].groups >> group & 1) &&
            d->agents[i].status == SBP__AGENT_STATUS__AGENT_ONLINE)
            return true;
    return false;
}

/* ---- queues -------------------------------------------------------------- */

static ssize_t q_find(const sb_desk *d, uint64_t conv_id)
{
    for (size_t i = 0; i < d->q_len; i++)
        if (d->queue[i].conv_id == conv_id) return (ssize_t)i;
    return -1;
}

int sb_desk_enqueue(sb_desk *d, uint64_t conv_id, int group, int64_t now_ms)
{
    assert(group >= 0);
    if (q_find(d, conv_id) >= 0) return 0;
    if (d->q_len == SB_DESK_QUEUE_MAX) return -ENOBUFS;
    if (d->q_len == d->q_cap) {
        size_t cap = d->q_cap ? d->q_cap * 2 : 64;
        qent *q = realloc(d->queue, cap * sizeof *q);
        if (!q) return -ENOMEM;
        d->queue = q;
        d->q_cap = cap;
    }
    d->queue[d->q_len++] = (qent){conv_id, group, now_ms};
    return 0;
}

bool sb_desk_dequeue(sb_desk *d, uint64_t conv_id)
{
    ssize_t i = q_find(d, conv_id);
    if (i < 0) return false;
    memmove(&d->queue[i], &d->queue[i + 1],
            (d->q_len - (size_t)i - 1) * sizeof *d->queue);
    d->q_len--;
    return true;
}

uint32_t sb_desk_position(const sb_desk *d, uint64_t conv_id)
{
    ssize_t i = q_find(d, conv_id);
    if (i < 0) return 0;
    uint32_t pos = 1;
    for (ssize_t k = 0; k < i; k++)
        pos += d->queue[k].group == d->queue[i].group;
    return pos;
}

int sb_desk_queued_group(const sb_desk *d, uint64_t conv_id)
{
    ssize_t i = q_find(d, conv_id);
    return i < 0 ? -1 : d->queue[i].group;
}

uint64_t sb_desk_next_for(const sb_desk *d, const char *id)
{
    agent *a = find_agent(d, id);
    if (!a) return 0;
    /* The queue is in arrival order: the first entry of any of the
     * agent's groups is the one that waited longest. */
    for (size_t i = 0; i < d->q_len; i++)
        if ((a->groups >> d->queue[i].group & 1) &&
            !d->closed[d->queue[i].group])
            return d->queue[i].conv_id;
    return 0;
}

size_t sb_desk_queue_list(const sb_desk *d, int group, uint64_t *out,
                          size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < d->q_len && n < max; i++)
        if (group < 0 || d->queue[i].group == group)
            out[n++] = d->queue[i].conv_id;
    return n;
}

size_t sb_desk_queue_len(const sb_desk *d)
{
    return d ? d->q_len : 0;
}

int64_t sb_desk_queued_since(const sb_desk *d, uint64_t conv_id)
{
    ssize_t i = q_find(d, conv_id);
    return i < 0 ? -1 : d->queue[i].enqueued_ms;
}

uint64_t sb_desk_hours_update(sb_desk *d, int64_t now_ms)
{
    uint64_t opened = 0;
    if (!d) return 0;
    /* A clock set back: every group is worked out again. */
    bool back = now_ms < d->hours_at;
    d->hours_at = now_ms;
    for (size_t g = 0; g < d->n_groups; g++) {
        if (!d->hours[g] || (now_ms < d->next_change[g] && !back)) continue;
        bool was_closed = d->closed[g];
        d->closed[g] =
            !sb_hours_open_at(d->hours[g], now_ms, &d->next_change[g]);
        if (was_closed && !d->closed[g]) opened |= 1ULL << g;
    }
    return opened;
}

bool sb_desk_group_open(const sb_desk *d, int group)
{
    return d && group >= 0 && (size_t)group < d->n_groups && !d->closed[group];
}

const sb_hours *sb_desk_group_hours(const sb_desk *d, int group)
{
    return d && group >= 0 && (size_t)group < d->n_groups ? d->hours[group]
                                                          : NULL;
}

int64_t sb_desk_group_next_change(const sb_desk *d, int group)
{
    return d && group >= 0 && (size_t)group < d->n_groups && d->hours[group]
               ? d->next_change[group]
               : INT64_MAX;
}

size_t sb_desk_group_stats_get(const sb_desk *d, sb_desk_group_stats *out,
                               size_t max)
{
    size_t n = d->n_groups < max ? d->n_groups : max;
    for (size_t g = 0; g < n; g++)
        out[g] = (sb_desk_group_stats){.name = d->groups[g]};
    for (size_t i = 0; i < d->n_agents; i++) {
        const agent *a = &d->agents[i];
        unsigned st = (unsigned)a->status < 3 ? (unsigned)a->status : 0;
        for (size_t g = 0; g < n; g++) {
            if (!(a->groups >> g & 1)) continue;
            out[g].agents[st]++;
            if (a->status != SBP__AGENT_STATUS__AGENT_ONLINE) continue;
            out[g].capacity += a->capacity;
            out[g].load += a->load;
        }
    }
    /* The queue is in arrival order: a group's first entry is its oldest. */
    for (size_t i = 0; i < d->q_len; i++) {
        size_t g = (size_t)d->queue[i].group;
        if (g >= n) continue;
        if (out[g].queued++ == 0) out[g].oldest_ms = d->queue[i].enqueued_ms;
    }
    return n;
}

/* ---- a new configuration
 * ----------------------------------------------------- */

int sb_desk_adopt(sb_desk *d, const sb_desk *old, uint64_t **orphans,
                  size_t *n_orphans)
{
    assert(d && orphans && n_orphans);
    assert(d->q_len == 0); /* just parsed */
    *orphans = NULL;
    *n_orphans = 0;
    if (!old) return 0;
    size_t cap = old->q_len ? old->q_len : 1;
    qent *q = malloc(cap * sizeof *q);
    uint64_t *lost = malloc(cap * sizeof *lost);
    if (!q || !lost) {
        free(q);
        free(lost);
        return -ENOMEM;
    }
    size_t n = 0, n_lost = 0;
    for (size_t i = 0; i < old->q_len; i++) {
        const qent *e = &old->queue[i];
        int g = sb_desk_group(d, old->groups[e->group]);
        if (g < 0)
            lost[n_lost++] = e->conv_id;
        else
            q[n++] = (qent){e->conv_id, g, e->enqueued_ms};
    }
    free(d->queue);
    d->queue = q;
    d->q_len = n;
    d->q_cap = cap;
    for (size_t i = 0; i < d->n_agents; i++) {
        agent *a = &d->agents[i];
        const agent *was = find_agent(old, a->id);
        if (!was) continue;
        a->status = was->status;
        a->load = was->load;
        a->idle_since_ms = was->idle_since_ms;
    }
    *orphans = lost;
    *n_orphans = n_lost;
    return 0;
}

void sb_desk_routing_clear(sb_desk *d)
{
    d->q_len = 0;
    for (size_t i = 0; i < d->n_agents; i++) {
        d->agents[i].status = SBP__AGENT_STATUS__AGENT_OFFLINE;
        d->agents[i].load = 0;
        d->agents[i].idle_since_ms = 0;
    }
}
