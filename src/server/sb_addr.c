/* Peer addresses: limit keys and loopback. */
#include "sb_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* The IPv4 address an IPv6 address maps (::ffff:a.b.c.d) into *v4 (host
 * order); false if it maps none. */
static bool v4_mapped(const struct sockaddr_in6 *a, uint32_t *v4)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *b = a->sin6_addr.s6_addr;
    if (memcmp(b, prefix, sizeof prefix) != 0) return false;
    *v4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 |
          b[15];
    return true;
}

uint64_t sb_addr_key(const struct sockaddr *sa)
{
    if (!sa) return 0;
    if (sa->sa_family == AF_INET)
        return 1ull << 32 |
               ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
    if (sa->sa_family != AF_INET6) return 0;
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uint32_t v4;
    if (v4_mapped(a, &v4)) return 1ull << 32 | v4;
    uint64_t k = 0;
    for (int i = 0; i < 8; i++)
        k = k << 8 | a->sin6_addr.s6_addr[i];
    return k;
}

bool sb_addr_is_loopback(const struct sockaddr *sa)
{
    if (!sa) return false;
    if (sa->sa_family == AF_INET)
        return ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24 ==
               127;
    if (sa->sa_family != AF_INET6) return false;
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uint32_t v4;
    if (v4_mapped(a, &v4)) return v4 >> 24 == 127;
    return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
}
