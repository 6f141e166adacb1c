/*
 * connection_state.h - SELECT, AUTH, HELLO, CLIENT ID/GETNAME/SETNAME, RESET
 * and QUIT for a session (connection_state.c explains why they are emulated).
 */
#ifndef SHM_CONNECTION_STATE_H
#define SHM_CONNECTION_STATE_H

#include "command_policy.h"
#include "resp_request.h"
#include "rm_api.h"
#include "session.h"

/* ctx: the detached context the executor runs commands on. */
void shm_state_init(RedisModuleCtx *ctx);

/* Answer an emulated command and update the session.  `validated` is the
   reply of the same command run on RedisModule_Call's temporary client (NULL
   for HELLO, RESET and QUIT, which the server cannot judge there); it is
   consumed.  args[0..argc) are the arguments as strings.  Returns 1 when the
   session may have changed user, so the caller must look the user up again. */
int shm_state_run(struct shm_session *s, enum shm_action action, const resp_request *q,
                  RedisModuleString **args, RedisModuleCallReply *validated, int ctx_flags);

#endif
