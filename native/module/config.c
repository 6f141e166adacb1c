/*
 * config.c - registration of the shm.* module configs.
 *
 * Numeric configs share one getter and setter that read and write the
 * `long long` their private pointer names; only the ring size needs a check
 * of its own (a power of two).  Settings that only make sense before any
 * session exists (the socket, the execution mode) are IMMUTABLE; the rest
 * apply to new sessions or to the next batch.  The polling knobs are bounded
 * here so that no setting can make the server poll without limit:
 * main-poll-us at most 1 ms per event-loop pass, poll-budget at most one
 * whole core (docs/latency.md, "Polling").
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "../channel/shm_layout.h"

struct shm_config shm_cfg;

static const char *exec_mode_names[] = {"main-thread", "fast-path"};
static const int exec_mode_values[] = {SHM_EXEC_MAIN_THREAD, SHM_EXEC_FAST_PATH};

static RedisModuleString *socket_path_str, *socket_perm_str;

static long long get_number(const char *name, void *priv) {
    (void)name;
    return *(long long *)priv;
}

static int set_number(const char *name, long long val, void *priv, RedisModuleString **err) {
    if (!strcmp(name, "ring-size") && !shm_ring_size_valid((uint64_t)val)) {
        *err = RM.CreateString(NULL, "ring-size must be a power of two between 64kb and 1gb",
                               52);
        return RM_ERR;
    }
    *(long long *)priv = val;
    return RM_OK;
}

static int get_exec_mode(const char *name, void *priv) {
    (void)name;
    (void)priv;
    return (int)shm_cfg.exec_mode;
}

static int set_exec_mode(const char *name, int val, void *priv, RedisModuleString **err) {
    (void)name;
    (void)priv;
    (void)err;
    shm_cfg.exec_mode = val;
    return RM_OK;
}

static RedisModuleString *get_string(const char *name, void *priv) {
    (void)name;
    return *(RedisModuleString **)priv;
}

static int reject(RedisModuleString **err, const char *msg) {
    *err = RM.CreateString(NULL, msg, strlen(msg));
    return RM_ERR;
}

static int set_string(const char *name, RedisModuleString *val, void *priv,
                      RedisModuleString **err) {
    size_t len;
    const char *s = RM.StringPtrLen(val, &len);
    if (!strcmp(name, "socket-path")) {
        if (len >= sizeof shm_cfg.socket_path) return reject(err, "socket-path is too long");
        memcpy(shm_cfg.socket_path, s, len);
        shm_cfg.socket_path[len] = '\0';
    } else if (len == 0) { /* socket-perm "": as the server's own unix socket */
        shm_cfg.socket_perm = -1;
    } else {
        char buf[8], *end;
        if (len >= sizeof buf) return reject(err, "socket-perm must be octal, e.g. 770");
        memcpy(buf, s, len);
        buf[len] = '\0';
        long perm = strtol(buf, &end, 8);
        if (*end || perm < 0 || perm > 0777) return reject(err, "socket-perm must be octal, e.g. 770");
        shm_cfg.socket_perm = perm;
    }
    RedisModuleString **slot = priv;
    if (*slot) RM.FreeString(NULL, *slot);
    *slot = RM.CreateString(NULL, s, len);
    return RM_OK;
}

#define MB (1024LL * 1024LL)
#define GB (1024LL * MB)

int shm_config_register(RedisModuleCtx *ctx) {
    struct {
        const char *name;
        long long *slot, def, min, max;
        unsigned flags;
    } numbers[] = {
        {"max-sessions", &shm_cfg.max_sessions, 64, 0, 100000, RM_CONFIG_DEFAULT},
        {"ring-size", &shm_cfg.ring_size, 1 * MB, SHM_RING_MIN, SHM_RING_MAX, RM_CONFIG_MEMORY},
        {"input-limit", &shm_cfg.input_limit, 64 * MB, 1024, 4 * GB, RM_CONFIG_MEMORY},
        {"output-limit", &shm_cfg.output_limit, 1 * GB, 1024, 64 * GB, RM_CONFIG_MEMORY},
        {"batch-max", &shm_cfg.batch_max, 256, 1, 1000000, RM_CONFIG_DEFAULT},
        {"worker-spin-us", &shm_cfg.worker_spin_us, 50, 0, 1000000, RM_CONFIG_DEFAULT},
        {"main-poll-us", &shm_cfg.main_poll_us, 20, 0, 1000, RM_CONFIG_DEFAULT},
        {"poll-budget", &shm_cfg.poll_budget, 0, 0, 100, RM_CONFIG_DEFAULT},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        if (RM.RegisterNumericConfig(ctx, numbers[i].name, numbers[i].def, numbers[i].flags,
                                     numbers[i].min, numbers[i].max, get_number, set_number,
                                     NULL, numbers[i].slot) != RM_OK)
            return RM_ERR;
    }
    /* The immutable ones are hidden from CONFIG GET <pattern> (CONFIG GET
       shm.exec-mode still answers): a tool that sets back everything CONFIG
       GET * listed, as Redis's own "CONFIG sanity" test does, must not meet
       settings no server of its knows cannot be set (docs/server-suite.md). */
    const unsigned fixed = RM_CONFIG_IMMUTABLE | RM_CONFIG_HIDDEN;
    if (RM.RegisterStringConfig(ctx, "socket-path", "", fixed, get_string,
                                set_string, NULL, &socket_path_str) != RM_OK ||
        RM.RegisterStringConfig(ctx, "socket-perm", "", fixed, get_string,
                                set_string, NULL, &socket_perm_str) != RM_OK ||
        RM.RegisterEnumConfig(ctx, "exec-mode", SHM_EXEC_MAIN_THREAD, fixed,
                              exec_mode_names, exec_mode_values, 2, get_exec_mode,
                              set_exec_mode, NULL, NULL) != RM_OK)
        return RM_ERR;
    return RM.LoadConfigs(ctx);
}
