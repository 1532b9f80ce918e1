"""Argument types shared by ``%lms`` and ``lmj`` (both mirror ``lms`` flags)."""

from __future__ import annotations

import argparse


def gpu_option(value: str) -> str | float:
    """``--gpu off|max|0.0-1.0`` as the load route takes it."""
    if value in ("off", "max"):
        return value
    try:
        ratio = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use off, max, or a number between 0 and 1") from None
    if not 0 <= ratio <= 1:
        raise argparse.ArgumentTypeError("use off, max, or a number between 0 and 1")
    return ratio
