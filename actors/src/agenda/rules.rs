//! The booking rules of an events agenda: when citizens may book (delays counted in days or in
//! working days, as Chrono does), until when they may cancel, whom to mail, and the absence
//! reasons of attendance checks. Plain data and functions: the clock is a parameter.

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};

use crate::meetings::holidays::is_french_public_holiday;
use crate::time::paris;

/// Which mails citizens receive about their bookings of an agenda.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CitizenNotifications {
    /// A mail when a booking is made (confirmed or on the waiting list) or promoted.
    pub on_booking: bool,
    /// A mail when a booking is cancelled by an agent (a cancelled event always mails).
    pub on_cancellation: bool,
    /// A reminder this many hours before the event.
    pub reminder_hours: Option<u32>,
}

/// The rules of an events agenda.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct EventRules {
    /// Citizens book events starting this many days from today on (0: any event not started).
    pub minimal_booking_delay_days: u32,
    /// Count the minimal delay in working days (no weekends, no French public holidays).
    pub minimal_delay_in_working_days: bool,
    /// Citizens book events starting before the day this many days from today; none: no limit.
    pub maximal_booking_delay_days: Option<u32>,
    /// Citizens cancel until this many hours before the start; none: until the start.
    pub cancellation_deadline_hours: Option<u32>,
    /// Mails to citizens.
    pub citizen_notifications: CitizenNotifications,
    /// Reasons an agent may give when marking a booking absent.
    pub absence_reasons: Vec<String>,
}

/// Why rules were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRules(pub String);

/// The longest delay, deadline or reminder, in days; beyond it, input is surely a mistake.
const MAX_DAYS: u32 = 3 * 366;

impl EventRules {
    /// No delay, no deadline, no mail, no absence reason (the default, as a constant).
    pub const NONE: Self = Self {
        minimal_booking_delay_days: 0,
        minimal_delay_in_working_days: false,
        maximal_booking_delay_days: None,
        cancellation_deadline_hours: None,
        citizen_notifications: CitizenNotifications {
            on_booking: false,
            on_cancellation: false,
            reminder_hours: None,
        },
        absence_reasons: Vec::new(),
    };

    /// Checks the rules and normalises the absence reasons.
    pub fn validate(mut self) -> Result<Self, InvalidRules> {
        if self.minimal_booking_delay_days > MAX_DAYS {
            return Err(InvalidRules(format!(
                "minimalBookingDelayDays must be at most {MAX_DAYS}"
            )));
        }
        if let Some(max) = self.maximal_booking_delay_days {
            if max == 0 || max > MAX_DAYS {
                return Err(InvalidRules(format!(
                    "maximalBookingDelayDays must be between 1 and {MAX_DAYS}"
                )));
            }
            if max <= self.minimal_booking_delay_days {
                return Err(InvalidRules(
                    "maximalBookingDelayDays must be larger than minimalBookingDelayDays".into(),
                ));
            }
        }
        if self.cancellation_deadline_hours.is_some_and(|h| h > MAX_DAYS * 24) {
            return Err(InvalidRules("cancellationDeadlineHours is too large".into()));
        }
        if self.citizen_notifications.reminder_hours.is_some_and(|h| h == 0 || h > 24 * 60) {
            return Err(InvalidRules("reminderHours must be between 1 and 1440".into()));
        }
        let mut reasons: Vec<String> = Vec::new();
        for r in &self.absence_reasons {
            let r = r.trim();
            if r.is_empty() || r.chars().count() > 100 {
                return Err(InvalidRules("absence reasons have 1 to 100 characters".into()));
            }
            if reasons.iter().any(|x| x == r) {
                return Err(InvalidRules(format!("absence reason {r:?} is listed twice")));
            }
            reasons.push(r.to_owned());
        }
        self.absence_reasons = reasons;
        Ok(self)
    }

    /// The first local day citizens may book on, seen from `today`.
    pub fn first_bookable_day(&self, today: Date) -> Date {
        let n = i64::from(self.minimal_booking_delay_days);
        if !self.minimal_delay_in_working_days {
            return today.saturating_add(n.days());
        }
        let mut day = today;
        let mut counted = 0;
        while counted < n {
            day = day.saturating_add(1.day());
            if is_working_day(day) {
                counted += 1;
            }
        }
        day
    }

    /// The first local day citizens may no longer book, seen from `today`.
    pub fn first_closed_day(&self, today: Date) -> Option<Date> {
        self.maximal_booking_delay_days.map(|n| today.saturating_add(i64::from(n).days()))
    }

    /// Whether a citizen may book an event starting at `starts_at`, at `now`.
    pub fn check_booking_window(
        &self,
        starts_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), BookingWindow> {
        let tz = paris();
        let today = now.to_zoned(tz.clone()).date();
        let day = starts_at.to_zoned(tz).date();
        let from = self.first_bookable_day(today);
        let until = self.first_closed_day(today);
        if self.minimal_booking_delay_days > 0 && day < from {
            return Err(BookingWindow { from, until });
        }
        if until.is_some_and(|u| day >= u) {
            return Err(BookingWindow { from, until });
        }
        Ok(())
    }

    /// Whether a citizen may still cancel a booking of an event starting at `starts_at`.
    pub fn may_citizen_cancel(&self, starts_at: Timestamp, now: Timestamp) -> bool {
        let hours = i64::from(self.cancellation_deadline_hours.unwrap_or(0));
        now < starts_at - SignedDuration::from_hours(hours)
    }
}

/// The days a citizen may book on, when an event is outside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingWindow {
    /// First bookable local day.
    pub from: Date,
    /// First local day no longer bookable.
    pub until: Option<Date>,
}

impl std::fmt::Display for BookingWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.until {
            Some(u) => write!(
                f,
                "events starting from {} to {} can be booked",
                self.from,
                u.yesterday().unwrap_or(u)
            ),
            None => write!(f, "events starting from {} on can be booked", self.from),
        }
    }
}

/// Monday to Friday, not a French public holiday.
pub fn is_working_day(day: Date) -> bool {
    use jiff::civil::Weekday::{Saturday, Sunday};
    !matches!(day.weekday(), Saturday | Sunday) && !is_french_public_holiday(day)
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    fn at(d: Date, h: i8) -> Timestamp {
        d.at(h, 0, 0, 0).to_zoned(paris()).unwrap().timestamp()
    }

    #[test]
    fn working_days_skip_weekends_and_holidays() {
        let rules = EventRules {
            minimal_booking_delay_days: 2,
            minimal_delay_in_working_days: true,
            ..EventRules::default()
        };
        // Thursday 24 December 2026: Friday 25 is Christmas, then a weekend; two working days
        // later is Tuesday 29.
        assert_eq!(rules.first_bookable_day(date(2026, 12, 24)), date(2026, 12, 29));
        let calendar = EventRules { minimal_delay_in_working_days: false, ..rules.clone() };
        assert_eq!(calendar.first_bookable_day(date(2026, 12, 24)), date(2026, 12, 26));
    }

    #[test]
    fn booking_window_uses_local_days() {
        let rules = EventRules {
            minimal_booking_delay_days: 1,
            maximal_booking_delay_days: Some(7),
            ..EventRules::default()
        };
        let now = at(date(2026, 12, 7), 23);
        assert!(
            rules
                .check_booking_window(
                    at(date(2026, 12, 7), 23) + SignedDuration::from_mins(30),
                    now
                )
                .is_err()
        );
        assert!(rules.check_booking_window(at(date(2026, 12, 8), 0), now).is_ok());
        assert!(rules.check_booking_window(at(date(2026, 12, 13), 20), now).is_ok());
        let late = rules.check_booking_window(at(date(2026, 12, 14), 9), now);
        assert_eq!(
            late.map_err(|w| w.to_string()),
            Err("events starting from 2026-12-08 to 2026-12-13 can be booked".into())
        );
    }

    #[test]
    fn cancellation_deadline() {
        let rules = EventRules { cancellation_deadline_hours: Some(48), ..EventRules::default() };
        let start = at(date(2026, 12, 10), 10);
        assert!(rules.may_citizen_cancel(start, at(date(2026, 12, 8), 9)));
        assert!(!rules.may_citizen_cancel(start, at(date(2026, 12, 8), 11)));
        assert!(EventRules::default().may_citizen_cancel(start, at(date(2026, 12, 10), 9)));
        assert!(!EventRules::default().may_citizen_cancel(start, start));
    }

    #[test]
    fn invalid_rules_are_refused() {
        let bad = |r: EventRules| r.validate().is_err();
        assert!(bad(EventRules { maximal_booking_delay_days: Some(0), ..EventRules::default() }));
        assert!(bad(EventRules {
            minimal_booking_delay_days: 10,
            maximal_booking_delay_days: Some(5),
            ..EventRules::default()
        }));
        assert!(bad(EventRules {
            absence_reasons: vec!["Malade".into(), " Malade ".into()],
            ..EventRules::default()
        }));
        let ok = EventRules { absence_reasons: vec![" Malade ".into()], ..EventRules::default() };
        assert_eq!(ok.validate().unwrap().absence_reasons, vec!["Malade".to_owned()]);
    }
}
