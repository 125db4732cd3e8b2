/** What this needs of an Express router's layer (router@2): a route's path and methods, and whether it matches. */
interface RouterLayer {
  route?: { path?: unknown; methods?: Record<string, boolean | undefined> };
  match(path: string): unknown;
}

/** Route path → methods whose handler only ever answers 405 itself (registered by their controller). */
const refusing = new Map<string, Set<string>>();

/**
 * Marks a route whose handler exists only to refuse (a delete link's GET, which answers 405 with its own `Allow`):
 * a wrong method elsewhere on that path does not name it among the methods the resource takes.
 */
export function refusingRoute(path: string, method: string): void {
  const methods = refusing.get(path) ?? new Set<string>();
  methods.add(method.toLowerCase());
  refusing.set(path, methods);
}

/**
 * The methods the app's routes take at `path`, upper-case, HEAD with GET (unless a route refuses HEAD), in alphabetical
 * order; [] when no route has that path at all. For a 405 `method_not_allowed` and its `Allow` header (API.md: "a
 * method the resource does not take"), where a route-less request would otherwise be a 404.
 */
export function allowedMethods(
  app: { router?: { stack?: RouterLayer[] } } | undefined,
  path: string,
): string[] {
  const methods = new Set<string>();
  let headRefused = false;
  for (const layer of app?.router?.stack ?? []) {
    const routeMethods = layer.route?.methods;
    // Nest makes one route per handler and method; a route with every method is middleware applied to all routes
    // (RequestMethod.ALL: the metrics, the request body), which says nothing about what the resource takes.
    if (!routeMethods || Object.keys(routeMethods).length !== 1 || !layer.match(path)) {
      continue;
    }
    const refused = typeof layer.route?.path === 'string' ? refusing.get(layer.route.path) : undefined;
    headRefused ||= refused?.has('head') ?? false;
    for (const [method, takes] of Object.entries(routeMethods)) {
      if (takes && method !== '_all' && !refused?.has(method)) {
        methods.add(method.toUpperCase());
      }
    }
  }
  if (methods.has('GET') && !headRefused) {
    methods.add('HEAD');
  }
  return [...methods].sort();
}
