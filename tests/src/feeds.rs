//! Feeds read by other programs: iCalendar feeds checked with an independent RFC 5545 parser
//! (the `ical` crate), and agendas as JSON data sources for forms.

use std::io::BufReader;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::support::*;

fn parse(body: &str) -> ical::parser::ical::component::IcalCalendar {
    let mut calendars = ical::IcalParser::new(BufReader::new(body.as_bytes()));
    let calendar = calendars.next().expect("one calendar").expect("valid iCalendar");
    assert!(calendars.next().is_none());
    calendar
}

fn prop<'a>(props: &'a [ical::property::Property], name: &str) -> Option<&'a str> {
    props.iter().find(|p| p.name == name).and_then(|p| p.value.as_deref())
}

async fn get(server: &TestServer, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("{}{path}", server.base)).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn new_event(admin: &clients::GraphqlClient, agenda: &str, input: Value) -> String {
    let mut input = input;
    input["agendaId"] = json!(agenda);
    let r = admin
        .request(
            "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
            json!({ "input": input }),
        )
        .await
        .unwrap();
    assert!(r.is_ok(), "{}", r.body);
    r.data()["createEvent"]["id"].as_str().unwrap().to_owned()
}

#[test]
fn agenda_and_personal_calendars_are_valid_icalendar() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = create_agenda(&admin, "ludotheque", &[], &[]).await;
        let starts = Timestamp::now() + SignedDuration::from_hours(30);
        let long = "Jeux de société; pour petits, et grands.\nApportez vos jeux ! ".repeat(8);
        let game = new_event(&admin, &agenda, json!({ "label": "Soirée jeux, tous âges", "startsAt": starts.to_string(),
            "endsAt": (starts + SignedDuration::from_hours(2)).to_string(), "places": 1, "waitingListPlaces": 5,
            "description": long, "url": "https://ville.test/jeux" })).await;
        let cancelled = new_event(
            &admin,
            &agenda,
            json!({ "label": "Tournoi", "startsAt": starts.to_string(), "places": 10 }),
        )
        .await;
        new_event(
            &admin,
            &agenda,
            json!({ "label": "Secret", "startsAt": starts.to_string(), "places": 10,
            "publicationAt": (starts + SignedDuration::from_hours(1)).to_string() }),
        )
        .await;
        admin
            .request(
                "mutation($id: ID!) { cancelEvent(id: $id) { id } }",
                json!({ "id": cancelled }),
            )
            .await
            .unwrap();

        let (status, body) = get(&server, "/agendas/ludotheque.ics").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\r\n"), "CRLF line endings");
        assert!(body.lines().all(|l| l.len() <= 75), "lines folded at 75 octets");
        let calendar = parse(&body);
        assert_eq!(prop(&calendar.properties, "VERSION"), Some("2.0"));
        assert!(prop(&calendar.properties, "PRODID").is_some());
        assert_eq!(calendar.events.len(), 2, "the unpublished event is left out");
        let by_uid = |id: &str| {
            calendar
                .events
                .iter()
                .find(|e| prop(&e.properties, "UID") == Some(&format!("event-{id}@guichet")))
                .unwrap()
        };
        let g = by_uid(&game);
        // Escaped commas and semicolons; the start in UTC.
        assert_eq!(prop(&g.properties, "SUMMARY"), Some("Soirée jeux\\, tous âges"));
        let dtstart = prop(&g.properties, "DTSTART").unwrap();
        let utc = starts.to_zoned(jiff::tz::TimeZone::UTC).strftime("%Y%m%dT%H%M%SZ").to_string();
        assert_eq!(dtstart, utc);
        assert!(prop(&g.properties, "DTEND").is_some());
        assert!(prop(&g.properties, "DTSTAMP").is_some(), "DTSTAMP is required");
        assert_eq!(prop(&g.properties, "URL"), Some("https://ville.test/jeux"));
        assert_eq!(prop(&by_uid(&cancelled).properties, "STATUS"), Some("CANCELLED"));
        assert_eq!(get(&server, "/agendas/nope.ics").await.0, 404);

        // A citizen on the waiting list subscribes to their own feed.
        let mut people = citizens(&server.client(), 2, "ical").await;
        let (second, _) = people.remove(1);
        let (first, _) = people.remove(0);
        assert!(first.request(BOOK, json!({ "ids": [game] })).await.unwrap().is_ok());
        assert!(second.request(BOOK, json!({ "ids": [game] })).await.unwrap().is_ok());
        let renew = "mutation { renewCalendarFeed { path } }";
        let r = second.request(renew, json!({})).await.unwrap();
        let path = r.data()["renewCalendarFeed"]["path"].as_str().unwrap().to_owned();
        let (status, body) = get(&server, &path).await;
        assert_eq!(status, 200, "{body}");
        let mine = parse(&body);
        assert_eq!(mine.events.len(), 1);
        assert_eq!(prop(&mine.events[0].properties, "STATUS"), Some("TENTATIVE"), "waiting list");
        // Renewing revokes the old address; secrets are not guessable.
        let r = second.request(renew, json!({})).await.unwrap();
        let renewed = r.data()["renewCalendarFeed"]["path"].as_str().unwrap().to_owned();
        assert_ne!(renewed, path);
        assert_eq!(get(&server, &path).await.0, 404);
        assert_eq!(get(&server, &renewed).await.0, 200);
        assert!(renewed.len() >= "/calendar/.ics".len() + 32);
        assert_eq!(get(&server, "/calendar/guess.ics").await.0, 404);
        let anonymous = server.client().request(renew, json!({})).await.unwrap();
        assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"));
        server.stop().await;
    });
}

#[test]
fn agendas_serve_their_events_as_a_data_source_for_forms() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = create_agenda(&admin, "piscine-ds", &[], &[]).await;
        let starts = Timestamp::now() + SignedDuration::from_hours(30);
        let open = new_event(
            &admin,
            &agenda,
            json!({ "label": "Aquagym", "startsAt": starts.to_string(), "places": 3 }),
        )
        .await;
        let full = new_event(&admin, &agenda, json!({ "label": "Complet", "startsAt": (starts + SignedDuration::from_hours(1)).to_string(), "places": 0 })).await;
        let (status, body) = get(&server, "/api/agendas/piscine-ds/datetimes").await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[0]["id"], open.as_str());
        assert_eq!(data[0]["disabled"], false);
        assert_eq!(data[0]["places_left"], 3);
        assert!(data[0]["text"].as_str().unwrap().starts_with("Aquagym, "));
        assert!(data[0]["text"].as_str().unwrap().contains(" à "), "French date");
        assert_eq!(data[1]["id"], full.as_str());
        assert_eq!(data[1]["disabled"], true);
        // The same through GraphQL, anonymously.
        let today =
            Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Europe/Paris").unwrap()).date();
        let q = "query($a: ID!, $f: String!, $t: String!) { agendaDatetimes(agendaId: $a, from: $f, to: $t) { id text disabled placesLeft } }";
        let r = server
            .client()
            .request(q, json!({ "a": agenda, "f": today.to_string(), "t": today.saturating_add(jiff::ToSpan::days(5)).to_string() }))
            .await
            .unwrap();
        assert_eq!(r.data()["agendaDatetimes"].as_array().unwrap().len(), 2, "{}", r.body);
        // Bad input: a bad date, an unknown agenda, a meetings agenda without a meeting type.
        assert_eq!(get(&server, "/api/agendas/piscine-ds/datetimes?from=demain").await.0, 400);
        assert_eq!(get(&server, "/api/agendas/nope/datetimes").await.0, 404);
        admin
            .request("mutation { createAgenda(input: { slug: \"rdv-ds\", label: \"RDV\", kind: MEETINGS }) { id } }", json!({}))
            .await
            .unwrap();
        let (status, body) = get(&server, "/api/agendas/rdv-ds/datetimes").await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("meetingTypeId") || body.contains("meeting_type"), "{body}");
        server.stop().await;
    });
}
