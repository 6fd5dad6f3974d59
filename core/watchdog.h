/* core/watchdog.h: a deadline on progress for multi-rank runs (RELIABILITY.md F2).
 *
 * A thread wakes every quarter deadline (at most every second) and compares the time of the last
 * watchdog_beat() with the deadline. When a rank makes no progress for that long (a peer hung, a
 * collective that never completes: NCCL has no timeout of its own), it prints which rank tripped
 * and how long it waited, runs the registered abort hooks (e.g. ncclCommAbort on every NCCL
 * communicator, so no GPU kernel keeps spinning) and ends the process with CISPO_EXIT_WATCHDOG,
 * which mpirun turns into the job's exit status. Hooks may also be polled: they run from the
 * watchdog thread, so they must be async-safe with respect to the main thread (NCCL's abort is).
 */
#ifndef CISPO_CORE_WATCHDOG_H
#define CISPO_CORE_WATCHDOG_H

enum { CISPO_EXIT_WATCHDOG = 75 };

/* Start the thread with `deadline_s` (<= 0: no watchdog); `rank` is named in the message. */
int watchdog_start(double deadline_s, int rank);
/* Record progress now. Cheap (one atomic store); call after every completed step and transfer. */
void watchdog_beat(void);
/* Non-zero once the watchdog has fired (it is aborting communicators and will exit with
 * CISPO_EXIT_WATCHDOG). A collective that fails because of that abort calls watchdog_wait_exit(), which
 * never returns when the watchdog fired, so the job's exit status is the watchdog's, not the error's. */
int watchdog_tripped(void);
void watchdog_wait_exit(void);
/* Called on every tick from the watchdog thread; a non-zero return trips it at once with `why`
 * (e.g. NCCL reporting an asynchronous error). */
typedef int (*WatchdogPoll)(void *arg, char *why, int cap);
typedef void (*WatchdogHook)(void *arg);
/* Register a poll and/or an abort hook (up to 8 each; NULL skips). */
void watchdog_add(WatchdogPoll poll, WatchdogHook on_trip, void *arg);
/* Stop and join the thread (idempotent). */
void watchdog_stop(void);

#endif
