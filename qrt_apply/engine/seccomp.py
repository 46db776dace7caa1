"""A seccomp filter for sandboxes: no new namespaces, no mounts, less kernel to attack.

A program in a sandbox needs ordinary system calls only. Without this filter it could create a user
namespace of its own (holding every capability there), mount a tmpfs in it and fill it with host
memory that no rlimit counts, or reach kernel interfaces that have a history of holes. The filter,
a classic BPF program that bwrap installs just before it starts the launcher (``--seccomp FD``):

* refuses with ``EPERM``: ``unshare``, ``setns``, ``mount`` and the new mount API, ``umount2``,
  ``pivot_root``, ``chroot``, the keyring calls, ``bpf``, ``userfaultfd``, ``perf_event_open``,
  ``ptrace``, io_uring, and ``clone`` with any ``CLONE_NEW*`` flag;
* answers ``clone3`` with ``ENOSYS``, so that the C library falls back to ``clone`` (whose flags
  the filter can read; ``clone3`` passes them in memory);
* refuses the x32 system-call ABI on x86-64, and kills a process calling with another
  architecture's ABI than the one the filter was built for.

Built for x86-64 and aarch64; ``filter_program`` returns None elsewhere (no filter, said by the
executor).
"""

from __future__ import annotations

import errno
import platform
import struct

__all__ = ["filter_program"]

# BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h)
_LD_ABS_W = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_KILL_PROCESS = 0x80000000
# offsets in struct seccomp_data: nr, arch, instruction_pointer, args[6] (low word first)
_NR, _ARCH, _ARG0_LOW = 0, 4, 16
_X32_BIT = 0x40000000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NEW = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
)

# (audit arch, clone, clone3, refused calls) per machine
_TABLES: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "x86_64": (
        0xC000003E,
        56,
        435,
        # unshare setns mount umount2 pivot_root chroot keyctl add_key request_key bpf
        # userfaultfd perf_event_open ptrace io_uring_{setup,enter,register}
        # open_tree move_mount fsopen fsconfig fsmount fspick mount_setattr
        (272, 308, 165, 166, 155, 161, 250, 248, 249, 321, 323, 298, 101, 425, 426, 427)
        + (428, 429, 430, 431, 432, 433, 442),
    ),
    "aarch64": (
        0xC00000B7,
        220,
        435,
        (97, 268, 40, 39, 41, 51, 219, 217, 218, 280, 282, 241, 117, 425, 426, 427)
        + (428, 429, 430, 431, 432, 433, 442),
    ),
}


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes | None:
    """The filter as bwrap reads it (an array of ``struct sock_filter``), or None when this
    machine's system-call table is not known here."""
    table = _TABLES.get(machine or platform.machine())
    if table is None:
        return None
    arch, clone, clone3, refused = table
    x86 = arch == _TABLES["x86_64"][0]
    # Layout: checks, then the clone-flags block, then the shared return instructions at the end.
    # Jumps are relative to the next instruction, so targets are computed from the final layout.
    checks = 3 + int(x86) + len(refused) + 2  # arch, nr, [x32], refused..., clone3, clone
    flags_at = checks + 1  # after "allow"
    eperm_at = flags_at + 3  # after the flags block (load, jset, allow)
    enosys_at, kill_at = eperm_at + 1, eperm_at + 2

    program: list[tuple[int, int, int, int]] = []

    def jump_to(target: int) -> int:
        return target - (len(program) + 1)

    program.append(_op(_LD_ABS_W, _ARCH))
    program.append(_op(_JEQ, arch, 0, jump_to(kill_at)))
    program.append(_op(_LD_ABS_W, _NR))
    if x86:
        program.append(_op(_JGE, _X32_BIT, jump_to(eperm_at), 0))
    for number in refused:
        program.append(_op(_JEQ, number, jump_to(eperm_at), 0))
    program.append(_op(_JEQ, clone3, jump_to(enosys_at), 0))
    program.append(_op(_JEQ, clone, jump_to(flags_at), 0))
    program.append(_op(_RET, _ALLOW))
    assert len(program) == flags_at
    program.append(_op(_LD_ABS_W, _ARG0_LOW))
    program.append(_op(_JSET, _CLONE_NEW, jump_to(eperm_at), 0))
    program.append(_op(_RET, _ALLOW))
    assert len(program) == eperm_at
    program.append(_op(_RET, _ERRNO | errno.EPERM))
    program.append(_op(_RET, _ERRNO | errno.ENOSYS))
    program.append(_op(_RET, _KILL_PROCESS))
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
