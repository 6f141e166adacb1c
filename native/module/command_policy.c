/*
 * command_policy.c - what may run over shared memory.
 *
 * RedisModule_Call skips processCommand(), so everything the server decides
 * there for a connection is ours to get right or to leave to the socket.  The
 * rules work on the command the server resolved (command_lookup.c), never on
 * the name a client typed:
 *   - unknown commands and wrong arities are refused: the socket answers them
 *     with the server's own error and error statistics;
 *   - commands flagged `noscript` cannot run from a script, because they act
 *     on a connection (AUTH, HELLO, MULTI, SUBSCRIBE, CLIENT ...) or are
 *     administrative (DEBUG, MODULE, CONFIG, SHUTDOWN, ACL, SCRIPT ...); the
 *     socket applies the server's checks to them (protected commands,
 *     enable-*-command, per-connection state), so they are refused here,
 *     whatever their name, except the few connection commands emulated by
 *     connection_state.c;
 *   - blocking commands are refused: RedisModule_Call cannot block;
 *   - the named list below repeats the most dangerous ones by their full
 *     name, so a server that forgets a flag cannot open them; a container's
 *     rule covers its subcommands (MODULE HELP too, under any name);
 *   - ASKING, READONLY and READWRITE (not noscript) set flags on the
 *     connection that runs them, so they must run on the socket; CLUSTER
 *     answers depend on the calling connection.  Keys of slots this node
 *     does not serve are refused by the server inside RedisModule_Call
 *     (command_call.c).
 */
#include "command_policy.h"

#include <string.h>

struct named_rule {
    const char *name; /* the server's full name */
    enum shm_action action;
    const char *reason;
};

static const struct named_rule rules[] = {
    {"select", SHM_ACT_SELECT, NULL},
    {"quit", SHM_ACT_QUIT, NULL},
    {"client|id", SHM_ACT_CLIENT_ID, NULL},
    {"client|getname", SHM_ACT_CLIENT_GETNAME, NULL},
    {"client|setname", SHM_ACT_CLIENT_SETNAME, NULL},
    {"auth", SHM_ACT_REFUSE, "authentication runs on the socket"},
    {"hello", SHM_ACT_REFUSE, "HELLO runs on the socket"},
    {"reset", SHM_ACT_REFUSE, "RESET runs on the socket"},
    {"debug", SHM_ACT_REFUSE, "protected command"},
    {"module", SHM_ACT_REFUSE, "protected command"},
    {"shutdown", SHM_ACT_REFUSE, "protected command"},
    {"failover", SHM_ACT_REFUSE, "FAILOVER needs the socket"},
    {"monitor", SHM_ACT_REFUSE, "MONITOR needs the socket"},
    {"multi", SHM_ACT_REFUSE, "transactions need the socket"},
    {"exec", SHM_ACT_REFUSE, "transactions need the socket"},
    {"wait", SHM_ACT_REFUSE, "WAIT needs the socket"},
    {"sync", SHM_ACT_REFUSE, "replication protocol"},
    {"psync", SHM_ACT_REFUSE, "replication protocol"},
    {"replconf", SHM_ACT_REFUSE, "replication protocol"},
    {"shm.handshake", SHM_ACT_REFUSE, "already in a session"},
    /* Cluster: ASKING, READONLY and READWRITE set flags of the connection
       that runs them (RedisModule_Call's throwaway client would take them
       and lose them), and CLUSTER's replies depend on the calling
       connection (TLS, IPv6). */
    {"asking", SHM_ACT_REFUSE, "connection flag: runs on the socket"},
    {"readonly", SHM_ACT_REFUSE, "connection flag: runs on the socket"},
    {"readwrite", SHM_ACT_REFUSE, "connection flag: runs on the socket"},
    {"cluster", SHM_ACT_REFUSE, "CLUSTER needs the socket"},
};

static struct shm_verdict refuse(const char *reason) {
    return (struct shm_verdict){SHM_ACT_REFUSE, reason};
}

#define NO_RULE ((int)(sizeof rules / sizeof rules[0]) + 1)

/* 1 + the index of the command's named rule, or NO_RULE.  A container's
   rule covers its subcommands ("module" covers "module|help"), whatever
   their flags say. */
static int find_rule(const char *name) {
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        size_t len = strlen(rules[i].name);
        if (!strncmp(rules[i].name, name, len) && (name[len] == '\0' || name[len] == '|'))
            return (int)i + 1;
    }
    return NO_RULE;
}

struct shm_verdict shm_policy_classify(struct shm_command *cmd, size_t argc) {
    if (!cmd) return refuse("unknown command: the socket answers");
    if (!shm_command_arity_ok(cmd, argc)) return refuse("wrong arity: the socket answers");
    if (!cmd->policy_rule) cmd->policy_rule = find_rule(cmd->name);
    if (cmd->policy_rule != NO_RULE) {
        const struct named_rule *r = &rules[cmd->policy_rule - 1];
        return (struct shm_verdict){r->action, r->reason};
    }
    if (cmd->flags & SHM_CMD_NOSCRIPT) return refuse("connection or admin command");
    if (cmd->flags & SHM_CMD_BLOCKING) return refuse("blocking command");
    return (struct shm_verdict){SHM_ACT_CALL, NULL};
}
