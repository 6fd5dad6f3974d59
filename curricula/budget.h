/* curricula/budget.h: the output-budget controller (ALGORITHMS.md §8): M1's staged window expansion
 * (40K -> 48K -> ... -> 80K tokens; demo-scale lists in the shipped configs).
 *
 * The controller holds the current stage of an increasing list of budgets and is fed, once per RL
 * step, that step's generation perplexity and 99th-percentile response length. It moves to the next
 * stage (never further than one stage per step) when all of these hold:
 *   - at least min_steps steps were spent in the current stage;
 *   - perplexity has plateaued: with the last 2*window values of this stage, the mean of the newer
 *     window differs from the mean of the older one by less than tol, relative to the older one;
 *   - p99 response length >= p99_frac * current budget (outputs press against the window).
 * The perplexity history restarts at every transition (a longer window changes the distribution).
 * The state is a few numbers (BudgetState) that checkpoints store, so a resumed run continues the
 * same stage sequence.
 */
#ifndef CISPO_CURRICULA_BUDGET_H
#define CISPO_CURRICULA_BUDGET_H

#define BUDGET_MAX_STAGES 16
#define BUDGET_MAX_WINDOW 64

typedef struct {
    int stages[BUDGET_MAX_STAGES]; /* strictly increasing budgets in tokens */
    int n_stages;                  /* 0: no controller (fixed budget) */
    int window;                    /* perplexity moving-average window, 1..BUDGET_MAX_WINDOW */
    double tol;                    /* plateau: relative change of the moving average below this */
    double p99_frac;               /* p99 length must reach this fraction of the budget */
    int min_steps;                 /* steps per stage before a transition may happen */
} BudgetConfig;

/* The mutable part (what a checkpoint holds). */
typedef struct {
    int stage;
    long steps_in_stage;
    long transitions;
    int n_hist;                          /* perplexities of this stage kept (<= 2*window) */
    double hist[2 * BUDGET_MAX_WINDOW];  /* oldest first */
} BudgetState;

/* Why the last observation did or did not advance (for logs and metrics). */
typedef struct {
    int advanced;              /* 1: the stage advanced at this observation */
    int from_budget, to_budget;
    double ma_old, ma_new;     /* the two moving averages (NAN until 2*window values) */
    double rel_change;         /* |ma_new - ma_old| / ma_old (NAN until defined) */
    int plateau, long_enough;  /* criteria (a) and (b) */
} BudgetEvent;

typedef struct {
    BudgetConfig cfg;
    BudgetState st;
} BudgetController;

/* Parse "40960, 49152, ..." into out (cap entries); strictly increasing positive integers.
 * An empty string gives *n = 0. 0 or ERR_CONFIG naming `key` and what was expected. */
int budget_parse_stages(const char *text, const char *key, int *out, int cap, int *n);
/* Validate cfg and start at stage 0. 0 or ERR_CONFIG. */
int budget_init(BudgetController *b, const BudgetConfig *cfg);
/* The budget in force now (tokens). */
int budget_current(const BudgetController *b);
/* Feed one step's generation perplexity and p99 response length; *ev (may be NULL) says what
 * happened. Returns 1 when the stage advanced (the new budget applies from the next step). A
 * non-finite perplexity is not added to the history. */
int budget_observe(BudgetController *b, double gen_ppl, double p99_len, BudgetEvent *ev);
/* Install a saved state after checking it fits the config; 0 or ERR_FORMAT. */
int budget_restore(BudgetController *b, const BudgetState *st);

#endif
