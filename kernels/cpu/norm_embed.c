/* kernels/cpu/norm_embed.c: token embedding lookup and RMSNorm, forward and backward.
 *
 * RMSNorm row n of x(N,C): rstd = 1/sqrt(mean(x^2) + eps) with the mean of squares summed in
 * float64 and rounded to float (HF does it in FP32; float64 only removes summation error);
 * out = w * (x * rstd) in FP32. The backward is the exact derivative of that formula:
 *   dx = rstd * (w*dout) - x * rstd^3 * mean(x * w*dout),   dw += dout * x * rstd.
 * The embedding table's vocabulary size is not passed, so ids are checked only for sign.
 */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

/* out(N,C) = wte(V,C)[tokens(N)] */
void embedding_forward_cpu(KernelCtx *ctx, float *out, const int *tokens, const float *wte, int N, int C) {
    CHECK(N > 0 && C > 0, "embedding sizes N=%d C=%d must be positive", N, C);
    CHECK(out != NULL && tokens != NULL && wte != NULL, "embedding_forward with a NULL pointer");
    for (int n = 0; n < N; n++) {
        CHECK(tokens[n] >= 0, "token %d at position %d is negative", tokens[n], n);
        memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
    }
}

/* dwte(V,C)[tokens[n]] += dout(N,C)[n] */
void embedding_backward_cpu(KernelCtx *ctx, float *dwte, const float *dout, const int *tokens, int N, int C) {
    CHECK(N > 0 && C > 0, "embedding sizes N=%d C=%d must be positive", N, C);
    CHECK(dwte != NULL && dout != NULL && tokens != NULL, "embedding_backward with a NULL pointer");
    for (int n = 0; n < N; n++) {
        CHECK(tokens[n] >= 0, "token %d at position %d is negative", tokens[n], n);
        float *row = dwte + (size_t)tokens[n] * C;
        const float *d = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) row[c] += d[c];
    }
}

/* out(N,C) = w(C) * x(N,C) * rstd; rstd(N) saved */
void rmsnorm_forward_cpu(KernelCtx *ctx, float *out, float *rstd, const float *x, const float *w, int N, int C,
                         float eps) {
    CHECK(N > 0 && C > 0, "rmsnorm sizes N=%d C=%d must be positive", N, C);
    CHECK(out != NULL && rstd != NULL && x != NULL && w != NULL, "rmsnorm_forward with a NULL pointer");
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        float var = (float)(ss / C);
        float r = 1.0f / sqrtf(var + eps);
        rstd[n] = r;
        for (int c = 0; c < C; c++) o[c] = w[c] * (xr[c] * r);
    }
}

/* dx(N,C) += d/dx, dw(C) += d/dw of sum(dout * out), given the saved rstd(N) */
void rmsnorm_backward_cpu(KernelCtx *ctx, float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rstd, int N, int C) {
    CHECK(N > 0 && C > 0, "rmsnorm sizes N=%d C=%d must be positive", N, C);
    CHECK(dx != NULL && dw != NULL && dout != NULL && x != NULL && w != NULL && rstd != NULL,
          "rmsnorm_backward with a NULL pointer");
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        const float *d = dout + (size_t)n * C;
        float *dxr = dx + (size_t)n * C;
        float r = rstd[n];
        double dot = 0.0; /* sum_c x * w * dout */
        for (int c = 0; c < C; c++) dot += (double)xr[c] * w[c] * d[c];
        float coef = (float)(dot / C) * r * r * r;
        for (int c = 0; c < C; c++) {
            dxr[c] += r * (w[c] * d[c]) - xr[c] * coef;
            dw[c] += d[c] * (xr[c] * r);
        }
    }
}
