/*
 * command_call.c - the execute step: RedisModule_Call with the flags that
 * make the server apply its own checks, and the reading of its verdict.
 *
 * Call flags (reference redis-modules-api.md §2.1):
 *   C  run as the session's user: the server checks the ACL (command, keys,
 *      channels) after arity, as processCommand does, and logs denials;
 *   S  script mode: for writes, the server's own min-replicas, MISCONF and
 *      read-only-replica guards, and the stale-replica guard for every
 *      command (never used for noscript commands: the policy refused those);
 *   M  deny-oom commands are rejected over maxmemory;
 *   E  every pre-execution failure comes back as an error reply;
 *   !  writes reach the AOF and the replicas; 3 for RESP3 sessions.
 * The socket checks the ACL before the guards, RedisModule_Call after, and a
 * socket client over maxmemory gets evictions first; so when a guard stops
 * the command (errno ESPIPE or ENOSPC) we refuse it, and the socket answers
 * in the server's order.  An ACL denial is answered here when the server
 * words it as on the socket (-NOPERM, Redis 7.2+ and Valkey); Redis 7.0
 * words it differently, so there it is refused too.
 *
 * The server writes the ACL LOG entry of a denial.  Redis 7.0 names in it
 * the user of the context's own client instead of the session's (fixed in
 * 7.2, the release that brought RegisterAuthCallback, which marks it here).
 * On 7.0 a denial is therefore found first, and for that one call the
 * context's client is authenticated as the session's user, then given back
 * to "default": its user pointer must not outlive an ACL DELUSER.
 */
#include "command_call.h"

#include <errno.h>
#include <string.h>

static const char *flags_for(enum shm_call_mode mode, int resp) {
    if (mode == SHM_CALL_VALIDATE) return resp == 3 ? "vEC3" : "vEC";
    return resp == 3 ? "v!ECSM3" : "v!ECSM";
}

static int starts_with(RedisModuleCallReply *r, const char *prefix) {
    size_t len, plen = strlen(prefix);
    const char *proto = RM.CallReplyProto(r, &len);
    return proto && len >= plen && !memcmp(proto, prefix, plen);
}

/* Redis 7.0 only: a denied call, logged under the session's user. */
static int denied_and_logged(RedisModuleCtx *ctx, RedisModuleUser *user, const char *cname,
                             RedisModuleString **args, size_t nargs) {
    if (RM.RegisterAuthCallback || RM.ACLCheckCommandPermissions(user, args, (int)nargs) == RM_OK)
        return 0;
    /* A disabled user cannot be authenticated: the denial then stays
       unlogged rather than logged under a user the context may no longer
       hold safely. */
    if (RM.AuthenticateClientWithUser(ctx, user, NULL, NULL, NULL) == RM_OK) {
        RedisModuleCallReply *r = RM.Call(ctx, cname, "vEC", args + 1, nargs - 1);
        if (r) RM.FreeCallReply(r);
        if (RM.AuthenticateClientWithACLUser(ctx, "default", 7, NULL, NULL, NULL) != RM_OK)
            RM.Log(NULL, "warning", "shm: cannot give the executor's context back to 'default'");
    }
    return 1;
}

struct shm_call_result shm_call(RedisModuleCtx *ctx, struct shm_session *s,
                                RedisModuleUser *user, enum shm_call_mode mode,
                                RedisModuleString **args, size_t nargs) {
    if (RM.SelectDb(ctx, s->db) != RM_OK) { /* cannot happen: SELECT was validated */
        shm_session_fail(s, "its db is out of range");
        return (struct shm_call_result){NULL, "invalid db"};
    }
    size_t name_len;
    const char *name = RM.StringPtrLen(args[0], &name_len);
    char small[64], *cname = name_len < sizeof small ? small : RM.Alloc(name_len + 1);
    memcpy(cname, name, name_len);
    cname[name_len] = '\0';
    RM.SetContextUser(ctx, user);
    if (denied_and_logged(ctx, user, cname, args, nargs)) {
        if (cname != small) RM.Free(cname);
        return (struct shm_call_result){NULL, "denied by ACL: the socket answers"};
    }
    errno = 0;
    RedisModuleCallReply *r = RM.Call(ctx, cname, flags_for(mode, s->resp), args + 1, nargs - 1);
    int err = errno;
    if (cname != small) RM.Free(cname);

    struct shm_call_result out = {r, NULL};
    if (!r) {
        out.refusal = "the command could not run";
    } else if (RM.CallReplyType(r) == RM_REPLY_ERROR) {
        if (err == ESPIPE || err == ENOSPC || err == EROFS)
            out.refusal = "a server guard stopped it: the socket answers";
        else if (err == EACCES && !starts_with(r, "-NOPERM"))
            out.refusal = "denied by ACL: the socket answers";
    }
    if (out.refusal && r) {
        RM.FreeCallReply(r);
        out.reply = NULL;
    }
    return out;
}
