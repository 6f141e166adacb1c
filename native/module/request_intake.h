/*
 * request_intake.h - takes a session's next request out of its request ring
 * into private memory.  This is the one fetch of DESIGN §5: the copy is made
 * once, bounded by shm.input-limit, and everything after it (parse, lookup,
 * checks, execution) reads the copy only, never the shared region.
 */
#ifndef SHM_REQUEST_INTAKE_H
#define SHM_REQUEST_INTAKE_H

#include <stddef.h>

#include "session.h"

enum shm_intake {
    SHM_INTAKE_NONE,     /* nothing (complete) to run yet */
    SHM_INTAKE_REQUEST,  /* s->in[0..s->in_len) holds one whole request */
    SHM_INTAKE_RESUME,   /* the client read a refusal and asks us to go on */
    SHM_INTAKE_OVERSIZE, /* a request over shm.input-limit was skipped: refuse it */
    SHM_INTAKE_BROKEN,   /* protocol broken: the session must close (*why) */
};

/* Consume ring records until one of the above happens.  After
   SHM_INTAKE_REQUEST the caller runs the request, then calls
   shm_intake_done(). */
enum shm_intake shm_intake_next(struct shm_session *s, const char **why);
void shm_intake_done(struct shm_session *s);

#endif
