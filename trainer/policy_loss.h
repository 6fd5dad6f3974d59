/* trainer/policy_loss.h: the per-token policy losses of CISPO, PPO-clip (+ dual clip), GRPO
 * (+ k3 KL to a reference) and DAPO (decoupled clip), and the loss aggregation modes
 * (ALGORITHMS.md §2-§4). Everything works on per-token log-probs, so the model stays unaware of
 * the algorithm: the learner gets logp_new from model_forward, calls policy_loss_compute, and
 * feeds dlogp back into model_backward.
 *
 * Per token t of response i, with r = exp(clamp(logp_new - logp_old, -20, 20)) and advantage A:
 *   CISPO: l = -sg(r_hat) * A * logp_new * M,  r_hat = min(r, c_high) (and max(., c_low) when
 *          c_low > 0); bounds are ABSOLUTE ratios; M is the optional unified token mask of §2.3
 *          (mask_eps_low/high offsets); dl/dlogp_new = -r_hat * A * M.
 *   PPO / DAPO: l = max(-A r, -A clip(r, 1-eps_low, 1+eps_high)); with dual_clip_c > 1 and A < 0,
 *          l = min(l, -A c). dl/dlogp_new = -A r where the unclipped branch is active, else 0.
 *   GRPO: the PPO term + beta * k3, k3 = e^x - x - 1 with x = clamp(logp_ref - logp_new, -20, 20)
 *          (result clamped to [-10, 10] as verl); dk3/dlogp_new = 1 - e^x.
 * Aggregation turns per-token l into the loss with weights w_t (sum of w_t l_t):
 *   TOKEN_MEAN: 1 / (total response tokens in the batch);
 *   SEQ_MEAN_TOKEN_MEAN: 1 / (n_seq * |o_i|);
 *   SEQ_MEAN_TOKEN_SUM_NORM: 1 / (n_seq * max_len) (Dr. GRPO's constant, max_len from the config);
 *   MIXED: alpha * TOKEN_MEAN + (1 - alpha) * SEQ_MEAN_TOKEN_MEAN (§4 reading (a)).
 */
#ifndef CISPO_TRAINER_POLICY_LOSS_H
#define CISPO_TRAINER_POLICY_LOSS_H

typedef enum { LOSS_CISPO = 0, LOSS_PPO, LOSS_GRPO, LOSS_DAPO } PolicyLossType;
typedef enum { AGG_TOKEN_MEAN = 0, AGG_SEQ_MEAN_TOKEN_MEAN, AGG_SEQ_MEAN_TOKEN_SUM_NORM, AGG_MIXED } LossAgg;

typedef struct {
    PolicyLossType type;
    /* CISPO */
    double cispo_c_high; /* absolute upper bound on the IS weight (default 1.2? see config) */
    double cispo_c_low;  /* absolute lower bound; 0 = none */
    int cispo_mask;      /* apply the unified token mask M (§2.3) */
    double mask_eps_low, mask_eps_high;
    /* PPO / GRPO / DAPO */
    double eps_low, eps_high; /* offsets: clip(r, 1-eps_low, 1+eps_high) */
    double dual_clip_c;       /* > 1 enables dual clip for A < 0; 0 = off */
    double kl_beta;           /* GRPO k3 coefficient */
    /* aggregation */
    LossAgg agg;
    double agg_alpha;         /* MIXED */
    int max_len;              /* SEQ_MEAN_TOKEN_SUM_NORM's constant */
} PolicyLossConfig;

/* One mini-batch of n_seq responses whose tokens are laid out contiguously: response i owns
 * entries [off[i], off[i+1]) of the per-token arrays. */
typedef struct {
    int n_seq;
    const int *off;        /* (n_seq+1) */
    const float *logp_new; /* (T) */
    const float *logp_old; /* (T) */
    const float *logp_ref; /* (T) or NULL (GRPO needs it) */
    const float *adv;      /* (n_seq) advantage of each response (broadcast to its tokens) */
    const float *mask;     /* (T) 1 = token counts, 0 = excluded (e.g. overlong filtering); NULL = all */
} PolicyLossBatch;

typedef struct {
    double loss;        /* sum_t w_t l_t */
    double clip_frac;   /* fraction of counted tokens whose ratio was clipped (or masked out) */
    double kl;          /* mean k3 over counted tokens (GRPO; 0 otherwise) */
    double ratio_mean, ratio_max;
    int n_tokens;       /* counted tokens */
} PolicyLossStats;

/* Normaliser weights w (T) for the batch under cfg->agg (tokens with mask 0 get 0 and do not
 * count in the token totals). `n_seq_total`/`n_tok_total` > 0 override the batch's own counts
 * (batch-global normalisers across mini-batches or ranks); pass 0 to use the batch's. */
void policy_loss_weights(const PolicyLossConfig *cfg, const PolicyLossBatch *b, long n_seq_total, long n_tok_total,
                         float *w);
/* Loss and dL/dlogp_new (T) for weights w; returns the statistics. dlogp is overwritten. */
PolicyLossStats policy_loss_compute(const PolicyLossConfig *cfg, const PolicyLossBatch *b, const float *w,
                                    float *dlogp);

/* DAPO's soft overlong punishment (Eq. 13): 0 up to max_len - cache_len, then a linear ramp to -1
 * at max_len, -1 beyond. */
float dapo_overlong_penalty(int len, int max_len, int cache_len);

#endif
