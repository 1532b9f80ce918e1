"""lm_jupyter against llama.cpp's own llama-server, side by side in one run (issue 21).

    python bench/vs_llama_server.py MODEL.gguf [MODEL.gguf ...] [--streams 1 4 8] [--tokens 64]
        [--rounds 2] [--parallel 8] [--context 8192] [--threads 0] [--llama-server PATH]

llama-server is built once (about 10 minutes on 2 cores, cached under
``~/.cache/lm_jupyter/llama-server/<key>``) from the llama.cpp that the installed
llama-cpp-python version vendors, with the project's own CPU flags (``scripts/build_llama.py``:
native, AMX off), so both servers run the same kernels. Both load the same file with the same
context, parallel slots and threads. For each stream count, the same greedy ``/v1/completions``
streams (a different prompt per stream, every end-of-generation token banned so each makes
exactly --tokens tokens) go to one server, then the other, for --rounds rounds, alternating so
machine noise hits both alike. Printed per model and stream count: aggregate tokens/s, mean
per-stream decode tokens/s (after the first token), p50/p95 time to first token, and the ratio
lm_jupyter / llama-server. Not run in CI: the build takes minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from _harness import MODEL_KEY, eog_bias, raw_llama, serve_model, sse_chunks

from lm_jupyter.client.discovery import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_llama  # noqa: E402  (scripts/ is not a package)

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lm_jupyter" / "llama-server"
SUBJECTS = ["the sea", "a lighthouse", "mountains", "a robot", "the moon", "a library", "rain", "trains"]


def built_llama_server() -> Path:
    """llama-server from the installed llama-cpp-python's vendored llama.cpp, same CPU flags."""
    version = importlib.metadata.version("llama-cpp-python")
    machine = platform.machine()
    env = build_llama.build_env(dict(os.environ), machine)
    features = build_llama.cpu_features(build_llama._read_cpuinfo())
    folder = CACHE / build_llama.wheel_key(version, env, machine, features)
    binary = folder / "llama-server"
    if binary.exists():
        return binary
    print(f"building llama-server from llama-cpp-python {version}'s llama.cpp (minutes)", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp,
             f"llama-cpp-python=={version}"],
            check=True,
        )  # fmt: skip
        (sdist,) = Path(tmp).glob("llama_cpp_python-*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(tmp, filter="data")
        source = next(Path(tmp).glob("llama_cpp_python-*/vendor/llama.cpp"))
        build = Path(tmp) / "build"
        cmake_args = env.get("CMAKE_ARGS", "").split()
        subprocess.run(
            ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
             "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF", *cmake_args],
            env=env, check=True,
        )  # fmt: skip
        jobs = str(len(os.sched_getaffinity(0)))
        subprocess.run(
            ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs], env=env, check=True
        )
        (built,) = build.glob("bin/llama-server")
        built.replace(binary)
    return binary


@contextlib.contextmanager
def llama_server(
    binary: Path, model: Path, context: int, parallel: int, threads: int
) -> Iterator[httpx.Client]:
    port = free_port("127.0.0.1", 0)
    command = [str(binary), "-m", str(model), "-c", str(context), "-np", str(parallel), "-t", str(threads),
               "-tb", str(threads), "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/", timeout=900) as http:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if http.get("health").status_code == 200:
                        break
                if proc.poll() is not None:
                    raise SystemExit(f"llama-server exited with {proc.returncode}")
                time.sleep(0.2)
            yield http
    finally:
        proc.terminate()
        proc.wait(30)


@dataclass
class Stream:
    sent: float
    first: float = 0.0
    end: float = 0.0
    tokens: int = 0


def one_stream(http: httpx.Client, model: str, prompt: str, tokens: int, bias: dict[str, float]) -> Stream:
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True,
            "logit_bias": bias}  # fmt: skip
    stream = Stream(time.perf_counter())
    for chunk in sse_chunks(http, "v1/completions", body):
        if chunk.get("choices") and chunk["choices"][0].get("text"):
            stream.tokens += 1
            if not stream.first:
                stream.first = time.perf_counter()
    stream.end = time.perf_counter()
    return stream


@dataclass
class Result:
    aggregate: float  # tokens/s over all streams, from the first request to the last token
    decode: float  # mean per-stream tokens/s after its first token
    ttft_p50: float
    ttft_p95: float


def measure(
    http: httpx.Client, model: str, streams: int, tokens: int, bias: dict[str, float], run: int
) -> Result:
    results: list[Stream] = []
    lock = threading.Lock()

    def go(index: int) -> None:
        prompt = f"Write a long story about {SUBJECTS[(index + run) % len(SUBJECTS)]}, number {run}-{index}."
        stream = one_stream(http, model, prompt, tokens, bias)
        with lock:
            results.append(stream)

    workers = [threading.Thread(target=go, args=(i,)) for i in range(streams)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    start, end = min(s.sent for s in results), max(s.end for s in results)
    ttfts = sorted(s.first - s.sent for s in results)
    decode = statistics.mean((s.tokens - 1) / (s.end - s.first) for s in results if s.tokens > 1)
    p95 = ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))]
    return Result(sum(s.tokens for s in results) / (end - start), decode, statistics.median(ttfts), p95)


def median_result(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.aggregate for r in results),
        statistics.median(r.decode for r in results),
        statistics.median(r.ttft_p50 for r in results),
        statistics.median(r.ttft_p95 for r in results),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--context", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=0, help="0: every core this process may use")
    parser.add_argument("--llama-server", type=Path, help="use this binary instead of building one")
    args = parser.parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    binary = args.llama_server or built_llama_server()
    for model in args.models:
        raw, _ = raw_llama(model, 512, threads)
        bias = {str(token): value for token, value in eog_bias(raw).items()}
        del raw
        config = [f"--LmJupyterApp.threads={threads}"]
        with (
            llama_server(binary, model, args.context, args.parallel, threads) as theirs,
            serve_model(model, config) as ours,
        ):
            load = {"model": MODEL_KEY, "context_length": args.context, "parallel": args.parallel}
            ours.post("api/v1/models/load", json=load).raise_for_status()
            print(f"\n{model.name}: {args.tokens} tokens per stream, parallel {args.parallel}, context "
                  f"{args.context}, {threads} threads, {args.rounds} rounds; load average "
                  f"{os.getloadavg()[0]:.1f}")  # fmt: skip
            print(f"{'streams':>7} {'server':>12} {'agg tok/s':>10} {'decode tok/s':>13} {'TTFT p50':>9} "
                  f"{'TTFT p95':>9}")  # fmt: skip
            for streams in args.streams:
                measure(ours, MODEL_KEY, 1, 4, bias, 99)  # warm both: first-request costs are not decode
                measure(theirs, "model", 1, 4, bias, 99)
                runs: dict[str, list[Result]] = {"llama-server": [], "lm_jupyter": []}
                for run in range(args.rounds):
                    runs["llama-server"].append(measure(theirs, "model", streams, args.tokens, bias, run))
                    runs["lm_jupyter"].append(measure(ours, MODEL_KEY, streams, args.tokens, bias, run))
                best = {name: median_result(results) for name, results in runs.items()}
                for name, r in best.items():
                    print(f"{streams:>7} {name:>12} {r.aggregate:>10.1f} {r.decode:>13.1f} "
                          f"{r.ttft_p50:>8.2f}s {r.ttft_p95:>8.2f}s")  # fmt: skip
                mine, theirs_r = best["lm_jupyter"], best["llama-server"]
                print(f"{streams:>7} {'ratio':>12} {mine.aggregate / theirs_r.aggregate:>9.2f}x "
                      f"{mine.decode / theirs_r.decode:>12.2f}x {mine.ttft_p50 / theirs_r.ttft_p50:>8.2f}x "
                      f"{mine.ttft_p95 / theirs_r.ttft_p95:>8.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
