"""Run the whole benchmark suite, write ``docs/benchmarks.md`` and print a summary of the goals.

Each benchmark runs in its own process (its own clusters, imports and threads) and writes its own
section of the markdown file; this script writes the header (machine, date, how to re-run) and a
summary table of every goal, met or missed with its cause.

    .venv/bin/python bench/run.py            # the full suite (about 50 min on 2 cores: 10,000 trials and the search take most)
    .venv/bin/python bench/run.py --quick    # a few minutes on 2 cores
    .venv/bin/python bench/run.py --only overhead,checkpoint
    python bench/run.py --gpu --write OUT.md # on a GPU machine: the GPU sections (overhead, checkpoint, packing)
    .venv/bin/python bench/run.py --merge OUT.md   # copy the GPU sections of OUT.md into docs/benchmarks.md

Benchmarks written by others in ``bench/`` (widget latency, server API) run too when present.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

from _common import machine, machine_line, write_section

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOC = os.path.join(ROOT, "docs", "benchmarks.md")

# name -> (script, extra args for --quick, extra args for the full run)
SUITE: dict[str, tuple[str, list[str], list[str]]] = {
    "overhead": ("bench_overhead.py", ["--quick", "--device", "cpu"], ["--device", "cpu"]),
    "trials": ("bench_trials.py", ["--quick", "--trials", "200,1000"], ["--trials", "1000,10000"]),
    "latency": ("bench_latency.py", ["--quick"], []),
    "search": ("bench_search.py", ["--quick"], []),
    "rungs": ("bench_rungs.py", ["--quick"], []),
    "ddp": ("bench_ddp.py", ["--quick"], []),
    "checkpoint": ("bench_checkpoint.py", ["--quick", "--device", "cpu"], ["--device", "cpu"]),
    "widget": ("bench_widget_latency.py", [], []),
    "widget-scale": (
        "bench_widget_scale.py",
        ["--trials", "200", "--points", "300", "--watch", "10"],
        ["--trials", "1000", "--points", "1000"],
    ),
    "master": ("bench_master.py", [], []),
    "server": ("bench_server.py", [], []),
}
GPU_SUITE: dict[str, tuple[str, list[str]]] = {
    "overhead-gpu": (  # longer windows and pinned cores: the 2026-11-23 rounds spread 0.75-1.25
        "bench_overhead.py",
        ["--device", "cuda", "--section", "overhead-gpu", "--no-keras", "--seconds", "8", "--pin", "2,3"],
    ),
    "checkpoint-gpu": ("bench_checkpoint.py", ["--device", "cuda", "--section", "checkpoint-gpu"]),
    "packing-gpu": ("bench_gpu_packing.py", ["--section", "packing-gpu"]),
}

INTRO = """# Benchmarks

Measured by `bench/`: `.venv/bin/python bench/run.py [--quick]` runs the suite (quick: about 6 minutes on
2 cores; full: about 20) and rewrites this file; each `bench/bench_*.py` also runs alone and rewrites only
its own section. Ratios are taken side by side in one run: the variants alternate round by round (ABBA...)
on the same warm processes, and the tables give medians with the spread of the rounds. The CPU figures
come from a 2-core VM that other work shares while it runs: round-to-round spreads of ±10-50 % appear, so a
ratio that misses its goal by less than its spread is reported as such, with the per-step cost that
bounds det_jupyter's own share. Anchors (Optuna, Ray Tune) run in a throwaway venv
(`/tmp/det-bench-anchors`, made by `bench/_anchors.py`), never as det_jupyter dependencies. GPU sections
come from a lent GPU machine (`python bench/run.py --gpu --write OUT.md` there, then
`bench/run.py --merge OUT.md` here) and carry their own device and date.
"""


def supports(script: str, flag: str) -> bool:
    out = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120)
    return flag in out.stdout


def run_one(name: str, script: str, extra: list[str], write: str, timeout: float) -> dict[str, Any]:
    path = os.path.join(HERE, script)
    if not os.path.exists(path):
        return {"name": name, "skipped": f"{script} not present"}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        summary_file = f.name
    args = [sys.executable, path, *extra, "--write", write]
    if supports(path, "--json"):
        args += ["--json", summary_file]
    print(
        f"\n=== {name}: {' '.join(os.path.relpath(a, ROOT) if a == path else a for a in args[1:])}",
        flush=True,
    )
    t0 = time.perf_counter()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    try:
        proc = subprocess.run(args, cwd=ROOT, timeout=timeout, env=env)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = -1
    elapsed = time.perf_counter() - t0
    result: dict[str, Any] = {"name": name, "rc": rc, "seconds": elapsed}
    try:
        with open(summary_file) as f:
            result.update(json.load(f))
    except (OSError, json.JSONDecodeError):
        pass
    os.unlink(summary_file)
    return result


def doc_goals(path: str) -> list[str]:
    """The summary rows of every section in the markdown file: its goal table, or its goal sentence.

    Built from the document, so a partial run (``--only``) and the GPU sections still give the whole picture.
    """
    with open(path) as f:
        doc = f.read()
    rows = []
    for m in re.finditer(r"<!-- bench:([\w-]+) -->\n(.*?)\n<!-- /bench:\1 -->", doc, re.S):
        name, body = m.group(1), m.group(2)
        if name.startswith("summary"):
            continue
        date = re.search(r"(\d{4}-\d{2}-\d{2})( \d{2}:\d{2} UTC)?", body)
        where = f"{name} ({date.group(1)})" if date else name
        lines = body.splitlines()
        if "| goal | measured | target | met |" in lines:
            start = lines.index("| goal | measured | target | met |") + 2
            for line in lines[start:]:
                if not line.startswith("|"):
                    break
                rows.append(f"| {where} {line}")
        else:
            sentence = next((ln for ln in lines if "Goal" in ln and ("met" in ln or "**no**" in ln)), None)
            if sentence:
                rows.append(f"| {where} | {sentence.strip()[:300]} | | | |")
    return rows


def write_summary(path: str, how: str) -> None:
    lines = [
        "## Summary: every goal in this document",
        "",
        how[0].upper() + how[1:],
        "Each row names its section and the date it was measured; GPU sections come from a GPU machine.",
        "",
        "| section | goal | measured | target | met |",
        "|---|---|---|---|---|",
        *doc_goals(path),
    ]
    write_section(path, "summary", "\n".join(lines))


def summary_table(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| benchmark | goal | measured | target | met |", "|---|---|---|---|---|"]
    for res in results:
        if "skipped" in res:
            lines.append(f"| {res['name']} | — | skipped: {res['skipped']} | | |")
            continue
        goals = res.get("goals")
        if not goals:
            state = "ran (see its section)" if res.get("rc") == 0 else f"**failed** (exit {res.get('rc')})"
            lines.append(f"| {res['name']} | — | {state} | | |")
            continue
        for g in goals:
            value = g["value"]
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            met = "yes" if g["met"] else f"**no**: {g.get('cause') or ''}"
            lines.append(f"| {res['name']} | {g['name']} | {shown} | {g['goal']} | {met} |")
    return lines


def merge(source: str, target: str) -> list[str]:
    """Copy every ``<!-- bench:NAME -->`` section of ``source`` whose NAME ends in ``-gpu`` into ``target``."""
    with open(source) as f:
        doc = f.read()
    names = []
    for m in re.finditer(r"<!-- bench:([\w-]+-gpu) -->\n(.*?)\n<!-- /bench:\1 -->", doc, re.S):
        write_section(target, m.group(1), m.group(2))
        names.append(m.group(1))
    return names


def ensure_intro(path: str) -> None:
    try:
        with open(path) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = ""
    rest = doc[doc.index("<!-- bench:") :] if "<!-- bench:" in doc else ""
    if "<!-- bench:summary -->" not in rest:
        rest = "<!-- bench:summary -->\n<!-- /bench:summary -->\n\n" + rest
    doc = INTRO + "\n" + rest
    with open(path, "w") as f:
        f.write(doc)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (a few minutes)")
    parser.add_argument("--only", default=None, help="comma-separated benchmark names")
    parser.add_argument("--gpu", action="store_true", help="run the GPU sections (needs a GPU)")
    parser.add_argument("--merge", default=None, help="copy the *-gpu sections of this file into --write")
    parser.add_argument("--write", default=DOC)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--summary", action="store_true", help="only rebuild the summary from the document")
    args = parser.parse_args()
    if args.merge:
        names = merge(args.merge, args.write)
        print(f"merged {', '.join(names) or 'nothing'} into {args.write}")
    if args.merge or args.summary:
        write_summary(args.write, "rebuilt from the document by `bench/run.py --summary`.")
        return 0
    ensure_intro(args.write)
    results = []
    t0 = time.perf_counter()
    if args.gpu:
        chosen = {k: v for k, v in GPU_SUITE.items() if not args.only or k in args.only.split(",")}
        for name, (script, extra) in chosen.items():
            quick = ["--quick"] if args.quick else []
            results.append(run_one(name, script, [*extra, *quick], args.write, args.timeout))
    else:
        chosen_names = args.only.split(",") if args.only else list(SUITE)
        for name in chosen_names:
            script, quick, full = SUITE[name]
            results.append(run_one(name, script, quick if args.quick else full, args.write, args.timeout))
    info = machine()
    mode = "quick" if args.quick else "full"
    print("\n" + "\n".join(summary_table(results)))
    if not args.gpu:
        scope = f"{mode}{', ' + args.only if args.only else ''}"
        write_summary(
            args.write,
            f"last `bench/run.py` ({scope}) took {time.perf_counter() - t0:.0f} s. " + machine_line(info),
        )
    failed = [r["name"] for r in results if r.get("rc") not in (0, None)]
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
