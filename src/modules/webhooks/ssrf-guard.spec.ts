import type { AppConfig } from '../../config/app-config';
import type { HostResolver, ResolvedAddress } from './host-resolver';
import { SsrfGuard, WebhookTargetError } from './ssrf-guard';

function guard(answers: Record<string, ResolvedAddress[]>, allowPrivateWebhooks = false): SsrfGuard {
  const resolver = {
    resolve: (host: string) =>
      host in answers
        ? Promise.resolve(answers[host])
        : Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' })),
  } as HostResolver;
  return new SsrfGuard({ allowPrivateWebhooks } as AppConfig, resolver);
}

async function refusal(g: SsrfGuard, raw: string): Promise<string> {
  try {
    await g.resolveTarget(g.parseUrl(raw));
  } catch (err) {
    expect(err).toBeInstanceOf(WebhookTargetError);
    return (err as Error).message;
  }
  throw new Error(`${raw} was not refused`);
}

describe(SsrfGuard.name, () => {
  const publicHost = { 'hooks.example.com': [{ address: '93.184.215.14', family: 4 as const }] };

  it('should accept an http(s) URL whose host resolves to public addresses, and return the checked one', async () => {
    const g = guard(publicHost);
    await expect(g.resolveTarget(g.parseUrl('https://hooks.example.com/x'))).resolves.toEqual({
      address: '93.184.215.14',
      family: 4,
    });
  });

  it.each([
    ['ftp://hooks.example.com/'],
    ['file:///etc/passwd'],
    ['gopher://hooks.example.com'],
    ['javascript:alert(1)'],
    ['hooks.example.com/x'],
    ['http://'],
  ])('should refuse the URL %s by its form', async (raw) => {
    await expect(refusal(guard(publicHost), raw)).resolves.toMatch(
      /http and https|valid absolute URL|no host/,
    );
  });

  it.each([
    ['http://127.0.0.1/'],
    ['http://10.0.0.1/'],
    ['http://[::1]/'],
    ['http://169.254.169.254/latest/meta-data/'],
    ['http://0x7f000001/'],
    ['http://2130706433/'],
    ['http://0177.0.0.1/'],
    ['http://[::ffff:127.0.0.1]/'],
    ['http://[fd00::1]:8080/'],
  ])('should refuse the address literal in %s', async (raw) => {
    await expect(refusal(guard({}), raw)).resolves.toMatch(/non-public address/);
  });

  it('should refuse a name that resolves to loopback', async () => {
    const g = guard({ 'evil.example.com': [{ address: '127.0.0.1', family: 4 }] });
    await expect(refusal(g, 'http://evil.example.com/')).resolves.toMatch(
      /non-public address \(127\.0\.0\.1\)/,
    );
  });

  it('should refuse a name with one public and one private address', async () => {
    const g = guard({
      'mixed.example.com': [
        { address: '93.184.215.14', family: 4 },
        { address: '::ffff:10.1.2.3', family: 6 },
      ],
    });
    await expect(refusal(g, 'https://mixed.example.com/')).resolves.toMatch(/non-public address/);
  });

  it('should refuse a name that does not resolve', async () => {
    await expect(refusal(guard({}), 'https://nowhere.example.com/')).resolves.toMatch(
      /could not be resolved \(ENOTFOUND\)/,
    );
  });

  it('should allow private targets, but never other schemes, when ALLOW_PRIVATE_WEBHOOKS is on', async () => {
    const g = guard({ localhost: [{ address: '127.0.0.1', family: 4 }] }, true);
    await expect(g.resolveTarget(g.parseUrl('http://localhost:3000/'))).resolves.toEqual({
      address: '127.0.0.1',
      family: 4,
    });
    await expect(g.resolveTarget(g.parseUrl('http://[::1]:3000/'))).resolves.toEqual({
      address: '::1',
      family: 6,
    });
    expect(() => g.parseUrl('file:///etc/passwd')).toThrow(WebhookTargetError);
  });
});
