/* kernels/backend.h: the compute backend interface (DESIGN.md §3).
 *
 * One KernelOps table per backend, chosen once at start-up; model and trainer code call ops only
 * through it and never branch on the backend. The CPU table (kernels/cpu/, plain C + OpenBLAS, FP32)
 * is the reference; a CUDA table (kernels/cuda/) plugs in with the same signatures, pointers then
 * being device pointers. Every op works on row-major float32 arrays unless stated.
 *
 * Conventions
 * - Glossary of dimension letters used in shape comments:
 *     B  sequences in a batch          N  packed tokens (sum of the B lengths)
 *     T  length of one sequence        C  model width (hidden_size)
 *     V  vocabulary                    L  layers
 *     NH query heads                   KVH key/value heads       HS head dim
 *     E  experts                       K  experts per token (top-k)
 *     F  expert / MLP intermediate width
 *     G  samples per prompt
 * - Variable-length batches are packed: the B sequences are concatenated along the token axis and
 *   described by a SeqPack (offsets in host memory). Attention ops never cross a sequence boundary.
 * - Gradients ACCUMULATE: every backward op adds (+=) into all of its gradient outputs, for
 *   activations and parameters alike; callers zero buffers first. Exceptions are marked "in place".
 * - Ops never allocate. Temporary memory comes from the context's workspace (ctx->ws, ws_bytes);
 *   each op that needs some documents how much, and CHECKs that it is there.
 * - Ops CHECK their invariants (sizes > 0, pointers non-NULL); they return nothing.
 */
#ifndef CISPO_KERNELS_BACKEND_H
#define CISPO_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* A packed batch of B variable-length sequences: sequence b holds tokens
 * [start[b], start[b+1]) of the packed axis, and token j of it has position pos0[b] + j
 * (pos0 is NULL for all-zero start positions). Host memory, owned by the caller. */
typedef struct {
    int n_seq;        /* B */
    const int *start; /* (B+1) offsets, start[0] = 0, start[B] = N */
    const int *pos0;  /* (B) position of each sequence's first token, or NULL */
} SeqPack;

/* One tensor of a contiguous parameter block, for adamw_fused: floats [offset, offset + numel) of the
 * block (parameters, gradients and both moments share the layout; the gaps between tensors are
 * padding, never read). decay: 1 when weight decay applies. 24 bytes, the same on host and device. */
typedef struct {
    size_t offset; /* in floats */
    size_t numel;
    int decay;
    int pad_;
} OptTensor;

typedef struct KernelCtx {
    const struct KernelOps *ops;
    void *ws;        /* workspace (backend memory space) */
    size_t ws_bytes; /* its size */
    void *impl;      /* backend-private handle (cuBLAS handle, streams, ...); NULL on CPU */
    /* Precision (DESIGN.md §3), set by the caller after kernel_ctx_init (which zeroes both); may be
     * changed between calls. 0 everywhere is FP32, the reference.
     * gemm_bf16: `gemm` rounds its inputs A and B to BF16 and accumulates in FP32 (output FP32).
     *            The CUDA backend runs such GEMMs on tensor cores; the CPU backend ignores the flag
     *            (it stays the FP32 reference; run_config refuses bf16 on CPU).
     * head_bf16: the LM head rounds each FP32 logit to BF16 (round to nearest even) before the
     *            log-softmax, as a BF16 logits tensor of an inference engine would hold it (M1's
     *            rollout/learner mismatch finding); the backward uses the same rounded logits
     *            (straight-through). Both backends honour it, so the CPU stays the reference. */
    int gemm_bf16;
    int head_bf16;
} KernelCtx;

typedef struct KernelOps {
    const char *name; /* "cpu" or "cuda" */

    /* ---- memory (backend memory space) ---- */
    void *(*alloc)(KernelCtx *ctx, size_t bytes); /* zero-filled; CHECKs on failure */
    void (*free)(KernelCtx *ctx, void *p);         /* NULL is a no-op */
    void (*copy_h2d)(KernelCtx *ctx, void *dst, const void *src_host, size_t bytes);
    void (*copy_d2h)(KernelCtx *ctx, void *dst_host, const void *src, size_t bytes);
    void (*copy_d2d)(KernelCtx *ctx, void *dst, const void *src, size_t bytes);
    void (*zero)(KernelCtx *ctx, void *p, size_t bytes);
    void (*sync)(KernelCtx *ctx); /* wait for all queued work */

    /* ---- dense linear algebra ---- */
    /* C(M,N) = alpha * op(A) op(B) + beta * C, row-major; op(X) = X^T when trans is non-zero.
     * A is (M,K) or, transposed, (K,M); B is (K,N) or (N,K). lda/ldb/ldc are row strides. */
    void (*gemm)(KernelCtx *ctx, int transA, int transB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

    /* ---- elementwise ---- */
    /* y = a*x + b*y over n elements. */
    void (*axpby)(KernelCtx *ctx, float *y, float a, const float *x, float b, size_t n);
    /* y = x * s */
    void (*scale)(KernelCtx *ctx, float *y, const float *x, float s, size_t n);
    /* out = silu(x) = x * sigmoid(x); backward: dx += dout * silu'(x). */
    void (*silu_forward)(KernelCtx *ctx, float *out, const float *x, size_t n);
    void (*silu_backward)(KernelCtx *ctx, float *dx, const float *dout, const float *x, size_t n);
    /* out = sigmoid(g) * a; backward: dg += dout*a*s*(1-s), da += dout*s. */
    void (*sigmoid_gate_forward)(KernelCtx *ctx, float *out, const float *g, const float *a, size_t n);
    void (*sigmoid_gate_backward)(KernelCtx *ctx, float *dg, float *da, const float *dout, const float *g,
                                  const float *a, size_t n);
    /* SwiGLU on rows of a (R, 2F) buffer whose first F columns are the gate and last F the up
     * projection: out(R,F) = silu(gate) * up. Backward writes the (R,2F) gradient (accumulates). */
    void (*swiglu_forward)(KernelCtx *ctx, float *out, const float *gate_up, int R, int F);
    void (*swiglu_backward)(KernelCtx *ctx, float *dgate_up, const float *dout, const float *gate_up, int R, int F);

    /* ---- embeddings and norms ---- */
    /* out(N,C) = wte[tokens[n]]; backward: dwte[tokens[n]] += dout[n]. tokens in backend memory. */
    void (*embedding_forward)(KernelCtx *ctx, float *out, const int *tokens, const float *wte, int N, int C);
    void (*embedding_backward)(KernelCtx *ctx, float *dwte, const float *dout, const int *tokens, int N, int C);
    /* RMSNorm over the last axis: out = w * x * rstd, rstd(N) = 1/sqrt(mean(x^2) + eps) (saved for
     * the backward). Math in FP32 as HF's MiniMaxRMSNorm/Qwen2RMSNorm. */
    void (*rmsnorm_forward)(KernelCtx *ctx, float *out, float *rstd, const float *x, const float *w, int N, int C,
                            float eps);
    void (*rmsnorm_backward)(KernelCtx *ctx, float *dx, float *dw, const float *dout, const float *x,
                             const float *w, const float *rstd, int N, int C);

    /* ---- rotary position embedding (NeoX rotate-half, HF convention), in place ----
     * x is (N, nh, HS); the first rot_dim dims of each head are rotated (rot_dim even, <= HS), the
     * rest pass through. inv_freq_j = 1 / theta^(2j/rot_dim), computed in float64 then rounded to
     * float32; angle = (float)pos * inv_freq_j in float32, as transformers does. Positions come from
     * the SeqPack. rope_backward applies the inverse rotation to dx in place. */
    void (*rope_forward)(KernelCtx *ctx, float *x, const SeqPack *pack, int nh, int HS, int rot_dim, float theta);
    void (*rope_backward)(KernelCtx *ctx, float *dx, const SeqPack *pack, int nh, int HS, int rot_dim, float theta);

    /* ---- lightning attention (MiniMax linear attention with per-head decay, ALGORITHMS.md §11.2-3) ----
     * qkv(N, NH, 3*HS): per token and head, q | k | v (already through SiLU), the layout of HF's
     * qkv_proj output. slopes(NH): decay rates s_h (lambda_h = exp(-s_h)), host memory.
     * out(N, NH, HS): o_t = sum_{u<=t} lambda^(t-u) (q_t . k_u) v_u + lambda^(t-t0+1) q_t S0 where
     * S0 is the initial state (kv_in) of the sequence starting at t0.
     * kv_in(B, NH, HS, HS) (may be NULL = zeros) and kv_out(B, NH, HS, HS) (may be NULL): the state
     * S[d][e] = sum_u lambda^(T-1-u) k_u[d] v_u[e] (+ lambda^T S0) after the last token.
     * `block` is the block length of the block-wise algorithm (semantics do not depend on it).
     * Workspace: lightning_ws_bytes(). Backward recomputes states; dkv_in may be NULL. */
    void (*lightning_forward)(KernelCtx *ctx, float *out, float *kv_out, const float *qkv, const float *kv_in,
                              const float *slopes, const SeqPack *pack, int NH, int HS, int block);
    void (*lightning_backward)(KernelCtx *ctx, float *dqkv, float *dkv_in, const float *dout, const float *qkv,
                               const float *kv_in, const float *slopes, const SeqPack *pack, int NH, int HS,
                               int block);
    /* One decode step for B sequences: S = lambda S + k^T v; out = q S. qkv(B, NH, 3*HS),
     * state(B, NH, HS, HS) in/out, out(B, NH, HS). */
    void (*lightning_decode)(KernelCtx *ctx, float *out, float *state, const float *qkv, const float *slopes,
                             int B, int NH, int HS);
    size_t (*lightning_ws_bytes)(int max_seq_len, int NH, int HS, int block);

    /* ---- causal softmax attention with grouped-query heads ----
     * q(N, NH, HS), k(N, KVH, HS), v(N, KVH, HS), out(N, NH, HS), lse(N, NH) the log-sum-exp of
     * each row of scaled scores (saved for the backward). Query head h reads kv head h / (NH/KVH).
     * Causal within each packed sequence. Workspace: attention_ws_bytes(max_tokens, NH, HS), whose
     * first argument bounds both the packed token count N and every sequence length (the CUDA
     * backward keeps N*NH floats there, its decode the partial softmaxes of the context splits). */
    void (*attention_forward)(KernelCtx *ctx, float *out, float *lse, const float *q, const float *k,
                              const float *v, const SeqPack *pack, int NH, int KVH, int HS, float scale);
    void (*attention_backward)(KernelCtx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *out, const float *lse,
                               const SeqPack *pack, int NH, int KVH, int HS, float scale);
    /* Decode: one query per sequence against its KV cache. q(B, NH, HS); kcache/vcache
     * (B, Tmax, KVH, HS) hold positions [0, len[b]) (the current token's k, v already written);
     * len(B) host memory; out(B, NH, HS). */
    void (*attention_decode)(KernelCtx *ctx, float *out, const float *q, const float *kcache, const float *vcache,
                             const int *len, int B, int Tmax, int NH, int KVH, int HS, float scale);
    size_t (*attention_ws_bytes)(int max_seq_len, int NH, int HS);

    /* ---- mixture of experts ----
     * Route: probs(N,E) = softmax(logits) (FP32); topk_idx(N,K) the K largest (ties: lower index
     * first, descending order); topk_w(N,K) = the chosen probs renormalised to sum to 1.
     * Backward: dlogits(N,E) += J^T (dprobs + d(topk_w)), where dprobs (may be NULL) is a gradient
     * arriving directly on probs (the auxiliary loss). */
    void (*moe_route_forward)(KernelCtx *ctx, float *probs, int *topk_idx, float *topk_w, const float *logits,
                              int N, int E, int K);
    void (*moe_route_backward)(KernelCtx *ctx, float *dlogits, const float *dtopk_w, const float *dprobs,
                               const float *probs, const int *topk_idx, const float *topk_w, int N, int E, int K);
    /* Group the N*K (token, slot) pairs by expert, stable in slot order: sorted(N*K) lists slot ids
     * s = n*K + k; pos(N*K) is its inverse, pos[sorted[j]] = j; offsets(E+1) delimit each expert's
     * run. topk_idx, sorted and pos in backend memory; offsets in HOST memory (the expert GEMMs need
     * the counts on the host: on CUDA only these E+1 ints cross, and the call synchronises). */
    void (*moe_sort)(KernelCtx *ctx, int *sorted, int *pos, int *offsets, const int *topk_idx, int N, int K, int E);
    /* Gather: xp(N*K, C) row j = x(N,C) row sorted[j]/K. Backward: dx[sorted[j]/K] += dxp[j], each
     * token adding its K rows in increasing j (= expert order; a gather through pos on CUDA, so
     * deterministic without atomics). sorted and pos in backend memory. */
    void (*moe_permute_forward)(KernelCtx *ctx, float *xp, const float *x, const int *sorted, int NK, int K, int C);
    void (*moe_permute_backward)(KernelCtx *ctx, float *dx, const float *dxp, const int *sorted, const int *pos,
                                 int NK, int K, int C);
    /* Combine: y(N,C) += topk_w[s] * yp[j] for s = sorted[j] (token s/K), each token adding its K
     * terms in increasing j as above. Backward: dyp[j] += topk_w[s] * dy[s/K];
     * dtopk_w[s] += dot(yp[j], dy[s/K]). */
    void (*moe_combine_forward)(KernelCtx *ctx, float *y, const float *yp, const float *topk_w, const int *sorted,
                                const int *pos, int NK, int K, int C);
    void (*moe_combine_backward)(KernelCtx *ctx, float *dyp, float *dtopk_w, const float *dy, const float *yp,
                                 const float *topk_w, const int *sorted, int NK, int K, int C);

    /* ---- FP32 LM head ----
     * logits = h(N,C) W(V,C)^T, never stored whole: the vocabulary is walked in chunks with an online
     * log-sum-exp. Writes lse(N) and logp(N) = logits[n][targets[n]] - lse[n] (targets < 0: logp = 0).
     * logits_out(N,V) may be non-NULL to also store the full logits (tests, decode).
     * Backward: with g = dlogp(N), dlogits = g * (onehot(target) - softmax) (+ dlse * softmax when
     * dlse is non-NULL), accumulated into dh(N,C) and dW(V,C) chunk by chunk. Workspace:
     * lm_head_ws_bytes(). targets in backend memory. */
    void (*lm_head_forward)(KernelCtx *ctx, float *logp, float *lse, float *logits_out, const float *h,
                            const float *W, const int *targets, int N, int C, int V);
    void (*lm_head_backward)(KernelCtx *ctx, float *dh, float *dW, const float *dlogp, const float *dlse,
                             const float *h, const float *W, const int *targets, const float *lse, int N, int C,
                             int V);
    size_t (*lm_head_ws_bytes)(int N, int C, int V);

    /* ---- optimizer and reductions ---- */
    /* AdamW on n parameters, moments in FP32, bias-corrected at step t (1-based):
     * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p). */
    void (*adamw)(KernelCtx *ctx, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                  float b2, float eps, float wd, int t);
    /* Sum of squares in float64 (for global gradient norms); result in host memory. */
    double (*sumsq)(KernelCtx *ctx, const float *x, size_t n);

    /* ---- parameters ----
     * The model's parameter block base(n), backend memory, registered once after it is allocated
     * (model_init). A backend may keep derived copies of it (CUDA: the BF16 copy its BF16 GEMMs
     * read), which it must refresh after any op writes into the block. Code that writes the block
     * other than through the ops (a communication library) registers it again afterwards, which
     * marks the copies stale. CPU: nothing. */
    void (*params_register)(KernelCtx *ctx, const float *base, size_t n);

    /* ---- fused ops (kernels/cpu/fused.c, kernels/cuda/fused.cu) ---- */
    /* The whole optimizer step over one parameter block, without a host round trip per tensor:
     *   norm = sqrt(sum over the table's tensors of sum(g^2)) (float64; padding excluded), written to
     *   norm_out[0] (backend memory; the caller reads it back once);
     *   a non-finite norm: nothing else is written (the step is skipped);
     *   clip > 0 and norm > clip: g is scaled in place by (float)(clip / norm) (as the `scale` op);
     *   then `adamw` on every tensor at step t, weight decay wd where table[i].decay, else 0.
     * p, g, m, v: the blocks (floats); table(n_tensors) in backend memory (upload it once).
     * CPU: exactly optimizer.c's former sequence (per-tensor sumsq summed in table order, scale,
     * adamw), so CPU results are unchanged. CUDA: a deterministic two-stage float64 reduction (fixed
     * grid, fixed order; no float atomics), so the norm differs from the CPU's in the last bits. */
    void (*adamw_fused)(KernelCtx *ctx, float *p, float *g, float *m, float *v, const OptTensor *table,
                        int n_tensors, double *norm_out, double clip, float lr, float b1, float b2, float eps,
                        float wd, int t);
    /* Residual add + RMSNorm: xo(N,C) = a*x + b*y (per element, FP32: (a*x) + (b*y)), then
     * out(N,C), rstd(N) = rmsnorm_forward(xo, w, eps). xo may alias x or y. Same bits as `scale`,
     * `axpby` and `rmsnorm_forward` in sequence on the CPU. */
    void (*add_rmsnorm_forward)(KernelCtx *ctx, float *xo, float *out, float *rstd, const float *x, float a,
                                const float *y, float b, const float *w, int N, int C, float eps);
    /* Its backward, for the gradient that reaches xo. dxo(N,C) is IN PLACE: on entry the gradient
     * arriving at xo from its other uses; on exit the total dL/dxo = entry + rmsnorm's dx from
     * dout(N,C). dy(N,C) (may be NULL) is WRITTEN (not accumulated): b * dL/dxo, the gradient of y.
     * dw(C) accumulates. (The gradient of x is a * dL/dxo: the caller forms it where needed.) */
    void (*add_rmsnorm_backward)(KernelCtx *ctx, float *dxo, float *dy, float *dw, const float *dout,
                                 const float *xo, const float *w, const float *rstd, float b, int N, int C);
    /* ---- sampling (rollout) ----
     * For each row b of logits(B,V) (backend memory), draw a token from softmax(logits / temperature)
     * restricted to top_p exactly as rollout/sampler.h's sampler_draw does (the reference): greedy
     * when temperature <= 0 (ties: lowest id); nucleus = the smallest prefix of the ids sorted by
     * probability (descending, ties by id) whose mass reaches top_p (top_p >= 1: every id, in id
     * order); the uniform is rng_uniform(seed, stream[b], counter[b]) (core/rng.h).
     * stream(B), counter(B) in host memory. Outputs (B) in backend memory: tokens, logprob (after
     * temperature and top-p renormalisation; 0 for greedy), prob_raw (before top-p; 1 for greedy),
     * entropy (nats, of the distribution sampled from; 0 for greedy). logits is scratch: its contents
     * are unspecified afterwards (the CUDA op overwrites it with the probabilities).
     * Workspace: sample_ws_bytes(B, V). */
    void (*sample)(KernelCtx *ctx, int *tokens, float *logprob, float *prob_raw, float *entropy, float *logits,
                   const uint64_t *stream, const uint64_t *counter, int B, int V, float temperature, float top_p,
                   uint64_t seed);
    size_t (*sample_ws_bytes)(int B, int V);
    /* ---- MoE expert GEMMs over the expert-sorted rows (after moe_sort; offsets(E+1) host) ----
     * For each expert e with r = offsets[e+1] - offsets[e] > 0 rows starting at r0 = offsets[e]:
     * moe_expert_gemm:    Y[r0:r0+r](r,Nc) = X[r0:r0+r](r,Kc) op(W_e) + beta Y[r0:r0+r], with X(N*K,Kc),
     *                     Y(N*K,Nc); transW != 0: W(E,Nc,Kc), op = transpose (the forward);
     *                     transW == 0: W(E,Kc,Nc) (the backward's data gradient).
     * moe_expert_gemm_dw: dW_e(Nc,Kc) += G[r0:r0+r](r,Nc)^T X[r0:r0+r](r,Kc), dW(E,Nc,Kc) (weight
     *                     gradient, accumulates); experts without rows are left unchanged.
     * Precision follows ctx->gemm_bf16 as `gemm` does. The CPU runs exactly the per-expert `gemm`
     * loop; CUDA runs one grouped GEMM (cublasGemmGroupedBatchedEx) or, where cuBLAS refuses it,
     * one cublasGemmEx per expert. */
    void (*moe_expert_gemm)(KernelCtx *ctx, float *Y, const float *X, const float *W, const int *offsets, int E,
                            int Nc, int Kc, int transW, float beta);
    void (*moe_expert_gemm_dw)(KernelCtx *ctx, float *dW, const float *G, const float *X, const int *offsets, int E,
                               int Nc, int Kc);

    /* ---- KV cache ----
     * Append one position per sequence: kcache[b][pos[b]] = k[b], vcache[b][pos[b]] = v[b] for
     * b < B, rows of `row` floats; kcache/vcache (B, Tmax, row), k/v (B, row); pos(B) host memory,
     * each < Tmax. (One launch where a decode step would otherwise copy 2B rows one by one.) */
    void (*kv_append)(KernelCtx *ctx, float *kcache, float *vcache, const float *k, const float *v, const int *pos,
                      int B, int Tmax, int row);

    /* ---- backend handle ---- (may be NULL: nothing to set up) */
    /* Create ctx->impl (library handles, streams, metadata buffers); called by kernel_ctx_init
     * before the workspace is allocated. */
    void (*impl_init)(KernelCtx *ctx);
    void (*impl_free)(KernelCtx *ctx);
} KernelOps;

/* The CPU backend (always built). */
const KernelOps *kernels_cpu(void);
/* The CUDA backend, or NULL when built without -DCISPO_CUDA=ON or when no GPU is present. */
const KernelOps *kernels_cuda(void);

/* Threads the CPU backend's BLAS may use (0 = all cores). */
void kernels_cpu_set_threads(int n);
/* Threads it uses now. */
int kernels_cpu_get_threads(void);

/* Create a context for `ops` with a workspace of ws_bytes (allocated with ops->alloc). */
void kernel_ctx_init(KernelCtx *ctx, const KernelOps *ops, size_t ws_bytes);
void kernel_ctx_free(KernelCtx *ctx); /* idempotent */

#endif
