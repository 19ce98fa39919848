/* Demo mode: the banner's tokens and GET /demo/token. */
#include "sb_demo.h"

#include <errno.h>
#include <string.h>

#include "sb_addr.h"
#include "sb_token.h"

/* Signs a token for sub with role and the given times (iat 0: none) into
 * tok. Returns its length or a negative code. */
static int mint(const uint8_t *secret, size_t secret_len, const char *sub,
                const char *role, const char *locale, int64_t iat, int64_t exp,
                const char *iss, const char *aud, char *tok, size_t cap)
{
    sb_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "%s", sub);
    snprintf(cl.locale, sizeof cl.locale, "%s", locale);
    cl.role = sb_role_from_name(role);
    cl.iat = iat;
    cl.exp = exp;
    if (iss) snprintf(cl.iss, sizeof cl.iss, "%s", iss);
    if (aud) snprintf(cl.aud, sizeof cl.aud, "%s", aud);
    return sb_token_sign(secret, secret_len, &cl, tok, cap);
}

/* The value of query parameter name in target ("" if absent), copied into
 * out; false if it is longer than out or holds other than [A-Za-z0-9_.-]. */
static bool query_param(const char *target, const char *name, char *out,
                        size_t cap)
{
    out[0] = '\0';
    const char *q = strchr(target, '?');
    size_t nlen = strlen(name);
    for (const char *p = q; p && *p; p = strchr(p + 1, '&')) {
        if (strncmp(p + 1, name, nlen) != 0 || p[1 + nlen] != '=') continue;
        const char *v = p + 2 + nlen;
        size_t n = strcspn(v, "&#");
        if (n >= cap) return false;
        for (size_t i = 0; i < n; i++) {
            char ch = v[i];
            bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
                      ch == '-';
            if (!ok) return false;
        }
        memcpy(out, v, n);
        out[n] = '\0';
        return true;
    }
    return true;
}

int sb_demo_token(const sb_demo_config *c, const char *target,
                  const struct sockaddr *peer, int64_t now_s, char *json,
                  size_t cap)
{
    char user[SB_ID_BYTES_MAX + 1], role[16], locale[16];
    if (!c->on || !sb_addr_is_loopback(peer)) return -ENOENT;
    if (!query_param(target, "user", user, sizeof user) || !user[0] ||
        !query_param(target, "role", role, sizeof role) ||
        !query_param(target, "locale", locale, sizeof locale) ||
        (strcmp(role, "customer") != 0 && strcmp(role, "agent") != 0))
        return -EINVAL;
    char tok[SB_TOKEN_BYTES_MAX];
    int rc =
        mint(c->secret, c->secret_len, user, role, locale, now_s,
             now_s + 12 * 3600, c->token_iss, c->token_aud, tok, sizeof tok);
    if (rc < 0) return rc;
    int n = snprintf(json, cap, "{\"token\":\"%s\"}", tok);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

void sb_demo_banner(FILE *f, const char *host, uint16_t port, bool desk,
                    bool web, int64_t now_s)
{
    static const char *const users[][2] = {
        {"alice", "customer"}, {"bob", "agent"}, {"root", "admin"}};
    fprintf(f,
            "\nSwitchboard demo on http://%s:%u  (WebSocket: ws://%s:%u/ws)\n",
            host, port, host, port);
    fprintf(f, "Demo secret: %s\n", SB_DEMO_SECRET);
    for (int i = 0; i < (desk ? 3 : 2); i++) {
        char tok[1024];
        if (mint((const uint8_t *)SB_DEMO_SECRET, strlen(SB_DEMO_SECRET),
                 users[i][0], users[i][1], "", 0, now_s + 7 * 86400, NULL, NULL,
                 tok, sizeof tok) > 0)
            fprintf(f, "Token for %s (%s):\n  %s\n", users[i][0], users[i][1],
                    tok);
    }
    if (web)
        fprintf(f,
                "Pages: customer http://%s:%u/   agent "
                "http://%s:%u/agent?user=bob\n",
                host, port, host, port);
    fprintf(f,
            "Or with sbctl, in two terminals (export SB_URL=ws://%s:%u/ws):\n",
            host, port);
    if (desk)
        fprintf(f,
                "  build/sbctl service open --token <alice's token>   (prints "
                "the conv id)\n"
                "  build/sbctl send --token <alice's token> --conv <id> \"talk "
                "to a person\"\n"
                "  build/sbctl listen --token <bob's token>   (bob comes on "
                "duty, gets it)\n"
                "  build/sbctl admin desk show --token <root's token>   (the "
                "desk configuration;\n"
                "    build/sbctl admin desk --help: change agents, "
                "capacities... while it runs)\n\n");
    else
        fprintf(
            f,
            "  build/sbctl listen --token <bob's token>\n"
            "  build/sbctl open --token <alice's token> --member bob\n"
            "  build/sbctl send --token <alice's token> --conv <id> hello\n\n");
    fflush(f);
}
