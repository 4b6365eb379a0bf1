/* tinyweb: the web server of crid's critest look-alike images (nginx, httpd,
 * hostnet-nginx). One process, one connection at a time: enough for specs that
 * GET a page, read a pid file and look at /proc/PID/cmdline.
 *
 * usage: tinyweb PORT INDEX_FILE PID_FILE|- BANNER TITLE|-
 * With a TITLE, it re-executes itself with argv[0] = TITLE first, so that
 * /proc/PID/cmdline reads like nginx's ("nginx: master process ...") while
 * /proc/PID/comm stays the binary's name (what `pidof` matches).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char page[65536];
static size_t page_len;

static void load_page(const char *path) {
    int fd = open(path, O_RDONLY);
    ssize_t n;
    if (fd < 0) { perror(path); exit(1); }
    n = read(fd, page, sizeof(page));
    if (n < 0) { perror(path); exit(1); }
    page_len = (size_t)n;
    close(fd);
}

static void serve(int conn) {
    char req[4096], head[256];
    ssize_t n = read(conn, req, sizeof(req));
    int len;
    if (n <= 0) return;
    len = snprintf(head, sizeof(head),
                   "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n", page_len);
    if (write(conn, head, (size_t)len) < 0) return;
    if (strncmp(req, "HEAD ", 5) != 0 && write(conn, page, page_len) < 0) return;
}

int main(int argc, char **argv) {
    int fd, one = 1;
    struct sockaddr_in addr;
    if (argc != 6) {
        fprintf(stderr, "usage: %s PORT INDEX PIDFILE|- BANNER TITLE|-\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[5], "-") != 0 && strcmp(argv[0], argv[5]) != 0) {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0) { perror("readlink"); return 1; }
        self[n] = '\0';
        argv[0] = argv[5];
        execv(self, argv);
        perror("execv");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    load_page(argv[2]);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) { perror("bind"); return 1; }
    if (listen(fd, 64) < 0) { perror("listen"); return 1; }
    if (strcmp(argv[3], "-") != 0) {
        FILE *pid = fopen(argv[3], "w");
        if (pid == NULL) { perror(argv[3]); return 1; }
        fprintf(pid, "%d\n", (int)getpid());
        fclose(pid);
    }
    printf("%s\n", argv[4]);
    fflush(stdout);
    for (;;) {
        int conn = accept(fd, NULL, NULL);
        if (conn < 0) continue;
        serve(conn);
        close(conn);
    }
}
