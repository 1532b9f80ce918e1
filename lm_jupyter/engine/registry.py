"""The models folder: LM Studio's ``publisher/repo/file.gguf`` layout, listed from metadata.

Nothing here loads a model. Metadata is cached per (path, size, mtime) so listing a folder of
large models stays instant after the first look.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import gguf

from ..api.models import ModelFacts
from ..hub.store import QUANT_IN_NAME
from .gguf_meta import GGUFError, GGUFMetadata, read_metadata

EMBEDDING_ARCHS = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder", "modern-bert"}


@dataclass(frozen=True)
class LocalModel:
    """A model file plus what a worker and the chat template need to run it."""

    facts: ModelFacts
    file: Path
    chat_template: str | None
    bos_token: str
    eos_token: str


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[Path, tuple[tuple[int, int], GGUFMetadata]] = {}
        self._lock = threading.Lock()

    def _metadata(self, file: Path, stamp: tuple[int, int]) -> GGUFMetadata | None:
        with self._lock:
            cached = self._cache.get(file)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            meta = read_metadata(file)
        except (GGUFError, OSError):
            return None
        with self._lock:
            self._cache[file] = (stamp, meta)
        return meta

    def scan(self) -> list[LocalModel]:
        """Every model under the root, keyed as LM Studio keys them."""
        found: list[tuple[Path, GGUFMetadata, tuple[int, int]]] = []
        if self.root.is_dir():
            for file in sorted(self.root.glob("*/*/*.gguf")):
                if "mmproj" in file.name.lower():
                    continue
                stat = file.stat()
                stamp = (stat.st_size, stat.st_mtime_ns)
                meta = self._metadata(file, stamp)
                if meta is not None:
                    found.append((file, meta, stamp))
        by_repo: dict[Path, int] = {}
        for file, _, _ in found:
            by_repo[file.parent] = by_repo.get(file.parent, 0) + 1
        models = []
        for file, meta, stamp in found:
            variants = by_repo[file.parent] > 1
            models.append(self._describe(file, meta, variants, stamp))
        return models

    def _describe(self, file: Path, meta: GGUFMetadata, variants: bool, stamp: tuple[int, int]) -> LocalModel:
        publisher = file.parent.parent.name
        repo = re.sub(r"(?i)[-_]gguf$", "", file.parent.name)
        quant = quantization_name(meta, file.name)
        key = f"{publisher}/{repo}".lower()
        if variants:
            key = f"{key}@{quant.lower()}"
        template = meta.fields.get("tokenizer.chat_template")
        facts = ModelFacts(
            key=key,
            path=str(file.relative_to(self.root)),
            publisher=publisher,
            arch=meta.arch,
            type=model_type(meta),
            quantization=quant,
            size_bytes=stamp[0],
            max_context_length=int(meta.arch_field("context_length", 2048)),
            params_string=params_string(meta),
            trained_for_tool_use=bool(template and "tools" in template),
            display_name=str(meta.fields.get("general.name") or repo),
        )
        return LocalModel(
            facts=facts,
            file=file,
            chat_template=template,
            bos_token=meta.token_text("tokenizer.ggml.bos_token_id"),
            eos_token=meta.token_text("tokenizer.ggml.eos_token_id"),
        )

    def find(self, name: str) -> LocalModel | None:
        """Resolve a key, a key without its @quant, or a relative path."""
        models = self.scan()
        wanted = name.lower()
        for model in models:
            if wanted in (model.facts.key, model.facts.path.lower()):
                return model
        for model in models:
            if model.facts.key.split("@", 1)[0] == wanted:
                return model
        return None


def model_type(meta: GGUFMetadata) -> str:
    pooling = meta.arch_field("pooling_type")
    if meta.arch in EMBEDDING_ARCHS or (pooling is not None and int(pooling) != gguf.PoolingType.NONE):
        return "embeddings"
    return "llm"


def quantization_name(meta: GGUFMetadata, filename: str) -> str:
    file_type = meta.fields.get("general.file_type")
    if file_type is not None:
        try:
            name = gguf.LlamaFileType(int(file_type)).name
        except ValueError:
            name = ""
        if name:
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    match = QUANT_IN_NAME.search(filename)
    return match.group(1).upper() if match else "unknown"


def params_string(meta: GGUFMetadata) -> str | None:
    label = meta.fields.get("general.size_label")
    if label:
        return str(label)
    count = meta.n_params
    if count <= 0:
        return None
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g}{unit}"
    return str(count)
