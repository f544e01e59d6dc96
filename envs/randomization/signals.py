"""Signal kinds: ``obs_noise``/``obs_bias`` on observation groups, ``action_noise`` and
``action_latency`` on the actions the actuators receive. They change what the policy sees and
sends, never the physics model.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from worldloop.envs.randomization.terms import Term, components

Sample = Callable[[Term, torch.Tensor | None], None]
"""The randomizer's draw of a term for the envs in a mask (``None``: all)."""


def resolve_obs(t: Term, probe: dict[str, torch.Tensor], device: torch.device) -> None:
    """Resolve an obs term's groups (regex over the names in ``probe``, default ``policy``) and columns."""
    groups = list(probe)
    pattern = t.cfg.targets or "policy"
    try:
        sel = [g for g in groups if re.fullmatch(pattern, g)]
    except re.error as e:
        raise t.error("targets", f"{pattern!r} is not a valid regex: {e}") from None
    if not sel:
        raise t.error("targets", f"{pattern!r} matches no observation group; groups: {groups}")
    t.groups, start, t.labels = [], 0, []
    for g in sel:
        comps = components(t, probe[g].shape[-1], None)
        n = 1 if t.cfg.shared else len(comps)
        cols = None if comps == list(range(probe[g].shape[-1])) else torch.as_tensor(comps, device=device)
        t.groups.append((g, cols, slice(start, start + n)))
        t.labels += [f"{g}[*]"] if t.cfg.shared else [f"{g}[{c}]" for c in comps]
        start += n
    t.k = start


def resolve_action(t: Term, action_dim: int, device: torch.device) -> None:
    """Resolve an ``action_noise`` term's action columns."""
    comps = components(t, action_dim, None)
    t.cols = torch.as_tensor(comps, device=device)
    t.k = 1 if t.cfg.shared else len(comps)
    t.labels = ["a[*]"] if t.cfg.shared else [f"a[{c}]" for c in comps]


def resolve_latency(t: Term) -> None:
    """An ``action_latency`` term draws one whole number of control steps per env."""
    t.k, t.labels = 1, ["steps"]


class ActionDelay:
    """The ring buffer of an ``action_latency`` term: each env receives the action sent ``delay``
    control steps ago (its draw); long enough for the term's widest range."""

    def __init__(self, t: Term, num_envs: int, action_dim: int, device: torch.device) -> None:
        self.term, self.num_envs, self.device = t, num_envs, device
        k = int(max(t.hi, (t.cfg.max_range or (0, 0))[1]))
        self.buf = torch.zeros(k + 1, num_envs, action_dim, device=device)
        self.ptr = 0

    @property
    def length(self) -> int:
        """Delays ``0..length - 1`` steps fit in the buffer."""
        return self.buf.shape[0]

    def clear(self, mask: torch.Tensor) -> None:
        """The history of a new episode (envs in ``mask``) is the zero action."""
        self.buf *= ~mask[None, :, None]

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        """Record ``actions`` and return each env's delayed action."""
        L = self.buf.shape[0]
        self.ptr = (self.ptr + 1) % L
        self.buf[self.ptr] = actions
        delay = self.term.draw[:, 0].long()
        return self.buf[(self.ptr - delay) % L, torch.arange(self.num_envs, device=self.device)]


def noise_actions(terms: list[Term], actions: torch.Tensor, sample: Sample, clip: float) -> torch.Tensor:
    """``actions`` with the ``action_noise`` terms applied (redrawn first in ``step`` mode), clipped to
    ``[-clip, clip]`` if there is any."""
    for t in terms:
        if t.mode == "step":
            sample(t, None)
        x = actions[:, t.cols]
        x = x * t.draw if t.op == "scale" else x + t.draw
        actions = actions.clone()
        actions[:, t.cols] = x
    if terms:
        actions = actions.clamp(-clip, clip)
    return actions


def noise_obs(terms: list[Term], obs: dict[str, torch.Tensor], sample: Sample) -> dict[str, torch.Tensor]:
    """Observation groups with the obs terms applied (redrawn first in ``step`` mode); new tensors,
    ``obs``'s are not modified."""
    if not terms:
        return obs
    obs = dict(obs)
    for t in terms:
        if t.mode == "step":
            sample(t, None)
        for group, cols, part in t.groups:
            x, d = obs[group], t.draw[:, part]
            if cols is None:  # every column: one op
                obs[group] = x * d if t.op == "scale" else x + d
            else:
                x = x.clone()
                x[:, cols] = x[:, cols] * d if t.op == "scale" else x[:, cols] + d
                obs[group] = x
    return obs
