/* integ_full_disk: a full disk loses nothing and gets a clear error.
 *
 * The server's data folder is a small tmpfs that the test mounts in a
 * mount namespace of its own (the kernel unmounts it when the test and its
 * server are gone, whatever happened; teardown unmounts it too). Two
 * scenarios:
 *  - wal: 4 MiB. The WAL grows with every commit, below the checkpoint
 *    threshold, and is all that fills the disk: each refusal is an ENOSPC
 *    of a WAL write, which the store's VFS shim (sb_walvfs) defers to the
 *    commit's sync.
 *  - checkpoint: 18 MiB. The WAL passes the checkpoint threshold (4096
 *    frames) with little room left: the checkpointer, copying it into the
 *    database file, fails too, and must not retry in a loop meanwhile.
 * Each runs the same steps:
 *  1. Two SDK devices (a customer's app and an agent) chat while the same
 *     customer's raw connection sends messages of 3 KiB until SENDs fail.
 *     Each SEND gets exactly one answer within bounded time: a SEND_ACK, or
 *     an ERROR ERR_STORE with its rid and client_msg_id. The server stays
 *     up (/healthz), nobody is disconnected, the pair's sends wait in the
 *     SDK's outbox, and a device connecting now is welcomed and can read.
 *  2. Every acknowledged message is surfaced by both SDK devices once, in
 *     order, is in HISTORY and in the store, seqs dense; nothing refused
 *     is anywhere.
 *  3. SIGTERM (exit 0) and a restart on the full disk: the server comes
 *     back with everything acked, the devices reconnect, SENDs are
 *     answered as before.
 *  4. The tmpfs grows to 64 MiB (remount, no restart): the refused
 *     messages resent with the same client_msg_id are stored once (not as
 *     duplicates: nothing of theirs was kept), new ones pass, and the
 *     SDK's outbox resends of its refused messages arrive once.
 *  5. SIGTERM (exit 0) and a restart on the same data: everything acked is
 *     there, seqs dense, the database intact, and the next message takes
 *     the next seq.
 *
 * Needs root (mount); exits 77 (skipped) otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "itest.h"

#define WAIT_MS 15000
#define ANSWER_MS 10000     /* every SEND is answered within this */
#define BODY_BYTES 3000     /* the raw sender's messages */
#define WINDOW 8            /* raw SENDs awaiting an answer */
#define RAW_MAX 4000        /* raw sends in all, at most */
#define AFTER_FIRST_FAIL 24 /* raw sends made after the first refusal */
#define CHAT_MS 40          /* the SDK pair: one message each per tick */
#define LARGE "size=64m"    /* the tmpfs once space is freed */
#define CKPT_CPU_MAX_MS 500 /* the checkpointer's CPU while full, at most */

static char MNT[64]; /* the tmpfs */
static bool mounted;

static int mnt_mount(const char *opts, unsigned long flags)
{
    char o[64];
    snprintf(o, sizeof o, "%s,mode=0700", opts);
    if (mount("tmpfs", MNT, "tmpfs", flags | MS_NOSUID | MS_NODEV, o) != 0) {
        fprintf(stderr, "full_disk: mount %s %s: %s\n", MNT, opts,
                strerror(errno));
        return -1;
    }
    return 0;
}

static void mnt_unmount(void)
{
    if (mounted && umount2(MNT, MNT_DETACH) != 0)
        fprintf(stderr, "full_disk: umount %s: %s\n", MNT, strerror(errno));
    mounted = false;
    if (MNT[0]) rmdir(MNT);
}

/* ---- the raw sender ------------------------------------------------------ */

typedef enum { RS_NONE, RS_PENDING, RS_ACKED, RS_REFUSED } rs_state;

typedef struct rsend {
    uint8_t cmid[SB_CLIENT_MSG_ID_BYTES];
    uint32_t rid; /* of the last SEND */
    rs_state state;
    int code; /* ERROR code when refused */
    uint64_t seq, msg_id;
    bool dup;   /* the SEND_ACK said duplicate */
    bool small; /* a few bytes (top_up), not BODY_BYTES */
} rsend;

static rsend RS[RAW_MAX];
static int n_rs;

typedef struct raw_job {
    it_raw *r;
    uint64_t conv;
    bool fill;   /* new sends until refusals, else resend `idx` */
    bool top_up; /* small ones, one at a time, until one is refused */
    /* fill: once the WAL file is this long, a pause until the checkpointer
     * has copied some of it into the database (so that it starts before
     * the disk is full; up to 10 s); 0: none. */
    off_t pause_at_wal;
    char wal_path[300];
    int *idx, n_idx; /* resend these (fill: unused) */
    int n_new;       /* not fill: then this many new ones */
    /* results */
    int acked, refused, bad_answers, hangs;
    int first_fail; /* index of the first refused send (-1) */
    atomic_int done;
    int64_t ms;
} raw_job;

/* Raw send i's body: words, as people write (the search index takes
 * them), BODY_BYTES long; or a few bytes for a top-up. */
static void body_of(int i, char *out, size_t cap)
{
    if (RS[i].small) {
        snprintf(out, cap, "top-up #%d", i);
        return;
    }
    static const char *const words[] = {
        "order",  "refund", "parcel",   "arrived", "damaged", "please",
        "thanks", "when",   "tracking", "number",  "address", "change",
        "the",    "my",     "is",       "not",     "yet",     "could",
        "you",    "check",  "invoice",  "account", "payment", "card"};
    size_t n = (size_t)snprintf(out, cap, "fill #%d", i);
    uint32_t x = 2463534242u ^ (uint32_t)i * 2654435761u;
    while (n + 1 < cap) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        const char *w = words[x % (sizeof words / sizeof *words)];
        out[n++] = ' ';
        for (; *w && n + 1 < cap; w++)
            out[n++] = *w;
    }
    out[n] = '\0';
}

/* The raw send whose client_msg_id this is (-1: none; the SDK's ids are
 * random). */
static int cmid_index(const uint8_t *id)
{
    if (id[4] != 0xfd || id[5] != 0xd1) return -1;
    for (int k = 6; k < SB_CLIENT_MSG_ID_BYTES; k++)
        if (id[k] != 0xa5) return -1;
    int i = id[0] << 24 | id[1] << 16 | id[2] << 8 | id[3];
    return i >= 0 && i < n_rs ? i : -1;
}

static void rs_send(raw_job *j, int i)
{
    rsend *s = &RS[i];
    if (s->state == RS_NONE) {
        memset(s->cmid, 0xa5, sizeof s->cmid);
        s->cmid[0] = (uint8_t)(i >> 24);
        s->cmid[1] = (uint8_t)(i >> 16);
        s->cmid[2] = (uint8_t)(i >> 8);
        s->cmid[3] = (uint8_t)i;
        s->cmid[4] = 0xfd;
        s->cmid[5] = 0xd1;
    }
    char body[BODY_BYTES + 1];
    body_of(i, body, sizeof body);
    s->state = RS_PENDING;
    s->rid = it_raw_send_msg(j->r, s->cmid, j->conv, body);
    if (!s->rid) j->bad_answers++;
}

/* Takes the frames that arrived; returns how many sends were answered. */
static int rs_take(raw_job *j, int wait_ms)
{
    int answered = 0;
    Sbp__Frame *f;
    while ((f = it_raw_recv(j->r, wait_ms)) != NULL) {
        wait_ms = 0;
        if (f->body_case == SBP__FRAME__BODY_SEND_ACK ||
            f->body_case == SBP__FRAME__BODY_ERROR) {
            bool ack = f->body_case == SBP__FRAME__BODY_SEND_ACK;
            const ProtobufCBinaryData *id =
                ack ? &f->send_ack->client_msg_id : &f->error->client_msg_id;
            int i =
                id->len == SB_CLIENT_MSG_ID_BYTES ? cmid_index(id->data) : -1;
            rsend *s = i >= 0 ? &RS[i] : NULL;
            if (!s || s->state != RS_PENDING || s->rid != f->rid) {
                fprintf(stderr,
                        "full_disk: %s (rid %u) for no pending send: %s\n",
                        ack ? "SEND_ACK" : "ERROR", f->rid,
                        ack ? "" : f->error->text);
                j->bad_answers++;
            } else if (ack) {
                s->state = RS_ACKED;
                s->seq = f->send_ack->seq;
                s->msg_id = f->send_ack->msg_id;
                s->dup = f->send_ack->duplicate;
                j->acked++;
                answered++;
            } else {
                s->state = RS_REFUSED;
                s->code = (int)f->error->code;
                if (j->first_fail < 0) j->first_fail = i;
                if (s->code != SBP__ERROR_CODE__ERR_STORE ||
                    !f->error->text[0]) {
                    fprintf(stderr,
                            "full_disk: send %d refused with code %d "
                            "(%s), not ERR_STORE\n",
                            i, s->code, f->error->text);
                    j->bad_answers++;
                }
                j->refused++;
                answered++;
            }
        } else if (f->body_case == SBP__FRAME__BODY_PUSH) {
            /* The SDK pair's messages: acknowledged, as a client would. */
            for (size_t k = 0; k < f->push->n_messages; k++) {
                Sbp__Ack a = SBP__ACK__INIT;
                a.conv_id = f->push->messages[k]->conv_id;
                a.seq = f->push->messages[k]->seq;
                Sbp__Frame af = SBP__FRAME__INIT;
                af.body_case = SBP__FRAME__BODY_ACK;
                af.ack = &a;
                it_raw_send(j->r, &af);
            }
        }
        sb_frame_free(f);
    }
    return answered;
}

static void *raw_main(void *arg)
{
    raw_job *j = arg;
    int64_t t0 = harness_now_ms();
    int pending = 0, next_resend = 0, new_left = j->n_new;
    int fill_stop = RAW_MAX;
    int64_t progress_ms = harness_now_ms();
    for (;;) {
        struct stat st;
        if (j->pause_at_wal && stat(j->wal_path, &st) == 0 &&
            st.st_size >= j->pause_at_wal) {
            j->pause_at_wal = 0;
            /* Until the database has grown, not for a fixed time: under
             * ASan on a loaded machine the disk may fill first. */
            char db[sizeof j->wal_path];
            snprintf(db, sizeof db, "%.*s", (int)(strlen(j->wal_path) - 4),
                     j->wal_path);
            for (int k = 0; k < 1000; k++) {
                if (stat(db, &st) == 0 && st.st_size >= 256 * 1024) break;
                struct timespec ts = {0, 10 * 1000000};
                nanosleep(&ts, NULL);
            }
            progress_ms = harness_now_ms(); /* the pause is not a hang */
        }
        while (pending < (j->top_up ? 1 : WINDOW)) {
            int i = -1;
            if (j->top_up) {
                if (j->refused == 0 && n_rs < RAW_MAX) i = n_rs++;
                if (i >= 0) RS[i].small = true;
            } else if (j->fill) {
                if (j->first_fail >= 0 &&
                    fill_stop > j->first_fail + AFTER_FIRST_FAIL)
                    fill_stop = j->first_fail + AFTER_FIRST_FAIL;
                if (n_rs < fill_stop) i = n_rs++;
            } else if (next_resend < j->n_idx) {
                i = j->idx[next_resend++];
            } else if (new_left > 0 && n_rs < RAW_MAX) {
                new_left--;
                i = n_rs++;
            }
            if (i < 0) break;
            rs_send(j, i);
            pending++;
        }
        if (pending == 0 || j->r->eof) break;
        int got = rs_take(j, 50);
        pending -= got;
        if (got) progress_ms = harness_now_ms();
        if (harness_now_ms() - progress_ms > ANSWER_MS) {
            fprintf(stderr, "full_disk: %d SENDs unanswered for %d ms\n",
                    pending, ANSWER_MS);
            j->hangs = pending;
            break;
        }
    }
    j->ms = harness_now_ms() - t0;
    atomic_store(&j->done, 1);
    return NULL;
}

static bool job_done(void *arg)
{
    return atomic_load(&((raw_job *)arg)->done) != 0;
}

static it_env E;
static it_device *app, *agent;

/* Runs a raw job on its own thread while the main loop carries the SDK
 * devices. */
static void raw_run(raw_job *j)
{
    j->first_fail = -1;
    atomic_init(&j->done, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raw_main, j), 0);
    bool ok = it_run_until(&E, job_done, j, 120000);
    pthread_join(th, NULL);
    assert_true(ok);
}

/* ---- the SDK pair -------------------------------------------------------- */

static uv_timer_t chat;
static bool chatting;
static int chat_n[2];
static uint64_t CONV;

static void on_chat(uv_timer_t *t)
{
    (void)t;
    it_send_n(app, CONV, chat_n[0]++, 1, "app");
    it_send_n(agent, CONV, chat_n[1]++, 1, "agent");
}

static void chat_stop(void)
{
    if (!chatting) return;
    uv_timer_stop(&chat);
    uv_close((uv_handle_t *)&chat, NULL);
    chatting = false;
}

/* ---- checks -------------------------------------------------------------- */

static int healthz(void)
{
    char resp[512];
    bool closed = false;
    const char hz[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    return it_http(E.srv.port, hz, sizeof hz - 1, resp, sizeof resp, WAIT_MS,
                   &closed);
}

typedef struct ready_arg {
    it_device *d[2];
    unsigned readies[2];
} ready_arg;

static bool pair_back(void *arg)
{
    ready_arg *a = arg;
    for (int k = 0; k < 2; k++)
        if (a->d[k]->readies <= a->readies[k] || !a->d[k]->c ||
            sb_client_get_state(a->d[k]->c) != SB_CLIENT_READY)
            return false;
    return true;
}

static int stop_status;

static bool server_gone(void *arg)
{
    (void)arg;
    return harness_stop_poll(&E.srv, &stop_status) != 0;
}

/* Stops the server (SIGTERM, exit 0; the loop runs meanwhile, so that the
 * pair answers its close) and starts it again on the same data; waits
 * until the pair has connected again. */
static void server_restart(void)
{
    ready_arg a = {{app, agent}, {app->readies, agent->readies}};
    stop_status = -1;
    assert_int_equal(harness_stop_begin(&E.srv), 0);
    assert_true(it_run_until(&E, server_gone, NULL, WAIT_MS));
    assert_int_equal(stop_status, 0);
    assert_int_equal(harness_restart(&E.srv), 0);
    assert_true(it_run_until(&E, pair_back, &a, WAIT_MS));
}

/* it_wait_sent() for the pair, telling what is missing on a timeout. */
static bool pair_sent(int timeout_ms)
{
    it_device *pair[2] = {app, agent};
    if (it_wait_sent(pair, 2, timeout_ms)) return true;
    for (int k = 0; k < 2; k++) {
        sb_client_stats x;
        sb_client_get_stats(pair[k]->c, &x);
        fprintf(stderr,
                "full_disk: %s: %zu sends, %zu acked, %zu failed; outbox "
                "%zu, in flight %zu, %llu SEND frames (%llu again), %s\n",
                pair[k]->name, pair[k]->n_sends, pair[k]->n_sent,
                pair[k]->n_failed, x.outbox_len, x.inflight,
                (unsigned long long)x.send_frames,
                (unsigned long long)x.resends,
                sb_client_state_name(sb_client_get_state(pair[k]->c)));
    }
    return false;
}

/* The highest seq acknowledged to anyone in CONV (raw and SDK). */
static void max_acked_cb(it_send *s, void *arg)
{
    uint64_t *m = arg;
    if (s->conv_id == CONV && s->status >= SB_SEND_SENT &&
        s->status != SB_SEND_FAILED && s->seq > *m)
        *m = s->seq;
}

/* Messages acknowledged in CONV: each stored once, whatever the number of
 * SEND_ACKs (a resend after a reconnect is answered as a duplicate). */
static uint64_t acked_count(void)
{
    uint64_t n = app->n_sent + agent->n_sent;
    for (int i = 0; i < n_rs; i++)
        if (RS[i].state == RS_ACKED) n++;
    return n;
}

/* Every seq 1..n is the answer to exactly one send; the raw sends' are
 * what the device surfaced there; nothing refused was surfaced. */
static int check_raw_against(it_device *d, uint64_t n)
{
    int problems = 0;
    it_conv_log *lg = it_log(d, CONV);
    uint8_t *seen = calloc(n + 1, 1);
    assert_non_null(seen);
    for (int i = 0; i < n_rs; i++) {
        rsend *s = &RS[i];
        if (s->state != RS_ACKED) continue;
        if (s->seq == 0 || s->seq > n || !lg || s->seq <= lg->base) {
            fprintf(stderr,
                    "check: raw send %d acked with seq %" PRIu64
                    " (conv through %" PRIu64 ")\n",
                    i, s->seq, n);
            problems++;
            continue;
        }
        const it_msg *m = &lg->msgs[s->seq - lg->base - 1];
        char body[BODY_BYTES + 1];
        body_of(i, body, sizeof body);
        if (m->seq != s->seq || m->msg_id != s->msg_id ||
            memcmp(m->cmid, s->cmid, SB_CLIENT_MSG_ID_BYTES) != 0 ||
            m->body_hash != it_hash(body, strlen(body))) {
            fprintf(stderr,
                    "check: %s seq %" PRIu64 " is not raw send %d as acked\n",
                    d->name, s->seq, i);
            problems++;
        }
        if (seen[s->seq]++) {
            fprintf(stderr, "check: seq %" PRIu64 " acked twice\n", s->seq);
            problems++;
        }
    }
    /* Whatever the raw sends do not account for is an SDK send of the
     * pair's (it_check_conv checks those); a refused id is nowhere. */
    for (size_t k = 0; lg && k < lg->n; k++) {
        int i = cmid_index(lg->msgs[k].cmid);
        if (i >= 0 && RS[i].state != RS_ACKED) {
            fprintf(stderr,
                    "check: %s surfaced seq %" PRIu64
                    ", raw send %d, which was refused\n",
                    d->name, lg->msgs[k].seq, i);
            problems++;
        }
    }
    free(seen);
    return problems;
}

/* The store: rows 1..N in order, no (sender, client_msg_id) twice, each
 * acked raw send at its seq, no refused one, every SDK send acked anywhere
 * there as acked (I1). With d: N is n, and the rows are what d surfaced
 * (I4); without (n 0), more rows than acked may be there (a commit on its
 * way to its sender). */
static int check_store(it_device *d, uint64_t n)
{
    it_row *rows = NULL;
    long got = it_store_rows(E.data_dir, CONV, &rows);
    int problems = 0;
    if (got < 0 || (d && got != (long)n)) {
        fprintf(stderr,
                "store: %ld rows in conv %" PRIu64 ", expected %" PRIu64 "\n",
                got, CONV, n);
        problems++;
    }
    it_conv_log *lg = d ? it_log(d, CONV) : NULL;
    for (long k = 0; k < got; k++) {
        const it_row *r = &rows[k];
        if (r->seq != (uint64_t)k + 1) {
            fprintf(stderr, "store: row %ld has seq %" PRIu64 "\n", k, r->seq);
            problems++;
            break;
        }
        const it_msg *m =
            lg && (size_t)k < lg->n && lg->base == 0 ? &lg->msgs[k] : NULL;
        if (d && (!m || m->seq != r->seq || m->msg_id != r->msg_id ||
                  m->body_hash != r->body_hash ||
                  memcmp(m->cmid, r->cmid, SB_CLIENT_MSG_ID_BYTES) != 0)) {
            fprintf(stderr, "store: seq %" PRIu64 " is not what %s surfaced\n",
                    r->seq, d->name);
            problems++;
        }
        for (long q = 0; q < k; q++)
            if (r->cmid_len && r->cmid_len == rows[q].cmid_len &&
                strcmp(r->sender, rows[q].sender) == 0 &&
                memcmp(r->cmid, rows[q].cmid, r->cmid_len) == 0) {
                fprintf(stderr,
                        "store: seqs %" PRIu64 " and %" PRIu64
                        " have one client_msg_id\n",
                        rows[q].seq, r->seq);
                problems++;
            }
        int i = cmid_index(r->cmid);
        if (i < 0) continue;
        if (RS[i].state != RS_ACKED || RS[i].seq != r->seq ||
            RS[i].msg_id != r->msg_id) {
            fprintf(stderr, "store: seq %" PRIu64 " is raw send %d (%s)\n",
                    r->seq, i,
                    RS[i].state == RS_ACKED ? "acked elsewhere" : "refused");
            problems++;
        }
    }
    for (int i = 0; i < n_rs; i++)
        if (RS[i].state == RS_ACKED &&
            (RS[i].seq == 0 || (long)RS[i].seq > got ||
             memcmp(rows[RS[i].seq - 1].cmid, RS[i].cmid,
                    SB_CLIENT_MSG_ID_BYTES) != 0)) {
            fprintf(stderr, "store: acked raw send %d not at seq %" PRIu64 "\n",
                    i, RS[i].seq);
            problems++;
        }
    free(rows);
    size_t acked = 0;
    problems += it_check_acked_in_store(&E, &acked);
    return problems;
}

static int check_history(it_device *d, uint64_t n)
{
    if (it_history_all(d, CONV, 200, WAIT_MS) != 0) {
        fprintf(stderr, "history: failed\n");
        return 1;
    }
    it_conv_log *lg = it_log(d, CONV);
    if (d->hist.n != n) {
        fprintf(stderr, "history: %zu messages, expected %" PRIu64 "\n",
                d->hist.n, n);
        return 1;
    }
    for (size_t k = 0; k < n; k++)
        if (d->hist.seqs[k] != k + 1 || !lg ||
            d->hist.msg_ids[k] != lg->msgs[k].msg_id) {
            fprintf(stderr, "history: seq %zu differs\n", k + 1);
            return 1;
        }
    return 0;
}

/* PRAGMA integrity_check on the store, read-only. */
static bool store_intact(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/switchboard.db", E.data_dir);
    sqlite3 *db = NULL;
    bool ok = false;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(st, 0);
            ok = t && strcmp(t, "ok") == 0;
            if (!ok) fprintf(stderr, "integrity_check: %s\n", t ? t : "?");
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return ok;
}

static long long file_kib(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", E.data_dir, name);
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size / 1024 : -1;
}

static long long free_kib(void)
{
    struct statvfs v;
    return statvfs(MNT, &v) == 0
               ? (long long)v.f_bavail * (long long)v.f_frsize / 1024
               : -1;
}

/* ---- the test ------------------------------------------------------------ */

/* The /proc stat file of the server's thread named comm. 0 or -1. */
static int thread_stat_path(const char *comm, char *path, size_t cap)
{
    char dir[64], buf[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)E.srv.pid);
    DIR *d = opendir(dir);
    if (!d) return -1;
    int rc = -1;
    struct dirent *de;
    while (rc != 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, cap, "%s/%s/comm", dir, de->d_name);
        FILE *f = fopen(path, "r");
        if (f && fgets(buf, sizeof buf, f) &&
            strncmp(buf, comm, strlen(comm)) == 0 && buf[strlen(comm)] == '\n')
            rc = 0;
        if (f) fclose(f);
        if (rc == 0) snprintf(path, cap, "%s/%s/stat", dir, de->d_name);
    }
    closedir(d);
    return rc;
}

/* CPU time (ms) of the server's thread named comm, or of the whole
 * process when comm is NULL; -1 if unknown. */
static long long server_cpu_ms(const char *comm)
{
    char path[400], buf[1024];
    if (!comm)
        snprintf(path, sizeof path, "/proc/%d/stat", (int)E.srv.pid);
    else if (thread_stat_path(comm, path, sizeof path) != 0)
        return -1;
    long long ms = -1;
    FILE *f = fopen(path, "r");
    if (f && fgets(buf, sizeof buf, f)) {
        /* utime and stime, the 14th and 15th fields; the 2nd, the name in
         * parentheses, may hold spaces. */
        const char *q = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (q && sscanf(q + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
                        "%llu",
                        &ut, &st) == 2)
            ms = (long long)((ut + st) * 1000 /
                             (unsigned long long)sysconf(_SC_CLK_TCK));
    }
    if (f) fclose(f);
    return ms;
}

static it_raw RAW;
static bool raw_open;

typedef struct scenario {
    const char *name;
    const char *size; /* the tmpfs at first */
    bool checkpoint;  /* the WAL passes the checkpoint threshold */
} scenario;

static int setup(void **state)
{
    const scenario *sc = *state;
    snprintf(MNT, sizeof MNT, "/tmp/sbfull.XXXXXX");
    if (!mkdtemp(MNT)) {
        MNT[0] = '\0';
        return -1;
    }
    if (mnt_mount(sc->size, 0) != 0) {
        rmdir(MNT);
        MNT[0] = '\0';
        return -1;
    }
    mounted = true;
    memset(RS, 0, sizeof RS);
    n_rs = 0;
    chat_n[0] = chat_n[1] = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    chat_stop();
    if (raw_open) it_raw_close(&RAW);
    raw_open = false;
    it_env_free(&E); /* kills the server, removes its data folder */
    mnt_unmount();
    return 0;
}

static void raw_connect(void)
{
    assert_int_equal(it_raw_open(&RAW, E.srv.port, SB_ENC_PROTO, NULL), 0);
    raw_open = true;
    char tok[1024];
    snprintf(tok, sizeof tok, "%s", harness_token("cust1", "customer", 3600));
    assert_int_equal(it_raw_hello(&RAW, tok, "cust1-raw", WAIT_MS), 0);
}

static void test_full_disk(void **state)
{
    const scenario *sc = *state;
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    E.unlimited = true; /* the disk, not the rate limit, is under test */
    snprintf(E.srv.data_dir, sizeof E.srv.data_dir, "%s/data", MNT);
    const char *extra[] = {"--durability", "fsync", NULL};
    assert_int_equal(it_server_start(&E, extra), 0);

    agent = it_device_new(&E, "agent1", "agent", "agent1-d1");
    app = it_device_new(&E, "cust1", "customer", "cust1-app");
    /* A refused send is tried again within 1.5 s (the SDK's backoff is
     * capped by the send timeout). */
    agent->cfg.send_timeout_ms = app->cfg.send_timeout_ms = 1500;
    assert_int_equal(it_device_start(agent), 0);
    assert_int_equal(it_device_start(app), 0);
    assert_true(it_device_wait_ready(agent, WAIT_MS));
    assert_true(it_device_wait_ready(app, WAIT_MS));
    CONV = it_open(app, "agent1", WAIT_MS);
    assert_true(CONV != 0);
    raw_connect();
    it_device *pair[2] = {app, agent};

    /* 1. The pair chats while the raw device fills the disk. */
    uv_timer_init(&E.loop, &chat);
    uv_timer_start(&chat, on_chat, 0, CHAT_MS);
    chatting = true;
    raw_job fill = {.r = &RAW, .conv = CONV, .fill = true};
    if (sc->checkpoint) { /* past 4096 frames of 4 KiB and a header */
        fill.pause_at_wal = 4096 * (4096 + 24) + 32;
        snprintf(fill.wal_path, sizeof fill.wal_path, "%s/switchboard.db-wal",
                 E.data_dir);
    }
    raw_run(&fill);
    chat_stop();
    assert_int_equal(fill.hangs, 0);
    assert_int_equal(fill.bad_answers, 0);
    assert_true(fill.refused > 0); /* the disk filled up */
    assert_true(fill.acked > 0);
    /* Full to the last frame: small messages, one at a time, until one is
     * refused too (a failed batch leaves room a smaller commit may use). */
    raw_job topup = {.r = &RAW, .conv = CONV, .top_up = true};
    raw_run(&topup);
    assert_int_equal(topup.hangs, 0);
    assert_int_equal(topup.bad_answers, 0);
    assert_int_equal(topup.refused, 1);
    assert_false(RAW.eof);
    long long wal_kib = file_kib("switchboard.db-wal");
    long long db_kib = file_kib("switchboard.db");
    fprintf(stderr,
            "full_disk %s: %d raw sends of %d bytes in %lld ms: %d acked, "
            "%d refused (the first: #%d); then %d small ones acked before "
            "one was refused; WAL %lld KiB, database %lld KiB, %lld KiB "
            "free\n",
            sc->name, fill.acked + fill.refused, BODY_BYTES, (long long)fill.ms,
            fill.acked, fill.refused, fill.first_fail, topup.acked, wal_kib,
            db_kib, free_kib());
    if (sc->checkpoint) /* 4096 frames: one was due, and copied some */
        assert_true(wal_kib >= 16 << 10 && db_kib >= 256);
    else
        assert_true(wal_kib >= 3 << 10 && db_kib < 1024); /* the WAL alone */

    /* The pair goes on talking on the full disk: its sends are refused,
     * and the SDK keeps them to try again. Meanwhile the server does not
     * spin: a failed checkpoint is not retried at once. */
    it_send_n(app, CONV, chat_n[0], 3, "app-full");
    it_send_n(agent, CONV, chat_n[1], 3, "agent-full");
    chat_n[0] += 3;
    chat_n[1] += 3;
    long long ckpt0 = server_cpu_ms("sb-checkpoint"),
              cpu0 = server_cpu_ms(NULL);
    it_run_for(&E, 2500);
    long long ckpt_ms = server_cpu_ms("sb-checkpoint") - ckpt0;
    long long cpu_ms = server_cpu_ms(NULL) - cpu0;
    sb_client_stats st_app, st_agent;
    sb_client_get_stats(app->c, &st_app);
    sb_client_get_stats(agent->c, &st_agent);
    fprintf(stderr,
            "full_disk %s: the pair sent %zu + %zu, %zu + %zu acked, %zu + "
            "%zu waiting (SEND frames written again: %llu + %llu); CPU in "
            "2.5 s on the full disk: %lld ms, of which the checkpointer %lld "
            "ms\n",
            sc->name, app->n_sends, agent->n_sends, app->n_sent, agent->n_sent,
            st_app.outbox_len, st_agent.outbox_len,
            (unsigned long long)st_app.resends,
            (unsigned long long)st_agent.resends, cpu_ms, ckpt_ms);
    assert_int_equal(app->n_failed + agent->n_failed, 0);
    assert_true(st_app.resends + st_agent.resends > 0); /* kept, retried */
    assert_true(ckpt_ms >= 0 && ckpt_ms <= CKPT_CPU_MAX_MS);

    /* Up, and nobody was disconnected. */
    assert_int_equal(healthz(), 200);
    assert_int_equal(app->readies, 1);
    assert_int_equal(agent->readies, 1);
    assert_false(RAW.eof);

    /* 2. Everything acked reached both devices once, in order; HISTORY
     * and the store have it; nothing refused is anywhere. */
    uint64_t n_acked = acked_count(), top = 0;
    it_sends_each(&E, max_acked_cb, &top);
    for (int i = 0; i < n_rs; i++)
        if (RS[i].state == RS_ACKED && RS[i].seq > top) top = RS[i].seq;
    assert_int_equal(top, n_acked); /* dense: each seq one ack */
    assert_true(it_wait_surfaced(pair, 2, CONV, n_acked, WAIT_MS));
    it_run_for(&E, 200);
    assert_int_equal(it_check_conv(&E, CONV, pair, 2, n_acked), 0);
    assert_int_equal(check_raw_against(app, n_acked), 0);
    assert_int_equal(check_raw_against(agent, n_acked), 0);
    assert_int_equal(check_history(agent, n_acked), 0);
    assert_int_equal(check_store(agent, n_acked), 0);

    /* A device connecting now is welcomed and reads what is there. */
    it_device *late = it_device_new(&E, "agent1", "agent", "agent1-late");
    assert_int_equal(it_device_start(late), 0);
    assert_true(it_device_wait_ready(late, WAIT_MS));
    it_device *latev[1] = {late};
    assert_true(it_wait_surfaced(latev, 1, CONV, n_acked, WAIT_MS));
    assert_int_equal(check_history(late, n_acked), 0);
    it_device_stop(late);
    assert_int_equal(E.violations, 0);

    /* 3. SIGTERM and a restart on the full disk: the shutdown checkpoint
     * fails, the WAL stays; the server comes back with all of it, devices
     * reconnect, and SENDs are answered as before. */
    it_raw_close(&RAW);
    raw_open = false;
    server_restart();
    assert_int_equal(check_store(NULL, 0), 0);
    assert_true(store_intact());
    raw_connect();
    raw_job more = {.r = &RAW, .conv = CONV, .n_new = 4};
    raw_run(&more);
    assert_int_equal(more.hangs, 0);
    assert_int_equal(more.bad_answers, 0);
    fprintf(stderr,
            "full_disk %s: restarted on the full disk; of %d new sends %d "
            "acked, %d refused\n",
            sc->name, more.n_new, more.acked, more.refused);
    unsigned readies[2] = {app->readies, agent->readies};

    /* 4. Space again, without a restart. */
    int64_t t_free = harness_now_ms();
    assert_int_equal(mnt_mount(LARGE, MS_REMOUNT), 0);
    int refused[AFTER_FIRST_FAIL + WINDOW + 8];
    int n_refused = 0;
    for (int i = 0; i < n_rs; i++)
        if (RS[i].state == RS_REFUSED) {
            assert_true(n_refused < (int)(sizeof refused / sizeof *refused));
            refused[n_refused++] = i;
        }
    raw_job again = {.r = &RAW,
                     .conv = CONV,
                     .idx = refused,
                     .n_idx = n_refused,
                     .n_new = 20};
    raw_run(&again);
    assert_int_equal(again.hangs, 0);
    assert_int_equal(again.bad_answers, 0);
    assert_int_equal(again.refused, 0);
    assert_int_equal(again.acked, n_refused + 20);
    for (int k = 0; k < n_refused; k++) {
        assert_int_equal(RS[refused[k]].state, RS_ACKED);
        assert_false(RS[refused[k]].dup); /* nothing was kept of it */
    }
    assert_true(pair_sent(WAIT_MS)); /* the outbox went through */
    it_send_n(app, CONV, chat_n[0]++, 1, "app-after");
    it_send_n(agent, CONV, chat_n[1]++, 1, "agent-after");
    assert_true(pair_sent(WAIT_MS));
    assert_int_equal(app->n_failed + agent->n_failed, 0);
    int64_t t_recovered = harness_now_ms();
    uint64_t n_all = acked_count();
    assert_true(it_wait_surfaced(pair, 2, CONV, n_all, WAIT_MS));
    it_run_for(&E, 300); /* late duplicates would show now */
    assert_int_equal(it_check_conv(&E, CONV, pair, 2, n_all), 0);
    assert_int_equal(check_raw_against(app, n_all), 0);
    assert_int_equal(check_raw_against(agent, n_all), 0);
    assert_int_equal(check_history(app, n_all), 0);
    assert_int_equal(app->readies, readies[0]);
    assert_int_equal(agent->readies, readies[1]);
    assert_int_equal(E.violations, 0);

    /* 5. A restart on the same data. */
    it_raw_close(&RAW);
    raw_open = false;
    server_restart();
    assert_true(store_intact());
    assert_int_equal(check_store(app, n_all), 0);
    assert_int_equal(check_store(agent, n_all), 0);
    it_send_n(agent, CONV, chat_n[1]++, 1, "agent-restarted");
    assert_true(pair_sent(WAIT_MS));
    assert_true(it_wait_surfaced(pair, 2, CONV, n_all + 1, WAIT_MS));
    assert_int_equal(it_check_conv(&E, CONV, pair, 2, n_all + 1), 0);
    assert_int_equal(E.violations, 0);

    sb_client_get_stats(app->c, &st_app);
    sb_client_get_stats(agent->c, &st_agent);
    printf("integ_full_disk %s: %s tmpfs full (WAL %lld KiB, database %lld "
           "KiB) after %d acked raw sends of %d bytes; %d refused, each with "
           "ERR_STORE and its client_msg_id, none stored; the pair's %llu "
           "SEND frames written again; checkpointer CPU while full %lld ms; "
           "-> %s: refused ones resent and stored once, recovered in %lld "
           "ms; restart: all %" PRIu64 " there, seqs dense; %lld ms\n",
           sc->name, sc->size, wal_kib, db_kib, fill.acked, BODY_BYTES,
           fill.refused,
           (unsigned long long)(st_app.resends + st_agent.resends), ckpt_ms,
           LARGE, (long long)(t_recovered - t_free), n_all + 1,
           (long long)(harness_now_ms() - t0));
    it_env_free(&E);
}

int main(void)
{
    if (geteuid() != 0) {
        printf("integ_full_disk: skipped (mounting a tmpfs needs root)\n");
        return 77;
    }
    /* A mount namespace of our own (the server inherits it): the tmpfs
     * goes with the last process in it, even if the test is killed. */
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        fprintf(stderr,
                "full_disk: no private mount namespace (%s); teardown "
                "unmounts\n",
                strerror(errno));
    static const scenario wal = {"wal", "size=4m", false};
    static const scenario ckpt = {"checkpoint", "size=18m", true};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_full_disk, setup,
                                                 teardown, (void *)&wal),
        cmocka_unit_test_prestate_setup_teardown(test_full_disk, setup,
                                                 teardown, (void *)&ckpt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
