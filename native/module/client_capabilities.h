/*
 * client_capabilities.h - which connections told the server `CLIENT CAPA
 * redirect` (Valkey 8+), so that their sessions leave to the socket what a
 * replica would answer with -REDIRECT there (client_capabilities.c).
 */
#ifndef SHM_CLIENT_CAPABILITIES_H
#define SHM_CLIENT_CAPABILITIES_H

#include <stddef.h>
#include <stdint.h>

#include "rm_api.h"

/* Register the command filter (OnLoad), on a server that has CLIENT CAPA.
   Elsewhere (Redis; servers without the filter APIs, which all lack CLIENT
   CAPA) nothing is registered and no connection is ever marked.  RM_ERR
   only when registering failed. */
int shm_capa_init(RedisModuleCtx *ctx);

/* The connection closed (ClientChange): forget it. */
void shm_capa_client_gone(uint64_t client_id);

/* Why a command that would run through RedisModule_Call must go to the
   socket for a session of the connection `client_id`, or NULL when it may
   run here.  ctx_flags: GetContextFlags of this pass. */
const char *shm_capa_refusal(int ctx_flags, uint64_t client_id);

/* Connections marked now (INFO shm capa_redirect_clients). */
size_t shm_capa_marked(void);

#endif
