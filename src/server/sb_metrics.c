/* The server's metrics: the snapshot's desk part, the process's figures
 * from /proc, readiness, and the rendering. Names follow Prometheus'
 * conventions: switchboard_ prefix, base units (seconds, bytes), counters
 * ending in _total; label values come from the protocol's descriptors
 * (frame kinds, error codes) and the configuration (groups, filter
 * categories). */
#include "sb_metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_prom.h"
#include "sb_token.h"

/* ---- the snapshot's parts ------------------------------------------------ */

void sb_metrics_take_desk(sb_metrics_snap *s, const struct sb_desk *desk)
{
    s->n_groups = 0;
    if (!desk) return;
    sb_desk_group_stats g[SB_DESK_GROUPS_MAX];
    s->n_groups = sb_desk_group_stats_get(desk, g, SB_DESK_GROUPS_MAX);
    for (size_t i = 0; i < s->n_groups; i++) {
        snprintf(s->groups[i].name, sizeof s->groups[i].name, "%s", g[i].name);
        s->groups[i].s = g[i];
        s->groups[i].s.name = NULL; /* the desk's; the copy above stays */
    }
}

static int64_t file_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* Entries of /proc/self/fd, but . and .. */
static int64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* The process's start from /proc/self/stat (field 22, clock ticks since
 * boot) and the boot time from /proc/stat; -1 when unknown. */
static double start_time_s(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces: count from its end. */
    char *p = strrchr(buf, ')');
    unsigned long long ticks = 0;
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p + 1, "%llu", &ticks) != 1) return -1;
    f = fopen("/proc/stat", "r");
    if (!f) return -1;
    unsigned long long btime = 0;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1) break;
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (!btime || hz <= 0) return -1;
    return (double)btime + (double)ticks / (double)hz;
}

void sb_metrics_process_read(sb_metrics_snap *s)
{
    sb_metrics_process *p = &s->proc;
    p->rss_bytes = p->vsz_bytes = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long vsz, rss;
    if (f) {
        if (fscanf(f, "%llu %llu", &vsz, &rss) == 2) {
            long page = sysconf(_SC_PAGESIZE);
            p->vsz_bytes = (int64_t)(vsz * (unsigned long long)page);
            p->rss_bytes = (int64_t)(rss * (unsigned long long)page);
        }
        fclose(f);
    }
    struct rusage ru;
    p->cpu_s = getrusage(RUSAGE_SELF, &ru) == 0
                   ? (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6
                   : -1;
    p->open_fds = open_fds();
    struct rlimit rl;
    p->max_fds =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
            ? (int64_t)rl.rlim_cur
            : -1;
    p->start_time_s = start_time_s();
    p->db_bytes = p->wal_bytes = -1;
    if (s->sqlite) {
        char wal[sizeof s->db_path + 8];
        snprintf(wal, sizeof wal, "%s-wal", s->db_path);
        p->db_bytes = file_bytes(s->db_path);
        p->wal_bytes = file_bytes(wal);
        if (p->db_bytes >= 0 && p->wal_bytes < 0) p->wal_bytes = 0;
    }
}

/* ---- readiness ----------------------------------------------------------- */

/* One check of readiness: NULL when it passes, else why not. */
typedef const char *(*ready_check)(const sb_metrics_snap *s);

static const char *check_draining(const sb_metrics_snap *s)
{
    return s->draining ? "draining" : NULL;
}

static const char *check_store(const sb_metrics_snap *s)
{
    if (!s->have_store) return "store stopped";
    return s->store.healthy ? NULL : "store cannot commit or is out of reach";
}

static const char *check_store_behind(const sb_metrics_snap *s)
{
    return s->have_store &&
                   s->store.write_wait_ms > SB_METRICS_WRITE_WAIT_MS_MAX
               ? "store behind: a write waits over 5 s"
               : NULL;
}

static const ready_check READY_CHECKS[] = {check_draining, check_store,
                                           check_store_behind};

bool sb_metrics_ready(const sb_metrics_snap *s, char *why, size_t cap)
{
    size_t n = 0;
    why[0] = '\0';
    for (size_t i = 0; i < sizeof READY_CHECKS / sizeof *READY_CHECKS; i++) {
        const char *w = READY_CHECKS[i](s);
        if (!w) continue;
        int k = snprintf(why + n, cap - n, "%s%s", n ? "; " : "", w);
        if (k > 0) n = n + (size_t)k < cap ? n + (size_t)k : cap - 1;
    }
    return n == 0;
}

/* ---- rendering ----------------------------------------------------------- */

#define LB SB_PROM_LABELS_BYTES_MAX

static const char *const CONN_KINDS[] = {"http", "protobuf", "json"};
static const char *const TLS[] = {"false", "true"};
static const char *const REFUSALS[] = {"max_connections", "per_address",
                                       "draining"};
static const char *const ENCODINGS[] = {"protobuf", "json"};
static const char *const AGENT_STATUS[] = {"offline", "online", "away"};

static void gauge(sb_prom *p, const char *name, const char *help, double v)
{
    sb_prom_family(p, name, SB_PROM_GAUGE, help);
    sb_prom_f64(p, name, NULL, v);
}

static void counter(sb_prom *p, const char *name, const char *help, uint64_t v)
{
    sb_prom_family(p, name, SB_PROM_COUNTER, help);
    sb_prom_u64(p, name, NULL, v);
}

static void hist(sb_prom *p, const char *name, const char *help,
                 const sb_hist *h, double scale)
{
    sb_prom_family(p, name, SB_PROM_HISTOGRAM, help);
    sb_prom_hist(p, name, NULL, h, scale);
}

static void render_shell(sb_prom *p, const sb_metrics_snap *s)
{
    char l[LB];
    sb_prom_family(p, "switchboard_build_info", SB_PROM_GAUGE,
                   "The version running and its store, always 1.");
    sb_prom_u64(p, "switchboard_build_info",
                sb_prom_labels(l, LB, "version", SB_VERSION, "store",
                               s->sqlite ? "sqlite" : "postgresql", NULL),
                1);
    char why[256];
    gauge(p, "switchboard_ready",
          "1 when /readyz answers 200 (not draining, store answering).",
          sb_metrics_ready(s, why, sizeof why));
    gauge(p, "switchboard_draining", "1 while the server drains (SIGTERM).",
          s->draining);
    if (s->cluster) {
        gauge(p, "switchboard_cluster_connected",
              "1 while this node is connected to NATS.", s->nats.connected);
        gauge(p, "switchboard_cluster_desk_owner",
              "1 while this node owns the desks (routes customers).",
              s->desk_owner);
        counter(p, "switchboard_cluster_published_total",
                "Events published to the other nodes.", s->nats.published);
        counter(p, "switchboard_cluster_publish_failed_total",
                "Events NATS refused (its buffer full while reconnecting).",
                s->nats.publish_failed);
        counter(p, "switchboard_cluster_received_total",
                "Events received from the other nodes.", s->nats.received);
        counter(p, "switchboard_cluster_dropped_total",
                "Events dropped on arrival (the loop behind): repaired from "
                "the store.",
                s->nats.dropped);
        counter(p, "switchboard_cluster_reconnects_total",
                "Reconnections to NATS.", s->nats.reconnects);
    }
    if (s->media) {
        const sb_media_stats *m = &s->media_stats;
        counter(p, "switchboard_media_uploads_total",
                "Uploads stored (POST /media answered 201).", m->uploads);
        counter(p, "switchboard_media_upload_bytes_total",
                "Bytes of the uploads stored, as stored.", m->upload_bytes);
        counter(p, "switchboard_media_uploads_refused_total",
                "Uploads answered with an error (4xx, 5xx).", m->refused);
        counter(p, "switchboard_media_locations_removed_total",
                "Photos whose location data was removed.", m->gps_removed);
        counter(p, "switchboard_media_downloads_total",
                "Uploads served whole (GET /media/<id>).", m->downloads);
        counter(p, "switchboard_media_download_bytes_total",
                "Bytes of the uploads served whole.", m->download_bytes);
        gauge(p, "switchboard_media_uploads_active", "Uploads in progress.",
              m->active);
    }
    sb_prom_family(p, "switchboard_connections", SB_PROM_GAUGE,
                   "Open TCP connections by what they speak (http before the "
                   "WebSocket upgrade) and TLS.");
    for (int k = 0; k < SB_METRICS_CONN_KINDS; k++)
        for (int t = 0; t < 2; t++)
            sb_prom_u64(p, "switchboard_connections",
                        sb_prom_labels(l, LB, "kind", CONN_KINDS[k], "tls",
                                       TLS[t], NULL),
                        s->shell.open[k][t]);
    sb_prom_family(p, "switchboard_connections_accepted_total", SB_PROM_COUNTER,
                   "TCP connections accepted, by TLS.");
    for (int t = 0; t < 2; t++)
        sb_prom_u64(p, "switchboard_connections_accepted_total",
                    sb_prom_labels(l, LB, "tls", TLS[t], NULL),
                    s->shell.accepted[t]);
    sb_prom_family(p, "switchboard_connections_refused_total", SB_PROM_COUNTER,
                   "New connections turned away (503 or 429), by reason.");
    for (int r = 0; r < SB_METRICS_REFUSALS; r++)
        sb_prom_u64(p, "switchboard_connections_refused_total",
                    sb_prom_labels(l, LB, "reason", REFUSALS[r], NULL),
                    s->shell.refused[r]);
    const sb_ws_env_stats *ws = &s->shell.ws;
    sb_prom_family(p, "switchboard_ws_contexts", SB_PROM_GAUGE,
                   "wslay contexts: lent to connections reading a frame or "
                   "closing, and kept for reuse.");
    sb_prom_u64(p, "switchboard_ws_contexts",
                sb_prom_labels(l, LB, "state", "lent", NULL), ws->engines_live);
    sb_prom_u64(p, "switchboard_ws_contexts",
                sb_prom_labels(l, LB, "state", "pooled", NULL),
                ws->engines_idle);
    sb_prom_family(p, "switchboard_ws_compressed_messages_total",
                   SB_PROM_COUNTER,
                   "WebSocket messages sent (out) and received (in) "
                   "compressed with permessage-deflate.");
    sb_prom_u64(p, "switchboard_ws_compressed_messages_total",
                sb_prom_labels(l, LB, "direction", "out", NULL), ws->deflated);
    sb_prom_u64(p, "switchboard_ws_compressed_messages_total",
                sb_prom_labels(l, LB, "direction", "in", NULL), ws->inflated);
    sb_prom_family(p, "switchboard_ws_compressed_bytes_total", SB_PROM_COUNTER,
                   "Bytes of those messages, uncompressed (plain) and as "
                   "sent or received (wire).");
    const struct {
        const char *dir, *form;
        uint64_t v;
    } zb[] = {{"out", "plain", ws->deflate_in_bytes},
              {"out", "wire", ws->deflate_out_bytes},
              {"in", "plain", ws->inflate_out_bytes},
              {"in", "wire", ws->inflate_in_bytes}};
    for (size_t i = 0; i < sizeof zb / sizeof *zb; i++)
        sb_prom_u64(p, "switchboard_ws_compressed_bytes_total",
                    sb_prom_labels(l, LB, "direction", zb[i].dir, "form",
                                   zb[i].form, NULL),
                    zb[i].v);
}

/* Frame kinds by the Frame message's body fields, as the protocol names
 * them. */
static void render_frames(sb_prom *p, const char *name, const char *help,
                          const uint64_t *counts)
{
    char l[LB];
    sb_prom_family(p, name, SB_PROM_COUNTER, help);
    for (unsigned k = 1; k < SB_GW_FRAME_KINDS; k++) {
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field(&sbp__frame__descriptor, k);
        if (!fd || fd->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        sb_prom_u64(p, name, sb_prom_labels(l, LB, "kind", fd->name, NULL),
                    counts[k]);
    }
}

static void render_gateway(sb_prom *p, const sb_gw_stats *g)
{
    char l[LB];
    sb_prom_family(p, "switchboard_sessions", SB_PROM_GAUGE,
                   "Sessions past HELLO, by encoding and role.");
    for (int e = 0; e < 2; e++)
        for (int r = 1; r < SB_GW_ROLES; r++)
            sb_prom_u64(p, "switchboard_sessions",
                        sb_prom_labels(l, LB, "encoding", ENCODINGS[e], "role",
                                       sb_role_name((Sbp__Role)r), NULL),
                        g->ready[e][r]);
    render_frames(p, "switchboard_frames_received_total",
                  "Frames decoded from clients, by kind.", g->frames_in);
    render_frames(p, "switchboard_frames_sent_total",
                  "Frames sent to clients, by kind.", g->frames_out);
    counter(p, "switchboard_sends_total",
            "SENDs accepted and handed to the store.", g->sends);
    counter(p, "switchboard_send_duplicates_total",
            "SENDs answered as duplicates of a stored message.", g->duplicates);
    hist(p, "switchboard_send_ack_duration_seconds",
         "From a SEND's acceptance (its conversation known) to its "
         "SEND_ACK, the commit included.",
         &g->send_ack_ms, 1e-3);
    counter(p, "switchboard_pushes_total",
            "Messages pushed to a device for the first time.", g->pushes);
    counter(p, "switchboard_push_retries_total",
            "Messages pushed again for want of an ACK.", g->retries);
    counter(p, "switchboard_sessions_closed_unacked_total",
            "Sessions closed because pushes stayed unacknowledged.",
            g->closed_unacked);
    counter(p, "switchboard_rate_limited_total",
            "Requests refused ERR_RATE_LIMITED (per-session SEND rate).",
            g->rate_limited);
    sb_prom_family(p, "switchboard_errors_total", SB_PROM_COUNTER,
                   "ERROR frames sent, by code.");
    for (unsigned i = 0; i < sbp__error_code__descriptor.n_values; i++) {
        const ProtobufCEnumValue *v = &sbp__error_code__descriptor.values[i];
        if (v->value <= 0 || v->value >= SB_GW_ERROR_CODES) continue;
        sb_prom_u64(p, "switchboard_errors_total",
                    sb_prom_labels(l, LB, "code", v->name, NULL),
                    g->errors_by_code[v->value]);
    }
    sb_prom_family(p, "switchboard_filter_matches_total", SB_PROM_COUNTER,
                   "Messages the sensitive-word filter matched, by category "
                   "and the category's action.");
    for (size_t i = 0; i < g->n_filter; i++)
        sb_prom_u64(
            p, "switchboard_filter_matches_total",
            sb_prom_labels(l, LB, "category", g->filter[i].category, "action",
                           sb_filter_policy_name(g->filter[i].policy), NULL),
            g->filter[i].messages);
    if (g->filter_other)
        sb_prom_u64(
            p, "switchboard_filter_matches_total",
            sb_prom_labels(l, LB, "category", "other", "action", "other", NULL),
            g->filter_other);
}

static void render_store(sb_prom *p, const sb_metrics_snap *s)
{
    const sb_storeq_stats *st = &s->store;
    gauge(p, "switchboard_store_healthy",
          "1 while the store commits and answers.",
          s->have_store && st->healthy);
    counter(p, "switchboard_messages_stored_total",
            "Messages stored by committed transactions (duplicates not).",
            st->messages_stored);
    counter(p, "switchboard_store_commits_total",
            "Write transactions committed (group commits).", st->commits);
    counter(p, "switchboard_store_commit_failures_total",
            "Write transactions that could not commit (a full disk...).",
            st->failed_batches);
    hist(p, "switchboard_store_commit_duration_seconds",
         "A write transaction, begin to commit, its sync included.",
         &st->commit_us, 1e-6);
    hist(p, "switchboard_store_batch_requests",
         "Write requests per transaction (group commit).", &st->batch_writes,
         1);
    gauge(p, "switchboard_store_pending_requests",
          "Store requests submitted and not completed.", (double)st->pending);
    gauge(p, "switchboard_store_write_wait_seconds",
          "How long the oldest write not completed has waited.",
          (double)st->write_wait_ms / 1e3);
    if (!s->sqlite) return;
    counter(p, "switchboard_store_checkpoints_total",
            "SQLite checkpoints (WAL copied into the database) finished.",
            st->checkpoints);
    if (s->proc.wal_bytes >= 0)
        gauge(p, "switchboard_store_wal_bytes",
              "Size of the SQLite write-ahead log file.",
              (double)s->proc.wal_bytes);
    if (s->proc.db_bytes >= 0)
        gauge(p, "switchboard_store_db_bytes",
              "Size of the SQLite database file.", (double)s->proc.db_bytes);
}

/* One figure of a skill group. */
typedef uint64_t (*group_value)(const sb_desk_group_stats *g);

static uint64_t group_queued(const sb_desk_group_stats *g)
{
    return g->queued;
}

static uint64_t group_capacity(const sb_desk_group_stats *g)
{
    return g->capacity;
}

static uint64_t group_load(const sb_desk_group_stats *g)
{
    return g->load;
}

/* A gauge family with one sample per skill group. */
static void per_group(sb_prom *p, const sb_metrics_snap *s, const char *name,
                      const char *help, group_value v)
{
    char l[LB];
    sb_prom_family(p, name, SB_PROM_GAUGE, help);
    for (size_t i = 0; i < s->n_groups; i++)
        sb_prom_u64(p, name,
                    sb_prom_labels(l, LB, "group", s->groups[i].name, NULL),
                    v(&s->groups[i].s));
}

static void render_desk(sb_prom *p, const sb_metrics_snap *s)
{
    char l[LB];
    const sb_gw_stats *g = &s->gw;
    per_group(p, s, "switchboard_queue_length",
              "Conversations waiting for an agent, by skill group.",
              group_queued);
    sb_prom_family(p, "switchboard_queue_oldest_wait_seconds", SB_PROM_GAUGE,
                   "How long the conversation waiting longest has waited, "
                   "by skill group (0: none waits).");
    for (size_t i = 0; i < s->n_groups; i++) {
        const sb_desk_group_stats *q = &s->groups[i].s;
        double w = q->queued && s->now_ms > q->oldest_ms
                       ? (double)(s->now_ms - q->oldest_ms) / 1e3
                       : 0;
        sb_prom_f64(p, "switchboard_queue_oldest_wait_seconds",
                    sb_prom_labels(l, LB, "group", s->groups[i].name, NULL), w);
    }
    sb_prom_family(p, "switchboard_agents", SB_PROM_GAUGE,
                   "Agents by skill group and status.");
    for (size_t i = 0; i < s->n_groups; i++)
        for (int st = 0; st < 3; st++)
            sb_prom_u64(p, "switchboard_agents",
                        sb_prom_labels(l, LB, "group", s->groups[i].name,
                                       "status", AGENT_STATUS[st], NULL),
                        s->groups[i].s.agents[st]);
    per_group(p, s, "switchboard_agent_capacity",
              "Conversations the online agents of a group may hold.",
              group_capacity);
    per_group(p, s, "switchboard_agent_load",
              "Conversations the online agents of a group hold.", group_load);
    hist(p, "switchboard_queue_wait_seconds",
         "Waiting for an agent, handoff to assignment (0: one had room).",
         &g->queue_wait_ms, 1e-3);
    hist(p, "switchboard_first_response_seconds",
         "A service conversation's start to its agent's first message.",
         &g->first_response_ms, 1e-3);
    hist(p, "switchboard_resolution_seconds",
         "A service conversation's start to its close.", &g->resolution_ms,
         1e-3);
}

static void render_process(sb_prom *p, const sb_metrics_process *pr)
{
    if (pr->rss_bytes >= 0)
        gauge(p, "switchboard_process_resident_memory_bytes",
              "Resident memory of the server process.", (double)pr->rss_bytes);
    if (pr->vsz_bytes >= 0)
        gauge(p, "switchboard_process_virtual_memory_bytes",
              "Virtual memory of the server process.", (double)pr->vsz_bytes);
    if (pr->cpu_s >= 0) {
        sb_prom_family(p, "switchboard_process_cpu_seconds_total",
                       SB_PROM_COUNTER,
                       "CPU time, user and system, all threads.");
        sb_prom_f64(p, "switchboard_process_cpu_seconds_total", NULL,
                    pr->cpu_s);
    }
    if (pr->open_fds >= 0)
        gauge(p, "switchboard_process_open_fds", "Open file descriptors.",
              (double)pr->open_fds);
    if (pr->max_fds >= 0)
        gauge(p, "switchboard_process_max_fds",
              "The limit on open file descriptors.", (double)pr->max_fds);
    if (pr->start_time_s >= 0)
        gauge(p, "switchboard_process_start_time_seconds",
              "When the process started, since the Unix epoch.",
              pr->start_time_s);
}

int sb_metrics_render(const sb_metrics_snap *s, sb_buf *out)
{
    sb_prom p = {.out = out};
    render_shell(&p, s);
    render_gateway(&p, &s->gw);
    render_store(&p, s);
    render_desk(&p, s);
    render_process(&p, &s->proc);
    return p.rc;
}
