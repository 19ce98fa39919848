/* sbctl: the Switchboard command line, on the client SDK. It mints test
 * tokens, opens conversations, sends, listens, pages history and chats,
 * drives the customer-service requests (service open, agent status,
 * transfer, close, tag, list, search, canned replies) and the admin
 * commands (word lists, the desk configuration), each as a subcommand
 * with its own --help. One client, one loop; the process exits when the
 * command is done, the server refuses, or the deadline passes. `store
 * backup` works on the data folder instead (sb_backup), no server asked. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "sb_backup.h"
#include "sb_image.h"
#include "sb_client.h"
#include "sb_client_hs.h"
#include "sb_error.h"
#include "sb_identity.h"
#include "sb_pbjson.h"
#include "sb_reportfmt.h"
#include "sb_storecopy.h"
#include "sb_token.h"

#define EXIT_OK 0
#define EXIT_REFUSED 1 /* the server said no (an ERROR code) */
#define EXIT_USAGE 2
#define EXIT_TIMEOUT 3 /* no answer in time, or no connection */
#define LINE_BYTES_MAX 8192
#define DESK_FILE_BYTES_MAX (4u << 20) /* the server's limit, too */
#define GROUPS_MAX 64

typedef struct ctl ctl;

/* One subcommand: `sbctl NAME [SUB]`. A command that needs no connection
 * is run() alone; the others share the options and the client, and do
 * their part through the hooks (each may be NULL). */
typedef struct command {
    const char *name, *sub;
    const char *usage; /* its --help (connected ones add CONN_HELP) */
    int (*run)(const struct command *c, int argc, char **argv);
    bool needs_conv; /* --conv is required */
    bool inbox;      /* follows the inbox: SYNC on, no default deadline */
    bool listens;    /* the deadline without --count ends it well */
    uint32_t frame_bytes_max; /* the incoming bound; 0: the SDK's */
    /* Checks the options and takes the words after them (argv[optind..]):
     * an exit status. */
    int (*prepare)(ctl *x, int argc, char **argv);
    /* Does what the command is for: on the first READY (requests are
     * READY only), or with act_at_start right after the client starts
     * (the outbox holds a send until READY). Returns 0 or the SDK's
     * refusal, which ends the run. */
    int (*act)(ctl *x);
    bool act_at_start;
    /* The answer to the request act made (x->rid). */
    void (*answer)(ctl *x, int err, const Sbp__Frame *resp);
    void (*message)(ctl *x, const Sbp__Message *m);
    /* A send reached SENT or FAILED. */
    void (*status)(ctl *x, const sb_client_send_info *s);
} command;

struct ctl {
    const command *cmd;
    const char *name; /* the command's, "agent status" */
    uv_loop_t *loop;
    sb_client *c;
    uv_timer_t deadline;
    bool deadline_on;
    int exit_code;
    bool finished, acted, verbose, synced_once;
    uint32_t rid; /* the request awaiting its answer */
    /* options */
    const char *url, *token, *device, *ca;
    bool json, new_only, mark_read;
    long timeout_ms;
    uint64_t conv, before;
    uint32_t limit;
    long count, seen;
    const char *members[SB_MEMBERS_MAX];
    size_t n_members;
    const char *title;
    Sbp__ConvKind kind;
    char *text;                   /* send: the message; search: the query */
    const char *file, *file_name; /* send --file: an attachment */
    /* customer service */
    const char *desk, *agent, *group, *cursor, *tag;
    Sbp__ConvState state;
    Sbp__AgentStatus status;
    bool mine;
    uint64_t seq;
    const char *add[SB_TAGS_MAX], *remove[SB_TAGS_MAX];
    size_t n_add, n_remove;
    /* admin desk: the op and its input */
    char op[40];
    char *body;
    const char *groups; /* "a,b" */
    long capacity;      /* 0: not given */
    /* csat */
    uint32_t rating;
    const char *comment;
    /* report */
    const char *from, *to, *tz;
    char by_buf[64];
    char *by[4];
    size_t n_by;
    sb_report_format format;
    /* notes: the notes conversation; contact: whose, and the change */
    uint64_t notes_conv;
    const char *user, *name_set, *email_set;
    const char *attr_keys[SB_CONTACT_ATTRS_MAX],
        *attr_values[SB_CONTACT_ATTRS_MAX];
    char *attr_buf[SB_CONTACT_ATTRS_MAX];
    size_t n_attrs;
    bool clear_name, clear_email;
    /* chat: stdin */
    union {
        uv_tty_t tty;
        uv_pipe_t pipe;
    } in;
    bool in_open, in_eof;
    char line[LINE_BYTES_MAX + 1];
    size_t line_len;
    bool line_too_long;
    size_t unacked; /* chat: sends not yet SENT or FAILED */
};

/* ---- output -------------------------------------------------------------- */

/* Prints s on one line: newline, CR, tab and backslash escaped. */
static void put_escaped(const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\n':
            fputs("\\n", stdout);
            break;
        case '\r':
            fputs("\\r", stdout);
            break;
        case '\t':
            fputs("\\t", stdout);
            break;
        case '\\':
            fputs("\\\\", stdout);
            break;
        default:
            putchar(*s);
        }
    }
}

/* One message: `conv seq sender body`; an attachment's after the body as
 * `[image|file NAME TYPE BYTES [WxH] URL]`. */
static void print_msg(const Sbp__Message *m)
{
    printf("%" PRIu64 " %" PRIu64 " %s ", m->conv_id, m->seq, m->sender);
    put_escaped(m->body);
    const Sbp__Media *md = m->media;
    if (md && md->id[0]) {
        printf("%s[%s ", m->body[0] ? " " : "",
               m->type == SBP__MSG_TYPE__MSG_IMAGE ? "image" : "file");
        put_escaped(md->name);
        printf(" %s %" PRIu64, md->mime[0] ? md->mime : "-", md->size);
        if (md->width) printf(" %ux%u", md->width, md->height);
        printf(" %s]", md->url);
    }
    putchar('\n');
    fflush(stdout);
}

static const char *const STATE_NAMES[] = {
    [SBP__CONV_STATE__STATE_UNSPECIFIED] = "any",
    [SBP__CONV_STATE__STATE_OPEN] = "open",
    [SBP__CONV_STATE__STATE_BOT] = "bot",
    [SBP__CONV_STATE__STATE_QUEUED] = "queued",
    [SBP__CONV_STATE__STATE_ASSIGNED] = "assigned",
    [SBP__CONV_STATE__STATE_CLOSED] = "closed",
};
#define N_STATES (sizeof STATE_NAMES / sizeof *STATE_NAMES)

static const char *state_name(Sbp__ConvState st)
{
    return (size_t)st < N_STATES ? STATE_NAMES[st] : "?";
}

/* One conversation of a list: `conv state key=value... last=body`. */
static void print_conv(const Sbp__Conversation *c)
{
    printf("%" PRIu64 " %s", c->conv_id, state_name(c->state));
    if (c->desk[0]) printf(" desk=%s", c->desk);
    if (c->group[0]) printf(" group=%s", c->group);
    if (c->agent[0]) printf(" agent=%s", c->agent);
    if (c->customer[0]) printf(" customer=%s", c->customer);
    if (c->queue_position) printf(" queue=%u", c->queue_position);
    printf(" unread=%" PRIu64, c->unread);
    for (size_t i = 0; i < c->n_tags; i++)
        printf("%s%s", i ? "," : " tags=", c->tags[i]);
    if (c->last_message) {
        printf(" last=%" PRIu64 ":", c->last_message->seq);
        put_escaped(c->last_message->body);
    }
    putchar('\n');
}

/* ---- lifetime ------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void finish(ctl *x, int code)
{
    if (x->finished) return;
    x->finished = true;
    x->exit_code = code;
    if (x->deadline_on) {
        uv_timer_stop(&x->deadline);
        uv_close((uv_handle_t *)&x->deadline, on_handle_closed);
        x->deadline_on = false;
    }
    if (x->in_open) {
        uv_close((uv_handle_t *)&x->in, on_handle_closed);
        x->in_open = false;
    }
    sb_client_close(x->c, NULL);
}

static void on_deadline(uv_timer_t *t)
{
    ctl *x = t->data;
    int err = sb_client_last_error(x->c);
    if (x->cmd->listens && x->count == 0) {
        finish(x, EXIT_OK); /* listening for a while was the point */
        return;
    }
    fprintf(stderr, "sbctl: timed out (state %s, last error %s)\n",
            sb_client_state_name(sb_client_get_state(x->c)),
            sb_client_err_name(err));
    finish(x, EXIT_TIMEOUT);
}

/* The exit status of a request that failed with err: refused by the
 * server (1), or the connection lost before the answer (3); timed_out
 * when no answer came in request_timeout_ms. */
static int failed_exit(int err, int timed_out)
{
    return err == -ECONNRESET  ? EXIT_TIMEOUT
           : err == -ETIMEDOUT ? timed_out
                               : EXIT_REFUSED;
}

static void request_failed(ctl *x, const char *what, int err, int timed_out)
{
    fprintf(stderr, "sbctl: %s failed: %s\n", what, sb_client_err_name(err));
    finish(x, failed_exit(err, timed_out));
}

/* ---- stdin for chat ------------------------------------------------------ */

static void chat_send_line(ctl *x, const char *s, size_t n)
{
    if (n && s[n - 1] == '\r') n--;
    if (n == 0) return;
    int rc =
        sb_client_send(x->c, x->conv, SBP__MSG_TYPE__MSG_TEXT, s, n, 0, NULL);
    if (rc)
        fprintf(stderr, "sbctl: not sent: %s\n", sb_client_err_name(rc));
    else
        x->unacked++;
}

static void chat_maybe_done(ctl *x)
{
    if (x->in_eof && x->unacked == 0) finish(x, EXIT_OK);
}

static void chat_bytes(ctl *x, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            if (x->line_too_long)
                fprintf(stderr, "sbctl: line over %d bytes dropped\n",
                        LINE_BYTES_MAX);
            else
                chat_send_line(x, x->line, x->line_len);
            x->line_len = 0;
            x->line_too_long = false;
        } else if (x->line_len < LINE_BYTES_MAX) {
            x->line[x->line_len++] = p[i];
        } else {
            x->line_too_long = true;
        }
    }
}

static void chat_eof(ctl *x)
{
    if (x->line_len && !x->line_too_long)
        chat_send_line(x, x->line, x->line_len);
    x->line_len = 0;
    x->in_eof = true;
    if (x->in_open) {
        uv_close((uv_handle_t *)&x->in, on_handle_closed);
        x->in_open = false;
    }
    chat_maybe_done(x);
}

static void in_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char buf[4096];
    (void)h;
    (void)hint;
    *b = uv_buf_init(buf, sizeof buf);
}

static void in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    ctl *x = s->data;
    if (n > 0) chat_bytes(x, b->base, (size_t)n);
    if (n < 0) chat_eof(x);
}

static int chat_stdin(ctl *x)
{
    uv_handle_type t = uv_guess_handle(0);
    int rc;
    if (t == UV_TTY) {
        rc = uv_tty_init(x->loop, &x->in.tty, 0, 1);
    } else if (t == UV_NAMED_PIPE) {
        rc = uv_pipe_init(x->loop, &x->in.pipe, 0);
        if (rc == 0) rc = uv_pipe_open(&x->in.pipe, 0);
    } else {
        /* A file (or nothing): read it all now. */
        char buf[4096];
        ssize_t n;
        while ((n = read(0, buf, sizeof buf)) > 0)
            chat_bytes(x, buf, (size_t)n);
        chat_eof(x);
        return 0;
    }
    if (rc) return rc;
    x->in_open = true;
    ((uv_handle_t *)&x->in)->data = x;
    return uv_read_start((uv_stream_t *)&x->in, in_alloc, in_read);
}

/* ---- usage and arguments ------------------------------------------------- */

static const char USAGE[] =
    "usage: sbctl [--help] [--version] <command> [options]\n"
    "\n"
    "commands:\n"
    "  token    mint an HS256 token for testing\n"
    "  open     open a conversation, print its conv_id\n"
    "  send     send one message, print msg_id and seq\n"
    "  listen   print messages as they are surfaced\n"
    "  history  print a page of a conversation's history\n"
    "  chat     send stdin lines to a conversation, print what comes\n"
    "\n"
    "customer service:\n"
    "  service open   open (or resume) the customer's service conversation\n"
    "  agent status   set an agent online or away\n"
    "  transfer       hand a conversation to another agent or group\n"
    "  close          close a conversation\n"
    "  tag            tag a conversation or one of its messages\n"
    "  list           page the conversation list (agents: and the queue)\n"
    "  search         full-text search in messages\n"
    "  canned         list the desk's canned replies\n"
    "  csat           rate a closed conversation (its customer)\n"
    "  note           write a private note in a conversation (agents)\n"
    "  notes          print a conversation's private notes\n"
    "  contact        show or change a customer's contact\n"
    "  identity-hash  the user_hash a site signs a customer's id with\n"
    "\n"
    "administration (role admin):\n"
    "  report                reports: conversations, response and resolution\n"
    "                        times, waits, ratings (table, JSON or CSV)\n"
    "  admin reload-filter   reload the sensitive-word lists (as SIGHUP)\n"
    "  webhooks failed       the webhook events that could not be delivered\n"
    "  webhooks replay [ID]  deliver them (or event ID) again\n"
    "  admin desk            show or change the desk configuration (agents,\n"
    "                        groups, canned replies, texts, external bot,\n"
    "                        business hours)\n"
    "\n"
    "the store (on the server's machine, no connection):\n"
    "  store backup DIR      a consistent copy of the running SQLite store\n"
    "  store copy            copy a SQLite store into PostgreSQL, verified\n"
    "\n"
    "`sbctl <command> --help` for the command's options.\n"
    "Exit status: 0 done, 1 refused by the server (the code is printed),\n"
    "2 usage, 3 timed out or could not connect.\n";

static const char CONN_HELP[] =
    "connection options:\n"
    "  --url URL[,URL...] ws://host:port/ws or wss://... (env SB_URL;\n"
    "                     default ws://127.0.0.1:8080/ws); several (up to\n"
    "                     16 cluster nodes, comma-separated): connect to\n"
    "                     one, move to another when it goes away\n"
    "  --ca FILE          wss: trust the PEM CA certificates in FILE\n"
    "                     (env SB_CA; default the system's)\n"
    "  --token T          the HS256 token (env SB_TOKEN)\n"
    "  --device D         device id (default sbctl-<pid>)\n"
    "  --json             use the JSON subprotocol (default protobuf)\n"
    "  --timeout-ms MS    give up after MS (default 10000; listen: none)\n"
    "  -v, --verbose      connection states on stderr\n";

static int usage_err(const char *cmd, const char *msg)
{
    fprintf(stderr, "sbctl %s: %s (see sbctl %s --help)\n", cmd, msg, cmd);
    return EXIT_USAGE;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static bool parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s) return false;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

/* The n words joined by single spaces (malloc'd); NULL without memory. */
static char *join_words(char *const *w, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(w[i]) + 1;
    char *out = malloc(len), *p = out;
    if (!out) return NULL;
    for (int i = 0; i < n; i++) {
        size_t k = strlen(w[i]);
        if (i) *p++ = ' ';
        memcpy(p, w[i], k);
        p += k;
    }
    *p = '\0';
    return out;
}

/* The words after the options, joined by spaces, into x->text; missing:
 * a usage error saying so. */
static int take_text(ctl *x, int argc, char **argv, const char *missing)
{
    if (optind >= argc) return usage_err(x->name, missing);
    if (!(x->text = join_words(argv + optind, argc - optind)))
        return EXIT_USAGE;
    optind = argc;
    return EXIT_OK;
}

/* ---- store copy ---------------------------------------------------------- */

static void copy_progress(void *ud, const char *line)
{
    (void)ud;
    printf("%s\n", line);
    fflush(stdout);
}

static int cmd_store_copy(const command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *from = NULL, *to = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h':
            fputs(cmd->usage, stdout);
            return EXIT_OK;
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    if (!from || !to) return usage_err("store copy", "--from and --to");
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s%s", from,
             stat(from, &st) == 0 && S_ISDIR(st.st_mode) ? "/switchboard.db"
                                                         : "");
    sb_storecopy_report rep;
    char err[512];
    int rc = sb_storecopy(path, to, copy_progress, NULL, &rep, err, sizeof err);
    if (rc) {
        fprintf(stderr, "sbctl store copy: %s\n", err);
        return EXIT_REFUSED;
    }
    printf("copied: %llu users, %llu conversations, %llu messages (%llu new),"
           " %llu members, %llu device cursors, %llu tags, %llu settings,"
           " %llu contacts, %llu uploads (%llu files new)\n",
           (unsigned long long)rep.users, (unsigned long long)rep.convs,
           (unsigned long long)rep.messages,
           (unsigned long long)rep.messages_new,
           (unsigned long long)rep.members, (unsigned long long)rep.cursors,
           (unsigned long long)rep.tags, (unsigned long long)rep.settings,
           (unsigned long long)rep.contacts, (unsigned long long)rep.uploads,
           (unsigned long long)rep.blobs_new);
    return EXIT_OK;
}

/* ---- store backup -------------------------------------------------------- */

/* `sbctl store backup [--data DATA] DIR`: DATA/switchboard.db copied to
 * DIR/switchboard.db (DIR made if missing) while the server runs, then the
 * uploads' files it names, DATA/media/.. to DIR/media/... */
static int cmd_store_backup(const command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"data", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    const char *data = "./data";
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'h') {
            fputs(cmd->usage, stdout);
            return EXIT_OK;
        }
        if (o != 'd') return usage_err("store backup", "unknown option");
        data = optarg;
    }
    if (optind + 1 != argc)
        return usage_err("store backup", "one DIR is required");
    const char *dir = argv[optind];
    char src[4096], dst[4096], err[512];
    if ((size_t)snprintf(src, sizeof src, "%s/switchboard.db", data) >=
            sizeof src ||
        (size_t)snprintf(dst, sizeof dst, "%s/switchboard.db", dir) >=
            sizeof dst)
        return usage_err("store backup", "path too long");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "sbctl store backup: %s: %s\n", dir, strerror(errno));
        return EXIT_REFUSED;
    }
    sb_backup_info info;
    time_t t = time(NULL);
    if (sb_backup_sqlite(src, dst, &info, err, sizeof err) != 0 ||
        sb_backup_media(data, dir, dst, &info, err, sizeof err) != 0) {
        fprintf(stderr, "sbctl store backup: %s\n", err);
        return EXIT_REFUSED;
    }
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    printf("%s: %" PRIu64 " bytes, %" PRIu64 " conversations, %" PRIu64
           " messages, %" PRIu64 " uploads (%" PRIu64 " files, %" PRIu64
           " bytes copied), as of %s\n",
           dst, info.bytes, info.conversations, info.messages, info.uploads,
           info.blobs, info.blob_bytes, when);
    return EXIT_OK;
}

/* ---- token --------------------------------------------------------------- */

static int cmd_token(const command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"secret", required_argument, NULL, 's'},
        {"sub", required_argument, NULL, 'u'},
        {"role", required_argument, NULL, 'r'},
        {"ttl", required_argument, NULL, 't'},
        {"locale", required_argument, NULL, 'l'},
        {"exp-offset", required_argument, NULL, 'e'},
        {"nbf", required_argument, NULL, 'n'},
        {"iss", required_argument, NULL, 'i'},
        {"aud", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    const char *secret = getenv("SB_SECRET"), *sub = NULL, *role = NULL;
    const char *locale = NULL, *iss = "", *aud = "";
    int64_t ttl = 3600, exp_off = 0, nbf_off = 0;
    bool has_exp = false, has_nbf = false;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h':
            fputs(cmd->usage, stdout);
            return EXIT_OK;
        case 's':
            secret = optarg;
            break;
        case 'u':
            sub = optarg;
            break;
        case 'r':
            role = optarg;
            break;
        case 'l':
            locale = optarg;
            break;
        case 'i':
            iss = optarg;
            break;
        case 'a':
            aud = optarg;
            break;
        case 't':
            if (!parse_i64(optarg, &ttl) || ttl <= 0)
                return usage_err("token", "bad --ttl");
            break;
        case 'e':
            if (!parse_i64(optarg, &exp_off))
                return usage_err("token", "bad --exp-offset");
            has_exp = true;
            break;
        case 'n':
            if (!parse_i64(optarg, &nbf_off))
                return usage_err("token", "bad --nbf");
            has_nbf = true;
            break;
        default:
            return usage_err("token", "unknown option");
        }
    }
    if (optind != argc) return usage_err("token", "unexpected argument");
    if (!secret || !*secret)
        return usage_err("token", "no secret (--secret or SB_SECRET)");
    if (!sub || !*sub || strlen(sub) > SB_ID_BYTES_MAX)
        return usage_err("token", "--sub USER (1..64 bytes) is required");
    sb_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "%s", sub);
    c.role = role ? sb_role_from_name(role) : SBP__ROLE__ROLE_UNSPECIFIED;
    if (c.role == SBP__ROLE__ROLE_UNSPECIFIED)
        return usage_err("token",
                         "--role customer|agent|bot|admin|integration");
    if (locale && strlen(locale) >= sizeof c.locale)
        return usage_err("token", "--locale too long");
    if (locale) snprintf(c.locale, sizeof c.locale, "%s", locale);
    if (strlen(iss) >= sizeof c.iss || strlen(aud) >= sizeof c.aud)
        return usage_err("token", "--iss or --aud too long");
    snprintf(c.iss, sizeof c.iss, "%s", iss);
    snprintf(c.aud, sizeof c.aud, "%s", aud);
    int64_t now = (int64_t)time(NULL);
    c.iat = now;
    c.exp = has_exp ? now + exp_off : now + ttl;
    if (has_nbf) c.nbf = now + nbf_off;
    char out[SB_TOKEN_BYTES_MAX];
    int n = sb_token_sign((const uint8_t *)secret, strlen(secret), &c, out,
                          sizeof out);
    if (n < 0) {
        fprintf(stderr, "sbctl token: %s\n", strerror(-n));
        return EXIT_USAGE;
    }
    puts(out);
    return EXIT_OK;
}

/* ---- open, service open -------------------------------------------------- */

static int prepare_open(ctl *x, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return x->n_members ? EXIT_OK : usage_err(x->name, "--member is required");
}

static int act_open(ctl *x)
{
    return sb_client_open(x->c, x->members, x->n_members, x->title, x->kind,
                          &x->rid);
}

static int act_service_open(ctl *x)
{
    return sb_client_open_service(x->c, x->desk, &x->rid);
}

static void answer_open(ctl *x, int err, const Sbp__Frame *resp)
{
    if (err) {
        request_failed(x, "open", err, EXIT_REFUSED);
        return;
    }
    printf("%" PRIu64 "\n", resp->open_resp->conv->conv_id);
    fflush(stdout);
    finish(x, EXIT_OK);
}

/* ---- send ---------------------------------------------------------------- */

static int prepare_send(ctl *x, int argc, char **argv)
{
    if (x->file && optind >= argc) return EXIT_OK; /* no caption */
    return take_text(x, argc, argv, "TEXT (or --file PATH) is required");
}

/* An attachment is an image message when its first bytes are those of an
 * image a page shows (the server checks its content again), else a file
 * message. */
static Sbp__MsgType file_type(const char *path)
{
    uint8_t head[16];
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        n = fread(head, 1, sizeof head, f);
        fclose(f);
    }
    return sb_image_sniff(head, n) != SB_IMAGE_NONE ? SBP__MSG_TYPE__MSG_IMAGE
                                                    : SBP__MSG_TYPE__MSG_FILE;
}

static int act_send(ctl *x)
{
    if (x->file)
        return sb_client_send_file(x->c, x->conv, file_type(x->file), x->file,
                                   x->file_name, x->text, NULL);
    return sb_client_send_text(x->c, x->conv, x->text, NULL);
}

static void status_send(ctl *x, const sb_client_send_info *s)
{
    if (s->status == SB_SEND_FAILED) {
        fprintf(stderr, "sbctl: send failed: %s%s%s\n",
                sb_client_err_name(s->err), s->text[0] ? ": " : "", s->text);
        finish(x, EXIT_REFUSED);
        return;
    }
    printf("msg_id=%" PRIu64 " conv=%" PRIu64 " seq=%" PRIu64 "%s\n", s->msg_id,
           s->conv_id, s->seq, s->duplicate ? " duplicate" : "");
    fflush(stdout);
    finish(x, EXIT_OK);
}

/* ---- listen -------------------------------------------------------------- */

static void message_listen(ctl *x, const Sbp__Message *m)
{
    if (x->new_only && !x->synced_once) return;
    if (x->conv && m->conv_id != x->conv) return;
    print_msg(m);
    if (x->mark_read) sb_client_read(x->c, m->conv_id, m->seq);
    if (x->count && ++x->seen >= x->count) finish(x, EXIT_OK);
}

/* ---- history ------------------------------------------------------------- */

static int prepare_history(ctl *x, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (x->limit == 0) x->limit = 50; /* --limit is never 0 */
    return EXIT_OK;
}

static int act_history(ctl *x)
{
    return sb_client_history(x->c, x->conv, x->before, x->limit, &x->rid);
}

static void answer_history(ctl *x, int err, const Sbp__Frame *resp)
{
    if (err) {
        request_failed(x, "history", err, EXIT_REFUSED);
        return;
    }
    const Sbp__HistoryResp *h = resp->history_resp;
    for (size_t i = 0; i < h->n_messages; i++)
        print_msg(h->messages[i]);
    if (h->more) fprintf(stderr, "sbctl: more\n");
    finish(x, EXIT_OK);
}

/* ---- chat ---------------------------------------------------------------- */

static int act_chat(ctl *x)
{
    int rc = chat_stdin(x);
    if (rc) {
        fprintf(stderr, "sbctl: stdin: %s\n", uv_strerror(rc));
        finish(x, EXIT_USAGE);
    }
    return 0;
}

static void message_chat(ctl *x, const Sbp__Message *m)
{
    if (m->conv_id != x->conv) return;
    const sb_client_session *s = sb_client_session_info(x->c);
    if (strcmp(m->sender, s->user_id) == 0 &&
        strcmp(m->sender_device, x->device) == 0)
        return; /* our own line */
    print_msg(m);
    sb_client_read(x->c, m->conv_id, m->seq);
}

static void status_chat(ctl *x, const sb_client_send_info *s)
{
    if (s->status == SB_SEND_FAILED)
        fprintf(stderr, "sbctl: send failed: %s %s\n",
                sb_client_err_name(s->err), s->text);
    if (x->unacked) x->unacked--;
    chat_maybe_done(x);
}

/* ---- agent status -------------------------------------------------------- */

static int prepare_agent_status(ctl *x, int argc, char **argv)
{
    if (optind + 1 != argc)
        return usage_err(x->name, "online or away is required");
    if (strcmp(argv[optind], "online") == 0)
        x->status = SBP__AGENT_STATUS__AGENT_ONLINE;
    else if (strcmp(argv[optind], "away") == 0)
        x->status = SBP__AGENT_STATUS__AGENT_AWAY;
    else
        return usage_err(x->name, "online or away is required");
    optind = argc;
    return EXIT_OK;
}

static int act_agent_status(ctl *x)
{
    return sb_client_agent_state(x->c, x->status, &x->rid);
}

static void answer_agent_status(ctl *x, int err, const Sbp__Frame *resp)
{
    if (err) {
        request_failed(x, "agent status", err, EXIT_TIMEOUT);
        return;
    }
    const Sbp__AgentState *a = resp->agent_state;
    const char *st = a->status == SBP__AGENT_STATUS__AGENT_ONLINE ? "online"
                     : a->status == SBP__AGENT_STATUS__AGENT_AWAY ? "away"
                                                                  : "offline";
    printf("status=%s capacity=%u load=%u\n", st, a->capacity, a->load);
    fflush(stdout);
    finish(x, EXIT_OK);
}

/* ---- transfer, close, tag ------------------------------------------------ */

/* Transfer, close, tag and reload-filter: answered by OK. */
static void answer_ok(ctl *x, int err, const Sbp__Frame *resp)
{
    (void)resp;
    if (err) {
        request_failed(x, "request", err, EXIT_TIMEOUT);
        return;
    }
    puts("ok");
    fflush(stdout);
    finish(x, EXIT_OK);
}

static int prepare_transfer(ctl *x, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (!x->agent == !x->group)
        return usage_err(x->name, "one of --agent or --group is required");
    return EXIT_OK;
}

static int act_transfer(ctl *x)
{
    return sb_client_transfer(x->c, x->conv, x->agent, x->group, &x->rid);
}

static int act_close(ctl *x)
{
    return sb_client_close_conv(x->c, x->conv, &x->rid);
}

/* The words after the options are tags to add. */
static int prepare_tag(ctl *x, int argc, char **argv)
{
    for (; optind < argc; optind++) {
        if (x->n_add == SB_TAGS_MAX) return usage_err(x->name, "too many tags");
        x->add[x->n_add++] = argv[optind];
    }
    if (x->n_add + x->n_remove == 0)
        return usage_err(x->name, "--add T (or --remove T) is required");
    return EXIT_OK;
}

static int act_tag(ctl *x)
{
    return sb_client_tag(x->c, x->conv, x->seq, x->add, x->n_add, x->remove,
                         x->n_remove, &x->rid);
}

/* ---- list, search, canned ------------------------------------------------ */

static int act_list(ctl *x)
{
    return sb_client_conv_list(x->c, x->cursor, x->limit, x->state, x->tag,
                               x->mine, &x->rid);
}

static void answer_list(ctl *x, int err, const Sbp__Frame *resp)
{
    if (err) {
        request_failed(x, "list", err, EXIT_TIMEOUT);
        return;
    }
    const Sbp__ConvListResp *l = resp->conv_list_resp;
    for (size_t i = 0; i < l->n_convs; i++)
        print_conv(l->convs[i]);
    fflush(stdout);
    if (l->more) fprintf(stderr, "sbctl: more (--cursor %s)\n", l->next_cursor);
    finish(x, EXIT_OK);
}

static int prepare_search(ctl *x, int argc, char **argv)
{
    return take_text(x, argc, argv, "QUERY is required");
}

static int act_search(ctl *x)
{
    return sb_client_search(x->c, x->conv, x->text, x->limit, &x->rid);
}

static void answer_search(ctl *x, int err, const Sbp__Frame *resp)
{
    if (err) {
        request_failed(x, "search", err, EXIT_TIMEOUT);
        return;
    }
    const Sbp__SearchResp *r = resp->search_resp;
    for (size_t i = 0; i < r->n_messages; i++)
        print_msg(r->messages[i]);
    finish(x, EXIT_OK);
}

static int act_canned(ctl *x)
{
    return sb_client_canned_list(x->c, x->desk, &x->rid);
}

static void answer_canned(ctl *x, int err, const Sbp__Frame *resp)
{
    if (err) {
        request_failed(x, "canned", err, EXIT_TIMEOUT);
        return;
    }
    const Sbp__CannedListResp *c = resp->canned_list_resp;
    for (size_t i = 0; i < c->n_items; i++) {
        printf("%s ", c->items[i]->key);
        put_escaped(c->items[i]->text);
        putchar('\n');
    }
    fflush(stdout);
    finish(x, EXIT_OK);
}

/* ---- admin reload-filter, admin desk ------------------------------------- */

static int act_reload_filter(ctl *x)
{
    return sb_client_admin_cmd(x->c, "reload-filter", NULL, &x->rid);
}

static const char DESK_HELP[] =
    "usage: sbctl admin desk COMMAND [ARGS] [--desk D] [connection]\n"
    "As an admin: shows or changes the desk configuration kept in the "
    "server's\nstore. A change is checked like a desk file (a broken one "
    "is refused with\nthe reason and the configuration in force stays), "
    "stored, and in force at\nonce: queued conversations go to the room "
    "it makes. Prints what was done.\n"
    "  show                        print the configuration (JSON)\n"
    "  set FILE                    replace it with FILE's (- for stdin)\n"
    "  agent-set ID [--groups a,b] [--capacity N]\n"
    "                              add an agent (--groups required) or "
    "change one\n"
    "  agent-rm ID                 remove an agent (its conversations are\n"
    "                              queued again)\n"
    "  group-add NAME              add a skill group to the desk\n"
    "  group-rm NAME               remove one (and from its agents)\n"
    "  canned-add KEY TITLE TEXT   add or replace a canned reply\n"
    "  canned-rm KEY               remove one\n"
    "  text KIND LANG TEXT         the greeting, out_of_hours or fallback "
    "text in\n"
    "                              LANG (en, zh-CN...); TEXT '' removes it\n"
    "  bot USER                    the desk's external bot (a user with role "
    "bot);\n"
    "                              USER '' for none\n"
    "  widget-color COLOR          the chat widget's brand colour (#rgb or\n"
    "                              #rrggbb; '' for the page's own)\n"
    "  widget-text KIND LANG TEXT  the widget's title, reply_time or "
    "greeting\n"
    "                              in LANG; TEXT '' removes it\n"
    "  avatar ID URL               agent ID's picture for the widget (an\n"
    "                              http(s) URL or a path); URL '' removes "
    "it\n"
    "  hours GROUP JSON            the group's business hours, e.g.\n"
    "                              "
    "'{\"tz\":\"Europe/Berlin\",\"week\":{\"mon\":\n"
    "                              [\"09:00-12:00\",\"13:00-17:00\"]},\n"
    "                              \"holidays\":[\"2025-12-25\"]}'; JSON '' "
    "for none\n"
    "                              (docs/operations.md)\n"
    "  identity SECRET             the key the site signs its customers' ids\n"
    "                              with (16-128 bytes; docs/web.md); '' for\n"
    "                              none\n"
    "  --desk D                    the desk to change (default: the first)\n";

/* Reads a desk file (path, or - for stdin) into x->body. */
static int desk_file(ctl *x, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "sbctl admin desk set: %s: %s\n", path,
                strerror(errno));
        return EXIT_USAGE;
    }
    x->body = malloc(DESK_FILE_BYTES_MAX + 1);
    size_t n = x->body ? fread(x->body, 1, DESK_FILE_BYTES_MAX + 1, f) : 0;
    bool bad = ferror(f);
    if (f != stdin) fclose(f);
    if (!x->body || bad || n > DESK_FILE_BYTES_MAX) {
        fprintf(stderr, "sbctl admin desk set: %s: %s\n", path,
                !x->body ? "out of memory"
                : bad    ? "read error"
                         : "larger than 4 MiB");
        return EXIT_USAGE;
    }
    x->body[n] = '\0';
    if (strlen(x->body) != n) {
        fprintf(stderr, "sbctl admin desk set: %s: has a NUL byte\n", path);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* `webhooks failed` and `webhooks replay [ID]`: the admin ops
 * webhooks-failed and webhooks-replay (docs/api.md#webhooks). */
static int webhooks_failed_args(ctl *x, int argc, char **argv)
{
    (void)argv;
    if (optind != argc)
        return usage_err("webhooks failed", "unexpected argument");
    snprintf(x->op, sizeof x->op, "webhooks-failed");
    x->body = strdup("{\"limit\":200}");
    return x->body ? EXIT_OK : EXIT_USAGE;
}

static int webhooks_replay_args(ctl *x, int argc, char **argv)
{
    char body[64] = "{}";
    if (argc - optind > 1)
        return usage_err("webhooks replay", "at most one ID");
    if (optind < argc) {
        char *end;
        unsigned long long id = strtoull(argv[optind], &end, 10);
        if (!*argv[optind] || *end || id == 0)
            return usage_err("webhooks replay", "ID is a positive integer");
        snprintf(body, sizeof body, "{\"id\":%llu}", id);
        optind = argc;
    }
    snprintf(x->op, sizeof x->op, "webhooks-replay");
    x->body = strdup(body);
    return x->body ? EXIT_OK : EXIT_USAGE;
}

/* The op and its JSON input from the words after `admin desk`. */
static int desk_args(ctl *x, int argc, char **argv)
{
    static const struct {
        const char *name;
        int n_args; /* positional words after the name */
        const char *keys[3];
        const char *op; /* the server's op, when not desk-NAME */
    } OPS[] = {
        {"show", 0, {NULL}, NULL},
        {"set", 1, {NULL}, NULL},
        {"agent-set", 1, {"id"}, NULL},
        {"agent-rm", 1, {"id"}, NULL},
        {"group-add", 1, {"name"}, NULL},
        {"group-rm", 1, {"name"}, NULL},
        {"canned-add", 3, {"key", "title", "text"}, NULL},
        {"canned-rm", 1, {"key"}, NULL},
        {"text", 3, {"kind", "lang", "text"}, NULL},
        {"bot", 1, {"user"}, NULL},
        {"widget-color", 1, {"color"}, "desk-widget"},
        {"widget-text", 3, {"kind", "lang", "text"}, "desk-widget"},
        {"avatar", 2, {"id", "url"}, NULL},
        {"hours", 2, {"group", "hours"}, NULL},
        {"identity", 1, {"secret"}, NULL},
    };
    const char *name = "admin desk";
    if (optind >= argc) return usage_err(name, "COMMAND is required");
    const char *sub = argv[optind++];
    size_t k = 0;
    while (k < sizeof OPS / sizeof *OPS && strcmp(sub, OPS[k].name) != 0)
        k++;
    if (k == sizeof OPS / sizeof *OPS)
        return usage_err(name, "unknown COMMAND");
    if (argc - optind != OPS[k].n_args)
        return usage_err(name, "wrong number of arguments");
    if (OPS[k].op)
        snprintf(x->op, sizeof x->op, "%s", OPS[k].op);
    else
        snprintf(x->op, sizeof x->op, "desk-%s", sub);
    if ((x->groups || x->capacity) && strcmp(sub, "agent-set") != 0)
        return usage_err(name, "--groups and --capacity are for agent-set");
    if (strcmp(sub, "show") == 0) return EXIT_OK;
    if (strcmp(sub, "set") == 0) {
        int rc = desk_file(x, argv[optind]);
        optind = argc;
        return rc;
    }
    json_t *o = json_object();
    for (int i = 0; o && i < OPS[k].n_args; i++)
        json_object_set_new(o, OPS[k].keys[i], json_string(argv[optind + i]));
    if (o && strcmp(sub, "hours") == 0) {
        /* The hours are a JSON object of their own ('' removes them). */
        const char *text = argv[optind + 1];
        json_error_t je;
        json_t *h = text[0] ? json_loads(text, 0, &je) : json_null();
        if (!h) {
            json_decref(o);
            fprintf(stderr, "sbctl admin desk hours: JSON: %s\n", je.text);
            return EXIT_USAGE;
        }
        json_object_set_new(o, "hours", h);
    }
    optind = argc;
    if (o && x->desk) json_object_set_new(o, "desk", json_string(x->desk));
    if (o && x->capacity)
        json_object_set_new(o, "capacity", json_integer(x->capacity));
    if (o && x->groups) {
        json_t *a = json_array();
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", x->groups);
        size_t n = 0;
        for (char *save, *g = strtok_r(buf, ",", &save); a && g;
             g = strtok_r(NULL, ",", &save)) {
            if (++n > GROUPS_MAX) {
                json_decref(a);
                json_decref(o);
                return usage_err(name, "too many --groups");
            }
            json_array_append_new(a, json_string(g));
        }
        json_object_set_new(o, "groups", a);
    }
    /* json_string() refuses text that is not UTF-8: the member is then
     * missing and the server says which. */
    x->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!x->body) {
        fprintf(stderr, "sbctl: out of memory\n");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static int act_desk(ctl *x)
{
    int rc = sb_client_admin_cmd(x->c, x->op, x->body, &x->rid);
    if (rc != SB_E_TOO_LARGE) return rc;
    fprintf(stderr,
            "sbctl: %zu bytes are more than the server takes in one "
            "frame (%u; switchboard --frame-bytes-max, or import the "
            "file with --desk and SIGHUP)\n",
            strlen(x->body ? x->body : ""),
            sb_client_session_info(x->c)->frame_bytes_max);
    finish(x, EXIT_REFUSED);
    return 0;
}

/* The server's text (its refusal's reason when err). */
static void answer_desk(ctl *x, int err, const Sbp__Frame *resp)
{
    const char *text = sb_client_answer_text(resp);
    if (err) {
        fprintf(stderr, "sbctl: %s refused: %s%s%s\n", x->op,
                sb_client_err_name(err), text[0] ? ": " : "", text);
        finish(x, failed_exit(err, EXIT_TIMEOUT));
        return;
    }
    size_t n = strlen(text);
    fputs(n ? text : "ok", stdout);
    if (!n || text[n - 1] != '\n') putchar('\n');
    fflush(stdout);
    finish(x, EXIT_OK);
}

/* ---- csat, report ------------------------------------------------------- */

static int prepare_csat(ctl *x, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (!x->rating) return usage_err(x->name, "--rating 1..5 is required");
    return EXIT_OK;
}

static int act_csat(ctl *x)
{
    return sb_client_csat(x->c, x->conv, x->rating, x->comment, &x->rid);
}

static int prepare_report(ctl *x, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (!x->from) return usage_err(x->name, "--from YYYY-MM-DD is required");
    if (!x->to) x->to = x->from;
    return EXIT_OK;
}

static int act_report(ctl *x)
{
    return sb_client_report(x->c, x->from, x->to, x->tz,
                            (const char *const *)x->by, x->n_by, x->desk,
                            x->group, x->agent, &x->rid);
}

static void answer_report(ctl *x, int err, const Sbp__Frame *resp)
{
    if (err) {
        const char *text = sb_client_answer_text(resp);
        fprintf(stderr, "sbctl: report refused: %s%s%s\n",
                sb_client_err_name(err), text[0] ? ": " : "", text);
        finish(x, failed_exit(err, EXIT_TIMEOUT));
        return;
    }
    sb_buf b = SB_BUF_INIT;
    if (sb_report_render(resp->report_resp, x->format, &b) != 0) {
        fprintf(stderr, "sbctl: out of memory\n");
        sb_buf_free(&b);
        finish(x, EXIT_REFUSED);
        return;
    }
    fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
    sb_buf_free(&b);
    finish(x, EXIT_OK);
}

/* ---- notes and contacts ------------------------------------------------- */

/* note: the notes are opened (made if need be), then the text is sent to
 * them; status_send prints the result. */
static int act_note(ctl *x)
{
    return sb_client_notes_open(x->c, x->conv, true, &x->rid);
}

static void answer_note(ctl *x, int err, const Sbp__Frame *resp)
{
    if (err) {
        request_failed(x, "note", err, EXIT_TIMEOUT);
        return;
    }
    x->notes_conv = resp->open_resp->conv->conv_id;
    int rc = sb_client_send_text(x->c, x->notes_conv, x->text, NULL);
    if (rc) {
        fprintf(stderr, "sbctl note: %s\n", sb_client_err_name(rc));
        finish(x, EXIT_REFUSED);
    }
}

/* notes: the notes are opened (not made), then a page of them read. */
static int act_notes(ctl *x)
{
    if (x->limit == 0) x->limit = 50;
    return sb_client_notes_open(x->c, x->conv, false, &x->rid);
}

static void answer_notes(ctl *x, int err, const Sbp__Frame *resp)
{
    if (err == SB_E_NOT_FOUND && !x->notes_conv) {
        finish(x, EXIT_OK); /* no notes yet: nothing to print */
        return;
    }
    if (err) {
        request_failed(x, "notes", err, EXIT_TIMEOUT);
        return;
    }
    if (resp->body_case == SBP__FRAME__BODY_OPEN_RESP) {
        x->notes_conv = resp->open_resp->conv->conv_id;
        int rc = sb_client_history(x->c, x->notes_conv, x->before, x->limit,
                                   &x->rid);
        if (rc) {
            fprintf(stderr, "sbctl notes: %s\n", sb_client_err_name(rc));
            finish(x, EXIT_REFUSED);
        }
        return;
    }
    answer_history(x, 0, resp);
}

static int prepare_contact(ctl *x, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (!x->conv == !x->user)
        return usage_err(x->name, "--conv N or --user U (admins), one of them");
    return EXIT_OK;
}

/* contact: a CONTACT_SET when a change is given, else a CONTACT_GET. */
static int act_contact(ctl *x)
{
    if (!x->name_set && !x->email_set && !x->n_attrs && !x->clear_name &&
        !x->clear_email)
        return sb_client_contact_get(x->c, x->conv, x->user, &x->rid);
    sb_client_contact_change ch = {.conv_id = x->conv,
                                   .user_id = x->user,
                                   .name = x->name_set,
                                   .email = x->email_set,
                                   .keys = x->attr_keys,
                                   .values = x->attr_values,
                                   .n_attrs = x->n_attrs,
                                   .clear_name = x->clear_name,
                                   .clear_email = x->clear_email};
    return sb_client_contact_set(x->c, &ch, &x->rid);
}

/* The contact and the customer's conversations, as JSON. */
static void answer_contact(ctl *x, int err, const Sbp__Frame *resp)
{
    if (err) {
        request_failed(x, "contact", err, EXIT_TIMEOUT);
        return;
    }
    json_t *j = sb_pbjson_from_msg(&resp->contact_resp->base);
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    if (!text) {
        fprintf(stderr, "sbctl: out of memory\n");
        finish(x, EXIT_REFUSED);
        return;
    }
    puts(text);
    fflush(stdout);
    free(text);
    finish(x, EXIT_OK);
}

/* identity-hash: what a site's backend computes for its signed-in user. */
static int cmd_identity_hash(const command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"secret", required_argument, NULL, 's'},
        {"user", required_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
    };
    const char *secret = NULL, *user = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'h') {
            fputs(cmd->usage, stdout);
            return EXIT_OK;
        }
        if (o == 's')
            secret = optarg;
        else if (o == 'u')
            user = optarg;
        else
            return usage_err("identity-hash", "unknown option");
    }
    if (optind != argc || !secret || !*secret || !user || !*user ||
        strlen(user) > SB_ID_BYTES_MAX)
        return usage_err("identity-hash", "--secret S --user U");
    char hex[SB_IDENTITY_HASH_HEX + 1];
    sb_identity_hash(secret, user, hex);
    puts(hex);
    return EXIT_OK;
}

/* ---- client callbacks ---------------------------------------------------- */

static void on_state(void *ud, sb_client_state st, int err)
{
    ctl *x = ud;
    if (x->verbose && st == SB_CLIENT_CONNECTING)
        fprintf(stderr, "sbctl: connecting to %s\n", sb_client_get_url(x->c));
    else if (x->verbose)
        fprintf(stderr, "sbctl: %s%s%s\n", sb_client_state_name(st),
                err ? " " : "", err ? sb_client_err_name(err) : "");
    if (st == SB_CLIENT_STOPPED && !x->finished) {
        fprintf(stderr, "sbctl: refused: %s\n", sb_client_err_name(err));
        finish(x, EXIT_REFUSED);
        return;
    }
    if (st != SB_CLIENT_READY || x->acted) return;
    x->acted = true;
    if (!x->cmd->act || x->cmd->act_at_start) return;
    int rc = x->cmd->act(x);
    if (rc) {
        fprintf(stderr, "sbctl: %s\n", sb_client_err_name(rc));
        finish(x, EXIT_REFUSED);
    }
}

static void on_synced(void *ud)
{
    ctl *x = ud;
    if (!x->synced_once && x->verbose) fprintf(stderr, "sbctl: synced\n");
    x->synced_once = true;
}

static void on_message(void *ud, const Sbp__Message *m)
{
    ctl *x = ud;
    if (!x->finished && x->cmd->message) x->cmd->message(x, m);
}

static void on_send_status(void *ud, const sb_client_send_info *s)
{
    ctl *x = ud;
    if (s->status != SB_SEND_SENT && s->status != SB_SEND_FAILED) return;
    if (x->cmd->status) x->cmd->status(x, s);
}

static void on_response(void *ud, uint32_t rid, Sbp__Frame__BodyCase req,
                        int err, const Sbp__Frame *resp)
{
    ctl *x = ud;
    (void)req;
    if (rid == x->rid && x->cmd->answer) x->cmd->answer(x, err, resp);
}

static void on_error(void *ud, int err, const char *text)
{
    ctl *x = ud;
    if (x->verbose)
        fprintf(stderr, "sbctl: server error %s %s\n", sb_client_err_name(err),
                text);
}

/* ---- the commands -------------------------------------------------------- */

static const command COMMANDS[] = {
    {
        .name = "store",
        .sub = "copy",
        .usage =
            "usage: sbctl store copy --from DIR --to postgresql://...\n"
            "Copies the SQLite store in DIR (or the file DIR names) into the\n"
            "PostgreSQL database of the URI (empty, or an earlier copy),\n"
            "every id and seq as it is, then verifies it: each table's rows,\n"
            "each conversation's last_seq and messages. Run again, it brings\n"
            "the copy up to date: a first pass while the server runs, a short\n"
            "one after it stopped (docs/operations.md).\n",
        .run = cmd_store_copy,
    },
    {
        .name = "token",
        .usage =
            "usage: sbctl token --sub USER --role ROLE [options]\n"
            "Prints an HS256 JWT signed with the server's secret.\n"
            "  --secret S        the secret (env SB_SECRET)\n"
            "  --sub USER        the user id (1..64 bytes)\n"
            "  --role ROLE       customer, agent, bot, admin or integration\n"
            "                    (integration: the REST API only)\n"
            "  --ttl SEC         lifetime (default 3600)\n"
            "  --locale L        e.g. en, zh-CN\n"
            "  --exp-offset SEC  exp = now + SEC (negative: already expired)\n"
            "  --nbf SEC         nbf = now + SEC (positive: not yet valid)\n"
            "  --iss S, --aud S  issuer and audience (servers run with\n"
            "                    --token-iss / --token-aud require them)\n",
        .run = cmd_token,
    },
    {
        .name = "open",
        .usage = "usage: sbctl open --member USER [--member USER...] "
                 "[--title X] [--kind direct|service] [connection]\n"
                 "Opens a conversation with these users; prints its "
                 "conv_id.\n",
        .prepare = prepare_open,
        .act = act_open,
        .answer = answer_open,
    },
    {
        .name = "send",
        .usage = "usage: sbctl send --conv N [connection] [--] TEXT...\n"
                 "       sbctl send --conv N --file PATH [--name NAME] "
                 "[connection] [TEXT...]\n"
                 "Sends TEXT (the words joined by spaces) and waits for "
                 "SEND_ACK; prints\n`msg_id=M conv=N seq=S`. On an "
                 "ERROR prints its code name and exits 1.\n"
                 "With --file, uploads the file at PATH first (POST /media, "
                 "shown as NAME,\ndefault its file name), then sends it as "
                 "an image (a JPEG, PNG, GIF or\nWebP) or a file message, "
                 "TEXT as its caption.\n",
        .needs_conv = true,
        .prepare = prepare_send,
        .act = act_send,
        .act_at_start = true,
        .status = status_send,
    },
    {
        .name = "listen",
        .usage = "usage: sbctl listen [--conv N] [--count N] [--new-only] "
                 "[--read] [connection]\n"
                 "Prints each surfaced message as `conv seq sender body` (body "
                 "with \\n,\n\\t, \\\\ escaped), history first (SYNC), then "
                 "live. Exits after --count\nmessages (timeout: exit 3), or "
                 "when --timeout-ms passes without --count (exit 0).\n"
                 "  --new-only   skip what the first SYNC brings\n"
                 "  --read       mark each printed message read (READ)\n",
        .inbox = true,
        .listens = true,
        .message = message_listen,
    },
    {
        .name = "history",
        .usage = "usage: sbctl history --conv N [--before S] "
                 "[--limit L] [connection]\n"
                 "Prints one page of history, oldest first, as "
                 "`conv seq sender body`;\n`sbctl: more` on stderr "
                 "when older messages remain.\n",
        .needs_conv = true,
        .prepare = prepare_history,
        .act = act_history,
        .answer = answer_history,
    },
    {
        .name = "chat",
        .usage = "usage: sbctl chat --conv N [connection]\n"
                 "Sends each stdin line to conversation N and prints "
                 "the others' messages\nas `conv seq sender body`. "
                 "Exits once stdin ends and every line is acked.\n",
        .needs_conv = true,
        .inbox = true,
        .act = act_chat,
        .message = message_chat,
        .status = status_chat,
    },
    {
        .name = "service",
        .sub = "open",
        .usage = "usage: sbctl service open [--desk D] [connection]\n"
                 "As a customer: opens the service conversation with desk D "
                 "(default: the\nserver's first desk), or resumes the one not "
                 "closed; prints its conv_id.\nThe bot's greeting arrives as a "
                 "message (sbctl listen).\n",
        .act = act_service_open,
        .answer = answer_open,
    },
    {
        .name = "agent",
        .sub = "status",
        .usage = "usage: sbctl agent status online|away [connection]\n"
                 "As an agent: sets the status; prints `status=S capacity=N "
                 "load=M`. Going\nonline takes queued conversations at once; "
                 "connecting makes an agent\nonline, its last disconnect "
                 "offline.\n",
        .prepare = prepare_agent_status,
        .act = act_agent_status,
        .answer = answer_agent_status,
    },
    {
        .name = "transfer",
        .usage = "usage: sbctl transfer --conv N (--agent A | --group G) "
                 "[connection]\n"
                 "As the assigned agent (or an admin): hands conversation N to "
                 "online agent A,\nor back through routing for skill group G. "
                 "Prints `ok`.\n",
        .needs_conv = true,
        .prepare = prepare_transfer,
        .act = act_transfer,
        .answer = answer_ok,
    },
    {
        .name = "close",
        .usage = "usage: sbctl close --conv N [connection]\n"
                 "Closes conversation N (its customer, assigned agent "
                 "or an admin); a later\ncustomer message reopens it. "
                 "Prints `ok`.\n",
        .needs_conv = true,
        .act = act_close,
        .answer = answer_ok,
    },
    {
        .name = "tag",
        .usage =
            "usage: sbctl tag --conv N [--seq S] --add T [T...] "
            "[--remove T...] [connection]\n"
            "As an agent or admin: adds (and removes) tags on conversation "
            "N, or on its\nmessage S. --add and --remove may repeat; "
            "further words are tags to add.\nPrints `ok`.\n",
        .needs_conv = true,
        .prepare = prepare_tag,
        .act = act_tag,
        .answer = answer_ok,
    },
    {
        .name = "list",
        .usage = "usage: sbctl list [--state S] [--tag T] [--mine] [--limit L] "
                 "[--cursor C]\n                  [connection]\n"
                 "Prints a page of conversations, newest activity first, one a "
                 "line:\n`conv state [desk=] [group=] [agent=] [customer=] "
                 "[queue=P] unread=U [tags=a,b]\n[last=seq:body]`. Agents also "
                 "see the queue of their groups. S: bot, queued,\nassigned, "
                 "closed, open. `sbctl: more (--cursor C)` on stderr when "
                 "another\npage remains.\n",
        .act = act_list,
        .answer = answer_list,
    },
    {
        .name = "search",
        .usage = "usage: sbctl search [--conv N] [--limit L] [connection] "
                 "[--] QUERY...\n"
                 "Prints the messages matching every word of QUERY (in "
                 "conversation N, or in\nall of yours), newest first, as "
                 "`conv seq sender body`.\n",
        .prepare = prepare_search,
        .act = act_search,
        .answer = answer_search,
    },
    {
        .name = "canned",
        .usage = "usage: sbctl canned [--desk D] [connection]\n"
                 "As an agent or admin: prints the desk's canned "
                 "replies as `key text`.\n",
        .act = act_canned,
        .answer = answer_canned,
    },
    {
        .name = "csat",
        .usage = "usage: sbctl csat --conv N --rating 1..5 [--comment TEXT] "
                 "[connection]\n"
                 "As the customer: rates conversation N once a rating was "
                 "asked for (at its\nclose). A conversation is rated once: "
                 "a second rating is refused\n(ERR_ALREADY). Prints `ok`.\n",
        .needs_conv = true,
        .prepare = prepare_csat,
        .act = act_csat,
        .answer = answer_ok,
    },
    {
        .name = "note",
        .usage = "usage: sbctl note --conv N [connection] [--] TEXT...\n"
                 "As an agent of conversation N (or an admin): writes TEXT "
                 "as a private note,\nwhich the customer never sees "
                 "(the notes are made the first time); `@id`\nmentions "
                 "a teammate. Prints `msg_id=M conv=NOTES seq=S`.\n",
        .needs_conv = true,
        .prepare = prepare_send,
        .act = act_note,
        .answer = answer_note,
        .status = status_send,
    },
    {
        .name = "notes",
        .usage = "usage: sbctl notes --conv N [--before S] [--limit L] "
                 "[connection]\n"
                 "As an agent of conversation N (or an admin): prints a page "
                 "of its private\nnotes as `conv seq sender body` (conv: the "
                 "notes'); nothing when it has none.\n",
        .needs_conv = true,
        .act = act_notes,
        .answer = answer_notes,
    },
    {
        .name = "contact",
        .usage =
            "usage: sbctl contact (--conv N | --user U) [--name X] [--email "
            "E]\n"
            "                     [--attr KEY=VALUE]... [--clear name|email] "
            "[connection]\n"
            "As an agent of conversation N (or an admin, also by user id): "
            "prints the\ncontact of its customer and the customer's "
            "conversations as JSON; with\n--name, --email, --attr (an "
            "empty VALUE removes KEY) or --clear, changes it\nfirst.\n",
        .prepare = prepare_contact,
        .act = act_contact,
        .answer = answer_contact,
    },
    {
        .name = "identity-hash",
        .usage = "usage: sbctl identity-hash --secret S --user U\n"
                 "Prints the user_hash of user U under a desk's identity "
                 "secret S:\nhex(HMAC-SHA256(S, U)), what the site's backend "
                 "gives its page for\nPOST /api/identify (docs/api.md).\n",
        .run = cmd_identity_hash,
    },
    {
        .name = "report",
        .usage =
            "usage: sbctl report --from YYYY-MM-DD [--to YYYY-MM-DD] [--tz Z]\n"
            "                    [--by KEYS] [--desk D] [--group G] "
            "[--agent A]\n"
            "                    [--format table|json|csv] [connection]\n"
            "As an admin: the figures of the service conversations opened "
            "from --from\nthrough --to (default: that day) in time zone Z "
            "(IANA, default UTC):\nconversations, closed, first-response and "
            "resolution times and the wait\nfor an agent (median and 90th "
            "percentile), ratings (average, answered of\nasked). KEYS: a row "
            "per combination of desk, group, agent (the last\nassigned) and "
            "day, comma-separated; the total comes last. --desk, --group\n"
            "and --agent keep only theirs. At most 366 days.\n",
        .prepare = prepare_report,
        .act = act_report,
        .answer = answer_report,
    },
    {
        .name = "admin",
        .sub = "reload-filter",
        .usage =
            "usage: sbctl admin reload-filter [connection]\n"
            "As an admin: the server reloads its word lists (--filter) and "
            "prints `ok`,\nor refuses a broken list (the old ones stay; the "
            "server logs why).\n",
        .act = act_reload_filter,
        .answer = answer_ok,
    },
    {
        .name = "admin",
        .sub = "desk",
        .usage = DESK_HELP,
        /* A desk document may be up to 4 MiB, more as JSON text. */
        .frame_bytes_max = 16u << 20,
        .prepare = desk_args,
        .act = act_desk,
        .answer = answer_desk,
    },
    {
        .name = "webhooks",
        .sub = "failed",
        .usage = "usage: sbctl webhooks failed [connection]\n"
                 "As an admin: prints the webhook events that could not be "
                 "delivered\n(their attempts spent), as JSON: id, event, "
                 "endpoint, attempts, last error\nand the event's data.\n",
        .prepare = webhooks_failed_args,
        .act = act_desk,
        .answer = answer_desk,
    },
    {
        .name = "webhooks",
        .sub = "replay",
        .usage = "usage: sbctl webhooks replay [ID] [connection]\n"
                 "As an admin: delivers failed webhook event ID again, or "
                 "every failed\nevent without ID, from its first attempt; "
                 "prints {\"replayed\": N}.\n",
        .prepare = webhooks_replay_args,
        .act = act_desk,
        .answer = answer_desk,
    },
    {
        .name = "store",
        .sub = "backup",
        .usage =
            "usage: sbctl store backup [--data DATA] DIR\n"
            "Copies the SQLite store DATA/switchboard.db (default ./data, the\n"
            "server's --data) to DIR/switchboard.db while the server runs:\n"
            "consistent as of one commit (SQLite's online backup), checked,\n"
            "synced; then the uploads' files it names, DATA/media/.. to\n"
            "DIR/media/.. (linked on the same file system, else copied; those\n"
            "already there kept). An existing copy of the database is never\n"
            "overwritten. Restoring is in\n"
            "docs/operations.md. Run it as a user that may write DATA's\n"
            "-shm file (the server's, or root).\n",
        .run = cmd_store_backup,
    },
};
#define N_COMMANDS (sizeof COMMANDS / sizeof *COMMANDS)

/* Long options without a short form. */
enum {
    O_URL = 1000,
    O_TOKEN,
    O_DEVICE,
    O_JSON,
    O_TIMEOUT,
    O_CONV,
    O_BEFORE,
    O_LIMIT,
    O_COUNT,
    O_MEMBER,
    O_TITLE,
    O_KIND,
    O_NEW,
    O_READ,
    O_DESK,
    O_AGENT,
    O_GROUP,
    O_SEQ,
    O_ADD,
    O_REMOVE,
    O_STATE,
    O_TAG,
    O_MINE,
    O_CURSOR,
    O_CA,
    O_GROUPS,
    O_CAPACITY,
    O_FILE,
    O_NAME,
    O_RATING,
    O_COMMENT,
    O_FROM,
    O_TO,
    O_TZ,
    O_BY,
    O_FORMAT,
    O_USER,
    O_EMAIL,
    O_ATTR,
    O_CLEAR,
};

/* ---- options and the run ------------------------------------------------- */

static const struct option OPTS[] = {
    {"help", no_argument, NULL, 'h'},
    {"url", required_argument, NULL, O_URL},
    {"token", required_argument, NULL, O_TOKEN},
    {"device", required_argument, NULL, O_DEVICE},
    {"json", no_argument, NULL, O_JSON},
    {"timeout-ms", required_argument, NULL, O_TIMEOUT},
    {"verbose", no_argument, NULL, 'v'},
    {"conv", required_argument, NULL, O_CONV},
    {"file", required_argument, NULL, O_FILE},
    {"name", required_argument, NULL, O_NAME},
    {"before", required_argument, NULL, O_BEFORE},
    {"limit", required_argument, NULL, O_LIMIT},
    {"count", required_argument, NULL, O_COUNT},
    {"member", required_argument, NULL, O_MEMBER},
    {"title", required_argument, NULL, O_TITLE},
    {"kind", required_argument, NULL, O_KIND},
    {"new-only", no_argument, NULL, O_NEW},
    {"read", no_argument, NULL, O_READ},
    {"desk", required_argument, NULL, O_DESK},
    {"agent", required_argument, NULL, O_AGENT},
    {"group", required_argument, NULL, O_GROUP},
    {"seq", required_argument, NULL, O_SEQ},
    {"add", required_argument, NULL, O_ADD},
    {"remove", required_argument, NULL, O_REMOVE},
    {"state", required_argument, NULL, O_STATE},
    {"tag", required_argument, NULL, O_TAG},
    {"mine", no_argument, NULL, O_MINE},
    {"cursor", required_argument, NULL, O_CURSOR},
    {"ca", required_argument, NULL, O_CA},
    {"groups", required_argument, NULL, O_GROUPS},
    {"capacity", required_argument, NULL, O_CAPACITY},
    {"rating", required_argument, NULL, O_RATING},
    {"comment", required_argument, NULL, O_COMMENT},
    {"from", required_argument, NULL, O_FROM},
    {"to", required_argument, NULL, O_TO},
    {"tz", required_argument, NULL, O_TZ},
    {"by", required_argument, NULL, O_BY},
    {"format", required_argument, NULL, O_FORMAT},
    {"user", required_argument, NULL, O_USER},
    {"email", required_argument, NULL, O_EMAIL},
    {"attr", required_argument, NULL, O_ATTR},
    {"clear", required_argument, NULL, O_CLEAR},
    {NULL, 0, NULL, 0},
};

/* Takes option o (from getopt_long, its argument in optarg) into x. Every
 * connected command takes every option. Returns an exit status. */
static int take_option(ctl *x, int o)
{
    const char *name = x->name;
    uint64_t v;
    switch (o) {
    case 'v':
        x->verbose = true;
        break;
    case O_URL:
        x->url = optarg;
        break;
    case O_CA:
        x->ca = optarg;
        break;
    case O_TOKEN:
        x->token = optarg;
        break;
    case O_DEVICE:
        x->device = optarg;
        break;
    case O_JSON:
        x->json = true;
        break;
    case O_TIMEOUT:
        if (!parse_u64(optarg, &v) || v > 86400000)
            return usage_err(name, "bad --timeout-ms");
        x->timeout_ms = (long)v;
        break;
    case O_CONV:
        if (!parse_u64(optarg, &x->conv) || x->conv == 0)
            return usage_err(name, "bad --conv");
        break;
    case O_BEFORE:
        if (!parse_u64(optarg, &x->before))
            return usage_err(name, "bad --before");
        break;
    case O_LIMIT:
        if (!parse_u64(optarg, &v) || v == 0 || v > 10000)
            return usage_err(name, "bad --limit");
        x->limit = (uint32_t)v;
        break;
    case O_COUNT:
        if (!parse_u64(optarg, &v) || v > 100000000)
            return usage_err(name, "bad --count");
        x->count = (long)v;
        break;
    case O_MEMBER:
        if (x->n_members == SB_MEMBERS_MAX)
            return usage_err(name, "too many --member");
        x->members[x->n_members++] = optarg;
        break;
    case O_TITLE:
        x->title = optarg;
        break;
    case O_FILE:
        x->file = optarg;
        break;
    case O_NAME: /* send --file's name for the file; contact's name */
        x->file_name = optarg;
        x->name_set = optarg;
        break;
    case O_KIND:
        if (strcmp(optarg, "direct") == 0)
            x->kind = SBP__CONV_KIND__CONV_DIRECT;
        else if (strcmp(optarg, "service") == 0)
            x->kind = SBP__CONV_KIND__CONV_SERVICE;
        else
            return usage_err(name, "--kind direct|service");
        break;
    case O_NEW:
        x->new_only = true;
        break;
    case O_READ:
        x->mark_read = true;
        break;
    case O_DESK:
        x->desk = optarg;
        break;
    case O_AGENT:
        x->agent = optarg;
        break;
    case O_GROUP:
        x->group = optarg;
        break;
    case O_SEQ:
        if (!parse_u64(optarg, &x->seq) || x->seq == 0)
            return usage_err(name, "bad --seq");
        break;
    case O_ADD:
        if (x->n_add == SB_TAGS_MAX) return usage_err(name, "too many tags");
        x->add[x->n_add++] = optarg;
        break;
    case O_REMOVE:
        if (x->n_remove == SB_TAGS_MAX) return usage_err(name, "too many tags");
        x->remove[x->n_remove++] = optarg;
        break;
    case O_STATE: {
        size_t i = 1;
        while (i < N_STATES && strcmp(optarg, STATE_NAMES[i]) != 0)
            i++;
        if (i == N_STATES)
            return usage_err(name, "--state bot|queued|assigned|closed|open");
        x->state = (Sbp__ConvState)i;
        break;
    }
    case O_TAG:
        x->tag = optarg;
        break;
    case O_MINE:
        x->mine = true;
        break;
    case O_CURSOR:
        x->cursor = optarg;
        break;
    case O_GROUPS:
        if (!*optarg) return usage_err(name, "--groups a,b");
        x->groups = optarg;
        break;
    case O_CAPACITY:
        if (!parse_u64(optarg, &v) || v == 0 || v > 1000)
            return usage_err(name, "--capacity 1..1000");
        x->capacity = (long)v;
        break;
    case O_RATING:
        if (!parse_u64(optarg, &v) || v < 1 || v > SB_CSAT_RATING_MAX)
            return usage_err(name, "--rating 1..5");
        x->rating = (uint32_t)v;
        break;
    case O_COMMENT:
        x->comment = optarg;
        break;
    case O_FROM:
        x->from = optarg;
        break;
    case O_TO:
        x->to = optarg;
        break;
    case O_TZ:
        x->tz = optarg;
        break;
    case O_BY:
        if (strlen(optarg) >= sizeof x->by_buf)
            return usage_err(name, "--by desk,group,agent,day");
        snprintf(x->by_buf, sizeof x->by_buf, "%s", optarg);
        if (sb_report_by_split(x->by_buf, x->by, 4, &x->n_by) != 0)
            return usage_err(name, "--by desk,group,agent,day");
        break;
    case O_FORMAT:
        if (sb_report_format_parse(optarg, &x->format) != 0)
            return usage_err(name, "--format table|json|csv");
        break;
    case O_USER:
        x->user = optarg;
        break;
    case O_EMAIL:
        x->email_set = optarg;
        break;
    case O_ATTR: {
        const char *eq = strchr(optarg, '=');
        if (!eq || eq == optarg) return usage_err(name, "--attr KEY=VALUE");
        if (x->n_attrs == SB_CONTACT_ATTRS_MAX)
            return usage_err(name, "too many --attr");
        char *k = strndup(optarg, (size_t)(eq - optarg));
        if (!k) return usage_err(name, "out of memory");
        x->attr_buf[x->n_attrs] = k;
        x->attr_keys[x->n_attrs] = k;
        x->attr_values[x->n_attrs++] = eq + 1;
        break;
    }
    case O_CLEAR:
        if (strcmp(optarg, "name") == 0)
            x->clear_name = true;
        else if (strcmp(optarg, "email") == 0)
            x->clear_email = true;
        else
            return usage_err(name, "--clear name|email");
        break;
    default:
        return usage_err(name, "unknown option");
    }
    return EXIT_OK;
}

static int run_client(ctl *x)
{
    static char devbuf[40];
    if (!x->device) {
        snprintf(devbuf, sizeof devbuf, "sbctl-%ld", (long)getpid());
        x->device = devbuf;
    }
    x->loop = uv_default_loop();
    static char list[4096];
    static const char *urls[SB_CLIENT_URLS_MAX];
    int n_urls = strlen(x->url) < sizeof list ? 0 : -EINVAL;
    if (n_urls == 0) {
        snprintf(list, sizeof list, "%s", x->url);
        n_urls = sb_client_urls_split(list, urls, SB_CLIENT_URLS_MAX);
    }
    if (n_urls < 0) {
        fprintf(stderr,
                "sbctl: bad --url: a ws:// or wss:// URL, or up to "
                "%d of them separated by commas\n",
                SB_CLIENT_URLS_MAX);
        return EXIT_USAGE;
    }
    sb_client_config cfg;
    sb_client_config_default(&cfg);
    cfg.urls = urls;
    cfg.n_urls = (size_t)n_urls;
    cfg.ca_file = x->ca;
    cfg.token = x->token;
    cfg.device_id = x->device;
    cfg.enc = x->json ? SB_ENC_JSON : SB_ENC_PROTO;
    cfg.client_name = "sbctl/" SB_VERSION;
    cfg.sync_disabled = !x->cmd->inbox; /* one-shot commands need no inbox */
    if (x->cmd->frame_bytes_max) cfg.frame_bytes_max = x->cmd->frame_bytes_max;
    sb_client_cbs cbs = {
        .on_state = on_state,
        .on_message = on_message,
        .on_send_status = on_send_status,
        .on_synced = on_synced,
        .on_response = on_response,
        .on_error = on_error,
    };
    int rc = sb_client_new(x->loop, &cfg, &cbs, x, &x->c);
    if (rc) {
        fprintf(stderr, "sbctl: bad --url or --token/--device (%s)\n",
                sb_client_err_name(rc));
        return EXIT_USAGE;
    }
    if (x->timeout_ms > 0) {
        uv_timer_init(x->loop, &x->deadline);
        x->deadline.data = x;
        uv_timer_start(&x->deadline, on_deadline, (uint64_t)x->timeout_ms, 0);
        x->deadline_on = true;
    }
    sb_client_start(x->c);
    if (x->cmd->act_at_start) {
        rc = x->cmd->act(x);
        if (rc) {
            fprintf(stderr, "sbctl %s: %s\n", x->name, sb_client_err_name(rc));
            finish(x, EXIT_REFUSED);
        }
    }
    uv_run(x->loop, UV_RUN_DEFAULT);
    uv_loop_close(x->loop);
    return x->exit_code;
}

/* A command that talks to the server: its options (anywhere; "--" ends
 * them, for a TEXT starting with '-'), its checks, then the client's run
 * until the command is done. */
static int cmd_connected(const command *c, const char *name, int argc,
                         char **argv)
{
    static ctl x;
    memset(&x, 0, sizeof x);
    x.cmd = c;
    x.name = name;
    x.url = getenv("SB_URL") ? getenv("SB_URL") : "ws://127.0.0.1:8080/ws";
    x.token = getenv("SB_TOKEN");
    x.ca = getenv("SB_CA");
    x.timeout_ms = c->inbox ? 0 : 10000;
    x.kind = SBP__CONV_KIND__CONV_DIRECT;
    x.title = "";
    int o, rc;
    while ((o = getopt_long(argc, argv, "hv", OPTS, NULL)) != -1) {
        if (o == 'h') {
            fputs(c->usage, stdout);
            fputs(CONN_HELP, stdout);
            return EXIT_OK;
        }
        if ((rc = take_option(&x, o)) != EXIT_OK) return rc;
    }
    if (!x.token || !*x.token)
        return usage_err(name, "no token (--token or SB_TOKEN)");
    if (c->needs_conv && !x.conv) return usage_err(name, "--conv is required");
    if (c->prepare && (rc = c->prepare(&x, argc, argv)) != EXIT_OK) return rc;
    if (optind != argc) return usage_err(name, "unexpected argument");
    rc = run_client(&x);
    free(x.text);
    free(x.body);
    for (size_t i = 0; i < x.n_attrs; i++)
        free(x.attr_buf[i]);
    return rc;
}

/* The command's name as typed: "list", "agent status". */
static const char *full_name(const command *c, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s%s", c->name, c->sub ? " " : "",
             c->sub ? c->sub : "");
    return buf;
}

static int run_command(const command *c, int argc, char **argv)
{
    char name[64];
    if (c->run) return c->run(c, argc, argv);
    return cmd_connected(c, full_name(c, name, sizeof name), argc, argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
        strcmp(cmd, "help") == 0) {
        fputs(USAGE, stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("sbctl %s\n", SB_VERSION);
        return EXIT_OK;
    }
    /* The command's own options start after its name; a two-word
     * command's after its second word. */
    argc--;
    argv++;
    optind = 1;
    bool known = false;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const command *c = &COMMANDS[i];
        if (strcmp(cmd, c->name) != 0) continue;
        if (!c->sub) return run_command(c, argc, argv);
        if (argc >= 2 && strcmp(argv[1], c->sub) == 0)
            return run_command(c, argc - 1, argv + 1);
        known = true;
    }
    if (known) {
        char name[64];
        size_t guesses = 0;
        for (size_t i = 0; i < N_COMMANDS; i++)
            if (strcmp(cmd, COMMANDS[i].name) == 0)
                fprintf(stderr, "%s`sbctl %s`",
                        guesses++ ? " or " : "sbctl: did you mean ",
                        full_name(&COMMANDS[i], name, sizeof name));
        fputs("?\n", stderr);
        return EXIT_USAGE;
    }
    fprintf(stderr, "sbctl: unknown command '%s'\n\n%s", cmd, USAGE);
    return EXIT_USAGE;
}
