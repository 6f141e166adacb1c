/*
 * executor.c - runs sessions' requests and moves their replies into the rings.
 *
 * Commands run through RedisModule_Call on one detached context, as the
 * session's ACL user (SetContextUser + the 'C' flag, the user looked up once
 * per pass and never kept), in the session's db and RESP version, with '!' so
 * writes reach the AOF and replicas.  The reply's raw protocol
 * (CallReplyProto) is what goes into the reply ring, so the client receives
 * the same bytes a socket would have carried.
 *
 * Per-connection state cannot live on RedisModule_Call's temporary client
 * (it is reset after every call): connection_state.c emulates those
 * commands.  Everything else that cannot behave exactly as on a socket is
 * refused (command_policy.c).
 *
 * A session with pending output (reply_output.c) reads no new request until
 * it has drained.
 */
#include "executor.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "../channel/shm_wait.h"
#include "command_policy.h"
#include "config.h"
#include "connection_state.h"
#include "reply_output.h"
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
    shm_state_init(dctx);
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

static RedisModuleUser *session_user(struct pass *p, struct shm_session *s) {
    if (!p->user) {
        RedisModuleString *name = RM.CreateString(NULL, s->user, strlen(s->user));
        p->user = RM.GetModuleUserFromUserName(name);
        RM.FreeString(NULL, name);
    }
    return p->user;
}

static RedisModuleCallReply *call(struct shm_session *s, RedisModuleUser *user, int resp,
                                  const char *name, size_t name_len, RedisModuleString **args,
                                  size_t nargs) {
    char small[64], *cname = name_len < sizeof small ? small : RM.Alloc(name_len + 1);
    memcpy(cname, name, name_len);
    cname[name_len] = '\0';
    RM.SetContextUser(dctx, user);
    RM.SelectDb(dctx, s->db);
    RedisModuleCallReply *r = RM.Call(dctx, cname, resp == 3 ? "v!EC3" : "v!EC", args, nargs);
    if (cname != small) RM.Free(cname);
    return r;
}

static void run_request(struct pass *p, struct shm_session *s, const resp_request *q) {
    if (s->refusing) {
        shm_reply_refusal(s, "skipped after a refusal");
        return;
    }
    struct shm_verdict v =
        shm_policy_classify(dctx, (const char *const *)q->argv, q->argvlen, q->argc, p->ctx_flags);
    int noauth_ok = v.action == SHM_ACT_AUTH || v.action == SHM_ACT_HELLO ||
                    v.action == SHM_ACT_QUIT || v.action == SHM_ACT_RESET;
    if (!s->authenticated && !noauth_ok && (v.flags & SHM_CMD_KNOWN)) {
        shm_reply_text(s, "-NOAUTH Authentication required.\r\n");
        return;
    }
    if (v.action == SHM_ACT_REFUSE) {
        shm_reply_refusal(s, v.reason);
        return;
    }
    RedisModuleUser *user = session_user(p, s);
    if (!user) {
        shm_session_fail(s, "its ACL user no longer exists");
        return;
    }

    RedisModuleString *stack_args[STACK_ARGS];
    RedisModuleString **args =
        q->argc <= STACK_ARGS ? stack_args : RM.Alloc(sizeof *args * q->argc);
    for (size_t i = 0; i < q->argc; i++) args[i] = RM.CreateString(NULL, q->argv[i], q->argvlen[i]);

    if ((v.flags & SHM_CMD_KNOWN) && RM.ACLCheckCommandPermissions(user, args, (int)q->argc) != RM_OK) {
        /* The socket reports denials exactly (text, ACL LOG entry). */
        shm_reply_refusal(s, "denied by ACL: the socket reports it");
    } else {
        p->result.executed++;
        shm_stats.commands++;
        if (shm_policy_has_side_effects(v.flags)) {
            p->result.side_effects = 1;
            if (p->ctx_flags & RM_CTX_FLAGS_AOF) shm_reply_hold(s);
        }
        RedisModuleCallReply *r = NULL;
        if (v.action == SHM_ACT_CALL ||
            (v.action != SHM_ACT_HELLO && v.action != SHM_ACT_RESET && v.action != SHM_ACT_QUIT))
            r = call(s, user, s->resp, q->argv[0], q->argvlen[0], args + 1, q->argc - 1);
        if (v.action == SHM_ACT_CALL)
            shm_reply_call(s, r);
        else if (shm_state_run(s, v.action, q, args, r, p->ctx_flags))
            drop_user(p); /* the session changed user */
    }
    for (size_t i = 0; i < q->argc; i++) RM.FreeString(NULL, args[i]);
    if (args != stack_args) RM.Free(args);
    /* ACL DELUSER / ACL LOAD may have freed the user we hold: look it up
       again after anything that is not a plain read. */
    if (shm_policy_has_side_effects(v.flags)) drop_user(p);
}

static void run_buffer(struct pass *p, struct shm_session *s, const char *buf, size_t len) {
    resp_request q;
    const char *err = NULL;
    int rc = resp_request_parse(buf, len, 1024 * 1024, (size_t)shm_cfg.input_limit,
                                &scratch_allocator, &q, &err);
    if (rc != RESP_REQUEST_OK) {
        char line[160];
        snprintf(line, sizeof line, "-ERR Protocol error: %s\r\n",
                 rc == RESP_REQUEST_ENOMEM ? "out of memory" : err);
        shm_reply_text(s, line);
        s->closing = "Protocol error"; /* as on a socket: the connection ends after it */
        return;
    }
    run_request(p, s, &q);
}

/* ---- passes ---- */

static int append_input(struct shm_session *s, const char *p, uint32_t n) {
    if (s->in_len + n > (size_t)shm_cfg.input_limit) return -1;
    if (s->in_len + n > s->in_cap) {
        size_t cap = s->in_cap ? s->in_cap : 64 * 1024;
        while (cap < s->in_len + n) cap *= 2;
        s->in = RM.Realloc(s->in, cap);
        s->in_cap = cap;
    }
    memcpy(s->in + s->in_len, p, n);
    s->in_len += n;
    return 0;
}

static void run_session(struct pass *p, struct shm_session *s) {
    /* Once per pass, not per reply: a head the client moved somewhere
       impossible ends the session even while the ring has room. */
    if (shm_ring_check_head(&s->rep) < 0) {
        shm_session_fail(s, "the client corrupted its reply ring");
        return;
    }
    if (s->out_len && !shm_reply_flush(s)) return;
    int consumed = 0;
    for (long long n = 0; n < shm_cfg.batch_max && !s->failed && !s->closing; n++) {
        uint32_t type, len;
        const char *payload;
        int r = shm_ring_peek(&s->req, &type, &payload, &len);
        if (r == 0) break;
        if (r < 0) {
            shm_session_fail(s, "the client corrupted its request ring");
            break;
        }
        shm_stats.bytes_in += len;
        consumed = 1;
        uint32_t kind = SHM_REC_KIND(type);
        if (kind == SHM_REC_RESUME && !s->in_len) {
            s->refusing = 0;
            shm_ring_consume(&s->req, len);
        } else if (kind != SHM_REC_REQUEST) {
            shm_session_fail(s, "the client sent a record out of place");
        } else if ((type & SHM_REC_MORE) || s->in_len) {
            if (append_input(s, payload, len) < 0) {
                shm_session_fail(s, "request over shm.input-limit");
                break;
            }
            shm_ring_consume(&s->req, len);
            if (type & SHM_REC_MORE) continue;
            run_buffer(p, s, s->in, s->in_len);
            s->in_len = 0;
            if (s->in_cap > 1024 * 1024) { /* do not keep a huge buffer around */
                RM.Free(s->in);
                s->in = NULL;
                s->in_cap = 0;
            }
        } else {
            run_buffer(p, s, payload, len);
            shm_ring_consume(&s->req, len);
        }
        if (s->out_len) break; /* the client must read before we go on */
    }
    if (consumed && atomic_load_explicit(&s->hdr->req.producer_waiting, memory_order_seq_cst))
        shm_futex_wake(&s->hdr->req.head);
    if (s->closing && !s->out_len) shm_session_fail(s, s->closing);
}

struct shm_pass_result shm_execute_pass(void) {
    struct pass p = {0};
    pthread_mutex_lock(&table_lock);
    shm_pass_running = 1;
    p.ctx_flags = RM.GetContextFlags(dctx);
    for (int i = 0; i < session_slots; i++) {
        struct shm_session *s = sessions[i];
        if (!s || s->failed) continue;
        run_session(&p, s);
        drop_user(&p);
    }
    for (int i = 0; i < session_slots; i++)
        if (sessions[i] && sessions[i]->failed) p.result.failed = 1;
    shm_pass_running = 0;
    pthread_mutex_unlock(&table_lock);
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
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < session_slots && !pending; i++)
        pending = sessions[i] && session_has_work(sessions[i]);
    pthread_mutex_unlock(&table_lock);
    return pending;
}

int shm_mark_sleeping(int sleeping) {
    int pending = 0, cpu = sleeping ? sched_getcpu() : -1;
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < session_slots; i++) {
        struct shm_session *s = sessions[i];
        if (!s) continue;
        if (sleeping) /* for the client's adaptive spin: where we will be woken */
            atomic_store_explicit(&s->hdr->req.consumer_cpu, cpu, memory_order_relaxed);
        atomic_store_explicit(&s->hdr->req.consumer_waiting, (uint32_t)sleeping,
                              sleeping ? memory_order_seq_cst : memory_order_relaxed);
        if (sleeping) pending |= session_has_work(s);
    }
    pthread_mutex_unlock(&table_lock);
    return pending;
}

void shm_reap_failed(void) {
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < session_slots; i++) {
        struct shm_session *s = sessions[i];
        if (s && s->failed) shm_session_close(s, s->failed[0] ? s->failed : NULL);
    }
    pthread_mutex_unlock(&table_lock);
}
