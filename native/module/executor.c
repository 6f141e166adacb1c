/*
 * executor.c - runs sessions' requests and moves their replies into the rings.
 *
 * One request takes the path of DESIGN §5, one step per file:
 *   copy      request_intake.c   out of the shared ring, once, bounded
 *   parse     resp_request.c     strict RESP, from the private copy
 *   resolve   command_lookup.c   the command the server will run
 *   classify  command_policy.c   run, emulate, or refuse to the socket
 *   check     here               server state: loading, client pause;
 *             client_capabilities.c  a replica's -REDIRECT (CLIENT CAPA)
 *   execute   command_call.c     RedisModule_Call as the session's user,
 *                                with the server's ACL, guards and OOM checks
 *             connection_state.c the emulated per-connection commands
 *   reply     reply_output.c     into the reply ring
 * Nothing after the copy reads the shared region.
 *
 * Commands run on one detached context, as the session's ACL user (looked up
 * per pass, never kept), in the session's db and RESP version.  The reply's
 * raw protocol (CallReplyProto) is what goes into the reply ring, so the
 * client receives the bytes a socket would have carried.  A session with
 * pending output reads no new request until it has drained.
 *
 * Polling (docs/latency.md, "Polling").  A pass notes when each session's
 * requests come, and two bounded polls use that to save wake-ups:
 *   - main-poll (shm.main-poll-us, main-thread mode): after a pass that ran
 *     requests, keep looking at the rings for a few µs, so a back-to-back
 *     client finds the server awake (longer for a client that has not read
 *     its reply yet: an event loop waking up).  Only sessions that came
 *     back within the bound last time are waited for; one that did not is
 *     skipped for its next 2, 4 ... 64 passes.  The wait goes in slices of
 *     a few µs, one per event-loop iteration, the loop turning (without
 *     sleeping) between them: socket clients wait at most about a slice,
 *     and the side effects of a write (AOF, replicas, blocked clients) are
 *     seen to before the next request is waited for.
 *   - hybrid polling (shm.poll-budget, either mode): a session whose
 *     requests come at a steady rhythm gets a window around its next
 *     expected request; the waiter sleeps on a timerfd until just before it
 *     and polls through it.  Windows are paid from a token bucket filled at
 *     poll-budget percent of wall time, charged with the measured time spent
 *     polling, so no rhythm, however fake, costs more than the budget.
 * What a session's rhythm says only decides when to look at its ring, never
 * what runs; an idle session plans nothing, and an idle server arms nothing.
 */
#include "executor.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../channel/shm_wait.h"
#include "client_capabilities.h"
#include "command_call.h"
#include "command_lookup.h"
#include "command_policy.h"
#include "config.h"
#include "connection_state.h"
#include "reply_output.h"
#include "request_intake.h"
#include "resp_request.h"
#include "session.h"
#include "stats.h"

#define STACK_ARGS 16

static RedisModuleCtx *dctx;

/* Scratch space for parsed argument arrays: one pass at a time holds the GIL. */
static void *scratch;
static size_t scratch_cap;

static void *scratch_alloc(size_t bytes, void *ud) {
    (void)ud;
    if (bytes > scratch_cap) {
        RM.Free(scratch);
        scratch = RM.Alloc(bytes);
        scratch_cap = bytes;
    }
    return scratch;
}

static void scratch_release(void *p, void *ud) {
    (void)p;
    (void)ud;
}

static const resp_request_allocator scratch_allocator = {scratch_alloc, scratch_release, NULL};

int shm_executor_init(RedisModuleCtx *ctx) {
    dctx = RM.GetDetachedThreadSafeContext(ctx);
    return dctx ? RM_OK : RM_ERR;
}

/* ---- running one command ---- */

struct pass {
    int ctx_flags;
    uint64_t now; /* read once, when the first session had requests */
    int cpu;      /* the CPU this pass runs on */
    RedisModuleUser *user; /* the current session's, for this pass only */
    struct shm_pass_result result;
};

static void drop_user(struct pass *p) {
    if (!p->user) return;
    RM.SetContextUser(dctx, NULL);
    RM.FreeModuleUser(p->user);
    p->user = NULL;
}

/* The session runs as the user its control connection had at the
   handshake, for as long as that connection keeps that user: an AUTH, HELLO
   AUTH or RESET there ends the session (the client opens a new one), as do
   CLIENT KILL and ACL DELUSER, which close the connection.  Looked up again
   every pass and after every write, never kept (the ACL user may be freed). */
static RedisModuleUser *session_user(struct pass *p, struct shm_session *s) {
    if (p->user) return p->user;
    RedisModuleString *now = RM.GetClientUserNameById(dctx, s->control_client_id);
    if (!now) {
        shm_session_fail(s, "its connection is gone");
        return NULL;
    }
    size_t len;
    const char *name = RM.StringPtrLen(now, &len);
    if (len != strlen(s->user) || memcmp(name, s->user, len) != 0)
        shm_session_fail(s, "its connection changed user");
    else if (!(p->user = RM.GetModuleUserFromUserName(now)))
        shm_session_fail(s, "its ACL user no longer exists");
    RM.FreeString(dctx, now);
    return p->user;
}

/* The server state that stops a command before it runs, checked after the
   command's own (lookup, arity: the policy) and before anything executes.
   The rest (ACL, write guards, OOM) the server checks inside the call. */
static const char *server_state_refusal(const struct pass *p) {
    /* While loading, and while a replica loads a new data set beside the
       one it serves (repl-diskless-load swapdb), the socket refuses or
       allows per command (-LOADING, no-async-loading): leave it to it. */
    if (p->ctx_flags & (RM_CTX_FLAGS_LOADING | RM_CTX_FLAGS_ASYNC_LOADING))
        return "the server is loading";
    /* The server's own pause state (CLIENT PAUSE, FAILOVER, a SHUTDOWN
       waiting for replicas, pauses inside MULTI): a write now would trip
       its assertion, and a paused socket client would wait. */
    if (RM.AvoidReplicaTraffic()) return "clients are paused";
    return NULL;
}

static void execute(struct pass *p, struct shm_session *s, const resp_request *q,
                    const struct shm_command *cmd, struct shm_verdict v,
                    RedisModuleUser *user) {
    RedisModuleString *stack_args[STACK_ARGS];
    RedisModuleString **args =
        q->argc <= STACK_ARGS ? stack_args : RM.Alloc(sizeof *args * q->argc);
    for (size_t i = 0; i < q->argc; i++) args[i] = RM.CreateString(NULL, q->argv[i], q->argvlen[i]);

    int side_effects = v.action == SHM_ACT_CALL && shm_policy_has_side_effects(cmd);
    if (side_effects && (p->ctx_flags & RM_CTX_FLAGS_AOF)) shm_reply_hold(s);
    struct shm_call_result r =
        shm_call(dctx, s, user, v.action == SHM_ACT_CALL ? SHM_CALL_EXECUTE : SHM_CALL_VALIDATE,
                 args, q->argc);
    if (r.refusal) {
        shm_reply_refusal(s, r.refusal);
    } else {
        p->result.executed++;
        shm_stats.commands++;
        p->result.side_effects |= side_effects;
        if (v.action == SHM_ACT_CALL)
            shm_reply_call(s, r.reply);
        else
            shm_state_run(dctx, s, v.action, q, args, r.reply);
    }
    for (size_t i = 0; i < q->argc; i++) RM.FreeString(NULL, args[i]);
    if (args != stack_args) RM.Free(args);
    /* A write may have changed the ACL user we hold: look it up again. */
    if (side_effects) drop_user(p);
}

/* copy (done) -> parse -> resolve and classify -> check -> execute -> reply */
static void run_request(struct pass *p, struct shm_session *s) {
    resp_request q;
    const char *err = NULL;
    int rc = resp_request_parse(s->in, s->in_len, 1024 * 1024, (size_t)shm_cfg.input_limit,
                                &scratch_allocator, &q, &err);
    if (rc != RESP_REQUEST_OK) {
        char line[160];
        snprintf(line, sizeof line, "-ERR Protocol error: %s\r\n",
                 rc == RESP_REQUEST_ENOMEM ? "out of memory" : err);
        shm_reply_text(s, line);
        s->closing = "Protocol error"; /* as on a socket: the connection ends after it */
        return;
    }
    if (s->refusing) {
        shm_reply_refusal(s, "skipped after a refusal");
        return;
    }
    struct shm_command *cmd =
        shm_command_lookup(dctx, (const char *const *)q.argv, q.argvlen, q.argc);
    struct shm_verdict v = shm_policy_classify(cmd, q.argc);
    const char *refusal = v.action == SHM_ACT_REFUSE ? v.reason : server_state_refusal(p);
    if (!refusal && v.action == SHM_ACT_CALL)
        refusal = shm_capa_refusal(p->ctx_flags, s->control_client_id);
    if (refusal) {
        shm_reply_refusal(s, refusal);
        return;
    }
    if (v.action == SHM_ACT_QUIT) {
        shm_state_run(dctx, s, v.action, &q, NULL, NULL);
        return;
    }
    RedisModuleUser *user = session_user(p, s);
    if (user) execute(p, s, &q, cmd, v, user);
}

/* ---- the rhythm of a session's requests ---- */

#define GAP_MIN_NS 100000ull     /* quicker rhythms: main-poll's or the worker spin's */
#define GAP_MAX_NS 1000000000ull /* slower: a wake-up a second is not worth a window */
#define GAPS_TO_TRUST SHM_RHYTHM_GAPS
#define MARGIN_NS 10000ull       /* on both sides of a window, beyond the jitter */
#define WINDOW_MAX_NS 1000000ull /* a rhythm needing a longer window is not regular */
#define MISSES_TO_STOP 3         /* windows in a row a session may miss */
#define OUTLIER_SPREADS 4        /* a gap this many spreads off is an outlier */
#define OUTLIERS_TO_RESTART 3    /* outliers in a row: the rhythm changed */

static uint32_t pass_seq; /* passes run; a session's `served` is one of these */

/* The half-width of the window around a session's next request. */
static uint64_t spread_of(const struct shm_session *s) { return 2 * s->gap_dev_ns + MARGIN_NS; }

/* The first GAPS_TO_TRUST gaps give the rhythm: their median, and their
   median deviation from it (scaled as a mean deviation would be).  Medians,
   because on a loaded machine some gaps come far too long. */
static uint32_t median_of(uint32_t *v) { /* sorts v: eight values, insertion sort */
    for (int i = 1; i < GAPS_TO_TRUST; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint32_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[GAPS_TO_TRUST / 2];
}

static void start_rhythm(struct shm_session *s) {
    uint32_t v[GAPS_TO_TRUST];
    memcpy(v, s->first_gaps, sizeof v);
    uint32_t median = median_of(v);
    for (int i = 0; i < GAPS_TO_TRUST; i++) v[i] = v[i] > median ? v[i] - median : median - v[i];
    uint32_t deviation = median_of(v);
    s->gap_ns = median;
    s->gap_dev_ns = deviation + deviation / 4;
}

/* A pass found requests of `s` at `now` (one arrival per pass: a pipeline is
   one).  After the first gaps (start_rhythm), running means follow the
   rhythm as TCP follows its RTT: the gap's by 1/8, its mean deviation by
   1/4, each fed a difference clipped to the window's half-width, so a few
   long gaps cannot widen the window much.  A gap more than four half-widths
   off is left out; three such in a row mean the rhythm changed, and
   learning starts again.  A request that came where its window was (or
   would have been) clears the session's misses. */
static void note_arrival(struct shm_session *s, uint64_t now) {
    s->served = pass_seq;
    uint64_t gap = s->seen_ns ? now - s->seen_ns : 0;
    s->seen_ns = now;
    if (!gap || gap > GAP_MAX_NS) {
        s->gaps = 0; /* a new start, or back after a long silence */
        return;
    }
    if (s->gaps < GAPS_TO_TRUST) {
        s->first_gaps[s->gaps++] = (uint32_t)gap;
        if (s->gaps == GAPS_TO_TRUST) start_rhythm(s);
        return;
    }
    uint64_t err = gap > s->gap_ns ? gap - s->gap_ns : s->gap_ns - gap, spread = spread_of(s);
    if (err <= spread) s->poll_misses = 0;
    if (err > OUTLIER_SPREADS * spread) {
        if (++s->outliers >= OUTLIERS_TO_RESTART) s->outliers = 0, s->gaps = 0;
        return;
    }
    s->outliers = 0;
    uint64_t step = err < spread ? err : spread;
    s->gap_ns = gap > s->gap_ns ? s->gap_ns + step / 8 : s->gap_ns - step / 8;
    s->gap_dev_ns = step > s->gap_dev_ns ? s->gap_dev_ns + (step - s->gap_dev_ns) / 4
                                         : s->gap_dev_ns - (s->gap_dev_ns - step) / 4;
    if (s->gaps < UINT32_MAX) s->gaps++;
}

/* A steady rhythm: enough gaps, in range, whose deviation is small next to
   the gap and whose window stays short. */
static int is_regular(const struct shm_session *s) {
    return !s->failed && !s->out_len && s->gaps >= GAPS_TO_TRUST && s->gap_ns >= GAP_MIN_NS &&
           s->gap_ns <= GAP_MAX_NS && s->gap_dev_ns * 8 <= s->gap_ns &&
           2 * spread_of(s) <= WINDOW_MAX_NS && s->poll_misses < MISSES_TO_STOP;
}

/* ---- passes ---- */

static void run_session(struct pass *p, struct shm_session *s) {
    /* Once per pass, not per reply: a head the client moved somewhere
       impossible ends the session even while the ring has room. */
    if (shm_ring_check_head(&s->rep) < 0) {
        shm_session_fail(s, "the client corrupted its reply ring");
        return;
    }
    if (s->out_len && !shm_reply_flush(s)) return;
    uint32_t head_before = s->req.head;
    /* A client waiting on our CPU can read only once we stop: wake it once,
       after its batch (and do not spin for it: shm_pass_result). */
    int client_here = atomic_load_explicit(&s->hdr->rep.consumer_cpu, memory_order_relaxed) == p->cpu;
    shm_reply_defer_wake(s, client_here);
    for (long long n = 0; n < shm_cfg.batch_max && !s->failed && !s->closing; n++) {
        const char *why = NULL;
        enum shm_intake got = shm_intake_next(s, &why);
        if (got == SHM_INTAKE_NONE) break;
        if (got == SHM_INTAKE_BROKEN) {
            shm_session_fail(s, why);
            break;
        }
        if (got == SHM_INTAKE_RESUME) {
            s->refusing = 0;
            continue;
        }
        if (got == SHM_INTAKE_OVERSIZE) {
            shm_reply_refusal(s, "request over shm.input-limit");
        } else {
            run_request(p, s);
            shm_intake_done(s);
        }
        if (s->out_len) break; /* the client must read before we go on */
    }
    shm_reply_defer_wake(s, 0);
    if (s->req.head != head_before) {
        if (!p->now) p->now = shm_now_ns();
        if (!client_here) p->result.served_elsewhere = 1;
        note_arrival(s, p->now);
        if (atomic_load_explicit(&s->hdr->req.producer_waiting, memory_order_seq_cst))
            shm_futex_wake(&s->hdr->req.head);
    }
    if (s->closing && !s->out_len) shm_session_fail(s, s->closing);
}

struct shm_pass_result shm_execute_pass(void) {
    struct pass p = {0};
    struct shm_session *s;
    shm_table_lock();
    shm_pass_running = 1;
    pass_seq++;
    p.ctx_flags = RM.GetContextFlags(dctx);
    p.cpu = sched_getcpu();
    for (int c = 0; (s = shm_session_next(&c));) {
        if (!s->failed) run_session(&p, s);
        drop_user(&p);
        if (s->failed) p.result.failed = 1;
    }
    shm_pass_running = 0;
    shm_table_unlock();
    return p.result;
}

static int session_has_work(const struct shm_session *s) {
    if (s->failed) return 0;
    if (s->out_len) /* pending output: work once the client made room */
        return atomic_load_explicit(&s->hdr->rep.head, memory_order_acquire) != s->rep.head_cache;
    return shm_ring_has_data(&s->req);
}

int shm_work_pending(void) {
    int pending = 0;
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; !pending && (s = shm_session_next(&c));) pending = session_has_work(s);
    shm_table_unlock();
    return pending;
}

int shm_mark_sleeping(int sleeping) {
    int pending = 0, cpu = sched_getcpu();
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; (s = shm_session_next(&c));) {
        /* For the client's adaptive spin: where we will be woken, or where
           we woke (a client spinning on that CPU only delays us). */
        if (atomic_load_explicit(&s->hdr->req.consumer_cpu, memory_order_relaxed) != cpu)
            atomic_store_explicit(&s->hdr->req.consumer_cpu, cpu, memory_order_relaxed);
        atomic_store_explicit(&s->hdr->req.consumer_waiting, (uint32_t)sleeping,
                              sleeping ? memory_order_seq_cst : memory_order_relaxed);
        if (sleeping) pending |= session_has_work(s);
    }
    shm_table_unlock();
    return pending;
}

void shm_reap_failed(void) {
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; (s = shm_session_next(&c));)
        if (s->failed) shm_session_close(s, s->failed[0] ? s->failed : NULL);
    shm_table_unlock();
}

/* ---- main-poll: a short wait after serving, on the main thread ---- */

#define MAIN_SKIP_MAX_SHIFT 6 /* a session that keeps missing is polled 1 pass in 64 */

/* Mark the sessions worth waiting for: served by the last pass, not backing
   off, and not waiting for its reply on our CPU (it could not run while we
   spin: the co-location rule of shm_wait.c).  Returns how many. */
static int pick_main_waited(void) {
    int n = 0, cpu = sched_getcpu();
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; (s = shm_session_next(&c));) {
        s->main_waited = 0;
        if (s->served != pass_seq || s->failed || s->out_len || s->closing) continue;
        if (s->main_skip) {
            s->main_skip--;
            continue;
        }
        if (atomic_load_explicit(&s->hdr->rep.consumer_cpu, memory_order_relaxed) == cpu) continue;
        s->main_waited = 1;
        n++;
    }
    shm_table_unlock();
    return n;
}

/* After the wait: a session that sent again is waited for next time; one
   that did not (the wait ran out) backs off. */
static void settle_main_waited(int got) {
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; (s = shm_session_next(&c));) {
        if (!s->main_waited) continue;
        s->main_waited = 0;
        if (got && shm_ring_has_data(&s->req)) {
            s->main_misses = 0;
            s->main_skip = 0;
        } else if (!got) {
            if (s->main_misses < MAIN_SKIP_MAX_SHIFT) s->main_misses++;
            s->main_skip = (uint16_t)(1u << s->main_misses);
        }
    }
    shm_table_unlock();
}

#define MAIN_SLICE_NS 5000ull /* the most main-poll waits in one event-loop iteration */
#define MAIN_UNREAD_BOUNDS 4   /* how long a reply not read yet may extend the wait */

/* 1 when a session waited for has not read all its replies: its client is
   still on its way to them (an event loop waking up), and will send its
   next request only after. */
static int replies_unread(void) {
    int unread = 0;
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; !unread && (s = shm_session_next(&c));)
        unread = s->main_waited &&
                 atomic_load_explicit(&s->hdr->rep.head, memory_order_relaxed) != s->rep.tail;
    shm_table_unlock();
    return unread;
}

/* main-poll looks for the served sessions' next requests until
   shm.main-poll-us after it served them (main_until), or after their
   client read the replies, if that comes first within MAIN_UNREAD_BOUNDS
   bounds (main_unread_until), in slices: at most MAIN_SLICE_NS of waiting
   per event-loop iteration, so that a socket request waits at most about
   that long.  When a slice runs out, or a pass ran side effects the loop
   must see to first (AOF, replicas, blocked clients), main_resume asks
   BEFORE_SLEEP to let the loop turn without sleeping
   (shm_main_poll_resumes), and the next iteration goes on. */
static int main_resume;
static uint64_t main_until, main_unread_until;

int shm_main_poll_resumes(void) { return main_resume; }

/* The served sessions' requests were run at `now`: wait for their next. */
static void main_wait_from(uint64_t now, uint64_t bound) {
    main_until = now + bound;
    main_unread_until = now + MAIN_UNREAD_BOUNDS * bound;
}

struct shm_pass_result shm_main_poll(struct shm_pass_result r) {
    int resumed = main_resume;
    main_resume = 0;
    if (shm_cfg.main_poll_us <= 0 || r.failed) return r;
    uint64_t bound = (uint64_t)shm_cfg.main_poll_us * 1000ull, now = shm_now_ns();
    uint64_t slice_end = now + MAIN_SLICE_NS;
    int waited = resumed;
    if (r.executed) {
        /* Woken to go on waiting, and the pass found a request: a wake-up
           saved as much as a catch in the wait. */
        if (resumed) shm_stats.main_poll_hits++;
        waited = pick_main_waited();
        main_wait_from(now, bound);
    }
    int counted = 0;
    while (waited) {
        if (r.side_effects) {
            main_resume = 1;
            break;
        }
        if (!counted++) shm_stats.main_poll_loops++;
        uint64_t start = now, end = main_until < slice_end ? main_until : slice_end;
        int got;
        while (!(got = shm_work_pending()) && now < end) {
            shm_cpu_relax();
            now = shm_now_ns();
        }
        shm_stats.main_poll_ns += now - start;
        if (!got && now >= main_until && now < main_unread_until && replies_unread())
            main_until = now + bound;
        if (!got && now < main_until) { /* the slice ran out: the loop's turn */
            main_resume = 1;
            break;
        }
        settle_main_waited(got);
        if (!got) {
            shm_stats.main_poll_misses++;
            break;
        }
        shm_stats.main_poll_hits++;
        r = shm_execute_pass();
        if (r.failed) break;
        now = shm_now_ns();
        waited = r.executed ? pick_main_waited() : 0;
        main_wait_from(now, bound);
    }
    return r;
}

/* ---- hybrid polling: a window before a steady session's next request ---- */

#define CREDIT_SPAN_NS 20000000ull /* the bucket holds 20 ms worth of budget */
#define LATE_MAX_NS 200000ull      /* a later wake-up says nothing about the timer */

static struct {
    int timer_fd;
    uint64_t armed;               /* the timer's expiry, 0 = disarmed or fired */
    uint64_t start, end, target;  /* the planned window (start 0: none), its session */
    int64_t credit;               /* the budget's token bucket, ns of CPU; < 0: in debt */
    uint64_t refilled_at;
    uint64_t late;                /* how late timer wake-ups come, running mean */
    int timed;                    /* the timer was set ahead: its delay can be learned */
    uint64_t refused_target, refused_due; /* counted once as over budget */
} hp = {.timer_fd = -1, .late = 30000};

/* Only the waiter (the main thread in main-thread mode, the worker on the
   fast path) calls these three, so `hp` has one owner. */

static void refill(uint64_t now) {
    uint64_t budget = (uint64_t)shm_cfg.poll_budget;
    if (hp.refilled_at && now > hp.refilled_at)
        hp.credit += (int64_t)((now - hp.refilled_at) * budget / 100);
    int64_t cap = (int64_t)(CREDIT_SPAN_NS * budget / 100);
    if (hp.credit > cap) hp.credit = cap;
    hp.refilled_at = now;
}

/* The CPU time this thread used: what a window costs, not the wall time
   (a spinner the scheduler preempted spent nothing meanwhile). */
static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int shm_poll_timer_fd(void) {
    if (hp.timer_fd < 0) hp.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    return hp.timer_fd;
}

static void arm(uint64_t at) {
    if (hp.timer_fd < 0 || at == hp.armed) return;
    struct itimerspec its = {{0, 0}, {(time_t)(at / 1000000000ull), (long)(at % 1000000000ull)}};
    timerfd_settime(hp.timer_fd, TFD_TIMER_ABSTIME, &its, NULL); /* at 0: disarm */
    hp.armed = at;
}

static void count_miss(uint64_t target) {
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; (s = shm_session_next(&c));)
        if (s->id == target && s->poll_misses < UINT8_MAX) s->poll_misses++;
    shm_table_unlock();
}

/* 1 when the window's session last waited for its reply on this CPU: its
   client most likely wakes here too, and could not send while we spin (the
   request came right after the window, every time, when we did).  Checked
   when planning too, so such a session arms no timer. */
static int target_shares_our_cpu(uint64_t target) {
    int cpu = sched_getcpu(), shared = 0;
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; (s = shm_session_next(&c));)
        if (s->id == target)
            shared = atomic_load_explicit(&s->hdr->rep.consumer_cpu, memory_order_relaxed) == cpu;
    shm_table_unlock();
    return shared;
}

void shm_poll_plan(void) {
    hp.start = 0;
    if (shm_cfg.poll_budget <= 0 || hp.timer_fd < 0) {
        arm(0);
        return;
    }
    uint64_t now = shm_now_ns(), start = 0, end = 0, target = 0, due = 0;
    int cpu = sched_getcpu();
    struct shm_session *s;
    shm_table_lock();
    for (int c = 0; (s = shm_session_next(&c));) {
        if (!is_regular(s) ||
            atomic_load_explicit(&s->hdr->rep.consumer_cpu, memory_order_relaxed) == cpu)
            continue;
        uint64_t d = s->seen_ns + s->gap_ns, spread = spread_of(s);
        uint64_t b = d - spread - hp.late, e = d + spread;
        if (d <= now || (start && b >= start)) continue; /* due already, or a later one */
        start = b, end = e, target = s->id, due = d;
    }
    shm_table_unlock();
    if (start) {
        refill(now);
        /* Enough for the window up to the expected request; beyond it the
           window itself stops when the credit does. */
        if (hp.credit < (int64_t)(due - (start > now ? start : now))) {
            if (hp.refused_target != target || hp.refused_due != due) shm_stats.poll_over_budget++;
            hp.refused_target = target, hp.refused_due = due;
            start = 0;
        }
    }
    hp.start = start, hp.end = end, hp.target = target, hp.timed = start > now;
    arm(start);
}

int shm_poll_window(void) {
    if (!hp.start) return 0;
    uint64_t now = shm_now_ns();
    if (now < hp.start) return 0;
    uint64_t fired = 0;
    int by_timer = read(hp.timer_fd, &fired, sizeof fired) == (ssize_t)sizeof fired;
    if (by_timer && hp.timed && now - hp.start < LATE_MAX_NS) /* learn our own wake-up delay */
        hp.late = hp.late + (now - hp.start) / 8 - hp.late / 8;
    hp.armed = 0;
    hp.start = 0;
    refill(now);
    if (now >= hp.end) { /* woken too late to poll */
        count_miss(hp.target);
        return 0;
    }
    if (target_shares_our_cpu(hp.target)) return 0;
    shm_stats.poll_windows++;
    uint64_t start = now, cpu = thread_cpu_ns();
    int got = 0;
    while (!(got = shm_work_pending()) && now < hp.end && (int64_t)(now - start) < hp.credit) {
        for (int i = 0; i < 8; i++) shm_cpu_relax();
        now = shm_now_ns();
    }
    /* Charged in full, debt included: over any stretch of time, windows
       cost at most the budget's share of it plus the bucket. */
    uint64_t spent = thread_cpu_ns() - cpu;
    hp.credit -= (int64_t)spent;
    shm_stats.poll_ns += spent;
    if (got)
        shm_stats.poll_hits++;
    else
        count_miss(hp.target);
    return got;
}

void shm_poll_timer_drain(void) {
    uint64_t fired;
    if (hp.timer_fd >= 0 && read(hp.timer_fd, &fired, sizeof fired) == (ssize_t)sizeof fired)
        hp.armed = 0;
}
