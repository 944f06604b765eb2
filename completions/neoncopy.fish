# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_neoncopy_global_optspecs
    string join \n log-format= v/verbose q/quiet h/help V/version
end

function __fish_neoncopy_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_neoncopy_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_neoncopy_using_subcommand
    set -l cmd (__fish_neoncopy_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c neoncopy -n "__fish_neoncopy_needs_command" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_needs_command" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_needs_command" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_needs_command" -s h -l help -d 'Print help'
complete -c neoncopy -n "__fish_neoncopy_needs_command" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_needs_command" -f -a "clone" -d 'Copy a database: schema, data, indexes, constraints, sequences, large objects'
complete -c neoncopy -n "__fish_neoncopy_needs_command" -f -a "list" -d 'Show a clone\'s progress, or what the source database holds'
complete -c neoncopy -n "__fish_neoncopy_needs_command" -f -a "compare" -d 'Prove the copy: compare the schema or the data of source and target'
complete -c neoncopy -n "__fish_neoncopy_needs_command" -f -a "check" -d 'Check before cloning: connections, versions, pg_dump, extensions, roles, connection limits, poolers; prints each check with a fix and exits 1 if any fails'
complete -c neoncopy -n "__fish_neoncopy_needs_command" -f -a "cutover" -d 'End an online migration started with clone --follow: wait for the target to catch up, carry sequences and large objects, compare, and release the replication'
complete -c neoncopy -n "__fish_neoncopy_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l source -d 'Source connection string (postgresql:// URI or key=value); also read from NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l target -d 'Target connection string (postgresql:// URI or key=value); also read from NEONCOPY_TARGET_PGURI, then PGCOPYDB_TARGET_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l dir -d 'Work directory: a clone\'s schema archive, its record (state.db, which list progress reads and compare adds its results to) and its log (neoncopy.log) [default: $TMPDIR/neoncopy, else /tmp/neoncopy]' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l table-jobs -d 'Number of tables copied at the same time' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l index-jobs -d 'Number of indexes and constraints built at the same time' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l restore-jobs -d 'Sessions creating the schema side by side (tables and what they need, in independent groups) and validating foreign keys on big tables side by side in the final schema step' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l split-tables-larger-than -d 'Tables larger than this (heap plus TOAST) are worked on in parts at the same time: 500MB, 1GB, 10GiB, or bytes; 0 never splits' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l split-max-parts -d 'Most parts one table is split into [default: --table-jobs]' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l maintenance-work-mem -d 'maintenance_work_mem of the index builds (e.g. 1GB; the server\'s default otherwise)' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l filters -d 'Only what these filters select: an INI file with sections include-only-schema, exclude-schema, include-only-table, exclude-table, exclude-index, exclude-table-data, include-only-extension, exclude-extension (pgcopydb\'s format; ~/regex/ patterns)' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l snapshot -d 'Use this already exported snapshot (from pg_export_snapshot() in a transaction the caller keeps open) instead of exporting one' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l follow-source -d 'The source as the target reaches it, for the subscription, when that differs from --source. The target stores this connection string, password included, in its pg_subscription catalog until cutover' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l retries -d 'How many times a failed step, table or index is tried again after a transient error (lost connection, server restart, a serverless compute waking up)' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l retry-delay -d 'Seconds to wait before the first retry; the wait doubles each time (with jitter)' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l retry-max-delay -d 'Longest wait between two retries, in seconds' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l no-owner -d 'Do not set ownership of objects to match the source (needed when the target role is not a superuser, as on Neon)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l no-acl -d 'Do not copy privileges (GRANT/REVOKE)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l no-comments -d 'Do not copy comments'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l skip-extensions -d 'Do not create extensions (they must already exist on the target)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l skip-large-objects -d 'Do not copy large objects'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l skip-vacuum -d 'Do not analyze tables after loading them'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l skip-db-properties -d 'Do not copy database-level settings (ALTER DATABASE ... SET) and the database comment'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l drop-if-exists -d 'Drop the source\'s objects from the target first (DROP ... IF EXISTS), allowing a target that already holds tables'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l not-consistent -d 'Do not read the source in one snapshot: faster to start, but not consistent if the source is being written to'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l resume -d 'Continue the interrupted clone recorded in --dir: what is done is skipped, what was under way is redone from scratch. Its snapshot ended with it, so add --not-consistent (or --snapshot ID) unless it was not consistent itself'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l restart -d 'Forget the clone recorded in --dir and start over'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l follow -d 'After the copy, keep the target following the source: changes committed after the clone\'s snapshot are streamed by a subscription on the target from a replication slot and publication made on the source, until `neoncopy cutover`'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -l replica-identity-full -d 'Set REPLICA IDENTITY FULL on the selected tables that have no primary key and no replica identity (without one, UPDATE and DELETE on them fail on the source once they are published); put back by cutover'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand clone" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -s h -l help -d 'Print help'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -f -a "progress" -d 'Progress of a running or finished clone, read from its work directory'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -f -a "tables" -d 'Tables of the source whose rows a clone copies, largest first'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -f -a "table-parts" -d 'How --split-tables-larger-than would split the source\'s big tables into parts'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -f -a "indexes" -d 'Indexes and index-backed constraints of the source, and which step builds each'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -f -a "sequences" -d 'Sequences of the source with their current values'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -f -a "extensions" -d 'Extensions installed in the source database'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and not __fish_seen_subcommand_from progress tables table-parts indexes sequences extensions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from progress" -l dir -d 'Work directory: a clone\'s schema archive, its record (state.db, which list progress reads and compare adds its results to) and its log (neoncopy.log) [default: $TMPDIR/neoncopy, else /tmp/neoncopy]' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from progress" -l source -d 'Source connection string of the clone (optional; checked against the one recorded, so that pgcopydb\'s `list progress --source ...` works unchanged); also read from NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from progress" -l target -d 'Target connection string: with --source, shows the replication of a clone --follow (lag, WAL kept on the source, the subscription\'s state); also read from NEONCOPY_TARGET_PGURI, then PGCOPYDB_TARGET_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from progress" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from progress" -l summary -d 'Show the step-by-step summary instead of the live view'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from progress" -l json -d 'Print JSON instead of a table'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from progress" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from progress" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from progress" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from progress" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from tables" -l filters -d 'Only what these filters select: an INI file with sections include-only-schema, exclude-schema, include-only-table, exclude-table, exclude-index, exclude-table-data, include-only-extension, exclude-extension (pgcopydb\'s format; ~/regex/ patterns)' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from tables" -l source -d 'Source connection string (postgresql:// URI or key=value); also read from NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from tables" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from tables" -l json -d 'Print JSON instead of a table'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from tables" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from tables" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from tables" -s h -l help -d 'Print help'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from tables" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from table-parts" -l filters -d 'Only what these filters select: an INI file with sections include-only-schema, exclude-schema, include-only-table, exclude-table, exclude-index, exclude-table-data, include-only-extension, exclude-extension (pgcopydb\'s format; ~/regex/ patterns)' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from table-parts" -l source -d 'Source connection string (postgresql:// URI or key=value); also read from NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from table-parts" -l split-tables-larger-than -d 'Tables larger than this (heap plus TOAST) are split: 500MB, 1GB, 10GiB, or bytes' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from table-parts" -l split-max-parts -d 'Most parts one table is split into' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from table-parts" -l table -d 'Only this table (schema.table; quote odd names as in SQL)' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from table-parts" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from table-parts" -l json -d 'Print JSON instead of a table'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from table-parts" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from table-parts" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from table-parts" -s h -l help -d 'Print help'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from table-parts" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from indexes" -l filters -d 'Only what these filters select: an INI file with sections include-only-schema, exclude-schema, include-only-table, exclude-table, exclude-index, exclude-table-data, include-only-extension, exclude-extension (pgcopydb\'s format; ~/regex/ patterns)' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from indexes" -l source -d 'Source connection string (postgresql:// URI or key=value); also read from NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from indexes" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from indexes" -l json -d 'Print JSON instead of a table'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from indexes" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from indexes" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from indexes" -s h -l help -d 'Print help'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from indexes" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from sequences" -l filters -d 'Only what these filters select: an INI file with sections include-only-schema, exclude-schema, include-only-table, exclude-table, exclude-index, exclude-table-data, include-only-extension, exclude-extension (pgcopydb\'s format; ~/regex/ patterns)' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from sequences" -l source -d 'Source connection string (postgresql:// URI or key=value); also read from NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from sequences" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from sequences" -l json -d 'Print JSON instead of a table'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from sequences" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from sequences" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from sequences" -s h -l help -d 'Print help'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from sequences" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from extensions" -l filters -d 'Only what these filters select: an INI file with sections include-only-schema, exclude-schema, include-only-table, exclude-table, exclude-index, exclude-table-data, include-only-extension, exclude-extension (pgcopydb\'s format; ~/regex/ patterns)' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from extensions" -l source -d 'Source connection string (postgresql:// URI or key=value); also read from NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from extensions" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from extensions" -l json -d 'Print JSON instead of a table'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from extensions" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from extensions" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from extensions" -s h -l help -d 'Print help'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from extensions" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from help" -f -a "progress" -d 'Progress of a running or finished clone, read from its work directory'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from help" -f -a "tables" -d 'Tables of the source whose rows a clone copies, largest first'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from help" -f -a "table-parts" -d 'How --split-tables-larger-than would split the source\'s big tables into parts'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from help" -f -a "indexes" -d 'Indexes and index-backed constraints of the source, and which step builds each'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from help" -f -a "sequences" -d 'Sequences of the source with their current values'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from help" -f -a "extensions" -d 'Extensions installed in the source database'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand list; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and not __fish_seen_subcommand_from schema data help" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and not __fish_seen_subcommand_from schema data help" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and not __fish_seen_subcommand_from schema data help" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and not __fish_seen_subcommand_from schema data help" -s h -l help -d 'Print help'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and not __fish_seen_subcommand_from schema data help" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and not __fish_seen_subcommand_from schema data help" -f -a "schema" -d 'Object by object: schemas, tables and columns, indexes, constraints, sequences (and their values), views, functions, triggers, policies, rules, types, extensions, comments, database settings. Exit 0 identical, 1 differences, 2 could not compare'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and not __fish_seen_subcommand_from schema data help" -f -a "data" -d 'Per table: row count and a checksum of all rows computed on the servers, the source read in one snapshot. Exit 0 identical, 1 differences, 2 could not compare'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and not __fish_seen_subcommand_from schema data help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -l source -d 'Source connection string (postgresql:// URI or key=value); also read from NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -l target -d 'Target connection string (postgresql:// URI or key=value); also read from NEONCOPY_TARGET_PGURI, then PGCOPYDB_TARGET_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -l filters -d 'Only what these filters select: an INI file with sections include-only-schema, exclude-schema, include-only-table, exclude-table, exclude-index, exclude-table-data, include-only-extension, exclude-extension (pgcopydb\'s format; ~/regex/ patterns)' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -l dir -d 'Work directory: a clone\'s schema archive, its record (state.db, which list progress reads and compare adds its results to) and its log (neoncopy.log) [default: $TMPDIR/neoncopy, else /tmp/neoncopy]' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -l compare-owners -d 'Compare owners too'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -l compare-acl -d 'Compare privileges (GRANTs) too'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -l json -d 'Print JSON instead of a table'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from schema" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -l source -d 'Source connection string (postgresql:// URI or key=value); also read from NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -l target -d 'Target connection string (postgresql:// URI or key=value); also read from NEONCOPY_TARGET_PGURI, then PGCOPYDB_TARGET_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -l filters -d 'Only what these filters select: an INI file with sections include-only-schema, exclude-schema, include-only-table, exclude-table, exclude-index, exclude-table-data, include-only-extension, exclude-extension (pgcopydb\'s format; ~/regex/ patterns)' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -l dir -d 'Work directory: a clone\'s schema archive, its record (state.db, which list progress reads and compare adds its results to) and its log (neoncopy.log) [default: $TMPDIR/neoncopy, else /tmp/neoncopy]' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -l table-jobs -d 'Tables checksummed at the same time on each server' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -l split-tables-larger-than -d 'Tables larger than this (heap plus TOAST) are worked on in parts at the same time: 500MB, 1GB, 10GiB, or bytes; 0 never splits' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -l split-max-parts -d 'Most parts one table is split into [default: --table-jobs]' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -l snapshot -d 'Use this already exported snapshot (from pg_export_snapshot() in a transaction the caller keeps open) instead of exporting one' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -l not-consistent -d 'Do not read the source in one snapshot: faster to start, but not consistent if the source is being written to'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -l json -d 'Print JSON instead of a table'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from data" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from help" -f -a "schema" -d 'Object by object: schemas, tables and columns, indexes, constraints, sequences (and their values), views, functions, triggers, policies, rules, types, extensions, comments, database settings. Exit 0 identical, 1 differences, 2 could not compare'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from help" -f -a "data" -d 'Per table: row count and a checksum of all rows computed on the servers, the source read in one snapshot. Exit 0 identical, 1 differences, 2 could not compare'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand compare; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l source -d 'Source connection string (postgresql:// URI or key=value); also read from NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l target -d 'Target connection string (postgresql:// URI or key=value); also read from NEONCOPY_TARGET_PGURI, then PGCOPYDB_TARGET_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l dir -d 'Work directory: a clone\'s schema archive, its record (state.db, which list progress reads and compare adds its results to) and its log (neoncopy.log) [default: $TMPDIR/neoncopy, else /tmp/neoncopy]' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l table-jobs -d 'Number of tables copied at the same time' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l index-jobs -d 'Number of indexes and constraints built at the same time' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l restore-jobs -d 'Sessions creating the schema side by side (tables and what they need, in independent groups) and validating foreign keys on big tables side by side in the final schema step' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l split-tables-larger-than -d 'Tables larger than this (heap plus TOAST) are worked on in parts at the same time: 500MB, 1GB, 10GiB, or bytes; 0 never splits' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l split-max-parts -d 'Most parts one table is split into [default: --table-jobs]' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l maintenance-work-mem -d 'maintenance_work_mem of the index builds (e.g. 1GB; the server\'s default otherwise)' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l filters -d 'Only what these filters select: an INI file with sections include-only-schema, exclude-schema, include-only-table, exclude-table, exclude-index, exclude-table-data, include-only-extension, exclude-extension (pgcopydb\'s format; ~/regex/ patterns)' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l snapshot -d 'Use this already exported snapshot (from pg_export_snapshot() in a transaction the caller keeps open) instead of exporting one' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l follow-source -d 'The source as the target reaches it, for the subscription, when that differs from --source. The target stores this connection string, password included, in its pg_subscription catalog until cutover' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l retries -d 'How many times a failed step, table or index is tried again after a transient error (lost connection, server restart, a serverless compute waking up)' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l retry-delay -d 'Seconds to wait before the first retry; the wait doubles each time (with jitter)' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l retry-max-delay -d 'Longest wait between two retries, in seconds' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l no-owner -d 'Do not set ownership of objects to match the source (needed when the target role is not a superuser, as on Neon)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l no-acl -d 'Do not copy privileges (GRANT/REVOKE)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l no-comments -d 'Do not copy comments'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l skip-extensions -d 'Do not create extensions (they must already exist on the target)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l skip-large-objects -d 'Do not copy large objects'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l skip-vacuum -d 'Do not analyze tables after loading them'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l skip-db-properties -d 'Do not copy database-level settings (ALTER DATABASE ... SET) and the database comment'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l drop-if-exists -d 'Drop the source\'s objects from the target first (DROP ... IF EXISTS), allowing a target that already holds tables'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l not-consistent -d 'Do not read the source in one snapshot: faster to start, but not consistent if the source is being written to'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l resume -d 'Continue the interrupted clone recorded in --dir: what is done is skipped, what was under way is redone from scratch. Its snapshot ended with it, so add --not-consistent (or --snapshot ID) unless it was not consistent itself'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l restart -d 'Forget the clone recorded in --dir and start over'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l follow -d 'After the copy, keep the target following the source: changes committed after the clone\'s snapshot are streamed by a subscription on the target from a replication slot and publication made on the source, until `neoncopy cutover`'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l replica-identity-full -d 'Set REPLICA IDENTITY FULL on the selected tables that have no primary key and no replica identity (without one, UPDATE and DELETE on them fail on the source once they are published); put back by cutover'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -l json -d 'Print JSON instead of a table'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand check" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -l source -d 'Source connection string (postgresql:// URI or key=value); also read from NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -l target -d 'Target connection string (postgresql:// URI or key=value); also read from NEONCOPY_TARGET_PGURI, then PGCOPYDB_TARGET_PGURI' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -l dir -d 'Work directory: a clone\'s schema archive, its record (state.db, which list progress reads and compare adds its results to) and its log (neoncopy.log) [default: $TMPDIR/neoncopy, else /tmp/neoncopy]' -r -F
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -l table-jobs -d 'Tables checksummed at the same time on each server' -r
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -l log-format -d 'How log lines are written: human-readable text, or one JSON object per line' -r -f -a "text\t''
json\t''"
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -l yes -d 'Do not ask whether writes to the source have stopped: they have'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -l counts-only -d 'Compare row counts only, not checksums of every row'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -l abort -d 'Abandon the migration: drop the subscription, the replication slot and the publication without cutting over, leaving the source as it was'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -s v -l verbose -d 'Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -s q -l quiet -d 'Print only warnings and errors'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand cutover" -s V -l version -d 'Print version'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and not __fish_seen_subcommand_from clone list compare check cutover help" -f -a "clone" -d 'Copy a database: schema, data, indexes, constraints, sequences, large objects'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and not __fish_seen_subcommand_from clone list compare check cutover help" -f -a "list" -d 'Show a clone\'s progress, or what the source database holds'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and not __fish_seen_subcommand_from clone list compare check cutover help" -f -a "compare" -d 'Prove the copy: compare the schema or the data of source and target'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and not __fish_seen_subcommand_from clone list compare check cutover help" -f -a "check" -d 'Check before cloning: connections, versions, pg_dump, extensions, roles, connection limits, poolers; prints each check with a fix and exits 1 if any fails'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and not __fish_seen_subcommand_from clone list compare check cutover help" -f -a "cutover" -d 'End an online migration started with clone --follow: wait for the target to catch up, carry sequences and large objects, compare, and release the replication'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and not __fish_seen_subcommand_from clone list compare check cutover help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and __fish_seen_subcommand_from list" -f -a "progress" -d 'Progress of a running or finished clone, read from its work directory'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and __fish_seen_subcommand_from list" -f -a "tables" -d 'Tables of the source whose rows a clone copies, largest first'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and __fish_seen_subcommand_from list" -f -a "table-parts" -d 'How --split-tables-larger-than would split the source\'s big tables into parts'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and __fish_seen_subcommand_from list" -f -a "indexes" -d 'Indexes and index-backed constraints of the source, and which step builds each'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and __fish_seen_subcommand_from list" -f -a "sequences" -d 'Sequences of the source with their current values'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and __fish_seen_subcommand_from list" -f -a "extensions" -d 'Extensions installed in the source database'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and __fish_seen_subcommand_from compare" -f -a "schema" -d 'Object by object: schemas, tables and columns, indexes, constraints, sequences (and their values), views, functions, triggers, policies, rules, types, extensions, comments, database settings. Exit 0 identical, 1 differences, 2 could not compare'
complete -c neoncopy -n "__fish_neoncopy_using_subcommand help; and __fish_seen_subcommand_from compare" -f -a "data" -d 'Per table: row count and a checksum of all rows computed on the servers, the source read in one snapshot. Exit 0 identical, 1 differences, 2 could not compare'
