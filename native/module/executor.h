/*
 * executor.h - runs sessions' requests and writes their replies.  Called with
 * the GIL held, by the main thread's AFTER_SLEEP hook or the fast-path worker.
 */
#ifndef SHM_EXECUTOR_H
#define SHM_EXECUTOR_H

#include "rm_api.h"

struct shm_pass_result {
    int executed;     /* commands run */
    int side_effects; /* some of them need the event loop to run (writes...) */
    int failed;       /* sessions were marked for closing */
};

/* Create the context commands run on (a detached one: on 7.0 a denial
   through a temporary context crashes the server). */
int shm_executor_init(RedisModuleCtx *ctx);

/* One bounded pass over every session: pending output first, then up to
   shm.batch-max requests each.  Table lock must NOT be held by the caller. */
struct shm_pass_result shm_execute_pass(void);

/* 1 when some session has a request or can take pending output. */
int shm_work_pending(void);

/* Set (or clear) every session's "server sleeps" flag; returns 1 when work
   arrived meanwhile, so the caller must not sleep. */
int shm_mark_sleeping(int sleeping);

/* Close sessions that a pass marked as failed (main thread only). */
void shm_reap_failed(void);

#endif
