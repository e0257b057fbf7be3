//! Bad input: each gets its code or HTTP status, and changes nothing.

use std::time::Duration;

use clients::{WsClient, WsEvent, WsProtocol};
use serde_json::json;

use crate::support::*;

async fn agenda_count(admin: &clients::GraphqlClient) -> usize {
    let r = admin.request("{ agendas { id events { id } } }", json!({})).await.unwrap();
    let agendas = r.data()["agendas"].as_array().unwrap();
    agendas.len() + agendas.iter().map(|a| a["events"].as_array().unwrap().len()).sum::<usize>()
}

#[test]
fn bad_input_gets_its_code_and_changes_nothing() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = create_agenda(&admin, "ateliers", &[], &[]).await;
        let event_id = create_event(&admin, &agenda, 3, 0).await;
        let before = agenda_count(&admin).await;
        let (citizen, _) = citizens(&server.client(), 1, "bad").await.remove(0);
        let create_event =
            "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }";
        let tomorrow = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).to_string();

        let cases = [
            ("negative places", admin.request(create_event, json!({ "input": { "agendaId": agenda, "label": "x", "startsAt": tomorrow, "places": -1 } })).await, "BAD_USER_INPUT"),
            ("malformed date", admin.request(create_event, json!({ "input": { "agendaId": agenda, "label": "x", "startsAt": "demain 10h", "places": 5 } })).await, "BAD_USER_INPUT"),
            ("date without offset", admin.request(create_event, json!({ "input": { "agendaId": agenda, "label": "x", "startsAt": "2026-06-01T10:00:00", "places": 5 } })).await, "BAD_USER_INPUT"),
            ("unknown agenda", admin.request(create_event, json!({ "input": { "agendaId": "0190a0b0-0000-7000-8000-000000000000", "label": "x", "startsAt": tomorrow, "places": 5 } })).await, "NOT_FOUND"),
            ("unknown event", citizen.request(BOOK, json!({ "ids": ["0190a0b0-0000-7000-8000-000000000000"] })).await, "NOT_FOUND"),
            ("garbage id", citizen.request(BOOK, json!({ "ids": ["nope"] })).await, "NOT_FOUND"),
            ("no token", server.client().request(BOOK, json!({ "ids": [event_id] })).await, "UNAUTHENTICATED"),
            ("citizen creates an agenda", citizen.request(
                "mutation { createAgenda(input: { slug: \"pirate\", label: \"Pirate\", kind: EVENTS }) { id } }", json!({})).await, "FORBIDDEN"),
            ("duplicate slug", admin.request(
                "mutation { createAgenda(input: { slug: \"ateliers\", label: \"Again\", kind: EVENTS }) { id } }", json!({})).await, "CONFLICT"),
            ("threshold out of range", admin.request(
                "mutation { createAgenda(input: { slug: \"seuils\", label: \"S\", kind: EVENTS, fillNotifications: { thresholds: [150], emails: [\"a@b.test\"] } }) { id } }", json!({})).await, "BAD_USER_INPUT"),
            ("unknown field", admin.request("{ nothing }", json!({})).await, "BAD_USER_INPUT"),
        ];
        for (name, response, code) in cases {
            let response = response.unwrap();
            assert_eq!(response.error_code(), Some(code), "{name}: {}", response.body);
        }
        let wrong_token = server.client().with_token("not-a-session");
        let r = wrong_token.request("{ me { id } }", json!({})).await.unwrap();
        assert_eq!((r.status, r.error_code()), (401, Some("UNAUTHENTICATED")));

        // A 4 KB deeply nested literal must not crash the server, in the query or the variables.
        let deep =
            format!("{{ event(id: {}\"x\"{}) {{ id }} }}", "[".repeat(2048), "]".repeat(2048));
        let r = admin.request(&deep, json!({})).await.unwrap();
        assert_eq!((r.status, r.error_code()), (400, Some("BAD_USER_INPUT")));
        let mut nested = json!("x");
        for _ in 0..100 {
            nested = json!([nested]);
        }
        let r = admin
            .request("query($v: ID!) { event(id: $v) { id } }", json!({ "v": nested }))
            .await
            .unwrap();
        assert_eq!(r.status, 400);
        let objects =
            format!("{{ event(id: {}1{}) {{ id }} }}", "{a:".repeat(1400), "}".repeat(1400));
        assert_eq!(admin.request(&objects, json!({})).await.unwrap().status, 400);

        let (http, url) = admin.raw();
        // Mutations never over GET.
        let get = http.get(url).query(&[("query", "mutation { logout }")]).send().await.unwrap();
        assert_eq!(get.status().as_u16(), 405);
        // Queries over GET work.
        let get = http.get(url).query(&[("query", "{ agendas { id } }")]).send().await.unwrap();
        assert_eq!(get.status().as_u16(), 200);
        // Not JSON: refused before anything runs.
        let text = http
            .post(url)
            .header("content-type", "text/plain")
            .body("{\"query\":\"mutation { logout }\"}")
            .send()
            .await
            .unwrap();
        assert_eq!(text.status().as_u16(), 415);
        let form = http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("query=mutation%20%7B%20logout%20%7D")
            .send()
            .await
            .unwrap();
        assert_eq!(form.status().as_u16(), 415);
        let broken = http
            .post(url)
            .header("content-type", "application/json")
            .body("{\"query\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(broken.status().as_u16(), 400);
        // An oversized body.
        let huge =
            json!({ "query": "{ agendas { id } }", "variables": { "pad": "x".repeat(2 << 20) } });
        // On its own connection pool: the server closes a connection whose body it refused, and
        // a pooled client could otherwise pick that connection for the next request.
        let big = reqwest::Client::new().post(url).json(&huge).send().await.unwrap();
        assert_eq!(big.status().as_u16(), 413);

        // The server is alive and nothing changed.
        assert_eq!(agenda_count(&admin).await, before);
        assert_eq!(event(&admin, &event_id).await["bookedPlaces"], 0);
        let health = http.get(format!("{}/healthz", server.base)).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
        server.stop().await;
    });
}

#[test]
fn websocket_limits_hold() {
    run(async {
        let server = TestServer::start_with(|c| c.ws_init_timeout_secs = 1).await;
        // No connection_init: closed with 4408.
        let mut silent = WsClient::open(&server.base, WsProtocol::TransportWs).await.unwrap();
        assert_eq!(
            silent.next(Duration::from_secs(5)).await.unwrap(),
            WsEvent::Closed(4408, "Connection initialisation timeout".into())
        );

        // A deeply nested subscription is refused without killing the server.
        let mut ws = WsClient::connect(&server.base, WsProtocol::TransportWs, None).await.unwrap();
        let deep = format!(
            "subscription {{ eventFillLevel(eventId: {}\"x\"{}) {{ seq }} }}",
            "[".repeat(2048),
            "]".repeat(2048)
        );
        ws.subscribe("deep", &deep, json!({})).await.unwrap();
        match ws.next(Duration::from_secs(5)).await.unwrap() {
            WsEvent::Message(m) => {
                assert_eq!(m["type"], "error");
                assert_eq!(m["payload"][0]["extensions"]["code"], "BAD_USER_INPUT");
            }
            other => panic!("{other:?}"),
        }

        // Two subscriptions with one id: 4409.
        let admin = server.admin().await;
        let agenda = create_agenda(&admin, "doublon", &[], &[]).await;
        let event_id = create_event(&admin, &agenda, 3, 0).await;
        let q = "subscription($id: ID!) { eventFillLevel(eventId: $id) { seq } }";
        ws.subscribe("same", q, json!({ "id": event_id })).await.unwrap();
        ws.next_data("same", Duration::from_secs(5)).await.unwrap();
        ws.subscribe("same", q, json!({ "id": event_id })).await.unwrap();
        assert_eq!(
            ws.next(Duration::from_secs(5)).await.unwrap(),
            WsEvent::Closed(4409, "Subscriber for same already exists".into())
        );

        // A bad token in connection_init is refused.
        let mut bad = WsClient::open(&server.base, WsProtocol::TransportWs).await.unwrap();
        bad.send(
            json!({ "type": "connection_init", "payload": { "Authorization": "Bearer nope" } }),
        )
        .await
        .unwrap();
        assert!(matches!(
            bad.next(Duration::from_secs(5)).await.unwrap(),
            WsEvent::Closed(4403, _)
        ));
        server.stop().await;
    });
}

#[test]
fn graphiql_health_and_metrics_are_served() {
    run(async {
        let server = TestServer::start().await;
        let http = reqwest::Client::new();
        let page = http
            .get(format!("{}/graphql", server.base))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(page.text().await.unwrap().to_lowercase().contains("graphiql"));
        let admin = server.admin().await;
        admin.request("query Agendas { agendas { id } }", json!({})).await.unwrap();
        let _ws = WsClient::connect(&server.base, WsProtocol::TransportWs, None).await.unwrap();
        let text = http
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for needle in [
            "guichet_graphql_requests_total{operation=\"Agendas\"} 1",
            "guichet_graphql_request_duration_seconds_bucket",
            "guichet_open_subscriptions",
            "guichet_live_actors",
            "guichet_agenda_mailbox_depth",
            "guichet_websocket_connections 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        server.stop().await;
    });
}

#[test]
fn shutdown_closes_websockets_cleanly() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agenda = create_agenda(&admin, "fermeture", &[], &[]).await;
        let event_id = create_event(&admin, &agenda, 3, 0).await;
        let mut ws = WsClient::connect(&server.base, WsProtocol::TransportWs, None).await.unwrap();
        ws.subscribe(
            "f",
            "subscription($id: ID!) { eventFillLevel(eventId: $id) { seq } }",
            json!({ "id": event_id }),
        )
        .await
        .unwrap();
        ws.next_data("f", Duration::from_secs(5)).await.unwrap();
        server.stop().await;
        assert_eq!(
            ws.next(Duration::from_secs(5)).await.unwrap(),
            WsEvent::Closed(1001, "Server shutting down".into())
        );
    });
}

#[test]
fn browser_front_ends_on_allowed_origins_get_cors_headers() {
    run(async {
        let server =
            TestServer::start_with(|c| c.cors_origins = vec!["https://portail.ville.test".into()])
                .await;
        let http = reqwest::Client::new();
        let url = format!("{}/graphql", server.base);
        let preflight = |origin: &'static str| {
            http.request(reqwest::Method::OPTIONS, &url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "authorization, content-type")
                .send()
        };
        let allowed = preflight("https://portail.ville.test").await.unwrap();
        assert_eq!(
            allowed.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
            Some("https://portail.ville.test")
        );
        let other = preflight("https://evil.test").await.unwrap();
        assert!(other.headers().get("access-control-allow-origin").is_none());
        server.stop().await;
    });
}
