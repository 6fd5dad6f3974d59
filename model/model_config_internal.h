/* model/model_config_internal.h: the typed config.json getters and writers shared by the
 * transformers-format reader (model_config.c) and the original MiniMax-format reader
 * (model_config_minimax.c). Private to model/. Getters leave *out unchanged when the key is absent
 * (and, where noted, null) and return ERR_FORMAT naming the file and key on a wrong type. */
#ifndef CISPO_MODEL_MODEL_CONFIG_INTERNAL_H
#define CISPO_MODEL_MODEL_CONFIG_INTERNAL_H

#include <jansson.h>

#include "model/model_config.h"

int mc_type_error(const char *path, const char *key, const char *want, const json_t *v);
int mc_get_int(const char *path, const json_t *o, const char *key, int min, int *out); /* null: unchanged */
int mc_get_float(const char *path, const json_t *o, const char *key, float *out);
int mc_get_bool(const char *path, const json_t *o, const char *key, int *out);
/* The keys both formats share (sizes, heads, eps, token ids, hidden_act, RoPE theta). */
int mc_parse_common(const char *path, const json_t *root, ModelConfig *cfg);
/* transformers' MiniMax keys (experts, router, block_size, *_alpha/beta_factor, layer types). */
int mc_parse_minimax_keys(const char *path, const json_t *root, ModelConfig *cfg);
/* The keys both formats write (sizes, token ids, rope_parameters; not architectures/model_type). */
void mc_add_common(json_t *o, const ModelConfig *c);
json_t *mc_json_float(float f); /* the shortest decimal that reads back as f */

/* model_config_minimax.c: the original format ("minimax_text_01" / "minimax_m1"). */
int mc_is_minimax_original(const char *model_type);
/* Fill cfg (defaults already set, mc_parse_common done) from the original keys. */
int mc_parse_minimax_original(const char *path, const json_t *root, ModelConfig *cfg);
/* Add the original-format keys (model_type, architectures, attn_type_list, rotary_dim, ...). */
void mc_add_minimax_original(json_t *o, const ModelConfig *c);

#endif
