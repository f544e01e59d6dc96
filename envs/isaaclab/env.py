"""`IsaacLabEnv`: an Isaac Lab 3.0 manager-based task behind worldloop's batched-env contract.

Isaac Lab runs kit-less (no Isaac Sim) on its Newton physics, on the CPU or a CUDA device. This
class builds one registered Isaac Lab task (``gymnasium`` id such as ``"Isaac-Cartpole"``) and
presents it as :class:`~worldloop.envs.batched_env.BatchedEnv` does, so the :class:`~worldloop.envs.loop.Loop`,
evaluation, benchmarking and PPO training (rsl-rl) drive it unchanged:

- ``obs``: Isaac Lab's observation groups (``obs["policy"]``; ``obs["critic"]`` is the task's
  ``critic`` group, or ``policy`` where it has none).
- ``reward`` ``(num_envs,)``: Isaac Lab's reward, ``step_dt * sum_k w_k f_k``. ``info["reward_terms"]``
  holds each term as ``step_dt * f_k`` (its unweighted value times the step, Isaac Lab's per-second
  weighting), so ``reward == sum(cfg.weights[k] * reward_terms[k])`` as on every worldloop task.
  Zero-weight terms are not evaluated by Isaac Lab and read 0. Where the task's curriculum changes a
  weight during training (``Isaac-Reach-Franka`` raises ``action_rate`` and ``joint_vel`` after 4,500
  steps), the terms stay unweighted and the reward follows Isaac Lab's current weights.
- ``terminated`` / ``truncated``: Isaac Lab's termination manager (``time_out`` terms are truncation).
- ``info["success"]``, evaluated on the state before any autoreset, in this order: a ``success_fn``
  given to the env (``worldloop.tasks.isaaclab`` gives one where Isaac Lab's own notion is too weak to
  measure learning); the task's ``success`` termination term where it has one (``Isaac-Reach-Franka``:
  the pose command reached); otherwise the stand-in *survived*: not terminated in this step, so at an
  episode's last step it is true exactly for episodes that timed out without an early termination
  (Isaac Lab's own ``survival_success_rate`` metric).
- ``info["final_obs"]``: the observation before the autoreset (Isaac Lab's ``compute_final_obs``).
- Partial autoreset happens inside Isaac Lab's ``step``, as worldloop's contract has it.

Randomization lives in Isaac Lab's event manager (``cfg.randomization`` must stay empty;
``env.randomizer.events()`` reads its terms back: mode, function, parameters);
``qpos``/``qvel`` are the robot articulation's joint positions and velocities in Isaac Lab's joint
order (``qpos_names``), not MuJoCo's; :meth:`set_state` is not available. ``env.task`` is a view
(:class:`IsaacLabTaskView`) for consumers that read observation sizes or ask for an expert.

Isaac Lab is imported when the first env is built; it needs Python 3.12 and its own environment
(README, "Isaac Lab backend").
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from worldloop.envs.batched_env import StepTiming, _env_method, check_actions, check_cfg
from worldloop.envs.randomization import RandTerm
from worldloop.envs.task import TaskCfg

SETUP = 'python3.12 -m venv .venv-isaaclab && .venv-isaaclab/bin/pip install -e ".[isaaclab]" pytest'
"""The set-up command of the README's "Isaac Lab backend" section, run in the repository (any Python 3.12;
``WORLDLOOP_ISAACLAB_ENV`` tells ``.ci/run`` another environment folder)."""

PHYSICS = ("newton_mjwarp", "newton_kamino", "physx", "isaacsim_physx", "ovphysx")
"""Isaac Lab 3.0 physics presets; the Newton ones run kit-less from wheels, the PhysX ones need
runtimes that are not wheels (Isaac Sim, ``ovphysx``)."""


def import_isaaclab():
    """Import ``isaaclab_tasks`` (registers Isaac Lab's tasks with gymnasium) and return it.

    Raises:
        ImportError: Isaac Lab is not installed here; the message names the extra and the set-up command.
    """
    try:
        import isaaclab_tasks
    except ImportError as e:
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        raise ImportError(
            f"the isaaclab backend needs Isaac Lab 3.0 (`pip install 'worldloop[isaaclab]'`), which needs Python 3.12 "
            f"(this is Python {py}, {e}). Create its environment in a worldloop checkout with: {SETUP} "
            "(README, 'Isaac Lab backend')"
        ) from None
    return isaaclab_tasks


@dataclass(kw_only=True)
class IsaacLabCfg(TaskCfg):
    """Settings of an Isaac Lab task run through worldloop. Each Isaac Lab task gets a subclass whose
    defaults are that task's own (``worldloop.make("isaaclab:<id>")`` builds it)."""

    scene: str = ""
    """The Isaac Lab task (gymnasium id, e.g. ``Isaac-Cartpole``) whose scene and managers are built."""
    decimation: int = 2
    """Physics steps per policy step (Isaac Lab's ``decimation``)."""
    episode_length_s: float = 5.0
    """[s] episodes are truncated after this much simulated time (Isaac Lab's ``episode_length_s``)."""
    action_clip: float = 100.0
    """Actions are clipped to ``[-action_clip, action_clip]`` before Isaac Lab's action manager scales them
    (Isaac Lab's own scripts do not clip; 100 leaves any policy's actions as they are)."""
    weights: dict[str, float] = field(default_factory=dict)
    """Weight of each term of Isaac Lab's reward manager (its ``RewardTermCfg.weight``), by term name."""
    randomization: dict[str, RandTerm] = field(default_factory=dict)
    """Must stay empty: Isaac Lab tasks randomize through their own event manager."""
    physics: str = "newton_mjwarp"
    """Isaac Lab physics preset (``physics=`` of its scripts): newton_mjwarp, newton_kamino; PhysX presets
    need Isaac Sim or ovphysx runtimes."""
    asset_root: str = ""
    """Local folder holding Isaac Lab's assets (its ``Isaac/IsaacLab/...`` tree); default the
    ``ISAACSIM_ASSET_ROOT`` environment variable, else Isaac Lab's cloud bucket (fetched at run time)."""


def check_isaaclab_cfg(cfg: IsaacLabCfg) -> IsaacLabCfg:
    """Refuse settings the env cannot run (as :func:`~worldloop.envs.batched_env.check_cfg`, plus these).

    Raises:
        ValueError: a non-empty ``randomization``, an unknown ``physics`` preset, or what ``check_cfg`` refuses.
    """
    check_cfg(cfg)
    if cfg.randomization:
        raise ValueError(
            f"{type(cfg).__name__}.randomization must be empty: Isaac Lab tasks randomize through their event "
            f"manager (its EventCfg terms), got {sorted(cfg.randomization)}"
        )
    if cfg.physics not in PHYSICS:
        raise ValueError(f"{type(cfg).__name__}.physics must be one of {list(PHYSICS)}, got {cfg.physics!r}")
    return cfg


# ------------------------------------------------------------------ assets
def _walk_usd_paths(obj: Any, where: str, seen: set[int], out: list[tuple[Any, str, str]]) -> None:
    """Collect ``(owner, attribute, cfg path)`` of every ``usd_path`` string in an Isaac Lab config tree."""
    if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool, torch.Tensor)):
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        for k, v in obj.items():
            _walk_usd_paths(v, f"{where}[{k!r}]", seen, out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _walk_usd_paths(v, f"{where}[{i}]", seen, out)
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name, None)
            if f.name == "usd_path" and isinstance(v, str):
                out.append((obj, f.name, f"{where}.usd_path"))
            else:
                _walk_usd_paths(v, f"{where}.{f.name}", seen, out)


_REACHABLE: dict[str, str | None] = {}


def _unreachable(url: str, timeout: float = 3.0) -> str | None:
    """Why the host of ``url`` cannot be reached (``None`` if a HEAD request is answered); cached per host."""
    host = url.split("/")[2] if "://" in url else url
    if host not in _REACHABLE:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            _REACHABLE[host] = None
        except urllib.error.HTTPError:  # the server answered: the asset's own absence is Isaac Lab's to report
            _REACHABLE[host] = None
        except (urllib.error.URLError, OSError) as e:
            _REACHABLE[host] = str(getattr(e, "reason", e))
    return _REACHABLE[host]


def resolve_assets(env_cfg: Any, asset_root: str = "") -> list[str]:
    """Point the config's USD assets at ``asset_root`` (or ``ISAACSIM_ASSET_ROOT``) and check they can be
    had, in seconds rather than after Isaac Lab's minute of download retries. Returns the asset paths.

    Raises:
        FileNotFoundError: an asset missing under a local root, or a remote one whose host does not answer;
            the message names the asset, its config field and ``ISAACSIM_ASSET_ROOT``.
    """
    from isaaclab.utils import assets

    imported_root = assets.NUCLEUS_ASSET_ROOT_DIR
    root = (asset_root or os.environ.get("ISAACSIM_ASSET_ROOT", "")).rstrip("/\\")
    found: list[tuple[Any, str, str]] = []
    _walk_usd_paths(env_cfg.scene, "scene", set(), found)
    paths = []
    fix = (
        "; set ISAACSIM_ASSET_ROOT (or --env.asset-root) to a local folder holding Isaac Lab's assets "
        "(`worldloop isaaclab-assets --out DIR` writes stand-ins for Isaac-Cartpole and Isaac-Reach-Franka)"
    )
    for owner, attr, where in found:
        path = getattr(owner, attr)
        if root and path.startswith(imported_root) and root != imported_root:
            path = root + path[len(imported_root) :]
            setattr(owner, attr, path)
        paths.append(path)
        if "://" in path:
            why = _unreachable(path)
            if why is not None:
                raise FileNotFoundError(
                    f"Isaac Lab asset {path} ({where}) is downloaded at run time and its host does not answer "
                    f"({why}){fix}"
                )
        elif not Path(path).is_file():
            source = f"asset root {root!r}" if root else "ISAACSIM_ASSET_ROOT unset"
            raise FileNotFoundError(f"Isaac Lab asset {path} ({where}) not found ({source}){fix}")
    return paths


# ------------------------------------------------------------------ the env
class _EventRandomization:
    """``env.randomizer`` of an Isaac Lab task. Isaac Lab randomizes through its event manager, whose terms
    are functions with parameters, not worldloop terms (no per-env draw to pin, sweep, save or widen), so
    ``terms``, :meth:`values` and :meth:`ranges` are empty and :meth:`physical`, :meth:`columns` and
    :meth:`set` refuse every name; :meth:`events` reads back what the event manager does."""

    def __init__(self, event_manager: Any = None) -> None:
        self._events = event_manager

    @property
    def terms(self) -> dict:
        return {}

    def ranges(self) -> dict:
        return {}

    def values(self) -> dict:
        return {}

    def events(self) -> dict[str, dict[str, Any]]:
        """Isaac Lab's event terms: ``{name: {"mode": "startup" | "reset" | "interval" | ..., "function":
        str, "physical": bool, "params": {...}}}``. ``physical``: the function changes a physical parameter
        (Isaac Lab's ``randomize_*`` terms: masses, friction, gains, ...) rather than resetting a state;
        ``params`` as configured (a scene entity as ``{"asset", "joint_names", "body_names"}``; ranges in the
        function's units)."""
        if self._events is None:
            return {}
        out = {}
        for mode, names in self._events.active_terms.items():
            for name in names:
                cfg = self._events.get_term_cfg(name)
                func = getattr(cfg.func, "__name__", type(cfg.func).__name__)
                physical = func.startswith("randomize_") and "visual" not in func
                params = {k: _describe(v) for k, v in (cfg.params or {}).items()}
                out[name] = {"mode": mode, "function": func, "physical": physical, "params": params}
        return out

    def _refuse(self, name: str) -> KeyError:
        return KeyError(
            f"no randomization term {name!r}: Isaac Lab tasks randomize through their event manager; its terms "
            f"{sorted(self.events())} are read back with env.randomizer.events()"
        )

    def physical(self, name: str) -> torch.Tensor:
        """Refused: there are no worldloop terms (:meth:`events` describes Isaac Lab's).

        Raises:
            KeyError: always; the message names the event terms."""
        raise self._refuse(name)

    def columns(self, name: str) -> list[str]:
        """Refused as :meth:`physical`."""
        raise self._refuse(name)

    def set(self, name: str, value: Any, mask: torch.Tensor | None = None) -> None:
        """Refused as :meth:`physical`."""
        raise self._refuse(name)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def update_curriculum(self, success: float | None) -> dict:
        return {}

    def seed(self, seed: int) -> None:
        pass


def _describe(value: Any) -> Any:
    """An event term parameter as plain data (JSON-able)."""
    if hasattr(value, "name") and hasattr(value, "joint_names") and hasattr(value, "body_names"):
        names = {"joint_names": _describe(value.joint_names), "body_names": _describe(value.body_names)}
        return {"asset": value.name, **names}
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


class IsaacLabTaskView:
    """What consumers read from ``env.task`` (datasets: observation sizes, expert, description): an Isaac
    Lab task has its observations in its observation manager and no scripted expert."""

    robot_type = "isaaclab"
    """``info.json``'s ``robot_type`` of datasets collected from Isaac Lab tasks."""

    def __init__(self, env: IsaacLabEnv) -> None:
        self._env = env
        self.__doc__ = f"Isaac Lab's {env.cfg.scene} (kit-less, {env.cfg.physics} physics)."

    def observe(self) -> dict[str, torch.Tensor]:
        """The observation groups of the current state (Isaac Lab's observation manager, noise included)."""
        return self._env._groups(self._env.unwrapped.observation_manager.compute())

    @classmethod
    def has_expert(cls) -> bool:
        return False

    def expert(self) -> torch.Tensor:
        raise NotImplementedError(f"{self._env.task_id} has no scripted expert")


class IsaacLabEnv:
    """``num_envs`` copies of an Isaac Lab 3.0 manager-based task, stepped as one batch (module docstring).

    Args:
        cfg: an :class:`IsaacLabCfg` (``cfg.scene`` names the Isaac Lab task).
        num_envs: envs stepped together (>= 1).
        device: torch device of every tensor and of Isaac Lab's simulation; default ``cuda`` when
            available, else ``cpu``.
        seed: Isaac Lab's seed (its resets and event terms).
        task_id: the id the env was made under, used in messages and saved configs.
        success_fn: ``fn(isaaclab_env, terminated) -> (num_envs,) bool``, the task's success, called after
            Isaac Lab's terminations and before its autoreset; default the ``success`` termination term or
            *survived* (module docstring).

    Raises:
        ImportError: Isaac Lab is not installed (the message says how to set it up).
        KeyError: an Isaac Lab task id that is not registered, or a ``weights`` key that names no reward term.
        ValueError: settings refused by :func:`check_isaaclab_cfg`, or a task that is not manager-based.
        FileNotFoundError: a USD asset that cannot be had (:func:`resolve_assets`).
    """

    backend_name = "isaaclab"

    def __init__(
        self,
        cfg: IsaacLabCfg,
        *,
        num_envs: int = 64,
        device: str | torch.device | None = None,
        seed: int = 0,
        task_id: str | None = None,
        success_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        check_isaaclab_cfg(cfg)
        import_isaaclab()
        import gymnasium as gym
        from isaaclab.envs import ManagerBasedRLEnv
        from isaaclab_tasks.utils import parse_env_cfg

        self.cfg = cfg
        self.task_id = task_id or f"isaaclab:{cfg.scene}"
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.num_envs = num_envs
        self.seed = seed

        dev = "cuda:0" if self.device.type == "cuda" and self.device.index is None else str(self.device)
        env_cfg = parse_env_cfg(cfg.scene, device=dev, num_envs=num_envs, overrides=[f"physics={cfg.physics}"])
        resolve_assets(env_cfg, cfg.asset_root)
        env_cfg.seed = seed
        env_cfg.decimation = cfg.decimation
        env_cfg.sim.render_interval = cfg.decimation
        env_cfg.episode_length_s = cfg.episode_length_s
        env_cfg.compute_final_obs = True
        terms = reward_weights(env_cfg)
        unknown = sorted(set(cfg.weights) - set(terms))
        if unknown:
            raise KeyError(f"{self.task_id}: weights {unknown} name no reward term; terms: {', '.join(terms)}")
        for name, w in cfg.weights.items():
            getattr(env_cfg.rewards, name).weight = float(w)

        env = gym.make(cfg.scene, cfg=env_cfg).unwrapped
        if not isinstance(env, ManagerBasedRLEnv):
            env.close()
            raise ValueError(f"{cfg.scene} is a {type(env).__name__}: only manager-based Isaac Lab tasks are supported")
        self.unwrapped = env
        """The Isaac Lab ``ManagerBasedRLEnv``."""
        self.step_dt: float = float(env.step_dt)
        """[s] simulated time per policy step."""
        self.max_episode_length: int = int(env.max_episode_length)
        """Policy steps per episode."""
        self.action_dim: int = int(env.action_manager.total_action_dim)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.randomizer = _EventRandomization(env.event_manager)
        """No worldloop terms; ``randomizer.events()`` reads back Isaac Lab's event terms."""
        self.timing = StepTiming()
        """Time spent in ``step``; ``physics_s`` is Isaac Lab's whole step (physics and its managers)."""
        self.actions = torch.zeros(num_envs, self.action_dim, device=self.device)
        self.prev_actions = torch.zeros_like(self.actions)
        self.ctrl = self.actions
        """``(num_envs, action_dim)`` what Isaac Lab's action manager received (it maps them to joint commands)."""
        self.num_physics_resets = torch.zeros((), dtype=torch.long, device=self.device)

        self._term_names: list[str] = list(env.reward_manager.active_terms)
        self._term_weights: list[float] = []
        self._term_scale = torch.zeros(len(self._term_names), device=self.device)
        tm = env.termination_manager
        if success_fn is None and "success" in tm.active_terms:
            success_fn = lambda e, terminated: e.termination_manager.get_term("success")  # noqa: E731
        if success_fn is None:
            success_fn = lambda e, terminated: ~terminated  # noqa: E731
        self._success = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        compute = tm.compute

        def compute_then_success():
            # Isaac Lab resets finished envs right after its terminations: read success before that.
            out = compute()
            self._success.copy_(success_fn(env, tm.terminated))
            return out

        tm.compute = compute_then_success
        self._robot = env.scene["robot"] if "robot" in env.scene.keys() else None
        self.qpos_names: list[str] = list(self._robot.joint_names) if self._robot is not None else []
        """Names of the ``qpos``/``qvel`` columns: the robot's joints, Isaac Lab's order."""
        self.nq = self.nv = len(self.qpos_names)
        self.task = IsaacLabTaskView(self)
        self._ep_return = torch.zeros(num_envs, device=self.device)
        self._ep_len = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._ep_terms = torch.zeros(num_envs, len(self._term_names), device=self.device)
        self._stats: dict[str, torch.Tensor] = {}
        self._obs: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ state
    @property
    def episode_length_buf(self) -> torch.Tensor:
        """``(num_envs,)`` long: policy steps into each episode (Isaac Lab's buffer: writing it moves time-outs)."""
        return self.unwrapped.episode_length_buf

    @property
    def qpos(self) -> torch.Tensor:
        """``(num_envs, num_joints)`` joint positions of the ``robot`` articulation, Isaac Lab's joint order."""
        return self._robot.data.joint_pos.torch

    @property
    def qvel(self) -> torch.Tensor:
        """``(num_envs, num_joints)`` joint velocities of the ``robot`` articulation, Isaac Lab's joint order."""
        return self._robot.data.joint_vel.torch

    def _groups(self, obs: dict) -> dict[str, torch.Tensor]:
        policy = obs["policy"]
        if not isinstance(policy, torch.Tensor):
            raise ValueError(f"{self.task_id}: observation group 'policy' is not concatenated into one tensor")
        return {"policy": policy, "critic": obs.get("critic", policy)}

    # ------------------------------------------------------------------ reset / step
    @_env_method
    def reset(self, seed: int | None = None) -> tuple[dict[str, torch.Tensor], dict]:
        """Reset every env. Returns ``(obs, info)``."""
        if seed is not None:
            self.generator.manual_seed(seed)
        obs, _ = self.unwrapped.reset(seed=seed)
        self._clear(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        self._obs = self._groups(obs)
        return self._obs, {}

    def get_observations(self) -> dict[str, torch.Tensor]:
        """The current observation groups (resets the envs first if never reset)."""
        if self._obs is None:
            self.reset()
        return self._obs

    def set_state(self, qpos, qvel, env_ids=None):
        """Not available: Isaac Lab tasks reset through their event manager.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(f"{self.task_id}: set_state is not available on the isaaclab backend")

    def _clear(self, mask: torch.Tensor) -> None:
        keep = ~mask
        self._ep_return *= keep
        self._ep_len *= keep
        self._ep_terms *= keep.unsqueeze(-1)
        self.actions *= keep.unsqueeze(-1)
        self.prev_actions *= keep.unsqueeze(-1)

    @_env_method
    def step(self, actions: torch.Tensor):
        """Advance every env by one policy step; see the module docstring for the contract.

        Raises:
            ValueError: actions of the wrong shape, or with NaN or inf.
        """
        t0 = time.perf_counter()
        actions = self._check_actions(actions)
        self.prev_actions.copy_(self.actions)
        self.actions.copy_(actions.clamp(-self.cfg.action_clip, self.cfg.action_clip))
        env = self.unwrapped
        t1 = time.perf_counter()
        obs, reward, terminated, truncated, extras = env.step(self.actions)
        self.timing.physics_s += time.perf_counter() - t1
        terms_t = env.reward_manager._step_reward * self._unweighting()
        terms = {k: terms_t[:, i] for i, k in enumerate(self._term_names)}
        success = self._success.clone()
        done = terminated | truncated
        obs = self._groups(obs)
        final_obs = self._groups(extras["final_obs"]) if "final_obs" in extras else obs
        extras.pop("final_obs", None)

        self._ep_return += reward
        self._ep_len += 1
        self._ep_terms += terms_t
        d = done.float()
        add = {
            "episodes": d.sum(),
            "return": (self._ep_return * d).sum(),
            "length": (self._ep_len.float() * d).sum(),
            "success": (success.float() * d).sum(),
        }
        sums = (self._ep_terms * d.unsqueeze(-1)).sum(0)
        add.update({f"term/{k}": sums[i] for i, k in enumerate(self._term_names)})
        for k, v in add.items():
            self._stats[k] = self._stats.get(k, 0.0) + v
        self._clear(done)
        self._obs = obs
        info = {
            "success": success,
            "reward_terms": terms,
            "final_obs": final_obs,
            "time_outs": truncated & ~terminated,
        }
        self.timing.steps += 1
        self.timing.total_s += time.perf_counter() - t0
        return obs, reward.clone(), terminated.clone(), truncated.clone(), info

    def _unweighting(self) -> torch.Tensor:
        """``(num_terms,)`` factors turning Isaac Lab's weighted step rewards into unweighted terms times
        ``step_dt`` (0 for zero-weight terms). Recomputed when a curriculum term has changed a weight."""
        rm = self.unwrapped.reward_manager
        weights = [float(rm.get_term_cfg(n).weight) for n in self._term_names]
        if weights != self._term_weights:
            w = torch.tensor(weights, device=self.device)
            self._term_scale = torch.where(w != 0, self.step_dt / torch.where(w != 0, w, 1.0), 0.0)
            self._term_weights = weights
        return self._term_scale

    def _check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return check_actions(self, actions)

    # ------------------------------------------------------------------ episode statistics
    def pop_episode_stats(self) -> dict[str, float]:
        """Means over episodes finished since the last call: ``return``, ``length`` (steps), ``success``
        (rate at the final step), ``term/<name>`` (per-episode sum of each reward term), plus
        ``episodes`` (count) and ``physics_resets`` (always 0 here)."""
        stats = {k: float(v) for k, v in self._stats.items()}
        self._stats = {}
        n = stats.get("episodes", 0.0)
        out = {"episodes": n, "physics_resets": 0.0}
        if n > 0:
            out.update({k: v / n for k, v in stats.items() if k not in out})
        return out

    def close(self) -> None:
        self.unwrapped.close()


def reward_weights(env_cfg: Any) -> dict[str, float]:
    """``{term name: weight}`` of an Isaac Lab env config's reward terms (unset terms left out)."""
    out = {}
    for f in dataclasses.fields(env_cfg.rewards):
        term = getattr(env_cfg.rewards, f.name)
        if term is not None and hasattr(term, "weight"):
            out[f.name] = float(term.weight)
    return out
