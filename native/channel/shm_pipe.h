/*
 * shm_pipe.h - `shmcli --pipe` (mass insertion) in C: the per-command work
 * that Python cannot do a million times a second.
 *
 * Three jobs, all driven from shmcli/pipe_mode.py through cffi:
 *
 * 1. Splitting.  The input is a byte stream of RESP multibulk and inline
 *    commands, mixed, exactly what redis-cli --pipe writes to the socket.  The
 *    module accepts only one canonical multibulk per request record, so the
 *    stream is cut into commands here, as long as it is in the form every
 *    supported server reads the same way (shm_pipe.c says which); inline
 *    commands are re-encoded.  At the first command in any other form the
 *    split hands the rest of the input over to the socket, so the server's
 *    own parser decides about it.  Commands whose name the caller routes
 *    itself (SELECT, MULTI, SUBSCRIBE...) are flagged.
 *
 * 2. Running over shared memory.  A run writes the commands into the request
 *    ring and drains replies while it writes (a request never waits for a
 *    reply to be read), counting replies and error replies and stopping at
 *    the first -SHMFALLBACK, at a flagged command, or at the final ECHO.
 *
 * 3. Counting socket replies.  Without a session, the input goes to the
 *    socket unchanged, as redis-cli sends it, and this scanner counts the
 *    replies that come back (any RESP2/RESP3 reply, split anywhere).
 *
 * The counters, the error texts and the final-ECHO detection are the same
 * for all three, so the output is redis-cli's whichever way a command went.
 */
#ifndef SHM_PIPE_H
#define SHM_PIPE_H

#include <stddef.h>
#include <stdint.h>

#include "shm_client.h"

/* Flags of a split command. */
#define SHM_PIPE_ROUTED 1u /* its name is in the caller's routed set */

#define SHM_PIPE_MAGIC_LEN 20

enum shm_pipe_status {
    SHM_PIPE_OK = 0,      /* the run ended at the end or at a flagged command */
    SHM_PIPE_REFUSED = 1, /* the module refused a command; it and the rest were not run */
    SHM_PIPE_DONE = 2,    /* the final ECHO came back */
    SHM_PIPE_AGAIN = 3,   /* the wait ran out with replies outstanding: call again */
    SHM_PIPE_BAD_REPLY = 4, /* the scanner met bytes that are not RESP */
    /* negative values: enum shm_client_status */
};

/* What the caller reads and, for commands it runs itself, updates. */
struct shm_pipe_stats {
    uint64_t replies;       /* replies counted, error replies included */
    uint64_t errors;        /* error replies */
    uint64_t last_reply_ns; /* CLOCK_MONOTONIC time of the last reply */
    int armed;              /* the input ended: a reply equal to the ECHO ends the run */
    int done;               /* the final ECHO came back */
};

struct shm_pipe;

/* routed: lower-case command names, each followed by a NUL byte.  magic: the
   20 bytes the final ECHO carries. */
struct shm_pipe *shm_pipe_new(const char *routed, size_t routed_len, const char *magic);
void shm_pipe_free(struct shm_pipe *p);
struct shm_pipe_stats *shm_pipe_stats(struct shm_pipe *p);

/* Append input and split every complete command in what is buffered; the
   commands of the previous feed are forgotten.  final: this is the end of the
   input; the final ECHO is appended first (after a CRLF, as redis-cli does)
   and the stats are armed.  Returns SHM_OK, SHM_E_NOMEM, or SHM_E_PROTO when
   a run is still under way. */
int shm_pipe_feed(struct shm_pipe *p, const char *data, size_t len, int final);
size_t shm_pipe_count(struct shm_pipe *p);
/* Command i of the last feed (canonical RESP); returns its flags. */
uint32_t shm_pipe_command(struct shm_pipe *p, size_t i, const char **req, size_t *len);
/* 1 when the split stopped for good at the tail: the rest of the input,
   from the tail on, goes to the socket as it is. */
int shm_pipe_handoff(struct shm_pipe *p);
/* The bytes after the last split command (unparsed, as received). */
void shm_pipe_tail(struct shm_pipe *p, const char **buf, size_t *len);

/* Run the commands of the last feed from `start` over the session: up to the
   end of the feed or the first flagged command.  Waits at most wait_ms for a
   reply at a time (< 0: as long as the server lives); SHM_PIPE_AGAIN then
   means the run is still under way and the next call (same start) goes on.
   *next: where the run stopped (the refused command for REFUSED). */
int shm_pipe_run(struct shm_pipe *p, struct shm_client *c, size_t start, int64_t wait_ms,
                 size_t *next);

/* Count the socket replies in buf.  Returns how many bytes were used; the
   rest (at most one incomplete line or small reply) must be passed again in
   front of the next bytes.  *status: SHM_PIPE_OK, SHM_PIPE_DONE or
   SHM_PIPE_BAD_REPLY. */
size_t shm_pipe_scan(struct shm_pipe *p, const char *buf, size_t len, int *status);

/* The error replies' texts seen since the last clear, one per line, as
   redis-cli prints them. */
void shm_pipe_errors(struct shm_pipe *p, const char **text, size_t *len);
void shm_pipe_clear_errors(struct shm_pipe *p);

#endif
