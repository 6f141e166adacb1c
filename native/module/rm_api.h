/*
 * rm_api.h - our own declaration of the slice of the Redis Modules API that
 * the shm module uses.
 *
 * We do not vendor redismodule.h: its inline Init() ignores lookup failures
 * (a missing API crashes on first use) and knows only the RedisModule_
 * prefix.  Here every API is a member of one function-pointer table, RM,
 * filled at load by rm_api_init() through the server's GetApi.  A missing API
 * stays NULL, so features are detected by name, never by version number
 * (Valkey reports its own version).  Names are ours: types keep the ABI names
 * the server documents (RedisModuleCtx, ...), constants are RM_*, callback
 * typedefs are rm_*_fn, and members carry no prefix: RM.Call(ctx, ...).
 * Values and signatures: shared/reference/redis-modules-api.md section 1,
 * checked against Redis 7.0.15 and Valkey 8.0.1 (identical values).
 */
#ifndef SHM_RM_API_H
#define SHM_RM_API_H

#include <stddef.h>
#include <stdint.h>

/* ---- opaque server objects (only ever handled by pointer) ---- */
typedef struct RedisModuleCtx RedisModuleCtx;
typedef struct RedisModuleString RedisModuleString;
typedef struct RedisModuleCallReply RedisModuleCallReply;
typedef struct RedisModuleUser RedisModuleUser;
typedef struct RedisModuleBlockedClient RedisModuleBlockedClient;
typedef struct RedisModuleInfoCtx RedisModuleInfoCtx;
typedef struct RedisModuleCommandFilterCtx RedisModuleCommandFilterCtx;
typedef struct RedisModuleCommandFilter RedisModuleCommandFilter;

/* ---- structs whose layout is part of the ABI ---- */

/* A server event: passed BY VALUE to SubscribeToServerEvent and callbacks. */
typedef struct RedisModuleEvent {
    uint64_t id;
    uint64_t dataver;
} RedisModuleEvent;

/* `data` of the ClientChange event, and the target of GetClientInfoById
   (set .version = RM_CLIENTINFO_VERSION before that call). */
typedef struct RedisModuleClientInfoV1 {
    uint64_t version;
    uint64_t flags;   /* RM_CLIENTINFO_FLAG_* */
    uint64_t id;
    char addr[46];    /* textual IPv4/IPv6 address */
    uint16_t port;
    uint16_t db;
} RedisModuleClientInfoV1;

_Static_assert(sizeof(RedisModuleEvent) == 16, "RedisModuleEvent ABI");
_Static_assert(offsetof(RedisModuleClientInfoV1, addr) == 24, "ClientInfoV1 ABI");
_Static_assert(offsetof(RedisModuleClientInfoV1, port) == 70, "ClientInfoV1 ABI");
_Static_assert(offsetof(RedisModuleClientInfoV1, db) == 72, "ClientInfoV1 ABI");

/* ---- status and API version ---- */
#define RM_OK 0
#define RM_ERR 1
#define RM_APIVER_1 1

/* ---- CallReplyType() results ---- */
#define RM_REPLY_UNKNOWN (-1)
#define RM_REPLY_STRING 0
#define RM_REPLY_ERROR 1
#define RM_REPLY_INTEGER 2
#define RM_REPLY_ARRAY 3
#define RM_REPLY_NULL 4
#define RM_REPLY_MAP 5               /* RESP3 from here on */
#define RM_REPLY_SET 6
#define RM_REPLY_BOOL 7
#define RM_REPLY_DOUBLE 8
#define RM_REPLY_BIG_NUMBER 9
#define RM_REPLY_VERBATIM_STRING 10
#define RM_REPLY_ATTRIBUTE 11
#define RM_REPLY_PROMISE 12          /* 7.2+, only with the 'K' call flag */

/* ---- event loop masks (EventLoopAdd/Del) ---- */
#define RM_EVENTLOOP_READABLE 1
#define RM_EVENTLOOP_WRITABLE 2

/* ---- GetContextFlags() bits ---- */
#define RM_CTX_FLAGS_LUA (1 << 0)
#define RM_CTX_FLAGS_MULTI (1 << 1)
#define RM_CTX_FLAGS_MASTER (1 << 2)  /* Valkey: PRIMARY, same bit */
#define RM_CTX_FLAGS_SLAVE (1 << 3)   /* Valkey: REPLICA, same bit */
#define RM_CTX_FLAGS_READONLY (1 << 4)
#define RM_CTX_FLAGS_CLUSTER (1 << 5)
#define RM_CTX_FLAGS_AOF (1 << 6)
#define RM_CTX_FLAGS_RDB (1 << 7)
#define RM_CTX_FLAGS_MAXMEMORY (1 << 8)
#define RM_CTX_FLAGS_EVICT (1 << 9)
#define RM_CTX_FLAGS_OOM (1 << 10)
#define RM_CTX_FLAGS_OOM_WARNING (1 << 11)
#define RM_CTX_FLAGS_REPLICATED (1 << 12)
#define RM_CTX_FLAGS_LOADING (1 << 13)
#define RM_CTX_FLAGS_REPLICA_IS_STALE (1 << 14)
#define RM_CTX_FLAGS_REPLICA_IS_CONNECTING (1 << 15)
#define RM_CTX_FLAGS_REPLICA_IS_TRANSFERRING (1 << 16)
#define RM_CTX_FLAGS_REPLICA_IS_ONLINE (1 << 17)
#define RM_CTX_FLAGS_ACTIVE_CHILD (1 << 18)
#define RM_CTX_FLAGS_MULTI_DIRTY (1 << 19)
#define RM_CTX_FLAGS_IS_CHILD (1 << 20)
#define RM_CTX_FLAGS_DENY_BLOCKING (1 << 21)
#define RM_CTX_FLAGS_RESP3 (1 << 22)
#define RM_CTX_FLAGS_ASYNC_LOADING (1 << 23)
#define RM_CTX_FLAGS_SERVER_STARTUP (1 << 24) /* 7.2+ */

/* ---- SetModuleOptions() bits ---- */
#define RM_OPTIONS_HANDLE_REPL_ASYNC_LOAD (1 << 2) /* 7.0+ */
#define RM_OPTIONS_HANDLE_ATOMIC_SLOT_MIGRATION (1 << 5) /* Valkey 9+: CLUSTER MIGRATESLOTS */

/* ---- Register*Config flags (the API takes unsigned int) ---- */
#define RM_CONFIG_DEFAULT 0u
#define RM_CONFIG_IMMUTABLE (1u << 0)
#define RM_CONFIG_SENSITIVE (1u << 1)
#define RM_CONFIG_HIDDEN (1u << 4)
#define RM_CONFIG_PROTECTED (1u << 5)
#define RM_CONFIG_DENY_LOADING (1u << 6)
#define RM_CONFIG_MEMORY (1u << 7)   /* numeric configs only: accepts "1mb" */
#define RM_CONFIG_BITFLAGS (1u << 8) /* enum configs only */

/* ---- server events: ids, and ready-made {id, dataver} values ---- */
#define RM_EVENTID_REPLICATION_ROLE_CHANGED 0
#define RM_EVENTID_PERSISTENCE 1
#define RM_EVENTID_FLUSHDB 2
#define RM_EVENTID_LOADING 3
#define RM_EVENTID_CLIENT_CHANGE 4
#define RM_EVENTID_SHUTDOWN 5
#define RM_EVENTID_REPLICA_CHANGE 6
#define RM_EVENTID_MASTER_LINK_CHANGE 7
#define RM_EVENTID_CRON_LOOP 8
#define RM_EVENTID_MODULE_CHANGE 9
#define RM_EVENTID_LOADING_PROGRESS 10
#define RM_EVENTID_SWAPDB 11
#define RM_EVENTID_FORK_CHILD 13
#define RM_EVENTID_REPL_ASYNC_LOAD 14
#define RM_EVENTID_EVENTLOOP 15      /* 7.0+ */
#define RM_EVENTID_CONFIG 16         /* 7.0+ */

#define RM_EVENT_(eid) ((RedisModuleEvent){(uint64_t)(eid), 1})
#define RM_EVENT_REPLICATION_ROLE_CHANGED RM_EVENT_(RM_EVENTID_REPLICATION_ROLE_CHANGED)
#define RM_EVENT_PERSISTENCE RM_EVENT_(RM_EVENTID_PERSISTENCE)
#define RM_EVENT_FLUSHDB RM_EVENT_(RM_EVENTID_FLUSHDB)
#define RM_EVENT_LOADING RM_EVENT_(RM_EVENTID_LOADING)
#define RM_EVENT_CLIENT_CHANGE RM_EVENT_(RM_EVENTID_CLIENT_CHANGE)
#define RM_EVENT_SHUTDOWN RM_EVENT_(RM_EVENTID_SHUTDOWN)
#define RM_EVENT_REPLICA_CHANGE RM_EVENT_(RM_EVENTID_REPLICA_CHANGE)
#define RM_EVENT_MASTER_LINK_CHANGE RM_EVENT_(RM_EVENTID_MASTER_LINK_CHANGE)
#define RM_EVENT_CRON_LOOP RM_EVENT_(RM_EVENTID_CRON_LOOP)
#define RM_EVENT_MODULE_CHANGE RM_EVENT_(RM_EVENTID_MODULE_CHANGE)
#define RM_EVENT_LOADING_PROGRESS RM_EVENT_(RM_EVENTID_LOADING_PROGRESS)
#define RM_EVENT_SWAPDB RM_EVENT_(RM_EVENTID_SWAPDB)
#define RM_EVENT_FORK_CHILD RM_EVENT_(RM_EVENTID_FORK_CHILD)
#define RM_EVENT_REPL_ASYNC_LOAD RM_EVENT_(RM_EVENTID_REPL_ASYNC_LOAD)
#define RM_EVENT_EVENTLOOP RM_EVENT_(RM_EVENTID_EVENTLOOP)
#define RM_EVENT_CONFIG RM_EVENT_(RM_EVENTID_CONFIG)

/* ---- subevents (Shutdown and CronLoop have none) ---- */
#define RM_SUBEVENT_CLIENT_CHANGE_CONNECTED 0
#define RM_SUBEVENT_CLIENT_CHANGE_DISCONNECTED 1
#define RM_SUBEVENT_EVENTLOOP_BEFORE_SLEEP 0
#define RM_SUBEVENT_EVENTLOOP_AFTER_SLEEP 1
#define RM_SUBEVENT_REPLROLECHANGED_NOW_MASTER 0
#define RM_SUBEVENT_REPLROLECHANGED_NOW_REPLICA 1
#define RM_SUBEVENT_FLUSHDB_START 0
#define RM_SUBEVENT_FLUSHDB_END 1

/* ---- RedisModuleClientInfoV1 ---- */
#define RM_CLIENTINFO_VERSION 1
#define RM_CLIENTINFO_FLAG_SSL (1 << 0)
#define RM_CLIENTINFO_FLAG_PUBSUB (1 << 1)
#define RM_CLIENTINFO_FLAG_BLOCKED (1 << 2)
#define RM_CLIENTINFO_FLAG_TRACKING (1 << 3)
#define RM_CLIENTINFO_FLAG_UNIXSOCKET (1 << 4)
#define RM_CLIENTINFO_FLAG_MULTI (1 << 5)

/* ---- RegisterCommandFilter() flags ---- */
#define RM_CMDFILTER_NOSELF (1 << 0) /* not called for the module's own Call()s */

/* ---- Log levels (anything else is logged as "verbose") ---- */
#define RM_LOG_DEBUG "debug"
#define RM_LOG_VERBOSE "verbose"
#define RM_LOG_NOTICE "notice"
#define RM_LOG_WARNING "warning"

/* ---- callbacks the server calls ---- */
typedef int (*rm_command_fn)(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
typedef void (*rm_eventloop_fd_fn)(int fd, void *user_data, int mask);
typedef void (*rm_oneshot_fn)(void *user_data);
typedef void (*rm_server_event_fn)(RedisModuleCtx *ctx, RedisModuleEvent eid, uint64_t subevent,
                                   void *data);
typedef long long (*rm_config_get_numeric_fn)(const char *name, void *privdata);
typedef int (*rm_config_set_numeric_fn)(const char *name, long long val, void *privdata,
                                        RedisModuleString **err);
typedef RedisModuleString *(*rm_config_get_string_fn)(const char *name, void *privdata);
typedef int (*rm_config_set_string_fn)(const char *name, RedisModuleString *val, void *privdata,
                                       RedisModuleString **err);
typedef int (*rm_config_get_bool_fn)(const char *name, void *privdata);
typedef int (*rm_config_set_bool_fn)(const char *name, int val, void *privdata,
                                     RedisModuleString **err);
typedef int (*rm_config_get_enum_fn)(const char *name, void *privdata);
typedef int (*rm_config_set_enum_fn)(const char *name, int val, void *privdata,
                                     RedisModuleString **err);
typedef int (*rm_config_apply_fn)(RedisModuleCtx *ctx, void *privdata, RedisModuleString **err);
typedef void (*rm_info_fn)(RedisModuleInfoCtx *ictx, int for_crash_report);
typedef void (*rm_command_filter_fn)(RedisModuleCommandFilterCtx *fctx);

#define RM_PRINTF_(fmt_idx, first_arg) __attribute__((format(printf, fmt_idx, first_arg)))

/*
 * The API table.  Every member is a function pointer (rm_api.c checks this
 * at compile time); which ones must resolve is decided by the table in
 * rm_api.c.  Call-site gotchas (reference section 1.4):
 *  - Call's "v" format consumes (RedisModuleString **vec, size_t n): cast the
 *    count to size_t; "l" takes long long, "b" takes (const char *, size_t).
 *    The command name is a separate argument, never part of the vector.
 *  - FreeModuleUser is declared void in the stock header but returns int.
 */
struct rm_api {
    /* module lifecycle */
    void (*SetModuleAttribs)(RedisModuleCtx *ctx, const char *name, int ver, int apiver);
    int (*IsModuleNameBusy)(const char *name);
    void (*SetModuleOptions)(RedisModuleCtx *ctx, int options);
    int (*CreateCommand)(RedisModuleCtx *ctx, const char *name, rm_command_fn cmdfunc,
                         const char *strflags, int firstkey, int lastkey, int keystep);

    /* memory (counted in used_memory) */
    void *(*Alloc)(size_t bytes);
    void *(*Calloc)(size_t nmemb, size_t size);
    void *(*Realloc)(void *ptr, size_t bytes);
    void (*Free)(void *ptr);
    char *(*Strdup)(const char *str);

    /* thread-safe contexts and the module GIL */
    RedisModuleCtx *(*GetDetachedThreadSafeContext)(RedisModuleCtx *ctx);
    RedisModuleCtx *(*GetThreadSafeContext)(RedisModuleBlockedClient *bc);
    void (*FreeThreadSafeContext)(RedisModuleCtx *ctx);
    void (*ThreadSafeContextLock)(RedisModuleCtx *ctx);
    void (*ThreadSafeContextUnlock)(RedisModuleCtx *ctx);
    int (*ThreadSafeContextTryLock)(RedisModuleCtx *ctx);

    /* calling commands and reading their replies */
    RedisModuleCallReply *(*Call)(RedisModuleCtx *ctx, const char *cmdname, const char *fmt,
                                  ...);
    const char *(*CallReplyProto)(RedisModuleCallReply *reply, size_t *len);
    int (*CallReplyType)(RedisModuleCallReply *reply);
    size_t (*CallReplyLength)(RedisModuleCallReply *reply);
    RedisModuleCallReply *(*CallReplyArrayElement)(RedisModuleCallReply *reply, size_t idx);
    const char *(*CallReplyStringPtr)(RedisModuleCallReply *reply, size_t *len);
    long long (*CallReplyInteger)(RedisModuleCallReply *reply);
    void (*FreeCallReply)(RedisModuleCallReply *reply);

    /* a command's keys and their slots (command_call.c, cluster mode) */
    int *(*GetCommandKeysWithFlags)(RedisModuleCtx *ctx, RedisModuleString **argv, int argc,
                                    int *num_keys, int **out_flags);
    unsigned int (*ClusterKeySlot)(RedisModuleString *key); /* Redis 7.4+, Valkey 8+ */
    /* the server's own Free, for what the server allocated (sanitizer builds
       route Free to libc, for the module's own memory) */
    void (*ServerFree)(void *ptr);

    /* strings */
    RedisModuleString *(*CreateString)(RedisModuleCtx *ctx, const char *ptr, size_t len);
    RedisModuleString *(*CreateStringPrintf)(RedisModuleCtx *ctx, const char *fmt, ...)
        RM_PRINTF_(2, 3);
    void (*FreeString)(RedisModuleCtx *ctx, RedisModuleString *str);
    const char *(*StringPtrLen)(const RedisModuleString *str, size_t *len);

    /* databases */
    int (*SelectDb)(RedisModuleCtx *ctx, int newid);
    int (*GetSelectedDb)(RedisModuleCtx *ctx);

    /* event loop (7.0+) */
    int (*EventLoopAdd)(int fd, int mask, rm_eventloop_fd_fn func, void *user_data);
    int (*EventLoopDel)(int fd, int mask);
    int (*EventLoopAddOneShot)(rm_oneshot_fn func, void *user_data);

    /* module configs (7.0+) */
    int (*RegisterNumericConfig)(RedisModuleCtx *ctx, const char *name, long long default_val,
                                 unsigned int flags, long long min, long long max,
                                 rm_config_get_numeric_fn getfn, rm_config_set_numeric_fn setfn,
                                 rm_config_apply_fn applyfn, void *privdata);
    int (*RegisterStringConfig)(RedisModuleCtx *ctx, const char *name, const char *default_val,
                                unsigned int flags, rm_config_get_string_fn getfn,
                                rm_config_set_string_fn setfn, rm_config_apply_fn applyfn,
                                void *privdata);
    int (*RegisterBoolConfig)(RedisModuleCtx *ctx, const char *name, int default_val,
                              unsigned int flags, rm_config_get_bool_fn getfn,
                              rm_config_set_bool_fn setfn, rm_config_apply_fn applyfn,
                              void *privdata);
    int (*RegisterEnumConfig)(RedisModuleCtx *ctx, const char *name, int default_val,
                              unsigned int flags, const char **enum_values,
                              const int *int_values, int num_enum_vals,
                              rm_config_get_enum_fn getfn, rm_config_set_enum_fn setfn,
                              rm_config_apply_fn applyfn, void *privdata);
    int (*LoadConfigs)(RedisModuleCtx *ctx);

    /* logging (ctx may be NULL) */
    void (*Log)(RedisModuleCtx *ctx, const char *level, const char *fmt, ...) RM_PRINTF_(3, 4);

    /* server events */
    int (*SubscribeToServerEvent)(RedisModuleCtx *ctx, RedisModuleEvent event,
                                  rm_server_event_fn callback);

    /* users and clients */
    RedisModuleString *(*GetCurrentUserName)(RedisModuleCtx *ctx);
    RedisModuleUser *(*GetModuleUserFromUserName)(RedisModuleString *name);
    int (*FreeModuleUser)(RedisModuleUser *user);
    void (*SetContextUser)(RedisModuleCtx *ctx, const RedisModuleUser *user); /* 7.0.6 */
    int (*ACLCheckCommandPermissions)(RedisModuleUser *user, RedisModuleString **argv, int argc);
    /* an unlinked user of our own, invisible to ACL LIST (command_lookup.c) */
    RedisModuleUser *(*CreateModuleUser)(const char *name);
    int (*SetModuleUserACL)(RedisModuleUser *user, const char *acl);
    int (*AuthenticateClientWithUser)(RedisModuleCtx *ctx, RedisModuleUser *user, void *callback,
                                      void *privdata, uint64_t *client_id);
    int (*AuthenticateClientWithACLUser)(RedisModuleCtx *ctx, const char *name, size_t len,
                                         void *callback, void *privdata, uint64_t *client_id);
    /* 7.2+: only probed, as the mark of servers whose RedisModule_Call words
       and logs ACL denials as the socket does (command_call.c) */
    int (*RegisterAuthCallback)(RedisModuleCtx *ctx, void *cb);
    /* Redis 8.0+ only: probed as the mark of its main-thread-only client
       output (worker.c), never called */
    void *(*GetInternalSecret)(RedisModuleCtx *ctx, size_t *len);
    unsigned long long (*GetClientId)(RedisModuleCtx *ctx);
    int (*GetClientInfoById)(void *ci, uint64_t id);
    RedisModuleString *(*GetClientUserNameById)(RedisModuleCtx *ctx, uint64_t id);
    RedisModuleString *(*GetClientNameById)(RedisModuleCtx *ctx, uint64_t id); /* 7.0.3 */
    int (*SetClientNameById)(uint64_t id, RedisModuleString *name);           /* 7.0.3 */
    int (*GetContextFlags)(RedisModuleCtx *ctx);

    /* command filters (client_capabilities.c); all optional: the client id
       came with Redis 7.2 */
    RedisModuleCommandFilter *(*RegisterCommandFilter)(RedisModuleCtx *ctx,
                                                       rm_command_filter_fn cb, int flags);
    int (*CommandFilterArgsCount)(RedisModuleCommandFilterCtx *fctx);
    RedisModuleString *(*CommandFilterArgGet)(RedisModuleCommandFilterCtx *fctx, int pos);
    unsigned long long (*CommandFilterGetClientId)(RedisModuleCommandFilterCtx *fctx);

    /* INFO section */
    int (*RegisterInfoFunc)(RedisModuleCtx *ctx, rm_info_fn cb);
    int (*InfoAddSection)(RedisModuleInfoCtx *ictx, const char *name);
    int (*InfoAddFieldLongLong)(RedisModuleInfoCtx *ictx, const char *field, long long value);
    int (*InfoAddFieldULongLong)(RedisModuleInfoCtx *ictx, const char *field,
                                 unsigned long long value);
    int (*InfoAddFieldCString)(RedisModuleInfoCtx *ictx, const char *field, const char *value);
    int (*InfoAddFieldDouble)(RedisModuleInfoCtx *ictx, const char *field, double value);

    /* replies to the calling (socket) client */
    int (*ReplyWithError)(RedisModuleCtx *ctx, const char *err);
    int (*ReplyWithSimpleString)(RedisModuleCtx *ctx, const char *msg);
    int (*ReplyWithLongLong)(RedisModuleCtx *ctx, long long ll);
    int (*ReplyWithStringBuffer)(RedisModuleCtx *ctx, const char *buf, size_t len);
    int (*ReplyWithCString)(RedisModuleCtx *ctx, const char *buf);
    int (*ReplyWithArray)(RedisModuleCtx *ctx, long len);
    int (*ReplyWithNull)(RedisModuleCtx *ctx);
    int (*ReplyWithCallReply)(RedisModuleCtx *ctx, RedisModuleCallReply *reply);
    int (*WrongArity)(RedisModuleCtx *ctx);

    /* server state */
    int (*AvoidReplicaTraffic)(void); /* 1 while clients are paused (any reason) */

    /* time and version */
    uint64_t (*MonotonicMicroseconds)(void);
    long long (*Milliseconds)(void); /* wall clock */
    int (*GetServerVersion)(void);   /* optional; Valkey reports its own numbering */
};

/* The one table.  All members are NULL until rm_api_init() resolves them. */
extern struct rm_api RM;

/*
 * Resolve RM through the GetApi pointer stored in the first word of the
 * OnLoad ctx, trying "RedisModule_<Name>" and then "ValkeyModule_<Name>"
 * (Valkey 7.2.5 registered only the latter).  Unresolved members stay NULL.
 *
 * Returns RM_OK after IsModuleNameBusy and SetModuleAttribs(ctx, module_name,
 * module_version, RM_APIVER_1) succeeded; *missing is then NULL.
 * Returns RM_ERR, WITHOUT registering the module, when:
 *  - a required API is missing: *missing points to its static name WITHOUT
 *    prefix, e.g. "SetContextUser" (the first missing one, in table order;
 *    "GetApi" when ctx carries no lookup function);
 *  - the module name is taken: *missing is NULL;
 *  - (programming error) the table in rm_api.c is out of struct order:
 *    reported on stderr, *missing is NULL.
 * On RM_ERR whatever did resolve stays usable, so the caller can report with
 * RM.Log(NULL, ...) when RM.Log is non-NULL, else with stderr.
 * `missing` may be NULL if the caller does not want the name.
 */
int rm_api_init(RedisModuleCtx *ctx, const char *module_name, int module_version,
                const char **missing);

#endif /* SHM_RM_API_H */
