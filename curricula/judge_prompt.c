/* curricula/judge_prompt.c: see judge_prompt.h. */
#include "curricula/judge_prompt.h"

#include <stdio.h>

#include "core/error.h"

int judge_prompt(char *out, size_t cap, JudgeMode mode, const char *question, const char *reference,
                 const char *response, int swapped) {
    CHECK(out != NULL && cap > 0 && question && reference && response, "bad arguments");
    CHECK(mode == JUDGE_PAIRWISE || mode == JUDGE_GRADE, "bad JudgeMode %d", (int)mode);
    const char *head = mode == JUDGE_PAIRWISE ? "Compare." : "Grade 1-5.";
    const char *ref_label = mode == JUDGE_PAIRWISE ? "Reference" : "Truth";
    int n = swapped ? snprintf(out, cap, "%s\nQ: %s\nResponse: %s\n%s: %s", head, question, response, ref_label, reference)
                    : snprintf(out, cap, "%s\nQ: %s\n%s: %s\nResponse: %s", head, question, ref_label, reference, response);
    return n >= 0 && (size_t)n < cap ? n : -1;
}
