//! Read-only feeds for other programs: iCalendar (RFC 5545) feeds of an agenda's events and of a
//! person's bookings, and an agenda's events or slots as a JSON data source for forms
//! (`{"data": [{"id", "text", "datetime", "disabled"}]}`, the shape w.c.s. reads).
//!
//! Calendar applications cannot send a bearer token, so a person's feed is addressed by a secret
//! of its own (`renewCalendarFeed`), stored hashed and revocable by renewing it.

use std::collections::HashMap;

use actors::agenda::EventView;
use actors::agenda::model::{AgendaKind, BookingStatus};
use actors::datasource::{DataSourceError, agenda_items};
use actors::ids::MeetingTypeId;
use actors::meetings::model::MeetingStatus;
use actors::{ErrorCode, HasErrorCode};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::AppState;

/// Past events older than this are left out of feeds.
const KEEP_PAST: SignedDuration = SignedDuration::from_hours(24 * 90);

fn utc(t: Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().unsigned_abs())
        .unwrap_or_default()
}

fn calendar_response(calendar: Calendar) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/calendar; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300")),
        ],
        calendar.to_string(),
    )
        .into_response()
}

fn error_response(code: ErrorCode, message: &str) -> Response {
    let status = match code {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::BadUserInput => StatusCode::BAD_REQUEST,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Conflict | ErrorCode::Full => StatusCode::CONFLICT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = serde_json::json!({ "err": 1, "code": code.as_str(), "err_desc": message });
    (status, axum::Json(body)).into_response()
}

pub(crate) fn failure<E: HasErrorCode + std::fmt::Display>(e: &E) -> Response {
    match e.code() {
        ErrorCode::Internal | ErrorCode::Unavailable => {
            tracing::warn!(error = %e, "feed unavailable");
            error_response(e.code(), "service temporarily unavailable, try again")
        }
        code => error_response(code, &e.to_string()),
    }
}

fn vevent(uid: &str, summary: &str, starts: Timestamp, ends: Option<Timestamp>) -> Event {
    let mut event = Event::new();
    event.uid(uid).summary(summary).starts(utc(starts));
    if let Some(end) = ends {
        event.ends(utc(end));
    }
    event
}

fn event_vevent(e: &EventView, agenda_label: &str) -> Event {
    let mut event = vevent(&format!("event-{}@guichet", e.id), &e.label, e.starts_at, e.ends_at);
    let description = if e.description.is_empty() {
        agenda_label.to_owned()
    } else {
        format!("{agenda_label}\n\n{}", e.description)
    };
    event.description(&description).sequence(u32::try_from(e.fill.seq).unwrap_or(u32::MAX));
    if let Some(url) = &e.url {
        event.url(url);
    }
    event.status(if e.cancelled_at.is_some() {
        EventStatus::Cancelled
    } else {
        EventStatus::Confirmed
    });
    event.done()
}

/// `GET /agendas/{slug}/events.ics`: the published events of an events agenda (cancelled ones
/// marked so), from 90 days ago on.
pub(crate) async fn agenda_calendar(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Response {
    let Some(slug) = file.strip_suffix(".ics") else {
        return error_response(ErrorCode::NotFound, "feeds end in .ics");
    };
    let agendas = &state.services.agendas;
    let handle = match agendas.by_slug(slug).await {
        Ok(h) => h,
        Err(e) => return failure(&e),
    };
    let settings = handle.settings().clone();
    if settings.kind != AgendaKind::Events {
        return error_response(ErrorCode::NotFound, "only events agendas have an event feed");
    }
    let events = match handle.events().await {
        Ok(e) => e,
        Err(e) => return failure(&e),
    };
    let now = Timestamp::now();
    let mut calendar = Calendar::new();
    calendar.name(&settings.label);
    for e in events.iter().filter(|e| e.is_published(now) && e.starts_at > now - KEEP_PAST) {
        calendar.push(event_vevent(e, &settings.label));
    }
    calendar_response(calendar.done())
}

/// `GET /calendar/{secret}.ics`: a person's active bookings and appointments.
pub(crate) async fn personal_calendar(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Response {
    let Some(secret) = file.strip_suffix(".ics") else {
        return error_response(ErrorCode::NotFound, "feeds end in .ics");
    };
    let services = &state.services;
    let account = match services.accounts.by_calendar_feed(secret).await {
        Ok(a) => a,
        // An unknown secret names nothing.
        Err(_) => return error_response(ErrorCode::NotFound, "no such calendar"),
    };
    let now = Timestamp::now();
    let mut calendar = Calendar::new();
    calendar.name("Guichet");
    let bookings = match services.agendas.bookings_of(account.id, false).await {
        Ok(b) => b,
        Err(e) => return failure(&e),
    };
    let mut labels: HashMap<actors::ids::AgendaId, String> = HashMap::new();
    for b in bookings {
        let Ok(handle) = services.agendas.get(b.agenda_id).await else { continue };
        let Ok(e) = handle.event(b.event_id, false).await else { continue };
        if e.starts_at < now - KEEP_PAST {
            continue;
        }
        let label = labels.entry(b.agenda_id).or_insert_with(|| handle.settings().label.clone());
        let mut vevent = event_vevent(&e, label);
        if b.status == BookingStatus::WaitingList {
            // On the waiting list: the place is not certain.
            vevent.summary(&format!("{} (waiting list)", e.label)).status(EventStatus::Tentative);
        }
        calendar.push(vevent.done());
    }
    let meetings = match services.meetings.meetings_of(account.id, false).await {
        Ok(m) => m,
        Err(e) => return failure(&e),
    };
    for m in meetings.iter().filter(|m| m.status == MeetingStatus::Confirmed) {
        if m.starts_at < now - KEEP_PAST {
            continue;
        }
        let label = match labels.get(&m.agenda_id) {
            Some(l) => l.clone(),
            None => match services.agendas.settings(m.agenda_id).await {
                Ok(s) => labels.entry(m.agenda_id).or_insert(s.label).clone(),
                Err(_) => continue,
            },
        };
        let mut vevent = vevent(
            &format!("meeting-{}@guichet", m.id),
            &format!("Rendez-vous : {label}"),
            m.starts_at,
            Some(m.ends_at),
        );
        vevent.status(EventStatus::Confirmed);
        calendar.push(vevent.done());
    }
    calendar_response(calendar.done())
}

/// Query of the data source.
#[derive(Debug, Deserialize)]
pub(crate) struct DatetimesQuery {
    meeting_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/agendas/{slug}/datetimes?meeting_type=&from=&to=`: bookable events or free slots
/// (from today, 31 days by default, at most 366).
pub(crate) async fn agenda_datetimes(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<DatetimesQuery>,
) -> Response {
    let services = &state.services;
    let agenda = match services.agendas.id_by_slug(&slug).await {
        Ok(a) => a,
        Err(e) => return failure(&e),
    };
    let day = |s: &Option<String>, name: &str| -> Result<Option<Date>, String> {
        s.as_deref()
            .map(|d| d.parse::<Date>().map_err(|_| format!("{name} is not a date like 2026-06-01")))
            .transpose()
    };
    let today = Timestamp::now().to_zoned(actors::time::paris()).date();
    let (from, to) = match (day(&query.from, "from"), day(&query.to, "to")) {
        (Ok(from), Ok(to)) => {
            let from = from.unwrap_or(today);
            (from, to.unwrap_or(from.saturating_add(jiff::ToSpan::days(30))))
        }
        (Err(m), _) | (_, Err(m)) => return error_response(ErrorCode::BadUserInput, &m),
    };
    if to < from || from.until(to).map_or(true, |s| s.get_days() > 366) {
        return error_response(ErrorCode::BadUserInput, "from..to must span 0 to 366 days");
    }
    let meeting_type = match query.meeting_type.as_deref().map(str::parse::<MeetingTypeId>) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return error_response(ErrorCode::NotFound, "meeting type not found"),
    };
    match agenda_items(&services.agendas, &services.meetings, agenda, meeting_type, from, to).await
    {
        Ok(items) => {
            let data: Vec<serde_json::Value> = items
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "id": i.id,
                        "text": i.text,
                        "datetime": i.datetime.to_zoned(actors::time::paris()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                        "disabled": i.disabled,
                        "places_left": i.places_left,
                    })
                })
                .collect();
            axum::Json(serde_json::json!({ "err": 0, "data": data })).into_response()
        }
        Err(e) => failure::<DataSourceError>(&e),
    }
}
