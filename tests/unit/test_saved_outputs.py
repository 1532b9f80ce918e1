"""tests/e2e/saved_outputs.py: a saved notebook as GitHub's style-stripping viewer reads it."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from lm_jupyter.kernel.widgets._markdown import StaticOutput, twin_style
from tests.e2e.saved_outputs import WIDGET, problems, readable_text

VIEW = {"model_id": "abc", "version_major": 2, "version_minor": 0}


def _display(data: dict) -> nbformat.NotebookNode:
    return new_output("display_data", data=data)


def test_static_copies_read_as_text_without_their_styles() -> None:
    chat = StaticOutput("lmj-chat-static", "> hi\n\n**Hello** <sub>m · 3 tokens</sub>", "plain", "done")
    assert readable_text(_display(chat._repr_mimebundle_())) == "> hi **Hello** m · 3 tokens"
    twin = StaticOutput("lmj-mm-static", "| A |\n| --- |\n| 1 |", "x", style=twin_style("a", "b"))
    text = readable_text(_display(twin._repr_mimebundle_()))
    assert "jp-OutputArea" not in text and "| A |" in text  # the style is gone, the table stays
    assert readable_text(new_output("stream", name="stdout", text="done\n")) == "done"


def test_a_widget_needs_text_or_its_static_twin() -> None:
    panel = _display({WIDGET: VIEW, "text/plain": ""})
    twin = _display(StaticOutput("lmj-mm-static", "**Local models**", "x")._repr_mimebundle_())
    good = new_notebook(
        cells=[
            new_code_cell(outputs=[panel, twin]),
            new_code_cell(outputs=[_display({WIDGET: VIEW, "text/plain": "3/3 rows | done"})]),
        ]
    )
    assert problems(good) == []
    alone = new_notebook(cells=[new_code_cell(outputs=[panel])])  # reopened: "model not found", and nothing
    assert problems(alone) == ["cell 0, output 0: a widget view with no text and no static copy after it"]
    other = _display({"text/markdown": "<div>unrelated</div>"})
    assert problems(new_notebook(cells=[new_code_cell(outputs=[panel, other])]))  # not its twin
    styled = _display({"text/html": "<style>.x { color: red; }</style><div class='x'></div>"})
    assert problems(new_notebook(cells=[new_code_cell(outputs=[styled])])) == [
        "cell 0, output 0: only style, no text"
    ]
