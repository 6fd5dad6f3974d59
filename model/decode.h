/* model/decode.h: incremental decoding. A DecodeState holds, per sequence slot, the constant-size
 * lightning state of every linear-attention layer (NH x HS x HS floats) and the KV cache of every
 * softmax layer (up to max_len positions), plus each slot's length.
 *
 * model_prefill() runs the full forward over a packed batch of prompts (any lengths, below or
 * above block_size), fills slots [0, B) and returns the last position's logits per sequence;
 * model_decode_step() appends one token to each of the B active slots and returns its logits.
 * Prefill of P tokens followed by N decode steps gives the logits of one forward over P+N tokens.
 * decode_state_retire() drops a finished sequence by moving the last slot into its place.
 * A decode step reuses the model's activation buffers as scratch (the step's B tokens are a batch
 * of B one-token sequences), so max_batch <= the model's max_tokens and max_seqs; it overwrites
 * what a training forward saved.
 */
#ifndef CISPO_MODEL_DECODE_H
#define CISPO_MODEL_DECODE_H

#include "model/model.h"

typedef struct {
    int max_batch, max_len;
    int n_active;      /* slots in use: [0, n_active) */
    int *len;          /* (max_batch) tokens seen per slot, host */
    float **lin_state; /* per layer: (max_batch, NH, HS, HS) backend, or NULL for softmax layers */
    float **kcache;    /* per layer: (max_batch, max_len, KVH, HS) backend, or NULL for linear layers */
    float **vcache;    /* same shape as kcache */
    int *start;        /* (max_batch+1) host: 0..B, the one-token-per-slot SeqPack of a decode step */
    int *len_next;     /* (max_batch) host: len + 1 during a step (attention_decode lengths) */
    float *logits_dev; /* (max_batch, V) backend: the LM head writes here (then to the host, or sampled there) */
} DecodeState;

int decode_state_init(DecodeState *s, const Model *m, int max_batch, int max_len);
void decode_state_free(DecodeState *s, const Model *m); /* idempotent */

/* Prefill B prompts (packed, host tokens); logits_last (B, V) host receives each prompt's last
 * position logits (NULL: they stay in s->logits_dev only, for sampling on the backend).
 * Overwrites m's saved activations. */
void model_prefill(Model *m, DecodeState *s, const int *tokens, const SeqPack *pack, float *logits_last);
/* One step: tokens (n_active) host; logits (n_active, V) host, or NULL (s->logits_dev only). */
void model_decode_step(Model *m, DecodeState *s, const int *tokens, float *logits);
/* Remove the sequence in `slot` from the batch: the last active slot moves into it (lightning
 * states, the filled KV cache rows, the length) and n_active drops by one, so later steps compute
 * only live sequences. The caller keeps its slot -> sequence map in step. */
void decode_state_retire(Model *m, DecodeState *s, int slot);

#endif
