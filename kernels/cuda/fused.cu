/* kernels/cuda/fused.cu: the fused ops of kernels/backend.h (adamw_fused, add_rmsnorm_forward and
 * _backward) and the deterministic dw reduction of the RMSNorm backward (used by norm_embed.cu too).
 * CPU reference: kernels/cpu/fused.c (the unfused sequence). Approach and invariants:
 *
 * adamw_fused, three launches and no host synchronisation:
 *   1. fused_sumsq: a fixed grid of FUSED_BLOCKS blocks; every thread walks the tensor table in order
 *      and, per tensor, a grid-stride share of its float4s (then the scalar tail) summing g^2 in
 *      float64; each block reduces in shared memory and writes one partial (padding never read);
 *   2. fused_norm: one block sums the FUSED_BLOCKS partials in a fixed order, norm_out[0] = sqrt.
 *      Fixed grid + fixed orders: the norm is bitwise reproducible run to run (no float atomics);
 *   3. fused_adamw: every thread reads the norm; non-finite: returns (nothing written); clipped:
 *      g = g * (float)(clip / norm) written back (as the CPU's `scale`); then the update of
 *      kernels/cuda/optim.cu's adamw in float64 per element, float4 loads/stores where aligned.
 *   Traffic per parameter: 4 B (norm pass) + 16 B read + 12 B written (+4 B when clipped).
 * add_rmsnorm_forward: one block per row; pass 1 forms xo = (a*x) + (b*y) (float4 where C % 4 == 0 and
 *   the pointers are 16-byte aligned), stores it and sums xo^2 in float64; pass 2 re-reads the row it
 *   wrote (the same thread owns the same elements, so xo may alias x or y) and writes out = w*(xo*rstd).
 *   FP32 operations are the CPU's, with _rn intrinsics so that nvcc does not contract them into FMAs.
 * add_rmsnorm_backward: one block per row (dot in float64; dxo += r*(w*d) - x*coef; dy = b*dxo), then
 *   rmsnorm_dw_cuda.
 * rmsnorm_dw_cuda: stage 1, blocks of 32 columns x 8 warps over a slab of rows write one partial per
 *   (slab, column) into the impl's d_rms_partial; stage 2 adds the slabs per column in slab order.
 *   The slab count depends only on (N, C): deterministic, no atomics.
 */
#include "kernels/cuda/cuda_ops.h"

#define FUSED_THREADS 256
#define FUSED_BLOCKS 1024 /* fixed grid of the norm reduction (<= CUDA_MAX_PARTIALS) and the update */
#define ROW_THREADS 256
#define DW_COLS 32
#define DW_WARPS 8
#define DW_ROWS 128 /* target rows per dw slab */

typedef struct {
    double lr, b1, b2, eps, wd, bc1, bc2, clip;
} AdamArgs;

static inline int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* grid (FUSED_BLOCKS): partial[block] = its share of sum g^2 over the table's tensors */
static __global__ void fused_sumsq_kernel(double *partial, const float *g, const OptTensor *table, int nt, int vec) {
    __shared__ double sh[32];
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    double s = 0.0;
    for (int k = 0; k < nt; k++) {
        const size_t off = table[k].offset, n = table[k].numel;
        const float *x = g + off;
        const size_t n4 = (vec && (off & 3) == 0) ? n / 4 : 0;
        const float4 *x4 = (const float4 *)x;
        for (size_t i = tid; i < n4; i += stride) {
            float4 q = x4[i];
            s += (double)q.x * q.x + (double)q.y * q.y + (double)q.z * q.z + (double)q.w * q.w;
        }
        for (size_t i = 4 * n4 + tid; i < n; i += stride) s += (double)x[i] * x[i];
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* grid (1): norm_out[0] = sqrt(sum of partial(np)) in a fixed order */
static __global__ void fused_norm_kernel(double *norm_out, const double *partial, int np) {
    __shared__ double sh[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < np; i += blockDim.x) s += partial[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) norm_out[0] = sqrt(s);
}

/* One parameter: kernels/cuda/optim.cu's adamw_kernel on the (possibly clipped) gradient gs. */
static __device__ __forceinline__ void adam_one(float &p, float gs, float &m, float &v, double wd, const AdamArgs &a) {
    double gi = gs;
    double mi = a.b1 * m + (1.0 - a.b1) * gi;
    double vi = a.b2 * v + (1.0 - a.b2) * gi * gi;
    m = (float)mi;
    v = (float)vi;
    double upd = (mi / a.bc1) / (sqrt(vi / a.bc2) + a.eps) + wd * p;
    p = (float)(p - a.lr * upd);
}

/* grid (FUSED_BLOCKS): the update of every tensor of the table, after fused_norm_kernel */
static __global__ void fused_adamw_kernel(float *p, float *g, float *m, float *v, const OptTensor *table, int nt,
                                          const double *norm_in, AdamArgs a, int vec) {
    const double norm = *norm_in;
    if (!isfinite(norm)) return;
    const bool clipped = a.clip > 0.0 && norm > a.clip;
    const float sc = clipped ? (float)(a.clip / norm) : 1.0f;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    for (int k = 0; k < nt; k++) {
        const size_t off = table[k].offset, n = table[k].numel;
        const double wd = table[k].decay ? a.wd : 0.0;
        const size_t n4 = (vec && (off & 3) == 0) ? n / 4 : 0;
        float4 *p4 = (float4 *)(p + off), *g4 = (float4 *)(g + off), *m4 = (float4 *)(m + off),
               *v4 = (float4 *)(v + off);
        for (size_t i = tid; i < n4; i += stride) {
            float4 pp = p4[i], gg = g4[i], mm = m4[i], vv = v4[i];
            if (clipped) {
                gg.x = __fmul_rn(gg.x, sc), gg.y = __fmul_rn(gg.y, sc);
                gg.z = __fmul_rn(gg.z, sc), gg.w = __fmul_rn(gg.w, sc);
                g4[i] = gg;
            }
            adam_one(pp.x, gg.x, mm.x, vv.x, wd, a);
            adam_one(pp.y, gg.y, mm.y, vv.y, wd, a);
            adam_one(pp.z, gg.z, mm.z, vv.z, wd, a);
            adam_one(pp.w, gg.w, mm.w, vv.w, wd, a);
            p4[i] = pp, m4[i] = mm, v4[i] = vv;
        }
        for (size_t i = 4 * n4 + tid; i < n; i += stride) {
            size_t j = off + i;
            float gs = g[j];
            if (clipped) g[j] = gs = __fmul_rn(gs, sc);
            adam_one(p[j], gs, m[j], v[j], wd, a);
        }
    }
}

void adamw_fused_cuda(KernelCtx *ctx, float *p, float *g, float *m, float *v, const OptTensor *table, int n_tensors,
                      double *norm_out, double clip, float lr, float b1, float b2, float eps, float wd, int t) {
    CHECK(p != NULL && g != NULL && m != NULL && v != NULL && table != NULL && norm_out != NULL,
          "adamw_fused with a NULL pointer");
    CHECK(n_tensors > 0, "adamw_fused: n_tensors=%d must be positive", n_tensors);
    CHECK(t >= 1, "adamw_fused step t=%d must be >= 1", t);
    CHECK(b1 >= 0.0f && b1 < 1.0f && b2 >= 0.0f && b2 < 1.0f, "adamw_fused betas (%g, %g) must lie in [0, 1)",
          (double)b1, (double)b2);
    CudaImpl *im = cuda_impl(ctx);
    cuda_params_touched(ctx, p, sizeof(float)); /* p starts the block: its BF16 copy is stale (gemm.cu) */
    const int vec = aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v);
    fused_sumsq_kernel<<<FUSED_BLOCKS, FUSED_THREADS, 0, im->stream>>>(im->d_partial, g, table, n_tensors, vec);
    CUDA_LAUNCH_CHECK();
    fused_norm_kernel<<<1, FUSED_THREADS, 0, im->stream>>>(norm_out, im->d_partial, FUSED_BLOCKS);
    CUDA_LAUNCH_CHECK();
    AdamArgs a;
    a.lr = lr, a.b1 = b1, a.b2 = b2, a.eps = eps, a.wd = wd, a.clip = clip;
    a.bc1 = 1.0 - pow((double)b1, t), a.bc2 = 1.0 - pow((double)b2, t);
    fused_adamw_kernel<<<FUSED_BLOCKS, FUSED_THREADS, 0, im->stream>>>(p, g, m, v, table, n_tensors, norm_out, a, vec);
    CUDA_LAUNCH_CHECK();
}

/* xo = (a*x) + (b*y) with the CPU's rounding (no FMA) */
static __device__ __forceinline__ float res_add(float a, float x, float b, float y) {
    return __fadd_rn(__fmul_rn(a, x), __fmul_rn(b, y));
}

/* grid (N): one row; pass 1 xo and sum xo^2, pass 2 out = w * (xo * rstd) */
static __global__ void add_rmsnorm_forward_kernel(float *xo, float *out, float *rstd, const float *x, float a,
                                                  const float *y, float b, const float *w, int C, float eps,
                                                  int vec) {
    __shared__ double sh[32];
    const size_t row = (size_t)blockIdx.x * C;
    double ss = 0.0;
    if (vec) {
        const float4 *x4 = (const float4 *)(x + row), *y4 = (const float4 *)(y + row);
        float4 *o4 = (float4 *)(xo + row);
        for (int c = threadIdx.x; c < C / 4; c += blockDim.x) {
            float4 u = x4[c], z = y4[c], r;
            r.x = res_add(a, u.x, b, z.x), r.y = res_add(a, u.y, b, z.y);
            r.z = res_add(a, u.z, b, z.z), r.w = res_add(a, u.w, b, z.w);
            o4[c] = r;
            ss += (double)r.x * r.x + (double)r.y * r.y + (double)r.z * r.z + (double)r.w * r.w;
        }
    } else {
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float r = res_add(a, x[row + c], b, y[row + c]);
            xo[row + c] = r;
            ss += (double)r * r;
        }
    }
    ss = block_sum(ss, sh);
    const float var = (float)(ss / C);
    const float r = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(var, eps)));
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    if (vec) {
        const float4 *o4 = (const float4 *)(xo + row), *w4 = (const float4 *)w;
        float4 *n4 = (float4 *)(out + row);
        for (int c = threadIdx.x; c < C / 4; c += blockDim.x) {
            float4 u = o4[c], ww = w4[c], q;
            q.x = __fmul_rn(ww.x, __fmul_rn(u.x, r)), q.y = __fmul_rn(ww.y, __fmul_rn(u.y, r));
            q.z = __fmul_rn(ww.z, __fmul_rn(u.z, r)), q.w = __fmul_rn(ww.w, __fmul_rn(u.w, r));
            n4[c] = q;
        }
    } else {
        for (int c = threadIdx.x; c < C; c += blockDim.x) out[row + c] = __fmul_rn(w[c], __fmul_rn(xo[row + c], r));
    }
}

void add_rmsnorm_forward_cuda(KernelCtx *ctx, float *xo, float *out, float *rstd, const float *x, float a,
                              const float *y, float b, const float *w, int N, int C, float eps) {
    CHECK(N > 0 && C > 0, "add_rmsnorm sizes N=%d C=%d must be positive", N, C);
    CHECK(xo != NULL && out != NULL && rstd != NULL && x != NULL && y != NULL && w != NULL,
          "add_rmsnorm_forward with a NULL pointer");
    const int vec = C % 4 == 0 && aligned16(xo) && aligned16(out) && aligned16(x) && aligned16(y) && aligned16(w);
    add_rmsnorm_forward_kernel<<<N, ROW_THREADS, 0, cuda_impl(ctx)->stream>>>(xo, out, rstd, x, a, y, b, w, C, eps,
                                                                               vec);
    CUDA_LAUNCH_CHECK();
}

/* grid (N): dxo += r*(w*d) - x*coef (in place), dy = b * dxo (when dy != NULL) */
static __global__ void add_rmsnorm_backward_kernel(float *dxo, float *dy, const float *dout, const float *xo,
                                                   const float *w, const float *rstd, float b, int C) {
    __shared__ double sh[32];
    const size_t row = (size_t)blockIdx.x * C;
    const float *xr = xo + row, *d = dout + row;
    const float r = rstd[blockIdx.x];
    double dot = 0.0; /* sum_c x * w * dout, as the CPU: ((double)x * w) * dout */
    for (int c = threadIdx.x; c < C; c += blockDim.x) dot += __dmul_rn(__dmul_rn((double)xr[c], (double)w[c]), (double)d[c]);
    dot = block_sum(dot, sh);
    const float coef = __fmul_rn(__fmul_rn(__fmul_rn((float)(dot / C), r), r), r);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float tot = __fadd_rn(dxo[row + c], __fsub_rn(__fmul_rn(r, __fmul_rn(w[c], d[c])), __fmul_rn(xr[c], coef)));
        dxo[row + c] = tot;
        if (dy) dy[row + c] = __fmul_rn(tot, b);
    }
}

/* grid (ceil(C/DW_COLS), S), block (DW_COLS, DW_WARPS): partial[s][c] = sum over slab s of dout*(x*rstd) */
static __global__ void rms_dw_partial_kernel(float *partial, const float *dout, const float *x, const float *rstd,
                                             int N, int C, int rows_per_slab) {
    __shared__ float sh[DW_WARPS][DW_COLS];
    const int c = blockIdx.x * DW_COLS + threadIdx.x;
    const int n0 = blockIdx.y * rows_per_slab, n1 = min(N, n0 + rows_per_slab);
    float acc = 0.0f;
    if (c < C)
        for (int n = n0 + threadIdx.y; n < n1; n += DW_WARPS) {
            size_t i = (size_t)n * C + c;
            acc += dout[i] * (x[i] * rstd[n]);
        }
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float s = sh[0][threadIdx.x];
        for (int k = 1; k < DW_WARPS; k++) s += sh[k][threadIdx.x];
        partial[(size_t)blockIdx.y * C + c] = s;
    }
}

/* grid (ceil(C/256)): dw[c] += sum of partial(S, C)[., c] in slab order */
static __global__ void rms_dw_reduce_kernel(float *dw, const float *partial, int S, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int k = 0; k < S; k++) s += partial[(size_t)k * C + c];
    dw[c] += s;
}

void rmsnorm_dw_cuda(KernelCtx *ctx, float *dw, const float *dout, const float *x, const float *rstd, int N, int C) {
    CHECK(N > 0 && C > 0 && C <= CUDA_RMS_PARTIAL_FLOATS, "rmsnorm dw sizes N=%d C=%d (C <= %d)", N, C,
          CUDA_RMS_PARTIAL_FLOATS);
    CudaImpl *im = cuda_impl(ctx);
    long S = (N + DW_ROWS - 1) / DW_ROWS;
    long cap = CUDA_RMS_PARTIAL_FLOATS / C;
    if (S > cap) S = cap;
    if (S > 65535) S = 65535;
    const int rows = (int)((N + S - 1) / S);
    S = (N + rows - 1) / rows; /* no empty slab */
    dim3 grid((unsigned)((C + DW_COLS - 1) / DW_COLS), (unsigned)S), block(DW_COLS, DW_WARPS);
    rms_dw_partial_kernel<<<grid, block, 0, im->stream>>>(im->d_rms_partial, dout, x, rstd, N, C, rows);
    CUDA_LAUNCH_CHECK();
    rms_dw_reduce_kernel<<<(C + 255) / 256, 256, 0, im->stream>>>(dw, im->d_rms_partial, (int)S, C);
    CUDA_LAUNCH_CHECK();
}

void add_rmsnorm_backward_cuda(KernelCtx *ctx, float *dxo, float *dy, float *dw, const float *dout, const float *xo,
                               const float *w, const float *rstd, float b, int N, int C) {
    CHECK(N > 0 && C > 0, "add_rmsnorm sizes N=%d C=%d must be positive", N, C);
    CHECK(dxo != NULL && dw != NULL && dout != NULL && xo != NULL && w != NULL && rstd != NULL,
          "add_rmsnorm_backward with a NULL pointer");
    add_rmsnorm_backward_kernel<<<N, ROW_THREADS, 0, cuda_impl(ctx)->stream>>>(dxo, dy, dout, xo, w, rstd, b, C);
    CUDA_LAUNCH_CHECK();
    rmsnorm_dw_cuda(ctx, dw, dout, xo, rstd, N, C);
}
