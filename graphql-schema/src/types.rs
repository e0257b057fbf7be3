//! GraphQL object and input types, converted from domain views. No domain type derives a
//! GraphQL trait: this crate alone knows the wire format.

use actors::account::AccountView;
use actors::agenda::EventView;
use actors::agenda::model::{
    AgendaKind, AgendaSettings, BookingStatus as DomainStatus, BookingView, FillLevel as DomainFill,
};
use actors::mail::{MailStatus as DomainMailStatus, OutboxEntry};
use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, SimpleObject};

use crate::context::Caller;
use crate::error::GqlResultExt;
use crate::meetings::{Desk, MeetingType, MeetingsRulesView, OpeningPeriod, TimeException};
use crate::scalars::DateTime;
use actors::access::Action;

/// A signed-in account.
#[derive(SimpleObject, Clone)]
pub struct User {
    /// Identifier.
    pub id: ID,
    /// Email, used to sign in.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Administrators design agendas and manage accounts.
    pub is_admin: bool,
    /// Agent roles (one per service).
    pub agent_roles: Vec<String>,
    /// Phone number for text messages (E.164).
    pub phone: Option<String>,
}

impl From<AccountView> for User {
    fn from(a: AccountView) -> Self {
        Self {
            id: ID(a.id.to_string()),
            email: a.email,
            first_name: a.first_name,
            last_name: a.last_name,
            is_admin: a.roles.admin,
            agent_roles: a.roles.agent_roles,
            phone: a.phone,
        }
    }
}

/// The answer to `login`.
#[derive(SimpleObject)]
pub struct LoginPayload {
    /// Bearer token: send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the session ends at the latest.
    pub expires_at: DateTime,
    /// Who signed in.
    pub user: User,
}

/// The answer to `register`: the new account, signed in.
#[derive(SimpleObject)]
pub struct RegisterPayload {
    /// Bearer token.
    pub token: String,
    /// When the session ends at the latest.
    pub expires_at: DateTime,
    /// The new account.
    pub user: User,
}

/// Input of `register`.
#[derive(InputObject)]
pub struct RegisterInput {
    /// Email, used to sign in.
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
}

/// Input of `createAccount` (administrators create agents and other administrators).
#[derive(InputObject)]
pub struct CreateAccountInput {
    /// Email.
    pub email: String,
    /// Initial password.
    pub password: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Administrator.
    #[graphql(default)]
    pub is_admin: bool,
    /// Agent roles, one per service.
    #[graphql(default)]
    pub agent_roles: Vec<String>,
}

/// Kinds of agenda.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum AgendaKindGql {
    /// Events with a number of places.
    #[graphql(name = "EVENTS")]
    Events,
    /// Appointments in slots of meeting types, on desks.
    #[graphql(name = "MEETINGS")]
    Meetings,
    /// The union of meetings agendas that share meeting types.
    #[graphql(name = "VIRTUAL")]
    Virtual,
}

impl From<AgendaKind> for AgendaKindGql {
    fn from(k: AgendaKind) -> Self {
        match k {
            AgendaKind::Events => AgendaKindGql::Events,
            AgendaKind::Meetings => AgendaKindGql::Meetings,
            AgendaKind::Virtual => AgendaKindGql::Virtual,
        }
    }
}

impl From<AgendaKindGql> for AgendaKind {
    fn from(k: AgendaKindGql) -> Self {
        match k {
            AgendaKindGql::Events => AgendaKind::Events,
            AgendaKindGql::Meetings => AgendaKind::Meetings,
            AgendaKindGql::Virtual => AgendaKind::Virtual,
        }
    }
}

/// Who is mailed when events fill up.
#[derive(InputObject, SimpleObject, Clone)]
#[graphql(input_name = "FillNotificationsInput")]
pub struct FillNotifications {
    /// Fill levels in percent of the places (1 to 100); each crossing sends one email.
    pub thresholds: Vec<i32>,
    /// Recipients.
    pub emails: Vec<String>,
}

/// Input of `createAgenda`.
#[derive(InputObject)]
pub struct CreateAgendaInput {
    /// Unique short name: lower-case letters, digits and dashes.
    pub slug: String,
    /// Human name.
    pub label: String,
    /// Kind.
    pub kind: AgendaKindGql,
    /// Fill-level notifications to administrators.
    pub fill_notifications: Option<FillNotifications>,
    /// Confirm the first waiting-list booking when a place frees up (default true).
    #[graphql(default = true)]
    pub auto_promote_waiting_list: bool,
    /// Services whose agents manage the agenda; empty means every agent.
    #[graphql(default)]
    pub services: Vec<String>,
    /// Rules of a meetings agenda (kind `MEETINGS` only).
    pub meetings: Option<crate::meetings::MeetingsRulesInput>,
    /// Booking rules of an events agenda (kind `EVENTS` only).
    pub events: Option<crate::events::EventRulesInput>,
    /// Category slug, to list agendas and events by category.
    pub category: Option<String>,
    /// Resources every meeting of a meetings agenda holds (a shared room): its slots are free
    /// only while they are.
    #[graphql(default)]
    pub resource_ids: Vec<ID>,
}

/// A category of agendas.
#[derive(SimpleObject)]
pub struct AgendaCategory {
    /// Its slug (agendas give it as `category`).
    pub slug: String,
    /// How many agendas it holds.
    pub agenda_count: i32,
}

/// An agenda.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Agenda {
    /// Identifier.
    pub id: ID,
    /// Unique short name.
    pub slug: String,
    /// Human name.
    pub label: String,
    /// Kind.
    pub kind: AgendaKindGql,
    /// Automatic waiting-list promotion.
    pub auto_promote_waiting_list: bool,
    /// Services whose agents manage it.
    pub services: Vec<String>,
    /// Category slug.
    pub category: Option<String>,
    /// Resources every meeting holds (meetings agendas).
    pub resource_ids: Vec<ID>,
    #[graphql(skip)]
    pub(crate) fill: actors::agenda::model::FillNotifications,
    #[graphql(skip)]
    pub(crate) event_rules: actors::agenda::rules::EventRules,
    #[graphql(skip)]
    pub(crate) rules: actors::meetings::model::MeetingsRules,
}

impl From<&AgendaSettings> for Agenda {
    fn from(a: &AgendaSettings) -> Self {
        Self {
            id: ID(a.id.to_string()),
            slug: a.slug.clone(),
            label: a.label.clone(),
            kind: a.kind.into(),
            auto_promote_waiting_list: a.auto_promote_waiting_list,
            services: a.services.clone(),
            category: a.category.clone(),
            resource_ids: a.resources.iter().map(|r| ID(r.to_string())).collect(),
            fill: a.fill_notifications.clone(),
            event_rules: a.events.clone(),
            rules: a.meetings.clone(),
        }
    }
}

#[ComplexObject]
impl Agenda {
    /// Fill-level notifications (administrators only; null for others).
    async fn fill_notifications(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<FillNotifications>> {
        let caller = ctx.data::<Caller>()?;
        if !caller.principal.is_admin() {
            return Ok(None);
        }
        Ok(Some(FillNotifications {
            thresholds: self.fill.thresholds.iter().map(|t| i32::from(*t)).collect(),
            emails: self.fill.emails.clone(),
        }))
    }

    /// The agenda's events that the caller may see, by start (events agendas).
    async fn events(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Event>> {
        if self.kind != AgendaKindGql::Events {
            return Ok(Vec::new());
        }
        crate::query::visible_events(ctx, &self.id).await
    }

    /// Booking delays, cancellation deadline, mails and absence reasons (events agendas; null
    /// for others).
    async fn event_rules(&self) -> Option<crate::events::EventRulesView> {
        (self.kind == AgendaKindGql::Events)
            .then(|| crate::events::EventRulesView::from(&self.event_rules))
    }

    /// Recurrence rules (events agendas).
    async fn recurrences(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::events::Recurrence>> {
        if self.kind != AgendaKindGql::Events {
            return Ok(Vec::new());
        }
        let services = ctx.data::<actors::Services>()?;
        let id = crate::query::parse_id::<actors::ids::AgendaId>(&self.id, "agenda")?;
        Ok(services.agendas.recurrences(id).await.gql()?.iter().map(Into::into).collect())
    }

    /// Delays, holds, weekends and holidays (meetings and virtual agendas; null for others).
    async fn meetings_rules(&self) -> Option<MeetingsRulesView> {
        matches!(self.kind, AgendaKindGql::Meetings | AgendaKindGql::Virtual)
            .then(|| MeetingsRulesView::from(&self.rules))
    }

    /// The member agendas of a virtual agenda (empty for others).
    async fn members(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Agenda>> {
        let Some(v) = self.virtual_handle(ctx).await? else { return Ok(Vec::new()) };
        let services = ctx.data::<actors::Services>()?;
        let mut out = Vec::new();
        for id in v.config().await.gql()?.members {
            out.push(Agenda::from(services.meetings.get(id).await.gql()?.settings()));
        }
        Ok(out)
    }

    /// Periods without slots of a virtual agenda (empty for others).
    async fn exclusion_periods(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::meetings::ExclusionPeriod>> {
        let Some(v) = self.virtual_handle(ctx).await? else { return Ok(Vec::new()) };
        Ok(v.config().await.gql()?.exclusions.iter().map(Into::into).collect())
    }

    /// Meeting types (meetings agendas; for virtual agendas, those all members share; empty for
    /// others). Public: citizens choose one.
    async fn meeting_types(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<MeetingType>> {
        if let Some(v) = self.virtual_handle(ctx).await? {
            return Ok(v
                .shared_types()
                .await
                .gql()?
                .iter()
                .filter_map(MeetingType::shared)
                .collect());
        }
        Ok(self
            .meetings_config(ctx, false)
            .await?
            .map_or_else(Vec::new, |c| c.types.iter().map(MeetingType::from).collect()))
    }

    /// Desks (agents of the agenda and administrators; empty for others).
    async fn desks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Desk>> {
        Ok(self
            .meetings_config(ctx, true)
            .await?
            .map_or_else(Vec::new, |c| c.desks.iter().map(Desk::from).collect()))
    }

    /// Opening periods (agents of the agenda and administrators; empty for others).
    async fn opening_periods(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<OpeningPeriod>> {
        Ok(self
            .meetings_config(ctx, true)
            .await?
            .map_or_else(Vec::new, |c| c.periods.iter().map(OpeningPeriod::from).collect()))
    }

    /// Exceptions (agents of the agenda and administrators; empty for others).
    async fn exceptions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TimeException>> {
        Ok(self
            .meetings_config(ctx, true)
            .await?
            .map_or_else(Vec::new, |c| c.exceptions.iter().map(TimeException::from).collect()))
    }
}

impl Agenda {
    async fn virtual_handle(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<actors::meetings::VirtualHandle>> {
        if self.kind != AgendaKindGql::Virtual {
            return Ok(None);
        }
        let services = ctx.data::<actors::Services>()?;
        let id = crate::query::parse_id::<actors::ids::AgendaId>(&self.id, "agenda")?;
        Ok(Some(services.meetings.virtual_agenda(id).await.gql()?))
    }

    /// The configuration of a meetings agenda, if the caller may see it (`agents_only`).
    async fn meetings_config(
        &self,
        ctx: &Context<'_>,
        agents_only: bool,
    ) -> async_graphql::Result<Option<actors::store::MeetingsConfig>> {
        if self.kind != AgendaKindGql::Meetings {
            return Ok(None);
        }
        let caller = ctx.data::<Caller>()?;
        if agents_only
            && caller.may(Action::SeeBookings { agenda_services: &self.services }).is_err()
        {
            return Ok(None);
        }
        let services = ctx.data::<actors::Services>()?;
        let id = crate::query::parse_id::<actors::ids::AgendaId>(&self.id, "agenda")?;
        let handle = services.meetings.get(id).await.gql()?;
        Ok(Some(handle.config().await.gql()?))
    }
}

/// Input of `createEvent`.
#[derive(InputObject)]
pub struct CreateEventInput {
    /// Agenda.
    pub agenda_id: ID,
    /// Human name.
    pub label: String,
    /// Start (RFC 3339 with offset).
    pub starts_at: DateTime,
    /// End.
    pub ends_at: Option<DateTime>,
    /// Confirmed places (0 or more).
    pub places: i32,
    /// Waiting-list places.
    #[graphql(default = 0)]
    pub waiting_list_places: i32,
    /// Free text.
    #[graphql(default)]
    pub description: String,
    /// Link to more information.
    pub url: Option<String>,
    /// Hidden from citizens before this instant.
    pub publication_at: Option<DateTime>,
    /// Rooms or equipment it holds from its start to its end (it then needs `endsAt`); refused
    /// with `CONFLICT` when one is reserved at that time.
    #[graphql(default)]
    pub resource_ids: Vec<ID>,
}

/// Booking states.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum BookingStatus {
    /// Holds a place.
    Confirmed,
    /// Holds a waiting-list place.
    WaitingList,
    /// Cancelled.
    Cancelled,
}

impl From<DomainStatus> for BookingStatus {
    fn from(s: DomainStatus) -> Self {
        match s {
            DomainStatus::Confirmed => BookingStatus::Confirmed,
            DomainStatus::WaitingList => BookingStatus::WaitingList,
            DomainStatus::Cancelled => BookingStatus::Cancelled,
        }
    }
}

/// A booking of one place.
#[derive(SimpleObject, Clone)]
pub struct Booking {
    /// Identifier.
    pub id: ID,
    /// Event.
    pub event_id: ID,
    /// Agenda.
    pub agenda_id: ID,
    /// Owner.
    pub user_id: ID,
    /// State.
    pub status: BookingStatus,
    /// When it was made.
    pub created_at: DateTime,
    /// Attendance: true came, false absent, null not checked.
    pub present: Option<bool>,
    /// The reason given for an absence.
    pub absence_reason: Option<String>,
}

impl From<&BookingView> for Booking {
    fn from(b: &BookingView) -> Self {
        Self {
            id: ID(b.id.to_string()),
            event_id: ID(b.event_id.to_string()),
            agenda_id: ID(b.agenda_id.to_string()),
            user_id: ID(b.account_id.to_string()),
            status: b.status.into(),
            created_at: DateTime(b.created_at),
            present: b.presence.as_ref().map(|p| p.present),
            absence_reason: b.presence.as_ref().and_then(|p| p.absence_reason.clone()),
        }
    }
}

/// Input of `bookEvents`.
#[derive(InputObject)]
pub struct BookEventsInput {
    /// Events to book, all or none (they may belong to several agendas).
    pub event_ids: Vec<ID>,
    /// Book for this user instead of the caller (agents and administrators only).
    pub user_id: Option<ID>,
}

/// A change of a booking, pushed to agents.
#[derive(SimpleObject, Clone)]
pub struct BookingUpdate {
    /// The booking after the change.
    pub booking: Booking,
    /// The event's version after the change: grows with every change of the event.
    pub seq: String,
}

/// The fill level of an event.
#[derive(SimpleObject, Clone)]
pub struct FillLevel {
    /// Event.
    pub event_id: ID,
    /// Confirmed places.
    pub places: i32,
    /// Confirmed bookings.
    pub booked_places: i32,
    /// Waiting-list places.
    pub waiting_list_places: i32,
    /// Waiting-list bookings.
    pub waiting_list_booked: i32,
    /// No booking can be accepted any more, not even on the waiting list.
    pub full: bool,
    /// The event's version: grows with every change, so that clients can drop stale updates.
    pub seq: String,
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl From<DomainFill> for FillLevel {
    fn from(f: DomainFill) -> Self {
        Self {
            event_id: ID(f.event_id.to_string()),
            places: int(f.places),
            booked_places: int(f.booked_places),
            waiting_list_places: int(f.waiting_list_places),
            waiting_list_booked: int(f.waiting_list_booked),
            full: f.full,
            seq: f.seq.to_string(),
        }
    }
}

/// An event.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Event {
    /// Identifier.
    pub id: ID,
    /// Agenda.
    pub agenda_id: ID,
    /// Human name.
    pub label: String,
    /// Free text.
    pub description: String,
    /// Link.
    pub url: Option<String>,
    /// Start.
    pub starts_at: DateTime,
    /// End.
    pub ends_at: Option<DateTime>,
    /// Publication (citizens do not see the event before).
    pub publication_at: Option<DateTime>,
    /// Confirmed places.
    pub places: i32,
    /// Confirmed bookings.
    pub booked_places: i32,
    /// Waiting-list places.
    pub waiting_list_places: i32,
    /// Waiting-list bookings.
    pub waiting_list_booked: i32,
    /// No booking can be accepted any more.
    pub full: bool,
    /// The recurrence it is an occurrence of.
    pub recurrence_id: Option<ID>,
    /// The event was cancelled as a whole.
    pub cancelled: bool,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTime>,
    /// Attendance was checked.
    pub checked: bool,
    /// Rooms or equipment it holds.
    pub resource_ids: Vec<ID>,
    #[graphql(skip)]
    pub(crate) bookings: Option<Vec<Booking>>,
    #[graphql(skip)]
    pub(crate) recurrence: Option<actors::ids::RecurrenceId>,
}

#[ComplexObject]
impl Event {
    /// Active bookings, oldest first (agents of the agenda and administrators only; null for
    /// others).
    async fn bookings(&self) -> Option<Vec<Booking>> {
        self.bookings.clone()
    }

    /// The month it starts in, `YYYY-MM` in Europe/Paris, to group listings.
    async fn month(&self) -> String {
        self.month_key()
    }
}

impl Event {
    /// Converts an event; `bookings` only for callers allowed to see them.
    pub fn from_view(v: EventView, with_bookings: bool) -> Self {
        let bookings = with_bookings.then(|| v.bookings.iter().map(Booking::from).collect());
        let f = v.fill;
        Self {
            id: ID(v.id.to_string()),
            agenda_id: ID(v.agenda_id.to_string()),
            label: v.label,
            description: v.description,
            url: v.url,
            starts_at: DateTime(v.starts_at),
            ends_at: v.ends_at.map(DateTime),
            publication_at: v.publication_at.map(DateTime),
            places: int(f.places),
            booked_places: int(f.booked_places),
            waiting_list_places: int(f.waiting_list_places),
            waiting_list_booked: int(f.waiting_list_booked),
            full: f.full,
            recurrence_id: v.recurrence_id.map(|r| ID(r.to_string())),
            cancelled: v.cancelled_at.is_some(),
            cancelled_at: v.cancelled_at.map(DateTime),
            checked: v.checked,
            resource_ids: v.resources.iter().map(|r| ID(r.to_string())).collect(),
            bookings,
            recurrence: v.recurrence_id,
        }
    }

    /// `YYYY-MM` of its start in Europe/Paris.
    pub fn month_key(&self) -> String {
        self.starts_at.0.to_zoned(actors::time::paris()).strftime("%Y-%m").to_string()
    }
}

/// Delivery states of outgoing mail.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum MailStatus {
    /// Waiting for its next attempt.
    Queued,
    /// Accepted by the SMTP server.
    Sent,
    /// Given up.
    Failed,
    /// No SMTP server configured: kept here.
    Held,
}

impl From<DomainMailStatus> for MailStatus {
    fn from(s: DomainMailStatus) -> Self {
        match s {
            DomainMailStatus::Queued => MailStatus::Queued,
            DomainMailStatus::Sent => MailStatus::Sent,
            DomainMailStatus::Failed => MailStatus::Failed,
            DomainMailStatus::Held => MailStatus::Held,
        }
    }
}

/// A mail of the outbox.
#[derive(SimpleObject)]
pub struct OutboxMail {
    /// Identifier.
    pub id: ID,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Delivery state.
    pub status: MailStatus,
    /// Attempts made.
    pub attempts: i32,
    /// Last failure.
    pub last_error: Option<String>,
    /// Queued at.
    pub created_at: DateTime,
    /// Sent at.
    pub sent_at: Option<DateTime>,
}

impl From<OutboxEntry> for OutboxMail {
    fn from(e: OutboxEntry) -> Self {
        Self {
            id: ID(e.mail.id.to_string()),
            to: e.mail.to,
            subject: e.mail.subject,
            body: e.mail.body,
            status: e.status.into(),
            attempts: int(e.attempts),
            last_error: e.last_error,
            created_at: DateTime(e.mail.created_at),
            sent_at: e.sent_at.map(DateTime),
        }
    }
}
