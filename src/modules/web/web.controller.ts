import { Controller, Get, Param, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { readFile } from 'node:fs/promises';
import { Public } from '../../common/auth/auth.decorator';
import { AppError } from '../../common/errors/app-error';
import { assetFile, WEB_INDEX_FILE } from './web-files';
import { ASSET_CACHE_CONTROL, contentSecurityPolicy, PAGE_CACHE_CONTROL } from './web-headers';

const CSP = contentSecurityPolicy();

/** Express 5 gives a `*path` wildcard as its segments; older shapes as one string. */
function segmentsOf(path: string | string[] | undefined): string[] {
  if (Array.isArray(path)) {
    return path;
  }
  return typeof path === 'string' ? path.split('/') : [];
}

/**
 * The website (web/, built into dist/web): its pages with a history fallback to index.html, and its hashed
 * assets. Only these paths: /api and /images answer as before, and unknown paths keep the JSON 404.
 */
@ApiExcludeController()
@Public()
@Controller()
export class WebController {
  @Get()
  root(@Res() res: Response): void {
    res.redirect(302, '/dashboard');
  }

  @Get(['login', 'register', 'dashboard', 'dashboard/*path', 'admin', 'admin/*path'])
  async page(@Res() res: Response): Promise<void> {
    const html = await readFile(WEB_INDEX_FILE).catch(() => null);
    if (!html) {
      throw new AppError('unavailable', 'The website is not built: run npm run build.');
    }
    res
      .status(200)
      .set({
        'Content-Type': 'text/html; charset=utf-8',
        'Cache-Control': PAGE_CACHE_CONTROL,
        'Content-Security-Policy': CSP,
        'X-Frame-Options': 'DENY',
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'same-origin',
      })
      .send(html);
  }

  @Get('assets/*path')
  async asset(@Param('path') path: string | string[], @Res() res: Response): Promise<void> {
    const file = await assetFile(segmentsOf(path));
    if (!file) {
      throw new AppError('not_found', 'No such resource.');
    }
    res.set({ 'Cache-Control': ASSET_CACHE_CONTROL, 'X-Content-Type-Options': 'nosniff' });
    // send (under sendFile) adds ETag, Last-Modified, Range and 304; the Cache-Control is ours.
    await new Promise<void>((resolve, reject) => {
      res.sendFile(file, { cacheControl: false, dotfiles: 'deny' }, (err) => {
        // ECONNABORTED: the client went away (a browser leaving the page). Nothing to answer and nothing wrong here;
        // as an error it reached the filter as a socket failure, logged as "Unexpected error (db_failed)".
        const aborted = (err as NodeJS.ErrnoException | undefined)?.code === 'ECONNABORTED';
        if (err && !res.headersSent && !aborted) {
          reject(err);
        } else {
          resolve();
        }
      });
    });
  }
}
