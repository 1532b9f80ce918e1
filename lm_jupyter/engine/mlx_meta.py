"""An MLX model folder read without loading it: ``config.json``, the safetensors headers and
the tokenizer's config (mlx-community's layout, which LM Studio keeps as ``publisher/repo/``).

Safetensors headers are a length and a JSON table of every tensor's dtype, shape and byte
range, so the weights' size is known exactly from a few kilobytes. Nothing here imports mlx:
the server lists and estimates MLX models on any machine, and only a worker loads one.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .estimate import Estimate

# The bytes of one element per safetensors dtype (the float dtypes are also the KV cache's).
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U32": 4, "I16": 2, "U16": 2}
DTYPE_BYTES |= {"I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
# A header larger than this is not a safetensors file (real ones are at most a few MB).
MAX_HEADER = 64 << 20
KV_STEP = 256  # mlx-lm's KVCache grows by this many tokens at a time
PREFILL_CHUNK = 512  # tokens per prefill step (the MLX backend's ``prefill_step_size``)
# Measured with mlx 0.32.4 / mlx-lm 0.32.2 on Linux (docs/benchmarks.md, "MLX memory"): what a
# loaded worker holds beyond weights, KV cache and compute (MLX's runtime, a first forward pass),
# and per vocabulary entry what transformers' fast tokenizer holds (vocabulary and merges: a
# 50,000-token byte-level BPE took 56 MiB).
RUNTIME_BYTES = 9 << 20
TOKENIZER_BYTES_PER_TOKEN = 1200
# GGUF's names for the config fields the manager and guardrail ask every model for.
_GGUF_NAMES = {"block_count": "num_hidden_layers", "context_length": "max_position_embeddings"}


class MLXError(ValueError):
    """Not a usable MLX model folder (why is the message)."""


@dataclass(frozen=True)
class MLXMetadata:
    config: dict[str, Any]
    weight_bytes: int  # every tensor's bytes, from the headers
    n_params: int  # logical weights (a quantized tensor counts what it packs)
    float_dtype: str  # the safetensors dtype of the unquantized tensors: the activations' dtype
    tokenizer: dict[str, Any] = field(default_factory=dict)  # tokenizer_config.json
    chat_template: str | None = None

    @property
    def arch(self) -> str:
        return str(self.text_config.get("model_type") or self.config.get("model_type") or "unknown")

    @property
    def text_config(self) -> dict[str, Any]:
        """Multimodal configs nest the language model's fields under ``text_config``."""
        nested = self.config.get("text_config")
        return {**self.config, **nested} if isinstance(nested, dict) else self.config

    def arch_field(self, name: str, default: Any = None) -> Any:
        """A config field asked for by its GGUF name (``block_count``, ``context_length``)."""
        return self.text_config.get(_GGUF_NAMES.get(name, name), default)

    @property
    def quantization(self) -> dict[str, Any] | None:
        quant = self.config.get("quantization") or self.config.get("quantization_config")
        return quant if isinstance(quant, dict) and "bits" in quant else None

    @property
    def quantization_name(self) -> str:
        """mlx-community's name: ``4bit`` for a quantized model, else its dtype (``BF16``)."""
        quant = self.quantization
        return f"{quant['bits']}bit" if quant else self.float_dtype

    @property
    def context_length(self) -> int:
        return int(self.arch_field("context_length") or 2048)

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of one token in every layer, in the activations' dtype (mlx-lm's KVCache)."""
        cfg = self.text_config
        heads = int(cfg.get("num_attention_heads") or 1)
        kv_heads = int(cfg.get("num_key_value_heads") or heads)
        head_dim = int(cfg.get("head_dim") or int(cfg.get("hidden_size") or 0) // heads)
        layers = int(cfg.get("num_hidden_layers") or 0)
        return 2 * layers * kv_heads * head_dim * DTYPE_BYTES.get(self.float_dtype, 2)

    def token_text(self, name: str) -> str:
        """``bos_token``/``eos_token`` from the tokenizer config (a string or an AddedToken dict)."""
        value = self.tokenizer.get(name)
        if isinstance(value, dict):
            value = value.get("content")
        return str(value) if value else ""


def is_mlx_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def read_mlx_metadata(folder: Path) -> MLXMetadata:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MLXError(f"config.json does not parse: {exc}") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise MLXError("config.json names no model_type")
    tensors: dict[str, dict[str, Any]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(safetensors_header(file))
    weight_bytes, n_params, floats = 0, 0, {}
    bits = (config.get("quantization") or {}).get("bits")
    for name, info in tensors.items():
        begin, end = info["data_offsets"]
        weight_bytes += end - begin
        count = 1
        for dim in info["shape"]:
            count *= int(dim)
        packed = bits and info["dtype"] == "U32" and f"{name.removesuffix('.weight')}.scales" in tensors
        if name.endswith((".scales", ".biases")) and f"{name.rsplit('.', 1)[0]}.weight" in tensors:
            continue  # a quantized tensor's scales and offsets, not weights of their own
        n_params += count * 32 // bits if packed else count
        if info["dtype"] in ("F32", "F16", "BF16"):
            floats[info["dtype"]] = floats.get(info["dtype"], 0) + count
    tokenizer = _json_or_empty(folder / "tokenizer_config.json")
    return MLXMetadata(
        config=config,
        weight_bytes=weight_bytes,
        n_params=n_params,
        float_dtype=max(floats, key=floats.__getitem__) if floats else "F16",
        tokenizer=tokenizer,
        chat_template=_chat_template(folder, tokenizer),
    )


def safetensors_header(file: Path) -> dict[str, dict[str, Any]]:
    """The tensor table of a safetensors file (its ``__metadata__`` left out), checked against
    the file's size so a truncated download is named, not loaded."""
    try:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > MAX_HEADER:
                raise MLXError(f"{file.name} is not a safetensors file")
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise MLXError(f"{file.name} has no readable safetensors header: {exc}") from None
    header.pop("__metadata__", None)
    needed = 8 + length + max((info["data_offsets"][1] for info in header.values()), default=0)
    size = file.stat().st_size
    if size < needed:
        raise MLXError(f"{file.name} is truncated: the file has {size} bytes, but its tensors need {needed}")
    return header


def _json_or_empty(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _chat_template(folder: Path, tokenizer: dict[str, Any]) -> str | None:
    """The template as transformers finds it: ``chat_template.jinja``, ``chat_template.json``,
    then ``tokenizer_config.json`` (a named list takes its ``default``)."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = _json_or_empty(folder / "chat_template.json").get("chat_template") or tokenizer.get(
        "chat_template"
    )
    if isinstance(template, list):
        named = {entry.get("name"): entry.get("template") for entry in template if isinstance(entry, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def estimate_mlx(meta: MLXMetadata, context_length: int) -> Estimate:
    """Memory an MLX model holds at a full context, as mlx-lm allocates it: the weights as
    stored; a KV cache of every layer in the activations' dtype, grown in steps of 256 tokens;
    the working memory of one prefill chunk (the backend's ``prefill_step_size``) attending over
    the whole context; and the tokenizer and runtime state (measured, see docs/benchmarks.md)."""
    cfg = meta.text_config
    cells = -(-context_length // KV_STEP) * KV_STEP
    kv = meta.kv_bytes_per_token * cells
    width = DTYPE_BYTES.get(meta.float_dtype, 2)
    heads = int(cfg.get("num_attention_heads") or 1)
    chunk = min(PREFILL_CHUNK, context_length)
    hidden = int(cfg.get("hidden_size") or 0)
    ffn = int(cfg.get("intermediate_size") or 4 * hidden)
    # MLX's attention on the CPU holds three score matrices of one chunk against the context at
    # once (the product, the masked copy, the softmax; f32), plus the chunk's widest activations.
    compute = 3 * heads * chunk * cells * 4 + chunk * (2 * ffn + 4 * hidden) * width
    vocab = int(cfg.get("vocab_size") or 0)
    runtime = RUNTIME_BYTES + vocab * TOKENIZER_BYTES_PER_TOKEN
    return Estimate(
        model_vram_bytes=0,
        context_vram_bytes=0,
        model_bytes=meta.weight_bytes,
        context_bytes=kv + compute + runtime,
        confidence="high",
        n_ctx=context_length,
        parts={"weights": meta.weight_bytes, "kv_cache": kv, "compute": compute, "runtime": runtime},
    )
