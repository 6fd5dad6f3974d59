/* model/chat_template.c: see chat_template.h. Each format is a table of strings (document prefix,
 * the text before and after the system prompt and the user message, the generation prompt), plus
 * the special tokens it needs and the one that ends an assistant turn. */
#include "model/chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct {
    const char *name;
    const char *prefix, *system_open, *system_close, *user_open, *user_close, *gen_prompt;
    const char *needs[4]; /* special tokens that must exist, NULL-terminated */
    const char *end_of_turn;
} ChatFormat;

static const ChatFormat k_formats[] = {
    [CHAT_NONE] = {"none", NULL, NULL, NULL, NULL, NULL, NULL, {NULL}, NULL},
    [CHAT_CHATML] = {"chatml", "", "<|im_start|>system\n", "<|im_end|>\n", "<|im_start|>user\n", "<|im_end|>\n",
                     "<|im_start|>assistant\n", {"<|im_start|>", "<|im_end|>", NULL}, "<|im_end|>"},
    [CHAT_MINIMAX] = {"minimax", "<begin_of_document>", "<beginning_of_sentence>system ai_setting=assistant\n",
                      "<end_of_sentence>\n", "<beginning_of_sentence>user name=user\n", "<end_of_sentence>\n",
                      "<beginning_of_sentence>ai name=assistant\n",
                      {"<begin_of_document>", "<beginning_of_sentence>", "<end_of_sentence>", NULL},
                      "<end_of_sentence>"},
};
#define N_FORMATS ((int)(sizeof k_formats / sizeof k_formats[0]))

int chat_format_parse(const char *name, int *format) {
    for (int f = 0; f < N_FORMATS; f++)
        if (strcmp(name, k_formats[f].name) == 0) return *format = f, 0;
    return err_set(ERR_CONFIG, "data.chat_template: unknown template '%s'\nHINT: one of none, chatml, minimax", name);
}

size_t chat_render(int format, const char *system, const char *user, char *out, size_t cap) {
    CHECK(format > CHAT_NONE && format < N_FORMATS, "chat format %d", format);
    const ChatFormat *f = &k_formats[format];
    int sys = system && system[0];
    const char *parts[] = {f->prefix, sys ? f->system_open : "", sys ? system : "", sys ? f->system_close : "",
                           f->user_open, user, f->user_close, f->gen_prompt};
    size_t pos = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t len = strlen(parts[i]);
        if (pos < cap) memcpy(out + pos, parts[i], len < cap - 1 - pos ? len : cap - 1 - pos);
        pos += len;
    }
    if (cap > 0) out[pos < cap ? pos : cap - 1] = '\0';
    return pos;
}

int chat_template_attach(Tokenizer *t, int format, const char *system) {
    if (format == CHAT_NONE) return 0;
    CHECK(format > CHAT_NONE && format < N_FORMATS && !t->chat, "chat format %d", format);
    const ChatFormat *f = &k_formats[format];
    for (const char *const *s = f->needs; *s; s++)
        if (t->added_id(t, *s) < 0)
            return err_set(ERR_CONFIG, "data.chat_template %s needs the special token %s, which the tokenizer lacks\n"
                                       "HINT: set model.tokenizer to the model's tokenizer.json, or use another template",
                           f->name, *s);
    ChatTemplate *c = calloc(1, sizeof(*c));
    if (!c || !(c->system = strdup(system ? system : ""))) {
        free(c);
        return err_set(ERR_NOMEM, "out of memory");
    }
    c->format = format;
    t->chat = c;
    t->eos = t->added_id(t, f->end_of_turn);
    return 0;
}

int chat_prompt_tokens(const Tokenizer *t, const char *user, int *out, int cap) {
    CHECK(t->chat, "no chat template attached");
    size_t n = chat_render(t->chat->format, t->chat->system, user, NULL, 0);
    char *text = xmalloc(n + 1);
    chat_render(t->chat->format, t->chat->system, user, text, n + 1);
    int got = t->encode(t, text, out, cap);
    free(text);
    return got < 0 ? -1 : got;
}
