//! Demands end to end: definitions with versions, submission with validation, workflows moved
//! by buttons, comments and timeouts, access by role and by tracking code, mails, and the live
//! subscription of a demand.

use std::time::Duration;

use clients::{GraphqlClient, WsClient, WsProtocol};
use serde_json::{Value, json};

use crate::support::*;

const CREATE_WORKFLOW: &str = "mutation($input: WorkflowInput!) { createWorkflow(input: $input) { id version statuses { id endpoint } } }";
const CREATE_FORM: &str =
    "mutation($input: FormInput!) { createForm(input: $input) { id slug version } }";
const SUBMIT: &str = "mutation($input: SubmitDemandInput!) { submitDemand(input: $input) {
    trackingCode demand { id digest status { id name } formVersion data channel } } }";
const DEMAND: &str = "query($id: ID!) { demand(id: $id) { id digest status { id name } data
    history { kind text status } actions { id label kind withComment } } }";
const PERFORM: &str = "mutation($demand: ID!, $action: String!, $comment: String) {
    performAction(demandId: $demand, actionId: $action, comment: $comment) { status { id } } }";

/// Received → (urgent: straight to) In progress (restricted) → Accepted / Rejected; a timeout
/// closes demands nobody took; citizens may comment while it is in progress.
fn workflow_input(slug: &str, timeout_seconds: u64) -> Value {
    json!({
        "slug": slug,
        "name": "Urbanisme",
        "functions": ["receiver"],
        "statuses": [
            { "id": "received", "name": "Received", "items": [
                { "id": "ack", "type": "NOTIFY", "to": [{ "submitter": true }, { "function": "receiver" }],
                  "subject": "Demand received: {{ form_digest }}",
                  "body": "Hello {{ form_user_display_name }}, your demand about {{ form_var_address }} is {{ form_status }}." },
                { "id": "urgent", "type": "JUMP", "target": "in-progress", "condition": "form_var_urgent" },
                { "id": "take", "type": "BUTTON", "label": "Take", "by": [{ "function": "receiver" }],
                  "target": "in-progress", "withComment": true },
                { "id": "forgotten", "type": "JUMP", "target": "closed", "afterSeconds": timeout_seconds }
            ]},
            { "id": "in-progress", "name": "In progress", "visibility": "RESTRICTED", "items": [
                { "id": "accept", "type": "BUTTON", "label": "Accept", "by": [{ "function": "receiver" }], "target": "accepted" },
                { "id": "reject", "type": "BUTTON", "label": "Reject", "by": [{ "role": "direction" }], "target": "rejected" },
                { "id": "note", "type": "COMMENT", "label": "Add a note", "by": [{ "submitter": true }] }
            ]},
            { "id": "accepted", "name": "Accepted", "items": [
                { "id": "stamp", "type": "SET_FIELDS", "values": [{ "field": "decision", "template": "granted to {{ form_user_display_name }}" }] },
                { "id": "tell", "type": "NOTIFY", "to": [{ "submitter": true }], "subject": "Accepted", "body": "{{ form_var_decision }}" }
            ]},
            { "id": "rejected", "name": "Rejected" },
            { "id": "closed", "name": "Closed without answer" }
        ],
        "globalActions": [
            { "id": "to-direction", "label": "Send to the direction", "by": [{ "role": "direction" }],
              "items": [{ "id": "give", "type": "DISPATCH", "function": "receiver", "role": "direction" }] }
        ]
    })
}

fn form_input(slug: &str, workflow_id: &str, extra: Value) -> Value {
    let mut input = json!({
        "slug": slug,
        "title": "Building permit",
        "workflowId": workflow_id,
        "functionRoles": [{ "function": "receiver", "role": "urbanisme" }],
        "summaryRoles": ["accueil"],
        "backofficeSubmissionRoles": ["accueil"],
        "digestTemplate": "{{ form_var_address }} ({{ form_var_kind }})",
        "fields": [
            { "id": "name", "label": "Name", "type": "STRING", "readOnly": true, "prefill": { "user": "LAST_NAME" } },
            { "id": "address", "label": "Address", "type": "STRING", "required": "REQUIRED" },
            { "id": "zip", "label": "Postcode", "type": "STRING", "required": "REQUIRED",
              "validation": { "regex": "[0-9]{5}", "message": "a French postcode has five digits" } },
            { "id": "email", "label": "Email", "type": "EMAIL", "required": "FRONT_OFFICE" },
            { "id": "kind", "label": "Kind", "type": "ITEM", "required": "REQUIRED",
              "choices": [{ "id": "house", "text": "House" }, { "id": "shed", "text": "Garden shed" }] },
            { "id": "area", "label": "Area (m²)", "type": "NUMBER", "min": 1, "max": 10000,
              "condition": "form_var_kind_raw == 'house'", "required": "REQUIRED" },
            { "id": "urgent", "label": "Urgent", "type": "BOOL" }
        ]
    });
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    input
}

async fn account(
    admin: &GraphqlClient,
    server: &TestServer,
    email: &str,
    roles: &[&str],
) -> GraphqlClient {
    let r = admin
        .request(
            "mutation($input: CreateAccountInput!) { createAccount(input: $input) { id } }",
            json!({ "input": { "email": email, "password": "agent-password", "firstName": "Agent",
                "lastName": email, "agentRoles": roles } }),
        )
        .await
        .unwrap();
    assert!(r.is_ok(), "{}", r.body);
    server.client().login(email, "agent-password").await.unwrap()
}

async fn define(admin: &GraphqlClient, slug: &str, timeout: u64, extra: Value) -> (String, String) {
    let r = admin
        .request(CREATE_WORKFLOW, json!({ "input": workflow_input(slug, timeout) }))
        .await
        .unwrap();
    assert!(r.is_ok(), "createWorkflow: {}", r.body);
    let workflow = r.data()["createWorkflow"]["id"].as_str().unwrap().to_owned();
    let r = admin
        .request(CREATE_FORM, json!({ "input": form_input(slug, &workflow, extra) }))
        .await
        .unwrap();
    assert!(r.is_ok(), "createForm: {}", r.body);
    (workflow, r.data()["createForm"]["id"].as_str().unwrap().to_owned())
}

async fn submit(client: &GraphqlClient, form: &str, answers: Value) -> clients::Response {
    client.request(SUBMIT, json!({ "input": { "form": form, "answers": answers } })).await.unwrap()
}

fn valid_answers() -> Value {
    json!({ "address": "3 rue des Lilas", "zip": "44000", "email": "camille@example.org",
            "kind": "house", "area": "120" })
}

async fn status(client: &GraphqlClient, id: &str) -> String {
    let r = client.request(DEMAND, json!({ "id": id })).await.unwrap();
    assert!(r.is_ok(), "{}", r.body);
    r.data()["demand"]["status"]["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_demand_is_validated_dispatched_processed_and_followed_live() {
    run(async {
        let smtp = SmtpSink::start().await;
        let server = TestServer::start_with(|c| c.smtp_url = Some(smtp.url())).await;
        let admin = server.admin().await;
        let urbanisme = account(&admin, &server, "instructeur@mairie.test", &["urbanisme"]).await;
        let accueil = account(&admin, &server, "accueil@mairie.test", &["accueil"]).await;
        let culture = account(&admin, &server, "culture@mairie.test", &["culture"]).await;
        let (_, _) = define(&admin, "permis", 3600, json!({})).await;
        let (citizen, citizen_id) = server
            .client()
            .register("camille@citoyens.test", PASSWORD, "Camille", "Martin")
            .await
            .unwrap();

        // Every bad answer at once, with its field; nothing is saved.
        let r = submit(
            &citizen,
            "permis",
            json!({ "zip": "4400", "kind": "villa", "name": "Forged", "nope": 1 }),
        )
        .await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let ext = &r.body["errors"][0]["extensions"];
        let fields: Vec<&str> =
            ext["invalidFields"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(fields, ["address", "zip", "email", "kind", "nope"], "{}", r.body);
        assert!(r.body.to_string().contains("a French postcode has five digits"));
        let mine = citizen.request("{ myDemands { id } }", json!({})).await.unwrap();
        assert_eq!(mine.data()["myDemands"], json!([]));

        // A valid one enters the workflow: the read-only name comes from the profile, the
        // hidden question is dropped, both the citizen and the receiving role are mailed.
        let mut answers = valid_answers();
        answers["kind"] = json!("shed");
        answers["area"] = json!("5");
        let r = submit(&citizen, "permis", answers).await;
        assert!(r.is_ok(), "{}", r.body);
        let submitted = &r.data()["submitDemand"];
        let demand = submitted["demand"]["id"].as_str().unwrap().to_owned();
        assert_eq!(submitted["demand"]["status"]["id"], "received");
        assert_eq!(submitted["demand"]["digest"], "3 rue des Lilas (Garden shed)");
        let data = &submitted["demand"]["data"];
        assert_eq!(data["name"], "Martin");
        assert!(data.get("area").is_none(), "a hidden field keeps no answer: {data}");
        assert_eq!(data["kind"], json!({ "id": "shed", "text": "Garden shed" }));
        assert_eq!(submitted["trackingCode"].as_str().unwrap().len(), 31);
        let mailed = eventually(Duration::from_secs(20), async || smtp.messages().len() >= 2).await;
        assert!(mailed, "mails: {:?}", smtp.messages());
        let messages = smtp.messages();
        assert_eq!(messages.len(), 2, "one per recipient account");
        assert!(messages.iter().any(|m| m.contains("camille@citoyens.test")));
        assert!(messages.iter().any(|m| m.contains("instructeur@mairie.test")));
        assert!(messages.iter().all(|m| m.contains("Demand received: 3 rue des Lilas")));

        // Access: content for the receiving role, summary for the welcome desk, nothing else.
        assert_eq!(status(&urbanisme, &demand).await, "received");
        let r = accueil
            .request("query($id: ID!) { demand(id: $id) { digest data } }", json!({ "id": demand }))
            .await
            .unwrap();
        assert_eq!(r.data()["demand"]["digest"], "3 rue des Lilas (Garden shed)", "{}", r.body);
        assert_eq!(r.error_code(), Some("FORBIDDEN"), "data is content: {}", r.body);
        let r = culture.request(DEMAND, json!({ "id": demand })).await.unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"), "{}", r.body);
        let r = server.client().request(DEMAND, json!({ "id": demand })).await.unwrap();
        assert_eq!(r.error_code(), Some("UNAUTHENTICATED"), "{}", r.body);

        // The citizen follows it live.
        let mut ws = WsClient::connect(&server.base, WsProtocol::TransportWs, citizen.token())
            .await
            .unwrap();
        ws.subscribe(
            "d",
            "subscription($id: ID!) { demandUpdated(demandId: $id) { status { id } version } }",
            json!({ "id": demand }),
        )
        .await
        .unwrap();
        let first = ws.next_data("d", Duration::from_secs(10)).await.unwrap();
        assert_eq!(first["data"]["demandUpdated"]["status"]["id"], "received");

        // Buttons belong to the roles of their functions.
        let r =
            citizen.request(PERFORM, json!({ "demand": demand, "action": "take" })).await.unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"), "{}", r.body);
        let r =
            accueil.request(PERFORM, json!({ "demand": demand, "action": "take" })).await.unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"), "summary roles act on nothing: {}", r.body);
        let r = urbanisme.request(DEMAND, json!({ "id": demand })).await.unwrap();
        let offered: Vec<&str> = r.data()["demand"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert_eq!(offered, ["take"]);
        let r = urbanisme
            .request(
                PERFORM,
                json!({ "demand": demand, "action": "take", "comment": "Site visit on Monday" }),
            )
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        assert_eq!(r.data()["performAction"]["status"]["id"], "in-progress");

        // The status is restricted: the citizen still sees "received", live and on reading.
        let pushed = ws.next_data("d", Duration::from_secs(10)).await.unwrap();
        assert_eq!(pushed["data"]["demandUpdated"]["status"]["id"], "received", "{pushed}");
        assert_eq!(pushed["data"]["demandUpdated"]["version"], 2);
        assert_eq!(status(&citizen, &demand).await, "received");
        let r = citizen
            .request(
                PERFORM,
                json!({ "demand": demand, "action": "note", "comment": "The shed is 2 m high" }),
            )
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let r = citizen.request(DEMAND, json!({ "id": demand })).await.unwrap();
        let kinds: Vec<&str> = r.data()["demand"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["submitted", "notified", "comment"],
            "entries of restricted statuses are the agents': {}",
            r.body
        );
        let r = urbanisme.request(DEMAND, json!({ "id": demand })).await.unwrap();
        let texts: Vec<&str> = r.data()["demand"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["text"].as_str().unwrap())
            .collect();
        assert!(
            texts.contains(&"Site visit on Monday") && texts.contains(&"The shed is 2 m high"),
            "{texts:?}"
        );

        // Accepting stamps the decision and mails it; the citizen sees it live.
        let r = urbanisme
            .request(PERFORM, json!({ "demand": demand, "action": "accept" }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let pushed = loop {
            let p = ws.next_data("d", Duration::from_secs(10)).await.unwrap();
            if p["data"]["demandUpdated"]["status"]["id"] == "accepted" {
                break p;
            }
        };
        assert_eq!(pushed["data"]["demandUpdated"]["status"]["id"], "accepted");
        let r = citizen.request(DEMAND, json!({ "id": demand })).await.unwrap();
        assert_eq!(r.data()["demand"]["data"]["decision"], "granted to Camille Martin");
        assert_eq!(r.data()["demand"]["actions"], json!([]), "a final status offers nothing");
        let told = eventually(Duration::from_secs(20), async || smtp.messages().len() >= 3).await;
        assert!(told && smtp.messages().iter().any(|m| m.contains("granted to Camille Martin")));
        // Buttons of a past status are gone.
        let r = urbanisme
            .request(PERFORM, json!({ "demand": demand, "action": "take" }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"), "{}", r.body);
        let _ = citizen_id;
        ws.close().await.unwrap();
        server.stop().await;
    });
}

#[test]
fn dispatch_moves_a_demand_between_roles() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let urbanisme = account(&admin, &server, "u@mairie.test", &["urbanisme"]).await;
        let direction = account(&admin, &server, "d@mairie.test", &["direction"]).await;
        define(&admin, "permis", 3600, json!({})).await;
        let (citizen, _) =
            server.client().register("c@citoyens.test", PASSWORD, "C", "D").await.unwrap();
        let r = submit(&citizen, "permis", valid_answers()).await;
        let demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        // The direction does not see it until it takes it over... and cannot, not seeing it.
        let r = direction
            .request(PERFORM, json!({ "demand": demand, "action": "to-direction" }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"), "{}", r.body);
        // An administrator sends it there; the receiving role changes, and access with it.
        let r = admin
            .request(PERFORM, json!({ "demand": demand, "action": "to-direction" }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        assert_eq!(status(&direction, &demand).await, "received");
        let r = urbanisme.request(DEMAND, json!({ "id": demand })).await.unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"), "{}", r.body);
        let r = direction
            .request(PERFORM, json!({ "demand": demand, "action": "take" }))
            .await
            .unwrap();
        assert!(r.is_ok(), "the new receiver takes it: {}", r.body);
        server.stop().await;
    });
}

#[test]
fn agents_submit_on_behalf_and_anonymous_citizens_keep_a_tracking_code() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let accueil = account(&admin, &server, "accueil@mairie.test", &["accueil"]).await;
        let urbanisme = account(&admin, &server, "u@mairie.test", &["urbanisme"]).await;
        define(&admin, "permis", 3600, json!({ "allowAnonymous": true })).await;
        let (citizen, citizen_id) = server
            .client()
            .register("camille@citoyens.test", PASSWORD, "Camille", "Martin")
            .await
            .unwrap();

        // At the counter, for a known citizen: front-office-only requirements are lifted, the
        // profile fills the read-only name, the citizen finds it among their demands.
        let mut answers = valid_answers();
        answers.as_object_mut().unwrap().remove("email");
        let r = accueil
            .request(SUBMIT, json!({ "input": { "form": "permis", "answers": answers, "channel": "COUNTER", "onBehalfOf": citizen_id } }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        assert_eq!(r.data()["submitDemand"]["demand"]["channel"], "COUNTER");
        assert_eq!(r.data()["submitDemand"]["demand"]["data"]["name"], "Martin");
        let mine = citizen.request("{ myDemands { id channel } }", json!({})).await.unwrap();
        assert_eq!(mine.data()["myDemands"].as_array().unwrap().len(), 1);
        // The web requires it; citizens cannot pretend to be the counter.
        let mut answers = valid_answers();
        answers.as_object_mut().unwrap().remove("email");
        let r = submit(&citizen, "permis", answers.clone()).await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"));
        let r = citizen
            .request(
                SUBMIT,
                json!({ "input": { "form": "permis", "answers": answers, "channel": "PHONE" } }),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"), "{}", r.body);

        // Anonymously, with the tracking code as the only key.
        let anonymous = server.client();
        let r = submit(&anonymous, "permis", valid_answers()).await;
        assert!(r.is_ok(), "{}", r.body);
        let code = r.data()["submitDemand"]["trackingCode"].as_str().unwrap().to_owned();
        let demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        let lookup =
            "query($code: String!) { demandByTrackingCode(code: $code) { id status { id } data } }";
        let r = anonymous
            .request(lookup, json!({ "code": code.to_lowercase().replace('-', " ") }))
            .await
            .unwrap();
        assert!(r.is_ok(), "codes are read leniently: {}", r.body);
        assert_eq!(r.data()["demandByTrackingCode"]["id"], demand.as_str());
        // An agent without a role on it is given the code by the citizen: access from then on.
        let other = account(&admin, &server, "other@mairie.test", &["culture"]).await;
        let r = other.request(DEMAND, json!({ "id": demand })).await.unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"));
        let r = other.request(lookup, json!({ "code": code })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        assert_eq!(status(&other, &demand).await, "received");
        let r = urbanisme.request(DEMAND, json!({ "id": demand })).await.unwrap();
        let kinds: Vec<&str> = r.data()["demand"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"access_granted"), "{kinds:?}");

        // At the counter for someone without an account yet, linked to it once they have one.
        let r = accueil
            .request(SUBMIT, json!({ "input": { "form": "permis", "answers": valid_answers(), "channel": "COUNTER" } }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let walk_in = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        let (dominique, dominique_id) = server
            .client()
            .register("dominique@citoyens.test", PASSWORD, "Dominique", "Petit")
            .await
            .unwrap();
        let link = "mutation($d: ID!, $u: ID!) { linkDemandUser(demandId: $d, userId: $u) {
            id userLabel history { kind } } }";
        let linking = |d: &str, u: &str| json!({ "d": d, "u": u });
        let r = dominique.request(link, linking(&walk_in, &dominique_id)).await.unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"), "a citizen cannot claim it: {}", r.body);
        let r = other.request(link, linking(&walk_in, &dominique_id)).await.unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"), "{}", r.body);
        let nobody = "0193a1b2-0000-7000-8000-000000000000";
        let r = accueil.request(link, linking(&walk_in, nobody)).await.unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"), "{}", r.body);
        let mine = dominique.request("{ myDemands { id } }", json!({})).await.unwrap();
        assert_eq!(mine.data()["myDemands"], json!([]));
        let r = accueil.request(link, linking(&walk_in, &dominique_id)).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        assert_eq!(r.data()["linkDemandUser"]["userLabel"], "Dominique Petit");
        let kinds = r.data()["linkDemandUser"]["history"].to_string();
        assert!(kinds.contains("user_linked"), "{kinds}");
        let mine = dominique.request("{ myDemands { id } }", json!({})).await.unwrap();
        assert_eq!(mine.data()["myDemands"], json!([{ "id": walk_in }]));
        assert_eq!(status(&dominique, &walk_in).await, "received");
        let r = accueil.request(link, linking(&walk_in, &citizen_id)).await.unwrap();
        assert_eq!(r.error_code(), Some("CONFLICT"), "linked once: {}", r.body);

        // Guessing is slow: a wrong code is NOT_FOUND, and a burst of lookups is cut off.
        let guesser = server.client();
        let mut codes = Vec::new();
        for _ in 0..12 {
            let r = guesser
                .request(lookup, json!({ "code": "ABCDE-FGHJK-MNPQR-STVWX-YZ012-3" }))
                .await
                .unwrap();
            codes.push(r.error_code().unwrap_or("none").to_owned());
        }
        assert_eq!(codes[0], "NOT_FOUND");
        assert!(codes.iter().any(|c| c == "RATE_LIMITED"), "{codes:?}");
        server.stop().await;
    });
}

#[test]
fn definitions_keep_every_version_and_demands_keep_theirs() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let (workflow, form) = define(&admin, "permis", 3600, json!({})).await;
        let (citizen, _) =
            server.client().register("c@citoyens.test", PASSWORD, "C", "D").await.unwrap();
        let r = submit(&citizen, "permis", valid_answers()).await;
        let old_demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();

        // Version 2 asks for one more answer.
        let mut input = form_input("permis", &workflow, json!({}));
        input["fields"].as_array_mut().unwrap().push(
            json!({ "id": "plot", "label": "Plot", "type": "STRING", "required": "REQUIRED" }),
        );
        let update = "mutation($id: ID!, $v: Int!, $input: FormInput!) { updateForm(id: $id, version: $v, input: $input) { version fields { id } } }";
        let r = admin.request(update, json!({ "id": form, "v": 1, "input": input })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        assert_eq!(r.data()["updateForm"]["version"], 2);
        // Saving from a stale version is refused.
        let r = admin.request(update, json!({ "id": form, "v": 1, "input": input })).await.unwrap();
        assert_eq!(r.error_code(), Some("CONFLICT"), "{}", r.body);
        let r = submit(&citizen, "permis", valid_answers()).await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "the new field is required");
        let mut answers = valid_answers();
        answers["plot"] = json!("AB 12");
        let r = submit(&citizen, "permis", answers).await;
        assert_eq!(r.data()["submitDemand"]["demand"]["formVersion"], 2);
        let r = citizen
            .request(
                "query($id: ID!) { demand(id: $id) { formVersion } }",
                json!({ "id": old_demand }),
            )
            .await
            .unwrap();
        assert_eq!(r.data()["demand"]["formVersion"], 1, "{}", r.body);

        // History and restore.
        let versions = "query($id: ID!) { definitionVersions(id: $id) { version definition } }";
        let r = admin.request(versions, json!({ "id": form })).await.unwrap();
        let listed: Vec<u64> = r.data()["definitionVersions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        assert_eq!(listed, [2, 1]);
        let diff =
            "query($id: ID!) { definitionDiff(id: $id, from: 1, to: 2) { path before after } }";
        let r = admin.request(diff, json!({ "id": form })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let changes = r.data()["definitionDiff"].as_array().unwrap().clone();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0]["path"], "fields.7");
        assert_eq!(changes[0]["before"], Value::Null);
        assert_eq!(changes[0]["after"]["id"], "plot");
        let r = admin
            .request(
                "mutation($id: ID!) { restoreForm(id: $id, version: 1) { version fields { id } } }",
                json!({ "id": form }),
            )
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        assert_eq!(r.data()["restoreForm"]["version"], 3);
        assert_eq!(r.data()["restoreForm"]["fields"].as_array().unwrap().len(), 7);
        let r = citizen.request(versions, json!({ "id": form })).await.unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"));
        server.stop().await;
    });
}

#[test]
fn broken_definitions_are_refused_and_save_nothing() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let count = async |admin: &GraphqlClient| {
            let r = admin.request("{ workflows { id } forms { id } }", json!({})).await.unwrap();
            (
                r.data()["workflows"].as_array().unwrap().len(),
                r.data()["forms"].as_array().unwrap().len(),
            )
        };
        let mut missing = workflow_input("broken", 60);
        missing["statuses"][0]["items"][1]["target"] = json!("nowhere");
        let r = admin.request(CREATE_WORKFLOW, json!({ "input": missing })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"));
        assert!(r.body.to_string().contains("nowhere"), "{}", r.body);
        let mut template = workflow_input("broken", 60);
        template["statuses"][0]["items"][0]["body"] = json!("{% if form_var_x %}never closed");
        let r = admin.request(CREATE_WORKFLOW, json!({ "input": template })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let mut filter = workflow_input("broken", 60);
        filter["statuses"][0]["items"][0]["subject"] = json!("{{ form_digest|no_such_filter }}");
        let r = admin.request(CREATE_WORKFLOW, json!({ "input": filter })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        assert_eq!(count(&admin).await, (0, 0));

        let r = admin
            .request(CREATE_WORKFLOW, json!({ "input": workflow_input("good", 60) }))
            .await
            .unwrap();
        let workflow = r.data()["createWorkflow"]["id"].as_str().unwrap().to_owned();
        let mut regex = form_input("bad", &workflow, json!({}));
        regex["fields"][2]["validation"]["regex"] = json!("([0-9]");
        let r = admin.request(CREATE_FORM, json!({ "input": regex })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let unknown_function = form_input(
            "bad",
            &workflow,
            json!({ "functionRoles": [{ "function": "mayor", "role": "x" }] }),
        );
        let r = admin.request(CREATE_FORM, json!({ "input": unknown_function })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let r = admin
            .request(CREATE_FORM, json!({ "input": form_input("good", &workflow, json!({})) }))
            .await
            .unwrap();
        assert!(r.is_ok());
        let r = admin
            .request(CREATE_FORM, json!({ "input": form_input("good", &workflow, json!({})) }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("CONFLICT"), "the slug is taken: {}", r.body);
        let (citizen, _) =
            server.client().register("c@citoyens.test", PASSWORD, "C", "D").await.unwrap();
        let r = citizen
            .request(CREATE_FORM, json!({ "input": form_input("mine", &workflow, json!({})) }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"));
        assert_eq!(count(&admin).await, (1, 1));
        let r = submit(&citizen, "nope", valid_answers()).await;
        assert_eq!(r.error_code(), Some("NOT_FOUND"));
        server.stop().await;
    });
}

#[test]
fn a_timed_jump_fires_when_due() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let urbanisme = account(&admin, &server, "u@mairie.test", &["urbanisme"]).await;
        define(&admin, "permis", 2, json!({})).await;
        let (citizen, _) =
            server.client().register("c@citoyens.test", PASSWORD, "C", "D").await.unwrap();
        let forgotten = submit(&citizen, "permis", valid_answers()).await;
        let forgotten =
            forgotten.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        let taken = submit(&citizen, "permis", valid_answers()).await;
        let taken = taken.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        let r =
            urbanisme.request(PERFORM, json!({ "demand": taken, "action": "take" })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let closed = eventually(Duration::from_secs(30), async || {
            status(&urbanisme, &forgotten).await == "closed"
        })
        .await;
        assert!(closed, "the forgotten demand is closed by its timeout");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            status(&urbanisme, &taken).await,
            "in-progress",
            "a demand that moved is left alone"
        );
        let r = urbanisme.request(DEMAND, json!({ "id": forgotten })).await.unwrap();
        let last = r.data()["demand"]["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["text"], "received → closed (timeout)");
        server.stop().await;
    });
}

#[test]
fn a_timed_jump_due_during_a_crash_fires_once_after_the_restart() {
    run(async {
        let dir = TempDir::new("crash-demand");
        let first = crate::durability::Guichet::start(&dir).await;
        let admin =
            GraphqlClient::new(&first.base).login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
        define(&admin, "permis", 3, json!({})).await;
        let (citizen, _) = GraphqlClient::new(&first.base)
            .register("c@citoyens.test", PASSWORD, "C", "D")
            .await
            .unwrap();
        let r = submit(&citizen, "permis", valid_answers()).await;
        assert!(r.is_ok(), "{}", r.body);
        let demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        first.kill_9();
        tokio::time::sleep(Duration::from_secs(4)).await;

        let second = crate::durability::Guichet::start(&dir).await;
        let admin =
            GraphqlClient::new(&second.base).login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
        let closed =
            eventually(Duration::from_secs(30), async || status(&admin, &demand).await == "closed")
                .await;
        assert!(closed, "the timeout fired after the restart");
        second.kill_9();
        let third = crate::durability::Guichet::start(&dir).await;
        let admin =
            GraphqlClient::new(&third.base).login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let r = admin.request(DEMAND, json!({ "id": demand })).await.unwrap();
        let jumps = r.data()["demand"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["kind"] == "status_changed")
            .count();
        assert_eq!(jumps, 1, "{}", r.body);
        third.kill_9();
    });
}

#[test]
fn drafts_are_autosaved_capped_and_consumed_by_their_submission() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        define(&admin, "permis", 3600, json!({ "draftDays": 30 })).await;
        let (citizen, _) =
            server.client().register("c@citoyens.test", PASSWORD, "C", "D").await.unwrap();
        let (other, _) =
            server.client().register("o@citoyens.test", PASSWORD, "O", "P").await.unwrap();
        let save = "mutation($input: SaveDraftInput!) { saveDraft(input: $input) { id form page answers expiresAt updatedAt } }";
        // Work in progress is kept unchecked, but only with the form's field ids.
        let r = citizen
            .request(
                save,
                json!({ "input": { "form": "permis", "answers": { "zip": "44" }, "page": 1 } }),
            )
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let draft = r.data()["saveDraft"]["id"].as_str().unwrap().to_owned();
        let expires: jiff::Timestamp =
            r.data()["saveDraft"]["expiresAt"].as_str().unwrap().parse().unwrap();
        let updated: jiff::Timestamp =
            r.data()["saveDraft"]["updatedAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(expires.duration_since(updated).as_hours(), 30 * 24);
        let r = citizen
            .request(save, json!({ "input": { "form": "permis", "answers": { "nope": 1 } } }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"));
        let r = citizen.request(save, json!({ "input": { "id": draft, "form": "permis", "answers": { "zip": "44000", "address": "1 place" }, "page": 2 } })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        assert_eq!(r.data()["saveDraft"]["id"], draft.as_str(), "the same draft, saved again");
        // Nobody else sees or overwrites it.
        let r = other
            .request("query($id: ID!) { draft(id: $id) { id } }", json!({ "id": draft }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"));
        let r = other
            .request(save, json!({ "input": { "id": draft, "form": "permis", "answers": {} } }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"));
        // Five per form: the oldest go.
        for i in 0..6 {
            let r = citizen.request(save, json!({ "input": { "form": "permis", "answers": { "address": format!("{i}") } } })).await.unwrap();
            assert!(r.is_ok(), "{}", r.body);
        }
        let r = citizen.request("{ myDrafts { id answers } }", json!({})).await.unwrap();
        let drafts = r.data()["myDrafts"].as_array().unwrap();
        assert_eq!(drafts.len(), 5);
        assert_eq!(drafts[0]["answers"]["address"], "5", "latest first");
        assert!(drafts.iter().all(|d| d["id"] != draft.as_str()), "the first draft was the oldest");
        // Submitting a draft: with its answers completed, it goes in the same transaction.
        let latest = drafts[0]["id"].as_str().unwrap().to_owned();
        let r = citizen
            .request(SUBMIT, json!({ "input": { "form": "permis", "answers": valid_answers(), "draftId": latest } }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let r = citizen.request("{ myDrafts { id } }", json!({})).await.unwrap();
        assert_eq!(r.data()["myDrafts"].as_array().unwrap().len(), 4);
        // A failed submission keeps its draft.
        let second = r.data()["myDrafts"][0]["id"].as_str().unwrap().to_owned();
        let r = citizen
            .request(
                SUBMIT,
                json!({ "input": { "form": "permis", "answers": {}, "draftId": second } }),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "its answers are incomplete");
        let r = citizen
            .request("query($id: ID!) { draft(id: $id) { id } }", json!({ "id": second }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let r = citizen
            .request("mutation($id: ID!) { discardDraft(id: $id) }", json!({ "id": second }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let r = citizen
            .request("mutation($id: ID!) { discardDraft(id: $id) }", json!({ "id": second }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"));
        let r = server.client().request("{ myDrafts { id } }", json!({})).await.unwrap();
        assert_eq!(r.error_code(), Some("UNAUTHENTICATED"));
        server.stop().await;
    });
}

/// Posts `uploadFile` as a GraphQL multipart request (operations, map, the file).
async fn upload(
    client: &GraphqlClient,
    filename: &str,
    content_type: &str,
    content: &[u8],
) -> clients::Response {
    let query =
        "mutation($file: Upload!) { uploadFile(file: $file) { id filename contentType size } }";
    multipart(client, query, json!({ "file": null }), filename, content_type, content).await
}

/// A GraphQL multipart request whose variable `file` is the file.
async fn multipart(
    client: &GraphqlClient,
    query: &str,
    variables: Value,
    filename: &str,
    content_type: &str,
    content: &[u8],
) -> clients::Response {
    let (http, url) = client.raw();
    let boundary = "guichet-test-boundary-7d1f";
    let operations = json!({ "query": query, "variables": variables });
    let mut body = Vec::new();
    let mut part = |headers: String, content: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    };
    part(
        "Content-Disposition: form-data; name=\"operations\"".into(),
        operations.to_string().as_bytes(),
    );
    part("Content-Disposition: form-data; name=\"map\"".into(), br#"{"0": ["variables.file"]}"#);
    part(
        format!(
            "Content-Disposition: form-data; name=\"0\"; filename=\"{filename}\"\r\nContent-Type: {content_type}"
        ),
        content,
    );
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut request = http
        .post(url)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body);
    if let Some(token) = client.token() {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    clients::Response { status, body }
}

async fn download(client: &GraphqlClient, path: &str) -> (u16, Vec<u8>) {
    let (http, url) = client.raw();
    let base = url.trim_end_matches("/graphql");
    let mut request = http.get(format!("{base}{path}"));
    if let Some(token) = client.token() {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

#[test]
fn files_are_uploaded_checked_attached_and_downloaded_alone_or_zipped() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let urbanisme = account(&admin, &server, "u@mairie.test", &["urbanisme"]).await;
        let files = json!({ "fields": [
            { "id": "address", "label": "Address", "type": "STRING", "required": "REQUIRED" },
            { "id": "plan", "label": "Plan", "type": "FILE", "required": "REQUIRED", "maxBytes": 1000, "fileTypes": ["application/pdf"] },
            { "id": "rooms", "label": "Rooms", "type": "BLOCK", "maxItems": 3, "fields": [
                { "id": "photo", "label": "Photo", "type": "FILE", "fileTypes": ["image/*"] } ] }
        ]});
        define(&admin, "permis", 3600, files).await;
        let (citizen, _) =
            server.client().register("c@citoyens.test", PASSWORD, "C", "D").await.unwrap();
        let (other, _) =
            server.client().register("o@citoyens.test", PASSWORD, "O", "P").await.unwrap();

        let pdf = b"%PDF-1.7\nplan of the shed\n%%EOF".to_vec();
        let png = b"\x89PNG\r\n\x1a\nnot really an image but its signature".to_vec();
        let r = upload(&citizen, "plan.pdf", "application/pdf", &pdf).await;
        assert!(r.is_ok(), "{} {}", r.status, r.body);
        let plan = r.data()["uploadFile"]["id"].as_str().unwrap().to_owned();
        assert_eq!(r.data()["uploadFile"]["size"], pdf.len());
        let photo = upload(&citizen, "../../kitchen.png", "image/png", &png).await;
        assert_eq!(photo.data()["uploadFile"]["filename"], "kitchen.png", "no folders in names");
        let photo = photo.data()["uploadFile"]["id"].as_str().unwrap().to_owned();
        // A program dressed as a PDF is refused for what it is.
        let r =
            upload(&citizen, "invoice.pdf", "application/pdf", b"MZ\x90\x00\x03 a program").await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        assert!(r.body.to_string().contains("x-executable"), "{}", r.body);
        let big = upload(
            &citizen,
            "big.pdf",
            "application/pdf",
            &[b"%PDF-".as_slice(), &[b'x'; 2000]].concat(),
        )
        .await;
        let big = big.data()["uploadFile"]["id"].as_str().unwrap().to_owned();
        let others = upload(&other, "theirs.pdf", "application/pdf", &pdf).await;
        let others = others.data()["uploadFile"]["id"].as_str().unwrap().to_owned();

        // Each field's limits, with every refusal at once; nothing is attached on failure.
        let r = submit(
            &citizen,
            "permis",
            json!({ "address": "1 rue", "plan": big, "rooms": [{ "photo": plan }] }),
        )
        .await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let messages = r.body["errors"][0]["extensions"]["fieldMessages"].to_string();
        assert!(
            messages.contains("at most")
                && messages.contains("application/pdf files are not accepted"),
            "{messages}"
        );
        let r = submit(&citizen, "permis", json!({ "address": "1 rue", "plan": others })).await;
        assert!(r.body.to_string().contains("no such upload"), "someone else's upload: {}", r.body);
        let r = submit(
            &citizen,
            "permis",
            json!({ "address": "1 rue", "plan": plan, "rooms": [{ "photo": photo }] }),
        )
        .await;
        assert!(r.is_ok(), "{}", r.body);
        let demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        // One upload, one demand.
        let r = submit(&citizen, "permis", json!({ "address": "2 rue", "plan": plan })).await;
        assert!(r.body.to_string().contains("attached to another demand"), "{}", r.body);

        let listed = urbanisme
            .request("query($id: ID!) { demand(id: $id) { attachments { field filename contentType size url } attachmentsZipUrl } }", json!({ "id": demand }))
            .await
            .unwrap();
        assert!(listed.is_ok(), "{}", listed.body);
        let attachments = listed.data()["demand"]["attachments"].as_array().unwrap().clone();
        let fields: Vec<&str> = attachments.iter().map(|a| a["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["plan", "rooms.0.photo"]);
        let (status, bytes) = download(&urbanisme, attachments[0]["url"].as_str().unwrap()).await;
        assert_eq!((status, bytes), (200, pdf.clone()));
        let zip_url = listed.data()["demand"]["attachmentsZipUrl"].as_str().unwrap().to_owned();
        let (status, zipped) = download(&citizen, &zip_url).await;
        assert_eq!(status, 200);
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
        let mut names: Vec<String> =
            archive.file_names().map(|n| n.unwrap().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["plan/plan.pdf", "rooms.0.photo/kitchen.png"]);
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_name("plan/plan.pdf").unwrap(), &mut content)
            .unwrap();
        assert_eq!(content, pdf);
        // Only those who see the content download it.
        assert_eq!(download(&other, &zip_url).await.0, 404);
        assert_eq!(download(&server.client(), &zip_url).await.0, 401);
        assert_eq!(download(&other, attachments[0]["url"].as_str().unwrap()).await.0, 404);
        server.stop().await;
    });
}

#[test]
fn a_ringing_call_shows_the_callers_accounts_and_demands_to_the_agent_of_the_line() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let agent = account(&admin, &server, "accueil@mairie.test", &["urbanisme"]).await;
        define(&admin, "permis", 3600, json!({})).await;
        let (citizen, citizen_id) = server
            .client()
            .register("camille@citoyens.test", PASSWORD, "Camille", "Martin")
            .await
            .unwrap();
        let r = citizen
            .request("mutation { setPhone(phone: \"06 12 34 56 78\") { id } }", json!({}))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let r = submit(&citizen, "permis", valid_answers()).await;
        let demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();

        let set_line = "mutation($l: String) { setReceptionLine(line: $l) }";
        let r = citizen.request(set_line, json!({ "l": "4021" })).await.unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"));
        let r = agent.request(set_line, json!({ "l": "4021" })).await.unwrap();
        assert_eq!(r.data()["setReceptionLine"], "4021", "{}", r.body);
        let r = agent.request(set_line, json!({ "l": "40 21; drop" })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"));

        let mut ws =
            WsClient::connect(&server.base, WsProtocol::TransportWs, agent.token()).await.unwrap();
        ws.subscribe("calls", "subscription { incomingCalls { caller line accounts { id lastName demands { id digest } } } }", json!({}))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;

        let http = reqwest::Client::new();
        let url = format!("{}/api/reception/calls", server.base);
        let ring = |token: &'static str, body: Value| {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.post(&url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(ring("wrong", json!({ "caller": "0612345678", "callee": "4021" })).await, 401);
        assert_eq!(ring("reception-test-token", json!({ "caller": "0612345678" })).await, 400);
        // Another line's call is not shown here; this line's is, with the caller's demands.
        assert_eq!(
            ring("reception-test-token", json!({ "caller": "0612345678", "callee": "5555" })).await,
            202
        );
        assert_eq!(
            ring(
                "reception-test-token",
                json!({ "caller": "+33 6 12 34 56 78", "callee": "4021" })
            )
            .await,
            202
        );
        let pushed = ws.next_data("calls", Duration::from_secs(10)).await.unwrap();
        let call = &pushed["data"]["incomingCalls"];
        assert_eq!(call["line"], "4021", "{pushed}");
        assert_eq!(call["caller"], "+33612345678");
        assert_eq!(call["accounts"][0]["id"], citizen_id.as_str());
        assert_eq!(call["accounts"][0]["lastName"], "Martin");
        assert_eq!(call["accounts"][0]["demands"][0]["id"], demand.as_str());
        // An unknown number still rings, with nobody found.
        assert_eq!(
            ring("reception-test-token", json!({ "caller": "anonymous", "callee": "4021" })).await,
            202
        );
        let pushed = ws.next_data("calls", Duration::from_secs(10)).await.unwrap();
        assert_eq!(pushed["data"]["incomingCalls"]["accounts"], json!([]));
        // A new line applies at once, on the same subscription.
        let r = agent.request(set_line, json!({ "l": "5555" })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        assert_eq!(
            ring("reception-test-token", json!({ "caller": "0612345678", "callee": "4021" })).await,
            202
        );
        assert_eq!(
            ring("reception-test-token", json!({ "caller": "0612345678", "callee": "5555" })).await,
            202
        );
        let pushed = ws.next_data("calls", Duration::from_secs(10)).await.unwrap();
        assert_eq!(pushed["data"]["incomingCalls"]["line"], "5555", "{pushed}");
        ws.close().await.unwrap();
        server.stop().await;
    });
}

#[test]
fn an_application_bundle_moves_definitions_between_instances_idempotently() {
    run(async {
        let source = TestServer::start().await;
        let admin = source.admin().await;
        define(&admin, "permis", 3600, json!({ "category": "urbanisme" })).await;
        let (citizen, _) =
            source.client().register("c@citoyens.test", PASSWORD, "C", "D").await.unwrap();
        assert_eq!(download(&citizen, "/api/bundle.zip").await.0, 403);
        let (status, bundle) = download(&admin, "/api/bundle.zip").await;
        assert_eq!(status, 200);
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bundle.clone())).unwrap();
        let mut manifest = String::new();
        std::io::Read::read_to_string(&mut zip.by_name("manifest.json").unwrap(), &mut manifest)
            .unwrap();
        let manifest: Value = serde_json::from_str(&manifest).unwrap();
        assert_eq!(manifest["forms"], json!(["permis"]));
        assert_eq!(manifest["roles"], json!(["accueil", "urbanisme"]));
        assert_eq!(manifest["categories"], json!(["urbanisme"]));

        let target = TestServer::start().await;
        let admin = target.admin().await;
        let import = "mutation($file: Upload!, $overwrite: Boolean, $dry: Boolean) {
            importBundle(file: $file, overwrite: $overwrite, dryRun: $dry) { created updated unchanged conflicts { name reason } dryRun } }";
        let send = async |admin: &GraphqlClient, bytes: &[u8], overwrite: bool, dry: bool| {
            let vars = json!({ "file": null, "overwrite": overwrite, "dry": dry });
            multipart(admin, import, vars, "bundle.zip", "application/zip", bytes).await
        };
        let r = send(&admin, &bundle, false, true).await;
        assert!(r.is_ok(), "{}", r.body);
        assert_eq!(r.data()["importBundle"]["created"], json!(["workflow:permis", "form:permis"]));
        let forms = admin.request("{ forms { slug } }", json!({})).await.unwrap();
        assert_eq!(forms.data()["forms"], json!([]), "a dry run writes nothing");
        let r = send(&admin, &bundle, false, false).await;
        assert_eq!(
            r.data()["importBundle"]["created"],
            json!(["workflow:permis", "form:permis"]),
            "{}",
            r.body
        );
        // The imported form works here.
        let (citizen, _) =
            target.client().register("c@citoyens.test", PASSWORD, "C", "D").await.unwrap();
        let r = submit(&citizen, "permis", valid_answers()).await;
        assert!(r.is_ok(), "{}", r.body);
        // Again: nothing changes.
        let r = send(&admin, &bundle, false, false).await;
        assert_eq!(
            r.data()["importBundle"]["unchanged"],
            json!(["workflow:permis", "form:permis"]),
            "{}",
            r.body
        );
        assert_eq!(r.data()["importBundle"]["created"], json!([]));
        // Changed here: a conflict, unless overwriting (a new version).
        let form = admin
            .request("{ form(slug: \"permis\") { id version workflowId } }", json!({}))
            .await
            .unwrap();
        let form_id = form.data()["form"]["id"].as_str().unwrap().to_owned();
        let workflow_id = form.data()["form"]["workflowId"].as_str().unwrap().to_owned();
        let mut changed = form_input("permis", &workflow_id, json!({ "category": "urbanisme" }));
        changed["title"] = json!("Permis de construire");
        let r = admin
            .request("mutation($id: ID!, $input: FormInput!) { updateForm(id: $id, version: 1, input: $input) { version } }", json!({ "id": form_id, "input": changed }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let r = send(&admin, &bundle, false, false).await;
        assert_eq!(r.data()["importBundle"]["conflicts"][0]["name"], "form:permis", "{}", r.body);
        let title =
            admin.request("{ form(slug: \"permis\") { title version } }", json!({})).await.unwrap();
        assert_eq!(title.data()["form"]["title"], "Permis de construire");
        let r = send(&admin, &bundle, true, false).await;
        assert_eq!(r.data()["importBundle"]["updated"], json!(["form:permis"]), "{}", r.body);
        let title =
            admin.request("{ form(slug: \"permis\") { title version } }", json!({})).await.unwrap();
        assert_eq!(title.data()["form"], json!({ "title": "Building permit", "version": 3 }));
        // Not a bundle; not an administrator.
        let r = send(&admin, b"PK\x03\x04 broken", false, false).await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let r = send(&citizen, &bundle, false, false).await;
        assert_eq!(r.error_code(), Some("FORBIDDEN"));
        source.stop().await;
        target.stop().await;
    });
}

#[test]
fn a_workflow_creates_demands_of_other_forms_and_never_in_a_loop() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let urbanisme = account(&admin, &server, "u@mairie.test", &["urbanisme"]).await;
        // The file opened from a permit demand: its own form and workflow.
        let file_workflow = json!({ "slug": "dossier", "name": "Dossier", "functions": ["receiver"],
            "statuses": [{ "id": "open", "name": "Open", "items": [
                { "id": "hello", "type": "HISTORY_MESSAGE", "template": "opened for {{ form_var_address }}" } ] }] });
        let r = admin
            .request(CREATE_WORKFLOW, json!({ "input": file_workflow.clone() }))
            .await
            .unwrap();
        let file_wf = r.data()["createWorkflow"]["id"].as_str().unwrap().to_owned();
        let file_form = json!({ "slug": "dossier", "title": "Dossier", "workflowId": file_wf,
            "functionRoles": [{ "function": "receiver", "role": "urbanisme" }],
            "fields": [
                { "id": "address", "label": "Address", "type": "STRING", "required": "REQUIRED" },
                { "id": "kind", "label": "Kind", "type": "ITEM", "choices": [{ "id": "house", "text": "House" }, { "id": "shed", "text": "Shed" }] },
                { "id": "urgent", "label": "Urgent", "type": "BOOL" }
            ] });
        let r = admin.request(CREATE_FORM, json!({ "input": file_form })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        // The permit workflow opens a file when accepted.
        let mut permit = workflow_input("permis", 3600);
        permit["statuses"][2]["items"].as_array_mut().unwrap().push(json!({
            "id": "open-file", "type": "CREATE_DEMAND", "form": "dossier",
            "values": [{ "field": "address", "template": "{{ form_var_address }}" },
                       { "field": "kind", "template": "{{ form_var_kind_raw }}" },
                       { "field": "urgent", "template": "{% if form_var_urgent %}true{% endif %}" }] }));
        let r = admin.request(CREATE_WORKFLOW, json!({ "input": permit })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let permit_wf = r.data()["createWorkflow"]["id"].as_str().unwrap().to_owned();
        let r = admin
            .request(CREATE_FORM, json!({ "input": form_input("permis", &permit_wf, json!({})) }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);

        // A file workflow that would create permits again is refused, and nothing changes.
        let mut looping = file_workflow.clone();
        looping["statuses"][0]["items"].as_array_mut().unwrap().push(json!({
            "id": "again", "type": "CREATE_DEMAND", "form": "permis", "values": [] }));
        let r = admin
            .request("mutation($id: ID!, $input: WorkflowInput!) { updateWorkflow(id: $id, version: 1, input: $input) { version } }", json!({ "id": file_wf, "input": looping }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        assert!(r.body.to_string().contains("cyclic"), "{}", r.body);

        let (citizen, citizen_id) = server
            .client()
            .register("c@citoyens.test", PASSWORD, "Camille", "Martin")
            .await
            .unwrap();
        let mut answers = valid_answers();
        answers["urgent"] = json!(true);
        let r = submit(&citizen, "permis", answers).await;
        let demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        let r = urbanisme
            .request(PERFORM, json!({ "demand": demand, "action": "accept" }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let r = urbanisme.request(DEMAND, json!({ "id": demand })).await.unwrap();
        let created = r.data()["demand"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["kind"] == "demand_created")
            .cloned()
            .unwrap();
        let child = created["text"].as_str().unwrap().split(' ').nth(1).unwrap().to_owned();
        let r = citizen
            .request(
                "query($id: ID!) { demand(id: $id) { formSlug data history { kind text } } }",
                json!({ "id": child }),
            )
            .await
            .unwrap();
        assert!(r.is_ok(), "the citizen owns the new demand too: {}", r.body);
        let d = &r.data()["demand"];
        assert_eq!(d["formSlug"], "dossier");
        assert_eq!(d["data"]["address"], "3 rue des Lilas");
        assert_eq!(d["data"]["kind"], json!({ "id": "house", "text": "House" }));
        assert_eq!(d["data"]["urgent"], true);
        let texts: Vec<&str> =
            d["history"].as_array().unwrap().iter().map(|h| h["text"].as_str().unwrap()).collect();
        assert!(
            texts.contains(&demand.as_str()) && texts.contains(&"opened for 3 rue des Lilas"),
            "{texts:?}"
        );
        let mine = citizen.request("{ myDemands { formSlug } }", json!({})).await.unwrap();
        assert_eq!(mine.data()["myDemands"].as_array().unwrap().len(), 2);
        let _ = citizen_id;

        // A mapping the new form refuses fails the button, and nothing is written.
        let mut answers = valid_answers();
        answers["address"] = json!("   ");
        answers.as_object_mut().unwrap().remove("address");
        let r = admin.request("mutation($id: ID!, $v: Int!, $input: FormInput!) { updateForm(id: $id, version: $v, input: $input) { version } }", json!({
            "id": r_form_id(&admin, "permis").await, "v": 1,
            "input": form_input("permis", &permit_wf, json!({ "fields": [
                { "id": "address", "label": "Address", "type": "STRING" },
                { "id": "zip", "label": "Zip", "type": "STRING" } ] })) })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let r = submit(&citizen, "permis", json!({ "zip": "44000" })).await;
        let second = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        let r = urbanisme
            .request(PERFORM, json!({ "demand": second, "action": "take" }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let r = urbanisme
            .request(PERFORM, json!({ "demand": second, "action": "accept" }))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        assert!(r.body.to_string().contains("address: required"), "{}", r.body);
        assert_eq!(status(&urbanisme, &second).await, "in-progress", "the button changed nothing");
        let mine = citizen.request("{ myDemands { formSlug } }", json!({})).await.unwrap();
        assert_eq!(mine.data()["myDemands"].as_array().unwrap().len(), 3, "no file was created");
        server.stop().await;
    });
}

async fn r_form_id(admin: &GraphqlClient, slug: &str) -> String {
    let r = admin
        .request("query($s: String!) { form(slug: $s) { id } }", json!({ "s": slug }))
        .await
        .unwrap();
    r.data()["form"]["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_workflow_calls_web_services_once_the_step_is_written() {
    run(async {
        // A web service on loopback that records what it is sent.
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
        let store = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let store = store.clone();
                async move {
                    store.lock().unwrap().push(body);
                    axum::http::StatusCode::CREATED
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let server = TestServer::start().await;
        let admin = server.admin().await;
        let urbanisme = account(&admin, &server, "u@mairie.test", &["urbanisme"]).await;
        let mut wf = workflow_input("permis", 3600);
        wf["statuses"][0]["items"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": "tell-gis", "type": "WEBHOOK", "url": hook }));
        wf["statuses"][2]["items"].as_array_mut().unwrap().push(json!({
            "id": "tell-registry", "type": "WEBHOOK", "url": hook,
            "payload": "{\"address\": \"{{ form_var_address }}\", \"decision\": \"{{ form_var_decision }}\"}" }));
        let mut broken = wf.clone();
        broken["statuses"][0]["items"][4]["url"] = json!("ftp://nowhere");
        let r = admin.request(CREATE_WORKFLOW, json!({ "input": broken })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let r = admin.request(CREATE_WORKFLOW, json!({ "input": wf })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let workflow = r.data()["createWorkflow"]["id"].as_str().unwrap().to_owned();
        let r = admin
            .request(CREATE_FORM, json!({ "input": form_input("permis", &workflow, json!({})) }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);

        let (citizen, _) =
            server.client().register("c@citoyens.test", PASSWORD, "C", "D").await.unwrap();
        let r = submit(&citizen, "permis", valid_answers()).await;
        let demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        assert!(
            eventually(Duration::from_secs(20), async || received.lock().unwrap().len() == 1).await
        );
        let first = received.lock().unwrap()[0].clone();
        assert_eq!(first["id"], demand.as_str());
        assert_eq!(first["form"], "permis");
        assert_eq!(first["data"]["zip"], "44000");

        for action in ["take", "accept"] {
            let r = urbanisme
                .request(PERFORM, json!({ "demand": demand, "action": action }))
                .await
                .unwrap();
            assert!(r.is_ok(), "{}", r.body);
        }
        assert!(
            eventually(Duration::from_secs(20), async || received.lock().unwrap().len() == 2).await
        );
        let second = received.lock().unwrap()[1].clone();
        assert_eq!(second, json!({ "address": "3 rue des Lilas", "decision": "granted to C D" }));
        // Each outcome is in the history.
        let recorded = eventually(Duration::from_secs(20), async || {
            let r = urbanisme.request(DEMAND, json!({ "id": demand })).await.unwrap();
            r.data()["demand"]["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| {
                    h["kind"] == "webhook_called"
                        && h["text"].as_str().unwrap().contains("HTTP 201")
                })
                .count()
                == 2
        })
        .await;
        assert!(recorded);
        server.stop().await;
    });
}

#[test]
fn an_accepted_demand_gets_its_generated_documents_attached_in_html_and_pdf() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let urbanisme = account(&admin, &server, "u@mairie.test", &["urbanisme"]).await;
        let mut wf = workflow_input("permis", 3600);
        wf["statuses"][2]["items"].as_array_mut().unwrap().push(json!({
            "id": "certificate", "type": "DOCUMENT", "field": "certificate",
            "filename": "permis-{{ form_var_zip }}.html",
            "template": "<h1>Permis accordé</h1><p>{{ form_var_address }}</p><p>{{ form_var_decision }}</p>" }));
        wf["statuses"][2]["items"].as_array_mut().unwrap().push(json!({
            "id": "letter", "type": "DOCUMENT", "field": "letter", "format": "PDF",
            "filename": "arrêté {{ form_var_zip }}",
            "template": "# Arrêté de permis de construire\n\nAdresse : {{ form_var_address }}\n\n## Décision\n{{ form_var_decision }} — « accordé »." }));
        let r = admin.request(CREATE_WORKFLOW, json!({ "input": wf })).await.unwrap();
        let workflow = r.data()["createWorkflow"]["id"].as_str().unwrap().to_owned();
        let r = admin
            .request(CREATE_FORM, json!({ "input": form_input("permis", &workflow, json!({})) }))
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let (citizen, _) =
            server.client().register("c@citoyens.test", PASSWORD, "C", "D").await.unwrap();
        let mut answers = valid_answers();
        answers["address"] = json!("3 rue <b>des Lilas</b>");
        let r = submit(&citizen, "permis", answers).await;
        let demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        for action in ["take", "accept"] {
            let r = urbanisme
                .request(PERFORM, json!({ "demand": demand, "action": action }))
                .await
                .unwrap();
            assert!(r.is_ok(), "{}", r.body);
        }
        let r = citizen
            .request("query($id: ID!) { demand(id: $id) { attachments { field filename contentType url } } }", json!({ "id": demand }))
            .await
            .unwrap();
        let attachment = r.data()["demand"]["attachments"][0].clone();
        assert_eq!(attachment["field"], "certificate", "{}", r.body);
        assert_eq!(attachment["filename"], "permis-44000.html");
        assert_eq!(attachment["contentType"], "text/html");
        let (status, body) = download(&citizen, attachment["url"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        let html = String::from_utf8(body).unwrap();
        assert!(
            html.contains("3 rue &lt;b&gt;des Lilas&lt;&#x2f;b&gt;"),
            "values are escaped: {html}"
        );
        assert!(html.contains("granted to C D"), "{html}");

        // The PDF letter: named with its extension, a real PDF whose text is the demand's.
        let letter = r.data()["demand"]["attachments"][1].clone();
        assert_eq!(letter["field"], "letter", "{}", r.body);
        assert_eq!(letter["filename"], "arrêté 44000.pdf");
        assert_eq!(letter["contentType"], "application/pdf");
        let (status, body) = download(&citizen, letter["url"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        let pdf = lopdf::Document::load_mem(&body).expect("a PDF");
        let pages: Vec<u32> = pdf.get_pages().keys().copied().collect();
        let text = pdf.extract_text(&pages).unwrap();
        for expected in [
            "Arrêté de permis de construire",
            "Adresse : 3 rue <b>des Lilas</b>",
            "granted to C D — « accordé ».",
        ] {
            assert!(text.contains(expected), "{expected:?} not in {text:?}");
        }
        server.stop().await;
    });
}

#[test]
fn notifications_land_in_the_inbox_and_go_by_the_preferred_channel() {
    run(async {
        let smtp = SmtpSink::start().await;
        let sms = SmsGateway::start().await;
        let server = TestServer::start_with(|c| {
            c.smtp_url = Some(smtp.url());
            c.sms_url = Some(sms.url.clone());
            c.sms_token = Some(sms.token.clone());
        })
        .await;
        let admin = server.admin().await;
        let _agent = account(&admin, &server, "instructeur@mairie.test", &["urbanisme"]).await;
        define(&admin, "permis", 3600, json!({})).await;
        let (web, _) =
            server.client().register("web@citoyens.test", PASSWORD, "W", "Eb").await.unwrap();
        let (texter, _) =
            server.client().register("sms@citoyens.test", PASSWORD, "S", "Ms").await.unwrap();
        let set = "mutation($c: NotificationChannel!) { setNotificationChannel(channel: $c) }";
        assert!(web.request(set, json!({ "c": "WEB" })).await.unwrap().is_ok());
        assert!(texter.request(set, json!({ "c": "SMS" })).await.unwrap().is_ok());
        assert!(
            texter
                .request("mutation { setPhone(phone: \"06 11 22 33 44\") { id } }", json!({}))
                .await
                .unwrap()
                .is_ok()
        );
        let r = submit(&web, "permis", valid_answers()).await;
        let demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();
        assert!(submit(&texter, "permis", valid_answers()).await.is_ok());

        // The agent (email by default) is mailed twice; the citizens are not mailed at all.
        assert!(eventually(Duration::from_secs(20), async || smtp.messages().len() >= 2).await);
        assert!(eventually(Duration::from_secs(20), async || !sms.received().is_empty()).await);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mails = smtp.messages();
        assert_eq!(mails.len(), 2, "{mails:#?}");
        assert!(mails.iter().all(|m| m.contains("instructeur@mairie.test")));
        assert_eq!(sms.received().len(), 1);
        assert_eq!(sms.received()[0]["to"], json!(["+33611223344"]));
        // Everyone finds it in their inbox.
        let inbox =
            "query($u: Boolean) { myNotifications(unreadOnly: $u) { id title demandId read } }";
        let r = web.request(inbox, json!({ "u": true })).await.unwrap();
        let notes = r.data()["myNotifications"].as_array().unwrap().clone();
        assert_eq!(notes.len(), 1, "{}", r.body);
        assert_eq!(notes[0]["demandId"], demand.as_str());
        assert!(notes[0]["title"].as_str().unwrap().starts_with("Demand received"));
        let r = web
            .request(
                "mutation($ids: [ID!]!) { markNotificationsRead(ids: $ids) }",
                json!({ "ids": [notes[0]["id"]] }),
            )
            .await
            .unwrap();
        assert_eq!(r.data()["markNotificationsRead"], 1);
        let r = texter
            .request(
                "mutation($ids: [ID!]!) { markNotificationsRead(ids: $ids) }",
                json!({ "ids": [notes[0]["id"]] }),
            )
            .await
            .unwrap();
        assert_eq!(r.data()["markNotificationsRead"], 0, "not theirs");
        let r = web.request(inbox, json!({ "u": true })).await.unwrap();
        assert_eq!(r.data()["myNotifications"], json!([]));
        server.stop().await;
    });
}

async fn post_hook(client: &GraphqlClient, demand: &str, hook: &str, body: &str) -> (u16, Value) {
    let (http, url) = client.raw();
    let base = url.trim_end_matches("/graphql");
    let mut request = http
        .post(format!("{base}/api/demands/{demand}/hooks/{hook}"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = client.token() {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn history_of(r: &clients::Response) -> Vec<(String, String)> {
    r.data()["demand"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["kind"].as_str().unwrap().to_owned(), h["text"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn global_actions_run_by_hand_with_input_on_timeouts_and_on_webhooks() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let urbanisme = account(&admin, &server, "u@mairie.test", &["urbanisme"]).await;
        let gis = account(&admin, &server, "gis@sig.test", &["sig"]).await;
        let mut wf = workflow_input("permis", 3600);
        wf["globalActions"] = json!([
            { "id": "ask-info", "label": "Ask for a document", "by": [{ "function": "receiver" }],
              "input": [
                { "id": "missing", "label": "Missing document", "type": "STRING", "required": "REQUIRED" },
                { "id": "delay", "label": "Delay", "type": "ITEM", "required": "REQUIRED",
                  "choices": [{ "id": "7", "text": "one week" }, { "id": "15", "text": "two weeks" }] }
              ],
              "items": [{ "id": "ask-msg", "type": "HISTORY_MESSAGE",
                          "template": "Asked for {{ action_var_missing }} within {{ action_var_delay }} ({{ action_var_delay_raw }} days)" }] },
            { "id": "reminder", "label": "Reminder", "statuses": ["received"],
              "timeout": { "anchor": "STATUS_ARRIVAL", "afterSeconds": 2 },
              "items": [{ "id": "remind-msg", "type": "HISTORY_MESSAGE", "template": "still waiting at {{ form_status }}" }] },
            { "id": "before-visit", "label": "Before the visit",
              "timeout": { "anchor": "FIELD", "anchorField": "visit", "afterSeconds": -3600 },
              "items": [{ "id": "visit-msg", "type": "HISTORY_MESSAGE", "template": "visit at {{ form_var_visit }} is in an hour" }] },
            { "id": "registry", "label": "Registry answer", "statuses": ["received"],
              "webhook": { "name": "registry", "roles": ["sig"] },
              "items": [
                { "id": "keep-ref", "type": "SET_FIELDS", "values": [{ "field": "registry_ref", "template": "{{ webhook.reference }}" }] },
                { "id": "go", "type": "JUMP", "target": "in-progress", "condition": "webhook.complete" }
              ] }
        ]);

        // Broken triggers are refused.
        let mut broken = wf.clone();
        broken["globalActions"][1]["timeout"]["afterSeconds"] = json!(-5);
        let r = admin.request(CREATE_WORKFLOW, json!({ "input": broken })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let mut broken = wf.clone();
        broken["globalActions"][1].as_object_mut().unwrap().remove("timeout");
        let r = admin.request(CREATE_WORKFLOW, json!({ "input": broken })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        assert!(r.body.to_string().contains("nothing triggers it"), "{}", r.body);

        let r = admin.request(CREATE_WORKFLOW, json!({ "input": wf })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let workflow = r.data()["createWorkflow"]["id"].as_str().unwrap().to_owned();
        let mut form = form_input("permis", &workflow, json!({}));
        form["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": "visit", "label": "Visit", "type": "STRING" }));
        let r = admin.request(CREATE_FORM, json!({ "input": form })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);

        let (citizen, _) =
            server.client().register("c@citoyens.test", PASSWORD, "C", "D").await.unwrap();
        // The visit is in an hour and three seconds: "an hour before" falls in three seconds.
        let visit = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3603);
        let mut answers = valid_answers();
        answers["visit"] = json!(visit.to_string());
        let r = submit(&citizen, "permis", answers).await;
        assert!(r.is_ok(), "{}", r.body);
        let demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();

        // Both timeouts fire, once each.
        let fired = eventually(Duration::from_secs(30), async || {
            let r = urbanisme.request(DEMAND, json!({ "id": demand })).await.unwrap();
            let h = history_of(&r);
            h.iter().any(|(_, t)| t == "still waiting at Received")
                && h.iter().any(|(_, t)| t.ends_with("is in an hour"))
        })
        .await;
        assert!(fired, "both timeout actions ran");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let r = urbanisme.request(DEMAND, json!({ "id": demand })).await.unwrap();
        let h = history_of(&r);
        assert_eq!(h.iter().filter(|(k, _)| k == "global_action").count(), 2, "{h:?}");
        assert!(h.contains(&("global_action".into(), "Reminder (timeout)".into())), "{h:?}");

        // By hand, asking for input: offered with its fields, answers checked as a form's.
        let r = urbanisme
            .request(
                "query($id: ID!) { demand(id: $id) { actions { id kind inputFields { id type required } } } }",
                json!({ "id": demand }),
            )
            .await
            .unwrap();
        let ask = r.data()["demand"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == "ask-info")
            .cloned()
            .expect("offered");
        assert_eq!(ask["kind"], "GLOBAL");
        assert_eq!(ask["inputFields"][0]["id"], "missing");
        assert!(
            !r.data()["demand"]["actions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == "reminder"),
            "a timeout action is not offered by hand"
        );
        const PERFORM_INPUT: &str = "mutation($demand: ID!, $action: String!, $input: JSON) {
            performAction(demandId: $demand, actionId: $action, input: $input) { status { id } } }";
        let r = urbanisme
            .request(
                PERFORM_INPUT,
                json!({ "demand": demand, "action": "ask-info", "input": { "delay": "30" } }),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let invalid = r.body["errors"][0]["extensions"]["invalidFields"].clone();
        assert_eq!(invalid, json!(["missing", "delay"]), "{}", r.body);
        let r = citizen
            .request(
                PERFORM_INPUT,
                json!({ "demand": demand, "action": "ask-info",
                "input": { "missing": "plan", "delay": "7" } }),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("FORBIDDEN"), "{}", r.body);
        let r = urbanisme
            .request(
                PERFORM_INPUT,
                json!({ "demand": demand, "action": "ask-info",
                "input": { "missing": "the site plan", "delay": "15" } }),
            )
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let r = urbanisme.request(DEMAND, json!({ "id": demand })).await.unwrap();
        let h = history_of(&r);
        assert!(
            h.contains(&(
                "message".into(),
                "Asked for the site plan within two weeks (15 days)".into()
            )),
            "{h:?}"
        );
        assert!(h.contains(&("global_action".into(), "Ask for a document (by hand)".into())));

        // On a webhook: only the hook's roles, a JSON object, a known hook, where it applies.
        let (code, body) = post_hook(&citizen, &demand, "registry", "{}").await;
        assert_eq!((code, body["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
        let (code, body) = post_hook(&gis, &demand, "registry", "[1, 2]").await;
        assert_eq!((code, body["code"].as_str()), (400, Some("BAD_USER_INPUT")), "{body}");
        let (code, _) = post_hook(&gis, &demand, "no-such-hook", "{}").await;
        assert_eq!(code, 404);
        let (code, _) = post_hook(&server.client(), &demand, "registry", "{}").await;
        assert_eq!(code, 401);
        let (code, body) = post_hook(
            &gis,
            &demand,
            "registry",
            r#"{"reference": "REG-2026-042", "complete": true}"#,
        )
        .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["status"], "in-progress");
        let r = urbanisme.request(DEMAND, json!({ "id": demand })).await.unwrap();
        assert_eq!(r.data()["demand"]["data"]["registry_ref"], "REG-2026-042", "{}", r.body);
        let (code, body) = post_hook(&gis, &demand, "registry", "{}").await;
        assert_eq!((code, body["code"].as_str()), (409, Some("CONFLICT")), "{body}");
        server.stop().await;
    });
}

/// Runs `query` and returns its data, failing the test on an error.
async fn ok(client: &GraphqlClient, query: &str, vars: Value) -> Value {
    let r = client.request(query, vars).await.unwrap();
    assert!(r.is_ok(), "{query}: {}", r.body);
    r.data().clone()
}

const CREATE_DATA_SOURCE: &str =
    "mutation($input: DataSourceInput!) { createDataSource(input: $input) { id slug version } }";

fn card_model(slug: &str, workflow: &str, fields: Value, digest: &str) -> Value {
    json!({ "kind": "CARD_MODEL", "slug": slug, "title": slug, "workflowId": workflow,
            "functionRoles": [{ "function": "keeper", "role": "education" }],
            "backofficeSubmissionRoles": ["education"], "digestTemplate": digest, "fields": fields })
}

#[test]
fn card_models_data_sources_and_agendas_feed_forms_and_travel_in_bundles() {
    run(async {
        let source = TestServer::start().await;
        let admin = source.admin().await;
        let education = account(&admin, &source, "e@mairie.test", &["education"]).await;
        let fiche = ok(
            &admin,
            CREATE_WORKFLOW,
            json!({ "input": {
            "slug": "fiche", "name": "Fiche", "functions": ["keeper"],
            "statuses": [{ "id": "recorded", "name": "Recorded" }] } }),
        )
        .await["createWorkflow"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let schools = card_model(
            "ecoles",
            &fiche,
            json!([{ "id": "name", "label": "Name", "type": "STRING", "required": "REQUIRED" },
                   { "id": "quarter", "label": "Quarter", "type": "ITEM", "required": "REQUIRED", "dataSource": "quartiers" }]),
            "{{ form_var_name }} ({{ form_var_quarter }})",
        );
        // A field naming a data source that does not exist is refused.
        let r = admin.request(CREATE_FORM, json!({ "input": schools })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        assert!(r.body.to_string().contains("no data source"), "{}", r.body);
        let quarters = ok(
            &admin,
            CREATE_DATA_SOURCE,
            json!({ "input": { "slug": "quartiers", "name": "Quartiers",
            "choices": [{ "id": "nord", "text": "Nord" }, { "id": "sud", "text": "Sud" }] } }),
        )
        .await["createDataSource"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        ok(&admin, CREATE_FORM, json!({ "input": schools })).await;
        let families = card_model(
            "familles",
            &fiche,
            json!([{ "id": "child", "label": "Child", "type": "STRING", "required": "REQUIRED" }]),
            "{{ form_var_child }}",
        );
        ok(&admin, CREATE_FORM, json!({ "input": families })).await;
        let badges = card_model(
            "badges",
            &fiche,
            json!([{ "id": "holder", "label": "Holder", "type": "STRING", "required": "REQUIRED" }]),
            "{{ form_var_holder }}",
        );
        ok(&admin, CREATE_FORM, json!({ "input": badges })).await;
        // A form listing schools, prefilled from the family's card, creating a badge card.
        let canteen_wf = ok(
            &admin,
            CREATE_WORKFLOW,
            json!({ "input": {
            "slug": "cantine", "name": "Cantine", "functions": ["receiver"],
            "statuses": [{ "id": "new", "name": "New", "items": [
                { "id": "badge", "type": "CREATE_DEMAND", "form": "badges",
                  "values": [{ "field": "holder", "template": "{{ form_var_child }}" }] }] }] } }),
        )
        .await["createWorkflow"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut canteen = json!({ "slug": "cantine", "title": "Cantine", "workflowId": canteen_wf,
            "functionRoles": [{ "function": "receiver", "role": "education" }],
            "fields": [
                { "id": "school", "label": "School", "type": "ITEM", "required": "REQUIRED", "cardModel": "nope" },
                { "id": "child", "label": "Child", "type": "STRING", "readOnly": true,
                  "prefill": { "card": { "model": "familles", "field": "child" } } }] });
        let r = admin.request(CREATE_FORM, json!({ "input": canteen })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        canteen["fields"][0]["cardModel"] = json!("ecoles");
        ok(&admin, CREATE_FORM, json!({ "input": canteen })).await;

        // Agents keep cards; citizens may not write them.
        let (citizen, citizen_id) = source
            .client()
            .register("c@citoyens.test", PASSWORD, "Camille", "Martin")
            .await
            .unwrap();
        let r = submit(&citizen, "ecoles", json!({ "name": "École X", "quarter": "nord" })).await;
        assert_eq!(r.error_code(), Some("FORBIDDEN"), "{}", r.body);
        let r = submit(&education, "ecoles", json!({ "name": "École Y", "quarter": "est" })).await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        for (name, quarter) in [("École Pasteur", "sud"), ("École Jules Verne", "nord")] {
            let r = submit(&education, "ecoles", json!({ "name": name, "quarter": quarter })).await;
            assert!(r.is_ok(), "{}", r.body);
        }
        let r = education
            .request(
                SUBMIT,
                json!({ "input": { "form": "familles", "channel": "COUNTER",
                "onBehalfOf": citizen_id, "answers": { "child": "Léa" } } }),
            )
            .await
            .unwrap();
        assert!(r.is_ok(), "{}", r.body);

        // The form lists the schools by digest and is prefilled from the family's card.
        let choices = ok(
            &citizen,
            "{ fieldChoices(form: \"cantine\", field: \"school\") { id text } }",
            json!({}),
        )
        .await;
        let texts: Vec<&str> = choices["fieldChoices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["École Jules Verne (Nord)", "École Pasteur (Sud)"]);
        let school = choices["fieldChoices"][0]["id"].as_str().unwrap().to_owned();
        let r = submit(&citizen, "cantine", json!({ "school": school, "child": "forged" })).await;
        assert!(r.is_ok(), "{}", r.body);
        let data = &r.data()["submitDemand"]["demand"]["data"];
        assert_eq!(data["school"], json!({ "id": school, "text": "École Jules Verne (Nord)" }));
        assert_eq!(data["child"], "Léa");
        let r = submit(&citizen, "cantine", json!({ "school": "not-a-card" })).await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);

        // The workflow created a badge card, which the card keepers see and the citizen's
        // listing of schools does not show.
        let cards = "query($m: String!) { cards(model: $m) { digest data } }";
        let badges = ok(&education, cards, json!({ "m": "badges" })).await;
        assert_eq!(badges["cards"].as_array().unwrap().len(), 1, "{badges}");
        assert_eq!(badges["cards"][0]["data"]["holder"], "Léa");
        let seen = ok(&citizen, cards, json!({ "m": "ecoles" })).await;
        assert_eq!(seen["cards"], json!([]));
        let r = citizen.request(cards, json!({ "m": "cantine" })).await.unwrap();
        assert_eq!(r.error_code(), Some("NOT_FOUND"), "a form is not a card model: {}", r.body);
        let models = ok(&admin, "{ forms(kind: CARD_MODEL) { slug kind } }", json!({})).await;
        let slugs: Vec<&str> = models["forms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["slug"].as_str().unwrap())
            .collect();
        assert_eq!(slugs, ["badges", "ecoles", "familles"]);
        let forms = ok(&citizen, "{ forms { slug } }", json!({})).await;
        assert_eq!(forms["forms"], json!([{ "slug": "cantine" }]));

        // Data sources keep their versions; forms follow the current one.
        let update = "mutation($id: ID!, $v: Int!, $input: DataSourceInput!) { updateDataSource(id: $id, version: $v, input: $input) { version choices { id } } }";
        let three = json!({ "slug": "quartiers", "name": "Quartiers", "choices": [
            { "id": "nord", "text": "Nord" }, { "id": "sud", "text": "Sud" }, { "id": "est", "text": "Est" }] });
        let r = ok(&admin, update, json!({ "id": quarters, "v": 1, "input": three })).await;
        assert_eq!(r["updateDataSource"]["version"], 2);
        let r =
            admin.request(update, json!({ "id": quarters, "v": 1, "input": three })).await.unwrap();
        assert_eq!(r.error_code(), Some("CONFLICT"), "{}", r.body);
        let r =
            submit(&education, "ecoles", json!({ "name": "École Est", "quarter": "est" })).await;
        assert!(r.is_ok(), "the new choice is offered at once: {}", r.body);
        let versions = ok(
            &admin,
            "query($id: ID!) { definitionVersions(id: $id) { version } }",
            json!({ "id": quarters }),
        )
        .await;
        assert_eq!(versions["definitionVersions"].as_array().unwrap().len(), 2);
        let r = ok(&admin, "mutation($id: ID!) { restoreDataSource(id: $id, version: 1) { version choices { id } } }", json!({ "id": quarters })).await;
        assert_eq!(
            r["restoreDataSource"],
            json!({ "version": 3, "choices": [{ "id": "nord" }, { "id": "sud" }] })
        );

        // Agendas travel too: settings, meeting types, desks and their opening periods.
        let passports = ok(
            &admin,
            "mutation($input: CreateAgendaInput!) { createAgenda(input: $input) { id } }",
            json!({ "input": { "slug": "passeports", "label": "Passeports", "kind": "MEETINGS",
                "meetings": { "minimalBookingDelayDays": 0, "closedOnPublicHolidays": false } } }),
        )
        .await["createAgenda"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let desk = ok(
            &admin,
            "mutation($input: CreateDeskInput!) { createDesk(input: $input) { id } }",
            json!({ "input": { "agendaId": passports, "label": "Guichet 1" } }),
        )
        .await["createDesk"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        ok(
            &admin,
            "mutation($input: AddOpeningPeriodsInput!) { addOpeningPeriods(input: $input) { id } }",
            json!({ "input": { "agendaId": passports, "deskIds": [desk], "weekday": "TUESDAY",
                "weeksOfMonth": [2, -1], "startTime": "09:00", "endTime": "12:30" } }),
        )
        .await;
        ok(&admin, "mutation($input: CreateMeetingTypeInput!) { createMeetingType(input: $input) { id } }",
            json!({ "input": { "agendaId": passports, "label": "Dépôt de dossier", "durationMinutes": 20 } }))
        .await;
        ok(&admin, "mutation($input: CreateAgendaInput!) { createAgenda(input: $input) { id } }",
            json!({ "input": { "slug": "ateliers", "label": "Ateliers", "kind": "EVENTS",
                "fillNotifications": { "thresholds": [50, 100], "emails": ["admin@mairie.test"] } } }))
        .await;

        // Everything travels in the bundle, and imports as a whole or not at all.
        let (status, bundle) = download(&admin, "/api/bundle.zip").await;
        assert_eq!(status, 200);
        let target = TestServer::start().await;
        let target_admin = target.admin().await;
        let import = "mutation($file: Upload!) { importBundle(file: $file) { created unchanged conflicts { name } } }";
        // The same bundle with the canteen form pointing at a card model nobody has.
        let broken = {
            let mut from = zip::ZipArchive::new(std::io::Cursor::new(bundle.clone())).unwrap();
            let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for i in 0..from.len() {
                let mut entry = from.by_index(i).unwrap();
                let name = entry.name().unwrap().to_string();
                let mut content = String::new();
                std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
                if name == "forms/cantine.json" {
                    content = content.replace("\"ecoles\"", "\"lycees\"");
                }
                out.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
                std::io::Write::write_all(&mut out, content.as_bytes()).unwrap();
            }
            out.finish().unwrap().into_inner()
        };
        let r = multipart(
            &target_admin,
            import,
            json!({ "file": null }),
            "b.zip",
            "application/zip",
            &broken,
        )
        .await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        assert!(r.body.to_string().contains("lycees"), "{}", r.body);
        let nothing = ok(
            &target_admin,
            "{ forms(kind: CARD_MODEL) { slug } dataSources { slug } workflows { slug } }",
            json!({}),
        )
        .await;
        assert_eq!(
            nothing,
            json!({ "forms": [], "dataSources": [], "workflows": [] }),
            "nothing half-imported"
        );
        let r = multipart(
            &target_admin,
            import,
            json!({ "file": null }),
            "b.zip",
            "application/zip",
            &bundle,
        )
        .await;
        assert!(r.is_ok(), "{}", r.body);
        let mut created: Vec<String> =
            serde_json::from_value(r.data()["importBundle"]["created"].clone()).unwrap();
        created.sort();
        assert_eq!(
            created,
            [
                "agenda:ateliers",
                "agenda:passeports",
                "data-source:quartiers",
                "form:badges",
                "form:cantine",
                "form:ecoles",
                "form:familles",
                "workflow:cantine",
                "workflow:fiche"
            ]
        );
        let r = multipart(
            &target_admin,
            import,
            json!({ "file": null }),
            "b.zip",
            "application/zip",
            &bundle,
        )
        .await;
        assert_eq!(
            r.data()["importBundle"]["unchanged"].as_array().unwrap().len(),
            9,
            "{}",
            r.body
        );
        let agenda = "{ agenda(slug: \"passeports\") { id kind label meetingTypes { slug durationMinutes } openingPeriods { startTime endTime } } }";
        let mut here = ok(&target_admin, agenda, json!({})).await;
        let mut there = ok(&admin, agenda, json!({})).await;
        let target_passports = here["agenda"]["id"].take();
        there["agenda"]["id"].take();
        assert_eq!(here, there, "the agenda is the same there");
        assert_eq!(here["agenda"]["meetingTypes"][0]["durationMinutes"], 20);
        assert_eq!(here["agenda"]["openingPeriods"].as_array().unwrap().len(), 1);
        // An agenda changed here is a conflict, never replaced.
        ok(&target_admin, "mutation($input: CreateMeetingTypeInput!) { createMeetingType(input: $input) { id } }",
            json!({ "input": { "agendaId": target_passports, "label": "Retrait", "durationMinutes": 10 } }))
        .await;
        let overwrite = "mutation($file: Upload!) { importBundle(file: $file, overwrite: true) { conflicts { name } } }";
        let r = multipart(
            &target_admin,
            overwrite,
            json!({ "file": null }),
            "b.zip",
            "application/zip",
            &bundle,
        )
        .await;
        assert_eq!(
            r.data()["importBundle"]["conflicts"],
            json!([{ "name": "agenda:passeports" }]),
            "{}",
            r.body
        );
        let imported =
            ok(&target_admin, "{ dataSources { slug version choices { id } } }", json!({})).await;
        assert_eq!(
            imported["dataSources"][0]["choices"],
            json!([{ "id": "nord" }, { "id": "sud" }])
        );
        source.stop().await;
        target.stop().await;
    });
}

const ACT: &str = "mutation($demand: ID!, $action: String!, $comment: String, $input: JSON) {
    performAction(demandId: $demand, actionId: $action, comment: $comment, input: $input) {
        status { id } data digest } }";
const EDITED: &str = "query($id: ID!) { demand(id: $id) { status { id } data digest
    history { kind text status } actions { id kind inputFields { id } }
    attachments { field filename url } } }";

#[test]
fn demands_are_edited_and_given_files_through_their_actors_with_every_change_in_the_history() {
    run(async {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let urbanisme = account(&admin, &server, "u@mairie.test", &["urbanisme"]).await;
        let mut wf = workflow_input("permis", 3600);
        wf["statuses"][0]["items"].as_array_mut().unwrap().push(json!(
            { "id": "correct", "type": "EDIT", "label": "Correct the file", "by": [{ "function": "receiver" }],
              "fields": ["address", "zip", "plan", "rooms"], "target": "checked" }));
        wf["statuses"].as_array_mut().unwrap().push(json!(
            { "id": "checked", "name": "Checked", "items": [
                { "id": "sign", "type": "ATTACH", "label": "Send the signed form", "by": [{ "submitter": true }],
                  "fileTypes": ["application/pdf"], "maxBytes": 4096 },
                { "id": "fix-mine", "type": "EDIT", "label": "Fix my email", "by": [{ "submitter": true }],
                  "fields": ["email"] } ] }));
        // An edit form leading nowhere is refused like any other jump.
        let mut broken = wf.clone();
        broken["statuses"][0]["items"][4]["target"] = json!("nowhere");
        let r = admin.request(CREATE_WORKFLOW, json!({ "input": broken })).await.unwrap();
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let r = admin.request(CREATE_WORKFLOW, json!({ "input": wf })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let workflow = r.data()["createWorkflow"]["id"].as_str().unwrap().to_owned();
        let mut form = form_input("permis", &workflow, json!({}));
        form["fields"].as_array_mut().unwrap().extend([
            json!({ "id": "plan", "label": "Plan", "type": "FILE", "fileTypes": ["application/pdf"] }),
            json!({ "id": "rooms", "label": "Rooms", "type": "BLOCK", "maxItems": 3, "fields": [
                { "id": "photo", "label": "Photo", "type": "FILE", "fileTypes": ["image/*"] },
                { "id": "use", "label": "Use", "type": "STRING" } ] }),
        ]);
        let r = admin.request(CREATE_FORM, json!({ "input": form })).await.unwrap();
        assert!(r.is_ok(), "{}", r.body);
        let (citizen, _) = server
            .client()
            .register("c@citoyens.test", PASSWORD, "Camille", "Martin")
            .await
            .unwrap();

        let pdf = b"%PDF-1.7\nfirst plan\n%%EOF".to_vec();
        let png = b"\x89PNG\r\n\x1a\na kitchen".to_vec();
        let id_of =
            |r: clients::Response| r.data()["uploadFile"]["id"].as_str().unwrap().to_owned();
        let plan = id_of(upload(&citizen, "plan.pdf", "application/pdf", &pdf).await);
        let photo = id_of(upload(&citizen, "kitchen.png", "image/png", &png).await);
        let mut answers = valid_answers();
        answers["plan"] = json!(plan);
        answers["rooms"] = json!([{ "photo": photo, "use": "kitchen" }]);
        let r = submit(&citizen, "permis", answers).await;
        assert!(r.is_ok(), "{}", r.body);
        let demand = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap().to_owned();

        let read = |client: &GraphqlClient| {
            let client = client.clone();
            let demand = demand.clone();
            async move {
                let r = client.request(EDITED, json!({ "id": demand })).await.unwrap();
                assert!(r.is_ok(), "{}", r.body);
                r.data()["demand"].clone()
            }
        };
        let before = read(&urbanisme).await;
        let edit = before["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == "correct")
            .cloned()
            .expect("the receiver is offered the edit form");
        assert_eq!(edit["kind"], "EDIT");
        let open: Vec<&str> = edit["inputFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap())
            .collect();
        assert_eq!(open, ["address", "zip", "plan", "rooms"], "the fields it opens");
        assert!(
            read(&citizen).await["actions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["id"] != "correct")
        );
        let act = |client: &GraphqlClient, action: &str, input: Value, comment: Option<&str>| {
            let client = client.clone();
            let vars =
                json!({ "demand": demand, "action": action, "input": input, "comment": comment });
            async move { client.request(ACT, vars).await.unwrap() }
        };

        // Bad answers are refused field by field, fields it does not open too; nothing changes.
        let r = act(&urbanisme, "correct", json!({ "zip": "4400", "address": "" }), None).await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let invalid = r.body["errors"][0]["extensions"]["invalidFields"].to_string();
        assert!(invalid.contains("zip") && invalid.contains("address"), "{invalid}");
        let r = act(&urbanisme, "correct", json!({ "kind": "shed" }), None).await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        assert!(r.body.to_string().contains("\\\"kind\\\" cannot be changed"), "{}", r.body);
        let r = act(&citizen, "correct", json!({ "zip": "44100" }), None).await;
        assert!(r.error_code().is_some(), "the submitter may not use it: {}", r.body);
        assert_eq!(read(&urbanisme).await["history"], before["history"]);

        // A new plan uploaded by the agent, the rooms given back as read: the plan and the
        // postcode change, the photo stays, the demand moves on.
        let new_plan = b"%PDF-1.7\nsecond plan\n%%EOF".to_vec();
        let replaced = id_of(upload(&urbanisme, "plan-v2.pdf", "application/pdf", &new_plan).await);
        let r = act(
            &urbanisme,
            "correct",
            json!({ "zip": "44100", "plan": replaced, "rooms": before["data"]["rooms"] }),
            None,
        )
        .await;
        assert!(r.is_ok(), "{}", r.body);
        let after = read(&urbanisme).await;
        assert_eq!(after["status"]["id"], "checked");
        assert_eq!(after["data"]["zip"], "44100");
        assert_eq!(after["data"]["kind"], before["data"]["kind"], "untouched answers stay");
        assert_eq!(after["data"]["rooms"], before["data"]["rooms"]);
        let history: Vec<(String, String)> = after["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (h["kind"].as_str().unwrap().to_owned(), h["text"].as_str().unwrap().to_owned())
            })
            .collect();
        assert!(history.contains(&("edited".into(), "zip, plan".into())), "{history:?}");
        let files: Vec<(&str, &str)> = after["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["field"].as_str().unwrap(), a["filename"].as_str().unwrap()))
            .collect();
        assert_eq!(files, [("plan", "plan-v2.pdf"), ("rooms.0.photo", "kitchen.png")]);
        let (status, bytes) =
            download(&citizen, after["attachments"][0]["url"].as_str().unwrap()).await;
        assert_eq!((status, bytes), (200, new_plan));
        // The agent's upload now belongs to the demand: it cannot go to another one.
        let r = submit(&urbanisme, "permis", json!({ "plan": replaced })).await;
        assert!(r.body.to_string().contains("attached to another demand"), "{}", r.body);

        // The submitter sends a signed form in the next status: type and size are checked,
        // one upload is attached once, the comment goes with it.
        let signed = id_of(upload(&citizen, "signed.pdf", "application/pdf", &pdf).await);
        let image = id_of(upload(&citizen, "signed.png", "image/png", &png).await);
        let r = act(&citizen, "sign", json!({ "upload": image }), None).await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let r = act(&citizen, "sign", json!({ "upload": signed }), Some("signed today")).await;
        assert!(r.is_ok(), "{}", r.body);
        let r = act(&citizen, "sign", json!({ "upload": signed }), None).await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        assert!(r.body.to_string().contains("attached to a demand already"), "{}", r.body);
        let last = read(&urbanisme).await;
        let kinds: Vec<&str> = last["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds[kinds.len() - 2..], ["comment", "file_attached"]);
        assert_eq!(last["attachments"].as_array().unwrap().len(), 3);

        // The submitter fixes the one field opened to them, with front-office requirements.
        let r = act(&citizen, "fix-mine", json!({ "email": "not an address" }), None).await;
        assert_eq!(r.error_code(), Some("BAD_USER_INPUT"), "{}", r.body);
        let r = act(&citizen, "fix-mine", json!({ "email": null }), None).await;
        assert_eq!(
            r.error_code(),
            Some("BAD_USER_INPUT"),
            "required on the front office: {}",
            r.body
        );
        let r = act(&citizen, "fix-mine", json!({ "email": "camille@example.net" }), None).await;
        assert!(r.is_ok(), "{}", r.body);
        assert_eq!(r.data()["performAction"]["data"]["email"], "camille@example.net");
        assert_eq!(r.data()["performAction"]["status"]["id"], "checked", "no target: it stays");
        server.stop().await;
    });
}
