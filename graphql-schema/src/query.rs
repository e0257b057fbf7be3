//! Queries.

use std::str::FromStr;

use actors::Services;
use actors::access::Action;
use actors::agenda::AgendaHandle;
use actors::agenda::model::BookingView;
use actors::ids::{AgendaId, BookingId, EventId};
use async_graphql::{Context, ID, Object};
use jiff::Timestamp;

use crate::context::Caller;
use crate::error::{GqlResultExt, coded};
use crate::types::{Agenda, Booking, Event, OutboxMail, User};

/// Parses an opaque id; a malformed one names nothing, so it is `NOT_FOUND`.
pub(crate) fn parse_id<T: FromStr>(id: &ID, what: &str) -> async_graphql::Result<T> {
    id.parse::<T>().map_err(|_| {
        coded(actors::ErrorCode::NotFound, format!("{what} {:?} not found", id.as_str()))
    })
}

/// Parses a list of opaque ids; the first malformed one is `NOT_FOUND`.
pub(crate) fn parse_ids<T: FromStr>(ids: &[ID], what: &str) -> async_graphql::Result<Vec<T>> {
    ids.iter().map(|id| parse_id(id, what)).collect()
}

/// The events of an agenda the caller may see, by start: agents of the agenda see them all,
/// others only those published and not started yet.
pub(crate) async fn visible_events(
    ctx: &Context<'_>,
    agenda_id: &ID,
) -> async_graphql::Result<Vec<Event>> {
    let services = ctx.data::<Services>()?;
    let caller = ctx.data::<Caller>()?;
    let handle = services.agendas.get(parse_id::<AgendaId>(agenda_id, "agenda")?).await.gql()?;
    let events = handle.events().await.gql()?;
    let now = Timestamp::now();
    let agents = handle.settings().services.clone();
    let agent = caller.may(Action::SeeBookings { agenda_services: &agents }).is_ok();
    Ok(events
        .into_iter()
        .filter(|e| agent || e.starts_at > now)
        .filter(|e| {
            caller
                .may(Action::SeeEvent { agenda_services: &agents, published: e.is_published(now) })
                .is_ok()
        })
        .map(|e| Event::from_view(e, false))
        .collect())
}

/// Reads an event the caller may see, with its bookings when the caller may see those.
pub(crate) async fn read_event(
    ctx: &Context<'_>,
    id: EventId,
) -> async_graphql::Result<(AgendaHandle, Event)> {
    let services = ctx.data::<Services>()?;
    let caller = ctx.data::<Caller>()?;
    let handle = services.agendas.agenda_of_event(id).await.gql()?;
    let agents = handle.settings().services.clone();
    let with_bookings = caller.may(Action::SeeBookings { agenda_services: &agents }).is_ok();
    let view = handle.event(id, with_bookings).await.gql()?;
    caller.may(Action::SeeEvent {
        agenda_services: &agents,
        published: view.is_published(Timestamp::now()),
    })?;
    Ok((handle, Event::from_view(view, with_bookings)))
}

/// A booking that the caller owns or manages (agents of its agenda): the ones they may read and
/// cancel.
pub(crate) async fn owned_booking(
    ctx: &Context<'_>,
    id: &ID,
) -> async_graphql::Result<BookingView> {
    let services = ctx.data::<Services>()?;
    let caller = ctx.data::<Caller>()?;
    caller.account()?;
    let booking = services.agendas.booking(parse_id::<BookingId>(id, "booking")?).await.gql()?;
    let handle = services.agendas.get(booking.agenda_id).await.gql()?;
    caller.may(Action::CancelBooking {
        agenda_services: &handle.settings().services,
        owner: booking.account_id,
    })?;
    Ok(booking)
}

/// Queries about accounts.
#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The signed-in user; null when anonymous.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let caller = ctx.data::<Caller>()?;
        let Some(id) = caller.principal.account_id() else { return Ok(None) };
        let services = ctx.data::<Services>()?;
        Ok(Some(services.accounts.get(id).await.gql()?.into()))
    }
}

/// Queries about agendas, events and bookings.
#[derive(Default)]
pub struct AgendaQuery;

#[Object]
impl AgendaQuery {
    /// Every agenda, by label.
    async fn agendas(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Agenda>> {
        let services = ctx.data::<Services>()?;
        Ok(services.agendas.agendas().await.gql()?.iter().map(Agenda::from).collect())
    }

    /// The categories agendas are listed under, by slug, with how many agendas each has.
    async fn agenda_categories(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::types::AgendaCategory>> {
        let services = ctx.data::<Services>()?;
        let mut counts = std::collections::BTreeMap::<String, i32>::new();
        for a in services.agendas.agendas().await.gql()? {
            if let Some(c) = a.category {
                *counts.entry(c).or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|(slug, agenda_count)| crate::types::AgendaCategory { slug, agenda_count })
            .collect())
    }

    /// One agenda, by id or by slug.
    async fn agenda(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
    ) -> async_graphql::Result<Agenda> {
        let services = ctx.data::<Services>()?;
        let handle = match (id, slug) {
            (Some(id), None) => services.agendas.get(parse_id(&id, "agenda")?).await.gql()?,
            (None, Some(slug)) => services.agendas.by_slug(&slug).await.gql()?,
            _ => return Err(coded(actors::ErrorCode::BadUserInput, "give either id or slug")),
        };
        Ok(Agenda::from(handle.settings()))
    }

    /// One event. Citizens see it once published; agents of its agenda also see its bookings.
    async fn event(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Event> {
        Ok(read_event(ctx, parse_id(&id, "event")?).await?.1)
    }

    /// One booking: its owner and the agents of its agenda may read it.
    async fn booking(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Booking> {
        Ok(Booking::from(&owned_booking(ctx, &id).await?))
    }

    /// The caller's bookings, newest first (at most 500); cancelled ones only when asked.
    async fn my_bookings(
        &self,
        ctx: &Context<'_>,
        include_cancelled: Option<bool>,
    ) -> async_graphql::Result<Vec<Booking>> {
        let include_cancelled = include_cancelled.unwrap_or(false);
        let services = ctx.data::<Services>()?;
        let me = ctx.data::<Caller>()?.account()?;
        let bookings = services.agendas.bookings_of(me, include_cancelled).await.gql()?;
        Ok(bookings.iter().map(Booking::from).collect())
    }

    /// The outgoing mail queue, newest first (administrators).
    async fn outbox(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 500))] limit: i32,
    ) -> async_graphql::Result<Vec<OutboxMail>> {
        let services = ctx.data::<Services>()?;
        ctx.data::<Caller>()?.may(Action::SeeOutbox)?;
        let limit = u32::try_from(limit).unwrap_or(50);
        Ok(services.store.outbox(limit).await.gql()?.into_iter().map(OutboxMail::from).collect())
    }
}
