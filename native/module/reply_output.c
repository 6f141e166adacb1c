/*
 * reply_output.c - moving reply bytes into a session's reply ring.
 *
 * The server never waits for a client: what does not fit stays as the
 * session's pending output (the CallReply itself is kept, not copied), and
 * the client's doorbell brings us back when it made room.  With AOF on,
 * replies of writes are held (written but not published) until the event
 * loop has written the AOF, as a socket client's reply would be.
 */
#include "reply_output.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "../channel/shm_wait.h"
#include "config.h"
#include "stats.h"

#define REFUSAL_PREFIX "-SHMFALLBACK "

static void wake_client(struct shm_session *s) {
    if (s->rep.hold) return; /* nothing visible yet */
    if (s->wake_deferred) {
        s->wake_owed = 1;
        return;
    }
    uint32_t waiting = atomic_load_explicit(&s->hdr->rep.consumer_waiting, memory_order_seq_cst);
    if (!waiting) return;
    shm_futex_wake(&s->hdr->rep.tail);
    /* An event-loop client waits on the socket.  The flag is the client's
       word, so this is never trusted to block: a full socket drops the
       message (the client has one to read already). */
    if (waiting == SHM_WAITING_SOCKET) send(s->sock, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void shm_reply_defer_wake(struct shm_session *s, int on) {
    s->wake_deferred = (uint8_t)on;
    if (on || !s->wake_owed) return;
    s->wake_owed = 0;
    wake_client(s);
}

/* BEFORE_SLEEP hooks seen: an AOF write happens after each. */
static uint64_t before_sleep_count;

void shm_reply_hold(struct shm_session *s) {
    if (!s->rep.hold) {
        s->rep.hold = 1;
        s->held_at = before_sleep_count;
    }
}

int shm_note_before_sleep(void) {
    before_sleep_count++;
    int held = 0;
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; !held && (s = shm_session_next(&c));) held = s->rep.hold;
    shm_table_unlock();
    return held;
}

void shm_publish_held(void) {
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; (s = shm_session_next(&c));) {
        if (!s->rep.hold || s->held_at == before_sleep_count) continue;
        s->rep.hold = 0;
        shm_ring_publish(&s->rep);
        wake_client(s);
    }
    shm_table_unlock();
}

static void release_output(struct shm_session *s) {
    if (s->out_reply) RM.FreeCallReply(s->out_reply);
    RM.Free(s->out_owned);
    s->out_reply = NULL;
    s->out_owned = NULL;
    s->out_ptr = NULL;
    s->out_len = s->out_off = 0;
}

/* Write as much pending output as fits; 1 when none is left. */
int shm_reply_flush(struct shm_session *s) {
    uint32_t max_fragment = shm_max_fragment(s->rep.cap);
    _Atomic uint32_t *waiting = &s->hdr->rep.producer_waiting;
    int wrote = 0;
    while (s->out_off < s->out_len) {
        size_t left = s->out_len - s->out_off;
        uint32_t frag = left > max_fragment ? max_fragment : (uint32_t)left;
        uint32_t type = SHM_REC_REPLY | (left > frag ? SHM_REC_MORE : 0);
        int r = shm_ring_write(&s->rep, type, s->out_ptr + s->out_off, frag);
        if (r < 0) {
            shm_session_fail(s, "the client corrupted its reply ring");
            return 0;
        }
        if (r == 0) {
            /* Say we wait for space, then look once more: either the client
               sees the flag after consuming, or we see its progress. */
            if (atomic_load_explicit(waiting, memory_order_relaxed)) break;
            atomic_store_explicit(waiting, 1, memory_order_seq_cst);
            continue;
        }
        s->out_off += frag;
        wrote = 1;
    }
    if (wrote) wake_client(s);
    if (s->out_off < s->out_len) {
        if (s->out_len - s->out_off > (size_t)shm_cfg.output_limit)
            shm_session_fail(s, "unread replies over shm.output-limit");
        return 0;
    }
    atomic_store_explicit(waiting, 0, memory_order_relaxed);
    release_output(s);
    return 1;
}

/* Send a reply.  `owner` (may be NULL) is freed once the bytes are out;
   without an owner the bytes are copied if they must wait. */
void shm_reply_send(struct shm_session *s, const char *data, size_t len,
                       RedisModuleCallReply *owner) {
    shm_stats.bytes_out += len;
    s->out_ptr = data;
    s->out_len = len;
    s->out_off = 0;
    s->out_reply = owner;
    if (shm_reply_flush(s) || owner || s->failed) return;
    size_t left = s->out_len - s->out_off;
    s->out_owned = RM.Alloc(left);
    memcpy(s->out_owned, s->out_ptr + s->out_off, left);
    s->out_ptr = s->out_owned;
    s->out_len = left;
    s->out_off = 0;
}

void shm_reply_text(struct shm_session *s, const char *text) {
    shm_reply_send(s, text, strlen(text), NULL);
}

void shm_reply_refusal(struct shm_session *s, const char *reason) {
    char line[160];
    snprintf(line, sizeof line, REFUSAL_PREFIX "%s\r\n", reason);
    shm_reply_text(s, line);
    s->refusing = 1;
    shm_stats.refused++;
}

void shm_reply_bulk_or_null(struct shm_session *s, const char *p, size_t len) {
    if (!p) {
        shm_reply_text(s, s->resp == 3 ? "_\r\n" : "$-1\r\n");
        return;
    }
    char head[32];
    int n = snprintf(head, sizeof head, "$%zu\r\n", len);
    char *buf = RM.Alloc((size_t)n + len + 2);
    memcpy(buf, head, (size_t)n);
    memcpy(buf + n, p, len);
    memcpy(buf + n + len, "\r\n", 2);
    shm_reply_send(s, buf, (size_t)n + len + 2, NULL);
    RM.Free(buf);
}

void shm_reply_call(struct shm_session *s, RedisModuleCallReply *r) {
    if (!r) {
        char line[128];
        snprintf(line, sizeof line, "-ERR shm: the command could not run (%s)\r\n",
                 strerror(errno));
        shm_reply_text(s, line);
        return;
    }
    size_t len;
    const char *proto = RM.CallReplyProto(r, &len);
    shm_reply_send(s, proto, len, r);
}
