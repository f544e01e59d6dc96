"""Physics backends. All load the same MJCF scene and expose state in MuJoCo's conventions."""

from __future__ import annotations

import mujoco
import torch

from .base import Backend

BACKENDS = ("mujoco", "newton")
"""Backend names accepted by :func:`make_backend` besides ``"auto"``."""


def resolve_backend(backend: str, device: str | torch.device | None) -> tuple[str, torch.device]:
    """Resolve ``"auto"`` and the device: ``newton`` on CUDA, ``mujoco`` on CPU."""
    if backend == "isaaclab":
        raise ValueError(
            "backend 'isaaclab' runs Isaac Lab's own tasks: use a task id 'isaaclab:<Isaac Lab id>', "
            "e.g. isaaclab:Isaac-Cartpole-v0"
        )
    if backend not in (*BACKENDS, "auto"):
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(('auto', *BACKENDS))}")
    if device is None:
        device = "cuda" if (backend != "mujoco" and torch.cuda.is_available()) else "cpu"
    device = torch.device(device)
    if backend == "auto":
        backend = "newton" if device.type == "cuda" else "mujoco"
    return backend, device


def make_backend(
    backend: str, mj_model: mujoco.MjModel, xml_path: str, *, num_envs: int, device: torch.device, seed: int
) -> Backend:
    """Build the named backend for a compiled scene. Heavy engines are imported only here."""
    if backend == "mujoco":
        from .mujoco_backend import MujocoBackend

        return MujocoBackend(mj_model, xml_path, num_envs=num_envs, device=device, seed=seed)
    if backend == "newton":
        from .newton_backend import NewtonBackend

        return NewtonBackend(mj_model, xml_path, num_envs=num_envs, device=device, seed=seed)
    raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
