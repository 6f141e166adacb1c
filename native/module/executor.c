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
 * (it is reset after every call), so SELECT, HELLO, AUTH, CLIENT
 * SETNAME/GETNAME/ID, RESET and QUIT are emulated: the server validates the
 * command on the temporary client (exact error replies for free) and we carry
 * the state over to the session.  Everything else that cannot behave exactly
 * as on a socket is refused (command_policy.c).
 *
 * A session with pending output (reply_output.c) reads no new request until
 * it has drained.
 */
#include "executor.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../channel/shm_wait.h"
#include "command_policy.h"
#include "config.h"
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

static int reply_is_error(RedisModuleCallReply *r) {
    return !r || RM.CallReplyType(r) == RM_REPLY_ERROR;
}

static void send_call_reply(struct shm_session *s, RedisModuleCallReply *r) {
    if (!r) {
        char line[128];
        snprintf(line, sizeof line, "-ERR shm: the command could not run (%s)\r\n",
                 strerror(errno));
        shm_reply_text(s, line);
        return;
    }
    size_t len;
    const char *proto = RM.CallReplyProto(r, &len);
    shm_reply_send(s, proto, len, r);
}

static int arg_is(const char *p, size_t len, const char *word) {
    return strlen(word) == len && !strncasecmp(p, word, len);
}

/* A decimal the caller has already checked (digits, at most 18 of them). */
static long long parse_decimal(const char *p, size_t len) {
    long long v = 0;
    int neg = len && p[0] == '-';
    for (size_t i = (size_t)neg; i < len && i < 19 && p[i] >= '0' && p[i] <= '9'; i++)
        v = v * 10 + (p[i] - '0');
    return neg ? -v : v;
}

static void set_user(struct shm_session *s, const char *name, size_t len) {
    if (len >= sizeof s->user) len = sizeof s->user - 1;
    memcpy(s->user, name, len);
    s->user[len] = '\0';
}

/* After RESET the connection is authenticated only if "default" needs no
   password, exactly as the server decides for a socket. */
static int default_user_is_open(void) {
    RedisModuleCallReply *r = RM.Call(dctx, "ACL", "cc", "GETUSER", "default");
    int nopass = 0, on = 0;
    size_t n = r && RM.CallReplyType(r) == RM_REPLY_ARRAY ? RM.CallReplyLength(r) : 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        size_t klen;
        const char *key = RM.CallReplyStringPtr(RM.CallReplyArrayElement(r, i), &klen);
        if (!key || !arg_is(key, klen, "flags")) continue;
        RedisModuleCallReply *flags = RM.CallReplyArrayElement(r, i + 1);
        for (size_t k = 0; k < RM.CallReplyLength(flags); k++) {
            size_t flen;
            const char *f = RM.CallReplyStringPtr(RM.CallReplyArrayElement(flags, k), &flen);
            nopass |= f && arg_is(f, flen, "nopass");
            on |= f && arg_is(f, flen, "on");
        }
    }
    if (r) RM.FreeCallReply(r);
    return nopass && on;
}

/* What HELLO reports about the server, read once from INFO server. */
static char server_name[32], server_version[32], server_mode[32];

static void info_field(const char *info, size_t len, const char *key, char *out, size_t cap) {
    size_t klen = strlen(key);
    for (const char *p = info, *end = info + len; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > klen + 1 && !memcmp(p, key, klen) && p[klen] == ':') {
            size_t n = (size_t)(eol - p) - klen - 1;
            while (n && (p[klen + 1 + n - 1] == '\r')) n--;
            if (n >= cap) n = cap - 1;
            memcpy(out, p + klen + 1, n);
            out[n] = '\0';
            return;
        }
        p = eol + 1;
    }
}

static void learn_server_identity(void) {
    if (server_name[0]) return;
    RedisModuleCallReply *r = RM.Call(dctx, "INFO", "c", "server");
    size_t len = 0;
    const char *info = r ? RM.CallReplyStringPtr(r, &len) : NULL;
    strcpy(server_name, "redis");
    strcpy(server_mode, "standalone");
    if (info) {
        info_field(info, len, "redis_version", server_version, sizeof server_version);
        info_field(info, len, "redis_mode", server_mode, sizeof server_mode);
        info_field(info, len, "server_mode", server_mode, sizeof server_mode);
        info_field(info, len, "server_name", server_name, sizeof server_name);
        char own[32] = "";
        snprintf(own, sizeof own, "%s_version", server_name);
        info_field(info, len, own, server_version, sizeof server_version);
    }
    if (r) RM.FreeCallReply(r);
}

/* HELLO's reply, built for the session: RedisModule_Call's temporary client
   would report its own id, and Valkey refuses HELLO on it altogether. */
static void send_hello_reply(struct shm_session *s, int ctx_flags) {
    learn_server_identity();
    RedisModuleCallReply *mods = RM.Call(dctx, "MODULE", s->resp == 3 ? "c3" : "c", "LIST");
    size_t mods_len = 0;
    const char *mods_proto = mods ? RM.CallReplyProto(mods, &mods_len) : "*0\r\n";
    if (!mods) mods_len = 4;
    const char *role = (ctx_flags & RM_CTX_FLAGS_SLAVE) ? "replica" : "master";
    char head[512];
    int n = snprintf(head, sizeof head,
                     "%s\r\n$6\r\nserver\r\n$%zu\r\n%s\r\n$7\r\nversion\r\n$%zu\r\n%s\r\n"
                     "$5\r\nproto\r\n:%d\r\n$2\r\nid\r\n:%llu\r\n$4\r\nmode\r\n$%zu\r\n%s\r\n"
                     "$4\r\nrole\r\n$%zu\r\n%s\r\n$7\r\nmodules\r\n",
                     s->resp == 3 ? "%7" : "*14", strlen(server_name), server_name,
                     strlen(server_version), server_version, s->resp,
                     (unsigned long long)s->control_client_id, strlen(server_mode), server_mode,
                     strlen(role), role);
    char *buf = RM.Alloc((size_t)n + mods_len);
    memcpy(buf, head, (size_t)n);
    memcpy(buf + n, mods_proto, mods_len);
    shm_reply_send(s, buf, (size_t)n + mods_len, NULL);
    RM.Free(buf);
    if (mods) RM.FreeCallReply(mods);
}

static int verify_password(RedisModuleString *user, RedisModuleString *pass) {
    RedisModuleCallReply *r = RM.Call(dctx, "AUTH", "ss", user, pass);
    int ok = !reply_is_error(r);
    if (r) RM.FreeCallReply(r);
    return ok;
}

/* 0 when the server accepts the name (else its error is sent). */
static int check_client_name(struct shm_session *s, RedisModuleString *name) {
    RedisModuleCallReply *r = RM.Call(dctx, "CLIENT", "cs", "SETNAME", name);
    if (reply_is_error(r)) {
        send_call_reply(s, r);
        return -1;
    }
    RM.FreeCallReply(r);
    return 0;
}

static void apply_hello_auth(struct shm_session *s, struct pass *p, const resp_request *q,
                             size_t user_arg) {
    set_user(s, q->argv[user_arg], q->argvlen[user_arg]);
    s->authenticated = 1;
    drop_user(p);
}

/* HELLO [protover [AUTH user pass] [SETNAME name]], with the server's error
   texts and its order of effects: Redis applies each option as it reads it
   (a later failure keeps the earlier ones), Valkey checks every option
   before it applies any. */
static void run_hello(struct shm_session *s, struct pass *p, const resp_request *q,
                      RedisModuleString **args) {
    learn_server_identity();
    int check_all_first = strcmp(server_name, "redis") != 0;
    int resp = s->resp;
    if (q->argc >= 2) {
        int digits = q->argvlen[1] > 0 && q->argvlen[1] < 19;
        for (size_t i = 0; digits && i < q->argvlen[1]; i++) {
            char c = q->argv[1][i];
            digits = (c >= '0' && c <= '9') || (i == 0 && c == '-' && q->argvlen[1] > 1);
        }
        if (!digits) {
            shm_reply_text(s, "-ERR Protocol version is not an integer or out of range\r\n");
            return;
        }
        long long ver = parse_decimal(q->argv[1], q->argvlen[1]);
        if (ver < 2 || ver > 3) {
            shm_reply_text(s, "-NOPROTO unsupported protocol version\r\n");
            return;
        }
        resp = (int)ver;
    }
    size_t auth_at = 0, name_at = 0; /* argument index of the user / the name */
    for (size_t j = 2; j < q->argc; j++) {
        size_t more = q->argc - 1 - j;
        if (arg_is(q->argv[j], q->argvlen[j], "auth") && more >= 2) {
            if (!verify_password(args[j + 1], args[j + 2])) {
                shm_reply_text(s, "-WRONGPASS invalid username-password pair or user is "
                             "disabled.\r\n");
                return;
            }
            auth_at = j + 1;
            if (!check_all_first) apply_hello_auth(s, p, q, auth_at);
            j += 2;
        } else if (arg_is(q->argv[j], q->argvlen[j], "setname") && more >= 1) {
            if (check_client_name(s, args[j + 1]) < 0) return;
            name_at = j + 1;
            if (!check_all_first) RM.SetClientNameById(s->control_client_id, args[name_at]);
            j++;
        } else {
            char line[160];
            snprintf(line, sizeof line, "-ERR Syntax error in HELLO option '%.*s'\r\n",
                     (int)(q->argvlen[j] > 100 ? 100 : q->argvlen[j]), q->argv[j]);
            shm_reply_text(s, line);
            return;
        }
    }
    if (!s->authenticated && !auth_at) {
        shm_reply_text(s, "-NOAUTH HELLO must be called with the client already authenticated, "
                     "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                     "authenticate the client and select the RESP protocol version at the "
                     "same time\r\n");
        return;
    }
    if (check_all_first) { /* everything checked: now the effects */
        if (auth_at) apply_hello_auth(s, p, q, auth_at);
        if (name_at) RM.SetClientNameById(s->control_client_id, args[name_at]);
    }
    s->resp = resp;
    send_hello_reply(s, p->ctx_flags);
}

static void run_client_getname(struct shm_session *s) {
    RedisModuleString *name = RM.GetClientNameById(dctx, s->control_client_id);
    size_t len = 0;
    const char *p = name ? RM.StringPtrLen(name, &len) : NULL;
    shm_reply_bulk_or_null(s, p, len);
    if (name) RM.FreeString(dctx, name);
}

static void send_client_id(struct shm_session *s) {
    char line[32];
    snprintf(line, sizeof line, ":%llu\r\n", (unsigned long long)s->control_client_id);
    shm_reply_text(s, line);
}

static void run_reset(struct shm_session *s) {
    RedisModuleString *empty = RM.CreateString(NULL, "", 0);
    RM.SetClientNameById(s->control_client_id, empty);
    RM.FreeString(NULL, empty);
    s->db = 0;
    s->resp = 2;
    set_user(s, "default", 7);
    s->authenticated = default_user_is_open();
    shm_reply_text(s, "+RESET\r\n");
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
        switch (v.action) {
        case SHM_ACT_HELLO: run_hello(s, p, q, args); break;
        case SHM_ACT_CLIENT_GETNAME:
        case SHM_ACT_CLIENT_ID:
            /* the server checks the arguments; we answer for the session */
            r = call(s, user, s->resp, q->argv[0], q->argvlen[0], args + 1, q->argc - 1);
            if (reply_is_error(r))
                send_call_reply(s, r);
            else {
                RM.FreeCallReply(r);
                if (v.action == SHM_ACT_CLIENT_ID)
                    send_client_id(s);
                else
                    run_client_getname(s);
            }
            break;
        case SHM_ACT_RESET:
            if (q->argc != 1)
                shm_reply_text(s, "-ERR wrong number of arguments for 'reset' command\r\n");
            else
                run_reset(s);
            break;
        case SHM_ACT_QUIT:
            shm_reply_text(s, "+OK\r\n");
            s->closing = "";
            break;
        default:
            r = call(s, user, s->resp, q->argv[0], q->argvlen[0], args + 1, q->argc - 1);
            if (!reply_is_error(r)) {
                if (v.action == SHM_ACT_SELECT)
                    s->db = (int)parse_decimal(q->argv[1], q->argvlen[1]);
                else if (v.action == SHM_ACT_AUTH) {
                    if (q->argc == 2) set_user(s, "default", 7);
                    else set_user(s, q->argv[1], q->argvlen[1]);
                    s->authenticated = 1;
                } else if (v.action == SHM_ACT_CLIENT_SETNAME)
                    RM.SetClientNameById(s->control_client_id, args[2]);
            }
            send_call_reply(s, r);
        }
    }
    for (size_t i = 0; i < q->argc; i++) RM.FreeString(NULL, args[i]);
    if (args != stack_args) RM.Free(args);
    /* ACL DELUSER / ACL LOAD may have freed the user we hold: look it up
       again after anything that is not a plain read, and after the session
       itself changed user. */
    if (shm_policy_has_side_effects(v.flags) || v.action == SHM_ACT_AUTH ||
        v.action == SHM_ACT_HELLO || v.action == SHM_ACT_RESET)
        drop_user(p);
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
