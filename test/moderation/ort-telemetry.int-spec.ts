import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeColourModel } from '../fixtures/moderation/make-colour-model';

/**
 * onnxruntime-node 1.30 reports usage to Microsoft from Linux unless ORT_DISABLE_TELEMETRY=1 when it starts; its traces
 * are a device id and an offline event cache under $HOME/.cache/Microsoft and a `mat-debug-<pid>.log` and `.ses` in
 * $TMPDIR (keepOrtTelemetryOff). The case loads a real session through InferenceWorker in a process of its own, with a
 * HOME and a TMPDIR of its own, and reads what the runtime left there. Without keepOrtTelemetryOff it fails: the
 * device id, the cache, the log and `.ses` are all there (with ORT_DISABLE_TELEMETRY=0 likewise). No case here turns
 * the telemetry on: on a machine with a network it would report the test's session (its DNS lookup of
 * mobile.events.data.microsoft.com was seen). That the operator's own value is kept is keepOrtTelemetryOff's unit test.
 */
describe('onnxruntime usage telemetry', () => {
  const root = mkdtempSync(join(tmpdir(), 'fxf-ort-telemetry-'));
  const modelPath = join(root, 'colour.onnx');

  beforeAll(async () => {
    await writeColourModel(modelPath);
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  /** The files onnxruntime's telemetry writes in TMPDIR. */
  const fromOrt = (file: string): boolean => file === '.ses' || /^mat-debug-/.test(file);

  /** Loads one session in a fresh process; resolves with what it saw and what the runtime wrote under HOME and TMPDIR. */
  async function loadSession(name: string): Promise<{ setting: string; home: string[]; tmp: string[] }> {
    const home = join(root, `${name}-home`);
    const tmp = join(root, `${name}-tmp`);
    for (const dir of [home, tmp]) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
    }
    const script = `
      const { InferenceWorker } = require('./src/modules/moderation/inference-worker');
      InferenceWorker.acquire(${JSON.stringify(modelPath)}, { threads: 1 }).then(async (worker) => {
        // The uploader writes its files while the session starts and shortly after: give it that time.
        await new Promise((resolve) => setTimeout(resolve, 1500));
        await worker.release();
        process.stdout.write(String(process.env.ORT_DISABLE_TELEMETRY));
        process.exit(0);
      }, (error) => { console.error(error); process.exit(1); });
    `;
    const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
      cwd: join(__dirname, '..', '..'),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) {
      throw new Error(`the session's process exited with ${code}: ${err}`);
    }
    return { setting: out, home: readdirSync(home), tmp: readdirSync(tmp) };
  }

  it('should leave no device id, event cache or log by default', async () => {
    const { setting, home, tmp } = await loadSession('default');
    expect(setting).toBe('1');
    expect(home).toEqual([]);
    // ts-node keeps its compile cache in TMPDIR too: only the runtime's own files are looked for.
    expect(tmp.filter(fromOrt)).toEqual([]);
  });

  it('should refuse to start a session from a worker thread, where the variable would not reach the runtime', async () => {
    const worker = new Worker(
      `require('ts-node/register/transpile-only');
       const { parentPort, workerData } = require('node:worker_threads');
       const { InferenceWorker } = require(workerData.module);
       Promise.resolve()
         .then(() => InferenceWorker.acquire(workerData.modelPath, { threads: 1 }))
         .then(() => parentPort.postMessage('started'), (e) => parentPort.postMessage(String(e && e.message)));`,
      {
        eval: true,
        workerData: {
          module: join(__dirname, '..', '..', 'src/modules/moderation/inference-worker'),
          modelPath,
        },
      },
    );
    try {
      const said = await new Promise((resolve) => worker.once('message', resolve));
      expect(said).toBe('Inference workers are started from the main thread only.');
    } finally {
      await worker.terminate();
    }
  });
});
