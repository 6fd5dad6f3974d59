/* kernels/cpu/elementwise.c: elementwise ops in FP32: axpby, scale, SiLU, the sigmoid output gate
 * and SwiGLU, with their backwards (which accumulate into the gradient outputs).
 *
 * sigmoid(x) = 1 / (1 + exp(-x)) is safe for any finite x in float: exp overflows to +inf for very
 * negative x and the quotient is then exactly 0. silu'(x) = s (1 + x (1 - s)) with s = sigmoid(x).
 */
#include <math.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* y(n) = a*x + b*y; with b == 0, y is not read (so uninitialised garbage or NaN does not leak). */
void axpby_cpu(KernelCtx *ctx, float *y, float a, const float *x, float b, size_t n) {
    CHECK(y != NULL && x != NULL, "axpby with a NULL pointer");
    if (b == 0.0f) {
        for (size_t i = 0; i < n; i++) y[i] = a * x[i];
    } else {
        for (size_t i = 0; i < n; i++) y[i] = a * x[i] + b * y[i];
    }
}

/* y(n) = x(n) * s; y may alias x. */
void scale_cpu(KernelCtx *ctx, float *y, const float *x, float s, size_t n) {
    CHECK(y != NULL && x != NULL, "scale with a NULL pointer");
    for (size_t i = 0; i < n; i++) y[i] = x[i] * s;
}

/* out(n) = x * sigmoid(x) */
void silu_forward_cpu(KernelCtx *ctx, float *out, const float *x, size_t n) {
    CHECK(out != NULL && x != NULL, "silu_forward with a NULL pointer");
    for (size_t i = 0; i < n; i++) out[i] = x[i] * sigmoidf(x[i]);
}

/* dx(n) += dout * silu'(x) */
void silu_backward_cpu(KernelCtx *ctx, float *dx, const float *dout, const float *x, size_t n) {
    CHECK(dx != NULL && dout != NULL && x != NULL, "silu_backward with a NULL pointer");
    for (size_t i = 0; i < n; i++) {
        float s = sigmoidf(x[i]);
        dx[i] += dout[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

/* out(n) = sigmoid(g) * a */
void sigmoid_gate_forward_cpu(KernelCtx *ctx, float *out, const float *g, const float *a, size_t n) {
    CHECK(out != NULL && g != NULL && a != NULL, "sigmoid_gate_forward with a NULL pointer");
    for (size_t i = 0; i < n; i++) out[i] = sigmoidf(g[i]) * a[i];
}

/* dg(n) += dout * a * s (1 - s); da(n) += dout * s */
void sigmoid_gate_backward_cpu(KernelCtx *ctx, float *dg, float *da, const float *dout, const float *g,
                               const float *a, size_t n) {
    CHECK(dg != NULL && da != NULL && dout != NULL && g != NULL && a != NULL,
          "sigmoid_gate_backward with a NULL pointer");
    for (size_t i = 0; i < n; i++) {
        float s = sigmoidf(g[i]);
        dg[i] += dout[i] * a[i] * s * (1.0f - s);
        da[i] += dout[i] * s;
    }
}

/* out(R,F) = silu(gate_up[:, :F]) * gate_up[:, F:] for gate_up(R, 2F) */
void swiglu_forward_cpu(KernelCtx *ctx, float *out, const float *gate_up, int R, int F) {
    CHECK(R > 0 && F > 0, "swiglu sizes R=%d F=%d must be positive", R, F);
    CHECK(out != NULL && gate_up != NULL, "swiglu_forward with a NULL pointer");
    for (int r = 0; r < R; r++) {
        const float *gate = gate_up + (size_t)r * 2 * F; /* (F) */
        const float *up = gate + F;                      /* (F) */
        float *o = out + (size_t)r * F;                  /* (F) */
        for (int f = 0; f < F; f++) o[f] = gate[f] * sigmoidf(gate[f]) * up[f];
    }
}

/* dgate_up(R, 2F) += [dout * up * silu'(gate) | dout * silu(gate)] for dout(R,F) */
void swiglu_backward_cpu(KernelCtx *ctx, float *dgate_up, const float *dout, const float *gate_up, int R, int F) {
    CHECK(R > 0 && F > 0, "swiglu sizes R=%d F=%d must be positive", R, F);
    CHECK(dgate_up != NULL && dout != NULL && gate_up != NULL, "swiglu_backward with a NULL pointer");
    for (int r = 0; r < R; r++) {
        const float *gate = gate_up + (size_t)r * 2 * F;
        const float *up = gate + F;
        const float *d = dout + (size_t)r * F;
        float *dgate = dgate_up + (size_t)r * 2 * F;
        float *dup = dgate + F;
        for (int f = 0; f < F; f++) {
            float s = sigmoidf(gate[f]);
            dgate[f] += d[f] * up[f] * s * (1.0f + gate[f] * (1.0f - s));
            dup[f] += d[f] * gate[f] * s;
        }
    }
}
