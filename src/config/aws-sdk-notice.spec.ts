import { keepAwsSdkNoticeOff } from './aws-sdk-notice';

describe(keepAwsSdkNoticeOff.name, () => {
  it('should turn the notice off when the variable is not set', () => {
    const env: NodeJS.ProcessEnv = {};
    keepAwsSdkNoticeOff(env);
    expect(env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED).toBe('true');
  });

  it("should keep the operator's own value, whatever it is", () => {
    for (const value of ['false', 'true', '']) {
      const env: NodeJS.ProcessEnv = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: value };
      keepAwsSdkNoticeOff(env);
      expect(env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED).toBe(value);
    }
  });
});
