/* nats-server for tests (natstest.h). */
#include "natstest.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *bin(void)
{
    const char *b = getenv("SB_NATS_SERVER");
    return b && *b ? b : "nats-server";
}

int natstest_available(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", bin());
    return system(cmd) == 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A port nobody listens on now. */
static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static int connectable(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

int natstest_start(natstest *n)
{
    if (!n->port) n->port = free_port();
    if (!n->port) return -1;
    snprintf(n->url, sizeof n->url, "nats://127.0.0.1:%u", n->port);
    char port[16];
    snprintf(port, sizeof port, "%u", n->port);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
        }
        execlp(bin(), bin(), "-a", "127.0.0.1", "-p", port, (char *)NULL);
        _exit(127);
    }
    n->pid = pid;
    int64_t deadline = now_ms() + 5000;
    while (now_ms() < deadline) {
        if (connectable(n->port)) return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            n->pid = 0;
            return -1;
        }
        usleep(20000);
    }
    natstest_kill9(n);
    return -1;
}

void natstest_kill9(natstest *n)
{
    if (n->pid <= 0) return;
    kill(n->pid, SIGKILL);
    waitpid(n->pid, NULL, 0);
    n->pid = 0;
}
