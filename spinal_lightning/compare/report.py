"""Collect the results of a head comparison and write the tables and the report.

Files written into the output folder:

- ``summary.csv`` and ``summary.md``: one row per head, test accuracy over the seeds (mean and
  sample standard deviation), error-rate reduction against the baseline head, parameter counts
  taken from the built modules, training time and training images per second.
- ``runs.csv``: one row per (head, seed) run, with its status and error message.
- ``accuracy_vs_head_params.png``: test accuracy against head parameters.
- ``report.md``: setup, machine, command, the summary table, the plot, fairness checks and runs.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

from spinal_lightning.compare.plot import plot_accuracy_against_head_params
from spinal_lightning.compare.single_run import RESULT_FILE, run_directory

PLOT_FILE = "accuracy_vs_head_params.png"

SUMMARY_COLUMNS = (
    "label",
    "head_class",
    "runs_ok",
    "runs_total",
    "test_acc_mean",
    "test_acc_std",
    "test_acc_per_seed",
    "acc_difference_mean",
    "acc_difference_std",
    "error_rate_mean",
    "error_rate_reduction",
    "head_params",
    "head_params_ratio",
    "backbone_params",
    "total_params",
    "epochs",
    "steps",
    "train_samples",
    "train_seconds_mean",
    "fit_seconds_mean",
    "images_per_second_mean",
)

RUN_COLUMNS = (
    "label",
    "seed",
    "status",
    "test_acc",
    "test_loss",
    "head_params",
    "total_params",
    "epochs",
    "steps",
    "train_samples",
    "train_seconds",
    "fit_seconds",
    "images_per_second",
    "error",
)

# Pixel sums of the same augmented batch agree up to float64 rounding, which 1e-9 relative covers.
PIXEL_SUM_TOLERANCE = 1e-9


def last_output_line(run_dir: Path) -> str:
    """Return the last non-empty line of a run's ``output.log``, usually the error that ended it."""
    log = run_dir / "output.log"
    if not log.is_file():
        return "the run left no output.log"
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "the run printed nothing"


def load_results(runs_dir: Path, planned: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """Read the result of every planned ``(seed, label)`` run. A run without a result counts as failed."""
    results = []
    for seed, label in planned:
        run_dir = run_directory(runs_dir, label, seed)
        result: dict[str, Any] = {"label": label, "seed": seed}
        try:
            result.update(json.loads((run_dir / RESULT_FILE).read_text()))
        except (OSError, json.JSONDecodeError):
            # A crash or a kill (out of memory, timeout) leaves no result file, or half of one.
            result.update(status="failed", error=f"no {RESULT_FILE}: {last_output_line(run_dir)}")
        if result.get("status") != "ok":
            result["status"] = "failed"
            result.setdefault("error", last_output_line(run_dir))
        results.append(result)
    return results


def mean_or_none(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def std_or_none(values: list[float]) -> float | None:
    """Return the sample standard deviation, or ``None`` for fewer than two values."""
    return statistics.stdev(values) if len(values) >= 2 else None


def first_value(results: list[dict[str, Any]], key: str) -> Any:
    """Return the first value of ``key`` among ``results``, failed runs included (they may have it)."""
    return next((result[key] for result in results if result.get(key) is not None), None)


def summarize(results: list[dict[str, Any]], labels: list[str], baseline: str) -> list[dict[str, Any]]:
    """Aggregate the runs into one row per head, in the order of ``labels``."""
    ok_by_label = {
        label: [run for run in results if run["label"] == label and run["status"] == "ok"] for label in labels
    }
    baseline_acc = {run["seed"]: run["test_acc"] for run in ok_by_label[baseline]}
    baseline_error = 1 - mean_or_none(list(baseline_acc.values())) if baseline_acc else None
    baseline_head_params = first_value([run for run in results if run["label"] == baseline], "head_params")

    rows = []
    for label in labels:
        runs = [run for run in results if run["label"] == label]
        ok = ok_by_label[label]
        accuracies = [run["test_acc"] for run in ok]
        # Differences to the baseline are paired by seed, which removes the variation that the
        # seed causes in both heads alike (batch order, augmentation).
        differences = [
            run["test_acc"] - baseline_acc[run["seed"]] for run in ok if run["seed"] in baseline_acc
        ]
        head_params = first_value(runs, "head_params")

        row: dict[str, Any] = {
            "label": label,
            "head_class": first_value(runs, "head_class"),
            "runs_ok": len(ok),
            "runs_total": len(runs),
            "test_acc_mean": mean_or_none(accuracies),
            "test_acc_std": std_or_none(accuracies),
            "test_acc_per_seed": ";".join(f"{run['seed']}:{run['test_acc']:.4f}" for run in ok),
            "acc_difference_mean": mean_or_none(differences) if label != baseline else None,
            "acc_difference_std": std_or_none(differences) if label != baseline else None,
            "error_rate_mean": 1 - mean_or_none(accuracies) if accuracies else None,
            "error_rate_reduction": None,
            "head_params": head_params,
            "head_params_ratio": (
                head_params / baseline_head_params if head_params and baseline_head_params else None
            ),
            "backbone_params": first_value(runs, "backbone_params"),
            "total_params": first_value(runs, "total_params"),
            "epochs": first_value(ok, "epochs"),
            "steps": first_value(ok, "steps"),
            "train_samples": first_value(ok, "train_samples"),
            "train_seconds_mean": mean_or_none([run["train_seconds"] for run in ok]),
            "fit_seconds_mean": mean_or_none([run["fit_seconds"] for run in ok]),
            "images_per_second_mean": mean_or_none([run["images_per_second"] for run in ok]),
        }
        if row["error_rate_mean"] is not None and baseline_error:
            row["error_rate_reduction"] = (baseline_error - row["error_rate_mean"]) / baseline_error
        rows.append(row)
    return rows


def check_batch_order(results: list[dict[str, Any]]) -> list[str]:
    """Return one line per seed saying whether all heads saw the same first training batches."""
    lines = []
    for seed in sorted({run["seed"] for run in results}):
        ok = [run for run in results if run["seed"] == seed and run["status"] == "ok"]
        if len(ok) < 2:
            lines.append(f"seed {seed}: fewer than two successful runs, nothing to compare")
            continue

        reference = ok[0]
        differing = []
        for result in ok[1:]:
            same_labels = result["first_batch_labels"] == reference["first_batch_labels"]
            same_pixels = all(
                math.isclose(pixel_sum, reference_sum, rel_tol=PIXEL_SUM_TOLERANCE)
                # A shorter list of sums means fewer recorded batches, which the labels already catch.
                for pixel_sum, reference_sum in zip(
                    result["first_batch_pixel_sums"], reference["first_batch_pixel_sums"], strict=False
                )
            )
            if not (same_labels and same_pixels):
                differing.append(result["label"])

        batches = len(reference["first_batch_labels"])
        if differing:
            lines.append(
                f"seed {seed}: DIFFERENT first {batches} training batches for {', '.join(differing)} "
                f"than for {reference['label']}; the heads did not train on the same data stream"
            )
        else:
            lines.append(
                f"seed {seed}: identical labels and augmented pixels in the first {batches} training "
                f"batches for all {len(ok)} heads"
            )
    return lines


def check_settings(results: list[dict[str, Any]]) -> list[str]:
    """Return the config keys, besides the head and the logger, whose values differ between runs."""
    ok = [run for run in results if run["status"] == "ok" and "settings" in run]
    keys = sorted({key for run in ok for key in run["settings"]})
    return [key for key in keys if len({run["settings"].get(key) for run in ok}) > 1]


def format_percent(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:+.{digits}f}" if signed else f"{100 * value:.{digits}f}"


def format_count(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def format_mean_std(mean: float | None, std: float | None, signed: bool = False) -> str:
    if mean is None:
        return "n/a"
    text = format_percent(mean, signed=signed)
    return f"{text} ± {format_percent(std)}" if std is not None else text


def budget_text(row: dict[str, Any]) -> str:
    if row["epochs"] is None:
        return "n/a"
    return f"{row['epochs']} epoch(s), {row['steps']:,} steps, {row['train_samples']:,} images"


def accuracy_text(row: dict[str, Any]) -> str:
    """Return the accuracy cell of a head: mean ± std, or why there is none."""
    if row["runs_total"] == 0:
        return "not run yet"
    if row["runs_ok"] == 0:
        return "FAILED"
    return format_mean_std(row["test_acc_mean"], row["test_acc_std"])


def summary_markdown(rows: list[dict[str, Any]], baseline: str) -> str:
    """Return the summary as a Markdown table."""
    header = (
        "| head | head class | runs ok | test acc % (mean ± std) | acc vs baseline, points (paired) "
        f"| error-rate reduction vs {baseline} | head params | head params vs {baseline} | total params "
        "| trained on | train time s (mean) | train images/s (mean) |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for row in rows:
        if row["label"] == baseline:
            difference, reduction, ratio = "baseline", "baseline", "1.00x"
        else:
            difference = format_mean_std(row["acc_difference_mean"], row["acc_difference_std"], signed=True)
            reduction = format_percent(row["error_rate_reduction"], digits=1, signed=True)
            reduction = reduction if reduction == "n/a" else reduction + " %"
            ratio = "n/a" if row["head_params_ratio"] is None else f"{row['head_params_ratio']:.2f}x"
        cells = [
            row["label"],
            row["head_class"] or "n/a",
            f"{row['runs_ok']} of {row['runs_total']}",
            accuracy_text(row),
            difference,
            reduction,
            format_count(row["head_params"]),
            ratio,
            format_count(row["total_params"]),
            budget_text(row),
            format_count(row["train_seconds_mean"]),
            format_count(row["images_per_second_mean"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def runs_markdown(results: list[dict[str, Any]]) -> str:
    """Return the per-run table as Markdown; a failed run shows its error."""
    lines = [
        "| head | seed | status | test acc % | train time s | train images/s | error |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in results:
        ok = run["status"] == "ok"
        error = str(run.get("error", "")).replace("|", "\\|")
        lines.append(
            f"| {run['label']} | {run['seed']} | {run['status'].upper() if not ok else 'ok'} "
            f"| {format_percent(run['test_acc']) if ok else 'n/a'} "
            f"| {format_count(run['train_seconds']) if ok else 'n/a'} "
            f"| {format_count(run['images_per_second']) if ok else 'n/a'} | {error} |"
        )
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row.get(key) is None else row[key] for key in columns})


def setup_markdown(results: list[dict[str, Any]], context: dict[str, Any]) -> str:
    """Return the setup section: data, model, heads, seeds, training budget, machine and command."""
    budget = first_value(results, "budget") or {}
    budget_items = ", ".join(f"{key}={value}" for key, value in budget.items() if value is not None)
    machine = context["machine"]
    heads = ", ".join(
        f"{label} = {first_value([run for run in results if run['label'] == label], 'head_class') or 'n/a'} "
        f"(`{context['head_configs'][label]}`)"
        for label in context["labels"]
    )
    lines = [
        f"- Data: {first_value(results, 'datamodule_class') or 'n/a'}, batch size "
        f"{first_value(results, 'batch_size') or 'n/a'}.",
        f"- Backbone: {first_value(results, 'backbone_class') or 'n/a'}, "
        f"{format_count(first_value(results, 'backbone_params'))} parameters.",
        f"- Heads: {heads}. Baseline: {context['baseline']}.",
        f"- Base configs: {', '.join(f'`{path}`' for path in context['base_configs']) or 'none'}.",
        f"- Seeds: {', '.join(map(str, context['seeds']))}. The weights and the data stream (batch "
        "order, augmentation) follow the seed, the stream unless the config sets data.init_args.seed.",
        f"- Training budget (trainer settings): {budget_items or 'n/a'}.",
        f"- Test accuracy is measured on the {first_value(results, 'test_weights') or 'n/a'}.",
        f"- Machine: {machine['cpu']}, {machine['cpu_cores']} CPU cores, GPU: {machine['gpu']}. "
        f"Software: {machine['software']}. Started {machine['date']}.",
        "",
        "Command:",
        "",
        "```bash",
        context["command"],
        "```",
    ]
    return "\n".join(lines) + "\n"


def report_markdown(
    results: list[dict[str, Any]], rows: list[dict[str, Any]], context: dict[str, Any], plot_written: bool
) -> str:
    """Return ``report.md``: what was compared, setup, results, plot, fairness checks and runs."""
    failed = [run for run in results if run["status"] != "ok"]
    differing_settings = check_settings(results)
    if differing_settings:
        settings_line = (
            "- Config values that differ between runs, besides the head and the logger: "
            + ", ".join(f"`{key}`" for key in differing_settings)
        )
    else:
        settings_line = "- No config value differs between runs besides the head and the logger."

    sections = [
        f"# {context['title']}",
        "Test accuracy of each head on the same backbone, data split, data stream and seeds. "
        "Spread is the sample standard deviation over seeds. The accuracy difference to the "
        "baseline is paired by seed. Error-rate reduction is (baseline error - head error) / "
        "baseline error, from the mean accuracies. Parameter counts come from the built modules. "
        "Train time is the fit time without validation, and images/s counts training images "
        "per second of it.",
        "## Setup",
        setup_markdown(results, context).rstrip(),
        "## Results",
        summary_markdown(rows, context["baseline"]).rstrip(),
    ]
    if failed:
        sections.append(f"{len(failed)} of {len(results)} runs FAILED; see the runs table below.")
    if plot_written:
        sections.append(f"![Test accuracy against head parameters]({PLOT_FILE})")
    sections += [
        "## Fairness checks",
        "\n".join(f"- {line}" for line in check_batch_order(results)) + "\n" + settings_line,
        "## Runs",
        runs_markdown(results).rstrip(),
    ]
    return "\n\n".join(sections) + "\n"


def write_report(output: Path, results: list[dict[str, Any]], context: dict[str, Any]) -> None:
    """Write the summary and runs tables (CSV and Markdown), the plot and ``report.md``."""
    rows = summarize(results, context["labels"], context["baseline"])
    write_csv(output / "summary.csv", rows, SUMMARY_COLUMNS)
    write_csv(output / "runs.csv", results, RUN_COLUMNS)
    (output / "summary.md").write_text(summary_markdown(rows, context["baseline"]))

    plot_written = plot_accuracy_against_head_params(rows, results, output / PLOT_FILE, context["title"])
    (output / "report.md").write_text(report_markdown(results, rows, context, plot_written))
