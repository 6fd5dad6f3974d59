/* tests/model/test_golden.c: golden parity of the CPU model with Hugging Face transformers 5.17.
 * labels: golden
 *
 * Each directory tests/golden/<case>/ holds a tiny random model saved by transformers
 * (config.json + model.safetensors) and what transformers computed for it (golden.json: the
 * sequences, targets, ce, aux_loss, loss and parameter names; golden.safetensors: "logits.<b>"
 * (len_b, V) per sequence and "grad.<param>" per named parameter), all made by
 * tools/make_goldens.py (see tests/golden/README.md).
 *
 * Per case: model_load_hf on a CPU KernelCtx, one packed forward over the three sequences
 * (SeqPack, positions from 0), compare the logits of each sequence, ce = -mean(logp),
 * loss = ce + router_aux_loss_coef * aux_loss (MiniMax; qwen2 has no aux) with the golden values,
 * then model_backward with dlogp[n] = -1/N and daux = coef, and compare every named parameter's
 * gradient. Errors are relative in the 2-norm: ||ours - golden|| / ||golden||.
 * Tolerances: logits, ce, aux, loss 1e-5; each gradient tensor 1e-4.
 * Run with --verbose for a per-tensor error table. Golden root: $CISPO_SOURCE_DIR/tests/golden
 * (CTest sets it), else ./tests/golden.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "model/model_config.h"
#include "model/safetensors.h"

#define TOL_LOGITS 1e-5
#define TOL_LOSS 1e-5
#define TOL_GRAD 1e-4
#define PATH_LEN 4096

typedef struct {
    const char *name; /* directory under tests/golden */
    int verbose;
} GoldenCase;

/* What golden.json holds, tokens and targets packed in sequence order. */
typedef struct {
    json_t *root;
    int B, N;
    int start[16];      /* (B+1) packed offsets */
    int *tokens;        /* (N) */
    int *targets;       /* (N) */
    double ce, loss, aux; /* aux only when has_aux */
    int has_aux;
    const json_t *param_names; /* array of strings, owned by root */
} GoldenData;

typedef struct {
    double rel, max_abs;
} Diff;

static const char *golden_root(char *buf, size_t cap) {
    const char *src = getenv("CISPO_SOURCE_DIR");
    int n = snprintf(buf, cap, "%s/tests/golden", src && *src ? src : ".");
    CHECK(n > 0 && (size_t)n < cap, "golden root path too long");
    return buf;
}

static void case_path(char *buf, size_t cap, const char *name, const char *file) {
    char root[PATH_LEN];
    int n = file ? snprintf(buf, cap, "%s/%s/%s", golden_root(root, sizeof root), name, file)
                 : snprintf(buf, cap, "%s/%s", golden_root(root, sizeof root), name);
    CHECK(n > 0 && (size_t)n < cap, "golden path too long for case %s", name);
}

/* ||a - b|| / ||b|| (or ||a - b|| when b is all zero) and max |a - b| over n floats. */
static Diff diff_f32(const float *a, const float *b, int64_t n) {
    double num = 0.0, den = 0.0, mx = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
        if (!(fabs(d) <= mx)) mx = fabs(d); /* NaN sticks */
    }
    Diff r = {den > 0.0 ? sqrt(num) / sqrt(den) : sqrt(num), mx};
    return r;
}

static double rel_err(double ours, double ref) {
    double den = fabs(ref) > 0.0 ? fabs(ref) : 1.0;
    return fabs(ours - ref) / den;
}

/* An int array field of golden.json ("tokens"/"targets" rows) appended to dst at the pack offsets. */
static void read_rows(const json_t *root, const char *key, const GoldenData *g, int *dst) {
    const json_t *rows = json_object_get(root, key);
    assert_true(json_is_array(rows) && (int)json_array_size(rows) == g->B);
    for (int b = 0; b < g->B; b++) {
        const json_t *row = json_array_get(rows, (size_t)b);
        int len = g->start[b + 1] - g->start[b];
        assert_true(json_is_array(row) && (int)json_array_size(row) == len);
        for (int j = 0; j < len; j++) {
            const json_t *v = json_array_get(row, (size_t)j);
            assert_true(json_is_integer(v));
            dst[g->start[b] + j] = (int)json_integer_value(v);
        }
    }
}

static void golden_load(GoldenData *g, const char *name) {
    char path[PATH_LEN];
    json_error_t jerr;
    memset(g, 0, sizeof *g);
    case_path(path, sizeof path, name, "golden.json");
    g->root = json_load_file(path, 0, &jerr);
    if (!g->root) fail_msg("%s:%d: %s", path, jerr.line, jerr.text);
    const json_t *lengths = json_object_get(g->root, "lengths");
    assert_true(json_is_array(lengths));
    g->B = (int)json_array_size(lengths);
    assert_true(g->B > 0 && g->B < 16);
    for (int b = 0; b < g->B; b++) {
        const json_t *v = json_array_get(lengths, (size_t)b);
        assert_true(json_is_integer(v) && json_integer_value(v) > 0);
        g->start[b + 1] = g->start[b] + (int)json_integer_value(v);
    }
    g->N = g->start[g->B];
    g->tokens = calloc((size_t)g->N, sizeof(int));
    g->targets = calloc((size_t)g->N, sizeof(int));
    assert_non_null(g->tokens);
    assert_non_null(g->targets);
    read_rows(g->root, "tokens", g, g->tokens);
    read_rows(g->root, "targets", g, g->targets);
    assert_true(json_is_number(json_object_get(g->root, "ce")));
    assert_true(json_is_number(json_object_get(g->root, "loss")));
    g->ce = json_number_value(json_object_get(g->root, "ce"));
    g->loss = json_number_value(json_object_get(g->root, "loss"));
    const json_t *aux = json_object_get(g->root, "aux_loss");
    g->has_aux = json_is_number(aux);
    g->aux = g->has_aux ? json_number_value(aux) : 0.0;
    g->param_names = json_object_get(g->root, "param_names");
    assert_true(json_is_array(g->param_names) && json_array_size(g->param_names) > 0);
}

static void golden_free(GoldenData *g) {
    free(g->tokens);
    free(g->targets);
    json_decref(g->root);
    memset(g, 0, sizeof *g);
}

/* Read golden tensor `name` as float32 (malloc'd), checking it holds `numel` floats; NULL if absent. */
static float *golden_tensor(const StArchive *a, const char *name, int64_t numel) {
    const StTensor *t = st_find(a, name);
    if (!t) return NULL;
    if (st_numel(t) != numel) fail_msg("golden tensor %s has %lld floats, the model %lld", name,
                                       (long long)st_numel(t), (long long)numel);
    float *buf = malloc((size_t)numel * sizeof(float));
    assert_non_null(buf);
    int rc = st_read_f32(a, t, buf, numel);
    if (rc != 0) fail_msg("reading golden tensor %s: %s", name, err_msg());
    return buf;
}

/* Logits of each sequence against "logits.<b>" (len_b, V). */
static void check_logits(const GoldenData *g, const StArchive *a, const float *logits, int V, const char *name) {
    for (int b = 0; b < g->B; b++) {
        char tname[64];
        int len = g->start[b + 1] - g->start[b];
        snprintf(tname, sizeof tname, "logits.%d", b);
        const StTensor *t = st_find(a, tname);
        if (!t) fail_msg("%s: golden.safetensors has no %s", name, tname);
        assert_true(t->ndim == 2 && t->shape[0] == len && t->shape[1] == V);
        float *ref = golden_tensor(a, tname, (int64_t)len * V);
        Diff d = diff_f32(logits + (size_t)g->start[b] * (size_t)V, ref, (int64_t)len * V);
        free(ref);
        printf("  %s seq %d (T=%d): logits rel err %.3e, max abs diff %.3e\n", name, b, len, d.rel, d.max_abs);
        if (!(d.rel < TOL_LOGITS)) fail_msg("%s: logits of sequence %d rel err %.3e >= %.0e", name, b, d.rel, TOL_LOGITS);
    }
}

/* ce = -mean(logp), aux and loss = ce + coef * aux against golden.json. */
static void check_loss(const GoldenData *g, const Model *m, const float *logp, float coef, const char *name) {
    double sum = 0.0;
    for (int n = 0; n < g->N; n++) sum += logp[n];
    double ce = -sum / g->N;
    double loss = ce + (double)coef * (double)m->aux_loss;
    printf("  %s: ce %.8f (golden %.8f, rel %.2e)  aux %.8f (golden %s%.8f)  loss %.8f (golden %.8f, rel %.2e)\n",
           name, ce, g->ce, rel_err(ce, g->ce), (double)m->aux_loss, g->has_aux ? "" : "none, ", g->aux, loss,
           g->loss, rel_err(loss, g->loss));
    if (!(rel_err(ce, g->ce) < TOL_LOSS)) fail_msg("%s: ce %.8f vs golden %.8f", name, ce, g->ce);
    if (g->has_aux && !(rel_err(m->aux_loss, g->aux) < TOL_LOSS))
        fail_msg("%s: aux_loss %.8f vs golden %.8f", name, (double)m->aux_loss, g->aux);
    if (!(rel_err(loss, g->loss) < TOL_LOSS)) fail_msg("%s: loss %.8f vs golden %.8f", name, loss, g->loss);
}

/* Every named parameter's gradient against "grad.<name>"; prints the worst tensor. */
static void check_grads(const GoldenData *g, const StArchive *a, const Model *m, const char *name, int verbose) {
    double worst = -1.0;
    const char *worst_name = "";
    int n_bad = 0;
    if (verbose) printf("  %-58s %9s %10s %10s\n", "parameter", "numel", "rel err", "max abs");
    for (size_t i = 0; i < json_array_size(g->param_names); i++) {
        const char *pname = json_string_value(json_array_get(g->param_names, i));
        assert_non_null(pname);
        const float *grad = model_grad(m, pname);
        int idx = tensor_table_find(&m->grads, pname);
        if (!grad || idx < 0) fail_msg("%s: parameter %s (in golden.json) is missing from the model", name, pname);
        char tname[TENSOR_NAME_MAX + 8];
        snprintf(tname, sizeof tname, "grad.%s", pname);
        int64_t numel = m->grads.t[idx].numel;
        float *ref = golden_tensor(a, tname, numel);
        if (!ref) fail_msg("%s: golden.safetensors has no %s", name, tname);
        Diff d = diff_f32(grad, ref, numel);
        free(ref);
        if (verbose) printf("  %-58s %9lld %10.3e %10.3e%s\n", pname, (long long)numel, d.rel, d.max_abs,
                            d.rel < TOL_GRAD ? "" : "  FAIL");
        if (!(d.rel < TOL_GRAD)) n_bad++;
        if (!(d.rel <= worst)) {
            worst = d.rel;
            worst_name = pname;
        }
    }
    printf("  %s: worst gradient %s, rel err %.3e (%d of %zu tensors over %.0e)\n", name, worst_name, worst, n_bad,
           json_array_size(g->param_names), TOL_GRAD);
    if (n_bad) fail_msg("%s: %d gradient tensors over tolerance; worst %s rel err %.3e", name, n_bad, worst_name, worst);
}

static void test_golden_case(void **state) {
    const GoldenCase *gc = *state;
    char dir[PATH_LEN], path[PATH_LEN];
    GoldenData g;
    golden_load(&g, gc->name);
    case_path(dir, sizeof dir, gc->name, NULL);

    ModelConfig cfg;
    case_path(path, sizeof path, gc->name, "config.json");
    if (model_config_load_hf(&cfg, path) != 0) fail_msg("%s: %s", path, err_msg());
    const KernelOps *ops = kernels_cpu();
    KernelCtx ctx;
    kernel_ctx_init(&ctx, ops, model_ws_bytes(&cfg, ops, g.N));
    Model m;
    memset(&m, 0, sizeof m);
    if (model_load_hf(&m, dir, &ctx, g.N, g.B) != 0) fail_msg("model_load_hf(%s): %s", dir, err_msg());
    const int V = m.cfg.vocab_size;
    float coef = m.cfg.family == MODEL_MINIMAX ? m.cfg.router_aux_loss_coef : 0.0f;
    const json_t *jcoef = json_object_get(g.root, "router_aux_loss_coef");
    if (json_is_number(jcoef)) assert_true(fabs(json_number_value(jcoef) - coef) < 1e-7);

    StArchive arch;
    memset(&arch, 0, sizeof arch);
    case_path(path, sizeof path, gc->name, "golden.safetensors");
    if (st_open(&arch, path) != 0) fail_msg("%s: %s", path, err_msg());

    float *logp = calloc((size_t)g.N, sizeof(float));
    float *logits = calloc((size_t)g.N * (size_t)V, sizeof(float));
    float *dlogp = calloc((size_t)g.N, sizeof(float));
    assert_non_null(logp);
    assert_non_null(logits);
    assert_non_null(dlogp);
    SeqPack pack = {.n_seq = g.B, .start = g.start, .pos0 = NULL};
    model_forward(&m, g.tokens, g.targets, &pack, logp, logits);
    check_logits(&g, &arch, logits, V, gc->name);
    check_loss(&g, &m, logp, coef, gc->name);

    for (int n = 0; n < g.N; n++) dlogp[n] = -1.0f / (float)g.N;
    model_zero_grad(&m);
    model_backward(&m, dlogp, coef);
    check_grads(&g, &arch, &m, gc->name, gc->verbose);

    free(dlogp);
    free(logits);
    free(logp);
    st_close(&arch);
    model_free(&m);
    kernel_ctx_free(&ctx);
    golden_free(&g);
}

/* The case list below must name every directory under tests/golden that holds a golden.json,
 * so that a new golden set is never silently skipped, and each listed case must exist. */
static void test_golden_dirs_listed(void **state) {
    const GoldenCase *cases = *state;
    char root[PATH_LEN], path[PATH_LEN];
    DIR *d = opendir(golden_root(root, sizeof root));
    if (!d) fail_msg("cannot open %s (set CISPO_SOURCE_DIR)", root);
    int n_found = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        struct stat st;
        if (e->d_name[0] == '.') continue;
        case_path(path, sizeof path, e->d_name, "golden.json");
        if (stat(path, &st) != 0) continue;
        int known = 0;
        for (int i = 0; cases[i].name; i++) known |= strcmp(cases[i].name, e->d_name) == 0;
        if (!known) {
            char unknown[256];
            snprintf(unknown, sizeof unknown, "%s", e->d_name);
            closedir(d);
            fail_msg("%s/%s has a golden.json but no case in tests/model/test_golden.c", root, unknown);
        }
        n_found++;
    }
    closedir(d);
    int n_cases = 0;
    while (cases[n_cases].name) n_cases++;
    if (n_found != n_cases) fail_msg("found %d golden dirs under %s, expected %d", n_found, root, n_cases);
}

int main(int argc, char **argv) {
    int verbose = 0;
    for (int i = 1; i < argc; i++) verbose |= strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0;
    GoldenCase cases[] = {
        {"minimax_moe", verbose},
        {"minimax_ab_tied", verbose},
        {"qwen2_bias", verbose},
        {NULL, 0},
    };
    const struct CMUnitTest tests[] = {
        {"golden_dirs_listed", test_golden_dirs_listed, NULL, NULL, cases},
        {"golden_minimax_moe", test_golden_case, NULL, NULL, &cases[0]},
        {"golden_minimax_ab_tied", test_golden_case, NULL, NULL, &cases[1]},
        {"golden_qwen2_bias", test_golden_case, NULL, NULL, &cases[2]},
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
