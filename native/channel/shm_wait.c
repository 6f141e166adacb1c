/*
 * shm_wait.c - adaptive spinning, futex and eventfd primitives for the
 * channel.  The spin loop checks the clock and the peer only every 16
 * PAUSEs, so a reply that is already there costs one load; the rules that end
 * the spin early are the `sfc` strategy measured in reference/shm-ipc.md.
 */
#include "shm_wait.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif

void shm_cpu_relax(void) { cpu_relax(); }

uint64_t shm_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void shm_publish_cpu(_Atomic int32_t *my_cpu) {
    int32_t me = sched_getcpu();
    if (atomic_load_explicit(my_cpu, memory_order_relaxed) != me)
        atomic_store_explicit(my_cpu, me, memory_order_relaxed);
}

uint32_t shm_spin_while_equal(_Atomic uint32_t *word, uint32_t last,
                              const struct shm_spin_policy *policy,
                              const struct shm_peer_view *peer) {
    uint32_t v = atomic_load_explicit(word, memory_order_acquire);
    if (v != last || policy->spin_ns == 0) return v;

    /* The peer sleeps on our CPU: it will most likely be woken right here,
       behind us.  Spinning would only delay it. */
    if (atomic_load_explicit(peer->peer_waiting, memory_order_relaxed) &&
        atomic_load_explicit(peer->peer_cpu, memory_order_relaxed) == sched_getcpu())
        return v;

    uint64_t start = shm_now_ns(), suspect_since = 0;
    for (unsigned i = 1;; i++) {
        cpu_relax();
        v = atomic_load_explicit(word, memory_order_acquire);
        if (v != last) return v;
        if (i & 15) continue;
        uint64_t now = shm_now_ns();
        if (now - start >= policy->spin_ns) return v;
        if (!policy->adapt_ns) continue;
        int32_t me = sched_getcpu();
        if (atomic_load_explicit(peer->my_cpu, memory_order_relaxed) != me)
            atomic_store_explicit(peer->my_cpu, me, memory_order_relaxed);
        /* A peer asleep on another CPU is not a reason to stop: we usually
           just rang it awake there, and the wake-up is what we spin through.
           A peer tied to our CPU can only run once we stop. */
        int suspect = atomic_load_explicit(peer->peer_cpu, memory_order_relaxed) == me;
        if (!suspect)
            suspect_since = 0;
        else if (!suspect_since)
            suspect_since = now;
        else if (now - suspect_since >= policy->adapt_ns)
            return v;
    }
}

void shm_futex_wait(_Atomic uint32_t *word, uint32_t expect, uint32_t timeout_us) {
    struct timespec to = {timeout_us / 1000000u, (long)(timeout_us % 1000000u) * 1000L};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expect, &to, NULL, 0);
}

void shm_futex_wake(_Atomic uint32_t *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

void shm_doorbell_ring(int efd) {
    uint64_t one = 1;
    ssize_t n;
    do n = write(efd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
}

void shm_doorbell_drain(int efd) {
    uint64_t count;
    ssize_t n;
    do n = read(efd, &count, sizeof count);
    while (n < 0 && errno == EINTR);
}
