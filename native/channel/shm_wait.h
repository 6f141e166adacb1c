/*
 * shm_wait.h - how either side waits for the other: adaptive spin, then a
 * bounded kernel wait, with wake-ups only when the peer said it sleeps.
 *
 * Why adaptive (reference/shm-ipc.md §2.10, §4.1): a fixed spin budget starves
 * a peer that the scheduler queued on our own CPU, doubling latency; pure
 * blocking costs a wake-up per message.  So we spin only while the peer looks
 * runnable elsewhere, and block at once when it sleeps on our CPU.
 */
#ifndef SHM_WAIT_H
#define SHM_WAIT_H

#include <stdatomic.h>
#include <stdint.h>

struct shm_spin_policy {
    uint32_t spin_ns;  /* longest spin before blocking; 0 = block at once */
    uint32_t adapt_ns; /* stop once the peer has looked asleep this long */
};

/* What the spinning side knows about its peer. */
struct shm_peer_view {
    _Atomic uint32_t *peer_waiting; /* the peer's "I sleep" flag */
    _Atomic int32_t *peer_cpu;      /* where the peer last waited */
    _Atomic int32_t *my_cpu;        /* where we publish our CPU */
};

uint64_t shm_now_ns(void);
/* One pause of a spin loop (PAUSE / YIELD). */
void shm_cpu_relax(void);

/* Spin until *word != last or the policy says stop; returns the last value
   seen (== last when the caller should block). */
uint32_t shm_spin_while_equal(_Atomic uint32_t *word, uint32_t last,
                              const struct shm_spin_policy *policy,
                              const struct shm_peer_view *peer);

/* Record the CPU we are about to block on, for the peer's adaptive rule. */
void shm_publish_cpu(_Atomic int32_t *my_cpu);

/* FUTEX_WAIT on a word in a MAP_SHARED mapping (never FUTEX_PRIVATE_FLAG),
   bounded by timeout_us; returns when woken, on timeout, or spuriously. */
void shm_futex_wait(_Atomic uint32_t *word, uint32_t expect, uint32_t timeout_us);
void shm_futex_wake(_Atomic uint32_t *word);

/* Write one token to an eventfd; a full counter (EAGAIN) already wakes. */
void shm_doorbell_ring(int efd);
/* Read and discard the eventfd's counter (non-blocking fd). */
void shm_doorbell_drain(int efd);

#endif
