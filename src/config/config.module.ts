import { type DynamicModule, Global, Module } from '@nestjs/common';
import { AppConfig, freezeDeep } from './app-config';

/**
 * Provides the one AppConfig (built by the caller: main.ts from the environment, tests with overrides), frozen from
 * here on: once the app starts nothing may change a setting under another module's feet.
 */
@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: ConfigModule,
      providers: [{ provide: AppConfig, useValue: freezeDeep(config) }],
      exports: [AppConfig],
    };
  }
}
