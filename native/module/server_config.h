/*
 * server_config.h - reading one of the server's own settings (CONFIG GET),
 * for decisions made once at load: where the socket goes, whether the fast
 * path is safe.
 */
#ifndef SHM_SERVER_CONFIG_H
#define SHM_SERVER_CONFIG_H

#include <stddef.h>

#include "rm_api.h"

/* CONFIG GET <name>'s value into out (NUL-terminated; "" when unknown or
   longer than cap - 1).  ctx: a context RedisModule_Call may run on. */
void shm_server_config(RedisModuleCtx *ctx, const char *name, char *out, size_t cap);

#endif
