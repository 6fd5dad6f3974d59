/* tests/model/test_chat_template.c: ChatML and MiniMax chat prompts: the exact rendered text
 * (with and without a system prompt), the ids against Hugging Face `tokenizers` encoding the same
 * prompts rendered independently in Python (tests/data/tokenizers/chat.jsonl), EOS becoming the
 * end-of-turn token, a reasoning/answer response round-tripping through the tag tokens, and the
 * errors for a tokenizer without the template's special tokens and for an unknown template name.
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

static void fixture_path(char *out, size_t cap, const char *rel) {
    const char *src = getenv("CISPO_SOURCE_DIR");
    snprintf(out, cap, "%s/tests/data/tokenizers/%s", src ? src : ".", rel);
}

static void open_tok(Tokenizer *t, const char *name, const char *chat, const char *system) {
    char p[600], rel[64];
    snprintf(rel, sizeof rel, "%s/tokenizer.json", name);
    fixture_path(p, sizeof p, rel);
    int err = tokenizer_open(t, p, chat, system);
    if (err) fail_msg("%s", err_msg());
}

static void test_render(void **state) {
    (void)state;
    char out[512];
    size_t n = chat_render(CHAT_CHATML, "Be brief.", "2+2?", out, sizeof out);
    const char *want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                       "<|im_start|>assistant\n";
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
    chat_render(CHAT_CHATML, "", "hi", out, sizeof out);
    assert_string_equal(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    chat_render(CHAT_MINIMAX, "Be brief.", "2+2?", out, sizeof out);
    assert_string_equal(out, "<begin_of_document><beginning_of_sentence>system ai_setting=assistant\nBe brief."
                             "<end_of_sentence>\n<beginning_of_sentence>user name=user\n2+2?<end_of_sentence>\n"
                             "<beginning_of_sentence>ai name=assistant\n");
    chat_render(CHAT_MINIMAX, NULL, "x", out, sizeof out);
    assert_string_equal(out, "<begin_of_document><beginning_of_sentence>user name=user\nx<end_of_sentence>\n"
                             "<beginning_of_sentence>ai name=assistant\n");
    char small[10];
    size_t need = chat_render(CHAT_CHATML, "Be brief.", "2+2?", small, sizeof small);
    assert_int_equal(need, strlen(want));
    assert_string_equal(small, "<|im_star");
}

/* Every prompt of chat.jsonl through the C template must give HF's ids. */
static void test_ids_match_hf(void **state) {
    (void)state;
    char path[600];
    fixture_path(path, sizeof path, "chat.jsonl");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *c = json_loads(line, 0, NULL), *want = json_object_get(c, "ids");
        assert_non_null(c);
        Tokenizer t;
        open_tok(&t, json_string_value(json_object_get(c, "tokenizer")), json_string_value(json_object_get(c, "format")),
                 json_string_value(json_object_get(c, "system")));
        int ids[1024];
        int k = chat_prompt_tokens(&t, json_string_value(json_object_get(c, "user")), ids, 1024);
        assert_int_equal(k, (int)json_array_size(want));
        for (int i = 0; i < k; i++) assert_int_equal(ids[i], json_integer_value(json_array_get(want, i)));
        assert_int_equal(chat_prompt_tokens(&t, "x", ids, 4), -1);
        tokenizer_free(&t);
        json_decref(c);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 8);
}

static void test_eos_and_tags(void **state) {
    (void)state;
    Tokenizer q, m;
    open_tok(&q, "qwen2", "chatml", "sys");
    open_tok(&m, "minimax", "minimax", "sys");
    assert_int_equal(q.eos, q.added_id(&q, "<|im_end|>"));
    assert_int_equal(m.eos, m.added_id(&m, "<end_of_sentence>"));
    assert_int_equal(m.bos, m.added_id(&m, "<begin_of_document>"));
    /* an SFT target: reasoning and answer tags are single ids, EOS ends the turn, decode gives it back */
    const char *resp = "<think>3 + 4 = 7</think><answer>7</answer>";
    int ids[256];
    int n = q.encode(&q, resp, ids, 255);
    assert_int_equal(ids[0], q.tag[TOK_SPECIAL_THINK]);
    assert_int_equal(ids[n - 1], q.tag[TOK_SPECIAL_END_ANSWER]);
    ids[n] = q.eos;
    char back[256];
    q.decode(&q, ids, n + 1, back, sizeof back);
    assert_string_equal(back, resp);
    tokenizer_free(&q);
    tokenizer_free(&m);
}

static void test_errors(void **state) {
    (void)state;
    Tokenizer t;
    assert_int_equal(tokenizer_open(&t, "", "chatml", "sys"), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "data.chat_template chatml needs the special token <|im_start|>"));
    assert_int_equal(tokenizer_open(&t, "", "alpaca", ""), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "unknown template 'alpaca'"));
    char p[600];
    fixture_path(p, sizeof p, "llama3/tokenizer.json");
    assert_int_equal(tokenizer_open(&t, p, "minimax", ""), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "<begin_of_document>"));
    assert_int_equal(tokenizer_open(&t, "", "none", "ignored"), 0); /* the byte tokenizer, plain prompts */
    assert_int_equal(t.vocab_size, TOK_BYTE_VOCAB);
    assert_null(t.chat);
    tokenizer_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_ids_match_hf),
        cmocka_unit_test(test_eos_and_tags),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
