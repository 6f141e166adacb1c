/*
 * server_config.c - CONFIG GET through RedisModule_Call: the Modules API of
 * Redis 7.0 has no other way to read a server setting.
 */
#include "server_config.h"

#include <string.h>

void shm_server_config(RedisModuleCtx *ctx, const char *name, char *out, size_t cap) {
    out[0] = '\0';
    RedisModuleCallReply *r = RM.Call(ctx, "CONFIG", "cc", "GET", name);
    if (r && RM.CallReplyType(r) == RM_REPLY_ARRAY && RM.CallReplyLength(r) == 2) {
        size_t len;
        const char *v = RM.CallReplyStringPtr(RM.CallReplyArrayElement(r, 1), &len);
        if (v && len < cap) {
            memcpy(out, v, len);
            out[len] = '\0';
        }
    }
    if (r) RM.FreeCallReply(r);
}
