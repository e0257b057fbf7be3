//! Meetings agendas end to end: a rush of citizens on one morning's slots, free slots pushed
//! live over a websocket, holds, and bad input refused without a trace.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clients::{GraphqlClient, WsClient, WsProtocol};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::support::*;

fn paris() -> TimeZone {
    TimeZone::get("Europe/Paris").unwrap()
}

fn tomorrow() -> Date {
    jiff::Timestamp::now().to_zoned(paris()).date().tomorrow().unwrap()
}

async fn ok(client: &GraphqlClient, query: &str, variables: Value) -> Value {
    let r = client.request(query, variables).await.unwrap();
    assert!(r.is_ok(), "{query}: {}", r.body);
    r.data().clone()
}

struct Setup {
    agenda: String,
    meeting_type: String,
    desks: Vec<String>,
}

/// A meetings agenda open tomorrow 09:00–12:00 on `desks` desks, with a 30-minute type, bookable
/// from now on.
async fn meetings_agenda(admin: &GraphqlClient, slug: &str, desks: usize) -> Setup {
    meetings_agenda_with(admin, slug, desks, json!({})).await
}

/// The same, with more meetings rules.
async fn meetings_agenda_with(
    admin: &GraphqlClient,
    slug: &str,
    desks: usize,
    more_rules: Value,
) -> Setup {
    let mut rules = json!({ "minimalBookingDelayDays": 0, "closedOnPublicHolidays": false });
    for (k, v) in more_rules.as_object().unwrap() {
        rules[k] = v.clone();
    }
    let agenda = ok(
        admin,
        "mutation($input: CreateAgendaInput!) { createAgenda(input: $input) { id kind } }",
        json!({ "input": { "slug": slug, "label": "Passeports et CNI", "kind": "MEETINGS",
                "meetings": rules } }),
    )
    .await["createAgenda"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut desk_ids = Vec::new();
    for i in 0..desks {
        let d = ok(
            admin,
            "mutation($input: CreateDeskInput!) { createDesk(input: $input) { id } }",
            json!({ "input": { "agendaId": agenda, "label": format!("Guichet {}", i + 1) } }),
        )
        .await;
        desk_ids.push(d["createDesk"]["id"].as_str().unwrap().to_owned());
    }
    ok(
        admin,
        "mutation($input: AddOpeningPeriodsInput!) { addOpeningPeriods(input: $input) { id } }",
        json!({ "input": { "agendaId": agenda, "deskIds": desk_ids, "date": tomorrow().to_string(),
                "startTime": "09:00", "endTime": "12:00" } }),
    )
    .await;
    let mt = ok(
        admin,
        "mutation($input: CreateMeetingTypeInput!) { createMeetingType(input: $input) { id durationMinutes } }",
        json!({ "input": { "agendaId": agenda, "label": "Dépôt de dossier", "durationMinutes": 30 } }),
    )
    .await["createMeetingType"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Setup { agenda, meeting_type: mt, desks: desk_ids }
}

const FREE_SLOTS: &str = "query($a: ID!, $t: ID!, $d: String!) { freeSlots(agendaId: $a, meetingTypeId: $t, from: $d, to: $d) { startsAt endsAt freeDesks } }";
const BOOK_SLOT: &str = "mutation($input: BookSlotInput!) { bookSlot(input: $input) { id deskId startsAt endsAt status } }";

async fn free_slots(client: &GraphqlClient, s: &Setup) -> Vec<Value> {
    ok(
        client,
        FREE_SLOTS,
        json!({ "a": s.agenda, "t": s.meeting_type, "d": tomorrow().to_string() }),
    )
    .await["freeSlots"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn two_hundred_citizens_on_one_morning_never_share_a_desk() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let s = meetings_agenda(&admin, "passeports", 3).await;
        let slots = free_slots(&server.client(), &s).await;
        assert_eq!(slots.len(), 6, "09:00 to 11:30: {slots:?}");
        assert!(slots.iter().all(|slot| slot["freeDesks"] == 3));
        let starts: Vec<String> =
            slots.iter().map(|slot| slot["startsAt"].as_str().unwrap().to_owned()).collect();

        let people = citizens(&server.client(), 200, "rdv").await;
        let tasks: Vec<_> = people
            .into_iter()
            .enumerate()
            .map(|(i, (client, _))| {
                let input = json!({ "agendaId": s.agenda, "meetingTypeId": s.meeting_type,
                                    "startsAt": starts[i % starts.len()] });
                tokio::spawn(async move {
                    client.request(BOOK_SLOT, json!({ "input": input })).await.unwrap()
                })
            })
            .collect();
        let mut acknowledged = BTreeSet::new();
        let mut full = 0;
        for t in tasks {
            let r = t.await.unwrap();
            match r.error_code() {
                None => {
                    let m = &r.data()["bookSlot"];
                    assert_eq!(m["status"], "CONFIRMED");
                    acknowledged.insert(m["id"].as_str().unwrap().to_owned());
                }
                Some("FULL") => full += 1,
                Some(code) => panic!("unexpected {code}: {}", r.body),
            }
        }
        assert_eq!((acknowledged.len(), full), (18, 182), "3 desks × 6 slots");
        assert!(free_slots(&server.client(), &s).await.is_empty(), "the morning is fully booked");

        // The agents' listing holds exactly the acknowledged meetings, one per desk and slot.
        let listing = ok(
            &admin,
            "query($a: ID!, $d: String!) { agendaMeetings(agendaId: $a, from: $d, to: $d) { id deskId startsAt endsAt } }",
            json!({ "a": s.agenda, "d": tomorrow().to_string() }),
        )
        .await;
        let meetings = listing["agendaMeetings"].as_array().unwrap();
        let listed: BTreeSet<String> =
            meetings.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(listed, acknowledged);
        let mut per_desk: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for m in meetings {
            let fresh = per_desk
                .entry(m["deskId"].as_str().unwrap())
                .or_default()
                .insert(m["startsAt"].as_str().unwrap());
            assert!(fresh, "desk double-booked: {m}");
        }
        assert_eq!(per_desk.len(), 3);
        assert!(per_desk.keys().all(|d| s.desks.iter().any(|x| x == d)));
        server.stop().await;
    });
}

#[test]
fn free_slots_change_live_as_they_are_booked_held_and_released() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let s = meetings_agenda(&admin, "etat-civil", 1).await;
        let people = citizens(&server.client(), 2, "live-rdv").await;
        let (alice, bob) = (&people[0].0, &people[1].0);

        let mut watcher =
            WsClient::connect(&server.base, WsProtocol::TransportWs, None).await.unwrap();
        let sub = "subscription($a: ID!, $t: ID!, $d: String!) { freeSlots(agendaId: $a, meetingTypeId: $t, from: $d, to: $d) { seq slots { startsAt freeDesks } } }";
        watcher
            .subscribe(
                "slots",
                sub,
                json!({ "a": s.agenda, "t": s.meeting_type, "d": tomorrow().to_string() }),
            )
            .await
            .unwrap();
        let starts = |payload: &Value| -> Vec<String> {
            payload["data"]["freeSlots"]["slots"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["startsAt"].as_str().unwrap().to_owned())
                .collect()
        };
        let first = watcher.next_data("slots", Duration::from_secs(10)).await.unwrap();
        let all = starts(&first);
        assert_eq!(all.len(), 6);

        // Alice books 09:00: it disappears.
        let booked = ok(
            alice,
            BOOK_SLOT,
            json!({ "input": { "agendaId": s.agenda, "meetingTypeId": s.meeting_type, "startsAt": all[0] } }),
        )
        .await;
        let next = watcher.next_data("slots", Duration::from_secs(10)).await.unwrap();
        assert_eq!(starts(&next), all[1..].to_vec());

        // Bob holds 09:30 while he fills his form: gone for others, refused to Alice.
        let hold =
            "mutation($input: HoldSlotInput!) { holdSlot(input: $input) { id status holdUntil } }";
        let held = ok(
            bob,
            hold,
            json!({ "input": { "agendaId": s.agenda, "meetingTypeId": s.meeting_type, "startsAt": all[1], "lockCode": "bob-form-0001" } }),
        )
        .await;
        assert_eq!(held["holdSlot"]["status"], "HELD");
        let next = watcher.next_data("slots", Duration::from_secs(10)).await.unwrap();
        assert_eq!(starts(&next), all[2..].to_vec());
        let refused = alice
            .request(hold, json!({ "input": { "agendaId": s.agenda, "meetingTypeId": s.meeting_type, "startsAt": all[1], "lockCode": "alice-form-01" } }))
            .await
            .unwrap();
        assert_eq!(refused.error_code(), Some("FULL"), "{}", refused.body);

        // Bob books with his lock code: the hold becomes his meeting.
        let mine = ok(
            bob,
            BOOK_SLOT,
            json!({ "input": { "agendaId": s.agenda, "meetingTypeId": s.meeting_type, "startsAt": all[1], "lockCode": "bob-form-0001" } }),
        )
        .await;
        assert_eq!(mine["bookSlot"]["id"], held["holdSlot"]["id"]);
        assert_eq!(mine["bookSlot"]["status"], "CONFIRMED");

        // Alice cancels: 09:00 comes back.
        let id = booked["bookSlot"]["id"].as_str().unwrap();
        ok(alice, "mutation($id: ID!) { cancelMeeting(id: $id) { status } }", json!({ "id": id }))
            .await;
        let back = watcher.next_data("slots", Duration::from_secs(10)).await.unwrap();
        let mut expected = vec![all[0].clone()];
        expected.extend(all[2..].iter().cloned());
        assert_eq!(starts(&back), expected);
        // Bob cannot cancel Alice's meeting, and sees only his own.
        let mine_only = ok(bob, "{ myMeetings { id status } }", json!({})).await;
        assert_eq!(mine_only["myMeetings"].as_array().unwrap().len(), 1);
        server.stop().await;
    });
}

#[test]
fn a_lapsed_hold_frees_its_slot_live() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let s = meetings_agenda_with(&admin, "hold-expiry", 1, json!({ "holdMinutes": 1 })).await;
        let (bob, _) = citizens(&server.client(), 1, "hold-expiry").await.remove(0);
        let mut watcher =
            WsClient::connect(&server.base, WsProtocol::TransportWs, None).await.unwrap();
        let sub = "subscription($a: ID!, $t: ID!, $d: String!) { freeSlots(agendaId: $a, meetingTypeId: $t, from: $d, to: $d) { seq slots { startsAt } } }";
        let day = tomorrow().to_string();
        watcher
            .subscribe("slots", sub, json!({ "a": s.agenda, "t": s.meeting_type, "d": day }))
            .await
            .unwrap();
        let count =
            |payload: &Value| payload["data"]["freeSlots"]["slots"].as_array().unwrap().len();
        let first = watcher.next_data("slots", Duration::from_secs(10)).await.unwrap();
        assert_eq!(count(&first), 6);
        let starts = first["data"]["freeSlots"]["slots"][0]["startsAt"].clone();
        ok(
            &bob,
            "mutation($input: HoldSlotInput!) { holdSlot(input: $input) { id } }",
            json!({ "input": { "agendaId": s.agenda, "meetingTypeId": s.meeting_type, "startsAt": starts, "lockCode": "bob-form-0001" } }),
        )
        .await;
        let held = watcher.next_data("slots", Duration::from_secs(10)).await.unwrap();
        assert_eq!(count(&held), 5);
        // Nobody books it: a minute later the scheduler frees it, and the subscriber sees it
        // without asking.
        let back = watcher.next_data("slots", Duration::from_secs(90)).await.unwrap();
        assert_eq!(count(&back), 6, "{back}");
        server.stop().await;
    });
}

#[test]
fn bad_meetings_input_is_refused_and_changes_nothing() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let s = meetings_agenda(&admin, "urbanisme", 2).await;
        let citizen = citizens(&server.client(), 1, "bad-rdv").await.remove(0).0;
        let config = "query($slug: String!) { agenda(slug: $slug) { meetingTypes { id } desks { id } openingPeriods { id } exceptions { id } } }";
        let before = ok(&admin, config, json!({ "slug": "urbanisme" })).await;
        let periods =
            "mutation($input: AddOpeningPeriodsInput!) { addOpeningPeriods(input: $input) { id } }";
        let exception =
            "mutation($input: AddExceptionInput!) { addException(input: $input) { id } }";
        let now = jiff::Timestamp::now();
        let in_a_year = tomorrow().checked_add(jiff::ToSpan::days(365)).unwrap();
        // Next year's change to summer time, the last Sunday of March.
        let spring = jiff::civil::date(tomorrow().year() + 1, 3, 31)
            .nth_weekday_of_month(-1, jiff::civil::Weekday::Sunday)
            .unwrap();
        let anonymous = server.client();
        let cases: Vec<(&GraphqlClient, &str, Value, &str)> = vec![
            // Overlaps tomorrow's 09:00–12:00 on the first desk (the second desk is fine, but
            // it is all or none).
            (
                &admin,
                periods,
                json!({ "input": { "agendaId": s.agenda, "deskIds": [s.desks[1], s.desks[0]], "date": tomorrow().to_string(), "startTime": "11:00", "endTime": "13:00" } }),
                "BAD_USER_INPUT",
            ),
            // 02:30 does not exist on the last Sunday of March.
            (
                &admin,
                periods,
                json!({ "input": { "agendaId": s.agenda, "deskIds": [s.desks[0]], "date": spring.to_string(), "startTime": "02:30", "endTime": "05:00" } }),
                "BAD_USER_INPUT",
            ),
            // Neither a weekday nor a date; a malformed time; an unknown desk.
            (
                &admin,
                periods,
                json!({ "input": { "agendaId": s.agenda, "deskIds": [s.desks[0]], "startTime": "14:00", "endTime": "15:00" } }),
                "BAD_USER_INPUT",
            ),
            (
                &admin,
                periods,
                json!({ "input": { "agendaId": s.agenda, "deskIds": [s.desks[0]], "weekday": "MONDAY", "startTime": "2pm", "endTime": "15:00" } }),
                "BAD_USER_INPUT",
            ),
            (
                &admin,
                periods,
                json!({ "input": { "agendaId": s.agenda, "deskIds": [s.agenda], "weekday": "MONDAY", "startTime": "14:00", "endTime": "15:00" } }),
                "NOT_FOUND",
            ),
            // An exception in the past.
            (
                &admin,
                exception,
                json!({ "input": { "agendaId": s.agenda, "startsAt": (now - jiff::SignedDuration::from_hours(48)).to_string(), "endsAt": (now - jiff::SignedDuration::from_hours(24)).to_string(), "label": "Passé" } }),
                "BAD_USER_INPUT",
            ),
            // A meeting longer than every opening period (three hours).
            (
                &admin,
                "mutation($input: CreateMeetingTypeInput!) { createMeetingType(input: $input) { id } }",
                json!({ "input": { "agendaId": s.agenda, "label": "Trop long", "durationMinutes": 240 } }),
                "BAD_USER_INPUT",
            ),
            // Citizens do not configure agendas; events do not go in meetings agendas.
            (
                &citizen,
                "mutation($input: CreateDeskInput!) { createDesk(input: $input) { id } }",
                json!({ "input": { "agendaId": s.agenda, "label": "Pirate" } }),
                "FORBIDDEN",
            ),
            (
                &admin,
                "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
                json!({ "input": { "agendaId": s.agenda, "label": "Concert", "startsAt": (now + jiff::SignedDuration::from_hours(30)).to_string(), "places": 3 } }),
                "BAD_USER_INPUT",
            ),
            // Not a slot (09:10), outside the booking delays (a year ahead), no token.
            (
                &citizen,
                BOOK_SLOT,
                json!({ "input": { "agendaId": s.agenda, "meetingTypeId": s.meeting_type, "startsAt": format!("{}T09:10:00+01:00", tomorrow()) } }),
                "BAD_USER_INPUT",
            ),
            (
                &citizen,
                BOOK_SLOT,
                json!({ "input": { "agendaId": s.agenda, "meetingTypeId": s.meeting_type, "startsAt": format!("{in_a_year}T09:00:00+01:00") } }),
                "BAD_USER_INPUT",
            ),
            (
                &anonymous,
                BOOK_SLOT,
                json!({ "input": { "agendaId": s.agenda, "meetingTypeId": s.meeting_type, "startsAt": format!("{}T09:00:00+01:00", tomorrow()) } }),
                "UNAUTHENTICATED",
            ),
            // Unknown meeting type, an events agenda's id, a reversed date range.
            (
                &citizen,
                FREE_SLOTS,
                json!({ "a": s.agenda, "t": s.desks[0], "d": tomorrow().to_string() }),
                "NOT_FOUND",
            ),
            (
                &citizen,
                "query($a: ID!, $t: ID!) { freeSlots(agendaId: $a, meetingTypeId: $t, from: \"2027-02-01\", to: \"2027-01-01\") { startsAt } }",
                json!({ "a": s.agenda, "t": s.meeting_type }),
                "BAD_USER_INPUT",
            ),
        ];
        for (client, query, variables, code) in cases {
            let r = client.request(query, variables.clone()).await.unwrap();
            assert_eq!(r.error_code(), Some(code), "{query} {variables}: {}", r.body);
        }
        let after = ok(&admin, config, json!({ "slug": "urbanisme" })).await;
        assert_eq!(before, after, "nothing was added");
        assert!(
            ok(&admin, "{ myMeetings { id } }", json!({})).await["myMeetings"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert_eq!(free_slots(&citizen, &s).await.len(), 6, "every slot still free");
        server.stop().await;
    });
}

#[test]
fn a_virtual_agenda_offers_its_members_slots_and_books_on_one_of_them() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let centre = meetings_agenda(&admin, "mairie-centre", 1).await;
        let annexe = meetings_agenda(&admin, "mairie-annexe", 2).await;
        let create = "mutation($input: CreateAgendaInput!) { createAgenda(input: $input) { id } }";
        let v = ok(
            &admin,
            create,
            json!({ "input": { "slug": "toutes-mairies", "label": "Toutes les mairies", "kind": "VIRTUAL",
                    "meetings": { "minimalBookingDelayDays": 0 } } }),
        )
        .await["createAgenda"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let add =
            "mutation($a: ID!, $m: ID!) { addVirtualMember(agendaId: $a, memberId: $m) { id } }";
        for member in [&centre.agenda, &annexe.agenda] {
            ok(&admin, add, json!({ "a": v, "m": member })).await;
        }
        // Bad members: twice the same, an events agenda, an unknown id.
        let events = create_agenda(&admin, "piscine", &[], &[]).await;
        for (member, code) in [
            (centre.agenda.clone(), "BAD_USER_INPUT"),
            (events, "BAD_USER_INPUT"),
            ("01a00000-0000-7000-8000-000000000000".to_owned(), "NOT_FOUND"),
        ] {
            let r = admin.request(add, json!({ "a": v, "m": member })).await.unwrap();
            assert_eq!(r.error_code(), Some(code), "{}", r.body);
        }
        let agenda = ok(
            &server.client(),
            "query($id: ID!) { agenda(id: $id) { kind members { slug } meetingTypes { id slug durationMinutes } } }",
            json!({ "id": v }),
        )
        .await;
        assert_eq!(agenda["agenda"]["kind"], "VIRTUAL");
        assert_eq!(agenda["agenda"]["members"].as_array().unwrap().len(), 2);
        let types = agenda["agenda"]["meetingTypes"].as_array().unwrap();
        assert_eq!(types.len(), 1, "the shared type: {types:?}");
        let mt = types[0]["id"].as_str().unwrap().to_owned();
        let shared = Setup { agenda: v.clone(), meeting_type: mt.clone(), desks: vec![] };
        let slots = free_slots(&server.client(), &shared).await;
        assert_eq!(slots.len(), 6);
        assert!(slots.iter().all(|s| s["freeDesks"] == 3), "1 + 2 desks: {slots:?}");

        // Four citizens want 09:00: three desks in all, so three are booked across the members.
        let people = citizens(&server.client(), 4, "virtuel").await;
        let at = slots[0]["startsAt"].as_str().unwrap().to_owned();
        let mut booked_on = Vec::new();
        for (client, _) in &people {
            let r = client
                .request(
                    BOOK_SLOT.replace("id deskId", "id agendaId deskId").as_str(),
                    json!({ "input": { "agendaId": v, "meetingTypeId": mt, "startsAt": at } }),
                )
                .await
                .unwrap();
            match r.error_code() {
                None => {
                    booked_on.push(r.data()["bookSlot"]["agendaId"].as_str().unwrap().to_owned())
                }
                Some(code) => assert_eq!(code, "FULL", "{}", r.body),
            }
        }
        booked_on.sort();
        let mut expected =
            vec![annexe.agenda.clone(), annexe.agenda.clone(), centre.agenda.clone()];
        expected.sort();
        assert_eq!(booked_on, expected);
        assert!(free_slots(&server.client(), &centre).await.len() == 5, "the member sees it too");

        // An exclusion period of the virtual agenda hides slots there, not in the members.
        ok(
            &admin,
            "mutation($input: AddExclusionPeriodInput!) { addExclusionPeriod(input: $input) { id } }",
            json!({ "input": { "agendaId": v, "date": tomorrow().to_string(), "startTime": "11:00", "endTime": "12:00" } }),
        )
        .await;
        assert_eq!(free_slots(&server.client(), &shared).await.len(), 3, "09:30 to 10:30");
        assert_eq!(free_slots(&server.client(), &annexe).await.len(), 5);
        server.stop().await;
    });
}

#[test]
fn a_duplicated_meetings_agenda_offers_the_same_slots() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let s = meetings_agenda(&admin, "cni-mairie", 2).await;
        let copy = ok(
            &admin,
            "mutation($a: ID!) { duplicateAgenda(agendaId: $a, slug: \"cni-annexe\", label: \"CNI annexe\") { id kind meetingTypes { id durationMinutes } desks { label } } }",
            json!({ "a": s.agenda }),
        )
        .await;
        let copy = &copy["duplicateAgenda"];
        assert_eq!(copy["kind"], "MEETINGS");
        assert_eq!(copy["desks"].as_array().unwrap().len(), 2);
        let copied = Setup {
            agenda: copy["id"].as_str().unwrap().to_owned(),
            meeting_type: copy["meetingTypes"][0]["id"].as_str().unwrap().to_owned(),
            desks: vec![],
        };
        assert_ne!(copied.meeting_type, s.meeting_type);
        let original = free_slots(&admin, &s).await;
        assert_eq!(free_slots(&admin, &copied).await, original);
        assert_eq!(original.len(), 6);
        server.stop().await;
    });
}

#[test]
fn a_shared_unavailability_calendar_closes_every_desk_that_follows_it() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let a = meetings_agenda(&admin, "mairie-centre", 2).await;
        let b = meetings_agenda(&admin, "mairie-annexe", 1).await;
        let c = meetings_agenda(&admin, "mairie-quartier", 1).await;
        let cal = ok(
            &admin,
            "mutation { createUnavailabilityCalendar(slug: \"formations\", label: \"Formations\") { id } }",
            json!({}),
        )
        .await["createUnavailabilityCalendar"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let link = "mutation($c: ID!, $a: ID!, $d: [ID!]!) { linkUnavailabilityCalendar(calendarId: $c, agendaId: $a, deskIds: $d) { agendaId deskIds } }";
        ok(&admin, link, json!({ "c": cal, "a": a.agenda, "d": [a.desks[0]] })).await;
        ok(&admin, link, json!({ "c": cal, "a": b.agenda, "d": [] })).await;
        let at = |h: i8, m: i8| {
            tomorrow().at(h, m, 0, 0).to_zoned(paris()).unwrap().timestamp().to_string()
        };
        let add =
            "mutation($input: AddUnavailabilityInput!) { addUnavailability(input: $input) { id } }";
        ok(&admin, add, json!({ "input": { "calendarId": cal, "startsAt": at(9, 0), "endsAt": at(10, 0), "label": "Logiciel" } })).await;
        // Centre: one of two desks closed 09:00–10:00; annexe: closed then; quartier: not linked.
        let nine = |slots: &[Value]| {
            slots
                .iter()
                .filter(|s| s["startsAt"].as_str().unwrap().contains("T09:"))
                .map(|s| s["freeDesks"].as_i64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(nine(&free_slots(&admin, &a).await), vec![1, 1]);
        assert!(nine(&free_slots(&admin, &b).await).is_empty());
        assert_eq!(nine(&free_slots(&admin, &c).await), vec![1, 1]);
        // Linking later closes the periods to come too.
        ok(&admin, link, json!({ "c": cal, "a": c.agenda, "d": [] })).await;
        assert!(nine(&free_slots(&admin, &c).await).is_empty());
        let listed = ok(
            &admin,
            "{ unavailabilityCalendars { slug periods { label } links { agendaId } } }",
            json!({}),
        )
        .await;
        assert_eq!(listed["unavailabilityCalendars"][0]["links"].as_array().unwrap().len(), 3);
        // Bad input changes nothing.
        let r = admin
            .request(add, json!({ "input": { "calendarId": cal, "startsAt": "2020-01-01T09:00:00+01:00", "endsAt": "2020-01-01T10:00:00+01:00", "label": "Passé" } }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let r = admin.request(link, json!({ "c": cal, "a": c.agenda, "d": [] })).await.unwrap();
        assert!(r.error_code().is_some(), "linked twice: {}", r.body);
        let r = admin
            .request(link, json!({ "c": cal, "a": b.agenda, "d": [a.desks[1]] }))
            .await
            .unwrap();
        assert!(r.error_code().is_some());
        let listed = ok(
            &admin,
            "{ unavailabilityCalendars { periods { label } links { agendaId } } }",
            json!({}),
        )
        .await;
        assert_eq!(listed["unavailabilityCalendars"][0]["periods"].as_array().unwrap().len(), 1);
        assert_eq!(listed["unavailabilityCalendars"][0]["links"].as_array().unwrap().len(), 3);
        let (citizen, _) = citizens(&server.client(), 1, "cal").await.remove(0);
        let r = citizen.request("{ unavailabilityCalendars { id } }", json!({})).await.unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"));
        server.stop().await;
    });
}

#[test]
fn a_room_shared_by_two_agendas_holds_one_meeting_at_a_time() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let room = ok(&admin, "mutation { createResource(slug: \"salle-entretien\", label: \"Salle d'entretien\") { id } }", json!({}))
            .await["createResource"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Two agendas (social worker, housing) share one interview room; the first has two desks.
        let mut setups = Vec::new();
        for (slug, desks) in [("ccas", 2), ("logement", 1)] {
            let agenda = ok(
                &admin,
                "mutation($input: CreateAgendaInput!) { createAgenda(input: $input) { id resourceIds } }",
                json!({ "input": { "slug": slug, "label": slug, "kind": "MEETINGS", "resourceIds": [room],
                    "meetings": { "minimalBookingDelayDays": 0, "closedOnPublicHolidays": false } } }),
            )
            .await["createAgenda"]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let mut desk_ids = Vec::new();
            for i in 0..desks {
                let d = ok(
                    &admin,
                    "mutation($input: CreateDeskInput!) { createDesk(input: $input) { id } }",
                    json!({ "input": { "agendaId": agenda, "label": format!("Bureau {i}") } }),
                )
                .await;
                desk_ids.push(d["createDesk"]["id"].as_str().unwrap().to_owned());
            }
            ok(&admin, "mutation($input: AddOpeningPeriodsInput!) { addOpeningPeriods(input: $input) { id } }",
                json!({ "input": { "agendaId": agenda, "deskIds": desk_ids, "date": tomorrow().to_string(), "startTime": "09:00", "endTime": "12:00" } })).await;
            let mt = ok(&admin, "mutation($input: CreateMeetingTypeInput!) { createMeetingType(input: $input) { id } }",
                json!({ "input": { "agendaId": agenda, "label": "Entretien", "durationMinutes": 30 } })).await;
            setups.push(Setup {
                agenda,
                meeting_type: mt["createMeetingType"]["id"].as_str().unwrap().to_owned(),
                desks: desk_ids,
            });
        }
        let starts = |s: &[Value]| {
            s.iter().map(|x| x["startsAt"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        };
        let before = free_slots(&admin, &setups[0]).await;
        assert_eq!(before.len(), 6);
        // Forty citizens rush the 10:00 slot of both agendas at once: the room takes one meeting.
        let people = citizens(&server.client(), 40, "salle").await;
        let ten = before
            .iter()
            .find(|s| s["startsAt"].as_str().unwrap().contains("T10:00"))
            .unwrap()["startsAt"]
            .clone();
        let tasks: Vec<_> = people
            .iter()
            .enumerate()
            .map(|(i, (c, _))| {
                let s = &setups[i % 2];
                let (c, vars) = (c.clone(), json!({ "input": { "agendaId": s.agenda, "meetingTypeId": s.meeting_type, "startsAt": ten } }));
                tokio::spawn(async move { c.request(BOOK_SLOT, vars).await.unwrap() })
            })
            .collect();
        let mut booked = 0;
        for t in tasks {
            let r = t.await.unwrap();
            match r.error_code() {
                None => booked += 1,
                Some(code) => assert!(["FULL", "UNAVAILABLE"].contains(&code), "{}", r.body),
            }
        }
        assert_eq!(booked, 1, "one meeting in the room at 10:00");
        let mut total = 0;
        for s in &setups {
            let listed = ok(&admin, "query($a: ID!, $d: String!) { agendaMeetings(agendaId: $a, from: $d, to: $d) { startsAt } }",
                json!({ "a": s.agenda, "d": tomorrow().to_string() })).await;
            total += listed["agendaMeetings"].as_array().unwrap().len();
            // 10:00 is gone from both agendas, on every desk.
            assert!(
                !starts(&free_slots(&admin, s).await).contains(&ten.as_str().unwrap().to_owned())
            );
        }
        assert_eq!(total, 1);
        // An event that reserves the room at 11:00 closes both agendas then.
        let events = create_agenda(&admin, "conferences-salle", &[], &[]).await;
        let eleven = tomorrow().at(11, 0, 0, 0).to_zoned(paris()).unwrap().timestamp();
        let r = admin
            .request("mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
                json!({ "input": { "agendaId": events, "label": "Permanence juridique", "startsAt": eleven.to_string(),
                    "endsAt": (eleven + jiff::SignedDuration::from_mins(60)).to_string(), "places": 5, "resourceIds": [room] } }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        for s in &setups {
            assert!(
                starts(&free_slots(&admin, s).await).iter().all(|x| !x.contains("T11:")),
                "11:00 and 11:30 taken"
            );
        }
        server.stop().await;
    });
}
