//! Guichet's domain: the rules in plain Rust types, the actors that own live entities, and the
//! store.
//!
//! - `agenda`: events agendas; `AgendaActor` owns each agenda and decides every booking.
//! - `meetings`: meetings agendas; `MeetingsActor` owns each one and decides every slot booking.
//! - `demands`: forms, workflows and demands; `DemandActor` owns each live demand.
//! - `datasource`: agendas' events and slots as choices for forms.
//! - `duplicate`: copies of agendas and events.
//! - `account`: registration and password checks.
//! - `session`: bearer-token sessions; `UserSessionActor` owns each live session.
//! - `access`: who may do what, decided in one function.
//! - `mail`: the durable outbox and the mailer that drains it.
//! - `reception`: incoming calls pushed to agents with the caller's accounts.
//! - `resources`: rooms and equipment reserved by events, never twice at once.
//! - `live`: broadcast channels for subscriptions.
//! - `scheduler`: the one task that runs timed actions (reminders, hold expiry) from durable jobs.
//! - `store`: SurrealDB, and nothing else speaks to it.
//! - `runtime`: the actix system and its arbiters.
//!
//! Invariant: every change of an agenda, its events or bookings goes through its actor, and is
//! acknowledged only once durable; nothing outside this crate names an actix or SurrealDB type.

pub mod access;
pub mod account;
pub mod agenda;
pub mod agenda_definition;
pub mod datasource;
pub mod demands;
pub mod duplicate;
pub mod error;
pub mod ids;
pub mod live;
pub mod mail;
pub mod meetings;
pub mod metrics;
pub mod reception;
pub mod resources;
pub mod runtime;
pub mod scheduler;
pub mod session;
pub mod store;
pub mod time;

#[cfg(test)]
mod testing;

use std::sync::Arc;

pub use error::{ErrorCode, HasErrorCode};

/// Everything the API needs, wired together once at start-up.
#[derive(Debug, Clone)]
pub struct Services {
    /// The database.
    pub store: store::Store,
    /// Actor threads.
    pub runtime: runtime::ActorRuntime,
    /// Agendas and bookings.
    pub agendas: agenda::AgendaRegistry,
    /// Meetings agendas: slots, bookings and holds.
    pub meetings: meetings::MeetingsRegistry,
    /// Forms, workflows and demands.
    pub demands: demands::Demands,
    /// Accounts.
    pub accounts: account::Accounts,
    /// Rooms and equipment.
    pub resources: resources::Resources,
    /// Unavailability calendars shared between desks of meetings agendas.
    pub unavailability: meetings::unavailability::UnavailabilityCalendars,
    /// Sessions.
    pub sessions: session::Sessions,
    /// Incoming calls.
    pub reception: reception::Reception,
    /// Live updates.
    pub live: live::LiveHub,
    /// Wakes the mailer.
    pub mail: mail::MailNotifier,
    /// Actor figures for `/metrics`.
    pub metrics: Arc<metrics::ActorMetrics>,
}

impl Services {
    /// Starts the actor runtime over an open store, without file storage (uploads refused).
    pub fn start(
        store: store::Store,
        sessions: session::SessionPolicy,
    ) -> Result<Self, runtime::RuntimeError> {
        Self::start_with(store, sessions, demands::DemandsSettings::default())
    }

    /// Starts the actor runtime over an open store, with demands' settings (where uploaded
    /// files live, how long idle demand actors stay).
    pub fn start_with(
        store: store::Store,
        sessions: session::SessionPolicy,
        demand_settings: demands::DemandsSettings,
    ) -> Result<Self, runtime::RuntimeError> {
        // Two arbiters on two cores: one can decide while the other waits for a disk sync.
        let runtime = runtime::ActorRuntime::start(2)?;
        let live = live::LiveHub::default();
        let mail = mail::MailNotifier::default();
        let metrics = Arc::new(metrics::ActorMetrics::default());
        let agendas = agenda::AgendaRegistry::new(
            runtime.clone(),
            store.clone(),
            live.clone(),
            mail.clone(),
            metrics.clone(),
        );
        let meetings = meetings::MeetingsRegistry::new(
            runtime.clone(),
            store.clone(),
            live.clone(),
            mail.clone(),
            metrics.clone(),
        );
        let demands = demands::Demands::new(
            runtime.clone(),
            store.clone(),
            live.clone(),
            mail.clone(),
            metrics.clone(),
            agendas.clone(),
            meetings.clone(),
            demand_settings.idle_after,
            demand_settings.files,
        );
        let accounts = account::Accounts::new(store.clone());
        let reception = reception::Reception::new(store.clone());
        let resources = resources::Resources::new(store.clone());
        let unavailability =
            meetings::unavailability::UnavailabilityCalendars::new(store.clone(), meetings.clone());
        let sessions =
            session::Sessions::new(runtime.clone(), store.clone(), sessions, metrics.clone());
        Ok(Self {
            store,
            runtime,
            agendas,
            meetings,
            demands,
            accounts,
            resources,
            unavailability,
            sessions,
            reception,
            live,
            mail,
            metrics,
        })
    }
}
