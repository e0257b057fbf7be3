//! Time helpers. Instants are stored as microseconds since the Unix epoch; civil times are shown
//! in the service's time zone (Europe/Paris by default), DST-correct through jiff.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The default time zone of a Guichet instance.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Paris";

/// Microseconds since the Unix epoch, the storage form of every instant.
pub fn to_micros(ts: Timestamp) -> i64 {
    // i64 microseconds cover ±292,000 years, and jiff's range is ±9999 years: no overflow.
    ts.as_microsecond()
}

/// The instant stored as `micros`; out-of-range values (a corrupt record) clamp to the epoch.
pub fn from_micros(micros: i64) -> Timestamp {
    Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The Europe/Paris time zone, bundled with the binary so that it never depends on the host.
pub fn paris() -> TimeZone {
    TimeZone::get(DEFAULT_TIME_ZONE).unwrap_or(TimeZone::UTC)
}

/// A human rendering of an instant in the service's zone, for emails: `2026-03-29 03:15 (CEST)`.
pub fn human(ts: Timestamp) -> String {
    let zoned = ts.to_zoned(paris());
    zoned.strftime("%Y-%m-%d %H:%M (%Z)").to_string()
}
