/* LD_PRELOAD shim for the power-cut test: logs every write to a SQLite "-wal" file and every sync of one.
 *
 * A power cut keeps what was synced and may lose or tear anything written since. The log (WAL_SYNC_LOG) says which
 * is which: "w OFFSET LENGTH" before each pwrite64 to a WAL, "s" after each fsync/fdatasync of one has returned. The
 * lines are appended with O_APPEND, so they outlive a kill -9 of the process (they are in the kernel already).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int log_fd = -1;

static int is_wal(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 4) return 0;
    path[n] = 0;
    return strcmp(path + n - 4, "-wal") == 0;
}

static void note(const char *line) {
    if (log_fd < 0) {
        const char *name = getenv("WAL_SYNC_LOG");
        if (name == NULL) return;
        log_fd = open(name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (log_fd < 0) return;
    }
    ssize_t ignored = write(log_fd, line, strlen(line));
    (void)ignored;
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (real == NULL) real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    if (is_wal(fd)) { /* logged before the write: a write the kill cut short is still counted as unsynced */
        char line[64];
        snprintf(line, sizeof line, "w %lld %lld\n", (long long)offset, (long long)count);
        note(line);
    }
    return real(fd, buf, count, offset);
}

static int synced(int fd, int result) {
    if (result == 0 && is_wal(fd)) note("s\n");
    return result;
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return synced(fd, real(fd));
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return synced(fd, real(fd));
}
