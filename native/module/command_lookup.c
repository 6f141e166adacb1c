/*
 * command_lookup.c - the server's view of a command, learned from COMMAND
 * INFO and cached per name.
 *
 * Classifying by the name a client typed is how protected commands slipped
 * through under another name (rename-command) or with a subcommand nobody
 * listed.  Here the name is looked up in the server's own table, so what we
 * classify is what RedisModule_Call would run: its full name, its arity and
 * its flags.  A name the server does not know, or one we cannot represent
 * exactly (too long, NUL or '|' inside), resolves to NULL, and the caller
 * refuses it: the socket then gives the server's own error.
 *
 * The cache holds names the server knows; it is dropped when a module is
 * loaded or unloaded.  rename-command only happens at startup.
 */
#include "command_lookup.h"

#include <string.h>

#define CACHE_SLOTS 1024 /* a power of two */

struct cached {
    char key[SHM_COMMAND_NAME_MAX]; /* typed name, lowercase; "" = free */
    int has_subcommands;
    struct shm_command cmd;
};

static struct cached cache[CACHE_SLOTS];
static struct cached uncached; /* the answer when the cache is full */

void shm_command_forget(void) { memset(cache, 0, sizeof cache); }

/* Lowercase copy into dst (NUL-terminated); -1 when it does not fit or the
   name holds bytes the server's lookup would treat differently. */
static int make_key(char *dst, size_t cap, const char *prefix, const char *name, size_t len) {
    size_t plen = strlen(prefix);
    if (plen + len >= cap) return -1;
    memcpy(dst, prefix, plen);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '\0' || c == '|') return -1;
        dst[plen + i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    dst[plen + len] = '\0';
    return 0;
}

static uint32_t hash_key(const char *s) {
    uint32_t h = 2166136261u;
    while (*s) h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static uint32_t parse_flags(RedisModuleCallReply *list) {
    static const struct {
        const char *name;
        uint32_t bit;
    } known[] = {{"write", SHM_CMD_WRITE},       {"denyoom", SHM_CMD_DENYOOM},
                 {"blocking", SHM_CMD_BLOCKING}, {"pubsub", SHM_CMD_PUBSUB},
                 {"admin", SHM_CMD_ADMIN},       {"noscript", SHM_CMD_NOSCRIPT},
                 {"may_replicate", SHM_CMD_MAY_REPLICATE}};
    uint32_t flags = 0;
    size_t n = list ? RM.CallReplyLength(list) : 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *f = RM.CallReplyStringPtr(RM.CallReplyArrayElement(list, i), &len);
        for (size_t k = 0; f && k < sizeof known / sizeof known[0]; k++)
            if (strlen(known[k].name) == len && !memcmp(known[k].name, f, len))
                flags |= known[k].bit;
    }
    return flags;
}

/* COMMAND INFO <key>: fills *out, 0 when the server knows the command. */
static int ask_server(RedisModuleCtx *ctx, const char *key, struct cached *out) {
    RedisModuleCallReply *r = RM.Call(ctx, "COMMAND", "cc", "INFO", key);
    int found = 0;
    RedisModuleCallReply *info = NULL;
    if (r && RM.CallReplyType(r) == RM_REPLY_ARRAY && RM.CallReplyLength(r) == 1)
        info = RM.CallReplyArrayElement(r, 0);
    if (info && RM.CallReplyType(info) == RM_REPLY_ARRAY && RM.CallReplyLength(info) >= 3) {
        size_t len;
        const char *name = RM.CallReplyStringPtr(RM.CallReplyArrayElement(info, 0), &len);
        if (name && len < sizeof out->cmd.name) {
            memset(out, 0, sizeof *out);
            memcpy(out->cmd.name, name, len);
            out->cmd.arity = (int)RM.CallReplyInteger(RM.CallReplyArrayElement(info, 1));
            out->cmd.flags = parse_flags(RM.CallReplyArrayElement(info, 2));
            RedisModuleCallReply *subs =
                RM.CallReplyLength(info) >= 10 ? RM.CallReplyArrayElement(info, 9) : NULL;
            out->has_subcommands = subs && RM.CallReplyLength(subs) > 0;
            found = 1;
        }
    }
    if (r) RM.FreeCallReply(r);
    return found ? 0 : -1;
}

static struct cached *lookup_key(RedisModuleCtx *ctx, const char *key) {
    uint32_t slot = hash_key(key) & (CACHE_SLOTS - 1);
    struct cached *free_slot = NULL;
    for (uint32_t probe = 0; probe < CACHE_SLOTS; probe++) {
        struct cached *c = &cache[(slot + probe) & (CACHE_SLOTS - 1)];
        if (!c->key[0]) {
            free_slot = c;
            break;
        }
        if (!strcmp(c->key, key)) return c;
    }
    struct cached *out = free_slot ? free_slot : &uncached;
    if (ask_server(ctx, key, out) < 0) {
        out->key[0] = '\0'; /* unknown names are not kept: a module may add them */
        return NULL;
    }
    strcpy(out->key, key);
    return out;
}

struct shm_command *shm_command_lookup(RedisModuleCtx *ctx, const char *const *argv,
                                       const size_t *argvlen, size_t argc) {
    char key[SHM_COMMAND_NAME_MAX];
    if (argc < 1 || make_key(key, sizeof key, "", argv[0], argvlen[0]) < 0) return NULL;
    struct cached *c = lookup_key(ctx, key);
    if (!c || !c->has_subcommands || argc < 2) return c ? &c->cmd : NULL;
    /* A container: the server runs the subcommand argv[1] names. */
    char prefix[SHM_COMMAND_NAME_MAX + 1];
    strcpy(prefix, c->cmd.name);
    strcat(prefix, "|");
    if (make_key(key, sizeof key, prefix, argv[1], argvlen[1]) < 0) return NULL;
    c = lookup_key(ctx, key);
    return c ? &c->cmd : NULL;
}
