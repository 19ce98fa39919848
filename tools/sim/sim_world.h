/* The simulated world of one seed: the real gateway core with its
 * customer-service modules and a desk, the store behind a simulated queue
 * (sim_store), and devices each running a real C SDK core (sim_app), wired
 * by connections that carry real WebSocket bytes (sb_ws at both ends)
 * through pipes that delay, stall and cut (sim_pipe). One PRNG decides
 * everything and one clock, in 10 ms steps, drives everything: the run of
 * a seed is the same every time.
 *
 * A run has a fault phase (crashes of the server and of devices, cuts,
 * stalls, slow and failing store, jumping clocks, agents on and off duty,
 * transfers and closes racing, bots answering late) and a quiet one
 * (no faults, no new conversations, every device back) after which the
 * world must have converged. Invariants are checked as things happen and
 * at the end (sim_check); the first violation ends the run.
 *
 * This header is shared by the simulator's parts (sim_world.c: the
 * clock, the server and the connections; sim_app.c: the devices;
 * sim_check.c: the invariants); sbsim.c only calls sim_run. */
#ifndef SIM_WORLD_H
#define SIM_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sb_client_core.h"
#include "sb_codec.h"
#include "sb_gateway.h"
#include "sb_ws.h"
#include "sim_pipe.h"
#include "sim_rng.h"
#include "sim_store.h"
#include "sim_trace.h"

#define SIM_STEP_MS 10
#define SIM_APPS_MAX 12
#define SIM_CONVS_MAX 64    /* conversations a device's log holds */
#define SIM_SENDS_MAX 256   /* sends a device makes in a run */
#define SIM_PENDING_MAX 64  /* requests awaiting answers per connection */
#define SIM_ASSIGNED_MAX 16 /* conversations an agent tracks */
#define SIM_REPLIES_MAX 16  /* a bot's answers waiting to be sent */
/* A request unanswered this long on a live connection is a violation
 * (the store stalls for 3 s at most, a connection for 8 s). */
#define SIM_ANSWER_MS 30000
#define SIM_SECRET "sim-secret"
#define SIM_BOT "bot1"
#define SIM_GHOST "ghost" /* a customer that connects late */

typedef struct sim_world sim_world;
typedef struct sim_app sim_app;

/* What a seed's world looks like and how hard it is hit. */
typedef struct sim_params {
    int customers;   /* 1..3, each with 1 or 2 devices */
    bool two_agents; /* a2 besides a1 */
    bool ext_bot;    /* the desk hands new conversations to SIM_BOT */
    bool ghost;      /* SIM_GHOST connects during the fault phase */
    int64_t fault_ms, quiet_ms;
    /* Per step, in millionths. */
    uint32_t server_crash, app_crash, cut, stall, clock_jump;
    sim_store_faults store;
    int latency_max_ms;
    uint32_t push_batch_max;
} sim_params;

/* One connection: the device's WebSocket end and the server's, and the
 * bytes between them. */
typedef struct sim_conn {
    sim_world *w;
    uint64_t id;  /* the gateway's connection id */
    sim_app *app; /* NULL once the device let go of it */
    sb_encoding enc;
    sb_ws *cws, *sws;
    sim_pipe up, down; /* device -> server, server -> device */
    bool gw_open;      /* the gateway has a session for it */
    bool server_closing;
    int64_t server_close_ms;
    bool dead; /* torn down: freed at the end of the step */
    int latency_ms;
    /* Requests the server received and has not answered (rid, when). */
    uint32_t pend_rid[SIM_PENDING_MAX];
    int64_t pend_ms[SIM_PENDING_MAX];
    size_t npend;
    struct sim_conn *next;
} sim_conn;

/* A conversation as a device surfaced it. */
typedef struct sim_log {
    uint64_t conv_id;
    uint64_t last; /* highest seq surfaced: seqs 1..last, each once */
    bool allowed;  /* the user was found to be a member */
} sim_log;

typedef struct sim_send {
    uint8_t cmid[SB_CLIENT_MSG_ID_BYTES];
    uint64_t conv_id, seq;
    sb_client_send_status status;
    int err;
    bool lost; /* the device crashed before its answer: may be lost */
} sim_send;

struct sim_app {
    sim_world *w;
    int idx;
    char user[SB_ID_BYTES_MAX + 1], device[SB_ID_BYTES_MAX + 1];
    Sbp__Role role;
    sb_encoding enc;
    char token[1024];
    sb_client_core *cc; /* NULL while crashed or not started */
    sim_conn *conn;     /* the connection the core has */
    int64_t connect_at; /* a connection attempt is answered then (0: none) */
    int64_t start_at;   /* (re)started then (0: running) */
    int64_t clock_off;  /* its clock, against the world's */
    bool close_pending; /* the core dropped conn: flush it, then close */
    uint16_t close_code;
    sim_log logs[SIM_CONVS_MAX];
    size_t nlogs;
    sim_send sends[SIM_SENDS_MAX];
    size_t nsends;
    /* What its user does. */
    uint64_t conv; /* a customer's service conversation */
    bool open_pending;
    uint64_t assigned[SIM_ASSIGNED_MAX]; /* an agent's conversations */
    size_t nassigned;
    uint64_t reply_conv[SIM_REPLIES_MAX]; /* a bot's late answers */
    int64_t reply_due[SIM_REPLIES_MAX];
    size_t nreplies;
    int bodies;
};

typedef struct sim_stats {
    uint64_t steps, frames_up, frames_down, acked, surfaced;
    uint64_t server_crashes, app_crashes, cuts, stalls, jumps;
    uint64_t commits, commit_failures, convs;
} sim_stats;

struct sim_world {
    uint64_t seed;
    sim_params p;
    sim_rng rng;
    sim_trace tr;
    int64_t now;        /* ms since the run began */
    int64_t server_off; /* the server's clock, against the world's */
    bool faults;        /* the fault phase */
    bool quiet;         /* no new conversations or messages */
    sim_store *store;
    struct sb_desk *desk;
    sb_gw *gw; /* NULL while the server is down */
    int64_t restart_at;
    bool discard; /* the server is dying: what it says goes nowhere */
    sim_app apps[SIM_APPS_MAX];
    size_t napps;
    sim_conn *conns;
    uint64_t next_conn;
    sim_stats st;
    uint32_t agent_load[2]; /* a1's and a2's, as last traced */
    int agent_status[2];
    bool violated;
    char violation[1024];
};

/* The outcome of a run. */
typedef struct sim_result {
    bool ok;
    char violation[1024];
    sim_stats st;
    uint64_t trace_hash, trace_lines;
} sim_result;

/* Runs seed; with trace, the trace goes to trace_out (NULL: kept only for
 * its hash). Returns 0, or a negative code if the world could not be made
 * (out of memory). */
int sim_run(uint64_t seed, bool trace, FILE *trace_out, sim_result *res);

/* ---- shared by the simulator's parts ---------------------------------- */

/* Records the run's first violation (later ones are dropped). */
void sim_violation(sim_world *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The time the server reads, and a device's. */
int64_t sim_server_now(const sim_world *w);
int64_t sim_app_now(const sim_app *a);
/* The epoch time the world starts at. */
#define SIM_T0_MS 1800000000000LL

/* Devices (sim_app.c). */
void sim_app_init(sim_app *a, sim_world *w, int idx, const char *user,
                  const char *device, Sbp__Role role);
/* Makes its SDK core and starts it (after a crash: with the cursors its
 * log kept). Returns 0 or a negative code. */
int sim_app_start(sim_app *a);
/* The device dies: its core is freed with no goodbye, its connection
 * cut; it restarts at start_at. */
void sim_app_crash(sim_app *a, int64_t restart_at);
/* Its core's frames to its connection's WebSocket. */
void sim_app_pump(sim_app *a);
/* What its user does in this step. */
void sim_app_act(sim_app *a);
void sim_app_free(sim_app *a);

/* The world's connections (sim_world.c). */
/* The connection is cut: nothing more is delivered either way; each side
 * hears of it. */
void sim_conn_cut(sim_world *w, sim_conn *k, const char *why);

/* Invariants (sim_check.c). */
/* A device surfaced m, or holds it from a read (HISTORY): in seq order
 * once (surfaced only), and only if its user may see the conversation. */
void sim_check_surfaced(sim_app *a, const Sbp__Message *m);
void sim_check_held(sim_app *a, const Sbp__Message *m);
/* A device was told a send is stored at (conv, seq): it must be, once. */
void sim_check_acked(sim_app *a, const sim_send *s);
/* What must hold after every step. */
void sim_check_step(sim_world *w);
/* What must hold once the quiet phase has let everything settle. */
void sim_check_end(sim_world *w);

#endif
