//! Heap bytes per live and per stopped `DemandActor`, counted by the allocator.
//!
//! RSS cannot separate an actor from the database it was read from (SurrealDB's caches grow
//! with the same reads, and freed memory stays with the allocator), so this counts the bytes
//! the process holds through a counting global allocator (`stats_alloc`) instead, on an in-memory database:
//!
//! 1. `N` demands of a 30-field form are submitted, then their actors stop when idle: the
//!    baseline (the database holds the demands, no actor is live);
//! 2. every demand is read again, which starts its actor: (heap − baseline) / N is what a live
//!    idle actor holds;
//! 3. the actors stop again when idle: (heap − baseline) / N is what a stopped one leaves;
//!    a second start and stop tells a one-time cache from a leak.
//!
//! Heap bytes do not depend on the build profile; run with
//! `cargo run -p actors --example demand_actor_memory [N]`.

use std::alloc::System;
use std::time::Duration;

use actors::Services;
use actors::access::{Principal, Roles};
use actors::account::NewAccount;
use actors::demands::form::FormDef;
use actors::demands::model::SubmissionChannel;
use actors::demands::workflow::WorkflowDef;
use actors::demands::{DemandsSettings, Submission};
use actors::ids::{FormId, WorkflowId};
use actors::session::SessionPolicy;
use actors::store::Store;
use serde_json::{Map, Value, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const FIELDS: usize = 30;
/// Long enough for every actor to be live at once while all are read (a debug build reads a
/// few hundred demands a second).
const IDLE: Duration = Duration::from_secs(30);

/// Bytes allocated and not freed yet (`stats_alloc` counts a reallocation's growth in
/// `bytes_allocated` and its shrinking in `bytes_deallocated` already).
fn held() -> isize {
    let s = ALLOCATOR.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

/// Waits until no demand actor is live, and a little more for what they free on stopping.
async fn until_stopped(services: &Services) {
    while services.demands.live_actors() > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(10 << 20)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(measure(n));
}

async fn measure(n: usize) {
    let endpoint = std::env::var("GUICHET_DB").unwrap_or_else(|_| "mem://".into());
    let store = Store::open(&endpoint).await.expect("the database opens");
    let settings = DemandsSettings { files: None, idle_after: IDLE };
    let services =
        Services::start_with(store, SessionPolicy::default(), settings).expect("the actors start");
    let demands = &services.demands;

    let workflow: WorkflowDef = serde_json::from_value(json!({
        "id": WorkflowId::new(), "slug": "five", "name": "Five statuses", "functions": ["receiver"],
        "statuses": [
            { "id": "new", "name": "New", "items": [
                { "id": "take", "kind": { "type": "button", "label": "Take",
                  "by": [{ "kind": "function", "name": "receiver" }], "target": "taken" } } ] },
            { "id": "taken", "name": "Taken" },
            { "id": "checked", "name": "Checked" },
            { "id": "accepted", "name": "Accepted" },
            { "id": "rejected", "name": "Rejected" }
        ]
    }))
    .expect("a workflow");
    let workflow = demands.save_workflow(workflow, None, None).await.expect("workflow saved");
    let fields: Vec<Value> = (0..FIELDS)
        .map(|i| {
            json!({ "id": format!("f{i}"), "label": format!("Field {i}"),
                    "kind": { "type": "string" }, "required": "always" })
        })
        .collect();
    let form: FormDef = serde_json::from_value(json!({
        "id": FormId::new(), "slug": "thirty", "title": "Thirty fields", "workflow_id": workflow.id,
        "function_roles": { "receiver": "desk" }, "fields": fields,
        "digest_template": "{{ form_var_f0 }} {{ form_var_f1 }}"
    }))
    .expect("a form");
    demands.save_form(form, None, None).await.expect("form saved");
    let account = services
        .accounts
        .register(
            NewAccount {
                email: "camille@example.org".into(),
                password: "long enough password".into(),
                first_name: "Camille".into(),
                last_name: "Martin".into(),
            },
            Roles::citizen(),
        )
        .await
        .expect("an account");
    let citizen = Principal::Account { id: account.id, roles: Roles::citizen() };
    let answers: Map<String, Value> = (0..FIELDS)
        .map(|i| (format!("f{i}"), Value::String(format!("answer {i:02} of a citizen, 30 ch"))))
        .collect();

    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let submission = Submission {
            form_slug: "thirty".into(),
            answers: answers.clone(),
            channel: SubmissionChannel::Web,
            on_behalf_of: None,
            draft: None,
        };
        let (view, _) = demands.submit(&citizen, submission).await.expect("submitted");
        ids.push(view.demand.id);
    }
    until_stopped(&services).await;
    // Once more, so that what the first read of each kind caches (definitions, the query
    // plans of the store) is in the baseline and not counted as the actors'.
    demands.get(ids[0]).await.expect("read");
    until_stopped(&services).await;
    let baseline = held();

    for id in &ids {
        demands.get(*id).await.expect("read");
    }
    let live = services.demands.live_actors();
    let with_live = held();
    until_stopped(&services).await;
    let after_stop = held();

    assert_eq!(live, n, "every actor is live at once: raise IDLE");
    // A second round tells a one-time cache (the same residue) from a leak (twice as much).
    for id in &ids {
        demands.get(*id).await.expect("read");
    }
    until_stopped(&services).await;
    let after_second_stop = held();
    let per = |bytes: isize| bytes as f64 / n as f64;
    println!("demands: {n} of a {FIELDS}-field form, all {live} actors live after reading them");
    println!("heap held, baseline (all stopped): {:.1} MB", baseline as f64 / 1e6);
    println!("per live idle DemandActor: {:.0} bytes", per(with_live - baseline));
    println!("per stopped DemandActor:   {:.0} bytes", per(after_stop - baseline));
    println!(
        "per stopped DemandActor, after a second start and stop: {:.0} bytes",
        per(after_second_stop - baseline)
    );
    services.runtime.shutdown();
}
