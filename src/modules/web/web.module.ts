import { Module } from '@nestjs/common';
import { WebController } from './web.controller';

/** Serves the website's built files (DESIGN.md: web/ built into the server's static files). */
@Module({ controllers: [WebController] })
export class WebModule {}
