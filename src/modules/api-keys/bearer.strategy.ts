import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { Strategy } from 'passport-http-bearer';
import { BearerAuthenticator } from '../../common/auth/authenticators';
import type { Principal } from '../../common/auth/principal';

/** passport-http-bearer parses `Authorization: Bearer <token>` (scheme case-insensitive); we resolve the token. */
@Injectable()
export class BearerStrategy extends PassportStrategy(Strategy, 'bearer') {
  constructor(private readonly authenticator: BearerAuthenticator) {
    super();
  }

  validate(token: string): Promise<Principal> {
    return this.authenticator.authenticate(token);
  }
}
