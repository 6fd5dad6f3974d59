/* kernels/cpu/cpu_ops.h: the CPU backend's op implementations (internal to kernels/cpu).
 * Each function implements the KernelOps member of the same name without the _cpu suffix;
 * semantics, shapes and the accumulate convention are documented in kernels/backend.h.
 * backend_cpu.c assembles them into the table returned by kernels_cpu().
 */
#ifndef CISPO_KERNELS_CPU_OPS_H
#define CISPO_KERNELS_CPU_OPS_H

#include "kernels/backend.h"

void *alloc_cpu(KernelCtx *ctx, size_t bytes);
void free_cpu(KernelCtx *ctx, void *p);
void copy_h2d_cpu(KernelCtx *ctx, void *dst, const void *src_host, size_t bytes);
void copy_d2h_cpu(KernelCtx *ctx, void *dst_host, const void *src, size_t bytes);
void copy_d2d_cpu(KernelCtx *ctx, void *dst, const void *src, size_t bytes);
void zero_cpu(KernelCtx *ctx, void *p, size_t bytes);
void sync_cpu(KernelCtx *ctx);
void gemm_cpu(KernelCtx *ctx, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
void axpby_cpu(KernelCtx *ctx, float *y, float a, const float *x, float b, size_t n);
void scale_cpu(KernelCtx *ctx, float *y, const float *x, float s, size_t n);
void silu_forward_cpu(KernelCtx *ctx, float *out, const float *x, size_t n);
void silu_backward_cpu(KernelCtx *ctx, float *dx, const float *dout, const float *x, size_t n);
void sigmoid_gate_forward_cpu(KernelCtx *ctx, float *out, const float *g, const float *a, size_t n);
void sigmoid_gate_backward_cpu(KernelCtx *ctx, float *dg, float *da, const float *dout, const float *g, const float *a, size_t n);
void swiglu_forward_cpu(KernelCtx *ctx, float *out, const float *gate_up, int R, int F);
void swiglu_backward_cpu(KernelCtx *ctx, float *dgate_up, const float *dout, const float *gate_up, int R, int F);
void embedding_forward_cpu(KernelCtx *ctx, float *out, const int *tokens, const float *wte, int N, int C);
void embedding_backward_cpu(KernelCtx *ctx, float *dwte, const float *dout, const int *tokens, int N, int C);
void rmsnorm_forward_cpu(KernelCtx *ctx, float *out, float *rstd, const float *x, const float *w, int N, int C, float eps);
void rmsnorm_backward_cpu(KernelCtx *ctx, float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd, int N, int C);
void rope_forward_cpu(KernelCtx *ctx, float *x, const SeqPack *pack, int nh, int HS, int rot_dim, float theta);
void rope_backward_cpu(KernelCtx *ctx, float *dx, const SeqPack *pack, int nh, int HS, int rot_dim, float theta);
void lightning_forward_cpu(KernelCtx *ctx, float *out, float *kv_out, const float *qkv, const float *kv_in, const float *slopes, const SeqPack *pack, int NH, int HS, int block);
void lightning_backward_cpu(KernelCtx *ctx, float *dqkv, float *dkv_in, const float *dout, const float *qkv, const float *kv_in, const float *slopes, const SeqPack *pack, int NH, int HS, int block);
void lightning_decode_cpu(KernelCtx *ctx, float *out, float *state, const float *qkv, const float *slopes, int B, int NH, int HS);
size_t lightning_ws_bytes_cpu(int max_seq_len, int NH, int HS, int block);
void attention_forward_cpu(KernelCtx *ctx, float *out, float *lse, const float *q, const float *k, const float *v, const SeqPack *pack, int NH, int KVH, int HS, float scale);
void attention_backward_cpu(KernelCtx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v, const float *out, const float *lse, const SeqPack *pack, int NH, int KVH, int HS, float scale);
void attention_decode_cpu(KernelCtx *ctx, float *out, const float *q, const float *kcache, const float *vcache, const int *len, int B, int Tmax, int NH, int KVH, int HS, float scale);
size_t attention_ws_bytes_cpu(int max_seq_len, int NH, int HS);
void moe_route_forward_cpu(KernelCtx *ctx, float *probs, int *topk_idx, float *topk_w, const float *logits, int N, int E, int K);
void moe_route_backward_cpu(KernelCtx *ctx, float *dlogits, const float *dtopk_w, const float *dprobs, const float *probs, const int *topk_idx, const float *topk_w, int N, int E, int K);
void moe_sort_cpu(KernelCtx *ctx, int *sorted, int *pos, int *offsets, const int *topk_idx, int N, int K, int E);
void moe_permute_forward_cpu(KernelCtx *ctx, float *xp, const float *x, const int *sorted, int NK, int K, int C);
void moe_permute_backward_cpu(KernelCtx *ctx, float *dx, const float *dxp, const int *sorted, const int *pos, int NK, int K, int C);
void moe_combine_forward_cpu(KernelCtx *ctx, float *y, const float *yp, const float *topk_w, const int *sorted, const int *pos, int NK, int K, int C);
void moe_combine_backward_cpu(KernelCtx *ctx, float *dyp, float *dtopk_w, const float *dy, const float *yp, const float *topk_w, const int *sorted, int NK, int K, int C);
void moe_expert_gemm_cpu(KernelCtx *ctx, float *Y, const float *X, const float *W, const int *offsets, int E, int Nc, int Kc, int transW, float beta);
void moe_expert_gemm_dw_cpu(KernelCtx *ctx, float *dW, const float *G, const float *X, const int *offsets, int E, int Nc, int Kc);
void lm_head_forward_cpu(KernelCtx *ctx, float *logp, float *lse, float *logits_out, const float *h, const float *W, const int *targets, int N, int C, int V);
void lm_head_backward_cpu(KernelCtx *ctx, float *dh, float *dW, const float *dlogp, const float *dlse, const float *h, const float *W, const int *targets, const float *lse, int N, int C, int V);
size_t lm_head_ws_bytes_cpu(int N, int C, int V);
void adamw_cpu(KernelCtx *ctx, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2, float eps, float wd, int t);
double sumsq_cpu(KernelCtx *ctx, const float *x, size_t n);
void params_register_cpu(KernelCtx *ctx, const float *base, size_t n);
void kv_append_cpu(KernelCtx *ctx, float *kcache, float *vcache, const float *k, const float *v, const int *pos, int B, int Tmax, int row);
void adamw_fused_cpu(KernelCtx *ctx, float *p, float *g, float *m, float *v, const OptTensor *table, int n_tensors, double *norm_out, double clip, float lr, float b1, float b2, float eps, float wd, int t);
void add_rmsnorm_forward_cpu(KernelCtx *ctx, float *xo, float *out, float *rstd, const float *x, float a, const float *y, float b, const float *w, int N, int C, float eps);
void add_rmsnorm_backward_cpu(KernelCtx *ctx, float *dxo, float *dy, float *dw, const float *dout, const float *xo, const float *w, const float *rstd, float b, int N, int C);
void sample_cpu(KernelCtx *ctx, int *tokens, float *logprob, float *prob_raw, float *entropy, float *logits, const uint64_t *stream, const uint64_t *counter, int B, int V, float temperature, float top_p, uint64_t seed);
size_t sample_ws_bytes_cpu(int B, int V);

#endif
