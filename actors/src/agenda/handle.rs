//! How the rest of Guichet reaches agendas: [`AgendaRegistry`] finds or starts the actor of an
//! agenda and routes each operation to it; nothing outside this module names an actix type.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use actix::{Addr, MailboxError};
use jiff::Timestamp;
use tokio::sync::OnceCell;

use super::actor::AgendaActor;
use super::messages::{AddEvent, AddRecurrence, Apply, Change, Changed, GetEvent, GetEvents};
use super::model::{
    AgendaError, AgendaKind, AgendaSettings, BookRequest, BookingView, EventPatch, EventState,
    FillLevel, NewAgenda, NewEvent, Presence,
};
use super::recurrence::{NewRecurrence, Recurrence};
use crate::ids::{AccountId, AgendaId, BookingId, EventId, RecurrenceId};
use crate::live::LiveHub;
use crate::mail::MailNotifier;
use crate::metrics::ActorMetrics;
use crate::runtime::ActorRuntime;
use crate::store::{Store, StoreError};

/// An event as read by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventView {
    /// Identifier.
    pub id: EventId,
    /// Agenda.
    pub agenda_id: AgendaId,
    /// Human name.
    pub label: String,
    /// Free text.
    pub description: String,
    /// Link.
    pub url: Option<String>,
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Option<Timestamp>,
    /// Publication.
    pub publication_at: Option<Timestamp>,
    /// The recurrence that generated it.
    pub recurrence_id: Option<RecurrenceId>,
    /// When it was cancelled as a whole.
    pub cancelled_at: Option<Timestamp>,
    /// Attendance checked.
    pub checked: bool,
    /// Rooms or equipment it holds.
    pub resources: Vec<crate::ids::ResourceId>,
    /// Counters.
    pub fill: FillLevel,
    /// Active bookings (only when asked for), oldest first.
    pub bookings: Vec<BookingView>,
}

impl EventView {
    pub(super) fn of(e: &EventState, with_bookings: bool) -> Self {
        let mut bookings: Vec<BookingView> = if with_bookings {
            e.bookings.values().map(|b| b.view(e.id, e.agenda_id)).collect()
        } else {
            Vec::new()
        };
        bookings.sort_by_key(|b| (b.created_at, b.id));
        Self {
            id: e.id,
            agenda_id: e.agenda_id,
            label: e.label.clone(),
            description: e.description.clone(),
            url: e.url.clone(),
            starts_at: e.starts_at,
            ends_at: e.ends_at,
            publication_at: e.publication_at,
            recurrence_id: e.recurrence_id,
            cancelled_at: e.cancelled_at,
            checked: e.checked,
            resources: e.resources.clone(),
            fill: e.fill_level(),
            bookings,
        }
    }

    /// True once citizens may see it.
    pub fn is_published(&self, now: Timestamp) -> bool {
        self.publication_at.is_none_or(|p| p <= now)
    }
}

/// A live agenda: its settings and its actor.
#[derive(Clone)]
pub struct AgendaHandle {
    addr: Addr<AgendaActor>,
    settings: Arc<AgendaSettings>,
}

impl std::fmt::Debug for AgendaHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgendaHandle").field("agenda", &self.settings.id).finish()
    }
}

fn unavailable(e: MailboxError) -> AgendaError {
    AgendaError::Unavailable(format!("agenda actor: {e}"))
}

fn store_error(e: StoreError) -> AgendaError {
    tracing::error!(error = %e, "agenda store error");
    AgendaError::Unavailable("storage unavailable".into())
}

impl AgendaHandle {
    /// The agenda's settings.
    pub fn settings(&self) -> &AgendaSettings {
        &self.settings
    }

    /// One event of this agenda.
    pub async fn event(&self, id: EventId, with_bookings: bool) -> Result<EventView, AgendaError> {
        self.addr.send(GetEvent { event_id: id, with_bookings }).await.map_err(unavailable)?
    }

    /// Every event of this agenda, by start.
    pub async fn events(&self) -> Result<Vec<EventView>, AgendaError> {
        self.addr.send(GetEvents).await.map_err(unavailable)
    }

    async fn apply(&self, change: Change) -> Result<Changed, AgendaError> {
        self.addr.send(Apply(change)).await.map_err(unavailable)?
    }
}

fn unexpected(answer: Changed) -> AgendaError {
    tracing::error!(?answer, "agenda actor answered another kind of change");
    AgendaError::Unavailable("unexpected answer".into())
}

/// The addresses of running agenda actors, shared with them so that one actor can tell another
/// to reload events it wrote.
#[derive(Clone, Default)]
pub(super) struct Peers(Arc<Mutex<HashMap<AgendaId, Addr<AgendaActor>>>>);

impl Peers {
    pub(super) fn get(&self, id: AgendaId) -> Option<Addr<AgendaActor>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    fn insert(&self, id: AgendaId, addr: Addr<AgendaActor>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id, addr);
    }
}

struct RegistryInner {
    runtime: ActorRuntime,
    store: Store,
    live: LiveHub,
    mail: MailNotifier,
    metrics: Arc<ActorMetrics>,
    actors: Mutex<HashMap<AgendaId, Arc<OnceCell<AgendaHandle>>>>,
    event_agendas: Mutex<HashMap<EventId, AgendaId>>,
    peers: Peers,
}

/// Finds or starts agenda actors and routes operations to them.
#[derive(Clone)]
pub struct AgendaRegistry {
    inner: Arc<RegistryInner>,
}

impl std::fmt::Debug for AgendaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgendaRegistry")
    }
}

impl AgendaRegistry {
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
                event_agendas: Mutex::new(HashMap::new()),
                peers: Peers::default(),
            }),
        }
    }

    /// Creates an agenda.
    pub async fn create_agenda(&self, input: NewAgenda) -> Result<AgendaSettings, AgendaError> {
        let settings = input.validate(AgendaId::new())?;
        match self.inner.store.create_agenda(&settings, Timestamp::now()).await {
            Ok(()) => Ok(settings),
            Err(StoreError::Duplicate(_)) => Err(AgendaError::SlugTaken(settings.slug)),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Every agenda.
    pub async fn agendas(&self) -> Result<Vec<AgendaSettings>, AgendaError> {
        self.inner.store.agendas().await.map_err(store_error)
    }

    /// An agenda's settings, of any kind, without starting an actor.
    pub async fn settings(&self, id: AgendaId) -> Result<AgendaSettings, AgendaError> {
        self.inner.store.agenda(id).await.map_err(store_error)?.ok_or(AgendaError::AgendaNotFound)
    }

    /// The id of the agenda with this slug.
    pub async fn id_by_slug(&self, slug: &str) -> Result<AgendaId, AgendaError> {
        let id = self.inner.store.agenda_id_by_slug(slug).await.map_err(store_error)?;
        id.ok_or(AgendaError::AgendaNotFound)
    }

    /// The agenda with this slug.
    pub async fn by_slug(&self, slug: &str) -> Result<AgendaHandle, AgendaError> {
        let id = self.inner.store.agenda_id_by_slug(slug).await.map_err(store_error)?;
        self.get(id.ok_or(AgendaError::AgendaNotFound)?).await
    }

    /// The live agenda, starting its actor on first use.
    pub async fn get(&self, id: AgendaId) -> Result<AgendaHandle, AgendaError> {
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
                    .ok_or(AgendaError::AgendaNotFound)?;
                let events = store.agenda_events(id).await.map_err(store_error)?;
                {
                    let mut index =
                        self.inner.event_agendas.lock().unwrap_or_else(|p| p.into_inner());
                    for e in &events {
                        index.insert(e.id, id);
                    }
                }
                let settings = Arc::new(settings);
                let inner = self.inner.clone();
                let actor_settings = (*settings).clone();
                let addr = self.inner.runtime.spawn(move |_| {
                    AgendaActor::new(
                        actor_settings,
                        events,
                        inner.store.clone(),
                        inner.live.clone(),
                        inner.mail.clone(),
                        inner.peers.clone(),
                        inner.metrics.clone(),
                    )
                });
                self.inner.peers.insert(id, addr.clone());
                Ok::<_, AgendaError>(AgendaHandle { addr, settings })
            })
            .await;
        match handle {
            Ok(h) => Ok(h.clone()),
            Err(e) => {
                // Do not keep a cell for an agenda that does not exist.
                if e == AgendaError::AgendaNotFound {
                    self.inner.actors.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                }
                Err(e)
            }
        }
    }

    /// The agenda an event belongs to.
    pub async fn agenda_of_event(&self, event: EventId) -> Result<AgendaHandle, AgendaError> {
        let cached =
            self.inner.event_agendas.lock().unwrap_or_else(|p| p.into_inner()).get(&event).copied();
        let agenda = match cached {
            Some(a) => a,
            None => {
                let a = self
                    .inner
                    .store
                    .event_agenda(event)
                    .await
                    .map_err(store_error)?
                    .ok_or(AgendaError::EventNotFound(event))?;
                self.inner.event_agendas.lock().unwrap_or_else(|p| p.into_inner()).insert(event, a);
                a
            }
        };
        self.get(agenda).await
    }

    /// Adds an event to an agenda.
    pub async fn add_event(
        &self,
        agenda: AgendaId,
        input: NewEvent,
    ) -> Result<EventView, AgendaError> {
        let handle = self.get(agenda).await?;
        if handle.settings.kind != AgendaKind::Events {
            return Err(AgendaError::Invalid(format!(
                "{} is not an events agenda",
                handle.settings.slug
            )));
        }
        let view = handle.addr.send(AddEvent(input)).await.map_err(unavailable)??;
        self.inner.event_agendas.lock().unwrap_or_else(|p| p.into_inner()).insert(view.id, agenda);
        Ok(view)
    }

    /// The distinct agendas of these events, in agenda order.
    pub async fn agendas_of(&self, events: &[EventId]) -> Result<Vec<AgendaHandle>, AgendaError> {
        let mut handles: BTreeMap<AgendaId, AgendaHandle> = BTreeMap::new();
        for &e in events {
            let handle = self.agenda_of_event(e).await?;
            handles.entry(handle.settings.id).or_insert(handle);
        }
        Ok(handles.into_values().collect())
    }

    /// Books events, all or none.
    pub async fn book(&self, request: BookRequest) -> Result<Vec<BookingView>, AgendaError> {
        let agendas = self.agendas_of(&request.event_ids).await?;
        self.book_in(&agendas, request).await
    }

    /// Books events whose agendas (from [`AgendaRegistry::agendas_of`]) are known already. Events
    /// of several agendas are booked in one transaction by the actor of the first agenda; the
    /// store's version checks keep the other actors consistent.
    pub async fn book_in(
        &self,
        agendas: &[AgendaHandle],
        request: BookRequest,
    ) -> Result<Vec<BookingView>, AgendaError> {
        let coordinator = agendas
            .first()
            .ok_or_else(|| AgendaError::Invalid("eventIds cannot be empty".into()))?;
        match coordinator.apply(Change::Book(request)).await? {
            Changed::Bookings(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    /// A booking as stored (to check who owns it before cancelling).
    pub async fn booking(&self, id: BookingId) -> Result<BookingView, AgendaError> {
        self.inner.store.booking(id).await.map_err(store_error)?.ok_or(AgendaError::BookingNotFound)
    }

    /// The bookings of an account, newest first.
    pub async fn bookings_of(
        &self,
        account: AccountId,
        include_cancelled: bool,
    ) -> Result<Vec<BookingView>, AgendaError> {
        self.inner
            .store
            .account_bookings(account, include_cancelled, 500)
            .await
            .map_err(store_error)
    }

    /// Cancels a booking; returns it and the booking promoted in its place, if any. Citizens
    /// (`by_agent` false) only until the agenda's cancellation deadline.
    pub async fn cancel(
        &self,
        booking: &BookingView,
        by_agent: bool,
    ) -> Result<(BookingView, Option<BookingView>), AgendaError> {
        let handle = self.get(booking.agenda_id).await?;
        match handle.apply(Change::Cancel { booking: booking.id, by_agent }).await? {
            Changed::Cancelled(c, p) => Ok((c, p)),
            other => Err(unexpected(other)),
        }
    }

    /// Confirms the first waiting-list booking of an event.
    pub async fn promote(&self, event: EventId) -> Result<BookingView, AgendaError> {
        let handle = self.agenda_of_event(event).await?;
        match handle.apply(Change::Promote(event)).await? {
            Changed::Booking(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    /// Cancels a whole event: its bookings are cancelled and their holders mailed.
    pub async fn cancel_event(&self, event: EventId) -> Result<Vec<BookingView>, AgendaError> {
        let handle = self.agenda_of_event(event).await?;
        match handle.apply(Change::CancelEvent(event)).await? {
            Changed::Bookings(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    /// Changes an event; answers it and the bookings its new places promoted.
    pub async fn update_event(
        &self,
        event: EventId,
        patch: EventPatch,
    ) -> Result<(EventView, Vec<BookingView>), AgendaError> {
        let handle = self.agenda_of_event(event).await?;
        if patch.resources.is_some() || patch.starts_at.is_some() || patch.ends_at.is_some() {
            let current = handle.event(event, false).await?;
            let resources = patch.resources.as_ref().unwrap_or(&current.resources);
            let starts = patch.starts_at.unwrap_or(current.starts_at);
            if let Some(ends) = patch.ends_at.or(current.ends_at) {
                self.check_resources_free(event, resources, starts, ends).await?;
            }
        }
        match handle.apply(Change::UpdateEvent(event, patch)).await? {
            Changed::Bookings(promoted) => Ok((handle.event(event, false).await?, promoted)),
            other => Err(unexpected(other)),
        }
    }

    /// Records the attendance of a booking.
    pub async fn mark_presence(
        &self,
        booking: &BookingView,
        presence: Option<Presence>,
    ) -> Result<BookingView, AgendaError> {
        let handle = self.get(booking.agenda_id).await?;
        match handle.apply(Change::MarkPresence(booking.id, presence)).await? {
            Changed::Booking(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    /// Refuses with `ResourceBusy` when one of `resources` is reserved by anything but `event`
    /// between `starts` and `ends` (the store checks again when writing).
    async fn check_resources_free(
        &self,
        event: EventId,
        resources: &[crate::ids::ResourceId],
        starts: Timestamp,
        ends: Timestamp,
    ) -> Result<(), AgendaError> {
        let me = crate::store::event_owner(event);
        for r in resources {
            let taken =
                self.inner.store.reservations(*r, starts, ends).await.map_err(store_error)?;
            if let Some(other) = taken.iter().find(|x| x.owner != me) {
                return Err(AgendaError::ResourceBusy(format!(
                    "resource {r} is reserved by {} at that time",
                    other.owner
                )));
            }
        }
        Ok(())
    }

    /// Marks an event's attendance as checked (or reopens it).
    pub async fn mark_checked(
        &self,
        event: EventId,
        checked: bool,
    ) -> Result<EventView, AgendaError> {
        let handle = self.agenda_of_event(event).await?;
        match handle.apply(Change::MarkChecked(event, checked)).await? {
            Changed::Done => handle.event(event, true).await,
            other => Err(unexpected(other)),
        }
    }

    /// Adds recurring events to an events agenda; answers the rule and how many occurrences
    /// it generated.
    pub async fn add_recurrence(
        &self,
        agenda: AgendaId,
        input: NewRecurrence,
    ) -> Result<(Recurrence, usize), AgendaError> {
        let handle = self.get(agenda).await?;
        if handle.settings.kind != AgendaKind::Events {
            return Err(AgendaError::Invalid(format!(
                "{} is not an events agenda",
                handle.settings.slug
            )));
        }
        handle.addr.send(AddRecurrence(input)).await.map_err(unavailable)?
    }

    /// The recurrence rules of an agenda.
    pub async fn recurrences(&self, agenda: AgendaId) -> Result<Vec<Recurrence>, AgendaError> {
        self.inner.store.recurrences(agenda).await.map_err(store_error)
    }

    /// A recurrence rule, wherever it belongs.
    pub async fn recurrence(&self, id: RecurrenceId) -> Result<Recurrence, AgendaError> {
        self.inner
            .store
            .recurrence(id)
            .await
            .map_err(store_error)?
            .ok_or(AgendaError::RecurrenceNotFound)
    }

    /// Books every occurrence of a recurrence starting on the local days `from` to `to`
    /// (inclusive; open ends when not given) that the caller may book now, all or none; the
    /// occurrences the account holds already are left as they are. When some are full, the
    /// error lists them all.
    pub async fn book_recurrence(
        &self,
        rule: &Recurrence,
        mut request: BookRequest,
        from: Option<jiff::civil::Date>,
        to: Option<jiff::civil::Date>,
    ) -> Result<Vec<BookingView>, AgendaError> {
        let handle = self.get(rule.agenda_id).await?;
        let now = Timestamp::now();
        let tz = crate::time::paris();
        let rules = &handle.settings.events;
        let occurrences: Vec<EventId> = handle
            .events()
            .await?
            .into_iter()
            .filter(|e| e.recurrence_id == Some(rule.id) && e.cancelled_at.is_none())
            .filter(|e| e.starts_at > now)
            .filter(|e| {
                let day = e.starts_at.to_zoned(tz.clone()).date();
                from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t)
            })
            .filter(|e| {
                request.by_agent
                    || (e.is_published(now) && rules.check_booking_window(e.starts_at, now).is_ok())
            })
            .map(|e| e.id)
            .collect();
        if occurrences.is_empty() {
            return Err(AgendaError::Invalid(
                "no occurrence of this recurrence can be booked in that period".into(),
            ));
        }
        request.event_ids = occurrences;
        request.skip_already_booked = true;
        match handle.apply(Change::Book(request)).await? {
            Changed::Bookings(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    /// The live hub, to subscribe.
    pub fn live(&self) -> &LiveHub {
        &self.inner.live
    }
}
