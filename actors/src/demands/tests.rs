//! Demand actors and the store together, on an in-memory SurrealDB per test.

use crate::testing::run;
use std::time::Duration;

use serde_json::json;

use super::model::{DemandError, Operation, SubmissionChannel};
use super::workflow::WorkflowDef;
use super::{Demands, Submission};
use crate::Services;
use crate::access::{Principal, Roles};
use crate::account::NewAccount;
use crate::demands::form::FormDef;
use crate::ids::{FormId, WorkflowId};
use crate::session::SessionPolicy;
use crate::store::Store;

/// A second registry over the same store: what another process sharing the database has.
fn registry(s: &Services, idle: Duration) -> Demands {
    registry_with_files(s, idle, None)
}

fn registry_with_files(
    s: &Services,
    idle: Duration,
    files: Option<crate::demands::attachments::Files>,
) -> Demands {
    Demands::new(
        s.runtime.clone(),
        s.store.clone(),
        s.live.clone(),
        s.mail.clone(),
        s.metrics.clone(),
        s.agendas.clone(),
        s.meetings.clone(),
        idle,
        files,
    )
}

async fn setup(d: &Demands, s: &Services) -> Principal {
    let workflow: WorkflowDef = serde_json::from_value(json!({
        "id": WorkflowId::new(), "slug": "simple", "name": "Simple", "functions": ["receiver"],
        "statuses": [
            { "id": "new", "name": "New", "items": [
                { "id": "take", "kind": { "type": "button", "label": "Take",
                  "by": [{ "kind": "function", "name": "receiver" }], "target": "taken" } } ] },
            { "id": "taken", "name": "Taken" }
        ]
    }))
    .unwrap();
    let workflow = d.save_workflow(workflow, None, None).await.unwrap();
    let form: FormDef = serde_json::from_value(json!({
        "id": FormId::new(), "slug": "ask", "title": "Ask", "workflow_id": workflow.id,
        "function_roles": { "receiver": "desk" },
        "fields": [{ "id": "question", "label": "Question", "kind": { "type": "text" }, "required": "always" }]
    }))
    .unwrap();
    d.save_form(form, None, None).await.unwrap();
    let account = s
        .accounts
        .register(
            NewAccount {
                email: "c@example.org".into(),
                password: "long enough password".into(),
                first_name: "C".into(),
                last_name: "D".into(),
            },
            Roles::citizen(),
        )
        .await
        .unwrap();
    Principal::Account { id: account.id, roles: Roles::citizen() }
}

fn submission() -> Submission {
    Submission {
        form_slug: "ask".into(),
        answers: json!({ "question": "When?" }).as_object().cloned().unwrap(),
        channel: SubmissionChannel::Web,
        on_behalf_of: None,
        draft: None,
    }
}

fn agent() -> Principal {
    Principal::Account {
        id: crate::ids::AccountId::new(),
        roles: Roles { admin: false, agent_roles: vec!["desk".into()] },
    }
}

fn take() -> Operation {
    Operation::Button { item_id: "take".into(), comment: None }
}

#[test]
fn idle_actors_stop_and_start_again_from_the_store() {
    run(async {
        let s = Services::start(Store::open("mem://").await.unwrap(), SessionPolicy::default())
            .unwrap();
        let d = registry(&s, Duration::from_millis(200));
        let citizen = setup(&d, &s).await;
        let (view, _) = d.submit(&citizen, submission()).await.unwrap();
        assert_eq!(d.live_actors(), 1);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(d.live_actors(), 0, "the idle actor stopped");
        let again = d.get(view.demand.id).await.unwrap();
        assert_eq!(again.demand.as_ref(), view.demand.as_ref(), "the store gave it back whole");
        assert_eq!(d.live_actors(), 1);
        let moved = d.perform(view.demand.id, &agent(), take()).await.unwrap();
        assert_eq!(moved.demand.status, "taken");
        s.runtime.shutdown();
    });
}

#[test]
fn agents_pressing_one_button_at_once_move_the_demand_once() {
    run(async {
        let s = Services::start(Store::open("mem://").await.unwrap(), SessionPolicy::default())
            .unwrap();
        let citizen = setup(&s.demands, &s).await;
        let (view, _) = s.demands.submit(&citizen, submission()).await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let d = s.demands.clone();
                let id = view.demand.id;
                tokio::spawn(async move { d.perform(id, &agent(), take()).await })
            })
            .collect();
        let mut moved = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => moved += 1,
                Err(DemandError::NotFound(_)) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(moved, 1, "the button is gone once pressed");
        let history = s.demands.history(view.demand.id, 0, 100).await.unwrap();
        assert_eq!(history.len(), 2, "submitted, then one status change");
        s.runtime.shutdown();
    });
}

#[test]
fn two_processes_never_both_move_one_demand() {
    run(async {
        let s = Services::start(Store::open("mem://").await.unwrap(), SessionPolicy::default())
            .unwrap();
        let first = registry(&s, Duration::from_secs(60));
        let second = registry(&s, Duration::from_secs(60));
        let citizen = setup(&first, &s).await;
        let (view, _) = first.submit(&citizen, submission()).await.unwrap();
        // Both processes hold the demand in memory, in its first status.
        second.get(view.demand.id).await.unwrap();
        first.perform(view.demand.id, &agent(), take()).await.unwrap();
        // The second decides on its stale copy; the database refuses the write.
        let e = second.perform(view.demand.id, &agent(), take()).await.unwrap_err();
        assert!(matches!(e, DemandError::Conflict(_)), "{e}");
        // ...and the next use reads the store's state.
        let fresh = second.get(view.demand.id).await.unwrap();
        assert_eq!(fresh.demand.status, "taken");
        assert_eq!(s.store.demand_history(view.demand.id, 0, 100).await.unwrap().len(), 2);
        s.runtime.shutdown();
    });
}

#[test]
fn expired_drafts_are_hidden_then_purged() {
    run(async {
        let store = Store::open("mem://").await.unwrap();
        let now = jiff::Timestamp::now();
        let account = crate::ids::AccountId::new();
        let draft = |expires_at| crate::demands::draft::Draft {
            id: crate::ids::DraftId::new(),
            account,
            form_id: FormId::new(),
            form_slug: "ask".into(),
            form_version: 1,
            answers: serde_json::Map::new(),
            page: 0,
            created_at: now,
            updated_at: now,
            expires_at,
        };
        let old = draft(now - jiff::SignedDuration::from_secs(1));
        let live = draft(now + jiff::SignedDuration::from_hours(1));
        store.save_draft(&old).await.unwrap();
        store.save_draft(&live).await.unwrap();
        let listed = store.drafts_of(account, now).await.unwrap();
        assert_eq!(listed.iter().map(|d| d.id).collect::<Vec<_>>(), [live.id]);
        assert!(store.draft(old.id, now).await.unwrap().is_none());
        assert_eq!(store.purge_drafts(now).await.unwrap(), 1);
        assert_eq!(store.purge_drafts(now).await.unwrap(), 0);
        assert!(store.draft(live.id, now).await.unwrap().is_some());
    });
}

#[test]
fn uploads_never_attached_are_purged_after_a_day_with_their_files() {
    run(async {
        let s = Services::start(Store::open("mem://").await.unwrap(), SessionPolicy::default())
            .unwrap();
        let dir = std::env::temp_dir().join(format!("guichet-purge-{}", uuid::Uuid::new_v4()));
        let files = crate::demands::attachments::Files::new(dir.clone()).unwrap();
        let d = registry_with_files(&s, Duration::from_secs(60), Some(files));
        let u = d.upload(&Principal::Anonymous, "a.txt", None, b"hello".to_vec()).await.unwrap();
        assert!(dir.join(&u.id).exists());
        let now = jiff::Timestamp::now();
        assert_eq!(d.purge_unclaimed_uploads(now).await.unwrap(), 0, "a fresh upload stays");
        let tomorrow = now + jiff::SignedDuration::from_hours(25);
        assert_eq!(d.purge_unclaimed_uploads(tomorrow).await.unwrap(), 1);
        assert!(!dir.join(&u.id).exists(), "its file is gone too");
        assert!(s.store.uploads(std::slice::from_ref(&u.id)).await.unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
        s.runtime.shutdown();
    });
}
