/*
 * Which addresses a worker may connect to when it fetches a URL, uploads audio or
 * posts a callback: `[fetch] allow_private`.
 *
 * Private addresses (loopback, RFC 1918, link-local, CGNAT, ULA, multicast,
 * reserved and the unspecified address, IPv4 inside IPv6 included) are refused
 * unless the policy allows them: "no" allows none, "yes" all, and a comma list
 * of CIDR ranges ("10.20.0.0/16, fd00::/8") exactly those. Public addresses are
 * always allowed. The check is made on the address a socket is about to connect
 * to, so DNS answers and redirects cannot get around it.
 */
#ifndef C2A_NETPOLICY_H
#define C2A_NETPOLICY_H

#include <stdint.h>
#include <sys/socket.h>

#define NETPOLICY_MAX_RANGES 32

struct netrange {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
};

struct netpolicy {
    int allow_all;
    int n;
    struct netrange ranges[NETPOLICY_MAX_RANGES];
};

/* 0, or -1 with a reason. */
int netpolicy_parse(const char *s, struct netpolicy *out, const char **why);
/* 1 when the address is in one of the private ranges above. */
int netaddr_is_private(const struct sockaddr *sa);
/* 1 when a connection to sa is allowed. */
int netpolicy_allows(const struct netpolicy *p, const struct sockaddr *sa);

#endif
