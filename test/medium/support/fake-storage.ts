import { Readable } from 'node:stream';
import { StorageDriver } from '../../../src/modules/storage/storage-driver';

/** An in-memory StorageDriver whose writes can be held by a hook (a latch or barrier the test controls). */
export class FakeStorage extends StorageDriver {
  readonly files = new Map<string, Buffer>();
  /** Awaited inside put(), before the bytes are kept. */
  beforePut: (key: string) => Promise<void> = () => Promise.resolve();

  async put(key: string, data: Buffer): Promise<void> {
    await this.beforePut(key);
    this.files.set(key, Buffer.from(data));
  }

  get(key: string, range?: { start: number; end: number }): Promise<Readable | null> {
    const data = this.files.get(key);
    if (!data) {
      return Promise.resolve(null);
    }
    return Promise.resolve(Readable.from([range ? data.subarray(range.start, range.end + 1) : data]));
  }

  delete(key: string): Promise<void> {
    this.files.delete(key);
    return Promise.resolve();
  }

  list(): AsyncIterable<{ key: string; modifiedAt: Date }> {
    const keys = [...this.files.keys()];
    return (function* () {
      for (const key of keys) {
        yield { key, modifiedAt: new Date(0) };
      }
    })() as unknown as AsyncIterable<{ key: string; modifiedAt: Date }>;
  }

  removeTempsBefore(): Promise<number> {
    return Promise.resolve(0);
  }

  healthy(): Promise<boolean> {
    return Promise.resolve(true);
  }
}
