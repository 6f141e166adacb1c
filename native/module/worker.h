/*
 * worker.h - the fast-path execution thread (shm.exec-mode fast-path).
 */
#ifndef SHM_WORKER_H
#define SHM_WORKER_H

#include "rm_api.h"

/* Why running commands on a module thread is not safe on this server, or
   NULL when it is (ctx: the OnLoad context). */
const char *shm_worker_unsafe(RedisModuleCtx *ctx);

/* kick_fd: an eventfd in the main event loop, written to wake it. */
int shm_worker_start(RedisModuleCtx *ctx, int kick_fd);
/* 1 while the fast path runs (shm.exec-mode fast-path, and safe here). */
int shm_worker_running(void);
int shm_worker_watch(int doorbell_fd);
void shm_worker_unwatch(int doorbell_fd);
/* End the thread (main thread, without the GIL held by the worker). */
void shm_worker_stop(void);

#endif
