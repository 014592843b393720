#include "topology.h"
#include "backoff.h"

#include <stdint.h>
#include <stdio.h>

#define RETRY_BASE_MS 1000
#define RETRY_MAX_MS 300000

void amqp_dead_queue(const char *q, char *out, size_t len)
{
    snprintf(out, len, "%s.dead", q);
}

void amqp_retry_queue(const char *q, int delay_ms, char *out, size_t len)
{
    snprintf(out, len, "%s.retry.%d", q, delay_ms);
}

int amqp_retry_delay_ms(int attempts)
{
    return (int)backoff_delay_ms((uint32_t)attempts, RETRY_BASE_MS, RETRY_MAX_MS, 0, 0);
}

int amqp_retry_delays(int max_attempts, int out[TOPOLOGY_MAX_DELAYS])
{
    int n = 0;
    for (int at = 1; at < max_attempts && n < TOPOLOGY_MAX_DELAYS; at++) {
        int delay = amqp_retry_delay_ms(at);
        if (n && delay == out[n - 1])
            break; /* at the cap: every later attempt waits as long */
        out[n++] = delay;
    }
    return n;
}
