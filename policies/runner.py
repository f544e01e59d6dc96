"""rsl-rl-lib's ``OnPolicyRunner`` with what long runs need.

- Checkpoints are written atomically (temp file + rename) with the names of
  :mod:`worldloop.policies.run_dir`: ``model_<it>.pt`` every
  ``save_interval`` iterations, ``last.pt`` at every save and ``best.pt`` when the success rate of
  recently finished episodes (or, with a checkpoint evaluation, of the deterministic policy on envs of
  its own) is the best so far. They hold models, optimizer, iteration, RNG
  state and that best success (``best_success``, restored by :meth:`Runner.load`, so a resumed run
  keeps ``best.pt`` until it does better), and load with ``torch.load(weights_only=True)``.
- ``torch.distributed`` on the CPU uses gloo (rsl-rl only knows NCCL on CUDA), so
  ``torchrun --nproc-per-node 2`` trains with one env batch per process on CPUs too.
- A one-line progress report per iteration (rewritten in place on a terminal, plain lines in logs)
  instead of rsl-rl's block; tensorboard logging is unchanged.
- A critic warm-up (``train_cfg["critic_warmup_iterations"]``, ``--agent.critic-warmup-iterations``,
  at ``critic_warmup_learning_rate``): the run's first iterations update only the critic, so that PPO
  starting from a trained or cloned actor (``worldloop train --init``) does not move it along the
  advantages of an untrained critic.
- A faster PPO update that computes the same thing: ELU layers in place (:func:`elu_in_place`) and the permuted
  rollout gathered once per update (:class:`GatherOnceRolloutStorage`).
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from rsl_rl.runners import OnPolicyRunner  # noqa: TID253 - imported only when training
from rsl_rl.storage import RolloutStorage  # noqa: TID253 - imported only when training

from worldloop.policies import run_dir
from worldloop.policies.onnx_export import quiet_onnx_export
from worldloop.policies.run_dir import CheckpointError

__all__ = [
    "CHECKPOINT_KEYS",
    "CheckpointError",
    "Runner",
    "atomic_save",
    "critic_only_update",
    "elu_in_place",
    "load_checkpoint",
    "own_critic_parameters",
]

CHECKPOINT_KEYS = ("actor_state_dict", "critic_state_dict", "optimizer_state_dict", "iter")


def atomic_save(obj: dict, path: str | Path) -> None:
    """``torch.save`` to a temp file in the same folder, then rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a corrupt or foreign file raises
    :class:`CheckpointError` naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle, zip and tensor errors all mean the same thing to the user
        # torch's weights-only message suggests weights_only=False and filing an issue, wrong advice for a bad
        # file: keep its unpickler's own line.
        lines = [x.strip() for x in str(e).splitlines() if x.strip()] or [type(e).__name__]
        at = next((i for i, x in enumerate(lines) if x.endswith("Unpickler error:")), None)
        reason = lines[at + 1] if at is not None and at + 1 < len(lines) else lines[0]
        raise CheckpointError(
            f"{path} is not a readable checkpoint (corrupt, cut short, or not saved by torch): {reason}"
        ) from None
    if not isinstance(data, dict) or not all(k in data for k in CHECKPOINT_KEYS):
        missing = [k for k in CHECKPOINT_KEYS if not isinstance(data, dict) or k not in data]
        raise CheckpointError(f"{path} is not a worldloop/rsl-rl checkpoint: missing {missing}")
    return data


def own_critic_parameters(actor: torch.nn.Module, critic: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The critic's trainable parameters that are not the actor's (a critic may share the actor's encoder)."""
    actor_ids = {id(p) for p in actor.parameters()}
    return [p for p in critic.parameters() if id(p) not in actor_ids and p.requires_grad]


def critic_only_update(alg, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """One update of an rsl-rl PPO algorithm (``PPO`` or a subclass such as ``WorldActionPPO``) that trains
    only its critic on the rollout in ``alg.storage``: the squared error of the value against the returns
    (not clipped to ``clip_param`` around the rollout's values, which would let a fresh critic move only
    that far per iteration), with PPO's epochs, mini-batches and gradient clip, and ``optimizer`` (over
    :func:`own_critic_parameters`). The actor's weights, action std and
    observation normalizer stay exactly as they were (their gradients are dropped before each step; a critic
    sharing the actor's encoder learns only its own layers), and the learning-rate schedule does not run.
    Clears the storage as ``update`` does and returns the mean value loss as
    ``{"value": ..., "critic_warmup": 1.0}``."""
    st = alg.storage
    obs = st.observations.flatten(0, 1)
    returns = st.returns.flatten(0, 1)
    actor_params = list(alg.actor.parameters())
    critic_params = own_critic_parameters(alg.actor, alg.critic)
    n = returns.shape[0]
    mini = n // alg.num_mini_batches
    total = torch.zeros(())
    for _ in range(alg.num_learning_epochs):
        perm = torch.randperm(n, device=returns.device)
        for i in range(alg.num_mini_batches):
            idx = perm[i * mini : (i + 1) * mini]
            # Not PPO's clipped value loss: that holds each value within clip_param of the rollout's per
            # iteration, so a fresh critic facing returns of ~10 would need ~50 iterations to reach them.
            loss = (returns[idx] - alg.critic(obs[idx])).pow(2).mean()
            optimizer.zero_grad()
            (alg.value_loss_coef * loss).backward()
            for p in actor_params:
                p.grad = None
            if alg.is_multi_gpu:
                alg.reduce_parameters()
            torch.nn.utils.clip_grad_norm_(critic_params, alg.max_grad_norm)
            optimizer.step()
            total += loss.detach().cpu()
    alg.critic.update_normalization(obs)
    st.clear()
    return {"value": float(total) / (alg.num_learning_epochs * alg.num_mini_batches), "critic_warmup": 1.0}


def elu_in_place(*models: torch.nn.Module) -> int:
    """Make every ``torch.nn.ELU`` in ``models`` compute in place; returns how many there are.

    An out-of-place ELU's backward evaluates ``exp`` of its input again; in place, the input is overwritten and
    the backward reads the output instead (``dy/dx = y + alpha`` where ``x <= 0``, the same value to float
    rounding). In rsl-rl's MLPs each ELU's input is a linear layer's output that nothing else reads, so this is
    safe there, and it makes the PPO update of a 1,024-env Franka task 5-7% faster in float32 and 11-12% in bfloat16
    on a 2-core CPU (BENCHMARKS.md, "PPO update speed")."""
    layers = [m for model in models for m in model.modules() if isinstance(m, torch.nn.ELU)]
    for m in layers:
        m.inplace = True
    return len(layers)


class GatherOnceRolloutStorage(RolloutStorage):
    """rsl-rl's ``RolloutStorage`` whose feedforward mini-batches are gathered once per update.

    rsl-rl draws one permutation of the rollout per update and gathers every mini-batch from it again in every
    epoch (``epochs x mini-batches`` advanced-indexing gathers per tensor). This storage gathers the whole
    permuted rollout once (one ``index_select`` per tensor) and yields contiguous slices of it: the same samples
    in the same order, from the same draw of the random number generator, so the update computes exactly what
    rsl-rl's does. The gathers were 8% of a bfloat16 PPO update of a 1,024-env Franka task on a 2-core CPU
    (BENCHMARKS.md, "PPO update speed"). The PPO update only reassigns a batch's fields, never writes into them,
    so the slices may share memory across epochs; :class:`Runner` uses this storage only without symmetry
    augmentation, whose user-given function could.
    """

    def mini_batch_generator(self, num_mini_batches: int, num_epochs: int = 8):
        """Yield ``num_epochs x num_mini_batches`` ``RolloutStorage.Batch`` es of ``num_envs * num_steps //
        num_mini_batches`` samples each, the batches ``RolloutStorage.mini_batch_generator`` yields."""
        if self.training_type != "rl":
            raise ValueError("mini-batches are only drawn for reinforcement learning (training_type='rl')")
        size = self.num_envs * self.num_transitions_per_env // num_mini_batches
        indices = torch.randperm(num_mini_batches * size, requires_grad=False, device=self.device)

        def gather(t):
            return t.flatten(0, 1).index_select(0, indices)

        observations = self.observations.flatten(0, 1)[indices]  # a TensorDict: one gather per key
        actions, values, returns = gather(self.actions), gather(self.values), gather(self.returns)
        old_log_prob, advantages = gather(self.actions_log_prob), gather(self.advantages)
        old_params = tuple(gather(p) for p in self.distribution_params)  # type: ignore[union-attr]
        for _ in range(num_epochs):
            for i in range(num_mini_batches):
                mb = slice(i * size, (i + 1) * size)
                yield RolloutStorage.Batch(
                    observations=observations[mb],  # type: ignore[arg-type]
                    actions=actions[mb],
                    values=values[mb],
                    advantages=advantages[mb],
                    returns=returns[mb],
                    old_actions_log_prob=old_log_prob[mb],
                    old_distribution_params=tuple(p[mb] for p in old_params),
                )


class Runner(OnPolicyRunner):
    """``OnPolicyRunner`` with atomic checkpoints, resume, gloo, a progress line and a critic warm-up."""

    model_summary: str = ""
    """What rsl-rl printed while building the models (``make_runner`` holds it back; ``train`` shows it)."""

    def __init__(self, env, train_cfg: dict, log_dir: str | None = None, device: str = "cpu") -> None:
        super().__init__(env, train_cfg, log_dir=log_dir, device=device)
        self.best_success = -1.0
        # rsl-rl snapshots the git diff of the repo holding rsl_rl itself; when that is a large
        # repository (a pyenv checkout, a monorepo) it costs tens of seconds. Record ours instead.
        import worldloop

        self.logger.git_status_repos = [worldloop.__file__]
        self._rsl_log = self.logger.log
        self.logger.log = self._log  # type: ignore[method-assign]
        self._tty = sys.stdout.isatty()
        self._t0 = time.perf_counter()
        elu_in_place(self.alg.actor, self.alg.critic)
        if type(self.alg.storage) is RolloutStorage and getattr(self.alg, "symmetry", None) is None:
            self.alg.storage.__class__ = GatherOnceRolloutStorage  # the same state; only the generator differs
        self.critic_warmup_iterations = int(train_cfg.get("critic_warmup_iterations", 0))
        """Iterations from the run's start (iteration 0) whose update trains the critic only."""
        self.critic_warmup_learning_rate = float(train_cfg.get("critic_warmup_learning_rate", 1e-3))
        """Adam learning rate of the critic during the warm-up (its own optimizer; PPO's takes over after)."""
        self._warmup_opt: torch.optim.Optimizer | None = None
        self._ppo_update = self.alg.update
        self.alg.update = self._update  # type: ignore[method-assign]
        self._next_it = 0
        self.checkpoint_eval = None
        """``() -> EvalResult`` run at every save (``TrainCfg.checkpoint_eval_episodes``): its success rate, not
        the training statistics, then decides ``best.pt``."""
        self.checkpoint_evals: dict[int, dict[str, float]] = {}
        """``{iteration: {"success_rate", "mean_return", "episodes"}}``: this process's checkpoint evaluations."""

    # ---- critic warm-up ---------------------------------------------------------------------
    def learn(self, num_learning_iterations: int, init_at_random_ep_len: bool = False) -> None:
        self._next_it = self.current_learning_iteration  # a resumed run continues its warm-up, if any is left
        super().learn(num_learning_iterations, init_at_random_ep_len)

    def _update(self) -> dict[str, float]:
        it, self._next_it = self._next_it, self._next_it + 1
        if it < self.critic_warmup_iterations:
            if self._warmup_opt is None:
                params = own_critic_parameters(self.alg.actor, self.alg.critic)
                self._warmup_opt = torch.optim.Adam(params, lr=self.critic_warmup_learning_rate)
            return critic_only_update(self.alg, self._warmup_opt)
        return self._ppo_update()

    # ---- distributed ------------------------------------------------------------------------
    def _configure_multi_gpu(self) -> None:
        world = int(os.getenv("WORLD_SIZE", "1"))
        if world <= 1 or str(self.device).startswith("cuda"):
            super()._configure_multi_gpu()
            return
        self.gpu_world_size = world
        self.is_distributed = True
        self.gpu_local_rank = int(os.getenv("LOCAL_RANK", "0"))
        self.gpu_global_rank = int(os.getenv("RANK", "0"))
        self.cfg["multi_gpu"] = {
            "global_rank": self.gpu_global_rank,
            "local_rank": self.gpu_local_rank,
            "world_size": world,
        }
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="gloo", rank=self.gpu_global_rank, world_size=world)

    # ---- checkpoints ------------------------------------------------------------------------
    def save(self, path: str, infos: dict | None = None) -> None:
        state = self.alg.save()
        state["iter"] = self.current_learning_iteration
        state["infos"] = infos
        state["torch_rng_state"] = torch.get_rng_state()
        env = getattr(self.env, "env", None)
        if env is not None:
            state["env_rng_state"] = env.generator.get_state()
            state["randomizer_state"] = env.randomizer.state_dict()
        success = getattr(self.env, "last_stats", {}).get("success")
        if self.checkpoint_eval is not None:
            success = self._evaluate_checkpoint(Path(path).name)
        is_best = success is not None and success > self.best_success
        if is_best:
            self.best_success = float(success)
        # Kept in every checkpoint so that a resumed run replaces best.pt only with a better one.
        state["best_success"] = self.best_success
        path = Path(path)
        atomic_save(state, path)
        atomic_save(state, path.with_name(run_dir.LAST))
        if is_best:
            atomic_save(state, path.with_name(run_dir.BEST))

    def _evaluate_checkpoint(self, name: str) -> float:
        """Run :attr:`checkpoint_eval` on the current actor, log it and return its success rate."""
        it = self.current_learning_iteration
        if it in self.checkpoint_evals:  # rsl-rl saves the last iteration twice when save_interval divides it
            return self.checkpoint_evals[it]["success_rate"]
        result = self.checkpoint_eval()
        self.alg.train_mode()  # the inference policy switched the models to eval mode
        self.checkpoint_evals[it] = {"success_rate": result.success_rate, "mean_return": result.mean_return,
                                     "episodes": result.episodes}  # fmt: skip
        if self.logger.writer is not None:
            self.logger.writer.add_scalar("Eval/success", result.success_rate, it)
            self.logger.writer.add_scalar("Eval/return", result.mean_return, it)
        lo, hi = result.success_ci95
        print(f"[worldloop] {name}: deterministic success {100 * result.success_rate:.1f}% "
              f"({100 * lo:.1f}-{100 * hi:.1f}%) over {result.episodes} held-out episodes", flush=True)  # fmt: skip
        return result.success_rate

    def load(self, path: str, load_cfg: dict | None = None, strict: bool = True, map_location: str | None = None):
        data = load_checkpoint(path, map_location or self.device)
        self.alg.load(data, load_cfg, strict)
        # The saved iteration is complete: continue with the next one.
        self.current_learning_iteration = int(data["iter"]) + 1
        self.best_success = float(data.get("best_success", -1.0))
        if "torch_rng_state" in data:
            torch.set_rng_state(data["torch_rng_state"].cpu())
        env = getattr(self.env, "env", None)
        if env is not None and "env_rng_state" in data:
            env.generator.set_state(data["env_rng_state"].to(env.generator.device))
        if env is not None and "randomizer_state" in data:
            env.randomizer.load_state_dict(data["randomizer_state"])
        return data.get("infos")

    # ---- export -----------------------------------------------------------------------------
    def export_policy_to_onnx(self, path: str, filename: str = "policy.onnx", verbose: bool = False) -> None:
        """The deterministic actor (with its observation normalizer) as ONNX with a dynamic batch:
        input ``obs`` ``(batch, n_obs)`` -> ``actions`` ``(batch, action_dim)`` (a recurrent actor also
        takes and returns its hidden state ``(layers, batch, hidden)``). rsl-rl's own export fixes
        the batch at 1."""
        model = self.alg.get_policy().as_onnx(verbose=verbose).to("cpu").eval()
        # A traced size of 1 would be specialized to a constant: trace at batch 2.
        inputs = tuple(torch.cat([x, x], dim=0 if i == 0 else 1) for i, x in enumerate(model.get_dummy_inputs()))
        batch = torch.export.Dim("batch")
        dynamic = tuple({0 if i == 0 else 1: batch} for i in range(len(inputs)))
        os.makedirs(path, exist_ok=True)
        with quiet_onnx_export():
            torch.onnx.export(
                model,
                inputs,
                os.path.join(path, filename),
                export_params=True,
                opset_version=18,
                verbose=verbose,
                input_names=model.input_names,
                output_names=model.output_names,
                dynamic_shapes=dynamic,
            )

    # ---- progress -----------------------------------------------------------------------
    def _log(self, *, it: int, start_it: int, total_it: int, collect_time: float, learn_time: float, **kw):
        with contextlib.redirect_stdout(io.StringIO()):
            self._rsl_log(
                it=it, start_it=start_it, total_it=total_it, collect_time=collect_time, learn_time=learn_time, **kw
            )
        lg = self.logger
        if lg.writer is None:
            return
        done = it + 1 - start_it
        eta = (time.perf_counter() - self._t0) / done * (total_it - it - 1)
        steps_per_s = (
            self.cfg["num_steps_per_env"] * self.env.num_envs * lg.gpu_world_size / (collect_time + learn_time)
        )
        stats = getattr(self.env, "last_stats", None)
        if stats is None:  # not a worldloop env: rsl-rl's buffer of the reward PPO saw
            stats, ret = {}, (statistics.mean(lg.rewbuffer) if lg.rewbuffer else None)
        else:  # the task's own return; none when no episode ended (rsl-rl's is times ``reward_scale``)
            ret = stats.get("return")
        success = stats.get("success")
        # Physics resets (diverged envs reset and counted) in this iteration: a run whose physics keeps
        # diverging shows it here, not only in tensorboard.
        resets = int(stats.get("physics_resets", 0))
        ret_s = "    -   " if ret is None else f"{ret:8.2f}"
        success_s = "    -  " if success is None else f"{100 * success:5.1f}% "
        # The run's env steps to here, a resumed run's earlier iterations included (the batch cannot change).
        steps = (it + 1) * self.cfg["num_steps_per_env"] * self.env.num_envs * lg.gpu_world_size
        line = (
            f"it {it + 1:>5}/{total_it}  steps {steps:>11,}  {steps_per_s:>8,.0f} steps/s  "
            f"return {ret_s}  success {success_s} "
            f"resets {resets:>4}  "
            f"collect {collect_time:5.2f}s learn {learn_time:5.2f}s  ETA {int(eta) // 60:d}:{int(eta) % 60:02d}"
        )
        if self._tty:
            print("\r" + line, end="\n" if it + 1 == total_it else "", flush=True)
        else:
            print(line, flush=True)
