"""``worldloop play``: evaluate a trained run, optionally record a video.

    worldloop play --run runs/Franka-Reach-v0/<date_time> [--episodes 1000] [--backend newton] [--video]
    worldloop play --run RUN --rand object_mass.range=2,2 --rand obs_noise=off [--plan]   # shifted physics

Reports success over N episodes with a 95% interval (``play_<backend>.json`` in the run) and can
record an mp4 of env 0 (MuJoCo offscreen rendering; ``MUJOCO_GL=egl`` or ``osmesa`` without a
display), written to the run directory and logged to tensorboard.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from worldloop.envs.loop import Loop, Policy, evaluate
from worldloop.policies import run_dir
from worldloop.policies.train import Backend, inference_policy, load_run
from worldloop.policies.world_action_cfg import PlanCfg
from worldloop.scripts.rand_option import apply_rand_options, pop_rand_options


@dataclass(kw_only=True)
class PlayCfg:
    """Evaluate a trained run, optionally record a video."""

    run: str
    """Run directory (``runs/<task>/<date_time>``)."""
    checkpoint: str = "best"
    """best, last, a checkpoint file in the run (model_300.pt) or a path."""
    episodes: int = 1000
    """Evaluation episodes."""
    num_envs: int | None = None
    """Envs stepped together; default min(episodes, 1024)."""
    backend: Backend | None = None
    """Evaluate on another backend than the run's (sim-to-sim); default the run's."""
    video: bool = False
    """Record play.mp4 of env 0 into the run directory (and tensorboard)."""
    video_steps: int = 250
    """Policy steps in the video."""
    plan: bool = False
    """World-action runs: act by MPPI planning with the model (``--plan-cfg.*``) instead of the actor's mean."""
    plan_cfg: PlanCfg = dataclasses.field(default_factory=PlanCfg)
    """Planning settings (used with ``--plan``)."""
    rand: tuple[str, ...] = ()
    """Changes to the run's randomization for this evaluation, as ``train``'s ``--rand`` (repeatable):
    ``object_mass.range=2,2`` pins the cube at 2x its nominal mass, ``cube_friction.kind=geom_friction``
    with ``cube_friction.targets=cube`` and ``cube_friction.range=0.5,0.5`` adds a term at half the
    friction, ``obs_noise=off`` drops one. The result goes to ``play_<backend>_rand.json``."""


def play(cfg: PlayCfg) -> dict:
    """Evaluate ``cfg.run``'s checkpoint; returns what ``play_<backend>.json`` holds."""
    path = Path(cfg.run)
    saved = run_dir.read_config(path)
    task = saved.task
    if cfg.video:
        _require_pyav()  # before the evaluation, not after it
    num_envs = min(cfg.episodes, 1024) if cfg.num_envs is None else cfg.num_envs
    terms = None
    if cfg.rand:
        terms = apply_rand_options(saved.env.randomization, list(cfg.rand))
    env, runner = load_run(path, checkpoint=cfg.checkpoint, num_envs=num_envs, backend=cfg.backend, randomization=terms)
    policy = inference_policy(runner, env.num_envs)
    planner = None
    if cfg.plan:
        if saved.policy != "world-action":
            raise run_dir.ConfigError(f"--plan needs a world-action run; {path} trained an MLP policy")
        from worldloop.policies.planning import Planner

        policy = planner = Planner(runner.alg.actor, runner.alg.critic, cfg.plan_cfg)
    result = evaluate(env, policy, cfg.episodes)
    out = {"task": task, "backend": env.backend_name, "checkpoint": cfg.checkpoint, **dataclasses.asdict(result)}
    if cfg.rand:
        out["rand"] = list(cfg.rand)
    if planner is not None:
        out["plan"] = dataclasses.asdict(cfg.plan_cfg)
        out["plan_ms_per_step"] = round(planner.ms_per_step, 2)
        print(f"[worldloop] planning: {planner.ms_per_step:.1f} ms per step for {env.num_envs} envs", flush=True)
    print(
        f"[worldloop] {task} on {env.backend_name}: success {100 * result.success_rate:.1f}% "
        f"(95% CI {100 * result.success_ci95[0]:.1f}-{100 * result.success_ci95[1]:.1f}%) over "
        f"{result.episodes} episodes, mean return {result.mean_return:.2f}",
        flush=True,
    )
    name = env.backend_name + ("_plan" if cfg.plan else "") + ("_rand" if cfg.rand else "")
    run_dir.write_play(path, name, out)  # the evaluation is kept even if the video fails (e.g. no GL context)
    if cfg.video:
        video = path / run_dir.VIDEO
        frames = record_video(env, policy, video, steps=cfg.video_steps)
        log_video_to_tensorboard(path, "Play/video", frames, fps=1.0 / env.step_dt)
        out["video"] = str(video)
        print(f"[worldloop] video: {video} ({len(frames)} frames)", flush=True)
        run_dir.write_play(path, name, out)
    env.close()
    return out


def _require_pyav() -> None:
    """Raises ImportError naming the extra to install when PyAV (the mp4 writer) is missing."""
    try:
        import av  # noqa: F401
    except ImportError as e:
        raise ImportError('video needs PyAV: python -m pip install -e ".[video]"  (or pip install av)') from e


def record_video(
    env, policy: Policy, path: Path, *, steps: int, fps: float | None = None, width: int = 480, height: int = 360
) -> torch.Tensor:
    """Run the policy from a reset for ``steps`` policy steps and write env 0 as an mp4 (H.264 via PyAV).

    Frame ``t`` is the state before action ``t``: the :class:`Loop`'s ``qpos`` of env 0 read into a plain
    ``MjData`` of the nominal scene (so it works for every backend), with the task's goal
    (``target_pos_w``) as a green sphere. Returns the frames ``(T, H, W, 3)`` uint8."""
    import mujoco

    _require_pyav()
    import av

    fps = fps or 1.0 / env.step_dt
    targets: list[torch.Tensor | None] = []

    def act(obs):
        # The goal as the policy sees it, for the frame of this step.
        target = env.task.target_pos_w
        targets.append(None if target is None else target[0].double().cpu())
        return policy(obs)

    rollouts = Loop(env, act).run(steps, chunk=max(steps, 1), fields=("qpos",), reset=True)
    qpos = [q for r in rollouts for q in r.qpos[:, 0].double().cpu().numpy()]
    m = env.mj_model
    d = mujoco.MjData(m)
    frames = []
    renderer = mujoco.Renderer(m, height, width)
    try:
        for q, target in zip(qpos, targets, strict=True):
            d.qpos[:] = q
            mujoco.mj_forward(m, d)
            renderer.update_scene(d)
            scn = renderer.scene
            if target is not None and scn.ngeom < scn.maxgeom:
                mujoco.mjv_initGeom(
                    scn.geoms[scn.ngeom],
                    mujoco.mjtGeom.mjGEOM_SPHERE,
                    [0.02, 0, 0],
                    target.numpy(),
                    torch.eye(3).flatten().double().numpy(),
                    [0.1, 0.9, 0.2, 0.6],
                )
                scn.ngeom += 1
            frames.append(torch.from_numpy(renderer.render().copy()))
    finally:
        renderer.close()
    video = torch.stack(frames)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for f in video.numpy():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    return video


def log_video_to_tensorboard(run: Path, tag: str, video: torch.Tensor, fps: float, step: int = 0) -> None:
    """An animated GIF image summary (what tensorboard displays as video), no moviepy needed."""
    import io

    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard import SummaryWriter

    frames = [Image.fromarray(f).resize((f.shape[1] // 2, f.shape[0] // 2)) for f in video[::2].numpy()]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=int(2000 / fps), loop=0)
    h, w = frames[0].height, frames[0].width
    img = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=buf.getvalue())
    with SummaryWriter(log_dir=str(run)) as writer:
        writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=img)]), step)


def main(argv: Sequence[str] | None = None) -> dict:
    """``worldloop play``."""
    import tyro

    rand, argv = pop_rand_options(list(sys.argv[1:] if argv is None else argv))
    cfg = tyro.cli(PlayCfg, args=argv, prog="worldloop play", config=(tyro.conf.FlagCreatePairsOff,))
    return play(dataclasses.replace(cfg, rand=cfg.rand + tuple(rand)))
