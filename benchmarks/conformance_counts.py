"""transformers' own model test suite: scratchgpt's counts next to GPT-2's, same environment.

Runs ``tests/hf_conformance/test_transformers_suite.py`` (our three classes) and
``tests/hf_conformance/gpt2_reference.py`` (transformers' own ``GPT2ModelTest``, from the same
shared copy of the suite) in two pytest subprocesses, then prints passed/failed/skipped per test
method for each, our failures with their first error line, and every test GPT-2 passes that
we skip, with the reason.

    python -m benchmarks.conformance_counts            # both (GPT-2's run takes ~2-4 min)
    python -m benchmarks.conformance_counts --ours-only

A test counts once however many subtests (one per model class) it runs: failed if any part
failed, skipped if it or all of its subtests skipped, passed otherwise. ``HF_HUB_OFFLINE=1``
is set for both runs: the pipeline tests then skip at once instead of retrying the Hub
(~50 s each for GPT-2) on a machine without internet.

This file is also the pytest plugin (``-p benchmarks.conformance_counts``) that records the
outcomes, into the JSON file named by ``$SCRATCHGPT_CONFORMANCE_OUT``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT_ENV = "SCRATCHGPT_CONFORMANCE_OUT"
SUITES = {
    "scratchgpt": "tests/hf_conformance/test_transformers_suite.py",
    "gpt2": "tests/hf_conformance/gpt2_reference.py",
}

# ---- the pytest plugin (runs inside each pytest subprocess) --------------------------------

_parts: dict[str, list[tuple[str, bool, str]]] = defaultdict(list)


def pytest_runtest_logreport(report):
    is_subtest = hasattr(report, "context")
    if report.when != "call" and report.passed:
        return  # setup/teardown that went fine say nothing about the test
    _parts[report.nodeid].append((report.outcome, is_subtest, _reason(report)))


def pytest_sessionfinish(session):
    out = os.environ.get(OUT_ENV)
    if out:
        outcomes = {nodeid.split("::")[-1]: _outcome(parts) for nodeid, parts in _parts.items()}
        Path(out).write_text(json.dumps(outcomes, indent=1), encoding="utf-8")


def _reason(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)
        return message.strip().splitlines()[0] if message.strip() else "failed"
    return ""


def _outcome(parts: list[tuple[str, bool, str]]) -> dict[str, str]:
    failed = [reason for outcome, _, reason in parts if outcome == "failed"]
    if failed:
        return {"outcome": "failed", "reason": failed[0]}
    main_skips = [reason for outcome, sub, reason in parts if outcome == "skipped" and not sub]
    subs = [(outcome, reason) for outcome, sub, reason in parts if sub]
    if main_skips:
        return {"outcome": "skipped", "reason": main_skips[0]}
    if subs and all(outcome == "skipped" for outcome, _ in subs):
        return {"outcome": "skipped", "reason": subs[0][1]}
    return {"outcome": "passed", "reason": ""}


# ---- the driver ---------------------------------------------------------------------------


def run_suite(test_file: str, out: Path) -> tuple[dict[str, dict[str, str]], float]:
    env = {**os.environ, OUT_ENV: str(out), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pytest", test_file, "-p", "benchmarks.conformance_counts"]
    command += ["-q", "-p", "no:cacheprovider", "--no-header", "-rN", "--tb=no"]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=False, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if not out.is_file():
        raise SystemExit(f"pytest did not run {test_file} (try it directly to see why)")
    return json.loads(out.read_text(encoding="utf-8")), seconds


def counts(outcomes: dict[str, dict[str, str]]) -> str:
    tally = {kind: 0 for kind in ("passed", "failed", "skipped")}
    for result in outcomes.values():
        tally[result["outcome"]] += 1
    return ", ".join(f"{n} {kind}" for kind, n in tally.items()) + f" (of {len(outcomes)})"


def report(results: dict[str, tuple[dict, float]]) -> None:
    print("transformers' model test suite, per test method:")
    for name, (outcomes, seconds) in results.items():
        print(f"  {name:<10} {counts(outcomes)}  [{seconds:.0f} s]")
    ours = results["scratchgpt"][0]
    failures = {test: r["reason"] for test, r in ours.items() if r["outcome"] == "failed"}
    print(f"scratchgpt failures ({len(failures)}):")
    for test, reason in sorted(failures.items()):
        print(f"  {test}: {reason}")
    if "gpt2" not in results:
        return
    gpt2 = results["gpt2"][0]
    lacking = {
        test: ours[test]["reason"]
        for test, result in gpt2.items()
        if result["outcome"] == "passed" and ours.get(test, {}).get("outcome") == "skipped"
    }
    print(f"passed by GPT-2, skipped for scratchgpt ({len(lacking)}):")
    for test, reason in sorted(lacking.items()):
        print(f"  {test}: {reason}")
    only_gpt2 = sorted(set(gpt2) - set(ours))
    print(f"tests only GPT-2's file has ({len(only_gpt2)}): {', '.join(only_gpt2) or '-'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ours-only", action="store_true", help="skip GPT-2's run")
    args = parser.parse_args(argv)
    names = ["scratchgpt"] if args.ours_only else ["scratchgpt", "gpt2"]
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: run_suite(SUITES[name], Path(tmp) / f"{name}.json") for name in names}
    report(results)


if __name__ == "__main__":
    main()
