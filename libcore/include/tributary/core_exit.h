/* core_exit.h — the exit codes of every tributary program, in one table.
 *
 * The codes are the BSD sysexits(3) ones a supervisor already knows how to
 * read (64..78), plus 0. A service's main() returns one of them; nothing
 * below main() exits. What each means for a service (and whether running
 * it again helps) is in docs/OPERATIONS.md, section "Exit codes".
 *
 * core_exit_name() gives each code's short name for logs and summaries
 * ("config", "unavailable"), from the same table. */
#ifndef TRIBUTARY_CORE_EXIT_H
#define TRIBUTARY_CORE_EXIT_H

#define CORE_EX_OK 0
#define CORE_EX_USAGE 64       /* malformed command line */
#define CORE_EX_DATAERR 65     /* input refused in part (lines rejected, a header refused) */
#define CORE_EX_NOINPUT 66     /* the input cannot be read (missing, truncated, not a file) */
#define CORE_EX_UNAVAILABLE 69 /* a dependency never answered (startup.timeout.ms, outages) */
#define CORE_EX_SOFTWARE 70    /* internal error */
#define CORE_EX_TEMPFAIL 75    /* stopped before the end (a signal): run again to resume */
#define CORE_EX_CONFIG 78      /* bad configuration (a key, a value, a rules file) */

/** @returns the code's short name ("ok", "usage", "dataerr", "noinput",
 * "unavailable", "software", "tempfail", "config"), or "unknown". */
const char *core_exit_name(int code);

#endif
