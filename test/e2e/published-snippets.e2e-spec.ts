import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { png } from '../fixtures/sample-images';
import { makeKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';

const run = promisify(execFile);
const PUBLISHED_HOST = 'https://upload.fixitfy.com.tr';

/**
 * The client snippets of published-api-doc.txt, run unchanged but for the host, against a listening server.
 */
describe('Published client snippets (e2e)', () => {
  let t: TestApp;
  let base: string;
  let dir: string;
  let key: string;

  beforeAll(async () => {
    t = await createTestApp();
    base = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
    dir = mkdtempSync(join(tmpdir(), 'fxf-snippets-'));
    key = (await makeKey(t)).token;
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await t.close();
  });

  const host = (snippet: string): string => snippet.split(PUBLISHED_HOST).join(base);

  it('should work with the curl upload and delete commands', async () => {
    writeFileSync(join(dir, 'image.png'), await png(1));
    const upload = host(`curl -X POST ${PUBLISHED_HOST}/api/v1/upload \\
 -H "Authorization: Bearer fxf_YOUR_KEY_HERE" \\
 -F "file=@/path/to/image.png"`)
      .replace('fxf_YOUR_KEY_HERE', key)
      .replace('/path/to/image.png', join(dir, 'image.png'));
    const { stdout } = await run('sh', ['-c', upload]);
    const body = JSON.parse(stdout);
    expect(body).toMatchObject({ ok: true, mime: 'image/png' });
    const del = await run('sh', [
      '-c',
      `curl -X DELETE ${body.delete_url.replace('http://upload.test', base)}`,
    ]);
    expect(JSON.parse(del.stdout)).toEqual({ ok: true, deleted: body.filename });
  });

  it('should work with the Node fetch snippet', async () => {
    writeFileSync(join(dir, 'screenshot.png'), await png(2));
    const snippet = host(`import { readFile } from "node:fs/promises";
const file = await readFile("./screenshot.png");
const fd = new FormData();
fd.set("file", new Blob([file], { type: "image/png" }), "screenshot.png");
const res = await fetch("${PUBLISHED_HOST}/api/v1/upload", {
method: "POST",
headers: { Authorization: "Bearer " + process.env.FIXITFY_KEY },
body: fd,
});
const data = await res.json();
console.log(data.url);`);
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', snippet], {
      cwd: dir,
      env: { ...process.env, FIXITFY_KEY: key },
    });
    expect(stdout.trim()).toMatch(/^http:\/\/upload\.test\/images\/FIXITFY-[A-Za-z0-9]{12}\.png$/);
  });

  it('should work with the Python requests snippet', async () => {
    writeFileSync(join(dir, 'screenshot.png'), await png(3));
    const snippet = host(`import os, requests
with open("screenshot.png", "rb") as f:
    r = requests.post(
        "${PUBLISHED_HOST}/api/v1/upload",
        headers={"Authorization": "Bearer " + os.environ["FIXITFY_KEY"]},
        files={"file": f},
    )
print(r.json()["url"])`);
    const { stdout } = await run('python3', ['-c', snippet], {
      cwd: dir,
      env: { ...process.env, FIXITFY_KEY: key },
    });
    expect(stdout.trim()).toMatch(/^http:\/\/upload\.test\/images\/FIXITFY-[A-Za-z0-9]{12}\.png$/);
  });

  it('should work with the list, delete and /me curl commands', async () => {
    writeFileSync(join(dir, 'image.png'), await png(4));
    const up = JSON.parse(
      (
        await run('curl', [
          '-s',
          '-H',
          `Authorization: Bearer ${key}`,
          '-F',
          `file=@${join(dir, 'image.png')}`,
          `${base}/api/v1/upload`,
        ])
      ).stdout,
    );
    const list = host(`curl -H "Authorization: Bearer fxf_YOUR_KEY" \\
"${PUBLISHED_HOST}/api/v1/uploads?limit=50"`).replace('fxf_YOUR_KEY', key);
    const listed = JSON.parse((await run('sh', ['-c', list])).stdout);
    expect(listed.uploads.map((u: { filename: string }) => u.filename)).toContain(up.filename);
    const del = host(`curl -X DELETE -H "Authorization: Bearer fxf_YOUR_KEY" \\
${PUBLISHED_HOST}/api/v1/uploads/${up.filename}`).replace('fxf_YOUR_KEY', key);
    expect(JSON.parse((await run('sh', ['-c', del])).stdout)).toEqual({ ok: true, deleted: up.filename });
  });
});
