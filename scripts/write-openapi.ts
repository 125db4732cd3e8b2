import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openApiDocumentFromCode, openApiJson } from '../src/openapi-document';

/** `npm run openapi:write`: regenerates the committed openapi.json from the controllers and DTOs. */
async function main(): Promise<void> {
  const file = join(__dirname, '..', 'openapi.json');
  writeFileSync(file, openApiJson(await openApiDocumentFromCode()));
  process.stdout.write(`wrote ${file}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
