/*
 * Exponential backoff with jitter, as a pure function so that every user (worker
 * respawn after boot failures, broker reconnects, job retries) computes delays the
 * same way and the unit tests can pin the numbers.
 */
#ifndef C2A_BACKOFF_H
#define C2A_BACKOFF_H

#include <stdint.h>

/* Delay before attempt number `failures` + 1, after `failures` (>= 1) consecutive
 * failures: base_ms * 2^(failures-1), capped at max_ms, then moved by up to
 * +/- jitter_pct percent using `rnd` (any 32-bit random value). 0 failures: 0. */
uint32_t backoff_delay_ms(uint32_t failures, uint32_t base_ms, uint32_t max_ms,
                          uint32_t jitter_pct, uint32_t rnd);

#endif
