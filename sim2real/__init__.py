"""Sim-to-real benchmark (DESIGN.md, "Sim-to-real benchmark"): with no robot in the loop, transfer is
measured as the field does. Each measurement is a library function returning a JSON-able dict, with a
matplotlib plot function beside it.

- :func:`transfer` (``transfer.py``): sim-to-sim, a run's policy on every installed backend, drop vs
  the training backend; :func:`plot_transfer`.
- :func:`robustness` (``robustness.py``): success as each randomized parameter is swept inside and
  beyond its training range, all points of a term in one batched env; :func:`plot_robustness`.
- :func:`rank_fidelity` (``rank.py``): Pearson r and MMRV between the success of a run's checkpoints
  in a sim and a reference setting (SIMPLER's metrics, :func:`pearson`, :func:`mmrv`); :func:`plot_rank`.
"""

from worldloop.sim2real.rank import Setting, TooFewCheckpointsError, mmrv, pearson, plot_rank, rank_fidelity
from worldloop.sim2real.robustness import NoRandomizationError, plot_robustness, robustness
from worldloop.sim2real.transfer import plot_transfer, transfer

__all__ = [
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
