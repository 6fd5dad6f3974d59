/* kernels/cuda/sample.cu: the sampling op on the GPU, one block per row, no sort.
 *
 * Semantics: kernels/backend.h `sample`, i.e. rollout/sampler.c's sampler_draw (the CPU op in
 * kernels/cpu/sample.c is that math). Per row, with SAMPLE_THREADS threads:
 * 1. argmax (first maximum: ties to the lower id), kept with its value (temperature <= 0: done);
 * 2. e = expf((l - max) / T) written over the logits, float64 sum, then p = (float)(e / sum) in
 *    place, so every later pass reads the row's probabilities (L2-resident) instead of recomputing;
 * 3. top_p >= 1: the CPU walks the ids in id order, so the draw is an id-order prefix search: each
 *    thread owns a contiguous range, sums it in float64, the partial sums are scanned, and the
 *    thread whose range holds the crossing walks it (first id with u < cumulative mass);
 *    top_p < 1: the CPU walks the ids sorted by (p descending, id ascending). Instead of sorting,
 *    `select_sorted` finds the first element of that order at which the cumulative mass reaches a
 *    target (>= for the nucleus, > for the draw), by a radix select over the float bits of p
 *    (p >= 0, so the bits order like the values): four 8-bit passes, each a mass histogram (per
 *    warp, warp-aggregated atomics) of the candidates that match the digits chosen so far, scanned
 *    from the top; then the tied
 *    elements of the chosen value (ordered by id) are counted to find which one crosses, and the
 *    k-th of them is found by a contiguous-range count and scan. Masses in the histograms are
 *    fixed point (floor(p * 2^62) as 64-bit integers), so the shared-memory atomics are exact and
 *    the result does not depend on their order (deterministic); the truncation costs < V * 2^-62.
 * 4. kept mass and entropy in float64 over the nucleus (block reductions); u = uniform * kept with
 *    the uniform of core/rng.c (Philox4x32-10, ported below bit for bit); the drawn element; a draw
 *    past the nucleus (rounding) falls back to the nucleus's last element, as the CPU's default.
 * Agreement with the CPU: the same probabilities up to expf's last bit (CUDA expf: 2 ulp) and
 * float64 summation order, so tokens match except where the uniform lies within ~1e-7 of a CDF
 * boundary; log-probs to ~1e-6.
 * Workspace (sample_ws_bytes): the uploaded stream(B) | counter(B) (uint64).
 */
#include "kernels/cuda/cuda_ops.h"

#include <limits.h>
#include <stdint.h>

#define SAMPLE_THREADS 256
#define SAMPLE_WARPS (SAMPLE_THREADS / 32)
#define SAMPLE_BUCKETS 256
#define SAMPLE_FIX 4611686018427387904.0 /* 2^62: fixed-point scale of probability masses */

typedef unsigned long long u64;

/* Philox4x32-10 of core/rng.c, and its 53-bit uniform. */
static __device__ double sample_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
    uint32_t x0 = (uint32_t)counter, x1 = (uint32_t)(counter >> 32), x2 = (uint32_t)stream,
             x3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
        uint32_t hi0 = __umulhi(m0, x0), lo0 = m0 * x0;
        uint32_t hi1 = __umulhi(m1, x2), lo1 = m1 * x2;
        uint32_t y0 = hi1 ^ x1 ^ k0, y2 = hi0 ^ x3 ^ k1;
        x0 = y0;
        x1 = lo1;
        x2 = y2;
        x3 = lo0;
    }
    uint64_t bits = (((uint64_t)x0 << 32) | x1) >> 11;
    return (double)bits * 0x1.0p-53;
}

typedef struct {
    u64 mass[SAMPLE_WARPS][SAMPLE_BUCKETS];          /* per-warp histograms (row 0 gets the totals) */
    unsigned cnt[SAMPLE_WARPS][SAMPLE_BUCKETS];
    double dscan[SAMPLE_THREADS];                     /* per-thread float64 partial sums */
    unsigned uscan[SAMPLE_THREADS];                   /* per-thread counts */
    double red_d[32];
    float red_f[32];
    int red_i[32];
    unsigned prefix, cnt_sel;
    u64 above;
    int id;
} SampleShared;

/* The position of an element in the CPU's sorted order: larger key = earlier. */
static __device__ __forceinline__ u64 sample_key(unsigned bits, int id) {
    return ((u64)bits << 32) | (u64)(0xFFFFFFFFu - (unsigned)id);
}

static __device__ __forceinline__ u64 sample_fix(float p) { return (u64)((double)p * SAMPLE_FIX); }

/* Block argmax of the row: value and lowest id of the maximum (every thread gets both). */
static __device__ void row_argmax(const float *l, int V, float *vmax, int *imax, SampleShared *sh) {
    float v = -INFINITY;
    int i = INT_MAX;
    for (int j = threadIdx.x; j < V; j += SAMPLE_THREADS)
        if (i == INT_MAX || l[j] > v) v = l[j], i = j;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ov > v || (ov == v && oi < i)) v = ov, i = oi;
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh->red_f[threadIdx.x >> 5] = v, sh->red_i[threadIdx.x >> 5] = i;
    __syncthreads();
    v = sh->red_f[0], i = sh->red_i[0];
    for (int w = 1; w < SAMPLE_WARPS; w++)
        if (sh->red_f[w] > v || (sh->red_f[w] == v && sh->red_i[w] < i)) v = sh->red_f[w], i = sh->red_i[w];
    *vmax = v;
    *imax = i;
}

/* Contiguous range [*lo, *hi) of the row owned by this thread in the id-order passes. */
static __device__ __forceinline__ void thread_range(int V, int *lo, int *hi) {
    int chunk = (V + SAMPLE_THREADS - 1) / SAMPLE_THREADS;
    *lo = min(V, (int)threadIdx.x * chunk);
    *hi = min(V, *lo + chunk);
}

/* One radix pass: the histogram over digit (bits >> shift) & 255 of the elements whose bits match
 * prefix under mask; thread 0 picks the first bucket (from the top) where above + mass reaches
 * target (or the lowest non-empty one) and updates sh->prefix, sh->above, sh->cnt_sel. */
static __device__ void radix_pass(const float *p, int V, unsigned prefix, unsigned mask, int shift, u64 above,
                                  u64 target, int strict, SampleShared *sh) {
    const int tid = threadIdx.x, warp = tid >> 5;
    for (int i = tid; i < SAMPLE_WARPS * SAMPLE_BUCKETS; i += SAMPLE_THREADS) {
        (&sh->mass[0][0])[i] = 0;
        (&sh->cnt[0][0])[i] = 0;
    }
    __syncthreads();
    /* Warp-aggregated: lanes with the same digit (most of a row shares a few exponents) sum their
     * masses with __reduce_add_sync on three 21-bit pieces (32 x 2^21 fits in 32 bits; masses are
     * < 2^63), and one lane adds the group's total: conflict-free atomics. The loop bound is
     * uniform over the warp, so every lane takes part in every match/reduce. */
    for (int j0 = 0; j0 < V; j0 += SAMPLE_THREADS) {
        const int j = j0 + tid;
        unsigned key = 0xFFFFFFFFu; /* not a candidate */
        u64 f = 0;
        if (j < V) {
            const float pj = p[j];
            const unsigned bits = __float_as_uint(pj);
            if ((bits & mask) == prefix) key = (bits >> shift) & 255u, f = sample_fix(pj);
        }
        const unsigned peers = __match_any_sync(0xffffffffu, key);
        const unsigned s0 = __reduce_add_sync(peers, (unsigned)(f & 0x1FFFFFu));
        const unsigned s1 = __reduce_add_sync(peers, (unsigned)((f >> 21) & 0x1FFFFFu));
        const unsigned s2 = __reduce_add_sync(peers, (unsigned)(f >> 42));
        if (key != 0xFFFFFFFFu && (tid & 31) == __ffs(peers) - 1) {
            atomicAdd(&sh->mass[warp][key], ((u64)s2 << 42) + ((u64)s1 << 21) + (u64)s0);
            atomicAdd(&sh->cnt[warp][key], (unsigned)__popc(peers));
        }
    }
    __syncthreads();
    for (int d = tid; d < SAMPLE_BUCKETS; d += SAMPLE_THREADS) { /* column d only: no race */
        u64 m = 0;
        unsigned c = 0;
        for (int w = 0; w < SAMPLE_WARPS; w++) m += sh->mass[w][d], c += sh->cnt[w][d];
        sh->mass[0][d] = m;
        sh->cnt[0][d] = c;
    }
    __syncthreads();
    if (tid == 0) {
        int chosen = -1;
        u64 acc = above, before = above;
        for (int d = SAMPLE_BUCKETS - 1; d >= 0 && chosen < 0; d--) {
            if (sh->cnt[0][d] == 0) continue;
            u64 m = acc + sh->mass[0][d];
            before = acc;
            sh->cnt_sel = sh->cnt[0][d];
            sh->prefix = prefix | ((unsigned)d << shift);
            if (strict ? m > target : m >= target) chosen = d;
            acc = m;
        }
        sh->above = before; /* not reached: the lowest non-empty bucket, the order's last values */
    }
    __syncthreads();
}

/* The first element, in the order (p descending, id ascending), at which the cumulative fixed-point
 * mass reaches target (strict: exceeds it); the last element when it never does. Returns its key. */
static __device__ u64 select_sorted(const float *p, int V, u64 target, int strict, SampleShared *sh) {
    unsigned prefix = 0, mask = 0;
    u64 above = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        radix_pass(p, V, prefix, mask, shift, above, target, strict, sh);
        prefix = sh->prefix;
        above = sh->above;
        mask |= 255u << shift;
    }
    const unsigned c = sh->cnt_sel;
    /* c elements hold the value p*; the k-th of them (by id) is the one that crosses */
    const u64 f = sample_fix(__uint_as_float(prefix));
    u64 k = 1;
    if (f == 0) k = c;
    else if (target >= above) k = strict ? (target - above) / f + 1 : (target - above + f - 1) / f;
    if (k < 1) k = 1;
    if (k > c) k = c;
    int lo, hi;
    thread_range(V, &lo, &hi);
    unsigned n = 0;
    for (int j = lo; j < hi; j++) n += __float_as_uint(p[j]) == prefix;
    sh->uscan[threadIdx.x] = n;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned run = 0;
        for (int t = 0; t < SAMPLE_THREADS; t++) {
            unsigned x = sh->uscan[t];
            sh->uscan[t] = run;
            run += x;
        }
    }
    __syncthreads();
    const u64 excl = sh->uscan[threadIdx.x];
    if (excl < k && k <= excl + n) {
        u64 seen = excl;
        for (int j = lo; j < hi; j++)
            if (__float_as_uint(p[j]) == prefix && ++seen == k) {
                sh->id = j;
                break;
            }
    }
    __syncthreads();
    return sample_key(prefix, sh->id);
}

/* top_p >= 1: the first id (id order) whose cumulative float64 mass exceeds u; V-1 when none. */
static __device__ int select_id_order(const float *p, int V, double u, SampleShared *sh) {
    int lo, hi;
    thread_range(V, &lo, &hi);
    double s = 0;
    for (int j = lo; j < hi; j++) s += p[j];
    sh->dscan[threadIdx.x] = s;
    if (threadIdx.x == 0) sh->id = V - 1;
    __syncthreads();
    if (threadIdx.x == 0) {
        double run = 0;
        for (int t = 0; t < SAMPLE_THREADS; t++) {
            double x = sh->dscan[t];
            sh->dscan[t] = run;
            run += x;
        }
    }
    __syncthreads();
    double acc = sh->dscan[threadIdx.x];
    for (int j = lo; j < hi; j++) {
        acc += p[j];
        if (u < acc) {
            atomicMin(&sh->id, j);
            break;
        }
    }
    __syncthreads();
    return sh->id;
}

/* logits(B,V) (overwritten with probabilities); rng(2B) = stream | counter; outputs (B). */
__global__ void __launch_bounds__(SAMPLE_THREADS)
sample_kernel(int *tokens, float *logprob, float *prob_raw, float *entropy, float *logits, const uint64_t *rng,
              int B, int V, float temperature, float top_p, uint64_t seed) {
    __shared__ SampleShared sh;
    const int b = blockIdx.x;
    float *p = logits + (size_t)b * V;
    float mx;
    int best;
    row_argmax(p, V, &mx, &best, &sh);
    if (temperature <= 0.0f) {
        if (threadIdx.x == 0) tokens[b] = best, logprob[b] = 0.0f, prob_raw[b] = 1.0f, entropy[b] = 0.0f;
        return;
    }
    double s = 0;
    for (int j = threadIdx.x; j < V; j += SAMPLE_THREADS) {
        float e = expf((p[j] - mx) / temperature);
        p[j] = e;
        s += e;
    }
    const double sum = block_sum(s, sh.red_d);
    for (int j = threadIdx.x; j < V; j += SAMPLE_THREADS) p[j] = (float)((double)p[j] / sum);
    __syncthreads(); /* later passes read other threads' elements */
    const int nucleus = top_p < 1.0f;
    u64 keep_key = 0;
    if (nucleus) keep_key = select_sorted(p, V, (u64)((double)top_p * SAMPLE_FIX), 0, &sh);
    double kept = 0;
    for (int j = threadIdx.x; j < V; j += SAMPLE_THREADS)
        if (!nucleus || sample_key(__float_as_uint(p[j]), j) >= keep_key) kept += p[j];
    kept = block_sum(kept, sh.red_d);
    double ent = 0;
    for (int j = threadIdx.x; j < V; j += SAMPLE_THREADS)
        if (!nucleus || sample_key(__float_as_uint(p[j]), j) >= keep_key) {
            double q = p[j] / kept;
            if (q > 0) ent -= q * log(q);
        }
    ent = block_sum(ent, sh.red_d);
    const double u = sample_uniform(seed, rng[b], rng[B + b]) * kept;
    int tok;
    if (nucleus) {
        u64 key = select_sorted(p, V, (u64)(u * SAMPLE_FIX), 1, &sh);
        if (key < keep_key) key = keep_key;
        tok = (int)(0xFFFFFFFFu - (unsigned)(key & 0xFFFFFFFFull));
    } else {
        tok = select_id_order(p, V, u, &sh);
    }
    if (threadIdx.x == 0) {
        float pt = p[tok];
        tokens[b] = tok;
        logprob[b] = (float)log(pt / kept);
        prob_raw[b] = pt;
        entropy[b] = (float)ent;
    }
}

size_t sample_ws_bytes_cuda(int B, int V) {
    (void)V;
    return (size_t)B * 2 * sizeof(uint64_t);
}

void sample_cuda(KernelCtx *ctx, int *tokens, float *logprob, float *prob_raw, float *entropy, float *logits,
                 const uint64_t *stream, const uint64_t *counter, int B, int V, float temperature, float top_p,
                 uint64_t seed) {
    CHECK(B >= 1 && V >= 1, "sample: B=%d V=%d", B, V);
    CHECK(tokens && logprob && prob_raw && entropy && logits && stream && counter, "sample with a NULL pointer");
    const size_t need = sample_ws_bytes_cuda(B, V);
    CHECK(ctx->ws != NULL && ctx->ws_bytes >= need, "sample needs %zu workspace bytes (B=%d), has %zu", need, B,
          ctx->ws_bytes);
    cudaStream_t st = cuda_impl(ctx)->stream;
    uint64_t *rng = (uint64_t *)ctx->ws;
    CUDA_CHECK(cudaMemcpyAsync(rng, stream, (size_t)B * sizeof(uint64_t), cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaMemcpyAsync(rng + B, counter, (size_t)B * sizeof(uint64_t), cudaMemcpyHostToDevice, st));
    sample_kernel<<<B, SAMPLE_THREADS, 0, st>>>(tokens, logprob, prob_raw, entropy, logits, rng, B, V, temperature,
                                                 top_p, seed);
    CUDA_LAUNCH_CHECK();
}
