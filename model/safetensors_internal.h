/* model/safetensors_internal.h: helpers shared by the safetensors reader (safetensors.c) and
 * writer (safetensors_write.c); not part of the public API. */
#ifndef CISPO_MODEL_SAFETENSORS_INTERNAL_H
#define CISPO_MODEL_SAFETENSORS_INTERNAL_H

#include <stdint.h>

#define ST_CHUNK_ELEMS 16384
#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_SINGLE_NAME "model.safetensors"

/* float32 -> bfloat16 with round-to-nearest-even (NaN stays NaN); float32 -> IEEE half. */
uint16_t st_f32_to_bf16(float f);
uint16_t st_f32_to_f16(float f);
/* dir + "/" + name, malloc'd (NULL on overflow of the path limit). */
char *st_path_join(const char *dir, const char *name);

#endif
