/*
 * shm_ring.c - writing and reading framed records on one shared SPSC ring.
 *
 * Records never wrap: when one does not fit before the end of the ring, the
 * writer fills the rest with a padding record and starts again at offset 0,
 * so a reader always sees a contiguous payload it can hand out by pointer.
 * The reader checks everything that comes from the other process: the
 * published position against its own, each header against what was
 * published, padding against the end of the ring.
 */
#include "shm_ring.h"

#include <string.h>

static inline uint32_t align_up(uint32_t n) {
    return (n + (SHM_RECORD_ALIGN - 1)) & ~(SHM_RECORD_ALIGN - 1);
}

void shm_ring_writer_init(struct shm_ring_writer *w, struct shm_ring_ctrl *ctrl, char *data,
                          uint32_t cap) {
    w->ctrl = ctrl;
    w->data = data;
    w->cap = cap;
    /* Both sides start at 0 by protocol: a position is never taken from
       the region, where the peer could have put an unaligned one. */
    w->tail = w->head_cache = 0;
    w->hold = 0;
    atomic_store_explicit(&ctrl->tail, 0, memory_order_relaxed);
}

void shm_ring_reader_init(struct shm_ring_reader *r, struct shm_ring_ctrl *ctrl,
                          const char *data, uint32_t cap) {
    r->ctrl = ctrl;
    r->data = data;
    r->cap = cap;
    r->head = r->tail_cache = 0;
    atomic_store_explicit(&ctrl->head, 0, memory_order_relaxed);
}

static inline void put_header(char *at, uint32_t len, uint32_t type) {
    memcpy(at, &len, 4);
    memcpy(at + 4, &type, 4);
}

int shm_ring_write(struct shm_ring_writer *w, uint32_t type, const void *payload, uint32_t len) {
    uint32_t mask = w->cap - 1;
    uint32_t off = w->tail & mask;
    uint32_t need = SHM_RECORD_HEADER + align_up(len);
    uint32_t pad = (off + need > w->cap) ? w->cap - off : 0;
    uint32_t total = pad + need;

    if (w->cap - (w->tail - w->head_cache) < total) {
        uint32_t head = atomic_load_explicit(&w->ctrl->head, memory_order_acquire);
        if (w->tail - head > w->cap) return SHM_RING_CORRUPT; /* consumer ahead of us */
        w->head_cache = head;
        if (w->cap - (w->tail - head) < total) return 0;
    }
    if (pad) {
        put_header(w->data + off, pad - SHM_RECORD_HEADER, SHM_REC_PADDING);
        off = 0;
    }
    put_header(w->data + off, len, type);
    if (len) memcpy(w->data + off + SHM_RECORD_HEADER, payload, len);
    w->tail += total;
    if (!w->hold) atomic_store_explicit(&w->ctrl->tail, w->tail, memory_order_seq_cst);
    return 1;
}

int shm_ring_check_head(struct shm_ring_writer *w) {
    uint32_t head = atomic_load_explicit(&w->ctrl->head, memory_order_acquire);
    if (w->tail - head > w->cap || head - w->head_cache > w->cap) return SHM_RING_CORRUPT;
    w->head_cache = head;
    return 0;
}

void shm_ring_publish(struct shm_ring_writer *w) {
    atomic_store_explicit(&w->ctrl->tail, w->tail, memory_order_seq_cst);
}

static inline int type_valid(uint32_t type) {
    uint32_t kind = SHM_REC_KIND(type);
    return kind >= SHM_REC_REQUEST && kind <= SHM_REC_RESUME;
}

int shm_ring_peek(struct shm_ring_reader *r, uint32_t *type, const char **payload, uint32_t *len) {
    uint32_t mask = r->cap - 1;
    for (int pass = 0; pass < 2; pass++) {
        uint32_t avail = r->tail_cache - r->head;
        if (avail == 0) {
            uint32_t tail = atomic_load_explicit(&r->ctrl->tail, memory_order_acquire);
            avail = tail - r->head;
            if (avail > r->cap) return SHM_RING_CORRUPT;
            r->tail_cache = tail;
            if (avail == 0) return 0;
        }
        uint32_t off = r->head & mask;
        if (avail < SHM_RECORD_HEADER || (avail & (SHM_RECORD_ALIGN - 1))) return SHM_RING_CORRUPT;
        uint32_t rec_len, rec_type;
        memcpy(&rec_len, r->data + off, 4);
        memcpy(&rec_type, r->data + off + 4, 4);
        if (rec_type == SHM_REC_PADDING) {
            uint32_t to_end = r->cap - off;
            if (pass || avail < to_end || rec_len != to_end - SHM_RECORD_HEADER) return SHM_RING_CORRUPT;
            r->head += to_end;
            continue;
        }
        if (rec_len > r->cap / 4 || !type_valid(rec_type)) return SHM_RING_CORRUPT;
        uint32_t need = SHM_RECORD_HEADER + align_up(rec_len);
        if (need > avail || off + need > r->cap) return SHM_RING_CORRUPT;
        *type = rec_type;
        *len = rec_len;
        *payload = r->data + off + SHM_RECORD_HEADER;
        return 1;
    }
    return SHM_RING_CORRUPT; /* two padding records in a row */
}

void shm_ring_consume(struct shm_ring_reader *r, uint32_t len) {
    r->head += SHM_RECORD_HEADER + align_up(len);
    atomic_store_explicit(&r->ctrl->head, r->head, memory_order_seq_cst);
}
