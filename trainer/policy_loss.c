/* trainer/policy_loss.c: the per-token policy losses (CISPO, PPO-clip with dual clip, GRPO with
 * the k3 KL, DAPO) and their gradient with respect to logp_new (ALGORITHMS.md §2-§3), plus DAPO's
 * soft overlong punishment. The aggregation weights live in loss_agg.c.
 *
 * Every token is computed in double from its float inputs. With d = logp_new - logp_old clamped
 * to [-20, 20] (verl) and r = e^d:
 *   CISPO  l = -sg(r_hat) A M logp_new,  dl = -r_hat A M.  The weight is a constant, so dl is NOT
 *          the derivative of l's value (which would add -A M logp_new dr_hat/dlogp).
 *          r_hat = min(r, c_high), then max(., c_low) when c_low > 0 (absolute bounds).
 *          M = 0 when cispo_mask and (A > 0, r > 1 + mask_eps_high) or (A < 0, r < 1 - mask_eps_low).
 *   PPO    l = max(-A r, -A clip(r, 1-eps_low, 1+eps_high)); dual clip (c > 1, A < 0 only):
 *          l = min(l, -A c). dl = -A r (dr/dlogp = r) when the unclipped term is selected, 0 when a
 *          clipped constant is, and 0 when the log-ratio clamp is active (r is then constant, as
 *          torch.clamp's derivative). Ties go to the unclipped term.
 *   GRPO   PPO + beta k3, x = clamp(logp_ref - logp_new, -20, 20), k3 = e^x - x - 1 clamped to
 *          [-10, 10]; dk3/dlogp_new = 1 - e^x, 0 where the clamp on k3 is active (k3 >= 0 and any
 *          |x| >= 20 already gives k3 > 10, so the clamp on x never needs its own case).
 *   DAPO   the PPO loss; its decoupled eps_low/eps_high come from the config.
 * A token is "clipped" (for clip_frac) when the clip changed its weight: CISPO r_hat != r or
 * M = 0; PPO/GRPO/DAPO a clipped constant (the clip(r) term or the dual-clip cap) was selected.
 * Tokens with mask 0 are skipped entirely: dlogp 0, no loss, not in any statistic.
 */
#include "trainer/policy_loss.h"

#include <math.h>
#include <stddef.h>

#include "core/error.h"

#define LOG_RATIO_CLAMP 20.0
#define K3_CLAMP 10.0

typedef struct {
    double l;    /* per-token loss */
    double dl;   /* dl/dlogp_new */
    double r;    /* IS ratio (log-clamped) */
    double k3;   /* KL estimate (GRPO) */
    int clipped; /* the clip changed the weight */
} TokLoss;

/* r = exp(clamp(logp_new - logp_old)); *clamped says whether the clamp was active */
static double log_ratio_exp(double logp_new, double logp_old, int *clamped) {
    double d = logp_new - logp_old;
    *clamped = d < -LOG_RATIO_CLAMP || d > LOG_RATIO_CLAMP;
    if (d < -LOG_RATIO_CLAMP) d = -LOG_RATIO_CLAMP;
    if (d > LOG_RATIO_CLAMP) d = LOG_RATIO_CLAMP;
    return exp(d);
}

static TokLoss tok_cispo(const PolicyLossConfig *cfg, double logp, double logp_old, double A) {
    TokLoss t = {0};
    int clamped;
    t.r = log_ratio_exp(logp, logp_old, &clamped);
    double r_hat = t.r < cfg->cispo_c_high ? t.r : cfg->cispo_c_high;
    if (cfg->cispo_c_low > 0.0 && r_hat < cfg->cispo_c_low) r_hat = cfg->cispo_c_low;
    double M = 1.0;
    if (cfg->cispo_mask && ((A > 0.0 && t.r > 1.0 + cfg->mask_eps_high) || (A < 0.0 && t.r < 1.0 - cfg->mask_eps_low)))
        M = 0.0;
    t.l = -r_hat * A * logp * M;
    t.dl = -r_hat * A * M;
    t.clipped = r_hat != t.r || M == 0.0;
    return t;
}

static TokLoss tok_ppo(const PolicyLossConfig *cfg, double logp, double logp_old, double A) {
    TokLoss t = {0};
    int clamped;
    t.r = log_ratio_exp(logp, logp_old, &clamped);
    double lo = 1.0 - cfg->eps_low, hi = 1.0 + cfg->eps_high;
    double rc = t.r < lo ? lo : (t.r > hi ? hi : t.r);
    double l_unclipped = -A * t.r, l_clipped = -A * rc;
    if (l_clipped > l_unclipped) {
        t.l = l_clipped;
        t.clipped = 1;
    } else {
        t.l = l_unclipped;
        t.dl = clamped ? 0.0 : -A * t.r;
    }
    if (cfg->dual_clip_c > 1.0 && A < 0.0 && t.l > -A * cfg->dual_clip_c) {
        t.l = -A * cfg->dual_clip_c;
        t.dl = 0.0;
        t.clipped = 1;
    }
    return t;
}

/* k3 = e^x - x - 1 for x = clamp(logp_ref - logp, -20, 20), clamped to [-10, 10]; *dk = dk3/dlogp */
static double k3_kl(double logp, double logp_ref, double *dk) {
    double x = logp_ref - logp;
    if (x < -LOG_RATIO_CLAMP) x = -LOG_RATIO_CLAMP;
    if (x > LOG_RATIO_CLAMP) x = LOG_RATIO_CLAMP;
    double ex = exp(x), k = ex - x - 1.0;
    *dk = 1.0 - ex;
    if (k > K3_CLAMP || k < -K3_CLAMP) {
        k = k > 0.0 ? K3_CLAMP : -K3_CLAMP;
        *dk = 0.0;
    }
    return k;
}

static void check_config(const PolicyLossConfig *cfg, const PolicyLossBatch *b) {
    CHECK(cfg->type == LOSS_CISPO || cfg->type == LOSS_PPO || cfg->type == LOSS_GRPO || cfg->type == LOSS_DAPO,
          "policy loss: unknown type %d", (int)cfg->type);
    if (cfg->type == LOSS_CISPO) {
        CHECK(cfg->cispo_c_high > 0.0, "policy loss: cispo_c_high=%g must be > 0 (an absolute ratio)",
              cfg->cispo_c_high);
        CHECK(cfg->cispo_c_low >= 0.0 && cfg->cispo_c_low < cfg->cispo_c_high,
              "policy loss: cispo_c_low=%g must lie in [0, c_high=%g)", cfg->cispo_c_low, cfg->cispo_c_high);
    } else {
        CHECK(cfg->eps_low >= 0.0 && cfg->eps_low < 1.0 && cfg->eps_high >= 0.0,
              "policy loss: eps_low=%g must lie in [0, 1) and eps_high=%g be >= 0", cfg->eps_low, cfg->eps_high);
        CHECK(cfg->dual_clip_c == 0.0 || cfg->dual_clip_c > 1.0, "policy loss: dual_clip_c=%g must be 0 (off) or > 1",
              cfg->dual_clip_c);
    }
    if (cfg->type == LOSS_GRPO && cfg->kl_beta != 0.0)
        CHECK(b->logp_ref != NULL, "policy loss: GRPO with kl_beta=%g needs logp_ref", cfg->kl_beta);
}

static TokLoss tok_loss(const PolicyLossConfig *cfg, const PolicyLossBatch *b, int t, double A) {
    double logp = b->logp_new[t], logp_old = b->logp_old[t];
    if (cfg->type == LOSS_CISPO) return tok_cispo(cfg, logp, logp_old, A);
    TokLoss tl = tok_ppo(cfg, logp, logp_old, A);
    if (cfg->type == LOSS_GRPO && b->logp_ref != NULL) {
        double dk;
        tl.k3 = k3_kl(logp, b->logp_ref[t], &dk);
        tl.l += cfg->kl_beta * tl.k3;
        tl.dl += cfg->kl_beta * dk;
    }
    return tl;
}

/* loss and dlogp(T) for weights w(T) */
PolicyLossStats policy_loss_compute(const PolicyLossConfig *cfg, const PolicyLossBatch *b, const float *w,
                                    float *dlogp) {
    CHECK(cfg != NULL && b != NULL && w != NULL && dlogp != NULL, "policy_loss_compute: NULL argument");
    CHECK(b->n_seq >= 0 && b->off != NULL && b->off[0] == 0, "policy_loss_compute: bad offsets (n_seq=%d)", b->n_seq);
    CHECK(b->off[b->n_seq] == 0 || (b->logp_new != NULL && b->logp_old != NULL && b->adv != NULL),
          "policy_loss_compute: logp_new, logp_old and adv are required");
    check_config(cfg, b);
    PolicyLossStats st = {0};
    double loss = 0.0, kl = 0.0, rsum = 0.0;
    long clipped = 0;
    for (int i = 0; i < b->n_seq; i++) {
        CHECK(b->off[i + 1] >= b->off[i], "policy_loss_compute: off[%d]=%d < off[%d]=%d", i + 1, b->off[i + 1], i,
              b->off[i]);
        double A = b->adv[i];
        for (int t = b->off[i]; t < b->off[i + 1]; t++) {
            dlogp[t] = 0.0f;
            if (b->mask != NULL && b->mask[t] == 0.0f) continue;
            TokLoss tl = tok_loss(cfg, b, t, A);
            loss += (double)w[t] * tl.l;
            dlogp[t] = (float)((double)w[t] * tl.dl);
            kl += tl.k3;
            rsum += tl.r;
            if (st.n_tokens == 0 || tl.r > st.ratio_max) st.ratio_max = tl.r;
            clipped += tl.clipped;
            st.n_tokens++;
        }
    }
    st.loss = loss;
    if (st.n_tokens > 0) {
        st.clip_frac = (double)clipped / st.n_tokens;
        st.kl = kl / st.n_tokens;
        st.ratio_mean = rsum / st.n_tokens;
    }
    return st;
}

/* DAPO Eq. 13 with L_max = max_len, L_cache = cache_len */
float dapo_overlong_penalty(int len, int max_len, int cache_len) {
    CHECK(max_len > 0 && cache_len >= 0 && cache_len <= max_len,
          "dapo_overlong_penalty: need 0 <= cache_len (%d) <= max_len (%d), max_len > 0", cache_len, max_len);
    int start = max_len - cache_len;
    if (len <= start) return 0.0f;
    if (len > max_len) return -1.0f;
    return (float)((double)(start - len) / cache_len);
}
