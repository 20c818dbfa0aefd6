/** Uids are unsigned 32-bit integers. */
export const MAX_UID = 0xffff_ffff;
/** Seqs start at 1 and fit the same unsigned 32-bit column. */
export const MAX_SEQ = 0xffff_ffff;

export function isUid(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_UID;
}

export function isSeq(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_SEQ;
}

/** Parses a decimal uid from a path, query or token; null when it is not one. */
export function parseUid(text: string): number | null {
  if (!/^(0|[1-9]\d{0,9})$/.test(text)) return null;
  const value = Number(text);
  return value <= MAX_UID ? value : null;
}
