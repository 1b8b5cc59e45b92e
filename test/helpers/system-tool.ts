/**
 * Whether a Debian program a test drives is installed. In CI (`CI=true`)
 * `.ci/run` installs it, so its absence throws (a failure, not a skip);
 * elsewhere the test is skipped with one warning line.
 *
 * @example
 * ```ts
 * const available = systemTool({ test: 'review-html', program: CHROMIUM, present: existsSync(CHROMIUM), pkg: 'chromium', env: 'RLS_KIT_CHROMIUM' });
 * describe.skipIf(!available)('…', () => {});
 * ```
 */
export function systemTool(tool: {
  /** The test file's name, for the warning. */
  test: string;
  /** Path of the program. */
  program: string;
  present: boolean;
  /** The Debian package that provides it. */
  pkg: string;
  /** The variable that points the test at another path. */
  env: string;
}): boolean {
  if (tool.present) return true;
  if (process.env.CI === 'true') {
    throw new Error(
      `${tool.program} is missing: .ci/run must install Debian's ${tool.pkg} package`,
    );
  }
  console.warn(
    `${tool.test}: skipped — no ${tool.program} (apt-get install ${tool.pkg}, or set ${tool.env})`,
  );
  return false;
}
