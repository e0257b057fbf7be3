//! Event bookings end to end: the last places under a rush, live fill levels, multi-event
//! bookings.

use std::collections::BTreeSet;
use std::time::Duration;

use clients::{WsClient, WsEvent, WsProtocol};
use serde_json::json;

use crate::support::*;

#[test]
fn hundreds_of_citizens_rush_for_the_last_places() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = create_agenda(&admin, "concert-gratuit", &[], &[]).await;
        let (places, waiting, rush) = (40usize, 15usize, 300usize);
        let event_id = create_event(&admin, &agenda, places as i32, waiting as i32).await;
        let people = citizens(&server.client(), rush, "rush").await;

        let responses = book_all(people.into_iter().map(|(c, _)| c).collect(), &event_id).await;
        let mut acknowledged = BTreeSet::new();
        let (mut confirmed, mut on_list, mut full) = (0, 0, 0);
        for r in responses {
            match r.error_code() {
                None => {
                    let booking = &r.data()["bookEvents"][0];
                    acknowledged.insert(booking["id"].as_str().unwrap().to_owned());
                    match booking["status"].as_str().unwrap() {
                        "CONFIRMED" => confirmed += 1,
                        "WAITING_LIST" => on_list += 1,
                        other => panic!("unexpected status {other}"),
                    }
                }
                Some("FULL") => full += 1,
                Some(code) => panic!("unexpected error {code}: {}", r.body),
            }
        }
        assert_eq!((confirmed, on_list, full), (places, waiting, rush - places - waiting));

        let event = event(&admin, &event_id).await;
        assert_eq!(event["bookedPlaces"], places);
        assert_eq!(event["waitingListBooked"], waiting);
        assert_eq!(event["full"], true);
        let stored: BTreeSet<String> = event["bookings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(stored, acknowledged, "the event's bookings are exactly those acknowledged");
        server.stop().await;
    });
}

#[test]
fn a_subscriber_sees_the_fill_level_rise_to_the_truth() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = create_agenda(&admin, "piscine", &[], &[]).await;
        let event_id = create_event(&admin, &agenda, 25, 5).await;
        let people = citizens(&server.client(), 40, "live").await;

        // Anonymous subscriber on the current protocol, agent-less citizen on the legacy one.
        let mut watchers = vec![
            WsClient::connect(&server.base, WsProtocol::TransportWs, None).await.unwrap(),
            WsClient::connect(&server.base, WsProtocol::LegacyGraphqlWs, people[0].0.token())
                .await
                .unwrap(),
        ];
        let query = "subscription($id: ID!) { eventFillLevel(eventId: $id) { eventId bookedPlaces waitingListBooked full seq } }";
        for w in &mut watchers {
            w.subscribe("fill", query, json!({ "id": event_id })).await.unwrap();
            let first = w.next_data("fill", Duration::from_secs(10)).await.unwrap();
            assert_eq!(first["data"]["eventFillLevel"]["bookedPlaces"], 0);
        }

        book_all(people.into_iter().map(|(c, _)| c).collect(), &event_id).await;
        let truth = event(&admin, &event_id).await;
        assert_eq!(
            (truth["bookedPlaces"].as_i64(), truth["waitingListBooked"].as_i64()),
            (Some(25), Some(5))
        );

        for w in &mut watchers {
            let (mut last_booked, mut last_waiting, mut last_seq) = (0, 0, 0);
            loop {
                let level = w.next_data("fill", Duration::from_secs(10)).await.unwrap();
                let level = &level["data"]["eventFillLevel"];
                let booked = level["bookedPlaces"].as_i64().unwrap();
                let waiting = level["waitingListBooked"].as_i64().unwrap();
                let seq: u64 = level["seq"].as_str().unwrap().parse().unwrap();
                assert!(
                    booked >= last_booked && waiting >= last_waiting,
                    "fill level went down: {level}"
                );
                assert!(seq > last_seq, "seq must grow: {seq} after {last_seq}");
                (last_booked, last_waiting, last_seq) = (booked, waiting, seq);
                if booked == 25 && waiting == 5 {
                    assert_eq!(level["full"], true);
                    break;
                }
            }
        }
        server.stop().await;
    });
}

#[test]
fn a_multi_event_booking_with_one_full_event_books_nothing() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let pool = create_agenda(&admin, "piscine", &[], &[]).await;
        let library = create_agenda(&admin, "mediatheque", &[], &[]).await;
        let open = create_event(&admin, &pool, 10, 0).await;
        let full = create_event(&admin, &library, 1, 0).await;
        let also_open = create_event(&admin, &library, 10, 0).await;
        let people = citizens(&server.client(), 2, "multi").await;

        let first = people[0].0.request(BOOK, json!({ "ids": [full] })).await.unwrap();
        assert!(first.is_ok(), "{}", first.body);
        let refused =
            people[1].0.request(BOOK, json!({ "ids": [open, full, also_open] })).await.unwrap();
        assert_eq!(refused.error_code(), Some("FULL"), "{}", refused.body);
        for id in [&open, &also_open] {
            assert_eq!(event(&admin, id).await["bookedPlaces"], 0, "nothing booked");
        }
        // Across two agendas, all at once when everything is open.
        let both = people[1].0.request(BOOK, json!({ "ids": [open, also_open] })).await.unwrap();
        assert!(both.is_ok(), "{}", both.body);
        assert_eq!(both.data()["bookEvents"].as_array().unwrap().len(), 2);
        for id in [&open, &also_open] {
            assert_eq!(event(&admin, id).await["bookedPlaces"], 1);
        }
        server.stop().await;
    });
}

#[test]
fn cancelling_frees_the_place_and_promotes_the_waiting_list() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = create_agenda(&admin, "cinema", &[], &[]).await;
        let event_id = create_event(&admin, &agenda, 1, 1).await;
        let people = citizens(&server.client(), 3, "cancel").await;
        let mut bookings = Vec::new();
        for (c, _) in &people[..2] {
            let r = c.request(BOOK, json!({ "ids": [event_id] })).await.unwrap();
            bookings.push(r.data()["bookEvents"][0]["id"].as_str().unwrap().to_owned());
        }
        // Someone else may not cancel my booking.
        let cancel = "mutation($id: ID!) { cancelBooking(id: $id) { id status } }";
        let r = people[2].0.request(cancel, json!({ "id": bookings[0] })).await.unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"), "{}", r.body);
        let r = people[0].0.request(cancel, json!({ "id": bookings[0] })).await.unwrap();
        assert_eq!(r.data()["cancelBooking"]["status"], "CANCELLED", "{}", r.body);
        let after = event(&admin, &event_id).await;
        assert_eq!(
            (after["bookedPlaces"].as_i64(), after["waitingListBooked"].as_i64()),
            (Some(1), Some(0))
        );
        assert_eq!(after["bookings"][0]["id"], bookings[1]);
        assert_eq!(after["bookings"][0]["status"], "CONFIRMED");
        let again = people[0].0.request(cancel, json!({ "id": bookings[0] })).await.unwrap();
        assert_eq!(again.error_code(), Some("NOT_FOUND"));
        // Citizens list their own bookings, cancelled ones on request.
        let mine = "query($all: Boolean) { myBookings(includeCancelled: $all) { id status } }";
        let active = people[0].0.request(mine, json!({ "all": false })).await.unwrap();
        assert_eq!(active.data()["myBookings"], json!([]), "{}", active.body);
        let all = people[0].0.request(mine, json!({ "all": true })).await.unwrap();
        assert_eq!(all.data()["myBookings"][0]["status"], "CANCELLED");
        let promoted = people[1].0.request(mine, json!({})).await.unwrap();
        assert_eq!(promoted.data()["myBookings"][0]["status"], "CONFIRMED", "{}", promoted.body);
        server.stop().await;
    });
}

#[test]
fn agents_watch_bookings_live_and_citizens_may_not() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = create_agenda(&admin, "sport", &[], &[]).await;
        let event_id = create_event(&admin, &agenda, 5, 0).await;
        let people = citizens(&server.client(), 1, "watch").await;
        let query = "subscription($id: ID!) { agendaBookings(agendaId: $id) { seq booking { id status eventId } } }";

        let mut citizen =
            WsClient::connect(&server.base, WsProtocol::TransportWs, people[0].0.token())
                .await
                .unwrap();
        citizen.subscribe("b", query, json!({ "id": agenda })).await.unwrap();
        match citizen.next(Duration::from_secs(10)).await.unwrap() {
            // A resolver error arrives as a result carrying the error, then the operation ends.
            WsEvent::Message(m) => {
                assert_eq!(m["type"], "next", "{m}");
                assert_eq!(m["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN", "{m}");
            }
            other => panic!("{other:?}"),
        }

        let mut agent =
            WsClient::connect(&server.base, WsProtocol::TransportWs, admin.token()).await.unwrap();
        agent.subscribe("b", query, json!({ "id": agenda })).await.unwrap();
        // The subscription is registered once the server has resolved it; give it a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = people[0].0.request(BOOK, json!({ "ids": [event_id] })).await.unwrap();
        let id = r.data()["bookEvents"][0]["id"].clone();
        let update = agent.next_data("b", Duration::from_secs(10)).await.unwrap();
        assert_eq!(update["data"]["agendaBookings"]["booking"]["id"], id);
        assert_eq!(update["data"]["agendaBookings"]["booking"]["status"], "CONFIRMED");
        server.stop().await;
    });
}
