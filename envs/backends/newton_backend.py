"""Newton backend: ``num_envs`` worlds of one MJCF scene stepped by Newton's ``SolverMuJoCo``
(MuJoCo Warp), exposed in MuJoCo's conventions.

How the pieces meet:

- The scene is imported with ``ModelBuilder.add_mjcf(xml_path, ctrl_direct=True)`` (Newton expands
  ``<include>``), replicated into ``num_envs`` worlds and simulated by ``SolverMuJoCo`` with the
  MJCF ``<option>`` values of ``mj_model`` and MuJoCo Warp's own collision detection (the
  solver's default, ``use_mujoco_contacts=True``).
- ``ctrl_direct=True`` makes every MJCF actuator (``<position>``, ``<general>``, ``<motor>``, ...)
  a ``CTRL_DIRECT`` actuator: each step the solver copies ``control.mujoco.ctrl``
  ``(num_envs * nu,)``, world-major in MJCF actuator order, verbatim into MuJoCo Warp's
  ``d.ctrl``, so ``ctrl`` means exactly what ``MjData.ctrl`` means (gains, bias, ctrlrange
  clamping, ``ctrllimited``: all MuJoCo's).
- Reading: MuJoCo Warp keeps ``d.qpos`` ``(num_envs, nq)`` / ``d.qvel`` ``(num_envs, nv)`` in
  MuJoCo's own layout and conventions (free joint: quaternion wxyz, origin velocity in world,
  angular velocity in body frame). :attr:`qpos` / :attr:`qvel` are zero-copy torch views of them,
  so a step refreshes them with no extra work.
- Writing: ``SolverMuJoCo.step`` pushes Newton's ``State.joint_q`` / ``joint_qd`` into ``d.qpos`` /
  ``d.qvel`` before every step, so :meth:`set_state` converts MuJoCo coordinates into Newton's
  (scalar joints relative to the MJCF ``ref``; free joints relative to the joint anchors with an
  xyzw quaternion and the centre-of-mass twist in the parent frame; ball joints in the anchor
  frame) with batched torch ops.
"""

from __future__ import annotations

import warnings

import mujoco
import newton  # noqa: TID253 - this module is itself imported lazily by the backend factory
import numpy as np
import torch
import warp as wp  # noqa: TID253

from .base import Backend

_MAXVAL = 1e10
"""MuJoCo's ``mjMAXVAL``: MuJoCo C resets a world whose ``|qpos|``/``|qvel|`` exceed it."""


# --- quaternion helpers, (..., 4) wxyz ---------------------------------------------------------


def _qmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        -1,
    )


def _qconj(q: torch.Tensor) -> torch.Tensor:
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def _qrot(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` (..., 3) by the unit quaternion ``q`` (..., 4) wxyz."""
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * torch.linalg.cross(u, v)
    return v + w * t + torch.linalg.cross(u, t)


def _xyzw_to_wxyz(q: torch.Tensor) -> torch.Tensor:
    return q[..., [3, 0, 1, 2]]


def _wxyz_to_xyzw(q: torch.Tensor) -> torch.Tensor:
    return q[..., [1, 2, 3, 0]]


class NewtonBackend(Backend):
    """Newton ``SolverMuJoCo`` (MuJoCo Warp) backend; see the module docstring for the data flow."""

    name = "newton"

    def __init__(
        self,
        mj_model: mujoco.MjModel,
        xml_path: str,
        *,
        num_envs: int,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ):
        """Build ``num_envs`` worlds of the MJCF scene ``xml_path``.

        Args:
            mj_model: the nominal compiled scene (sizes, names, options; checked against Newton's).
            xml_path: the MJCF scene file (``<include>`` is expanded by Newton's importer).
            num_envs: number of worlds.
            device: ``"cuda"`` if asked for and available, else ``"cpu"``.
            seed: kept for the interface; the physics is deterministic.
        """
        wp.init()
        self.mj_model = mj_model
        self.num_envs = int(num_envs)
        self.seed = int(seed)
        wants_cuda = torch.device(device).type == "cuda"
        self.device = torch.device(device if wants_cuda and wp.is_cuda_available() else "cpu")
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        wp_device = wp.device_from_torch(self.device)

        opt = mj_model.opt
        gravity = (0.0, 0.0, 0.0) if opt.disableflags & mujoco.mjtDisableBit.mjDSBL_GRAVITY else opt.gravity
        template = newton.ModelBuilder(gravity=tuple(float(g) for g in gravity))
        template.rigid_gap = 0.0  # MuJoCo's default geom gap (Newton's is 0.1 m of extra detection)
        template.add_mjcf(xml_path, ctrl_direct=True)
        builder = newton.ModelBuilder(gravity=tuple(float(g) for g in gravity))
        builder.replicate(template, self.num_envs)
        self.model = builder.finalize(device=wp_device)
        self._copy_actuator_dynamics()
        self.solver = newton.solvers.SolverMuJoCo(
            self.model,
            integrator=int(opt.integrator),
            solver=int(opt.solver),
            cone=int(opt.cone),
            iterations=int(opt.iterations),
            ls_iterations=int(opt.ls_iterations),
            tolerance=float(opt.tolerance),
            ls_tolerance=float(opt.ls_tolerance),
            impratio=float(opt.impratio),
            enable_multiccd=not opt.disableflags & mujoco.mjtDisableBit.mjDSBL_MULTICCD,
            # Without this every free root gets an (inactive) weld for runtime kinematic switching.
            kinematic_switchable_roots=False,
        )
        self._check_layout()

        self.state_0, self.state_1 = self.model.state(), self.model.state()
        self.control = self.model.control()
        n, nu = self.num_envs, mj_model.nu
        self._ctrl = wp.to_torch(self.control.mujoco.ctrl).view(n, nu) if nu else None
        self.qpos = wp.to_torch(self.solver.mjw_data.qpos)
        self.qvel = wp.to_torch(self.solver.mjw_data.qvel)
        # Newton joint coordinates of both state buffers as (num_envs, per-world) views.
        self._joint_views = {
            id(s): (wp.to_torch(s.joint_q).view(n, -1), wp.to_torch(s.joint_qd).view(n, -1))
            for s in (self.state_0, self.state_1)
        }
        # SolverMuJoCo.reset's world mask has one extra entry for the global world -1.
        self._reset_mask = torch.zeros(n + 1, dtype=torch.bool, device=self.device)
        self._reset_mask_wp = wp.from_torch(self._reset_mask, dtype=wp.bool)
        self._build_conversion()

        qpos0 = torch.as_tensor(mj_model.qpos0, dtype=torch.float32, device=self.device).expand(n, -1)
        everything = torch.ones(n, dtype=torch.bool, device=self.device)
        self.set_state(everything, qpos0, torch.zeros_like(self.qvel))

    # --- construction helpers ------------------------------------------------------------------

    _ACTUATOR_FIELDS = ("dyntype", "gaintype", "biastype", "dynprm", "gainprm", "biasprm")

    def _copy_actuator_dynamics(self) -> None:
        """Give Newton's actuators MuJoCo's compiled dynamics/gain/bias types and parameters.

        Newton's importer resolves MJCF defaults per actuator shortcut, whereas MuJoCo applies a
        default ``<position kp=..>`` to every actuator of the class (a ``<general>`` there inherits
        ``biastype="affine"``). The compiled ``mj_model`` is the reference, so its values win."""
        attrs = self.model.mujoco
        for field in self._ACTUATOR_FIELDS:
            value = np.asarray(getattr(self.mj_model, f"actuator_{field}"))
            value = np.tile(value, (self.num_envs,) + (1,) * (value.ndim - 1))
            getattr(attrs, f"actuator_{field}").assign(value.astype(np.int32 if value.ndim == 1 else np.float32))

    def _check_layout(self) -> None:
        """Check the solver's compiled MuJoCo model has ``mj_model``'s joint/dof/actuator layout,
        so MuJoCo Warp's ``qpos``/``qvel``/``ctrl`` columns are in ``mj_model``'s order; warn about
        physical parameters that differ (an MJCF feature Newton's importer dropped)."""
        ref, got = self.mj_model, self.solver.mj_model
        sizes = {k: (getattr(ref, k), getattr(got, k)) for k in ("nq", "nv", "nu", "njnt", "na")}
        if any(a != b for a, b in sizes.values()):
            raise ValueError(f"Newton's MuJoCo model differs in size from the scene: {sizes}")
        newton_names = [
            self.model.joint_label[j].rsplit("/", 1)[-1] for j in self.solver.mjc_jnt_to_newton_jnt.numpy()[0]
        ]
        for i in range(ref.njnt):
            name = ref.joint(i).name
            if (
                ref.jnt_type[i] != got.jnt_type[i]
                or ref.jnt_qposadr[i] != got.jnt_qposadr[i]
                or (name and name != newton_names[i])
            ):
                raise ValueError(f"joint {i} ({name!r}) is not in MuJoCo's order in Newton's model")
        if not np.array_equal(ref.actuator_trnid, got.actuator_trnid):
            raise ValueError("Newton's actuators are not in MuJoCo's order or target other joints")
        # field -> rows compared (ranges only where limited, as MuJoCo ignores them elsewhere)
        fields = {
            "body_mass": None, "body_inertia": None, "dof_damping": None, "dof_armature": None,
            "dof_frictionloss": None, "jnt_stiffness": None, "jnt_range": ref.jnt_limited,
            "actuator_ctrlrange": ref.actuator_ctrllimited, "actuator_forcerange": ref.actuator_forcelimited,
            "actuator_gear": None, **{f"actuator_{f}": None for f in self._ACTUATOR_FIELDS},
        }  # fmt: skip
        differ = []
        for field, rows in fields.items():
            a, b = getattr(ref, field), getattr(got, field)
            if rows is not None:
                a, b = a[rows.astype(bool)], b[rows.astype(bool)]
            if not np.allclose(a, b, rtol=1e-4, atol=1e-6):
                differ.append(field)
        differ += [k for k in ("neq", "ntendon") if getattr(ref, k) != getattr(got, k)]
        opts = ("integrator", "solver", "cone", "iterations", "ls_iterations", "disableflags", "enableflags")
        differ += [f"opt.{o}" for o in opts if getattr(ref.opt, o) != getattr(got.opt, o)]
        if differ:
            warnings.warn(f"Newton's import of the scene differs from MuJoCo's in {differ}", stacklevel=3)

    def _build_conversion(self) -> None:
        """Index tables for MuJoCo -> Newton coordinates (per world; identical across worlds)."""
        m, model, dev = self.mj_model, self.model, self.device
        jpw = model.joint_count // self.num_envs
        bpw = model.body_count // self.num_envs
        q_start = model.joint_q_start.numpy()
        qd_start = model.joint_qd_start.numpy()
        child = model.joint_child.numpy()
        mjc_jnt = self.solver.mjc_jnt_to_newton_jnt.numpy()[0]
        mjc_dof = self.solver.mjc_jnt_to_newton_dof.numpy()[0]

        def idx(x):
            return torch.as_tensor(np.asarray(x, dtype=np.int64).reshape(-1), device=dev)

        tables: dict[str, list] = {k: [] for k in ("s_adr", "s_dof", "s_q", "s_qd", "f_adr", "f_dof",
                                                   "f_q", "f_qd", "f_jnt", "f_body", "b_adr", "b_dof",
                                                   "b_q", "b_qd", "b_jnt")}  # fmt: skip
        for i in range(m.njnt):
            jt, adr, dof, nj = m.jnt_type[i], m.jnt_qposadr[i], m.jnt_dofadr[i], mjc_jnt[i]
            if jt in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
                nd = mjc_dof[i]  # the dof inside a (possibly multi-dof) Newton joint
                tables["s_adr"].append(adr)
                tables["s_dof"].append(dof)
                tables["s_q"].append(q_start[nj] + nd - qd_start[nj])
                tables["s_qd"].append(nd)
            elif jt == int(mujoco.mjtJoint.mjJNT_FREE):
                for k, v in (("adr", adr), ("dof", dof), ("q", q_start[nj]), ("qd", qd_start[nj])):
                    tables[f"f_{k}"].append(v + np.arange(7 if k in ("adr", "q") else 6))
                tables["f_jnt"].append(nj)
                tables["f_body"].append(child[nj])
            else:  # ball
                for k, v in (("adr", adr), ("dof", dof), ("q", q_start[nj]), ("qd", qd_start[nj])):
                    tables[f"b_{k}"].append(v + np.arange(4 if k in ("adr", "q") else 3))
                tables["b_jnt"].append(nj)
        self._ix = {k: idx(v) for k, v in tables.items()}
        n = self.num_envs
        ref = getattr(model.mujoco, "dof_ref", None)
        dof_ref = (
            wp.to_torch(ref).view(n, -1)
            if ref is not None
            else torch.zeros(n, model.joint_dof_count // n, device=dev)
        )
        # Views into the model: parameter changes made through Newton (e.g. body_com) are seen.
        self._dof_ref = dof_ref
        self._X_p = wp.to_torch(model.joint_X_p).view(n, jpw, 7)
        self._X_c = wp.to_torch(model.joint_X_c).view(n, jpw, 7)
        self._body_com = wp.to_torch(model.body_com).view(n, bpw, 3)

    # --- coordinate conversion -----------------------------------------------------------------

    def _mujoco_to_newton(
        self, qpos: torch.Tensor, qvel: torch.Tensor, joint_q: torch.Tensor, joint_qd: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MuJoCo ``qpos`` ``(n, nq)``, ``qvel`` ``(n, nv)`` -> new Newton ``joint_q``/``joint_qd``
        ``(n, coords)``/``(n, dofs)`` (copies of the given ones with every mapped entry replaced)."""
        ix = self._ix
        joint_q, joint_qd = joint_q.clone(), joint_qd.clone()
        # Hinge/slide: Newton's coordinate is relative to the MJCF `ref`.
        joint_q[:, ix["s_q"]] = qpos[:, ix["s_adr"]] - self._dof_ref[:, ix["s_qd"]]
        joint_qd[:, ix["s_qd"]] = qvel[:, ix["s_dof"]]
        if ix["f_jnt"].numel():
            nf = ix["f_jnt"].numel()
            q = qpos[:, ix["f_adr"]].view(-1, nf, 7)
            v = qvel[:, ix["f_dof"]].view(-1, nf, 6)
            X_p, X_c = self._X_p[:, ix["f_jnt"]], self._X_c[:, ix["f_jnt"]]
            p_p, q_p = X_p[..., :3], _xyzw_to_wxyz(X_p[..., 3:])
            p_c, q_c = X_c[..., :3], _xyzw_to_wxyz(X_c[..., 3:])
            pos, rot = q[..., :3], q[..., 3:]
            # Joint transform = inv(X_p) * world pose * X_c.
            rot_j = _qmul(_qconj(q_p), _qmul(rot, q_c))
            pos_j = _qrot(_qconj(q_p), pos + _qrot(rot, p_c) - p_p)
            # MuJoCo: origin velocity (world), angular velocity (body). Newton: COM velocity and
            # angular velocity, both in the parent anchor frame.
            w_world = _qrot(rot, v[..., 3:])
            com_world = _qrot(rot, self._body_com[:, ix["f_body"]])
            v_com = v[..., :3] + torch.linalg.cross(w_world, com_world)
            joint_q[:, ix["f_q"]] = torch.cat((pos_j, _wxyz_to_xyzw(rot_j)), -1).flatten(1)
            joint_qd[:, ix["f_qd"]] = torch.cat((_qrot(_qconj(q_p), v_com), _qrot(_qconj(q_p), w_world)), -1).flatten(1)
        if ix["b_jnt"].numel():
            nb = ix["b_jnt"].numel()
            q_mj = qpos[:, ix["b_adr"]].view(-1, nb, 4)
            w_mj = qvel[:, ix["b_dof"]].view(-1, nb, 3)
            q_cj = _xyzw_to_wxyz(self._X_c[:, ix["b_jnt"], 3:])
            to_anchor = _qmul(_qconj(q_cj), q_mj)
            joint_q[:, ix["b_q"]] = _wxyz_to_xyzw(_qmul(to_anchor, q_cj)).flatten(1)
            joint_qd[:, ix["b_qd"]] = _qrot(to_anchor, w_mj).flatten(1)
        return joint_q, joint_qd

    # --- Backend API ---------------------------------------------------------------------------

    def step(self, ctrl: torch.Tensor, nsteps: int) -> torch.Tensor:
        """Hold ``ctrl`` ``(num_envs, nu)`` [actuator units] for ``nsteps`` physics steps.

        Returns:
            ``(num_envs,)`` bool: worlds whose ``qpos``/``qvel`` are non-finite or beyond MuJoCo's
            ``mjMAXVAL`` (where MuJoCo C would reset them).
        """
        if self._ctrl is not None:
            self._ctrl.copy_(ctrl)
        dt = self.physics_dt
        for _ in range(nsteps):
            self.solver.step(self.state_0, self.state_1, self.control, None, dt)
            self.state_0, self.state_1 = self.state_1, self.state_0
        ok = (self.qpos.abs() <= _MAXVAL).all(1) & (self.qvel.abs() <= _MAXVAL).all(1)
        return ~ok

    def set_state(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Write ``qpos`` ``(num_envs, nq)`` and ``qvel`` ``(num_envs, nv)`` (MuJoCo conventions)
        into the worlds where ``mask`` ``(num_envs,)`` is true, and zero their MuJoCo Warp warm
        start, activations, applied forces and last ``ctrl``. Other worlds are untouched."""
        mask = mask.to(self.device, torch.bool)
        rows = mask[:, None]
        qpos = torch.where(rows, qpos.to(self.device, torch.float32), self.qpos)
        qvel = torch.where(rows, qvel.to(self.device, torch.float32), self.qvel)
        self.qpos.copy_(qpos)
        self.qvel.copy_(qvel)
        joint_q, joint_qd = self._joint_views[id(self.state_0)]
        new_q, new_qd = self._mujoco_to_newton(qpos, qvel, joint_q, joint_qd)
        joint_q.copy_(torch.where(rows, new_q, joint_q))
        joint_qd.copy_(torch.where(rows, new_qd, joint_qd))
        self._reset_mask[:-1].copy_(mask)
        self.solver.reset(self.state_0, world_mask=self._reset_mask_wp, flags=0)

    def close(self) -> None:
        """Drop the solver, model and state (device memory is freed with them)."""
        for attr in ("solver", "model", "state_0", "state_1", "control", "_joint_views"):
            self.__dict__.pop(attr, None)
