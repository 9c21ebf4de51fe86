//! The PostgreSQL wire protocol frontend: psql, libpq, JDBC, tokio-postgres
//! and the like connect here and talk to a [`tessera_sql::Session`].
//!
//! [`serve`] accepts connections; each starts as a task of its own and, once
//! its session is open, goes on on a thread of its own:
//!
//! 1. Startup: SSL and GSS encryption requests are refused (`N`), cancel
//!    requests are matched against the live connections' keys, protocol 3.0
//!    is negotiated, and the client authenticates ([`AuthConfig`]: trust, or
//!    a cleartext, MD5 or SCRAM-SHA-256 password). The session is opened
//!    (3D000 if the database does not exist) and the client is sent its
//!    ParameterStatus values, BackendKeyData and ReadyForQuery.
//! 2. Simple query protocol: a Query runs its statements in order and stops
//!    at the first error.
//! 3. Extended query protocol: named and unnamed prepared statements and
//!    portals; Describe infers parameter types without executing; Execute
//!    honours row limits (PortalSuspended); after an error, messages are
//!    discarded until Sync. Parameters and results in text or binary format
//!    for every SQL type.
//! 4. COPY FROM STDIN (text and CSV; the SQL layer parses the data).
//! 5. ReadyForQuery carries the session's transaction status (I, T, E) and
//!    is preceded by ParameterStatus for any reported variable that `SET`
//!    changed. Errors carry their SQLSTATE and DETAIL.
//!
//! The session is synchronous (it does blocking storage I/O), so after
//! startup a connection reads, executes and answers on its own thread, with
//! a blocking socket, as a PostgreSQL backend process does. Messages are framed and decoded here
//! with bounds checks; bytes that are not the protocol end only their own
//! connection. The `pgwire` crate supplies the backend message encoders and
//! the password mechanisms.
#![deny(missing_docs)]

mod auth;
mod cancel;
mod connection;
mod format;
mod frontend;
mod server;

pub use auth::{AuthConfig, AuthMethod};
pub use server::serve;
