"""Local stand-ins for the Isaac Lab assets the tests and benchmarks use, written as USD from MJCF.

Isaac Lab's stock assets live in a cloud bucket (``ISAACSIM_ASSET_ROOT``, default the Nucleus cloud
root) and are fetched at run time. :func:`write_assets` writes stand-ins under a local root, at the
paths Isaac Lab's configs name, so ``ISAACSIM_ASSET_ROOT=DIR`` runs those tasks with no network:

- the ground plane (``Isaac/IsaacLab/Environments/Grid/.../default_ground_plane.usda``): a collision
  plane;
- the cart-pole (``Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd``): built from
  ``assets/cartpole.xml`` with Isaac Lab's names (bodies ``rail``, ``cart``, ``pole``; joints
  ``slider_to_cart``, ``cart_to_pole``), masses x5 so Isaac Lab's 100 N action scale acts as the
  MJCF's 20 N motor (:data:`CARTPOLE_SPEC`);
- the Franka Panda (``Isaac/IsaacLab/Robots/FrankaEmika/franka_panda.usda``): built from
  ``assets/franka_panda.xml`` with Isaac Lab's names (``panda_link0..7``, ``panda_hand``,
  ``panda_leftfinger``, ``panda_rightfinger``; ``panda_joint1..7``, ``panda_finger_joint1..2``), its
  position servos' gains as joint drives, and the ``Physics`` / ``Colliders`` variant sets Isaac Lab
  selects (empty: every variant is the same primitive model).

They are stand-ins, not copies: the physics is worldloop's MJCF (masses, inertias, joint limits,
primitive collision shapes, drive gains), so a policy's numbers on them are not those of the stock
assets. The conversion (:func:`mjcf_to_usd`) reads the compiled ``MjModel`` and writes UsdPhysics:
one rigid body per MJCF body at its world pose for ``qpos0``, a revolute or prismatic joint per 1-DoF
MJCF joint (the joint frame's x axis along the MJCF axis), a fixed joint for a body without joints,
and ``MassAPI`` from the body's inertial frame. Needs ``pxr`` (``usd-core``, part of Isaac Lab's
environment).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

ASSETS_DIR = Path(__file__).resolve().parent.parent.parent / "assets"

GROUND_PLANE = "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/default_ground_plane.usda"
"""Path of Isaac Lab's default ground plane under the asset root."""
CARTPOLE = "Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd"
"""Path of Isaac Lab's cart-pole under the asset root."""
FRANKA = "Isaac/IsaacLab/Robots/FrankaEmika/franka_panda.usda"
"""Path of Isaac Lab's Franka Panda (``FRANKA_PANDA_CFG``) under the asset root."""


@dataclass(kw_only=True)
class RobotSpec:
    """How one MJCF robot becomes an Isaac Lab-named USD articulation."""

    mjcf: str
    """MJCF file in ``assets/``."""
    root_name: str
    """Name of the USD default prim (the articulation root)."""
    body_names: dict[str, str]
    """MJCF body name -> USD body name; bodies not listed are left out (with their subtrees)."""
    joint_names: dict[str, str]
    """MJCF joint name -> USD joint name."""
    base: str | None = None
    """Name of a massive static base body added under the root and fixed to the world, for robots
    whose first joint hangs from the world (the cart-pole's rail)."""
    variant_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Variant sets authored (empty) on the root prim so Isaac Lab's variant selection finds them."""
    drive_damping: float | None = None
    """[N m s/rad or N s/m] drive damping of actuated joints; default the servo's own ``-biasprm[2]``."""
    mass_scale: float = 1.0
    """Factor on every mass and inertia. Equations of motion are homogeneous in mass and force, so
    scaling the masses by ``k`` under forces ``k F`` moves the robot as the MJCF does under ``F``."""


CARTPOLE_SPEC = RobotSpec(
    mjcf="cartpole.xml",
    root_name="cartpole",
    body_names={"cart": "cart", "pole": "pole"},
    joint_names={"slider": "slider_to_cart", "hinge": "cart_to_pole"},
    base="rail",
    # Isaac-Cartpole pushes with 100 N per unit action, the MJCF's motor with 20 N: masses x5 make one
    # unit of action move the cart-pole as Cartpole-v0's does (same observations, in the same order).
    mass_scale=5.0,
)
FRANKA_SPEC = RobotSpec(
    mjcf="franka_panda.xml",
    root_name="panda",
    body_names={
        **{f"link{i}": f"panda_link{i}" for i in range(8)},
        "hand": "panda_hand",
        "left_finger": "panda_leftfinger",
        "right_finger": "panda_rightfinger",
    },
    joint_names={
        **{f"joint{i}": f"panda_joint{i}" for i in range(1, 8)},
        "finger_joint1": "panda_finger_joint1",
        "finger_joint2": "panda_finger_joint2",
    },
    variant_sets={"Physics": ("mujoco", "physx"), "Colliders": ("primitives", "gripper_only", "convex_hull")},
)


def _quat(wxyz) -> object:
    from pxr import Gf

    w, x, y, z = (float(v) for v in wxyz)
    return Gf.Quatf(w, x, y, z)


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(4)
    mujoco.mju_mulQuat(out, np.asarray(a, float), np.asarray(b, float))
    return out


def _quat_inv(q: np.ndarray) -> np.ndarray:
    out = np.empty(4)
    mujoco.mju_negQuat(out, np.asarray(q, float))
    return out


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.empty(3)
    mujoco.mju_rotVecQuat(out, np.asarray(v, float), np.asarray(q, float))
    return out


def _x_to(axis: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) turning the x axis onto ``axis``."""
    out = np.empty(4)
    mujoco.mju_quatZ2Vec(out, np.asarray(axis, float))  # z -> axis
    z_to_x = np.array([math.cos(math.pi / 4), 0.0, -math.sin(math.pi / 4), 0.0])  # x -> z: -90 deg about y
    return _quat_mul(out, _quat_inv(z_to_x))


def _add_shape(stage, path: str, m: mujoco.MjModel, g: int) -> None:
    from pxr import Gf, UsdGeom, UsdPhysics

    kind, size = m.geom_type[g], m.geom_size[g]
    if kind == mujoco.mjtGeom.mjGEOM_BOX:
        geom = UsdGeom.Cube.Define(stage, path)
        geom.CreateSizeAttr(1.0)
        scale = Gf.Vec3f(*(2.0 * float(s) for s in size))
    elif kind == mujoco.mjtGeom.mjGEOM_CAPSULE or kind == mujoco.mjtGeom.mjGEOM_CYLINDER:
        shape = UsdGeom.Capsule if kind == mujoco.mjtGeom.mjGEOM_CAPSULE else UsdGeom.Cylinder
        geom = shape.Define(stage, path)
        geom.CreateRadiusAttr(float(size[0]))
        geom.CreateHeightAttr(2.0 * float(size[1]))  # MuJoCo's size[1] is the half-length
        geom.CreateAxisAttr("Z")
        scale = None
    elif kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        geom = UsdGeom.Sphere.Define(stage, path)
        geom.CreateRadiusAttr(float(size[0]))
        scale = None
    else:
        raise ValueError(f"geom {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g)!r}: type {kind} has no USD stand-in")
    xf = UsdGeom.Xformable(geom)
    xf.AddTranslateOp().Set(Gf.Vec3d(*(float(v) for v in m.geom_pos[g])))
    xf.AddOrientOp().Set(_quat(m.geom_quat[g]))
    if scale is not None:
        xf.AddScaleOp().Set(scale)
    rgba = m.geom_rgba[g]
    geom.CreateDisplayColorAttr([Gf.Vec3f(*(float(c) for c in rgba[:3]))])
    if m.geom_contype[g] or m.geom_conaffinity[g]:
        UsdPhysics.CollisionAPI.Apply(geom.GetPrim())


def mjcf_to_usd(spec: RobotSpec, out: str | os.PathLike) -> Path:
    """Write the robot of ``spec`` as a USD articulation at ``out`` (``.usd``/``.usda``); returns the path.

    Raises:
        ValueError: a joint type other than hinge/slide, or a geom without a USD primitive.
    """
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics

    m = mujoco.MjModel.from_xml_path(os.fspath(ASSETS_DIR / spec.mjcf))
    d = mujoco.MjData(m)
    mujoco.mj_kinematics(m, d)
    name = lambda kind, i: mujoco.mj_id2name(m, kind, i)  # noqa: E731
    bodies = {b: spec.body_names[name(mujoco.mjtObj.mjOBJ_BODY, b)] for b in range(1, m.nbody)
              if name(mujoco.mjtObj.mjOBJ_BODY, b) in spec.body_names}  # fmt: skip

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    stage = Usd.Stage.CreateNew(os.fspath(out))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, f"/{spec.root_name}")
    stage.SetDefaultPrim(root.GetPrim())
    UsdPhysics.ArticulationRootAPI.Apply(root.GetPrim())
    for vset, variants in spec.variant_sets.items():
        vs = root.GetPrim().GetVariantSets().AddVariantSet(vset)
        for v in variants:
            vs.AddVariant(v)
        vs.SetVariantSelection(variants[0])
    joints = UsdGeom.Scope.Define(stage, f"/{spec.root_name}/joints").GetPath()

    def body_path(b: int) -> Sdf.Path:
        return Sdf.Path(f"/{spec.root_name}/{bodies[b]}") if b in bodies else Sdf.Path(f"/{spec.root_name}/{spec.base}")

    if spec.base is not None:
        base = UsdGeom.Xform.Define(stage, f"/{spec.root_name}/{spec.base}")
        UsdPhysics.RigidBodyAPI.Apply(base.GetPrim())
        base_mass = UsdPhysics.MassAPI.Apply(base.GetPrim())
        base_mass.CreateMassAttr(1.0)
        base_mass.CreateDiagonalInertiaAttr(Gf.Vec3f(0.01, 0.01, 0.01))
        fixed = UsdPhysics.FixedJoint.Define(stage, joints.AppendChild("root_joint"))
        fixed.CreateBody1Rel().SetTargets([base.GetPath()])

    for b, bname in bodies.items():
        prim = UsdGeom.Xform.Define(stage, f"/{spec.root_name}/{bname}")
        prim.AddTranslateOp().Set(Gf.Vec3d(*(float(v) for v in d.xpos[b])))
        prim.AddOrientOp().Set(_quat(d.xquat[b]))
        UsdPhysics.RigidBodyAPI.Apply(prim.GetPrim())
        mass = UsdPhysics.MassAPI.Apply(prim.GetPrim())
        mass.CreateMassAttr(float(m.body_mass[b]) * spec.mass_scale)
        mass.CreateCenterOfMassAttr(Gf.Vec3f(*(float(v) for v in m.body_ipos[b])))
        mass.CreateDiagonalInertiaAttr(Gf.Vec3f(*(float(v) * spec.mass_scale for v in m.body_inertia[b])))
        mass.CreatePrincipalAxesAttr(_quat(m.body_iquat[b]))
        for g in range(m.body_geomadr[b], m.body_geomadr[b] + m.body_geomnum[b]):
            gname = name(mujoco.mjtObj.mjOBJ_GEOM, g) or f"geom{g}"
            _add_shape(stage, f"{prim.GetPath()}/{gname}", m, g)

        parent = int(m.body_parentid[b])
        parent_path = body_path(parent) if (parent in bodies or spec.base is not None) else None
        nj = int(m.body_jntnum[b])
        if nj > 1:
            raise ValueError(f"body {bname}: {nj} joints; the stand-in writer handles one per body")
        if nj == 0:
            joint = UsdPhysics.FixedJoint.Define(stage, joints.AppendChild(f"{bname}_fixed"))
            jpos, jrot = np.zeros(3), np.array([1.0, 0, 0, 0])
        else:
            j = int(m.body_jntadr[b])
            jname = spec.joint_names[name(mujoco.mjtObj.mjOBJ_JOINT, j)]
            kind = m.jnt_type[j]
            if kind == mujoco.mjtJoint.mjJNT_HINGE:
                joint = UsdPhysics.RevoluteJoint.Define(stage, joints.AppendChild(jname))
                to_usd = 180.0 / math.pi  # USD angular limits are in degrees
            elif kind == mujoco.mjtJoint.mjJNT_SLIDE:
                joint = UsdPhysics.PrismaticJoint.Define(stage, joints.AppendChild(jname))
                to_usd = 1.0
            else:
                raise ValueError(f"joint {jname}: type {kind} has no stand-in (hinge and slide only)")
            joint.CreateAxisAttr("X")
            if m.jnt_limited[j]:
                joint.CreateLowerLimitAttr(float(m.jnt_range[j][0]) * to_usd)
                joint.CreateUpperLimitAttr(float(m.jnt_range[j][1]) * to_usd)
            jpos, jrot = m.jnt_pos[j].copy(), _x_to(m.jnt_axis[j])
            _add_drive(joint.GetPrim(), m, j, angular=kind == mujoco.mjtJoint.mjJNT_HINGE, spec=spec)
        if parent_path is not None:
            joint.CreateBody0Rel().SetTargets([parent_path])
            # The joint frame in the parent's frame (the base, if any, sits at the world origin).
            q_parent = d.xquat[parent] if parent in bodies else np.array([1.0, 0, 0, 0])
            p_parent = d.xpos[parent] if parent in bodies else np.zeros(3)
            anchor_w = d.xpos[b] + _rotate(d.xquat[b], jpos)
            joint.CreateLocalPos0Attr(Gf.Vec3f(*_rotate(_quat_inv(q_parent), anchor_w - p_parent)))
            joint.CreateLocalRot0Attr(_quat(_quat_mul(_quat_mul(_quat_inv(q_parent), d.xquat[b]), jrot)))
        joint.CreateBody1Rel().SetTargets([prim.GetPath()])
        joint.CreateLocalPos1Attr(Gf.Vec3f(*(float(v) for v in jpos)))
        joint.CreateLocalRot1Attr(_quat(jrot))
    stage.GetRootLayer().Save()
    return out


def _add_drive(prim, m: mujoco.MjModel, j: int, *, angular: bool, spec: RobotSpec) -> None:
    """A joint drive from the MJCF position servo on joint ``j`` (``<general>`` with affine bias, or
    ``<position>``); a ``<motor>`` or no actuator gives a drive with zero gains (effort control)."""
    from pxr import UsdPhysics

    kp = kd = 0.0
    limit = 1e6
    for a in range(m.nu):
        if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT and m.actuator_trnid[a][0] == j:
            if m.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_AFFINE:
                kp, kd = float(m.actuator_gainprm[a][0]), -float(m.actuator_biasprm[a][2])
                if m.actuator_forcelimited[a]:
                    limit = float(m.actuator_forcerange[a][1])
    if spec.drive_damping is not None and kp > 0:
        kd = spec.drive_damping
    kd = max(kd, float(m.dof_damping[m.jnt_dofadr[j]]))
    # UsdPhysics angular drive gains are per degree.
    per = math.pi / 180.0 if angular else 1.0
    drive = UsdPhysics.DriveAPI.Apply(prim, "angular" if angular else "linear")
    drive.CreateTypeAttr("force")
    drive.CreateStiffnessAttr(kp * per)
    drive.CreateDampingAttr(kd * per)
    drive.CreateMaxForceAttr(limit)


def write_ground_plane(out: str | os.PathLike) -> Path:
    """A static collision plane (``z = 0``, normal +z) with the prim layout Isaac Lab's
    ``spawn_ground_plane`` looks for (a ``Plane`` child, an ``Environment`` xform it may scale)."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    stage = Usd.Stage.CreateNew(os.fspath(out))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, "/GroundPlane")
    stage.SetDefaultPrim(root.GetPrim())
    env = UsdGeom.Xform.Define(stage, "/GroundPlane/Environment")
    env.AddScaleOp().Set(Gf.Vec3f(1.0, 1.0, 1.0))
    # The visual quad and its texture coordinates, which Isaac Lab rescales with the plane's size.
    mesh = UsdGeom.Mesh.Define(stage, "/GroundPlane/Environment/Geometry")
    mesh.CreatePointsAttr([Gf.Vec3f(-50, -50, 0), Gf.Vec3f(50, -50, 0), Gf.Vec3f(50, 50, 0), Gf.Vec3f(-50, 50, 0)])
    mesh.CreateFaceVertexCountsAttr([4])
    mesh.CreateFaceVertexIndicesAttr([0, 1, 2, 3])
    UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex).Set(
        [Gf.Vec2f(0, 0), Gf.Vec2f(1, 0), Gf.Vec2f(1, 1), Gf.Vec2f(0, 1)]
    )
    plane = UsdGeom.Plane.Define(stage, "/GroundPlane/CollisionPlane")
    plane.CreateAxisAttr("Z")
    plane.CreateWidthAttr(100.0)
    plane.CreateLengthAttr(100.0)
    UsdPhysics.CollisionAPI.Apply(plane.GetPrim())
    stage.GetRootLayer().Save()
    return out


def write_assets(root: str | os.PathLike, *, franka: bool = True) -> list[Path]:
    """Write the stand-in assets under ``root`` (use it as ``ISAACSIM_ASSET_ROOT``); returns the files."""
    root = Path(root)
    files = [write_ground_plane(root / GROUND_PLANE), mjcf_to_usd(CARTPOLE_SPEC, root / CARTPOLE)]
    if franka:
        files.append(mjcf_to_usd(FRANKA_SPEC, root / FRANKA))
    return files
