"""``worldloop curve``: a run's learning curve from its tensorboard events, as a plain table.

    worldloop curve --run runs/Franka-Push-v0/<date_time> --every 50 --target 0.9

Wall-clock minutes count from the moment the runner opened its event file (after the envs were
built), so they are training time: collection, learning, logging and checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(kw_only=True)
class CurveCfg:
    """A run's learning curve from its tensorboard events, as a plain table."""

    run: str
    """Run directory (holds events.out.tfevents.*)."""
    every: int = 50
    """Print every N-th iteration (and the last)."""
    target: float | None = None
    """Also report when success first reached this (0-1)."""


TAGS = {"success": "Episode/success", "return": "Episode/return", "length": "Episode/length"}


def read_curve(run: str | Path) -> list[dict]:
    """One dict per logged iteration: ``it``, ``minutes``, ``success``, ``return``, ``length``."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = sorted(Path(run).glob("events.out.tfevents.*"))
    if not files:
        raise FileNotFoundError(f"no tensorboard event file in {run}")
    start, rows = None, {}
    for f in files:  # a resumed run adds a file; its iterations continue the first one's
        for event in EventFileLoader(str(f)).Load():
            start = event.wall_time if start is None else start
            for v in event.summary.value:
                name = next((k for k, tag in TAGS.items() if tag == v.tag), None)
                if name is None:
                    continue
                value = v.simple_value if v.HasField("simple_value") else float(v.tensor.float_val[0])
                row = rows.setdefault(event.step, {"it": event.step})
                row[name] = value
                row["minutes"] = (event.wall_time - start) / 60.0
    return [rows[k] for k in sorted(rows)]


def main(argv: Sequence[str] | None = None) -> None:
    """``worldloop curve``."""
    import tyro

    args = tyro.cli(CurveCfg, args=argv, prog="worldloop curve")
    rows = read_curve(args.run)
    print(f"{'iteration':>9}  {'minutes':>7}  {'success':>7}  {'return':>8}")
    for i, r in enumerate(rows):
        if i % args.every == 0 or i == len(rows) - 1:
            success, ret = r.get("success", float("nan")), r.get("return", float("nan"))
            print(f"{r['it']:>9}  {r['minutes']:>7.1f}  {success:>7.1%}  {ret:>8.1f}")
    if args.target is not None:
        hit = next((r for r in rows if r.get("success", 0.0) >= args.target), None)
        if hit is None:
            best = max(rows, key=lambda r: r.get("success", 0.0))
            print(f"success never reached {args.target:.0%} (best {best['success']:.1%} at iteration {best['it']})")
        else:
            print(f"success first >= {args.target:.0%} at iteration {hit['it']}, {hit['minutes']:.1f} min")
