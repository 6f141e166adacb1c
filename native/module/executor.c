/*
 * executor.c - runs sessions' requests and moves their replies into the rings.
 *
 * One request takes the path of DESIGN §5, one step per file:
 *   copy      request_intake.c   out of the shared ring, once, bounded
 *   parse     resp_request.c     strict RESP, from the private copy
 *   resolve   command_lookup.c   the command the server will run
 *   classify  command_policy.c   run, emulate, or refuse to the socket
 *   check     here               server state: loading, client pause
 *   execute   command_call.c     RedisModule_Call as the session's user,
 *                                with the server's ACL, guards and OOM checks
 *             connection_state.c the emulated per-connection commands
 *   reply     reply_output.c     into the reply ring
 * Nothing after the copy reads the shared region.
 *
 * Commands run on one detached context, as the session's ACL user (looked up
 * per pass, never kept), in the session's db and RESP version.  The reply's
 * raw protocol (CallReplyProto) is what goes into the reply ring, so the
 * client receives the bytes a socket would have carried.  A session with
 * pending output reads no new request until it has drained.
 */
#include "executor.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "../channel/shm_wait.h"
#include "command_call.h"
#include "command_lookup.h"
#include "command_policy.h"
#include "config.h"
#include "connection_state.h"
#include "reply_output.h"
#include "request_intake.h"
#include "resp_request.h"
#include "session.h"
#include "stats.h"

#define STACK_ARGS 16

static RedisModuleCtx *dctx;

/* Scratch space for parsed argument arrays: one pass at a time holds the GIL. */
static void *scratch;
static size_t scratch_cap;

static void *scratch_alloc(size_t bytes, void *ud) {
    (void)ud;
    if (bytes > scratch_cap) {
        RM.Free(scratch);
        scratch = RM.Alloc(bytes);
        scratch_cap = bytes;
    }
    return scratch;
}

static void scratch_release(void *p, void *ud) {
    (void)p;
    (void)ud;
}

static const resp_request_allocator scratch_allocator = {scratch_alloc, scratch_release, NULL};

int shm_executor_init(RedisModuleCtx *ctx) {
    dctx = RM.GetDetachedThreadSafeContext(ctx);
    return dctx ? RM_OK : RM_ERR;
}

/* ---- running one command ---- */

struct pass {
    int ctx_flags;
    RedisModuleUser *user; /* the current session's, for this pass only */
    struct shm_pass_result result;
};

static void drop_user(struct pass *p) {
    if (!p->user) return;
    RM.SetContextUser(dctx, NULL);
    RM.FreeModuleUser(p->user);
    p->user = NULL;
}

/* The session runs as the user its control connection had at the
   handshake, for as long as that connection keeps that user: an AUTH, HELLO
   AUTH or RESET there ends the session (the client opens a new one), as do
   CLIENT KILL and ACL DELUSER, which close the connection.  Looked up again
   every pass and after every write, never kept (the ACL user may be freed). */
static RedisModuleUser *session_user(struct pass *p, struct shm_session *s) {
    if (p->user) return p->user;
    RedisModuleString *now = RM.GetClientUserNameById(dctx, s->control_client_id);
    if (!now) {
        shm_session_fail(s, "its connection is gone");
        return NULL;
    }
    size_t len;
    const char *name = RM.StringPtrLen(now, &len);
    if (len != strlen(s->user) || memcmp(name, s->user, len) != 0)
        shm_session_fail(s, "its connection changed user");
    else if (!(p->user = RM.GetModuleUserFromUserName(now)))
        shm_session_fail(s, "its ACL user no longer exists");
    RM.FreeString(dctx, now);
    return p->user;
}

/* The server state that stops a command before it runs, checked after the
   command's own (lookup, arity: the policy) and before anything executes.
   The rest (ACL, write guards, OOM) the server checks inside the call. */
static const char *server_state_refusal(const struct pass *p) {
    /* While loading, and while a replica loads a new data set beside the
       one it serves (repl-diskless-load swapdb), the socket refuses or
       allows per command (-LOADING, no-async-loading): leave it to it. */
    if (p->ctx_flags & (RM_CTX_FLAGS_LOADING | RM_CTX_FLAGS_ASYNC_LOADING))
        return "the server is loading";
    /* The server's own pause state (CLIENT PAUSE, FAILOVER, a SHUTDOWN
       waiting for replicas, pauses inside MULTI): a write now would trip
       its assertion, and a paused socket client would wait. */
    if (RM.AvoidReplicaTraffic()) return "clients are paused";
    return NULL;
}

static void execute(struct pass *p, struct shm_session *s, const resp_request *q,
                    const struct shm_command *cmd, struct shm_verdict v,
                    RedisModuleUser *user) {
    RedisModuleString *stack_args[STACK_ARGS];
    RedisModuleString **args =
        q->argc <= STACK_ARGS ? stack_args : RM.Alloc(sizeof *args * q->argc);
    for (size_t i = 0; i < q->argc; i++) args[i] = RM.CreateString(NULL, q->argv[i], q->argvlen[i]);

    int side_effects = v.action == SHM_ACT_CALL && shm_policy_has_side_effects(cmd);
    if (side_effects && (p->ctx_flags & RM_CTX_FLAGS_AOF)) shm_reply_hold(s);
    struct shm_call_result r =
        shm_call(dctx, s, user, v.action == SHM_ACT_CALL ? SHM_CALL_EXECUTE : SHM_CALL_VALIDATE,
                 args, q->argc);
    if (r.refusal) {
        shm_reply_refusal(s, r.refusal);
    } else {
        p->result.executed++;
        shm_stats.commands++;
        p->result.side_effects |= side_effects;
        if (v.action == SHM_ACT_CALL)
            shm_reply_call(s, r.reply);
        else
            shm_state_run(dctx, s, v.action, q, args, r.reply);
    }
    for (size_t i = 0; i < q->argc; i++) RM.FreeString(NULL, args[i]);
    if (args != stack_args) RM.Free(args);
    /* A write may have changed the ACL user we hold: look it up again. */
    if (side_effects) drop_user(p);
}

/* copy (done) -> parse -> resolve and classify -> check -> execute -> reply */
static void run_request(struct pass *p, struct shm_session *s) {
    resp_request q;
    const char *err = NULL;
    int rc = resp_request_parse(s->in, s->in_len, 1024 * 1024, (size_t)shm_cfg.input_limit,
                                &scratch_allocator, &q, &err);
    if (rc != RESP_REQUEST_OK) {
        char line[160];
        snprintf(line, sizeof line, "-ERR Protocol error: %s\r\n",
                 rc == RESP_REQUEST_ENOMEM ? "out of memory" : err);
        shm_reply_text(s, line);
        s->closing = "Protocol error"; /* as on a socket: the connection ends after it */
        return;
    }
    if (s->refusing) {
        shm_reply_refusal(s, "skipped after a refusal");
        return;
    }
    struct shm_command *cmd =
        shm_command_lookup(dctx, (const char *const *)q.argv, q.argvlen, q.argc);
    struct shm_verdict v = shm_policy_classify(cmd, q.argc);
    const char *refusal = v.action == SHM_ACT_REFUSE ? v.reason : server_state_refusal(p);
    if (refusal) {
        shm_reply_refusal(s, refusal);
        return;
    }
    if (v.action == SHM_ACT_QUIT) {
        shm_state_run(dctx, s, v.action, &q, NULL, NULL);
        return;
    }
    RedisModuleUser *user = session_user(p, s);
    if (user) execute(p, s, &q, cmd, v, user);
}

/* ---- passes ---- */

static void run_session(struct pass *p, struct shm_session *s) {
    /* Once per pass, not per reply: a head the client moved somewhere
       impossible ends the session even while the ring has room. */
    if (shm_ring_check_head(&s->rep) < 0) {
        shm_session_fail(s, "the client corrupted its reply ring");
        return;
    }
    if (s->out_len && !shm_reply_flush(s)) return;
    uint32_t head_before = s->req.head;
    for (long long n = 0; n < shm_cfg.batch_max && !s->failed && !s->closing; n++) {
        const char *why = NULL;
        enum shm_intake got = shm_intake_next(s, &why);
        if (got == SHM_INTAKE_NONE) break;
        if (got == SHM_INTAKE_BROKEN) {
            shm_session_fail(s, why);
            break;
        }
        if (got == SHM_INTAKE_RESUME) {
            s->refusing = 0;
            continue;
        }
        if (got == SHM_INTAKE_OVERSIZE) {
            shm_reply_refusal(s, "request over shm.input-limit");
        } else {
            run_request(p, s);
            shm_intake_done(s);
        }
        if (s->out_len) break; /* the client must read before we go on */
    }
    if (s->req.head != head_before &&
        atomic_load_explicit(&s->hdr->req.producer_waiting, memory_order_seq_cst))
        shm_futex_wake(&s->hdr->req.head);
    if (s->closing && !s->out_len) shm_session_fail(s, s->closing);
}

struct shm_pass_result shm_execute_pass(void) {
    struct pass p = {0};
    struct shm_session *s;
    shm_table_lock();
    shm_pass_running = 1;
    p.ctx_flags = RM.GetContextFlags(dctx);
    for (int c = 0; (s = shm_session_next(&c));) {
        if (!s->failed) run_session(&p, s);
        drop_user(&p);
        if (s->failed) p.result.failed = 1;
    }
    shm_pass_running = 0;
    shm_table_unlock();
    return p.result;
}

static int session_has_work(const struct shm_session *s) {
    if (s->failed) return 0;
    if (s->out_len) /* pending output: work once the client made room */
        return atomic_load_explicit(&s->hdr->rep.head, memory_order_acquire) != s->rep.head_cache;
    return shm_ring_has_data(&s->req);
}

int shm_work_pending(void) {
    int pending = 0;
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; !pending && (s = shm_session_next(&c));) pending = session_has_work(s);
    shm_table_unlock();
    return pending;
}

int shm_mark_sleeping(int sleeping) {
    int pending = 0, cpu = sleeping ? sched_getcpu() : -1;
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; (s = shm_session_next(&c));) {
        if (sleeping) /* for the client's adaptive spin: where we will be woken */
            atomic_store_explicit(&s->hdr->req.consumer_cpu, cpu, memory_order_relaxed);
        atomic_store_explicit(&s->hdr->req.consumer_waiting, (uint32_t)sleeping,
                              sleeping ? memory_order_seq_cst : memory_order_relaxed);
        if (sleeping) pending |= session_has_work(s);
    }
    shm_table_unlock();
    return pending;
}

void shm_reap_failed(void) {
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; (s = shm_session_next(&c));)
        if (s->failed) shm_session_close(s, s->failed[0] ? s->failed : NULL);
    shm_table_unlock();
}
