"""Argument types shared by ``%lms`` and ``lmj`` (both mirror ``lms`` flags)."""

from __future__ import annotations

import argparse
from typing import Any


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


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """The load flags ``lmj load`` and ``%lms load`` share, as the load route's fields."""
    return {
        "context_length": args.context_length,
        "identifier": args.identifier,
        "ttl": args.ttl,
        "gpu": args.gpu,
        "parallel": args.parallel,
        "flash_attention": args.flash_attention,
        "draft_model": args.draft_model,
        "num_draft_tokens": args.draft_max_tokens,
        "draft_min_probability": args.draft_min_probability,
        "force": args.force or None,
    }
