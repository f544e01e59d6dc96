"""The sim-to-real report: every measurement of :mod:`worldloop.sim2real` for one trained run, written
as ``report.json`` (schema ``report_schema.json`` beside this file), PNG plots and ``report.md``.

    cfg = ReportCfg(run="runs/Franka-Lift-v0/<date_time>", reality_tasks=("Franka-Lift-v0", "Franka-Push-v0"))
    report = write_report(cfg)          # also: worldloop sim2real --run ... (scripts/sim2real.py)

Sections (each ``null`` when skipped): ``transfer`` (the policy on every installed backend),
``robustness`` (success vs each randomized parameter), ``replay`` (robot logs replayed open loop,
tracking error with the nominal and the identified parameters), ``sysid`` (the fit, with the truth
when the logs are a held-out reality), ``rank_fidelity`` (Pearson r and MMRV over the run's
checkpoints between the sim and a reference: the held-out reality's parameters or another backend).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import worldloop
from worldloop.envs.randomization import RandTerm
from worldloop.policies import run_dir
from worldloop.sim2real.common import jsonable
from worldloop.sim2real.logs import RobotLogs, read_logs
from worldloop.sim2real.rank import MIN_CHECKPOINTS, plot_rank, rank_fidelity, run_checkpoints
from worldloop.sim2real.reality import FRANKA_PARAMS, HIDDEN_CHANGES, check_reality_item, collect_reality
from worldloop.sim2real.robustness import NoRandomizationError, plot_robustness, robustness
from worldloop.sim2real.sysid import SysIdCfg, SysIdResult, identify
from worldloop.sim2real.tracking import Tracking, replay_logs
from worldloop.sim2real.transfer import plot_transfer, transfer
from worldloop.tasks import make

SCHEMA_PATH = Path(__file__).with_name("report_schema.json")
"""JSON Schema (draft 2020-12) of ``report.json``."""
SCHEMA_VERSION = 1


@dataclass(kw_only=True)
class ReportCfg:
    """Measure a trained run's sim-to-real transfer and write a report directory."""

    run: str
    """Run directory (``runs/<task>/<date_time>``)."""
    out: str | None = None
    """Report directory; default ``<run>/sim2real``."""
    checkpoint: str = "best"
    """Checkpoint evaluated for transfer and robustness (best, last, model_300.pt or a path)."""
    seed: int = 0
    """Seed of every env, the held-out reality and the fit."""
    backends: tuple[str, ...] | None = None
    """Backends of the transfer section (mujoco, newton, isaaclab); default every installed one, plus isaaclab
    where the task has an Isaac Lab counterpart (Cartpole-v0: Isaac-Cartpole), run in the Isaac Lab
    environment (``.venv-isaaclab`` in the checkout or ``$WORLDLOOP_ISAACLAB_ENV``)."""
    episodes: int = 500
    """Transfer episodes on the training backend."""
    other_backend_episodes: int = 200
    """Transfer episodes on each other backend (Newton and Isaac Lab on a CPU are slower than MuJoCo C)."""
    robustness: bool = True
    """Sweep each randomized parameter of the run."""
    terms_from: str | None = None
    """Sweep the randomization terms of this run instead (for a run trained without randomization)."""
    points: int = 7
    """Sweep points per parameter."""
    widen: float = 1.0
    """Sweep beyond the training range by this many range widths on each side."""
    episodes_per_point: int = 100
    """Episodes per sweep point."""
    logs: tuple[str, ...] = ()
    """Robot logs to replay and fit: LeRobot v3.0 dataset directories or CSV files, each ``DIR`` (its
    ``info.json`` names the task) or ``TASK=PATH``; layouts in ``worldloop/sim2real/logs.py``."""
    reality_tasks: tuple[str, ...] = ()
    """Record held-out "reality" logs (hidden changes ``--reality-changes``) into ``<out>/reality/`` and
    replay and fit them: ``TASK`` (its scripted expert), ``TASK:flick`` (a friction probe, Push only) or
    ``TASK:hold`` (a payload probe that lifts the cube and holds it still, Lift only: the cube's mass from
    its torques); e.g. ``Franka-Push-v0:flick Franka-Lift-v0:hold``."""
    reality_changes: dict[str, float] = field(default_factory=lambda: dict(HIDDEN_CHANGES))
    """The hidden changes of the reality: ``{parameter: factor}`` (latency: steps)."""
    reality_episodes: int = 16
    """Episodes per reality task."""
    fit_params: tuple[str, ...] = ("object_mass", "object_friction", "arm_kp", "latency")
    """Parameters the fit searches (names of ``worldloop.sim2real.reality.FRANKA_PARAMS``). ``object_mass``
    comes from the torques of static holds (``worldloop/sim2real/statics.py``) where a log holds the cube
    still (``TASK:hold``), and stays at nominal, reported as not fitted, where none does: kinematic logs of
    a stiff position-controlled arm do not show it (``worldloop/sim2real/sysid.py``)."""
    sysid: SysIdCfg = field(default_factory=SysIdCfg)
    """Search settings of the fit."""
    rank: bool = True
    """Ranking fidelity over the run's ``model_<it>.pt`` checkpoints."""
    rank_reference: str = "auto"
    """``reality``: the sim with the reality's hidden changes pinned; a backend name (``newton``); ``auto``:
    ``reality`` where the task's scene has the changed parameters (the Franka cube tasks), else
    another installed backend."""
    rank_pins: dict[str, float] | None = None
    """Reference of ranking fidelity: these randomization terms of the run pinned (``{term: value}``),
    instead of ``rank_reference``."""
    rank_episodes: int = 100
    """Episodes per checkpoint and setting."""


def parse_logs(items: tuple[str, ...], default_task: str) -> list[tuple[str, Path]]:
    """``[(task, path)]`` of ``--logs`` items ``PATH`` or ``TASK=PATH``; a dataset's own task wins over
    ``default_task``."""
    out = []
    for item in items:
        task, sep, path = item.partition("=")
        if not sep:
            path, task = item, default_task
            info = Path(path) / "meta" / "info.json"
            if info.is_file():
                task = (json.loads(info.read_text()).get("worldloop") or {}).get("task") or default_task
        out.append((task, Path(path)))
    return out


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def write_report(cfg: ReportCfg, progress: Callable[[str], None] = print) -> dict:
    """Run every enabled measurement of ``cfg.run`` and write ``report.json``, the plots and ``report.md``
    into ``cfg.out``; returns the report.

    Raises:
        ConfigError / CheckpointError: not a run directory, or no such checkpoint.
        NoRandomizationError: robustness asked for a run without randomization and no ``terms_from``.
        LogError: a log that does not fit the task (the message names the column or field).
        KeyError / ValueError: an unknown task or probe in ``reality_tasks``, or an unknown parameter in
            ``fit_params`` or ``reality_changes`` (all refused before anything runs).
    """
    run = Path(cfg.run)
    train_cfg = run_dir.read_config(run)
    run_dir.find_checkpoint(run, cfg.checkpoint)  # refuse a missing checkpoint before anything runs
    task = train_cfg.task
    out = Path(cfg.out) if cfg.out else run / "sim2real"
    log_items = parse_logs(cfg.logs, task)
    for _, p in log_items:
        if not p.exists():
            raise FileNotFoundError(f"--logs {p}: no such dataset directory or CSV file")
    given_logs = {name: _read(name, p) for name, p in log_items}  # a bad log is refused before anything runs
    unknown = sorted(set(cfg.fit_params) - set(FRANKA_PARAMS))
    if unknown:
        raise ValueError(f"--fit-params {unknown} unknown; parameters: {sorted(FRANKA_PARAMS)}")
    reality = [(item, *check_reality_item(item)) for item in cfg.reality_tasks]
    unknown = sorted(set(cfg.reality_changes) - set(FRANKA_PARAMS)) if reality else []
    if unknown:
        raise ValueError(f"--reality-changes {unknown} unknown; parameters: {sorted(FRANKA_PARAMS)}")
    if cfg.robustness and not train_cfg.env.randomization and cfg.terms_from is None:
        raise NoRandomizationError(
            f"{run} was trained without randomization, so it has no parameters to sweep: pass --terms-from "
            "<run trained with randomization> to sweep that run's terms, or --no-robustness"
        )
    skipped: dict[str, str] = {}
    n_checkpoints = len(run_checkpoints(run))
    if cfg.rank and n_checkpoints < MIN_CHECKPOINTS:
        # Said now, not after the slow parts: the rest of the report is still written.
        skipped["rank_fidelity"] = (
            f"{run} has {n_checkpoints} model_<it>.pt checkpoints and ranking fidelity needs at least "
            f"{MIN_CHECKPOINTS}: train with a smaller --save-interval (e.g. max_iterations / 10), or pass --no-rank"
        )
        progress(f"[sim2real] ranking fidelity will be skipped: {skipped['rank_fidelity']}")
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "worldloop_version": worldloop.__version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "run": str(run),
        "task": task,
        "checkpoint": cfg.checkpoint,
        "seed": cfg.seed,
        "machine": _machine(),
        "config": jsonable(dataclasses.asdict(cfg)),
        "plots": {},
    }

    progress("[sim2real] transfer across backends")
    tr = transfer(
        run,
        checkpoint=cfg.checkpoint,
        backends=list(cfg.backends) if cfg.backends else None,
        episodes=_episodes_by_backend(cfg, run_dir.read_backend(run)),
        seed=cfg.seed,
    )
    report["transfer"] = tr
    report["plots"]["transfer"] = plot_transfer(tr, out / "transfer.png").name

    report["robustness"] = None
    if cfg.robustness:
        progress("[sim2real] robustness curves")
        rb = robustness(
            run,
            terms_from=cfg.terms_from,
            checkpoint=cfg.checkpoint,
            points=cfg.points,
            widen=cfg.widen,
            episodes_per_point=cfg.episodes_per_point,
            seed=cfg.seed,
        )
        report["robustness"] = rb
        report["plots"]["robustness"] = plot_robustness(rb, out / "robustness.png").name

    truth = None
    if reality:
        truth = {}
        for item, t, policy in reality:
            d = out / "reality" / item.replace(":", "_")
            if d.exists():
                shutil.rmtree(d)
            progress(f"[sim2real] recording held-out reality logs of {item} ({cfg.reality_episodes} episodes)")
            truth[item] = collect_reality(t, d, episodes=cfg.reality_episodes, changes=cfg.reality_changes,
                                          seed=cfg.seed + 1, policy=policy)  # fmt: skip
            log_items.append((item, d))
            given_logs[item] = _read(item, d)
    report["replay"] = report["sysid"] = None
    if given_logs:
        logs = given_logs
        params = {k: FRANKA_PARAMS[k] for k in cfg.fit_params}
        n_eps = sum(lg.num_episodes for lg in logs.values())
        progress(f"[sim2real] system identification of {list(params)} on {n_eps} episodes")
        fit = identify(
            logs, params, dataclasses.replace(cfg.sysid, seed=cfg.seed), progress=lambda s: progress("  " + s)
        )
        report["sysid"] = _sysid_section(fit, params, truth)
        progress("[sim2real] replay with nominal and identified parameters")
        report["replay"] = _replay_section(logs, params, fit)
        report["plots"]["replay"] = _plot_replay(report["replay"], out / "replay.png").name
        report["plots"]["sysid"] = _plot_sysid(report["sysid"], out / "sysid.png").name
        preset = {k: dataclasses.asdict(v) for k, v in fit.preset().items()}
        (out / "fitted_randomization.json").write_text(json.dumps(preset, indent=2, allow_nan=False) + "\n")
        report["sysid"]["preset_file"] = "fitted_randomization.json"

    report["rank_fidelity"] = None
    if cfg.rank and "rank_fidelity" not in skipped:
        reference: Any
        terms = None
        ref = cfg.rank_reference
        if cfg.rank_pins:
            ref = "pins"
        elif ref == "auto":
            ref = "reality" if _has_params(task, cfg.reality_changes) else _other_backend(run_dir.read_backend(run))
        if ref is None:
            skipped["rank_fidelity"] = (
                "no reference setting: one backend installed and no reality parameters in the task's scene; "
                "pass --rank-pins or --rank-reference"
            )
            progress(f"[sim2real] ranking fidelity skipped: {skipped['rank_fidelity']}")
        if ref == "pins":
            reference = {"pins": dict(cfg.rank_pins)}
        elif ref == "reality":
            terms = {k: FRANKA_PARAMS[k] for k in cfg.reality_changes}
            reference = {"pins": dict(cfg.reality_changes)}
        elif ref is not None:
            reference = ref
        if ref is not None:
            progress(f"[sim2real] ranking fidelity over {n_checkpoints} checkpoints (reference: {ref})")
            rk = rank_fidelity(run, reference=reference, terms=terms, episodes=cfg.rank_episodes, seed=cfg.seed)
            report["rank_fidelity"] = rk
            report["plots"]["rank_fidelity"] = plot_rank(rk, out / "rank_fidelity.png").name

    report["skipped"] = skipped
    report["seconds"] = time.perf_counter() - t_all
    report = jsonable(report)
    (out / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    (out / "report.md").write_text(markdown(report))
    progress(f"[sim2real] report in {out} ({report['seconds']:.0f} s)")
    return report


def _read(name: str, path: Path) -> RobotLogs:
    """The log at ``path``, checked against an env of task ``name`` (``TASK`` or ``TASK:probe``)."""
    probe = make(name.partition(":")[0], num_envs=1)
    try:
        logs = read_logs(path, probe)
        logs.task = probe.task_id
        return logs
    finally:
        probe.close()


def _has_params(task: str, names: dict[str, float]) -> bool:
    """Whether ``task``'s scene has every parameter of :data:`FRANKA_PARAMS` in ``names``."""
    try:
        env = make(task, num_envs=1, randomization={k: FRANKA_PARAMS[k] for k in names})
    except (KeyError, ValueError):
        return False
    env.close()
    return True


def _other_backend(training_backend: str) -> str | None:
    from worldloop.sim2real.common import installed_backends

    return next((b for b in installed_backends() if b != training_backend), None)


def _episodes_by_backend(cfg: ReportCfg, training_backend: str) -> dict[str, int]:
    from worldloop.sim2real.common import installed_backends

    names = set(installed_backends()) | set(cfg.backends or ()) | {"isaaclab", training_backend}
    return {b: cfg.episodes if b == training_backend else cfg.other_backend_episodes for b in names}


def _sysid_section(fit: SysIdResult, params: dict[str, RandTerm], truth: dict | None) -> dict:
    d = fit.to_json()
    d["params"] = {k: {"kind": t.kind, "targets": t.targets, "bounds": list(t.range)} for k, t in params.items()}
    d["truth"] = None
    if truth:
        changes = next(iter(truth.values()))["changes"]
        d["truth"] = {k: changes.get(k, 0.0 if params[k].kind == "action_latency" else 1.0) for k in params}
        d["not_fitted"] = {k: v for k, v in changes.items() if k not in params}
        d["relative_error"] = {
            k: abs(fit.values[k] - v) / abs(v) if v else abs(fit.values[k] - v) for k, v in d["truth"].items()
        }
    return d


def _replay_section(logs: dict[str, RobotLogs], params: dict[str, RandTerm], fit: SysIdResult) -> dict:
    nominal = {k: 0.0 if t.kind == "action_latency" else 1.0 for k, t in params.items()}
    sets = []
    for name, lg in logs.items():
        task = lg.task or name
        row: dict[str, Any] = {
            "task": task,
            "logs": name,
            "source": lg.source,
            "episodes": lg.num_episodes,
            "frames": int(lg.lengths.sum()),
            "fps": lg.fps,
        }
        for label, values in (("nominal", nominal), ("identified", fit.values)):
            env = make(task, num_envs=lg.num_episodes, randomization=params)
            try:
                for k, v in values.items():
                    env.randomizer.set(k, v)
                tr: Tracking = replay_logs(env, lg, end_effector=True)
            finally:
                env.close()
            row[label] = {
                "summary": tr.summary(),
                "joint_rmse": dict(zip(tr.joint_names, tr.joint_rmse().tolist(), strict=True)),
                "error_over_time": {k: v.tolist() for k, v in tr.error_over_time().items()},
            }
        b, a = row["nominal"]["summary"], row["identified"]["summary"]
        row["improvement"] = {k: (b[k] / a[k] if a[k] > 0 else None) for k in b if k in a}
        sets.append(row)
    return {"log_sets": sets}


def _plot_replay(replay: dict, path: Path) -> Path:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = replay["log_sets"]
    kinds = [
        ("joint", "joint error, RMS over joints [rad]"),
        ("ee", "end-effector error [m]"),
        ("object", "object position error [m]"),
    ]
    fig, axes = plt.subplots(len(sets), 3, figsize=(13, 3.4 * len(sets)), squeeze=False)
    for r, s in enumerate(sets):
        for c, (k, label) in enumerate(kinds):
            ax = axes[r][c]
            for which, style in (("nominal", "C3"), ("identified", "C0")):
                y = s[which]["error_over_time"].get(k)
                if y is None:
                    continue
                t = [i / s["fps"] for i in range(len(y))]
                ax.plot(t, y, color=style, label=f"{which} parameters")
            ax.set_xlabel("time in episode [s]")
            ax.set_ylabel(label)
            ax.set_title(f"{s['logs']}: {k}")
            ax.grid(alpha=0.3)
            if r == 0 and c == 0:
                ax.legend()
    fig.suptitle("Open-loop replay of robot logs: sim minus log (mean over episodes; object: median)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_sysid(sysid: dict, path: Path) -> Path:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(sysid["values"])
    hidden = sysid.get("not_fitted") or {}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    x = range(len(names))
    ax.errorbar(x, [sysid["values"][k] for k in names], yerr=[2 * sysid["std"].get(k, 0.0) for k in names], fmt="o",
                color="C0", capsize=4, label="identified (+-2 std, episode jackknife)")  # fmt: skip
    truth = sysid.get("truth") or {}
    tx = [i for i, k in enumerate(names) if k in truth] + [len(names) + i for i in range(len(hidden))]
    ty = [truth[k] for k in names if k in truth] + list(hidden.values())
    if tx:
        ax.plot(tx, ty, "x", color="C3", markersize=10, label="hidden truth")
    labels = [f"{k}\n{'identifiable' if sysid['identified'][k] else 'NOT identifiable'}" for k in names]
    labels += [f"{k}\nnot fitted" for k in hidden]
    ax.set_xticks(range(len(labels)), labels)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("factor of nominal (latency: control steps)")
    ax.set_title("System identification")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax2.semilogy(range(1, len(sysid["history"]) + 1), sysid["history"], color="C0")
    ax2.axhline(sysid["loss_nominal"], color="C3", ls="--", label="nominal parameters")
    ax2.set_xlabel("CMA-ES generation")
    ax2.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax2.set_ylabel("replay loss (best so far)")
    ax2.set_title("Fit progress")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{nd}g}" if isinstance(x, float) else str(x)


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _section(title: str, plot: str, columns: tuple[str, ...], intro: str | None = None) -> list[str]:
    """A ``report.md`` section's heading, plot, optional paragraph and table header."""
    head = [f"## {title}", "", f"![{title}]({plot})", ""] + ([intro, ""] if intro else [])
    return [*head, "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _row(*cells: Any) -> str:
    """One markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(report: dict) -> str:
    """``report.md``: the report's numbers as tables a person reads."""
    L = [
        f"# Sim-to-real report: {report['task']}",
        "",
        f"Run `{report['run']}`, checkpoint `{report['checkpoint']}`, seed {report['seed']}; "
        f"worldloop {report['worldloop_version']}, {report['created']}, {report['machine']['cpus']} CPUs; "
        f"{report['seconds']:.0f} s.",
        "",
    ]
    for section, why in (report.get("skipped") or {}).items():
        L += [f"**{section.replace('_', ' ').capitalize()} skipped**: {why}.", ""]
    tr = report.get("transfer")
    if tr:
        cols = ("backend", "episodes", "success (95% CI)", "mean return (95% CI)", "success drop", "return drop")
        L += _section("Cross-simulator transfer", report["plots"]["transfer"], cols)
        notes = []
        for name, b in tr["backends"].items():
            ci, rci = b["success_ci95"], b.get("return_ci95") or [None, None]
            success = f"{_pct(b['success_rate'])} ({_pct(ci[0])}-{_pct(ci[1])})"
            ret = f"{_f(b['mean_return'], 4)} ({_f(rci[0], 4)}-{_f(rci[1], 4)})"
            if b.get("task"):
                name = f"{name} (`{b['task']}`)"
                notes.append(f"{name}: {b['note']}")
            L.append(_row(name, b["episodes"], success, ret, _pct(b.get("success_drop")), _pct(b.get("return_drop"))))
        L += [""] + notes if notes else []
        setup = tr.get("setup") or {}
        for name in tr.get("not_installed") or []:
            L.append(f"\nNot installed: {name}" + (f"; {setup[name]}." if name in setup else "."))
        for name, why in (tr.get("not_evaluated") or {}).items():
            L.append(f"\nNot evaluated on {name}: {why}.")
        L.append("")
    rb = report.get("robustness")
    if rb:
        cols = ("parameter", "training range", "swept", "success in range", "success out of range", "drop")
        note = None
        if report["config"].get("terms_from"):
            note = (f"Terms and training ranges of `{report['config']['terms_from']}` (`--terms-from`): this run "
                    "itself was trained without them.")  # fmt: skip
        L += _section("Robustness curves", report["plots"]["robustness"], cols, note)
        for name, t in rb["terms"].items():
            v = t["values"]
            lo, hi = t["training_range"]
            inside, outside = t["in_range"] or {}, t["out_of_range"] or {}
            L.append(_row(f"{name} ({t['kind']}, {t['unit']})", f"{_f(lo)}-{_f(hi)}", f"{_f(v[0])}-{_f(v[-1])}",
                          _pct(inside.get("success_rate")), _pct(outside.get("success_rate")),
                          _pct(t.get("out_of_range_drop"))))  # fmt: skip
        L.append("")
    si = report.get("sysid")
    if si:
        static = "".join(
            f"{k} from the torques of {v['frames']} static frames of {v['log']} (not by replay); "
            for k, v in (si.get("static") or {}).items()
        )
        intro = (
            f"{static}CMA-ES, {si['evaluations']} candidate replays in {si['seconds']:.0f} s; replay loss "
            f"{_f(si['loss_nominal'])} (nominal) -> {_f(si['loss_fit'])} (fit). Fitted randomization preset: "
            f"`{si.get('preset_file', '')}`. The std is an episode jackknife: a lower bound, blind to a bias "
            "every episode shares (contact in open-loop replay, a parameter not fitted); 'identifiable' says the "
            "loss responds to the parameter, not that the fit is right."
        )
        cols = ("parameter", "identified", "std", "truth", "error", "identifiable")
        L += _section("System identification", report["plots"]["sysid"], cols, intro)
        for k, v in si["values"].items():
            truth = (si.get("truth") or {}).get(k)
            err = (si.get("relative_error") or {}).get(k)
            ok = "yes" if si["identified"][k] else "no: the loss barely changes with it"
            if k in (si.get("unfitted") or {}):
                ok = f"not fitted: {si['unfitted'][k]}"
            L.append(_row(k, _f(v), _f(si["std"].get(k), 2), _f(truth), _pct(err), ok))
        if si.get("not_fitted"):
            hidden = ", ".join(f"{k} x{_f(v)}" for k, v in si["not_fitted"].items())
            L.append(f"\nHidden changes not fitted: {hidden} (`--fit-params`; what kinematic logs cannot show is "
                     "in `worldloop/sim2real/sysid.py`).")  # fmt: skip
        L.append("")
    rp = report.get("replay")
    if rp:
        cols = ("logs", "episodes", "error", "nominal", "identified", "ratio")
        unit = {"joint_rmse": "rad", "effort_rmse": "N m"}
        L += _section("Log replay", report["plots"]["replay"], cols)
        for s in rp["log_sets"]:
            for k, before in s["nominal"]["summary"].items():
                after = s["identified"]["summary"].get(k)
                k_unit = f"{k} [{unit.get(k, 'm')}]"
                L.append(
                    _row(s["logs"], s["episodes"], k_unit, _f(before), _f(after), f"{_f(s['improvement'].get(k))}x")
                )
        L.append("")
    rk = report.get("rank_fidelity")
    if rk:
        intro = (
            f"Sim: {rk['sim']['label']}; reference: {rk['reference']['label']}; {rk['episodes']} episodes per "
            f"checkpoint. **Pearson r = {_f(rk['pearson_r'])}, MMRV = {_f(rk['mmrv'])}** (SIMPLER's published "
            "real-vs-sim values span r 0.57-1.0, MMRV 0-0.12)."
        )
        cols = ("checkpoint", "sim success", "reference success")
        L += _section("Ranking fidelity", report["plots"]["rank_fidelity"], cols, intro)
        for c in rk["checkpoints"]:
            L.append(_row(c["checkpoint"], _pct(c["sim"]["success_rate"]), _pct(c["reference"]["success_rate"])))
        L.append("")
    return "\n".join(L)


def validate(report: dict) -> None:
    """Check ``report`` against ``report_schema.json`` (needs ``jsonschema``).

    Raises:
        jsonschema.ValidationError: the first mismatch, with its path in the report."""
    import jsonschema

    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
