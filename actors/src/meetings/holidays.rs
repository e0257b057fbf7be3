//! French public holidays ("jours fériés"), computed for any year: the fixed days and those that
//! follow Easter (Monday after Easter, Ascension, Whit Monday). Meetings agendas close on them
//! unless told otherwise.

use jiff::ToSpan;
use jiff::civil::{Date, date};

/// Easter Sunday of `year` in the Gregorian calendar (anonymous Gregorian algorithm, also known
/// as Meeus/Jones/Butcher), valid for every year jiff can represent.
pub fn easter_sunday(year: i16) -> Date {
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // month is 3 or 4 and day 1 to 31 by construction of the algorithm.
    date(year, month as i8, day as i8)
}

/// The eleven public holidays of metropolitan France in `year`, by date, with their names.
pub fn french_public_holidays(year: i16) -> Vec<(Date, &'static str)> {
    let easter = easter_sunday(year);
    let after_easter = |days: i64, name| {
        // Easter is in March or April: adding at most 50 days stays within the same year.
        easter.checked_add(days.days()).ok().map(|d| (d, name))
    };
    let mut days = vec![
        (date(year, 1, 1), "Jour de l'an"),
        (date(year, 5, 1), "Fête du Travail"),
        (date(year, 5, 8), "Victoire 1945"),
        (date(year, 7, 14), "Fête nationale"),
        (date(year, 8, 15), "Assomption"),
        (date(year, 11, 1), "Toussaint"),
        (date(year, 11, 11), "Armistice 1918"),
        (date(year, 12, 25), "Noël"),
    ];
    days.extend(after_easter(1, "Lundi de Pâques"));
    days.extend(after_easter(39, "Ascension"));
    days.extend(after_easter(50, "Lundi de Pentecôte"));
    days.sort();
    days
}

/// True when `day` is a French public holiday.
pub fn is_french_public_holiday(day: Date) -> bool {
    french_public_holidays(day.year()).iter().any(|(d, _)| *d == day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easter_matches_published_dates() {
        // Dates from the published tables of Easter Sundays.
        for (y, m, d) in [
            (1961, 4, 2),
            (2000, 4, 23),
            (2008, 3, 23),
            (2011, 4, 24),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2038, 4, 25),
            (2285, 3, 22),
        ] {
            assert_eq!(easter_sunday(y), date(y, m, d), "Easter {y}");
        }
    }

    #[test]
    fn holidays_of_2026() {
        let days: Vec<Date> = french_public_holidays(2026).into_iter().map(|(d, _)| d).collect();
        assert_eq!(
            days,
            vec![
                date(2026, 1, 1),
                date(2026, 4, 6),
                date(2026, 5, 1),
                date(2026, 5, 8),
                date(2026, 5, 14),
                date(2026, 5, 25),
                date(2026, 7, 14),
                date(2026, 8, 15),
                date(2026, 11, 1),
                date(2026, 11, 11),
                date(2026, 12, 25),
            ]
        );
        assert!(is_french_public_holiday(date(2027, 5, 6)), "Ascension 2027");
        assert!(!is_french_public_holiday(date(2026, 4, 5)), "Easter Sunday is a Sunday anyway");
    }
}
