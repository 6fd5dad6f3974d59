/* fuzz/fuzz_util.h: what the harnesses share. Parsers that take a path get the input through an
 * in-memory file (memfd, named /proc/self/fd/N): no disk I/O, one file per process reused for every
 * input. Messages from the parsers are silenced (log level: errors only). Static functions only. */
#ifndef CISPO_FUZZ_UTIL_H
#define CISPO_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"

/* The harness entry point (libFuzzer's name; replay_main.c calls it too). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write data into this process's memfd and return its path (static buffer). Aborts if the memfd
 * cannot be made: a broken harness, not a finding. */
static inline const char *fuzz_file(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        log_set_level(LOG_ERROR);
        fd = memfd_create("cispo-fuzz", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
    return path;
}

#endif
