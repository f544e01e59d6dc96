"""Progress of a collection: a tqdm bar on a terminal when tqdm is installed, a line rewritten in place
on a terminal without it, and plain lines (every ``every_s`` seconds) in logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_s(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """Episodes of ``total`` collected, frames/s and ETA.

    Args:
        total: episodes the collection ends with.
        initial: episodes already in the dataset (a resumed collection).
        desc: what is collected (the task id).
        stream: where to write (default stderr); ``None`` writes nothing.
        every_s: [s] between two plain lines when ``stream`` is not a terminal.
    """

    def __init__(
        self, total: int, *, initial: int = 0, desc: str = "", stream: TextIO | None = sys.stderr, every_s: float = 10.0
    ) -> None:
        self.total, self.initial, self.desc = total, initial, desc
        self.stream, self.every_s = stream, every_s
        self.t0 = self._last = time.perf_counter()
        self.episodes, self.frames = initial, 0
        self._bar = None
        self._tty = stream is not None and hasattr(stream, "isatty") and stream.isatty()
        if self._tty:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, initial=initial, desc=desc, unit="ep", file=stream, dynamic_ncols=True)

    @property
    def frames_per_s(self) -> float:
        dt = time.perf_counter() - self.t0
        return self.frames / dt if dt > 0 else 0.0

    def line(self) -> str:
        dt = time.perf_counter() - self.t0
        done = self.episodes - self.initial
        left = self.total - self.episodes
        eta = dt / done * left if done > 0 else float("nan")
        eta_s = _fmt_s(eta) if eta == eta else "?"
        return (
            f"[worldloop] collect {self.desc}: {self.episodes}/{self.total} episodes, {self.frames:,} frames this run, "
            f"{self.frames_per_s:,.0f} frames/s, elapsed {_fmt_s(dt)}, ETA {eta_s}"
        )

    def update(self, episodes: int, frames: int) -> None:
        """``episodes``: episodes in the dataset now (committed or buffered); ``frames``: frames added
        by this collection."""
        step = episodes - self.episodes
        self.episodes, self.frames = episodes, frames
        if self.stream is None:
            return
        now = time.perf_counter()
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.frames_per_s:,.0f} frames/s", refresh=False)
            self._bar.update(step)
        elif self._tty:
            if now - self._last >= 0.5:
                self.stream.write("\r" + self.line())
                self.stream.flush()
                self._last = now
        elif now - self._last >= self.every_s:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last = now

    def close(self, message: str = "") -> None:
        """End the display; ``message`` is written as a last plain line."""
        if self.stream is None:
            return
        if self._bar is not None:
            self._bar.close()
        elif self._tty:
            self.stream.write("\r" + self.line() + "\n")
        else:
            self.stream.write(self.line() + "\n")
        if message:
            self.stream.write(message + "\n")
        self.stream.flush()
