/*
 * stats.h - counters reported by INFO shm.  Updated by whoever holds the GIL
 * (main thread or fast-path worker), read by INFO on the main thread.
 */
#ifndef SHM_STATS_H
#define SHM_STATS_H

#include <stdint.h>

struct shm_stats {
    uint64_t sessions_opened;
    uint64_t sessions_closed;
    uint64_t sessions_killed; /* closed for breaking the protocol or a limit */
    uint64_t handshakes_refused;
    uint64_t commands;        /* executed over shared memory */
    uint64_t refused;         /* answered with the fallback error */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t wakeups;         /* doorbell rings that woke us */
    uint64_t main_batches;    /* passes run by the main thread */
    uint64_t worker_batches;  /* passes run by the fast-path worker */
    uint64_t handoffs;        /* worker could not take the GIL: main thread ran it */
    uint64_t worker_spin_ns;  /* the worker's spin for a next request (shm.worker-spin-us);
                                 written by the worker alone, outside the GIL */
    /* shm.main-poll-us: the main thread's short poll after serving requests */
    uint64_t main_poll_ns;     /* time spent waiting in it (not serving) */
    uint64_t main_poll_hits;   /* requests it caught, each one wake-up saved */
    uint64_t main_poll_misses; /* polls that ended with nothing */
    uint64_t main_poll_loops;  /* event-loop iterations that polled (a slice each) */
    /* shm.poll-budget: hybrid polling before a regular session's next request */
    uint64_t poll_ns;          /* time spent polling in windows (what the budget caps) */
    uint64_t poll_windows;     /* windows opened */
    uint64_t poll_hits;        /* windows that caught a request */
    uint64_t poll_over_budget; /* windows not opened for want of budget */
};

extern struct shm_stats shm_stats;

#endif
