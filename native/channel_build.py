"""cffi (API mode, out of line) build of the channel library for Python.

The same C files as the Redis module's channel code: the layout, ring and
wait/wake logic exist once.  The cdef lists only what shmcli/channel.py uses.

shm_pipe.c (--pipe) includes shm_client.c, whose ring positions its loop
drives, so it is compiled in shm_client.c's place: see its header comment.
"""

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    struct shm_client;
    #define SHM_REC_REQUEST 2
    #define SHM_REC_RESUME 4
    #define SHM_OK 0
    #define SHM_E_TIMEOUT -1
    #define SHM_E_CLOSED -2
    #define SHM_E_PROTO -3
    #define SHM_E_SYS -4
    #define SHM_E_REFUSED -5
    #define SHM_E_NOMEM -6
    #define SHM_E_TOO_BIG -7
    #define SHM_E_AGAIN -8
    int shm_client_open(const char *socket_path, const char *token, uint32_t ring_size,
                        int timeout_ms, struct shm_client **out, char *err, size_t errlen);
    void shm_client_close(struct shm_client *c);
    void shm_client_set_wait(struct shm_client *c, uint32_t spin_ns, uint32_t adapt_ns,
                             uint32_t liveness_ms);
    int shm_client_send(struct shm_client *c, uint32_t kind, const char *buf, size_t len,
                        int64_t timeout_ms);
    int shm_client_send_batch(struct shm_client *c, const char *buf, const size_t *lens,
                              size_t n, int64_t timeout_ms);
    int shm_client_recv(struct shm_client *c, const char **reply, size_t *reply_len,
                        int64_t timeout_ms);
    int shm_client_recv_many(struct shm_client *c, size_t n, const char *stop, size_t stop_len,
                             const char **out, size_t *out_len, size_t *got, int *stopped,
                             int64_t timeout_ms, int wait);
    int shm_client_arm_socket_wake(struct shm_client *c);
    int shm_client_disarm_socket_wake(struct shm_client *c);
    int shm_client_control_fd(struct shm_client *c);
    int shm_client_call(struct shm_client *c, const char *req, size_t req_len,
                        const char **reply, size_t *reply_len, int64_t timeout_ms);
    void shm_client_set_max_reply(struct shm_client *c, uint64_t max_reply);
    void *shm_client_region(struct shm_client *c, size_t *size);
    const char *shm_client_strerror(int status);

    #define SHM_PIPE_ROUTED 1
    #define SHM_PIPE_OK 0
    #define SHM_PIPE_REFUSED 1
    #define SHM_PIPE_DONE 2
    #define SHM_PIPE_AGAIN 3
    #define SHM_PIPE_BAD_REPLY 4
    struct shm_pipe_stats {
        uint64_t replies;
        uint64_t errors;
        uint64_t last_reply_ns;
        int armed;
        int done;
    };
    struct shm_pipe;
    struct shm_pipe *shm_pipe_new(const char *routed, size_t routed_len, const char *magic);
    void shm_pipe_free(struct shm_pipe *p);
    struct shm_pipe_stats *shm_pipe_stats(struct shm_pipe *p);
    int shm_pipe_feed(struct shm_pipe *p, const char *data, size_t len, int final);
    size_t shm_pipe_count(struct shm_pipe *p);
    uint32_t shm_pipe_command(struct shm_pipe *p, size_t i, const char **req, size_t *len);
    int shm_pipe_handoff(struct shm_pipe *p);
    void shm_pipe_tail(struct shm_pipe *p, const char **buf, size_t *len);
    int shm_pipe_run(struct shm_pipe *p, struct shm_client *c, size_t start, int64_t wait_ms,
                     size_t *next);
    size_t shm_pipe_scan(struct shm_pipe *p, const char *buf, size_t len, int *status);
    void shm_pipe_errors(struct shm_pipe *p, const char **text, size_t *len);
    void shm_pipe_clear_errors(struct shm_pipe *p);

    size_t resp_scan_bulks(const char *buf, size_t len, size_t pos, size_t max,
                           uint64_t *spans, size_t *next);

    int shm_probe_session(struct shm_client *c, uint32_t spin_ns, int64_t timeout_ms,
                          uint64_t *elapsed_ns, const char **reply, size_t *reply_len);
    int shm_probe_socket(int fd, uint32_t spin_ns, int64_t timeout_ms, uint64_t *elapsed_ns,
                         char *reply, size_t cap, size_t *reply_len);
    """
)
ffibuilder.set_source(
    "shmcli._channel",
    '#include "shm_client.h"\n#include "shm_layout.h"\n'
    '#include "shm_pipe.h"\n#include "shm_probe.h"\n#include "resp_scan.h"',
    sources=["native/channel/shm_pipe.c",  # includes shm_client.c
             "native/channel/shm_probe.c", "native/channel/resp_scan.c",
             "native/channel/shm_ring.c",
             "native/channel/shm_wait.c"],
    include_dirs=["native/channel"],
    extra_compile_args=["-std=c11", "-O2", "-D_GNU_SOURCE", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
