/* checkpoints/ckpt.h: checkpoint directories, committed atomically (DESIGN.md §5,
 * RELIABILITY.md C1-C3).
 *
 * RUN_DIR/checkpoints/step_NNNNNNN/ holds the checkpoint's files plus manifest.json (the cispo
 * version, the step, and for every file its size and XXH3-128 content hash). Writing happens in
 * step_NNNNNNN.tmp/; ckpt_commit fsyncs every file and the directory, writes the manifest (temp +
 * fsync + rename), renames the directory into place, fsyncs checkpoints/, then points
 * RUN_DIR/checkpoints/latest at it (temp file + fsync + rename + fsync of the directory). A crash at
 * any moment leaves either the old or the new checkpoint as `latest`, never a partial one.
 * Retention keeps the last `keep_last` checkpoints plus every `keep_every`-th step.
 *
 * Who decides what goes in a checkpoint and when is trainer/'s business: this module provides
 * the directory protocol, verification and lookup only.
 */
#ifndef CISPO_CHECKPOINTS_CKPT_H
#define CISPO_CHECKPOINTS_CKPT_H

#include <stddef.h>

typedef struct {
    char run_dir[512];
    char ckpt_root[600];  /* run_dir/checkpoints */
    char tmp_dir[700];    /* .../step_NNNNNNN.tmp */
    char final_dir[700];  /* .../step_NNNNNNN */
    long step;
    int open;
} CkptWriter;

/* Start checkpoint `step` (creates run_dir/checkpoints/step_NNNNNNN.tmp/, replacing a stale one). */
int ckpt_begin(CkptWriter *w, const char *run_dir, long step);
/* Path of a file `name` inside the checkpoint being written. */
int ckpt_path(const CkptWriter *w, const char *name, char *out, size_t cap);
/* Commit as described above, then apply retention. 0 or ERR_IO (the previous `latest` intact). */
int ckpt_commit(CkptWriter *w, int keep_last, int keep_every);
/* Abandon the checkpoint being written (removes the .tmp directory). Idempotent. */
void ckpt_abort(CkptWriter *w);

/* Remove stale *.tmp directories under run_dir/checkpoints (call at start-up). Returns how many. */
int ckpt_cleanup_stale(const char *run_dir);
/* Verify a committed checkpoint directory: manifest present and parseable, every listed file
 * present with the listed size and hash, no unlisted file, and every HDF5 file readable in full
 * (checksums, decompression). 0, or ERR_FORMAT / ERR_NOTFOUND with the first fault named. */
int ckpt_verify(const char *ckpt_dir);
/* The newest checkpoint that verifies: `latest` first, then older step directories in descending
 * order; each one rejected is logged (log_warn) with the reason. Writes its path to out.
 * ERR_NOTFOUND when there is none. */
int ckpt_find_latest(const char *run_dir, char *out, size_t cap);
/* Step number of a checkpoint directory name (step_NNNNNNN), or -1. */
long ckpt_step_of(const char *ckpt_dir);

/* Test hook: called before each write/fsync/rename the protocol performs, with op = "write",
 * "fsync" or "rename" and the path; a non-zero return is treated as that call failing with that
 * errno. NULL (the default) disables it. */
typedef int (*CkptFaultHook)(const char *op, const char *path);
void ckpt_set_fault_hook(CkptFaultHook hook);
/* Used by writers of files inside a checkpoint (h5 files are written by HDF5; the hook covers the
 * protocol's own writes, fsyncs and renames, and ckpt_fsync_path on each file). */
int ckpt_fsync_path(const char *path);

#endif
