/*
 * shm_probe.c - one latency probe (send PING, wait, read the reply) timed in
 * C, over a shared-memory session or over a socket.
 *
 * redis-cli times its probes in C around the transport alone.  Timed from
 * Python, a probe every 10 ms measured the interpreter running cold (the
 * connection layer, the encoder and the reader) more than the transport,
 * and shared memory looked slower than redis-cli's socket.  Here the clock
 * is read just before the request is written and just after the reply's
 * last byte arrived, the same span for every transport, so `--latency` and
 * `--latency-compare` report the transport's figure.
 *
 * While the reply is due the probe spins, bounded by spin_ns (the session's
 * own adaptive rules still stop it at once when the server waits on our
 * CPU), and then waits in the kernel.  The reply is handed back whole, to be
 * parsed after the clock stopped.
 */
#include "shm_probe.h"

#include <errno.h>
#include <sched.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "shm_wait.h"

static const char ping[] = "*1\r\n$4\r\nPING\r\n";

int shm_probe_session(struct shm_client *c, uint32_t spin_ns, int64_t timeout_ms,
                      uint64_t *elapsed_ns, const char **reply, size_t *reply_len) {
    uint32_t usual = shm_client_spin_ns(c);
    if (spin_ns > usual) shm_client_set_spin_ns(c, spin_ns);
    uint64_t start = shm_now_ns();
    int rc = shm_client_call(c, ping, sizeof ping - 1, reply, reply_len, timeout_ms);
    *elapsed_ns = shm_now_ns() - start;
    shm_client_set_spin_ns(c, usual);
    return rc;
}

/* A PING's reply is one line: a status, an error, or (RESP3 pushes aside,
   which a probing connection does not enable) nothing else.  1 when buf
   holds a whole one, 0 when more must come, -1 when it is something else. */
static int one_line_reply(const char *buf, size_t len) {
    if (len == 0) return 0;
    if (buf[0] != '+' && buf[0] != '-') return -1;
    const char *lf = memchr(buf, '\n', len);
    if (!lf) return 0;
    return ((size_t)(lf - buf) + 1 == len && lf > buf && lf[-1] == '\r') ? 1 : -1;
}

static int wait_for(int fd, short events, uint64_t deadline_ns) {
    for (;;) {
        int wait_ms = -1;
        if (deadline_ns) {
            uint64_t now = shm_now_ns();
            if (now >= deadline_ns) return SHM_E_TIMEOUT;
            wait_ms = (int)((deadline_ns - now + 999999u) / 1000000u);
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, wait_ms);
        if (n > 0) return SHM_OK;
        if (n < 0 && errno != EINTR) return SHM_E_SYS;
    }
}

static int socket_round_trip(int fd, uint32_t spin_ns, uint64_t start, uint64_t deadline,
                             char *reply, size_t cap, size_t *reply_len) {
    size_t sent = 0;
    while (sent < sizeof ping - 1) {
        ssize_t n = send(fd, ping + sent, sizeof ping - 1 - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_for(fd, POLLOUT, deadline);
            if (rc != SHM_OK) return rc;
        } else if (n < 0 && errno != EINTR) {
            return SHM_E_CLOSED;
        }
    }
    for (;;) {
        ssize_t n = recv(fd, reply + *reply_len, cap - *reply_len, MSG_DONTWAIT);
        if (n > 0) {
            *reply_len += (size_t)n;
            int whole = one_line_reply(reply, *reply_len);
            if (whole) return whole > 0 ? SHM_OK : SHM_E_PROTO;
            if (*reply_len == cap) return SHM_E_PROTO;
            continue;
        }
        if (n == 0) return SHM_E_CLOSED;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return SHM_E_CLOSED;
        if (shm_now_ns() - start < spin_ns) {
            /* Yield, not just pause: a server on this CPU runs now instead of
               after the spin (we cannot see its CPU, as the session can). */
            sched_yield();
            continue;
        }
        int rc = wait_for(fd, POLLIN, deadline);
        if (rc != SHM_OK) return rc;
    }
}

int shm_probe_socket(int fd, uint32_t spin_ns, int64_t timeout_ms, uint64_t *elapsed_ns,
                     char *reply, size_t cap, size_t *reply_len) {
    *reply_len = 0;
    uint64_t start = shm_now_ns();
    uint64_t deadline = timeout_ms < 0 ? 0 : start + (uint64_t)timeout_ms * 1000000u;
    int rc = socket_round_trip(fd, spin_ns, start, deadline, reply, cap, reply_len);
    *elapsed_ns = shm_now_ns() - start;
    return rc;
}
