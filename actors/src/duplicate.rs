//! Duplication, as Chrono offers it: an agenda with its settings (and, on request, its events to
//! come, without their bookings), and one event at another date. Everything goes through the
//! same registries and actors as a creation by hand, so the same rules apply.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::agenda::model::{AgendaError, AgendaKind, AgendaSettings, NewAgenda, NewEvent};
use crate::agenda::recurrence::NewRecurrence;
use crate::agenda::{AgendaRegistry, EventView};
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::{AgendaId, EventId};
use crate::meetings::MeetingsRegistry;
use crate::meetings::model::{MeetingsError, NewException, NewMeetingType, NewPeriods};

/// Errors of duplication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuplicateError {
    /// From events agendas.
    #[error(transparent)]
    Agenda(#[from] AgendaError),
    /// From meetings agendas.
    #[error(transparent)]
    Meetings(#[from] MeetingsError),
}

impl HasErrorCode for DuplicateError {
    fn code(&self) -> ErrorCode {
        match self {
            DuplicateError::Agenda(e) => e.code(),
            DuplicateError::Meetings(e) => e.code(),
        }
    }

    fn extensions(&self) -> Vec<(&'static str, Vec<String>)> {
        match self {
            DuplicateError::Agenda(e) => e.extensions(),
            DuplicateError::Meetings(_) => Vec::new(),
        }
    }
}

/// Copies an agenda under a new slug and label: its settings, and for an events agenda its
/// recurrences and other events to come when `with_events` (no booking is copied); for a
/// meetings agenda its meeting types, desks, opening periods and exceptions to come; for a
/// virtual agenda its members and exclusion periods.
pub async fn duplicate_agenda(
    agendas: &AgendaRegistry,
    meetings: &MeetingsRegistry,
    source: AgendaId,
    slug: String,
    label: Option<String>,
    with_events: bool,
) -> Result<AgendaSettings, DuplicateError> {
    let from = agendas.settings(source).await?;
    let copy = agendas
        .create_agenda(NewAgenda {
            slug,
            label: label.unwrap_or_else(|| format!("{} (copie)", from.label)),
            kind: from.kind,
            fill_notifications: from.fill_notifications.clone(),
            auto_promote_waiting_list: from.auto_promote_waiting_list,
            services: from.services.clone(),
            meetings: matches!(from.kind, AgendaKind::Meetings | AgendaKind::Virtual)
                .then(|| from.meetings.clone()),
            events: (from.kind == AgendaKind::Events).then(|| from.events.clone()),
            category: from.category.clone(),
            resources: from.resources.clone(),
        })
        .await?;
    let now = Timestamp::now();
    match from.kind {
        AgendaKind::Events if with_events => {
            let source_events = agendas.get(source).await?.events().await?;
            for rule in agendas.recurrences(source).await? {
                // The rule generates its occurrences to come again, like the original did.
                let Some(sample) = source_events.iter().find(|e| e.recurrence_id == Some(rule.id))
                else {
                    continue;
                };
                if rule.last_day < now.to_zoned(crate::time::paris()).date() {
                    continue;
                }
                agendas
                    .add_recurrence(
                        copy.id,
                        NewRecurrence {
                            label: rule.label.clone(),
                            weekdays: rule.weekdays.clone(),
                            interval_weeks: rule.interval_weeks,
                            start_time: rule.start_time,
                            duration_minutes: rule.duration_minutes,
                            first_day: rule.first_day,
                            last_day: Some(rule.last_day),
                            places: i64::from(sample.fill.places),
                            waiting_list_places: i64::from(sample.fill.waiting_list_places),
                            description: sample.description.clone(),
                            url: sample.url.clone(),
                            publication_at: sample.publication_at,
                            resources: Vec::new(),
                        },
                    )
                    .await?;
            }
            for e in source_events.iter().filter(|e| {
                e.recurrence_id.is_none() && e.cancelled_at.is_none() && e.starts_at > now
            }) {
                agendas.add_event(copy.id, new_event_like(e, e.starts_at, false)).await?;
            }
        }
        AgendaKind::Events => {}
        AgendaKind::Meetings => {
            let config = meetings.get(source).await?.config().await?;
            let target = meetings.get(copy.id).await?;
            for t in &config.types {
                target
                    .add_meeting_type(NewMeetingType {
                        label: t.label.clone(),
                        slug: Some(t.slug.clone()),
                        duration_minutes: i64::from(t.duration_minutes),
                    })
                    .await?;
            }
            let mut desks = HashMap::new();
            for d in &config.desks {
                desks.insert(d.id, target.add_desk(d.label.clone()).await?.id);
            }
            for p in &config.periods {
                let Some(desk) = desks.get(&p.desk_id) else { continue };
                target
                    .add_periods(NewPeriods {
                        desk_ids: vec![*desk],
                        rule: p.rule.clone(),
                        start: p.start,
                        end: p.end,
                    })
                    .await?;
            }
            for x in config.exceptions.iter().filter(|x| x.starts_at > now) {
                target
                    .add_exception(NewException {
                        desk_ids: x.desk_ids.iter().filter_map(|d| desks.get(d).copied()).collect(),
                        starts_at: x.starts_at,
                        ends_at: x.ends_at,
                        label: x.label.clone(),
                    })
                    .await?;
            }
        }
        AgendaKind::Virtual => {
            let original = meetings.virtual_agenda(source).await?;
            let target = meetings.virtual_agenda(copy.id).await?;
            let config = original.config().await?;
            for member in config.members {
                target.add_member(member).await?;
            }
            for x in config.exclusions {
                target.add_exclusion(x.rule, x.start, x.end).await?;
            }
        }
    }
    Ok(copy)
}

/// A new event like `e` at `starts_at`; resources only when asked (a copy at the same time
/// would find them taken by the original).
fn new_event_like(e: &EventView, starts_at: Timestamp, with_resources: bool) -> NewEvent {
    NewEvent {
        label: e.label.clone(),
        starts_at,
        ends_at: e.ends_at.map(|end| starts_at + end.duration_since(e.starts_at)),
        places: i64::from(e.fill.places),
        waiting_list_places: i64::from(e.fill.waiting_list_places),
        description: e.description.clone(),
        url: e.url.clone(),
        publication_at: e.publication_at,
        resources: if with_resources { e.resources.clone() } else { Vec::new() },
    }
}

/// Copies an event of an events agenda to start at `starts_at` (same duration, places and
/// texts, no booking), optionally under another label.
pub async fn duplicate_event(
    agendas: &AgendaRegistry,
    event: EventId,
    starts_at: Timestamp,
    label: Option<String>,
) -> Result<EventView, DuplicateError> {
    let handle = agendas.agenda_of_event(event).await?;
    let source = handle.event(event, false).await?;
    let mut new = new_event_like(&source, starts_at, true);
    if let Some(label) = label {
        new.label = label;
    }
    Ok(agendas.add_event(source.agenda_id, new).await?)
}
