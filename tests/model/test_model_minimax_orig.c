/* tests/model/test_model_minimax_orig.c: the original MiniMax-Text-01 / MiniMax-M1 config.json
 * (model_config_minimax.c) and partial RoPE.
 *  - the same weights saved in transformers' format and in the original format (hand-written
 *    M1-style config.json, per-expert tensor names) load into models with equal logits;
 *  - the original lightning slopes follow _build_slope_tensor (known values, non-power-of-two heads);
 *  - a real M1 config parses to the documented architecture; the original format round-trips;
 *    unsupported keys (a shared expert, no attn_type_list, an odd rotary_dim) are clear errors;
 *  - partial RoPE (rotary_dim = HS/2) is applied: the logits of a one-layer model match an
 *    independent naive computation in this file, differ from full RoPE, and decode agrees.
 * labels: unit
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../test_tmpdir.h"

#include "core/error.h"
#include "model/decode.h"
#include "model_fixtures.h"

static char tmpdir[256];

static int setup(void **state) {
    (void)state;
    return tmpdir_make(tmpdir, sizeof tmpdir, "cispo_test_mmorig");
}

static int teardown(void **state) {
    (void)state;
    return tmpdir_remove(tmpdir);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* fixture_minimax (2 heads, layers linear, linear, full, linear) as an M1-style config.json. */
static const char *k_orig_config =
    "{\"architectures\": [\"MiniMaxM1ForCausalLM\"], \"model_type\": \"minimax_m1\",\n"
    " \"attn_type_list\": [0, 0, 1, 0], \"vocab_size\": 23, \"hidden_size\": 16, \"intermediate_size\": 12,\n"
    " \"num_hidden_layers\": 4, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 8,\n"
    " \"rotary_dim\": 8, \"rope_theta\": 10000, \"rms_norm_eps\": 1e-05, \"hidden_act\": \"silu\",\n"
    " \"max_position_embeddings\": 131072, \"num_local_experts\": 3, \"num_experts_per_tok\": 2,\n"
    " \"postnorm\": true, \"layernorm_linear_attention_alpha\": 1.3, \"layernorm_linear_attention_beta\": 0.7,\n"
    " \"layernorm_full_attention_alpha\": 0.9, \"layernorm_full_attention_beta\": 1.2,\n"
    " \"layernorm_mlp_alpha\": 1.1, \"layernorm_mlp_beta\": 0.8, \"shared_intermediate_size\": 0,\n"
    " \"shared_moe_mode\": \"sigmoid\", \"router_aux_loss_coef\": 0.02, \"router_jitter_noise\": 0.0,\n"
    " \"output_router_logits\": false, \"sliding_window\": null, \"tie_word_embeddings\": false,\n"
    " \"bos_token_id\": 1, \"eos_token_id\": 2, \"initializer_range\": 0.02, \"torch_dtype\": \"bfloat16\"}\n";

static void logits_of(Model *m, float *logits) {
    int tok[9] = {1, 5, 7, 2, 9, 11, 3, 4, 6}, start[3] = {0, 6, 9};
    SeqPack pack = {2, start, NULL};
    model_forward(m, tok, NULL, &pack, NULL, logits);
}

static void test_both_formats_equal_logits(void **state) {
    (void)state;
    ModelConfig c = fixture_minimax();
    Model a, b, ha, ob;
    KernelCtx ca, cb, cha, cob;
    char hf_dir[512], orig_dir[512], cfg_path[600];
    snprintf(hf_dir, sizeof hf_dir, "%s/hf", tmpdir);
    snprintf(orig_dir, sizeof orig_dir, "%s/orig", tmpdir);
    assert_int_equal(fixture_model(&a, &ca, &c, 16, 2, 5, 0.2f), 0);
    ModelConfig co = c;
    co.format = MODEL_FORMAT_MINIMAX_ORIGINAL;
    kernel_ctx_init(&cb, kernels_cpu(), model_ws_bytes(&co, kernels_cpu(), 16));
    assert_int_equal(model_init(&b, &co, &cb, 16, 2), 0);
    memcpy(b.param_mem, a.param_mem, a.params.total_bytes);
    assert_int_equal(model_save_hf(&a, hf_dir, ST_F32), 0);
    assert_int_equal(model_save_hf(&b, orig_dir, ST_F32), 0);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", orig_dir);
    write_text(cfg_path, k_orig_config); /* a hand-written config, not our writer's */

    StArchive ar; /* the original layout on disk: per-expert tensors, no fused ones */
    assert_int_equal(st_open(&ar, orig_dir), 0);
    assert_non_null(st_find(&ar, "model.layers.3.block_sparse_moe.experts.2.w3.weight"));
    assert_non_null(st_find(&ar, "model.layers.0.block_sparse_moe.gate.weight"));
    assert_null(st_find(&ar, "model.layers.0.mlp.experts.gate_up_proj"));
    st_close(&ar);

    ModelConfig loaded;
    assert_int_equal(model_config_load_hf(&loaded, cfg_path), 0); /* block_size 256: another workspace */
    kernel_ctx_init(&cha, kernels_cpu(), model_ws_bytes(&c, kernels_cpu(), 16));
    kernel_ctx_init(&cob, kernels_cpu(), model_ws_bytes(&loaded, kernels_cpu(), 16));
    assert_int_equal(model_load_hf(&ha, hf_dir, &cha, 16, 2), 0);
    assert_int_equal(model_load_hf(&ob, orig_dir, &cob, 16, 2), 0);
    assert_int_equal(ob.cfg.format, MODEL_FORMAT_MINIMAX_ORIGINAL);
    assert_int_equal(ob.cfg.postnorm, 1);
    assert_int_equal(ob.cfg.rotary_dim, 8);
    assert_int_equal(ob.cfg.layer_types[2], LAYER_FULL_ATTENTION);
    assert_int_equal(ob.cfg.layer_types[3], LAYER_LINEAR_ATTENTION);
    assert_true(ob.cfg.mlp_beta_factor == 0.8f && ob.cfg.linear_attn_alpha_factor == 1.3f);
    float la[9 * 23], lb[9 * 23];
    logits_of(&ha, la);
    logits_of(&ob, lb);
    /* Same semantics up to the slope factor 1 - l/(L-1) vs 1 - l/(L-1+1e-5): ~1e-5 relative. */
    double maxd = 0;
    for (int i = 0; i < 9 * 23; i++) maxd = fmax(maxd, fabs((double)la[i] - lb[i]));
    assert_true(maxd < 2e-5);
    model_free(&a), model_free(&b), model_free(&ha), model_free(&ob);
    kernel_ctx_free(&ca), kernel_ctx_free(&cb), kernel_ctx_free(&cha), kernel_ctx_free(&cob);
}

static void test_original_slopes(void **state) {
    (void)state;
    ModelConfig c = fixture_minimax();
    c.format = MODEL_FORMAT_MINIMAX_ORIGINAL;
    c.num_attention_heads = 6; /* not a power of two: ALiBi slopes of 4, then every other one of 8 */
    c.num_key_value_heads = 1;
    const double want[6] = {0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125};
    for (int h = 0; h < 6; h++) {
        assert_float_equal(model_lightning_slope(&c, 0, h), want[h] * (1 + 1e-5), 1e-7);
        assert_float_equal(model_lightning_slope(&c, 3, h), want[h] * 1e-5, 1e-12); /* last layer: 1 - 3/3 */
        assert_float_equal(model_lightning_slope(&c, 1, h), want[h] * (1 - 1.0 / 3 + 1e-5), 1e-7);
    }
    c.format = MODEL_FORMAT_HF; /* transformers: 2^(-8(h+1)/NH) for every NH */
    assert_float_equal(model_lightning_slope(&c, 0, 4), pow(2.0, -8.0 * 5 / 6) * (1 + 1e-5), 1e-7);
}

static void test_m1_config_parses(void **state) {
    (void)state;
    char p[600], q[600];
    snprintf(p, sizeof p, "%s/m1.json", tmpdir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("{\"model_type\": \"minimax_m1\", \"attn_type_list\": [", f);
    for (int l = 0; l < 80; l++) fprintf(f, "%s%d", l ? ", " : "", l % 8 == 7);
    fputs("], \"hidden_size\": 6144, \"intermediate_size\": 9216, \"num_hidden_layers\": 80,"
          " \"num_attention_heads\": 64, \"num_key_value_heads\": 8, \"head_dim\": 128, \"rotary_dim\": 64,"
          " \"vocab_size\": 200064, \"rope_theta\": 10000000, \"max_position_embeddings\": 10240000,"
          " \"num_local_experts\": 32, \"num_experts_per_tok\": 2, \"postnorm\": true,"
          " \"layernorm_full_attention_alpha\": 3.5565588200778455, \"layernorm_full_attention_beta\": 1.0,"
          " \"layernorm_linear_attention_alpha\": 3.5565588200778455, \"layernorm_linear_attention_beta\": 1.0,"
          " \"layernorm_mlp_alpha\": 3.5565588200778455, \"layernorm_mlp_beta\": 1.0,"
          " \"shared_intermediate_size\": 0, \"rms_norm_eps\": 1e-05, \"hidden_act\": \"silu\"}\n", f);
    fclose(f);
    ModelConfig c, r;
    assert_int_equal(model_config_load_hf(&c, p), 0);
    assert_int_equal(c.family, MODEL_MINIMAX);
    assert_int_equal(c.rotary_dim, 64);
    assert_int_equal(c.head_dim, 128);
    assert_true(c.rope_theta == 1e7f);
    assert_int_equal(c.layer_types[7], LAYER_FULL_ATTENTION);
    assert_int_equal(c.layer_types[8], LAYER_LINEAR_ATTENTION);
    assert_true(fabsf(c.mlp_alpha_factor - 3.5565588f) < 1e-6f);
    /* 456B total parameters (ALGORITHMS.md §11.1) */
    assert_true(llabs(model_config_num_params(&c) - 456090000000LL) < 200000000LL);
    snprintf(q, sizeof q, "%s/m1_saved.json", tmpdir);
    assert_int_equal(model_config_save_hf(&c, q), 0);
    assert_int_equal(model_config_load_hf(&r, q), 0);
    assert_int_equal(r.format, MODEL_FORMAT_MINIMAX_ORIGINAL);
    assert_int_equal(r.rotary_dim, 64);
    assert_int_equal(memcmp(r.layer_types, c.layer_types, sizeof c.layer_types), 0);
    assert_true(r.mlp_alpha_factor == c.mlp_alpha_factor && r.postnorm == 1);
    /* transformers' format cannot express partial RoPE or pre-norm MiniMax */
    r.format = MODEL_FORMAT_HF;
    assert_int_equal(model_config_save_hf(&r, q), ERR_UNSUPPORTED);
}

static void expect_error(const char *json, int code, const char *text) {
    char p[600];
    snprintf(p, sizeof p, "%s/bad.json", tmpdir);
    write_text(p, json);
    ModelConfig c;
    assert_int_equal(model_config_load_hf(&c, p), code);
    if (!strstr(err_msg(), text)) fail_msg("message '%s' lacks '%s'", err_msg(), text);
}

#define BASE "\"model_type\": \"minimax_text_01\", \"hidden_size\": 16, \"num_hidden_layers\": 2, " \
             "\"num_attention_heads\": 2, \"head_dim\": 8, \"num_key_value_heads\": 1, \"vocab_size\": 9"

static void test_errors(void **state) {
    (void)state;
    expect_error("{" BASE ", \"attn_type_list\": [0, 1], \"shared_intermediate_size\": 64}", ERR_UNSUPPORTED,
                 "shared expert is not supported");
    expect_error("{" BASE "}", ERR_FORMAT, "attn_type_list");
    expect_error("{" BASE ", \"attn_type_list\": [0, 1], \"rotary_dim\": 3}", ERR_FORMAT, "rotary_dim");
    expect_error("{" BASE ", \"attn_type_list\": [0, 1], \"rotary_dim\": 10}", ERR_FORMAT, "rotary_dim");
    expect_error("{" BASE ", \"attn_type_list\": [0, 2]}", ERR_FORMAT, "attn_type_list");
    expect_error("{" BASE ", \"attn_type_list\": [0, 1], \"postnorm\": 1}", ERR_FORMAT, "postnorm");
    expect_error("{\"model_type\": \"minimax_text_01\", \"hidden_size\": 16, \"num_hidden_layers\": 1, "
                 "\"num_attention_heads\": 2, \"head_dim\": 8, \"attn_type_list\": [1]}",
                 ERR_UNSUPPORTED, "num_hidden_layers");
    /* a pre-norm original model (postnorm false, the original default) loads */
    char p[600];
    snprintf(p, sizeof p, "%s/pre.json", tmpdir);
    write_text(p, "{" BASE ", \"attn_type_list\": [0, 1]}");
    ModelConfig c;
    assert_int_equal(model_config_load_hf(&c, p), 0);
    assert_int_equal(c.postnorm, 0);
    assert_int_equal(c.rotary_dim, 8);
}

/* ---- partial RoPE against a naive computation ----------------------------------------------- */

enum { V1 = 11, C1 = 8, NH1 = 2, HS1 = 8, F1 = 6, T1 = 5 };

static void rmsnorm(const float *x, const float *w, float eps, int n, float *y) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = w[i] * x[i] * r;
}

static void matvec(const float *W, const float *x, int out, int in, float *y) { /* W (out, in) */
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += (double)W[o * in + i] * x[i];
        y[o] = (float)s;
    }
}

/* Rotate the first `rot` dims of one head at position pos (rotate-half pairs (i, i + rot/2)). */
static void rope_head(float *h, int rot, int pos, double theta) {
    for (int i = 0; i < rot / 2; i++) {
        double ang = pos * pow(theta, -2.0 * i / rot), a = h[i], b = h[i + rot / 2];
        h[i] = (float)(a * cos(ang) - b * sin(ang));
        h[i + rot / 2] = (float)(b * cos(ang) + a * sin(ang));
    }
}

/* Logits (T1, V1) of the one-layer model: postnorm MiniMax, one softmax-attention layer (MHA with one
 * KV head shared), one expert (its routing weight is 1). */
static void naive_logits(const Model *m, const int *tok, int rot, float *out) {
    const ModelConfig *c = &m->cfg;
    const float *E = model_param(m, "model.embed_tokens.weight"), *wq = model_param(m, "model.layers.0.self_attn.q_proj.weight");
    const float *wk = model_param(m, "model.layers.0.self_attn.k_proj.weight");
    const float *wv = model_param(m, "model.layers.0.self_attn.v_proj.weight");
    const float *wo = model_param(m, "model.layers.0.self_attn.o_proj.weight");
    const float *gu = model_param(m, "model.layers.0.mlp.experts.gate_up_proj");
    const float *dn = model_param(m, "model.layers.0.mlp.experts.down_proj");
    const float *win = model_param(m, "model.layers.0.input_layernorm.weight");
    const float *wpost = model_param(m, "model.layers.0.post_attention_layernorm.weight");
    const float *wf = model_param(m, "model.norm.weight"), *lm = model_param(m, "lm_head.weight");
    float n1[T1][C1], q[T1][NH1 * HS1], k[T1][HS1], v[T1][HS1];
    for (int t = 0; t < T1; t++) {
        rmsnorm(E + tok[t] * C1, win, c->rms_norm_eps, C1, n1[t]);
        matvec(wq, n1[t], NH1 * HS1, C1, q[t]);
        matvec(wk, n1[t], HS1, C1, k[t]);
        matvec(wv, n1[t], HS1, C1, v[t]);
        for (int h = 0; h < NH1; h++) rope_head(q[t] + h * HS1, rot, t, c->rope_theta);
        rope_head(k[t], rot, t, c->rope_theta);
    }
    for (int t = 0; t < T1; t++) {
        float att[NH1 * HS1] = {0}, o[C1], xm[C1], n2[C1], h13[2 * F1], act[F1], y[C1], x2[C1], nf[C1];
        for (int h = 0; h < NH1; h++) {
            double s[T1], mx = -1e30, z = 0;
            for (int u = 0; u <= t; u++) {
                s[u] = 0;
                for (int d = 0; d < HS1; d++) s[u] += (double)q[t][h * HS1 + d] * k[u][d];
                s[u] /= sqrt((double)HS1);
                mx = fmax(mx, s[u]);
            }
            for (int u = 0; u <= t; u++) z += exp(s[u] - mx);
            for (int d = 0; d < HS1; d++) {
                double acc = 0;
                for (int u = 0; u <= t; u++) acc += exp(s[u] - mx) / z * v[u][d];
                att[h * HS1 + d] = (float)acc;
            }
        }
        matvec(wo, att, C1, NH1 * HS1, o);
        for (int i = 0; i < C1; i++) xm[i] = c->full_attn_alpha_factor * n1[t][i] + c->full_attn_beta_factor * o[i];
        rmsnorm(xm, wpost, c->rms_norm_eps, C1, n2);
        matvec(gu, n2, 2 * F1, C1, h13);
        for (int i = 0; i < F1; i++) act[i] = h13[i] / (1.0f + expf(-h13[i])) * h13[F1 + i];
        matvec(dn, act, C1, F1, y);
        for (int i = 0; i < C1; i++) x2[i] = c->mlp_alpha_factor * n2[i] + c->mlp_beta_factor * y[i];
        rmsnorm(x2, wf, c->rms_norm_eps, C1, nf);
        matvec(lm, nf, V1, C1, out + t * V1);
    }
}

static ModelConfig one_layer(int rot) {
    ModelConfig c;
    model_config_defaults(&c, MODEL_MINIMAX);
    c.vocab_size = V1, c.hidden_size = C1, c.intermediate_size = F1, c.num_hidden_layers = 1;
    c.num_attention_heads = NH1, c.num_key_value_heads = 1, c.head_dim = HS1, c.rotary_dim = rot;
    c.num_local_experts = 1, c.num_experts_per_tok = 1, c.rope_theta = 100.0f;
    c.full_attn_alpha_factor = 1.2f, c.full_attn_beta_factor = 0.9f, c.mlp_alpha_factor = 0.8f;
    c.layer_types[0] = LAYER_FULL_ATTENTION;
    return c;
}

static void test_partial_rope(void **state) {
    (void)state;
    const int tok[T1] = {3, 7, 1, 9, 4};
    int start[2] = {0, T1};
    SeqPack pack = {1, start, NULL};
    ModelConfig cp = one_layer(HS1 / 2), cf = one_layer(HS1);
    Model mp, mf;
    KernelCtx kp, kf;
    assert_int_equal(fixture_model(&mp, &kp, &cp, 8, 2, 11, 0.5f), 0);
    kernel_ctx_init(&kf, kernels_cpu(), model_ws_bytes(&cf, kernels_cpu(), 8));
    assert_int_equal(model_init(&mf, &cf, &kf, 8, 2), 0);
    memcpy(mf.param_mem, mp.param_mem, mp.params.total_bytes);
    float lp[T1 * V1], lf[T1 * V1], ref_p[T1 * V1], ref_f[T1 * V1];
    model_forward(&mp, tok, NULL, &pack, NULL, lp);
    model_forward(&mf, tok, NULL, &pack, NULL, lf);
    naive_logits(&mp, tok, HS1 / 2, ref_p);
    naive_logits(&mp, tok, HS1, ref_f);
    double dp = 0, df = 0, dpf = 0;
    for (int i = 0; i < T1 * V1; i++) {
        dp = fmax(dp, fabs((double)lp[i] - ref_p[i]));
        df = fmax(df, fabs((double)lf[i] - ref_f[i]));
        dpf = fmax(dpf, fabs((double)lp[i] - lf[i]));
    }
    assert_true(dp < 1e-4); /* partial RoPE = the naive partial rotation */
    assert_true(df < 1e-4); /* and the full one */
    assert_true(dpf > 1e-2); /* they really differ */
    for (int i = 0; i < V1; i++) assert_float_equal(lp[i], lf[i], 1e-5); /* position 0: no rotation */

    DecodeState s; /* decode with partial RoPE reproduces the forward */
    assert_int_equal(decode_state_init(&s, &mp, 1, 8), 0);
    int pstart[2] = {0, 2};
    SeqPack pp = {1, pstart, NULL};
    float step[V1];
    model_prefill(&mp, &s, tok, &pp, step);
    for (int t = 2; t < T1; t++) {
        model_decode_step(&mp, &s, &tok[t], step);
        for (int i = 0; i < V1; i++) assert_float_equal(step[i], lp[t * V1 + i], 1e-4);
    }
    decode_state_free(&s, &mp);
    model_free(&mp), model_free(&mf);
    kernel_ctx_free(&kp), kernel_ctx_free(&kf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_formats_equal_logits),
        cmocka_unit_test(test_original_slopes),
        cmocka_unit_test(test_m1_config_parses),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_partial_rope),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
