/* core/tensor.h: named tensor tables (DESIGN.md §6, "one table describes each group of tensors").
 *
 * A TensorTable lists (name, pointer, shape, dtype, memory space) for a group of tensors (weights,
 * gradients, optimizer moments, activations, caches). The same table drives allocation (one
 * contiguous block, each tensor aligned to 64 bytes), checkpoint save/load, memory reports and
 * tests that compare tensors by name. The table owns its names; the block is allocated by the
 * caller's backend (tensor_table_layout computes offsets, the caller binds a base pointer).
 */
#ifndef CISPO_CORE_TENSOR_H
#define CISPO_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAX_DIMS 4
#define TENSOR_NAME_MAX 128

typedef enum { DT_F32 = 0, DT_I32 = 1, DT_BF16 = 2 } DType;
typedef enum { MEM_HOST = 0, MEM_DEVICE = 1 } MemSpace;

typedef struct {
    char name[TENSOR_NAME_MAX];
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t numel;
    DType dtype;
    MemSpace space;
    size_t offset_bytes; /* inside the table's block, set by tensor_table_layout */
    void *data;          /* base + offset, set by tensor_table_bind */
} TensorSpec;

typedef struct {
    int n, cap;
    TensorSpec *t;
    size_t total_bytes; /* set by tensor_table_layout */
} TensorTable;

void tensor_table_init(TensorTable *tt);
void tensor_table_free(TensorTable *tt); /* frees the table, not the bound block; idempotent */
/* Append a tensor; returns its index. ndim <= 4; dims given as int64. */
int tensor_table_add(TensorTable *tt, const char *name, DType dtype, int ndim, const int64_t *shape);
/* Compute offsets (64-byte aligned) and total_bytes. */
size_t tensor_table_layout(TensorTable *tt);
/* Set every data pointer from a block of at least total_bytes. */
void tensor_table_bind(TensorTable *tt, void *base, MemSpace space);
/* Index of `name`, or -1. */
int tensor_table_find(const TensorTable *tt, const char *name);
size_t dtype_size(DType d);

#endif
