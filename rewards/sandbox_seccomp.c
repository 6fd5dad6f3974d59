/* rewards/sandbox_seccomp.c: the sandbox's seccomp filter, built with libseccomp and exported as a
 * BPF program into a memfd that bwrap loads (--seccomp FD) just before it execs the program.
 *
 * Policy: allow by default (Python and gcc use a wide, changing set of syscalls), and refuse with
 * EPERM the calls a contained program has no use for and that widen the kernel attack surface or
 * change the sandbox itself: mounts and namespaces (mount, umount2, pivot_root, chroot, unshare,
 * setns, the new mount API, clone with any CLONE_NEW* flag), tracing and cross-process memory
 * (ptrace, process_vm_readv/writev), bpf, perf_event_open, userfaultfd, io_uring, the key
 * retention service, kernel modules, kexec, reboot, swap, clocks, syslog, acct, handle-based opens,
 * fanotify, quotactl, ioctl(TIOCSTI), and every socket family except AF_UNIX. clone3 answers ENOSYS
 * (its flags live in memory seccomp cannot read, so libc falls back to clone, which is filtered).
 * Only the native x86-64 ABI is allowed: i386/x32 system calls kill the process (libseccomp's
 * bad-architecture action).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rewards/sandbox_internal.h"

static const char *const k_denied[] = {
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "move_mount", "open_tree", "fsopen",
    "fsmount", "fsconfig", "fspick", "mount_setattr", "ptrace", "process_vm_readv", "process_vm_writev",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "init_module", "finit_module", "delete_module", "kexec_load",
    "kexec_file_load", "reboot", "swapon", "swapoff", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "syslog", "acct", "open_by_handle_at", "name_to_handle_at", "fanotify_init", "quotactl",
    "lookup_dcookie", "iopl", "ioperm", "vhangup", "personality", "pidfd_getfd", "mknod", "mknodat",
};

static const unsigned long k_clone_ns[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWNET,   CLONE_NEWPID,
                                           CLONE_NEWIPC,  CLONE_NEWUTS, CLONE_NEWCGROUP};

static int add_rules(scmp_filter_ctx ctx) {
    int rc = 0;
    for (size_t i = 0; i < sizeof(k_denied) / sizeof(k_denied[0]) && rc == 0; i++) {
        int nr = seccomp_syscall_resolve_name(k_denied[i]);
        if (nr == __NR_SCMP_ERROR) continue; /* unknown to this libseccomp: nothing to deny */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    for (size_t i = 0; i < sizeof(k_clone_ns) / sizeof(k_clone_ns[0]) && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, k_clone_ns[i], k_clone_ns[i]));
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX, 0));
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socketpair), 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, (scmp_datum_t)TIOCSTI));
    return rc;
}

int sbx_seccomp_memfd(char *why, size_t why_cap) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL) {
        snprintf(why, why_cap, "seccomp_init failed");
        return -1;
    }
    int fd = -1, rc = add_rules(ctx);
    if (rc != 0) {
        snprintf(why, why_cap, "seccomp_rule_add failed: %s", strerror(-rc));
        goto done;
    }
    fd = memfd_create("cispo-seccomp", 0);
    if (fd < 0) {
        snprintf(why, why_cap, "memfd_create: %s", strerror(errno));
        goto done;
    }
    rc = seccomp_export_bpf(ctx, fd);
    if (rc != 0 || lseek(fd, 0, SEEK_SET) != 0) {
        snprintf(why, why_cap, "seccomp_export_bpf failed: %s", strerror(rc ? -rc : errno));
        close(fd);
        fd = -1;
    }
done:
    seccomp_release(ctx);
    return fd;
}
