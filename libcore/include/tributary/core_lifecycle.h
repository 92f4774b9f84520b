/* core_lifecycle.h — SIGTERM/SIGINT → stop taking work, drain, commit, exit 0
 * within a grace period.
 *
 * The signal handler only sets a flag (and writes to a self-pipe so a
 * poll() can wake up). Services check core_lifecycle_stopping() in their
 * loop, stop consuming, then drain with core_lifecycle_remaining_ms() as
 * their time budget. A second signal asks to give up draining at once. */
#ifndef TRIBUTARY_CORE_LIFECYCLE_H
#define TRIBUTARY_CORE_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Install handlers for SIGTERM and SIGINT, ignore SIGPIPE. Idempotent. */
int core_lifecycle_install(int64_t grace_ms, char *errstr, size_t errstr_size);
/* Restore the state after install (tests). */
void core_lifecycle_reset(void);

bool core_lifecycle_stopping(void);
/* True after a second signal: drain no more. */
bool core_lifecycle_forced(void);
/* Ask to stop, as a signal would (e.g. on a fatal error). */
void core_lifecycle_request_stop(void);
/* The signal that asked to stop, 0 if none or programmatic. */
int core_lifecycle_signal(void);

/* Ms left of the grace period since the stop request (grace_ms before a
 * stop is requested; 0 once forced or elapsed). */
int64_t core_lifecycle_remaining_ms(void);

/* Has the stop's grace period run out (or a second signal forced it)?
 * For work that can be abandoned between two steps (a batch write: its
 * offsets are not committed, the records come again). When true and
 * errstr is set, errstr says so ("stopping: shutdown.grace.ms is over, the
 * batch is abandoned"). Any thread. */
bool core_lifecycle_give_up(char *errstr, size_t errstr_size);

/* Sleep up to timeout_ms, waking at once when a stop is requested.
 * Returns true when stopping. */
bool core_lifecycle_wait(int64_t timeout_ms);

/* A file descriptor that becomes readable when a stop is requested (for
 * poll loops); -1 before install. */
int core_lifecycle_fd(void);

/* Name what may hold a stop up ("closing the Kafka consumer"), for the
 * watchdog; what: a string literal, NULL for nothing in particular. Returns
 * the stage it replaces, to be put back when done. */
const char *core_lifecycle_stage(const char *what);

/* Start a thread that warns while a stop overruns: grace_ms + overrun_ms
 * after the request, and every overrun_ms after that, it logs the stage the
 * service is still in (a stuck main thread cannot say it). Idempotent. */
int core_lifecycle_watchdog_start(int64_t overrun_ms, char *errstr, size_t errstr_size);
/* Stop and join that thread (core_lifecycle_reset() does it too). */
void core_lifecycle_watchdog_stop(void);

#endif
