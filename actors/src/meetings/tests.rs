//! Meetings actor and store together, on an in-memory SurrealDB per test.

use crate::testing::run;
use jiff::civil::{Date, time};
use jiff::{SignedDuration, Timestamp};

use super::model::{
    MeetingStatus, MeetingsError, MeetingsRules, NewMeetingType, NewPeriods, PeriodRule,
    SlotRequest,
};
use crate::Services;
use crate::agenda::model::{AgendaKind, FillNotifications, NewAgenda};
use crate::ids::{AccountId, AgendaId, MeetingTypeId};
use crate::session::SessionPolicy;
use crate::store::Store;
use crate::time::paris;

fn tomorrow() -> Date {
    Timestamp::now().to_zoned(paris()).date().tomorrow().unwrap()
}

/// A meetings agenda open tomorrow 09:00–12:00 on `desks` desks, with a 30-minute type.
async fn agenda(s: &Services, desks: usize) -> (AgendaId, MeetingTypeId) {
    let settings = s
        .agendas
        .create_agenda(NewAgenda {
            slug: "passeports".into(),
            label: "Passeports".into(),
            kind: AgendaKind::Meetings,
            fill_notifications: FillNotifications::default(),
            auto_promote_waiting_list: false,
            services: vec![],
            meetings: Some(MeetingsRules {
                minimal_booking_delay_days: 0,
                closed_on_public_holidays: false,
                ..MeetingsRules::default()
            }),
            events: None,
            category: None,
            resources: vec![],
        })
        .await
        .unwrap();
    let h = s.meetings.get(settings.id).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..desks {
        ids.push(h.add_desk(format!("Guichet {i}")).await.unwrap().id);
    }
    h.add_periods(NewPeriods {
        desk_ids: ids,
        rule: PeriodRule::Date(tomorrow()),
        start: time(9, 0, 0, 0),
        end: time(12, 0, 0, 0),
    })
    .await
    .unwrap();
    let mt = h
        .add_meeting_type(NewMeetingType {
            label: "Passeport".into(),
            slug: None,
            duration_minutes: 30,
        })
        .await
        .unwrap();
    (settings.id, mt.id)
}

fn nine_o_clock() -> Timestamp {
    tomorrow().at(9, 0, 0, 0).to_zoned(paris()).unwrap().timestamp()
}

fn booking(mt: MeetingTypeId, at: Timestamp) -> SlotRequest {
    let me = AccountId::new();
    SlotRequest {
        meeting_type_id: mt,
        starts_at: at,
        account_id: Some(me),
        booked_by: Some(me),
        lock_code: None,
        ignore_delays: false,
    }
}

#[test]
fn concurrent_citizens_never_share_a_desk() {
    run(async {
        let s = Services::start(Store::open("mem://").await.unwrap(), SessionPolicy::default())
            .unwrap();
        let (agenda_id, mt) = agenda(&s, 3).await;
        let h = s.meetings.get(agenda_id).await.unwrap();
        let tasks: Vec<_> = (0..60)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.book(booking(mt, nine_o_clock())).await })
            })
            .collect();
        let mut booked = Vec::new();
        let mut taken = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(m) => booked.push(m),
                Err(MeetingsError::SlotTaken(_)) => taken += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!((booked.len(), taken), (3, 57));
        let mut desks: Vec<_> = booked.iter().map(|m| m.desk_id).collect();
        desks.sort();
        desks.dedup();
        assert_eq!(desks.len(), 3, "one meeting per desk");
        // The slot is gone; the next one is still free on every desk.
        let slots = h.slots(mt, tomorrow(), tomorrow(), None, false).await.unwrap();
        assert_eq!(slots[0].starts_at, nine_o_clock() + SignedDuration::from_mins(30));
        assert_eq!(slots[0].free_desks.len(), 3);
        // A cancellation frees its desk, durably.
        let cancelled = h.cancel(booked[0].id).await.unwrap();
        assert_eq!(cancelled.status, MeetingStatus::Cancelled);
        let stored = s.meetings.meeting(booked[0].id).await.unwrap();
        assert_eq!(stored.status, MeetingStatus::Cancelled);
        let again = h.book(booking(mt, nine_o_clock())).await.unwrap();
        assert_eq!(again.desk_id, booked[0].desk_id);
    });
}

#[test]
fn two_processes_on_one_database_never_double_book_a_desk() {
    run(async {
        let store = Store::open("mem://").await.unwrap();
        let a = Services::start(store.clone(), SessionPolicy::default()).unwrap();
        let (agenda_id, mt) = agenda(&a, 1).await;
        // A second set of actors over the same database, as another process would run.
        let b = Services::start(store, SessionPolicy::default()).unwrap();
        let ha = a.meetings.get(agenda_id).await.unwrap();
        let hb = b.meetings.get(agenda_id).await.unwrap();
        let mut ok = 0;
        for round in 0..6 {
            let at = nine_o_clock() + SignedDuration::from_mins(30 * round);
            let (ra, rb) = tokio::join!(ha.book(booking(mt, at)), hb.book(booking(mt, at)));
            ok += usize::from(ra.is_ok()) + usize::from(rb.is_ok());
            assert!(ra.is_ok() != rb.is_ok(), "round {round}: exactly one of {ra:?} and {rb:?}");
        }
        assert_eq!(ok, 6);
        // Both processes agree: every slot of the morning is taken.
        let fresh = hb.slots(mt, tomorrow(), tomorrow(), None, false).await.unwrap();
        assert!(fresh.is_empty(), "{fresh:?}");
    });
}

#[test]
fn holds_survive_a_restart_and_are_taken_over_by_their_booking() {
    run(async {
        let store = Store::open("mem://").await.unwrap();
        let a = Services::start(store.clone(), SessionPolicy::default()).unwrap();
        let (agenda_id, mt) = agenda(&a, 1).await;
        let ha = a.meetings.get(agenda_id).await.unwrap();
        let mut hold = booking(mt, nine_o_clock());
        hold.account_id = None;
        hold.lock_code = Some("form-session-1".into());
        let held = ha.hold(hold.clone()).await.unwrap();
        assert_eq!(held.status, MeetingStatus::Held);
        a.runtime.shutdown();
        // After a restart, the hold still keeps others out, and its holder books it.
        let b = Services::start(store, SessionPolicy::default()).unwrap();
        let hb = b.meetings.get(agenda_id).await.unwrap();
        let other = hb.book(booking(mt, nine_o_clock())).await;
        assert!(matches!(other, Err(MeetingsError::SlotTaken(_))), "{other:?}");
        let mut mine = booking(mt, nine_o_clock());
        mine.lock_code = hold.lock_code.clone();
        let booked = hb.book(mine).await.unwrap();
        assert_eq!((booked.id, booked.status), (held.id, MeetingStatus::Confirmed));
    });
}

#[test]
fn virtual_agendas_merge_members_and_book_on_one_of_them() {
    run(async {
        let s = Services::start(Store::open("mem://").await.unwrap(), SessionPolicy::default())
            .unwrap();
        let mut members = Vec::new();
        for slug in ["mairie-centre", "mairie-annexe"] {
            let settings = s
                .agendas
                .create_agenda(NewAgenda {
                    slug: slug.into(),
                    label: slug.into(),
                    kind: AgendaKind::Meetings,
                    fill_notifications: FillNotifications::default(),
                    auto_promote_waiting_list: false,
                    services: vec![],
                    meetings: Some(MeetingsRules {
                        minimal_booking_delay_days: 0,
                        closed_on_public_holidays: false,
                        ..MeetingsRules::default()
                    }),
                    events: None,
                    category: None,
                    resources: vec![],
                })
                .await
                .unwrap();
            let h = s.meetings.get(settings.id).await.unwrap();
            let desk = h.add_desk("Guichet".into()).await.unwrap();
            h.add_periods(NewPeriods {
                desk_ids: vec![desk.id],
                rule: PeriodRule::Date(tomorrow()),
                start: time(9, 0, 0, 0),
                end: time(12, 0, 0, 0),
            })
            .await
            .unwrap();
            let mt = h
                .add_meeting_type(NewMeetingType {
                    label: "Passeport".into(),
                    slug: None,
                    duration_minutes: 30,
                })
                .await
                .unwrap();
            members.push((settings.id, mt.id));
        }
        let v = s
            .agendas
            .create_agenda(NewAgenda {
                slug: "mairies".into(),
                label: "Toutes les mairies".into(),
                kind: AgendaKind::Virtual,
                fill_notifications: FillNotifications::default(),
                auto_promote_waiting_list: false,
                services: vec![],
                meetings: Some(MeetingsRules {
                    minimal_booking_delay_days: 0,
                    ..MeetingsRules::default()
                }),
                events: None,
                category: None,
                resources: vec![],
            })
            .await
            .unwrap();
        let vh = s.meetings.virtual_agenda(v.id).await.unwrap();
        for (m, _) in &members {
            vh.add_member(*m).await.unwrap();
        }
        assert!(vh.add_member(members[0].0).await.is_err(), "a member only once");
        assert!(vh.add_member(v.id).await.is_err(), "not itself");
        let shared = vh.shared_types().await.unwrap();
        assert_eq!(shared.len(), 1);
        // The second member's type id names the shared type too.
        let mt = members[1].1;
        let slots = vh.slots(mt, tomorrow(), tomorrow(), None, false).await.unwrap();
        assert_eq!(slots.len(), 6);
        assert!(slots.iter().all(|s| s.free_desks.len() == 2));
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let vh = vh.clone();
                tokio::spawn(async move { vh.book(booking(mt, nine_o_clock())).await })
            })
            .collect();
        let mut agendas = Vec::new();
        for t in tasks {
            if let Ok(m) = t.await.unwrap() {
                agendas.push(m.agenda_id);
            }
        }
        agendas.sort();
        let mut expected: Vec<AgendaId> = members.iter().map(|(a, _)| *a).collect();
        expected.sort();
        assert_eq!(agendas, expected, "one booking on each member, the others refused");
        // An exclusion period hides the rest of the morning.
        vh.add_exclusion(PeriodRule::Date(tomorrow()), time(10, 0, 0, 0), time(12, 0, 0, 0))
            .await
            .unwrap();
        let slots = vh.slots(mt, tomorrow(), tomorrow(), None, false).await.unwrap();
        assert_eq!(
            slots.len(),
            1,
            "09:00 is booked on both members, 10:00 on is excluded: {slots:?}"
        );
        assert_eq!(
            slots.first().map(|s| s.starts_at),
            Some(nine_o_clock() + SignedDuration::from_mins(30))
        );
    });
}

#[test]
fn appointments_are_confirmed_reminded_once_and_their_cancellation_told() {
    run(async {
        let s = Services::start(Store::open("mem://").await.unwrap(), SessionPolicy::default())
            .unwrap();
        let settings = s
            .agendas
            .create_agenda(NewAgenda {
                slug: "passeports-rappels".into(),
                label: "Passeports".into(),
                kind: AgendaKind::Meetings,
                fill_notifications: FillNotifications::default(),
                auto_promote_waiting_list: false,
                services: vec![],
                meetings: Some(MeetingsRules {
                    minimal_booking_delay_days: 0,
                    closed_on_public_holidays: false,
                    notify_citizens: true,
                    reminder_hours: Some(2),
                    ..MeetingsRules::default()
                }),
                events: None,
                category: None,
                resources: vec![],
            })
            .await
            .unwrap();
        let h = s.meetings.get(settings.id).await.unwrap();
        let d = h.add_desk("Guichet".into()).await.unwrap().id;
        h.add_periods(NewPeriods {
            desk_ids: vec![d],
            rule: PeriodRule::Date(tomorrow()),
            start: time(9, 0, 0, 0),
            end: time(12, 0, 0, 0),
        })
        .await
        .unwrap();
        let t = h
            .add_meeting_type(NewMeetingType {
                label: "Passeport".into(),
                slug: None,
                duration_minutes: 30,
            })
            .await
            .unwrap();
        let nine = tomorrow().at(9, 0, 0, 0).to_zoned(paris()).unwrap().timestamp();
        let meeting = h.book(booking(t.id, nine)).await.unwrap();
        let outbox = s.store.outbox(10).await.unwrap();
        assert_eq!(outbox.len(), 1);
        assert!(outbox[0].mail.subject.starts_with("[Guichet] Appointment confirmed: Passeport"));
        assert_eq!(outbox[0].mail.to_accounts, vec![meeting.account_id.unwrap()]);

        // Two hours before, the scheduler reminds by email and SMS, once.
        let scheduler = crate::scheduler::Scheduler::new(
            s.store.clone(),
            s.agendas.clone(),
            s.meetings.clone(),
            s.demands.clone(),
            s.mail.clone(),
        );
        let due = nine - jiff::SignedDuration::from_mins(119);
        let claimed = s.store.claim_due_jobs(due, 10).await.unwrap();
        let reminder: Vec<_> = claimed
            .iter()
            .filter(|c| matches!(c.job.kind, crate::scheduler::JobKind::MeetingReminder { .. }))
            .collect();
        assert_eq!(reminder.len(), 1);
        scheduler.run_job(reminder[0], due).await.unwrap();
        assert!(scheduler.run_job(reminder[0], due).await.is_err(), "finished once");
        let outbox = s.store.outbox(10).await.unwrap();
        assert_eq!(outbox.len(), 3);
        let reminders =
            outbox.iter().filter(|m| m.mail.subject == "[Guichet] Reminder: Passeports");
        assert_eq!(reminders.count(), 2, "email and SMS");

        // Cancelled: told.
        h.cancel(meeting.id).await.unwrap();
        let outbox = s.store.outbox(10).await.unwrap();
        assert_eq!(outbox.len(), 4);
        assert!(
            outbox
                .iter()
                .any(|m| m.mail.subject.starts_with("[Guichet] Appointment cancelled: Passeport"))
        );
    });
}
