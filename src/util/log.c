/* Logging to stderr with a level and a per-process prefix (rank or job). */
#include "fixgrid/util.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static fg_log_level log_level = FG_LOG_INFO;
static char log_prefix[64] = "fixgrid";

void fg_log_set_level(fg_log_level lvl)
{
    log_level = lvl;
}

void fg_log_set_prefix(const char *prefix)
{
    snprintf(log_prefix, sizeof log_prefix, "%s", prefix ? prefix : "fixgrid");
}

void fg_log(fg_log_level lvl, const char *fmt, ...)
{
    static const char *const names[FG_LOG_COUNT] = {"debug", "info", "warn", "error"};
    if (lvl < log_level) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[%s] %s: %s\n", log_prefix, names[lvl], line);
}
