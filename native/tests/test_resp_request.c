/*
 * test_resp_request.c - unit tests and a small fuzz loop for resp_request.c.
 *
 * Every input is copied into a heap block of exactly its length, so under
 * AddressSanitizer a read one byte past the request is a reported error, not
 * a silent pass.  The fuzz loop checks a property rather than expectations:
 * whatever parses must lie inside the buffer, respect the limits, and
 * re-encode to exactly the input (the parser accepts only canonical
 * requests), and every allocation must be given back.  Fixed seed, so a
 * failure reproduces.
 *
 * Build and run (from the repository root):
 *   gcc -std=c11 -O1 -g -fsanitize=address,undefined -D_GNU_SOURCE \
 *       -Inative/module native/tests/test_resp_request.c \
 *       native/module/resp_request.c -o /tmp/t && /tmp/t
 * Exit status is 0 only when every check passed; the last line reads
 * "N passed, N failed".
 */
#include "resp_request.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (cond) {                                                 \
            passed++;                                               \
        } else {                                                    \
            failed++;                                               \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);             \
            printf(__VA_ARGS__);                                    \
            printf("\n");                                           \
        }                                                           \
    } while (0)

/* ---- counting allocator, optionally failing ---- */

struct alloc_stats {
    long live;
    long calls;
    size_t largest;
    int fail;
};

static void *test_alloc(size_t bytes, void *ud) {
    struct alloc_stats *st = ud;
    st->calls++;
    if (bytes > st->largest)
        st->largest = bytes;
    if (st->fail)
        return NULL;
    void *p = malloc(bytes ? bytes : 1);
    if (p)
        st->live++;
    return p;
}

static void test_release(void *p, void *ud) {
    struct alloc_stats *st = ud;
    st->live--;
    free(p);
}

static struct alloc_stats stats;
static const resp_request_allocator allocator = {test_alloc, test_release, &stats};

/* ---- helpers ---- */

/* Canonical encoding of args; returns a malloc'd buffer, length in *len. */
static char *encode(size_t argc, const char *const *argv, const size_t *argvlen, size_t *len) {
    size_t cap = 32;
    for (size_t i = 0; i < argc; i++)
        cap += argvlen[i] + 32;
    char *buf = malloc(cap);
    size_t n = (size_t)snprintf(buf, cap, "*%zu\r\n", argc);
    for (size_t i = 0; i < argc; i++) {
        n += (size_t)snprintf(buf + n, cap - n, "$%zu\r\n", argvlen[i]);
        memcpy(buf + n, argv[i], argvlen[i]);
        n += argvlen[i];
        buf[n++] = '\r';
        buf[n++] = '\n';
    }
    *len = n;
    return buf;
}

/* Parse a copy of data[0..len) held in a block of exactly len bytes.  On
   success *copy is that block (caller frees), else it is freed here. */
static int parse_exact(const char *data, size_t len, size_t max_args, size_t max_bulk,
                       resp_request *req, const char **err, char **copy) {
    char *buf = malloc(len ? len : 1);
    if (len)
        memcpy(buf, data, len);
    int rc = resp_request_parse(buf, len, max_args, max_bulk, &allocator, req, err);
    if (copy && rc == RESP_REQUEST_OK)
        *copy = buf;
    else
        free(buf);
    return rc;
}

/* Expect data to parse into exactly these arguments. */
static void expect_ok(const char *what, const char *data, size_t len, size_t argc,
                      const char *const *argv, const size_t *argvlen) {
    resp_request req;
    const char *err = NULL;
    char *copy = NULL;
    int rc = parse_exact(data, len, 1024 * 1024, 512 * 1024 * 1024, &req, &err, &copy);
    CHECK(rc == RESP_REQUEST_OK, "%s: rc %d (%s)", what, rc, err ? err : "");
    if (rc != RESP_REQUEST_OK)
        return;
    int same = req.argc == argc;
    for (size_t i = 0; same && i < argc; i++)
        same = req.argvlen[i] == argvlen[i] && memcmp(req.argv[i], argv[i], argvlen[i]) == 0 &&
               req.argv[i] >= copy && req.argv[i] + req.argvlen[i] <= copy + len;
    CHECK(same, "%s: wrong arguments", what);
    resp_request_release(&req, &allocator);
    CHECK(req.argc == 0 && req.argv == NULL && req.argvlen == NULL, "%s: release resets",
          what);
    free(copy);
}

/* Expect a protocol error whose message contains `msg` (NULL: any). */
static void expect_reject(const char *what, const char *data, size_t len, size_t max_args,
                          size_t max_bulk, const char *msg) {
    static const char *sentinel[1];
    resp_request req = {99, sentinel, NULL};
    const char *err = NULL;
    int rc = parse_exact(data, len, max_args, max_bulk, &req, &err, NULL);
    CHECK(rc == RESP_REQUEST_EPROTO, "%s: rc %d, want EPROTO", what, rc);
    if (rc == RESP_REQUEST_OK) {
        resp_request_release(&req, &allocator);
        return;
    }
    CHECK(err != NULL && (msg == NULL || strstr(err, msg) != NULL),
          "%s: message \"%s\", want \"%s\"", what, err ? err : "(null)", msg ? msg : "any");
    CHECK(req.argc == 0 && req.argv == NULL && req.argvlen == NULL, "%s: out not reset", what);
}

#define S(lit) lit, sizeof(lit) - 1
#define BIG (512u * 1024 * 1024)

/* ---- valid requests ---- */

static void test_valid(void) {
    {
        const char *a[] = {"PING"};
        size_t l[] = {4};
        expect_ok("one arg", S("*1\r\n$4\r\nPING\r\n"), 1, a, l);
    }
    {
        const char *a[] = {"SET", "key", "value"};
        size_t l[] = {3, 3, 5};
        expect_ok("three args", S("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"), 3, a, l);
    }
    {
        const char *a[] = {"SET", "k", "a\0\r\nb\r\n"};
        size_t l[] = {3, 1, 7};
        expect_ok("binary arg", S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$7\r\na\0\r\nb\r\n\r\n"), 3, a,
                  l);
    }
    {
        const char *a[] = {"ECHO", ""};
        size_t l[] = {4, 0};
        expect_ok("empty arg", S("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"), 2, a, l);
    }
    {
        const char *a[] = {"", "", ""};
        size_t l[] = {0, 0, 0};
        expect_ok("only empty args", S("*3\r\n$0\r\n\r\n$0\r\n\r\n$0\r\n\r\n"), 3, a, l);
    }
    {
        /* many args; every 7th is a run of 'x' of varying length */
        enum { N = 5000 };
        static const char *a[N];
        static size_t l[N];
        static char pool[N][16];
        for (size_t i = 0; i < N; i++) {
            if (i % 7 == 6) {
                l[i] = i % 16;
                memset(pool[i], 'x', l[i]);
            } else {
                l[i] = (size_t)snprintf(pool[i], sizeof pool[i], "arg%zu", i);
            }
            a[i] = pool[i];
        }
        size_t len;
        char *buf = encode(N, a, l, &len);
        expect_ok("5000 args", buf, len, N, a, l);
        free(buf);
    }
    {
        /* a 1 MiB argument */
        size_t big = 1u << 20;
        char *val = malloc(big);
        for (size_t i = 0; i < big; i++)
            val[i] = (char)(i * 31);
        const char *a[] = {"SET", "k", val};
        size_t l[] = {3, 1, big};
        size_t len;
        char *buf = encode(3, a, l, &len);
        expect_ok("1 MiB arg", buf, len, 3, a, l);
        free(buf);
        free(val);
    }
    {
        /* limits are inclusive */
        resp_request req;
        const char *err = NULL;
        int rc = parse_exact(S("*2\r\n$3\r\nGET\r\n$5\r\nabcde\r\n"), 2, 5, &req, &err, NULL);
        CHECK(rc == RESP_REQUEST_OK, "argc == max_args, len == max_bulk: rc %d", rc);
        if (rc == RESP_REQUEST_OK)
            resp_request_release(&req, &allocator);
    }
    {
        /* errmsg may be NULL; release twice is harmless */
        resp_request req;
        int rc = resp_request_parse(S("*1\r\n$4\r\nPING\r\n"), 1, 4, &allocator, &req, NULL);
        CHECK(rc == RESP_REQUEST_OK && req.argc == 1, "NULL errmsg on success");
        resp_request_release(&req, &allocator);
        resp_request_release(&req, &allocator);
        rc = resp_request_parse(S("*0\r\n"), 1, 4, &allocator, &req, NULL);
        CHECK(rc == RESP_REQUEST_EPROTO, "NULL errmsg on failure");
    }
}

/* ---- every prefix, and any extra byte, of a valid request is rejected ---- */

static void test_truncation_and_trailing(void) {
    static const struct {
        const char *data;
        size_t len;
    } valid[] = {
        {S("*1\r\n$4\r\nPING\r\n")},
        {S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$7\r\na\0\r\nb\r\n\r\n")},
        {S("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n")},
        {S("*12\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n$1\r\nf\r\n"
           "$1\r\ng\r\n$1\r\nh\r\n$1\r\ni\r\n$1\r\nj\r\n$1\r\nk\r\n$10\r\n0123456789\r\n")},
    };
    for (size_t v = 0; v < sizeof valid / sizeof valid[0]; v++) {
        char what[64];
        for (size_t cut = 0; cut < valid[v].len; cut++) {
            snprintf(what, sizeof what, "request %zu cut at %zu", v, cut);
            expect_reject(what, valid[v].data, cut, 100, 100, NULL);
        }
        char *more = malloc(valid[v].len + 16);
        memcpy(more, valid[v].data, valid[v].len);
        static const char extra[] = "x\r\n*$0\0"; /* the explicit NUL is tested too */
        for (size_t e = 0; e < sizeof extra - 1; e++) {
            more[valid[v].len] = extra[e];
            snprintf(what, sizeof what, "request %zu + byte %d", v, extra[e]);
            expect_reject(what, more, valid[v].len + 1, 100, 100, "trailing");
        }
        /* two requests back to back are not one request */
        memcpy(more + valid[v].len, "*1\r\n$1\r\nx\r\n", 11);
        snprintf(what, sizeof what, "request %zu twice", v);
        expect_reject(what, more, valid[v].len + 11, 100, 100, "trailing");
        free(more);
    }
}

/* ---- specific malformations ---- */

static void test_rejections(void) {
    expect_reject("empty buffer", "", 0, 10, 10, "empty");
    expect_reject("inline command", S("PING\r\n"), 10, 10, "expected '*'");
    expect_reject("RESP3 type", S("%1\r\n$1\r\na\r\n"), 10, 10, "expected '*'");

    /* multibulk count */
    expect_reject("n = 0", S("*0\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("null array", S("*-1\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("plus sign", S("*+1\r\n$1\r\na\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("no digits", S("*\r\n$1\r\na\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("leading zero", S("*01\r\n$1\r\na\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("double zero", S("*00\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("space", S("* 1\r\n$1\r\na\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("letter", S("*1x\r\n$1\r\na\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("hex", S("*0x1\r\n$1\r\na\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("LF only", S("*1\n$1\r\na\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("CR CR", S("*1\r\r$1\r\na\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("NUL in count", S("*1\0\r\n$1\r\na\r\n"), 10, 10, "invalid multibulk length");
    expect_reject("count overflow 20 digits", S("*99999999999999999999\r\n"), SIZE_MAX, 10,
                  "invalid multibulk length");
    expect_reject("count 2^64", S("*18446744073709551616\r\n"), SIZE_MAX, 10,
                  "invalid multibulk length");
    expect_reject("count LLONG_MAX+1", S("*9223372036854775808\r\n"), SIZE_MAX, 10,
                  "invalid multibulk length");
    expect_reject("count LLONG_MAX, tiny buffer", S("*9223372036854775807\r\n$1\r\na\r\n"),
                  SIZE_MAX, 10, "truncated");
    expect_reject("too many args", S("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"), 2, 10,
                  "invalid multibulk length");
    expect_reject("max_args 0", S("*1\r\n$1\r\na\r\n"), 0, 10, "invalid multibulk length");
    expect_reject("count larger than args", S("*2\r\n$1\r\na\r\n"), 10, 10, "truncated");
    expect_reject("count smaller than args", S("*1\r\n$1\r\na\r\n$1\r\nb\r\n"), 10, 10,
                  "trailing");

    /* bulk header */
    expect_reject("missing $", S("*1\r\n4\r\nPING\r\n"), 10, 10, "expected '$'");
    expect_reject("simple string arg", S("*1\r\n+PING\r\n"), 10, 10, "expected '$'");
    expect_reject("integer arg", S("*1\r\n:1234\r\n"), 10, 10, "expected '$'");
    expect_reject("null bulk", S("*2\r\n$-1\r\n$4\r\nPING\r\n"), 10, 10, "invalid bulk length");
    expect_reject("negative bulk", S("*1\r\n$-4\r\nPING\r\n"), 10, 10, "invalid bulk length");
    expect_reject("plus bulk", S("*1\r\n$+4\r\nPING\r\n"), 10, 10, "invalid bulk length");
    expect_reject("bulk no digits", S("*1\r\n$\r\nPING\r\n"), 10, 10, "invalid bulk length");
    expect_reject("bulk leading zero", S("*1\r\n$04\r\nPING\r\n"), 10, 10,
                  "invalid bulk length");
    expect_reject("bulk letter", S("*1\r\n$4a\r\nPING\r\n"), 10, 10, "invalid bulk length");
    expect_reject("bulk LF only", S("*1\r\n$4\nPING\r\n"), 10, 10, "invalid bulk length");
    expect_reject("bulk overflow 20 digits", S("*1\r\n$99999999999999999999\r\nPING\r\n"), 10,
                  SIZE_MAX, "invalid bulk length");
    expect_reject("bulk 2^64", S("*1\r\n$18446744073709551616\r\nPING\r\n"), 10, SIZE_MAX,
                  "invalid bulk length");
    expect_reject("bulk 2^64+4 (wraps to 4)", S("*1\r\n$18446744073709551620\r\nPING\r\n"), 10,
                  SIZE_MAX, "invalid bulk length");
    expect_reject("bulk LLONG_MAX+1", S("*1\r\n$9223372036854775808\r\nPING\r\n"), 10,
                  SIZE_MAX, "invalid bulk length");
    expect_reject("bulk LLONG_MAX", S("*1\r\n$9223372036854775807\r\nPING\r\n"), 10, SIZE_MAX,
                  "truncated");
    expect_reject("bulk SIZE_MAX-1", S("*1\r\n$18446744073709551614\r\nPING\r\n"), 10,
                  SIZE_MAX, "invalid bulk length");
    expect_reject("bulk over max", S("*1\r\n$5\r\nhello\r\n"), 10, 4, "invalid bulk length");
    expect_reject("bulk over max 0", S("*1\r\n$1\r\na\r\n"), 10, 0, "invalid bulk length");
    expect_reject("bulk longer than buffer", S("*1\r\n$10\r\nabc\r\n"), 10, 100, "truncated");
    expect_reject("bulk eats CRLF", S("*1\r\n$6\r\nPING\r\n"), 10, 100, "truncated");
    expect_reject("bulk one short", S("*1\r\n$3\r\nPING\r\n"), 10, 100, "CRLF");
    expect_reject("bulk LF CR", S("*1\r\n$4\r\nPING\n\r"), 10, 100, "CRLF");
    expect_reject("bulk no CR", S("*1\r\n$4\r\nPINGx\n"), 10, 100, "CRLF");
    expect_reject("bulk no LF", S("*1\r\n$4\r\nPING\rx"), 10, 100, "CRLF");
}

/* ---- allocation behaviour ---- */

static void test_allocation(void) {
    long before = stats.calls;
    stats.largest = 0;
    expect_reject("huge count, small buffer", S("*100000\r\n$1\r\na\r\n"), SIZE_MAX, 10,
                  "truncated");
    CHECK(stats.largest <= 8 * (sizeof(char *) + sizeof(size_t)),
          "a count the buffer cannot hold allocates only what the bytes could hold (%zu)",
          stats.largest);
    expect_reject("huge count, bad first argument", S("*100000\r\n$-5\r\n"), SIZE_MAX, 10,
                  "invalid bulk length");

    stats.fail = 1;
    resp_request req;
    const char *err = NULL;
    int rc = parse_exact(S("*1\r\n$4\r\nPING\r\n"), 10, 10, &req, &err, NULL);
    stats.fail = 0;
    CHECK(rc == RESP_REQUEST_ENOMEM && err && strstr(err, "memory") && req.argv == NULL,
          "allocation failure: rc %d", rc);

    before = stats.calls;
    rc = parse_exact(S("*2\r\n$4\r\nPING\r\n$3\r\nab\r\n"), 10, 10, &req, &err, NULL);
    CHECK(rc == RESP_REQUEST_EPROTO && stats.calls == before + 1 && stats.live == 0,
          "arrays released after a late failure");
    CHECK(stats.live == 0, "allocations outstanding: %ld", stats.live);
}

/* ---- fuzz ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static size_t rnd(size_t n) {
    return n ? (size_t)(rng() % n) : 0;
}

/* A random valid request; returns malloc'd buffer. */
static char *random_request(size_t *len, size_t *argc_out) {
    size_t argc = 1 + rnd(rnd(4) == 0 ? 40 : 5);
    const char *argv[40];
    size_t argvlen[40];
    static char data[40][300];
    for (size_t i = 0; i < argc; i++) {
        size_t l = rnd(5) == 0 ? rnd(300) : rnd(12);
        for (size_t j = 0; j < l; j++)
            data[i][j] = rnd(4) == 0 ? "\r\n\0*$"[rnd(5)] : (char)rng();
        argv[i] = data[i];
        argvlen[i] = l;
    }
    *argc_out = argc;
    return encode(argc, argv, argvlen, len);
}

static const char *const interesting_numbers[] = {
    "0", "00", "1", "01", "-1", "+1", "", " 1", "9", "10", "65535", "2147483648",
    "4294967296", "9223372036854775807", "9223372036854775808", "18446744073709551615",
    "18446744073709551616", "99999999999999999999", "123456789012345678901234567890",
};

static size_t mutate(char *buf, size_t len, size_t cap) {
    size_t ops = 1 + rnd(4);
    for (size_t k = 0; k < ops; k++) {
        switch (rnd(8)) {
        case 0: /* random byte */
            if (len)
                buf[rnd(len)] = (char)rng();
            break;
        case 1: /* framing byte */
            if (len)
                buf[rnd(len)] = "*$\r\n0123456789-+ "[rnd(17)];
            break;
        case 2: /* insert a framing byte */
            if (len < cap) {
                size_t at = rnd(len + 1);
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = "*$\r\n0123456789-"[rnd(15)];
                len++;
            }
            break;
        case 3: /* delete a byte */
            if (len) {
                size_t at = rnd(len);
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
            }
            break;
        case 4: /* truncate */
            len = rnd(len + 1);
            break;
        case 5: { /* replace a digit run with an interesting number */
            if (!len)
                break;
            size_t at = rnd(len);
            while (at < len && (buf[at] < '0' || buf[at] > '9'))
                at++;
            size_t end = at;
            while (end < len && buf[end] >= '0' && buf[end] <= '9')
                end++;
            const char *num = interesting_numbers[rnd(sizeof interesting_numbers /
                                                      sizeof interesting_numbers[0])];
            size_t nl = strlen(num);
            if (len - (end - at) + nl > cap)
                break;
            memmove(buf + at + nl, buf + end, len - end);
            memcpy(buf + at, num, nl);
            len = len - (end - at) + nl;
            break;
        }
        case 6: /* append garbage */
            for (size_t n = rnd(4); n && len < cap; n--)
                buf[len++] = (char)rng();
            break;
        default: /* duplicate a slice at the end */
            if (len) {
                size_t at = rnd(len), n = rnd(len - at + 1);
                if (len + n <= cap) {
                    memmove(buf + len, buf + at, n);
                    len += n;
                }
            }
            break;
        }
    }
    return len;
}

/* Check a successful parse of buf[0..len): bounds, limits, round trip. */
static int parsed_is_sound(const resp_request *req, const char *buf, size_t len,
                           size_t max_args, size_t max_bulk) {
    if (req->argc == 0 || req->argc > max_args)
        return 0;
    for (size_t i = 0; i < req->argc; i++) {
        if (req->argvlen[i] > max_bulk || req->argv[i] < buf || req->argv[i] > buf + len ||
            req->argvlen[i] > (size_t)(buf + len - req->argv[i]))
            return 0;
    }
    size_t elen;
    char *again = encode(req->argc, req->argv, req->argvlen, &elen);
    int same = elen == len && memcmp(again, buf, len) == 0;
    free(again);
    return same;
}

static void test_fuzz(void) {
    enum { ROUNDS = 200000, CAP = 16384 };
    static char work[CAP];
    long ok = 0, unsound = 0, bad_rc = 0;
    for (long r = 0; r < ROUNDS; r++) {
        size_t len, argc;
        char *seed = random_request(&len, &argc);
        size_t max_args = rnd(3) == 0 ? rnd(argc + 2) : SIZE_MAX;
        size_t max_bulk = rnd(3) == 0 ? rnd(300) : SIZE_MAX;
        if (len > CAP)
            len = CAP;
        memcpy(work, seed, len);
        free(seed);
        /* one round in eight stays valid, to exercise the limits */
        if (r % 8)
            len = mutate(work, len, CAP);

        resp_request req;
        const char *err = NULL;
        char *copy = NULL;
        int rc = parse_exact(work, len, max_args, max_bulk, &req, &err, &copy);
        if (rc == RESP_REQUEST_OK) {
            ok++;
            if (!parsed_is_sound(&req, copy, len, max_args, max_bulk)) {
                if (unsound++ < 5)
                    printf("unsound parse in round %ld\n", r);
            }
            resp_request_release(&req, &allocator);
            free(copy);
        } else if (rc != RESP_REQUEST_EPROTO || err == NULL || req.argv != NULL) {
            bad_rc++;
        }
    }
    printf("fuzz: %d inputs, %ld parsed, %ld rejected\n", ROUNDS, ok, ROUNDS - ok);
    CHECK(unsound == 0, "fuzz: %ld unsound parses", unsound);
    CHECK(bad_rc == 0, "fuzz: %ld failures without a proper error", bad_rc);
    CHECK(ok > ROUNDS / 20, "fuzz: too few inputs parsed (%ld), mutations too destructive", ok);
    CHECK(stats.live == 0, "fuzz: %ld allocations outstanding", stats.live);
}

/* Random valid requests always parse to their arguments. */
static void test_random_valid(void) {
    long bad = 0;
    for (int r = 0; r < 20000; r++) {
        size_t len, argc;
        char *buf = random_request(&len, &argc);
        resp_request req;
        char *copy = NULL;
        int rc = parse_exact(buf, len, argc, 300, &req, NULL, &copy);
        if (rc != RESP_REQUEST_OK || req.argc != argc ||
            !parsed_is_sound(&req, copy, len, argc, 300))
            bad++;
        if (rc == RESP_REQUEST_OK) {
            resp_request_release(&req, &allocator);
            free(copy);
        }
        free(buf);
    }
    CHECK(bad == 0, "random valid requests: %ld misparsed", bad);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* FAIL lines survive a sanitizer abort */
    test_valid();
    test_truncation_and_trailing();
    test_rejections();
    test_allocation();
    test_random_valid();
    test_fuzz();
    CHECK(stats.live == 0, "allocations outstanding at exit: %ld", stats.live);
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed != 0;
}
