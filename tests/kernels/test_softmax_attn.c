/* tests/kernels/test_softmax_attn.c: the CPU causal softmax attention op (kernels/cpu/softmax_attn.c).
 * labels: unit grad
 *
 * - forward and lse against a naive float64 evaluation, grouped-query heads (NH=4, KVH=2), packed
 *   lengths 1, 5, 33, 70 (the last crosses the op's 64-row tile);
 * - backward against central differences of loss = sum(R * out), the loss evaluated by the float64
 *   naive forward (no float32 noise in the differences), for q, k and v; and accumulation;
 * - decode with a NaN-padded KV cache of length p+1 reproduces forward row p, for every row.
 * The ops are called directly with a hand-built KernelCtx (ops = NULL, malloc'd workspace).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "tests/kernels/gradcheck.h"

#define MAX_SEQ 8
#define SA_FD_TOL 1e-3 /* float32 analytic vs float64 central differences */

/* A packed batch: q (N, NH, HS), k and v (N, KVH, HS). */
typedef struct {
    int B, N, NH, KVH, HS, maxT;
    int start[MAX_SEQ + 1];
    SeqPack pack;
    float scale;
    float *q, *k, *v;
} SaCase;

static void case_init(SaCase *c, const int *lens, int B, int NH, int KVH, int HS, uint64_t seed) {
    memset(c, 0, sizeof(*c));
    c->B = B, c->NH = NH, c->KVH = KVH, c->HS = HS;
    for (int b = 0; b < B; b++) {
        c->start[b + 1] = c->start[b] + lens[b];
        c->maxT = lens[b] > c->maxT ? lens[b] : c->maxT;
    }
    c->N = c->start[B];
    c->pack = (SeqPack){B, c->start, NULL};
    c->scale = 1.0f / sqrtf((float)HS);
    size_t nq = (size_t)c->N * NH * HS, nk = (size_t)c->N * KVH * HS;
    c->q = malloc(nq * sizeof(float));
    c->k = malloc(nk * sizeof(float));
    c->v = malloc(nk * sizeof(float));
    gc_fill_normal(c->q, nq, seed, 1, 0.0f, 1.0f);
    gc_fill_normal(c->k, nk, seed, 2, 0.0f, 1.0f);
    gc_fill_normal(c->v, nk, seed, 3, 0.0f, 1.0f);
}

static void case_free(SaCase *c) {
    free(c->q);
    free(c->k);
    free(c->v);
}

static void run_forward(const SaCase *c, float *out, float *lse) {
    KernelCtx ctx = {NULL, NULL, 0, NULL, 0, 0};
    ctx.ws_bytes = attention_ws_bytes_cpu(c->maxT, c->NH, c->HS);
    ctx.ws = malloc(ctx.ws_bytes);
    attention_forward_cpu(&ctx, out, lse, c->q, c->k, c->v, &c->pack, c->NH, c->KVH, c->HS, c->scale);
    free(ctx.ws);
}

/* Naive float64 forward: out (N, NH, HS), lse (N, NH). */
static void naive_forward(const SaCase *c, double *out, double *lse) {
    int NH = c->NH, KVH = c->KVH, HS = c->HS;
    double *w = malloc((size_t)c->maxT * sizeof(double));
    for (int b = 0; b < c->B; b++) {
        int t0 = c->start[b], T = c->start[b + 1] - t0;
        for (int h = 0; h < NH; h++) {
            int g = h / (NH / KVH);
            for (int i = 0; i < T; i++) {
                const float *q = c->q + ((size_t)(t0 + i) * NH + h) * HS;
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j <= i; j++) {
                    const float *k = c->k + ((size_t)(t0 + j) * KVH + g) * HS;
                    double s = 0.0;
                    for (int d = 0; d < HS; d++) s += (double)q[d] * k[d];
                    w[j] = s * c->scale;
                    mx = fmax(mx, w[j]);
                }
                for (int j = 0; j <= i; j++) sum += exp(w[j] - mx);
                double *o = out + ((size_t)(t0 + i) * NH + h) * HS;
                for (int e = 0; e < HS; e++) o[e] = 0.0;
                for (int j = 0; j <= i; j++) {
                    const float *v = c->v + ((size_t)(t0 + j) * KVH + g) * HS;
                    for (int e = 0; e < HS; e++) o[e] += exp(w[j] - mx) / sum * v[e];
                }
                lse[(size_t)(t0 + i) * NH + h] = mx + log(sum);
            }
        }
    }
    free(w);
}

static void test_forward_matches_naive(void **state) {
    (void)state;
    const int lens[4] = {1, 5, 33, 70};
    SaCase c;
    case_init(&c, lens, 4, 4, 2, 8, 21);
    size_t no = (size_t)c.N * c.NH * c.HS, nl = (size_t)c.N * c.NH;
    float *out = malloc(no * sizeof(float)), *lse = malloc(nl * sizeof(float));
    double *ro = malloc(no * sizeof(double)), *rl = malloc(nl * sizeof(double));
    run_forward(&c, out, lse);
    naive_forward(&c, ro, rl);
    double eo = 0.0, el = 0.0;
    for (size_t i = 0; i < no; i++) eo = fmax(eo, fabs(out[i] - ro[i]) / fmax(fabs(ro[i]), 1.0));
    for (size_t i = 0; i < nl; i++) el = fmax(el, fabs(lse[i] - rl[i]) / fmax(fabs(rl[i]), 1.0));
    printf("attention forward: out err %.2e, lse err %.2e\n", eo, el);
    assert_true(eo < 1e-5);
    assert_true(el < 1e-5);
    /* a length-1 sequence attends only to itself: out = v, lse = scale * q.k */
    for (int h = 0; h < c.NH; h++) {
        const float *k = c.k + (size_t)(h / 2) * c.HS, *v = c.v + (size_t)(h / 2) * c.HS;
        const float *q = c.q + (size_t)h * c.HS;
        double qk = 0.0;
        for (int e = 0; e < c.HS; e++) qk += (double)q[e] * k[e];
        assert_true(fabs(lse[h] - c.scale * qk) < 1e-5 * fmax(1.0, fabs(qk)));
        for (int e = 0; e < c.HS; e++) assert_true(fabsf(out[(size_t)h * c.HS + e] - v[e]) < 1e-6f);
    }
    free(out), free(lse), free(ro), free(rl);
    case_free(&c);
}

/* Loss closure: sum(R * out) with out from the float64 naive forward over the current (float)
 * inputs, so the central differences carry no float32 rounding noise. */
typedef struct {
    SaCase *c;
    const float *R;      /* (N, NH, HS) */
    double *out, *lse;   /* scratch (N, NH, HS), (N, NH) */
} SaLoss;

static double sa_loss(void *ud) {
    SaLoss *l = ud;
    naive_forward(l->c, l->out, l->lse);
    double s = 0.0;
    for (size_t i = 0; i < (size_t)l->c->N * l->c->NH * l->c->HS; i++) s += (double)l->R[i] * l->out[i];
    return s;
}

/* Analytic gradients of sum(R * out), accumulated into dq (N,NH,HS), dk, dv (N,KVH,HS). */
static void run_backward(SaCase *c, const float *R, float *dq, float *dk, float *dv) {
    size_t no = (size_t)c->N * c->NH * c->HS;
    float *out = malloc(no * sizeof(float)), *lse = malloc((size_t)c->N * c->NH * sizeof(float));
    run_forward(c, out, lse);
    KernelCtx ctx = {NULL, NULL, 0, NULL, 0, 0};
    ctx.ws_bytes = attention_ws_bytes_cpu(c->maxT, c->NH, c->HS);
    ctx.ws = malloc(ctx.ws_bytes);
    attention_backward_cpu(&ctx, dq, dk, dv, R, c->q, c->k, c->v, out, lse, &c->pack, c->NH, c->KVH, c->HS,
                           c->scale);
    free(ctx.ws), free(out), free(lse);
}

static void test_backward_finite_differences(void **state) {
    (void)state;
    const int lens[3] = {1, 5, 33};
    SaCase c;
    case_init(&c, lens, 3, 4, 2, 8, 22);
    size_t no = (size_t)c.N * c.NH * c.HS, nk = (size_t)c.N * c.KVH * c.HS;
    float *R = malloc(no * sizeof(float));
    double *out = malloc(no * sizeof(double)), *lse = malloc((size_t)c.N * c.NH * sizeof(double));
    float *dq = calloc(no, sizeof(float)), *dk = calloc(nk, sizeof(float)), *dv = calloc(nk, sizeof(float));
    gc_fill_uniform(R, no, 22, 9, -1.0f, 1.0f);
    run_backward(&c, R, dq, dk, dv);
    SaLoss l = {&c, R, out, lse};
    GcResult rq = gc_check(c.q, no, dq, sa_loss, &l, GC_EPS, GC_FLOOR, 0);
    GcResult rk = gc_check(c.k, nk, dk, sa_loss, &l, GC_EPS, GC_FLOOR, 0);
    GcResult rv = gc_check(c.v, nk, dv, sa_loss, &l, GC_EPS, GC_FLOOR, 0);
    gc_report("attention dq", rq);
    gc_report("attention dk", rk);
    gc_report("attention dv", rv);
    assert_true(rq.max_rel < SA_FD_TOL);
    assert_true(rk.max_rel < SA_FD_TOL);
    assert_true(rv.max_rel < SA_FD_TOL);
    /* accumulate: a second call adds the same gradients again */
    float *dq2 = malloc(no * sizeof(float)), *dk2 = malloc(nk * sizeof(float)), *dv2 = malloc(nk * sizeof(float));
    memcpy(dq2, dq, no * sizeof(float)), memcpy(dk2, dk, nk * sizeof(float)), memcpy(dv2, dv, nk * sizeof(float));
    run_backward(&c, R, dq2, dk2, dv2);
    for (size_t i = 0; i < no; i++) assert_true(fabs(dq2[i] - 2.0 * dq[i]) <= 1e-6 * (1.0 + fabs(dq[i])));
    for (size_t i = 0; i < nk; i++) assert_true(fabs(dk2[i] - 2.0 * dk[i]) <= 1e-6 * (1.0 + fabs(dk[i])));
    for (size_t i = 0; i < nk; i++) assert_true(fabs(dv2[i] - 2.0 * dv[i]) <= 1e-6 * (1.0 + fabs(dv[i])));
    free(R), free(out), free(lse), free(dq), free(dk), free(dv), free(dq2), free(dk2), free(dv2);
    case_free(&c);
}

/* Backward by finite differences across the op's 64-row tile (length 70), MHA-to-MQA (KVH = 1). */
static void test_backward_long_sequence(void **state) {
    (void)state;
    const int lens[2] = {70, 3};
    SaCase c;
    case_init(&c, lens, 2, 2, 1, 4, 23);
    size_t no = (size_t)c.N * c.NH * c.HS, nk = (size_t)c.N * c.KVH * c.HS;
    float *R = malloc(no * sizeof(float));
    double *out = malloc(no * sizeof(double)), *lse = malloc((size_t)c.N * c.NH * sizeof(double));
    float *dq = calloc(no, sizeof(float)), *dk = calloc(nk, sizeof(float)), *dv = calloc(nk, sizeof(float));
    gc_fill_uniform(R, no, 23, 9, -1.0f, 1.0f);
    run_backward(&c, R, dq, dk, dv);
    SaLoss l = {&c, R, out, lse};
    GcResult rq = gc_check(c.q, no, dq, sa_loss, &l, GC_EPS, GC_FLOOR, 0);
    GcResult rk = gc_check(c.k, nk, dk, sa_loss, &l, GC_EPS, GC_FLOOR, 0);
    GcResult rv = gc_check(c.v, nk, dv, sa_loss, &l, GC_EPS, GC_FLOOR, 0);
    gc_report("attention dq (T=70)", rq);
    gc_report("attention dk (T=70)", rk);
    gc_report("attention dv (T=70)", rv);
    assert_true(rq.max_rel < SA_FD_TOL);
    assert_true(rk.max_rel < SA_FD_TOL);
    assert_true(rv.max_rel < SA_FD_TOL);
    free(R), free(out), free(lse), free(dq), free(dk), free(dv);
    case_free(&c);
}

static void test_decode_matches_forward(void **state) {
    (void)state;
    enum { B = 3, TMAX = 40 };
    const int lens[B] = {1, 5, 33};
    SaCase c;
    case_init(&c, lens, B, 4, 2, 8, 24);
    int NH = c.NH, KVH = c.KVH, HS = c.HS;
    size_t no = (size_t)c.N * NH * HS, row_kv = (size_t)KVH * HS, row_q = (size_t)NH * HS;
    float *out = malloc(no * sizeof(float)), *lse = malloc((size_t)c.N * NH * sizeof(float));
    run_forward(&c, out, lse);
    /* caches padded with NaN: reading past len would poison the result */
    size_t ncache = (size_t)B * TMAX * row_kv;
    float *kc = malloc(ncache * sizeof(float)), *vc = malloc(ncache * sizeof(float));
    for (size_t i = 0; i < ncache; i++) kc[i] = vc[i] = NAN;
    for (int b = 0; b < B; b++) {
        memcpy(kc + (size_t)b * TMAX * row_kv, c.k + (size_t)c.start[b] * row_kv, lens[b] * row_kv * sizeof(float));
        memcpy(vc + (size_t)b * TMAX * row_kv, c.v + (size_t)c.start[b] * row_kv, lens[b] * row_kv * sizeof(float));
    }
    float *q = malloc(B * row_q * sizeof(float)), *o = malloc(B * row_q * sizeof(float));
    KernelCtx ctx = {NULL, NULL, 0, NULL, 0, 0};
    double worst = 0.0;
    for (int p = 0; p < 33; p++) { /* decode position p of every sequence long enough */
        int len[B];
        for (int b = 0; b < B; b++) {
            int pb = p < lens[b] ? p : lens[b] - 1;
            len[b] = pb + 1;
            memcpy(q + b * row_q, c.q + (size_t)(c.start[b] + pb) * row_q, row_q * sizeof(float));
        }
        attention_decode_cpu(&ctx, o, q, kc, vc, len, B, TMAX, NH, KVH, HS, c.scale);
        for (int b = 0; b < B; b++) {
            const float *ref = out + (size_t)(c.start[b] + len[b] - 1) * row_q;
            for (size_t i = 0; i < row_q; i++) {
                assert_false(isnan(o[b * row_q + i]));
                worst = fmax(worst, fabs(o[b * row_q + i] - ref[i]) / fmax(fabs(ref[i]), 1.0));
            }
        }
    }
    printf("attention decode vs forward rows: max err %.2e\n", worst);
    assert_true(worst < 1e-5);
    free(out), free(lse), free(kc), free(vc), free(q), free(o);
    case_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_naive),
        cmocka_unit_test(test_backward_finite_differences),
        cmocka_unit_test(test_backward_long_sequence),
        cmocka_unit_test(test_decode_matches_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
