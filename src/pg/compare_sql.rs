//! The catalog queries of `compare schema` and the checksum query of `compare data`. Each
//! schema query returns (object, description) rows: the object is named the same way on any
//! server (quoted names, never OIDs) and the description holds everything that must match.
//! $1 asks for owners, $2 for privileges.

use super::sql::{qualified, SYSTEM_SCHEMA_FILTER};

/// Objects that belong to an extension are the extension's business.
fn not_extension_member(class: &str, oid: &str) -> String {
    format!(
        "not exists (select 1 from pg_catalog.pg_depend dep \
         where dep.classid = '{class}'::regclass and dep.objid = {oid} and dep.deptype = 'e')"
    )
}

fn owner_acl(owner: &str, acl: &str) -> String {
    format!(
        "case when $1 then 'owner=' || pg_catalog.pg_get_userbyid({owner}) end, \
         case when $2 then 'acl=' || coalesce({acl}::text, '(default)') end"
    )
}

pub fn schemas() -> String {
    format!(
        "select 'schema ' || pg_catalog.quote_ident(n.nspname), \
                concat_ws(' ', 'schema', {}) \
         from pg_catalog.pg_namespace n where {SYSTEM_SCHEMA_FILTER} and {}",
        owner_acl("n.nspowner", "n.nspacl"),
        not_extension_member("pg_catalog.pg_namespace", "n.oid")
    )
}

pub fn relations() -> String {
    format!(
        "select case c.relkind when 'r' then 'table' when 'p' then 'table' when 'v' then 'view' \
                  when 'm' then 'materialized view' when 'S' then 'sequence' \
                  when 'f' then 'foreign table' end || ' ' || pg_catalog.format('%I.%I', n.nspname, c.relname), \
                concat_ws(' ', 'kind=' || c.relkind::text, 'persistence=' || c.relpersistence::text, \
                  case when c.relrowsecurity then 'row-security' end, \
                  case when c.relforcerowsecurity then 'forced-row-security' end, \
                  'replica-identity=' || c.relreplident::text, \
                  case when c.reloptions is not null then 'options=' || c.reloptions::text end, \
                  (select 'partition-of=' || pg_catalog.format('%I.%I', pn.nspname, p.relname) || ' ' || \
                          pg_catalog.pg_get_expr(c.relpartbound, c.oid) \
                     from pg_catalog.pg_inherits i join pg_catalog.pg_class p on p.oid = i.inhparent \
                     join pg_catalog.pg_namespace pn on pn.oid = p.relnamespace \
                    where i.inhrelid = c.oid and c.relispartition), \
                  case when c.relkind = 'p' then 'partitioned-by=' || pg_catalog.pg_get_partkeydef(c.oid) end, \
                  (select 'inherits=' || string_agg(pg_catalog.format('%I.%I', pn.nspname, p.relname), ',' order by i.inhseqno) \
                     from pg_catalog.pg_inherits i join pg_catalog.pg_class p on p.oid = i.inhparent \
                     join pg_catalog.pg_namespace pn on pn.oid = p.relnamespace \
                    where i.inhrelid = c.oid and not c.relispartition having count(*) > 0), \
                  case when c.relkind = 'm' then 'populated=' || c.relispopulated end, \
                  (select 'sequence=' || pg_catalog.format_type(s.seqtypid, null) || ' start ' || s.seqstart || \
                          ' increment ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax || \
                          ' cache ' || s.seqcache || case when s.seqcycle then ' cycle' else '' end \
                     from pg_catalog.pg_sequence s where s.seqrelid = c.oid), \
                  {}) \
         from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and {SYSTEM_SCHEMA_FILTER} and {}",
        owner_acl("c.relowner", "c.relacl"),
        not_extension_member("pg_catalog.pg_class", "c.oid")
    )
}

/// The query of each view and materialized view, keyed like `relations`, compared apart:
/// between versions the same query may be printed another way, and is then compared as the
/// target prints the source's.
pub fn view_definitions() -> String {
    format!(
        "select case c.relkind when 'v' then 'view' else 'materialized view' end || ' ' || \
                pg_catalog.format('%I.%I', n.nspname, c.relname), \
                pg_catalog.pg_get_viewdef(c.oid) \
         from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where c.relkind in ('v', 'm') and {SYSTEM_SCHEMA_FILTER} and {} and ($1 or $2 or true)",
        not_extension_member("pg_catalog.pg_class", "c.oid")
    )
}

/// A temporary view of a query, to see how this server prints it (rolled back after).
pub fn temp_view(query: &str) -> String {
    format!(
        "create temporary view neoncopy_compare_view as {}",
        query.trim().trim_end_matches(';')
    )
}

pub const TEMP_VIEW_DEFINITION: &str =
    "select pg_catalog.pg_get_viewdef('pg_temp.neoncopy_compare_view'::regclass)";

pub fn columns(server_version: i32) -> String {
    let generated = if server_version >= 120000 {
        "case when a.attgenerated = 's' then 'generated always as (' || \
              pg_catalog.pg_get_expr(d.adbin, d.adrelid) || ') stored' \
              when a.atthasdef then 'default ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) end"
    } else {
        "case when a.atthasdef then 'default ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) end"
    };
    format!(
        "select 'column ' || pg_catalog.format('%I.%I.%I', n.nspname, c.relname, a.attname), \
                concat_ws(' ', 'position ' || row_number() over (partition by a.attrelid order by a.attnum), \
                  pg_catalog.format_type(a.atttypid, a.atttypmod), \
                  case when a.attnotnull then 'not null' end, \
                  {generated}, \
                  case when not c.relispartition then case a.attidentity \
                       when 'a' then 'generated always as identity' \
                       when 'd' then 'generated by default as identity' end end, \
                  (select 'collate ' || pg_catalog.format('%I.%I', cn.nspname, co.collname) \
                     from pg_catalog.pg_collation co join pg_catalog.pg_namespace cn on cn.oid = co.collnamespace \
                    where co.oid = a.attcollation and a.attcollation <> t.typcollation), \
                  case when a.attstattarget > 0 then 'statistics ' || a.attstattarget end, \
                  case when $2 then 'acl=' || coalesce(a.attacl::text, '(default)') end) \
         from pg_catalog.pg_attribute a \
         join pg_catalog.pg_class c on c.oid = a.attrelid \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         join pg_catalog.pg_type t on t.oid = a.atttypid \
         left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum \
         where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f') \
           and {SYSTEM_SCHEMA_FILTER} and {} and ($1 or true)",
        not_extension_member("pg_catalog.pg_class", "c.oid")
    )
}

pub fn indexes() -> String {
    format!(
        "select 'index ' || pg_catalog.format('%I.%I', n.nspname, ic.relname), \
                concat_ws(' ', pg_catalog.pg_get_indexdef(i.indexrelid), \
                  case when i.indisclustered then 'clustered' end, \
                  case when i.indisreplident then 'replica-identity' end, \
                  case when not i.indisvalid then 'invalid' end) \
         from pg_catalog.pg_index i \
         join pg_catalog.pg_class ic on ic.oid = i.indexrelid \
         join pg_catalog.pg_class t on t.oid = i.indrelid \
         join pg_catalog.pg_namespace n on n.oid = ic.relnamespace \
         where {SYSTEM_SCHEMA_FILTER} and {} and ($1 or $2 or true)",
        not_extension_member("pg_catalog.pg_class", "t.oid")
    )
}

/// Constraints, but those a server derives from another (a partitioned table's on each
/// partition, a foreign key's on each partition it references: `conparentid`), whose names
/// and number depend on the version.
pub fn constraints() -> String {
    format!(
        "select 'constraint ' || pg_catalog.format('%I.%I.%I', n.nspname, c.relname, con.conname), \
                concat_ws(' ', pg_catalog.pg_get_constraintdef(con.oid), \
                  case when con.condeferrable then 'deferrable' end, \
                  case when con.condeferred then 'initially-deferred' end, \
                  case when not con.convalidated then 'not-valid' end) \
         from pg_catalog.pg_constraint con \
         join pg_catalog.pg_class c on c.oid = con.conrelid \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where {SYSTEM_SCHEMA_FILTER} and {} and ($1 or $2 or true) \
           and con.conparentid = 0",
        not_extension_member("pg_catalog.pg_class", "c.oid")
    )
}

/// Functions, procedures and aggregates. Their arguments are written without `IN` (which
/// PostgreSQL 14 and later print for procedures), and the functions a server makes for a
/// type of its own accord (a range's constructors, and from 14 its multirange's) are left
/// out: they come with the type.
pub fn functions() -> String {
    format!(
        "select case p.prokind when 'p' then 'procedure ' when 'a' then 'aggregate ' else 'function ' end || \
                pg_catalog.format('%I.%I', n.nspname, p.proname) || \
                '(' || pg_catalog.regexp_replace(pg_catalog.pg_get_function_identity_arguments(p.oid), \
                                                 '(^|, )IN ', '\\1', 'g') || ')', \
                concat_ws(' ', \
                  case when p.prokind = 'a' then \
                    (select 'returns ' || pg_catalog.pg_get_function_result(p.oid) || \
                            ' sfunc ' || a.aggtransfn::regproc::text || \
                            ' stype ' || pg_catalog.format_type(a.aggtranstype, null) || \
                            ' finalfunc ' || a.aggfinalfn::regproc::text || \
                            ' initcond ' || coalesce(a.agginitval, '(null)') \
                       from pg_catalog.pg_aggregate a where a.aggfnoid = p.oid) \
                  when p.prokind = 'p' then \
                    (select pg_catalog.regexp_replace(pg_catalog.split_part(f.def, E'\\n', 1), \
                                                      '([(]|, )IN ', '\\1', 'g') || \
                            pg_catalog.substr(f.def, pg_catalog.length(pg_catalog.split_part(f.def, E'\\n', 1)) + 1) \
                       from (select pg_catalog.pg_get_functiondef(p.oid) as def) f) \
                  else pg_catalog.pg_get_functiondef(p.oid) end, \
                  {}) \
         from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace \
         where {SYSTEM_SCHEMA_FILTER} and {} \
           and not exists (select 1 from pg_catalog.pg_depend d \
                           where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid \
                             and d.refclassid = 'pg_catalog.pg_type'::regclass and d.deptype = 'i')",
        owner_acl("p.proowner", "p.proacl"),
        not_extension_member("pg_catalog.pg_proc", "p.oid")
    )
}

pub fn triggers() -> String {
    format!(
        "select 'trigger ' || pg_catalog.format('%I.%I.%I', n.nspname, c.relname, tg.tgname), \
                pg_catalog.pg_get_triggerdef(tg.oid) || ' enabled=' || tg.tgenabled::text \
         from pg_catalog.pg_trigger tg \
         join pg_catalog.pg_class c on c.oid = tg.tgrelid \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where not tg.tgisinternal and {SYSTEM_SCHEMA_FILTER} and {} and ($1 or $2 or true)",
        not_extension_member("pg_catalog.pg_class", "c.oid")
    )
}

pub fn policies() -> String {
    format!(
        "select 'policy ' || pg_catalog.format('%I.%I.%I', n.nspname, c.relname, pol.polname), \
                concat_ws(' ', 'command=' || pol.polcmd::text, \
                  case when pol.polpermissive then 'permissive' else 'restrictive' end, \
                  'roles=' || (select string_agg(case when r = 0 then 'public' \
                                    else pg_catalog.pg_get_userbyid(r)::text end, ',' order by 1) \
                               from unnest(pol.polroles) r), \
                  'using=' || pg_catalog.pg_get_expr(pol.polqual, pol.polrelid), \
                  'check=' || pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid)) \
         from pg_catalog.pg_policy pol \
         join pg_catalog.pg_class c on c.oid = pol.polrelid \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where {SYSTEM_SCHEMA_FILTER} and ($1 or $2 or true)"
    )
}

pub fn rules() -> String {
    format!(
        "select 'rule ' || pg_catalog.format('%I.%I.%I', n.nspname, c.relname, r.rulename), \
                pg_catalog.pg_get_ruledef(r.oid) \
         from pg_catalog.pg_rewrite r \
         join pg_catalog.pg_class c on c.oid = r.ev_class \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where r.rulename <> '_RETURN' and {SYSTEM_SCHEMA_FILTER} and ($1 or $2 or true)"
    )
}

pub fn types() -> String {
    format!(
        "select case t.typtype when 'e' then 'enum ' when 'd' then 'domain ' when 'r' then 'range ' \
                  else 'type ' end || pg_catalog.format('%I.%I', n.nspname, t.typname), \
                concat_ws(' ', \
                  case t.typtype \
                    when 'e' then 'labels=' || (select string_agg(pg_catalog.quote_literal(e.enumlabel), ',' \
                                                  order by e.enumsortorder) \
                                                from pg_catalog.pg_enum e where e.enumtypid = t.oid) \
                    when 'd' then 'base=' || pg_catalog.format_type(t.typbasetype, t.typtypmod) || \
                                  case when t.typnotnull then ' not null' else '' end || \
                                  coalesce(' default ' || t.typdefault, '') || \
                                  coalesce(' ' || (select string_agg(con.conname || ' ' || \
                                                     pg_catalog.pg_get_constraintdef(con.oid), ', ' \
                                                     order by con.conname) \
                                                   from pg_catalog.pg_constraint con where con.contypid = t.oid), '') \
                    when 'c' then 'attributes=' || (select string_agg(pg_catalog.quote_ident(a.attname) || ' ' || \
                                                       pg_catalog.format_type(a.atttypid, a.atttypmod), ', ' \
                                                       order by a.attnum) \
                                                     from pg_catalog.pg_attribute a \
                                                     where a.attrelid = t.typrelid and a.attnum > 0 \
                                                       and not a.attisdropped) \
                    when 'r' then (select 'subtype=' || pg_catalog.format_type(r.rngsubtype, null) || \
                                          ' subdiff=' || r.rngsubdiff::regproc::text \
                                   from pg_catalog.pg_range r where r.rngtypid = t.oid) \
                  end, {}) \
         from pg_catalog.pg_type t join pg_catalog.pg_namespace n on n.oid = t.typnamespace \
         where t.typtype in ('e', 'd', 'r', 'c') \
           and (t.typtype <> 'c' or (select c.relkind from pg_catalog.pg_class c where c.oid = t.typrelid) = 'c') \
           and {SYSTEM_SCHEMA_FILTER} and {}",
        owner_acl("t.typowner", "t.typacl"),
        not_extension_member("pg_catalog.pg_type", "t.oid")
    )
}

pub const EXTENSIONS: &str = "select 'extension ' || pg_catalog.quote_ident(e.extname), \
            'version ' || e.extversion || ' schema ' || pg_catalog.quote_ident(n.nspname) \
     from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace \
     where ($1 or $2 or true)";

/// Comments on the user's objects (OIDs from 16384 are not built in), and on the database.
pub const COMMENTS: &str =
    "select 'comment on ' || pg_catalog.pg_describe_object(d.classoid, d.objoid, d.objsubid), \
            d.description \
     from pg_catalog.pg_description d where d.objoid >= 16384 and ($1 or $2 or true) \
     union all \
     select 'comment on the database', s.description \
     from pg_catalog.pg_shdescription s join pg_catalog.pg_database db on db.oid = s.objoid \
     where s.classoid = 'pg_catalog.pg_database'::regclass and db.datname = current_database()";

pub const DATABASE_SETTINGS: &str = "select 'database setting ' || split_part(c, '=', 1), \
            substr(c, length(split_part(c, '=', 1)) + 2) \
     from pg_catalog.pg_db_role_setting s \
     join pg_catalog.pg_database db on db.oid = s.setdatabase and db.datname = current_database(), \
          unnest(s.setconfig) c \
     where s.setrole = 0 and ($1 or $2 or true)";

/// Rows, and a 64-bit hash of each row's text summed exactly (as numeric, no wrap-around), for
/// the rows of one table (or part) a condition selects: order does not matter; a changed byte
/// changes that row's hash and so the sum, a missing or a duplicated row adds or removes one.
/// (md5 would cost the servers three times as much, a second seeded hash twice: the row's text
/// is made once per hash.) The row is named `(alias.*)`: a bare alias would mean a column, should
/// the table have one of that name. The second sum is always 0; it keeps the result's shape.
/// With `counts_only`, the rows only (both sums 0).
pub fn table_checksum(
    schema: &str,
    table: &str,
    only: bool,
    condition: Option<&str>,
    counts_only: bool,
) -> String {
    let only = if only { "only " } else { "" };
    let condition = condition.map(|c| format!(" where {c}")).unwrap_or_default();
    let sum = if counts_only {
        "'0'"
    } else {
        "coalesce(sum(pg_catalog.hashtextextended((nc_row.*)::text, 0)), 0)::text"
    };
    format!(
        "select count(*)::int8, {sum}, '0' from {only}{} nc_row{condition}",
        qualified(schema, table)
    )
}

/// Large objects: how many only.
pub const LARGE_OBJECTS_COUNT: &str =
    "select count(*)::int8, '0', '0' from pg_catalog.pg_largeobject_metadata";

/// Large objects: how many, and the same sums over (oid, md5 of the contents).
pub const LARGE_OBJECTS_CHECKSUM: &str = "select count(*)::int8, \
            coalesce(sum(pg_catalog.hashtextextended(h, 0)), 0)::text, '0' \
     from (select m.oid::text || ':' || pg_catalog.md5(pg_catalog.lo_get(m.oid)) as h \
           from pg_catalog.pg_largeobject_metadata m) x";
