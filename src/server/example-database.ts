import type { ColumnType, Generated } from 'kysely';

/**
 * The example app's tables as kysely sees them (DESIGN.md "Example app"),
 * for the service's `/api/documents`.
 *
 * @example
 * ```ts
 * const db = new Kysely<ExampleDatabase>({ dialect: new PostgresDialect({ pool }) });
 * ```
 */
export interface ExampleDatabase {
  documents: {
    id: Generated<string>;
    org_id: string;
    owner_id: string;
    title: string;
    body: Generated<string>;
    created_at: ColumnType<Date, never, never>;
  };
  memberships: {
    org_id: string;
    user_id: string;
    role: 'owner' | 'admin' | 'member' | 'viewer';
    created_at: Generated<Date>;
    disabled: Generated<boolean>;
  };
  organizations: { id: string; name: string };
}
