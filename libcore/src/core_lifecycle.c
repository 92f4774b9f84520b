/* core_lifecycle.c — signal flags, a self-pipe, and the grace-period clock. */
#include "tributary/core_lifecycle.h"
#include "tributary/core_common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;      /* number of stop requests */
static volatile sig_atomic_t g_signal;
static atomic_llong g_stop_at = 0;        /* mono ms of the first request */
static int64_t g_grace_ms = 30000;
static int g_pipe[2] = { -1, -1 };
static bool g_installed;
static struct sigaction g_old_term, g_old_int, g_old_pipe;

static void on_signal(int sig)
{
    int saved = errno;

    g_signal = sig;
    g_stop++;
    if (g_pipe[1] >= 0) {
        ssize_t n = write(g_pipe[1], "x", 1);
        (void)n;
    }
    errno = saved;
}

int core_lifecycle_install(int64_t grace_ms, char *errstr, size_t errstr_size)
{
    struct sigaction sa;

    g_grace_ms = grace_ms;
    if (g_installed)
        return CORE_OK;
    if (pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        core_errstr(errstr, errstr_size, "lifecycle: pipe: %s", strerror(errno));
        return CORE_ERR_IO;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &g_old_term);
    sigaction(SIGINT, &sa, &g_old_int);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &g_old_pipe);
    g_installed = true;
    return CORE_OK;
}

void core_lifecycle_reset(void)
{
    if (g_installed) {
        sigaction(SIGTERM, &g_old_term, NULL);
        sigaction(SIGINT, &g_old_int, NULL);
        sigaction(SIGPIPE, &g_old_pipe, NULL);
        close(g_pipe[0]);
        close(g_pipe[1]);
        g_pipe[0] = g_pipe[1] = -1;
        g_installed = false;
    }
    g_stop = 0;
    g_signal = 0;
    atomic_store(&g_stop_at, 0);
}

/* Record when the first stop request was seen (outside the handler). */
static void note_stop_time(void)
{
    long long zero = 0;

    if (g_stop && atomic_load(&g_stop_at) == 0)
        atomic_compare_exchange_strong(&g_stop_at, &zero, (long long)core_mono_ms());
}

bool core_lifecycle_stopping(void)
{
    note_stop_time();
    return g_stop > 0;
}

bool core_lifecycle_forced(void)
{
    return g_stop > 1;
}

void core_lifecycle_request_stop(void)
{
    g_stop++;
    note_stop_time();
    if (g_pipe[1] >= 0) {
        ssize_t n = write(g_pipe[1], "x", 1);
        (void)n;
    }
}

int core_lifecycle_signal(void)
{
    return g_signal;
}

int64_t core_lifecycle_remaining_ms(void)
{
    int64_t at, left;

    note_stop_time();
    if (!g_stop)
        return g_grace_ms;
    if (g_stop > 1)
        return 0;
    at = (int64_t)atomic_load(&g_stop_at);
    left = at + g_grace_ms - core_mono_ms();
    return left > 0 ? left : 0;
}

bool core_lifecycle_wait(int64_t timeout_ms)
{
    int64_t deadline = core_mono_ms() + timeout_ms;

    while (!core_lifecycle_stopping()) {
        int64_t left = deadline - core_mono_ms();
        if (left <= 0)
            break;
        if (g_pipe[0] >= 0) {
            struct pollfd pfd = { .fd = g_pipe[0], .events = POLLIN };
            poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
        } else {
            usleep((useconds_t)((left > 100 ? 100 : left) * 1000));
        }
    }
    return core_lifecycle_stopping();
}

int core_lifecycle_fd(void)
{
    return g_pipe[0];
}
