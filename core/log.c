/* core/log.c: leveled logging to stderr and a progress line (see log.h).
 *
 * Approach: each log line is formatted into a local buffer and written with one fputs, so lines
 * from different threads do not interleave. The level is read once from CISPO_LOG unless
 * log_set_level() was called first. When a progress line is drawn in place on a terminal, a log
 * line first clears it ("\r\033[K") so the two never share a row; the next progress_update redraws.
 *
 * Progress format (deterministic for given numbers; times are floored to whole seconds):
 *   "label 37/120 [31%] 0:12 ETA 0:26 extra"     total known
 *   "label 37 0:12 extra"                        total unknown (<= 0)
 * Percent is rounded but shows 100 only when done >= total; ETA = elapsed * (total - done) / done
 * ("ETA ?" while done is 0). The first update always prints; later ones at most every
 * min_interval_s (0.1 s on a terminal, 5 s otherwise; callers may change it after start).
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"

#define LOG_UNSET (-1)
#define PROGRESS_TTY_INTERVAL_S 0.1
#define PROGRESS_PLAIN_INTERVAL_S 5.0

static int g_level = LOG_UNSET;
static int g_progress_drawn; /* a TTY progress line occupies the current row of stderr */

static const char *const kLevelNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};

static int level_from_env(void) {
    const char *s = getenv("CISPO_LOG");
    if (s == NULL || s[0] == '\0') return LOG_INFO;
    if (strcasecmp(s, "debug") == 0) return LOG_DEBUG;
    if (strcasecmp(s, "info") == 0) return LOG_INFO;
    if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0) return LOG_WARN;
    if (strcasecmp(s, "error") == 0) return LOG_ERROR;
    if (strcasecmp(s, "off") == 0) return LOG_OFF;
    fprintf(stderr, "[cispo WARN] CISPO_LOG='%s' is not one of debug|info|warn|error|off; using info\n", s);
    return LOG_INFO;
}

void log_set_level(LogLevel level) {
    CHECK(level >= LOG_DEBUG && level <= LOG_OFF, "bad log level %d", (int)level);
    g_level = (int)level;
}

LogLevel log_get_level(void) {
    if (g_level == LOG_UNSET) g_level = level_from_env();
    return (LogLevel)g_level;
}

void log_msg(LogLevel level, const char *fmt, ...) {
    if (level < log_get_level() || level >= LOG_OFF) return;
    char line[4096];
    size_t n = 0;
    if (g_progress_drawn) n += (size_t)snprintf(line, sizeof(line), "\r\033[K");
    int rank = error_get_rank();
    if (rank >= 0)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "[cispo rank %d %s] ", rank, kLevelNames[level]);
    else
        n += (size_t)snprintf(line + n, sizeof(line) - n, "[cispo %s] ", kLevelNames[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    n = strlen(line);
    if (n == sizeof(line) - 1) n--; /* truncated: make room for the newline */
    line[n] = '\n';
    line[n + 1] = '\0';
    fputs(line, stderr);
    g_progress_drawn = 0;
}

double time_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "m:ss", or "h:mm:ss" from one hour on; negative or non-finite times print as 0:00. */
static void format_duration(char *buf, size_t cap, double seconds) {
    long s = (seconds >= 0.0 && seconds < 1e12) ? (long)seconds : 0;
    if (s >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
        snprintf(buf, cap, "%ld:%02ld", s / 60, s % 60);
}

static void format_progress(char *buf, size_t cap, const Progress *p, long done, double elapsed,
                            const char *extra) {
    char el[32], eta[32];
    format_duration(el, sizeof(el), elapsed);
    size_t n;
    if (p->total > 0) {
        long pct = (long)(100.0 * (double)done / (double)p->total + 0.5);
        if (done < p->total && pct > 99) pct = 99;
        if (done > 0)
            format_duration(eta, sizeof(eta), elapsed * (double)(p->total - done) / (double)done);
        else
            snprintf(eta, sizeof(eta), "?");
        n = (size_t)snprintf(buf, cap, "%s %ld/%ld [%ld%%] %s ETA %s", p->label, done, p->total, pct, el, eta);
    } else {
        n = (size_t)snprintf(buf, cap, "%s %ld %s", p->label, done, el);
    }
    if (extra != NULL && extra[0] != '\0' && n < cap) snprintf(buf + n, cap - n, " %s", extra);
}

void progress_start(Progress *p, const char *label, long total) {
    memset(p, 0, sizeof(*p));
    snprintf(p->label, sizeof(p->label), "%s", label ? label : "");
    p->total = total;
    p->tty = isatty(STDERR_FILENO) ? 1 : 0;
    p->min_interval_s = p->tty ? PROGRESS_TTY_INTERVAL_S : PROGRESS_PLAIN_INTERVAL_S;
    p->t_start = time_now_s();
    p->t_last_print = -1e30; /* never printed: the first update prints whatever the interval */
}

void progress_update(Progress *p, long done, const char *extra) {
    double now = time_now_s();
    int finished = p->total > 0 && done >= p->total;
    if (!finished && now - p->t_last_print < p->min_interval_s) return;
    p->t_last_print = now;
    char line[1024];
    format_progress(line, sizeof(line), p, done, now - p->t_start, extra);
    if (p->tty) {
        fprintf(stderr, "\r%s\033[K", line);
        p->drawn = 1;
        g_progress_drawn = 1;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

void progress_end(Progress *p) {
    if (p->tty && p->drawn && g_progress_drawn) {
        fputc('\n', stderr);
        fflush(stderr);
    }
    p->drawn = 0;
    g_progress_drawn = 0;
}
