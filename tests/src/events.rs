//! Events agendas beyond single bookings, end to end: recurrences and season bookings, changed
//! and cancelled occurrences, booking delays and cancellation deadlines, listings, attendance,
//! and the mails citizens receive.

use std::time::Duration;

use jiff::civil::{Date, Weekday};
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::support::*;

const CREATE_RECURRENCE: &str = "mutation($input: CreateRecurrenceInput!) {
    createRecurrence(input: $input) { occurrenceCount recurrence { id label firstDay lastDay
        occurrences { id startsAt places } } } }";
const BOOK_RECURRENCE: &str = "mutation($input: BookRecurrenceInput!) {
    bookRecurrence(input: $input) { id eventId status } }";

fn today() -> Date {
    Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Europe/Paris").unwrap()).date()
}

/// The next `weekday` at least a week from now.
fn next(weekday: Weekday) -> Date {
    let mut d = today().saturating_add(7.days());
    while d.weekday() != weekday {
        d = d.tomorrow().unwrap();
    }
    d
}

async fn agenda_with(admin: &clients::GraphqlClient, slug: &str, extra: Value) -> String {
    let mut input = json!({ "slug": slug, "label": slug, "kind": "EVENTS" });
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    let r = admin
        .request(
            "mutation($input: CreateAgendaInput!) { createAgenda(input: $input) { id } }",
            json!({ "input": input }),
        )
        .await
        .unwrap();
    assert!(r.is_ok(), "createAgenda: {}", r.body);
    r.data()["createAgenda"]["id"].as_str().unwrap().to_owned()
}

async fn agent(server: &TestServer, admin: &clients::GraphqlClient) -> clients::GraphqlClient {
    let r = admin
        .request(
            "mutation { createAccount(input: { email: \"agent@mairie.test\", password: \"agent-password\", firstName: \"A\", lastName: \"Gent\", agentRoles: [\"sport\"] }) { id } }",
            json!({}),
        )
        .await
        .unwrap();
    assert!(r.is_ok(), "{}", r.body);
    server.client().login("agent@mairie.test", "agent-password").await.unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_season_is_booked_all_or_nothing_and_full_occurrences_are_listed() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = agenda_with(&admin, "aquagym", json!({})).await;
        let first = next(Weekday::Monday);
        let last = first.saturating_add(35.days());
        let r = admin
            .request(
                CREATE_RECURRENCE,
                json!({ "input": { "agendaId": agenda, "label": "Aquagym", "weekdays": ["MONDAY"],
                    "startTime": "10:00", "durationMinutes": 45, "firstDay": first.to_string(),
                    "lastDay": last.to_string(), "places": 1 } }),
            )
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let rec = &r.data()["createRecurrence"];
        assert_eq!(rec["occurrenceCount"], 6);
        let recurrence = rec["recurrence"]["id"].as_str().unwrap().to_owned();
        let occurrences = ids(&rec["recurrence"]["occurrences"]);
        assert_eq!(occurrences.len(), 6);

        // Someone takes the second and the fourth Monday.
        let mut people = citizens(&server.client(), 2, "season").await;
        let (camille, _) = people.remove(0);
        let (dominique, dominique_id) = people.remove(0);
        let r = camille
            .request(BOOK, json!({ "ids": [occurrences[1], occurrences[3]] }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);

        // The season cannot be booked: FULL, naming exactly those two, and nothing booked.
        let r = dominique
            .request(BOOK_RECURRENCE, json!({ "input": { "recurrenceId": recurrence } }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("FULL"), "{}", r.body);
        let full: Vec<String> = r.body["errors"][0]["extensions"]["fullEventIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(full, vec![occurrences[1].clone(), occurrences[3].clone()]);
        assert!(r.body["errors"][0]["message"].as_str().unwrap().starts_with("2 events are full"));
        for id in &occurrences {
            let e = event(&admin, id).await;
            let expected = i64::from(*id == occurrences[1] || *id == occurrences[3]);
            assert_eq!(e["bookedPlaces"].as_i64(), Some(expected), "nothing partial");
        }

        // The second Monday gets a second place; the fourth is cancelled for everyone.
        let r = admin
            .request(
                "mutation($id: ID!) { updateEvent(input: { id: $id, places: 2 }) { places label recurrenceId } }",
                json!({ "id": occurrences[1] }),
            )
            .await
            .unwrap();
        assert_eq!(r.data()["updateEvent"]["places"], 2, "{}", r.body);
        assert_eq!(r.data()["updateEvent"]["recurrenceId"], recurrence.as_str());
        let r = admin
            .request(
                "mutation($id: ID!) { cancelEvent(id: $id) { cancelled bookedPlaces bookings { status } } }",
                json!({ "id": occurrences[3] }),
            )
            .await
            .unwrap();
        assert_eq!(r.data()["cancelEvent"]["cancelled"], true, "{}", r.body);
        assert_eq!(r.data()["cancelEvent"]["bookedPlaces"], 0);

        // Now the season books the five remaining occurrences; a second call books nothing new.
        let r = dominique
            .request(BOOK_RECURRENCE, json!({ "input": { "recurrenceId": recurrence } }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let booked = r.data()["bookRecurrence"].as_array().unwrap().clone();
        assert_eq!(booked.len(), 5);
        assert!(booked.iter().all(|b| b["status"] == "CONFIRMED"));
        assert!(booked.iter().all(|b| b["eventId"] != occurrences[3].as_str()));
        let r = dominique
            .request(BOOK_RECURRENCE, json!({ "input": { "recurrenceId": recurrence } }))
            .await
            .unwrap();
        assert_eq!(r.data()["bookRecurrence"], json!([]), "{}", r.body);
        let mine = dominique.request("{ myBookings { eventId } }", json!({})).await.unwrap();
        assert_eq!(mine.data()["myBookings"].as_array().unwrap().len(), 5);

        // An agent books a season for someone else; a citizen cannot.
        let r = camille
            .request(
                BOOK_RECURRENCE,
                json!({ "input": { "recurrenceId": recurrence, "userId": dominique_id } }),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"), "{}", r.body);
        server.stop().await;
    });
}

#[test]
fn recurrences_keep_local_time_across_dst_and_refuse_bad_rules() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = agenda_with(&admin, "yoga", json!({})).await;
        // Sundays of March and April next year: the last Sunday of March changes to summer time.
        let year = today().year() + 1;
        let input = |start: &str, last: Option<String>| {
            json!({ "input": { "agendaId": agenda, "label": "Yoga", "weekdays": ["SUNDAY"],
                "startTime": start, "firstDay": format!("{year}-03-01"), "lastDay": last,
                "places": 10 } })
        };
        let r = admin
            .request(CREATE_RECURRENCE, input("10:00", Some(format!("{year}-04-30"))))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let starts: Vec<String> = r.data()["createRecurrence"]["recurrence"]["occurrences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["startsAt"].as_str().unwrap().to_owned())
            .collect();
        assert!(starts.len() >= 8, "{starts:?}");
        // Every occurrence at 10:00 local time, in winter time then in summer time.
        assert!(starts.iter().all(|s| s.contains("T10:00:00")), "{starts:?}");
        assert!(starts.first().unwrap().ends_with("+01:00"));
        assert!(starts.last().unwrap().ends_with("+02:00"));

        // 02:30 does not exist on the last Sunday of March; no end; no weekday; bad time.
        let before =
            admin.request("{ events(filter: {}) { totalCount } }", json!({})).await.unwrap();
        for bad in [
            input("02:30", Some(format!("{year}-04-30"))),
            input("10:00", None),
            input("25:00", Some(format!("{year}-04-30"))),
            input("10:00", Some(format!("{year}-02-01"))),
            json!({ "input": { "agendaId": agenda, "label": "Yoga", "weekdays": [], "startTime": "10:00",
                "firstDay": format!("{year}-03-01"), "lastDay": format!("{year}-04-01"), "places": 1 } }),
        ] {
            let r = admin.request(CREATE_RECURRENCE, bad).await.unwrap();
            assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        }
        let r = admin
            .request(CREATE_RECURRENCE, input("02:30", Some(format!("{year}-04-30"))))
            .await
            .unwrap();
        assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("daylight saving"));
        let after =
            admin.request("{ events(filter: {}) { totalCount } }", json!({})).await.unwrap();
        assert_eq!(before.data(), after.data(), "nothing created by refused rules");
        // Citizens cannot create recurrences.
        let (citizen, _) = citizens(&server.client(), 1, "yoga").await.remove(0);
        let r = citizen
            .request(CREATE_RECURRENCE, input("10:00", Some(format!("{year}-04-30"))))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"));
        server.stop().await;
    });
}

#[test]
fn booking_delays_and_cancellation_deadlines_bind_citizens_not_agents() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = agenda_with(
            &admin,
            "stade",
            json!({ "services": ["sport"], "events": { "minimalBookingDelayDays": 2,
                "maximalBookingDelayDays": 60, "cancellationDeadlineHours": 48 } }),
        )
        .await;
        let agent = agent(&server, &admin).await;
        let (citizen, citizen_id) = citizens(&server.client(), 1, "stade").await.remove(0);
        // An event tomorrow is inside the two-day delay.
        let soon = create_event(&admin, &agenda, 5, 0).await;
        let r = citizen.request(BOOK, json!({ "ids": [soon] })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("can be booked"));
        assert_eq!(event(&admin, &soon).await["bookedPlaces"], 0);
        // An agent books it for the citizen.
        let r = agent
            .request(
                "mutation($ids: [ID!]!, $u: ID!) { bookEvents(input: { eventIds: $ids, userId: $u }) { id } }",
                json!({ "ids": [soon], "u": citizen_id }),
            )
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let booking = r.data()["bookEvents"][0]["id"].as_str().unwrap().to_owned();
        // Within 48 hours of the start the citizen can no longer cancel; the agent can.
        let cancel = "mutation($id: ID!) { cancelBooking(id: $id) { status } }";
        let r = citizen.request(cancel, json!({ "id": booking })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        assert_eq!(event(&admin, &soon).await["bookedPlaces"], 1);
        let r = agent.request(cancel, json!({ "id": booking })).await.unwrap();
        assert_eq!(r.data()["cancelBooking"]["status"], "CANCELLED", "{}", r.body);
        // Rules are visible, and bad rules are refused.
        let r = citizen
            .request(
                "query($id: ID!) { agenda(id: $id) { eventRules { minimalBookingDelayDays cancellationDeadlineHours } } }",
                json!({ "id": agenda }),
            )
            .await
            .unwrap();
        assert_eq!(r.data()["agenda"]["eventRules"]["cancellationDeadlineHours"], 48);
        for bad in [
            json!({ "maximalBookingDelayDays": 0 }),
            json!({ "minimalBookingDelayDays": -1 }),
            json!({ "minimalBookingDelayDays": 10, "maximalBookingDelayDays": 5 }),
        ] {
            let r = admin
                .request(
                    "mutation($e: EventRulesInput!) { createAgenda(input: { slug: \"mauvais\", label: \"x\", kind: EVENTS, events: $e }) { id } }",
                    json!({ "e": bad }),
                )
                .await
                .unwrap();
            assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        }
        let r = admin.request("{ agendas { slug } }", json!({})).await.unwrap();
        assert!(!r.body.to_string().contains("mauvais"));
        server.stop().await;
    });
}

#[test]
fn listings_page_through_events_by_start_with_filters_and_months() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let sport = agenda_with(&admin, "piscine", json!({ "category": "sport" })).await;
        let culture = agenda_with(&admin, "musee", json!({ "category": "culture" })).await;
        let create = async |agenda: &str,
                            label: &str,
                            days: i64,
                            places: i32,
                            publication: Option<Timestamp>| {
            let starts = Timestamp::now() + SignedDuration::from_hours(24 * days);
            let r = admin
                .request(
                    "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
                    json!({ "input": { "agendaId": agenda, "label": label, "startsAt": starts.to_string(),
                        "places": places, "publicationAt": publication.map(|p| p.to_string()) } }),
                )
                .await
                .unwrap();
            assert!(r.is_ok(), "{}", r.body);
            r.data()["createEvent"]["id"].as_str().unwrap().to_owned()
        };
        let later = Timestamp::now() + SignedDuration::from_hours(24 * 30);
        let mut sport_events = Vec::new();
        for (i, days) in [3, 10, 40, 45, 70].into_iter().enumerate() {
            sport_events.push(create(&sport, &format!("Nage {i}"), days, 1, None).await);
        }
        create(&sport, "Pas encore publié", 5, 1, Some(later)).await;
        create(&culture, "Exposition", 4, 1, None).await;
        let full = sport_events[1].clone();
        let (citizen, _) = citizens(&server.client(), 1, "listing").await.remove(0);
        assert!(citizen.request(BOOK, json!({ "ids": [full] })).await.unwrap().is_ok());

        // A citizen pages through the sport category two at a time.
        let query = "query($f: EventFilter!, $after: String) { events(filter: $f, first: 2, after: $after) {
            nodes { id label full month } pageInfo { hasNextPage endCursor } totalCount months { month count } } }";
        let filter = json!({ "category": "sport" });
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let r = citizen.request(query, json!({ "f": filter, "after": after })).await.unwrap();
            assert!(r.is_ok(), "{}", r.body);
            let page = &r.data()["events"];
            assert_eq!(page["totalCount"], 5, "the unpublished event is hidden from citizens");
            seen.extend(ids(&page["nodes"]));
            if page["pageInfo"]["hasNextPage"] == false {
                let months: i64 = page["months"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["count"].as_i64().unwrap())
                    .sum();
                assert_eq!(months, 5);
                break;
            }
            after = Some(page["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen, sport_events, "every event once, by start");
        // Full events are listed as full, or left out on request; the agenda filter works.
        let r = citizen
            .request(
                query,
                json!({ "f": { "agendaIds": [sport], "onlyAvailable": true }, "after": null }),
            )
            .await
            .unwrap();
        assert_eq!(r.data()["events"]["totalCount"], 4, "{}", r.body);
        let r = citizen
            .request(query, json!({ "f": { "category": "culture" }, "after": null }))
            .await
            .unwrap();
        assert_eq!(r.data()["events"]["nodes"][0]["label"], "Exposition");
        // An agent (here the administrator) sees the unpublished one; a date range narrows.
        let r = admin
            .request(query, json!({ "f": { "agendaIds": [sport] }, "after": null }))
            .await
            .unwrap();
        assert_eq!(r.data()["events"]["totalCount"], 6);
        let from = (Timestamp::now() + SignedDuration::from_hours(24 * 35))
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        let r = citizen
            .request(
                query,
                json!({ "f": { "category": "sport", "from": from.to_string() }, "after": null }),
            )
            .await
            .unwrap();
        assert_eq!(r.data()["events"]["totalCount"], 3);
        let r =
            citizen.request("{ agendaCategories { slug agendaCount } }", json!({})).await.unwrap();
        assert_eq!(
            r.data()["agendaCategories"],
            json!([{ "slug": "culture", "agendaCount": 1 }, { "slug": "sport", "agendaCount": 1 }])
        );
        let r = citizen
            .request(query, json!({ "f": { "from": "tomorrow" }, "after": null }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"));
        let r = citizen.request(query, json!({ "f": {}, "after": "garbage" })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"));
        server.stop().await;
    });
}

#[test]
fn attendance_is_checked_on_the_day_with_the_agenda_reasons() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = agenda_with(
            &admin,
            "atelier",
            json!({ "services": ["sport"], "events": { "absenceReasons": ["Malade", "Oubli"] } }),
        )
        .await;
        let agent = agent(&server, &admin).await;
        let mut people = citizens(&server.client(), 2, "pointage").await;
        let (bob, bob_id) = people.remove(1);
        let (alice, _) = people.remove(0);
        let starts = Timestamp::now() + SignedDuration::from_secs(2);
        let r = admin
            .request(
                "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
                json!({ "input": { "agendaId": agenda, "label": "Atelier", "startsAt": starts.to_string(), "places": 5 } }),
            )
            .await
            .unwrap();
        let event_id = r.data()["createEvent"]["id"].as_str().unwrap().to_owned();
        let a = alice.request(BOOK, json!({ "ids": [event_id] })).await.unwrap();
        let b = bob.request(BOOK, json!({ "ids": [event_id] })).await.unwrap();
        let (a, b) = (
            a.data()["bookEvents"][0]["id"].as_str().unwrap().to_owned(),
            b.data()["bookEvents"][0]["id"].as_str().unwrap().to_owned(),
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Started: hidden from citizens' listings, still listed for agents.
        let listed = "query($a: ID!) { agenda(id: $a) { events { id } } }";
        let r = bob.request(listed, json!({ "a": agenda })).await.unwrap();
        assert_eq!(r.data()["agenda"]["events"], json!([]), "{}", r.body);
        let r = agent.request(listed, json!({ "a": agenda })).await.unwrap();
        assert_eq!(r.data()["agenda"]["events"].as_array().unwrap().len(), 1, "{}", r.body);
        let mark = "mutation($b: ID!, $p: Boolean, $r: String) { markAttendance(bookingId: $b, present: $p, absenceReason: $r) { present absenceReason } }";
        let r = agent.request(mark, json!({ "b": a, "p": true })).await.unwrap();
        assert_eq!(r.data()["markAttendance"]["present"], true, "{}", r.body);
        let r = agent.request(mark, json!({ "b": b, "p": false, "r": "Vacances" })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "not a reason of this agenda");
        let r = agent.request(mark, json!({ "b": b, "p": false, "r": "Malade" })).await.unwrap();
        assert_eq!(r.data()["markAttendance"]["absenceReason"], "Malade", "{}", r.body);
        // Citizens cannot check attendance, even their own.
        let r = bob.request(mark, json!({ "b": b, "p": true })).await.unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"));
        let r = agent
            .request("mutation($e: ID!) { markEventChecked(eventId: $e) { checked bookings { present } } }", json!({ "e": event_id }))
            .await
            .unwrap();
        assert_eq!(r.data()["markEventChecked"]["checked"], true, "{}", r.body);
        // Bob's record over the period, for him and for the agent.
        let day = today().to_string();
        let q = "query($u: ID, $f: String!, $t: String!) { attendance(userId: $u, from: $f, to: $t) { eventLabel booking { present absenceReason } } }";
        for (who, user) in [(&bob, Value::Null), (&agent, json!(bob_id))] {
            let r = who.request(q, json!({ "u": user, "f": day, "t": day })).await.unwrap();
            assert_eq!(
                r.data()["attendance"],
                json!([{ "eventLabel": "Atelier", "booking": { "present": false, "absenceReason": "Malade" } }]),
                "{}",
                r.body
            );
        }
        let r = alice.request(q, json!({ "u": bob_id, "f": day, "t": day })).await.unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"));
        server.stop().await;
    });
}

#[test]
fn citizens_are_mailed_about_their_bookings_and_about_cancelled_events() {
    run(async {
        let smtp = SmtpSink::start().await;
        let url = smtp.url();
        let server = TestServer::start_with(|c| c.smtp_url = Some(url)).await;
        let admin = server.admin().await;
        let agenda = agenda_with(
            &admin,
            "conferences",
            json!({ "fillNotifications": { "thresholds": [], "emails": ["regie@mairie.test"] },
                "events": { "notifyCitizensOnBooking": true } }),
        )
        .await;
        let event_id = create_event(&admin, &agenda, 1, 2).await;
        let people = citizens(&server.client(), 3, "conf").await;
        for (c, _) in &people {
            assert!(c.request(BOOK, json!({ "ids": [event_id] })).await.unwrap().is_ok());
        }
        // One confirmation and two waiting-list notices, each to its citizen alone.
        assert!(eventually(Duration::from_secs(20), async || smtp.messages().len() >= 3).await);
        let messages = smtp.messages();
        assert_eq!(
            messages
                .iter()
                .filter(|m| m.contains("Subject: [Guichet] Booking confirmed: Concert"))
                .count(),
            1
        );
        assert_eq!(
            messages
                .iter()
                .filter(|m| m.contains("Subject: [Guichet] On the waiting list: Concert"))
                .count(),
            2
        );
        for i in 0..3 {
            let me = format!("conf-{i}@citoyens.test");
            assert_eq!(messages.iter().filter(|m| m.contains(&me)).count(), 1, "{messages:#?}");
        }
        // The event is cancelled: three citizens and the notification address are told.
        let r = admin
            .request(
                "mutation($id: ID!) { cancelEvent(id: $id) { cancelled } }",
                json!({ "id": event_id }),
            )
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        assert!(eventually(Duration::from_secs(20), async || smtp.messages().len() >= 7).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let messages = smtp.messages();
        assert_eq!(messages.len(), 7, "{messages:#?}");
        let cancelled: Vec<&String> = messages
            .iter()
            .filter(|m| m.contains("Subject: [Guichet] Cancelled: Concert"))
            .collect();
        assert_eq!(cancelled.len(), 3);
        assert!(messages.iter().any(|m| m.contains("Subject: [Guichet] Event cancelled: Concert")
            && m.contains("regie@mairie.test")));
        // Cancelling it again, or booking it, is refused.
        let r = admin
            .request(
                "mutation($id: ID!) { cancelEvent(id: $id) { cancelled } }",
                json!({ "id": event_id }),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"));
        let (late, _) = citizens(&server.client(), 1, "conf-late").await.remove(0);
        let r = late.request(BOOK, json!({ "ids": [event_id] })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        server.stop().await;
    });
}

/// An agenda that reminds an hour before, and an event that starts an hour and `secs` seconds
/// from now: its reminders fall due in `secs` seconds.
async fn reminder_setup(admin: &clients::GraphqlClient, secs: i64) -> String {
    let agenda = agenda_with(admin, "rappels", json!({ "events": { "reminderHours": 1 } })).await;
    let starts = Timestamp::now() + SignedDuration::from_secs(3600 + secs);
    let r = admin
        .request(
            "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
            json!({ "input": { "agendaId": agenda, "label": "Conseil municipal", "startsAt": starts.to_string(), "places": 10 } }),
        )
        .await
        .unwrap();
    assert!(r.is_ok(), "{}", r.body);
    r.data()["createEvent"]["id"].as_str().unwrap().to_owned()
}

#[test]
fn reminders_go_by_email_and_sms_once_and_not_after_a_cancellation() {
    run(async {
        let smtp = SmtpSink::start().await;
        let sms = SmsGateway::start().await;
        let (smtp_url, sms_url, token) = (smtp.url(), sms.url.clone(), sms.token.clone());
        let server = TestServer::start_with(|c| {
            c.smtp_url = Some(smtp_url);
            c.sms_url = Some(sms_url);
            c.sms_token = Some(token);
        })
        .await;
        let admin = server.admin().await;
        let event_id = reminder_setup(&admin, 4).await;
        let mut people = citizens(&server.client(), 2, "rappel").await;
        let (bob, _) = people.remove(1);
        let (alice, _) = people.remove(0);
        let r = alice
            .request("mutation { setPhone(phone: \"06 12 34 56 78\") { phone } }", json!({}))
            .await
            .unwrap();
        assert_eq!(r.data()["setPhone"]["phone"], "+33612345678", "{}", r.body);
        let r = alice
            .request("mutation { setPhone(phone: \"12\") { phone } }", json!({}))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"));
        assert!(alice.request(BOOK, json!({ "ids": [event_id] })).await.unwrap().is_ok());
        let r = bob.request(BOOK, json!({ "ids": [event_id] })).await.unwrap();
        let bob_booking = r.data()["bookEvents"][0]["id"].as_str().unwrap().to_owned();
        let r = bob
            .request(
                "mutation($id: ID!) { cancelBooking(id: $id) { status } }",
                json!({ "id": bob_booking }),
            )
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        assert!(smtp.messages().is_empty(), "not yet due");

        assert!(
            eventually(Duration::from_secs(30), async || {
                !smtp.messages().is_empty() && !sms.received().is_empty()
            })
            .await
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mails = smtp.messages();
        assert_eq!(mails.len(), 1, "Alice only, once: {mails:#?}");
        assert!(mails[0].contains("Subject: [Guichet] Reminder: Conseil municipal"));
        assert!(mails[0].contains("rappel-0@citoyens.test"));
        let texts = sms.received();
        assert_eq!(texts.len(), 1, "{texts:?}");
        assert_eq!(texts[0]["to"], json!(["+33612345678"]));
        assert!(
            texts[0]["message"].as_str().unwrap().starts_with("Reminder: \"Conseil municipal\"")
        );
        server.stop().await;
    });
}

#[test]
fn agendas_and_events_are_duplicated_without_their_bookings() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = agenda_with(
            &admin,
            "natation-2026",
            json!({ "category": "sport", "events": { "cancellationDeadlineHours": 24 } }),
        )
        .await;
        let first = next(Weekday::Tuesday);
        let r = admin
            .request(
                CREATE_RECURRENCE,
                json!({ "input": { "agendaId": agenda, "label": "Natation", "weekdays": ["TUESDAY"],
                    "startTime": "18:00", "durationMinutes": 60, "firstDay": first.to_string(),
                    "lastDay": first.saturating_add(14.days()).to_string(), "places": 8 } }),
            )
            .await
            .unwrap();
        assert_eq!(r.data()["createRecurrence"]["occurrenceCount"], 3, "{}", r.body);
        let single = create_event(&admin, &agenda, 5, 1).await;
        let (citizen, _) = citizens(&server.client(), 1, "dup").await.remove(0);
        assert!(citizen.request(BOOK, json!({ "ids": [single] })).await.unwrap().is_ok());

        let dup = "mutation($a: ID!, $s: String!, $w: Boolean!) { duplicateAgenda(agendaId: $a, slug: $s, withEvents: $w) { id slug label category eventRules { cancellationDeadlineHours } recurrences { id } events { label places bookedPlaces } } }";
        let r = admin
            .request(dup, json!({ "a": agenda, "s": "natation-2027", "w": true }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let copy = &r.data()["duplicateAgenda"];
        assert_eq!(copy["label"], "natation-2026 (copie)");
        assert_eq!(copy["category"], "sport");
        assert_eq!(copy["eventRules"]["cancellationDeadlineHours"], 24);
        assert_eq!(copy["recurrences"].as_array().unwrap().len(), 1);
        let events = copy["events"].as_array().unwrap();
        assert_eq!(events.len(), 4, "three occurrences and the single event");
        assert!(events.iter().all(|e| e["bookedPlaces"] == 0), "no booking copied");
        // Without events; a taken slug; a citizen.
        let r = admin
            .request(dup, json!({ "a": agenda, "s": "natation-vide", "w": false }))
            .await
            .unwrap();
        assert_eq!(r.data()["duplicateAgenda"]["events"], json!([]), "{}", r.body);
        let r = admin
            .request(dup, json!({ "a": agenda, "s": "natation-2027", "w": true }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("CONFLICT"));
        let r =
            citizen.request(dup, json!({ "a": agenda, "s": "pirate", "w": true })).await.unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"));

        // One event at another date: same duration and places, no booking.
        let later = Timestamp::now() + SignedDuration::from_hours(24 * 20);
        let r = admin
            .request(
                "mutation($id: ID!, $at: DateTime!) { duplicateEvent(id: $id, startsAt: $at) { id agendaId label places waitingListPlaces bookedPlaces startsAt } }",
                json!({ "id": single, "at": later.to_string() }),
            )
            .await
            .unwrap();
        let e = &r.data()["duplicateEvent"];
        assert_eq!(
            (e["places"].as_i64(), e["waitingListPlaces"].as_i64(), e["bookedPlaces"].as_i64()),
            (Some(5), Some(1), Some(0)),
            "{}",
            r.body
        );
        assert_eq!(e["agendaId"], agenda.as_str());
        server.stop().await;
    });
}

#[test]
fn a_resource_is_never_reserved_twice_at_once() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let r = admin
            .request("mutation { createResource(slug: \"salle-polyvalente\", label: \"Salle polyvalente\") { id } }", json!({}))
            .await
            .unwrap();
        let room = r.data()["createResource"]["id"].as_str().unwrap().to_owned();
        let r = admin
            .request(
                "mutation { createResource(slug: \"salle-polyvalente\", label: \"x\") { id } }",
                json!({}),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("CONFLICT"));
        let base = Timestamp::now() + SignedDuration::from_hours(48);
        let at = |h: i64| (base + SignedDuration::from_mins(h * 30)).to_string();
        let create =
            "mutation($input: CreateEventInput!) { createEvent(input: $input) { id resourceIds } }";
        let event = |agenda: &str, label: &str, from: i64, to: i64| {
            json!({ "input": { "agendaId": agenda, "label": label, "startsAt": at(from), "endsAt": at(to),
                "places": 10, "resourceIds": [room] } })
        };
        // Ten agendas (ten actors) try to reserve the room over overlapping spans at once.
        let mut agendas = Vec::new();
        for i in 0..10 {
            agendas.push(agenda_with(&admin, &format!("asso-{i}"), json!({})).await);
        }
        let tasks: Vec<_> = agendas
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let (admin, input) = (admin.clone(), event(a, "Réunion", i as i64 % 3, 4));
                tokio::spawn(async move { admin.request(create, input).await.unwrap() })
            })
            .collect();
        let mut won = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            match r.error_code() {
                None => won.push(r.data()["createEvent"]["id"].as_str().unwrap().to_owned()),
                Some(code) => assert_eq!(code, "CONFLICT", "{}", r.body),
            }
        }
        assert_eq!(won.len(), 1, "exactly one reservation of the room");
        // Back to back is fine; overlapping is not; without an end it is refused.
        let after = admin.request(create, event(&agendas[0], "Suite", 4, 6)).await.unwrap();
        assert!(after.is_ok(), "{}", after.body);
        let after_id = after.data()["createEvent"]["id"].as_str().unwrap().to_owned();
        let r = admin
            .request(create, json!({ "input": { "agendaId": agendas[0], "label": "x", "startsAt": at(8), "places": 1, "resourceIds": [room] } }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"));
        // Moving the second one into the first is refused; cancelling the first frees the room.
        let update = "mutation($id: ID!, $s: DateTime!) { updateEvent(input: { id: $id, startsAt: $s }) { startsAt } }";
        let r = admin.request(update, json!({ "id": after_id, "s": at(3) })).await.unwrap();
        assert_eq!(r.error_code(), Some("CONFLICT"), "{}", r.body);
        admin
            .request("mutation($id: ID!) { cancelEvent(id: $id) { id } }", json!({ "id": won[0] }))
            .await
            .unwrap();
        let r = admin.request(update, json!({ "id": after_id, "s": at(3) })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let r = admin
            .request(
                "query($f: DateTime!, $t: DateTime!) { resources { slug reservations(from: $f, to: $t) { owner startsAt endsAt } } }",
                json!({ "f": at(0), "t": at(10) }),
            )
            .await
            .unwrap();
        let reservations = r.data()["resources"][0]["reservations"].as_array().unwrap().clone();
        assert_eq!(reservations.len(), 1, "{}", r.body);
        assert_eq!(reservations[0]["owner"], format!("event-{after_id}"));
        server.stop().await;
    });
}
