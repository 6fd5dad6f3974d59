/* checkpoints/h5io.c: HDF5 files of named tensors, zstd-compressed and Fletcher-32-checksummed
 * (the contract is h5io.h; the filter itself is h5zstd.c).
 *
 * Layout: every dataset of rank >= 1 is chunked (the whole dataset when it fits in
 * H5IO_CHUNK_BYTES, else split along the first dimension, and along later ones only when a
 * single row is larger than that) with the pipeline zstd (id 32015, cd_values[0] = level) then
 * Fletcher-32. HDF5 applies filters in the order they were added on write and in reverse on read,
 * so the checksum covers the stored (compressed) bytes and is checked before decompression (h5py
 * adds them in the same order). Zero-size datasets are chunked and filtered too (they store no
 * chunk). A 0-d scalar cannot be chunked, so it has no filter; it is stored with the compact layout,
 * inside its object header, whose metadata checksum then covers it. Files use libver bounds
 * V110..V110 (readable by HDF5 1.10 and later): superblock v3 and v2 object headers, so all
 * metadata is checksummed, and the chunk indexes (single chunk, fixed array) are checksummed too;
 * with a V18 low bound chunks are indexed by v1 B-trees, which have none, and in a bit-flip sweep a
 * flip there changed values with no error reported. A file left open for writing by a crash
 * refuses to open. No object carries a timestamp, so equal content makes byte-identical files;
 * files close with H5F_CLOSE_STRONG.
 *
 * Errors: each public call turns HDF5's automatic error printing off for its duration and puts
 * back whatever the caller had. A failing HDF5 call's error stack is captured and cleared; the
 * err_set message names the file, the dataset and the innermost HDF5 description (e.g. "data
 * error detected by Fletcher32 checksum" or our filter's "zstd: ..."). A bad file is always an
 * error code: read failures (checksum, decompression, truncation) are ERR_FORMAT. Reads refuse
 * any dtype other than the requested one (no silent conversion) and any other shape (ERR_SHAPE).
 * Not thread-safe (Debian's HDF5 is not built thread-safe).
 */
#include "checkpoints/h5io.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

#define H5IO_MAX_NDIM 4
#define H5IO_NAME_MAX 1024
#define H5IO_DEFAULT_LEVEL 3
#define H5IO_CHUNK_BYTES ((uint64_t)1 << 20)        /* target bytes per chunk */
#define H5IO_MAX_STRING_BYTES ((uint64_t)1 << 30)   /* h5_read_bytes refuses more */
#define H5IO_MAX_VERIFY_BLOCK ((uint64_t)256 << 20) /* h5_verify_all's largest read buffer */

typedef enum { H5IO_F32, H5IO_I64, H5IO_I32, H5IO_U8 } H5ioKind;

/* ---- error handling ---------------------------------------------------------------------- */

typedef struct {
    H5E_auto2_t fn;
    void *data;
    int saved;
} H5Quiet;

static H5Quiet quiet_begin(void) {
    H5Quiet q = {NULL, NULL, 0};
    q.saved = H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data) >= 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

static void quiet_end(H5Quiet q) {
    if (q.saved) H5Eset_auto2(H5E_DEFAULT, q.fn, q.data);
}

typedef struct {
    char desc[512];
    char func[128];
    int have;
} H5Inner;

/* H5E_walk2_t: upward walks start at the innermost entry (n == 0), where the fault was found. */
static herr_t inner_cb(unsigned n, const H5E_error2_t *e, void *data) {
    H5Inner *in = data;
    if (n != 0 || !e) return 0;
    snprintf(in->desc, sizeof(in->desc), "%s", e->desc ? e->desc : "?");
    snprintf(in->func, sizeof(in->func), "%s", e->func_name ? e->func_name : "?");
    in->have = 1;
    return 0;
}

/* Move the current HDF5 error stack into "HDF5: <innermost description> (in <function>)". */
static void h5_trace(char *out, size_t cap) {
    H5Inner in = {{0}, {0}, 0};
    hid_t st = H5Eget_current_stack(); /* copies and clears the default stack */
    if (st >= 0) {
        H5Ewalk2(st, H5E_WALK_UPWARD, inner_cb, &in);
        H5Eclose_stack(st);
    }
    if (in.have) snprintf(out, cap, "HDF5: %s (in %s)", in.desc, in.func);
    else snprintf(out, cap, "HDF5 gave no details");
}

static const char *fpath(const H5File *f) { return f && f->path[0] ? f->path : "(h5 file)"; }

/* err_set for a failed HDF5 call: "<file>: dataset '<name>': <what>: HDF5: ...". */
static int h5_fail(int code, const H5File *f, const char *name, const char *what) {
    char hdf[768];
    h5_trace(hdf, sizeof(hdf));
    if (name) return err_set(code, "%s: dataset '%s': %s: %s", fpath(f), name, what, hdf);
    return err_set(code, "%s: %s: %s", fpath(f), what, hdf);
}

/* Jump to `fail` with rc set when an HDF5 call returns a negative value. */
#define H5_TRY(expr, code, name, what)                                                             \
    do {                                                                                           \
        if ((expr) < 0) {                                                                          \
            rc = h5_fail((code), f, (name), (what));                                               \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

static int check_args(const H5File *f, const char *name) {
    if (!f || f->file <= 0) return err_set(ERR_ARG, "%s: h5io: the file is not open", fpath(f));
    if (!name || !name[0]) return err_set(ERR_ARG, "%s: h5io: empty dataset name", fpath(f));
    if (strlen(name) >= H5IO_NAME_MAX)
        return err_set(ERR_ARG, "%s: h5io: dataset name longer than %d bytes", fpath(f), H5IO_NAME_MAX - 1);
    return 0;
}

/* ---- shapes and dtypes ------------------------------------------------------------------- */

static void shape_str(char *out, size_t cap, int ndim, const hsize_t *dims) {
    size_t n = (size_t)snprintf(out, cap, "(");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    if (n < cap) snprintf(out + n, cap - n, ")");
}

/* Validate (ndim, dims) from a caller into hsize_t dims and an element count. */
static int caller_shape(const H5File *f, const char *name, int ndim, const int64_t *dims, hsize_t *hd,
                        uint64_t *count) {
    if (ndim < 0 || ndim > H5IO_MAX_NDIM || (ndim > 0 && !dims))
        return err_set(ERR_SHAPE, "%s: dataset '%s': ndim %d outside 0..%d", fpath(f), name, ndim, H5IO_MAX_NDIM);
    *count = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0)
            return err_set(ERR_SHAPE, "%s: dataset '%s': negative dimension %lld", fpath(f), name, (long long)dims[i]);
        hd[i] = (hsize_t)dims[i];
        if (hd[i] > 0 && *count > UINT64_MAX / hd[i])
            return err_set(ERR_SHAPE, "%s: dataset '%s': element count overflows", fpath(f), name);
        *count *= hd[i];
    }
    return 0;
}

/* Shape of an open dataset; scalar = ndim 0. */
static int dataset_shape(const H5File *f, const char *name, hid_t dset, int *ndim, hsize_t *dims) {
    int rc = 0;
    hid_t space = -1;
    H5_TRY(space = H5Dget_space(dset), ERR_FORMAT, name, "reading the dataspace");
    H5S_class_t cls = H5Sget_simple_extent_type(space);
    if (cls == H5S_SCALAR) {
        *ndim = 0;
    } else if (cls == H5S_SIMPLE) {
        int nd;
        H5_TRY(nd = H5Sget_simple_extent_ndims(space), ERR_FORMAT, name, "reading the rank");
        if (nd > H5IO_MAX_NDIM) {
            rc = err_set(ERR_UNSUPPORTED, "%s: dataset '%s' has rank %d, at most %d is supported", fpath(f),
                         name, nd, H5IO_MAX_NDIM);
            goto fail;
        }
        H5_TRY(H5Sget_simple_extent_dims(space, dims, NULL), ERR_FORMAT, name, "reading the dimensions");
        *ndim = nd;
    } else {
        rc = err_set(ERR_FORMAT, "%s: dataset '%s' has a null or unknown dataspace", fpath(f), name);
    }
fail:
    if (space >= 0) H5Sclose(space);
    return rc;
}

static hid_t kind_mem_type(H5ioKind k) {
    switch (k) {
    case H5IO_F32: return H5T_NATIVE_FLOAT;
    case H5IO_I64: return H5T_NATIVE_INT64;
    case H5IO_I32: return H5T_NATIVE_INT32;
    default: return H5T_NATIVE_UINT8;
    }
}

static hid_t kind_file_type(H5ioKind k) {
    switch (k) {
    case H5IO_F32: return H5T_IEEE_F32LE;
    case H5IO_I64: return H5T_STD_I64LE;
    case H5IO_I32: return H5T_STD_I32LE;
    default: return H5T_STD_U8LE;
    }
}

static const char *kind_name(H5ioKind k) {
    static const char *names[] = {"f32", "i64", "i32", "u8"};
    return names[k];
}

static void dtype_str(char *out, size_t cap, hid_t type) {
    H5T_class_t cls = H5Tget_class(type);
    size_t bits = H5Tget_size(type) * 8;
    if (cls == H5T_FLOAT) snprintf(out, cap, "f%zu", bits);
    else if (cls == H5T_INTEGER) snprintf(out, cap, "%c%zu", H5Tget_sign(type) == H5T_SGN_NONE ? 'u' : 'i', bits);
    else snprintf(out, cap, "HDF5 class %d of %zu bytes", (int)cls, bits / 8);
}

/* The dataset's stored type must be exactly the kind asked for (byte order aside). */
static int check_dtype(const H5File *f, const char *name, hid_t dset, H5ioKind kind) {
    int rc = 0;
    hid_t type = -1;
    H5_TRY(type = H5Dget_type(dset), ERR_FORMAT, name, "reading the datatype");
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    H5T_sign_t sign = cls == H5T_INTEGER ? H5Tget_sign(type) : H5T_SGN_ERROR;
    int ok = 0;
    switch (kind) {
    case H5IO_F32: ok = cls == H5T_FLOAT && size == 4; break;
    case H5IO_I64: ok = cls == H5T_INTEGER && size == 8 && sign == H5T_SGN_2; break;
    case H5IO_I32: ok = cls == H5T_INTEGER && size == 4 && sign == H5T_SGN_2; break;
    case H5IO_U8: ok = cls == H5T_INTEGER && size == 1; break;
    }
    if (!ok) {
        char got[64];
        dtype_str(got, sizeof(got), type);
        rc = err_set(ERR_FORMAT, "%s: dataset '%s' has dtype %s, expected %s", fpath(f), name, got, kind_name(kind));
    }
fail:
    if (type >= 0) H5Tclose(type);
    return rc;
}

/* Chunk shape for new datasets: the whole dataset up to H5IO_CHUNK_BYTES, else split along the
 * first dimension (and a later one only while a single slice is still too large). Zero
 * dimensions get chunk extent 1 (HDF5 requires positive chunk dimensions). */
static void chunk_shape(int ndim, const hsize_t *dims, size_t elem, hsize_t *chunk) {
    for (int i = 0; i < ndim; i++) chunk[i] = dims[i] > 0 ? dims[i] : 1;
    for (int i = 0; i < ndim; i++) {
        uint64_t inner = elem; /* bytes of one index step along dimension i */
        for (int j = i + 1; j < ndim; j++) inner *= chunk[j];
        uint64_t rows = inner >= H5IO_CHUNK_BYTES ? 1 : H5IO_CHUNK_BYTES / inner;
        if (chunk[i] <= rows) return;
        chunk[i] = rows;
        if (rows > 1) return;
    }
}

/* ---- links ------------------------------------------------------------------------------- */

/* 1 if every component of `name` exists and the object it names resolves, 0 if not, < 0 on an
 * HDF5 failure (H5Lexists fails on a missing intermediate group, so walk the prefixes). */
static htri_t path_exists(hid_t file, const char *name) {
    char buf[H5IO_NAME_MAX];
    size_t len = strlen(name);
    memcpy(buf, name, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if ((buf[i] != '/' && buf[i] != '\0') || buf[i - 1] == '/') continue;
        char saved = buf[i];
        buf[i] = '\0';
        htri_t e = H5Lexists(file, buf, H5P_DEFAULT);
        buf[i] = saved;
        if (e <= 0) return e;
    }
    return H5Oexists_by_name(file, name, H5P_DEFAULT);
}

/* Create the missing parent groups of `name` without timestamps, so equal content gives equal
 * files (the link-creation flag for intermediate groups stays on as a fallback, but would add
 * timestamped groups). */
static int make_parents(const H5File *f, const char *name) {
    char buf[H5IO_NAME_MAX];
    size_t len = strlen(name);
    int rc = 0;
    hid_t gcpl = -1;
    memcpy(buf, name, len + 1);
    H5_TRY(gcpl = H5Pcreate(H5P_GROUP_CREATE), ERR_IO, name, "creating properties");
    H5_TRY(H5Pset_obj_track_times(gcpl, 0), ERR_IO, name, "setting properties");
    for (size_t i = 1; i < len; i++) {
        if (buf[i] != '/' || buf[i - 1] == '/') continue;
        buf[i] = '\0';
        htri_t e;
        H5_TRY(e = H5Lexists(f->file, buf, H5P_DEFAULT), ERR_IO, name, "looking up a parent group");
        hid_t g = -1;
        if (!e) H5_TRY(g = H5Gcreate2(f->file, buf, H5P_DEFAULT, gcpl, H5P_DEFAULT), ERR_IO, name,
                       "creating a parent group");
        if (g >= 0) H5Gclose(g);
        buf[i] = '/';
    }
fail:
    if (gcpl >= 0) H5Pclose(gcpl);
    return rc;
}

/* Open dataset `name`: ERR_NOTFOUND if absent, ERR_FORMAT if it is not a dataset. */
static int open_dataset(const H5File *f, const char *name, hid_t *out) {
    int rc = 0;
    htri_t e;
    hid_t obj = -1;
    *out = -1;
    H5_TRY(e = path_exists(f->file, name), ERR_FORMAT, name, "looking it up");
    if (!e) return err_set(ERR_NOTFOUND, "%s: no dataset '%s'", fpath(f), name);
    H5_TRY(obj = H5Oopen(f->file, name, H5P_DEFAULT), ERR_FORMAT, name, "opening");
    if (H5Iget_type(obj) != H5I_DATASET) {
        rc = err_set(ERR_FORMAT, "%s: '%s' is not a dataset", fpath(f), name);
        goto fail;
    }
    *out = obj;
    return 0;
fail:
    if (obj >= 0) H5Oclose(obj);
    return rc;
}

/* ---- the filter pipeline ----------------------------------------------------------------- */

/* Advance `start` to the next block of the grid that tiles `dims` with `block` (last dimension
 * fastest). 0 when the grid is exhausted. */
static int next_block(int nd, const hsize_t *dims, const hsize_t *block, hsize_t *start) {
    for (int i = nd - 1; i >= 0; i--) {
        start[i] += block[i];
        if (start[i] < dims[i]) return 1;
        start[i] = 0;
    }
    return 0;
}

/* Every chunk of a non-empty dataset must be stored and have gone through every filter: HDF5 1.10
 * reads a missing chunk as fill values without complaint, and a chunk whose filter mask skips
 * filters bypasses the checksum (and, when short, makes HDF5 read past its buffer). */
static int check_chunks(const H5File *f, const char *name, hid_t dset, int nd, const hsize_t *dims,
                        const hsize_t *chunk) {
    hsize_t start[H5IO_MAX_NDIM] = {0};
    int rc = 0;
    do {
        unsigned mask = 0;
        haddr_t addr = HADDR_UNDEF;
        hsize_t size = 0;
        char at[128];
        shape_str(at, sizeof(at), nd, start);
        if (H5Dget_chunk_info_by_coord(dset, start, &mask, &addr, &size) < 0) {
            char what[192];
            snprintf(what, sizeof(what), "looking up the chunk at %s", at);
            return h5_fail(ERR_FORMAT, f, name, what);
        }
        if (addr == HADDR_UNDEF || size == 0)
            return err_set(ERR_FORMAT, "%s: dataset '%s': the chunk at %s is missing", fpath(f), name, at);
        if (mask != 0)
            return err_set(ERR_FORMAT, "%s: dataset '%s': the chunk at %s skips filters (mask 0x%x)", fpath(f),
                           name, at, mask);
    } while (next_block(nd, dims, chunk, start));
    return rc;
}

/* Check how a dataset is stored before reading it. A chunked dataset's pipeline must start with
 * zstd carrying cd_values[1] = the chunk's byte size (our set_local writes it): zstd runs last on
 * read and its decoder then guarantees HDF5 gets exactly one chunk's bytes, whatever a crafted
 * file holds (HDF5 1.10 overruns its buffer when a pipeline returns fewer). Files written by other
 * tools (h5py + hdf5plugin store the level only) are refused here. Also checks every chunk
 * (check_chunks) and reports whether Fletcher-32 is in the pipeline. */
static int check_storage(const H5File *f, const char *name, hid_t dset, int nd, const hsize_t *dims,
                         int *has_fletcher) {
    int rc = 0, nf = 0;
    hid_t dcpl = -1, type = -1;
    hsize_t chunk[H5S_MAX_RANK];
    uint64_t count = 1;
    *has_fletcher = 0;
    for (int i = 0; i < nd; i++) count *= dims[i];
    H5_TRY(dcpl = H5Dget_create_plist(dset), ERR_FORMAT, name, "reading the creation properties");
    if (H5Pget_layout(dcpl) != H5D_CHUNKED) goto fail; /* compact or contiguous: no pipeline */
    if (H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk) != nd) {
        rc = err_set(ERR_FORMAT, "%s: dataset '%s': chunk rank does not match the rank %d", fpath(f), name, nd);
        goto fail;
    }
    H5_TRY(type = H5Dget_type(dset), ERR_FORMAT, name, "reading the datatype");
    uint64_t chunk_bytes = H5Tget_size(type);
    for (int i = 0; i < nd; i++) chunk_bytes *= chunk[i];
    H5_TRY(nf = H5Pget_nfilters(dcpl), ERR_FORMAT, name, "reading the filter pipeline");
    for (int i = 0; i < nf; i++) {
        unsigned flags = 0, vals[8] = {0}, cfg = 0;
        size_t nv = 8;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nv, vals, 0, NULL, &cfg);
        H5_TRY(id, ERR_FORMAT, name, "reading the filter pipeline");
        if (id == H5Z_FILTER_FLETCHER32) *has_fletcher = 1;
        if (i == 0 && id != CKPT_H5Z_ZSTD_ID) {
            rc = err_set(ERR_FORMAT, "%s: dataset '%s': its first filter is %d, expected zstd (%d)", fpath(f), name,
                         (int)id, CKPT_H5Z_ZSTD_ID);
            goto fail;
        }
        if (i == 0 && (nv < 2 || vals[1] != chunk_bytes)) {
            rc = err_set(ERR_FORMAT, "%s: dataset '%s': zstd chunk-size parameter %s, expected %llu (the chunk's "
                         "bytes)\nHINT: h5io reads the files it writes; a file from h5py + hdf5plugin stores only "
                         "the level", fpath(f), name, nv < 2 ? "missing" : "wrong", (unsigned long long)chunk_bytes);
            goto fail;
        }
    }
    if (nf == 0) {
        rc = err_set(ERR_FORMAT, "%s: dataset '%s' is chunked but has no filter", fpath(f), name);
        goto fail;
    }
    if (count > 0) rc = check_chunks(f, name, dset, nd, dims, chunk);
fail:
    if (type >= 0) H5Tclose(type);
    if (dcpl >= 0) H5Pclose(dcpl);
    return rc;
}

/* ---- writing ----------------------------------------------------------------------------- */

static int write_dataset(H5File *f, const char *name, H5ioKind kind, const void *data, int ndim,
                         const int64_t *dims) {
    hsize_t hd[H5IO_MAX_NDIM] = {0}, chunk[H5IO_MAX_NDIM];
    uint64_t count = 0;
    int rc = check_args(f, name);
    if (rc == 0) rc = caller_shape(f, name, ndim, dims, hd, &count);
    if (rc) return rc;
    if (count > 0 && !data) return err_set(ERR_ARG, "%s: dataset '%s': NULL data", fpath(f), name);
    if ((rc = make_parents(f, name)) != 0) return rc;
    hid_t space = -1, dcpl = -1, lcpl = -1, dset = -1;
    H5_TRY(space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, hd, NULL), ERR_IO, name,
           "creating the dataspace");
    H5_TRY(dcpl = H5Pcreate(H5P_DATASET_CREATE), ERR_IO, name, "creating properties");
    H5_TRY(H5Pset_obj_track_times(dcpl, 0), ERR_IO, name, "setting properties");
    if (ndim > 0) {
        unsigned level = (unsigned)f->level; /* read back as (int)cd_values[0] */
        chunk_shape(ndim, hd, H5Tget_size(kind_file_type(kind)), chunk);
        H5_TRY(H5Pset_chunk(dcpl, ndim, chunk), ERR_IO, name, "setting the chunk shape");
        H5_TRY(H5Pset_filter(dcpl, CKPT_H5Z_ZSTD_ID, H5Z_FLAG_MANDATORY, 1, &level), ERR_IO, name,
               "adding the zstd filter");
        H5_TRY(H5Pset_fletcher32(dcpl), ERR_IO, name, "adding the Fletcher-32 filter");
    } else {
        H5_TRY(H5Pset_layout(dcpl, H5D_COMPACT), ERR_IO, name, "setting the compact layout");
    }
    H5_TRY(lcpl = H5Pcreate(H5P_LINK_CREATE), ERR_IO, name, "creating properties");
    H5_TRY(H5Pset_create_intermediate_group(lcpl, 1), ERR_IO, name, "setting properties");
    H5_TRY(dset = H5Dcreate2(f->file, name, kind_file_type(kind), space, lcpl, dcpl, H5P_DEFAULT), ERR_IO, name,
           "creating the dataset");
    if (count > 0)
        H5_TRY(H5Dwrite(dset, kind_mem_type(kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), ERR_IO, name,
               "writing");
fail:
    /* Closing the dataset flushes its cached chunks, so its failure is a write failure. */
    if (dset >= 0 && H5Dclose(dset) < 0 && rc == 0) rc = h5_fail(ERR_IO, f, name, "writing (closing)");
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (rc) H5Eclear2(H5E_DEFAULT);
    return rc;
}

/* ---- reading ----------------------------------------------------------------------------- */

static int read_dataset(H5File *f, const char *name, H5ioKind kind, void *dst, int ndim, const int64_t *dims) {
    hsize_t want[H5IO_MAX_NDIM] = {0}, have[H5IO_MAX_NDIM] = {0};
    uint64_t count = 0;
    int have_nd = 0, fletcher = 0;
    int rc = check_args(f, name);
    if (rc == 0) rc = caller_shape(f, name, ndim, dims, want, &count);
    if (rc) return rc;
    if (count > 0 && !dst) return err_set(ERR_ARG, "%s: dataset '%s': NULL destination", fpath(f), name);
    hid_t dset = -1;
    if ((rc = open_dataset(f, name, &dset)) != 0) return rc;
    if ((rc = check_dtype(f, name, dset, kind)) != 0) goto fail;
    if ((rc = dataset_shape(f, name, dset, &have_nd, have)) != 0) goto fail;
    int same = have_nd == ndim;
    for (int i = 0; same && i < ndim; i++) same = have[i] == want[i];
    if (!same) {
        char hs[128], ws[128];
        shape_str(hs, sizeof(hs), have_nd, have);
        shape_str(ws, sizeof(ws), ndim, want);
        rc = err_set(ERR_SHAPE, "%s: dataset '%s' has shape %s, expected %s", fpath(f), name, hs, ws);
        goto fail;
    }
    if ((rc = check_storage(f, name, dset, have_nd, have, &fletcher)) != 0) goto fail;
    if (count > 0)
        H5_TRY(H5Dread(dset, kind_mem_type(kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, dst), ERR_FORMAT, name,
               "read failed (corrupt, truncated or bad checksum)");
fail:
    if (dset >= 0) H5Dclose(dset);
    if (rc) H5Eclear2(H5E_DEFAULT);
    return rc;
}

static int read_bytes(H5File *f, const char *name, char **out, size_t *len) {
    hsize_t dims[H5IO_MAX_NDIM] = {0};
    int nd = 0, rc = check_args(f, name);
    if (rc) return rc;
    if (!out || !len) return err_set(ERR_ARG, "%s: dataset '%s': NULL output", fpath(f), name);
    *out = NULL;
    *len = 0;
    hid_t dset = -1;
    if ((rc = open_dataset(f, name, &dset)) != 0) return rc;
    if ((rc = check_dtype(f, name, dset, H5IO_U8)) == 0) rc = dataset_shape(f, name, dset, &nd, dims);
    H5Dclose(dset);
    if (rc) return rc;
    if (nd != 1) {
        char hs[128];
        shape_str(hs, sizeof(hs), nd, dims);
        return err_set(ERR_SHAPE, "%s: dataset '%s' has shape %s, expected a 1-d byte string", fpath(f), name, hs);
    }
    if (dims[0] > H5IO_MAX_STRING_BYTES)
        return err_set(ERR_FORMAT, "%s: dataset '%s' holds %llu bytes, more than the %llu a byte string may",
                       fpath(f), name, (unsigned long long)dims[0], (unsigned long long)H5IO_MAX_STRING_BYTES);
    char *buf = malloc((size_t)dims[0] + 1);
    if (!buf) return err_set(ERR_NOMEM, "%s: dataset '%s': out of memory", fpath(f), name);
    int64_t n = (int64_t)dims[0];
    if ((rc = read_dataset(f, name, H5IO_U8, buf, 1, &n)) != 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = (size_t)n;
    return 0;
}

/* ---- walking and verifying --------------------------------------------------------------- */

typedef struct {
    const H5File *f;
    H5DatasetFn fn;
    void *ctx;
    int rc;
} H5WalkCtx;

/* H5L_iterate_t for H5Lvisit: hard links to datasets only; stop with the user's code in w->rc. */
static herr_t walk_cb(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    H5WalkCtx *w = data;
    const H5File *f = w->f;
    if (info->type != H5L_TYPE_HARD) return 0;
    int rc = 0, nd = 0;
    hid_t obj = -1, type = -1;
    hsize_t dims[H5IO_MAX_NDIM] = {0};
    int64_t dims64[H5IO_MAX_NDIM] = {0};
    if ((obj = H5Oopen(group, name, H5P_DEFAULT)) < 0) {
        char what[H5IO_NAME_MAX + 32];
        snprintf(what, sizeof(what), "opening object '%s'", name);
        rc = h5_fail(ERR_FORMAT, f, NULL, what);
        goto fail;
    }
    if (H5Iget_type(obj) != H5I_DATASET) goto fail;
    if ((rc = dataset_shape(f, name, obj, &nd, dims)) != 0) goto fail;
    H5_TRY(type = H5Dget_type(obj), ERR_FORMAT, name, "reading the datatype");
    uint64_t raw = H5Tget_size(type);
    for (int i = 0; i < nd; i++) {
        raw *= dims[i];
        dims64[i] = (int64_t)dims[i];
    }
    uint64_t stored = H5Dget_storage_size(obj);
    H5Tclose(type);
    type = -1;
    H5Oclose(obj);
    obj = -1;
    rc = w->fn(name, nd, dims64, stored, raw, w->ctx);
fail:
    if (type >= 0) H5Tclose(type);
    if (obj >= 0) H5Oclose(obj);
    if (rc) {
        w->rc = rc;
        return 1; /* positive: H5Lvisit stops and reports success; the code travels in w->rc */
    }
    return 0;
}

static int walk(H5File *f, H5DatasetFn fn, void *ctx) {
    if (!f || f->file <= 0) return err_set(ERR_ARG, "%s: h5io: the file is not open", fpath(f));
    if (!fn) return err_set(ERR_ARG, "%s: h5io: NULL walk callback", fpath(f));
    H5WalkCtx w = {f, fn, ctx, 0};
    int rc = 0;
    H5_TRY(H5Lvisit(f->file, H5_INDEX_NAME, H5_ITER_INC, walk_cb, &w), ERR_FORMAT, NULL,
           "walking the groups failed");
    rc = w.rc;
fail:
    if (rc) H5Eclear2(H5E_DEFAULT);
    return rc;
}

/* Read a dataset block by block (its chunks, or ~1 MiB slabs when it is contiguous) in its own
 * stored type, so every chunk goes through the pipeline and nothing is converted. */
static int read_blocks(const H5File *f, const char *name, hid_t dset, hid_t type, int nd, const hsize_t *dims) {
    int rc = 0;
    hid_t dcpl = -1, fspace = -1, mspace = -1;
    hsize_t block[H5IO_MAX_NDIM], start[H5IO_MAX_NDIM] = {0}, cnt[H5IO_MAX_NDIM];
    void *buf = NULL;
    size_t elem = H5Tget_size(type);
    H5_TRY(dcpl = H5Dget_create_plist(dset), ERR_FORMAT, name, "reading the creation properties");
    if (nd > 0 && H5Pget_layout(dcpl) == H5D_CHUNKED)
        H5_TRY(H5Pget_chunk(dcpl, nd, block), ERR_FORMAT, name, "reading the chunk shape");
    else chunk_shape(nd, dims, elem, block);
    uint64_t bytes = elem;
    for (int i = 0; i < nd; i++) bytes *= block[i] > 0 ? block[i] : 1;
    if (bytes > H5IO_MAX_VERIFY_BLOCK) {
        rc = err_set(ERR_UNSUPPORTED, "%s: dataset '%s' has %llu-byte chunks, more than verification reads at once",
                     fpath(f), name, (unsigned long long)bytes);
        goto fail;
    }
    if (!(buf = malloc((size_t)bytes))) {
        rc = err_set(ERR_NOMEM, "%s: dataset '%s': out of memory", fpath(f), name);
        goto fail;
    }
    if (nd == 0) {
        H5_TRY(H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), ERR_FORMAT, name, "read failed");
        goto fail;
    }
    H5_TRY(fspace = H5Dget_space(dset), ERR_FORMAT, name, "reading the dataspace");
    for (;;) {
        for (int i = 0; i < nd; i++) cnt[i] = dims[i] - start[i] < block[i] ? dims[i] - start[i] : block[i];
        H5_TRY(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, cnt, NULL), ERR_FORMAT, name,
               "selecting a chunk");
        H5_TRY(mspace = H5Screate_simple(nd, cnt, NULL), ERR_FORMAT, name, "creating a dataspace");
        if (H5Dread(dset, type, mspace, fspace, H5P_DEFAULT, buf) < 0) {
            char at[128], what[256];
            shape_str(at, sizeof(at), nd, start);
            snprintf(what, sizeof(what), "read of the chunk at %s failed (corrupt, truncated or bad checksum)", at);
            rc = h5_fail(ERR_FORMAT, f, name, what);
            goto fail;
        }
        H5Sclose(mspace);
        mspace = -1;
        if (!next_block(nd, dims, block, start)) break;
    }
fail:
    free(buf);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (dcpl >= 0) H5Pclose(dcpl);
    return rc;
}

/* H5DatasetFn for h5_verify_all: ctx is the H5File. */
static int verify_one(const char *name, int ndim, const int64_t *dims64, uint64_t stored, uint64_t raw, void *ctx) {
    (void)ndim;
    (void)dims64;
    (void)stored;
    H5File *f = ctx;
    hid_t dset = -1, type = -1;
    hsize_t dims[H5IO_MAX_NDIM] = {0};
    int rc, nd = 0, fletcher = 0;
    if ((rc = open_dataset(f, name, &dset)) != 0) return rc;
    if ((rc = dataset_shape(f, name, dset, &nd, dims)) != 0) goto fail;
    if ((rc = check_storage(f, name, dset, nd, dims, &fletcher)) != 0) goto fail;
    if (nd > 0 && !fletcher) {
        rc = err_set(ERR_FORMAT, "%s: dataset '%s' has no Fletcher-32 checksum", fpath(f), name);
        goto fail;
    }
    H5_TRY(type = H5Dget_type(dset), ERR_FORMAT, name, "reading the datatype");
    if (H5Tget_class(type) == H5T_VLEN || H5Tis_variable_str(type) > 0) {
        rc = err_set(ERR_UNSUPPORTED, "%s: dataset '%s' has a variable-length type", fpath(f), name);
        goto fail;
    }
    if (raw > 0) rc = read_blocks(f, name, dset, type, nd, dims);
fail:
    if (type >= 0) H5Tclose(type);
    if (dset >= 0) H5Dclose(dset);
    return rc;
}

/* ---- files ------------------------------------------------------------------------------- */

static int set_path(H5File *f, const char *path) {
    f->file = -1;
    f->path[0] = '\0';
    if (!path || !path[0]) return err_set(ERR_ARG, "h5io: empty file path");
    if (strlen(path) >= sizeof(f->path)) return err_set(ERR_ARG, "h5io: path longer than %zu bytes: %.64s...",
                                                       sizeof(f->path) - 1, path);
    snprintf(f->path, sizeof(f->path), "%s", path);
    return 0;
}

static int create_file(H5File *f, const char *path) {
    int rc = set_path(f, path);
    if (rc) return rc;
    f->level = H5IO_DEFAULT_LEVEL;
    if ((rc = h5zstd_register()) != 0) return rc;
    hid_t fapl = -1, fcpl = -1, file = -1;
    H5_TRY(fcpl = H5Pcreate(H5P_FILE_CREATE), ERR_IO, NULL, "creating properties");
    H5_TRY(H5Pset_obj_track_times(fcpl, 0), ERR_IO, NULL, "setting properties");
    H5_TRY(fapl = H5Pcreate(H5P_FILE_ACCESS), ERR_IO, NULL, "creating properties");
    H5_TRY(H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110), ERR_IO, NULL, "setting properties");
    H5_TRY(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG), ERR_IO, NULL, "setting properties");
    H5_TRY(file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl), ERR_IO, NULL, "cannot create the file");
    f->file = file;
fail:
    if (fcpl >= 0) H5Pclose(fcpl);
    if (fapl >= 0) H5Pclose(fapl);
    return rc;
}

static int open_file(H5File *f, const char *path) {
    int rc = set_path(f, path);
    if (rc) return rc;
    f->level = H5IO_DEFAULT_LEVEL;
    struct stat st;
    if (stat(path, &st) != 0)
        return err_set(errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return err_set(ERR_FORMAT, "%s: not a regular file", path);
    if ((rc = h5zstd_register()) != 0) return rc;
    htri_t is;
    hid_t fapl = -1, file = -1;
    H5_TRY(is = H5Fis_hdf5(path), ERR_IO, NULL, "cannot read the file");
    if (!is) return err_set(ERR_FORMAT, "%s: not an HDF5 file (no HDF5 signature)", path);
    H5_TRY(fapl = H5Pcreate(H5P_FILE_ACCESS), ERR_IO, NULL, "creating properties");
    H5_TRY(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG), ERR_IO, NULL, "setting properties");
    H5_TRY(file = H5Fopen(path, H5F_ACC_RDONLY, fapl), ERR_FORMAT, NULL,
           "cannot open the HDF5 file (truncated or corrupt)");
    f->file = file;
fail:
    if (fapl >= 0) H5Pclose(fapl);
    return rc;
}

/* ---- public API: each call runs with HDF5's error printing off ----------------------------- */

#define H5IO_QUIET(call)                                                                           \
    do {                                                                                           \
        H5Quiet q_ = quiet_begin();                                                                \
        int rc_ = (call);                                                                          \
        if (rc_ != 0) H5Eclear2(H5E_DEFAULT);                                                      \
        quiet_end(q_);                                                                             \
        return rc_;                                                                                \
    } while (0)

int h5_create(H5File *f, const char *path) { H5IO_QUIET(create_file(f, path)); }
int h5_open(H5File *f, const char *path) { H5IO_QUIET(open_file(f, path)); }

static int close_file(H5File *f) {
    if (!f || f->file <= 0) return 0;
    hid_t file = f->file;
    f->file = -1;
    int rc = 0;
    H5_TRY(H5Fclose(file), ERR_IO, NULL, "closing (flushing) the file failed");
fail:
    return rc;
}

int h5_close(H5File *f) { H5IO_QUIET(close_file(f)); }

int h5_write_f32(H5File *f, const char *name, const float *data, int ndim, const int64_t *dims) {
    H5IO_QUIET(write_dataset(f, name, H5IO_F32, data, ndim, dims));
}
int h5_write_i64(H5File *f, const char *name, const int64_t *data, int ndim, const int64_t *dims) {
    H5IO_QUIET(write_dataset(f, name, H5IO_I64, data, ndim, dims));
}
int h5_write_i32(H5File *f, const char *name, const int32_t *data, int ndim, const int64_t *dims) {
    H5IO_QUIET(write_dataset(f, name, H5IO_I32, data, ndim, dims));
}
int h5_write_bytes(H5File *f, const char *name, const void *data, size_t len) {
    int64_t n = (int64_t)len;
    H5IO_QUIET(write_dataset(f, name, H5IO_U8, data, 1, &n));
}

int h5_read_f32(H5File *f, const char *name, float *dst, int ndim, const int64_t *dims) {
    H5IO_QUIET(read_dataset(f, name, H5IO_F32, dst, ndim, dims));
}
int h5_read_i64(H5File *f, const char *name, int64_t *dst, int ndim, const int64_t *dims) {
    H5IO_QUIET(read_dataset(f, name, H5IO_I64, dst, ndim, dims));
}
int h5_read_i32(H5File *f, const char *name, int32_t *dst, int ndim, const int64_t *dims) {
    H5IO_QUIET(read_dataset(f, name, H5IO_I32, dst, ndim, dims));
}
int h5_read_bytes(H5File *f, const char *name, char **out, size_t *len) { H5IO_QUIET(read_bytes(f, name, out, len)); }

static int exists(H5File *f, const char *name) {
    int rc = check_args(f, name);
    if (rc) return rc;
    htri_t e;
    H5_TRY(e = path_exists(f->file, name), ERR_FORMAT, name, "looking it up");
    return e > 0;
fail:
    return rc;
}

/* 1 if present, 0 if not, ERR_* (negative) when the file is unusable. */
int h5_exists(H5File *f, const char *name) {
    H5Quiet q = quiet_begin();
    int rc = exists(f, name);
    if (rc < 0) H5Eclear2(H5E_DEFAULT);
    quiet_end(q);
    return rc;
}

static int shape(H5File *f, const char *name, int *ndim, int64_t *dims) {
    hsize_t hd[H5IO_MAX_NDIM] = {0};
    int nd = 0, rc = check_args(f, name);
    if (rc) return rc;
    if (!ndim || !dims) return err_set(ERR_ARG, "%s: dataset '%s': NULL output", fpath(f), name);
    hid_t dset = -1;
    if ((rc = open_dataset(f, name, &dset)) != 0) return rc;
    rc = dataset_shape(f, name, dset, &nd, hd);
    H5Dclose(dset);
    if (rc) return rc;
    *ndim = nd;
    for (int i = 0; i < nd; i++) dims[i] = (int64_t)hd[i];
    return 0;
}

int h5_shape(H5File *f, const char *name, int *ndim, int64_t *dims) { H5IO_QUIET(shape(f, name, ndim, dims)); }
int h5_walk(H5File *f, H5DatasetFn fn, void *ctx) { H5IO_QUIET(walk(f, fn, ctx)); }
int h5_verify_all(H5File *f) { H5IO_QUIET(walk(f, verify_one, f)); }
