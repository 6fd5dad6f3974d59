/* kernels/cpu/optim.c: AdamW and the float64 sum of squares.
 *
 * AdamW (decoupled weight decay, as kernels/backend.h writes it), at 1-based step t:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  mhat = m / (1-b1^t);  vhat = v / (1-b2^t);
 *   p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p)     (p on the right is the value before the step)
 * The bias corrections are computed in float64 and each element's update in float64 from the FP32
 * state, so that the tiny-gradient regime of MiniMax-M1 (eps = 1e-15, |g| ~ 1e-14, g^2 ~ 1e-28)
 * loses nothing to rounding before the moments are stored back in FP32.
 */
#include <math.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

/* p(n), m(n), v(n) updated in place from g(n) */
void adamw_cpu(KernelCtx *ctx, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
               float eps, float wd, int t) {
    CHECK(p != NULL && g != NULL && m != NULL && v != NULL, "adamw with a NULL pointer");
    CHECK(t >= 1, "adamw step t=%d must be >= 1", t);
    CHECK(b1 >= 0.0f && b1 < 1.0f && b2 >= 0.0f && b2 < 1.0f, "adamw betas (%g, %g) must lie in [0, 1)",
          (double)b1, (double)b2);
    double bc1 = 1.0 - pow((double)b1, t), bc2 = 1.0 - pow((double)b2, t);
    double db1 = b1, db2 = b2, dlr = lr, deps = eps, dwd = wd;
    for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        double mi = db1 * m[i] + (1.0 - db1) * gi;
        double vi = db2 * v[i] + (1.0 - db2) * gi * gi;
        m[i] = (float)mi;
        v[i] = (float)vi;
        double upd = (mi / bc1) / (sqrt(vi / bc2) + deps) + dwd * p[i];
        p[i] = (float)(p[i] - dlr * upd);
    }
}

/* sum x(n)^2 in float64 */
double sumsq_cpu(KernelCtx *ctx, const float *x, size_t n) {
    CHECK(x != NULL || n == 0, "sumsq with a NULL pointer");
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

/* The CPU keeps no derived copies of the parameters (FP32 throughout). */
void params_register_cpu(KernelCtx *ctx, const float *base, size_t n) {
    (void)ctx;
    CHECK(base != NULL && n > 0, "params_register: empty block");
}
