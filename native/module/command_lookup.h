/*
 * command_lookup.h - resolves a request's command the way the server will:
 * through its own command table, so a renamed command (rename-command DEBUG
 * x) is known by its real name, a container's subcommand is resolved, and
 * the arity and flags are the server's, not a list of ours.
 */
#ifndef SHM_COMMAND_LOOKUP_H
#define SHM_COMMAND_LOOKUP_H

#include <stddef.h>
#include <stdint.h>

#include "rm_api.h"

#define SHM_COMMAND_NAME_MAX 64

/* Command flags we care about, from COMMAND. */
enum {
    SHM_CMD_WRITE = 1 << 0,
    SHM_CMD_DENYOOM = 1 << 1,
    SHM_CMD_BLOCKING = 1 << 2,
    SHM_CMD_PUBSUB = 1 << 3,
    SHM_CMD_ADMIN = 1 << 4,
    SHM_CMD_NOSCRIPT = 1 << 5,
    SHM_CMD_MAY_REPLICATE = 1 << 6, /* shown by 7.2+ only */
    SHM_CMD_NO_AUTH = 1 << 7,       /* command_lookup.c's own use */
};

struct shm_command {
    char name[SHM_COMMAND_NAME_MAX]; /* the server's full name: "debug", "client|kill" */
    int arity;                       /* the server's: n exact, -n at least n */
    uint32_t flags;                  /* SHM_CMD_* */
    int policy_rule;                 /* command_policy.c's, found once: 0 = not yet */
};

/* The command argv[0..argc) names, or NULL when the server does not know it
   (unknown command or subcommand: the server's own error then answers).
   ctx: a context RedisModule_Call may run on (GIL held).  The result stays
   valid until the next lookup or forget. */
struct shm_command *shm_command_lookup(RedisModuleCtx *ctx, const char *const *argv,
                                       const size_t *argvlen, size_t argc);

/* What the learned table says, running nothing (for the command filter,
   client_capabilities.c, which must not call commands).  `fullname` is the
   server's lowercase full name.  shm_command_has: 1 when the server has
   that command or subcommand ("client|capa"), 0 when not, -1 when the table
   is not learned.  shm_command_renamed: 0 when the top-level command
   `fullname` is found under its own name only, 1 when rename-command moved
   it, when the table is not learned, or when the server lacks it. */
int shm_command_has(const char *fullname);
int shm_command_renamed(const char *fullname);

/* Whether the server's command table has `container`'s subcommand `sub`,
   asked of the server itself (an ACL permission check for a throwaway user,
   which says ENOENT for an unknown command): 1 when it has it, 0 when it
   has `container` but not `sub`, -1 when that cannot be told.  Usable in
   OnLoad, before anything is learned. */
int shm_server_has_subcommand(RedisModuleCtx *ctx, const char *container, const char *sub);

/* 1 when argc satisfies the command's arity. */
static inline int shm_command_arity_ok(const struct shm_command *cmd, size_t argc) {
    return cmd->arity >= 0 ? argc == (size_t)cmd->arity : argc >= (size_t)-cmd->arity;
}

/* Forget everything learned (a module was loaded or unloaded). */
void shm_command_forget(void);

/* Learn the server's table now unless it is known, or was tried since the
   last forget (BEFORE_SLEEP: learned before any client is served, not in
   the middle of one's traffic).  A lookup learns it too when needed. */
void shm_command_learn(RedisModuleCtx *ctx);

#endif
