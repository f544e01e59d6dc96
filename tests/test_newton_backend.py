"""The Newton backend (SolverMuJoCo on MuJoCo Warp, float32) against MuJoCo C (float64).

One backend serves the whole module: the first build compiles MuJoCo Warp's kernels (about a
minute on a CPU with an empty Warp kernel cache, seconds afterwards). Its scene is
``assets/franka_cube.xml`` (Panda, table, cube), flattened by ``MjSpec.to_xml``, plus a free
"probe" body high above the table, whose centre of mass is off its body origin and whose
inertia is not a multiple of the identity, so the free-joint conventions (quaternion order,
origin vs. centre-of-mass velocity, body vs. world angular velocity) are all observable.

Measured agreement on this machine (CPU): arm qpos within 7e-7 rad after 100 steps of the
sinusoidal targets, qvel within 1e-5 rad/s; the free probe within 2e-6 (qpos) and 4e-5 (qvel)
after 50 steps. The differences are float32 rounding; the asserted tolerances below leave
30-100x headroom for other hardware (GPU summation order, FMA).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

pytest.importorskip("newton")
pytest.importorskip("mujoco_warp")

pytestmark = pytest.mark.newton

SCENE = Path(__file__).resolve().parents[1] / "assets" / "franka_cube.xml"
NUM_ENVS = 4
QPOS_ATOL = 1e-4
"""[rad] or [m]: float32 MuJoCo Warp vs float64 MuJoCo C after 50-100 steps (measured <= 2e-6)."""
QVEL_ATOL = 1e-3
"""[rad/s] or [m/s] (measured <= 4e-5)."""
REST_ATOL = 5e-4
"""[m] the cube resting on the table: MuJoCo Warp's box-box contact holds it 0.25 mm deeper than MuJoCo
C's (24.75 vs 25.00 mm centre height with the hard contacts of ``tabletop.xml``), an engine difference,
not rounding."""


REST_VEL_ATOL = 0.06
"""[m/s] its vertical velocity: on its first step MuJoCo Warp lets the cube placed exactly on the table
fall for one physics step (g dt = 0.049 m/s) before the contact holds it."""


def _assert_qvel(m, actual, desired, atol):
    """``actual`` and ``desired`` qvel ``(..., nv)`` agree to ``atol``, the resting cube's vertical
    velocity to ``REST_VEL_ATOL``."""
    rest = np.zeros(m.nv, dtype=bool)
    rest[int(m.joint("cube_joint").dofadr[0]) + 2] = True
    np.testing.assert_allclose(actual[..., ~rest], desired[..., ~rest], atol=atol, rtol=0)
    np.testing.assert_allclose(actual[..., rest], desired[..., rest], atol=max(atol, REST_VEL_ATOL), rtol=0)


def _assert_qpos(m, actual, desired, atol):
    """``actual`` and ``desired`` qpos ``(..., nq)`` agree to ``atol``, the resting cube's height to
    ``REST_ATOL``."""
    z = int(m.joint("cube_joint").qposadr[0]) + 2
    rest = np.zeros(m.nq, dtype=bool)
    rest[z] = True
    np.testing.assert_allclose(actual[..., ~rest], desired[..., ~rest], atol=atol, rtol=0)
    np.testing.assert_allclose(actual[..., rest], desired[..., rest], atol=max(atol, REST_ATOL), rtol=0)


def _full_solver_vectors(xml: str) -> str:
    """``MjSpec.to_xml`` writes ``solref``/``solimp`` vectors without their trailing default components
    (``solreflimit="0.01"``); MuJoCo reads those back right, Newton's importer as an invalid
    ``(0.01, 0)``. Write them out in full."""
    tails = {"solref": ("0.02", "1"), "solimp": ("0.9", "0.95", "0.001", "0.5", "2")}

    def full(match: re.Match) -> str:
        values = match.group(2).split()
        default = tails[match.group(1)[:6]]
        return f'{match.group(1)}="{" ".join(values + list(default[len(values) :]))}"'

    return re.sub(r'\b(sol(?:ref|imp)[a-z]*)="([^"]*)"', full, xml)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The franka_cube scene plus a free probe body; returns (path, model, home qpos, home ctrl)."""
    spec = mujoco.MjSpec.from_file(str(SCENE))
    for key in list(spec.keys):  # the keyframes do not cover the probe's qpos
        spec.delete(key)
    probe = spec.worldbody.add_body(name="probe", pos=[0.3, 0.6, 1.5])
    probe.add_freejoint(name="probe_joint")
    probe.explicitinertial = True
    probe.mass, probe.ipos, probe.inertia = 0.3, [0.01, -0.02, 0.005], [1e-3, 1.5e-3, 2e-3]
    probe.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.03] * 3, contype=0, conaffinity=0, mass=0)
    path = tmp_path_factory.mktemp("scene") / "franka_cube_probe.xml"
    path.write_text(_full_solver_vectors(spec.to_xml()))
    m = mujoco.MjModel.from_xml_path(str(path))
    nominal = mujoco.MjModel.from_xml_path(str(SCENE))
    home = m.qpos0.copy()
    home[: nominal.nq] = nominal.key("home").qpos
    return path, m, home, nominal.key("home").ctrl.copy()


@pytest.fixture(scope="module")
def built(scene):
    """(backend, warnings raised while building it)."""
    from worldloop.envs.backends.newton_backend import NewtonBackend

    path, m, _, _ = scene
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = NewtonBackend(m, str(path), num_envs=NUM_ENVS, device="cpu")
    yield backend, caught
    backend.close()


@pytest.fixture
def backend(built):
    return built[0]


def mujoco_reference(m, qpos, qvel, ctrls):
    """Step one ``MjData`` per env from ``qpos`` ``(n, nq)``, ``qvel`` ``(n, nv)`` with ``ctrls``
    ``(T, n, nu)``; returns the qpos ``(T, n, nq)`` and qvel ``(T, n, nv)`` after each step."""
    n = qpos.shape[0]
    datas = [mujoco.MjData(m) for _ in range(n)]
    for d, q, v in zip(datas, qpos, qvel, strict=True):
        d.qpos[:], d.qvel[:] = q, v
    out_q, out_v = np.empty((len(ctrls), n, m.nq)), np.empty((len(ctrls), n, m.nv))
    for t, ctrl in enumerate(ctrls):
        for i, d in enumerate(datas):
            d.ctrl[:] = ctrl[i]
            mujoco.mj_step(m, d)
            out_q[t, i], out_v[t, i] = d.qpos, d.qvel
    return out_q, out_v


def _home(scene, n=NUM_ENVS):
    _, m, home, ctrl = scene
    return np.tile(home, (n, 1)), np.zeros((n, m.nv)), np.tile(ctrl, (n, 1))


def _t(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def _set_all(backend, qpos, qvel):
    backend.set_state(torch.ones(backend.num_envs, dtype=torch.bool), _t(qpos), _t(qvel))


def test_import_matches_mujoco(built):
    backend, caught = built
    assert not [w for w in caught if "differs from MuJoCo" in str(w.message)]
    assert backend.qpos.shape == (NUM_ENVS, backend.mj_model.nq)
    assert backend.qvel.shape == (NUM_ENVS, backend.mj_model.nv)
    assert backend.qpos.dtype == torch.float32


def test_arm_trajectory_matches_mujoco(backend, scene):
    """Sinusoidal position targets around home (gripper target swings past its ctrlrange, so
    MuJoCo's ctrl clamping is exercised) for 100 steps = 0.5 s."""
    _, m, _, _ = scene
    qpos, qvel, home_ctrl = _home(scene)
    _set_all(backend, qpos, qvel)
    steps = np.arange(100)[:, None, None] * m.opt.timestep
    phase = np.linspace(0, 2, NUM_ENVS)[None, :, None]
    wave = np.sin(2 * np.pi * 1.5 * steps + phase + np.arange(m.nu))
    ctrls = home_ctrl + wave * np.r_[[0.3] * 7, [0.03]]
    ref_q, ref_v = mujoco_reference(m, qpos, qvel, ctrls)
    for t, ctrl in enumerate(ctrls):
        diverged = backend.step(_t(ctrl), 1)
        assert not diverged.any()
        _assert_qpos(m, backend.qpos.numpy(), ref_q[t], QPOS_ATOL)
        _assert_qvel(m, backend.qvel.numpy(), ref_v[t], QVEL_ATOL)
    assert np.abs(ref_q[-1, :, :7] - qpos[:, :7]).max() > 0.1  # the arm did move


def test_free_body_conventions(backend, scene):
    """A free body with an off-origin centre of mass, random orientation and velocities (free
    flight under gravity, no contact) follows MuJoCo C: qpos [pos, quat wxyz], qvel [v_origin
    world, w body]."""
    _, m, _, _ = scene
    qpos, qvel, ctrl = _home(scene)
    rng = np.random.default_rng(0)
    j = m.joint("probe_joint")
    qa, da = int(j.qposadr[0]), int(j.dofadr[0])
    quat = rng.normal(size=(NUM_ENVS, 4))
    qpos[:, qa + 3 : qa + 7] = quat / np.linalg.norm(quat, axis=1, keepdims=True)
    qvel[:, da : da + 6] = rng.uniform(-3.0, 3.0, (NUM_ENVS, 6))
    _set_all(backend, qpos, qvel)
    np.testing.assert_allclose(backend.qpos.numpy(), qpos, atol=1e-7)  # read back as written
    ref_q, ref_v = mujoco_reference(m, qpos, qvel, [ctrl] * 50)

    backend.step(_t(ctrl), 1)  # one step isolates the MuJoCo <-> Newton conversion
    np.testing.assert_allclose(backend.qpos[:, qa : qa + 7].numpy(), ref_q[0, :, qa : qa + 7], atol=1e-6)
    np.testing.assert_allclose(backend.qvel[:, da : da + 6].numpy(), ref_v[0, :, da : da + 6], atol=1e-5)
    diverged = backend.step(_t(ctrl), 49)  # held ctrl over several physics steps
    assert not diverged.any()
    assert (ref_q[-1, :, qa + 2] > 0.5).all()  # still in the air
    probe_q, probe_v = backend.qpos[:, qa : qa + 7].numpy(), backend.qvel[:, da : da + 6].numpy()
    np.testing.assert_allclose(probe_q, ref_q[-1, :, qa : qa + 7], atol=QPOS_ATOL)
    np.testing.assert_allclose(probe_v, ref_v[-1, :, da : da + 6], atol=QVEL_ATOL)


def test_set_state_touches_only_masked_envs(backend, scene):
    _, m, _, _ = scene
    qpos, qvel, ctrl = _home(scene)
    _set_all(backend, qpos, qvel)
    ctrl[:, 0] += 0.5  # swing joint 1 so every env has velocity and solver history
    backend.step(_t(ctrl), 10)
    before_q, before_v = backend.qpos.clone(), backend.qvel.clone()
    warmstart = backend.solver.mjw_data.qacc_warmstart.numpy()
    assert (np.abs(warmstart) > 0).any(axis=1).all()

    mask = torch.tensor([False, True, False, True])
    new_q, new_v = before_q.clone(), before_v.clone()
    new_q[:, :7] += 0.1
    new_v[:, :7] = -0.2
    backend.set_state(mask, new_q, new_v)

    keep = ~mask
    assert torch.equal(backend.qpos[keep], before_q[keep]) and torch.equal(backend.qvel[keep], before_v[keep])
    assert torch.equal(backend.qpos[mask], new_q[mask]) and torch.equal(backend.qvel[mask], new_v[mask])
    warmstart = backend.solver.mjw_data.qacc_warmstart.numpy()
    assert (warmstart[mask.numpy()] == 0).all() and (np.abs(warmstart[keep.numpy()]) > 0).any(axis=1).all()

    # The solver really continues from the written state in the masked envs only.
    ref_q, ref_v = mujoco_reference(m, backend.qpos.double().numpy(), backend.qvel.double().numpy(), [ctrl])
    backend.step(_t(ctrl), 1)
    _assert_qpos(m, backend.qpos.numpy(), ref_q[0], 1e-5)
    _assert_qvel(m, backend.qvel.numpy(), ref_v[0], QVEL_ATOL)


def test_divergence_reported_per_env(backend, scene):
    _, m, _, _ = scene
    qpos, qvel, ctrl = _home(scene)
    _set_all(backend, qpos, qvel)
    bad_q, bad_v = qpos.copy(), qvel.copy()
    bad_q[1, 3] = np.nan  # env 1: NaN joint position
    bad_v[2, 0] = 1e12  # env 2: velocity beyond MuJoCo's mjMAXVAL (1e10)
    backend.set_state(torch.tensor([False, True, True, False]), _t(bad_q), _t(bad_v))
    diverged = backend.step(_t(ctrl), 5)
    assert diverged.tolist() == [False, True, True, False]

    healthy = [0, 3]
    ref_q, _ = mujoco_reference(m, qpos[healthy], qvel[healthy], [ctrl[healthy]] * 5)
    _assert_qpos(m, backend.qpos[healthy].numpy(), ref_q[-1], 1e-5)

    # set_state recovers the diverged envs.
    backend.set_state(diverged, _t(qpos), _t(qvel))
    assert not backend.step(_t(ctrl), 5).any()
    assert torch.isfinite(backend.qpos).all() and torch.isfinite(backend.qvel).all()
