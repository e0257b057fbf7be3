//! Stored shapes. Kept apart from the domain types so that storage can evolve on its own; every
//! instant is stored as microseconds since the epoch, every key as the record's plain id.

use std::collections::{BTreeSet, HashMap, VecDeque};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{StoreError, parse_id};
use crate::access::Roles;
use crate::agenda::model::{
    AgendaKind, AgendaSettings, BookingStatus, BookingView, EventState, FillNotifications, Presence,
};
use crate::agenda::recurrence::Recurrence;
use crate::agenda::rules::{CitizenNotifications, EventRules};
use crate::ids::{AccountId, MailId};
use crate::mail::{Channel, MailStatus, OutboxEntry, OutgoingMail};

fn email_channel() -> String {
    Channel::Email.as_str().to_owned()
}
use crate::meetings::model::MeetingsRules;
use crate::time::{from_micros, to_micros};

/// An account as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Key.
    pub id: String,
    /// Normalised (trimmed, lower-case) email.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Administrator.
    #[serde(default)]
    pub admin: bool,
    /// Agent roles.
    #[serde(default)]
    pub agent_roles: Vec<String>,
    /// Phone number for text messages (E.164), if the person gave one.
    #[serde(default)]
    pub phone: Option<String>,
    /// SHA-256 of the secret of the account's calendar feed, if one was made.
    #[serde(default)]
    pub calendar_feed: Option<String>,
    /// The phone line an agent answers calls on (reception).
    #[serde(default)]
    pub reception_line: Option<String>,
    /// How the person prefers to be notified: `email` (default), `sms` or `web`.
    #[serde(default)]
    pub notify_by: Option<String>,
    /// Creation instant.
    pub created_us: i64,
}

impl AccountRecord {
    /// The account's id.
    pub fn account_id(&self) -> Result<AccountId, StoreError> {
        parse_id(&self.id)
    }

    /// The account's roles.
    pub fn roles(&self) -> Roles {
        Roles { admin: self.admin, agent_roles: self.agent_roles.clone() }
    }

    /// Given and family name, as agents see the person (`Camille Martin`).
    pub fn display_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name).trim().to_owned()
    }
}

/// A session as stored, under the SHA-256 of its token (the token itself is never stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Key: hex SHA-256 of the token.
    pub id: String,
    /// Owner.
    pub account: String,
    /// Creation instant.
    pub created_us: i64,
    /// Last activity (written lazily).
    pub last_seen_us: i64,
    /// Absolute expiry.
    pub expires_us: i64,
    /// Idle expiry, in seconds of inactivity.
    pub idle_secs: i64,
    /// Logged out or revoked.
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AgendaRecord {
    id: String,
    slug: String,
    label: String,
    kind: String,
    thresholds: Vec<u8>,
    emails: Vec<String>,
    auto_promote: bool,
    services: Vec<String>,
    /// Rules of a meetings agenda; absent for events agendas.
    #[serde(default)]
    meetings: Option<MeetingsRulesRecord>,
    /// Rules of an events agenda; absent for other kinds and for agendas stored before them.
    #[serde(default)]
    events: Option<EventRulesRecord>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    created_us: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventRulesRecord {
    minimal_booking_delay_days: u32,
    minimal_delay_in_working_days: bool,
    maximal_booking_delay_days: Option<u32>,
    cancellation_deadline_hours: Option<u32>,
    notify_on_booking: bool,
    notify_on_cancellation: bool,
    reminder_hours: Option<u32>,
    absence_reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MeetingsRulesRecord {
    hide_weekends: bool,
    closed_on_public_holidays: bool,
    minimal_booking_delay_days: u32,
    maximal_booking_delay_days: u32,
    hold_minutes: u32,
    #[serde(default)]
    notify_citizens: bool,
    #[serde(default)]
    reminder_hours: Option<u32>,
}

impl AgendaRecord {
    pub(super) fn from_settings(a: &AgendaSettings, now: Timestamp) -> Self {
        Self {
            id: a.id.to_string(),
            slug: a.slug.clone(),
            label: a.label.clone(),
            kind: a.kind.as_str().into(),
            thresholds: a.fill_notifications.thresholds.clone(),
            emails: a.fill_notifications.emails.clone(),
            auto_promote: a.auto_promote_waiting_list,
            services: a.services.clone(),
            meetings: matches!(a.kind, AgendaKind::Meetings | AgendaKind::Virtual).then(|| {
                let m = &a.meetings;
                MeetingsRulesRecord {
                    hide_weekends: m.hide_weekends,
                    closed_on_public_holidays: m.closed_on_public_holidays,
                    minimal_booking_delay_days: m.minimal_booking_delay_days,
                    maximal_booking_delay_days: m.maximal_booking_delay_days,
                    hold_minutes: m.hold_minutes,
                    notify_citizens: m.notify_citizens,
                    reminder_hours: m.reminder_hours,
                }
            }),
            events: (a.kind == AgendaKind::Events).then(|| {
                let r = &a.events;
                EventRulesRecord {
                    minimal_booking_delay_days: r.minimal_booking_delay_days,
                    minimal_delay_in_working_days: r.minimal_delay_in_working_days,
                    maximal_booking_delay_days: r.maximal_booking_delay_days,
                    cancellation_deadline_hours: r.cancellation_deadline_hours,
                    notify_on_booking: r.citizen_notifications.on_booking,
                    notify_on_cancellation: r.citizen_notifications.on_cancellation,
                    reminder_hours: r.citizen_notifications.reminder_hours,
                    absence_reasons: r.absence_reasons.clone(),
                }
            }),
            category: a.category.clone(),
            resources: a.resources.iter().map(ToString::to_string).collect(),
            created_us: to_micros(now),
        }
    }

    pub(super) fn into_settings(self) -> Result<AgendaSettings, StoreError> {
        Ok(AgendaSettings {
            id: parse_id(&self.id)?,
            kind: AgendaKind::parse(&self.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("agenda kind {:?}", self.kind)))?,
            slug: self.slug,
            label: self.label,
            fill_notifications: FillNotifications {
                thresholds: self.thresholds,
                emails: self.emails,
            },
            auto_promote_waiting_list: self.auto_promote,
            services: self.services,
            meetings: self.meetings.map_or_else(MeetingsRules::default, |m| MeetingsRules {
                hide_weekends: m.hide_weekends,
                closed_on_public_holidays: m.closed_on_public_holidays,
                minimal_booking_delay_days: m.minimal_booking_delay_days,
                maximal_booking_delay_days: m.maximal_booking_delay_days,
                hold_minutes: m.hold_minutes,
                notify_citizens: m.notify_citizens,
                reminder_hours: m.reminder_hours,
            }),
            events: self.events.map_or_else(EventRules::default, |r| EventRules {
                minimal_booking_delay_days: r.minimal_booking_delay_days,
                minimal_delay_in_working_days: r.minimal_delay_in_working_days,
                maximal_booking_delay_days: r.maximal_booking_delay_days,
                cancellation_deadline_hours: r.cancellation_deadline_hours,
                citizen_notifications: CitizenNotifications {
                    on_booking: r.notify_on_booking,
                    on_cancellation: r.notify_on_cancellation,
                    reminder_hours: r.reminder_hours,
                },
                absence_reasons: r.absence_reasons,
            }),
            category: self.category,
            resources: self.resources.iter().map(|r| parse_id(r)).collect::<Result<_, _>>()?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct EventRecord {
    id: String,
    agenda: String,
    label: String,
    description: String,
    url: Option<String>,
    starts_us: i64,
    ends_us: Option<i64>,
    publication_us: Option<i64>,
    places: u32,
    waiting_list_places: u32,
    confirmed: u32,
    waiting: u32,
    notified: Vec<u8>,
    version: u64,
    #[serde(default)]
    recurrence: Option<String>,
    #[serde(default)]
    cancelled_us: Option<i64>,
    #[serde(default)]
    checked: bool,
    #[serde(default)]
    resources: Vec<String>,
    created_us: i64,
}

impl EventRecord {
    pub(super) fn agenda(&self) -> &str {
        &self.agenda
    }

    pub(super) fn from_state(e: &EventState, now: Timestamp) -> Self {
        Self {
            id: e.id.to_string(),
            agenda: e.agenda_id.to_string(),
            label: e.label.clone(),
            description: e.description.clone(),
            url: e.url.clone(),
            starts_us: to_micros(e.starts_at),
            ends_us: e.ends_at.map(to_micros),
            publication_us: e.publication_at.map(to_micros),
            places: e.places,
            waiting_list_places: e.waiting_list_places,
            confirmed: e.confirmed,
            waiting: e.waiting,
            notified: e.notified.iter().copied().collect(),
            version: e.version,
            recurrence: e.recurrence_id.map(|r| r.to_string()),
            cancelled_us: e.cancelled_at.map(to_micros),
            checked: e.checked,
            resources: e.resources.iter().map(ToString::to_string).collect(),
            created_us: to_micros(now),
        }
    }

    /// The definition and state of a changed event, as written by a batch (see `group_commit`).
    pub(super) fn edit(e: &EventState, expected: u64) -> serde_json::Value {
        serde_json::json!({
            "id": e.id.to_string(),
            "expected": expected,
            "label": e.label,
            "description": e.description,
            "url": e.url,
            "starts_us": to_micros(e.starts_at),
            "ends_us": e.ends_at.map(to_micros),
            "publication_us": e.publication_at.map(to_micros),
            "places": e.places,
            "waiting_list_places": e.waiting_list_places,
            "cancelled_us": e.cancelled_at.map(to_micros),
            "checked": e.checked,
            "resources": e.resources.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }

    pub(super) fn into_state(self) -> Result<EventState, StoreError> {
        Ok(EventState {
            id: parse_id(&self.id)?,
            agenda_id: parse_id(&self.agenda)?,
            label: self.label,
            description: self.description,
            url: self.url,
            starts_at: from_micros(self.starts_us),
            ends_at: self.ends_us.map(from_micros),
            publication_at: self.publication_us.map(from_micros),
            places: self.places,
            waiting_list_places: self.waiting_list_places,
            confirmed: self.confirmed,
            waiting: self.waiting,
            notified: self.notified.into_iter().collect::<BTreeSet<_>>(),
            bookings: HashMap::new(),
            waiting_queue: VecDeque::new(),
            version: self.version,
            recurrence_id: self.recurrence.as_deref().map(parse_id).transpose()?,
            cancelled_at: self.cancelled_us.map(from_micros),
            checked: self.checked,
            resources: self.resources.iter().map(|r| parse_id(r)).collect::<Result<_, _>>()?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct BookingRecord {
    id: String,
    event: String,
    agenda: String,
    account: String,
    booked_by: String,
    status: String,
    created_us: i64,
    updated_us: i64,
    #[serde(default)]
    present: Option<bool>,
    #[serde(default)]
    absence_reason: Option<String>,
}

impl BookingRecord {
    pub(super) fn created(v: &BookingView, booked_by: AccountId) -> Self {
        Self {
            id: v.id.to_string(),
            event: v.event_id.to_string(),
            agenda: v.agenda_id.to_string(),
            account: v.account_id.to_string(),
            booked_by: booked_by.to_string(),
            status: v.status.as_str().into(),
            created_us: to_micros(v.created_at),
            updated_us: to_micros(v.created_at),
            present: None,
            absence_reason: None,
        }
    }

    pub(super) fn into_view(self) -> Result<BookingView, StoreError> {
        Ok(BookingView {
            id: parse_id(&self.id)?,
            event_id: parse_id(&self.event)?,
            agenda_id: parse_id(&self.agenda)?,
            account_id: parse_id(&self.account)?,
            status: BookingStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("booking status {:?}", self.status)))?,
            created_at: from_micros(self.created_us),
            presence: self
                .present
                .map(|present| Presence { present, absence_reason: self.absence_reason }),
        })
    }
}

/// A recurrence rule as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RecurrenceRecord {
    id: String,
    agenda: String,
    label: String,
    /// ISO weekday numbers, Monday = 1.
    weekdays: Vec<i8>,
    interval_weeks: u32,
    /// `HH:MM`.
    start_time: String,
    duration_minutes: Option<u32>,
    first_day: String,
    last_day: String,
    created_us: i64,
}

impl RecurrenceRecord {
    pub(super) fn from_rule(r: &Recurrence, now: Timestamp) -> Self {
        Self {
            id: r.id.to_string(),
            agenda: r.agenda_id.to_string(),
            label: r.label.clone(),
            weekdays: r.weekdays.iter().map(|w| w.to_monday_one_offset()).collect(),
            interval_weeks: r.interval_weeks,
            start_time: r.start_time.strftime("%H:%M").to_string(),
            duration_minutes: r.duration_minutes,
            first_day: r.first_day.to_string(),
            last_day: r.last_day.to_string(),
            created_us: to_micros(now),
        }
    }

    pub(super) fn into_rule(self) -> Result<Recurrence, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("recurrence {what}"));
        Ok(Recurrence {
            id: parse_id(&self.id)?,
            agenda_id: parse_id(&self.agenda)?,
            label: self.label,
            weekdays: self
                .weekdays
                .iter()
                .map(|n| {
                    jiff::civil::Weekday::from_monday_one_offset(*n).map_err(|_| corrupt("weekday"))
                })
                .collect::<Result<_, _>>()?,
            interval_weeks: self.interval_weeks,
            start_time: jiff::civil::Time::strptime("%H:%M", &self.start_time)
                .map_err(|_| corrupt("start time"))?,
            duration_minutes: self.duration_minutes,
            first_day: self.first_day.parse().map_err(|_| corrupt("first day"))?,
            last_day: self.last_day.parse().map_err(|_| corrupt("last day"))?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct OutboxRecord {
    id: String,
    #[serde(default = "email_channel")]
    channel: String,
    to: Vec<String>,
    #[serde(default)]
    to_accounts: Vec<String>,
    subject: String,
    body: String,
    status: String,
    attempts: u32,
    last_error: Option<String>,
    next_attempt_us: i64,
    sent_us: Option<i64>,
    created_us: i64,
}

impl OutboxRecord {
    pub(super) fn queued(m: &OutgoingMail, now: Timestamp) -> Self {
        Self {
            id: m.id.to_string(),
            channel: m.channel.as_str().into(),
            to: m.to.clone(),
            to_accounts: m.to_accounts.iter().map(ToString::to_string).collect(),
            subject: m.subject.clone(),
            body: m.body.clone(),
            status: MailStatus::Queued.as_str().into(),
            attempts: 0,
            last_error: None,
            next_attempt_us: to_micros(now),
            sent_us: None,
            created_us: to_micros(m.created_at),
        }
    }

    pub(super) fn into_entry(self) -> Result<OutboxEntry, StoreError> {
        let id: MailId = parse_id(&self.id)?;
        Ok(OutboxEntry {
            mail: OutgoingMail {
                id,
                channel: Channel::parse(&self.channel)
                    .ok_or_else(|| StoreError::Corrupt(format!("channel {:?}", self.channel)))?,
                to: self.to,
                to_accounts: self
                    .to_accounts
                    .iter()
                    .map(|a| parse_id(a))
                    .collect::<Result<_, _>>()?,
                subject: self.subject,
                body: self.body,
                created_at: from_micros(self.created_us),
            },
            status: MailStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("mail status {:?}", self.status)))?,
            attempts: self.attempts,
            last_error: self.last_error,
            sent_at: self.sent_us.map(from_micros),
        })
    }
}
