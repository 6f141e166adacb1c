/*
 * shm_bench.c - a C client that times Redis round trips over the shm module's
 * shared-memory channel, or over a plain unix / TCP socket for comparison.
 *
 * It uses the project's own channel library (native/channel/shm_client.c,
 * shm_ring.c, shm_wait.c are compiled in by bench/run.py), so what it measures
 * is exactly the client code the Python binding wraps, minus Python.  The
 * SHM.HANDSHAKE is a hand-written RESP exchange on a unix socket, kept open
 * for the whole run because the session dies with it.
 *
 * Each run does back-to-back round trips of one pre-encoded command (PING, SET
 * or GET) for a fixed time after a warm-up, checks every reply, and prints one
 * JSON line: count, throughput and a log-linear latency histogram (64
 * sub-buckets per power of two, so any percentile is within 1.6%) that
 * bench/run.py merges across interleaved rounds.  One clock read per round
 * trip: the end of one is the start of the next.
 *
 * usage: shm_bench --transport shm|unix|tcp --socket PATH [--port N]
 *                  --cmd ping|set|get [--value-size N] [--duration S]
 *                  [--warmup S] [--gap-us N] [--server-pid PID] [--pipeline N]
 *
 * --pipeline N times N requests sent before their N replies are read (one
 * sample per batch): the per-command cost once the transport's round trip is
 * out of the way, i.e. what the server side of each path costs.
 */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shm_client.h"

#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)
#define IO_TIMEOUT_MS 10000

static void die(const char *fmt, const char *detail) {
    fprintf(stderr, "shm_bench: ");
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram (same bucket function as bench/stats.py) ---- */

static uint64_t hist[NBUCKETS];

static unsigned bucket_of(uint64_t v) {
    if (v < 2 * SUB) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return ((e - SUB_BITS + 1) << SUB_BITS) + (unsigned)((v >> (e - SUB_BITS)) & (SUB - 1));
}

static double bucket_mid(unsigned idx) {
    if (idx < 2 * SUB) return idx;
    unsigned e = (idx >> SUB_BITS) + SUB_BITS - 1, sub = idx & (SUB - 1);
    double width = (double)(1ull << (e - SUB_BITS));
    return (double)(SUB + sub) * width + width / 2;
}

static double percentile(uint64_t count, double q, uint64_t max) {
    uint64_t rank = (uint64_t)(q * (double)count + 0.999999), seen = 0;
    if (rank < 1) rank = 1;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank) {
            double mid = bucket_mid(i);
            return mid > (double)max ? (double)max : mid;
        }
    }
    return (double)max;
}

/* ---- server CPU: the sum of every thread's run time, in ns ---- */

static uint64_t server_cpu_ns(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *dir = opendir(path);
    if (!dir) return 0;
    uint64_t total = 0;
    struct dirent *ent;
    while ((ent = readdir(dir))) {
        if (ent->d_name[0] == '.') continue;
        char stat_path[300];
        snprintf(stat_path, sizeof stat_path, "/proc/%d/task/%s/schedstat", pid, ent->d_name);
        FILE *f = fopen(stat_path, "r");
        if (!f) continue;
        unsigned long long run = 0;
        if (fscanf(f, "%llu", &run) == 1) total += run;
        fclose(f);
    }
    closedir(dir);
    return total;
}

/* ---- RESP over a blocking socket ---- */

static int connect_unix(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) die("socket path too long: %s", path);
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("connect to the unix socket: %s", strerror(errno));
    return fd;
}

static int connect_tcp(int port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("connect to 127.0.0.1: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void set_io_timeout(int fd) {
    struct timeval tv = {IO_TIMEOUT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("socket write: %s", w < 0 ? strerror(errno) : "closed");
        p += w;
        n -= (size_t)w;
    }
}

/* Read exactly `want` bytes (we always know the reply's size in advance); an
   error reply or a closed socket ends the run with the server's words. */
static void read_exact(int fd, char *buf, size_t want) {
    size_t have = 0;
    while (have < want) {
        ssize_t r = read(fd, buf + have, want - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (have && buf[0] == '-') {
                buf[have] = '\0';
                die("server error: %s", buf);
            }
            die("socket read: %s", r < 0 ? strerror(errno) : "closed by the server");
        }
        have += (size_t)r;
        if (buf[0] == '-' && memchr(buf, '\n', have)) {
            buf[have < want ? have : want - 1] = '\0';
            die("server error: %s", buf);
        }
    }
}

/* SHM.HANDSHAKE -> *4 [token, socket path, ring size, layout version]. */
struct handshake {
    char token[128], path[256];
    long long ring_size, version;
};

static const char *parse_line(const char *p, const char *end, char type, long long *num) {
    if (p >= end || *p != type) return NULL;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || nl[-1] != '\r') return NULL;
    *num = strtoll(p + 1, NULL, 10);
    return nl + 1;
}

static const char *parse_bulk(const char *p, const char *end, char *out, size_t cap) {
    long long len;
    p = parse_line(p, end, '$', &len);
    if (!p || len < 0 || (size_t)len >= cap || end - p < len + 2) return NULL;
    memcpy(out, p, (size_t)len);
    out[len] = '\0';
    return p + len + 2;
}

static int parse_handshake(const char *buf, size_t n, struct handshake *h) {
    const char *p = buf, *end = buf + n;
    long long count;
    if (!(p = parse_line(p, end, '*', &count)) || count != 4) return 0;
    if (!(p = parse_bulk(p, end, h->token, sizeof h->token))) return 0;
    if (!(p = parse_bulk(p, end, h->path, sizeof h->path))) return 0;
    if (!(p = parse_line(p, end, ':', &h->ring_size))) return 0;
    if (!(p = parse_line(p, end, ':', &h->version))) return 0;
    return 1;
}

static void handshake(int fd, struct handshake *h) {
    static const char req[] = "*1\r\n$13\r\nSHM.HANDSHAKE\r\n";
    write_all(fd, req, sizeof req - 1);
    char buf[1024];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("SHM.HANDSHAKE: %s", r < 0 ? strerror(errno) : "connection closed");
        have += (size_t)r;
        buf[have] = '\0';
        if (buf[0] == '-' && memchr(buf, '\n', have)) die("SHM.HANDSHAKE refused: %s", buf);
        if ((buf[0] == '_' || !strncmp(buf, "$-1", 3)) && memchr(buf, '\n', have))
            die("SHM.HANDSHAKE: %s", "no session free (shm.max-sessions)");
        if (parse_handshake(buf, have, h)) return;
        if (have == sizeof buf - 1) die("SHM.HANDSHAKE: %s", "reply too long");
    }
}

/* ---- the benchmark ---- */

struct options {
    const char *transport, *socket, *cmd;
    int port, server_pid;
    size_t value_size;
    double duration, warmup;
    long gap_us;
    long pipeline;
    long spin_us, adapt_us; /* < 0: the library's defaults */
};

struct bench {
    struct options o;
    int fd;                  /* unix/tcp data socket */
    int control_fd;          /* shm: the connection that owns the session */
    struct shm_client *shm;
    char *req, *set_req;     /* the timed request, and the SET that seeds GET */
    size_t req_len, set_req_len;
    char *expect;            /* the exact reply expected */
    size_t expect_len;
    char *rbuf;              /* socket reply buffer */
    char *batch_req;         /* --pipeline: N requests back to back (sockets) */
};

static char *encode(const char *fmt_cmd, const char *key, const char *value, size_t vlen,
                    size_t *len) {
    size_t klen = strlen(key), cap = vlen + klen + 128;
    char *out = malloc(cap);
    if (!out) die("%s", "out of memory");
    int n;
    if (!strcmp(fmt_cmd, "PING"))
        n = snprintf(out, cap, "*1\r\n$4\r\nPING\r\n");
    else if (!strcmp(fmt_cmd, "GET"))
        n = snprintf(out, cap, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", klen, key);
    else
        n = snprintf(out, cap, "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n", klen, key, vlen);
    size_t pos = (size_t)n;
    if (!strcmp(fmt_cmd, "SET")) {
        memcpy(out + pos, value, vlen);
        pos += vlen;
        memcpy(out + pos, "\r\n", 2);
        pos += 2;
    }
    *len = pos;
    return out;
}

static void exchange(struct bench *b, const char *req, size_t req_len, const char **reply,
                     size_t *reply_len, size_t expect_len) {
    if (b->shm) {
        int rc = shm_client_call(b->shm, req, req_len, reply, reply_len, IO_TIMEOUT_MS);
        if (rc != SHM_OK) die("shm round trip failed: %s", shm_client_strerror(rc));
        return;
    }
    write_all(b->fd, req, req_len);
    read_exact(b->fd, b->rbuf, expect_len);
    *reply = b->rbuf;
    *reply_len = expect_len;
}

static void check_reply(const struct bench *b, const char *reply, size_t len, int full) {
    int ok = len == b->expect_len;
    if (ok) {
        /* a 10 MB value is compared in full once, then by its frame and tail */
        if (full || b->expect_len <= 4096)
            ok = memcmp(reply, b->expect, len) == 0;
        else
            ok = memcmp(reply, b->expect, 64) == 0 &&
                 memcmp(reply + len - 64, b->expect + len - 64, 64) == 0;
    }
    if (!ok) {
        char shown[120];
        size_t n = len < sizeof shown - 1 ? len : sizeof shown - 1;
        memcpy(shown, reply, n);
        shown[n] = '\0';
        for (size_t i = 0; i < n; i++)
            if (shown[i] == '\r' || shown[i] == '\n') shown[i] = ' ';
        fprintf(stderr, "shm_bench: unexpected reply (%zu bytes, expected %zu): ", len,
                b->expect_len);
        die("%s", shown);
    }
}

static void setup(struct bench *b) {
    const struct options *o = &b->o;
    char key[64];
    snprintf(key, sizeof key, "shm_bench:%zu", o->value_size);
    char *value = malloc(o->value_size + 1);
    if (!value) die("%s", "out of memory");
    for (size_t i = 0; i < o->value_size; i++) value[i] = (char)('a' + i % 26);

    b->set_req = encode("SET", key, value, o->value_size, &b->set_req_len);
    if (!strcmp(o->cmd, "ping")) {
        b->req = encode("PING", key, NULL, 0, &b->req_len);
        b->expect = strdup("+PONG\r\n");
    } else if (!strcmp(o->cmd, "set")) {
        b->req = b->set_req;
        b->req_len = b->set_req_len;
        b->expect = strdup("+OK\r\n");
    } else if (!strcmp(o->cmd, "get")) {
        b->req = encode("GET", key, NULL, 0, &b->req_len);
        b->expect = malloc(o->value_size + 64);
        if (!b->expect) die("%s", "out of memory");
        int n = snprintf(b->expect, 64, "$%zu\r\n", o->value_size);
        memcpy(b->expect + n, value, o->value_size);
        memcpy(b->expect + n + o->value_size, "\r\n", 2);
        b->expect_len = (size_t)n + o->value_size + 2;
    } else {
        die("unknown --cmd %s (ping, set or get)", o->cmd);
    }
    if (!b->expect_len) b->expect_len = strlen(b->expect);
    free(value);

    if (!strcmp(o->transport, "shm")) {
        b->control_fd = connect_unix(o->socket);
        set_io_timeout(b->control_fd);
        struct handshake h;
        handshake(b->control_fd, &h);
        char err[256];
        int rc = shm_client_open(h.path, h.token, (uint32_t)h.ring_size, IO_TIMEOUT_MS, &b->shm,
                                 err, sizeof err);
        if (rc != SHM_OK) die("opening the shared-memory session: %s", err);
        if (o->spin_us >= 0)
            shm_client_set_wait(b->shm, (uint32_t)o->spin_us * 1000u,
                                (uint32_t)(o->adapt_us >= 0 ? o->adapt_us : 5) * 1000u, 100);
    } else if (!strcmp(o->transport, "unix")) {
        b->fd = connect_unix(o->socket);
    } else if (!strcmp(o->transport, "tcp")) {
        b->fd = connect_tcp(o->port);
    } else {
        die("unknown --transport %s (shm, unix or tcp)", o->transport);
    }
    if (!b->shm) {
        set_io_timeout(b->fd);
        size_t n = (size_t)o->pipeline;
        b->rbuf = malloc(b->expect_len * n + 1);
        b->batch_req = malloc(b->req_len * n);
        if (!b->rbuf || !b->batch_req) die("%s", "out of memory");
        for (size_t i = 0; i < n; i++) memcpy(b->batch_req + i * b->req_len, b->req, b->req_len);
    }

    /* GET reads the value a SET on the same transport wrote */
    const char *reply;
    size_t reply_len;
    if (!strcmp(o->cmd, "get")) {
        exchange(b, b->set_req, b->set_req_len, &reply, &reply_len, 5);
        if (reply_len != 5 || memcmp(reply, "+OK\r\n", 5) != 0) die("%s", "seeding SET failed");
    }
    exchange(b, b->req, b->req_len, &reply, &reply_len, b->expect_len);
    check_reply(b, reply, reply_len, 1);
}

/* One timed unit: a round trip, or --pipeline requests then their replies. */
static void run_unit(struct bench *b) {
    const char *reply;
    size_t reply_len, n = (size_t)b->o.pipeline;
    if (n == 1) {
        exchange(b, b->req, b->req_len, &reply, &reply_len, b->expect_len);
        check_reply(b, reply, reply_len, 0);
    } else if (b->shm) {
        for (size_t i = 0; i < n; i++) {
            int rc = shm_client_send(b->shm, SHM_REC_REQUEST, b->req, b->req_len, IO_TIMEOUT_MS);
            if (rc != SHM_OK) die("shm send failed: %s", shm_client_strerror(rc));
        }
        for (size_t i = 0; i < n; i++) {
            int rc = shm_client_recv(b->shm, &reply, &reply_len, IO_TIMEOUT_MS);
            if (rc != SHM_OK) die("shm recv failed: %s", shm_client_strerror(rc));
            check_reply(b, reply, reply_len, 0);
        }
    } else {
        write_all(b->fd, b->batch_req, b->req_len * n);
        read_exact(b->fd, b->rbuf, b->expect_len * n);
        for (size_t i = 0; i < n; i++) check_reply(b, b->rbuf + i * b->expect_len, b->expect_len, 0);
    }
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: shm_bench --transport shm|unix|tcp --socket PATH [--port N]\n"
            "                 --cmd ping|set|get [--value-size N] [--duration S]\n"
            "                 [--warmup S] [--gap-us N] [--server-pid PID]\n"
            "                 [--spin-us N] [--adapt-us N] [--pipeline N]\n");
    exit(2);
}

static void parse_args(int argc, char **argv, struct options *o) {
    *o = (struct options){.transport = "shm", .cmd = "ping", .value_size = 16, .duration = 1.0,
                          .warmup = 0.2, .spin_us = -1, .adapt_us = -1, .pipeline = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--transport")) o->transport = v;
        else if (!strcmp(a, "--socket")) o->socket = v;
        else if (!strcmp(a, "--port")) o->port = atoi(v);
        else if (!strcmp(a, "--cmd")) o->cmd = v;
        else if (!strcmp(a, "--value-size")) o->value_size = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--duration")) o->duration = atof(v);
        else if (!strcmp(a, "--warmup")) o->warmup = atof(v);
        else if (!strcmp(a, "--gap-us")) o->gap_us = atol(v);
        else if (!strcmp(a, "--server-pid")) o->server_pid = atoi(v);
        else if (!strcmp(a, "--spin-us")) o->spin_us = atol(v);
        else if (!strcmp(a, "--adapt-us")) o->adapt_us = atol(v);
        else if (!strcmp(a, "--pipeline")) o->pipeline = atol(v);
        else usage();
    }
    if (!o->socket && strcmp(o->transport, "tcp") != 0) usage();
    if (!strcmp(o->transport, "tcp") && !o->port) usage();
    if (o->pipeline < 1 || o->pipeline > 100000) usage();
}

int main(int argc, char **argv) {
    struct bench b = {.fd = -1, .control_fd = -1};
    parse_args(argc, argv, &b.o);
    setup(&b);
    const struct options *o = &b.o;

    uint64_t warm_end = now_ns() + (uint64_t)(o->warmup * 1e9);
    while (now_ns() < warm_end) {
        run_unit(&b);
        if (o->gap_us) sleep_us(o->gap_us);
    }

    uint64_t srv0 = o->server_pid ? server_cpu_ns(o->server_pid) : 0;
    uint64_t cpu0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t start = now_ns(), end_at = start + (uint64_t)(o->duration * 1e9);
    uint64_t t0 = start, t1 = start, ops = 0, busy = 0, max = 0, min = UINT64_MAX;
    do {
        run_unit(&b);
        t1 = now_ns();
        uint64_t lat = t1 - t0;
        hist[bucket_of(lat)]++;
        busy += lat;
        if (lat > max) max = lat;
        if (lat < min) min = lat;
        ops++;
        if (o->gap_us) {
            sleep_us(o->gap_us);
            t1 = now_ns();
        }
        t0 = t1;
    } while (t1 < end_at);
    uint64_t wall = t1 - start;
    uint64_t cpu = cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    uint64_t srv = o->server_pid ? server_cpu_ns(o->server_pid) - srv0 : 0;

    printf("{\"transport\":\"%s\",\"cmd\":\"%s\",\"value_size\":%zu,\"gap_us\":%ld,"
           "\"pipeline\":%ld,\"commands_per_s\":%.1f,"
           "\"ops\":%llu,\"busy_ns\":%llu,\"wall_ns\":%llu,\"ops_per_s\":%.1f,"
           "\"min_ns\":%llu,\"max_ns\":%llu,\"mean_ns\":%.1f,"
           "\"p50_ns\":%.1f,\"p99_ns\":%.1f,\"p999_ns\":%.1f,"
           "\"client_cpu_ns\":%llu,\"server_cpu_ns\":%llu,\"hist_sub_bits\":%u,\"hist\":[",
           o->transport, o->cmd, o->value_size, o->gap_us, o->pipeline,
           (double)ops * (double)o->pipeline * 1e9 / (double)busy, (unsigned long long)ops,
           (unsigned long long)busy, (unsigned long long)wall, ops * 1e9 / (double)busy,
           (unsigned long long)min, (unsigned long long)max, (double)busy / (double)ops,
           percentile(ops, 0.50, max), percentile(ops, 0.99, max),
           percentile(ops, 0.999, max), (unsigned long long)cpu, (unsigned long long)srv,
           SUB_BITS);
    int first = 1;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        if (!hist[i]) continue;
        printf("%s[%u,%llu]", first ? "" : ",", i, (unsigned long long)hist[i]);
        first = 0;
    }
    printf("]}\n");

    if (b.shm) shm_client_close(b.shm);
    if (b.control_fd >= 0) close(b.control_fd);
    if (b.fd >= 0) close(b.fd);
    return 0;
}
