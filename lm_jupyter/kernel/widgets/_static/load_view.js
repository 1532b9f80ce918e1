// LoadView front end: the estimate's memory bars, a progress bar while the model loads, then
// the measured memory beside the estimate. The kernel sets every trait; this only draws.

function render({ model, el: root }) {
  const box = document.createElement("div");
  box.className = "lmj-load";
  root.append(box);

  function span(cls, text) {
    const node = document.createElement("span");
    node.className = cls;
    node.textContent = text;
    return node;
  }

  function draw() {
    const status = model.get("status");
    box.dataset.status = status;
    box.replaceChildren();
    const head = document.createElement("div");
    head.className = "lmj-load-head";
    const name = model.get("identifier") || model.get("model");
    const title = { estimate: "Load", loading: "Loading", loaded: "Loaded", error: "Load failed:", interrupted: "Load interrupted:" }[status];
    head.append(span("lmj-load-title", `${title} `), span("lmj-load-model", name), span("lmj-load-where", model.get("where")));
    box.append(head, memoryBars(model.get("bars")));

    const progress = document.createElement("div");
    progress.className = "lmj-load-progress";
    const track = span("lmj-mm-track", "");
    const fill = span("lmj-mm-fill", "");
    const ratio = model.get("progress");
    fill.style.display = "block";
    fill.style.width = `${(100 * ratio).toFixed(1)}%`;
    track.append(fill);
    const percent = `${Math.round(100 * ratio)}%`;
    progress.append(span("lmj-mm-bar-label", "Load"), track, span("lmj-load-percent", ratio >= 1 ? `${percent}, warming up…` : percent));
    box.append(progress);

    const verdict = span(model.get("fits") ? "lmj-load-verdict" : "lmj-load-verdict lmj-load-verdict-bad", model.get("verdict"));
    const foot = document.createElement("div");
    foot.className = "lmj-load-foot";
    if (status === "loaded") {
      const measured = model.get("measured");
      if (measured) foot.append(span("lmj-load-measured", `Measured: ${measured}`), span("lmj-load-note", ` (estimate ${model.get("estimated")}). `));
      foot.append(span("lmj-load-note", model.get("message")));
    } else if (status === "error") {
      foot.append(span("lmj-load-error", model.get("error")));
    } else if (status === "interrupted") {
      foot.append(span("lmj-load-note", model.get("message")));
    } else {
      foot.append(verdict);
    }
    box.append(foot);
  }
  model.on("change", draw);
  draw();
  return () => model.off("change", draw);
}

export default { render };
