//! Shared unavailability calendars: the calendars (slug keys for uniqueness), their periods and
//! their links to desks of meetings agendas.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, json, parse_id};
use crate::ids::CalendarId;
use crate::meetings::unavailability::{CalendarLink, Unavailability, UnavailabilityCalendar};
use crate::time::{from_micros, to_micros};

#[derive(Debug, Serialize, Deserialize)]
struct CalendarRecord {
    id: String,
    slug: String,
    label: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PeriodRecord {
    id: String,
    calendar: String,
    starts_us: i64,
    ends_us: i64,
    label: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct LinkRecord {
    calendar: String,
    agenda: String,
    desk_ids: Vec<String>,
}

impl Store {
    /// Creates a calendar; `Duplicate` when the slug is taken.
    pub async fn create_unavailability_calendar(
        &self,
        c: &UnavailabilityCalendar,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(
            "BEGIN TRANSACTION;
             CREATE type::record('unavailability_calendar_slug', $slug) SET calendar = $id;
             CREATE type::record('unavailability_calendar', $id) CONTENT { slug: $slug, label: $label, created_us: $now };
             COMMIT TRANSACTION;",
            vec![
                ("id", c.id.to_string().into()),
                ("slug", c.slug.clone().into()),
                ("label", c.label.clone().into()),
                ("now", to_micros(now).into()),
            ],
        )
        .await
        .map(drop)
    }

    fn calendar_of(r: CalendarRecord) -> Result<UnavailabilityCalendar, StoreError> {
        Ok(UnavailabilityCalendar { id: parse_id(&r.id)?, slug: r.slug, label: r.label })
    }

    /// Every calendar, by label.
    pub async fn unavailability_calendars(
        &self,
    ) -> Result<Vec<UnavailabilityCalendar>, StoreError> {
        let recs: Vec<CalendarRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM unavailability_calendar ORDER BY label",
                vec![],
            )
            .await?;
        recs.into_iter().map(Self::calendar_of).collect()
    }

    /// One calendar.
    pub async fn unavailability_calendar(
        &self,
        id: CalendarId,
    ) -> Result<Option<UnavailabilityCalendar>, StoreError> {
        let rec: Option<CalendarRecord> = self
            .row(
                "SELECT *, record::id(id) AS id FROM type::record('unavailability_calendar', $id)",
                vec![("id", id.to_string().into())],
            )
            .await?;
        rec.map(Self::calendar_of).transpose()
    }

    /// Stores a period.
    pub async fn add_unavailability(&self, p: &Unavailability) -> Result<(), StoreError> {
        let rec = PeriodRecord {
            id: p.id.to_string(),
            calendar: p.calendar.to_string(),
            starts_us: to_micros(p.starts_at),
            ends_us: to_micros(p.ends_at),
            label: p.label.clone(),
        };
        self.write(
            "CREATE type::record('unavailability', $rec.id) CONTENT $rec",
            vec![("rec", json(&rec)?)],
        )
        .await
        .map(drop)
    }

    /// The periods of a calendar not over at `now`, by start.
    pub async fn unavailabilities(
        &self,
        calendar: CalendarId,
        now: Timestamp,
    ) -> Result<Vec<Unavailability>, StoreError> {
        let recs: Vec<PeriodRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM unavailability WHERE calendar = $c AND ends_us > $now ORDER BY starts_us",
                vec![("c", calendar.to_string().into()), ("now", to_micros(now).into())],
            )
            .await?;
        recs.into_iter()
            .map(|r| {
                Ok(Unavailability {
                    id: parse_id(&r.id)?,
                    calendar: parse_id(&r.calendar)?,
                    starts_at: from_micros(r.starts_us),
                    ends_at: from_micros(r.ends_us),
                    label: r.label,
                })
            })
            .collect()
    }

    /// Links desks of an agenda to a calendar; `Duplicate` when that agenda follows it already.
    pub async fn add_calendar_link(&self, link: &CalendarLink) -> Result<(), StoreError> {
        let rec = LinkRecord {
            calendar: link.calendar.to_string(),
            agenda: link.agenda.to_string(),
            desk_ids: link.desk_ids.iter().map(ToString::to_string).collect(),
        };
        self.write(
            "CREATE type::record('calendar_link', $key) CONTENT $rec",
            vec![
                ("key", format!("{}_{}", link.calendar, link.agenda).into()),
                ("rec", json(&rec)?),
            ],
        )
        .await
        .map(drop)
    }

    /// The links of a calendar.
    pub async fn calendar_links(
        &self,
        calendar: CalendarId,
    ) -> Result<Vec<CalendarLink>, StoreError> {
        let recs: Vec<LinkRecord> = self
            .rows(
                "SELECT calendar, agenda, desk_ids FROM calendar_link WHERE calendar = $c",
                vec![("c", calendar.to_string().into())],
            )
            .await?;
        recs.into_iter()
            .map(|r| {
                Ok(CalendarLink {
                    calendar: parse_id(&r.calendar)?,
                    agenda: parse_id(&r.agenda)?,
                    desk_ids: r.desk_ids.iter().map(|d| parse_id(d)).collect::<Result<_, _>>()?,
                })
            })
            .collect()
    }
}
