/* kernels/cpu/fused.c: the fused ops of kernels/backend.h on the CPU (adamw_fused,
 * add_rmsnorm_forward/backward), written as the unfused ops they replace, called in the same order,
 * so that their results are bit-identical to the sequences they stand for:
 * - adamw_fused: sumsq per tensor summed in table order, sqrt, the non-finite skip, `scale` for the
 *   clip, `adamw` per tensor (trainer/optimizer.c's former step);
 * - add_rmsnorm_forward: per row, xo = (a*x) + (b*y) (what `scale` then `axpby(.., 1)` compute,
 *   FP32 addition and multiplication being commutative), then rmsnorm_forward on the row;
 * - add_rmsnorm_backward: per row, rmsnorm_backward into dxo (in place), then dy = dxo * b (`scale`);
 *   dw accumulates row by row in the same order as the unfused op.
 * The fast versions are the CUDA ones (kernels/cuda/fused.cu); these are the reference.
 */
#include <math.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

/* p, g, m, v: parameter-block floats; table(n_tensors); norm_out[0] = the global norm */
void adamw_fused_cpu(KernelCtx *ctx, float *p, float *g, float *m, float *v, const OptTensor *table, int n_tensors,
                     double *norm_out, double clip, float lr, float b1, float b2, float eps, float wd, int t) {
    CHECK(p != NULL && g != NULL && m != NULL && v != NULL && table != NULL && norm_out != NULL,
          "adamw_fused with a NULL pointer");
    CHECK(n_tensors > 0, "adamw_fused: n_tensors=%d must be positive", n_tensors);
    double s = 0.0;
    for (int i = 0; i < n_tensors; i++) s += sumsq_cpu(ctx, g + table[i].offset, table[i].numel);
    double norm = sqrt(s);
    norm_out[0] = norm;
    if (!isfinite(norm)) return;
    if (clip > 0.0 && norm > clip) {
        float sc = (float)(clip / norm);
        for (int i = 0; i < n_tensors; i++) {
            float *gi = g + table[i].offset;
            scale_cpu(ctx, gi, gi, sc, table[i].numel);
        }
    }
    for (int i = 0; i < n_tensors; i++) {
        size_t o = table[i].offset;
        adamw_cpu(ctx, p + o, g + o, m + o, v + o, table[i].numel, lr, b1, b2, eps, table[i].decay ? wd : 0.0f, t);
    }
}

/* xo(N,C) = a*x + b*y; out(N,C), rstd(N) = rmsnorm(xo) */
void add_rmsnorm_forward_cpu(KernelCtx *ctx, float *xo, float *out, float *rstd, const float *x, float a,
                             const float *y, float b, const float *w, int N, int C, float eps) {
    CHECK(N > 0 && C > 0, "add_rmsnorm sizes N=%d C=%d must be positive", N, C);
    CHECK(xo != NULL && out != NULL && rstd != NULL && x != NULL && y != NULL && w != NULL,
          "add_rmsnorm_forward with a NULL pointer");
    for (int n = 0; n < N; n++) {
        size_t r = (size_t)n * C;
        for (int c = 0; c < C; c++) xo[r + c] = a * x[r + c] + b * y[r + c];
        rmsnorm_forward_cpu(ctx, out + r, rstd + n, xo + r, w, 1, C, eps);
    }
}

/* dxo(N,C) += rmsnorm dx (in place); dy(N,C) = b * dxo (may be NULL); dw(C) += */
void add_rmsnorm_backward_cpu(KernelCtx *ctx, float *dxo, float *dy, float *dw, const float *dout, const float *xo,
                              const float *w, const float *rstd, float b, int N, int C) {
    CHECK(N > 0 && C > 0, "add_rmsnorm sizes N=%d C=%d must be positive", N, C);
    CHECK(dxo != NULL && dw != NULL && dout != NULL && xo != NULL && w != NULL && rstd != NULL,
          "add_rmsnorm_backward with a NULL pointer");
    for (int n = 0; n < N; n++) {
        size_t r = (size_t)n * C;
        rmsnorm_backward_cpu(ctx, dxo + r, dw, dout + r, xo + r, w, rstd + n, 1, C);
        if (dy) scale_cpu(ctx, dy + r, dxo + r, b, (size_t)C);
    }
}
