"""``worldloop isaaclab-assets``: local stand-ins for the Isaac Lab assets its Cartpole and Reach-Franka use.

    worldloop isaaclab-assets --out ~/isaaclab-assets
    export ISAACSIM_ASSET_ROOT=~/isaaclab-assets
    worldloop train --task isaaclab:Isaac-Cartpole-v0 --device cpu

Isaac Lab downloads its stock assets from a cloud bucket at run time; offline they fail. This writes
USD stand-ins built from worldloop's own MJCF (``worldloop.envs.isaaclab.usd_assets``: the ground
plane, the cart-pole, the Franka Panda with Isaac Lab's joint and body names) at the paths Isaac Lab's
configs name under ``ISAACSIM_ASSET_ROOT``. Needs ``pxr`` (``usd-core``, in Isaac Lab's environment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(kw_only=True)
class AssetsCfg:
    """Write local stand-in USD assets for Isaac Lab's Cartpole and Reach-Franka tasks."""

    out: str
    """Folder to write (use it as ``ISAACSIM_ASSET_ROOT``)."""
    no_franka: bool = False
    """Write the ground plane and the cart-pole only."""


def main(argv: Sequence[str] | None = None) -> list[str]:
    """``worldloop isaaclab-assets``: returns the files written."""
    import tyro

    cfg = tyro.cli(AssetsCfg, args=argv, prog="worldloop isaaclab-assets", config=(tyro.conf.FlagCreatePairsOff,))
    try:
        from worldloop.envs.isaaclab.usd_assets import write_assets

        files = [str(p) for p in write_assets(cfg.out, franka=not cfg.no_franka)]
    except ImportError as e:
        raise SystemExit(
            f"worldloop isaaclab-assets: needs pxr (usd-core): pip install usd-core, or run it in the Isaac Lab "
            f"environment (README, 'Isaac Lab backend'): {e}"
        ) from None
    for f in files:
        print(f)
    print(f"[worldloop] wrote {len(files)} stand-in assets; use them with: export ISAACSIM_ASSET_ROOT={cfg.out}")
    return files
