/*
 * request_intake.c - copies requests out of the shared request ring.
 *
 * A request arrives as one record, or as fragments (SHM_REC_MORE) when it is
 * larger than a record may be.  Either way its bytes are copied once into the
 * session's private buffer and the ring space is given back at once, so the
 * client can never change what the server is about to parse or run
 * (io_uring's rule for its submission entries).  The record header itself is
 * read once, by shm_ring_peek(), which checks it against the ring.
 *
 * A request larger than shm.input-limit is not buffered: its fragments are
 * skipped as they come and it is refused, so the client sends it over its
 * socket, where the server's own limits apply.  One call consumes a bounded
 * number of records, so a long request never holds up the other sessions.  The buffer a session keeps
 * between requests is small; larger ones are given back after use.
 */
#include "request_intake.h"

#include <string.h>

#include "config.h"
#include "stats.h"

#define KEEP_BUFFER (1024 * 1024) /* at most this much stays allocated per session */
#define RECORDS_PER_CALL 64       /* a long fragmented request must not hold the pass */

static void append(struct shm_session *s, const char *p, uint32_t n) {
    if (!n) return; /* an empty record: nothing to copy (and s->in may be NULL) */
    if (s->in_len + n > s->in_cap) {
        size_t cap = s->in_cap ? s->in_cap : 4096;
        while (cap < s->in_len + n) cap *= 2;
        s->in = RM.Realloc(s->in, cap);
        s->in_cap = cap;
    }
    memcpy(s->in + s->in_len, p, n);
    s->in_len += n;
}

void shm_intake_done(struct shm_session *s) {
    s->in_len = 0;
    if (s->in_cap > KEEP_BUFFER) {
        RM.Free(s->in);
        s->in = NULL;
        s->in_cap = 0;
    }
}

enum shm_intake shm_intake_next(struct shm_session *s, const char **why) {
    for (int n = 0; n < RECORDS_PER_CALL; n++) {
        uint32_t type, len;
        const char *payload;
        int r = shm_ring_peek(&s->req, &type, &payload, &len);
        if (r == 0) return SHM_INTAKE_NONE;
        if (r < 0) return *why = "the client corrupted its request ring", SHM_INTAKE_BROKEN;
        shm_stats.bytes_in += len;
        uint32_t kind = SHM_REC_KIND(type);
        int last = !(type & SHM_REC_MORE);
        if (kind == SHM_REC_RESUME && !s->in_len && !s->skipping) {
            shm_ring_consume(&s->req, len);
            return SHM_INTAKE_RESUME;
        }
        if (kind != SHM_REC_REQUEST)
            return *why = "the client sent a record out of place", SHM_INTAKE_BROKEN;
        if (!s->skipping && s->in_len + len > (size_t)shm_cfg.input_limit) {
            shm_intake_done(s); /* drop what was gathered: it will not run */
            s->skipping = 1;
        }
        if (!s->skipping) append(s, payload, len);
        shm_ring_consume(&s->req, len);
        if (!last) continue;
        if (s->skipping) {
            s->skipping = 0;
            return SHM_INTAKE_OVERSIZE;
        }
        return SHM_INTAKE_REQUEST;
    }
    return SHM_INTAKE_NONE; /* the rest of the request comes in a later pass */
}
