/* kernels/cuda/elementwise.cu: elementwise ops in FP32 (axpby, scale, SiLU, the sigmoid output
 * gate, SwiGLU) and their backwards, which accumulate into the gradient outputs.
 *
 * One grid-stride kernel per op, the same formulas as kernels/cpu/elementwise.c:
 * sigmoid(x) = 1 / (1 + expf(-x)) (exact 0 for very negative x), silu'(x) = s (1 + x (1 - s)).
 * axpby with b == 0 does not read y (uninitialised memory or NaN does not leak), as on the CPU.
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
    LAUNCH_1D(ctx, swiglu_forward_kernel, (size_t)R * F, out, gate_up, (size_t)R, F);
}

void swiglu_backward_cuda(KernelCtx *ctx, float *dgate_up, const float *dout, const float *gate_up, int R, int F) {
    CHECK(R > 0 && F > 0, "swiglu sizes R=%d F=%d must be positive", R, F);
    CHECK(dgate_up != NULL && dout != NULL && gate_up != NULL, "swiglu_backward with a NULL pointer");
    LAUNCH_1D(ctx, swiglu_backward_kernel, (size_t)R * F, dgate_up, dout, gate_up, (size_t)R, F);
}
