/*
 * test_ring.c - unit tests of the shared ring (native/channel/shm_ring.c).
 *
 * 1. Round trips: records of every size up to the maximum, through many
 *    wrap-arounds, come out whole and in order.
 * 2. A hostile peer: the reader is fed random positions and random record
 *    headers; it must either return a record that lies entirely inside the
 *    ring and inside what was published, or report corruption.  Built with
 *    ASan the ring data is an exact-size heap block, so any read past it
 *    fails the run.
 *   gcc -std=c11 -O1 -g -fsanitize=address,undefined -D_GNU_SOURCE \
 *       native/tests/test_ring.c native/channel/shm_ring.c -o /tmp/t && /tmp/t
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../channel/shm_ring.h"

#define CAP 65536u

static int passed, failed;

#define CHECK(cond, ...)                   \
    do {                                   \
        if (cond) {                        \
            passed++;                      \
        } else {                           \
            failed++;                      \
            printf("FAIL line %d: ", __LINE__); \
            printf(__VA_ARGS__);           \
            printf("\n");                  \
        }                                  \
    } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_random(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static struct shm_ring_ctrl *new_ctrl(void) {
    struct shm_ring_ctrl *ctrl = aligned_alloc(SHM_LINE, sizeof *ctrl);
    memset(ctrl, 0, sizeof *ctrl);
    return ctrl;
}

/* Every size up to the maximum, through many wrap-arounds and full rings:
   the reader gets the lengths in the order they were written. */
static void round_trips(void) {
    struct shm_ring_ctrl *ctrl = new_ctrl();
    char *data = malloc(CAP);
    struct shm_ring_writer w;
    struct shm_ring_reader r;
    shm_ring_writer_init(&w, ctrl, data, CAP);
    shm_ring_reader_init(&r, ctrl, data, CAP);
    uint32_t max = shm_max_fragment(CAP);
    char *msg = calloc(1, max);
    uint32_t lengths[64];
    unsigned queued = 0, first = 0;
    int ok = 1, full = 0;
    for (int i = 0; i < 20000 && ok; i++) {
        uint32_t len = (i % 7 == 0) ? max : next_random() % (max + 1);
        int wr = shm_ring_write(&w, SHM_REC_REPLY, msg, len);
        if (wr == 1) lengths[(first + queued++) % 64] = len;
        full += wr == 0;
        if (wr == 0 || next_random() % 2) { /* drain what is there */
            uint32_t type, got;
            const char *p;
            while (shm_ring_peek(&r, &type, &p, &got) == 1) {
                ok &= queued > 0 && got == lengths[first % 64] && type == SHM_REC_REPLY;
                first++;
                queued--;
                shm_ring_consume(&r, got);
            }
        }
        ok &= queued < 64;
    }
    CHECK(ok, "records come out whole and in order through wrap-arounds");
    CHECK(full > 0, "the ring filled up and recovered (%d times)", full);
    free(msg);
    free(data);
    free(ctrl);
}

static void ordered_contents(void) {
    struct shm_ring_ctrl *ctrl = new_ctrl();
    char *data = malloc(CAP);
    struct shm_ring_writer w;
    struct shm_ring_reader r;
    shm_ring_writer_init(&w, ctrl, data, CAP);
    shm_ring_reader_init(&r, ctrl, data, CAP);
    int ok = 1;
    uint32_t sent = 0, received = 0;
    char buf[4000];
    while (received < 50000 && ok) {
        uint32_t len = 8 + next_random() % (sizeof buf - 8);
        memset(buf, (char)sent, len);
        memcpy(buf, &sent, 4);
        if (shm_ring_write(&w, SHM_REC_REQUEST, buf, len) == 1) sent++;
        uint32_t type, got;
        const char *p;
        if (next_random() % 3 == 0) {
            while (shm_ring_peek(&r, &type, &p, &got) == 1) {
                uint32_t seq;
                memcpy(&seq, p, 4);
                ok &= seq == received && type == SHM_REC_REQUEST && (unsigned char)p[got - 1] == (unsigned char)(char)seq;
                shm_ring_consume(&r, got);
                received++;
            }
        }
    }
    CHECK(ok, "records arrive whole and in order (%u received)", received);
    free(data);
    free(ctrl);
}

static void hostile_writer(void) {
    struct shm_ring_ctrl *ctrl = new_ctrl();
    char *data = malloc(CAP);
    int bad = 0, records = 0, corrupt = 0;
    for (int i = 0; i < 1000000; i++) {
        struct shm_ring_reader r;
        shm_ring_reader_init(&r, ctrl, data, CAP);
        uint32_t head = next_random() & ~7u; /* ours: always aligned */
        r.head = r.tail_cache = head;
        uint32_t tail = head + (i % 3 == 0 ? next_random() : next_random() % (CAP + 64));
        if (i & 2) tail &= ~7u;
        atomic_store(&ctrl->tail, tail);
        /* a random header where the reader will look, sometimes plausible */
        uint32_t off = head & (CAP - 1);
        if (off + 8 <= CAP) {
            uint32_t len = (i % 5 == 0) ? next_random() : next_random() % (CAP / 2);
            uint32_t type = (i % 4 == 0) ? SHM_REC_PADDING : next_random() % 6;
            memcpy(data + off, &len, 4);
            memcpy(data + off + 4, &type, 4);
        }
        uint32_t type, len;
        const char *p;
        int rc = shm_ring_peek(&r, &type, &p, &len);
        if (rc == 1) {
            records++;
            uint32_t published = tail - head;
            int inside = p >= data + 8 && p + len <= data + CAP && published <= CAP;
            if (!inside) bad++;
            else (void)*(volatile const char *)(p + (len ? len - 1 : 0));
        } else if (rc == SHM_RING_CORRUPT) {
            corrupt++;
        }
    }
    CHECK(bad == 0, "hostile positions never yield a record outside the ring (%d bad)", bad);
    CHECK(corrupt > 0 && records > 0, "both outcomes exercised (%d records, %d corrupt)",
          records, corrupt);
    /* a consumer that claims to be ahead of the producer */
    struct shm_ring_writer w;
    atomic_store(&ctrl->tail, 0);
    atomic_store(&ctrl->head, 0);
    shm_ring_writer_init(&w, ctrl, data, CAP);
    char msg[16] = {0};
    for (int i = 0; i < 10; i++) shm_ring_write(&w, SHM_REC_REPLY, msg, sizeof msg);
    atomic_store(&ctrl->head, 100000);
    int rc = 1;
    for (int i = 0; i < 10000 && rc == 1; i++) rc = shm_ring_write(&w, SHM_REC_REPLY, msg, sizeof msg);
    CHECK(rc == SHM_RING_CORRUPT, "a head beyond the tail is detected by the writer");
    shm_ring_writer_init(&w, ctrl, data, CAP);
    atomic_store(&ctrl->head, 0);
    for (int i = 0; i < 4; i++) shm_ring_write(&w, SHM_REC_REPLY, msg, sizeof msg);
    CHECK(shm_ring_check_head(&w) == 0, "a head at 0 is plausible");
    atomic_store(&ctrl->head, w.tail + 64);
    CHECK(shm_ring_check_head(&w) == SHM_RING_CORRUPT, "a head ahead of the tail is caught at once");
    atomic_store(&ctrl->head, 24);
    CHECK(shm_ring_check_head(&w) == 0, "a head that moved forward is fine");
    atomic_store(&ctrl->head, 8);
    CHECK(shm_ring_check_head(&w) == SHM_RING_CORRUPT, "a head that moved backwards is caught");
    free(data);
    free(ctrl);
}

int main(void) {
    round_trips();
    ordered_contents();
    hostile_writer();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
