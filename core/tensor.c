/* core/tensor.c: named tensor tables; see tensor.h. */
#include "core/tensor.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

size_t dtype_size(DType d) { return d == DT_BF16 ? 2 : 4; }

void tensor_table_init(TensorTable *tt) { memset(tt, 0, sizeof(*tt)); }

void tensor_table_free(TensorTable *tt) {
    free(tt->t);
    memset(tt, 0, sizeof(*tt));
}

int tensor_table_add(TensorTable *tt, const char *name, DType dtype, int ndim, const int64_t *shape) {
    CHECK(ndim >= 0 && ndim <= TENSOR_MAX_DIMS, "tensor %s: ndim %d", name, ndim);
    CHECK(strlen(name) < TENSOR_NAME_MAX, "tensor name too long: %s", name);
    CHECK(tensor_table_find(tt, name) < 0, "duplicate tensor name %s", name);
    if (tt->n == tt->cap) {
        tt->cap = tt->cap ? 2 * tt->cap : 64;
        tt->t = realloc(tt->t, (size_t)tt->cap * sizeof(TensorSpec));
        CHECK(tt->t != NULL, "out of memory growing a tensor table to %d entries", tt->cap);
    }
    TensorSpec *s = &tt->t[tt->n];
    memset(s, 0, sizeof(*s));
    strcpy(s->name, name);
    s->ndim = ndim;
    s->dtype = dtype;
    s->numel = 1;
    for (int i = 0; i < ndim; i++) {
        CHECK(shape[i] > 0, "tensor %s: dim %d is %lld", name, i, (long long)shape[i]);
        s->shape[i] = shape[i];
        s->numel *= shape[i];
    }
    return tt->n++;
}

size_t tensor_table_layout(TensorTable *tt) {
    size_t off = 0;
    for (int i = 0; i < tt->n; i++) {
        off = (off + 63) & ~(size_t)63;
        tt->t[i].offset_bytes = off;
        off += (size_t)tt->t[i].numel * dtype_size(tt->t[i].dtype);
    }
    tt->total_bytes = (off + 63) & ~(size_t)63;
    return tt->total_bytes;
}

void tensor_table_bind(TensorTable *tt, void *base, MemSpace space) {
    for (int i = 0; i < tt->n; i++) {
        tt->t[i].data = (char *)base + tt->t[i].offset_bytes;
        tt->t[i].space = space;
    }
}

int tensor_table_find(const TensorTable *tt, const char *name) {
    for (int i = 0; i < tt->n; i++)
        if (strcmp(tt->t[i].name, name) == 0) return i;
    return -1;
}
