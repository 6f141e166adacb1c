/*
 * socket_location.h - where the module's session socket lives, and who may
 * connect to it.
 */
#ifndef SHM_SOCKET_LOCATION_H
#define SHM_SOCKET_LOCATION_H

#include <stddef.h>

#include "rm_api.h"

#define SHM_SOCKET_PATH_MAX 108 /* sun_path */

struct shm_socket_location {
    char path[SHM_SOCKET_PATH_MAX];
    char made_dir[32];                  /* a directory we created ("" if none) */
    int perm;                           /* chmod after bind; -1: leave the umask's */
};

/* Decide the location from shm.socket-path / shm.socket-perm and the server's
   own unix socket (ctx: the OnLoad context).  0 on success, else -1 with
   errno set. */
int shm_socket_location_choose(RedisModuleCtx *ctx, struct shm_socket_location *out);

/* Remove what choose() and the bind created. */
void shm_socket_location_remove(const struct shm_socket_location *loc);

#endif
