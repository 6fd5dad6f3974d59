/* bench/bench_cuda_model.c: BENCHMARKS.md B0 (ceilings), B7 (learner step) and B8 (decode) of the
 * CUDA backend, for the hybrid configs the PyTorch anchor (../shared/anchors/hf_minimax.py) measures,
 * plus a larger one. Built only with -DCISPO_CUDA=ON.
 *
 * B0: cuBLAS BF16 GEMM 8192^3 (true BF16 operands), FP32 SGEMM 8192^3, our body GEMM path
 *     (FP32 operands, CUBLAS_COMPUTE_32F_FAST_16BF) 8192^3, and a 1 GiB device copy (bytes read +
 *     written). Timed with CUDA events, median of repetitions.
 * B7: one learner step = model_forward + model_backward + AdamW over all parameters, on random
 *     tokens (B sequences of T), wall clock after a device sync, median of repetitions. Tokens/s and
 *     MFU = model FLOPs per token (the anchor's formula: 6 x active non-embedding params + attention)
 *     x tokens/s / the BF16 GEMM ceiling measured here.
 * B8: one decode step of B sequences at context length ctx (KV cache and lightning state at that
 *     length; their contents do not change the cost) as rollout_generate runs it: model_decode_step
 *     with the logits left on the device, the backend's `sample` op (temperature 1), and the copy of
 *     the 4 values per sequence (token, log-prob, raw prob, entropy) to the host. Bound: bytes per
 *     step (the BF16 copy of the weights read once, KV cache read, lightning state read + written,
 *     logits written and read) / the copy bandwidth measured here.
 *
 * --profile: no timing; per config, two learner steps (one warm-up) at 2048 x 4 and at 8192 x 1 and
 * 21 decode steps at batch 64, ctx 4096, each followed by the per-op GPU-time report of
 * kernels/cuda/profile.cu (B9 breakdowns).
 *
 * Usage: bench_cuda_model [--json PATH] [--quick] [--profile] [--config NAME]   (NAME: one of the shapes below)
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/version.h"
#include "kernels/cuda/cuda_profile.h"
#include "model/decode.h"
#include "model/model_internal.h"
#include "bench/bench_util.h"

#define CK(x) CHECK((x) == cudaSuccess, "%s failed", #x)
#define BK(x) CHECK((x) == CUBLAS_STATUS_SUCCESS, "%s failed", #x)

typedef struct {
    double bf16_tflops, fp32_tflops, fast16bf_tflops, copy_tbps;
} Ceil;

/* ms of one GEMM 8192^3: A/B/C of type t, compute type ct */
static double gemm_ms(cublasHandle_t h, cudaDataType_t t, cublasComputeType_t ct, int n) {
    size_t es = t == CUDA_R_16BF ? 2 : 4, bytes = (size_t)n * n * es;
    void *A, *B, *C;
    CK(cudaMalloc(&A, bytes));
    CK(cudaMalloc(&B, bytes));
    CK(cudaMalloc(&C, (size_t)n * n * 4));
    unsigned short *hb = xmalloc(bytes);
    float *hf = (float *)hb;
    for (size_t i = 0; i < (size_t)n * n; i++) { /* uniform(-1, 1): BF16 = top half of the float */
        float x = 2.0f * rng_uniform(3, 1, i) - 1.0f;
        if (es == 2) {
            unsigned u;
            memcpy(&u, &x, 4);
            hb[i] = (unsigned short)(u >> 16);
        } else {
            hf[i] = x;
        }
    }
    CK(cudaMemcpy(A, hb, bytes, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(B, hb, bytes, cudaMemcpyHostToDevice));
    free(hb);
    float one = 1, zero = 0;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    double ts[12];
    for (int r = -2; r < 10; r++) {
        CK(cudaEventRecord(e0, 0));
        BK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, A, t, n, B, t, n, &zero, C,
                        t == CUDA_R_16BF ? CUDA_R_16BF : CUDA_R_32F, n, ct, CUBLAS_GEMM_DEFAULT));
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (r >= 0) ts[r] = ms;
    }
    CK(cudaFree(A));
    CK(cudaFree(B));
    CK(cudaFree(C));
    return bench_median(ts, 10);
}

static Ceil ceilings(void) {
    Ceil c;
    cublasHandle_t h;
    BK(cublasCreate(&h));
    const int n = 8192;
    double fl = 2.0 * n * n * n;
    c.bf16_tflops = fl / gemm_ms(h, CUDA_R_16BF, CUBLAS_COMPUTE_32F, n) / 1e9;
    c.fp32_tflops = fl / gemm_ms(h, CUDA_R_32F, CUBLAS_COMPUTE_32F, n) / 1e9;
    c.fast16bf_tflops = fl / gemm_ms(h, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_16BF, n) / 1e9;
    BK(cublasDestroy(h));
    size_t bytes = (size_t)1 << 30;
    void *x, *y;
    CK(cudaMalloc(&x, bytes));
    CK(cudaMalloc(&y, bytes));
    CK(cudaMemset(x, 1, bytes));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    double t[10];
    for (int r = -2; r < 10; r++) {
        CK(cudaEventRecord(e0, 0));
        CK(cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, 0));
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (r >= 0) t[r] = ms;
    }
    c.copy_tbps = 2.0 * bytes / bench_median(t, 10) / 1e9;
    CK(cudaFree(x));
    CK(cudaFree(y));
    return c;
}

typedef struct {
    const char *name;
    int C, L, NH, KVH, HS, F, E, K, V, every;
} Shape;

static void shape_config(const Shape *s, ModelConfig *c) {
    memset(c, 0, sizeof *c);
    model_config_defaults(c, MODEL_MINIMAX);
    c->vocab_size = s->V, c->hidden_size = s->C, c->intermediate_size = s->F, c->num_hidden_layers = s->L;
    c->num_attention_heads = s->NH, c->num_key_value_heads = s->KVH, c->head_dim = s->HS;
    c->num_local_experts = s->E, c->num_experts_per_tok = s->K, c->block_size = 256;
    c->rope_theta = 1e7;
    c->rotary_dim = s->HS;
    for (int l = 0; l < s->L; l++)
        c->layer_types[l] = (l % s->every == s->every - 1) ? LAYER_FULL_ATTENTION : LAYER_LINEAR_ATTENTION;
}

/* The anchor's model FLOPs per token at length T. */
static double flops_per_token(const Shape *s, double n_active, int T) {
    int Lf = 0;
    for (int l = 0; l < s->L; l++) Lf += l % s->every == s->every - 1;
    int Ll = s->L - Lf;
    return 6 * n_active + 6.0 * Lf * s->NH * s->HS * T + 3.0 * Ll * s->NH * (4.0 * 256 * s->HS + 4.0 * s->HS * s->HS);
}

/* B7: ms per learner step of B x T tokens */
static double learner_ms(Model *m, int B, int T, int reps) {
    const int N = B * T, V = m->cfg.vocab_size;
    KernelCtx *ctx = m->ctx;
    int *tok = xmalloc((size_t)N * sizeof(int)), *tgt = xmalloc((size_t)N * sizeof(int)), *start = xmalloc((size_t)(B + 1) * sizeof(int));
    float *logp = xmalloc((size_t)N * 4), *dlogp = xmalloc((size_t)N * 4);
    for (int i = 0; i < N; i++) {
        tok[i] = (int)(rng_uniform(5, 0, (uint64_t)i) * V) % V;
        tgt[i] = (int)(rng_uniform(5, 1, (uint64_t)i) * V) % V;
        dlogp[i] = -1.0f / N;
    }
    for (int b = 0; b <= B; b++) start[b] = b * T;
    SeqPack pack = {B, start, NULL};
    float *mom = ctx->ops->alloc(ctx, m->n_params * 4), *var = ctx->ops->alloc(ctx, m->n_params * 4);
    double t[16];
    for (int r = -1; r < reps; r++) {
        ctx->ops->sync(ctx);
        double t0 = time_now_s();
        model_forward(m, tok, tgt, &pack, logp, NULL);
        model_zero_grad(m);
        model_backward(m, dlogp, m->cfg.router_aux_loss_coef);
        ctx->ops->adamw(ctx, m->param_mem, m->grad_mem, mom, var, m->n_params, 1e-6f, 0.9f, 0.95f, 1e-15f, 0.1f, r + 2);
        ctx->ops->sync(ctx);
        if (r >= 0) t[r] = (time_now_s() - t0) * 1e3;
    }
    ctx->ops->free(ctx, mom);
    ctx->ops->free(ctx, var);
    free(tok), free(tgt), free(start), free(logp), free(dlogp);
    return bench_median(t, reps);
}

/* B8: ms per decode step of B sequences at context ctxlen */
static double decode_ms(Model *m, int B, int ctxlen, int reps) {
    DecodeState s;
    CHECK(decode_state_init(&s, m, B, ctxlen + reps + 2) == 0, "%s", err_msg());
    s.n_active = B;
    for (int b = 0; b < B; b++) s.len[b] = ctxlen;
    KernelCtx *ctx = m->ctx;
    int *tok = xmalloc((size_t)B * sizeof(int));
    uint64_t *stream = xmalloc((size_t)B * sizeof(uint64_t)), *counter = xmalloc((size_t)B * sizeof(uint64_t));
    float *dev = ctx->ops->alloc(ctx, (size_t)B * 4 * sizeof(float)), *host = xmalloc((size_t)B * 4 * sizeof(float));
    for (int b = 0; b < B; b++) tok[b] = (b * 7 + 3) % m->cfg.vocab_size, stream[b] = (uint64_t)b;
    double t[64];
    for (int r = -1; r < reps; r++) {
        for (int b = 0; b < B; b++) counter[b] = (uint64_t)(r + 1);
        ctx->ops->sync(ctx);
        double t0 = time_now_s();
        model_decode_step(m, &s, tok, NULL);
        ctx->ops->sample(ctx, (int *)dev, dev + B, dev + 2 * B, dev + 3 * B, s.logits_dev, stream, counter, B,
                         m->cfg.vocab_size, 1.0f, 1.0f, 7);
        ctx->ops->copy_d2h(ctx, host, dev, (size_t)B * 4 * sizeof(float));
        if (r >= 0) t[r] = (time_now_s() - t0) * 1e3;
    }
    ctx->ops->free(ctx, dev);
    free(tok), free(stream), free(counter), free(host);
    decode_state_free(&s, m);
    return bench_median(t, reps);
}

/* --profile: the per-op breakdown of a learner step and of decode steps (kernels/cuda/profile.cu) */
static void profile_shape(Model *m, const char *name, int max_tokens) {
    kernels_cuda_profile_report(); /* drop what model set-up recorded */
    fprintf(stderr, "\n##### %s learner 2048 x 4: 2 steps (1 warm-up)\n", name);
    learner_ms(m, 4, 2048, 1);
    kernels_cuda_profile_report();
    if (max_tokens >= 8192) {
        fprintf(stderr, "\n##### %s learner 8192 x 1: 2 steps (1 warm-up)\n", name);
        learner_ms(m, 1, 8192, 1);
        kernels_cuda_profile_report();
    }
    fprintf(stderr, "\n##### %s decode B 64 ctx 4096: 21 steps (1 warm-up)\n", name);
    decode_ms(m, 64, 4096, 20);
    kernels_cuda_profile_report();
}

int main(int argc, char **argv) {
    const char *json_path = NULL;
    const char *only = NULL;
    int quick = 0, profile = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--json") && a + 1 < argc) json_path = argv[++a];
        else if (!strcmp(argv[a], "--quick")) quick = 1;
        else if (!strcmp(argv[a], "--config") && a + 1 < argc) only = argv[++a];
        else if (!strcmp(argv[a], "--profile")) profile = 1;
    }
    if (profile) setenv("CISPO_CUDA_PROFILE", "1", 1); /* kernels_cuda() then times every op */
    log_set_level(LOG_WARN);
    const KernelOps *ops = kernels_cuda();
    if (!ops) {
        fprintf(stderr, "bench_cuda_model: no CUDA device\n");
        return 2;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    int drv = 0;
    CK(cudaDriverGetVersion(&drv));
    Ceil c = ceilings();
    printf("B0 %s (driver API %d), cispo %s: BF16 GEMM %.0f TFLOP/s, FP32 SGEMM %.1f, FP32+FAST_16BF %.0f, copy %.2f TB/s\n",
           prop.name, drv, cispo_version(), c.bf16_tflops, c.fp32_tflops, c.fast16bf_tflops, c.copy_tbps);
    FILE *js = json_path ? fopen(json_path, "w") : NULL;
    if (js)
        fprintf(js, "{\"device\": \"%s\", \"driver\": %d, \"commit\": \"%s\", \"bf16_tflops\": %.1f, \"fp32_tflops\": %.2f, "
                    "\"fast16bf_tflops\": %.1f, \"copy_tbps\": %.3f, \"rows\": [\n",
                prop.name, drv, cispo_version(), c.bf16_tflops, c.fp32_tflops, c.fast16bf_tflops, c.copy_tbps);
    const Shape shapes[] = {
        {"h768_L12_E8", 768, 12, 12, 4, 64, 1024, 8, 2, 32000, 8},
        {"h1024_L16_E8", 1024, 16, 16, 4, 64, 2048, 8, 2, 32000, 8},
        {"h1536_L20_E8", 1536, 20, 24, 8, 64, 1536, 8, 2, 32000, 8},
    };
    const int train[][2] = {{2048, 4}, {8192, 1}, {32768, 1}};
    const int nshape = quick && !only ? 1 : 3;
    int first = 1;
    printf("%-14s %-10s %6s %6s %10s %9s %8s\n", "config", "what", "T/ctx", "B", "ms", "tok/s", "MFU|bw%");
    for (int si = 0; si < nshape; si++) {
        const Shape *s = &shapes[si];
        if (only && strcmp(only, s->name) != 0) continue;
        ModelConfig cfg;
        shape_config(s, &cfg);
        KernelCtx ctx;
        Model m;
        /* 32K tokens of the 1.5B do not fit beside Adam; --profile and --quick need 8K at most */
        const int max_tokens = si == 2 || profile || quick ? 8192 : 32768;
        kernel_ctx_init(&ctx, ops, model_ws_bytes(&cfg, ops, max_tokens));
        ctx.gemm_bf16 = 1;
        CHECK(model_init(&m, &cfg, &ctx, max_tokens, 256) == 0, "%s", err_msg());
        model_init_weights(&m, 1, 0.02f);
        size_t mem_free = 0, mem_total = 0;
        CK(cudaMemGetInfo(&mem_free, &mem_total));
        printf("%s: %zu parameters, %d tokens of activations; device memory %.1f of %.1f GB free\n", s->name,
               m.n_params, max_tokens, mem_free / 1e9, mem_total / 1e9);
        double expert = (double)s->L * s->E * 3 * s->C * s->F;
        double n_active = (double)m.n_params - expert + (double)s->L * s->K * 3 * s->C * s->F - (double)s->V * s->C;
        if (profile) {
            profile_shape(&m, s->name, max_tokens);
            model_free(&m);
            kernel_ctx_free(&ctx);
            continue;
        }
        for (int ti = 0; ti < 3; ti++) {
            int T = train[ti][0], B = train[ti][1];
            if (si == 2 && T > 8192) continue; /* activations of 32K tokens do not fit beside 1.5B params + Adam */
            if (quick && T > 2048) continue;
            double ms = learner_ms(&m, B, T, quick ? 2 : 5), tps = B * T / ms * 1e3;
            double mfu = flops_per_token(s, n_active, T) * tps / (c.bf16_tflops * 1e12);
            printf("%-14s %-10s %6d %6d %10.1f %9.0f %7.1f%%\n", s->name, "learner", T, B, ms, tps, 100 * mfu);
            if (js)
                fprintf(js, "%s{\"config\": \"%s\", \"params\": %zu, \"active\": %.0f, \"what\": \"learner\", \"T\": %d, \"B\": %d, "
                            "\"ms\": %.3f, \"tok_s\": %.1f, \"mfu\": %.4f}",
                        first ? "" : ",\n", s->name, m.n_params, n_active, T, B, ms, tps, mfu), first = 0;
            fflush(stdout);
        }
        const int dB[] = {1, 64, 256}, dctx[] = {16, 4096, 32768};
        for (int bi = 0; bi < 3; bi++)
            for (int ci = 0; ci < 3; ci++) {
                int B = dB[bi], L = dctx[ci];
                int Lf = 0;
                for (int l = 0; l < s->L; l++) Lf += l % s->every == s->every - 1;
                double kv = 2.0 * B * L * s->KVH * s->HS * 4 * Lf, st = 2.0 * B * s->NH * s->HS * s->HS * 4 * (s->L - Lf);
                if (kv * (L + 8.0) / L > 20e9 || B > 256 || (quick && (B > 64 || L > 4096))) continue;
                double ms = decode_ms(&m, B, L, quick ? 5 : 20), tps = B / ms * 1e3;
                /* BF16 body weights (all experts once B covers them), FP32 LM head, FP32 KV and state */
                double wbytes = 2.0 * (B >= s->E ? (double)m.n_params - 2.0 * s->V * s->C
                                                 : n_active - (double)s->V * s->C) +
                                4.0 * (double)s->V * s->C;
                double bytes = wbytes + kv + st + 8.0 * B * s->V; /* kv: K and V of every softmax layer */
                double bw = bytes / (ms * 1e-3) / (c.copy_tbps * 1e12);
                printf("%-14s %-10s %6d %6d %10.3f %9.0f %7.1f%%\n", s->name, "decode", L, B, ms, tps, 100 * bw);
                if (js)
                    fprintf(js, "%s{\"config\": \"%s\", \"what\": \"decode\", \"ctx\": %d, \"B\": %d, \"ms\": %.4f, "
                                "\"tok_s\": %.1f, \"bytes_per_step\": %.0f, \"bw_frac\": %.4f}",
                            first ? "" : ",\n", s->name, L, B, ms, tps, bytes, bw), first = 0;
                fflush(stdout);
            }
        model_free(&m);
        kernel_ctx_free(&ctx);
    }
    if (js) {
        fprintf(js, "\n]}\n");
        fclose(js);
    }
    return 0;
}
