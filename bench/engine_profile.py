"""Sampling profiles of a worker process for bench/engine.py `--profile DIR`: py-spy `record` in
raw (collapsed stack) format, one file per phase, then aggregated here as text: own time by
function, and the share of samples spent under each part of the stack (sandbox, pydantic, SQL…).
Only the thread holding the GIL is sampled (`--gil`): a worker's Python threads take turns on one
GIL, so these samples add up to its Python CPU, where sampling every thread would also count
threads waiting for the GIL.

A raw file loads as is in https://www.speedscope.app or flamegraph.pl. py-spy needs ptrace
(root, or CAP_SYS_PTRACE). Samples are taken without pausing the worker (`--nonblocking`),
so the profile barely slows what it measures; py-spy's own CPU is printed."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil

RATE = 100
"""Samples per second (py-spy's default). A profile taken during a measurement may ask for fewer:
py-spy's own CPU (about a tenth of a core at 100 here) is taken from the two cores measured."""

IDLE = {
    ("EpollSelector.select", "selectors.py"),
    ("_worker", "concurrent/futures/thread.py"),
    ("Condition.wait", "threading.py"),
    ("Event.wait", "threading.py"),
    ("Thread._wait_for_tstate_lock", "threading.py"),
}
"""Leaf frames of a thread waiting (the event loop's epoll, an idle pool thread): py-spy does not
always tell them from running ones, so they are counted apart."""

CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("sandbox (temporalio workflow_sandbox)", ("workflow_sandbox/",)),
    ("module imports (importlib: the sandbox re-imports per run)", ("<frozen importlib",)),
    ("workflow code (workflows/)", ("workflows/",)),
    ("definitions/ (lookups, calendar)", ("definitions/",)),
    ("pydantic (validation, serialisation)", ("pydantic/", "pydantic_core/")),
    ("temporalio data converter", ("temporalio/converter.py", "temporalio/contrib/pydantic")),
    ("SQL (sqlalchemy, sqlmodel, sqlite3)", ("sqlalchemy/", "sqlmodel/", "sqlite3/")),
    ("e-mail templates (jinja2)", ("jinja2/",)),
    ("SMTP (aiosmtplib, email)", ("aiosmtplib/", "email/")),
    ("commit activity (activities/pathway_activities.py)", ("activities/pathway_activities.py",)),
    ("outbox relay (activities/outbox.py)", ("activities/outbox.py",)),
    ("temporalio worker (activation, bridge)", ("temporalio/worker/", "temporalio/bridge/")),
    ("protobuf", ("google/protobuf",)),
    ("asyncio event loop", ("asyncio/",)),
]
"""A stack counts for every category one of its frames' files matches (so shares overlap)."""

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass
class Recording:
    name: str
    path: Path
    process: subprocess.Popen[bytes]
    target_pid: int
    started: float
    cpu: psutil.Process | None
    rate: int


class Profiler:
    """Starts and stops py-spy recordings of a process into `out_dir`."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.py_spy = str(Path(sys.executable).parent / "py-spy")
        self.recordings: dict[str, Recording] = {}

    def check(self) -> str | None:
        """None when py-spy can read this process's stacks, else why not."""
        try:
            done = subprocess.run(
                [self.py_spy, "dump", "--pid", str(psutil.Process().pid), "--nonblocking"],
                capture_output=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"py-spy not usable: {error}"
        if done.returncode != 0:
            return f"py-spy dump failed: {done.stderr.decode(errors='replace').strip()[:300]}"
        return None

    def start(self, name: str, pid: int, *, rate: int = RATE) -> None:
        path = self.out_dir / f"{name}.txt"
        log = open(self.out_dir / f"{name}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [self.py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--nonblocking", "--gil"]
            + ["--output", str(path)],
            stdout=log,
            stderr=log,
        )
        self.recordings[name] = Recording(name, path, process, pid, time.monotonic(), psutil.Process(process.pid), rate)

    def stop(self, name: str) -> tuple[Recording, float, float]:
        """Stop a recording (py-spy writes its file on SIGINT); returns it, its wall seconds and
        the CPU seconds py-spy itself used."""
        recording = self.recordings.pop(name)
        wall = time.monotonic() - recording.started
        spent = 0.0
        if recording.cpu is not None:
            try:
                times = recording.cpu.cpu_times()
                spent = times.user + times.system
            except psutil.Error:
                pass
        if recording.process.poll() is None:
            recording.process.send_signal(signal.SIGINT)
            try:
                recording.process.wait(60)
            except subprocess.TimeoutExpired:
                recording.process.kill()
                recording.process.wait()
        return recording, wall, spent

    def stop_all(self) -> None:
        for name in list(self.recordings):
            self.stop(name)


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function, file) of each frame, root first."""
    frames = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame.strip())
        frames.append((match["function"], match["file"]) if match else (frame.strip(), ""))
    return frames


def read_stacks(path: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    if not path.exists():
        return stacks
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def summarise(path: Path, *, rate: int = RATE, top: int = 10, per: int = 0, per_label: str = "") -> list[str]:
    """The profile as text: samples and CPU, the `top` functions by own time, the categories."""
    stacks = read_stacks(path)
    own: Counter[str] = Counter()
    category: Counter[str] = Counter()
    total = idle = 0
    for stack, count in stacks.items():
        frames = _frames(stack)
        function, file = frames[-1]
        if (function, file) in IDLE:
            idle += count
            continue
        total += count
        own[f"{function} ({file})" if file else function] += count
        files = [f for _, f in frames]
        for label, markers in CATEGORIES:
            if any(marker in f for f in files for marker in markers):
                category[label] += count
    if not total:
        return [f"  (no samples in {path})"]
    seconds = total / rate
    lines = [
        f"  {total} samples of the thread holding the GIL ≈ {seconds:.1f} s of Python CPU ({rate}/s; {idle} samples "
        "of waiting threads left out; the SDK's Rust threads and SQLite without the GIL are not seen)"
    ]
    if per:
        lines[0] += f", ≈ {1000 * seconds / per:.1f} ms per {per_label}"
    lines.append(f"  top {top} functions by own time:")
    for name, count in own.most_common(top):
        lines.append(f"    {100 * count / total:5.1f}%  {name}")
    lines.append("  share of samples under each part of the stack (overlapping):")
    for label, count in category.most_common():
        lines.append(f"    {100 * count / total:5.1f}%  {label}")
    return lines
