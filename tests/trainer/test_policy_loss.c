/* tests/trainer/test_policy_loss.c: the policy losses, their gradients and the aggregation modes.
 *  - every loss type token by token (weight 1) against values worked out by hand, with ratios
 *    inside and beyond every bound, both advantage signs, the dual clip on and off, CISPO with and
 *    without c_low and with the unified mask: loss, dlogp and clip_frac;
 *  - batch statistics (clip_frac, ratio mean/max, kl, n_tokens) with a masked token;
 *  - dL/dlogp_new by central finite differences (double loss, dyadic inputs and step 2^-10 so that
 *    every perturbed float is exact) away from the kinks, GRPO's KL included; for CISPO the
 *    stop-gradient is checked instead: dlogp = -r_hat A w M, equal to the FD of the surrogate with
 *    r frozen (logp_old shifted with logp_new), and different from the FD of the raw loss value;
 *  - every aggregation mode on responses of lengths 1, 3, 4 with a masked token, the overrides, the
 *    MIXED endpoints; DAPO's overlong penalty at its boundaries.
 * Ratios used: e^0.125 = 1.1331484530668263, e^0.5 = 1.6487212707001282, e^-0.5 = 0.6065306597126334,
 * e^-0.125 = 0.8824969025845955, e^0.1875 = 1.2062302494209807, e^20 = 485165195.4097903.
 * labels: unit grad
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "trainer/policy_loss.h"

static void near(double got, double want, double tol, const char *what, int i) {
    if (fabs(got - want) > tol * (1.0 + fabs(want))) {
        print_error("%s [%d]: got %.12g, expected %.12g\n", what, i, got, want);
        fail();
    }
}

static PolicyLossConfig cfg_ppo(PolicyLossType type, double eps_low, double eps_high, double dual) {
    PolicyLossConfig c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.eps_low = eps_low;
    c.eps_high = eps_high;
    c.dual_clip_c = dual;
    c.agg = AGG_TOKEN_MEAN;
    return c;
}

static PolicyLossConfig cfg_cispo(double c_high, double c_low, int mask) {
    PolicyLossConfig c;
    memset(&c, 0, sizeof c);
    c.type = LOSS_CISPO;
    c.cispo_c_high = c_high;
    c.cispo_c_low = c_low;
    c.cispo_mask = mask;
    c.mask_eps_low = 0.2;
    c.mask_eps_high = 0.28;
    c.agg = AGG_TOKEN_MEAN;
    return c;
}

/* one token: logp_new, logp_old, logp_ref, advantage; expected loss, dlogp, clipped */
typedef struct {
    float lp, lo, ref, A;
    double l, dl;
    int clip;
} Case;

static void run_cases(const PolicyLossConfig *c, const Case *cs, int n) {
    for (int i = 0; i < n; i++) {
        const int off[2] = {0, 1};
        const float w[1] = {1.0f};
        float dlogp[1] = {123.0f};
        PolicyLossBatch b = {1, off, &cs[i].lp, &cs[i].lo, &cs[i].ref, &cs[i].A, NULL};
        PolicyLossStats st = policy_loss_compute(c, &b, w, dlogp);
        near(st.loss, cs[i].l, 1e-6, "loss", i);
        near(dlogp[0], cs[i].dl, 1e-6, "dlogp", i);
        near(st.clip_frac, cs[i].clip, 0.0, "clip_frac", i);
        assert_int_equal(st.n_tokens, 1);
    }
}

/* PPO with DAPO's decoupled bounds [0.8, 1.28], no dual clip */
static void test_ppo_tokens(void **state) {
    (void)state;
    const Case cs[] = {
        {-0.875f, -1, 0, 2, -2.2662969061336526, -2.2662969061336526, 0}, /* inside: -A r */
        {-0.5f, -1, 0, 2, -2.56, 0, 1},                                  /* A>0, r>1.28: -A 1.28, clipped */
        {-1.5f, -1, 0, 2, -1.2130613194252668, -1.2130613194252668, 0}, /* A>0, r<0.8: unclipped */
        {-0.5f, -1, 0, -1, 1.6487212707001282, 1.6487212707001282, 0},  /* A<0, r>1.28: unclipped */
        {-1.5f, -1, 0, -1, 0.8, 0, 1},                                   /* A<0, r<0.8: -A 0.8, clipped */
        {-1.125f, -1, 0, -1, 0.8824969025845955, 0.8824969025845955, 0}, /* inside, A<0 */
        {24.0f, -1, 0, -1, 485165195.4097903, 0, 0}, /* log-ratio 25 clamped to 20: r const, no gradient */
        {24.0f, -1, 0, 2, -2.56, 0, 1},
        {-1, -1, 0, 0, 0, 0, 0}, /* A = 0 */
    };
    PolicyLossConfig c = cfg_ppo(LOSS_PPO, 0.2, 0.28, 0.0);
    run_cases(&c, cs, (int)(sizeof cs / sizeof cs[0]));
    c.type = LOSS_DAPO; /* DAPO's per-token loss is PPO's */
    run_cases(&c, cs, (int)(sizeof cs / sizeof cs[0]));
}

/* dual clip c = 3 (A < 0 only): loss capped at -A c, no gradient there */
static void test_dual_clip(void **state) {
    (void)state;
    const Case cs[] = {
        {0.5f, -1, 0, -1, 3.0, 0, 1},                                  /* r=e^1.5=4.48: cap 3 active */
        {0.5f, -1, 0, -2, 6.0, 0, 1},                                  /* cap -A c = 6 */
        {-0.5f, -1, 0, -1, 1.6487212707001282, 1.6487212707001282, 0}, /* r=1.65 < 3: inactive */
        {0.5f, -1, 0, 2, -2.56, 0, 1},                                 /* A>0: dual clip not applied */
        {-1.5f, -1, 0, -1, 0.8, 0, 1},                                 /* lower clip, below the cap */
    };
    PolicyLossConfig c = cfg_ppo(LOSS_DAPO, 0.2, 0.28, 3.0);
    run_cases(&c, cs, (int)(sizeof cs / sizeof cs[0]));
}

/* clip-higher: r = e^0.1875 = 1.206 with A = 1 is clipped by PPO's 1.2 but not by DAPO's 1.28 */
static void test_clip_higher(void **state) {
    (void)state;
    const Case ppo[] = {{-0.8125f, -1, 0, 1, -1.2, 0, 1}};
    const Case dapo[] = {{-0.8125f, -1, 0, 1, -1.2062302494209807, -1.2062302494209807, 0}};
    PolicyLossConfig c = cfg_ppo(LOSS_PPO, 0.2, 0.2, 0.0);
    run_cases(&c, ppo, 1);
    c = cfg_ppo(LOSS_DAPO, 0.2, 0.28, 0.0);
    run_cases(&c, dapo, 1);
}

/* GRPO: PPO [0.8, 1.2] + 0.1 k3, k3 = e^x - x - 1, x = logp_ref - logp_new; dk3/dlogp = 1 - e^x */
static void test_grpo_tokens(void **state) {
    (void)state;
    const Case cs[] = {
        /* r=e^0.125, x=0.5: k3 = e^0.5-1.5 = 0.1487212707001282, dk3 = 1-e^0.5 = -0.6487212707001282 */
        {-0.875f, -1, -0.375f, 1, -1.1182763259968136, -1.198020580136839, 0},
        /* r=e^0.5 clipped (-2*1.2); x=-12: k3 = e^-12+11 = 11.000006 -> clamped 10, no gradient */
        {-0.5f, -1, -12.5f, 2, -1.4, 0, 1},
        /* r=e^-0.125 inside, A=-1; x=-2: k3 = e^-2+1 = 1.1353352832366128, dk3 = 1-e^-2 */
        {-1.125f, -1, -3.125f, -1, 0.9960304309082567, 0.9689633742609342, 0},
    };
    PolicyLossConfig c = cfg_ppo(LOSS_GRPO, 0.2, 0.2, 0.0);
    c.kl_beta = 0.1;
    run_cases(&c, cs, 3);
    const double k3[3] = {0.1487212707001282, 10.0, 1.1353352832366128};
    for (int i = 0; i < 3; i++) { /* the kl statistic of each token */
        const int off[2] = {0, 1};
        const float w[1] = {1.0f};
        float d[1];
        PolicyLossBatch b = {1, off, &cs[i].lp, &cs[i].lo, &cs[i].ref, &cs[i].A, NULL};
        near(policy_loss_compute(&c, &b, w, d).kl, k3[i], 1e-6, "kl", i);
    }
}

/* CISPO: l = -r_hat A logp_new M, dl = -r_hat A M, c_high 1.2 absolute */
static void test_cispo_tokens(void **state) {
    (void)state;
    const Case plain[] = {
        {-0.875f, -1, 0, 2, 1.9830097928669461, -2.2662969061336526, 0}, /* r=1.133 < 1.2 */
        {-0.5f, -1, 0, 2, 1.2, -2.4, 1},                                 /* r=1.649 -> 1.2 */
        {-1.5f, -1, 0, -1, -0.9097959895689501, 0.6065306597126334, 0}, /* r=0.607: no lower bound */
        {-1.5f, -3, 0, -1, -1.8, 1.2, 1},                                /* r=e^1.5 -> 1.2, A<0 */
    };
    PolicyLossConfig c = cfg_cispo(1.2, 0.0, 0);
    run_cases(&c, plain, 4);
    const Case low[] = {
        {-1.5f, -1, 0, -1, -1.2, 0.8, 1},                                /* r=0.607 -> c_low 0.8 */
        {-1.125f, -1, 0, 2, 1.9856180308153397, -1.764993805169191, 0}, /* r=0.882 >= 0.8 */
        {-0.5f, -1, 0, 2, 1.2, -2.4, 1},
    };
    c = cfg_cispo(1.2, 0.8, 0);
    run_cases(&c, low, 3);
    /* unified mask, eps 0.2 / 0.28: M=0 for (A>0, r>1.28) and (A<0, r<0.8) */
    const Case masked[] = {
        {-0.5f, -1, 0, 2, 0.0, 0.0, 1},                                  /* M=0 */
        {-0.5f, -1, 0, -1, -0.6, 1.2, 1},                                /* M=1, r_hat 1.2 */
        {-1.5f, -1, 0, -1, 0.0, 0.0, 1},                                 /* M=0 */
        {-1.5f, -1, 0, 2, 1.8195919791379003, -1.2130613194252668, 0},  /* M=1, r kept */
        {-0.8125f, -1, 0, 2, 1.95, -2.4, 1},                             /* r=1.206: M=1, r_hat 1.2 */
        {-0.875f, -1, 0, 2, 1.9830097928669461, -2.2662969061336526, 0}, /* inside everything */
    };
    c = cfg_cispo(1.2, 0.0, 1);
    run_cases(&c, masked, 6);
}

/* batch statistics over one-token responses (each with its own advantage) and a masked token */
static void test_batch_stats(void **state) {
    (void)state;
    const float lp[7] = {-0.5f, -0.5f, -1.5f, -1.5f, -0.8125f, -0.875f, 0.5f};
    const float lo[7] = {-1, -1, -1, -1, -1, -1, -1};
    const float A[7] = {2, -1, -1, 2, 2, 2, 2};
    const float mask[7] = {1, 1, 1, 1, 1, 1, 0};
    const float w[7] = {1, 1, 1, 1, 1, 1, 1};
    const int off[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    float d[7];
    PolicyLossBatch b = {7, off, lp, lo, NULL, A, mask};
    PolicyLossConfig c = cfg_cispo(1.2, 0.0, 1);
    PolicyLossStats st = policy_loss_compute(&c, &b, w, d);
    assert_int_equal(st.n_tokens, 6);
    near(st.clip_frac, 4.0 / 6.0, 1e-12, "clip_frac", 0);
    near(st.ratio_max, 1.6487212707001282, 1e-9, "ratio_max", 0); /* not the masked e^1.5 */
    double rmean = (2 * 1.6487212707001282 + 2 * 0.6065306597126334 + 1.2062302494209807 + 1.1331484530668263) / 6;
    near(st.ratio_mean, rmean, 1e-9, "ratio_mean", 0);
    near(st.loss, 0 - 0.6 + 0 + 1.8195919791379003 + 1.95 + 1.9830097928669461, 1e-6, "loss", 0);
    assert_true(d[6] == 0.0f && d[0] == 0.0f);
    assert_true(st.kl == 0.0);
}

/* ---- finite differences ---- */

#define FD_T 8
static const int fd_off[4] = {0, 1, 4, 8}; /* lengths 1, 3, 4 */
static const float fd_adv[3] = {1.5f, -0.75f, 1.25f};
static const float fd_lo[FD_T] = {-1, -1.5f, -0.5f, -2, -1, -0.75f, -1.25f, -1};
/* log-ratios, all away from the kinks at ln 0.8 = -0.223, ln 1.2 = 0.182, ln 1.28 = 0.247 and the
 * dual clip's ln 3 = 1.099. Response 1 (A < 0): inside, above 1+eps (unclipped), above 3 (dual cap);
 * response 2 (A > 0): below 1-eps (unclipped), masked, below 1-eps, inside. */
static const float fd_d[FD_T] = {0.0625f, -0.125f, 0.5f, 1.5f, -0.5f, 0.15625f, -0.3125f, 0.0f};
static const float fd_x[FD_T] = {0.25f, -0.375f, 1.0f, -12.0f, 0.5f, -0.125f, 2.0f, -1.0f}; /* logp_ref - logp_new */
static const float fd_mask[FD_T] = {1, 1, 1, 1, 1, 0, 1, 1};

static double fd_loss(const PolicyLossConfig *c, PolicyLossBatch *b, const float *w) {
    float d[FD_T];
    return policy_loss_compute(c, b, w, d).loss;
}

/* Central FD of the loss over every logp_new; `shift_old` also moves logp_old (r frozen). */
static void fd_check(const PolicyLossConfig *c, int shift_old) {
    float lp[FD_T], lo[FD_T], ref[FD_T], w[FD_T], dlogp[FD_T];
    for (int t = 0; t < FD_T; t++) {
        lo[t] = fd_lo[t];
        lp[t] = fd_lo[t] + fd_d[t];
        ref[t] = lp[t] + fd_x[t];
    }
    PolicyLossBatch b = {3, fd_off, lp, lo, ref, fd_adv, fd_mask};
    policy_loss_weights(c, &b, 0, 0, w);
    policy_loss_compute(c, &b, w, dlogp);
    const float h = 1.0f / 1024.0f; /* exact on these dyadic values */
    int nonzero = 0;
    for (int t = 0; t < FD_T; t++) {
        float p0 = lp[t], o0 = lo[t];
        lp[t] = p0 + h;
        if (shift_old) lo[t] = o0 + h;
        double lplus = fd_loss(c, &b, w);
        lp[t] = p0 - h;
        if (shift_old) lo[t] = o0 - h;
        double lminus = fd_loss(c, &b, w);
        lp[t] = p0;
        lo[t] = o0;
        double fd = (lplus - lminus) / (2.0 * h);
        near(dlogp[t], fd, 2e-6, "dlogp vs finite difference", t);
        nonzero += dlogp[t] != 0.0f;
    }
    assert_true(nonzero >= 4);
}

static void test_fd_ppo_dapo(void **state) {
    (void)state;
    PolicyLossConfig c = cfg_ppo(LOSS_PPO, 0.2, 0.2, 0.0);
    c.agg = AGG_SEQ_MEAN_TOKEN_MEAN;
    fd_check(&c, 0);
    c = cfg_ppo(LOSS_DAPO, 0.2, 0.28, 3.0); /* the dual cap is active on token 3 */
    c.agg = AGG_TOKEN_MEAN;
    fd_check(&c, 0);
}

static void test_fd_grpo(void **state) {
    (void)state;
    PolicyLossConfig c = cfg_ppo(LOSS_GRPO, 0.2, 0.2, 0.0);
    c.kl_beta = 0.2;
    c.agg = AGG_MIXED;
    c.agg_alpha = 0.3;
    fd_check(&c, 0);
}

/* CISPO's stop-gradient: dlogp = -r_hat A w M, the FD of the surrogate with r frozen, and not the
 * FD of the loss value (which adds -A w M logp dr_hat/dlogp where r is inside the bounds). */
static void test_cispo_stop_gradient(void **state) {
    (void)state;
    PolicyLossConfig c = cfg_cispo(1.2, 0.8, 1);
    c.agg = AGG_SEQ_MEAN_TOKEN_MEAN;
    fd_check(&c, 1);
    float lp[FD_T], w[FD_T], dlogp[FD_T];
    for (int t = 0; t < FD_T; t++) lp[t] = fd_lo[t] + fd_d[t];
    PolicyLossBatch b = {3, fd_off, lp, fd_lo, NULL, fd_adv, fd_mask};
    policy_loss_weights(&c, &b, 0, 0, w);
    policy_loss_compute(&c, &b, w, dlogp);
    for (int i = 0; i < 3; i++) {
        double A = fd_adv[i];
        for (int t = fd_off[i]; t < fd_off[i + 1]; t++) {
            double r = exp((double)fd_d[t]), r_hat = fmin(fmax(r, 0.8), 1.2);
            double M = fd_mask[t] * ((A > 0 && r > 1.28) || (A < 0 && r < 0.8) ? 0.0 : 1.0);
            near(dlogp[t], -r_hat * A * w[t] * M, 1e-6, "cispo dlogp formula", t);
        }
    }
    /* token 0 (r = e^0.0625 inside the bounds, logp = -0.9375): the raw FD differs by -A w logp r */
    float h = 1.0f / 1024.0f, p0 = lp[0];
    lp[0] = p0 + h;
    double lplus = fd_loss(&c, &b, w);
    lp[0] = p0 - h;
    double lminus = fd_loss(&c, &b, w);
    double raw = (lplus - lminus) / (2.0 * h), r0 = exp(0.0625);
    near(raw - dlogp[0], -1.5 * w[0] * (-0.9375) * r0, 1e-5, "raw FD minus stop-gradient", 0);
    assert_true(fabs(raw - dlogp[0]) > 0.1);
}

/* ---- aggregation: lengths 1, 3, 4; token 5 masked; counted lengths 1, 3, 3, 7 tokens ---- */

static const int ag_off[4] = {0, 1, 4, 8};
static const float ag_mask[8] = {1, 1, 1, 1, 1, 0, 1, 1};

static void weights_for(LossAgg agg, double alpha, long n_seq_total, long n_tok_total, float *w) {
    PolicyLossConfig c = cfg_cispo(1.2, 0.0, 0);
    c.agg = agg;
    c.agg_alpha = alpha;
    c.max_len = 5;
    float lp[8] = {0};
    PolicyLossBatch b = {3, ag_off, lp, lp, NULL, fd_adv, ag_mask};
    policy_loss_weights(&c, &b, n_seq_total, n_tok_total, w);
}

static void expect_w(const float *w, double s0, double s1, double s2) {
    const double want[8] = {s0, s1, s1, s1, s2, 0, s2, s2};
    for (int t = 0; t < 8; t++) near(w[t], want[t], 1e-7, "weight", t);
}

static void test_agg_weights(void **state) {
    (void)state;
    float w[8], w2[8];
    weights_for(AGG_TOKEN_MEAN, 0, 0, 0, w);
    expect_w(w, 1.0 / 7, 1.0 / 7, 1.0 / 7);
    weights_for(AGG_SEQ_MEAN_TOKEN_MEAN, 0, 0, 0, w);
    expect_w(w, 1.0 / 3, 1.0 / 9, 1.0 / 9);
    weights_for(AGG_SEQ_MEAN_TOKEN_SUM_NORM, 0, 0, 0, w);
    expect_w(w, 1.0 / 15, 1.0 / 15, 1.0 / 15);
    weights_for(AGG_MIXED, 0.25, 0, 0, w);
    expect_w(w, 0.25 / 7 + 0.75 / 3, 0.25 / 7 + 0.75 / 9, 0.25 / 7 + 0.75 / 9);
    /* overrides: 14 tokens, 6 sequences in the whole batch */
    weights_for(AGG_TOKEN_MEAN, 0, 6, 14, w);
    expect_w(w, 1.0 / 14, 1.0 / 14, 1.0 / 14);
    weights_for(AGG_SEQ_MEAN_TOKEN_MEAN, 0, 6, 14, w);
    expect_w(w, 1.0 / 6, 1.0 / 18, 1.0 / 18);
    weights_for(AGG_SEQ_MEAN_TOKEN_SUM_NORM, 0, 6, 14, w);
    expect_w(w, 1.0 / 30, 1.0 / 30, 1.0 / 30);
    weights_for(AGG_MIXED, 0.5, 6, 14, w);
    expect_w(w, 0.5 / 14 + 0.5 / 6, 0.5 / 14 + 0.5 / 18, 0.5 / 14 + 0.5 / 18);
    /* MIXED endpoints */
    weights_for(AGG_MIXED, 1.0, 0, 0, w);
    weights_for(AGG_TOKEN_MEAN, 0, 0, 0, w2);
    assert_memory_equal(w, w2, sizeof w);
    weights_for(AGG_MIXED, 0.0, 0, 0, w);
    weights_for(AGG_SEQ_MEAN_TOKEN_MEAN, 0, 0, 0, w2);
    assert_memory_equal(w, w2, sizeof w);
}

/* a fully masked response leaves the sequence count; no mask counts every token */
static void test_agg_counts(void **state) {
    (void)state;
    PolicyLossConfig c = cfg_cispo(1.2, 0.0, 0);
    c.agg = AGG_SEQ_MEAN_TOKEN_MEAN;
    const int off[3] = {0, 2, 4};
    const float mask[4] = {0, 0, 1, 1}, z[4] = {0};
    float w[4];
    PolicyLossBatch b = {2, off, z, z, NULL, fd_adv, mask};
    policy_loss_weights(&c, &b, 0, 0, w);
    for (int t = 0; t < 4; t++) near(w[t], t < 2 ? 0.0 : 0.5, 1e-9, "masked-seq weight", t);
    b.mask = NULL;
    c.agg = AGG_TOKEN_MEAN;
    policy_loss_weights(&c, &b, 0, 0, w);
    for (int t = 0; t < 4; t++) near(w[t], 0.25, 1e-9, "unmasked weight", t);
}

/* Aggregated loss by hand: CISPO at r = 1 has l = -A logp. A = (1, -1, 2);
 * logp: (-1 | -0.5 -1 -2 | -1 [-3] -0.5 -0.5) gives l: (1 | -0.5 -1 -2 | 2 [6] 1 1), sums 1, -3.5, 4. */
static void test_agg_loss(void **state) {
    (void)state;
    const float lp[8] = {-1, -0.5f, -1, -2, -1, -3, -0.5f, -0.5f}, A[3] = {1, -1, 2};
    const struct {
        LossAgg agg;
        double alpha, want;
    } cs[] = {
        {AGG_TOKEN_MEAN, 0, 1.5 / 7},                               /* (1 - 3.5 + 4) / 7 */
        {AGG_SEQ_MEAN_TOKEN_MEAN, 0, (1.0 - 3.5 / 3 + 4.0 / 3) / 3}, /* = 7/18 */
        {AGG_SEQ_MEAN_TOKEN_SUM_NORM, 0, 1.5 / 15},                 /* / (3 * 5) */
        {AGG_MIXED, 0.25, 0.25 * 1.5 / 7 + 0.75 * 7.0 / 18},
    };
    for (int i = 0; i < 4; i++) {
        PolicyLossConfig c = cfg_cispo(1.2, 0.0, 0);
        c.agg = cs[i].agg;
        c.agg_alpha = cs[i].alpha;
        c.max_len = 5;
        PolicyLossBatch b = {3, ag_off, lp, lp, NULL, A, ag_mask};
        float w[8], d[8];
        policy_loss_weights(&c, &b, 0, 0, w);
        PolicyLossStats st = policy_loss_compute(&c, &b, w, d);
        near(st.loss, cs[i].want, 1e-6, "aggregated loss", i);
        assert_int_equal(st.n_tokens, 7);
        assert_true(d[5] == 0.0f);
        near(d[1], (double)w[1] * 1.0, 1e-9, "dlogp = -r A w", i); /* -1 * (-1) * w */
    }
}

/* DAPO Eq. 13: L_max 20, L_cache 4: 0 up to 16, (16 - len) / 4 on (16, 20], -1 beyond */
static void test_overlong_penalty(void **state) {
    (void)state;
    const int len[] = {0, 15, 16, 17, 18, 19, 20, 21, 100};
    const float want[] = {0, 0, 0, -0.25f, -0.5f, -0.75f, -1, -1, -1};
    for (int i = 0; i < 9; i++) near(dapo_overlong_penalty(len[i], 20, 4), want[i], 1e-7, "penalty", len[i]);
    /* DAPO's own setting: 20480 and 4096 */
    near(dapo_overlong_penalty(16384, 20480, 4096), 0.0, 0, "dapo 16384", 0);
    near(dapo_overlong_penalty(16385, 20480, 4096), -1.0 / 4096, 1e-7, "dapo 16385", 0);
    near(dapo_overlong_penalty(18432, 20480, 4096), -0.5, 1e-7, "dapo 18432", 0);
    near(dapo_overlong_penalty(20480, 20480, 4096), -1.0, 1e-7, "dapo 20480", 0);
    near(dapo_overlong_penalty(20481, 20480, 4096), -1.0, 0, "dapo 20481", 0);
    /* no cache: a hard step at max_len */
    near(dapo_overlong_penalty(20, 20, 0), 0.0, 0, "cache0 20", 0);
    near(dapo_overlong_penalty(21, 20, 0), -1.0, 0, "cache0 21", 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ppo_tokens),   cmocka_unit_test(test_dual_clip),
        cmocka_unit_test(test_clip_higher),  cmocka_unit_test(test_grpo_tokens),
        cmocka_unit_test(test_cispo_tokens), cmocka_unit_test(test_batch_stats),
        cmocka_unit_test(test_fd_ppo_dapo),  cmocka_unit_test(test_fd_grpo),
        cmocka_unit_test(test_cispo_stop_gradient), cmocka_unit_test(test_agg_weights),
        cmocka_unit_test(test_agg_counts),   cmocka_unit_test(test_agg_loss),
        cmocka_unit_test(test_overlong_penalty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
