// DataProgress front end: a bar with rows done/total, rows/s, ETA, cached rows and errors.
// The kernel sets all fields together; this only draws them.

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "lmj-dp";
  const label = document.createElement("span");
  label.className = "lmj-dp-title";
  const track = document.createElement("div");
  track.className = "lmj-dp-track";
  const fill = document.createElement("div");
  fill.className = "lmj-dp-fill";
  track.append(fill);
  const info = document.createElement("span");
  info.className = "lmj-dp-info";
  root.append(label, track, info);
  el.append(root);

  function draw() {
    const done = model.get("done");
    const total = model.get("total");
    const status = model.get("status");
    label.textContent = model.get("title");
    fill.style.width = `${total ? (100 * done) / total : 100}%`;
    root.dataset.status = status;
    const parts = [`${done}/${total} rows`, model.get("rate")];
    if (model.get("eta")) parts.push(model.get("eta"));
    if (model.get("cached")) parts.push(`${model.get("cached")} cached`);
    if (model.get("errors")) parts.push(`${model.get("errors")} errors`);
    if (status === "running") parts.push("interrupt the kernel to stop: finished rows are kept");
    else parts.push(status);
    info.textContent = parts.join(" | ");
  }
  model.on("change", draw);
  draw();
}

export default { render };
