"""Run directories: what a run may write into, resume from or replace, and the lock it holds.

The promises, each checked before anything is written:

* ``nas`` never writes into a folder of the user's files: a non-empty ``--out`` is refused
  unless ``--overwrite`` names an earlier nas run (its ``args.yaml``), which is then emptied
  first -- and never when the new run reads one of its files (``--weights DIR/x.pt --out DIR``);
* ``--resume`` continues a run of the same command, and nothing else: a missing or empty
  folder, or one nas did not write, is refused (nothing is started silently);
* one process writes a run directory at a time: :func:`run_output` holds an exclusive lock on
  ``DIR/.nas.lock`` for the whole run, so a second process on the same ``--out`` is refused
  with one line and the first is unharmed;
* a run that then stops on bad input (training diverged, a corrupt image deep in a dataset)
  removes the directory it created: nothing half-written is left. Interruptions and crashes
  remove nothing: their checkpoints serve ``--resume``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from nas.errors import ConfigError, NasError
from search_spaces.files import is_writer

__all__ = [
    "LOCK_NAME",
    "NAS_COMMANDS",
    "check_writable",
    "prepare_out_dir",
    "run_output",
    "written_by",
    "written_by_nas",
]

NAS_COMMANDS = (
    "train",
    "extract",
    "search",
    "rank",
    "sweep",
    "transfer",
    "prune",
    "compress",
    "scale",
    "explain",
)
LOCK_NAME = ".nas.lock"


def written_by(path: Path) -> str | None:
    """The ``nas`` command that wrote the directory ``path`` (named by its ``args.yaml``), or
    None."""
    try:
        data = yaml.safe_load((path / "args.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    command = data.get("command") if isinstance(data, dict) else None
    return command if command in NAS_COMMANDS else None


def written_by_nas(path: Path) -> bool:
    """``path/args.yaml`` exists and names the ``nas`` command that wrote the directory."""
    return written_by(path) is not None


def _entries(path: Path) -> list[Path]:
    """What a directory holds, its lock file aside."""
    return [p for p in path.iterdir() if p.name != LOCK_NAME] if path.is_dir() else []


def check_writable(path: Path) -> None:
    """``path`` exists as a writable directory or can be created."""
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"cannot create {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {ancestor} (permission denied)")


def prepare_out_dir(
    path: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: str | None = None,
    inputs: Iterable[str | Path | None] = (),
) -> Path:
    """Check that ``path`` can receive a run's outputs, without creating or changing anything
    (see the module's promises). ``command``: the command resuming (its runs only);
    ``inputs``: the files and folders the run reads. Rank 0 of a run of several processes
    checks (and alone writes); the other ranks take the path as it is."""
    p = Path(path)
    if not is_writer():
        return p
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if p.exists() and not p.is_dir():
        raise ConfigError(f"output path exists and is not a directory: {p}")
    if resume:
        wrote = written_by(p)
        if not _entries(p):
            raise ConfigError(f"--resume: {p} holds no run to resume (start it without --resume)")
        if wrote is None or (command is not None and wrote != command):
            what = f"a nas {command} run" if command else "a nas run"
            found = f"a nas {wrote} run" if wrote else "files nas did not write"
            raise ConfigError(f"--resume: {p} holds {found}, not {what}; nothing was changed")
    elif _entries(p):
        if not overwrite:
            raise ConfigError(f"output directory {p} is not empty (pass --overwrite to replace it)")
        if not written_by_nas(p):
            raise ConfigError(
                f"output directory {p} holds files nas did not write; --overwrite only replaces "
                "an earlier nas run (choose another --out)"
            )
        inside = _inputs_inside(p, inputs)
        if inside:
            raise ConfigError(
                f"--overwrite would delete {inside}, which this run reads; move it out of {p} "
                "or choose another --out"
            )
    check_writable(p)
    return p


def _inputs_inside(out: Path, inputs: Iterable[str | Path | None]) -> Path | None:
    root = out.resolve()
    for item in inputs:
        if item is None:
            continue
        path = Path(item).expanduser().resolve()
        if path == root or root in path.parents:
            return Path(item)
    return None


@contextlib.contextmanager
def run_output(
    path: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: str | None = None,
    inputs: Iterable[str | Path | None] = (),
) -> Iterator[Path]:
    """The output directory of a run whose input is checked, created and locked for the run
    (see the module's promises); emptied first when ``overwrite`` replaces an earlier nas run;
    removed again if the run stops on a :class:`NasError` and the directory was new or empty.
    """
    p = Path(path)
    if not is_writer():  # rank 0 of several processes makes, locks and cleans the directory
        yield p
        return
    inputs = list(inputs)
    prepare_out_dir(p, overwrite=overwrite, resume=resume, command=command, inputs=inputs)
    fresh = not _entries(p)
    created = not p.exists()
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {p}: {exc.strerror}") from None
    with _locked(p, remove=created):
        # checked again under the lock: another process may have written meanwhile
        prepare_out_dir(p, overwrite=overwrite, resume=resume, command=command, inputs=inputs)
        if overwrite and not resume:
            for child in _entries(p):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        try:
            yield p
        except NasError:
            if fresh:
                _remove_contents(p, keep_dir=not created)
            raise


@contextlib.contextmanager
def _locked(path: Path, *, remove: bool) -> Iterator[None]:
    """An exclusive lock on ``path/.nas.lock`` for the duration; refused at once (one line)
    while another process holds it."""
    lock = path / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(lock).st_ino:
            # the holder removed the file as we opened it: a newer lock file may be held
            raise BlockingIOError
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        raise ConfigError(
            f"another nas process is writing {path}; wait for it, or choose another --out"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        # removed while still held (a process that opened it meanwhile sees the inode change);
        # a killed process leaves the file behind, unlocked and harmless
        Path(lock).unlink(missing_ok=True)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        if remove and path.is_dir() and not _entries(path):
            shutil.rmtree(path, ignore_errors=True)


def _remove_contents(path: Path, *, keep_dir: bool) -> None:
    if not keep_dir:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in _entries(path):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
