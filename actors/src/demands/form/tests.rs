use serde_json::{Map, Value, json};

use super::*;

fn field(id: &str, kind: FieldKind) -> Field {
    Field {
        id: id.into(),
        label: id.into(),
        hint: String::new(),
        kind,
        required: Required::Optional,
        condition: None,
        validation: None,
        prefill: None,
        read_only: false,
        in_listing: false,
    }
}

fn required(mut f: Field) -> Field {
    f.required = Required::Always;
    f
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn form(fields: Vec<Field>) -> FormDef {
    FormDef {
        id: FormId::new(),
        kind: FormKind::Form,
        slug: "noise".into(),
        title: "Noise complaint".into(),
        description: String::new(),
        category: None,
        workflow_id: WorkflowId::new(),
        function_roles: BTreeMap::new(),
        summary_roles: vec![],
        backoffice_submission_roles: vec![],
        allow_anonymous: false,
        fields,
        digest_template: None,
        draft_days: DEFAULT_DRAFT_DAYS,
        version: 1,
    }
}

fn kinds() -> Vec<Field> {
    let choices = Choices::Static {
        items: vec![
            Choice { id: "day".into(), text: "Daytime".into(), disabled: false },
            Choice { id: "night".into(), text: "At night".into(), disabled: false },
            Choice { id: "gone".into(), text: "Withdrawn".into(), disabled: true },
        ],
    };
    vec![
        required(field("name", FieldKind::String)),
        field("email", FieldKind::Email),
        field("phone", FieldKind::Phone),
        field("age", FieldKind::Number { min: Some(0.0), max: Some(130.0) }),
        field("on", FieldKind::Date),
        field("when", FieldKind::Item { choices: choices.clone() }),
        field("also", FieldKind::Items { choices, min: None, max: Some(2) }),
        field("title", FieldKind::Title),
    ]
}

#[test]
fn answers_are_normalised_and_stored_by_field() {
    let input = obj(json!({
        "name": "  Camille ", "email": "camille@example.org", "phone": "06 12 34 56 78",
        "age": "41,5", "on": "2026-12-04", "when": "night", "also": ["day", "night", "day"]
    }));
    let data = validate(&kinds(), &input, &SubmissionContext::default(), &Map::new()).unwrap();
    assert_eq!(data["name"], "Camille");
    assert_eq!(data["phone"], "+33612345678");
    assert_eq!(data["age"], 41.5);
    assert_eq!(data["when"], json!({"id": "night", "text": "At night"}));
    assert_eq!(data["also"].as_array().unwrap().len(), 2, "duplicates count once");
    assert!(!data.contains_key("title"));
}

#[test]
fn every_bad_answer_is_reported_at_once() {
    let input = obj(json!({
        "email": "not-an-address", "phone": "12", "age": 200, "on": "04/12/2026",
        "when": "gone", "also": ["day", "night", "nope"], "extra": 1
    }));
    let errors =
        validate(&kinds(), &input, &SubmissionContext::default(), &Map::new()).unwrap_err().0;
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["name", "email", "phone", "age", "on", "when", "also", "extra"]);
    assert_eq!(errors[0].message, "required");
}

#[test]
fn regex_validation_uses_the_custom_message_on_the_whole_answer() {
    let mut f = field("zip", FieldKind::String);
    f.validation = Some(Validation { regex: "[0-9]{5}".into(), message: "five digits".into() });
    let ctx = SubmissionContext::default();
    let fields = vec![f];
    assert!(validate(&fields, &obj(json!({"zip": "75001"})), &ctx, &Map::new()).is_ok());
    let e = validate(&fields, &obj(json!({"zip": "750012"})), &ctx, &Map::new()).unwrap_err();
    assert_eq!(e.0[0].message, "five digits");
}

#[test]
fn hidden_fields_are_dropped_and_not_required() {
    let kind = field(
        "kind",
        FieldKind::Item {
            choices: Choices::Static {
                items: vec![
                    Choice { id: "noise".into(), text: "Noise".into(), disabled: false },
                    Choice { id: "other".into(), text: "Other".into(), disabled: false },
                ],
            },
        },
    );
    let mut detail = required(field("detail", FieldKind::Text));
    detail.condition = Some("form_var_kind_raw == 'other'".into());
    let fields = vec![kind, detail];
    let ctx = SubmissionContext::default();
    let data = validate(&fields, &obj(json!({"kind": "noise", "detail": "x"})), &ctx, &Map::new())
        .unwrap();
    assert!(!data.contains_key("detail"), "the hidden answer is dropped");
    let e = validate(&fields, &obj(json!({"kind": "other"})), &ctx, &Map::new()).unwrap_err();
    assert_eq!(e.0[0].field, "detail");
}

#[test]
fn front_office_requirements_are_lifted_for_agents() {
    let mut f = field("email", FieldKind::Email);
    f.required = Required::FrontOffice;
    let fields = vec![f];
    let front = SubmissionContext::default();
    let back = SubmissionContext { back_office: true, ..Default::default() };
    assert!(validate(&fields, &Map::new(), &front, &Map::new()).is_err());
    assert!(validate(&fields, &Map::new(), &back, &Map::new()).is_ok());
}

#[test]
fn read_only_fields_take_the_profile_not_the_input() {
    let mut f = required(field("last_name", FieldKind::String));
    f.prefill = Some(Prefill::User(ProfileField::LastName));
    f.read_only = true;
    let ctx = SubmissionContext {
        profile: Some(Profile { last_name: "Martin".into(), ..Default::default() }),
        ..Default::default()
    };
    let data = validate(&[f], &obj(json!({"last_name": "Forged"})), &ctx, &Map::new()).unwrap();
    assert_eq!(data["last_name"], "Martin");
}

#[test]
fn computed_fields_and_blocks() {
    let child = vec![
        required(field("child_name", FieldKind::String)),
        field("child_age", FieldKind::Number { min: Some(0.0), max: Some(18.0) }),
    ];
    let fields = vec![
        required(field("name", FieldKind::String)),
        field("children", FieldKind::Block { fields: child, max_items: 3 }),
        field(
            "summary",
            FieldKind::Computed {
                template: "{{ form_var_name }}: {{ form_var_children|length }}".into(),
            },
        ),
    ];
    let ctx = SubmissionContext::default();
    let input = obj(
        json!({"name": "Ana", "children": [{"child_name": "Léo", "child_age": 4}, {"child_name": "Zoé"}]}),
    );
    let data = validate(&fields, &input, &ctx, &Map::new()).unwrap();
    assert_eq!(data["children"].as_array().unwrap().len(), 2);
    assert_eq!(data["summary"], "Ana: 2");
    let bad = obj(json!({"name": "Ana", "children": [{"child_age": 40, "x": 1}]}));
    let e = validate(&fields, &bad, &ctx, &Map::new()).unwrap_err().0;
    let paths: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(paths, ["children.0.x", "children.0.child_name", "children.0.child_age"]);
    let too_many = obj(
        json!({"name": "Ana", "children": [{"child_name": "a"}, {"child_name": "b"}, {"child_name": "c"}, {"child_name": "d"}]}),
    );
    assert!(validate(&fields, &too_many, &ctx, &Map::new()).is_err());
}

#[test]
fn definitions_are_checked_before_saving() {
    assert!(form(kinds()).check(&[]).is_ok());
    let mut twice = kinds();
    twice.push(field("name", FieldKind::Text));
    assert!(form(twice).check(&[]).unwrap_err().0.contains("twice"));
    let mut bad_regex = field("zip", FieldKind::String);
    bad_regex.validation = Some(Validation { regex: "([0-9]".into(), message: "x".into() });
    assert!(form(vec![bad_regex]).check(&[]).unwrap_err().0.contains("regular expression"));
    let computed = field("c", FieldKind::Computed { template: "{% if %}".into() });
    assert!(form(vec![computed]).check(&[]).is_err());
    let mut f = form(kinds());
    f.digest_template = Some("{{ form_var_name ".into());
    assert!(f.check(&[]).unwrap_err().0.contains("digest"));
    let mut f = form(kinds());
    f.function_roles.insert("receiver".into(), "etat-civil".into());
    assert!(f.check(&[]).is_err());
    assert!(f.check(&["receiver".into()]).is_ok());
    let empty_list = field("k", FieldKind::Item { choices: Choices::Static { items: vec![] } });
    assert!(form(vec![empty_list]).check(&[]).is_err());
    let mut f = form(vec![]);
    f.slug = "Bad Slug".into();
    assert!(f.check(&[]).is_err());
}
