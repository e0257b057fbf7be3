use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::agenda::rules::EventRules;

fn now() -> Timestamp {
    "2026-06-01T08:00:00Z".parse().unwrap()
}

fn ledger(places: i64, waiting: i64, auto_promote: bool, thresholds: &[u8]) -> (Ledger, EventId) {
    let agenda = NewAgenda {
        slug: "piscine".into(),
        label: "Piscine".into(),
        kind: AgendaKind::Events,
        fill_notifications: FillNotifications {
            thresholds: thresholds.to_vec(),
            emails: if thresholds.is_empty() { vec![] } else { vec!["admin@ville.test".into()] },
        },
        auto_promote_waiting_list: auto_promote,
        services: vec![],
        meetings: None,
        events: None,
        category: None,
        resources: vec![],
    }
    .validate(AgendaId::new())
    .unwrap();
    let event = NewEvent {
        label: "Aquagym".into(),
        starts_at: now() + SignedDuration::from_hours(48),
        ends_at: None,
        places,
        waiting_list_places: waiting,
        description: String::new(),
        url: None,
        publication_at: None,
        resources: vec![],
    }
    .validate(EventId::new(), agenda.id)
    .unwrap();
    let id = event.id;
    let mut l = Ledger::default();
    l.agendas.insert(agenda.id, agenda);
    l.put_event(event);
    (l, id)
}

fn req(events: &[EventId]) -> BookRequest {
    let who = AccountId::new();
    BookRequest {
        event_ids: events.to_vec(),
        account_id: who,
        booked_by: who,
        by_agent: false,
        skip_already_booked: false,
    }
}

/// Applies one batch and makes it current, as the actor does after a successful write.
fn commit(l: &mut Ledger, done: (Vec<EventState>, Effects)) -> Effects {
    let (events, effects) = done;
    for e in events {
        l.put_event(e);
    }
    effects
}

#[test]
fn places_then_waiting_list_then_full() {
    let (mut l, e) = ledger(2, 1, false, &[]);
    let mut w = l.working();
    let statuses: Vec<_> =
        (0..4).map(|_| w.book(&req(&[e]), now(), BookingId::new).map(|v| v[0].status)).collect();
    {
        let done = w.finish();
        commit(&mut l, done)
    };
    assert_eq!(
        statuses,
        vec![
            Ok(BookingStatus::Confirmed),
            Ok(BookingStatus::Confirmed),
            Ok(BookingStatus::WaitingList),
            Err(AgendaError::Full(FullEvents(vec![(e, l.events[&e].starts_at)]))),
        ]
    );
    let level = l.events[&e].fill_level();
    assert_eq!((level.booked_places, level.waiting_list_booked, level.full), (2, 1, true));
    assert_eq!(level.seq, 1, "one batch is one version");
}

#[test]
fn multi_event_booking_is_all_or_nothing() {
    let (mut l, open) = ledger(5, 0, false, &[]);
    let agenda = l.events[&open].agenda_id;
    let full = NewEvent {
        label: "Complet".into(),
        starts_at: now() + SignedDuration::from_hours(1),
        ends_at: None,
        places: 0,
        waiting_list_places: 0,
        description: String::new(),
        url: None,
        publication_at: None,
        resources: vec![],
    }
    .validate(EventId::new(), agenda)
    .unwrap();
    let full_id = full.id;
    l.put_event(full);
    let mut w = l.working();
    assert_eq!(
        w.book(&req(&[open, full_id]), now(), BookingId::new),
        Err(AgendaError::Full(FullEvents(vec![(full_id, now() + SignedDuration::from_hours(1))])))
    );
    let effects = {
        let done = w.finish();
        commit(&mut l, done)
    };
    assert!(effects.is_empty());
    assert_eq!(l.events[&open].confirmed, 0);
}

#[test]
fn refusals_change_nothing() {
    let (l, e) = ledger(5, 0, false, &[]);
    let mut w = l.working();
    let r = req(&[e]);
    assert!(w.book(&r, now(), BookingId::new).is_ok());
    assert_eq!(w.book(&r, now(), BookingId::new), Err(AgendaError::AlreadyBooked(e)));
    assert!(matches!(w.book(&req(&[e, e]), now(), BookingId::new), Err(AgendaError::Invalid(_))));
    let unknown = EventId::new();
    assert_eq!(
        w.book(&req(&[unknown]), now(), BookingId::new),
        Err(AgendaError::EventNotFound(unknown))
    );
    let later = now() + SignedDuration::from_hours(49);
    assert_eq!(w.book(&req(&[e]), later, BookingId::new), Err(AgendaError::EventStarted(e)));
    let (events, effects) = w.finish();
    assert_eq!(events[0].confirmed, 1);
    assert_eq!(effects.created.len(), 1);
}

#[test]
fn unpublished_events_are_hidden_from_citizens_but_not_agents() {
    let (mut l, e) = ledger(5, 0, false, &[]);
    l.events.get_mut(&e).unwrap().publication_at = Some(now() + SignedDuration::from_hours(1));
    let mut w = l.working();
    assert_eq!(w.book(&req(&[e]), now(), BookingId::new), Err(AgendaError::EventNotFound(e)));
    let mut agent = req(&[e]);
    agent.by_agent = true;
    assert!(w.book(&agent, now(), BookingId::new).is_ok());
}

#[test]
fn cancellation_promotes_automatically_when_the_agenda_says_so() {
    for auto in [true, false] {
        let (mut l, e) = ledger(1, 2, auto, &[]);
        let mut w = l.working();
        let first = w.book(&req(&[e]), now(), BookingId::new).unwrap()[0].clone();
        let second = w.book(&req(&[e]), now(), BookingId::new).unwrap()[0].clone();
        {
            let done = w.finish();
            commit(&mut l, done)
        };
        let mut w = l.working();
        let (cancelled, promoted) = w.cancel(first.id, false, now()).unwrap();
        {
            let done = w.finish();
            commit(&mut l, done)
        };
        assert_eq!(cancelled.status, BookingStatus::Cancelled);
        let event = &l.events[&e];
        if auto {
            assert_eq!(promoted.map(|p| p.id), Some(second.id));
            assert_eq!((event.confirmed, event.waiting), (1, 0));
        } else {
            assert_eq!(promoted, None);
            assert_eq!((event.confirmed, event.waiting), (0, 1));
            let mut w = l.working();
            assert_eq!(w.promote_first(e, now()).unwrap().id, second.id);
        }
        let mut w = l.working();
        assert_eq!(w.cancel(first.id, false, now()), Err(AgendaError::BookingNotFound));
    }
}

#[test]
fn each_threshold_crossing_sends_one_mail_and_dropping_below_rearms_it() {
    let (mut l, e) = ledger(10, 0, false, &[50, 90, 100]);
    let mut mails = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..10 {
        let mut w = l.working();
        ids.push(w.book(&req(&[e]), now(), BookingId::new).unwrap()[0].id);
        mails.extend(
            {
                let done = w.finish();
                commit(&mut l, done)
            }
            .mails,
        );
    }
    let subjects: Vec<_> = mails.iter().map(|m| m.subject.clone()).collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(
        subjects[0].contains("50%") && subjects[1].contains("90%") && subjects[2].contains("Full")
    );
    // Dropping to 80% re-arms 90 and 100; climbing back sends them again, and 50 stays quiet.
    for id in &ids[..2] {
        let mut w = l.working();
        w.cancel(*id, false, now()).unwrap();
        assert!(
            {
                let done = w.finish();
                commit(&mut l, done)
            }
            .mails
            .is_empty()
        );
    }
    let mut again = Vec::new();
    for _ in 0..2 {
        let mut w = l.working();
        w.book(&req(&[e]), now(), BookingId::new).unwrap();
        again.extend(
            {
                let done = w.finish();
                commit(&mut l, done)
            }
            .mails,
        );
    }
    assert_eq!(again.len(), 2);
}

#[test]
fn a_batch_crossing_several_thresholds_sends_each_once() {
    let (mut l, e) = ledger(4, 0, false, &[25, 50, 75]);
    let mut w = l.working();
    for _ in 0..4 {
        w.book(&req(&[e]), now(), BookingId::new).unwrap();
    }
    let effects = {
        let done = w.finish();
        commit(&mut l, done)
    };
    assert_eq!(effects.mails.len(), 3);
    assert_eq!(effects.touched.len(), 1);
}

#[test]
fn bad_agenda_and_event_input_is_refused() {
    let base = NewAgenda {
        slug: "ok".into(),
        label: "Ok".into(),
        kind: AgendaKind::Events,
        fill_notifications: FillNotifications::default(),
        auto_promote_waiting_list: true,
        services: vec![],
        meetings: None,
        events: None,
        category: None,
        resources: vec![],
    };
    for (slug, thresholds, emails) in [
        ("Bad Slug", vec![], vec![]),
        ("ok", vec![0u8], vec!["a@b.test".to_owned()]),
        ("ok", vec![101], vec!["a@b.test".to_owned()]),
        ("ok", vec![50], vec![]),
        ("ok", vec![50], vec!["not-an-email".to_owned()]),
    ] {
        let mut a = base.clone();
        a.slug = slug.into();
        a.fill_notifications = FillNotifications { thresholds, emails };
        assert!(matches!(a.validate(AgendaId::new()), Err(AgendaError::Invalid(_))));
    }
    let event = |places, waiting, ends: Option<Timestamp>| NewEvent {
        label: "x".into(),
        starts_at: now(),
        ends_at: ends,
        places,
        waiting_list_places: waiting,
        description: String::new(),
        url: None,
        publication_at: None,
        resources: vec![],
    };
    for bad in [
        event(-1, 0, None),
        event(1, -1, None),
        event(1, 0, Some(now())),
        event(MAX_PLACES + 1, 0, None),
    ] {
        assert!(matches!(
            bad.validate(EventId::new(), AgendaId::new()),
            Err(AgendaError::Invalid(_))
        ));
    }
}

/// A ledger whose agenda has these rules.
fn ledger_with(rules: EventRules, places: i64, waiting: i64) -> (Ledger, EventId) {
    let (mut l, e) = ledger(places, waiting, true, &[50]);
    let agenda = l.events[&e].agenda_id;
    l.agendas.get_mut(&agenda).unwrap().events = rules.validate().unwrap();
    (l, e)
}

fn apply<T>(l: &mut Ledger, f: impl FnOnce(&mut Working<'_>) -> T) -> (T, Effects) {
    let mut w = l.working();
    let out = f(&mut w);
    let done = w.finish();
    (out, commit(l, done))
}

#[test]
fn a_full_season_lists_every_full_event() {
    let (mut l, a) = ledger(1, 0, false, &[]);
    let agenda = l.events[&a].agenda_id;
    let mut ids = vec![a];
    for hours in [72, 96] {
        let e = NewEvent {
            label: "Aquagym".into(),
            starts_at: now() + SignedDuration::from_hours(hours),
            ends_at: None,
            places: 1,
            waiting_list_places: 0,
            description: String::new(),
            url: None,
            publication_at: None,
            resources: vec![],
        }
        .validate(EventId::new(), agenda)
        .unwrap();
        ids.push(e.id);
        l.put_event(e);
    }
    // Someone takes the first and the last.
    apply(&mut l, |w| w.book(&req(&[ids[0], ids[2]]), now(), BookingId::new).unwrap());
    let (refused, effects) = apply(&mut l, |w| w.book(&req(&ids), now(), BookingId::new));
    let Err(AgendaError::Full(FullEvents(full))) = &refused else { panic!("{refused:?}") };
    assert_eq!(full.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![ids[0], ids[2]]);
    assert!(refused.unwrap_err().to_string().starts_with("2 events are full: "));
    assert!(effects.is_empty(), "nothing booked");
    // Once a place frees up, the season books, skipping what the account holds already.
    let mine = req(&[ids[1]]);
    apply(&mut l, |w| w.book(&mine, now(), BookingId::new).unwrap());
    let (_, _) = apply(&mut l, |w| {
        w.update_event(ids[0], EventPatch { places: Some(2), ..EventPatch::default() }, now())
            .unwrap()
    });
    apply(&mut l, |w| {
        w.update_event(ids[2], EventPatch { places: Some(2), ..EventPatch::default() }, now())
            .unwrap()
    });
    let season = BookRequest { event_ids: ids.clone(), skip_already_booked: true, ..mine.clone() };
    let (booked, _) = apply(&mut l, |w| w.book(&season, now(), BookingId::new).unwrap());
    assert_eq!(booked.iter().map(|b| b.event_id).collect::<Vec<_>>(), vec![ids[0], ids[2]]);
    let twice = BookRequest { skip_already_booked: false, ..season };
    assert_eq!(
        apply(&mut l, |w| w.book(&twice, now(), BookingId::new)).0,
        Err(AgendaError::AlreadyBooked(ids[0]))
    );
}

#[test]
fn booking_delays_bind_citizens_not_agents() {
    let rules = EventRules {
        minimal_booking_delay_days: 3,
        maximal_booking_delay_days: Some(30),
        ..EventRules::default()
    };
    // The event starts in 48 hours: inside the three-day minimal delay.
    let (mut l, e) = ledger_with(rules, 5, 0);
    let (citizen, _) = apply(&mut l, |w| w.book(&req(&[e]), now(), BookingId::new));
    assert!(matches!(citizen, Err(AgendaError::OutsideBookingWindow(id, _)) if id == e));
    let agent = BookRequest { by_agent: true, ..req(&[e]) };
    assert!(apply(&mut l, |w| w.book(&agent, now(), BookingId::new)).0.is_ok());
}

#[test]
fn citizens_cancel_until_the_deadline_agents_at_any_time() {
    let rules = EventRules { cancellation_deadline_hours: Some(72), ..EventRules::default() };
    let (mut l, e) = ledger_with(rules, 5, 0);
    let (booked, _) = apply(&mut l, |w| w.book(&req(&[e]), now(), BookingId::new).unwrap());
    let id = booked[0].id;
    let (late, effects) = apply(&mut l, |w| w.cancel(id, false, now()));
    assert_eq!(late, Err(AgendaError::CancellationClosed(e)));
    assert!(effects.is_empty());
    let (by_agent, _) = apply(&mut l, |w| w.cancel(id, true, now()));
    assert_eq!(by_agent.unwrap().0.status, BookingStatus::Cancelled);
}

#[test]
fn cancelling_an_event_cancels_its_bookings_and_tells_everyone() {
    let (mut l, e) = ledger(2, 2, true, &[50]);
    for _ in 0..3 {
        apply(&mut l, |w| w.book(&req(&[e]), now(), BookingId::new).unwrap());
    }
    let (cancelled, effects) = apply(&mut l, |w| w.cancel_event(e, now()).unwrap());
    assert_eq!(cancelled.len(), 3);
    assert!(cancelled.iter().all(|b| b.status == BookingStatus::Cancelled));
    let event = &l.events[&e];
    assert_eq!((event.confirmed, event.waiting, event.bookings.len()), (0, 0, 0));
    assert!(event.cancelled_at.is_some());
    assert!(effects.edited.contains(&e));
    // One mail to the three holders (by account), one to the notification address.
    assert_eq!(effects.mails.len(), 2);
    assert_eq!(effects.mails[0].to_accounts.len(), 3);
    assert_eq!(effects.mails[1].to, vec!["admin@ville.test".to_owned()]);
    assert!(l.booking_index.is_empty());
    // A cancelled event takes no booking, and is not cancelled twice.
    assert_eq!(
        apply(&mut l, |w| w.book(&req(&[e]), now(), BookingId::new)).0,
        Err(AgendaError::EventCancelled(e))
    );
    assert_eq!(apply(&mut l, |w| w.cancel_event(e, now())).0, Err(AgendaError::EventCancelled(e)));
}

#[test]
fn more_places_promote_the_waiting_list_fewer_cannot_drop_below_bookings() {
    let (mut l, e) = ledger(1, 3, true, &[]);
    for _ in 0..3 {
        apply(&mut l, |w| w.book(&req(&[e]), now(), BookingId::new).unwrap());
    }
    let shrink = EventPatch { places: Some(0), ..EventPatch::default() };
    assert!(matches!(
        apply(&mut l, |w| w.update_event(e, shrink, now())).0,
        Err(AgendaError::Invalid(_))
    ));
    let grow =
        EventPatch { places: Some(2), label: Some("Aquagym (2)".into()), ..EventPatch::default() };
    let (promoted, effects) = apply(&mut l, |w| w.update_event(e, grow, now()).unwrap());
    assert_eq!(promoted.len(), 1);
    assert_eq!((l.events[&e].confirmed, l.events[&e].waiting), (2, 1));
    assert_eq!(l.events[&e].label, "Aquagym (2)");
    assert!(effects.edited.contains(&e));
}

#[test]
fn attendance_is_checked_from_the_event_day_with_the_agenda_reasons() {
    let rules = EventRules { absence_reasons: vec!["Malade".into()], ..EventRules::default() };
    let (mut l, e) = ledger_with(rules, 5, 0);
    let (booked, _) = apply(&mut l, |w| w.book(&req(&[e]), now(), BookingId::new).unwrap());
    let id = booked[0].id;
    let absent =
        |reason: &str| Some(Presence { present: false, absence_reason: Some(reason.into()) });
    // Two days before: too early.
    assert!(matches!(
        apply(&mut l, |w| w.mark_presence(id, absent("Malade"), now())).0,
        Err(AgendaError::Invalid(_))
    ));
    let that_day = l.events[&e].starts_at;
    assert!(matches!(
        apply(&mut l, |w| w.mark_presence(id, absent("Vacances"), that_day)).0,
        Err(AgendaError::Invalid(_))
    ));
    let (marked, effects) =
        apply(&mut l, |w| w.mark_presence(id, absent("Malade"), that_day).unwrap());
    assert_eq!(marked.presence, absent("Malade"));
    assert_eq!(effects.changed.len(), 1);
    assert_eq!(l.events[&e].bookings[&id].presence, absent("Malade"));
    apply(&mut l, |w| w.mark_checked(e, true, that_day).unwrap());
    assert!(l.events[&e].checked);
}
