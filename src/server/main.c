/* switchboard: the gateway server's command line. Parses options and the
 * environment into an sb_server_config and runs the server. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sb_demo.h"
#include "sb_server.h"
#include "sb_token.h"

static void usage(FILE *f)
{
    /* clang-format off */
    fprintf(f,
        "usage: switchboard [options]\n"
        "  --listen HOST:PORT     address to serve HTTP and WebSocket (127.0.0.1:8080)\n"
        "  --data DIR             store folder; the SQLite file is DIR/switchboard.db (./data)\n"
        "  --store URL            the store on PostgreSQL instead: postgresql://user@host/db\n"
        "                         (a libpq URI; PG* variables fill in what it leaves out;\n"
        "                         the database must exist, the server makes its tables)\n"
        "  --durability MODE      fsync (default: fsync every group commit) or os\n"
        "                         (no fsync: survives a crash of the process, not of the machine)\n"
        "  --secret S             HS256 token secret (or env SB_SECRET; required unless --demo)\n"
        "  --web DIR              serve static files from DIR\n"
        "  --desk FILE            customer-service desks, agents and bot rules (JSON;\n"
        "                         --demo uses conf/desk.json when present), imported\n"
        "                         into the store when new or changed; admins edit the\n"
        "                         store's with sbctl admin desk; SIGHUP re-imports a\n"
        "                         changed FILE (docs/operations.md)\n"
        "  --filter DIR           sensitive-word lists, one NAME.txt per category\n"
        "                         (docs/filter.md; --demo uses conf/filter when\n"
        "                         present); SIGHUP reloads them\n"
        "  --demo                 demo mode: a known secret, sample tokens printed at start,\n"
        "                         GET /demo/token?user=U&role=customer|agent for loopback peers\n"
        "  --heartbeat-ms N       WebSocket ping interval (30000)\n"
        "  --idle-ms N            close connections silent this long (90000)\n"
        "  --retry-ms N           first PUSH retry delay (2000); doubles up to --retry-ms-max\n"
        "  --retry-ms-max N       PUSH retry backoff cap (30000)\n"
        "  --retry-attempts N     PUSH retries before the session is closed (5)\n"
        "  --max-connections N    open connections (200000)\n"
        "  --pending-sends N      SENDs awaiting the store per session (64)\n"
        "  --body-bytes-max N     message body limit (8192)\n"
        "  --frame-bytes-max N    WebSocket message limit (65536)\n"
        "  --token-iss S          accept only tokens whose issuer (iss) is S\n"
        "  --token-aud S          accept only tokens whose audience (aud) is or has S\n"
        "  --sends-per-s N        SENDs per second per session, then ERR_RATE_LIMITED\n"
        "                         (50; 0: no limit)\n"
        "  --send-burst N         SENDs a session may make at once (100)\n"
        "  --conns-per-addr N     open connections per IPv4 address or IPv6 /64\n"
        "                         (1000; 0: no limit)\n"
        "  --origin O             take browser upgrades (Origin header) only from O,\n"
        "                         e.g. https://support.example.com; repeatable\n"
        "  --handshake-ms N       an HTTP request must be complete within N ms (10000)\n"
        "  --out-bytes-max N      unsent bytes per connection before it is dropped\n"
        "                         (8388608)\n"
        "  --tls-cert FILE        serve HTTPS and wss:// with this PEM certificate chain\n"
        "  --tls-key FILE         and this PEM private key (both, or neither: plain)\n"
        "  --quiet                no informational log lines (errors still)\n"
        "  --help, --version\n");
    /* clang-format on */
}

static sb_server_config cfg;
static bool demo;

static void on_ready(uint16_t port)
{
    if (demo)
        sb_demo_banner(stdout, cfg.host, port, cfg.desk_file != NULL,
                       cfg.web_dir != NULL, (int64_t)time(NULL));
    printf("switchboard: ready on port %u\n", port);
    fflush(stdout);
}

/* Long-only options, numbered clear of the one-letter codes. */
enum {
    OPT_TOKEN_ISS = 300,
    OPT_TOKEN_AUD,
    OPT_SENDS_PER_S,
    OPT_SEND_BURST,
    OPT_CONNS_PER_ADDR,
    OPT_ORIGIN,
    OPT_HANDSHAKE_MS,
    OPT_OUT_BYTES_MAX,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_STORE,
};

#define ORIGINS_MAX 64
static const char *origins[ORIGINS_MAX];

static long num(const char *s, const char *opt)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || v < 0) {
        fprintf(stderr, "switchboard: bad value for %s: %s\n", opt, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    sb_server_config_default(&cfg);
    const char *secret = getenv("SB_SECRET");
    static const struct option opts[] = {
        {"listen", 1, 0, 'l'},
        {"data", 1, 0, 'd'},
        {"durability", 1, 0, 'D'},
        {"secret", 1, 0, 's'},
        {"web", 1, 0, 'w'},
        {"desk", 1, 0, 'K'},
        {"filter", 1, 0, 'F'},
        {"demo", 0, 0, 'M'},
        {"heartbeat-ms", 1, 0, 'H'},
        {"idle-ms", 1, 0, 'I'},
        {"retry-ms", 1, 0, 'r'},
        {"retry-ms-max", 1, 0, 'R'},
        {"retry-attempts", 1, 0, 'a'},
        {"max-connections", 1, 0, 'c'},
        {"pending-sends", 1, 0, 'p'},
        {"body-bytes-max", 1, 0, 'b'},
        {"frame-bytes-max", 1, 0, 'f'},
        {"quiet", 0, 0, 'q'},
        {"help", 0, 0, 'h'},
        {"version", 0, 0, 'V'},
        {"token-iss", 1, 0, OPT_TOKEN_ISS},
        {"token-aud", 1, 0, OPT_TOKEN_AUD},
        {"sends-per-s", 1, 0, OPT_SENDS_PER_S},
        {"send-burst", 1, 0, OPT_SEND_BURST},
        {"conns-per-addr", 1, 0, OPT_CONNS_PER_ADDR},
        {"origin", 1, 0, OPT_ORIGIN},
        {"handshake-ms", 1, 0, OPT_HANDSHAKE_MS},
        {"out-bytes-max", 1, 0, OPT_OUT_BYTES_MAX},
        {"tls-cert", 1, 0, OPT_TLS_CERT},
        {"tls-key", 1, 0, OPT_TLS_KEY},
        {"store", 1, 0, OPT_STORE},
        {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'l': {
            const char *colon = strrchr(optarg, ':');
            if (!colon || (size_t)(colon - optarg) >= sizeof cfg.host) {
                fprintf(stderr, "switchboard: --listen wants HOST:PORT\n");
                return 2;
            }
            memcpy(cfg.host, optarg, (size_t)(colon - optarg));
            cfg.host[colon - optarg] = '\0';
            long port = num(colon + 1, "--listen");
            if (port > 65535) return 2;
            cfg.port = (uint16_t)port;
            break;
        }
        case 'd':
            cfg.data_dir = optarg;
            break;
        case 'D':
            if (strcmp(optarg, "fsync") == 0)
                cfg.durability = SB_DURABILITY_FSYNC;
            else if (strcmp(optarg, "os") == 0)
                cfg.durability = SB_DURABILITY_OS;
            else {
                fprintf(stderr, "switchboard: --durability fsync|os\n");
                return 2;
            }
            break;
        case 's':
            secret = optarg;
            break;
        case 'w':
            cfg.web_dir = optarg;
            break;
        case 'K':
            cfg.desk_file = optarg;
            break;
        case 'F':
            cfg.filter_dir = optarg;
            break;
        case 'M':
            demo = true;
            break;
        case 'H':
            cfg.gw.heartbeat_ms = (uint32_t)num(optarg, "--heartbeat-ms");
            break;
        case 'I':
            cfg.idle_ms = (uint32_t)num(optarg, "--idle-ms");
            break;
        case 'r':
            cfg.gw.retry_ms_initial = (uint32_t)num(optarg, "--retry-ms");
            break;
        case 'R':
            cfg.gw.retry_ms_max = (uint32_t)num(optarg, "--retry-ms-max");
            break;
        case 'a':
            cfg.gw.retry_attempts_max =
                (uint32_t)num(optarg, "--retry-attempts");
            break;
        case 'c':
            cfg.conns_max = (uint32_t)num(optarg, "--max-connections");
            break;
        case 'p':
            cfg.gw.pending_sends_max = (uint32_t)num(optarg, "--pending-sends");
            break;
        case 'b':
            cfg.gw.body_bytes_max = (uint32_t)num(optarg, "--body-bytes-max");
            break;
        case 'f':
            cfg.gw.frame_bytes_max = (uint32_t)num(optarg, "--frame-bytes-max");
            break;
        case 'q':
            cfg.quiet = true;
            break;
        case OPT_TOKEN_ISS:
            cfg.gw.token_iss = optarg;
            break;
        case OPT_TOKEN_AUD:
            cfg.gw.token_aud = optarg;
            break;
        case OPT_SENDS_PER_S:
            cfg.gw.sends_per_s = (uint32_t)num(optarg, "--sends-per-s");
            break;
        case OPT_SEND_BURST:
            cfg.gw.send_burst = (uint32_t)num(optarg, "--send-burst");
            break;
        case OPT_CONNS_PER_ADDR:
            cfg.conns_per_addr_max = (uint32_t)num(optarg, "--conns-per-addr");
            break;
        case OPT_ORIGIN:
            if (cfg.n_origins == ORIGINS_MAX) {
                fprintf(stderr, "switchboard: at most %d --origin\n",
                        ORIGINS_MAX);
                return 2;
            }
            origins[cfg.n_origins++] = optarg;
            cfg.origins = origins;
            break;
        case OPT_HANDSHAKE_MS:
            cfg.handshake_ms = (uint32_t)num(optarg, "--handshake-ms");
            break;
        case OPT_OUT_BYTES_MAX:
            cfg.out_bytes_max = (uint32_t)num(optarg, "--out-bytes-max");
            break;
        case OPT_TLS_CERT:
            cfg.tls_cert = optarg;
            break;
        case OPT_STORE:
            cfg.store = optarg;
            break;
        case OPT_TLS_KEY:
            cfg.tls_key = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("switchboard %s\n", SB_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (demo && !secret) secret = SB_DEMO_SECRET;
    if (demo && !cfg.desk_file && access("conf/desk.json", R_OK) == 0)
        cfg.desk_file = "conf/desk.json";
    if (demo && !cfg.filter_dir && access("conf/filter", R_OK) == 0)
        cfg.filter_dir = "conf/filter";
    if (!secret || !*secret) {
        fprintf(stderr, "switchboard: a token secret is required: --secret, "
                        "SB_SECRET, or --demo\n");
        return 2;
    }
    if ((cfg.gw.token_iss &&
         strlen(cfg.gw.token_iss) > SB_TOKEN_ISS_BYTES_MAX) ||
        (cfg.gw.token_aud &&
         strlen(cfg.gw.token_aud) > SB_TOKEN_ISS_BYTES_MAX)) {
        fprintf(stderr,
                "switchboard: --token-iss and --token-aud take at "
                "most %d bytes\n",
                SB_TOKEN_ISS_BYTES_MAX);
        return 2;
    }
    if (!cfg.tls_cert != !cfg.tls_key) {
        fprintf(stderr, "switchboard: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (cfg.gw.sends_per_s && cfg.gw.send_burst == 0) {
        fprintf(stderr, "switchboard: --send-burst must be at least 1\n");
        return 2;
    }
    if (cfg.gw.heartbeat_ms == 0 || cfg.gw.retry_ms_initial == 0) {
        fprintf(stderr, "switchboard: intervals must be positive\n");
        return 2;
    }
    cfg.demo = demo;
    cfg.gw.secret = (const uint8_t *)secret;
    cfg.gw.secret_len = strlen(secret);
    int rc = sb_server_run(&cfg, on_ready);
    return rc == 0 ? 0 : 1;
}
