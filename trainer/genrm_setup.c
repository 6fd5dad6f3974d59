/* trainer/genrm_setup.c: see genrm_setup.h. */
#include "trainer/genrm_setup.h"

#include <stdio.h>
#include <string.h>

#include "checkpoints/ckpt.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "trainer/train_ckpt.h"

/* The directory holding the judge's weights: a run dir's newest checkpoint, else its final_model or
 * sft_model (what `cispo train` / `cispo sft` save), else path itself. */
static int judge_dir(const char *path, char *out, size_t cap) {
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/checkpoints", path);
    if (fs_is_dir(sub) && ckpt_find_latest(path, out, cap) == 0) return 0;
    static const char *const saved[2] = {"final_model", "sft_model"};
    for (int i = 0; i < 2; i++) {
        snprintf(sub, sizeof sub, "%s/%s/config.json", path, saved[i]);
        if (fs_exists(sub)) {
            snprintf(out, cap, "%s/%s", path, saved[i]);
            return 0;
        }
    }
    snprintf(out, cap, "%s", path);
    return 0;
}

static int load_model(GenrmJudge *j, const RunConfig *rc, const char *dir, int max_tokens, int max_seqs) {
    const KernelOps *ops = strcmp(rc->backend, "cuda") == 0 ? kernels_cuda() : kernels_cpu();
    if (!ops) return err_set(ERR_UNSUPPORTED, "reward.genrm_path: backend %s is not available", rc->backend);
    char cfg_path[1200], h5[1200];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(h5, sizeof h5, "%s/model.h5", dir);
    ModelConfig cfg;
    int err = model_config_load_hf(&cfg, cfg_path);
    if (err) return err_wrap(err, "reward.genrm_path: the judge's config");
    kernel_ctx_init(&j->ctx, ops, model_ws_bytes(&cfg, ops, max_tokens));
    if (fs_exists(h5)) {
        err = model_init(&j->m, &cfg, &j->ctx, max_tokens, max_seqs);
        if (!err && (err = train_ckpt_load_params(dir, &j->ctx, &j->m))) model_free(&j->m);
    } else {
        err = model_load_hf(&j->m, dir, &j->ctx, max_tokens, max_seqs);
    }
    if (err) kernel_ctx_free(&j->ctx);
    return err;
}

int genrm_judge_open(GenrmJudge *j, const RunConfig *rc, const Tokenizer *tok, int max_batch, int max_prompt) {
    memset(j, 0, sizeof(*j));
    int mode = genrm_mode_parse(rc->genrm_mode);
    if (mode <= GENRM_OFF) return err_set(ERR_CONFIG, "reward.genrm_mode is %s: no judge to open", rc->genrm_mode);
    char dir[1100];
    int err = judge_dir(rc->genrm_path, dir, sizeof dir);
    if (err) return err_wrap(err, "reward.genrm_path %s", rc->genrm_path);
    if ((err = load_model(j, rc, dir, genrm_model_tokens(max_batch, max_prompt), max_batch)))
        return err_wrap(err, "reward.genrm_path %s", dir);
    if (j->m.cfg.vocab_size < tok->vocab_size) {
        model_free(&j->m), kernel_ctx_free(&j->ctx);
        return err_set(ERR_CONFIG, "reward.genrm_path %s: the judge's vocabulary (%d) is smaller than the tokenizer's (%d)",
                       dir, j->m.cfg.vocab_size, tok->vocab_size);
    }
    GenrmConfig gc = {(GenrmMode)mode, rc->genrm_swap, rc->genrm_max_new, (float)rc->reward_correct,
                      (float)rc->reward_wrong};
    if ((err = genrm_init(&j->g, &j->m, tok, &gc, max_batch, max_prompt))) {
        model_free(&j->m), kernel_ctx_free(&j->ctx);
        return err;
    }
    j->open = 1;
    log_info("genrm: %s judge from %s (%zu parameters), swap %s", rc->genrm_mode, dir, j->m.n_params,
             rc->genrm_swap ? "on" : "off");
    return 0;
}

void genrm_judge_close(GenrmJudge *j) {
    if (!j || !j->open) return;
    genrm_free(&j->g);
    model_free(&j->m);
    kernel_ctx_free(&j->ctx);
    j->open = 0;
}
