"""Released code, extracted from git, for tests that run a past release's own code next to the
current one: `v1_0_0_checkout` is the tag `v1.0.0` (what production runs) as a plain folder.

A child process with `PYTHONPATH=<checkout>` and `cwd=<checkout>` imports the release's modules,
not the working tree's editable install (its finder comes after sys.path); the session fixture
checks that once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PARCOURS = str(Path(sys.executable).parent / "parcours")


def extract_release(tag: str, fallback_commit: str, into: Path) -> Path:
    """`git archive` of the tag (or of its commit when the tag is missing), unpacked into `into`."""
    exists = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{tag}^{{commit}}"], capture_output=True
    )
    ref = tag if exists.returncode == 0 else fallback_commit
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", ref], stdout=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, capture_output=True)
    assert archive.stdout is not None
    archive.stdout.close()
    assert archive.wait() == 0 and untar.returncode == 0, f"git archive {ref}: {untar.stderr.decode()}"
    return into


def clean_env(**values: str) -> dict[str, str]:
    """This environment without PARCOURS_* or PYTHONPATH, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARCOURS_") and k != "PYTHONPATH"}
    env.update(values)
    return env


def release_env(checkout: Path, **values: str) -> dict[str, str]:
    """An environment where `python` imports the release in `checkout` first."""
    return clean_env(PYTHONPATH=str(checkout), **values)


def run_release_python(
    checkout: Path, code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `code` with the release's modules (this venv's python, cwd and PYTHONPATH the checkout)."""
    result = subprocess.run(
        [PYTHON, "-c", code, *args],
        cwd=checkout,
        env=env if env is not None else release_env(checkout),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"release script exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 120) -> str:
    """Poll a process's log until `text` appears (fail early if the process exits); the log so far."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content:
            return content
        if process.poll() is not None:
            raise AssertionError(f"process exited {process.returncode} before '{text}':\n{content}")
        time.sleep(0.1)
    raise AssertionError(f"'{text}' not seen in {log}:\n{log.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGINT (Ctrl-C) to the process, wait for its exit; its whole group killed if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            raise
    return process.returncode


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group of a process started with `start_new_session=True` (finally blocks)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


@pytest.fixture(scope="session")
def v1_0_0_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Release 1.0.0's code (tag v1.0.0, else commit a5729a6), checked that a child imports it."""
    checkout = extract_release("v1.0.0", "a5729a6", tmp_path_factory.mktemp("v1.0.0") / "parcours")
    probe = run_release_python(
        checkout, "import definitions, store, worker, workflows; print(store.__file__, worker.__file__)"
    )
    for module_file in probe.stdout.split():
        assert Path(module_file).resolve().is_relative_to(checkout.resolve()), (
            f"the release's modules must win over the editable install: {probe.stdout}"
        )
    assert not (checkout / "store" / "migrations").exists(), "v1.0.0 had no migrations"
    return checkout
