/* Logging to stderr with a level and a per-process prefix (rank or job).
 * The level starts at info; FIXGRID_LOG=debug|info|warn|error sets it (read
 * once, at the first line logged), fg_log_set_level overrides both. */
#include "fixgrid/util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static fg_log_level log_level = FG_LOG_INFO;
static int level_set; /* by fg_log_set_level or from FIXGRID_LOG */
static char log_prefix[64] = "fixgrid";

void fg_log_set_level(fg_log_level lvl)
{
    log_level = lvl;
    level_set = 1;
}

static void level_from_env(void)
{
    static const char *const names[FG_LOG_COUNT] = {"debug", "info", "warn", "error"};
    const char *e = getenv("FIXGRID_LOG");
    level_set = 1;
    if (!e) return;
    for (int i = 0; i < FG_LOG_COUNT; i++)
        if (!strcmp(e, names[i])) log_level = (fg_log_level)i;
}

void fg_log_set_prefix(const char *prefix)
{
    snprintf(log_prefix, sizeof log_prefix, "%s", prefix ? prefix : "fixgrid");
}

void fg_log(fg_log_level lvl, const char *fmt, ...)
{
    static const char *const names[FG_LOG_COUNT] = {"debug", "info", "warn", "error"};
    if (!level_set) level_from_env();
    if (lvl < log_level) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[%s] %s: %s\n", log_prefix, names[lvl], line);
}
