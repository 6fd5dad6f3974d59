/* tests/kernels/test_lightning.c: the CPU lightning attention op (kernels/cpu/lightning_attn.c).
 * labels: unit grad
 *
 * - forward and final state against a naive O(T^2) float64 evaluation of the defining formula,
 *   for packed sequences of lengths 1, 7, 64, 130 (several blocks, ragged last block), with and
 *   without an initial state;
 * - the result does not depend on the block length;
 * - decode steps after a prefill reproduce the full forward (prompts below and above a block);
 * - chunked prefill (forward, then forward from the saved state) reproduces one forward;
 * - backward by central differences on loss = sum(R * out) for qkv and kv_in (the op is linear
 *   in each single input entry, so a large step is exact up to rounding), and accumulation.
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

/* A packed batch of lightning inputs: qkv (N, NH, 3*HS), slopes (NH), kv_in (B, NH, HS, HS). */
typedef struct {
    int B, N, NH, HS, maxT;
    int start[MAX_SEQ + 1];
    SeqPack pack;
    float *qkv, *slopes, *kv_in;
} LaCase;

static void case_init(LaCase *c, const int *lens, int B, int NH, int HS, uint64_t seed) {
    memset(c, 0, sizeof(*c));
    c->B = B, c->NH = NH, c->HS = HS;
    for (int b = 0; b < B; b++) {
        c->start[b + 1] = c->start[b] + lens[b];
        c->maxT = lens[b] > c->maxT ? lens[b] : c->maxT;
    }
    c->N = c->start[B];
    c->pack = (SeqPack){B, c->start, NULL};
    size_t nq = (size_t)c->N * NH * 3 * HS, ns = (size_t)B * NH * HS * HS;
    c->qkv = malloc(nq * sizeof(float));
    c->slopes = malloc((size_t)NH * sizeof(float));
    c->kv_in = malloc(ns * sizeof(float));
    gc_fill_uniform(c->qkv, nq, seed, 1, -2.0f, 2.0f);
    for (size_t i = 0; i < nq; i++) c->qkv[i] = c->qkv[i] / (1.0f + expf(-c->qkv[i])); /* SiLU'd */
    gc_fill_uniform(c->slopes, (size_t)NH, seed, 2, 0.01f, 1.0f);
    gc_fill_uniform(c->kv_in, ns, seed, 3, -1.0f, 1.0f);
}

static void case_free(LaCase *c) {
    free(c->qkv);
    free(c->slopes);
    free(c->kv_in);
}

static KernelCtx ctx_for(int maxT, int NH, int HS, int block) {
    KernelCtx ctx = {NULL, NULL, 0, NULL, 0, 0};
    ctx.ws_bytes = lightning_ws_bytes_cpu(maxT, NH, HS, block);
    ctx.ws = malloc(ctx.ws_bytes);
    return ctx;
}

/* Naive float64 evaluation: out (N, NH, HS) and kv (B, NH, HS, HS) straight from the formula. */
static void naive_forward(const LaCase *c, const float *kv_in, double *out, double *kv) {
    int NH = c->NH, HS = c->HS;
    for (int b = 0; b < c->B; b++) {
        int t0 = c->start[b], T = c->start[b + 1] - t0;
        for (int h = 0; h < NH; h++) {
            double lam = exp(-(double)c->slopes[h]);
            const float *S0 = kv_in ? kv_in + ((size_t)b * NH + h) * HS * HS : NULL;
            for (int t = 0; t < T; t++) {
                const float *q = c->qkv + ((size_t)(t0 + t) * NH + h) * 3 * HS;
                double *o = out + ((size_t)(t0 + t) * NH + h) * HS;
                for (int e = 0; e < HS; e++) o[e] = 0.0;
                for (int u = 0; u <= t; u++) {
                    const float *k = c->qkv + ((size_t)(t0 + u) * NH + h) * 3 * HS + HS, *v = k + HS;
                    double qk = 0.0, w = pow(lam, t - u);
                    for (int d = 0; d < HS; d++) qk += (double)q[d] * k[d];
                    for (int e = 0; e < HS; e++) o[e] += w * qk * v[e];
                }
                for (int d = 0; S0 && d < HS; d++)
                    for (int e = 0; e < HS; e++) o[e] += pow(lam, t + 1) * q[d] * S0[d * HS + e];
            }
            double *S = kv + ((size_t)b * NH + h) * HS * HS;
            for (int d = 0; d < HS; d++)
                for (int e = 0; e < HS; e++) {
                    double acc = S0 ? pow(lam, T) * S0[d * HS + e] : 0.0;
                    for (int u = 0; u < T; u++) {
                        const float *k = c->qkv + ((size_t)(t0 + u) * NH + h) * 3 * HS + HS, *v = k + HS;
                        acc += pow(lam, T - 1 - u) * k[d] * v[e];
                    }
                    S[d * HS + e] = acc;
                }
        }
    }
}

/* max |got - ref| / max |ref| over n entries (ref in float64). */
static double rel_err_d(const float *got, const double *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)got[i] - ref[i]));
        den = fmax(den, fabs(ref[i]));
    }
    return num / fmax(den, 1e-30);
}

static double rel_err_f(const float *got, const float *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)got[i] - (double)ref[i]));
        den = fmax(den, fabs((double)ref[i]));
    }
    return num / fmax(den, 1e-30);
}

/* Run the op's forward with the given block; out (N, NH, HS) and kv_out (B, NH, HS, HS) caller-owned. */
static void run_forward(const LaCase *c, const float *kv_in, float *out, float *kv_out, int block) {
    KernelCtx ctx = ctx_for(c->maxT, c->NH, c->HS, block);
    lightning_forward_cpu(&ctx, out, kv_out, c->qkv, kv_in, c->slopes, &c->pack, c->NH, c->HS, block);
    free(ctx.ws);
}

static void test_forward_matches_naive(void **state) {
    (void)state;
    const int lens[4] = {1, 7, 64, 130}, blocks[2] = {16, 64};
    LaCase c;
    case_init(&c, lens, 4, 3, 8, 11);
    size_t no = (size_t)c.N * c.NH * c.HS, ns = (size_t)c.B * c.NH * c.HS * c.HS;
    float *out = malloc(no * sizeof(float)), *kv = malloc(ns * sizeof(float));
    double *ro = malloc(no * sizeof(double)), *rkv = malloc(ns * sizeof(double));
    for (int with_s0 = 0; with_s0 < 2; with_s0++) {
        const float *kv_in = with_s0 ? c.kv_in : NULL;
        naive_forward(&c, kv_in, ro, rkv);
        for (int bi = 0; bi < 2; bi++) {
            run_forward(&c, kv_in, out, kv, blocks[bi]);
            for (int b = 0; b < c.B; b++) { /* per sequence, so short ones are judged on their own scale */
                size_t o0 = (size_t)c.start[b] * c.NH * c.HS, on = (size_t)lens[b] * c.NH * c.HS;
                double e = rel_err_d(out + o0, ro + o0, on);
                if (e >= 1e-5) printf("out seq %d block %d s0 %d: rel err %.3e\n", b, blocks[bi], with_s0, e);
                assert_true(e < 1e-5);
            }
            for (size_t bh = 0; bh < (size_t)c.B * c.NH; bh++) {
                size_t n2 = (size_t)c.HS * c.HS;
                double e = rel_err_d(kv + bh * n2, rkv + bh * n2, n2);
                if (e >= 1e-5) printf("kv_out (b,h)=%zu block %d s0 %d: rel err %.3e\n", bh, blocks[bi], with_s0, e);
                assert_true(e < 1e-5);
            }
        }
    }
    free(out), free(kv), free(ro), free(rkv);
    case_free(&c);
}

static void test_block_independence(void **state) {
    (void)state;
    const int lens[3] = {130, 1, 45}, blocks[4] = {1, 7, 16, 256};
    LaCase c;
    case_init(&c, lens, 3, 2, 8, 12);
    size_t no = (size_t)c.N * c.NH * c.HS, ns = (size_t)c.B * c.NH * c.HS * c.HS;
    float *ref = malloc(no * sizeof(float)), *rkv = malloc(ns * sizeof(float));
    float *out = malloc(no * sizeof(float)), *kv = malloc(ns * sizeof(float));
    run_forward(&c, c.kv_in, ref, rkv, 64);
    for (int i = 0; i < 4; i++) {
        run_forward(&c, c.kv_in, out, kv, blocks[i]);
        double eo = rel_err_f(out, ref, no), ek = rel_err_f(kv, rkv, ns);
        printf("block %3d vs 64: out %.2e kv_out %.2e\n", blocks[i], eo, ek);
        assert_true(eo < 1e-5);
        assert_true(ek < 1e-5);
    }
    free(ref), free(rkv), free(out), free(kv);
    case_free(&c);
}

/* Copy rows [from, from+n) of each sequence of `c` into a new packed qkv with lengths n[b]. */
static float *slice_rows(const LaCase *c, const int *from, const int *n, int *start_out) {
    size_t row = (size_t)c->NH * 3 * c->HS;
    start_out[0] = 0;
    for (int b = 0; b < c->B; b++) start_out[b + 1] = start_out[b] + n[b];
    float *q = malloc(((size_t)start_out[c->B] + 1) * row * sizeof(float));
    for (int b = 0; b < c->B; b++)
        memcpy(q + (size_t)start_out[b] * row, c->qkv + (size_t)(c->start[b] + from[b]) * row,
               (size_t)n[b] * row * sizeof(float));
    return q;
}

static void test_decode_matches_forward(void **state) {
    (void)state;
    enum { B = 2, STEPS = 6, BLOCK = 16 };
    const int prompt[B] = {5, 20}, lens[B] = {5 + STEPS, 20 + STEPS}, zero[B] = {0, 0};
    LaCase c;
    case_init(&c, lens, B, 3, 8, 13);
    int NH = c.NH, HS = c.HS;
    size_t no = (size_t)c.N * NH * HS, ns = (size_t)B * NH * HS * HS, row = (size_t)NH * 3 * HS;
    float *full = malloc(no * sizeof(float)), *full_kv = malloc(ns * sizeof(float));
    run_forward(&c, c.kv_in, full, full_kv, BLOCK);
    /* prefill the prompts, keeping the state */
    int pstart[B + 1];
    float *pq = slice_rows(&c, zero, prompt, pstart);
    float *pout = malloc((size_t)pstart[B] * NH * HS * sizeof(float)), *st = malloc(ns * sizeof(float));
    KernelCtx ctx = ctx_for(c.maxT, NH, HS, BLOCK);
    SeqPack pp = {B, pstart, NULL};
    lightning_forward_cpu(&ctx, pout, st, pq, c.kv_in, c.slopes, &pp, NH, HS, BLOCK);
    /* then one token at a time */
    float *sq = malloc(B * row * sizeof(float)), *so = malloc((size_t)B * NH * HS * sizeof(float));
    for (int i = 0; i < STEPS; i++) {
        for (int b = 0; b < B; b++)
            memcpy(sq + b * row, c.qkv + (size_t)(c.start[b] + prompt[b] + i) * row, row * sizeof(float));
        lightning_decode_cpu(&ctx, so, st, sq, c.slopes, B, NH, HS);
        for (int b = 0; b < B; b++) {
            const float *ref = full + (size_t)(c.start[b] + prompt[b] + i) * NH * HS;
            double e = rel_err_f(so + (size_t)b * NH * HS, ref, (size_t)NH * HS);
            assert_true(e < 1e-5);
        }
    }
    double ek = rel_err_f(st, full_kv, ns);
    printf("decode: final state rel err %.2e\n", ek);
    assert_true(ek < 1e-5);
    free(full), free(full_kv), free(pq), free(pout), free(st), free(sq), free(so), free(ctx.ws);
    case_free(&c);
}

static void test_chunked_prefill(void **state) {
    (void)state;
    enum { B = 2, BLOCK = 16 };
    const int lens[B] = {37, 70}, first[B] = {20, 33}, rest[B] = {17, 37}, zero[B] = {0, 0};
    LaCase c;
    case_init(&c, lens, B, 2, 8, 14);
    int NH = c.NH, HS = c.HS;
    size_t no = (size_t)c.N * NH * HS, ns = (size_t)B * NH * HS * HS;
    float *full = malloc(no * sizeof(float)), *full_kv = malloc(ns * sizeof(float));
    run_forward(&c, c.kv_in, full, full_kv, BLOCK);
    int s1[B + 1], s2[B + 1];
    float *q1 = slice_rows(&c, zero, first, s1), *q2 = slice_rows(&c, first, rest, s2);
    float *o1 = malloc((size_t)s1[B] * NH * HS * sizeof(float)), *o2 = malloc((size_t)s2[B] * NH * HS * sizeof(float));
    float *st = malloc(ns * sizeof(float)), *st2 = malloc(ns * sizeof(float));
    KernelCtx ctx = ctx_for(c.maxT, NH, HS, BLOCK);
    SeqPack p1 = {B, s1, NULL}, p2 = {B, s2, NULL};
    lightning_forward_cpu(&ctx, o1, st, q1, c.kv_in, c.slopes, &p1, NH, HS, BLOCK);
    lightning_forward_cpu(&ctx, o2, st2, q2, st, c.slopes, &p2, NH, HS, BLOCK);
    size_t rs = (size_t)NH * HS;
    for (int b = 0; b < B; b++) {
        double e1 = rel_err_f(o1 + s1[b] * rs, full + c.start[b] * rs, first[b] * rs);
        double e2 = rel_err_f(o2 + s2[b] * rs, full + (c.start[b] + first[b]) * rs, rest[b] * rs);
        printf("chunked prefill seq %d: first part %.2e, second part %.2e\n", b, e1, e2);
        assert_true(e1 < 1e-5);
        assert_true(e2 < 1e-5);
    }
    assert_true(rel_err_f(st2, full_kv, ns) < 1e-5);
    free(full), free(full_kv), free(q1), free(q2), free(o1), free(o2), free(st), free(st2), free(ctx.ws);
    case_free(&c);
}

/* Loss closure for the gradient checks: sum(R * out) in float64 over the current inputs. */
typedef struct {
    LaCase *c;
    const float *R; /* (N, NH, HS) */
    float *out;     /* (N, NH, HS) scratch */
    int block;
} LaLoss;

static double la_loss(void *ud) {
    LaLoss *l = ud;
    run_forward(l->c, l->c->kv_in, l->out, NULL, l->block);
    return gc_dot(l->R, l->out, (size_t)l->c->N * l->c->NH * l->c->HS);
}

/* Analytic gradients of sum(R * out): dqkv (N, NH, 3*HS) and dkv (B, NH, HS, HS), zeroed first. */
static void run_backward(LaCase *c, const float *R, float *dqkv, float *dkv, int block, int zero) {
    size_t nq = (size_t)c->N * c->NH * 3 * c->HS, ns = (size_t)c->B * c->NH * c->HS * c->HS;
    if (zero) memset(dqkv, 0, nq * sizeof(float));
    if (zero && dkv) memset(dkv, 0, ns * sizeof(float));
    KernelCtx ctx = ctx_for(c->maxT, c->NH, c->HS, block);
    lightning_backward_cpu(&ctx, dqkv, dkv, R, c->qkv, c->kv_in, c->slopes, &c->pack, c->NH, c->HS, block);
    free(ctx.ws);
}

static void test_backward_finite_differences(void **state) {
    (void)state;
    const int lens[2] = {19, 11}; /* block 4: 5 and 3 blocks, both with a ragged last block */
    LaCase c;
    case_init(&c, lens, 2, 2, 4, 15);
    size_t no = (size_t)c.N * c.NH * c.HS, nq = no * 3, ns = (size_t)c.B * c.NH * c.HS * c.HS;
    float *R = malloc(no * sizeof(float)), *out = malloc(no * sizeof(float));
    float *dqkv = malloc(nq * sizeof(float)), *dkv = malloc(ns * sizeof(float));
    gc_fill_uniform(R, no, 15, 9, -1.0f, 1.0f);
    LaLoss l = {&c, R, out, 4};
    run_backward(&c, R, dqkv, dkv, 4, 1);
    /* out is linear in each single entry of qkv and kv_in, so a large step loses nothing */
    GcResult rq = gc_check(c.qkv, nq, dqkv, la_loss, &l, 0.5f, GC_FLOOR, 0);
    GcResult rs = gc_check(c.kv_in, ns, dkv, la_loss, &l, 0.5f, GC_FLOOR, 0);
    gc_report("lightning dqkv", rq);
    gc_report("lightning dkv_in", rs);
    assert_true(rq.max_rel < GC_TOL);
    assert_true(rs.max_rel < GC_TOL);
    free(R), free(out), free(dqkv), free(dkv);
    case_free(&c);
}

/* Backward: gradients do not depend on the block, kv_in = NULL equals a zero state, and a second
 * call adds the same gradients again. */
static void test_backward_blocks_and_accumulation(void **state) {
    (void)state;
    const int lens[3] = {40, 3, 17};
    LaCase c;
    case_init(&c, lens, 3, 2, 8, 16);
    size_t no = (size_t)c.N * c.NH * c.HS, nq = no * 3, ns = (size_t)c.B * c.NH * c.HS * c.HS;
    float *R = malloc(no * sizeof(float));
    float *g1 = malloc(nq * sizeof(float)), *k1 = malloc(ns * sizeof(float));
    float *g2 = malloc(nq * sizeof(float)), *k2 = malloc(ns * sizeof(float));
    gc_fill_uniform(R, no, 16, 9, -1.0f, 1.0f);
    run_backward(&c, R, g1, k1, 16, 1);
    const int blocks[3] = {1, 5, 64};
    for (int i = 0; i < 3; i++) {
        run_backward(&c, R, g2, k2, blocks[i], 1);
        assert_true(rel_err_f(g2, g1, nq) < 1e-5);
        assert_true(rel_err_f(k2, k1, ns) < 1e-5);
    }
    run_backward(&c, R, g2, k2, 16, 0); /* g2 now holds two calls' worth */
    for (size_t i = 0; i < nq; i++) assert_true(fabs(g2[i] - 2.0 * g1[i]) <= 1e-5 * (1.0 + fabs(g1[i])));
    for (size_t i = 0; i < ns; i++) assert_true(fabs(k2[i] - 2.0 * k1[i]) <= 1e-5 * (1.0 + fabs(k1[i])));
    /* a NULL initial state behaves as zeros */
    memset(c.kv_in, 0, ns * sizeof(float));
    run_backward(&c, R, g1, k1, 16, 1);
    float *saved = c.kv_in;
    c.kv_in = NULL;
    run_backward(&c, R, g2, k2, 16, 1);
    c.kv_in = saved;
    assert_memory_equal(g1, g2, nq * sizeof(float));
    assert_memory_equal(k1, k2, ns * sizeof(float));
    free(R), free(g1), free(k1), free(g2), free(k2);
    case_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_naive),
        cmocka_unit_test(test_block_independence),
        cmocka_unit_test(test_decode_matches_forward),
        cmocka_unit_test(test_chunked_prefill),
        cmocka_unit_test(test_backward_finite_differences),
        cmocka_unit_test(test_backward_blocks_and_accumulation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
