// The live %%chat widget's Markdown (lm_jupyter/kernel/widgets/_static/chat_markdown.js), tested
// with this project's JavaScript test runner: which text becomes a maths element for MathJax.
import { describe, expect, it } from 'vitest';

// @ts-expect-error: a plain ES module without types, shipped with the kernel widgets
import { markdown } from '../../lm_jupyter/kernel/widgets/_static/chat_markdown.js';

const inline = (tex: string) => `<span class="lmj-math" data-tex="${tex}">${tex}</span>`;
const display = (tex: string) => `<span class="lmj-math lmj-math-display" data-tex="${tex}">${tex}</span>`;

describe('chat markdown maths', () => {
  it('keeps each maths span as its TeX source with delimiters, in an element of its own', () => {
    expect(markdown('Energy is $E = mc^2$, and \\(a_1 * b_1 * c\\) too.')).toBe(
      `<p>Energy is ${inline('$E = mc^2$')}, and ${inline('\\(a_1 * b_1 * c\\)')} too.</p>`
    );
    expect(markdown('Sum:\n$$\n\\sum_{i=1}^n i = \\frac{n(n+1)}{2}\n$$\nso **done**.')).toBe(
      `<p>Sum:${display('$$\n\\sum_{i=1}^n i = \\frac{n(n+1)}{2}\n$$')}so <strong>done</strong>.</p>`
    );
    expect(markdown('a\n$b$\nc')).toBe(`<p>a<br>${inline('$b$')}<br>c</p>`); // inline: line breaks stay
    expect(markdown('- \\[x < y\\]')).toBe(`<ul><li>${display('\\[x &lt; y\\]')}</li></ul>`);
  });

  it('finds maths where the saved Markdown copy does (_markdown.py), and nowhere else', () => {
    expect(markdown('It costs $5 and $10.')).toBe('<p>It costs $5 and $10.</p>');
    expect(markdown('`$x$` and\n```python\ny = "$a$"\n```\n$b$')).toBe(
      `<p><code>$x$</code> and</p><pre><code class="language-python">y = &quot;$a$&quot;</code></pre><p>${inline('$b$')}</p>`
    );
    expect(markdown('> quoted $q_1$ and $q_2$')).toBe(
      `<blockquote><p>quoted ${inline('$q_1$')} and ${inline('$q_2$')}</p></blockquote>`
    );
  });

  it('leaves an unclosed span (a streaming answer) as text until it closes', () => {
    expect(markdown('So $\\frac{a}{b')).toBe('<p>So $\\frac{a}{b</p>');
    expect(markdown('So $$\\int_0^1 x')).toBe('<p>So $$\\int_0^1 x</p>');
    expect(markdown('So $\\frac{a}{b}$')).toBe(`<p>So ${inline('$\\frac{a}{b}$')}</p>`);
  });
});
