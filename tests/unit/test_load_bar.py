"""Text progress bars: the shared `bar` and `lmj load`'s frames."""

from __future__ import annotations

from lm_jupyter.cli.load_bar import bar_line
from lm_jupyter.client.download_view import bar


def test_frames_fill_with_the_progress():
    assert bar_line(0.0, width=10) == "Loading model [          ]   0.0%"
    assert bar_line(0.518, width=10) == "Loading model [█████▏    ]  51.8%"
    assert bar_line(1.0, width=10) == "Loading model [██████████] 100.0%"


def test_cells_fill_by_eighths():
    assert bar(0.0, width=4) == "[    ]" and bar(0.5, width=4) == "[██  ]"
    assert bar(0.04, width=4) == "[▏   ]"  # an eighth of the first cell
    assert bar(0.25 - 1e-9, width=4) == "[▉   ]"
    assert bar(1.0, width=4) == "[████]"


def test_out_of_range_progress_is_clamped():
    assert bar_line(-0.2, width=4) == bar_line(0.0, width=4)
    assert bar_line(1.7, width=4) == bar_line(1.0, width=4)
