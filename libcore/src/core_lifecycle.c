/* core_lifecycle.c — signal flags, a self-pipe, the grace-period clock, and
 * a watchdog for stops that overrun it. */
#include "tributary/core_lifecycle.h"
#include "tributary/core_common.h"
#include "tributary/core_log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;      /* number of stop requests */
static volatile sig_atomic_t g_signal;
static atomic_llong g_stop_at = 0;        /* mono ms of the first request */
static int64_t g_grace_ms = 30000;
static int g_pipe[2] = { -1, -1 };
static bool g_installed;
static struct sigaction g_old_term, g_old_int, g_old_pipe;
static _Atomic(const char *) g_stage;
static pthread_t g_wd;
static bool g_wd_on;
static atomic_bool g_wd_quit;
static int64_t g_wd_overrun_ms;

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
    core_lifecycle_watchdog_stop();
    atomic_store(&g_stage, NULL);
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

bool core_lifecycle_give_up(char *errstr, size_t errstr_size)
{
    if (!core_lifecycle_stopping() || core_lifecycle_remaining_ms() > 0)
        return false;
    core_errstr(errstr, errstr_size, "stopping: shutdown.grace.ms is over, the batch is abandoned");
    return true;
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

const char *core_lifecycle_stage(const char *what)
{
    return atomic_exchange(&g_stage, what);
}

static void *watchdog_main(void *arg)
{
    int64_t next = 0;

    (void)arg;
    while (!atomic_load(&g_wd_quit)) {
        struct timespec ts = { 0, 100 * 1000000L };
        int64_t at, now;
        const char *stage;

        nanosleep(&ts, NULL);
        if (!core_lifecycle_stopping())
            continue;
        at = (int64_t)atomic_load(&g_stop_at);
        now = core_mono_ms();
        if (next == 0)
            next = at + g_grace_ms + g_wd_overrun_ms;
        if (now < next)
            continue;
        stage = atomic_load(&g_stage);
        core_log_warn("stop overruns shutdown.grace.ms: still busy",
                      CLF_S("stage", stage ? stage : "the service's own shutdown"),
                      CLF_I("stopping_for_ms", now - at), CLF_I("grace_ms", g_grace_ms),
                      CLF_B("forced", core_lifecycle_forced()));
        next = now + g_wd_overrun_ms;
    }
    return NULL;
}

int core_lifecycle_watchdog_start(int64_t overrun_ms, char *errstr, size_t errstr_size)
{
    int err;

    if (g_wd_on)
        return CORE_OK;
    g_wd_overrun_ms = overrun_ms > 0 ? overrun_ms : 1;
    atomic_store(&g_wd_quit, false);
    err = pthread_create(&g_wd, NULL, watchdog_main, NULL);
    if (err) {
        core_errstr(errstr, errstr_size, "lifecycle: watchdog thread: %s", strerror(err));
        return CORE_ERR_IO;
    }
    g_wd_on = true;
    return CORE_OK;
}

void core_lifecycle_watchdog_stop(void)
{
    if (!g_wd_on)
        return;
    atomic_store(&g_wd_quit, true);
    pthread_join(g_wd, NULL);
    g_wd_on = false;
}
