//! Agendas as data sources for forms: the events or free slots of an agenda as a list of items
//! (`id`, `text`, `datetime`, `disabled`), the shape w.c.s. forms read from Chrono. A form field
//! of type "item" offers them; the chosen `id` is what the form then books.

use jiff::Timestamp;
use jiff::civil::Date;

use crate::agenda::AgendaRegistry;
use crate::agenda::model::{AgendaError, AgendaKind};
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::{AgendaId, MeetingTypeId};
use crate::meetings::MeetingsRegistry;
use crate::meetings::model::MeetingsError;
use crate::time::paris;

/// One choice offered to a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSourceItem {
    /// What the form stores: an event id, or `<meeting type>:<start>` for a slot.
    pub id: String,
    /// What the citizen reads, in French (`lundi 7 décembre 2026 à 10h00`).
    pub text: String,
    /// Start.
    pub datetime: Timestamp,
    /// Shown but not selectable (a full event, one outside the booking delays).
    pub disabled: bool,
    /// Places left, for events.
    pub places_left: Option<u32>,
}

/// Errors of data sources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataSourceError {
    /// From an events agenda.
    #[error(transparent)]
    Agenda(#[from] AgendaError),
    /// From a meetings agenda.
    #[error(transparent)]
    Meetings(#[from] MeetingsError),
    /// A meetings agenda needs a meeting type.
    #[error("a meetings agenda needs meetingTypeId")]
    MeetingTypeNeeded,
}

impl HasErrorCode for DataSourceError {
    fn code(&self) -> ErrorCode {
        match self {
            DataSourceError::Agenda(e) => e.code(),
            DataSourceError::Meetings(e) => e.code(),
            DataSourceError::MeetingTypeNeeded => ErrorCode::BadUserInput,
        }
    }
}

const DAYS: [&str; 7] = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"];
const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// `lundi 7 décembre 2026 à 10h00`, in Europe/Paris.
pub fn french_datetime(t: Timestamp) -> String {
    let z = t.to_zoned(paris());
    let day = DAYS[usize::try_from(z.weekday().to_monday_zero_offset()).unwrap_or(0)];
    let month = MONTHS[usize::try_from(z.month() - 1).unwrap_or(0)];
    format!("{day} {} {month} {} à {}h{:02}", z.day(), z.year(), z.hour(), z.minute())
}

/// The items of an agenda on the local days `from` to `to` (inclusive), as citizens may book
/// them: published events to come (full ones disabled), or free slots of `meeting_type`.
pub async fn agenda_items(
    agendas: &AgendaRegistry,
    meetings: &MeetingsRegistry,
    agenda: AgendaId,
    meeting_type: Option<MeetingTypeId>,
    from: Date,
    to: Date,
) -> Result<Vec<DataSourceItem>, DataSourceError> {
    let settings = agendas.settings(agenda).await?;
    let now = Timestamp::now();
    match settings.kind {
        AgendaKind::Events => {
            let tz = paris();
            let handle = agendas.get(agenda).await?;
            let items = handle
                .events()
                .await?
                .into_iter()
                .filter(|e| e.is_published(now) && e.cancelled_at.is_none() && e.starts_at > now)
                .filter(|e| {
                    let day = e.starts_at.to_zoned(tz.clone()).date();
                    day >= from && day <= to
                })
                .map(|e| {
                    let outside = settings.events.check_booking_window(e.starts_at, now).is_err();
                    DataSourceItem {
                        id: e.id.to_string(),
                        text: format!("{}, {}", e.label, french_datetime(e.starts_at)),
                        datetime: e.starts_at,
                        disabled: e.fill.full || outside,
                        places_left: Some(e.fill.places.saturating_sub(e.fill.booked_places)),
                    }
                })
                .collect();
            Ok(items)
        }
        AgendaKind::Meetings | AgendaKind::Virtual => {
            let meeting_type = meeting_type.ok_or(DataSourceError::MeetingTypeNeeded)?;
            let slots = meetings.slot_agenda(agenda).await?;
            let items = slots
                .slots(meeting_type, from, to, None, false)
                .await?
                .into_iter()
                .map(|s| DataSourceItem {
                    id: format!("{meeting_type}:{}", s.starts_at),
                    text: french_datetime(s.starts_at),
                    datetime: s.starts_at,
                    disabled: s.free_desks.is_empty(),
                    places_left: None,
                })
                .collect();
            Ok(items)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::french_datetime;

    #[test]
    fn french_text_is_local_time() {
        let t: jiff::Timestamp = "2026-12-07T09:00:00Z".parse().unwrap();
        assert_eq!(french_datetime(t), "lundi 7 décembre 2026 à 10h00");
        let summer: jiff::Timestamp = "2027-07-14T08:30:00Z".parse().unwrap();
        assert_eq!(french_datetime(summer), "mercredi 14 juillet 2027 à 10h30");
    }
}
