/* kernels/cuda/elementwise.cu: elementwise ops in FP32 (axpby, scale, SiLU, the sigmoid output
 * gate, SwiGLU) and their backwards, which accumulate into the gradient outputs.
 *
 * One grid-stride kernel per op, the same formulas as kernels/cpu/elementwise.c:
 * sigmoid(x) = 1 / (1 + expf(-x)) (exact 0 for very negative x), silu'(x) = s (1 + x (1 - s)).
 * axpby with b == 0 does not read y (uninitialised memory or NaN does not leak), as on the CPU.
 * SwiGLU: when F % 4 == 0 and the pointers are 16-byte aligned, one thread per float4 of out (gate,
 * up and dout read, dgate_up read-modified-written as float4: every warp touches 512 contiguous
 * bytes per array), with 32-bit index arithmetic when R*F/4 < 2^31 (the row division is the
 * costliest instruction otherwise); else the scalar kernels.
 */
#include "kernels/cuda/cuda_ops.h"

static __device__ __forceinline__ float dev_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

static __global__ void axpby_kernel(float *y, float a, const float *x, float b, size_t n) {
    GRID_STRIDE_LOOP(i, n) y[i] = b == 0.0f ? a * x[i] : a * x[i] + b * y[i];
}

static __global__ void scale_kernel(float *y, const float *x, float s, size_t n) {
    GRID_STRIDE_LOOP(i, n) y[i] = x[i] * s;
}

static __global__ void silu_forward_kernel(float *out, const float *x, size_t n) {
    GRID_STRIDE_LOOP(i, n) out[i] = x[i] * dev_sigmoid(x[i]);
}

static __global__ void silu_backward_kernel(float *dx, const float *dout, const float *x, size_t n) {
    GRID_STRIDE_LOOP(i, n) {
        float s = dev_sigmoid(x[i]);
        dx[i] += dout[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

static __global__ void sigmoid_gate_forward_kernel(float *out, const float *g, const float *a, size_t n) {
    GRID_STRIDE_LOOP(i, n) out[i] = dev_sigmoid(g[i]) * a[i];
}

static __global__ void sigmoid_gate_backward_kernel(float *dg, float *da, const float *dout, const float *g,
                                                    const float *a, size_t n) {
    GRID_STRIDE_LOOP(i, n) {
        float s = dev_sigmoid(g[i]);
        dg[i] += dout[i] * a[i] * s * (1.0f - s);
        da[i] += dout[i] * s;
    }
}

/* out(R,F) from gate_up(R,2F); element i = (r, f). */
static __global__ void swiglu_forward_kernel(float *out, const float *gate_up, size_t R, int F) {
    GRID_STRIDE_LOOP(i, R * F) {
        size_t r = i / F, f = i % F;
        float gt = gate_up[r * 2 * F + f], up = gate_up[r * 2 * F + F + f];
        out[i] = gt * dev_sigmoid(gt) * up;
    }
}

static __global__ void swiglu_backward_kernel(float *dgate_up, const float *dout, const float *gate_up, size_t R,
                                              int F) {
    GRID_STRIDE_LOOP(i, R * F) {
        size_t r = i / F, f = i % F;
        size_t ig = r * 2 * F + f, iu = ig + F;
        float gt = gate_up[ig], up = gate_up[iu], d = dout[i];
        float s = dev_sigmoid(gt);
        dgate_up[ig] += d * up * s * (1.0f + gt * (1.0f - s));
        dgate_up[iu] += d * gt * s;
    }
}

static __device__ __forceinline__ float swiglu_fwd1(float gt, float up) { return gt * dev_sigmoid(gt) * up; }

static __device__ __forceinline__ void swiglu_bwd1(float &dg, float &du, float d, float gt, float up) {
    float s = dev_sigmoid(gt);
    dg += d * up * s * (1.0f + gt * (1.0f - s));
    du += d * gt * s;
}

/* out4(R, F4) from gu4(R, 2*F4), F4 = F/4; I is the index type (uint32 when it cannot overflow) */
template <typename I>
static __global__ void swiglu_forward_vec_kernel(float4 *out4, const float4 *gu4, I total4, I F4) {
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total4; i += (I)gridDim.x * blockDim.x) {
        I r = i / F4, f = i - r * F4;
        float4 g = gu4[r * 2 * F4 + f], u = gu4[r * 2 * F4 + F4 + f], o;
        o.x = swiglu_fwd1(g.x, u.x), o.y = swiglu_fwd1(g.y, u.y);
        o.z = swiglu_fwd1(g.z, u.z), o.w = swiglu_fwd1(g.w, u.w);
        out4[i] = o;
    }
}

template <typename I>
static __global__ void swiglu_backward_vec_kernel(float4 *dgu4, const float4 *dout4, const float4 *gu4, I total4,
                                                  I F4) {
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total4; i += (I)gridDim.x * blockDim.x) {
        I r = i / F4, f = i - r * F4, ig = r * 2 * F4 + f, iu = ig + F4;
        float4 g = gu4[ig], u = gu4[iu], d = dout4[i], dg = dgu4[ig], du = dgu4[iu];
        swiglu_bwd1(dg.x, du.x, d.x, g.x, u.x);
        swiglu_bwd1(dg.y, du.y, d.y, g.y, u.y);
        swiglu_bwd1(dg.z, du.z, d.z, g.z, u.z);
        swiglu_bwd1(dg.w, du.w, d.w, g.w, u.w);
        dgu4[ig] = dg, dgu4[iu] = du;
    }
}

static int swiglu_vec_ok(int F, const void *a, const void *b, const void *c) {
    return F % 4 == 0 && (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c) & 15) == 0;
}

void axpby_cuda(KernelCtx *ctx, float *y, float a, const float *x, float b, size_t n) {
    CHECK(y != NULL && x != NULL, "axpby with a NULL pointer");
    LAUNCH_1D(ctx, axpby_kernel, n, y, a, x, b, n);
}

/* y may alias x */
void scale_cuda(KernelCtx *ctx, float *y, const float *x, float s, size_t n) {
    CHECK(y != NULL && x != NULL, "scale with a NULL pointer");
    LAUNCH_1D(ctx, scale_kernel, n, y, x, s, n);
}

void silu_forward_cuda(KernelCtx *ctx, float *out, const float *x, size_t n) {
    CHECK(out != NULL && x != NULL, "silu_forward with a NULL pointer");
    LAUNCH_1D(ctx, silu_forward_kernel, n, out, x, n);
}

void silu_backward_cuda(KernelCtx *ctx, float *dx, const float *dout, const float *x, size_t n) {
    CHECK(dx != NULL && dout != NULL && x != NULL, "silu_backward with a NULL pointer");
    LAUNCH_1D(ctx, silu_backward_kernel, n, dx, dout, x, n);
}

void sigmoid_gate_forward_cuda(KernelCtx *ctx, float *out, const float *g, const float *a, size_t n) {
    CHECK(out != NULL && g != NULL && a != NULL, "sigmoid_gate_forward with a NULL pointer");
    LAUNCH_1D(ctx, sigmoid_gate_forward_kernel, n, out, g, a, n);
}

void sigmoid_gate_backward_cuda(KernelCtx *ctx, float *dg, float *da, const float *dout, const float *g,
                                const float *a, size_t n) {
    CHECK(dg != NULL && da != NULL && dout != NULL && g != NULL && a != NULL,
          "sigmoid_gate_backward with a NULL pointer");
    LAUNCH_1D(ctx, sigmoid_gate_backward_kernel, n, dg, da, dout, g, a, n);
}

void swiglu_forward_cuda(KernelCtx *ctx, float *out, const float *gate_up, int R, int F) {
    CHECK(R > 0 && F > 0, "swiglu sizes R=%d F=%d must be positive", R, F);
    CHECK(out != NULL && gate_up != NULL, "swiglu_forward with a NULL pointer");
    if (swiglu_vec_ok(F, out, gate_up, gate_up)) {
        size_t total4 = (size_t)R * F / 4;
        cudaStream_t st = cuda_impl(ctx)->stream;
        if (total4 < (1u << 31))
            swiglu_forward_vec_kernel<unsigned><<<cuda_grid(total4), CUDA_THREADS, 0, st>>>(
                (float4 *)out, (const float4 *)gate_up, (unsigned)total4, (unsigned)(F / 4));
        else
            swiglu_forward_vec_kernel<size_t><<<cuda_grid(total4), CUDA_THREADS, 0, st>>>(
                (float4 *)out, (const float4 *)gate_up, total4, (size_t)(F / 4));
        CUDA_LAUNCH_CHECK();
        return;
    }
    LAUNCH_1D(ctx, swiglu_forward_kernel, (size_t)R * F, out, gate_up, (size_t)R, F);
}

void swiglu_backward_cuda(KernelCtx *ctx, float *dgate_up, const float *dout, const float *gate_up, int R, int F) {
    CHECK(R > 0 && F > 0, "swiglu sizes R=%d F=%d must be positive", R, F);
    CHECK(dgate_up != NULL && dout != NULL && gate_up != NULL, "swiglu_backward with a NULL pointer");
    if (swiglu_vec_ok(F, dgate_up, dout, gate_up)) {
        size_t total4 = (size_t)R * F / 4;
        cudaStream_t st = cuda_impl(ctx)->stream;
        if (total4 < (1u << 31))
            swiglu_backward_vec_kernel<unsigned><<<cuda_grid(total4), CUDA_THREADS, 0, st>>>(
                (float4 *)dgate_up, (const float4 *)dout, (const float4 *)gate_up, (unsigned)total4,
                (unsigned)(F / 4));
        else
            swiglu_backward_vec_kernel<size_t><<<cuda_grid(total4), CUDA_THREADS, 0, st>>>(
                (float4 *)dgate_up, (const float4 *)dout, (const float4 *)gate_up, total4, (size_t)(F / 4));
        CUDA_LAUNCH_CHECK();
        return;
    }
    LAUNCH_1D(ctx, swiglu_backward_kernel, (size_t)R * F, dgate_up, dout, gate_up, (size_t)R, F);
}
