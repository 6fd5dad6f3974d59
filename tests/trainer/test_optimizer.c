/* tests/trainer/test_optimizer.c: AdamW over a tiny Qwen2 model on the CPU backend, against
 * updates worked out by hand with the M1 defaults (beta1 0.9, beta2 0.95, eps 1e-15):
 *  - step 1: m = 0.1 g, v = 0.05 g^2, mhat = g, vhat = g^2, so p -= lr (sign(g) + wd p);
 *  - step 2 with g2 = 2 g: m = 0.29 g, v = 0.2475 g^2, bias corrections 0.19 and 0.0975, so
 *    p -= lr ((0.29/0.19) / sqrt(0.2475/0.0975) sign(g) + wd p);
 *  - weight decay alone (g = 0): p *= 1 - lr wd, on 1-D tensors too unless skip_decay_1d;
 *  - clipping: constant gradients 0.5 have norm 0.5 sqrt(n); after the step their norm is grad_clip;
 *  - warm-up: lr (step+1)/warmup_steps, with a constant gradient (Adam's update then is sign(g));
 *  - a NaN or Inf gradient skips the step with parameters and moments bit-identical;
 *  - config errors name the field.
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tests/model/model_fixtures.h"
#include "trainer/optimizer.h"

typedef struct {
    KernelCtx ctx;
    Model m;
    float *p0; /* (n_params) copy of the initial parameters, tensor by tensor */
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    ModelConfig c = fixture_qwen2();
    if (fixture_model(&f->m, &f->ctx, &c, 8, 2, 11, 0.05f)) return -1;
    f->p0 = malloc(f->m.n_params * sizeof(float));
    size_t k = 0;
    for (int i = 0; i < f->m.params.n; i++) {
        memcpy(f->p0 + k, f->m.params.t[i].data, (size_t)f->m.params.t[i].numel * sizeof(float));
        k += (size_t)f->m.params.t[i].numel;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fx *f = *state;
    model_free(&f->m);
    kernel_ctx_free(&f->ctx);
    free(f->p0);
    free(f);
    return 0;
}

/* g(i, j): a pattern with zeros and both signs, |g| from 1e-3 to 3e-3 */
static float grad_value(int i, int64_t j) { return 1e-3f * (float)((j + i) % 7 - 3); }

static void fill_grads(Model *m, float scale) {
    for (int i = 0; i < m->grads.n; i++) {
        float *g = m->grads.t[i].data;
        for (int64_t j = 0; j < m->grads.t[i].numel; j++) g[j] = scale * grad_value(i, j);
    }
}

static double sgn(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }

static void near(double got, double want, double tol, const char *what, int i, int64_t j) {
    if (fabs(got - want) > tol * (1.0 + fabs(want))) {
        print_error("%s tensor %d elem %lld: got %.10g, expected %.10g\n", what, i, (long long)j, got, want);
        fail();
    }
}

static OptimConfig m1_config(double lr, double wd) {
    OptimConfig c;
    optimizer_config_defaults(&c);
    assert_true(c.beta1 == 0.9 && c.beta2 == 0.95 && c.eps == 1e-15 && c.skip_decay_1d == 0);
    c.lr = lr;
    c.weight_decay = wd;
    c.grad_clip = 0.0;
    return c;
}

/* two steps against the hand-worked AdamW; moments; the returned norm */
static void test_adamw_two_steps(void **state) {
    Fx *f = *state;
    Model *m = &f->m;
    Optimizer o;
    OptimConfig c = m1_config(1e-2, 0.1);
    assert_int_equal(optimizer_init(&o, m, &c), 0);
    fill_grads(m, 1.0f);
    double ss = 0.0;
    for (int i = 0; i < m->grads.n; i++)
        for (int64_t j = 0; j < m->grads.t[i].numel; j++) ss += (double)grad_value(i, j) * grad_value(i, j);
    near(optimizer_step(&o), sqrt(ss), 1e-9, "norm", 0, 0);
    assert_int_equal(o.step, 1);
    float *p1 = malloc(m->n_params * sizeof(float));
    size_t k = 0;
    for (int i = 0; i < m->params.n; i++) {
        const TensorSpec *t = &m->params.t[i];
        size_t off = (size_t)((char *)t->data - (char *)m->param_mem) / sizeof(float);
        for (int64_t j = 0; j < t->numel; j++, k++) {
            double p0 = f->p0[k], g = grad_value(i, j);
            near(((float *)t->data)[j], p0 - 1e-2 * (sgn(g) + 0.1 * p0), 1e-6, "step 1 param", i, j);
            near(o.mom1[off + j], 0.1 * g, 1e-6, "mom1", i, j);
            near(o.mom2[off + j], 0.05 * g * g, 1e-6, "mom2", i, j);
            p1[k] = ((float *)t->data)[j];
        }
    }
    fill_grads(m, 2.0f);
    optimizer_step(&o);
    double u = (0.29 / 0.19) / sqrt(0.2475 / 0.0975); /* 0.95798... */
    k = 0;
    for (int i = 0; i < m->params.n; i++)
        for (int64_t j = 0; j < m->params.t[i].numel; j++, k++)
            near(((float *)m->params.t[i].data)[j], p1[k] - 1e-2 * (u * sgn(grad_value(i, j)) + 0.1 * p1[k]), 1e-6,
                 "step 2 param", i, j);
    free(p1);
    optimizer_free(&o);
    optimizer_free(&o); /* idempotent */
}

/* g = 0: only the decoupled decay acts, p *= 1 - lr wd; skip_decay_1d spares 1-D tensors */
static void run_decay(Fx *f, int skip_1d) {
    Model *m = &f->m;
    Optimizer o;
    OptimConfig c = m1_config(0.5, 0.2);
    c.skip_decay_1d = skip_1d;
    assert_int_equal(optimizer_init(&o, m, &c), 0);
    model_zero_grad(m);
    assert_true(optimizer_step(&o) == 0.0);
    size_t k = 0;
    int n1 = 0;
    for (int i = 0; i < m->params.n; i++) {
        const TensorSpec *t = &m->params.t[i];
        int spared = t->ndim == 1 && skip_1d;
        n1 += t->ndim == 1;
        for (int64_t j = 0; j < t->numel; j++, k++)
            near(((float *)t->data)[j], spared ? f->p0[k] : f->p0[k] * 0.9, 1e-7, "decay", i, j);
    }
    assert_true(n1 > 0); /* the fixture has norms and biases */
    optimizer_free(&o);
}

static void test_weight_decay(void **state) { run_decay(*state, 0); }
static void test_weight_decay_not_1d(void **state) { run_decay(*state, 1); }

static double grads_sumsq(const Model *m) {
    double s = 0.0;
    for (int i = 0; i < m->grads.n; i++) {
        const float *g = m->grads.t[i].data;
        for (int64_t j = 0; j < m->grads.t[i].numel; j++) s += (double)g[j] * g[j];
    }
    return s;
}

static void test_clipping(void **state) {
    Fx *f = *state;
    Model *m = &f->m;
    Optimizer o;
    OptimConfig c = m1_config(1e-3, 0.0);
    c.grad_clip = 1.0;
    assert_int_equal(optimizer_init(&o, m, &c), 0);
    for (int i = 0; i < m->grads.n; i++)
        for (int64_t j = 0; j < m->grads.t[i].numel; j++) ((float *)m->grads.t[i].data)[j] = 0.5f;
    double want = 0.5 * sqrt((double)m->n_params);
    assert_true(want > 1.0);
    near(optimizer_step(&o), want, 1e-9, "norm before", 0, 0);
    near(sqrt(grads_sumsq(m)), 1.0, 1e-5, "norm after", 0, 0);
    near(((float *)m->grads.t[0].data)[0], 0.5 / want, 1e-6, "scaled grad", 0, 0);
    /* a threshold above the norm leaves the gradients alone */
    o.cfg.grad_clip = 2.0;
    float g0 = ((float *)m->grads.t[0].data)[0];
    near(optimizer_step(&o), 1.0, 1e-5, "norm (no clip)", 0, 0);
    assert_true(((float *)m->grads.t[0].data)[0] == g0);
    optimizer_free(&o);
}

static void test_warmup(void **state) {
    Fx *f = *state;
    Model *m = &f->m;
    Optimizer o;
    OptimConfig c = m1_config(1e-3, 0.0);
    c.warmup_steps = 4;
    assert_int_equal(optimizer_init(&o, m, &c), 0);
    const double lr[6] = {2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3};
    double cum[6] = {0}; /* sum of the lrs applied so far */
    fill_grads(m, 1.0f);
    for (int s = 0; s < 6; s++) {
        near(optimizer_lr(&o), lr[s], 1e-12, "warm-up lr", s, 0);
        optimizer_step(&o);
        cum[s] = (s ? cum[s - 1] : 0.0) + lr[s];
    }
    /* a constant gradient makes every Adam update sign(g): p = p0 - sum(lr) sign(g) */
    size_t k = 0;
    for (int i = 0; i < m->params.n; i++)
        for (int64_t j = 0; j < m->params.t[i].numel; j++, k++)
            near(((float *)m->params.t[i].data)[j], f->p0[k] - cum[5] * sgn(grad_value(i, j)), 1e-6, "warm-up param",
                 i, j);
    o.cfg.warmup_steps = 0;
    assert_true(optimizer_lr(&o) == 1e-3);
    optimizer_free(&o);
}

/* NaN or Inf in one gradient: skipped, counted, nothing written, warm-up not advanced */
static void test_nonfinite_skip(void **state) {
    Fx *f = *state;
    Model *m = &f->m;
    Optimizer o;
    OptimConfig c = m1_config(1e-3, 0.1);
    c.warmup_steps = 10;
    c.grad_clip = 1e-4; /* would scale the gradients if the step went on */
    assert_int_equal(optimizer_init(&o, m, &c), 0);
    fill_grads(m, 1.0f);
    optimizer_step(&o);
    size_t pb = m->params.total_bytes;
    char *snap = malloc(3 * pb);
    memcpy(snap, m->param_mem, pb);
    memcpy(snap + pb, o.mem, 2 * pb);
    double lr = optimizer_lr(&o);
    float bad[2] = {NAN, INFINITY};
    for (int r = 0; r < 2; r++) {
        fill_grads(m, 1.0f);
        float *g = m->grads.t[m->grads.n / 2].data;
        g[1] = bad[r];
        float g0 = g[0];
        double norm = optimizer_step(&o);
        assert_false(isfinite(norm));
        assert_int_equal(o.skipped, r + 1);
        assert_int_equal(o.step, 1);
        assert_true(optimizer_lr(&o) == lr);
        assert_memory_equal(snap, m->param_mem, pb);
        assert_memory_equal(snap + pb, o.mem, 2 * pb);
        assert_true(g[0] == g0); /* not clipped either */
    }
    fill_grads(m, 1.0f);
    assert_true(isfinite(optimizer_step(&o)));
    assert_int_equal(o.step, 2);
    assert_int_equal(o.skipped, 2);
    free(snap);
    optimizer_free(&o);
}

static void test_config_errors(void **state) {
    Fx *f = *state;
    Optimizer o;
    OptimConfig c = m1_config(1e-3, 0.0);
    c.beta2 = 1.0;
    assert_int_equal(optimizer_init(&o, &f->m, &c), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "optim.beta2=1"));
    assert_null(o.mem);
    optimizer_free(&o);
    c = m1_config(-1.0, 0.0);
    assert_int_equal(optimizer_init(&o, &f->m, &c), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "optim.lr"));
    c = m1_config(1e-3, 0.0);
    c.warmup_steps = -2;
    assert_int_equal(optimizer_init(&o, &f->m, &c), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "optim.warmup_steps=-2"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_adamw_two_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weight_decay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weight_decay_not_1d, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clipping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warmup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonfinite_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
