/* A cluster for integration tests (itcluster.h). */
#include "itcluster.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include "pgtest.h"

bool itc_start(itc *c, it_env *e, const char *desk)
{
    memset(c, 0, sizeof *c);
    c->env = e;
    if (!pgtest_url() || !natstest_available()) return false;
    assert_int_equal(natstest_start(&c->nats), 0);
    it_env_init(e);
    e->unlimited = true;
    for (int i = 0; i < ITC_NODES; i++)
        snprintf(c->names[i], sizeof c->names[i], "n%d", i + 1);
    const char *extra[14] = {"--nats",    c->nats.url,      "--node",
                             c->names[0], "--admin-listen", "127.0.0.1:0"};
    int n = 6;
    if (desk) {
        snprintf(c->desk_path, sizeof c->desk_path, "/tmp/itc-desk.XXXXXX");
        int fd = mkstemp(c->desk_path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, desk, strlen(desk)), (ssize_t)strlen(desk));
        close(fd);
        extra[n++] = "--desk";
        extra[n++] = c->desk_path;
    }
    /* SB_ITC_LOG_DIR: each node's log, at debug level, in DIR/nK.log. */
    const char *logs = getenv("SB_ITC_LOG_DIR");
    static char log_path[ITC_NODES][300];
    if (logs) {
        extra[n++] = "--log-level";
        extra[n++] = "debug";
        for (int i = 0; i < ITC_NODES; i++)
            snprintf(log_path[i], sizeof log_path[i], "%s/n%d.log", logs,
                     i + 1);
        e->srv.log_path = log_path[0];
    }
    extra[n] = NULL;
    assert_int_equal(it_server_start(e, extra), 0);
    c->node[0] = &e->srv;
    for (int k = 1; k < ITC_NODES; k++) {
        harness_server *s = &c->more[k - 1];
        c->node[k] = s;
        snprintf(s->store, sizeof s->store, "%s", e->srv.store);
        for (int j = 0; e->srv.extra[j] && j < 15; j++) {
            s->extra[j] = e->srv.extra[j];
            /* The node's own name after --node. */
            if (j > 0 && strcmp(e->srv.extra[j - 1], "--node") == 0)
                s->extra[j] = c->names[k];
        }
        if (logs) s->log_path = log_path[k];
        assert_int_equal(harness_start(s), 0);
    }
    return true;
}

void itc_free(itc *c)
{
    if (!c->env) return;
    for (int k = 1; k < ITC_NODES; k++) {
        if (!c->node[k]) continue;
        harness_kill9(c->node[k]);
        c->node[k]->store[0] = '\0'; /* the database is node 1's to drop */
        harness_cleanup(c->node[k]);
    }
    if (c->node[0]) it_env_free(c->env);
    natstest_kill9(&c->nats);
    if (c->desk_path[0]) unlink(c->desk_path);
    memset(c, 0, sizeof *c);
}

const char *itc_url(itc *c, int i)
{
    return c->node[i]->url;
}

const char *itc_urls_from(itc *c, int first)
{
    static char list[ITC_NODES * 64];
    size_t len = 0;
    for (int k = 0; k < ITC_NODES; k++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                                k ? "," : "",
                                c->node[(first + k) % ITC_NODES]->url);
    return list;
}

int itc_owner(itc *c)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                              "Connection: close\r\n\r\n";
    static char resp[1 << 20];
    for (int i = 0; i < ITC_NODES; i++) {
        if (c->node[i]->pid <= 0 || !c->node[i]->admin_port) continue;
        bool closed = false;
        if (it_http(c->node[i]->admin_port, req, sizeof req - 1, resp,
                    sizeof resp, 2000, &closed) != 200)
            continue;
        if (strstr(resp, "\nswitchboard_cluster_desk_owner 1")) return i;
    }
    return -1;
}

int itc_wait_owner(itc *c, int timeout_ms)
{
    for (int64_t end = harness_now_ms() + timeout_ms; harness_now_ms() < end;) {
        int o = itc_owner(c);
        if (o >= 0) return o;
        it_run_for(c->env, 100);
    }
    return -1;
}
