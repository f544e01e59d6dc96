"""``worldloop export``: a run's actor for deployment.

    worldloop export --run runs/Franka-Reach-v0/<date_time> [--checkpoint last]

Writes the deterministic actor, with its observation normalizer, to ``exported/policy.onnx`` and
``exported/policy.pt`` (TorchScript) in the run directory; both take the concatenated ``policy``
observation group ``(batch, n_obs)`` as input ``obs`` and return ``actions (batch, action_dim)``.
A ``--policy world-action`` run also gets ``exported/world_model.onnx``: ``obs`` and ``actions
(batch, K, action_dim)`` -> predicted observations, rewards and ensemble disagreement for K steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from worldloop.policies import run_dir
from worldloop.policies.train import load_run


@dataclass(kw_only=True)
class ExportCfg:
    """Export a run's actor to ONNX and TorchScript."""

    run: str
    """Run directory (``runs/<task>/<date_time>``)."""
    checkpoint: str = "best"
    """best, last, a checkpoint file in the run (model_300.pt) or a path."""


def export(run: str | Path, *, checkpoint: str = "best") -> dict:
    """Write ``exported/policy.onnx`` and ``exported/policy.pt``; returns their paths and ``n_obs``."""
    env, runner = load_run(run, checkpoint=checkpoint, num_envs=1, device="cpu")
    out_dir = Path(run) / run_dir.EXPORTED
    runner.export_policy_to_onnx(str(out_dir), "policy.onnx")
    runner.export_policy_to_jit(str(out_dir), "policy.pt")
    n_obs = env.get_observations()["policy"].shape[-1]
    out = {"onnx": str(out_dir / "policy.onnx"), "torchscript": str(out_dir / "policy.pt"), "n_obs": n_obs}
    if run_dir.read_config(run).policy == "world-action":
        from worldloop.policies.world_action import export_world_model

        horizon = run_dir.read_config(run).world_action.horizon
        out["world_model"] = str(export_world_model(runner.alg.actor, out_dir / "world_model.onnx", horizon=horizon))
        print(
            f"[worldloop] exported {out['world_model']}: inputs 'obs', 'actions' (batch, {horizon}, "
            f"{env.action_dim}) -> 'obs_pred', 'reward', 'disagreement'",
            flush=True,
        )
    env.close()
    print(
        f"[worldloop] exported {out_dir / 'policy.onnx'} and {out_dir / 'policy.pt'}: "
        f"input 'obs' (batch, {n_obs}) -> 'actions' (batch, {env.action_dim})",
        flush=True,
    )
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    """``worldloop export``."""
    import tyro

    cfg = tyro.cli(ExportCfg, args=argv, prog="worldloop export")
    return export(cfg.run, checkpoint=cfg.checkpoint)
