import { MikroOrmModule } from '@mikro-orm/nestjs';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { type DynamicModule, Module } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { ormOptions } from './orm-options';

/** MikroORM for the app: the URL comes from config (the embedded PostgreSQL's when DATABASE_URL is unset). */
@Module({})
export class DatabaseModule {
  static forRoot(): DynamicModule {
    return {
      module: DatabaseModule,
      imports: [
        MikroOrmModule.forRootAsync({
          inject: [AppConfig],
          useFactory: (config: AppConfig) => {
            if (!config.databaseUrl) {
              throw new Error('databaseUrl must be resolved before the app module starts');
            }
            return {
              ...ormOptions(config.databaseUrl),
              autoLoadEntities: true,
              registerRequestContext: true,
            };
          },
          driver: PostgreSqlDriver,
        }),
      ],
    };
  }
}
