/* core/watchdog.c: see watchdog.h. The last beat is a monotonic-clock time in nanoseconds in an
 * atomic; the thread sleeps on a condition variable so watchdog_stop wakes it at once. */
#include "core/watchdog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"

#define MAX_HOOKS 8

static struct {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, stop, rank;
    atomic_int tripped; /* set before the abort hooks run (watchdog_tripped) */
    double deadline_s;
    atomic_llong last_ns;
    int n;
    WatchdogPoll poll[MAX_HOOKS];
    WatchdogHook hook[MAX_HOOKS];
    void *arg[MAX_HOOKS];
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void watchdog_beat(void) { atomic_store(&g.last_ns, now_ns()); }

int watchdog_tripped(void) { return atomic_load(&g.tripped); }

void watchdog_wait_exit(void) {
    if (!watchdog_tripped()) return;
    for (;;) pause(); /* the watchdog thread is running the abort hooks; its _exit(75) ends the process */
}

void watchdog_add(WatchdogPoll poll, WatchdogHook on_trip, void *arg) {
    pthread_mutex_lock(&g.mu);
    CHECK(g.n < MAX_HOOKS, "watchdog: more than %d hooks", MAX_HOOKS);
    g.poll[g.n] = poll, g.hook[g.n] = on_trip, g.arg[g.n] = arg;
    g.n++;
    pthread_mutex_unlock(&g.mu);
}

static void trip(const char *why) {
    fprintf(stderr, "[cispo rank %d] watchdog: %s; aborting communicators and exiting with status %d\n", g.rank, why,
            CISPO_EXIT_WATCHDOG);
    fflush(stderr);
    atomic_store(&g.tripped, 1);
    for (int i = 0; i < g.n; i++)
        if (g.hook[i]) g.hook[i](g.arg[i]);
    _exit(CISPO_EXIT_WATCHDOG);
}

static void *watch(void *unused) {
    double tick = g.deadline_s / 4 < 1.0 ? g.deadline_s / 4 : 1.0;
    pthread_mutex_lock(&g.mu);
    while (!g.stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ns = until.tv_nsec + (long long)(tick * 1e9);
        until.tv_sec += ns / 1000000000LL;
        until.tv_nsec = ns % 1000000000LL;
        pthread_cond_timedwait(&g.cv, &g.mu, &until);
        if (g.stop) break;
        char why[300];
        for (int i = 0; i < g.n; i++)
            if (g.poll[i] && g.poll[i](g.arg[i], why, sizeof why)) trip(why);
        double idle = (now_ns() - atomic_load(&g.last_ns)) / 1e9;
        if (idle > g.deadline_s) {
            snprintf(why, sizeof why, "no progress for %.1f s (deadline dist.timeout_s = %g s): a rank is hung or dead",
                     idle, g.deadline_s);
            trip(why);
        }
    }
    pthread_mutex_unlock(&g.mu);
    return NULL;
}

int watchdog_start(double deadline_s, int rank) {
    if (deadline_s <= 0 || g.running) return 0;
    g.deadline_s = deadline_s;
    g.rank = rank;
    g.stop = 0;
    watchdog_beat();
    if (pthread_create(&g.th, NULL, watch, NULL) != 0) return err_set(ERR_IO, "watchdog: cannot start its thread");
    g.running = 1;
    return 0;
}

void watchdog_stop(void) {
    if (!g.running) return;
    pthread_mutex_lock(&g.mu);
    g.stop = 1;
    pthread_cond_signal(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(g.th, NULL);
    g.running = 0;
}
