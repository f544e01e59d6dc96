"""Robot logs, log replay, the held-out reality, system identification and the report: real datasets,
real replays, a real CMA-ES fit and a report.json checked against its schema."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from worldloop.sim2real.logs import LogError, read_logs
from worldloop.sim2real.reality import FRANKA_PARAMS, collect_reality
from worldloop.sim2real.report import ReportCfg, validate, write_report
from worldloop.sim2real.sysid import SysIdCfg, identify
from worldloop.sim2real.tracking import replay_logs
from worldloop.tasks import make

PUSH = "Franka-Push-v0"


@pytest.fixture(scope="module")
def push_env():
    env = make(PUSH, num_envs=1)
    yield env
    env.close()


@pytest.fixture(scope="module")
def reality(tmp_path_factory) -> tuple[Path, dict]:
    """Push friction-probe logs with the default hidden changes: cube mass x1.6, cube friction x0.6,
    servo stiffness x0.8 and one step of latency."""
    out = tmp_path_factory.mktemp("reality") / "push"
    truth = collect_reality(PUSH, out, episodes=8, policy="flick")
    return out, truth


def write_csv(path: Path, header: list[str], rows: list[list[float]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def csv_of(logs, episodes: int = 2) -> tuple[list[str], list[list[float]]]:
    A = logs.actions.shape[-1]
    header = ["episode_index", "frame_index", *[f"action.{i}" for i in range(A)], *logs.coords]
    rows = []
    for e in range(episodes):
        for t in range(int(logs.lengths[e])):
            rows.append([e, t, *logs.actions[e, t].tolist(), *logs.measured[e, t].tolist()])
    return header, rows


# ---------------------------------------------------------------------- logs
def test_reality_logs_hide_the_changes_and_carry_sensor_noise(reality, push_env, tmp_path):
    path, truth = reality
    info = json.loads((path / "meta" / "info.json").read_text())
    assert "0.6" not in json.dumps(info) and "randomization" not in json.dumps(info)
    assert truth["changes"] == {"object_mass": 1.6, "object_friction": 0.6, "arm_kp": 0.8, "latency": 1}
    logs = read_logs(path, push_env)
    assert logs.num_episodes == 8 and logs.effort is not None and "cube_joint.x" in logs.coords
    collect_reality(PUSH, tmp_path / "clean", episodes=8, joint_noise=0.0, effort_noise=0.0, policy="flick")
    clean = read_logs(tmp_path / "clean", push_env)  # fmt: skip
    noise = logs.measured - clean.measured  # the same physics, recorded without sensor noise
    quat = [i for i, c in enumerate(logs.coords) if c.rsplit(".", 1)[-1] in ("qw", "qx", "qy", "qz")]
    pos = [i for i in range(len(logs.coords)) if i not in quat]
    assert abs(float(noise[..., pos].std()) / truth["joint_noise"] - 1) < 0.05
    assert float(noise[..., quat].abs().max()) == 0.0
    assert abs(float((logs.effort - clean.effort)[:, 1:].std()) / truth["effort_noise"] - 1) < 0.05


def test_a_csv_log_reads_like_the_dataset(reality, push_env, tmp_path):
    logs = read_logs(reality[0], push_env)
    header, rows = csv_of(logs)
    rows.reverse()  # any row order
    again = read_logs(write_csv(tmp_path / "log.csv", header, rows), push_env)
    assert again.coords == logs.coords
    torch.testing.assert_close(again.actions, logs.actions[:2])
    torch.testing.assert_close(again.measured, logs.measured[:2])
    # A timestamp column at the env's 20 Hz, with a real clock's jitter, is accepted.
    jitter = [[*x, x[1] * 0.05 + 0.0005 * ((i % 3) - 1)] for i, x in enumerate(rows)]
    timed = read_logs(write_csv(tmp_path / "timed.csv", [*header, "timestamp"], jitter), push_env)
    torch.testing.assert_close(timed.actions, logs.actions[:2])


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda h, r: ([c for c in h if c != "action.4"], [x[:6] + x[7:] for x in r]), "'action.4'"),
        (lambda h, r: (h + ["shoulder_pan"], [x + [0.0] for x in r]), "shoulder_pan"),
        (
            lambda h, r: (
                [c for c in h if c != "joint3"],
                [x[: h.index("joint3")] + x[h.index("joint3") + 1 :] for x in r],
            ),
            "joint3",
        ),  # fmt: skip
        (lambda h, r: (h, [x for i, x in enumerate(r) if i != 5]), "frame 5 is missing.*frame_index"),
        (lambda h, r: (h, [[*x[:7], float("nan"), *x[8:]] if i == 3 else x for i, x in enumerate(r)]), "not finite"),
        (lambda h, r: ([c for c in h if c != "episode_index"], [x[1:] for x in r]), "episode_index"),
        (lambda h, r: ([*h, "timestamp"], [[*x, x[1] * 0.02] for x in r]), "'timestamp' gives 50 frames.* 20 "),
    ],
    ids=["missing-action", "another-robot", "missing-joint", "frame-gap", "nan", "no-episode-column", "rate"],
)
def test_a_malformed_csv_log_is_refused_naming_the_column(reality, push_env, tmp_path, edit, message):
    header, rows = csv_of(read_logs(reality[0], push_env), episodes=1)
    header, rows = edit(header, rows)
    with pytest.raises(LogError, match=message):
        read_logs(write_csv(tmp_path / "bad.csv", header, rows), push_env)


def test_a_dataset_of_another_robot_or_rate_is_refused(reality, tmp_path):
    bad = tmp_path / "other_robot"
    shutil.copytree(reality[0], bad)
    info_path = bad / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "robot_type": "so100"}))
    env = make(PUSH, num_envs=1)
    with pytest.raises(LogError, match="robot_type is 'so100'"):
        read_logs(bad, env)
    lift = make("Franka-Lift-v0", num_envs=1)  # 50 Hz, the Push logs are 20 Hz
    with pytest.raises(LogError, match="fps is 20"):
        read_logs(reality[0], lift)


# ---------------------------------------------------------------------- replay and fit
def test_replay_with_the_true_parameters_tracks_the_log_better_than_nominal(reality):
    path, truth = reality
    params = {k: FRANKA_PARAMS[k] for k in truth["changes"]}
    env = make(PUSH, num_envs=16, randomization=params)
    logs = read_logs(path, env)
    for k, v in truth["changes"].items():  # envs 0-7 the hidden truth, 8-15 nominal
        env.randomizer.set(k, torch.tensor([v] * 8 + [0.0 if k == "latency" else 1.0] * 8)[:, None])
    tr = replay_logs(env, logs, torch.arange(16) % 8)
    rmse = tr.joint_error().square().mean((1, 2)).sqrt()
    assert float(rmse[:8].median()) < 0.3 * float(rmse[8:].median())
    assert float(rmse[:8].median()) < 0.01  # [rad]


@pytest.mark.slow
def test_system_identification_recovers_the_hidden_changes(reality, tmp_path):
    """Issue 16's held-out reality with a small budget (the full one is in BENCHMARKS.md): the cube's
    mass from the torques of static holds, then friction, servo stiffness and latency by replaying the
    friction probes with that mass."""
    path, truth = reality
    holds = tmp_path / "lift_hold"
    collect_reality("Franka-Lift-v0", holds, episodes=4, seed=1, policy="hold")
    logs = {PUSH: read_logs(path, make(PUSH, num_envs=1))}
    logs["Franka-Lift-v0"] = read_logs(holds, make("Franka-Lift-v0", num_envs=1))
    params = {k: FRANKA_PARAMS[k] for k in ("object_mass", "object_friction", "arm_kp", "latency")}
    fit = identify(logs, params, SysIdCfg(popsize=12, generations=10))
    assert fit.values["latency"] == 1.0
    assert "object_mass" in fit.static
    for k in ("object_mass", "object_friction", "arm_kp"):
        assert abs(fit.values[k] / truth["changes"][k] - 1) < 0.1, (k, fit.values)
        assert fit.std[k] > 0
    assert fit.loss_fit * 5 <= fit.loss_nominal
    preset = fit.preset()
    lo, hi = preset["arm_kp"].range
    assert lo < fit.values["arm_kp"] < hi


def test_identify_refuses_parameters_it_cannot_fit(reality):
    env = make(PUSH, num_envs=1)
    logs = {PUSH: read_logs(reality[0], env)}
    bad = {"kp": dataclasses.replace(FRANKA_PARAMS["arm_kp"], op="add")}
    with pytest.raises(ValueError, match="scale factors"):
        identify(logs, bad)


# ---------------------------------------------------------------------- report
@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory) -> Path:
    from worldloop.policies.train import TrainCfg, train

    root = tmp_path_factory.mktemp("runs")
    cfg = TrainCfg.from_task(
        "Cartpole-v0", num_envs=32, max_iterations=6, save_interval=1, eval_episodes=0, log_root=str(root)
    )
    cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, num_steps_per_env=8))
    return Path(train(cfg)["run_dir"])


def test_report_json_validates_against_its_schema_and_plots_are_written(cartpole_run, tmp_path):
    cfg = ReportCfg(run=str(cartpole_run), out=str(tmp_path / "report"), backends=("mujoco",), episodes=32,
                    points=3, episodes_per_point=8, rank_pins={"pole_mass": 2.0}, rank_episodes=16)  # fmt: skip
    report = write_report(cfg, progress=lambda s: None)
    validate(report)
    validate(json.loads((tmp_path / "report" / "report.json").read_text()))
    for name in report["plots"].values():
        assert (tmp_path / "report" / name).stat().st_size > 5000
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Ranking fidelity" in md and "Pearson r" in md and "## Robustness curves" in md
    import jsonschema

    broken = {**report, "transfer": {**report["transfer"], "backends": {}}}
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_report_with_too_few_checkpoints_skips_ranking_says_so_first_and_keeps_the_rest(cartpole_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cartpole_run, run)
    for ckpt in sorted(run.glob("model_*.pt"))[2:]:
        ckpt.unlink()
    said: list[str] = []
    cfg = ReportCfg(run=str(run), out=str(tmp_path / "report"), backends=("mujoco",), episodes=16,
                    robustness=False, rank_pins={"pole_mass": 2.0}, rank_episodes=16)  # fmt: skip
    report = write_report(cfg, progress=said.append)
    assert report["rank_fidelity"] is None and report["transfer"] is not None
    assert "2 model_<it>.pt checkpoints" in report["skipped"]["rank_fidelity"]
    assert "--save-interval" in report["skipped"]["rank_fidelity"] and "--no-rank" in report["skipped"]["rank_fidelity"]
    assert "skipped" in said[0] and said[1].startswith("[sim2real] transfer")  # before the slow parts
    validate(json.loads((tmp_path / "report" / "report.json").read_text()))
    assert "**Rank fidelity skipped**" in (tmp_path / "report" / "report.md").read_text()


def test_report_refuses_robustness_of_a_run_without_randomization_before_running(tmp_path):
    from worldloop.policies.train import TrainCfg, train

    cfg = TrainCfg.from_task("Cartpole-v0", num_envs=8, max_iterations=1, eval_episodes=0, log_root=str(tmp_path))
    cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, randomization={}),
                              agent=dataclasses.replace(cfg.agent, num_steps_per_env=4))  # fmt: skip
    run = Path(train(cfg)["run_dir"])
    from worldloop.sim2real import NoRandomizationError

    with pytest.raises(NoRandomizationError, match="--terms-from"):
        write_report(ReportCfg(run=str(run), out=str(tmp_path / "r")), progress=lambda s: None)
    assert not (tmp_path / "r").exists()
    with pytest.raises(FileNotFoundError, match="--logs"):
        write_report(ReportCfg(run=str(run), robustness=False, logs=(str(tmp_path / "nope.csv"),)))
    bad = write_csv(
        tmp_path / "bad.csv",
        ["episode_index", "frame_index", *[f"action.{i}" for i in range(5)], "shoulder_pan"],
        [[0, 0, 0, 0, 0, 0, 0, 0.1], [0, 1, 0, 0, 0, 0, 0, 0.1]],
    )
    with pytest.raises(LogError, match="shoulder_pan"):  # before any evaluation runs or anything is written
        write_report(ReportCfg(run=str(run), out=str(tmp_path / "r2"), robustness=False, logs=(f"{PUSH}={bad}",)),
                     progress=lambda s: None)  # fmt: skip
    assert not (tmp_path / "r2").exists()
    for item, exc, words in (
        ("Franka-Lift-v0:flick", ValueError, "flick probe is written for Franka-Push-"),
        ("Franka-Push-v0:wiggle", ValueError, "no probe 'wiggle'"),
        ("Franka-Lfit-v0", KeyError, "Franka-Lfit-v0"),
    ):
        with pytest.raises(exc, match=words):  # before the transfer and robustness stages run
            write_report(ReportCfg(run=str(run), out=str(tmp_path / "r3"), robustness=False, reality_tasks=(item,)),
                         progress=lambda s: None)  # fmt: skip
        assert not (tmp_path / "r3").exists()
