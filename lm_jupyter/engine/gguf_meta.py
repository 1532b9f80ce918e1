"""Read the metadata of a GGUF file without loading the model.

``gguf.GGUFReader`` builds a Python object for every element of every array; a 262k-token
vocabulary (Gemma 3) then takes tens of seconds. Listing models must be instant, so this
walks the header with the gguf package's own type tables and only materialises the values
it needs: scalars, short arrays, and the few vocabulary entries a chat template uses.
"""

from __future__ import annotations

import bisect
import mmap
import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

_SCALARS: dict[gguf.GGUFValueType, str] = {
    gguf.GGUFValueType.UINT8: "<B",
    gguf.GGUFValueType.INT8: "<b",
    gguf.GGUFValueType.UINT16: "<H",
    gguf.GGUFValueType.INT16: "<h",
    gguf.GGUFValueType.UINT32: "<I",
    gguf.GGUFValueType.INT32: "<i",
    gguf.GGUFValueType.FLOAT32: "<f",
    gguf.GGUFValueType.BOOL: "<?",
    gguf.GGUFValueType.UINT64: "<Q",
    gguf.GGUFValueType.INT64: "<q",
    gguf.GGUFValueType.FLOAT64: "<d",
}
# Arrays longer than this are skipped, not decoded. Per-layer arrays (head_count_kv of hybrid
# models, sliding_window_pattern) must fit; vocabularies and merges must not.
_SHORT_ARRAY = 512


class GGUFError(ValueError):
    pass


@dataclass
class GGUFMetadata:
    """Header facts of one GGUF file."""

    fields: dict[str, Any]
    array_lengths: dict[str, int]
    tensor_types: dict[str, int] = field(default_factory=dict)
    # Bytes of each tensor's data, from its dims and ggml type (what llama.cpp allocates for
    # it); a tensor of a type this gguf package does not know is left out.
    tensor_bytes: dict[str, int] = field(default_factory=dict)
    n_params: int = 0
    # Bytes the file must have: the aligned end of the header plus the furthest tensor's end.
    # A file shorter than this was cut off (an interrupted copy or download).
    required_size: int = 0
    token_texts: dict[int, str] = field(default_factory=dict)
    # Ids of the tokens asked for by spelling (``read_metadata(..., find_tokens=...)``) that the
    # vocabulary has; for special tokens a converter did not name in the header.
    token_ids: dict[str, int] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return str(self.fields.get("general.architecture", "unknown"))

    def arch_field(self, name: str, default: Any = None) -> Any:
        return self.fields.get(f"{self.arch}.{name}", default)

    def token_text(self, key: str) -> str:
        token_id = self.fields.get(key)
        return "" if token_id is None else self.token_texts.get(int(token_id), "")


def read_metadata(path: Path, find_tokens: Collection[str] = ()) -> GGUFMetadata:
    """The header of a whole file; raises ``GGUFError`` for a file shorter than its tensor
    table says (truncated), naming both sizes. ``find_tokens``: spellings to look up in the
    vocabulary (``GGUFMetadata.token_ids``)."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        meta = _Parser(data).parse(find_tokens)
        if len(data) < meta.required_size:
            raise GGUFError(
                f"{path.name} is truncated: the file has {len(data)} bytes, but its tensors need "
                f"{meta.required_size}. Download or copy it again."
            )
        return meta


def parse_metadata(data: bytes) -> GGUFMetadata:
    """The header from the first bytes of a file (a Range request to the Hub); raises
    ``GGUFError`` ("truncated ...") when the header goes on past ``data``."""
    return _Parser(data).parse()


class _Parser:
    def __init__(self, data: mmap.mmap | bytes) -> None:
        self.data = data
        self.pos = 0
        self.string_offsets: dict[str, list[int]] = {}
        self.string_ends: dict[str, int] = {}

    def _unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise GGUFError("truncated GGUF header")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def _string(self) -> str:
        length = self._unpack("<Q")
        start = self.pos
        self.pos += length
        if self.pos > len(self.data):
            raise GGUFError("truncated GGUF string")
        return bytes(self.data[start : self.pos]).decode("utf-8", errors="replace")

    def _skip_string(self) -> int:
        start = self.pos
        self.pos += 8 + self._unpack("<Q")
        return start

    def _value(self, kind: gguf.GGUFValueType, key: str, meta: GGUFMetadata) -> Any:
        if kind == gguf.GGUFValueType.STRING:
            return self._string()
        if kind == gguf.GGUFValueType.ARRAY:
            item_kind = gguf.GGUFValueType(self._unpack("<I"))
            count = self._unpack("<Q")
            meta.array_lengths[key] = count
            if count <= _SHORT_ARRAY:
                return [self._value(item_kind, key, meta) for _ in range(count)]
            if item_kind == gguf.GGUFValueType.STRING:
                self.string_offsets[key] = [self._skip_string() for _ in range(count)]
                self.string_ends[key] = self.pos
            elif item_kind in _SCALARS:
                self.pos += count * struct.calcsize(_SCALARS[item_kind])
            else:
                raise GGUFError(f"unsupported nested array in '{key}'")
            return None
        fmt = _SCALARS.get(kind)
        if fmt is None:
            raise GGUFError(f"unknown GGUF value type {kind}")
        return self._unpack(fmt)

    def parse(self, find_tokens: Collection[str] = ()) -> GGUFMetadata:
        if self._unpack("<I") != gguf.GGUF_MAGIC:
            raise GGUFError("not a GGUF file (bad magic)")
        version = self._unpack("<I")
        if version not in (2, 3):
            raise GGUFError(f"unsupported GGUF version {version}")
        n_tensors = self._unpack("<Q")
        n_kv = self._unpack("<Q")
        meta = GGUFMetadata(fields={}, array_lengths={})
        data_end = 0
        for _ in range(n_kv):
            key = self._string()
            meta.fields[key] = self._value(gguf.GGUFValueType(self._unpack("<I")), key, meta)
        for _ in range(n_tensors):
            name = self._string()
            dims = [self._unpack("<Q") for _ in range(self._unpack("<I"))]
            tensor_type = self._unpack("<I")
            offset = self._unpack("<Q")  # from the start of the data section
            meta.tensor_types[name] = tensor_type
            count = 1
            for dim in dims:
                count *= dim
            meta.n_params += count
            size = _tensor_size(tensor_type, count)
            if size is not None:
                meta.tensor_bytes[name] = size
                data_end = max(data_end, offset + size)
        alignment = int(meta.fields.get("general.alignment") or gguf.GGUF_DEFAULT_ALIGNMENT)
        meta.required_size = -(-self.pos // alignment) * alignment + data_end
        self._resolve_special_tokens(meta)
        self._find_tokens(meta, find_tokens)
        return meta

    def _find_tokens(self, meta: GGUFMetadata, spellings: Collection[str]) -> None:
        """Byte searches, not a walk of the vocabulary: each entry is a length and its bytes,
        and a match counts only where an entry starts (the offsets the header walk noted)."""
        tokens = meta.fields.get("tokenizer.ggml.tokens")
        if isinstance(tokens, list):  # a short vocabulary, decoded already
            ids = {text: index for index, text in enumerate(tokens)}
            meta.token_ids.update((s, ids[s]) for s in spellings if s in ids)
            return
        offsets = self.string_offsets.get("tokenizer.ggml.tokens")
        if not offsets:
            return
        end = self.string_ends["tokenizer.ggml.tokens"]
        for spelling in spellings:
            raw = spelling.encode()
            needle = struct.pack("<Q", len(raw)) + raw
            at = self.data.find(needle, offsets[0], end)
            while at >= 0:
                index = bisect.bisect_left(offsets, at)
                if index < len(offsets) and offsets[index] == at:
                    meta.token_ids[spelling] = index
                    break
                at = self.data.find(needle, at + 1, end)

    def _resolve_special_tokens(self, meta: GGUFMetadata) -> None:
        tokens = meta.fields.get("tokenizer.ggml.tokens")
        offsets = self.string_offsets.get("tokenizer.ggml.tokens")
        for key, value in meta.fields.items():
            if not (key.startswith("tokenizer.ggml.") and key.endswith("_token_id")):
                continue
            token_id = int(value)
            if isinstance(tokens, list) and 0 <= token_id < len(tokens):
                meta.token_texts[token_id] = tokens[token_id]
            elif offsets is not None and 0 <= token_id < len(offsets):
                self.pos = offsets[token_id]
                meta.token_texts[token_id] = self._string()


def _tensor_size(tensor_type: int, count: int) -> int | None:
    """Bytes of ``count`` elements of a ggml type (whole blocks, as ggml stores them)."""
    try:
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(tensor_type)]
    except (ValueError, KeyError):
        return None
    return count // block * type_size
