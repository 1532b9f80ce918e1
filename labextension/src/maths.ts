/**
 * Maths in live widgets: the page's LaTeX typesetter lent to widget front ends.
 *
 * JupyterLab 4 and Notebook 7 typeset maths with MathJax 3 behind the `ILatexTypesetter` token,
 * which only their own plugins can reach; an anywidget's ESM (the live `%%chat` view) cannot.
 * This is the one hook between the two, a DOM event (nothing is put on `window`):
 *
 *   const request = new CustomEvent(TYPESET_EVENT, { bubbles: true, cancelable: true, detail: {} });
 *   const handled = !element.dispatchEvent(request); // element: in the page, holding `$x^2$` etc.
 *   if (handled) await request.detail.done;           // now MathJax output
 *
 * The listener cancels the event (so the widget knows it was taken) and puts the promise of the
 * typesetting in `detail.done`. The element's text is TeX with its delimiters (`$..$`, `$$..$$`,
 * `\(..\)`, `\[..\]`, the ones JupyterLab's MathJax looks for). Where no one listens (VS Code,
 * Colab, no lm_jupyter extension) nothing cancels the event and the widget keeps the TeX source.
 */
import type { ILatexTypesetter } from '@jupyterlab/rendermime';

/** The event's name; chat_view.js spells the same string. */
export const TYPESET_EVENT = 'lm-jupyter:typeset';

/** The event's detail: the listener fills in `done`. */
export interface ITypesetRequest {
  done?: Promise<void>;
}

/** Answer typeset requests that bubble up to `target` (the document); returns the un-listen. */
export function listenForTypeset(target: EventTarget, typesetter: ILatexTypesetter): () => void {
  const handle = (event: Event): void => {
    const detail = (event as CustomEvent<ITypesetRequest | null>).detail;
    if (!event.cancelable || typeof detail !== 'object' || detail === null) {
      return; // not a request made as documented: leave it to whoever sent it
    }
    event.preventDefault();
    // typeset() may be synchronous (void) or not (MathJax 3's Promise): one promise either way
    detail.done = new Promise<void>(resolve => resolve(typesetter.typeset(event.target as HTMLElement)));
  };
  target.addEventListener(TYPESET_EVENT, handle);
  return () => target.removeEventListener(TYPESET_EVENT, handle);
}
