/* testutil.c — helpers shared by the Check test binaries. */
#include "testutil.h"
#include "tributary/core_common.h"
#include "tributary/core_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int tu_run(Suite **suites, size_t n)
{
    SRunner *sr = srunner_create(suites[0]);
    int failed;

    for (size_t i = 1; i < n; i++)
        srunner_add_suite(sr, suites[i]);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

char *tu_write_temp(const char *text)
{
    char *path = strdup("/tmp/tributary-test-XXXXXX");
    int fd;
    size_t len = strlen(text);

    if (!path)
        return NULL;
    fd = mkstemp(path);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        if (fd >= 0)
            close(fd);
        free(path);
        return NULL;
    }
    close(fd);
    return path;
}

static char *read_fd_all(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);

    if (!buf)
        return NULL;
    for (;;) {
        ssize_t n;
        if (len + 1 >= cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown)
                break;
            buf = grown;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

char *tu_capture_log(void (*fn)(void *), void *arg)
{
    char path[] = "/tmp/tributary-log-XXXXXX";
    int fd = mkstemp(path);
    char *text;

    if (fd < 0)
        return NULL;
    unlink(path);
    core_log_set_fd(fd);
    fn(arg);
    core_log_set_fd(2);
    lseek(fd, 0, SEEK_SET);
    text = read_fd_all(fd);
    close(fd);
    return text;
}

const char *tu_build_dir(void)
{
    const char *b = getenv("TRIBUTARY_BUILD");
    return b && *b ? b : "build";
}

const char *tu_proto_dir(void)
{
    const char *p = getenv("TB_PROTO_DIR");
#ifdef TB_PROTO_DIR
    if (!p || !*p)
        p = TB_PROTO_DIR;
#endif
    return p;
}

int tu_run_cmd(char *const argv[], char *const envp[], char **out, char **err, int timeout_ms)
{
    int po[2], pe[2], status = 0;
    pid_t pid;
    char *obuf = NULL, *ebuf = NULL;
    size_t olen = 0, elen = 0;
    int64_t deadline = core_mono_ms() + timeout_ms;
    bool killed = false;

    if (pipe(po) || pipe(pe))
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        close(po[1]);
        close(pe[1]);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    {
        struct pollfd pfd[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
        int open_fds = 2;
        while (open_fds > 0) {
            int64_t left = deadline - core_mono_ms();
            if (left <= 0 && !killed) {
                kill(pid, SIGKILL);
                killed = true;
            }
            if (poll(pfd, 2, left > 0 ? (int)left : 1000) < 0 && errno != EINTR)
                break;
            for (int i = 0; i < 2; i++) {
                char buf[4096];
                ssize_t n;
                char **b = i == 0 ? &obuf : &ebuf;
                size_t *l = i == 0 ? &olen : &elen;
                if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                n = read(pfd[i].fd, buf, sizeof(buf));
                if (n <= 0) {
                    close(pfd[i].fd);
                    pfd[i].fd = -1;
                    open_fds--;
                    continue;
                }
                char *grown = realloc(*b, *l + (size_t)n + 1);
                if (!grown)
                    continue;
                *b = grown;
                memcpy(*b + *l, buf, (size_t)n);
                *l += (size_t)n;
                (*b)[*l] = '\0';
            }
        }
    }
    waitpid(pid, &status, 0);
    if (out)
        *out = obuf ? obuf : strdup("");
    else
        free(obuf);
    if (err)
        *err = ebuf ? ebuf : strdup("");
    else
        free(ebuf);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

const char *tu_unique(void)
{
    static char buf[64];
    static int counter;

    snprintf(buf, sizeof(buf), "%d_%d", (int)getpid(), ++counter);
    return buf;
}

/* ---- a TCP forwarder: a server that comes and goes ------------------------ */

/* One connection: bytes both ways until either side closes. */
static void proxy_pipe(int a, int b)
{
    struct pollfd pfd[2] = { { a, POLLIN, 0 }, { b, POLLIN, 0 } };
    char buf[16384];

    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        for (int i = 0; i < 2; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(pfd[i].fd, buf, sizeof(buf));
            if (n <= 0)
                return;
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(pfd[1 - i].fd, buf + off, (size_t)(n - off));
                if (w <= 0)
                    return;
                off += w;
            }
        }
    }
}

int tu_free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

pid_t tu_proxy_start(int listen_port, int target_port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int one = 1, fd, ready[2];
    char ok = 0;
    pid_t pid;

    if (pipe(ready) != 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(ready[0]);
        close(ready[1]);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0); /* tu_proxy_stop kills the group: every connection too */
        signal(SIGCHLD, SIG_IGN);
        close(ready[0]);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons((uint16_t)listen_port);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 64) == 0;
        if (write(ready[1], &ok, 1) != 1 || !ok)
            _exit(1);
        close(ready[1]);
        for (;;) {
            int c = accept(fd, NULL, NULL);
            if (c < 0)
                continue;
            if (fork() == 0) {
                struct sockaddr_in t = { .sin_family = AF_INET };
                int s = socket(AF_INET, SOCK_STREAM, 0);
                close(fd);
                t.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                t.sin_port = htons((uint16_t)target_port);
                if (s >= 0 && connect(s, (struct sockaddr *)&t, sizeof(t)) == 0)
                    proxy_pipe(c, s);
                _exit(0);
            }
            close(c);
        }
    }
    close(ready[1]);
    if (read(ready[0], &ok, 1) != 1 || !ok) {
        close(ready[0]);
        waitpid(pid, NULL, 0);
        return -1;
    }
    close(ready[0]);
    return pid;
}

void tu_proxy_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
}
