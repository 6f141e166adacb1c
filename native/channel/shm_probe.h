/*
 * shm_probe.h - latency probes timed in C (see shm_probe.c): one PING round
 * trip, over a shared-memory session or a connected socket, in nanoseconds.
 */
#ifndef SHM_PROBE_H
#define SHM_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "shm_client.h"

/* A PING through the session, spinning up to spin_ns (or the session's own
   budget, if larger; its adaptive rules still apply) before the kernel
   wait.  *reply as for shm_client_call.  *elapsed_ns is set whatever the
   result. */
int shm_probe_session(struct shm_client *c, uint32_t spin_ns, int64_t timeout_ms,
                      uint64_t *elapsed_ns, const char **reply, size_t *reply_len);

/* A PING over the connected stream socket fd, which must have nothing
   unread: spins up to spin_ns for the reply, then polls; timeout_ms < 0
   waits as long as the connection lives.  The bytes read go to
   reply[0, *reply_len).  SHM_OK: they are one whole one-line reply;
   SHM_E_PROTO: they are the start of another kind of reply (the caller
   reads the rest); SHM_E_CLOSED, SHM_E_TIMEOUT, SHM_E_SYS.  *elapsed_ns is
   set whatever the result. */
int shm_probe_socket(int fd, uint32_t spin_ns, int64_t timeout_ms, uint64_t *elapsed_ns,
                     char *reply, size_t cap, size_t *reply_len);

#endif
