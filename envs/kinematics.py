"""Batched forward kinematics in torch, from any backend's ``qpos``.

Every backend reports ``qpos`` in MuJoCo's conventions, so body and site poses are computed here
once, the same way for all of them (MuJoCo's ``mj_kinematics``, restricted to the bodies a task
asks for). This also makes the poses exact for the state after the last physics step, with no
one-substep lag from reading engine buffers filled before integration.

Quaternions are ``[w, x, y, z]``.
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch


def norm(v: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """Euclidean norm of ``v`` along ``dim``, as ``sqrt(sum(v * v))``.

    The same values as ``torch.linalg.vector_norm`` to float rounding (no gradient is taken in the step
    path), but it stays fast on the envs-last layout of this module: the ``(N, 3)`` positions of
    :meth:`Poses.pos` and of the sites are transposed views of ``(3, N)`` rows, and ``vector_norm`` over
    their strided last dim costs 130-170 us at 1,024 envs against 8-9 us this way (BENCHMARKS.md,
    "Fewer slow ops in the step")."""
    return (v * v).sum(dim, keepdim=keepdim).sqrt()


def cross_soa(a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    """Cross product of 3-vectors held along ``dim`` of ``a`` and ``b`` (envs last, e.g. ``(J, 3, N)``
    with ``dim=1``), written out per component: 3-4x faster than ``torch.linalg.cross`` along an
    inner dim at 1,024 envs."""
    a0, a1, a2 = a.unbind(dim)
    b0, b1, b2 = b.unbind(dim)
    return torch.stack((a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0), dim)


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


class Poses:
    """World poses of a set of bodies, from :meth:`ForwardKinematics.body_poses`.

    Held as one ``(B, 3, 4, N)`` tensor, the top rows ``[R | p]`` of each body's homogeneous transform
    with the envs in the last dimension ("structure of arrays"): a product of two transforms is then a
    few elementwise ops over contiguous ``N``-vectors, which a CPU vectorises, instead of a batched
    product of ``N`` small matrices (4-5x faster at 1,024 envs; BENCHMARKS.md, "Kinematics with the
    envs last").

    ``poses[b]`` gives ``(pos_w (N, 3) [m], quat_w (N, 4))`` of body ``b`` (the quaternion converted from
    the rotation matrix on first use, ``w >= 0``); :meth:`pos` and :meth:`rot` are views without
    conversion, :meth:`affine` and :meth:`stack` the envs-last blocks."""

    def __init__(self, world: torch.Tensor, rows: dict[int, int], quats: dict[int, torch.Tensor] | None = None):
        self.world = world
        """``(B, 3, 4, N)`` ``[R | p]`` of the bodies, row ``rows[b]`` for body ``b``."""
        self.rows = rows
        """``{body_id: row of world}``; the world body 0 is not stored (its pose is the identity)."""
        self._quat: dict[int, torch.Tensor] = dict(quats or {})
        self._stacks: dict[tuple[int, ...], torch.Tensor] = {}
        self._frames: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}  # joint frames, envs last
        self._identity: torch.Tensor | None = None

    def __contains__(self, body: int) -> bool:
        return body == 0 or body in self.rows

    def __getitem__(self, body: int) -> tuple[torch.Tensor, torch.Tensor]:
        quat = self._quat.get(body)
        if quat is None:
            quat = self._quat[body] = quat_from_matrix(self.rot(body))
        return self.pos(body), quat

    @property
    def num_envs(self) -> int:
        return self.world.shape[-1]

    def affine(self, body: int) -> torch.Tensor:
        """``(3, 4, N)`` ``[R | p]`` of ``body``, envs last."""
        if body == 0:
            if self._identity is None:
                eye = torch.eye(3, 4, dtype=self.world.dtype, device=self.world.device)
                self._identity = eye.unsqueeze(-1).expand(3, 4, self.num_envs)
            return self._identity
        return self.world[self.rows[body]]

    def pos(self, body: int) -> torch.Tensor:
        """``(N, 3)`` [m] world position of ``body``'s frame (a view)."""
        return self.affine(body)[:, 3].T

    def rot(self, body: int) -> torch.Tensor:
        """``(N, 3, 3)`` world rotation matrix of ``body``'s frame (a view)."""
        return self.affine(body)[:, :3].permute(2, 0, 1)

    def stack(self, bodies: tuple[int, ...]) -> torch.Tensor:
        """``(len(bodies), 3, 4, N)`` ``[R | p]`` of ``bodies`` (no world body), envs last; kept."""
        out = self._stacks.get(bodies)
        if out is None:
            rows = [self.rows[b] for b in bodies]
            if rows == list(range(rows[0], rows[0] + len(rows))):
                out = self.world[rows[0] : rows[0] + len(rows)]
            else:
                out = self.world.index_select(0, torch.as_tensor(rows, device=self.world.device))
            self._stacks[bodies] = out
        return out


class ForwardKinematics:
    """World poses of selected bodies and sites of a compiled scene, batched over envs.

    Each body's transform relative to its parent is affine in its joint's coordinate: for a hinge by
    ``t`` [rad], Rodrigues' formula ``Rot(a, t) = I + sin t [a]x + (1 - cos t) [a]x^2`` gives
    ``M = C0 + sin t C1 + (1 - cos t) C2`` with constant ``(4, 4)`` matrices (the body's offset and
    rotation, the joint's anchor); for a slide by ``d`` [m], ``M = C0 + d C1``. All such bodies' ``M`` are
    computed in two tensor ops, then each body's world transform is its parent's times ``M``, written
    out as three multiply-adds over the envs (:class:`Poses` keeps the envs last). Free, ball and
    multi-joint bodies take the general path. This is MuJoCo's ``mj_kinematics`` (same values to float
    rounding), restricted to the bodies asked for.
    """

    def __init__(self, mj_model: mujoco.MjModel, device: torch.device, dtype: torch.dtype = torch.float32):
        m = mj_model
        self.model = m
        self.device = device
        self.dtype = dtype

        def t(x):
            return torch.as_tensor(x, dtype=dtype, device=device)

        self._jnt_axis = t(m.jnt_axis)
        self._jnt_pos = t(m.jnt_pos)
        self._site_pos = t(m.site_pos)
        self._site_quat = t(m.site_quat)
        self._qpos0 = t(m.qpos0)
        # (nbody, 4, 4) body offsets and (njnt, 4, 4) joint terms, as in the class docstring, in float64.
        self._offset = np.stack([_transform(_quat_to_matrix_np(m.body_quat[b]), m.body_pos[b]) for b in range(m.nbody)])
        self._plans: dict[tuple[int, ...], tuple] = {}

    def ancestors(self, body_ids: list[int]) -> list[int]:
        """The given bodies and all their ancestors, world excluded, in tree order."""
        needed: set[int] = set()
        for b in body_ids:
            while b > 0 and b not in needed:
                needed.add(b)
                b = int(self.model.body_parentid[b])
        return sorted(needed)

    def _joint_terms(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """``(K1, K2)`` ``(4, 4)`` with the joint's local transform ``I + a K1 + b K2``: ``a = sin t``,
        ``b = 1 - cos t`` for a hinge at anchor ``p`` (``[[R, p - R p], [0, 1]]``), ``a = d``, ``b = 0`` for a slide."""
        m = self.model
        axis, anchor = m.jnt_axis[j], m.jnt_pos[j]
        k1, k2 = np.zeros((4, 4)), np.zeros((4, 4))
        if int(m.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_SLIDE):
            k1[:3, 3] = axis
            return k1, k2
        ax = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
        ax2 = ax @ ax
        k1[:3, :3], k1[:3, 3] = ax, -ax @ anchor
        k2[:3, :3], k2[:3, 3] = ax2, -ax2 @ anchor
        return k1, k2

    def _plan(self, bodies: tuple[int, ...]):
        """For ``bodies``: the one-joint hinge/slide bodies (``{body: column}``), their qpos columns, ``qpos0``,
        hinge mask and ``(K, 3, 4, 1)`` constants ``C0, C1, C2`` (top rows, envs last); and each fixed body's
        constant ``(3, 4, 1)``."""
        plan = self._plans.get(bodies)
        if plan is not None:
            return plan
        m, one, cols, hinge, c0, c1, c2, fixed = self.model, [], [], [], [], [], [], {}

        def t(x):
            return torch.as_tensor(np.asarray(x)[..., :3, :, None], dtype=self.dtype, device=self.device)

        for b in bodies:
            n, j = int(m.body_jntnum[b]), int(m.body_jntadr[b])
            if n == 0:
                fixed[b] = t(self._offset[b])
            elif n == 1 and int(m.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
                k1, k2 = self._joint_terms(j)
                one.append(b)
                cols.append(int(m.jnt_qposadr[j]))
                hinge.append(int(m.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_HINGE))
                c0.append(self._offset[b])
                c1.append(self._offset[b] @ k1)
                c2.append(self._offset[b] @ k2)

        col = torch.as_tensor(cols, dtype=torch.long, device=self.device)
        h = torch.as_tensor(hinge, device=self.device).unsqueeze(-1)  # (K, 1)
        consts = (h, t(c0), t(c1), t(c2)) if one else None
        plan = ({b: k for k, b in enumerate(one)}, col, self._qpos0[col].unsqueeze(-1), consts, fixed)
        self._plans[bodies] = plan
        return plan

    def body_poses(self, qpos: torch.Tensor, bodies: list[int]) -> Poses:
        """World poses of ``bodies`` (which must be closed under ancestors, see :meth:`ancestors`) from
        ``qpos`` ``(N, nq)``."""
        m = self.model
        n = qpos.shape[0]
        index, col, q0, consts, fixed = self._plan(tuple(bodies))
        if index:  # every one-joint body's local [R | p] at once: (K, 3, 4, N)
            h, c0, c1, c2 = consts
            t = qpos.t().index_select(0, col) - q0  # (K, N)
            a = torch.where(h, torch.sin(t), t).unsqueeze(1).unsqueeze(1)
            b = torch.where(h, 1.0 - torch.cos(t), 0.0).unsqueeze(1).unsqueeze(1)
            local = torch.addcmul(c0, a, c1).addcmul_(b, c2)
        world = qpos.new_empty(len(bodies), 3, 4, n)
        rows = {b: r for r, b in enumerate(bodies)}
        quats: dict[int, torch.Tensor] = {}
        for r, b in enumerate(bodies):
            parent, out = int(m.body_parentid[b]), world[r]
            if b in index:
                mat = local[index[b]]
            elif b in fixed:
                mat = fixed[b]
            else:
                mat, quat = self._general_local(qpos, b)
                if quat is not None:  # a free body (a child of the world): its pose is qpos itself
                    out.copy_(mat)
                    quats[b] = quat
                    continue
            if parent == 0:
                out.copy_(mat.expand(3, 4, n))
            else:  # [Rp | pp] [Rm | pm] = [Rp Rm | Rp pm + pp], one column of Rp at a time
                par = world[rows[parent]]
                torch.mul(par[:, 0, None], mat[0], out=out)
                out.addcmul_(par[:, 1, None], mat[1]).addcmul_(par[:, 2, None], mat[2])
                out[:, 3] += par[:, 3]
        return Poses(world, rows, quats)

    def _general_local(self, qpos: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Local ``[R | p]`` ``(3, 4, N)`` of a body with a free or ball joint or several joints; for a free
        joint the world ``[R | p]`` and its normalised quaternion ``(N, 4)`` instead."""
        m = self.model
        mat = torch.as_tensor(self._offset[b], dtype=self.dtype, device=self.device).expand(qpos.shape[0], 4, 4)
        for j in range(m.body_jntadr[b], m.body_jntadr[b] + m.body_jntnum[b]):
            adr, jtype = int(m.jnt_qposadr[j]), int(m.jnt_type[j])
            if jtype == int(mujoco.mjtJoint.mjJNT_FREE):
                quat = torch.nn.functional.normalize(qpos[:, adr + 3 : adr + 7], dim=-1)
                rot = quat_to_matrix(quat).permute(1, 2, 0)  # (3, 3, N)
                return torch.cat((rot, qpos[:, adr : adr + 3].T.unsqueeze(1)), dim=1), quat
            if jtype == int(mujoco.mjtJoint.mjJNT_BALL):
                rot = quat_to_matrix(torch.nn.functional.normalize(qpos[:, adr : adr + 4], dim=-1))
                anchor = self._jnt_pos[j]
                joint = _transform_t(rot, anchor - rot @ anchor)
            else:
                k1, k2 = (torch.as_tensor(k, dtype=self.dtype, device=self.device) for k in self._joint_terms(j))
                t = (qpos[:, adr] - self._qpos0[adr])[:, None, None]
                eye = torch.eye(4, dtype=self.dtype, device=self.device)
                if jtype == int(mujoco.mjtJoint.mjJNT_HINGE):
                    joint = eye + torch.sin(t) * k1 + (1 - torch.cos(t)) * k2
                else:
                    joint = eye + t * k1
            mat = mat @ joint
        return mat[:, :3].permute(1, 2, 0), None

    def joint_frames_soa(self, poses: Poses, joints: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """World axes ``(J, 3, N)`` and anchors ``(J, 3, N)`` [m] of ``joints``, envs last; kept on ``poses``."""
        out = poses._frames.get(joints)
        if out is None:
            m = self.model
            trans = poses.stack(tuple(int(m.jnt_bodyid[j]) for j in joints))  # (J, 3, 4, N)
            rot = trans[:, :, :3]
            ids = torch.as_tensor(joints, dtype=torch.long, device=self.device)
            axis = (rot * self._jnt_axis[ids][:, None, :, None]).sum(2)
            anchor = trans[:, :, 3]
            if m.jnt_pos[list(joints)].any():
                anchor = anchor + (rot * self._jnt_pos[ids][:, None, :, None]).sum(2)
            out = poses._frames[joints] = (axis, anchor)
        return out

    def joint_frames(self, poses: Poses, joints: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """World axes ``(N, J, 3)`` and anchors ``(N, J, 3)`` [m] of ``joints`` (views of
        :meth:`joint_frames_soa`)."""
        axis, anchor = self.joint_frames_soa(poses, joints)
        return axis.permute(2, 0, 1), anchor.permute(2, 0, 1)

    def site_pos_soa(self, poses: Poses, site_id: int) -> torch.Tensor:
        """World position ``(3, N)`` [m] of a site, envs last, from poses that include its body."""
        aff = poses.affine(int(self.model.site_bodyid[site_id]))
        sp = self._site_pos[site_id]
        return torch.addcmul(aff[:, 3], aff[:, 0], sp[0]).addcmul_(aff[:, 1], sp[1]).addcmul_(aff[:, 2], sp[2])

    def site_pos(self, poses: Poses, site_id: int) -> torch.Tensor:
        """World position ``(N, 3)`` [m] of a site, from poses that include its body."""
        return self.site_pos_soa(poses, site_id).T


def _transform(rot: np.ndarray, pos: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot, pos
    return out


def _transform_t(rot: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``(N, 4, 4)`` from rotations ``(N, 3, 3)`` and positions ``(N, 3)`` (or ``(3,)``)."""
    n = rot.shape[0]
    top = torch.cat((rot, pos.expand(n, 3).unsqueeze(-1)), dim=-1)
    bottom = rot.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(n, 1, 4)
    return torch.cat((top, bottom), dim=1)


def _quat_to_matrix_np(q: np.ndarray) -> np.ndarray:
    out = np.zeros(9)
    mujoco.mju_quat2Mat(out, np.asarray(q, dtype=np.float64))
    return out.reshape(3, 3)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of ``(..., 4)`` unit quaternions ``[w, x, y, z]``."""
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        (
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ),
        dim=-1,
    ).unflatten(-1, (3, 3))  # fmt: skip


def _quat_candidates() -> np.ndarray:
    """``(16, 10)``: the 4x4 matrix ``4 q_i q_k`` of a unit quaternion as a linear map of its rotation
    matrix's entries ``(m00, m01, ..., m22, 1)`` (the trace and the off-diagonal sums and differences)."""
    e = {(r, c): 3 * r + c for r in range(3) for c in range(3)}
    one = 9
    diag = [
        {one: 1, e[0, 0]: 1, e[1, 1]: 1, e[2, 2]: 1},
        {one: 1, e[0, 0]: 1, e[1, 1]: -1, e[2, 2]: -1},
        {one: 1, e[0, 0]: -1, e[1, 1]: 1, e[2, 2]: -1},
        {one: 1, e[0, 0]: -1, e[1, 1]: -1, e[2, 2]: 1},
    ]
    off = {
        (0, 1): {e[2, 1]: 1, e[1, 2]: -1},  # 4 w x
        (0, 2): {e[0, 2]: 1, e[2, 0]: -1},  # 4 w y
        (0, 3): {e[1, 0]: 1, e[0, 1]: -1},  # 4 w z
        (1, 2): {e[1, 0]: 1, e[0, 1]: 1},  # 4 x y
        (1, 3): {e[0, 2]: 1, e[2, 0]: 1},  # 4 x z
        (2, 3): {e[1, 2]: 1, e[2, 1]: 1},  # 4 y z
    }
    out = np.zeros((4, 4, 10))
    for i in range(4):
        for k, v in diag[i].items():
            out[i, i, k] = v
    for (i, k), terms in off.items():
        for idx, v in terms.items():
            out[i, k, idx] = out[k, i, idx] = v
    return out.reshape(16, 10)


_QUAT_CANDIDATES: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def quat_from_matrix(rot: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` ``[w, x, y, z]``, ``w >= 0``, of rotation matrices ``(..., 3, 3)``.

    Row ``i`` of ``4 q q^T`` is ``4 q_i q``; the row with the largest diagonal entry ``4 q_i^2 >= 1``
    normalised is ``q`` (Shepperd's method, Journal of Guidance and Control 1(3), 1978)."""
    key = (rot.dtype, rot.device)
    if key not in _QUAT_CANDIDATES:
        _QUAT_CANDIDATES[key] = torch.as_tensor(_quat_candidates().T, dtype=rot.dtype, device=rot.device)
    flat = torch.cat((rot.flatten(-2), rot.new_ones(*rot.shape[:-2], 1)), dim=-1)
    cand = (flat @ _QUAT_CANDIDATES[key]).unflatten(-1, (4, 4))
    best = cand.diagonal(dim1=-2, dim2=-1).contiguous().argmax(-1)  # strided, argmax is ~10x slower
    row = torch.take_along_dim(cand, best[..., None, None].expand(*best.shape, 1, 4), dim=-2).squeeze(-2)
    q = torch.nn.functional.normalize(row, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_conjugate(q: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(..., 4)`` unit quaternions."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def quat_to_rotvec(q: torch.Tensor) -> torch.Tensor:
    """Rotation vector ``(..., 3)`` [rad] (axis times angle, angle in ``[0, pi]``) of ``(..., 4)`` unit
    quaternions; ``q`` and ``-q`` give the same vector."""
    q = torch.where(q[..., :1] < 0, -q, q)
    s = norm(q[..., 1:], keepdim=True)
    angle = 2.0 * torch.atan2(s, q[..., :1])
    # angle / sin(angle / 2) -> 2 as s -> 0; the clamp avoids 0/0.
    scale = torch.where(s > 1e-8, angle / s.clamp(min=1e-8), torch.full_like(s, 2.0))
    return q[..., 1:] * scale


def quat_from_rotvec(v: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` of rotation vectors ``(..., 3)`` [rad]."""
    angle = norm(v, keepdim=True)
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


def site_quat(fk: ForwardKinematics, poses: Poses, site_id: int) -> torch.Tensor:
    """World orientation ``(N, 4)`` of a site, from poses that include its body."""
    quat = poses[int(fk.model.site_bodyid[site_id])][1]
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
        joints = []
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
            joints.append(j)
        self.joints = tuple(joints)
        self.dofs = [int(m.jnt_dofadr[j]) for j in joints]
        """Columns of ``qvel`` the chain's joints drive, in chain order."""
        slide = [int(m.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_SLIDE) for j in joints]
        self._slide = torch.as_tensor(slide, device=fk.device)[:, None, None] if any(slide) else None

    def soa(self, poses: Poses) -> tuple[torch.Tensor, torch.Tensor]:
        """``(site_pos_w (3, N) [m], jac (6, len(dofs), N))``, envs last, from body poses that include the
        chain; rows 0-2 are linear [m/rad or m/m], rows 3-5 angular [rad/rad], columns follow :attr:`dofs`."""
        p = self.fk.site_pos_soa(poses, self.site_id)
        axis, anchor = self.fk.joint_frames_soa(poses, self.joints)  # (J, 3, N) each
        lin, ang = cross_soa(axis, p - anchor, dim=1), axis
        if self._slide is not None:
            lin, ang = torch.where(self._slide, axis, lin), torch.where(self._slide, 0.0, axis)
        # A contiguous (6, J, N), not a transposed (J, 6, N): the IK's sums over J run 2x faster.
        return p, torch.cat((lin.transpose(0, 1), ang.transpose(0, 1)))

    def __call__(self, poses: Poses) -> tuple[torch.Tensor, torch.Tensor]:
        """``(site_pos_w (N, 3) [m], jac (N, 6, len(dofs)))``: :meth:`soa` with the envs first."""
        p, jac = self.soa(poses)
        return p.T, jac.permute(2, 0, 1)


class JointGravity:
    """Batched gravity torques on hinge joints, from the body poses of :class:`ForwardKinematics`.

    Returns what MuJoCo's ``qfrc_bias`` holds at zero velocity for those joints: the generalized
    force [Nm] the actuators must supply to hold the pose against gravity. A position servo with
    stiffness ``kp`` [Nm/rad] holds ``q`` statically when its target is ``q + gravity / kp``."""

    def __init__(self, fk: ForwardKinematics, joint_ids: list[int]) -> None:
        m = fk.model
        self.fk = fk
        self.joint_ids = tuple(joint_ids)
        for j in joint_ids:
            if int(m.jnt_type[j]) != int(mujoco.mjtJoint.mjJNT_HINGE):
                raise NotImplementedError(f"JointGravity supports hinge joints; joint {m.joint(j).name!r} is not one")
        joint_bodies = [int(m.jnt_bodyid[j]) for j in joint_ids]
        subtree = [k for k in range(1, m.nbody) if any(b in fk.ancestors([k]) for b in joint_bodies)]
        self.bodies = fk.ancestors(subtree)
        self.mass_bodies = tuple(k for k in subtree if m.body_mass[k] > 0)
        # weight[j, k]: mass of body k if it moves with joint j, else 0 [kg].
        w = [[m.body_mass[k] if b in fk.ancestors([k]) else 0.0 for k in self.mass_bodies] for b in joint_bodies]
        self._weight = torch.as_tensor(w, dtype=fk.dtype, device=fk.device)
        self._total = self._weight.sum(1, keepdim=True)  # (J, 1) [kg]
        ipos = m.body_ipos[list(self.mass_bodies)].T  # (3, K) centres of mass in the body frames [m]
        self._ipos = torch.as_tensor(ipos, dtype=fk.dtype, device=fk.device)[:, :, None, None]  # (3, K, 1, 1)
        self._gravity = torch.as_tensor(m.opt.gravity, dtype=fk.dtype, device=fk.device)[:, None]  # (3, 1), envs last

    def __call__(self, poses: Poses) -> torch.Tensor:
        """``(N, len(joint_ids))`` [Nm] from body poses that include :attr:`bodies`."""
        # (K, 3, N) centres of mass, p + R ipos: three multiply-adds, no (K, 3, 4, N) temporary.
        st, ip = poses.stack(self.mass_bodies), self._ipos
        com = torch.addcmul(st[:, :, 3], st[:, :, 0], ip[0]).addcmul_(st[:, :, 1], ip[1]).addcmul_(st[:, :, 2], ip[2])
        k, _, n = com.shape
        mass_moment = (self._weight @ com.reshape(k, 3 * n)).view(-1, 3, n)  # (J, 3, N) sum of m * com
        axis, anchor = self.fk.joint_frames_soa(poses, self.joint_ids)
        lever = mass_moment - self._total.unsqueeze(-1) * anchor  # sum of m * (com - anchor)
        # Torque of gravity about the axis is axis . (lever x g); the actuator must cancel it.
        return -(axis * cross_soa(lever, self._gravity.expand_as(lever), dim=1)).sum(1).T
