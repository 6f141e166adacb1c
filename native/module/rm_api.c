/*
 * rm_api.c - resolves the RM function table at module load.
 *
 * One static table lists every member of struct rm_api with the offset of its
 * slot and whether the module can run without it.  Keeping "required" in a
 * single place means the loader refuses, with the API's name, a server that
 * lacks something (instead of crashing on first use as the stock header
 * does), and an optional feature is just a NULL check at its call site.
 * Required = present in every server we support: Redis >= 7.0.6 (for
 * SetContextUser and the "run as user" meaning of the C call flag) and
 * Valkey >= 7.2.6.  A compile-time check ties the table to the struct so a
 * member cannot be added without deciding which it is.
 */
#include "rm_api.h"

#include <stdio.h>
#include <string.h>

struct rm_api RM;

#ifdef SHM_SANITIZE
/* Sanitizer builds (tests/security): the server's allocator (jemalloc) hides
   our heap from ASan, so the module's own allocations go through libc.  The
   module never hands its memory to the server to free, nor frees the
   server's. */
#include <stdlib.h>
static void *libc_alloc(size_t n) { return malloc(n); }
static void *libc_calloc(size_t n, size_t size) { return calloc(n, size); }
static void *libc_realloc(void *p, size_t n) { return realloc(p, n); }
static void libc_free(void *p) { free(p); }
static char *libc_strdup(const char *s) { return strdup(s); }
static void use_libc_allocator(void) {
    RM.Alloc = libc_alloc;
    RM.Calloc = libc_calloc;
    RM.Realloc = libc_realloc;
    RM.Free = libc_free;
    RM.Strdup = libc_strdup;
}
#endif

/* The server's lookup function: returns RM_OK and stores the function in
   *ptrptr, or returns RM_ERR and leaves *ptrptr alone. */
typedef int (*rm_getapi_fn)(const char *name, void *ptrptr);

#define RM_REDIS_PREFIX "RedisModule_"
#define RM_VALKEY_PREFIX "ValkeyModule_"

struct rm_api_entry {
    const char *name;   /* without prefix, e.g. "Call" */
    size_t offset;      /* of the member in struct rm_api */
    unsigned char required;
};

#define REQUIRED(member) {#member, offsetof(struct rm_api, member), 1}
#define OPTIONAL(member) {#member, offsetof(struct rm_api, member), 0}

static const struct rm_api_entry rm_api_table[] = {
    REQUIRED(SetModuleAttribs),
    REQUIRED(IsModuleNameBusy),
    REQUIRED(SetModuleOptions),
    REQUIRED(CreateCommand),
    REQUIRED(Alloc),
    REQUIRED(Calloc),
    REQUIRED(Realloc),
    REQUIRED(Free),
    REQUIRED(Strdup),
    REQUIRED(GetDetachedThreadSafeContext),
    REQUIRED(GetThreadSafeContext),
    REQUIRED(FreeThreadSafeContext),
    REQUIRED(ThreadSafeContextLock),
    REQUIRED(ThreadSafeContextUnlock),
    REQUIRED(ThreadSafeContextTryLock),
    REQUIRED(Call),
    REQUIRED(CallReplyProto),
    REQUIRED(CallReplyType),
    REQUIRED(CallReplyLength),
    REQUIRED(CallReplyArrayElement),
    REQUIRED(CallReplyStringPtr),
    REQUIRED(CallReplyInteger),
    REQUIRED(FreeCallReply),
    OPTIONAL(GetCommandKeysWithFlags),
    OPTIONAL(ClusterKeySlot),
    {"Free", offsetof(struct rm_api, ServerFree), 1},
    REQUIRED(CreateString),
    REQUIRED(CreateStringPrintf),
    REQUIRED(FreeString),
    REQUIRED(StringPtrLen),
    REQUIRED(SelectDb),
    REQUIRED(GetSelectedDb),
    REQUIRED(EventLoopAdd),
    REQUIRED(EventLoopDel),
    REQUIRED(EventLoopAddOneShot),
    REQUIRED(RegisterNumericConfig),
    REQUIRED(RegisterStringConfig),
    REQUIRED(RegisterBoolConfig),
    REQUIRED(RegisterEnumConfig),
    REQUIRED(LoadConfigs),
    REQUIRED(Log),
    REQUIRED(SubscribeToServerEvent),
    REQUIRED(GetCurrentUserName),
    REQUIRED(GetModuleUserFromUserName),
    REQUIRED(FreeModuleUser),
    REQUIRED(SetContextUser),        /* 7.0.6: the floor of what we support */
    REQUIRED(ACLCheckCommandPermissions),
    REQUIRED(CreateModuleUser),
    REQUIRED(SetModuleUserACL),
    REQUIRED(AuthenticateClientWithUser),
    REQUIRED(AuthenticateClientWithACLUser),
    OPTIONAL(RegisterAuthCallback),  /* a capability mark, never called */
    OPTIONAL(GetInternalSecret),     /* a capability mark, never called */
    REQUIRED(GetClientId),
    REQUIRED(GetClientInfoById),
    REQUIRED(GetClientUserNameById),
    REQUIRED(GetClientNameById),     /* 7.0.3 */
    REQUIRED(SetClientNameById),     /* 7.0.3 */
    REQUIRED(GetContextFlags),
    OPTIONAL(RegisterCommandFilter),
    OPTIONAL(CommandFilterArgsCount),
    OPTIONAL(CommandFilterArgGet),
    OPTIONAL(CommandFilterGetClientId), /* 7.2 */
    REQUIRED(RegisterInfoFunc),
    REQUIRED(InfoAddSection),
    REQUIRED(InfoAddFieldLongLong),
    REQUIRED(InfoAddFieldULongLong),
    REQUIRED(InfoAddFieldCString),
    REQUIRED(InfoAddFieldDouble),
    REQUIRED(ReplyWithError),
    REQUIRED(ReplyWithSimpleString),
    REQUIRED(ReplyWithLongLong),
    REQUIRED(ReplyWithStringBuffer),
    REQUIRED(ReplyWithCString),
    REQUIRED(ReplyWithArray),
    REQUIRED(ReplyWithNull),
    REQUIRED(ReplyWithCallReply),
    REQUIRED(WrongArity),
    REQUIRED(AvoidReplicaTraffic),
    REQUIRED(MonotonicMicroseconds), /* 7.0 */
    REQUIRED(Milliseconds),
    OPTIONAL(GetServerVersion),      /* informational only, never a feature gate */
};

#undef REQUIRED
#undef OPTIONAL

/* Every member is one function pointer and there are as many rows as
   members; rm_api_init() also checks that the offsets strictly increase, and
   together the two make every member appear exactly once. */
_Static_assert(sizeof(rm_api_table) / sizeof(rm_api_table[0]) ==
                   sizeof(struct rm_api) / sizeof(void (*)(void)),
               "rm_api_table must have exactly one row per struct rm_api member");
/* GetApi writes a void *; we copy it into function-pointer slots. */
_Static_assert(sizeof(void *) == sizeof(void (*)(void)),
               "object and function pointers must have the same size");

/* Look up one API by its bare name, under the Redis prefix first and the
   Valkey prefix second.  Returns the raw pointer or NULL. */
static void *rm_lookup(rm_getapi_fn getapi, const char *name) {
    static const char *const prefixes[] = {RM_REDIS_PREFIX, RM_VALKEY_PREFIX};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        char full[96];
        int n = snprintf(full, sizeof full, "%s%s", prefixes[i], name);
        if (n < 0 || (size_t)n >= sizeof full)
            return NULL;
        void *fn = NULL;
        if (getapi(full, &fn) == RM_OK && fn != NULL)
            return fn;
    }
    return NULL;
}

int rm_api_init(RedisModuleCtx *ctx, const char *module_name, int module_version,
                const char **missing) {
    const char *first_missing = NULL;
    if (missing)
        *missing = NULL;

    memset(&RM, 0, sizeof RM);

    /* The first pointer-sized word of every module ctx is the address of
       the server's GetApi (an ABI promise since Redis 4.0, kept by Valkey). */
    rm_getapi_fn getapi = NULL;
    if (ctx != NULL)
        memcpy(&getapi, (const void *)ctx, sizeof getapi);
    if (getapi == NULL) {
        if (missing)
            *missing = "GetApi";
        return RM_ERR;
    }

    /* Resolve everything before judging, so Log is available for the
       caller's error message even when something else is missing. */
    for (size_t i = 0; i < sizeof(rm_api_table) / sizeof(rm_api_table[0]); i++) {
        const struct rm_api_entry *e = &rm_api_table[i];
        if (i > 0 && e->offset <= rm_api_table[i - 1].offset) {
            /* A programming error, caught by the first load in any test. */
            fprintf(stderr, "shm: internal error: rm_api_table row %s is out of order\n",
                    e->name);
            return RM_ERR;
        }
        void *fn = rm_lookup(getapi, e->name);
        memcpy((char *)&RM + e->offset, &fn, sizeof fn);
        if (fn == NULL && e->required && first_missing == NULL)
            first_missing = e->name;
    }
    if (first_missing != NULL) {
        if (missing)
            *missing = first_missing;
        return RM_ERR;
    }

#ifdef SHM_SANITIZE
    use_libc_allocator();
#endif
    if (RM.IsModuleNameBusy(module_name))
        return RM_ERR;
    RM.SetModuleAttribs(ctx, module_name, module_version, RM_APIVER_1);
    return RM_OK;
}
