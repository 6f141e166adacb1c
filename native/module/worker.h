/*
 * worker.h - the fast-path execution thread (shm.exec-mode fast-path).
 */
#ifndef SHM_WORKER_H
#define SHM_WORKER_H

#include "rm_api.h"

/* kick_fd: an eventfd in the main event loop, written to wake it. */
int shm_worker_start(RedisModuleCtx *ctx, int kick_fd);
int shm_worker_watch(int doorbell_fd);
void shm_worker_unwatch(int doorbell_fd);
/* End the thread (main thread, without the GIL held by the worker). */
void shm_worker_stop(void);

#endif
