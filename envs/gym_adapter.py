"""gymnasium views of a :class:`BatchedEnv`: a ``VectorEnv`` of all its envs, and a single ``Env``.

    env = gymnasium.make_vec("worldloop/Franka-Reach-v0", num_envs=64)   # GymVectorEnv (batched)
    env = gymnasium.make("worldloop/Franka-Reach-v0")                     # GymEnv (one env)
    env = GymVectorEnv(worldloop.make("Franka-Reach-v0", num_envs=64))    # the same, from an env

:class:`GymVectorEnv`: observations are the ``policy`` group as a NumPy array ``(num_envs, n)``
(``numpy=False`` keeps torch tensors on the env's device), the ``critic`` group is in
``info["critic"]``. Autoreset is gymnasium's ``SAME_STEP`` mode: an env whose episode ended returns
its next episode's first observation, and the last one is in ``info["final_obs"]``. Every info entry
``key`` has its mask ``info["_key"]`` ``(num_envs,)`` bool (``_final_obs``: the envs that ended).

:class:`GymEnv`: one env (a batch of 1) with gymnasium's single-env contract (no autoreset: call
``reset`` after an episode ends); it passes ``gymnasium.utils.env_checker.check_env``, and
``gymnasium.make_vec(..., vectorization_mode="sync")`` builds a ``SyncVectorEnv`` of them.

``render_mode="rgb_array"``: ``render()`` draws the envs with MuJoCo's offscreen renderer
(``MUJOCO_GL=egl`` or ``osmesa`` without a display): one ``(height, width, 3)`` uint8 frame for
:class:`GymEnv`, a tuple of one per env for :class:`GymVectorEnv`.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import mujoco
import numpy as np
import torch
from gymnasium.error import ClosedEnvironmentError
from gymnasium.vector import AutoresetMode, VectorEnv

from worldloop.envs.batched_env import BatchedEnv

RENDER_MODES = ["rgb_array"]


def _check_render_mode(render_mode: str | None) -> str | None:
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES} or None, got {render_mode!r}")
    return render_mode


_GL_ERROR: str | None = None


def _renderer(m: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
    """A ``mujoco.Renderer``; a failed OpenGL setup is reported once and not retried (a second
    attempt can abort the process)."""
    global _GL_ERROR
    if _GL_ERROR is None:
        try:
            return mujoco.Renderer(m, height, width)
        except Exception as e:
            _GL_ERROR = str(e)
    raise RuntimeError(
        f"offscreen rendering failed ({_GL_ERROR}): MuJoCo picks its OpenGL platform when it is first "
        "imported; without a display set MUJOCO_GL=egl (or osmesa) before that, or import worldloop "
        "before mujoco (it sets that default)"
    )


class _Frames:
    """MuJoCo offscreen frames of a :class:`BatchedEnv`'s envs (the renderer is made on first use)."""

    def __init__(self, env: BatchedEnv, width: int = 480, height: int = 360) -> None:
        self.env, self.width, self.height = env, width, height
        self._renderer: mujoco.Renderer | None = None
        self._data = mujoco.MjData(env.mj_model)

    def __call__(self, env_ids: Sequence[int]) -> list[np.ndarray]:
        m = self.env.mj_model
        if self._renderer is None:
            self._renderer = _renderer(m, self.height, self.width)
        qpos = self.env.qpos.detach().double().cpu().numpy()
        frames = []
        for i in env_ids:
            self._data.qpos[:] = qpos[i]
            mujoco.mj_forward(m, self._data)
            self._renderer.update_scene(self._data)
            frames.append(self._renderer.render().copy())
        return frames

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _spaces(env: BatchedEnv) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    n_obs = env.get_observations()["policy"].shape[-1]
    clip = env.cfg.action_clip
    return (
        gym.spaces.Box(-np.inf, np.inf, (n_obs,), np.float32),
        gym.spaces.Box(-clip, clip, (env.action_dim,), np.float32),
    )


def _seed(seed: int | Sequence[int | None] | None, num_envs: int) -> int | None:
    """gymnasium's vector seeds to the env's one generator seed: an int, or ``[s, s + 1, ...]`` (what
    gymnasium derives from ``s``). Other lists cannot be honoured, as every env draws from one generator."""
    if seed is None or isinstance(seed, (int, np.integer)):
        return None if seed is None else int(seed)
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"reset(seed=...): a list of seeds needs one per env ({num_envs}), got {len(seeds)}")
    if all(s is None for s in seeds):
        return None
    if all(isinstance(s, (int, np.integer)) for s in seeds) and seeds == list(range(seeds[0], seeds[0] + num_envs)):
        return int(seeds[0])
    raise ValueError(
        f"reset(seed={seeds}): worldloop draws every env from one generator, so it takes an int seed s "
        f"or the list [s, s + 1, ..., s + {num_envs - 1}] gymnasium derives from it; pass seed=s"
    )


class GymVectorEnv(VectorEnv, gym.Env):
    """A ``gymnasium.vector.VectorEnv``. It also counts as a ``gymnasium.Env`` so that plain
    ``gymnasium.make(id, num_envs=N)`` returns it (worldloop envs are batched by nature)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": RENDER_MODES}

    def __init__(self, env: BatchedEnv, *, numpy: bool = True, render_mode: str | None = None) -> None:
        self.env = env
        self.numpy = numpy
        self.num_envs = env.num_envs
        self.render_mode = _check_render_mode(render_mode)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / env.step_dt)}
        self.single_observation_space, self.single_action_space = _spaces(env)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._frames = _Frames(env)

    def _out(self, x: torch.Tensor):
        return x.detach().cpu().numpy() if self.numpy else x

    def _check_open(self) -> None:
        if self.closed:
            raise ClosedEnvironmentError(f"{type(self).__name__} of {self.env.task_id!r} is closed")

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        """Reset every env; ``seed``: an int or ``[s, s + 1, ...]``; ``options`` are not supported."""
        self._check_open()
        if options:
            raise ValueError(f"reset(options=...) is not supported by worldloop envs, got {sorted(options)}")
        obs, _ = self.env.reset(seed=_seed(seed, self.num_envs))
        return self._out(obs["policy"]), self._with_masks({"critic": self._out(obs["critic"])})

    def step(self, actions):
        self._check_open()
        actions = torch.as_tensor(actions, dtype=torch.float32, device=self.env.device)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = terminated | truncated
        out_info = {
            "success": self._out(info["success"]),
            "critic": self._out(obs["critic"]),
            "final_obs": self._out(info["final_obs"]["policy"]),
        }
        out_info.update({f"reward/{k}": self._out(v) for k, v in info["reward_terms"].items()})
        out_info = self._with_masks(out_info)
        out_info["_final_obs"] = self._out(done)
        return self._out(obs["policy"]), self._out(reward), self._out(terminated), self._out(truncated), out_info

    def _with_masks(self, info: dict) -> dict:
        every = torch.ones(self.num_envs, dtype=torch.bool, device=self.env.device)
        return {**info, **{f"_{k}": self._out(every) for k in info}}

    def render(self) -> tuple[np.ndarray, ...] | None:
        self._check_open()
        return None if self.render_mode is None else tuple(self._frames(range(self.num_envs)))

    def close_extras(self, **kwargs) -> None:
        self._frames.close()
        self.env.close()


class GymEnv(gym.Env):
    """One worldloop env with gymnasium's single-env contract (``check_env`` passes).

    Observations are the ``policy`` group ``(n,)`` float32; ``info`` holds ``success``, the
    ``critic`` group and the unweighted ``reward/<term>`` values. The env does not reset itself:
    after ``terminated or truncated`` the observation is the episode's last and ``reset`` starts the
    next one."""

    metadata = {"render_modes": RENDER_MODES}

    def __init__(self, env: BatchedEnv, *, render_mode: str | None = None) -> None:
        if env.num_envs != 1:
            raise ValueError(f"GymEnv views one env; got a BatchedEnv of {env.num_envs} (use GymVectorEnv)")
        self.env = env
        self.render_mode = _check_render_mode(render_mode)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / env.step_dt)}
        self.observation_space, self.action_space = _spaces(env)
        self._frames = _Frames(env)
        self._last_obs: np.ndarray | None = None
        self.closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise ClosedEnvironmentError(f"{type(self).__name__} of {self.env.task_id!r} is closed")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._check_open()
        super().reset(seed=seed)
        if options:
            raise ValueError(f"reset(options=...) is not supported by worldloop envs, got {sorted(options)}")
        obs, _ = self.env.reset(seed=seed)
        self._last_obs = obs["policy"][0].detach().cpu().numpy()
        return self._last_obs, {"critic": obs["critic"][0].detach().cpu().numpy()}

    def step(self, action):
        self._check_open()
        actions = torch.as_tensor(np.asarray(action, dtype=np.float32), device=self.env.device).reshape(1, -1)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = bool(terminated[0] | truncated[0])
        # The batched env has already started the next episode where one ended: report the last frame.
        obs = info["final_obs"] if done else obs
        self._last_obs = obs["policy"][0].detach().cpu().numpy()
        out_info = {
            "success": bool(info["success"][0]),
            "critic": obs["critic"][0].detach().cpu().numpy(),
            **{f"reward/{k}": float(v[0]) for k, v in info["reward_terms"].items()},
        }
        return self._last_obs, float(reward[0]), bool(terminated[0]), bool(truncated[0]), out_info

    def render(self) -> np.ndarray | None:
        self._check_open()
        return None if self.render_mode is None else self._frames([0])[0]

    def close(self) -> None:
        if not self.closed:
            self._frames.close()
            self.env.close()
            self.closed = True
