"""The models folder, listed from GGUF headers alone."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import pytest

from lm_jupyter.engine.gguf_meta import GGUFError, read_metadata
from lm_jupyter.engine.registry import Registry
from lm_jupyter.hub.store import import_model
from tests.tiny_gguf import CHATML_TEMPLATE, write_tiny_model


def test_metadata_without_loading(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "m.gguf", context_length=2048)
    meta = read_metadata(path)
    assert meta.arch == "llama" and meta.arch_field("context_length") == 2048
    assert meta.fields["tokenizer.chat_template"] == CHATML_TEMPLATE
    assert meta.token_text("tokenizer.ggml.bos_token_id") == "<s>"
    assert meta.token_text("tokenizer.ggml.eos_token_id") == "</s>"
    assert meta.array_lengths["tokenizer.ggml.tokens"] == 281
    assert meta.n_params > 100_000


def test_bad_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGML" + b"\0" * 20)
    with pytest.raises(GGUFError):
        read_metadata(junk)
    good = write_tiny_model(tmp_path / "good.gguf")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(GGUFError):
        read_metadata(truncated)


def test_listing_in_lm_studio_layout(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "acme" / "Chat-7B-GGUF" / "chat-7b-Q4_K_M.gguf")
    write_tiny_model(tmp_path / "acme" / "Embed-GGUF" / "embed-F32.gguf", embedding=True, chat_template=None)
    write_tiny_model(
        tmp_path / "acme" / "Rank-GGUF" / "rank-F32.gguf", chat_template=None, rank_labels=["yes"]
    )
    write_tiny_model(
        tmp_path / "acme" / "Two-GGUF" / "two-Q8_0.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q8_0
    )
    write_tiny_model(
        tmp_path / "acme" / "Two-GGUF" / "two-Q4_K_M.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M
    )
    write_tiny_model(tmp_path / "acme" / "Vision-GGUF" / "mmproj-vision-F16.gguf")
    (tmp_path / "acme" / "Chat-7B-GGUF" / "partial.gguf.part").write_bytes(b"half")
    (tmp_path / "loose.gguf").write_bytes(b"not in the layout")
    models = {m.facts.key: m.facts for m in Registry(tmp_path).scan()}
    assert set(models) == {"acme/chat-7b", "acme/embed", "acme/rank", "acme/two@q8_0", "acme/two@q4_k_m"}
    assert (
        models["acme/two@q4_k_m"].model_key == "acme/two"
        and models["acme/two@q4_k_m"].quantization == "Q4_K_M"
    )
    chat = models["acme/chat-7b"]
    assert (chat.type, chat.arch, chat.publisher) == ("llm", "llama", "acme")
    assert chat.quantization == "F32"  # general.file_type wins over the file name
    assert chat.path == "acme/Chat-7B-GGUF/chat-7b-Q4_K_M.gguf"
    assert chat.max_context_length == 4096 and not chat.trained_for_tool_use
    assert models["acme/embed"].type == "embeddings"
    assert models["acme/rank"].type == "reranker" and models["acme/rank"].pooled


def test_find_by_key_path_and_base_key(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "acme" / "Chat-GGUF" / "chat-F32.gguf")
    registry = Registry(tmp_path)
    found = registry.find("ACME/chat")
    assert found is not None and found.file.name == "chat-F32.gguf"
    assert registry.find("acme/Chat-GGUF/chat-F32.gguf") == found
    assert registry.find("acme/other") is None


def test_variants_resolve_to_the_best_quantization_that_fits(tmp_path: Path) -> None:
    repo = tmp_path / "acme" / "Chat-GGUF"
    write_tiny_model(repo / "chat-Q4_K_M.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M)
    write_tiny_model(repo / "chat-Q8_0.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q8_0)
    write_tiny_model(repo / "chat-F16.gguf", file_type=gguf.LlamaFileType.MOSTLY_F16)
    write_tiny_model(repo / "chat-copy-Q8_0.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q8_0)
    registry = Registry(tmp_path)
    assert {m.facts.key for m in registry.scan()} == {
        "acme/chat@q4_k_m",
        "acme/chat@f16",
        "acme/chat@chat-q8_0",
        "acme/chat@chat-copy-q8_0",
    }
    assert registry.find("acme/chat").facts.quantization == "F16"  # type: ignore[union-attr]
    small = registry.find("acme/chat", fits=lambda m: m.facts.quantization == "Q4_K_M")
    assert small is not None and small.facts.key == "acme/chat@q4_k_m"
    assert registry.find("acme/chat@q4_k_m") == small
    nothing_fits = registry.find("acme/chat", fits=lambda m: False)
    assert nothing_fits is not None and nothing_fits.facts.size_bytes == min(
        m.facts.size_bytes for m in registry.scan()
    )


def test_import_hard_links_and_never_shows_partial_files(tmp_path: Path) -> None:
    source = write_tiny_model(tmp_path / "dl" / "tiny-Q8_0.gguf")
    root = tmp_path / "models"
    target = import_model(source, root, publisher="me")
    assert target == root / "me" / "tiny" / "tiny-Q8_0.gguf"
    assert os.stat(target).st_ino == os.stat(source).st_ino
    copied = import_model(source, root, publisher="me", repo="copy", copy=True)
    assert os.stat(copied).st_ino != os.stat(source).st_ino
    assert not list(root.rglob("*.part"))
    assert {m.facts.key for m in Registry(root).scan()} == {"me/tiny", "me/copy"}
    with pytest.raises(FileExistsError):
        import_model(source, root, publisher="me")
    text = tmp_path / "x.gguf"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a GGUF"):
        import_model(text, root)
