/* Swaps two names in a directory forever with renameat2(RENAME_EXCHANGE):
 * the racing half of the CVE-2021-30465 test (test_mount_races.py), run in a
 * container on a volume another container's mount target goes through. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: swap_probe DIR A B\n");
        return 2;
    }
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        perror("open");
        return 1;
    }
    for (;;) {
        if (syscall(SYS_renameat2, dir, argv[2], dir, argv[3], RENAME_EXCHANGE) < 0) {
            perror("renameat2");
            return 1;
        }
    }
}
