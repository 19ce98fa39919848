/* What the operations port tells about the server: a snapshot of its
 * numbers taken on the loop thread (a copy: no pointer into the server, so
 * that the rest of the work can leave the loop), the process's own
 * figures read from /proc, the readiness verdict, and the whole rendered
 * in the Prometheus text format. docs/operations.md lists every metric
 * and what to alert on. */
#ifndef SB_METRICS_H
#define SB_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_desk.h"
#include "sb_gateway.h"
#include "sb_media.h"
#include "sb_nats.h"
#include "sb_storeq.h"
#include "sb_ws.h"

/* Readiness fails once the oldest write has waited this long. */
#define SB_METRICS_WRITE_WAIT_MS_MAX 5000

/* What an open connection speaks. */
typedef enum sb_metrics_conn_kind {
    SB_METRICS_CONN_HTTP, /* not upgraded (yet) */
    SB_METRICS_CONN_PROTOBUF,
    SB_METRICS_CONN_JSON,
    SB_METRICS_CONN_KINDS
} sb_metrics_conn_kind;

/* Why a new connection was turned away. */
typedef enum sb_metrics_refusal {
    SB_METRICS_REFUSED_FULL,     /* --max-connections */
    SB_METRICS_REFUSED_PER_ADDR, /* --conns-per-addr */
    SB_METRICS_REFUSED_DRAINING,
    SB_METRICS_REFUSALS
} sb_metrics_refusal;

/* The shell's own counts (loop thread). */
typedef struct sb_metrics_shell {
    uint64_t open[SB_METRICS_CONN_KINDS][2]; /* by kind, [tls] */
    uint64_t accepted[2];                    /* by [tls] */
    uint64_t refused[SB_METRICS_REFUSALS];
    sb_ws_env_stats ws; /* wslay contexts and permessage-deflate */
} sb_metrics_shell;

typedef struct sb_metrics_group {
    char name[SB_ID_BYTES_MAX + 1];
    sb_desk_group_stats s; /* s.name not used */
} sb_metrics_group;

/* The process, as /proc and the file system tell (-1: unknown). */
typedef struct sb_metrics_process {
    int64_t rss_bytes, vsz_bytes;
    double cpu_s;
    int64_t open_fds, max_fds;
    double start_time_s;         /* since the Unix epoch */
    int64_t db_bytes, wal_bytes; /* the SQLite files; -1: not SQLite */
} sb_metrics_process;

typedef struct sb_metrics_snap {
    int64_t now_ms;
    bool draining;
    bool sqlite;        /* the store is an SQLite file: db_path */
    char db_path[1024]; /* its path; the WAL is db_path-wal */
    sb_metrics_shell shell;
    sb_gw_stats gw;
    bool have_store; /* false once the store is stopped */
    sb_storeq_stats store;
    sb_metrics_group groups[SB_DESK_GROUPS_MAX];
    size_t n_groups;
    sb_metrics_process proc; /* sb_metrics_process_read() */
    /* A node of a cluster (--nats): its link and whether it owns the
     * desks. */
    bool cluster, desk_owner;
    sb_nats_stats nats;
    bool media; /* the media service runs: media holds its counts */
    sb_media_stats media_stats;
} sb_metrics_snap;

/* Copies the desk's group figures into s (none for desk NULL). */
void sb_metrics_take_desk(sb_metrics_snap *s, const struct sb_desk *desk);

/* Reads the process's figures and the store files' sizes into s->proc:
 * file system reads, for a thread other than the loop's. */
void sb_metrics_process_read(sb_metrics_snap *s);

/* Whether the server should get traffic: not draining, the store
 * answering and not behind (SB_METRICS_WRITE_WAIT_MS_MAX). Otherwise
 * false, with why (cap bytes) naming each check that fails. */
bool sb_metrics_ready(const sb_metrics_snap *s, char *why, size_t cap);

/* Appends every metric of s in the Prometheus text format to out.
 * Returns 0 or -ENOMEM. */
int sb_metrics_render(const sb_metrics_snap *s, sb_buf *out);

#endif
