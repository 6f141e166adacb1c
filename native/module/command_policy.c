/*
 * command_policy.c - what may run over shared memory.
 *
 * RedisModule_Call skips processCommand(), so every check the server does
 * there (blocking, MULTI queuing, protected commands, pauses, OOM eviction,
 * read-only replicas) is ours to get right.  The rule is: when the module
 * cannot give exactly the socket's behaviour, it refuses with -SHMFALLBACK
 * and the client sends the command over its socket, where the server itself
 * answers.  Command flags are learned once per name from COMMAND INFO, so
 * module commands are covered too.
 */
#include "command_policy.h"

#include <string.h>
#include <strings.h>

#define NAME_MAX_CACHED 48
#define CACHE_SLOTS 1024

struct cached_command {
    char name[NAME_MAX_CACHED];
    uint32_t flags;
};

static struct cached_command cache[CACHE_SLOTS];

/* Pause state seen through the command filter. */
static long long writes_paused_until_ms, all_paused_until_ms;

struct named_rule {
    const char *name;
    enum shm_action action;
    const char *reason;
};

static const struct named_rule rules[] = {
    {"subscribe", SHM_ACT_REFUSE, "subscriber mode needs the socket"},
    {"psubscribe", SHM_ACT_REFUSE, "subscriber mode needs the socket"},
    {"ssubscribe", SHM_ACT_REFUSE, "subscriber mode needs the socket"},
    {"unsubscribe", SHM_ACT_REFUSE, "subscriber mode needs the socket"},
    {"punsubscribe", SHM_ACT_REFUSE, "subscriber mode needs the socket"},
    {"sunsubscribe", SHM_ACT_REFUSE, "subscriber mode needs the socket"},
    {"monitor", SHM_ACT_REFUSE, "MONITOR needs the socket"},
    {"multi", SHM_ACT_REFUSE, "transactions need the socket"},
    {"exec", SHM_ACT_REFUSE, "transactions need the socket"},
    {"discard", SHM_ACT_REFUSE, "transactions need the socket"},
    {"watch", SHM_ACT_REFUSE, "transactions need the socket"},
    {"unwatch", SHM_ACT_REFUSE, "transactions need the socket"},
    {"wait", SHM_ACT_REFUSE, "WAIT needs the socket"},
    {"waitaof", SHM_ACT_REFUSE, "WAITAOF needs the socket"},
    {"shutdown", SHM_ACT_REFUSE, "protected command"},
    {"debug", SHM_ACT_REFUSE, "protected command"},
    {"module", SHM_ACT_REFUSE, "protected command"},
    {"failover", SHM_ACT_REFUSE, "FAILOVER needs the socket"},
    {"sync", SHM_ACT_REFUSE, "replication protocol"},
    {"psync", SHM_ACT_REFUSE, "replication protocol"},
    {"replconf", SHM_ACT_REFUSE, "replication protocol"},
    {"readonly", SHM_ACT_REFUSE, "cluster connection state"},
    {"readwrite", SHM_ACT_REFUSE, "cluster connection state"},
    {"asking", SHM_ACT_REFUSE, "cluster connection state"},
    {"shm.handshake", SHM_ACT_REFUSE, "already in a session"},
    {"select", SHM_ACT_SELECT, NULL},
    {"hello", SHM_ACT_HELLO, NULL},
    {"auth", SHM_ACT_AUTH, NULL},
    {"reset", SHM_ACT_RESET, NULL},
    {"quit", SHM_ACT_QUIT, NULL},
};

static const struct named_rule client_rules[] = {
    {"id", SHM_ACT_CLIENT_ID, NULL},
    {"getname", SHM_ACT_CLIENT_GETNAME, NULL},
    {"setname", SHM_ACT_CLIENT_SETNAME, NULL},
    {"list", SHM_ACT_CALL, NULL},
    {"kill", SHM_ACT_CALL, NULL},
    {"pause", SHM_ACT_CALL, NULL},
    {"unpause", SHM_ACT_CALL, NULL},
    {"unblock", SHM_ACT_CALL, NULL},
    {"help", SHM_ACT_CALL, NULL},
};

static int lower_copy(char *dst, size_t cap, const char *src, size_t len) {
    if (len >= cap) return -1;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    dst[len] = '\0';
    return 0;
}

static const struct named_rule *find_rule(const struct named_rule *table, size_t n,
                                          const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(table[i].name, name)) return &table[i];
    return NULL;
}

static uint32_t hash_name(const char *s) {
    uint32_t h = 2166136261u;
    while (*s) h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static uint32_t parse_flags(RedisModuleCallReply *info) {
    uint32_t flags = SHM_CMD_KNOWN;
    RedisModuleCallReply *list = RM.CallReplyArrayElement(info, 2);
    size_t n = list ? RM.CallReplyLength(list) : 0;
    static const struct {
        const char *name;
        uint32_t bit;
    } known[] = {{"write", SHM_CMD_WRITE},        {"denyoom", SHM_CMD_DENYOOM},
                 {"blocking", SHM_CMD_BLOCKING},  {"may_replicate", SHM_CMD_MAY_REPLICATE},
                 {"pubsub", SHM_CMD_PUBSUB},      {"admin", SHM_CMD_ADMIN},
                 {"no_auth", SHM_CMD_NOAUTH}};
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *f = RM.CallReplyStringPtr(RM.CallReplyArrayElement(list, i), &len);
        for (size_t k = 0; f && k < sizeof known / sizeof known[0]; k++)
            if (strlen(known[k].name) == len && !memcmp(known[k].name, f, len)) flags |= known[k].bit;
    }
    return flags;
}

static uint32_t command_flags(RedisModuleCtx *ctx, const char *name) {
    uint32_t slot = hash_name(name) & (CACHE_SLOTS - 1);
    for (uint32_t probe = 0; probe < CACHE_SLOTS; probe++) {
        struct cached_command *c = &cache[(slot + probe) & (CACHE_SLOTS - 1)];
        if (!c->name[0]) break;
        if (!strcmp(c->name, name)) return c->flags;
    }
    RedisModuleCallReply *r = RM.Call(ctx, "COMMAND", "cc", "INFO", name);
    uint32_t flags = 0;
    if (r && RM.CallReplyType(r) == RM_REPLY_ARRAY && RM.CallReplyLength(r) == 1) {
        RedisModuleCallReply *info = RM.CallReplyArrayElement(r, 0);
        if (info && RM.CallReplyType(info) == RM_REPLY_ARRAY) flags = parse_flags(info);
    }
    if (r) RM.FreeCallReply(r);
    if (!(flags & SHM_CMD_KNOWN)) return 0; /* unknown now, maybe a module's later */
    for (uint32_t probe = 0; probe < CACHE_SLOTS; probe++) {
        struct cached_command *c = &cache[(slot + probe) & (CACHE_SLOTS - 1)];
        if (c->name[0]) continue;
        strcpy(c->name, name);
        c->flags = flags;
        break;
    }
    return flags;
}

void shm_policy_forget_commands(void) { memset(cache, 0, sizeof cache); }

static struct shm_verdict refuse(uint32_t flags, const char *reason) {
    return (struct shm_verdict){SHM_ACT_REFUSE, flags, reason};
}

struct shm_verdict shm_policy_classify(RedisModuleCtx *ctx, const char *const *argv,
                                       const size_t *argvlen, size_t argc, int ctx_flags) {
    char name[NAME_MAX_CACHED];
    if (lower_copy(name, sizeof name, argv[0], argvlen[0]) < 0)
        return (struct shm_verdict){SHM_ACT_CALL, 0, NULL}; /* the server says "unknown" */
    uint32_t flags = command_flags(ctx, name);

    const struct named_rule *rule = find_rule(rules, sizeof rules / sizeof rules[0], name);
    if (rule) return (struct shm_verdict){rule->action, flags, rule->reason};
    if (!strcmp(name, "client") && argc >= 2) {
        char sub[16];
        rule = lower_copy(sub, sizeof sub, argv[1], argvlen[1]) < 0
                   ? NULL
                   : find_rule(client_rules, sizeof client_rules / sizeof client_rules[0], sub);
        if (!rule) return refuse(flags, "this CLIENT subcommand needs the socket");
        return (struct shm_verdict){rule->action, flags, NULL};
    }
    if (!strcmp(name, "config") && argc >= 2 && argvlen[1] == 3 &&
        !strncasecmp(argv[1], "set", 3))
        return refuse(flags, "CONFIG SET needs the socket");

    if (flags & SHM_CMD_BLOCKING) return refuse(flags, "blocking command");
    long long now = RM.Milliseconds();
    if (all_paused_until_ms > now) return refuse(flags, "clients are paused");
    int writes = flags & (SHM_CMD_WRITE | SHM_CMD_MAY_REPLICATE);
    if (writes && writes_paused_until_ms > now) return refuse(flags, "writes are paused");
    if ((flags & SHM_CMD_DENYOOM) && (ctx_flags & RM_CTX_FLAGS_OOM))
        return refuse(flags, "over maxmemory: eviction happens on the socket path");
    if ((flags & SHM_CMD_WRITE) && (ctx_flags & RM_CTX_FLAGS_SLAVE) &&
        (ctx_flags & RM_CTX_FLAGS_READONLY))
        return refuse(flags, "read-only replica");
    if (ctx_flags & RM_CTX_FLAGS_LOADING) return refuse(flags, "loading");
    return (struct shm_verdict){SHM_ACT_CALL, flags, NULL};
}

/* ---- pause tracking ---- */

static long long parse_ms(const char *s, size_t len) {
    long long v = 0;
    if (!len || len > 15) return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int word_is(const char *s, size_t len, const char *word) {
    return strlen(word) == len && !strncasecmp(s, word, len);
}

void shm_policy_observe(const char *const *argv, const size_t *argvlen, size_t argc) {
    long long now = RM.Milliseconds();
    if (word_is(argv[0], argvlen[0], "client") && argc >= 3) {
        if (word_is(argv[1], argvlen[1], "pause")) {
            long long ms = parse_ms(argv[2], argvlen[2]);
            if (ms < 0) return;
            int writes_only = argc >= 4 && word_is(argv[3], argvlen[3], "write");
            if (writes_only)
                writes_paused_until_ms = now + ms;
            else
                all_paused_until_ms = now + ms;
        }
    } else if (word_is(argv[0], argvlen[0], "client") && argc == 2 &&
               word_is(argv[1], argvlen[1], "unpause")) {
        writes_paused_until_ms = all_paused_until_ms = 0;
    } else if (word_is(argv[0], argvlen[0], "failover")) {
        int abort = argc >= 2 && word_is(argv[1], argvlen[1], "abort");
        writes_paused_until_ms = abort ? 0 : now + 60000;
    } else if (word_is(argv[0], argvlen[0], "shutdown")) {
        /* a graceful shutdown pauses writes while it waits for replicas */
        int abort = argc >= 2 && word_is(argv[1], argvlen[1], "abort");
        writes_paused_until_ms = abort ? 0 : now + 60000;
    }
}

void shm_policy_role_changed(void) { writes_paused_until_ms = 0; }
