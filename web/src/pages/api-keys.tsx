/** Placeholder: web-core fills this page in (see /work/coord/web-scaffold.md). */
export default function ApiKeysPage() {
  return (
    <section className="page" aria-labelledby="page-title">
      <h1 id="page-title">API keys</h1>
      <p>This page is being built.</p>
    </section>
  );
}
