"""Where an Open-Drawer run's deterministic episodes end, and where they fail.

python docs/benchmarks/drawer_failures.py RUN [--num-envs 1000] [--checkpoint last]

Runs one episode per env (the run's randomization, seed 12345) with the deterministic actor and
prints: success at the last step against the drawer ever being open >= ``open_distance``; the final
and largest opening of the failed episodes; the grip-to-handle distance over the episode (the hand
behind a hooked bar sits ~7 cm from it, against the drawer's front); and the failure rate per bin of
the cabinet's yaw and lateral offset at reset.
"""

import argparse

import numpy as np
import torch

from worldloop.policies.train import inference_policy, load_run

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("run")
parser.add_argument("--num-envs", type=int, default=1000)
parser.add_argument("--checkpoint", default="last")
args = parser.parse_args()

env, runner = load_run(args.run, checkpoint=args.checkpoint, num_envs=args.num_envs)
task, policy = env.task, inference_policy(runner, args.num_envs)
obs, _ = env.reset()
cabinet = env.qpos[:, task.cab_q].clone()  # (N, 3): x [m], y [m], yaw [rad] at reset
opening, dist = [], []
with torch.inference_mode():
    for _ in range(env.max_episode_length - 1):  # the last step would autoreset: stop one before it
        obs, *_ = env.step(policy(obs))
        opening.append(task._opening().clone())
        dist.append((task.arm.grip_pos_w() - env.site_pos_w("handle")).norm(dim=-1))
opening, dist = torch.stack(opening), torch.stack(dist)  # (T, N)
need = task.cfg.open_distance
fail = opening[-1] < need
q = [0.1, 0.5, 0.9]
print(f"success {(~fail).float().mean():.3f}, ever opened >= {need} m {(opening.amax(0) >= need).float().mean():.3f}")
if fail.any():
    print("failed: final opening [m] (10/50/90%)", np.quantile(opening[-1, fail].numpy(), q).round(3))
    print("failed: largest opening [m]", np.quantile(opening.amax(0)[fail].numpy(), q).round(3))
for t in range(0, opening.shape[0], 50):
    print(
        f"step {t:3d}  opening failed {opening[t, fail].mean():.3f} ok {opening[t, ~fail].mean():.3f} m  "
        f"grip-handle failed {dist[t, fail].mean():.3f} ok {dist[t, ~fail].mean():.3f} m"
    )
for col, name, lo, hi in ((2, "yaw [rad]", -0.25, 0.25), (1, "y [m]", -0.1, 0.1)):
    edges = np.linspace(lo, hi, 6)
    rates = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        m = (cabinet[:, col] >= a) & (cabinet[:, col] <= b)
        rates.append(f"{a:+.2f}..{b:+.2f}: {fail[m].float().mean():.2f} ({int(m.sum())})")
    print(f"failure rate by cabinet {name}:", "; ".join(rates))
