/*
 * Publisher confirms outstanding on one channel. RabbitMQ numbers a channel's
 * publishes 1, 2, 3, ... and confirms them with basic.ack / basic.nack, either
 * one tag or, with `multiple`, every tag up to and including it. Confirms can
 * come out of order when one channel publishes to several queues: a single ack
 * for 7 may come before a multiple ack for 6 that still settles 1..6. So the set
 * of unconfirmed numbers is kept exactly, never a high-water mark.
 *
 * Pure bookkeeping, no I/O: the unit tests replay the broker's sequences.
 */
#ifndef C2A_CONFIRMS_H
#define C2A_CONFIRMS_H

#include <stddef.h>
#include <stdint.h>

struct confirms {
    uint64_t *seq; /* unconfirmed, ascending */
    size_t n, cap;
};

/* A publish numbered seq; numbers must be given in ascending order. */
void confirms_add(struct confirms *c, uint64_t seq);

/* Take the numbers a basic.ack/nack of tag settles out of the set: tag alone, or
 * with multiple every outstanding number <= tag. They are written to *out (a
 * malloc'd array the caller frees; NULL when none) and counted in the return
 * value. A tag that is not outstanding (already settled, or never published)
 * settles nothing. The set is updated before the caller acts on them, so the
 * caller may publish (confirms_add) while it goes through *out. */
size_t confirms_take(struct confirms *c, uint64_t tag, int multiple, uint64_t **out);

/* Forget every outstanding number (the channel is gone). */
void confirms_reset(struct confirms *c);
void confirms_free(struct confirms *c);

#endif
