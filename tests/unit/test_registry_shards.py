"""A split model (``M-00001-of-00003.gguf`` ...) is one model: listed once, sized and estimated
with all its shards, and left out while a shard is missing (a copy or download in progress)."""

from __future__ import annotations

from pathlib import Path

from tiny_gguf import write_tiny_model

from lm_jupyter.engine.registry import Registry, shard_files


def test_split_model_is_one_model(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "o" / "split-GGUF" / "split-F32.gguf", split_max_tensors=8)
    write_tiny_model(tmp_path / "o" / "whole-GGUF" / "whole-F32.gguf")
    shards = sorted((tmp_path / "o" / "split-GGUF").iterdir())
    assert [p.name for p in shards] == [f"split-F32-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    models = {m.facts.key: m for m in Registry(tmp_path).scan()}
    assert sorted(models) == ["o/split", "o/whole"]
    split, whole = models["o/split"], models["o/whole"]
    assert split.file == shards[0] and split.facts.arch == "llama"
    assert split.facts.size_bytes == sum(p.stat().st_size for p in shards)
    assert split.meta.tensor_bytes == whole.meta.tensor_bytes  # every shard's tensors counted
    assert split.meta.n_params == whole.meta.n_params
    assert shard_files(shards[1]) == []

    shards[2].unlink()
    assert [m.facts.key for m in Registry(tmp_path).scan()] == ["o/whole"]
