/*
 * reply_output.h - replies into the session's ring, pending output, held
 * replies, the refusal error.  Callers hold the GIL and the table lock.
 */
#ifndef SHM_REPLY_OUTPUT_H
#define SHM_REPLY_OUTPUT_H

#include <stddef.h>

#include "rm_api.h"
#include "session.h"

/* Send a reply.  `owner` (may be NULL) is freed once the bytes are out;
   without an owner the bytes are copied if they must wait. */
void shm_reply_send(struct shm_session *s, const char *data, size_t len,
                    RedisModuleCallReply *owner);
void shm_reply_text(struct shm_session *s, const char *text);
void shm_reply_bulk_or_null(struct shm_session *s, const char *p, size_t len);
/* The reply of a RedisModule_Call (consumed; NULL: the call itself failed). */
void shm_reply_call(struct shm_session *s, RedisModuleCallReply *r);
static inline int shm_call_failed(RedisModuleCallReply *r) {
    return !r || RM.CallReplyType(r) == RM_REPLY_ERROR;
}
/* -SHMFALLBACK <reason>, and the session refuses until RESUME. */
void shm_reply_refusal(struct shm_session *s, const char *reason);

/* Write as much pending output as fits; 1 when none is left. */
int shm_reply_flush(struct shm_session *s);

/* While on (1), replies are published as they are written but the client
   is woken only when it is turned off again (0): one wake-up for a batch.
   For a client that waits on the CPU we run on, which could not read
   before we stop anyway, and whom an early wake-up would let preempt us
   after each reply. */
void shm_reply_defer_wake(struct shm_session *s, int on);

/* Hold this session's replies until the AOF is written (see below). */
void shm_reply_hold(struct shm_session *s);

/* With AOF on, a socket client gets its reply only after beforeSleep wrote
   the AOF; held replies wait for that.  Call shm_note_before_sleep from the
   BEFORE_SLEEP hook (returns 1 when replies are held, so the loop must come
   back at once) and shm_publish_held at the start of AFTER_SLEEP. */
int shm_note_before_sleep(void);
void shm_publish_held(void);

#endif
