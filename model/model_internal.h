/* model/model_internal.h: the model's private structures (saved activations, per-layer parameter
 * pointers, gradient scratch), shared by model.c, forward.c, backward.c and decode.c only.
 * Shapes use the glossary of kernels/backend.h; A = NH*HS (attention width), KA = KVH*HS.
 */
#ifndef CISPO_MODEL_INTERNAL_H
#define CISPO_MODEL_INTERNAL_H

#include "model/decode.h"
#include "model/model.h"

/* Pointers into the parameter (or gradient) block for one layer; NULL where absent. */
typedef struct {
    float *w_in, *w_post;                   /* (C) input_layernorm, post_attention_layernorm */
    float *qkv, *gate, *onorm, *out;        /* lightning: (3A,C) (A,C) (A) (C,A) */
    float *wq, *wk, *wv, *wo;               /* full: (A,C) (KA,C) (KA,C) (C,A) */
    float *bq, *bk, *bv;                    /* q/k/v biases (qwen2; llama attention_bias): (A) (KA) (KA) */
    float *bo;                              /* o_proj bias (llama attention_bias only): (C) */
    float *router, *gate_up, *down;         /* MoE: (E,C) (E,2F,C) (E,C,F) */
    float *mlp_gate, *mlp_up, *mlp_down;    /* dense: (F,C) (F,C) (C,F) */
} LayerParams;

typedef struct {
    float *wte;          /* (V,C) */
    float *w_final;      /* (C) */
    float *lm_head;      /* (V,C); == wte when tied */
    LayerParams layer[MODEL_MAX_LAYERS];
} ParamPtrs;

/* Saved activations of one layer (backend memory unless marked host). */
typedef struct {
    float *x;                 /* (N,C) layer input */
    float *n1, *rstd1;        /* (N,C) (N) */
    float *xm;                /* (N,C) after the attention residual */
    float *n2, *rstd2;        /* (N,C) (N) */
    /* lightning */
    float *qkv_pre, *qkv;     /* (N,3A) before / after SiLU */
    float *lo, *on, *rstd_o;  /* (N,A) raw output, normed, (N) */
    float *g, *gated;         /* (N,A) gate pre-activation, gated output */
    /* full attention */
    float *q, *k, *v;         /* (N,A) (N,KA) (N,KA) after bias and RoPE */
    float *att, *lse;         /* (N,A) (N,NH) */
    /* MoE */
    float *rl, *probs;        /* (N,E) router logits, probabilities */
    int *topk_idx;            /* (N,K) */
    float *topk_w;            /* (N,K) */
    int *sorted, *pos;        /* (N*K) (N*K) backend: slots in expert order, and its inverse */
    int *offsets;             /* (E+1) host */
    float *xp;                /* (N*K,C) permuted inputs */
    float *h13, *hact;        /* MoE: (N*K,2F) (N*K,F); dense: (N,2F) (N,F) */
    float *yp;                /* (N*K,C) expert outputs before combine */
} LayerActs;

struct ModelActs {
    ParamPtrs pp, gp;             /* parameter and gradient pointers, resolved once at init */
    LayerActs layer[MODEL_MAX_LAYERS];
    float *x_final, *nf, *rstd_f; /* (N,C) (N,C) (N) */
    float *lse;                   /* (N) */
    float *logp;                  /* (N) backend */
    int *tokens, *targets;        /* (N) backend */
    float *ones;                  /* (max(N, NK)) all ones, for bias add / bias grads */
    float *tmp_c, *tmp_c2;        /* (N,C) scratch: branch outputs */
    /* gradient scratch */
    float *d_x, *d_xm, *d_n;      /* (N,C) */
    float *d_br;                  /* (N,C) branch gradient */
    float *d_a1, *d_a2, *d_a3;    /* (N, max(3A, 2F)) */
    float *d_q, *d_k, *d_v;       /* (N,A) (N,KA) (N,KA) */
    float *d_yp, *d_xp;           /* (N*K,C) */
    float *d_h13, *d_hact;        /* (N*K, 2F) (N*K, F) */
    float *d_topk_w;              /* (N,K) */
    float *d_logits_e;            /* (N,E) */
    float *d_probs;               /* (N,E) backend, aux-loss gradient on probs (the same for every layer) */
    float *host_probs;            /* (L*N,E) host: aux loss */
    float *host_dprobs;           /* (N,E) host: staging for d_probs */
    float *aux_grad;              /* (E) host: d aux / d p_{row,e} of the last forward (one value per expert) */
    int *host_topk;                   /* (L*N,K) host: aux loss */
    float *d_logp;                /* (N) backend */
    SeqPack pack;                 /* copy of the last forward's batch layout (host) */
    int *pack_start, *pack_pos0;  /* (max_seqs+1) (max_seqs) its storage */
    int *host_neg;                /* (max_tokens) host, all -1: "no target" */
    void *block;                  /* the one allocation */
    size_t block_bytes;
};

/* Per-layer parameter pointers into `base` (the params or the grads block). */
void model_param_ptrs(const Model *m, int use_grads, ParamPtrs *p);
/* Attention width helpers. */
static inline int model_A(const ModelConfig *c) { return c->num_attention_heads * c->head_dim; }
static inline int model_KA(const ModelConfig *c) { return c->num_key_value_heads * c->head_dim; }
static inline int model_is_moe(const ModelConfig *c) { return c->family == MODEL_MINIMAX; }

/* y(N,out) = x(N,in) W(out,in)^T (+ b) with beta = 0 or 1 (accumulate). */
void model_linear(const Model *m, float *y, const float *x, const float *W, const float *b, int N, int in,
                  int out, float beta);
/* Backward of model_linear: dx += dy W, dW += dy^T x, db += colsum(dy) (when db non-NULL). */
void model_linear_backward(const Model *m, float *dx, float *dW, float *db, const float *dy, const float *x,
                           const float *W, int N, int in, int out);





/* HF's MoE auxiliary loss over the layers of the last forward; also sets aux_grad. */
float model_aux_loss(Model *m, int N);

/* The forward; `cap` (may be NULL) is a decode state whose slots [0, B) receive the lightning
 * states and the KV caches of this batch (prefill); then the LM head is skipped. */
void model_forward_impl(Model *m, const int *tokens, const int *targets, const SeqPack *pack, float *logp,
                        float *logits_out, DecodeState *cap);
/* Copy a softmax layer's k, v (N, KVH, HS) after RoPE into the cache of slots [0, B). */
void decode_capture_kv(Model *m, DecodeState *s, int l, const float *k, const float *v, const SeqPack *pack);


/* Branch forwards shared by model_forward and decode (forward.c). Each writes its branch output
 * (N,C) into `out` (overwritten), saving what the backward needs in `la`. */
void model_mlp_forward(Model *m, int l, LayerActs *la, const float *n2, int N, float *out);
void model_lightning_proj_in(Model *m, int l, LayerActs *la, const float *n1, int N);
void model_lightning_proj_out(Model *m, int l, LayerActs *la, const float *n1, int N, float *out);
void model_full_proj_in(Model *m, int l, LayerActs *la, const float *n1, int N);
/* x_out(N,C) = alpha * r + beta * branch */
void model_residual(Model *m, float *x_out, const float *r, float alpha, const float *branch, float beta, int N);
/* alpha/beta of layer l's attention and MLP residuals (1 for dense models). */
void model_layer_factors(const ModelConfig *c, int l, float *a_alpha, float *a_beta, float *m_alpha, float *m_beta);
static inline int model_is_linear(const ModelConfig *c, int l) {
    return c->family == MODEL_MINIMAX && c->layer_types[l] == LAYER_LINEAR_ATTENTION;
}

#endif
