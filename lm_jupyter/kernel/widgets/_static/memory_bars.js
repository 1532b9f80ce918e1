// Memory bars, shared by the model manager and the %lms load view (the Python side puts this
// file in front of each widget's module). The bars come from client/estimate_view.py's
// estimate_bars: the figures are format_size's, so a quantity reads the same everywhere.
function memoryBars(bars) {
  const out = document.createElement("div");
  out.className = "lmj-mm-bars";
  for (const b of bars) {
    const row = document.createElement("div");
    row.className = "lmj-mm-bar";
    row.classList.toggle("lmj-mm-bar-bad", b.bad);
    row.dataset.kind = b.label;
    const label = document.createElement("span");
    label.className = "lmj-mm-bar-label";
    label.textContent = b.label;
    const track = document.createElement("div");
    track.className = "lmj-mm-track";
    const fill = document.createElement("div");
    fill.className = "lmj-mm-fill";
    fill.style.width = `${(100 * b.fill).toFixed(1)}%`;
    track.append(fill);
    const caption = document.createElement("span");
    caption.className = "lmj-mm-bar-value";
    caption.textContent = b.caption;
    row.append(label, track, caption);
    out.append(row);
  }
  return out;
}
