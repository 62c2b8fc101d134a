"""Run a rendered systemd unit's ExecStart under (most of) its sandbox, without systemd.

No systemd runs as PID 1 here, so this reproduces the parts of a unit that decide
whether its command can do its job, as root, in a private mount namespace:

Modelled
  * ``User=``/``Group=``, ``DynamicUser=`` (an unused uid/gid), ``SupplementaryGroups=``,
    ``CapabilityBoundingSet=`` (empty only) and ``NoNewPrivileges=``: ``setpriv``.
  * ``ProtectSystem=`` (strict: every mount but /proc, /sys, /dev read-only; full:
    /usr, /boot, /efi, /etc), ``ProtectHome=`` (an empty read-only tmpfs over /home,
    /root, /run/user), ``PrivateTmp=`` (new /tmp and /var/tmp), ``ReadWritePaths=``,
    ``StateDirectory=``/``RuntimeDirectory=`` (made for the user, writable): mounts
    inside ``unshare -m``.
  * Folders that play host folders: ``roles`` maps "/etc", "/var/lib", "/run" to test
    folders, which ProtectSystem= treats as those folders (they survive PrivateTmp=);
    ``%S``/``%t`` name them and State/RuntimeDirectory= are made in them. The test's
    Python, when it lives under /root or /home, stays visible read-only through
    ProtectHome= (production installs mailprov outside home folders).
  * ``UMask=``, a clean environment (plus the test's PYTHONPATH, so the code under
    test runs).
  * ``SystemCallFilter=`` (allow-lists, expanded by ``systemd-analyze syscall-filter``),
    ``SystemCallArchitectures=native``, ``SystemCallErrorNumber=``,
    ``RestrictAddressFamilies=``: seccomp filters loaded through libseccomp.
  * ``MemoryDenyWriteExecute=``: the kernel's ``PR_SET_MDWE`` (Linux 6.3+), which refuses
    what systemd's seccomp rule refuses (writable+executable mappings, memory made
    executable later).

Not modelled (systemd-analyze security judges them, nothing here runs them):
``IPAddressAllow=``/``IPAddressDeny=`` (cgroup BPF: no traffic is filtered),
``PrivateNetwork=``, ``PrivateUsers=``, ``PrivateDevices=``, ``PrivateMounts=``,
``ProtectKernel*=``, ``ProtectControlGroups=``, ``ProtectClock=``, ``ProtectHostname=``,
``ProtectProc=``/``ProcSubset=``, ``RestrictNamespaces=``, ``RestrictRealtime=``,
``RestrictSUIDSGID=``, ``LockPersonality=``, ``RemoveIPC=``, ``KeyringMode=``, ``Type=``,
``PIDFile=``, ``Restart=``, other specifiers, ExecStart prefixes, and the settings
``DynamicUser=`` implies (the units set those explicitly).

This file also runs as a script: ``mounts SPEC`` (as root, inside ``unshare -m``) and
``exec SPEC`` (as the unit's user, after ``setpriv``).
"""

from __future__ import annotations

import ctypes
import errno
import grp
import json
import os
import pwd
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
SCMP_ACT_ALLOW, SCMP_ACT_KILL_PROCESS, SCMP_CMP_EQ, AF_MAX = 0x7FFF0000, 0x80000000, 4, 46
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def parse_unit(text: str) -> dict[str, list[str]]:
    """``[Service]`` settings: name -> values in order (an empty assignment resets)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            out[key] = [*out.get(key, []), value] if value else []
    return out


def _syscalls(names: list[str]) -> list[str]:
    """``@group`` names expanded (recursively) to system calls, as systemd lists them."""
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True
    ).stdout
    groups: dict[str, list[str]] = {}
    current = ""
    for line in listing.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif line.strip() and not line.strip().startswith("#") and current:
            groups[current].append(line.strip())
    out: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name.startswith("@"):
            todo += groups[name]
        else:
            out.add(name)
    return sorted(out)


def _free_id() -> int:
    """A uid/gid in systemd's DynamicUser range that no user or group has."""
    for candidate in range(61184, 65520):
        try:
            pwd.getpwuid(candidate)
        except KeyError:
            try:
                grp.getgrgid(candidate)
            except KeyError:
                return candidate
    raise RuntimeError("no free uid")  # pragma: no cover


#: Folders a unit's sandbox hides: ProtectHome= (/root, /home) and PrivateTmp= (/tmp, /var/tmp).
_HIDDEN = ("/root/", "/home/", "/tmp/", "/var/tmp/")


def _test_tree_to_keep() -> list[str]:
    """The test's own Python installation and checkout when a sandbox would hide them.

    ProtectHome= hides /root and /home (and /root is 0700), PrivateTmp= hides /tmp: a
    venv or a clone there (as CI's fresh clone may be) stays visible, read-only, so the
    command under test can start. Production installs mailprov outside these folders
    (README, "File layout on a host").
    """
    repo = Path(__file__).resolve().parents[2]
    found = {str(Path(p).resolve()) for p in (sys.base_prefix, sys.prefix, repo)}
    return sorted(p for p in found if p.startswith(_HIDDEN))


def spec(
    unit_text: str, roles: dict[str, Path], env: dict[str, str] | None = None
) -> dict[str, Any]:
    """What the two script stages need: mounts, identity, filters, command, environment."""
    unit = parse_unit(unit_text)
    one = {k: v[-1] for k, v in unit.items() if v}
    if one.get("DynamicUser") == "yes":
        uid = gid = _free_id()
    elif "User" in one:
        entry = pwd.getpwnam(one["User"])
        uid, gid = entry.pw_uid, entry.pw_gid
    else:
        uid = gid = 0
    if "Group" in one:
        gid = grp.getgrnam(one["Group"]).gr_gid
    groups = [
        grp.getgrnam(g).gr_gid for v in unit.get("SupplementaryGroups", []) for g in v.split()
    ]
    subst = {"%S": str(roles["/var/lib"]), "%t": str(roles["/run"]), "%%": "%"}
    command = one["ExecStart"]
    for key, value in subst.items():
        command = command.replace(key, value)
    dirs = [
        (str(roles[base] / name), 0o755)
        for key, base in (("StateDirectory", "/var/lib"), ("RuntimeDirectory", "/run"))
        for value in unit.get(key, [])
        for name in value.split()
    ]
    families = [f for v in unit.get("RestrictAddressFamilies", []) for f in v.split()]
    error = one.get("SystemCallErrorNumber")
    return {
        "protect_system": one.get("ProtectSystem", "no"),
        "protect_home": one.get("ProtectHome", "no"),
        "private_tmp": one.get("PrivateTmp") == "yes",
        "roles": {k: str(v) for k, v in roles.items()},
        "keep": _test_tree_to_keep(),
        "read_write": [p for v in unit.get("ReadWritePaths", []) for p in v.split()],
        "dirs": dirs,
        "uid": uid,
        "gid": gid,
        "groups": groups,
        "caps_empty": "CapabilityBoundingSet" in unit and not unit["CapabilityBoundingSet"],
        "umask": int(one.get("UMask", "0022"), 8),
        "mdwe": one.get("MemoryDenyWriteExecute") == "yes",
        "syscalls": _syscalls([s for v in unit.get("SystemCallFilter", []) for s in v.split()]),
        "syscall_errno": getattr(errno, error) if error else None,
        "families": [getattr(socket, f) for f in families],
        "argv": shlex.split(command),
        "env": {"PATH": PATH, "LANG": "C.UTF-8", **(env or {})},
    }


def popen(
    unit_text: str, roles: dict[str, Path], env: dict[str, str] | None = None, **kw: Any
) -> subprocess.Popen[str]:
    """Start the unit's ExecStart in its emulated sandbox (stop it by PID)."""
    extra = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    data = json.dumps(spec(unit_text, roles, {**extra, **(env or {})}))
    argv = ["unshare", "--mount", "--propagation", "private", "--"]
    argv += [sys.executable, "-I", __file__, "mounts", data]
    return subprocess.Popen(argv, text=True, **kw)


def run(
    unit_text: str, roles: dict[str, Path], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a one-shot unit's ExecStart to the end in its emulated sandbox."""
    with popen(unit_text, roles, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# -- the two stages, run as a script ---------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    src = source.encode() if source else None
    kind = fstype.encode() if fstype else None
    if _libc.mount(src, target.encode(), kind, flags, data.encode() or None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} {target}: {os.strerror(err)}")


def _bind(source: str, target: str, *, read_only: bool) -> None:
    """Bind ``source`` on ``target`` and make that mount read-only or writable."""
    _mount(source, target, None, MS_BIND)
    keep = os.statvfs(target).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | keep | (MS_RDONLY if read_only else 0))


def _protect_system(level: str) -> None:
    """ProtectSystem=: strict makes every mount read-only but the API file systems."""
    if level == "strict":
        with open("/proc/self/mountinfo", encoding="utf-8") as info:
            points = sorted({line.split()[4] for line in info})
    else:
        points = ["/usr", "/boot", "/efi", "/etc"] if level in {"yes", "full"} else []
    for point in points:
        if not point.startswith(("/proc", "/sys", "/dev")) and os.path.isdir(point):
            _bind(point, point, read_only=True)


def _protect_home(keep: dict[str, int]) -> None:
    """ProtectHome=: an empty read-only tmpfs over each home root, but ``keep``'s folders."""
    for point in ("/home", "/root", "/run/user"):
        if os.path.isdir(point):
            _mount("tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
            for path, fd in keep.items():
                if path.startswith(point + "/"):
                    os.makedirs(path, exist_ok=True)
                    _bind(f"/proc/self/fd/{fd}", path, read_only=True)
            _mount(None, point, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _stage_mounts(s: dict[str, Any]) -> None:
    # systemd makes State/RuntimeDirectory= before it builds the unit's namespace.
    for path, mode in s["dirs"]:
        os.makedirs(path, mode=mode, exist_ok=True)
        os.chown(path, s["uid"], s["gid"])
    # Keep the role folders reachable through descriptors: PrivateTmp= may hide them.
    fds = {path: os.open(path, os.O_PATH) for path in [*s["roles"].values(), *s["keep"]]}
    _protect_system(s["protect_system"])
    if s["protect_home"] in {"yes", "read-only", "tmpfs"}:
        _protect_home({path: fds[path] for path in s["keep"]})
    if s["private_tmp"]:
        for point in ("/tmp", "/var/tmp"):
            _mount("tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
            for path in s["keep"]:
                if path.startswith(point + "/"):
                    os.makedirs(path, exist_ok=True)
                    _bind(f"/proc/self/fd/{fds[path]}", path, read_only=True)
    for role, path in s["roles"].items():
        os.makedirs(path, exist_ok=True)
        read_only = s["protect_system"] == "strict" or (
            role == "/etc" and s["protect_system"] in {"yes", "full"}
        )
        _bind(f"/proc/self/fd/{fds[path]}", path, read_only=read_only)
    for path in [p.lstrip("-") for p in s["read_write"]] + [p for p, _ in s["dirs"]]:
        _bind(path, path, read_only=False)
    argv = ["setpriv", f"--reuid={s['uid']}", f"--regid={s['gid']}"]
    argv.append(f"--groups={','.join(map(str, s['groups']))}" if s["groups"] else "--clear-groups")
    if s["caps_empty"]:
        argv += ["--inh-caps=-all", "--bounding-set=-all"]
    argv += ["--no-new-privs", "--", sys.executable, "-I", __file__, "exec", json.dumps(s)]
    os.execvpe("setpriv", argv, {"PATH": PATH})  # noqa: S606  (becoming setpriv is the point)


def _stage_exec(s: dict[str, Any]) -> None:
    os.umask(s["umask"])
    if s["mdwe"] and _libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_MDWE")
    seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_void_p,
    ]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
    seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]

    class Cmp(ctypes.Structure):
        _fields_ = (
            ("arg", ctypes.c_uint),
            ("op", ctypes.c_int),
            ("a", ctypes.c_uint64),
            ("b", ctypes.c_uint64),
        )

    def load(default: int, rules: list[tuple[int, str, int | None]]) -> None:
        ctx = seccomp.seccomp_init(default)
        for action, name, family in rules:
            nr = seccomp.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:  # not a system call of this architecture: systemd skips it too
                continue
            cmp = Cmp(0, SCMP_CMP_EQ, family or 0, 0)
            count = 0 if family is None else 1
            if seccomp.seccomp_rule_add_array(ctx, action, nr, count, ctypes.byref(cmp)) != 0:
                raise OSError(f"seccomp rule for {name}")
        if seccomp.seccomp_load(ctx) != 0:
            raise OSError("seccomp_load")

    # As systemd does: the address families first, the system call allow-list last
    # (it may not allow the seccomp() call itself).
    if s["families"]:
        refuse = 0x00050000 | errno.EAFNOSUPPORT
        others = [f for f in range(AF_MAX) if f not in s["families"]]
        load(SCMP_ACT_ALLOW, [(refuse, "socket", f) for f in others])
    if s["syscalls"]:
        errno_action = (
            0x00050000 | s["syscall_errno"] if s["syscall_errno"] else SCMP_ACT_KILL_PROCESS
        )
        load(errno_action, [(SCMP_ACT_ALLOW, name, None) for name in s["syscalls"]])
    os.execve(s["argv"][0], s["argv"], s["env"])  # noqa: S606  (becoming the unit's command)


if __name__ == "__main__":
    {"mounts": _stage_mounts, "exec": _stage_exec}[sys.argv[1]](json.loads(sys.argv[2]))
