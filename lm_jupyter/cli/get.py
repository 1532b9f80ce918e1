"""``lmj get QUERY``: search the Hugging Face Hub and download a model, like ``lms get``.

The server does the work (``server/downloads.py``): it searches, judges each variant's fit
with the memory estimator, and downloads into its models folder; this command chooses,
asks, and draws the progress. Messages and the progress bar go to stderr, ``--json`` data to
stdout; failures exit 1. Ctrl+C during the download asks whether it goes on in the
background; if not, the job is paused, and its ``.part`` files let the next ``lmj get`` resume.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ..client.client import Client
from ..client.download_view import (
    candidate_line,
    follow,
    option_line,
    option_short,
    progress_line,
    wanted_quant,
)


def _say(message: str = "") -> None:
    print(message, file=sys.stderr)


def _ask(question: str) -> str | None:
    """One line from stdin (a terminal or a pipe); None at the end of input."""
    print(question, end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    return line.strip() if line else None


def _confirm(question: str) -> bool:
    answer = _ask(f"{question} [Y/n] ")
    return answer is not None and answer.lower() in ("", "y", "yes")


def _choose(count: int, what: str, default: int = 1) -> int | None:
    """A 1-based pick from a numbered list (Enter: ``default``); None at the end of input."""
    while True:
        answer = _ask(f"{what} [1-{count}, Enter for {default}]: ")
        if answer is None:
            return None
        if not answer:
            return default
        if answer.isdigit() and 1 <= int(answer) <= count:
            return int(answer)
        _say(f"Type a number from 1 to {count}.")


def add_get_command(sub: Any, make_client: Callable[[], Client]) -> None:
    p = sub.add_parser(
        "get",
        help="Search Hugging Face and download a model.",
        description="Search the Hugging Face Hub and download a model into the models folder. QUERY is "
        "search words (qwen2.5 coder), owner/repo, or a https://huggingface.co URL; add @QUANT to "
        "pick a quantization (owner/repo@q4_k_m). Without one, the best quantization that fits "
        "this machine (by the memory estimator) is chosen.",
    )
    p.add_argument("query", nargs="+", metavar="QUERY")
    p.add_argument("--quant", help="Quantization to download, e.g. Q4_K_M (same as QUERY@QUANT).")
    p.add_argument("--gguf", action="store_true", help="Only GGUF models (the default).")
    p.add_argument("--mlx", action="store_true", help="Only MLX models (run with mlx-lm).")
    p.add_argument("-n", "--limit", type=int, default=10, help="Most search results to list (default 10).")
    p.add_argument("-y", "--yes", action="store_true", help="Do not ask: first result, recommended option.")
    p.add_argument("--select", action="store_true", help="Choose the download option even when one fits.")
    p.add_argument("--json", action="store_true", help="Print the finished download's status as JSON.")
    p.set_defaults(func=lambda args: cmd_get(args, make_client))


def cmd_get(args: argparse.Namespace, make_client: Callable[[], Client]) -> int:
    if args.yes and args.select:
        _say("You cannot use the --yes flag with the --select flag.")
        return 1
    formats = ",".join(f for f, on in (("gguf", args.gguf or not args.mlx), ("mlx", args.mlx)) if on)
    query = " ".join(args.query)
    client = make_client()
    if "/" not in query:
        _say(f"Searching for models with the term {query}")
    found = client.search_hub(query, formats, args.limit)
    results = found["results"]
    if not results:
        _say("No models found with the specified search criteria.")
        return 1
    quant = wanted_quant(query, found, args.quant)
    pick = _pick_result(results, args.yes)
    if pick is None:
        return 1
    repo = results[pick]["repo"]
    # A URL keeps its file preference; otherwise the repo the search settled on.
    reference = query.split("@", 1)[0] if results[pick]["exact_match"] and "/" in query else repo
    options = client.download_options(reference, quant, formats)
    option = _pick_option(options, quant, args)
    if option is None:
        return 1
    if not args.yes and not option.get("downloaded") and not _confirm(f"Download {option_short(option)}?"):
        _say("Download canceled.")
        return 1
    job = client.download(repo, option["name"])
    return _finish(client, job, option, args)


def _pick_result(results: list[dict[str, Any]], yes: bool) -> int | None:
    """The exact match; else the first with ``-y``; else the user's choice (None: none made)."""
    exact = next((i for i, r in enumerate(results) if r["exact_match"]), None)
    if exact is not None:
        return exact
    if yes:
        if len(results) > 1:
            _say("Multiple models found. Automatically selecting the first one due to --yes.")
        return 0
    _say("No exact match found. Please choose a model from the list below.")
    for index, result in enumerate(results, 1):
        _say(candidate_line(index, result))
    chosen = _choose(len(results), "Select a model to download")
    if chosen is None:
        _say("No model chosen.")
        return None
    return chosen - 1


def _pick_option(
    options: dict[str, Any], quant: str | None, args: argparse.Namespace
) -> dict[str, Any] | None:
    variants: list[dict[str, Any]] = options["variants"]
    by_name = {v["name"]: v for v in variants}
    default = by_name.get(options["selected"] or options["recommended"] or "", variants[0])
    show = args.select
    if quant and options["selected"] is None:
        if args.yes:
            _say("You have specified a quantization that does not exist. Here are the available options:")
            for variant in variants:
                _say(f"- {option_short(variant)}")
            _say("Exiting because of the --yes flag.")
            return None
        _say(f'Cannot find a download option with quantization "{quant}". Please choose one of these:')
        show = True
    elif options["selected"] is None and not show:
        _say(f"Based on your hardware, choosing the recommended option: {option_short(default)}")
    if not show or args.yes:
        return default
    for index, variant in enumerate(variants, 1):
        _say(f"{index:3}. {option_line(variant)}")
    chosen = _choose(len(variants), "Select an option to download", variants.index(default) + 1)
    if chosen is None:
        _say("No option chosen.")
        return None
    return variants[chosen - 1]


def _finish(client: Client, job: dict[str, Any], option: dict[str, Any], args: argparse.Namespace) -> int:
    if job["status"] == "already_downloaded":
        _say(f"You already have this model. You can load it with:\n\n    lmj load {job.get('model_key')}\n")
        if args.json:
            print(json.dumps(job))
        return 0
    _say(f"Downloading {option_short(option)}")
    live = sys.stderr.isatty()
    status = job
    try:
        for status in follow(client, job):
            if live:
                print(f"\r{progress_line(status)}\x1b[K", end="", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        _say()
        if _confirm("Continue to download in the background?"):
            _say("Download will continue in the background; run the same `lmj get` to follow it.")
        else:
            client.pause_download(job["job_id"])
            _say("Download canceled; run the same `lmj get` to resume it.")
        return 130
    if live:
        _say()
    else:
        _say(progress_line(status))
    if args.json:
        print(json.dumps(status))
    if status["status"] != "completed":
        error = status.get("error") or {}
        _say(f"Error: {error.get('message') or 'the download ' + status['status']}")
        return 1
    _say(f"Download completed. You can load the model with:\n\n    lmj load {status.get('model_key')}\n")
    return 0
