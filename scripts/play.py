"""``worldloop play`` and ``worldloop export``: use a trained run.

    worldloop play --run runs/Franka-Reach-v0/<date_time> [--episodes 1000] [--video]
    worldloop export --run runs/Franka-Reach-v0/<date_time>

``play`` reports success over N episodes with a 95% interval (``play.json``) and can record an
mp4 of env 0 (MuJoCo offscreen rendering; ``MUJOCO_GL=egl`` or ``osmesa`` without a display),
written to the run directory and logged to tensorboard. ``export`` writes the deterministic actor,
with its observation normalizer, to ``exported/policy.onnx`` and ``exported/policy.pt``
(TorchScript); both take the concatenated ``policy`` observation group ``(batch, n_obs)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch


def load_run(
    run_dir: str | Path,
    *,
    checkpoint: str = "best",
    num_envs: int | None = None,
    backend: str | None = None,
    device: str | None = None,
    seed: int = 12345,
):
    """Rebuild a run's env (from its saved config) and load a checkpoint into its runner.

    ``checkpoint``: ``"best"``, ``"last"`` or a path. Returns ``(env, runner)``."""
    from worldloop.envs.batched_env import BatchedEnv
    from worldloop.envs.rsl_rl_adapter import RslRlVecEnv
    from worldloop.policies.runner import Runner, latest_checkpoint
    from worldloop.scripts.train import load_run_config

    run_dir = Path(run_dir)
    cfg, task_cfg = load_run_config(run_dir)
    if checkpoint == "best" and (run_dir / "best.pt").is_file():
        ckpt = run_dir / "best.pt"
    elif checkpoint in ("best", "last"):
        ckpt = latest_checkpoint(run_dir)
    else:
        ckpt = Path(checkpoint)
    env = BatchedEnv(
        cfg.task,
        num_envs=num_envs or cfg.num_envs,
        backend=backend or cfg.backend,
        device=device or cfg.device,
        seed=seed,
        cfg=task_cfg,
    )
    vec = RslRlVecEnv(env, log_interval=cfg.agent.num_steps_per_env, reward_scale=cfg.agent.reward_scale)
    runner = Runner(vec, cfg.agent.to_rsl_rl(save_interval=cfg.save_interval), log_dir=None, device=str(env.device))
    runner.load(str(ckpt))
    return env, runner


def make_policy(runner, num_envs: int):
    """A ``obs dict -> actions`` callable running the deterministic actor."""
    from tensordict import TensorDict

    actor = runner.get_inference_policy(device=str(runner.device))
    return lambda obs: actor(TensorDict(obs, batch_size=[num_envs]))


def record_video(
    env, policy, path: Path, *, steps: int, fps: float | None = None, width: int = 480, height: int = 360
) -> torch.Tensor:
    """Roll the policy for ``steps`` policy steps and write env 0 as an mp4 (H.264 via PyAV).

    Rendering reads ``qpos`` of env 0 into a plain ``MjData`` of the nominal scene, so it works
    for every backend. Returns the frames ``(T, H, W, 3)`` uint8."""
    import mujoco

    try:
        import av
    except ImportError as e:
        raise ImportError("video needs PyAV: pip install av  (or worldloop[test])") from e
    fps = fps or 1.0 / env.step_dt
    m = env.mj_model
    d = mujoco.MjData(m)
    frames = []
    renderer = mujoco.Renderer(m, height, width)
    try:
        obs, _ = env.reset()
        target = getattr(env.task, "target_pos_w", None)
        for _ in range(steps):
            d.qpos[:] = env.qpos[0].double().cpu().numpy()
            mujoco.mj_forward(m, d)
            renderer.update_scene(d)
            if target is not None:  # show the task's goal as a green sphere
                scn = renderer.scene
                if scn.ngeom < scn.maxgeom:
                    mujoco.mjv_initGeom(
                        scn.geoms[scn.ngeom],
                        mujoco.mjtGeom.mjGEOM_SPHERE,
                        [0.02, 0, 0],
                        env.task.target_pos_w[0].double().cpu().numpy(),
                        torch.eye(3).flatten().double().numpy(),
                        [0.1, 0.9, 0.2, 0.6],
                    )
                    scn.ngeom += 1
            frames.append(torch.from_numpy(renderer.render().copy()))
            obs, *_ = env.step(policy(obs))
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


def log_video_to_tensorboard(run_dir: Path, tag: str, video: torch.Tensor, fps: float, step: int = 0) -> None:
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
    with SummaryWriter(log_dir=str(run_dir)) as writer:
        writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=img)]), step)


def play(
    run: str,
    *,
    checkpoint: str = "best",
    episodes: int = 1000,
    num_envs: int | None = None,
    backend: str | None = None,
    video: bool = False,
    video_steps: int = 250,
) -> dict:
    from worldloop.envs.loop import evaluate

    run_dir = Path(run)
    env, runner = load_run(run_dir, checkpoint=checkpoint, num_envs=num_envs or min(episodes, 1024), backend=backend)
    policy = make_policy(runner, env.num_envs)
    result = evaluate(env, policy, episodes)
    out = {"task": env.task_id, "backend": env.backend_name, "checkpoint": checkpoint, **dataclasses.asdict(result)}
    print(
        f"[worldloop] {env.task_id} on {env.backend_name}: success {100 * result.success_rate:.1f}% "
        f"(95% CI {100 * result.success_ci95[0]:.1f}-{100 * result.success_ci95[1]:.1f}%) over "
        f"{result.episodes} episodes, mean return {result.mean_return:.2f}",
        flush=True,
    )
    if video:
        path = run_dir / "play.mp4"
        frames = record_video(env, policy, path, steps=video_steps)
        log_video_to_tensorboard(run_dir, "Play/video", frames, fps=1.0 / env.step_dt)
        out["video"] = str(path)
        print(f"[worldloop] video: {path} ({len(frames)} frames)", flush=True)
    (run_dir / f"play_{env.backend_name}.json").write_text(json.dumps(out, indent=2))
    env.close()
    return out


def export(run: str, *, checkpoint: str = "best") -> dict:
    run_dir = Path(run)
    env, runner = load_run(run_dir, checkpoint=checkpoint, num_envs=1, device="cpu")
    out_dir = run_dir / "exported"
    runner.export_policy_to_onnx(str(out_dir), "policy.onnx")
    runner.export_policy_to_jit(str(out_dir), "policy.pt")
    n_obs = env.get_observations()["policy"].shape[-1]
    env.close()
    print(
        f"[worldloop] exported {out_dir / 'policy.onnx'} and {out_dir / 'policy.pt'}: "
        f"input 'obs' (batch, {n_obs}) -> 'actions' (batch, {env.action_dim})",
        flush=True,
    )
    return {"onnx": str(out_dir / "policy.onnx"), "torchscript": str(out_dir / "policy.pt"), "n_obs": n_obs}


def main_play(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="worldloop play", description="Evaluate a trained run, optionally record a video.")
    p.add_argument("--run", required=True, help="run directory (runs/<task>/<date_time>)")
    p.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path")
    p.add_argument("--episodes", type=int, default=1000, help="evaluation episodes")
    p.add_argument("--num-envs", type=int, default=None, help="envs stepped together (default min(episodes, 1024))")
    p.add_argument("--backend", default=None, help="evaluate on another backend than the run's (sim-to-sim)")
    p.add_argument("--video", action="store_true", help="record play.mp4 of env 0 into the run directory")
    p.add_argument("--video-steps", type=int, default=250, help="policy steps in the video")
    a = p.parse_args(argv)
    return play(
        a.run,
        checkpoint=a.checkpoint,
        episodes=a.episodes,
        num_envs=a.num_envs,
        backend=a.backend,
        video=a.video,
        video_steps=a.video_steps,
    )


def main_export(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="worldloop export", description="Export a run's actor to ONNX and TorchScript.")
    p.add_argument("--run", required=True, help="run directory (runs/<task>/<date_time>)")
    p.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path")
    a = p.parse_args(argv)
    return export(a.run, checkpoint=a.checkpoint)
