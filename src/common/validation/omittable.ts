import { ValidateIf } from 'class-validator';

/**
 * A body field that may be left out, but not sent as null: `@IsOptional()` skips every rule for null too, so a
 * `null` would reach the service as if the rules had passed (a 500 further on, or the default meant for "absent").
 * Absent means the default; anything present, null included, must pass the field's rules (400 otherwise).
 */
export function Omittable(): PropertyDecorator {
  return ValidateIf((_object, value) => value !== undefined);
}
