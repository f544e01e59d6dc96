"""``worldloop model-eval``: K-step prediction error of a world-action run's model on held-out episodes.

    worldloop model-eval --run runs/Franka-Lift-v0/<date_time> --data datasets/lift_heldout

Prints a table (RMSE in observation units for k = 1..K, per observation block, beside the error of
predicting no change) and writes ``model_eval.json`` and ``model_eval.png`` into the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worldloop.policies.recipe import format_table, model_eval


@dataclass(kw_only=True)
class ModelEvalCfg:
    """K-step prediction error of a world-action model, per observation block."""

    run: str
    """A world-action run directory (train, pretrain or finetune)."""
    data: str
    """Dataset directory from ``worldloop collect`` of the run's task."""
    horizon: int = 10
    """Largest k."""
    holdout: float = 1.0
    """Fraction of the dataset's episodes (the last ones) evaluated; 1.0 for a held-out dataset."""
    checkpoint: str = "best"
    """best, last, a checkpoint file in the run or a path."""


def main(argv: Sequence[str] | None = None) -> dict:
    """``worldloop model-eval``."""
    import tyro

    cfg = tyro.cli(ModelEvalCfg, args=argv, prog="worldloop model-eval")
    result = model_eval(cfg.run, cfg.data, horizon=cfg.horizon, holdout=cfg.holdout, checkpoint=cfg.checkpoint)
    print(format_table(result), flush=True)
    plot = " and model_eval.png" if result["plot"] else ""
    print(f"[worldloop] wrote {cfg.run}/model_eval.json{plot}", flush=True)
    return result
