"""PPO update speed on the CPU: rsl-rl's update as it comes vs worldloop's, in float32 and bfloat16 autocast,
on one real rollout of a task.

python docs/benchmarks/ppo_update_speed.py [TASK] [REPEATS]

Collects one iteration of real rollouts with the task's default training settings (envs, horizon,
networks), then times ``alg.update()`` (epochs x minibatches of forward, backward and Adam) for each
setting, interleaved, every repeat starting from the same weights and the same rollout. The settings:
float32 and bfloat16, each as rsl-rl comes ("rsl-rl": out-of-place ELU layers, every mini-batch gathered from
the rollout in every epoch) and as ``worldloop train`` runs it ("worldloop": in-place ELU layers,
:func:`worldloop.policies.runner.elu_in_place`, and the permuted rollout gathered once per update,
:class:`worldloop.policies.runner.GatherOnceRolloutStorage`). Prints the
median time, samples/s (rollout samples x epochs / time) and the ratio to rsl-rl's float32 update.
"""

import copy
import statistics
import sys
import time

import torch
from rsl_rl.storage import RolloutStorage  # noqa: TID253 - a training benchmark

from worldloop.policies.rsl_rl_adapter import RslRlVecEnv
from worldloop.policies.runner import Runner
from worldloop.policies.train import TrainCfg, rsl_rl_cfg
from worldloop.tasks import make

task = sys.argv[1] if len(sys.argv) > 1 else "Franka-Lift-v0"
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
cfg = TrainCfg.from_task(task)
env = make(task, num_envs=cfg.num_envs, cfg=cfg.env, backend="mujoco")
vec = RslRlVecEnv(env, log_interval=cfg.agent.num_steps_per_env, reward_scale=cfg.agent.reward_scale)


def runner(mixed_precision: str, worldloop: bool) -> Runner:
    torch.manual_seed(0)
    cfg.agent.mixed_precision = mixed_precision
    r = Runner(vec, rsl_rl_cfg(cfg), log_dir=None, device="cpu")
    for m in (*r.alg.actor.modules(), *r.alg.critic.modules()):
        if isinstance(m, torch.nn.ELU):
            m.inplace = worldloop
    if not worldloop:
        r.alg.storage.__class__ = RolloutStorage
    return r


settings = {
    "float32, rsl-rl": runner("off", False),
    "bfloat16, rsl-rl": runner("on", False),
    "float32, worldloop": runner("off", True),
    "bfloat16, worldloop": runner("on", True),
}
first = settings["float32, rsl-rl"]
rollout: dict = {}
update = first.alg.update


def keep_rollout():
    storage = vars(first.alg.storage)
    rollout.update({k: v.clone() if torch.is_tensor(v) else copy.deepcopy(v) for k, v in storage.items()})
    return update()


first.alg.update = keep_rollout
first.learn(1)
first.alg.update = update
weights = [copy.deepcopy(m.state_dict()) for m in (first.alg.actor, first.alg.critic)]


def timed_update(r: Runner) -> float:
    r.alg.actor.load_state_dict(weights[0])
    r.alg.critic.load_state_dict(weights[1])
    for k, v in rollout.items():
        setattr(r.alg.storage, k, v.clone() if torch.is_tensor(v) else copy.deepcopy(v))
    torch.manual_seed(1)
    t0 = time.perf_counter()
    r.alg.update()
    return time.perf_counter() - t0


times: dict[str, list[float]] = {name: [] for name in settings}
for r in settings.values():
    timed_update(r)  # warm-up
for _ in range(repeats):
    for name, r in settings.items():
        times[name].append(timed_update(r))
samples = cfg.num_envs * cfg.agent.num_steps_per_env * cfg.agent.num_learning_epochs
base = statistics.median(times["float32, rsl-rl"])
print(
    f"{task}: {cfg.num_envs} envs x {cfg.agent.num_steps_per_env} steps, {cfg.agent.num_learning_epochs} epochs x "
    f"{cfg.agent.num_mini_batches} minibatches, actor {cfg.agent.actor_hidden_dims}, "
    f"critic {cfg.agent.critic_hidden_dims}, "
    f"{torch.get_num_threads()} threads"
)
for name, ts in times.items():
    m = statistics.median(ts)
    spread = f"(min {min(ts):.3f}, max {max(ts):.3f})"
    print(f"  {name:20s} {m:.3f} s per update  {samples / m:>9,.0f} samples/s  x{base / m:.2f}  {spread}")
