"""Policies: PPO through rsl-rl-lib, world-action models, export."""
