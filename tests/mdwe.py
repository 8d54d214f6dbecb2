"""Run a command under the seccomp filter systemd installs for `MemoryDenyWriteExecute=yes`.

systemd 252 (src/shared/seccomp-util.c, `seccomp_memory_deny_write_execute`) makes these calls
fail with EPERM: mmap() asking for PROT_WRITE|PROT_EXEC together, mprotect() and
pkey_mprotect() asking for PROT_EXEC at all, and shmat() with SHM_EXEC. This module builds
the same rules as a classic BPF program and loads it with prctl(2) (after PR_SET_NO_NEW_PRIVS,
as the unit's NoNewPrivileges=yes does), then execs the command, which inherits the filter
with all the threads it will ever start. That reproduces the directive without systemd:

    python tests/mdwe.py python -m monitor run
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM = 1
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000

# BPF opcodes
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
RET_K = 0x06  # BPF_RET | BPF_K

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG2_LOW = 0, 4, 16 + 2 * 8  # little-endian: low word first

# machine: (AUDIT_ARCH_*, mmap, mprotect, pkey_mprotect, shmat)
ARCHES = {
    "x86_64": (0xC000003E, 9, 10, 329, 30),
    "aarch64": (0xC00000B7, 222, 226, 288, 196),
}


def supported() -> bool:
    return platform.machine() in ARCHES and sys.platform == "linux"


def _program() -> bytes:
    arch, mmap, mprotect, pkey_mprotect, shmat = ARCHES[platform.machine()]
    ops: list[tuple[int, int, int, int]] = []

    def op(code: int, k: int, jt: int = 0, jf: int = 0) -> None:
        ops.append((code, jt, jf, k))

    # Offsets below are counted from the instruction after the jump.
    op(LD_W_ABS, OFFSET_ARCH)
    op(JEQ_K, arch, 0, 17)  # another ABI: allow (SystemCallArchitectures=native forbids it)
    op(LD_W_ABS, OFFSET_NR)
    op(JEQ_K, mmap, 4, 0)  # -> [8] write+exec check
    op(JEQ_K, mprotect, 7, 0)  # -> [12] exec check
    op(JEQ_K, pkey_mprotect, 6, 0)  # -> [12]
    op(JEQ_K, shmat, 9, 0)  # -> [16] SHM_EXEC check
    op(RET_K, SECCOMP_RET_ALLOW)  # [7]
    op(LD_W_ABS, OFFSET_ARG2_LOW)  # [8]
    op(AND_K, PROT_WRITE | PROT_EXEC)
    op(JEQ_K, PROT_WRITE | PROT_EXEC, 9, 10)  # -> [20] deny / [21] allow
    op(RET_K, SECCOMP_RET_ALLOW)  # [11] (unreachable)
    op(LD_W_ABS, OFFSET_ARG2_LOW)  # [12]
    op(AND_K, PROT_EXEC)
    op(JEQ_K, PROT_EXEC, 5, 6)  # -> [20] / [21]
    op(RET_K, SECCOMP_RET_ALLOW)  # [15] (unreachable)
    op(LD_W_ABS, OFFSET_ARG2_LOW)  # [16]
    op(AND_K, SHM_EXEC)
    op(JEQ_K, SHM_EXEC, 1, 2)  # -> [20] / [21]
    op(RET_K, SECCOMP_RET_ALLOW)  # [19] (also the non-native target)
    op(RET_K, SECCOMP_RET_ERRNO | EPERM)  # [20]
    op(RET_K, SECCOMP_RET_ALLOW)  # [21]
    assert ops[1][2] + 2 == 19, "the non-native jump must land on an ALLOW"
    return b"".join(struct.pack("HBBI", *o) for o in ops)


def install() -> None:
    """Load the filter into this process; raises OSError if the kernel refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    code = _program()
    buffer = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

    prog = SockFprog(len(code) // 8, ctypes.addressof(buffer))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


if __name__ == "__main__":
    install()
    os.execvp(sys.argv[1], sys.argv[1:])
