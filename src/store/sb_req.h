/* A store request: one operation on the store of record, its arguments,
 * its results, and whom to tell when it is done. The gateway, the desk
 * manager and tests make requests; a store queue (sb_storeq) carries them
 * out on its threads and calls each one's done callback on the loop thread
 * that submitted it, as libuv calls a uv_write_t's. Neither libuv nor a
 * database appears here: the gateway core includes this header and stays
 * free of both.
 *
 * Ownership: a request belongs to its caller from submit to its done
 * callback, which may free it. The store fills only rc and the fields
 * marked "out" below; "owned by the caller" inputs are never freed by the
 * store, and "out" results are the caller's to free (after the callback),
 * whatever rc says. */
#ifndef SB_REQ_H
#define SB_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_limits.h"
#include "sb_report.h"
#include "sb_store.h"

/* Every kind of request. Writes are applied by the store's writer in
 * batches, one transaction and one commit per batch; reads run beside
 * them. The OPS table (sb_req.c) says which is which and how each runs. */
typedef enum sb_req_kind {
    /* writes */
    SB_REQ_USER_UPSERT,    /* u.user: a user's role and locale, last seen */
    SB_REQ_MSG_APPEND,     /* u.append: store a message (idempotent) */
    SB_REQ_CONV_CREATE,    /* u.create: a new conversation and members */
    SB_REQ_CURSOR_SET,     /* u.cursor: a device has every message through */
    SB_REQ_READ_SET,       /* u.read: a member has read through */
    SB_REQ_SERVICE_OPEN,   /* u.svc_open, then msgs if created */
    SB_REQ_CONV_ROUTE,     /* u.route: state, group, agent, note; then
                              msgs */
    SB_REQ_MSG_RECALL,     /* u.recall: mark a message recalled; then msgs */
    SB_REQ_TAG,            /* u.tag: tags of a conversation or a message;
                              then msgs, the first of them an event whose
                              arguments after its first two become the
                              target's tags after the change */
    SB_REQ_FIRST_RESPONSE, /* u.first_response: an agent has answered */
    SB_REQ_CONFIG_SET,     /* u.config: write keys = values, as one */
    SB_REQ_OUTBOX_ADD,     /* u.outbox: an event for r->hooks' endpoints */
    SB_REQ_OUTBOX_CLAIM,   /* u.outbox: lease the events due */
    SB_REQ_OUTBOX_RESULT,  /* u.outbox: a delivery's outcome */
    SB_REQ_OUTBOX_REPLAY,  /* u.outbox: failed events pending again */
    SB_REQ_USER_ERASE,     /* u.erase: a user's data (GDPR) */
    SB_REQ_MEDIA_PUT,      /* u.media_put: an upload's record */
    SB_REQ_CSAT_ASK,       /* u.csat: a rating asked for; then msgs if it
                              was (not rated yet) */
    SB_REQ_CSAT_SET,       /* u.csat: the customer's rating; then msgs */
    SB_REQ_NOTES_OPEN,     /* u.notes: a conversation's notes, joined */
    SB_REQ_CONTACT_SET,    /* u.contact: a change to a contact */
    /* reads */
    SB_REQ_CONV_GET,      /* u.conv_get: a conversation and its members */
    SB_REQ_SYNC,          /* u.sync: a page of catch-up for a device */
    SB_REQ_HISTORY,       /* u.history: a page of older messages */
    SB_REQ_MSG_GET,       /* u.msg_get: one message */
    SB_REQ_CONV_LIST,     /* u.conv_list: a page of a user's list */
    SB_REQ_SEARCH,        /* u.search: full-text search */
    SB_REQ_SERVICE_CONVS, /* u.service_convs: queued or assigned ones */
    SB_REQ_CONFIG_GET,    /* u.config: read the values of keys */
    SB_REQ_OUTBOX_FAILED, /* u.outbox: the failed events */
    SB_REQ_MEDIA_GET,     /* u.media_get: uploads as a user may see them */
    SB_REQ_REPORT,        /* u.report: a report (a long read: the store
                             queue runs it on a reader of its own) */
    SB_REQ_CONTACT_GET,   /* u.contact: a contact and the customer's
                             conversations */
    /* blobs: neither reads nor writes of the database's rows, they move
     * an upload's bytes, on a thread of their own so that a large one
     * holds up no message */
    SB_REQ_BLOB_PUT,  /* u.blob: store a finished file as a blob */
    SB_REQ_BLOB_READ, /* u.blob: read part of a blob */
    SB_REQ_BLOB_GC,   /* u.blob_gc: remove the blobs no record names */
    SB_REQ__COUNT
} sb_req_kind;

/* Messages stored with a customer-service write, in its transaction: its
 * own events and those of the routing writes it carries on for (a few
 * each). */
#define SB_REQ_MSGS_MAX 8
/* Settings per CONFIG request. */
#define SB_REQ_CONFIG_KEYS_MAX 2

typedef struct sb_req sb_req;

/* Webhook events (sb_webhook), as bits of what an endpoint wants. */
typedef enum sb_hook_event {
    SB_HOOK_MESSAGE_CREATED = 1u << 0,
    SB_HOOK_CONV_QUEUED = 1u << 1,
    SB_HOOK_CONV_ASSIGNED = 1u << 2,
    SB_HOOK_CONV_TRANSFERRED = 1u << 3,
    SB_HOOK_CONV_CLOSED = 1u << 4,
    SB_HOOK_CSAT_SUBMITTED = 1u << 5,
    SB_HOOK_NOTE_CREATED = 1u << 6,
} sb_hook_event;
#define SB_HOOK_EVENTS 7
/* "message.created"... for one bit; NULL for anything else. */
const char *sb_hook_event_name(sb_hook_event e);
/* The bit of a name; 0 if it is none. */
sb_hook_event sb_hook_event_from_name(const char *name);

/* The webhook endpoints that want to hear of a write, attached to it
 * (sb_req.hooks): the events it causes are written to the outbox in its
 * transaction, one row per endpoint that wants the event, so that an
 * event is stored if and only if what it tells of is. A MSG_APPEND that
 * stores a message causes message.created (with the message, not for a
 * duplicate), or note.created for a note (u.append.note); a CONV_ROUTE
 * conversation.queued, .assigned (.transferred when it was assigned already) or
 * .closed (with the conversation); any write with event set causes that event
 * with payload. */
#define SB_REQ_HOOK_ENDPOINTS_MAX 8
typedef struct sb_req_hooks {
    size_t n;
    char endpoint[SB_REQ_HOOK_ENDPOINTS_MAX][SB_ID_BYTES_MAX + 1];
    uint32_t wants[SB_REQ_HOOK_ENDPOINTS_MAX]; /* sb_hook_event bits */
    sb_hook_event event; /* 0: the event the request's kind causes */
    char *payload;       /* with event: its JSON document (malloc'd) */
    char subject[SB_ID_BYTES_MAX + 1]; /* with event: whose data ("") */
} sb_req_hooks;

/* Called once, on the loop thread that submitted req, when the store is
 * done with it (rc set, results filled). It may free req and submit more
 * requests. */
typedef void (*sb_req_done_cb)(sb_req *req);

struct sb_req {
    sb_req_kind kind;
    int rc;              /* out: 0 or a negative code (sb_error.h) */
    sb_req_done_cb done; /* required */
    void *ctx;           /* the owner's object (a gateway, a manager) */
    void *data;          /* the owner's per-request pointer: never read by
                            the store */
    uint64_t owner;      /* the owner's tags (a session id, a frame's */
    uint32_t rid;        /* request id): never read by the store */
    /* The time the request is made at, for what a write records (a
     * message's server_ts, a conversation's updated_ts); 0: the store's
     * clock when it applies the request. */
    int64_t now_ms;
    /* Webhook endpoints to tell of this write (NULL: none); malloc'd, and
     * the store's once submitted: it frees it (and its payload) before
     * done is called. */
    sb_req_hooks *hooks;
    sb_req *next;       /* the queue's link while the store has the request */
    uint64_t queued_ms; /* the queue's: when it was submitted (its clock) */
    union {
        struct {
            Sbp__Message *msg; /* in/out, owned by the caller */
            bool duplicate;    /* out */
            /* The owner's: msg's body is not the one its sender sent (the
             * content filter masked it). Never read by the store. */
            bool masked;
            /* The message goes to a notes conversation: its webhook
             * event is note.created, never message.created. */
            bool note;
        } append;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            Sbp__Role role;
            char locale[SB_LOCALE_BYTES_MAX + 1];
        } user;
        struct {
            Sbp__ConvKind kind;
            char *title;      /* owned by the caller */
            char **user_ids;  /* owned by the caller */
            Sbp__Role *roles; /* owned by the caller */
            size_t n;
            Sbp__Conversation *conv; /* out */
        } create;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            char device_id[SB_ID_BYTES_MAX + 1];
            uint64_t conv_id, seq;
        } cursor;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            uint64_t conv_id, seq;
        } read;
        struct {
            char customer[SB_ID_BYTES_MAX + 1];
            char desk[SB_ID_BYTES_MAX + 1];
            char group[SB_ID_BYTES_MAX + 1];
            /* An external bot ("": none) that joins a conversation this
             * creates, as a member with role bot. */
            char bot[SB_ID_BYTES_MAX + 1];
            Sbp__Conversation *conv; /* out */
            bool created;            /* out */
        } svc_open;
        struct {
            uint64_t conv_id;
            Sbp__ConvState state;
            char group[SB_ID_BYTES_MAX + 1];
            char agent[SB_ID_BYTES_MAX + 1];
            /* An external bot ("": none): it becomes a member (role bot)
             * when state is STATE_BOT, and stops being one otherwise. */
            char bot[SB_ID_BYTES_MAX + 1];
            /* The transfer note set with the move (sb_store_conv_note),
             * owned by the caller; NULL: the note stays as it is. */
            char *note;
            char note_from[SB_ID_BYTES_MAX + 1];
            Sbp__Conversation *conv; /* out */
        } route;
        struct {
            uint64_t conv_id, seq;
        } recall;
        struct {
            uint64_t conv_id, seq; /* seq 0: the conversation */
            char **add, **remove;  /* owned by the caller */
            size_t n_add, n_remove;
        } tag;
        struct {
            /* The time is that of the agent's first message since the
             * conversation was assigned, found by the store. */
            uint64_t conv_id;
        } first_response;
        struct {
            uint64_t conv_id;
            Sbp__Conversation *conv; /* out */
        } conv_get;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            bool all;
            Sbp__Cursor **cursors; /* owned by the caller */
            size_t n_cursors;
            uint32_t limit;
            size_t bytes_max;
            Sbp__SyncResp *resp; /* out */
        } sync;
        struct {
            uint64_t conv_id, before_seq;
            uint32_t limit;
            Sbp__HistoryResp *resp; /* out */
        } history;
        struct {
            uint64_t conv_id, seq;
            Sbp__Message *msg; /* out */
        } msg_get;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            bool all;
            Sbp__ConvState state;
            char tag[SB_TAG_BYTES_MAX + 1];
            char **groups; /* owned by the caller; NULL: none */
            size_t n_groups;
            char cursor[SB_LIST_CURSOR_BYTES_MAX + 1];
            uint32_t limit;
            Sbp__ConvListResp *resp; /* out */
        } conv_list;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            bool all;
            uint64_t conv_id;
            char *query; /* owned by the caller */
            uint32_t limit;
            Sbp__SearchResp *resp; /* out */
        } search;
        struct {
            Sbp__ConvState state;
            Sbp__Conversation **list; /* out */
            size_t n;
        } service_convs;
        struct {
            sb_store_media m;
        } media_put;
        struct {
            int64_t older_than_ms; /* stored before this only */
            uint64_t removed;      /* out */
        } blob_gc;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            bool all; /* an admin: every upload that a message carries */
            /* n ids (owned by the caller), and out[n] (owned by the
             * caller): each id's record, or out[i].id "" for one the
             * user may not see. */
            const char *const *ids;
            size_t n;
            sb_store_media *out;
        } media_get;
        struct {
            uint8_t sha256[SB_SHA256_BYTES];
            /* PUT: the file (owned by the caller; moved or removed
             * once stored) and its size. READ: off and cap bytes into
             * buf (owned by the caller), out: got. */
            char *path;
            uint64_t size, off;
            uint8_t *buf;
            size_t cap, got;
        } blob;
        struct {
            size_t n; /* keys used, 1..SB_REQ_CONFIG_KEYS_MAX */
            char keys[SB_REQ_CONFIG_KEYS_MAX]
                     [SB_STORE_CONFIG_KEY_BYTES_MAX + 1];
            /* SET: the values (owned by the caller) and their lengths;
             * GET: out, NULL for a key with nothing stored. */
            char *values[SB_REQ_CONFIG_KEYS_MAX];
            size_t lens[SB_REQ_CONFIG_KEYS_MAX];
        } config;
        struct {
            int64_t id;     /* RESULT, REPLAY (0: every failed one) */
            bool delivered; /* RESULT */
            bool give_up;   /* RESULT: keep it as failed */
            uint32_t attempts;
            int64_t next_ts;  /* RESULT: due again then */
            int64_t lease_ms; /* CLAIM */
            uint32_t limit;   /* CLAIM, FAILED */
            char error[SB_STORE_HOOK_ERROR_BYTES_MAX + 1]; /* RESULT */
            sb_store_hook *rows; /* out: CLAIM, FAILED (caller frees with
                                    sb_store_hooks_free) */
            size_t n_rows;       /* out */
            uint64_t n;          /* out: REPLAY's count */
        } outbox;
        struct {
            char user_id[SB_ID_BYTES_MAX + 1];
            sb_store_erased erased; /* out */
        } erase;
        struct {
            uint64_t conv_id;
            uint32_t rating; /* CSAT_SET: 1..SB_CSAT_RATING_MAX */
            char *comment;   /* CSAT_SET: owned by the caller; NULL
                                for none */
            /* CSAT_SET: the conversation's customer, for the webhook
             * event (csat.submitted) the shell attaches. */
            char customer[SB_ID_BYTES_MAX + 1];
            bool asked;              /* out (CSAT_ASK) */
            Sbp__Conversation *conv; /* out (CSAT_SET): as rated */
        } csat;
        struct {
            uint64_t conv_id; /* the service conversation */
            bool create;      /* make its notes if it has none */
            /* Users who become members (agents, admins), 0..n. */
            size_t n;
            char user_ids[SB_NOTE_MENTIONS_MAX + 1][SB_ID_BYTES_MAX + 1];
            Sbp__Role roles[SB_NOTE_MENTIONS_MAX + 1];
            Sbp__Conversation *conv; /* out: the notes conversation */
            bool changed;            /* out: made, or a member added */
        } notes;
        struct {
            /* Whose contact: the customer of service conversation conv_id
             * when it is not 0 (asker must be a member of it, unless
             * all), else user_id (all only). user_id is set to the
             * customer's once found. */
            uint64_t conv_id;
            char user_id[SB_ID_BYTES_MAX + 1];
            char asker[SB_ID_BYTES_MAX + 1];
            bool all;
            /* CONTACT_SET: the change (its strings and attributes owned
             * by the caller); change.by is asker unless set. */
            sb_store_contact_change change;
            Sbp__Contact *contact;     /* out: as stored (an empty one with
                                          the user id when none is) */
            Sbp__Conversation **convs; /* out: the customer's
                                          conversations, newest first */
            size_t n_convs;
        } contact;
        struct {
            sb_report_query query;
            Sbp__ReportResp *resp;         /* out */
            char err[SB_REPORT_ERR_BYTES]; /* out: why it failed */
        } report;
    } u;
    /* Messages stored in the same transaction after a SERVICE_OPEN (only
     * if it created the conversation), CONV_ROUTE, MSG_RECALL, TAG,
     * CSAT_SET or CSAT_ASK (only if it asked): each gets
     * its conversation's next seq (the store sets msgs[i]->conv_id for
     * SERVICE_OPEN) at the request's time. Owned by the caller; filled
     * like u.append.msg. A request and its messages are one: if either is
     * refused, neither is stored (rc says why) and no message has a seq. */
    Sbp__Message *msgs[SB_REQ_MSGS_MAX];
    size_t n_msgs;
};

/* Whether requests of kind k are writes (the writer's; the others are
 * reads or blobs). */
bool sb_req_is_write(sb_req_kind k);

#endif
