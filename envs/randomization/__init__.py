"""Domain randomization: named terms drawn per env from a seeded generator, applied from nominal values.

A task declares its terms (its preset) in its config; each can be changed from the command line
(``--env.randomization.NAME.FIELD VALUE``; ``--rand NAME=off`` drops a term and ``--rand
NAME.kind=...`` adds one, see ``worldloop/scripts/rand_option.py``) or replaced::

    randomization: dict[str, RandTerm] = field(default_factory=lambda: {
        "cube_mass": RandTerm(kind="body_mass", targets="cube", range=(0.5, 2.0)),   # x nominal
        "cube_friction": RandTerm(kind="geom_friction", targets="cube", range=(0.5, 1.5)),
        "obs_noise": RandTerm(kind="obs_noise", dist="gaussian", range=(-0.01, 0.01)),
    })

Kinds (``targets`` is a regex, full match, over the MuJoCo names in brackets; default op first):

=================== ================ ============================================== =============
kind                targets          a draw is                                      ops
=================== ================ ============================================== =============
body_mass           bodies           mass [kg] (``body_mass``)                      scale add abs
body_com            bodies           centre of mass x/y/z [m] (``body_ipos``)       add abs
body_inertia        bodies           principal moments, one factor per body         scale
geom_friction       geoms            sliding/torsional/rolling friction (comp. 0)   scale add abs
geom_size           geoms            primitive size [m], one draw for all axes      scale add
dof_damping         joints           damping of each dof [N m s/rad]                scale add abs
dof_armature        joints           armature of each dof [kg m^2]                  scale add abs
dof_frictionloss    joints           dry friction of each dof [N m]                 scale add abs
actuator_stiffness  actuators        kp = ``gainprm[0]`` (an affine bias follows)   scale add abs
actuator_damping    actuators        kv = ``-biasprm[2]``                           scale add abs
gravity             --               gravity x/y/z [m/s^2] (``opt.gravity``)        add scale abs
initial_pose        free bodies or   offset of the reset pose: x/y/z [m],           add
                    1-dof joints     rx/ry/rz [rad] world axes (comp. 0, 1, 5)
push                free bodies or   velocity kick: vx/vy/vz [m/s], wx/wy/wz        add
                    1-dof joints     [rad/s] body axes (comp. 0, 1); joint [rad/s]
impulse             free bodies      linear impulse [N s]; kick = impulse / mass    add
obs_noise/obs_bias  obs groups       per observation value (default ``policy``)     add scale
action_noise        --               per action value, clipped to ``action_clip``   add scale
action_latency      --               control steps of delay, integer in ``range``   abs
=================== ================ ============================================== =============

Modes: ``startup`` (drawn once at construction), ``reset`` (drawn for the envs being reset),
``interval`` (per env, every ``interval_s`` seconds, timers independent of episodes), ``step``
(every policy step; obs and action kinds). Defaults: ``reset``; ``step`` for ``obs_noise`` and
``action_noise``; ``interval`` for ``push`` and ``impulse``.

Distributions over ``range = (low, high)``, so every draw lies in the range: ``uniform``,
``log_uniform`` (``low > 0``), ``gaussian`` (mean at the centre, std a quarter of the width, clipped).

Ops: ``scale`` (nominal * draw), ``add`` (nominal + draw), ``abs`` (draw). Each time a parameter
changes it is recomputed from the scene's nominal value through every term on it, in declaration
order, so nothing drifts. Physical parameters go through ``backend.set_model_params`` and mean
the same on every backend.

Backends: the ``mujoco`` backend keeps per-env parameters as ``mujoco.batch.Batch`` per-simulation
fields over one shared model (+2-3% physics time at 1,024 Franka envs, where one ``MjModel`` copy per
env cost +25-30%); ``newton`` writes Newton's per-world ``Model`` arrays and publishes them with
``SolverMuJoCo.notify_model_changed`` before the next step (once per step at most; on a GPU every
step with a reset term, since which envs reset is not read back). A ``body_com`` term recompiles the
scene with its bodies non-"simple" so MuJoCo C may move their centre of mass (``prepare_scene``).

Reading and setting (sweeps, system identification): ``env.randomizer.values()`` gives each term's
current draws ``(num_envs, k)`` (``columns(term)`` names the k columns), ``physical(term)`` the
parameter values the physics has; ``set(term, value)`` pins a term's draw (e.g. ``0.3`` in every
env) until ``release(term)``.

Curriculum: a term with ``max_range`` widens its range toward it by ``CURRICULUM_STEP`` of the gap
whenever the mean success rate of the last ``CURRICULUM_WINDOW`` reports (``env.pop_episode_stats``,
once per training iteration) exceeds ``CURRICULUM_SUCCESS``; the levels are logged there as
``curriculum/<term>``.

Modules, by what a term acts on: ``terms`` (:class:`RandTerm`, the kinds, checking and drawing a
term), ``model`` (model parameters, :func:`prepare_scene`), ``state`` (``initial_pose``, ``push``,
``impulse``), ``signals`` (observation and action kinds), ``randomizer`` (:class:`Randomizer`, which
draws and applies them). ``worldloop bench`` measures the overhead (``scripts/bench_randomization.py``).
"""

from worldloop.envs.randomization.model import prepare_scene
from worldloop.envs.randomization.randomizer import Randomizer
from worldloop.envs.randomization.terms import (
    CURRICULUM_STEP,
    CURRICULUM_SUCCESS,
    CURRICULUM_WINDOW,
    DISTS,
    KINDS,
    MODES,
    RandTerm,
)

__all__ = [
    "CURRICULUM_STEP",
    "CURRICULUM_SUCCESS",
    "CURRICULUM_WINDOW",
    "DISTS",
    "KINDS",
    "MODES",
    "RandTerm",
    "Randomizer",
    "prepare_scene",
]
