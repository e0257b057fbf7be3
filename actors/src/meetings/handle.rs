//! How the rest of Guichet reaches meetings agendas: [`MeetingsRegistry`] finds or starts the
//! actor of a meetings agenda and routes each operation to it; nothing outside this module names
//! an actix type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::{Addr, MailboxError};
use jiff::Timestamp;
use jiff::civil::Date;
use tokio::sync::OnceCell;

use super::actor::MeetingsActor;
use super::messages::{
    AddDesk, AddException, AddMeetingType, AddPeriods, CancelMeeting, GetConfig, GetHold,
    GetMeetings, GetSlots, ReleaseLapsedHolds, ReserveSlot, WindowMoved,
};
use super::model::{
    Desk, Meeting, MeetingStatus, MeetingType, MeetingsAgenda, MeetingsError, NewException,
    NewMeetingType, NewPeriods, OpeningPeriod, Slot, SlotRequest, TimeException,
};
use super::virtual_handle::{SlotAgenda, VirtualActor, VirtualHandle, load_virtual};
use crate::agenda::model::{AgendaKind, AgendaSettings};
use crate::ids::{AccountId, AgendaId, MeetingId, MeetingTypeId};
use crate::live::LiveHub;
use crate::mail::MailNotifier;
use crate::metrics::ActorMetrics;
use crate::runtime::ActorRuntime;
use crate::store::{MeetingsConfig, Store, StoreError};

fn unavailable(e: MailboxError) -> MeetingsError {
    MeetingsError::Unavailable(format!("meetings actor: {e}"))
}

fn store_error(e: StoreError) -> MeetingsError {
    tracing::error!(error = %e, "meetings store error");
    MeetingsError::Unavailable("storage unavailable".into())
}

/// The handle of a running actor, if there is one.
fn running<T: Clone>(map: &Mutex<HashMap<AgendaId, Arc<OnceCell<T>>>>, id: AgendaId) -> Option<T> {
    map.lock().unwrap_or_else(|p| p.into_inner()).get(&id).and_then(|c| c.get().cloned())
}

/// A live meetings agenda: its settings and its actor.
#[derive(Clone)]
pub struct MeetingsHandle {
    addr: Addr<MeetingsActor>,
    settings: Arc<AgendaSettings>,
    /// To read the reservations of the agenda's resources.
    store: Store,
}

impl std::fmt::Debug for MeetingsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeetingsHandle").field("agenda", &self.settings.id).finish()
    }
}

impl MeetingsHandle {
    /// The agenda's settings.
    pub fn settings(&self) -> &AgendaSettings {
        &self.settings
    }

    /// Tells subscribers that the booking window moved (the scheduler calls it at midnight).
    pub fn window_moved(&self) {
        self.addr.do_send(WindowMoved);
    }

    /// Frees the slots of lapsed holds and tells subscribers (the scheduler calls it when a
    /// hold's time is up).
    pub async fn release_lapsed_holds(&self) {
        if let Err(e) = self.addr.send(ReleaseLapsedHolds).await {
            tracing::warn!(agenda = %self.settings.id, error = %e, "hold release not delivered");
        }
    }

    /// Adds a meeting type.
    pub async fn add_meeting_type(
        &self,
        input: NewMeetingType,
    ) -> Result<MeetingType, MeetingsError> {
        self.addr.send(AddMeetingType(input)).await.map_err(unavailable)?
    }

    /// Adds a desk.
    pub async fn add_desk(&self, label: String) -> Result<Desk, MeetingsError> {
        self.addr.send(AddDesk(label)).await.map_err(unavailable)?
    }

    /// Adds opening periods, one per desk, all or none.
    pub async fn add_periods(
        &self,
        input: NewPeriods,
    ) -> Result<Vec<OpeningPeriod>, MeetingsError> {
        self.addr.send(AddPeriods(input)).await.map_err(unavailable)?
    }

    /// Closes desks for a while.
    pub async fn add_exception(&self, input: NewException) -> Result<TimeException, MeetingsError> {
        self.addr.send(AddException(input)).await.map_err(unavailable)?
    }

    /// The configuration.
    pub async fn config(&self) -> Result<MeetingsConfig, MeetingsError> {
        self.addr.send(GetConfig).await.map_err(unavailable)
    }

    /// The free slots of a meeting type on the local days `from` to `to`.
    pub async fn slots(
        &self,
        meeting_type: MeetingTypeId,
        from: Date,
        to: Date,
        lock_code: Option<String>,
        ignore_delays: bool,
    ) -> Result<Vec<Slot>, MeetingsError> {
        let blocked = self.resource_blocks(from, to).await?;
        self.addr
            .send(GetSlots { meeting_type, from, to, lock_code, ignore_delays, blocked })
            .await
            .map_err(unavailable)?
    }

    /// The reservations of the agenda's resources on the day of `at` (and the next, for
    /// meetings that run past midnight).
    async fn blocks_around(
        &self,
        at: Timestamp,
    ) -> Result<Vec<(String, Timestamp, Timestamp)>, MeetingsError> {
        let day = at.to_zoned(crate::time::paris()).date();
        let next = day.tomorrow().unwrap_or(day);
        self.resource_blocks(day, next).await
    }

    /// When the agenda's resources are reserved (by anything, its own meetings included) on
    /// the local days `from` to `to`.
    async fn resource_blocks(
        &self,
        from: Date,
        to: Date,
    ) -> Result<Vec<(String, Timestamp, Timestamp)>, MeetingsError> {
        if self.settings.resources.is_empty() {
            return Ok(Vec::new());
        }
        let tz = crate::time::paris();
        let start = from.to_zoned(tz.clone()).map_err(|e| MeetingsError::Invalid(e.to_string()))?;
        let end = to
            .tomorrow()
            .and_then(|d| d.to_zoned(tz))
            .map_err(|e| MeetingsError::Invalid(e.to_string()))?;
        let mut blocked = Vec::new();
        for r in &self.settings.resources {
            let taken = self
                .store
                .reservations(*r, start.timestamp(), end.timestamp())
                .await
                .map_err(store_error)?;
            blocked.extend(taken.into_iter().map(|x| (x.owner, x.starts_at, x.ends_at)));
        }
        Ok(blocked)
    }

    /// The active meetings starting on the local days `from` to `to`.
    pub async fn meetings(&self, from: Date, to: Date) -> Result<Vec<Meeting>, MeetingsError> {
        self.addr.send(GetMeetings { from, to }).await.map_err(unavailable)
    }

    /// Books a slot; answers once durable.
    pub async fn book(&self, request: SlotRequest) -> Result<Meeting, MeetingsError> {
        let blocked = self.blocks_around(request.starts_at).await?;
        self.addr
            .send(ReserveSlot { request, status: MeetingStatus::Confirmed, blocked })
            .await
            .map_err(unavailable)?
    }

    /// Holds a slot for the agenda's hold time under `request.lock_code`.
    pub async fn hold(&self, request: SlotRequest) -> Result<Meeting, MeetingsError> {
        let blocked = self.blocks_around(request.starts_at).await?;
        self.addr
            .send(ReserveSlot { request, status: MeetingStatus::Held, blocked })
            .await
            .map_err(unavailable)?
    }

    /// True when a live hold under `lock_code` starts at `starts_at` in this agenda.
    pub async fn holds(
        &self,
        lock_code: &str,
        starts_at: Timestamp,
    ) -> Result<bool, MeetingsError> {
        self.addr
            .send(GetHold { lock_code: lock_code.to_owned(), starts_at })
            .await
            .map_err(unavailable)
    }

    /// Cancels a booking or releases a hold.
    pub async fn cancel(&self, id: MeetingId) -> Result<Meeting, MeetingsError> {
        self.addr.send(CancelMeeting(id)).await.map_err(unavailable)?
    }
}

struct RegistryInner {
    runtime: ActorRuntime,
    store: Store,
    live: LiveHub,
    mail: MailNotifier,
    metrics: Arc<ActorMetrics>,
    actors: Mutex<HashMap<AgendaId, Arc<OnceCell<MeetingsHandle>>>>,
    virtuals: Mutex<HashMap<AgendaId, Arc<OnceCell<VirtualHandle>>>>,
}

/// Finds or starts meetings actors and routes operations to them.
#[derive(Clone)]
pub struct MeetingsRegistry {
    inner: Arc<RegistryInner>,
}

impl MeetingsRegistry {
    /// The meetings agendas whose actor runs.
    pub fn running(&self) -> Vec<MeetingsHandle> {
        let actors = self.inner.actors.lock().unwrap_or_else(|p| p.into_inner());
        actors.values().filter_map(|cell| cell.get().cloned()).collect()
    }
}

impl std::fmt::Debug for MeetingsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeetingsRegistry")
    }
}

impl MeetingsRegistry {
    /// A registry starting actors on `runtime`.
    pub fn new(
        runtime: ActorRuntime,
        store: Store,
        live: LiveHub,
        mail: MailNotifier,
        metrics: Arc<ActorMetrics>,
    ) -> Self {
        Self {
            inner: Arc::new(RegistryInner {
                runtime,
                store,
                live,
                mail,
                metrics,
                actors: Mutex::new(HashMap::new()),
                virtuals: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The live meetings agenda, starting its actor on first use.
    pub async fn get(&self, id: AgendaId) -> Result<MeetingsHandle, MeetingsError> {
        let cell = {
            let mut actors = self.inner.actors.lock().unwrap_or_else(|p| p.into_inner());
            actors.entry(id).or_default().clone()
        };
        let handle = cell
            .get_or_try_init(|| async {
                let store = &self.inner.store;
                let settings = store
                    .agenda(id)
                    .await
                    .map_err(store_error)?
                    .ok_or(MeetingsError::AgendaNotFound)?;
                if settings.kind != AgendaKind::Meetings {
                    return Err(MeetingsError::Invalid(format!(
                        "{} is not a meetings agenda",
                        settings.slug
                    )));
                }
                let config = store.meetings_config(id).await.map_err(store_error)?;
                let now = Timestamp::now();
                let meetings = store
                    .active_meetings(id, now - jiff::SignedDuration::from_hours(24), now)
                    .await
                    .map_err(store_error)?;
                let mut agenda =
                    MeetingsAgenda::new(id, crate::time::paris(), settings.meetings.clone());
                agenda.types = config.types.into_iter().map(|t| (t.id, t)).collect();
                agenda.desks = config.desks.into_iter().map(|d| (d.id, d)).collect();
                agenda.periods = config.periods;
                agenda.exceptions = config.exceptions;
                agenda.replace_meetings(meetings);
                agenda.resource_bound = !settings.resources.is_empty();
                let settings = Arc::new(settings);
                let inner = self.inner.clone();
                let actor_settings = settings.clone();
                let addr = self.inner.runtime.spawn(move |_| {
                    MeetingsActor::new(
                        actor_settings,
                        agenda,
                        inner.store.clone(),
                        inner.live.clone(),
                        inner.mail.clone(),
                        inner.metrics.clone(),
                    )
                });
                Ok::<_, MeetingsError>(MeetingsHandle {
                    addr,
                    settings,
                    store: self.inner.store.clone(),
                })
            })
            .await;
        match handle {
            Ok(h) => Ok(h.clone()),
            Err(e) => {
                // Do not keep a cell for an agenda that is missing or of another kind.
                self.inner.actors.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                Err(e)
            }
        }
    }

    /// The live virtual agenda, starting its actor on first use.
    pub async fn virtual_agenda(&self, id: AgendaId) -> Result<VirtualHandle, MeetingsError> {
        let cell = {
            let mut virtuals = self.inner.virtuals.lock().unwrap_or_else(|p| p.into_inner());
            virtuals.entry(id).or_default().clone()
        };
        let handle = cell
            .get_or_try_init(|| async {
                let (settings, config) = load_virtual(&self.inner.store, id).await?;
                let inner = self.inner.clone();
                let addr = self.inner.runtime.spawn(move |_| {
                    VirtualActor::new(id, config, inner.store.clone(), inner.metrics.clone())
                });
                Ok::<_, MeetingsError>(VirtualHandle {
                    addr,
                    settings: Arc::new(settings),
                    registry: self.clone(),
                })
            })
            .await;
        match handle {
            Ok(h) => Ok(h.clone()),
            Err(e) => {
                self.inner.virtuals.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                Err(e)
            }
        }
    }

    /// A meetings or virtual agenda, for slot queries and bookings.
    pub async fn slot_agenda(&self, id: AgendaId) -> Result<SlotAgenda, MeetingsError> {
        // A running actor tells the kind without a read.
        if let Some(h) = running(&self.inner.actors, id) {
            return Ok(SlotAgenda::Meetings(h));
        }
        if let Some(v) = running(&self.inner.virtuals, id) {
            return Ok(SlotAgenda::Virtual(v));
        }
        let settings = self
            .inner
            .store
            .agenda(id)
            .await
            .map_err(store_error)?
            .ok_or(MeetingsError::AgendaNotFound)?;
        match settings.kind {
            AgendaKind::Virtual => Ok(SlotAgenda::Virtual(self.virtual_agenda(id).await?)),
            _ => Ok(SlotAgenda::Meetings(self.get(id).await?)),
        }
    }

    /// A meeting as stored (to check who owns it before cancelling).
    pub async fn meeting(&self, id: MeetingId) -> Result<Meeting, MeetingsError> {
        self.inner
            .store
            .meeting(id)
            .await
            .map_err(store_error)?
            .ok_or(MeetingsError::MeetingNotFound)
    }

    /// The meetings of an account, newest first.
    pub async fn meetings_of(
        &self,
        account: AccountId,
        include_cancelled: bool,
    ) -> Result<Vec<Meeting>, MeetingsError> {
        self.inner
            .store
            .account_meetings(account, include_cancelled, 500)
            .await
            .map_err(store_error)
    }

    /// The live hub, to subscribe.
    pub fn live(&self) -> &LiveHub {
        &self.inner.live
    }
}
