/* core/version.c: the build's version string from the compile definitions CMake sets on
 * cispo_core (CISPO_VERSION, CISPO_GIT_COMMIT); "unknown" where a definition is missing.
 */
#include "core/version.h"

#ifndef CISPO_VERSION
#define CISPO_VERSION "unknown"
#endif
#ifndef CISPO_GIT_COMMIT
#define CISPO_GIT_COMMIT "unknown"
#endif

const char *cispo_version(void) { return CISPO_VERSION " (commit " CISPO_GIT_COMMIT ")"; }
