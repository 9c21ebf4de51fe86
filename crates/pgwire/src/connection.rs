//! One client connection: startup and authentication, then the simple and
//! extended query protocols and COPY FROM STDIN over a [`Session`].
//!
//! Startup and authentication run as a task. The session after that is
//! synchronous and does blocking storage I/O, so the connection then moves
//! to a thread of its own, with a blocking socket, as a PostgreSQL backend
//! process does: a message is read, executed and answered on that thread,
//! with no hand-off between threads on the way.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::FutureExt;
use pgwire::api::auth::mechanism::AuthState;
use pgwire::api::{ClientInfo, DefaultClient, METADATA_DATABASE, METADATA_USER};
use pgwire::messages::copy::CopyInResponse;
use pgwire::messages::data::{FieldDescription, NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    BindComplete, CloseComplete, ParseComplete, PortalSuspended,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ErrorResponse, NoticeResponse, ReadyForQuery,
    TransactionStatus,
};
use pgwire::messages::startup::{
    Authentication, BackendKeyData, NegotiateProtocolVersion, ParameterStatus,
    PasswordMessageFamily, SASLInitialResponse, SASLResponse, SecretKey,
};
use pgwire::messages::PgWireBackendMessage;
use tessera_sql::{
    code, Column, CopyTarget, DataType, Described, QueryResult, Session, SqlError, SqlResult,
    Statement, TxnStatus, Value,
};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::cancel::CancelKey;
use crate::format::{self, format_of, put_field, wire_type, TEXT};
use crate::frontend::{self, FrontendMessage, ReadError, StartupPacket, Target};
use crate::server::Shared;

/// How long a client may take from connecting to ReadyForQuery
/// (PostgreSQL's `authentication_timeout`).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The most COPY data gathered for one statement.
const MAX_COPY_BYTES: usize = 1 << 30;
/// Error fields are cut to this many bytes so that an ErrorResponse stays
/// under the 30,000 bytes libpq accepts.
const MAX_ERROR_FIELD: usize = 8_000;
/// Output is flushed when it reaches this size even before a Sync.
const FLUSH_THRESHOLD: usize = 64 * 1024;
/// Protocol 3.0, the one version spoken.
const PROTOCOL_3_0: i32 = 196_608;

/// Why a connection ends.
#[derive(Debug)]
pub(crate) enum Exit {
    /// The client hung up or sent Terminate.
    Closed,
    /// The socket failed.
    Io(std::io::Error),
    /// Report this error with severity FATAL, then close.
    Fatal(SqlError),
}

impl From<std::io::Error> for Exit {
    fn from(err: std::io::Error) -> Self {
        Exit::Io(err)
    }
}

/// A failed message: an error to report (the connection goes on) or the end
/// of the connection.
enum Failure {
    Sql(SqlError),
    Exit(Exit),
}

impl From<SqlError> for Failure {
    fn from(err: SqlError) -> Self {
        Failure::Sql(err)
    }
}

impl From<Exit> for Failure {
    fn from(exit: Exit) -> Self {
        Failure::Exit(exit)
    }
}

fn protocol_error(message: impl Into<String>) -> SqlError {
    SqlError::new(code::PROTOCOL_VIOLATION, message)
}

/// Serves one accepted connection until it ends.
pub(crate) async fn run(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "cannot set TCP_NODELAY");
    }
    let mut wire = Wire {
        io: BufReader::new(Socket::Async(stream)),
        out: BytesMut::with_capacity(8 * 1024),
    };
    let started = tokio::time::timeout(STARTUP_TIMEOUT, startup(&mut wire, peer, &shared)).await;
    let started = match started {
        Err(_) => Err(Exit::Fatal(SqlError::new(
            code::QUERY_CANCELED,
            "canceling authentication due to timeout",
        ))),
        Ok(started) => started,
    };
    match started {
        Ok(None) => {}
        Ok(Some(started)) => match wire.io.get_mut().make_blocking() {
            Ok(socket) => serve_on_own_thread(wire, started, peer, socket).await,
            Err(err) => tracing::warn!(%peer, %err, "cannot hand the SQL connection to its thread"),
        },
        Err(exit) => finish(&mut wire, peer, Err(exit)).await,
    }
}

/// Runs the session on a thread of its own until the connection ends. If
/// this future is dropped first (the server is stopping), the socket is
/// shut down, which ends the thread's wait for the client.
async fn serve_on_own_thread(
    mut wire: Wire,
    started: Started,
    peer: SocketAddr,
    socket: std::net::TcpStream,
) {
    struct ShutDownOnDrop(std::net::TcpStream);
    impl Drop for ShutDownOnDrop {
        fn drop(&mut self) {
            let _ = self.0.shutdown(std::net::Shutdown::Both);
        }
    }
    let _socket = ShutDownOnDrop(socket);
    let (done, ended) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("sql-connection".into())
        .spawn(move || {
            futures::executor::block_on(async {
                let result = Backend::new(&mut wire, started).serve().await;
                finish(&mut wire, peer, result).await;
            });
            drop(done);
        });
    match spawned {
        Ok(_) => {
            let _ = ended.await;
        }
        Err(err) => tracing::warn!(%peer, %err, "cannot start a thread for the SQL connection"),
    }
}

/// Reports how the connection ended: a fatal error goes to the client.
async fn finish(wire: &mut Wire, peer: SocketAddr, result: Result<(), Exit>) {
    match result {
        Ok(()) | Err(Exit::Closed) => {}
        Err(Exit::Io(err)) => tracing::debug!(%peer, %err, "SQL connection failed"),
        Err(Exit::Fatal(err)) => {
            tracing::debug!(%peer, %err, "closing SQL connection");
            wire.send_error(&err, "FATAL");
            let _ = wire.flush().await;
        }
    }
}

/// The client's socket: non-blocking, driven by the runtime, during
/// startup; then blocking, on the connection's own thread, where a read
/// waits in the kernel for the client's next message.
enum Socket {
    Async(TcpStream),
    Blocking(std::net::TcpStream),
    /// Between the two (only if the change failed).
    Gone,
}

impl Socket {
    /// Makes the socket blocking; returns a handle on it that can shut it
    /// down from another thread. Must be called within the runtime.
    fn make_blocking(&mut self) -> std::io::Result<std::net::TcpStream> {
        let Socket::Async(stream) = std::mem::replace(self, Socket::Gone) else {
            return Err(gone());
        };
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        let handle = stream.try_clone()?;
        *self = Socket::Blocking(stream);
        Ok(handle)
    }
}

/// The error of a socket that is neither (the change failed).
fn gone() -> std::io::Error {
    std::io::ErrorKind::NotConnected.into()
}

/// A blocking socket's calls complete before they return: on the
/// connection's own thread nothing else waits to run in the meantime.
impl tokio::io::AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Async(stream) => Pin::new(stream).poll_read(cx, buf),
            Socket::Blocking(stream) => Poll::Ready(loop {
                match stream.read(buf.initialize_unfilled()) {
                    Ok(n) => {
                        buf.advance(n);
                        break Ok(());
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(err) => break Err(err),
                }
            }),
            Socket::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl tokio::io::AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Socket::Async(stream) => Pin::new(stream).poll_write(cx, buf),
            Socket::Blocking(stream) => Poll::Ready(loop {
                match stream.write(buf) {
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    written => break written,
                }
            }),
            Socket::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Async(stream) => Pin::new(stream).poll_flush(cx),
            Socket::Blocking(_) => Poll::Ready(Ok(())),
            Socket::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Async(stream) => Pin::new(stream).poll_shutdown(cx),
            Socket::Blocking(stream) => Poll::Ready(stream.shutdown(std::net::Shutdown::Write)),
            Socket::Gone => Poll::Ready(Err(gone())),
        }
    }
}

/// The fields of an ErrorResponse or NoticeResponse.
fn error_fields(err: &SqlError, severity: &str) -> Vec<(u8, String)> {
    let mut fields = vec![
        (b'S', severity.to_string()),
        (b'V', severity.to_string()),
        (b'C', err.code.to_string()),
        (b'M', truncate(&err.message)),
    ];
    if let Some(detail) = &err.detail {
        fields.push((b'D', truncate(detail)));
    }
    fields
}

/// The socket: buffered reads, and writes gathered in `out` until a flush
/// (at ReadyForQuery, Flush, or when COPY needs an answer), as PostgreSQL
/// does.
struct Wire {
    io: BufReader<Socket>,
    out: BytesMut,
}

impl Wire {
    fn send(&mut self, message: PgWireBackendMessage) {
        if let Err(err) = message.encode(&mut self.out) {
            // Only size limits fail, on ParameterStatus values of tens of KB.
            tracing::warn!(%err, "cannot encode a message; skipped");
        }
    }

    fn send_error(&mut self, err: &SqlError, severity: &str) {
        let fields = error_fields(err, severity);
        self.send(PgWireBackendMessage::ErrorResponse(ErrorResponse::new(
            fields,
        )));
    }

    fn send_notice(&mut self, warning: &SqlError) {
        let fields = error_fields(warning, "WARNING");
        self.send(PgWireBackendMessage::NoticeResponse(NoticeResponse::new(
            fields,
        )));
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.io.get_mut().write_all(&self.out).await?;
            self.out.clear();
        }
        self.io.get_mut().flush().await
    }

    /// Reads and decodes the next message; `Exit::Closed` at EOF. A message
    /// that cannot be framed or decoded ends the connection.
    async fn read(&mut self) -> Result<FrontendMessage, Exit> {
        match frontend::read_message(&mut self.io).await {
            Ok(Some((kind, body))) => frontend::decode_message(kind, body)
                .map_err(|e| Exit::Fatal(SqlError::new(e.code, e.message))),
            Ok(None) => Err(Exit::Closed),
            Err(ReadError::Io(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(Exit::Closed)
            }
            Err(ReadError::Io(err)) => Err(Exit::Io(err)),
            Err(ReadError::Protocol(e)) => Err(Exit::Fatal(SqlError::new(e.code, e.message))),
        }
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_ERROR_FIELD {
        return s.to_string();
    }
    let mut end = MAX_ERROR_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Startup: SSL/GSS refusal, cancel requests, protocol version, the startup
/// parameters, authentication and the session. `None` when the connection
/// was a cancel request or closed early.
async fn startup(
    wire: &mut Wire,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> Result<Option<Started>, Exit> {
    let (minor, params) = loop {
        let packet = match frontend::read_startup(&mut wire.io).await {
            Ok(Some(packet)) => packet,
            Ok(None) => return Ok(None),
            Err(ReadError::Io(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None)
            }
            Err(ReadError::Io(err)) => return Err(Exit::Io(err)),
            Err(ReadError::Protocol(e)) => {
                return Err(Exit::Fatal(SqlError::new(e.code, e.message)))
            }
        };
        match packet {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                // No TLS or GSSAPI encryption (yet): 'N' and the client goes on
                // in the clear or gives up, as its sslmode says.
                wire.io.get_mut().write_all(b"N").await?;
            }
            StartupPacket::Cancel { pid, secret } => {
                shared.cancels.cancel(pid, &secret);
                return Ok(None);
            }
            StartupPacket::Startup {
                major,
                minor,
                params,
            } => {
                if major != 3 {
                    return Err(Exit::Fatal(SqlError::new(
                        code::FEATURE_NOT_SUPPORTED,
                        format!("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"),
                    )));
                }
                break (minor, params);
            }
        }
    };

    // Protocol 3.x with x > 0, or protocol options: offer 3.0 and no options.
    let unsupported: Vec<String> = params
        .iter()
        .filter(|(name, _)| name.starts_with("_pq_."))
        .map(|(name, _)| name.clone())
        .collect();
    if minor > 0 || !unsupported.is_empty() {
        wire.send(PgWireBackendMessage::NegotiateProtocolVersion(
            NegotiateProtocolVersion::new(PROTOCOL_3_0, unsupported),
        ));
    }

    let mut user = None;
    let mut database = None;
    let mut options = Vec::new();
    for (name, value) in params {
        match name.as_str() {
            "user" => user = Some(value),
            "database" => database = Some(value),
            "replication" => {}
            "options" => options.extend(command_line_options(&value)),
            n if n.starts_with("_pq_.") => {}
            _ => options.push((name, value)),
        }
    }
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Err(Exit::Fatal(SqlError::new(
            "28000",
            "no PostgreSQL user name specified in startup packet",
        )));
    };
    let database = database
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| user.clone());

    authenticate(wire, peer, shared, &user, &database).await?;

    let engine = shared.engine.clone();
    let (db, name) = (database.clone(), user.clone());
    let session = tokio::task::spawn_blocking(move || Session::new(engine, &db, &name, &options))
        .await
        .map_err(|_| {
            Exit::Fatal(SqlError::internal(
                "internal error while starting the session",
            ))
        })?
        .map_err(Exit::Fatal)?;
    let cancel_key = shared.cancels.register(session.cancel_handle());
    let reported = session.parameter_status();
    let reported_at = session.parameter_changes();

    wire.send(PgWireBackendMessage::Authentication(Authentication::Ok));
    for (name, value) in &reported {
        wire.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
            name.clone(),
            value.clone(),
        )));
    }
    wire.send(PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
        cancel_key.pid,
        SecretKey::I32(cancel_key.secret),
    )));
    wire.send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
        TransactionStatus::Idle,
    )));
    wire.flush().await?;
    tracing::debug!(%peer, %user, %database, pid = cancel_key.pid, "SQL session started");

    Ok(Some(Started {
        session,
        reported,
        reported_at,
        cancel_key,
    }))
}

/// A session that passed startup.
struct Started {
    session: Session,
    reported: Vec<(String, String)>,
    /// The session's `parameter_changes` when `reported` was taken.
    reported_at: u64,
    cancel_key: CancelKey,
}

/// `-c name=value` and `--name=value` settings from the `options` startup
/// parameter (backslash escapes a space).
fn command_line_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut settings = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next()
        } else {
            word.strip_prefix("--")
                .or_else(|| word.strip_prefix("-c"))
                .map(str::to_string)
        };
        if let Some((name, value)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            settings.push((name.replace('-', "_"), value.to_string()));
        }
    }
    settings
}

/// Runs the configured password exchange.
async fn authenticate(
    wire: &mut Wire,
    peer: SocketAddr,
    shared: &Shared,
    user: &str,
    database: &str,
) -> Result<(), Exit> {
    let Some(mut mechanism) = shared.auth.mechanism() else {
        return Ok(());
    };
    let failed = || {
        Exit::Fatal(SqlError::new(
            "28P01",
            format!("password authentication failed for user \"{user}\""),
        ))
    };
    let mut client: DefaultClient<()> = DefaultClient::new(peer, false);
    client
        .metadata_mut()
        .insert(METADATA_USER.to_string(), user.to_string());
    client
        .metadata_mut()
        .insert(METADATA_DATABASE.to_string(), database.to_string());

    // The mechanisms are pgwire's; a panic in one must not take the server
    // down, so it counts as a failed login.
    let mut state = AssertUnwindSafe(mechanism.begin(&client))
        .catch_unwind()
        .await;
    loop {
        let request = match state {
            Ok(Ok(AuthState::InProgress(request))) => request,
            Ok(Ok(AuthState::Ok { final_message, .. })) => {
                if let Some(message) = final_message {
                    wire.send(PgWireBackendMessage::Authentication(message));
                }
                return Ok(());
            }
            Ok(Ok(AuthState::Failed(err))) | Ok(Err(err)) => {
                tracing::info!(%peer, %user, %err, method = %shared.auth.method(), "SQL authentication failed");
                return Err(failed());
            }
            Err(_) => {
                tracing::warn!(%peer, %user, "SQL authentication mechanism panicked");
                return Err(failed());
            }
        };
        let answer = match &request {
            Authentication::SASL(_) => Answer::SaslInitial,
            Authentication::SASLContinue(_) => Answer::Sasl,
            _ => Answer::Password,
        };
        wire.send(PgWireBackendMessage::Authentication(request));
        wire.flush().await?;
        let body = match wire.read().await? {
            FrontendMessage::Password(body) => body,
            FrontendMessage::Terminate => return Err(Exit::Closed),
            _ => {
                return Err(Exit::Fatal(protocol_error(
                    "expected a password response during authentication",
                )))
            }
        };
        let message = answer
            .decode(&body)
            .map_err(|e| Exit::Fatal(SqlError::new(e.code, e.message)))?;
        state = AssertUnwindSafe(mechanism.next(&client, message))
            .catch_unwind()
            .await;
    }
}

/// Which password-family message the client owes.
enum Answer {
    Password,
    SaslInitial,
    Sasl,
}

impl Answer {
    /// Decodes the 'p' message body (bounds-checked; pgwire's own decoders
    /// for these panic on short bodies).
    fn decode(&self, body: &Bytes) -> Result<PasswordMessageFamily, frontend::ProtocolError> {
        let mut r = frontend::Reader::new(body);
        Ok(match self {
            Answer::Password => {
                let password = r.cstr()?;
                r.finish()?;
                PasswordMessageFamily::Password(pgwire::messages::startup::Password::new(password))
            }
            Answer::SaslInitial => {
                let mechanism = r.cstr()?;
                let len = r.i32()?;
                let data = if len < 0 {
                    None
                } else {
                    Some(body.slice_ref(r.bytes(len as usize)?))
                };
                r.finish()?;
                PasswordMessageFamily::SASLInitialResponse(SASLInitialResponse::new(
                    mechanism, data,
                ))
            }
            Answer::Sasl => PasswordMessageFamily::SASLResponse(SASLResponse::new(body.clone())),
        })
    }
}

/// A prepared statement.
struct Prepared {
    /// None for an empty query string. Shared with the portals bound to it:
    /// a Bind and an Execute need not copy the statement's syntax tree.
    statement: Option<Arc<Statement>>,
    /// Parameter types fixed by Parse (None: to infer).
    declared: Vec<Option<DataType>>,
    /// Describe's answer, computed once.
    described: Option<Described>,
}

/// A bound statement.
struct Portal {
    statement: Option<Arc<Statement>>,
    params: Vec<Value>,
    result_formats: Vec<i16>,
    /// Result columns as Describe saw them (None: no rows).
    columns: Option<Vec<Column>>,
    state: PortalState,
}

enum PortalState {
    /// Not executed yet.
    Ready,
    /// Executed with a row limit; rows left to send.
    Suspended {
        columns: Vec<Column>,
        rows: std::vec::IntoIter<Vec<Value>>,
        tag: String,
    },
    /// Ran to completion; its tag (None: empty query).
    Done(Option<String>),
}

/// What executing a statement left to do.
enum Outcome {
    /// Everything is encoded; the CommandComplete tag (None: empty query).
    Sent {
        bytes: BytesMut,
        tag: Option<String>,
    },
    /// Rows beyond an Execute's limit.
    Partial {
        columns: Vec<Column>,
        rows: Vec<Vec<Value>>,
        tag: String,
    },
    /// The client must send COPY data.
    CopyIn(CopyTarget),
}

/// A connection after startup.
struct Backend<'w> {
    wire: &'w mut Wire,
    session: Session,
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, Portal>,
    /// ParameterStatus values the client has been told.
    reported: HashMap<String, String>,
    /// The session's `parameter_changes` when `reported` was last brought
    /// up to date: the values are compared again only once it moves.
    reported_at: u64,
    /// An extended-query message failed: discard messages until Sync.
    skip_till_sync: bool,
    /// Keeps the connection cancellable until it ends.
    _cancel_key: CancelKey,
}

impl<'w> Backend<'w> {
    fn new(wire: &'w mut Wire, started: Started) -> Self {
        Self {
            wire,
            session: started.session,
            statements: HashMap::new(),
            portals: HashMap::new(),
            reported: started.reported.into_iter().collect(),
            reported_at: started.reported_at,
            skip_till_sync: false,
            _cancel_key: started.cancel_key,
        }
    }

    /// Serves messages until the client leaves or a fatal error.
    async fn serve(&mut self) -> Result<(), Exit> {
        loop {
            let message = self.wire.read().await?;
            if message == FrontendMessage::Terminate {
                return Ok(());
            }
            if self.skip_till_sync && message != FrontendMessage::Sync {
                continue;
            }
            let extended = message.is_extended();
            match self.handle(message).await {
                Ok(()) => {}
                Err(Failure::Sql(err)) => {
                    self.wire.send_error(&err, "ERROR");
                    if extended {
                        self.skip_till_sync = true;
                    }
                }
                Err(Failure::Exit(exit)) => return Err(exit),
            }
            if self.wire.out.len() >= FLUSH_THRESHOLD {
                // A client pipelining without Sync still gets its answers.
                self.wire.flush().await?;
            }
        }
    }

    async fn handle(&mut self, message: FrontendMessage) -> Result<(), Failure> {
        match message {
            FrontendMessage::Query(sql) => self.simple_query(sql).await?,
            FrontendMessage::Parse {
                name,
                query,
                param_types,
            } => self.parse(name, query, param_types).await?,
            FrontendMessage::Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            } => {
                self.bind(portal, statement, param_formats, params, result_formats)
                    .await?
            }
            FrontendMessage::Describe { target, name } => self.describe(target, &name).await?,
            FrontendMessage::Execute { portal, max_rows } => {
                self.execute(&portal, max_rows).await?
            }
            FrontendMessage::Close { target, name } => {
                match target {
                    Target::Statement => {
                        if self.statements.remove(&name).is_some() && !name.is_empty() {
                            self.session.statement_closed(&name);
                        }
                    }
                    Target::Portal => {
                        self.portals.remove(&name);
                    }
                }
                self.wire
                    .send(PgWireBackendMessage::CloseComplete(CloseComplete::new()));
            }
            FrontendMessage::Sync => {
                self.skip_till_sync = false;
                let idle = self.session.transaction_status() == TxnStatus::Idle;
                if idle {
                    // Portals live until their transaction ends.
                    self.portals.clear();
                }
                self.ready_for_query().await?;
            }
            FrontendMessage::Flush => self.wire.flush().await.map_err(Exit::Io)?,
            // Leftovers of a COPY that failed are dropped, as PostgreSQL does.
            FrontendMessage::CopyData(_)
            | FrontendMessage::CopyDone
            | FrontendMessage::CopyFail(_) => {}
            FrontendMessage::Password(_) => {
                return Err(Failure::Sql(protocol_error("unexpected password message")));
            }
            FrontendMessage::Terminate => return Err(Failure::Exit(Exit::Closed)),
            FrontendMessage::BadEncoding { kind, message } => {
                let err = SqlError::new(frontend::ENCODING_ERROR, message);
                if kind != b'Q' {
                    return Err(Failure::Sql(err));
                }
                // A simple query ends with ReadyForQuery, failed or not.
                self.wire.send_error(&err, "ERROR");
                self.ready_for_query().await?;
            }
        }
        Ok(())
    }

    /// Sends the warnings the last statement left.
    fn send_notices(&mut self) -> Result<(), Exit> {
        let notices = self.session.take_notices();
        for notice in &notices {
            self.wire.send_notice(notice);
        }
        Ok(())
    }

    /// Runs `f` on the session (on the connection's own thread, where
    /// blocking is allowed).
    /// A panic in the SQL layer leaves the session's state unknown: it ends
    /// the connection.
    fn call<T>(&mut self, f: impl FnOnce(&mut Session) -> T) -> Result<T, Exit> {
        std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut self.session)))
            .map_err(|_| Exit::Fatal(session_failed()))
    }

    /// Sends changed ParameterStatus values and ReadyForQuery, and flushes.
    async fn ready_for_query(&mut self) -> Result<(), Exit> {
        let changes = self.session.parameter_changes();
        let (status, params, deallocated) = {
            let session = &mut self.session;
            (
                session.transaction_status(),
                (changes != self.reported_at).then(|| session.parameter_status()),
                session.take_deallocated(),
            )
        };
        for name in deallocated {
            self.statements.remove(&name);
        }
        self.reported_at = changes;
        for (name, value) in params.into_iter().flatten() {
            if self.reported.get(&name) != Some(&value) {
                self.wire
                    .send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                        name.clone(),
                        value.clone(),
                    )));
                self.reported.insert(name, value);
            }
        }
        let status = match status {
            TxnStatus::Idle => TransactionStatus::Idle,
            TxnStatus::InBlock => TransactionStatus::Transaction,
            TxnStatus::Failed => TransactionStatus::Error,
        };
        self.wire
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )));
        self.wire.flush().await?;
        Ok(())
    }

    /// The simple query protocol: every statement of the string in turn,
    /// stopping at the first error; then ReadyForQuery.
    async fn simple_query(&mut self, sql: String) -> Result<(), Exit> {
        // A Query message also discards the unnamed statement and portal.
        self.statements.remove("");
        self.portals.remove("");
        match self.call(move |s| s.parse(&sql))? {
            Err(err) => self.wire.send_error(&err, "ERROR"),
            Ok(statements) if statements.is_empty() => self.wire.send(
                PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new()),
            ),
            Ok(statements) => {
                let batch = statements.len() > 1;
                if batch {
                    self.session.begin_batch();
                }
                let mut success = true;
                for statement in statements {
                    let outcome = self.call(move |s| {
                        let result = s.execute(&statement, &[])?;
                        encode_result(result, &[], true, 0)
                    })?;
                    self.send_notices()?;
                    match outcome {
                        Ok(Outcome::Sent { bytes, .. }) => self.wire.out.extend_from_slice(&bytes),
                        Ok(Outcome::CopyIn(target)) => {
                            if !self.copy_in(target).await? {
                                success = false;
                                break;
                            }
                        }
                        Ok(Outcome::Partial { .. }) => {
                            unreachable!("no row limit in simple queries")
                        }
                        Err(err) => {
                            self.wire.send_error(&err, "ERROR");
                            success = false;
                            break;
                        }
                    }
                }
                if batch {
                    let ended = self.call(move |s| s.end_batch(success))?;
                    if let Err(err) = ended {
                        self.wire.send_error(&err, "ERROR");
                    }
                }
            }
        }
        self.ready_for_query().await
    }

    /// COPY FROM STDIN: gathers CopyData until CopyDone and loads it. Returns
    /// false if it failed (the error is sent).
    async fn copy_in(&mut self, target: CopyTarget) -> Result<bool, Exit> {
        let columns = target.columns.len();
        self.wire
            .send(PgWireBackendMessage::CopyInResponse(CopyInResponse::new(
                0,
                i16::try_from(columns).unwrap_or(i16::MAX),
                vec![TEXT; columns],
            )));
        self.wire.flush().await?;
        let mut data = Vec::new();
        let mut too_large = false;
        loop {
            match self.wire.read().await? {
                FrontendMessage::CopyData(chunk) => {
                    if data.len() + chunk.len() > MAX_COPY_BYTES {
                        too_large = true;
                    }
                    if !too_large {
                        data.extend_from_slice(&chunk);
                    }
                }
                FrontendMessage::CopyDone => break,
                FrontendMessage::CopyFail(reason) => {
                    let err = SqlError::new(
                        code::QUERY_CANCELED,
                        format!("COPY from stdin failed: {reason}"),
                    );
                    self.wire.send_error(&err, "ERROR");
                    return Ok(false);
                }
                // Clients may pipeline a Sync after the Execute that starts
                // the COPY; PostgreSQL ignores Flush and Sync in COPY mode.
                FrontendMessage::Flush | FrontendMessage::Sync => {}
                FrontendMessage::Terminate => return Err(Exit::Closed),
                _ => {
                    let err = protocol_error("unexpected message type during COPY from stdin");
                    self.wire.send_error(&err, "ERROR");
                    return Ok(false);
                }
            }
        }
        if too_large {
            let err = SqlError::new(
                code::PROGRAM_LIMIT_EXCEEDED,
                format!("COPY data exceeds {MAX_COPY_BYTES} bytes; load it in parts"),
            );
            self.wire.send_error(&err, "ERROR");
            return Ok(false);
        }
        let result = self.call(move |s| {
            let result = s.copy_in(&target, &data)?;
            encode_result(result, &[], false, 0)
        })?;
        match result {
            Ok(Outcome::Sent { bytes, .. }) => {
                self.wire.out.extend_from_slice(&bytes);
                Ok(true)
            }
            Ok(_) => {
                let err = SqlError::internal("COPY produced an unexpected result");
                self.wire.send_error(&err, "ERROR");
                Ok(false)
            }
            Err(err) => {
                self.wire.send_error(&err, "ERROR");
                Ok(false)
            }
        }
    }

    async fn parse(
        &mut self,
        name: String,
        query: String,
        param_types: Vec<u32>,
    ) -> Result<(), Failure> {
        if !name.is_empty() && self.statements.contains_key(&name) {
            return Err(SqlError::new(
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            )
            .into());
        }
        let declared = param_types
            .iter()
            .map(|&oid| match oid {
                0 => Ok(None),
                oid => DataType::from_oid(oid).map(Some).ok_or_else(|| {
                    SqlError::new(
                        code::UNDEFINED_OBJECT,
                        format!("type with OID {oid} does not exist"),
                    )
                }),
            })
            .collect::<SqlResult<Vec<_>>>()?;
        let mut statements = self.call(move |s| s.parse(&query))??;
        if statements.len() > 1 {
            return Err(SqlError::syntax(
                "cannot insert multiple commands into a prepared statement",
            )
            .into());
        }
        if !name.is_empty() {
            self.session.statement_prepared(&name);
        }
        self.statements.insert(
            name,
            Prepared {
                statement: statements.pop().map(Arc::new),
                declared,
                described: None,
            },
        );
        self.wire
            .send(PgWireBackendMessage::ParseComplete(ParseComplete::new()));
        Ok(())
    }

    /// Describe's answer for a prepared statement, inferred once (without
    /// executing) and cached.
    async fn described(&mut self, name: &str) -> Result<Described, Failure> {
        let prepared = self.statements.get(name).ok_or_else(|| {
            SqlError::new(
                "26000",
                format!("prepared statement \"{name}\" does not exist"),
            )
        })?;
        if let Some(described) = &prepared.described {
            return Ok(described.clone());
        }
        let declared = prepared.declared.clone();
        let mut described = match prepared.statement.clone() {
            None => Described {
                params: Vec::new(),
                columns: None,
            },
            Some(statement) => {
                let types = declared.clone();
                self.call(move |s| s.describe(&statement, &types))??
            }
        };
        // Types the client fixed at Parse win over inferred ones.
        let count = described.params.len().max(declared.len());
        described.params = (0..count)
            .map(|i| {
                declared
                    .get(i)
                    .copied()
                    .flatten()
                    .or_else(|| described.params.get(i).copied())
                    .unwrap_or(DataType::Unknown)
            })
            .collect();
        if let Some(prepared) = self.statements.get_mut(name) {
            prepared.described = Some(described.clone());
        }
        Ok(described)
    }

    async fn bind(
        &mut self,
        portal: String,
        statement: String,
        param_formats: Vec<i16>,
        params: Vec<Option<Bytes>>,
        result_formats: Vec<i16>,
    ) -> Result<(), Failure> {
        let described = self.described(&statement).await?;
        if !portal.is_empty() && self.portals.contains_key(&portal) {
            return Err(
                SqlError::new("42P03", format!("portal \"{portal}\" already exists")).into(),
            );
        }
        if params.len() != described.params.len() {
            return Err(protocol_error(format!(
                "bind message supplies {} parameters, but prepared statement \"{statement}\" requires {}",
                params.len(),
                described.params.len()
            ))
            .into());
        }
        if param_formats.len() > 1 && param_formats.len() != params.len() {
            return Err(protocol_error(format!(
                "bind message has {} parameter formats but {} parameters",
                param_formats.len(),
                params.len()
            ))
            .into());
        }
        format::check_codes(&param_formats)?;
        format::check_codes(&result_formats)?;
        if let Some(columns) = &described.columns {
            if result_formats.len() > 1 && result_formats.len() != columns.len() {
                return Err(protocol_error(format!(
                    "bind message has {} result formats but query has {} columns",
                    result_formats.len(),
                    columns.len()
                ))
                .into());
            }
        }
        let values = params
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                format::decode_param(
                    raw.as_deref(),
                    described.params[i],
                    format_of(&param_formats, i),
                    i,
                )
            })
            .collect::<SqlResult<Vec<_>>>()?;
        let statement = self
            .statements
            .get(&statement)
            .and_then(|p| p.statement.clone());
        self.portals.insert(
            portal,
            Portal {
                statement,
                params: values,
                result_formats,
                columns: described.columns,
                state: PortalState::Ready,
            },
        );
        self.wire
            .send(PgWireBackendMessage::BindComplete(BindComplete::new()));
        Ok(())
    }

    async fn describe(&mut self, target: Target, name: &str) -> Result<(), Failure> {
        match target {
            Target::Statement => {
                let described = self.described(name).await?;
                let types = described
                    .params
                    .iter()
                    .map(|t| wire_type(*t).oid())
                    .collect();
                self.wire.send(PgWireBackendMessage::ParameterDescription(
                    ParameterDescription::new(types),
                ));
                match &described.columns {
                    Some(columns) => {
                        let description = row_description(columns, &[]);
                        self.wire
                            .send(PgWireBackendMessage::RowDescription(description));
                    }
                    None => self.wire.send(PgWireBackendMessage::NoData(NoData::new())),
                }
            }
            Target::Portal => {
                let portal = self.portals.get(name).ok_or_else(|| {
                    SqlError::new(
                        code::INVALID_CURSOR_NAME,
                        format!("portal \"{name}\" does not exist"),
                    )
                })?;
                let columns = match &portal.state {
                    PortalState::Suspended { columns, .. } => Some(columns),
                    _ => portal.columns.as_ref(),
                };
                match columns {
                    Some(columns) => {
                        let description = row_description(columns, &portal.result_formats);
                        self.wire
                            .send(PgWireBackendMessage::RowDescription(description));
                    }
                    None => self.wire.send(PgWireBackendMessage::NoData(NoData::new())),
                }
            }
        }
        Ok(())
    }

    async fn execute(&mut self, name: &str, max_rows: i32) -> Result<(), Failure> {
        let limit = usize::try_from(max_rows).unwrap_or(0);
        let portal = self.portals.get_mut(name).ok_or_else(|| {
            SqlError::new(
                code::INVALID_CURSOR_NAME,
                format!("portal \"{name}\" does not exist"),
            )
        })?;
        match &mut portal.state {
            PortalState::Ready => {}
            PortalState::Suspended { columns, rows, tag } => {
                let sent = send_rows(
                    &mut self.wire.out,
                    columns,
                    rows,
                    &portal.result_formats,
                    limit,
                )?;
                if rows.as_slice().is_empty() && !(limit > 0 && sent == limit) {
                    let tag = select_tag(tag, sent);
                    self.wire
                        .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                            tag.clone(),
                        )));
                    portal.state = PortalState::Done(Some(tag));
                } else {
                    self.wire
                        .send(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()));
                }
                return Ok(());
            }
            PortalState::Done(tag) => {
                // A finished portal has nothing more to give.
                match tag {
                    None => self.wire.send(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    )),
                    Some(tag) => {
                        let tag = select_tag(tag, 0);
                        self.wire.send(PgWireBackendMessage::CommandComplete(
                            CommandComplete::new(tag),
                        ));
                    }
                }
                return Ok(());
            }
        }
        let Some(statement) = portal.statement.clone() else {
            portal.state = PortalState::Done(None);
            self.wire.send(PgWireBackendMessage::EmptyQueryResponse(
                EmptyQueryResponse::new(),
            ));
            return Ok(());
        };
        let params = std::mem::take(&mut portal.params);
        let formats = portal.result_formats.clone();
        portal.state = PortalState::Done(Some(String::new()));
        let outcome = self.call(move |s| {
            let result = s.execute(&statement, &params)?;
            encode_result(result, &formats, false, limit)
        })??;
        self.send_notices()?;
        match outcome {
            Outcome::Sent { bytes, tag } => {
                self.wire.out.extend_from_slice(&bytes);
                if let Some(portal) = self.portals.get_mut(name) {
                    portal.state = PortalState::Done(tag);
                }
            }
            Outcome::Partial { columns, rows, tag } => {
                let mut rows = rows.into_iter();
                let formats = self
                    .portals
                    .get(name)
                    .map(|p| p.result_formats.clone())
                    .unwrap_or_default();
                send_rows(&mut self.wire.out, &columns, &mut rows, &formats, limit)?;
                self.wire
                    .send(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()));
                if let Some(portal) = self.portals.get_mut(name) {
                    portal.state = PortalState::Suspended { columns, rows, tag };
                }
            }
            Outcome::CopyIn(target) => {
                if !self.copy_in(target).await? {
                    self.skip_till_sync = true;
                }
            }
        }
        Ok(())
    }
}

fn session_failed() -> SqlError {
    SqlError::internal("internal error: the session failed; closing the connection")
}

/// The tag of a portal that ran out after `sent` rows in this Execute: a
/// SELECT reports the rows of the last fetch, as PostgreSQL does.
fn select_tag(tag: &str, sent: usize) -> String {
    if tag == "SELECT" || tag.starts_with("SELECT ") {
        format!("SELECT {sent}")
    } else {
        tag.to_string()
    }
}

fn row_description(columns: &[Column], formats: &[i16]) -> RowDescription {
    RowDescription::new(
        columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let ty = wire_type(column.ty);
                FieldDescription::new(
                    column.name.clone(),
                    column.table_oid as i32,
                    column.column_id,
                    ty.oid(),
                    ty.typlen(),
                    ty.typmod(),
                    format_of(formats, i),
                )
            })
            .collect(),
    )
}

/// Appends a DataRow. Written directly rather than through pgwire's
/// `DataRow`, which would copy every row once more.
fn put_data_row(
    out: &mut BytesMut,
    columns: &[Column],
    row: &[Value],
    formats: &[i16],
) -> SqlResult<()> {
    let at = out.len();
    out.put_u8(b'D');
    out.put_i32(0);
    out.put_i16(
        i16::try_from(row.len())
            .map_err(|_| SqlError::new(code::PROGRAM_LIMIT_EXCEEDED, "too many columns"))?,
    );
    for (i, value) in row.iter().enumerate() {
        let ty = columns.get(i).map_or(DataType::Text, |c| wire_type(c.ty));
        put_field(value, ty, format_of(formats, i), out)?;
    }
    let len = i32::try_from(out.len() - at - 1)
        .map_err(|_| SqlError::new(code::PROGRAM_LIMIT_EXCEEDED, "result row too large"))?;
    out[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Sends up to `limit` rows (0: all); returns how many.
fn send_rows(
    out: &mut BytesMut,
    columns: &[Column],
    rows: &mut std::vec::IntoIter<Vec<Value>>,
    formats: &[i16],
    limit: usize,
) -> SqlResult<usize> {
    let mut sent = 0;
    while limit == 0 || sent < limit {
        let Some(row) = rows.next() else { break };
        put_data_row(out, columns, &row, formats)?;
        sent += 1;
    }
    Ok(sent)
}

fn put_message(out: &mut BytesMut, message: PgWireBackendMessage) -> SqlResult<()> {
    message
        .encode(out)
        .map_err(|e| SqlError::internal(format!("cannot encode a response: {e}")))
}

/// Encodes a statement's result: RowDescription if `describe` (the simple
/// protocol), rows, CommandComplete. With a row `limit` that the rows
/// exceed, or reach exactly (PostgreSQL then suspends too), the rows are
/// handed back for the portal instead.
fn encode_result(
    result: QueryResult,
    formats: &[i16],
    describe: bool,
    limit: usize,
) -> SqlResult<Outcome> {
    let mut out = BytesMut::new();
    let tag = match result {
        QueryResult::Rows { columns, rows, tag } => {
            if limit > 0 && rows.len() >= limit {
                return Ok(Outcome::Partial { columns, rows, tag });
            }
            if describe {
                put_message(
                    &mut out,
                    PgWireBackendMessage::RowDescription(row_description(&columns, formats)),
                )?;
            }
            for row in &rows {
                put_data_row(&mut out, &columns, row, formats)?;
            }
            put_message(
                &mut out,
                PgWireBackendMessage::CommandComplete(CommandComplete::new(tag.clone())),
            )?;
            Some(tag)
        }
        QueryResult::Command { tag } => {
            put_message(
                &mut out,
                PgWireBackendMessage::CommandComplete(CommandComplete::new(tag.clone())),
            )?;
            Some(tag)
        }
        QueryResult::Empty => {
            put_message(
                &mut out,
                PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new()),
            )?;
            None
        }
        QueryResult::CopyIn(target) => return Ok(Outcome::CopyIn(target)),
    };
    Ok(Outcome::Sent { bytes: out, tag })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options_parameter() {
        assert_eq!(
            command_line_options("-c search_path=a,b --statement-timeout=5s -cDateStyle=ISO x"),
            vec![
                ("search_path".to_string(), "a,b".to_string()),
                ("statement_timeout".to_string(), "5s".to_string()),
                ("DateStyle".to_string(), "ISO".to_string()),
            ]
        );
        assert_eq!(
            command_line_options(r"-c application_name=a\ b"),
            vec![("application_name".to_string(), "a b".to_string())]
        );
    }

    #[test]
    fn reports_the_command_tag() {
        let result = QueryResult::Command {
            tag: "CREATE TABLE".into(),
        };
        let Outcome::Sent { tag, .. } = encode_result(result, &[], false, 0).unwrap() else {
            panic!()
        };
        assert_eq!(tag.as_deref(), Some("CREATE TABLE"));
        let Outcome::Sent { tag, .. } = encode_result(QueryResult::Empty, &[], false, 0).unwrap()
        else {
            panic!()
        };
        assert_eq!(tag, None);
        assert_eq!(select_tag("SELECT 10", 3), "SELECT 3");
        assert_eq!(select_tag("INSERT 0 10", 3), "INSERT 0 10");
    }

    #[test]
    fn rows_at_the_limit_suspend() {
        let result = QueryResult::Rows {
            columns: vec![Column::new("a", DataType::Int4)],
            rows: vec![vec![Value::Int(1)], vec![Value::Int(2)]],
            tag: "SELECT 2".into(),
        };
        assert!(matches!(
            encode_result(result.clone(), &[], false, 2).unwrap(),
            Outcome::Partial { .. }
        ));
        assert!(matches!(
            encode_result(result, &[], false, 3).unwrap(),
            Outcome::Sent { .. }
        ));
    }

    #[test]
    fn error_fields_are_truncated() {
        let long = "é".repeat(10_000);
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_ERROR_FIELD + 3 && cut.ends_with("..."));
    }
}
