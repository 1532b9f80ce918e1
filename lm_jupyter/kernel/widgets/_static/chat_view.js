// ChatView front end: renders the blocks the kernel streams (≤ 20 updates/s) and sends
// {type: "stop"}, {type: "decide", id, allow} and {type: "insert", code} back. No
// dependencies: works offline. The Python side puts chat_markdown.js (the Markdown) and
// maths.js (maths typeset by the page's MathJax where lm_jupyter's JupyterLab extension lends
// it, else shown as TeX source) in front of this file.

// Code highlighting in JupyterLab's own editor colours (its theme variables, so light, dark and
// high contrast follow the user's theme): keywords, strings, comments and numbers.
const KEYWORDS = new Set(
  ("and as assert async await break case catch class const continue def default del do elif else enum " +
    "except export extends false False finally fn for from func function if impl import in is lambda let " +
    "match mut new nil None nonlocal not null or pass pub raise return self static struct switch this " +
    "throw true True try type typeof use var void while with yield").split(" "),
);
const HASH_COMMENTS = new Set(["", "python", "py", "python3", "ipython", "sh", "bash", "shell", "zsh", "r",
  "ruby", "rb", "yaml", "yml", "toml", "perl", "julia", "dockerfile", "makefile"]);
const STRINGS = String.raw`"""[\s\S]*?"""|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|\x60(?:\\.|[^\x60\\])*\x60`;
const NUMBER = String.raw`\b\d+(?:\.\d+)?\b`;

export function highlight(code, language) {
  const comment = HASH_COMMENTS.has(language.toLowerCase()) ? String.raw`#[^\n]*` : String.raw`\/\/[^\n]*|\/\*[\s\S]*?\*\/`;
  const token = new RegExp(`(${comment})|(${STRINGS})|(${NUMBER})|([A-Za-z_]\\w*)`, "g");
  let out = "";
  let last = 0;
  for (const match of code.matchAll(token)) {
    const [text, isComment, isString, isNumber, word] = match;
    const kind = isComment ? "comment" : isString ? "string" : isNumber ? "number" : KEYWORDS.has(word) ? "keyword" : "";
    out += escapeHtml(code.slice(last, match.index));
    out += kind ? `<span class="lmj-hl-${kind}">${escapeHtml(text)}</span>` : escapeHtml(text);
    last = match.index + text.length;
  }
  return out + escapeHtml(code.slice(last));
}

const BUSY = new Set(["waiting", "processing", "thinking", "answering", "calling", "approval", "running"]);
const LABELS = {
  waiting: "Waiting for the model…",
  processing: "Processing the prompt…",
  thinking: "Thinking…",
  answering: "Answering…",
  calling: "Calling a tool…",
  approval: "Waiting for your approval",
  running: "Running a tool…",
  stopped: "Stopped",
  error: "Error",
};

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  // JupyterLab's own button look (theme colours, light/dark/high contrast)
  if (tag === "button") node.classList.add("jp-Button", "jp-mod-styled", "jp-mod-reject");
  return node;
}

// A fenced code block of an answer: highlighted, with Copy and "Insert as cell" (the kernel
// puts the code in a new cell below this one when the cell finishes: IPython's set_next_input).
function codeBlock(text, language, send) {
  const pre = el("pre", "lmj-code");
  const code = el("code", `language-${language}`);
  code.innerHTML = highlight(text, language);
  const tools = el("div", "lmj-code-tools");
  const copy = el("button", "lmj-code-copy", "Copy");
  copy.title = "Copy the code to the clipboard";
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      copy.textContent = "Copied";
    } catch (err) {
      copy.textContent = "Copy failed";
    }
  });
  const insert = el("button", "lmj-code-insert", "Insert as cell");
  insert.title = "Add a code cell with this code below this one (when this cell finishes)";
  insert.addEventListener("click", () => {
    send({ type: "insert", code: text });
    insert.textContent = "Will insert below";
    insert.disabled = true;
  });
  tools.append(copy, insert);
  pre.append(tools, code);
  return pre;
}

// An answer as prose and fenced code, in order (a still-open fence is code so far).
function segments(source) {
  const out = [];
  const lines = source.split("\n");
  let prose = [];
  let i = 0;
  while (i < lines.length) {
    const fence = lines[i].match(/^```(\w*)/);
    if (!fence) {
      prose.push(lines[i++]);
      continue;
    }
    if (prose.length) out.push({ kind: "prose", text: prose.join("\n") });
    prose = [];
    const body = [];
    i += 1;
    while (i < lines.length && !lines[i].startsWith("```")) body.push(lines[i++]);
    out.push({ kind: "code", language: fence[1], text: body.join("\n"), closed: i < lines.length });
    i += 1;
  }
  if (prose.length) out.push({ kind: "prose", text: prose.join("\n") });
  return out;
}

// Children made by items ({key, make}) in order, keeping the node of an item whose key has not
// changed since the last update: a code block's buttons (and a selection) survive the 20 Hz
// redraws of a streaming answer, so a click is never lost to a redraw.
function reconcile(parent, items) {
  const kept = parent.lmjKept || [];
  const nodes = items.map((item, i) => (kept[i] && kept[i].key === item.key ? kept[i].node : item.make()));
  nodes.forEach((node, i) => {
    const current = parent.children[i];
    if (current === node) return;
    if (current) parent.replaceChild(node, current);
    else parent.append(node);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
  parent.lmjKept = items.map((item, i) => ({ key: item.key, node: nodes[i] }));
}

function render({ model, el: root }) {
  root.classList.add("lmj-chat");
  const header = el("div", "lmj-chat-header");
  const who = el("span", "lmj-chat-model");
  const state = el("span", "lmj-chat-status");
  const stop = el("button", "lmj-chat-stop", "Stop");
  stop.title = "Stop generating (cancels the request on the server)";
  header.append(who, state, stop);
  const prompt = el("div", "lmj-chat-prompt");
  const prefill = el("div", "lmj-chat-prefill");
  const bar = el("div", "lmj-chat-prefill-bar");
  const done = el("div", "lmj-chat-prefill-done");
  const count = el("span", "lmj-chat-prefill-count");
  bar.append(done);
  prefill.append(bar, count);
  const body = el("div", "lmj-chat-body");
  const error = el("div", "lmj-chat-error");
  const footer = el("div", "lmj-chat-footer");
  root.append(header, prompt, prefill, body, error, footer);
  const open = new Map(); // reasoning <details> the user opened or closed, by block index
  const maths = mathsTypesetter(root);
  let shownPrompt = null; // drawn again only when it changes (its typeset maths would go)

  stop.addEventListener("click", () => {
    model.send({ type: "stop" });
    stop.disabled = true;
    stop.textContent = "Stopping…";
  });

  function toolCard(block) {
    const card = el("div", `lmj-tool lmj-tool-${block.status}`);
    card.dataset.id = block.id;
    const title = el("div", "lmj-tool-title");
    title.append(el("span", "lmj-tool-icon", "Tool"), el("code", "lmj-tool-name", block.name || "…"));
    title.append(el("span", "lmj-tool-state", block.status));
    card.append(title, el("pre", "lmj-tool-args", block.arguments || ""));
    if (block.status === "pending") {
      const actions = el("div", "lmj-tool-actions");
      const allow = el("button", "lmj-tool-allow", "Run");
      allow.classList.replace("jp-mod-reject", "jp-mod-accept");
      const deny = el("button", "lmj-tool-deny", "Skip");
      allow.addEventListener("click", () => model.send({ type: "decide", id: block.id, allow: true }));
      deny.addEventListener("click", () => model.send({ type: "decide", id: block.id, allow: false }));
      actions.append(allow, deny);
      card.append(actions);
    }
    if (block.result !== null && block.result !== undefined) {
      card.append(el("div", "lmj-tool-result-label", "Result"), el("pre", "lmj-tool-result", block.result));
    }
    return card;
  }

  function update() {
    const status = model.get("status");
    const mode = model.get("reasoning_mode");
    who.textContent = model.get("model");
    state.textContent = LABELS[status] || "";
    state.dataset.status = status;
    root.dataset.status = status;
    stop.style.display = BUSY.has(status) ? "" : "none";
    if (BUSY.has(status) && stop.textContent !== "Stopping…") stop.disabled = false;
    if (model.get("prompt") !== shownPrompt) {
      shownPrompt = model.get("prompt");
      prompt.innerHTML = markdown(shownPrompt);
    }
    const progress = model.get("prefill");
    prefill.style.display = progress && progress.total ? "" : "none";
    if (progress && progress.total) {
      done.style.width = `${(100 * progress.processed) / progress.total}%`;
      count.textContent = `${progress.processed.toLocaleString()} / ${progress.total.toLocaleString()} prompt tokens`;
    }
    const send = (message) => model.send(message);
    const blocks = model.get("blocks");
    const items = [];
    blocks.forEach((block, index) => {
      if (block.type === "reasoning") {
        if (mode === "hide" || !block.text) return;
        const streaming = status === "thinking" && index === blocks.length - 1;
        items.push({
          key: JSON.stringify(["reasoning", index, streaming, mode, block.text]),
          make: () => {
            const details = el("details", "lmj-reasoning");
            details.open = open.has(index) ? open.get(index) : mode === "show" || streaming;
            details.addEventListener("toggle", () => open.set(index, details.open));
            const summary = el("summary", "", streaming ? "Thinking…" : "Reasoning");
            const text = el("div", "lmj-reasoning-text");
            text.innerHTML = markdown(block.text);
            details.append(summary, text);
            return details;
          },
        });
      } else if (block.type === "text") {
        const answer = { key: JSON.stringify(["text", index]), make: () => el("div", "lmj-answer") };
        items.push(answer);
        answer.parts = segments(block.text).map((part) => ({
          key: JSON.stringify(part),
          make: () => {
            if (part.kind === "code") return codeBlock(part.text, part.language, send);
            const prose = el("div", "lmj-prose");
            prose.innerHTML = markdown(part.text);
            return prose;
          },
        }));
      } else if (block.type === "tool") {
        items.push({ key: JSON.stringify(["tool", block]), make: () => toolCard(block) });
      }
    });
    reconcile(body, items);
    items.forEach((item, i) => item.parts && reconcile(body.children[i], item.parts));
    error.textContent = model.get("error");
    footer.textContent = model.get("footer");
    maths.pass();
  }

  for (const name of ["status", "blocks", "prompt", "model", "footer", "error", "reasoning_mode", "prefill"]) {
    model.on(`change:${name}`, update);
  }
  update();
  return () => {
    maths.close();
    for (const name of ["status", "blocks", "prompt", "model", "footer", "error", "reasoning_mode", "prefill"]) {
      model.off(`change:${name}`, update);
    }
  };
}

export default { render };
