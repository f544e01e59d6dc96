"""State kinds: ``initial_pose`` offsets the reset pose, ``push`` and ``impulse`` kick velocities.

Their targets are free bodies (by body name) or 1-dof (hinge/slide) joints; ``impulse`` acts on
free bodies only and divides by the mass of the body's subtree.
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch

from worldloop.envs.kinematics import quat_from_rotvec, quat_mul
from worldloop.envs.randomization.terms import XYZ, Term, compile_targets, components, element_names

FREE = {  # free-body targets of pose/push kinds: (components, default selection, labels)
    "initial_pose": (6, (0, 1, 5), ("x", "y", "z", "rx", "ry", "rz")),
    "push": (6, (0, 1), ("vx", "vy", "vz", "wx", "wy", "wz")),
    "impulse": (3, (0, 1), XYZ),
}


def resolve(t: Term, m: mujoco.MjModel, scene: str, device: torch.device) -> None:
    """Resolve an ``initial_pose``/``push``/``impulse`` term's targets: free bodies or 1-dof joints."""
    free, hinge, slide = (int(j) for j in (mujoco.mjtJoint.mjJNT_FREE, mujoco.mjtJoint.mjJNT_HINGE,
                                            mujoco.mjtJoint.mjJNT_SLIDE))  # fmt: skip
    free_bodies = [b for b in range(1, m.nbody) if m.body_jntnum[b] and m.jnt_type[m.body_jntadr[b]] == free]
    one_dof = [j for j in range(m.njnt) if m.jnt_type[j] in (hinge, slide)]
    bnames = element_names(m, mujoco.mjtObj.mjOBJ_BODY, m.nbody)
    jnames = element_names(m, mujoco.mjtObj.mjOBJ_JOINT, m.njnt)
    rx = compile_targets(t, t.cfg.targets)
    bodies = [b for b in free_bodies if rx.fullmatch(bnames[b])]
    joints = [] if t.kind.elements == "free" else [j for j in one_dof if rx.fullmatch(jnames[j])]
    if bodies and joints:
        raise t.error("targets", f"{t.cfg.targets!r} mixes free bodies {[bnames[b] for b in bodies]} and "
                      f"joints {[jnames[j] for j in joints]}; use one term for each")  # fmt: skip
    if not bodies and not joints:
        what = "free body" if t.kind.elements == "free" else "free body or hinge/slide joint"
        known = [bnames[b] for b in free_bodies] + ([] if t.kind.elements == "free" else [jnames[j] for j in one_dof])
        raise t.error("targets", f"{t.cfg.targets!r} matches no {what} in {scene}; known: {known}")
    t.free = bool(bodies)
    if t.free:
        ncomp, default, comp_names = FREE[t.cfg.kind]
        jnt, labels = [m.body_jntadr[b] for b in bodies], [bnames[b] for b in bodies]
        comps = components(t, ncomp, default)
    else:
        jnt, labels, comps, comp_names = joints, [jnames[j] for j in joints], components(t, 1, (0,)), ("",)
    t.qadr = torch.as_tensor([m.jnt_qposadr[j] for j in jnt], device=device)
    t.vadr = torch.as_tensor([m.jnt_dofadr[j] for j in jnt], device=device)
    t.comps = torch.as_tensor(comps, device=device)
    t.k = (1 if t.cfg.shared else len(jnt)) * len(comps)
    base = ["|".join(labels)] if t.cfg.shared else labels
    t.labels = [b + (f".{comp_names[c]}" if t.free else "") for b in base for c in comps]
    if t.cfg.kind == "impulse":  # (targets, nbody) membership of each body in a target's subtree
        sub = np.zeros((len(bodies), m.nbody), dtype=np.float32)
        for i, b in enumerate(bodies):
            for c in range(m.nbody):
                p = c
                while p > 0 and p != b:
                    p = m.body_parentid[p]
                sub[i, c] = p == b
        t.subtree = torch.as_tensor(sub, device=device)


def kick(t: Term, body_mass: torch.Tensor, nv: int) -> torch.Tensor:
    """``(num_envs, nv)`` velocity change of a ``push``/``impulse`` term's current draws;
    ``body_mass`` ``(num_envs, nbody)`` [kg] divides an impulse."""
    num_envs, n = t.draw.shape[0], len(t.vadr)
    d = t.draw.view(num_envs, -1, len(t.comps)).expand(-1, n, -1)  # (N, targets, comps)
    if t.cfg.kind == "impulse":
        d = d / (body_mass.float() @ t.subtree.T)[..., None]
    cols = (t.vadr[:, None] + t.comps[None, :]).flatten()
    dv = torch.zeros(num_envs, nv, device=t.draw.device)
    return dv.index_add_(1, cols, d.reshape(num_envs, -1))


def offset_pose(t: Term, qpos: torch.Tensor) -> torch.Tensor:
    """``qpos`` ``(num_envs, nq)`` offset by an ``initial_pose`` term's current draws (a new tensor)."""
    num_envs, n, device = t.draw.shape[0], len(t.qadr), qpos.device
    d = t.draw.view(num_envs, -1, len(t.comps)).expand(-1, n, -1)
    if not t.free:
        return qpos.index_add(1, t.qadr, d[..., 0])
    off = torch.zeros(num_envs, n, 6, device=device)
    off[..., t.comps] = d
    qpos = qpos.clone()
    pos_cols = t.qadr[:, None] + torch.arange(3, device=device)
    quat_cols = t.qadr[:, None] + torch.arange(3, 7, device=device)
    qpos[:, pos_cols] += off[..., :3]
    qpos[:, quat_cols] = quat_mul(quat_from_rotvec(off[..., 3:]), qpos[:, quat_cols])  # world-axis rotation
    return qpos
