/* core/error.h: the two error tiers of DESIGN.md §6.
 *
 * Tier 1, bugs and broken invariants: CHECK(cond, fmt, ...) is always on. It prints the rank,
 * function, file:line, the failed condition and a formatted message, then calls MPI_Abort when
 * MPI is initialised (so no rank hangs in a collective) or abort() otherwise.
 *
 * Tier 2, expected failures (bad file, bad config value, ...): functions return an int error
 * code (0 = ok, negative = ERR_*) after recording a human-readable message with err_set().
 * The caller reads it with err_msg() and decides. Messages say what was expected and may end
 * with a "\nHINT: ..." line. The message buffer is thread-local; err_set overwrites it.
 */
#ifndef CISPO_CORE_ERROR_H
#define CISPO_CORE_ERROR_H

#include <stddef.h>

enum {
    ERR_OK = 0,
    ERR_IO = -1,          /* open/read/write/fsync/rename failed */
    ERR_FORMAT = -2,      /* a file's content is malformed */
    ERR_CONFIG = -3,      /* bad config key, type or value */
    ERR_NOMEM = -4,       /* allocation failed */
    ERR_RANGE = -5,       /* a value outside its valid range */
    ERR_UNSUPPORTED = -6, /* valid input we do not support (yet) */
    ERR_NOTFOUND = -7,    /* a file, tensor or key is missing */
    ERR_SHAPE = -8,       /* a tensor has the wrong shape */
    ERR_ARG = -9,         /* a bad command-line argument */
};

/* Record a message for an expected failure and return `code` (so `return err_set(...)` works). */
int err_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with "<context>: " (e.g. a file name) and return `code`. */
int err_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last recorded message ("" if none). Owned by the error module; valid until the next err_set. */
const char *err_msg(void);
void err_clear(void);
/* Short name of an error code ("ERR_IO", ...). */
const char *err_name(int code);

/* Abort path of CHECK; never returns. */
void check_fail(const char *func, const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 5, 6)));

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) check_fail(__func__, __FILE__, __LINE__, #cond, __VA_ARGS__);               \
    } while (0)

/* malloc/calloc that CHECK on failure: for sizes computed at init, never for sizes read from files. */
void *xmalloc(size_t bytes);
void *xcalloc(size_t n, size_t size);

/* Rank used in CHECK and log prefixes; -1 until comm init sets it. */
void error_set_rank(int rank);
int error_get_rank(void);

#endif
