"""FIM tokens from header keys, and the PSM prompt rendered with them."""

from __future__ import annotations

import pytest

from lm_jupyter.api.errors import APIError
from lm_jupyter.api.requests import CompletionRequest, InfillRequest, InputExtra, parse_request
from lm_jupyter.chat.fim import FAMILY_SPELLINGS, SPELLINGS, FimTokens, fim_tokens, render_fim
from lm_jupyter.engine.gguf_meta import read_metadata

QWEN = {
    "tokenizer.ggml.fim_pre_token_id": "<|fim_prefix|>",
    "tokenizer.ggml.fim_suf_token_id": "<|fim_suffix|>",
    "tokenizer.ggml.fim_mid_token_id": "<|fim_middle|>",
    "tokenizer.ggml.fim_rep_token_id": "<|repo_name|>",
    "tokenizer.ggml.fim_sep_token_id": "<|file_sep|>",
}
CODELLAMA = {  # converted before llama.cpp had the fim_* keys
    "tokenizer.ggml.prefix_token_id": "▁<PRE>",
    "tokenizer.ggml.suffix_token_id": "▁<SUF>",
    "tokenizer.ggml.middle_token_id": "▁<MID>",
}


def lookup(fields: dict[str, str]):
    return lambda key: fields.get(key, "")


def test_current_keys_with_repository_tokens():
    assert fim_tokens(lookup(QWEN)) == FimTokens(
        "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|repo_name|>", "<|file_sep|>"
    )


def test_legacy_keys():
    assert fim_tokens(lookup(CODELLAMA)) == FimTokens("▁<PRE>", "▁<SUF>", "▁<MID>")


def test_a_missing_role_means_no_fim():
    partial = {k: v for k, v in QWEN.items() if "fim_mid" not in k}
    assert fim_tokens(lookup(partial)) is None
    assert fim_tokens(lookup({})) is None


def test_headerless_vocabularies_by_spelling():
    none = lookup({})
    qwen = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|repo_name|>", "<|file_sep|>"}
    assert fim_tokens(none, qwen) == fim_tokens(lookup(QWEN))
    deepseek = FAMILY_SPELLINGS[3]  # the DeepSeek-Coder spellings, in order
    assert fim_tokens(none, set(deepseek)) == FimTokens(*deepseek)
    assert fim_tokens(none, {"<PRE>", "<SUF>"}) is None  # an incomplete set is no set


def test_header_keys_win_over_spellings():
    assert fim_tokens(
        lookup(CODELLAMA), {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"}
    ) == fim_tokens(lookup(CODELLAMA))


def test_tokens_found_in_a_long_vocabulary(tmp_path):
    """Past 512 entries the header walk only notes where each token starts; spellings are
    found by a byte search that must land on one of those starts."""
    import gguf

    tokens = [f"tok{i}" for i in range(1000)]
    tokens[700] = "<|fim_prefix|>"
    tokens[10] = "x<|fim_suffix|>"  # holds another spelling's bytes, but is not that token
    path = tmp_path / "vocab.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_token_list(tokens)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    with path.open("ab") as file:  # the header ends aligned, as in a file with tensors
        file.write(b"\0" * (-path.stat().st_size % gguf.GGUF_DEFAULT_ALIGNMENT))
    meta = read_metadata(path, find_tokens=SPELLINGS)
    assert meta.token_ids == {"<|fim_prefix|>": 700}


def test_psm_order_with_only_the_fim_tokens_special():
    tokens = FimTokens("<P>", "<S>", "<M>")
    assert render_fim(tokens, "x = 1\na = ", "\nb = 2") == [
        ("<P>", True),
        ("x = 1\n", False),
        ("<S>", True),
        ("\nb = 2", False),
        ("<M>", True),
        ("a = ", False),
    ]
    # code that spells a FIM token stays code; an empty suffix or prefix is no part
    assert render_fim(tokens, "<M>", "") == [("<P>", True), ("<S>", True), ("<M>", True), ("<M>", False)]


def test_the_cursors_line_follows_the_middle_token():
    """llama.vim's layout: a keystroke on a line changes only what follows the middle token, so
    every token before it stays in the prefix cache; a finished line moves into the prefix."""
    tokens = FimTokens("<P>", "<S>", "<M>")
    before = render_fim(tokens, "def f(x):\n    return x", "\n\nprint(f(2))\n")
    after = render_fim(tokens, "def f(x):\n    return x +", "\n\nprint(f(2))\n")
    assert before[:-1] == after[:-1]
    assert (before[-1], after[-1]) == (("    return x", False), ("    return x +", False))
    enter = render_fim(tokens, "def f(x):\n    return x + 1\n", "\n\nprint(f(2))\n")
    assert enter[1] == ("def f(x):\n    return x + 1\n", False)
    assert enter[-1] == ("<M>", True)


def text(parts) -> str:
    return "".join(piece for piece, _ in parts)


def test_other_files_in_repository_format():
    tokens = fim_tokens(lookup(QWEN))
    assert tokens is not None
    extra = [InputExtra(filename="util.py", text="X = 1\n")]
    assert text(render_fim(tokens, "y = ", "", extra, filename="main.py")) == (
        "<|repo_name|>project\n<|file_sep|>util.py\nX = 1\n<|file_sep|>main.py\n"
        "<|fim_prefix|><|fim_suffix|><|fim_middle|>y = "
    )


def test_other_files_without_a_separator_join_the_prefix():
    tokens = FimTokens("<P>", "<S>", "<M>")
    extra = [InputExtra(text="import os"), InputExtra(text="X = 1\n")]
    assert text(render_fim(tokens, "y", "", extra)) == "<P>import os\nX = 1\n<S><M>y"


def test_infill_reads_llama_servers_names():
    request = parse_request(
        InfillRequest, b'{"input_prefix": "a", "input_suffix": "b", "n_predict": 5, "input_extra": []}'
    )
    assert isinstance(request, CompletionRequest)
    assert (request.prompt, request.suffix, request.token_limit(), request.model) == ("a", "b", 5, "")


def test_infill_refuses_prompt():
    with pytest.raises(APIError) as caught:
        parse_request(InfillRequest, b'{"input_prefix": "a", "prompt": "b"}')
    assert caught.value.param == "prompt"


def test_input_extra_needs_a_suffix():
    with pytest.raises(APIError) as caught:
        parse_request(CompletionRequest, b'{"model": "m", "prompt": "a", "input_extra": [{"text": "x"}]}')
    assert caught.value.param == "input_extra"
