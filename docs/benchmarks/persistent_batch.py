"""Would reading body poses from MuJoCo be cheaper than computing them in torch? Lift-v1's scene, 1,024 envs.

python docs/benchmarks/persistent_batch.py

Replays 40 policy steps of Lift-v1's controls (its decimation of 4 substeps, the preset's per-env cube masses)
from one start state, three interleaved rounds, through ``mujoco.batch.Batch`` in four ways: the backend's
(one ``MjData`` per thread, ``rollout(nstep, record=())``), the same with ``step(nstep, stage=mjSTAGE_POS)``, and a
persistent batch (one ``MjData`` per env) with and without the stage, reading ``xpos``/``xquat`` into torch.
Then checks that the persistent batch's ``xpos`` after a staged step is the kinematics of the new state, and
that a state written into the rows between calls is where the next step starts.
"""

import time

import mujoco
import numpy as np
import torch
from mujoco.batch import Batch

from worldloop.tasks import make

N, DEC, STEPS = 1024, 4, 40
POS, NONE = mujoco.mjtStage.mjSTAGE_POS.value, mujoco.mjtStage.mjSTAGE_NONE.value
env = make("Franka-Lift-v1", num_envs=N, backend="mujoco", seed=0)
env.reset()
gen = torch.Generator().manual_seed(0)
actions = [torch.rand(N, env.action_dim, generator=gen) * 2 - 1 for _ in range(STEPS + 5)]
for a in actions[:5]:
    env.step(a)
start = env.backend.get_state()
ctrls = []
for a in actions[5:]:
    env.step(a)
    ctrls.append(env.ctrl.double().numpy().copy())
m = env.mj_model
mass = env.backend._expanded["body_mass"].copy()
q0, v0 = start[:, 1 : 1 + m.nq], start[:, 1 + m.nq : 1 + m.nq + m.nv]


def make_batch(persistent: bool) -> Batch:
    b = Batch(m, N, nthread=env.backend.num_threads, persistent=persistent)
    b.reset(stage=NONE)
    b.expand("body_mass")[:] = mass
    b.set_const()
    return b


persistent, shared = make_batch(True), make_batch(False)
xpos, xquat = persistent.bind("xpos"), persistent.bind("xquat")


def load(b: Batch) -> None:
    b.qpos, b.qvel, b.qacc_warmstart = q0, v0, 0.0


def replay(b: Batch, step) -> float:
    load(b)
    t = time.perf_counter()
    for c in ctrls:
        b.ctrl, b.qacc_warmstart = c, 0.0  # as the backend: no warm start across policy steps
        step(b)
    return 1e3 * (time.perf_counter() - t) / STEPS


def read_poses() -> None:
    torch.tensor(xpos, dtype=torch.float32), torch.tensor(xquat, dtype=torch.float32)


ways = {
    "the backend's way: one MjData per thread, rollout(4, record=())": (shared, lambda b: b.rollout(DEC, record=())),
    "the same, step(4, stage=mjSTAGE_POS)": (shared, lambda b: b.step(nstep=DEC, stage=POS)),
    "persistent, step(4, stage=mjSTAGE_POS), xpos/xquat into torch": (
        persistent, lambda b: (b.step(nstep=DEC, stage=POS), read_poses())),
    "persistent, no stage": (persistent, lambda b: b.step(nstep=DEC, stage=NONE)),
}  # fmt: skip
times = {k: [] for k in ways}
for _ in range(3):
    for name, (b, step) in ways.items():
        times[name].append(replay(b, step))
for name, t in times.items():
    print(f"{name:66s} ms per policy step: " + ", ".join(f"{x:.2f}" for x in t))

replay(persistent, lambda b: b.step(nstep=DEC, stage=POS))
d = mujoco.MjData(m)
err = 0.0
for i in (0, 17, 500):
    d.qpos[:], d.qvel[:] = persistent.qpos[i], persistent.qvel[i]
    mujoco.mj_kinematics(persistent.get_model(i), d)
    err = max(err, float(np.abs(d.xpos - xpos[i]).max()))
print(f"persistent batch, staged step: max |xpos - mj_kinematics(new state)| = {err:.2e} m")
for b in (persistent, shared):
    b.qpos, b.qvel, b.qacc_warmstart, b.ctrl = q0, 0.0, 0.0, ctrls[1]
    b.step(nstep=DEC, stage=POS)
gap = np.abs(persistent.qpos - shared.qpos).max()
print(f"state written between calls: max |qpos persistent - shared| = {gap:.2e}")
