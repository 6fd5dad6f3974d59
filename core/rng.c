/* core/rng.c: Philox4x32-10 (Salmon et al., SC11 "Parallel Random Numbers: As Easy as 1, 2, 3")
 * and the draws built on it (see rng.h).
 *
 * A Philox round multiplies counter words 0 and 2 by two constants, keeps the 64-bit products'
 * high and low halves, and mixes them with the other words and the key:
 *   (c0, c1, c2, c3) -> (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))
 * and the key is bumped by the Weyl constants between rounds. Ten rounds; checked against the
 * Random123 known-answer vectors in tests/core/test_rng.c.
 *
 * Every draw is a pure function of (seed, stream, counter): no state, so any draw can be redone
 * on any rank, and a resumed run makes exactly the draws the original run would have.
 */
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define PHILOX_ROUNDS 10

static const double kTwoPi = 6.283185307179586476925286766559;

Philox4 philox4x32_10(const uint32_t c[4], const uint32_t k[2]) {
    uint32_t x0 = c[0], x1 = c[1], x2 = c[2], x3 = c[3];
    uint32_t k0 = k[0], k1 = k[1];
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * x0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * x2;
        uint32_t y0 = (uint32_t)(p1 >> 32) ^ x1 ^ k0;
        uint32_t y1 = (uint32_t)p1;
        uint32_t y2 = (uint32_t)(p0 >> 32) ^ x3 ^ k1;
        uint32_t y3 = (uint32_t)p0;
        x0 = y0;
        x1 = y1;
        x2 = y2;
        x3 = y3;
    }
    Philox4 out = {{x0, x1, x2, x3}};
    return out;
}

Philox4 rng_block(uint64_t seed, uint64_t stream, uint64_t counter) {
    const uint32_t c[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    const uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    return philox4x32_10(c, k);
}

/* 53 random bits from two 32-bit words, as a double in [0, 1). */
static double unit53(uint32_t hi, uint32_t lo) {
    uint64_t bits = (((uint64_t)hi << 32) | lo) >> 11;
    return (double)bits * 0x1.0p-53;
}

double rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
    Philox4 b = rng_block(seed, stream, counter);
    return unit53(b.v[0], b.v[1]);
}

double rng_normal(uint64_t seed, uint64_t stream, uint64_t counter) {
    Philox4 b = rng_block(seed, stream, counter);
    double u1 = 1.0 - unit53(b.v[0], b.v[1]); /* (0, 1]: log is finite */
    double u2 = unit53(b.v[2], b.v[3]);
    return sqrt(-2.0 * log(u1)) * cos(kTwoPi * u2);
}

/* A bijective 64-bit finaliser (xor-shift-multiply, the constants of SplitMix64). */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

uint64_t rng_stream(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    /* Each step h -> mix(h + G*(id+1)) is a bijection in h for a fixed id and in id for a fixed h,
     * so tuples that differ in one position never collide; otherwise collisions are ~2^-64. */
    const uint64_t g = 0x9E3779B97F4A7C15ull;
    uint64_t h = mix64(g * (a + 1));
    h = mix64(h + g * (b + 1));
    h = mix64(h + g * (c + 1));
    h = mix64(h + g * (d + 1));
    return h;
}

void rng_fill_normal(float *x, size_t n, uint64_t seed, uint64_t stream, float mean, float std) {
    for (size_t i = 0; i < n; i++) x[i] = mean + std * (float)rng_normal(seed, stream, (uint64_t)i);
}

void rng_fill_uniform(float *x, size_t n, uint64_t seed, uint64_t stream, float lo, float hi) {
    /* In double, then rounded to float; a value that rounds up to hi is pulled back below it so
     * the range stays half-open as for rng_uniform. */
    const float below_hi = nextafterf(hi, lo);
    for (size_t i = 0; i < n; i++) {
        float v = (float)((double)lo + ((double)hi - (double)lo) * rng_uniform(seed, stream, (uint64_t)i));
        x[i] = (hi > lo && v >= hi) ? below_hi : v;
    }
}
