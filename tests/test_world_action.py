"""World-action PPO: episode-end masking, K-step prediction on a linear system, checkpoints, ONNX."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from worldloop.policies.world_action import WorldActionModel, window_masks, world_model_loss

GAUSSIAN = {"class_name": "GaussianDistribution", "init_std": 1.0}


def small_model(n_obs: int, n_act: int, **kw) -> WorldActionModel:
    obs = TensorDict({"policy": torch.zeros(1, n_obs)}, batch_size=[1])
    defaults = dict(latent_dim=16, encoder_dims=(64,), dynamics_dims=(64,), head_dims=(64,), ensemble_size=2)
    return WorldActionModel(obs, {"actor": ["policy"]}, "actor", n_act, distribution_cfg=GAUSSIAN, **(defaults | kw))


def test_window_masks_stop_at_episode_ends_and_rollout_end():
    # T = 6 steps, 2 envs; env 0's episode ends after step 2 (observation 3 starts a new one).
    dones = torch.zeros(6, 2, dtype=torch.uint8)
    dones[2, 0] = 1
    starts, envs = torch.tensor([0, 1, 3, 4, 4]), torch.tensor([0, 0, 0, 0, 1])
    alive = window_masks(dones, starts, envs, horizon=3)
    # alive[:, j]: observation t + j exists (t + j <= T = 6) and no episode ended in steps t .. t + j - 1.
    expected = torch.tensor(
        [
            [1, 1, 1, 0],  # t=0: steps 0, 1, 2 in the episode; observation 3 is the next episode's
            [1, 1, 0, 0],  # t=1: observation 3 is reached through the end after step 2
            [1, 1, 1, 1],  # t=3, in the new episode: observations 3..6 (6: after the last step)
            [1, 1, 1, 0],  # t=4: observation 7 is past the rollout
            [1, 1, 1, 0],  # env 1, no end: only the rollout's end
        ],
        dtype=torch.float,
    )
    assert torch.equal(alive, expected)


def test_world_model_loss_ignores_what_follows_an_episode_end():
    torch.manual_seed(0)
    model = small_model(4, 2)
    b, k = 8, 4
    obs, actions = torch.randn(b, k + 1, 4), torch.rand(b, k, 2) * 2 - 1
    rewards, terminated = torch.randn(b, k), torch.zeros(b, k, dtype=torch.bool)
    dones = torch.zeros(k, b, dtype=torch.uint8)
    dones[1] = 1  # every window's episode ends after its step 1: observations 2.. are another episode's
    alive = window_masks(dones, torch.zeros(b, dtype=torch.long), torch.arange(b), k)
    assert alive[:, :2].eq(1).all() and alive[:, 2:].eq(0).all()
    base = world_model_loss(model, obs, actions, rewards, terminated, alive)
    garbage_obs, garbage_rew = obs.clone(), rewards.clone()
    garbage_obs[:, 2:] = 1e3  # the next episode's observations
    garbage_rew[:, 2:] = -1e3  # and rewards (transition 1, the episode's last, still counts)
    masked = world_model_loss(model, garbage_obs, actions, garbage_rew, terminated, alive)
    for term in ("total", "dynamics", "reward", "termination"):
        assert torch.allclose(getattr(base, term), getattr(masked, term)), term
    unmasked = world_model_loss(model, garbage_obs, actions, garbage_rew, terminated, torch.ones_like(alive))
    assert unmasked.dynamics > 10 * base.dynamics  # without the mask the garbage would dominate


def test_k_step_error_on_a_linear_system_below_bound():
    """x' = A x + B u (a damped rotation and a decaying pair, 4 states, 2 inputs). After 600 Adam steps on
    5-step windows, the decoded 5-step prediction's RMSE is below 0.2 (state std ~0.9) and below a
    third of the error of predicting no change."""
    torch.manual_seed(0)
    n, m, k = 4, 2, 5
    c, s = 0.98 * math.cos(0.2), 0.98 * math.sin(0.2)
    a_mat = torch.tensor([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 0.9, 0.1], [0, 0, 0, 0.95]])
    b_mat = torch.tensor([[0.1, 0.0], [0.0, 0.1], [0.1, 0.1], [0.0, 0.2]])

    def windows(b: int):
        x, u = torch.randn(b, n), torch.rand(b, k, m) * 2 - 1
        xs = [x]
        for j in range(k):
            x = x @ a_mat.T + u[:, j] @ b_mat.T
            xs.append(x)
        obs = torch.stack(xs, 1)
        return obs, u, -(obs[:, :-1] ** 2).sum(-1), torch.zeros(b, k, dtype=torch.bool), torch.ones(b, k + 1)

    model = small_model(n, m, simnorm=0, obs_normalization=False)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(600):
        loss = world_model_loss(model, *windows(128), reconstruction_coef=1.0)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        model.update_target(0.0)
    obs, u, r, d, alive = windows(2048)
    with torch.no_grad():
        err = world_model_loss(model, obs, u, r, d, alive).obs_rmse
    no_change = ((obs[:, 1:] - obs[:, :1]) ** 2).mean((0, 2)).sqrt()
    assert err.shape == (k,)
    assert err[-1] < 0.2, err
    assert (err < no_change / 3).all(), (err, no_change)


@pytest.fixture(scope="module")
def world_action_run(tmp_path_factory):
    from worldloop.policies.train import TrainCfg, train

    cfg = TrainCfg.from_task(
        "Cartpole-v0",
        num_envs=16,
        max_iterations=2,
        save_interval=1,
        eval_episodes=0,
        policy="world-action",
        log_root=str(tmp_path_factory.mktemp("runs")),
    )
    return train(cfg)["run_dir"]


def test_checkpoint_round_trip_and_tensorboard_terms(world_action_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from worldloop.policies.runner import load_checkpoint
    from worldloop.policies.train import load_run

    saved = load_checkpoint(f"{world_action_run}/last.pt")
    env, runner = load_run(world_action_run, checkpoint="last", num_envs=4)
    actor = runner.alg.actor
    for key, value in actor.state_dict().items():
        assert torch.equal(value, saved["actor_state_dict"][key]), key
    assert any(k.startswith("dynamics.") for k in saved["actor_state_dict"])  # the world model is in it
    assert runner.current_learning_iteration == saved["iter"] + 1
    env.close()
    events = EventAccumulator(world_action_run)
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for term in ("surrogate", "value", "dynamics", "reward", "termination", "reconstruction", "kstep_obs_rmse_k5"):
        assert f"Loss/{term}" in tags, term


def test_critic_learning_rate_is_its_own_param_group_outside_the_schedule(tmp_path):
    """``--world-action.critic-learning-rate``: the critic's parameters are one Adam group whose learning rate stays
    put while PPO's adaptive schedule moves the actor's."""
    from worldloop.policies.runner import load_checkpoint
    from worldloop.policies.train import TrainCfg, train
    from worldloop.policies.world_action_cfg import WorldActionCfg

    wa = WorldActionCfg(critic_learning_rate=3e-3)
    cfg = TrainCfg.from_task("Cartpole-v0", num_envs=16, max_iterations=3, eval_episodes=0, policy="world-action",
                             world_action=wa, log_root=str(tmp_path))  # fmt: skip
    saved = load_checkpoint(f"{train(cfg)['run_dir']}/last.pt")
    actor_group, critic_group = saved["optimizer_state_dict"]["param_groups"]
    assert critic_group["lr"] == 3e-3 and actor_group["lr"] != cfg.agent.learning_rate  # the schedule moved it
    assert len(critic_group["params"]) == sum(k.startswith("mlp.") for k in saved["critic_state_dict"])  # its layers


def test_bc_term_holds_ppo_to_the_demonstrations(tmp_path):
    """``--world-action.bc-data DIR --world-action.bc-coef C``: the same 3 PPO iterations (same seed) end with the
    actor's mean closer to the demonstrated actions with the term than without; without data it is refused."""
    import worldloop.data as wd
    from worldloop.policies.train import TrainCfg, load_run, train
    from worldloop.policies.world_action_cfg import WorldActionCfg

    demo = tmp_path / "demo"
    wd.collect("Franka-Reach-v0", demo, episodes=8, policy="expert", num_envs=8, progress=None)
    ds = wd.load(demo)

    def clone_error(wa: WorldActionCfg) -> float:
        cfg = TrainCfg.from_task("Franka-Reach-v0", num_envs=8, max_iterations=3, eval_episodes=0,
                                 policy="world-action", world_action=wa, log_root=str(tmp_path / "runs"))  # fmt: skip
        env, runner = load_run(train(cfg)["run_dir"], checkpoint="last", num_envs=2)
        env.close()
        a = runner.alg.actor
        with torch.no_grad():
            pred = a.action_mean(a.encode(a.normalize(ds.frames["observation.state"])))
        return float((pred - ds.frames["action"]).pow(2).mean())

    plain, held = clone_error(WorldActionCfg()), clone_error(WorldActionCfg(bc_data=(str(demo),), bc_coef=10.0))
    assert held < 0.7 * plain, (held, plain)  # measured 0.021 against 0.040
    with pytest.raises(ValueError, match="needs demonstrations"):
        clone_error(WorldActionCfg(bc_coef=1.0))


def test_onnx_parity_of_actor_and_world_model(world_action_run):
    import numpy as np
    import onnxruntime as ort

    from worldloop.policies.train import load_run
    from worldloop.policies.world_action import WorldModelExport
    from worldloop.scripts.export import export

    out = export(world_action_run, checkpoint="last")
    env, runner = load_run(world_action_run, checkpoint="last", num_envs=4)
    actor = runner.alg.actor.eval()
    obs = torch.randn(32, out["n_obs"])
    with torch.no_grad():
        expected = actor.mlp(actor.encoder(actor.normalize(obs)))
    session = ort.InferenceSession(out["onnx"])
    got = np.concatenate([session.run(None, {"obs": row})[0] for row in obs.numpy()[:, None]])
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(session.run(None, {"obs": obs.numpy()})[0], expected.numpy(), atol=1e-5)  # batch 32

    actions = torch.rand(32, 5, env.action_dim) * 2 - 1
    with torch.no_grad():
        wm_expected = WorldModelExport(actor, 5)(obs, actions)
    wm_got = ort.InferenceSession(out["world_model"]).run(None, {"obs": obs.numpy(), "actions": actions.numpy()})
    for a, b in zip(wm_got, wm_expected, strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-4)
    env.close()


def test_planner_moves_the_action_towards_higher_predicted_reward():
    from worldloop.policies.planning import Planner
    from worldloop.policies.world_action_cfg import PlanCfg

    torch.manual_seed(0)
    actor = small_model(6, 2)
    target = torch.tensor([0.8, -0.5])
    # A known reward in place of the learned head: the closer the action to `target`, the better.
    actor.predict_reward = lambda z, a: -(a - target).pow(2).sum(-1)
    obs = {"policy": torch.randn(16, 6)}
    cfg = PlanCfg(samples=128, elites=16, iterations=3, uncertainty_coef=0.0, noise_std=0.5)
    planner = Planner(actor, critic=torch.nn.Identity(), cfg=cfg)  # no usable critic: no terminal value
    with torch.no_grad():
        prior = actor.action_mean(actor.encode(actor.normalize(obs["policy"])))
    actions = planner(obs)
    assert actions.shape == (16, 2) and torch.isfinite(actions).all()
    before, after = (prior - target).norm(dim=-1), (actions - target).norm(dim=-1)
    assert (after < 0.5 * before).all(), (before, after)
    assert planner.calls == 1 and planner.ms_per_step > 0


def test_three_stage_recipe_pretrain_finetune_train_init_and_model_eval(tmp_path):
    import json

    import worldloop.data as wd
    from worldloop.policies.recipe import FinetuneCfg, PretrainCfg, finetune, model_eval, pretrain
    from worldloop.policies.runner import load_checkpoint
    from worldloop.policies.train import TrainCfg, train

    task = "Franka-Reach-v0"
    wd.collect(task, tmp_path / "random", episodes=8, policy="random", num_envs=8, progress=None)
    wd.collect(task, tmp_path / "expert", episodes=8, policy="expert", num_envs=8, seed=1, progress=None)
    runs = str(tmp_path / "runs")
    pre = pretrain(PretrainCfg(data=(str(tmp_path / "random"),), steps=30, batch_size=64, log_root=runs))
    assert pre["dataset_env_steps"] > 0 and len(pre["heldout_obs_rmse"]) == 5
    fine = finetune(
        FinetuneCfg(data=(str(tmp_path / "expert"),), init=pre["run_dir"], steps=30, batch_size=64, log_root=runs)
    )
    assert math.isfinite(fine["heldout_bc_mse"])
    # The fine-tuned run's actor is what PPO starts from.
    cfg = TrainCfg.from_task(task, num_envs=8, max_iterations=1, eval_episodes=0, log_root=runs)
    trained = train(dataclasses.replace(cfg, policy="world-action", init=fine["run_dir"]))
    first = load_checkpoint(f"{trained['run_dir']}/model_0.pt")["actor_state_dict"]
    tuned = load_checkpoint(f"{fine['run_dir']}/last.pt")["actor_state_dict"]
    w = "dynamics.net.0.weight"
    # One PPO iteration (20 Adam steps of ~1e-3) moves a weight far less than two initialisations differ.
    assert (
        (first[w] - tuned[w]).abs().max()
        < 0.05
        < (tuned[w] - small_model(34, 7, latent_dim=64, dynamics_dims=(128,), ensemble_size=5).state_dict()[w])
        .abs()
        .max()
    )

    from worldloop.policies.train import load_run

    env, runner = load_run(fine["run_dir"], num_envs=4)  # what play and export do
    env.close()
    result = model_eval(fine["run_dir"], tmp_path / "expert", horizon=4, holdout=0.25)
    assert set(result["rmse"]) == {"joints", "goal", "last_action"}
    assert all(len(v) == 4 and all(math.isfinite(x) for x in v) for v in result["rmse"].values())
    written = json.loads((tmp_path / "runs" / task / fine["run_dir"].split("/")[-1] / "model_eval.json").read_text())
    assert written["plot"] == result["plot"] and Path(result["plot"]).is_file()  # matplotlib is in the test extra
