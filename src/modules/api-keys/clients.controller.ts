import { Controller, Get, Head, Header, Query, Res } from '@nestjs/common';
import {
  ApiHeader,
  ApiExcludeEndpoint,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiPropertyOptional,
  ApiTags,
} from '@nestjs/swagger';
import { IsOptional, IsUUID } from 'class-validator';
import type { Response } from 'express';
import { Auth, Public } from '../../common/auth/auth.decorator';
import { CurrentPrincipal, type AuthedRequest } from '../../common/auth/current-principal.decorator';
import type { Principal } from '../../common/auth/principal';
import { AppError } from '../../common/errors/app-error';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { refusingRoute } from '../../common/http/allowed-methods';
import { ReqMeta, type RequestMeta } from '../../common/http/request-meta';
import { AppConfig } from '../../config/app-config';
import { SessionAuthenticator } from '../../common/auth/authenticators';
import { Req } from '@nestjs/common';
import { ApiKeysService } from './api-keys.service';
import { NoStore } from '../../common/http/no-store';

export class ShareXQuery {
  @ApiPropertyOptional({
    format: 'uuid',
    description:
      'One of your keys whose default_expires_in the new upload-only key copies (else: no default).',
  })
  @IsOptional()
  @IsUUID()
  key_id?: string;
}

/**
 * Client configurations for this server (API.md Part 3). A shared config file must never hold a full-account key,
 * and a key's token can't be recovered from its hash: the ShareX file therefore carries a NEW key with the `upload`
 * scope only, minted for it (audit `api_key.created`, counted against the 10-key limit, revocable like any key).
 * Because that GET makes a key, it needs X-CSRF-Token like a state-changing request. The curl snippet carries no
 * key at all: it reads FIXITFY_TOKEN from the environment.
 */
/** A HEAD would make a key whose token nobody receives: the ShareX file is GET only. */
refusingRoute('/api/v1/clients/sharex', 'head');

@ApiTags('Client configs')
@Controller('api/v1/clients')
export class ClientsController {
  constructor(
    private readonly keys: ApiKeysService,
    private readonly config: AppConfig,
    private readonly sessions: SessionAuthenticator,
  ) {}

  // Before the GET: Express answers a HEAD with the first route that takes it, and a GET route takes HEAD too.
  @Head('sharex')
  @Public()
  @ApiExcludeEndpoint()
  sharexHead(): never {
    throw new AppError('method_not_allowed', 'Use GET: the ShareX file holds a key made for that request.', {
      headers: { Allow: 'GET' },
    });
  }

  @Get('sharex')
  @Auth('session')
  @NoStore()
  @ApiOperation({
    operationId: 'getShareXConfig',
    summary: 'A ShareX custom uploader (.sxcu) for this server, around a new upload-only key',
    description:
      'Mints a new API key with the `upload` scope only (label "ShareX"; audit `api_key.created`; 409 at 10 active ' +
      'keys) and answers the .sxcu JSON as an attachment. `DeletionURL` is `{json:delete_url}`. Needs X-CSRF-Token, ' +
      'since it makes a key.',
  })
  @ApiProduces('application/json')
  // A GET that makes a key: the CSRF header is required here (completeOperation adds it only to other methods).
  @ApiHeader({
    name: 'X-CSRF-Token',
    required: true,
    description: 'The `csrf_token` of GET /api/v1/auth/session.',
  })
  @ApiOkResponse({
    description: 'The .sxcu file (JSON), as an attachment (`Content-Disposition: attachment`).',
    schema: {
      type: 'object',
      additionalProperties: true,
      description:
        'A ShareX custom uploader: Version, Name, DestinationType, RequestMethod, RequestURL, Headers, …',
    },
    headers: {
      'Content-Disposition': { schema: { type: 'string' }, description: 'attachment; filename="….sxcu"' },
    },
  })
  @ApiErrorResponses('bad_request', 'not_found', 'conflict')
  async sharex(
    @CurrentPrincipal() p: Principal,
    @Query() q: ShareXQuery,
    @ReqMeta() meta: RequestMeta,
    @Req() req: AuthedRequest,
    @Res({ passthrough: true }) res: Response,
  ): Promise<Record<string, unknown>> {
    if (p.kind !== 'session' || !this.sessions.verifyCsrf(p, req.header('x-csrf-token'))) {
      throw new AppError(
        'forbidden',
        'Missing or invalid X-CSRF-Token header (this request makes an API key).',
      );
    }
    const base = q.key_id ? await this.keys.get(p.userId, q.key_id) : null;
    if (base?.revoked_at) {
      throw new AppError('not_found', 'No such API key.');
    }
    const created = await this.keys.create(p.userId, 'ShareX', meta, {
      scopes: ['upload'],
      defaultExpiresIn: base?.default_expires_in ?? undefined,
    });
    const host = new URL(this.config.publicUrl).host;
    res.setHeader(
      'Content-Disposition',
      `attachment; filename="fixitfy-${host.replace(/[^A-Za-z0-9.-]/g, '_')}.sxcu"`,
    );
    return {
      Version: '15.0.0',
      Name: `Fixitfy (${host})`,
      DestinationType: 'ImageUploader',
      RequestMethod: 'POST',
      RequestURL: `${this.config.publicUrl}/api/v1/upload`,
      Headers: { Authorization: `Bearer ${created.token}` },
      Body: 'MultipartFormData',
      FileFormName: 'file',
      URL: '{json:url}',
      ThumbnailURL: '{json:thumbnail_url}',
      DeletionURL: '{json:delete_url}',
      ErrorMessage: '{json:error}',
    };
  }

  @Get('curl')
  @Header('Content-Type', 'text/x-shellscript; charset=utf-8')
  @ApiOperation({
    operationId: 'getCurlSnippet',
    summary: 'A shell snippet that uploads a file to this server with curl',
    description:
      'Holds no key: it reads FIXITFY_TOKEN (an upload-only key or a ut_ token is enough) from the environment and ' +
      'prints the answer, whose delete_url deletes the upload.',
  })
  @ApiProduces('text/x-shellscript')
  @ApiOkResponse({ description: 'The snippet.', schema: { type: 'string' } })
  // It holds no key, so an API key may fetch it as well as the website. Below @ApiProduces: its 401 and 403 are JSON.
  @Auth('user')
  curl(): string {
    return [
      '#!/bin/sh',
      '# Upload an image to Fixitfy. FIXITFY_TOKEN: an API key with the "upload" scope, or a ut_ upload token.',
      '# Usage: FIXITFY_TOKEN=fxf_... sh fixitfy-upload.sh picture.png',
      'set -eu',
      `curl -sS --fail-with-body -H "Authorization: Bearer $FIXITFY_TOKEN" -F "file=@$1" '${this.config.publicUrl}/api/v1/upload'`,
      '',
    ].join('\n');
  }
}
