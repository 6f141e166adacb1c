/*
 * command_policy.h - decides, per resolved command, whether it runs over
 * shared memory, is answered by the module to keep per-connection state, or
 * is refused so the client sends it over its socket (DESIGN §4, "Semantics
 * contract").  The decision depends on the command only; the server's state
 * (pause, guards, ACL) is checked by the executor when it runs.
 */
#ifndef SHM_COMMAND_POLICY_H
#define SHM_COMMAND_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "command_lookup.h"

enum shm_action {
    SHM_ACT_CALL,   /* RedisModule_Call as the session's user */
    SHM_ACT_REFUSE, /* answer -SHMFALLBACK: the socket does it right */
    SHM_ACT_SELECT, /* validated by the server, then the session's db */
    SHM_ACT_QUIT,
    SHM_ACT_CLIENT_ID,
    SHM_ACT_CLIENT_GETNAME,
    SHM_ACT_CLIENT_SETNAME,
};

struct shm_verdict {
    enum shm_action action;
    const char *reason; /* for SHM_ACT_REFUSE */
};

/* cmd: shm_command_lookup()'s answer for a request of argc arguments (its
   policy_rule is filled on first use, so the name rules run once a command). */
struct shm_verdict shm_policy_classify(struct shm_command *cmd, size_t argc);

/* The command may write or publish: the event loop must run for its side
   effects (AOF, replicas, blocked clients, subscribers). */
static inline int shm_policy_has_side_effects(const struct shm_command *cmd) {
    return (cmd->flags &
            (SHM_CMD_WRITE | SHM_CMD_MAY_REPLICATE | SHM_CMD_PUBSUB | SHM_CMD_ADMIN)) != 0;
}

#endif
