/*
 * resp_request.c - one forward pass over an untrusted multibulk request.
 *
 * A single cursor only moves forward and every framing byte is loaded once
 * through a volatile read into a local before it is judged, so a peer that
 * rewrites the buffer during the parse cannot make a checked value differ
 * from the used one.  Counts and lengths are checked against the bytes still
 * left before anything is allocated or indexed: the argument count against
 * the smallest possible encoding of that many arguments (6 bytes each), which
 * keeps the allocation proportional to the input whatever the header claims.
 * Number parsing stops at the first byte that is not a digit and refuses
 * values above both SIZE_MAX and LLONG_MAX, so no length can wrap.
 */
#include "resp_request.h"

#include <stdio.h>

#include <limits.h>
#include <stdint.h>

/* Smallest encoding of one argument: "$0\r\n\r\n". */
#define MIN_ARG_BYTES 6

/* Largest count or length we accept before the caller's own limits. */
#define NUMBER_MAX \
    ((uint64_t)SIZE_MAX < (uint64_t)LLONG_MAX ? (uint64_t)SIZE_MAX : (uint64_t)LLONG_MAX)

enum number_status { NUMBER_OK, NUMBER_BAD, NUMBER_SHORT };

static inline unsigned char load_byte(const char *p) {
    return *(const volatile unsigned char *)p;
}

/* Reads "<digits>\r\n" at buf[*pos]: at least one digit, no sign, no
   leading zero, value <= NUMBER_MAX.  Advances *pos past the CRLF. */
static enum number_status parse_number(const char *buf, size_t len, size_t *pos,
                                       uint64_t *value) {
    size_t p = *pos;
    uint64_t v = 0;
    size_t digits = 0;
    for (;;) {
        if (p >= len)
            return NUMBER_SHORT;
        unsigned char c = load_byte(buf + p++);
        if (c == '\r')
            break;
        if (c < '0' || c > '9')
            return NUMBER_BAD;
        if (digits == 1 && v == 0)
            return NUMBER_BAD; /* leading zero */
        unsigned d = (unsigned)(c - '0');
        if (v > (NUMBER_MAX - d) / 10)
            return NUMBER_BAD; /* would overflow */
        v = v * 10 + d;
        digits++;
    }
    if (digits == 0)
        return NUMBER_BAD;
    if (p >= len)
        return NUMBER_SHORT;
    if (load_byte(buf + p++) != '\n')
        return NUMBER_BAD;
    *pos = p;
    *value = v;
    return NUMBER_OK;
}

static int fail(resp_request *out, const resp_request_allocator *allocator, void *block,
                const char **errmsg, const char *msg, int rc) {
    if (block != NULL)
        allocator->release(block, allocator->ud);
    out->argc = 0;
    out->argv = NULL;
    out->argvlen = NULL;
    if (errmsg != NULL)
        *errmsg = msg;
    return rc;
}

int resp_request_parse(const char *buf, size_t len, size_t max_args, size_t max_bulk,
                       const resp_request_allocator *allocator, resp_request *out,
                       const char **errmsg) {
    static const char truncated[] = "truncated request";
    size_t pos = 0;
    uint64_t n;

    if (len == 0)
        return fail(out, allocator, NULL, errmsg, "empty request", RESP_REQUEST_EPROTO);
    if (load_byte(buf + pos++) != '*')
        return fail(out, allocator, NULL, errmsg, "expected '*'", RESP_REQUEST_EPROTO);

    switch (parse_number(buf, len, &pos, &n)) {
    case NUMBER_OK:
        break;
    case NUMBER_SHORT:
        return fail(out, allocator, NULL, errmsg, truncated, RESP_REQUEST_EPROTO);
    default:
        return fail(out, allocator, NULL, errmsg, "invalid multibulk length",
                    RESP_REQUEST_EPROTO);
    }
    if (n == 0)
        return fail(out, allocator, NULL, errmsg, "invalid multibulk length",
                    RESP_REQUEST_EPROTO);
    if (n > max_args)
        return fail(out, allocator, NULL, errmsg, "invalid multibulk length", RESP_REQUEST_EPROTO);
    /* Each argument takes at least MIN_ARG_BYTES, so a count the bytes cannot
       hold is truncated: but report the first malformed argument first, as
       the server does, by parsing as far as the bytes go.  Either way the
       arrays are bounded by the input length, so the product cannot
       overflow.  One block holds both arrays, pointers first: argvlen is then
       aligned (asserted below). */
    size_t fits = (len - pos) / MIN_ARG_BYTES + 1;
    size_t argc = n < fits ? (size_t)n : fits;
    _Static_assert(_Alignof(size_t) <= _Alignof(const char *), "argvlen follows argv");
    void *block = allocator->alloc(argc * (sizeof(const char *) + sizeof(size_t)),
                                   allocator->ud);
    if (block == NULL)
        return fail(out, allocator, NULL, errmsg, "out of memory", RESP_REQUEST_ENOMEM);
    const char **argv = block;
    size_t *argvlen = (size_t *)(argv + argc);

    for (size_t i = 0; i < argc; i++) {
        uint64_t blen;
        if (pos >= len)
            return fail(out, allocator, block, errmsg, truncated, RESP_REQUEST_EPROTO);
        char type = (char)load_byte(buf + pos++);
        if (type != '$') {
            /* the server's own wording, with the offending byte */
            static char got[32];
            snprintf(got, sizeof got, "expected '$', got '%c'", type);
            return fail(out, allocator, block, errmsg, got, RESP_REQUEST_EPROTO);
        }
        switch (parse_number(buf, len, &pos, &blen)) {
        case NUMBER_OK:
            break;
        case NUMBER_SHORT:
            return fail(out, allocator, block, errmsg, truncated, RESP_REQUEST_EPROTO);
        default:
            return fail(out, allocator, block, errmsg, "invalid bulk length",
                        RESP_REQUEST_EPROTO);
        }
        if (blen > max_bulk)
            return fail(out, allocator, block, errmsg, "invalid bulk length",
                        RESP_REQUEST_EPROTO);
        /* pos <= len always; the payload and its CRLF must both be there. */
        size_t left = len - pos;
        if (left < 2 || blen > left - 2)
            return fail(out, allocator, block, errmsg, truncated, RESP_REQUEST_EPROTO);
        argv[i] = buf + pos;
        argvlen[i] = (size_t)blen;
        pos += (size_t)blen;
        unsigned char cr = load_byte(buf + pos);
        unsigned char lf = load_byte(buf + pos + 1);
        if (cr != '\r' || lf != '\n')
            return fail(out, allocator, block, errmsg, "expected CRLF after bulk",
                        RESP_REQUEST_EPROTO);
        pos += 2;
    }
    if (argc < n) /* cannot happen: the bytes ran out first; kept as a guard */
        return fail(out, allocator, block, errmsg, truncated, RESP_REQUEST_EPROTO);
    if (pos != len)
        return fail(out, allocator, block, errmsg, "trailing bytes after request",
                    RESP_REQUEST_EPROTO);

    out->argc = argc;
    out->argv = argv;
    out->argvlen = argvlen;
    return RESP_REQUEST_OK;
}

void resp_request_release(resp_request *req, const resp_request_allocator *allocator) {
    if (req->argv != NULL)
        allocator->release((void *)req->argv, allocator->ud);
    req->argc = 0;
    req->argv = NULL;
    req->argvlen = NULL;
}
