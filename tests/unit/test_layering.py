"""The import graph keeps DESIGN's layering (docs/architecture.md, "Package layout"): imports
point downward only, and no module imports itself back through others.

Read from the source with ``ast`` (every ``import``, also those inside functions), so a lazy
import cannot hide an upward arrow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lm_jupyter"

# What each layer may import besides itself. The most specific prefix of a module's name
# decides its layer. The package root only declares extension points (kernel, server).
ALLOWED: dict[str, set[str]] = {
    "api": set(),
    "chat": {"api"},
    "hub": {"api"},
    "engine": {"api", "chat", "hub"},  # the server side: never a backend
    "engine.worker": {"api", "chat", "engine"},  # the worker process and its backends
    "server": {"api", "chat", "engine", "hub"},
    "client": {"api"},
    "kernel": {"api", "client", "kernel.widgets"},
    "kernel.widgets": {"api", "client"},
    "cli": {"api", "client", "hub"},
    "data": {"api", "client", "kernel.widgets"},  # llm.map/classify/embed: a client with a progress bar
    "llm": {"data"},  # `from lm_jupyter import llm`: the public face of data/
    "kernel.llm_magics": {"api", "client", "kernel", "llm"},  # %%llm: llm's functions as a magic
}
# What the worker process takes from the server side's engine: the wire protocol, and the
# process's own resident memory (the figure the memory estimate is checked against).
WORKER_SHARES = {"lm_jupyter.engine.protocol", "lm_jupyter.engine.hardware"}
# Inference engines: imported only inside the worker process, never by the server side.
ENGINES = {"llama_cpp", "mlx", "mlx_lm"}
# The package root (extension points) and its version, which any layer may read.
ROOT = {"lm_jupyter", "lm_jupyter._version"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, *, external: bool = False) -> Iterator[str]:
    """The lm_jupyter modules ``name`` imports (``from pkg import mod`` counts as ``pkg.mod``);
    with ``external``, the other packages it imports instead."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [_submodule_or(base, alias.name) for alias in node.names]
        else:
            continue
        yield from (target for target in targets if (target.split(".")[0] == "lm_jupyter") != external)


def _submodule_or(package: str, name: str) -> str:
    return f"{package}.{name}" if f"{package}.{name}" in MODULES else package


GRAPH = {name: set(imports(name, path)) for name, path in MODULES.items()}


def layer(module: str) -> str | None:
    """The most specific layer in ALLOWED that ``module`` belongs to (None: the package root)."""
    parts = module.split(".")[1:]
    for size in range(len(parts), 0, -1):
        candidate = ".".join(parts[:size])
        if candidate in ALLOWED:
            return candidate
    return None


def test_every_module_belongs_to_a_layer() -> None:
    assert {name for name in MODULES if layer(name) is None} == ROOT


def test_imports_point_downward_only() -> None:
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in GRAPH.items()
        for target in targets
        if (source_layer := layer(source)) is not None
        and target != "lm_jupyter._version"
        and (target_layer := layer(target)) != source_layer
        and target_layer not in ALLOWED[source_layer]
    )
    assert upward == []


def test_the_worker_shares_only_the_protocol_with_the_server() -> None:
    shared = {
        f"{source} -> {target}"
        for source, targets in GRAPH.items()
        if layer(source) == "engine.worker"
        for target in targets
        if layer(target) == "engine" and target not in WORKER_SHARES
    }
    assert shared == set()


def test_only_the_worker_imports_an_engine() -> None:
    """The Jupyter server process never loads llama.cpp or MLX: a backend is the worker's."""
    engines = {
        f"{name} -> {target}"
        for name, path in MODULES.items()
        if layer(name) != "engine.worker"
        for target in imports(name, path, external=True)
        if target.split(".")[0] in ENGINES
    }
    assert engines == set()


def test_no_import_cycles() -> None:
    visiting: list[str] = []
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        if module in visiting:
            cycles.append([*visiting[visiting.index(module) :], module])
            return
        if module in done:
            return
        visiting.append(module)
        for target in sorted(GRAPH.get(module, ())):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(GRAPH):
        visit(module)
    assert cycles == []


def test_modules_stay_small() -> None:
    """One job per module: a file that grows past 450 lines is doing several."""
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    assert {name: size for name, size in sizes.items() if size >= 450} == {}
