/** The contract's error envelope: `{ ok: false, code, error }` with this status and code. */
export const expectError = (
  res: { status: number; body: Record<string, unknown> },
  status: number,
  code: string,
): void => {
  expect({ status: res.status, ok: res.body.ok, code: res.body.code, error: typeof res.body.error }).toEqual({
    status,
    ok: false,
    code,
    error: 'string',
  });
};
