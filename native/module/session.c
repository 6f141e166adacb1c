/*
 * session.c - session setup and teardown: tokens, the module's socket, the
 * table.
 *
 * DESIGN §4: the right to a session comes from an authenticated Redis
 * connection.  SHM.HANDSHAKE gives that connection a one-time token; the
 * client proves it by sending the token over our unix socket together with
 * its memfd and eventfd (SCM_RIGHTS).  Everything that arrives on that socket
 * is checked before it is used: the token, the number and kind of
 * descriptors, the region's size and seals.  The socket then stays open as
 * the client's liveness signal.
 */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../channel/shm_wait.h"
#include "config.h"
#include "socket_location.h"
#include "stats.h"
#include "worker.h"

#define TOKEN_LEN 32
#define TOKEN_TTL_MS 10000
#define MAX_PENDING_CONNS 32
#define HELLO_TTL_MS 2000 /* a client sends its hello right after connecting */

struct token {
    char value[TOKEN_LEN + 1];
    uint64_t client_id;
    char user[SHM_USER_MAX];
    int db, resp;
    uint32_t ring_size;
    long long expires_ms;
};

struct pending_conn {
    int fd;
    long long expires_ms;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shm_session **sessions; /* slots; NULL = free */
static int session_slots;
struct shm_stats shm_stats;
int shm_pass_running;

/* At most one per connection, and tokens + sessions <= shm.max-sessions. */
static struct token *tokens;
static int token_count, token_cap;
static struct pending_conn pending[MAX_PENDING_CONNS];
static int pending_count;
static int listen_fd = -1;
static struct shm_socket_location location;
static const char *const socket_path = location.path;
static uint64_t next_session_id = 1;

const char *shm_socket_path(void) { return socket_path; }

void shm_table_lock(void) { pthread_mutex_lock(&table_lock); }
void shm_table_unlock(void) { pthread_mutex_unlock(&table_lock); }
int shm_sessions_ever(void) { return session_slots; }

struct shm_session *shm_session_next(int *cursor) {
    while (*cursor < session_slots) {
        struct shm_session *s = sessions[(*cursor)++];
        if (s) return s;
    }
    return NULL;
}

int shm_session_count(void) {
    int n = 0;
    for (int i = 0; i < session_slots; i++) n += sessions[i] != NULL;
    return n;
}

/* ---- tokens ---- */

static void drop_token(int i) { tokens[i] = tokens[--token_count]; }

static int make_token(char out[TOKEN_LEN + 1]) {
    unsigned char raw[TOKEN_LEN / 2];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) return -1;
    for (size_t i = 0; i < sizeof raw; i++) sprintf(out + 2 * i, "%02x", raw[i]);
    return 0;
}

static int take_token(const char *value, size_t len, struct token *out) {
    long long now = RM.Milliseconds();
    int found = -1;
    for (int i = 0; i < token_count; i++) {
        unsigned char diff = len != TOKEN_LEN;
        for (size_t k = 0; k < TOKEN_LEN && k < len; k++)
            diff |= (unsigned char)(tokens[i].value[k] ^ value[k]);
        if (!diff && tokens[i].expires_ms > now) found = i;
    }
    if (found < 0) return -1;
    *out = tokens[found];
    drop_token(found);
    return 0;
}

int shm_handshake_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    if (argc != 1) return RM.WrongArity(ctx);
    int flags = RM.GetContextFlags(ctx);
    if (flags & (RM_CTX_FLAGS_MULTI | RM_CTX_FLAGS_LUA))
        return RM.ReplyWithError(ctx, "ERR shm: SHM.HANDSHAKE must be sent on its own");
    if (listen_fd < 0) return RM.ReplyWithError(ctx, "ERR shm: the module's socket is not open");

    /* One outstanding token per connection: asking again replaces it, so a
       client cannot hoard the session slots. */
    uint64_t client_id = RM.GetClientId(ctx);
    for (int i = token_count - 1; i >= 0; i--)
        if (tokens[i].client_id == client_id) drop_token(i);
    pthread_mutex_lock(&table_lock);
    int busy = shm_session_count() + token_count;
    pthread_mutex_unlock(&table_lock);
    /* A full table is the server's state, not the client's mistake: a null
       reply, which the server counts as no error (INFO errorstats), so an
       application with more pooled connections than sessions does not raise
       an error count on every connect.  The client uses its socket;
       handshakes_refused (INFO shm) counts it. */
    if (busy >= shm_cfg.max_sessions) {
        shm_stats.handshakes_refused++;
        return RM.ReplyWithNull(ctx);
    }

    struct token t = {0};
    RedisModuleString *user = RM.GetCurrentUserName(ctx);
    size_t ulen;
    const char *u = RM.StringPtrLen(user, &ulen);
    if (ulen < sizeof t.user) memcpy(t.user, u, ulen);
    RM.FreeString(ctx, user);
    if (ulen >= sizeof t.user) /* never truncated: the session must be exactly this user */
        return RM.ReplyWithError(ctx, "ERR shm: the user name is too long for a session");
    if (make_token(t.value) < 0) return RM.ReplyWithError(ctx, "ERR shm: no randomness");
    t.client_id = client_id;
    t.db = RM.GetSelectedDb(ctx);
    t.resp = (flags & RM_CTX_FLAGS_RESP3) ? 3 : 2;
    t.ring_size = (uint32_t)shm_cfg.ring_size;
    t.expires_ms = RM.Milliseconds() + TOKEN_TTL_MS;
    if (token_count == token_cap) {
        token_cap = token_cap ? token_cap * 2 : 16;
        tokens = RM.Realloc(tokens, sizeof *tokens * (size_t)token_cap);
    }
    tokens[token_count++] = t;

    RM.ReplyWithArray(ctx, 4);
    RM.ReplyWithStringBuffer(ctx, t.value, TOKEN_LEN);
    RM.ReplyWithStringBuffer(ctx, socket_path, strlen(socket_path));
    RM.ReplyWithLongLong(ctx, t.ring_size);
    RM.ReplyWithLongLong(ctx, SHM_LAYOUT_VERSION);
    return RM_OK;
}

/* ---- the session socket ---- */

static void forget_pending(int fd) {
    for (int i = 0; i < pending_count; i++)
        if (pending[i].fd == fd) {
            pending[i] = pending[--pending_count];
            return;
        }
}

static void answer_and_close(int fd, const char *answer) {
    if (answer) send(fd, answer, strlen(answer), MSG_NOSIGNAL | MSG_DONTWAIT);
    RM.EventLoopDel(fd, RM_EVENTLOOP_READABLE);
    forget_pending(fd);
    close(fd);
}

static void on_session_socket(int fd, void *ud, int mask) {
    (void)fd;
    (void)mask;
    /* The client never writes after the hello: data, EOF or error all end it. */
    pthread_mutex_lock(&table_lock);
    shm_session_close(ud, NULL);
    pthread_mutex_unlock(&table_lock);
}

static void on_doorbell(int fd, void *ud, int mask) {
    (void)ud;
    (void)mask;
    /* Only wakes the event loop; the AFTER_SLEEP hook does the work. */
    shm_doorbell_drain(fd);
    shm_stats.wakeups++;
}

static int is_eventfd(int fd) {
    char link[64], path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n <= 0) return 0;
    link[n] = '\0';
    return strcmp(link, "anon_inode:[eventfd]") == 0;
}

/* A semaphore eventfd (EFD_SEMAPHORE) gives back 1 per read however often it
   was rung, so it would stay readable and keep a core busy.  Ring it twice
   and read: a plain eventfd returns the whole count (2 or more, if the
   client rang too), a semaphore exactly 1.  Called with O_NONBLOCK set. */
static int is_plain_eventfd(int fd) {
    uint64_t two = 2, got = 0;
    if (write(fd, &two, sizeof two) != (ssize_t)sizeof two) return 0;
    if (read(fd, &got, sizeof got) != (ssize_t)sizeof got) return 0;
    if (got == 1) return 0;
    shm_doorbell_drain(fd);
    return 1;
}

/* Checks the descriptors and maps the region; returns NULL + reason. */
static struct shm_session *attach(const struct token *t, int memfd, int doorbell,
                                  const char **why) {
    struct stat st;
    size_t size = shm_region_size(t->ring_size);
    int seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0 || fstat(memfd, &st) < 0) return *why = "ERR the region is not a memfd", NULL;
    if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return *why = "ERR the region must be sealed against resizing", NULL;
    if ((size_t)st.st_size != size) return *why = "ERR the region has the wrong size", NULL;
    if (!is_eventfd(doorbell)) return *why = "ERR the doorbell is not an eventfd", NULL;
    int fl = fcntl(doorbell, F_GETFL);
    if (fl < 0 || fcntl(doorbell, F_SETFL, fl | O_NONBLOCK) < 0)
        return *why = "ERR the doorbell cannot be used", NULL;
    if (!is_plain_eventfd(doorbell))
        return *why = "ERR the doorbell must be a plain eventfd (no EFD_SEMAPHORE)", NULL;
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (base == MAP_FAILED) return *why = "ERR cannot map the region", NULL;
    struct shm_region_header *hdr = base;
    if (hdr->magic != SHM_MAGIC || hdr->version != SHM_LAYOUT_VERSION ||
        hdr->ring_size != t->ring_size || hdr->header_size != SHM_HEADER_SIZE) {
        munmap(base, size);
        return *why = "ERR the region's header does not match the handshake", NULL;
    }
    struct shm_session *s = RM.Calloc(1, sizeof *s);
    s->hdr = hdr;
    s->region_size = size;
    char *rings = (char *)base + SHM_HEADER_SIZE;
    shm_ring_reader_init(&s->req, &hdr->req, rings, t->ring_size);
    shm_ring_writer_init(&s->rep, &hdr->rep, rings + t->ring_size, t->ring_size);
    s->doorbell = doorbell;
    s->control_client_id = t->client_id;
    memcpy(s->user, t->user, sizeof s->user);
    s->db = t->db;
    s->resp = t->resp;
    /* Until the server's first pass, tell the client we may be asleep: the
       worker (or the event loop) may be blocked already, and without the
       doorbell the first request would wait for a timeout. */
    atomic_store_explicit(&hdr->req.consumer_waiting, 1, memory_order_seq_cst);
    return s;
}

static int free_slot(void) {
    for (int i = 0; i < session_slots; i++)
        if (!sessions[i]) return i;
    int grown = session_slots ? session_slots * 2 : 16;
    struct shm_session **more = RM.Realloc(sessions, sizeof *more * (size_t)grown);
    for (int i = session_slots; i < grown; i++) more[i] = NULL;
    sessions = more;
    int slot = session_slots;
    session_slots = grown;
    return slot;
}

static void close_fds(int *fds, int n) {
    for (int i = 0; i < n; i++) close(fds[i]);
}

static void on_hello(int fd, void *ud, int mask) {
    (void)ud;
    (void)mask;
    char data[64];
    int fds[4];
    char cbuf[CMSG_SPACE(sizeof fds)];
    struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                         .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) { /* msg is undefined after a failure: look at nothing */
        shm_stats.handshakes_refused++;
        answer_and_close(fd, NULL);
        return;
    }
    int nfds = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < k && nfds < 4; i++) memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
    }
    struct token t;
    const char *why = NULL;
    if (n == 0 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
        why = "ERR malformed session request";
    else if (nfds != 2)
        why = "ERR expected a memfd and an eventfd";
    else if (take_token(data, (size_t)n, &t) < 0)
        why = "ERR invalid or expired token";
    if (why) {
        shm_stats.handshakes_refused++;
        close_fds(fds, nfds);
        answer_and_close(fd, why);
        return;
    }

    struct shm_session *s = attach(&t, fds[0], fds[1], &why);
    close(fds[0]); /* the mapping keeps the region alive */
    if (!s) {
        shm_stats.handshakes_refused++;
        close(fds[1]);
        answer_and_close(fd, why);
        return;
    }
    RM.EventLoopDel(fd, RM_EVENTLOOP_READABLE);
    forget_pending(fd);
    s->sock = fd;
    int registered = RM.EventLoopAdd(fd, RM_EVENTLOOP_READABLE, on_session_socket, s) == RM_OK;
    if (registered) {
        registered = shm_worker_running()
                         ? shm_worker_watch(s->doorbell) == 0
                         : RM.EventLoopAdd(s->doorbell, RM_EVENTLOOP_READABLE, on_doorbell,
                                           NULL) == RM_OK;
        if (!registered) RM.EventLoopDel(fd, RM_EVENTLOOP_READABLE);
    }
    if (!registered) {
        shm_stats.handshakes_refused++;
        munmap(s->hdr, s->region_size);
        close(s->doorbell);
        RM.Free(s);
        answer_and_close(fd, "ERR too many open files for another session");
        return;
    }
    pthread_mutex_lock(&table_lock);
    s->id = next_session_id++;
    int slot = free_slot(); /* may move `sessions` */
    sessions[slot] = s;
    shm_stats.sessions_opened++;
    pthread_mutex_unlock(&table_lock);
    send(fd, "OK", 2, MSG_NOSIGNAL | MSG_DONTWAIT);
    RM.Log(NULL, "verbose", "shm: session %llu opened for client %llu (user %s)",
           (unsigned long long)s->id, (unsigned long long)s->control_client_id, s->user);
}

static void on_accept(int fd, void *ud, int mask) {
    (void)ud;
    (void)mask;
    int conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn < 0) return;
    if (pending_count >= MAX_PENDING_CONNS) { /* silent ones must not lock others out */
        int oldest = 0;
        for (int i = 1; i < pending_count; i++)
            if (pending[i].expires_ms < pending[oldest].expires_ms) oldest = i;
        answer_and_close(pending[oldest].fd, "ERR timed out");
    }
    if (RM.EventLoopAdd(conn, RM_EVENTLOOP_READABLE, on_hello, NULL) != RM_OK) {
        close(conn);
        return;
    }
    pending[pending_count++] = (struct pending_conn){conn, RM.Milliseconds() + HELLO_TTL_MS};
}

void shm_sessions_expire(void) {
    if (!token_count && !pending_count) return;
    long long now = RM.Milliseconds();
    for (int i = token_count - 1; i >= 0; i--)
        if (tokens[i].expires_ms <= now) drop_token(i);
    for (int i = pending_count - 1; i >= 0; i--)
        if (pending[i].expires_ms <= now) answer_and_close(pending[i].fd, "ERR timed out");
}

/* ---- teardown ---- */

void shm_session_close(struct shm_session *s, const char *why) {
    for (int i = 0; i < session_slots; i++)
        if (sessions[i] == s) sessions[i] = NULL;
    if (why) {
        shm_stats.sessions_killed++;
        RM.Log(NULL, "warning", "shm: closing session %llu of client %llu: %s",
               (unsigned long long)s->id, (unsigned long long)s->control_client_id, why);
    }
    shm_stats.sessions_closed++;
    RM.EventLoopDel(s->sock, RM_EVENTLOOP_READABLE);
    close(s->sock);
    if (shm_worker_running())
        shm_worker_unwatch(s->doorbell);
    else
        RM.EventLoopDel(s->doorbell, RM_EVENTLOOP_READABLE);
    close(s->doorbell);
    atomic_store_explicit(&s->hdr->server_closed, 1, memory_order_seq_cst);
    shm_futex_wake(&s->hdr->rep.tail);
    shm_futex_wake(&s->hdr->req.head);
    munmap(s->hdr, s->region_size);
    if (s->out_reply) RM.FreeCallReply(s->out_reply);
    RM.Free(s->out_owned);
    RM.Free(s->in);
    RM.Free(s);
}

void shm_sessions_client_gone(uint64_t client_id) {
    for (int i = token_count - 1; i >= 0; i--)
        if (tokens[i].client_id == client_id) drop_token(i);
    /* A command run by a pass can end connections (CLIENT KILL, ACL
       DELUSER): the pass holds the table and may be using the session, so
       only mark it; the main thread closes it afterwards. */
    int in_pass = shm_pass_running;
    if (!in_pass) pthread_mutex_lock(&table_lock);
    for (int i = 0; i < session_slots; i++) {
        struct shm_session *s = sessions[i];
        if (!s || s->control_client_id != client_id) continue;
        if (in_pass) {
            if (!s->failed) s->failed = "";
        } else {
            shm_session_close(s, NULL);
        }
    }
    if (!in_pass) pthread_mutex_unlock(&table_lock);
}

/* ---- lifecycle ---- */

/* In a fork child (BGSAVE, AOF rewrite): let go of the sockets, so that a
   client still sees the hang-up when the server itself dies, instead of
   waiting for the child to finish.  Only plain close() calls: the child
   never runs our event loop. */
static void close_in_fork_child(void) {
    for (int i = 0; i < session_slots; i++)
        if (sessions[i]) {
            close(sessions[i]->sock);
            close(sessions[i]->doorbell);
        }
    for (int i = 0; i < pending_count; i++) close(pending[i].fd);
    if (listen_fd >= 0) close(listen_fd);
}

int shm_sessions_init(RedisModuleCtx *ctx) {
    pthread_atfork(NULL, NULL, close_in_fork_child);
    if (shm_socket_location_choose(ctx, &location) < 0) goto fail;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path);
    listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) goto fail;
    unlink(socket_path); /* as the server does with its own unix socket */
    /* Never wider than asked, not even between bind and chmod. */
    int set_perm = location.perm >= 0;
    mode_t old = set_perm ? umask(0777 & ~(mode_t)location.perm) : 0;
    int bound = bind(listen_fd, (struct sockaddr *)&addr, sizeof addr);
    if (set_perm) umask(old);
    if (bound < 0 || (set_perm && chmod(socket_path, (mode_t)location.perm) < 0) ||
        listen(listen_fd, 64) < 0)
        goto fail;
    if (RM.EventLoopAdd(listen_fd, RM_EVENTLOOP_READABLE, on_accept, NULL) != RM_OK) goto fail;
    RM.Log(ctx, "notice", "shm: listening for sessions on %s", socket_path);
    return RM_OK;
fail:
    RM.Log(ctx, "warning", "shm: cannot listen on %s: %s", socket_path, strerror(errno));
    if (listen_fd >= 0) close(listen_fd);
    listen_fd = -1;
    shm_socket_location_remove(&location);
    return RM_ERR;
}

void shm_sessions_shutdown(void) {
    if (listen_fd >= 0) shm_socket_location_remove(&location);
}

void shm_sessions_close_all(void) {
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < session_slots; i++)
        if (sessions[i]) shm_session_close(sessions[i], NULL);
    pthread_mutex_unlock(&table_lock);
    while (pending_count) answer_and_close(pending[0].fd, NULL);
    if (listen_fd >= 0) {
        RM.EventLoopDel(listen_fd, RM_EVENTLOOP_READABLE);
        close(listen_fd);
        listen_fd = -1;
    }
    RM.Free(tokens);
    tokens = NULL;
    token_count = token_cap = 0;
}

struct shm_buffered shm_sessions_buffered(void) {
    struct shm_buffered b = {0, 0};
    for (int i = 0; i < session_slots; i++) {
        struct shm_session *s = sessions[i];
        if (!s) continue;
        b.input += s->in_cap;
        b.output += s->out_len - s->out_off;
    }
    return b;
}
