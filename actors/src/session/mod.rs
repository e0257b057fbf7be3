//! Sessions: a random bearer token (256 bits) per sign-in, stored only as its SHA-256, with idle
//! and absolute expiry. A `UserSessionActor` per live session tracks activity and open
//! subscriptions; when the session ends (logout, expiry), it tells every subscription to close.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, watch};

use crate::access::Principal;
use crate::account::AccountView;
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::AccountId;
use crate::metrics::ActorMetrics;
use crate::runtime::ActorRuntime;
use crate::store::{SessionRecord, Store, StoreError};
use crate::time::{from_micros, to_micros};

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle: SignedDuration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: SignedDuration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self { idle: SignedDuration::from_hours(2), absolute: SignedDuration::from_hours(12) }
    }
}

/// Errors of sessions.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    /// No session for this token, or it ended.
    #[error("invalid or expired session")]
    Invalid,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// The session actor is gone.
    #[error("session service unavailable")]
    Unavailable,
}

impl HasErrorCode for SessionError {
    fn code(&self) -> ErrorCode {
        match self {
            SessionError::Invalid => ErrorCode::Unauthenticated,
            SessionError::Store(e) => e.code(),
            SessionError::Unavailable => ErrorCode::Unavailable,
        }
    }
}

/// The stored key of a token: its SHA-256 in hex. Tokens have 256 bits of entropy, so a fast
/// hash is enough (no dictionary to attack).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A random 256-bit token, URL-safe base64 (session tokens, generated passwords).
pub fn random_token() -> Result<String, SessionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| SessionError::Unavailable)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

// ----- actor -----

/// The actor of one live session.
struct UserSessionActor {
    record: SessionRecord,
    principal: Principal,
    store: Store,
    closed: watch::Sender<bool>,
    last_persisted_us: i64,
    open_subscriptions: usize,
    registry: Arc<Mutex<HashMap<String, Arc<OnceCell<SessionHandle>>>>>,
    metrics: Arc<ActorMetrics>,
}

impl UserSessionActor {
    fn expired(&self, now: Timestamp) -> bool {
        let now = to_micros(now);
        let idle_us = self.record.idle_secs.saturating_mul(1_000_000);
        self.record.revoked
            || now >= self.record.expires_us
            || now >= self.record.last_seen_us.saturating_add(idle_us)
    }

    fn persist_activity(&mut self, ctx: &mut Context<Self>) {
        if self.record.last_seen_us == self.last_persisted_us {
            return;
        }
        self.last_persisted_us = self.record.last_seen_us;
        let store = self.store.clone();
        let hash = self.record.id.clone();
        let at = from_micros(self.record.last_seen_us);
        ctx.spawn(
            async move {
                if let Err(e) = store.touch_session(&hash, at).await {
                    tracing::warn!(error = %e, "session activity not stored");
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for UserSessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.live_actors.fetch_add(1, Ordering::Relaxed);
        self.metrics.live_sessions.fetch_add(1, Ordering::Relaxed);
        // Check expiry often enough for short test policies, rarely enough to cost nothing.
        let idle = Duration::from_secs(u64::try_from(self.record.idle_secs.max(1)).unwrap_or(60));
        let period = (idle / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
        ctx.run_interval(period, |act, ctx| {
            if act.expired(Timestamp::now()) {
                ctx.stop();
            } else {
                act.persist_activity(ctx);
            }
        });
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        self.persist_activity(ctx);
        Running::Stop
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let _ = self.closed.send(true);
        self.registry.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.record.id);
        self.metrics.live_actors.fetch_sub(1, Ordering::Relaxed);
        self.metrics.live_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// From the API on every request: records activity; answers the caller, or an error once the
/// session has ended.
#[derive(Message)]
#[rtype(result = "Result<Principal, SessionError>")]
struct TouchSession;

impl Handler<TouchSession> for UserSessionActor {
    type Result = Result<Principal, SessionError>;

    fn handle(&mut self, _: TouchSession, ctx: &mut Context<Self>) -> Self::Result {
        let now = Timestamp::now();
        if self.expired(now) {
            ctx.stop();
            return Err(SessionError::Invalid);
        }
        self.record.last_seen_us = to_micros(now);
        Ok(self.principal.clone())
    }
}

/// From the API on logout: revokes the session durably, then stops the actor.
#[derive(Message)]
#[rtype(result = "Result<(), SessionError>")]
struct RevokeSession;

impl Handler<RevokeSession> for UserSessionActor {
    type Result = ResponseActFuture<Self, Result<(), SessionError>>;

    fn handle(&mut self, _: RevokeSession, _: &mut Context<Self>) -> Self::Result {
        self.record.revoked = true;
        let store = self.store.clone();
        let hash = self.record.id.clone();
        Box::pin(async move { store.revoke_session(&hash).await }.into_actor(self).map(
            |r, _, ctx| {
                ctx.stop();
                r.map_err(SessionError::Store)
            },
        ))
    }
}

/// From subscriptions when they open (+1) or close (-1).
#[derive(Message)]
#[rtype(result = "()")]
struct CountSubscription(isize);

impl Handler<CountSubscription> for UserSessionActor {
    type Result = ();

    fn handle(&mut self, msg: CountSubscription, _: &mut Context<Self>) {
        self.open_subscriptions = self.open_subscriptions.saturating_add_signed(msg.0);
    }
}

// ----- handle and registry -----

/// A live session, as the API holds it.
#[derive(Clone)]
pub struct SessionHandle {
    addr: Addr<UserSessionActor>,
    closed: watch::Receiver<bool>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionHandle")
    }
}

impl SessionHandle {
    /// Records activity and returns the caller, or `Invalid` once the session ended.
    pub async fn touch(&self) -> Result<Principal, SessionError> {
        self.addr.send(TouchSession).await.map_err(|_| SessionError::Invalid)?
    }

    /// Resolves when the session ends; subscriptions select on it to close.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// True once the session ended.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Counts a subscription opened on this session until the guard drops.
    pub fn track_subscription(&self) -> SubscriptionGuard {
        self.addr.do_send(CountSubscription(1));
        SubscriptionGuard { addr: self.addr.clone() }
    }
}

/// Counts one open subscription on a session while it lives.
pub struct SubscriptionGuard {
    addr: Addr<UserSessionActor>,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.addr.do_send(CountSubscription(-1));
    }
}

/// A new sign-in.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The bearer token, shown once to the client.
    pub token: String,
    /// Absolute expiry.
    pub expires_at: Timestamp,
}

/// Opens, finds and ends sessions.
#[derive(Clone)]
pub struct Sessions {
    runtime: ActorRuntime,
    store: Store,
    policy: SessionPolicy,
    live: Arc<Mutex<HashMap<String, Arc<OnceCell<SessionHandle>>>>>,
    metrics: Arc<ActorMetrics>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("policy", &self.policy).finish()
    }
}

impl Sessions {
    /// Sessions stored in `store`, with actors on `runtime`.
    pub fn new(
        runtime: ActorRuntime,
        store: Store,
        policy: SessionPolicy,
        metrics: Arc<ActorMetrics>,
    ) -> Self {
        Self { runtime, store, policy, live: Arc::default(), metrics }
    }

    /// Opens a session for an account that just proved who it is.
    pub async fn open(&self, account: &AccountView) -> Result<NewSession, SessionError> {
        let token = random_token()?;
        let now = Timestamp::now();
        let expires_at = now + self.policy.absolute;
        let record = SessionRecord {
            id: token_hash(&token),
            account: account.id.to_string(),
            created_us: to_micros(now),
            last_seen_us: to_micros(now),
            expires_us: to_micros(expires_at),
            idle_secs: self.policy.idle.as_secs(),
            revoked: false,
        };
        self.store.create_session(&record).await.map_err(SessionError::Store)?;
        Ok(NewSession { token, expires_at })
    }

    /// The live session of a bearer token, starting its actor on first use.
    pub async fn authenticate(
        &self,
        token: &str,
    ) -> Result<(SessionHandle, Principal), SessionError> {
        if token.is_empty() || token.len() > 128 {
            return Err(SessionError::Invalid);
        }
        let hash = token_hash(token);
        let cell = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(hash.clone())
            .or_default()
            .clone();
        let handle = cell.get_or_try_init(|| self.start(hash.clone())).await;
        let handle = match handle {
            Ok(h) => h.clone(),
            Err(e) => {
                self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&hash);
                return Err(e);
            }
        };
        let principal = handle.touch().await?;
        Ok((handle, principal))
    }

    async fn start(&self, hash: String) -> Result<SessionHandle, SessionError> {
        let record = self
            .store
            .session(&hash)
            .await
            .map_err(SessionError::Store)?
            .ok_or(SessionError::Invalid)?;
        let account_id: AccountId = record.account.parse().map_err(|_| SessionError::Invalid)?;
        let account = self
            .store
            .account(account_id)
            .await
            .map_err(SessionError::Store)?
            .ok_or(SessionError::Invalid)?;
        let principal = Principal::Account { id: account_id, roles: account.roles() };
        let (closed, closed_rx) = watch::channel(false);
        let store = self.store.clone();
        let registry = self.live.clone();
        let metrics = self.metrics.clone();
        let last = record.last_seen_us;
        let actor = UserSessionActor {
            record,
            principal,
            store,
            closed,
            last_persisted_us: last,
            open_subscriptions: 0,
            registry,
            metrics,
        };
        if actor.expired(Timestamp::now()) {
            return Err(SessionError::Invalid);
        }
        let addr = self.runtime.spawn(move |_| actor);
        Ok(SessionHandle { addr, closed: closed_rx })
    }

    /// Ends a session for good (logout).
    pub async fn revoke(&self, token: &str) -> Result<(), SessionError> {
        let (handle, _) = self.authenticate(token).await?;
        handle.addr.send(RevokeSession).await.map_err(|_| SessionError::Unavailable)?
    }
}
