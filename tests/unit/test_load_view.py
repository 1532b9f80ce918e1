"""The load view's parts: the server's progress bookkeeping, following a load in a listing, the
estimate's bars and the LoadView's states and Markdown copy (``%lms load``)."""

from __future__ import annotations

from typing import Any

from lm_jupyter.client.estimate_view import estimate_bars, where_text
from lm_jupyter.client.load_follow import LoadState, load_state
from lm_jupyter.client.tables import format_size
from lm_jupyter.kernel.widgets import LoadView
from lm_jupyter.server.load_progress import LoadProgress

MIB = 1 << 20


def _listing(*instances: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": "me/tiny", "variants": ["me/tiny@f32"], "loaded_instances": list(instances)}]


def _estimate(vram: int = 0, passes: bool = True, offload: float = 0.0) -> dict[str, Any]:
    return {
        "model": "me/tiny",
        "gpu_offload": offload,
        "memory": {"totalBytes": 300 * MIB, "totalVramBytes": 200 * MIB if vram else 0},
        "passesGuardrails": passes,
        "available": {"ram_bytes": 1024 * MIB, "vram_bytes": vram},
    }


def test_load_progress_annotates_loading_instances_until_their_load_ends() -> None:
    progress = LoadProgress()
    progress.manager_event("load_progress", {"identifier": "me/tiny", "key": "me/tiny", "progress": 0.4})
    progress.manager_event("prediction_input", {"prompt": "x"})  # other events: ignored
    models = progress.annotate(
        _listing({"id": "me/tiny", "status": "loading"}, {"id": "b", "status": "idle"})
    )
    loading, idle = models[0]["loaded_instances"]
    assert loading["load_progress"] == 0.4 and "load_progress" not in idle
    fresh = progress.annotate(_listing({"id": "other", "status": "loading"}))
    assert fresh[0]["loaded_instances"][0]["load_progress"] == 0.0  # no report yet
    progress.manager_event("loaded", {"identifier": "me/tiny"})
    assert progress.progress == {}


def test_load_state_finds_the_loading_instance_first() -> None:
    assert load_state(_listing(), "me/tiny") == LoadState("absent")
    loading = {"id": "me/tiny:2", "status": "loading", "load_progress": 0.5}
    loaded = {"id": "me/tiny", "status": "idle", "memory_bytes": 123}
    assert load_state(_listing(loaded, loading), "me/tiny") == LoadState("loading", "me/tiny:2", 0.5)
    assert load_state(_listing(loaded), "ME/TINY@f32") == LoadState("loaded", "me/tiny", 1.0, 123)
    assert load_state(_listing(loaded, loading), "me/tiny", identifier="me/tiny") == LoadState(
        "loaded", "me/tiny", 1.0, 123
    )
    assert load_state(_listing(loaded), "me/tiny", identifier="other").state == "absent"


def test_estimate_bars_show_gpu_only_where_there_is_gpu_memory() -> None:
    (total,) = estimate_bars(_estimate())
    assert total["label"] == "Total" and total["caption"] == "300.00 MiB of 1.00 GiB free"
    assert total["need"] == format_size(300 * MIB) and not total["bad"]
    gpu, total = estimate_bars(_estimate(vram=100 * MIB, offload=0.5))
    assert gpu["label"] == "GPU" and gpu["bad"] and gpu["fill"] == 1.0  # 200 MiB of 100 free
    assert total["room"] == "1.10 GiB"
    assert all(bar["bad"] for bar in estimate_bars(_estimate(passes=False)))
    assert where_text(_estimate(offload=0.5)) == "on the GPU and CPU (50% of the layers on the GPU)"


def test_load_view_states_and_copy() -> None:
    view = LoadView("me/tiny", _estimate())
    try:
        assert view.status == "estimate" and view.fits and view.estimated == "300.00 MiB"
        view.show_progress(0.25, "me/tiny")
        view.show_progress(0.1)  # a late, older report does not move the bar back
        assert (view.status, view.progress, view.progress_text()) == ("loading", 0.25, "25%")
        view.show_progress(1.0)
        assert view.progress_text() == "100%, warming up…"
        view.loaded("me/tiny", 290 * MIB, "Model loaded successfully in 0.50s.")
        copy = view.static()._repr_mimebundle_()
        assert set(copy) == {"text/markdown", "text/plain"}  # no widget view to lose on a reopen
        text = copy["text/markdown"]
        assert '<div class="lmj-static lmj-load-static" data-status="loaded">' in text
        assert "**Loaded `me/tiny`** on the CPU. Model loaded successfully in 0.50s." in text
        assert "| Total | 300.00 MiB | 1.00 GiB | 290.00 MiB |" in text and "Fits in memory." in text
    finally:
        view.close()
    failed = LoadView("me/tiny", _estimate(passes=False))
    failed.failed("Model loading was stopped <because>")
    assert "**Load of `me/tiny` failed:** *Model loading was stopped &lt;because>*" in failed.markdown()
    assert "Will not fit" in failed.markdown()
    failed.close()
