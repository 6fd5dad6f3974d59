/* core/error.c: the two error tiers of error.h.
 *
 * Expected failures: err_set formats into a thread-local 4 KiB buffer (so worker threads do not
 * clobber each other's messages); err_wrap prefixes the message already there. Messages longer
 * than the buffer are truncated, never overflowed.
 *
 * Invariants: check_fail prints one line "[cispo rank R] CHECK failed in func (file:line): cond:
 * message" to stderr ("[cispo]" before a rank is set) and ends the process: MPI_Abort(134) while
 * MPI is up, so no other rank waits forever in a collective, else abort().
 */
#include "core/error.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_MSG_BYTES 4096

static _Thread_local char t_err_msg[ERR_MSG_BYTES];
static int g_rank = -1; /* set once by comm init, read by CHECK and the logger */

int err_set(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_err_msg, sizeof(t_err_msg), fmt, ap);
    va_end(ap);
    return code;
}

int err_wrap(int code, const char *fmt, ...) {
    char prefix[ERR_MSG_BYTES];
    char old[ERR_MSG_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, t_err_msg, sizeof(old));
    /* prefix + ": " + old, truncated to the buffer. */
    size_t cap = sizeof(t_err_msg) - 1, pl = strlen(prefix), ol = strlen(old);
    if (pl > cap) pl = cap;
    memcpy(t_err_msg, prefix, pl);
    size_t n = pl;
    if (ol > 0 && n + 2 <= cap) {
        memcpy(t_err_msg + n, ": ", 2);
        n += 2;
        if (ol > cap - n) ol = cap - n;
        memcpy(t_err_msg + n, old, ol);
        n += ol;
    }
    t_err_msg[n] = '\0';
    return code;
}

const char *err_msg(void) { return t_err_msg; }

void err_clear(void) { t_err_msg[0] = '\0'; }

const char *err_name(int code) {
    switch (code) {
    case ERR_OK: return "ERR_OK";
    case ERR_IO: return "ERR_IO";
    case ERR_FORMAT: return "ERR_FORMAT";
    case ERR_CONFIG: return "ERR_CONFIG";
    case ERR_NOMEM: return "ERR_NOMEM";
    case ERR_RANGE: return "ERR_RANGE";
    case ERR_UNSUPPORTED: return "ERR_UNSUPPORTED";
    case ERR_NOTFOUND: return "ERR_NOTFOUND";
    case ERR_SHAPE: return "ERR_SHAPE";
    case ERR_ARG: return "ERR_ARG";
    default: return "ERR_UNKNOWN";
    }
}

void check_fail(const char *func, const char *file, int line, const char *cond, const char *fmt, ...) {
    char msg[1024];
    char head[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (g_rank >= 0)
        snprintf(head, sizeof(head), "[cispo rank %d]", g_rank);
    else
        snprintf(head, sizeof(head), "[cispo]");
    /* One fprintf so the line is not interleaved with other threads' output. */
    fprintf(stderr, "%s CHECK failed in %s (%s:%d): %s: %s\n", head, func, file, line, cond, msg);
    fflush(stderr);

    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, 134);
    abort();
}

void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    CHECK(p != NULL, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    CHECK(p != NULL, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void error_set_rank(int rank) { g_rank = rank; }

int error_get_rank(void) { return g_rank; }
