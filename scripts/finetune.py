"""``worldloop finetune``: behaviour-clone demonstrations into a world-action model's action head,
the world-model loss still on.

    worldloop collect --task Franka-Lift-v0 --policy expert --out datasets/lift_expert
    worldloop finetune --data datasets/lift_expert --init runs/Franka-Lift-v0/<date_time>_pretrain
    worldloop train --task Franka-Lift-v0 --policy world-action --init runs/Franka-Lift-v0/<date_time>_finetune
"""

from __future__ import annotations

from collections.abc import Sequence

from worldloop.policies.recipe import FinetuneCfg, finetune


def main(argv: Sequence[str] | None = None) -> dict:
    """``worldloop finetune``."""
    import tyro

    return finetune(tyro.cli(FinetuneCfg, args=argv, prog="worldloop finetune"))
