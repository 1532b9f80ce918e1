import { describe, expect, it } from 'vitest';

import { fimContext } from '../src/model/context';

describe('fill-in-the-middle context', () => {
  it('splits the cell at the cursor', () => {
    expect(fimContext([], 'def f(x):\n    return x', 14, 100, 100)).toEqual({
      prefix: 'def f(x):\n    ',
      suffix: 'return x'
    });
  });

  it('puts the code cells above first, nearest last, as far as the budget goes', () => {
    const above = ['import os', 'import sys\n\n\n', 'x = 1'];
    expect(fimContext(above, 'y = ', 4, 100, 100).prefix).toBe('import os\n\nimport sys\n\nx = 1\n\ny = ');
    // 'x = 1\n\n' (7) fits beside 'y = ' (4) in 12; 'import sys\n\n' (12) would not.
    expect(fimContext(above, 'y = ', 4, 12, 100).prefix).toBe('x = 1\n\ny = ');
  });

  it('keeps the end of a long cell and the start of its rest', () => {
    const text = 'a'.repeat(50) + 'b'.repeat(50);
    const { prefix, suffix } = fimContext(['above'], text, 50, 10, 5);
    expect(prefix).toBe('a'.repeat(10));
    expect(suffix).toBe('bbbbb');
  });
});
