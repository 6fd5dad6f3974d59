/* tests/checkpoints/ckpt_test_util.h: helpers shared by the checkpoint tests (static inline
 * functions only; include after cmocka.h): temporary run directories, deterministic file contents, byte
 * flips, a stderr capture, and directory scans.
 */
#ifndef CISPO_TESTS_CKPT_TEST_UTIL_H
#define CISPO_TESTS_CKPT_TEST_UTIL_H

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"

/* snprintf into a path buffer, failing the test on truncation. */
static inline void fmt_path(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void fmt_path(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < cap);
}

/* A fresh directory under $TMPDIR (or /tmp); the caller removes it with rm_tree. */
static inline void make_tmp_dir(char *out, size_t cap) {
    const char *base = getenv("TMPDIR");
    snprintf(out, cap, "%s/cispo_ckpt_XXXXXX", (base && base[0]) ? base : "/tmp");
    assert_non_null(mkdtemp(out));
}

static inline int rm_tree_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

static inline void rm_tree(const char *path) { nftw(path, rm_tree_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* `n` deterministic pseudo-random bytes for (seed, stream). */
static inline void fill_bytes(unsigned char *buf, size_t n, uint64_t seed, uint64_t stream) {
    for (size_t i = 0; i < n; i += 16) {
        Philox4 b = rng_block(seed, stream, i / 16);
        size_t k = n - i < 16 ? n - i : 16;
        memcpy(buf + i, b.v, k);
    }
}

static inline void write_file_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* A file of n pseudo-random bytes. */
static inline void write_random_file(const char *path, size_t n, uint64_t seed, uint64_t stream) {
    unsigned char *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    fill_bytes(buf, n, seed, stream);
    write_file_bytes(path, buf, n);
    free(buf);
}

/* Whole file into a malloc'd buffer; *n its length. */
static inline unsigned char *read_file_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static inline long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* XOR the byte at `offset` with `mask` in place. */
static inline void xor_byte(const char *path, long offset, unsigned char mask) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, offset), 1);
    c ^= mask;
    assert_int_equal(pwrite(fd, &c, 1, offset), 1);
    close(fd);
}

/* Number of entries of dir whose name ends with suffix (all entries for ""). */
static inline int count_suffix(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    int n = 0;
    struct dirent *e;
    size_t k = strlen(suffix);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' && (len == 1 || (len == 2 && e->d_name[1] == '.'))) continue;
        if (len >= k && strcmp(e->d_name + len - k, suffix) == 0) n++;
    }
    closedir(d);
    return n;
}

/* Content of run_dir/checkpoints/latest ("" when absent) into buf. */
static inline void read_latest(const char *run_dir, char *buf, size_t cap) {
    char path[1024];
    snprintf(path, sizeof path, "%s/checkpoints/latest", run_dir);
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f == NULL) return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Redirect stderr (fd 2) into a temporary file between capture_begin and capture_end; the
 * captured text is returned malloc'd. */
typedef struct {
    int saved_fd;
    char path[1024];
} StderrCapture;

static inline void capture_begin(StderrCapture *c) {
    const char *base = getenv("TMPDIR");
    snprintf(c->path, sizeof c->path, "%s/cispo_ckpt_err_XXXXXX", (base && base[0]) ? base : "/tmp");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved_fd = dup(2);
    assert_true(c->saved_fd >= 0);
    assert_true(dup2(fd, 2) >= 0);
    close(fd);
}

static inline char *capture_end(StderrCapture *c) {
    fflush(stderr);
    assert_true(dup2(c->saved_fd, 2) >= 0);
    close(c->saved_fd);
    size_t n;
    char *text = (char *)read_file_bytes(c->path, &n);
    unlink(c->path);
    fputs(text, stderr); /* still visible in the test log */
    return text;
}

#endif
