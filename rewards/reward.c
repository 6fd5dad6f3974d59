/* rewards/reward.c: answer extraction (the format check) and scoring by the family's verifier.
 *
 * The accepted format, with only whitespace allowed outside the tags:
 *   [<think> REASONING </think>] <answer> ANSWER </answer>
 * REASONING and ANSWER contain none of the four tags; nothing but whitespace follows </answer>
 * (the caller has already cut the response at EOS). A response that starts inside the think block
 * (a prompt ending in "<think>") must have "<think>" put back by the caller before scoring.
 *
 * When the format is broken, the answer is salvaged for logging only: the body of the last <answer>
 * that a </answer> follows, else whatever follows the last <answer>, else "". An answer
 * that does not fit the caller's buffer is a format failure too (it could not be verified whole).
 *
 * reward_score: format_ok from the extraction; correct = format_ok && verify(answer), with
 * task_family_find(p->family)->verify, or reward_math_equal against p->answer for "jsonl"; "code"
 * goes to the sandboxed code verifier (code_verify.h), whose infrastructure failures come back
 * masked instead of scored.
 */
#include <string.h>

#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "rewards/code_verify.h"
#include "rewards/reward.h"

static const char *const k_tags[] = {"<think>", "</think>", "<answer>", "</answer>"};
enum { TAG_THINK, TAG_END_THINK, TAG_ANSWER, TAG_END_ANSWER, TAG_N };

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static const char *skip_space(const char *s) {
    while (is_space(*s)) s++;
    return s;
}

/* 1 if [s, end) contains any of the four tags. */
static int has_tag(const char *s, const char *end) {
    for (const char *c = s; c < end; c++) {
        if (*c != '<') continue;
        for (int k = 0; k < TAG_N; k++) {
            size_t n = strlen(k_tags[k]);
            if ((size_t)(end - c) >= n && strncmp(c, k_tags[k], n) == 0) return 1;
        }
    }
    return 0;
}

/* Copy [s, end) trimmed into answer (cap bytes); 0 if it did not fit. */
static int copy_trimmed(const char *s, const char *end, char *answer, int cap) {
    while (s < end && is_space(*s)) s++;
    while (end > s && is_space(end[-1])) end--;
    size_t n = (size_t)(end - s), room = cap > 0 ? (size_t)cap - 1 : 0;
    int fits = n <= room;
    if (cap > 0) {
        memcpy(answer, s, fits ? n : room);
        answer[fits ? n : room] = '\0';
    }
    return fits;
}

/* The answer of a broken response, for logging: the body of the last <answer> that has a closing
 * tag after it, else everything after the last <answer>, else "". */
static void salvage(const char *response, char *answer, int cap) {
    const char *tag = k_tags[TAG_ANSWER];
    size_t al = strlen(tag);
    const char *best_b = NULL, *best_e = NULL, *last_open = NULL;
    for (const char *o = strstr(response, tag); o != NULL; o = strstr(o + 1, tag)) {
        last_open = o;
        const char *e = strstr(o + al, k_tags[TAG_END_ANSWER]);
        if (e != NULL) {
            best_b = o + al;
            best_e = e;
        }
    }
    answer[0] = '\0';
    if (best_b != NULL)
        copy_trimmed(best_b, best_e, answer, cap);
    else if (last_open != NULL)
        copy_trimmed(last_open + al, last_open + strlen(last_open), answer, cap);
}

int reward_extract_answer(const char *response, char *answer, int cap) {
    CHECK(response != NULL && answer != NULL && cap > 0, "bad arguments");
    const char *s = skip_space(response);
    size_t tl = strlen(k_tags[TAG_THINK]);
    if (strncmp(s, k_tags[TAG_THINK], tl) == 0) {
        const char *close = strstr(s + tl, k_tags[TAG_END_THINK]);
        if (close == NULL || has_tag(s + tl, close)) goto broken;
        s = skip_space(close + strlen(k_tags[TAG_END_THINK]));
    }
    size_t al = strlen(k_tags[TAG_ANSWER]);
    if (strncmp(s, k_tags[TAG_ANSWER], al) != 0) goto broken;
    const char *body = s + al;
    const char *close = strstr(body, k_tags[TAG_END_ANSWER]);
    if (close == NULL || has_tag(body, close)) goto broken;
    if (*skip_space(close + strlen(k_tags[TAG_END_ANSWER])) != '\0') goto broken;
    if (!copy_trimmed(body, close, answer, cap)) return 0;
    return 1;
broken:
    salvage(response, answer, cap);
    return 0;
}

/* Family "code": the program inside the answer tags runs against p->code_spec in the sandbox. */
static int score_code(const RewardConfig *rc, const Problem *p, const char *response, RewardResult *out) {
    if (rc->code == NULL || p->code_spec == NULL)
        return err_set(ERR_UNSUPPORTED, "reward: code task %llu but no sandboxed code verifier is set up\n"
                                        "HINT: code rewards need the sandbox (rewards/code_verify.h)",
                       (unsigned long long)p->id);
    size_t cap = strlen(response) + 1;
    char *body = malloc(cap), lang[16];
    if (body == NULL) return err_set(ERR_NOMEM, "reward: out of memory for a %zu-byte response", cap);
    out->format_ok = reward_extract_answer(response, body, (int)(cap < 0x7fffffff ? cap : 0x7fffffff));
    const char *prog;
    size_t len;
    code_extract_program(body, &prog, &len, lang, sizeof(lang));
    snprintf(out->answer, sizeof(out->answer), "%.*s", (int)len, prog);
    CodeVerdict v = {0};
    int err = 0;
    if (out->format_ok) {
        body[(size_t)(prog - body) + len] = '\0'; /* prog points into body */
        err = code_verify(rc->code, p->code_spec, prog, lang, &v);
    }
    free(body);
    if (err != 0) return err;
    out->masked = v.infra;
    out->correct = out->format_ok && !v.infra && v.score >= 1.0f;
    out->reward = v.infra ? 0.0f : rc->wrong_reward + v.score * (rc->correct_reward - rc->wrong_reward);
    if (!out->format_ok) out->reward += rc->format_penalty;
    return 0;
}

int reward_score(const RewardConfig *rc, const Problem *p, const char *response, RewardResult *out) {
    CHECK(rc != NULL && p != NULL && response != NULL && out != NULL, "bad arguments");
    memset(out, 0, sizeof(*out));
    if (strcmp(p->family, "code") == 0) return score_code(rc, p, response, out);
    int is_jsonl = strcmp(p->family, "jsonl") == 0;
    const TaskFamily *f = is_jsonl ? NULL : task_family_find(p->family);
    if (!is_jsonl && f == NULL)
        return err_set(ERR_NOTFOUND,
                       "reward: no verifier for task family '%s' (problem id %llu)\n"
                       "HINT: the built-in families are add, mul, runsum, sort, caesar, countdown, sudoku4, and jsonl",
                       p->family, (unsigned long long)p->id);
    out->format_ok = reward_extract_answer(response, out->answer, (int)sizeof(out->answer));
    if (out->format_ok) out->correct = is_jsonl ? reward_math_equal(out->answer, p->answer) : f->verify(p, out->answer);
    out->correct = out->correct != 0;
    out->reward = out->correct ? rc->correct_reward : rc->wrong_reward;
    if (!out->format_ok) out->reward += rc->format_penalty;
    return 0;
}
