/* tests/core/test_rng.c: Philox4x32-10 against Random123's published known answers, and the
 * draws built on it.
 * labels: unit
 *
 * Known answers: the three "philox4x32 10" lines of Random123's tests/kat_vectors
 * (github.com/DEShawResearch/random123), format "ctr[4] key[2] -> result[4]", all hex:
 *   00000000 00000000 00000000 00000000  00000000 00000000  -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8
 *   ffffffff ffffffff ffffffff ffffffff  ffffffff ffffffff  -> 408f276d 41c83b0e a20bc7c6 6d5451fd
 *   243f6a88 85a308d3 13198a2e 03707344  a4093822 299f31d0  -> d16cfe09 94fdcceb 5001e420 24126ea1
 * (the last one: the hex digits of pi).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

typedef struct {
    uint32_t ctr[4];
    uint32_t key[2];
    uint32_t expect[4];
} Kat;

static const Kat kKat[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000}, {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

static void test_known_answers(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(kKat) / sizeof(kKat[0]); i++) {
        Philox4 r = philox4x32_10(kKat[i].ctr, kKat[i].key);
        for (int w = 0; w < 4; w++) assert_int_equal(r.v[w], kKat[i].expect[w]);
    }
}

/* rng_block packs (seed, stream, counter) as documented: counter lo/hi, stream lo/hi; seed lo/hi. */
static void test_block_word_order(void **state) {
    (void)state;
    const Kat *pi = &kKat[2];
    uint64_t counter = ((uint64_t)pi->ctr[1] << 32) | pi->ctr[0];
    uint64_t stream = ((uint64_t)pi->ctr[3] << 32) | pi->ctr[2];
    uint64_t seed = ((uint64_t)pi->key[1] << 32) | pi->key[0];
    Philox4 r = rng_block(seed, stream, counter);
    for (int w = 0; w < 4; w++) assert_int_equal(r.v[w], pi->expect[w]);
    Philox4 ones = rng_block(UINT64_MAX, UINT64_MAX, UINT64_MAX);
    for (int w = 0; w < 4; w++) assert_int_equal(ones.v[w], kKat[1].expect[w]);
}

static void test_uniform_range_and_bits(void **state) {
    (void)state;
    const int n = 100000;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(42, 7, (uint64_t)i);
        assert_true(u >= 0.0 && u < 1.0);
        /* 53 random bits: u * 2^53 is a whole number. */
        double scaled = u * 9007199254740992.0;
        assert_true(scaled == floor(scaled));
        sum += u;
    }
    assert_true(fabs(sum / n - 0.5) < 0.005); /* std error 0.0009 */
    /* The all-zero block gives the known first words: u = (0x6627e8d5e169c58d >> 11) / 2^53. */
    double u0 = rng_uniform(0, 0, 0);
    assert_true(u0 == (double)(0x6627e8d5e169c58dull >> 11) / 9007199254740992.0);
}

static void test_normal_moments(void **state) {
    (void)state;
    const int n = 100000;
    double sum = 0.0, sum2 = 0.0, sum4 = 0.0;
    for (int i = 0; i < n; i++) {
        double z = rng_normal(1234, rng_stream(1, 2, 3, 4), (uint64_t)i);
        assert_true(isfinite(z));
        sum += z;
        sum2 += z * z;
        sum4 += z * z * z * z;
    }
    double mean = sum / n, var = sum2 / n - mean * mean, kurt = sum4 / n;
    assert_true(fabs(mean) < 0.015);       /* std error 0.0032 */
    assert_true(fabs(var - 1.0) < 0.025);  /* std error 0.0045 */
    assert_true(fabs(kurt - 3.0) < 0.15);  /* E[z^4] = 3 for a normal */
}

static void test_reproducible_and_streams(void **state) {
    (void)state;
    for (uint64_t c = 0; c < 100; c++) {
        assert_true(rng_uniform(5, 9, c) == rng_uniform(5, 9, c));
        assert_true(rng_normal(5, 9, c) == rng_normal(5, 9, c));
    }
    /* Different streams, seeds or counters give different blocks. */
    int same = 0;
    for (uint64_t c = 0; c < 1000; c++) {
        same += rng_uniform(5, 9, c) == rng_uniform(5, 10, c);
        same += rng_uniform(5, 9, c) == rng_uniform(6, 9, c);
        same += rng_uniform(5, 9, c) == rng_uniform(5, 9, c + 1);
    }
    assert_int_equal(same, 0);
    float a[64], b[64], c[64];
    rng_fill_normal(a, 64, 3, 100, 0.0f, 1.0f);
    rng_fill_normal(b, 64, 3, 100, 0.0f, 1.0f);
    rng_fill_normal(c, 64, 3, 101, 0.0f, 1.0f);
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, c, sizeof(a));
    /* fill_* is the scalar draw at counter i, scaled. */
    rng_fill_normal(b, 64, 3, 100, 2.0f, 0.5f);
    rng_fill_uniform(c, 64, 3, 100, -1.0f, 3.0f);
    for (int i = 0; i < 64; i++) {
        assert_true(a[i] == (float)rng_normal(3, 100, (uint64_t)i));
        assert_true(fabsf(b[i] - (2.0f + 0.5f * a[i])) < 1e-6f);
        assert_true(fabs(c[i] - (-1.0 + 4.0 * rng_uniform(3, 100, (uint64_t)i))) < 1e-6);
        assert_true(c[i] >= -1.0f && c[i] < 3.0f);
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_stream_ids_distinct(void **state) {
    (void)state;
    const int na = 16, nb = 16, nc = 16, nd = 8;
    size_t n = (size_t)na * nb * nc * nd, k = 0;
    uint64_t *ids = malloc(n * sizeof(uint64_t));
    assert_non_null(ids);
    for (int a = 0; a < na; a++)
        for (int b = 0; b < nb; b++)
            for (int c = 0; c < nc; c++)
                for (int d = 0; d < nd; d++) ids[k++] = rng_stream((uint64_t)a, (uint64_t)b, (uint64_t)c, (uint64_t)d);
    qsort(ids, n, sizeof(uint64_t), cmp_u64);
    for (size_t i = 1; i < n; i++) assert_true(ids[i] != ids[i - 1]);
    free(ids);
    /* Order matters, and the mixing is a fixed function. */
    assert_true(rng_stream(1, 2, 0, 0) != rng_stream(2, 1, 0, 0));
    assert_true(rng_stream(0, 0, 0, 1) != rng_stream(0, 0, 1, 0));
    assert_true(rng_stream(7, 8, 9, 10) == rng_stream(7, 8, 9, 10));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_block_word_order),
        cmocka_unit_test(test_uniform_range_and_bits),
        cmocka_unit_test(test_normal_moments),
        cmocka_unit_test(test_reproducible_and_streams),
        cmocka_unit_test(test_stream_ids_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
