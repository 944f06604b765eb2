//! Test harness: throwaway PostgreSQL clusters started with initdb/pg_ctl on free loopback
//! ports in temporary directories (as the `postgres` user when the tests run as root), fresh
//! databases per test, and helpers that compare a source and a target object by object and
//! row by row.
//!
//! Missing server binaries fail the run loudly: nothing is skipped.

#![allow(dead_code)]

pub mod proxy;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use tokio_postgres::{Client, NoTls};

/// The role a managed service gives its users: no superuser, but CREATEDB, CREATEROLE, the
/// data-access roles, and ownership of the database.
pub const MANAGED_ROLE: &str = "neon_owner";

/// A role that must log in with a password (scram-sha-256), and its password.
pub const PASSWORD_ROLE: &str = "pw_user";
pub const PASSWORD: &str = "Right-pw%42";

pub struct Cluster {
    pub name: &'static str,
    pub port: u16,
    pub dir: PathBuf,
    /// initdb, pg_ctl, postgres.
    bin: PathBuf,
    /// psql, pg_dump and pg_restore able to read this server.
    pub client: PathBuf,
    /// The server's major version.
    pub major: u32,
}

static CLUSTERS: OnceLock<(Cluster, Cluster)> = OnceLock::new();
static STARTED: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

extern "C" {
    fn atexit(cb: extern "C" fn()) -> i32;
}

extern "C" fn stop_clusters() {
    let started = STARTED.lock().map(|s| s.clone()).unwrap_or_default();
    for (bin, dir) in started {
        let _ = as_postgres(Command::new(bin.join("pg_ctl")).args([
            "-D",
            &dir.join("data").display().to_string(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs the command as the `postgres` user when we are root (initdb and postgres refuse root).
fn as_postgres(cmd: &mut Command) -> &mut Command {
    if is_root() {
        let program = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        let mut wrapped = Command::new("runuser");
        wrapped
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args);
        *cmd = wrapped;
    }
    cmd
}

/// Directory holding initdb, pg_ctl and postgres: $NEONCOPY_TEST_PGBIN, else the newest
/// /usr/lib/postgresql/*/bin, else pg_config --bindir.
pub fn server_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("NEONCOPY_TEST_PGBIN") {
        return PathBuf::from(dir);
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("initdb").is_file() && p.join("postgres").is_file())
        .collect();
    candidates.sort();
    if let Some((_, p)) = candidates.pop() {
        return p;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").is_file() {
            return p;
        }
    }
    panic!(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: run scripts/test.sh \
         (it installs them as root) or `apt-get install postgresql-15`, or set NEONCOPY_TEST_PGBIN"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free loopback port")
}

pub fn postgres_uid() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// Where scripts/ensure-deps.sh puts the servers of other major versions and the
/// PostgreSQL 18 client programs.
pub fn pg_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("NEONCOPY_PG_CACHE") {
        return PathBuf::from(dir);
    }
    if is_root() {
        return PathBuf::from("/var/cache/neoncopy/pg");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    base.join("neoncopy/pg")
}

/// The major version of the default servers (Debian's).
pub const DEFAULT_MAJOR: u32 = 15;

/// initdb, pg_ctl and postgres of a major version: Debian's for the default one, else from
/// the cache scripts/ensure-deps.sh fills. Missing ones fail loudly.
pub fn server_bin_of(major: u32) -> PathBuf {
    if major == DEFAULT_MAJOR {
        return server_bin();
    }
    let dir = pg_cache().join(format!("server-{major}/bin"));
    assert!(
        dir.join("postgres").is_file(),
        "the PostgreSQL {major} server is missing from {}: run scripts/ensure-deps.sh",
        dir.display()
    );
    dir
}

/// The PostgreSQL 18 client programs (pg_dump, pg_restore, psql) from the cache.
pub fn client18_bin() -> PathBuf {
    let dir = pg_cache().join("client-18/bin");
    assert!(
        dir.join("pg_dump").is_file(),
        "the PostgreSQL 18 client programs are missing from {}: run scripts/ensure-deps.sh",
        dir.display()
    );
    dir
}

/// Client programs able to read a server of `major`: Debian's for the default version and
/// older (this machine's Debian server is dumped with its own pg_dump), the 18 ones above.
pub fn client_bin_of(major: u32) -> PathBuf {
    if major <= DEFAULT_MAJOR {
        server_bin()
    } else {
        client18_bin()
    }
}

static VERSIONED: Mutex<Vec<(u32, &'static Cluster)>> = Mutex::new(Vec::new());

/// A server of `major` for one test alone (one that restarts it), stopped at exit.
pub fn dedicated_cluster(name: &'static str, major: u32) -> &'static Cluster {
    Box::leak(Box::new(Cluster::start_version(name, major)))
}

/// A server of `major`, started on first use and shared by the tests (stopped at exit).
pub fn cluster(major: u32) -> &'static Cluster {
    let mut all = VERSIONED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = all.iter().find(|(m, _)| *m == major) {
        return c;
    }
    let name: &'static str = Box::leak(format!("pg{major}").into_boxed_str());
    let c: &'static Cluster = Box::leak(Box::new(Cluster::start_version(name, major)));
    all.push((major, c));
    c
}

impl Cluster {
    fn start(name: &'static str) -> Cluster {
        Cluster::start_with(name, |_, _| String::new())
    }

    fn start_version(name: &'static str, major: u32) -> Cluster {
        Cluster::start_full(name, major, |_, _| String::new())
    }

    /// Starts a cluster; `prepare` gets the cluster's directory and data directory after
    /// initdb and returns extra server options.
    pub fn start_with(name: &'static str, prepare: impl FnOnce(&Path, &Path) -> String) -> Cluster {
        Cluster::start_full(name, DEFAULT_MAJOR, prepare)
    }

    fn start_full(
        name: &'static str,
        major: u32,
        prepare: impl FnOnce(&Path, &Path) -> String,
    ) -> Cluster {
        let bin = server_bin_of(major);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("neoncopy-test-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create cluster directory");
        if is_root() {
            let (uid, gid) =
                postgres_uid().expect("root needs a `postgres` user to run the servers");
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown cluster dir");
        }
        let data = dir.join("data");
        let out = as_postgres(Command::new(bin.join("initdb")).args([
            "-D",
            &data.display().to_string(),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]))
        .output()
        .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // One role must give a password over TCP (scram-sha-256); everyone else is trusted.
        let hba = data.join("pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        std::fs::write(
            &hba,
            format!("host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n{rest}"),
        )
        .expect("write pg_hba.conf");
        let extra = prepare(&dir, &data);
        STARTED.lock().unwrap().push((bin.clone(), dir.clone()));
        if STARTED.lock().unwrap().len() == 1 {
            unsafe {
                atexit(stop_clusters);
            }
        }
        for _ in 0..5 {
            let port = free_port();
            // wal_level=logical: the replication tests create logical slots.
            let opts = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
                 -c max_wal_size=2GB -c shared_buffers=64MB -c wal_level=logical \
                 -c max_replication_slots=20 -c max_wal_senders=20 {extra}",
                dir.display()
            );
            let status = as_postgres(Command::new(bin.join("pg_ctl")).args([
                "-D",
                &data.display().to_string(),
                "-l",
                &dir.join("log").display().to_string(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ]))
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl");
            if status.success() {
                let c = Cluster {
                    name,
                    port,
                    dir,
                    bin,
                    client: client_bin_of(major),
                    major,
                };
                // pg_read_all_data and pg_write_all_data exist from PostgreSQL 14.
                let data_roles = |role: &str| {
                    if major >= 14 {
                        format!("grant pg_read_all_data, pg_write_all_data to {role};")
                    } else {
                        String::new()
                    }
                };
                c.psql(
                    "postgres",
                    &format!(
                        "create role {MANAGED_ROLE} login createdb createrole; {} \
                     create role app_owner login; create role app_reader login; \
                     create role {PASSWORD_ROLE} login password '{PASSWORD}'; {}",
                        data_roles(MANAGED_ROLE),
                        data_roles(PASSWORD_ROLE)
                    ),
                );
                return c;
            }
        }
        panic!(
            "could not start the {name} test server; see {}",
            dir.join("log").display()
        );
    }

    /// Restarts the server (fast shutdown), as a crash-free restart of a managed service does.
    pub fn restart(&self) {
        let status = as_postgres(Command::new(self.bin.join("pg_ctl")).args([
            "-D",
            &self.dir.join("data").display().to_string(),
            "-l",
            &self.dir.join("log").display().to_string(),
            "-w",
            "-t",
            "60",
            "-m",
            "fast",
            "restart",
        ]))
        .stdout(Stdio::null())
        .status()
        .expect("run pg_ctl restart");
        assert!(status.success(), "pg_ctl restart failed");
    }

    pub fn uri(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn uri_as(&self, db: &str, user: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with psql (which understands multi-statement scripts and meta-commands), and
    /// panics with psql's output on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.run_psql(db, sql);
        assert!(
            out.status.success(),
            "psql on {} failed: {}\nSQL: {sql}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// [`Cluster::psql`] for cleanups: whether it succeeded, never a panic.
    pub fn try_psql(&self, db: &str, sql: &str) -> bool {
        self.run_psql(db, sql).status.success()
    }

    fn run_psql(&self, db: &str, sql: &str) -> std::process::Output {
        // A script file, not -c: each statement commits on its own, as in an application.
        let mut script = tempfile::NamedTempFile::new().expect("temp file for SQL");
        std::io::Write::write_all(&mut script, sql.as_bytes()).expect("write SQL");
        Command::new(self.client.join("psql"))
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-f",
                &script.path().display().to_string(),
            ])
            .output()
            .expect("run psql")
    }

    pub async fn client(&self, db: &str) -> Client {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname={db}",
                self.port
            ),
            NoTls,
        )
        .await
        .unwrap_or_else(|e| panic!("connect to {} {db}: {e}", self.name));
        tokio::spawn(conn);
        client
    }

    /// pg_dump --schema-only --no-owner --no-acl, without the lines that differ on every run.
    pub fn schema_dump(&self, db: &str) -> String {
        self.schema_dump_with(db, &["--no-owner", "--no-acl"])
    }

    /// pg_dump --schema-only with more options, without the lines that differ on every run
    /// (the random key of `\restrict`).
    pub fn schema_dump_with(&self, db: &str, options: &[&str]) -> String {
        let out = Command::new(self.client.join("pg_dump"))
            .args(["--schema-only", "--encoding=UTF8"])
            .args(options)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                db,
            ])
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub fn source() -> &'static Cluster {
    &clusters().0
}

pub fn target() -> &'static Cluster {
    &clusters().1
}

fn clusters() -> &'static (Cluster, Cluster) {
    CLUSTERS.get_or_init(|| {
        let s = std::thread::spawn(|| Cluster::start("source"));
        let t = Cluster::start("target");
        (s.join().expect("start source cluster"), t)
    })
}

/// A source and a target database made for one test.
pub struct Pair {
    pub src: String,
    pub dst: String,
    /// The servers they are on.
    pub src_cluster: &'static Cluster,
    pub dst_cluster: &'static Cluster,
    /// Environment of the clones (PATH with more client programs).
    pub env: Vec<(String, String)>,
    pub workdir: tempfile::TempDir,
    /// How the last clone ran (as the managed-style role or not, and its extra arguments):
    /// the reference restore of `assert_faithful` runs the same way.
    last_clone: Mutex<Option<(bool, Vec<String>)>>,
    /// The pg_dump and pg_restore of the reference (those the clone used); by default the
    /// source server's own clients.
    pub reference_tools: Mutex<Option<PathBuf>>,
}

/// Makes fresh databases named after the test: the target owned by the managed-style role when
/// `managed` is set.
pub fn fresh_pair(test: &str, managed: bool) -> Pair {
    fresh_pair_on(test, managed, source(), target())
}

/// [`fresh_pair`] on given servers.
pub fn fresh_pair_on(
    test: &str,
    managed: bool,
    source: &'static Cluster,
    target: &'static Cluster,
) -> Pair {
    let src = format!("{test}_src");
    let dst = format!("{test}_dst");
    source.psql("postgres", &format!("drop database if exists \"{src}\""));
    source.psql("postgres", &format!("create database \"{src}\""));
    target.psql("postgres", &format!("drop database if exists \"{dst}\""));
    let owner = if managed {
        format!(" owner {MANAGED_ROLE}")
    } else {
        String::new()
    };
    target.psql("postgres", &format!("create database \"{dst}\"{owner}"));
    target.psql(
        "postgres",
        &format!("drop database if exists \"{}\"", reference_db(&dst)),
    );
    Pair {
        src,
        dst,
        src_cluster: source,
        dst_cluster: target,
        env: Vec::new(),
        workdir: tempfile::tempdir().expect("work directory"),
        last_clone: Mutex::new(None),
        reference_tools: Mutex::new(None),
    }
}

/// The database the reference restore of a target goes to, on the target's server.
pub fn reference_db(dst: &str) -> String {
    format!("{dst}_ref")
}

impl Pair {
    /// The clone's state database in the work directory.
    pub fn state(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.workdir.path().join("state.db")).expect("open state.db")
    }

    /// The one number a query of the clone's state database returns.
    pub fn state_count(&self, sql: &str) -> i64 {
        self.state()
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn source_uri(&self) -> String {
        self.src_cluster.uri(&self.src)
    }

    /// --source and --target of the pair, with --no-owner --no-acl when `managed`.
    pub fn connection_args(&self, managed: bool) -> Vec<String> {
        let mut args = vec![
            "--source".to_string(),
            self.source_uri(),
            "--target".into(),
            self.target_uri(managed),
        ];
        if managed {
            args.extend(["--no-owner".into(), "--no-acl".into()]);
        }
        args
    }

    pub fn target_uri(&self, managed: bool) -> String {
        if managed {
            self.dst_cluster.uri_as(&self.dst, MANAGED_ROLE)
        } else {
            self.dst_cluster.uri(&self.dst)
        }
    }

    /// Runs `neoncopy clone` from this pair's source to its target with extra arguments.
    pub fn clone_with(&self, managed: bool, extra: &[&str]) -> Output {
        let args = self.clone_args(managed, extra);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        neoncopy(&args, &env)
    }

    /// The arguments of [`Pair::clone_with`], noted for `assert_faithful`'s reference: for a
    /// clone run some other way (in the background, say).
    pub fn clone_args(&self, managed: bool, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "clone".to_string(),
            "--source".into(),
            self.source_uri(),
            "--target".into(),
            self.target_uri(managed),
            "--dir".into(),
            self.workdir.path().display().to_string(),
        ];
        if managed {
            args.push("--no-owner".into());
            args.push("--no-acl".into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        self.note_clone(managed, extra);
        args
    }

    /// The log the clone keeps in its work directory.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.workdir.path().join("neoncopy.log"))
            .expect("neoncopy.log in the work directory")
    }

    /// Records how a clone started outside `clone_with` runs, for `assert_faithful`'s
    /// reference (`managed`: as the managed-style role with --no-owner --no-acl).
    pub fn note_clone(&self, managed: bool, extra: &[&str]) {
        *self.last_clone.lock().unwrap() =
            Some((managed, extra.iter().map(|s| s.to_string()).collect()));
    }

    /// The reference for the last clone: the source restored with pg_dump -Fc | pg_restore
    /// and the same flags, as the same role, into a fresh database on the target's server.
    /// Returns its name.
    pub fn reference(&self) -> String {
        self.try_reference().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Pair::reference`], or what pg_dump or pg_restore said when it failed.
    pub fn try_reference(&self) -> Result<String, String> {
        let (managed, extra) = self
            .last_clone
            .lock()
            .unwrap()
            .clone()
            .expect("a clone ran before the reference is made");
        let db = reference_db(&self.dst);
        let t = self.dst_cluster;
        t.psql("postgres", &format!("drop database if exists \"{db}\""));
        let owner = if managed {
            format!(" owner {MANAGED_ROLE}")
        } else {
            String::new()
        };
        t.psql("postgres", &format!("create database \"{db}\"{owner}"));
        let mut dump_args = vec!["--format=custom".to_string()];
        let mut restore_args: Vec<String> = Vec::new();
        if managed {
            restore_args.extend(["--no-owner".into(), "--no-acl".into()]);
        }
        for a in &extra {
            match a.as_str() {
                "--no-owner" | "--no-acl" | "--no-comments" => restore_args.push(a.clone()),
                "--skip-large-objects" => dump_args.push("--no-large-objects".into()),
                "--filters" => panic!("assert_faithful has no reference for --filters"),
                _ => {}
            }
        }
        let archive = self.workdir.path().join("reference.dump");
        let tools = self.reference_tools.lock().unwrap().clone();
        let tools = tools.unwrap_or_else(|| self.src_cluster.client.clone());
        let dump = Command::new(tools.join("pg_dump"))
            .args(&dump_args)
            .arg(format!("--file={}", archive.display()))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.src_cluster.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(&self.src)
            .output()
            .expect("run pg_dump");
        if !dump.status.success() {
            return Err(format!(
                "reference pg_dump failed: {}",
                String::from_utf8_lossy(&dump.stderr)
            ));
        }
        let role = if managed { MANAGED_ROLE } else { "postgres" };
        let restore = Command::new(tools.join("pg_restore"))
            .args(&restore_args)
            .args(["-h", "127.0.0.1", "-p", &t.port.to_string(), "-U", role])
            .arg(format!("--dbname={db}"))
            .arg(&archive)
            .output()
            .expect("run pg_restore");
        // Rows the reference cannot load (a PostgreSQL 14 source prints a "char" of a byte
        // over 127 as that byte, which UTF-8 refuses) do not matter to it: rows are compared
        // with the source. Any other error does.
        let err = String::from_utf8_lossy(&restore.stderr).to_string();
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("error:") && !l.contains("errors ignored on restore"))
            .collect();
        let only_rows =
            !errors.is_empty() && errors.iter().all(|l| l.contains("COPY failed for table"));
        if !restore.status.success() && !only_rows {
            return Err(format!("reference pg_restore failed: {err}"));
        }
        Ok(db)
    }

    /// How many relations of the user's the target database holds.
    pub async fn target_relations(&self) -> i64 {
        let t = self.dst_cluster.client(&self.dst).await;
        scalar(
            &t,
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname not in ('pg_catalog', 'information_schema') \
               and n.nspname !~ '^pg_toast'",
        )
        .await
    }

    /// Whether the last clone carried database settings.
    fn carried_db_properties(&self) -> bool {
        self.last_clone
            .lock()
            .unwrap()
            .as_ref()
            .is_none_or(|(_, extra)| !extra.iter().any(|a| a == "--skip-db-properties"))
    }

    /// Clones and asserts success.
    pub fn clone_ok(&self, managed: bool, extra: &[&str]) -> Output {
        let out = self.clone_with(managed, extra);
        assert!(
            out.status.success(),
            "clone failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Runs the neoncopy binary with the environment cleared of connection variables.
pub fn neoncopy(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_neoncopy"));
    cmd.args(args)
        .env_remove("NEONCOPY_SOURCE_PGURI")
        .env_remove("NEONCOPY_TARGET_PGURI")
        .env_remove("PGCOPYDB_SOURCE_PGURI")
        .env_remove("PGCOPYDB_TARGET_PGURI")
        .env_remove("PGPASSWORD")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run neoncopy")
}

/// Asserts a failure with exit code `code` and exactly one error line, holding `needle`.
pub fn assert_one_line_error(out: &std::process::Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr:\n{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{err}");
    assert!(
        errors[0].contains(needle),
        "expected {needle:?} in {:?}",
        errors[0]
    );
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace"),
        "{err}"
    );
}

/// `neoncopy check --json` with these arguments (and, in `env`, the environment): its exit
/// code and its checks.
pub fn check_with(args: &[String], env: &[(&str, &str)]) -> (Option<i32>, Vec<serde_json::Value>) {
    let mut all = vec!["check".to_string(), "--json".to_string()];
    all.extend(args.iter().cloned());
    let out = neoncopy(&all, env);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        )
    });
    (out.status.code(), v.as_array().unwrap().clone())
}

/// `neoncopy check --json` with these arguments.
pub fn check(args: &[String]) -> (Option<i32>, Vec<serde_json::Value>) {
    check_with(args, &[])
}

/// `list tables --json` of the pair's source, with `extra` arguments.
pub fn list_tables_json(pair: &Pair, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<String> = vec![
        "list".into(),
        "tables".into(),
        "--json".into(),
        "--source".into(),
        pair.source_uri(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = neoncopy(&args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("list tables --json prints JSON")
}

/// The check of this name among a check's results.
pub fn find<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The first column of the only row a query returns.
pub async fn scalar<T: for<'a> tokio_postgres::types::FromSql<'a>>(c: &Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// Every relation whose rows the clone must carry: tables (own rows only) and materialized
/// views, by qualified name. A partitioned table hash-partitioned on a user type (an enum) is
/// `routed`: its rows are compared whole, since each server's hash puts them in other
/// partitions; its partitions are `routed leaf`, not compared one by one.
async fn relations(c: &Client) -> Vec<(String, String, String)> {
    c.query(
        "with routed as ( \
           select pt.partrelid from pg_partitioned_table pt \
           where pt.partstrat = 'h' and exists (select 1 from pg_attribute a \
             where a.attrelid = pt.partrelid and a.attnum = any(pt.partattrs::int2[]) \
               and a.atttypid >= 16384)) \
         select n.nspname::text, c.relname::text, \
                case when c.relispartition and exists (select 1 from routed r \
                       join pg_partition_ancestors(c.oid) a on a.relid = r.partrelid \
                       where a.relid <> c.oid) then 'routed leaf' \
                     when c.oid in (select partrelid from routed) then 'routed' \
                     when c.relispopulated then c.relkind::text else 'unpopulated' end \
         from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where c.relkind in ('r', 'm', 'p') \
           and n.nspname not in ('pg_catalog', 'information_schema') \
           and n.nspname !~ '^pg_toast' \
         order by 1, 2",
        &[],
    )
    .await
    .expect("list relations")
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

fn qident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// All rows of a relation as text, sorted: a multiset compare that sees a changed byte, a
/// missing row and a duplicated row. (`alias.*`, not the bare alias, which would mean a column
/// of that name if the table has one.)
pub async fn rows_of(c: &Client, schema: &str, name: &str, kind: &str) -> Vec<String> {
    let only = if kind == "r" { "only " } else { "" };
    let q = format!(
        "select (nc_row.*)::text from {only}{}.{} nc_row order by 1",
        qident(schema),
        qident(name)
    );
    c.query(&q, &[])
        .await
        .unwrap_or_else(|e| panic!("read {schema}.{name}: {e:?}"))
        .into_iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect()
}

async fn single_column(c: &Client, q: &str) -> Vec<String> {
    c.query(q, &[])
        .await
        .unwrap_or_else(|e| panic!("{q}: {e:?}"))
        .into_iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect()
}

/// Each sequence's last_value and is_called, read from the sequences themselves.
async fn sequence_states(c: &Client) -> Vec<String> {
    let names = single_column(
        c,
        "select format('%I.%I', n.nspname, c.relname) from pg_class c \
         join pg_namespace n on n.oid = c.relnamespace where c.relkind = 'S' order by 1",
    )
    .await;
    let mut out = Vec::new();
    for n in names {
        let row = c
            .query_one(
                &format!("select last_value::text || ' ' || is_called::text from {n}"),
                &[],
            )
            .await
            .expect("read sequence");
        out.push(format!("{n} {}", row.get::<_, String>(0)));
    }
    out
}

const LARGE_OBJECTS: &str = "select m.oid::text || ' ' || md5(pg_catalog.lo_get(m.oid)) || ' ' || \
     coalesce(obj_description(m.oid, 'pg_largeobject'), '') \
     from pg_largeobject_metadata m order by m.oid";

const DB_SETTINGS: &str = "select coalesce(array_to_string(s.setconfig, ' | '), '') || ' ' || \
     coalesce(shobj_description(d.oid, 'pg_database'), '') || ' ' || \
     coalesce((select string_agg(r.rolname || ': ' || array_to_string(rs.setconfig, ' | '), ', ' \
                                 order by r.rolname) \
               from pg_db_role_setting rs join pg_roles r on r.oid = rs.setrole \
               where rs.setdatabase = d.oid), '') \
     from pg_database d left join pg_db_role_setting s on s.setdatabase = d.oid and s.setrole = 0 \
     where d.datname = current_database()";

/// Panics with the lines that differ when two schema dumps are not identical.
fn assert_same_dump(what: &str, a: &str, b: &str) {
    if a != b {
        let x: Vec<&str> = a.lines().collect();
        let y: Vec<&str> = b.lines().collect();
        let missing: Vec<&&str> = x.iter().filter(|l| !y.contains(l)).take(20).collect();
        let extra: Vec<&&str> = y.iter().filter(|l| !x.contains(l)).take(20).collect();
        let first = x
            .iter()
            .zip(&y)
            .position(|(p, q)| p != q)
            .unwrap_or(x.len().min(y.len()));
        panic!(
            "{what}: schema differs from line {} on.\nonly in the first: {missing:#?}\nonly in the second: {extra:#?}\nfirst: {:?}\nsecond: {:?}",
            first + 1,
            x.get(first),
            y.get(first)
        );
    }
}

/// Asserts that the target is a faithful copy of the source. The reference is pg_dump |
/// pg_restore of the source with the clone's flags into a fresh database beside the target:
/// every line of `pg_dump --schema-only` (owners, privileges and `--` lines included) must
/// be the same for both. Against the source itself: the schema without owners and
/// privileges, the rows of every table and materialized view, sequences (last_value and
/// is_called), large objects (oid, data, comment) and database settings and comment (which
/// the reference does not carry).
pub async fn assert_faithful(pair: &Pair) {
    let (source, target) = (pair.src_cluster, pair.dst_cluster);
    let reference = pair.reference();
    assert_same_dump(
        "target against pg_dump | pg_restore",
        &target.schema_dump_with(&reference, &[]),
        &target.schema_dump_with(&pair.dst, &[]),
    );
    // Dumps of two versions differ in form; within one version they must agree.
    if source.major == target.major {
        assert_same_dump(
            "target against the source",
            &source.schema_dump(&pair.src),
            &target.schema_dump(&pair.dst),
        );
    }
    let (s, t) = (
        source.client(&pair.src).await,
        target.client(&pair.dst).await,
    );
    let rels = relations(&s).await;
    assert_eq!(rels, relations(&t).await, "relations differ");
    for (schema, name, kind) in &rels {
        if kind == "p" || kind == "unpopulated" || kind == "routed leaf" {
            continue;
        }
        let a = rows_of(&s, schema, name, kind).await;
        let b = rows_of(&t, schema, name, kind).await;
        assert_eq!(a.len(), b.len(), "row count of {schema}.{name}");
        if a != b {
            let only_a: Vec<&String> = a.iter().filter(|r| !b.contains(r)).take(5).collect();
            let only_b: Vec<&String> = b.iter().filter(|r| !a.contains(r)).take(5).collect();
            panic!("rows of {schema}.{name} differ: only on the source {only_a:?}, only on the target {only_b:?}");
        }
    }
    assert_eq!(
        sequence_states(&s).await,
        sequence_states(&t).await,
        "sequences differ"
    );
    assert_eq!(
        single_column(&s, LARGE_OBJECTS).await,
        single_column(&t, LARGE_OBJECTS).await,
        "large objects differ"
    );
    if pair.carried_db_properties() {
        assert_eq!(
            single_column(&s, DB_SETTINGS).await,
            single_column(&t, DB_SETTINGS).await,
            "database settings differ"
        );
    }
}

/// The SQL of a fixture under tests/fixtures.
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Loads a fixture into a fresh source, clones it (onto a superuser target, or a managed-style
/// one with --no-owner --no-acl) and checks the copy is faithful. Returns the pair for further
/// checks.
pub async fn clone_fixture(test: &str, fixtures: &[&str], managed: bool) -> Pair {
    clone_fixture_with(test, fixtures, managed, &[]).await
}

/// [`clone_fixture`] with extra clone arguments.
pub async fn clone_fixture_with(
    test: &str,
    fixtures: &[&str],
    managed: bool,
    extra: &[&str],
) -> Pair {
    let pair = fresh_pair(test, managed);
    for f in fixtures {
        pair.src_cluster.psql(&pair.src, &fixture(f));
    }
    pair.clone_ok(managed, extra);
    assert_faithful(&pair).await;
    pair
}
