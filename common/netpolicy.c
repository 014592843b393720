#include "netpolicy.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cidr4 {
    uint32_t net;
    int prefix;
};

/* IPv4 ranges no public service lives in. */
static const struct cidr4 private4[] = {
    {0x00000000, 8},  /* "this network", 0.0.0.0 */
    {0x0A000000, 8},  /* RFC 1918 */
    {0x64400000, 10}, /* CGNAT, RFC 6598 */
    {0x7F000000, 8},  /* loopback */
    {0xA9FE0000, 16}, /* link-local (cloud metadata lives here) */
    {0xAC100000, 12}, /* RFC 1918 */
    {0xC0000000, 24}, /* IETF protocol assignments */
    {0xC0A80000, 16}, /* RFC 1918 */
    {0xC6120000, 15}, /* benchmarking, RFC 2544 */
    {0xE0000000, 4},  /* multicast */
    {0xF0000000, 4},  /* reserved, broadcast */
};

static int in_prefix(const uint8_t *a, const uint8_t *net, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, (size_t)full) != 0)
        return 0;
    if (!rest)
        return 1;
    uint8_t mask = (uint8_t)(0xFF << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static int private_v4(uint32_t a)
{
    for (size_t i = 0; i < sizeof(private4) / sizeof(private4[0]); i++) {
        uint32_t mask = private4[i].prefix ? ~0u << (32 - private4[i].prefix) : 0;
        if ((a & mask) == private4[i].net)
            return 1;
    }
    return 0;
}

static uint32_t v4_at(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* An IPv4 address carried inside an IPv6 one, judged as that IPv4 address:
 *   ::ffff:a.b.c.d     mapped (a dual-stack socket connects over IPv4)
 *   ::a.b.c.d          compatible (deprecated; but :: and ::1 are themselves)
 *   ::ffff:0:a.b.c.d   translated (SIIT, RFC 2765)
 *   64:ff9b::a.b.c.d   NAT64 well-known prefix (RFC 6052)
 *   2002:AABB:CCDD::   6to4 (RFC 3056): the IPv4 address in bits 16-47
 *   2001:0:S:S::~C     Teredo (RFC 4380): the client's address, inverted, last
 *   ...:0:5efe:a.b.c.d ISATAP (RFC 5214) interface identifiers, any prefix
 * tests/unit/test_netpolicy.c has one case per form. */
static int embedded_v4(const uint8_t *a, uint32_t *v4)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    static const uint8_t compat[12] = {0};
    static const uint8_t translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0};
    static const uint8_t nat64[12] = {0, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0};
    int unspec_or_loopback = memcmp(a, compat, 12) == 0 && !a[12] && !a[13] && !a[14] && a[15] < 2;
    if (memcmp(a, mapped, 12) == 0 || (memcmp(a, compat, 12) == 0 && !unspec_or_loopback) ||
        memcmp(a, translated, 12) == 0 || memcmp(a, nat64, 12) == 0) {
        *v4 = v4_at(a + 12);
        return 1;
    }
    if (a[0] == 0x20 && a[1] == 0x02) {
        *v4 = v4_at(a + 2);
        return 1;
    }
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
        *v4 = ~v4_at(a + 12);
        return 1;
    }
    if ((a[8] & ~0x02) == 0 && a[9] == 0 && a[10] == 0x5E && a[11] == 0xFE) {
        *v4 = v4_at(a + 12);
        return 1;
    }
    return 0;
}

int netaddr_is_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return private_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family != AF_INET6)
        return 1; /* unix sockets and the like: never a fetch target */
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    uint32_t v4;
    if (embedded_v4(a, &v4))
        return private_v4(v4);
    static const uint8_t zero[16] = {0};
    if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1))
        return 1;                               /* :: and ::1 */
    if (a[0] == 0 && a[1] == 0x64 && a[2] == 0xFF && a[3] == 0x9B && a[4] == 0 && a[5] == 1)
        return 1; /* NAT64 for local use, 64:ff9b:1::/48 (RFC 8215) */
    return (a[0] & 0xFE) == 0xFC ||            /* ULA fc00::/7 */
           (a[0] == 0xFE && (a[1] & 0xC0) == 0x80) || /* link-local fe80::/10 */
           (a[0] == 0xFE && (a[1] & 0xC0) == 0xC0) || /* site-local fec0::/10 */
           a[0] == 0xFF;                        /* multicast */
}

static int parse_range(const char *s, struct netrange *r)
{
    char buf[64];
    if (strlen(s) >= sizeof(buf))
        return -1;
    strcpy(buf, s);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(r, 0, sizeof(*r));
    int max;
    if (inet_pton(AF_INET, buf, r->addr) == 1) {
        r->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, r->addr) == 1) {
        r->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    r->prefix = max;
    if (slash) {
        char *end;
        long v = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || v < 0 || v > max)
            return -1;
        r->prefix = (int)v;
    }
    return 0;
}

int netpolicy_parse(const char *s, struct netpolicy *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(s, "no") == 0 || strcmp(s, "") == 0)
        return 0;
    if (strcmp(s, "yes") == 0) {
        out->allow_all = 1;
        return 0;
    }
    const char *p = s;
    while (*p) {
        p += strspn(p, " \t,");
        if (!*p)
            break;
        size_t len = strcspn(p, " \t,");
        char item[64];
        if (len >= sizeof(item) || out->n == NETPOLICY_MAX_RANGES) {
            *why = len >= sizeof(item) ? "an address range is too long"
                                       : "more than 32 address ranges";
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (parse_range(item, &out->ranges[out->n]) < 0) {
            *why = "expected no, yes or a comma list of address ranges (10.0.0.0/8, fd00::/8)";
            return -1;
        }
        out->n++;
        p += len;
    }
    return 0;
}

static int in_ranges(const struct netpolicy *p, int family, const uint8_t *a)
{
    for (int i = 0; i < p->n; i++)
        if (p->ranges[i].family == family && in_prefix(a, p->ranges[i].addr, p->ranges[i].prefix))
            return 1;
    return 0;
}

/* A private IPv6 address carrying an IPv4 one is allowed by a range of
 * either form. */
int netpolicy_allows(const struct netpolicy *p, const struct sockaddr *sa)
{
    if (!netaddr_is_private(sa) || p->allow_all)
        return 1;
    if (sa->sa_family == AF_INET)
        return in_ranges(p, AF_INET, (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family != AF_INET6)
        return 0;
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    uint32_t e;
    if (embedded_v4(a, &e)) {
        uint32_t n = htonl(e);
        if (in_ranges(p, AF_INET, (const uint8_t *)&n))
            return 1;
    }
    return in_ranges(p, AF_INET6, a);
}
