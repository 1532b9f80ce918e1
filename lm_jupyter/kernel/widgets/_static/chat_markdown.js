// The chat view's Markdown: a small subset (fenced code, headings, lists, quotes, paragraphs,
// inline marks) with maths kept apart for the typesetter. ChatView puts this file in front of
// maths.js and chat_view.js (_assets.joined); labextension/test/chat_markdown.test.ts tests it.

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function inline(text) {
  return escapeHtml(text)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>")
    .replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, '<a href="$2" target="_blank" rel="noopener">$1</a>');
}

// Maths as the Markdown copy finds it (_markdown.py's _MATH, same rules, so the live view and
// the saved copy agree on what is maths): $$..$$ and \[..\] display, \(..\) and $..$ inline (a
// $ that opens precedes no space, one that closes follows no space and precedes no digit:
// "$5 and $10" stays text). Not in code spans or fenced code. An unclosed `$..` (an answer
// still streaming) is no match: it stays text until its closing delimiter arrives.
const CODE_SPAN = /(`+)[\s\S]+?\1/g;
const MATHS = /\$\$[\s\S]+?\$\$|\\\[[\s\S]+?\\\]|\\\([\s\S]+?\\\)|\$[^\s$](?:[^$\n]*?[^\s$])?\$(?!\d)/g;
// where a maths span was taken out (private-use characters), with the line breaks beside it
const HOLE = /(<br>)?\uE000(\d+)\uE001(<br>)?/g;

// The source with each maths span (outside code) replaced by a hole, and the spans, in order:
// the Markdown below then never sees TeX (its `*` and `_` are not emphasis).
function takeMaths(source) {
  const maths = [];
  const hole = (tex) => `\uE000${maths.push(tex) - 1}\uE001`;
  const holes = (text) => text.replace(MATHS, hole);
  const withoutSpans = (text) => {
    let out = "";
    let last = 0;
    for (const match of text.matchAll(CODE_SPAN)) {
      out += holes(text.slice(last, match.index)) + match[0];
      last = match.index + match[0].length;
    }
    return out + holes(text.slice(last));
  };
  // fenced code as blocks() below sees it: from a line starting with ``` to the next such line
  const out = [];
  let prose = [];
  let fenced = false;
  const flush = () => {
    if (prose.length) out.push(withoutSpans(prose.join("\n")));
    prose = [];
  };
  for (const line of source.split("\n")) {
    if (line.startsWith("```")) {
      flush();
      fenced = !fenced;
      out.push(line);
    } else if (fenced) out.push(line);
    else prose.push(line);
  }
  flush();
  return { text: out.join("\n"), maths };
}

// A maths span in an element of its own, as TeX source with its delimiters (what MathJax finds);
// data-tex keeps the source once MathJax has replaced the text (maths.js keys its output by it).
// Display maths is a block of its own: the line breaks of its paragraph around it go.
function mathsHtml(before, tex, after) {
  const display = tex.startsWith("$$") || tex.startsWith("\\[");
  const source = escapeHtml(tex);
  const span = `<span class="lmj-math${display ? " lmj-math-display" : ""}" data-tex="${source}">${source}</span>`;
  return display ? span : `${before || ""}${span}${after || ""}`;
}

// A small Markdown subset: fenced code, headings, lists, quotes, paragraphs, inline marks, maths.
export function markdown(source) {
  const { text, maths } = takeMaths(source);
  return blocks(text).replace(HOLE, (_, before, i, after) => mathsHtml(before, maths[Number(i)], after));
}

function blocks(source) {
  const lines = source.split("\n");
  const html = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^```(\w*)/);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].startsWith("```")) body.push(lines[i++]);
      i += 1; // closing fence (or the end of a still-streaming block)
      html.push(`<pre><code class="language-${fence[1]}">${escapeHtml(body.join("\n"))}</code></pre>`);
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      html.push(`<h${heading[1].length}>${inline(heading[2])}</h${heading[1].length}>`);
      i += 1;
      continue;
    }
    if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      const ordered = /^\s*\d/.test(line);
      const items = [];
      while (i < lines.length && /^\s*([-*+]|\d+[.)])\s+/.test(lines[i])) {
        items.push(`<li>${inline(lines[i].replace(/^\s*([-*+]|\d+[.)])\s+/, ""))}</li>`);
        i += 1;
      }
      html.push(ordered ? `<ol>${items.join("")}</ol>` : `<ul>${items.join("")}</ul>`);
      continue;
    }
    if (line.startsWith(">")) {
      const quoted = [];
      while (i < lines.length && lines[i].startsWith(">")) quoted.push(lines[i++].replace(/^>\s?/, ""));
      html.push(`<blockquote>${blocks(quoted.join("\n"))}</blockquote>`);
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !/^(```|#{1,6}\s|>|\s*([-*+]|\d+[.)])\s)/.test(lines[i])) {
      para.push(inline(lines[i++]));
    }
    html.push(`<p>${para.join("<br>")}</p>`);
  }
  return html.join("");
}
