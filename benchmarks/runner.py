"""`maglev-bench`: runs the benchmark suites, prints a table, writes JSON and PNG plots.

Each suite is a module `benchmarks.<suite>` with `run(smoke: bool = False) -> dict` (see
`benchmarks.common.suite_result`). `--smoke` runs tiny sizes so CI can keep the runner from
rotting; its figures mean nothing. `--compare OLD.json` prints each figure's ratio to an earlier
run and flags regressions beyond `--threshold`.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import pathlib
import platform
import sys
from typing import Any

import click

from benchmarks.target import VppTarget, refused_options

SUITES = ("diff", "table", "vppsim", "program", "checker", "e2e", "reload", "fault", "churn")


def _machine() -> dict[str, Any]:
    import maglev
    from maglev import diff, table

    versions: dict[str, str] = {"python": platform.python_version(), "maglev": maglev.__version__}
    for mod in ("vpp_papi", "Cython"):
        try:
            m = importlib.import_module(mod)
            versions[mod] = str(getattr(m, "__version__", "?"))
        except ImportError:
            pass
    return {
        "host": platform.node(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "engine": diff.IMPLEMENTATION,
        "table_engine": table.IMPLEMENTATION,
        "versions": versions,
    }


def _fmt(v: float, unit: str) -> str:
    if unit in ("s",) and v < 1:
        return f"{v * 1e3:.2f} ms"
    return f"{v:,.2f} {unit}"


def print_result(res: dict[str, Any]) -> None:
    click.secho(f"== {res['suite']}: {res['setup']}", bold=True)
    for name, f in res.get("figures", {}).items():
        click.echo(
            f"  {name:<40} median {_fmt(f['median'], f['unit']):>16}"
            f"   min {_fmt(f['min'], f['unit']):>14}   max {_fmt(f['max'], f['unit']):>14}"
        )
    for name, r in res.get("ratios", {}).items():
        target = r.get("target")
        mark = "" if r.get("met") is None else ("  [met]" if r["met"] else "  [NOT MET]")
        tgt = (
            f" (target {'>=' if r.get('higher_is_better', True) else '<='} {target})"
            if target
            else ""
        )
        # shares are percentages and times against a target milliseconds, not ratios
        unit = "%" if name.endswith("pct") else " ms" if name.endswith(" ms") else "x"
        click.echo(f"  ratio {name:<34} {r['value']:>10.2f}{unit}{tgt}{mark}")
    for n in res.get("notes", []):
        click.echo(f"  note: {n}")


def plot(results: list[dict[str, Any]], outdir: pathlib.Path) -> list[pathlib.Path]:
    """PNGs per suite: distributions of recorded samples, and each figure's median (min..max)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for res in results:
        samples = {k: v for k, v in (res.get("samples") or {}).items() if v}
        if samples:
            fig, ax = plt.subplots(figsize=(8, 4.5))
            for name, vals in samples.items():
                ax.hist(vals, bins=40, alpha=0.6, label=name)
            ax.set_title(f"maglev-bench {res['suite']}: distributions", fontsize=10)
            ax.set_ylabel("count")
            ax.legend(fontsize=8)
            fig.tight_layout()
            path = outdir / f"{res['suite']}-distributions.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
        # Figures grouped by unit (one panel per unit), medians with min..max whiskers.
        by_unit: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for name, f in (res.get("figures") or {}).items():
            by_unit.setdefault(str(f.get("unit", "")), []).append((name, f))
        ratios = res.get("ratios") or {}
        panels = len(by_unit) + (1 if ratios else 0)
        if not panels:
            continue
        fig, axes = plt.subplots(panels, 1, figsize=(9, 2.2 + 1.6 * panels), squeeze=False)
        i = 0
        for unit, items in by_unit.items():
            ax = axes[i][0]
            i += 1
            names = [n for n, _ in items]
            med = [f["median"] for _, f in items]
            lo = [max(0.0, f["median"] - f["min"]) for _, f in items]
            hi = [max(0.0, f["max"] - f["median"]) for _, f in items]
            ax.barh(names, med, xerr=[lo, hi], color="#4c72b0", alpha=0.8)
            ax.set_xlabel(unit)
            ax.tick_params(axis="y", labelsize=7)
        if ratios:
            ax = axes[i][0]
            names = list(ratios)
            vals = [r["value"] for r in ratios.values()]
            colors = [
                "#55a868" if r.get("met") in (True, None) else "#c44e52" for r in ratios.values()
            ]
            ax.barh(names, vals, color=colors)
            for y, r in enumerate(ratios.values()):
                if r.get("target"):
                    ax.plot([r["target"], r["target"]], [y - 0.4, y + 0.4], color="black")
            ax.set_xlabel("ratio (black line: target)")
            ax.tick_params(axis="y", labelsize=7)
        fig.suptitle(f"maglev-bench {res['suite']}: {res['setup']}"[:150], fontsize=8)
        fig.tight_layout()
        path = outdir / f"{res['suite']}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def compare(results: list[dict[str, Any]], old_path: str, threshold: float) -> int:
    old = json.loads(pathlib.Path(old_path).read_text())
    old_by_suite = {r["suite"]: r for r in old.get("results", [])}
    regressions = 0
    click.secho(f"== compared with {old_path} ({old.get('date', '?')})", bold=True)
    for res in results:
        prev = old_by_suite.get(res["suite"])
        if not prev:
            continue
        for name, r in res.get("ratios", {}).items():
            p = prev.get("ratios", {}).get(name)
            if not p or not p.get("value"):
                continue
            change = r["value"] / p["value"]
            worse = (
                change < 1 - threshold
                if r.get("higher_is_better", True)
                else change > 1 + threshold
            )
            regressions += worse
            flag = "  REGRESSION" if worse else ""
            click.echo(f"  {res['suite']}.{name}: {p['value']:.2f} -> {r['value']:.2f}{flag}")
    return regressions


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("suites", nargs=-1, type=click.Choice((*SUITES, "all")))
@click.option("--smoke", is_flag=True, help="Tiny sizes: checks the runner works, not timing.")
@click.option(
    "--results", "results_dir", default="results", show_default=True, help="Output folder."
)
@click.option("--compare", "compare_with", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--threshold", default=0.2, show_default=True, help="Regression threshold (fraction)."
)
@click.option(
    "--vpp-socket",
    type=click.Path(exists=True, dir_okay=False),
    help="Run against this VPP's API socket instead of the emulator (program, e2e, reload, vppsim).",
)
@click.option(
    "--api-dir", type=click.Path(exists=True, file_okay=False), help="That VPP's API files."
)
@click.option(
    "--vpp-stats-socket", type=click.Path(exists=True, dir_okay=False), help="Its stats socket."
)
@click.option(
    "--vpp-pid", type=click.IntRange(min=1), help="Its pid (default: the API socket's peer)."
)
def cli(
    suites: tuple[str, ...],
    smoke: bool,
    results_dir: str,
    compare_with: str | None,
    threshold: float,
    vpp_socket: str | None,
    api_dir: str | None,
    vpp_stats_socket: str | None,
    vpp_pid: int | None,
) -> None:
    """Measure maglev: SUITES from diff, table, vppsim, program, checker, e2e, reload, fault, churn,
    or all."""
    chosen = SUITES if not suites or "all" in suites else suites
    target = vpp_target(chosen, vpp_socket, api_dir, vpp_stats_socket, vpp_pid)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    outdir = pathlib.Path(results_dir) / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    failed: list[str] = []
    for name in chosen:
        try:
            mod = importlib.import_module(f"benchmarks.{name}")
        except ImportError as e:
            click.secho(f"== {name}: not available ({e})", fg="yellow")
            failed.append(name)
            continue
        click.secho(f"-- running {name}{' (smoke)' if smoke else ''} ...", dim=True)
        try:
            res = mod.run(smoke=smoke) if target is None else mod.run(smoke=smoke, target=target)
        except Exception as e:  # one broken suite must not hide the others' figures
            click.secho(f"== {name}: FAILED: {e!r}", fg="red")
            failed.append(name)
            continue
        results.append(res)
        print_result(res)
    doc = {"date": stamp, "smoke": smoke, "machine": _machine(), "results": results}
    (outdir / "results.json").write_text(json.dumps(doc, indent=2, default=str))
    pngs = plot(results, outdir)
    click.echo(f"results: {outdir / 'results.json'}" + (f", {len(pngs)} plot(s)" if pngs else ""))
    regressions = compare(results, compare_with, threshold) if compare_with else 0
    if failed or regressions:
        sys.exit(1)


def vpp_target(
    suites: tuple[str, ...],
    socket: str | None,
    api_dir: str | None,
    stats_socket: str | None,
    pid: int | None,
) -> VppTarget | None:
    """The VPP the user named, or None (the emulator); a usage error, naming the option, when
    an option makes no sense for the chosen suites (a diff run against a VPP would silently
    measure nothing of it)."""
    given: dict[str, object] = {
        "--vpp-socket": socket,
        "--api-dir": api_dir,
        "--vpp-stats-socket": stats_socket,
        "--vpp-pid": pid,
    }
    problem = refused_options(suites, given)
    if problem:
        raise click.UsageError(problem)
    if socket is None:
        return None
    return VppTarget(socket, api_dir, stats_socket, pid)


def main() -> None:
    cli(prog_name="maglev-bench")


if __name__ == "__main__":
    main()
