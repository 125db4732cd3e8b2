/** Separates an original's filename from a variant key in a storage key; filenames never contain it. */
export const VARIANT_SEPARATOR = '__';

/**
 * Where a variant's bytes are stored: `FIXITFY-xxxxxxxxxxxx.png__w320_h0_inside_webp`, beside the original (same
 * shard) and within the drivers' key rules (`[A-Za-z0-9._-]`, at most 128 characters).
 */
export function variantStorageKey(filename: string, key: string): string {
  return `${filename}${VARIANT_SEPARATOR}${key}`;
}

/** The original's filename a stored key belongs to (the key itself for an original); the janitor's liveness test. */
export function originalOfStorageKey(storageKey: string): string {
  const at = storageKey.indexOf(VARIANT_SEPARATOR);
  return at === -1 ? storageKey : storageKey.slice(0, at);
}
