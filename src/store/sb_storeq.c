/* The store's two threads and their queues: a writer that takes every queued
 * write (up to SB_STOREQ_BATCH_MAX) into one transaction and one commit, and
 * a reader that answers reads one at a time on its own connection. Finished
 * requests go onto a done list that a uv_async drains on the loop thread.
 * Between batches the writer fills the search index (sb_store_index): when
 * it has been idle a moment, or at once when the index lags far behind. */
#include "sb_storeq.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "sb_error.h"

#define INDEX_CHUNK 2000 /* messages indexed per idle transaction */
#define INDEX_BUSY_CHUNK                                                       \
    250 /* per batch when catching up under load: about                        \
           3 ms, so commits behind it barely wait */
#define INDEX_LAG_MAX                                                          \
    1000000              /* behind by more: catch up even when busy            \
                            (it bounds the scan a search makes; below          \
                            it, bursts of appends pay nothing) */
#define INDEX_IDLE_MS 20 /* no write for this long: index */

/* Checkpoints run on a thread of their own, so that a commit never waits
 * for one (they were a third of the writer's time under steady load, and
 * its slowest commits). That thread copies the WAL into the database once
 * CKPT_FRAMES frames are waiting; a WAL only starts over when all of it has
 * been copied at the start of a write, which a steady stream of commits
 * never lets the other thread achieve: past CKPT_RESTART_FRAMES, once the
 * checkpointer has left at most CKPT_TAIL_FRAMES behind, the writer copies
 * that short tail itself between batches and its next commit starts the
 * WAL over. Past twice that it does so whatever the tail (a bound on the
 * WAL, for a checkpointer that cannot keep up). A frame is a 4 KiB page.
 * The writer's copy is its one stall (it ends with a sync of the database
 * file, whose cost grows with the pages copied): with a tail of 256 pages
 * it took 15 - 20 ms every 0.85 s at 10,000 messages/s and made the p99;
 * the checkpointer now goes on until at most 32 are left. Even so the
 * messages that take 10 ms or more come in bunches at each restart (the
 * writer's copy, the chase before it, the first checkpoint of the new
 * WAL): starting over every 32,768 frames (128 MiB, 2 s at that rate)
 * rather than 16,384 halved them and took the open loop's p99 at W=1
 * from a median of 20.6 ms (9 runs, 18-28) to 15.2 (6 runs, 13-21;
 * docs/benchmarks.md). */
#define CKPT_FRAMES 4096
#define CKPT_TAIL_FRAMES 32
#define CKPT_RESTART_FRAMES 32768
/* A checkpoint that failed (a full disk: the database cannot grow) leaves
 * the WAL as it was, so it is still due; it is not tried again for this
 * long (else the checkpointer copies the same frames in a loop, and the
 * writer after every batch once past the restart bound). */
#define CKPT_RETRY_MS 1000
/* One that could not start (a passive checkpoint does not wait: it gives up
 * when it reads the WAL's index while a commit is changing it) is tried
 * again this soon. Under the long pause above, the WAL grew without bound
 * for a second each time this happened (in 2 of 30 runs of
 * test_storeq_checkpoints on a loaded machine: 12 MB for a bound of 1.6). */
#define CKPT_BUSY_RETRY_MS 2

/* The writer's page cache: at 8 MiB (the other connections'), a steady
 * load over 500 conversations missed it for a quarter of its messages. */
#define WRITER_CACHE_KIB (32u << 10)

typedef struct req_list {
    sb_req *head, *tail;
} req_list;

struct sb_storeq {
    uv_loop_t *loop;
    uv_async_t *async; /* heap: outlives q until its close callback */
    sb_storeq_done_cb cb;
    void *ud;
    sb_store *wdb, *rdb; /* the same one for an in-memory database */
    uv_mutex_t db_mu;    /* in-memory only: a batch or a read at a time */
    sb_store *cdb;       /* the checkpointer's; NULL in memory */
    uv_thread_t writer, reader, ckpt;

    uv_mutex_t mu; /* guards everything below up to `pending` */
    uv_cond_t wcond, rcond, ccond;
    req_list wq, rq, done;
    bool stopping;      /* threads finish their queues, then exit */
    bool joined;        /* threads gone: submit completes at once */
    bool hold;          /* test hook: the writer takes no batch */
    uint32_t max_pages; /* test hook: to apply before the next batch */
    bool max_pages_set;
    /* The WAL, as the last commit left it, and what a checkpoint of this
     * WAL (gen counts restarts) has copied into the database. */
    int wal_frames, ckpt_done;
    uint64_t wal_gen;
    bool ckpt_running;      /* a checkpoint, on either thread */
    uint64_t ckpt_retry_ns; /* after a failed one: none before (uv_hrtime) */
    int ckpt_frames, ckpt_tail, ckpt_restart; /* CKPT_* or a test's */
    int hook_frames; /* writer thread only: the WAL hook's last word */

    size_t pending; /* loop thread only */
    bool in_cb;     /* loop thread only: inside a done callback */
    atomic_uint_fast64_t commits;
    atomic_uint_fast64_t checkpoints;
};

static void list_push(req_list *l, sb_req *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

/* Moves a chain of requests to the done list and wakes the loop. Called
 * with q->mu held: sending under the lock orders the send after the push
 * for the loop thread, whatever libuv's own ordering guarantees. */
static void done_push_locked(sb_storeq *q, sb_req *first, sb_req *last)
{
    assert(first && last && !last->next);
    if (q->done.tail)
        q->done.tail->next = first;
    else
        q->done.head = first;
    q->done.tail = last;
    uv_async_send(q->async);
}

bool sb_req_is_write(sb_req_kind k)
{
    switch (k) {
    case SB_REQ_APPEND:
    case SB_REQ_USER:
    case SB_REQ_CONV_CREATE:
    case SB_REQ_CURSOR_ACK:
    case SB_REQ_READ_SET:
    case SB_REQ_SERVICE_OPEN:
    case SB_REQ_ROUTE:
    case SB_REQ_RECALL:
    case SB_REQ_TAG:
    case SB_REQ_FIRST_RESPONSE:
    case SB_REQ_CONFIG_SET:
        return true;
    default:
        return false;
    }
}

static bool kind_is_read(sb_req_kind k)
{
    switch (k) {
    case SB_REQ_CONV_GET:
    case SB_REQ_SYNC:
    case SB_REQ_HISTORY:
    case SB_REQ_RECEIPTS:
    case SB_REQ_MSG_GET:
    case SB_REQ_CONV_LIST:
    case SB_REQ_SEARCH:
    case SB_REQ_SERVICE_CONVS:
    case SB_REQ_CONFIG_GET:
        return true;
    default:
        return false;
    }
}

/* Request-level failures leave the transaction usable; anything else
 * (SB_E_STORE, -ENOMEM) dooms it. */
static bool rc_is_request_level(int rc)
{
    return rc == SB_E_NOT_FOUND || rc == SB_E_INVALID || rc == SB_E_FORBIDDEN ||
           rc == SB_E_TOO_LARGE;
}

/* The writer's clock, for a customer-service write that gives no time. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool fixed_str_ok(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/* ---- applying one request ------------------------------------------------ */

static bool is_service_write(sb_req_kind k)
{
    return k == SB_REQ_SERVICE_OPEN || k == SB_REQ_ROUTE ||
           k == SB_REQ_RECALL || k == SB_REQ_TAG || k == SB_REQ_FIRST_RESPONSE;
}

/* A customer-service write that did not happen: no conversation, and no
 * message stored. */
static void service_void(sb_req *r)
{
    if (r->kind == SB_REQ_SERVICE_OPEN) {
        if (r->u.svc_open.conv)
            sbp__conversation__free_unpacked(r->u.svc_open.conv, NULL);
        r->u.svc_open.conv = NULL;
        r->u.svc_open.created = false;
    } else if (r->kind == SB_REQ_ROUTE) {
        if (r->u.route.conv)
            sbp__conversation__free_unpacked(r->u.route.conv, NULL);
        r->u.route.conv = NULL;
    }
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

static int conv_reload(sb_store *s, Sbp__Conversation **c);

/* The main operation of a customer-service write; *with_msgs says whether
 * req->msgs are to follow it. */
static int apply_service(sb_store *s, sb_req *r, int64_t now, bool *with_msgs)
{
    *with_msgs = false;
    switch (r->kind) {
    case SB_REQ_SERVICE_OPEN: {
        if (!fixed_str_ok(r->u.svc_open.customer,
                          sizeof r->u.svc_open.customer) ||
            !fixed_str_ok(r->u.svc_open.desk, sizeof r->u.svc_open.desk) ||
            !fixed_str_ok(r->u.svc_open.group, sizeof r->u.svc_open.group))
            return SB_E_INVALID;
        int rc = sb_store_service_open(
            s, r->u.svc_open.customer, r->u.svc_open.desk, r->u.svc_open.group,
            now, &r->u.svc_open.conv, &r->u.svc_open.created);
        if (rc || !r->u.svc_open.created) return rc;
        for (size_t i = 0; i < r->n_msgs; i++)
            r->msgs[i]->conv_id = r->u.svc_open.conv->conv_id;
        *with_msgs = true;
        if (!r->u.svc_open.bot[0]) return 0;
        if (!fixed_str_ok(r->u.svc_open.bot, sizeof r->u.svc_open.bot))
            return SB_E_INVALID;
        rc = sb_store_member_put(s, r->u.svc_open.conv->conv_id,
                                 r->u.svc_open.bot, SBP__ROLE__ROLE_BOT, now);
        return rc ? rc : conv_reload(s, &r->u.svc_open.conv);
    }
    case SB_REQ_ROUTE: {
        if (!fixed_str_ok(r->u.route.group, sizeof r->u.route.group) ||
            !fixed_str_ok(r->u.route.agent, sizeof r->u.route.agent) ||
            !fixed_str_ok(r->u.route.bot, sizeof r->u.route.bot))
            return SB_E_INVALID;
        *with_msgs = true;
        int rc = sb_store_conv_route(s, r->u.route.conv_id, r->u.route.state,
                                     r->u.route.group, r->u.route.agent, now,
                                     &r->u.route.conv);
        if (rc || !r->u.route.bot[0]) return rc;
        rc = r->u.route.state == SBP__CONV_STATE__STATE_BOT
                 ? sb_store_member_put(s, r->u.route.conv_id, r->u.route.bot,
                                       SBP__ROLE__ROLE_BOT, now)
                 : sb_store_member_del(s, r->u.route.conv_id, r->u.route.bot);
        return rc ? rc : conv_reload(s, &r->u.route.conv);
    }
    case SB_REQ_RECALL:
        *with_msgs = true;
        return sb_store_recall(s, r->u.recall.conv_id, r->u.recall.seq);
    case SB_REQ_TAG:
        if ((r->u.tag.n_add && !r->u.tag.add) ||
            (r->u.tag.n_remove && !r->u.tag.remove))
            return SB_E_INVALID;
        *with_msgs = true;
        return sb_store_tag(s, r->u.tag.conv_id, r->u.tag.seq, r->u.tag.add,
                            r->u.tag.n_add, r->u.tag.remove, r->u.tag.n_remove);
    case SB_REQ_FIRST_RESPONSE:
        /* The time is that of the agent's reply, found by the store. */
        return sb_store_first_response(s, r->u.conv_get.conv_id, 0);
    default:
        assert(!"not a customer-service write");
        return SB_E_INTERNAL;
    }
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

/* A customer-service write with the messages that go with it, as one: a
 * savepoint lets a request-level refusal of either undo both. */
static int apply_service_write(sb_store *s, sb_req *r)
{
    if (r->kind == SB_REQ_SERVICE_OPEN) {
        r->u.svc_open.conv = NULL;
        r->u.svc_open.created = false;
    } else if (r->kind == SB_REQ_ROUTE) {
        r->u.route.conv = NULL;
    }
    if (r->n_msgs > SB_REQ_MSGS_MAX) return SB_E_INVALID;
    for (size_t i = 0; i < r->n_msgs; i++)
        if (!r->msgs[i]) return SB_E_INVALID;
    int64_t now = r->kind == SB_REQ_SERVICE_OPEN ? r->u.svc_open.now_ms
                  : r->kind == SB_REQ_ROUTE      ? r->u.route.now_ms
                  : r->kind == SB_REQ_RECALL     ? r->u.recall.now_ms
                  : r->kind == SB_REQ_TAG        ? r->u.tag.now_ms
                                                 : 0;
    if (now == 0) now = wall_ms();

    int rc = sb__store_savepoint(s);
    if (rc) return rc;
    bool with_msgs;
    rc = apply_service(s, r, now, &with_msgs);
    for (size_t i = 0; rc == 0 && with_msgs && i < r->n_msgs; i++) {
        bool dup;
        rc = sb_store_append(s, r->msgs[i], now, &dup);
    }
    if (rc == 0 && with_msgs && r->n_msgs) {
        if (r->kind == SB_REQ_SERVICE_OPEN)
            rc = conv_reload(s, &r->u.svc_open.conv);
        else if (r->kind == SB_REQ_ROUTE)
            rc = conv_reload(s, &r->u.route.conv);
    }
    if (rc == 0) return sb__store_savepoint_end(s, true);
    if (!rc_is_request_level(rc)) return rc; /* the batch rolls back */
    service_void(r);
    int end = sb__store_savepoint_end(s, false);
    return end ? end : rc;
}

/* Every key of a CONFIG_SET, or none: a refusal of one undoes the others. */
static int apply_config_set(sb_store *s, sb_req *r)
{
    if (r->u.config.n == 0 || r->u.config.n > SB_REQ_CONFIG_KEYS_MAX)
        return SB_E_INVALID;
    for (size_t i = 0; i < r->u.config.n; i++)
        if (!fixed_str_ok(r->u.config.keys[i], sizeof r->u.config.keys[i]) ||
            (r->u.config.lens[i] && !r->u.config.values[i]))
            return SB_E_INVALID;
    int64_t now = r->u.config.now_ms ? r->u.config.now_ms : wall_ms();
    int rc = sb__store_savepoint(s);
    if (rc) return rc;
    for (size_t i = 0; rc == 0 && i < r->u.config.n; i++)
        rc = sb_store_config_set(s, r->u.config.keys[i], r->u.config.values[i],
                                 r->u.config.lens[i], now);
    if (rc == 0) return sb__store_savepoint_end(s, true);
    if (!rc_is_request_level(rc)) return rc;
    int end = sb__store_savepoint_end(s, false);
    return end ? end : rc;
}

static int apply_write(sb_store *s, sb_req *r)
{
    if (is_service_write(r->kind)) return apply_service_write(s, r);
    switch (r->kind) {
    case SB_REQ_CONFIG_SET:
        return apply_config_set(s, r);
    case SB_REQ_APPEND:
        r->u.append.duplicate = false;
        if (!r->u.append.msg) return SB_E_INVALID;
        return sb_store_append(s, r->u.append.msg, r->u.append.now_ms,
                               &r->u.append.duplicate);
    case SB_REQ_USER:
        if (!fixed_str_ok(r->u.user.user_id, sizeof r->u.user.user_id) ||
            !fixed_str_ok(r->u.user.locale, sizeof r->u.user.locale))
            return SB_E_INVALID;
        return sb_store_user_upsert(s, r->u.user.user_id, r->u.user.role,
                                    r->u.user.locale, r->u.user.now_ms);
    case SB_REQ_CONV_CREATE:
        r->u.create.conv = NULL;
        if (r->u.create.n && (!r->u.create.user_ids || !r->u.create.roles))
            return SB_E_INVALID;
        return sb_store_conv_create(s, r->u.create.kind, r->u.create.title,
                                    (const char *const *)r->u.create.user_ids,
                                    r->u.create.roles, r->u.create.n,
                                    r->u.create.now_ms, &r->u.create.conv);
    case SB_REQ_CURSOR_ACK:
        if (!fixed_str_ok(r->u.cursor.user_id, sizeof r->u.cursor.user_id) ||
            !fixed_str_ok(r->u.cursor.device_id, sizeof r->u.cursor.device_id))
            return SB_E_INVALID;
        return sb_store_cursor_ack(s, r->u.cursor.user_id,
                                   r->u.cursor.device_id, r->u.cursor.conv_id,
                                   r->u.cursor.seq);
    case SB_REQ_READ_SET:
        if (!fixed_str_ok(r->u.read.user_id, sizeof r->u.read.user_id))
            return SB_E_INVALID;
        return sb_store_read_set(s, r->u.read.conv_id, r->u.read.user_id,
                                 r->u.read.seq);
    default:
        assert(!"not a write");
        return SB_E_INTERNAL;
    }
}

/* A write whose transaction did not commit: its results are void. */
static void write_failed(sb_req *r)
{
    r->rc = SB_E_STORE;
    if (r->kind == SB_REQ_APPEND) {
        r->u.append.duplicate = false;
        if (r->u.append.msg) {
            r->u.append.msg->msg_id = 0;
            r->u.append.msg->seq = 0;
            r->u.append.msg->server_ts = 0;
        }
    } else if (r->kind == SB_REQ_CONV_CREATE && r->u.create.conv) {
        sbp__conversation__free_unpacked(r->u.create.conv, NULL);
        r->u.create.conv = NULL;
    } else if (is_service_write(r->kind)) {
        service_void(r);
    }
}

static void apply_read(sb_store *s, sb_req *r)
{
    switch (r->kind) {
    case SB_REQ_CONV_GET:
        r->u.conv_get.conv = NULL;
        r->rc =
            sb_store_conv_get(s, r->u.conv_get.conv_id, &r->u.conv_get.conv);
        break;
    case SB_REQ_SYNC:
        r->u.sync.resp = NULL;
        if (!fixed_str_ok(r->u.sync.user_id, sizeof r->u.sync.user_id) ||
            (r->u.sync.n_cursors && !r->u.sync.cursors)) {
            r->rc = SB_E_INVALID;
            break;
        }
        r->rc = sb_store_sync(s, r->u.sync.user_id, r->u.sync.all,
                              r->u.sync.cursors, r->u.sync.n_cursors,
                              r->u.sync.limit, r->u.sync.bytes_max,
                              &r->u.sync.resp);
        break;
    case SB_REQ_HISTORY:
        r->u.history.resp = NULL;
        r->rc =
            sb_store_history(s, r->u.history.conv_id, r->u.history.before_seq,
                             r->u.history.limit, &r->u.history.resp);
        break;
    case SB_REQ_RECEIPTS:
        r->u.receipts.list = NULL;
        r->u.receipts.n = 0;
        r->rc = sb_store_receipts(s, r->u.receipts.conv_id, &r->u.receipts.list,
                                  &r->u.receipts.n);
        break;
    case SB_REQ_MSG_GET:
        r->u.msg_get.msg = NULL;
        r->rc = sb_store_msg_get(s, r->u.msg_get.conv_id, r->u.msg_get.seq,
                                 &r->u.msg_get.msg);
        break;
    case SB_REQ_CONV_LIST:
        r->u.conv_list.resp = NULL;
        if (!fixed_str_ok(r->u.conv_list.user_id,
                          sizeof r->u.conv_list.user_id) ||
            !fixed_str_ok(r->u.conv_list.tag, sizeof r->u.conv_list.tag) ||
            !fixed_str_ok(r->u.conv_list.cursor,
                          sizeof r->u.conv_list.cursor) ||
            (r->u.conv_list.n_groups && !r->u.conv_list.groups)) {
            r->rc = SB_E_INVALID;
            break;
        }
        r->rc = sb_store_conv_list(
            s, r->u.conv_list.user_id, r->u.conv_list.all, r->u.conv_list.state,
            r->u.conv_list.tag, r->u.conv_list.groups,
            r->u.conv_list.groups ? r->u.conv_list.n_groups : 0,
            r->u.conv_list.cursor, r->u.conv_list.limit, &r->u.conv_list.resp);
        break;
    case SB_REQ_SEARCH:
        r->u.search.resp = NULL;
        if (!fixed_str_ok(r->u.search.user_id, sizeof r->u.search.user_id) ||
            !r->u.search.query) {
            r->rc = SB_E_INVALID;
            break;
        }
        r->rc = sb_store_search(s, r->u.search.user_id, r->u.search.all,
                                r->u.search.conv_id, r->u.search.query,
                                r->u.search.limit, &r->u.search.resp);
        break;
    case SB_REQ_SERVICE_CONVS:
        r->u.service_convs.list = NULL;
        r->u.service_convs.n = 0;
        r->rc = sb_store_service_convs(s, r->u.service_convs.state,
                                       &r->u.service_convs.list,
                                       &r->u.service_convs.n);
        break;
    case SB_REQ_CONFIG_GET:
        r->rc = r->u.config.n && r->u.config.n <= SB_REQ_CONFIG_KEYS_MAX
                    ? 0
                    : SB_E_INVALID;
        for (size_t i = 0; r->rc == 0 && i < r->u.config.n; i++) {
            r->u.config.values[i] = NULL;
            r->u.config.lens[i] = 0;
            if (!fixed_str_ok(r->u.config.keys[i],
                              sizeof r->u.config.keys[i])) {
                r->rc = SB_E_INVALID;
                break;
            }
            int rc = sb_store_config_get(s, r->u.config.keys[i],
                                         &r->u.config.values[i],
                                         &r->u.config.lens[i]);
            if (rc && rc != SB_E_NOT_FOUND) r->rc = rc;
        }
        if (r->rc) {
            for (size_t i = 0; i < r->u.config.n && i < SB_REQ_CONFIG_KEYS_MAX;
                 i++) {
                free(r->u.config.values[i]);
                r->u.config.values[i] = NULL;
            }
        }
        break;
    default:
        assert(!"not a read");
        r->rc = SB_E_INTERNAL;
    }
}

/* Applies a chain of writes in one transaction. Request-level failures
 * only set that request's rc; any other failure, or a failed commit, rolls
 * everything back and every request of the chain fails with SB_E_STORE
 * (those applied before the failure too: nothing of theirs was kept).
 * Returns true if the transaction committed. */
static bool write_batch(sb_store *s, sb_req *batch)
{
    int rc = sb_store_begin(s);
    for (sb_req *r = batch; r && rc == 0; r = r->next) {
        r->rc = apply_write(s, r);
        if (r->rc && !rc_is_request_level(r->rc)) rc = SB_E_STORE;
    }
    if (rc == 0) rc = sb_store_commit(s);
    if (rc == 0) return true;
    sb_store_rollback(s);
    for (sb_req *r = batch; r; r = r->next)
        write_failed(r);
    return false;
}

void sb_storeq_apply(sb_store *s, sb_req *req)
{
    assert(s && req);
    if (kind_is_read(req->kind)) {
        apply_read(s, req);
    } else if (sb_req_is_write(req->kind)) {
        sb_req *next = req->next;
        req->next = NULL;
        write_batch(s, req);
        req->next = next;
    } else {
        req->rc = SB_E_INVALID;
    }
}

/* ---- threads ------------------------------------------------------------- */

/* Indexes a chunk for search in a transaction of its own (not counted as
 * a commit). Returns how many messages remain; 0 after a failure (a full
 * disk, say), so that the next batch, not a busy loop, tries again. */
static uint64_t index_chunk(sb_storeq *q, uint64_t chunk)
{
    uint64_t left = 0;
    bool shared = q->wdb == q->rdb;
    if (shared) uv_mutex_lock(&q->db_mu);
    int rc = sb_store_begin(q->wdb);
    if (rc == 0) rc = sb_store_index(q->wdb, chunk, &left);
    if (rc == 0) rc = sb_store_commit(q->wdb);
    if (rc) {
        sb_store_rollback(q->wdb);
        left = 0;
    }
    if (shared) uv_mutex_unlock(&q->db_mu);
    return left;
}

/* ---- checkpoints ----------------------------------------------------- */

static void on_wal_frames(void *ud, int frames)
{
    ((sb_storeq *)ud)->hook_frames = frames;
}

/* Whether a checkpoint may run now: none running, none failed lately. */
static bool ckpt_free_locked(const sb_storeq *q)
{
    return q->cdb && !q->ckpt_running &&
           (!q->ckpt_retry_ns || uv_hrtime() >= q->ckpt_retry_ns);
}

static bool ckpt_due_locked(const sb_storeq *q)
{
    int behind = q->wal_frames - q->ckpt_done;
    return ckpt_free_locked(q) &&
           (behind >= q->ckpt_frames ||
            (q->wal_frames >= q->ckpt_restart && behind > q->ckpt_tail));
}

static bool restart_due_locked(const sb_storeq *q)
{
    int behind = q->wal_frames - q->ckpt_done;
    return ckpt_free_locked(q) && q->wal_frames >= q->ckpt_restart &&
           (behind <= q->ckpt_tail || q->wal_frames >= 2 * q->ckpt_restart);
}

/* After a commit of the writer's (mu held): notes the WAL's size. */
static void wal_note_locked(sb_storeq *q)
{
    if (!q->cdb) return;
    if (q->hook_frames < q->wal_frames) { /* it started over */
        q->wal_gen++;
        q->ckpt_done = 0;
    }
    q->wal_frames = q->hook_frames;
    if (ckpt_due_locked(q)) uv_cond_signal(&q->ccond);
}

/* Runs a checkpoint on s (mu held on entry and exit, released during). */
static void checkpoint_locked(sb_storeq *q, sb_store *s)
{
    assert(!q->ckpt_running);
    q->ckpt_running = true;
    uint64_t gen = q->wal_gen;
    uv_mutex_unlock(&q->mu);
    int log = 0, done = 0;
    int rc = sb_store_checkpoint(s, &log, &done);
    uv_mutex_lock(&q->mu);
    q->ckpt_running = false;
    uv_cond_signal(&q->wcond); /* a writer may wait for it (WAL bound) */
    if (rc == 0 && gen == q->wal_gen && done > q->ckpt_done)
        q->ckpt_done = done;
    if (rc == 0) atomic_fetch_add(&q->checkpoints, 1);
    /* Failed: tried again at the first batch after a pause. */
    uint64_t pause_ms = rc == -EBUSY ? CKPT_BUSY_RETRY_MS : CKPT_RETRY_MS;
    q->ckpt_retry_ns = rc == 0 ? 0 : uv_hrtime() + pause_ms * 1000000;
}

static void ckpt_main(void *arg)
{
    sb_storeq *q = arg;
    prctl(PR_SET_NAME, "sb-checkpoint");
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (!q->stopping && !ckpt_due_locked(q))
            uv_cond_wait(&q->ccond, &q->mu);
        if (q->stopping) break;
        checkpoint_locked(q, q->cdb);
    }
    uv_mutex_unlock(&q->mu);
}

static void writer_main(void *arg)
{
    sb_storeq *q = arg;
    uint64_t lag = 1; /* unindexed messages; look once idle at start */
    prctl(PR_SET_NAME, "sb-writer"); /* for top -H and perf */
    uv_mutex_lock(&q->mu);
    for (;;) {
        while ((!q->wq.head || q->hold) && !q->stopping) {
            if (lag == 0 || q->hold) {
                uv_cond_wait(&q->wcond, &q->mu);
                continue;
            }
            /* Idle a moment with messages to index: index a chunk. */
            if (uv_cond_timedwait(&q->wcond, &q->mu,
                                  INDEX_IDLE_MS * (uint64_t)1000000) !=
                UV_ETIMEDOUT)
                continue;
            if (q->wq.head || q->hold || q->stopping) continue;
            uv_mutex_unlock(&q->mu);
            lag = index_chunk(q, INDEX_CHUNK);
            uv_mutex_lock(&q->mu);
            wal_note_locked(q);
        }
        if (!q->wq.head) break; /* stopping, and nothing left */

        sb_req *first = q->wq.head, *last = first;
        for (int n = 1; n < SB_STOREQ_BATCH_MAX && last->next; n++)
            last = last->next;
        q->wq.head = last->next;
        if (!q->wq.head) q->wq.tail = NULL;
        last->next = NULL;
        bool set_pages = q->max_pages_set;
        uint32_t pages = q->max_pages;
        q->max_pages_set = false;
        uv_mutex_unlock(&q->mu);

        bool shared = q->wdb == q->rdb;
        if (shared) uv_mutex_lock(&q->db_mu);
        if (set_pages) sb__store_max_pages(q->wdb, pages);
        if (write_batch(q->wdb, first)) {
            atomic_fetch_add(&q->commits, 1);
            if (sb_store_index(q->wdb, 0, &lag)) lag = 0;
        }
        if (shared) uv_mutex_unlock(&q->db_mu);

        uv_mutex_lock(&q->mu);
        done_push_locked(q, first, last);
        wal_note_locked(q);
        if (lag >= INDEX_LAG_MAX) {
            /* One small chunk per batch: the index gains on the appends
             * without holding the next commit up for long. */
            uv_mutex_unlock(&q->mu);
            lag = index_chunk(q, INDEX_BUSY_CHUNK);
            uv_mutex_lock(&q->mu);
            wal_note_locked(q);
        }
        /* The WAL's bound: past it, wait for a running checkpoint (it
         * falls behind only when the machine is overloaded), then take
         * the rest. */
        while (q->cdb && q->ckpt_running && !q->stopping &&
               q->wal_frames >= 2 * q->ckpt_restart)
            uv_cond_wait(&q->wcond, &q->mu);
        if (restart_due_locked(q)) checkpoint_locked(q, q->wdb);
    }
    uv_mutex_unlock(&q->mu);
}

static void reader_main(void *arg)
{
    sb_storeq *q = arg;
    prctl(PR_SET_NAME, "sb-reader");
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (!q->rq.head && !q->stopping)
            uv_cond_wait(&q->rcond, &q->mu);
        sb_req *r = q->rq.head;
        if (!r) break;
        q->rq.head = r->next;
        if (!q->rq.head) q->rq.tail = NULL;
        r->next = NULL;
        uv_mutex_unlock(&q->mu);

        /* Sharing the writer's connection, a read must not run inside
         * its open transaction: it would see uncommitted writes. */
        bool shared = q->wdb == q->rdb;
        if (shared) uv_mutex_lock(&q->db_mu);
        apply_read(q->rdb, r);
        if (shared) uv_mutex_unlock(&q->db_mu);

        uv_mutex_lock(&q->mu);
        done_push_locked(q, r, r);
    }
    uv_mutex_unlock(&q->mu);
}

/* ---- loop side ----------------------------------------------------------- */

/* Runs the callbacks of the requests finished so far, in order. Returns
 * whether there were any. */
static bool drain(sb_storeq *q)
{
    uv_mutex_lock(&q->mu);
    sb_req *r = q->done.head;
    q->done.head = q->done.tail = NULL;
    uv_mutex_unlock(&q->mu);
    if (!r) return false;
    q->in_cb = true;
    while (r) {
        sb_req *next = r->next; /* the callback may free r */
        r->next = NULL;
        assert(q->pending > 0);
        /* The loop is kept alive only while requests are outstanding. */
        if (--q->pending == 0) uv_unref((uv_handle_t *)q->async);
        q->cb(r, q->ud);
        r = next;
    }
    q->in_cb = false;
    return true;
}

static void on_async(uv_async_t *h)
{
    drain(h->data);
}

static void on_async_closed(uv_handle_t *h)
{
    free(h);
}

void sb_storeq_submit(sb_storeq *q, sb_req *req)
{
    assert(q && req);
    req->next = NULL;
    if (q->pending++ == 0) uv_ref((uv_handle_t *)q->async);
    uv_mutex_lock(&q->mu);
    if (q->joined) {
        req->rc = SB_E_UNAVAILABLE;
        done_push_locked(q, req, req);
    } else if (sb_req_is_write(req->kind)) {
        list_push(&q->wq, req);
        uv_cond_signal(&q->wcond);
    } else if (kind_is_read(req->kind)) {
        list_push(&q->rq, req);
        uv_cond_signal(&q->rcond);
    } else {
        req->rc = SB_E_INVALID;
        done_push_locked(q, req, req);
    }
    uv_mutex_unlock(&q->mu);
}

size_t sb_storeq_pending(const sb_storeq *q)
{
    assert(q);
    return q->pending;
}

uint64_t sb_storeq_commits(const sb_storeq *q)
{
    assert(q);
    return atomic_load(&((sb_storeq *)q)->commits);
}

/* Frees what start built; the async handle, if any, is closed and freed by
 * the loop on its next turn. */
static void storeq_free(sb_storeq *q)
{
    sb_store_close(q->cdb);
    if (q->rdb != q->wdb) sb_store_close(q->rdb);
    sb_store_close(q->wdb); /* the last: it checkpoints the whole WAL */
    if (q->async) {
        q->async->data = NULL;
        uv_close((uv_handle_t *)q->async, on_async_closed);
    }
    uv_mutex_destroy(&q->db_mu);
    uv_cond_destroy(&q->ccond);
    uv_cond_destroy(&q->rcond);
    uv_cond_destroy(&q->wcond);
    uv_mutex_destroy(&q->mu);
    free(q);
}

static void threads_stop(sb_storeq *q, bool writer, bool reader, bool ckpt)
{
    uv_mutex_lock(&q->mu);
    q->stopping = true;
    uv_cond_broadcast(&q->wcond);
    uv_cond_broadcast(&q->rcond);
    uv_cond_broadcast(&q->ccond);
    uv_mutex_unlock(&q->mu);
    if (writer) uv_thread_join(&q->writer);
    if (reader) uv_thread_join(&q->reader);
    if (ckpt) uv_thread_join(&q->ckpt);
    uv_mutex_lock(&q->mu);
    q->joined = true;
    uv_mutex_unlock(&q->mu);
}

int sb_storeq_start(uv_loop_t *loop, const char *path, sb_durability d,
                    sb_storeq_done_cb cb, void *ud, sb_storeq **out)
{
    assert(loop && path && cb && out);
    *out = NULL;
    sb_storeq *q = calloc(1, sizeof *q);
    if (!q) return -ENOMEM;
    q->loop = loop;
    q->cb = cb;
    q->ud = ud;
    atomic_init(&q->commits, 0);
    atomic_init(&q->checkpoints, 0);
    q->ckpt_frames = CKPT_FRAMES;
    q->ckpt_tail = CKPT_TAIL_FRAMES;
    q->ckpt_restart = CKPT_RESTART_FRAMES;
    int rc = uv_mutex_init(&q->mu);
    if (rc) goto err_mu;
    if ((rc = uv_cond_init(&q->wcond))) goto err_wcond;
    if ((rc = uv_cond_init(&q->rcond))) goto err_rcond;
    if ((rc = uv_cond_init(&q->ccond))) goto err_ccond;
    if ((rc = uv_mutex_init(&q->db_mu))) goto err_db_mu;

    /* The writer's connection first: it creates the schema. A second
     * connection to ":memory:" (or to "", a private temporary file) would
     * be another database: there both threads share the one. */
    bool mem = path[0] == '\0' || strcmp(path, ":memory:") == 0;
    if ((rc = sb_store_open(path, d, &q->wdb))) goto err;
    if (mem)
        q->rdb = q->wdb;
    else if ((rc = sb_store_open(path, d, &q->rdb)) ||
             (rc = sb_store_open(path, d, &q->cdb)))
        goto err;
    if (q->cdb) sb_store_wal_watch(q->wdb, on_wal_frames, q);
    if ((rc = sb_store_cache(q->wdb, WRITER_CACHE_KIB))) goto err;
    q->async = malloc(sizeof *q->async);
    if (!q->async) {
        rc = -ENOMEM;
        goto err;
    }
    if ((rc = uv_async_init(loop, q->async, on_async))) {
        free(q->async);
        q->async = NULL;
        goto err;
    }
    q->async->data = q;
    uv_unref((uv_handle_t *)q->async); /* nothing pending yet */

    if ((rc = uv_thread_create(&q->writer, writer_main, q))) goto err;
    if ((rc = uv_thread_create(&q->reader, reader_main, q))) {
        threads_stop(q, true, false, false);
        goto err;
    }
    if ((rc = uv_thread_create(&q->ckpt, ckpt_main, q))) {
        threads_stop(q, true, true, false);
        goto err;
    }
    *out = q;
    return 0;

err:
    storeq_free(q);
    return rc;
err_db_mu:
    uv_cond_destroy(&q->ccond);
err_ccond:
    uv_cond_destroy(&q->rcond);
err_rcond:
    uv_cond_destroy(&q->wcond);
err_wcond:
    uv_mutex_destroy(&q->mu);
err_mu:
    free(q);
    return rc;
}

/* Callbacks that submit more requests while this runs get them completed
 * at once with SB_E_UNAVAILABLE once the threads are gone. */
void sb_storeq_stop(sb_storeq *q)
{
    if (!q) return;
    assert(!q->in_cb); /* q would be freed under its own callback */
    threads_stop(q, true, true, true);
    while (drain(q)) {
    }
    assert(q->pending == 0);
    storeq_free(q);
}

void sb__storeq_hold(sb_storeq *q, bool hold)
{
    assert(q);
    uv_mutex_lock(&q->mu);
    q->hold = hold;
    uv_cond_signal(&q->wcond);
    uv_mutex_unlock(&q->mu);
}

void sb__storeq_ckpt_limits(sb_storeq *q, int frames, int tail, int restart)
{
    assert(q && frames > 0 && tail >= 0 && restart > tail);
    uv_mutex_lock(&q->mu);
    q->ckpt_frames = frames;
    q->ckpt_tail = tail;
    q->ckpt_restart = restart;
    uv_mutex_unlock(&q->mu);
}

uint64_t sb_storeq_checkpoints(const sb_storeq *q)
{
    assert(q);
    return atomic_load(&((sb_storeq *)q)->checkpoints);
}

void sb__storeq_max_pages(sb_storeq *q, uint32_t pages)
{
    assert(q);
    uv_mutex_lock(&q->mu);
    q->max_pages = pages;
    q->max_pages_set = true;
    uv_mutex_unlock(&q->mu);
}
