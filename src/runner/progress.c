/* The progress line: done, failed, running, total and an ETA.
 *
 * On a terminal it redraws one line in place; in a batch log (Slurm, CI) it
 * prints a full line every interval so the log stays readable. The ETA
 * scales elapsed time by the share of expected cost already finished, which
 * is steadier than counting jobs when costs differ by orders of magnitude.
 */
#include "fixgrid/runner.h"

#include <stdio.h>
#include <unistd.h>

void fg_progress_init(fg_progress *p, double interval, double total_cost)
{
    p->tty = isatty(STDERR_FILENO);
    p->interval = p->tty ? 0.5 : (interval > 0 ? interval : 30);
    p->start = fg_now();
    p->last = p->start;
    p->done_cost = 0;
    p->total_cost = total_cost;
    p->printed = 0;
}

static void format_duration(double s, char *out, size_t len)
{
    if (s < 0) {
        snprintf(out, len, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, len, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(out, len, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, len, "%lds", t);
}

void fg_progress_show(fg_progress *p, int done, int failed, int running, int total, int force)
{
    double now = fg_now();
    if (!force && now - p->last < p->interval) return;
    p->last = now;
    double elapsed = now - p->start, eta = -1;
    double frac =
        p->total_cost > 0 ? p->done_cost / p->total_cost : (total ? (double)done / total : 1);
    if (frac > 0 && frac <= 1) eta = elapsed * (1 - frac) / frac;
    if (done >= total) eta = 0;
    char el[32], et[32];
    format_duration(elapsed, el, sizeof el);
    format_duration(eta, et, sizeof et);
    fprintf(stderr, "%sprogress: %d/%d done, %d failed, %d running, elapsed %s, eta %s%s",
            p->tty ? "\r\033[K" : "", done, total, failed, running, el, et, p->tty ? "" : "\n");
    fflush(stderr);
    p->printed = 1;
}

void fg_progress_clear(fg_progress *p)
{
    if (p->tty && p->printed) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}
