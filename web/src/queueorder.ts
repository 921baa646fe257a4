// moveItem returns list with the item at from moved to index to (the
// others keep their order); indices out of range give the list unchanged.
export function moveItem<T>(list: readonly T[], from: number, to: number): T[] {
  const out = [...list];
  if (from < 0 || from >= out.length || to < 0 || to >= out.length || from === to) return out;
  const [x] = out.splice(from, 1);
  out.splice(to, 0, x);
  return out;
}

// dropIndex is where a dragged row lands: the number of the other rows
// whose middle lies above the pointer (y, in the rows' coordinates).
export function dropIndex(y: number, others: readonly { top: number; height: number }[]): number {
  let n = 0;
  for (const r of others) if (r.top + r.height / 2 < y) n++;
  return n;
}
