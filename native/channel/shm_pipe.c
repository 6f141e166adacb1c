/*
 * shm_pipe.c - splitting a --pipe input into commands, running them through a
 * shared-memory session, and counting socket replies (see shm_pipe.h).
 *
 * The run needs the session's private ring positions, so this file includes
 * shm_client.c and is compiled in its place (native/channel_build.py): one
 * translation unit, one copy of the client, and the pipe loop can use the
 * client's own bounded wait and wake-up rules instead of a second version of
 * them.  shm_client.c stays a complete, separately compilable client (the
 * benchmark builds it alone).
 *
 * Splitting takes only what every supported server reads the same way
 * (Redis 7.0 to 8.x and Valkey 8 to 9 differ in the rest: quoting rules,
 * whether the CR LF after a line or a payload is checked, limits that are
 * server settings):
 * - a multibulk "*<count>\r\n" then count times "$<len>\r\n<len bytes>\r\n",
 *   each number plain digits without sign or leading zero, 1 <= count <=
 *   the module's argument limit, len <= 1 MiB (the least proto-max-bulk-len),
 *   the whole request well under the module's input limit; copied as it is;
 * - an inline command: a line up to '\n' (a '\r' before it is dropped) of
 *   words made of bytes other than quotes, backslash, control bytes and
 *   white space, separated by spaces or tabs, at most 16 KiB; re-encoded as
 *   a multibulk; a blank line is no command.
 * At anything else, and at an input that ends inside a command, the split
 * stops for good ("handoff"): from there on the input goes to the server's
 * socket as it came, and the server itself accepts it, rejects it or waits.
 */
#include "shm_client.c" /* the client, with its internals (see above) */

#include <ctype.h>
#include <limits.h>
#include <sys/types.h>
#include <time.h>

#include "shm_pipe.h"

/* What goes through the session, beyond that the socket (see the top). */
#define INLINE_MAX (16u * 1024u) /* a line: a quarter of the servers' inline limit */
#define BULK_MAX (1024u * 1024u) /* the least proto-max-bulk-len a server accepts */
#define MODULE_ARGS_MAX (1024u * 1024u) /* the module's own limit (executor.c) */
#define MODULE_REQUEST_MAX (16u * 1024u * 1024u) /* well under shm.input-limit's 64 MB */
#define NUMBER_DIGITS_MAX 10 /* enough for any count or length allowed above */
#define WINDOW_MAX (1ull << 40)
#define DOORBELL_EVERY 64 /* requests between two looks at the server's sleep flag */
#define SCAN_DEPTH_MAX 64
/* Waiting for the replies to a long stream: see lazy_wait(). */
#define LAZY_OUTSTANDING 256
#define LAZY_NAP_MIN_NS 20000ull
#define LAZY_NAP_MAX_NS 2000000ull
#define LIVENESS_NS 100000000ull

struct pipe_cmd {
    size_t off, len;
    uint32_t flags;
};

struct shm_pipe {
    struct shm_pipe_stats stats;
    char magic[SHM_PIPE_MAGIC_LEN];
    char *routed; /* NUL-separated lower-case names, an empty name ends it */
    size_t routed_len;

    /* input not split yet: in[in_pos, in_len) */
    char *in;
    size_t in_pos, in_len, in_cap;
    int handoff; /* in_pos is where the socket must take the input over */
    int ended; /* the final ECHO was appended */

    /* the last feed's commands, canonical, back to back in out */
    char *out;
    size_t out_len, out_cap;
    struct pipe_cmd *cmds;
    size_t ncmds, cmds_cap;

    /* a run over the session */
    int running;
    size_t end, send_idx, reply_idx, frag_off, refused_at;
    uint64_t window; /* requests in flight; back to 1 after a refusal */
    uint64_t ns_per_reply; /* the server's pace, for lazy_wait() */
    uint64_t paced_at, paced_replies;
    uint64_t alive_checked_at;
    int napped; /* the last wait was a lazy_wait() */
    char *reply;     /* a fragmented reply, gathered */
    size_t reply_len, reply_cap;

    /* error replies' texts, one per line */
    char *err;
    size_t err_len, err_cap;

    /* the socket scanner: remaining elements per open aggregate */
    uint64_t stack[SCAN_DEPTH_MAX];
    int depth;
    uint64_t skip; /* bulk bytes (and CRLF) still to pass */
};

static const char echo_prefix[] = "\r\n*2\r\n$4\r\nECHO\r\n$20\r\n";

/* ---- growing buffers ---- */

static int reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return SHM_OK;
    size_t n = *cap ? *cap : 4096;
    while (n < need) {
        if (n > SIZE_MAX / 2) return SHM_E_NOMEM;
        n *= 2;
    }
    char *grown = realloc(*buf, n);
    if (!grown) return SHM_E_NOMEM;
    *buf = grown;
    *cap = n;
    return SHM_OK;
}

static int put(char **buf, size_t *len, size_t *cap, const void *data, size_t n) {
    if (*len + n < *len || reserve(buf, cap, *len + n) != SHM_OK) return SHM_E_NOMEM;
    if (n) memcpy(*buf + *len, data, n);
    *len += n;
    return SHM_OK;
}

static int put_header(struct shm_pipe *p, char type, uint64_t n) {
    char line[32];
    int k = snprintf(line, sizeof line, "%c%llu\r\n", type, (unsigned long long)n);
    return put(&p->out, &p->out_len, &p->out_cap, line, (size_t)k);
}

/* ---- life cycle ---- */

struct shm_pipe *shm_pipe_new(const char *routed, size_t routed_len, const char *magic) {
    struct shm_pipe *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->routed = malloc(routed_len + 1);
    if (!p->routed) {
        free(p);
        return NULL;
    }
    memcpy(p->routed, routed, routed_len);
    p->routed[routed_len] = '\0';
    p->routed_len = routed_len;
    memcpy(p->magic, magic, SHM_PIPE_MAGIC_LEN);
    p->window = WINDOW_MAX;
    p->ns_per_reply = 1000;
    p->stats.last_reply_ns = shm_now_ns();
    return p;
}

void shm_pipe_free(struct shm_pipe *p) {
    if (!p) return;
    free(p->routed);
    free(p->in);
    free(p->out);
    free(p->cmds);
    free(p->reply);
    free(p->err);
    free(p);
}

struct shm_pipe_stats *shm_pipe_stats(struct shm_pipe *p) { return &p->stats; }

/* ---- splitting ---- */

/* A number line after its type byte, at `at`: digits without sign or
   leading zero, at most `max`, then CR LF.  1: *value and *next (after the
   LF), 0: the line is not all there yet, -1: not canonical. */
static int number_line(const struct shm_pipe *p, size_t at, uint64_t max, uint64_t *value,
                       size_t *next) {
    uint64_t v = 0;
    size_t i = at;
    for (; i < p->in_len && p->in[i] >= '0' && p->in[i] <= '9'; i++) {
        if (i - at == NUMBER_DIGITS_MAX) return -1;
        v = v * 10 + (uint64_t)(p->in[i] - '0');
    }
    if (i == p->in_len || (p->in[i] == '\r' && i + 1 == p->in_len)) return 0;
    size_t digits = i - at;
    if (digits == 0 || (digits > 1 && p->in[at] == '0') || v > max) return -1;
    if (p->in[i] != '\r' || p->in[i + 1] != '\n') return -1;
    *value = v;
    *next = i + 2;
    return 1;
}

static int is_routed(const struct shm_pipe *p, const char *name, size_t len) {
    for (const char *r = p->routed; *r; r += strlen(r) + 1) {
        if (strlen(r) != len) continue;
        size_t i = 0;
        while (i < len && (char)tolower((unsigned char)name[i]) == r[i]) i++;
        if (i == len) return 1;
    }
    return 0;
}

static int add_command(struct shm_pipe *p, size_t off, const char *name, size_t name_len) {
    if (p->ncmds == p->cmds_cap) {
        size_t cap = p->cmds_cap ? p->cmds_cap * 2 : 1024;
        struct pipe_cmd *grown = realloc(p->cmds, cap * sizeof *grown);
        if (!grown) return SHM_E_NOMEM;
        p->cmds = grown;
        p->cmds_cap = cap;
    }
    uint32_t flags = is_routed(p, name, name_len) ? SHM_PIPE_ROUTED : 0;
    p->cmds[p->ncmds++] = (struct pipe_cmd){off, p->out_len - off, flags};
    return 1;
}

/* A multibulk at in_pos: 1 split, 0 needs more input, -1 not canonical,
   SHM_E_NOMEM.  A canonical one is copied as it is. */
static int split_multibulk(struct shm_pipe *p) {
    size_t start = p->in_pos, at;
    uint64_t count;
    int rc = number_line(p, start + 1, MODULE_ARGS_MAX, &count, &at);
    if (rc != 1) return rc;
    if (count == 0) return -1;
    size_t name_at = 0, name_len = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (at == p->in_len) return 0;
        if (p->in[at] != '$') return -1;
        uint64_t len;
        if ((rc = number_line(p, at + 1, BULK_MAX, &len, &at)) != 1) return rc;
        if (p->in_len - at < len + 2) return 0;
        if (p->in[at + len] != '\r' || p->in[at + len + 1] != '\n') return -1;
        if (i == 0) {
            name_at = at;
            name_len = (size_t)len;
        }
        at += (size_t)len + 2;
    }
    size_t off = p->out_len;
    if (at - start > MODULE_REQUEST_MAX) return -1;
    if (put(&p->out, &p->out_len, &p->out_cap, p->in + start, at - start) != SHM_OK)
        return SHM_E_NOMEM;
    rc = add_command(p, off, p->in + name_at, name_len);
    if (rc == 1) p->in_pos = at;
    return rc;
}

/* A byte of an inline word that every server's splitter keeps as it is:
   no quote, backslash, control byte or white space. */
static int is_plain(unsigned char c) {
    return c > ' ' && c != 0x7f && c != '"' && c != '\'' && c != '\\';
}

/* An inline command at in_pos, a line of plain words separated by spaces
   or tabs; same results as split_multibulk.  It is re-encoded as a
   multibulk. */
static int split_inline(struct shm_pipe *p) {
    const char *line = p->in + p->in_pos;
    size_t avail = p->in_len - p->in_pos;
    const char *nl = memchr(line, '\n', avail < INLINE_MAX ? avail : INLINE_MAX);
    if (!nl) return avail < INLINE_MAX ? 0 : -1;
    size_t n = (size_t)(nl - line);
    if (n && line[n - 1] == '\r') n--;
    size_t words = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c != ' ' && c != '\t' && !is_plain(c)) return -1;
        if (is_plain(c) && (i == 0 || !is_plain((unsigned char)line[i - 1]))) words++;
    }
    size_t off = p->out_len;
    if (words) {
        if (put_header(p, '*', words) != SHM_OK) return SHM_E_NOMEM;
        const char *name = NULL;
        size_t name_len = 0;
        for (size_t i = 0; i < n;) {
            while (i < n && !is_plain((unsigned char)line[i])) i++;
            size_t w = i;
            while (i < n && is_plain((unsigned char)line[i])) i++;
            if (i == w) break;
            if (!name) {
                name = line + w;
                name_len = i - w;
            }
            if (put_header(p, '$', i - w) != SHM_OK ||
                put(&p->out, &p->out_len, &p->out_cap, line + w, i - w) != SHM_OK ||
                put(&p->out, &p->out_len, &p->out_cap, "\r\n", 2) != SHM_OK)
                return SHM_E_NOMEM;
        }
        int rc = add_command(p, off, name, name_len);
        if (rc != 1) return rc;
    }
    p->in_pos += (size_t)(nl - line) + 1;
    return 1;
}

int shm_pipe_feed(struct shm_pipe *p, const char *data, size_t len, int final) {
    if (p->running) return SHM_E_PROTO;
    p->out_len = p->ncmds = 0;
    if (p->handoff) return SHM_OK; /* the rest is the socket's */
    if (p->in_pos) { /* keep only what was not split */
        memmove(p->in, p->in + p->in_pos, p->in_len - p->in_pos);
        p->in_len -= p->in_pos;
        p->in_pos = 0;
    }
    if (put(&p->in, &p->in_len, &p->in_cap, data, len) != SHM_OK) return SHM_E_NOMEM;
    if (final && !p->ended) {
        if (put(&p->in, &p->in_len, &p->in_cap, echo_prefix, sizeof echo_prefix - 1) != SHM_OK ||
            put(&p->in, &p->in_len, &p->in_cap, p->magic, SHM_PIPE_MAGIC_LEN) != SHM_OK ||
            put(&p->in, &p->in_len, &p->in_cap, "\r\n", 2) != SHM_OK)
            return SHM_E_NOMEM;
        p->stats.armed = p->ended = 1;
    }
    while (p->in_pos < p->in_len) {
        int rc = p->in[p->in_pos] == '*' ? split_multibulk(p) : split_inline(p);
        if (rc == 1) continue;
        if (rc == -1 || final) p->handoff = 1; /* final: it ends inside a command */
        if (rc == 0 || rc == -1) break;
        return rc; /* out of memory */
    }
    return SHM_OK;
}

size_t shm_pipe_count(struct shm_pipe *p) { return p->ncmds; }

uint32_t shm_pipe_command(struct shm_pipe *p, size_t i, const char **req, size_t *len) {
    if (i >= p->ncmds) {
        *req = NULL;
        *len = 0;
        return 0;
    }
    *req = p->out + p->cmds[i].off;
    *len = p->cmds[i].len;
    return p->cmds[i].flags;
}

int shm_pipe_handoff(struct shm_pipe *p) { return p->handoff; }

void shm_pipe_tail(struct shm_pipe *p, const char **buf, size_t *len) {
    *buf = p->in + p->in_pos;
    *len = p->in_len - p->in_pos;
}

/* ---- replies ---- */

/* A reply's number, read as Redis' string2ll does: optional '-', then "0" alone or a digit 1-9 and more
   digits, fewer than 21 characters, within a long long. */
static int strict_ll(const char *s, size_t n, long long *value) {
    if (n == 0 || n >= 21) return 0;
    if (n == 1 && s[0] == '0') {
        *value = 0;
        return 1;
    }
    size_t i = 0;
    int negative = s[0] == '-';
    if (negative && ++i == n) return 0;
    if (s[i] < '1' || s[i] > '9') return 0;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (negative) {
        if (v > (unsigned long long)LLONG_MAX + 1ull) return 0;
        *value = v == (unsigned long long)LLONG_MAX + 1ull ? LLONG_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)LLONG_MAX) return 0;
        *value = (long long)v;
    }
    return 1;
}


static int add_error_text(struct shm_pipe *p, const char *text, size_t n) {
    size_t shown = strnlen(text, n); /* redis-cli prints it with %s */
    if (put(&p->err, &p->err_len, &p->err_cap, text, shown) != SHM_OK ||
        put(&p->err, &p->err_len, &p->err_cap, "\n", 1) != SHM_OK)
        return SHM_E_NOMEM;
    return SHM_OK;
}

void shm_pipe_errors(struct shm_pipe *p, const char **text, size_t *len) {
    *text = p->err;
    *len = p->err_len;
}

void shm_pipe_clear_errors(struct shm_pipe *p) { p->err_len = 0; }

static int is_magic(const struct shm_pipe *p, const char *r, size_t n) {
    return p->stats.armed && n == 5 + SHM_PIPE_MAGIC_LEN + 2 && memcmp(r, "$20\r\n", 5) == 0 &&
           memcmp(r + 5, p->magic, SHM_PIPE_MAGIC_LEN) == 0;
}

/* Count one complete top-level reply, as redis-cli's pipe loop does. */
static int count_reply(struct shm_pipe *p, const char *r, size_t n) {
    p->stats.last_reply_ns = shm_now_ns();
    if (n >= 3 && r[0] == '-') {
        p->stats.replies++;
        p->stats.errors++;
        return add_error_text(p, r + 1, n - 3);
    }
    if (n >= 3 && r[0] == '!') { /* RESP3 blob error: !<len>\r\n<text>\r\n */
        const char *body = memchr(r, '\n', n);
        p->stats.replies++;
        p->stats.errors++;
        if (!body || (size_t)(body + 1 - r) + 2 > n) return add_error_text(p, "", 0);
        body++;
        return add_error_text(p, body, n - (size_t)(body - r) - 2);
    }
    if (is_magic(p, r, n)) {
        p->stats.done = 1;
        return SHM_OK;
    }
    p->stats.replies++;
    return SHM_OK;
}

/* ---- the run over shared memory ---- */

static const char fallback[] = "-SHMFALLBACK ";

/* One whole reply message for command reply_idx. */
static int on_reply(struct shm_pipe *p, const char *r, size_t n) {
    size_t idx = p->reply_idx++;
    if (n >= sizeof fallback - 1 && memcmp(r, fallback, sizeof fallback - 1) == 0) {
        /* the first one is the refusal, the rest were skipped because of it */
        if (p->refused_at == SIZE_MAX) p->refused_at = idx;
        p->window = 1;
        return SHM_OK;
    }
    if (p->window < WINDOW_MAX) p->window++;
    return count_reply(p, r, n);
}

/* Read every reply that is there.  *progress is set when one was read. */
static int drain_replies(struct shm_pipe *p, struct shm_client *c, int *progress) {
    int rc = SHM_OK, consumed = 0;
    while (rc == SHM_OK && !p->stats.done) {
        uint32_t type, len;
        const char *payload;
        int r = shm_ring_peek(&c->rep, &type, &payload, &len);
        if (r == 0) break;
        if (r < 0 || SHM_REC_KIND(type) != SHM_REC_REPLY || p->reply_idx >= p->send_idx) {
            rc = c->dead = SHM_E_PROTO;
            break;
        }
        *progress = consumed = 1;
        if ((type & SHM_REC_MORE) || p->reply_len) {
            if (p->reply_len + len > c->max_reply) {
                rc = c->dead = SHM_E_TOO_BIG;
                break;
            }
            rc = put(&p->reply, &p->reply_len, &p->reply_cap, payload, len);
            if (rc == SHM_OK && !(type & SHM_REC_MORE)) {
                rc = on_reply(p, p->reply, p->reply_len);
                p->reply_len = 0;
            }
        } else {
            rc = on_reply(p, payload, len);
        }
        shm_ring_consume(&c->rep, len);
    }
    /* Once per batch, not per reply: the flag shares its cache line with
       the tail the server writes for every reply. */
    if (consumed) ring_if_server_sleeps(c, &c->hdr->rep.producer_waiting);
    return rc;
}

/* Write requests while there is room, the window allows, and nothing stops
   the run.  *progress is set when a record was written. */
static int send_requests(struct shm_pipe *p, struct shm_client *c, int *progress) {
    unsigned since_look = 0;
    int wrote = 0;
    while (p->send_idx < p->end && p->refused_at == SIZE_MAX && !p->stats.done) {
        const struct pipe_cmd *cmd = &p->cmds[p->send_idx];
        if (p->frag_off == 0) {
            if (cmd->flags) {
                p->end = p->send_idx; /* the caller runs this one itself */
                break;
            }
            if (p->send_idx - p->reply_idx >= p->window) break;
        }
        size_t left = cmd->len - p->frag_off;
        uint32_t frag = left > c->max_fragment ? c->max_fragment : (uint32_t)left;
        uint32_t type = SHM_REC_REQUEST | (left > frag ? SHM_REC_MORE : 0);
        int r = shm_ring_write(&c->req, type, p->out + cmd->off + p->frag_off, frag);
        if (r == 0) break;
        if (r < 0) return c->dead = SHM_E_PROTO;
        wrote = *progress = 1;
        p->frag_off += frag;
        if (p->frag_off == cmd->len) {
            p->frag_off = 0;
            p->send_idx++;
        }
        if (++since_look == DOORBELL_EVERY) {
            since_look = 0;
            ring_if_server_sleeps(c, &c->hdr->req.consumer_waiting);
        }
    }
    if (wrote && since_look) ring_if_server_sleeps(c, &c->hdr->req.consumer_waiting);
    return SHM_OK;
}

/* Waiting for replies while many requests are outstanding.  Spinning on the
   reply ring's tail (what a single round trip wants) would pull the cache
   line the server writes for every reply, and cost it a miss each time
   (measured: an eighth of the server's time in a 1 M SET run).  A stream only
   needs the rings never to run empty, so sleep for a quarter of the time the
   server needs for what is outstanding, at the pace measured so far, and let
   it run undisturbed meanwhile. */
static int lazy_wait(struct shm_pipe *p, struct shm_client *c, uint64_t deadline) {
    uint64_t now = shm_now_ns();
    uint64_t done = p->stats.replies;
    if (p->paced_at && done > p->paced_replies) {
        uint64_t pace = (now - p->paced_at) / (done - p->paced_replies);
        p->ns_per_reply = (3 * p->ns_per_reply + pace) / 4;
    }
    p->paced_at = now;
    p->paced_replies = done;
    if (now >= deadline) return SHM_E_TIMEOUT;
    uint64_t nap = (uint64_t)(p->send_idx - p->reply_idx) * p->ns_per_reply / 4;
    if (nap < LAZY_NAP_MIN_NS) nap = LAZY_NAP_MIN_NS;
    if (nap > LAZY_NAP_MAX_NS) nap = LAZY_NAP_MAX_NS;
    if (nap > deadline - now) nap = deadline - now;
    struct timespec ts = {(time_t)(nap / 1000000000ull), (long)(nap % 1000000000ull)};
    nanosleep(&ts, NULL);
    p->napped = 1;
    now = shm_now_ns();
    if (atomic_load_explicit(&c->hdr->rep.tail, memory_order_acquire) != c->rep.head) {
        p->alive_checked_at = now;
        return SHM_OK;
    }
    /* nothing came: the pace was too optimistic, or the server is gone */
    p->ns_per_reply *= 2;
    if (now - p->alive_checked_at >= LIVENESS_NS) {
        p->alive_checked_at = now;
        if (!server_alive(c)) return c->dead = SHM_E_CLOSED;
    }
    return SHM_OK;
}

static int run_finished(const struct shm_pipe *p) {
    if (p->stats.done) return 1;
    if (p->reply_idx < p->send_idx || p->frag_off) return 0;
    return p->refused_at != SIZE_MAX || p->send_idx >= p->end;
}

int shm_pipe_run(struct shm_pipe *p, struct shm_client *c, size_t start, int64_t wait_ms,
                 size_t *next) {
    if (c->dead) return c->dead;
    if (!p->running) {
        if (start > p->ncmds) return SHM_E_PROTO;
        p->running = 1;
        p->end = p->ncmds;
        p->send_idx = p->reply_idx = start;
        p->frag_off = p->reply_len = 0;
        p->refused_at = SIZE_MAX;
    }
    release_deferred(c);
    uint64_t deadline = deadline_of(wait_ms);
    int rc = SHM_OK;
    while (!run_finished(p)) {
        int progress = 0;
        rc = drain_replies(p, c, &progress);
        if (p->napped && p->reply_idx == p->send_idx && p->ns_per_reply > 1)
            p->ns_per_reply /= 2; /* everything was done: the server sat idle */
        p->napped = 0;
        if (rc != SHM_OK || run_finished(p)) break;
        rc = send_requests(p, c, &progress);
        if (rc != SHM_OK) break;
        if (progress) continue;
        if (run_finished(p)) break;
        /* Nothing moved: replies are due (the server is working on requests
           we sent), or a large request waits for room in the ring. */
        if (p->send_idx - p->reply_idx >= LAZY_OUTSTANDING) {
            rc = lazy_wait(p, c, deadline);
        } else if (p->reply_idx < p->send_idx) {
            p->paced_at = 0; /* the pace is measured within a stream only */
            rc = wait_for_change(c, &c->hdr->rep.tail, c->rep.head, &c->hdr->rep.consumer_waiting,
                                 &c->hdr->rep.consumer_cpu, deadline);
        } else {
            uint32_t head = atomic_load_explicit(&c->hdr->req.head, memory_order_acquire);
            if (head != c->req.head_cache) continue;
            rc = wait_for_change(c, &c->hdr->req.head, head, &c->hdr->req.producer_waiting,
                                 &c->hdr->req.producer_cpu, deadline);
        }
        if (rc == SHM_E_TIMEOUT) return SHM_PIPE_AGAIN;
        if (rc != SHM_OK) break;
    }
    p->running = 0;
    if (rc != SHM_OK) return rc;
    if (p->stats.done) {
        *next = p->reply_idx;
        return SHM_PIPE_DONE;
    }
    if (p->refused_at != SIZE_MAX) {
        *next = p->refused_at;
        return SHM_PIPE_REFUSED;
    }
    *next = p->send_idx;
    return SHM_PIPE_OK;
}

/* ---- counting socket replies ---- */

/* A top-level element or an aggregate's last one is complete. */
static void element_done(struct shm_pipe *p) {
    while (p->depth > 0) {
        if (--p->stack[p->depth - 1] > 0) return;
        p->depth--;
    }
    p->stats.replies++;
    p->stats.last_reply_ns = shm_now_ns();
}

/* The end of the line that starts at buf[pos]: the index of its "\r\n",
   or -1 when it is not all there yet. */
static ssize_t line_end(const char *buf, size_t pos, size_t len) {
    while (pos < len) {
        const char *cr = memchr(buf + pos, '\r', len - pos);
        if (!cr) return -1;
        size_t at = (size_t)(cr - buf);
        if (at + 1 >= len) return -1;
        if (buf[at + 1] == '\n') return (ssize_t)at;
        pos = at + 1;
    }
    return -1;
}

size_t shm_pipe_scan(struct shm_pipe *p, const char *buf, size_t len, int *status) {
    size_t pos = 0;
    *status = SHM_PIPE_OK;
    while (!p->stats.done) {
        if (p->skip) {
            size_t take = len - pos < p->skip ? len - pos : (size_t)p->skip;
            pos += take;
            p->skip -= take;
            if (p->skip) break;
            element_done(p);
            continue;
        }
        if (pos >= len) break;
        ssize_t eol = line_end(buf, pos, len);
        if (eol < 0) break;
        size_t after = (size_t)eol + 2;
        char type = buf[pos];
        const char *num = buf + pos + 1;
        size_t numlen = (size_t)eol - pos - 1;
        long long n = 0;
        if (type == '-' && p->depth == 0) {
            if (count_reply(p, buf + pos, after - pos) != SHM_OK) {
                *status = SHM_E_NOMEM;
                return pos;
            }
            pos = after;
            continue;
        }
        switch (type) {
        case '-': case '+': case ':': case ',': case '(': case '#': case '_':
            pos = after;
            element_done(p);
            continue;
        case '$': case '=': case '!':
            if (!strict_ll(num, numlen, &n) || n < -1) break;
            if (n == -1) {
                pos = after;
                element_done(p);
                continue;
            }
            if (p->depth == 0 && (type == '!' || (type == '$' && n == SHM_PIPE_MAGIC_LEN))) {
                /* read whole: an error text, or perhaps the final ECHO */
                if (len - after < (size_t)n + 2) return pos;
                if (count_reply(p, buf + pos, after + (size_t)n + 2 - pos) != SHM_OK) {
                    *status = SHM_E_NOMEM;
                    return pos;
                }
                pos = after + (size_t)n + 2;
                continue;
            }
            pos = after;
            p->skip = (uint64_t)n + 2;
            continue;
        case '*': case '~': case '%': case '>': case '|':
            if (!strict_ll(num, numlen, &n) || n < -1) break;
            pos = after;
            if (n <= 0) {
                element_done(p);
                continue;
            }
            if (p->depth == SCAN_DEPTH_MAX) break;
            p->stack[p->depth++] = (uint64_t)n * ((type == '%' || type == '|') ? 2u : 1u);
            continue;
        default:
            break;
        }
        *status = SHM_PIPE_BAD_REPLY;
        return pos;
    }
    if (p->stats.done) *status = SHM_PIPE_DONE;
    return pos;
}
