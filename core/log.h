/* core/log.h: leveled logging to stderr and a progress line.
 *
 * Log lines go to stderr as "[cispo LEVEL] message" (with "rank R" once a rank is set). The level
 * comes from log_set_level() or, if never set, the CISPO_LOG environment variable
 * (debug|info|warn|error; default info).
 *
 * Progress: one line that is redrawn in place ("\r") when stderr is a terminal, and printed as a
 * plain line at most every `min_interval_s` seconds otherwise (CI logs stay readable).
 */
#ifndef CISPO_CORE_LOG_H
#define CISPO_CORE_LOG_H

#include <stdio.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 } LogLevel;

void log_set_level(LogLevel level);
LogLevel log_get_level(void);
void log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

typedef struct {
    char label[64];
    long total;          /* number of units of work; <= 0 if unknown */
    double t_start;      /* seconds, monotonic */
    double t_last_print; /* seconds, monotonic */
    double min_interval_s;
    int tty;             /* stderr is a terminal */
    int drawn;           /* a line is currently drawn in place */
} Progress;

/* Monotonic wall clock in seconds. */
double time_now_s(void);

void progress_start(Progress *p, const char *label, long total);
/* Report `done` units; `extra` (may be NULL) is appended, e.g. "reward 0.41 acc 0.37".
 * Prints "label done/total [pct] elapsed ETA extra". Rate-limited unless done == total. */
void progress_update(Progress *p, long done, const char *extra);
/* Finish the line (newline on a terminal). */
void progress_end(Progress *p);

#endif
