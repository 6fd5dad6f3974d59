/* model/model.h: the policy network (MiniMax hybrid or dense Qwen2/Llama), written out as a
 * sequence of KernelOps calls: parameters, forward and backward over a packed batch of
 * variable-length sequences, and incremental decoding (model/decode.h).
 *
 * Memory: model_init() sizes and allocates everything once for at most `max_tokens` packed tokens
 * and `max_seqs` sequences per call (backend memory through ctx->ops->alloc); forward/backward never
 * allocate. Parameters and gradients are TensorTables whose names are the Hugging Face names
 * ("model.layers.0.self_attn.qkv_proj.weight"), with HF shapes (Linear weights are (out, in)).
 * MoE experts are stored as HF transformers 5.x does: "mlp.experts.gate_up_proj" (E, 2F, C) and
 * "mlp.experts.down_proj" (E, C, F).
 *
 * Loss interface: model_forward computes logp(N), the log-probability of targets[n] under the
 * logits at position n (FP32 LM head), and the MoE auxiliary loss (MiniMax). model_backward takes
 * dL/dlogp(N) and dL/daux, so any loss that is a function of per-token log-probs (SFT cross
 * entropy, CISPO/PPO/GRPO) plugs in without the model knowing about it.
 */
#ifndef CISPO_MODEL_MODEL_H
#define CISPO_MODEL_MODEL_H

#include <stdint.h>

#include "core/tensor.h"
#include "kernels/backend.h"
#include "model/model_config.h"
#include "model/safetensors.h"

typedef struct ModelActs ModelActs; /* saved activations, private to model.c */

typedef struct {
    ModelConfig cfg;
    KernelCtx *ctx;
    int max_tokens; /* N max per forward */
    int max_seqs;   /* B max per forward */

    TensorTable params; /* HF names and shapes */
    TensorTable grads;  /* same names and shapes as params */
    void *param_mem, *grad_mem;
    size_t n_params;    /* total floats in params (sum of the tensors' sizes) */
    size_t param_floats; /* floats in param_mem (= grad_mem), the 64-byte padding between tensors included:
                            the extent of every whole-block copy, hash and collective */

    float *slopes;      /* (L, NH) lightning decay rates s_{l,h}, host memory */

    ModelActs *acts;    /* activations of the last forward */
    int last_N;         /* tokens in the last forward (0 = none) */
    float aux_loss;     /* MoE load-balancing loss of the last forward (0 for dense) */
} Model;

/* Allocate a model for `cfg` (validated here) on ctx's backend; parameters are zero until
 * model_init_weights or model_load_hf. Returns 0 or ERR_*. */
int model_init(Model *m, const ModelConfig *cfg, KernelCtx *ctx, int max_tokens, int max_seqs);
void model_free(Model *m); /* idempotent */

/* Random init as HF _init_weights: every matrix N(0, std) from a Philox stream keyed by seed and
 * tensor index; RMSNorm weights 1; biases 0. Deterministic for a given seed. */
void model_init_weights(Model *m, uint64_t seed, float std);

/* Load a Hugging Face model directory (config.json + safetensors, single or sharded) into a
 * model that is initialised here from the directory's config. Accepts fused MoE tensors
 * (mlp.experts.gate_up_proj/down_proj) or the per-expert original layout
 * (block_sparse_moe.experts.{j}.w1/w2/w3.weight, block_sparse_moe.gate.weight). Missing tensors,
 * shape mismatches and bad files are errors naming the tensor. */
int model_load_hf(Model *m, const char *dir, KernelCtx *ctx, int max_tokens, int max_seqs);
/* Write config.json and model.safetensors (dtype ST_F32 or ST_BF16) that transformers loads; for
 * the original MiniMax format, the original config and per-expert tensor names
 * (block_sparse_moe.experts.{j}.w1/w2/w3.weight, block_sparse_moe.gate.weight). */
int model_save_hf(const Model *m, const char *dir, StDtype dtype);

/* Forward over a packed batch (tokens(N), targets(N), both host memory; targets[n] < 0 means no
 * target). Writes logp(N) (host) and, when logits_out (N,V) is non-NULL, the full logits there
 * (backend memory: host on the CPU backend; tests and goldens use it).
 * Saves what model_backward needs. Sets m->aux_loss (the HF load-balancing loss over the tokens of
 * this call, 0 for dense models). N = pack->start[B] <= max_tokens. */
void model_forward(Model *m, const int *tokens, const int *targets, const SeqPack *pack, float *logp,
                   float *logits_out);
/* Zero all gradients. */
void model_zero_grad(Model *m);
/* Backward of the last forward: accumulates into m->grads the gradient of
 * L = sum_n dlogp[n] * logp[n] + daux * aux_loss. dlogp (N) in host memory. */
void model_backward(Model *m, const float *dlogp, float daux);

/* Parameter / gradient lookup by HF name (NULL if absent). */
float *model_param(const Model *m, const char *name);
float *model_grad(const Model *m, const char *name);

/* Size of the workspace the model needs from its KernelCtx (call before kernel_ctx_init). */
size_t model_ws_bytes(const ModelConfig *cfg, const KernelOps *ops, int max_tokens);

/* Decay rate of lightning layer l, head h, as transformers computes it (ALGORITHMS.md §11.2), or,
 * for cfg->format == MODEL_FORMAT_MINIMAX_ORIGINAL, as MiniMax's own code does. */
float model_lightning_slope(const ModelConfig *cfg, int layer, int head);

#endif
