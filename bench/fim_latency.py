"""Inline completion: time to the first ghost text while typing, with a warm prefix cache.

    python bench/fim_latency.py MODEL.gguf [--keystrokes 20] [--max-tokens 16] [--threads T]

Replays what the JupyterLab extension sends (labextension/src/completer.ts): a notebook's cells
above as the start of the prefix, then one streamed fill-in-the-middle request per keystroke
(``/v1/completions`` with ``prompt`` = the text before the cursor, ``suffix`` = the rest of the
cell), each one dropped as soon as its first text arrives, as the next keystroke drops it in the
extension (closing the stream cancels the generation on the server). The first request fills the
prefix cache (reported apart as "cold"); every later one shares all of the prompt but the few
tokens around the cursor. Target (issue 17): the first ghost text within 400 ms on a 1.5B model.
The machine's load average is printed too: on a shared machine it decides the wall-clock
numbers. So each keystroke also reports the CPU time the model's worker process spent on it; with
``--threads 1`` that is what the latency would be on an idle core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from _harness import MODEL_KEY, serve_model, sse_chunks

CELLS_ABOVE = '''import numpy as np
import pandas as pd

sales = pd.read_csv("sales.csv", parse_dates=["date"])
sales["month"] = sales["date"].dt.to_period("M")
sales.head()

def monthly_totals(frame: pd.DataFrame) -> pd.DataFrame:
    """Revenue and order count per month and region."""
    return (
        frame.groupby(["month", "region"])
        .agg(revenue=("amount", "sum"), orders=("order_id", "nunique"))
        .reset_index()
    )

totals = monthly_totals(sales)
totals.tail()

'''
TYPED = "def top_regions(frame: pd.DataFrame, n: int = 3) -> pd.DataFrame:\n    "
SUFFIX = "\n\ntop_regions(totals)\n"


def worker_pid(port: int) -> int:
    """The worker process of the server listening on ``port`` (its only loaded model's)."""
    procs = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[int(stat.parent.name)] = (ppid, cmdline)
    (server,) = [pid for pid, (_, cmd) in procs.items() if f"--ServerApp.port={port} " in cmd + " "]
    (worker,) = [pid for pid, (ppid, cmd) in procs.items() if ppid == server and "engine.worker" in cmd]
    return worker


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def first_text_latency(http, body: dict, worker: int) -> tuple[float, float, str]:
    """Seconds to the first text, the worker's CPU seconds until then, and that text."""
    sent, cpu = time.perf_counter(), cpu_seconds(worker)
    text = ""
    for chunk in sse_chunks(http, "v1/completions", body):
        text = chunk["choices"][0]["text"] if chunk.get("choices") else ""
        if text:
            break  # leaving the loop closes the stream
    return time.perf_counter() - sent, cpu_seconds(worker) - cpu, text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--keystrokes", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for the model (0: all)")
    args = parser.parse_args()
    with serve_model(args.model, [f"--LmJupyterApp.threads={args.threads}"]) as http:
        http.post("api/v1/models/load", json={"model": MODEL_KEY, "context_length": 4096}).raise_for_status()
        worker = worker_pid(http.base_url.port)
        latencies, cpu = [], []
        for count in range(len(TYPED) - args.keystrokes, len(TYPED) + 1):
            body = {"model": MODEL_KEY, "prompt": CELLS_ABOVE + TYPED[:count], "suffix": SUFFIX,
                    "max_tokens": args.max_tokens, "temperature": 0, "stream": True}  # fmt: skip
            seconds, used, text = first_text_latency(http, body, worker)
            latencies.append(seconds)
            cpu.append(used)
            label = "cold" if len(latencies) == 1 else f"key {len(latencies) - 1:>2}"
            print(f"{label}: first text after {seconds * 1000:6.1f} ms "
                  f"(worker CPU {used * 1000:6.1f} ms): {text!r}")  # fmt: skip
        warm = sorted(latencies[1:])
        p90 = warm[min(len(warm) - 1, round(0.9 * (len(warm) - 1)))]
        median, worst = statistics.median(warm) * 1000, warm[-1] * 1000
        warm_cpu = statistics.median(cpu[1:]) * 1000
        print(f"cold {latencies[0] * 1000:.0f} ms; warm over {len(warm)} keystrokes: median "
              f"{median:.0f} ms, p90 {p90 * 1000:.0f} ms, max {worst:.0f} ms, worker CPU median "
              f"{warm_cpu:.0f} ms; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip


if __name__ == "__main__":
    main()
