/* rewards/code_verify.c: the code verifier (see code_verify.h).
 *
 * Per program: a fresh folder work_root/cispo-code-XXXXXX (mode 0755) holding solution.py or
 * solution.c (and test.py for a checker); a C program is compiled first by gcc inside the sandbox
 * with the folder writable (owned by the sandbox uid for that step only); then each test is one
 * sandbox run with the folder read-only, the test's input on stdin, and its stdout compared with
 * the expected output here, outside the sandbox (the program never sees the expected output).
 * The folder is removed at the end whatever happened. Runs stop at the first infrastructure
 * failure (the verdict is then `infra` and its score is not used).
 */
#include "rewards/code_verify.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

int code_verifier_init(CodeVerifier *v, const SandboxConfig *run, int all_or_nothing, const char *work_root) {
    memset(v, 0, sizeof(*v));
    if (run != NULL) v->run = *run;
    else sandbox_config_default(&v->run);
    int rc = sandbox_config_check(&v->run);
    if (rc != 0) return rc;
    v->compile = v->run;
    v->compile.wall_ms = 10 * v->run.wall_ms;
    v->compile.cpu_s = 10 * v->run.cpu_s;
    if (v->compile.mem_bytes < (512L << 20)) v->compile.mem_bytes = 512L << 20;
    if (v->compile.file_max_bytes < (64L << 20)) v->compile.file_max_bytes = 64L << 20;
    if (v->compile.tmp_bytes < (64L << 20)) v->compile.tmp_bytes = 64L << 20;
    v->all_or_nothing = all_or_nothing != 0;
    snprintf(v->work_root, sizeof(v->work_root), "%s", work_root ? work_root : "/tmp");
    if ((rc = sandbox_self_check(&v->run)) != 0) return rc;
    v->ready = 1;
    return 0;
}

int code_output_equal(const char *a, size_t a_len, const char *b, size_t b_len) {
    size_t i = 0, j = 0;
    for (;;) {
        while (i < a_len && isspace((unsigned char)a[i])) i++;
        while (j < b_len && isspace((unsigned char)b[j])) j++;
        if (i == a_len || j == b_len) return i == a_len && j == b_len;
        while (i < a_len && j < b_len && !isspace((unsigned char)a[i]) && !isspace((unsigned char)b[j]))
            if (a[i++] != b[j++]) return 0;
        int a_end = i == a_len || isspace((unsigned char)a[i]), b_end = j == b_len || isspace((unsigned char)b[j]);
        if (a_end != b_end) return 0;
    }
}

void code_extract_program(const char *answer, const char **begin, size_t *len, char *lang, size_t lang_cap) {
    const char *f = strstr(answer, "```");
    lang[0] = '\0';
    *begin = answer;
    *len = strlen(answer);
    if (f == NULL) return;
    const char *tag = f + 3, *nl = strchr(tag, '\n');
    if (nl == NULL) return;
    size_t tl = (size_t)(nl - tag);
    while (tl > 0 && isspace((unsigned char)tag[tl - 1])) tl--;
    snprintf(lang, lang_cap, "%.*s", (int)(tl < lang_cap ? tl : lang_cap - 1), tag);
    for (char *c = lang; *c; c++) *c = (char)tolower((unsigned char)*c);
    const char *body = nl + 1, *end = strstr(body, "```");
    *begin = body;
    *len = end ? (size_t)(end - body) : strlen(body);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int write_file(const char *dir, const char *name, const char *text, size_t len) {
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n <= 0) break;
        done += (size_t)n;
    }
    return close(fd) == 0 && done == len ? 0 : -1;
}

/* The parsed spec: borrowed pointers into the json_t. */
typedef struct {
    const char *lang;
    json_t *tests;             /* array or NULL */
    const char *test_program;  /* or NULL */
    int n;                     /* number of tests */
} Spec;

static int parse_spec(json_t *root, Spec *s) {
    memset(s, 0, sizeof(*s));
    if (!json_is_object(root)) return err_set(ERR_FORMAT, "code task: the tests must be a JSON object");
    json_t *l = json_object_get(root, "language");
    s->lang = json_is_string(l) ? json_string_value(l) : "python";
    if (l != NULL && !json_is_string(l)) return err_set(ERR_FORMAT, "code task: \"language\" must be a string");
    s->tests = json_object_get(root, "tests");
    json_t *tp = json_object_get(root, "test_program");
    if (tp != NULL && !json_is_string(tp)) return err_set(ERR_FORMAT, "code task: \"test_program\" must be a string");
    s->test_program = tp ? json_string_value(tp) : NULL;
    if (s->tests != NULL && !json_is_array(s->tests))
        return err_set(ERR_FORMAT, "code task: \"tests\" must be an array of {\"input\", \"output\"} objects");
    size_t nt = s->tests ? json_array_size(s->tests) : 0;
    if (nt > CODE_MAX_TESTS) return err_set(ERR_FORMAT, "code task: %zu tests, more than %d", nt, CODE_MAX_TESTS);
    for (size_t i = 0; i < nt; i++) {
        json_t *t = json_array_get(s->tests, i);
        if (!json_is_object(t) || !json_is_string(json_object_get(t, "input")) ||
            !json_is_string(json_object_get(t, "output")))
            return err_set(ERR_FORMAT, "code task: test %zu must be {\"input\": string, \"output\": string}", i);
    }
    s->n = (int)nt + (s->test_program != NULL);
    if (s->n == 0) return err_set(ERR_FORMAT, "code task: no \"tests\" and no \"test_program\"");
    if (strcmp(s->lang, "python") != 0 && strcmp(s->lang, "c") != 0)
        return err_set(ERR_FORMAT, "code task: language '%s' is not supported (python or c)", s->lang);
    return 0;
}

/* One sandbox run; counts it. Returns the result's status. */
static SandboxStatus run_one(CodeVerifier *v, const SandboxConfig *c, SandboxJob *job, SandboxResult *r) {
    atomic_fetch_add(&v->n_runs, 1);
    if (sandbox_run(c, job, r) != 0) {
        memset(r, 0, sizeof(*r));
        r->status = SBX_INFRA;
        snprintf(r->why, sizeof(r->why), "%s", err_msg());
    }
    return r->status;
}

static void set_infra(CodeVerdict *out, const char *why) {
    out->infra = 1;
    snprintf(out->why, sizeof(out->why), "infrastructure: %.200s", why);
}

/* Compile dir/solution.c into dir/solution. 1 compiled, 0 compile error (why set), -1 infra. */
static int compile_c(CodeVerifier *v, const char *dir, CodeVerdict *out) {
    static const char *const argv[] = {"/usr/bin/gcc", "-B/usr/bin/", "-O2", "-std=gnu11", "-pipe", "-o", "/box/solution",
                                       "/box/solution.c", "-lm", NULL};
    if (chown(dir, (uid_t)v->compile.uid, (gid_t)v->compile.gid) != 0) {
        set_infra(out, "cannot hand the folder to the sandbox uid");
        return -1;
    }
    SandboxJob job = {.dir = dir, .dir_writable = 1, .argv = argv};
    SandboxResult r;
    SandboxStatus st = run_one(v, &v->compile, &job, &r);
    int rc = chown(dir, getuid(), getgid()) == 0 ? 1 : -1;
    if (rc < 0) set_infra(out, "cannot take the folder back from the sandbox uid");
    else if (st == SBX_INFRA) rc = -1, set_infra(out, r.why);
    else if (st != SBX_EXITED || r.exit_code != 0) {
        const char *e = strstr(r.err, "error:"), *line = r.err;
        for (const char *q = r.err; e != NULL && q < e; q++)
            if (*q == '\n') line = q + 1; /* the line of gcc's first error */
        size_t n = strcspn(line, "\n");
        snprintf(out->why, sizeof(out->why), "compile error: %.*s", (int)(n > 200 ? 200 : n), line);
        rc = 0;
    }
    sandbox_result_free(&r);
    return rc;
}

/* Run every test; counts passes into out. Stops at an infrastructure failure. */
static void run_tests(CodeVerifier *v, const Spec *s, const char *dir, int is_c, CodeVerdict *out) {
    const char *sol_argv[] = {is_c ? "/box/solution" : "/usr/bin/python3", is_c ? NULL : "/box/solution.py", NULL};
    const char *chk_argv[] = {"/usr/bin/python3", "/box/test.py", NULL};
    for (int i = 0; i < s->n && !out->infra; i++) {
        int checker = i == (int)(s->tests ? json_array_size(s->tests) : 0);
        json_t *t = checker ? NULL : json_array_get(s->tests, (size_t)i);
        const char *input = t ? json_string_value(json_object_get(t, "input")) : NULL;
        SandboxJob job = {.dir = dir, .argv = checker ? chk_argv : sol_argv, .stdin_data = input,
                          .stdin_len = t ? json_string_length(json_object_get(t, "input")) : 0};
        SandboxResult r;
        SandboxStatus st = run_one(v, &v->run, &job, &r);
        int pass = st == SBX_EXITED && r.exit_code == 0;
        if (pass && t != NULL) {
            json_t *e = json_object_get(t, "output");
            pass = code_output_equal(r.out, r.out_len, json_string_value(e), json_string_length(e));
        }
        if (st == SBX_INFRA) set_infra(out, r.why);
        else if (pass) out->n_passed++;
        else if (out->why[0] == '\0')
            snprintf(out->why, sizeof(out->why), "test %d: %s", i,
                     st == SBX_TIMEOUT ? "time limit" : st == SBX_OUTPUT_LIMIT ? "output limit"
                     : r.exit_code != 0 ? "runtime error (non-zero exit)" : "wrong answer");
        sandbox_result_free(&r);
    }
}

int code_verify(CodeVerifier *v, const char *spec_json, const char *program, const char *lang, CodeVerdict *out) {
    memset(out, 0, sizeof(*out));
    if (!v->ready)
        return err_set(ERR_UNSUPPORTED, "code verifier: the sandbox self-check has not passed; refusing to run code");
    json_error_t jerr;
    json_t *root = json_loads(spec_json ? spec_json : "", JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) return err_set(ERR_FORMAT, "code task: tests are not valid JSON: %s", jerr.text);
    Spec s;
    int rc = parse_spec(root, &s);
    if (rc != 0) goto done;
    if (lang == NULL || lang[0] == '\0') lang = s.lang;
    int is_c = strcmp(lang, "c") == 0;
    if (!is_c && strcmp(lang, "python") != 0 && strcmp(lang, "python3") != 0 && strcmp(lang, "py") != 0) {
        snprintf(out->why, sizeof(out->why), "unsupported language '%s'", lang);
        out->n_tests = s.n;
        goto done; /* a wrong answer, not an error: the response chose the language */
    }
    atomic_fetch_add(&v->n_programs, 1);
    out->n_tests = s.n;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/cispo-code-XXXXXX", v->work_root);
    if (mkdtemp(dir) == NULL || chmod(dir, 0755) != 0) {
        set_infra(out, "cannot make a folder for the program");
        goto counted;
    }
    if (write_file(dir, is_c ? "solution.c" : "solution.py", program, strlen(program)) != 0 ||
        (s.test_program && write_file(dir, "test.py", s.test_program, strlen(s.test_program)) != 0)) {
        set_infra(out, "cannot write the program into its folder");
    } else {
        out->compiled = is_c ? compile_c(v, dir, out) : 1;
        if (out->compiled < 0) out->compiled = 0;
        else if (out->compiled) run_tests(v, &s, dir, is_c, out);
    }
    if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && !out->infra) set_infra(out, "cannot remove the folder");
counted:
    if (out->infra) atomic_fetch_add(&v->n_infra, 1);
    out->score = v->all_or_nothing ? (float)(out->n_passed == out->n_tests) : (float)out->n_passed / (float)out->n_tests;
    if (out->infra) out->score = 0.0f;
done:
    json_decref(root);
    return rc;
}
