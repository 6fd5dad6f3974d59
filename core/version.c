/* core/version.c: the build's version string: CISPO_VERSION from CMake's project version, and
 * CISPO_GIT_COMMIT from the header cmake/gen_commit.cmake writes at every build; "unknown" where
 * either is missing.
 */
#include "core/version.h"

#include "cispo_commit.h"

#ifndef CISPO_VERSION
#define CISPO_VERSION "unknown"
#endif
#ifndef CISPO_GIT_COMMIT
#define CISPO_GIT_COMMIT "unknown"
#endif

const char *cispo_version(void) { return CISPO_VERSION " (commit " CISPO_GIT_COMMIT ")"; }
