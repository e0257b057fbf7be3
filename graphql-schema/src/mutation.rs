//! Mutations.

use actors::Services;
use actors::access::{Action, Roles};
use actors::account::NewAccount;
use actors::agenda::model::{BookRequest, FillNotifications, NewAgenda, NewEvent};
use actors::ids::{AccountId, AgendaId, EventId};
use async_graphql::{Context, ID, Object};

use crate::context::Caller;
use crate::error::{BadInput, GqlResultExt};
use crate::query::{owned_booking, parse_id, parse_ids};
use crate::scalars::DateTime;
use crate::types::{
    Agenda, BookEventsInput, Booking, CreateAccountInput, CreateAgendaInput, CreateEventInput,
    Event, LoginPayload, RegisterInput, RegisterPayload, User,
};

/// The address of a personal calendar feed.
#[derive(async_graphql::SimpleObject)]
pub struct CalendarFeed {
    /// Path on this server (`/calendar/<secret>.ics`); keep it private: it alone grants access.
    pub path: String,
}

/// Mutations about accounts and sessions.
#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Opens a citizen account and signs it in.
    async fn register(
        &self,
        ctx: &Context<'_>,
        input: RegisterInput,
    ) -> async_graphql::Result<RegisterPayload> {
        let services = ctx.data::<Services>()?;
        let account = services
            .accounts
            .register(
                NewAccount {
                    email: input.email,
                    password: input.password,
                    first_name: input.first_name,
                    last_name: input.last_name,
                },
                Roles::citizen(),
            )
            .await
            .gql()?;
        let session = services.sessions.open(&account).await.gql()?;
        Ok(RegisterPayload {
            token: session.token,
            expires_at: DateTime(session.expires_at),
            user: account.into(),
        })
    }

    /// Signs in with email and password.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> async_graphql::Result<LoginPayload> {
        let services = ctx.data::<Services>()?;
        let account = services.accounts.verify(&email, &password).await.gql()?;
        let session = services.sessions.open(&account).await.gql()?;
        Ok(LoginPayload {
            token: session.token,
            expires_at: DateTime(session.expires_at),
            user: account.into(),
        })
    }

    /// Ends the caller's session; its subscriptions close.
    async fn logout(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        caller.account()?;
        let token = caller.token.as_deref().unwrap_or_default();
        services.sessions.revoke(token).await.gql()?;
        Ok(true)
    }

    /// Creates an account with roles (administrators).
    async fn create_account(
        &self,
        ctx: &Context<'_>,
        input: CreateAccountInput,
    ) -> async_graphql::Result<User> {
        let services = ctx.data::<Services>()?;
        ctx.data::<Caller>()?.may(Action::ManageAccounts)?;
        let account = services
            .accounts
            .register(
                NewAccount {
                    email: input.email,
                    password: input.password,
                    first_name: input.first_name,
                    last_name: input.last_name,
                },
                Roles { admin: input.is_admin, agent_roles: input.agent_roles },
            )
            .await
            .gql()?;
        Ok(account.into())
    }

    /// Sets the caller's phone number for text messages (reminders), or clears it with null.
    /// French national numbers are accepted and stored as +33....
    async fn set_phone(
        &self,
        ctx: &Context<'_>,
        phone: Option<String>,
    ) -> async_graphql::Result<User> {
        let services = ctx.data::<Services>()?;
        let me = ctx.data::<Caller>()?.account()?;
        Ok(services.accounts.set_phone(me, phone.as_deref()).await.gql()?.into())
    }

    /// Makes a new secret address for the caller's calendar feed (their bookings and
    /// appointments, for a calendar application); the previous address stops working.
    async fn renew_calendar_feed(&self, ctx: &Context<'_>) -> async_graphql::Result<CalendarFeed> {
        let services = ctx.data::<Services>()?;
        let me = ctx.data::<Caller>()?.account()?;
        let secret = services.accounts.renew_calendar_feed(me).await.gql()?;
        Ok(CalendarFeed { path: format!("/calendar/{secret}.ics") })
    }

    /// Replaces the roles of an account (administrators); effective from its next sign-in.
    async fn set_account_roles(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        is_admin: bool,
        agent_roles: Vec<String>,
    ) -> async_graphql::Result<User> {
        let services = ctx.data::<Services>()?;
        ctx.data::<Caller>()?.may(Action::ManageAccounts)?;
        let id: AccountId = parse_id(&user_id, "user")?;
        Ok(services
            .accounts
            .set_roles(id, Roles { admin: is_admin, agent_roles })
            .await
            .gql()?
            .into())
    }
}

/// Mutations about agendas and bookings.
#[derive(Default)]
pub struct AgendaMutation;

#[Object]
impl AgendaMutation {
    /// Creates an agenda (administrators).
    async fn create_agenda(
        &self,
        ctx: &Context<'_>,
        input: CreateAgendaInput,
    ) -> async_graphql::Result<Agenda> {
        let services = ctx.data::<Services>()?;
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let fill = match input.fill_notifications {
            None => FillNotifications::default(),
            Some(f) => FillNotifications {
                thresholds: f
                    .thresholds
                    .iter()
                    .map(|t| {
                        u8::try_from(*t).map_err(|_| {
                            BadInput("thresholds are percentages from 1 to 100".into())
                        })
                    })
                    .collect::<Result<_, _>>()
                    .gql()?,
                emails: f.emails,
            },
        };
        let settings = services
            .agendas
            .create_agenda(NewAgenda {
                slug: input.slug,
                label: input.label,
                kind: input.kind.into(),
                fill_notifications: fill,
                auto_promote_waiting_list: input.auto_promote_waiting_list,
                services: input.services,
                meetings: input.meetings.map(|m| m.into_rules()).transpose()?,
                events: input.events.map(|e| e.into_rules()).transpose()?,
                category: input.category,
                resources: parse_ids(&input.resource_ids, "resource")?,
            })
            .await
            .gql()?;
        Ok(Agenda::from(&settings))
    }

    /// Adds an event to an agenda (administrators).
    async fn create_event(
        &self,
        ctx: &Context<'_>,
        input: CreateEventInput,
    ) -> async_graphql::Result<Event> {
        let services = ctx.data::<Services>()?;
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let agenda: AgendaId = parse_id(&input.agenda_id, "agenda")?;
        let view = services
            .agendas
            .add_event(
                agenda,
                NewEvent {
                    label: input.label,
                    starts_at: input.starts_at.0,
                    ends_at: input.ends_at.map(|d| d.0),
                    places: i64::from(input.places),
                    waiting_list_places: i64::from(input.waiting_list_places),
                    description: input.description,
                    url: input.url,
                    publication_at: input.publication_at.map(|d| d.0),
                    resources: parse_ids(&input.resource_ids, "resource")?,
                },
            )
            .await
            .gql()?;
        Ok(Event::from_view(view, true))
    }

    /// Books one or several events for the caller (or, for agents, for `userId`): all or none.
    /// Each booking is confirmed while places remain, then put on the waiting list; when neither
    /// is left the whole request fails with `FULL`.
    async fn book_events(
        &self,
        ctx: &Context<'_>,
        input: BookEventsInput,
    ) -> async_graphql::Result<Vec<Booking>> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        let me = caller.account()?;
        let owner = match &input.user_id {
            Some(id) => parse_id::<AccountId>(id, "user")?,
            None => me,
        };
        if input.event_ids.len() > 100 {
            return Err(BadInput("at most 100 events per booking".into())).gql();
        }
        let event_ids: Vec<EventId> = parse_ids(&input.event_ids, "event")?;
        let agendas = services.agendas.agendas_of(&event_ids).await.gql()?;
        let mut by_agent = true;
        for handle in &agendas {
            let agents = &handle.settings().services;
            caller.may(Action::Book { agenda_services: agents, for_account: owner })?;
            by_agent &= caller.may(Action::SeeBookings { agenda_services: agents }).is_ok();
        }
        if owner != me {
            services.accounts.get(owner).await.gql()?;
        }
        let request = BookRequest {
            event_ids,
            account_id: owner,
            booked_by: me,
            by_agent,
            skip_already_booked: false,
        };
        let bookings = services.agendas.book_in(&agendas, request).await.gql()?;
        Ok(bookings.iter().map(Booking::from).collect())
    }

    /// Cancels a booking (its owner, or an agent of its agenda). With automatic promotion, the
    /// first waiting-list booking takes the freed place.
    async fn cancel_booking(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Booking> {
        let services = ctx.data::<Services>()?;
        let booking = owned_booking(ctx, &id).await?;
        let handle = services.agendas.get(booking.agenda_id).await.gql()?;
        let by_agent = ctx
            .data::<Caller>()?
            .may(Action::SeeBookings { agenda_services: &handle.settings().services })
            .is_ok();
        let (cancelled, _) = services.agendas.cancel(&booking, by_agent).await.gql()?;
        Ok(Booking::from(&cancelled))
    }

    /// Confirms the first waiting-list booking of an event (agents of its agenda).
    async fn promote_waiting_list(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
    ) -> async_graphql::Result<Booking> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        caller.account()?;
        let id: EventId = parse_id(&event_id, "event")?;
        let handle = services.agendas.agenda_of_event(id).await.gql()?;
        caller.may(Action::SeeBookings { agenda_services: &handle.settings().services })?;
        Ok(Booking::from(&services.agendas.promote(id).await.gql()?))
    }
}
