use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::demands::form::{DEFAULT_DRAFT_DAYS, Field, FieldKind, Required};
use crate::demands::workflow::{Assignment, GlobalAction, StatusDef, WebhookTrigger};

fn now() -> Timestamp {
    "2026-12-04T09:00:00Z".parse().unwrap()
}

fn item(id: &str, kind: ItemKind) -> ActionItem {
    ActionItem { id: id.into(), condition: None, kind }
}

fn status(id: &str, items: Vec<ActionItem>) -> StatusDef {
    StatusDef {
        id: id.into(),
        name: id.to_uppercase(),
        visibility: Visibility::All,
        endpoint: false,
        items,
    }
}

fn button(id: &str, who: Who, target: &str) -> ActionItem {
    item(
        id,
        ItemKind::Button {
            label: id.into(),
            by: vec![who],
            target: target.into(),
            with_comment: true,
        },
    )
}

/// new → (auto: dispatch, notify, jump if urgent) → in-progress → accepted / rejected.
fn workflow() -> WorkflowDef {
    let mut urgent =
        item("urgent", ItemKind::Jump { target: "in-progress".into(), after_seconds: None });
    urgent.condition = Some("form_var_urgent".into());
    WorkflowDef {
        id: WorkflowId::new(),
        slug: "simple".into(),
        name: "Simple".into(),
        functions: vec!["receiver".into()],
        statuses: vec![
            status(
                "new",
                vec![
                    item(
                        "ack",
                        ItemKind::Notify {
                            to: vec![Recipient::Submitter, Recipient::Function("receiver".into())],
                            subject: "Demand {{ form_digest }} received".into(),
                            body: "Hello {{ form_user_display_name }}".into(),
                            sms: false,
                        },
                    ),
                    urgent,
                    button("take", Who::Function("receiver".into()), "in-progress"),
                    item(
                        "late",
                        ItemKind::Jump { target: "rejected".into(), after_seconds: Some(3600) },
                    ),
                ],
            ),
            StatusDef {
                visibility: Visibility::Restricted,
                ..status(
                    "in-progress",
                    vec![
                        button("accept", Who::Function("receiver".into()), "accepted"),
                        button("reject", Who::Role("mayor".into()), "rejected"),
                        item(
                            "note",
                            ItemKind::Comment { label: "Note".into(), by: vec![Who::Submitter] },
                        ),
                    ],
                )
            },
            status(
                "accepted",
                vec![item(
                    "stamp",
                    ItemKind::SetFields {
                        values: vec![Assignment {
                            field: "decision".into(),
                            template: "ok for {{ form_var_name }}".into(),
                        }],
                    },
                )],
            ),
            status("rejected", vec![]),
        ],
        global_actions: vec![GlobalAction {
            id: "reassign".into(),
            label: "Reassign".into(),
            by: vec![Who::Role("mayor".into())],
            statuses: vec![],
            mass: true,
            input: vec![],
            timeout: None,
            webhook: None,
            items: vec![item(
                "to-mayor",
                ItemKind::Dispatch { function: "receiver".into(), role: "mayor".into() },
            )],
        }],
        version: 1,
    }
}

fn form(wf: &WorkflowDef) -> FormDef {
    FormDef {
        id: FormId::new(),
        kind: crate::demands::form::FormKind::Form,
        slug: "noise".into(),
        title: "Noise".into(),
        description: String::new(),
        category: None,
        workflow_id: wf.id,
        function_roles: BTreeMap::from([("receiver".into(), "police".into())]),
        summary_roles: vec![],
        backoffice_submission_roles: vec![],
        allow_anonymous: false,
        fields: vec![Field {
            id: "name".into(),
            label: "Name".into(),
            hint: String::new(),
            kind: FieldKind::String,
            required: Required::Always,
            condition: None,
            validation: None,
            prefill: None,
            read_only: false,
            in_listing: true,
        }],
        digest_template: Some("{{ form_var_name }} — {{ form_status }}".into()),
        draft_days: DEFAULT_DRAFT_DAYS,
        version: 3,
    }
}

/// A new web demand of `citizen` with these answers.
fn new_demand(citizen: AccountId, answers: Value) -> NewDemand {
    NewDemand {
        id: DemandId::new(),
        data: answers.as_object().cloned().unwrap(),
        submitter: Some(citizen),
        user_label: "Camille Martin".into(),
        entered_by: None,
        channel: SubmissionChannel::Web,
        parent: None,
    }
}

fn submitted(urgent: bool) -> (FormDef, WorkflowDef, Step, AccountId) {
    let wf = workflow();
    let f = form(&wf);
    let citizen = AccountId::new();
    let new = new_demand(citizen, json!({"name": "Camille", "urgent": urgent}));
    let step = submit(&f, &wf, new, now()).unwrap();
    (f, wf, step, citizen)
}

fn agent(role: &str) -> Actor {
    Actor { account: AccountId::new(), admin: false, roles: vec![role.into()] }
}

#[test]
fn submission_runs_the_first_status_and_schedules_its_timeout() {
    let (f, _, step, citizen) = submitted(false);
    let d = &step.demand;
    assert_eq!(d.status, "new");
    assert_eq!(d.form_version, 3);
    assert_eq!(d.digest, "Camille — NEW");
    assert_eq!(d.content_roles(&f), ["police"]);
    assert_eq!(step.notifications.len(), 1);
    let n = &step.notifications[0];
    assert_eq!((n.submitter, n.roles.clone()), (Some(citizen), vec!["police".to_owned()]));
    assert!(n.subject.starts_with("Demand Camille"));
    assert_eq!(n.body, "Hello Camille Martin");
    assert_eq!(
        step.timers,
        [TimedJump {
            item_id: "late".into(),
            arrival: 0,
            due_at: now() + SignedDuration::from_hours(1)
        }]
    );
    let kinds: Vec<&str> = step
        .history
        .iter()
        .map(|h| match h.kind {
            HistoryKind::Submitted { .. } => "submitted",
            HistoryKind::Notified { .. } => "notified",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["submitted", "notified"]);
    assert_eq!(d.history_len, 2);
    assert_eq!(d.version, 1);
}

#[test]
fn an_immediate_jump_chains_into_the_next_status() {
    let (_, _, step, _) = submitted(true);
    assert_eq!(step.demand.status, "in-progress");
    assert_eq!(step.demand.visible_status, "new", "the submitter does not see restricted statuses");
    assert!(
        step.history.iter().any(
            |h| matches!(&h.kind, HistoryKind::StatusChanged { to, .. } if to == "in-progress")
        )
    );
}

#[test]
fn buttons_are_for_the_roles_of_their_functions() {
    let (f, wf, step, citizen) = submitted(false);
    let d = step.demand;
    let take = Operation::Button { item_id: "take".into(), comment: Some("on it".into()) };
    let e = perform(&f, &wf, &d, &take, &agent("culture"), now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);
    let citizen = Actor { account: citizen, admin: false, roles: vec![] };
    assert_eq!(
        perform(&f, &wf, &d, &take, &citizen, now()).unwrap_err().code(),
        ErrorCode::Forbidden
    );
    let step = perform(&f, &wf, &d, &take, &agent("police"), now()).unwrap();
    assert_eq!(step.demand.status, "in-progress");
    assert_eq!(step.demand.arrival, 1);
    assert!(matches!(&step.history[0].kind, HistoryKind::Comment { text } if text == "on it"));
    // A button of another status is not offered here.
    let accept = Operation::Button { item_id: "accept".into(), comment: None };
    assert_eq!(
        perform(&f, &wf, &d, &accept, &agent("police"), now()).unwrap_err().code(),
        ErrorCode::NotFound
    );
    let done = perform(&f, &wf, &step.demand, &accept, &agent("police"), now()).unwrap();
    assert_eq!(done.demand.status, "accepted");
    assert_eq!(done.demand.data["decision"], "ok for Camille");
    assert!(wf.is_endpoint("accepted"));
    // The submitter comments where the workflow lets them.
    let note = Operation::Comment { item_id: "note".into(), text: "  thanks ".into() };
    let c = perform(&f, &wf, &step.demand, &note, &citizen, now()).unwrap();
    assert!(matches!(&c.history[0].kind, HistoryKind::Comment { text } if text == "thanks"));
}

#[test]
fn dispatch_moves_the_function_and_its_content_access() {
    let (f, wf, step, _) = submitted(false);
    let run = Operation::Global { action_id: "reassign".into(), input: Map::new() };
    let step = perform(&f, &wf, &step.demand, &run, &agent("mayor"), now()).unwrap();
    assert_eq!(step.demand.function_role(&f, "receiver"), Some("mayor"));
    assert_eq!(step.demand.content_roles(&f), ["mayor"]);
    let take = Operation::Button { item_id: "take".into(), comment: None };
    assert_eq!(
        perform(&f, &wf, &step.demand, &take, &agent("police"), now()).unwrap_err().code(),
        ErrorCode::Forbidden
    );
    assert!(perform(&f, &wf, &step.demand, &take, &agent("mayor"), now()).is_ok());
}

#[test]
fn timeouts_fire_only_if_the_demand_has_not_moved() {
    let (f, wf, step, _) = submitted(false);
    let later = now() + SignedDuration::from_hours(2);
    let fired = timeout(&f, &wf, &step.demand, "late", 0, later).unwrap().unwrap();
    assert_eq!(fired.demand.status, "rejected");
    let take = Operation::Button { item_id: "take".into(), comment: None };
    let moved = perform(&f, &wf, &step.demand, &take, &agent("police"), now()).unwrap();
    assert!(timeout(&f, &wf, &moved.demand, "late", 0, later).unwrap().is_none());
}

#[test]
fn a_looping_workflow_is_stopped_and_changes_nothing() {
    let mut wf = workflow();
    wf.statuses[0].items =
        vec![item("a", ItemKind::Jump { target: "rejected".into(), after_seconds: None })];
    wf.statuses[3].items =
        vec![item("b", ItemKind::Jump { target: "new".into(), after_seconds: None })];
    let f = form(&wf);
    let new = NewDemand {
        id: DemandId::new(),
        data: Map::new(),
        submitter: None,
        user_label: String::new(),
        entered_by: None,
        channel: SubmissionChannel::Phone,
        parent: None,
    };
    let e = submit(&f, &wf, new, now()).unwrap_err();
    assert!(e.to_string().contains("too many jumps"), "{e}");
}

#[test]
fn workflow_definitions_are_checked() {
    let wf = workflow();
    assert!(wf.check().is_ok());
    let mut bad = workflow();
    bad.statuses[0]
        .items
        .push(item("x", ItemKind::Jump { target: "nowhere".into(), after_seconds: None }));
    assert!(bad.check().unwrap_err().0.contains("nowhere"));
    let mut bad = workflow();
    bad.statuses[1].items.push(button("y", Who::Function("clerk".into()), "new"));
    assert!(bad.check().unwrap_err().0.contains("clerk"));
    let mut bad = workflow();
    bad.statuses[2].items.push(item("z", ItemKind::HistoryMessage { template: "{{ oops ".into() }));
    assert!(bad.check().is_err());
    let mut bad = workflow();
    bad.statuses.push(status("new", vec![]));
    assert!(bad.check().is_err());
    let mut bad = workflow();
    bad.statuses[2].items.push(button("take", Who::Submitter, "new"));
    assert!(bad.check().unwrap_err().0.contains("unique"));
}

/// A workflow whose global action "call" runs a day before the `visit` date.
fn with_visit_reminder() -> WorkflowDef {
    let mut wf = workflow();
    wf.global_actions.push(GlobalAction {
        id: "call".into(),
        label: "Call before the visit".into(),
        by: vec![],
        statuses: vec![],
        mass: false,
        input: vec![],
        timeout: Some(TimeoutTrigger {
            anchor: Anchor::Field("visit".into()),
            after_seconds: -24 * 3600,
        }),
        webhook: None,
        items: vec![item("msg", ItemKind::HistoryMessage { template: "call".into() })],
    });
    wf.check().unwrap();
    wf
}

#[test]
fn a_timeout_action_follows_its_anchor_and_runs_once_for_it() {
    let wf = with_visit_reminder();
    let f = form(&wf);
    let data = json!({"name": "C", "visit": "2026-12-10"}).as_object().cloned().unwrap();
    let new = NewDemand {
        id: DemandId::new(),
        data,
        submitter: None,
        user_label: "C".into(),
        entered_by: None,
        channel: SubmissionChannel::Web,
        parent: None,
    };
    let step = submit(&f, &wf, new, now()).unwrap();
    // A date is midnight in Paris (UTC+1 in December): a day before is the 8th at 23:00 UTC.
    let due: Timestamp = "2026-12-08T23:00:00Z".parse().unwrap();
    assert_eq!(step.global_timers, vec![GlobalTimer { action_id: "call".into(), due_at: due }]);

    // Not before its time, not for another due time.
    let early = due - SignedDuration::from_mins(1);
    assert!(global_timeout(&f, &wf, &step.demand, "call", due, early).unwrap().is_none());
    let other = due + SignedDuration::from_hours(1);
    assert!(global_timeout(&f, &wf, &step.demand, "call", other, other).unwrap().is_none());

    let ran = global_timeout(&f, &wf, &step.demand, "call", due, due).unwrap().unwrap();
    assert!(matches!(
        &ran.history[0].kind,
        HistoryKind::GlobalAction { trigger: Trigger::Timeout, .. }
    ));
    assert!(ran.global_timers.is_empty(), "done for this date: nothing more to schedule");
    // Run again (a crash before the job was finished): nothing.
    assert!(global_timeout(&f, &wf, &ran.demand, "call", due, due).unwrap().is_none());

    // The visit moves: a new due time is scheduled and runs once too.
    let mut moved = ran.demand.clone();
    moved.data.insert("visit".into(), json!("2026-12-20T14:30:00"));
    let take = Operation::Button { item_id: "take".into(), comment: None };
    let step = perform(&f, &wf, &moved, &take, &agent("police"), now()).unwrap();
    let due: Timestamp = "2026-12-19T13:30:00Z".parse().unwrap();
    assert_eq!(step.global_timers, vec![GlobalTimer { action_id: "call".into(), due_at: due }]);
    assert!(global_timeout(&f, &wf, &step.demand, "call", due, due).unwrap().is_some());

    // In an endpoint status, a timeout without statuses no longer applies.
    let mut closed = step.demand.clone();
    closed.status = "rejected".into();
    assert!(global_timeout(&f, &wf, &closed, "call", due, due).unwrap().is_none());
}

#[test]
fn global_actions_need_a_trigger_and_coherent_ones() {
    let mut wf = with_visit_reminder();
    wf.global_actions[1].timeout = None;
    assert!(wf.check().unwrap_err().0.contains("nothing triggers it"));
    let mut wf = with_visit_reminder();
    wf.global_actions[1].timeout =
        Some(TimeoutTrigger { anchor: Anchor::Creation, after_seconds: -10 });
    assert!(wf.check().is_err());
    let mut wf = with_visit_reminder();
    wf.global_actions[1].webhook =
        Some(WebhookTrigger { name: "Not a slug".into(), roles: vec![] });
    assert!(wf.check().is_err());
    let mut wf = with_visit_reminder();
    wf.global_actions[1].input = vec![Field {
        id: "why".into(),
        label: "Why".into(),
        hint: String::new(),
        kind: FieldKind::Text,
        required: Required::Always,
        condition: None,
        validation: None,
        prefill: None,
        read_only: false,
        in_listing: false,
    }];
    assert!(wf.check().unwrap_err().0.contains("only an action run by hand asks for input"));
}

/// The simple workflow with, in "new", an edit form for the receiver (only `name`, going on
/// to "in-progress") and an attachment form for the submitter (PDFs up to 1 KiB).
fn with_edit_and_attach() -> WorkflowDef {
    let mut wf = workflow();
    wf.statuses[0].items.push(item(
        "fix",
        ItemKind::Edit {
            label: "Correct".into(),
            by: vec![Who::Function("receiver".into())],
            fields: vec!["name".into()],
            target: Some("in-progress".into()),
        },
    ));
    wf.statuses[0].items.push(item(
        "proof",
        ItemKind::Attach {
            label: "Add a proof".into(),
            by: vec![Who::Submitter],
            field: None,
            types: vec!["application/pdf".into()],
            max_bytes: Some(1024),
        },
    ));
    wf.check().unwrap();
    wf
}

#[test]
fn an_edit_changes_the_fields_it_opens_records_them_and_moves_on() {
    let (mut f, _, _, citizen) = submitted(false);
    let wf = with_edit_and_attach();
    f.workflow_id = wf.id;
    f.fields.push(Field { id: "street".into(), label: "Street".into(), ..f.fields[0].clone() });
    let new = new_demand(citizen, json!({"name": "Camile", "street": "Rue Haute"}));
    let d = submit(&f, &wf, new, now()).unwrap().demand;
    let mut data = d.data.clone();
    data.insert("name".into(), json!("Camille"));
    let fix = |data: &Map<String, Value>, based_on| Operation::Edit {
        item_id: "fix".into(),
        data: data.clone(),
        based_on,
    };
    // The submitter is not among those who may edit; a stale version is refused.
    let as_citizen = Actor { account: citizen, admin: false, roles: vec![] };
    let e = perform(&f, &wf, &d, &fix(&data, d.version), &as_citizen, now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);
    let e = perform(&f, &wf, &d, &fix(&data, d.version - 1), &agent("police"), now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict);
    // A field the form does not open.
    let mut street = data.clone();
    street.insert("street".into(), json!("Rue Basse"));
    let e = perform(&f, &wf, &d, &fix(&street, d.version), &agent("police"), now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadUserInput);
    assert!(e.to_string().contains("street"), "{e}");

    let step = perform(&f, &wf, &d, &fix(&data, d.version), &agent("police"), now()).unwrap();
    assert_eq!(step.demand.data["name"], "Camille");
    assert_eq!(step.demand.data["street"], "Rue Haute");
    assert_eq!(step.demand.digest, "Camille — IN-PROGRESS", "the digest follows the answers");
    assert!(matches!(&step.history[0].kind, HistoryKind::Edited { fields } if fields == &["name"]));
    assert!(matches!(
        &step.history[1].kind,
        HistoryKind::StatusChanged { to, cause, .. } if to == "in-progress" && cause == "Correct"
    ));
    // Offered only in its status.
    let e =
        perform(&f, &wf, &step.demand, &fix(&data, step.demand.version), &agent("police"), now())
            .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
}

#[test]
fn an_attachment_form_keeps_each_file_under_its_limits() {
    let (mut f, _, _, citizen) = submitted(false);
    let wf = with_edit_and_attach();
    f.workflow_id = wf.id;
    let d = submit(&f, &wf, new_demand(citizen, json!({"name": "Camille"})), now()).unwrap().demand;
    let file = |ty: &str, size: u64| {
        json!({"upload": "0123456789abcdef0123456789abcdef", "name": "proof.pdf", "type": ty, "size": size})
            .as_object()
            .cloned()
            .unwrap()
    };
    let attach = |file, comment: Option<&str>| Operation::Attach {
        item_id: "proof".into(),
        file,
        comment: comment.map(Into::into),
    };
    let me = Actor { account: citizen, admin: false, roles: vec![] };
    let e = perform(&f, &wf, &d, &attach(file("image/png", 10), None), &me, now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadUserInput);
    assert!(e.to_string().contains("image/png"), "{e}");
    let e =
        perform(&f, &wf, &d, &attach(file("application/pdf", 2048), None), &me, now()).unwrap_err();
    assert!(e.to_string().contains("1 KiB"), "{e}");
    let e =
        perform(&f, &wf, &d, &attach(file("application/pdf", 10), None), &agent("police"), now())
            .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);

    let step = perform(&f, &wf, &d, &attach(file("application/pdf", 10), Some("here")), &me, now())
        .unwrap();
    assert_eq!(step.demand.status, "new", "an attachment moves nothing");
    let key = format!("proof_{}", d.history_len);
    assert_eq!(step.demand.data[&key]["name"], "proof.pdf");
    assert!(matches!(&step.history[0].kind, HistoryKind::Comment { text } if text == "here"));
    assert!(matches!(
        &step.history[1].kind,
        HistoryKind::FileAttached { filename, field } if filename == "proof.pdf" && field == &key
    ));
}
