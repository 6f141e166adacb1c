/*
 * command_policy.h - decides, per command, whether it may run over shared
 * memory, must be emulated to keep per-connection state, or is refused so the
 * client sends it over its socket instead (DESIGN §4 "Semantics contract").
 */
#ifndef SHM_COMMAND_POLICY_H
#define SHM_COMMAND_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "rm_api.h"

enum shm_action {
    SHM_ACT_CALL,            /* RedisModule_Call as the session's user */
    SHM_ACT_REFUSE,          /* answer -SHMFALLBACK: the socket does it right */
    SHM_ACT_SELECT,          /* validated by the server, then the session's db */
    SHM_ACT_HELLO,
    SHM_ACT_AUTH,
    SHM_ACT_RESET,
    SHM_ACT_QUIT,
    SHM_ACT_CLIENT_ID,
    SHM_ACT_CLIENT_GETNAME,
    SHM_ACT_CLIENT_SETNAME,
};

/* Command flags we care about, from COMMAND INFO. */
enum {
    SHM_CMD_KNOWN = 1 << 0,
    SHM_CMD_WRITE = 1 << 1,
    SHM_CMD_DENYOOM = 1 << 2,
    SHM_CMD_BLOCKING = 1 << 3,
    SHM_CMD_MAY_REPLICATE = 1 << 4,
    SHM_CMD_PUBSUB = 1 << 5,
    SHM_CMD_ADMIN = 1 << 6,
    SHM_CMD_NOAUTH = 1 << 7,
};

struct shm_verdict {
    enum shm_action action;
    uint32_t flags;     /* SHM_CMD_* of the command */
    const char *reason; /* for SHM_ACT_REFUSE */
};

/* Classify argv[0..argc) (argv[0] is the command name).  ctx is a context on
   which RedisModule_Call may run (GIL held), used to learn unknown commands'
   flags once.  ctx_flags: RedisModule_GetContextFlags, read once per pass. */
struct shm_verdict shm_policy_classify(RedisModuleCtx *ctx, const char *const *argv,
                                       const size_t *argvlen, size_t argc, int ctx_flags);

/* A command wrote or published: the event loop must run for its side effects
   (AOF, replicas, blocked clients, subscribers). */
static inline int shm_policy_has_side_effects(uint32_t flags) {
    return !(flags & SHM_CMD_KNOWN) ||
           (flags & (SHM_CMD_WRITE | SHM_CMD_MAY_REPLICATE | SHM_CMD_PUBSUB | SHM_CMD_ADMIN));
}

/* Called by the command filter: CLIENT PAUSE / UNPAUSE / FAILOVER / SHUTDOWN
   seen anywhere pause our writes (writes during a pause crash the server,
   reference/redis-modules-api.md §3.6). */
void shm_policy_observe(const char *const *argv, const size_t *argvlen, size_t argc);
void shm_policy_role_changed(void);
/* Forget learned command flags (a module was loaded or unloaded). */
void shm_policy_forget_commands(void);

#endif
