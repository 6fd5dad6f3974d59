/* core/version.h: the version string of this build, for `cispo version`, run logs and benchmark
 * rows. The numbers come from CMake (CISPO_VERSION, CISPO_GIT_COMMIT on cispo_core).
 */
#ifndef CISPO_CORE_VERSION_H
#define CISPO_CORE_VERSION_H

/* "0.1.0 (commit 1a2b3c4d5e6f)"; a static string, never freed. */
const char *cispo_version(void);

#endif
