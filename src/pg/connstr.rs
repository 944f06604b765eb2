//! Connection strings as libpq takes them: `postgresql://` URIs and `key=value` strings, with
//! the PG* environment variables and the password file as fallbacks.
//!
//! The parsed form keeps every keyword, so that the same settings reach our own connections and
//! the pg_dump/pg_restore children (as a connection string without the password, the password
//! going through the environment).

use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Keywords accepted in a connection string, with the environment variable libpq reads for each.
const KEYWORDS: &[(&str, Option<&str>)] = &[
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("dbname", Some("PGDATABASE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("client_encoding", Some("PGCLIENTENCODING")),
    ("options", Some("PGOPTIONS")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("keepalives", None),
    ("keepalives_idle", None),
    ("keepalives_interval", None),
    ("keepalives_count", None),
    ("tcp_user_timeout", None),
    ("sslmode", Some("PGSSLMODE")),
    ("sslcompression", Some("PGSSLCOMPRESSION")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslpassword", None),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcrl", Some("PGSSLCRL")),
    ("sslcrldir", Some("PGSSLCRLDIR")),
    ("sslsni", Some("PGSSLSNI")),
    ("requirepeer", Some("PGREQUIREPEER")),
    ("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    ("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    ("gssencmode", Some("PGGSSENCMODE")),
    ("krbsrvname", Some("PGKRBSRVNAME")),
    ("gsslib", Some("PGGSSLIB")),
    ("service", Some("PGSERVICE")),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
];

/// Keywords whose values are secrets: never logged, never put on a child's command line.
const SECRET_KEYWORDS: &[&str] = &["password", "sslpassword"];

/// A parsed connection string. Values are as libpq would see them after parsing.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnParams {
    params: BTreeMap<String, String>,
}

impl std::fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Where the environment variables come from: the process, or a fixed map in unit tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl ConnParams {
    /// Parses a connection string and completes it from the process environment, the libpq
    /// defaults and the password file.
    pub fn parse(input: &str) -> Result<ConnParams> {
        Self::parse_with_env(input, &ProcessEnv)
    }

    pub fn parse_with_env(input: &str, env: &dyn Env) -> Result<ConnParams> {
        let mut params = parse_raw(input)?;
        for (key, var) in KEYWORDS {
            if params.contains_key(*key) {
                continue;
            }
            if let Some(value) = var.and_then(|v| env.var(v)) {
                params.insert((*key).to_string(), value);
            }
        }
        let mut p = ConnParams { params };
        p.fill_defaults(env);
        if !p.params.contains_key("password") {
            if let Some(pw) = p.password_from_passfile(env)? {
                p.params.insert("password".into(), pw);
            }
        }
        Ok(p)
    }

    fn fill_defaults(&mut self, env: &dyn Env) {
        if !self.params.contains_key("host") && !self.params.contains_key("hostaddr") {
            let socket_dir = ["/var/run/postgresql", "/tmp"]
                .into_iter()
                .find(|d| Path::new(d).is_dir())
                .unwrap_or("/tmp");
            self.params.insert("host".into(), socket_dir.into());
        }
        if !self.params.contains_key("user") {
            let user = env
                .var("USER")
                .or_else(|| env.var("LOGNAME"))
                .unwrap_or_else(|| "postgres".into());
            self.params.insert("user".into(), user);
        }
        if !self.params.contains_key("dbname") {
            let user = self.params["user"].clone();
            self.params.insert("dbname".into(), user);
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    pub fn dbname(&self) -> &str {
        self.get("dbname").unwrap_or_default()
    }

    pub fn user(&self) -> &str {
        self.get("user").unwrap_or_default()
    }

    pub fn password(&self) -> Option<&str> {
        self.get("password")
    }

    pub fn hosts(&self) -> Vec<String> {
        split_list(self.get("host").or(self.get("hostaddr")).unwrap_or(""))
    }

    pub fn ports(&self) -> Vec<u16> {
        split_list(self.get("port").unwrap_or("5432"))
            .iter()
            .map(|p| p.parse().unwrap_or(5432))
            .collect()
    }

    /// The connection string for a child process: every setting but the secrets, which go
    /// through the environment (see [`ConnParams::child_env`]).
    pub fn to_libpq_without_secrets(&self) -> String {
        self.params
            .iter()
            .filter(|(k, _)| !SECRET_KEYWORDS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={}", quote_value(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The connection string for a libpq client program of major version `client_major`,
    /// without secrets. `sslrootcert=system` (the system's trusted roots) exists in libpq
    /// from 16: for an older client it becomes the path of the system's CA bundle.
    pub fn to_libpq_for_client(&self, client_major: u32) -> anyhow::Result<String> {
        if client_major >= 16 || self.get("sslrootcert") != Some("system") {
            return Ok(self.to_libpq_without_secrets());
        }
        let bundle = system_ca_bundle().ok_or_else(|| {
            anyhow::anyhow!(
                "sslrootcert=system needs pg_dump 16 or newer, and no system CA bundle was found \
                 to give pg_dump {client_major} instead: install postgresql-client-16 or newer, \
                 or set sslrootcert to the path of the CA certificates"
            )
        })?;
        let mut copy = self.clone();
        copy.set("sslrootcert", &bundle.display().to_string());
        Ok(copy.to_libpq_without_secrets())
    }

    /// Environment variables that give a child process the secrets left out of its arguments.
    pub fn child_env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(pw) = self.password() {
            env.push(("PGPASSWORD", pw.to_string()));
        }
        // Children name their sessions like ours, unless the user named them.
        if self.get("application_name").is_none() {
            if let Some(name) = self.get("fallback_application_name") {
                env.push(("PGAPPNAME", name.to_string()));
            }
        }
        env
    }

    /// A description safe for logs and error messages: host, port, database and user only.
    pub fn redacted(&self) -> String {
        format!(
            "host={} port={} dbname={} user={}",
            self.hosts().join(","),
            self.get("port").unwrap_or("5432"),
            self.dbname(),
            self.user()
        )
    }

    /// A complete connection string, password included: only for a server that must connect
    /// by itself (a subscription), never for a log, an argument list or a file.
    pub fn to_libpq_with_password(&self) -> String {
        let mut s = self.to_libpq_without_secrets();
        if let Some(pw) = self.password() {
            s.push_str(&format!(" password={}", quote_value(pw)));
        }
        s
    }

    /// Removes a parameter.
    pub fn remove(&mut self, key: &str) {
        self.params.remove(key);
    }

    /// Sets a parameter (not a secret).
    pub fn set(&mut self, key: &str, value: &str) {
        self.params.insert(key.to_string(), value.to_string());
    }

    /// The same settings with another database name (used by tests and tools that need a
    /// sibling database on the same server).
    pub fn with_dbname(&self, dbname: &str) -> ConnParams {
        let mut p = self.clone();
        p.params.insert("dbname".into(), dbname.into());
        p
    }

    fn password_from_passfile(&self, env: &dyn Env) -> Result<Option<String>> {
        let path = match self.get("passfile") {
            Some(p) => PathBuf::from(p),
            None => match env.var("HOME") {
                Some(home) => Path::new(&home).join(".pgpass"),
                None => return Ok(None),
            },
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(&path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        "password file {} has group or world access; it is ignored (chmod 0600 it)",
                        path.display()
                    );
                    return Ok(None);
                }
            }
        }
        let host = self.hosts().into_iter().next().unwrap_or_default();
        let host = if host.starts_with('/') {
            "localhost".to_string()
        } else {
            host
        };
        let port = self.ports().first().copied().unwrap_or(5432).to_string();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let fields = split_passfile_line(line);
            if fields.len() < 5 {
                continue;
            }
            let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
            if matches(&fields[0], &host)
                && matches(&fields[1], &port)
                && matches(&fields[2], self.dbname())
                && matches(&fields[3], self.user())
            {
                return Ok(Some(fields[4].clone()));
            }
        }
        Ok(None)
    }
}

fn split_list(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split(',').map(|h| h.trim().to_string()).collect()
}

fn split_passfile_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().unwrap().push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

fn quote_value(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return v.to_string();
    }
    let mut out = String::from("'");
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn check_keyword(key: &str) -> Result<()> {
    if KEYWORDS.iter().any(|(k, _)| *k == key) {
        Ok(())
    } else {
        bail!("invalid connection option \"{key}\"")
    }
}

/// Parses either form into raw keyword/value pairs, without defaults.
fn parse_raw(input: &str) -> Result<BTreeMap<String, String>> {
    let trimmed = input.trim();
    if trimmed.starts_with("postgresql://") || trimmed.starts_with("postgres://") {
        parse_uri(trimmed)
    } else if trimmed.contains('=') {
        parse_key_values(trimmed)
    } else if trimmed.contains("://") {
        bail!("unsupported URI scheme: use postgresql:// or postgres://")
    } else {
        bail!(
            "not a connection string: expected a postgresql:// URI or key=value pairs such as \"host=... dbname=...\""
        )
    }
}

fn parse_key_values(s: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            bail!("missing \"=\" after \"{key}\" in connection string");
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                bail!("unterminated quoted string in connection string");
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        check_keyword(&key)?;
        out.insert(key, value);
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
                .ok_or_else(|| anyhow!("invalid percent-encoded token in connection URI"))?;
            out.push(u8::from_str_radix(hex, 16).expect("checked hex digits"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("percent-encoded connection URI is not valid UTF-8")
}

fn parse_uri(s: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let rest = s.split_once("://").map(|x| x.1).unwrap_or_default();
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    let hostspec = match authority.rsplit_once('@') {
        Some((userinfo, hostspec)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                out.insert("user".into(), percent_decode(user)?);
            }
            if let Some(p) = password {
                out.insert("password".into(), percent_decode(p)?);
            }
            hostspec
        }
        None => authority,
    };
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for spec in hostspec.split(',') {
            let (host, port) = if let Some(inner) = spec.strip_prefix('[') {
                let (h, after) = inner.split_once(']').ok_or_else(|| {
                    anyhow!("missing \"]\" in IPv6 host address in connection URI")
                })?;
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if after.is_empty() => None,
                    None => bail!("unexpected text after IPv6 host address in connection URI"),
                };
                (h.to_string(), port)
            } else {
                match spec.split_once(':') {
                    Some((h, p)) => (percent_decode(h)?, Some(p)),
                    None => (percent_decode(spec)?, None),
                }
            };
            if let Some(p) = port {
                if p.parse::<u16>().is_err() {
                    bail!("invalid port number \"{p}\" in connection URI");
                }
            }
            hosts.push(host);
            ports.push(port.unwrap_or("").to_string());
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.insert("host".into(), hosts.join(","));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            let ports: Vec<String> = ports
                .into_iter()
                .map(|p| if p.is_empty() { "5432".into() } else { p })
                .collect();
            out.insert("port".into(), ports.join(","));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        out.insert("dbname".into(), percent_decode(db)?);
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                anyhow!("missing \"=\" in a query parameter of the connection URI")
            })?;
            let k = percent_decode(k)?;
            let k = match k.as_str() {
                "ssl" if v == "true" => {
                    out.insert("sslmode".into(), "require".into());
                    continue;
                }
                _ => k,
            };
            check_keyword(&k)?;
            out.insert(k, percent_decode(v)?);
        }
    }
    Ok(out)
}

/// The system's bundle of trusted CA certificates, where the distributions put it
/// (SSL_CERT_FILE first).
pub fn system_ca_bundle() -> Option<std::path::PathBuf> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    from_env
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/ca-bundle.pem",
                "/etc/ssl/cert.pem",
            ]
            .map(std::path::PathBuf::from),
        )
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
    }

    fn parse(s: &str) -> ConnParams {
        ConnParams::parse_with_env(s, &MapEnv(HashMap::from([("USER", "me")]))).unwrap()
    }

    #[test]
    fn uri_with_everything() {
        let p = parse(
            "postgresql://al%40ice:p%40ss:w@ep-cool-1.eu.aws.neon.tech:6543/my%20db?sslmode=require&channel_binding=require&options=endpoint%3Dep-cool-1",
        );
        assert_eq!(p.user(), "al@ice");
        assert_eq!(p.password(), Some("p@ss:w"));
        assert_eq!(p.hosts(), vec!["ep-cool-1.eu.aws.neon.tech"]);
        assert_eq!(p.ports(), vec![6543]);
        assert_eq!(p.dbname(), "my db");
        assert_eq!(p.get("sslmode"), Some("require"));
        assert_eq!(p.get("channel_binding"), Some("require"));
        assert_eq!(p.get("options"), Some("endpoint=ep-cool-1"));
    }

    #[test]
    fn system_roots_for_clients_before_16() {
        let p = parse(
            "postgresql://u:secret@ep-1.aws.neon.tech/db?sslmode=verify-full&sslrootcert=system",
        );
        let new = p.to_libpq_for_client(17).unwrap();
        assert!(new.contains("sslrootcert=system"), "{new}");
        assert!(!new.contains("secret"), "{new}");
        match system_ca_bundle() {
            Some(bundle) => {
                let old = p.to_libpq_for_client(15).unwrap();
                assert!(
                    old.contains(&format!("sslrootcert={}", bundle.display())),
                    "{old}"
                );
                assert!(!old.contains("sslrootcert=system"), "{old}");
                assert!(old.contains("sslmode=verify-full"), "{old}");
            }
            None => {
                let err = p.to_libpq_for_client(15).unwrap_err().to_string();
                assert!(err.contains("postgresql-client-16"), "{err}");
            }
        }
        // Other roots are left alone for any client.
        let q = parse("postgresql://u@h/db?sslrootcert=/etc/ca.pem");
        assert!(q
            .to_libpq_for_client(12)
            .unwrap()
            .contains("sslrootcert=/etc/ca.pem"));
    }

    #[test]
    fn uri_multiple_hosts_and_ipv6() {
        let p = parse("postgres://[::1]:5433,db2/x");
        assert_eq!(p.get("host"), Some("::1,db2"));
        assert_eq!(p.get("port"), Some("5433,5432"));
        assert_eq!(p.user(), "me");
    }

    #[test]
    fn key_value_with_quotes_and_escapes() {
        let p = parse(r"host=localhost  port = 5433 dbname='my \'db\'' password=a\ b user=u");
        assert_eq!(p.dbname(), "my 'db'");
        assert_eq!(p.password(), Some("a b"));
        assert_eq!(p.ports(), vec![5433]);
    }

    #[test]
    fn defaults_from_environment() {
        let env = MapEnv(HashMap::from([
            ("PGHOST", "envhost"),
            ("PGPASSWORD", "secret"),
            ("PGSSLMODE", "require"),
            ("USER", "osuser"),
        ]));
        let p = ConnParams::parse_with_env("dbname=app", &env).unwrap();
        assert_eq!(p.get("host"), Some("envhost"));
        assert_eq!(p.password(), Some("secret"));
        assert_eq!(p.get("sslmode"), Some("require"));
        assert_eq!(p.user(), "osuser");
        let p = ConnParams::parse_with_env("postgresql://h/", &env).unwrap();
        assert_eq!(p.dbname(), "osuser");
    }

    #[test]
    fn secrets_stay_out_of_child_arguments_and_logs() {
        let p = parse("postgresql://u:hunter2@h/db?sslpassword=keypw");
        let s = p.to_libpq_without_secrets();
        assert!(!s.contains("hunter2") && !s.contains("keypw"), "{s}");
        assert!(s.contains("dbname=db") && s.contains("host=h"), "{s}");
        assert!(!p.redacted().contains("hunter2"));
        assert!(!format!("{p:?}").contains("hunter2"));
        assert_eq!(p.child_env(), vec![("PGPASSWORD", "hunter2".to_string())]);
    }

    #[test]
    fn child_string_round_trips() {
        let p = parse("host=h dbname='a b\\'c' user=u application_name=x");
        let again = parse(&p.to_libpq_without_secrets());
        assert_eq!(p, again);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let env = MapEnv(HashMap::new());
        for bad in [
            "postgresql://h/db?nosuch=1",
            "host=h bogus=1",
            "host='unterminated",
            "postgresql://h:notaport/db",
            "mysql://h/db",
            "just-a-name",
            "postgresql://h/db?x",
            "postgresql://h/%zz",
        ] {
            assert!(
                ConnParams::parse_with_env(bad, &env).is_err(),
                "{bad} should not parse"
            );
        }
    }

    #[test]
    fn passfile_supplies_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "# c\nother:*:*:*:no\nh:5432:db:u:pa\\:ss\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let env = MapEnv(HashMap::new());
        let s = format!("host=h dbname=db user=u passfile={}", path.display());
        let p = ConnParams::parse_with_env(&s, &env).unwrap();
        assert_eq!(p.password(), Some("pa:ss"));
    }
}
