/*
 * command_lookup.c - the server's view of a command, learned from its whole
 * command table with one COMMAND call and kept until a module comes or goes.
 *
 * Classifying by the name a client typed is how protected commands slipped
 * through under another name (rename-command) or with a subcommand nobody
 * listed.  Here the name is looked up in the server's own table, so what we
 * classify is what RedisModule_Call would run: its full name, its arity and
 * its flags.  A name the server does not know, or one we cannot represent
 * exactly (too long, NUL or '|' inside), resolves to NULL, and the caller
 * refuses it: the socket then gives the server's own error.
 *
 * Why one COMMAND and not a COMMAND INFO per name: every call we make shows
 * in MONITOR and INFO commandstats, and a call per new name put one beside
 * a user's first SET.  The Modules API has no way to read the server's table
 * (RedisModule_GetCommand only sees our own commands), so the table is read
 * once: at the first BEFORE_SLEEP (shm_command_learn(), before any client
 * is served) or at the first lookup, and again after MODULE LOAD or UNLOAD
 * (shm_command_forget()).  What the server shows is one `COMMAND`
 * (cmdstat_command) per learning, none per request.
 *
 * COMMAND lists commands by their full names, not by the names the server
 * looks them up by, which rename-command changes (at startup only).  So each
 * table name is checked to lead to its own command, without running
 * anything: an unlinked module user allowed only that command is asked
 * whether the name is allowed (RedisModule_ACLCheckCommandPermissions looks
 * the name up as a call would, and ACL rules name commands by their full
 * names).  Names that do not lead to their command are "moved"; a name
 * outside the table can only lead to a moved command, so on a server without
 * renames it is unknown at once, and on one with renames it is probed
 * against the moved commands and the answer cached (a bounded cache).  The
 * ACL check allows no-auth commands (AUTH, HELLO) to everyone: those are
 * taken by name.
 *
 * Memory: the table holds the server's commands and subcommands (a few
 * hundred, about 100 bytes each) and is replaced whole; the alias cache is
 * fixed.  A lookup is a lowercase copy, a hash and a string compare.
 */
#include "command_lookup.h"

#include <errno.h>
#include <string.h>

struct entry {
    struct shm_command cmd; /* cmd.name: the server's full name */
    char key[SHM_COMMAND_NAME_MAX]; /* cmd.name lowercased: the index key */
    int has_subcommands;
    int moved; /* top level only: its name does not lead to it */
};

static struct entry *entries; /* the learned table, NULL = to learn */
static size_t entry_count;
static uint32_t *slots; /* open addressing: entry index + 1, 0 = free */
static uint32_t slot_mask;
static int learn_tried; /* shm_command_learn() tried since the last forget */
static size_t moved_count;

#define ALIAS_SLOTS 256 /* a power of two */

/* A typed name outside the table (or moved) resolved by probing; direct
   mapped, a collision replaces. */
struct alias {
    char key[SHM_COMMAND_NAME_MAX]; /* "" = free */
    uint32_t entry;                 /* index + 1, 0 = the server does not know it */
};
static struct alias aliases[ALIAS_SLOTS];

static RedisModuleUser *probe_user; /* -@all, allkeys, allchannels, and one +cmd */

void shm_command_forget(void) {
    if (entries) RM.Free(entries);
    if (slots) RM.Free(slots);
    entries = NULL;
    slots = NULL;
    entry_count = moved_count = 0;
    learn_tried = 0;
    memset(aliases, 0, sizeof aliases);
}

/* Lowercase copy into dst (NUL-terminated); -1 when it does not fit or the
   name holds bytes the server's lookup would treat differently. */
static int make_key(char *dst, size_t cap, const char *prefix, const char *name, size_t len) {
    size_t plen = strlen(prefix);
    if (plen + len >= cap) return -1;
    memcpy(dst, prefix, plen);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '\0') return -1;
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

static struct entry *find(const char *key) {
    for (uint32_t i = hash_key(key) & slot_mask;; i = (i + 1) & slot_mask) {
        if (!slots[i]) return NULL;
        struct entry *e = &entries[slots[i] - 1];
        if (!strcmp(e->key, key)) return e;
    }
}

static uint32_t parse_flags(RedisModuleCallReply *list) {
    static const struct {
        const char *name;
        uint32_t bit;
    } known[] = {{"write", SHM_CMD_WRITE},       {"denyoom", SHM_CMD_DENYOOM},
                 {"blocking", SHM_CMD_BLOCKING}, {"pubsub", SHM_CMD_PUBSUB},
                 {"admin", SHM_CMD_ADMIN},       {"noscript", SHM_CMD_NOSCRIPT},
                 {"may_replicate", SHM_CMD_MAY_REPLICATE}, {"no_auth", SHM_CMD_NO_AUTH}};
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

/* An entry of COMMAND's reply: name, arity, flags, ..., and from the 10th
   element on 7.0+ its subcommands, entries of the same shape. */
static RedisModuleCallReply *subcommands_of(RedisModuleCallReply *info) {
    if (RM.CallReplyType(info) != RM_REPLY_ARRAY || RM.CallReplyLength(info) < 10) return NULL;
    RedisModuleCallReply *subs = RM.CallReplyArrayElement(info, 9);
    return subs && RM.CallReplyType(subs) == RM_REPLY_ARRAY ? subs : NULL;
}

static size_t count_entries(RedisModuleCallReply *list) {
    size_t n = RM.CallReplyLength(list), total = n;
    for (size_t i = 0; i < n; i++) {
        RedisModuleCallReply *subs = subcommands_of(RM.CallReplyArrayElement(list, i));
        if (subs) total += count_entries(subs);
    }
    return total;
}

static void add_entries(RedisModuleCallReply *list) {
    size_t n = RM.CallReplyLength(list);
    for (size_t i = 0; i < n; i++) {
        RedisModuleCallReply *info = RM.CallReplyArrayElement(list, i);
        if (RM.CallReplyType(info) != RM_REPLY_ARRAY || RM.CallReplyLength(info) < 3) continue;
        size_t len;
        const char *name = RM.CallReplyStringPtr(RM.CallReplyArrayElement(info, 0), &len);
        struct entry *e = &entries[entry_count];
        /* a name we cannot look up exactly is left out: refused, as unknown */
        if (!name || make_key(e->key, sizeof e->key, "", name, len) < 0 || find(e->key)) {
            memset(e, 0, sizeof *e);
        } else {
            memcpy(e->cmd.name, name, len);
            e->cmd.name[len] = '\0';
            e->cmd.arity = (int)RM.CallReplyInteger(RM.CallReplyArrayElement(info, 1));
            e->cmd.flags = parse_flags(RM.CallReplyArrayElement(info, 2));
            RedisModuleCallReply *subs = subcommands_of(info);
            e->has_subcommands = subs && RM.CallReplyLength(subs) > 0;
            uint32_t i2 = hash_key(e->key) & slot_mask;
            while (slots[i2]) i2 = (i2 + 1) & slot_mask;
            slots[i2] = (uint32_t)++entry_count;
        }
        RedisModuleCallReply *subs = subcommands_of(info);
        if (subs) add_entries(subs);
    }
}

/* 1 when the server looks `typed` up as e's command (e top level), 0 when
   not, -1 when it does not know the name at all.  Runs nothing: an ACL
   check of a user allowed e alone.  A no-auth command passes every check,
   so it is told by its flag. */
static int leads_to(RedisModuleCtx *ctx, const char *typed, const struct entry *e) {
    if (!probe_user) {
        probe_user = RM.CreateModuleUser("shm-command-lookup");
        if (!probe_user || RM.SetModuleUserACL(probe_user, "allkeys") != RM_OK ||
            RM.SetModuleUserACL(probe_user, "allchannels") != RM_OK)
            return 0; /* cannot tell: not this command (the caller refuses) */
    }
    char rule[SHM_COMMAND_NAME_MAX + 1] = "+";
    strcat(rule, e->cmd.name);
    RedisModuleString *name = RM.CreateString(ctx, typed, strlen(typed));
    int found = 0;
    if (RM.SetModuleUserACL(probe_user, "-@all") == RM_OK) {
        errno = 0;
        if (RM.ACLCheckCommandPermissions(probe_user, &name, 1) == RM_OK)
            found = (e->cmd.flags & SHM_CMD_NO_AUTH) ? 1 : 0; /* a no-auth command */
        else if (errno == ENOENT)
            found = -1;
        else if (RM.SetModuleUserACL(probe_user, rule) == RM_OK)
            found = RM.ACLCheckCommandPermissions(probe_user, &name, 1) == RM_OK;
    }
    RM.FreeString(ctx, name);
    return found;
}

static int learn(RedisModuleCtx *ctx) {
    shm_command_forget();
    learn_tried = 1;
    RedisModuleCallReply *r = RM.Call(ctx, "COMMAND", "");
    if (!r) return -1;
    if (RM.CallReplyType(r) != RM_REPLY_ARRAY) {
        RM.FreeCallReply(r);
        return -1;
    }
    size_t total = count_entries(r);
    size_t nslots = 64;
    while (nslots < 2 * total) nslots *= 2;
    entries = RM.Calloc(total ? total : 1, sizeof *entries);
    slots = RM.Calloc(nslots, sizeof *slots);
    slot_mask = (uint32_t)nslots - 1;
    add_entries(r);
    RM.FreeCallReply(r);
    for (size_t i = 0; i < entry_count; i++) {
        struct entry *e = &entries[i];
        if (strchr(e->key, '|')) continue; /* subcommands are not renamed */
        e->moved = leads_to(ctx, e->key, e) != 1;
        moved_count += (size_t)e->moved;
    }
    return 0;
}

void shm_command_learn(RedisModuleCtx *ctx) {
    if (!entries && !learn_tried) learn(ctx);
}

/* A typed name outside the table, or a moved one: the moved command it
   leads to, if any (cached). */
static struct entry *probe_alias(RedisModuleCtx *ctx, const char *key) {
    struct alias *a = &aliases[hash_key(key) & (ALIAS_SLOTS - 1)];
    if (strcmp(a->key, key)) {
        strcpy(a->key, key);
        a->entry = 0;
        for (size_t i = 0; i < entry_count; i++) {
            if (!entries[i].moved) continue;
            int r = leads_to(ctx, key, &entries[i]);
            if (r < 0) break; /* the server does not know the name */
            if (r == 1) {
                a->entry = (uint32_t)i + 1;
                break;
            }
        }
    }
    return a->entry ? &entries[a->entry - 1] : NULL;
}

int shm_server_has_subcommand(RedisModuleCtx *ctx, const char *container, const char *sub) {
    RedisModuleUser *probe = RM.CreateModuleUser("shm-command-probe");
    if (!probe) return -1;
    RedisModuleString *argv[2] = {RM.CreateString(ctx, container, strlen(container)),
                                  RM.CreateString(ctx, sub, strlen(sub))};
    int known[2];
    for (int argc = 1; argc <= 2; argc++) {
        errno = 0;
        known[argc - 1] = RM.ACLCheckCommandPermissions(probe, argv, argc) == RM_OK ||
                          errno != ENOENT;
    }
    RM.FreeString(ctx, argv[0]);
    RM.FreeString(ctx, argv[1]);
    RM.FreeModuleUser(probe);
    if (!known[0]) return -1;
    return known[1];
}

int shm_command_has(const char *fullname) {
    if (!entries) return -1;
    return find(fullname) != NULL;
}

int shm_command_renamed(const char *fullname) {
    const struct entry *e = entries ? find(fullname) : NULL;
    return !e || e->moved;
}

struct shm_command *shm_command_lookup(RedisModuleCtx *ctx, const char *const *argv,
                                       const size_t *argvlen, size_t argc) {
    char key[SHM_COMMAND_NAME_MAX];
    if (!entries && learn(ctx) < 0) return NULL;
    if (argc < 1 || make_key(key, sizeof key, "", argv[0], argvlen[0]) < 0 ||
        memchr(key, '|', strlen(key)))
        return NULL;
    struct entry *e = find(key);
    if (!e || e->moved) e = moved_count ? probe_alias(ctx, key) : NULL;
    if (!e || !e->has_subcommands || argc < 2) return e ? &e->cmd : NULL;
    /* A container: the server runs the subcommand argv[1] names. */
    char prefix[SHM_COMMAND_NAME_MAX + 1];
    strcpy(prefix, e->key);
    strcat(prefix, "|");
    if (make_key(key, sizeof key, prefix, argv[1], argvlen[1]) < 0 ||
        memchr(key + strlen(prefix), '|', strlen(key) - strlen(prefix)))
        return NULL;
    e = find(key);
    return e ? &e->cmd : NULL;
}
