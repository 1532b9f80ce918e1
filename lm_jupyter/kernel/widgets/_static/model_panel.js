// ModelPanel front end: model table, load panel (sliders + memory-estimate bars), loaded
// instances with a TTL countdown, and the download box (Hub search, variants, progress bars).
// Sends {type: "load" | "unload" | "refresh" | "search" | "options" | "download" | "pause"}
// to the kernel, which does the work on its own threads and answers by setting traits.

// The figures `lmj` and `%lms` print (client/tables.py format_size): base 1024, two decimals.
function size(bytes) {
  let value = bytes;
  for (const unit of ["B", "KiB", "MiB", "GiB"]) {
    if (value < 1024) return unit === "B" ? `${Math.trunc(value)} B` : `${value.toFixed(2)} ${unit}`;
    value /= 1024;
  }
  return `${value.toFixed(2)} TiB`;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  // JupyterLab's own button look (theme colours, light/dark/high contrast)
  if (tag === "button") node.classList.add("jp-Button", "jp-mod-styled", "jp-mod-reject");
  return node;
}

function countdown(ms) {
  if (ms === null || ms === undefined) return "—";
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : `${m}m ${String(s % 60).padStart(2, "0")}s`;
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
  const downloads = el("div", "lmj-mm-downloads");
  root.append(header, table, panel, loadedTitle, loaded, downloads);

  // The download box: the search form stays put (typing is never redrawn away); results,
  // variants and jobs are redrawn from the kernel's traits.
  const search = el("form", "lmj-mm-search");
  const query = el("input", "lmj-mm-query");
  query.type = "search";
  query.placeholder = "Search Hugging Face: gemma 3, owner/repo, owner/repo@Q4_K_M";
  query.value = model.get("hub_query");
  const searchButton = el("button", "lmj-mm-search-button", "Search");
  searchButton.type = "submit";
  const hubStatus = el("span", "lmj-mm-hub-status");
  search.append(el("strong", "", "Download "), query, searchButton, hubStatus);
  search.addEventListener("submit", (event) => {
    event.preventDefault();
    event.stopPropagation();
    model.send({ type: "search", query: query.value });
  });
  // Keys typed here are the text box's, not the notebook's shortcuts (a, b, dd, Enter, ...).
  query.dataset.lmSuppressShortcuts = "true";
  query.addEventListener("keydown", (event) => event.stopPropagation());
  const results = el("table", "lmj-mm-results");
  const options = el("div", "lmj-mm-options");
  const jobs = el("div", "lmj-mm-jobs");
  downloads.append(search, results, options, jobs);

  function button(cls, text, message) {
    const node = el("button", cls, text);
    node.addEventListener("click", (event) => {
      event.stopPropagation();
      model.send(message);
    });
    return node;
  }

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
  gpuLabel.style.display = "none"; // until an estimate says this machine has a GPU
  sliders.append(ctxLabel, gpuLabel);
  const bars = el("div", "lmj-mm-bar-area");
  const verdict = el("div", "lmj-mm-verdict");
  const where = el("div", "lmj-mm-where");
  const loadButton = el("button", "lmj-mm-load", "Load");
  loadButton.classList.replace("jp-mod-reject", "jp-mod-accept");
  const panelTitle = el("div", "lmj-mm-subtitle");
  panel.append(panelTitle, sliders, bars, verdict, where, loadButton);

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
    const est = model.get("estimate");
    const chosen = model.get("gpu"); // null: the server's automatic offload (all that fits)
    const offload = chosen === null ? (est && est.gpu_offload) || 0 : chosen;
    gpu.value = String(offload);
    gpuValue.textContent = `${Math.round(offload * 100)}%${chosen === null ? " (auto)" : ""}`;
    bars.replaceChildren();
    if (!est || !est.bars) {
      verdict.textContent = where.textContent = "";
      return;
    }
    gpuLabel.style.display = est.gpu_usable ? "" : "none"; // GPU controls only where one is usable
    bars.append(memoryBars(est.bars));
    verdict.textContent = est.verdict;
    where.textContent = `Runs ${est.where}.`;
    verdict.classList.toggle("lmj-mm-bad", !est.passesGuardrails);
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

  function drawResults() {
    results.replaceChildren();
    const shown = model.get("hub_options").repo;
    for (const r of model.get("hub_results")) {
      const row = el("tr", "lmj-mm-result");
      row.dataset.repo = r.repo;
      row.classList.toggle("lmj-mm-selected", r.repo === shown);
      const name = el("td", "", r.repo);
      if (r.exact_match) name.append(el("span", "lmj-mm-tag", "exact match"));
      const cell = el("td", "lmj-mm-actions");
      cell.append(
        button("lmj-mm-show-options", "Variants", { type: "options", repo: r.repo }),
        button("lmj-mm-download", "Download", { type: "download", model: r.repo }),
      );
      row.append(name, el("td", "", r.quantizations.join(", ")), el("td", "", r.sizes), cell);
      row.addEventListener("click", () => model.send({ type: "options", repo: r.repo }));
      results.append(row);
    }
  }

  function drawOptions() {
    options.replaceChildren();
    const o = model.get("hub_options");
    if (!o.repo) return;
    options.append(el("div", "lmj-mm-subtitle", `${o.repo}: variants`));
    const list = el("table", "lmj-mm-variants");
    for (const v of o.variants) {
      const row = el("tr", "lmj-mm-variant");
      row.dataset.quantization = v.quantization;
      row.classList.toggle("lmj-mm-recommended", v.recommended);
      const notes = el("td", v.fits ? "" : "lmj-mm-bad", v.fit);
      if (v.recommended) notes.append(el("span", "lmj-mm-tag", "recommended"));
      if (v.downloaded) notes.append(el("span", "lmj-mm-tag", "downloaded"));
      const cell = el("td", "lmj-mm-actions");
      cell.append(button("lmj-mm-download", "Download", { type: "download", model: o.repo, quantization: v.quantization }));
      row.append(el("td", "", v.quantization), el("td", "", v.size), el("td", "", v.name), notes, cell);
      list.append(row);
    }
    options.append(list);
  }

  function drawJobs() {
    jobs.replaceChildren();
    for (const j of model.get("downloads")) {
      const row = el("div", "lmj-mm-job");
      row.dataset.id = j.job_id;
      row.dataset.model = j.model;
      row.dataset.status = j.status;
      const track = el("div", "lmj-mm-track");
      const fill = el("div", "lmj-mm-fill lmj-mm-job-fill");
      fill.style.width = `${(100 * j.ratio).toFixed(1)}%`;
      track.append(fill);
      let caption = `${j.percent} · ${j.bytes}`;
      if (j.status === "downloading" && j.speed) caption += ` · ${j.speed} · ETA ${j.eta}`;
      if (j.status === "paused") caption = `Paused at ${caption}`;
      if (j.status === "completed") caption = `Done: ${j.model_key || j.model} · ${j.bytes}`;
      if (j.status === "failed") caption = `Failed: ${j.error}`;
      const value = el("span", `lmj-mm-job-value${j.status === "failed" ? " lmj-mm-bad" : ""}`, caption);
      const cell = el("span", "lmj-mm-actions");
      if (j.status === "downloading") cell.append(button("lmj-mm-pause", "Pause", { type: "pause", id: j.job_id }));
      if (j.status === "paused" || j.status === "failed") {
        const again = j.status === "paused" ? "Resume" : "Retry";
        cell.append(button("lmj-mm-resume", again, { type: "download", model: j.model, quantization: j.quantization }));
      }
      row.append(el("span", "lmj-mm-job-name", `${j.model} ${j.quantization}`), track, value, cell);
      jobs.append(row);
    }
  }

  function drawHubStatus() {
    hubStatus.textContent = model.get("hub_error") || model.get("hub_status");
    hubStatus.classList.toggle("lmj-mm-bad", Boolean(model.get("hub_error")));
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
    "change:hub_results": drawResults,
    "change:hub_options": () => (drawResults(), drawOptions()),
    "change:downloads": drawJobs,
    "change:hub_status": drawHubStatus,
    "change:hub_error": drawHubStatus,
  };
  for (const [event, handler] of Object.entries(handlers)) model.on(event, handler);
  drawModels();
  drawPanel();
  drawLoaded();
  drawStatus();
  drawResults();
  drawOptions();
  drawJobs();
  drawHubStatus();
  return () => {
    clearInterval(tick);
    for (const [event, handler] of Object.entries(handlers)) model.off(event, handler);
  };
}

export default { render };
