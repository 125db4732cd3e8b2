import { Body, Controller, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Auth, Public } from '../../common/auth/auth.decorator';
import { SESSION_COOKIE } from '../../common/auth/authenticators';
import { CurrentPrincipal } from '../../common/auth/current-principal.decorator';
import type { Principal } from '../../common/auth/principal';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { ReqMeta, type RequestMeta } from '../../common/http/request-meta';
import { AppConfig } from '../../config/app-config';
import {
  ChangePasswordDto,
  LoginDto,
  OkResponse,
  PasswordChangedResponse,
  RegisterDto,
  SessionResponse,
  UserEnvelope,
} from './dto/auth.dto';
import { AuthService, type LoginResult } from './auth.service';
import { NoStore } from '../../common/http/no-store';

@ApiTags('Auth')
@Controller('api/v1/auth')
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly config: AppConfig,
  ) {}

  @Post('register')
  @HttpCode(201)
  @Public()
  @ApiOperation({ operationId: 'register', summary: 'Create an account and start a session' })
  @ApiCreatedResponse({ type: UserEnvelope })
  @ApiErrorResponses('bad_request', 'conflict', 'forbidden')
  async register(
    @Body() dto: RegisterDto,
    @ReqMeta() meta: RequestMeta,
    @Res({ passthrough: true }) res: Response,
  ): Promise<UserEnvelope> {
    return this.withCookie(res, await this.auth.register(dto.email, dto.password, meta));
  }

  @Post('login')
  @HttpCode(200)
  @Public()
  @ApiOperation({
    operationId: 'login',
    summary: 'Sign in; the same 401 for an unknown email and a wrong password',
  })
  @ApiOkResponse({ type: UserEnvelope })
  @ApiErrorResponses('bad_request', 'unauthorized', 'banned')
  async login(
    @Body() dto: LoginDto,
    @ReqMeta() meta: RequestMeta,
    @Res({ passthrough: true }) res: Response,
  ): Promise<UserEnvelope> {
    return this.withCookie(res, await this.auth.login(dto.email, dto.password, meta));
  }

  @Post('logout')
  @HttpCode(200)
  @Auth('session')
  @ApiOperation({ operationId: 'logout', summary: 'End the session' })
  @ApiOkResponse({ type: OkResponse })
  async logout(@Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<OkResponse> {
    await this.auth.logout((req.cookies as Record<string, string> | undefined)?.[SESSION_COOKIE]);
    res.clearCookie(SESSION_COOKIE, { path: '/' });
    return { ok: true };
  }

  @Post('password')
  @HttpCode(200)
  @Auth('session')
  @ApiOperation({
    operationId: 'changePassword',
    summary: "Change the signed-in account's password; its other sessions end, this one stays",
    description:
      'Needs the current password (403 `forbidden` when it is wrong; repeated failures are slowed down as sign-in ' +
      'is). API keys and upload tokens keep working. Audit `user.password_changed` (or `user.password_change_failed`).',
  })
  @ApiOkResponse({ type: PasswordChangedResponse })
  @ApiErrorResponses('bad_request', 'unauthorized', 'forbidden', 'banned', 'conflict')
  async changePassword(
    @CurrentPrincipal() principal: Principal,
    @Body() dto: ChangePasswordDto,
    @ReqMeta() meta: RequestMeta,
  ): Promise<PasswordChangedResponse> {
    if (principal.kind !== 'session') {
      throw new Error('unreachable: @Auth(session)');
    }
    const ended = await this.auth.changePassword(principal, dto.current_password, dto.new_password, meta);
    return { ok: true, sessions_ended: ended };
  }

  @Get('session')
  @Auth('session')
  @NoStore()
  @ApiOperation({
    operationId: 'getSession',
    summary: 'The signed-in user and the CSRF token for state-changing requests',
  })
  @ApiOkResponse({ type: SessionResponse })
  session(@CurrentPrincipal() principal: Principal): SessionResponse {
    if (principal.kind !== 'session') {
      throw new Error('unreachable: @Auth(session)');
    }
    return {
      ok: true,
      user: { id: principal.userId, email: principal.email, role: principal.role },
      csrf_token: principal.csrfToken,
    };
  }

  private withCookie(res: Response, result: LoginResult): UserEnvelope {
    res.cookie(SESSION_COOKIE, result.sessionToken, {
      httpOnly: true,
      sameSite: 'lax',
      secure: this.config.publicUrl.startsWith('https://'),
      path: '/',
      expires: result.expiresAt,
    });
    return { ok: true, user: result.user };
  }
}
