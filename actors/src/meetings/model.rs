//! The rules of meetings agendas, as plain data and functions: no actor, no database, no clock.
//!
//! A meetings agenda has meeting types (a label and a duration), desks ("guichets") and opening
//! periods per desk (weekly, the Nth weekday of the month, or one date), minus exceptions (per
//! desk, and French public holidays unless turned off). A slot of a meeting type is a start
//! instant at which at least one desk is open and free for the type's whole duration.
//!
//! Opening hours are civil times in the agenda's zone (Europe/Paris); slots are stepped in real
//! minutes from the period's start, so they stay right across DST changes: a 30-minute meeting
//! starting 01:45 on 29 March 2026 ends at 03:15 local time, and on 25 October the hour from
//! 02:00 happens twice, with twice the slots.
//!
//! Every instant the store guards is on a five-minute grid ([`CELL_MINUTES`]): durations and
//! opening times are multiples of it, so a meeting covers whole cells and the store can refuse
//! two meetings on one desk cell by cell, whoever writes.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

use super::holidays::is_french_public_holiday;
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::{AccountId, AgendaId, DeskId, ExceptionId, MeetingId, MeetingTypeId, PeriodId};

/// The grid of every meeting boundary, in minutes.
pub const CELL_MINUTES: i64 = 5;
/// The longest meeting type: a working day.
pub const MAX_DURATION_MINUTES: i64 = 12 * 60;
/// The widest date range of one free-slot query.
pub const MAX_QUERY_DAYS: i64 = 366;
/// The longest temporary hold.
pub const MAX_HOLD_MINUTES: i64 = 24 * 60;

/// Agenda-wide rules of a meetings agenda.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MeetingsRules {
    /// No slot on Saturdays and Sundays, whatever the opening periods say.
    pub hide_weekends: bool,
    /// Closed on French public holidays.
    pub closed_on_public_holidays: bool,
    /// Slots start no earlier than this many days from today (0: from now on).
    pub minimal_booking_delay_days: u32,
    /// Slots start before the day that is this many days from today (Chrono counts the same).
    pub maximal_booking_delay_days: u32,
    /// How long a temporary hold lasts, in minutes.
    pub hold_minutes: u32,
    /// Mail citizens when they book a slot and when it is cancelled.
    pub notify_citizens: bool,
    /// Remind citizens this many hours before their appointment (email, and SMS to those who
    /// gave a number).
    pub reminder_hours: Option<u32>,
}

impl Default for MeetingsRules {
    fn default() -> Self {
        // Chrono's defaults: bookable from tomorrow, up to eight weeks ahead.
        Self {
            hide_weekends: false,
            closed_on_public_holidays: true,
            minimal_booking_delay_days: 1,
            maximal_booking_delay_days: 56,
            hold_minutes: 15,
            notify_citizens: false,
            reminder_hours: None,
        }
    }
}

impl MeetingsRules {
    /// Checks the rules.
    pub fn validate(self) -> Result<Self, MeetingsError> {
        if self.maximal_booking_delay_days == 0 || self.maximal_booking_delay_days > 3 * 366 {
            return Err(invalid("maximalBookingDelayDays must be between 1 and 1098"));
        }
        if self.minimal_booking_delay_days >= self.maximal_booking_delay_days {
            return Err(invalid(
                "minimalBookingDelayDays must be smaller than maximalBookingDelayDays",
            ));
        }
        if self.hold_minutes == 0 || i64::from(self.hold_minutes) > MAX_HOLD_MINUTES {
            return Err(invalid("holdMinutes must be between 1 and 1440"));
        }
        if self.reminder_hours.is_some_and(|h| h == 0 || h > 24 * 60) {
            return Err(invalid("reminderHours must be between 1 and 1440"));
        }
        Ok(self)
    }
}

/// A kind of meeting: a label and a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingType {
    /// Identifier.
    pub id: MeetingTypeId,
    /// Short name, unique in the agenda; virtual agendas match their members' types by slug
    /// and duration.
    pub slug: String,
    /// Human name ("Passport application").
    pub label: String,
    /// Duration in minutes, a multiple of [`CELL_MINUTES`].
    pub duration_minutes: u32,
}

/// A desk ("guichet"): one agent, one meeting at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desk {
    /// Identifier.
    pub id: DeskId,
    /// Human name.
    pub label: String,
}

/// Which days an opening period applies to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodRule {
    /// Every week on this day.
    Weekly(#[serde(with = "weekday_number")] Weekday),
    /// On the given occurrences of a weekday in each month: 1 to 5 from the start, -1 for the
    /// last ("the 2nd and 4th Wednesday", "the last Friday").
    MonthlyNth {
        /// The weekday.
        #[serde(with = "weekday_number")]
        weekday: Weekday,
        /// Which occurrences.
        nths: Vec<i8>,
    },
    /// One date only.
    Date(Date),
}

/// Weekdays in definitions (application bundles): 1 for Monday to 7 for Sunday, as ISO 8601.
mod weekday_number {
    use jiff::civil::Weekday;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(day: &Weekday, s: S) -> Result<S::Ok, S::Error> {
        day.to_monday_one_offset().serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Weekday, D::Error> {
        let n = i8::deserialize(d)?;
        Weekday::from_monday_one_offset(n).map_err(serde::de::Error::custom)
    }
}

impl PeriodRule {
    /// True when the rule opens on `day`.
    pub fn applies_to(&self, day: Date) -> bool {
        match self {
            PeriodRule::Weekly(w) => day.weekday() == *w,
            PeriodRule::MonthlyNth { weekday, nths } => {
                day.weekday() == *weekday && {
                    let (from_start, from_end) = occurrence_in_month(day);
                    nths.iter().any(|n| *n == from_start || *n == from_end)
                }
            }
            PeriodRule::Date(d) => *d == day,
        }
    }

    /// True when some day matches both rules.
    fn may_share_a_day_with(&self, other: &PeriodRule) -> bool {
        use PeriodRule::*;
        match (self, other) {
            (Date(a), b) | (b, Date(a)) => b.applies_to(*a),
            (Weekly(a), Weekly(b)) => a == b,
            (Weekly(a), MonthlyNth { weekday, .. }) | (MonthlyNth { weekday, .. }, Weekly(a)) => {
                a == weekday
            }
            (MonthlyNth { weekday: a, nths: na }, MonthlyNth { weekday: b, nths: nb }) => {
                // The last occurrence is the 4th or the 5th.
                let meet = |x: i8, y: i8| x == y || (x == -1 && y >= 4) || (y == -1 && x >= 4);
                a == b && na.iter().any(|x| nb.iter().any(|y| meet(*x, *y)))
            }
        }
    }
}

/// The position of `day` among the same weekdays of its month: (from the start, from the end),
/// as in (2, -3) for the 2nd Monday of a month with four Mondays.
fn occurrence_in_month(day: Date) -> (i8, i8) {
    let from_start = (day.day() - 1) / 7 + 1;
    let from_end = -((day.days_in_month() - day.day()) / 7 + 1);
    (from_start, from_end)
}

/// When a desk is open: a rule of days and civil start and end times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningPeriod {
    /// Identifier.
    pub id: PeriodId,
    /// The desk it opens.
    pub desk_id: DeskId,
    /// Which days.
    pub rule: PeriodRule,
    /// Opening time, local.
    pub start: Time,
    /// Closing time, local, after `start` on the same day.
    pub end: Time,
}

impl OpeningPeriod {
    fn length_minutes(&self) -> i64 {
        self.start.duration_until(self.end).as_mins()
    }
}

/// A closure of some desks: holidays, training, a strike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeException {
    /// Identifier.
    pub id: ExceptionId,
    /// Desks it closes.
    pub desk_ids: Vec<DeskId>,
    /// Start.
    pub starts_at: Timestamp,
    /// End, after the start.
    pub ends_at: Timestamp,
    /// Why ("Formation", "Fermeture exceptionnelle").
    pub label: String,
}

/// The state of a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingStatus {
    /// A temporary hold while a citizen fills the form that will book it.
    Held,
    /// Booked.
    Confirmed,
    /// Cancelled, or a hold released or expired into a booking elsewhere.
    Cancelled,
}

impl MeetingStatus {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            MeetingStatus::Held => "held",
            MeetingStatus::Confirmed => "confirmed",
            MeetingStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "held" => Some(MeetingStatus::Held),
            "confirmed" => Some(MeetingStatus::Confirmed),
            "cancelled" => Some(MeetingStatus::Cancelled),
            _ => None,
        }
    }
}

/// A meeting on one desk: a booking, or a temporary hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    /// Identifier.
    pub id: MeetingId,
    /// Agenda.
    pub agenda_id: AgendaId,
    /// Desk.
    pub desk_id: DeskId,
    /// Meeting type.
    pub meeting_type_id: MeetingTypeId,
    /// Start.
    pub starts_at: Timestamp,
    /// End (start plus the type's duration).
    pub ends_at: Timestamp,
    /// Whose booking it is; none for a hold.
    pub account_id: Option<AccountId>,
    /// Who made it (the owner, or an agent on their behalf).
    pub booked_by: Option<AccountId>,
    /// Held, confirmed or cancelled.
    pub status: MeetingStatus,
    /// The lock code of a hold (and of the booking that took it over).
    pub lock_code: Option<String>,
    /// When a hold lapses.
    pub hold_until: Option<Timestamp>,
    /// Creation.
    pub created_at: Timestamp,
}

impl Meeting {
    /// True while it keeps its desk busy at `now`.
    pub fn occupies(&self, now: Timestamp) -> bool {
        match self.status {
            MeetingStatus::Confirmed => true,
            MeetingStatus::Held => self.hold_until.is_some_and(|u| u > now),
            MeetingStatus::Cancelled => false,
        }
    }
}

/// A free slot: a start at which some desks are open and free for the type's duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Timestamp,
    /// The desks free for it, in desk order.
    pub free_desks: Vec<DeskId>,
}

/// What an administrator gives to add a meeting type.
#[derive(Debug, Clone)]
pub struct NewMeetingType {
    /// Human name.
    pub label: String,
    /// Short name; derived from the label when not given.
    pub slug: Option<String>,
    /// Duration in minutes.
    pub duration_minutes: i64,
}

/// What an administrator gives to add opening periods.
#[derive(Debug, Clone)]
pub struct NewPeriods {
    /// The desks to open (one period each).
    pub desk_ids: Vec<DeskId>,
    /// Which days.
    pub rule: PeriodRule,
    /// Opening time.
    pub start: Time,
    /// Closing time.
    pub end: Time,
}

/// What an administrator gives to add an exception.
#[derive(Debug, Clone)]
pub struct NewException {
    /// The desks to close; empty means every desk of the agenda.
    pub desk_ids: Vec<DeskId>,
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Timestamp,
    /// Why.
    pub label: String,
}

/// A request to book (or hold) a slot.
#[derive(Debug, Clone)]
pub struct SlotRequest {
    /// Meeting type.
    pub meeting_type_id: MeetingTypeId,
    /// Start of the slot.
    pub starts_at: Timestamp,
    /// Whose booking; none for a hold.
    pub account_id: Option<AccountId>,
    /// Who asks.
    pub booked_by: Option<AccountId>,
    /// The lock code of a hold to take over (booking) or to set (hold).
    pub lock_code: Option<String>,
    /// Agents may book inside the minimal delay and beyond the maximal one.
    pub ignore_delays: bool,
}

/// Errors of meetings agendas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeetingsError {
    /// Input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// No agenda with this id.
    #[error("agenda not found")]
    AgendaNotFound,
    /// No such meeting type in this agenda.
    #[error("meeting type not found")]
    MeetingTypeNotFound,
    /// No such desk in this agenda.
    #[error("desk {0} not found")]
    DeskNotFound(DeskId),
    /// No such meeting (or not an active one).
    #[error("meeting not found")]
    MeetingNotFound,
    /// The instant is not a slot of this agenda for that meeting type.
    #[error("{0} is not a slot of this meeting type")]
    NotASlot(String),
    /// The slot is outside the booking delays.
    #[error("slots can be booked from {earliest} until {latest}")]
    OutsideDelays {
        /// First bookable instant.
        earliest: String,
        /// End of the bookable window.
        latest: String,
    },
    /// Every desk is taken (booked or held) for this slot.
    #[error("the slot at {0} is no longer free")]
    SlotTaken(String),
    /// The agenda's actor or the store is out of reach.
    #[error("meetings service unavailable: {0}")]
    Unavailable(String),
}

impl HasErrorCode for MeetingsError {
    fn code(&self) -> ErrorCode {
        match self {
            MeetingsError::Invalid(_)
            | MeetingsError::NotASlot(_)
            | MeetingsError::OutsideDelays { .. } => ErrorCode::BadUserInput,
            MeetingsError::AgendaNotFound
            | MeetingsError::MeetingTypeNotFound
            | MeetingsError::DeskNotFound(_)
            | MeetingsError::MeetingNotFound => ErrorCode::NotFound,
            MeetingsError::SlotTaken(_) => ErrorCode::Full,
            MeetingsError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

fn invalid(message: impl Into<String>) -> MeetingsError {
    MeetingsError::Invalid(message.into())
}

fn checked_label(label: &str) -> Result<String, MeetingsError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 200 {
        return Err(invalid("label must have 1 to 200 characters"));
    }
    Ok(label.to_owned())
}

/// A slug from a label: lower-case ASCII letters and digits, accents dropped, dashes between
/// words ("Dépôt de dossier" gives "depot-de-dossier").
pub fn slugify(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.to_lowercase().chars() {
        let plain = match c {
            'à' | 'â' | 'ä' | 'á' | 'ã' | 'å' => "a",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'î' | 'ï' | 'í' | 'ì' => "i",
            'ô' | 'ö' | 'ó' | 'ò' | 'õ' => "o",
            'ù' | 'û' | 'ü' | 'ú' => "u",
            'ç' => "c",
            'ñ' => "n",
            'ÿ' => "y",
            'œ' => "oe",
            'æ' => "ae",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => "-",
        };
        if plain == "-" {
            if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push_str(plain);
        }
    }
    let trimmed = out.trim_end_matches('-');
    let slug: String = trimmed.chars().take(64).collect();
    if slug.is_empty() { "type".into() } else { slug }
}

fn on_grid(t: Time) -> bool {
    t.second() == 0 && t.subsec_nanosecond() == 0 && i64::from(t.minute()) % CELL_MINUTES == 0
}

/// Resolves a civil time of `day` to an instant; times in a DST gap move forward by the gap
/// (02:30 on 29 March is 03:30 CEST), times in a fold take the first occurrence.
fn instant(tz: &TimeZone, day: Date, t: Time) -> Option<Timestamp> {
    tz.to_ambiguous_timestamp(DateTime::from_parts(day, t)).compatible().ok()
}

/// Checks that a civil time exists on `day` (is not skipped by a DST change).
fn exists(tz: &TimeZone, day: Date, t: Time) -> bool {
    !matches!(
        tz.to_ambiguous_timestamp(DateTime::from_parts(day, t)).offset(),
        AmbiguousOffset::Gap { .. }
    )
}

/// Checks an exception's label and span (ordered, not over, at most three years); returns the
/// label trimmed.
pub fn check_exception_span(input: &NewException, now: Timestamp) -> Result<String, MeetingsError> {
    let label = checked_label(&input.label)?;
    if input.ends_at <= input.starts_at {
        return Err(invalid("an exception must end after it starts"));
    }
    if input.ends_at <= now {
        return Err(invalid("the exception is in the past"));
    }
    if input.ends_at.duration_since(input.starts_at) > SignedDuration::from_hours(24 * 3 * 366) {
        return Err(invalid("an exception lasts at most three years"));
    }
    Ok(label)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A meetings agenda: its configuration and its active meetings.
#[derive(Debug, Clone)]
pub struct MeetingsAgenda {
    /// Identifier.
    pub agenda_id: AgendaId,
    /// The zone of its opening hours.
    pub tz: TimeZone,
    /// Agenda-wide rules.
    pub rules: MeetingsRules,
    /// Meeting types by id.
    pub types: BTreeMap<MeetingTypeId, MeetingType>,
    /// Desks by id.
    pub desks: BTreeMap<DeskId, Desk>,
    /// Opening periods.
    pub periods: Vec<OpeningPeriod>,
    /// Exceptions.
    pub exceptions: Vec<TimeException>,
    /// Active meetings (held or confirmed) by id.
    meetings: HashMap<MeetingId, Meeting>,
    /// Active meetings of each desk by start; they never overlap on one desk.
    by_desk: HashMap<DeskId, BTreeMap<Timestamp, MeetingId>>,
    /// Every meeting holds the agenda's resources: one meeting at a time, whatever the desks.
    pub resource_bound: bool,
}

impl MeetingsAgenda {
    /// An empty agenda.
    pub fn new(agenda_id: AgendaId, tz: TimeZone, rules: MeetingsRules) -> Self {
        Self {
            agenda_id,
            tz,
            rules,
            types: BTreeMap::new(),
            desks: BTreeMap::new(),
            periods: Vec::new(),
            exceptions: Vec::new(),
            meetings: HashMap::new(),
            by_desk: HashMap::new(),
            resource_bound: false,
        }
    }

    /// An active meeting.
    pub fn meeting(&self, id: MeetingId) -> Option<&Meeting> {
        self.meetings.get(&id)
    }

    /// Active meetings, by start.
    pub fn meetings(&self) -> Vec<&Meeting> {
        let mut all: Vec<&Meeting> = self.meetings.values().collect();
        all.sort_by_key(|m| (m.starts_at, m.desk_id));
        all
    }

    /// Adds a stored meeting (at load time); cancelled ones are ignored.
    pub fn put_meeting(&mut self, meeting: Meeting) {
        self.remove_meeting(meeting.id);
        if meeting.status == MeetingStatus::Cancelled {
            return;
        }
        self.by_desk.entry(meeting.desk_id).or_default().insert(meeting.starts_at, meeting.id);
        self.meetings.insert(meeting.id, meeting);
    }

    /// Replaces every active meeting by `meetings` (the store's truth after a failed write).
    pub fn replace_meetings(&mut self, meetings: Vec<Meeting>) {
        self.meetings.clear();
        self.by_desk.clear();
        for m in meetings {
            self.put_meeting(m);
        }
    }

    pub(crate) fn remove_meeting(&mut self, id: MeetingId) -> Option<Meeting> {
        let old = self.meetings.remove(&id)?;
        if let Some(desk) = self.by_desk.get_mut(&old.desk_id)
            && desk.get(&old.starts_at) == Some(&id)
        {
            desk.remove(&old.starts_at);
        }
        Some(old)
    }

    /// Forgets meetings that ended before `before` and holds that lapsed: they no longer take
    /// part in any decision.
    pub fn forget_past(&mut self, before: Timestamp, now: Timestamp) {
        let old: Vec<MeetingId> = self
            .meetings
            .values()
            .filter(|m| m.ends_at < before || !m.occupies(now))
            .map(|m| m.id)
            .collect();
        for id in old {
            self.remove_meeting(id);
        }
    }

    // ----- configuration -----

    /// Validates a new meeting type.
    pub fn new_meeting_type(
        &self,
        input: NewMeetingType,
        id: MeetingTypeId,
    ) -> Result<MeetingType, MeetingsError> {
        let label = checked_label(&input.label)?;
        let taken = |slug: &str| self.types.values().any(|t| t.slug == slug);
        let slug = match input.slug {
            Some(given) => {
                let given = given.trim().to_owned();
                let ok = !given.is_empty()
                    && given.len() <= 64
                    && given
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    return Err(invalid(
                        "slug must be 1 to 64 lower-case letters, digits or dashes",
                    ));
                }
                if taken(&given) {
                    return Err(invalid(format!(
                        "a meeting type with slug {given:?} exists already"
                    )));
                }
                given
            }
            // A slug derived from the label takes a number when another type has it, as in Chrono.
            None => {
                let base = slugify(&label);
                (1..)
                    .map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") })
                    .find(|s| !taken(s))
                    .unwrap_or(base)
            }
        };
        let d = input.duration_minutes;
        if d <= 0 || d > MAX_DURATION_MINUTES || d % CELL_MINUTES != 0 {
            return Err(invalid(format!(
                "durationMinutes must be a multiple of {CELL_MINUTES} from {CELL_MINUTES} to {MAX_DURATION_MINUTES}"
            )));
        }
        if let Some(longest) = self.periods.iter().map(OpeningPeriod::length_minutes).max()
            && d > longest
        {
            return Err(invalid(format!(
                "a {d}-minute meeting is longer than every opening period (the longest lasts {longest} minutes)"
            )));
        }
        Ok(MeetingType { id, slug, label, duration_minutes: d as u32 })
    }

    /// Validates a new desk.
    pub fn new_desk(&self, label: &str, id: DeskId) -> Result<Desk, MeetingsError> {
        Ok(Desk { id, label: checked_label(label)? })
    }

    /// Validates new opening periods (one per desk): times on the grid, the end after the start,
    /// a one-off date not in the past and not in a DST gap, no overlap with a period of the same
    /// desk, and long enough for at least one meeting type.
    pub fn new_periods(
        &self,
        input: NewPeriods,
        today: Date,
        mut new_id: impl FnMut() -> PeriodId,
    ) -> Result<Vec<OpeningPeriod>, MeetingsError> {
        if input.desk_ids.is_empty() {
            return Err(invalid("deskIds cannot be empty"));
        }
        if !on_grid(input.start) || !on_grid(input.end) {
            return Err(invalid(format!(
                "opening times must be whole multiples of {CELL_MINUTES} minutes"
            )));
        }
        if input.end <= input.start {
            return Err(invalid("an opening period must end after it starts"));
        }
        match &input.rule {
            PeriodRule::MonthlyNth { nths, .. } => {
                if nths.is_empty() || nths.iter().any(|n| !(*n == -1 || (1..=5).contains(n))) {
                    return Err(invalid(
                        "weeksOfMonth lists occurrences 1 to 5, or -1 for the last",
                    ));
                }
            }
            PeriodRule::Date(day) => {
                if *day < today {
                    return Err(invalid(format!("{day} is in the past")));
                }
                for t in [input.start, input.end] {
                    if !exists(&self.tz, *day, t) {
                        return Err(invalid(format!(
                            "{t} does not exist on {day} in {} (the clocks skip it)",
                            self.tz.iana_name().unwrap_or("this time zone")
                        )));
                    }
                }
            }
            PeriodRule::Weekly(_) => {}
        }
        let length = input.start.duration_until(input.end).as_mins();
        if let Some(shortest) = self.types.values().map(|t| i64::from(t.duration_minutes)).min()
            && length < shortest
        {
            return Err(invalid(format!(
                "a {length}-minute period is shorter than every meeting type (the shortest lasts {shortest} minutes)"
            )));
        }
        let mut out = Vec::with_capacity(input.desk_ids.len());
        for (i, desk) in input.desk_ids.iter().enumerate() {
            if !self.desks.contains_key(desk) {
                return Err(MeetingsError::DeskNotFound(*desk));
            }
            if input.desk_ids[..i].contains(desk) {
                return Err(invalid(format!("desk {desk} is listed twice")));
            }
            let clash = self.periods.iter().find(|p| {
                p.desk_id == *desk
                    && p.start < input.end
                    && input.start < p.end
                    && p.rule.may_share_a_day_with(&input.rule)
            });
            if let Some(p) = clash {
                return Err(invalid(format!(
                    "overlaps the opening period {}–{} of desk {desk}",
                    p.start.strftime("%H:%M"),
                    p.end.strftime("%H:%M")
                )));
            }
            out.push(OpeningPeriod {
                id: new_id(),
                desk_id: *desk,
                rule: input.rule.clone(),
                start: input.start,
                end: input.end,
            });
        }
        Ok(out)
    }

    /// Validates a new exception: desks of this agenda, an end after the start, not in the past.
    pub fn new_exception(
        &self,
        input: NewException,
        now: Timestamp,
        id: ExceptionId,
    ) -> Result<TimeException, MeetingsError> {
        let label = check_exception_span(&input, now)?;
        let desk_ids = if input.desk_ids.is_empty() {
            self.desks.keys().copied().collect()
        } else {
            for (i, d) in input.desk_ids.iter().enumerate() {
                if !self.desks.contains_key(d) {
                    return Err(MeetingsError::DeskNotFound(*d));
                }
                if input.desk_ids[..i].contains(d) {
                    return Err(invalid(format!("desk {d} is listed twice")));
                }
            }
            input.desk_ids
        };
        if desk_ids.is_empty() {
            return Err(invalid("the agenda has no desk yet"));
        }
        Ok(TimeException {
            id,
            desk_ids,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            label,
        })
    }

    // ----- slots -----

    /// The step between slot starts: the greatest common divisor of the meeting types'
    /// durations, so that slots of every type line up (Chrono's "base duration").
    fn step_minutes(&self) -> i64 {
        self.types.values().map(|t| i64::from(t.duration_minutes)).fold(0, gcd).max(CELL_MINUTES)
    }

    /// The instants between which slots may start for a citizen: from the minimal delay (in
    /// days, counted from today's local midnight; 0 means from now) to the maximal one.
    pub fn booking_window(&self, now: Timestamp) -> (Timestamp, Timestamp) {
        let today = now.to_zoned(self.tz.clone()).date();
        let midnight_after = |days: u32| {
            today
                .checked_add(i64::from(days).days())
                .ok()
                .and_then(|d| instant(&self.tz, d, Time::midnight()))
                .unwrap_or(Timestamp::MAX)
        };
        let earliest = if self.rules.minimal_booking_delay_days == 0 {
            now
        } else {
            midnight_after(self.rules.minimal_booking_delay_days).max(now)
        };
        (earliest, midnight_after(self.rules.maximal_booking_delay_days))
    }

    fn closed_on(&self, day: Date) -> bool {
        (self.rules.hide_weekends && matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday))
            || (self.rules.closed_on_public_holidays && is_french_public_holiday(day))
    }

    fn in_exception(&self, desk: DeskId, start: Timestamp, end: Timestamp) -> bool {
        self.exceptions
            .iter()
            .any(|e| e.starts_at < end && start < e.ends_at && e.desk_ids.contains(&desk))
    }

    /// The meeting keeping `desk` busy during part of `[start, end)`, other than holds with
    /// `lock_code` (the caller's own).
    fn busy(
        &self,
        desk: DeskId,
        start: Timestamp,
        end: Timestamp,
        now: Timestamp,
        lock_code: Option<&str>,
    ) -> bool {
        let Some(starts) = self.by_desk.get(&desk) else { return false };
        for m in starts.range(..end).rev().filter_map(|(_, id)| self.meetings.get(id)) {
            if !m.occupies(now) {
                continue;
            }
            // Meetings that occupy a desk never overlap, so going back in time their ends
            // decrease too: the first one over before `start` ends the search.
            if m.ends_at <= start {
                return false;
            }
            let own_hold = m.status == MeetingStatus::Held
                && lock_code.is_some()
                && m.lock_code.as_deref() == lock_code;
            if !own_hold {
                return true;
            }
        }
        false
    }

    /// Every candidate start of `type_id` on `day`, with the open desks (before exceptions and
    /// meetings are taken into account).
    fn day_starts(&self, duration: SignedDuration, day: Date) -> BTreeMap<Timestamp, Vec<DeskId>> {
        let mut starts: BTreeMap<Timestamp, Vec<DeskId>> = BTreeMap::new();
        if self.closed_on(day) {
            return starts;
        }
        let step = SignedDuration::from_mins(self.step_minutes());
        for p in self.periods.iter().filter(|p| p.rule.applies_to(day)) {
            if !self.desks.contains_key(&p.desk_id) {
                continue;
            }
            let (Some(open), Some(close)) =
                (instant(&self.tz, day, p.start), instant(&self.tz, day, p.end))
            else {
                continue;
            };
            let mut t = open;
            while let Ok(end) = t.checked_add(duration) {
                if end > close {
                    break;
                }
                starts.entry(t).or_default().push(p.desk_id);
                match t.checked_add(step) {
                    Ok(next) => t = next,
                    Err(_) => break,
                }
            }
        }
        for desks in starts.values_mut() {
            desks.sort();
            desks.dedup();
        }
        starts
    }

    /// The free slots of a meeting type starting on the local days `from` to `to` (inclusive),
    /// within the booking window unless `ignore_delays`. Holds with `lock_code` count as free.
    pub fn free_slots(
        &self,
        type_id: MeetingTypeId,
        from: Date,
        to: Date,
        now: Timestamp,
        lock_code: Option<&str>,
        ignore_delays: bool,
    ) -> Result<Vec<Slot>, MeetingsError> {
        let mt = self.types.get(&type_id).ok_or(MeetingsError::MeetingTypeNotFound)?;
        if to < from {
            return Err(invalid("the date range ends before it starts"));
        }
        if from.duration_until(to).as_hours() >= MAX_QUERY_DAYS * 24 {
            return Err(invalid(format!("a date range covers at most {MAX_QUERY_DAYS} days")));
        }
        let duration = SignedDuration::from_mins(i64::from(mt.duration_minutes));
        let (earliest, latest) =
            if ignore_delays { (now, Timestamp::MAX) } else { self.booking_window(now) };
        let mut slots = Vec::new();
        let mut day = from;
        loop {
            for (start, desks) in self.day_starts(duration, day) {
                if start < earliest || start >= latest {
                    continue;
                }
                let end = start + duration;
                let free: Vec<DeskId> = desks
                    .into_iter()
                    .filter(|d| {
                        !self.in_exception(*d, start, end)
                            && !self.busy(*d, start, end, now, lock_code)
                    })
                    .collect();
                if !free.is_empty() {
                    slots.push(Slot { starts_at: start, ends_at: end, free_desks: free });
                }
            }
            if day >= to {
                break;
            }
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        Ok(slots)
    }

    /// Books or holds a slot: checks that it is a slot of the type, within the delays, and
    /// picks the free desk with the fewest meetings that day (ties in desk order). A booking
    /// with the lock code of the caller's hold on that slot takes the hold over, on its desk.
    /// Returns the meeting and, when it replaces the caller's earlier hold, that hold cancelled.
    pub fn reserve(
        &mut self,
        req: &SlotRequest,
        status: MeetingStatus,
        now: Timestamp,
        new_id: impl FnOnce() -> MeetingId,
    ) -> Result<(Meeting, Option<Meeting>), MeetingsError> {
        self.reserve_with(req, status, now, new_id, &[])
    }

    /// [`MeetingsAgenda::reserve`] where the agenda's resources are reserved elsewhere over
    /// `blocked` spans (reservations of this agenda's own meetings are ignored there: the
    /// agenda knows them better).
    pub fn reserve_with(
        &mut self,
        req: &SlotRequest,
        status: MeetingStatus,
        now: Timestamp,
        new_id: impl FnOnce() -> MeetingId,
        blocked: &[(String, Timestamp, Timestamp)],
    ) -> Result<(Meeting, Option<Meeting>), MeetingsError> {
        let mt = self.types.get(&req.meeting_type_id).ok_or(MeetingsError::MeetingTypeNotFound)?;
        let duration = SignedDuration::from_mins(i64::from(mt.duration_minutes));
        let start = req.starts_at;
        let end = start + duration;
        let shown = || start.to_zoned(self.tz.clone()).strftime("%Y-%m-%dT%H:%M%:z").to_string();
        if self.resource_bound {
            let lock = req.lock_code.as_deref();
            // Reservations name meetings `meeting-<id>` (`store::meeting_owner`).
            let own_meeting = |owner: &str| {
                owner
                    .strip_prefix("meeting-")
                    .and_then(|id| id.parse::<MeetingId>().ok())
                    .is_some_and(|id| self.meetings.contains_key(&id))
            };
            let elsewhere = blocked
                .iter()
                .any(|(owner, from, to)| *from < end && *to > start && !own_meeting(owner));
            let here = self.meetings.values().any(|m| {
                m.occupies(now)
                    && m.starts_at < end
                    && m.ends_at > start
                    && !(m.status == MeetingStatus::Held
                        && lock.is_some()
                        && m.lock_code.as_deref() == lock)
            });
            if elsewhere || here {
                return Err(MeetingsError::SlotTaken(shown()));
            }
        }
        if let Some(code) = &req.lock_code
            && !(8..=128).contains(&code.len())
        {
            return Err(invalid("lockCode must have 8 to 128 characters"));
        }
        if status == MeetingStatus::Held && req.lock_code.is_none() {
            return Err(invalid("a hold needs a lockCode"));
        }
        if start <= now {
            return Err(invalid(format!("the slot at {} has already started", shown())));
        }
        if !req.ignore_delays {
            let (earliest, latest) = self.booking_window(now);
            if start < earliest || start >= latest {
                let at = |t: Timestamp| {
                    t.to_zoned(self.tz.clone()).strftime("%Y-%m-%dT%H:%M%:z").to_string()
                };
                return Err(MeetingsError::OutsideDelays {
                    earliest: at(earliest),
                    latest: at(latest),
                });
            }
        }
        let day = start.to_zoned(self.tz.clone()).date();
        let open: Vec<DeskId> = self
            .day_starts(duration, day)
            .remove(&start)
            .ok_or_else(|| MeetingsError::NotASlot(shown()))?;
        let own_hold = req.lock_code.as_deref().and_then(|code| {
            self.meetings
                .values()
                .filter(|m| {
                    m.status == MeetingStatus::Held
                        && m.occupies(now)
                        && m.lock_code.as_deref() == Some(code)
                })
                .map(|m| m.id)
                .next()
        });
        let lock = req.lock_code.as_deref();
        let free: Vec<DeskId> = open
            .into_iter()
            .filter(|d| !self.in_exception(*d, start, end) && !self.busy(*d, start, end, now, lock))
            .collect();
        // Taking over one's own hold of this very slot keeps its desk and its id.
        let held_here = own_hold.and_then(|id| self.meetings.get(&id)).filter(|h| {
            h.starts_at == start
                && h.meeting_type_id == req.meeting_type_id
                && free.contains(&h.desk_id)
        });
        let (desk, id, created_at) = match held_here {
            Some(h) => (h.desk_id, h.id, h.created_at),
            None => {
                let desk = free
                    .iter()
                    .min_by_key(|d| (self.meetings_on(**d, day), **d))
                    .copied()
                    .ok_or_else(|| MeetingsError::SlotTaken(shown()))?;
                (desk, new_id(), now)
            }
        };
        // The caller's other hold, if any, is released: one lock code holds one slot.
        let released = match own_hold {
            Some(h) if h != id => self.remove_meeting(h).map(|mut m| {
                m.status = MeetingStatus::Cancelled;
                m
            }),
            _ => None,
        };
        let hold_until = (status == MeetingStatus::Held)
            .then(|| now + SignedDuration::from_mins(i64::from(self.rules.hold_minutes)));
        let meeting = Meeting {
            id,
            agenda_id: self.agenda_id,
            desk_id: desk,
            meeting_type_id: req.meeting_type_id,
            starts_at: start,
            ends_at: end,
            account_id: req.account_id,
            booked_by: req.booked_by,
            status,
            lock_code: req.lock_code.clone(),
            hold_until,
            created_at,
        };
        self.put_meeting(meeting.clone());
        Ok((meeting, released))
    }

    fn meetings_on(&self, desk: DeskId, day: Date) -> usize {
        let (Some(from), Some(to)) = (
            instant(&self.tz, day, Time::midnight()),
            day.tomorrow().ok().and_then(|d| instant(&self.tz, d, Time::midnight())),
        ) else {
            return 0;
        };
        self.by_desk.get(&desk).map_or(0, |m| m.range(from..to).count())
    }

    /// Cancels an active meeting (a booking, or a hold released early).
    pub fn cancel(&mut self, id: MeetingId) -> Result<Meeting, MeetingsError> {
        let mut m = self.remove_meeting(id).ok_or(MeetingsError::MeetingNotFound)?;
        m.status = MeetingStatus::Cancelled;
        Ok(m)
    }
}

#[cfg(test)]
mod tests;
