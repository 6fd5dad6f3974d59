/* trainer/run_config.h: the validated run configuration (DESIGN.md §1: one config, printed at
 * start, saved in every checkpoint). Fields are filled from a YAML file plus `section.key=value`
 * overrides through the schema in run_config.c (core/config engine). Later issues add sections.
 */
#ifndef CISPO_TRAINER_RUN_CONFIG_H
#define CISPO_TRAINER_RUN_CONFIG_H

#include <stdio.h>

#include "core/config.h"

typedef struct {
    /* run: */
    long long seed;     /* run.seed: master seed of every random stream */
    char dir[512];      /* run.dir: run directory (created) */
    int threads;        /* run.threads: OpenBLAS threads (0 = all cores) */
    char backend[16];   /* run.backend: cpu | cuda */
    char log_level[16]; /* run.log_level: debug | info | warn | error */
    char precision[8];  /* run.precision: auto | fp32 | bf16 (GEMM inputs of the body; auto = bf16 on cuda) */

    /* model: either an HF directory (model.path) or a built-in architecture */
    char model_path[512];    /* model.path: HF model dir; empty = build from the fields below */
    char tokenizer[512];     /* model.tokenizer: tokenizer.json path; empty = byte tokenizer */
    char family[16];         /* model.family: minimax | qwen2 | llama */
    int vocab_size;          /* model.vocab_size */
    int hidden_size;         /* model.hidden_size */
    int intermediate_size;   /* model.intermediate_size */
    int num_layers;          /* model.num_layers */
    int num_heads;           /* model.num_heads */
    int num_kv_heads;        /* model.num_kv_heads */
    int head_dim;            /* model.head_dim */
    int full_attn_every;     /* model.full_attn_every: MiniMax layer i is softmax when i % n == n-1 */
    int block_size;          /* model.block_size */
    int num_experts;         /* model.num_experts */
    int experts_per_tok;     /* model.experts_per_tok */
    double rope_theta;       /* model.rope_theta */
    double init_std;         /* model.init_std */
    int tie_embeddings;      /* model.tie_embeddings */
    int max_seq_len;         /* model.max_seq_len: longest prompt + response the buffers hold */
    char lm_head_dtype[8];   /* model.lm_head_dtype: fp32 | bf16 (generation's logits rounded to BF16; learner FP32) */

    /* generate: */
    char prompt[1024];       /* generate.prompt */
    int max_new_tokens;      /* generate.max_new_tokens */
    double temperature;      /* generate.temperature (0 = greedy) */
    double top_p;            /* generate.top_p */
    int num_samples;         /* generate.num_samples: sequences decoded together */

    /* data: where problems come from */
    char tasks[256];         /* data.tasks: comma-separated task families ("runsum,add") */
    int difficulty_min;      /* data.difficulty_min */
    int difficulty_max;      /* data.difficulty_max */
    char jsonl[512];         /* data.jsonl: a JSONL dataset used instead of data.tasks when set */
    char chat_template[16];  /* data.chat_template: none | chatml | minimax */
    char system_prompt[1024];/* data.system_prompt: the chat template's system turn */
    int strict;              /* data.strict: a malformed dataset line stops the run */
    long long eval_seed;     /* data.eval_seed: seed of the held-out problems (never trained on) */
    int eval_size;           /* data.eval_size: held-out problems per evaluation */

    /* sft: supervised warm start on the tasks' worked solutions */
    int sft_steps;           /* sft.steps */
    int sft_batch;           /* sft.batch_size: sequences per step */
    double sft_lr;           /* sft.lr */
    int sft_warmup;          /* sft.warmup_steps */
    double sft_noise;        /* sft.noise: probability of a slip per reasoning step in the demonstrations */

    /* rl: the RL loop */
    int sft_first;           /* rl.sft_first: run SFT before RL (else start from model.path) */
    char algo[16];           /* rl.algo: cispo | ppo | grpo | dapo */
    int rl_steps;            /* rl.steps: generation batches */
    int prompts_per_step;    /* rl.prompts_per_step: groups per generation batch */
    int group_size;          /* rl.group_size: G responses per prompt */
    int minibatches;         /* rl.minibatches: optimizer updates per generation batch */
    double lr;               /* rl.lr */
    int warmup_steps;        /* rl.warmup_steps */
    double weight_decay;     /* rl.weight_decay */
    double grad_clip;        /* rl.grad_clip */
    double beta1, beta2, adam_eps; /* rl.beta1, rl.beta2, rl.adam_eps (M1: 0.9, 0.95, 1e-15) */
    char old_logp[16];       /* rl.old_logp: learner | rollout */
    int dynamic_sampling;    /* rl.dynamic_sampling: drop groups whose rewards are all equal */
    int max_gen_batches;     /* rl.max_gen_batches: generation rounds to fill one batch (0 = unlimited) */
    char adv_std[16];        /* rl.adv_std: sample | population | none */
    double adv_eps;          /* rl.adv_eps */
    int eval_every;          /* rl.eval_every: held-out evaluation every n steps (0 = before and after only) */

    /* loss */
    double cispo_c_high;     /* loss.cispo_c_high: absolute upper bound on the IS weight */
    double cispo_c_low;      /* loss.cispo_c_low: absolute lower bound (0 = none) */
    int cispo_mask;          /* loss.cispo_mask: the unified token mask of M1 Eq. 7 */
    double eps_low, eps_high;/* loss.eps_low, loss.eps_high: PPO/GRPO/DAPO clip offsets (and the mask's) */
    double dual_clip_c;      /* loss.dual_clip_c: PPO dual clip (0 = off) */
    double kl_beta;          /* loss.kl_beta: GRPO k3 KL coefficient */
    char agg[32];            /* loss.agg: token-mean | seq-mean-token-mean | seq-mean-token-sum-norm | mixed */
    double agg_alpha;        /* loss.agg_alpha: weight of token-mean in mixed */
    int overlong;            /* loss.overlong_penalty: DAPO soft overlong punishment */
    int overlong_cache;      /* loss.overlong_cache: its ramp length in tokens */

    /* rollout */
    double rl_temperature;   /* rollout.temperature */
    double rl_top_p;         /* rollout.top_p */
    int rl_max_new;          /* rollout.max_new_tokens: output budget */
    int rep_count;           /* rollout.rep_count: repetition stop after this many tokens ... */
    double rep_prob;         /* rollout.rep_prob: ... each with probability above this */
    int dump_every;          /* rollout.dump_every: write RUN_DIR/rollouts/step_N.h5 every n steps (0 = never) */

    /* reward */
    double reward_correct, reward_wrong, reward_format; /* reward.correct, reward.wrong, reward.format_penalty */
    char genrm_mode[16];     /* reward.genrm_mode: off | pairwise | grade (rewards/genrm.h) */
    char genrm_path[512];    /* reward.genrm_path: the judge: a run dir, checkpoint dir or HF model dir */
    int genrm_swap;          /* reward.genrm_swap: judge twice, the two texts in both orders */
    int genrm_max_new;       /* reward.genrm_max_new: the judge's output budget (tokens) */
    /* reward.code_*: code tasks in the sandbox (trainer/code_setup.h) */
    int code_all_or_nothing; /* reward.code_all_or_nothing: 0/1 reward instead of the fraction of tests passed */
    int code_wall_ms, code_cpu_s, code_mem_mib, code_pids, code_output_kib; /* limits of one test run */
    char code_work_root[256]; /* reward.code_work_root: parent of the per-response folders */

    /* ckpt: checkpoints (trainer/train_ckpt.h) */
    int ckpt_every;          /* ckpt.every: steps between checkpoints in SFT and RL (0 = only at phase ends) */
    int ckpt_keep_last;      /* ckpt.keep_last */
    int ckpt_keep_every;     /* ckpt.keep_every: also keep checkpoints whose global step is a multiple (0 = none) */

    /* dist: multi-rank runs under mpirun (trainer/dist.h) */
    int dist_colocated;      /* dist.colocated: every rank generates and learns */
    int dist_rollout_ranks;  /* dist.rollout_ranks: disaggregated: ranks that generate */
    int dist_learner_ranks;  /* dist.learner_ranks: disaggregated: ranks that learn (data-parallel) */
    int dist_max_staleness;  /* dist.max_staleness: updates a rollout's weights may lag (0 = on-policy) */
    double dist_timeout_s;   /* dist.timeout_s: watchdog deadline on progress (0 = off) */

    /* eval */
    int eval_k;              /* eval.samples: samples per problem (pass@1 = mean, pass@k) */
    double eval_temperature; /* eval.temperature */
    double eval_top_p;       /* eval.top_p */

    /* curriculum: output budget and task curriculum (curricula/budget.h, curricula/task_curriculum.h) */
    char budget_stages[256]; /* curriculum.budget_stages: increasing budgets; "" = fixed rollout.max_new_tokens */
    int ppl_window;          /* curriculum.ppl_window: moving-average window of generation perplexity */
    double ppl_tol;          /* curriculum.ppl_tol: plateau = relative change of the average below this */
    double p99_frac;         /* curriculum.p99_frac: p99 length must reach this fraction of the budget */
    int min_stage_steps;     /* curriculum.min_stage_steps */
    char mix_start[256];     /* curriculum.mix_start: family weights at step 0 ("" = equal) */
    char mix_end[256];       /* curriculum.mix_end: family weights after mix_steps ("" = mix_start) */
    int mix_steps;           /* curriculum.mix_steps */
    int diff_window;         /* curriculum.difficulty_window: levels drawn at once (0 = off) */
    double master_rate;      /* curriculum.master_rate */
    int master_samples;      /* curriculum.master_samples */
    int pass_filter;         /* curriculum.pass_filter */
    double pass_upper;       /* curriculum.pass_upper */
    int pass_min_samples;    /* curriculum.pass_min_samples */
    int pass_capacity;       /* curriculum.pass_capacity */
} RunConfig;

/* Defaults, then `path` (may be NULL), then each override "section.key=value" in order, then
 * validation. Errors name the file, line and key (or "command line" for overrides). */
int run_config_load(RunConfig *rc, const char *path, int n_overrides, char *const *overrides);
/* Print the effective config as YAML that run_config_load reads back to the same values. */
void run_config_print(FILE *f, const RunConfig *rc);
/* The schema (for docs and tests). */
const ConfigSchema *run_config_schema(void);

#endif
