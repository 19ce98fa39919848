/* Customer-service devices for integration tests, on top of itest.h.
 *
 * - its_server_start(): the server with a desk file written into its data
 *   folder (--desk, --durability os).
 * - its_dev: one sb_client with the customer-service callbacks, recording
 *   what it is told: the messages surfaced per conversation (with events,
 *   quotes, quick replies, recalls), the last CONV_UPDATE per
 *   conversation, the answer to every request by rid (its payload packed,
 *   or the admin text), the last send's status, typing. Seq must be dense
 *   and ascending per conversation, each rid answered once, a queued
 *   conversation have a position: every breach is counted as a violation
 *   (on the device and on the env) with a line on stderr.
 * - its_ctx: the devices of one test, freed together in its teardown.
 * - bounded waits for answers, sends, messages and states (failing the
 *   test with what was seen when they do not come).
 *
 * Everything runs on the thread that made the env; the waits use cmocka's
 * fail_msg. */
#ifndef SB_ITSVC_H
#define SB_ITSVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "itest.h"

#define ITS_WAIT_MS 10000
#define ITS_DEVS_MAX 32
#define ITS_CONVS_MAX 16
#define ITS_ANS_MAX 256
#define ITS_BODY_BYTES 256
#define ITS_RECALLED_MAX 16
#define ITS_ARGS_MAX 6
#define ITS_MEMBERS_MAX 8
#define ITS_PRESENCE_MAX 32

/* Writes desk into a new data folder /tmp/<tag>.XXXXXX (e is initialised
 * here) and starts the server with it. One server at a time. */
void its_server_start(it_env *e, const char *tag, const char *desk);
/* The same with more options (NULL-terminated; at most 8). */
void its_server_start_with(it_env *e, const char *tag, const char *desk,
                           const char *const *extra);

/* One surfaced message. */
typedef struct its_msg {
    uint64_t seq, msg_id, quote_seq;
    Sbp__MsgType type;
    char sender[SB_ID_BYTES_MAX + 1];
    char body[ITS_BODY_BYTES];
    char event[32]; /* event key */
    bool has_quote, recalled;
    uint64_t q_seq;
    char q_sender[SB_ID_BYTES_MAX + 1];
    char q_body[ITS_BODY_BYTES];
    size_t n_quick;
    char quick[2][64]; /* the first quick replies' titles */
    size_t n_args;     /* an event's arguments, the first ITS_ARGS_MAX */
    char args[ITS_ARGS_MAX][48];
    size_t n_tags; /* as surfaced (a pushed message has none yet) */
} its_msg;

/* A member's receipts as a CONV_UPDATE gave them. */
typedef struct its_member {
    char user[SB_ID_BYTES_MAX + 1];
    uint64_t read_seq, delivered_seq;
} its_member;

typedef struct its_conv {
    uint64_t conv_id;
    its_msg *msgs; /* msgs[i].seq == i + 1 */
    size_t n, cap;
    /* The last CONV_UPDATE. */
    unsigned updates;
    Sbp__ConvState state;
    char agent[SB_ID_BYTES_MAX + 1], group[SB_ID_BYTES_MAX + 1];
    uint32_t queue_pos;
    size_t members;
    its_member member[ITS_MEMBERS_MAX];             /* the first members */
    char note[256], note_from[SB_ID_BYTES_MAX + 1]; /* transfer_note */
    uint32_t csat_rating; /* and its comment, as the last update says */
    char csat_comment[ITS_BODY_BYTES];
    /* on_recalled calls */
    uint64_t recalled[ITS_RECALLED_MAX];
    size_t n_recalled;
} its_conv;

enum {
    ITS_ANS_OPEN = 1,
    ITS_ANS_HISTORY,
    ITS_ANS_DONE,
    ITS_ANS_AGENT,
    ITS_ANS_LIST,
    ITS_ANS_SEARCH,
    ITS_ANS_CANNED,
    ITS_ANS_ADMIN,
    ITS_ANS_AGENTS,
    ITS_ANS_REPORT,
    ITS_ANS_CONTACT
};

/* One answer to a request: its payload packed, if any (unpack it with the
 * kind's sbp__*__unpack), or the admin text. */
typedef struct its_ans {
    uint32_t rid;
    int kind, err;
    uint8_t *buf;
    size_t len;
    char *text; /* ITS_ANS_ADMIN: the answer or the reason ("" if none) */
} its_ans;

typedef struct its_dev {
    it_env *env;
    char name[160]; /* "user/device" */
    char user[SB_ID_BYTES_MAX + 1], device[SB_ID_BYTES_MAX + 1];
    char locale[16];
    char token[1024];
    char url[1024]; /* the env's url when the device was made */
    sb_client_config cfg;
    sb_client *c; /* NULL once freed */
    its_conv convs[ITS_CONVS_MAX];
    size_t n_convs;
    its_ans ans[ITS_ANS_MAX];
    size_t n_ans;
    /* The last send (its_say*): its status and, when SENT, its seq. */
    uint8_t last_id[SB_CLIENT_MSG_ID_BYTES];
    sb_client_send_status last_status;
    int last_send_err;
    uint64_t last_send_seq;
    char last_stored_body[ITS_BODY_BYTES]; /* SENT: stored_body, or "" */
    /* AGENT_PRESENCE pushes, in order. */
    size_t n_presence;
    struct {
        char user[SB_ID_BYTES_MAX + 1];
        Sbp__AgentStatus status;
    } presence[ITS_PRESENCE_MAX];
    unsigned typing_on, typing_off;
    char typing_user[SB_ID_BYTES_MAX + 1];
    unsigned errors; /* ERROR frames tied to no request */
    /* NOTE_MENTIONs: how many, and the last one's. */
    unsigned mentions;
    uint64_t mention_conv, mention_notes;
    char mention_body[ITS_BODY_BYTES];
    char mention_from[SB_ID_BYTES_MAX + 1];
    unsigned violations;
} its_dev;

/* The devices of a test. */
typedef struct its_ctx {
    it_env *env;
    const char *client_name; /* cfg.client_name, and stderr lines */
    uint32_t requests_max;   /* cfg.requests_max (0: the SDK's) */
    its_dev *devs[ITS_DEVS_MAX];
    size_t n_devs;
} its_ctx;

/* A device of user (role "customer", "agent", "bot" or "admin") with
 * device id device and locale, connected (encoding x->env->enc, a fresh
 * token, small backoff) and READY. */
its_dev *its_connect(its_ctx *x, const char *user, const char *role,
                     const char *device, const char *locale);
/* The same with a token of the caller's (e.g. one minted by the server). */
its_dev *its_connect_token(its_ctx *x, const char *user, const char *token,
                           const char *device, const char *locale);
/* Disconnects d and waits until its client is freed. */
void its_stop(its_dev *d);
/* Closes every client, waits until they are freed, frees the devices.
 * Returns false (with a line on stderr) if some client was not freed. */
bool its_free_all(its_ctx *x);

/* ---- requests and answers ------------------------------------------------ */

/* The answer to rid (NULL if none yet). */
its_ans *its_ans_find(its_dev *d, uint32_t rid);
/* Waits for the answer to rid (the call that made it returned rc). */
its_ans *its_wait_ans(its_dev *d, int rc, uint32_t rid, const char *what);
/* Opens d's service conversation with desk "d"; returns its id, and the
 * number of its members in *members (if not NULL). */
uint64_t its_open_service(its_dev *d, size_t *members);

/* ---- sends ----------------------------------------------------------------
 */

/* Sends text of type (quoting quote_seq) and waits for SENT or FAILED:
 * 0 (the seq in d->last_send_seq) or the error. */
int its_say_type(its_dev *d, uint64_t conv, Sbp__MsgType type, const char *text,
                 uint64_t quote_seq);
int its_say(its_dev *d, uint64_t conv, const char *text, uint64_t quote_seq);
/* A robot message with n quick replies, likewise. */
int its_say_robot(its_dev *d, uint64_t conv, const char *text,
                  const char *const *quick, size_t n);
/* its_say() that must be SENT; returns the seq. */
uint64_t its_say_ok(its_dev *d, uint64_t conv, const char *text,
                    uint64_t quote_seq);

/* ---- what devices surfaced ----------------------------------------------- */

/* d's record of conv (NULL if d was told nothing of it). */
its_conv *its_conv_of(its_dev *d, uint64_t conv);

/* A message to look for: each field that is set must match. */
typedef struct its_match {
    Sbp__MsgType type; /* 0: any */
    const char *event; /* event key */
    const char *sender;
    const char *body; /* substring of the body */
    uint64_t after;   /* seq > after */
} its_match;

const its_msg *its_find_msg(its_dev *d, uint64_t conv, const its_match *m);
/* The message at seq (NULL if not surfaced). */
const its_msg *its_msg_at(its_dev *d, uint64_t conv, uint64_t seq);
/* Waits until every device surfaced a message matching m; checks it is
 * the same message (seq, msg_id) everywhere and returns its seq. */
uint64_t its_expect_all(its_dev **devs, size_t n, uint64_t conv, its_match m,
                        const char *what);
/* Waits until d surfaces a message of conv from sender (NULL: anyone)
 * containing body (NULL: any); returns it. */
const its_msg *its_expect_msg(its_dev *d, uint64_t conv, const char *sender,
                              const char *body);
/* Waits until d was told of user's status st by AGENT_PRESENCE; false
 * when it was not within ms. */
bool its_wait_presence(its_dev *d, const char *user, Sbp__AgentStatus st,
                       int ms);

/* Waits until every device's last CONV_UPDATE of conv says state, and
 * agent, group and queue position pos when given (NULL, NULL, 0: any). */
void its_expect_state(its_dev **devs, size_t n, uint64_t conv,
                      Sbp__ConvState st, const char *agent, const char *group,
                      uint32_t pos);

#endif
