//! Fill-level notifications through a real SMTP server on loopback.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[test]
fn each_threshold_crossing_sends_exactly_one_email() {
    run(async {
        let smtp = SmtpSink::start().await;
        let url = smtp.url();
        let server = TestServer::start_with(|c| c.smtp_url = Some(url)).await;
        let admin = server.admin().await;
        let agenda =
            create_agenda(&admin, "seuils", &[50, 100], &["regie@mairie.test", "elu@mairie.test"])
                .await;
        let event_id = create_event(&admin, &agenda, 4, 2).await;
        let people = citizens(&server.client(), 6, "mail").await;

        let mut ids = Vec::new();
        for (c, _) in &people {
            let r = c.request(BOOK, json!({ "ids": [event_id] })).await.unwrap();
            ids.push(r.data()["bookEvents"][0]["id"].as_str().unwrap().to_owned());
        }
        // 50% and 100% crossed once each; waiting-list bookings cross nothing.
        assert!(eventually(Duration::from_secs(20), async || smtp.messages().len() >= 2).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let messages = smtp.messages();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(messages.iter().any(|m| m.contains("Subject: [Guichet] 50% booked: Concert")));
        assert!(messages.iter().any(|m| m.contains("Subject: [Guichet] Full: Concert")));
        assert!(
            messages
                .iter()
                .all(|m| m.contains("regie@mairie.test") && m.contains("elu@mairie.test"))
        );

        // Two cancellations are filled from the waiting list (still full, nothing sent); the
        // third drops to 3/4, which re-arms 100% while 50% stays crossed.
        let cancel = "mutation($id: ID!) { cancelBooking(id: $id) { id } }";
        people[0].0.request(cancel, json!({ "id": ids[0] })).await.unwrap();
        people[1].0.request(cancel, json!({ "id": ids[1] })).await.unwrap();
        people[2].0.request(cancel, json!({ "id": ids[2] })).await.unwrap();
        let level = event(&admin, &event_id).await;
        assert_eq!(
            (level["bookedPlaces"].as_i64(), level["waitingListBooked"].as_i64()),
            (Some(3), Some(0))
        );
        let (again, _) = citizens(&server.client(), 1, "mail-again").await.remove(0);
        again.request(BOOK, json!({ "ids": [event_id] })).await.unwrap();
        assert!(eventually(Duration::from_secs(20), async || smtp.messages().len() >= 3).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(smtp.messages().len(), 3);

        // The outbox shows them sent.
        let r = admin.request("{ outbox { subject status attempts } }", json!({})).await.unwrap();
        let outbox = r.data()["outbox"].as_array().unwrap().clone();
        assert_eq!(outbox.len(), 3);
        assert!(outbox.iter().all(|m| m["status"] == "SENT" && m["attempts"] == 1), "{outbox:?}");
        server.stop().await;
    });
}

#[test]
fn mail_waits_in_the_outbox_while_the_smtp_server_is_down() {
    run(async {
        // A port where nothing listens yet.
        let port = free_port();
        let server =
            TestServer::start_with(|c| c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
        let admin = server.admin().await;
        let agenda = create_agenda(&admin, "panne", &[100], &["regie@mairie.test"]).await;
        let event_id = create_event(&admin, &agenda, 1, 0).await;
        let (c, _) = citizens(&server.client(), 1, "down").await.remove(0);
        // The booking succeeds although mail cannot leave.
        let r = c.request(BOOK, json!({ "ids": [event_id] })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let failed_once = eventually(Duration::from_secs(10), async || {
            let r =
                admin.request("{ outbox { status attempts lastError } }", json!({})).await.unwrap();
            r.data()["outbox"][0]["attempts"].as_i64().unwrap_or(0) >= 1
        })
        .await;
        assert!(failed_once);
        let r = admin.request("{ outbox { status attempts lastError } }", json!({})).await.unwrap();
        assert_eq!(r.data()["outbox"][0]["status"], "QUEUED");
        assert!(r.data()["outbox"][0]["lastError"].is_string());
        server.stop().await;
    });
}
