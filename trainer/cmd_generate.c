/* trainer/cmd_generate.c: `cispo generate [CONFIG] [overrides]`: build (or load) the policy,
 * prefill generate.num_samples copies of generate.prompt and sample generate.max_new_tokens
 * tokens each on the decode path, printing every sample with its stop reason and the decode
 * speed. Text is byte-level: ids 0-255 are bytes, 256 is BOS and 257 EOS (the built-in tasks'
 * tokenizer extends this); other ids print as <id>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "rollout/generate.h"
#include "trainer/commands.h"
#include "trainer/model_setup.h"

enum { TOK_BOS = 256, TOK_EOS = 257 };

static void print_text(const int *tok, int n) {
    for (int i = 0; i < n; i++) {
        int t = tok[i];
        if (t >= 32 && t < 127)
            putchar(t);
        else if (t == '\n')
            fputs("\\n", stdout);
        else if (t == TOK_EOS)
            fputs("<eos>", stdout);
        else
            printf("<%d>", t);
    }
}

int cmd_generate(int argc, char **argv) {
    RunConfig rc;
    int st = cli_load_config("generate", argc, argv, &rc);
    if (st) return st;
    const int B = rc.num_samples, P = (int)strlen(rc.prompt) + 1;
    if (P + rc.max_new_tokens > rc.max_seq_len) {
        fprintf(stderr, "cispo generate: prompt (%d tokens) + generate.max_new_tokens (%d) exceeds model.max_seq_len (%d)\n",
                P, rc.max_new_tokens, rc.max_seq_len);
        return 2;
    }
    KernelCtx ctx;
    Model m;
    int max_tokens = B * P > B ? B * P : B;
    if (model_setup(&rc, &ctx, &m, max_tokens, B)) {
        fprintf(stderr, "cispo generate: %s\n", err_msg());
        return 2;
    }
    if (m.cfg.vocab_size <= TOK_EOS) log_warn("vocabulary of %d has no byte-level BOS/EOS ids", m.cfg.vocab_size);
    Generator g;
    if (generator_init(&g, &m, B, P, rc.max_new_tokens)) {
        fprintf(stderr, "cispo generate: %s\n", err_msg());
        return 1;
    }
    int *prompts = xmalloc((size_t)B * P * sizeof(int)), *start = xmalloc((size_t)(B + 1) * sizeof(int));
    for (int b = 0; b < B; b++) {
        start[b] = b * P;
        prompts[b * P] = m.cfg.vocab_size > TOK_BOS ? TOK_BOS : 0;
        for (int i = 1; i < P; i++) prompts[b * P + i] = (unsigned char)rc.prompt[i - 1] % m.cfg.vocab_size;
    }
    start[B] = B * P;
    SeqPack pack = {B, start, NULL};
    GenParams gp = {(float)rc.temperature, (float)rc.top_p, rc.max_new_tokens,
                    m.cfg.vocab_size > TOK_EOS ? TOK_EOS : -1, (uint64_t)rc.seed, 3000, 0.99f,
                    strcmp(rc.lm_head_dtype, "bf16") == 0};
    double t0 = time_now_s();
    long n = rollout_generate(&g, prompts, &pack, &gp, 0);
    double dt = time_now_s() - t0;
    for (int b = 0; b < B; b++) {
        printf("[sample %d, %d tokens, stop: %s] %s", b, g.n_gen[b], stop_reason_name(g.stop[b]), rc.prompt);
        print_text(g.tokens + (size_t)b * g.max_new, g.n_gen[b]);
        putchar('\n');
    }
    printf("generated %ld tokens in %.3f s (%.1f tokens/s, batch %d, prefill %d tokens)\n", n, dt, n / dt, B, B * P);
    free(prompts);
    free(start);
    generator_free(&g);
    model_free(&m);
    kernel_ctx_free(&ctx);
    return 0;
}
