/* fd_probe: reports what a container's process holds, without opening
 * anything itself (no opendir: every fd it finds is one it inherited).
 * Prints "fd=<n> <link>" for each open fd below 1024, "cwd=<getcwd()>" or
 * "cwd!=<errno>" when getcwd fails (an unreachable cwd: outside the root),
 * then "done". With "wait" it then sleeps until killed, so the host can
 * inspect /proc/<pid>/fd of the same process. Built static at test time. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char path[64], link[4096];
    for (int fd = 0; fd < 1024; fd++) {
        if (fcntl(fd, F_GETFD) < 0) continue;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        link[n < 0 ? 0 : n] = 0;
        printf("fd=%d %s\n", fd, n < 0 ? strerror(errno) : link);
    }
    if (getcwd(link, sizeof link)) printf("cwd=%s\n", link);
    else printf("cwd!=%d\n", errno);
    printf("done\n");
    fflush(stdout);
    if (argc > 1 && !strcmp(argv[1], "wait"))
        for (;;) pause();
    return 0;
}
