/* curricula/task_countdown.c: "countdown", reach a target from d given numbers (difficulty d =
 * 2..6, numbers 1-12) with + - * / and parentheses, each number used at most once.
 *
 *   prompt   "reach 22 with 3,8,4,2"
 *   solution "<think>8-3=5;5*4=20;20+2=22</think><answer>(8-3)*4+2</answer>"
 *   data     "22;3,8,4,2"   (target; the numbers, for the verifier)
 *
 * Generation builds the target from the numbers, so every problem is solvable: while more than
 * one value is left, two random ones are combined with a random operation that keeps every value a
 * positive integer (a - b only when a > b, a / b only when exact and b > 1, a * b only when both
 * exceed 1 and the product is at most 1000). Each combination is a reasoning step "x op y = z"; the
 * answer is the expression of the last value, with the parentheses it needs.
 *
 * Noise: a step copies one of its original numbers off by one and computes on (values and
 * expression use the miscopied number, so the expression uses a number more often than given and
 * is rejected), or, when no such slip is possible, uses another operation that changes its
 * result (the expression then misses the target, barring coincidences). A slip is kept only if
 * every step still gives a positive integer. The problem itself is drawn before and apart from
 * the slips, so it does not depend on the noise.
 *
 * Verifier: a recursive-descent parser over decimal numbers (no signs, no leading zeros), + - * /,
 * parentheses and spaces, anything else rejected; every number must be one of the given ones and
 * used at most as often as given; division must be exact (and not by zero); 64-bit overflow is
 * rejected; the value must equal the target.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "curricula/task_internal.h"

#define CD_MAX_NUMBERS 6
#define CD_EXPR_MAX 96
#define CD_MAX_PRODUCT 1000
#define CD_MAX_DEPTH 64

enum { CD_PREC_ADD = 1, CD_PREC_MUL = 2, CD_PREC_ATOM = 3 };

/* The expression tree: nodes 0..d-1 are the given numbers, node d+k is made by step k. */
typedef struct {
    int d;
    int lhs[CD_MAX_NUMBERS - 1], rhs[CD_MAX_NUMBERS - 1]; /* node ids combined by step k */
    char op[CD_MAX_NUMBERS - 1];
    long val[2 * CD_MAX_NUMBERS - 1]; /* true values */
} CdTree;

static long cd_apply(long x, char op, long y) {
    switch (op) {
    case '+': return x + y;
    case '-': return x - y;
    case '*': return x * y;
    default: return x / y;
    }
}

/* op is valid on (x, y): keeps the result a positive integer within the bounds above. */
static int cd_valid(long x, char op, long y) {
    switch (op) {
    case '+': return 1;
    case '-': return x > y;
    case '*': return x > 1 && y > 1 && x * y <= CD_MAX_PRODUCT;
    default: return y > 1 && x % y == 0;
    }
}

/* Values of all nodes from leaf values `leaf` into v; 0 if some step is not valid on them. */
static int cd_eval(const CdTree *t, const long *leaf, long *v) {
    for (int i = 0; i < t->d; i++) {
        if (leaf[i] < 1) return 0;
        v[i] = leaf[i];
    }
    for (int k = 0; k < t->d - 1; k++) {
        long x = v[t->lhs[k]], y = v[t->rhs[k]];
        if (!cd_valid(x, t->op[k], y)) return 0;
        v[t->d + k] = cd_apply(x, t->op[k], y);
    }
    return 1;
}

static int cd_prec(const CdTree *t, int node) {
    if (node < t->d) return CD_PREC_ATOM;
    char op = t->op[node - t->d];
    return (op == '+' || op == '-') ? CD_PREC_ADD : CD_PREC_MUL;
}

/* Render node `node` with leaf values v into b, with the parentheses it needs: an operand of lower
 * precedence, and a right operand of equal precedence under - and /. */
static void cd_render(const CdTree *t, const long *v, int node, TaskBuf *b) {
    if (node < t->d) {
        tbuf_printf(b, "%ld", v[node]);
        return;
    }
    int k = node - t->d;
    char op = t->op[k];
    int prec = cd_prec(t, node);
    for (int side = 0; side < 2; side++) {
        int child = side == 0 ? t->lhs[k] : t->rhs[k];
        int cp = cd_prec(t, child);
        int par = cp < prec || (side == 1 && cp == prec && (op == '-' || op == '/'));
        if (side == 1) tbuf_printf(b, "%c", op);
        if (par) tbuf_printf(b, "(");
        cd_render(t, v, child, b);
        if (par) tbuf_printf(b, ")");
    }
}

/* Draw the tree: combine two random values of the pool until one is left. */
static void cd_build(CdTree *t, const int *nums, int d, TaskRng *r) {
    int pool[CD_MAX_NUMBERS], n = d;
    t->d = d;
    for (int i = 0; i < d; i++) {
        pool[i] = i;
        t->val[i] = nums[i];
    }
    for (int k = 0; k < d - 1; k++) {
        int i = task_rng_int(r, 0, n - 1), j = task_rng_int(r, 0, n - 2);
        if (j >= i) j++;
        int x = pool[i], y = pool[j];
        if (t->val[x] < t->val[y]) {
            x = pool[j]; /* the larger first, for - and / */
            y = pool[i];
        }
        char ops[4];
        int nops = 0;
        for (const char *o = "+-*/"; *o; o++)
            if (cd_valid(t->val[x], *o, t->val[y])) ops[nops++] = *o;
        t->lhs[k] = x;
        t->rhs[k] = y;
        t->op[k] = ops[task_rng_int(r, 0, nops - 1)]; /* '+' is always valid */
        t->val[d + k] = cd_apply(t->val[x], t->op[k], t->val[y]);
        int lo = i < j ? i : j, hi = i < j ? j : i;
        pool[lo] = d + k;
        pool[hi] = pool[n - 1];
        n--;
    }
}

/* Try to miscopy a leaf operand of step k by one (random leaf and sign first); 1 if kept. */
static int cd_slip_leaf(const CdTree *st, int k, long *leaf, TaskRng *nr) {
    long v[2 * CD_MAX_NUMBERS - 1];
    int cand[2], nc = 0;
    if (st->lhs[k] < st->d) cand[nc++] = st->lhs[k];
    if (st->rhs[k] < st->d) cand[nc++] = st->rhs[k];
    if (nc == 2 && task_rng_chance(nr, 0.5)) {
        cand[0] = st->rhs[k];
        cand[1] = st->lhs[k];
    }
    int delta = task_rng_sign(nr);
    for (int c = 0; c < nc; c++) {
        long keep = leaf[cand[c]];
        for (int attempt = 0; attempt < 2; attempt++, delta = -delta) {
            leaf[cand[c]] = keep + delta;
            if (cd_eval(st, leaf, v)) return 1;
        }
        leaf[cand[c]] = keep;
    }
    return 0;
}

/* Try another operation at step k that changes its result; 1 if kept. */
static int cd_slip_op(CdTree *st, int k, long *leaf, TaskRng *nr) {
    long v[2 * CD_MAX_NUMBERS - 1];
    CHECK(cd_eval(st, leaf, v), "the solution's steps are valid");
    long before = v[st->d + k];
    char keep = st->op[k];
    int start = task_rng_int(nr, 0, 3);
    for (int o = 0; o < 4; o++) {
        st->op[k] = "+-*/"[(start + o) % 4];
        if (st->op[k] != keep && cd_eval(st, leaf, v) && v[st->d + k] != before) return 1;
    }
    st->op[k] = keep;
    return 0;
}

/* The worked solution's tree and leaf values: per step, with probability noise, a leaf operand
 * miscopied by one, or else a different operation, kept only when every step stays valid. */
static void cd_slips(CdTree *st, long *leaf, TaskRng *nr, double noise) {
    for (int k = 0; k < st->d - 1; k++) {
        if (!task_rng_chance(nr, noise)) continue;
        if (!cd_slip_leaf(st, k, leaf, nr)) cd_slip_op(st, k, leaf, nr);
    }
}

static int countdown_generate(Problem *p, int d, uint64_t seed, uint64_t index, double noise) {
    int rc = task_check_args(&task_family_countdown, d, noise);
    if (rc != 0) return rc;
    task_problem_init(p, "countdown", d, index);
    TaskRng r, nr;
    task_rng_init(&r, "countdown", d, seed, index, TASK_STREAM_PROBLEM);
    task_rng_init(&nr, "countdown", d, seed, index, TASK_STREAM_NOISE);

    int nums[CD_MAX_NUMBERS];
    long leaf[CD_MAX_NUMBERS], shown[2 * CD_MAX_NUMBERS - 1];
    for (int i = 0; i < d; i++) nums[i] = task_rng_int(&r, 1, 12);
    CdTree t;
    cd_build(&t, nums, d, &r);
    long target = t.val[2 * d - 2];
    for (int i = 0; i < d; i++) leaf[i] = nums[i];
    CdTree st = t;
    cd_slips(&st, leaf, &nr, noise);
    CHECK(cd_eval(&st, leaf, shown), "slips keep the steps valid");

    TaskBuf sb, pb, db, ab, gb;
    char steps[TASK_SOLUTION_MAX], given[TASK_ANSWER_MAX];
    tbuf_init(&sb, steps, sizeof(steps));
    for (int k = 0; k < d - 1; k++)
        tbuf_printf(&sb, "%s%ld%c%ld=%ld", k > 0 ? ";" : "", shown[t.lhs[k]], st.op[k], shown[t.rhs[k]], shown[d + k]);
    tbuf_init(&pb, p->prompt, sizeof(p->prompt));
    tbuf_init(&db, p->data, sizeof(p->data));
    tbuf_printf(&pb, "reach %ld with ", target);
    tbuf_printf(&db, "%ld;", target);
    for (int i = 0; i < d; i++) {
        tbuf_printf(&pb, "%s%d", i > 0 ? "," : "", nums[i]);
        tbuf_printf(&db, "%s%d", i > 0 ? "," : "", nums[i]);
    }
    tbuf_init(&ab, p->answer, sizeof(p->answer));
    cd_render(&t, t.val, 2 * d - 2, &ab);
    tbuf_init(&gb, given, sizeof(given));
    cd_render(&st, shown, 2 * d - 2, &gb);
    return task_finish(p, steps, given, sb.overflow | pb.overflow | db.overflow | ab.overflow | gb.overflow);
}

/* ---------------------------------------------------------------------------------------------
 * Verifier: expr := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*;
 * factor := number | '(' expr ')'; spaces anywhere between tokens. */

typedef struct {
    const char *s;
    int nums[CD_MAX_NUMBERS], used[CD_MAX_NUMBERS], n;
    int depth;
} CdParser;

static void cd_skip_space(CdParser *ps) {
    while (*ps->s == ' ' || *ps->s == '\t' || *ps->s == '\n' || *ps->s == '\r') ps->s++;
}

static int cd_expr(CdParser *ps, int64_t *out);

static int cd_number(CdParser *ps, int64_t *out) {
    const char *c = ps->s;
    if (*c < '0' || *c > '9') return 0;
    if (*c == '0' && c[1] >= '0' && c[1] <= '9') return 0; /* leading zero */
    int64_t v = 0;
    for (; *c >= '0' && *c <= '9'; c++)
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *c - '0', &v)) return 0;
    ps->s = c;
    for (int i = 0; i < ps->n; i++)
        if (!ps->used[i] && ps->nums[i] == v) {
            ps->used[i] = 1;
            *out = v;
            return 1;
        }
    return 0; /* not given, or given fewer times */
}

static int cd_factor(CdParser *ps, int64_t *out) {
    cd_skip_space(ps);
    int ok;
    if (*ps->s == '(') {
        if (++ps->depth > CD_MAX_DEPTH) return 0;
        ps->s++;
        ok = cd_expr(ps, out);
        cd_skip_space(ps);
        if (!ok || *ps->s != ')') return 0;
        ps->s++;
        ps->depth--;
    } else {
        ok = cd_number(ps, out);
        if (!ok) return 0;
    }
    cd_skip_space(ps);
    return 1;
}

static int cd_term(CdParser *ps, int64_t *out) {
    int64_t v, w;
    if (!cd_factor(ps, &v)) return 0;
    while (*ps->s == '*' || *ps->s == '/') {
        char op = *ps->s++;
        if (!cd_factor(ps, &w)) return 0;
        if (op == '*') {
            if (__builtin_mul_overflow(v, w, &v)) return 0;
        } else {
            if (w == 0 || v % w != 0) return 0;
            v /= w;
        }
    }
    *out = v;
    return 1;
}

static int cd_expr(CdParser *ps, int64_t *out) {
    int64_t v, w;
    if (!cd_term(ps, &v)) return 0;
    while (*ps->s == '+' || *ps->s == '-') {
        char op = *ps->s++;
        if (!cd_term(ps, &w)) return 0;
        if (op == '+' ? __builtin_add_overflow(v, w, &v) : __builtin_sub_overflow(v, w, &v)) return 0;
    }
    *out = v;
    return 1;
}

static int countdown_verify(const Problem *p, const char *answer) {
    CdParser ps;
    memset(&ps, 0, sizeof(ps));
    const char *semi = strchr(p->data, ';');
    if (semi == NULL) return 0;
    char *end;
    long target = strtol(p->data, &end, 10);
    if (end != semi) return 0;
    ps.n = task_parse_uint_list(semi + 1, ps.nums, CD_MAX_NUMBERS);
    if (ps.n <= 0) return 0;
    ps.s = answer;
    int64_t v;
    if (!cd_expr(&ps, &v) || *ps.s != '\0') return 0;
    return v == target;
}

const TaskFamily task_family_countdown = {
    .name = "countdown",
    .description = "reach a target from d numbers 1-12 with + - * / (each at most once), answer an expression",
    .min_difficulty = 2,
    .max_difficulty = CD_MAX_NUMBERS,
    .generate = countdown_generate,
    .verify = countdown_verify,
};
