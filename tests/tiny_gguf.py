"""Write tiny random-weight GGUF models for mechanical tests (DESIGN §4).

A 2-layer, 64-wide llama with a SentencePiece-style vocabulary of control tokens, the 256
byte tokens and a few words: under a megabyte, thousands of tokens per second, and a real
file that llama.cpp loads through exactly the same path as a downloaded model.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# A Hermes / Qwen 2.5 style template: tools listed in the system turn, calls as <tool_call> JSON,
# tool results sent back in <tool_response> blocks.
TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n# Tools\n\nYou may call one or more functions.\n<tools>\n"
    "{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}</tools>\n\nFor each function call, return "
    "a json object with function name and arguments within <tool_call></tool_call> XML tags.<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message['content'] }}\n"
    "</tool_response><|im_end|>\n"
    "{% elif message.get('tool_calls') %}<|im_start|>assistant\n{% for call in message['tool_calls'] %}"
    '<tool_call>\n{"name": "{{ call[\'function\'][\'name\'] }}", "arguments": '
    "{{ call['function']['arguments'] }}}\n</tool_call>{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# A reasoning model's template (Qwen 3 / DeepSeek-R1 style): the answer may open with <think>.
THINK_TEMPLATE = CHATML_TEMPLATE + "{# reasoning: the model thinks in <think>...</think> first #}"

WORDS = [
    "▁the",
    "▁a",
    "▁hello",
    "▁world",
    "▁model",
    "▁local",
    "▁jupyter",
    "▁token",
    "▁yes",
    "▁no",
    "▁and",
    "▁of",
    "▁to",
    "▁is",
    "▁in",
    "▁it",
    ".",
    ",",
    "!",
    "?",
]
CONTROL = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
BOS_ID, EOS_ID, IM_START_ID, IM_END_ID = 1, 2, 3, 4
# Fill-in-the-middle control tokens (Qwen2.5-Coder's spellings), after the words when asked for.
FIM_TOKENS = ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]
# The header keys naming them: llama.cpp's current ones, those of files converted before it had
# them, or none at all (the tokens only in the vocabulary, as in Qwen2.5-Coder's GGUFs).
FIM_KEYS: dict[str, tuple[str, ...]] = {
    "fim": ("fim_pre", "fim_suf", "fim_mid"),
    "legacy": ("prefix", "suffix", "middle"),
    "vocab": (),
}


def vocabulary(fim: bool = False) -> tuple[list[str], list[float], list[int]]:
    tokens, scores, types = [], [], []
    for index, text in enumerate(CONTROL):
        tokens.append(text)
        scores.append(0.0)
        types.append(gguf.TokenType.UNKNOWN if index == 0 else gguf.TokenType.CONTROL)
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>")
        scores.append(0.0)
        types.append(gguf.TokenType.BYTE)
    for rank, word in enumerate(WORDS):
        tokens.append(word)
        scores.append(-float(rank))
        types.append(gguf.TokenType.NORMAL)
    for text in FIM_TOKENS if fim else []:
        tokens.append(text)
        scores.append(0.0)
        types.append(gguf.TokenType.CONTROL)
    return tokens, scores, types


def write_tiny_model(
    path: Path,
    *,
    name: str = "tiny-chat",
    context_length: int = 4096,
    embedding: bool = False,
    chat_template: str | None = CHATML_TEMPLATE,
    seed: int = 0,
    n_embd: int = 64,
    n_layer: int = 2,
    file_type: gguf.LlamaFileType = gguf.LlamaFileType.ALL_F32,
    split_max_tensors: int = 0,
    rank_labels: list[str] | None = None,
    fim_keys: str | None = None,
    endless: bool = False,
) -> Path:
    """``file_type`` only labels the file (as a quantized download would be); weights stay F32.

    ``fim_keys`` ("fim", "legacy" or "vocab", see ``FIM_KEYS``) adds fill-in-the-middle tokens
    and names them in the header (or not), as a code model's converter does.

    ``endless`` zeroes the output rows of ``</s>`` and ``<|im_end|>``: their logit is 0 while the
    largest of the others is far above it, so greedy decoding never ends a turn by itself, whatever
    the prompt (a random model's early stop depends on exact prompt tokens).

    ``split_max_tensors`` splits the model into shards as ``gguf-split`` does
    (``NAME-00001-of-0000N.gguf``, the metadata in the first).

    ``rank_labels`` makes a reranker as Qwen3-Reranker GGUFs are: a ``qwen3`` model with rank
    pooling and a classifier head (``cls.output``) with one output per label, whose softmax
    llama.cpp returns; the first label's probability is the relevance score.
    """
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary(fim=fim_keys is not None)
    n_vocab, n_head, n_ff = len(tokens), 4, 4 * n_embd
    arch = "qwen3" if rank_labels else "llama"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch, split_max_tensors=split_max_tensors)
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_context_length(context_length)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    if embedding:
        writer.add_pooling_type(gguf.PoolingType.MEAN)
    if rank_labels:
        writer.add_pooling_type(gguf.PoolingType.RANK)
        writer.add_classifier_output_labels(rank_labels)
        writer.add_key_length(n_embd // n_head)
        writer.add_value_length(n_embd // n_head)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)
    if fim_keys is not None:
        first = len(tokens) - len(FIM_TOKENS)
        for offset, name in enumerate(FIM_KEYS[fim_keys]):
            writer.add_uint32(f"tokenizer.ggml.{name}_token_id", first + offset)

    def weight(*shape: int, scale: float = 0.5) -> np.ndarray:
        return (rng.standard_normal(shape) * scale / np.sqrt(shape[-1])).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(n_vocab, n_embd, scale=8.0))
    for layer in range(n_layer):
        prefix = f"blk.{layer}."
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for proj in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(prefix + proj + ".weight", weight(n_embd, n_embd))
        if rank_labels:  # qwen3 normalises queries and keys per head
            for norm in ("attn_q_norm", "attn_k_norm"):
                writer.add_tensor(prefix + norm + ".weight", np.ones(n_embd // n_head, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_gate.weight", weight(n_ff, n_embd))
        writer.add_tensor(prefix + "ffn_up.weight", weight(n_ff, n_embd))
        writer.add_tensor(prefix + "ffn_down.weight", weight(n_embd, n_ff))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    output = weight(n_vocab, n_embd, scale=4.0)
    if endless:
        output[[tokens.index("</s>"), tokens.index("<|im_end|>")]] = 0.0
    writer.add_tensor("output.weight", output)
    if rank_labels:
        writer.add_tensor("cls.output.weight", weight(len(rank_labels), n_embd, scale=2.0))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_tiny_projector(path: Path, *, seed: int = 0) -> Path:
    """A stand-in vision projector (``mmproj-*.gguf``): a small ``clip`` file that downloads
    and the memory estimate handle like a real one (nothing here runs it)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_name("tiny-projector")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tensor("mm.0.weight", rng.standard_normal((64, 64)).astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
