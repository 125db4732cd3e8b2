/** 1536 → "1.5 KB" (binary units, as the 20 MB limit is counted). */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) {
    return `${bytes} B`;
  }
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** When an upload goes away, as a person reads it: "expires in 59 minutes" / "expires in 3 days" / "expired". */
export function formatExpiry(iso: string, now = Date.now()): string {
  const ms = new Date(iso).getTime() - now;
  if (ms <= 0) {
    return 'expired';
  }
  const minutes = Math.ceil(ms / 60_000);
  if (minutes < 90) {
    return `expires in ${minutes} minute${minutes === 1 ? '' : 's'}`;
  }
  const hours = Math.round(minutes / 60);
  if (hours < 48) {
    return `expires in ${hours} hours`;
  }
  return `expires in ${Math.round(hours / 24)} days`;
}

/** An ISO timestamp in the reader's locale and time zone; "never" for null. */
export function formatDate(iso: string | null | undefined): string {
  return iso ? dateTime.format(new Date(iso)) : 'never';
}

/** The "expires after" choices (seconds; '' = never). */
export const EXPIRY_CHOICES: { label: string; seconds: string }[] = [
  { label: 'Never', seconds: '' },
  { label: '1 hour', seconds: '3600' },
  { label: '1 day', seconds: '86400' },
  { label: '1 week', seconds: '604800' },
  { label: '30 days', seconds: '2592000' },
];

/** Ends `text` with a full stop unless it already ends a sentence ("HTTP 500: down." never gets a second one). */
export function endSentence(text: string): string {
  const trimmed = text.trim();
  return /[.!?…]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

/** A server's sentence as a person reads one: a capital first letter and a full stop ("tag must be …" → "Tag must be ….") */
export function asSentence(text: string): string {
  const trimmed = text.trim();
  return endSentence(trimmed.charAt(0).toUpperCase() + trimmed.slice(1));
}
