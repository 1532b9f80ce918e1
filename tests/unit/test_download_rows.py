"""What the download box and ``get``'s progress line make of the server's download answers."""

from __future__ import annotations

from typing import Any

from lm_jupyter.client.download_view import progress_line, progress_parts
from lm_jupyter.kernel.widgets._model_panel import job_rows, option_rows, result_rows


def job(job_id: str, status: str, done: int, quant: str = "Q8_0", **extra: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": status,
        "model": "org/repo-GGUF",
        "quantization": quant,
        "total_size_bytes": 2_400_000,
        "downloaded_bytes": done,
        **extra,
    }


def test_progress_parts_and_the_text_line_agree() -> None:
    moving = job("a", "downloading", 1_080_000, bytes_per_second=660_000.0)
    parts = progress_parts(moving)
    assert parts == {
        "ratio": 0.45,
        "percent": "45.00%",
        "bytes": "1.03 MiB / 2.29 MiB",
        "speed": "644.53 KiB/s",
        "eta": "00:02",
    }
    assert progress_line(moving).endswith("]  45.00% | 1.03 MiB / 2.29 MiB | 644.53 KiB/s | ETA 00:02")
    slow = progress_parts(job("b", "downloading", 0, bytes_per_second=100.0))
    assert slow["eta"] == "06:40:00"
    stopped = progress_parts(job("c", "paused", 600_000))
    assert (stopped["speed"], stopped["eta"], stopped["percent"]) == ("", "", "25.00%")
    assert progress_parts({"status": "downloading"})["ratio"] == 0.0  # no size yet


def test_job_rows_keep_the_latest_job_per_variant() -> None:
    jobs = [
        job("old", "paused", 600_000),
        job("other", "failed", 0, quant="F16", error={"message": "gated", "code": "gated_repo"}),
        job("new", "completed", 2_400_000, model_key="org/repo"),
    ]
    rows = job_rows(jobs)
    assert [(r["job_id"], r["status"]) for r in rows] == [("other", "failed"), ("new", "completed")]
    assert rows[0]["error"] == "gated" and rows[0]["model_key"] == ""
    assert rows[1]["model_key"] == "org/repo" and rows[1]["percent"] == "100.00%"


def test_result_and_option_rows() -> None:
    small = {"quantization": "Q4_K_M", "size_bytes": 680_000}
    large = {"quantization": "Q8_0", "size_bytes": 2_400_000}
    found = {
        "results": [
            {"repo": "a/b-GGUF", "exact_match": True, "variants": [small, large]},
            {"repo": "c/d-GGUF", "variants": []},
        ]
    }
    (row,) = result_rows(found)
    assert row == {
        "repo": "a/b-GGUF",
        "exact_match": True,
        "quantizations": ["Q4_K_M", "Q8_0"],
        "sizes": "664.06 KiB - 2.29 MiB",
    }
    options = {
        "repo": "a/b-GGUF",
        "format": "gguf",
        "variants": [
            {"name": "b-Q8_0.gguf", "quantization": "Q8_0", "download_bytes": 2_400_000,
             "fit": "fitWithoutGPU", "recommended": True, "downloaded": False},
            {"name": "b-F16.gguf", "quantization": "F16", "download_bytes": 9_000_000,
             "fit": "willNotFit", "recommended": False, "downloaded": True},
            {"name": "b-Q2_K.gguf", "quantization": "Q2_K", "download_bytes": 1, "fit": None},
        ],
    }  # fmt: skip
    rows = option_rows(options)["variants"]
    assert [(r["fit"], r["fits"], r["recommended"], r["downloaded"]) for r in rows] == [
        ("Likely fit", True, True, False),
        ("Likely too large for this machine", False, False, True),
        ("", True, False, False),  # no estimate (unreadable header): not called too large
    ]
    assert rows[1]["size"] == "8.58 MiB"
