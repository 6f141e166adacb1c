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
    int served_elsewhere; /* a session it served waits for its replies on another
                             CPU (or has not said where): worth spinning for */
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

/* shm.main-poll-us (main thread, in AFTER_SLEEP, after the pass that
   returned r): wait a little for the served sessions' next requests and run
   them, for at most one slice of this event-loop iteration.  Returns the
   last pass's result.  shm_main_poll_resumes: 1 when the wait goes on in
   the next iteration (the slice ran out within shm.main-poll-us of the last
   request, or a pass had side effects the loop must run first), so
   BEFORE_SLEEP must not let the loop sleep. */
struct shm_pass_result shm_main_poll(struct shm_pass_result r);
int shm_main_poll_resumes(void);

/* Hybrid polling (shm.poll-budget), called by the waiter only: the main
   thread in main-thread mode, the worker on the fast path.
   shm_poll_timer_fd: the timerfd the waiter must also wait on (created on
   first call; -1 if it cannot be).  shm_poll_plan: before sleeping, plan
   the next window and arm the timer (or disarm it).  shm_poll_window: after
   waking, poll through a window that is due; 1 when work arrived.
   shm_poll_timer_drain: the timer fired outside a window. */
int shm_poll_timer_fd(void);
void shm_poll_plan(void);
int shm_poll_window(void);
void shm_poll_timer_drain(void);

#endif
