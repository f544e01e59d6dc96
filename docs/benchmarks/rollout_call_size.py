"""Physics steps/s of ``mujoco.rollout`` by substeps per call: the cost of stepping closed loop.

python docs/benchmarks/rollout_call_size.py [SCENE] [NUM_ENVS]

A closed-loop env calls the physics once per policy step (``decimation`` substeps); ``worldloop bench``'s
raw limit replays the same controls in calls of 50 policy steps. This times both granularities on one
scene, every env at its ``home`` keyframe holding the keyframe's controls, on the backend's threads,
alternating rounds: the part of the gap to the raw limit that no env code can remove.
"""

import sys
import time

import mujoco
import numpy as np
from mujoco import rollout

from worldloop.envs.backends.mujoco_backend import default_num_threads
from worldloop.envs.batched_env import load_scene

scene = sys.argv[1] if len(sys.argv) > 1 else "franka_cube.xml"
num_envs = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
model, _ = load_scene(scene)
data = mujoco.MjData(model)
mujoco.mj_resetDataKeyframe(model, data, 0)
spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
state0 = np.empty(mujoco.mj_stateSize(model, spec))
mujoco.mj_getState(model, data, state0, spec)
nthread = default_num_threads()
datas = [mujoco.MjData(model) for _ in range(nthread)]
total = 200  # physics steps per round
with rollout.Rollout(nthread=nthread) as runner:
    results: dict[int, list[float]] = {}
    for _ in range(3):
        for nstep in (4, 10, 200):
            state = np.tile(state0, (num_envs, 1))
            ctrl = np.tile(data.ctrl, (num_envs, nstep, 1)) if model.nu else None
            out = np.empty((num_envs, nstep, state0.size))
            t0 = time.perf_counter()
            for _ in range(total // nstep):
                runner.rollout([model] * num_envs, datas, state, ctrl, nstep=nstep, state=out, skip_checks=True)
                state[:] = out[:, -1]
            results.setdefault(nstep, []).append(num_envs * total / (time.perf_counter() - t0))
best = {k: max(v) for k, v in results.items()}
for nstep, rate in best.items():
    print(
        f"{scene} {num_envs} envs, {nthread} threads, {nstep:3d} substeps per call: {rate:,.0f} physics steps/s "
        f"({rate / best[200]:.2f} of 200 per call)"
    )
