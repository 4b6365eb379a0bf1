"""Run fuzz targets under atheris/libFuzzer for a set time each: ``make fuzz``, ``make fuzz-ci``.

    python -P -m tests.fuzz.run [--seconds N] [--jobs J] [TARGET ...]

Each target (``fuzz_<name>.py``; all of them when none is named) runs in
its own process, over a working corpus under ``build/fuzz/<name>/corpus``
that starts as a copy of the checked-in seeds (``corpus/<name>``) and
regression inputs (``regressions/<name>``), so the checked-in corpus is
never changed; what libFuzzer finds interesting accumulates there between
runs. Crashes, hangs (``-timeout``) and memory blow-ups (``-rss_limit_mb``)
are written to ``build/fuzz/<name>/findings/``, and the target starts again
for the time left; turn each into a regression input once fixed
(``regressions/<name>/``, replayed by test_regressions.py).

Prints the executions and findings per target, writes them to
``build/fuzz/summary.json``, and exits 1 when any target found something.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[1]
WORK = CHECKOUT / "build" / "fuzz"
RSS_LIMIT_MB = 2048
TIMEOUT_SECONDS = 10  # one input taking longer is a hang
MAX_STARTS = 20  # per target and run, however often it finds something
_EXECS = re.compile(rb"stat::number_of_executed_units:\s*(\d+)")
_RSS = re.compile(rb"stat::peak_rss_mb:\s*(\d+)")


def targets() -> list[str]:
    return sorted(p.stem.removeprefix("fuzz_") for p in HERE.glob("fuzz_*.py"))


@dataclasses.dataclass
class Outcome:
    target: str
    seconds: float
    executions: int
    peak_rss_mb: int
    findings: list[str]
    exit_code: int


def run(target: str, seconds: int) -> Outcome:
    work = WORK / target
    corpus, findings = work / "corpus", work / "findings"
    corpus.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    for seeds in (HERE / "corpus" / target, HERE / "regressions" / target):
        for seed in sorted(seeds.glob("*")) if seeds.is_dir() else ():
            shutil.copyfile(seed, corpus / seed.name)
    before = set(findings.iterdir())
    started = time.monotonic()
    codes: list[int] = []
    (work / "log").write_bytes(b"")
    # libFuzzer stops at its first finding: start it again, on the corpus it
    # grew, until the time is spent, so one bug does not end the search.
    while len(codes) < MAX_STARTS and (left := seconds - (time.monotonic() - started)) >= 1:
        command = [
            sys.executable, "-P", "-m", "tests.fuzz.harness", target, str(corpus),
            f"-max_total_time={int(left)}", f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-timeout={TIMEOUT_SECONDS}", f"-artifact_prefix={findings}/",
            "-print_final_stats=1",
        ]
        with open(work / "log", "ab") as log:
            # libFuzzer reports on stderr, atheris the uncaught exception on stdout.
            done = subprocess.run(command, cwd=CHECKOUT, stdout=log, stderr=subprocess.STDOUT,
                                  check=False)
        codes.append(done.returncode)
        if done.returncode == 0:
            break
    output = (work / "log").read_bytes()
    executions = sum(int(n) for n in _EXECS.findall(output))
    rss = max((int(n) for n in _RSS.findall(output)), default=0)
    new = sorted(str(p.relative_to(CHECKOUT)) for p in set(findings.iterdir()) - before)
    return Outcome(target, round(time.monotonic() - started, 1), executions, rss, new,
                   max(codes, default=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=600, help="per target")
    parser.add_argument("--jobs", type=int, default=1, help="targets run at once")
    parser.add_argument("target", nargs="*", help=f"default: all of {', '.join(targets())}")
    args = parser.parse_args()
    chosen = args.target or targets()
    unknown = set(chosen) - set(targets())
    if unknown:
        parser.error(f"no such target: {', '.join(sorted(unknown))}")
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        outcomes = list(pool.map(lambda t: run(t, args.seconds), chosen))
    WORK.mkdir(parents=True, exist_ok=True)
    summary = WORK / "summary.json"
    summary.write_text(json.dumps([dataclasses.asdict(o) for o in outcomes], indent=2) + "\n")
    print(f"{'target':<12} {'seconds':>8} {'executions':>11} {'peak MB':>8}  findings")
    for o in outcomes:
        found = (f"{len(o.findings)} in build/fuzz/{o.target}/findings/" if o.findings else
                 "none" if o.exit_code == 0 else
                 f"exit {o.exit_code}, see build/fuzz/{o.target}/log")
        print(f"{o.target:<12} {o.seconds:>8} {o.executions:>11} {o.peak_rss_mb:>8}  {found}")
    return 1 if any(o.findings or o.exit_code for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
