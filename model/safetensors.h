/* model/safetensors.h: reading and writing the safetensors format, single-file and sharded.
 *
 * Format: 8-byte little-endian header length n, then n bytes of JSON mapping tensor names to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the byte after the header),
 * plus an optional "__metadata__" object, then the data. Everything read from a file is treated as
 * hostile: header length against the file size, offsets in range, non-overlapping, matching
 * dtype size x shape, known dtypes, unique names, valid UTF-8 names. Every failure returns an
 * ERR_* code with a message naming the file and the tensor.
 *
 * A directory is opened through model.safetensors.index.json ("weight_map": name -> shard file)
 * when present, else model.safetensors.
 */
#ifndef CISPO_MODEL_SAFETENSORS_H
#define CISPO_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32 = 0, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL } StDtype;

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end; /* byte range inside the file's data section */
    int file;            /* index into StArchive.files */
} StTensor;

typedef struct {
    int n_files;
    char **files;         /* paths */
    uint64_t *data_start; /* (n_files) absolute offset of each file's data section */
    int n;                /* tensors */
    StTensor *t;
} StArchive;

/* Open a .safetensors file or a model directory (see above). Reads headers only. */
int st_open(StArchive *a, const char *path);
void st_close(StArchive *a); /* idempotent */
/* The tensor named `name`, or NULL. */
const StTensor *st_find(const StArchive *a, const char *name);
int64_t st_numel(const StTensor *t);
size_t st_dtype_size(StDtype d);
const char *st_dtype_name(StDtype d);
/* Read tensor `t` into dst as float32, converting F32/F16/BF16/F64. `n` is the number of floats
 * dst holds and must equal st_numel(t) (else ERR_SHAPE). Other dtypes are ERR_UNSUPPORTED. */
int st_read_f32(const StArchive *a, const StTensor *t, float *dst, int64_t n);

typedef struct {
    const char *name;
    const float *data; /* float32, row-major */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} StWriteTensor;

/* Write one safetensors file with the tensors in the given order, stored as `dtype` (ST_F32,
 * ST_BF16 (round to nearest even) or ST_F16). Written to a temporary name, fsynced, renamed. */
int st_write(const char *path, const StWriteTensor *t, int n, StDtype dtype);
/* Write a model directory: model.safetensors when everything fits in max_shard_bytes (<= 0: no
 * limit), else model-0000k-of-0000n.safetensors shards plus model.safetensors.index.json. */
int st_write_dir(const char *dir, const StWriteTensor *t, int n, StDtype dtype, int64_t max_shard_bytes);

#endif
