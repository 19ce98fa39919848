/* switchboard: the gateway server's command line. One table of options
 * (name, value, where it goes, help) drives the flags (getopt_long), the
 * configuration file of --config (sb_conf: one "name value" per line, the
 * same names; flags override it), --check-config and --help. */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "sb_conf.h"
#include "sb_demo.h"
#include "sb_log.h"
#include "sb_server.h"
#include "sb_storeq.h"
#include "sb_token.h"

#define ORIGINS_MAX 64
#define MEDIA_TYPES_MAX 64
#define SECRET_FILE_BYTES_MAX 4096
#define ERR_BYTES 512

/* Everything the options set. */
typedef struct opts {
    sb_server_config cfg;
    const char *secret; /* --secret, else SB_SECRET */
    const char *secret_file;
    char *secret_read; /* the secret file's contents */
    bool demo, quiet;
    sb_log_format log_format;
    sb_log_level log_level;
    bool log_level_set;
    const char *origins[ORIGINS_MAX];
    size_t n_origins;
    bool origins_from_flags; /* the flags' --origin replace the file's */
    uint32_t media_bytes;    /* --media-bytes-max */
    char *media_types_buf;   /* --media-types, cut at its commas */
    const char *media_types[MEDIA_TYPES_MAX];
    size_t n_media_types;
    const char *config, *check_config;
    bool help, version;
    bool from_file; /* the value being set comes from the file */
} opts;

typedef struct opt_row opt_row;

/* Sets what row r stands for from value v (NULL or "" for a flag alone).
 * Returns 0, or -EINVAL with err saying what is wrong with v. */
typedef int (*opt_set)(opts *o, const opt_row *r, const char *v, char *err,
                       size_t elen);

enum {
    OPT_CMDLINE = 1u << 0, /* not in the file (--config, --help...) */
    OPT_REPEAT = 1u << 1,  /* may be given more than once */
};

struct opt_row {
    const char *name;
    const char *arg; /* the value as --help names it; NULL: a flag */
    opt_set set;
    size_t off; /* the field set, in opts (for the generic setters) */
    unsigned flags;
    const char *help; /* lines separated by '\n' */
};

/* ---- setters ------------------------------------------------------------- */

#define OFF(field) offsetof(opts, field)
#define FIELD(o, r, type) ((type *)((char *)(o) + (r)->off))

static int set_str(opts *o, const opt_row *r, const char *v, char *err,
                   size_t elen)
{
    if (!*v) {
        snprintf(err, elen, "wants a value");
        return -EINVAL;
    }
    *FIELD(o, r, const char *) = v;
    return 0;
}

static int parse_u32(const char *v, uint32_t *out, char *err, size_t elen)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || *v == '-' || errno || n > UINT32_MAX) {
        snprintf(err, elen, "wants a number from 0 to %u, not '%.64s'",
                 UINT32_MAX, v);
        return -EINVAL;
    }
    *out = (uint32_t)n;
    return 0;
}

/* --secret and --secret-file are one setting: the one given last wins. */
static int secret_from(opts *o, const char *v, bool file, char *err,
                       size_t elen)
{
    if (!*v) {
        snprintf(err, elen, "wants a value");
        return -EINVAL;
    }
    o->secret = file ? NULL : v;
    o->secret_file = file ? v : NULL;
    return 0;
}

static int set_secret(opts *o, const opt_row *r, const char *v, char *err,
                      size_t elen)
{
    (void)r;
    return secret_from(o, v, false, err, elen);
}

static int set_secret_file(opts *o, const opt_row *r, const char *v, char *err,
                           size_t elen)
{
    (void)r;
    return secret_from(o, v, true, err, elen);
}

static int set_u32(opts *o, const opt_row *r, const char *v, char *err,
                   size_t elen)
{
    return parse_u32(v, FIELD(o, r, uint32_t), err, elen);
}

static int set_flag(opts *o, const opt_row *r, const char *v, char *err,
                    size_t elen)
{
    bool *b = FIELD(o, r, bool);
    if (!v || !*v || !strcasecmp(v, "yes") || !strcasecmp(v, "true") ||
        !strcasecmp(v, "on") || !strcmp(v, "1")) {
        *b = true;
    } else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") ||
               !strcasecmp(v, "off") || !strcmp(v, "0")) {
        *b = false;
    } else {
        snprintf(err, elen, "wants yes or no (or nothing), not '%.64s'", v);
        return -EINVAL;
    }
    return 0;
}

/* HOST:PORT into host (cap bytes) and *port. */
static int parse_hostport(const char *v, char *host, size_t cap, uint16_t *port,
                          char *err, size_t elen)
{
    const char *colon = strrchr(v, ':');
    uint32_t p;
    if (!colon || colon == v || (size_t)(colon - v) >= cap ||
        parse_u32(colon + 1, &p, err, elen) || p > 65535) {
        snprintf(err, elen, "wants HOST:PORT, not '%.64s'", v);
        return -EINVAL;
    }
    memcpy(host, v, (size_t)(colon - v));
    host[colon - v] = '\0';
    *port = (uint16_t)p;
    return 0;
}

static int set_listen(opts *o, const opt_row *r, const char *v, char *err,
                      size_t elen)
{
    (void)r;
    return parse_hostport(v, o->cfg.host, sizeof o->cfg.host, &o->cfg.port, err,
                          elen);
}

static int set_admin_listen(opts *o, const opt_row *r, const char *v, char *err,
                            size_t elen)
{
    (void)r;
    int rc = parse_hostport(v, o->cfg.admin_host, sizeof o->cfg.admin_host,
                            &o->cfg.admin_port, err, elen);
    o->cfg.admin = rc == 0;
    return rc;
}

static int set_durability(opts *o, const opt_row *r, const char *v, char *err,
                          size_t elen)
{
    (void)r;
    if (strcmp(v, "fsync") == 0) {
        o->cfg.durability = SB_DURABILITY_FSYNC;
    } else if (strcmp(v, "os") == 0) {
        o->cfg.durability = SB_DURABILITY_OS;
    } else {
        snprintf(err, elen, "wants fsync or os, not '%.64s'", v);
        return -EINVAL;
    }
    return 0;
}

static int set_log_format(opts *o, const opt_row *r, const char *v, char *err,
                          size_t elen)
{
    (void)r;
    if (sb_log_format_parse(v, &o->log_format) == 0) return 0;
    snprintf(err, elen, "wants text or json, not '%.64s'", v);
    return -EINVAL;
}

static int set_log_level(opts *o, const opt_row *r, const char *v, char *err,
                         size_t elen)
{
    (void)r;
    o->log_level_set = true;
    if (sb_log_level_parse(v, &o->log_level) == 0) return 0;
    snprintf(err, elen, "wants debug, info, warn or error, not '%.64s'", v);
    return -EINVAL;
}

static int set_origin(opts *o, const opt_row *r, const char *v, char *err,
                      size_t elen)
{
    (void)r;
    if (!o->from_file && !o->origins_from_flags) {
        o->origins_from_flags = true;
        o->n_origins = 0;
    }
    if (!*v || o->n_origins == ORIGINS_MAX) {
        snprintf(err, elen, *v ? "at most %d origins" : "wants an origin",
                 ORIGINS_MAX);
        return -EINVAL;
    }
    o->origins[o->n_origins++] = v;
    return 0;
}

/* A comma-separated list of MIME types, each "type/subtype". */
static int set_media_types(opts *o, const opt_row *r, const char *v, char *err,
                           size_t elen)
{
    (void)r;
    free(o->media_types_buf);
    o->media_types_buf = strdup(v);
    o->n_media_types = 0;
    if (!o->media_types_buf) {
        snprintf(err, elen, "out of memory");
        return -EINVAL;
    }
    char *save = NULL;
    for (char *t = strtok_r(o->media_types_buf, ", ", &save); t;
         t = strtok_r(NULL, ", ", &save)) {
        char *slash = strchr(t, '/');
        if (!slash || slash == t || !slash[1] || strchr(slash + 1, '/') ||
            strlen(t) > SB_MEDIA_MIME_BYTES_MAX) {
            snprintf(err, elen, "wants MIME types like image/png, not '%.64s'",
                     t);
            return -EINVAL;
        }
        if (o->n_media_types == MEDIA_TYPES_MAX) {
            snprintf(err, elen, "at most %d types", MEDIA_TYPES_MAX);
            return -EINVAL;
        }
        o->media_types[o->n_media_types++] = t;
    }
    if (o->n_media_types == 0) {
        snprintf(err, elen, "wants at least one type");
        return -EINVAL;
    }
    return 0;
}

/* ---- the table ----------------------------------------------------------- */

/* clang-format off */
static const opt_row ROWS[] = {
    {"config", "FILE", set_str, OFF(config), OPT_CMDLINE,
     "read options from FILE first, one 'name value' per line\n"
     "(these names, no dashes; '#' comments); flags override it"},
    {"check-config", "FILE", set_str, OFF(check_config), OPT_CMDLINE,
     "check FILE and the options with it, say what is wrong\n"
     "(with line numbers) and exit: 0 good, 1 not"},
    {"listen", "HOST:PORT", set_listen, 0, 0,
     "address to serve HTTP and WebSocket (127.0.0.1:8080)"},
    {"admin-listen", "HOST:PORT", set_admin_listen, 0, 0,
     "operations port: GET /metrics (Prometheus), /readyz,\n"
     "/healthz (off; keep it off the public network)"},
    {"data", "DIR", set_str, OFF(cfg.data_dir), 0,
     "store folder; the SQLite file is DIR/switchboard.db (./data)"},
    {"store", "URL", set_str, OFF(cfg.store), 0,
     "the store on PostgreSQL instead: postgresql://user@host/db\n"
     "(a libpq URI; PG* variables fill in what it leaves out;\n"
     "the database must exist, the server makes its tables)"},
    {"nats", "URL[,URL...]", set_str, OFF(cfg.nats), 0,
     "join a cluster: the other nodes are reached through these\n"
     "NATS servers (nats://host:4222); needs --store on PostgreSQL"},
    {"node", "NAME", set_str, OFF(cfg.gw.node), 0,
     "this node's name in the cluster, unique in it\n"
     "(the host's name and the --listen port)"},
    {"store-writers", "N", set_u32, OFF(cfg.store_writers), 0,
     "writer connections on PostgreSQL, 1 to 4 (2): each commits\n"
     "its share of the conversations while another prepares"},
    {"durability", "MODE", set_durability, 0, 0,
     "fsync (default: fsync every group commit) or os\n"
     "(no fsync: survives a crash of the process, not of the machine)"},
    {"secret", "S", set_secret, 0, 0,
     "HS256 token secret (or env SB_SECRET, or --secret-file;\n"
     "required unless --demo)"},
    {"secret-file", "FILE", set_secret_file, 0, 0,
     "read the token secret from FILE (its first line), e.g.\n"
     "$CREDENTIALS_DIRECTORY/secret under systemd"},
    {"web", "DIR", set_str, OFF(cfg.web_dir), 0,
     "serve static files from DIR"},
    {"desk", "FILE", set_str, OFF(cfg.desk_file), 0,
     "customer-service desks, agents and bot rules (JSON;\n"
     "--demo uses conf/desk.json when present), imported\n"
     "into the store when new or changed; admins edit the\n"
     "store's with sbctl admin desk; SIGHUP re-imports a\n"
     "changed FILE (docs/operations.md)"},
    {"filter", "DIR", set_str, OFF(cfg.filter_dir), 0,
     "sensitive-word lists, one NAME.txt per category\n"
     "(docs/filter.md; --demo uses conf/filter when\n"
     "present); SIGHUP reloads them"},
    {"demo", NULL, set_flag, OFF(demo), 0,
     "demo mode: a known secret, sample tokens printed at start,\n"
     "GET /demo/token?user=U&role=customer|agent for loopback peers"},
    {"heartbeat-ms", "N", set_u32, OFF(cfg.gw.heartbeat_ms), 0,
     "WebSocket ping interval (30000)"},
    {"idle-ms", "N", set_u32, OFF(cfg.idle_ms), 0,
     "close connections silent this long (90000)"},
    {"retry-ms", "N", set_u32, OFF(cfg.gw.retry_ms_initial), 0,
     "first PUSH retry delay (2000); doubles up to --retry-ms-max"},
    {"retry-ms-max", "N", set_u32, OFF(cfg.gw.retry_ms_max), 0,
     "PUSH retry backoff cap (30000)"},
    {"retry-attempts", "N", set_u32, OFF(cfg.gw.retry_attempts_max), 0,
     "PUSH retries before the session is closed (5)"},
    {"max-connections", "N", set_u32, OFF(cfg.conns_max), 0,
     "open connections (200000)"},
    {"pending-sends", "N", set_u32, OFF(cfg.gw.pending_sends_max), 0,
     "SENDs awaiting the store per session (64)"},
    {"body-bytes-max", "N", set_u32, OFF(cfg.gw.body_bytes_max), 0,
     "message body limit (8192)"},
    {"frame-bytes-max", "N", set_u32, OFF(cfg.gw.frame_bytes_max), 0,
     "WebSocket message limit (65536)"},
    {"token-iss", "S", set_str, OFF(cfg.gw.token_iss), 0,
     "accept only tokens whose issuer (iss) is S"},
    {"token-aud", "S", set_str, OFF(cfg.gw.token_aud), 0,
     "accept only tokens whose audience (aud) is or has S"},
    {"sends-per-s", "N", set_u32, OFF(cfg.gw.sends_per_s), 0,
     "SENDs per second per session, then ERR_RATE_LIMITED\n"
     "(50; 0: no limit)"},
    {"send-burst", "N", set_u32, OFF(cfg.gw.send_burst), 0,
     "SENDs a session may make at once (100)"},
    {"api-rate", "N", set_u32, OFF(cfg.api_rate_per_s), 0,
     "REST API requests per second per token, then 429\n"
     "(50; 0: no limit)"},
    {"api-burst", "N", set_u32, OFF(cfg.api_rate_burst), 0,
     "REST API requests a token may make at once (100)"},
    {"conns-per-addr", "N", set_u32, OFF(cfg.conns_per_addr_max), 0,
     "open connections per IPv4 address or IPv6 /64\n"
     "(1000; 0: no limit)"},
    {"origin", "O", set_origin, 0, OPT_REPEAT,
     "take browser upgrades (Origin header) only from O,\n"
     "e.g. https://support.example.com; repeatable"},
    {"handshake-ms", "N", set_u32, OFF(cfg.handshake_ms), 0,
     "an HTTP request must be complete within N ms (10000)"},
    {"out-bytes-max", "N", set_u32, OFF(cfg.out_bytes_max), 0,
     "unsent bytes per connection before it is dropped\n"
     "(8388608)"},
    {"deflate", "yes|no", set_flag, OFF(cfg.deflate), 0,
     "permessage-deflate for clients that offer it (yes)"},
    {"deflate-min-bytes", "N", set_u32, OFF(cfg.deflate_min_bytes), 0,
     "compress messages of N bytes and more (512)"},
    {"media-bytes-max", "N", set_u32, OFF(media_bytes), 0,
     "largest upload, in bytes (10485760; 0: no uploads)"},
    {"media-uploads-per-hour", "N", set_u32,
     OFF(cfg.media.uploads_per_hour), 0,
     "uploads per user per hour, then 429 (100; 0: no limit)"},
    {"media-uploads-per-user", "N", set_u32,
     OFF(cfg.media.uploads_per_user), 0,
     "uploads a user may have in progress at once (4)"},
    {"media-uploads-max", "N", set_u32, OFF(cfg.media.uploads_max), 0,
     "uploads in progress at once in all, then 503 (64)"},
    {"media-idle-ms", "N", set_u32, OFF(cfg.media.idle_ms), 0,
     "end an upload or download that moves no byte this long\n"
     "(30000)"},
    {"media-time-ms", "N", set_u32, OFF(cfg.media.time_ms_max), 0,
     "end an upload or download that takes longer (600000)"},
    {"media-link-s", "N", set_u32, OFF(cfg.gw.media_link_s), 0,
     "how long a signed link of MEDIA_URL works (900)"},
    {"media-types", "TYPES", set_media_types, 0, 0,
     "the MIME types uploads may have, by their content,\n"
     "comma-separated (default: the raster images, PDF, text,\n"
     "zip, office documents, common audio and video)"},
    {"tls-cert", "FILE", set_str, OFF(cfg.tls_cert), 0,
     "serve HTTPS and wss:// with this PEM certificate chain"},
    {"tls-key", "FILE", set_str, OFF(cfg.tls_key), 0,
     "and this PEM private key (both, or neither: plain)"},
    {"log-format", "F", set_log_format, 0, 0,
     "text (default) or json: one object per line on stderr"},
    {"log-level", "L", set_log_level, 0, 0,
     "debug, info (default), warn or error"},
    {"quiet", NULL, set_flag, OFF(quiet), 0,
     "no informational log lines (--log-level warn)"},
    {"help", NULL, set_flag, OFF(help), OPT_CMDLINE, "this text"},
    {"version", NULL, set_flag, OFF(version), OPT_CMDLINE,
     "the version"},
};
/* clang-format on */

#define N_ROWS (sizeof ROWS / sizeof ROWS[0])
#define HELP_COL 25

static void usage(FILE *f)
{
    fprintf(f, "usage: switchboard [options]\n");
    for (size_t i = 0; i < N_ROWS; i++) {
        const opt_row *r = &ROWS[i];
        int n = fprintf(f, "  --%s%s%s", r->name, r->arg ? " " : "",
                        r->arg ? r->arg : "");
        const char *h = r->help;
        bool first = true;
        while (*h) {
            const char *nl = strchr(h, '\n');
            int len = nl ? (int)(nl - h) : (int)strlen(h);
            if (first && n < HELP_COL - 1)
                fprintf(f, "%*s%.*s\n", HELP_COL - n, "", len, h);
            else
                fprintf(f, "%s%*s%.*s\n", first ? "\n" : "", HELP_COL, "", len,
                        h);
            first = false;
            h += len + (nl ? 1 : 0);
        }
    }
}

/* ---- applying options ---------------------------------------------------- */

static const opt_row *row_by_name(const char *name)
{
    for (size_t i = 0; i < N_ROWS; i++)
        if (strcmp(ROWS[i].name, name) == 0) return &ROWS[i];
    return NULL;
}

/* Applies the entries of a configuration file, printing a line for each
 * that is wrong (with its line number) to stderr. Returns how many
 * were. */
static int apply_file(opts *o, const char *path, const sb_conf *c)
{
    unsigned seen[N_ROWS] = {0};
    int bad = 0;
    o->from_file = true;
    for (size_t i = 0; i < c->n; i++) {
        const sb_conf_entry *e = &c->entries[i];
        const opt_row *r = row_by_name(e->name);
        char err[ERR_BYTES];
        if (!r || (r->flags & OPT_CMDLINE)) {
            fprintf(stderr, "%s:%u: %s: %s\n", path, e->line, e->name,
                    r ? "only on the command line" : "no such option");
            bad++;
            continue;
        }
        size_t k = (size_t)(r - ROWS);
        if (seen[k] && !(r->flags & OPT_REPEAT)) {
            fprintf(stderr, "%s:%u: %s: given again (first on line %u)\n", path,
                    e->line, e->name, seen[k]);
            bad++;
            continue;
        }
        seen[k] = e->line;
        if (r->arg && !*e->value) {
            fprintf(stderr, "%s:%u: %s: wants a value (%s)\n", path, e->line,
                    e->name, r->arg);
            bad++;
            continue;
        }
        if (r->set(o, r, e->value, err, sizeof err) != 0) {
            fprintf(stderr, "%s:%u: %s: %s\n", path, e->line, e->name, err);
            bad++;
        }
    }
    o->from_file = false;
    return bad;
}

/* Reads and applies the file at path. Returns how many problems it has
 * (each printed). */
static int load_file(opts *o, const char *path, sb_conf *c)
{
    char err[ERR_BYTES];
    unsigned line;
    if (sb_conf_read(path, c, &line, err, sizeof err) != 0) {
        if (line)
            fprintf(stderr, "%s:%u: %s\n", path, line, err);
        else
            fprintf(stderr, "%s: %s\n", path, err);
        return 1;
    }
    return apply_file(o, path, c);
}

/* Reads the secret file's first line into o->secret. */
static int read_secret_file(opts *o)
{
    FILE *f = fopen(o->secret_file, "r");
    if (!f) {
        fprintf(stderr, "switchboard: --secret-file %s: %s\n", o->secret_file,
                strerror(errno));
        return -1;
    }
    free(o->secret_read);
    o->secret_read = calloc(1, SECRET_FILE_BYTES_MAX + 1);
    if (o->secret_read)
        (void)fread(o->secret_read, 1, SECRET_FILE_BYTES_MAX, f);
    fclose(f);
    if (!o->secret_read) return -1;
    o->secret_read[strcspn(o->secret_read, "\r\n")] = '\0';
    o->secret = o->secret_read;
    return 0;
}

/* The checks that concern several options, or the whole. Prints each
 * problem; returns how many. need_secret: a secret must be known now (not
 * for --check-config, which may run where the service's secret is not). */
static int validate(opts *o, bool need_secret)
{
    int bad = 0;
    sb_server_config *c = &o->cfg;
#define BAD(...)                                                               \
    do {                                                                       \
        fprintf(stderr, "switchboard: " __VA_ARGS__);                          \
        fputc('\n', stderr);                                                   \
        bad++;                                                                 \
    } while (0)
    if (o->secret_file && read_secret_file(o) != 0) bad++;
    if (need_secret && (!o->secret || !*o->secret))
        BAD("a token secret is required: --secret, --secret-file, "
            "SB_SECRET, or --demo");
    if ((c->gw.token_iss && strlen(c->gw.token_iss) > SB_TOKEN_ISS_BYTES_MAX) ||
        (c->gw.token_aud && strlen(c->gw.token_aud) > SB_TOKEN_ISS_BYTES_MAX))
        BAD("--token-iss and --token-aud take at most %d bytes",
            SB_TOKEN_ISS_BYTES_MAX);
    if (c->store_writers > SB_STOREQ_WRITERS_MAX)
        BAD("--store-writers takes 1 to %d", SB_STOREQ_WRITERS_MAX);
    if (c->nats && !c->store)
        BAD("--nats needs --store on PostgreSQL: the nodes share it");
    if (c->gw.node && (!*c->gw.node || strlen(c->gw.node) > SB_ID_BYTES_MAX))
        BAD("--node takes 1 to %d bytes", SB_ID_BYTES_MAX);
    if (!c->tls_cert != !c->tls_key)
        BAD("--tls-cert and --tls-key go together");
    if (c->gw.sends_per_s && c->gw.send_burst == 0)
        BAD("--send-burst must be at least 1");
    if (c->gw.heartbeat_ms == 0 || c->gw.retry_ms_initial == 0)
        BAD("intervals must be positive (--heartbeat-ms, --retry-ms)");
    if (c->media.uploads_per_user == 0 || c->media.uploads_max == 0 ||
        c->media.idle_ms == 0 || c->media.time_ms_max == 0 ||
        c->gw.media_link_s == 0)
        BAD("--media-uploads-per-user, --media-uploads-max, --media-idle-ms,"
            " --media-time-ms and --media-link-s must be positive");
    if (c->admin && c->admin_port != 0 && c->admin_port == c->port &&
        strcmp(c->admin_host, c->host) == 0)
        BAD("--admin-listen must differ from --listen");
#undef BAD
    return bad;
}

/* Runs getopt_long over argv, calling set for every option whose row
 * passes pick. Returns 0, or 2 after a usage error. */
static int parse_flags(opts *o, int argc, char **argv,
                       bool (*pick)(const opt_row *r), bool report)
{
    struct option lo[N_ROWS + 1];
    for (size_t i = 0; i < N_ROWS; i++)
        lo[i] = (struct option){ROWS[i].name,
                                ROWS[i].arg ? required_argument : no_argument,
                                NULL, (int)(256 + i)};
    lo[N_ROWS] = (struct option){0};
    optind = 0; /* glibc: start over, the whole of argv */
    opterr = report;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c < 256 || c >= 256 + (int)N_ROWS) {
            if (report) usage(stderr);
            return 2;
        }
        const opt_row *r = &ROWS[c - 256];
        if (!pick(r)) continue;
        char err[ERR_BYTES];
        if (r->set(o, r, optarg, err, sizeof err) != 0) {
            fprintf(stderr, "switchboard: --%s: %s\n", r->name, err);
            return 2;
        }
    }
    if (optind < argc) {
        if (report) usage(stderr);
        return 2;
    }
    return 0;
}

static bool pick_cmdline(const opt_row *r)
{
    return r->flags & OPT_CMDLINE;
}

static bool pick_file_ones(const opt_row *r)
{
    return !(r->flags & OPT_CMDLINE);
}

/* ---- running ------------------------------------------------------------- */

static opts O;

static void on_ready(const sb_server_ports *p)
{
    if (O.demo)
        sb_demo_banner(stdout, O.cfg.host, p->port, O.cfg.desk_file != NULL,
                       O.cfg.web_dir != NULL, (int64_t)time(NULL));
    /* stdout carries these two lines for scripts and tests; the log
     * (stderr) says the same as events. */
    if (p->admin_port) printf("switchboard: admin on port %u\n", p->admin_port);
    printf("switchboard: ready on port %u\n", p->port);
    fflush(stdout);
}

static int check_config(opts *o)
{
    sb_conf c;
    int bad = load_file(o, o->check_config, &c);
    bad += validate(o, false);
    sb_conf_free(&c);
    if (bad) {
        fprintf(stderr, "%s: %d problem%s\n", o->check_config, bad,
                bad == 1 ? "" : "s");
        return 1;
    }
    printf("%s: ok\n", o->check_config);
    return 0;
}

int main(int argc, char **argv)
{
    opts *o = &O;
    sb_server_config_default(&o->cfg);
    o->media_bytes = (uint32_t)o->cfg.media.bytes_max;
    o->log_format = SB_LOG_TEXT;
    o->log_level = SB_LOG_INFO;
    int rc = parse_flags(o, argc, argv, pick_cmdline, true);
    if (rc) return rc;
    if (o->help) {
        usage(stdout);
        return 0;
    }
    if (o->version) {
        printf("switchboard %s\n", SB_VERSION);
        return 0;
    }
    if (o->check_config) return check_config(o);
    /* The file's strings stay in c for the whole run. */
    sb_conf c = {0};
    if (o->config && load_file(o, o->config, &c) != 0) {
        fprintf(stderr,
                "switchboard: %s: not started (switchboard "
                "--check-config FILE tells every problem)\n",
                o->config);
        sb_conf_free(&c);
        return 2;
    }
    rc = parse_flags(o, argc, argv, pick_file_ones, false);
    if (rc) goto out;
    if (!o->secret && !o->secret_file) o->secret = getenv("SB_SECRET");
    if (o->demo && !o->secret && !o->secret_file) o->secret = SB_DEMO_SECRET;
    if (o->demo && !o->cfg.desk_file && access("conf/desk.json", R_OK) == 0)
        o->cfg.desk_file = "conf/desk.json";
    if (o->demo && !o->cfg.filter_dir && access("conf/filter", R_OK) == 0)
        o->cfg.filter_dir = "conf/filter";
    if (validate(o, true) != 0) {
        rc = 2;
        goto out;
    }
    sb_log_setup(stderr, o->log_format,
                 o->log_level_set ? o->log_level
                 : o->quiet       ? SB_LOG_WARN
                                  : SB_LOG_INFO);
    o->cfg.demo = o->demo;
    o->cfg.origins = o->origins;
    o->cfg.n_origins = o->n_origins;
    o->cfg.gw.secret = (const uint8_t *)o->secret;
    o->cfg.gw.secret_len = strlen(o->secret);
    o->cfg.media.bytes_max = o->media_bytes;
    o->cfg.gw.media_bytes_max = o->media_bytes;
    if (o->n_media_types) {
        o->cfg.media.types = o->media_types;
        o->cfg.media.n_types = o->n_media_types;
    }
    rc = sb_server_run(&o->cfg, on_ready) == 0 ? 0 : 1;
out:
    sb_conf_free(&c);
    free(o->secret_read);
    free(o->media_types_buf);
    return rc;
}
