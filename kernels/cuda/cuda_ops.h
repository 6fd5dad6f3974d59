/* kernels/cuda/cuda_ops.h: the CUDA backend's op implementations (internal to kernels/cuda).
 * Each function implements the KernelOps member of the same name without the _cuda suffix;
 * semantics, shapes and the accumulate convention are those of kernels/backend.h, with the CPU ops
 * (kernels/cpu/) as the reference. Pointers are device pointers except where backend.h says host.
 * backend_cuda.cu assembles them into the table returned by kernels_cuda().
 */
#ifndef CISPO_KERNELS_CUDA_OPS_H
#define CISPO_KERNELS_CUDA_OPS_H

#include "kernels/cuda/cuda_common.h"

extern "C" {
void *alloc_cuda(KernelCtx *ctx, size_t bytes);
void free_cuda(KernelCtx *ctx, void *p);
void copy_h2d_cuda(KernelCtx *ctx, void *dst, const void *src_host, size_t bytes);
void copy_d2h_cuda(KernelCtx *ctx, void *dst_host, const void *src, size_t bytes);
void copy_d2d_cuda(KernelCtx *ctx, void *dst, const void *src, size_t bytes);
void zero_cuda(KernelCtx *ctx, void *p, size_t bytes);
void sync_cuda(KernelCtx *ctx);
void gemm_cuda(KernelCtx *ctx, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* Precisions of gemm_cuda_prec: FP32 (CUDA cores, the reference); BF16 operands with FP32
 * accumulation (tensor cores; parameters read from the BF16 copy of the registered block, other
 * operands converted per call); TF32 (FP32 operands rounded to TF32 by cuBLAS: the parts of
 * lm_head.cu's 3xTF32 products). */
enum { GEMM_FP32 = 0, GEMM_BF16 = 1, GEMM_TF32 = 2 };
/* gemm with the precision given instead of ctx->gemm_bf16 */
void gemm_cuda_prec(KernelCtx *ctx, int prec, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
void gemm_cuda_plans_free(CudaImpl *im);
/* The parameter block whose BF16 copy BF16 GEMMs read (KernelOps.params_register). */
void params_register_cuda(KernelCtx *ctx, const float *base, size_t n);
void kv_append_cuda(KernelCtx *ctx, float *kcache, float *vcache, const float *k, const float *v, const int *pos, int B, int Tmax, int row);
/* Mark the BF16 copy stale when [dst, dst + bytes) overlaps the registered block; every CUDA code
 * path that writes parameters calls it (memory ops, adamw). ctx may be NULL (no-op). */
void cuda_params_touched(KernelCtx *ctx, const void *dst, size_t bytes);
/* The BF16 version of the FP32 matrix X covering `span` elements: its place in the registered
 * block's BF16 copy (refreshed first when stale), or its conversion into scratch buffer `slot`
 * (0 or 1; valid until the next call with that slot). */
const void *cuda_bf16_operand(CudaImpl *im, const float *X, size_t span, int slot);
/* Free the BF16 copy and the conversion scratch (impl_free). */
void gemm_cuda_bf16_free(CudaImpl *im);
void axpby_cuda(KernelCtx *ctx, float *y, float a, const float *x, float b, size_t n);
void scale_cuda(KernelCtx *ctx, float *y, const float *x, float s, size_t n);
void silu_forward_cuda(KernelCtx *ctx, float *out, const float *x, size_t n);
void silu_backward_cuda(KernelCtx *ctx, float *dx, const float *dout, const float *x, size_t n);
void sigmoid_gate_forward_cuda(KernelCtx *ctx, float *out, const float *g, const float *a, size_t n);
void sigmoid_gate_backward_cuda(KernelCtx *ctx, float *dg, float *da, const float *dout, const float *g, const float *a, size_t n);
void swiglu_forward_cuda(KernelCtx *ctx, float *out, const float *gate_up, int R, int F);
void swiglu_backward_cuda(KernelCtx *ctx, float *dgate_up, const float *dout, const float *gate_up, int R, int F);
void embedding_forward_cuda(KernelCtx *ctx, float *out, const int *tokens, const float *wte, int N, int C);
void embedding_backward_cuda(KernelCtx *ctx, float *dwte, const float *dout, const int *tokens, int N, int C);
void rmsnorm_forward_cuda(KernelCtx *ctx, float *out, float *rstd, const float *x, const float *w, int N, int C, float eps);
void rmsnorm_backward_cuda(KernelCtx *ctx, float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd, int N, int C);
void rope_forward_cuda(KernelCtx *ctx, float *x, const SeqPack *pack, int nh, int HS, int rot_dim, float theta);
void rope_backward_cuda(KernelCtx *ctx, float *dx, const SeqPack *pack, int nh, int HS, int rot_dim, float theta);
void lightning_forward_cuda(KernelCtx *ctx, float *out, float *kv_out, const float *qkv, const float *kv_in, const float *slopes, const SeqPack *pack, int NH, int HS, int block);
void lightning_backward_cuda(KernelCtx *ctx, float *dqkv, float *dkv_in, const float *dout, const float *qkv, const float *kv_in, const float *slopes, const SeqPack *pack, int NH, int HS, int block);
void lightning_decode_cuda(KernelCtx *ctx, float *out, float *state, const float *qkv, const float *slopes, int B, int NH, int HS);
size_t lightning_ws_bytes_cuda(int max_seq_len, int NH, int HS, int block);
/* lightning_chunk.cu: the chunk-parallel tensor-core versions (the table's); they fall back to the naive ones above */
void lightning_forward_chunk_cuda(KernelCtx *ctx, float *out, float *kv_out, const float *qkv, const float *kv_in, const float *slopes, const SeqPack *pack, int NH, int HS, int block);
void lightning_backward_chunk_cuda(KernelCtx *ctx, float *dqkv, float *dkv_in, const float *dout, const float *qkv, const float *kv_in, const float *slopes, const SeqPack *pack, int NH, int HS, int block);
size_t lightning_ws_bytes_chunk_cuda(int max_seq_len, int NH, int HS, int block);
void attention_forward_cuda(KernelCtx *ctx, float *out, float *lse, const float *q, const float *k, const float *v, const SeqPack *pack, int NH, int KVH, int HS, float scale);
void attention_backward_cuda(KernelCtx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v, const float *out, const float *lse, const SeqPack *pack, int NH, int KVH, int HS, float scale);
void attention_decode_cuda(KernelCtx *ctx, float *out, const float *q, const float *kcache, const float *vcache, const int *len, int B, int Tmax, int NH, int KVH, int HS, float scale);
size_t attention_ws_bytes_cuda(int max_seq_len, int NH, int HS);
/* flash_attn.cu: the table's attention ops (tensor-core tiles, flash-decoding); they call the naive
 * ones above as fallback (CISPO_CUDA_NAIVE_ATTN=1, other head sizes, small workspace). */
void flash_attention_forward_cuda(KernelCtx *ctx, float *out, float *lse, const float *q, const float *k, const float *v, const SeqPack *pack, int NH, int KVH, int HS, float scale);
void flash_attention_backward_cuda(KernelCtx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v, const float *out, const float *lse, const SeqPack *pack, int NH, int KVH, int HS, float scale);
void flash_attention_decode_cuda(KernelCtx *ctx, float *out, const float *q, const float *kcache, const float *vcache, const int *len, int B, int Tmax, int NH, int KVH, int HS, float scale);
size_t flash_attention_ws_bytes_cuda(int max_tokens, int NH, int HS);
void moe_route_forward_cuda(KernelCtx *ctx, float *probs, int *topk_idx, float *topk_w, const float *logits, int N, int E, int K);
void moe_route_backward_cuda(KernelCtx *ctx, float *dlogits, const float *dtopk_w, const float *dprobs, const float *probs, const int *topk_idx, const float *topk_w, int N, int E, int K);
void moe_sort_cuda(KernelCtx *ctx, int *sorted, int *pos, int *offsets, const int *topk_idx, int N, int K, int E);
void moe_permute_forward_cuda(KernelCtx *ctx, float *xp, const float *x, const int *sorted, int NK, int K, int C);
void moe_permute_backward_cuda(KernelCtx *ctx, float *dx, const float *dxp, const int *sorted, const int *pos, int NK, int K, int C);
void moe_combine_forward_cuda(KernelCtx *ctx, float *y, const float *yp, const float *topk_w, const int *sorted, const int *pos, int NK, int K, int C);
void moe_combine_backward_cuda(KernelCtx *ctx, float *dyp, float *dtopk_w, const float *dy, const float *yp, const float *topk_w, const int *sorted, int NK, int K, int C);
/* moe_gemm.cu: expert GEMMs (grouped), and the MoE scratch in the handle (impl_init / impl_free) */
void moe_expert_gemm_cuda(KernelCtx *ctx, float *Y, const float *X, const float *W, const int *offsets, int E, int Nc, int Kc, int transW, float beta);
void moe_expert_gemm_dw_cuda(KernelCtx *ctx, float *dW, const float *G, const float *X, const int *offsets, int E, int Nc, int Kc);
void moe_cuda_init(CudaImpl *im);
void moe_cuda_free(CudaImpl *im);
void lm_head_forward_cuda(KernelCtx *ctx, float *logp, float *lse, float *logits_out, const float *h, const float *W, const int *targets, int N, int C, int V);
void lm_head_backward_cuda(KernelCtx *ctx, float *dh, float *dW, const float *dlogp, const float *dlse, const float *h, const float *W, const int *targets, const float *lse, int N, int C, int V);
size_t lm_head_ws_bytes_cuda(int N, int C, int V);
void adamw_cuda(KernelCtx *ctx, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2, float eps, float wd, int t);
double sumsq_cuda(KernelCtx *ctx, const float *x, size_t n);
/* fused.cu */
void adamw_fused_cuda(KernelCtx *ctx, float *p, float *g, float *m, float *v, const OptTensor *table, int n_tensors, double *norm_out, double clip, float lr, float b1, float b2, float eps, float wd, int t);
void add_rmsnorm_forward_cuda(KernelCtx *ctx, float *xo, float *out, float *rstd, const float *x, float a, const float *y, float b, const float *w, int N, int C, float eps);
void add_rmsnorm_backward_cuda(KernelCtx *ctx, float *dxo, float *dy, float *dw, const float *dout, const float *xo, const float *w, const float *rstd, float b, int N, int C);
/* dw(C) += sum_n dout(N,C) * (x(N,C) * rstd(N)), deterministic (slab sums, then a fixed-order sum) */
void rmsnorm_dw_cuda(KernelCtx *ctx, float *dw, const float *dout, const float *x, const float *rstd, int N, int C);
void sample_cuda(KernelCtx *ctx, int *tokens, float *logprob, float *prob_raw, float *entropy, float *logits, const uint64_t *stream, const uint64_t *counter, int B, int V, float temperature, float top_p, uint64_t seed);
size_t sample_ws_bytes_cuda(int B, int V);
void impl_init_cuda(KernelCtx *ctx);
void impl_free_cuda(KernelCtx *ctx);
}

#endif
