//! Messages of `AgendaActor`. Commands are imperative, queries start with `Get`.

use actix::Message;

use super::handle::EventView;
use super::model::{
    AgendaError, BookRequest, BookingView, EventPatch, EventState, NewEvent, Presence,
};
use super::recurrence::{NewRecurrence, Recurrence};
use crate::ids::{BookingId, EventId};

/// A change of bookings or events, decided in the actor's next group and acknowledged once
/// durable.
#[derive(Debug)]
pub(super) enum Change {
    /// Book events (of this agenda, and possibly of others when this agenda coordinates a
    /// multi-agenda booking), all or none.
    Book(BookRequest),
    /// Cancel an active booking; citizens only until the agenda's deadline.
    Cancel { booking: BookingId, by_agent: bool },
    /// Confirm the first waiting-list booking of an event (manual promotion).
    Promote(EventId),
    /// Cancel a whole event and its bookings.
    CancelEvent(EventId),
    /// Change an event's definition.
    UpdateEvent(EventId, EventPatch),
    /// Record a booking's attendance.
    MarkPresence(BookingId, Option<Presence>),
    /// Mark an event's attendance as checked.
    MarkChecked(EventId, bool),
}

/// What a change answers.
#[derive(Debug)]
pub(super) enum Changed {
    /// New bookings, or the bookings a change cancelled or promoted.
    Bookings(Vec<BookingView>),
    /// A cancelled booking and the one promoted in its place.
    Cancelled(BookingView, Option<BookingView>),
    /// One booking after the change.
    Booking(BookingView),
    /// Done.
    Done,
}

/// From the registry: apply a change.
#[derive(Message)]
#[rtype(result = "Result<Changed, AgendaError>")]
pub(super) struct Apply(pub(super) Change);

/// From the registry: add a recurrence and its occurrences; answers the rule and the number of
/// occurrences once stored.
#[derive(Message)]
#[rtype(result = "Result<(Recurrence, usize), AgendaError>")]
pub(super) struct AddRecurrence(pub(super) NewRecurrence);

/// From the registry: add an event; answers it once stored.
#[derive(Message)]
#[rtype(result = "Result<EventView, AgendaError>")]
pub(super) struct AddEvent(pub(super) NewEvent);

/// From the registry: one event, with its active bookings when asked.
#[derive(Message)]
#[rtype(result = "Result<EventView, AgendaError>")]
pub(super) struct GetEvent {
    pub(super) event_id: EventId,
    pub(super) with_bookings: bool,
}

/// From the registry: every event of the agenda, by start.
#[derive(Message)]
#[rtype(result = "Vec<EventView>")]
pub(super) struct GetEvents;

/// From another agenda's actor after it durably wrote some of this agenda's events in a
/// multi-agenda booking: their new state, to adopt where newer than the cached one. Sent before
/// that actor answers its caller, so any later read reaches this actor after it.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct AdoptEvents(pub(super) Vec<EventState>);
