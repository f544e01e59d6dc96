"""PPO plus a K-step world-model loss, as an rsl-rl algorithm class.

rsl-rl's ``OnPolicyRunner`` resolves ``{"algorithm": {"class_name":
"worldloop.policies.world_action_ppo:WorldActionPPO", ...}}`` and trains it like its own PPO: the
runner, rollout storage, returns, checkpoints and logger are rsl-rl's. What this subclass adds:

- it keeps the rollout's raw rewards, terminations and the observation after the last step (rsl-rl's
  storage holds rewards with time-out bootstrapping folded in, and no final observation);
- every PPO mini-batch also trains the world model on K-step windows starting at the mini-batch's
  ``[time, env]`` entries, windows that cross an episode end masked out
  (:func:`~worldloop.policies.world_action.window_masks`); the two losses share one optimizer step;
- the loss dict it returns (rsl-rl writes it to tensorboard as ``Loss/<key>``) holds PPO's terms,
  each world-model term and the K-step prediction errors ``kstep_latent_k<j>`` and
  ``kstep_obs_rmse_k<j>`` (observation units).
"""

from __future__ import annotations

from itertools import chain

import torch
import torch.nn as nn
from rsl_rl.algorithms import PPO  # noqa: TID253 - imported only when training
from tensordict import TensorDict

from worldloop.policies.runner import own_critic_parameters
from worldloop.policies.world_action import WorldActionCritic, WorldActionModel, window_masks, world_model_loss

__all__ = ["WorldActionPPO"]


class WorldActionPPO(PPO):
    """rsl-rl PPO whose actor is a :class:`WorldActionModel`, with the world-model loss added.

    Args (beyond PPO's):
        horizon: ``K``, steps of latent prediction per window (SPR: 5, RWM: 8).
        rho: per-step discount of the latent loss (TD-MPC2: 0.5).
        target_tau: EMA factor of the target encoder after every optimizer step (SPR); 0 uses the online
            encoder with stopped gradients (TD-MPC2).
        dynamics_coef, reward_coef, termination_coef, reconstruction_coef: weights of the world-model
            loss terms relative to PPO's loss.
        world_model_windows: windows per mini-batch the world-model loss uses (a random subset of the
            mini-batch's entries; 0 uses them all). Sets the learner's extra cost.
        critic_learning_rate: a fixed Adam learning rate for the critic's own parameters (its param group);
            ``None``: the critic follows PPO's learning rate and schedule, as in rsl-rl.
        bc_data, bc_coef: datasets of demonstrations and the weight of a behaviour-cloning term (MSE of the
            action mean against their actions, on ``world_model_windows`` random frames per mini-batch, logged
            as ``Loss/bc``) added to PPO's loss; ``bc_coef`` 0 leaves PPO as it is.
    """

    actor: WorldActionModel

    def __init__(
        self,
        actor: WorldActionModel,
        critic: nn.Module,
        storage,
        *,
        horizon: int = 5,
        rho: float = 0.5,
        target_tau: float = 0.0,
        dynamics_coef: float = 1.0,
        reward_coef: float = 0.5,
        termination_coef: float = 0.1,
        reconstruction_coef: float = 0.5,
        world_model_windows: int = 256,
        critic_learning_rate: float | None = None,
        bc_data: list[str] | tuple[str, ...] = (),
        bc_coef: float = 0.0,
        **ppo_kwargs,
    ) -> None:
        if not isinstance(actor, WorldActionModel):
            raise TypeError(f"WorldActionPPO needs a WorldActionModel actor, got {type(actor).__name__}")
        if ppo_kwargs.get("rnd_cfg") or ppo_kwargs.get("symmetry_cfg"):
            raise ValueError("WorldActionPPO supports neither RND nor symmetry augmentation")
        if isinstance(critic, WorldActionCritic) and critic.share_encoder:
            critic.share_with(actor)
        super().__init__(actor, critic, storage, **ppo_kwargs)
        # One optimizer over the unique parameters (a sharing critic reads the actor's encoder).
        params = list(dict.fromkeys(p for p in chain(actor.parameters(), critic.parameters()) if p.requires_grad))
        # fused: one kernel for all tensors (the world model adds many small ones; ~2x faster step on CPU).
        fused = {"fused": True} if isinstance(self.optimizer, torch.optim.Adam | torch.optim.AdamW) else {}
        self.critic_learning_rate = critic_learning_rate
        groups: list = params
        if critic_learning_rate is not None:
            critic_own = own_critic_parameters(actor, critic)
            critic_ids = {id(p) for p in critic_own}
            groups = [{"params": [p for p in params if id(p) not in critic_ids]},
                      {"params": critic_own, "lr": critic_learning_rate}]  # fmt: skip
        self.optimizer = type(self.optimizer)(groups, lr=self.learning_rate, **fused)
        self.horizon = horizon
        self.rho = rho
        self.target_tau = target_tau
        self.coefs = {
            "dynamics_coef": dynamics_coef,
            "reward_coef": reward_coef,
            "termination_coef": termination_coef,
            "reconstruction_coef": reconstruction_coef,
        }
        self.world_model_windows = world_model_windows
        self.bc_coef = bc_coef
        self.bc_data = list(bc_data)
        self.bc_obs = self.bc_actions = None  # loaded at the first update: play and export do not need them
        if bc_coef > 0.0 and not bc_data:
            raise ValueError("bc_coef > 0 needs demonstrations: --world-action.bc-data DIR [DIR ...]")
        t, n = storage.num_transitions_per_env, storage.num_envs
        self.raw_rewards = torch.zeros(t, n, device=self.device)
        self.terminated = torch.zeros(t, n, dtype=torch.bool, device=self.device)
        self.last_obs: torch.Tensor | None = None
        self.actor.update_target(0.0)

    # ---- rollout -------------------------------------------------------------------------------
    def process_env_step(self, obs: TensorDict, rewards: torch.Tensor, dones: torch.Tensor, extras: dict) -> None:
        step = self.storage.step
        self.raw_rewards[step] = rewards
        time_outs = extras.get("time_outs")
        done = dones.bool()
        self.terminated[step] = done & ~time_outs.to(self.device).bool() if time_outs is not None else done
        super().process_env_step(obs, rewards, dones, extras)

    def compute_returns(self, obs: TensorDict) -> None:
        self.last_obs = self.actor.obs_vector(obs).clone()
        super().compute_returns(obs)

    # ---- update --------------------------------------------------------------------------------
    def _load_demonstrations(self) -> None:
        """Observations and actions of ``bc_data`` on the learner's device (once)."""
        from worldloop.data import load

        sets = [load(p) for p in self.bc_data]
        self.bc_obs = torch.cat([d.frames["observation.state"] for d in sets]).to(self.device)
        self.bc_actions = torch.cat([d.frames["action"] for d in sets]).to(self.device)
        a = self.actor
        if self.bc_obs.shape[-1] != a.obs_dim or self.bc_actions.shape[-1] != self.storage.actions.shape[-1]:
            raise ValueError(
                f"--world-action.bc-data {self.bc_data}: observations {self.bc_obs.shape[-1]} and actions "
                f"{self.bc_actions.shape[-1]} wide, the policy's observations are {a.obs_dim} wide "
                "(demonstrations of another task or action space?)"
            )

    def _windows(self, flat_idx: torch.Tensor, obs_seq: torch.Tensor) -> dict[str, torch.Tensor]:
        """K-step windows starting at the flat ``[time * num_envs + env]`` indices of a mini-batch."""
        st, k = self.storage, self.horizon
        t_len, n = st.num_transitions_per_env, st.num_envs
        t, e = flat_idx // n, flat_idx % n
        steps = t.unsqueeze(1) + torch.arange(k + 1, device=self.device)  # (B, K + 1)
        obs_steps = steps.clamp(max=t_len)  # past T the mask is 0; any index will do
        act_steps = steps[:, :k].clamp(max=t_len - 1)
        inside = steps[:, :k] < t_len
        nan = torch.full_like(self.raw_rewards[0, 0], float("nan"))
        return {
            "obs": obs_seq[obs_steps, e.unsqueeze(1)],
            "actions": st.actions[act_steps, e.unsqueeze(1)],
            "rewards": torch.where(inside, self.raw_rewards[act_steps, e.unsqueeze(1)], nan),
            "terminated": self.terminated[act_steps, e.unsqueeze(1)] & inside,
            "alive": window_masks(st.dones.squeeze(-1), t, e, k),
        }

    def update(self) -> dict[str, float]:  # noqa: C901 - PPO's update with one more loss term
        """PPO's clipped-surrogate update (rsl-rl ``PPO.update``, feed-forward path) with the world-model
        loss of K-step windows added to every mini-batch's loss."""
        st = self.storage
        batch_size = st.num_envs * st.num_transitions_per_env
        mini = batch_size // self.num_mini_batches
        obs_td = st.observations.flatten(0, 1)
        actions = st.actions.flatten(0, 1)
        values = st.values.flatten(0, 1)
        returns = st.returns.flatten(0, 1)
        old_log_prob = st.actions_log_prob.flatten(0, 1)
        advantages = st.advantages.flatten(0, 1)
        old_params = tuple(p.flatten(0, 1) for p in st.distribution_params)
        obs_seq = torch.cat((self.actor.obs_vector(st.observations), self.last_obs.unsqueeze(0)))  # (T + 1, N, n)
        if self.bc_coef > 0.0 and self.bc_obs is None:
            self._load_demonstrations()

        sums: dict[str, torch.Tensor] = {}

        def add(key: str, v: torch.Tensor) -> None:
            sums[key] = sums.get(key, 0.0) + v.detach()

        indices = torch.randperm(self.num_mini_batches * mini, device=self.device)
        for _ in range(self.num_learning_epochs):
            for i in range(self.num_mini_batches):
                idx = indices[i * mini : (i + 1) * mini]
                adv = advantages[idx]
                if self.normalize_advantage_per_mini_batch:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                obs = obs_td[idx]
                self.actor(obs, stochastic_output=True)
                log_prob = self.actor.get_output_log_prob(actions[idx])
                value = self.critic(obs)
                params = self.actor.output_distribution_params
                entropy = self.actor.output_entropy

                if self.desired_kl is not None and self.schedule == "adaptive":
                    with torch.inference_mode():
                        kl_mean = self.actor.get_kl_divergence(tuple(p[idx] for p in old_params), params).mean()
                        if self.is_multi_gpu:
                            torch.distributed.all_reduce(kl_mean, op=torch.distributed.ReduceOp.SUM)
                            kl_mean /= self.gpu_world_size
                        if self.gpu_global_rank == 0:
                            if kl_mean > self.desired_kl * 2.0:
                                self.learning_rate = max(1e-5, self.learning_rate / 1.5)
                            elif 0.0 < kl_mean < self.desired_kl / 2.0:
                                self.learning_rate = min(1e-2, self.learning_rate * 1.5)
                        if self.is_multi_gpu:
                            lr = torch.tensor(self.learning_rate, device=self.device)
                            torch.distributed.broadcast(lr, src=0)
                            self.learning_rate = lr.item()
                        for group in self.optimizer.param_groups[: 1 if self.critic_learning_rate else None]:
                            group["lr"] = self.learning_rate

                ratio = torch.exp(log_prob - old_log_prob[idx].squeeze(-1))
                adv = adv.squeeze(-1)
                surrogate = torch.max(
                    -adv * ratio, -adv * ratio.clamp(1.0 - self.clip_param, 1.0 + self.clip_param)
                ).mean()
                if self.use_clipped_value_loss:
                    v_old = values[idx]
                    v_clipped = v_old + (value - v_old).clamp(-self.clip_param, self.clip_param)
                    value_loss = torch.max((value - returns[idx]).pow(2), (v_clipped - returns[idx]).pow(2)).mean()
                else:
                    value_loss = (returns[idx] - value).pow(2).mean()
                loss = surrogate + self.value_loss_coef * value_loss - self.entropy_coef * entropy.mean()

                wm_idx = idx
                if 0 < self.world_model_windows < len(idx):
                    wm_idx = idx[: self.world_model_windows]  # idx is already a random permutation
                last = i == self.num_mini_batches - 1
                windows = self._windows(wm_idx, obs_seq)
                wm = world_model_loss(self.actor, **windows, rho=self.rho, metrics=last, **self.coefs)
                loss = loss + wm.total
                if self.bc_obs is not None:
                    rows = torch.randint(len(self.bc_obs), (len(wm_idx),), device=self.device)
                    a = self.actor
                    bc = (a.action_mean(a.encode(a.normalize(self.bc_obs[rows]))) - self.bc_actions[rows]).pow(2).mean()
                    loss = loss + self.bc_coef * bc
                    add("bc", bc)

                self.optimizer.zero_grad()
                loss.backward()
                if self.is_multi_gpu:
                    self.reduce_parameters()
                nn.utils.clip_grad_norm_(self.actor.parameters(), self.max_grad_norm)
                nn.utils.clip_grad_norm_(self.critic.parameters(), self.max_grad_norm)
                self.optimizer.step()
                self.actor.update_target(self.target_tau)

                add("value", value_loss)
                add("surrogate", surrogate)
                add("entropy", entropy.mean())
                add("world_model", wm.total)
                add("dynamics", wm.dynamics)
                add("reward", wm.reward)
                add("termination", wm.termination)
                add("reconstruction", wm.reconstruction)
                # K-step errors: measured on each epoch's last mini-batch (logging only).
                for j in range(len(wm.obs_rmse)):
                    add(f"kstep_latent_k{j + 1}", wm.latent_error[j] * self.num_mini_batches)
                    add(f"kstep_obs_rmse_k{j + 1}", wm.obs_rmse[j] * self.num_mini_batches)

        flat = st.observations.flatten(0, 1)
        self.actor.update_normalization(flat)
        self.critic.update_normalization(flat)
        num_updates = self.num_learning_epochs * self.num_mini_batches
        st.clear()
        return {k: float(v) / num_updates for k, v in sums.items()}
