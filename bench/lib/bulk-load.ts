/**
 * Bulk loading for benchmark data: filling a table and then building its
 * indexes is several times faster than maintaining them row by row (a random
 * uuid primary key touches a random leaf page per row). The indexes and
 * their comments are read from the catalog and recreated exactly, so the
 * table ends up as its migration defined it.
 */
import type pg from 'pg';

interface IndexRow {
  index: string;
  def: string;
  conname: string | null;
  condef: string | null;
  index_comment: string | null;
  con_comment: string | null;
}

/**
 * Drops the indexes of `table` (a trusted, already qualified name such as
 * `public.documents`), runs `load`, and recreates them with their comments.
 * Indexes that a foreign key of another table depends on are kept.
 *
 * @example
 * ```ts
 * await loadWithoutIndexes(client, 'public.documents', () => client.query(insertSql).then(() => undefined));
 * ```
 */
export async function loadWithoutIndexes(
  client: pg.Client,
  table: string,
  load: () => Promise<void>,
): Promise<void> {
  const { rows } = await client.query<IndexRow>(
    `select i.indexrelid::regclass::text as index,
            pg_catalog.pg_get_indexdef(i.indexrelid) as def,
            con.conname::text as conname,
            pg_catalog.pg_get_constraintdef(con.oid) as condef,
            pg_catalog.obj_description(i.indexrelid, 'pg_class') as index_comment,
            pg_catalog.obj_description(con.oid, 'pg_constraint') as con_comment
       from pg_catalog.pg_index i
       left join pg_catalog.pg_constraint con
         on con.conindid = i.indexrelid and con.conrelid = i.indrelid and con.contype in ('p', 'u', 'x')
      where i.indrelid = $1::regclass
        and not exists (select 1 from pg_catalog.pg_constraint f
                         where f.contype = 'f' and f.conindid = i.indexrelid)
      order by i.indexrelid`,
    [table],
  );
  for (const r of rows) {
    await client.query(
      r.conname !== null
        ? `alter table ${table} drop constraint ${client.escapeIdentifier(r.conname)}`
        : `drop index ${r.index}`,
    );
  }
  await load();
  for (const r of rows) {
    if (r.conname !== null && r.condef !== null) {
      const name = client.escapeIdentifier(r.conname);
      await client.query(`alter table ${table} add constraint ${name} ${r.condef}`);
      if (r.con_comment !== null) {
        await client.query(
          `comment on constraint ${name} on ${table} is ${client.escapeLiteral(r.con_comment)}`,
        );
      }
    } else {
      await client.query(r.def);
    }
    if (r.index_comment !== null) {
      await client.query(`comment on index ${r.index} is ${client.escapeLiteral(r.index_comment)}`);
    }
  }
}
