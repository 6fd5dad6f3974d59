/* model/chat_template.h: chat prompts for instruction-tuned Hugging Face models, built from the
 * tokenizer's own special tokens, with a system prompt (typically the instruction to reason in
 * <think> </think> and answer in <answer> </answer>, the tags rewards/reward.c reads).
 *
 *   chatml  (Qwen2):   <|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nUSER<|im_end|>\n
 *                      <|im_start|>assistant\n                        turn ends with <|im_end|>
 *   minimax (M1):      <begin_of_document><beginning_of_sentence>system ai_setting=assistant\nSYS
 *                      <end_of_sentence>\n<beginning_of_sentence>user name=user\nUSER<end_of_sentence>\n
 *                      <beginning_of_sentence>ai name=assistant\n   turn ends with <end_of_sentence>
 * (one line each; an empty system prompt leaves the system turn out.) The rendered text is encoded
 * with the tokenizer, so the marker strings become their special ids exactly as Hugging Face's
 * apply_chat_template(tokenize=True) does; a prompt is never preceded by a separate BOS.
 */
#ifndef CISPO_MODEL_CHAT_TEMPLATE_H
#define CISPO_MODEL_CHAT_TEMPLATE_H

#include <stddef.h>

#include "model/tokenizer.h"

enum { CHAT_NONE = 0, CHAT_CHATML, CHAT_MINIMAX };

typedef struct ChatTemplate {
    int format;   /* CHAT_CHATML | CHAT_MINIMAX */
    char *system; /* system prompt, owned ("" = no system turn) */
} ChatTemplate;

/* "none" | "chatml" | "minimax" -> CHAT_*; ERR_CONFIG naming the choices otherwise. */
int chat_format_parse(const char *name, int *format);
/* The prompt text (system turn, user turn, generation prompt) into out, snprintf-like: returns the
 * length it needed, writes at most cap - 1 bytes and a NUL. */
size_t chat_render(int format, const char *system, const char *user, char *out, size_t cap);
/* Attach a template to t (t owns it from then on): checks that t has the format's special tokens
 * (ERR_CONFIG naming the missing one) and makes EOS the end-of-turn token. CHAT_NONE does nothing. */
int chat_template_attach(Tokenizer *t, int format, const char *system);
/* Prompt ids of `user` through t's template into out (cap); the count, or -1 if it does not fit. */
int chat_prompt_tokens(const Tokenizer *t, const char *user, int *out, int cap);

/* The tokenizer a run uses: the byte tokenizer when path is empty, else tokenizer_bpe_load(path);
 * then the chat template named by `chat` ("none" | "chatml" | "minimax") with `system`. */
int tokenizer_open(Tokenizer *t, const char *path, const char *chat, const char *system);

#endif
