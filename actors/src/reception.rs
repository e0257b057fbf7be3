//! Reception (what Welco does): the telephony system tells Guichet that a call is ringing on an
//! agent's line; Guichet finds the accounts of the caller's number and pushes them, with their
//! recent demands, to the screens of the agents of that line.

use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::broadcast;

use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::AccountId;
use crate::mail::sms::normalise_phone;
use crate::store::{Store, StoreError};

/// A call ringing on an agent's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    /// The caller's number, in E.164 when it could be read.
    pub caller: String,
    /// The line called (an agent's extension).
    pub line: String,
    /// When it rang.
    pub at: Timestamp,
    /// Accounts whose phone is the caller's number.
    pub accounts: Vec<AccountId>,
}

/// Errors of reception.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceptionError {
    /// A line or number that cannot be one.
    #[error("{0}")]
    Invalid(String),
    /// The store is out of reach.
    #[error("reception unavailable: {0}")]
    Unavailable(String),
}

impl HasErrorCode for ReceptionError {
    fn code(&self) -> ErrorCode {
        match self {
            ReceptionError::Invalid(_) => ErrorCode::BadUserInput,
            ReceptionError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

fn unavailable(e: StoreError) -> ReceptionError {
    tracing::error!(error = %e, "reception store error");
    ReceptionError::Unavailable("storage unavailable".into())
}

/// A line: digits, letters, `+`, `-`, `.`, `@`, `_`, at most 64 characters.
fn check_line(line: &str) -> Result<String, ReceptionError> {
    let line = line.trim();
    let ok = !line.is_empty()
        && line.len() <= 64
        && line.chars().all(|c| c.is_ascii_alphanumeric() || "+-.@_".contains(c));
    if ok {
        Ok(line.to_owned())
    } else {
        Err(ReceptionError::Invalid(format!("{line:?} is not a line")))
    }
}

/// True when `given` is the webhook's secret: the two are compared through their SHA-256, so
/// that the time taken says nothing about the secret.
pub fn token_matches(expected: &str, given: &str) -> bool {
    use sha2::{Digest, Sha256};
    !expected.is_empty() && Sha256::digest(expected.as_bytes()) == Sha256::digest(given.as_bytes())
}

/// Calls, as they ring.
#[derive(Debug, Clone)]
pub struct Reception {
    store: Store,
    calls: Arc<broadcast::Sender<Arc<IncomingCall>>>,
}

impl Reception {
    /// Reception over the store.
    pub fn new(store: Store) -> Self {
        Self { store, calls: Arc::new(broadcast::channel(256).0) }
    }

    /// An agent answers calls on `line` from now on (none: no longer).
    pub async fn set_line(
        &self,
        agent: AccountId,
        line: Option<&str>,
    ) -> Result<Option<String>, ReceptionError> {
        let line = line.map(check_line).transpose()?;
        self.store.set_reception_line(agent, line.as_deref()).await.map_err(unavailable)?;
        Ok(line)
    }

    /// The line of an agent.
    pub async fn line_of(&self, agent: AccountId) -> Result<Option<String>, ReceptionError> {
        let account = self.store.account(agent).await.map_err(unavailable)?;
        Ok(account.and_then(|a| a.reception_line))
    }

    /// A call rings on `line` from `caller`: finds the caller's accounts and tells the agents of
    /// that line.
    pub async fn incoming(&self, caller: &str, line: &str) -> Result<IncomingCall, ReceptionError> {
        let line = check_line(line)?;
        let number = normalise_phone(caller);
        let accounts = match &number {
            Some(n) => self.store.accounts_by_phone(n).await.map_err(unavailable)?,
            // A withheld or foreign-format number still rings: nobody matches.
            None => Vec::new(),
        };
        let call = IncomingCall {
            caller: number.unwrap_or_else(|| caller.chars().take(32).collect()),
            line,
            at: Timestamp::now(),
            accounts,
        };
        tracing::info!(line = %call.line, matches = call.accounts.len(), "incoming call");
        // No screen open is not an error.
        let _ = self.calls.send(Arc::new(call.clone()));
        Ok(call)
    }

    /// Receives the calls of every line from now on (subscribers keep those of their line).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<IncomingCall>> {
        self.calls.subscribe()
    }
}
