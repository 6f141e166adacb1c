/*
 * shm_module.c - the module's entry point: it wires the parts to the server.
 *
 * OnLoad resolves our own Modules API declarations (refusing to load, with
 * one log line, on a server that lacks one), registers the shm.* configs,
 * SHM.HANDSHAKE, INFO shm, and the server events sessions depend on:
 *   - EventLoop AFTER_SLEEP runs the main-thread pass: commands executed
 *     there get blocked-client wake-ups, AOF writes and replica feeds in the
 *     same loop iteration, on 7.0 and later alike (reference §4.1);
 *   - EventLoop BEFORE_SLEEP tells sessions "the server sleeps" so their
 *     clients ring the doorbell (main-thread mode), and arms the hybrid
 *     polling timer; AFTER_SLEEP then polls briefly after serving
 *     (shm.main-poll-us) or through a due window (shm.poll-budget).  The
 *     timer is a timerfd in the event loop, not a module timer: module
 *     timers have millisecond periods, a window is tens of microseconds;
 *   - ClientChange DISCONNECTED ends the sessions of a closed connection,
 *     which also covers CLIENT KILL and ACL DELUSER, and forgets its
 *     CLIENT CAPA (client_capabilities.c, which also registers a command
 *     filter);
 *   - ModuleChange forgets the commands learned from the server's table;
 *     the next BEFORE_SLEEP learns them again (command_lookup.c).
 * MODULE UNLOAD is refused (sessions hold descriptors in the event loop and,
 * on the fast path, a thread); an unload during shutdown (Valkey 9.1) is a
 * clean stop.
 */
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../channel/shm_wait.h"
#include "client_capabilities.h"
#include "command_lookup.h"
#include "config.h"
#include "executor.h"
#include "reply_output.h"
#include "rm_api.h"
#include "session.h"
#include "stats.h"
#include "worker.h"

#define MODULE_NAME "shm"
#define MODULE_VERSION 1

static int kick_fd = -1; /* written to wake the event loop at once */
static int shutting_down;
static const char *fast_path_refused; /* why shm.exec-mode fast-path is not in force */

static void on_kick(int fd, void *ud, int mask) {
    (void)ud;
    (void)mask;
    shm_doorbell_drain(fd);
}

static void on_poll_timer(int fd, void *ud, int mask) {
    (void)fd;
    (void)ud;
    (void)mask;
    shm_poll_timer_drain(); /* a window was due; AFTER_SLEEP polled it, or it was dropped */
}

static void on_event_loop(RedisModuleCtx *ctx, RedisModuleEvent eid, uint64_t sub, void *data) {
    (void)eid;
    (void)data;
    int main_thread_mode = !shm_worker_running();
    if (sub == RM_SUBEVENT_EVENTLOOP_AFTER_SLEEP) {
        if (!shm_sessions_ever()) return;
        shm_publish_held(); /* the AOF was written in the last beforeSleep */
        if (main_thread_mode) shm_mark_sleeping(0);
        struct shm_pass_result r = shm_execute_pass();
        /* Woken for a window: poll through it.  Whatever was served, wait
           briefly for the next request of a back-to-back client. */
        if (main_thread_mode && !r.executed && shm_poll_window()) r = shm_execute_pass();
        if (r.executed) shm_stats.main_batches++;
        if (main_thread_mode) shm_main_poll(r);
        shm_reap_failed();
    } else {
        shm_command_learn(ctx); /* after startup or MODULE LOAD: once, before serving */
        shm_sessions_expire();
        if (!shm_sessions_ever()) return;
        /* Held replies and work that arrived after the pass must not wait
           for the next event. */
        int held = shm_note_before_sleep();
        /* main-poll goes on in the next iteration: no sleep, and no doorbell
           for the clients to ring. */
        int resume = main_thread_mode && shm_main_poll_resumes();
        if (held || resume || (main_thread_mode && shm_mark_sleeping(1)))
            shm_doorbell_ring(kick_fd);
        if (main_thread_mode) shm_poll_plan();
    }
}

static void on_client_change(RedisModuleCtx *ctx, RedisModuleEvent eid, uint64_t sub,
                             void *data) {
    (void)ctx;
    (void)eid;
    if (sub != RM_SUBEVENT_CLIENT_CHANGE_DISCONNECTED) return;
    uint64_t id = ((RedisModuleClientInfoV1 *)data)->id;
    shm_sessions_client_gone(id);
    shm_capa_client_gone(id);
}

static void on_module_change(RedisModuleCtx *ctx, RedisModuleEvent eid, uint64_t sub,
                             void *data) {
    (void)ctx;
    (void)eid;
    (void)sub;
    (void)data;
    shm_command_forget(); /* its commands come or go */
}

static void on_shutdown(RedisModuleCtx *ctx, RedisModuleEvent eid, uint64_t sub, void *data) {
    (void)ctx;
    (void)eid;
    (void)sub;
    (void)data;
    shutting_down = 1;
    shm_sessions_shutdown();
}

static void on_info(RedisModuleInfoCtx *ictx, int for_crash_report) {
    (void)for_crash_report;
    RM.InfoAddSection(ictx, "");
    RM.InfoAddFieldCString(ictx, "exec_mode", shm_worker_running() ? "fast-path" : "main-thread");
    if (fast_path_refused)
        RM.InfoAddFieldCString(ictx, "fast_path_unavailable", (char *)fast_path_refused);
    RM.InfoAddFieldCString(ictx, "socket", (char *)shm_socket_path());
    /* INFO may come from a session itself, inside a pass that holds the lock. */
    int locked = !shm_pass_running;
    if (locked) shm_table_lock();
    long long open_sessions = shm_session_count();
    struct shm_buffered buffered = shm_sessions_buffered();
    if (locked) shm_table_unlock();
    struct {
        const char *name;
        unsigned long long value;
    } fields[] = {
        {"sessions", (unsigned long long)open_sessions},
        {"sessions_opened", shm_stats.sessions_opened},
        {"sessions_closed", shm_stats.sessions_closed},
        {"sessions_killed", shm_stats.sessions_killed},
        {"handshakes_refused", shm_stats.handshakes_refused},
        {"commands", shm_stats.commands},
        {"refused", shm_stats.refused},
        {"bytes_in", shm_stats.bytes_in},
        {"bytes_out", shm_stats.bytes_out},
        {"input_buffer_bytes", buffered.input},
        {"output_buffer_bytes", buffered.output},
        {"capa_redirect_clients", shm_capa_marked()},
        {"wakeups", shm_stats.wakeups},
        {"main_batches", shm_stats.main_batches},
        {"worker_batches", shm_stats.worker_batches},
        {"handoffs", shm_stats.handoffs},
        {"worker_spin_ns", shm_stats.worker_spin_ns},
        {"main_poll_ns", shm_stats.main_poll_ns},
        {"main_poll_hits", shm_stats.main_poll_hits},
        {"main_poll_misses", shm_stats.main_poll_misses},
        {"main_poll_loops", shm_stats.main_poll_loops},
        {"poll_ns", shm_stats.poll_ns},
        {"poll_windows", shm_stats.poll_windows},
        {"poll_hits", shm_stats.poll_hits},
        {"poll_over_budget", shm_stats.poll_over_budget},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        RM.InfoAddFieldULongLong(ictx, (char *)fields[i].name, fields[i].value);
}

static int subscribe(RedisModuleCtx *ctx, uint64_t id, void (*cb)(RedisModuleCtx *, RedisModuleEvent, uint64_t, void *)) {
    RedisModuleEvent ev = {id, 1};
    return RM.SubscribeToServerEvent(ctx, ev, cb);
}

__attribute__((visibility("default"))) int RedisModule_OnLoad(RedisModuleCtx *ctx,
                                                              RedisModuleString **argv, int argc) {
    (void)argv;
    const char *missing = NULL;
    if (rm_api_init(ctx, MODULE_NAME, MODULE_VERSION, &missing) != RM_OK) {
        if (!missing) return RM_ERR; /* the name is taken: the server says so */
        char line[256];
        snprintf(line, sizeof line,
                 "shm: this server lacks RedisModule_%s (the module needs Redis >= 7.0.6 or "
                 "Valkey >= 7.2.6); not loading",
                 missing);
        if (RM.Log)
            RM.Log(ctx, "warning", "%s", line);
        else
            fprintf(stderr, "%s\n", line);
        return RM_ERR;
    }
    /* Settings are config lines (shm.exec-mode fast-path), never loadmodule
       arguments: arguments ignored would leave the user believing them. */
    if (argc > 0) {
        RM.Log(ctx, "warning",
               "shm: the module takes no loadmodule arguments; set shm.* configs instead "
               "(e.g. a line 'shm.exec-mode fast-path' or --shm.exec-mode fast-path); "
               "not loading");
        return RM_ERR;
    }
    /* Nothing of ours is in the keyspace: a replica may keep serving its old
       data set while it loads a new one (repl-diskless-load swapdb); the
       executor refuses commands meanwhile, so the socket decides.  Likewise
       Valkey 9's atomic slot migration (CLUSTER MIGRATESLOTS), which every
       loaded module must declare it handles: the keys a node imports are
       not its own until the migration completes, and RedisModule_Call's
       slot check (command_call.c) refuses them as the socket would; the
       last step pauses writes as CLIENT PAUSE WRITE does, which the
       executor honours.  The option's bit means that only on a server
       with CLUSTER MIGRATESLOTS, so only there is it set. */
    int options = RM_OPTIONS_HANDLE_REPL_ASYNC_LOAD;
    if (shm_server_has_subcommand(ctx, "cluster", "migrateslots") == 1)
        options |= RM_OPTIONS_HANDLE_ATOMIC_SLOT_MIGRATION;
    RM.SetModuleOptions(ctx, options);
    if (shm_config_register(ctx) != RM_OK) {
        RM.Log(ctx, "warning", "shm: invalid shm.* configuration; not loading");
        return RM_ERR;
    }
    kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (kick_fd < 0 || RM.EventLoopAdd(kick_fd, RM_EVENTLOOP_READABLE, on_kick, NULL) != RM_OK ||
        shm_executor_init(ctx) != RM_OK ||
        RM.CreateCommand(ctx, "shm.handshake", shm_handshake_command, "fast deny-script", 0, 0,
                         0) != RM_OK ||
        RM.RegisterInfoFunc(ctx, on_info) != RM_OK ||
        subscribe(ctx, RM_EVENTID_EVENTLOOP, on_event_loop) != RM_OK ||
        subscribe(ctx, RM_EVENTID_CLIENT_CHANGE, on_client_change) != RM_OK ||
        subscribe(ctx, RM_EVENTID_MODULE_CHANGE, on_module_change) != RM_OK ||
        subscribe(ctx, RM_EVENTID_SHUTDOWN, on_shutdown) != RM_OK ||
        shm_capa_init(ctx) != RM_OK) {
        RM.Log(ctx, "warning", "shm: setting up the module failed; not loading");
        return RM_ERR;
    }
    if (shm_sessions_init(ctx) != RM_OK) return RM_ERR;
    if (shm_cfg.exec_mode == SHM_EXEC_FAST_PATH && (fast_path_refused = shm_worker_unsafe(ctx)))
        RM.Log(ctx, "warning", "shm: exec-mode fast-path is not safe here (%s): using main-thread",
               fast_path_refused);
    else if (shm_cfg.exec_mode == SHM_EXEC_FAST_PATH && shm_worker_start(ctx, kick_fd) != RM_OK) {
        RM.Log(ctx, "warning", "shm: cannot start the fast-path worker; not loading");
        return RM_ERR;
    }
    /* The hybrid polling timer wakes whoever waits: the worker watches it
       itself, the event loop here. */
    if (!shm_worker_running() &&
        (shm_poll_timer_fd() < 0 ||
         RM.EventLoopAdd(shm_poll_timer_fd(), RM_EVENTLOOP_READABLE, on_poll_timer, NULL) != RM_OK)) {
        RM.Log(ctx, "warning", "shm: cannot set up the polling timer; not loading");
        return RM_ERR;
    }
    return RM_OK;
}

/* MODULE UNLOAD is refused: clients hold sessions, and a fork child would
   call our atfork handler after the code is gone.  A server that unloads its
   modules as it shuts down (Valkey 9.1) gets a clean stop instead: the
   worker joined, every session and descriptor closed. */
__attribute__((visibility("default"))) int RedisModule_OnUnload(RedisModuleCtx *ctx) {
    if (!shutting_down) {
        RM.Log(ctx, "warning",
               "shm: the module cannot be unloaded (sessions and threads depend on it)");
        return RM_ERR;
    }
    int loop_timer = !shm_worker_running();
    shm_worker_stop();
    if (loop_timer) RM.EventLoopDel(shm_poll_timer_fd(), RM_EVENTLOOP_READABLE);
    shm_sessions_close_all();
    RM.EventLoopDel(kick_fd, RM_EVENTLOOP_READABLE);
    close(kick_fd);
    kick_fd = -1;
    return RM_OK;
}
