/* model/model_hf.c: loading and saving Hugging Face model directories (config.json +
 * safetensors, single or sharded) by the parameter table's HF names.
 *
 * MoE experts: transformers 5.x holds them fused (mlp.experts.gate_up_proj (E,2F,C),
 * mlp.experts.down_proj (E,C,F)); original MiniMax checkpoints store one tensor per expert
 * (block_sparse_moe.experts.{j}.w1/w3 (F,C), w2 (C,F), block_sparse_moe.gate.weight). Both load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "model/model.h"

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < ndim && o < cap; i++) o += snprintf(buf + o, cap - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* Read tensor `name` into dst (n floats) after checking its shape is exactly (ndim, shape). */
static int read_exact(const StArchive *a, const char *dir, const char *name, int ndim, const int64_t *shape, float *dst) {
    const StTensor *t = st_find(a, name);
    if (!t) return err_set(ERR_NOTFOUND, "%s: missing tensor '%s'", dir, name);
    int same = t->ndim == ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        n *= shape[i];
        if (same && t->shape[i] != shape[i]) same = 0;
    }
    if (!same) {
        char want[128], got[128];
        shape_str(want, sizeof want, ndim, shape);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return err_set(ERR_SHAPE, "%s: tensor '%s' has shape %s, the config implies %s\n"
                       "HINT: does config.json match the weights?", dir, name, got, want);
    }
    return st_read_f32(a, t, dst, n);
}

/* Fill a fused expert tensor from the per-expert layout. `which` 0 = gate_up (E,2F,C), 1 = down (E,C,F). */
static int read_split_experts(const StArchive *a, const char *dir, int layer, const ModelConfig *c, int which,
                              float *dst) {
    const int E = c->num_local_experts, F = c->intermediate_size, C = c->hidden_size;
    char nm[256];
    for (int j = 0; j < E; j++) {
        if (which == 0) {
            int64_t sh[2] = {F, C};
            float *base = dst + (size_t)j * 2 * F * C;
            snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w1.weight", layer, j);
            int rc = read_exact(a, dir, nm, 2, sh, base);
            if (rc) return rc;
            snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w3.weight", layer, j);
            if ((rc = read_exact(a, dir, nm, 2, sh, base + (size_t)F * C))) return rc;
        } else {
            int64_t sh[2] = {C, F};
            snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w2.weight", layer, j);
            int rc = read_exact(a, dir, nm, 2, sh, dst + (size_t)j * C * F);
            if (rc) return rc;
        }
    }
    return 0;
}

static int load_one(const StArchive *a, const char *dir, const Model *m, const TensorSpec *t, float *dst) {
    if (st_find(a, t->name)) return read_exact(a, dir, t->name, t->ndim, t->shape, dst);
    int layer;
    char rest[128];
    if (sscanf(t->name, "model.layers.%d.%127s", &layer, rest) == 2) {
        if (strcmp(rest, "mlp.experts.gate_up_proj") == 0) return read_split_experts(a, dir, layer, &m->cfg, 0, dst);
        if (strcmp(rest, "mlp.experts.down_proj") == 0) return read_split_experts(a, dir, layer, &m->cfg, 1, dst);
        if (strcmp(rest, "mlp.gate.weight") == 0) {
            char nm[256];
            snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.gate.weight", layer);
            return read_exact(a, dir, nm, t->ndim, t->shape, dst);
        }
    }
    return err_set(ERR_NOTFOUND, "%s: missing tensor '%s' (shape of %d dims)", dir, t->name, t->ndim);
}

int model_load_hf(Model *m, const char *dir, KernelCtx *ctx, int max_tokens, int max_seqs) {
    char path[4096];
    ModelConfig cfg;
    memset(m, 0, sizeof(*m));
    int rc = fs_join(path, sizeof path, dir, "config.json");
    if (rc) return rc;
    if ((rc = model_config_load_hf(&cfg, path))) return rc;
    if ((rc = model_init(m, &cfg, ctx, max_tokens, max_seqs))) return rc;
    StArchive a;
    if ((rc = st_open(&a, dir))) {
        model_free(m);
        return rc;
    }
    size_t maxn = 0;
    for (int i = 0; i < m->params.n; i++)
        if ((size_t)m->params.t[i].numel > maxn) maxn = m->params.t[i].numel;
    float *buf = xmalloc(maxn * sizeof(float));
    for (int i = 0; i < m->params.n && rc == 0; i++) {
        rc = load_one(&a, dir, m, &m->params.t[i], buf);
        if (rc == 0) ctx->ops->copy_h2d(ctx, m->params.t[i].data, buf, (size_t)m->params.t[i].numel * sizeof(float));
    }
    if (rc == 0 && a.n > m->params.n)
        log_debug("%s: %d tensors in the files, %d parameters in the model", dir, a.n, m->params.n);
    free(buf);
    st_close(&a);
    if (rc) model_free(m);
    return rc;
}

static void st_set(StWriteTensor *w, char **name_slot, const char *name, const float *data, int64_t d0, int64_t d1) {
    *name_slot = xmalloc(strlen(name) + 1);
    strcpy(*name_slot, name);
    w->name = *name_slot;
    w->data = data;
    w->ndim = 2;
    w->shape[0] = d0;
    w->shape[1] = d1;
}

/* The tensors of t[0..n) with the fused MoE tensors split into the original per-expert names
 * (views into the same host data: w1 = gate_up[j] rows [0,F), w3 = rows [F,2F), w2 = down[j]).
 * Every entry owns its name through *names (malloc'd, one per entry). */
static StWriteTensor *split_experts(const ModelConfig *c, const StWriteTensor *t, int n, int *n_out, char ***names) {
    const int E = c->num_local_experts, F = c->intermediate_size, C = c->hidden_size;
    const int cap = n + c->num_hidden_layers * 3 * E;
    StWriteTensor *o = xcalloc((size_t)cap, sizeof(StWriteTensor));
    *names = xcalloc((size_t)cap, sizeof(char *));
    int k = 0, layer;
    char rest[128], nm[256];
    for (int i = 0; i < n; i++) {
        int fused = sscanf(t[i].name, "model.layers.%d.%127s", &layer, rest) == 2;
        if (fused && strcmp(rest, "mlp.experts.gate_up_proj") == 0) {
            for (int j = 0; j < E; j++) {
                const float *base = t[i].data + (size_t)j * 2 * F * C;
                snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w1.weight", layer, j);
                st_set(&o[k], &(*names)[k], nm, base, F, C), k++;
                snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w3.weight", layer, j);
                st_set(&o[k], &(*names)[k], nm, base + (size_t)F * C, F, C), k++;
            }
        } else if (fused && strcmp(rest, "mlp.experts.down_proj") == 0) {
            for (int j = 0; j < E; j++) {
                snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w2.weight", layer, j);
                st_set(&o[k], &(*names)[k], nm, t[i].data + (size_t)j * C * F, C, F), k++;
            }
        } else if (fused && strcmp(rest, "mlp.gate.weight") == 0) {
            snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.gate.weight", layer);
            st_set(&o[k], &(*names)[k], nm, t[i].data, t[i].shape[0], t[i].shape[1]), k++;
        } else {
            o[k] = t[i];
            (*names)[k] = xmalloc(strlen(t[i].name) + 1);
            strcpy((*names)[k], t[i].name);
            o[k].name = (*names)[k];
            k++;
        }
    }
    *n_out = k;
    return o;
}

int model_save_hf(const Model *m, const char *dir, StDtype dtype) {
    char path[4096];
    int rc = fs_mkdir_p(dir);
    if (rc) return rc;
    if ((rc = fs_join(path, sizeof path, dir, "config.json"))) return rc;
    if ((rc = model_config_save_hf(&m->cfg, path))) return rc;
    const int n = m->params.n;
    StWriteTensor *t = xcalloc((size_t)n, sizeof(StWriteTensor));
    float *host = xmalloc((size_t)m->n_params * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const TensorSpec *s = &m->params.t[i];
        m->ctx->ops->copy_d2h(m->ctx, host + off, s->data, (size_t)s->numel * sizeof(float));
        t[i].name = s->name;
        t[i].data = host + off;
        t[i].ndim = s->ndim;
        for (int d = 0; d < s->ndim; d++) t[i].shape[d] = s->shape[d];
        off += s->numel;
    }
    if (m->cfg.format == MODEL_FORMAT_MINIMAX_ORIGINAL) {
        char **names = NULL;
        int n_split = 0;
        StWriteTensor *split = split_experts(&m->cfg, t, n, &n_split, &names);
        rc = st_write_dir(dir, split, n_split, dtype, 0);
        for (int i = 0; i < n_split; i++) free(names[i]);
        free(names);
        free(split);
    } else {
        rc = st_write_dir(dir, t, n, dtype, 0);
    }
    free(host);
    free(t);
    return rc;
}
