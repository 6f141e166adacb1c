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
 *
 * Cluster: after the ACL, RedisModule_Call asks the server's own slot check
 * (getNodeByQuery, as processCommand does) whether this node serves the
 * command's keys, with the ASKING and READONLY flags of the context's client,
 * which has neither.  When it does not (a key of another node, CROSSSLOT, a
 * MIGRATING slot's missing key, an IMPORTING slot, TRYAGAIN, a replica's
 * read), the command does not run: errno EPERM; ENETDOWN or EROFS when the
 * cluster is down.  We refuse it, and the socket answers MOVED, ASK,
 * CROSSSLOT, TRYAGAIN or CLUSTERDOWN with the connection's own flags.  The
 * error's text is checked with the errno (Redis 7.0 to 7.4 and Valkey 8 word
 * it alike), so that an errno a command left behind while running is never
 * taken for a refusal: only a pre-execution failure comes back with it.
 *
 * A command whose keys hash to more than one slot never reaches
 * RedisModule_Call in cluster mode: it is refused here, and the socket
 * answers CROSSSLOT (or its ACL error, first).  Valkey 9's RedisModule_Call
 * marks the server's pooled module client cross-slot and never clears the
 * mark, so after one such call every later RedisModule_Call that gets that
 * client (every session's, keyless ones included, and other modules') failed
 * as not served.  The keys are the server's (GetCommandKeysWithFlags), their
 * slots too (ClusterKeySlot: Redis 7.4+, Valkey 8+); the servers without it
 * (Redis 7.0 and 7.2) check the keys inside getNodeByQuery on each call and
 * keep nothing, so there the server's own check is enough.
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

/* RedisModule_Call's own "not served here" errors (module.c, RM_Call). */
static int cluster_refusal(RedisModuleCallReply *r, int err) {
    if (err == EPERM)
        return starts_with(r, "-ERR Attempted to access a non local key in a cluster node\r\n");
    if (err == ENETDOWN)
        return starts_with(r, "-ERR Can not execute a command '");
    if (err == EROFS)
        return starts_with(r, "-ERR Can not execute a write command '");
    return 0;
}

/* 1 when the command's keys hash to more than one slot (see above). */
static int keys_in_several_slots(RedisModuleCtx *ctx, RedisModuleString **args, size_t nargs) {
    if (nargs < 3 || !RM.ClusterKeySlot || !RM.GetCommandKeysWithFlags) return 0; /* one key */
    if (!(RM.GetContextFlags(ctx) & RM_CTX_FLAGS_CLUSTER)) return 0;
    int nkeys = 0, several = 0;
    int *pos = RM.GetCommandKeysWithFlags(ctx, args, (int)nargs, &nkeys, NULL);
    if (!pos) return 0; /* no keys, or a command the server will refuse itself */
    unsigned int first = 0;
    for (int i = 0, seen = 0; i < nkeys && !several; i++) {
        if (pos[i] < 1 || (size_t)pos[i] >= nargs) continue;
        unsigned int slot = RM.ClusterKeySlot(args[pos[i]]);
        several = seen && slot != first;
        if (!seen) first = slot, seen = 1;
    }
    RM.ServerFree(pos);
    return several;
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
    if (mode == SHM_CALL_EXECUTE && keys_in_several_slots(ctx, args, nargs)) {
        if (cname != small) RM.Free(cname);
        return (struct shm_call_result){NULL, "keys in more than one slot: the socket answers"};
    }
    errno = 0;
    RedisModuleCallReply *r = RM.Call(ctx, cname, flags_for(mode, s->resp), args + 1, nargs - 1);
    int err = errno;
    if (cname != small) RM.Free(cname);

    struct shm_call_result out = {r, NULL};
    if (!r) {
        out.refusal = "the command could not run";
    } else if (RM.CallReplyType(r) == RM_REPLY_ERROR) {
        if (cluster_refusal(r, err))
            out.refusal = "not served by this cluster node: the socket answers";
        else if (err == ESPIPE || err == ENOSPC || err == EROFS)
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
