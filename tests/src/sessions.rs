//! Accounts and sessions: registration, login, logout, expiry, and what an ended session can
//! no longer do on HTTP and websockets.

use std::time::Duration;

use clients::{WsClient, WsEvent, WsProtocol};
use serde_json::json;

use crate::support::*;

#[test]
fn register_login_and_logout() {
    run(async {
        let server = TestServer::start().await;
        let client = server.client();
        let (me, id) =
            client.register("Marie.Curie@Exemple.test", PASSWORD, "Marie", "Curie").await.unwrap();
        let r = me
            .request("{ me { id email firstName isAdmin agentRoles } }", json!({}))
            .await
            .unwrap();
        assert_eq!(r.data()["me"]["id"], id.as_str());
        assert_eq!(r.data()["me"]["email"], "marie.curie@exemple.test");
        assert_eq!(r.data()["me"]["isAdmin"], false);

        // The same email again, in another case: a conflict.
        let again = client
            .request(
                "mutation($i: RegisterInput!) { register(input: $i) { token } }",
                json!({ "i": { "email": "marie.curie@exemple.test", "password": PASSWORD, "firstName": "M", "lastName": "C" } }),
            )
            .await
            .unwrap();
        assert_eq!(again.error_code(), Some("CONFLICT"));
        let weak = client
            .request(
                "mutation($i: RegisterInput!) { register(input: $i) { token } }",
                json!({ "i": { "email": "x@exemple.test", "password": "short", "firstName": "M", "lastName": "C" } }),
            )
            .await
            .unwrap();
        assert_eq!(weak.error_code(), Some("BAD_USER_INPUT"));
        let wrong = client
            .request("mutation { login(email: \"marie.curie@exemple.test\", password: \"wrong password\") { token } }", json!({}))
            .await
            .unwrap();
        assert_eq!(wrong.error_code(), Some("UNAUTHENTICATED"));

        let second = client.login("MARIE.CURIE@exemple.test", PASSWORD).await.unwrap();
        // Tokens are long random strings, different per session.
        assert!(second.token().unwrap().len() >= 43);
        assert_ne!(second.token(), me.token());

        // A subscription on the session that logs out is closed.
        let admin = server.admin().await;
        let agenda = create_agenda(&admin, "logout", &[], &[]).await;
        let event_id = create_event(&admin, &agenda, 3, 0).await;
        let mut ws =
            WsClient::connect(&server.base, WsProtocol::TransportWs, me.token()).await.unwrap();
        ws.subscribe(
            "f",
            "subscription($id: ID!) { eventFillLevel(eventId: $id) { seq } }",
            json!({ "id": event_id }),
        )
        .await
        .unwrap();
        ws.next_data("f", Duration::from_secs(5)).await.unwrap();

        let out = me.request("mutation { logout }", json!({})).await.unwrap();
        assert_eq!(out.data()["logout"], true, "{}", out.body);
        let closed = loop {
            match ws.next(Duration::from_secs(5)).await.unwrap() {
                WsEvent::Closed(code, _) => break code,
                WsEvent::Message(_) => continue,
            }
        };
        assert_eq!(closed, 4401);
        let r = me.request("{ me { id } }", json!({})).await.unwrap();
        assert_eq!((r.status, r.error_code()), (401, Some("UNAUTHENTICATED")));
        let mut refused = WsClient::open(&server.base, WsProtocol::TransportWs).await.unwrap();
        refused.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", me.token().unwrap()) } })).await.unwrap();
        assert!(matches!(
            refused.next(Duration::from_secs(5)).await.unwrap(),
            WsEvent::Closed(4403, _)
        ));
        // The other session lives on.
        assert!(second.request("{ me { id } }", json!({})).await.unwrap().is_ok());
        server.stop().await;
    });
}

#[test]
fn idle_sessions_expire() {
    run(async {
        let server = TestServer::start_with(|c| c.session_idle_secs = 1).await;
        let (me, _) =
            server.client().register("idle@exemple.test", PASSWORD, "I", "Dle").await.unwrap();
        assert!(me.request("{ me { id } }", json!({})).await.unwrap().is_ok());
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let r = me.request("{ me { id } }", json!({})).await.unwrap();
        assert_eq!((r.status, r.error_code()), (401, Some("UNAUTHENTICATED")));
        server.stop().await;
    });
}

#[test]
fn administrators_create_agents_who_book_on_behalf_of_citizens() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let r = admin
            .request(
                "mutation { createAccount(input: { email: \"agent@mairie.test\", password: \"agent-password\", firstName: \"A\", lastName: \"Gent\", agentRoles: [\"sport\"] }) { id agentRoles } }",
                json!({}),
            )
            .await
            .unwrap();
        assert_eq!(r.data()["createAccount"]["agentRoles"], json!(["sport"]), "{}", r.body);
        let agent = server.client().login("agent@mairie.test", "agent-password").await.unwrap();
        let sport = admin
            .request(
                "mutation { createAgenda(input: { slug: \"gymnase\", label: \"Gymnase\", kind: EVENTS, services: [\"sport\"] }) { id } }",
                json!({}),
            )
            .await
            .unwrap();
        let sport = sport.data()["createAgenda"]["id"].as_str().unwrap().to_owned();
        let culture = admin
            .request(
                "mutation { createAgenda(input: { slug: \"musee\", label: \"Musée\", kind: EVENTS, services: [\"culture\"] }) { id } }",
                json!({}),
            )
            .await
            .unwrap();
        let culture = culture.data()["createAgenda"]["id"].as_str().unwrap().to_owned();
        let gym = create_event(&admin, &sport, 5, 0).await;
        let museum = create_event(&admin, &culture, 5, 0).await;
        let (citizen, citizen_id) = citizens(&server.client(), 1, "behalf").await.remove(0);

        let on_behalf = "mutation($ids: [ID!]!, $u: ID) { bookEvents(input: { eventIds: $ids, userId: $u }) { id userId status } }";
        let ok = agent.request(on_behalf, json!({ "ids": [gym], "u": citizen_id })).await.unwrap();
        assert_eq!(ok.data()["bookEvents"][0]["userId"], citizen_id.as_str(), "{}", ok.body);
        let wrong_service =
            agent.request(on_behalf, json!({ "ids": [museum], "u": citizen_id })).await.unwrap();
        assert_eq!(wrong_service.error_code(), Some("FORBIDDEN"));
        let citizen_for_other = citizen
            .request(
                on_behalf,
                json!({ "ids": [museum], "u": "0190a0b0-0000-7000-8000-000000000000" }),
            )
            .await
            .unwrap();
        assert_eq!(citizen_for_other.error_code(), Some("FORBIDDEN"));
        // Agents see the bookings of their agendas; citizens do not.
        let seen = event(&agent, &gym).await;
        assert_eq!(seen["bookings"].as_array().unwrap().len(), 1);
        let r = citizen
            .request("query($id: ID!) { event(id: $id) { bookings { id } } }", json!({ "id": gym }))
            .await
            .unwrap();
        assert_eq!(r.data()["event"]["bookings"], serde_json::Value::Null);
        server.stop().await;
    });
}
