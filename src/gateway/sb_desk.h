/* Customer-service desks: their configuration (skill groups, agents and
 * capacities, bot rules, an external bot, canned replies, greetings and
 * out-of-hours texts per language, parsed from a JSON document) and the
 * routing state built on it (agent status and load, one FIFO queue per
 * skill group), which a new configuration takes over (sb_desk_adopt).
 * Pure: no I/O but the loader, no clock (times come in as arguments).
 *
 * Routing rule: a conversation queued for group g goes to an online agent
 * of g with free capacity, least loaded first, longest idle on ties; when
 * none has room it waits in g's queue, and queued conversations are handed
 * out in queue order the moment capacity frees up. A group with business
 * hours (the document's "hours", by group name: sb_hours.h) takes no new
 * conversation out of them: its queue waits for the next shift, and is
 * handed out when it starts (sb_desk_hours_update). */
#ifndef SB_DESK_H
#define SB_DESK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_hours.h"
#include "sb_limits.h"
#include "switchboard.pb-c.h"

#define SB_DESK_GROUPS_MAX 64 /* skill groups across all desks */
#define SB_DESK_AGENTS_MAX 10000
#define SB_DESK_RULES_MAX 1000 /* bot rules per desk and language */
#define SB_DESK_LANGS_MAX 8
#define SB_DESK_QUEUE_MAX 100000 /* conversations waiting, all groups */
#define SB_DESK_FILE_BYTES_MAX (4u << 20)
/* A desk's identity secret: 16..128 bytes. */
#define SB_DESK_SECRET_BYTES_MIN 16
#define SB_DESK_SECRET_BYTES_MAX 128

typedef struct sb_desk sb_desk;

/* A text in several languages; sb_desk_text() picks one. */
typedef struct sb_desk_text_set {
    char *lang[SB_DESK_LANGS_MAX];
    char *text[SB_DESK_LANGS_MAX];
    size_t n;
} sb_desk_text_set;

typedef struct sb_desk_rule {
    char **keywords; /* case-folded (ASCII) substrings; any one matches */
    size_t n_keywords;
    char *answer;
    char *quick[SB_QUICK_MAX];
    size_t n_quick;
    bool handoff; /* matching this rule hands off to a human */
} sb_desk_rule;

typedef struct sb_desk_canned {
    char *key, *title, *text;
} sb_desk_canned;

#define SB_DESK_AVATARS_MAX 8 /* agent pictures the widget shows */
#define SB_DESK_URL_BYTES_MAX 512

/* How the desk's chat widget looks (the public GET /api/widget): a brand
 * colour (#rgb or #rrggbb, "" for the page's own), a title, the expected
 * reply time and the greeting screen's text per language, and the
 * pictures of agents that have one (their "avatar" URL), in agent order. */
typedef struct sb_desk_widget {
    char color[8];
    sb_desk_text_set title, reply_time, greeting;
} sb_desk_widget;

typedef struct sb_desk_def {
    char id[SB_ID_BYTES_MAX + 1];
    char *name;
    int default_group;      /* group index */
    uint32_t unmatched_max; /* unmatched customer turns, then handoff */
    uint32_t recall_window_s;
    sb_desk_text_set greeting; /* the bot's first message */
    sb_desk_text_set out_of_hours;
    sb_desk_text_set fallback; /* the bot did not understand */
    /* Bot rules per language: rules[i] for langs.lang[i]. */
    sb_desk_text_set rule_langs; /* only lang[] is used */
    sb_desk_rule *rules[SB_DESK_LANGS_MAX];
    size_t n_rules[SB_DESK_LANGS_MAX];
    sb_desk_canned *canned;
    size_t n_canned;
    /* The user id of an external bot (a client with role bot) that takes
     * the desk's new conversations while it is online; "" for none. */
    char bot[SB_ID_BYTES_MAX + 1];
    uint64_t groups; /* bit i: skill group i is one of the desk's */
    sb_desk_widget widget;
    /* The customer is asked to rate a conversation at its close ("csat",
     * true unless the desk says false). */
    bool csat;
    /* The key the site's backend signs its customers' ids with
     * ("identity_secret": HMAC-SHA256 of the user id, docs/api.md); ""
     * when the desk takes no signed identity. */
    char identity_secret[SB_DESK_SECRET_BYTES_MAX + 1];
} sb_desk_def;

/* Loads a desk file. On failure returns SB_E_INVALID (or -errno) and
 * writes a message naming the problem into err. */
int sb_desk_load(const char *path, sb_desk **out, char *err, size_t err_len);
/* Loads from a JSON text (for tests). */
int sb_desk_parse(const char *json, size_t len, sb_desk **out, char *err,
                  size_t err_len);
void sb_desk_free(sb_desk *d);

/* Takes over the routing state of old (may be NULL) into d, a desk just
 * parsed that has none yet: each agent's status, load and idle time by
 * agent id, and the queue, in its order, by group name. Conversations
 * queued for a group d does not have are left out: their ids go to
 * *orphans (malloc'd, the caller frees; *n_orphans of them), for the
 * caller to route again. Agents of old that d lacks are dropped with
 * their state. Returns 0, or -ENOMEM with d unchanged. */
int sb_desk_adopt(sb_desk *d, const sb_desk *old, uint64_t **orphans,
                  size_t *n_orphans);

/* The desk with this id, or the first desk for "" or an unknown id. NULL
 * only when no desk is configured. */
/* Forgets the routing state: queues empty, every agent offline with no
 * load (a node that no longer owns the desks; the next owner rebuilds it
 * from the store). */
void sb_desk_routing_clear(sb_desk *d);
const sb_desk_def *sb_desk_get(const sb_desk *d, const char *id);
/* How many desks, skill groups and agents d has. */
void sb_desk_counts(const sb_desk *d, size_t *desks, size_t *groups,
                    size_t *agents);
/* Group index by name, -1 if none. */
int sb_desk_group(const sb_desk *d, const char *name);
const char *sb_desk_group_name(const sb_desk *d, int group);
/* A text in locale (exact, then language prefix "zh" of "zh-CN", then the
 * first one); "" if the set is empty. */
const char *sb_desk_text(const sb_desk_text_set *t, const char *locale);

/* The public description of desk id's chat widget ("" or NULL: the first
 * desk), as JSON into *out (malloc'd, NUL-terminated; the caller frees):
 * {"desk", "name", "color", "title", "reply_time", "greeting" (the texts
 * as {lang: text}), "avatars": [{"agent", "url"}]}, at most
 * SB_DESK_AVATARS_MAX avatars of the desk's agents in id order. Nothing
 * else of the configuration (no rules, canned replies, capacities or
 * statuses). Returns 0, SB_E_NOT_FOUND (no such desk) or -ENOMEM. */
int sb_desk_widget_json(const sb_desk *d, const char *id, char **out);

/* ---- the rule bot ----------------------------------------------------------
 */

typedef enum sb_bot_verdict {
    SB_BOT_ANSWER,    /* rule matched: answer with rule */
    SB_BOT_UNMATCHED, /* no rule: the fallback text */
    SB_BOT_HANDOFF,   /* the customer asked for a human */
} sb_bot_verdict;

/* Matches a customer's text against the desk's rules for locale. Sets
 * *rule for SB_BOT_ANSWER and for a handoff rule. */
sb_bot_verdict sb_desk_bot(const sb_desk_def *def, const char *locale,
                           const char *text, const sb_desk_rule **rule);

/* ---- agents and queues ----------------------------------------------------
 */

/* Whether user_id is a configured agent. */
bool sb_desk_is_agent(const sb_desk *d, const char *user_id);
/* Sets an agent's status (online/away/offline). Unknown agents are
 * ignored. Coming online counts as the start of its idle time. */
void sb_desk_set_status(sb_desk *d, const char *agent, Sbp__AgentStatus st,
                        int64_t now_ms);
Sbp__AgentStatus sb_desk_status(const sb_desk *d, const char *agent);
/* Capacity and current load of an agent (0, 0 if unknown). */
void sb_desk_agent_load(const sb_desk *d, const char *agent, uint32_t *cap,
                        uint32_t *load);
/* Counts a conversation assigned to (delta +1) or taken from (-1) agent;
 * taking one starts its idle time. */
void sb_desk_add_load(sb_desk *d, const char *agent, int delta, int64_t now_ms);
/* The names of agent's groups (at most max); returns how many. */
size_t sb_desk_agent_groups(const sb_desk *d, const char *agent,
                            const char **out, size_t max);
/* Whether agent belongs to group. */
bool sb_desk_in_group(const sb_desk *d, const char *agent, int group);

/* One agent as it stands, for lists; pointers valid as long as d. */
typedef struct sb_desk_agent_info {
    const char *id;
    uint64_t groups; /* bit i: member of group i */
    Sbp__AgentStatus status;
    uint32_t capacity, load;
    const char *avatar; /* a picture's URL; "" for none */
} sb_desk_agent_info;

/* Agent i (by id order, 0..) into *out; false past the last. */
bool sb_desk_agent_at(const sb_desk *d, size_t i, sb_desk_agent_info *out);
/* The agent with id into *out; false when there is none. */
bool sb_desk_agent_find(const sb_desk *d, const char *id,
                        sb_desk_agent_info *out);
/* Whether one desk has a skill group of groups_a and one of groups_b
 * (group masks, as sb_desk_agent_info.groups): teammates. */
bool sb_desk_same_desk(const sb_desk *d, uint64_t groups_a, uint64_t groups_b);
/* The desk of agent: the first whose skill groups it has one of; NULL
 * when it has none (or is no agent). */
const sb_desk_def *sb_desk_of_agent(const sb_desk *d, const char *agent);
/* Whether agent has a skill group of def. */
bool sb_desk_agent_on(const sb_desk *d, const sb_desk_def *def,
                      const char *agent);

/* The agent a conversation of group should go to now: online, in the
 * group, load < capacity; least loaded, then longest idle, then by id.
 * NULL if none has room. The pointer lives as long as d. */
const char *sb_desk_pick(const sb_desk *d, int group);
/* The same, never choosing except (a transfer away from it). */
const char *sb_desk_pick_except(const sb_desk *d, int group,
                                const char *except);
/* Whether any agent of group is online (even if all are full): when none
 * is, the customer gets the out-of-hours text. */
bool sb_desk_group_staffed(const sb_desk *d, int group);

/* Appends conv to group's queue (no-op if queued already). Returns 0 or
 * -ENOBUFS when SB_DESK_QUEUE_MAX is reached. */
int sb_desk_enqueue(sb_desk *d, uint64_t conv_id, int group, int64_t now_ms);
/* Removes conv from whatever queue holds it; returns whether it was
 * queued. */
bool sb_desk_dequeue(sb_desk *d, uint64_t conv_id);
/* 1-based position of conv in its group's queue, 0 if not queued. */
uint32_t sb_desk_position(const sb_desk *d, uint64_t conv_id);
/* The group conv is queued in, -1 if none. */
int sb_desk_queued_group(const sb_desk *d, uint64_t conv_id);
/* The next conversation for agent: the head of the queue, among the
 * agent's groups, that was enqueued first. 0 if none. */
uint64_t sb_desk_next_for(const sb_desk *d, const char *agent);
/* Queued conversations of group (group < 0: of every group), in order. */
size_t sb_desk_queue_list(const sb_desk *d, int group, uint64_t *out,
                          size_t max);
/* Conversations queued, all groups. */
size_t sb_desk_queue_len(const sb_desk *d);
/* When conv entered its queue (the now_ms of its sb_desk_enqueue); -1
 * when it is not queued. */
int64_t sb_desk_queued_since(const sb_desk *d, uint64_t conv_id);

/* ---- business hours -------------------------------------------------------
 *
 * Whether a group is open is worked out by sb_desk_hours_update and kept
 * until the next change it found: picks and queues read the kept state, so
 * that they need no clock. A group without hours is always open. */

/* Brings every group's state up to now_ms (ms since the epoch; a time
 * before the last update's works everything out again); returns the
 * groups that opened since the last update, a bit per group index. */
uint64_t sb_desk_hours_update(sb_desk *d, int64_t now_ms);
/* Whether group takes conversations now (as of the last update). */
bool sb_desk_group_open(const sb_desk *d, int group);
/* The group's hours, NULL when it has none; valid as long as d. */
const sb_hours *sb_desk_group_hours(const sb_desk *d, int group);
/* When the group's state changes next, as of the last update: its next
 * opening while it is closed (INT64_MAX: none). */
int64_t sb_desk_group_next_change(const sb_desk *d, int group);

/* ---- figures, for metrics -------------------------------------------------
 */

/* One skill group as it stands. */
typedef struct sb_desk_group_stats {
    const char *name;        /* valid as long as d */
    size_t queued;           /* conversations waiting */
    int64_t oldest_ms;       /* when the one waiting longest came; 0: none */
    size_t agents[3];        /* agents of the group, by Sbp__AgentStatus */
    uint32_t capacity, load; /* summed over its online agents */
} sb_desk_group_stats;

/* Fills out[i] for group i, at most max of them (SB_DESK_GROUPS_MAX is
 * every one); returns how many. One pass over the agents and the queue. */
size_t sb_desk_group_stats_get(const sb_desk *d, sb_desk_group_stats *out,
                               size_t max);

#endif
