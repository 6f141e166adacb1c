/*
 * socket_location.c - chooses the session socket's path and permissions.
 *
 * The socket must not be where another local user can create it first (the
 * server would then fail to start, or a squatter would see the clients'
 * hellos), and it must not admit anyone the server's own socket would not.
 * Without shm.socket-path:
 *   - next to the server's unix socket, as "<unixsocket>.shm", with the same
 *     permissions (unixsocketperm; 0 there means "as the umask leaves it",
 *     and so here).  Whoever may create files there could replace the
 *     server's own socket too;
 *   - on a server without a unix socket (TCP only, which every local user
 *     can reach), in a fresh directory with a random name (mkdtemp), mode
 *     0711 so nobody can list it, the socket inside open to connect: the
 *     token from SHM.HANDSHAKE is what admits a client.
 * shm.socket-path and shm.socket-perm, when set, win.
 */
#include "socket_location.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "server_config.h"

static int octal(const char *s) {
    char *end;
    long v = strtol(s, &end, 8);
    return (*s && !*end && v >= 0 && v <= 0777) ? (int)v : -1;
}

int shm_socket_location_choose(RedisModuleCtx *ctx, struct shm_socket_location *out) {
    memset(out, 0, sizeof *out);
    char unixsocket[256], perm[16];
    shm_server_config(ctx, "unixsocket", unixsocket, sizeof unixsocket);
    shm_server_config(ctx, "unixsocketperm", perm, sizeof perm);
    int server_perm = octal(perm);
    out->perm = shm_cfg.socket_perm >= 0 ? (int)shm_cfg.socket_perm : -1;

    if (shm_cfg.socket_path[0]) {
        snprintf(out->path, sizeof out->path, "%s", shm_cfg.socket_path);
        if (out->perm < 0 && unixsocket[0] && server_perm > 0) out->perm = server_perm;
        return 0;
    }
    size_t len = strlen(unixsocket);
    if (len && len + sizeof ".shm" <= sizeof out->path) {
        memcpy(out->path, unixsocket, len);
        memcpy(out->path + len, ".shm", sizeof ".shm");
        if (out->perm < 0 && server_perm > 0) out->perm = server_perm;
        return 0;
    }
    snprintf(out->made_dir, sizeof out->made_dir, "/tmp/redis-shm-XXXXXX");
    if (!mkdtemp(out->made_dir) || chmod(out->made_dir, 0711) < 0) {
        out->made_dir[0] = '\0';
        return -1;
    }
    snprintf(out->path, sizeof out->path, "%s/shm.sock", out->made_dir);
    if (out->perm < 0) out->perm = 0777;
    return 0;
}

void shm_socket_location_remove(const struct shm_socket_location *loc) {
    if (loc->path[0]) unlink(loc->path);
    if (loc->made_dir[0]) rmdir(loc->made_dir);
}
