"""``torch.onnx.export`` without the notes that do not concern a policy's export."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_onnx_export() -> Iterator[None]:
    """Silence, for the ``with`` block, the exporter's one warning line per torchvision operator it skips when
    torchvision is not installed (a policy uses none of them) and torch's ``LeafSpec`` deprecation warning
    raised inside the exporter; every other warning and error still shows."""
    log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        log.setLevel(level)
