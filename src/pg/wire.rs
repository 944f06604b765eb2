//! A PostgreSQL frontend connection spoken with postgres-protocol's messages, for what
//! tokio-postgres cannot do: a replication connection (the startup parameter
//! `replication=database`, [`super::replication`]) and COPY pipelined over a wide-area link
//! (several tables' `COPY ... FROM STDIN` and their rows sent before the first answer comes
//! back: tokio-postgres waits for each COPY's CopyInResponse before it lets rows go).
//!
//! It opens the connection as libpq would from the same connection string (the hosts and
//! ports in turn, Unix sockets for directory hosts, sslmode's SSL negotiation with the TLS
//! settings of [`super::connect::build_tls`], SNI, cleartext, MD5 and SCRAM-SHA-256 passwords
//! with channel binding as `channel_binding` asks, target_session_attrs=read-write), then runs
//! simple queries, or a pipeline of them ([`WireConn::pipeline`]).
//!
//! The password is never part of a message, a log line or a Debug output.

use super::connstr::ConnParams;
use super::PgError;
use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{
    ChannelBinding, ScramSha256, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};
use postgres_protocol::message::backend::{DataRowBody, ErrorFields, Message};
use postgres_protocol::message::frontend;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// What a connection is for: its startup parameters and how its messages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A logical replication connection to the source (`replication=database`).
    Replication,
    /// A target session that loads rows with pipelined COPY.
    CopyTarget,
}

impl Purpose {
    /// How a failure to connect begins.
    fn connect(self) -> &'static str {
        match self {
            Purpose::Replication => "connect to the source for replication",
            Purpose::CopyTarget => "connect to target",
        }
    }

    /// How log lines name the connection.
    fn label(self) -> &'static str {
        match self {
            Purpose::Replication => "source replication connection",
            Purpose::CopyTarget => "target connection",
        }
    }
}

/// An open connection.
pub struct WireConn {
    purpose: Purpose,
    stream: Stream,
    /// Bytes read from the server and not yet parsed into messages.
    read: BytesMut,
    /// Messages to send.
    write: BytesMut,
    /// `host=... port=...` of the server, for messages.
    server: String,
    /// The server's ParameterStatus values (server_version, ...).
    parameters: BTreeMap<String, String>,
    backend_pid: i32,
    /// Set when the connection failed mid-exchange: it can no longer be used.
    broken: bool,
}

impl std::fmt::Debug for WireConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WireConn({}, {}, backend pid {})",
            self.purpose.label(),
            self.server,
            self.backend_pid
        )
    }
}

/// The transport: TCP, TLS over TCP, or a Unix-domain socket.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_native_tls::TlsStream<TcpStream>>),
    Unix(UnixStream),
}

impl Stream {
    fn io(&mut self) -> &mut (dyn Io + '_) {
        match self {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => s.as_mut(),
            Stream::Unix(s) => s,
        }
    }

    /// The `tls-server-end-point` channel binding data (the hash of the server's certificate),
    /// when the connection uses TLS and the certificate's signature algorithm allows it.
    fn tls_server_end_point(&self) -> Option<Vec<u8>> {
        match self {
            Stream::Tls(s) => s.get_ref().tls_server_end_point().ok().flatten(),
            _ => None,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// sslmode, reduced to what the client does: `allow` is treated like `prefer` (as for the
/// other connections), `verify-ca` and `verify-full` like `require` plus the certificate checks
/// that build_tls configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ssl {
    Disable,
    Prefer,
    Require,
}

/// channel_binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binding {
    Disable,
    Prefer,
    Require,
}

/// One server of the host list.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Address {
    /// The host name (for TLS: SNI and verify-full), or a socket directory.
    host: String,
    /// The IP address to connect to instead of resolving `host`.
    hostaddr: Option<String>,
    port: u16,
}

impl Address {
    fn describe(&self) -> String {
        format!("host={} port={}", self.host, self.port)
    }
}

/// The settings of a connection string that a wire connection uses.
struct Settings<'a> {
    params: &'a ConnParams,
    addresses: Vec<Address>,
    ssl: Ssl,
    binding: Binding,
    tls: native_tls::TlsConnector,
    timeout: Option<Duration>,
    keepalive: Option<socket2::TcpKeepalive>,
    /// target_session_attrs=read-write: a read-only server is passed over.
    read_write: bool,
}

impl<'a> Settings<'a> {
    /// Reads and checks the settings, failing on values libpq would refuse.
    fn read(params: &'a ConnParams) -> Result<Settings<'a>> {
        let ssl = match params.get("sslmode").unwrap_or("prefer") {
            "disable" => Ssl::Disable,
            "allow" | "prefer" => Ssl::Prefer,
            "require" | "verify-ca" | "verify-full" => Ssl::Require,
            other => bail!("invalid sslmode \"{other}\": use disable, allow, prefer, require, verify-ca or verify-full"),
        };
        let binding = match params.get("channel_binding").unwrap_or("prefer") {
            "disable" => Binding::Disable,
            "prefer" => Binding::Prefer,
            "require" => Binding::Require,
            other => bail!("invalid channel_binding \"{other}\": use disable, prefer or require"),
        };
        Ok(Settings {
            params,
            addresses: addresses(params)?,
            ssl,
            binding,
            tls: super::connect::build_tls(params).context("TLS settings")?,
            timeout: connect_timeout(params)?,
            keepalive: keepalive(params),
            read_write: match params.get("target_session_attrs").unwrap_or("any") {
                "any" => false,
                "read-write" => true,
                other => {
                    bail!("unsupported target_session_attrs \"{other}\": use any or read-write")
                }
            },
        })
    }

    /// The startup parameters: a session (a logical replication one for
    /// [`Purpose::Replication`]) of the user on the database.
    fn startup(&self, purpose: Purpose) -> Vec<(&'static str, &'a str)> {
        let p = self.params;
        let app = p
            .get("application_name")
            .or(p.get("fallback_application_name"))
            .unwrap_or("neoncopy");
        let mut v = vec![
            ("user", p.user()),
            ("database", p.dbname()),
            ("client_encoding", "UTF8"),
            ("application_name", app),
        ];
        if purpose == Purpose::Replication {
            v.push(("replication", "database"));
        }
        if let Some(options) = p.get("options") {
            v.push(("options", options));
        }
        v
    }

    fn password(&self) -> Result<&'a str> {
        self.params.password().ok_or_else(|| {
            anyhow!("the server asks for a password and none was given (password, PGPASSWORD or the password file)")
        })
    }
}

/// Splits a comma-separated list, trimming each part.
fn split(list: Option<&str>) -> Vec<String> {
    list.filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(|p| p.trim().to_string()).collect())
        .unwrap_or_default()
}

/// The servers to try in turn: `host` and `hostaddr` side by side, with one port for all or
/// one port each (an empty port is 5432), as libpq pairs them.
fn addresses(p: &ConnParams) -> Result<Vec<Address>> {
    let hosts = split(p.get("host"));
    let hostaddrs = split(p.get("hostaddr"));
    if !hosts.is_empty() && !hostaddrs.is_empty() && hosts.len() != hostaddrs.len() {
        bail!(
            "{} host names but {} host addresses",
            hosts.len(),
            hostaddrs.len()
        );
    }
    let n = hosts.len().max(hostaddrs.len());
    if n == 0 {
        bail!("no host given");
    }
    let ports = split(Some(p.get("port").unwrap_or("5432")))
        .iter()
        .map(|s| match s.as_str() {
            "" => Ok(5432),
            s => s.parse().with_context(|| format!("invalid port \"{s}\"")),
        })
        .collect::<Result<Vec<u16>>>()?;
    if ports.len() != 1 && ports.len() != n {
        bail!("{} ports for {n} hosts", ports.len());
    }
    Ok((0..n)
        .map(|i| Address {
            host: hosts
                .get(i)
                .or(hostaddrs.get(i))
                .cloned()
                .unwrap_or_default(),
            hostaddr: hostaddrs.get(i).cloned(),
            port: ports[if ports.len() == 1 { 0 } else { i }],
        })
        .collect())
}

/// connect_timeout for each host: 30s by default, none for 0, at least 2s (as libpq).
fn connect_timeout(p: &ConnParams) -> Result<Option<Duration>> {
    match p.get("connect_timeout") {
        None => Ok(Some(Duration::from_secs(30))),
        Some(t) => {
            let secs: u64 = t
                .trim()
                .parse()
                .with_context(|| format!("invalid connect_timeout \"{t}\""))?;
            Ok((secs > 0).then(|| Duration::from_secs(secs.max(2))))
        }
    }
}

/// TCP keepalives as the other connections set them (on, after 60s idle, unless
/// `keepalives=0`): the connection may sit idle for hours while its snapshot is in use.
fn keepalive(p: &ConnParams) -> Option<socket2::TcpKeepalive> {
    if p.get("keepalives") == Some("0") {
        return None;
    }
    let secs = |key: &str| p.get(key).and_then(|v| v.trim().parse::<u64>().ok());
    let mut k = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(secs("keepalives_idle").unwrap_or(60)));
    if let Some(i) = secs("keepalives_interval") {
        k = k.with_interval(Duration::from_secs(i));
    }
    if let Some(c) = secs("keepalives_count") {
        k = k.with_retries(c as u32);
    }
    Some(k)
}

/// A failure of the connection itself (not an answer of the server): worth retrying.
fn io_error(e: std::io::Error) -> anyhow::Error {
    PgError {
        message: e.to_string(),
        transient: true,
        from_server: false,
        code: None,
    }
    .into()
}

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Default)]
struct ServerMessage {
    severity: String,
    code: String,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
    context: Option<String>,
}

impl ServerMessage {
    fn parse(mut fields: ErrorFields<'_>) -> Result<ServerMessage> {
        let mut m = ServerMessage::default();
        while let Some(f) = fields.next().map_err(io_error)? {
            let value = String::from_utf8_lossy(f.value_bytes()).into_owned();
            match f.type_() {
                b'S' => m.severity = value,
                b'V' if m.severity.is_empty() => m.severity = value,
                b'C' => m.code = value,
                b'M' => m.message = value,
                b'D' => m.detail = Some(value),
                b'H' => m.hint = Some(value),
                b'W' => m.context = Some(value),
                _ => {}
            }
        }
        Ok(m)
    }

    /// One line, as [`super::describe_error`] writes the errors of the other connections.
    fn describe(&self) -> String {
        let mut s = format!(
            "{}: {} (SQLSTATE {})",
            self.severity, self.message, self.code
        );
        if let Some(d) = &self.detail {
            s.push_str(&format!("; detail: {d}"));
        }
        if let Some(h) = &self.hint {
            s.push_str(&format!("; hint: {h}"));
        }
        if let Some(w) = &self.context {
            s.push_str(&format!("; context: {}", w.replace('\n', " / ")));
        }
        s
    }

    /// Whether trying again may succeed: the same rules as every other connection's.
    fn transient(&self) -> bool {
        super::transient_server_error(&self.code, &self.message)
    }

    /// A FATAL or PANIC error: the server closes the connection after it.
    fn is_fatal(&self) -> bool {
        matches!(self.severity.as_str(), "FATAL" | "PANIC")
    }

    fn into_error(self) -> anyhow::Error {
        PgError {
            message: self.describe(),
            transient: self.transient(),
            from_server: true,
            code: Some(self.code.clone()),
        }
        .into()
    }
}

/// Whether an error is the server's answer to a command (after which the connection is still
/// usable, unless it was FATAL).
fn is_server_answer(e: &anyhow::Error) -> bool {
    e.downcast_ref::<PgError>().is_some_and(|p| p.from_server)
}

/// The SASL mechanism, channel binding and whether the exchange binds the channel, from what
/// the server offers, the TLS end point (when TLS is in use) and channel_binding.
fn choose_mechanism(
    offered: &[String],
    end_point: Option<Vec<u8>>,
    binding: Binding,
) -> Result<(&'static str, ChannelBinding, bool)> {
    let has = |m: &str| offered.iter().any(|o| o == m);
    let end_point = end_point.filter(|_| binding != Binding::Disable);
    match end_point {
        Some(ep) if has(SCRAM_SHA_256_PLUS) => Ok((
            SCRAM_SHA_256_PLUS,
            ChannelBinding::tls_server_end_point(ep),
            true,
        )),
        _ if binding == Binding::Require => bail!(
            "channel_binding=require, but the server offers no channel binding (SCRAM-SHA-256-PLUS over TLS); offered: {}",
            offered.join(", ")
        ),
        // "y": we could bind, the server did not offer it.
        Some(_) if has(SCRAM_SHA_256) => Ok((SCRAM_SHA_256, ChannelBinding::unrequested(), false)),
        None if has(SCRAM_SHA_256) => Ok((SCRAM_SHA_256, ChannelBinding::unsupported(), false)),
        _ => bail!(
            "the server offers no SASL mechanism neoncopy supports: {}",
            offered.join(", ")
        ),
    }
}

/// The text columns of a DataRow (NULL as None).
fn text_columns(row: &DataRowBody) -> Result<Vec<Option<String>>> {
    let buf = row.buffer();
    row.ranges()
        .map(|r| {
            r.map(|r| std::str::from_utf8(&buf[r]).map(str::to_owned))
                .transpose()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
        .collect()
        .map_err(io_error)
}

/// Opens the transport to one server: a Unix socket in a directory host, else TCP (with
/// keepalives) and the SSL negotiation.
async fn open_stream(s: &Settings<'_>, a: &Address) -> Result<Stream> {
    if a.hostaddr.is_none() && a.host.starts_with('/') {
        let path = format!("{}/.s.PGSQL.{}", a.host, a.port);
        let unix = UnixStream::connect(&path)
            .await
            .map_err(io_error)
            .with_context(|| format!("socket {path}"))?;
        // As libpq: no SSL over a Unix socket, whatever sslmode says.
        return Ok(Stream::Unix(unix));
    }
    let ip_or_name = a.hostaddr.as_deref().unwrap_or(&a.host);
    let tcp = TcpStream::connect((ip_or_name, a.port))
        .await
        .map_err(io_error)?;
    tcp.set_nodelay(true).map_err(io_error)?;
    if let Some(k) = &s.keepalive {
        socket2::SockRef::from(&tcp)
            .set_tcp_keepalive(k)
            .map_err(io_error)?;
    }
    negotiate_ssl(s, a, tcp).await
}

/// The SSLRequest exchange as sslmode asks: none for disable; for prefer, TLS if the server
/// accepts it; for require and verify-*, TLS or a failure. The host name goes as SNI (not an
/// IP address) and is what verify-full checks.
async fn negotiate_ssl(s: &Settings<'_>, a: &Address, mut tcp: TcpStream) -> Result<Stream> {
    if s.ssl == Ssl::Disable {
        return Ok(Stream::Tcp(tcp));
    }
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    tcp.write_all(&request).await.map_err(io_error)?;
    // Exactly one byte: nothing sent in the clear after it may be taken as part of TLS.
    let answer = tcp.read_u8().await.map_err(io_error)?;
    match answer {
        b'S' => {
            let connector = tokio_native_tls::TlsConnector::from(s.tls.clone());
            let tls = connector
                .connect(&a.host, tcp)
                .await
                .map_err(|e| anyhow!("TLS handshake: {e}"))?;
            Ok(Stream::Tls(Box::new(tls)))
        }
        b'N' if s.ssl == Ssl::Require => {
            bail!("the server does not support SSL, but sslmode requires it")
        }
        b'N' => Ok(Stream::Tcp(tcp)),
        other => bail!(
            "the server answered the SSL request with {:?}, not S or N",
            other as char
        ),
    }
}

impl WireConn {
    /// Opens a connection for `purpose` to the database of `params`, trying each host in turn
    /// (each within connect_timeout), and authenticates. The error of the last host tried is
    /// returned, with the server's SQLSTATE when it sent one.
    pub async fn connect(params: &ConnParams, purpose: Purpose) -> Result<WireConn> {
        let what = || format!("{} ({})", purpose.connect(), params.redacted());
        let settings = Settings::read(params).with_context(what)?;
        let mut last = None;
        for a in &settings.addresses {
            let attempt = Self::connect_to(&settings, a, purpose);
            let result = match settings.timeout {
                Some(t) => tokio::time::timeout(t, attempt).await.unwrap_or_else(|_| {
                    Err(io_error(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("timed out after {}s (connect_timeout)", t.as_secs()),
                    )))
                }),
                None => attempt.await,
            };
            match result {
                Ok(conn) => return Ok(conn),
                Err(e) if settings.addresses.len() == 1 => last = Some(e),
                Err(e) => {
                    let e = e.context(a.describe());
                    tracing::debug!("{}: {e:#}", purpose.connect());
                    last = Some(e);
                }
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no host given"))
            .context(what()))
    }

    /// Connects to one server: transport, startup message, authentication, then the
    /// parameters and backend key up to the first ReadyForQuery.
    async fn connect_to(s: &Settings<'_>, a: &Address, purpose: Purpose) -> Result<WireConn> {
        let stream = open_stream(s, a).await?;
        let mut conn = WireConn {
            purpose,
            stream,
            read: BytesMut::with_capacity(8192),
            write: BytesMut::new(),
            server: a.describe(),
            parameters: BTreeMap::new(),
            backend_pid: 0,
            broken: false,
        };
        frontend::startup_message(s.startup(purpose), &mut conn.write).map_err(io_error)?;
        conn.flush().await?;
        conn.authenticate(s).await?;
        conn.read_until_ready().await?;
        if s.read_write {
            let rows = conn.exchange("show transaction_read_only").await?;
            if first_value(&rows) == Some("on") {
                bail!("the server is read-only (target_session_attrs=read-write)");
            }
        }
        Ok(conn)
    }

    /// Answers the server's authentication requests until AuthenticationOk: trust, cleartext
    /// password, MD5, SCRAM-SHA-256(-PLUS). With channel_binding=require, only a SCRAM
    /// exchange that bound the TLS channel is accepted.
    async fn authenticate(&mut self, s: &Settings<'_>) -> Result<()> {
        let mut bound = false;
        loop {
            let password_without_binding = || {
                if s.binding == Binding::Require {
                    bail!(
                        "channel_binding=require, but the server asks for a password without SCRAM"
                    );
                }
                s.password()
            };
            match self.read_message().await? {
                Message::AuthenticationOk if s.binding == Binding::Require && !bound => bail!(
                    "channel_binding=require, but the server authenticated the client without channel binding"
                ),
                Message::AuthenticationOk => return Ok(()),
                Message::AuthenticationCleartextPassword => {
                    let pw = password_without_binding()?;
                    frontend::password_message(pw.as_bytes(), &mut self.write).map_err(io_error)?;
                    self.flush().await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let pw = password_without_binding()?;
                    let hash = md5_hash(s.params.user().as_bytes(), pw.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write).map_err(io_error)?;
                    self.flush().await?;
                }
                Message::AuthenticationSasl(body) => {
                    let offered: Vec<String> = body
                        .mechanisms()
                        .map(|m| Ok(m.to_string()))
                        .collect()
                        .map_err(io_error)?;
                    bound = self.scram(s, &offered).await?;
                }
                Message::ErrorResponse(body) => {
                    return Err(ServerMessage::parse(body.fields())?.into_error())
                }
                Message::NoticeResponse(body) => log_notice(self.purpose, body.fields()),
                _ => bail!("the server asks for an authentication method neoncopy does not support (GSSAPI, SSPI or Kerberos)"),
            }
        }
    }

    /// The SCRAM-SHA-256 exchange (with channel binding when chosen); checks the server's
    /// signature. Returns whether the channel was bound.
    async fn scram(&mut self, s: &Settings<'_>, offered: &[String]) -> Result<bool> {
        let end_point = self.stream.tls_server_end_point();
        let (mechanism, binding, bound) = choose_mechanism(offered, end_point, s.binding)?;
        let mut scram = ScramSha256::new(s.password()?.as_bytes(), binding);
        frontend::sasl_initial_response(mechanism, scram.message(), &mut self.write)
            .map_err(io_error)?;
        self.flush().await?;
        let data = match self.read_auth_step().await? {
            Message::AuthenticationSaslContinue(body) => body.data().to_vec(),
            _ => bail!("unexpected message in the SCRAM exchange"),
        };
        scram
            .update(&data)
            .map_err(|e| anyhow!("SCRAM exchange: {e}"))?;
        frontend::sasl_response(scram.message(), &mut self.write).map_err(io_error)?;
        self.flush().await?;
        let data = match self.read_auth_step().await? {
            Message::AuthenticationSaslFinal(body) => body.data().to_vec(),
            _ => bail!("unexpected message in the SCRAM exchange"),
        };
        scram
            .finish(&data)
            .map_err(|e| anyhow!("SCRAM exchange: the server's signature is wrong: {e}"))?;
        Ok(bound)
    }

    /// The next message of an authentication exchange; a server error ends it.
    async fn read_auth_step(&mut self) -> Result<Message> {
        loop {
            match self.read_message().await? {
                Message::ErrorResponse(body) => {
                    return Err(ServerMessage::parse(body.fields())?.into_error())
                }
                Message::NoticeResponse(body) => log_notice(self.purpose, body.fields()),
                m => return Ok(m),
            }
        }
    }

    /// Reads ParameterStatus and BackendKeyData up to ReadyForQuery, after authentication.
    async fn read_until_ready(&mut self) -> Result<()> {
        loop {
            match self.read_message().await? {
                Message::ParameterStatus(body) => note_parameter(&mut self.parameters, &body)?,
                Message::BackendKeyData(body) => self.backend_pid = body.process_id(),
                Message::NoticeResponse(body) => log_notice(self.purpose, body.fields()),
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ErrorResponse(body) => {
                    return Err(ServerMessage::parse(body.fields())?.into_error())
                }
                _ => bail!("unexpected message from the server while starting the session"),
            }
        }
    }

    /// Sends the buffered messages.
    async fn flush(&mut self) -> Result<()> {
        let io = self.stream.io();
        io.write_all(&self.write).await.map_err(io_error)?;
        io.flush().await.map_err(io_error)?;
        self.write.clear();
        Ok(())
    }

    async fn read_message(&mut self) -> Result<Message> {
        read_message(self.stream.io(), &mut self.read).await
    }
}

/// Rows of a simple query: every column as text, NULL as None.
pub type TextRows = Vec<Vec<Option<String>>>;

/// The first column of the first row, as text; None for no row or NULL.
pub fn first_value(rows: &TextRows) -> Option<&str> {
    rows.first()?.first()?.as_deref()
}

impl WireConn {
    /// Runs a simple query (SQL or a replication command; several statements are allowed)
    /// and returns the rows of all its results as text. A server error is returned once the
    /// server is ready again, so the connection stays usable; a lost connection or a protocol
    /// error makes it unusable.
    pub async fn simple_query(&mut self, sql: &str) -> Result<TextRows> {
        if self.broken {
            bail!(
                "the {} failed earlier and cannot be used",
                self.purpose.label()
            );
        }
        let result = self.exchange(sql).await;
        if let Err(e) = &result {
            self.broken |= !is_server_answer(e);
        }
        result
    }

    /// Sends the Query message and reads up to ReadyForQuery.
    async fn exchange(&mut self, sql: &str) -> Result<TextRows> {
        frontend::query(sql, &mut self.write).map_err(io_error)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::DataRow(body) => rows.push(text_columns(&body)?),
                Message::RowDescription(_)
                | Message::CommandComplete(_)
                | Message::EmptyQueryResponse => {}
                Message::ParameterStatus(body) => note_parameter(&mut self.parameters, &body)?,
                Message::NoticeResponse(body) => log_notice(self.purpose, body.fields()),
                Message::ErrorResponse(body) => {
                    let m = ServerMessage::parse(body.fields())?;
                    if m.is_fatal() {
                        self.broken = true;
                        return Err(m.into_error());
                    }
                    error = Some(m.into_error());
                }
                Message::ReadyForQuery(_) => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    }
                }
                Message::CopyInResponse(_) | Message::CopyOutResponse(_) => {
                    self.broken = true;
                    bail!("the query started a COPY, which a simple query does not support")
                }
                _ => bail!("unexpected message from the server during a query"),
            }
        }
    }

    /// A parameter the server reported (ParameterStatus), such as `server_version`.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// The process id of the server process (for replication: the walsender) of this
    /// connection.
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// Ends the session (Terminate) and closes the connection; an exported snapshot ends
    /// with it. A connection dropped without close ends the same way, when the server sees
    /// the socket close.
    pub async fn close(mut self) -> Result<()> {
        // What a pipeline dropped half way left unsent is not sent now.
        if self.broken {
            self.write.clear();
        }
        frontend::terminate(&mut self.write);
        let sent = self.flush().await;
        let _ = self.stream.io().shutdown().await;
        sent.with_context(|| format!("close the {}", self.purpose.label()))
    }
}

/// What the server answered one query of a pipeline.
#[derive(Debug, Default)]
pub struct Answer {
    /// The command tag of the query's last command (`COPY 20`; `ROLLBACK` for a COMMIT of a
    /// transaction that failed).
    pub tag: Option<String>,
    /// The count of the query's last command that reports one (`COPY 20`, `INSERT 0 1`).
    pub rows: Option<u64>,
    /// The server's error: the query failed (and the transaction it was in, if any).
    pub error: Option<anyhow::Error>,
}

/// Writes of a pipeline are sent once this many bytes wait (and at each `flush`). At 64 kB a
/// big table cost more CPU than tokio-postgres's sink did (bench big: 20.1 against 17.3 CPU
/// seconds, more task wake-ups); at 256 kB less (15.9 against 18.6).
const PIPE_FLUSH_BYTES: usize = 256 * 1024;

impl WireConn {
    /// Splits the connection for a pipeline: a writer that sends queries (simple Query
    /// messages, each tagged with a `T` of the caller's) and COPY data without waiting for
    /// any answer, and a reader of the answers, one per query, in order. Run both at once
    /// (their buffers and halves of the stream are their own); the server reads its input in
    /// order, so a `COPY ... FROM STDIN` followed straight by its rows and CopyDone works
    /// without the round trip tokio-postgres waits for.
    ///
    /// After an error the server discards the rest of a failed COPY's data and answers each
    /// later query of the transaction with an error. The connection is usable again only
    /// once the reader has read every answer of a finished writer: a caller that stops at
    /// the first error leaves it unusable (a query on it fails at once).
    pub fn pipeline<T: Send>(&mut self) -> Result<(PipeWriter<'_, T>, PipeReader<'_, T>)> {
        if self.broken {
            bail!(
                "the {} failed earlier and cannot be used",
                self.purpose.label()
            );
        }
        // Until the reader has read the last answer.
        self.broken = true;
        let (read_half, write_half) = tokio::io::split(self.stream.io());
        let (tags, sent) = tokio::sync::mpsc::unbounded_channel();
        Ok((
            PipeWriter {
                io: write_half,
                write: &mut self.write,
                tags,
            },
            PipeReader {
                io: read_half,
                read: &mut self.read,
                parameters: &mut self.parameters,
                broken: &mut self.broken,
                purpose: self.purpose,
                sent,
                failed: false,
            },
        ))
    }
}

type ReadHalf<'a> = tokio::io::ReadHalf<&'a mut (dyn Io + 'a)>;
type WriteHalf<'a> = tokio::io::WriteHalf<&'a mut (dyn Io + 'a)>;

/// The sending side of a pipeline (see [`WireConn::pipeline`]).
pub struct PipeWriter<'a, T> {
    io: WriteHalf<'a>,
    write: &'a mut BytesMut,
    tags: tokio::sync::mpsc::UnboundedSender<T>,
}

impl<T> PipeWriter<'_, T> {
    /// Queues a simple query (one or more statements; one answer).
    pub fn query(&mut self, sql: &str, tag: T) -> Result<()> {
        frontend::query(sql, self.write).map_err(io_error)?;
        // The reader is gone only once the pipeline is being dropped.
        let _ = self.tags.send(tag);
        Ok(())
    }

    /// Queues rows for the COPY FROM STDIN in progress; sends what waits once it is enough.
    pub async fn copy_data(&mut self, data: &[u8]) -> Result<()> {
        let len = i32::try_from(data.len() + 4)
            .map_err(|_| io_error(std::io::Error::other("COPY data message over 2 GB")))?;
        self.write.reserve(data.len() + 5);
        self.write.put_u8(b'd');
        self.write.put_i32(len);
        self.write.put_slice(data);
        if self.write.len() >= PIPE_FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Ends the COPY FROM STDIN in progress.
    pub fn copy_done(&mut self) {
        frontend::copy_done(self.write);
    }

    /// Aborts the COPY FROM STDIN in progress: the server fails it with `why`.
    pub fn copy_fail(&mut self, why: &str) -> Result<()> {
        frontend::copy_fail(why, self.write).map_err(io_error)
    }

    /// Sends what waits.
    pub async fn flush(&mut self) -> Result<()> {
        if !self.write.is_empty() {
            self.io.write_all(self.write).await.map_err(io_error)?;
            self.write.clear();
        }
        self.io.flush().await.map_err(io_error)
    }

    /// Sends what waits and ends the writing: the reader ends after the last answer. A writer
    /// dropped without it leaves queries the reader waits for unsent: drop the reader too
    /// (the connection is then unusable).
    pub async fn finish(mut self) -> Result<()> {
        self.flush().await
    }
}

/// The receiving side of a pipeline (see [`WireConn::pipeline`]).
pub struct PipeReader<'a, T> {
    io: ReadHalf<'a>,
    read: &'a mut BytesMut,
    parameters: &'a mut BTreeMap<String, String>,
    broken: &'a mut bool,
    purpose: Purpose,
    sent: tokio::sync::mpsc::UnboundedReceiver<T>,
    /// A call of `next` failed.
    failed: bool,
}

impl<T> PipeReader<'_, T> {
    /// The answer to the next query with its tag, once the server has sent it; None after
    /// the last query of a finished writer. A server error is an answer (see
    /// [`Answer::error`]); a lost connection, a FATAL error or a protocol error is an error.
    /// After an error nothing more is read: the connection is out of step with the server.
    pub async fn next(&mut self) -> Result<Option<(T, Answer)>> {
        if self.failed {
            bail!("a pipeline of queries failed earlier on this connection");
        }
        let result = self.answer().await;
        self.failed = result.is_err();
        result
    }

    async fn answer(&mut self) -> Result<Option<(T, Answer)>> {
        let Some(tag) = self.sent.recv().await else {
            *self.broken = false;
            return Ok(None);
        };
        let mut answer = Answer::default();
        loop {
            match self.read_message().await? {
                Message::CommandComplete(body) => {
                    let tag = body.tag().map_err(io_error)?;
                    answer.rows = tag.rsplit(' ').next().and_then(|n| n.parse().ok());
                    answer.tag = Some(tag.to_string());
                }
                Message::ErrorResponse(body) => {
                    let m = ServerMessage::parse(body.fields())?;
                    if m.is_fatal() {
                        return Err(m.into_error());
                    }
                    answer.error.get_or_insert(m.into_error());
                }
                Message::ReadyForQuery(_) => return Ok(Some((tag, answer))),
                Message::CopyInResponse(_)
                | Message::RowDescription(_)
                | Message::DataRow(_)
                | Message::EmptyQueryResponse => {}
                Message::ParameterStatus(body) => note_parameter(self.parameters, &body)?,
                Message::NoticeResponse(body) => log_notice(self.purpose, body.fields()),
                _ => bail!("unexpected message from the server in a pipeline of queries"),
            }
        }
    }

    async fn read_message(&mut self) -> Result<Message> {
        read_message(&mut self.io, self.read).await
    }
}

/// The next message from the server, from what `buf` holds and then from `io`; an end of
/// stream is an error.
async fn read_message(
    io: &mut (impl AsyncRead + Unpin + ?Sized),
    buf: &mut BytesMut,
) -> Result<Message> {
    loop {
        if let Some(m) = Message::parse(buf).map_err(io_error)? {
            return Ok(m);
        }
        if io.read_buf(buf).await.map_err(io_error)? == 0 {
            return Err(io_error(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
    }
}

/// Keeps a ParameterStatus value (server_version, ...).
fn note_parameter(
    parameters: &mut BTreeMap<String, String>,
    body: &postgres_protocol::message::backend::ParameterStatusBody,
) -> Result<()> {
    let name = body.name().map_err(io_error)?;
    let value = body.value().map_err(io_error)?;
    parameters.insert(name.to_string(), value.to_string());
    Ok(())
}

/// A server's notice goes to the debug log, named by the connection's purpose.
fn log_notice(purpose: Purpose, fields: ErrorFields<'_>) {
    if let Ok(m) = ServerMessage::parse(fields) {
        tracing::debug!("{}: {}", purpose.label(), m.describe());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::connstr::Env;

    struct NoEnv;
    impl Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn params(s: &str) -> ConnParams {
        ConnParams::parse_with_env(s, &NoEnv).unwrap()
    }

    #[test]
    fn hosts_hostaddrs_and_ports_pair_up() {
        let a = addresses(&params("host=a,b hostaddr=10.0.0.1,10.0.0.2 port=1,")).unwrap();
        assert_eq!(
            a,
            vec![
                Address {
                    host: "a".into(),
                    hostaddr: Some("10.0.0.1".into()),
                    port: 1
                },
                Address {
                    host: "b".into(),
                    hostaddr: Some("10.0.0.2".into()),
                    port: 5432
                },
            ]
        );
        let a = addresses(&params("postgresql://h1,h2:7/db")).unwrap();
        assert_eq!(a.iter().map(|a| a.port).collect::<Vec<_>>(), [5432, 7]);
        let a = addresses(&params("hostaddr=127.0.0.1 port=6")).unwrap();
        assert_eq!(a[0].host, "127.0.0.1");
        assert!(addresses(&params("host=a,b,c port=1,2")).is_err());
        assert!(addresses(&params("host=a port=x")).is_err());
    }

    #[test]
    fn settings_check_modes_and_timeouts() {
        let err = |s: &str| format!("{:#}", Settings::read(&params(s)).err().unwrap());
        assert!(err("host=a sslmode=verify").contains("invalid sslmode"));
        assert!(err("host=a channel_binding=yes").contains("invalid channel_binding"));
        assert!(err("host=a connect_timeout=soon").contains("invalid connect_timeout"));
        let t = |s: &str| connect_timeout(&params(s)).unwrap();
        assert_eq!(t("host=a"), Some(Duration::from_secs(30)));
        assert_eq!(t("host=a connect_timeout=0"), None);
        assert_eq!(t("host=a connect_timeout=1"), Some(Duration::from_secs(2)));
        let p = params("host=a application_name=x options='-c a=b'");
        let s = Settings::read(&p).unwrap();
        let startup = s.startup(Purpose::Replication);
        assert!(!s
            .startup(Purpose::CopyTarget)
            .iter()
            .any(|(k, _)| *k == "replication"));
        assert!(startup.contains(&("replication", "database")));
        assert!(startup.contains(&("application_name", "x")));
        assert!(startup.contains(&("options", "-c a=b")));
        assert!(keepalive(&params("host=a keepalives=0")).is_none());
    }

    #[test]
    fn mechanism_follows_channel_binding() {
        let both = vec![SCRAM_SHA_256_PLUS.to_string(), SCRAM_SHA_256.to_string()];
        let plain = vec![SCRAM_SHA_256.to_string()];
        let ep = || Some(vec![1u8; 32]);
        let pick = |offered: &[String], ep: Option<Vec<u8>>, b| {
            choose_mechanism(offered, ep, b).map(|(m, _, bound)| (m, bound))
        };
        assert_eq!(
            pick(&both, ep(), Binding::Prefer).unwrap(),
            (SCRAM_SHA_256_PLUS, true)
        );
        assert_eq!(
            pick(&both, ep(), Binding::Disable).unwrap(),
            (SCRAM_SHA_256, false)
        );
        assert_eq!(
            pick(&plain, ep(), Binding::Prefer).unwrap(),
            (SCRAM_SHA_256, false)
        );
        assert_eq!(
            pick(&both, None, Binding::Prefer).unwrap(),
            (SCRAM_SHA_256, false)
        );
        assert!(pick(&plain, ep(), Binding::Require).is_err());
        assert!(pick(&both, None, Binding::Require).is_err());
        assert!(pick(&["OTHER".to_string()], None, Binding::Prefer).is_err());
    }

    #[test]
    fn server_errors_read_like_the_others() {
        let m = ServerMessage {
            severity: "ERROR".into(),
            code: "42710".into(),
            message: "replication slot \"s\" already exists".into(),
            hint: Some("drop it".into()),
            context: Some("a\nb".into()),
            ..Default::default()
        };
        assert_eq!(
            m.describe(),
            "ERROR: replication slot \"s\" already exists (SQLSTATE 42710); hint: drop it; context: a / b"
        );
        assert!(!m.transient());
        let e = m.into_error();
        assert_eq!(PgError::code_of(&e), Some("42710"));
        assert!(is_server_answer(&e));
        let shutdown = ServerMessage {
            code: "57P01".into(),
            ..Default::default()
        };
        assert!(shutdown.transient());
        assert!(!is_server_answer(&io_error(std::io::Error::other("reset"))));
    }
}
