"""World-action model: one network that encodes the observation to a latent, acts from it and predicts
how the latent changes under an action.

    obs ──normalize──> encoder ──> z ──> action head ──> Gaussian over a_t   (PPO's actor)
                                   │
                                   ├──> dynamics ensemble f_e(z_t, a_t) -> z_{t+1}, e = 1..E
                                   ├──> reward head r(z_t, a_t), termination head d(z_t, a_t)
                                   └──> decoder z -> normalized obs

:class:`WorldActionModel` is an rsl-rl actor model (a :class:`rsl_rl.models.MLPModel` whose ``mlp``
reads the latent instead of the observation), so rsl-rl's ``OnPolicyRunner`` builds it from
``{"class_name": "worldloop.policies.world_action:WorldActionModel", ...}``, samples actions from it
and saves it in ``actor_state_dict`` with the world model inside. :class:`WorldActionCritic` is the
value model; with ``share_encoder`` it reads the actor's latent. :func:`world_model_loss` is the
auxiliary loss :class:`~worldloop.policies.world_action_ppo.WorldActionPPO` adds to PPO's.

References (read for the design, nothing copied):
    - TD-MPC2: Hansen, Su, Wang, "TD-MPC2: Scalable, Robust World Models for Continuous Control",
      ICLR 2024: SimNorm latent (groups of 8, softmax each), latent consistency loss discounted by
      ``rho`` per step against stop-gradient targets, reward from ``(z, a)``.
    - SPR: Schwarzer et al., "Data-Efficient Reinforcement Learning with Self-Predictive
      Representations", ICLR 2021: K = 5 step latent prediction as an auxiliary loss of an RL agent,
      targets from an EMA encoder.
    - RWM: Li, Krause, Hutter, "Robotic World Model", 2025: an ensemble of dynamics models trained
      in rsl_rl's runner, forecast horizon K = 8, disagreement as uncertainty.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rsl_rl.models import MLPModel  # noqa: TID253 - this module is imported only when training or loading a run
from rsl_rl.modules import MLP  # noqa: TID253
from tensordict import TensorDict
from torch import nn

from worldloop.policies.onnx_export import quiet_onnx_export

__all__ = [
    "DynamicsEnsemble",
    "SimNorm",
    "WorldActionCritic",
    "WorldActionModel",
    "WorldModelLoss",
    "window_masks",
    "world_model_loss",
]


class SimNorm(nn.Module):
    """Simplicial normalization (TD-MPC2, Sec. 3): the latent is split into groups of ``group`` values
    and each group goes through a softmax, so every latent lies on a product of simplices.
    ``group = 0`` leaves the latent unchanged. ``(..., n) -> (..., n)``, ``n`` a multiple of ``group``."""

    def __init__(self, group: int = 8) -> None:
        super().__init__()
        self.group = group

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.group <= 0:
            return z
        # exp / sum by hand: torch's CPU softmax over a last dimension of 8 is ~2x slower (fwd + bwd).
        z = z.unflatten(-1, [-1, self.group])
        z = (z - z.amax(-1, keepdim=True).detach()).exp()
        return (z / z.sum(-1, keepdim=True)).flatten(-2)


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers applied in one batched matmul: ``(E, B, n_in) -> (E, B, n_out)``."""

    def __init__(self, ensemble_size: int, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble_size, n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, n_out))
        bound = 1.0 / math.sqrt(n_in)  # nn.Linear's default (Kaiming uniform with a = sqrt(5))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class DynamicsEnsemble(nn.Module):
    """``E`` latent dynamics models ``z_{t+1} = f_e(z_t, a_t)``, MLPs evaluated together.

    ``forward(z, a)``: ``z`` ``(B, n_z)`` (the same latent for every member) or ``(E, B, n_z)`` (one per
    member, as in a multi-step rollout), ``a`` ``(B, n_a)`` or ``(E, B, n_a)``; returns ``(E, B, n_z)``."""

    def __init__(
        self, latent_dim: int, action_dim: int, hidden_dims: tuple[int, ...], ensemble_size: int, simnorm: int
    ) -> None:
        super().__init__()
        self.ensemble_size = ensemble_size
        dims = (latent_dim + action_dim, *hidden_dims)
        layers: list[nn.Module] = []
        for n_in, n_out in zip(dims[:-1], dims[1:], strict=True):
            layers += [EnsembleLinear(ensemble_size, n_in, n_out), nn.LayerNorm(n_out), nn.Mish()]
        layers.append(EnsembleLinear(ensemble_size, dims[-1], latent_dim))
        self.net = nn.Sequential(*layers)
        self.norm = SimNorm(simnorm)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        e = self.ensemble_size
        if z.dim() == 2:
            z = z.expand(e, *z.shape)
        if a.dim() == 2:
            a = a.expand(e, *a.shape)
        return self.norm(self.net(torch.cat((z, a), dim=-1)))


class WorldActionModel(MLPModel):
    """The actor of world-action PPO: encoder, Gaussian action head and the world model.

    rsl-rl calls it as ``WorldActionModel(obs, obs_groups, "actor", num_actions, **cfg)``; the actor's
    observation groups (``obs_groups["actor"]``, concatenated to ``n_obs`` values) are the world
    state the model predicts.

    Args:
        encoder_dims: hidden widths of the encoder ``n_obs -> latent_dim``.
        latent_dim: width of ``z`` (a multiple of ``simnorm``).
        hidden_dims: hidden widths of the action head ``latent_dim -> num_actions``.
        dynamics_dims: hidden widths of each dynamics member.
        ensemble_size: dynamics members ``E`` (RWM uses 5).
        head_dims: hidden widths of the reward, termination and decoder heads.
        simnorm: SimNorm group size (TD-MPC2 uses 8); 0 for a plain linear latent.
        chunk_size: ``H``, actions predicted per step by :meth:`action_chunk` (the executed first one is
            the Gaussian's mean; ``H - 1`` more from a linear head trained by behaviour cloning only).
        activation, obs_normalization, distribution_cfg: as for rsl-rl's ``MLPModel``.
    """

    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        *,
        encoder_dims: tuple[int, ...] | list[int] = (256,),
        latent_dim: int = 64,
        hidden_dims: tuple[int, ...] | list[int] = (128, 64),
        dynamics_dims: tuple[int, ...] | list[int] = (128,),
        ensemble_size: int = 5,
        head_dims: tuple[int, ...] | list[int] = (128,),
        simnorm: int = 8,
        chunk_size: int = 1,
        activation: str = "elu",
        obs_normalization: bool = True,
        distribution_cfg: dict | None = None,
    ) -> None:
        if simnorm and latent_dim % simnorm:
            raise ValueError(f"latent_dim ({latent_dim}) must be a multiple of simnorm ({simnorm}), or simnorm 0")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self._latent_width = latent_dim  # read by _get_latent_dim() inside MLPModel.__init__
        super().__init__(
            obs, obs_groups, obs_set, output_dim, hidden_dims, activation, obs_normalization, distribution_cfg
        )
        self.latent_dim = latent_dim
        self.action_dim = output_dim
        self.chunk_size = chunk_size
        self.encoder = nn.Sequential(MLP(self.obs_dim, latent_dim, list(encoder_dims), activation), SimNorm(simnorm))
        # Targets of the latent prediction loss: a copy of the encoder moved towards it by EMA
        # (WorldActionPPO's target_tau; 0 makes it the stop-gradient online encoder of TD-MPC2).
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.dynamics = DynamicsEnsemble(latent_dim, output_dim, tuple(dynamics_dims), ensemble_size, simnorm)
        self.reward_head = MLP(latent_dim + output_dim, 1, list(head_dims), activation)
        self.termination_head = MLP(latent_dim + output_dim, 1, list(head_dims), activation)
        self.decoder = MLP(latent_dim, self.obs_dim, list(head_dims), activation)
        self.chunk_head = nn.Linear(latent_dim, (chunk_size - 1) * output_dim) if chunk_size > 1 else None

    # ---- rsl-rl's model interface --------------------------------------------------------------
    def _get_latent_dim(self) -> int:
        return self._latent_width

    def get_latent(self, obs: TensorDict, masks: torch.Tensor | None = None, hidden_state=None) -> torch.Tensor:
        """``z``: ``(batch, latent_dim)`` from the actor's observation groups."""
        return self.encoder(self.normalize(self.obs_vector(obs)))

    def as_jit(self) -> nn.Module:
        return _ExportActor(self)

    def as_onnx(self, verbose: bool = False) -> nn.Module:
        return _ExportActor(self)

    # ---- the world model ---------------------------------------------------------------------
    def obs_vector(self, obs: TensorDict) -> torch.Tensor:
        """The actor's observation groups concatenated: ``(batch, n_obs)`` in the env's units."""
        return torch.cat([obs[g] for g in self.obs_groups], dim=-1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Observations ``(..., n_obs)`` to the normalized space the encoder and decoder use."""
        return self.obs_normalizer(x)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: ``(..., n_obs)`` back in the env's units."""
        if not self.obs_normalization:
            return x
        n = self.obs_normalizer
        return x * (n._std + n.eps) + n._mean

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., n_obs)`` normalized observations -> ``(..., latent_dim)``."""
        return self.encoder(x)

    def head_input(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return torch.cat((z, a.expand(*z.shape[:-1], a.shape[-1])), dim=-1)

    def predict_reward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Reward of taking ``a`` in ``z`` (in the units PPO learns from): ``(...,)``."""
        return self.reward_head(self.head_input(z, a)).squeeze(-1)

    def termination_logit(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Logit of the episode terminating after ``a`` in ``z`` (time limits excluded): ``(...,)``."""
        return self.termination_head(self.head_input(z, a)).squeeze(-1)

    def action_mean(self, z: torch.Tensor) -> torch.Tensor:
        """The Gaussian's mean from a latent: ``(..., latent_dim) -> (..., num_actions)``."""
        return self.mlp(z)

    def action_chunk(self, z: torch.Tensor) -> torch.Tensor:
        """The next ``H = chunk_size`` actions: ``(batch, latent_dim) -> (batch, H, num_actions)``; the
        first is the Gaussian's mean (the action PPO's ratio is taken on)."""
        first = self.mlp(z).unsqueeze(-2)
        if self.chunk_head is None:
            return first
        rest = self.chunk_head(z).reshape(*z.shape[:-1], self.chunk_size - 1, self.action_dim)
        return torch.cat((first, rest), dim=-2)

    def imagine(self, x: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Roll the world model forward from normalized observations ``x`` ``(B, n_obs)`` under
        ``actions`` ``(B, K, n_a)``. Returns ``z`` ``(E, B, K, latent)``, ``obs`` (decoded, normalized)
        ``(E, B, K, n_obs)``, ``reward`` ``(E, B, K)`` for the K transitions, ``termination``
        probabilities ``(E, B, K)``."""
        z = self.encode(x)
        zs, rs, ds = [], [], []
        for k in range(actions.shape[1]):
            a = actions[:, k]
            rs.append(self.predict_reward(z, a))
            ds.append(torch.sigmoid(self.termination_logit(z, a)))
            z = self.dynamics(z, a)
            zs.append(z)
        e = self.dynamics.ensemble_size
        reward = torch.stack([r.expand(e, -1) for r in rs], dim=-1)
        done = torch.stack([d.expand(e, -1) for d in ds], dim=-1)
        z_seq = torch.stack(zs, dim=2)
        return {"z": z_seq, "obs": self.decoder(z_seq), "reward": reward, "termination": done}

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """``target <- tau * target + (1 - tau) * online`` (SPR's EMA; ``tau = 0`` copies)."""
        for t, o in zip(self.target_encoder.parameters(), self.encoder.parameters(), strict=True):
            t.lerp_(o, 1.0 - tau)

    def world_model_parameters(self) -> list[nn.Parameter]:
        """Parameters of the world-model parts (dynamics, reward, termination, decoder) and the encoder."""
        mods = [self.encoder, self.dynamics, self.reward_head, self.termination_head, self.decoder]
        return [p for m in mods for p in m.parameters()]


class WorldActionCritic(MLPModel):
    """Value model of world-action PPO: rsl-rl's ``MLPModel`` on the critic's observations, or, with
    ``share_encoder``, a value head on the actor's latent ``z`` (the encoder then also learns from the
    value loss). :class:`~worldloop.policies.world_action_ppo.WorldActionPPO` connects a sharing critic
    to its actor before training."""

    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        *,
        share_encoder: bool = False,
        latent_dim: int = 64,
        hidden_dims: tuple[int, ...] | list[int] = (256, 128, 64),
        activation: str = "elu",
        obs_normalization: bool = True,
        distribution_cfg: dict | None = None,
    ) -> None:
        self.share_encoder = share_encoder
        self._latent_width = latent_dim
        super().__init__(
            obs, obs_groups, obs_set, output_dim, hidden_dims, activation, obs_normalization, distribution_cfg
        )
        self._actor: list[WorldActionModel] = []  # a plain list: the actor is not a submodule (saved once)

    def share_with(self, actor: WorldActionModel) -> None:
        """Read the latent of ``actor`` (whose encoder parameters the actor owns)."""
        if actor.latent_dim != self._latent_width:
            raise ValueError(f"critic latent_dim {self._latent_width} != actor latent_dim {actor.latent_dim}")
        self._actor = [actor]

    def _get_latent_dim(self) -> int:
        return self._latent_width if self.share_encoder else self.obs_dim

    def get_latent(self, obs: TensorDict, masks: torch.Tensor | None = None, hidden_state=None) -> torch.Tensor:
        if not self.share_encoder:
            return super().get_latent(obs, masks, hidden_state)
        if not self._actor:
            raise RuntimeError("WorldActionCritic(share_encoder=True) needs share_with(actor) before use")
        return self._actor[0].get_latent(obs)

    def update_normalization(self, obs: TensorDict) -> None:
        if not self.share_encoder:  # a sharing critic uses the actor's normalizer
            super().update_normalization(obs)


class _ExportActor(nn.Module):
    """The deterministic actor for ONNX and TorchScript: ``obs`` ``(batch, n_obs)`` -> ``actions``."""

    is_recurrent: bool = False

    def __init__(self, model: WorldActionModel) -> None:
        super().__init__()
        self.obs_normalizer = copy.deepcopy(model.obs_normalizer)
        self.encoder = copy.deepcopy(model.encoder)
        self.mlp = copy.deepcopy(model.mlp)
        self.input_size = model.obs_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.encoder(self.obs_normalizer(x)))

    @torch.jit.export
    def reset(self) -> None:
        pass

    def get_dummy_inputs(self) -> tuple[torch.Tensor]:
        return (torch.zeros(1, self.input_size),)

    @property
    def input_names(self) -> list[str]:
        return ["obs"]

    @property
    def output_names(self) -> list[str]:
        return ["actions"]


class WorldModelExport(nn.Module):
    """The world model for ONNX: ``obs`` ``(batch, n_obs)`` and ``actions`` ``(batch, H, n_a)`` ->
    ``obs_pred`` ``(batch, H, n_obs)`` (ensemble mean, env units), ``reward`` ``(batch, H)`` and
    ``disagreement`` ``(batch, H)`` (std of the members' latents, averaged over latent dims)."""

    def __init__(self, model: WorldActionModel, horizon: int) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).cpu().eval()
        self.horizon = horizon

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model.imagine(self.model.normalize(obs), actions)
        obs_pred = self.model.denormalize(out["obs"].mean(0))
        return obs_pred, out["reward"].mean(0), out["z"].std(0).mean(-1)

    def get_dummy_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(1, self.model.obs_dim), torch.zeros(1, self.horizon, self.model.action_dim)

    input_names = ["obs", "actions"]
    output_names = ["obs_pred", "reward", "disagreement"]


# ---- the world-model loss -------------------------------------------------------------------------
def window_masks(dones: torch.Tensor, starts: torch.Tensor, envs: torch.Tensor, horizon: int) -> torch.Tensor:
    """Which steps of K-step windows stay inside the episode they start in.

    Args:
        dones: ``(T, N)`` rollout ``dones`` (terminated or truncated after step t: observation t + 1
            then starts a new episode).
        starts: ``(B,)`` time index ``t`` of each window's first step.
        envs: ``(B,)`` env index of each window.
        horizon: ``K``.

    Returns:
        ``alive`` ``(B, K + 1)`` float: ``alive[:, j] = 1`` iff observation ``t + j`` exists in the rollout
        (``t + j <= T``; index ``T`` is the observation after the last step) and no episode ended in
        steps ``t .. t + j - 1``. Transition ``j`` (action, reward, termination at ``t + j``) is usable
        iff ``alive[:, j]`` and ``t + j < T``; latent target ``j`` iff ``alive[:, j]``.
    """
    steps = starts.unsqueeze(1) + torch.arange(horizon, device=dones.device)  # (B, K)
    pad = torch.ones(horizon, dones.shape[1], dtype=dones.dtype, device=dones.device)
    d = torch.cat((dones, pad))[steps, envs.unsqueeze(1)].float()  # past the rollout counts as an end
    # Observation T (after the last step) exists; T + 1 and later do not, which the padded dones encode.
    return torch.cumprod(torch.cat((torch.ones_like(d[:, :1]), 1.0 - d), dim=1), dim=1)


@dataclass
class WorldModelLoss:
    """The terms of :func:`world_model_loss` (scalars) and the K-step errors it measured."""

    total: torch.Tensor
    """Weighted sum, the term added to PPO's loss."""
    dynamics: torch.Tensor
    """rho-discounted latent prediction MSE (TD-MPC2's consistency loss)."""
    reward: torch.Tensor
    """Reward MSE (in the units PPO learns from)."""
    termination: torch.Tensor
    """Binary cross-entropy of the termination head."""
    reconstruction: torch.Tensor
    """MSE of the decoded ``z_t`` against the normalized observation."""
    latent_error: torch.Tensor
    """``(K,)`` latent MSE of the k-step prediction, k = 1..K (ensemble mean)."""
    obs_rmse: torch.Tensor
    """``(K,)`` RMSE of the decoded k-step prediction in the env's observation units."""


def world_model_loss(
    model: WorldActionModel,
    obs: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    alive: torch.Tensor,
    *,
    rho: float = 0.5,
    dynamics_coef: float = 1.0,
    reward_coef: float = 0.5,
    termination_coef: float = 0.1,
    reconstruction_coef: float = 0.5,
    metrics: bool = True,
) -> WorldModelLoss:
    """K-step world-model loss on a batch of windows.

    Args:
        obs: ``(B, K + 1, n_obs)`` observations in the env's units (normalized here).
        actions: ``(B, K, n_a)`` executed actions.
        rewards: ``(B, K)`` rewards of the K transitions (PPO's units, before time-out bootstrapping).
        terminated: ``(B, K)`` terminal transitions (not time limits).
        alive: ``(B, K + 1)`` from :func:`window_masks`: observation j is in the window's episode;
            transition j counts where ``alive[:, j] * alive_next`` says (see below).
        rho: per-step discount of the latent loss (TD-MPC2's ``rho``, 0.5).

    Transition ``j`` counts for the reward and termination losses iff ``alive[:, j]`` and its
    reward is known (``rewards`` is finite: windows past the end of a rollout pass NaN there).
    Latent targets ``j = 1..K`` count iff ``alive[:, j]``. Every loss is a mean over counted entries.
    ``metrics=False`` skips the K-step errors (``latent_error`` and ``obs_rmse`` are then empty).
    """
    b, k = actions.shape[:2]
    x = model.normalize(obs)
    z0 = model.encode(x[:, 0])
    with torch.no_grad():
        targets = model.target_encoder(x[:, 1:])  # (B, K, n_z)
    known = torch.isfinite(rewards)
    r_mask = alive[:, :k] * known.float()
    z_mask = alive[:, 1:]
    rewards = torch.nan_to_num(rewards)
    z = z0
    latent_err, r_err, d_err, preds = [], [], [], []
    z_head = z0
    for j in range(k):
        a = actions[:, j]
        # Heads read z0, then the ensemble's mean prediction (B, n_z): 1/E of the cost of every member.
        r_err.append((model.predict_reward(z_head, a) - rewards[:, j]).pow(2))
        logit = model.termination_logit(z_head, a)
        d_err.append(F.binary_cross_entropy_with_logits(logit, terminated[:, j].float(), reduction="none"))
        z = model.dynamics(z, a)  # (E, B, n_z)
        z_head = z.mean(0)
        latent_err.append((z - targets[:, j]).pow(2).mean(-1).mean(0))  # (B,)
        preds.append(z)
    latent_err = torch.stack(latent_err, 1)  # (B, K)
    discount = rho ** torch.arange(k, device=obs.device, dtype=obs.dtype)
    dynamics = (latent_err * z_mask * discount).sum() / (z_mask * discount).sum().clamp(min=1e-8)
    reward = (torch.stack(r_err, 1) * r_mask).sum() / r_mask.sum().clamp(min=1.0)
    termination = (torch.stack(d_err, 1) * r_mask).sum() / r_mask.sum().clamp(min=1.0)
    reconstruction = (model.decoder(z0) - x[:, 0]).pow(2).mean()
    total = (
        dynamics_coef * dynamics
        + reward_coef * reward
        + termination_coef * termination
        + reconstruction_coef * reconstruction
    )
    if not metrics:
        empty = obs.new_zeros(0)
        return WorldModelLoss(total, dynamics, reward, termination, reconstruction, empty, empty)
    with torch.no_grad():
        counts = z_mask.sum(0).clamp(min=1.0)
        latent_k = (latent_err * z_mask).sum(0) / counts
        pred_obs = model.denormalize(model.decoder(torch.stack(preds, 2).mean(0)))  # (B, K, n_obs)
        sq = (pred_obs - obs[:, 1:]).pow(2).mean(-1)
        obs_rmse = ((sq * z_mask).sum(0) / counts).sqrt()
    return WorldModelLoss(total, dynamics, reward, termination, reconstruction, latent_k, obs_rmse)


def export_world_model(model: WorldActionModel, path: str | Path, *, horizon: int = 5) -> Path:
    """Write the world model to ONNX (:class:`WorldModelExport`): inputs ``obs`` ``(batch, n_obs)`` and
    ``actions`` ``(batch, horizon, n_a)``; outputs ``obs_pred``, ``reward``, ``disagreement``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wm = WorldModelExport(model, horizon).eval()
    batch = torch.export.Dim("batch")
    with quiet_onnx_export():
        torch.onnx.export(
            wm,
            wm.get_dummy_inputs(),
            str(path),
            input_names=wm.input_names,
            output_names=wm.output_names,
            dynamic_shapes={"obs": {0: batch}, "actions": {0: batch}},
            opset_version=18,
        )
    return path
