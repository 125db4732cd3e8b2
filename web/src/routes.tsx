import { type ComponentType, lazy, type LazyExoticComponent } from 'react';

export type Access = 'public' | 'user' | 'admin';

export interface PageRoute {
  path: string;
  /** The document title (" · Fixitfy Upload" is added). */
  title: string;
  access: Access;
  page: LazyExoticComponent<ComponentType>;
}

/**
 * Every page of the website, one file each under pages/. Each page is its own chunk, so a visit downloads only
 * the page it shows; the admin pages are never downloaded by people who are not admins.
 */
export const ROUTES: PageRoute[] = [
  { path: '/login', title: 'Sign in', access: 'public', page: lazy(() => import('./pages/login')) },
  {
    path: '/register',
    title: 'Create an account',
    access: 'public',
    page: lazy(() => import('./pages/register')),
  },
  { path: '/dashboard', title: 'Uploads', access: 'user', page: lazy(() => import('./pages/dashboard')) },
  {
    path: '/dashboard/api-keys',
    title: 'API keys',
    access: 'user',
    page: lazy(() => import('./pages/api-keys')),
  },
  {
    path: '/dashboard/webhooks',
    title: 'Webhooks',
    access: 'user',
    page: lazy(() => import('./pages/webhooks')),
  },
  {
    path: '/dashboard/account',
    title: 'Account',
    access: 'user',
    page: lazy(() => import('./pages/account')),
  },
  { path: '/admin', title: 'Admin', access: 'admin', page: lazy(() => import('./pages/admin/index')) },
  {
    path: '/admin/users',
    title: 'Users · Admin',
    access: 'admin',
    page: lazy(() => import('./pages/admin/users')),
  },
  {
    path: '/admin/uploads',
    title: 'Uploads · Admin',
    access: 'admin',
    page: lazy(() => import('./pages/admin/uploads')),
  },
  {
    path: '/admin/audit',
    title: 'Audit log · Admin',
    access: 'admin',
    page: lazy(() => import('./pages/admin/audit')),
  },
];

/** The header's navigation (Admin only for admins). */
export const NAV: { href: string; label: string; admin?: boolean }[] = [
  { href: '/dashboard', label: 'Uploads' },
  { href: '/dashboard/api-keys', label: 'API keys' },
  { href: '/dashboard/webhooks', label: 'Webhooks' },
  { href: '/dashboard/account', label: 'Account' },
  { href: '/admin', label: 'Admin', admin: true },
];
