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
- Per-env physical parameters (:meth:`NewtonBackend.set_model_params`) go the way Newton supports:
  the MuJoCo field is written into Newton's per-world ``Model`` arrays (``body_mass``, ``body_com``,
  ``body_inertia``, ``shape_material_mu*``, ``shape_scale``, ``joint_damping``/``armature``/``friction``,
  ``mujoco.actuator_gainprm``/``biasprm``, ``gravity``) with batched torch ops, and
  ``SolverMuJoCo.notify_model_changed`` publishes them into MuJoCo Warp's per-world model (with
  ``set_const``) once, before the next step.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import mujoco
import newton  # noqa: TID253 - this module is itself imported lazily by the backend factory
import numpy as np
import torch
import warp as wp  # noqa: TID253

from worldloop.envs.kinematics import quat_conjugate, quat_mul, quat_rotate

from .base import Backend, model_param

# No line per kernel module loaded from the cache (Warp logs those at INFO level).
wp.config.quiet = True
if wp.config.log_level <= wp.LOG_INFO:
    wp.config.log_level = wp.LOG_WARNING

_MAXVAL = 1e10
"""MuJoCo's ``mjMAXVAL``: MuJoCo C resets a world whose ``|qpos|``/``|qvel|`` exceed it."""


# --- quaternion layout helpers: MuJoCo is wxyz, Newton xyzw -----------------------------------


def _xyzw_to_wxyz(q: torch.Tensor) -> torch.Tensor:
    return q.roll(1, -1)


def _wxyz_to_xyzw(q: torch.Tensor) -> torch.Tensor:
    return q.roll(-1, -1)


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
        cuda = torch.device(device).type == "cuda" and torch.cuda.is_available() and wp.is_cuda_available()
        self.device = torch.device(device if cuda else "cpu")
        if cuda and self.device.index is None:
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
            # Per-world capacities: the estimate (64 rows) overflows when the gripper holds a cube on
            # another (4 pyramid rows per contact); overflowing rows are silently dropped.
            njmax=256,
            nconmax=64,
        )
        self._check_layout()
        # MuJoCo C caps solver and line-search iterations silently; MuJoCo Warp prints a line every
        # step it happens. Keep the capacity warnings (those drop constraints), mute the caps.
        import mujoco_warp as mjw

        capped = mjw.OverflowType.ITERATIONS | mjw.OverflowType.LS_ITERATIONS
        self.solver.mjw_model.opt.warn_overflow &= ~int(capped)

        self.state_0, self.state_1 = self.model.state(), self.model.state()
        self.control = self.model.control()
        n, nu = self.num_envs, mj_model.nu
        self._ctrl = wp.to_torch(self.control.mujoco.ctrl).view(n, nu) if nu else None
        self.qpos = wp.to_torch(self.solver.mjw_data.qpos)
        self.qvel = wp.to_torch(self.solver.mjw_data.qvel)
        self._time = wp.to_torch(self.solver.mjw_data.time)
        # Newton joint coordinates of both state buffers as (num_envs, per-world) views.
        self._joint_views = {
            id(s): (wp.to_torch(s.joint_q).view(n, -1), wp.to_torch(s.joint_qd).view(n, -1))
            for s in (self.state_0, self.state_1)
        }
        # SolverMuJoCo.reset's world mask has one extra entry for the global world -1.
        self._reset_mask = torch.zeros(n + 1, dtype=torch.bool, device=self.device)
        self._reset_mask_wp = wp.from_torch(self._reset_mask, dtype=wp.bool)
        self._build_conversion()

        self._params: dict | None = None  # per-field Newton index tables, built on first use
        self._pending_flags = 0  # newton.ModelFlags to publish before the next step

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
        if not self.mj_model.nu:
            return
        attrs = self.model.mujoco
        for field in self._ACTUATOR_FIELDS:
            value = np.asarray(getattr(self.mj_model, f"actuator_{field}"))
            value = np.tile(value, (self.num_envs,) + (1,) * (value.ndim - 1))
            dtype = np.int32 if value.ndim == 1 else np.float32
            getattr(attrs, f"actuator_{field}").assign(value.astype(dtype))

    def _check_layout(self) -> None:
        """Check the solver's compiled MuJoCo model has ``mj_model``'s joint/dof/actuator layout,
        so MuJoCo Warp's ``qpos``/``qvel``/``ctrl`` columns are in ``mj_model``'s order; warn about
        physical parameters that differ (an MJCF feature Newton's importer dropped)."""
        ref, got = self.mj_model, self.solver.mj_model
        sizes = {k: (getattr(ref, k), getattr(got, k)) for k in ("nq", "nv", "nu", "njnt", "na")}
        if any(a != b for a, b in sizes.values()):
            raise ValueError(f"Newton's MuJoCo model differs in size from the scene: {sizes}")
        newton_jnt = self.solver.mjc_jnt_to_newton_jnt.numpy()[0]
        for i in range(ref.njnt):
            name = ref.joint(i).name
            # A Newton joint holding several MJCF joints (several on one body) has its own label.
            label = self.model.joint_label[newton_jnt[i]].rsplit("/", 1)[-1]
            single = (newton_jnt == newton_jnt[i]).sum() == 1
            if (
                ref.jnt_type[i] != got.jnt_type[i]
                or ref.jnt_qposadr[i] != got.jnt_qposadr[i]
                or (name and single and name != label)
            ):
                raise ValueError(
                    f"joint {i} ({name!r}) is not in MuJoCo's order in Newton's model (Newton merges the "
                    "joints of one body into one joint, slide axes first)"
                )
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
        """Index tables for MuJoCo -> Newton coordinates, per world (the worlds are replicas).

        Groups: ``s_*`` hinge/slide, ``f_*`` free, ``b_*`` ball joints. ``*_adr``/``*_dof``: MuJoCo
        qpos/qvel columns; ``*_q``/``*_qd``: Newton joint_q/joint_qd columns; ``*_jnt``: Newton
        joint; ``f_body``: the free joint's child body."""
        m, model, n = self.mj_model, self.model, self.num_envs
        q_start, qd_start = model.joint_q_start.numpy(), model.joint_qd_start.numpy()
        child = model.joint_child.numpy()
        newton_jnt = self.solver.mjc_jnt_to_newton_jnt.numpy()[0]
        newton_dof = self.solver.mjc_jnt_to_newton_dof.numpy()[0]
        ix: dict[str, list] = {}

        def add(group: str, **cols) -> None:
            for key, val in cols.items():
                ix.setdefault(f"{group}_{key}", []).extend(np.atleast_1d(val).tolist())

        for i in range(m.njnt):
            jt, adr, dof, j = m.jnt_type[i], m.jnt_qposadr[i], m.jnt_dofadr[i], newton_jnt[i]
            if jt in (mujoco.mjtJoint.mjJNT_HINGE.value, mujoco.mjtJoint.mjJNT_SLIDE.value):
                d = newton_dof[i]  # may sit inside a multi-dof Newton joint (several MJCF joints on a body)
                add("s", adr=adr, dof=dof, q=q_start[j] + d - qd_start[j], qd=d)
            else:
                g, nq, nv = ("f", 7, 6) if jt == mujoco.mjtJoint.mjJNT_FREE.value else ("b", 4, 3)
                r7, r6 = np.arange(nq), np.arange(nv)
                add(g, adr=adr + r7, dof=dof + r6, q=q_start[j] + r7, qd=qd_start[j] + r6, jnt=j)
                if g == "f":
                    add(g, body=child[j])
        keys = [f"{g}_{k}" for g in "sfb" for k in ("adr", "dof", "q", "qd")] + ["f_jnt", "f_body", "b_jnt"]
        self._ix = {k: torch.tensor(ix.get(k, []), dtype=torch.long, device=self.device) for k in keys}
        # Views into the model, so later edits of its parameters through Newton are honoured.
        ref = getattr(model.mujoco, "dof_ref", None)
        self._dof_ref = (
            wp.to_torch(ref).view(n, -1)
            if ref is not None
            else torch.zeros(n, model.joint_dof_count // n, device=self.device)
        )
        self._X_p = wp.to_torch(model.joint_X_p).view(n, -1, 7)
        self._X_c = wp.to_torch(model.joint_X_c).view(n, -1, 7)
        self._body_com = wp.to_torch(model.body_com).view(n, -1, 3)

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
            to_parent = quat_conjugate(q_p)
            rot_j = quat_mul(to_parent, quat_mul(rot, q_c))
            pos_j = quat_rotate(to_parent, pos + quat_rotate(rot, p_c) - p_p)
            # MuJoCo: origin velocity (world), angular velocity (body). Newton: COM velocity and
            # angular velocity, both in the parent anchor frame.
            w_world = quat_rotate(rot, v[..., 3:])
            com_world = quat_rotate(rot, self._body_com[:, ix["f_body"]])
            v_com = v[..., :3] + torch.linalg.cross(w_world, com_world)
            joint_q[:, ix["f_q"]] = torch.cat((pos_j, _wxyz_to_xyzw(rot_j)), -1).flatten(1)
            twist = torch.cat((quat_rotate(to_parent, v_com), quat_rotate(to_parent, w_world)), -1)
            joint_qd[:, ix["f_qd"]] = twist.flatten(1)
        if ix["b_jnt"].numel():
            nb = ix["b_jnt"].numel()
            q_mj = qpos[:, ix["b_adr"]].view(-1, nb, 4)
            w_mj = qvel[:, ix["b_dof"]].view(-1, nb, 3)
            q_cj = _xyzw_to_wxyz(self._X_c[:, ix["b_jnt"], 3:])
            to_anchor = quat_mul(quat_conjugate(q_cj), q_mj)
            joint_q[:, ix["b_q"]] = _wxyz_to_xyzw(quat_mul(to_anchor, q_cj)).flatten(1)
            joint_qd[:, ix["b_qd"]] = quat_rotate(to_anchor, w_mj).flatten(1)
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
        with self._warp_on_torch_stream():
            if self._pending_flags:
                self.solver.notify_model_changed(self._pending_flags)
                self._pending_flags = 0
            for _ in range(nsteps):
                self.solver.step(self.state_0, self.state_1, self.control, None, dt)
                self.state_0, self.state_1 = self.state_1, self.state_0
        ok = (self.qpos.abs() <= _MAXVAL).all(1) & (self.qvel.abs() <= _MAXVAL).all(1)
        return ~ok

    def set_state(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Write ``qpos`` ``(num_envs, nq)`` and ``qvel`` ``(num_envs, nv)`` (MuJoCo conventions)
        into the worlds where ``mask`` ``(num_envs,)`` is true, and zero their MuJoCo Warp warm
        start, activations, applied forces, last ``ctrl`` and time. Other worlds are untouched."""
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
        self._time.masked_fill_(mask, 0.0)
        self._reset_mask[:-1].copy_(mask)
        with self._warp_on_torch_stream():
            self.solver.reset(self.state_0, world_mask=self._reset_mask_wp, flags=0)

    # --- per-env model parameters ---------------------------------------------------------------

    # MuJoCo field -> (MuJoCo element kind, Newton Model arrays, ModelFlags to notify)
    _PARAMS = {
        "body_mass": ("body", ("body_mass", "body_inv_mass"), "BODY_INERTIAL_PROPERTIES"),
        "body_ipos": ("body", ("body_com",), "BODY_INERTIAL_PROPERTIES"),
        "body_inertia": ("body", ("body_inertia", "body_inv_inertia"), "BODY_INERTIAL_PROPERTIES"),
        "geom_friction": (
            "geom",
            ("shape_material_mu", "shape_material_mu_torsional", "shape_material_mu_rolling"),
            "SHAPE_PROPERTIES",
        ),
        "geom_size": ("geom_size", ("shape_scale",), "SHAPE_PROPERTIES"),
        "dof_damping": ("dof", ("joint_damping",), "JOINT_DOF_FORCE_PROPERTIES"),
        "dof_armature": ("dof", ("joint_armature",), "JOINT_DOF_INERTIAL_PROPERTIES"),
        "dof_frictionloss": ("dof", ("joint_friction",), "JOINT_DOF_FORCE_PROPERTIES"),
        "actuator_gainprm": ("actuator", ("mujoco.actuator_gainprm",), "ACTUATOR_PROPERTIES"),
        "actuator_biasprm": ("actuator", ("mujoco.actuator_biasprm",), "ACTUATOR_PROPERTIES"),
        "opt.gravity": ("world", ("gravity",), "MODEL_PROPERTIES"),
    }

    def _param_tables(self) -> dict:
        """``kind -> (valid MuJoCo columns (E,), Newton rows (num_envs, E))`` and the torch views of
        the Newton arrays; built once. Columns without a Newton counterpart in the solver (the world
        body, geoms that collide with nothing) keep their nominal value: they do not act on the physics."""
        if self._params is not None:
            return self._params
        s, m, n, dev = self.solver, self.mj_model, self.num_envs, self.device
        acts = s.mjc_actuator_to_newton_actuator_idx.numpy()
        per_world = self.model.mujoco.actuator_gainprm.shape[0] // n if m.nu else 0

        def by_name(solver_map: np.ndarray, labels: list[str], obj: mujoco.mjtObj, count: int) -> np.ndarray:
            """(num_envs, count) Newton indices of our elements: the solver's MuJoCo model may leave some
            out (non-colliding geoms) or order them differently, so match Newton's labels (paths
            ending in the MJCF name) to our names."""
            out = np.full((n, count), -1)
            for j, first in enumerate(solver_map[0]):
                ours = mujoco.mj_name2id(m, obj, labels[first].rsplit("/", 1)[-1]) if first >= 0 else -1
                if ours >= 0:
                    out[:, ours] = solver_map[:, j]
            return out

        maps = {
            "body": by_name(s.mjc_body_to_newton.numpy(), self.model.body_label, mujoco.mjtObj.mjOBJ_BODY, m.nbody),
            "geom": by_name(
                s.mjc_geom_to_newton_shape.numpy(), self.model.shape_label, mujoco.mjtObj.mjOBJ_GEOM, m.ngeom
            ),  # fmt: skip
            "dof": s.mjc_dof_to_newton_dof.numpy(),  # same layout as ours (checked at construction)
            "actuator": np.where(acts >= 0, np.arange(n)[:, None] * per_world + acts, -1),
            "world": np.arange(n)[:, None],
        }
        # Newton sizes planes, meshes and height fields its own way: only primitive solids are resized.
        g = mujoco.mjtGeom
        primitive = [
            int(t) for t in (g.mjGEOM_SPHERE, g.mjGEOM_CAPSULE, g.mjGEOM_ELLIPSOID, g.mjGEOM_CYLINDER, g.mjGEOM_BOX)
        ]
        solid = np.isin(self.mj_model.geom_type, primitive)
        maps["geom_size"] = np.where(solid, maps["geom"], -1)
        tables = {}
        for kind, rows in maps.items():
            cols = np.flatnonzero((rows >= 0).all(axis=0))
            tables[kind] = (torch.as_tensor(cols, device=dev), torch.as_tensor(rows[:, cols], device=dev))
        views = {}
        for _, arrays, _ in self._PARAMS.values():
            for name in arrays:
                arr = functools.reduce(getattr, name.split("."), self.model)
                views[name] = wp.to_torch(arr)
        iquat = torch.as_tensor(self.mj_model.body_iquat, dtype=torch.float32, device=dev)
        # Principal axes of each body's nominal inertia, in the body frame (MuJoCo's body_iquat).
        axes = [quat_rotate(iquat, e.expand_as(iquat[:, 1:])) for e in torch.eye(3, device=dev)]
        self._inertia_axes = torch.stack(axes, -1)
        act_damping = getattr(s, "_actuator_dof_damping", None)  # MuJoCo Warp folds it into dof_damping
        self._act_dof_damping = wp.to_torch(act_damping) if act_damping is not None else None
        self._params = {"tables": tables, "views": views}
        return self._params

    def set_model_params(self, field: str, mask: torch.Tensor, values: torch.Tensor) -> None:
        """See :meth:`Backend.set_model_params`; published by ``notify_model_changed`` at the next step."""
        model_param(self.mj_model, field)
        kind, arrays, flag = self._PARAMS[field]
        p = self._param_tables()
        cols, rows = p["tables"][kind]
        v = values.to(self.device, torch.float32)
        v = v[:, None] if field == "opt.gravity" else v[:, cols]  # (n, E, *component)
        if field == "body_inertia":  # MuJoCo: principal moments; Newton: the tensor in the body frame
            axes = self._inertia_axes[cols]
            v = axes @ torch.diag_embed(v) @ axes.transpose(-1, -2)
        if field == "dof_damping" and self._act_dof_damping is not None:
            v = v - self._act_dof_damping[cols]
        if field == "geom_friction":
            parts = v.unbind(-1)
        elif field == "body_mass":
            parts = (v, torch.where(v > 0, 1.0 / v, 0.0))
        elif field == "body_inertia":
            parts = (v, torch.where(v.det()[..., None, None] > 0, torch.linalg.pinv(v), 0.0))
        else:
            parts = (v,)
        mask = mask.to(self.device, torch.bool)
        for name, part in zip(arrays, parts, strict=True):
            t = p["views"][name]
            t[rows] = torch.where(mask.view(-1, *[1] * (part.dim() - 1)), part, t[rows])
        self._pending_flags |= int(getattr(newton.ModelFlags, flag))

    def get_model_params(self, field: str) -> torch.Tensor:
        nominal = torch.as_tensor(model_param(self.mj_model, field), dtype=torch.float32, device=self.device)
        kind, arrays, _ = self._PARAMS[field]
        p = self._param_tables()
        cols, rows = p["tables"][kind]
        out = nominal.expand(self.num_envs, *nominal.shape).clone()
        if field == "opt.gravity":
            out.copy_(p["views"]["gravity"][rows[:, 0]])
            return out
        if field == "geom_friction":
            v = torch.stack([p["views"][name][rows] for name in arrays], -1)
        else:
            v = p["views"][arrays[0]][rows].clone()
        if field == "body_inertia":
            axes = self._inertia_axes[cols]
            v = torch.diagonal(axes.transpose(-1, -2) @ v @ axes, dim1=-2, dim2=-1)
        if field == "dof_damping" and self._act_dof_damping is not None:
            v = v + self._act_dof_damping[cols]
        out[:, cols] = v
        return out

    def _warp_on_torch_stream(self):
        """Run Warp launches on torch's current CUDA stream, ordered after the torch ops that
        filled their inputs (a no-op on CPU)."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return wp.ScopedStream(wp.stream_from_torch(torch.cuda.current_stream(self.device)))

    def close(self) -> None:
        """Drop the solver, model and state (device memory is freed with them)."""
        for attr in ("solver", "model", "state_0", "state_1", "control", "_joint_views"):
            self.__dict__.pop(attr, None)
