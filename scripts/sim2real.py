"""``worldloop sim2real``: measure a trained run's sim-to-real transfer and write a report directory.

    worldloop sim2real --run runs/Franka-Lift-v0/<date_time>
    worldloop sim2real --run RUN --reality-tasks Franka-Lift-v0 Franka-Push-v0     # + held-out reality, fit
    worldloop sim2real --run RUN --logs datasets/robot_lift robot_push.csv        # real robot logs
    worldloop sim2real --run RUN_NO_DR --terms-from RUN_WITH_DR                   # sweep another run's terms

Writes ``report.json`` (schema: ``worldloop/sim2real/report_schema.json``), PNG plots and
``report.md`` into ``--out`` (default ``<run>/sim2real``). The Python API is
:func:`worldloop.sim2real.write_report`.
"""

from __future__ import annotations

from collections.abc import Sequence

from worldloop.sim2real.report import ReportCfg, write_report


def main(argv: Sequence[str] | None = None) -> dict:
    """``worldloop sim2real``."""
    import tyro

    cfg = tyro.cli(ReportCfg, args=argv, prog="worldloop sim2real")
    return write_report(cfg)
