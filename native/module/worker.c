/*
 * worker.c - the fast path: a module thread that runs sessions' requests
 * while the main thread sleeps in epoll_wait.
 *
 * The main thread releases the module GIL right before it sleeps, so a
 * TryLock from here succeeds exactly when Redis is idle, and a request is
 * picked up in well under a microsecond instead of after an event-loop
 * wake-up.  When the main thread is busy the worker does not fight it: after
 * a short try it kicks the event loop and lets the AFTER_SLEEP hook run the
 * work (the hand-off).  After a pass with writes it kicks the loop too, so
 * AOF, replicas and blocked clients see the change at once (reference
 * redis-modules-api.md §3.3).
 *
 * Spinning is bounded: the worker spins shm.worker-spin-us after the last
 * request, then marks every session "server sleeps" and blocks on the
 * sessions' doorbells with a timeout.  An idle server costs no CPU.  It
 * does not spin at all when it may run on one CPU only and every client it
 * served waits on that CPU: they could not send while it spins.
 *
 * Hybrid polling (shm.poll-budget): before it blocks, the worker plans a
 * window before the next request of a session with a steady rhythm and
 * arms a timerfd that is in the same epoll set; woken by it, it polls
 * through the window (executor.c decides the window and pays it from the
 * budget).  The timerfd's expiry is exact to the microsecond, where
 * epoll_wait's own timeout is in milliseconds.
 */
#include "worker.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../channel/shm_wait.h"
#include "config.h"
#include "executor.h"
#include "server_config.h"
#include "stats.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif

#define HANDOFF_NS 200000ull   /* try the GIL this long before handing off */
#define SLEEP_MS 100           /* bound on every wait: re-check everything */
#define TIMER_EVENT 1          /* epoll data of the polling timer; doorbells carry 0 */

static RedisModuleCtx *lock_ctx;
static int epoll_fd = -1, kick_fd = -1;
static pthread_t thread;
static int running;
static _Atomic int stopping;

static void kick_main_loop(void) { shm_doorbell_ring(kick_fd); }

/* Doorbells are watched edge-triggered: every ring is a new event, so the
   worker never reads them.  Reading one here would race with the main
   thread closing a session: the number could belong to another file by
   then (and a semaphore doorbell is refused at the hello, so nothing stays
   readable forever). */
static void sleep_on_doorbells(int timeout_ms) {
    struct epoll_event events[32];
    int n = epoll_wait(epoll_fd, events, 32, timeout_ms), doorbell = 0;
    for (int i = 0; i < n; i++) doorbell |= events[i].data.u64 != TIMER_EVENT;
    if (doorbell) shm_stats.wakeups++;
}

/* 1 when this thread may run on one CPU only (a one-CPU machine, or a
   server pinned there).  Only then does a client that waits on our CPU
   mean it cannot run while we spin: elsewhere the scheduler moves one of
   the two, and the CPU a client last waited on is a poor guess of where
   it runs next (a write's kick of the main loop shuffles the three
   threads; measured: 7 SETs in 10 missed the spin). */
static int pinned_to_one_cpu(void) {
    cpu_set_t allowed;
    return sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) == 1;
}

/* A spin that began at `since` is over: count it. */
static void spin_over(int *spinning, uint64_t since) {
    if (!*spinning) return;
    *spinning = 0;
    shm_stats.worker_spin_ns += shm_now_ns() - since;
}

static void *worker_main(void *arg) {
    (void)arg;
    uint64_t last_work = 0, busy_since = 0;
    int spin = 0, spinning = 0, pinned = 0; /* read each time it goes idle */
    while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
        if (shm_work_pending()) {
            spin_over(&spinning, last_work);
            if (RM.ThreadSafeContextTryLock(lock_ctx) == RM_OK) {
                struct shm_pass_result r = shm_execute_pass();
                RM.ThreadSafeContextUnlock(lock_ctx);
                shm_stats.worker_batches++;
                if (r.side_effects || r.failed) kick_main_loop();
                last_work = shm_now_ns();
                spin = !pinned || r.served_elsewhere;
                busy_since = 0;
                continue;
            }
            uint64_t now = shm_now_ns();
            if (!busy_since) busy_since = now;
            if (now - busy_since < HANDOFF_NS) {
                cpu_relax();
                continue;
            }
            /* The main thread is busy: its AFTER_SLEEP hook takes over. */
            shm_stats.handoffs++;
            kick_main_loop();
            busy_since = 0;
            sleep_on_doorbells(1);
            continue;
        }
        if (spin && shm_now_ns() - last_work < (uint64_t)shm_cfg.worker_spin_us * 1000ull) {
            spinning = 1;
            for (int i = 0; i < 16; i++) cpu_relax();
            continue;
        }
        spin_over(&spinning, last_work);
        if (shm_poll_window()) continue; /* a window is due: polled through it */
        /* Idle: the moment to see whether taskset moved us (a system call,
           kept off the path of a request that wakes us). */
        pinned = pinned_to_one_cpu();
        shm_poll_plan();
        if (shm_mark_sleeping(1) == 0) sleep_on_doorbells(SLEEP_MS);
        shm_mark_sleeping(0);
    }
    return NULL;
}

int shm_worker_watch(int doorbell_fd) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 0};
    return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, doorbell_fd, &ev);
}

void shm_worker_unwatch(int doorbell_fd) { epoll_ctl(epoll_fd, EPOLL_CTL_DEL, doorbell_fd, NULL); }

const char *shm_worker_unsafe(RedisModuleCtx *ctx) {
    /* Redis 8.0 asserts that client output (a MONITOR feed, a keyspace
       notification, a tracking invalidation, a published message) happens on
       its main thread; a command run here may produce any of them.  8.0 is
       the proven boundary; GetInternalSecret arrived with it, in Redis only. */
    if (RM.GetInternalSecret) return "Redis 8 writes to clients from its main thread only";
    /* With I/O threads, other threads may be writing clients' buffers while
       the main thread sleeps: the worker must not write them too. */
    char threads[16];
    shm_server_config(ctx, "io-threads", threads, sizeof threads);
    if (threads[0] && strcmp(threads, "1") != 0) return "io-threads is above 1";
    return NULL;
}

int shm_worker_running(void) { return running; }

int shm_worker_start(RedisModuleCtx *ctx, int kick) {
    kick_fd = kick;
    lock_ctx = RM.GetDetachedThreadSafeContext(ctx);
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (!lock_ctx || epoll_fd < 0) return RM_ERR;
    /* Level-triggered: shm_poll_window reads it; a stale expiry wakes us once
       more and is read then. */
    struct epoll_event timer = {.events = EPOLLIN, .data.u64 = TIMER_EVENT};
    if (shm_poll_timer_fd() < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, shm_poll_timer_fd(), &timer) < 0)
        return RM_ERR;
    running = pthread_create(&thread, NULL, worker_main, NULL) == 0;
    return running ? RM_OK : RM_ERR;
}

void shm_worker_stop(void) {
    if (!running) return;
    atomic_store(&stopping, 1);
    pthread_join(thread, NULL); /* it sleeps at most SLEEP_MS at a time */
    running = 0;
    close(epoll_fd);
}
