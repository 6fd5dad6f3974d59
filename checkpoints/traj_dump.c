/* checkpoints/traj_dump.c: see traj_dump.h. */
#include "checkpoints/traj_dump.h"

#include <stdio.h>
#include <stdlib.h>

#include "checkpoints/ckpt.h"
#include "checkpoints/h5io.h"
#include "core/error.h"
#include "core/fs.h"

static int write_all(H5File *f, const TrajDump *d) {
    const int64_t G = d->n_groups, R = (int64_t)d->n_groups * d->group_size;
    const int64_t np = d->prompt_offsets[G], nr = d->resp_offsets[R];
    int64_t dims, one = 1;
    int32_t *len = xmalloc((size_t)(R > 0 ? R : 1) * sizeof(int32_t));
    for (int64_t i = 0; i < R; i++) len[i] = d->resp_offsets[i + 1] - d->resp_offsets[i];
    int err = 0;
    dims = G + 1;
    err = err ? err : h5_write_i32(f, "prompt_offsets", d->prompt_offsets, 1, &dims);
    err = err ? err : h5_write_i32(f, "prompt_tokens", d->prompt_tokens, 1, &np);
    dims = R + 1;
    err = err ? err : h5_write_i32(f, "resp_offsets", d->resp_offsets, 1, &dims);
    err = err ? err : h5_write_i32(f, "resp_tokens", d->resp_tokens, 1, &nr);
    err = err ? err : h5_write_f32(f, "behaviour_logp", d->behaviour_logp, 1, &nr);
    err = err ? err : h5_write_f32(f, "learner_logp", d->learner_logp, 1, &nr);
    err = err ? err : h5_write_f32(f, "reward", d->reward, 1, &R);
    err = err ? err : h5_write_f32(f, "advantage", d->advantage, 1, &R);
    err = err ? err : h5_write_i32(f, "length", len, 1, &R);
    err = err ? err : h5_write_i32(f, "stop_reason", d->stop_reason, 1, &R);
    int64_t gs = d->group_size, st = d->step;
    err = err ? err : h5_write_i64(f, "group_size", &gs, 0, &one);
    err = err ? err : h5_write_i64(f, "step", &st, 0, &one);
    free(len);
    return err;
}

int traj_dump_write(const char *run_dir, const TrajDump *d) {
    char dir[1024], path[1100], tmp[1200];
    snprintf(dir, sizeof dir, "%s/rollouts", run_dir);
    int err = fs_mkdir_p(dir);
    if (err) return err;
    snprintf(path, sizeof path, "%s/step_%07ld.h5", dir, d->step);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    H5File f;
    if ((err = h5_create(&f, tmp))) return err;
    err = write_all(&f, d);
    int e2 = h5_close(&f);
    err = err ? err : e2;
    if (!err) err = ckpt_fsync_path(tmp);
    if (!err && rename(tmp, path) != 0) err = err_set(ERR_IO, "cannot rename %s to %s", tmp, path);
    if (err) remove(tmp);
    return err;
}
