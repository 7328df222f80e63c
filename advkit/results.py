"""Run directories: metrics.json with provenance, records.jsonl, atomic writes.

A run directory belongs to one command. It is never overwritten unless the user says
`--overwrite`, and `--resume` continues only a run of the same command.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

from advkit.errors import UserError

# Settings that do not change an attack's records: a run may resume with other values.
RESUME_FREE = ("device", "batch_size")
PACKAGES = ("advkit", "torch", "transformers", "tokenizers", "textattack", "numpy", "faiss-cpu", "sentencepiece")


# What the data loader saw while this process ran (a local file's split sizes and seed, rows it
# skipped): written into run.json and metrics.json's provenance, so a number names its data.
DATA_NOTES: dict[str, dict] = {}


def note_data(source: str, **facts) -> None:
    DATA_NOTES.setdefault(source, {}).update(facts)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# What runs write into the tree: a table or benchmark run in progress changes them, not the code that runs.
OUTPUTS = ("results", "bench/out")


def git_commit(repo: Path | None = None) -> str | None:
    """HEAD of advkit's checkout (or `repo`), with "-dirty" when a tracked file outside OUTPUTS differs from it."""
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){p}" for p in OUTPUTS)], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


LOCK_FILE = ".advkit.lock"  # in a live run's --out: the pid and host of the process writing there


def alive(holder: dict) -> bool:
    """Whether a lock's process still runs. On another host this cannot be known: taken as running."""
    if holder.get("host") != platform.node():
        return True
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped by its parent is a zombie: dead, though its pid exists
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class RunDir:
    """The output folder of one command run."""

    def __init__(self, path: str | Path, command: str, *, overwrite: bool = False, resume: bool = False,
                 lock: bool = False):
        """`lock`: this is a command's own --out (not a folder inside another run): a live run holds it
        (LOCK_FILE), and a second run into it is refused, before any work and again when it creates it."""
        self.path = Path(path)
        self.command = command
        self.resume = resume
        self.lock, self.locked = lock, False
        self.start = now()
        if lock:
            self._refuse_if_in_use()
        metrics = self.path / "metrics.json"
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {path}: exists and is not a directory")
        started = self.path.is_dir() and any(self.path.iterdir())
        if resume:
            if not started:
                raise UserError(f"--resume: {path} holds no run to resume")
            owner = self.owner()
            if owner is not None and owner != command:
                raise UserError(f"--resume: {path} is a run of '{owner}', not of '{command}'")
        elif started and not overwrite:
            what = "a finished run" if metrics.is_file() else "files"
            raise UserError(f"--out {path}: already holds {what}; pass --overwrite or choose another --out")
        self.overwrite = overwrite and not resume  # whatever is there when the run starts is replaced

    def owner(self) -> str | None:
        """The command that made this run (from metrics.json or the run marker)."""
        for name in ("metrics.json", "run.json"):
            f = self.path / name
            if f.is_file():
                try:
                    return json.loads(f.read_text(encoding="utf-8")).get("command")
                except (json.JSONDecodeError, UnicodeDecodeError):
                    return None
        return None

    def create(self, config: dict, resume_free: tuple[str, ...] = ()) -> None:
        """Make the folder (after all inputs were validated) and mark whose run it is. A resumed run
        must have the same config, except `resume_free` settings (those that do not change records)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if self.lock:
                self._acquire()
            leftover = [p for p in self.path.iterdir() if p.name != LOCK_FILE]
            if self.overwrite:
                for p in leftover:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            elif leftover and not self.resume:  # another run wrote here after this one checked the folder
                self.release()
                raise UserError(f"--out {self.path}: another run wrote there while this one was starting; pass "
                                "--overwrite or choose another --out")
            if self.resume and (self.path / "run.json").is_file():
                self._check_same_config(config, resume_free)
            else:
                atomic_write(self.path / "run.json",
                             json.dumps({"command": self.command, "config": config, "start": self.start,
                                         **({"data": DATA_NOTES} if DATA_NOTES else {})}, indent=2,
                                        ensure_ascii=False))
        except PermissionError:
            raise UserError(f"--out {self.path}: permission denied") from None
        except OSError as e:
            raise UserError(f"--out {self.path}: cannot write: {e.strerror}") from None

    def holder(self) -> dict | None:
        """Who holds the lock: {pid, host, command, start}, or None."""
        try:
            return json.loads((self.path / LOCK_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _refuse_if_in_use(self) -> None:
        holder = self.holder()
        if holder is not None and holder.get("pid") != os.getpid() and alive(holder):
            raise UserError(f"--out {self.path}: in use by a running '{holder.get('command')}' (pid {holder.get('pid')} "
                            f"on {holder.get('host')}, since {holder.get('start')}); wait for it or choose another "
                            f"--out")

    def _acquire(self) -> None:
        """Create LOCK_FILE exclusively; a dead holder's lock (a killed run) is taken over."""
        path = self.path / LOCK_FILE
        text = json.dumps({"pid": os.getpid(), "host": platform.node(), "command": self.command, "start": self.start})
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._refuse_if_in_use()
                path.unlink(missing_ok=True)  # a stale lock; one retry, so two takers cannot both win
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            self.locked = True
            return
        self._refuse_if_in_use()
        raise UserError(f"--out {self.path}: another run took it while this one was starting; choose another --out")

    def release(self) -> None:
        """Remove the lock if this process holds it (the run ended, well or badly)."""
        if self.locked:
            holder = self.holder()
            if holder is not None and holder.get("pid") == os.getpid():
                (self.path / LOCK_FILE).unlink(missing_ok=True)
            self.locked = False

    def _check_same_config(self, config: dict, resume_free: tuple[str, ...]) -> None:
        """--resume must continue the same experiment, or the records would mix two."""
        try:
            before = json.loads((self.path / "run.json").read_text(encoding="utf-8")).get("config", {})
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"--resume: {self.path}/run.json is damaged") from None
        for key, value in config.items():
            if key not in resume_free and key in before and before[key] != value:
                raise UserError(f"--resume: {key} was {before[key]!r} in {self.path}, now {value!r}")

    def check_writable(self) -> None:
        """Fail before any work when --out cannot be created."""
        probe = self.path
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():  # e.g. --out somefile/sub: mkdir would fail only after the work
            raise UserError(f"--out {self.path}: {probe} is a file, not a folder")
        if not os.access(probe, os.W_OK):
            raise UserError(f"--out {self.path}: permission denied")

    def write_metrics(self, metrics: dict, config: dict, *, seed: int | None, device: str) -> dict:
        doc = {
            "command": self.command,
            "metrics": metrics,
            "config": config,
            "provenance": {"git_commit": git_commit(), "versions": versions(), "seed": seed, "device": device,
                           "start": self.start, "end": now(), "host": platform.node(),
                           **({"data": DATA_NOTES} if DATA_NOTES else {})},
        }
        atomic_write(self.path / "metrics.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return doc

    def append_record(self, record: dict, name: str = "records.jsonl") -> None:
        """One line per finished example, on disk before the next one starts (for --resume)."""
        with open(self.path / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_records(self, name: str = "records.jsonl") -> list[dict]:
        """Records already written; a half-written last line (a killed run) is dropped from the file."""
        path = self.path / name
        records, torn = read_records(path)
        if torn:
            atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        return records

    def write_records(self, records: list[dict], name: str = "records.jsonl") -> None:
        atomic_write(self.path / name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_metrics(run: str | Path) -> dict:
    path = Path(run) / "metrics.json" if Path(run).is_dir() else Path(run)
    if path.exists() and path.suffix != ".json":
        raise UserError(f"{run}: not a run directory")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{run}: no metrics.json (not a finished run)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: not valid JSON") from None


def read_records(path: str | Path) -> tuple[list[dict], bool]:
    """(records of a records.jsonl, whether its last line was torn). Records are appended and flushed
    one line at a time, so only the last line can be cut off by a kill; a bad line elsewhere means
    the file is damaged, and that is said, not skipped."""
    path = Path(path)
    if not path.is_file():
        return [], False
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    records, torn = [], False
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n < len(lines) or text.endswith("\n"):
                raise UserError(f"{path}:{n}: not a JSON record; the run is damaged, start again with --overwrite") \
                    from None
            torn = True
    return records, torn


class Shards:
    """The records of one run split across torchrun's processes (RANK of WORLD_SIZE).

    Example i belongs to rank i % world. Each rank appends its records to its own file
    (records.rank-R.jsonl; alone: records.jsonl itself); `merge` (rank 0, after a barrier) writes
    records.jsonl sorted by index, the same file a one-process run writes, and removes the shard
    files. `done` reads every record file there is, so --resume continues every shard, with any
    number of processes."""

    def __init__(self, out: "RunDir", rank: int = 0, world: int = 1, name: str = "records.jsonl"):
        self.out, self.rank, self.world, self.name = out, rank, world, name
        self.own = name if world == 1 else f"{Path(name).stem}.rank-{rank}.jsonl"

    def files(self) -> list[str]:
        stem = Path(self.name).stem
        return [self.name] + sorted(p.name for p in self.out.path.glob(f"{stem}.rank-*.jsonl"))

    def repair(self) -> None:
        """Drop torn last lines (a killed run) of every record file: rank 0 only, before the others read."""
        for name in self.files():
            self.out.read_records(name)

    def done(self) -> list[dict]:
        return [r for name in self.files() for r in read_records(self.out.path / name)[0]]

    def mine(self, n: int) -> list[int]:
        return [i for i in range(n) if i % self.world == self.rank]

    def append(self, record: dict) -> None:
        self.out.append_record(record, self.own)

    def merge(self) -> list[dict]:
        """Every record once, sorted by index, in records.jsonl; the shard files removed (rank 0)."""
        by_index = {r["index"]: r for r in self.done()}
        records = [by_index[i] for i in sorted(by_index)]
        if self.world > 1 or any(name != self.name for name in self.files()):
            self.out.write_records(records, self.name)
            for name in self.files()[1:]:
                (self.out.path / name).unlink()
        return records


RESUMABLE = ("evaluate", "attack-zh", "finetune")  # commands whose finished work survives Ctrl-C


def interrupted_hint(argv: list[str]) -> str:
    """What an interrupted command line tells the user: where its finished work is, and how to go on."""
    out = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--out"), None)
    if out and len(argv) > 1 and argv[1] in RESUMABLE:
        return f"interrupted; finished work is kept in {out}: rerun the same command with --resume"
    return "interrupted"
