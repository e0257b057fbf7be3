//! Messages of `MeetingsActor`. Commands are imperative, queries start with `Get`.

use actix::Message;
use jiff::Timestamp;
use jiff::civil::Date;

use super::model::{
    Desk, Meeting, MeetingStatus, MeetingType, MeetingsError, NewException, NewMeetingType,
    NewPeriods, OpeningPeriod, Slot, SlotRequest, TimeException,
};
use crate::ids::{MeetingId, MeetingTypeId};
use crate::store::MeetingsConfig;

/// From the registry: book (`Confirmed`) or hold (`Held`) a slot; answers the meeting once durable.
#[derive(Message)]
#[rtype(result = "Result<Meeting, MeetingsError>")]
pub(super) struct ReserveSlot {
    pub(super) request: SlotRequest,
    pub(super) status: MeetingStatus,
    /// Spans when the agenda's resources are reserved, with the reservations' owners.
    pub(super) blocked: Vec<(String, Timestamp, Timestamp)>,
}

/// From the registry: cancel a booking or release a hold; answers it cancelled once durable.
#[derive(Message)]
#[rtype(result = "Result<Meeting, MeetingsError>")]
pub(super) struct CancelMeeting(pub(super) MeetingId);

/// From the registry: add a meeting type; answers it once stored.
#[derive(Message)]
#[rtype(result = "Result<MeetingType, MeetingsError>")]
pub(super) struct AddMeetingType(pub(super) NewMeetingType);

/// From the registry: add a desk; answers it once stored.
#[derive(Message)]
#[rtype(result = "Result<Desk, MeetingsError>")]
pub(super) struct AddDesk(pub(super) String);

/// From the registry: add opening periods (one per desk), all or none.
#[derive(Message)]
#[rtype(result = "Result<Vec<OpeningPeriod>, MeetingsError>")]
pub(super) struct AddPeriods(pub(super) NewPeriods);

/// From the registry: close desks for a while.
#[derive(Message)]
#[rtype(result = "Result<TimeException, MeetingsError>")]
pub(super) struct AddException(pub(super) NewException);

/// From the registry: the free slots of a meeting type on some local days.
#[derive(Message)]
#[rtype(result = "Result<Vec<Slot>, MeetingsError>")]
pub(super) struct GetSlots {
    pub(super) meeting_type: MeetingTypeId,
    pub(super) from: Date,
    pub(super) to: Date,
    pub(super) lock_code: Option<String>,
    pub(super) ignore_delays: bool,
    /// Spans when one of the agenda's resources is reserved, with the reservation's owner.
    pub(super) blocked: Vec<(String, Timestamp, Timestamp)>,
}

/// From a virtual agenda: whether a hold under this lock code starts at this instant here.
#[derive(Message)]
#[rtype(result = "bool")]
pub(super) struct GetHold {
    pub(super) lock_code: String,
    pub(super) starts_at: jiff::Timestamp,
}

/// From the registry: the agenda's configuration.
#[derive(Message)]
#[rtype(result = "MeetingsConfig")]
pub(super) struct GetConfig;

/// From the registry: the active meetings starting on some local days, by start.
#[derive(Message)]
#[rtype(result = "Vec<Meeting>")]
pub(super) struct GetMeetings {
    pub(super) from: Date,
    pub(super) to: Date,
}

/// From the scheduler at midnight: the booking window moved by a day; tell slot subscribers.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct WindowMoved;

/// From the scheduler: holds that lapsed free their slots; tell slot subscribers.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct ReleaseLapsedHolds;
