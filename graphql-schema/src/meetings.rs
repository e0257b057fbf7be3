//! Meetings agendas over GraphQL: the wire types, and the query, mutation and subscription parts
//! merged into the roots. Resolvers parse, check `Caller::may`, call a `MeetingsHandle`, convert.

use actors::Services;
use actors::access::Action;
use actors::ids::{AccountId, AgendaId, DeskId, MeetingId, MeetingTypeId};
use actors::meetings::model::{
    Desk as DomainDesk, Meeting as DomainMeeting, MeetingStatus as DomainStatus,
    MeetingType as DomainType, MeetingsRules, NewException, NewMeetingType, NewPeriods,
    OpeningPeriod as DomainPeriod, PeriodRule, Slot as DomainSlot, SlotRequest,
    TimeException as DomainException,
};
use actors::meetings::{MeetingsHandle, SlotAgenda};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, Subscription};
use futures_util::stream::{self, Stream, StreamExt};
use jiff::civil::{Date, Time, Weekday as CivilWeekday};
use tokio_stream::wrappers::BroadcastStream;

use crate::context::Caller;
use crate::error::{BadInput, GqlResultExt};
use crate::query::{parse_id, parse_ids};
use crate::scalars::DateTime;
use crate::subscription::{Open, until_session_ends};

/// Days of the week.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

impl From<Weekday> for CivilWeekday {
    fn from(w: Weekday) -> Self {
        match w {
            Weekday::Monday => CivilWeekday::Monday,
            Weekday::Tuesday => CivilWeekday::Tuesday,
            Weekday::Wednesday => CivilWeekday::Wednesday,
            Weekday::Thursday => CivilWeekday::Thursday,
            Weekday::Friday => CivilWeekday::Friday,
            Weekday::Saturday => CivilWeekday::Saturday,
            Weekday::Sunday => CivilWeekday::Sunday,
        }
    }
}

impl From<CivilWeekday> for Weekday {
    fn from(w: CivilWeekday) -> Self {
        match w {
            CivilWeekday::Monday => Weekday::Monday,
            CivilWeekday::Tuesday => Weekday::Tuesday,
            CivilWeekday::Wednesday => Weekday::Wednesday,
            CivilWeekday::Thursday => Weekday::Thursday,
            CivilWeekday::Friday => Weekday::Friday,
            CivilWeekday::Saturday => Weekday::Saturday,
            CivilWeekday::Sunday => Weekday::Sunday,
        }
    }
}

/// Rules of a meetings agenda (each defaults to Chrono's behaviour).
#[derive(InputObject, Default)]
pub struct MeetingsRulesInput {
    /// No slot on Saturdays and Sundays (default false).
    pub hide_weekends: Option<bool>,
    /// Closed on French public holidays (default true).
    pub closed_on_public_holidays: Option<bool>,
    /// Slots start no earlier than this many days from today; 0 means from now (default 1).
    pub minimal_booking_delay_days: Option<i32>,
    /// Slots start before the day this many days from today (default 56).
    pub maximal_booking_delay_days: Option<i32>,
    /// How long `holdSlot` keeps a slot, in minutes (default 15).
    pub hold_minutes: Option<i32>,
    /// Mail citizens when they book a slot and when it is cancelled (default false).
    pub notify_citizens: Option<bool>,
    /// Remind citizens this many hours before their appointment, by email and, when they gave
    /// a number, by SMS (1 to 1440; default: no reminder).
    pub reminder_hours: Option<i32>,
}

fn non_negative(n: i32, name: &str) -> async_graphql::Result<u32> {
    u32::try_from(n).map_err(|_| BadInput(format!("{name} cannot be negative"))).gql()
}

impl MeetingsRulesInput {
    /// The rules, defaults filled in (validated by the domain).
    pub(crate) fn into_rules(self) -> async_graphql::Result<MeetingsRules> {
        let d = MeetingsRules::default();
        Ok(MeetingsRules {
            hide_weekends: self.hide_weekends.unwrap_or(d.hide_weekends),
            closed_on_public_holidays: self
                .closed_on_public_holidays
                .unwrap_or(d.closed_on_public_holidays),
            minimal_booking_delay_days: match self.minimal_booking_delay_days {
                Some(n) => non_negative(n, "minimalBookingDelayDays")?,
                None => d.minimal_booking_delay_days,
            },
            maximal_booking_delay_days: match self.maximal_booking_delay_days {
                Some(n) => non_negative(n, "maximalBookingDelayDays")?,
                None => d.maximal_booking_delay_days,
            },
            hold_minutes: match self.hold_minutes {
                Some(n) => non_negative(n, "holdMinutes")?,
                None => d.hold_minutes,
            },
            notify_citizens: self.notify_citizens.unwrap_or(d.notify_citizens),
            reminder_hours: self
                .reminder_hours
                .map(|n| non_negative(n, "reminderHours"))
                .transpose()?,
        })
    }
}

/// Rules of a meetings agenda.
#[derive(SimpleObject)]
pub struct MeetingsRulesView {
    /// No slot on Saturdays and Sundays.
    pub hide_weekends: bool,
    /// Closed on French public holidays.
    pub closed_on_public_holidays: bool,
    /// Slots start no earlier than this many days from today (0: from now).
    pub minimal_booking_delay_days: i32,
    /// Slots start before the day this many days from today.
    pub maximal_booking_delay_days: i32,
    /// How long a hold lasts, in minutes.
    pub hold_minutes: i32,
    /// Citizens are mailed when they book and when a booking is cancelled.
    pub notify_citizens: bool,
    /// Hours before an appointment that citizens are reminded.
    pub reminder_hours: Option<i32>,
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl From<&MeetingsRules> for MeetingsRulesView {
    fn from(r: &MeetingsRules) -> Self {
        Self {
            hide_weekends: r.hide_weekends,
            closed_on_public_holidays: r.closed_on_public_holidays,
            minimal_booking_delay_days: int(r.minimal_booking_delay_days),
            maximal_booking_delay_days: int(r.maximal_booking_delay_days),
            hold_minutes: int(r.hold_minutes),
            notify_citizens: r.notify_citizens,
            reminder_hours: r.reminder_hours.map(int),
        }
    }
}

/// A kind of meeting: a label and a duration.
#[derive(SimpleObject, Clone, PartialEq)]
pub struct MeetingType {
    /// Identifier.
    pub id: ID,
    /// Short name, unique in the agenda (virtual agendas match their members' types by slug
    /// and duration).
    pub slug: String,
    /// Human name.
    pub label: String,
    /// Duration in minutes.
    pub duration_minutes: i32,
}

impl MeetingType {
    /// A type all members of a virtual agenda share, shown with the first member's id.
    pub(crate) fn shared(t: &actors::meetings::virtual_agenda::SharedType) -> Option<Self> {
        Some(Self {
            id: ID(t.id()?.to_string()),
            slug: t.slug.clone(),
            label: t.label.clone(),
            duration_minutes: int(t.duration_minutes),
        })
    }
}

/// A period without slots in a virtual agenda.
#[derive(SimpleObject, Clone)]
pub struct ExclusionPeriod {
    /// Identifier.
    pub id: ID,
    /// The weekday of a weekly or monthly period.
    pub weekday: Option<Weekday>,
    /// For a monthly period, which occurrences of the weekday.
    pub weeks_of_month: Option<Vec<i32>>,
    /// The date of a one-off period.
    pub date: Option<String>,
    /// Start, local (`HH:MM`).
    pub start_time: String,
    /// End, local (`HH:MM`).
    pub end_time: String,
}

impl From<&actors::meetings::virtual_agenda::Exclusion> for ExclusionPeriod {
    fn from(e: &actors::meetings::virtual_agenda::Exclusion) -> Self {
        let (weekday, weeks_of_month, date) = rule_parts(&e.rule);
        Self {
            id: ID(e.id.to_string()),
            weekday,
            weeks_of_month,
            date,
            start_time: e.start.strftime("%H:%M").to_string(),
            end_time: e.end.strftime("%H:%M").to_string(),
        }
    }
}

type RuleParts = (Option<Weekday>, Option<Vec<i32>>, Option<String>);

fn rule_parts(rule: &PeriodRule) -> RuleParts {
    match rule {
        PeriodRule::Weekly(w) => (Some((*w).into()), None, None),
        PeriodRule::MonthlyNth { weekday, nths } => {
            (Some((*weekday).into()), Some(nths.iter().map(|n| i32::from(*n)).collect()), None)
        }
        PeriodRule::Date(d) => (None, None, Some(d.to_string())),
    }
}

/// The rule of days given by `weekday`, `weeksOfMonth` and `date`.
fn rule_of(
    weekday: Option<Weekday>,
    weeks_of_month: Option<Vec<i32>>,
    date: Option<String>,
) -> async_graphql::Result<PeriodRule> {
    Ok(match (weekday, weeks_of_month, date) {
        (Some(w), None, None) => PeriodRule::Weekly(w.into()),
        (Some(w), Some(weeks), None) => PeriodRule::MonthlyNth {
            weekday: w.into(),
            nths: weeks.iter().map(|n| i8::try_from(*n).unwrap_or(i8::MAX)).collect(),
        },
        (None, None, Some(d)) => PeriodRule::Date(parse_date(&d, "date")?),
        _ => {
            return Err(BadInput(
                "give either weekday (with optional weeksOfMonth) or date".into(),
            ))
            .gql();
        }
    })
}

/// Input of `addExclusionPeriod`: either `weekday` (with `weeksOfMonth`), or `date`.
#[derive(InputObject)]
pub struct AddExclusionPeriodInput {
    /// A virtual agenda.
    pub agenda_id: ID,
    /// Every week on this day (or on some weeks of the month with `weeksOfMonth`).
    pub weekday: Option<Weekday>,
    /// Occurrences of `weekday` in the month: 1 to 5, -1 for the last.
    pub weeks_of_month: Option<Vec<i32>>,
    /// One date (`YYYY-MM-DD`), instead of `weekday`.
    pub date: Option<String>,
    /// Start, local (`HH:MM`).
    pub start_time: String,
    /// End, local (`HH:MM`).
    pub end_time: String,
}

impl From<&DomainType> for MeetingType {
    fn from(t: &DomainType) -> Self {
        Self {
            id: ID(t.id.to_string()),
            slug: t.slug.clone(),
            label: t.label.clone(),
            duration_minutes: int(t.duration_minutes),
        }
    }
}

/// A desk ("guichet").
#[derive(SimpleObject, Clone)]
pub struct Desk {
    /// Identifier.
    pub id: ID,
    /// Human name.
    pub label: String,
}

impl From<&DomainDesk> for Desk {
    fn from(d: &DomainDesk) -> Self {
        Self { id: ID(d.id.to_string()), label: d.label.clone() }
    }
}

/// When a desk is open.
#[derive(SimpleObject, Clone)]
pub struct OpeningPeriod {
    /// Identifier.
    pub id: ID,
    /// The desk.
    pub desk_id: ID,
    /// The weekday of a weekly or monthly period.
    pub weekday: Option<Weekday>,
    /// For a monthly period, which occurrences of the weekday (1 to 5, -1 for the last).
    pub weeks_of_month: Option<Vec<i32>>,
    /// The date of a one-off period (`YYYY-MM-DD`).
    pub date: Option<String>,
    /// Opening time, local (`HH:MM`).
    pub start_time: String,
    /// Closing time, local (`HH:MM`).
    pub end_time: String,
}

impl From<&DomainPeriod> for OpeningPeriod {
    fn from(p: &DomainPeriod) -> Self {
        let (weekday, weeks_of_month, date) = rule_parts(&p.rule);
        Self {
            id: ID(p.id.to_string()),
            desk_id: ID(p.desk_id.to_string()),
            weekday,
            weeks_of_month,
            date,
            start_time: p.start.strftime("%H:%M").to_string(),
            end_time: p.end.strftime("%H:%M").to_string(),
        }
    }
}

/// A closure of some desks.
#[derive(SimpleObject, Clone)]
pub struct TimeException {
    /// Identifier.
    pub id: ID,
    /// The desks it closes.
    pub desk_ids: Vec<ID>,
    /// Start.
    pub starts_at: DateTime,
    /// End.
    pub ends_at: DateTime,
    /// Why.
    pub label: String,
}

impl From<&DomainException> for TimeException {
    fn from(e: &DomainException) -> Self {
        Self {
            id: ID(e.id.to_string()),
            desk_ids: e.desk_ids.iter().map(|d| ID(d.to_string())).collect(),
            starts_at: DateTime(e.starts_at),
            ends_at: DateTime(e.ends_at),
            label: e.label.clone(),
        }
    }
}

/// A free slot.
#[derive(SimpleObject, Clone, PartialEq)]
pub struct Slot {
    /// Start (book it with this value).
    pub starts_at: DateTime,
    /// End.
    pub ends_at: DateTime,
    /// How many desks are free for it.
    pub free_desks: i32,
}

impl From<&DomainSlot> for Slot {
    fn from(s: &DomainSlot) -> Self {
        Self {
            starts_at: DateTime(s.starts_at),
            ends_at: DateTime(s.ends_at),
            free_desks: i32::try_from(s.free_desks.len()).unwrap_or(i32::MAX),
        }
    }
}

/// The free slots of a query, pushed again at every change.
#[derive(SimpleObject, Clone)]
pub struct SlotsUpdate {
    /// Counts the updates of this subscription, from 1.
    pub seq: String,
    /// The free slots now.
    pub slots: Vec<Slot>,
}

/// States of a meeting.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum MeetingStatus {
    /// Held for a while under a lock code.
    Held,
    /// Booked.
    Confirmed,
    /// Cancelled or released.
    Cancelled,
}

impl From<DomainStatus> for MeetingStatus {
    fn from(s: DomainStatus) -> Self {
        match s {
            DomainStatus::Held => MeetingStatus::Held,
            DomainStatus::Confirmed => MeetingStatus::Confirmed,
            DomainStatus::Cancelled => MeetingStatus::Cancelled,
        }
    }
}

/// A booked or held slot on one desk.
#[derive(SimpleObject, Clone)]
pub struct Meeting {
    /// Identifier.
    pub id: ID,
    /// Agenda.
    pub agenda_id: ID,
    /// Meeting type.
    pub meeting_type_id: ID,
    /// The desk it takes.
    pub desk_id: ID,
    /// Start.
    pub starts_at: DateTime,
    /// End.
    pub ends_at: DateTime,
    /// State.
    pub status: MeetingStatus,
    /// Owner (none for a hold).
    pub user_id: Option<ID>,
    /// When a hold lapses.
    pub hold_until: Option<DateTime>,
    /// When it was made.
    pub created_at: DateTime,
}

impl From<&DomainMeeting> for Meeting {
    fn from(m: &DomainMeeting) -> Self {
        Self {
            id: ID(m.id.to_string()),
            agenda_id: ID(m.agenda_id.to_string()),
            meeting_type_id: ID(m.meeting_type_id.to_string()),
            desk_id: ID(m.desk_id.to_string()),
            starts_at: DateTime(m.starts_at),
            ends_at: DateTime(m.ends_at),
            status: m.status.into(),
            user_id: m.account_id.map(|a| ID(a.to_string())),
            hold_until: m.hold_until.map(DateTime),
            created_at: DateTime(m.created_at),
        }
    }
}

/// Input of `createMeetingType`.
#[derive(InputObject)]
pub struct CreateMeetingTypeInput {
    /// A meetings agenda.
    pub agenda_id: ID,
    /// Human name.
    pub label: String,
    /// Short name (lower-case letters, digits, dashes); derived from the label when not given.
    pub slug: Option<String>,
    /// Duration in minutes, a multiple of 5.
    pub duration_minutes: i32,
}

/// Input of `createDesk`.
#[derive(InputObject)]
pub struct CreateDeskInput {
    /// A meetings agenda.
    pub agenda_id: ID,
    /// Human name.
    pub label: String,
}

/// Input of `addOpeningPeriods`: either `weekday` (with `weeksOfMonth` for "the 2nd and 4th
/// Wednesday"), or `date` for one day.
#[derive(InputObject)]
pub struct AddOpeningPeriodsInput {
    /// A meetings agenda.
    pub agenda_id: ID,
    /// The desks to open, one period each.
    pub desk_ids: Vec<ID>,
    /// Every week on this day (or on some weeks of the month with `weeksOfMonth`).
    pub weekday: Option<Weekday>,
    /// Occurrences of `weekday` in the month: 1 to 5, -1 for the last.
    pub weeks_of_month: Option<Vec<i32>>,
    /// One date (`YYYY-MM-DD`), instead of `weekday`.
    pub date: Option<String>,
    /// Opening time, local (`HH:MM`, a multiple of 5 minutes).
    pub start_time: String,
    /// Closing time, local (`HH:MM`).
    pub end_time: String,
}

/// Input of `addException`.
#[derive(InputObject)]
pub struct AddExceptionInput {
    /// A meetings agenda.
    pub agenda_id: ID,
    /// The desks to close; empty closes every desk of the agenda.
    #[graphql(default)]
    pub desk_ids: Vec<ID>,
    /// Start.
    pub starts_at: DateTime,
    /// End.
    pub ends_at: DateTime,
    /// Why ("Formation", "Fermeture exceptionnelle").
    pub label: String,
}

/// Input of `bookSlot`.
#[derive(InputObject)]
pub struct BookSlotInput {
    /// A meetings agenda.
    pub agenda_id: ID,
    /// Meeting type.
    pub meeting_type_id: ID,
    /// The slot's start, as listed by `freeSlots`.
    pub starts_at: DateTime,
    /// The lock code of the caller's hold on this slot, to take it over.
    pub lock_code: Option<String>,
    /// Book for this user instead of the caller (agents and administrators only).
    pub user_id: Option<ID>,
}

/// Input of `holdSlot`.
#[derive(InputObject)]
pub struct HoldSlotInput {
    /// A meetings agenda.
    pub agenda_id: ID,
    /// Meeting type.
    pub meeting_type_id: ID,
    /// The slot's start.
    pub starts_at: DateTime,
    /// A code of 8 to 128 characters known only to the caller (a form session); one code holds
    /// one slot at a time.
    pub lock_code: String,
}

pub(crate) fn parse_date(s: &str, name: &str) -> async_graphql::Result<Date> {
    s.trim()
        .parse::<Date>()
        .map_err(|_| BadInput(format!("{name} {s:?} is not a date like 2026-06-01")))
        .gql()
}

pub(crate) fn parse_time(s: &str, name: &str) -> async_graphql::Result<Time> {
    let t = s.trim();
    // `HH:MM`, or `HH:MM:SS`; nothing looser.
    let well_formed = (t.len() == 5 || t.len() == 8) && t.as_bytes().get(2) == Some(&b':');
    t.parse::<Time>()
        .ok()
        .filter(|_| well_formed)
        .ok_or_else(|| BadInput(format!("{name} {s:?} is not a time like 09:30")))
        .gql()
}

/// The meetings or virtual agenda behind an id, for slots and bookings.
async fn slot_agenda(ctx: &Context<'_>, id: &ID) -> async_graphql::Result<SlotAgenda> {
    let services = ctx.data::<Services>()?;
    services.meetings.slot_agenda(parse_id::<AgendaId>(id, "agenda")?).await.gql()
}

/// The meetings agenda behind an id.
async fn meetings_agenda(ctx: &Context<'_>, id: &ID) -> async_graphql::Result<MeetingsHandle> {
    let services = ctx.data::<Services>()?;
    services.meetings.get(parse_id::<AgendaId>(id, "agenda")?).await.gql()
}

/// Queries about meetings agendas.
#[derive(Default)]
pub struct MeetingsQuery;

#[Object]
impl MeetingsQuery {
    /// The free slots of a meeting type starting on the local days `from` to `to` (inclusive,
    /// at most 366 days), within the agenda's booking delays. Open to anyone. Slots held under
    /// `lockCode` count as free for that code's holder. Agents of the agenda may set
    /// `ignoreDelays`.
    // Each GraphQL argument is a parameter of the resolver; an input object would only make the
    // query heavier to write for front ends.
    #[allow(clippy::too_many_arguments)]
    async fn free_slots(
        &self,
        ctx: &Context<'_>,
        agenda_id: ID,
        meeting_type_id: ID,
        from: String,
        to: String,
        lock_code: Option<String>,
        #[graphql(default)] ignore_delays: bool,
    ) -> async_graphql::Result<Vec<Slot>> {
        let handle = slot_agenda(ctx, &agenda_id).await?;
        let caller = ctx.data::<Caller>()?;
        if ignore_delays {
            caller.may(Action::SeeBookings { agenda_services: &handle.settings().services })?;
        }
        let mt: MeetingTypeId = parse_id(&meeting_type_id, "meeting type")?;
        let (from, to) = (parse_date(&from, "from")?, parse_date(&to, "to")?);
        let slots = handle.slots(mt, from, to, lock_code, ignore_delays).await.gql()?;
        Ok(slots.iter().map(Slot::from).collect())
    }

    /// The active meetings of an agenda starting on the local days `from` to `to` (agents of
    /// the agenda and administrators).
    async fn agenda_meetings(
        &self,
        ctx: &Context<'_>,
        agenda_id: ID,
        from: String,
        to: String,
    ) -> async_graphql::Result<Vec<Meeting>> {
        let caller = ctx.data::<Caller>()?;
        caller.account()?;
        let handle = meetings_agenda(ctx, &agenda_id).await?;
        caller.may(Action::SeeBookings { agenda_services: &handle.settings().services })?;
        let (from, to) = (parse_date(&from, "from")?, parse_date(&to, "to")?);
        Ok(handle.meetings(from, to).await.gql()?.iter().map(Meeting::from).collect())
    }

    /// The caller's meetings, newest first; cancelled ones on request.
    async fn my_meetings(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] include_cancelled: bool,
    ) -> async_graphql::Result<Vec<Meeting>> {
        let services = ctx.data::<Services>()?;
        let me = ctx.data::<Caller>()?.account()?;
        let meetings = services.meetings.meetings_of(me, include_cancelled).await.gql()?;
        Ok(meetings.iter().map(Meeting::from).collect())
    }
}

/// Mutations about meetings agendas.
#[derive(Default)]
pub struct MeetingsMutation;

#[Object]
impl MeetingsMutation {
    /// Adds a meeting type to a meetings agenda (administrators).
    async fn create_meeting_type(
        &self,
        ctx: &Context<'_>,
        input: CreateMeetingTypeInput,
    ) -> async_graphql::Result<MeetingType> {
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let handle = meetings_agenda(ctx, &input.agenda_id).await?;
        let t = handle
            .add_meeting_type(NewMeetingType {
                label: input.label,
                slug: input.slug,
                duration_minutes: i64::from(input.duration_minutes),
            })
            .await
            .gql()?;
        Ok(MeetingType::from(&t))
    }

    /// Adds a desk to a meetings agenda (administrators).
    async fn create_desk(
        &self,
        ctx: &Context<'_>,
        input: CreateDeskInput,
    ) -> async_graphql::Result<Desk> {
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let handle = meetings_agenda(ctx, &input.agenda_id).await?;
        Ok(Desk::from(&handle.add_desk(input.label).await.gql()?))
    }

    /// Opens desks on a weekday, some weeks of the month, or one date (administrators). Refused
    /// when it overlaps a period of one of the desks, all or none.
    async fn add_opening_periods(
        &self,
        ctx: &Context<'_>,
        input: AddOpeningPeriodsInput,
    ) -> async_graphql::Result<Vec<OpeningPeriod>> {
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let handle = meetings_agenda(ctx, &input.agenda_id).await?;
        let rule = rule_of(input.weekday, input.weeks_of_month, input.date)?;
        let desk_ids: Vec<DeskId> = parse_ids(&input.desk_ids, "desk")?;
        let periods = handle
            .add_periods(NewPeriods {
                desk_ids,
                rule,
                start: parse_time(&input.start_time, "startTime")?,
                end: parse_time(&input.end_time, "endTime")?,
            })
            .await
            .gql()?;
        Ok(periods.iter().map(OpeningPeriod::from).collect())
    }

    /// Closes desks for a while (administrators); no desk means every desk.
    async fn add_exception(
        &self,
        ctx: &Context<'_>,
        input: AddExceptionInput,
    ) -> async_graphql::Result<TimeException> {
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let handle = meetings_agenda(ctx, &input.agenda_id).await?;
        let desk_ids: Vec<DeskId> = parse_ids(&input.desk_ids, "desk")?;
        let e = handle
            .add_exception(NewException {
                desk_ids,
                starts_at: input.starts_at.0,
                ends_at: input.ends_at.0,
                label: input.label,
            })
            .await
            .gql()?;
        Ok(TimeException::from(&e))
    }

    /// Adds a meetings agenda to a virtual agenda (administrators); the virtual agenda offers
    /// the meeting types all its members share (same slug and duration).
    async fn add_virtual_member(
        &self,
        ctx: &Context<'_>,
        agenda_id: ID,
        member_id: ID,
    ) -> async_graphql::Result<crate::types::Agenda> {
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let services = ctx.data::<Services>()?;
        let v = services.meetings.virtual_agenda(parse_id(&agenda_id, "agenda")?).await.gql()?;
        v.add_member(parse_id(&member_id, "agenda")?).await.gql()?;
        Ok(crate::types::Agenda::from(v.settings()))
    }

    /// Adds a period without slots to a virtual agenda (administrators).
    async fn add_exclusion_period(
        &self,
        ctx: &Context<'_>,
        input: AddExclusionPeriodInput,
    ) -> async_graphql::Result<ExclusionPeriod> {
        ctx.data::<Caller>()?.may(Action::ManageAgendas)?;
        let services = ctx.data::<Services>()?;
        let v =
            services.meetings.virtual_agenda(parse_id(&input.agenda_id, "agenda")?).await.gql()?;
        let rule = rule_of(input.weekday, input.weeks_of_month, input.date)?;
        let start = parse_time(&input.start_time, "startTime")?;
        let end = parse_time(&input.end_time, "endTime")?;
        Ok(ExclusionPeriod::from(&v.add_exclusion(rule, start, end).await.gql()?))
    }

    /// Books a slot for the caller (or, for agents, for `userId`, also inside the booking
    /// delays). A free desk is chosen; with the lock code of the caller's hold on this slot, the
    /// hold becomes the booking. `FULL` when no desk is left.
    async fn book_slot(
        &self,
        ctx: &Context<'_>,
        input: BookSlotInput,
    ) -> async_graphql::Result<Meeting> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        let me = caller.account()?;
        let handle = slot_agenda(ctx, &input.agenda_id).await?;
        let agents = &handle.settings().services;
        let owner = match &input.user_id {
            Some(id) => parse_id::<AccountId>(id, "user")?,
            None => me,
        };
        caller.may(Action::Book { agenda_services: agents, for_account: owner })?;
        if owner != me {
            services.accounts.get(owner).await.gql()?;
        }
        let ignore_delays = caller.may(Action::SeeBookings { agenda_services: agents }).is_ok();
        let meeting = handle
            .book(SlotRequest {
                meeting_type_id: parse_id(&input.meeting_type_id, "meeting type")?,
                starts_at: input.starts_at.0,
                account_id: Some(owner),
                booked_by: Some(me),
                lock_code: input.lock_code,
                ignore_delays,
            })
            .await
            .gql()?;
        Ok(Meeting::from(&meeting))
    }

    /// Holds a slot for the agenda's hold time while the caller fills the form that will book
    /// it: others see it taken until `bookSlot` with the same lock code, `cancelMeeting`, or the
    /// hold's end. A new hold with the same code releases the previous one.
    async fn hold_slot(
        &self,
        ctx: &Context<'_>,
        input: HoldSlotInput,
    ) -> async_graphql::Result<Meeting> {
        let caller = ctx.data::<Caller>()?;
        let me = caller.account()?;
        let handle = slot_agenda(ctx, &input.agenda_id).await?;
        caller
            .may(Action::Book { agenda_services: &handle.settings().services, for_account: me })?;
        let meeting = handle
            .hold(SlotRequest {
                meeting_type_id: parse_id(&input.meeting_type_id, "meeting type")?,
                starts_at: input.starts_at.0,
                account_id: None,
                booked_by: Some(me),
                lock_code: Some(input.lock_code),
                ignore_delays: false,
            })
            .await
            .gql()?;
        Ok(Meeting::from(&meeting))
    }

    /// Cancels a booked slot or releases a hold (its owner or holder, or an agent of the agenda).
    async fn cancel_meeting(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Meeting> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        caller.account()?;
        let meeting_id: MeetingId = parse_id(&id, "meeting")?;
        let stored = services.meetings.meeting(meeting_id).await.gql()?;
        let handle = services.meetings.get(stored.agenda_id).await.gql()?;
        let owner = stored.account_id.or(stored.booked_by).unwrap_or_default();
        caller
            .may(Action::CancelBooking { agenda_services: &handle.settings().services, owner })?;
        Ok(Meeting::from(&handle.cancel(meeting_id).await.gql()?))
    }
}

/// Subscriptions about meetings agendas.
#[derive(Default)]
pub struct MeetingsSubscription;

struct SlotsState {
    changes: stream::SelectAll<BroadcastStream<actors::live::SlotsChanged>>,
    handle: SlotAgenda,
    query: (MeetingTypeId, Date, Date, Option<String>),
    window: (jiff::Timestamp, jiff::Timestamp),
    last: Option<Vec<Slot>>,
    seq: u64,
    first: bool,
    _open: Open,
}

impl SlotsState {
    async fn read(&self) -> Option<Vec<Slot>> {
        let (mt, from, to, code) = self.query.clone();
        let slots = self.handle.slots(mt, from, to, code, false).await.ok()?;
        Some(slots.iter().map(Slot::from).collect())
    }
}

#[Subscription]
impl MeetingsSubscription {
    /// The free slots of a meeting type on the local days `from` to `to` (of a meetings or a
    /// virtual agenda): now, then each time a booking, hold, cancellation or configuration
    /// change alters them. Open to anyone. `seq` counts the updates of this subscription.
    async fn free_slots(
        &self,
        ctx: &Context<'_>,
        agenda_id: ID,
        meeting_type_id: ID,
        from: String,
        to: String,
        lock_code: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = SlotsUpdate> + use<>> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        let handle = slot_agenda(ctx, &agenda_id).await?;
        let mt: MeetingTypeId = parse_id(&meeting_type_id, "meeting type")?;
        let (from, to) = (parse_date(&from, "from")?, parse_date(&to, "to")?);
        // Subscribe before the first read, so that no change falls between the two; the first
        // read also validates the query. A virtual agenda listens to each of its members.
        let changes = stream::select_all(
            handle
                .slot_sources()
                .await
                .gql()?
                .into_iter()
                .map(|a| BroadcastStream::new(services.live.subscribe_slots(a))),
        );
        handle.slots(mt, from, to, lock_code.clone(), false).await.gql()?;
        let tz = actors::time::paris();
        let start =
            from.to_zoned(tz.clone()).map(|z| z.timestamp()).unwrap_or(jiff::Timestamp::MIN);
        let end = to
            .tomorrow()
            .ok()
            .and_then(|d| d.to_zoned(tz).ok())
            .map_or(jiff::Timestamp::MAX, |z| z.timestamp());
        let state = SlotsState {
            changes,
            handle,
            query: (mt, from, to, lock_code),
            window: (start, end),
            last: None,
            seq: 0,
            first: true,
            _open: Open::new(services.metrics.clone(), caller.session.as_ref()),
        };
        let updates = stream::unfold(state, |mut st| async move {
            if !st.first {
                loop {
                    match st.changes.next().await? {
                        // A change outside the days shown cannot alter them.
                        Ok(change) if change.to <= st.window.0 || change.from >= st.window.1 => {
                            continue;
                        }
                        // Fell behind: whatever was missed, a fresh read covers it.
                        Ok(_) | Err(_) => {}
                    }
                    let slots = st.read().await?;
                    if st.last.as_ref() != Some(&slots) {
                        st.last = Some(slots);
                        break;
                    }
                }
            } else {
                st.first = false;
                st.last = Some(st.read().await?);
            }
            st.seq += 1;
            let slots = st.last.clone().unwrap_or_default();
            Some((SlotsUpdate { seq: st.seq.to_string(), slots }, st))
        });
        Ok(until_session_ends(updates, caller.session.clone()))
    }
}
