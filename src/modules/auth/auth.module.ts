import { MikroOrmModule } from '@mikro-orm/nestjs';
import { Module } from '@nestjs/common';
import { SessionAuthenticator } from '../../common/auth/authenticators';
import { AuthController } from './auth.controller';
import { AuthService } from './auth.service';
import { LoginThrottle } from './login-throttle';
import { Session } from './session.entity';
import { SessionsService } from './sessions.service';
import { User } from './user.entity';
import { UsersService } from './users.service';

@Module({
  imports: [MikroOrmModule.forFeature([User, Session])],
  controllers: [AuthController],
  providers: [
    AuthService,
    UsersService,
    SessionsService,
    LoginThrottle,
    { provide: SessionAuthenticator, useExisting: SessionsService },
  ],
  exports: [UsersService, SessionsService, SessionAuthenticator],
})
export class AuthModule {}
