// ModelManager front end: model table, load panel (sliders + memory-estimate bars), loaded
// instances with a TTL countdown. Sends {type: "load" | "unload" | "refresh"} to the kernel.

const GIB = 1024 ** 3;
const gib = (bytes) => `${(bytes / GIB).toFixed(2)} GiB`;
const size = (bytes) => (bytes >= GIB ? gib(bytes) : `${(bytes / 1024 ** 2).toFixed(1)} MiB`);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function countdown(ms) {
  if (ms === null || ms === undefined) return "—";
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : `${m}m ${String(s % 60).padStart(2, "0")}s`;
}

// One bar: what the load needs against what is free; red when it does not fit.
function bar(label, need, free, refused) {
  const row = el("div", "lmj-mm-bar");
  const fits = free > 0 ? need <= free : need === 0;
  row.classList.toggle("lmj-mm-bar-bad", refused || !fits);
  row.dataset.kind = label;
  const track = el("div", "lmj-mm-track");
  const fill = el("div", "lmj-mm-fill");
  fill.style.width = `${free > 0 ? Math.min(100, (100 * need) / free) : need > 0 ? 100 : 0}%`;
  track.append(fill);
  const caption = free > 0 ? `${gib(need)} of ${gib(free)} free` : need > 0 ? `${gib(need)} (none available)` : "none";
  row.append(el("span", "lmj-mm-bar-label", label), track, el("span", "lmj-mm-bar-value", caption));
  return row;
}

function render({ model, el: root }) {
  root.classList.add("lmj-mm");
  const header = el("div", "lmj-mm-header");
  const title = el("strong", "", "Models");
  const status = el("span", "lmj-mm-status");
  const refresh = el("button", "lmj-mm-refresh", "⟳ Refresh");
  refresh.addEventListener("click", () => model.send({ type: "refresh" }));
  header.append(title, status, refresh);

  const table = el("table", "lmj-mm-models");
  const panel = el("div", "lmj-mm-panel");
  const loadedTitle = el("div", "lmj-mm-subtitle", "Loaded");
  const loaded = el("table", "lmj-mm-loaded");
  // Downloads: reserved for download progress bars (`%lms get`); the server route for
  // download jobs does not exist in this version, so nothing is drawn here yet.
  const downloads = el("div", "lmj-mm-downloads");
  root.append(header, table, panel, loadedTitle, loaded, downloads);

  const sliders = el("div", "lmj-mm-sliders");
  const ctxLabel = el("label", "", "Context length ");
  const ctx = el("input", "lmj-mm-context");
  ctx.type = "range";
  ctx.min = "512";
  ctx.step = "256";
  const ctxValue = el("span", "lmj-mm-context-value");
  ctxLabel.append(ctx, ctxValue);
  const gpuLabel = el("label", "", "GPU offload ");
  const gpu = el("input", "lmj-mm-gpu");
  gpu.type = "range";
  gpu.min = "0";
  gpu.max = "1";
  gpu.step = "0.05";
  const gpuValue = el("span", "lmj-mm-gpu-value");
  gpuLabel.append(gpu, gpuValue);
  sliders.append(ctxLabel, gpuLabel);
  const bars = el("div", "lmj-mm-bars");
  const verdict = el("div", "lmj-mm-verdict");
  const loadButton = el("button", "lmj-mm-load", "Load");
  const panelTitle = el("div", "lmj-mm-subtitle");
  panel.append(panelTitle, sliders, bars, verdict, loadButton);

  // Sliders send their value when released (change), and show it while dragging (input).
  ctx.addEventListener("input", () => (ctxValue.textContent = Number(ctx.value).toLocaleString()));
  ctx.addEventListener("change", () => {
    model.set("context_length", Number(ctx.value));
    model.save_changes();
  });
  gpu.addEventListener("input", () => (gpuValue.textContent = `${Math.round(gpu.value * 100)}%`));
  gpu.addEventListener("change", () => {
    model.set("gpu", Number(gpu.value));
    model.save_changes();
  });
  loadButton.addEventListener("click", () => model.send({ type: "load", model: model.get("selected") }));

  function drawModels() {
    table.replaceChildren();
    const head = el("tr");
    for (const h of ["Model", "Params", "Arch", "Quant", "Size", "Capabilities", "Loaded"]) head.append(el("th", "", h));
    table.append(head);
    for (const m of model.get("models")) {
      const variants = m.variants.length > 1 ? m.variants : [{ key: m.key, quantization: m.quantization, size_bytes: m.size_bytes }];
      for (const v of variants) {
        const row = el("tr", "lmj-mm-model");
        row.dataset.key = v.key;
        row.classList.toggle("lmj-mm-selected", v.key === model.get("selected"));
        row.append(
          el("td", "", v.key),
          el("td", "", m.params),
          el("td", "", m.architecture),
          el("td", "", v.quantization),
          el("td", "", size(v.size_bytes)),
          el("td", "", m.capabilities.join(", ")),
          el("td", "", m.loaded ? String(m.loaded) : ""),
        );
        row.addEventListener("click", () => {
          model.set("selected", v.key);
          model.save_changes();
        });
        table.append(row);
      }
    }
  }

  function drawPanel() {
    const key = model.get("selected");
    panel.style.display = key ? "" : "none";
    if (!key) return;
    const entry = model.get("models").find((m) => m.key === key || m.variants.some((v) => v.key === key));
    panelTitle.textContent = `Load ${key}`;
    ctx.max = String(entry ? entry.max_context_length : 32768);
    ctx.value = String(model.get("context_length"));
    ctxValue.textContent = Number(model.get("context_length")).toLocaleString();
    gpu.value = String(model.get("gpu"));
    gpuValue.textContent = `${Math.round(model.get("gpu") * 100)}%`;
    bars.replaceChildren();
    const est = model.get("estimate");
    if (!est || !est.memory) {
      verdict.textContent = "";
      return;
    }
    const refused = !est.passesGuardrails;
    bars.append(
      bar("GPU", est.memory.totalVramBytes, est.available ? est.available.vram_bytes : 0, refused && est.memory.totalVramBytes > 0),
      bar("Total", est.memory.totalBytes, est.available ? est.available.ram_bytes + est.available.vram_bytes : 0, refused),
    );
    verdict.textContent = refused ? "Will not fit: lower the context length or the GPU offload." : "Fits in memory.";
    verdict.classList.toggle("lmj-mm-bad", refused);
  }

  function drawLoaded() {
    loaded.replaceChildren();
    const rows = model.get("loaded");
    loadedTitle.textContent = rows.length ? "Loaded" : "Loaded: none";
    if (!rows.length) return;
    const head = el("tr");
    for (const h of ["Identifier", "Model", "Status", "Queue", "Context", "Memory", "TTL", ""]) head.append(el("th", "", h));
    loaded.append(head);
    const age = Date.now() - model.get("refreshed_at");
    for (const r of rows) {
      const row = el("tr", "lmj-mm-instance");
      row.dataset.id = r.identifier;
      const ttl = el("td", "lmj-mm-ttl", r.ttlRemainingMs === null ? "—" : countdown(r.ttlRemainingMs - age));
      ttl.dataset.remaining = r.ttlRemainingMs === null ? "" : String(r.ttlRemainingMs);
      const unload = el("button", "lmj-mm-unload", "Unload");
      unload.addEventListener("click", () => model.send({ type: "unload", id: r.identifier }));
      const cell = el("td");
      cell.append(unload);
      row.append(
        el("td", "", r.identifier),
        el("td", "", r.modelKey),
        el("td", `lmj-mm-state lmj-mm-state-${r.status}`, r.status),
        el("td", "", String(r.queued)),
        el("td", "", Number(r.contextLength).toLocaleString()),
        el("td", "", r.memoryBytes ? size(r.memoryBytes) : ""),
        ttl,
        cell,
      );
      loaded.append(row);
    }
  }

  function drawStatus() {
    status.textContent = model.get("busy") || model.get("error") || model.get("message");
    status.classList.toggle("lmj-mm-bad", !model.get("busy") && Boolean(model.get("error")));
    loadButton.disabled = Boolean(model.get("busy"));
  }

  const tick = setInterval(() => {
    const age = Date.now() - model.get("refreshed_at");
    for (const cell of loaded.querySelectorAll(".lmj-mm-ttl")) {
      if (cell.dataset.remaining) cell.textContent = countdown(Number(cell.dataset.remaining) - age);
    }
  }, 1000);

  const handlers = {
    "change:models": () => (drawModels(), drawPanel()),
    "change:selected": () => (drawModels(), drawPanel()),
    "change:estimate": drawPanel,
    "change:context_length": drawPanel,
    "change:gpu": drawPanel,
    "change:loaded": drawLoaded,
    "change:refreshed_at": drawLoaded,
    "change:busy": drawStatus,
    "change:error": drawStatus,
    "change:message": drawStatus,
  };
  for (const [event, handler] of Object.entries(handlers)) model.on(event, handler);
  drawModels();
  drawPanel();
  drawLoaded();
  drawStatus();
  return () => {
    clearInterval(tick);
    for (const [event, handler] of Object.entries(handlers)) model.off(event, handler);
  };
}

export default { render };
