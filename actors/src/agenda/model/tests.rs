use jiff::{SignedDuration, Timestamp};

use super::*;

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
        may_see_unpublished: false,
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
            Err(AgendaError::Full(e)),
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
    }
    .validate(EventId::new(), agenda)
    .unwrap();
    let full_id = full.id;
    l.put_event(full);
    let mut w = l.working();
    assert_eq!(
        w.book(&req(&[open, full_id]), now(), BookingId::new),
        Err(AgendaError::Full(full_id))
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
    agent.may_see_unpublished = true;
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
        let (cancelled, promoted) = w.cancel(first.id, now()).unwrap();
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
        assert_eq!(w.cancel(first.id, now()), Err(AgendaError::BookingNotFound));
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
        w.cancel(*id, now()).unwrap();
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
