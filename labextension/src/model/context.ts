/**
 * What the model sees around the cursor: the prefix is the cell up to the cursor with the code
 * cells above it (nearest first, until the character budget is spent), the suffix is the rest
 * of the cell. Budgets are in characters because the browser has no tokenizer; about four
 * characters make a token in code.
 */
export interface FimContext {
  prefix: string;
  suffix: string;
}

export function fimContext(
  cellsAbove: string[],
  text: string,
  offset: number,
  prefixBudget: number,
  suffixBudget: number
): FimContext {
  let prefix = text.slice(0, offset);
  if (prefix.length > prefixBudget) {
    prefix = prefix.slice(prefix.length - prefixBudget);
  }
  for (let i = cellsAbove.length - 1; i >= 0; i--) {
    const cell = cellsAbove[i].replace(/\n*$/, '\n\n');
    if (prefix.length + cell.length > prefixBudget) {
      break;
    }
    prefix = cell + prefix;
  }
  const suffix = text.slice(offset, offset + suffixBudget);
  return { prefix, suffix };
}
