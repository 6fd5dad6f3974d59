/* checkpoints/ckpt_manifest.h: private to checkpoints/ (not part of the public API; use ckpt.h).
 *
 * What ckpt.c (the directory protocol) and ckpt_manifest.c (manifest.json: writing and
 * verification) share: the file operations that consult the test fault hook, and the manifest
 * writer. All return 0 or ERR_IO with a message naming the operation, the path and strerror.
 */
#ifndef CISPO_CHECKPOINTS_CKPT_MANIFEST_H
#define CISPO_CHECKPOINTS_CKPT_MANIFEST_H

#include <stddef.h>

#define CKPT_MANIFEST_NAME "manifest.json"
#define CKPT_MANIFEST_FORMAT "cispo-checkpoint"
#define CKPT_MANIFEST_VERSION 1

/* Create or truncate `path`, write `len` bytes and fsync it (write and fsync are hooked). The
 * file is unlinked again on failure. */
int ckpt_io_write_file(const char *path, const void *data, size_t len);
/* rename(from, to), hooked under op "rename" with path `from`. */
int ckpt_io_rename(const char *from, const char *to);

/* Write dir/manifest.json for checkpoint `step`: fsync every regular file of `dir` and record its
 * size and XXH3-128 hash, then write manifest.json.tmp, fsync it and rename it into place. A
 * sub-directory or any other non-regular entry in `dir` is an error. */
int ckpt_manifest_write(const char *dir, long step);

#endif
