//! Recurring events: a rule (weekly on given days, every N weeks, from a first day until a last
//! one) that generates occurrences, each an ordinary event that can then be changed or cancelled
//! alone. Times are civil times in Europe/Paris: an occurrence at 10:00 is at 10:00 local time on
//! both sides of a DST change. Plain data and functions, no I/O.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

use super::model::{AgendaError, EventState, NewEvent};
use crate::ids::{AgendaId, EventId, RecurrenceId};

/// The longest a rule may run, which also bounds its occurrences (732 for a daily rule).
const MAX_SPAN_DAYS: i64 = 2 * 366;

/// What an administrator gives to create recurring events.
#[derive(Debug, Clone)]
pub struct NewRecurrence {
    /// Label of every occurrence.
    pub label: String,
    /// Days of the week it happens on.
    pub weekdays: Vec<Weekday>,
    /// Every `interval_weeks` weeks (1: every week), counted from the week of `first_day`.
    pub interval_weeks: u32,
    /// Local start time of each occurrence.
    pub start_time: Time,
    /// Duration of each occurrence, if it has an end.
    pub duration_minutes: Option<u32>,
    /// First day (local).
    pub first_day: Date,
    /// Last day (local, inclusive): a rule must end.
    pub last_day: Option<Date>,
    /// Places of each occurrence.
    pub places: i64,
    /// Waiting-list places of each occurrence.
    pub waiting_list_places: i64,
    /// Free text.
    pub description: String,
    /// Link.
    pub url: Option<String>,
    /// Occurrences are hidden from citizens before this instant.
    pub publication_at: Option<Timestamp>,
    /// Rooms or equipment every occurrence holds (the rule then needs a duration).
    pub resources: Vec<crate::ids::ResourceId>,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    /// Identifier.
    pub id: RecurrenceId,
    /// Agenda.
    pub agenda_id: AgendaId,
    /// Label.
    pub label: String,
    /// Days of the week.
    pub weekdays: Vec<Weekday>,
    /// Every N weeks.
    pub interval_weeks: u32,
    /// Local start time.
    pub start_time: Time,
    /// Duration.
    pub duration_minutes: Option<u32>,
    /// First day.
    pub first_day: Date,
    /// Last day.
    pub last_day: Date,
}

impl NewRecurrence {
    /// Checks the rule and generates its occurrences (events with no booking), none in the past.
    pub fn generate(
        self,
        id: RecurrenceId,
        agenda_id: AgendaId,
        tz: &TimeZone,
        now: Timestamp,
    ) -> Result<(Recurrence, Vec<EventState>), AgendaError> {
        let invalid = |m: String| AgendaError::Invalid(m);
        let last_day =
            self.last_day.ok_or_else(|| invalid("a recurrence needs a last day (until)".into()))?;
        if last_day < self.first_day {
            return Err(invalid("the last day of a recurrence comes before its first day".into()));
        }
        if days_between(self.first_day, last_day) > MAX_SPAN_DAYS {
            return Err(invalid("a recurrence spans at most two years".into()));
        }
        if self.weekdays.is_empty() {
            return Err(invalid("a recurrence needs at least one weekday".into()));
        }
        if !(1..=52).contains(&self.interval_weeks) {
            return Err(invalid("intervalWeeks must be between 1 and 52".into()));
        }
        if self.duration_minutes.is_some_and(|d| d == 0 || d > 24 * 60) {
            return Err(invalid("durationMinutes must be between 1 and 1440".into()));
        }
        let mut weekdays = self.weekdays.clone();
        weekdays.sort_by_key(|w| w.to_monday_zero_offset());
        weekdays.dedup();
        // Weeks are counted from the Monday of the first day's week.
        let week0 = self
            .first_day
            .saturating_sub(i64::from(self.first_day.weekday().to_monday_zero_offset()).days());
        let mut events = Vec::new();
        let mut day = self.first_day;
        while day <= last_day {
            let week = days_between(week0, day) / 7;
            let in_week = week % i64::from(self.interval_weeks) == 0;
            if in_week && weekdays.contains(&day.weekday()) {
                let starts_at = resolve(tz, day, self.start_time)?;
                if starts_at > now {
                    let ends_at = self
                        .duration_minutes
                        .map(|m| starts_at + SignedDuration::from_mins(i64::from(m)));
                    let mut event = NewEvent {
                        label: self.label.clone(),
                        starts_at,
                        ends_at,
                        places: self.places,
                        waiting_list_places: self.waiting_list_places,
                        description: self.description.clone(),
                        url: self.url.clone(),
                        publication_at: self.publication_at,
                        resources: self.resources.clone(),
                    }
                    .validate(EventId::new(), agenda_id)?;
                    event.recurrence_id = Some(id);
                    events.push(event);
                }
            }
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        if events.is_empty() {
            return Err(invalid("this recurrence has no occurrence to come".into()));
        }
        let label = events.first().map(|e| e.label.clone()).unwrap_or_default();
        let rule = Recurrence {
            id,
            agenda_id,
            label,
            weekdays,
            interval_weeks: self.interval_weeks,
            start_time: self.start_time,
            duration_minutes: self.duration_minutes,
            first_day: self.first_day,
            last_day,
        };
        Ok((rule, events))
    }
}

fn days_between(from: Date, to: Date) -> i64 {
    from.until(to).map_or(i64::MAX, |span| i64::from(span.get_days()))
}

/// The instant of a local time; a time that a DST change skips on that day is refused, since no
/// rule can say what the organiser meant (02:30 on 29 March 2026 does not exist in Paris).
/// A time that happens twice takes the first.
fn resolve(tz: &TimeZone, day: Date, time: Time) -> Result<Timestamp, AgendaError> {
    let ambiguous = tz.to_ambiguous_timestamp(DateTime::from_parts(day, time));
    if matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. }) {
        return Err(AgendaError::Invalid(format!(
            "{time} does not exist on {day} in {} (daylight saving time change)",
            tz.iana_name().unwrap_or("this time zone")
        )));
    }
    ambiguous.compatible().map_err(|e| AgendaError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use jiff::civil::{date, time};

    use super::*;
    use crate::time::paris;

    fn rule(first: Date, last: Option<Date>) -> NewRecurrence {
        NewRecurrence {
            label: "Aquagym".into(),
            weekdays: vec![Weekday::Monday],
            interval_weeks: 1,
            start_time: time(10, 0, 0, 0),
            duration_minutes: Some(45),
            first_day: first,
            last_day: last,
            places: 12,
            waiting_list_places: 2,
            description: String::new(),
            url: None,
            publication_at: None,
            resources: vec![],
        }
    }

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn weekly_occurrences_keep_local_time_across_dst() {
        let (rec, events) = rule(date(2026, 3, 1), Some(date(2026, 4, 30)))
            .generate(RecurrenceId::new(), AgendaId::new(), &paris(), now())
            .unwrap();
        assert_eq!(rec.last_day, date(2026, 4, 30));
        // Mondays from 2 March to 27 April 2026: nine of them.
        assert_eq!(events.len(), 9);
        for e in &events {
            let local = e.starts_at.to_zoned(paris());
            assert_eq!(local.weekday(), Weekday::Monday);
            assert_eq!((local.hour(), local.minute()), (10, 0), "{local}");
            assert_eq!(
                e.ends_at.unwrap().duration_since(e.starts_at),
                SignedDuration::from_mins(45)
            );
            assert_eq!(e.recurrence_id, Some(rec.id));
        }
        // 23 March is CET (+01:00), 30 March is CEST (+02:00): the UTC hour moves.
        assert_eq!(events[3].starts_at.to_string(), "2026-03-23T09:00:00Z");
        assert_eq!(events[4].starts_at.to_string(), "2026-03-30T08:00:00Z");
    }

    #[test]
    fn every_other_week_on_two_days() {
        let mut r = rule(date(2026, 9, 2), Some(date(2026, 9, 30)));
        r.weekdays = vec![Weekday::Friday, Weekday::Monday, Weekday::Friday];
        r.interval_weeks = 2;
        let (_, events) =
            r.generate(RecurrenceId::new(), AgendaId::new(), &paris(), now()).unwrap();
        let days: Vec<Date> = events.iter().map(|e| e.starts_at.to_zoned(paris()).date()).collect();
        // Week of 31 August (first day Wednesday 2): Friday 4; then the week of 14 September:
        // Monday 14 and Friday 18; then the week of 28 September: Monday 28.
        assert_eq!(
            days,
            vec![date(2026, 9, 4), date(2026, 9, 14), date(2026, 9, 18), date(2026, 9, 28)]
        );
    }

    #[test]
    fn past_occurrences_are_not_generated() {
        let now: Timestamp = "2026-03-10T00:00:00Z".parse().unwrap();
        let (_, events) = rule(date(2026, 3, 1), Some(date(2026, 3, 31)))
            .generate(RecurrenceId::new(), AgendaId::new(), &paris(), now)
            .unwrap();
        assert_eq!(events.len(), 3, "16, 23 and 30 March");
    }

    #[test]
    fn bad_rules_are_refused() {
        let g =
            |r: NewRecurrence| r.generate(RecurrenceId::new(), AgendaId::new(), &paris(), now());
        assert!(
            matches!(g(rule(date(2026, 3, 1), None)), Err(AgendaError::Invalid(m)) if m.contains("last day"))
        );
        assert!(g(rule(date(2026, 3, 1), Some(date(2026, 2, 1)))).is_err());
        assert!(g(rule(date(2026, 3, 1), Some(date(2029, 3, 1)))).is_err(), "more than two years");
        let mut no_day = rule(date(2026, 3, 1), Some(date(2026, 4, 1)));
        no_day.weekdays.clear();
        assert!(g(no_day).is_err());
        // Sundays at 02:30 include 29 March 2026, which has no 02:30 in Paris.
        let mut gap = rule(date(2026, 3, 1), Some(date(2026, 4, 30)));
        gap.weekdays = vec![Weekday::Sunday];
        gap.start_time = time(2, 30, 0, 0);
        assert!(matches!(g(gap), Err(AgendaError::Invalid(m)) if m.contains("2026-03-29")));
        let mut negative = rule(date(2026, 3, 1), Some(date(2026, 4, 1)));
        negative.places = -1;
        assert!(g(negative).is_err());
        let mut fortnightly_forever = rule(date(2026, 3, 1), Some(date(2026, 4, 1)));
        fortnightly_forever.interval_weeks = 0;
        assert!(g(fortnightly_forever).is_err());
        let mut daily = rule(date(2026, 1, 2), Some(date(2027, 12, 31)));
        daily.weekdays = vec![
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ];
        assert_eq!(g(daily).unwrap().1.len(), 729, "daily for two years is the most a rule makes");
    }
}
