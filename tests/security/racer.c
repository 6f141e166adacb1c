/*
 * racer.c - a hostile shared-memory client that rewrites its own request
 * while the server handles it (the double-fetch attack of issue 9).
 *
 * It opens a session the way any local process can (its own sealed memfd and
 * eventfd, the token from SHM.HANDSHAKE), then for a bounded number of
 * attempts writes one request record and, from a second thread, rewrites the
 * record's payload between two variants of the same length as fast as it can
 * (whole aligned 64-bit words, so most copies are one variant or the other)
 * until the reply arrives.  Only the layout (shm_layout.h) is shared with the
 * project: the ring operations are written here, as an attacker would.
 *
 * usage: racer PATH TOKEN RING [options]
 *   --semaphore        make the doorbell with EFD_SEMAPHORE (hello only)
 *   --attempts N       at most N attempts (default 20000)
 *   --millis MS        and at most MS milliseconds (default 3000)
 *   --a HEX --b HEX    the two variants (hex of RESP requests, same length)
 *   --probe HEX        a request sent (unraced) after every attempt
 *   --final HEX        a request sent once after the race (repeatable)
 *
 * Output, one fact per line:
 *   HELLO <answer>                  the module's answer to the hello
 *   REPLY <count> <hex>             each distinct reply (first 256 bytes)
 *   PROBE <count> <hex>             each distinct reply to the probe
 *   FINAL <hex>                     the reply to each --final request
 *   DONE <attempts> <closed>        closed = 1 when the server ended the session
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shm_layout.h"

#define MAX_KINDS 64
#define KEEP 256

static struct shm_region_header *hdr;
static char *req_data, *rep_data;
static uint32_t cap, req_tail, rep_head;
static int doorbell, sock;

/* ---- the flipping thread ---- */

static _Atomic(volatile uint64_t *) target;
static _Atomic int active, busy, quit;
/* The variants as aligned 64-bit words (a payload starts 8-aligned in the
   ring and its record is padded to 8), and the indexes of the words that
   differ: each word switches in one store, so the copy the server takes is
   A or B far more often than a torn mix (torn mixes are tried too). */
static uint64_t *words_a, *words_b;
static size_t diff[512], ndiff;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *flipper(void *unused) {
    (void)unused;
    while (!atomic_load(&quit)) {
        atomic_store(&busy, 1);
        if (!atomic_load(&active)) { /* seq_cst both ways: see stop_flipping */
            atomic_store(&busy, 0);
            cpu_relax();
            continue;
        }
        volatile uint64_t *p = atomic_load(&target);
        while (atomic_load_explicit(&active, memory_order_relaxed)) {
            for (size_t i = 0; i < ndiff; i++) p[diff[i]] = words_b[diff[i]];
            for (size_t i = 0; i < ndiff; i++) p[diff[i]] = words_a[diff[i]];
        }
        atomic_store(&busy, 0);
    }
    return NULL;
}

static void flipping(volatile uint64_t *p) {
    atomic_store(&target, p);
    atomic_store(&active, 1);
}

/* Once this returns the flipper no longer writes: either it saw active == 0
   after announcing itself busy, or we see it busy and wait. */
static void stop_flipping(void) {
    atomic_store(&active, 0);
    while (atomic_load(&busy)) {
    }
}

/* ---- small helpers ---- */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static char *unhex(const char *hex, size_t *len) {
    size_t n = strlen(hex) / 2;
    char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) die("bad hex");
        out[i] = (char)v;
    }
    *len = n;
    return out;
}

static void print_hex(const char *tag, const char *buf, size_t len) {
    printf("%s", tag);
    for (size_t i = 0; i < len; i++) printf("%02x", (unsigned char)buf[i]);
    printf("\n");
}

static uint32_t align8(uint32_t n) { return (n + 7u) & ~7u; }

/* ---- session setup ---- */

static void open_session(const char *path, const char *token, int semaphore) {
    size_t size = shm_region_size(cap);
    int memfd = memfd_create("racer", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0 || ftruncate(memfd, (off_t)size) < 0) die("memfd");
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (base == MAP_FAILED) die("mmap");
    hdr = base;
    hdr->magic = SHM_MAGIC;
    hdr->version = SHM_LAYOUT_VERSION;
    hdr->ring_size = cap;
    hdr->header_size = SHM_HEADER_SIZE;
    atomic_store(&hdr->req.producer_cpu, -1);
    atomic_store(&hdr->req.consumer_cpu, -1);
    atomic_store(&hdr->rep.producer_cpu, -1);
    atomic_store(&hdr->rep.consumer_cpu, -1);
    if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) die("seal");
    req_data = (char *)base + SHM_HEADER_SIZE;
    rep_data = req_data + cap;
    doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | (semaphore ? EFD_SEMAPHORE : 0));
    if (doorbell < 0) die("eventfd");

    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    int fds[2] = {memfd, doorbell};
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
    if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) die("sendmsg");
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    char answer[256] = "";
    ssize_t got = poll(&pfd, 1, 5000) == 1 ? recv(sock, answer, sizeof answer - 1, 0) : -1;
    answer[got > 0 ? got : 0] = '\0';
    printf("HELLO %s\n", got > 0 ? answer : "(closed)");
    fflush(stdout);
    if (got <= 0 || strcmp(answer, "OK") != 0) exit(2);
}

static int server_gone(void) {
    if (atomic_load(&hdr->server_closed)) return 1;
    struct pollfd pfd = {.fd = sock, .events = POLLIN | POLLRDHUP};
    return poll(&pfd, 1, 0) != 0;
}

/* ---- the rings ---- */

/* Write one record without publishing it; returns the payload's address. */
static char *put_record(uint32_t type, const char *payload, uint32_t len) {
    uint32_t need = SHM_RECORD_HEADER + align8(len);
    for (;;) {
        uint32_t off = req_tail & (cap - 1);
        uint32_t pad = off + need > cap ? cap - off : 0;
        uint32_t head = atomic_load(&hdr->req.head);
        if (cap - (req_tail - head) >= pad + need) {
            if (pad) {
                uint32_t h[2] = {pad - SHM_RECORD_HEADER, SHM_REC_PADDING};
                memcpy(req_data + off, h, 8);
                off = 0;
            }
            uint32_t h[2] = {len, type};
            memcpy(req_data + off, h, 8);
            memcpy(req_data + off + 8, payload, len);
            req_tail += pad + need;
            return req_data + off + 8;
        }
        if (server_gone()) return NULL;
        usleep(100);
    }
}

static void publish(void) {
    atomic_store(&hdr->req.tail, req_tail);
    uint64_t one = 1;
    if (write(doorbell, &one, sizeof one) < 0 && errno != EAGAIN) die("doorbell");
}

/* Wait for one whole reply; returns its length, or -1 when the session ended. */
static long get_reply(char *buf, size_t bufcap) {
    size_t got = 0;
    uint64_t deadline = now_ms() + 20000;
    for (;;) {
        uint32_t tail = atomic_load(&hdr->rep.tail);
        if (tail == rep_head) {
            atomic_store(&hdr->rep.consumer_waiting, 1);
            if (atomic_load(&hdr->rep.tail) == rep_head) {
                struct timespec to = {0, 1000000};
                syscall(SYS_futex, &hdr->rep.tail, FUTEX_WAIT, rep_head, &to, NULL, 0);
            }
            atomic_store(&hdr->rep.consumer_waiting, 0);
            if (atomic_load(&hdr->rep.tail) == rep_head && (server_gone() || now_ms() > deadline))
                return -1;
            continue;
        }
        uint32_t off = rep_head & (cap - 1), h[2];
        memcpy(h, rep_data + off, 8);
        uint32_t kind = SHM_REC_KIND(h[1]);
        if (h[0] > cap || off + 8 + h[0] > cap) return -1;
        if (kind == SHM_REC_REPLY) {
            size_t take = h[0] < bufcap - got ? h[0] : bufcap - got;
            memcpy(buf + got, rep_data + off + 8, take);
            got += take;
        }
        rep_head += 8 + align8(h[0]);
        atomic_store(&hdr->rep.head, rep_head);
        if (atomic_load(&hdr->rep.producer_waiting)) {
            uint64_t one = 1;
            (void)!write(doorbell, &one, sizeof one);
        }
        if (kind == SHM_REC_REPLY && !(h[1] & SHM_REC_MORE)) return (long)got;
    }
}

/* ---- distinct replies ---- */

struct tally {
    struct {
        char data[KEEP];
        size_t len;
        long count;
    } kinds[MAX_KINDS];
    int n;
};
static struct tally replies, probes;

static void count_reply(struct tally *t, const char *buf, size_t len) {
    if (len > KEEP) len = KEEP;
    for (int i = 0; i < t->n; i++)
        if (t->kinds[i].len == len && !memcmp(t->kinds[i].data, buf, len)) {
            t->kinds[i].count++;
            return;
        }
    int i = t->n < MAX_KINDS ? t->n++ : MAX_KINDS - 1; /* the last slot: "others" */
    memcpy(t->kinds[i].data, buf, len);
    t->kinds[i].len = len;
    t->kinds[i].count++;
}

static void print_tally(const char *tag, const struct tally *t) {
    for (int i = 0; i < t->n; i++) {
        printf("%s %ld ", tag, t->kinds[i].count);
        print_hex("", t->kinds[i].data, t->kinds[i].len);
    }
}

static int refused(const char *buf, long len) {
    return len >= 12 && !memcmp(buf, "-SHMFALLBACK", 12);
}

/* After a refusal the session skips everything until a RESUME record. */
static void resume(void) {
    if (put_record(SHM_REC_RESUME, "", 0)) publish();
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: racer PATH TOKEN RING [options]\n");
        return 1;
    }
    cap = (uint32_t)strtoul(argv[3], NULL, 10);
    if (!shm_ring_size_valid(cap)) die("ring size");
    long attempts = 20000, millis = 3000;
    int semaphore = 0, nfinal = 0;
    char *a = NULL, *b = NULL, *probe = NULL, *finals[16];
    size_t alen = 0, blen = 0, probe_len = 0, final_len[16];
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--semaphore")) semaphore = 1;
        else if (!strcmp(argv[i], "--attempts") && i + 1 < argc) attempts = atol(argv[++i]);
        else if (!strcmp(argv[i], "--millis") && i + 1 < argc) millis = atol(argv[++i]);
        else if (!strcmp(argv[i], "--a") && i + 1 < argc) a = unhex(argv[++i], &alen);
        else if (!strcmp(argv[i], "--b") && i + 1 < argc) b = unhex(argv[++i], &blen);
        else if (!strcmp(argv[i], "--probe") && i + 1 < argc) probe = unhex(argv[++i], &probe_len);
        else if (!strcmp(argv[i], "--final") && i + 1 < argc && nfinal < 16) {
            finals[nfinal] = unhex(argv[++i], &final_len[nfinal]);
            nfinal++;
        } else {
            fprintf(stderr, "racer: bad argument %s\n", argv[i]);
            return 1;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    open_session(argv[1], argv[2], semaphore);
    if (semaphore) return 0;
    if (!a || !b || alen != blen || alen == 0 || alen > shm_max_fragment(cap)) {
        fprintf(stderr, "racer: --a and --b must have the same length\n");
        return 1;
    }
    size_t nwords = (alen + 7) / 8;
    if (nwords > sizeof diff / sizeof diff[0]) die("variants too long");
    words_a = calloc(nwords, 8);
    words_b = calloc(nwords, 8);
    memcpy(words_a, a, alen);
    memcpy(words_b, b, blen);
    for (size_t i = 0; i < nwords; i++)
        if (words_a[i] != words_b[i]) diff[ndiff++] = i;
    pthread_t thread;
    if (pthread_create(&thread, NULL, flipper, NULL)) die("pthread_create");

    static char reply[1 << 16];
    long done = 0;
    int closed = 0;
    uint64_t end = now_ms() + (uint64_t)millis;
    while (done < attempts && now_ms() < end) {
        char *payload = put_record(SHM_REC_REQUEST, a, (uint32_t)alen);
        if (!payload) {
            closed = 1;
            break;
        }
        flipping((volatile uint64_t *)payload);
        publish();
        long n = get_reply(reply, sizeof reply);
        stop_flipping();
        if (n < 0) {
            closed = 1;
            break;
        }
        done++;
        count_reply(&replies, reply, (size_t)n);
        if (refused(reply, n)) resume();
        if (probe) {
            char *at = put_record(SHM_REC_REQUEST, probe, (uint32_t)probe_len);
            n = at ? (publish(), get_reply(reply, sizeof reply)) : -1;
            if (n < 0) {
                closed = 1;
                break;
            }
            count_reply(&probes, reply, (size_t)n);
            if (refused(reply, n)) resume();
        }
    }
    atomic_store(&quit, 1);
    pthread_join(thread, NULL);
    print_tally("REPLY", &replies);
    print_tally("PROBE", &probes);
    for (int i = 0; i < nfinal && !closed; i++) {
        char *payload = put_record(SHM_REC_REQUEST, finals[i], (uint32_t)final_len[i]);
        long n = payload ? (publish(), get_reply(reply, sizeof reply)) : -1;
        if (n < 0) {
            closed = 1;
            break;
        }
        print_hex("FINAL ", reply, (size_t)n);
        if (refused(reply, n)) resume();
    }
    printf("DONE %ld %d\n", done, closed);
    return 0;
}
