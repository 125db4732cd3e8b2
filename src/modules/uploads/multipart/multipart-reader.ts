import busboy from 'busboy';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import type { Request } from 'express';
import { AppError } from '../../../common/errors/app-error';
import { parseTags } from '../tags';

export interface ReceivedFile {
  /** A temp file holding the bytes exactly as uploaded; the caller removes it. */
  path: string;
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
}

/**
 * How far the temp file's writes may trail the body before the socket is paused. At the default 16 KB nearly every
 * 64 KB chunk paused the socket until its write came back, and the client stalled with it: a 7.7 MB body took
 * 20–23 ms to receive in the service instead of 11–13 ms. 1 MB per upload in flight is the most it costs in memory.
 */
const SINK_BUFFER_BYTES = 1024 * 1024;

/**
 * Streams a multipart/form-data upload to a temp file with busboy, hashing as it goes. At most one `file` part
 * of at most maxFileBytes; the body is never held in memory beyond the file's write buffer (SINK_BUFFER_BYTES). Errors
 * are the contract's codes.
 */
export async function receiveUpload(req: Request, limits: MultipartLimits): Promise<ReceivedFile> {
  const type = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data\s*;/i.test(type)) {
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
        fieldSize: 4096,
        parts: 20,
        headerPairs: 50,
      },
    });
  } catch {
    throw new AppError('bad_request', 'Malformed multipart/form-data header.');
  }
  await mkdir(limits.tempDir, { recursive: true });
  const path = join(limits.tempDir, `upload-${randomBytes(12).toString('hex')}`);

  const received = new Promise<ReceivedFile>((resolve, reject) => {
    let fileSeen = false;
    let fileDone: Promise<{ size: number; sha256: string }> | null = null;
    let tagsRaw: string | undefined;
    const expiry: ReceivedFile['expiry'] = {};
    let failed = false;
    let sink: WriteStream | null = null;

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
      void closed.then(() => rm(path, { force: true })).finally(() => reject(err));
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
      sink = createWriteStream(path, { flags: 'wx', mode: 0o600, highWaterMark: SINK_BUFFER_BYTES });
      fileDone = pipeline(stream, counter, sink).then(() => ({
        size,
        sha256: hash.digest('hex'),
      }));
      fileDone.catch(() => fail(new AppError('bad_request', 'The upload was interrupted.')));
    });
    bb.on('field', (name, value, info) => {
      if (name === 'tags') {
        if (info.valueTruncated) {
          fail(new AppError('bad_request', 'The "tags" field is too long.'));
        }
        tagsRaw = value;
      } else if (name === 'expires_in') {
        expiry.expiresIn = value;
      } else if (name === 'expires_at') {
        expiry.expiresAt = value;
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
        .then(({ size, sha256 }) => {
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
          resolve({ path, sha256, size, tags, expiry });
        })
        .catch(() => undefined);
    });
    req.pipe(bb);
  });
  // Disarm the idle timer once the body is in (or refused): decoding and review may take longer than it.
  return received.finally(() => req.setTimeout(0));
}
