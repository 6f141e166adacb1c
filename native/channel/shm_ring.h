/*
 * shm_ring.h - record framing on one SPSC byte ring, for either side.
 *
 * Each side keeps its own position privately and only publishes it; the
 * peer's position is read from shared memory and validated before use, so a
 * corrupt or hostile peer turns into SHM_RING_CORRUPT, never into an
 * out-of-bounds access.  Every field read from the shared region is read
 * exactly once into a local (no double fetch).
 */
#ifndef SHM_RING_H
#define SHM_RING_H

#include "shm_layout.h"

#define SHM_RING_CORRUPT (-1)

struct shm_ring_writer {
    struct shm_ring_ctrl *ctrl;
    char *data;
    uint32_t cap;        /* power of two, agreed at setup, never re-read */
    uint32_t tail;       /* our position (authoritative) */
    uint32_t head_cache; /* last validated consumer position */
    int hold;            /* write without publishing, until shm_ring_publish */
};

struct shm_ring_reader {
    struct shm_ring_ctrl *ctrl;
    const char *data;
    uint32_t cap;
    uint32_t head;       /* our position (authoritative) */
    uint32_t tail_cache; /* last validated producer position */
};

void shm_ring_writer_init(struct shm_ring_writer *w, struct shm_ring_ctrl *ctrl, char *data,
                          uint32_t cap);
void shm_ring_reader_init(struct shm_ring_reader *r, struct shm_ring_ctrl *ctrl,
                          const char *data, uint32_t cap);

/* Append one record (len <= shm_max_fragment(cap)).  Returns 1 when
   written, 0 when there is no room yet, SHM_RING_CORRUPT when the consumer's
   published head is impossible.  Publishes with a seq_cst store, so a caller
   may check the consumer's waiting flag right after (docs/protocol.md). */
int shm_ring_write(struct shm_ring_writer *w, uint32_t type, const void *payload, uint32_t len);

/* Re-read and validate the consumer's head now (the writer otherwise reads
   it only when the ring looks full).  Returns 0 or SHM_RING_CORRUPT. */
int shm_ring_check_head(struct shm_ring_writer *w);

/* Publish what was written while `hold` was set (seq_cst store). */
void shm_ring_publish(struct shm_ring_writer *w);

/* Look at the next record without consuming it; padding is skipped.  Returns
   1 with *type, *payload, *len set, 0 when empty, SHM_RING_CORRUPT on any
   impossible position, length, or type. */
int shm_ring_peek(struct shm_ring_reader *r, uint32_t *type, const char **payload, uint32_t *len);

/* Consume the record returned by the last successful peek (len as
   returned), publishing the new head with a seq_cst store. */
void shm_ring_consume(struct shm_ring_reader *r, uint32_t len);

/* 1 when the producer has published data we have not consumed. */
static inline int shm_ring_has_data(const struct shm_ring_reader *r) {
    return atomic_load_explicit(&r->ctrl->tail, memory_order_acquire) != r->head;
}

#endif
