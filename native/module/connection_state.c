/*
 * connection_state.c - the per-connection commands a session answers itself.
 *
 * RedisModule_Call runs every command on a throwaway client that is reset
 * afterwards, so SELECT, CLIENT ID/GETNAME/SETNAME and QUIT cannot simply be
 * called.  The executor first runs the same command on that client, as the
 * session's user: its reply is the server's verdict (arguments, range, ACL).
 * An error is passed on as it is; on success the state is carried over to the
 * session, from the private copy of the request.  Names live on the control
 * connection, so CLIENT LIST agrees.
 *
 * AUTH, HELLO and RESET are not emulated: they change who the connection is,
 * so they run on the socket (the policy refuses them) and the client opens a
 * new session for the new identity.
 */
#include "connection_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply_output.h"

/* SELECT's argument, already accepted by the server (a canonical decimal
   below `databases`); -1 if it somehow is not. */
static int parse_db(const char *p, size_t len) {
    if (len == 0 || len > 9) return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static void reply_client_name(RedisModuleCtx *ctx, struct shm_session *s) {
    RedisModuleString *name = RM.GetClientNameById(ctx, s->control_client_id);
    size_t len = 0;
    const char *p = name ? RM.StringPtrLen(name, &len) : NULL;
    shm_reply_bulk_or_null(s, p, len);
    if (name) RM.FreeString(ctx, name);
}

void shm_state_run(RedisModuleCtx *ctx, struct shm_session *s, enum shm_action action,
                   const resp_request *q, RedisModuleString **args,
                   RedisModuleCallReply *validated) {
    if (action == SHM_ACT_QUIT) {
        shm_reply_text(s, "+OK\r\n");
        s->closing = "";
        return;
    }
    if (RM.CallReplyType(validated) == RM_REPLY_ERROR) {
        shm_reply_call(s, validated);
        return;
    }
    switch (action) {
    case SHM_ACT_SELECT: {
        int db = parse_db(q->argv[1], q->argvlen[1]);
        if (db < 0) {
            RM.FreeCallReply(validated);
            shm_session_fail(s, "SELECT accepted an index we cannot read");
            return;
        }
        s->db = db;
        break;
    }
    case SHM_ACT_CLIENT_SETNAME:
        RM.SetClientNameById(s->control_client_id, args[2]);
        break;
    case SHM_ACT_CLIENT_ID: {
        char line[32];
        RM.FreeCallReply(validated);
        snprintf(line, sizeof line, ":%llu\r\n", (unsigned long long)s->control_client_id);
        shm_reply_text(s, line);
        return;
    }
    case SHM_ACT_CLIENT_GETNAME:
        RM.FreeCallReply(validated);
        reply_client_name(ctx, s);
        return;
    default:
        break;
    }
    shm_reply_call(s, validated);
}
