//! Typed identifiers. Every entity key is a newtype around a UUID (v7, so keys sort by creation).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! entity_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh identifier; v7 so that identifiers sort by creation time.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }
    };
}

entity_id!(
    /// An account: a citizen, an agent or an administrator.
    AccountId
);
entity_id!(
    /// An agenda (events agenda for now).
    AgendaId
);
entity_id!(
    /// An event of an events agenda.
    EventId
);
entity_id!(
    /// A booking of one place in one event.
    BookingId
);
entity_id!(
    /// A calendar of unavailability periods shared between desks.
    CalendarId
);
entity_id!(
    /// A period of an unavailability calendar.
    UnavailabilityId
);
entity_id!(
    /// A resource (a room, equipment) reserved by events.
    ResourceId
);
entity_id!(
    /// A recurrence rule of an events agenda, and the occurrences it generated.
    RecurrenceId
);
entity_id!(
    /// A queued outgoing email.
    MailId
);
entity_id!(
    /// A meeting type of a meetings agenda.
    MeetingTypeId
);
entity_id!(
    /// A desk ("guichet") of a meetings agenda.
    DeskId
);
entity_id!(
    /// An opening period of a desk.
    PeriodId
);
entity_id!(
    /// An exception (closure) of desks.
    ExceptionId
);
entity_id!(
    /// A meeting: a booked or held slot on one desk.
    MeetingId
);
entity_id!(
    /// A form definition (all its versions).
    FormId
);
entity_id!(
    /// A workflow definition (all its versions).
    WorkflowId
);
entity_id!(
    /// A named data source (all its versions).
    DataSourceId
);
entity_id!(
    /// A demand: one submission of a form, and its life in the workflow.
    DemandId
);
entity_id!(
    /// A draft: answers saved before submission.
    DraftId
);
