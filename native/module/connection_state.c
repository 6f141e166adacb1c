/*
 * connection_state.c - the per-connection commands a session emulates.
 *
 * RedisModule_Call runs every command on a temporary client that is reset
 * afterwards, so SELECT, AUTH, HELLO, CLIENT ID/GETNAME/SETNAME, RESET and
 * QUIT cannot simply be called.  Where the server can judge the arguments,
 * the executor has already run the command on the temporary client: its
 * reply is the exact error, or, on success, our cue to carry the state over
 * to the session.  HELLO is built here (the temporary client would report
 * its own id, and Valkey refuses HELLO on it), following each server's order
 * of effects.  Names live on the control connection, so CLIENT LIST agrees.
 */
#include "connection_state.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "reply_output.h"

static RedisModuleCtx *dctx;

void shm_state_init(RedisModuleCtx *ctx) { dctx = ctx; }

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
    int ok = !shm_call_failed(r);
    if (r) RM.FreeCallReply(r);
    return ok;
}

/* 0 when the server accepts the name (else its error is sent). */
static int check_client_name(struct shm_session *s, RedisModuleString *name) {
    RedisModuleCallReply *r = RM.Call(dctx, "CLIENT", "cs", "SETNAME", name);
    if (shm_call_failed(r)) {
        shm_reply_call(s, r);
        return -1;
    }
    RM.FreeCallReply(r);
    return 0;
}

static void apply_hello_auth(struct shm_session *s, const resp_request *q, size_t user_arg) {
    set_user(s, q->argv[user_arg], q->argvlen[user_arg]);
    s->authenticated = 1;
}

/* HELLO [protover [AUTH user pass] [SETNAME name]], with the server's error
   texts and its order of effects: Redis applies each option as it reads it
   (a later failure keeps the earlier ones), Valkey checks every option
   before it applies any. */
static void run_hello(struct shm_session *s, const resp_request *q,
                      RedisModuleString **args, int ctx_flags) {
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
            if (!check_all_first) apply_hello_auth(s, q, auth_at);
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
        if (auth_at) apply_hello_auth(s, q, auth_at);
        if (name_at) RM.SetClientNameById(s->control_client_id, args[name_at]);
    }
    s->resp = resp;
    send_hello_reply(s, ctx_flags);
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

int shm_state_run(struct shm_session *s, enum shm_action action, const resp_request *q,
                  RedisModuleString **args, RedisModuleCallReply *validated, int ctx_flags) {
    switch (action) {
    case SHM_ACT_HELLO:
        run_hello(s, q, args, ctx_flags);
        return 1;
    case SHM_ACT_RESET:
        if (q->argc != 1)
            shm_reply_text(s, "-ERR wrong number of arguments for 'reset' command\r\n");
        else
            run_reset(s);
        return 1;
    case SHM_ACT_QUIT:
        shm_reply_text(s, "+OK\r\n");
        s->closing = "";
        return 0;
    default:
        break;
    }
    if (shm_call_failed(validated)) { /* the server's own verdict on the arguments */
        shm_reply_call(s, validated);
        return 0;
    }
    switch (action) {
    case SHM_ACT_CLIENT_ID:
        RM.FreeCallReply(validated);
        send_client_id(s);
        return 0;
    case SHM_ACT_CLIENT_GETNAME:
        RM.FreeCallReply(validated);
        run_client_getname(s);
        return 0;
    case SHM_ACT_SELECT:
        s->db = (int)parse_decimal(q->argv[1], q->argvlen[1]);
        break;
    case SHM_ACT_AUTH:
        if (q->argc == 2)
            set_user(s, "default", 7);
        else
            set_user(s, q->argv[1], q->argvlen[1]);
        s->authenticated = 1;
        break;
    case SHM_ACT_CLIENT_SETNAME:
        RM.SetClientNameById(s->control_client_id, args[2]);
        break;
    default:
        break;
    }
    shm_reply_call(s, validated);
    return action == SHM_ACT_AUTH;
}
