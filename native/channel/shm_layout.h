/*
 * shm_layout.h - the shared region's layout: the one definition both sides use.
 *
 * A session is one memfd created by the client, sealed against resizing, and
 * mapped by both the client and the Redis module.  It holds a header page and
 * two single-producer/single-consumer byte rings: requests (client -> server)
 * and replies (server -> client).  Everything the other side can write is
 * untrusted: the server re-validates every position and length it reads here
 * (shm_ring.c), and keeps its own copy of the sizes it agreed to.
 *
 * Each ring's producer-owned and consumer-owned words live on separate
 * 128-byte blocks so the two processes never write the same cache line (128,
 * not 64: the adjacent-line prefetcher pairs lines).  Positions are
 * free-running 32-bit byte counters masked by capacity-1 (a power of two), so
 * full and empty need no spare slot and unsigned subtraction gives the fill.
 *
 * The 32-bit positions double as futex words: a consumer sleeping for data
 * waits on the producer's `tail`, a producer sleeping for space waits on the
 * consumer's `head`.  The `*_waiting` flags implement the lost-wake-up-free
 * protocol of docs/protocol.md ("wake only if the peer said it sleeps").
 */
#ifndef SHM_LAYOUT_H
#define SHM_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC 0x314d4853u /* "SHM1" little-endian */
#define SHM_LAYOUT_VERSION 1u
#define SHM_HEADER_SIZE 4096u /* the rings start on their own page */
#define SHM_LINE 128

#define SHM_RING_MIN (64u * 1024u)
#define SHM_RING_MAX (1u << 30)

/* Record header: [u32 payload length | u32 type], payload, padded to 8. */
#define SHM_RECORD_HEADER 8u
#define SHM_RECORD_ALIGN 8u

enum shm_record_type {
    SHM_REC_PADDING = 1, /* filler up to the end of the ring before a wrap */
    SHM_REC_REQUEST = 2, /* client -> server: one RESP command */
    SHM_REC_REPLY = 3,   /* server -> client: one RESP reply */
    SHM_REC_RESUME = 4,  /* client -> server: leave the refusal state */
};
/* Set on every fragment of a message except its last. */
#define SHM_REC_MORE 0x80000000u

/* A reply ring's consumer_waiting when the client waits in an event loop:
   the server wakes it with a one-byte message on the session's socket, sent
   without blocking, as well as the futex (rep.tail). */
#define SHM_WAITING_SOCKET 2u
#define SHM_REC_KIND(t) ((t) & ~SHM_REC_MORE)

struct shm_ring_ctrl {
    /* written by the producer */
    _Alignas(SHM_LINE) _Atomic uint32_t tail;  /* bytes published */
    _Atomic uint32_t producer_waiting;          /* producer sleeps for space */
    _Atomic int32_t producer_cpu;               /* CPU the producer last waited on */
    /* written by the consumer */
    _Alignas(SHM_LINE) _Atomic uint32_t head;  /* bytes consumed */
    _Atomic uint32_t consumer_waiting;          /* consumer sleeps for data: 1, or
                                                   SHM_WAITING_SOCKET */
    _Atomic int32_t consumer_cpu;               /* CPU the consumer last waited on */
};

struct shm_region_header {
    _Alignas(SHM_LINE) uint32_t magic;
    uint32_t version;
    uint32_t ring_size;   /* capacity of each ring in bytes */
    uint32_t header_size; /* offset of the request ring's data */
    /* set by the server when it ends the session (the client's fast hint;
       the session socket's hang-up is the authoritative signal) */
    _Alignas(SHM_LINE) _Atomic uint32_t server_closed;
    struct shm_ring_ctrl req; /* client produces, server consumes */
    struct shm_ring_ctrl rep; /* server produces, client consumes */
};

_Static_assert(sizeof(struct shm_region_header) <= SHM_HEADER_SIZE, "header fits its page");

static inline size_t shm_region_size(uint32_t ring_size) {
    return (size_t)SHM_HEADER_SIZE + 2u * (size_t)ring_size;
}

static inline int shm_ring_size_valid(uint64_t ring_size) {
    return ring_size >= SHM_RING_MIN && ring_size <= SHM_RING_MAX &&
           (ring_size & (ring_size - 1)) == 0;
}

/* The largest record payload: a quarter of the ring, so an empty ring always
   has room for a whole record plus a padding record before it. */
static inline uint32_t shm_max_fragment(uint32_t ring_size) {
    return ring_size / 4u - SHM_RECORD_HEADER;
}

#endif
