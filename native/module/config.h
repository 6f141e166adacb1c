/*
 * config.h - the module's settings, registered as module configs (shm.*) so
 * they work on the command line, in redis.conf and with CONFIG SET/GET.
 */
#ifndef SHM_CONFIG_H
#define SHM_CONFIG_H

#include "rm_api.h"

enum shm_exec_mode { SHM_EXEC_MAIN_THREAD = 0, SHM_EXEC_FAST_PATH = 1 };

struct shm_config {
    char socket_path[108];   /* shm.socket-path (immutable); "": socket_location.c */
    long long socket_perm;   /* shm.socket-perm, octal; -1 ("") = as the server's socket */
    long long max_sessions;  /* shm.max-sessions */
    long long ring_size;     /* shm.ring-size: bytes per ring, for new sessions */
    long long input_limit;   /* shm.input-limit: largest request; larger go to the socket */
    long long output_limit;  /* shm.output-limit: reply bytes a session may leave unread */
    long long batch_max;     /* shm.batch-max: commands per session per pass */
    long long exec_mode;     /* shm.exec-mode (immutable): main-thread | fast-path */
    long long worker_spin_us;/* shm.worker-spin-us: fast path's spin after traffic */
    long long main_poll_us;  /* shm.main-poll-us: main thread's poll after serving requests */
    long long poll_budget;   /* shm.poll-budget: % of one core for hybrid polling; 0 = off */
};

extern struct shm_config shm_cfg;

/* Register every config and load the values given to the server. */
int shm_config_register(RedisModuleCtx *ctx);

#endif
