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
    """Hamilton product of ``(..., 4)`` quaternions, in its scalar-vector form
    ``(a_w b_w - a_v . b_v, a_w b_v + b_w a_v + a_v x b_v)``: 10 tensor ops instead of 28 for the
    component form, the same values to float rounding."""
    aw, av = a[..., :1], a[..., 1:]
    bw, bv = b[..., :1], b[..., 1:]
    return torch.cat((aw * bw - (av * bv).sum(-1, keepdim=True), aw * bv + bw * av + torch.linalg.cross(av, bv)), -1)


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
        # Constants that leave a pose unchanged (a body at its parent's origin, unrotated; a joint at its
        # body's origin): their products are skipped, which is exact and ~1/3 of the ops of a Panda chain.
        self._zero_pos = [not m.body_pos[b].any() for b in range(m.nbody)]
        self._unit_quat = [bool((m.body_quat[b] == (1.0, 0.0, 0.0, 0.0)).all()) for b in range(m.nbody)]
        self._zero_jnt_pos = [not m.jnt_pos[j].any() for j in range(m.njnt)]
        self._plans: dict[tuple[int, ...], tuple] = {}
        self.device = device
        self.dtype = dtype

    def anchor(self, pos: torch.Tensor, quat: torch.Tensor, joint: int) -> torch.Tensor:
        """World position ``(N, 3)`` [m] of ``joint``'s anchor, given its body's pose."""
        if self._zero_jnt_pos[joint]:
            return pos
        return pos + quat_rotate(quat, self._jnt_pos[joint].expand_as(pos))

    def ancestors(self, body_ids: list[int]) -> list[int]:
        """The given bodies and all their ancestors, world excluded, in tree order."""
        needed: set[int] = set()
        for b in body_ids:
            while b > 0 and b not in needed:
                needed.add(b)
                b = int(self.model.body_parentid[b])
        return sorted(needed)

    def _hinge_plan(self, bodies: tuple[int, ...]):
        """For the bodies among ``bodies`` turned by one hinge at their origin: ``{body id: column}``, the hinges' qpos
        columns and ``qpos0``, and the constant quaternions ``B = body_quat`` and ``B' = body_quat * (0, axis)``,
        so that ``body_quat * rot(axis, t) = cos(t/2) B + sin(t/2) B'`` for all of them in a few ops."""
        plan = self._plans.get(bodies)
        if plan is None:
            m, ids, adrs, b0, b1 = self.model, [], [], [], []
            for b in bodies:
                j = int(m.body_jntadr[b])
                if m.body_jntnum[b] != 1 or m.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE or not self._zero_jnt_pos[j]:
                    continue
                ids.append(b)
                adrs.append(int(m.jnt_qposadr[j]))
                b0.append(self._body_quat[b])
                axis = torch.cat((self._body_quat.new_zeros(1), self._jnt_axis[j]))
                b1.append(quat_mul(self._body_quat[b], axis))
            adr = torch.as_tensor(adrs, dtype=torch.long, device=self.device)
            index = {b: k for k, b in enumerate(ids)}
            plan = (index, adr, self._qpos0[adr], torch.stack(b0) if ids else None, torch.stack(b1) if ids else None)
            self._plans[bodies] = plan
        return plan

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
        hinge, cols, q0, b0, b1 = self._hinge_plan(tuple(bodies))
        if hinge:  # every hinge's local rotation at once: (N, H, 4)
            half = 0.5 * (qpos[:, cols] - q0)
            local = torch.cos(half).unsqueeze(-1) * b0 + torch.sin(half).unsqueeze(-1) * b1
        for b in bodies:
            ppos, pquat = poses[int(m.body_parentid[b])]
            pos = ppos if self._zero_pos[b] else ppos + quat_rotate(pquat, self._body_pos[b].expand(n, 3))
            if b in hinge:
                poses[b] = (pos, quat_mul(pquat, local[:, hinge[b]]))
                continue
            quat = pquat if self._unit_quat[b] else quat_mul(pquat, self._body_quat[b].expand(n, 4))
            for j in range(m.body_jntadr[b], m.body_jntadr[b] + m.body_jntnum[b]):
                adr = m.jnt_qposadr[j]
                jtype = m.jnt_type[j]
                if jtype == mujoco.mjtJoint.mjJNT_FREE:
                    pos = qpos[:, adr : adr + 3]
                    quat = torch.nn.functional.normalize(qpos[:, adr + 3 : adr + 7], dim=-1)
                    continue
                anchor = self.anchor(pos, quat, j)
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
                if not self._zero_jnt_pos[j]:
                    pos = anchor - quat_rotate(quat, self._jnt_pos[j].expand(n, 3))
            poses[b] = (pos, quat)
        return poses

    def site_pos(self, body_pose: tuple[torch.Tensor, torch.Tensor], site_id: int) -> torch.Tensor:
        """World position ``(N, 3)`` [m] of a site given its body's pose."""
        pos, quat = body_pose
        return pos + quat_rotate(quat, self._site_pos[site_id].expand(pos.shape[0], 3))


def quat_conjugate(q: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(..., 4)`` unit quaternions."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def quat_to_rotvec(q: torch.Tensor) -> torch.Tensor:
    """Rotation vector ``(..., 3)`` [rad] (axis times angle, angle in ``[0, pi]``) of ``(..., 4)`` unit
    quaternions; ``q`` and ``-q`` give the same vector."""
    q = torch.where(q[..., :1] < 0, -q, q)
    s = torch.linalg.vector_norm(q[..., 1:], dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(s, q[..., :1])
    # angle / sin(angle / 2) -> 2 as s -> 0; the clamp avoids 0/0.
    scale = torch.where(s > 1e-8, angle / s.clamp(min=1e-8), torch.full_like(s, 2.0))
    return q[..., 1:] * scale


def quat_from_rotvec(v: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` of rotation vectors ``(..., 3)`` [rad]."""
    angle = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    half = 0.5 * angle
    # sin(angle / 2) / angle -> 1/2 as angle -> 0.
    k = torch.where(angle > 1e-8, torch.sin(half) / angle.clamp(min=1e-8), torch.full_like(angle, 0.5))
    return torch.cat((torch.cos(half), v * k), dim=-1)


def quat_from_yaw(yaw: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` rotations about the world z axis by ``yaw`` ``(N,)`` [rad]."""
    half = 0.5 * yaw
    z = torch.zeros_like(half)
    return torch.stack((torch.cos(half), z, z, torch.sin(half)), dim=-1)


def yaw_of(q: torch.Tensor) -> torch.Tensor:
    """``(N,)`` [rad] heading of the body x axis about world z for ``(N, 4)`` quaternions."""
    w, x, y, z = q.unbind(-1)
    return torch.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def site_quat(fk: ForwardKinematics, body_pose: tuple[torch.Tensor, torch.Tensor], site_id: int) -> torch.Tensor:
    """World orientation ``(N, 4)`` of a site given its body's pose."""
    quat = body_pose[1]
    return quat_mul(quat, fk._site_quat[site_id].expand(quat.shape[0], 4))


class SiteJacobian:
    """Batched geometric Jacobian of a site, from the body poses of :class:`ForwardKinematics`.

    For every hinge joint on the chain from the world to the site's body the position column is
    ``axis_w x (p_site - anchor_w)`` and the rotation column ``axis_w``; a slide joint contributes
    ``axis_w`` to the position rows only. This is MuJoCo's ``mj_jacSite`` for chains of hinge and
    slide joints with at most one joint per body (the Panda's); other chains are refused."""

    def __init__(self, fk: ForwardKinematics, site_id: int) -> None:
        m = fk.model
        self.fk = fk
        self.site_id = site_id
        self.body = int(m.site_bodyid[site_id])
        self.bodies = fk.ancestors([self.body])
        self.joints: list[tuple[int, int, int]] = []  # (body, joint, dof)
        for b in self.bodies:
            n = int(m.body_jntnum[b])
            if n == 0:
                continue
            j = int(m.body_jntadr[b])
            if n > 1 or int(m.jnt_type[j]) not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
                raise NotImplementedError(
                    f"SiteJacobian supports one hinge or slide joint per body; body {m.body(b).name!r} has "
                    f"{n} joint(s) of type {int(m.jnt_type[j])}"
                )
            self.joints.append((b, j, int(m.jnt_dofadr[j])))
        self.dofs = [d for _, _, d in self.joints]
        """Columns of ``qvel`` the chain's joints drive, in chain order."""

    def __call__(self, poses: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(site_pos_w (N, 3) [m], jac (N, 6, len(dofs)))`` from body poses that include the chain;
        rows 0-2 are linear [m/rad or m/m], rows 3-5 angular [rad/rad], columns follow :attr:`dofs`."""
        fk, m = self.fk, self.fk.model
        p = fk.site_pos(poses[self.body], self.site_id)
        cols = []
        for b, j, _ in self.joints:
            pos, quat = poses[b]
            axis = quat_rotate(quat, fk._jnt_axis[j].expand_as(pos))
            if int(m.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_SLIDE):
                cols.append(torch.cat((axis, torch.zeros_like(axis)), dim=-1))
                continue
            anchor = fk.anchor(pos, quat, j)
            cols.append(torch.cat((torch.cross(axis, p - anchor, dim=-1), axis), dim=-1))
        return p, torch.stack(cols, dim=-1)


class JointGravity:
    """Batched gravity torques on hinge joints, from the body poses of :class:`ForwardKinematics`.

    Returns what MuJoCo's ``qfrc_bias`` holds at zero velocity for those joints: the generalized
    force [Nm] the actuators must supply to hold the pose against gravity. A position servo with
    stiffness ``kp`` [Nm/rad] holds ``q`` statically when its target is ``q + gravity / kp``."""

    def __init__(self, fk: ForwardKinematics, joint_ids: list[int]) -> None:
        m = fk.model
        self.fk = fk
        self.joint_ids = joint_ids
        for j in joint_ids:
            if int(m.jnt_type[j]) != int(mujoco.mjtJoint.mjJNT_HINGE):
                raise NotImplementedError(f"JointGravity supports hinge joints; joint {m.joint(j).name!r} is not one")
        self.joint_bodies = [int(m.jnt_bodyid[j]) for j in joint_ids]
        subtree = [k for k in range(1, m.nbody) if any(b in fk.ancestors([k]) for b in self.joint_bodies)]
        self.bodies = fk.ancestors(subtree)
        self.mass_bodies = [k for k in subtree if m.body_mass[k] > 0]
        # weight[j, k]: mass of body k if it moves with joint j, else 0 [kg].
        w = [[m.body_mass[k] if b in fk.ancestors([k]) else 0.0 for k in self.mass_bodies] for b in self.joint_bodies]
        self._weight = torch.as_tensor(w, dtype=fk.dtype, device=fk.device)
        self._ipos = torch.as_tensor(m.body_ipos[self.mass_bodies], dtype=fk.dtype, device=fk.device)
        self._gravity = torch.as_tensor(m.opt.gravity, dtype=fk.dtype, device=fk.device)

    def __call__(self, poses: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``(N, len(joint_ids))`` [Nm] from body poses that include :attr:`bodies`."""
        fk = self.fk
        com = torch.stack(
            [
                poses[k][0] + quat_rotate(poses[k][1], self._ipos[i].expand_as(poses[k][0]))
                for i, k in enumerate(self.mass_bodies)
            ]
        )  # (K, N, 3) centres of mass
        mass_moment = torch.einsum("jk,knc->jnc", self._weight, com)  # (J, N, 3) sum of m * com
        total = self._weight.sum(1).view(-1, 1, 1)
        out = []
        for i, (j, b) in enumerate(zip(self.joint_ids, self.joint_bodies, strict=True)):
            pos, quat = poses[b]
            axis = quat_rotate(quat, fk._jnt_axis[j].expand_as(pos))
            anchor = fk.anchor(pos, quat, j)
            lever = mass_moment[i] - total[i] * anchor  # sum of m * (com - anchor)
            # Torque of gravity about the axis is axis . (lever x g); the actuator must cancel it.
            out.append(-(axis * torch.cross(lever, self._gravity.expand_as(lever), dim=-1)).sum(-1))
        return torch.stack(out, dim=-1)
