"""The devices training runs on, named as the options name them. Checked without torch, so
that a command checks its options before it loads torch."""

from __future__ import annotations

from ..errors import OptionError


def check_device(device: str) -> str:
    """`device` if it names a device: auto (a GPU if torch sees one), cpu, cuda or cuda:N."""
    if device in ("auto", "cpu", "cuda") or (device[:5] == "cuda:" and device[5:].isdigit()):
        return device
    raise OptionError("device", f"must be one of auto, cpu, cuda or cuda:N, got {device!r}")
