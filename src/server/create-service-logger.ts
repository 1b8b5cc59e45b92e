import { type DestinationStream, type Logger, pino } from 'pino';

/**
 * Paths pino censors in every log line of the service. The service itself
 * logs no header, cookie or body; these catch what a caller's own log
 * statements (or a child logger's bindings) might add by mistake.
 */
export const REDACT_PATHS: readonly string[] = [
  'authorization',
  'cookie',
  'token',
  'access_token',
  'refresh_token',
  'subject_token',
  'secret',
  'password',
  '*.authorization',
  '*.cookie',
  '*.token',
  '*.access_token',
  '*.refresh_token',
  '*.subject_token',
  '*.secret',
  '*.password',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

/**
 * The token service's default logger: pino JSON lines at `level` (default
 * `info`), with {@link REDACT_PATHS} censored. Pass `destination` to capture
 * lines (tests do, to prove no token ever reaches a log).
 *
 * @example
 * ```ts
 * const logger = createServiceLogger({ level: 'debug' });
 * const service = await startTokenService({ logger });
 * ```
 */
export function createServiceLogger(
  options: { level?: string; destination?: DestinationStream } = {},
): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'rls-kit' },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    },
    options.destination,
  );
}
