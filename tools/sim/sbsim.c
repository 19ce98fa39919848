/* sbsim: the deterministic simulator's command line (sim_world.h).
 *
 *   sbsim --seed N [--trace] [--twice]
 *                                one seed; its trace with --trace, always
 *                                its result and the hash of its trace (the
 *                                same every time the seed runs: --twice
 *                                runs it again and fails if it differs)
 *   sbsim --seeds N [--from S] [--jobs J]
 *                                seeds S..S+N-1 (S: 1), on J processes;
 *                                a violation prints its seed and trace;
 *                                the last line is "seeds=N violations=K"
 *
 * Exits 0 when no seed found a violation, 1 when one did, 2 on bad
 * usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim_world.h"

#define JOBS_MAX 16

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sbsim --seed N [--trace] [--twice]\n"
               "       sbsim --seeds N [--from S] [--jobs J]\n");
}

/* A seed that found a violation: run again with its trace, printed. */
static void report(uint64_t seed, const sim_result *r)
{
    fprintf(stderr, "\nsbsim: seed %" PRIu64 ": VIOLATION: %s\n", seed,
            r->violation);
    fprintf(stderr,
            "sbsim: trace of seed %" PRIu64 " (replay: sbsim --seed %" PRIu64
            " --trace):\n",
            seed, seed);
    sim_result again;
    if (sim_run(seed, true, stderr, &again) != 0 ||
        strcmp(again.violation, r->violation) != 0)
        fprintf(stderr, "sbsim: seed %" PRIu64 " did not replay the same\n",
                seed);
    fprintf(stderr, "sbsim: seed %" PRIu64 ": VIOLATION: %s\n\n", seed,
            r->violation);
}

/* Runs seeds from, from + step, ... below end; returns the violations. */
static uint64_t run_range(uint64_t from, uint64_t end, uint64_t step,
                          sim_stats *sum)
{
    uint64_t bad = 0;
    for (uint64_t seed = from; seed < end; seed += step) {
        sim_result r;
        if (sim_run(seed, false, NULL, &r) != 0) {
            fprintf(stderr, "sbsim: seed %" PRIu64 ": out of memory\n", seed);
            bad++;
            continue;
        }
        sum->acked += r.st.acked;
        sum->surfaced += r.st.surfaced;
        sum->server_crashes += r.st.server_crashes;
        sum->app_crashes += r.st.app_crashes;
        sum->cuts += r.st.cuts;
        sum->commit_failures += r.st.commit_failures;
        if (!r.ok) {
            bad++;
            report(seed, &r);
        }
    }
    return bad;
}

static int run_one(uint64_t seed, bool trace, bool twice)
{
    sim_result r;
    if (sim_run(seed, true, trace ? stdout : NULL, &r) != 0) {
        fprintf(stderr, "sbsim: out of memory\n");
        return 1;
    }
    if (twice) {
        sim_result again;
        if (sim_run(seed, true, NULL, &again) != 0 ||
            again.trace_hash != r.trace_hash ||
            again.trace_lines != r.trace_lines || again.ok != r.ok) {
            printf("seed=%" PRIu64 " did not replay: trace %016" PRIx64
                   " (%" PRIu64 " lines) then %016" PRIx64 " (%" PRIu64
                   " lines)\n",
                   seed, r.trace_hash, r.trace_lines, again.trace_hash,
                   again.trace_lines);
            return 1;
        }
    }
    printf("seed=%" PRIu64 " result=%s steps=%" PRIu64 " frames=%" PRIu64
           " acked=%" PRIu64 " surfaced=%" PRIu64 " convs=%" PRIu64
           " server_crashes=%" PRIu64 " device_crashes=%" PRIu64
           " cuts=%" PRIu64 " stalls=%" PRIu64 " clock_jumps=%" PRIu64
           " failed_commits=%" PRIu64 " trace_lines=%" PRIu64
           " trace_hash=%016" PRIx64 "\n",
           seed, r.ok ? "ok" : "VIOLATION", r.st.steps,
           r.st.frames_up + r.st.frames_down, r.st.acked, r.st.surfaced,
           r.st.convs, r.st.server_crashes, r.st.app_crashes, r.st.cuts,
           r.st.stalls, r.st.jumps, r.st.commit_failures, r.trace_lines,
           r.trace_hash);
    if (!r.ok) printf("violation: %s\n", r.violation);
    return r.ok ? 0 : 1;
}

static int run_many(uint64_t from, uint64_t n, int jobs)
{
    double t0 = mono_s();
    sim_stats sum = {0};
    uint64_t bad = 0;
    if (jobs <= 1) {
        bad = run_range(from, from + n, 1, &sum);
    } else {
        int fds[JOBS_MAX][2];
        pid_t pids[JOBS_MAX];
        for (int j = 0; j < jobs; j++) {
            if (pipe(fds[j]) != 0 || (pids[j] = fork()) < 0) {
                perror("sbsim");
                return 2;
            }
            if (pids[j] == 0) {
                close(fds[j][0]);
                sim_stats s = {0};
                uint64_t b =
                    run_range(from + (uint64_t)j, from + n, (uint64_t)jobs, &s);
                uint64_t out[7] = {b,
                                   s.acked,
                                   s.surfaced,
                                   s.server_crashes,
                                   s.app_crashes,
                                   s.cuts,
                                   s.commit_failures};
                ssize_t w = write(fds[j][1], out, sizeof out);
                /* exit, not _exit: a leak checker reports at exit. */
                exit(w == (ssize_t)sizeof out ? 0 : 3);
            }
            close(fds[j][1]);
        }
        for (int j = 0; j < jobs; j++) {
            uint64_t in[7] = {0};
            if (read(fds[j][0], in, sizeof in) != (ssize_t)sizeof in)
                in[0] = 1; /* a job that died is a failure */
            close(fds[j][0]);
            int st;
            waitpid(pids[j], &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) in[0] |= 1;
            bad += in[0];
            sum.acked += in[1];
            sum.surfaced += in[2];
            sum.server_crashes += in[3];
            sum.app_crashes += in[4];
            sum.cuts += in[5];
            sum.commit_failures += in[6];
        }
    }
    double dt = mono_s() - t0;
    printf("sbsim: %" PRIu64 " seeds from %" PRIu64 " in %.1f s (%.0f seeds/s"
           ", %d jobs): %" PRIu64 " messages acknowledged, %" PRIu64
           " surfaced, %" PRIu64 " server crashes, %" PRIu64
           " device crashes, %" PRIu64 " cuts, %" PRIu64 " failed commits\n",
           n, from, dt, dt > 0 ? (double)n / dt : 0.0, jobs, sum.acked,
           sum.surfaced, sum.server_crashes, sum.app_crashes, sum.cuts,
           sum.commit_failures);
    printf("seeds=%" PRIu64 " violations=%" PRIu64 "\n", n, bad);
    return bad ? 1 : 0;
}

static bool num(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || *s == '-') return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"seed", 1, 0, 's'}, {"seeds", 1, 0, 'n'}, {"from", 1, 0, 'f'},
        {"jobs", 1, 0, 'j'}, {"trace", 0, 0, 't'}, {"twice", 0, 0, 'w'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    uint64_t seed = 0, seeds = 0, from = 1, jobs = 1;
    bool one = false, many = false, trace = false, twice = false;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 's':
            if (!num(optarg, &seed)) goto bad;
            one = true;
            break;
        case 'n':
            if (!num(optarg, &seeds)) goto bad;
            many = true;
            break;
        case 'f':
            if (!num(optarg, &from)) goto bad;
            break;
        case 'j':
            if (!num(optarg, &jobs) || jobs < 1 || jobs > JOBS_MAX) goto bad;
            break;
        case 't':
            trace = true;
            break;
        case 'w':
            twice = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            goto bad;
        }
    }
    if (optind != argc || one == many) goto bad;
    return one ? run_one(seed, trace, twice) : run_many(from, seeds, (int)jobs);
bad:
    usage(stderr);
    return 2;
}
