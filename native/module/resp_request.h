/*
 * resp_request.h - strict parser for one client request in RESP multibulk
 * form: *<n>\r\n then n times $<len>\r\n<len bytes>\r\n, and nothing else.
 *
 * The input comes from another process, so the parser accepts only the
 * canonical encoding that real clients produce (no inline commands, no signs,
 * no leading zeros, no null bulks, exact CRLFs, no trailing bytes) and checks
 * every count and length against both the caller's limits and the bytes that
 * are actually there before using it.  A request that parses is therefore
 * exactly the re-encoding of its arguments.  Arguments are not copied: they
 * point into the caller's buffer.
 *
 * The argument arrays come from a caller-supplied allocator, called at most
 * once per parse with a size bounded by the input length, because the module
 * must allocate through RM.Alloc (so memory shows in used_memory) while
 * tests use malloc, and a caller may also hand out a reusable per-session
 * scratch area (its release then does nothing).  This file depends on
 * nothing but libc.
 */
#ifndef SHM_RESP_REQUEST_H
#define SHM_RESP_REQUEST_H

#include <stddef.h>

/* resp_request_parse() results. */
#define RESP_REQUEST_OK 0
#define RESP_REQUEST_EPROTO (-1) /* malformed or over a limit: *errmsg says why */
#define RESP_REQUEST_ENOMEM (-2) /* the allocator returned NULL */

/* One parsed request.  argv[i] points into the parsed buffer and is NOT
   NUL-terminated (arguments may contain any byte); argvlen[i] is its length.
   argv and argvlen share one allocation, released by resp_request_release. */
typedef struct resp_request {
    size_t argc;
    const char **argv;
    size_t *argvlen;
} resp_request;

/* Where the argument arrays come from.  alloc(bytes, ud) returns memory
   aligned for pointers and size_t, or NULL; release(p, ud) frees it. */
typedef struct resp_request_allocator {
    void *(*alloc)(size_t bytes, void *ud);
    void (*release)(void *p, void *ud);
    void *ud;
} resp_request_allocator;

/*
 * Parse buf[0..len) as exactly one request with 1 <= argc <= max_args and
 * every argument at most max_bulk bytes.
 *
 * On RESP_REQUEST_OK, *out holds the request (release it with
 * resp_request_release) and *errmsg is untouched.  On failure, *out is
 * {0, NULL, NULL}, nothing stays allocated, and *errmsg (if errmsg is not
 * NULL) points to a short static message such as "invalid bulk length",
 * meant to follow "ERR Protocol error: ".
 *
 * Each byte of the framing is read once, through a volatile access, so a
 * buffer that another process keeps changing can produce a wrong request but
 * never an out-of-bounds access; the arguments' contents are not read at all.
 * Callers should still parse a private copy, since argv points into buf.
 */
int resp_request_parse(const char *buf, size_t len, size_t max_args, size_t max_bulk,
                       const resp_request_allocator *allocator, resp_request *out,
                       const char **errmsg);

/* Give back the arrays of a parsed request and reset it to {0, NULL, NULL}.
   Safe on an already released or failed request. */
void resp_request_release(resp_request *req, const resp_request_allocator *allocator);

#endif /* SHM_RESP_REQUEST_H */
