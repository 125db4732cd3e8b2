import { Worker } from 'node:worker_threads';
import { keepOrtTelemetryOff } from '../../../src/config/ort-telemetry';

export interface Feed {
  type: 'float32' | 'uint8';
  data: Float32Array | Uint8Array;
  dims: number[];
}

export interface Fetched {
  data: Float32Array;
  dims: number[];
}

/*
 * Under jest, onnxruntime-node's output tensors fail its own `instanceof Float32Array` check (they come from
 * the outer realm), so tests run sessions in a worker thread, as the server does.
 */
const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
ort.InferenceSession.create(workerData.model, { intraOpNumThreads: 1 }).then((session) => {
  parentPort.on('message', async ({ id, feeds }) => {
    try {
      const tensors = {};
      for (const [name, f] of Object.entries(feeds)) tensors[name] = new ort.Tensor(f.type, f.data, f.dims);
      const result = await session.run(tensors);
      const out = {};
      for (const name of session.outputNames) {
        out[name] = { data: Float32Array.from(result[name].data), dims: [...result[name].dims] };
      }
      parentPort.postMessage({ id, out, outputNames: session.outputNames });
    } catch (e) {
      parentPort.postMessage({ id, error: String(e && e.message || e) });
    }
  });
  parentPort.postMessage({ ready: true });
}, (e) => parentPort.postMessage({ failed: String(e && e.message || e) }));
`;

/** One ONNX session in a worker thread, for tests that feed tensors directly. */
export class OnnxRunner {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: Fetched[]) => void; reject: (e: Error) => void }
  >();

  private constructor(private readonly worker: Worker) {
    worker.on(
      'message',
      (m: { id: number; out?: Record<string, Fetched>; outputNames?: string[]; error?: string }) => {
        const job = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error !== undefined || !m.out || !m.outputNames) {
          job?.reject(new Error(m.error));
        } else {
          job?.resolve(m.outputNames.map((n) => m.out![n]));
        }
      },
    );
  }

  static create(model: Uint8Array | string): Promise<OnnxRunner> {
    // As the service's inference workers: no usage telemetry from the tests' sessions either.
    keepOrtTelemetryOff();
    const worker = new Worker(SOURCE, {
      eval: true,
      workerData: { ortPath: require.resolve('onnxruntime-node'), model },
    });
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (m: { ready?: boolean; failed?: string }) =>
        m.ready ? resolve(new OnnxRunner(worker)) : reject(new Error(m.failed)),
      );
    });
  }

  /** Runs the feeds and returns the outputs in the session's output order. */
  run(feeds: Record<string, Feed>): Promise<Fetched[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, feeds });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
