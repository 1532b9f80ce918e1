// Maths typesetting by the page's MathJax, lent by lm_jupyter's JupyterLab extension through
// this DOM event (labextension/src/maths.ts documents it): a listener cancels the event and puts
// the typesetting's promise in its detail. Each maths element is typeset once and its output kept
// by TeX source: a redraw that makes the element again (a streaming paragraph, 20 times a second)
// gets a copy, so only new maths is typeset. Where no one listens (VS Code, Colab, no extension)
// the event is not cancelled and the element stays TeX source. data-typeset on each element:
// pending, done or source.
const TYPESET_EVENT = "lm-jupyter:typeset";

function mathsTypesetter(root) {
  const typeset = new Map(); // TeX source -> its typeset nodes, or null where typesetting failed
  const pending = new Set(); // TeX sources being typeset
  let waiting = false;
  let closed = false;

  function start(node, tex) {
    const request = new CustomEvent(TYPESET_EVENT, { bubbles: true, cancelable: true, detail: {} });
    if (node.dispatchEvent(request)) {
      node.dataset.typeset = "source"; // no typesetter on this page
      return;
    }
    pending.add(tex);
    node.dataset.typeset = "pending";
    // the element was drawn again meanwhile (a streaming paragraph): its successor is typeset instead
    const redrawn = () => !node.isConnected && delete node.dataset.typeset;
    const kept = () => {
      if (redrawn()) return;
      typeset.set(tex, [...node.childNodes].map((child) => child.cloneNode(true)));
      node.dataset.typeset = "done";
    };
    const failed = (err) => {
      if (redrawn()) return;
      console.warn("lm_jupyter: maths not typeset", err);
      typeset.set(tex, null);
      node.dataset.typeset = "source";
    };
    request.detail.done.then(kept, failed).finally(() => {
      pending.delete(tex);
      pass(); // other elements with the same maths get their copy
    });
  }

  function pass() {
    const fresh = root.querySelectorAll(".lmj-math:not([data-typeset])");
    if (closed || !fresh.length) return;
    if (!root.isConnected) {
      // the event reaches the page's listener only from an element in the page: wait for that
      if (!waiting) {
        waiting = true;
        requestAnimationFrame(() => {
          waiting = false;
          pass();
        });
      }
      return;
    }
    for (const node of fresh) {
      const tex = node.dataset.tex;
      const nodes = typeset.get(tex);
      if (nodes) {
        node.replaceChildren(...nodes.map((child) => child.cloneNode(true)));
        node.dataset.typeset = "done";
      } else if (nodes === null) node.dataset.typeset = "source";
      else if (!pending.has(tex)) start(node, tex);
    }
  }

  return { pass, close: () => (closed = true) };
}
