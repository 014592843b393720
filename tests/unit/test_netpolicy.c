/* The private-address policy of fetches, uploads and callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "../../common/netpolicy.h"

static int allows(const struct netpolicy *p, const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    }
    return netpolicy_allows(p, (struct sockaddr *)&ss);
}

static void test_default_blocks_private(void **state)
{
    (void)state;
    struct netpolicy p;
    const char *why;
    assert_int_equal(netpolicy_parse("no", &p, &why), 0);
    static const char *const blocked[] = {
        "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "169.254.169.254", "100.64.0.1", "100.127.255.254", "0.0.0.0", "224.0.0.1",
        "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", NULL};
    for (const char *const *ip = blocked; *ip; ip++)
        if (allows(&p, *ip))
            fail_msg("%s allowed", *ip);
    static const char *const open[] = {"8.8.8.8",   "172.32.0.1", "100.128.0.1", "1.1.1.1",
                                       "2606:4700::1111", "::ffff:8.8.8.8", NULL};
    for (const char *const *ip = open; *ip; ip++)
        if (!allows(&p, *ip))
            fail_msg("%s refused", *ip);
}

/* Every form of an IPv4 address inside an IPv6 one is judged as the IPv4
 * address: [::127.0.0.1] (compatible) used to pass as public. */
static void test_ipv4_inside_ipv6(void **state)
{
    (void)state;
    struct netpolicy p;
    const char *why;
    assert_int_equal(netpolicy_parse("no", &p, &why), 0);
    static const struct {
        const char *ip;
        int allowed;
    } cases[] = {
        {"::ffff:127.0.0.1", 0},          {"::ffff:8.8.8.8", 1},         /* mapped */
        {"::127.0.0.1", 0},               {"::10.1.2.3", 0},             /* compatible */
        {"::8.8.8.8", 1},                 {"::169.254.169.254", 0},
        {"::ffff:0:127.0.0.1", 0},        {"::ffff:0:8.8.8.8", 1},       /* translated */
        {"64:ff9b::7f00:1", 0},           {"64:ff9b::808:808", 1},       /* NAT64 */
        {"64:ff9b:1::808:808", 0},                                       /* NAT64 local */
        {"2002:7f00:1::1", 0},            {"2002:a9fe:a9fe::", 0},       /* 6to4 */
        {"2002:808:808::1", 1},
        {"2001:0:4136:e378:8000:63bf:80ff:fffe", 0}, /* Teredo, client 127.0.0.1 */
        {"2001:0:4136:e378:8000:63bf:f7f7:f7f7", 1}, /* Teredo, client 8.8.8.8 */
        {"2001:db8::5efe:7f00:1", 0},     {"fe80::200:5efe:a00:1", 0},   /* ISATAP */
        {"2606:4700::5efe:808:808", 1},
        {"2606:4700:4700::1111", 1},      {"2001:4860:4860::8888", 1},   /* plain public */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (allows(&p, cases[i].ip) != cases[i].allowed)
            fail_msg("%s: %s", cases[i].ip, cases[i].allowed ? "refused" : "allowed");
    /* An allowed IPv4 range allows its IPv6 forms too. */
    assert_int_equal(netpolicy_parse("127.0.0.0/8", &p, &why), 0);
    assert_true(allows(&p, "::127.0.0.1"));
    assert_true(allows(&p, "2002:7f00:1::1"));
    assert_false(allows(&p, "::10.1.2.3"));
    /* ::1 stays IPv6's loopback: an IPv6 range names it. */
    assert_int_equal(netpolicy_parse("::1/128", &p, &why), 0);
    assert_true(allows(&p, "::1"));
    assert_false(allows(&p, "::127.0.0.1"));
}

static void test_ranges(void **state)
{
    (void)state;
    struct netpolicy p;
    const char *why;
    assert_int_equal(netpolicy_parse("yes", &p, &why), 0);
    assert_true(allows(&p, "127.0.0.1"));
    assert_int_equal(netpolicy_parse("127.0.0.1/32, 10.20.0.0/16,fd00::/8", &p, &why), 0);
    assert_int_equal(p.n, 3);
    assert_true(allows(&p, "127.0.0.1"));
    assert_false(allows(&p, "127.0.0.2"));
    assert_true(allows(&p, "10.20.99.1"));
    assert_false(allows(&p, "10.21.0.1"));
    assert_true(allows(&p, "fd00::5"));
    assert_false(allows(&p, "fc00::5"));
    assert_true(allows(&p, "::ffff:127.0.0.1")); /* judged as IPv4 */
    assert_true(allows(&p, "9.9.9.9"));
    assert_int_equal(netpolicy_parse("10.0.0.0/33", &p, &why), -1);
    assert_int_equal(netpolicy_parse("maybe", &p, &why), -1);
    assert_int_equal(netpolicy_parse("10.0.0.0/", &p, &why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_blocks_private),
        cmocka_unit_test(test_ipv4_inside_ipv6),
        cmocka_unit_test(test_ranges),
    };
    return cmocka_run_group_tests_name("netpolicy", tests, NULL, NULL);
}
