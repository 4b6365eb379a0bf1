/* seccomp_probe: makes each syscall named on its command line once and
 * prints "<name>=<errno>", 0 when the call succeeded. Built static at test
 * time (e2e/security/test_seccomp_default.py) and run both on the host and
 * inside containers, so a refusal inside can be told from a kernel that
 * lacks the call. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif

static long pidfd_self(void) { return syscall(SYS_pidfd_open, getpid(), 0); }

static long probe(const char *name) {
    if (!strcmp(name, "io_uring_setup")) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        long fd = syscall(SYS_io_uring_setup, 4, &p);
        if (fd >= 0) close((int)fd);
        return fd;
    }
    if (!strcmp(name, "kcmp"))
        return syscall(SYS_kcmp, getpid(), getpid(), KCMP_VM, 0, 0);
    if (!strcmp(name, "pidfd_getfd")) {
        long pidfd = pidfd_self();
        if (pidfd < 0) return pidfd;
        long fd = syscall(SYS_pidfd_getfd, pidfd, 1, 0);
        int saved = errno;
        close((int)pidfd);
        if (fd >= 0) close((int)fd);
        errno = saved;
        return fd;
    }
    if (!strcmp(name, "process_madvise")) {
        long pidfd = pidfd_self();
        if (pidfd < 0) return pidfd;
        void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED) return -1;
        ((char *)page)[0] = 1;
        struct iovec iov = { page, 4096 };
        long n = syscall(SYS_process_madvise, pidfd, &iov, 1, MADV_COLD, 0);
        int saved = errno;
        close((int)pidfd);
        errno = saved;
        return n;
    }
    int family = -1, type = SOCK_STREAM;
    if (!strcmp(name, "socket_unix")) family = AF_UNIX;
    if (!strcmp(name, "socket_inet")) family = AF_INET;
    if (!strcmp(name, "socket_vsock")) family = AF_VSOCK;
    if (!strcmp(name, "socket_alg")) { family = AF_ALG; type = SOCK_SEQPACKET; }
    if (family >= 0) {
        long fd = socket(family, type, 0);
        if (fd >= 0) close((int)fd);
        return fd;
    }
    errno = EINVAL;
    return -2;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long r = probe(argv[i]);
        if (r == -2) { fprintf(stderr, "unknown probe %s\n", argv[i]); return 2; }
        printf("%s=%d\n", argv[i], r < 0 ? errno : 0);
    }
    return 0;
}
