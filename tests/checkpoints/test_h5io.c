/* tests/checkpoints/test_h5io.c: HDF5 tensor files with the zstd filter and Fletcher-32.
 * labels: unit
 *
 * Round trips (f32/i64/i32/bytes; 0-d, 1-d, 3-d, zero-size, multi-chunk; NaN payloads and -0.0)
 * are compared bit for bit after closing and reopening the file. The pipeline of written datasets
 * is read back through HDF5's own API (zstd 32015 with cd_values[0] = level, then Fletcher-32;
 * scalars compact and unfiltered) and a constant array must shrink 5x. Corruption is made on
 * disk: one byte flipped inside a stored chunk found with H5Dget_chunk_info, the file truncated,
 * a non-HDF5 file, a writer killed with the file open, a one-bit flip at every 11th byte of a
 * file. Hand-made chunks written with H5Dwrite_chunk exercise the zstd decoder's own checks (no
 * frame, no content size, wrong size), and crafted storage (a missing chunk, a chunk that skips
 * its filters, a pipeline in the wrong order) must be refused before HDF5 reads it. Equal content
 * must give byte-identical files. Every failure must be an ERR_* code whose message names the
 * file and dataset, HDF5's error printing must stay off inside h5io and be put back after, and no
 * HDF5 id may be left open. Files live under a mkdtemp directory in /tmp.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../test_tmpdir.h"

#include <ftw.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "checkpoints/h5io.h"
#include "core/error.h"

static char g_root[64];
static int g_seq;

static void tmp_path(char *out, size_t cap, const char *stem) {
    snprintf(out, cap, "%s/%02d_%s", g_root, g_seq++, stem);
}

static void expect_msg(const char *sub) {
    if (!strstr(err_msg(), sub)) fail_msg("error message \"%s\" lacks \"%s\"", err_msg(), sub);
}

static uint32_t g_lcg = 12345u;
static uint32_t next_u32(void) {
    g_lcg = g_lcg * 1664525u + 1013904223u;
    return g_lcg;
}

/* Floats from random bits (finite or not): incompressible and full of odd encodings. */
static void fill_random_bits(void *dst, size_t bytes) {
    unsigned char *p = dst;
    for (size_t i = 0; i < bytes; i++) p[i] = (unsigned char)(next_u32() >> 24);
}

static long file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

static void flip_byte(const char *path, long off) {
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, off, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_true(c != EOF);
    assert_int_equal(fseek(fp, off, SEEK_SET), 0);
    assert_int_equal(fputc(c ^ 0xFF, fp), c ^ 0xFF);
    fclose(fp);
}

/* File offset and stored size of chunk `idx` of a dataset. */
static void chunk_location(const char *path, const char *name, hsize_t idx, haddr_t *addr, hsize_t *size) {
    H5File f;
    assert_int_equal(h5_open(&f, path), 0);
    hid_t d = H5Dopen2(f.file, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hsize_t off[4];
    unsigned mask = 99;
    hid_t sp = H5Dget_space(d); /* 1.10.8 rejects H5S_ALL here */
    assert_true(H5Dget_chunk_info(d, sp, idx, off, &mask, addr, size) >= 0);
    H5Sclose(sp);
    assert_int_equal(mask, 0); /* every filter was applied */
    H5Dclose(d);
    assert_int_equal(h5_close(&f), 0);
}

/* No HDF5 file, dataset, group, datatype or attribute id left open anywhere. */
static void expect_no_open_ids(void) {
    assert_int_equal(H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

/* ---- round trips ------------------------------------------------------------------------- */

static void test_round_trip_all_kinds(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof(path), "kinds.h5");
    float s0 = -0.0f;                                                  /* () */
    float v1[7] = {1.0f, -2.5f, 0.0f, -0.0f, INFINITY, -INFINITY, 1e-42f}; /* (7,) */
    uint32_t nan_bits = 0x7fc12345u;                                   /* a NaN with a payload */
    memcpy(&v1[2], &nan_bits, 4);
    float v3[2 * 3 * 4]; /* (2, 3, 4) */
    fill_random_bits(v3, sizeof(v3));
    int64_t i1[5] = {INT64_MIN, -1, 0, 1, INT64_MAX}; /* (5,) */
    int64_t i0 = 42;                                  /* () */
    int32_t j3[3 * 2 * 2] = {INT32_MIN, -7, 0, 7, INT32_MAX, 1, 2, 3, 4, 5, 6, 7}; /* (3, 2, 2) */
    const char *yaml = "model:\n  hidden: 64\n";
    const int64_t d1[] = {7}, d3[] = {2, 3, 4}, di1[] = {5}, dj3[] = {3, 2, 2};
    const int64_t dz1[] = {0}, dz3[] = {3, 0, 2};

    H5File f;
    assert_int_equal(h5_create(&f, path), 0);
    assert_int_equal(h5_write_f32(&f, "scalar", &s0, 0, NULL), 0);
    assert_int_equal(h5_write_f32(&f, "model/layers.0/v1", v1, 1, d1), 0);
    assert_int_equal(h5_write_f32(&f, "model/layers.0/v3", v3, 3, d3), 0);
    assert_int_equal(h5_write_i64(&f, "state/i1", i1, 1, di1), 0);
    assert_int_equal(h5_write_i64(&f, "state/step", &i0, 0, NULL), 0);
    assert_int_equal(h5_write_i32(&f, "state/j3", j3, 3, dj3), 0);
    assert_int_equal(h5_write_bytes(&f, "config", yaml, strlen(yaml)), 0);
    assert_int_equal(h5_write_bytes(&f, "empty_bytes", "", 0), 0);
    assert_int_equal(h5_write_f32(&f, "zero1", NULL, 1, dz1), 0);
    assert_int_equal(h5_write_i32(&f, "zero3", NULL, 3, dz3), 0);
    assert_int_equal(h5_close(&f), 0);
    assert_int_equal(h5_close(&f), 0); /* idempotent */

    assert_int_equal(h5_open(&f, path), 0);
    float r0 = 1.0f, r1[7], r3[24];
    int64_t ri1[5], ri0 = 0;
    int32_t rj3[12];
    assert_int_equal(h5_read_f32(&f, "scalar", &r0, 0, NULL), 0);
    assert_memory_equal(&r0, &s0, 4);
    assert_true(signbit(r0));
    assert_int_equal(h5_read_f32(&f, "model/layers.0/v1", r1, 1, d1), 0);
    assert_memory_equal(r1, v1, sizeof(v1));
    assert_int_equal(h5_read_f32(&f, "model/layers.0/v3", r3, 3, d3), 0);
    assert_memory_equal(r3, v3, sizeof(v3));
    assert_int_equal(h5_read_i64(&f, "state/i1", ri1, 1, di1), 0);
    assert_memory_equal(ri1, i1, sizeof(i1));
    assert_int_equal(h5_read_i64(&f, "state/step", &ri0, 0, NULL), 0);
    assert_int_equal(ri0, 42);
    assert_int_equal(h5_read_i32(&f, "state/j3", rj3, 3, dj3), 0);
    assert_memory_equal(rj3, j3, sizeof(j3));
    char *s = NULL;
    size_t len = 99;
    assert_int_equal(h5_read_bytes(&f, "config", &s, &len), 0);
    assert_int_equal(len, strlen(yaml));
    assert_string_equal(s, yaml);
    free(s);
    assert_int_equal(h5_read_bytes(&f, "empty_bytes", &s, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(h5_read_f32(&f, "zero1", NULL, 1, dz1), 0);
    assert_int_equal(h5_read_i32(&f, "zero3", NULL, 3, dz3), 0);

    int nd = -1;
    int64_t dims[4] = {0};
    assert_int_equal(h5_shape(&f, "state/j3", &nd, dims), 0);
    assert_int_equal(nd, 3);
    assert_true(dims[0] == 3 && dims[1] == 2 && dims[2] == 2);
    assert_int_equal(h5_shape(&f, "zero3", &nd, dims), 0);
    assert_true(nd == 3 && dims[0] == 3 && dims[1] == 0 && dims[2] == 2);
    assert_int_equal(h5_shape(&f, "scalar", &nd, dims), 0);
    assert_int_equal(nd, 0);
    assert_int_equal(h5_exists(&f, "model"), 1);
    assert_int_equal(h5_exists(&f, "model/layers.0/v3"), 1);
    assert_int_equal(h5_exists(&f, "model/layers.1/v3"), 0);
    assert_int_equal(h5_exists(&f, "nope"), 0);
    assert_int_equal(h5_verify_all(&f), 0);
    assert_int_equal(H5Fget_obj_count(f.file, H5F_OBJ_ALL), 1); /* only the file itself */
    assert_int_equal(h5_close(&f), 0);
    expect_no_open_ids();
}

/* A dataset over 1 MiB is split into ~1 MiB chunks along its first dimension. */
static void test_multi_chunk(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof(path), "multi.h5");
    const int64_t d2[] = {600, 1000}; /* 2.4 MB of f32: rows of 4000 bytes, 262 rows per chunk */
    const int64_t dl[] = {300000};    /* 2.4 MB of i64 */
    float *w = malloc(600 * 1000 * sizeof(float)), *r = malloc(600 * 1000 * sizeof(float));
    int64_t *l = malloc(300000 * sizeof(int64_t)), *rl = malloc(300000 * sizeof(int64_t));
    assert_true(w && r && l && rl);
    fill_random_bits(w, 600 * 1000 * sizeof(float));
    for (int i = 0; i < 300000; i++) l[i] = (int64_t)i * 1000003 - 7;

    H5File f;
    assert_int_equal(h5_create(&f, path), 0);
    assert_int_equal(h5_write_f32(&f, "big/w", w, 2, d2), 0);
    assert_int_equal(h5_write_i64(&f, "big/l", l, 1, dl), 0);
    assert_int_equal(h5_close(&f), 0);

    assert_int_equal(h5_open(&f, path), 0);
    hid_t d = H5Dopen2(f.file, "big/w", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(d);
    hsize_t chunk[2] = {0, 0}, nchunks = 0;
    assert_int_equal(H5Pget_chunk(dcpl, 2, chunk), 2);
    assert_int_equal(chunk[0], (1u << 20) / 4000);
    assert_int_equal(chunk[1], 1000);
    hid_t sp = H5Dget_space(d);
    assert_true(H5Dget_num_chunks(d, sp, &nchunks) >= 0);
    H5Sclose(sp);
    assert_int_equal(nchunks, 3);
    H5Pclose(dcpl);
    H5Dclose(d);
    assert_int_equal(h5_read_f32(&f, "big/w", r, 2, d2), 0);
    assert_memory_equal(r, w, 600 * 1000 * sizeof(float));
    assert_int_equal(h5_read_i64(&f, "big/l", rl, 1, dl), 0);
    assert_memory_equal(rl, l, 300000 * sizeof(int64_t));
    assert_int_equal(h5_verify_all(&f), 0);
    assert_int_equal(h5_close(&f), 0);
    free(w), free(r), free(l), free(rl);
    expect_no_open_ids();
}

/* ---- the pipeline on disk ---------------------------------------------------------------- */

static void test_pipeline_and_compression(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof(path), "pipe.h5");
    enum { N = 1 << 18 }; /* 1 MiB of f32 */
    float *c = malloc(N * sizeof(float));
    assert_non_null(c);
    for (int i = 0; i < N; i++) c[i] = 0.125f;
    const int64_t dn[] = {N};
    float one = 1.0f;
    H5File f;
    assert_int_equal(h5_create(&f, path), 0);
    f.level = 7;
    assert_int_equal(h5_write_f32(&f, "const", c, 1, dn), 0);
    assert_int_equal(h5_write_f32(&f, "scalar", &one, 0, NULL), 0);
    assert_int_equal(h5_close(&f), 0);

    assert_int_equal(h5_open(&f, path), 0);
    hid_t d = H5Dopen2(f.file, "const", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(d);
    assert_int_equal(H5Pget_nfilters(dcpl), 2);
    unsigned flags = 0, vals[4] = {0}, cfg = 0;
    size_t nv = 4;
    char fname[64];
    assert_int_equal(H5Pget_filter2(dcpl, 0, &flags, &nv, vals, sizeof(fname), fname, &cfg), CKPT_H5Z_ZSTD_ID);
    assert_int_equal(nv, 2);
    assert_int_equal(vals[0], 7);             /* the level, hdf5plugin's convention */
    assert_int_equal(vals[1], N * sizeof(float)); /* chunk bytes, for the decoder's size check */
    nv = 4;
    assert_int_equal(H5Pget_filter2(dcpl, 1, &flags, &nv, vals, 0, NULL, &cfg), H5Z_FILTER_FLETCHER32);
    hsize_t stored = H5Dget_storage_size(d);
    assert_true(stored > 0);
    assert_true(stored < N * sizeof(float) / 5);
    H5Pclose(dcpl);
    H5Dclose(d);

    d = H5Dopen2(f.file, "scalar", H5P_DEFAULT);
    dcpl = H5Dget_create_plist(d);
    assert_int_equal(H5Pget_layout(dcpl), H5D_COMPACT); /* inside its checksummed object header */
    assert_int_equal(H5Pget_nfilters(dcpl), 0);
    H5Pclose(dcpl);
    H5Dclose(d);
    assert_int_equal(h5_close(&f), 0);
    free(c);
    expect_no_open_ids();
}

typedef struct {
    char names[8][64];
    uint64_t stored[8], raw[8];
    int ndim[8];
    int n, stop_at;
} WalkLog;

static int log_dataset(const char *name, int ndim, const int64_t *dims, uint64_t stored, uint64_t raw, void *ctx) {
    (void)dims;
    WalkLog *w = ctx;
    if (w->n >= 8) return -100;
    snprintf(w->names[w->n], 64, "%s", name);
    w->stored[w->n] = stored;
    w->raw[w->n] = raw;
    w->ndim[w->n] = ndim;
    w->n++;
    return w->n == w->stop_at ? 17 : 0;
}

static void test_walk_order_and_sizes(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof(path), "walk.h5");
    static float zeros[4096]; /* (64, 64) */
    const int64_t d[] = {64, 64}, d3[] = {3};
    int64_t step = 5;
    int32_t t[3] = {1, 2, 3};
    H5File f;
    assert_int_equal(h5_create(&f, path), 0);
    assert_int_equal(h5_write_i32(&f, "b/t", t, 1, d3), 0);
    assert_int_equal(h5_write_f32(&f, "a/z/w", zeros, 2, d), 0);
    assert_int_equal(h5_write_i64(&f, "a/step", &step, 0, NULL), 0);
    assert_int_equal(h5_close(&f), 0);
    assert_int_equal(h5_open(&f, path), 0);
    WalkLog w = {.n = 0, .stop_at = -1};
    assert_int_equal(h5_walk(&f, log_dataset, &w), 0);
    assert_int_equal(w.n, 3);
    assert_string_equal(w.names[0], "a/step");
    assert_string_equal(w.names[1], "a/z/w");
    assert_string_equal(w.names[2], "b/t");
    assert_int_equal(w.ndim[0], 0);
    assert_int_equal(w.raw[0], 8);
    assert_int_equal(w.stored[0], 8);
    assert_int_equal(w.raw[1], 64 * 64 * 4);
    assert_true(w.stored[1] > 0 && w.stored[1] < 200); /* zeros compress to a few bytes + checksum */
    assert_int_equal(w.raw[2], 12);
    WalkLog w2 = {.n = 0, .stop_at = 2};
    assert_int_equal(h5_walk(&f, log_dataset, &w2), 17); /* the callback's code comes back */
    assert_int_equal(w2.n, 2);
    assert_int_equal(h5_close(&f), 0);
    expect_no_open_ids();
}

/* ---- corruption -------------------------------------------------------------------------- */

/* A file with "w" (random f32, one chunk), "m" (random f32, 3 chunks) and "ok" (a scalar). */
static void write_victim(const char *path, float *w, float *m) {
    const int64_t dw[] = {64, 64}, dm[] = {3 * 262144};
    fill_random_bits(w, 64 * 64 * 4);
    fill_random_bits(m, 3 * 262144 * 4);
    float ok = 3.0f;
    H5File f;
    assert_int_equal(h5_create(&f, path), 0);
    assert_int_equal(h5_write_f32(&f, "w", w, 2, dw), 0);
    assert_int_equal(h5_write_f32(&f, "m", m, 1, dm), 0);
    assert_int_equal(h5_write_f32(&f, "ok", &ok, 0, NULL), 0);
    assert_int_equal(h5_close(&f), 0);
}

static void test_flipped_byte_in_chunk(void **state) {
    (void)state;
    const int64_t dw[] = {64, 64}, dm[] = {3 * 262144};
    float *w = malloc(64 * 64 * 4), *m = malloc(3 * 262144 * 4), *r = malloc(3 * 262144 * 4);
    assert_true(w && m && r);
    /* Flip a byte in the middle of the stored (compressed) chunk, then in its last byte (the
     * checksum itself): both must be caught, as ERR_FORMAT naming the dataset. */
    for (int where = 0; where < 2; where++) {
        char path[256];
        tmp_path(path, sizeof(path), "flip.h5");
        write_victim(path, w, m);
        haddr_t addr = 0;
        hsize_t size = 0;
        chunk_location(path, "w", 0, &addr, &size);
        assert_true(size > 64 * 64 * 4); /* random bits do not compress: frame + 4-byte checksum */
        flip_byte(path, (long)(addr + (where == 0 ? size / 2 : size - 1)));
        H5File f;
        assert_int_equal(h5_open(&f, path), 0);
        assert_int_equal(h5_read_f32(&f, "w", r, 2, dw), ERR_FORMAT);
        expect_msg(path);
        expect_msg("dataset 'w'");
        expect_msg("Fletcher32");
        assert_int_equal(h5_verify_all(&f), ERR_FORMAT);
        expect_msg("dataset 'w'");
        expect_msg("chunk at (0, 0)");
        float ok = 0;
        assert_int_equal(h5_read_f32(&f, "ok", &ok, 0, NULL), 0); /* the rest still reads */
        assert_true(ok == 3.0f);
        assert_int_equal(h5_read_f32(&f, "m", r, 1, dm), 0);
        assert_memory_equal(r, m, 3 * 262144 * 4);
        assert_int_equal(H5Fget_obj_count(f.file, H5F_OBJ_ALL), 1);
        assert_int_equal(h5_close(&f), 0);
    }
    /* The second chunk of the multi-chunk dataset. */
    char path[256];
    tmp_path(path, sizeof(path), "flip2.h5");
    write_victim(path, w, m);
    haddr_t addr = 0;
    hsize_t size = 0;
    chunk_location(path, "m", 1, &addr, &size);
    flip_byte(path, (long)(addr + 100));
    H5File f;
    assert_int_equal(h5_open(&f, path), 0);
    assert_int_equal(h5_verify_all(&f), ERR_FORMAT);
    expect_msg("dataset 'm'");
    expect_msg("chunk at (262144)");
    assert_int_equal(h5_read_f32(&f, "m", r, 1, dm), ERR_FORMAT);
    expect_msg("Fletcher32");
    assert_int_equal(h5_close(&f), 0);
    free(w), free(m), free(r);
    expect_no_open_ids();
}

static void test_truncated_file(void **state) {
    (void)state;
    float *w = malloc(64 * 64 * 4), *m = malloc(3 * 262144 * 4), *r = malloc(3 * 262144 * 4);
    assert_true(w && m && r);
    const long cuts[] = {-2, -3, -10, 1}; /* half, a third, a tenth of the file, and one byte less */
    for (int k = 0; k < 4; k++) {
        char path[256];
        tmp_path(path, sizeof(path), "trunc.h5");
        write_victim(path, w, m);
        long n = file_size(path);
        assert_int_equal(truncate(path, cuts[k] < 0 ? n / -cuts[k] : n - cuts[k]), 0);
        H5File f;
        int rc = h5_open(&f, path);
        if (rc == 0) { /* if it opens at all, reading everything must fail */
            rc = h5_verify_all(&f);
            assert_int_equal(h5_close(&f), 0);
        }
        assert_int_equal(rc, ERR_FORMAT);
        expect_msg(path);
    }
    free(w), free(m), free(r);
    expect_no_open_ids();
}

static void test_not_hdf5(void **state) {
    (void)state;
    char path[256];
    H5File f;
    tmp_path(path, sizeof(path), "text.h5");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("model:\n  hidden: 64\n", fp);
    fclose(fp);
    assert_int_equal(h5_open(&f, path), ERR_FORMAT);
    expect_msg(path);
    expect_msg("not an HDF5 file");
    tmp_path(path, sizeof(path), "empty.h5");
    fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(h5_open(&f, path), ERR_FORMAT);
    tmp_path(path, sizeof(path), "missing.h5");
    assert_int_equal(h5_open(&f, path), ERR_NOTFOUND);
    expect_msg(path);
    assert_int_equal(h5_open(&f, g_root), ERR_FORMAT); /* a directory */
    assert_int_equal(h5_close(&f), 0);                 /* a failed open leaves nothing to close */
    expect_no_open_ids();
}

/* A writer killed before closing: the file must refuse to open (superblock v3 marks it open for
 * writing), never open with datasets silently missing. */
static void test_killed_writer(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof(path), "killed.h5");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        static float w[300000];
        const int64_t d[] = {300000};
        H5File f;
        if (h5_create(&f, path) || h5_write_f32(&f, "w", w, 1, d)) _exit(2);
        H5Fflush(f.file, H5F_SCOPE_GLOBAL);
        _exit(0); /* dies with the file open */
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    H5File f;
    assert_int_equal(h5_open(&f, path), ERR_FORMAT);
    expect_msg("already open for write");
    expect_no_open_ids();
}

/* Equal content makes byte-identical files (no timestamps anywhere), so content hashes of two
 * checkpoints of the same state agree. */
static void test_deterministic_bytes(void **state) {
    (void)state;
    char p[2][256];
    int64_t step = 9;
    float w[300];
    for (int i = 0; i < 300; i++) w[i] = (float)i * 0.5f;
    const int64_t d[] = {3, 100};
    for (int k = 0; k < 2; k++) {
        if (k) sleep(1); /* HDF5 timestamps have one-second resolution */
        tmp_path(p[k], sizeof(p[k]), "det.h5");
        H5File f;
        assert_int_equal(h5_create(&f, p[k]), 0);
        assert_int_equal(h5_write_f32(&f, "model/layers.0/w", w, 2, d), 0);
        assert_int_equal(h5_write_i64(&f, "state/step", &step, 0, NULL), 0);
        assert_int_equal(h5_close(&f), 0);
    }
    long n = file_size(p[0]);
    assert_int_equal(file_size(p[1]), n);
    char *a = malloc((size_t)n), *b = malloc((size_t)n);
    FILE *fa = fopen(p[0], "rb"), *fb = fopen(p[1], "rb");
    assert_true(a && b && fa && fb);
    assert_int_equal(fread(a, 1, (size_t)n, fa), n);
    assert_int_equal(fread(b, 1, (size_t)n, fb), n);
    fclose(fa), fclose(fb);
    assert_memory_equal(a, b, (size_t)n);
    free(a), free(b);
}

/* Flip one bit at every 11th byte of a small checkpoint-like file, one flip per trial: each
 * flip must make h5_open or h5_verify_all fail with ERR_FORMAT, or leave every value identical
 * (the flip hit unused bytes); never a crash, never a silently changed value. Run in a child
 * process, because HDF5 1.10.8 itself leaks a little memory after some metadata checksum
 * failures (LeakSanitizer would report it at exit); the child leaves with _exit. */
typedef struct {
    float w[64 * 64];    /* (64, 64) random bits */
    float m[300000];     /* (300000,) compressible: 2 chunks */
    int32_t t[100];      /* (100,) */
    int64_t step;        /* () */
} Victim;

static int victim_matches(H5File *f, const Victim *v, Victim *r) {
    const int64_t dw[] = {64, 64}, dm[] = {300000}, dt[] = {100};
    char *s = NULL;
    size_t len = 0;
    int ok = h5_read_f32(f, "model/w", r->w, 2, dw) == 0 && !memcmp(r->w, v->w, sizeof(v->w)) &&
             h5_read_f32(f, "opt/m", r->m, 1, dm) == 0 && !memcmp(r->m, v->m, sizeof(v->m)) &&
             h5_read_i32(f, "state/t", r->t, 1, dt) == 0 && !memcmp(r->t, v->t, sizeof(v->t)) &&
             h5_read_i64(f, "state/step", &r->step, 0, NULL) == 0 && r->step == v->step &&
             h5_read_bytes(f, "config", &s, &len) == 0 && len == 5 && !memcmp(s, "a: 1\n", 5);
    free(s);
    return ok;
}

static int flip_sweep(const char *base, const char *work, const Victim *v, int *detected, int *trials) {
    FILE *fp = fopen(base, "rb");
    if (!fp) return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *img = malloc((size_t)n);
    Victim *r = malloc(sizeof(Victim));
    if (!img || !r || fread(img, 1, (size_t)n, fp) != (size_t)n) return -1;
    fclose(fp);
    int silent = 0;
    for (long off = 0; off < n; off += 11) {
        img[off] ^= (unsigned char)(1u << (off % 8));
        FILE *o = fopen(work, "wb");
        if (!o || fwrite(img, 1, (size_t)n, o) != (size_t)n) return -1;
        fclose(o);
        img[off] ^= (unsigned char)(1u << (off % 8));
        (*trials)++;
        H5File f;
        int rc = h5_open(&f, work);
        if (rc == 0) {
            rc = h5_verify_all(&f);
            if (rc == 0 && !victim_matches(&f, v, r)) {
                fprintf(stderr, "silent change: flip at byte %ld\n", off);
                silent++;
            }
            h5_close(&f);
        }
        if (rc != 0 && rc != ERR_FORMAT) {
            fprintf(stderr, "flip at byte %ld: %s %s\n", off, err_name(rc), err_msg());
            silent++;
        }
        if (rc == ERR_FORMAT) (*detected)++;
    }
    free(img);
    free(r);
    return silent;
}

static void test_bit_flip_sweep(void **state) {
    (void)state;
    char base[256], work[256];
    tmp_path(base, sizeof(base), "sweep.h5");
    tmp_path(work, sizeof(work), "sweep_flip.h5");
    Victim *v = calloc(1, sizeof(Victim));
    assert_non_null(v);
    fill_random_bits(v->w, sizeof(v->w));
    for (int i = 0; i < 300000; i++) v->m[i] = (float)(i % 100);
    for (int i = 0; i < 100; i++) v->t[i] = i * 3 - 50;
    v->step = 7;
    const int64_t dw[] = {64, 64}, dm[] = {300000}, dt[] = {100};
    H5File f;
    assert_int_equal(h5_create(&f, base), 0);
    assert_int_equal(h5_write_f32(&f, "model/w", v->w, 2, dw), 0);
    assert_int_equal(h5_write_f32(&f, "opt/m", v->m, 1, dm), 0);
    assert_int_equal(h5_write_i32(&f, "state/t", v->t, 1, dt), 0);
    assert_int_equal(h5_write_i64(&f, "state/step", &v->step, 0, NULL), 0);
    assert_int_equal(h5_write_bytes(&f, "config", "a: 1\n", 5), 0);
    assert_int_equal(h5_close(&f), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* results go through the pipe: a leak checker may change the exit code */
        int counts[3] = {0, 0, 0};
        counts[2] = flip_sweep(base, work, v, &counts[0], &counts[1]);
        _exit(write(fds[1], counts, sizeof(counts)) == (ssize_t)sizeof(counts) ? 0 : 3);
    }
    close(fds[1]);
    int counts[3] = {0, 0, -1}, st = 0;
    ssize_t got = read(fds[0], counts, sizeof(counts));
    close(fds[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st)) fail_msg("the sweep child died of signal %d", WTERMSIG(st));
    assert_int_equal(got, (ssize_t)sizeof(counts));
    assert_int_equal(counts[2], 0); /* silent changes (or setup failure: -1), printed by the child */
    print_message("bit-flip sweep: %d of %d flips detected, the rest changed no value\n", counts[0], counts[1]);
    assert_true(counts[1] > 1000);
    assert_true(counts[0] * 10 >= counts[1] * 8); /* measured: 99.7% (the rest: unused bytes) */
    free(v);
}

/* ---- wrong requests ---------------------------------------------------------------------- */

static void test_shape_dtype_and_missing(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof(path), "shape.h5");
    float v[6] = {1, 2, 3, 4, 5, 6};
    int32_t iv[6] = {0};
    const int64_t d23[] = {2, 3}, d32[] = {3, 2}, d6[] = {6};
    H5File f;
    assert_int_equal(h5_create(&f, path), 0);
    assert_int_equal(h5_write_f32(&f, "g/x", v, 2, d23), 0);
    assert_int_equal(h5_write_f32(&f, "g/x", v, 2, d23), ERR_IO); /* exists already */
    expect_msg("dataset 'g/x'");
    const int64_t bad[] = {-1};
    assert_int_equal(h5_write_f32(&f, "neg", v, 1, bad), ERR_SHAPE);
    assert_int_equal(h5_write_f32(&f, "rank5", v, 5, d23), ERR_SHAPE);
    assert_int_equal(h5_close(&f), 0);

    assert_int_equal(h5_open(&f, path), 0);
    float r[6];
    assert_int_equal(h5_read_f32(&f, "g/x", r, 2, d32), ERR_SHAPE);
    expect_msg("dataset 'g/x'");
    expect_msg("shape (2, 3), expected (3, 2)");
    assert_int_equal(h5_read_f32(&f, "g/x", r, 1, d6), ERR_SHAPE);
    expect_msg("expected (6)");
    assert_int_equal(h5_read_f32(&f, "g/x", r, 0, NULL), ERR_SHAPE);
    expect_msg("expected ()");
    assert_int_equal(h5_read_i32(&f, "g/x", iv, 2, d23), ERR_FORMAT);
    expect_msg("dtype f32, expected i32");
    assert_int_equal(h5_read_f32(&f, "g/y", r, 2, d23), ERR_NOTFOUND);
    expect_msg("no dataset 'g/y'");
    expect_msg(path);
    assert_int_equal(h5_read_f32(&f, "h/i/j", r, 2, d23), ERR_NOTFOUND);
    expect_msg("'h/i/j'");
    assert_int_equal(h5_read_f32(&f, "g", r, 2, d23), ERR_FORMAT);
    expect_msg("not a dataset");
    char *s = NULL;
    size_t len = 0;
    assert_int_equal(h5_read_bytes(&f, "g/x", &s, &len), ERR_FORMAT);
    assert_null(s);
    int nd;
    int64_t dims[4];
    assert_int_equal(h5_shape(&f, "g/none", &nd, dims), ERR_NOTFOUND);
    /* The file is read-only: writing is an error, not a crash. */
    assert_int_equal(h5_write_f32(&f, "new", v, 1, d6), ERR_IO);
    expect_msg("dataset 'new'");
    assert_int_equal(H5Fget_obj_count(f.file, H5F_OBJ_ALL), 1);
    assert_int_equal(h5_close(&f), 0);
    assert_int_equal(h5_read_f32(&f, "g/x", r, 2, d23), ERR_ARG); /* closed */
    expect_no_open_ids();
}

/* ---- the decoder's own checks (chunks written raw, bypassing the pipeline) ---------------- */

/* A (256,) f32 dataset with zstd only (no checksum), its one chunk replaced by `chunk`. */
static void write_raw_chunk(const char *path, const void *chunk, size_t n) {
    H5File f;
    assert_int_equal(h5_create(&f, path), 0);
    hsize_t dims[1] = {256};
    unsigned level = 3;
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, 1, dims) >= 0);
    assert_true(H5Pset_filter(dcpl, CKPT_H5Z_ZSTD_ID, H5Z_FLAG_MANDATORY, 1, &level) >= 0);
    hid_t d = H5Dcreate2(f.file, "x", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    hsize_t off[1] = {0};
    assert_true(H5Dwrite_chunk(d, H5P_DEFAULT, 0, off, n, chunk) >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    assert_int_equal(h5_close(&f), 0);
}

static void expect_decoder_rejects(const void *chunk, size_t n, const char *why) {
    char path[256];
    tmp_path(path, sizeof(path), "raw.h5");
    write_raw_chunk(path, chunk, n);
    H5File f;
    float r[256];
    const int64_t d[] = {256};
    assert_int_equal(h5_open(&f, path), 0);
    assert_int_equal(h5_read_f32(&f, "x", r, 1, d), ERR_FORMAT);
    expect_msg("dataset 'x'");
    expect_msg(why);
    assert_int_equal(h5_verify_all(&f), ERR_FORMAT); /* no checksum on it */
    expect_msg("no Fletcher-32 checksum");
    assert_int_equal(h5_close(&f), 0);
}

static void test_zstd_decoder_checks(void **state) {
    (void)state;
    float src[256];
    for (int i = 0; i < 256; i++) src[i] = (float)i;
    unsigned char frame[2048];
    /* A good frame first: the same file layout must read back. */
    size_t n = ZSTD_compress(frame, sizeof(frame), src, sizeof(src), 3);
    assert_false(ZSTD_isError(n));
    char path[256];
    tmp_path(path, sizeof(path), "rawok.h5");
    write_raw_chunk(path, frame, n);
    H5File f;
    float r[256];
    const int64_t d[] = {256};
    assert_int_equal(h5_open(&f, path), 0);
    assert_int_equal(h5_read_f32(&f, "x", r, 1, d), 0);
    assert_memory_equal(r, src, sizeof(src));
    assert_int_equal(h5_close(&f), 0);

    const char garbage[] = "this is not a zstd frame at all";
    expect_decoder_rejects(garbage, sizeof(garbage), "zstd: not a zstd frame");
    /* A frame that does not record its content size (streaming without a pledged size). */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    assert_non_null(cc);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0)));
    n = ZSTD_compress2(cc, frame, sizeof(frame), src, sizeof(src));
    assert_false(ZSTD_isError(n));
    ZSTD_freeCCtx(cc);
    expect_decoder_rejects(frame, n, "zstd: frame does not record its content size");
    /* A valid frame of half the chunk: HDF5 would copy a whole chunk out of it. */
    n = ZSTD_compress(frame, sizeof(frame), src, sizeof(src) / 2, 3);
    expect_decoder_rejects(frame, n, "frame content size 512, expected the chunk size 1024");
    /* A frame cut short: its header is intact, the data is not. */
    n = ZSTD_compress(frame, sizeof(frame), src, sizeof(src), 3);
    expect_decoder_rejects(frame, n - 3, "zstd: decompress failed");
    expect_no_open_ids();
}

/* Storage a crafted file may hold and HDF5 1.10 would read without complaint (or past its
 * buffers): a missing chunk (read as fill values), a chunk whose filter mask skips the filters,
 * a pipeline not starting with our zstd. */
static void test_crafted_storage(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof(path), "crafted.h5");
    static float v[512];
    for (int i = 0; i < 512; i++) v[i] = (float)i;
    const int64_t d512[] = {512}, d4k[] = {4096};
    static float big[4096], r[4096];
    H5File f;
    assert_int_equal(h5_create(&f, path), 0);
    /* (a) two chunks of 256, only the first written. */
    hsize_t dims[1] = {512}, chunk[1] = {256}, start[1] = {0};
    unsigned level = 3;
    hid_t space = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, 1, chunk) >= 0);
    assert_true(H5Pset_filter(dcpl, CKPT_H5Z_ZSTD_ID, H5Z_FLAG_MANDATORY, 1, &level) >= 0);
    assert_true(H5Pset_fletcher32(dcpl) >= 0);
    hid_t d = H5Dcreate2(f.file, "half", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    hid_t mspace = H5Screate_simple(1, chunk, NULL);
    assert_true(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, chunk, NULL) >= 0);
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, mspace, space, H5P_DEFAULT, v) >= 0);
    H5Dclose(d);
    H5Sclose(mspace);
    H5Pclose(dcpl);
    H5Sclose(space);
    /* (b) a normal dataset whose chunk is then replaced raw, with every filter masked off. */
    assert_int_equal(h5_write_f32(&f, "masked", big, 1, d4k), 0);
    d = H5Dopen2(f.file, "masked", H5P_DEFAULT);
    assert_true(H5Dwrite_chunk(d, H5P_DEFAULT, 0x3, start, sizeof(big), big) >= 0);
    H5Dclose(d);
    /* (c) Fletcher-32 before zstd. */
    space = H5Screate_simple(1, dims, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, 1, dims) >= 0);
    assert_true(H5Pset_fletcher32(dcpl) >= 0);
    assert_true(H5Pset_filter(dcpl, CKPT_H5Z_ZSTD_ID, H5Z_FLAG_MANDATORY, 1, &level) >= 0);
    d = H5Dcreate2(f.file, "order", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    assert_int_equal(h5_close(&f), 0);

    assert_int_equal(h5_open(&f, path), 0);
    assert_int_equal(h5_read_f32(&f, "half", r, 1, d512), ERR_FORMAT);
    expect_msg("dataset 'half': the chunk at (256) is missing");
    assert_int_equal(h5_read_f32(&f, "masked", r, 1, d4k), ERR_FORMAT);
    expect_msg("dataset 'masked': the chunk at (0) skips filters (mask 0x3)");
    assert_int_equal(h5_read_f32(&f, "order", r, 1, d512), ERR_FORMAT);
    expect_msg("dataset 'order': its first filter is 3");
    assert_int_equal(h5_verify_all(&f), ERR_FORMAT);
    expect_msg("dataset 'half'"); /* the first in name order */
    assert_int_equal(h5_close(&f), 0);
    expect_no_open_ids();
}

/* ---- HDF5's error printing ---------------------------------------------------------------- */

static int g_printed;
static herr_t count_prints(hid_t stack, void *data) {
    (void)stack;
    (void)data;
    g_printed++;
    return 0;
}

static void test_error_printing_off_and_restored(void **state) {
    (void)state;
    H5E_auto2_t orig_fn = NULL;
    void *orig_data = NULL;
    assert_true(H5Eget_auto2(H5E_DEFAULT, &orig_fn, &orig_data) >= 0);
    int marker = 0;
    assert_true(H5Eset_auto2(H5E_DEFAULT, count_prints, &marker) >= 0);
    char path[256];
    tmp_path(path, sizeof(path), "quiet.h5");
    float *w = malloc(64 * 64 * 4), *m = malloc(3 * 262144 * 4);
    assert_true(w && m);
    write_victim(path, w, m);
    long n = file_size(path);
    assert_int_equal(truncate(path, n / 2), 0);
    H5File f;
    assert_int_equal(h5_open(&f, path), ERR_FORMAT);
    H5E_auto2_t fn = NULL;
    void *data = NULL;
    assert_true(H5Eget_auto2(H5E_DEFAULT, &fn, &data) >= 0);
    assert_true(fn == count_prints);
    assert_ptr_equal(data, &marker);
    assert_int_equal(g_printed, 0);
    /* Outside h5io, HDF5 still reports through the caller's handler. */
    assert_true(H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) < 0);
    assert_true(g_printed > 0);
    assert_true(H5Eset_auto2(H5E_DEFAULT, orig_fn, orig_data) >= 0);
    free(w), free(m);
    expect_no_open_ids();
}

/* ---- setup ------------------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    return tmpdir_make(g_root, sizeof(g_root), "cispo_h5io");
}

static int teardown(void **state) {
    (void)state;
    return tmpdir_remove(g_root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_all_kinds),
        cmocka_unit_test(test_multi_chunk),
        cmocka_unit_test(test_pipeline_and_compression),
        cmocka_unit_test(test_walk_order_and_sizes),
        cmocka_unit_test(test_flipped_byte_in_chunk),
        cmocka_unit_test(test_truncated_file),
        cmocka_unit_test(test_not_hdf5),
        cmocka_unit_test(test_killed_writer),
        cmocka_unit_test(test_deterministic_bytes),
        cmocka_unit_test(test_bit_flip_sweep),
        cmocka_unit_test(test_shape_dtype_and_missing),
        cmocka_unit_test(test_zstd_decoder_checks),
        cmocka_unit_test(test_crafted_storage),
        cmocka_unit_test(test_error_printing_off_and_restored),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    H5close(); /* release HDF5's global state so leak checkers see only real leaks */
    return rc;
}
