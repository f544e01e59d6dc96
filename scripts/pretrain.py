"""``worldloop pretrain``: fit a world-action model's world model on rollout datasets.

    worldloop collect ... --out datasets/lift_random          # random and/or policy rollouts
    worldloop pretrain --data datasets/lift_random [--steps 2000]

Writes a run directory (``runs/<task>/<date_time>_pretrain``) that ``worldloop finetune --init`` and
``worldloop train --policy world-action --init`` start from; see :mod:`worldloop.policies.recipe`.
"""

from __future__ import annotations

from collections.abc import Sequence

from worldloop.policies.recipe import PretrainCfg, pretrain


def main(argv: Sequence[str] | None = None) -> dict:
    """``worldloop pretrain``."""
    import tyro

    return pretrain(tyro.cli(PretrainCfg, args=argv, prog="worldloop pretrain"))
