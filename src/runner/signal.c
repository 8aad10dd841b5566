/* Stop requests: SIGTERM (Slurm's last word, scancel), SIGINT (^C) and SIGUSR1
 * (Slurm's --signal warning before the time limit) only set a flag; the
 * scheduler and worker loops poll it, stop dispatching and let running jobs
 * finish within the grace period. The flag is process-global by necessity: a
 * signal handler has no user pointer. SIGPIPE is ignored so a closed result
 * pipe is an error return, not a death. */
#include "fixgrid/runner.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    if (!stop_signal) stop_signal = sig;
}

void fg_runner_signal_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void fg_runner_signal_restore(void)
{
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
}

int fg_runner_signal_pending(void)
{
    return stop_signal;
}
