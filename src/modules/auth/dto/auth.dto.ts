import { ApiProperty } from '@nestjs/swagger';
import { IsEmail, IsString, MaxLength, MinLength } from 'class-validator';

export class RegisterDto {
  @ApiProperty({ example: 'you@example.com', format: 'email', maxLength: 254 })
  @IsEmail({}, { message: 'email must be an email address' })
  @MaxLength(254)
  email!: string;

  @ApiProperty({ example: 'correct horse battery', minLength: 10, maxLength: 200 })
  @IsString()
  @MinLength(10)
  @MaxLength(200)
  password!: string;
}

export class LoginDto {
  @ApiProperty({ example: 'you@example.com', maxLength: 254 })
  @IsString()
  @MaxLength(254)
  email!: string;

  @ApiProperty({ example: 'correct horse battery', maxLength: 200 })
  @IsString()
  @MaxLength(200)
  password!: string;
}

export class ChangePasswordDto {
  @ApiProperty({ example: 'correct horse battery', maxLength: 200 })
  @IsString()
  @MaxLength(200)
  current_password!: string;

  @ApiProperty({ example: 'a new and longer passphrase', minLength: 10, maxLength: 200 })
  @IsString()
  @MinLength(10)
  @MaxLength(200)
  new_password!: string;
}

export class PasswordChangedResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({
    type: 'integer',
    example: 2,
    description: "How many of the account's other sessions were ended (the one that asked stays signed in).",
  })
  sessions_ended!: number;
}

export class UserResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'you@example.com' }) email!: string;
  @ApiProperty({ enum: ['user', 'admin'] }) role!: 'user' | 'admin';
}

export class UserEnvelope {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: UserResponse }) user!: UserResponse;
}

export class SessionResponse extends UserEnvelope {
  @ApiProperty({
    description: 'Send as X-CSRF-Token on state-changing requests made with the session cookie.',
  })
  csrf_token!: string;
}

export class OkResponse {
  @ApiProperty({ example: true }) ok!: true;
}
