import { type DynamicModule, Global, Module } from '@nestjs/common';
import type { ProcessRole } from './process-role';
import { ProcessRoleService } from './process-role.service';

/** Provides the process role everywhere (AppModule.forRoot passes it). */
@Global()
@Module({})
export class JobsModule {
  static forRoot(role: ProcessRole): DynamicModule {
    return {
      module: JobsModule,
      providers: [{ provide: ProcessRoleService, useValue: new ProcessRoleService(role) }],
      exports: [ProcessRoleService],
    };
  }
}
