/* checkpoints/h5io.h: HDF5 files with zstd compression and Fletcher-32 checksums.
 *
 * Every dataset is chunked, zstd-compressed through our in-process filter registered under zstd's
 * registered HDF5 filter id 32015 (so h5py + hdf5plugin read the files; Debian's HDF5 plugins have
 * no zstd), and Fletcher-32-checksummed. Names may contain '/', intermediate groups are created.
 * Reading checks shape and dtype and surfaces checksum or decompression failures as ERR_FORMAT with
 * the file and dataset named (HDF5's own error stack is captured into the message, never printed
 * raw). Nothing here aborts on a bad file.
 */
#ifndef CISPO_CHECKPOINTS_H5IO_H
#define CISPO_CHECKPOINTS_H5IO_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_H5Z_ZSTD_ID 32015

/* Register the zstd filter with the HDF5 library of this process (idempotent). 0 or ERR_*. */
int h5zstd_register(void);

typedef struct {
    int64_t file; /* hid_t */
    char path[1024];
    int level;    /* zstd level for new datasets (default 3) */
} H5File;

/* Create (truncate) a file for writing. */
int h5_create(H5File *f, const char *path);
/* Open an existing file read-only. */
int h5_open(H5File *f, const char *path);
/* Flush and close; 0 or ERR_IO. Idempotent. */
int h5_close(H5File *f);

/* Datasets. dims: ndim <= 4; a 0-d scalar is ndim 0. */
int h5_write_f32(H5File *f, const char *name, const float *data, int ndim, const int64_t *dims);
int h5_write_i64(H5File *f, const char *name, const int64_t *data, int ndim, const int64_t *dims);
int h5_write_i32(H5File *f, const char *name, const int32_t *data, int ndim, const int64_t *dims);
/* A byte string (e.g. the effective config YAML) as a 1-d uint8 dataset. */
int h5_write_bytes(H5File *f, const char *name, const void *data, size_t len);

/* Read into dst; the dataset's shape must equal (ndim, dims) exactly (else ERR_SHAPE naming both). */
int h5_read_f32(H5File *f, const char *name, float *dst, int ndim, const int64_t *dims);
int h5_read_i64(H5File *f, const char *name, int64_t *dst, int ndim, const int64_t *dims);
int h5_read_i32(H5File *f, const char *name, int32_t *dst, int ndim, const int64_t *dims);
/* Read a byte string: *out is malloc'd (NUL-terminated, caller frees), *len its length. */
int h5_read_bytes(H5File *f, const char *name, char **out, size_t *len);
/* 1 if a dataset or group of that name exists. */
int h5_exists(H5File *f, const char *name);

/* Shape of a dataset: ndim and dims (up to 4). */
int h5_shape(H5File *f, const char *name, int *ndim, int64_t *dims);

/* Walk every dataset (depth first, in name order): fn(name, ndim, dims, stored_bytes, ctx).
 * A non-zero return stops the walk and is returned. */
typedef int (*H5DatasetFn)(const char *name, int ndim, const int64_t *dims, uint64_t stored_bytes,
                           uint64_t raw_bytes, void *ctx);
int h5_walk(H5File *f, H5DatasetFn fn, void *ctx);
/* Read every dataset completely (decompression and checksums exercised); 0 or the first error. */
int h5_verify_all(H5File *f);

#endif
