"""Memory estimates, checked against figures worked out by hand (the arithmetic is written out).

Headers are built as ``GGUFMetadata`` directly, so every hyperparameter is in plain sight;
one test reads a file written by ``tests/tiny_gguf.py`` and one reads Gemma 3 270M itself.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from lm_jupyter.engine import estimate as est
from lm_jupyter.engine.estimate import EstimateOptions, estimate, load_context, n_gpu_layers, padded_context
from lm_jupyter.engine.gguf_meta import GGUFMetadata, read_metadata
from tests.conftest import GEMMA_SOURCE
from tests.tiny_gguf import write_tiny_model

F16, F32 = gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F32
MIB = 1 << 20
OVERHEAD = 5 * MIB + MIB // 2  # est.FIXED_OVERHEAD, spelled out


def header(
    arch: str,
    fields: dict[str, object],
    tensors: dict[str, tuple[gguf.GGMLQuantizationType, int]],
    n_vocab: int,
    n_merges: int = 0,
) -> GGUFMetadata:
    """A GGUF header: ``fields`` without the ``{arch}.`` prefix, tensors as (type, elements)."""
    sizes = {}
    for name, (kind, count) in tensors.items():
        block, type_size = gguf.GGML_QUANT_SIZES[kind]
        sizes[name] = count // block * type_size
    lengths = {"tokenizer.ggml.tokens": n_vocab}
    if n_merges:
        lengths["tokenizer.ggml.merges"] = n_merges
    return GGUFMetadata(
        fields={"general.architecture": arch, **{f"{arch}.{k}": v for k, v in fields.items()}},
        array_lengths=lengths,
        tensor_types={name: int(kind) for name, (kind, _) in tensors.items()},
        tensor_bytes=sizes,
    )


def llama_like(tied: bool = False) -> GGUFMetadata:
    """4 layers, 256 wide, 8 heads of 32, no GQA, FFN 1024, 1000 tokens, F16 weights."""
    tensors: dict[str, tuple[gguf.GGMLQuantizationType, int]] = {"token_embd.weight": (F16, 1000 * 256)}
    for il in range(4):
        for proj in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensors[f"blk.{il}.{proj}.weight"] = (F16, 256 * 256)
        for proj in ("ffn_gate", "ffn_up", "ffn_down"):
            tensors[f"blk.{il}.{proj}.weight"] = (F16, 256 * 1024)
        tensors[f"blk.{il}.attn_norm.weight"] = (F32, 256)
        tensors[f"blk.{il}.ffn_norm.weight"] = (F32, 256)
    tensors["output_norm.weight"] = (F32, 256)
    if not tied:
        tensors["output.weight"] = (F16, 1000 * 256)
    fields = {
        "block_count": 4,
        "embedding_length": 256,
        "feed_forward_length": 1024,
        "attention.head_count": 8,
        "attention.head_count_kv": 8,
        "context_length": 8192,
    }
    return header("llama", fields, tensors, n_vocab=1000)


# Per-layer weights: 4 projections of 256x256 f16 (131,072 B each) + 3 FFN matrices of 256x1024
# f16 (524,288 B each) + 2 norms of 256 f32 (1,024 B each).
BLOCK = 4 * 131_072 + 3 * 524_288 + 2 * 1_024  # 2,099,200
EMBD = 1000 * 256 * 2  # token_embd and output: 512,000 B each
OUT_NORM = 256 * 4


def test_llama_like_on_the_cpu() -> None:
    e = estimate(llama_like(), 0, EstimateOptions(context_length=1000))
    # Weights: every tensor once.
    assert e.model_bytes == EMBD + 4 * BLOCK + EMBD + OUT_NORM == 9_421_824
    # Context 1000 is padded to 1,024 cells; per layer 2 (K, V) x 1,024 x 8 heads x 32 x 2 B.
    assert e.n_ctx == 1024
    assert e.parts["kv_cpu"] == 4 * 2 * 1024 * 8 * 32 * 2 == 4 * MIB
    # Compute (CPU), n_ubatch = 512, no flash attention:
    mask = 4 * 1024 * 512  # f32 mask, n_kv x n_ubatch
    scores = 4 * 1024 * 512 * 8  # f32 scores, n_kv x n_ubatch x n_head
    activations = 4 * 512 * (3 * 256 + 2 * 256 + 2 * 256)  # residual, norm, Q, out, K, V
    ffn = 4 * 512 * (3 * 1024 + 4 * 256)
    assert scores + activations > ffn
    work = 2 * 1024 * 512 * 8  # the f16 copy of the scores that multiplies V
    logits = 4 * (1000 + 2 * 512 * 256)  # one row of logits (the backend asks for one per batch)
    assert mask + scores + activations > logits
    assert e.parts["compute_cpu"] == mask + scores + activations + work == 30_932_992
    # Overhead: fixed + 190 B per token + 56 B per KV cell + the logits output buffer.
    assert e.parts["overhead"] == OVERHEAD + 190 * 1000 + 56 * 1024 + 4 * 1000
    assert e.context_bytes == 4 * MIB + 30_932_992 + e.parts["overhead"]
    assert e.total_bytes == e.model_bytes + e.context_bytes == 51_616_208 - MIB  # 1 MiB less overhead
    assert e.total_vram_bytes == 0 and e.ram_bytes == e.total_bytes
    assert e.confidence == "high"
    memory = e.memory()
    assert memory["totalBytes"] == memory["modelBytes"] + memory["contextBytes"]
    assert memory["totalVramBytes"] == memory["modelVramBytes"] + memory["contextVramBytes"]


def test_flash_attention_drops_the_score_matrix() -> None:
    e = estimate(llama_like(), 0, EstimateOptions(context_length=1000, flash_attention=True))
    mask = 2 * 1024 * 512  # f16 mask
    activations = 4 * 512 * (3 * 256 + 2 * 256 + 2 * 256)
    ffn = 4 * 512 * (3 * 1024 + 4 * 256)  # now larger than the attention activations
    assert e.parts["compute_cpu"] == mask + max(activations, ffn) == 9_437_184


@pytest.mark.parametrize(
    ("ratio", "gpu_blocks"),
    [(0.0, 0), (0.5, 1), (1.0, 4)],
)
def test_gpu_split(ratio: float, gpu_blocks: int) -> None:
    """llama.cpp offloads the output layer first, then the last blocks: ``n_gpu_layers`` =
    round(0.5 x 4) = 2 puts the output and block 3 on the GPU; token embeddings stay on the CPU."""
    layers = n_gpu_layers(ratio, 4)
    e = estimate(llama_like(), 0, EstimateOptions(context_length=1000, gpu_layers=layers))
    output_on_gpu = ratio > 0
    weights_gpu = gpu_blocks * BLOCK + (EMBD + OUT_NORM if output_on_gpu else 0)
    assert e.parts["weights_gpu"] == weights_gpu
    assert e.parts["weights_cpu"] == EMBD + (4 - gpu_blocks) * BLOCK + (
        0 if output_on_gpu else EMBD + OUT_NORM
    )
    assert e.model_vram_bytes == weights_gpu
    kv_layer = 2 * 1024 * 8 * 32 * 2
    assert e.parts["kv_gpu"] == gpu_blocks * kv_layer and e.parts["kv_cpu"] == (4 - gpu_blocks) * kv_layer
    reserved = 4 * 1024 * 512 + 4 * 1024 * 512 * 8 + 4 * 512 * 1792  # the whole graph, committed
    if ratio == 0:
        assert e.parts["compute_gpu"] == 0 and e.total_vram_bytes == 0
    else:
        assert e.parts["compute_gpu"] == reserved
        assert e.context_vram_bytes == gpu_blocks * kv_layer + reserved
    if ratio == 1:  # fully offloaded: the CPU only stages the input
        assert e.parts["compute_cpu"] == 4 * 512 * 256 * 2
    # RAM plus VRAM: weights are counted once whatever the split.
    assert e.model_bytes == 9_421_824


def test_tied_output_is_copied_to_the_gpu() -> None:
    """With no output.weight, llama.cpp loads token_embd a second time for the output layer."""
    cpu = estimate(llama_like(tied=True), 0, EstimateOptions(context_length=1000))
    gpu = estimate(llama_like(tied=True), 0, EstimateOptions(context_length=1000, gpu_layers=-1))
    assert cpu.model_bytes == EMBD + 4 * BLOCK + OUT_NORM
    assert gpu.model_bytes == cpu.model_bytes + EMBD
    assert gpu.parts["weights_cpu"] == EMBD


def test_load_rules() -> None:
    """One rule each for the loader, the guardrail and a download's fit: GPU layers for an
    offload fraction, and the context a load gets."""
    assert [n_gpu_layers(ratio, 28) for ratio in (0.0, 0.25, 0.5, 0.99, 1.0)] == [0, 7, 14, 28, -1]
    assert load_context(None, 4096, 32768) == 4096
    assert load_context(None, 4096, 2048) == 2048
    assert load_context(8192, 4096, 2048) == 8192  # asked for: the loader refuses it with its own message


def test_qwen2_like_gqa() -> None:
    """Qwen 2.5 1.5B: 28 layers, 12 query heads but 2 KV heads of 128. At 4,096 tokens:
    28 x 2 x 4,096 x 2 x 128 x 2 B = 112 MiB, which is what llama.cpp allocates (its log
    says 112.00 MiB); without GQA it would be 6 times that."""
    fields = {
        "block_count": 28,
        "embedding_length": 1536,
        "feed_forward_length": 8960,
        "attention.head_count": 12,
        "attention.head_count_kv": 2,
    }
    meta = header(
        "qwen2", fields, {"blk.0.attn_q.weight": (F16, 1536 * 1536)}, n_vocab=151_936, n_merges=151_387
    )
    e = estimate(meta, 0, EstimateOptions(context_length=4096))
    assert e.parts["kv_cpu"] == 28 * 2 * 4096 * 2 * 128 * 2 == 112 * MIB
    mha = header("qwen2", {**fields, "attention.head_count_kv": 12}, {}, n_vocab=151_936)
    assert estimate(mha, 0, EstimateOptions(context_length=4096)).parts["kv_cpu"] == 6 * 112 * MIB
    # The vocabulary and BPE merges are tables in RAM: 190 B per token, 155 B per merge.
    assert e.parts["overhead"] == OVERHEAD + 190 * 151_936 + 155 * 151_387 + 56 * 4096 + 4 * 151_936
    # Its reserved compute buffer is the logits stage, 4 x 512 x (151,936 + 2 x 1,536) B =
    # 302.75 MiB as llama.cpp reports; on the CPU only one row of logits is ever touched, so
    # there the attention stage wins: mask + scores + activations + work at 4,096 cells.
    scores = 4 * 4096 * 512 * (12 + 1) + 4 * 512 * (3 * 1536 + 2 * 1536 + 2 * 256)
    assert e.parts["compute_cpu"] == scores + 2 * 4096 * 512 * 12
    assert estimate(meta, 0, EstimateOptions(context_length=4096, gpu_layers=-1)).parts[
        "compute_gpu"
    ] == 4 * 512 * (151_936 + 2 * 1536)


def gemma3(window: int = 512) -> GGUFMetadata:
    fields = {
        "block_count": 18,
        "embedding_length": 640,
        "feed_forward_length": 2048,
        "attention.head_count": 4,
        "attention.head_count_kv": 1,
        "attention.key_length": 256,
        "attention.value_length": 256,
        "attention.sliding_window": window,
    }
    return header("gemma3", fields, {"token_embd.weight": (F16, 262_144 * 640)}, n_vocab=262_144)


def test_gemma3_sliding_window() -> None:
    """Gemma 3: five local layers (window 512) then one global layer, so layers 5, 11 and 17
    are global. A KV cache on every layer at 32,768 tokens is 18 x 32,768 x (256 + 256) x 2 B
    = 576 MiB: the figure LM Studio's estimator uses (BT#1862)."""
    all_layers = 18 * 32768 * (256 + 256) * 2
    assert all_layers == 576 * MIB
    # With reduced sliding-window caches (llama-server's choice) a local layer needs
    # window + n_ubatch = 1,024 cells (already a multiple of 256), a global layer 32,768:
    reduced = estimate(gemma3(), 0, EstimateOptions(context_length=32768, swa_full=False))
    assert reduced.parts["kv_cpu"] == 3 * 32768 * 1024 + 15 * 1024 * 1024 == 111 * MIB
    assert reduced.parts["kv_cpu"] < all_layers / 5  # not LM Studio's overestimate
    # This worker runs llama-cpp-python 0.3.36 with libllama's default swa_full = true ("using
    # full-size SWA cache" in its log): llama.cpp then allocates the full context on every
    # layer, 576 MiB (measured: 96 MiB non-SWA + 480 MiB SWA), and that is what we estimate.
    full = estimate(gemma3(), 0, EstimateOptions(context_length=32768))
    assert full.parts["kv_cpu"] == all_layers
    # Below the window nothing changes: 4,096 cells everywhere either way... except that the
    # reduced cache is capped at the context: min(4,096, 1,024) = 1,024 cells on local layers.
    small = estimate(gemma3(), 0, EstimateOptions(context_length=4096, swa_full=False))
    assert small.parts["kv_cpu"] == 3 * 4096 * 1024 + 15 * 1024 * 1024
    assert est._swa_layers(gemma3(), est._shape(gemma3())) == [il % 6 != 5 for il in range(18)]


def test_unknown_window_layout_is_low_confidence_only_when_it_matters() -> None:
    meta = header(
        "mistral-ish",
        {
            "block_count": 2,
            "embedding_length": 64,
            "attention.head_count": 4,
            "attention.sliding_window": 128,
        },
        {},
        n_vocab=100,
    )
    assert estimate(meta, 0, EstimateOptions(context_length=4096)).confidence == "high"
    assert estimate(meta, 0, EstimateOptions(context_length=4096, swa_full=False)).confidence == "low"


def test_vision_projector_counts_its_file() -> None:
    projector = 123_456_789
    plain = estimate(llama_like(), 0, EstimateOptions(context_length=1000))
    vlm = estimate(llama_like(), 0, EstimateOptions(context_length=1000, projector_bytes=projector))
    assert vlm.model_bytes == plain.model_bytes + projector and vlm.total_vram_bytes == 0
    offloaded = estimate(
        llama_like(), 0, EstimateOptions(context_length=1000, gpu_layers=-1, projector_bytes=projector)
    )
    assert offloaded.model_vram_bytes == 8_909_824 + projector  # every block + output + projector


def test_recurrent_and_hybrid_models_are_low_confidence() -> None:
    mamba = header(
        "mamba",
        {
            "block_count": 2,
            "embedding_length": 64,
            "ssm.inner_size": 128,
            "ssm.state_size": 16,
            "ssm.conv_kernel": 4,
        },
        {},
        n_vocab=100,
    )
    e = estimate(mamba, 0, EstimateOptions(context_length=4096))
    assert e.confidence == "low" and e.parts["kv_cpu"] == 0
    # Per layer and sequence: 4 B x ((4 - 1) x 128 conv + 16 x 128 ssm) = 9,728 B.
    assert e.parts["recurrent_state"] == 2 * 4 * (3 * 128 + 16 * 128)
    hybrid = header(
        "jamba",
        {
            "block_count": 4,
            "embedding_length": 64,
            "attention.head_count": 4,
            "attention.head_count_kv": [0, 4, 0, 0],
        },
        {},
        n_vocab=100,
    )
    e = estimate(hybrid, 0, EstimateOptions(context_length=4096))
    assert e.confidence == "low"
    assert e.parts["kv_cpu"] == 1 * 4096 * 4 * (16 * 2 + 16 * 2)  # only layer 1 attends


def test_kv_cache_types_and_context_padding() -> None:
    q8 = estimate(
        llama_like(), 0, EstimateOptions(context_length=1024, cache_type_k="q8_0", cache_type_v="q8_0")
    )
    assert q8.parts["kv_cpu"] == round(4 * 2 * 1024 * 8 * 32 * 34 / 32)  # q8_0: 34 B per 32 values
    assert [padded_context(n) for n in (1, 64, 256, 257, 1000, 4097)] == [256, 256, 256, 512, 1024, 4352]
    with pytest.raises(ValueError, match="unknown KV cache type"):
        estimate(llama_like(), 0, EstimateOptions(context_length=1024, cache_type_k="f12"))


def test_tensor_bytes_from_a_written_file(tmp_path: Path) -> None:
    """The header parser sizes every tensor from its dims and type; for the tiny F32 model that
    is 4 B per parameter, which llama.cpp's llama_model_size reports too (669,440 B)."""
    meta = read_metadata(write_tiny_model(tmp_path / "tiny.gguf"))
    assert sum(meta.tensor_bytes.values()) == 4 * meta.n_params == 669_440
    e = estimate(meta, 0, EstimateOptions(context_length=4096))
    # 2 layers x 2 x 4,096 cells x 4 heads x 16 x 2 B = 2 MiB, as llama.cpp's log says.
    assert e.parts["kv_cpu"] == 2 * MIB


@pytest.mark.skipif(not GEMMA_SOURCE.exists(), reason="Gemma 3 270M not fetched (make test does)")
def test_gemma_file_matches_llama_cpp_buffers() -> None:
    """Figures llama.cpp printed when loading this file with llama-cpp-python 0.3.36 on the CPU:
    model 235.16 MiB mapped + 12.66 MiB repacked (the Q4_K tensors, copied from the same
    bytes), KV 12 + 60 MiB at 4,096 tokens, compute buffer 514.50 MiB reserved."""
    meta = read_metadata(GEMMA_SOURCE)
    assert sum(meta.tensor_bytes.values()) == 246_587_904  # llama_model_size
    e = estimate(meta, GEMMA_SOURCE.stat().st_size, EstimateOptions(context_length=4096))
    assert e.parts["kv_cpu"] == 72 * MIB
    shape = est._shape(meta)
    reserved = max(
        4 * 512 * (shape.n_vocab + 2 * shape.n_embd), est._layer_stage(meta, shape, 4096, 512, False)
    )
    assert reserved == round(514.50 * MIB)
    assert estimate(meta, 0, EstimateOptions(context_length=32768)).parts["kv_cpu"] == 576 * MIB


def test_unknown_tensor_type_falls_back_to_the_file_size() -> None:
    meta = llama_like()
    meta.tensor_types["blk.0.mystery.weight"] = 999  # a ggml type this gguf package lacks
    e = estimate(meta, 20_000_000, EstimateOptions(context_length=1000))
    assert e.confidence == "low" and any("unknown" in note for note in e.notes)
    assert e.model_bytes == 9_421_824 + (20_000_000 - 9_421_824)  # the file stands in
