import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import sharp from 'sharp';

let applied = false;

/**
 * Process-wide sharp settings for a server that decodes untrusted uploads: libvips' operation cache (by default up
 * to 50 MB and 100 operations, keyed by their input buffers) never helps here, since no upload is decoded twice, and
 * only holds memory after a burst. Idempotent.
 */
export function limitSharpMemory(): void {
  if (!applied) {
    sharp.cache(false);
    applied = true;
  }
}

/** What libvips names the threads that do its pixel work (glib thread names, /proc/self/task/N/comm). */
const VIPS_THREAD = 'libvips worker';

/** The threads niceImageThreads has looked at (their ids); a full pass forgets them. */
const seen = new Set<number>();

/**
 * Lowers the CPU priority of libvips' worker threads to `nice` (Linux: a thread id is a valid `setPriority` target,
 * and niceness is per thread). The event loop (HTTP, health checks, hashing) then runs first when decodes fill both
 * cores; the decodes still get every idle cycle. libvips keeps its workers for reuse, so calling this now and then
 * catches the new ones. No-op elsewhere than Linux or for nice 0; returns how many threads were changed.
 *
 * Reading every thread's name took 1.4 ms (about 20 threads): the ImagePool calls this before each image's work, on
 * the upload's path, so a call looks only at threads it has not seen, and `full` (the pool's once-a-second pass)
 * looks at all of them again: a thread named after it was first seen, or an id the system gave to a new thread.
 */
export function niceImageThreads(nice: number, full = false): number {
  if (process.platform !== 'linux' || nice === 0) {
    return 0;
  }
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return 0;
  }
  if (full) {
    seen.clear();
  }
  let changed = 0;
  for (const tid of tids) {
    const id = Number(tid);
    if (seen.has(id)) {
      continue;
    }
    seen.add(id);
    try {
      if (readFileSync(`/proc/self/task/${tid}/comm`, 'latin1').trim() !== VIPS_THREAD) {
        continue;
      }
      if (getPriority(id) !== nice) {
        setPriority(id, nice);
        changed++;
      }
    } catch {
      // The thread ended meanwhile, or the priority cannot be set: leave it.
    }
  }
  return changed;
}
