/* kernels/cpu/rope.c: rotary position embedding, NeoX / HF "rotate half" convention, in place.
 *
 * x(N, nh, HS): in each head the pairs (i, i + rot_dim/2) for i < rot_dim/2 are rotated by
 * angle = pos * inv_freq_i, inv_freq_i = (float)(1 / theta^(2i/rot_dim)) (float64, then rounded),
 * the product pos * inv_freq_i taken in float32 as transformers does:
 *   x1' = x1 cos - x2 sin,   x2' = x2 cos + x1 sin.
 * Dims >= rot_dim pass through. The backward applies the transpose (= inverse) rotation in place:
 *   d1 = d1' cos + d2' sin,  d2 = d2' cos - d1' sin.
 * Token j of packed sequence b has position pack->pos0[b] + j (0 + j when pos0 is NULL).
 * cos/sin of a token are computed once (in float64 from the float angle, then rounded) and
 * reused across its heads, in fixed-size stack buffers (rot_dim <= ROPE_MAX_ROT_DIM).
 */
#include <math.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

#define ROPE_MAX_ROT_DIM 1024

/* Rotate every head of one token by the angles whose cos/sin are given; dir = +1 forward, -1 inverse. */
static void rope_token(float *xt, int nh, int HS, int half, const float *cs, const float *sn, float dir) {
    for (int h = 0; h < nh; h++) {
        float *x1 = xt + (size_t)h * HS; /* (half) */
        float *x2 = x1 + half;           /* (half) */
        for (int i = 0; i < half; i++) {
            float c = cs[i], s = dir * sn[i];
            float a = x1[i], b = x2[i];
            x1[i] = a * c - b * s;
            x2[i] = b * c + a * s;
        }
    }
}

static void rope_apply(float *x, const SeqPack *pack, int nh, int HS, int rot_dim, float theta, float dir) {
    CHECK(x != NULL && pack != NULL && pack->start != NULL, "rope with a NULL pointer");
    CHECK(nh > 0 && HS > 0 && pack->n_seq > 0, "rope sizes nh=%d HS=%d B=%d must be positive", nh, HS,
          pack->n_seq);
    CHECK(rot_dim > 0 && rot_dim % 2 == 0 && rot_dim <= HS && rot_dim <= ROPE_MAX_ROT_DIM,
          "rope rot_dim=%d must be even, <= HS=%d and <= %d", rot_dim, HS, ROPE_MAX_ROT_DIM);
    CHECK(theta > 0.0f, "rope theta=%g must be positive", (double)theta);
    int half = rot_dim / 2;
    float inv_freq[ROPE_MAX_ROT_DIM / 2], cs[ROPE_MAX_ROT_DIM / 2], sn[ROPE_MAX_ROT_DIM / 2];
    for (int i = 0; i < half; i++) inv_freq[i] = (float)(1.0 / pow((double)theta, (double)(2 * i) / rot_dim));
    size_t row = (size_t)nh * HS;
    for (int b = 0; b < pack->n_seq; b++) {
        int t0 = pack->start[b], t1 = pack->start[b + 1];
        CHECK(t0 <= t1, "SeqPack start[%d]=%d > start[%d]=%d", b, t0, b + 1, t1);
        int p0 = pack->pos0 ? pack->pos0[b] : 0;
        for (int t = t0; t < t1; t++) {
            float pos = (float)(p0 + (t - t0));
            for (int i = 0; i < half; i++) {
                float ang = pos * inv_freq[i];
                cs[i] = (float)cos((double)ang);
                sn[i] = (float)sin((double)ang);
            }
            rope_token(x + (size_t)t * row, nh, HS, half, cs, sn, dir);
        }
    }
}

/* x(N, nh, HS) rotated in place, N = pack->start[B] */
void rope_forward_cpu(KernelCtx *ctx, float *x, const SeqPack *pack, int nh, int HS, int rot_dim, float theta) {
    rope_apply(x, pack, nh, HS, rot_dim, theta, 1.0f);
}

/* dx(N, nh, HS) rotated back in place */
void rope_backward_cpu(KernelCtx *ctx, float *dx, const SeqPack *pack, int nh, int HS, int rot_dim, float theta) {
    rope_apply(dx, pack, nh, HS, rot_dim, theta, -1.0f);
}
