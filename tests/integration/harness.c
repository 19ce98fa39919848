/* Runs the real server binary for integration tests. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pgtest.h"
#include "sb_token.h"

const char *harness_server_bin(void)
{
    const char *b = getenv("SB_SERVER_BIN");
    return b && *b ? b : "./switchboard";
}

int64_t harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int spawn(harness_server *s)
{
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", s->port);
    const char *argv[40];
    int n = 0;
    argv[n++] = harness_server_bin();
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--data";
    argv[n++] = s->data_dir;
    if (s->store[0]) {
        argv[n++] = "--store";
        argv[n++] = s->store;
    }
    argv[n++] = "--secret";
    argv[n++] = HARNESS_SECRET;
    argv[n++] = "--quiet";
    for (int i = 0; i < 16 && s->extra[i]; i++)
        argv[n++] = s->extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (s->log_path) {
            int lfd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (lfd >= 0) dup2(lfd, STDERR_FILENO);
        }
        dup2(pfd[1], STDOUT_FILENO);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    s->pid = pid;
    /* Wait for "switchboard: ready on port N" (at most 10 s). */
    s->admin_port = 0;
    char line[256];
    size_t len = 0;
    int64_t deadline = harness_now_ms() + 10000;
    int rc = -1;
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    while (harness_now_ms() < deadline) {
        ssize_t r = read(pfd[0], line + len, sizeof line - 1 - len);
        if (r > 0) {
            len += (size_t)r;
            line[len] = '\0';
            /* "admin on port N" comes first, when there is one. */
            char *a = strstr(line, "admin on port ");
            if (a && strchr(a, '\n')) s->admin_port = (uint16_t)atoi(a + 14);
            char *p = strstr(line, "ready on port ");
            if (p && strchr(p, '\n')) {
                s->port = (uint16_t)atoi(p + 14);
                rc = 0;
                break;
            }
            if (len == sizeof line - 1) len = 0;
        } else if (r == 0) {
            break; /* exited */
        } else {
            usleep(5000);
        }
    }
    close(pfd[0]);
    if (rc != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        s->pid = 0;
        return -1;
    }
    snprintf(s->url, sizeof s->url, "ws://127.0.0.1:%u/ws", s->port);
    return 0;
}

int harness_start(harness_server *s)
{
    if (!s->data_dir[0]) {
        snprintf(s->data_dir, sizeof s->data_dir, "/tmp/sbtest.XXXXXX");
        if (!mkdtemp(s->data_dir)) return -1;
    }
    if (!s->store[0] && !s->sqlite_only && pgtest_url()) {
        pgtest_db_new(s->store, sizeof s->store);
        char path[300];
        snprintf(path, sizeof path, "%s/store.url", s->data_dir);
        FILE *f = fopen(path, "w");
        if (!f) return -1;
        fprintf(f, "%s\n", s->store);
        fclose(f);
    }
    return spawn(s);
}

/* The old socket may linger a moment: the start is tried again, 50 times
 * 100 ms apart. */
int harness_restart(harness_server *s)
{
    for (int i = 0; i < 50; i++) {
        if (spawn(s) == 0) return 0;
        usleep(100000);
    }
    return -1;
}

void harness_kill9(harness_server *s)
{
    if (s->pid <= 0) return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

int harness_stop(harness_server *s)
{
    if (s->pid <= 0) return -1;
    kill(s->pid, SIGTERM);
    int st = 0;
    int64_t deadline = harness_now_ms() + 15000;
    while (harness_now_ms() < deadline) {
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        usleep(10000);
    }
    harness_kill9(s);
    return -1;
}

int harness_stop_begin(harness_server *s)
{
    if (s->pid <= 0) return -1;
    return kill(s->pid, SIGTERM) == 0 ? 0 : -1;
}

int harness_stop_poll(harness_server *s, int *status)
{
    if (s->pid <= 0) return -1;
    int st = 0;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r != s->pid) return 0;
    s->pid = 0;
    if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return 1;
}

void harness_cleanup(harness_server *s)
{
    if (s->pid > 0) harness_kill9(s);
    if (s->store[0]) pgtest_db_drop(s->store);
    if (s->data_dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->data_dir);
        if (system(cmd) != 0) fprintf(stderr, "harness: cleanup failed\n");
    }
}

const char *harness_token(const char *sub, const char *role,
                          int64_t exp_offset_s)
{
    static char tok[1024];
    sb_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "%s", sub);
    c.role = sb_role_from_name(role);
    c.exp = (int64_t)time(NULL) + exp_offset_s;
    if (sb_token_sign((const uint8_t *)HARNESS_SECRET, strlen(HARNESS_SECRET),
                      &c, tok, sizeof tok) < 0)
        tok[0] = '\0';
    return tok;
}
