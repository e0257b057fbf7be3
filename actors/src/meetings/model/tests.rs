use jiff::civil::{date, time};

use super::*;
use crate::time::paris;

/// An agenda with one 30-minute type and two desks open Monday to Friday 09:00–12:00, with no
/// booking delays (so that tests choose their own `now`).
struct World {
    agenda: MeetingsAgenda,
    half_hour: MeetingTypeId,
    desks: Vec<DeskId>,
}

fn rules() -> MeetingsRules {
    MeetingsRules {
        minimal_booking_delay_days: 0,
        maximal_booking_delay_days: 1000,
        ..MeetingsRules::default()
    }
}

fn world() -> World {
    let mut agenda = MeetingsAgenda::new(AgendaId::new(), paris(), rules());
    let desks: Vec<DeskId> = (0..2).map(|_| DeskId::new()).collect();
    for (i, d) in desks.iter().enumerate() {
        let desk = agenda.new_desk(&format!("Guichet {}", i + 1), *d).unwrap();
        agenda.desks.insert(*d, desk);
    }
    for w in
        [Weekday::Monday, Weekday::Tuesday, Weekday::Wednesday, Weekday::Thursday, Weekday::Friday]
    {
        let periods = agenda
            .new_periods(
                NewPeriods {
                    desk_ids: desks.clone(),
                    rule: PeriodRule::Weekly(w),
                    start: time(9, 0, 0, 0),
                    end: time(12, 0, 0, 0),
                },
                date(2026, 1, 1),
                PeriodId::new,
            )
            .unwrap();
        agenda.periods.extend(periods);
    }
    let mt = agenda
        .new_meeting_type(
            NewMeetingType { label: "Passeport".into(), slug: None, duration_minutes: 30 },
            MeetingTypeId::new(),
        )
        .unwrap();
    let half_hour = mt.id;
    agenda.types.insert(mt.id, mt);
    World { agenda, half_hour, desks }
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn local(slots: &[Slot]) -> Vec<String> {
    slots.iter().map(|s| s.starts_at.to_zoned(paris()).strftime("%H:%M%:z").to_string()).collect()
}

fn request(mt: MeetingTypeId, start: &str) -> SlotRequest {
    SlotRequest {
        meeting_type_id: mt,
        starts_at: at(start),
        account_id: Some(AccountId::new()),
        booked_by: None,
        lock_code: None,
        ignore_delays: false,
    }
}

const MONDAY_MORNING: &str = "2026-06-01T06:00:00Z";

#[test]
fn weekly_periods_give_half_hour_slots_on_every_desk() {
    let w = world();
    let slots = w
        .agenda
        .free_slots(
            w.half_hour,
            date(2026, 6, 1),
            date(2026, 6, 1),
            at(MONDAY_MORNING),
            None,
            false,
        )
        .unwrap();
    assert_eq!(
        local(&slots),
        ["09:00+02:00", "09:30+02:00", "10:00+02:00", "10:30+02:00", "11:00+02:00", "11:30+02:00"]
    );
    let mut sorted = w.desks.clone();
    sorted.sort();
    assert!(slots.iter().all(|s| s.free_desks == sorted));
    // Saturday and Sunday have no period.
    let weekend = w
        .agenda
        .free_slots(
            w.half_hour,
            date(2026, 6, 6),
            date(2026, 6, 7),
            at(MONDAY_MORNING),
            None,
            false,
        )
        .unwrap();
    assert!(weekend.is_empty());
}

#[test]
fn bookings_take_one_desk_each_until_none_is_left() {
    let mut w = world();
    let now = at(MONDAY_MORNING);
    let slot = "2026-06-01T09:00:00+02:00";
    let (a, _) = w
        .agenda
        .reserve(&request(w.half_hour, slot), MeetingStatus::Confirmed, now, MeetingId::new)
        .unwrap();
    let (b, _) = w
        .agenda
        .reserve(&request(w.half_hour, slot), MeetingStatus::Confirmed, now, MeetingId::new)
        .unwrap();
    assert_ne!(a.desk_id, b.desk_id, "two meetings at once use two desks");
    let third = w.agenda.reserve(
        &request(w.half_hour, slot),
        MeetingStatus::Confirmed,
        now,
        MeetingId::new,
    );
    assert!(matches!(third, Err(MeetingsError::SlotTaken(_))), "{third:?}");
    let slots = w
        .agenda
        .free_slots(w.half_hour, date(2026, 6, 1), date(2026, 6, 1), now, None, false)
        .unwrap();
    assert_eq!(local(&slots)[0], "09:30+02:00", "the full slot is no longer listed");
    // Cancelling frees the desk again.
    w.agenda.cancel(a.id).unwrap();
    let slots = w
        .agenda
        .free_slots(w.half_hour, date(2026, 6, 1), date(2026, 6, 1), now, None, false)
        .unwrap();
    assert_eq!(slots[0].free_desks, vec![a.desk_id]);
}

#[test]
fn longer_meetings_block_overlapping_slots_of_other_types() {
    let mut w = world();
    let hour = w
        .agenda
        .new_meeting_type(
            NewMeetingType { label: "Mariage".into(), slug: None, duration_minutes: 60 },
            MeetingTypeId::new(),
        )
        .unwrap();
    let hour_id = hour.id;
    w.agenda.types.insert(hour.id, hour);
    let now = at(MONDAY_MORNING);
    // Book both desks for an hour at 10:00.
    for _ in 0..2 {
        w.agenda
            .reserve(
                &request(hour_id, "2026-06-01T10:00:00+02:00"),
                MeetingStatus::Confirmed,
                now,
                MeetingId::new,
            )
            .unwrap();
    }
    let slots = w
        .agenda
        .free_slots(w.half_hour, date(2026, 6, 1), date(2026, 6, 1), now, None, false)
        .unwrap();
    assert_eq!(local(&slots), ["09:00+02:00", "09:30+02:00", "11:00+02:00", "11:30+02:00"]);
    let hours =
        w.agenda.free_slots(hour_id, date(2026, 6, 1), date(2026, 6, 1), now, None, false).unwrap();
    // An hour fits at 09:00 and 11:00 only (09:30 would run into 10:00).
    assert_eq!(local(&hours), ["09:00+02:00", "11:00+02:00"]);
}

#[test]
fn a_night_period_across_the_spring_change_counts_real_minutes() {
    let mut w = world();
    let desk = w.desks[0];
    let periods = w
        .agenda
        .new_periods(
            NewPeriods {
                desk_ids: vec![desk],
                rule: PeriodRule::Weekly(Weekday::Sunday),
                start: time(1, 0, 0, 0),
                end: time(4, 0, 0, 0),
            },
            date(2026, 1, 1),
            PeriodId::new,
        )
        .unwrap();
    w.agenda.periods.extend(periods);
    // A quarter-hour type makes the step 15 minutes.
    let quarter = w
        .agenda
        .new_meeting_type(
            NewMeetingType { label: "Renseignement".into(), slug: None, duration_minutes: 15 },
            MeetingTypeId::new(),
        )
        .unwrap();
    w.agenda.types.insert(quarter.id, quarter);
    w.agenda.rules.closed_on_public_holidays = false;
    let now = at("2026-03-01T00:00:00Z");
    let slots = w
        .agenda
        .free_slots(w.half_hour, date(2026, 3, 29), date(2026, 3, 29), now, None, false)
        .unwrap();
    // 01:00 CET to 04:00 CEST is two real hours: 01:00 ... 01:45 CET, then 03:00 ... 03:30 CEST.
    assert_eq!(
        local(&slots),
        [
            "01:00+01:00",
            "01:15+01:00",
            "01:30+01:00",
            "01:45+01:00",
            "03:00+02:00",
            "03:15+02:00",
            "03:30+02:00"
        ]
    );
    let last_before = &slots[3];
    assert_eq!(
        last_before.ends_at.to_zoned(paris()).strftime("%H:%M%:z").to_string(),
        "03:15+02:00",
        "a 30-minute meeting from 01:45 ends at 03:15 local"
    );
    // The autumn change: 01:00 CEST to 04:00 CET is four real hours, 02:00–02:59 twice.
    let autumn = w
        .agenda
        .free_slots(w.half_hour, date(2026, 10, 25), date(2026, 10, 25), now, None, false)
        .unwrap();
    assert_eq!(autumn.len(), 15, "{:?}", local(&autumn));
    assert!(local(&autumn).contains(&"02:30+02:00".to_owned()));
    assert!(local(&autumn).contains(&"02:30+01:00".to_owned()));
}

#[test]
fn one_off_periods_inside_the_dst_gap_are_refused() {
    let w = world();
    let input = |start, end| NewPeriods {
        desk_ids: vec![w.desks[0]],
        rule: PeriodRule::Date(date(2026, 3, 29)),
        start,
        end,
    };
    let gap = w.agenda.new_periods(
        input(time(2, 30, 0, 0), time(5, 0, 0, 0)),
        date(2026, 1, 1),
        PeriodId::new,
    );
    assert!(
        matches!(&gap, Err(MeetingsError::Invalid(m)) if m.contains("does not exist")),
        "{gap:?}"
    );
    let ok = w.agenda.new_periods(
        input(time(3, 0, 0, 0), time(5, 0, 0, 0)),
        date(2026, 1, 1),
        PeriodId::new,
    );
    assert!(ok.is_ok());
}

#[test]
fn overlapping_and_malformed_periods_are_refused() {
    let w = world();
    let today = date(2026, 1, 1);
    let try_add = |rule, start, end| {
        w.agenda.new_periods(
            NewPeriods { desk_ids: vec![w.desks[0]], rule, start, end },
            today,
            PeriodId::new,
        )
    };
    // 11:00–13:00 on Mondays overlaps 09:00–12:00 on Mondays.
    assert!(
        try_add(PeriodRule::Weekly(Weekday::Monday), time(11, 0, 0, 0), time(13, 0, 0, 0)).is_err()
    );
    // The first Monday of the month is a Monday too.
    let nth = PeriodRule::MonthlyNth { weekday: Weekday::Monday, nths: vec![1] };
    assert!(try_add(nth, time(11, 0, 0, 0), time(13, 0, 0, 0)).is_err());
    // A date that is a Wednesday overlaps the Wednesday period; afternoons do not.
    assert!(
        try_add(PeriodRule::Date(date(2026, 6, 3)), time(10, 0, 0, 0), time(11, 0, 0, 0)).is_err()
    );
    assert!(
        try_add(PeriodRule::Date(date(2026, 6, 3)), time(14, 0, 0, 0), time(16, 0, 0, 0)).is_ok()
    );
    assert!(
        try_add(PeriodRule::Weekly(Weekday::Monday), time(12, 0, 0, 0), time(13, 0, 0, 0)).is_ok(),
        "adjacent is fine"
    );
    // End before start, off-grid times, a date in the past, a period shorter than every type.
    assert!(
        try_add(PeriodRule::Weekly(Weekday::Saturday), time(12, 0, 0, 0), time(9, 0, 0, 0))
            .is_err()
    );
    assert!(
        try_add(PeriodRule::Weekly(Weekday::Saturday), time(9, 2, 0, 0), time(12, 0, 0, 0))
            .is_err()
    );
    assert!(
        try_add(PeriodRule::Date(date(2025, 6, 3)), time(14, 0, 0, 0), time(16, 0, 0, 0)).is_err()
    );
    assert!(
        try_add(PeriodRule::Weekly(Weekday::Saturday), time(9, 0, 0, 0), time(9, 15, 0, 0))
            .is_err()
    );
    let bad_nth = PeriodRule::MonthlyNth { weekday: Weekday::Saturday, nths: vec![6] };
    assert!(try_add(bad_nth, time(9, 0, 0, 0), time(12, 0, 0, 0)).is_err());
    // A meeting type longer than every period is refused.
    let long = w.agenda.new_meeting_type(
        NewMeetingType { label: "Long".into(), slug: None, duration_minutes: 240 },
        MeetingTypeId::new(),
    );
    assert!(long.is_err());
}

#[test]
fn meeting_type_slugs_come_from_labels_and_are_unique() {
    let mut w = world();
    assert_eq!(w.agenda.types[&w.half_hour].slug, "passeport");
    assert_eq!(slugify("Dépôt de dossier (CNI)"), "depot-de-dossier-cni");
    assert_eq!(slugify("Œuvre — été"), "oeuvre-ete");
    let again = w
        .agenda
        .new_meeting_type(
            NewMeetingType { label: "Passeport".into(), slug: None, duration_minutes: 15 },
            MeetingTypeId::new(),
        )
        .unwrap();
    assert_eq!(again.slug, "passeport-2", "a derived slug takes a number");
    let taken = w.agenda.new_meeting_type(
        NewMeetingType {
            label: "Autre".into(),
            slug: Some("passeport".into()),
            duration_minutes: 15,
        },
        MeetingTypeId::new(),
    );
    assert!(taken.is_err(), "a given slug must be free");
    let bad = w.agenda.new_meeting_type(
        NewMeetingType { label: "X".into(), slug: Some("Pas Bon".into()), duration_minutes: 15 },
        MeetingTypeId::new(),
    );
    assert!(bad.is_err());
    let ok = w
        .agenda
        .new_meeting_type(
            NewMeetingType {
                label: "Passeport express".into(),
                slug: Some("passeport-express".into()),
                duration_minutes: 15,
            },
            MeetingTypeId::new(),
        )
        .unwrap();
    w.agenda.types.insert(ok.id, ok);
}

#[test]
fn nth_weekday_rules_match_the_right_days() {
    let second_and_fourth =
        PeriodRule::MonthlyNth { weekday: Weekday::Wednesday, nths: vec![2, 4] };
    // June 2026: Wednesdays are the 3rd, 10th, 17th and 24th.
    let days: Vec<i8> =
        (1..=30).filter(|d| second_and_fourth.applies_to(date(2026, 6, *d))).collect();
    assert_eq!(days, [10, 24]);
    let last_friday = PeriodRule::MonthlyNth { weekday: Weekday::Friday, nths: vec![-1] };
    let days: Vec<i8> = (1..=31).filter(|d| last_friday.applies_to(date(2026, 7, *d))).collect();
    assert_eq!(days, [31]);
}

#[test]
fn public_holidays_weekends_and_exceptions_close_desks() {
    let mut w = world();
    let now = at("2026-05-01T00:00:00Z");
    // 14 May 2026 is Ascension Thursday.
    let ascension = w
        .agenda
        .free_slots(w.half_hour, date(2026, 5, 14), date(2026, 5, 14), now, None, false)
        .unwrap();
    assert!(ascension.is_empty());
    w.agenda.rules.closed_on_public_holidays = false;
    let open = w
        .agenda
        .free_slots(w.half_hour, date(2026, 5, 14), date(2026, 5, 14), now, None, false)
        .unwrap();
    assert_eq!(open.len(), 6);
    // An exception on one desk from 10:00 to 11:00 leaves the other desk's slots.
    let ex = w
        .agenda
        .new_exception(
            NewException {
                desk_ids: vec![w.desks[0]],
                starts_at: at("2026-05-14T10:00:00+02:00"),
                ends_at: at("2026-05-14T11:00:00+02:00"),
                label: "Formation".into(),
            },
            now,
            ExceptionId::new(),
        )
        .unwrap();
    w.agenda.exceptions.push(ex);
    let slots = w
        .agenda
        .free_slots(w.half_hour, date(2026, 5, 14), date(2026, 5, 14), now, None, false)
        .unwrap();
    let ten = slots.iter().find(|s| local(std::slice::from_ref(s))[0] == "10:00+02:00").unwrap();
    assert_eq!(ten.free_desks, vec![w.desks[1]]);
    // An exception with no desk closes them all; one in the past is refused.
    let all = w
        .agenda
        .new_exception(
            NewException {
                desk_ids: vec![],
                starts_at: at("2026-05-14T00:00:00+02:00"),
                ends_at: at("2026-05-15T00:00:00+02:00"),
                label: "Grève".into(),
            },
            now,
            ExceptionId::new(),
        )
        .unwrap();
    assert_eq!(all.desk_ids.len(), 2);
    let past = w.agenda.new_exception(
        NewException {
            desk_ids: vec![],
            starts_at: at("2026-04-01T00:00:00Z"),
            ends_at: at("2026-04-02T00:00:00Z"),
            label: "Passé".into(),
        },
        now,
        ExceptionId::new(),
    );
    assert!(past.is_err());
}

#[test]
fn booking_delays_bound_the_slots() {
    let mut w = world();
    w.agenda.rules.minimal_booking_delay_days = 1;
    w.agenda.rules.maximal_booking_delay_days = 7;
    let now = at(MONDAY_MORNING);
    let slots = w
        .agenda
        .free_slots(w.half_hour, date(2026, 6, 1), date(2026, 6, 30), now, None, false)
        .unwrap();
    let first = slots.first().unwrap().starts_at.to_zoned(paris());
    let last = slots.last().unwrap().starts_at.to_zoned(paris());
    assert_eq!(first.date(), date(2026, 6, 2), "not today");
    // Seven days from Monday 1 June is Monday 8 June, excluded; the weekend before is closed.
    assert_eq!(last.date(), date(2026, 6, 5), "before the seventh day from today");
    let today = w.agenda.reserve(
        &request(w.half_hour, "2026-06-01T11:00:00+02:00"),
        MeetingStatus::Confirmed,
        now,
        MeetingId::new,
    );
    assert!(matches!(today, Err(MeetingsError::OutsideDelays { .. })), "{today:?}");
    // Agents may book inside the delays.
    let mut by_agent = request(w.half_hour, "2026-06-01T11:00:00+02:00");
    by_agent.ignore_delays = true;
    assert!(w.agenda.reserve(&by_agent, MeetingStatus::Confirmed, now, MeetingId::new).is_ok());
}

#[test]
fn instants_that_are_not_slots_are_refused() {
    let mut w = world();
    let now = at(MONDAY_MORNING);
    for bad in
        ["2026-06-01T09:10:00+02:00", "2026-06-01T11:45:00+02:00", "2026-06-06T10:00:00+02:00"]
    {
        let r = w.agenda.reserve(
            &request(w.half_hour, bad),
            MeetingStatus::Confirmed,
            now,
            MeetingId::new,
        );
        assert!(matches!(r, Err(MeetingsError::NotASlot(_))), "{bad}: {r:?}");
    }
}

#[test]
fn holds_hide_a_slot_from_others_until_booked_or_lapsed() {
    let mut w = world();
    w.agenda.desks.pop_last();
    let now = at(MONDAY_MORNING);
    let slot = "2026-06-01T09:00:00+02:00";
    let mut hold = request(w.half_hour, slot);
    hold.account_id = None;
    hold.lock_code = Some("session-aaaa".into());
    let (held, _) = w.agenda.reserve(&hold, MeetingStatus::Held, now, MeetingId::new).unwrap();
    assert_eq!(held.hold_until, Some(now + SignedDuration::from_mins(15)));
    // Another citizen cannot take it; its holder still sees it.
    let other = w.agenda.reserve(
        &request(w.half_hour, slot),
        MeetingStatus::Confirmed,
        now,
        MeetingId::new,
    );
    assert!(matches!(other, Err(MeetingsError::SlotTaken(_))));
    let seen_by_holder = w
        .agenda
        .free_slots(
            w.half_hour,
            date(2026, 6, 1),
            date(2026, 6, 1),
            now,
            Some("session-aaaa"),
            false,
        )
        .unwrap();
    assert_eq!(local(&seen_by_holder)[0], "09:00+02:00");
    // The holder books it with the lock code: same meeting, confirmed.
    let mut book = request(w.half_hour, slot);
    book.lock_code = Some("session-aaaa".into());
    let (booked, released) =
        w.agenda.reserve(&book, MeetingStatus::Confirmed, now, MeetingId::new).unwrap();
    assert_eq!((booked.id, booked.status, released), (held.id, MeetingStatus::Confirmed, None));
    // A hold lapses: after 15 minutes someone else may book the 09:30 slot held by a new code.
    let mut hold2 = request(w.half_hour, "2026-06-01T09:30:00+02:00");
    hold2.lock_code = Some("session-bbbb".into());
    w.agenda.reserve(&hold2, MeetingStatus::Held, now, MeetingId::new).unwrap();
    let later = now + SignedDuration::from_mins(16);
    assert!(
        w.agenda
            .reserve(
                &request(w.half_hour, "2026-06-01T09:30:00+02:00"),
                MeetingStatus::Confirmed,
                later,
                MeetingId::new
            )
            .is_ok()
    );
    // A new hold by the same code releases the previous one.
    let mut first = request(w.half_hour, "2026-06-01T10:00:00+02:00");
    first.lock_code = Some("session-cccc".into());
    let (h1, _) = w.agenda.reserve(&first, MeetingStatus::Held, now, MeetingId::new).unwrap();
    let mut second = request(w.half_hour, "2026-06-01T10:30:00+02:00");
    second.lock_code = Some("session-cccc".into());
    let (_, released) =
        w.agenda.reserve(&second, MeetingStatus::Held, now, MeetingId::new).unwrap();
    assert_eq!(released.map(|m| (m.id, m.status)), Some((h1.id, MeetingStatus::Cancelled)));
}
