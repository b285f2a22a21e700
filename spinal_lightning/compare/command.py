"""The ``compare`` command: train several heads on the same data and seeds, then tabulate them.

    python -m spinal_lightning compare --heads configs/vgg_spinal.yaml configs/vgg_fc.yaml \\
        --seeds 0 1 2 --output results/my_comparison --trainer.max_epochs=5

Every (seed, head) pair is one ``fit`` + ``test`` run of ``SpinalCLI`` in its own process, run
one after another, or ``--jobs`` at a time on a CPU machine with cores to spare. Runs of the same
seed share the data split, the batch order and the augmentation draws, because the datamodule
draws them from generators seeded with that seed.
After every run the report in ``--output`` is rewritten, so a failed or interrupted run keeps
the results of the runs before it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from spinal_lightning.compare.machine import describe_machine
from spinal_lightning.compare.report import load_results, write_report
from spinal_lightning.compare.single_run import RESULT_FILE, run_directory

CONTEXT_FILE = "comparison.json"

# The child processes training right now. The runs execute in worker threads, but only the main
# thread receives Ctrl-C or SIGTERM, so the main thread kills these before it exits.
RUNNING: set[subprocess.Popen] = set()
RUNNING_LOCK = threading.Lock()

# Arguments forwarded to every run: overrides of the sections that SpinalCLI parses.
FORWARDED_SECTIONS = ("trainer", "model", "data")


class ComparisonError(Exception):
    """Invalid arguments of the compare command."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spinal_lightning compare",
        # Without this, a mistyped --seed would silently mean --seeds.
        allow_abbrev=False,
        description=(
            "Train each head config with each seed (fit, then test), one run or --jobs runs at a time, and write a "
            "results table (Markdown and CSV), a plot of test accuracy against head parameters "
            "and a report into --output. Other arguments of the form --trainer.*, --model.* and "
            "--data.* are passed to every run."
        ),
    )

    # What to compare.
    parser.add_argument(
        "--heads",
        nargs="+",
        default=[],
        type=Path,
        metavar="CONFIG",
        help="one config file per head; each is read after the --config files",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        type=Path,
        metavar="CONFIG",
        help="base config read before each head config (data, backbone, trainer); repeatable",
    )
    parser.add_argument(
        "--labels",
        nargs="+",
        metavar="LABEL",
        help="one name per head for the table and the run folders (default: the config file names)",
    )

    parser.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED", help="seeds to run (default: 0)")
    parser.add_argument(
        "--baseline",
        metavar="LABEL",
        help="head that the error-rate reduction is measured against (default: the last head)",
    )

    # Where the results go, and how the runs are named and bounded.
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("runs/compare"),
        help="folder for the report, the tables, the plot and the runs (default: runs/compare)",
    )
    parser.add_argument("--title", default=None, help="title of the report (default: the output folder name)")
    parser.add_argument(
        "--group",
        default=None,
        help="W&B group of the runs when the logger is a WandbLogger (default: the output folder name)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop a run that takes longer than this many seconds and mark it failed (default: no limit)",
    )

    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help=(
            "runs trained at the same time (default: 1). Each gets an equal share of the CPU cores "
            "as its OMP_NUM_THREADS unless that is set; on a GPU machine the runs share the devices"
        ),
    )

    parser.add_argument(
        "--report-only",
        action="store_true",
        help=f"train nothing: rewrite the report in --output from its {CONTEXT_FILE} and the runs' results",
    )
    return parser


def check_options(options: argparse.Namespace, forwarded: list[str]) -> None:
    """Raise ComparisonError for options that would fail only after some runs had finished."""
    if not options.heads:
        raise ComparisonError("No head configs given; pass one config file per head with --heads.")
    for path in [*options.config, *options.heads]:
        if not path.is_file():
            raise ComparisonError(f"Config file {str(path)!r} not found. Pass an existing YAML file.")

    if options.labels is None:
        options.labels = [path.stem for path in options.heads]
    if len(options.labels) != len(options.heads):
        raise ComparisonError(
            f"--labels has {len(options.labels)} names for {len(options.heads)} --heads configs; "
            "give one label per head config."
        )
    if len(set(options.labels)) != len(options.labels):
        raise ComparisonError(f"The head labels {options.labels} are not unique; set distinct names with --labels.")
    if len(set(options.seeds)) != len(options.seeds):
        raise ComparisonError(f"--seeds {options.seeds} repeats a seed; give each seed once.")
    if options.jobs < 1:
        raise ComparisonError(f"--jobs {options.jobs} is below 1; give the number of runs to train at once.")
    if options.baseline is None:
        options.baseline = options.labels[-1]
    if options.baseline not in options.labels:
        raise ComparisonError(f"--baseline {options.baseline!r} is not one of the head labels {options.labels}.")

    for argument in forwarded:
        if not argument.startswith("--"):
            continue
        section = argument[2:].split(".", 1)[0].split("=", 1)[0]
        if section not in FORWARDED_SECTIONS:
            raise ComparisonError(
                f"Unknown argument {argument!r}. The compare command passes only --trainer.*, "
                "--model.* and --data.* overrides to the runs, and sets seed_everything itself "
                "from --seeds; see --help for its own options."
            )


def say(line: str) -> None:
    """Print one progress line in a single write, so lines of parallel runs do not run together."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def child_environment(jobs: int) -> dict[str, str]:
    """Return the environment of the runs, with the CPU cores split between several jobs.

    Without this, every run would start one OpenMP thread per core, and ``jobs`` runs on the same
    cores would spend their time waiting for each other.
    """
    environment = dict(os.environ)
    if jobs > 1 and "OMP_NUM_THREADS" not in environment:
        environment["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return environment


def run_one(options: argparse.Namespace, label: str, head_config: Path, seed: int, forwarded: list[str]) -> None:
    """Run one (head, seed) pair in a child process, keeping its output in ``output.log``."""
    runs_dir = options.output / "runs"
    run_dir = run_directory(runs_dir, label, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RESULT_FILE).unlink(missing_ok=True)

    cli_args = [arg for path in [*options.config, head_config] for arg in ("--config", str(path))]
    command = [
        sys.executable,
        "-m",
        "spinal_lightning.compare.single_run",
        f"--label={label}",
        f"--seed={seed}",
        f"--runs-dir={runs_dir}",
        f"--group={options.group}",
        "--",
        *cli_args,
        *forwarded,
    ]
    with open(run_dir / "output.log", "w") as log:
        log.write(shlex.join(command) + "\n")
        log.flush()
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_environment(options.jobs))
        with RUNNING_LOCK:
            RUNNING.add(child)
        try:
            child.wait(timeout=options.run_timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            log.write(f"\nThe run was stopped after the --run-timeout of {options.run_timeout} seconds.\n")
        finally:
            with RUNNING_LOCK:
                RUNNING.discard(child)


def stop_running_children() -> None:
    """Kill the runs still training, so an interrupted comparison leaves no orphaned trainer behind."""
    with RUNNING_LOCK:
        children = list(RUNNING)
    for child in children:
        child.kill()
    for child in children:
        child.wait()


def rewrite_report(output: Path) -> int:
    """Rewrite the report of an earlier comparison in ``output`` from the files it left there."""
    context_path = output / CONTEXT_FILE
    if not context_path.is_file():
        raise ComparisonError(
            f"{str(context_path)!r} not found. --report-only needs the --output folder of an earlier comparison."
        )
    context = json.loads(context_path.read_text())
    planned = [(seed, label) for seed in context["seeds"] for label in context["labels"]]
    results = load_results(output / "runs", planned)
    write_report(output, results, context)
    print(f"Report rewritten in {output / 'report.md'}.")
    return 0


def compare(argv: list[str]) -> int:
    """Run the comparison and return the exit code: 0 if every run succeeded, else 1."""
    options, forwarded = build_parser().parse_known_args(argv)
    if options.report_only:
        return rewrite_report(options.output)
    check_options(options, forwarded)
    options.output.mkdir(parents=True, exist_ok=True)
    options.group = options.group or options.output.resolve().name
    options.title = options.title or options.output.resolve().name

    context = {
        "title": options.title,
        "command": "python -m spinal_lightning compare " + shlex.join(argv),
        "machine": describe_machine(),
        "labels": options.labels,
        "head_configs": {label: str(path) for label, path in zip(options.labels, options.heads, strict=True)},
        "base_configs": [str(path) for path in options.config],
        "seeds": options.seeds,
        "baseline": options.baseline,
    }
    (options.output / CONTEXT_FILE).write_text(json.dumps(context, indent=2) + "\n")

    # Seeds are the outer loop, so an interrupted comparison still has every head for its first seeds.
    pairs = [
        (seed, label, head) for seed in options.seeds for label, head in zip(options.labels, options.heads, strict=True)
    ]
    order = [(seed, label) for seed, label, _ in pairs]
    finished: set[tuple[int, str]] = set()
    results: list[dict] = []

    def timed_run(index: int, seed: int, label: str, head_config: Path) -> float:
        started = time.perf_counter()
        say(f"[{index}/{len(pairs)}] {label} seed {seed}: running")
        run_one(options, label, head_config, seed, forwarded)
        return time.perf_counter() - started

    pool = ThreadPoolExecutor(max_workers=options.jobs)
    try:
        futures = {
            pool.submit(timed_run, index, seed, label, head_config): (seed, label)
            for index, (seed, label, head_config) in enumerate(pairs, start=1)
        }
        for future in as_completed(futures):
            elapsed = future.result()
            seed, label = futures[future]
            finished.add((seed, label))

            # The report keeps the planned order, whichever run finished first.
            results = load_results(options.output / "runs", [pair for pair in order if pair in finished])
            latest = next(result for result in results if (result["seed"], result["label"]) == (seed, label))
            outcome = f"test acc {100 * latest['test_acc']:.2f}%" if latest["status"] == "ok" else latest["error"]
            say(
                f"[{len(finished)}/{len(pairs)} done] {label} seed {seed}: {latest['status']}, {outcome} "
                f"({elapsed:.0f} s)"
            )
            write_report(options.output, results, context)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_running_children()
        raise
    pool.shutdown()

    failed = [result for result in results if result["status"] != "ok"]
    print(f"Report written to {options.output / 'report.md'}; {len(failed)} of {len(results)} runs failed.")
    return 1 if failed else 0


def main(argv: list[str]) -> None:
    """Entry point of ``python -m spinal_lightning compare``."""
    # SIGTERM becomes SystemExit, so subprocess.run kills the running child instead of orphaning it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        code = compare(argv)
    except ComparisonError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 1
    sys.exit(code)
