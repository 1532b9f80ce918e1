"""MLX folders read without mlx: config -> quantization, context, KV size, estimate; the
safetensors headers; the chat template's three homes; and how the registry lists them."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from lm_jupyter.api.models import v0_model, v1_model
from lm_jupyter.engine.mlx_meta import (
    KV_STEP,
    RUNTIME_BYTES,
    TOKENIZER_BYTES_PER_TOKEN,
    MLXError,
    estimate_mlx,
    read_mlx_metadata,
)
from lm_jupyter.engine.registry import Registry

CONFIG: dict[str, Any] = {
    "model_type": "qwen2",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 400,
    "max_position_embeddings": 8192,
}
TEMPLATE = "{% for m in messages %}{{ m.content }}{% endfor %}{% if tools %}{{ tools }}{% endif %}"


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], int]], pad: int = 0) -> None:
    """A safetensors file: each tensor as (dtype, shape, bytes), data zero-filled."""
    header: dict[str, Any] = {"__metadata__": {"format": "mlx"}}
    offset = 0
    for name, (dtype, shape, size) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * (offset - pad))


def write_folder(
    folder: Path, config: dict[str, Any], tensors: dict[str, tuple[str, list[int], int]]
) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    write_safetensors(folder / "model.safetensors", tensors)
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": {"content": "<|im_end|>"}, "bos_token": None, "chat_template": TEMPLATE})
    )
    return folder


BF16 = {"embed.weight": ("BF16", [400, 64], 400 * 64 * 2), "norm.weight": ("BF16", [64], 128)}
# 4-bit, group size 32: a 400 x 64 matrix packs 8 weights per uint32, with a scale and a bias per group.
QUANTIZED = {
    "embed.weight": ("U32", [400, 8], 400 * 8 * 4),
    "embed.scales": ("BF16", [400, 2], 400 * 2 * 2),
    "embed.biases": ("BF16", [400, 2], 400 * 2 * 2),
    "norm.weight": ("BF16", [64], 128),
}


def test_config_and_headers_give_quantization_context_and_sizes(tmp_path: Path) -> None:
    plain = read_mlx_metadata(write_folder(tmp_path / "p" / "plain", CONFIG, BF16))
    assert (plain.arch, plain.quantization_name, plain.context_length) == ("qwen2", "BF16", 8192)
    assert plain.weight_bytes == 400 * 64 * 2 + 128 and plain.n_params == 400 * 64 + 64
    # K and V x 2 layers x 2 kv heads x head size 16 x 2 bytes (bf16 activations)
    assert plain.kv_bytes_per_token == 2 * 2 * 2 * 16 * 2
    quant = {**CONFIG, "quantization": {"group_size": 32, "bits": 4}}
    four = read_mlx_metadata(write_folder(tmp_path / "p" / "four", quant, QUANTIZED))
    assert four.quantization_name == "4bit" and four.quantization == {"group_size": 32, "bits": 4}
    assert four.n_params == plain.n_params  # packed weights count as what they hold; scales do not
    assert four.weight_bytes == sum(size for _, _, size in QUANTIZED.values())
    assert four.arch_field("block_count") == 2 and four.arch_field("context_length") == 8192
    assert (four.token_text("eos_token"), four.token_text("bos_token")) == ("<|im_end|>", "")
    assert four.chat_template == TEMPLATE


def test_nested_text_config_and_explicit_head_dim(tmp_path: Path) -> None:
    config = {"model_type": "gemma3", "text_config": {**CONFIG, "model_type": "gemma3_text", "head_dim": 256}}
    meta = read_mlx_metadata(write_folder(tmp_path / "p" / "vlm", config, BF16))
    assert meta.arch == "gemma3_text" and meta.context_length == 8192
    assert meta.kv_bytes_per_token == 2 * 2 * 2 * 256 * 2


def test_estimate_counts_weights_kv_compute_and_runtime(tmp_path: Path) -> None:
    meta = read_mlx_metadata(write_folder(tmp_path / "p" / "plain", CONFIG, BF16))
    est = estimate_mlx(meta, 1000)
    assert est.n_ctx == 1000 and est.total_vram_bytes == 0
    assert est.parts["weights"] == est.model_bytes == meta.weight_bytes
    assert est.parts["kv_cache"] == meta.kv_bytes_per_token * 1024  # grown in steps of 256
    assert KV_STEP == 256
    assert est.parts["runtime"] == RUNTIME_BYTES + 400 * TOKENIZER_BYTES_PER_TOKEN
    assert est.total_bytes == sum(est.parts.values())
    assert estimate_mlx(meta, 4000).total_bytes > est.total_bytes


def test_broken_folders_are_named(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "p" / "cut", CONFIG, BF16)
    write_safetensors(folder / "model.safetensors", BF16, pad=100)
    with pytest.raises(MLXError, match=r"model\.safetensors is truncated"):
        read_mlx_metadata(folder)
    (folder / "config.json").write_text("{")
    with pytest.raises(MLXError, match=r"config\.json does not parse"):
        read_mlx_metadata(folder)


def test_chat_template_from_jinja_file_or_named_list(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "p" / "t", CONFIG, BF16)
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}
        )
    )
    assert read_mlx_metadata(folder).chat_template == "D"
    (folder / "chat_template.jinja").write_text("J")
    assert read_mlx_metadata(folder).chat_template == "J"


def test_registry_lists_mlx_folders_beside_gguf(tmp_path: Path) -> None:
    quant = {**CONFIG, "quantization": {"group_size": 32, "bits": 4}}
    write_folder(tmp_path / "mlx-community" / "Tiny-4bit", quant, QUANTIZED)
    write_folder(tmp_path / "mlx-community" / "Broken", CONFIG, BF16)
    write_safetensors(tmp_path / "mlx-community" / "Broken" / "model.safetensors", BF16, pad=1)
    registry = Registry(tmp_path)
    (model,) = registry.scan()
    assert model.file == tmp_path / "mlx-community" / "Tiny-4bit"
    facts = model.facts
    assert (facts.key, facts.path, facts.format, facts.type) == (
        "mlx-community/tiny-4bit",
        "mlx-community/Tiny-4bit",
        "mlx",
        "llm",
    )
    assert facts.trained_for_tool_use is False  # the template names tools but no parsed family
    assert (model.eos_token, model.chat_template) == ("<|im_end|>", TEMPLATE)
    v0 = v0_model(facts, None)
    assert (v0["compatibility_type"], v0["quantization"], v0["max_context_length"]) == ("mlx", "4bit", 8192)
    v1 = v1_model(facts, [], [facts])
    assert v1["format"] == "mlx" and v1["quantization"] == {"name": "4bit", "bits_per_weight": 4}
    assert registry.find("mlx-community/tiny-4bit") == model
    assert "truncated" in (registry.problem("mlx-community/broken") or "")
