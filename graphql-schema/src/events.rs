//! Events agendas beyond single bookings, over GraphQL: booking rules, recurring events and
//! season bookings, changing and cancelling events, listings with filters and pages, and
//! attendance checks. Resolvers parse, check `Caller::may`, call the `AgendaRegistry`, convert.

use std::collections::BTreeMap;

use actors::Services;
use actors::access::Action;
use actors::agenda::EventView;
use actors::agenda::model::{AgendaKind, BookRequest, EventPatch, Presence};
use actors::agenda::recurrence::{NewRecurrence, Recurrence as DomainRecurrence};
use actors::agenda::rules::{CitizenNotifications, EventRules};
use actors::ids::{AccountId, AgendaId, EventId, RecurrenceId};
use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use jiff::Timestamp;
use jiff::civil::Date;

use crate::context::Caller;
use crate::error::{BadInput, GqlResultExt};
use crate::meetings::{Weekday, parse_date, parse_time};
use crate::query::{owned_booking, parse_id, parse_ids, read_event};
use crate::scalars::DateTime;
use crate::types::{Booking, Event};

fn non_negative(n: Option<i32>, name: &str) -> async_graphql::Result<Option<u32>> {
    n.map(|v| u32::try_from(v).map_err(|_| BadInput(format!("{name} cannot be negative"))).gql())
        .transpose()
}

/// Booking rules of an events agenda; each defaults to no constraint and no mail.
#[derive(InputObject, Default)]
pub struct EventRulesInput {
    /// Citizens book events starting this many days from today on (default 0: any event to come).
    pub minimal_booking_delay_days: Option<i32>,
    /// Count the minimal delay in working days: no weekends, no French public holidays.
    pub minimal_delay_in_working_days: Option<bool>,
    /// Citizens book events starting before the day this many days from today (default: no limit).
    pub maximal_booking_delay_days: Option<i32>,
    /// Citizens cancel until this many hours before the start (default: until the start).
    /// Agents cancel at any time.
    pub cancellation_deadline_hours: Option<i32>,
    /// Mail citizens when they book, are put on the waiting list or promoted (default false).
    pub notify_citizens_on_booking: Option<bool>,
    /// Mail citizens when their booking is cancelled (default false). A cancelled event always
    /// mails everyone who had booked it.
    pub notify_citizens_on_cancellation: Option<bool>,
    /// Remind citizens of their confirmed bookings this many hours before (1 to 1440), by email
    /// and, when they gave a phone number, by SMS (default: no reminder).
    pub reminder_hours: Option<i32>,
    /// Reasons an agent may give when marking a booking absent.
    pub absence_reasons: Option<Vec<String>>,
}

impl EventRulesInput {
    pub(crate) fn into_rules(self) -> async_graphql::Result<EventRules> {
        Ok(EventRules {
            minimal_booking_delay_days: non_negative(
                self.minimal_booking_delay_days,
                "minimalBookingDelayDays",
            )?
            .unwrap_or(0),
            minimal_delay_in_working_days: self.minimal_delay_in_working_days.unwrap_or(false),
            maximal_booking_delay_days: non_negative(
                self.maximal_booking_delay_days,
                "maximalBookingDelayDays",
            )?,
            cancellation_deadline_hours: non_negative(
                self.cancellation_deadline_hours,
                "cancellationDeadlineHours",
            )?,
            citizen_notifications: CitizenNotifications {
                on_booking: self.notify_citizens_on_booking.unwrap_or(false),
                on_cancellation: self.notify_citizens_on_cancellation.unwrap_or(false),
                reminder_hours: non_negative(self.reminder_hours, "reminderHours")?,
            },
            absence_reasons: self.absence_reasons.unwrap_or_default(),
        })
    }
}

/// Booking rules of an events agenda.
#[derive(SimpleObject)]
pub struct EventRulesView {
    /// Citizens book events starting this many days from today on.
    pub minimal_booking_delay_days: i32,
    /// The minimal delay counts working days.
    pub minimal_delay_in_working_days: bool,
    /// Citizens book events starting before the day this many days from today.
    pub maximal_booking_delay_days: Option<i32>,
    /// Citizens cancel until this many hours before the start.
    pub cancellation_deadline_hours: Option<i32>,
    /// Citizens are mailed when they book.
    pub notify_citizens_on_booking: bool,
    /// Citizens are mailed when their booking is cancelled.
    pub notify_citizens_on_cancellation: bool,
    /// Hours before the event that confirmed citizens are reminded.
    pub reminder_hours: Option<i32>,
    /// Reasons for an absence.
    pub absence_reasons: Vec<String>,
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl From<&EventRules> for EventRulesView {
    fn from(r: &EventRules) -> Self {
        Self {
            minimal_booking_delay_days: int(r.minimal_booking_delay_days),
            minimal_delay_in_working_days: r.minimal_delay_in_working_days,
            maximal_booking_delay_days: r.maximal_booking_delay_days.map(int),
            cancellation_deadline_hours: r.cancellation_deadline_hours.map(int),
            notify_citizens_on_booking: r.citizen_notifications.on_booking,
            notify_citizens_on_cancellation: r.citizen_notifications.on_cancellation,
            reminder_hours: r.citizen_notifications.reminder_hours.map(int),
            absence_reasons: r.absence_reasons.clone(),
        }
    }
}

/// A recurrence rule and the occurrences it generated.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Recurrence {
    /// Identifier.
    pub id: ID,
    /// Agenda.
    pub agenda_id: ID,
    /// Label of the occurrences.
    pub label: String,
    /// Days of the week.
    pub weekdays: Vec<Weekday>,
    /// Every N weeks.
    pub interval_weeks: i32,
    /// Local start time (`HH:MM`, Europe/Paris).
    pub start_time: String,
    /// Duration of each occurrence.
    pub duration_minutes: Option<i32>,
    /// First day (`YYYY-MM-DD`).
    pub first_day: String,
    /// Last day.
    pub last_day: String,
}

impl From<&DomainRecurrence> for Recurrence {
    fn from(r: &DomainRecurrence) -> Self {
        Self {
            id: ID(r.id.to_string()),
            agenda_id: ID(r.agenda_id.to_string()),
            label: r.label.clone(),
            weekdays: r.weekdays.iter().map(|w| Weekday::from(*w)).collect(),
            interval_weeks: int(r.interval_weeks),
            start_time: r.start_time.strftime("%H:%M").to_string(),
            duration_minutes: r.duration_minutes.map(int),
            first_day: r.first_day.to_string(),
            last_day: r.last_day.to_string(),
        }
    }
}

#[ComplexObject]
impl Recurrence {
    /// The occurrences the caller may see, by start (cancelled ones included, marked so).
    async fn occurrences(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Event>> {
        let id: RecurrenceId = parse_id(&self.id, "recurrence")?;
        let events = crate::query::visible_events(ctx, &self.agenda_id).await?;
        Ok(events.into_iter().filter(|e| e.recurrence == Some(id)).collect())
    }
}

/// Input of `createRecurrence`.
#[derive(InputObject)]
pub struct CreateRecurrenceInput {
    /// Events agenda.
    pub agenda_id: ID,
    /// Label of every occurrence.
    pub label: String,
    /// Days of the week.
    pub weekdays: Vec<Weekday>,
    /// Every N weeks (1 to 52), counted from the week of `firstDay`.
    #[graphql(default = 1)]
    pub interval_weeks: i32,
    /// Local start time, `HH:MM` (Europe/Paris, the same on both sides of a DST change).
    pub start_time: String,
    /// Duration of each occurrence.
    pub duration_minutes: Option<i32>,
    /// First day, `YYYY-MM-DD`.
    pub first_day: String,
    /// Last day, inclusive: required (a recurrence must end, at most two years later).
    pub last_day: Option<String>,
    /// Places of each occurrence.
    pub places: i32,
    /// Waiting-list places of each occurrence.
    #[graphql(default = 0)]
    pub waiting_list_places: i32,
    /// Free text.
    #[graphql(default)]
    pub description: String,
    /// Link.
    pub url: Option<String>,
    /// Occurrences are hidden from citizens before this instant.
    pub publication_at: Option<DateTime>,
    /// Rooms or equipment every occurrence holds (needs `durationMinutes`).
    #[graphql(default)]
    pub resource_ids: Vec<ID>,
}

/// The answer to `createRecurrence`.
#[derive(SimpleObject)]
pub struct CreateRecurrencePayload {
    /// The rule.
    pub recurrence: Recurrence,
    /// How many occurrences it generated (none in the past).
    pub occurrence_count: i32,
}

/// Input of `bookRecurrence`.
#[derive(InputObject)]
pub struct BookRecurrenceInput {
    /// The recurrence.
    pub recurrence_id: ID,
    /// First local day to book (default: today).
    pub from: Option<String>,
    /// Last local day to book (default: the recurrence's last day).
    pub to: Option<String>,
    /// Book for this user instead of the caller (agents).
    pub user_id: Option<ID>,
}

/// Input of `updateEvent`: what is not given stays.
#[derive(InputObject)]
pub struct UpdateEventInput {
    /// The event (an occurrence of a recurrence changes alone).
    pub id: ID,
    /// Human name.
    pub label: Option<String>,
    /// Start.
    pub starts_at: Option<DateTime>,
    /// End.
    pub ends_at: Option<DateTime>,
    /// Places: not below the confirmed bookings.
    pub places: Option<i32>,
    /// Waiting-list places: not below the waiting-list bookings.
    pub waiting_list_places: Option<i32>,
    /// Free text.
    pub description: Option<String>,
    /// Link.
    pub url: Option<String>,
    /// Publication.
    pub publication_at: Option<DateTime>,
    /// Resources it holds, replacing the current ones.
    pub resource_ids: Option<Vec<ID>>,
}

/// Which events to list.
#[derive(InputObject, Default)]
pub struct EventFilter {
    /// Only these agendas.
    pub agenda_ids: Option<Vec<ID>>,
    /// Only agendas of this category (slug).
    pub category: Option<String>,
    /// Events starting on this local day or later (`YYYY-MM-DD`).
    pub from: Option<String>,
    /// Events starting on this local day or earlier.
    pub to: Option<String>,
    /// Include events that have started (default false: past events are hidden; citizens never
    /// see them in listings).
    #[graphql(default)]
    pub include_past: bool,
    /// Include cancelled events (default false).
    #[graphql(default)]
    pub include_cancelled: bool,
    /// Leave out full events (default false: full events are listed, marked `full`).
    #[graphql(default)]
    pub only_available: bool,
}

/// Events of one month.
#[derive(SimpleObject)]
pub struct MonthCount {
    /// `YYYY-MM`, in Europe/Paris.
    pub month: String,
    /// Matching events that month (over every page).
    pub count: i32,
}

/// Where a page ends.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// More events follow.
    pub has_next_page: bool,
    /// Pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// A page of events, by start.
#[derive(SimpleObject)]
pub struct EventConnection {
    /// The events of this page.
    pub nodes: Vec<Event>,
    /// Paging.
    pub page_info: PageInfo,
    /// Matching events over every page.
    pub total_count: i32,
    /// Matching events per month, to group a listing.
    pub months: Vec<MonthCount>,
}

/// One booking's attendance.
#[derive(SimpleObject)]
pub struct AttendanceRecord {
    /// The booking.
    pub booking: Booking,
    /// Its event's label.
    pub event_label: String,
    /// Its event's start.
    pub starts_at: DateTime,
}

fn cursor(e: &Event) -> String {
    format!("{}~{}", e.starts_at.0.as_microsecond(), e.id.as_str())
}

fn local_day(t: Timestamp) -> Date {
    t.to_zoned(actors::time::paris()).date()
}

/// Queries of events agendas.
#[derive(Default)]
pub struct EventsQuery;

#[Object]
impl EventsQuery {
    /// Events the caller may see, across agendas, by start: past and cancelled events hidden
    /// unless asked, full events listed as full. `first` is at most 200.
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: EventFilter,
        #[graphql(default = 50, validator(minimum = 1, maximum = 200))] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let services = ctx.data::<Services>()?;
        let from = filter.from.as_deref().map(|d| parse_date(d, "from")).transpose()?;
        let to = filter.to.as_deref().map(|d| parse_date(d, "to")).transpose()?;
        let wanted: Option<Vec<AgendaId>> = filter
            .agenda_ids
            .as_ref()
            .map(|ids| ids.iter().map(|id| parse_id(id, "agenda")).collect())
            .transpose()?;
        let now = Timestamp::now();
        let mut matching = Vec::new();
        for agenda in services.agendas.agendas().await.gql()? {
            if agenda.kind != AgendaKind::Events
                || wanted.as_ref().is_some_and(|w| !w.contains(&agenda.id))
                || filter.category.as_ref().is_some_and(|c| agenda.category.as_ref() != Some(c))
            {
                continue;
            }
            let id = ID(agenda.id.to_string());
            for e in crate::query::visible_events(ctx, &id).await? {
                let day = local_day(e.starts_at.0);
                let keep = (filter.include_past || e.starts_at.0 > now)
                    && (filter.include_cancelled || e.cancelled_at.is_none())
                    && !(filter.only_available && e.full)
                    && from.is_none_or(|f| day >= f)
                    && to.is_none_or(|t| day <= t);
                if keep {
                    matching.push(e);
                }
            }
        }
        matching
            .sort_by(|a, b| (a.starts_at.0, a.id.as_str()).cmp(&(b.starts_at.0, b.id.as_str())));
        let mut months: BTreeMap<String, i32> = BTreeMap::new();
        for e in &matching {
            *months.entry(e.month_key()).or_default() += 1;
        }
        let total_count = i32::try_from(matching.len()).unwrap_or(i32::MAX);
        let start = match after {
            None => 0,
            Some(c) => {
                let (micros, id) = c
                    .split_once('~')
                    .and_then(|(m, id)| Some((m.parse::<i64>().ok()?, id.to_owned())))
                    .ok_or_else(|| BadInput(format!("cursor {c:?} is not valid")))
                    .gql()?;
                matching
                    .iter()
                    .position(|e| {
                        (e.starts_at.0.as_microsecond(), e.id.as_str()) > (micros, id.as_str())
                    })
                    .unwrap_or(matching.len())
            }
        };
        let first = usize::try_from(first).unwrap_or(50);
        let has_next_page = matching.len() > start + first;
        let nodes: Vec<Event> = matching.into_iter().skip(start).take(first).collect();
        Ok(EventConnection {
            page_info: PageInfo { has_next_page, end_cursor: nodes.last().map(cursor) },
            nodes,
            total_count,
            months: months.into_iter().map(|(month, count)| MonthCount { month, count }).collect(),
        })
    }

    /// One recurrence rule; citizens see it like its agenda.
    async fn recurrence(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Recurrence> {
        let services = ctx.data::<Services>()?;
        let rule = services.agendas.recurrence(parse_id(&id, "recurrence")?).await.gql()?;
        Ok(Recurrence::from(&rule))
    }

    /// The attendance of a user over the local days `from` to `to` (inclusive): the user, and
    /// agents for the agendas they manage.
    async fn attendance(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        from: String,
        to: String,
    ) -> async_graphql::Result<Vec<AttendanceRecord>> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        let me = caller.account()?;
        let account: AccountId = match &user_id {
            Some(id) => parse_id(id, "user")?,
            None => me,
        };
        caller.may(Action::SeeAttendance { account })?;
        let (from, to) = (parse_date(&from, "from")?, parse_date(&to, "to")?);
        let mut out = Vec::new();
        for b in services.agendas.bookings_of(account, false).await.gql()? {
            if b.presence.is_none() {
                continue;
            }
            let handle = services.agendas.get(b.agenda_id).await.gql()?;
            if account != me
                && caller
                    .may(Action::SeeBookings { agenda_services: &handle.settings().services })
                    .is_err()
            {
                continue;
            }
            let event = handle.event(b.event_id, false).await.gql()?;
            let day = local_day(event.starts_at);
            if day >= from && day <= to {
                out.push(AttendanceRecord {
                    booking: Booking::from(&b),
                    event_label: event.label,
                    starts_at: DateTime(event.starts_at),
                });
            }
        }
        out.sort_by_key(|r| r.starts_at.0);
        Ok(out)
    }
}

/// A choice a form can offer from an agenda.
#[derive(SimpleObject)]
pub struct DataSourceItem {
    /// What the form stores: an event id, or `<meeting type id>:<start>` for a slot.
    pub id: String,
    /// What the citizen reads (French, Europe/Paris time).
    pub text: String,
    /// Start.
    pub datetime: DateTime,
    /// Shown but not selectable (full, or outside the booking delays).
    pub disabled: bool,
    /// Places left, for events.
    pub places_left: Option<i32>,
}

/// Data sources of agendas, for forms.
#[derive(Default)]
pub struct DataSourceQuery;

#[Object]
impl DataSourceQuery {
    /// The bookable events of an events agenda, or the free slots of `meetingTypeId` in a
    /// meetings or virtual agenda, on the local days `from` to `to` (at most 366 days), as
    /// choices for a form. Open to anyone, like the agenda.
    async fn agenda_datetimes(
        &self,
        ctx: &Context<'_>,
        agenda_id: ID,
        meeting_type_id: Option<ID>,
        from: String,
        to: String,
    ) -> async_graphql::Result<Vec<DataSourceItem>> {
        let services = ctx.data::<Services>()?;
        let (from, to) = (parse_date(&from, "from")?, parse_date(&to, "to")?);
        if to < from || from.until(to).map_or(true, |s| s.get_days() > 366) {
            return Err(BadInput("from..to must span 0 to 366 days".into())).gql();
        }
        let agenda: AgendaId = parse_id(&agenda_id, "agenda")?;
        let meeting_type =
            meeting_type_id.as_ref().map(|t| parse_id(t, "meeting type")).transpose()?;
        let items = actors::datasource::agenda_items(
            &services.agendas,
            &services.meetings,
            agenda,
            meeting_type,
            from,
            to,
        )
        .await
        .gql()?;
        Ok(items
            .into_iter()
            .map(|i| DataSourceItem {
                id: i.id,
                text: i.text,
                datetime: DateTime(i.datetime),
                disabled: i.disabled,
                places_left: i.places_left.map(int),
            })
            .collect())
    }
}

/// A room or piece of equipment that events reserve.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Resource {
    /// Identifier.
    pub id: ID,
    /// Unique short name.
    pub slug: String,
    /// Human name.
    pub label: String,
}

impl From<actors::resources::Resource> for Resource {
    fn from(r: actors::resources::Resource) -> Self {
        Self { id: ID(r.id.to_string()), slug: r.slug, label: r.label }
    }
}

/// A resource held over a span.
#[derive(SimpleObject)]
pub struct Reservation {
    /// What holds it (`event-<id>`).
    pub owner: String,
    /// Start.
    pub starts_at: DateTime,
    /// End.
    pub ends_at: DateTime,
}

#[ComplexObject]
impl Resource {
    /// Its reservations overlapping `from`..`to`, by start.
    async fn reservations(
        &self,
        ctx: &Context<'_>,
        from: DateTime,
        to: DateTime,
    ) -> async_graphql::Result<Vec<Reservation>> {
        let services = ctx.data::<Services>()?;
        let id = parse_id(&self.id, "resource")?;
        Ok(services
            .resources
            .reservations(id, from.0, to.0)
            .await
            .gql()?
            .into_iter()
            .map(|r| Reservation {
                owner: r.owner,
                starts_at: DateTime(r.starts_at),
                ends_at: DateTime(r.ends_at),
            })
            .collect())
    }
}

/// Resources.
#[derive(Default)]
pub struct ResourceQuery;

#[Object]
impl ResourceQuery {
    /// Every resource, by label (agents and administrators).
    async fn resources(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Resource>> {
        let services = ctx.data::<Services>()?;
        ctx.data::<Caller>()?.may(Action::SeeBookings { agenda_services: &[] })?;
        Ok(services.resources.list().await.gql()?.into_iter().map(Into::into).collect())
    }
}

/// Mutations of resources.
#[derive(Default)]
pub struct ResourceMutation;

#[Object]
impl ResourceMutation {
    /// Creates a resource (administrators).
    async fn create_resource(
        &self,
        ctx: &Context<'_>,
        slug: String,
        label: String,
    ) -> async_graphql::Result<Resource> {
        let services = ctx.data::<Services>()?;
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        Ok(services.resources.create(&slug, &label).await.gql()?.into())
    }
}

/// Mutations of events agendas.
#[derive(Default)]
pub struct EventsMutation;

#[Object]
impl EventsMutation {
    /// Creates recurring events (administrators): one occurrence per matching day from
    /// `firstDay` to `lastDay`, at `startTime` local time; a time skipped by a DST change on one
    /// of those days is refused.
    async fn create_recurrence(
        &self,
        ctx: &Context<'_>,
        input: CreateRecurrenceInput,
    ) -> async_graphql::Result<CreateRecurrencePayload> {
        let services = ctx.data::<Services>()?;
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let agenda: AgendaId = parse_id(&input.agenda_id, "agenda")?;
        let rule = NewRecurrence {
            label: input.label,
            weekdays: input.weekdays.into_iter().map(Into::into).collect(),
            interval_weeks: u32::try_from(input.interval_weeks).unwrap_or(0),
            start_time: parse_time(&input.start_time, "startTime")?,
            duration_minutes: non_negative(input.duration_minutes, "durationMinutes")?,
            first_day: parse_date(&input.first_day, "firstDay")?,
            last_day: input.last_day.as_deref().map(|d| parse_date(d, "lastDay")).transpose()?,
            places: i64::from(input.places),
            waiting_list_places: i64::from(input.waiting_list_places),
            description: input.description,
            url: input.url,
            publication_at: input.publication_at.map(|d| d.0),
            resources: parse_ids(&input.resource_ids, "resource")?,
        };
        let (rule, count) = services.agendas.add_recurrence(agenda, rule).await.gql()?;
        Ok(CreateRecurrencePayload {
            recurrence: Recurrence::from(&rule),
            occurrence_count: i32::try_from(count).unwrap_or(i32::MAX),
        })
    }

    /// Books every occurrence of a recurrence from `from` to `to` that can be booked now, for
    /// the caller (or, for agents, `userId`): all or none. Occurrences already booked stay as
    /// they are. When some are full, fails with `FULL` and lists them in
    /// `extensions.fullEventIds`.
    async fn book_recurrence(
        &self,
        ctx: &Context<'_>,
        input: BookRecurrenceInput,
    ) -> async_graphql::Result<Vec<Booking>> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        let me = caller.account()?;
        let owner = match &input.user_id {
            Some(id) => parse_id::<AccountId>(id, "user")?,
            None => me,
        };
        let rule = services
            .agendas
            .recurrence(parse_id(&input.recurrence_id, "recurrence")?)
            .await
            .gql()?;
        let handle = services.agendas.get(rule.agenda_id).await.gql()?;
        let agents = &handle.settings().services;
        caller.may(Action::Book { agenda_services: agents, for_account: owner })?;
        let by_agent = caller.may(Action::SeeBookings { agenda_services: agents }).is_ok();
        if owner != me {
            services.accounts.get(owner).await.gql()?;
        }
        let from = input.from.as_deref().map(|d| parse_date(d, "from")).transpose()?;
        let to = input.to.as_deref().map(|d| parse_date(d, "to")).transpose()?;
        let request = BookRequest {
            event_ids: Vec::new(),
            account_id: owner,
            booked_by: me,
            by_agent,
            skip_already_booked: true,
        };
        let bookings = services.agendas.book_recurrence(&rule, request, from, to).await.gql()?;
        Ok(bookings.iter().map(Booking::from).collect())
    }

    /// Copies an agenda under a new slug (administrators): its settings, and with `withEvents`
    /// its recurrences and events to come (no booking); a meetings agenda brings its meeting
    /// types, desks, opening periods and exceptions to come, a virtual one its members and
    /// exclusion periods.
    async fn duplicate_agenda(
        &self,
        ctx: &Context<'_>,
        agenda_id: ID,
        slug: String,
        label: Option<String>,
        #[graphql(default)] with_events: bool,
    ) -> async_graphql::Result<crate::types::Agenda> {
        let services = ctx.data::<Services>()?;
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let source: AgendaId = parse_id(&agenda_id, "agenda")?;
        let copy = actors::duplicate::duplicate_agenda(
            &services.agendas,
            &services.meetings,
            source,
            slug,
            label,
            with_events,
        )
        .await
        .gql()?;
        Ok(crate::types::Agenda::from(&copy))
    }

    /// Copies an event to another start (administrators): same duration, places and texts,
    /// no booking.
    async fn duplicate_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        starts_at: DateTime,
        label: Option<String>,
    ) -> async_graphql::Result<Event> {
        let services = ctx.data::<Services>()?;
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let event: EventId = parse_id(&id, "event")?;
        let view = actors::duplicate::duplicate_event(&services.agendas, event, starts_at.0, label)
            .await
            .gql()?;
        Ok(Event::from_view(view, false))
    }

    /// Changes an event (administrators); an occurrence of a recurrence changes alone.
    async fn update_event(
        &self,
        ctx: &Context<'_>,
        input: UpdateEventInput,
    ) -> async_graphql::Result<Event> {
        let services = ctx.data::<Services>()?;
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let id: EventId = parse_id(&input.id, "event")?;
        let patch = EventPatch {
            label: input.label,
            starts_at: input.starts_at.map(|d| d.0),
            ends_at: input.ends_at.map(|d| d.0),
            places: input.places.map(i64::from),
            waiting_list_places: input.waiting_list_places.map(i64::from),
            description: input.description,
            url: input.url,
            publication_at: input.publication_at.map(|d| d.0),
            resources: input
                .resource_ids
                .as_deref()
                .map(|ids| parse_ids(ids, "resource"))
                .transpose()?,
        };
        let (view, _) = services.agendas.update_event(id, patch).await.gql()?;
        Ok(Event::from_view(view, false))
    }

    /// Cancels a whole event (agents of its agenda): every booking is cancelled, everyone who
    /// had booked is mailed, and the agenda's notification addresses are told.
    async fn cancel_event(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Event> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        caller.account()?;
        let id: EventId = parse_id(&id, "event")?;
        let handle = services.agendas.agenda_of_event(id).await.gql()?;
        caller.may(Action::ManageEvents { agenda_services: &handle.settings().services })?;
        services.agendas.cancel_event(id).await.gql()?;
        Ok(read_event(ctx, id).await?.1)
    }

    /// Records whether a confirmed booking's holder came (agents of its agenda), from the
    /// event's day on. `present: null` clears the record; an absence may give one of the
    /// agenda's absence reasons.
    async fn mark_attendance(
        &self,
        ctx: &Context<'_>,
        booking_id: ID,
        present: Option<bool>,
        absence_reason: Option<String>,
    ) -> async_graphql::Result<Booking> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        let booking = owned_booking(ctx, &booking_id).await?;
        let handle = services.agendas.get(booking.agenda_id).await.gql()?;
        caller.may(Action::ManageEvents { agenda_services: &handle.settings().services })?;
        let presence = match (present, absence_reason) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(BadInput("an absence reason needs present: false".into())).gql();
            }
            (Some(present), reason) => Some(Presence { present, absence_reason: reason }),
        };
        Ok(Booking::from(&services.agendas.mark_presence(&booking, presence).await.gql()?))
    }

    /// Marks an event's attendance as checked (agents of its agenda), or reopens it.
    async fn mark_event_checked(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
        #[graphql(default = true)] checked: bool,
    ) -> async_graphql::Result<Event> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        caller.account()?;
        let id: EventId = parse_id(&event_id, "event")?;
        let handle = services.agendas.agenda_of_event(id).await.gql()?;
        caller.may(Action::ManageEvents { agenda_services: &handle.settings().services })?;
        let view: EventView = services.agendas.mark_checked(id, checked).await.gql()?;
        Ok(Event::from_view(view, true))
    }
}
