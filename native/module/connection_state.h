/*
 * connection_state.h - SELECT, CLIENT ID/GETNAME/SETNAME and QUIT for a
 * session (connection_state.c explains why they are emulated).
 */
#ifndef SHM_CONNECTION_STATE_H
#define SHM_CONNECTION_STATE_H

#include "command_policy.h"
#include "resp_request.h"
#include "rm_api.h"
#include "session.h"

/* Answer an emulated command and update the session.  `validated` is the
   reply of the same command run on RedisModule_Call's throwaway client, with
   the session's user (NULL for QUIT); it is consumed.  args[0..q->argc) are
   the private copy's arguments as strings, arity already checked. */
void shm_state_run(RedisModuleCtx *ctx, struct shm_session *s, enum shm_action action,
                   const resp_request *q, RedisModuleString **args,
                   RedisModuleCallReply *validated);

#endif
