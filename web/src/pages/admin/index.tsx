/** Placeholder: helper 2 (web-admin) fills this page in (see /work/coord/web-scaffold.md). */
export default function AdminPage() {
  return (
    <section className="page" aria-labelledby="page-title">
      <h1 id="page-title">Admin</h1>
      <p>This page is being built.</p>
    </section>
  );
}
