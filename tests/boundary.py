"""The repository boundary: a clone has nothing beside it, so no test or benchmark may read a file outside
the repository (a corpus in a sibling folder passes here and fails for every user).

An audit hook sees every `open` in the process. A path outside the repository, the Python installation
and the operating system's own folders is a violation, recorded with the code that opened it.

    python -m tests.boundary bench.detection --events 3000   # run a module under the guard
"""

from __future__ import annotations

import os
import runpy
import site
import sys
import sysconfig
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT_PREFIX = "boundary: read outside the repository: "

# What a process may read besides the repository: the interpreter and its packages, temporary files, the
# system's own folders (certificates, zoneinfo, /proc), and the per-user configuration tools look up.
_SYSTEM = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/run", "/var/lib", "/opt")
_USER_CONFIG = (".aws", ".config", ".cache", ".pyenv", ".local", ".netrc", ".temporalio")


@dataclass(frozen=True)
class Violation:
    path: str
    opened_by: str

    def __str__(self) -> str:
        return f"{self.path} (opened by {self.opened_by})"


def _allowed_roots() -> tuple[str, ...]:
    roots = {str(REPO), *_SYSTEM, tempfile.gettempdir(), os.path.realpath(tempfile.gettempdir())}
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        roots.add(os.path.realpath(prefix))
    for path in [*site.getsitepackages(), site.getusersitepackages(), *sysconfig.get_paths().values()]:
        roots.add(os.path.realpath(path))
    home = Path.home()
    roots.update(str(home / name) for name in _USER_CONFIG)
    return tuple(sorted(r.rstrip("/") for r in roots if r))


_ROOTS = _allowed_roots()
violations: list[Violation] = []
_installed = False
_report_at_once = False  # a module run under the guard may leave through os._exit: say it when it happens


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def outside(path: str | os.PathLike[str], repo: Path = REPO, roots: tuple[str, ...] = _ROOTS) -> bool:
    """Whether reading `path` crosses the boundary.

    A folder beside the repository (a corpus next to the clone) is outside even when an allowed root holds
    the repository's folder (a clone in /tmp/ci/irflow: /tmp holds temporary files, /tmp/ci/shared is still
    beside it). Only a root inside that folder vouches for its contents (~/.aws beside ~/irflow). Where the
    repository's folder is itself an allowed root (a clone straight in /tmp), its neighbours cannot be told
    from temporary files."""
    resolved = os.path.realpath(os.path.abspath(os.fspath(path)))
    if _under(resolved, str(repo)):
        return False
    folder = os.path.realpath(repo.parent)
    if _under(resolved, folder) and folder not in roots:
        return not any(_under(resolved, root) and _under(root, folder) and root != folder for root in roots)
    return not any(_under(resolved, root) for root in roots)


def _opener() -> str:
    for frame in reversed(traceback.extract_stack()[:-2]):
        if frame.filename != __file__ and not frame.filename.endswith(("/pathlib.py", "/codecs.py")):
            return f"{frame.filename}:{frame.lineno}"
    return "?"


def _hook(event: str, args: tuple) -> None:
    if event != "open":
        return
    path = args[0]
    if isinstance(path, int) or path is None:
        return  # an already open file descriptor
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if outside(path):
        violation = Violation(os.fspath(path), _opener())
        violations.append(violation)
        if _report_at_once:
            sys.stderr.write(f"{REPORT_PREFIX}{violation}\n")
            sys.stderr.flush()


def install() -> None:
    """Watch every open from now on (an audit hook stays for the life of the process)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


def take() -> list[Violation]:
    """The violations since the last call."""
    taken = list(violations)
    violations.clear()
    return taken


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("usage: python -m tests.boundary MODULE [ARGS...]\n")
        return 2
    global _report_at_once
    _report_at_once = True
    install()
    sys.argv = argv
    code = 0
    try:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return code or (3 if take() else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
