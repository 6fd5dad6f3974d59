/* model/decode.h: incremental decoding. A DecodeState holds, per sequence slot, the constant-size
 * lightning state of every linear-attention layer (NH x HS x HS floats) and the KV cache of every
 * softmax layer (up to max_len positions), plus each slot's length.
 *
 * model_prefill() runs the full forward over a packed batch of prompts (any lengths, below or
 * above block_size), fills slots [0, B) and returns the last position's logits per sequence;
 * model_decode_step() appends one token to each of the B active slots and returns its logits.
 * Prefill of P tokens followed by N decode steps gives the logits of one forward over P+N tokens.
 */
#ifndef CISPO_MODEL_DECODE_H
#define CISPO_MODEL_DECODE_H

#include "model/model.h"

typedef struct {
    int max_batch, max_len;
    int n_active;     /* slots in use */
    int *len;         /* (max_batch) tokens seen per slot, host */
    float **lin_state; /* per layer: (max_batch, NH, HS, HS) or NULL for softmax layers */
    float **kcache, **vcache; /* per layer: (max_batch, max_len, KVH, HS) or NULL for linear layers */
    /* scratch for one decode step (backend memory) */
    float *x, *xn, *buf_a, *buf_b, *buf_c, *qkv, *att, *router, *probs, *topk_w, *xp, *h13, *hact, *yp;
    int *topk_idx, *sorted, *offsets, *tok_dev;
    float *logp_dummy, *lse;
    int *pos;         /* (max_batch) host */
} DecodeState;

int decode_state_init(DecodeState *s, const Model *m, int max_batch, int max_len);
void decode_state_free(DecodeState *s, const Model *m); /* idempotent */

/* Prefill B prompts (packed, host tokens); logits_last (B, V) host receives each prompt's last
 * position logits. Overwrites m's saved activations. */
void model_prefill(Model *m, DecodeState *s, const int *tokens, const SeqPack *pack, float *logits_last);
/* One step: tokens (n_active) host; logits (n_active, V) host. */
void model_decode_step(Model *m, DecodeState *s, const int *tokens, float *logits);

#endif
