"""Write tiny random-weight MLX model folders for mechanical tests (DESIGN §4).

A 2-layer, 64-wide qwen2 built with mlx-lm's own model class and saved the way mlx-lm saves
(``config.json`` + ``model.safetensors``), with a byte-level BPE tokenizer trained here with
the ``tokenizers`` library and a ChatML template in ``tokenizer_config.json``: a real folder that
mlx-lm loads through exactly the same path as one downloaded from mlx-community.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tiny_gguf import CHATML_TEMPLATE

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "hello world, the local model is in jupyter and it is a token of yes and no.",
    "The quick brown fox jumps over the lazy dog. Say hello to the world!",
    "user assistant system: what is the answer? It is 42, and 7 * 6 = 42.",
    '{"name": "get_weather", "arguments": {"city": "Paris"}} [1, 2, 3] true false null',
]


def write_tokenizer(folder: Path, chat_template: str | None = CHATML_TEMPLATE, vocab_size: int = 400) -> int:
    """A byte-level BPE (every text tokenizes: the 256 bytes are in its alphabet) with ChatML
    control tokens; returns the vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 131072,
    }
    if chat_template is not None:
        config["chat_template"] = chat_template
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return tokenizer.get_vocab_size()


def write_tiny_mlx_model(
    folder: Path,
    *,
    context_length: int = 4096,
    chat_template: str | None = CHATML_TEMPLATE,
    bits: int | None = None,
    hidden_size: int = 64,
    layers: int = 2,
    vocab_size: int = 400,
    seed: int = 0,
) -> Path:
    """An MLX model folder (LM Studio keeps it as ``publisher/repo/``); ``bits`` quantizes it
    with mlx-lm (group size 32) as mlx-community's ``-4bit`` repos are."""
    import mlx.core as mx
    from mlx_lm.models import qwen2
    from mlx_lm.utils import quantize_model, save_config, save_model

    n_vocab = write_tokenizer(folder, chat_template, vocab_size)
    config: dict[str, Any] = {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": hidden_size,
        "num_hidden_layers": layers,
        "intermediate_size": hidden_size * 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "vocab_size": n_vocab,
        "max_position_embeddings": context_length,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "eos_token_id": SPECIAL_TOKENS.index("<|im_end|>"),
        "torch_dtype": "float32",
    }
    mx.random.seed(seed)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    if bits is not None:
        model, config = quantize_model(model, config, group_size=32, bits=bits)
    save_model(folder, model)
    save_config(config, folder / "config.json")
    return folder


def ascii_only(folder: Path) -> dict[str, float]:
    """A ``logit_bias`` that keeps a random model to printable ASCII text: every token whose
    bytes are not (the byte-level BPE's lone UTF-8 pieces, control tokens) is banned."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    banned = {}
    for token in range(tokenizer.get_vocab_size()):
        text = tokenizer.decode([token], skip_special_tokens=False)
        if not text or not all(" " <= ch <= "~" for ch in text) or text in SPECIAL_TOKENS:
            banned[str(token)] = -100.0
    return banned
