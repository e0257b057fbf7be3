//! Acknowledged writes survive a crash: the real binary, killed with SIGKILL, restarted on the
//! same data folder.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clients::GraphqlClient;
use serde_json::json;

use crate::support::*;

pub(crate) struct Guichet {
    child: Child,
    pub(crate) base: String,
}

impl Guichet {
    pub(crate) async fn start(dir: &TempDir) -> Self {
        Self::start_with(dir, None).await
    }

    async fn start_with(dir: &TempDir, smtp_url: Option<&str>) -> Self {
        let port = free_port();
        let mut command = Command::new(guichet_binary());
        command
            .arg("serve")
            .env("GUICHET_LISTEN", format!("127.0.0.1:{port}"))
            .env("GUICHET_DATA_DIR", &dir.0)
            .env("GUICHET_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("GUICHET_DB")
            .env_remove("GUICHET_SMTP_URL")
            .env_remove("GUICHET_SMS_URL");
        if let Some(url) = smtp_url {
            command.env("GUICHET_SMTP_URL", url);
        }
        let child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("guichet starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let url = format!("{base}/healthz");
        let ready = eventually(Duration::from_secs(60), async || {
            http.get(&url).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(ready, "guichet did not become healthy");
        Self { child, base }
    }

    pub(crate) fn kill_9(mut self) {
        // SIGKILL: no shutdown code runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[test]
fn sigkill_after_acknowledgements_loses_no_booking() {
    run(async {
        let dir = TempDir::new("crash");
        let first = Guichet::start(&dir).await;
        let client = GraphqlClient::new(&first.base);
        let admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
        let agenda = create_agenda(&admin, "crash", &[], &[]).await;
        let event_id = create_event(&admin, &agenda, 30, 0).await;
        let people = citizens(&client, 20, "crash").await;
        let responses = book_all(people.into_iter().map(|(c, _)| c).collect(), &event_id).await;
        let mut acknowledged = Vec::new();
        for r in responses {
            assert!(r.is_ok(), "{}", r.body);
            acknowledged.push(r.data()["bookEvents"][0]["id"].as_str().unwrap().to_owned());
        }
        first.kill_9();

        let second = Guichet::start(&dir).await;
        let admin =
            GraphqlClient::new(&second.base).login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
        let after = event(&admin, &event_id).await;
        assert_eq!(after["bookedPlaces"], 20);
        let mut stored: Vec<String> = after["bookings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect();
        stored.sort();
        acknowledged.sort();
        assert_eq!(stored, acknowledged);
        // And it keeps working after recovery.
        let (late, _) =
            citizens(&GraphqlClient::new(&second.base), 1, "after-crash").await.remove(0);
        assert!(late.request(BOOK, json!({ "ids": [event_id] })).await.unwrap().is_ok());
        second.kill_9();
    });
}

#[test]
fn a_reminder_scheduled_before_a_sigkill_is_sent_once_after_the_restart() {
    run(async {
        let smtp = SmtpSink::start().await;
        let dir = TempDir::new("crash-reminder");
        let first = Guichet::start_with(&dir, Some(&smtp.url())).await;
        let client = GraphqlClient::new(&first.base);
        let admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
        let r = admin
            .request(
                "mutation { createAgenda(input: { slug: \"rappel\", label: \"Rappel\", kind: EVENTS, events: { reminderHours: 1 } }) { id } }",
                json!({}),
            )
            .await
            .unwrap();
        let agenda = r.data()["createAgenda"]["id"].as_str().unwrap().to_owned();
        // The reminder falls due 6 seconds from now, while the server is down.
        let starts = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3606);
        let r = admin
            .request(
                "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
                json!({ "input": { "agendaId": agenda, "label": "Permanence", "startsAt": starts.to_string(), "places": 5 } }),
            )
            .await
            .unwrap();
        let event_id = r.data()["createEvent"]["id"].as_str().unwrap().to_owned();
        let (citizen, _) = citizens(&client, 1, "crash-rappel").await.remove(0);
        assert!(citizen.request(BOOK, json!({ "ids": [event_id] })).await.unwrap().is_ok());
        first.kill_9();
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert!(smtp.messages().is_empty());

        let second = Guichet::start_with(&dir, Some(&smtp.url())).await;
        assert!(eventually(Duration::from_secs(30), async || !smtp.messages().is_empty()).await);
        // Let the scheduler run again: nothing is sent twice.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mails = smtp.messages();
        assert_eq!(mails.len(), 1, "{mails:#?}");
        assert!(mails[0].contains("Subject: [Guichet] Reminder: Permanence"));
        second.kill_9();
        // A third start finds the job done.
        let third = Guichet::start_with(&dir, Some(&smtp.url())).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(smtp.messages().len(), 1);
        third.kill_9();
    });
}
