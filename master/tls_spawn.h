/* Starting the queue probe's TLS relay; see tls_relay.h. */
#ifndef C2A_TLS_SPAWN_H
#define C2A_TLS_SPAWN_H

#include "tls_relay.h"

#include <stddef.h>
#include <sys/types.h>

/* Fork a relay for a (a->fd is ignored). Returns the master's end of the
 * socketpair (blocking, close-on-exec) and the relay's pid, which the caller
 * must kill or see reaped; -1 with the reason in err. */
int tls_spawn(const struct tls_relay_args *a, pid_t *pid, char *err, size_t errlen);

#endif
