//! Messages of `AgendaActor`. Commands are imperative, queries start with `Get`.

use actix::Message;

use super::handle::EventView;
use super::model::{AgendaError, BookRequest, BookingView, EventState, NewEvent};
use crate::ids::{BookingId, EventId};

/// From the registry: book events (of this agenda, and possibly of others when this agenda
/// coordinates a multi-agenda booking); answers the bookings, all or none.
#[derive(Message)]
#[rtype(result = "Result<Vec<BookingView>, AgendaError>")]
pub(super) struct BookEvents(pub(super) BookRequest);

/// From the registry: cancel an active booking; answers it and the booking promoted in its place.
#[derive(Message)]
#[rtype(result = "Result<(BookingView, Option<BookingView>), AgendaError>")]
pub(super) struct CancelBooking(pub(super) BookingId);

/// From the registry: confirm the first waiting-list booking of an event (manual promotion).
#[derive(Message)]
#[rtype(result = "Result<BookingView, AgendaError>")]
pub(super) struct PromoteWaitingList(pub(super) EventId);

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
