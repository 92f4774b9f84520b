/* core_exit.c — the names of the exit codes (core_exit.h). */
#include "tributary/core_exit.h"

#include <stddef.h>

static const struct {
    int code;
    const char *name;
} exit_codes[] = {
    { CORE_EX_OK, "ok" },
    { CORE_EX_USAGE, "usage" },
    { CORE_EX_DATAERR, "dataerr" },
    { CORE_EX_NOINPUT, "noinput" },
    { CORE_EX_UNAVAILABLE, "unavailable" },
    { CORE_EX_SOFTWARE, "software" },
    { CORE_EX_TEMPFAIL, "tempfail" },
    { CORE_EX_CONFIG, "config" },
};

const char *core_exit_name(int code)
{
    for (size_t i = 0; i < sizeof(exit_codes) / sizeof(exit_codes[0]); i++)
        if (exit_codes[i].code == code)
            return exit_codes[i].name;
    return "unknown";
}
