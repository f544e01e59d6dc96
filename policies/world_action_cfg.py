"""Settings of world-action PPO (``worldloop train --policy world-action``) and their rsl-rl form, and
of planning with the model (``worldloop play --plan``).

Kept apart from the model so the command line reads it without importing torch or rsl-rl.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

MODEL = "worldloop.policies.world_action:WorldActionModel"
CRITIC = "worldloop.policies.world_action:WorldActionCritic"
ALGORITHM = "worldloop.policies.world_action_ppo:WorldActionPPO"


@dataclass(kw_only=True)
class WorldActionCfg:
    """World-action model and its auxiliary loss; PPO's own settings stay in ``--agent.*``."""

    encoder_dims: tuple[int, ...] = (256,)
    """Hidden widths of the encoder observation -> latent."""
    latent_dim: int = 64
    """Width of the latent z (a multiple of ``simnorm``)."""
    actor_dims: tuple[int, ...] = (128, 64)
    """Hidden widths of the action head latent -> action."""
    simnorm: int = 8
    """SimNorm group size of the latent (TD-MPC2 uses 8); 0 for a plain latent."""
    dynamics_dims: tuple[int, ...] = (128,)
    """Hidden widths of each latent dynamics member f(z, a) -> z'."""
    ensemble_size: int = 5
    """Dynamics members (RWM uses 5); their disagreement is the planner's uncertainty."""
    head_dims: tuple[int, ...] = (128,)
    """Hidden widths of the reward, termination and decoder heads."""
    chunk_size: int = 1
    """Actions the action head predicts per step (more than 1 for behaviour cloning of chunks)."""
    share_encoder: bool = False
    """The critic reads the actor's latent (the encoder also learns from the value loss)."""
    critic_dims: tuple[int, ...] = (256, 128, 64)
    """Hidden widths of the critic (on the latent when ``share_encoder``, else on the critic observations)."""
    horizon: int = 5
    """K: steps of latent prediction per window (SPR uses 5, RWM 8)."""
    rho: float = 0.5
    """Per-step discount of the latent prediction loss (TD-MPC2's rho)."""
    target_tau: float = 0.0
    """EMA factor of the target encoder per optimizer step (SPR); 0: stop-gradient online encoder (TD-MPC2)."""
    dynamics_coef: float = 1.0
    """Weight of the latent prediction loss."""
    reward_coef: float = 0.5
    """Weight of the reward prediction loss."""
    termination_coef: float = 0.1
    """Weight of the termination prediction loss."""
    reconstruction_coef: float = 0.5
    """Weight of the observation reconstruction loss."""
    world_model_windows: int = 256
    """K-step windows per PPO mini-batch for the world-model loss (0: every entry of the mini-batch)."""
    critic_learning_rate: float | None = None
    """A fixed learning rate for the critic (its own Adam param group); default: PPO's, with its schedule. For
    PPO from a cloned actor (``--init``), whose small learning rate would leave the critic behind the returns."""
    bc_data: tuple[str, ...] = ()
    """Datasets (``worldloop collect``, this task) whose actions PPO's actor keeps being cloned to, with
    ``bc_coef``: PPO from a cloned model held near the demonstrations."""
    bc_coef: float = 0.0
    """Weight of that behaviour-cloning term: the MSE of the action mean against the dataset's actions, on
    ``world_model_windows`` frames per PPO mini-batch."""

    def apply(self, train_cfg: dict) -> dict:
        """An rsl-rl ``train_cfg`` for MLP PPO (``PPOCfg.to_rsl_rl()``) turned into world-action PPO:
        the same PPO settings, distribution and normalization, with this model and algorithm."""
        cfg = copy.deepcopy(train_cfg)
        actor, critic = cfg["actor"], cfg["critic"]
        cfg["algorithm"].update(
            class_name=ALGORITHM,
            horizon=self.horizon,
            rho=self.rho,
            target_tau=self.target_tau,
            dynamics_coef=self.dynamics_coef,
            reward_coef=self.reward_coef,
            termination_coef=self.termination_coef,
            reconstruction_coef=self.reconstruction_coef,
            world_model_windows=self.world_model_windows,
            critic_learning_rate=self.critic_learning_rate,
            bc_data=list(self.bc_data),
            bc_coef=self.bc_coef,
        )
        cfg["actor"] = {
            "class_name": MODEL,
            "encoder_dims": list(self.encoder_dims),
            "latent_dim": self.latent_dim,
            "hidden_dims": list(self.actor_dims),
            "dynamics_dims": list(self.dynamics_dims),
            "ensemble_size": self.ensemble_size,
            "head_dims": list(self.head_dims),
            "simnorm": self.simnorm,
            "chunk_size": self.chunk_size,
            "activation": actor.get("activation", "elu"),
            "obs_normalization": actor.get("obs_normalization", True),
            "distribution_cfg": actor["distribution_cfg"],
        }
        cfg["critic"] = {
            "class_name": CRITIC,
            "share_encoder": self.share_encoder,
            "latent_dim": self.latent_dim,
            "hidden_dims": list(self.critic_dims),
            "activation": critic.get("activation", "elu"),
            "obs_normalization": critic.get("obs_normalization", True),
        }
        return cfg


@dataclass(kw_only=True)
class PlanCfg:
    """MPPI planning with the world-action model (``worldloop play --plan``)."""

    horizon: int = 3
    """Actions per candidate sequence (TD-MPC2: 3)."""
    samples: int = 64
    """Gaussian candidate sequences per env and iteration (TD-MPC2: 512)."""
    policy_samples: int = 8
    """Candidates sampled from the policy's own Gaussian, rolled through the model (TD-MPC2: 24)."""
    elites: int = 8
    """Best candidates the sampling distribution is refit to (TD-MPC2: 64)."""
    iterations: int = 2
    """MPPI iterations per step (TD-MPC2: 6)."""
    noise_std: float = 0.3
    """Initial std of the Gaussian candidates around the policy's plan, in action units."""
    min_std: float = 0.05
    """Lower bound of the refit std."""
    temperature: float = 0.5
    """MPPI temperature on the scores of the elites."""
    uncertainty_coef: float = 1.0
    """Weight of the ensemble disagreement (std of the members' latents, mean over latent dims)."""
    gamma: float = 0.99
    """Discount of predicted rewards and the terminal value."""
