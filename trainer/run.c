/* trainer/run.c: see run.h. Buffer sizes come from the problems themselves: the longest prompt
 * and SFT sequence over a sample of problems at the top difficulty (plus margin) bound what the
 * model and generator must hold. */
#include "trainer/run.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "model/chat_template.h"
#include "trainer/code_setup.h"
#include "trainer/model_setup.h"

/* Longest prompt and SFT sequence over sampled training and held-out problems. */
static void measure_lengths(Run *r, int *max_prompt, int *max_sft) {
    int buf[4096], np, best_p = 0, best_s = 0;
    Problem p;
    for (int i = 0; i < 512; i++) {
        if (i < r->ps.eval_size) problems_eval(&r->ps, i, &p);
        else problems_train(&r->ps, (uint64_t)i, &p);
        int n = problems_sft_tokens(&r->tok, &p, buf, 4096, &np);
        CHECK(n > 0, "problem %d longer than 4096 tokens", i);
        if (np > best_p) best_p = np;
        if (n > best_s) best_s = n;
    }
    *max_prompt = best_p + best_p / 4 + 8;
    *max_sft = best_s + best_s / 4 + 8;
}

int run_open(Run *r, const RunConfig *rc, const char *model_dir, int write_config) {
    memset(r, 0, sizeof(*r));
    r->rc = *rc;
    if (model_dir) snprintf(r->rc.model_path, sizeof r->rc.model_path, "%s", model_dir);
    int err = fs_mkdir_p(r->rc.dir);
    if (err) return err;
    if (write_config && (err = run_save_config(r))) return err;
    if ((err = tokenizer_open(&r->tok, r->rc.tokenizer, r->rc.chat_template, r->rc.system_prompt))) return err;
    if (r->tok.eos < 0)
        return err_set(ERR_CONFIG, "model.tokenizer %s names no EOS token\nHINT: put its tokenizer_config.json "
                                   "beside it, or set data.chat_template", r->rc.tokenizer);
    if ((err = problems_init(&r->ps, &r->rc))) return err;
    if ((err = run_code_open(r))) return err;
    measure_lengths(r, &r->max_prompt, &r->max_sft);
    if ((err = run_curriculum_init(&r->cur, &r->rc, &r->ps))) return err;
    const RunConfig *c = &r->rc;
    r->gen_batch = c->prompts_per_step * c->group_size;
    if (r->gen_batch < c->eval_k) r->gen_batch = c->eval_k;
    r->mb_seqs = (c->prompts_per_step * c->group_size + c->minibatches - 1) / c->minibatches;
    int rl_len = r->max_prompt + c->rl_max_new;
    long need = (long)r->mb_seqs * rl_len, sft = (long)c->sft_batch * r->max_sft;
    if (sft > need) need = sft;
    if (need < (long)r->gen_batch * r->max_prompt) need = (long)r->gen_batch * r->max_prompt; /* prefill */
    int max_seqs = r->gen_batch > c->sft_batch ? r->gen_batch : c->sft_batch;
    if (max_seqs < r->mb_seqs) max_seqs = r->mb_seqs;
    if (rl_len > c->max_seq_len)
        return err_set(ERR_CONFIG, "prompts of up to %d tokens + rollout.max_new_tokens %d exceed model.max_seq_len %d",
                       r->max_prompt, c->rl_max_new, c->max_seq_len);
    if ((err = model_setup(&r->rc, &r->ctx, &r->m, (int)need, max_seqs))) return err;
    if (r->m.cfg.vocab_size < r->tok.vocab_size)
        return err_set(ERR_CONFIG, "the model's vocabulary (%d) is smaller than the tokenizer's (%d)",
                       r->m.cfg.vocab_size, r->tok.vocab_size);
    if ((err = generator_init(&r->gen, &r->m, r->gen_batch, r->max_prompt, c->rl_max_new))) return err;
    log_info("run: %s, prompts <= %d tokens, SFT sequences <= %d, learner batches of <= %ld tokens", r->rc.dir,
             r->max_prompt, r->max_sft, need);
    return 0;
}

int run_save_config(const Run *r) {
    char path[1024], tmp[1100];
    snprintf(path, sizeof path, "%s/config.yaml", r->rc.dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return err_set(ERR_IO, "cannot write %s", tmp);
    run_config_print(f, &r->rc);
    if (fclose(f) != 0 || rename(tmp, path) != 0) return err_set(ERR_IO, "cannot write %s", path);
    return 0;
}

void run_close(Run *r) {
    if (!r) return;
    generator_free(&r->gen);
    model_free(&r->m);
    kernel_ctx_free(&r->ctx);
    problems_free(&r->ps);
    tokenizer_free(&r->tok);
    run_curriculum_free(&r->cur);
    run_code_close(r);
}
