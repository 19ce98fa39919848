/* How each kind of store request runs on a store connection: one table,
 * sb__req_ops (the OPS table), with a row per kind (whether it writes, what
 * it runs, the conversation it changes, what it clears when its
 * transaction does not commit), and the writer's batches: one transaction
 * for many requests. The store's threads (sb_storeq) and tests drive
 * requests through it; nothing here knows of threads or which database is
 * behind the connection. */
#include "sb_req_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sb_error.h"
#include "sb_pbjson.h"

/* Runs of a batch's transaction after the first lost a race with
 * another writer (SB_E_RETRY). */
#define RETRIES_MAX 5

/* The store's clock, for a write made with no time. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t req_now(const sb_req *r)
{
    return r->now_ms ? r->now_ms : wall_ms();
}

/* A fixed-size string field that the caller filled: NUL-terminated. */
static bool fixed_str_ok(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}
#define FIXED_OK(field) fixed_str_ok((field), sizeof(field))

static void conv_drop(Sbp__Conversation **c)
{
    if (*c) sbp__conversation__free_unpacked(*c, NULL);
    *c = NULL;
}

/* The conversation a request returns, as it is once its messages are in
 * (last_seq, updated_ts). */
static int conv_reload(sb_store *s, Sbp__Conversation **c)
{
    if (!*c) return 0;
    Sbp__Conversation *fresh = NULL;
    int rc = sb_store_conv_get(s, (*c)->conv_id, &fresh);
    if (rc) return rc == SB_E_NOT_FOUND ? SB_E_STORE : rc;
    sbp__conversation__free_unpacked(*c, NULL);
    *c = fresh;
    return 0;
}

/* The messages of r that did not get stored lose what the store gave
 * them. */
static void msgs_void(sb_req *r)
{
    size_t n = r->n_msgs < SB_REQ_MSGS_MAX ? r->n_msgs : SB_REQ_MSGS_MAX;
    for (size_t i = 0; i < n; i++) {
        Sbp__Message *m = r->msgs[i];
        if (!m) continue;
        m->msg_id = 0;
        m->seq = 0;
        m->server_ts = 0;
        if (r->kind == SB_REQ_SERVICE_OPEN) m->conv_id = 0;
    }
}

/* A customer-service write and the messages stored with it, as one: a
 * savepoint lets a request-level refusal of either undo both. main does
 * the request's own part and says whether r->msgs follow it; conv, when
 * not NULL, is the conversation it returns, reloaded once the messages are
 * in. */
static int with_msgs(sb_store *s, sb_req *r,
                     int (*main)(sb_store *s, sb_req *r, int64_t now,
                                 bool *msgs_follow),
                     Sbp__Conversation **conv)
{
    if (r->n_msgs > SB_REQ_MSGS_MAX) return SB_E_INVALID;
    for (size_t i = 0; i < r->n_msgs; i++)
        if (!r->msgs[i]) return SB_E_INVALID;
    int64_t now = req_now(r);
    int rc = sb__store_savepoint(s);
    if (rc) return rc;
    bool follow = false;
    rc = main(s, r, now, &follow);
    for (size_t i = 0; rc == 0 && follow && i < r->n_msgs; i++) {
        bool dup;
        rc = sb_store_append(s, r->msgs[i], now, &dup);
    }
    if (rc == 0 && follow && r->n_msgs && conv) rc = conv_reload(s, conv);
    if (rc == 0) return sb__store_savepoint_end(s, true);
    if (!sb_store_rc_is_request_level(rc)) return rc; /* the batch rolls back */
    sb__req_ops[r->kind].undo(r);
    int end = sb__store_savepoint_end(s, false);
    return end ? end : rc;
}

/* ---- webhook events ---------------------------------------------------- */

static const char *const HOOK_NAMES[SB_HOOK_EVENTS] = {
    "message.created",       "conversation.queued",
    "conversation.assigned", "conversation.transferred",
    "conversation.closed",   "csat.submitted",
    "note.created",
};

const char *sb_hook_event_name(sb_hook_event e)
{
    for (int i = 0; i < SB_HOOK_EVENTS; i++)
        if ((unsigned)e == 1u << i) return HOOK_NAMES[i];
    return NULL;
}

sb_hook_event sb_hook_event_from_name(const char *name)
{
    for (int i = 0; i < SB_HOOK_EVENTS; i++)
        if (strcmp(name, HOOK_NAMES[i]) == 0) return (sb_hook_event)(1u << i);
    return 0;
}

/* Writes event ev with payload to the outbox, once for each endpoint of h
 * that wants it. */
static int hooks_write(sb_store *s, const sb_req_hooks *h, sb_hook_event ev,
                       const char *subject, const char *payload, int64_t now)
{
    const char *name = sb_hook_event_name(ev);
    if (!name) return 0;
    for (size_t i = 0; i < h->n && i < SB_REQ_HOOK_ENDPOINTS_MAX; i++) {
        if (!(h->wants[i] & ev) || !FIXED_OK(h->endpoint[i])) continue;
        int rc =
            sb_store_outbox_add(s, name, h->endpoint[i], subject, payload, now);
        if (rc) return rc;
    }
    return 0;
}

/* The same with a protobuf message as the payload, in the JSON encoding
 * of the protocol. */
static int hooks_write_pb(sb_store *s, const sb_req_hooks *h, sb_hook_event ev,
                          const char *subject, const ProtobufCMessage *m,
                          int64_t now)
{
    bool wanted = false;
    for (size_t i = 0; i < h->n && i < SB_REQ_HOOK_ENDPOINTS_MAX; i++)
        wanted |= (h->wants[i] & ev) != 0;
    if (!wanted) return 0;
    json_t *j = sb_pbjson_from_msg(m);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) return -ENOMEM;
    int rc = hooks_write(s, h, ev, subject, text, now);
    free(text);
    return rc;
}

/* The event a request with its own (hooks->event) causes. */
static int hooks_explicit(sb_store *s, sb_req *r)
{
    sb_req_hooks *h = r->hooks;
    if (!h || !h->event || !h->payload || !FIXED_OK(h->subject)) return 0;
    return hooks_write(s, h, h->event, h->subject, h->payload, req_now(r));
}

/* ---- writes ------------------------------------------------------------ */

static int user_run(sb_store *s, sb_req *r)
{
    if (!FIXED_OK(r->u.user.user_id) || !FIXED_OK(r->u.user.locale))
        return SB_E_INVALID;
    return sb_store_user_upsert(s, r->u.user.user_id, r->u.user.role,
                                r->u.user.locale, req_now(r));
}

static int append_run(sb_store *s, sb_req *r)
{
    r->u.append.duplicate = false;
    if (!r->u.append.msg) return SB_E_INVALID;
    return sb_store_append(s, r->u.append.msg, req_now(r),
                           &r->u.append.duplicate);
}

static void append_undo(sb_req *r)
{
    r->u.append.duplicate = false;
    Sbp__Message *m = r->u.append.msg;
    if (!m) return;
    m->msg_id = 0;
    m->seq = 0;
    m->server_ts = 0;
}

static int create_run(sb_store *s, sb_req *r)
{
    r->u.create.conv = NULL;
    if (r->u.create.n && (!r->u.create.user_ids || !r->u.create.roles))
        return SB_E_INVALID;
    return sb_store_conv_create(s, r->u.create.kind, r->u.create.title,
                                (const char *const *)r->u.create.user_ids,
                                r->u.create.roles, r->u.create.n, req_now(r),
                                &r->u.create.conv);
}

static void create_undo(sb_req *r)
{
    conv_drop(&r->u.create.conv);
}

static int cursor_run(sb_store *s, sb_req *r)
{
    if (!FIXED_OK(r->u.cursor.user_id) || !FIXED_OK(r->u.cursor.device_id))
        return SB_E_INVALID;
    return sb_store_cursor_ack(s, r->u.cursor.user_id, r->u.cursor.device_id,
                               r->u.cursor.conv_id, r->u.cursor.seq);
}

static int read_set_run(sb_store *s, sb_req *r)
{
    if (!FIXED_OK(r->u.read.user_id)) return SB_E_INVALID;
    return sb_store_read_set(s, r->u.read.conv_id, r->u.read.user_id,
                             r->u.read.seq);
}

static int svc_open_main(sb_store *s, sb_req *r, int64_t now, bool *follow)
{
    if (!FIXED_OK(r->u.svc_open.customer) || !FIXED_OK(r->u.svc_open.desk) ||
        !FIXED_OK(r->u.svc_open.group) || !FIXED_OK(r->u.svc_open.bot))
        return SB_E_INVALID;
    int rc = sb_store_service_open(s, r->u.svc_open.customer,
                                   r->u.svc_open.desk, r->u.svc_open.group, now,
                                   &r->u.svc_open.conv, &r->u.svc_open.created);
    if (rc || !r->u.svc_open.created) return rc;
    for (size_t i = 0; i < r->n_msgs; i++)
        r->msgs[i]->conv_id = r->u.svc_open.conv->conv_id;
    *follow = true;
    if (!r->u.svc_open.bot[0]) return 0;
    rc = sb_store_member_put(s, r->u.svc_open.conv->conv_id, r->u.svc_open.bot,
                             SBP__ROLE__ROLE_BOT, now);
    return rc ? rc : conv_reload(s, &r->u.svc_open.conv);
}

static int svc_open_run(sb_store *s, sb_req *r)
{
    r->u.svc_open.conv = NULL;
    r->u.svc_open.created = false;
    return with_msgs(s, r, svc_open_main, &r->u.svc_open.conv);
}

static void svc_open_undo(sb_req *r)
{
    conv_drop(&r->u.svc_open.conv);
    r->u.svc_open.created = false;
    msgs_void(r);
}

static int route_main(sb_store *s, sb_req *r, int64_t now, bool *follow)
{
    if (!FIXED_OK(r->u.route.group) || !FIXED_OK(r->u.route.agent) ||
        !FIXED_OK(r->u.route.bot) || !FIXED_OK(r->u.route.note_from))
        return SB_E_INVALID;
    *follow = true;
    /* Assigned again while assigned: a transfer, for the webhooks. */
    bool was_assigned = false;
    if (r->hooks) {
        Sbp__Conversation *before = NULL;
        int rc = sb_store_conv_get(s, r->u.route.conv_id, &before);
        if (rc && rc != SB_E_NOT_FOUND) return rc;
        was_assigned =
            before && before->state == SBP__CONV_STATE__STATE_ASSIGNED;
        conv_drop(&before);
    }
    int rc = sb_store_conv_route(s, r->u.route.conv_id, r->u.route.state,
                                 r->u.route.group, r->u.route.agent, now,
                                 &r->u.route.conv);
    if (rc == 0 && r->u.route.note)
        rc = sb_store_conv_note(s, r->u.route.conv_id, r->u.route.note_from,
                                r->u.route.note);
    if (rc == 0 && r->u.route.bot[0])
        rc = r->u.route.state == SBP__CONV_STATE__STATE_BOT
                 ? sb_store_member_put(s, r->u.route.conv_id, r->u.route.bot,
                                       SBP__ROLE__ROLE_BOT, now)
                 : sb_store_member_del(s, r->u.route.conv_id, r->u.route.bot);
    if (rc == 0 && (r->u.route.note || r->u.route.bot[0]))
        rc = conv_reload(s, &r->u.route.conv);
    if (rc || !r->hooks || !r->u.route.conv) return rc;
    sb_hook_event ev = 0;
    switch (r->u.route.state) {
    case SBP__CONV_STATE__STATE_QUEUED:
        ev = SB_HOOK_CONV_QUEUED;
        break;
    case SBP__CONV_STATE__STATE_ASSIGNED:
        ev = was_assigned ? SB_HOOK_CONV_TRANSFERRED : SB_HOOK_CONV_ASSIGNED;
        break;
    case SBP__CONV_STATE__STATE_CLOSED:
        ev = SB_HOOK_CONV_CLOSED;
        break;
    default:
        return 0;
    }
    return hooks_write_pb(s, r->hooks, ev, r->u.route.conv->customer,
                          &r->u.route.conv->base, now);
}

static int route_run(sb_store *s, sb_req *r)
{
    r->u.route.conv = NULL;
    return with_msgs(s, r, route_main, &r->u.route.conv);
}

static void route_undo(sb_req *r)
{
    conv_drop(&r->u.route.conv);
    msgs_void(r);
}

static int recall_main(sb_store *s, sb_req *r, int64_t now, bool *follow)
{
    (void)now;
    *follow = true;
    return sb_store_recall(s, r->u.recall.conv_id, r->u.recall.seq);
}

static int recall_run(sb_store *s, sb_req *r)
{
    return with_msgs(s, r, recall_main, NULL);
}

/* The arguments of a TAG's event (who, which seq) before the tags. */
#define TAG_EVENT_ARGS 2

/* Puts the tags conv (seq 0) or its message seq has now after ev's first
 * TAG_EVENT_ARGS arguments, in place of any there (a transaction run
 * again runs this again). */
static int tags_into_event(sb_store *s, uint64_t conv_id, uint64_t seq,
                           Sbp__Event *ev)
{
    while (ev->n_args > TAG_EVENT_ARGS)
        free(ev->args[--ev->n_args]);
    Sbp__Conversation *c = NULL;
    Sbp__Message *m = NULL;
    int rc = seq ? sb_store_msg_get(s, conv_id, seq, &m)
                 : sb_store_conv_get(s, conv_id, &c);
    if (rc) return rc == SB_E_NOT_FOUND ? SB_E_STORE : rc;
    char **tags = seq ? m->tags : c->tags;
    size_t n = seq ? m->n_tags : c->n_tags;
    char **args = realloc(ev->args, (ev->n_args + n + 1) * sizeof *args);
    if (!args) {
        rc = -ENOMEM;
        goto out;
    }
    ev->args = args;
    /* The tags move from the read into the event. */
    for (size_t i = 0; i < n; i++) {
        args[ev->n_args++] = tags[i];
        tags[i] = NULL;
    }
    if (seq)
        m->n_tags = 0;
    else
        c->n_tags = 0;
out:
    if (m) sbp__message__free_unpacked(m, NULL);
    if (c) sbp__conversation__free_unpacked(c, NULL);
    return rc;
}

static int tag_main(sb_store *s, sb_req *r, int64_t now, bool *follow)
{
    (void)now;
    if ((r->u.tag.n_add && !r->u.tag.add) ||
        (r->u.tag.n_remove && !r->u.tag.remove))
        return SB_E_INVALID;
    *follow = true;
    int rc = sb_store_tag(s, r->u.tag.conv_id, r->u.tag.seq, r->u.tag.add,
                          r->u.tag.n_add, r->u.tag.remove, r->u.tag.n_remove);
    if (rc == 0 && r->n_msgs && r->msgs[0]->event)
        rc = tags_into_event(s, r->u.tag.conv_id, r->u.tag.seq,
                             r->msgs[0]->event);
    return rc;
}

static int tag_run(sb_store *s, sb_req *r)
{
    return with_msgs(s, r, tag_main, NULL);
}

/* Time 0: the store finds the agent's reply. */
static int first_response_run(sb_store *s, sb_req *r)
{
    return sb_store_first_response(s, r->u.first_response.conv_id, 0);
}

/* Every key of a CONFIG_SET, or none: a refusal of one undoes the others. */
static int config_set_run(sb_store *s, sb_req *r)
{
    if (r->u.config.n == 0 || r->u.config.n > SB_REQ_CONFIG_KEYS_MAX)
        return SB_E_INVALID;
    for (size_t i = 0; i < r->u.config.n; i++)
        if (!FIXED_OK(r->u.config.keys[i]) ||
            (r->u.config.lens[i] && !r->u.config.values[i]))
            return SB_E_INVALID;
    int64_t now = req_now(r);
    int rc = sb__store_savepoint(s);
    if (rc) return rc;
    for (size_t i = 0; rc == 0 && i < r->u.config.n; i++)
        rc = sb_store_config_set(s, r->u.config.keys[i], r->u.config.values[i],
                                 r->u.config.lens[i], now);
    if (rc == 0) return sb__store_savepoint_end(s, true);
    if (!sb_store_rc_is_request_level(rc)) return rc;
    int end = sb__store_savepoint_end(s, false);
    return end ? end : rc;
}

static int media_put_run(sb_store *s, sb_req *r)
{
    return sb_store_media_put(s, &r->u.media_put.m);
}

static void nothing_to_undo(sb_req *r)
{
    (void)r;
}

static int csat_ask_main(sb_store *s, sb_req *r, int64_t now, bool *follow)
{
    int rc = sb_store_csat_ask(s, r->u.csat.conv_id, now, &r->u.csat.asked);
    *follow = rc == 0 && r->u.csat.asked;
    return rc;
}

static int csat_ask_run(sb_store *s, sb_req *r)
{
    r->u.csat.asked = false;
    return with_msgs(s, r, csat_ask_main, NULL);
}

static void csat_ask_undo(sb_req *r)
{
    r->u.csat.asked = false;
    msgs_void(r);
}

static int csat_set_main(sb_store *s, sb_req *r, int64_t now, bool *follow)
{
    int rc = sb_store_csat_set(s, r->u.csat.conv_id, r->u.csat.rating,
                               r->u.csat.comment, now);
    if (rc) return rc;
    *follow = true;
    return sb_store_conv_get(s, r->u.csat.conv_id, &r->u.csat.conv);
}

static int csat_set_run(sb_store *s, sb_req *r)
{
    r->u.csat.conv = NULL;
    return with_msgs(s, r, csat_set_main, &r->u.csat.conv);
}

static void csat_set_undo(sb_req *r)
{
    conv_drop(&r->u.csat.conv);
    msgs_void(r);
}

static int notes_open_run(sb_store *s, sb_req *r)
{
    r->u.notes.conv = NULL;
    r->u.notes.changed = false;
    if (r->u.notes.n > SB_NOTE_MENTIONS_MAX + 1) return SB_E_INVALID;
    const char *ids[SB_NOTE_MENTIONS_MAX + 1];
    for (size_t i = 0; i < r->u.notes.n; i++) {
        if (!FIXED_OK(r->u.notes.user_ids[i])) return SB_E_INVALID;
        ids[i] = r->u.notes.user_ids[i];
    }
    /* Made and joined as one: a refusal of a member undoes the making. */
    int rc = sb__store_savepoint(s);
    if (rc) return rc;
    rc = sb_store_notes_open(s, r->u.notes.conv_id, r->u.notes.create, ids,
                             r->u.notes.roles, r->u.notes.n, req_now(r),
                             &r->u.notes.conv, &r->u.notes.changed);
    if (rc == 0) return sb__store_savepoint_end(s, true);
    if (!sb_store_rc_is_request_level(rc)) return rc;
    int end = sb__store_savepoint_end(s, false);
    return end ? end : rc;
}

static void notes_open_undo(sb_req *r)
{
    conv_drop(&r->u.notes.conv);
    r->u.notes.changed = false;
}

/* Whose contact r asks for: the customer of its service conversation,
 * which the asker must be a member of (unless all), or the user it names
 * (all only). */
static int contact_subject(sb_store *s, sb_req *r)
{
    if (!FIXED_OK(r->u.contact.user_id) || !FIXED_OK(r->u.contact.asker))
        return SB_E_INVALID;
    if (r->u.contact.conv_id == 0) return r->u.contact.all ? 0 : SB_E_FORBIDDEN;
    Sbp__Conversation *c = NULL;
    int rc = sb_store_conv_get(s, r->u.contact.conv_id, &c);
    if (rc) return rc;
    bool member = false;
    for (size_t i = 0; i < c->n_members; i++)
        member |= strcmp(c->members[i]->user_id, r->u.contact.asker) == 0;
    if (!member && !r->u.contact.all)
        rc = SB_E_FORBIDDEN;
    else if (c->kind != SBP__CONV_KIND__CONV_SERVICE || !c->customer[0] ||
             strlen(c->customer) > SB_ID_BYTES_MAX)
        rc = SB_E_INVALID;
    else
        strcpy(r->u.contact.user_id, c->customer);
    conv_drop(&c);
    return rc;
}

/* An empty contact of user_id, for a customer none was set for. */
static int contact_empty(const char *user_id, Sbp__Contact **out)
{
    Sbp__Contact *c = malloc(sizeof *c);
    if (!c) return -ENOMEM;
    sbp__contact__init(c);
    if (!(c->user_id = strdup(user_id))) {
        free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

static void contact_undo(sb_req *r)
{
    if (r->u.contact.contact)
        sbp__contact__free_unpacked(r->u.contact.contact, NULL);
    r->u.contact.contact = NULL;
    for (size_t i = 0; i < r->u.contact.n_convs; i++)
        sbp__conversation__free_unpacked(r->u.contact.convs[i], NULL);
    free(r->u.contact.convs);
    r->u.contact.convs = NULL;
    r->u.contact.n_convs = 0;
}

static int contact_set_run(sb_store *s, sb_req *r)
{
    r->u.contact.contact = NULL;
    r->u.contact.convs = NULL;
    r->u.contact.n_convs = 0;
    int rc = contact_subject(s, r);
    if (rc) return rc;
    sb_store_contact_change ch = r->u.contact.change;
    if (!ch.by || !ch.by[0]) ch.by = r->u.contact.asker;
    rc = sb_store_contact_put(s, r->u.contact.user_id, &ch, req_now(r),
                              &r->u.contact.contact);
    if (rc == 0)
        rc =
            sb_store_customer_convs(s, r->u.contact.user_id, 0,
                                    &r->u.contact.convs, &r->u.contact.n_convs);
    if (rc) contact_undo(r);
    return rc;
}

/* An event of its own: the outbox rows are the request (hooks_explicit
 * runs them with every write). */
static int outbox_add_run(sb_store *s, sb_req *r)
{
    (void)s;
    return r->hooks && r->hooks->event && r->hooks->payload ? 0 : SB_E_INVALID;
}

static int outbox_claim_run(sb_store *s, sb_req *r)
{
    return sb_store_outbox_claim(s, req_now(r), r->u.outbox.lease_ms,
                                 r->u.outbox.limit, &r->u.outbox.rows,
                                 &r->u.outbox.n_rows);
}

static void outbox_claim_undo(sb_req *r)
{
    sb_store_hooks_free(r->u.outbox.rows, r->u.outbox.n_rows);
    r->u.outbox.rows = NULL;
    r->u.outbox.n_rows = 0;
}

static int outbox_result_run(sb_store *s, sb_req *r)
{
    if (!FIXED_OK(r->u.outbox.error)) return SB_E_INVALID;
    return sb_store_outbox_result(s, r->u.outbox.id, r->u.outbox.delivered,
                                  r->u.outbox.give_up, r->u.outbox.attempts,
                                  r->u.outbox.next_ts, r->u.outbox.error);
}

static int outbox_replay_run(sb_store *s, sb_req *r)
{
    return sb_store_outbox_replay(s, r->u.outbox.id, req_now(r),
                                  &r->u.outbox.n);
}

static int user_erase_run(sb_store *s, sb_req *r)
{
    if (!FIXED_OK(r->u.erase.user_id)) return SB_E_INVALID;
    return sb_store_user_erase(s, r->u.erase.user_id, &r->u.erase.erased);
}

/* ---- reads ------------------------------------------------------------- */

static int conv_get_run(sb_store *s, sb_req *r)
{
    r->u.conv_get.conv = NULL;
    return sb_store_conv_get(s, r->u.conv_get.conv_id, &r->u.conv_get.conv);
}

static int sync_run(sb_store *s, sb_req *r)
{
    r->u.sync.resp = NULL;
    if (!FIXED_OK(r->u.sync.user_id) ||
        (r->u.sync.n_cursors && !r->u.sync.cursors))
        return SB_E_INVALID;
    return sb_store_sync(s, r->u.sync.user_id, r->u.sync.all, r->u.sync.cursors,
                         r->u.sync.n_cursors, r->u.sync.limit,
                         r->u.sync.bytes_max, &r->u.sync.resp);
}

static int history_run(sb_store *s, sb_req *r)
{
    r->u.history.resp = NULL;
    return sb_store_history(s, r->u.history.conv_id, r->u.history.before_seq,
                            r->u.history.limit, &r->u.history.resp);
}

static int msg_get_run(sb_store *s, sb_req *r)
{
    r->u.msg_get.msg = NULL;
    return sb_store_msg_get(s, r->u.msg_get.conv_id, r->u.msg_get.seq,
                            &r->u.msg_get.msg);
}

static int conv_list_run(sb_store *s, sb_req *r)
{
    r->u.conv_list.resp = NULL;
    if (!FIXED_OK(r->u.conv_list.user_id) || !FIXED_OK(r->u.conv_list.tag) ||
        !FIXED_OK(r->u.conv_list.cursor) ||
        (r->u.conv_list.n_groups && !r->u.conv_list.groups))
        return SB_E_INVALID;
    return sb_store_conv_list(
        s, r->u.conv_list.user_id, r->u.conv_list.all, r->u.conv_list.state,
        r->u.conv_list.tag, r->u.conv_list.groups,
        r->u.conv_list.groups ? r->u.conv_list.n_groups : 0,
        r->u.conv_list.cursor, r->u.conv_list.limit, &r->u.conv_list.resp);
}

static int search_run(sb_store *s, sb_req *r)
{
    r->u.search.resp = NULL;
    if (!FIXED_OK(r->u.search.user_id) || !r->u.search.query)
        return SB_E_INVALID;
    return sb_store_search(s, r->u.search.user_id, r->u.search.all,
                           r->u.search.conv_id, r->u.search.query,
                           r->u.search.limit, &r->u.search.resp);
}

static int outbox_failed_run(sb_store *s, sb_req *r)
{
    r->u.outbox.rows = NULL;
    r->u.outbox.n_rows = 0;
    return sb_store_outbox_failed(s, r->u.outbox.limit, &r->u.outbox.rows,
                                  &r->u.outbox.n_rows);
}

static int service_convs_run(sb_store *s, sb_req *r)
{
    r->u.service_convs.list = NULL;
    r->u.service_convs.n = 0;
    return sb_store_service_convs(s, r->u.service_convs.state,
                                  &r->u.service_convs.list,
                                  &r->u.service_convs.n);
}

static int report_run(sb_store *s, sb_req *r)
{
    r->u.report.resp = NULL;
    r->u.report.err[0] = '\0';
    if (!FIXED_OK(r->u.report.query.tz) || !FIXED_OK(r->u.report.query.desk) ||
        !FIXED_OK(r->u.report.query.group) ||
        !FIXED_OK(r->u.report.query.agent))
        return SB_E_INVALID;
    return sb_report_run(s, &r->u.report.query, &r->u.report.resp,
                         r->u.report.err, sizeof r->u.report.err);
}

/* A contact never set is an empty one, as long as its user is a
 * conversation's customer; one never set of a user with no conversation
 * is not found. */
static int contact_get_run(sb_store *s, sb_req *r)
{
    r->u.contact.contact = NULL;
    r->u.contact.convs = NULL;
    r->u.contact.n_convs = 0;
    int rc = contact_subject(s, r);
    if (rc) return rc;
    rc = sb_store_contact_get(s, r->u.contact.user_id, &r->u.contact.contact);
    bool none = rc == SB_E_NOT_FOUND;
    if (none) rc = 0;
    if (rc == 0)
        rc =
            sb_store_customer_convs(s, r->u.contact.user_id, 0,
                                    &r->u.contact.convs, &r->u.contact.n_convs);
    if (rc == 0 && none && r->u.contact.n_convs == 0 &&
        r->u.contact.conv_id == 0)
        rc = SB_E_NOT_FOUND;
    if (rc == 0 && none)
        rc = contact_empty(r->u.contact.user_id, &r->u.contact.contact);
    if (rc) contact_undo(r);
    return rc;
}

/* Each key's value, or NULL for one with nothing stored; on a failure,
 * none. */
static int config_get_run(sb_store *s, sb_req *r)
{
    size_t n = r->u.config.n;
    if (n == 0 || n > SB_REQ_CONFIG_KEYS_MAX) return SB_E_INVALID;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        r->u.config.values[i] = NULL;
        r->u.config.lens[i] = 0;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!FIXED_OK(r->u.config.keys[i])) {
            rc = SB_E_INVALID;
            break;
        }
        rc = sb_store_config_get(s, r->u.config.keys[i], &r->u.config.values[i],
                                 &r->u.config.lens[i]);
        if (rc == SB_E_NOT_FOUND) rc = 0;
    }
    if (rc)
        for (size_t i = 0; i < n; i++) {
            free(r->u.config.values[i]);
            r->u.config.values[i] = NULL;
        }
    return rc;
}

/* Each id's record as the user may see it; one the user may not see is
 * not a failure of the request. */
static int media_get_run(sb_store *s, sb_req *r)
{
    if (!FIXED_OK(r->u.media_get.user_id) ||
        (r->u.media_get.n && (!r->u.media_get.ids || !r->u.media_get.out)))
        return SB_E_INVALID;
    for (size_t i = 0; i < r->u.media_get.n; i++) {
        sb_store_media *m = &r->u.media_get.out[i];
        int rc =
            sb_store_media_get(s, r->u.media_get.ids[i], r->u.media_get.user_id,
                               r->u.media_get.all, m);
        if (rc == SB_E_NOT_FOUND)
            m->id[0] = '\0';
        else if (rc)
            return rc;
    }
    return 0;
}

/* ---- blobs --------------------------------------------------------------- */

static int blob_put_run(sb_store *s, sb_req *r)
{
    if (!r->u.blob.path) return SB_E_INVALID;
    return sb_store_blob_put(s, r->u.blob.sha256, r->u.blob.path,
                             r->u.blob.size);
}

static int blob_read_run(sb_store *s, sb_req *r)
{
    r->u.blob.got = 0;
    if (!r->u.blob.buf || r->u.blob.cap == 0) return SB_E_INVALID;
    return sb_store_blob_read(s, r->u.blob.sha256, r->u.blob.off, r->u.blob.buf,
                              r->u.blob.cap, &r->u.blob.got);
}

static int blob_gc_run(sb_store *s, sb_req *r)
{
    r->u.blob_gc.removed = 0;
    return sb_store_blob_gc(s, r->u.blob_gc.older_than_ms,
                            &r->u.blob_gc.removed);
}

/* ---- conversations written ---------------------------------------------- */

static uint64_t append_conv(const sb_req *r)
{
    return r->u.append.msg ? r->u.append.msg->conv_id : 0;
}

static uint64_t route_conv(const sb_req *r)
{
    return r->u.route.conv_id;
}

static uint64_t recall_conv(const sb_req *r)
{
    return r->u.recall.conv_id;
}

static uint64_t tag_conv(const sb_req *r)
{
    return r->u.tag.conv_id;
}

static uint64_t first_response_conv(const sb_req *r)
{
    return r->u.first_response.conv_id;
}

static uint64_t csat_conv(const sb_req *r)
{
    return r->u.csat.conv_id;
}

static uint64_t no_conv(const sb_req *r)
{
    (void)r;
    return 0;
}

/* ---- the table --------------------------------------------------------- */

#define WRITE(k, fn, cv, un)                                                   \
    [SB_REQ_##k] = {                                                           \
        .name = #k,                                                            \
        .write = true,                                                         \
        .run = fn,                                                             \
        .conv = cv,                                                            \
        .undo = un,                                                            \
    }
#define READ(k, fn)                                                            \
    [SB_REQ_##k] = {                                                           \
        .name = #k,                                                            \
        .run = fn,                                                             \
        .undo = nothing_to_undo,                                               \
    }
#define BLOB(k, fn)                                                            \
    [SB_REQ_##k] = {                                                           \
        .name = #k,                                                            \
        .blob = true,                                                          \
        .run = fn,                                                             \
        .undo = nothing_to_undo,                                               \
    }
#define LONG_READ(k, fn)                                                       \
    [SB_REQ_##k] = {                                                           \
        .name = #k,                                                            \
        .run = fn,                                                             \
        .undo = nothing_to_undo,                                               \
        .long_read = true,                                                     \
    }

const sb__req_op sb__req_ops[] = {
    WRITE(USER_UPSERT, user_run, no_conv, nothing_to_undo),
    WRITE(MSG_APPEND, append_run, append_conv, append_undo),
    WRITE(CONV_CREATE, create_run, no_conv, create_undo),
    WRITE(CURSOR_SET, cursor_run, no_conv, nothing_to_undo),
    WRITE(READ_SET, read_set_run, no_conv, nothing_to_undo),
    WRITE(SERVICE_OPEN, svc_open_run, no_conv, svc_open_undo),
    WRITE(CONV_ROUTE, route_run, route_conv, route_undo),
    WRITE(MSG_RECALL, recall_run, recall_conv, msgs_void),
    WRITE(TAG, tag_run, tag_conv, msgs_void),
    WRITE(FIRST_RESPONSE, first_response_run, first_response_conv,
          nothing_to_undo),
    WRITE(CONFIG_SET, config_set_run, no_conv, nothing_to_undo),
    WRITE(OUTBOX_ADD, outbox_add_run, no_conv, nothing_to_undo),
    WRITE(OUTBOX_CLAIM, outbox_claim_run, no_conv, outbox_claim_undo),
    WRITE(OUTBOX_RESULT, outbox_result_run, no_conv, nothing_to_undo),
    WRITE(OUTBOX_REPLAY, outbox_replay_run, no_conv, nothing_to_undo),
    WRITE(USER_ERASE, user_erase_run, no_conv, nothing_to_undo),
    WRITE(MEDIA_PUT, media_put_run, no_conv, nothing_to_undo),
    WRITE(CSAT_ASK, csat_ask_run, csat_conv, csat_ask_undo),
    WRITE(CSAT_SET, csat_set_run, csat_conv, csat_set_undo),
    WRITE(NOTES_OPEN, notes_open_run, no_conv, notes_open_undo),
    WRITE(CONTACT_SET, contact_set_run, no_conv, contact_undo),
    READ(CONV_GET, conv_get_run),
    READ(SYNC, sync_run),
    READ(HISTORY, history_run),
    READ(MSG_GET, msg_get_run),
    READ(CONV_LIST, conv_list_run),
    READ(SEARCH, search_run),
    READ(SERVICE_CONVS, service_convs_run),
    READ(CONFIG_GET, config_get_run),
    READ(OUTBOX_FAILED, outbox_failed_run),
    READ(MEDIA_GET, media_get_run),
    BLOB(BLOB_PUT, blob_put_run),
    BLOB(BLOB_READ, blob_read_run),
    BLOB(BLOB_GC, blob_gc_run),
    LONG_READ(REPORT, report_run),
    READ(CONTACT_GET, contact_get_run),
};
_Static_assert(sizeof sb__req_ops / sizeof sb__req_ops[0] == SB_REQ__COUNT,
               "one sb__req_ops row per request kind");

void sb__req_hooks_free(sb_req *r)
{
    if (!r->hooks) return;
    free(r->hooks->payload);
    free(r->hooks);
    r->hooks = NULL;
}

bool sb__req_kind_ok(sb_req_kind k)
{
    return (unsigned)k < SB_REQ__COUNT && sb__req_ops[k].run;
}

bool sb_req_is_write(sb_req_kind k)
{
    return sb__req_kind_ok(k) && sb__req_ops[k].write;
}

/* ---- batches ----------------------------------------------------------------
 */

int sb__req_scratch_init(sb__req_scratch *x, size_t cap)
{
    x->items = malloc(cap * sizeof *x->items);
    x->cursors = malloc(cap * sizeof *x->cursors);
    x->ids = malloc(cap * sizeof *x->ids);
    x->cap = cap;
    if (x->items && x->cursors && x->ids) return 0;
    sb__req_scratch_free(x);
    return -ENOMEM;
}

void sb__req_scratch_free(sb__req_scratch *x)
{
    free(x->items);
    free(x->cursors);
    free(x->ids);
    *x = (sb__req_scratch){0};
}

static int id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Locks the conversations the batch writes, in conv_id order. */
static int lock_convs(sb_store *s, sb_req *batch, sb__req_scratch *x)
{
    size_t n = 0;
    for (sb_req *r = batch; r; r = r->next) {
        uint64_t id = sb__req_ops[r->kind].conv(r);
        if (id) x->ids[n++] = id;
    }
    qsort(x->ids, n, sizeof *x->ids, id_cmp);
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (w == 0 || x->ids[w - 1] != x->ids[i]) x->ids[w++] = x->ids[i];
    return sb_store_lock_convs(s, x->ids, w);
}

/* Stores the run of consecutive appends that starts at *rp together, and
 * moves *rp past it. Returns 0 or the failure that dooms the batch. */
static int append_run_many(sb_store *s, sb_req **rp, sb__req_scratch *x)
{
    size_t n = 0;
    sb_req *r;
    for (r = *rp; r && r->kind == SB_REQ_MSG_APPEND; r = r->next) {
        sb_store_append_item *a = &x->items[n++];
        *a = (sb_store_append_item){.msg = r->u.append.msg,
                                    .now_ms = req_now(r)};
        if (!a->msg) a->rc = SB_E_INVALID;
    }
    int rc = sb_store_append_many(s, x->items, n);
    n = 0;
    for (r = *rp; r && r->kind == SB_REQ_MSG_APPEND; r = r->next) {
        r->rc = x->items[n].rc;
        r->u.append.duplicate = x->items[n++].duplicate;
    }
    *rp = r;
    return rc;
}

/* Stores the batch's device cursors together. */
static int cursors_many(sb_store *s, sb_req *batch, sb__req_scratch *x)
{
    size_t n = 0;
    for (sb_req *r = batch; r; r = r->next) {
        if (r->kind != SB_REQ_CURSOR_SET) continue;
        if (!FIXED_OK(r->u.cursor.user_id) ||
            !FIXED_OK(r->u.cursor.device_id)) {
            r->rc = SB_E_INVALID;
            continue;
        }
        r->rc = 0;
        x->cursors[n++] = (sb_store_cursor_item){
            .user_id = r->u.cursor.user_id,
            .device_id = r->u.cursor.device_id,
            .conv_id = r->u.cursor.conv_id,
            .seq = r->u.cursor.seq,
        };
    }
    if (n == 0) return 0;
    int rc = sb_store_cursor_ack_many(s, x->cursors, n);
    n = 0;
    for (sb_req *r = batch; r; r = r->next)
        if (r->kind == SB_REQ_CURSOR_SET && r->rc == 0)
            r->rc = x->cursors[n++].rc;
    return rc;
}

/* The outbox rows of the batch's requests that were carried out: the
 * events of stored messages and those requests carry themselves (a
 * route's are written in its own savepoint). A failure dooms the batch. */
static int hooks_batch(sb_store *s, sb_req *batch)
{
    for (sb_req *r = batch; r; r = r->next) {
        if (!r->hooks || r->rc) continue;
        int rc = 0;
        Sbp__Message *m = r->u.append.msg;
        if (r->kind == SB_REQ_MSG_APPEND && m && !r->u.append.duplicate)
            rc = hooks_write_pb(s, r->hooks,
                                r->u.append.note ? SB_HOOK_NOTE_CREATED
                                                 : SB_HOOK_MESSAGE_CREATED,
                                m->sender, &m->base, req_now(r));
        if (rc == 0) rc = hooks_explicit(s, r);
        if (rc && !sb_store_rc_is_request_level(rc))
            return rc == SB_E_RETRY ? SB_E_RETRY : SB_E_STORE;
    }
    return 0;
}

/* One run of the batch's transaction: 0 once committed. */
static int batch_try(sb_store *s, sb_req *batch, sb__req_scratch *x)
{
    int rc = sb_store_begin(s);
    if (rc == 0) rc = lock_convs(s, batch, x);
    for (sb_req *r = batch; r && rc == 0;) {
        if (r->kind == SB_REQ_MSG_APPEND) {
            rc = append_run_many(s, &r, x);
            continue;
        }
        if (r->kind != SB_REQ_CURSOR_SET) {
            r->rc = sb__req_ops[r->kind].run(s, r);
            if (r->rc && !sb_store_rc_is_request_level(r->rc))
                rc = r->rc == SB_E_RETRY ? SB_E_RETRY : SB_E_STORE;
        }
        r = r->next;
    }
    if (rc == 0) rc = hooks_batch(s, batch);
    if (rc == 0) rc = cursors_many(s, batch, x);
    if (rc == 0) rc = sb_store_commit(s);
    if (rc == 0) return 0;
    sb_store_rollback(s);
    for (sb_req *r = batch; r; r = r->next) {
        r->rc = SB_E_STORE;
        sb__req_ops[r->kind].undo(r);
    }
    return rc;
}

bool sb__req_write_batch(sb_store *s, sb_req *batch, sb__req_scratch *x)
{
    sb_store_append_item item;
    sb_store_cursor_item cursor;
    uint64_t id;
    sb__req_scratch one = {&item, &cursor, &id, 1};
    if (!x) {
        assert(!batch->next);
        x = &one;
    }
    int rc;
    for (int i = 0; (rc = batch_try(s, batch, x)) == SB_E_RETRY; i++)
        if (i == RETRIES_MAX) break;
    for (sb_req *r = batch; r; r = r->next)
        sb__req_hooks_free(r);
    return rc == 0;
}
