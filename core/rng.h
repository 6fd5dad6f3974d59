/* core/rng.h: a counter-based random generator (Philox4x32-10, Salmon et al. 2011, as in
 * Random123), keyed by (seed, stream, counter), so any draw can be reproduced without replaying the
 * ones before it (DESIGN.md §4). The 64-bit seed is the 2x32-bit key; the 128-bit counter is
 * (stream, counter) as two 64-bit halves (word order: counter lo, counter hi, stream lo, stream hi).
 * Streams are chosen by the caller (e.g. hash of rank, step, sample): see rng_stream().
 */
#ifndef CISPO_CORE_RNG_H
#define CISPO_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t v[4];
} Philox4;

/* The raw block: Philox4x32-10 of counter words c[4] under key words k[2]. */
Philox4 philox4x32_10(const uint32_t c[4], const uint32_t k[2]);
/* Block for (seed, stream, counter). */
Philox4 rng_block(uint64_t seed, uint64_t stream, uint64_t counter);
/* Uniform double in [0, 1) with 53 random bits from block (seed, stream, counter). */
double rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);
/* Standard normal (Box-Muller on the block's two 53-bit uniforms... first output). */
double rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);
/* Combine up to four ids into one stream id (a fixed mixing function; distinct tuples give
 * distinct streams with overwhelming probability). */
uint64_t rng_stream(uint64_t a, uint64_t b, uint64_t c, uint64_t d);
/* x[i] = mean + std * rng_normal(seed, stream, i) for i in [0, n). */
void rng_fill_normal(float *x, size_t n, uint64_t seed, uint64_t stream, float mean, float std);
/* x[i] = lo + (hi - lo) * rng_uniform(seed, stream, i). */
void rng_fill_uniform(float *x, size_t n, uint64_t seed, uint64_t stream, float lo, float hi);

#endif
