//! Counters the actors keep for the metrics endpoint.

use std::sync::atomic::AtomicUsize;

/// Live figures of the actor system, read by `/metrics`.
#[derive(Debug, Default)]
pub struct ActorMetrics {
    /// Actors currently running (agendas and sessions).
    pub live_actors: AtomicUsize,
    /// Commands queued in agenda actors and not answered yet (their mailbox depth).
    pub queued_commands: AtomicUsize,
    /// Live session actors.
    pub live_sessions: AtomicUsize,
    /// Open GraphQL subscriptions.
    pub open_subscriptions: AtomicUsize,
}
