"""Batched forward kinematics in torch, from any backend's ``qpos``.

Every backend reports ``qpos`` in MuJoCo's conventions, so body and site poses are computed here
once, the same way for all of them (MuJoCo's ``mj_kinematics``, restricted to the bodies a task
asks for). This also makes the poses exact for the state after the last physics step, with no
one-substep lag from reading engine buffers filled before integration.

Quaternions are ``[w, x, y, z]``.
"""

from __future__ import annotations

import mujoco
import torch


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of ``(..., 4)`` quaternions."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate ``(..., 3)`` vectors by ``(..., 4)`` unit quaternions."""
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * torch.cross(u, v, dim=-1)
    return v + w * t + torch.cross(u, t, dim=-1)


def quat_from_axis_angle(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """``axis`` ``(3,)`` unit vector, ``angle`` ``(N,)`` [rad] -> ``(N, 4)``."""
    half = 0.5 * angle.unsqueeze(-1)
    return torch.cat((torch.cos(half), torch.sin(half) * axis), dim=-1)


class ForwardKinematics:
    """World poses of selected bodies and sites of a compiled scene, batched over envs."""

    def __init__(self, mj_model: mujoco.MjModel, device: torch.device, dtype: torch.dtype = torch.float32):
        m = mj_model
        self.model = m

        def t(x):
            return torch.as_tensor(x, dtype=dtype, device=device)

        self._body_pos = t(m.body_pos)
        self._body_quat = t(m.body_quat)
        self._jnt_pos = t(m.jnt_pos)
        self._jnt_axis = t(m.jnt_axis)
        self._site_pos = t(m.site_pos)
        self._site_quat = t(m.site_quat)
        self._qpos0 = t(m.qpos0)
        self.device = device
        self.dtype = dtype

    def ancestors(self, body_ids: list[int]) -> list[int]:
        """The given bodies and all their ancestors, world excluded, in tree order."""
        needed: set[int] = set()
        for b in body_ids:
            while b > 0 and b not in needed:
                needed.add(b)
                b = int(self.model.body_parentid[b])
        return sorted(needed)

    def body_poses(self, qpos: torch.Tensor, bodies: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """``{body_id: (pos_w (N, 3) [m], quat_w (N, 4))}`` for ``bodies`` (which must be closed under
        ancestors, see :meth:`ancestors`), from ``qpos`` ``(N, nq)``."""
        m = self.model
        n = qpos.shape[0]
        world = (
            torch.zeros(n, 3, dtype=self.dtype, device=self.device),
            torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=self.dtype, device=self.device).expand(n, 4),
        )
        poses: dict[int, tuple[torch.Tensor, torch.Tensor]] = {0: world}
        for b in bodies:
            ppos, pquat = poses[int(m.body_parentid[b])]
            pos = ppos + quat_rotate(pquat, self._body_pos[b].expand(n, 3))
            quat = quat_mul(pquat, self._body_quat[b].expand(n, 4))
            for j in range(m.body_jntadr[b], m.body_jntadr[b] + m.body_jntnum[b]):
                adr = m.jnt_qposadr[j]
                jtype = m.jnt_type[j]
                if jtype == mujoco.mjtJoint.mjJNT_FREE:
                    pos = qpos[:, adr : adr + 3]
                    quat = torch.nn.functional.normalize(qpos[:, adr + 3 : adr + 7], dim=-1)
                    continue
                anchor = pos + quat_rotate(quat, self._jnt_pos[j].expand(n, 3))
                if jtype == mujoco.mjtJoint.mjJNT_SLIDE:
                    axis_w = quat_rotate(quat, self._jnt_axis[j].expand(n, 3))
                    pos = pos + axis_w * (qpos[:, adr] - self._qpos0[adr]).unsqueeze(-1)
                    continue
                if jtype == mujoco.mjtJoint.mjJNT_HINGE:
                    qloc = quat_from_axis_angle(self._jnt_axis[j], qpos[:, adr] - self._qpos0[adr])
                else:  # ball
                    qloc = torch.nn.functional.normalize(qpos[:, adr : adr + 4], dim=-1)
                quat = quat_mul(quat, qloc)
                # Rotation about the joint anchor, not the body origin.
                pos = anchor - quat_rotate(quat, self._jnt_pos[j].expand(n, 3))
            poses[b] = (pos, quat)
        return poses

    def site_pos(self, body_pose: tuple[torch.Tensor, torch.Tensor], site_id: int) -> torch.Tensor:
        """World position ``(N, 3)`` [m] of a site given its body's pose."""
        pos, quat = body_pose
        return pos + quat_rotate(quat, self._site_pos[site_id].expand(pos.shape[0], 3))
