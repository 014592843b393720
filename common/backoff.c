#include "backoff.h"

uint32_t backoff_delay_ms(uint32_t failures, uint32_t base_ms, uint32_t max_ms,
                          uint32_t jitter_pct, uint32_t rnd)
{
    if (failures == 0 || base_ms == 0)
        return 0;
    uint64_t d = base_ms;
    for (uint32_t i = 1; i < failures && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    if (jitter_pct > 100)
        jitter_pct = 100;
    uint64_t span = d * jitter_pct / 100; /* jitter covers [d - span, d + span] */
    if (span) {
        uint64_t off = rnd % (2 * span + 1);
        d = d - span + off;
    }
    return (uint32_t)d;
}
