/* core/config.c: YAML configs checked against a ConfigField schema (see config.h).
 *
 * Approach: libyaml's event API drives a small recursive reader for exactly two levels
 * (top mapping: section -> mapping: key -> scalar). Every scalar goes through one function,
 * assign_value(), which is shared by the YAML reader, command-line overrides and the schema
 * defaults, so all three get the same strict checks and messages:
 *   "<where>: <section.key>: expected <what>, got <value>"
 * where <where> is "file:line" (1-based, from libyaml marks), "command line" or "default".
 *
 * Numbers are parsed strictly: the whole text must be consumed (no trailing junk, no leading
 * blanks), integers are decimal and must not overflow their C type, floats must be finite
 * (inf/nan/overflow are rejected; hex floats too). A plain empty scalar, "~" or "null" is the
 * empty string for string fields and an error for everything else.
 *
 * config_print_yaml writes text the loader reads back to identical values: floats with the
 * shortest "%.Ng" (N <= 17) that parses back to the same double, strings double-quoted with
 * escapes whenever a plain scalar could be misread.
 *
 * On error the target may hold some values already applied; callers treat it as garbage.
 */
#include "core/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "core/error.h"

#define CFG_KEY_MAX 256                    /* longest "section.key" we look up */
#define CFG_SHOW_MAX 80                    /* values longer than this are clipped in messages */
#define CFG_FILE_MAX_BYTES (16u << 20)     /* a config file is small; refuse anything huge */

/* ---------------------------------------------------------------- schema helpers */

static size_t section_len(const char *key) {
    const char *dot = strchr(key, '.');
    return dot ? (size_t)(dot - key) : 0;
}

/* Validate the schema (a bug if wrong) and return its number of fields. */
static int schema_count(const ConfigSchema *schema) {
    int n = 0;
    for (const ConfigField *f = schema; f->key != NULL; f++, n++) {
        size_t sl = section_len(f->key);
        CHECK(sl > 0 && f->key[sl + 1] != '\0' && strchr(f->key + sl + 1, '.') == NULL,
              "config key '%s' is not 'section.key'", f->key);
        CHECK(strlen(f->key) < CFG_KEY_MAX, "config key '%s' too long", f->key);
        CHECK(f->def != NULL, "config key '%s' has no default", f->key);
        CHECK(f->help == NULL || strchr(f->help, '\n') == NULL, "help of '%s' has a newline", f->key);
        switch (f->type) {
        case CFG_INT:
        case CFG_BOOL: CHECK(f->size == sizeof(int), "'%s': size %zu", f->key, f->size); break;
        case CFG_INT64: CHECK(f->size == sizeof(long long), "'%s': size %zu", f->key, f->size); break;
        case CFG_FLOAT: CHECK(f->size == sizeof(double), "'%s': size %zu", f->key, f->size); break;
        case CFG_ENUM:
        case CFG_STRING:
            CHECK(f->size >= 1, "'%s': size %zu", f->key, f->size);
            CHECK(f->type != CFG_ENUM || (f->choices != NULL && f->choices[0] != '\0'), "'%s': no choices", f->key);
            break;
        default: CHECK(0, "'%s': bad type %d", f->key, (int)f->type);
        }
    }
    return n;
}

/* Index of the first field of section `sec` (length len), or -1. */
static int section_first(const ConfigSchema *schema, const char *sec, size_t len) {
    for (int i = 0; schema[i].key != NULL; i++)
        if (section_len(schema[i].key) == len && strncmp(schema[i].key, sec, len) == 0) return i;
    return -1;
}

const ConfigField *config_find(const ConfigSchema *schema, const char *key) {
    for (const ConfigField *f = schema; f->key != NULL; f++)
        if (strcmp(f->key, key) == 0) return f;
    return NULL;
}

int config_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    int *prev = xmalloc((lb + 1) * sizeof(int));
    int *cur = xmalloc((lb + 1) * sizeof(int));
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        int *t = prev;
        prev = cur;
        cur = t;
    }
    int d = prev[lb];
    free(prev);
    free(cur);
    return d;
}

/* `s` itself, or its first CFG_SHOW_MAX bytes plus "..." copied into buf. */
static const char *clip(const char *s, char *buf, size_t cap) {
    if (strlen(s) <= CFG_SHOW_MAX) return s;
    snprintf(buf, cap, "%.*s...", CFG_SHOW_MAX, s);
    return buf;
}

/* Closest valid key to `full` ("section.key" or a bare name): the smaller of the whole-key
 * distance and the key-part distance plus one (a key put under the wrong section). NULL when
 * nothing is close enough to be a plausible typo. */
static const char *suggest_key(const ConfigSchema *schema, const char *full) {
    char key_part[CFG_KEY_MAX];
    const char *dot = strchr(full, '.');
    snprintf(key_part, sizeof(key_part), "%s", dot ? dot + 1 : full);
    char whole[CFG_KEY_MAX];
    snprintf(whole, sizeof(whole), "%s", full);
    const char *best = NULL;
    int best_d = INT_MAX;
    for (const ConfigField *f = schema; f->key != NULL; f++) {
        const char *cand_key = f->key + section_len(f->key) + 1;
        int d = config_edit_distance(whole, f->key);
        int d2 = config_edit_distance(key_part, cand_key) + 1;
        if (d2 < d) d = d2;
        int limit = 2 + (int)strlen(cand_key) / 4;
        if (d < best_d && d <= limit) {
            best_d = d;
            best = f->key;
        }
    }
    return best;
}

/* Closest section name to `sec`, copied into out (empty when nothing is close). */
static void suggest_section(const ConfigSchema *schema, const char *sec, char *out, size_t cap) {
    char name[CFG_KEY_MAX], mine[CFG_KEY_MAX];
    snprintf(mine, sizeof(mine), "%s", sec);
    int best_d = INT_MAX;
    out[0] = '\0';
    for (int i = 0; schema[i].key != NULL; i++) {
        size_t len = section_len(schema[i].key);
        if (section_first(schema, schema[i].key, len) != i) continue;
        snprintf(name, sizeof(name), "%.*s", (int)len, schema[i].key);
        int d = config_edit_distance(mine, name);
        if (d < best_d && d <= 2 + (int)len / 4) {
            best_d = d;
            snprintf(out, cap, "%s", name);
        }
    }
}

static void sappend(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sappend(char *out, size_t cap, const char *fmt, ...) {
    size_t n = strlen(out);
    if (n + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, cap - n, fmt, ap);
    va_end(ap);
}

/* Append "\nHINT: valid sections: a, b" (section == NULL) or "valid keys in 'sec': x, y". */
static void hint_valid(const ConfigSchema *schema, const char *section, size_t sec_len, char *out, size_t cap) {
    if (section)
        sappend(out, cap, "\nHINT: valid keys in '%.*s':", (int)sec_len, section);
    else
        sappend(out, cap, "\nHINT: valid sections:");
    const char *sep = " ";
    for (int i = 0; schema[i].key != NULL; i++) {
        size_t len = section_len(schema[i].key);
        if (section) {
            if (len != sec_len || strncmp(schema[i].key, section, len) != 0) continue;
            sappend(out, cap, "%s%s", sep, schema[i].key + len + 1);
        } else {
            if (section_first(schema, schema[i].key, len) != i) continue;
            sappend(out, cap, "%s%.*s", sep, (int)len, schema[i].key);
        }
        sep = ", ";
    }
}

/* The error for an unknown "section.key" (or bare name) at `where`. */
static int unknown_key_error(const ConfigSchema *schema, const char *where, const char *full) {
    char buf[CFG_SHOW_MAX + 8], hint[2048] = "";
    const char *best = suggest_key(schema, full);
    if (best) return err_set(ERR_CONFIG, "%s: unknown key '%s'; did you mean '%s'?", where, clip(full, buf, sizeof(buf)), best);
    size_t sl = section_len(full);
    if (sl > 0 && section_first(schema, full, sl) >= 0)
        hint_valid(schema, full, sl, hint, sizeof(hint));
    else
        hint_valid(schema, NULL, 0, hint, sizeof(hint));
    return err_set(ERR_CONFIG, "%s: unknown key '%s'%s", where, clip(full, buf, sizeof(buf)), hint);
}

/* ---------------------------------------------------------------- scalar parsing */

/* 0 ok, -1 not an integer, -2 overflows long long. */
static int parse_ll(const char *text, long long *out) {
    if (text[0] == '\0' || !(text[0] == '-' || text[0] == '+' || (text[0] >= '0' && text[0] <= '9'))) return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0') return -1;
    if (errno == ERANGE) return -2;
    *out = v;
    return 0;
}

/* 0 ok, -1 not a number, -2 not finite (inf, nan, overflow). */
static int parse_double(const char *text, double *out) {
    char c = text[0];
    if (c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') return -1;
    if (strchr(text, 'x') || strchr(text, 'X')) return -1; /* no hex floats */
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0') return -1;
    if (!isfinite(v)) return -2;
    *out = v;
    return 0;
}

static int parse_bool(const char *text, int *out) {
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) { *out = 1; return 0; }
        if (strcasecmp(text, no[i]) == 0) { *out = 0; return 0; }
    }
    return -1;
}

static int enum_has(const char *choices, const char *text) {
    size_t len = strlen(text);
    for (const char *p = choices; *p != '\0';) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, text, n) == 0) return 1;
        p += n + (bar ? 1 : 0);
    }
    return 0;
}

/* Shortest "%.Ng" that reads back as exactly v; a whole number prints plainly ("10", not
 * "1e+01") unless that is longer ("1e+07", not "10000000"). */
static void fmt_double(char *buf, size_t cap, double v) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    char plain[40];
    if (v == floor(v) && fabs(v) < 1e16 && snprintf(plain, sizeof(plain), "%.0f", v) <= (int)strlen(buf))
        snprintf(buf, cap, "%s", plain);
}

static int range_error(const ConfigField *f, const char *where, const char *text) {
    char lo[40], hi[40], buf[CFG_SHOW_MAX + 8];
    fmt_double(lo, sizeof(lo), f->min);
    fmt_double(hi, sizeof(hi), f->max);
    return err_set(ERR_CONFIG, "%s: %s: expected a value in [%s, %s], got %s", where, f->key, lo, hi,
                   clip(text, buf, sizeof(buf)));
}

static int has_range(const ConfigField *f) { return f->min <= f->max; }

static int assign_int(const ConfigField *f, void *dst, const char *text, const char *where) {
    char buf[CFG_SHOW_MAX + 8];
    long long v = 0;
    int rc = parse_ll(text, &v);
    if (rc == -1)
        return err_set(ERR_CONFIG, "%s: %s: expected an integer, got '%s'", where, f->key, clip(text, buf, sizeof(buf)));
    if (rc == 0 && has_range(f) && ((double)v < f->min || (double)v > f->max)) return range_error(f, where, text);
    if (rc == -2 && has_range(f)) return range_error(f, where, text);
    if (f->type == CFG_INT) {
        if (rc == -2 || v < INT_MIN || v > INT_MAX)
            return err_set(ERR_CONFIG, "%s: %s: expected an integer in [%d, %d], got %s", where, f->key, INT_MIN,
                           INT_MAX, clip(text, buf, sizeof(buf)));
        int iv = (int)v;
        memcpy(dst, &iv, sizeof(iv));
    } else {
        if (rc == -2)
            return err_set(ERR_CONFIG, "%s: %s: expected an integer in [%lld, %lld], got %s", where, f->key, LLONG_MIN,
                           LLONG_MAX, clip(text, buf, sizeof(buf)));
        memcpy(dst, &v, sizeof(v));
    }
    return 0;
}

static int assign_float(const ConfigField *f, void *dst, const char *text, const char *where) {
    char buf[CFG_SHOW_MAX + 8];
    double v = 0.0;
    int rc = parse_double(text, &v);
    if (rc == -1)
        return err_set(ERR_CONFIG, "%s: %s: expected a number, got '%s'", where, f->key, clip(text, buf, sizeof(buf)));
    if (rc == -2)
        return err_set(ERR_CONFIG, "%s: %s: expected a finite number, got '%s'", where, f->key,
                       clip(text, buf, sizeof(buf)));
    if (has_range(f) && (v < f->min || v > f->max)) return range_error(f, where, text);
    memcpy(dst, &v, sizeof(v));
    return 0;
}

static int assign_text(const ConfigField *f, char *dst, const char *text, size_t len, const char *where) {
    char buf[CFG_SHOW_MAX + 8];
    if (f->type == CFG_ENUM && !enum_has(f->choices, text))
        return err_set(ERR_CONFIG, "%s: %s: expected one of %s, got '%s'", where, f->key, f->choices,
                       clip(text, buf, sizeof(buf)));
    if (len >= f->size)
        return err_set(ERR_CONFIG, "%s: %s: expected a string of at most %zu bytes, got %zu bytes ('%s')", where,
                       f->key, f->size - 1, len, clip(text, buf, sizeof(buf)));
    memset(dst, 0, f->size);
    memcpy(dst, text, len);
    return 0;
}

/* Parse `text` (len bytes, NUL-terminated) for field f and store it. `yaml_null`: the text was
 * a YAML null (plain empty, "~", "null"). Returns 0 or ERR_CONFIG with the message set. */
static int assign_value(const ConfigField *f, void *target, const char *text, size_t len, int yaml_null,
                        const char *where) {
    char *dst = (char *)target + f->offset;
    if (strlen(text) != len)
        return err_set(ERR_CONFIG, "%s: %s: the value contains a NUL byte", where, f->key);
    switch (f->type) {
    case CFG_INT:
    case CFG_INT64: return assign_int(f, dst, text, where);
    case CFG_FLOAT: return assign_float(f, dst, text, where);
    case CFG_BOOL: {
        int b = 0;
        char buf[CFG_SHOW_MAX + 8];
        if (parse_bool(text, &b) != 0)
            return err_set(ERR_CONFIG, "%s: %s: expected a boolean (true|false|yes|no|on|off|1|0), got '%s'", where,
                           f->key, clip(text, buf, sizeof(buf)));
        memcpy(dst, &b, sizeof(b));
        return 0;
    }
    case CFG_STRING:
        if (yaml_null) return assign_text(f, dst, "", 0, where);
        return assign_text(f, dst, text, len, where);
    case CFG_ENUM: return assign_text(f, dst, text, len, where);
    }
    return err_set(ERR_CONFIG, "%s: %s: bad field type", where, f->key);
}

int config_set_defaults(const ConfigSchema *schema, void *target) {
    schema_count(schema);
    for (const ConfigField *f = schema; f->key != NULL; f++) {
        int rc = assign_value(f, target, f->def, strlen(f->def), 0, "default");
        if (rc) return rc;
    }
    return 0;
}

int config_apply_override(const ConfigSchema *schema, void *target, const char *assignment) {
    char buf[CFG_SHOW_MAX + 8], key[CFG_KEY_MAX];
    schema_count(schema);
    const char *eq = strchr(assignment, '=');
    if (eq == NULL)
        return err_set(ERR_CONFIG, "command line: expected section.key=value, got '%s'\nHINT: e.g. model.hidden_size=256",
                       clip(assignment, buf, sizeof(buf)));
    size_t klen = (size_t)(eq - assignment);
    snprintf(key, sizeof(key), "%.*s", (int)(klen < sizeof(key) ? klen : sizeof(key) - 1), assignment);
    const ConfigField *f = klen < sizeof(key) ? config_find(schema, key) : NULL;
    if (f == NULL) return unknown_key_error(schema, "command line", key);
    return assign_value(f, target, eq + 1, strlen(eq + 1), 0, "command line");
}

/* ---------------------------------------------------------------- YAML reading */

typedef struct {
    const ConfigSchema *schema;
    void *target;
    const char *name;     /* file name for messages */
    yaml_parser_t parser;
    int *key_line;        /* per field: line where it was set in this file (0 = not yet) */
    int *sec_line;        /* per first-field-of-section: line of that section (0 = not yet) */
} Loader;

static int ld_next(Loader *ld, yaml_event_t *ev) {
    if (yaml_parser_parse(&ld->parser, ev)) return 0;
    const yaml_parser_t *p = &ld->parser;
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_READER_ERROR)
        return err_set(ERR_CONFIG, "%s: cannot read YAML at byte %zu: %s", ld->name, p->problem_offset, problem);
    if (p->context)
        return err_set(ERR_CONFIG, "%s:%zu: YAML syntax error: %s (%s, line %zu)", ld->name, p->problem_mark.line + 1,
                       problem, p->context, p->context_mark.line + 1);
    return err_set(ERR_CONFIG, "%s:%zu: YAML syntax error: %s", ld->name, p->problem_mark.line + 1, problem);
}

static size_t ev_line(const yaml_event_t *ev) { return ev->start_mark.line + 1; }

static int is_yaml_null(const yaml_event_t *ev) {
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *s = (const char *)ev->data.scalar.value;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

static const char *ev_kind(const yaml_event_t *ev) {
    switch (ev->type) {
    case YAML_SCALAR_EVENT: return "a scalar";
    case YAML_SEQUENCE_START_EVENT: return "a list";
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_ALIAS_EVENT: return "an alias (aliases are not supported)";
    default: return "something else";
    }
}

/* One "key: value" inside section `sec` (the key event is given, the value is read here). */
static int ld_entry(Loader *ld, const char *sec, const yaml_event_t *key_ev) {
    char full[CFG_KEY_MAX], where[600];
    snprintf(where, sizeof(where), "%s:%zu", ld->name, ev_line(key_ev));
    if (key_ev->type != YAML_SCALAR_EVENT)
        return err_set(ERR_CONFIG, "%s: in section '%s': expected a key name, got %s", where, sec, ev_kind(key_ev));
    int n = snprintf(full, sizeof(full), "%s.%s", sec, (const char *)key_ev->data.scalar.value);
    const ConfigField *f = n < (int)sizeof(full) ? config_find(ld->schema, full) : NULL; /* too long: unknown */
    if (f == NULL) return unknown_key_error(ld->schema, where, full);
    int idx = (int)(f - ld->schema);
    if (ld->key_line[idx] != 0)
        return err_set(ERR_CONFIG, "%s: duplicate key '%s' (first set on line %d)", where, full, ld->key_line[idx]);
    ld->key_line[idx] = (int)ev_line(key_ev);

    /* Messages keep the key's line: libyaml marks an empty value at the next token's line. */
    yaml_event_t ev;
    int rc = ld_next(ld, &ev);
    if (rc) return rc;
    if (ev.type == YAML_SCALAR_EVENT)
        rc = assign_value(f, ld->target, (const char *)ev.data.scalar.value, ev.data.scalar.length, is_yaml_null(&ev),
                          where);
    else
        rc = err_set(ERR_CONFIG, "%s: %s: expected a single value, got %s\nHINT: configs have two levels, "
                     "section -> key: value", where, full, ev_kind(&ev));
    yaml_event_delete(&ev);
    return rc;
}

/* The value of top-level key `key_ev` (a section): a mapping of key: value, or a null. */
static int ld_section(Loader *ld, const yaml_event_t *key_ev) {
    char where[600], sec[CFG_KEY_MAX], buf[CFG_SHOW_MAX + 8];
    snprintf(where, sizeof(where), "%s:%zu", ld->name, ev_line(key_ev));
    if (key_ev->type != YAML_SCALAR_EVENT)
        return err_set(ERR_CONFIG, "%s: expected a section name, got %s", where, ev_kind(key_ev));
    const char *name = (const char *)key_ev->data.scalar.value;
    size_t len = key_ev->data.scalar.length;
    int first = strchr(name, '.') ? -1 : section_first(ld->schema, name, len);
    if (first < 0 && config_find(ld->schema, name) != NULL)
        return err_set(ERR_CONFIG, "%s: '%s' must be nested: write '%.*s:' and under it '  %s: ...'", where, name,
                       (int)section_len(name), name, name + section_len(name) + 1);
    if (first < 0) {
        char best[CFG_KEY_MAX], hint[1024] = "";
        suggest_section(ld->schema, name, best, sizeof(best));
        if (best[0] != '\0')
            return err_set(ERR_CONFIG, "%s: unknown section '%s'; did you mean '%s'?", where,
                           clip(name, buf, sizeof(buf)), best);
        hint_valid(ld->schema, NULL, 0, hint, sizeof(hint));
        return err_set(ERR_CONFIG, "%s: unknown section '%s'%s", where, clip(name, buf, sizeof(buf)), hint);
    }
    if (ld->sec_line[first] != 0)
        return err_set(ERR_CONFIG, "%s: duplicate section '%s' (first on line %d)", where, name, ld->sec_line[first]);
    ld->sec_line[first] = (int)ev_line(key_ev);
    snprintf(sec, sizeof(sec), "%s", name);

    yaml_event_t ev;
    int rc = ld_next(ld, &ev);
    if (rc) return rc;
    if (ev.type != YAML_MAPPING_START_EVENT) {
        if (!is_yaml_null(&ev))
            rc = err_set(ERR_CONFIG, "%s:%zu: section '%s': expected a mapping of key: value, got %s", ld->name,
                         ev_line(&ev), sec, ev_kind(&ev));
        yaml_event_delete(&ev);
        return rc;
    }
    yaml_event_delete(&ev);
    for (;;) {
        if ((rc = ld_next(ld, &ev))) return rc;
        if (ev.type == YAML_MAPPING_END_EVENT) break;
        rc = ld_entry(ld, sec, &ev);
        yaml_event_delete(&ev);
        if (rc) return rc;
    }
    yaml_event_delete(&ev);
    return 0;
}

/* One document: a top-level mapping of sections (or nothing), then DOCUMENT-END. */
static int ld_document(Loader *ld) {
    yaml_event_t ev;
    int rc = ld_next(ld, &ev);
    if (rc) return rc;
    if (ev.type == YAML_MAPPING_START_EVENT) {
        yaml_event_delete(&ev);
        for (;;) {
            if ((rc = ld_next(ld, &ev))) return rc;
            if (ev.type == YAML_MAPPING_END_EVENT) break;
            rc = ld_section(ld, &ev);
            yaml_event_delete(&ev);
            if (rc) return rc;
        }
    } else if (!is_yaml_null(&ev)) {
        rc = err_set(ERR_CONFIG, "%s:%zu: expected a mapping of sections at the top level (e.g. 'model:'), got %s",
                     ld->name, ev_line(&ev), ev_kind(&ev));
    }
    yaml_event_delete(&ev);
    if (rc) return rc;
    if ((rc = ld_next(ld, &ev))) return rc; /* DOCUMENT-END */
    yaml_event_delete(&ev);
    return 0;
}

static int ld_stream(Loader *ld) {
    yaml_event_t ev;
    int rc = ld_next(ld, &ev); /* STREAM-START */
    if (rc) return rc;
    yaml_event_delete(&ev);
    for (int docs = 0;; docs++) {
        if ((rc = ld_next(ld, &ev))) return rc;
        yaml_event_type_t type = ev.type;
        size_t line = ev_line(&ev);
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT) return 0;
        if (docs > 0)
            return err_set(ERR_CONFIG, "%s:%zu: expected a single YAML document, found another one", ld->name, line);
        if ((rc = ld_document(ld))) return rc;
    }
}

int config_load_yaml_string(const ConfigSchema *schema, void *target, const char *text, size_t len,
                            const char *name) {
    Loader ld;
    memset(&ld, 0, sizeof(ld));
    int n = schema_count(schema);
    ld.schema = schema;
    ld.target = target;
    ld.name = name ? name : "<string>";
    ld.key_line = xcalloc((size_t)n + 1, sizeof(int));
    ld.sec_line = xcalloc((size_t)n + 1, sizeof(int));
    CHECK(yaml_parser_initialize(&ld.parser), "yaml_parser_initialize failed");
    yaml_parser_set_input_string(&ld.parser, (const unsigned char *)text, len);
    int rc = ld_stream(&ld);
    yaml_parser_delete(&ld.parser);
    free(ld.key_line);
    free(ld.sec_line);
    return rc;
}

int config_load_yaml(const ConfigSchema *schema, void *target, const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return err_set(ERR_IO, "cannot open config file '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *text = xmalloc(cap);
    int rc = 0;
    for (;;) {
        len += fread(text + len, 1, cap - len, f);
        if (len < cap || cap > CFG_FILE_MAX_BYTES) break;
        cap *= 2;
        text = realloc(text, cap);
        CHECK(text != NULL, "out of memory reading %s", path);
    }
    if (ferror(f))
        rc = err_set(ERR_IO, "cannot read config file '%s'", path);
    else if (len > CFG_FILE_MAX_BYTES)
        rc = err_set(ERR_CONFIG, "%s: expected a config file of at most %u bytes", path, CFG_FILE_MAX_BYTES);
    fclose(f);
    if (rc == 0) rc = config_load_yaml_string(schema, target, text, len, path);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- printing */

/* A string is printed plain only when YAML reads it back unchanged and it is not a null. */
static int needs_quotes(const char *s) {
    if (s[0] == '\0' || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0) return 1;
    char c0 = s[0];
    if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || (c0 >= '0' && c0 <= '9') || c0 == '_' ||
          c0 == '.' || c0 == '/'))
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p >= 0x7f || strchr(":#'\"\\,[]{}&*!|>%@`", *p)) return 1;
    return s[strlen(s) - 1] == ' ';
}

static void print_string(FILE *f, const char *s) {
    if (!needs_quotes(s)) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\x%02x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void print_field(FILE *out, const ConfigField *f, const void *target) {
    const char *src = (const char *)target + f->offset;
    fprintf(out, "  %s: ", f->key + section_len(f->key) + 1);
    switch (f->type) {
    case CFG_INT: { int v; memcpy(&v, src, sizeof(v)); fprintf(out, "%d", v); break; }
    case CFG_INT64: { long long v; memcpy(&v, src, sizeof(v)); fprintf(out, "%lld", v); break; }
    case CFG_BOOL: { int v; memcpy(&v, src, sizeof(v)); fputs(v ? "true" : "false", out); break; }
    case CFG_FLOAT: {
        double v;
        char buf[40];
        memcpy(&v, src, sizeof(v));
        fmt_double(buf, sizeof(buf), v);
        fputs(buf, out);
        break;
    }
    case CFG_STRING:
    case CFG_ENUM:
        CHECK(memchr(src, '\0', f->size) != NULL, "%s: string not NUL-terminated", f->key);
        print_string(out, src);
        break;
    }
    if (f->help && f->help[0]) fprintf(out, "  # %s", f->help);
    fputc('\n', out);
}

void config_print_yaml(const ConfigSchema *schema, const void *target, FILE *f) {
    int n = schema_count(schema);
    int sections = 0;
    for (int i = 0; i < n; i++) {
        size_t len = section_len(schema[i].key);
        if (section_first(schema, schema[i].key, len) != i) continue;
        fprintf(f, "%s%.*s:\n", sections++ ? "\n" : "", (int)len, schema[i].key);
        for (int j = i; j < n; j++)
            if (section_len(schema[j].key) == len && strncmp(schema[j].key, schema[i].key, len) == 0)
                print_field(f, &schema[j], target);
    }
}
