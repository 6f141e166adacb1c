/*
 * client_capabilities.c - connections that sent `CLIENT CAPA redirect`.
 *
 * On a Valkey 8+ replica outside cluster mode, a connection that declared
 * the REDIRECT capability gets `-REDIRECT host:port` on its socket for every
 * write, and for every read unless it sent READONLY (processCommand, after
 * the ACL).  RedisModule_Call runs on the module's own client, which has no
 * capabilities, so a session would answer those reads from the replica:
 * silently different.  The Modules API does not show a connection's
 * capabilities, so we watch for them: a command filter notes the id of each
 * connection that sends CLIENT CAPA with a `redirect` argument, and while
 * the server is a replica (and not a cluster node) its sessions refuse
 * every command they would run through RedisModule_Call.  The socket then
 * answers: -REDIRECT, or, after READONLY, the read itself.  The emulated
 * connection commands (SELECT, CLIENT ID/GETNAME/SETNAME, QUIT) still run:
 * the socket never redirects them (they are neither reads nor writes).
 *
 * Conservative wherever the answer is not certain, since refusing more only
 * sends a command to the socket:
 *   - arguments are compared as the server compares them, with strcasecmp,
 *     so up to their first NUL ("redirect\0x" counts), and the subcommand's
 *     and the command's names too (the command table's lookup compares
 *     names so);
 *   - a connection is marked when it sends the command, before the server
 *     runs it: one whose CLIENT CAPA then fails (ACL, queued in a MULTI that
 *     never runs) stays marked; nothing takes the capability away (RESET
 *     keeps it), so neither does anything here;
 *   - CLIENT renamed (rename-command), or the command table not learned yet
 *     (command_lookup.c): any command whose arguments read `capa ...
 *     redirect` marks;
 *   - connections older than the module (a MODULE LOAD at run time) may have
 *     sent it before we could see: on a server that has CLIENT CAPA they
 *     count as marked.
 * A server without CLIENT CAPA (Redis) gets no filter: at load, an ACL
 * check of `CLIENT CAPA` asks the server's table, running nothing (it looks
 * the command up first, and an unknown one fails with ENOENT).  Where CLIENT
 * itself is unknown by that name (renamed) the filter is registered, and
 * the learned table (command_lookup.c) decides per CLIENT CAPA seen.
 *
 * Cost: the filter runs for every command of every client on the server,
 * the replication stream included.  For nearly all of them it is two calls
 * and a length test (the second argument is shorter than "capa" or does not
 * start with 'c'); the rest is for CLIENT CAPA itself.  The check per
 * session request is a flag test on a primary, and a binary search of the
 * marked ids on a replica that has any.
 *
 * Memory: one id per marked connection, kept sorted; an id is added once
 * and only for a connection (a client the server can find by id: not a
 * module's or a script's), and removed when it closes (ClientChange), so a
 * client cannot grow it beyond one entry per open connection.
 *
 * Threads: the filter and ClientChange run on the main thread, the checks in
 * a pass; all of them hold the GIL.
 */
#include "client_capabilities.h"

#include <string.h>
#include <strings.h>

#include "command_lookup.h"

#define MIN_CAPACITY 16

static uint64_t *ids; /* sorted */
static size_t count, capacity;
static int watching;           /* the filter is registered */
static uint64_t first_seen_id; /* connections below it predate the module */

/* The index of id in ids, or where it would go. */
static size_t position(uint64_t id) {
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int is_marked(uint64_t id) {
    size_t i = count ? position(id) : 0;
    return i < count && ids[i] == id;
}

static void resize(size_t cap) {
    ids = ids ? RM.Realloc(ids, cap * sizeof *ids) : RM.Alloc(cap * sizeof *ids);
    capacity = cap;
}

static void mark(uint64_t id) {
    size_t i = position(id);
    if (i < count && ids[i] == id) return;
    if (count == capacity) resize(capacity ? capacity * 2 : MIN_CAPACITY);
    memmove(ids + i + 1, ids + i, (count - i) * sizeof *ids);
    ids[i] = id;
    count++;
}

void shm_capa_client_gone(uint64_t client_id) {
    size_t i = count ? position(client_id) : 0;
    if (i == count || ids[i] != client_id) return;
    memmove(ids + i, ids + i + 1, (count - i - 1) * sizeof *ids);
    count--;
    if (!count) {
        RM.Free(ids);
        ids = NULL;
        capacity = 0;
    } else if (capacity > MIN_CAPACITY && count <= capacity / 4) {
        resize(capacity / 2);
    }
}

/* `arg` reads `word` (lowercase) to the server's strcasecmp: case aside,
   the same bytes up to its first NUL. */
static int reads(RedisModuleString *arg, const char *word, size_t wlen) {
    if (!arg) return 0;
    size_t len;
    const char *p = RM.StringPtrLen(arg, &len);
    return len >= wlen && !strncasecmp(p, word, wlen) && (len == wlen || p[wlen] == '\0');
}

/* argv[0] may be the server's CLIENT: the server has CLIENT CAPA (or the
   table is not learned), and the name is "client" or CLIENT may be known
   by another. */
static int may_be_client_capa(RedisModuleString *name) {
    if (shm_command_has("client|capa") == 0) return 0;
    return reads(name, "client", 6) || shm_command_renamed("client");
}

static void on_command(RedisModuleCommandFilterCtx *fctx) {
    /* Every command on the server comes here: one argument's length and
       first byte send nearly all of them away. */
    RedisModuleString *sub = RM.CommandFilterArgGet(fctx, 1);
    if (!sub) return;
    size_t len;
    const char *p = RM.StringPtrLen(sub, &len);
    if (len < 4 || (p[0] | 0x20) != 'c' || !reads(sub, "capa", 4)) return;

    int argc = RM.CommandFilterArgsCount(fctx), redirect = 0;
    for (int i = 2; i < argc && !redirect; i++)
        redirect = reads(RM.CommandFilterArgGet(fctx, i), "redirect", 8);
    if (!redirect || !may_be_client_capa(RM.CommandFilterArgGet(fctx, 0))) return;
    uint64_t id = RM.CommandFilterGetClientId(fctx);
    /* Only connections: a module's or a script's client is never found by
       id, and would never be forgotten (no ClientChange for it). */
    if (RM.GetClientInfoById(NULL, id) == RM_OK) mark(id);
}

int shm_capa_init(RedisModuleCtx *ctx) {
    if (!RM.RegisterCommandFilter || !RM.CommandFilterArgsCount || !RM.CommandFilterArgGet ||
        !RM.CommandFilterGetClientId || shm_server_has_subcommand(ctx, "client", "capa") == 0)
        return RM_OK;
    /* Client ids only grow: a client created now gets an id above every
       connection open before the module loaded (and below every later one). */
    RedisModuleCtx *probe = RM.GetDetachedThreadSafeContext(ctx);
    if (!probe) return RM_ERR;
    first_seen_id = RM.GetClientId(probe);
    RM.FreeThreadSafeContext(probe);
    if (!RM.RegisterCommandFilter(ctx, on_command, RM_CMDFILTER_NOSELF)) return RM_ERR;
    watching = 1;
    RM.Log(ctx, "verbose", "shm: watching for CLIENT CAPA redirect (a command filter)");
    return RM_OK;
}

const char *shm_capa_refusal(int ctx_flags, uint64_t client_id) {
    if (!watching || !(ctx_flags & RM_CTX_FLAGS_SLAVE) || (ctx_flags & RM_CTX_FLAGS_CLUSTER))
        return NULL;
    if (is_marked(client_id))
        return "CLIENT CAPA redirect on a replica: the socket answers";
    if (client_id < first_seen_id && shm_command_has("client|capa") != 0)
        return "a connection older than the module, on a replica: the socket answers";
    return NULL;
}

size_t shm_capa_marked(void) { return count; }
