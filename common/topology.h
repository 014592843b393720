/*
 * The names of the queues a work queue brings with it, shared by the workers
 * (which declare them), the master's queue probe (which asks their depths) and
 * c2actl: <q>.dead for dead letters, and one delay queue <q>.retry.<ms> per
 * distinct delay between attempts.
 */
#ifndef C2A_TOPOLOGY_H
#define C2A_TOPOLOGY_H

#include <stddef.h>

/* The most distinct delays there are (1 s doubling to 5 min). */
#define TOPOLOGY_MAX_DELAYS 16

void amqp_dead_queue(const char *q, char *out, size_t len);
void amqp_retry_queue(const char *q, int delay_ms, char *out, size_t len);
/* Delay before attempt n+1 (n >= 1): 1 s doubling to 5 min. */
int amqp_retry_delay_ms(int attempts);
/* The distinct delays for max_attempts, in order, into out (at most
 * TOPOLOGY_MAX_DELAYS); returns how many. */
int amqp_retry_delays(int max_attempts, int out[TOPOLOGY_MAX_DELAYS]);

#endif
