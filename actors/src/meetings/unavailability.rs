//! Unavailability calendars, shared between desks of several meetings agendas: a town's staff
//! training days, a building's closures. A calendar holds periods; linking it to desks of an
//! agenda closes those desks over every period to come, and a period added later closes every
//! linked desk. Each closure reaches an agenda as an exception through its `MeetingsActor`, so
//! free slots and bookings see it like any other exception.

use jiff::Timestamp;

use super::MeetingsRegistry;
use super::model::{MeetingsError, NewException};
use crate::agenda::model::checked_slug;
use crate::ids::{AgendaId, CalendarId, DeskId, UnavailabilityId};
use crate::store::{Store, StoreError};

/// A shared calendar of unavailability periods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnavailabilityCalendar {
    /// Identifier.
    pub id: CalendarId,
    /// Unique short name.
    pub slug: String,
    /// Human name.
    pub label: String,
}

/// A period of a calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailability {
    /// Identifier.
    pub id: UnavailabilityId,
    /// Calendar.
    pub calendar: CalendarId,
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Timestamp,
    /// Why.
    pub label: String,
}

/// Desks of an agenda that follow a calendar (none listed: every desk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarLink {
    /// Calendar.
    pub calendar: CalendarId,
    /// Meetings agenda.
    pub agenda: AgendaId,
    /// Desks of that agenda; empty means all of them.
    pub desk_ids: Vec<DeskId>,
}

/// Shared unavailability calendars.
#[derive(Debug, Clone)]
pub struct UnavailabilityCalendars {
    store: Store,
    meetings: MeetingsRegistry,
}

fn store_error(e: StoreError) -> MeetingsError {
    match e {
        StoreError::Duplicate(m) => MeetingsError::Invalid(format!("already exists: {m}")),
        e => MeetingsError::Unavailable(e.to_string()),
    }
}

impl UnavailabilityCalendars {
    /// Over the store and the meetings agendas.
    pub fn new(store: Store, meetings: MeetingsRegistry) -> Self {
        Self { store, meetings }
    }

    /// Creates a calendar.
    pub async fn create(
        &self,
        slug: &str,
        label: &str,
    ) -> Result<UnavailabilityCalendar, MeetingsError> {
        let slug = checked_slug(slug, "slug").map_err(|e| MeetingsError::Invalid(e.to_string()))?;
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 200 {
            return Err(MeetingsError::Invalid("label must have 1 to 200 characters".into()));
        }
        let calendar = UnavailabilityCalendar { id: CalendarId::new(), slug, label: label.into() };
        self.store.create_unavailability_calendar(&calendar, Timestamp::now()).await.map_err(
            |e| match e {
                StoreError::Duplicate(_) => MeetingsError::Invalid(format!(
                    "a calendar with slug {:?} exists already",
                    calendar.slug
                )),
                e => store_error(e),
            },
        )?;
        Ok(calendar)
    }

    /// Every calendar with its periods to come and its links.
    pub async fn list(
        &self,
    ) -> Result<Vec<(UnavailabilityCalendar, Vec<Unavailability>, Vec<CalendarLink>)>, MeetingsError>
    {
        let now = Timestamp::now();
        let mut out = Vec::new();
        for c in self.store.unavailability_calendars().await.map_err(store_error)? {
            let periods = self.store.unavailabilities(c.id, now).await.map_err(store_error)?;
            let links = self.store.calendar_links(c.id).await.map_err(store_error)?;
            out.push((c, periods, links));
        }
        Ok(out)
    }

    async fn calendar(&self, id: CalendarId) -> Result<UnavailabilityCalendar, MeetingsError> {
        self.store
            .unavailability_calendar(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| MeetingsError::Invalid("unavailability calendar not found".into()))
    }

    /// Adds a period to a calendar and closes every linked desk over it. The period is checked
    /// against each linked agenda first (desks still exist), so a refusal changes nothing.
    pub async fn add_period(
        &self,
        calendar: CalendarId,
        starts_at: Timestamp,
        ends_at: Timestamp,
        label: &str,
    ) -> Result<Unavailability, MeetingsError> {
        let cal = self.calendar(calendar).await?;
        let period = Unavailability {
            id: UnavailabilityId::new(),
            calendar,
            starts_at,
            ends_at,
            label: label.trim().into(),
        };
        let links = self.store.calendar_links(calendar).await.map_err(store_error)?;
        // The model's rules for exceptions apply to the period itself (order, past, length).
        let check =
            NewException { desk_ids: Vec::new(), starts_at, ends_at, label: period.label.clone() };
        super::model::check_exception_span(&check, Timestamp::now())?;
        self.store.add_unavailability(&period).await.map_err(store_error)?;
        for link in links {
            self.close(&cal, &link, &period).await?;
        }
        Ok(period)
    }

    /// Links desks of a meetings agenda to a calendar and closes them over its periods to come.
    pub async fn link(
        &self,
        calendar: CalendarId,
        agenda: AgendaId,
        desk_ids: Vec<DeskId>,
    ) -> Result<CalendarLink, MeetingsError> {
        let cal = self.calendar(calendar).await?;
        let handle = self.meetings.get(agenda).await?;
        let desks = handle.config().await?.desks;
        for d in &desk_ids {
            if !desks.iter().any(|x| x.id == *d) {
                return Err(MeetingsError::DeskNotFound(*d));
            }
        }
        let link = CalendarLink { calendar, agenda, desk_ids };
        self.store.add_calendar_link(&link).await.map_err(store_error)?;
        for period in
            self.store.unavailabilities(calendar, Timestamp::now()).await.map_err(store_error)?
        {
            self.close(&cal, &link, &period).await?;
        }
        Ok(link)
    }

    async fn close(
        &self,
        cal: &UnavailabilityCalendar,
        link: &CalendarLink,
        period: &Unavailability,
    ) -> Result<(), MeetingsError> {
        let handle = self.meetings.get(link.agenda).await?;
        handle
            .add_exception(NewException {
                desk_ids: link.desk_ids.clone(),
                starts_at: period.starts_at,
                ends_at: period.ends_at,
                label: format!("{} : {}", cal.label, period.label),
            })
            .await
            .map(drop)
    }
}
