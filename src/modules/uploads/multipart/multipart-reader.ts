import busboy from 'busboy';
import type { IncomingMessage } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { finished, Transform, Writable } from 'node:stream';
import { AppError } from '../../../common/errors/app-error';
import { parseTags } from '../tags';
import { continueIfAsked } from '../../../common/http/expect-continue';

export interface ReceivedFile {
  /**
   * The bytes exactly as uploaded: in memory when they fit in SINK_BUFFER_BYTES (or in the memory the limits lent),
   * else in a temp file (the caller removes it).
   */
  body: { data: Buffer; path?: undefined } | { path: string; data?: undefined };
  /** SHA-256 of the bytes as uploaded, computed while streaming. */
  sha256: string;
  /** Bytes of the file as uploaded. */
  size: number;
  tags: string[];
  /** The raw `expires_in` / `expires_at` text parts (API.md Part 3), checked by the caller. */
  expiry: { expiresIn?: string; expiresAt?: string };
}

export interface MultipartLimits {
  /** The largest file accepted: exactly this many bytes pass, one more is 413. */
  maxFileBytes: number;
  tempDir: string;
  /** A body that sends nothing for this long is cut off (400) and its temp file removed. */
  idleTimeoutMs: number;
  /** Memory the body may keep past SINK_BUFFER_BYTES instead of going to a temp file (BodyMemory). */
  memory?: BodyMemory;
}

/**
 * Memory lent to one body being received, past the SINK_BUFFER_BYTES every body may hold: take() asks for more as
 * chunks arrive (false: none left, and the body goes to its temp file); giveBack() returns all of it (idempotent).
 * The lender may want it back before the body is in: it calls the listener given to onRecall, and the body goes to
 * its temp file at once and gives the memory back.
 */
export interface BodyMemory {
  take(bytes: number): boolean;
  giveBack(): void;
  onRecall(listener: () => void): void;
}

/**
 * How far the temp file's writes may trail the body before the socket is paused. At the default 16 KB nearly every
 * 64 KB chunk paused the socket until its write came back, and the client stalled with it: a 7.7 MB body took
 * 20–23 ms to receive in the service instead of 11–13 ms. 1 MB per upload in flight is the most it costs in memory.
 */
export const SINK_BUFFER_BYTES = 1024 * 1024;

/** The most of a text part busboy reads (a longer `tags` part is refused with 400, not cut). */
export const MULTIPART_FIELD_BYTES = 4096;

/**
 * Where a file part goes: into memory up to SINK_BUFFER_BYTES (what an upload in flight may hold anyway), and beyond
 * that as far as `memory` lends; into a temp file created at `path` once it grows past both. Most images are small:
 * they skip the temp file's create, write, read back and remove (about 2 ms of a 16×16 PNG's upload, 6–7 ms of a 1.9 MB
 * GIF's).
 */
class SpillSink extends Writable {
  private chunks: Buffer[] | null = [];
  private held = 0;
  /** The temp file, once the body outgrew memory: made after its directory. */
  private file: Promise<WriteStream> | null = null;
  private whole: Buffer | null = null;
  /** Why the temp file could not be made or written (the server's fault, not the client's). */
  failure: Error | null = null;

  constructor(
    private readonly path: string,
    private readonly tempDir: string,
    private readonly memory?: BodyMemory,
  ) {
    // Its own queue stays small: what it holds (in memory, or in the temp file's write buffer) is the bound.
    super();
    // Only while the body is still coming in to memory: not once it is whole, gone to its file, or destroyed.
    memory?.onRecall(() => {
      if (this.chunks) {
        void this.spill();
      }
    });
  }

  /** Once finished, the whole body when it stayed in memory; null when it went to the temp file. */
  get data(): Buffer | null {
    return this.whole;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.chunks && this.mayHold(chunk.length)) {
      this.chunks.push(chunk);
      this.held += chunk.length;
      done();
      return;
    }
    const file = this.spill();
    // Writable calls _write once at a time: the chunks reach the file in order.
    file.then((stream) => (stream.write(chunk) ? done() : stream.once('drain', () => done())), done);
  }

  override _final(done: (error?: Error | null) => void): void {
    if (!this.file) {
      this.whole = Buffer.concat(this.chunks ?? [], this.held);
      // The body is whole in memory: a recall from now on finds nothing to move.
      this.chunks = null;
      done();
      return;
    }
    this.file.then((file) => {
      finished(file, (err) => done(err));
      file.end();
    }, done);
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.chunks = null;
    this.memory?.giveBack();
    // The temp file closes before the sink does: an open() still pending would re-create the file after the caller
    // removed it.
    void (this.file ?? Promise.resolve(null))
      .catch(() => null)
      .then((file) => {
        if (!file || file.closed) {
          done(error);
          return;
        }
        file.once('close', () => done(error));
        file.destroy();
      });
  }

  /**
   * The temp file, started with what is held in memory (which goes to it), once: when the body outgrows memory, or
   * when the memory lent to it is recalled. The loan ends here: the held chunks are the file's writes now.
   */
  private spill(): Promise<WriteStream> {
    if (!this.file) {
      const held = this.chunks ?? [];
      this.chunks = null;
      this.memory?.giveBack();
      this.file = this.open(held);
      this.file.catch((err: Error) => (this.failure ??= err));
    }
    return this.file;
  }

  /** Whether a chunk of `bytes` more may stay in memory: within SINK_BUFFER_BYTES, or lent for the part past it. */
  private mayHold(bytes: number): boolean {
    const after = this.held + bytes;
    if (after <= SINK_BUFFER_BYTES) {
      return true;
    }
    return this.memory?.take(after - Math.max(this.held, SINK_BUFFER_BYTES)) ?? false;
  }

  /** The temp file, started with what was held in memory. */
  private async open(held: Buffer[]): Promise<WriteStream> {
    await mkdir(this.tempDir, { recursive: true });
    const file = createWriteStream(this.path, { flags: 'wx', mode: 0o600, highWaterMark: SINK_BUFFER_BYTES });
    file.on('error', (err) => {
      this.failure ??= err;
      this.destroy(err);
    });
    for (const chunk of held) {
      file.write(chunk);
    }
    return file;
  }
}

/** A new temp file's path in `tempDir` (the janitor removes what a crash leaves there). */
function tempPath(tempDir: string): string {
  return join(tempDir, `upload-${randomBytes(12).toString('hex')}`);
}

/**
 * The same upload with its body in a temp file: for a body held in memory that is about to wait (for the byte
 * budget), so that a queue of uploads waits on disk, not in memory. A body already on disk is returned as it is.
 */
export async function moveBodyToDisk(received: ReceivedFile, tempDir: string): Promise<ReceivedFile> {
  if (received.body.data === undefined) {
    return received;
  }
  const path = tempPath(tempDir);
  try {
    await mkdir(tempDir, { recursive: true });
    await writeFile(path, received.body.data, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    await rm(path, { force: true }).catch(() => undefined);
    throw new AppError('storage_failed', undefined, { cause: err });
  }
  return { ...received, body: { path } };
}

/** Whether the request's body is declared multipart/form-data (with its parameters), as receiveUpload takes it. */
export function isMultipart(req: IncomingMessage): boolean {
  return /^multipart\/form-data\s*;/i.test(req.headers['content-type'] ?? '');
}

/**
 * Streams a multipart/form-data upload with busboy, hashing as it goes, into memory or, past SINK_BUFFER_BYTES and
 * what `limits.memory` lends, a temp file (SpillSink). At most one `file` part of at most maxFileBytes; the body is
 * never held in memory beyond SINK_BUFFER_BYTES and that loan. Errors are the contract's codes. The caller gives the
 * loan back once it has the body.
 */
export async function receiveUpload(req: IncomingMessage, limits: MultipartLimits): Promise<ReceivedFile> {
  if (!isMultipart(req)) {
    throw new AppError('bad_request', 'Expected a multipart/form-data body with a "file" part.');
  }
  let bb: busboy.Busboy;
  try {
    bb = busboy({
      headers: req.headers,
      limits: {
        // busboy emits 'limit' on *reaching* fileSize; API.md refuses only files *over* 20 MB.
        fileSize: limits.maxFileBytes + 1,
        files: 1,
        fields: 10,
        fieldSize: MULTIPART_FIELD_BYTES,
        parts: 20,
        headerPairs: 50,
      },
    });
  } catch {
    throw new AppError('bad_request', 'Malformed multipart/form-data header.');
  }
  const path = tempPath(limits.tempDir);
  // Everything that could refuse the upload without its body has been checked: a client waiting to send it may.
  continueIfAsked(req);

  const received = new Promise<ReceivedFile>((resolve, reject) => {
    let fileSeen = false;
    let fileDone: Promise<Pick<ReceivedFile, 'body' | 'size' | 'sha256'>> | null = null;
    let tagsRaw: string | undefined;
    const expiry: ReceivedFile['expiry'] = {};
    let failed = false;
    let sink: SpillSink | null = null;

    const fail = (err: AppError): void => {
      if (failed) {
        return;
      }
      failed = true;
      // Stop parsing and discard the rest of the body without buffering it; the connection is not reused.
      req.unpipe(bb);
      req.resume();
      // Close the temp file before removing it: its open() may still be pending and would re-create it.
      const closed =
        sink && !sink.closed ? once(sink.destroy(), 'close').catch(() => undefined) : Promise.resolve();
      void closed
        .then(() => rm(path, { force: true }))
        .catch(() => undefined)
        .finally(() => reject(err));
    };

    bb.on('file', (name, stream) => {
      if (name !== 'file') {
        stream.resume();
        return;
      }
      if (fileSeen) {
        stream.resume();
        fail(new AppError('bad_request', 'Send exactly one "file" part.'));
        return;
      }
      fileSeen = true;
      const hash = createHash('sha256');
      let size = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          size += chunk.length;
          cb(null, chunk);
        },
      });
      stream.on('limit', () => fail(new AppError('too_large')));
      const into = new SpillSink(path, limits.tempDir, limits.memory);
      sink = into;
      fileDone = pipeline(stream, counter, into).then(() => {
        const data = into.data;
        return { body: data ? { data } : { path }, size, sha256: hash.digest('hex') };
      });
      // The temp file failing is the server's storage (500 storage_failed); anything else, the client's body.
      fileDone.catch(() =>
        fail(
          into.failure
            ? new AppError('storage_failed', undefined, { cause: into.failure })
            : new AppError('bad_request', 'The upload was interrupted.'),
        ),
      );
    });
    bb.on('field', (name, value, info) => {
      if (name === 'tags') {
        if (info.valueTruncated) {
          fail(new AppError('bad_request', 'The "tags" field is too long.'));
        }
        // Several `tags` parts (curl -F tags=a -F tags=b, Python's data={'tags': [...]}) add up, as one list would;
        // the last one alone used to win, and the others were lost without a word.
        tagsRaw =
          tagsRaw === undefined || tagsRaw.trim() === ''
            ? value
            : value.trim() === ''
              ? tagsRaw
              : `${tagsRaw},${value}`;
      } else if ((name === 'expires_in' || name === 'expires_at') && value.trim() !== '') {
        // An empty part is a field left blank (an HTML form, Swagger UI's "Try it out" send one): not an expiry.
        const field = name === 'expires_in' ? 'expiresIn' : 'expiresAt';
        if (expiry[field] !== undefined) {
          // Two expiries for one upload: which one was meant cannot be told.
          fail(new AppError('bad_request', `Send at most one "${name}" part.`));
        }
        expiry[field] = value;
      }
    });
    bb.on('filesLimit', () => fail(new AppError('bad_request', 'Send exactly one "file" part.')));
    bb.on('partsLimit', () => fail(new AppError('bad_request', 'Too many multipart parts.')));
    bb.on('fieldsLimit', () => fail(new AppError('bad_request', 'Too many multipart fields.')));
    bb.on('error', () => fail(new AppError('bad_request', 'Malformed multipart/form-data body.')));
    req.on('aborted', () => fail(new AppError('bad_request', 'The upload was interrupted.')));
    // The socket's own inactivity timer, armed only while the body streams: a client that declared a longer body
    // and stalls would otherwise hold a socket and a temp file until the request timeout. The answer closes the
    // connection, since the rest of the declared body will never be read.
    req.setTimeout(limits.idleTimeoutMs, () =>
      fail(
        new AppError(
          'bad_request',
          `The upload stalled: no data arrived for ${Math.round(limits.idleTimeoutMs / 1000)} s.`,
          { headers: { Connection: 'close' } },
        ),
      ),
    );
    bb.on('close', () => {
      if (failed) {
        return;
      }
      if (!fileDone) {
        fail(new AppError('missing_file'));
        return;
      }
      fileDone
        .then(({ body, size, sha256 }) => {
          if (failed) {
            return;
          }
          if (size === 0) {
            fail(new AppError('empty_file'));
            return;
          }
          let tags: string[];
          try {
            tags = parseTags(tagsRaw);
          } catch (err) {
            fail(err as AppError);
            return;
          }
          resolve({ body, sha256, size, tags, expiry });
        })
        .catch(() => undefined);
    });
    req.pipe(bb);
  });
  // Disarm the idle timer once the body is in (or refused): decoding and review may take longer than it.
  return received.finally(() => req.setTimeout(0));
}
