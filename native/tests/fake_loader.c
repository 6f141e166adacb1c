/*
 * fake_loader.c - loads shm_module.so the way Redis does, into a fake server
 * that lacks one named API, to check that the module refuses to load with
 * one clear log line instead of crashing on first use.
 *
 * A module context starts with a pointer to the server's GetApi; ours answers
 * every name with a do-nothing stub, except the API named on the command
 * line, which it reports missing, and Log, which prints to stdout.
 *   usage: fake_loader <module.so> <missing API name, e.g. SetContextUser>
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *missing;

static int stub(void) { return 0; }

static void fake_log(void *ctx, const char *level, const char *fmt, ...) {
    (void)ctx;
    va_list ap;
    va_start(ap, fmt);
    printf("[%s] ", level);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static int fake_get_api(const char *name, void *slot) {
    const char *bare = strchr(name, '_');
    bare = bare ? bare + 1 : name;
    if (!strcmp(bare, missing)) return 1;
    void *fn = !strcmp(bare, "Log") ? (void *)fake_log : (void *)stub;
    memcpy(slot, &fn, sizeof fn);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    missing = argv[2];
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        printf("dlopen: %s\n", dlerror());
        return 2;
    }
    int (*onload)(void *, void **, int);
    void *sym = dlsym(lib, "RedisModule_OnLoad");
    memcpy(&onload, &sym, sizeof sym);
    struct { int (*get_api)(const char *, void *); } ctx = {fake_get_api};
    printf("rc=%d\n", onload(&ctx, NULL, 0));
    return 0;
}
