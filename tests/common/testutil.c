/* testutil.c — helpers shared by the Check test binaries. */
#include "testutil.h"
#include "tributary/core_common.h"
#include "tributary/core_log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
