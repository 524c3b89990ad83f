"""Every figure of the benchmarks in one summary: runs bench/engine.py (throughput against the
fair and bare baselines, the deadline burst with one and two workers, memory and cache sizing),
bench/caseworkers.py (50 caseworkers on the production topology) and bench/million.py (the pages
at a million pathways on PostgreSQL) one after the other, never together (they would share the
machine's cores), each into its own log, then prints one table of every figure with its goal.

    .venv/bin/python bench/summary.py            # the issue's sizes: about 25 minutes here
    .venv/bin/python bench/summary.py --quick    # small sizes, to check it runs: about 4 minutes

It asserts nothing (tests never assert timings); it exits non-zero when a benchmark failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import figures  # noqa: E402

BENCHES: dict[str, tuple[list[str], list[str]]] = {
    # name: (arguments at the sizes, arguments with --quick)
    "engine": ([], ["--pathways", "20", "--timers", "100", "--grace", "60"]),
    "caseworkers": ([], ["--caseworkers", "10", "--seconds", "10", "--warmup", "2"]),
    "million": (
        ["--reuse", "--keep", "--after-only"],
        ["--pathways", "20000", "--repeat", "10", "--database", "parcours_million_quick"],
    ),
}


def say(message: str) -> None:
    print(f"[summary {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(name: str, arguments: list[str], out: Path, figures_file: Path) -> tuple[int, float]:
    """One benchmark, its output in `out/<name>.log`; its exit code and duration."""
    log = out / f"{name}.log"
    command = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *arguments, "--figures", str(figures_file)]
    say(f"{name}: {' '.join(command[1:])} (log {log})")
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as output:
        code = subprocess.call(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    say(f"{name}: {'done' if code == 0 else f'FAILED (exit {code}), see its log'} in {seconds:.0f}s")
    return code, seconds


def table(found: list[figures.Figure]) -> list[str]:
    lines = ["| bench | measure | figure | goal | met |", "| --- | --- | --- | --- | --- |"]
    for f in found:
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(f"| {f.bench} | {f.measure} | {f.figure} | {f.goal} | {met} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check that everything runs")
    parser.add_argument("--only", choices=sorted(BENCHES), action="append", help="run only this benchmark (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the logs and figures (a new one by default)")
    args = parser.parse_args()
    began = datetime.now(UTC)
    out = args.out or ROOT / ".parcours" / "bench" / f"{began:%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    figures_file = out / "figures.jsonl"
    figures_file.unlink(missing_ok=True)
    failed: list[str] = []
    for name, (full, quick) in BENCHES.items():
        if args.only and name not in args.only:
            continue
        code, _ = run(name, quick if args.quick else full, out, figures_file)
        if code != 0:
            failed.append(name)
    lines = [
        f"Benchmarks of {began:%Y-%m-%d %H:%M} UTC{' (--quick sizes)' if args.quick else ''}, logs in {out}",
        "",
        *table(figures.read(figures_file)),
    ]
    missed = [f for f in figures.read(figures_file) if f.met is False]
    lines += ["", f"{len(missed)} goal(s) not met" + (": " + "; ".join(f.measure for f in missed) if missed else ".")]
    if failed:
        lines.append(f"FAILED: {', '.join(failed)} (see their logs)")
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n" + "\n".join(lines), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
