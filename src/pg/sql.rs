//! Every SQL text neoncopy sends, and the one way identifiers and literals are quoted.

/// Quotes an identifier, always (quoting a name that did not need it is harmless).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.name`, both parts quoted.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// A string literal that reads back the same whatever standard_conforming_strings says.
pub fn literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

/// A comma-separated list of quoted column names.
pub fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Schemas that are never the user's.
pub const SYSTEM_SCHEMA_FILTER: &str = "n.nspname not in ('pg_catalog', 'information_schema') \
     and n.nspname !~ '^pg_toast' and n.nspname !~ '^pg_temp_'";

pub const SERVER_VERSION: &str = "select current_setting('server_version_num')::int4";

/// Identity of the server and database a connection reached: two connections that return the
/// same row reached the same database.
pub const DATABASE_IDENTITY: &str = "select \
       case when pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'execute') \
            then (select system_identifier::text from pg_catalog.pg_control_system()) end, \
       pg_catalog.pg_postmaster_start_time()::text, \
       d.oid::int8, d.datname::text \
     from pg_catalog.pg_database d where d.datname = current_database()";

/// User tables already on the target (count and a few names for the message).
pub fn target_user_tables() -> String {
    format!(
        "select count(*)::int8, \
                coalesce(string_agg(x.name, ', ') filter (where x.rn <= 5), '') \
         from (select pg_catalog.format('%I.%I', n.nspname, c.relname) as name, \
                      row_number() over (order by n.nspname, c.relname) as rn \
               from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
               where c.relkind in ('r', 'p', 'm', 'f') and {SYSTEM_SCHEMA_FILTER} \
                 and not exists (select 1 from pg_catalog.pg_depend d \
                                 where d.classid = 'pg_catalog.pg_class'::regclass \
                                   and d.objid = c.oid and d.deptype = 'e')) x"
    )
}

pub const EXPORT_SNAPSHOT: &str = "select pg_catalog.pg_export_snapshot()";
pub const BEGIN_SNAPSHOT_TXN: &str = "begin isolation level repeatable read read only";

pub fn set_transaction_snapshot(id: &str) -> String {
    format!("set transaction snapshot {}", literal(id))
}

/// Built-in types whose binary COPY form is the value itself, the same on every server and
/// version neoncopy copies between: integers, floats, numeric, bool, text types, bytea,
/// date/time types, uuid, json and jsonb, network addresses, the built-in ranges and
/// multiranges, and arrays of all these (their element OIDs are the same everywhere). Domains
/// and ranges over them qualify too (`binary_safe_types`). Everything else goes as text:
/// reg* types carry OIDs, aclitem has no binary form, money and xml depend on settings,
/// extension types may differ between versions.
pub const BINARY_SAFE_TYPES: &str = "'pg_catalog.bool', 'pg_catalog.bytea', 'pg_catalog.char', \
     'pg_catalog.name', 'pg_catalog.int8', 'pg_catalog.int2', 'pg_catalog.int4', \
     'pg_catalog.text', 'pg_catalog.json', 'pg_catalog.float4', 'pg_catalog.float8', \
     'pg_catalog.macaddr', 'pg_catalog.macaddr8', 'pg_catalog.inet', 'pg_catalog.cidr', \
     'pg_catalog.bpchar', 'pg_catalog.varchar', 'pg_catalog.date', 'pg_catalog.time', \
     'pg_catalog.timestamp', 'pg_catalog.timestamptz', 'pg_catalog.interval', \
     'pg_catalog.timetz', 'pg_catalog.numeric', 'pg_catalog.uuid', 'pg_catalog.jsonb', \
     'pg_catalog.int4range', 'pg_catalog.numrange', 'pg_catalog.tsrange', \
     'pg_catalog.tstzrange', 'pg_catalog.daterange', 'pg_catalog.int8range'";

/// Multiranges (PostgreSQL 14+), binary-safe like their ranges.
const BINARY_SAFE_MULTIRANGES: &str = "'pg_catalog.int4multirange', 'pg_catalog.nummultirange', \
     'pg_catalog.tsmultirange', 'pg_catalog.tstzmultirange', 'pg_catalog.datemultirange', \
     'pg_catalog.int8multirange'";

/// A recursive CTE `binary_safe(oid)` of the types whose binary COPY form neoncopy uses.
pub fn binary_safe_types(server_version: i32) -> String {
    let (names, multirange) = if server_version >= 140000 {
        (
            format!("{BINARY_SAFE_TYPES}, {BINARY_SAFE_MULTIRANGES}"),
            "or (t.typtype = 'm' and exists (select 1 from pg_catalog.pg_range r \
                 where r.rngmultitypid = t.oid and r.rngtypid = s.oid))",
        )
    } else {
        (BINARY_SAFE_TYPES.to_string(), "")
    };
    format!(
        "binary_safe(oid) as ( \
           select b.oid from pg_catalog.pg_type b \
           where b.oid = any(array[{names}]::text[]::regtype[]::oid[]) \
           union \
           select b.typarray from pg_catalog.pg_type b \
           where b.oid = any(array[{names}]::text[]::regtype[]::oid[]) and b.typarray <> 0 \
           union \
           select t.oid from pg_catalog.pg_type t join binary_safe s \
             on (t.typtype = 'd' and t.typbasetype = s.oid) \
             or (t.typtype = 'r' and exists (select 1 from pg_catalog.pg_range r \
                 where r.rngtypid = t.oid and r.rngsubtype = s.oid)) \
             {multirange})"
    )
}

/// The top partitioned table through which a leaf partition must be loaded: when one of its
/// ancestors is hash-partitioned on a key whose hash depends on OIDs (an enum, a user type,
/// a user operator class), the target must route each row itself, as pg_dump's
/// --load-via-partition-root does (pg_dump forces it only for enums).
fn load_root(server_version: i32) -> &'static str {
    if server_version < 120000 {
        return "null::int8";
    }
    "case when c.relispartition and exists ( \
         select 1 from pg_catalog.pg_partition_ancestors(c.oid) a \
         join pg_catalog.pg_partitioned_table pt on pt.partrelid = a.relid \
         where pt.partstrat = 'h' and (exists ( \
               select 1 from pg_catalog.unnest(pt.partclass) k(opc) \
               join pg_catalog.pg_opclass o on o.oid = k.opc \
               where o.opcname = 'enum_ops' or o.opcintype >= 16384 \
                  or o.opcnamespace <> 'pg_catalog'::regnamespace) \
            or exists ( \
               select 1 from pg_catalog.pg_attribute pa \
               where pa.attrelid = pt.partrelid \
                 and pa.attnum = any(pt.partattrs::int2[]) and pa.atttypid >= 16384))) \
       then pg_catalog.pg_partition_root(c.oid)::int8 end"
}

/// The copyable columns of relation `c` (generated columns left out).
fn copy_columns(server_version: i32) -> String {
    let generated = if server_version >= 120000 {
        "and a.attgenerated = ''"
    } else {
        ""
    };
    format!(
        "coalesce((select array_agg(a.attname::text order by a.attnum) \
                   from pg_catalog.pg_attribute a \
                   where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped \
                   {generated}), '{{}}'::text[])"
    )
}

/// Whether every copyable column of relation `c` is of a binary-safe type.
fn all_binary_safe(server_version: i32) -> String {
    let generated = if server_version >= 120000 {
        "and a.attgenerated = ''"
    } else {
        ""
    };
    format!(
        "coalesce((select bool_and(a.atttypid in (select oid from binary_safe)) \
                   from pg_catalog.pg_attribute a \
                   where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped \
                   {generated}), true)"
    )
}

/// CTEs `matview_reads(oid)`: the relations materialized views read, directly or through
/// views, partitioned tables and inheritance parents.
const MATVIEW_READS: &str = "matview_edges(src, dst) as ( \
       select r.ev_class, d.refobjid from pg_catalog.pg_rewrite r \
       join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_rewrite'::regclass \
        and d.objid = r.oid and d.refclassid = 'pg_catalog.pg_class'::regclass \
       where r.rulename = '_RETURN' and d.refobjid <> r.ev_class \
       union all select i.inhparent, i.inhrelid from pg_catalog.pg_inherits i), \
     matview_reads(oid) as ( \
       select e.dst from matview_edges e \
       join pg_catalog.pg_class m on m.oid = e.src and m.relkind = 'm' \
       union \
       select e.dst from matview_reads x join matview_edges e on e.src = x.oid)";

/// The tables whose rows are copied: plain tables and partitions (partitioned parents hold no
/// rows), with their copyable columns, largest first. Extension members are the extension's
/// business, except its configuration tables, whose user rows pg_dump would also carry.
pub fn tables(server_version: i32) -> String {
    format!(
        "with recursive {}, {MATVIEW_READS} \
         select c.oid::int8, n.nspname::text, c.relname::text, \
                pg_catalog.pg_table_size(c.oid)::int8 as bytes, \
                greatest(c.reltuples, 0)::int8, \
                c.relpersistence = 'u', \
                ext.extcondition, \
                ext.extname, \
                {}, \
                (select a.attname::text from pg_catalog.pg_index i \
                 join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0] \
                 where i.indrelid = c.oid and i.indisunique and i.indisvalid and i.indnkeyatts = 1 \
                   and i.indpred is null and i.indexprs is null and a.attnotnull \
                   and a.atttypid in ('pg_catalog.int2'::regtype, 'pg_catalog.int4'::regtype, \
                                      'pg_catalog.int8'::regtype) \
                 order by i.indisprimary desc, i.indexrelid limit 1), \
                (pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8, \
                {}, \
                {}, \
                c.oid in (select oid from matview_reads) \
         from pg_catalog.pg_class c \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         left join lateral ( \
             select e.extconfig, e.extname::text, \
                    e.extcondition[pg_catalog.array_position(e.extconfig, c.oid)]::text as extcondition \
             from pg_catalog.pg_extension e where c.oid = any(e.extconfig) limit 1) ext on true \
         where c.relkind = 'r' and {SYSTEM_SCHEMA_FILTER} \
           and (ext.extconfig is not null or not exists ( \
                select 1 from pg_catalog.pg_depend d \
                where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid \
                  and d.deptype = 'e')) \
         order by bytes desc, n.nspname, c.relname",
        binary_safe_types(server_version),
        copy_columns(server_version),
        all_binary_safe(server_version),
        load_root(server_version),
    )
}

/// The partitioned tables $1 as tables rows are loaded through: oid, schema, name, copyable
/// columns, all of them binary-safe.
pub fn load_roots(server_version: i32) -> String {
    format!(
        "with recursive {} \
         select c.oid::int8, n.nspname::text, c.relname::text, {}, {} \
         from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where c.oid::int8 = any($1::int8[])",
        binary_safe_types(server_version),
        copy_columns(server_version),
        all_binary_safe(server_version),
    )
}

/// Indexes neoncopy builds itself: valid indexes of plain tables, partitions included (a
/// partition's share of a partitioned index is built as soon as that partition is copied,
/// and post-data's `ALTER INDEX ... ATTACH PARTITION` joins it to the parent's index, which
/// pg_restore creates `ON ONLY` the partitioned table). A primary key, unique or exclusion
/// constraint comes with its index.
pub const INDEXES: &str = "select i.indexrelid::int8, n.nspname::text, ic.relname::text, \
            i.indrelid::int8, con.oid::int8, con.conname::text, con.contype::text, \
            pg_catalog.pg_relation_size(i.indexrelid)::int8 \
     from pg_catalog.pg_index i \
     join pg_catalog.pg_class ic on ic.oid = i.indexrelid \
     join pg_catalog.pg_class t on t.oid = i.indrelid \
     join pg_catalog.pg_namespace n on n.oid = ic.relnamespace \
     left join pg_catalog.pg_constraint con \
            on con.conindid = i.indexrelid and con.conrelid = i.indrelid \
           and con.contype in ('p', 'u', 'x') \
     where i.indrelid = any($1::int8[]::oid[]) and t.relkind = 'r' \
       and i.indisvalid and i.indislive \
     order by i.indrelid, ic.relname";

/// Sequences of the user's schemas: not those of extensions, except the ones an extension
/// registered as configuration (pg_extension_config_dump), whose position pg_dump carries.
pub fn sequences() -> String {
    format!(
        "select c.oid::int8, n.nspname::text, c.relname::text, \
                (select e.extname::text from pg_catalog.pg_extension e \
                 where c.oid = any(e.extconfig) limit 1) \
         from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where c.relkind = 'S' and {SYSTEM_SCHEMA_FILTER} \
           and (not exists (select 1 from pg_catalog.pg_depend d \
                            where d.classid = 'pg_catalog.pg_class'::regclass \
                              and d.objid = c.oid and d.deptype = 'e') \
                or exists (select 1 from pg_catalog.pg_extension e \
                           where c.oid = any(e.extconfig))) \
         order by n.nspname, c.relname"
    )
}

/// One query reading the state of many sequences at once.
pub fn sequence_values(seqs: &[(String, String)]) -> String {
    seqs.iter()
        .enumerate()
        .map(|(i, (schema, name))| {
            format!(
                "select {i}::int4, last_value::int8, is_called from {}",
                qualified(schema, name)
            )
        })
        .collect::<Vec<_>>()
        .join(" union all ")
}

/// Sets many sequences in one statement: $1 qualified names, $2 values, $3 is_called.
pub const SET_SEQUENCES: &str =
    "select count(pg_catalog.setval(v.name::regclass, v.value, v.called)) \
     from unnest($1::text[], $2::int8[], $3::bool[]) as v(name, value, called)";

pub const LARGE_OBJECTS: &str =
    "select oid::int8 from pg_catalog.pg_largeobject_metadata order by oid";
/// Owner, comment and privileges of the large objects $1, as pg_dump reads them: owner name,
/// comment, whether the ACL is set, and each privilege as `PRIVILEGE grantee [with grant
/// option]`.
pub const LARGE_OBJECT_METADATA: &str = "select m.oid::int8, \
       pg_catalog.pg_get_userbyid(m.lomowner)::text, \
       pg_catalog.obj_description(m.oid, 'pg_largeobject'), \
       m.lomacl is not null, \
       coalesce((select array_agg(a.privilege_type || ' ' || \
                   case when a.grantee = 0 then 'public' \
                        else pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) end || \
                   case when a.is_grantable then ' with grant option' else '' end \
                   order by a.grantee, a.privilege_type) \
                 from pg_catalog.aclexplode(m.lomacl) a), '{}'::text[]) \
     from pg_catalog.pg_largeobject_metadata m where m.oid::int8 = any($1::int8[]) order by m.oid";

/// Which of the large objects $1 exist here.
pub const EXISTING_LARGE_OBJECTS: &str =
    "select oid::int8 from pg_catalog.pg_largeobject_metadata \
     where oid::int8 = any($1::int8[])";

pub const LO_READ: &str = "select pg_catalog.lo_get($1::int8::oid, $2::int8, $3::int4)";
pub const LO_WRITE: &str = "select pg_catalog.lo_put($1::int8::oid, $2::int8, $3::bytea)";
/// Database-level settings (ALTER DATABASE ... SET) and comment of the current database.
pub const DATABASE_SETTINGS: &str = "select coalesce(( \
            select s.setconfig::text[] from pg_catalog.pg_db_role_setting s \
            where s.setrole = 0 and s.setdatabase = d.oid), '{}'::text[]), \
        pg_catalog.shobj_description(d.oid, 'pg_database') \
     from pg_catalog.pg_database d where d.datname = current_database()";

/// Settings of roles in the current database (ALTER ROLE ... IN DATABASE ... SET): role
/// name and its settings.
pub const DATABASE_ROLE_SETTINGS: &str = "select r.rolname::text, s.setconfig::text[] \
     from pg_catalog.pg_db_role_setting s \
     join pg_catalog.pg_roles r on r.oid = s.setrole \
     join pg_catalog.pg_database d on d.oid = s.setdatabase \
     where d.datname = current_database() order by 1";

pub const CURRENT_DATABASE: &str = "select current_database()::text";
pub const LC_MONETARY: &str = "select current_setting('lc_monetary')";

/// Settings whose stored value is a list of names, each double-quoted where needed (pg_dump
/// knows the same ones as GUC_LIST_QUOTE).
pub const LIST_SETTINGS: &[&str] = &[
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// The elements of a list setting as stored (`"", public, "my schema"`): split at commas
/// outside double quotes, trimmed, and unquoted (a doubled quote inside is one quote).
pub fn split_setting_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        item.push('"');
                    } else {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                chars.next();
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| *c != ',') {
                item.push(c);
                chars.next();
            }
            item = item.trim_end().to_string();
        }
        out.push(item);
        if chars.next().is_none() {
            break;
        }
    }
    if out.len() == 1 && out[0].is_empty() && value.trim().is_empty() {
        out.clear();
    }
    out
}

/// `SET name TO value` for one `name=value` entry of pg_db_role_setting, as pg_dump writes it:
/// the value as a string literal, or for a list setting each element as one.
fn set_clause(entry: &str) -> Option<String> {
    let (name, value) = entry.split_once('=')?;
    let value = if LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        let items = split_setting_list(value);
        if items.is_empty() {
            literal("")
        } else {
            items
                .iter()
                .map(|i| literal(i))
                .collect::<Vec<_>>()
                .join(", ")
        }
    } else {
        literal(value)
    };
    Some(format!("set {} to {value}", ident(name)))
}

/// `ALTER DATABASE db SET name TO value` from a `name=value` entry of pg_db_role_setting.
pub fn alter_database_set(db: &str, entry: &str) -> Option<String> {
    Some(format!(
        "alter database {} {}",
        ident(db),
        set_clause(entry)?
    ))
}

/// `ALTER ROLE role IN DATABASE db SET name TO value`.
pub fn alter_role_in_database_set(role: &str, db: &str, entry: &str) -> Option<String> {
    Some(format!(
        "alter role {} in database {} {}",
        ident(role),
        ident(db),
        set_clause(entry)?
    ))
}

pub fn comment_on_database(db: &str, comment: &str) -> String {
    format!("comment on database {} is {}", ident(db), literal(comment))
}

/// COPY of a table's rows (or those a condition selects) to the client.
pub fn copy_out(
    schema: &str,
    table: &str,
    columns: &[String],
    condition: Option<&str>,
    binary: bool,
) -> String {
    let target = qualified(schema, table);
    let format = if binary { " with (format binary)" } else { "" };
    match condition.and_then(where_clause) {
        Some(cond) => {
            let cols = if columns.is_empty() {
                "*".to_string()
            } else {
                column_list(columns)
            };
            format!("copy (select {cols} from only {target} {cond}) to stdout{format}")
        }
        None if columns.is_empty() => format!("copy {target} to stdout{format}"),
        None => format!("copy {target} ({}) to stdout{format}", column_list(columns)),
    }
}

pub fn copy_in(
    schema: &str,
    table: &str,
    columns: &[String],
    freeze: bool,
    binary: bool,
) -> String {
    let target = qualified(schema, table);
    let cols = if columns.is_empty() {
        String::new()
    } else {
        format!(" ({})", column_list(columns))
    };
    let mut opts = Vec::new();
    if freeze {
        opts.push("freeze");
    }
    if binary {
        opts.push("format binary");
    }
    let opts = if opts.is_empty() {
        String::new()
    } else {
        format!(" with ({})", opts.join(", "))
    };
    format!("copy {target}{cols} from stdin{opts}")
}

/// The target-side record of committed table parts: a part's rows and its row here commit in
/// one transaction, so after any crash a part is either wholly there and recorded, or absent.
/// It lives in a schema of neoncopy's own, under a name checked to be free (`PARTS_SCHEMAS`),
/// recorded in the work directory, and dropped (without CASCADE) when the data is all in.
pub const PARTS_SCHEMAS: &[&str] = &[
    "neoncopy",
    "neoncopy_parts",
    "neoncopy_parts_1",
    "neoncopy_parts_2",
    "neoncopy_parts_3",
];

/// Whether a schema of this name ($1) exists, and whether it holds neoncopy's parts table.
pub const PARTS_SCHEMA_STATE: &str = "select exists (select 1 from pg_catalog.pg_namespace \
       where nspname = $1), \
     pg_catalog.to_regclass(pg_catalog.format('%I.parts', $1::text)) is not null";

pub fn create_parts_table(schema: &str) -> String {
    format!(
        "create schema {s}; \
         create table {s}.parts (table_oid int8 not null, part int4 not null, \
           rows int8 not null, primary key (table_oid, part))",
        s = ident(schema)
    )
}

pub fn committed_parts(schema: &str) -> String {
    format!("select table_oid, part from {}.parts", ident(schema))
}

pub fn drop_parts_schema(schema: &str) -> String {
    format!("drop table {s}.parts; drop schema {s}", s = ident(schema))
}

pub fn committed_part_rows(schema: &str, table_oid: u32, part: u32) -> String {
    format!(
        "select rows from {}.parts where table_oid = {table_oid} and part = {part}",
        ident(schema)
    )
}

pub fn record_part(schema: &str, table_oid: u32, part: u32, rows: u64) -> String {
    format!(
        "insert into {}.parts (table_oid, part, rows) values ({table_oid}, {part}, {rows})",
        ident(schema)
    )
}

/// A row condition as a WHERE clause: a part's range, or an extension's configuration filter
/// (stored with or without its WHERE). None when it selects every row.
fn where_clause(cond: &str) -> Option<String> {
    let cond = cond.trim();
    if cond.is_empty() {
        None
    } else if cond.to_ascii_lowercase().starts_with("where ") {
        Some(cond.to_string())
    } else {
        Some(format!("where {cond}"))
    }
}

/// Removes the rows an extension configuration table's filter selects, before they are
/// copied again (the extension's own rows, outside the filter, stay).
pub fn delete_matching(schema: &str, table: &str, condition: &str) -> String {
    match where_clause(condition) {
        Some(cond) => format!("delete from only {} {cond}", qualified(schema, table)),
        None => format!("delete from only {}", qualified(schema, table)),
    }
}

/// TRUNCATE of a table and everything that inherits from it (a partitioned table's
/// partitions).
pub fn truncate(schema: &str, table: &str) -> String {
    format!("truncate {}", qualified(schema, table))
}

/// COPY to the client of the rows of several partitions, read together to be loaded through
/// their partitioned table.
pub fn copy_out_of_leaves(leaves: &[(String, String)], columns: &[String], binary: bool) -> String {
    let cols = column_list(columns);
    let selects: Vec<String> = leaves
        .iter()
        .map(|(s, n)| format!("select {cols} from only {}", qualified(s, n)))
        .collect();
    let format = if binary { " with (format binary)" } else { "" };
    format!("copy ({}) to stdout{format}", selects.join(" union all "))
}

/// An ACCESS EXCLUSIVE lock on a table alone (not its children), as TRUNCATE ONLY takes.
pub fn lock_exclusive_only(schema: &str, table: &str) -> String {
    format!(
        "lock table only {} in access exclusive mode",
        qualified(schema, table)
    )
}

pub fn truncate_only(schema: &str, table: &str) -> String {
    format!("truncate only {}", qualified(schema, table))
}

pub fn analyze(schema: &str, table: &str, vacuum: bool) -> String {
    let verb = if vacuum {
        "vacuum (analyze)"
    } else {
        "analyze"
    };
    format!("{verb} {}", qualified(schema, table))
}

/// Boundaries that cut a table into parts of about equal rows along an integer key: the
/// key's quantiles, over a sample of the table when it is big.
pub fn key_quantiles(schema: &str, table: &str, key: &str, sample_percent: Option<f64>) -> String {
    let sample = match sample_percent {
        Some(p) => format!(" tablesample system ({p:.6})"),
        None => String::new(),
    };
    format!(
        "select pg_catalog.percentile_disc($1::float8[]) within group (order by {}::int8) from {}{sample}",
        ident(key),
        qualified(schema, table)
    )
}

/// `WHERE` clause of one part: an integer key range, or a range of heap pages.
pub fn part_condition(key: Option<&str>, lo: Option<i64>, hi: Option<i64>) -> String {
    let bound = |op: &str, v: i64| match key {
        Some(k) => format!("{} {op} {v}", ident(k)),
        None => format!("ctid {op} '({v},0)'::tid"),
    };
    match (lo, hi) {
        (Some(l), Some(h)) => format!("{} and {}", bound(">=", l), bound("<", h)),
        (Some(l), None) => bound(">=", l),
        (None, Some(h)) => bound("<", h),
        (None, None) => "true".into(),
    }
}

/// Every valid index of the user's tables, materialized views and partitioned tables.
pub const LIST_INDEXES: &str = "select i.indexrelid::int8, n.nspname::text, ic.relname::text, \
            pg_catalog.format('%I.%I', tn.nspname, t.relname), \
            case con.contype when 'p' then 'primary key' when 'u' then 'unique' \
                 when 'x' then 'exclusion' else 'index' end, \
            pg_catalog.pg_get_indexdef(i.indexrelid) \
     from pg_catalog.pg_index i \
     join pg_catalog.pg_class ic on ic.oid = i.indexrelid \
     join pg_catalog.pg_class t on t.oid = i.indrelid \
     join pg_catalog.pg_namespace n on n.oid = ic.relnamespace \
     join pg_catalog.pg_namespace tn on tn.oid = t.relnamespace \
     left join pg_catalog.pg_constraint con \
            on con.conindid = i.indexrelid and con.conrelid = i.indrelid \
           and con.contype in ('p', 'u', 'x') \
     where i.indisvalid and n.nspname not in ('pg_catalog', 'information_schema') \
       and n.nspname !~ '^pg_toast' and n.nspname !~ '^pg_temp_' \
       and not exists (select 1 from pg_catalog.pg_depend d \
                       where d.classid = 'pg_catalog.pg_class'::regclass \
                         and d.objid = t.oid and d.deptype = 'e') \
     order by n.nspname, t.relname, ic.relname";

pub const LIST_EXTENSIONS: &str = "select e.oid::int8, e.extname::text, e.extversion::text, \
            n.nspname::text, coalesce(pg_catalog.array_length(e.extconfig, 1), 0)::int8 \
     from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace \
     order by e.extname";

/// Of the qualified index names in $1, the positions (from 1) of those that exist.
pub const EXISTING_INDEXES: &str = "select x.i from unnest($1::text[]) with ordinality as x(n, i) \
     where pg_catalog.to_regclass(x.n) is not null";

/// How many locks the server's shared lock table holds:
/// max_locks_per_transaction × (max_connections + max_prepared_transactions).
pub const LOCK_TABLE_SIZE: &str = "select (current_setting('max_locks_per_transaction')::int8 \
       * (current_setting('max_connections')::int8 \
          + current_setting('max_prepared_transactions')::int8))::int8";

/// Which of the parameters $1 the server has.
pub const KNOWN_SETTINGS: &str =
    "select name::text from pg_catalog.pg_settings where name = any($1::text[])";

/// Of the (table, constraint name) pairs in $1 and $2, the positions (from 1) of those that
/// exist.
pub const EXISTING_CONSTRAINTS: &str = "select x.i from unnest($1::text[], $2::text[]) \
     with ordinality as x(t, c, i) \
     where exists (select 1 from pg_catalog.pg_constraint \
                   where conrelid = x.t::regclass and conname = x.c)";

pub const BACKEND_PID: &str = "select pg_catalog.pg_backend_pid()";
pub const TERMINATE_BACKEND: &str = "select pg_catalog.pg_terminate_backend($1)";
pub const BACKEND_ALIVE: &str =
    "select exists (select 1 from pg_catalog.pg_stat_activity where pid = $1)";
/// Ends the sessions of an earlier run of neoncopy (and of its pg_dump/pg_restore children),
/// found by their application_name; returns how many were signalled.
pub const TERMINATE_RUN: &str = "select count(pg_catalog.pg_terminate_backend(pid))::int8 \
     from pg_catalog.pg_stat_activity \
     where application_name = $1 and pid <> pg_catalog.pg_backend_pid()";
pub const RUN_SESSIONS: &str = "select count(*)::int8 from pg_catalog.pg_stat_activity \
     where application_name = $1 and pid <> pg_catalog.pg_backend_pid()";

/// The connected role: name, superuser, CREATEDB, CREATEROLE.
pub const CURRENT_ROLE: &str =
    "select r.rolname::text, r.rolsuper, r.rolcreatedb, r.rolcreaterole \
     from pg_catalog.pg_roles r where r.rolname = current_user";

/// Roles that own the user's objects (schemas, relations, functions, types, large objects).
pub fn object_owners() -> String {
    format!(
        "select distinct pg_catalog.pg_get_userbyid(o)::text from ( \
           select n.nspowner as o from pg_catalog.pg_namespace n where {SYSTEM_SCHEMA_FILTER} \
           union select c.relowner from pg_catalog.pg_class c \
             join pg_catalog.pg_namespace n on n.oid = c.relnamespace where {SYSTEM_SCHEMA_FILTER} \
           union select p.proowner from pg_catalog.pg_proc p \
             join pg_catalog.pg_namespace n on n.oid = p.pronamespace where {SYSTEM_SCHEMA_FILTER} \
           union select t.typowner from pg_catalog.pg_type t \
             join pg_catalog.pg_namespace n on n.oid = t.typnamespace where {SYSTEM_SCHEMA_FILTER} \
           union select lomowner from pg_catalog.pg_largeobject_metadata) x \
         where pg_catalog.pg_get_userbyid(o) not in ('pg_database_owner') order by 1"
    )
}

/// Roles that privileges on the user's schemas, relations and functions are granted to.
pub fn grantees() -> String {
    format!(
        "select distinct pg_catalog.pg_get_userbyid(a.grantee)::text from ( \
           select n.nspacl as acl from pg_catalog.pg_namespace n where {SYSTEM_SCHEMA_FILTER} \
           union all select c.relacl from pg_catalog.pg_class c \
             join pg_catalog.pg_namespace n on n.oid = c.relnamespace where {SYSTEM_SCHEMA_FILTER} \
           union all select p.proacl from pg_catalog.pg_proc p \
             join pg_catalog.pg_namespace n on n.oid = p.pronamespace where {SYSTEM_SCHEMA_FILTER}) x, \
           pg_catalog.aclexplode(x.acl) a \
         where x.acl is not null and a.grantee <> 0 \
           and pg_catalog.pg_get_userbyid(a.grantee) not in ('pg_database_owner') order by 1"
    )
}

/// Relations of the user's schemas (not an extension's) the connected role cannot read:
/// oid and quoted name.
pub fn unreadable_relations() -> String {
    format!(
        "select c.oid::int8, pg_catalog.format('%I.%I', n.nspname, c.relname) \
         from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and {SYSTEM_SCHEMA_FILTER} \
           and not exists (select 1 from pg_catalog.pg_depend d \
                           where d.classid = 'pg_catalog.pg_class'::regclass \
                             and d.objid = c.oid and d.deptype = 'e') \
           and not pg_catalog.has_table_privilege(c.oid, 'select') \
         order by 2"
    )
}

/// How many large objects the connected role cannot read.
pub fn unreadable_large_objects(server_version: i32) -> String {
    if server_version >= 180000 {
        "select count(*)::int8 from pg_catalog.pg_largeobject_metadata m \
         where not pg_catalog.has_largeobject_privilege(m.oid, 'select')"
            .to_string()
    } else {
        // Before 18 there is no has_largeobject_privilege: the owner, a superuser and the
        // roles granted SELECT (or PUBLIC) may read one, unless lo_compat_privileges is on.
        "select count(*)::int8 from pg_catalog.pg_largeobject_metadata m \
         where not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) \
           and current_setting('lo_compat_privileges') = 'off' \
           and not pg_catalog.pg_has_role(m.lomowner, 'usage') \
           and not exists (select 1 from pg_catalog.aclexplode(m.lomacl) a \
                           where a.privilege_type = 'SELECT' \
                             and (a.grantee = 0 or pg_catalog.pg_has_role(a.grantee, 'usage')))"
            .to_string()
    }
}

/// Which of the roles in $1 do not exist here.
pub const MISSING_ROLES: &str = "select r from unnest($1::text[]) r \
     where not exists (select 1 from pg_catalog.pg_roles where rolname = r) order by 1";

pub const SOURCE_EXTENSIONS: &str = "select extname::text, extversion::text \
     from pg_catalog.pg_extension where extname <> 'plpgsql' order by 1";

/// For extensions $1 at versions $2: available here, trusted, installed version, and whether
/// that exact version is available.
pub const EXTENSION_AVAILABILITY: &str = "select n.name, a.name is not null, \
       coalesce((select bool_or(v.trusted) from pg_catalog.pg_available_extension_versions v \
                 where v.name = n.name), false), \
       (select x.extversion::text from pg_catalog.pg_extension x where x.extname = n.name), \
       exists (select 1 from pg_catalog.pg_available_extension_versions v \
               where v.name = n.name and v.version = n.version) \
     from unnest($1::text[], $2::text[]) as n(name, version) \
     left join pg_catalog.pg_available_extensions a on a.name = n.name order by 1";

/// max_connections, the slots reserved for superusers (and, from PostgreSQL 16, for roles with
/// pg_use_reserved_connections), and the sessions open now.
pub const CONNECTION_LIMITS: &str = "select current_setting('max_connections')::int4, \
       current_setting('superuser_reserved_connections')::int4, \
       coalesce(current_setting('reserved_connections', true)::int4, 0), \
       (select count(*) from pg_catalog.pg_stat_activity where backend_type = 'client backend')::int4";

/// The relations pg_dump locks in its one transaction, outside the system schemas and
/// extensions: tables and partitioned tables (its LOCK TABLE), views and materialized views
/// (reading a view's definition locks it). Sequences and indexes take none in a schema dump.
pub fn dumped_relations() -> String {
    format!(
        "select c.oid::int8 from pg_catalog.pg_class c \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where c.relkind in ('r', 'p', 'v', 'm') and {SYSTEM_SCHEMA_FILTER} \
           and not exists (select 1 from pg_catalog.pg_depend d \
                           where d.classid = 'pg_catalog.pg_class'::regclass \
                             and d.objid = c.oid and d.deptype = 'e')"
    )
}

/// The size of the server's shared lock table, as PostgreSQL computes it:
/// max_locks_per_transaction per server process (client connections, autovacuum workers and
/// launcher, background workers, WAL senders) and per prepared transaction; and the entries
/// in use now (locks beyond each session's few fast-path slots).
pub const LOCK_TABLE: &str = "select current_setting('max_locks_per_transaction')::int8, \
       current_setting('max_connections')::int8 \
       + coalesce(current_setting('autovacuum_worker_slots', true), \
                  current_setting('autovacuum_max_workers'))::int8 + 1 \
       + current_setting('max_worker_processes')::int8 \
       + current_setting('max_wal_senders')::int8 \
       + current_setting('max_prepared_transactions')::int8, \
       (select count(*) from pg_catalog.pg_locks where not fastpath)::int8";

/// Whether pg_dump must be asked for its pre-data and post-data sections rather than
/// `--schema-only`: a materialized view (whose REFRESH entry is table data) or, when their
/// metadata is in pre-data ($1: they are copied, by pg_dump before 17), a large object.
pub const NEEDS_SECTIONS: &str =
    "select exists (select from pg_catalog.pg_class where relkind = 'm') \
       or ($1 and exists (select from pg_catalog.pg_largeobject_metadata))";
pub const LARGE_OBJECT_COUNT: &str =
    "select count(*)::int8 from pg_catalog.pg_largeobject_metadata";
pub const WAL_AND_SLOTS: &str = "select current_setting('wal_level'), \
       (select count(*) from pg_catalog.pg_replication_slots)::int8";
pub const SERVER_VERSION_TEXT: &str = "select current_setting('server_version')";
/// Whether this session is encrypted, and with what.
pub const SESSION_TLS: &str = "select coalesce((select s.ssl from pg_catalog.pg_stat_ssl s \
       where s.pid = pg_catalog.pg_backend_pid()), false), \
       coalesce((select s.version from pg_catalog.pg_stat_ssl s \
       where s.pid = pg_catalog.pg_backend_pid()), '')";

/// Relations a filter can select, with the partition parent or the table owning a sequence.
pub fn selection_relations() -> String {
    format!(
        "select c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, \
                coalesce((select i.inhparent::int8 from pg_catalog.pg_inherits i \
                          where i.inhrelid = c.oid and c.relispartition), \
                         (select d.refobjid::int8 from pg_catalog.pg_depend d \
                          where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid \
                            and d.refclassid = 'pg_catalog.pg_class'::regclass \
                            and d.deptype in ('a', 'i') and c.relkind = 'S' limit 1)) \
         from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where c.relkind in ('r', 'p', 'f', 'm', 'v', 'S') and {SYSTEM_SCHEMA_FILTER} \
           and not exists (select 1 from pg_catalog.pg_depend d \
                           where d.classid = 'pg_catalog.pg_class'::regclass \
                             and d.objid = c.oid and d.deptype = 'e')"
    )
}

pub fn selection_schemas() -> String {
    format!(
        "select n.nspname::text from pg_catalog.pg_namespace n where {SYSTEM_SCHEMA_FILTER} \
           and not exists (select 1 from pg_catalog.pg_depend d \
                           where d.classid = 'pg_catalog.pg_namespace'::regclass \
                             and d.objid = n.oid and d.deptype = 'e') order by 1"
    )
}

pub fn selection_indexes() -> String {
    format!(
        "select i.indexrelid::int8, n.nspname::text, ic.relname::text, i.indrelid::int8 \
         from pg_catalog.pg_index i join pg_catalog.pg_class ic on ic.oid = i.indexrelid \
         join pg_catalog.pg_namespace n on n.oid = ic.relnamespace where {SYSTEM_SCHEMA_FILTER}"
    )
}

/// Which of the names $1 match the regular expression $2.
pub const REGEX_MATCHES: &str = "select n from unnest($1::text[]) n where n ~ $2";

pub const QUOTE_IDENTS: &str = "select pg_catalog.quote_ident(n) \
     from unnest($1::text[]) with ordinality as x(n, i) order by i";

/// Every foreign key with what validating it reads: the bytes of its table and of the table
/// it references (null when either is partitioned: its partitions hold the rows); and the two
/// tables.
pub const FOREIGN_KEY_SIZES: &str = "select con.oid::int8, \
       case when c.relkind = 'p' or f.relkind = 'p' then null \
            else pg_catalog.pg_relation_size(c.oid) + pg_catalog.pg_relation_size(f.oid) end, \
       c.oid::int8, f.oid::int8 \
     from pg_catalog.pg_constraint con \
     join pg_catalog.pg_class c on c.oid = con.conrelid \
     join pg_catalog.pg_class f on f.oid = con.confrelid \
     where con.contype = 'f'";

/// (a view or other relation with rules, a relation its rules read), but for a view's own
/// rule reading the view.
pub const RULE_READS: &str = "select distinct r.ev_class::int8, d.refobjid::int8 \
     from pg_catalog.pg_depend d join pg_catalog.pg_rewrite r on r.oid = d.objid \
     where d.classid = 'pg_catalog.pg_rewrite'::regclass \
       and d.refclassid = 'pg_catalog.pg_class'::regclass and r.ev_class <> d.refobjid";

/// (an index, the partitioned index it is a partition of).
pub const INDEX_PARENTS: &str = "select i.inhrelid::int8, i.inhparent::int8 \
     from pg_catalog.pg_inherits i join pg_catalog.pg_class c on c.oid = i.inhparent \
     where c.relkind in ('i', 'I')";

/// Primary key, unique and exclusion constraints: oid, index, `schema.table.constraint`.
pub const INDEX_CONSTRAINTS: &str = "select con.oid::int8, con.conindid::int8, \
       pg_catalog.format('%I.%I.%I', n.nspname, c.relname, con.conname) \
     from pg_catalog.pg_constraint con join pg_catalog.pg_class c on c.oid = con.conrelid \
     join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
     where con.contype in ('p', 'u', 'x')";

/// Foreign keys, in the order of a scan of pg_constraint: oid, name, table, the table
/// referenced, the index relied on (each as an oid and as regclass writes it), and
/// `schema.table.constraint`.
pub const FILTER_FOREIGN_KEYS: &str = "select con.oid::int8, con.conname::text, \
       con.conrelid::int8, con.conrelid::regclass::text, \
       con.confrelid::int8, con.confrelid::regclass::text, \
       con.conindid::int8, con.conindid::regclass::text, \
       (select pg_catalog.format('%I.%I.%I', n.nspname, c.relname, con.conname) \
        from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
        where c.oid = con.conrelid) \
     from pg_catalog.pg_constraint con where con.contype = 'f'";

/// `--follow`: of the tables $1, those whose UPDATE and DELETE fail once published: no
/// replica identity (NOTHING, DEFAULT without a primary key, INDEX without its index).
pub const FOLLOW_KEYLESS_TABLES: &str = "select c.oid::int8, \
       pg_catalog.format('%I.%I', n.nspname, c.relname) \
     from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
     where c.oid::int8 = any($1) and c.relpersistence = 'p' and c.relkind = 'r' \
       and (c.relreplident = 'n' \
         or (c.relreplident = 'd' and not exists (select 1 from pg_catalog.pg_index i \
               where i.indrelid = c.oid and i.indisprimary)) \
         or (c.relreplident = 'i' and not exists (select 1 from pg_catalog.pg_index i \
               where i.indrelid = c.oid and i.indisreplident))) \
     order by 2";

/// `--follow` (13+, where a partition is published through its root): the partitioned tables
/// of which some but not all leaves are among the tables $1.
pub const FOLLOW_PARTLY_SELECTED_TREES: &str = "select distinct \
       pg_catalog.format('%I.%I', n.nspname, c.relname) \
     from unnest($1::int8[]) as t(oid) \
     join pg_catalog.pg_class c \
       on c.oid = pg_catalog.pg_partition_root(t.oid::oid) \
     join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
     where current_setting('server_version_num')::int >= 130000 \
       and exists (select 1 from pg_catalog.pg_partition_tree(c.oid) p \
                   join pg_catalog.pg_class l on l.oid = p.relid and l.relkind = 'r' \
                   where p.isleaf and not (p.relid::oid::int8 = any($1))) \
     order by 1";

/// `--follow`: wal_level, free replication slots and free WAL senders of the source.
pub const FOLLOW_SOURCE_SETTINGS: &str = "select current_setting('wal_level'), \
       current_setting('max_replication_slots')::int8 \
         - (select count(*) from pg_catalog.pg_replication_slots), \
       current_setting('max_wal_senders')::int8 \
         - (select count(*) from pg_catalog.pg_stat_replication)";

/// `--follow`: whether the source role may replicate (REPLICATION, superuser, or RDS's
/// rds_replication), create a publication in the database, and which of the tables $1 it
/// does not own (a publication of a table needs its owner).
pub const FOLLOW_SOURCE_ROLE: &str = "select \
       r.rolsuper or r.rolreplication or exists (select 1 from pg_catalog.pg_roles g \
         where g.rolname = 'rds_replication' and pg_catalog.pg_has_role(r.oid, g.oid, 'member')), \
       pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE'), \
       coalesce((select pg_catalog.array_agg(pg_catalog.format('%I.%I', n.nspname, c.relname) \
                   order by n.nspname, c.relname) \
         from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where c.oid::int8 = any($1) and not r.rolsuper \
           and not pg_catalog.pg_has_role(c.relowner, 'USAGE')), '{}')::text[] \
     from pg_catalog.pg_roles r where r.rolname = current_user";

/// `--follow`: the target's version, whether its role is a superuser, and whether it may
/// create a subscription (16+: pg_create_subscription and CREATE on the database).
pub const FOLLOW_TARGET_ROLE: &str = "select current_setting('server_version_num')::int4, \
       r.rolsuper, \
       exists (select 1 from pg_catalog.pg_roles g where g.rolname = 'pg_create_subscription' \
               and pg_catalog.pg_has_role(r.oid, g.oid, 'member')) \
         and pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE') \
     from pg_catalog.pg_roles r where r.rolname = current_user";

/// Replication slots of neoncopy runs on the source, with the WAL each retains.
pub const FOLLOW_LEFTOVER_SLOTS: &str = "select slot_name::text, \
       coalesce(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn), 0)::int8 \
     from pg_catalog.pg_replication_slots where slot_name::text like 'neoncopy\\_%' order by 1";

/// Whether the apply worker of subscription $1 runs, and how many of its tables are not ready
/// yet (being copied by table synchronization).
pub const FOLLOW_SUBSCRIPTION_READY: &str = "select exists (select 1 \
       from pg_catalog.pg_stat_subscription where subname = $1 and relid is null \
       and pid is not null), \
     (select count(*) from pg_catalog.pg_subscription_rel r \
       join pg_catalog.pg_subscription s on s.oid = r.srsubid \
       where s.subname = $1 and r.srsubstate <> 'r')";

/// For each of the tables $1 (OIDs), the relation its changes are published as: with $2
/// (13+) its topmost partitioned ancestor, else itself; and whether that relation is
/// permanent (an unlogged table cannot be published).
pub const FOLLOW_PUBLISHED_RELATION_OF: &str = "select t.oid, \
       pg_catalog.format('%I.%I', n.nspname, c.relname), c.relpersistence = 'p' \
     from unnest($1::int8[]) as t(oid) \
     join pg_catalog.pg_class c on c.oid = case when $2 \
       then coalesce(pg_catalog.pg_partition_root(t.oid::oid)::oid, t.oid::oid) else t.oid::oid end \
     join pg_catalog.pg_namespace n on n.oid = c.relnamespace";

/// Whether subscription $1 exists in this database.
pub const FOLLOW_SUBSCRIPTION_EXISTS: &str = "select exists (select 1 \
     from pg_catalog.pg_subscription s join pg_catalog.pg_database d on d.oid = s.subdbid \
     where s.subname = $1 and d.datname = pg_catalog.current_database())";

/// The process using slot $1, if any (no row: no such slot).
pub const FOLLOW_SLOT_ACTIVE: &str =
    "select active_pid from pg_catalog.pg_replication_slots where slot_name = $1";

/// Slot $1: WAL written on the source that the target has not confirmed, WAL the slot keeps,
/// and whether a walsender uses it.
pub const FOLLOW_SLOT_LAG: &str = "select \
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::int8, \
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::int8, active \
     from pg_catalog.pg_replication_slots where slot_name = $1";

/// Subscription $1's apply worker: last message from the source, position received, running
/// (its parallel apply workers, 16+, also have no relid: the leader is the one that receives).
pub const FOLLOW_SUBSCRIPTION_STATE: &str = "select max(last_msg_receipt_time)::text, \
       max(received_lsn)::text, count(pid) > 0 \
     from pg_catalog.pg_stat_subscription where subname = $1 and relid is null";

/// The source's current WAL position.
pub const CURRENT_WAL_LSN: &str = "select pg_catalog.pg_current_wal_lsn()::text";

/// Whether subscription $1 has received the source's WAL up to $2 (the apply worker applies
/// each message before it reads the next, so everything before it is applied), how far
/// behind it is, and whether its apply worker runs.
pub const FOLLOW_CAUGHT_UP: &str =
    "select coalesce(max(received_lsn) >= $2::text::pg_lsn, false), \
       pg_catalog.pg_wal_lsn_diff($2::text::pg_lsn, max(received_lsn))::int8, count(pid) > 0 \
     from pg_catalog.pg_stat_subscription where subname = $1 and relid is null";
/// Removes the target's large objects that are not among $1 (a cutover's copy again).
pub const LO_UNLINK_OTHERS: &str = "select count(pg_catalog.lo_unlink(m.oid)) \
     from pg_catalog.pg_largeobject_metadata m where m.oid::int8 <> all($1)";

/// Cuts large object $1 to $2 bytes (one statement: the descriptor lives in its transaction).
pub const LO_CUT: &str =
    "select pg_catalog.lo_truncate64(pg_catalog.lo_open($1::int8::oid, 131072), $2)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(qualified("My Schema", "t"), r#""My Schema"."t""#);
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\b'"), r"E'a\\b'''");
    }

    #[test]
    fn extension_filters_as_where_clauses() {
        assert_eq!(
            delete_matching("s", "t", "WHERE NOT builtin"),
            r#"delete from only "s"."t" WHERE NOT builtin"#
        );
        assert_eq!(
            delete_matching("s", "t", "id > 10"),
            r#"delete from only "s"."t" where id > 10"#
        );
        assert_eq!(
            delete_matching("s", "t", " "),
            r#"delete from only "s"."t""#
        );
        assert_eq!(
            copy_out("s", "t", &[], Some("where x"), false),
            r#"copy (select * from only "s"."t" where x) to stdout"#
        );
    }

    #[test]
    fn database_settings() {
        assert_eq!(
            alter_database_set("db", "work_mem=8MB").unwrap(),
            r#"alter database "db" set "work_mem" to '8MB'"#
        );
        assert_eq!(
            alter_database_set("db", r#"search_path=public, "x y""#).unwrap(),
            r#"alter database "db" set "search_path" to 'public', 'x y'"#
        );
        // The common hardening: an empty search_path, stored as "".
        assert_eq!(
            alter_database_set("db", r#"search_path="""#).unwrap(),
            r#"alter database "db" set "search_path" to ''"#
        );
        assert_eq!(
            alter_database_set("db", r#"search_path="$user", public, "a""b", """#).unwrap(),
            r#"alter database "db" set "search_path" to '$user', 'public', 'a"b', ''"#
        );
        assert_eq!(
            alter_database_set("db", r#"DateStyle=ISO, MDY"#).unwrap(),
            r#"alter database "db" set "DateStyle" to 'ISO, MDY'"#
        );
        assert_eq!(
            alter_role_in_database_set("app", "db", "statement_timeout=5s").unwrap(),
            r#"alter role "app" in database "db" set "statement_timeout" to '5s'"#
        );
        assert!(alter_database_set("db", "nonsense").is_none());
        assert_eq!(split_setting_list(""), Vec::<String>::new());
        assert_eq!(split_setting_list(" a ,b"), vec!["a", "b"]);
    }

    #[test]
    fn copy_statements() {
        let cols = vec!["id".to_string(), "Na me".to_string()];
        assert_eq!(
            copy_out("s", "t", &cols, None, false),
            r#"copy "s"."t" ("id", "Na me") to stdout"#
        );
        assert_eq!(
            copy_out("s", "t", &cols, Some("WHERE id > 5"), false),
            r#"copy (select "id", "Na me" from only "s"."t" WHERE id > 5) to stdout"#
        );
        assert_eq!(
            copy_out("s", "t", &cols, Some("\"id\" < 10"), true),
            r#"copy (select "id", "Na me" from only "s"."t" where "id" < 10) to stdout with (format binary)"#
        );
        assert_eq!(
            copy_in("s", "t", &[], true, false),
            r#"copy "s"."t" from stdin with (freeze)"#
        );
        assert_eq!(
            copy_in("s", "t", &[], true, true),
            r#"copy "s"."t" from stdin with (freeze, format binary)"#
        );
    }
}
