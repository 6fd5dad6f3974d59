/* core/json_util.h: small helpers over jansson shared by the parsers (config.json, JSONL). */
#ifndef CISPO_CORE_JSON_UTIL_H
#define CISPO_CORE_JSON_UTIL_H

#include <jansson.h>

/* "an object", "a string", ... for error messages ("expected a string, got an integer"). */
const char *json_type_name(const json_t *v);

#endif
