/* tests/test_tmpdir.h: a scratch directory under /tmp for one test program, made with mkdtemp and
 * removed recursively (nftw, no shell) at the end. Static functions only. */
#ifndef CISPO_TESTS_TMPDIR_H
#define CISPO_TESTS_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int tmpdir_rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* Create /tmp/<prefix>_XXXXXX into buf; 0 or -1. */
static inline int tmpdir_make(char *buf, size_t cap, const char *prefix) {
    snprintf(buf, cap, "/tmp/%s_XXXXXX", prefix);
    return mkdtemp(buf) ? 0 : -1;
}

/* Remove root and everything below it; 0 or -1. */
static inline int tmpdir_remove(const char *root) { return nftw(root, tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

#endif
