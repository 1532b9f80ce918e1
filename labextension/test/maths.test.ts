import { describe, expect, it } from 'vitest';

import { ITypesetRequest, listenForTypeset, TYPESET_EVENT } from '../src/maths';

/** A request as chat_view.js makes it; `handled` is what its dispatchEvent says. */
function request(target: EventTarget, init: CustomEventInit = { cancelable: true, detail: {} }) {
  const event = new CustomEvent<ITypesetRequest>(TYPESET_EVENT, init);
  const handled = !target.dispatchEvent(event);
  return { handled, done: event.detail?.done };
}

describe('listenForTypeset', () => {
  it('takes a request: cancels it and hands back the typesetting as a promise', async () => {
    const typeset: unknown[] = [];
    let finish = () => {};
    const typesetter = {
      typeset: (element: HTMLElement) => {
        typeset.push(element);
        return new Promise<void>(resolve => (finish = resolve));
      }
    };
    const page = new EventTarget();
    listenForTypeset(page, typesetter);
    const { handled, done } = request(page);
    expect(handled).toBe(true);
    expect(typeset).toEqual([page]); // the element the event was dispatched on
    let settled = false;
    void done!.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false); // not before MathJax is done
    finish();
    await done;
    expect(settled).toBe(true);
  });

  it('answers a synchronous typesetter with a resolved promise, and a failing one with a rejected one', async () => {
    const page = new EventTarget();
    const stop = listenForTypeset(page, { typeset: () => undefined });
    await expect(request(page).done).resolves.toBeUndefined();
    stop();
    listenForTypeset(page, {
      typeset: () => {
        throw new Error('no MathJax');
      }
    });
    await expect(request(page).done).rejects.toThrow('no MathJax');
  });

  it('leaves alone requests not made as documented, and stops listening when asked', () => {
    const calls: unknown[] = [];
    const page = new EventTarget();
    const stop = listenForTypeset(page, { typeset: element => void calls.push(element) });
    expect(request(page, { cancelable: false, detail: {} }).handled).toBe(false);
    expect(request(page, { cancelable: true }).handled).toBe(false); // no detail to answer in
    stop();
    expect(request(page).handled).toBe(false); // no listener: the widget keeps the TeX source
    expect(calls).toEqual([]);
  });
});
