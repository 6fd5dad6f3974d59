/* tests/model/test_safetensors.c: safetensors round trips and hostile-file rejection.
 * labels: unit
 *
 * Round trips write with st_write / st_write_dir and read back with st_open / st_read_f32: F32 bit
 * for bit, BF16 and F16 against values rounded by hand (ties to even, subnormals, overflow, NaN),
 * and raw bytes on disk checked against known encodings. The bad-input cases write hand-made files
 * (raw header bytes) and check the ERR_* code and that the message names the file and the tensor.
 * Everything lives under a mkdtemp directory in /tmp that is removed at the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../test_tmpdir.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "model/safetensors.h"

static char g_root[64];
static int g_seq;

/* A fresh path under the temp root (the caller frees it). */
static char *tmp_path(const char *stem) {
    char *p = malloc(256);
    assert_non_null(p);
    snprintf(p, 256, "%s/%02d_%s", g_root, g_seq++, stem);
    return p;
}

/* Write a raw safetensors file: declared header length (or strlen(header) when < 0), the header
 * text, then data_bytes bytes of data (0, 1, 2, ... mod 251). */
static char *write_raw(const char *stem, const char *header, long long declared, size_t data_bytes) {
    char *path = tmp_path(stem);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t n = declared < 0 ? strlen(header) : (uint64_t)declared;
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(n >> (8 * i));
    assert_int_equal(fwrite(lenb, 1, 8, f), 8);
    assert_int_equal(fwrite(header, 1, strlen(header), f), strlen(header));
    for (size_t i = 0; i < data_bytes; i++) fputc((int)(i % 251), f);
    fclose(f);
    return path;
}

static void expect_msg(const char *sub) {
    if (!strstr(err_msg(), sub)) fail_msg("error message \"%s\" lacks \"%s\"", err_msg(), sub);
}

/* st_open(path) must fail with `code`; the message must contain each of the NULL-terminated subs. */
static void expect_open_fail(const char *path, int code, ...) {
    StArchive a;
    err_clear();
    int rc = st_open(&a, path);
    if (rc != code) fail_msg("st_open(%s) returned %d, expected %d; message: %s", path, rc, code, err_msg());
    assert_int_equal(a.n, 0);
    assert_null(a.t);
    st_close(&a);
    va_list ap;
    va_start(ap, code);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) expect_msg(s);
    va_end(ap);
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float read_one(const StArchive *a, const char *name, float *dst, int64_t n) {
    const StTensor *t = st_find(a, name);
    assert_non_null(t);
    assert_int_equal(st_numel(t), n);
    assert_int_equal(st_read_f32(a, t, dst, n), 0);
    return dst[0];
}

/* Raw bytes of the file at [off, off+n). */
static void file_bytes(const char *path, long off, unsigned char *out, size_t n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    assert_int_equal(fread(out, 1, n, f), n);
    fclose(f);
}

/* ---------------------------------------------------------------------------------------------
 * Round trips */

static void test_f32_roundtrip(void **state) {
    (void)state;
    float w[6] = {1.5f, -0.0f, INFINITY, 1e-40f /* subnormal */, 3.4028235e38f, NAN};
    float scalar = 42.0f;
    StWriteTensor t[3] = {{.name = "layer.w", .data = w, .ndim = 2, .shape = {2, 3}},
                          {.name = "empty", .data = NULL, .ndim = 2, .shape = {0, 3}},
                          {.name = "scalar", .data = &scalar, .ndim = 0}};
    char *path = tmp_path("f32.safetensors");
    assert_int_equal(st_write(path, t, 3, ST_F32), 0);
    /* header length is a multiple of 8 and the data section starts right after it */
    unsigned char lenb[8];
    file_bytes(path, 0, lenb, 8);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | lenb[i];
    assert_int_equal(hl % 8, 0);
    StArchive a;
    assert_int_equal(st_open(&a, path), 0);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.n_files, 1);
    assert_int_equal(a.data_start[0], 8 + hl);
    const StTensor *tw = st_find(&a, "layer.w");
    assert_non_null(tw);
    assert_int_equal(tw->dtype, ST_F32);
    assert_int_equal(tw->ndim, 2);
    assert_int_equal(tw->shape[0], 2);
    assert_int_equal(tw->shape[1], 3);
    float r[6];
    read_one(&a, "layer.w", r, 6);
    for (int i = 0; i < 6; i++) assert_int_equal(bits(r[i]), bits(w[i]));
    const StTensor *te = st_find(&a, "empty");
    assert_non_null(te);
    assert_int_equal(st_numel(te), 0);
    assert_int_equal(te->begin, te->end);
    assert_int_equal(st_read_f32(&a, te, r, 0), 0);
    assert_float_equal(read_one(&a, "scalar", r, 1), 42.0f, 0.0f);
    assert_null(st_find(&a, "missing"));
    assert_int_equal(st_read_f32(&a, tw, r, 5), ERR_SHAPE);
    expect_msg("layer.w");
    st_close(&a);
    st_close(&a); /* idempotent */
    free(path);
}

static void test_bf16_rounding(void **state) {
    (void)state;
    /* bf16 keeps 7 mantissa bits: near 1.0 the step is 2^-7 = 0.0078125. */
    float in[10] = {1.0f,
                    1.00390625f,   /* 1 + 2^-8: exact tie -> even (1.0) */
                    1.01171875f,   /* 1 + 3*2^-8: tie between 1+2^-7 (odd) and 1+2^-6 (even) -> 1.015625 */
                    1.00390637f,   /* just above the tie -> 1.0078125 */
                    -2.5f,
                    NAN,
                    -INFINITY,
                    3.4028235e38f, /* FLT_MAX rounds up to inf */
                    1e-40f,        /* float32 subnormal, kept as a bf16 subnormal */
                    0.1f};
    /* 1e-40f is 0x000116c2: the low half 0x16c2 is below the tie, so bf16 keeps 0x0001 = 2^-133 */
    float want[10] = {1.0f, 1.0f, 1.015625f, 1.0078125f, -2.5f, NAN, -INFINITY, INFINITY, 0x1p-133f, 0.10009765625f};
    StWriteTensor t = {.name = "x", .data = in, .ndim = 1, .shape = {10}};
    char *path = tmp_path("bf16.safetensors");
    assert_int_equal(st_write(path, &t, 1, ST_BF16), 0);
    StArchive a;
    assert_int_equal(st_open(&a, path), 0);
    assert_int_equal(st_find(&a, "x")->dtype, ST_BF16);
    float r[10];
    read_one(&a, "x", r, 10);
    for (int i = 0; i < 10; i++) {
        if (isnan(want[i])) assert_true(isnan(r[i]));
        else if (bits(r[i]) != bits(want[i])) fail_msg("bf16[%d]: %.9g -> %.9g, want %.9g", i, in[i], r[i], want[i]);
    }
    /* raw encodings: 1.0 = 0x3f80, the tie 1.00390625 = 0x3f80, -2.5 = 0xc020 */
    unsigned char b[8];
    file_bytes(path, (long)a.data_start[0], b, 8);
    assert_int_equal(b[0] | b[1] << 8, 0x3f80);
    assert_int_equal(b[2] | b[3] << 8, 0x3f80);
    file_bytes(path, (long)a.data_start[0] + 8, b, 2);
    assert_int_equal(b[0] | b[1] << 8, 0xc020);
    st_close(&a);
    free(path);
}

static void test_f16_rounding(void **state) {
    (void)state;
    const float u = 0x1p-24f; /* the smallest float16 subnormal */
    float in[14] = {1.0f, 65504.0f, 65520.0f /* tie between 65504 (odd) and inf -> inf */,
                    u,    0x1p-25f /* tie between 0 and u -> 0 */,
                    0.75f * u /* -> u */, 1.5f * u /* tie between u (odd) and 2u -> 2u */,
                    0x1p-14f /* smallest normal */, 1023.0f * u /* largest subnormal */,
                    1.0f / 3.0f, -0.0f, NAN, -INFINITY, 2049.0f /* tie between 2048 (even) and 2050 -> 2048 */};
    float want[14] = {1.0f, 65504.0f, INFINITY, u, 0.0f, u, 2.0f * u, 0x1p-14f, 1023.0f * u, 0.333251953125f,
                      -0.0f, NAN, -INFINITY, 2048.0f};
    StWriteTensor t = {.name = "h", .data = in, .ndim = 2, .shape = {2, 7}};
    char *path = tmp_path("f16.safetensors");
    assert_int_equal(st_write(path, &t, 1, ST_F16), 0);
    StArchive a;
    assert_int_equal(st_open(&a, path), 0);
    float r[14];
    read_one(&a, "h", r, 14);
    for (int i = 0; i < 14; i++) {
        if (isnan(want[i])) assert_true(isnan(r[i]));
        else if (bits(r[i]) != bits(want[i])) fail_msg("f16[%d]: %.9g -> %.9g, want %.9g", i, in[i], r[i], want[i]);
    }
    unsigned char b[8];
    file_bytes(path, (long)a.data_start[0], b, 8); /* 1.0 = 0x3c00, 65504 = 0x7bff, inf = 0x7c00, u = 0x0001 */
    assert_int_equal(b[0] | b[1] << 8, 0x3c00);
    assert_int_equal(b[2] | b[3] << 8, 0x7bff);
    assert_int_equal(b[4] | b[5] << 8, 0x7c00);
    assert_int_equal(b[6] | b[7] << 8, 0x0001);
    st_close(&a);
    free(path);
}

/* F64 converts; integer dtypes are listed but not readable as float. */
static void test_f64_and_int_dtypes(void **state) {
    (void)state;
    char *path = tmp_path("f64.safetensors");
    const char *hdr = "{\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                      "\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[16,24]},"
                      "\"__metadata__\":{\"format\":\"pt\"}}";
    double d[2] = {0.1, -3.0e100};
    int32_t iv[2] = {7, -7};
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(hdr);
    fwrite(&n, 8, 1, f);
    fwrite(hdr, 1, n, f);
    fwrite(d, 8, 2, f);
    fwrite(iv, 4, 2, f);
    fclose(f);
    StArchive a;
    assert_int_equal(st_open(&a, path), 0);
    float r[2];
    read_one(&a, "d", r, 2);
    assert_int_equal(bits(r[0]), bits((float)0.1));
    assert_true(isinf(r[1]) && r[1] < 0);
    const StTensor *ti = st_find(&a, "i");
    assert_non_null(ti);
    assert_int_equal(ti->dtype, ST_I32);
    assert_int_equal(st_dtype_size(ti->dtype), 4);
    assert_string_equal(st_dtype_name(ti->dtype), "I32");
    assert_int_equal(st_read_f32(&a, ti, r, 2), ERR_UNSUPPORTED);
    expect_msg("'i'");
    st_close(&a);
    free(path);
}

/* ---------------------------------------------------------------------------------------------
 * Directories */

#define N_DIR 5

static void fill_dir_tensors(StWriteTensor *t, float bufs[N_DIR][64]) {
    static const char *names[N_DIR] = {"embed.weight", "layers.0.w", "layers.0.norm", "layers.1.w", "lm_head.weight"};
    static const int64_t sizes[N_DIR] = {64, 48, 8, 48, 32};
    for (int i = 0; i < N_DIR; i++) {
        for (int k = 0; k < 64; k++) bufs[i][k] = (float)((i * 13 + k) % 64) * 0.5f - 7.0f; /* exact in bf16 */
        t[i] = (StWriteTensor){.name = names[i], .data = bufs[i], .ndim = 2, .shape = {sizes[i] / 4, 4}};
    }
}

static void check_dir(const char *dir, const StWriteTensor *t, int expect_files) {
    StArchive a;
    int rc = st_open(&a, dir);
    if (rc != 0) fail_msg("st_open(%s): %s", dir, err_msg());
    assert_int_equal(a.n, N_DIR);
    assert_int_equal(a.n_files, expect_files);
    float r[64];
    for (int i = 0; i < N_DIR; i++) {
        int64_t n = t[i].shape[0] * t[i].shape[1];
        read_one(&a, t[i].name, r, n);
        assert_memory_equal(r, t[i].data, (size_t)n * sizeof(float));
    }
    st_close(&a);
}

static int exists_in(const char *dir, const char *name) {
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void test_sharded_dir(void **state) {
    (void)state;
    StWriteTensor t[N_DIR];
    float bufs[N_DIR][64];
    fill_dir_tensors(t, bufs);
    char *dir = tmp_path("sharded");
    /* bytes (F32): 256, 192, 32, 192, 128; limit 300 -> [256] [192 32] [192] [128] */
    assert_int_equal(st_write_dir(dir, t, N_DIR, ST_F32, 300), 0);
    assert_true(exists_in(dir, "model.safetensors.index.json"));
    assert_true(exists_in(dir, "model-00001-of-00004.safetensors"));
    assert_true(exists_in(dir, "model-00004-of-00004.safetensors"));
    assert_false(exists_in(dir, "model-00005-of-00005.safetensors"));
    assert_false(exists_in(dir, "model.safetensors"));
    check_dir(dir, t, 4);
    /* the index records the total size */
    char p[512];
    snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(p, "rb");
    char text[4096] = {0};
    assert_non_null(f);
    assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(text, "\"total_size\": 800"));
    assert_non_null(strstr(text, "\"layers.0.norm\": \"model-00002-of-00004.safetensors\""));
    /* rewriting as one file removes the index, which would otherwise shadow model.safetensors */
    assert_int_equal(st_write_dir(dir, t, N_DIR, ST_F32, 0), 0);
    assert_false(exists_in(dir, "model.safetensors.index.json"));
    assert_true(exists_in(dir, "model.safetensors"));
    check_dir(dir, t, 1);
    /* BF16 shards: values here are multiples of 0.5 below 256, exact in bf16 */
    assert_int_equal(st_write_dir(dir, t, N_DIR, ST_BF16, 100), 0);
    assert_false(exists_in(dir, "model.safetensors"));
    check_dir(dir, t, 5);
    free(dir);
}

/* ---------------------------------------------------------------------------------------------
 * Hostile files */

static void test_truncated_and_header_length(void **state) {
    (void)state;
    float w[16] = {0};
    StWriteTensor t[2] = {{.name = "first", .data = w, .ndim = 1, .shape = {4}},
                          {.name = "second", .data = w, .ndim = 1, .shape = {16}}};
    char *path = tmp_path("truncated.safetensors");
    assert_int_equal(st_write(path, t, 2, ST_F32), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size - 3), 0);
    expect_open_fail(path, ERR_FORMAT, path, "'second'", "truncated", NULL);
    free(path);

    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    path = write_raw("hdrlen.safetensors", hdr, 100000, 4);
    expect_open_fail(path, ERR_FORMAT, path, "header length 100000", NULL);
    free(path);
    path = write_raw("hdrhuge.safetensors", hdr, 1ll << 40, 4);
    expect_open_fail(path, ERR_FORMAT, path, "header length", NULL);
    free(path);
    path = tmp_path("tiny.safetensors");
    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    expect_open_fail(path, ERR_FORMAT, path, "too short", NULL);
    free(path);
    path = tmp_path("does_not_exist.safetensors");
    expect_open_fail(path, ERR_NOTFOUND, path, NULL);
    free(path);
}

typedef struct {
    const char *stem, *header;
    size_t data_bytes;
    int code;
    const char *sub1, *sub2;
} BadCase;

static void test_bad_headers(void **state) {
    (void)state;
    static const BadCase cases[] = {
        {"offsets_range", "{\"w\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", 16, ERR_FORMAT, "'w'",
         "past the data section"},
        {"size_mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16, ERR_FORMAT, "'w'",
         "needs 16"},
        {"overlap",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
         24, ERR_FORMAT, "'b'", "overlap tensor 'a'"},
        {"dtype_unknown", "{\"w\":{\"dtype\":\"F8_E9\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, ERR_FORMAT, "F8_E9",
         "F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL"},
        {"dtype_fp8", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, ERR_UNSUPPORTED, "'w'",
         "F8_E4M3"},
        {"duplicate",
         "{\"dup\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"dup\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, ERR_FORMAT, "duplicate", "dup"},
        {"utf8", "{\"bad\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT, "bad\\xff",
         "UTF-8"},
        {"utf8_overlong", "{\"o\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT,
         "o\\xc0\\xaf", "UTF-8"},
        {"not_json", "{\"w\": {\"dtype\": F32", 4, ERR_FORMAT, "not valid JSON", "column"},
        {"not_object", "[1, 2, 3]", 4, ERR_FORMAT, "JSON object", NULL},
        {"entry_not_object", "{\"w\": 3}", 4, ERR_FORMAT, "'w'", "object"},
        {"missing_dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT, "'w'", "dtype"},
        {"bad_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, ERR_FORMAT, "'w'",
         "data_offsets"},
        {"end_before_begin", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, ERR_FORMAT, "'w'",
         "end before begin"},
        {"negative_dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1,4],\"data_offsets\":[0,16]}}", 16, ERR_FORMAT, "'w'",
         "shape[0]"},
        {"huge_dim", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1125899906842624],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT,
         "'w'", "shape[0]"},
        {"numel_overflow",
         "{\"w\":{\"dtype\":\"U8\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT,
         "'w'", "overflow"},
        {"float_dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT, "'w'",
         "shape[0]"},
        {"too_many_dims", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
         ERR_UNSUPPORTED, "'w'", "9 dims"},
        {"empty_name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT, "empty name",
         NULL},
        {"metadata_type", "{\"__metadata__\":{\"format\":1}}", 0, ERR_FORMAT, "__metadata__", "format"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const BadCase *c = &cases[i];
        char *path = write_raw(c->stem, c->header, -1, c->data_bytes);
        expect_open_fail(path, c->code, path, c->sub1, c->sub2, NULL);
        free(path);
    }
    /* the zero-size tensor and the empty archive are fine */
    char *path = write_raw("ok_zero", "{\"z\":{\"dtype\":\"BF16\",\"shape\":[3,0],\"data_offsets\":[0,0]}}", -1, 0);
    StArchive a;
    assert_int_equal(st_open(&a, path), 0);
    assert_int_equal(a.n, 1);
    st_close(&a);
    free(path);
}

/* Write `text` to dir/model.safetensors.index.json. */
static void write_index(const char *dir, const char *text) {
    char p[512];
    snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_bad_index(void **state) {
    (void)state;
    StWriteTensor t[N_DIR];
    float bufs[N_DIR][64];
    fill_dir_tensors(t, bufs);
    char *dir = tmp_path("badindex");
    assert_int_equal(st_write_dir(dir, t, N_DIR, ST_F32, 500), 0); /* [256 192 32] [192 128] */
    check_dir(dir, t, 2);
    write_index(dir, "{\"metadata\":{},\"weight_map\":{\"embed.weight\":\"model-00001-of-00002.safetensors\","
                     "\"ghost.weight\":\"model-00001-of-00002.safetensors\"}}");
    expect_open_fail(dir, ERR_NOTFOUND, "model.safetensors.index.json", "'ghost.weight'",
                     "model-00001-of-00002.safetensors", NULL);
    write_index(dir, "{\"weight_map\":{\"embed.weight\":\"../evil.safetensors\"}}");
    expect_open_fail(dir, ERR_FORMAT, "model.safetensors.index.json", "'embed.weight'", "../evil.safetensors", NULL);
    write_index(dir, "{\"weight_map\":{\"embed.weight\":\"sub/x.safetensors\"}}");
    expect_open_fail(dir, ERR_FORMAT, "model.safetensors.index.json", "'embed.weight'", NULL);
    write_index(dir, "{\"weight_map\":{\"embed.weight\":\"model-00009-of-00009.safetensors\"}}");
    expect_open_fail(dir, ERR_NOTFOUND, "model-00009-of-00009.safetensors", NULL);
    write_index(dir, "{\"weight_map\": [1]}");
    expect_open_fail(dir, ERR_FORMAT, "model.safetensors.index.json", "weight_map", NULL);
    write_index(dir, "{\"weight_map\": {\"a\": \"x\", \"a\": \"y\"}}");
    expect_open_fail(dir, ERR_FORMAT, "model.safetensors.index.json", "duplicate", NULL);
    /* a subset index keeps only the tensors it lists */
    write_index(dir, "{\"weight_map\":{\"layers.1.w\":\"model-00002-of-00002.safetensors\","
                     "\"embed.weight\":\"model-00001-of-00002.safetensors\"}}");
    StArchive a;
    assert_int_equal(st_open(&a, dir), 0);
    assert_int_equal(a.n, 2);
    assert_non_null(st_find(&a, "layers.1.w"));
    assert_null(st_find(&a, "lm_head.weight"));
    st_close(&a);
    char *empty = tmp_path("emptydir");
    assert_int_equal(mkdir(empty, 0755), 0);
    expect_open_fail(empty, ERR_NOTFOUND, empty, "model.safetensors", NULL);
    free(empty);
    free(dir);
}

/* ---------------------------------------------------------------------------------------------
 * Setup */

static int setup(void **state) {
    (void)state;
    return tmpdir_make(g_root, sizeof(g_root), "cispo_test_st");
}

static int teardown(void **state) {
    (void)state;
    return tmpdir_remove(g_root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_roundtrip),       cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_f16_rounding),        cmocka_unit_test(test_f64_and_int_dtypes),
        cmocka_unit_test(test_sharded_dir),         cmocka_unit_test(test_truncated_and_header_length),
        cmocka_unit_test(test_bad_headers),         cmocka_unit_test(test_bad_index),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
