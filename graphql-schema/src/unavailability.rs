//! Shared unavailability calendars over GraphQL (administrators).

use actors::Services;
use actors::access::Action;
use actors::ids::{AgendaId, CalendarId, DeskId};
use actors::meetings::unavailability::{CalendarLink, Unavailability, UnavailabilityCalendar};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::context::Caller;
use crate::error::GqlResultExt;
use crate::query::{parse_id, parse_ids};
use crate::scalars::DateTime;

/// A period of an unavailability calendar.
#[derive(SimpleObject)]
pub struct UnavailabilityPeriod {
    /// Identifier.
    pub id: ID,
    /// Start.
    pub starts_at: DateTime,
    /// End.
    pub ends_at: DateTime,
    /// Why.
    pub label: String,
}

impl From<&Unavailability> for UnavailabilityPeriod {
    fn from(p: &Unavailability) -> Self {
        Self {
            id: ID(p.id.to_string()),
            starts_at: DateTime(p.starts_at),
            ends_at: DateTime(p.ends_at),
            label: p.label.clone(),
        }
    }
}

/// Desks of a meetings agenda that follow a calendar.
#[derive(SimpleObject)]
pub struct CalendarLinkView {
    /// The agenda.
    pub agenda_id: ID,
    /// Its desks that follow the calendar (empty: all).
    pub desk_ids: Vec<ID>,
}

impl From<&CalendarLink> for CalendarLinkView {
    fn from(l: &CalendarLink) -> Self {
        Self {
            agenda_id: ID(l.agenda.to_string()),
            desk_ids: l.desk_ids.iter().map(|d| ID(d.to_string())).collect(),
        }
    }
}

/// A calendar of unavailability periods shared between desks of several agendas.
#[derive(SimpleObject)]
pub struct UnavailabilityCalendarView {
    /// Identifier.
    pub id: ID,
    /// Unique short name.
    pub slug: String,
    /// Human name.
    pub label: String,
    /// Periods not over yet, by start.
    pub periods: Vec<UnavailabilityPeriod>,
    /// The desks that follow it.
    pub links: Vec<CalendarLinkView>,
}

fn view(
    c: &UnavailabilityCalendar,
    periods: &[Unavailability],
    links: &[CalendarLink],
) -> UnavailabilityCalendarView {
    UnavailabilityCalendarView {
        id: ID(c.id.to_string()),
        slug: c.slug.clone(),
        label: c.label.clone(),
        periods: periods.iter().map(Into::into).collect(),
        links: links.iter().map(Into::into).collect(),
    }
}

/// Input of `addUnavailability`.
#[derive(InputObject)]
pub struct AddUnavailabilityInput {
    /// The calendar.
    pub calendar_id: ID,
    /// Start.
    pub starts_at: DateTime,
    /// End.
    pub ends_at: DateTime,
    /// Why (shown to agents).
    pub label: String,
}

/// Queries of unavailability calendars.
#[derive(Default)]
pub struct UnavailabilityQuery;

#[Object]
impl UnavailabilityQuery {
    /// Every unavailability calendar (administrators).
    async fn unavailability_calendars(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<UnavailabilityCalendarView>> {
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let services = ctx.data::<Services>()?;
        let all = services.unavailability.list().await.gql()?;
        Ok(all.iter().map(|(c, p, l)| view(c, p, l)).collect())
    }
}

/// Mutations of unavailability calendars.
#[derive(Default)]
pub struct UnavailabilityMutation;

#[Object]
impl UnavailabilityMutation {
    /// Creates a calendar of unavailability periods to share between desks (administrators).
    async fn create_unavailability_calendar(
        &self,
        ctx: &Context<'_>,
        slug: String,
        label: String,
    ) -> async_graphql::Result<UnavailabilityCalendarView> {
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let services = ctx.data::<Services>()?;
        let c = services.unavailability.create(&slug, &label).await.gql()?;
        Ok(view(&c, &[], &[]))
    }

    /// Adds a period to a calendar (administrators): every desk that follows it closes then.
    async fn add_unavailability(
        &self,
        ctx: &Context<'_>,
        input: AddUnavailabilityInput,
    ) -> async_graphql::Result<UnavailabilityPeriod> {
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let services = ctx.data::<Services>()?;
        let calendar: CalendarId = parse_id(&input.calendar_id, "calendar")?;
        let p = services
            .unavailability
            .add_period(calendar, input.starts_at.0, input.ends_at.0, &input.label)
            .await
            .gql()?;
        Ok(UnavailabilityPeriod::from(&p))
    }

    /// Makes desks of a meetings agenda follow a calendar (administrators; no desk: all of
    /// them): they close over its periods to come and over those added later.
    async fn link_unavailability_calendar(
        &self,
        ctx: &Context<'_>,
        calendar_id: ID,
        agenda_id: ID,
        #[graphql(default)] desk_ids: Vec<ID>,
    ) -> async_graphql::Result<CalendarLinkView> {
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let services = ctx.data::<Services>()?;
        let calendar: CalendarId = parse_id(&calendar_id, "calendar")?;
        let agenda: AgendaId = parse_id(&agenda_id, "agenda")?;
        let desks: Vec<DeskId> = parse_ids(&desk_ids, "desk")?;
        let link = services.unavailability.link(calendar, agenda, desks).await.gql()?;
        Ok(CalendarLinkView::from(&link))
    }
}
