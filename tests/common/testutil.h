/* testutil.h — helpers shared by the Check test binaries. */
#ifndef TRIBUTARY_TESTUTIL_H
#define TRIBUTARY_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <sys/types.h>

/* Run the suites, print Check's summary, return the process exit status. */
int tu_run(Suite **suites, size_t n);

/* Write text to a new temp file; returns its malloc'd path (unlink + free). */
char *tu_write_temp(const char *text);

/* Capture what core_log writes while fn runs: returns malloc'd text. */
char *tu_capture_log(void (*fn)(void *), void *arg);

/* Where the build put binaries (env TRIBUTARY_BUILD, default "build"). */
const char *tu_build_dir(void);
/* Path of the proto folder (env TB_PROTO_DIR, else the compile-time one). */
const char *tu_proto_dir(void);

/* Run a command with an explicit environment; stdout and stderr captured
 * into malloc'd buffers (may be NULL); returns the exit status, or 128+sig. */
int tu_run_cmd(char *const argv[], char *const envp[], char **out, char **err, int timeout_ms);

/* A unique suffix for names in this run: "<pid>_<counter>". */
const char *tu_unique(void);

/* A loopback port nothing listens on right now (-1 on failure). */
int tu_free_port(void);

/* A TCP forwarder from 127.0.0.1:listen_port to 127.0.0.1:target_port, in
 * a child process group: a server that can be taken away and brought back
 * (tu_proxy_stop cuts every connection through it). @returns its pid once
 * it listens, or -1. */
pid_t tu_proxy_start(int listen_port, int target_port);
void tu_proxy_stop(pid_t pid);

#endif
