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
 *
 * A server that is killed cannot remove its socket.  Next to the server's
 * unix socket that costs nothing (the next start reuses the name, as the
 * server does its own), but each TCP-only start makes a new directory, so
 * before making one, the module removes the directories of earlier ones that
 * are gone: owned by this user, named as ours, holding at most a "shm.sock"
 * that nobody has listened on (connect says ECONNREFUSED) for a while.
 */
#include "socket_location.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "server_config.h"

static int octal(const char *s) {
    char *end;
    long v = strtol(s, &end, 8);
    return (*s && !*end && v >= 0 && v <= 0777) ? (int)v : -1;
}

#define MADE_DIR_PARENT "/tmp"
#define MADE_DIR_PREFIX "redis-shm-"
#define STALE_AFTER_S 2 /* well past a live server's bind-to-listen moment */

/* Nobody listens on the unix socket at path.  A stream connect never
   reaches the module's SEQPACKET listener: ECONNREFUSED when nobody listens
   there, EPROTOTYPE when somebody does. */
static int nobody_listens(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) return 0;
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int refused = connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno == ECONNREFUSED;
    close(fd);
    return refused;
}

/* Remove dir/ and its shm.sock when they are a dead server's (see the top). */
static void remove_if_left_behind(const char *dir, time_t now) {
    struct stat st;
    if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 07777) != 0711 || now - st.st_mtime < STALE_AFTER_S)
        return;
    char sock[SHM_SOCKET_PATH_MAX];
    if (snprintf(sock, sizeof sock, "%s/shm.sock", dir) >= (int)sizeof sock) return;
    if (lstat(sock, &st) == 0) {
        if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid() || !nobody_listens(sock)) return;
        unlink(sock);
    }
    rmdir(dir); /* fails, harmlessly, if anything else is in there */
}

static void remove_left_behind_dirs(void) {
    DIR *parent = opendir(MADE_DIR_PARENT);
    if (!parent) return;
    time_t now = time(NULL);
    const size_t prefix = sizeof MADE_DIR_PREFIX - 1;
    struct dirent *entry;
    while ((entry = readdir(parent)) != NULL) {
        if (strncmp(entry->d_name, MADE_DIR_PREFIX, prefix) != 0 ||
            strlen(entry->d_name) != prefix + 6)
            continue;
        char dir[SHM_SOCKET_PATH_MAX];
        snprintf(dir, sizeof dir, MADE_DIR_PARENT "/%s", entry->d_name);
        remove_if_left_behind(dir, now);
    }
    closedir(parent);
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
    remove_left_behind_dirs();
    snprintf(out->made_dir, sizeof out->made_dir, MADE_DIR_PARENT "/" MADE_DIR_PREFIX "XXXXXX");
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
