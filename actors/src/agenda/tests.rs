//! Actor and store together, on an in-memory SurrealDB per test.

use crate::testing::run;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::model::{
    AgendaError, AgendaKind, BookRequest, BookingStatus, FillNotifications, FullEvents, NewAgenda,
    NewEvent,
};
use crate::Services;
use crate::ids::{AccountId, AgendaId, EventId};
use crate::session::SessionPolicy;
use crate::store::Store;

async fn world(store: Option<Store>) -> Services {
    let store = match store {
        Some(s) => s,
        None => Store::open("mem://").await.unwrap(),
    };
    Services::start(store, SessionPolicy::default()).unwrap()
}

async fn agenda(s: &Services, slug: &str, thresholds: &[u8]) -> AgendaId {
    s.agendas
        .create_agenda(NewAgenda {
            slug: slug.into(),
            label: slug.into(),
            kind: AgendaKind::Events,
            fill_notifications: FillNotifications {
                thresholds: thresholds.to_vec(),
                emails: vec!["admin@ville.test".into()],
            },
            auto_promote_waiting_list: true,
            services: vec![],
            meetings: None,
            events: None,
            category: None,
            resources: vec![],
        })
        .await
        .unwrap()
        .id
}

async fn event(s: &Services, agenda: AgendaId, places: i64, waiting: i64) -> EventId {
    s.agendas
        .add_event(
            agenda,
            NewEvent {
                label: "Concert".into(),
                starts_at: Timestamp::now() + SignedDuration::from_hours(24),
                ends_at: None,
                places,
                waiting_list_places: waiting,
                description: String::new(),
                url: None,
                publication_at: None,
                resources: vec![],
            },
        )
        .await
        .unwrap()
        .id
}

async fn starts_of(s: &Services, id: EventId) -> Timestamp {
    s.agendas.agenda_of_event(id).await.unwrap().event(id, false).await.unwrap().starts_at
}

fn request(events: &[EventId]) -> BookRequest {
    let who = AccountId::new();
    BookRequest {
        event_ids: events.to_vec(),
        account_id: who,
        booked_by: who,
        by_agent: false,
        skip_already_booked: false,
    }
}

async fn book_concurrently(
    registries: &[Services],
    event: EventId,
    n: usize,
) -> Vec<Result<BookingStatus, AgendaError>> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let agendas = registries[i % registries.len()].agendas.clone();
            tokio::spawn(async move { agendas.book(request(&[event])).await.map(|v| v[0].status) })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

fn tally(results: &[Result<BookingStatus, AgendaError>]) -> (usize, usize, usize) {
    let confirmed = results.iter().filter(|r| **r == Ok(BookingStatus::Confirmed)).count();
    let waiting = results.iter().filter(|r| **r == Ok(BookingStatus::WaitingList)).count();
    let full = results.iter().filter(|r| matches!(r, Err(AgendaError::Full(_)))).count();
    (confirmed, waiting, full)
}

#[test]
fn concurrent_bookers_never_overbook_and_the_store_agrees() {
    run(async {
        let s = world(None).await;
        let a = agenda(&s, "concerts", &[50, 100]).await;
        let e = event(&s, a, 40, 10).await;
        let results = book_concurrently(std::slice::from_ref(&s), e, 200).await;
        assert_eq!(tally(&results), (40, 10, 150));
        let stored = s.store.events(&[e]).await.unwrap().remove(0);
        assert_eq!((stored.confirmed, stored.waiting, stored.bookings.len()), (40, 10, 50));
        let outbox = s.store.outbox(10).await.unwrap();
        assert_eq!(outbox.len(), 2, "one mail per threshold crossed");
    });
}

#[test]
fn two_processes_sharing_one_database_never_overbook() {
    run(async {
        let store = Store::open("mem://").await.unwrap();
        let first = world(Some(store.clone())).await;
        let second = world(Some(store.clone())).await;
        let a = agenda(&first, "partage", &[]).await;
        let e = event(&first, a, 25, 5).await;
        let results = book_concurrently(&[first, second], e, 120).await;
        let (confirmed, waiting, full) = tally(&results);
        assert_eq!((confirmed, waiting), (25, 5), "{results:?}");
        assert_eq!(full + confirmed + waiting, 120, "no request may fail otherwise: {results:?}");
        let stored = store.events(&[e]).await.unwrap().remove(0);
        assert_eq!((stored.confirmed, stored.waiting, stored.bookings.len()), (25, 5, 30));
    });
}

#[test]
fn bookings_spread_over_many_agendas_are_each_exact_when_their_commits_are_merged() {
    run(async {
        let s = world(None).await;
        let mut events = Vec::new();
        for i in 0..8 {
            let a = agenda(&s, &format!("salle-{i}"), &[100]).await;
            events.push(event(&s, a, 20, 5).await);
        }
        let tasks: Vec<_> = (0..320)
            .map(|i| {
                let (agendas, e) = (s.agendas.clone(), events[i % events.len()]);
                tokio::spawn(async move { agendas.book(request(&[e])).await.map(|v| v[0].status) })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert_eq!(tally(&results), (8 * 20, 8 * 5, 320 - 8 * 25));
        for stored in s.store.events(&events).await.unwrap() {
            assert_eq!((stored.confirmed, stored.waiting, stored.bookings.len()), (20, 5, 25));
        }
        assert_eq!(s.store.outbox(100).await.unwrap().len(), 8, "one mail per agenda filled");
    });
}

#[test]
fn a_multi_agenda_booking_is_all_or_nothing_and_every_actor_sees_it() {
    run(async {
        let s = world(None).await;
        let (a1, a2) = (agenda(&s, "piscine", &[]).await, agenda(&s, "musee", &[]).await);
        let open = event(&s, a1, 3, 0).await;
        let full = event(&s, a2, 0, 0).await;
        let other = event(&s, a2, 3, 0).await;
        assert_eq!(
            s.agendas.book(request(&[open, full])).await,
            Err(AgendaError::Full(FullEvents(vec![(full, starts_of(&s, full).await)])))
        );
        let stored = s.store.events(&[open]).await.unwrap().remove(0);
        assert_eq!(stored.confirmed, 0, "nothing booked when one event is full");

        let booked = s.agendas.book(request(&[open, other])).await.unwrap();
        assert_eq!(booked.len(), 2);
        // The second agenda's actor learns about the booking written by the first one.
        let mut seen = 0;
        for _ in 0..50 {
            seen = s
                .agendas
                .agenda_of_event(other)
                .await
                .unwrap()
                .event(other, false)
                .await
                .unwrap()
                .fill
                .booked_places;
            if seen == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(seen, 1);
        // And its next booking is still exact.
        let r = s.agendas.book(request(&[other])).await.unwrap();
        assert_eq!(r[0].status, BookingStatus::Confirmed);
        let stored = s.store.events(&[other]).await.unwrap().remove(0);
        assert_eq!(stored.confirmed, 2);
    });
}

#[test]
fn cancellation_promotes_and_publishes_in_order() {
    run(async {
        let s = world(None).await;
        let a = agenda(&s, "cinema", &[]).await;
        let e = event(&s, a, 1, 1).await;
        let mut levels = s.live.subscribe_fill_level(e);
        let first = s.agendas.book(request(&[e])).await.unwrap().remove(0);
        let second = s.agendas.book(request(&[e])).await.unwrap().remove(0);
        assert_eq!(second.status, BookingStatus::WaitingList);
        let booking = s.agendas.booking(first.id).await.unwrap();
        let (cancelled, promoted) = s.agendas.cancel(&booking, false).await.unwrap();
        assert_eq!(cancelled.status, BookingStatus::Cancelled);
        assert_eq!(promoted.map(|p| p.id), Some(second.id));
        let mut seqs = Vec::new();
        while let Ok(level) = levels.try_recv() {
            seqs.push((level.seq, level.booked_places, level.waiting_list_booked));
        }
        assert_eq!(seqs, vec![(1, 1, 0), (2, 1, 1), (3, 1, 0)]);
        assert_eq!(s.agendas.booking(first.id).await.unwrap().status, BookingStatus::Cancelled);
        assert_eq!(s.agendas.booking(second.id).await.unwrap().status, BookingStatus::Confirmed);
        assert_eq!(s.agendas.cancel(&booking, false).await, Err(AgendaError::BookingNotFound));
    });
}

#[test]
fn duplicate_slugs_and_unknown_ids_are_refused() {
    run(async {
        let s = world(None).await;
        agenda(&s, "unique", &[]).await;
        let again = s
            .agendas
            .create_agenda(NewAgenda {
                slug: "unique".into(),
                label: "x".into(),
                kind: AgendaKind::Events,
                fill_notifications: FillNotifications::default(),
                auto_promote_waiting_list: false,
                services: vec![],
                meetings: None,
                events: None,
                category: None,
                resources: vec![],
            })
            .await;
        assert_eq!(again, Err(AgendaError::SlugTaken("unique".into())));
        let ghost = EventId::new();
        assert_eq!(s.agendas.book(request(&[ghost])).await, Err(AgendaError::EventNotFound(ghost)));
        assert_eq!(s.agendas.get(AgendaId::new()).await.unwrap_err(), AgendaError::AgendaNotFound);
        let _ = Arc::new(());
    });
}

#[test]
fn state_survives_a_restart_of_the_actors() {
    run(async {
        let store = Store::open("mem://").await.unwrap();
        let s = world(Some(store.clone())).await;
        let a = agenda(&s, "reprise", &[]).await;
        let e = event(&s, a, 2, 0).await;
        s.agendas.book(request(&[e])).await.unwrap();
        s.runtime.shutdown();
        let again = world(Some(store)).await;
        let view = again.agendas.agenda_of_event(e).await.unwrap().event(e, true).await.unwrap();
        assert_eq!((view.fill.booked_places, view.bookings.len(), view.fill.seq), (1, 1, 1));
    });
}

#[test]
fn the_store_refuses_a_write_based_on_a_stale_event_or_beyond_its_places() {
    run(async {
        let store = Store::open("mem://").await.unwrap();
        let s = world(Some(store.clone())).await;
        let a = agenda(&s, "garde", &[]).await;
        let e = event(&s, a, 2, 0).await;
        s.agendas.book(request(&[e])).await.unwrap();
        // A writer that still believes the event is at version 0 (before that booking).
        let stale = store.events(&[e]).await.unwrap().remove(0);
        let mut effects = super::model::Effects::default();
        effects.touched.insert(e, stale.version - 1);
        let mut written = stale.clone();
        written.confirmed = 1;
        written.version = stale.version;
        let refused = store.commit_agenda_batch(&[written], &effects, Timestamp::now()).await;
        assert!(matches!(refused, Err(crate::store::StoreError::Conflict(_))), "{refused:?}");
        // Right version, but more confirmed bookings than places.
        let mut effects = super::model::Effects::default();
        effects.touched.insert(e, stale.version);
        let mut over = stale.clone();
        over.confirmed = 3;
        over.version = stale.version + 1;
        let refused = store.commit_agenda_batch(&[over], &effects, Timestamp::now()).await;
        assert!(matches!(refused, Err(crate::store::StoreError::Conflict(_))), "{refused:?}");
        // Nothing changed.
        let after = store.events(&[e]).await.unwrap().remove(0);
        assert_eq!((after.confirmed, after.version), (stale.confirmed, stale.version));
    });
}
