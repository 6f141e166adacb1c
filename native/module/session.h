/*
 * session.h - one client's shared-memory session and the table of them.
 *
 * A session is bound to the Redis connection that asked for it (its control
 * connection): it runs as that connection's ACL user, reports that
 * connection's id, and dies with it.  The table is guarded by `table_lock`
 * because the fast-path worker polls it without the GIL; whoever executes
 * commands holds the GIL first, then the table lock.
 */
#ifndef SHM_SESSION_H
#define SHM_SESSION_H

#include <pthread.h>
#include <stdint.h>

#include "../channel/shm_ring.h"
#include "rm_api.h"

#define SHM_USER_MAX 256
#define SHM_RHYTHM_GAPS 8 /* gaps learned before a session's rhythm counts */

struct shm_session {
    uint64_t id;
    uint64_t control_client_id; /* the Redis connection this session belongs to */
    int sock;                   /* SOCK_SEQPACKET to the client: hang-up = client gone */
    int doorbell;               /* eventfd the client rings when we said we sleep */
    struct shm_region_header *hdr;
    size_t region_size;
    struct shm_ring_reader req;
    struct shm_ring_writer rep;

    /* connection state, as a socket client has it */
    char user[SHM_USER_MAX];
    int db;
    int resp; /* 2 or 3 */
    int refusing; /* refused a command: refuse the rest until RESUME */
    const char *closing; /* close once the reply is out: "" after QUIT, else why */
    const char *failed; /* set: close at the next reap ("" = a normal close) */
    uint64_t held_at;   /* replies held since this BEFORE_SLEEP count (rep.hold) */

    /* the private copy of the request being gathered (request_intake.c) */
    char *in;
    size_t in_len, in_cap;
    int skipping; /* dropping the fragments of a request over shm.input-limit */

    /* reply bytes that did not fit into the ring yet */
    RedisModuleCallReply *out_reply; /* owner of out_ptr when set */
    char *out_owned;                 /* or this */
    const char *out_ptr;
    size_t out_len, out_off;

    /* the rhythm of its requests, learned by executor.c for polling; only
       ever a hint: it decides when to look at the ring, never what runs */
    uint64_t seen_ns;    /* when a pass last found requests */
    uint64_t gap_ns;     /* running mean of the gaps between them */
    uint64_t gap_dev_ns; /* running mean deviation of those gaps */
    uint32_t gaps;       /* gaps learned since the rhythm last broke */
    uint32_t first_gaps[SHM_RHYTHM_GAPS]; /* the first ones, ns (at most 1 s each) */
    uint32_t served;     /* number of the last pass that ran a request of it */
    uint8_t poll_misses; /* hybrid windows in a row its request missed */
    uint8_t outliers;    /* gaps in a row far off the rhythm */
    uint8_t main_misses; /* main-thread polls in a row it did not come back in */
    uint16_t main_skip;  /* served passes to go before it is polled again */
    int main_waited;     /* in the main-thread poll under way */
    uint8_t wake_deferred; /* its client waits on the CPU serving it: wake it once, after the batch */
    uint8_t wake_owed;     /* a reply was written while the wake-up was deferred */
};

/* Set while a pass executes commands (GIL and table lock held). */
extern int shm_pass_running;

/* The session table belongs to session.c.  Everyone else walks it with the
   table lock held:
       shm_table_lock();
       for (int c = 0; (s = shm_session_next(&c));) ...
       shm_table_unlock();                                                   */
void shm_table_lock(void);
void shm_table_unlock(void);
struct shm_session *shm_session_next(int *cursor);
/* 0 until the first session ever opened: lets idle hooks return at once. */
int shm_sessions_ever(void);

int shm_sessions_init(RedisModuleCtx *ctx);
/* The server shuts down: remove the socket from the file system. */
void shm_sessions_shutdown(void);
/* Close every session and the socket (the module is being unloaded). */
void shm_sessions_close_all(void);

/* SHM.HANDSHAKE: issue a token for the calling connection. */
int shm_handshake_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* The control connection went away: end its sessions and tokens. */
void shm_sessions_client_gone(uint64_t client_id);

/* Drop expired tokens and silent connections (cheap when there are none). */
void shm_sessions_expire(void);

/* Mark a session for closing (any thread holding the table lock); the main
   thread closes it at the next reap.  The first reason wins. */
static inline void shm_session_fail(struct shm_session *s, const char *why) {
    if (!s->failed) s->failed = why;
}

/* End a session (table lock held, main thread). */
void shm_session_close(struct shm_session *s, const char *why);

int shm_session_count(void);

/* Bytes buffered by all sessions (table lock held): private request copies
   and reply bytes waiting for room in a ring.  Reported by INFO shm. */
struct shm_buffered {
    unsigned long long input, output;
};
struct shm_buffered shm_sessions_buffered(void);
const char *shm_socket_path(void);

#endif
