import type { INestApplication } from '@nestjs/common';
import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { DECORATORS } from '@nestjs/swagger/dist/constants';
import { DiscoveryService, MetadataScanner, ModulesContainer, Reflector } from '@nestjs/core';
import { AUTH_POLICY, PUBLIC_ROUTE } from '../../src/common/auth/auth.decorator';

export interface AppRoute {
  /** Lower-case HTTP method. */
  method: string;
  /** OpenAPI-style path: `/api/v1/uploads/{filename}`. */
  path: string;
  authMarked: boolean;
  /**
   * In the OpenAPI document (the API), unlike the website's pages and assets (@ApiExcludeController) and /metrics
   * (@ApiExcludeEndpoint: the operator's, behind METRICS_TOKEN).
   */
  documented: boolean;
}

/** Every route the app serves, read from the controllers Nest registered. */
export function appRoutes(app: INestApplication): AppRoute[] {
  const discovery = new DiscoveryService(app.get(ModulesContainer));
  const scanner = new MetadataScanner();
  const reflector = app.get(Reflector);
  const routes: AppRoute[] = [];
  for (const wrapper of discovery.getControllers()) {
    const instance = wrapper.instance as object | undefined;
    if (!instance || !wrapper.metatype) {
      continue;
    }
    const base = String(Reflect.getMetadata(PATH_METADATA, wrapper.metatype) ?? '');
    const excluded = Reflect.getMetadata(DECORATORS.API_EXCLUDE_CONTROLLER, wrapper.metatype) as
      | unknown[]
      | undefined;
    for (const name of scanner.getAllMethodNames(Object.getPrototypeOf(instance))) {
      const handler = (instance as Record<string, unknown>)[name] as (...args: unknown[]) => unknown;
      const subs = Reflect.getMetadata(PATH_METADATA, handler) as string | string[] | undefined;
      if (subs === undefined) {
        continue;
      }
      const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as number];
      const targets = [handler, wrapper.metatype];
      const endpointExcluded = Reflect.getMetadata(DECORATORS.API_EXCLUDE_ENDPOINT, handler) as
        | { disable?: boolean }
        | undefined;
      // One handler may serve several paths (the website's pages); `*path` wildcards are written `{path}`.
      for (const sub of Array.isArray(subs) ? subs : [subs]) {
        const path = `/${[base, sub].filter((p) => p && p !== '/').join('/')}`.replace(/\/+/g, '/');
        routes.push({
          method: method.toLowerCase(),
          path: path.replace(/[:*](\w+)/g, '{$1}'),
          authMarked:
            !!reflector.getAllAndOverride(PUBLIC_ROUTE, targets) ||
            !!reflector.getAllAndOverride(AUTH_POLICY, targets),
          documented: !excluded?.[0] && !endpointExcluded?.disable,
        });
      }
    }
  }
  return routes;
}
