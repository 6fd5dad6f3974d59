/* core/config.h: YAML configs through libyaml, checked against a schema.
 *
 * A schema is an array of ConfigField (terminated by a field with key == NULL) describing every
 * valid "section.key": its type, where it lives in the target struct (offsetof), its default and
 * its valid range. config_load_yaml() reads a two-level YAML mapping (section -> key -> scalar;
 * nested deeper or holding a list is an error), config_apply_override()
 * takes "section.key=value" from the command line. Errors are ERR_CONFIG with a message naming the
 * file, the line, the key and what was expected; for an unknown key (or section) the message
 * names the closest valid one ("did you mean 'trainer.lr'?", by edit distance).
 */
#ifndef CISPO_CORE_CONFIG_H
#define CISPO_CORE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    CFG_INT = 0,    /* int */
    CFG_INT64,      /* long long */
    CFG_FLOAT,      /* double */
    CFG_BOOL,       /* int 0/1; YAML true/false/yes/no/on/off/1/0 */
    CFG_STRING,     /* char[size] */
    CFG_ENUM,       /* char[size] holding one of `choices` ("a|b|c") */
} ConfigType;

typedef struct {
    const char *key;     /* "section.key"; NULL ends the schema */
    ConfigType type;
    size_t offset;       /* offsetof(target struct, field) */
    size_t size;         /* sizeof the field (strings: the buffer size, incl. NUL) */
    const char *def;     /* default, as text ("" for an empty string) */
    double min, max;     /* valid range for numbers (inclusive); min > max means unbounded */
    const char *choices; /* CFG_ENUM: "cpu|cuda" */
    const char *help;    /* one line for `cispo config --help` and docs */
} ConfigField;

typedef ConfigField ConfigSchema;

/* Set every field of `target` to its default. */
int config_set_defaults(const ConfigSchema *schema, void *target);
/* Read a YAML file into target. Returns 0 or ERR_CONFIG / ERR_IO (message set). */
int config_load_yaml(const ConfigSchema *schema, void *target, const char *path);
/* Same, from a string (tests, fuzzing); `name` labels messages. */
int config_load_yaml_string(const ConfigSchema *schema, void *target, const char *text, size_t len,
                            const char *name);
/* Apply one "section.key=value". */
int config_apply_override(const ConfigSchema *schema, void *target, const char *assignment);
/* Print every field as YAML grouped by section, with help as comments. */
void config_print_yaml(const ConfigSchema *schema, const void *target, FILE *f);
/* Find a field, or NULL. */
const ConfigField *config_find(const ConfigSchema *schema, const char *key);
/* Levenshtein distance (for suggestions). */
int config_edit_distance(const char *a, const char *b);

#endif
