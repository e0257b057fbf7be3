//! The rules of events agendas, as plain data and functions: no actor, no database, no clock.
//!
//! A [`Ledger`] holds the agendas and events an `AgendaActor` works on, with their active
//! bookings. Commands are applied to a [`Working`] overlay so that a batch can be written to the
//! store as one transaction and only then made current.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use jiff::Timestamp;

use super::rules::{BookingWindow, EventRules};
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::{AccountId, AgendaId, BookingId, EventId, MailId, RecurrenceId, ResourceId};
use crate::mail::{Channel, OutgoingMail};
use crate::meetings::model::MeetingsRules;
use crate::scheduler::{ScheduledJob, reminder_for};
use crate::time::{from_micros, human, to_micros};

/// The kinds of agenda.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgendaKind {
    /// Events with a number of places (a show, a course, a vaccination session).
    Events,
    /// Appointments on desks, in slots of meeting types (a passport desk, a social worker).
    Meetings,
    /// The union of meetings agendas sharing meeting types; bookings go to one member.
    Virtual,
}

impl AgendaKind {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            AgendaKind::Events => "events",
            AgendaKind::Meetings => "meetings",
            AgendaKind::Virtual => "virtual",
        }
    }

    /// Parses a storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "events" => Some(AgendaKind::Events),
            "meetings" => Some(AgendaKind::Meetings),
            "virtual" => Some(AgendaKind::Virtual),
            _ => None,
        }
    }
}

/// Who is told when events of an agenda fill up, and at which levels.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FillNotifications {
    /// Fill levels in percent of the confirmed places (1 to 100), sorted, without duplicates.
    pub thresholds: Vec<u8>,
    /// Recipient addresses.
    pub emails: Vec<String>,
}

/// The settings of an agenda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgendaSettings {
    /// Identifier.
    pub id: AgendaId,
    /// Unique short name used in URLs.
    pub slug: String,
    /// Human name.
    pub label: String,
    /// Kind.
    pub kind: AgendaKind,
    /// Fill-level notifications to administrators.
    pub fill_notifications: FillNotifications,
    /// When a confirmed booking is cancelled, confirm the first waiting-list booking at once.
    pub auto_promote_waiting_list: bool,
    /// Services whose agents manage this agenda; empty means every agent.
    pub services: Vec<String>,
    /// Delays, holds, weekends and holidays of a meetings agenda (defaults for other kinds).
    pub meetings: MeetingsRules,
    /// Delays, cancellation deadline, mails and absence reasons of an events agenda (defaults
    /// for other kinds).
    pub events: EventRules,
    /// The category it is listed under (a slug), if any.
    pub category: Option<String>,
    /// Resources every meeting of a meetings agenda holds (events reserve theirs one by one).
    pub resources: Vec<ResourceId>,
}

/// What an administrator gives to create an agenda.
#[derive(Debug, Clone)]
pub struct NewAgenda {
    /// Unique short name: lower-case letters, digits and dashes.
    pub slug: String,
    /// Human name.
    pub label: String,
    /// Kind.
    pub kind: AgendaKind,
    /// Fill-level notifications.
    pub fill_notifications: FillNotifications,
    /// Automatic waiting-list promotion.
    pub auto_promote_waiting_list: bool,
    /// Services whose agents manage it.
    pub services: Vec<String>,
    /// Rules of a meetings agenda; Chrono's defaults when not given.
    pub meetings: Option<MeetingsRules>,
    /// Rules of an events agenda; no delay and no mail when not given.
    pub events: Option<EventRules>,
    /// Category slug.
    pub category: Option<String>,
    /// Resources every meeting holds (meetings agendas).
    pub resources: Vec<ResourceId>,
}

impl NewAgenda {
    /// Checks the input and builds the agenda's settings.
    pub fn validate(self, id: AgendaId) -> Result<AgendaSettings, AgendaError> {
        let slug = checked_slug(&self.slug, "slug")?;
        let category = self.category.as_deref().map(|c| checked_slug(c, "category")).transpose()?;
        let label = checked_label(&self.label)?;
        let mut thresholds = Vec::new();
        for t in &self.fill_notifications.thresholds {
            if !(1..=100).contains(t) {
                return Err(AgendaError::Invalid(
                    "thresholds are percentages from 1 to 100".into(),
                ));
            }
            thresholds.push(*t);
        }
        thresholds.sort_unstable();
        thresholds.dedup();
        let mut emails = Vec::new();
        for e in &self.fill_notifications.emails {
            let e = e.trim();
            if e.parse::<lettre::Address>().is_err() {
                return Err(AgendaError::Invalid(format!("{e:?} is not an email address")));
            }
            emails.push(e.to_owned());
        }
        if !thresholds.is_empty() && emails.is_empty() {
            return Err(AgendaError::Invalid("fill thresholds need at least one email".into()));
        }
        for s in &self.services {
            if s.trim().is_empty() {
                return Err(AgendaError::Invalid("service names cannot be empty".into()));
            }
        }
        let meetings = match (self.kind, self.meetings) {
            (AgendaKind::Meetings | AgendaKind::Virtual, rules) => {
                if !thresholds.is_empty() {
                    return Err(AgendaError::Invalid(
                        "fill notifications apply to events agendas only".into(),
                    ));
                }
                rules
                    .unwrap_or_default()
                    .validate()
                    .map_err(|e| AgendaError::Invalid(e.to_string()))?
            }
            (AgendaKind::Events, None) => MeetingsRules::default(),
            (AgendaKind::Events, Some(_)) => {
                return Err(AgendaError::Invalid(
                    "meeting rules apply to meetings agendas only".into(),
                ));
            }
        };
        let mut resources = self.resources;
        resources.sort();
        resources.dedup();
        if !resources.is_empty() && self.kind != AgendaKind::Meetings {
            return Err(AgendaError::Invalid(
                "agenda resources apply to meetings agendas; events reserve resources one by one"
                    .into(),
            ));
        }
        let events = match (self.kind, self.events) {
            (AgendaKind::Events, rules) => rules
                .unwrap_or_default()
                .validate()
                .map_err(|e| AgendaError::Invalid(e.to_string()))?,
            (_, None) => EventRules::default(),
            (_, Some(_)) => {
                return Err(AgendaError::Invalid(
                    "event rules apply to events agendas only".into(),
                ));
            }
        };
        Ok(AgendaSettings {
            id,
            slug,
            label,
            kind: self.kind,
            fill_notifications: FillNotifications { thresholds, emails },
            auto_promote_waiting_list: self.auto_promote_waiting_list,
            services: self.services.iter().map(|s| s.trim().to_owned()).collect(),
            meetings,
            events,
            category,
            resources,
        })
    }
}

/// A slug: 1 to 64 lower-case letters, digits or dashes, not starting with a dash.
pub fn checked_slug(slug: &str, what: &str) -> Result<String, AgendaError> {
    let slug = slug.trim();
    let ok = !slug.is_empty()
        && slug.len() <= 64
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-');
    if !ok {
        return Err(AgendaError::Invalid(format!(
            "{what} must be 1 to 64 lower-case letters, digits or dashes"
        )));
    }
    Ok(slug.to_owned())
}

fn checked_label(label: &str) -> Result<String, AgendaError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 200 {
        return Err(AgendaError::Invalid("label must have 1 to 200 characters".into()));
    }
    Ok(label.to_owned())
}

/// The largest number of places an event may have; beyond it, input is surely a mistake.
pub const MAX_PLACES: i64 = 1_000_000;

/// What an administrator gives to create an event.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Human name.
    pub label: String,
    /// Start.
    pub starts_at: Timestamp,
    /// Optional end, after the start.
    pub ends_at: Option<Timestamp>,
    /// Confirmed places.
    pub places: i64,
    /// Waiting-list places.
    pub waiting_list_places: i64,
    /// Free text.
    pub description: String,
    /// Optional link to more information.
    pub url: Option<String>,
    /// Not visible to citizens before this instant.
    pub publication_at: Option<Timestamp>,
    /// Rooms or equipment it holds from its start to its end.
    pub resources: Vec<ResourceId>,
}

impl NewEvent {
    /// Checks the input and builds the event with no booking.
    pub fn validate(self, id: EventId, agenda_id: AgendaId) -> Result<EventState, AgendaError> {
        let label = checked_label(&self.label)?;
        let places = checked_places(self.places, "places")?;
        let waiting_list_places = checked_places(self.waiting_list_places, "waitingListPlaces")?;
        if let Some(end) = self.ends_at
            && end <= self.starts_at
        {
            return Err(AgendaError::Invalid("an event must end after it starts".into()));
        }
        if let Some(url) = &self.url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(AgendaError::Invalid("url must start with http:// or https://".into()));
        }
        if self.description.len() > 20_000 {
            return Err(AgendaError::Invalid("description is longer than 20,000 bytes".into()));
        }
        let mut resources = self.resources;
        resources.sort();
        resources.dedup();
        if !resources.is_empty() && self.ends_at.is_none() {
            return Err(AgendaError::Invalid(
                "an event that reserves resources needs an end".into(),
            ));
        }
        if resources.len() > 20 {
            return Err(AgendaError::Invalid("an event reserves at most 20 resources".into()));
        }
        // Instants are stored in microseconds: keep no more precision in memory than on disk.
        let stored = |t: Timestamp| from_micros(to_micros(t));
        Ok(EventState {
            id,
            agenda_id,
            label,
            description: self.description,
            url: self.url,
            starts_at: stored(self.starts_at),
            ends_at: self.ends_at.map(stored),
            publication_at: self.publication_at.map(stored),
            places,
            waiting_list_places,
            confirmed: 0,
            waiting: 0,
            notified: BTreeSet::new(),
            bookings: HashMap::new(),
            waiting_queue: VecDeque::new(),
            version: 0,
            recurrence_id: None,
            cancelled_at: None,
            checked: false,
            resources,
        })
    }
}

/// Changes to one event (an occurrence of a recurrence too); what is not given stays.
#[derive(Debug, Clone, Default)]
pub struct EventPatch {
    /// Human name.
    pub label: Option<String>,
    /// Start.
    pub starts_at: Option<Timestamp>,
    /// End.
    pub ends_at: Option<Timestamp>,
    /// Confirmed places: not below the confirmed bookings.
    pub places: Option<i64>,
    /// Waiting-list places: not below the waiting-list bookings.
    pub waiting_list_places: Option<i64>,
    /// Free text.
    pub description: Option<String>,
    /// Link.
    pub url: Option<String>,
    /// Publication.
    pub publication_at: Option<Timestamp>,
    /// Resources it holds (replacing the current ones).
    pub resources: Option<Vec<ResourceId>>,
}

fn checked_places(n: i64, name: &str) -> Result<u32, AgendaError> {
    if !(0..=MAX_PLACES).contains(&n) {
        return Err(AgendaError::Invalid(format!("{name} must be between 0 and {MAX_PLACES}")));
    }
    u32::try_from(n).map_err(|_| AgendaError::Invalid(format!("{name} is out of range")))
}

/// The state of a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingStatus {
    /// Holds one of the event's places.
    Confirmed,
    /// Holds a waiting-list place; may be promoted when a place frees up.
    WaitingList,
    /// Cancelled; kept for history.
    Cancelled,
}

impl BookingStatus {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::WaitingList => "waiting",
            BookingStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confirmed" => Some(BookingStatus::Confirmed),
            "waiting" => Some(BookingStatus::WaitingList),
            "cancelled" => Some(BookingStatus::Cancelled),
            _ => None,
        }
    }
}

/// What an attendance check ("pointage") recorded for a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// Came.
    pub present: bool,
    /// One of the agenda's absence reasons, for an absence.
    pub absence_reason: Option<String>,
}

/// A booking that holds a place or a waiting-list place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveBooking {
    /// Identifier.
    pub id: BookingId,
    /// Whose booking it is.
    pub account_id: AccountId,
    /// Confirmed or waiting list.
    pub status: BookingStatus,
    /// When it was made; the waiting list is served in this order.
    pub created_at: Timestamp,
    /// The attendance check, once made.
    pub presence: Option<Presence>,
}

impl ActiveBooking {
    /// The booking as answered and published, for the event that holds it.
    pub fn view(&self, event_id: EventId, agenda_id: AgendaId) -> BookingView {
        BookingView {
            id: self.id,
            event_id,
            agenda_id,
            account_id: self.account_id,
            status: self.status,
            created_at: self.created_at,
            presence: self.presence.clone(),
        }
    }
}

/// An event with its live counters and active bookings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventState {
    /// Identifier.
    pub id: EventId,
    /// Owning agenda.
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
    /// Hidden from citizens before this instant.
    pub publication_at: Option<Timestamp>,
    /// Confirmed places.
    pub places: u32,
    /// Waiting-list places.
    pub waiting_list_places: u32,
    /// Confirmed bookings; stored too, as the database's own guard against overbooking.
    pub confirmed: u32,
    /// Waiting-list bookings.
    pub waiting: u32,
    /// Thresholds whose notification was sent and not re-armed since.
    pub notified: BTreeSet<u8>,
    /// Active bookings by id.
    pub bookings: HashMap<BookingId, ActiveBooking>,
    /// Waiting-list bookings, first come first served.
    pub waiting_queue: VecDeque<BookingId>,
    /// Incremented on every write; the store refuses a write based on an older version.
    pub version: u64,
    /// The recurrence that generated it, for an occurrence.
    pub recurrence_id: Option<RecurrenceId>,
    /// When it was cancelled as a whole; a cancelled event takes no booking.
    pub cancelled_at: Option<Timestamp>,
    /// Attendance was checked.
    pub checked: bool,
    /// Rooms or equipment it holds from its start to its end.
    pub resources: Vec<ResourceId>,
}

impl EventState {
    /// True once citizens may see it.
    pub fn is_published(&self, now: Timestamp) -> bool {
        self.publication_at.is_none_or(|p| p <= now)
    }

    /// No booking can be accepted any more, not even on the waiting list.
    pub fn is_full(&self) -> bool {
        self.confirmed >= self.places && self.waiting >= self.waiting_list_places
    }

    /// Confirms the oldest waiting-list booking, if a place is free.
    fn promote_next(&mut self) -> Option<ActiveBooking> {
        if self.confirmed >= self.places {
            return None;
        }
        while let Some(next) = self.waiting_queue.pop_front() {
            if let Some(b) = self.bookings.get_mut(&next) {
                b.status = BookingStatus::Confirmed;
                self.waiting = self.waiting.saturating_sub(1);
                self.confirmed += 1;
                return Some(b.clone());
            }
        }
        None
    }

    /// The public fill level.
    pub fn fill_level(&self) -> FillLevel {
        FillLevel {
            event_id: self.id,
            places: self.places,
            booked_places: self.confirmed,
            waiting_list_places: self.waiting_list_places,
            waiting_list_booked: self.waiting,
            full: self.is_full(),
            seq: self.version,
        }
    }

    /// Re-evaluates the thresholds: returns those newly crossed upwards (to notify) and re-arms
    /// those the fill level dropped below.
    fn crossed_thresholds(&mut self, thresholds: &[u8]) -> Vec<u8> {
        let mut crossed = Vec::new();
        for &t in thresholds {
            // Integer comparison of confirmed/places >= t/100, exact and without division.
            let reached = u64::from(self.confirmed) * 100 >= u64::from(t) * u64::from(self.places);
            if reached && self.places > 0 {
                if self.notified.insert(t) {
                    crossed.push(t);
                }
            } else {
                self.notified.remove(&t);
            }
        }
        crossed
    }
}

/// The fill level of an event, as pushed to subscribers. `seq` grows with every change, so that
/// a subscriber can drop stale updates and detect gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillLevel {
    /// The event.
    pub event_id: EventId,
    /// Confirmed places.
    pub places: u32,
    /// Confirmed bookings.
    pub booked_places: u32,
    /// Waiting-list places.
    pub waiting_list_places: u32,
    /// Waiting-list bookings.
    pub waiting_list_booked: u32,
    /// No more bookings accepted.
    pub full: bool,
    /// The event's version after the change.
    pub seq: u64,
}

/// A booking as answered to callers and pushed to agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingView {
    /// Identifier.
    pub id: BookingId,
    /// Event.
    pub event_id: EventId,
    /// Agenda.
    pub agenda_id: AgendaId,
    /// Owner.
    pub account_id: AccountId,
    /// Current status.
    pub status: BookingStatus,
    /// When it was made.
    pub created_at: Timestamp,
    /// The attendance check, once made.
    pub presence: Option<Presence>,
}

/// A new booking to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingCreated {
    /// The booking.
    pub view: BookingView,
    /// Who made it (the owner, or an agent on their behalf).
    pub booked_by: AccountId,
}

/// A status change of an existing booking, to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingStatusChanged {
    /// The booking, with its new status.
    pub view: BookingView,
    /// When.
    pub at: Timestamp,
}

/// What a batch of commands changed: written to the store in one transaction, then published.
#[derive(Debug, Default)]
pub struct Effects {
    /// Events whose counters changed, with the version the change was based on.
    pub touched: BTreeMap<EventId, u64>,
    /// Touched events whose definition changed too (label, times, places, cancellation, check).
    pub edited: BTreeSet<EventId>,
    /// New bookings.
    pub created: Vec<BookingCreated>,
    /// Status changes (cancellations, promotions).
    pub changed: Vec<BookingStatusChanged>,
    /// Notifications to queue in the outbox.
    pub mails: Vec<OutgoingMail>,
    /// Timed actions to schedule (reminders of new bookings).
    pub jobs: Vec<ScheduledJob>,
}

impl Effects {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.touched.is_empty() && self.created.is_empty() && self.changed.is_empty()
    }
}

/// A booking request.
#[derive(Debug, Clone)]
pub struct BookRequest {
    /// The events, all booked or none.
    pub event_ids: Vec<EventId>,
    /// Whose bookings they are.
    pub account_id: AccountId,
    /// Who asks (the owner, or an agent).
    pub booked_by: AccountId,
    /// The caller is an agent of every agenda involved: may book events before their
    /// publication and outside the booking delays.
    pub by_agent: bool,
    /// Leave out the events the account has booked already instead of refusing (booking a whole
    /// recurrence again after a few occurrences).
    pub skip_already_booked: bool,
}

/// The events that refused a booking for lack of places, with their starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullEvents(pub Vec<(EventId, Timestamp)>);

impl std::fmt::Display for FullEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [(id, _)] => write!(f, "event {id} is full"),
            all => {
                let starts: Vec<String> = all.iter().map(|(_, at)| human(*at)).collect();
                write!(f, "{} events are full: {}", all.len(), starts.join(", "))
            }
        }
    }
}

/// Errors of agendas and bookings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgendaError {
    /// Input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// No agenda with this id or slug.
    #[error("agenda not found")]
    AgendaNotFound,
    /// No event with this id (or not visible to the caller).
    #[error("event {0} not found")]
    EventNotFound(EventId),
    /// No active booking with this id.
    #[error("booking not found")]
    BookingNotFound,
    /// No recurrence with this id.
    #[error("recurrence not found")]
    RecurrenceNotFound,
    /// The event has started.
    #[error("event {0} has already started")]
    EventStarted(EventId),
    /// The account already holds an active booking of that event.
    #[error("already booked for event {0}")]
    AlreadyBooked(EventId),
    /// The slug is taken.
    #[error("an agenda with slug {0:?} exists already")]
    SlugTaken(String),
    /// A resource is reserved by something else at that time.
    #[error("{0}")]
    ResourceBusy(String),
    /// No resource with this id.
    #[error("resource not found")]
    ResourceNotFound,
    /// Neither a place nor a waiting-list place is left, in each of these events.
    #[error("{0}")]
    Full(FullEvents),
    /// A citizen books outside the agenda's booking delays.
    #[error("event {0} cannot be booked now: {1}")]
    OutsideBookingWindow(EventId, BookingWindow),
    /// A citizen cancels after the agenda's cancellation deadline.
    #[error("the cancellation deadline of event {0} has passed; ask the service")]
    CancellationClosed(EventId),
    /// The event was cancelled.
    #[error("event {0} is cancelled")]
    EventCancelled(EventId),
    /// The agenda's actor or the store is out of reach.
    #[error("agenda service unavailable: {0}")]
    Unavailable(String),
}

impl HasErrorCode for AgendaError {
    fn code(&self) -> ErrorCode {
        match self {
            AgendaError::Invalid(_) => ErrorCode::BadUserInput,
            AgendaError::AgendaNotFound
            | AgendaError::EventNotFound(_)
            | AgendaError::BookingNotFound
            | AgendaError::RecurrenceNotFound
            | AgendaError::ResourceNotFound => ErrorCode::NotFound,
            AgendaError::EventStarted(_)
            | AgendaError::OutsideBookingWindow(..)
            | AgendaError::CancellationClosed(_)
            | AgendaError::EventCancelled(_) => ErrorCode::BadUserInput,
            AgendaError::AlreadyBooked(_)
            | AgendaError::SlugTaken(_)
            | AgendaError::ResourceBusy(_) => ErrorCode::Conflict,
            AgendaError::Full(_) => ErrorCode::Full,
            AgendaError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }

    fn extensions(&self) -> Vec<(&'static str, Vec<String>)> {
        match self {
            AgendaError::Full(full) => {
                vec![("fullEventIds", full.0.iter().map(|(id, _)| id.to_string()).collect())]
            }
            _ => Vec::new(),
        }
    }
}

/// The agendas and events an actor works on.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Agenda settings by id.
    pub agendas: HashMap<AgendaId, AgendaSettings>,
    /// Events by id.
    pub events: HashMap<EventId, EventState>,
    /// Which event each active booking belongs to.
    pub booking_index: HashMap<BookingId, EventId>,
}

impl Ledger {
    /// Adds or replaces an event, keeping the booking index right.
    pub fn put_event(&mut self, event: EventState) {
        if let Some(old) = self.events.get(&event.id) {
            for id in old.bookings.keys() {
                self.booking_index.remove(id);
            }
        }
        for id in event.bookings.keys() {
            self.booking_index.insert(*id, event.id);
        }
        self.events.insert(event.id, event);
    }

    /// Removes an event (handing it back to its owner), keeping the index right.
    pub fn drop_event(&mut self, id: EventId) {
        if let Some(old) = self.events.remove(&id) {
            for b in old.bookings.keys() {
                self.booking_index.remove(b);
            }
        }
    }

    /// A copy-on-write view for applying a batch.
    pub fn working(&self) -> Working<'_> {
        Working { base: self, changed: HashMap::new(), effects: Effects::default() }
    }
}

/// The rules of an agenda this ledger does not hold (never the case for a well-formed batch).
static NO_RULES: EventRules = EventRules::NONE;

/// A batch being applied: the base ledger plus the events changed so far.
#[derive(Debug)]
pub struct Working<'a> {
    base: &'a Ledger,
    changed: HashMap<EventId, EventState>,
    effects: Effects,
}

impl<'a> Working<'a> {
    fn event(&self, id: EventId) -> Option<&EventState> {
        self.changed.get(&id).or_else(|| self.base.events.get(&id))
    }

    fn event_mut(&mut self, id: EventId) -> Option<&mut EventState> {
        if !self.changed.contains_key(&id) {
            let copy = self.base.events.get(&id)?.clone();
            self.effects.touched.entry(id).or_insert(copy.version);
            self.changed.insert(id, copy);
        }
        self.changed.get_mut(&id)
    }

    fn rules_of(&self, event: &EventState) -> &'a EventRules {
        self.rules_of_agenda(event.agenda_id)
    }

    /// Borrowed from the base ledger: read on every booking, never cloned.
    fn rules_of_agenda(&self, agenda: AgendaId) -> &'a EventRules {
        self.base.agendas.get(&agenda).map_or(&NO_RULES, |a| &a.events)
    }

    fn event_of_booking(&self, booking: BookingId) -> Option<EventId> {
        // A booking made earlier in this batch is not in the base index yet.
        if let Some(id) = self.base.booking_index.get(&booking) {
            return Some(*id);
        }
        self.changed.values().find(|e| e.bookings.contains_key(&booking)).map(|e| e.id)
    }

    /// Books every event of the request, or none: returns the new bookings in request order.
    /// When events are full, the error lists all of them, not only the first.
    pub fn book(
        &mut self,
        req: &BookRequest,
        now: Timestamp,
        mut new_id: impl FnMut() -> BookingId,
    ) -> Result<Vec<BookingView>, AgendaError> {
        if req.event_ids.is_empty() {
            return Err(AgendaError::Invalid("eventIds cannot be empty".into()));
        }
        let mut seen = BTreeSet::new();
        let mut plan = Vec::with_capacity(req.event_ids.len());
        let mut full = Vec::new();
        // Check every event first, so that a refusal leaves nothing half done.
        for &id in &req.event_ids {
            if !seen.insert(id) {
                return Err(AgendaError::Invalid(format!("event {id} is listed twice")));
            }
            let event = self.event(id).ok_or(AgendaError::EventNotFound(id))?;
            if !event.is_published(now) && !req.by_agent {
                return Err(AgendaError::EventNotFound(id));
            }
            if event.cancelled_at.is_some() {
                return Err(AgendaError::EventCancelled(id));
            }
            if event.starts_at <= now {
                return Err(AgendaError::EventStarted(id));
            }
            if !req.by_agent {
                self.rules_of(event)
                    .check_booking_window(event.starts_at, now)
                    .map_err(|w| AgendaError::OutsideBookingWindow(id, w))?;
            }
            if event.bookings.values().any(|b| b.account_id == req.account_id) {
                if req.skip_already_booked {
                    continue;
                }
                return Err(AgendaError::AlreadyBooked(id));
            }
            if event.confirmed < event.places {
                plan.push((id, BookingStatus::Confirmed));
            } else if event.waiting < event.waiting_list_places {
                plan.push((id, BookingStatus::WaitingList));
            } else {
                full.push((id, event.starts_at));
            }
        }
        if !full.is_empty() {
            return Err(AgendaError::Full(FullEvents(full)));
        }
        let mut views = Vec::with_capacity(plan.len());
        for (id, status) in plan {
            let booking = ActiveBooking {
                id: new_id(),
                account_id: req.account_id,
                status,
                created_at: now,
                presence: None,
            };
            let event = self.event_mut(id).ok_or(AgendaError::EventNotFound(id))?;
            match status {
                BookingStatus::Confirmed => event.confirmed += 1,
                _ => {
                    event.waiting += 1;
                    event.waiting_queue.push_back(booking.id);
                }
            }
            let view = booking.view(id, event.agenda_id);
            event.bookings.insert(booking.id, booking);
            self.effects
                .created
                .push(BookingCreated { view: view.clone(), booked_by: req.booked_by });
            self.citizen_mail(&view, Notice::Booked, now);
            let reminder_hours =
                self.rules_of_agenda(view.agenda_id).citizen_notifications.reminder_hours;
            let starts_at = self.event(id).map_or(now, |e| e.starts_at);
            // Waiting-list bookings get one too: it is dropped unless they are confirmed by then.
            self.effects.jobs.extend(reminder_for(view.id, starts_at, reminder_hours, now));
            self.after_change(id, now);
            views.push(view);
        }
        Ok(views)
    }

    /// Cancels an active booking; with automatic promotion, confirms the first waiting one.
    /// Citizens (not `by_agent`) may cancel only until the agenda's deadline. Returns the
    /// cancelled booking and the promoted one, if any.
    pub fn cancel(
        &mut self,
        booking: BookingId,
        by_agent: bool,
        now: Timestamp,
    ) -> Result<(BookingView, Option<BookingView>), AgendaError> {
        let event_id = self.event_of_booking(booking).ok_or(AgendaError::BookingNotFound)?;
        let event = self.event(event_id).ok_or(AgendaError::BookingNotFound)?;
        if !by_agent && !self.rules_of(event).may_citizen_cancel(event.starts_at, now) {
            return Err(AgendaError::CancellationClosed(event_id));
        }
        let auto_promote =
            self.base.agendas.get(&event.agenda_id).is_some_and(|a| a.auto_promote_waiting_list);
        let event = self.event_mut(event_id).ok_or(AgendaError::BookingNotFound)?;
        let removed = event.bookings.remove(&booking).ok_or(AgendaError::BookingNotFound)?;
        let mut promoted = None;
        match removed.status {
            BookingStatus::Confirmed => {
                event.confirmed = event.confirmed.saturating_sub(1);
                if auto_promote {
                    promoted = event.promote_next();
                }
            }
            BookingStatus::WaitingList => {
                event.waiting = event.waiting.saturating_sub(1);
                event.waiting_queue.retain(|id| *id != booking);
            }
            BookingStatus::Cancelled => return Err(AgendaError::BookingNotFound),
        }
        let agenda_id = event.agenda_id;
        let cancelled =
            ActiveBooking { status: BookingStatus::Cancelled, ..removed }.view(event_id, agenda_id);
        let promoted = promoted.map(|b| b.view(event_id, agenda_id));
        self.effects.changed.push(BookingStatusChanged { view: cancelled.clone(), at: now });
        self.citizen_mail(&cancelled, Notice::Cancelled, now);
        if let Some(p) = &promoted {
            self.effects.changed.push(BookingStatusChanged { view: p.clone(), at: now });
            self.citizen_mail(p, Notice::Promoted, now);
        }
        self.after_change(event_id, now);
        Ok((cancelled, promoted))
    }

    /// Confirms the first waiting-list booking of an event by hand (an agent's decision).
    pub fn promote_first(
        &mut self,
        event_id: EventId,
        now: Timestamp,
    ) -> Result<BookingView, AgendaError> {
        let event = self.event_mut(event_id).ok_or(AgendaError::EventNotFound(event_id))?;
        if event.confirmed >= event.places {
            return Err(AgendaError::Full(FullEvents(vec![(event_id, event.starts_at)])));
        }
        let promoted = event.promote_next().ok_or(AgendaError::BookingNotFound)?;
        let view = promoted.view(event_id, event.agenda_id);
        self.effects.changed.push(BookingStatusChanged { view: view.clone(), at: now });
        self.citizen_mail(&view, Notice::Promoted, now);
        self.after_change(event_id, now);
        Ok(view)
    }

    /// Cancels a whole event (agents): every active booking is cancelled and its citizen told,
    /// and the agenda's notification addresses hear of it. Returns the cancelled bookings.
    pub fn cancel_event(
        &mut self,
        event_id: EventId,
        now: Timestamp,
    ) -> Result<Vec<BookingView>, AgendaError> {
        let event = self.event_mut(event_id).ok_or(AgendaError::EventNotFound(event_id))?;
        if event.cancelled_at.is_some() {
            return Err(AgendaError::EventCancelled(event_id));
        }
        event.cancelled_at = Some(now);
        event.confirmed = 0;
        event.waiting = 0;
        event.waiting_queue.clear();
        let agenda_id = event.agenda_id;
        let mut bookings: Vec<ActiveBooking> = event.bookings.drain().map(|(_, b)| b).collect();
        bookings.sort_by_key(|b| (b.created_at, b.id));
        let event = event.clone();
        let mut views = Vec::with_capacity(bookings.len());
        for b in bookings {
            let view =
                ActiveBooking { status: BookingStatus::Cancelled, ..b }.view(event_id, agenda_id);
            self.effects.changed.push(BookingStatusChanged { view: view.clone(), at: now });
            views.push(view);
        }
        let owners: Vec<AccountId> = views.iter().map(|v| v.account_id).collect();
        if !owners.is_empty() {
            // Whatever the agenda's settings, people who booked must hear the event is off.
            self.effects.mails.push(OutgoingMail {
                id: MailId::new(),
                channel: Channel::Email,
                to: Vec::new(),
                to_accounts: owners,
                subject: format!("[Guichet] Cancelled: {}", event.label),
                body: format!(
                    "The event \"{}\" of {} is cancelled. Your booking is cancelled too.\n",
                    event.label,
                    human(event.starts_at)
                ),
                created_at: now,
            });
        }
        if let Some(agenda) = self.base.agendas.get(&agenda_id)
            && !agenda.fill_notifications.emails.is_empty()
        {
            self.effects.mails.push(OutgoingMail {
                id: MailId::new(),
                channel: Channel::Email,
                to: agenda.fill_notifications.emails.clone(),
                to_accounts: Vec::new(),
                subject: format!("[Guichet] Event cancelled: {}", event.label),
                body: format!(
                    "The event \"{}\" of the agenda \"{}\" ({}) was cancelled; {} booking(s) cancelled.\nEvent id: {}\n",
                    event.label,
                    agenda.label,
                    human(event.starts_at),
                    views.len(),
                    event.id
                ),
                created_at: now,
            });
        }
        self.effects.edited.insert(event_id);
        self.after_change(event_id, now);
        Ok(views)
    }

    /// Changes an event. Places cannot drop below the bookings they hold; more places promote
    /// waiting-list bookings when the agenda promotes automatically.
    pub fn update_event(
        &mut self,
        event_id: EventId,
        patch: EventPatch,
        now: Timestamp,
    ) -> Result<Vec<BookingView>, AgendaError> {
        let auto_promote = self
            .event(event_id)
            .and_then(|e| self.base.agendas.get(&e.agenda_id))
            .is_some_and(|a| a.auto_promote_waiting_list);
        let current = self.event(event_id).ok_or(AgendaError::EventNotFound(event_id))?;
        if current.cancelled_at.is_some() {
            return Err(AgendaError::EventCancelled(event_id));
        }
        // Validate the whole new definition with the rules of a new event.
        let checked = NewEvent {
            label: patch.label.unwrap_or_else(|| current.label.clone()),
            starts_at: patch.starts_at.unwrap_or(current.starts_at),
            ends_at: patch.ends_at.or(current.ends_at),
            places: patch.places.unwrap_or(i64::from(current.places)),
            waiting_list_places: patch
                .waiting_list_places
                .unwrap_or(i64::from(current.waiting_list_places)),
            description: patch.description.unwrap_or_else(|| current.description.clone()),
            url: patch.url.or_else(|| current.url.clone()),
            publication_at: patch.publication_at.or(current.publication_at),
            resources: patch.resources.unwrap_or_else(|| current.resources.clone()),
        }
        .validate(event_id, current.agenda_id)?;
        if checked.places < current.confirmed {
            return Err(AgendaError::Invalid(format!(
                "places cannot drop below the {} confirmed bookings",
                current.confirmed
            )));
        }
        if checked.waiting_list_places < current.waiting {
            return Err(AgendaError::Invalid(format!(
                "waitingListPlaces cannot drop below the {} waiting-list bookings",
                current.waiting
            )));
        }
        let event = self.event_mut(event_id).ok_or(AgendaError::EventNotFound(event_id))?;
        event.label = checked.label;
        event.starts_at = checked.starts_at;
        event.ends_at = checked.ends_at;
        event.places = checked.places;
        event.waiting_list_places = checked.waiting_list_places;
        event.description = checked.description;
        event.url = checked.url;
        event.publication_at = checked.publication_at;
        event.resources = checked.resources;
        let mut promoted = Vec::new();
        if auto_promote {
            while let Some(b) = event.promote_next() {
                promoted.push(b.view(event_id, event.agenda_id));
            }
        }
        for view in &promoted {
            self.effects.changed.push(BookingStatusChanged { view: view.clone(), at: now });
            self.citizen_mail(view, Notice::Promoted, now);
        }
        self.effects.edited.insert(event_id);
        self.after_change(event_id, now);
        Ok(promoted)
    }

    /// Records whether a confirmed booking's holder came (agents), from the event's day on.
    pub fn mark_presence(
        &mut self,
        booking: BookingId,
        presence: Option<Presence>,
        now: Timestamp,
    ) -> Result<BookingView, AgendaError> {
        let event_id = self.event_of_booking(booking).ok_or(AgendaError::BookingNotFound)?;
        let event = self.event(event_id).ok_or(AgendaError::BookingNotFound)?;
        let tz = crate::time::paris();
        if event.starts_at.to_zoned(tz.clone()).date() > now.to_zoned(tz).date() {
            return Err(AgendaError::Invalid(format!(
                "attendance of event {event_id} can be checked from its day on"
            )));
        }
        if let Some(p) = &presence {
            let reasons = &self.rules_of(event).absence_reasons;
            match (&p.absence_reason, p.present) {
                (Some(_), true) => {
                    return Err(AgendaError::Invalid(
                        "a present booking has no absence reason".into(),
                    ));
                }
                (Some(r), false) if !reasons.contains(r) => {
                    return Err(AgendaError::Invalid(format!(
                        "{r:?} is not an absence reason of this agenda"
                    )));
                }
                _ => {}
            }
        }
        let event = self.event_mut(event_id).ok_or(AgendaError::BookingNotFound)?;
        let b = event.bookings.get_mut(&booking).ok_or(AgendaError::BookingNotFound)?;
        if b.status != BookingStatus::Confirmed {
            return Err(AgendaError::Invalid("only confirmed bookings have an attendance".into()));
        }
        b.presence = presence;
        let view = b.view(event_id, event.agenda_id);
        self.effects.changed.push(BookingStatusChanged { view: view.clone(), at: now });
        self.after_change(event_id, now);
        Ok(view)
    }

    /// Marks an event's attendance as checked (or not), from its day on.
    pub fn mark_checked(
        &mut self,
        event_id: EventId,
        checked: bool,
        now: Timestamp,
    ) -> Result<(), AgendaError> {
        let event = self.event(event_id).ok_or(AgendaError::EventNotFound(event_id))?;
        let tz = crate::time::paris();
        if event.starts_at.to_zoned(tz.clone()).date() > now.to_zoned(tz).date() {
            return Err(AgendaError::Invalid(format!(
                "attendance of event {event_id} can be checked from its day on"
            )));
        }
        let event = self.event_mut(event_id).ok_or(AgendaError::EventNotFound(event_id))?;
        event.checked = checked;
        self.effects.edited.insert(event_id);
        self.after_change(event_id, now);
        Ok(())
    }

    /// Queues a mail to the booking's holder when the agenda asks for it.
    fn citizen_mail(&mut self, view: &BookingView, notice: Notice, now: Timestamp) {
        let Some(agenda) = self.base.agendas.get(&view.agenda_id) else { return };
        let wanted = match notice {
            Notice::Booked | Notice::Promoted => agenda.events.citizen_notifications.on_booking,
            Notice::Cancelled => agenda.events.citizen_notifications.on_cancellation,
        };
        let Some(event) = self.event(view.event_id) else { return };
        if !wanted {
            return;
        }
        let when = human(event.starts_at);
        let (subject, body) = match (notice, view.status) {
            (Notice::Booked, BookingStatus::WaitingList) => (
                format!("[Guichet] On the waiting list: {}", event.label),
                format!(
                    "You are on the waiting list of \"{}\" ({when}). You will be told if a place frees up.\n",
                    event.label
                ),
            ),
            (Notice::Booked, _) => (
                format!("[Guichet] Booking confirmed: {}", event.label),
                format!("Your place at \"{}\" ({when}) is booked.\n", event.label),
            ),
            (Notice::Promoted, _) => (
                format!("[Guichet] A place for you: {}", event.label),
                format!(
                    "A place freed up at \"{}\" ({when}): your booking is now confirmed.\n",
                    event.label
                ),
            ),
            (Notice::Cancelled, _) => (
                format!("[Guichet] Booking cancelled: {}", event.label),
                format!("Your booking of \"{}\" ({when}) is cancelled.\n", event.label),
            ),
        };
        self.effects.mails.push(OutgoingMail {
            id: MailId::new(),
            channel: Channel::Email,
            to: Vec::new(),
            to_accounts: vec![view.account_id],
            subject,
            body: format!("{body}\nBooking reference: {}\n", view.id),
            created_at: now,
        });
    }

    /// Bumps the version once per batch and queues threshold notifications.
    fn after_change(&mut self, event_id: EventId, now: Timestamp) {
        let Some(base_version) = self.effects.touched.get(&event_id).copied() else { return };
        let Some(event) = self.changed.get(&event_id) else { return };
        let Some(agenda) = self.base.agendas.get(&event.agenda_id) else { return };
        let notifications = agenda.fill_notifications.clone();
        let agenda_label = agenda.label.clone();
        let Some(event) = self.changed.get_mut(&event_id) else { return };
        event.version = base_version + 1;
        if event.cancelled_at.is_some() {
            return;
        }
        for t in event.crossed_thresholds(&notifications.thresholds) {
            self.effects.mails.push(fill_mail(event, &agenda_label, t, &notifications.emails, now));
        }
    }

    /// Ends the batch: the changed events (to make current once stored) and what to store.
    pub fn finish(self) -> (Vec<EventState>, Effects) {
        (self.changed.into_values().collect(), self.effects)
    }
}

#[derive(Debug, Clone, Copy)]
enum Notice {
    Booked,
    Promoted,
    Cancelled,
}

fn fill_mail(
    event: &EventState,
    agenda_label: &str,
    threshold: u8,
    to: &[String],
    now: Timestamp,
) -> OutgoingMail {
    let subject = if threshold >= 100 {
        format!("[Guichet] Full: {}", event.label)
    } else {
        format!("[Guichet] {threshold}% booked: {}", event.label)
    };
    let body = format!(
        "The event \"{label}\" of the agenda \"{agenda_label}\" has reached {threshold}% of its places.\n\n\
         Starts: {starts}\n\
         Confirmed: {confirmed} of {places}\n\
         Waiting list: {waiting} of {wl}\n\
         Event id: {id}\n",
        label = event.label,
        starts = human(event.starts_at),
        confirmed = event.confirmed,
        places = event.places,
        waiting = event.waiting,
        wl = event.waiting_list_places,
        id = event.id,
    );
    OutgoingMail {
        id: MailId::new(),
        channel: Channel::Email,
        to: to.to_vec(),
        to_accounts: Vec::new(),
        subject,
        body,
        created_at: now,
    }
}

#[cfg(test)]
mod tests;
