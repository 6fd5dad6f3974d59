/* core/fs.h: small filesystem helpers (paths, directories, whole-file reads). */
#ifndef CISPO_CORE_FS_H
#define CISPO_CORE_FS_H

#include <stddef.h>

/* Create a directory and its parents (mode 0755); an existing directory is fine. 0 or ERR_IO. */
int fs_mkdir_p(const char *path);
/* dst = a + "/" + b, truncation-checked; 0 or ERR_RANGE. */
int fs_join(char *dst, size_t cap, const char *a, const char *b);
/* 1 if path exists (any kind), 0 otherwise. */
int fs_exists(const char *path);
/* 1 if path is a directory. */
int fs_is_dir(const char *path);

#endif
