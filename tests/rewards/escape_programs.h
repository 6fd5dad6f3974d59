/* tests/rewards/escape_programs.h: the hostile programs of the sandbox escape suite
 * (RELIABILITY.md S1). Each prints "ESCAPED <what>" if its attack worked; the test also checks the
 * host side (canary file, secret environment variable, victim process, listening sockets, marker
 * file). Placeholders replaced before a run: @CANARY@ (a host file holding the secret), @SECRET@,
 * @VICTIM@ (pid of a host process running as the sandbox uid), @HOSTPID@ (the test itself),
 * @PORT@ (a TCP port listening on the host's 127.0.0.1), @ABSTRACT@ (a host abstract unix socket
 * name), @MARKER@ (a host path that must never appear). Static data only. */
#ifndef CISPO_TESTS_ESCAPE_PROGRAMS_H
#define CISPO_TESTS_ESCAPE_PROGRAMS_H

typedef struct {
    const char *name;
    char lang;        /* 'p' Python 3, 'c' C (compiled on the host by the test) */
    const char *src;
} EscapeProgram;

#define PY_CTYPES "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"

static const EscapeProgram k_escape[] = {
    {"net_tcp", 'p',
     "import socket\n"
     "for h in ('127.0.0.1', '1.1.1.1', '10.0.0.1'):\n"
     "    try:\n"
     "        socket.create_connection((h, @PORT@), timeout=0.3); print('ESCAPED tcp', h)\n"
     "    except OSError as e: print('blocked', h, e)\n"},
    {"net_udp_dns", 'p',
     "import socket\n"
     "try:\n"
     "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('8.8.8.8', 53)); print('ESCAPED udp')\n"
     "except OSError as e: print('blocked', e)\n"},
    {"net_ipv6", 'p',
     "import socket\n"
     "try:\n"
     "    socket.create_connection(('::1', @PORT@), timeout=0.3); print('ESCAPED tcp6')\n"
     "except OSError as e: print('blocked', e)\n"},
    {"net_abstract_unix", 'p',
     "import socket\n"
     "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
     "try:\n"
     "    s.connect('\\0@ABSTRACT@'); print('ESCAPED abstract unix socket')\n"
     "except OSError as e: print('blocked', e)\n"},
    {"net_netlink_raw", 'p',
     "import socket\n"
     "for fam, ty in ((socket.AF_NETLINK, socket.SOCK_RAW), (socket.AF_PACKET, socket.SOCK_RAW)):\n"
     "    try:\n"
     "        socket.socket(fam, ty); print('ESCAPED socket family', fam)\n"
     "    except OSError as e: print('blocked', e)\n"},
    {"read_shadow_passwd", 'p',
     "for p in ('/etc/shadow', '/etc/passwd', '/etc/hostname'):\n"
     "    try: print('ESCAPED read', p, open(p).read()[:40])\n"
     "    except OSError as e: print('blocked', e)\n"},
    {"read_host_canary", 'p',
     "for p in ('@CANARY@', '/proc/@HOSTPID@/root@CANARY@', '/proc/1/root@CANARY@'):\n"
     "    try: print('ESCAPED read canary', open(p).read())\n"
     "    except OSError as e: print('blocked', e)\n"},
    {"list_host_dirs", 'p',
     "import os\n"
     "for d in ('/root', '/home', '/work', '/etc', '/var', '/sys', '/run'):\n"
     "    try: print('ESCAPED list', d, os.listdir(d)[:5])\n"
     "    except OSError as e: print('blocked', e)\n"},
    {"read_environment", 'p',
     "import os\n"
     "print(dict(os.environ))\n"
     "if 'CISPO_SECRET_ENV' in os.environ or len(os.environ) > 2: print('ESCAPED environment', dict(os.environ))\n"},
    {"scan_proc_environ", 'p',
     "import os\n"
     "for p in os.listdir('/proc'):\n"
     "    if p.isdigit():\n"
     "        try: print(p, open('/proc/%s/environ' % p, 'rb').read())\n"
     "        except OSError as e: print('blocked', p, e)\n"},
    {"see_host_process", 'p',
     "import os\n"
     "for pid in ('@HOSTPID@', '@VICTIM@'):\n"
     "    try:\n"
     "        c = open('/proc/%s/cmdline' % pid, 'rb').read()\n"
     "        if b'test_sandbox' in c or pid == '@VICTIM@': print('ESCAPED sees host process', pid, c)\n"
     "    except OSError as e: print('blocked', e)\n"},
    {"write_outside", 'p',
     "import os\n"
     "for p in ('/box/hacked', '/usr/hacked', '/hacked', '/etc/hacked', '/proc/hacked'):\n"
     "    try: open(p, 'w').write('x'); print('ESCAPED write', p)\n"
     "    except OSError as e: print('blocked', e)\n"
     "open('@MARKER@', 'w').write('only in the private /tmp')\n"},
    {"signal_host", 'p',
     "import os, signal\n"
     "for pid in (@VICTIM@, @HOSTPID@):\n"
     "    try: os.kill(pid, signal.SIGKILL); print('ESCAPED killed', pid)\n"
     "    except OSError as e: print('blocked', e)\n"
     "try: os.kill(-1, signal.SIGKILL)\n"
     "except OSError as e: print('blocked', e)\n"},
    {"mount", 'p', PY_CTYPES
     "for src, dst, fs in ((b'none', b'/tmp', b'tmpfs'), (b'proc', b'/tmp', b'proc'), (b'/', b'/tmp', None)):\n"
     "    if libc.mount(src, dst, fs, 4096 if fs is None else 0, None) == 0: print('ESCAPED mount', dst, fs)\n"
     "    else: print('blocked', os.strerror(ctypes.get_errno()))\n"},
    {"unshare_setns", 'p', PY_CTYPES
     "for flag in (0x10000000, 0x00020000, 0x40000000, 0x20000000):\n"
     "    if libc.unshare(flag) == 0: print('ESCAPED unshare', hex(flag))\n"
     "    else: print('blocked', os.strerror(ctypes.get_errno()))\n"
     "fd = os.open('/proc/1/ns/mnt', os.O_RDONLY)\n"
     "if libc.setns(fd, 0) == 0: print('ESCAPED setns')\n"},
    {"ptrace", 'p', PY_CTYPES
     "pid = os.fork()\n"
     "if pid == 0:\n"
     "    import time; time.sleep(2); os._exit(0)\n"
     "for target in (pid, 1):\n"
     "    if libc.ptrace(16, target, 0, 0) == 0: print('ESCAPED ptrace attach', target)\n"
     "    else: print('blocked', os.strerror(ctypes.get_errno()))\n"
     "if libc.ptrace(0, 0, 0, 0) == 0: print('ESCAPED ptrace traceme')\n"
     "os.kill(pid, 9)\n"},
    {"bpf", 'p', PY_CTYPES
     "attr = ctypes.create_string_buffer(128)\n"
     "ctypes.memmove(attr, (ctypes.c_uint32 * 4)(2, 4, 8, 16), 16)\n"
     "if libc.syscall(321, 0, attr, 128) >= 0: print('ESCAPED bpf map')\n"
     "else: print('blocked', os.strerror(ctypes.get_errno()))\n"},
    {"io_uring", 'p', PY_CTYPES
     "p = ctypes.create_string_buffer(120)\n"
     "if libc.syscall(425, 8, p) >= 0: print('ESCAPED io_uring_setup')\n"
     "else: print('blocked', os.strerror(ctypes.get_errno()))\n"},
    {"keyring", 'p', PY_CTYPES
     "if libc.syscall(248, b'user', b'cispo', b'v', 1, -3) >= 0: print('ESCAPED add_key')\n"
     "else: print('blocked', os.strerror(ctypes.get_errno()))\n"
     "if libc.syscall(250, 0, -3, 0) >= 0: print('ESCAPED keyctl')\n"},
    {"perf_event_open", 'p', PY_CTYPES
     "attr = ctypes.create_string_buffer(128)\n"
     "ctypes.memmove(attr, (ctypes.c_uint32 * 2)(1, 128), 8)\n"
     "if libc.syscall(298, attr, 0, -1, -1, 0) >= 0: print('ESCAPED perf_event_open')\n"
     "else: print('blocked', os.strerror(ctypes.get_errno()))\n"},
    {"inherited_fds", 'p',
     "import os\n"
     "for fd in range(3, 1024):\n"
     "    try: os.fstat(fd); print('ESCAPED inherited fd', fd, os.readlink('/proc/self/fd/%d' % fd))\n"
     "    except OSError: pass\n"},
    {"fork_bomb", 'c',
     "#include <unistd.h>\n"
     "int main(void) { for (;;) fork(); }\n"},
    {"thread_bomb", 'p',
     "import threading, time\n"
     "n = 0\n"
     "try:\n"
     "    while True:\n"
     "        threading.Thread(target=time.sleep, args=(100,), daemon=True).start(); n += 1\n"
     "except RuntimeError as e: print('stopped at', n, e)\n"
     "if n > 1000: print('ESCAPED threads', n)\n"
     "time.sleep(100)\n"},
    {"memory_bomb", 'p',
     "a = []\n"
     "try:\n"
     "    while True: a.append(bytearray(b'x' * (64 << 20)))\n"
     "except MemoryError: print('stopped at', len(a) * 64, 'MiB')\n"
     "if len(a) * 64 > 1024: print('ESCAPED memory', len(a) * 64)\n"},
    {"disk_fill", 'p',
     "import os\n"
     "for d in ('/tmp', '/dev/shm', '/dev', '', '/box'):\n"
     "    n = 0\n"
     "    try:\n"
     "        with open(d + '/fill', 'wb') as f:\n"
     "            while True: f.write(b'x' * (1 << 20)); f.flush(); n += 1\n"
     "    except (OSError, MemoryError) as e: print(d, 'stopped at', n, 'MiB', e)\n"
     "    if n > 512: print('ESCAPED disk', d, n)\n"},
    {"infinite_loop", 'p', "while True: pass\n"},
    {"sleep_forever", 'p', "import time\ntime.sleep(10000)\n"},
    {"double_fork_daemon", 'p',
     "import os, time\n"
     "if os.fork() == 0:\n"
     "    os.setsid()\n"
     "    if os.fork() == 0:\n"
     "        time.sleep(2.5)\n"
     "        open('@MARKER@', 'w').write('daemon')\n"
     "        os._exit(0)\n"
     "    os._exit(0)\n"
     "print('parent exits')\n"},
    {"output_flood_10gb", 'p',
     "import sys\n"
     "b = 'x' * (1 << 20)\n"
     "for i in range(10240): sys.stdout.write(b)\n"},
    {"stderr_flood", 'c',
     "#include <string.h>\n#include <unistd.h>\n"
     "int main(void) { static char b[1 << 16]; memset(b, 'e', sizeof b); for (;;) write(2, b, sizeof b); }\n"},
    {"chroot_setuid", 'p',
     "import os\n"
     "for f, a in ((os.chroot, '/tmp'), (os.setuid, 0), (os.setgid, 0)):\n"
     "    try: f(a); print('ESCAPED', f.__name__)\n"
     "    except OSError as e: print('blocked', e)\n"},
    {"proc_sys_write", 'p',
     "for p, v in (('/proc/sysrq-trigger', 'h'), ('/proc/sys/kernel/hostname', 'pwned'), ('/proc/sys/vm/drop_caches', '3')):\n"
     "    try: open(p, 'w').write(v); print('ESCAPED write', p)\n"
     "    except OSError as e: print('blocked', e)\n"},
    {"devices", 'p',
     "import os\n"
     "for p in ('/dev/sda', '/dev/vda', '/dev/mem', '/dev/kmsg', '/dev/port', '/dev/nvme0n1'):\n"
     "    try: os.open(p, os.O_RDONLY); print('ESCAPED open', p)\n"
     "    except OSError as e: print('blocked', e)\n"},
    {"tiocsti", 'p',
     "import fcntl, termios\n"
     "for fd in (0, 1, 2):\n"
     "    try: fcntl.ioctl(fd, termios.TIOCSTI, b'x'); print('ESCAPED tiocsti', fd)\n"
     "    except OSError as e: print('blocked', e)\n"},
    {"cgroup_escape", 'p',
     "import os\n"
     "for p in ('/sys/fs/cgroup/pids/cgroup.procs', '/sys/fs/cgroup/memory/cgroup.procs', '/sys/fs/cgroup/cgroup.procs'):\n"
     "    try: open(p, 'w').write(str(os.getpid())); print('ESCAPED cgroup', p)\n"
     "    except OSError as e: print('blocked', e)\n"},
    {"nested_bwrap", 'p',
     "import subprocess\n"
     "try:\n"
     "    r = subprocess.run(['/usr/bin/bwrap', '--bind', '/', '/', '/usr/bin/true'], capture_output=True, timeout=1)\n"
     "    print('ESCAPED nested bwrap' if r.returncode == 0 else 'blocked', r.stderr)\n"
     "except Exception as e: print('blocked', e)\n"},
    {"i386_syscall", 'c',
     "#include <stdio.h>\n"
     "int main(void) {\n"
     "    long ret, nr = 310, flag = 0x10000000; /* ia32 unshare(CLONE_NEWUSER) */\n"
     "    __asm__ volatile(\"int $0x80\" : \"=a\"(ret) : \"a\"(nr), \"b\"(flag) : \"memory\");\n"
     "    if (ret == 0) printf(\"ESCAPED ia32 unshare\\n\"); else printf(\"blocked %ld\\n\", ret);\n"
     "    return 0;\n}\n"},
    {"clone_newuser_c", 'c',
     "#define _GNU_SOURCE\n#include <sched.h>\n#include <stdio.h>\n#include <sys/syscall.h>\n#include <unistd.h>\n"
     "int main(void) {\n"
     "    long r = syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | 17 /* SIGCHLD */, 0, 0, 0, 0);\n"
     "    if (r == 0) _exit(0);\n"
     "    if (r > 0) printf(\"ESCAPED clone(CLONE_NEWUSER)\\n\"); else perror(\"blocked\");\n"
     "    return 0;\n}\n"},
    {"tamper_expected", 'p',
     "import os\n"
     "for root in ('/box', '/tmp', '/', '/proc/1/cwd'):\n"
     "    try:\n"
     "        for dp, dn, fn in os.walk(root):\n"
     "            if dp.startswith(('/proc', '/usr', '/sys', '/dev', '/tmp')) and root not in ('/tmp', '/proc/1/cwd'): dn[:] = []; continue\n"
     "            for f in fn:\n"
     "                p = os.path.join(dp, f)\n"
     "                try: open(p, 'a').write('x'); print('ESCAPED writable', p) if not p.startswith('/tmp') else None\n"
     "                except OSError: pass\n"
     "    except OSError as e: print('blocked', e)\n"
     "for p in ('/box/expected.txt', '/box/test.py', '/box/prog.py'):\n"
     "    try: open(p, 'w').write('x'); print('ESCAPED replaced', p)\n"
     "    except OSError as e: print('blocked', e)\n"},
};

#endif
