/* trainer/run_config.c: the RunConfig schema and its loader (see run_config.h).
 *
 * One ConfigField table (offsetof into RunConfig) is the single source of every key, default,
 * range and help line; core/config does the parsing and the per-value checks. Loading is
 * defaults -> YAML file -> overrides in order -> cross-field validation, so a later source wins.
 *
 * The defaults describe the demo-sized MiniMax hybrid of ALGORITHMS.md §11.5: byte vocabulary
 * (256 bytes + 16 specials), hidden 128, 4 layers with softmax attention every 4th (layers 0-2
 * lightning, layer 3 softmax), 4 query heads over 2 KV heads of size 32, 4 experts with top-2
 * routing, rope_theta 1e7 as in M1. configs/demo.yaml spells out the same values.
 */
#include "trainer/run_config.h"

#include <stddef.h>
#include <string.h>

#include "core/error.h"

#define F(key, type, field, def, lo, hi, choices, help) \
    {key, type, offsetof(RunConfig, field), sizeof(((RunConfig *)0)->field), def, lo, hi, choices, help}

/* Ranges "1, 0" (min > max) mean unbounded: strings, enums, bools and the seed. */
static const ConfigField kRunSchema[] = {
    F("run.seed", CFG_INT64, seed, "1", 1, 0, NULL, "master seed of every random stream"),
    F("run.dir", CFG_STRING, dir, "runs/demo", 1, 0, NULL, "run directory (created)"),
    F("run.threads", CFG_INT, threads, "0", 0, 4096, NULL,
      "OpenBLAS threads (0 = all cores)"),
    F("run.backend", CFG_ENUM, backend, "cpu", 1, 0, "cpu|cuda", "compute backend"),
    F("run.log_level", CFG_ENUM, log_level, "info", 1, 0, "debug|info|warn|error", "log verbosity"),
    F("run.precision", CFG_ENUM, precision, "auto", 1, 0, "auto|fp32|bf16",
      "GEMM math of the model body: bf16 inputs + fp32 accumulation (cuda only); auto = bf16 on cuda, fp32 on cpu"),

    F("model.path", CFG_STRING, model_path, "", 1, 0, NULL,
      "Hugging Face model dir; empty = build from the fields below"),
    F("model.tokenizer", CFG_STRING, tokenizer, "", 1, 0, NULL,
      "Hugging Face tokenizer.json (byte-level BPE); empty = the built-in byte tokenizer"),
    F("model.family", CFG_ENUM, family, "minimax", 1, 0, "minimax|qwen2|llama", "architecture"),
    F("model.vocab_size", CFG_INT, vocab_size, "272", 2, 1 << 24, NULL, "256 bytes + 16 specials"),
    F("model.hidden_size", CFG_INT, hidden_size, "128", 8, 65536, NULL, "model width C"),
    F("model.intermediate_size", CFG_INT, intermediate_size, "192", 1, 1 << 20, NULL, "expert MLP width"),
    F("model.num_layers", CFG_INT, num_layers, "4", 1, 1024, NULL, "decoder layers L"),
    F("model.num_heads", CFG_INT, num_heads, "4", 1, 1024, NULL, "query heads NH"),
    F("model.num_kv_heads", CFG_INT, num_kv_heads, "2", 1, 1024, NULL, "key/value heads (GQA)"),
    F("model.head_dim", CFG_INT, head_dim, "32", 2, 1024, NULL, "head size HS (even, for RoPE)"),
    F("model.full_attn_every", CFG_INT, full_attn_every, "4", 1, 1024, NULL,
      "layer i uses softmax attention when i % n == n-1, else lightning"),
    F("model.block_size", CFG_INT, block_size, "64", 1, 65536, NULL, "lightning attention block size"),
    F("model.num_experts", CFG_INT, num_experts, "4", 1, 1024, NULL, "MoE experts E"),
    F("model.experts_per_tok", CFG_INT, experts_per_tok, "2", 1, 1024, NULL, "experts per token K (top-k)"),
    F("model.rope_theta", CFG_FLOAT, rope_theta, "1e7", 1, 1e12, NULL, "RoPE base (M1: 1e7)"),
    F("model.init_std", CFG_FLOAT, init_std, "0.02", 0, 10, NULL, "std of the random init"),
    F("model.tie_embeddings", CFG_BOOL, tie_embeddings, "false", 1, 0, NULL, "share embedding and LM head"),
    F("model.max_seq_len", CFG_INT, max_seq_len, "512", 1, 1 << 24, NULL,
      "longest prompt + response the buffers hold"),
    F("model.lm_head_dtype", CFG_ENUM, lm_head_dtype, "fp32", 1, 0, "fp32|bf16",
      "generation's LM head: fp32 (faithful) or bf16-rounded logits, the learner staying fp32 (M1's mismatch)"),

    F("generate.prompt", CFG_STRING, prompt, "The quick brown fox", 1, 0, NULL, "prompt text"),
    F("generate.max_new_tokens", CFG_INT, max_new_tokens, "64", 1, 1 << 24, NULL, "tokens to generate"),
    F("generate.temperature", CFG_FLOAT, temperature, "1.0", 0, 10, NULL, "sampling temperature (0 = greedy)"),
    F("generate.top_p", CFG_FLOAT, top_p, "0.95", 1e-6, 1, NULL, "nucleus sampling mass"),
    F("generate.num_samples", CFG_INT, num_samples, "4", 1, 65536, NULL, "sequences decoded together"),


    F("data.tasks", CFG_STRING, tasks, "runsum", 1, 0, NULL, "comma-separated task families (add, mul, runsum, ...)"),
    F("data.difficulty_min", CFG_INT, difficulty_min, "3", 1, 1000, NULL, "lowest difficulty drawn"),
    F("data.difficulty_max", CFG_INT, difficulty_max, "6", 1, 1000, NULL, "highest difficulty drawn"),
    F("data.jsonl", CFG_STRING, jsonl, "", 1, 0, NULL, "JSONL dataset ({prompt, answer}) used instead of data.tasks"),
    F("data.chat_template", CFG_ENUM, chat_template, "none", 1, 0, "none|chatml|minimax",
      "prompt format: none (BOS + prompt), chatml (Qwen2) or minimax (M1); needs model.tokenizer's special tokens"),
    F("data.system_prompt", CFG_STRING, system_prompt,
      "A conversation between User and Assistant. The assistant first thinks about the reasoning process and then "
      "gives the answer, enclosed in <think> </think> and <answer> </answer> tags.",
      1, 0, NULL, "system turn of the chat template (empty = none)"),
    F("data.strict", CFG_BOOL, strict, "false", 1, 0, NULL, "a malformed dataset line stops the run"),
    F("data.eval_seed", CFG_INT64, eval_seed, "1000003", 1, 0, NULL, "seed of the held-out problems"),
    F("data.eval_size", CFG_INT, eval_size, "128", 1, 1 << 20, NULL, "held-out problems per evaluation"),

    F("sft.steps", CFG_INT, sft_steps, "600", 0, 1 << 24, NULL, "supervised steps (0 = none)"),
    F("sft.batch_size", CFG_INT, sft_batch, "32", 1, 1 << 16, NULL, "sequences per SFT step"),
    F("sft.lr", CFG_FLOAT, sft_lr, "2e-3", 0, 1, NULL, "SFT learning rate"),
    F("sft.warmup_steps", CFG_INT, sft_warmup, "20", 0, 1 << 24, NULL, "SFT learning-rate warm-up"),
    F("sft.noise", CFG_FLOAT, sft_noise, "0.05", 0, 1, NULL,
      "probability of a slip per reasoning step in the demonstrations (noisy SFT)"),

    F("rl.sft_first", CFG_BOOL, sft_first, "true", 1, 0, NULL, "run SFT before RL (else start from model.path)"),
    F("rl.algo", CFG_ENUM, algo, "cispo", 1, 0, "cispo|ppo|grpo|dapo", "policy loss"),
    F("rl.steps", CFG_INT, rl_steps, "120", 0, 1 << 24, NULL, "generation batches (RL steps)"),
    F("rl.prompts_per_step", CFG_INT, prompts_per_step, "16", 1, 1 << 16, NULL, "groups per generation batch"),
    F("rl.group_size", CFG_INT, group_size, "8", 1, 4096, NULL, "responses per prompt G"),
    F("rl.minibatches", CFG_INT, minibatches, "4", 1, 4096, NULL, "optimizer updates per generation batch"),
    F("rl.lr", CFG_FLOAT, lr, "1e-4", 0, 1, NULL, "RL learning rate"),
    F("rl.warmup_steps", CFG_INT, warmup_steps, "0", 0, 1 << 24, NULL, "RL learning-rate warm-up (updates)"),
    F("rl.weight_decay", CFG_FLOAT, weight_decay, "0", 0, 10, NULL, "AdamW weight decay"),
    F("rl.grad_clip", CFG_FLOAT, grad_clip, "1.0", 0, 1e9, NULL, "global gradient-norm clip (0 = off)"),
    F("rl.beta1", CFG_FLOAT, beta1, "0.9", 0, 0.999999, NULL, "AdamW beta1"),
    F("rl.beta2", CFG_FLOAT, beta2, "0.95", 0, 0.999999, NULL, "AdamW beta2 (M1: 0.95)"),
    F("rl.adam_eps", CFG_FLOAT, adam_eps, "1e-15", 0, 1, NULL, "AdamW epsilon (M1: 1e-15)"),
    F("rl.old_logp", CFG_ENUM, old_logp, "learner", 1, 0, "learner|rollout",
      "old log-probs: recomputed by the learner, or the rollout's behaviour log-probs"),
    F("rl.dynamic_sampling", CFG_BOOL, dynamic_sampling, "true", 1, 0, NULL,
      "drop groups whose rewards are all equal and sample more (DAPO; M1 uses it)"),
    F("rl.max_gen_batches", CFG_INT, max_gen_batches, "4", 0, 1 << 20, NULL,
      "generation rounds to fill a batch (0 = unlimited)"),
    F("rl.adv_std", CFG_ENUM, adv_std, "sample", 1, 0, "sample|population|none",
      "std estimator of the group advantage (none = Dr. GRPO)"),
    F("rl.adv_eps", CFG_FLOAT, adv_eps, "1e-6", 0, 1, NULL, "added to the group std"),
    F("rl.eval_every", CFG_INT, eval_every, "0", 0, 1 << 24, NULL, "held-out evaluation every n steps (0 = ends only)"),

    F("loss.cispo_c_high", CFG_FLOAT, cispo_c_high, "5.0", 1, 1e9, NULL, "CISPO: absolute upper bound on the IS weight"),
    F("loss.cispo_c_low", CFG_FLOAT, cispo_c_low, "0", 0, 1, NULL, "CISPO: absolute lower bound (0 = none)"),
    F("loss.cispo_mask", CFG_BOOL, cispo_mask, "false", 1, 0, NULL, "CISPO: the unified token mask (M1 Eq. 7)"),
    F("loss.eps_low", CFG_FLOAT, eps_low, "0.2", 0, 1, NULL, "clip offset below 1 (PPO/GRPO/DAPO, mask)"),
    F("loss.eps_high", CFG_FLOAT, eps_high, "0.28", 0, 1e9, NULL, "clip offset above 1 (DAPO clip-higher: 0.28)"),
    F("loss.dual_clip_c", CFG_FLOAT, dual_clip_c, "0", 0, 1e9, NULL, "PPO dual clip constant (0 = off; verl: 3)"),
    F("loss.kl_beta", CFG_FLOAT, kl_beta, "0.04", 0, 100, NULL, "GRPO: k3 KL coefficient"),
    F("loss.agg", CFG_ENUM, agg, "token-mean", 1, 0, "token-mean|seq-mean-token-mean|seq-mean-token-sum-norm|mixed",
      "loss aggregation"),
    F("loss.agg_alpha", CFG_FLOAT, agg_alpha, "0.5", 0, 1, NULL, "mixed: weight of token-mean"),
    F("loss.overlong_penalty", CFG_BOOL, overlong, "false", 1, 0, NULL, "DAPO soft overlong punishment"),
    F("loss.overlong_cache", CFG_INT, overlong_cache, "16", 1, 1 << 24, NULL, "overlong ramp length (tokens)"),

    F("rollout.temperature", CFG_FLOAT, rl_temperature, "1.0", 0, 10, NULL, "sampling temperature of RL rollouts"),
    F("rollout.top_p", CFG_FLOAT, rl_top_p, "1.0", 1e-6, 1, NULL, "nucleus mass of RL rollouts"),
    F("rollout.max_new_tokens", CFG_INT, rl_max_new, "64", 1, 1 << 24, NULL, "output budget per response"),
    F("rollout.rep_count", CFG_INT, rep_count, "3000", 0, 1 << 24, NULL,
      "repetition stop: consecutive tokens (M1: 3000; 0 = off) ..."),
    F("rollout.rep_prob", CFG_FLOAT, rep_prob, "0.99", 0, 1, NULL, "... each with probability above this (M1: 0.99)"),

    F("rollout.dump_every", CFG_INT, dump_every, "0", 0, 1 << 24, NULL,
      "write the step's trajectories to RUN_DIR/rollouts/step_N.h5 every n steps (0 = never)"),

    F("reward.correct", CFG_FLOAT, reward_correct, "1", -1e6, 1e6, NULL, "reward of a correct answer"),
    F("reward.wrong", CFG_FLOAT, reward_wrong, "0", -1e6, 1e6, NULL, "reward of a wrong answer"),
    F("reward.format_penalty", CFG_FLOAT, reward_format, "-0.5", -1e6, 1e6, NULL,
      "added when the answer format is broken"),
    F("reward.genrm_mode", CFG_ENUM, genrm_mode, "off", 1, 0, "off|pairwise|grade",
      "GenRM judge: off (rule verifiers), pairwise (better/same/worse vs the reference: +1/0/-1) or grade (1-5)"),
    F("reward.genrm_path", CFG_STRING, genrm_path, "", 1, 0, NULL,
      "the judge model: a run dir, a checkpoint dir or a Hugging Face dir"),
    F("reward.genrm_swap", CFG_BOOL, genrm_swap, "true", 1, 0, NULL,
      "judge twice with the response and the reference in both orders, and average"),
    F("reward.genrm_max_new", CFG_INT, genrm_max_new, "16", 1, 4096, NULL, "the judge's output budget (tokens)"),
    F("reward.code_all_or_nothing", CFG_BOOL, code_all_or_nothing, "false", 1, 0, NULL,
      "code tasks: reward only a program that passes every test (else the fraction of tests passed)"),
    F("reward.code_wall_ms", CFG_INT, code_wall_ms, "2000", 10, 600000, NULL,
      "code tasks: wall-clock limit of one sandboxed test run (ms)"),
    F("reward.code_cpu_s", CFG_INT, code_cpu_s, "2", 1, 3600, NULL, "code tasks: CPU-time limit of one test run (s)"),
    F("reward.code_mem_mib", CFG_INT, code_mem_mib, "256", 16, 1 << 20, NULL,
      "code tasks: memory cgroup limit of one test run (MiB)"),
    F("reward.code_pids", CFG_INT, code_pids, "64", 4, 1 << 20, NULL,
      "code tasks: processes + threads one test run may hold"),
    F("reward.code_output_kib", CFG_INT, code_output_kib, "1024", 1, 1 << 20, NULL,
      "code tasks: cap on a test run's stdout and stderr (KiB; killed past it)"),
    F("reward.code_work_root", CFG_STRING, code_work_root, "/tmp", 1, 0, NULL,
      "code tasks: folder under which each response's program gets a temporary folder"),

    F("ckpt.every", CFG_INT, ckpt_every, "50", 0, 1 << 24, NULL,
      "steps between checkpoints, in SFT and RL (0 = only at the end of each phase)"),
    F("ckpt.keep_last", CFG_INT, ckpt_keep_last, "2", 1, 1 << 20, NULL, "checkpoints kept (newest)"),
    F("ckpt.keep_every", CFG_INT, ckpt_keep_every, "0", 0, 1 << 24, NULL,
      "also keep checkpoints whose global step is a multiple of this (0 = none)"),

    F("dist.colocated", CFG_BOOL, dist_colocated, "true", 1, 0, NULL,
      "multi-rank runs: every rank generates and learns (false: rollout_ranks + learner_ranks)"),
    F("dist.rollout_ranks", CFG_INT, dist_rollout_ranks, "0", 0, 1 << 20, NULL,
      "disaggregated: ranks that only generate (the last ones)"),
    F("dist.learner_ranks", CFG_INT, dist_learner_ranks, "0", 0, 1 << 20, NULL,
      "disaggregated: data-parallel ranks that learn (the first ones)"),
    F("dist.max_staleness", CFG_INT, dist_max_staleness, "0", 0, 1 << 20, NULL,
      "updates a rollout rank's weights may lag behind the learners (0 = on-policy)"),
    F("dist.timeout_s", CFG_FLOAT, dist_timeout_s, "1800", 0, 1e9, NULL,
      "watchdog: a rank without progress this long ends the job (0 = off)"),

    F("eval.samples", CFG_INT, eval_k, "4", 1, 4096, NULL, "samples per held-out problem (pass@1 = mean)"),
    F("eval.temperature", CFG_FLOAT, eval_temperature, "1.0", 0, 10, NULL, "evaluation temperature (M1: 1.0)"),
    F("eval.top_p", CFG_FLOAT, eval_top_p, "1.0", 1e-6, 1, NULL, "evaluation nucleus mass"),

    F("curriculum.budget_stages", CFG_STRING, budget_stages, "", 1, 0, NULL,
      "output-budget stages in tokens, increasing, each <= rollout.max_new_tokens (M1: 40960, ..., 81920); "
      "\"\" = fixed budget"),
    F("curriculum.ppl_window", CFG_INT, ppl_window, "5", 1, 64, NULL, "moving-average window of generation perplexity"),
    F("curriculum.ppl_tol", CFG_FLOAT, ppl_tol, "0.02", 0, 1e9, NULL,
      "perplexity plateau: relative change of the moving average over a window below this"),
    F("curriculum.p99_frac", CFG_FLOAT, p99_frac, "0.9", 0, 1, NULL,
      "advance only when p99 response length >= this fraction of the budget"),
    F("curriculum.min_stage_steps", CFG_INT, min_stage_steps, "10", 0, 1 << 24, NULL, "RL steps per budget stage at least"),
    F("curriculum.mix_start", CFG_STRING, mix_start, "", 1, 0, NULL,
      "task-family weights at step 0, one per data.tasks family (\"\" = equal)"),
    F("curriculum.mix_end", CFG_STRING, mix_end, "", 1, 0, NULL, "task-family weights from mix_steps on (\"\" = mix_start)"),
    F("curriculum.mix_steps", CFG_INT, mix_steps, "0", 0, 1 << 24, NULL, "steps of the linear move from mix_start to mix_end"),
    F("curriculum.difficulty_window", CFG_INT, diff_window, "0", 0, 1000, NULL,
      "difficulty levels drawn at once, starting at data.difficulty_min and raised when mastered (0 = off)"),
    F("curriculum.master_rate", CFG_FLOAT, master_rate, "0.8", 0, 1, NULL, "a family is mastered at this pass rate ..."),
    F("curriculum.master_samples", CFG_INT, master_samples, "256", 1, 1 << 30, NULL, "... over this many responses at its level"),
    F("curriculum.pass_filter", CFG_BOOL, pass_filter, "false", 1, 0, NULL,
      "drop problems whose recent pass rate is 0 or >= pass_upper (M1: the (0, 0.9) window)"),
    F("curriculum.pass_upper", CFG_FLOAT, pass_upper, "0.9", 1e-9, 1, NULL, "upper end of the pass-rate window"),
    F("curriculum.pass_min_samples", CFG_INT, pass_min_samples, "8", 1, 65535, NULL,
      "recent responses of a problem before the filter judges it"),
    F("curriculum.pass_capacity", CFG_INT, pass_capacity, "4096", 1, 1 << 24, NULL,
      "problems with pass-rate statistics (a power of two)"),

    {NULL, CFG_INT, 0, 0, NULL, 0, 0, NULL, NULL},
};

#undef F

const ConfigSchema *run_config_schema(void) { return kRunSchema; }

/* Relations between fields that single-field ranges cannot express. `src` names what was
 * loaded (the file, or "defaults"), for the message. */
static int run_config_validate(const RunConfig *rc, const char *src) {
    if (rc->num_heads % rc->num_kv_heads != 0)
        return err_set(ERR_CONFIG,
                       "%s: model.num_heads (%d) must be divisible by model.num_kv_heads (%d)\n"
                       "HINT: each KV head serves num_heads / num_kv_heads query heads",
                       src, rc->num_heads, rc->num_kv_heads);
    if (rc->experts_per_tok > rc->num_experts)
        return err_set(ERR_CONFIG, "%s: model.experts_per_tok (%d) must be at most model.num_experts (%d)", src,
                       rc->experts_per_tok, rc->num_experts);
    if (rc->full_attn_every < 1)
        return err_set(ERR_CONFIG, "%s: model.full_attn_every (%d) must be at least 1", src, rc->full_attn_every);
    if (rc->head_dim % 2 != 0)
        return err_set(ERR_CONFIG, "%s: model.head_dim (%d) must be even (RoPE rotates pairs of dimensions)", src,
                       rc->head_dim);
    if (rc->difficulty_min > rc->difficulty_max)
        return err_set(ERR_CONFIG, "%s: data.difficulty_min (%d) must be at most data.difficulty_max (%d)", src,
                       rc->difficulty_min, rc->difficulty_max);
    if (rc->minibatches > rc->prompts_per_step * rc->group_size)
        return err_set(ERR_CONFIG, "%s: rl.minibatches (%d) exceeds the responses per step (%d x %d)", src,
                       rc->minibatches, rc->prompts_per_step, rc->group_size);
    if (rc->dual_clip_c != 0 && rc->dual_clip_c <= 1)
        return err_set(ERR_CONFIG, "%s: loss.dual_clip_c (%g) must be 0 (off) or greater than 1 (verl uses 3)", src,
                       rc->dual_clip_c);
    if (rc->cispo_c_low > 0 && rc->cispo_c_low >= rc->cispo_c_high)
        return err_set(ERR_CONFIG, "%s: loss.cispo_c_low (%g) must be below loss.cispo_c_high (%g)", src,
                       rc->cispo_c_low, rc->cispo_c_high);
    if (rc->rl_max_new >= rc->max_seq_len)
        return err_set(ERR_CONFIG, "%s: rollout.max_new_tokens (%d) must be less than model.max_seq_len (%d)", src,
                       rc->rl_max_new, rc->max_seq_len);
    if (strcmp(rc->precision, "bf16") == 0 && strcmp(rc->backend, "cpu") == 0)
        return err_set(ERR_CONFIG,
                       "%s: run.precision bf16 needs run.backend cuda (the CPU backend is the FP32 reference)\n"
                       "HINT: use run.precision=auto, or fp32", src);
    if (rc->max_new_tokens >= rc->max_seq_len)
        return err_set(ERR_CONFIG,
                       "%s: generate.max_new_tokens (%d) must be less than model.max_seq_len (%d), "
                       "which also holds the prompt",
                       src, rc->max_new_tokens, rc->max_seq_len);
    if (strcmp(rc->genrm_mode, "off") != 0 && rc->genrm_path[0] == '\0')
        return err_set(ERR_CONFIG, "%s: reward.genrm_mode is %s but reward.genrm_path is empty\n"
                       "HINT: train a judge with `cispo sft CONFIG data.tasks=judge` and point reward.genrm_path at its "
                       "run directory", src, rc->genrm_mode);
    if (rc->dist_max_staleness > 0 && rc->dist_colocated)
        return err_set(ERR_CONFIG, "%s: dist.max_staleness (%d) needs disaggregated ranks (dist.colocated: false)", src,
                       rc->dist_max_staleness);
    if (rc->dist_max_staleness > 0 && strcmp(rc->old_logp, "rollout") != 0)
        return err_set(ERR_CONFIG,
                       "%s: dist.max_staleness (%d) > 0 needs rl.old_logp: rollout\n"
                       "HINT: stale rollouts take their IS weight from the behaviour log-probs", src,
                       rc->dist_max_staleness);
    if ((rc->budget_stages[0] || rc->pass_filter || rc->diff_window > 0) && !rc->dist_colocated)
        return err_set(ERR_CONFIG,
                       "%s: curriculum.budget_stages, pass_filter and difficulty_window need dist.colocated: true\n"
                       "HINT: their state is not yet shared between rollout and learner ranks", src);
    return 0;
}

int run_config_load(RunConfig *rc, const char *path, int n_overrides, char *const *overrides) {
    memset(rc, 0, sizeof(*rc));
    int err = config_set_defaults(kRunSchema, rc);
    CHECK(err == 0, "run config defaults are invalid: %s", err_msg());
    if (path != NULL && (err = config_load_yaml(kRunSchema, rc, path)) != 0) return err;
    for (int i = 0; i < n_overrides; i++)
        if ((err = config_apply_override(kRunSchema, rc, overrides[i])) != 0) return err;
    char src[600];
    if (path != NULL)
        snprintf(src, sizeof(src), "%s%s", path, n_overrides > 0 ? " + command line" : "");
    else
        snprintf(src, sizeof(src), "%s", n_overrides > 0 ? "defaults + command line" : "defaults");
    return run_config_validate(rc, src);
}

void run_config_print(FILE *f, const RunConfig *rc) { config_print_yaml(kRunSchema, rc, f); }
