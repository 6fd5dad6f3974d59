/* curricula/jsonl_source.c: the JSONL task source (see jsonl_source.h).
 *
 * The file is read line by line (getline, so lines have no length limit; a trailing "\r" and a
 * UTF-8 byte-order mark on line 1 are dropped). Each non-blank line is parsed on its own by jansson
 * (json_loadb with JSON_REJECT_DUPLICATES, which also rejects invalid UTF-8 and "\u0000") and
 * validated field by field; the first problem found with a line is described in one short
 * sentence. Accepted strings are appended to one growing text buffer and the entry keeps offsets,
 * so memory is about the size of the useful text, not of a Problem per line.
 */
#include "curricula/jsonl_source.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json_util.h"
#include "core/log.h"

#define JSONL_WHY_MAX 256


/* Append str (len bytes) + NUL to s->text; *off gets its offset. 0 or ERR_NOMEM. */
static int text_append(JsonlSource *s, const char *str, size_t len, size_t *off) {
    if (s->text_len + len + 1 > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 4096;
        while (cap < s->text_len + len + 1) cap *= 2;
        char *t = realloc(s->text, cap);
        if (t == NULL) return err_set(ERR_NOMEM, "%s: out of memory for %zu bytes of problem text", s->path, cap);
        s->text = t;
        s->text_cap = cap;
    }
    memcpy(s->text + s->text_len, str, len);
    s->text[s->text_len + len] = '\0';
    *off = s->text_len;
    s->text_len += len + 1;
    return 0;
}

/* The shortest "%.*g" text of x that reads back as x exactly. */
static void format_real(double x, char *out, size_t cap) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, x);
        if (strtod(out, NULL) == x) return;
    }
}

/* A required or optional string field: 0 ok (str and len set, or NULL when absent and optional),
 * else 1 with why filled. */
static int get_string(json_t *obj, const char *key, int required, size_t max, const char **str, size_t *len,
                      char *why) {
    json_t *v = json_object_get(obj, key);
    *str = NULL;
    *len = 0;
    if (v == NULL) {
        if (!required) return 0;
        snprintf(why, JSONL_WHY_MAX, "missing \"%s\"", key);
        return 1;
    }
    if (!json_is_string(v)) {
        snprintf(why, JSONL_WHY_MAX, "\"%s\" must be a string, got %s", key, json_type_name(v));
        return 1;
    }
    *str = json_string_value(v);
    *len = json_string_length(v);
    if (required && *len == 0) {
        snprintf(why, JSONL_WHY_MAX, "\"%s\" is empty", key);
        return 1;
    }
    if (*len > max) {
        snprintf(why, JSONL_WHY_MAX, "\"%s\" is %zu bytes, longer than the limit of %zu", key, *len, max);
        return 1;
    }
    return 0;
}

/* The answer (string or number) as text into buf. 0 ok, else 1 with why. */
static int get_answer(json_t *obj, char *buf, size_t cap, char *why) {
    json_t *v = json_object_get(obj, "answer");
    const char *str;
    size_t len;
    if (v != NULL && json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (v != NULL && json_is_real(v)) {
        format_real(json_real_value(v), buf, cap);
        return 0;
    }
    if (v != NULL && !json_is_string(v)) {
        snprintf(why, JSONL_WHY_MAX, "\"answer\" must be a string or a number, got %s", json_type_name(v));
        return 1;
    }
    if (get_string(obj, "answer", 1, cap - 1, &str, &len, why)) return 1;
    memcpy(buf, str, len + 1);
    return 0;
}

/* The optional id (string or integer) as text into buf ("" if absent). 0 ok, else 1 with why. */
static int get_id(json_t *obj, char *buf, size_t cap, char *why) {
    json_t *v = json_object_get(obj, "id");
    const char *str;
    size_t len;
    buf[0] = '\0';
    if (v != NULL && json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (v != NULL && !json_is_string(v)) {
        snprintf(why, JSONL_WHY_MAX, "\"id\" must be a string or an integer, got %s", json_type_name(v));
        return 1;
    }
    if (get_string(obj, "id", 0, cap - 1, &str, &len, why)) return 1;
    if (str != NULL) memcpy(buf, str, len + 1);
    return 0;
}

/* A code task's tests ("tests", "test_program", "language") as compact JSON into *spec (malloc'd;
 * NULL when the line has none). 0 ok, 1 malformed (why), or ERR_NOMEM. */
static int get_code_spec(json_t *obj, char **spec, char *why) {
    json_t *tests = json_object_get(obj, "tests"), *tp = json_object_get(obj, "test_program");
    json_t *lang = json_object_get(obj, "language");
    *spec = NULL;
    if (tests == NULL && tp == NULL) return 0;
    if (tests != NULL && (!json_is_array(tests) || json_array_size(tests) > 256)) {
        snprintf(why, JSONL_WHY_MAX, "\"tests\" must be an array of at most 256 {\"input\", \"output\"} objects");
        return 1;
    }
    for (size_t i = 0; tests != NULL && i < json_array_size(tests); i++) {
        json_t *t = json_array_get(tests, i);
        if (!json_is_object(t) || !json_is_string(json_object_get(t, "input")) ||
            !json_is_string(json_object_get(t, "output"))) {
            snprintf(why, JSONL_WHY_MAX, "tests[%zu] must be {\"input\": string, \"output\": string}", i);
            return 1;
        }
    }
    if ((tp != NULL && !json_is_string(tp)) ||
        (lang != NULL && (!json_is_string(lang) || (strcmp(json_string_value(lang), "python") != 0 &&
                                                    strcmp(json_string_value(lang), "c") != 0)))) {
        snprintf(why, JSONL_WHY_MAX, "\"test_program\" must be a string and \"language\" \"python\" or \"c\"");
        return 1;
    }
    if (tp == NULL && json_array_size(tests) == 0) {
        snprintf(why, JSONL_WHY_MAX, "a code task needs at least one test or a \"test_program\"");
        return 1;
    }
    json_t *o = json_object();
    if (o == NULL || (tests && json_object_set(o, "tests", tests)) || (tp && json_object_set(o, "test_program", tp)) ||
        (lang && json_object_set(o, "language", lang)) || (*spec = json_dumps(o, JSON_COMPACT)) == NULL) {
        json_decref(o);
        return ERR_NOMEM;
    }
    json_decref(o);
    return 0;
}

/* The rest of entry s->entries[s->n]: a slot for it, its difficulty and line, and the code spec
 * (NULL: not a code task). 0 ok, 1 malformed (why), or ERR_NOMEM. */
static int add_fields(JsonlSource *s, json_t *obj, const char *spec, long line, char *why) {
    int difficulty = 1;
    json_t *dv = json_object_get(obj, "difficulty");
    if (dv != NULL) {
        if (!json_is_integer(dv)) {
            snprintf(why, JSONL_WHY_MAX, "\"difficulty\" must be an integer >= 1, got %s", json_type_name(dv));
            return 1;
        }
        if (json_integer_value(dv) < 1 || json_integer_value(dv) > INT_MAX) {
            snprintf(why, JSONL_WHY_MAX, "\"difficulty\" must be an integer in [1, %d], got %" JSON_INTEGER_FORMAT,
                     INT_MAX, json_integer_value(dv));
            return 1;
        }
        difficulty = (int)json_integer_value(dv);
    }
    if (s->n == s->entries_cap) {
        long cap = s->entries_cap ? 2 * s->entries_cap : 256;
        JsonlEntry *e = realloc(s->entries, sizeof(JsonlEntry) * (size_t)cap);
        if (e == NULL) return err_set(ERR_NOMEM, "%s: out of memory for %ld entries", s->path, cap);
        s->entries = e;
        s->entries_cap = cap;
    }
    JsonlEntry *e = &s->entries[s->n];
    memset(e, 0, sizeof(*e));
    e->difficulty = difficulty;
    e->line = line;
    e->is_code = spec != NULL;
    return spec != NULL ? text_append(s, spec, strlen(spec), &e->code_spec) : 0;
}

/* Validate one parsed line and append it as an entry. 0 ok, 1 malformed (why), or ERR_NOMEM. */
static int add_entry(JsonlSource *s, json_t *obj, long line, char *why) {
    const char *prompt, *solution;
    size_t prompt_len, solution_len;
    char answer[TASK_ANSWER_MAX], id[TASK_ANSWER_MAX];
    if (!json_is_object(obj)) {
        snprintf(why, JSONL_WHY_MAX, "expected a JSON object, got %s", json_type_name(obj));
        return 1;
    }
    if (get_string(obj, "prompt", 1, TASK_PROMPT_MAX - 1, &prompt, &prompt_len, why)) return 1;
    char *spec = NULL;
    int crc = get_code_spec(obj, &spec, why);
    if (crc != 0) return crc == ERR_NOMEM ? err_set(ERR_NOMEM, "%s: out of memory for a code task", s->path) : 1;
    int rc = 0;
    answer[0] = '\0';
    if ((spec == NULL || json_object_get(obj, "answer") != NULL) && get_answer(obj, answer, sizeof(answer), why)) rc = 1;
    if (rc == 0 && get_string(obj, "solution", 0, TASK_SOLUTION_MAX - 1, &solution, &solution_len, why)) rc = 1;
    if (rc == 0 && get_id(obj, id, sizeof(id), why)) rc = 1;
    if (rc == 0) rc = add_fields(s, obj, spec, line, why);
    free(spec);
    if (rc != 0) return rc;
    JsonlEntry *e = &s->entries[s->n];
    rc = text_append(s, prompt, prompt_len, &e->prompt);
    if (rc == 0) rc = text_append(s, answer, strlen(answer), &e->answer);
    if (rc == 0) rc = text_append(s, solution ? solution : "", solution_len, &e->solution);
    if (rc == 0) rc = text_append(s, id, strlen(id), &e->id);
    if (rc != 0) return rc;
    s->n++;
    return 0;
}

/* Handle one line (without its newline). 0, or an error code to stop the load with. */
static int load_line(JsonlSource *s, char *buf, size_t len, long line, int strict) {
    if (line == 1 && len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 BOM */
        buf += 3;
        len -= 3;
    }
    size_t k = 0;
    while (k < len && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\r')) k++;
    if (k == len) return 0; /* blank line */
    char why[JSONL_WHY_MAX];
    json_error_t jerr;
    json_t *obj = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc;
    if (obj == NULL) {
        snprintf(why, sizeof(why), "invalid JSON: %s (column %d)%s", jerr.text, jerr.column,
                 strstr(jerr.text, "too big integer") ? "; write numbers beyond 64 bits as strings" : "");
        rc = 1;
    } else {
        rc = add_entry(s, obj, line, why);
        json_decref(obj);
    }
    if (rc <= 0) return rc;
    s->n_malformed++;
    if (strict)
        return err_set(ERR_FORMAT, "%s:%ld: %s\nHINT: fix or remove the line, or set data.strict: false to skip it",
                       s->path, line, why);
    if (s->n_malformed <= JSONL_MAX_WARNINGS) log_warn("%s:%ld: %s (line skipped)", s->path, line, why);
    if (s->n_malformed == JSONL_MAX_WARNINGS)
        log_warn("%s: further malformed lines are counted but not reported", s->path);
    return 0;
}

int jsonl_source_load(JsonlSource *s, const char *path, int strict) {
    memset(s, 0, sizeof(*s));
    snprintf(s->path, sizeof(s->path), "%s", path);
    FILE *f = fopen(path, "rb");
    if (f == NULL) return err_set(ERR_IO, "%s: cannot open the JSONL file: %s", path, strerror(errno));
    char *buf = NULL;
    size_t buf_cap = 0;
    ssize_t got;
    int rc = 0;
    while (rc == 0 && (got = getline(&buf, &buf_cap, f)) >= 0) {
        size_t len = (size_t)got;
        s->n_lines++;
        if (len > 0 && buf[len - 1] == '\n') len--;
        if (len > 0 && buf[len - 1] == '\r') len--;
        rc = load_line(s, buf, len, s->n_lines, strict);
    }
    if (rc == 0 && ferror(f)) rc = err_set(ERR_IO, "%s: read error after line %ld", path, s->n_lines);
    free(buf);
    fclose(f);
    if (rc == 0 && s->n == 0)
        rc = err_set(ERR_FORMAT, "%s: no valid problems (%ld lines, %ld malformed)", path, s->n_lines,
                     s->n_malformed);
    if (rc != 0) {
        jsonl_source_free(s);
        return rc;
    }
    if (s->n_malformed > 0)
        log_warn("%s: loaded %ld problems, skipped %ld malformed lines", path, s->n, s->n_malformed);
    return 0;
}

long jsonl_source_count(const JsonlSource *s) { return s->n; }

long jsonl_source_malformed(const JsonlSource *s) { return s->n_malformed; }

int jsonl_source_get(const JsonlSource *s, long index, Problem *p) {
    if (index < 0 || index >= s->n)
        return err_set(ERR_RANGE, "%s: problem index %ld is outside [0, %ld)", s->path, index, s->n);
    const JsonlEntry *e = &s->entries[index];
    memset(p, 0, sizeof(*p));
    snprintf(p->family, sizeof(p->family), "jsonl");
    p->difficulty = e->difficulty;
    p->id = (uint64_t)index;
    /* Lengths were checked at load, so these copies never truncate. */
    snprintf(p->prompt, sizeof(p->prompt), "%s", s->text + e->prompt);
    snprintf(p->answer, sizeof(p->answer), "%s", s->text + e->answer);
    snprintf(p->solution, sizeof(p->solution), "%s", s->text + e->solution);
    snprintf(p->data, sizeof(p->data), "%s", s->text + e->id);
    if (e->is_code) {
        snprintf(p->family, sizeof(p->family), "code");
        p->code_spec = s->text + e->code_spec;
    }
    return 0;
}

long jsonl_source_line(const JsonlSource *s, long index) {
    return index >= 0 && index < s->n ? s->entries[index].line : -1;
}

void jsonl_source_free(JsonlSource *s) {
    free(s->entries);
    free(s->text);
    s->entries = NULL;
    s->text = NULL;
    s->n = s->entries_cap = 0;
    s->text_len = s->text_cap = 0;
}
