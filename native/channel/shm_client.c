/*
 * shm_client.c - session setup and the request/reply loop of the client.
 *
 * Setup: memfd_create + ftruncate + seal (the server maps it, and a sealed
 * size means we cannot SIGBUS the server by shrinking it), an eventfd as the
 * server's doorbell, and one SOCK_SEQPACKET message to the module carrying
 * the token and both descriptors.  The socket then stays open: its hang-up is
 * how each side learns that the other is gone.
 *
 * A reply that arrives as a single record is handed out by pointer into the
 * ring and consumed on the next call; fragmented replies are gathered into a
 * growing buffer.
 */
#include "shm_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "shm_ring.h"
#include "shm_wait.h"

struct shm_client {
    struct shm_region_header *hdr;
    size_t size;
    int memfd, doorbell, sock;
    uint32_t ring_size, max_fragment;
    struct shm_ring_writer req;
    struct shm_ring_reader rep;
    struct shm_spin_policy policy;
    uint32_t liveness_us;
    int dead;                /* sticky SHM_E_CLOSED / SHM_E_PROTO */
    uint32_t deferred_len;   /* record handed out by pointer, consumed next call */
    int has_deferred;
    char *msg;               /* gathered fragments */
    size_t msg_cap;
    size_t msg_have;         /* of a reply still arriving (a wait that ended mid-reply) */
    char *batch;             /* replies gathered by shm_client_recv_many */
    size_t batch_cap;
    uint64_t max_reply;      /* bound on a gathered reply */
};

static int fail(char *err, size_t errlen, int status, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

const char *shm_client_strerror(int status) {
    switch (status) {
    case SHM_OK: return "ok";
    case SHM_E_TIMEOUT: return "timed out";
    case SHM_E_CLOSED: return "the server closed the shared-memory session";
    case SHM_E_PROTO: return "the shared-memory region is corrupt";
    case SHM_E_SYS: return strerror(errno);
    case SHM_E_REFUSED: return "the server refused the shared-memory session";
    case SHM_E_NOMEM: return "out of memory";
    case SHM_E_TOO_BIG: return "a reply larger than the client's limit";
    default: return "unknown error";
    }
}

static int create_region(struct shm_client *c, char *err, size_t errlen) {
    c->size = shm_region_size(c->ring_size);
    c->memfd = memfd_create("shmcli-session", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (c->memfd < 0) return fail(err, errlen, SHM_E_SYS, "memfd_create: %s", strerror(errno));
    if (ftruncate(c->memfd, (off_t)c->size) < 0)
        return fail(err, errlen, SHM_E_SYS, "ftruncate: %s", strerror(errno));
    void *base = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED, c->memfd, 0);
    if (base == MAP_FAILED) return fail(err, errlen, SHM_E_SYS, "mmap: %s", strerror(errno));
    c->hdr = base;
    c->hdr->magic = SHM_MAGIC;
    c->hdr->version = SHM_LAYOUT_VERSION;
    c->hdr->ring_size = c->ring_size;
    c->hdr->header_size = SHM_HEADER_SIZE;
    /* "no CPU yet": 0 would read as "waits on CPU 0" to the adaptive rules */
    atomic_store(&c->hdr->req.producer_cpu, -1);
    atomic_store(&c->hdr->req.consumer_cpu, -1);
    atomic_store(&c->hdr->rep.producer_cpu, -1);
    atomic_store(&c->hdr->rep.consumer_cpu, -1);
    if (fcntl(c->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        return fail(err, errlen, SHM_E_SYS, "sealing the region: %s", strerror(errno));
    char *rings = (char *)base + SHM_HEADER_SIZE;
    shm_ring_writer_init(&c->req, &c->hdr->req, rings, c->ring_size);
    shm_ring_reader_init(&c->rep, &c->hdr->rep, rings + c->ring_size, c->ring_size);
    c->doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->doorbell < 0) return fail(err, errlen, SHM_E_SYS, "eventfd: %s", strerror(errno));
    return SHM_OK;
}

static int hand_over(struct shm_client *c, const char *path, const char *token, int timeout_ms,
                     char *err, size_t errlen) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        return fail(err, errlen, SHM_E_SYS, "socket path too long: %s", path);
    strcpy(addr.sun_path, path);
    c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (c->sock < 0) return fail(err, errlen, SHM_E_SYS, "socket: %s", strerror(errno));
    if (connect(c->sock, (struct sockaddr *)&addr, sizeof addr) < 0)
        return fail(err, errlen, SHM_E_SYS, "connect %s: %s", path, strerror(errno));

    int fds[2] = {c->memfd, c->doorbell};
    char cbuf[CMSG_SPACE(sizeof fds)];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {.iov_base = (void *)token, .iov_len = strlen(token)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                         .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(cm), fds, sizeof fds);
    if (sendmsg(c->sock, &msg, MSG_NOSIGNAL) < 0)
        return fail(err, errlen, SHM_E_SYS, "sending the session: %s", strerror(errno));

    struct pollfd pfd = {.fd = c->sock, .events = POLLIN};
    int n;
    do n = poll(&pfd, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n == 0) return fail(err, errlen, SHM_E_TIMEOUT, "no answer from the shm module");
    char answer[256];
    ssize_t got = recv(c->sock, answer, sizeof answer - 1, 0);
    if (got <= 0) return fail(err, errlen, SHM_E_REFUSED, "the shm module closed the socket");
    answer[got] = '\0';
    if (strcmp(answer, "OK") != 0)
        return fail(err, errlen, SHM_E_REFUSED, "%s", answer);
    return SHM_OK;
}

int shm_client_open(const char *socket_path, const char *token, uint32_t ring_size,
                    int timeout_ms, struct shm_client **out, char *err, size_t errlen) {
    *out = NULL;
    if (!shm_ring_size_valid(ring_size))
        return fail(err, errlen, SHM_E_PROTO, "invalid ring size %u", ring_size);
    struct shm_client *c = calloc(1, sizeof *c);
    if (!c) return fail(err, errlen, SHM_E_NOMEM, "out of memory");
    c->memfd = c->doorbell = c->sock = -1;
    c->ring_size = ring_size;
    c->max_fragment = shm_max_fragment(ring_size);
    shm_client_set_wait(c, 50000, 5000, 100);
    c->max_reply = SHM_CLIENT_MAX_REPLY_DEFAULT;
    int rc = create_region(c, err, errlen);
    if (rc == SHM_OK) rc = hand_over(c, socket_path, token, timeout_ms, err, errlen);
    if (rc != SHM_OK) {
        shm_client_close(c);
        return rc;
    }
    *out = c;
    return SHM_OK;
}

void shm_client_close(struct shm_client *c) {
    if (!c) return;
    if (c->sock >= 0) close(c->sock);
    if (c->doorbell >= 0) close(c->doorbell);
    if (c->memfd >= 0) close(c->memfd);
    if (c->hdr) munmap(c->hdr, c->size);
    free(c->msg);
    free(c->batch);
    free(c);
}

void shm_client_set_wait(struct shm_client *c, uint32_t spin_ns, uint32_t adapt_ns,
                         uint32_t liveness_ms) {
    c->policy.spin_ns = spin_ns;
    c->policy.adapt_ns = adapt_ns;
    c->liveness_us = (liveness_ms ? liveness_ms : 1) * 1000u;
}

void shm_client_set_max_reply(struct shm_client *c, uint64_t max_reply) {
    c->max_reply = max_reply ? max_reply : SHM_CLIENT_MAX_REPLY_DEFAULT;
}

uint32_t shm_client_spin_ns(const struct shm_client *c) { return c->policy.spin_ns; }

void shm_client_set_spin_ns(struct shm_client *c, uint32_t spin_ns) { c->policy.spin_ns = spin_ns; }

void *shm_client_region(struct shm_client *c, size_t *size) {
    *size = c->size;
    return c->hdr;
}

int shm_client_doorbell_fd(struct shm_client *c) { return c->doorbell; }

/* Read and drop the server's wake-up messages (SHM_WAITING_SOCKET); 0 when
   the socket says the server ended the session (EOF, hang-up, error). */
static int drain_wakes(struct shm_client *c) {
    char buf[64];
    for (;;) {
        ssize_t n = recv(c->sock, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

/* The server is gone when it said so in the header or its socket hung up. */
static int server_alive(struct shm_client *c) {
    if (atomic_load_explicit(&c->hdr->server_closed, memory_order_acquire)) return 0;
    struct pollfd pfd = {.fd = c->sock, .events = POLLIN | POLLRDHUP};
    if (poll(&pfd, 1, 0) == 0) return 1;
    if (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 0;
    return drain_wakes(c); /* a wake-up message left from an asynchronous wait */
}

static uint64_t deadline_of(int64_t timeout_ms) {
    return timeout_ms < 0 ? UINT64_MAX : shm_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/* Wait until *word moves from `seen`.  `my_waiting` is our sleep flag in the
   same ring.  The server wakes us with FUTEX_WAKE on `word` when it sees the
   flag; every sleep is bounded so liveness and the deadline are re-checked. */
static int wait_for_change(struct shm_client *c, _Atomic uint32_t *word, uint32_t seen,
                           _Atomic uint32_t *my_waiting, _Atomic int32_t *my_cpu,
                           uint64_t deadline) {
    struct shm_peer_view peer = {&c->hdr->req.consumer_waiting, &c->hdr->req.consumer_cpu,
                                 my_cpu};
    if (shm_spin_while_equal(word, seen, &c->policy, &peer) != seen) return SHM_OK;
    shm_publish_cpu(my_cpu);
    for (;;) {
        atomic_store_explicit(my_waiting, 1, memory_order_seq_cst);
        if (atomic_load_explicit(word, memory_order_seq_cst) != seen) break;
        uint64_t now = shm_now_ns();
        if (now >= deadline) {
            atomic_store_explicit(my_waiting, 0, memory_order_relaxed);
            return SHM_E_TIMEOUT;
        }
        uint64_t left_us = (deadline - now) / 1000u + 1;
        shm_futex_wait(word, seen, left_us < c->liveness_us ? (uint32_t)left_us : c->liveness_us);
        if (atomic_load_explicit(word, memory_order_acquire) != seen) break;
        if (!server_alive(c)) {
            atomic_store_explicit(my_waiting, 0, memory_order_relaxed);
            return c->dead = SHM_E_CLOSED;
        }
    }
    atomic_store_explicit(my_waiting, 0, memory_order_relaxed);
    return SHM_OK;
}

static inline void ring_if_server_sleeps(struct shm_client *c, _Atomic uint32_t *flag) {
    if (atomic_load_explicit(flag, memory_order_seq_cst)) shm_doorbell_ring(c->doorbell);
}

static void release_deferred(struct shm_client *c) {
    if (!c->has_deferred) return;
    c->has_deferred = 0;
    shm_ring_consume(&c->rep, c->deferred_len);
    ring_if_server_sleeps(c, &c->hdr->rep.producer_waiting);
}

/* Write one message into the request ring, fragmenting it; rings the
   doorbell only when `ring` says so (and before waiting for space, so a
   sleeping server drains what is there). */
static int write_message(struct shm_client *c, uint32_t kind, const char *buf, size_t len,
                         uint64_t deadline, int ring) {
    size_t off = 0;
    do {
        size_t left = len - off;
        uint32_t frag = left > c->max_fragment ? c->max_fragment : (uint32_t)left;
        uint32_t type = kind | (left > frag ? SHM_REC_MORE : 0);
        int r = shm_ring_write(&c->req, type, buf + off, frag);
        if (r == 1) {
            off += frag;
            if (ring) ring_if_server_sleeps(c, &c->hdr->req.consumer_waiting);
        } else if (r == 0) {
            uint32_t head = atomic_load_explicit(&c->hdr->req.head, memory_order_acquire);
            if (head != c->req.head_cache) continue; /* space appeared meanwhile */
            ring_if_server_sleeps(c, &c->hdr->req.consumer_waiting);
            int w = wait_for_change(c, &c->hdr->req.head, head, &c->hdr->req.producer_waiting,
                                    &c->hdr->req.producer_cpu, deadline);
            if (w != SHM_OK) return w;
        } else {
            return c->dead = SHM_E_PROTO;
        }
    } while (off < len);
    return SHM_OK;
}

static int writable(struct shm_client *c) {
    if (c->dead) return c->dead;
    if (atomic_load_explicit(&c->hdr->server_closed, memory_order_acquire))
        return c->dead = SHM_E_CLOSED; /* nobody would read it */
    release_deferred(c);
    return SHM_OK;
}

int shm_client_send(struct shm_client *c, uint32_t kind, const char *buf, size_t len,
                    int64_t timeout_ms) {
    int rc = writable(c);
    if (rc != SHM_OK) return rc;
    return write_message(c, kind, buf, len, deadline_of(timeout_ms), 1);
}

int shm_client_send_batch(struct shm_client *c, const char *buf, const size_t *lens, size_t n,
                          int64_t timeout_ms) {
    int rc = writable(c);
    if (rc != SHM_OK) return rc;
    uint64_t deadline = deadline_of(timeout_ms);
    for (size_t i = 0; i < n; i++) {
        /* The first wakes a sleeping server; the rest are in the ring by the
           time it looks (one doorbell, not one per request). */
        rc = write_message(c, SHM_REC_REQUEST, buf, lens[i], deadline, i == 0);
        if (rc != SHM_OK) return rc;
        buf += lens[i];
    }
    ring_if_server_sleeps(c, &c->hdr->req.consumer_waiting);
    return SHM_OK;
}

static int append(struct shm_client *c, size_t *have, const char *p, uint32_t n) {
    if (*have + n > c->max_reply) return c->dead = SHM_E_TOO_BIG;
    if (*have + n > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 4096;
        while (cap < *have + n) cap *= 2;
        char *grown = realloc(c->msg, cap);
        if (!grown) return SHM_E_NOMEM;
        c->msg = grown;
        c->msg_cap = cap;
    }
    memcpy(c->msg + *have, p, n);
    *have += n;
    return SHM_OK;
}

/* One reply.  A reply that is still arriving when the wait ends stays
   gathered in c->msg and is completed by the next call.  wait == 0: return
   SHM_E_AGAIN at once when nothing (more) is in the ring. */
static int recv_reply(struct shm_client *c, const char **reply, size_t *reply_len,
                      uint64_t deadline, int wait) {
    if (c->dead) return c->dead;
    release_deferred(c);
    for (;;) {
        uint32_t type, len;
        const char *payload;
        int r = shm_ring_peek(&c->rep, &type, &payload, &len);
        if (r == 1) {
            if (SHM_REC_KIND(type) != SHM_REC_REPLY) return c->dead = SHM_E_PROTO;
            if (!(type & SHM_REC_MORE) && c->msg_have == 0) {
                c->has_deferred = 1;
                c->deferred_len = len;
                *reply = payload;
                *reply_len = len;
                return SHM_OK;
            }
            int rc = append(c, &c->msg_have, payload, len);
            if (rc != SHM_OK) return rc;
            shm_ring_consume(&c->rep, len);
            ring_if_server_sleeps(c, &c->hdr->rep.producer_waiting);
            if (!(type & SHM_REC_MORE)) {
                *reply = c->msg;
                *reply_len = c->msg_have;
                c->msg_have = 0;
                return SHM_OK;
            }
        } else if (r == 0) {
            if (!wait) return SHM_E_AGAIN;
            int w = wait_for_change(c, &c->hdr->rep.tail, c->rep.head,
                                    &c->hdr->rep.consumer_waiting, &c->hdr->rep.consumer_cpu,
                                    deadline);
            if (w != SHM_OK) return w;
        } else {
            return c->dead = SHM_E_PROTO;
        }
    }
}

int shm_client_recv(struct shm_client *c, const char **reply, size_t *reply_len,
                    int64_t timeout_ms) {
    return recv_reply(c, reply, reply_len, deadline_of(timeout_ms), 1);
}

int shm_client_recv_many(struct shm_client *c, size_t n, const char *stop, size_t stop_len,
                         const char **out, size_t *out_len, size_t *got, int *stopped,
                         int64_t timeout_ms, int wait) {
    uint64_t deadline = deadline_of(timeout_ms);
    size_t have = 0;
    *got = 0;
    *stopped = 0;
    while (*got < n && have < SHM_CLIENT_RECV_MANY_BYTES) {
        if (*got) {
            /* Only the first is waited for: the caller parses these while
               the server produces the rest (a pipeline overlaps both sides). */
            release_deferred(c);
            if (!shm_ring_has_data(&c->rep)) break;
        }
        const char *reply;
        size_t len;
        int rc = recv_reply(c, &reply, &len, deadline, wait);
        if (rc == SHM_E_AGAIN && *got == 0) return rc;
        if (rc == SHM_E_AGAIN) break; /* the rest of a reply is still arriving */
        if (rc != SHM_OK) return rc;
        if (len >= stop_len && memcmp(reply, stop, stop_len) == 0) {
            *stopped = 1; /* consumed, not handed out: the caller knows which it was */
            break;
        }
        if (have + len > c->batch_cap) {
            size_t cap = c->batch_cap ? c->batch_cap : 4096;
            while (cap < have + len) cap *= 2;
            char *grown = realloc(c->batch, cap);
            if (!grown) return c->dead = SHM_E_NOMEM; /* a reply is lost: out of step */
            c->batch = grown;
            c->batch_cap = cap;
        }
        memcpy(c->batch + have, reply, len);
        have += len;
        (*got)++;
    }
    *out = have ? c->batch : "";
    *out_len = have;
    return SHM_OK;
}

int shm_client_arm_socket_wake(struct shm_client *c) {
    if (c->dead) return c->dead;
    release_deferred(c);
    atomic_store_explicit(&c->hdr->rep.consumer_waiting, SHM_WAITING_SOCKET,
                          memory_order_seq_cst);
    if (shm_ring_has_data(&c->rep)) { /* it came meanwhile: no message will */
        atomic_store_explicit(&c->hdr->rep.consumer_waiting, 0, memory_order_relaxed);
        return 1;
    }
    /* Not server_alive(): it would drain a message sent since the check.
       A hang-up makes the socket readable too, and the disarm sees it. */
    if (atomic_load_explicit(&c->hdr->server_closed, memory_order_acquire))
        return c->dead = SHM_E_CLOSED;
    return SHM_OK;
}

int shm_client_disarm_socket_wake(struct shm_client *c) {
    atomic_store_explicit(&c->hdr->rep.consumer_waiting, 0, memory_order_relaxed);
    if (c->dead) return c->dead;
    if (atomic_load_explicit(&c->hdr->server_closed, memory_order_acquire) || !drain_wakes(c))
        return c->dead = SHM_E_CLOSED;
    return SHM_OK;
}

int shm_client_control_fd(struct shm_client *c) { return c->sock; }

int shm_client_call(struct shm_client *c, const char *req, size_t req_len, const char **reply,
                    size_t *reply_len, int64_t timeout_ms) {
    int rc = shm_client_send(c, SHM_REC_REQUEST, req, req_len, timeout_ms);
    if (rc != SHM_OK) return rc;
    return shm_client_recv(c, reply, reply_len, timeout_ms);
}
