import { Link } from 'wouter';

export default function NotFoundPage() {
  return (
    <section className="page" aria-labelledby="not-found-title">
      <h1 id="not-found-title" tabIndex={-1}>
        Page not found
      </h1>
      <p>
        There is no page at this address. Go to <Link href="/dashboard">your uploads</Link>.
      </p>
    </section>
  );
}
