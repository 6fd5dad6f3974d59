/* rewards/math_verify.c: reward_math_equal, the answer check of the JSONL (math) source.
 *
 * Both answers are first unwrapped: surrounding whitespace, "$...$" / "$$...$$" and a whole-string
 * "\boxed{...}" (braces balanced, so "\boxed{\frac{1}{2}}" works) are peeled repeatedly. The
 * unwrapped text with all whitespace (and LaTeX thin spaces "\," "\!") removed is then parsed as an
 * exact rational:
 *   [+|-] DEC [ "/" DEC ]       or     [+|-] ( \frac | \dfrac | \tfrac ) "{" [+|-] DEC "}{" [+|-] DEC "}"
 *   DEC = digits with optional well-formed thousands groups ("1,234,567": a first group of 1-3
 *         digits, then groups of exactly 3), then optionally "." digits; or "." digits.
 * A rational is (sign, numerator digits, denominator digits) with arbitrary-length decimal digit
 * strings (up to MV_MAX_DIGITS), so numbers beyond 64 bits are compared exactly too: a/b == c/d
 * iff the signs agree (zero has no sign) and a*d == c*b, by schoolbook multiplication.
 * "0.5" == "1/2" == "\frac{1}{2}", "-0" == "0", "5.0" == "5", "1,234" == "1234".
 *
 * When either side is not such a number, the unwrapped texts are compared as strings (trimmed,
 * case-sensitive, inner spaces kept); texts of MV_TEXT_MAX bytes or more are only trimmed.
 */
#include <string.h>

#include "rewards/reward.h"

#define MV_MAX_DIGITS 160
#define MV_TEXT_MAX 1024

typedef struct {
    int neg;
    char num[MV_MAX_DIGITS + 1]; /* decimal digits, no leading zeros ("0" for zero) */
    char den[MV_MAX_DIGITS + 1];
} Rational;

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Trim s in place (returns the new start). */
static char *trim(char *s) {
    while (is_space(*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && is_space(s[n - 1])) s[--n] = '\0';
    return s;
}

/* Peel one wrapper ($..$, $$..$$, \boxed{..}) off the whole of s; 1 if something was peeled. */
static int peel(char **sp) {
    char *s = *sp;
    size_t n = strlen(s);
    if (n >= 4 && strncmp(s, "$$", 2) == 0 && strcmp(s + n - 2, "$$") == 0) {
        s[n - 2] = '\0';
        *sp = s + 2;
        return 1;
    }
    if (n >= 2 && s[0] == '$' && s[n - 1] == '$') {
        s[n - 1] = '\0';
        *sp = s + 1;
        return 1;
    }
    const char *kw = "\\boxed{";
    size_t kl = strlen(kw);
    if (n > kl && strncmp(s, kw, kl) == 0 && s[n - 1] == '}') {
        int depth = 1;
        for (size_t i = kl; i < n; i++) {
            depth += s[i] == '{' ? 1 : s[i] == '}' ? -1 : 0;
            if (depth == 0) {
                if (i != n - 1) return 0; /* "\boxed{1}+\boxed{2}": not one wrapper */
                s[n - 1] = '\0';
                *sp = s + kl;
                return 1;
            }
        }
    }
    return 0;
}

/* Copy src into buf and unwrap it; returns the unwrapped text, or NULL when src does not fit. */
static char *unwrap(const char *src, char *buf) {
    size_t n = strlen(src);
    if (n >= MV_TEXT_MAX) return NULL;
    memcpy(buf, src, n + 1);
    char *s = trim(buf);
    while (peel(&s)) s = trim(s);
    return s;
}

/* a and b equal after trimming surrounding whitespace (for texts too long to unwrap). */
static int trimmed_equal(const char *a, const char *b) {
    while (is_space(*a)) a++;
    while (is_space(*b)) b++;
    size_t na = strlen(a), nb = strlen(b);
    while (na > 0 && is_space(a[na - 1])) na--;
    while (nb > 0 && is_space(b[nb - 1])) nb--;
    return na == nb && memcmp(a, b, na) == 0;
}

/* Remove whitespace and the LaTeX spaces "\," "\!" into out (same capacity). */
static void compact(const char *s, char *out) {
    size_t k = 0;
    for (; *s; s++) {
        if (is_space(*s)) continue;
        if (s[0] == '\\' && (s[1] == ',' || s[1] == '!')) {
            s++;
            continue;
        }
        out[k++] = *s;
    }
    out[k] = '\0';
}

/* Strip leading zeros of a digit string in place ("" becomes "0"). */
static void normalise_digits(char *d) {
    size_t z = 0, n = strlen(d);
    while (z + 1 < n && d[z] == '0') z++;
    memmove(d, d + z, n - z + 1);
    if (d[0] == '\0') strcpy(d, "0");
}

/* Parse DEC at *sp into num/den digit strings; advances *sp. 1 on success. */
static int parse_decimal(const char **sp, char *num, char *den) {
    const char *s = *sp;
    size_t k = 0, run = 0;
    int grouped = 0;
    while (is_digit(*s) || (*s == ',' && is_digit(s[1]))) {
        if (*s == ',') {
            if ((!grouped && (run < 1 || run > 3)) || (grouped && run != 3)) return 0;
            grouped = 1;
            run = 0;
        } else {
            if (k >= MV_MAX_DIGITS) return 0;
            num[k++] = *s;
            run++;
        }
        s++;
    }
    if (grouped && run != 3) return 0;
    size_t int_digits = k, frac = 0;
    if (*s == '.') {
        s++;
        if (!is_digit(*s)) return 0;
        while (is_digit(*s)) {
            if (k >= MV_MAX_DIGITS || frac + 1 >= MV_MAX_DIGITS) return 0;
            num[k++] = *s++;
            frac++;
        }
    }
    if (int_digits == 0 && frac == 0) return 0;
    num[k] = '\0';
    den[0] = '1';
    memset(den + 1, '0', frac);
    den[frac + 1] = '\0';
    normalise_digits(num);
    *sp = s;
    return 1;
}

static int parse_sign(const char **sp) {
    if (**sp == '+' || **sp == '-') return *(*sp)++ == '-';
    return 0;
}

/* out = a * b for digit strings; 0 if the product has more than cap - 1 digits. */
static int mul_digits(const char *a, const char *b, char *out, size_t cap) {
    size_t na = strlen(a), nb = strlen(b), n = na + nb;
    int acc[2 * MV_MAX_DIGITS + 2] = {0};
    if (n + 1 > cap || n > 2 * MV_MAX_DIGITS) return 0;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++) acc[i + j + 1] += (a[i] - '0') * (b[j] - '0');
    for (size_t k = n - 1; k > 0; k--) {
        acc[k - 1] += acc[k] / 10;
        acc[k] %= 10;
    }
    for (size_t k = 0; k < n; k++) out[k] = (char)('0' + acc[k]);
    out[n] = '\0';
    normalise_digits(out);
    return 1;
}

/* (n1/d1) / (n2/d2) into r; 0 on a zero divisor or overflow. */
static int divide(Rational *r, const char *n1, const char *d1, const char *n2, const char *d2) {
    if (strcmp(n2, "0") == 0) return 0;
    return mul_digits(n1, d2, r->num, sizeof(r->num)) && mul_digits(d1, n2, r->den, sizeof(r->den));
}

/* Parse the whole compact string s as a rational. 1 on success. */
static int parse_rational(const char *s, Rational *r) {
    char n1[MV_MAX_DIGITS + 1], d1[MV_MAX_DIGITS + 1], n2[MV_MAX_DIGITS + 1], d2[MV_MAX_DIGITS + 1];
    int neg = parse_sign(&s);
    static const char *const fracs[] = {"\\frac{", "\\dfrac{", "\\tfrac{"};
    for (int k = 0; k < 3; k++) {
        size_t fl = strlen(fracs[k]);
        if (strncmp(s, fracs[k], fl) != 0) continue;
        s += fl;
        neg ^= parse_sign(&s);
        if (!parse_decimal(&s, n1, d1) || strncmp(s, "}{", 2) != 0) return 0;
        s += 2;
        neg ^= parse_sign(&s);
        if (!parse_decimal(&s, n2, d2) || strcmp(s, "}") != 0) return 0;
        if (!divide(r, n1, d1, n2, d2)) return 0;
        r->neg = neg && strcmp(r->num, "0") != 0;
        return 1;
    }
    if (!parse_decimal(&s, n1, d1)) return 0;
    if (*s == '/') {
        s++;
        if (!parse_decimal(&s, n2, d2) || *s != '\0' || !divide(r, n1, d1, n2, d2)) return 0;
    } else {
        if (*s != '\0') return 0;
        strcpy(r->num, n1);
        strcpy(r->den, d1);
    }
    r->neg = neg && strcmp(r->num, "0") != 0;
    return 1;
}

static int rational_equal(const Rational *a, const Rational *b) {
    if (a->neg != b->neg) return 0;
    char ad[2 * MV_MAX_DIGITS + 1], bd[2 * MV_MAX_DIGITS + 1];
    if (!mul_digits(a->num, b->den, ad, sizeof(ad)) || !mul_digits(b->num, a->den, bd, sizeof(bd))) return 0;
    return strcmp(ad, bd) == 0;
}

int reward_math_equal(const char *given, const char *expected) {
    char gbuf[MV_TEXT_MAX], ebuf[MV_TEXT_MAX], gc[MV_TEXT_MAX], ec[MV_TEXT_MAX];
    char *g = unwrap(given, gbuf), *e = unwrap(expected, ebuf);
    if (g == NULL || e == NULL) return trimmed_equal(given, expected);
    compact(g, gc);
    compact(e, ec);
    Rational rg, re;
    if (parse_rational(gc, &rg) && parse_rational(ec, &re)) return rational_equal(&rg, &re);
    return strcmp(g, e) == 0;
}
