"""The three-stage recipe for world-action policies: pretrain the world model on rollout data,
fine-tune the action head by behaviour cloning, then PPO (``worldloop train --init RUN``).

    pretrain(PretrainCfg(data=("datasets/lift_random",)))          # dynamics, reward, decoder
    finetune(FinetuneCfg(data=("datasets/lift_expert",), init=run))   # + behaviour cloning
    model_eval(run, "datasets/lift_heldout")                         # K-step error per observation block

Each stage writes a run directory like ``worldloop train`` does (``config.json`` with
``policy="world-action"``, ``last.pt``/``best.pt`` with the model in ``actor_state_dict``,
tensorboard events, and ``pretrain.json``/``finetune.json``), so the next stage, ``play`` and
``export`` read it as any run. Datasets are those of ``worldloop collect`` (:mod:`worldloop.data`):
``observation.state`` is the actor's observation, ``next.reward`` the task's reward (scaled here by
the task's ``reward_scale``, the units PPO learns in), ``next.terminated`` the terminal flag.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import torch
from tensordict import TensorDict

from worldloop.data import Dataset, load
from worldloop.policies import run_dir
from worldloop.policies.train import TrainCfg, rsl_rl_cfg
from worldloop.policies.world_action_cfg import WorldActionCfg

__all__ = ["FinetuneCfg", "PretrainCfg", "finetune", "model_eval", "observation_blocks", "pretrain"]

STATE, ENV_STATE = "observation.state", "observation.environment_state"

# Observation layout of the built-in tasks (their ``observe()``), for per-block errors. A task not
# listed is reported as one block.
_BLOCKS: dict[str, dict[str, tuple[int, int]]] = {
    # joint pos rel (7), joint vel (7), joint target error (7); target (3), target - grip (3); last action (7)
    "Franka-Reach-v0": {"joints": (0, 21), "goal": (21, 27), "last_action": (27, 34)},
    # joint pos (7), vel (7), finger (1); cube pos, quat, cube - grip (10); goal, goal - cube (6); action (5)
    "Franka-Lift-v0": {"joints": (0, 15), "object": (15, 25), "goal": (25, 31), "last_action": (31, 36)},
}


def observation_blocks(task: str, n_obs: int) -> dict[str, tuple[int, int]]:
    """``{block: (start, stop)}`` column ranges of a task's policy observation (``joints``, ``object``,
    ``goal``, ...); ``{"all": (0, n_obs)}`` for a task whose layout is not listed."""
    blocks = _BLOCKS.get(task)
    if blocks is None or max(b for _, b in blocks.values()) != n_obs:
        return {"all": (0, n_obs)}
    return blocks


@dataclass(kw_only=True)
class PretrainCfg:
    """Fit the world model (dynamics, reward, termination, decoder) on rollout datasets."""

    data: tuple[str, ...]
    """Dataset directories from ``worldloop collect`` (random and/or policy rollouts), one task."""
    steps: int = 2000
    """Gradient steps."""
    batch_size: int = 256
    """K-step windows per step."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    holdout: float = 0.1
    """Fraction of episodes (the last ones) held out to report the K-step error."""
    seed: int = 0
    """Seed of the model initialisation and window order."""
    log_root: str = "runs"
    """Directory holding one folder per task and run."""
    run_name: str = "pretrain"
    """Suffix of the run folder name."""
    world_action: WorldActionCfg = field(default_factory=WorldActionCfg)
    """Model settings; ``worldloop train --init`` needs the same ones."""


@dataclass(kw_only=True)
class FinetuneCfg(PretrainCfg):
    """Fit the action head by behaviour cloning on demonstrations, with the world-model loss still on."""

    steps: int = 10000
    """Gradient steps. On Franka-Lift-v1 (800 demonstrations, 200,000 frames) the cloned actor's deterministic
    success was 8.6% after 3,000 steps and 84.0% after 10,000, with held-out action MSE 0.0175 and 0.0156
    (BENCHMARKS.md, "Cloning long enough"): closed-loop success needs far more fitting than the MSE suggests."""
    init: str | None = None
    """Run directory to start from (a ``worldloop pretrain`` run); default: a fresh model."""
    bc_coef: float = 1.0
    """Weight of the behaviour-cloning loss (MSE of the action chunk against the demonstrated actions)."""
    world_model_coef: float = 1.0
    """Weight of the world-model loss."""
    run_name: str = "finetune"
    """Suffix of the run folder name."""


def _load_all(paths: tuple[str, ...]) -> tuple[list[Dataset], str]:
    if not paths:
        raise ValueError("--data needs at least one dataset directory")
    sets = [load(p) for p in paths]
    tasks = {d.task for d in sets}
    if len(tasks) != 1 or None in tasks:
        raise ValueError(
            f"datasets {list(paths)} must be worldloop datasets of one task, got tasks {sorted(map(str, tasks))}"
        )
    return sets, tasks.pop()


def build_models(cfg: TrainCfg, ds: Dataset, num_actions: int):
    """The run's actor (:class:`WorldActionModel`) and critic built from a dataset's feature shapes."""
    from rsl_rl.utils import resolve_class  # noqa: TID253 - imported when a model is built

    n = ds.features[STATE]["shape"][0]
    n_c = ds.features[ENV_STATE]["shape"][0] if ENV_STATE in ds.features else n
    obs = TensorDict({"policy": torch.zeros(1, n), "critic": torch.zeros(1, n_c)}, batch_size=[1])
    train_cfg = rsl_rl_cfg(cfg)
    groups = train_cfg["obs_groups"]
    actor_cls, actor_kw = resolve_class(train_cfg["actor"])
    critic_cls, critic_kw = resolve_class(train_cfg["critic"])
    actor = actor_cls(obs, groups, "actor", num_actions, **actor_kw)
    critic = critic_cls(obs, groups, "critic", 1, **critic_kw)
    if getattr(critic, "share_encoder", False):
        critic.share_with(actor)
    return actor, critic


def _split(ds: Dataset, k: int, holdout: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Window starts of the training episodes and of the held-out (last) ones."""
    starts = ds.window_starts(k)
    cut = ds.num_episodes - int(round(holdout * ds.num_episodes))
    ep = ds.frames["episode_index"][starts]
    return starts[ep < cut], starts[ep >= cut]


def _batch(ds: Dataset, starts: torch.Tensor, k: int, reward_scale: float) -> dict[str, torch.Tensor]:
    w = ds.window(starts, k + 1, [STATE, "action", "next.reward", "next.terminated"])
    return {
        "obs": w[STATE],
        "actions": w["action"][:, :k],
        "rewards": w["next.reward"][:, :k].reshape(len(starts), k) * reward_scale,
        "terminated": w["next.terminated"][:, :k].reshape(len(starts), k).bool(),
        "alive": torch.ones(len(starts), k + 1),  # windows of load() never cross an episode end
        "all_actions": w["action"],
    }


def _fit(cfg: PretrainCfg, *, stage: str, bc_coef: float = 0.0, wm_coef: float = 1.0, init: str | None = None) -> dict:
    from torch.utils.tensorboard import SummaryWriter

    from worldloop.policies.runner import atomic_save, load_checkpoint
    from worldloop.policies.world_action import world_model_loss

    torch.manual_seed(cfg.seed)
    sets, task = _load_all(cfg.data)
    tcfg = TrainCfg.from_task(task, policy="world-action", world_action=cfg.world_action)
    if init:
        saved = run_dir.read_config(init)
        if saved.task != task or saved.world_action != cfg.world_action:
            raise run_dir.ConfigError(f"--init {init}: its task or --world-action settings differ from this stage's")
    num_actions = sets[0].features["action"]["shape"][0]
    actor, critic = build_models(tcfg, sets[0], num_actions)
    if init:
        actor.load_state_dict(load_checkpoint(run_dir.find_checkpoint(init, "last"))["actor_state_dict"])
    else:
        actor.obs_normalizer.train()
        actor.update_normalization(TensorDict({"policy": torch.cat([d.frames[STATE] for d in sets])}, batch_size=[]))
    actor.update_target(0.0)
    wa = cfg.world_action
    k = max(wa.horizon, wa.chunk_size)
    splits = [_split(d, k + 1, cfg.holdout) for d in sets]
    train_starts = [(i, s) for i, (s, _) in enumerate(splits)]
    n_train = sum(len(s) for _, s in train_starts)
    if n_train == 0:
        raise ValueError(f"{list(cfg.data)}: no training window of {k + 1} steps (episodes too short or too few)")
    weights = torch.tensor([len(s) for _, s in train_starts], dtype=torch.float)
    # The critic's parameters are in the optimizer (without gradients here) so that its state has the
    # layout of WorldActionPPO's: `worldloop play`, `export` and `--resume` load it as a train run's.
    params = [p for p in dict.fromkeys(chain(actor.parameters(), critic.parameters())) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.learning_rate, fused=True)
    scale = tcfg.agent.reward_scale
    coefs = {f"{n}_coef": getattr(wa, f"{n}_coef") for n in ("dynamics", "reward", "termination", "reconstruction")}
    path = run_dir.new_run_dir(cfg.log_root, task, cfg.run_name)
    run_dir.write_config(path, tcfg, backend=sets[0].episodes["backend"][0] if sets[0].num_episodes else "mujoco")
    writer = SummaryWriter(str(path))
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    actor.train()
    for step in range(cfg.steps):
        i = int(torch.multinomial(weights, 1, generator=gen))
        ds, starts = sets[i], train_starts[i][1]
        b = _batch(ds, starts[torch.randint(len(starts), (cfg.batch_size,), generator=gen)], k, scale)
        wm = world_model_loss(
            actor, b["obs"][:, : wa.horizon + 1], b["actions"][:, : wa.horizon], b["rewards"][:, : wa.horizon],
            b["terminated"][:, : wa.horizon], b["alive"][:, : wa.horizon + 1], rho=wa.rho, **coefs,
        )  # fmt: skip
        loss = wm_coef * wm.total
        if bc_coef:
            z0 = actor.encode(actor.normalize(b["obs"][:, 0]))
            bc = (actor.action_chunk(z0) - b["all_actions"][:, : wa.chunk_size]).pow(2).mean()
            loss = loss + bc_coef * bc
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        actor.update_target(wa.target_tau)
        if step % 50 == 0 or step == cfg.steps - 1:
            for name in ("dynamics", "reward", "termination", "reconstruction"):
                writer.add_scalar(f"Loss/{name}", float(getattr(wm, name).detach()), step)
            writer.add_scalar(f"Loss/kstep_obs_rmse_k{wa.horizon}", float(wm.obs_rmse[-1]), step)
            if bc_coef:
                writer.add_scalar("Loss/behaviour_cloning", float(bc.detach()), step)
    actor.eval()
    summary = {
        "stage": stage,
        "task": task,
        "data": list(cfg.data),
        "init": init,
        "steps": cfg.steps,
        "seconds": round(time.perf_counter() - t0, 1),
        "dataset_env_steps": sum(d.num_frames for d in sets),
        "run_dir": str(path),
    }
    held = [(d, h) for d, (_, h) in zip(sets, splits, strict=True) if len(h)]
    if held:
        with torch.no_grad():
            errs = []
            for d, h in held:
                b = _batch(d, h[:4096], k, scale)
                wm = world_model_loss(actor, b["obs"][:, : wa.horizon + 1], b["actions"][:, : wa.horizon],
                                      b["rewards"][:, : wa.horizon], b["terminated"][:, : wa.horizon],
                                      b["alive"][:, : wa.horizon + 1], rho=wa.rho, **coefs)  # fmt: skip
                errs.append(wm.obs_rmse)
                if bc_coef:
                    z0 = actor.encode(actor.normalize(b["obs"][:, 0]))
                    summary["heldout_bc_mse"] = float((actor.mlp(z0) - b["all_actions"][:, 0]).pow(2).mean())
            summary["heldout_obs_rmse"] = [round(float(x), 5) for x in torch.stack(errs).mean(0)]
    state = {
        "actor_state_dict": actor.state_dict(),
        "critic_state_dict": critic.state_dict(),
        "optimizer_state_dict": opt.state_dict(),
        "iter": cfg.steps - 1,
        "infos": summary,
    }
    for name in (run_dir.LAST, run_dir.BEST):
        atomic_save(state, path / name)
    writer.close()
    (path / f"{stage}.json").write_text(json.dumps(summary, indent=2))
    print(f"[worldloop] {stage}: {json.dumps(summary)}", flush=True)
    return summary


def pretrain(cfg: PretrainCfg) -> dict:
    """Fit the world model on ``cfg.data``; returns what ``pretrain.json`` in the new run holds."""
    return _fit(cfg, stage="pretrain")


def finetune(cfg: FinetuneCfg) -> dict:
    """Behaviour-clone ``cfg.data``'s actions (from ``cfg.init``'s model) with the world-model loss on;
    returns what ``finetune.json`` in the new run holds."""
    return _fit(cfg, stage="finetune", bc_coef=cfg.bc_coef, wm_coef=cfg.world_model_coef, init=cfg.init)


def model_eval(run: str | Path, data: str | Path, *, horizon: int = 10, holdout: float = 1.0, checkpoint: str = "best",
               max_windows: int = 4096) -> dict:  # fmt: skip
    """K-step prediction error of a world-action run's model in observation units, k = 1..``horizon``,
    per observation block, on the last ``holdout`` fraction of ``data``'s episodes (1.0: all of them,
    for a held-out dataset). Writes ``model_eval.json`` and ``model_eval.png`` into the run.

    Returns ``{"rmse": {block: [k=1..K]}, "no_change_rmse": {...}, "windows": n, ...}``; the "no
    change" baseline predicts that the observation stays as it is, for scale; ``"plot"``: the PNG's path,
    or None without matplotlib."""
    from worldloop.policies.runner import load_checkpoint

    cfg = run_dir.read_config(run)
    if cfg.policy != "world-action":
        raise run_dir.ConfigError(f"{run}: policy is {cfg.policy!r}; model-eval needs a world-action run")
    ds = load(data, task=cfg.task)
    actor, _ = build_models(cfg, ds, ds.features["action"]["shape"][0])
    actor.load_state_dict(load_checkpoint(run_dir.find_checkpoint(run, checkpoint))["actor_state_dict"])
    actor.eval()
    _, starts = _split(ds, horizon + 1, holdout)
    if len(starts) == 0:
        raise ValueError(f"{data}: no held-out window of {horizon + 1} steps")
    starts = starts[torch.randperm(len(starts), generator=torch.Generator().manual_seed(0))[:max_windows]]
    w = ds.window(starts, horizon + 1, [STATE, "action"])
    obs, actions = w[STATE], w["action"][:, :horizon]
    with torch.no_grad():
        pred = actor.denormalize(actor.imagine(actor.normalize(obs[:, 0]), actions)["obs"].mean(0))  # (B, K, n)
    sq, sq0 = (pred - obs[:, 1:]).pow(2), (obs[:, :1] - obs[:, 1:]).pow(2)
    blocks = observation_blocks(cfg.task, obs.shape[-1])
    rmse = {b: sq[..., lo:hi].mean((0, 2)).sqrt().tolist() for b, (lo, hi) in blocks.items()}
    base = {b: sq0[..., lo:hi].mean((0, 2)).sqrt().tolist() for b, (lo, hi) in blocks.items()}
    out = {"run": str(run), "data": str(data), "task": cfg.task, "windows": len(starts), "horizon": horizon,
           "blocks": {b: list(r) for b, r in blocks.items()}, "rmse": rmse, "no_change_rmse": base}  # fmt: skip
    plot = _plot(out, Path(run) / "model_eval.png")
    out["plot"] = None if plot is None else str(plot)
    (Path(run) / "model_eval.json").write_text(json.dumps(out, indent=2))
    return out


def format_table(result: dict) -> str:
    """The ``model_eval`` result as a text table: one row per k, one column per block."""
    blocks = list(result["rmse"])
    lines = ["  k" + "".join(f"{b:>20}" for b in blocks), "   " + "   model / no change" * len(blocks)]
    for k in range(result["horizon"]):
        cells = "".join(f"{result['rmse'][b][k]:>10.4f} /{result['no_change_rmse'][b][k]:>7.4f}" for b in blocks)
        lines.append(f"{k + 1:>3}{cells}")
    return "\n".join(lines)


def _plot(result: dict, path: Path) -> Path | None:
    """Error vs horizon per block at ``path``; None (with a note) where matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        print(f"[worldloop] matplotlib is not installed: no {path.name} (pip install 'worldloop[plots]')", flush=True)
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(range(1, result["horizon"] + 1))
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (b, r) in enumerate(result["rmse"].items()):
        ax.plot(ks, r, "o-", color=f"C{i}", label=f"{b} (model)")
        ax.plot(ks, result["no_change_rmse"][b], ":", color=f"C{i}", label=f"{b} (no change)")
    ax.set_xlabel("prediction step k")
    ax.set_ylabel("RMSE [observation units]")
    ax.set_yscale("log")
    ax.set_title(f"{result['task']}: k-step prediction error, {result['windows']} windows")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
