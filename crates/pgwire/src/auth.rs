//! Client authentication: trust, or a password checked by one of pgwire's
//! mechanisms (cleartext, MD5, SCRAM-SHA-256) against the configured users.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pgwire::api::auth::cleartext::CleartextPasswordAuth;
use pgwire::api::auth::md5pass::{hash_md5_password, Md5PasswordAuth};
use pgwire::api::auth::mechanism::{AuthMechanism, AuthMechanismFactory};
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth, SCRAM_ITERATIONS};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::PgWireResult;

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// Anyone may connect as any user (PostgreSQL's `trust`).
    #[default]
    Trust,
    /// The password travels in clear text (`password`); use only on trusted
    /// networks until TLS is supported.
    Password,
    /// `md5`: a salted MD5 challenge.
    Md5,
    /// `scram-sha-256`: SCRAM, the password never travels.
    ScramSha256,
}

impl AuthMethod {
    /// The name used in configuration (as in `pg_hba.conf`).
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Trust => "trust",
            AuthMethod::Password => "password",
            AuthMethod::Md5 => "md5",
            AuthMethod::ScramSha256 => "scram-sha-256",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AuthMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "trust" => Ok(AuthMethod::Trust),
            "password" | "cleartext" => Ok(AuthMethod::Password),
            "md5" => Ok(AuthMethod::Md5),
            "scram-sha-256" | "scram" => Ok(AuthMethod::ScramSha256),
            _ => Err(format!(
                "unknown authentication method {s:?} (expected trust, password, md5 or scram-sha-256)"
            )),
        }
    }
}

/// The SQL server's authentication settings.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// The method every connection uses.
    pub method: AuthMethod,
    /// User name -> password, for the password methods.
    pub users: BTreeMap<String, String>,
}

impl AuthConfig {
    /// No passwords.
    pub fn trust() -> Self {
        Self::default()
    }

    /// Password authentication with `method` for `users` (name, password).
    pub fn with_users<U, P>(method: AuthMethod, users: impl IntoIterator<Item = (U, P)>) -> Self
    where
        U: Into<String>,
        P: Into<String>,
    {
        Self {
            method,
            users: users
                .into_iter()
                .map(|(u, p)| (u.into(), p.into()))
                .collect(),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("method", &self.method)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Unpredictable bits without a rand dependency: SipHash under the standard
/// library's per-process random keys, over a counter and the clock. Good
/// enough for cancel keys and salts, which must only be hard to guess.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&random_u64().to_be_bytes());
    }
    out.truncate(n);
    out
}

/// What the server keeps per user.
enum Secret {
    /// The password itself (cleartext and MD5 need it).
    Plain(String),
    /// SCRAM's salted password.
    Scram { salt: Vec<u8>, salted: Vec<u8> },
}

/// The user list as pgwire's mechanisms ask for it.
struct Credentials {
    method: AuthMethod,
    users: HashMap<String, Secret>,
    /// Answered for unknown users, so that they fail exactly like a wrong
    /// password and user names cannot be probed.
    unknown: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("method", &self.method)
            .field("users", &self.users.len())
            .finish()
    }
}

impl Credentials {
    fn new(config: &AuthConfig) -> Self {
        let secret = |password: &str| match config.method {
            AuthMethod::ScramSha256 => {
                let salt = random_bytes(16);
                let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
                Secret::Scram { salt, salted }
            }
            _ => Secret::Plain(password.to_string()),
        };
        let unguessable = format!("{:x}{:x}", random_u64(), random_u64());
        Self {
            method: config.method,
            users: config
                .users
                .iter()
                .map(|(user, password)| (user.clone(), secret(password)))
                .collect(),
            unknown: secret(&unguessable),
        }
    }
}

#[async_trait]
impl AuthSource for Credentials {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let secret = self.users.get(user).unwrap_or(&self.unknown);
        Ok(match (self.method, secret) {
            (AuthMethod::Md5, Secret::Plain(password)) => {
                let salt = random_bytes(4);
                let hashed = hash_md5_password(user, password, &salt);
                Password::new(Some(salt), hashed.into_bytes())
            }
            (_, Secret::Plain(password)) => Password::new(None, password.clone().into_bytes()),
            (_, Secret::Scram { salt, salted }) => {
                Password::new(Some(salt.clone()), salted.clone())
            }
        })
    }
}

/// Creates a fresh authentication exchange for each connection.
pub(crate) struct Authenticator {
    method: AuthMethod,
    factory: Option<Box<dyn AuthMechanismFactory>>,
}

impl Authenticator {
    pub(crate) fn new(config: &AuthConfig) -> Self {
        let credentials = Arc::new(Credentials::new(config));
        let factory: Option<Box<dyn AuthMechanismFactory>> = match config.method {
            AuthMethod::Trust => None,
            AuthMethod::Password => Some(Box::new(CleartextPasswordAuth::new(credentials))),
            AuthMethod::Md5 => Some(Box::new(Md5PasswordAuth::new(credentials))),
            AuthMethod::ScramSha256 => {
                let source: Arc<dyn AuthSource> = credentials;
                Some(Box::new(ScramAuth::new(source)))
            }
        };
        Self {
            method: config.method,
            factory,
        }
    }

    /// The configured method.
    pub(crate) fn method(&self) -> AuthMethod {
        self.method
    }

    /// A new exchange, or None for trust.
    pub(crate) fn mechanism(&self) -> Option<Box<dyn AuthMechanism>> {
        self.factory.as_ref().map(|f| f.create())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_method_names() {
        for method in [
            AuthMethod::Trust,
            AuthMethod::Password,
            AuthMethod::Md5,
            AuthMethod::ScramSha256,
        ] {
            assert_eq!(method.name().parse::<AuthMethod>().unwrap(), method);
        }
        assert!("kerberos".parse::<AuthMethod>().is_err());
    }

    #[test]
    fn debug_hides_passwords() {
        let config = AuthConfig::with_users(AuthMethod::Md5, [("alice", "s3cret")]);
        let shown = format!("{config:?}");
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(random_u64(), random_u64());
        assert_eq!(random_bytes(5).len(), 5);
    }
}
