/* Host privileges a container's root tries to use (e2e/security/test_userns_privilege.py).
 * Each line: "<what>=ok" or "<what>=<errno name>". With "sysctl" as argv[1] it also
 * remounts /proc/sys read-write and writes 1 to vm.drop_caches (never run on the host's
 * own namespaces by the test: only in a pod with a user namespace). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void report(const char *what, int rc) {
    printf("%s=%s\n", what, rc == 0 ? "ok" : strerrorname_np(errno));
}

int main(int argc, char **argv) {
    /* An empty image: with CAP_SYS_MODULE over the host this is ENOEXEC, else EPERM. */
    report("init_module", (int)syscall(SYS_init_module, NULL, 0UL, ""));
    unlink("/tmp/blk");
    /* The block device 7:0 (loop0); only the node is made, never opened. */
    report("mknod_block", mknod("/tmp/blk", S_IFBLK | 0600, makedev(7, 0)));
    unlink("/tmp/blk");
    if (argc > 1 && strcmp(argv[1], "sysctl") == 0) {
        report("remount_proc_sys_rw",
               mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL));
        int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
        report("open_drop_caches", fd < 0 ? -1 : 0);
        if (fd >= 0) {
            report("write_drop_caches", write(fd, "1", 1) == 1 ? 0 : -1);
            close(fd);
        }
    }
    return 0;
}
