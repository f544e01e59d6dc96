"""Sim-to-real benchmark (README, "Sim-to-real benchmark"): with no robot in the loop, transfer is
measured as the field does. Each measurement is a library function returning a JSON-able dict, with a
matplotlib plot function beside it.

- :func:`transfer` (``transfer.py``): sim-to-sim, a run's policy on every installed backend, drop vs
  the training backend; :func:`plot_transfer`.
- :func:`robustness` (``robustness.py``): success as each randomized parameter is swept inside and
  beyond its training range, all points of a term in one batched env; :func:`plot_robustness`.
- :func:`rank_fidelity` (``rank.py``): Pearson r and MMRV between the success of a run's checkpoints
  in a sim and a reference setting (SIMPLER's metrics, :func:`pearson`, :func:`mmrv`); :func:`plot_rank`.
- :func:`read_logs` (``logs.py``): robot logs (LeRobot v3.0 or CSV) checked against an env;
  :func:`replay_logs` (``tracking.py``) replays them open loop and measures the tracking error.
- :func:`collect_reality` (``reality.py``): a held-out "reality" (hidden physical changes, sensor noise).
- :func:`identify` (``sysid.py``): system identification by CMA-ES over batched replays.
- :func:`write_report` (``report.py``): all of it for one run, ``report.json`` + plots + ``report.md``
  (``worldloop sim2real``).
"""

from worldloop.sim2real.logs import LogError, RobotLogs, read_logs
from worldloop.sim2real.rank import Setting, TooFewCheckpointsError, mmrv, pearson, plot_rank, rank_fidelity
from worldloop.sim2real.reality import HIDDEN_CHANGES, FlickProbe, collect_reality
from worldloop.sim2real.report import ReportCfg, validate, write_report
from worldloop.sim2real.robustness import NoRandomizationError, plot_robustness, robustness
from worldloop.sim2real.sysid import SysIdCfg, SysIdResult, identify
from worldloop.sim2real.tracking import Tracking, replay_logs
from worldloop.sim2real.transfer import plot_transfer, transfer

__all__ = [
    "HIDDEN_CHANGES",
    "FlickProbe",
    "LogError",
    "ReportCfg",
    "RobotLogs",
    "SysIdCfg",
    "SysIdResult",
    "Tracking",
    "collect_reality",
    "identify",
    "read_logs",
    "replay_logs",
    "validate",
    "write_report",
    "NoRandomizationError",
    "Setting",
    "TooFewCheckpointsError",
    "mmrv",
    "pearson",
    "plot_rank",
    "plot_robustness",
    "plot_transfer",
    "rank_fidelity",
    "robustness",
    "transfer",
]
