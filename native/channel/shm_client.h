/*
 * shm_client.h - the client end of a shared-memory session.
 *
 * Used by the cffi binding (shmcli/_channel) and by the C benchmark client.
 * The caller has already authenticated on a normal Redis connection and got a
 * one-time token and the module's socket path from SHM.HANDSHAKE; this code
 * creates the sealed memfd and the doorbell eventfd, hands them over with the
 * token, and then moves RESP messages through the rings.  Every wait is
 * bounded and re-checks that the server is alive, so a dead server is an
 * error code, never a hang.
 */
#ifndef SHM_CLIENT_H
#define SHM_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "shm_layout.h"

enum shm_client_status {
    SHM_OK = 0,
    SHM_E_TIMEOUT = -1, /* the caller's deadline passed; the session is still usable */
    SHM_E_CLOSED = -2,  /* the server ended the session or died */
    SHM_E_PROTO = -3,   /* the shared region is corrupt; the session is unusable */
    SHM_E_SYS = -4,     /* a system call failed; errno tells */
    SHM_E_REFUSED = -5, /* the module refused the session (message in err) */
    SHM_E_NOMEM = -6,
    SHM_E_TOO_BIG = -7, /* a reply over the client's limit; the session is unusable */
    SHM_E_AGAIN = -8,   /* (no-wait calls) nothing there yet */
};

/* Replies are gathered whole; one larger than this ends the session, as the
   server ends one whose unread replies pass shm.output-limit. */
#define SHM_CLIENT_MAX_REPLY_DEFAULT (1ull << 30)

struct shm_client;

/* Open a session.  ring_size must be what SHM.HANDSHAKE announced.
   timeout_ms bounds the whole setup.  On failure returns a status and writes
   a one-line reason into err. */
int shm_client_open(const char *socket_path, const char *token, uint32_t ring_size,
                    int timeout_ms, struct shm_client **out, char *err, size_t errlen);
void shm_client_close(struct shm_client *c);

/* Tune the reply wait: spin at most spin_ns, stop after adapt_ns of the
   server looking asleep (0 disables that rule); kernel waits last at most
   liveness_ms before the server's liveness is re-checked. */
void shm_client_set_wait(struct shm_client *c, uint32_t spin_ns, uint32_t adapt_ns,
                         uint32_t liveness_ms);

/* The largest reply gathered (bytes); 0 restores the default. */
void shm_client_set_max_reply(struct shm_client *c, uint64_t max_reply);

/* The spin budget alone (a latency probe widens it for its own wait). */
uint32_t shm_client_spin_ns(const struct shm_client *c);
void shm_client_set_spin_ns(struct shm_client *c, uint32_t spin_ns);

/* Send one message of the given kind (SHM_REC_REQUEST or SHM_REC_RESUME),
   fragmenting it as needed.  timeout_ms < 0 waits as long as the server
   lives. */
int shm_client_send(struct shm_client *c, uint32_t kind, const char *buf, size_t len,
                    int64_t timeout_ms);

/* Send n requests, back to back in buf (request i is lens[i] bytes), with
   one doorbell for the batch instead of one per request.  Errors as for
   shm_client_send; on an error, how many went is unknown (the session is
   then over). */
int shm_client_send_batch(struct shm_client *c, const char *buf, const size_t *lens, size_t n,
                          int64_t timeout_ms);

/* Receive one reply message.  *reply stays valid until the next call on c. */
int shm_client_recv(struct shm_client *c, const char **reply, size_t *reply_len,
                    int64_t timeout_ms);

/* Receive up to n replies, back to back in one buffer (*out, valid until
   the next call on c): *got of them.  Waits for the first only (not at
   all when wait == 0: SHM_E_AGAIN if none is there), then takes those
   already in the ring.  Stops early, with *stopped set, at a reply
   that starts with `stop` (consumed, not in *out), and once
   SHM_CLIENT_RECV_MANY_BYTES are gathered; call again for the rest.  An
   error after some replies were consumed leaves the session out of step:
   close it. */
#define SHM_CLIENT_RECV_MANY_BYTES (1u << 20)
int shm_client_recv_many(struct shm_client *c, size_t n, const char *stop, size_t stop_len,
                         const char **out, size_t *out_len, size_t *got, int *stopped,
                         int64_t timeout_ms, int wait);

/* Waiting from an event loop (asyncio), which must not block: arm asks the
   server to send one message on the session's socket (shm_client_control_fd)
   with the next reply; it returns 1 instead when a reply came meanwhile (no
   message will).  Once the socket is readable, or the wait is given up,
   disarm reads the messages; SHM_E_CLOSED when the socket says the server
   ended the session. */
int shm_client_arm_socket_wake(struct shm_client *c);
int shm_client_disarm_socket_wake(struct shm_client *c);
int shm_client_control_fd(struct shm_client *c);

/* send + recv in one call: the common round trip, one crossing from Python. */
int shm_client_call(struct shm_client *c, const char *req, size_t req_len, const char **reply,
                    size_t *reply_len, int64_t timeout_ms);

/* The mapped region (for diagnostics and the hostile-client tests). */
void *shm_client_region(struct shm_client *c, size_t *size);
int shm_client_doorbell_fd(struct shm_client *c);

const char *shm_client_strerror(int status);

#endif
