/* trainer/loss_agg.c: the loss aggregation modes as per-token weights w_t, so that the loss is
 * sum_t w_t l_t (ALGORITHMS.md §1 "loss aggregation", §3.2, §3.4, §4 reading (a)).
 *
 * Only counted tokens (mask != 0, or every token when the mask is NULL) take part: a masked token
 * gets w = 0 and is left out of every count, and a response with no counted token is left out of
 * the sequence count. With n_tok counted tokens, n_seq responses that have at least one, and |o_i|
 * the counted tokens of response i:
 *   TOKEN_MEAN               w = 1 / n_tok
 *   SEQ_MEAN_TOKEN_MEAN      w = 1 / (n_seq |o_i|)
 *   SEQ_MEAN_TOKEN_SUM_NORM  w = 1 / (n_seq max_len)          (Dr. GRPO's constant)
 *   MIXED                    w = alpha / n_tok + (1 - alpha) / (n_seq |o_i|)
 * n_tok_total / n_seq_total > 0 replace n_tok / n_seq (normalisers over a whole generation batch
 * or all ranks); |o_i| is always the response's own count. Weights are computed in double.
 */
#include "trainer/policy_loss.h"

#include <stddef.h>

#include "core/error.h"

static int counted(const PolicyLossBatch *b, int t) { return b->mask == NULL || b->mask[t] != 0.0f; }

/* counted tokens of response i */
static long seq_tokens(const PolicyLossBatch *b, int i) {
    long n = 0;
    for (int t = b->off[i]; t < b->off[i + 1]; t++) n += counted(b, t);
    return n;
}

static double token_weight(const PolicyLossConfig *cfg, long n_tok, long n_seq, long len_i) {
    double tok = 1.0 / (double)n_tok, seq = 1.0 / ((double)n_seq * (double)len_i);
    switch (cfg->agg) {
    case AGG_TOKEN_MEAN: return tok;
    case AGG_SEQ_MEAN_TOKEN_MEAN: return seq;
    case AGG_SEQ_MEAN_TOKEN_SUM_NORM: return 1.0 / ((double)n_seq * (double)cfg->max_len);
    case AGG_MIXED: return cfg->agg_alpha * tok + (1.0 - cfg->agg_alpha) * seq;
    }
    return 0.0;
}

/* w(T) for the batch's tokens */
void policy_loss_weights(const PolicyLossConfig *cfg, const PolicyLossBatch *b, long n_seq_total, long n_tok_total,
                         float *w) {
    CHECK(cfg != NULL && b != NULL && b->off != NULL && (w != NULL || b->n_seq == 0),
          "policy_loss_weights: NULL argument");
    CHECK(cfg->agg == AGG_TOKEN_MEAN || cfg->agg == AGG_SEQ_MEAN_TOKEN_MEAN ||
              cfg->agg == AGG_SEQ_MEAN_TOKEN_SUM_NORM || cfg->agg == AGG_MIXED,
          "policy_loss_weights: unknown aggregation %d", (int)cfg->agg);
    CHECK(cfg->agg != AGG_SEQ_MEAN_TOKEN_SUM_NORM || cfg->max_len > 0,
          "policy_loss_weights: seq-mean-token-sum-norm needs max_len > 0 (got %d)", cfg->max_len);
    CHECK(cfg->agg != AGG_MIXED || (cfg->agg_alpha >= 0.0 && cfg->agg_alpha <= 1.0),
          "policy_loss_weights: agg_alpha=%g must lie in [0, 1]", cfg->agg_alpha);
    long n_tok = 0, n_seq = 0;
    for (int i = 0; i < b->n_seq; i++) {
        CHECK(b->off[i + 1] >= b->off[i], "policy_loss_weights: off[%d]=%d < off[%d]=%d", i + 1, b->off[i + 1], i,
              b->off[i]);
        long len = seq_tokens(b, i);
        n_tok += len;
        n_seq += len > 0;
    }
    if (n_tok_total > 0) n_tok = n_tok_total;
    if (n_seq_total > 0) n_seq = n_seq_total;
    for (int i = 0; i < b->n_seq; i++) {
        long len = seq_tokens(b, i);
        double wi = len > 0 ? token_weight(cfg, n_tok, n_seq, len) : 0.0;
        for (int t = b->off[i]; t < b->off[i + 1]; t++) w[t] = counted(b, t) ? (float)wi : 0.0f;
    }
}
