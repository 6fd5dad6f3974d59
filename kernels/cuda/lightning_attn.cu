/* kernels/cuda/lightning_attn.cu: lightning attention (MiniMax linear attention with per-head
 * decay, ALGORITHMS.md §11.2-3), the naive recurrent form: a first, exact CUDA version, to be
 * replaced by the chunk-parallel tensor-core kernels of KERNELS.md.
 *
 * Per sequence (tokens t0..t1-1) and head h, lambda = exp(-s_h), S(HS, HS) starting at S0 = kv_in
 * (or 0):  S_t = lambda S_{t-1} + k_t^T v_t,  o_t = q_t S_t,  kv_out = S after the last token.
 * This is the same function as the CPU's block-wise algorithm (kernels/cpu/lightning_attn.c);
 * `block` does not change the result and is not used here.
 * Backward (no gradient arrives on kv_out), with G_t = dL/dS_t:
 *   forward sweep (S recomputed):  dq_t[d] += sum_e do_t[e] S_t[d][e]
 *   reverse sweep:  G_t = lambda G_{t+1} + q_t^T do_t (G after the last token = 0);
 *                   dk_t[d] += sum_e G_t[d][e] v_t[e];  dv_t[e] += sum_d G_t[d][e] k_t[d];
 *                   dS0 += lambda G_{t0}.
 * Layout: one thread block per (head, sequence) walks the tokens in order; the state lives in
 * shared memory in float64 (rows padded to HS+1), so the decay lambda^n is applied without the
 * rounding drift of repeated float multiplications; q, k, v (and do) of the current token are
 * staged in shared memory. HS is limited by the shared memory a block may opt in to (HS <= 160 on
 * Hopper). Decode (one token per sequence) follows the CPU's FP32 formula exactly, one thread per
 * value column. No workspace.
 */
#include <math.h>

#include "kernels/cuda/cuda_ops.h"

#define LA_THREADS 256

static size_t la_smem_bytes(int HS) {
    return (size_t)HS * (HS + 1) * sizeof(double) + 4 * (size_t)HS * sizeof(float);
}

/* grid (B, NH): out(N, NH, HS), kv_out(B, NH, HS, HS) or NULL, from qkv(N, NH, 3HS), kv_in or NULL */
static __global__ void la_forward_kernel(float *out, float *kv_out, const float *qkv, const float *kv_in,
                                         const float *slopes, const int *start, int NH, int HS) {
    extern __shared__ double la_smem[];
    const int b = blockIdx.x, h = blockIdx.y, ld = HS + 1, nS = HS * HS;
    double *S = la_smem;                          /* (HS, ld) */
    float *q = (float *)(S + (size_t)HS * ld);    /* (HS) then k (HS), v (HS) */
    const float *k = q + HS, *v = q + 2 * HS;
    const double lam = exp(-(double)slopes[h]);
    const size_t sb = ((size_t)b * NH + h) * nS;
    const int t0 = start[b], t1 = start[b + 1];
    for (int i = threadIdx.x; i < nS; i += blockDim.x) S[(i / HS) * ld + i % HS] = kv_in ? kv_in[sb + i] : 0.0;
    for (int t = t0; t < t1; t++) {
        const float *row = qkv + ((size_t)t * NH + h) * 3 * HS; /* q | k | v */
        __syncthreads(); /* the previous token is done with q, k, v and S */
        for (int i = threadIdx.x; i < 3 * HS; i += blockDim.x) q[i] = row[i];
        __syncthreads();
        for (int i = threadIdx.x; i < nS; i += blockDim.x) {
            int d = i / HS, e = i % HS;
            S[d * ld + e] = lam * S[d * ld + e] + (double)k[d] * v[e];
        }
        __syncthreads();
        for (int e = threadIdx.x; e < HS; e += blockDim.x) {
            double acc = 0.0;
            for (int d = 0; d < HS; d++) acc += (double)q[d] * S[d * ld + e];
            out[((size_t)t * NH + h) * HS + e] = (float)acc;
        }
    }
    __syncthreads();
    if (kv_out)
        for (int i = threadIdx.x; i < nS; i += blockDim.x) kv_out[sb + i] = (float)S[(i / HS) * ld + i % HS];
}

/* Stage token t's q | k | v and do into shared memory (q then k, v, dO contiguous). */
static __device__ __forceinline__ void la_load_token(float *q, const float *qkv, const float *dout, int t, int h,
                                                     int NH, int HS) {
    const float *row = qkv + ((size_t)t * NH + h) * 3 * HS;
    const float *drow = dout + ((size_t)t * NH + h) * HS;
    for (int i = threadIdx.x; i < 3 * HS; i += blockDim.x) q[i] = row[i];
    for (int i = threadIdx.x; i < HS; i += blockDim.x) q[3 * HS + i] = drow[i];
}

/* grid (B, NH): dqkv(N, NH, 3HS) and dkv_in (or NULL) accumulate */
static __global__ void la_backward_kernel(float *dqkv, float *dkv_in, const float *dout, const float *qkv,
                                          const float *kv_in, const float *slopes, const int *start, int NH, int HS) {
    extern __shared__ double la_smem[];
    const int b = blockIdx.x, h = blockIdx.y, ld = HS + 1, nS = HS * HS;
    double *S = la_smem; /* (HS, ld): the state in the forward sweep, G in the reverse sweep */
    float *q = (float *)(S + (size_t)HS * ld);
    const float *k = q + HS, *v = q + 2 * HS, *dO = q + 3 * HS;
    const double lam = exp(-(double)slopes[h]);
    const size_t sb = ((size_t)b * NH + h) * nS;
    const int t0 = start[b], t1 = start[b + 1];
    if (t1 == t0) return; /* an empty sequence: nothing reaches dS0 */
    /* forward sweep: dq */
    for (int i = threadIdx.x; i < nS; i += blockDim.x) S[(i / HS) * ld + i % HS] = kv_in ? kv_in[sb + i] : 0.0;
    for (int t = t0; t < t1; t++) {
        __syncthreads();
        la_load_token(q, qkv, dout, t, h, NH, HS);
        __syncthreads();
        for (int i = threadIdx.x; i < nS; i += blockDim.x) {
            int d = i / HS, e = i % HS;
            S[d * ld + e] = lam * S[d * ld + e] + (double)k[d] * v[e];
        }
        __syncthreads();
        float *dq = dqkv + ((size_t)t * NH + h) * 3 * HS;
        for (int d = threadIdx.x; d < HS; d += blockDim.x) {
            double acc = 0.0;
            for (int e = 0; e < HS; e++) acc += (double)dO[e] * S[d * ld + e];
            dq[d] += (float)acc;
        }
    }
    /* reverse sweep: dk, dv, dS0 */
    __syncthreads();
    for (int i = threadIdx.x; i < nS; i += blockDim.x) S[(i / HS) * ld + i % HS] = 0.0;
    for (int t = t1 - 1; t >= t0; t--) {
        __syncthreads();
        la_load_token(q, qkv, dout, t, h, NH, HS);
        __syncthreads();
        for (int i = threadIdx.x; i < nS; i += blockDim.x) {
            int d = i / HS, e = i % HS;
            S[d * ld + e] = lam * S[d * ld + e] + (double)q[d] * dO[e];
        }
        __syncthreads();
        float *dk = dqkv + ((size_t)t * NH + h) * 3 * HS + HS, *dv = dk + HS;
        for (int j = threadIdx.x; j < 2 * HS; j += blockDim.x) {
            double acc = 0.0;
            if (j < HS) {
                for (int e = 0; e < HS; e++) acc += S[j * ld + e] * (double)v[e];
                dk[j] += (float)acc;
            } else {
                int e = j - HS;
                for (int d = 0; d < HS; d++) acc += S[d * ld + e] * (double)k[d];
                dv[e] += (float)acc;
            }
        }
    }
    __syncthreads();
    if (dkv_in)
        for (int i = threadIdx.x; i < nS; i += blockDim.x) dkv_in[sb + i] += (float)(lam * S[(i / HS) * ld + i % HS]);
}

/* grid (B, NH): one step, the CPU's FP32 formula; thread per value column e */
static __global__ void la_decode_kernel(float *out, float *state, const float *qkv, const float *slopes, int NH,
                                        int HS) {
    const int b = blockIdx.x, h = blockIdx.y;
    const size_t bh = (size_t)b * NH + h;
    const float *q = qkv + bh * 3 * HS, *k = q + HS, *v = q + 2 * HS;
    float *S = state + bh * HS * HS;
    const float lam = (float)exp(-(double)slopes[h]);
    for (int e = threadIdx.x; e < HS; e += blockDim.x) {
        float o = 0.0f, ve = v[e];
        for (int d = 0; d < HS; d++) {
            float s = lam * S[(size_t)d * HS + e] + k[d] * ve;
            S[(size_t)d * HS + e] = s;
            o += q[d] * s;
        }
        out[bh * HS + e] = o;
    }
}

size_t lightning_ws_bytes_cuda(int max_seq_len, int NH, int HS, int block) {
    CHECK(HS > 0 && block > 0, "lightning_ws_bytes: HS=%d block=%d must be positive", HS, block);
    return 0; /* state and staging live in shared memory */
}

/* Checks, slope upload and the shared-memory opt-in; returns the dynamic shared memory size. */
static size_t la_prepare(KernelCtx *ctx, const void *kernel, const float *qkv, const float *slopes, int NH, int HS,
                         int block) {
    CHECK(ctx != NULL && qkv != NULL && slopes != NULL, "lightning: NULL argument");
    CHECK(NH > 0 && HS > 0 && block > 0, "lightning: NH=%d HS=%d block=%d must be positive", NH, HS, block);
    CHECK(NH <= CUDA_MAX_HEADS, "lightning: NH=%d above the CUDA scratch capacity %d", NH, CUDA_MAX_HEADS);
    CudaImpl *im = cuda_impl(ctx);
    size_t smem = la_smem_bytes(HS);
    CHECK(smem <= (size_t)im->smem_optin, "lightning: HS=%d needs %zu bytes of shared memory, the device allows %d",
          HS, smem, im->smem_optin);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    CUDA_CHECK(cudaMemcpyAsync(im->d_slopes, slopes, (size_t)NH * sizeof(float), cudaMemcpyHostToDevice,
                               im->stream));
    return smem;
}

void lightning_forward_cuda(KernelCtx *ctx, float *out, float *kv_out, const float *qkv, const float *kv_in,
                            const float *slopes, const SeqPack *pack, int NH, int HS, int block) {
    size_t smem = la_prepare(ctx, (const void *)la_forward_kernel, qkv, slopes, NH, HS, block);
    CHECK(out != NULL, "lightning_forward: NULL out");
    CudaImpl *im = cuda_impl(ctx);
    DevPack d = cuda_pack_upload(ctx, pack, "lightning_forward");
    dim3 grid((unsigned)d.B, (unsigned)NH);
    la_forward_kernel<<<grid, LA_THREADS, smem, im->stream>>>(out, kv_out, qkv, kv_in, im->d_slopes, d.start, NH, HS);
    CUDA_LAUNCH_CHECK();
}

void lightning_backward_cuda(KernelCtx *ctx, float *dqkv, float *dkv_in, const float *dout, const float *qkv,
                             const float *kv_in, const float *slopes, const SeqPack *pack, int NH, int HS, int block) {
    size_t smem = la_prepare(ctx, (const void *)la_backward_kernel, qkv, slopes, NH, HS, block);
    CHECK(dqkv != NULL && dout != NULL, "lightning_backward: NULL dqkv or dout");
    CudaImpl *im = cuda_impl(ctx);
    DevPack d = cuda_pack_upload(ctx, pack, "lightning_backward");
    dim3 grid((unsigned)d.B, (unsigned)NH);
    la_backward_kernel<<<grid, LA_THREADS, smem, im->stream>>>(dqkv, dkv_in, dout, qkv, kv_in, im->d_slopes, d.start,
                                                                NH, HS);
    CUDA_LAUNCH_CHECK();
}

void lightning_decode_cuda(KernelCtx *ctx, float *out, float *state, const float *qkv, const float *slopes, int B,
                           int NH, int HS) {
    CHECK(out != NULL && state != NULL && qkv != NULL && slopes != NULL, "lightning_decode: NULL argument");
    CHECK(B > 0 && NH > 0 && HS > 0, "lightning_decode: B=%d NH=%d HS=%d must be positive", B, NH, HS);
    CHECK(NH <= CUDA_MAX_HEADS, "lightning_decode: NH=%d above the CUDA scratch capacity %d", NH, CUDA_MAX_HEADS);
    CudaImpl *im = cuda_impl(ctx);
    CUDA_CHECK(cudaMemcpyAsync(im->d_slopes, slopes, (size_t)NH * sizeof(float), cudaMemcpyHostToDevice,
                               im->stream));
    dim3 grid((unsigned)B, (unsigned)NH);
    int threads = HS < 128 ? ((HS + 31) / 32) * 32 : 128;
    la_decode_kernel<<<grid, threads, 0, im->stream>>>(out, state, qkv, im->d_slopes, NH, HS);
    CUDA_LAUNCH_CHECK();
}
