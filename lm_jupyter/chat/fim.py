"""Fill-in-the-middle prompts from a model's own FIM tokens.

Code models trained for infilling (Qwen2.5-Coder, CodeLlama, StarCoder, DeepSeek-Coder) carry
the ids of their FIM control tokens in the GGUF header. Newer converters write
``tokenizer.ggml.fim_pre/suf/mid_token_id``; files converted before llama.cpp had those keys
use ``prefix/suffix/middle_token_id``; files with neither (the Qwen2.5-Coder GGUFs people have)
still have the tokens in their vocabulary, found by their spellings as llama.cpp finds them
when it loads such a file. The prompt is rendered as text with those tokens'
spellings, as parts (``chat/segments.py``): the FIM tokens are tokenized with special tokens
parsed, so each becomes its one id, and the code as plain text, so code that contains a FIM
token's spelling cannot end the prefix early.
The order is prefix-suffix-middle (PSM), the order all four families were trained with, laid
out as llama.vim lays out its requests to llama-server's ``/infill``: the prefix's complete lines
before the suffix token, and the cursor's line so far after the middle token. Typing on a line
then changes only the prompt's last tokens, so the prefix cache keeps everything before them and
a keystroke evaluates one or two tokens instead of the whole suffix again; the model continues
the line, so its answer is still the text that goes at the cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from ..api.requests import InputExtra
from .segments import Part

_KEY = "tokenizer.ggml.{}_token_id"
# (role, newer key name, older key name)
_ROLES = (("prefix", "fim_pre", "prefix"), ("suffix", "fim_suf", "suffix"), ("middle", "fim_mid", "middle"))
# (prefix, suffix, middle) spellings of headerless vocabularies: Qwen2.5-Coder, SantaCoder,
# StarCoder, DeepSeek-Coder, CodeLlama (SentencePiece and plain).
FAMILY_SPELLINGS = (
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    ("<fim-prefix>", "<fim-suffix>", "<fim-middle>"),
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),  # noqa: RUF001 (DeepSeek spells them with U+FF5C)
    ("▁<PRE>", "▁<SUF>", "▁<MID>"),
    ("<PRE>", "<SUF>", "<MID>"),
)
REPO_SPELLINGS = ("<|repo_name|>", "<repo_name>", "<reponame>")
FILE_SEP_SPELLINGS = ("<|file_sep|>", "<file_sep>")
# Everything to look up in a vocabulary: ``read_metadata(path, find_tokens=SPELLINGS)``.
SPELLINGS = frozenset(t for family in FAMILY_SPELLINGS for t in family) | {
    *REPO_SPELLINGS,
    *FILE_SEP_SPELLINGS,
}


@dataclass(frozen=True)
class FimTokens:
    """The spellings of one model's FIM tokens; ``repo``/``file_sep`` are empty when it has none."""

    prefix: str
    suffix: str
    middle: str
    repo: str = ""
    file_sep: str = ""


def fim_tokens(token_text: Callable[[str], str], in_vocab: Collection[str] = ()) -> FimTokens | None:
    """The model's FIM tokens, or None when it has no complete set.

    ``token_text(key)`` returns the spelling of the token a header key names, or "";
    ``in_vocab`` holds which of ``SPELLINGS`` the vocabulary has, for files whose header names none.
    """
    named = [token_text(_KEY.format(newer)) or token_text(_KEY.format(older)) for _, newer, older in _ROLES]
    if not all(named):
        named = next((list(family) for family in FAMILY_SPELLINGS if all(t in in_vocab for t in family)), [])
    if not named:
        return None
    repo = token_text(_KEY.format("fim_rep")) or next((t for t in REPO_SPELLINGS if t in in_vocab), "")
    file_sep = token_text(_KEY.format("fim_sep")) or next(
        (t for t in FILE_SEP_SPELLINGS if t in in_vocab), ""
    )
    return FimTokens(*named, repo=repo, file_sep=file_sep)


def render_fim(
    tokens: FimTokens,
    prefix: str,
    suffix: str,
    extra: Sequence[InputExtra] = (),
    filename: str = "untitled.py",
) -> list[Part]:
    """One PSM prompt as parts: other files first (repository-level format when the model has
    one), then the prefix's complete lines, the suffix, the middle token and the cursor's line
    so far, which the answer continues."""
    parts: list[Part] = []
    if extra and tokens.file_sep:
        if tokens.repo:
            parts += [(tokens.repo, True), ("project\n", False)]
        for chunk in extra:
            parts += [(tokens.file_sep, True), (f"{chunk.filename}\n{chunk.text}", False)]
        parts += [(tokens.file_sep, True), (f"{filename}\n", False)]
    elif extra:  # no file separator: other files read as code above this one
        prefix = "".join(chunk.text.rstrip("\n") + "\n" for chunk in extra) + prefix
    head, newline, line = prefix.rpartition("\n")
    parts += [
        (tokens.prefix, True),
        (head + newline, False),
        (tokens.suffix, True),
        (suffix, False),
        (tokens.middle, True),
        (line, False),
    ]
    return [(text, special) for text, special in parts if text]
