/* nonewprivs: installed setuid root in crid's critest look-alike image.
 * Prints the effective uid, which is 0 unless no_new_privs kept the setuid
 * bit from taking effect. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("Effective uid: %d\n", (int)geteuid());
    return 0;
}
