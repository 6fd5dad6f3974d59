/* kernels/cuda/rope.cu: rotary position embedding (NeoX / HF rotate-half), in place, FP32, the
 * conventions of kernels/cpu/rope.c:
 *   inv_freq_i = (float)(1 / theta^(2i/rot_dim)) computed on the host in float64 and uploaded;
 *   angle = (float)pos * inv_freq_i in float32; cos/sin in float64 of that float, rounded to float;
 *   x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin for the pairs (i, i + rot_dim/2), i < rot_dim/2.
 * The backward applies the inverse rotation (sin negated). One thread per (token, head, pair);
 * the token's sequence is found by binary search in the uploaded SeqPack offsets.
 */
#include <math.h>

#include "kernels/cuda/cuda_ops.h"

/* x(N, nh, HS) in place; element i = (t, h, j) with j < nhalf */
static __global__ void rope_kernel(float *x, const int *start, const int *pos0, int B, size_t N, int nh, int HS,
                                   int nhalf, const float *inv_freq, float dir) {
    const size_t per_tok = (size_t)nh * nhalf;
    GRID_STRIDE_LOOP(i, N * per_tok) {
        size_t t = i / per_tok;
        int rem = (int)(i % per_tok), h = rem / nhalf, j = rem % nhalf;
        int b = dev_find_seq(start, B, (int)t);
        float pos = (float)(pos0[b] + ((int)t - start[b]));
        float ang = pos * inv_freq[j];
        float c = (float)cos((double)ang), s = dir * (float)sin((double)ang);
        float *x1 = x + (t * nh + h) * HS;
        float a = x1[j], bb = x1[j + nhalf];
        x1[j] = a * c - bb * s;
        x1[j + nhalf] = bb * c + a * s;
    }
}

static void rope_apply(KernelCtx *ctx, float *x, const SeqPack *pack, int nh, int HS, int rot_dim, float theta,
                       float dir) {
    CHECK(x != NULL && pack != NULL && pack->start != NULL, "rope with a NULL pointer");
    CHECK(nh > 0 && HS > 0 && pack->n_seq > 0, "rope sizes nh=%d HS=%d B=%d must be positive", nh, HS, pack->n_seq);
    CHECK(rot_dim > 0 && rot_dim % 2 == 0 && rot_dim <= HS && rot_dim / 2 <= CUDA_MAX_ROT_HALF,
          "rope rot_dim=%d must be even, <= HS=%d and <= %d", rot_dim, HS, 2 * CUDA_MAX_ROT_HALF);
    CHECK(theta > 0.0f, "rope theta=%g must be positive", (double)theta);
    CudaImpl *im = cuda_impl(ctx);
    DevPack d = cuda_pack_upload(ctx, pack, "rope");
    int nhalf = rot_dim / 2;
    float inv_freq[CUDA_MAX_ROT_HALF];
    for (int i = 0; i < nhalf; i++) inv_freq[i] = (float)(1.0 / pow((double)theta, (double)(2 * i) / rot_dim));
    CUDA_CHECK(cudaMemcpyAsync(im->d_inv_freq, inv_freq, (size_t)nhalf * sizeof(float), cudaMemcpyHostToDevice,
                               im->stream));
    LAUNCH_1D(ctx, rope_kernel, (size_t)d.N * nh * nhalf, x, d.start, d.pos0, d.B, (size_t)d.N, nh, HS, nhalf,
              im->d_inv_freq, dir);
}

void rope_forward_cuda(KernelCtx *ctx, float *x, const SeqPack *pack, int nh, int HS, int rot_dim, float theta) {
    rope_apply(ctx, x, pack, nh, HS, rot_dim, theta, 1.0f);
}

void rope_backward_cuda(KernelCtx *ctx, float *dx, const SeqPack *pack, int nh, int HS, int rot_dim, float theta) {
    rope_apply(ctx, dx, pack, nh, HS, rot_dim, theta, -1.0f);
}
