import { Controller, Get, Headers, Res } from '@nestjs/common';
import { ApiExcludeEndpoint } from '@nestjs/swagger';
import type { Response } from 'express';
import { AppConfig } from '../../config/app-config';
import { Public } from '../auth/auth.decorator';
import { AppError } from '../errors/app-error';
import { metricsAccess } from './metrics-access';
import { Metrics } from './metrics.service';

/**
 * GET /metrics, Prometheus text format. Not in the OpenAPI document (it is for Prometheus, not API clients);
 * API.md Part 3 and README "Metrics" describe it. Authenticated by METRICS_TOKEN here, not by the AuthGuard.
 */
@Controller()
@Public()
export class MetricsController {
  constructor(
    private readonly metrics: Metrics,
    private readonly config: AppConfig,
  ) {}

  @Get('metrics')
  @ApiExcludeEndpoint()
  async scrape(
    @Headers('authorization') authorization: string | undefined,
    @Res() res: Response,
  ): Promise<void> {
    const access = metricsAccess(this.config.metrics, authorization);
    if (access === 'not_found') {
      throw new AppError('not_found', 'No such resource.');
    }
    if (access === 'unauthorized') {
      throw new AppError('unauthorized', 'Send Authorization: Bearer <METRICS_TOKEN>.', {
        headers: { 'WWW-Authenticate': 'Bearer realm="metrics"' },
      });
    }
    const body = await this.metrics.text();
    res.setHeader('Content-Type', this.metrics.registry.contentType);
    res.setHeader('Cache-Control', 'no-store');
    res.end(body);
  }
}
