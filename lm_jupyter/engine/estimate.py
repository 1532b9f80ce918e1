"""Memory a model needs once loaded: pure arithmetic on its GGUF header (no I/O).

LM Studio's estimator is closed source and known to overestimate (it puts a KV cache on every
layer, BT#1862) or to miss runtime buffers (BT#2133). This one follows what llama.cpp, as
built into llama-cpp-python 0.3.36, really allocates, part by part:

- **weights**: every tensor's bytes (``GGUFMetadata.tensor_bytes``), split between GPU and
  CPU the way llama.cpp's ``load_tensors`` assigns layers: with ``n_gpu_layers = k`` the
  *output* layer goes to the GPU first, then the last ``k - 1`` blocks; token embeddings
  always stay on the CPU. A model whose output is tied to its token embeddings (no
  ``output.weight``, e.g. Gemma) gets a second copy of them on the GPU when the output layer
  is offloaded.
- **KV cache**: for every layer with attention, 2 (K and V) x cells x kv heads x head size x
  bytes per element, on the device of its layer (``offload_kqv`` is on). Cells are the
  context rounded up to 256, as llama.cpp pads it. Sliding-window layers would need only
  ``window + n_ubatch`` cells, but libllama defaults to ``swa_full = true`` ("using full-size
  SWA cache" in its log) and llama-cpp-python 0.3.36 keeps that default, so every layer gets
  the full context (measured: Gemma 3 270M at 32,768 tokens allocates 576 MiB, all 18 layers
  x 32,768 cells). Full-size caches are what let llama-cpp-python reuse a prompt prefix
  after the window has slid past it; a backend that turns them off (with SWA checkpoints, as
  llama-server does) passes ``swa_full=False`` and gets the small figure.
- **compute buffer**: the scratch llama.cpp reserves for the largest graph. Its size is the
  larger of the logits stage (``n_vocab x outputs`` floats) and the attention stage, which
  without flash attention holds the ``n_ctx x n_ubatch x n_head`` score matrix plus the mask,
  and with flash attention only the (f16) mask. On a GPU the whole reservation is committed
  memory. On the CPU only the pages a graph touches become resident, and this backend asks
  for the logits of one token per batch, never ``n_ubatch`` of them, so the CPU figure counts
  one row of logits but the full attention stage (a long prompt at a full context touches it),
  plus ggml's work buffer (the f16 copy of the scores that multiplies V).
- **runtime overhead** (CPU): the vocabulary tables llama.cpp and llama-cpp-python build
  (about 190 bytes per token and 155 per BPE merge, measured on Gemma 3 and Qwen 2.5), cell
  metadata of the KV cache, the logits output buffer, and a few MiB of fixed state.
- **vision projector**: the ``mmproj`` file's size, counted as LM Studio counts it.

Everything here was checked against llama.cpp's own buffer sizes and the worker's resident
memory; the measured errors are in docs/benchmarks.md ("Memory estimates").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import gguf

from .gguf_meta import GGUFMetadata

MIB = 1 << 20
CTX_PAD = 256  # llama.cpp rounds the context (KV cells) up to a multiple of this

# Architectures whose memory is (partly) a recurrent state rather than a KV cache per token.
RECURRENT_ARCHS = {"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"}
HYBRID_ARCHS = {
    "jamba",
    "falcon-h1",
    "granitehybrid",
    "lfm2",
    "lfm2moe",
    "plamo2",
    "nemotron_h",
    "nemotron_h_moe",
    "qwen3next",
    "kimi-linear",
}
# Attention layouts llama.cpp treats specially (KV shared across layers, latent attention,
# chunked attention): the per-layer formula below is only an approximation for them.
UNMODELLED_ATTENTION = {"gemma3n", "deepseek2", "deepseek3", "kimi-k2", "llama4", "minicpm3"}
# Encoder-only models: llama.cpp creates no KV cache for them at all.
ENCODER_ARCHS = {
    "bert",
    "nomic-bert",
    "nomic-bert-moe",
    "jina-bert-v2",
    "neo-bert",
    "modern-bert",
    "t5encoder",
}
# llama.cpp's ``set_swa_pattern(n)``: layer ``il`` uses the sliding window unless
# ``il % n == n - 1`` (Gemma 3: five local layers, then one global).
SWA_PATTERNS = {"gemma2": 2, "gemma3": 6, "cohere2": 4, "gpt-oss": 2, "exaone4": 4}

# Runtime overhead on the CPU, measured with llama-cpp-python 0.3.36 (docs/benchmarks.md).
BYTES_PER_VOCAB_TOKEN = 190
BYTES_PER_MERGE = 155
BYTES_PER_KV_CELL = 56  # cell metadata (position, sequence set) per KV cache
# llama.cpp state, threads, library code paged in; measured with the batched worker (which holds
# about 1 MiB less than llama-cpp-python's Llama object did)
FIXED_OVERHEAD = 5 * MIB + MIB // 2


@dataclass(frozen=True)
class EstimateOptions:
    """The load settings that change memory use.

    ``gpu_layers`` is llama.cpp's ``n_gpu_layers`` (-1: every layer, output included), as the
    manager computes it from the ``--gpu`` fraction; 0 when the build cannot offload.
    """

    context_length: int
    gpu_layers: int = 0
    flash_attention: bool = False
    n_ubatch: int = 512
    n_seq: int = 1
    kv_unified: bool = False
    swa_full: bool = True
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    projector_bytes: int = 0


@dataclass(frozen=True)
class Estimate:
    """LM Studio's ``EstimatedResourcesUsage.memory`` plus the parts it is made of.

    ``total_*`` are RAM plus VRAM; RAM alone is ``total_bytes - total_vram_bytes``.
    """

    model_vram_bytes: int
    context_vram_bytes: int
    model_bytes: int
    context_bytes: int
    confidence: Literal["high", "low"]
    n_ctx: int
    parts: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def total_vram_bytes(self) -> int:
        return self.model_vram_bytes + self.context_vram_bytes

    @property
    def total_bytes(self) -> int:
        return self.model_bytes + self.context_bytes

    @property
    def ram_bytes(self) -> int:
        return self.total_bytes - self.total_vram_bytes

    def memory(self) -> dict[str, Any]:
        """The ``memory`` object of LM Studio's estimate, with its camelCase names."""
        return {
            "confidence": self.confidence,
            "modelVramBytes": self.model_vram_bytes,
            "contextVramBytes": self.context_vram_bytes,
            "totalVramBytes": self.total_vram_bytes,
            "modelBytes": self.model_bytes,
            "contextBytes": self.context_bytes,
            "totalBytes": self.total_bytes,
        }


@dataclass(frozen=True)
class _Shape:
    """The hyperparameters the formulas need, read once from the header."""

    n_layer: int
    n_embd: int
    n_head: list[int]
    n_head_kv: list[int]
    head_k: int
    head_v: int
    n_ff: int
    n_vocab: int
    n_merges: int
    window: int


def n_gpu_layers(ratio: float, block_count: int) -> int:
    """llama.cpp's n_gpu_layers for an offload fraction: a fraction of the blocks, -1 for all
    (output layer included). The loader and the estimate both use it, so they cannot disagree."""
    return -1 if ratio >= 1 else round(ratio * int(block_count))


def load_context(requested: int | None, default: int, maximum: int) -> int:
    """The context a load gets: the one asked for, else the server's default capped at the
    model's maximum (the loader, the guardrail and a download's fit all use it)."""
    return requested or min(default, maximum)


def padded_context(context_length: int) -> int:
    return max(CTX_PAD, math.ceil(context_length / CTX_PAD) * CTX_PAD)


def estimate(meta: GGUFMetadata, file_size: int, options: EstimateOptions) -> Estimate:
    """What loading ``meta``'s model with ``options`` costs, in RAM and in VRAM."""
    shape = _shape(meta)
    notes: list[str] = []
    confidence: Literal["high", "low"] = "high"
    arch = meta.arch
    if arch in RECURRENT_ARCHS or arch in HYBRID_ARCHS or arch in UNMODELLED_ATTENTION:
        confidence = "low"
        notes.append(f"the memory layout of '{arch}' models is only approximated")

    n_ctx = padded_context(options.context_length)
    n_ubatch = max(1, min(options.n_ubatch, n_ctx))
    n_layer = shape.n_layer
    layers = options.gpu_layers if options.gpu_layers >= 0 else n_layer + 1
    layers = min(layers, n_layer + 1)
    gpu_start = n_layer + 1 - layers  # blocks from here on, and the output layer, are on the GPU
    output_on_gpu = layers >= 1
    any_cpu_block = gpu_start > 0

    # -- weights -------------------------------------------------------------------------
    weights_cpu = weights_gpu = 0
    known = sum(meta.tensor_bytes.values())
    for name, size in meta.tensor_bytes.items():
        block = _block_index(name)
        if block is not None:
            on_gpu = block >= gpu_start
        elif name.startswith(("token_embd", "position_embd", "token_types", "per_layer_token_embd")):
            on_gpu = False  # the input layer: llama.cpp keeps it on the CPU
        else:
            on_gpu = output_on_gpu  # output, output_norm and the other head tensors
        if on_gpu:
            weights_gpu += size
        else:
            weights_cpu += size
    tied = "output.weight" not in meta.tensor_bytes
    duplicate = meta.tensor_bytes.get("token_embd.weight", 0) if tied and output_on_gpu else 0
    weights_gpu += duplicate
    if len(meta.tensor_bytes) < len(meta.tensor_types):
        # A tensor type the gguf package does not know: count the file instead.
        confidence = "low"
        notes.append("some tensor types are unknown; the file size stands in for the weights")
        weights_cpu += max(0, file_size - known)

    # -- KV cache and recurrent state ----------------------------------------------------
    kv_cpu = kv_gpu = 0
    swa = _swa_layers(meta, shape)
    if swa is None:
        swa = [False] * n_layer
        if not options.swa_full:
            confidence = "low"
            notes.append("the sliding-window layout of this architecture is unknown")
    bytes_k = _type_bytes(options.cache_type_k)
    bytes_v = _type_bytes(options.cache_type_v)
    # A cache that is not unified gives each sequence its own cells (n_ctx / n_seq of them);
    # a reduced sliding-window cache then holds a window per sequence.
    streams = 1 if options.kv_unified else options.n_seq
    full_cells = n_ctx
    swa_cells = full_cells
    if not options.swa_full and shape.window > 0:
        window = shape.window * (options.n_seq if options.kv_unified else 1) + n_ubatch
        per_stream = n_ctx // streams
        swa_cells = min(per_stream, math.ceil(window / CTX_PAD) * CTX_PAD) * streams
    recurrent_cpu = recurrent_gpu = 0
    encoder = arch in ENCODER_ARCHS
    for il in range(n_layer):
        kv_heads = shape.n_head_kv[il]
        on_gpu = il >= gpu_start
        if encoder:
            continue
        if arch in RECURRENT_ARCHS or (arch in HYBRID_ARCHS and kv_heads == 0):
            state = _recurrent_state(meta, shape) * options.n_seq
            recurrent_gpu += state if on_gpu else 0
            recurrent_cpu += 0 if on_gpu else state
            continue
        cells = swa_cells if swa[il] else full_cells
        size = round(cells * kv_heads * (shape.head_k * bytes_k + shape.head_v * bytes_v))
        if on_gpu:
            kv_gpu += size
        else:
            kv_cpu += size
    n_caches = 2 if any(swa) else 1

    # -- compute buffers -----------------------------------------------------------------
    # Encoders attend within the batch only; decoders over every cell of the cache.
    n_kv = n_ubatch if encoder else n_ctx
    layer = _layer_stage(meta, shape, n_kv, n_ubatch, options.flash_attention)
    logits_reserved = 4 * n_ubatch * (shape.n_vocab + 2 * shape.n_embd)
    logits_touched = 4 * (shape.n_vocab + 2 * n_ubatch * shape.n_embd)
    compute_reserved = max(logits_reserved, layer)
    # ggml's CPU backend also keeps a work buffer outside the graph; without flash attention
    # its largest user converts the softmaxed scores to f16 for the product with V.
    n_head = max(shape.n_head, default=0)
    work = 0 if options.flash_attention or encoder else 2 * n_ctx * n_ubatch * n_head
    compute_touched = max(logits_touched, layer) + work
    if layers == 0:
        compute_cpu, compute_gpu = compute_touched, 0
    elif any_cpu_block:
        compute_cpu, compute_gpu = compute_touched, compute_reserved
    else:  # fully offloaded: the CPU keeps only the input staging buffer
        compute_cpu, compute_gpu = 4 * n_ubatch * shape.n_embd * 2, compute_reserved

    # -- runtime overhead (always CPU) ---------------------------------------------------
    output_buffer = 4 * shape.n_vocab * options.n_seq
    overhead = (
        FIXED_OVERHEAD
        + BYTES_PER_VOCAB_TOKEN * shape.n_vocab
        + BYTES_PER_MERGE * shape.n_merges
        + BYTES_PER_KV_CELL * n_ctx * n_caches
        + output_buffer
    )

    projector_gpu = options.projector_bytes if layers > 0 else 0
    projector_cpu = options.projector_bytes - projector_gpu
    parts = {
        "weights_cpu": weights_cpu,
        "weights_gpu": weights_gpu,
        "projector": options.projector_bytes,
        "kv_cpu": kv_cpu,
        "kv_gpu": kv_gpu,
        "recurrent_state": recurrent_cpu + recurrent_gpu,
        "compute_cpu": compute_cpu,
        "compute_gpu": compute_gpu,
        "overhead": overhead,
    }
    model_vram = weights_gpu + projector_gpu
    context_vram = kv_gpu + recurrent_gpu + compute_gpu
    return Estimate(
        model_vram_bytes=model_vram,
        context_vram_bytes=context_vram,
        model_bytes=weights_cpu + projector_cpu + model_vram,
        context_bytes=kv_cpu + recurrent_cpu + compute_cpu + overhead + context_vram,
        confidence=confidence,
        n_ctx=n_ctx,
        parts=parts,
        notes=tuple(notes),
    )


# -- pieces ------------------------------------------------------------------------------


def _shape(meta: GGUFMetadata) -> _Shape:
    n_layer = int(meta.arch_field("block_count", 0) or 0)
    n_embd = int(meta.arch_field("embedding_length", 0) or 0)
    n_head = _per_layer(meta.arch_field("attention.head_count", 0), n_layer)
    kv_field = meta.arch_field("attention.head_count_kv")
    n_head_kv = n_head if kv_field is None else _per_layer(kv_field, n_layer)
    heads = max(n_head, default=0) or 1
    head_k = int(meta.arch_field("attention.key_length", 0) or 0) or n_embd // heads
    head_v = int(meta.arch_field("attention.value_length", 0) or 0) or n_embd // heads
    ff = meta.arch_field("feed_forward_length", 0)
    n_ff = max(ff) if isinstance(ff, list) and ff else int(ff or 0)
    n_vocab = int(meta.array_lengths.get("tokenizer.ggml.tokens") or meta.arch_field("vocab_size", 0) or 0)
    return _Shape(
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_k=head_k,
        head_v=head_v,
        n_ff=n_ff,
        n_vocab=n_vocab,
        n_merges=int(meta.array_lengths.get("tokenizer.ggml.merges", 0)),
        window=int(meta.arch_field("attention.sliding_window", 0) or 0),
    )


def _per_layer(value: Any, n_layer: int) -> list[int]:
    """A per-layer hyperparameter: GGUF stores either one number or one per layer."""
    if isinstance(value, list):
        values = [int(v) for v in value]
        return (values + [values[-1] if values else 0] * n_layer)[:n_layer]
    return [int(value or 0)] * n_layer


def _block_index(name: str) -> int | None:
    if not name.startswith("blk."):
        return None
    index = name[4:].split(".", 1)[0]
    return int(index) if index.isdigit() else None


def _swa_layers(meta: GGUFMetadata, shape: _Shape) -> list[bool] | None:
    """Which layers use the sliding window; None when the file has a window we cannot place."""
    if shape.window <= 0:
        return [False] * shape.n_layer
    pattern = meta.arch_field("attention.sliding_window_pattern")
    if isinstance(pattern, list):
        return [bool(v) for v in pattern[: shape.n_layer]] + [False] * (shape.n_layer - len(pattern))
    period = int(pattern) if isinstance(pattern, int) and pattern > 0 else SWA_PATTERNS.get(meta.arch)
    if period is None:
        return None
    return [il % period < period - 1 for il in range(shape.n_layer)]


def _type_bytes(name: str) -> float:
    """Bytes per element of a KV cache type: f16 = 2, q8_0 = 34/32, q4_0 = 18/32..."""
    try:
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name.upper()]]
    except KeyError:
        raise ValueError(f"unknown KV cache type '{name}'") from None
    return size / block


def _layer_stage(meta: GGUFMetadata, shape: _Shape, n_kv: int, n_ubatch: int, flash_attention: bool) -> int:
    """Scratch alive inside one layer: the mask (an input every layer reads, so it lives
    through all of them) plus the larger of the attention and the feed-forward activations.

    Without flash attention the f32 score matrix (``n_kv x n_ubatch x n_head``) is
    materialised and the mask is f32; flash attention streams over the keys and takes an f16
    mask. This reproduces llama.cpp's reserved CPU compute buffer to within 1.2 MiB for the
    tiny test model, Gemma 3 270M and Qwen 2.5 1.5B at 256 to 32,768 tokens, with and without
    flash attention.
    """
    n_head = max(shape.n_head, default=0)
    q_dim = n_head * shape.head_k
    kv_dim = max(shape.n_head_kv, default=0) * shape.head_k
    activations = 4 * n_ubatch * (3 * shape.n_embd + 2 * max(q_dim, shape.n_embd) + 2 * kv_dim)
    if flash_attention:
        mask, scores = 2 * n_kv * n_ubatch, 0
    else:
        mask, scores = 4 * n_kv * n_ubatch, 4 * n_kv * n_ubatch * n_head
    experts_used = int(meta.arch_field("expert_used_count", 0) or 0)
    expert_ff = int(meta.arch_field("expert_feed_forward_length", 0) or 0)
    ffn = 4 * n_ubatch * (3 * max(shape.n_ff, expert_ff * experts_used) + 4 * shape.n_embd)
    return mask + max(scores + activations, ffn)


def _recurrent_state(meta: GGUFMetadata, shape: _Shape) -> int:
    """One sequence's state in one recurrent layer (f32), Mamba- or RWKV-style."""
    head_size = int(meta.arch_field("wkv.head_size", 0) or 0)
    if head_size:
        return 4 * (shape.n_embd * head_size + 2 * shape.n_embd)
    inner = int(meta.arch_field("ssm.inner_size", 0) or 0) or 2 * shape.n_embd
    state = int(meta.arch_field("ssm.state_size", 0) or 0) or 16
    conv = int(meta.arch_field("ssm.conv_kernel", 0) or 0) or 4
    groups = int(meta.arch_field("ssm.group_count", 0) or 0)
    return 4 * ((conv - 1) * (inner + 2 * groups * state) + state * inner)
