"""The pure parts of ``lmj get``: queries, grouping a repo's files into variants, the choice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lm_jupyter.hub.download import Progress, missing_bytes
from lm_jupyter.hub.query import HubQuery, QueryError, parse_query
from lm_jupyter.hub.variants import RemoteFile, Variant, gguf_variants, mlx_variant, quantization_of, rank


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("qwen2.5 coder", HubQuery("qwen2.5 coder")),
        ("  qwen2.5   coder ", HubQuery("qwen2.5 coder")),
        ("qwen2.5 coder@q4_k_m", HubQuery("qwen2.5 coder", quantization="q4_k_m")),
        (
            "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            HubQuery("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF"),
        ),
        (
            "lmstudio-community/gemma-3-270m-it-GGUF@Q8_0",
            HubQuery(
                "lmstudio-community/gemma-3-270m-it-GGUF",
                repo="lmstudio-community/gemma-3-270m-it-GGUF",
                quantization="Q8_0",
            ),
        ),
        ("https://huggingface.co/owner/repo", HubQuery("owner/repo", repo="owner/repo")),
        ("https://huggingface.co/owner/repo/tree/main", HubQuery("owner/repo", repo="owner/repo")),
        (
            "https://huggingface.co/owner/repo/blob/main/Model-Q4_K_M.gguf",
            HubQuery("owner/repo", repo="owner/repo", file="Model-Q4_K_M.gguf"),
        ),
        (
            "https://hf.co/owner/repo/resolve/main/sub/M-Q8_0.gguf?download=true",
            HubQuery("owner/repo", repo="owner/repo", file="M-Q8_0.gguf"),
        ),
    ],
)
def test_parse_query(query: str, expected: HubQuery) -> None:
    assert parse_query(query) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "Name a model"),
        ("a@b@c", "more than one '@'"),
        ("owner/repo@", "NAME@QUANT"),
        ("@q4", "NAME@QUANT"),
        ("http://huggingface.co/owner/repo", "only https://huggingface.co"),
        ("https://example.com/owner/repo", "only https://huggingface.co"),
        ("https://huggingface.co/owner", "does not name a model repository"),
        ("https://huggingface.co/datasets/owner/repo", "does not name a model repository"),
        ("a/b/c", "not a repository id"),
    ],
)
def test_parse_query_refuses(query: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_query(query)


def test_quant_flag_agrees_with_the_query() -> None:
    assert parse_query("o/r", "Q8_0").quantization == "Q8_0"
    assert parse_query("o/r@q8_0", "Q8_0").quantization == "Q8_0"
    with pytest.raises(QueryError, match="--quant says Q4_K_M"):
        parse_query("o/r@q8_0", "Q4_K_M")


def f(path: str, size: int = 100) -> RemoteFile:
    return RemoteFile(path, size)


def test_quantization_of_file_names() -> None:
    assert quantization_of("Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf") == "Q4_K_M"
    assert quantization_of("model-iq2_xxs.gguf") == "IQ2_XXS"
    assert quantization_of("Q8_0/Llama-3-70B-Q8_0-00002-of-00003.gguf") == "Q8_0"
    assert quantization_of("gemma-3-270m-it-bf16.gguf") == "BF16"
    assert quantization_of("model.gguf") is None


def test_gguf_variants_group_shards_and_share_the_projector() -> None:
    files = [
        f("README.md", 5),
        f("M-Q4_K_M.gguf", 400),
        f("M-F16.gguf", 1600),
        f("Q8_0/M-Q8_0-00002-of-00002.gguf", 300),
        f("Q8_0/M-Q8_0-00001-of-00002.gguf", 500),
        f("M-Q2_K-00001-of-00003.gguf", 50),  # shards 2 and 3 are missing: not a variant
        f("mmproj-M-Q8_0.gguf", 30),
        f("mmproj-M-f16.gguf", 60),
        f("model.gguf", 900),
    ]
    variants = gguf_variants(files)
    assert [(v.quantization, v.size_bytes) for v in variants] == [
        ("Q4_K_M", 400),
        ("Q8_0", 800),
        ("model", 900),
        ("F16", 1600),
    ]
    q8 = variants[1]
    assert [x.name for x in q8.files] == ["M-Q8_0-00001-of-00002.gguf", "M-Q8_0-00002-of-00002.gguf"]
    assert q8.name == "M-Q8_0-00001-of-00002.gguf"
    assert all(v.projector == f("mmproj-M-f16.gguf", 60) for v in variants)  # F16 projector preferred
    assert q8.download_bytes == 860 and [x.name for x in q8.download_files][-1] == "mmproj-M-f16.gguf"
    assert q8.matches("q8_0") and q8.matches("M-Q8_0-00001-of-00002.gguf") and not q8.matches("Q4_K_M")


def test_mlx_variant_is_the_whole_repo() -> None:
    files = [
        f("README.md"),
        f(".gitattributes"),
        f("config.json", 2),
        f("model.safetensors", 900),
        f("a.png"),
    ]
    variant = mlx_variant(files, "mlx-community/Qwen2.5-7B-Instruct-4bit")
    assert variant is not None and variant.format == "mlx" and variant.quantization == "4bit"
    assert [x.path for x in variant.files] == ["config.json", "model.safetensors"]
    assert mlx_variant([f("config.json")], "o/r") is None


def _variants() -> list[Variant]:
    return [Variant(q, (f(f"M-{q}.gguf", size),)) for q, size in (("Q4_K_M", 4), ("Q8_0", 8), ("F16", 16))]


def test_rank_picks_the_best_quantization_that_fits_and_judges_few() -> None:
    judged: list[str] = []

    def fit(variant: Variant) -> str:
        judged.append(variant.quantization)
        return "willNotFit" if variant.size_bytes > 10 else "fitWithoutGPU"

    ranking = rank(_variants(), fit)
    assert ranking.recommended is not None and ranking.recommended.quantization == "Q8_0"
    assert judged == ["F16", "Q8_0"]  # Q4_K_M is smaller than a fitting variant: it fits unjudged
    assert ranking.fits == {
        "M-F16.gguf": "willNotFit",
        "M-Q8_0.gguf": "fitWithoutGPU",
        "M-Q4_K_M.gguf": "fitWithoutGPU",
    }


def test_rank_falls_back_to_the_smallest() -> None:
    ranking = rank(_variants(), lambda variant: "willNotFit")
    assert ranking.recommended is not None and ranking.recommended.quantization == "Q4_K_M"
    unknown = rank(_variants(), lambda variant: None)  # no header could be read: no verdicts
    assert unknown.recommended is not None and unknown.recommended.quantization == "Q4_K_M"
    assert rank([], lambda variant: None).recommended is None


def test_missing_bytes_counts_parts_and_placed_files(tmp_path: Path) -> None:
    variant = Variant("Q8_0", (f("M-Q8_0.gguf", 100),), f("mmproj-M-f16.gguf", 40))
    assert missing_bytes(variant, tmp_path) == 140
    (tmp_path / "M-Q8_0.gguf.part").write_bytes(b"x" * 30)
    assert missing_bytes(variant, tmp_path) == 110
    (tmp_path / "mmproj-M-f16.gguf").write_bytes(b"x" * 40)
    assert missing_bytes(variant, tmp_path) == 70
    (tmp_path / "M-Q8_0.gguf").write_bytes(b"x" * 100)
    assert missing_bytes(variant, tmp_path) == 0


def test_progress_speed_is_measured_over_recent_bytes() -> None:
    progress = Progress(total=1000)
    assert progress.bytes_per_second == 0.0
    progress.add(100)
    time.sleep(0.05)
    progress.add(100)
    assert 100 / 0.5 < progress.bytes_per_second < 100 / 0.04
    assert progress.done == 200
