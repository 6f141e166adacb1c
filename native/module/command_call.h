/*
 * command_call.h - runs one resolved, classified command through
 * RedisModule_Call as the session's user, and reads the server's verdict.
 */
#ifndef SHM_COMMAND_CALL_H
#define SHM_COMMAND_CALL_H

#include <stddef.h>

#include "rm_api.h"
#include "session.h"

enum shm_call_mode {
    SHM_CALL_EXECUTE, /* run it for real: replicated, with the write guards */
    SHM_CALL_VALIDATE /* run it on the throwaway client only to get the server's
                         verdict on an emulated command (no propagation) */
};

struct shm_call_result {
    RedisModuleCallReply *reply; /* set: send it (the caller owns it) */
    const char *refusal;         /* set instead: refuse, the socket answers */
};

/* args[0] is the command name.  ctx: the executor's detached context. */
struct shm_call_result shm_call(RedisModuleCtx *ctx, struct shm_session *s,
                                RedisModuleUser *user, enum shm_call_mode mode,
                                RedisModuleString **args, size_t nargs);

#endif
