//! The demo town of `guichet serve --demo`: a swimming pool (with a weekly aquagym season), a
//! library and a vaccination centre with upcoming events, the town hall's passport desks (a
//! meetings agenda), a street-report form with two reports, an agent, a few citizens and their
//! bookings. Loading twice changes nothing.

use actors::Services;
use actors::access::Roles;
use actors::account::{AccountError, NewAccount};
use actors::agenda::model::{
    AgendaError, AgendaKind, BookRequest, FillNotifications, NewAgenda, NewEvent,
};
use actors::agenda::recurrence::NewRecurrence;
use actors::agenda::rules::{CitizenNotifications, EventRules};
use actors::meetings::model::{
    MeetingsRules, NewException, NewMeetingType, NewPeriods, PeriodRule, SlotRequest,
};
use anyhow::Context as _;
use jiff::civil::{Date, Time, Weekday};
use jiff::{Timestamp, ToSpan};

/// Demo accounts share this password; the README shows it.
pub const DEMO_PASSWORD: &str = "guichet-demo";

struct DemoAgenda {
    slug: &'static str,
    label: &'static str,
    services: &'static [&'static str],
    category: &'static str,
    events: &'static [(&'static str, u32, i8, i64, i64)],
}

/// (label, days from today, hour, places, waiting-list places)
const AGENDAS: &[DemoAgenda] = &[
    DemoAgenda {
        slug: "piscine-municipale",
        label: "Piscine municipale",
        services: &["sport"],
        category: "sport",
        events: &[("Bébés nageurs", 5, 9, 8, 4), ("Stage natation enfants", 14, 14, 12, 0)],
    },
    DemoAgenda {
        slug: "mediatheque",
        label: "Médiathèque Jules Verne",
        services: &["culture"],
        category: "culture",
        events: &[("Heure du conte", 2, 16, 15, 5), ("Atelier numérique seniors", 7, 10, 6, 3)],
    },
    DemoAgenda {
        slug: "centre-vaccination",
        label: "Centre de vaccination",
        services: &["sante"],
        category: "sante",
        events: &[("Vaccination grippe", 4, 9, 30, 10), ("Vaccination grippe", 11, 9, 30, 10)],
    },
];

const CITIZENS: &[(&str, &str, &str)] = &[
    ("camille.martin@demo.guichet.localhost", "Camille", "Martin"),
    ("louis.bernard@demo.guichet.localhost", "Louis", "Bernard"),
    ("chloe.dubois@demo.guichet.localhost", "Chloé", "Dubois"),
    ("hugo.thomas@demo.guichet.localhost", "Hugo", "Thomas"),
    ("lea.robert@demo.guichet.localhost", "Léa", "Robert"),
];

async fn account(
    services: &Services,
    email: &str,
    first: &str,
    last: &str,
    roles: Roles,
) -> anyhow::Result<()> {
    let input = NewAccount {
        email: email.into(),
        password: DEMO_PASSWORD.into(),
        first_name: first.into(),
        last_name: last.into(),
    };
    match services.accounts.register(input, roles).await {
        Ok(_) | Err(AccountError::EmailTaken) => Ok(()),
        Err(e) => Err(e).context("demo account"),
    }
}

/// Loads the demo town.
pub async fn load(services: &Services) -> anyhow::Result<()> {
    account(
        services,
        "agent@demo.guichet.localhost",
        "Agnès",
        "Accueil",
        Roles {
            admin: false,
            agent_roles: vec![
                "sport".into(),
                "culture".into(),
                "sante".into(),
                "etat-civil".into(),
                "voirie".into(),
            ],
        },
    )
    .await?;
    for (email, first, last) in CITIZENS {
        account(services, email, first, last, Roles::citizen()).await?;
    }
    let mut citizens = Vec::new();
    for (email, ..) in CITIZENS {
        citizens
            .push(services.accounts.verify(email, DEMO_PASSWORD).await.context("demo citizen")?.id);
    }
    let paris = actors::time::paris();
    let today: Date = Timestamp::now().to_zoned(paris.clone()).date();
    for demo in AGENDAS {
        let created = services
            .agendas
            .create_agenda(NewAgenda {
                slug: demo.slug.into(),
                label: demo.label.into(),
                kind: AgendaKind::Events,
                fill_notifications: FillNotifications {
                    thresholds: vec![80, 100],
                    emails: vec!["admin@guichet.localhost".into()],
                },
                auto_promote_waiting_list: true,
                services: demo.services.iter().map(|s| (*s).to_owned()).collect(),
                meetings: None,
                events: Some(EventRules {
                    cancellation_deadline_hours: Some(24),
                    citizen_notifications: CitizenNotifications {
                        on_booking: true,
                        on_cancellation: true,
                        reminder_hours: None,
                    },
                    absence_reasons: vec!["Malade".into(), "Empêchement".into()],
                    ..EventRules::default()
                }),
                category: Some(demo.category.into()),
                resources: vec![],
            })
            .await;
        let agenda = match created {
            Ok(a) => a,
            // Already loaded.
            Err(AgendaError::SlugTaken(_)) => continue,
            Err(e) => return Err(e).context("demo agenda"),
        };
        for (i, (label, days, hour, places, waiting)) in demo.events.iter().enumerate() {
            let day = today.checked_add(i64::from(*days).days()).context("demo date")?;
            let starts_at =
                day.to_datetime(Time::new(*hour, 0, 0, 0)?).to_zoned(paris.clone())?.timestamp();
            let event = services
                .agendas
                .add_event(
                    agenda.id,
                    NewEvent {
                        label: (*label).into(),
                        starts_at,
                        ends_at: Some(starts_at + 1.hour()),
                        places: *places,
                        waiting_list_places: *waiting,
                        description: format!("{label}, {}.", demo.label),
                        url: None,
                        publication_at: None,
                        resources: vec![],
                    },
                )
                .await
                .context("demo event")?;
            // A few bookings so that fill levels show something.
            for who in citizens.iter().take(i + 2) {
                let request = BookRequest {
                    event_ids: vec![event.id],
                    account_id: *who,
                    booked_by: *who,
                    by_agent: false,
                    skip_already_booked: false,
                };
                services.agendas.book(request).await.context("demo booking")?;
            }
        }
        if demo.slug == "piscine-municipale" {
            load_aquagym_season(services, agenda.id, &citizens, today).await?;
        }
    }
    load_town_hall(services, &citizens, today).await?;
    load_street_reports(services).await?;
    tracing::info!("demo town loaded; demo accounts use the password {DEMO_PASSWORD:?}");
    Ok(())
}

/// Aquagym every Monday at 10:00 for sixteen weeks, two citizens booked for the whole season.
async fn load_aquagym_season(
    services: &Services,
    agenda: actors::ids::AgendaId,
    citizens: &[actors::ids::AccountId],
    today: Date,
) -> anyhow::Result<()> {
    let first_day = today.tomorrow().context("demo date")?;
    let (rule, _) = services
        .agendas
        .add_recurrence(
            agenda,
            NewRecurrence {
                label: "Aquagym".into(),
                weekdays: vec![Weekday::Monday],
                interval_weeks: 1,
                start_time: Time::new(10, 0, 0, 0)?,
                duration_minutes: Some(45),
                first_day,
                last_day: Some(first_day.checked_add(16.weeks()).context("demo date")?),
                places: 20,
                waiting_list_places: 5,
                description: "Aquagym, Piscine municipale.".into(),
                url: None,
                publication_at: None,
                resources: vec![],
            },
        )
        .await
        .context("demo recurrence")?;
    for who in citizens.iter().take(2) {
        let request = BookRequest {
            event_ids: Vec::new(),
            account_id: *who,
            booked_by: *who,
            by_agent: false,
            skip_already_booked: true,
        };
        services
            .agendas
            .book_recurrence(&rule, request, None, None)
            .await
            .context("demo season booking")?;
    }
    Ok(())
}

/// The town hall's passport desks: a meetings agenda with two desks open on weekday mornings
/// and afternoons and on the 2nd and 4th Saturday mornings, two meeting types, a training
/// closure and a few appointments.
async fn load_town_hall(
    services: &Services,
    citizens: &[actors::ids::AccountId],
    today: Date,
) -> anyhow::Result<()> {
    let created = services
        .agendas
        .create_agenda(NewAgenda {
            slug: "passeports".into(),
            label: "Mairie — passeports et cartes d'identité".into(),
            kind: AgendaKind::Meetings,
            fill_notifications: FillNotifications::default(),
            auto_promote_waiting_list: false,
            services: vec!["etat-civil".into()],
            meetings: Some(MeetingsRules::default()),
            events: None,
            category: None,
            resources: vec![],
        })
        .await;
    let agenda = match created {
        Ok(a) => a,
        Err(AgendaError::SlugTaken(_)) => return Ok(()),
        Err(e) => return Err(e).context("demo meetings agenda"),
    };
    let hall = services.meetings.get(agenda.id).await.context("demo meetings actor")?;
    let mut desks = Vec::new();
    for label in ["Guichet 1", "Guichet 2"] {
        desks.push(hall.add_desk(label.into()).await.context("demo desk")?.id);
    }
    let weekdays =
        [Weekday::Monday, Weekday::Tuesday, Weekday::Wednesday, Weekday::Thursday, Weekday::Friday];
    for day in weekdays {
        for (start, end) in [((8, 30), (12, 0)), ((13, 30), (17, 0))] {
            hall.add_periods(NewPeriods {
                desk_ids: desks.clone(),
                rule: PeriodRule::Weekly(day),
                start: Time::new(start.0, start.1, 0, 0)?,
                end: Time::new(end.0, end.1, 0, 0)?,
            })
            .await
            .context("demo opening period")?;
        }
    }
    hall.add_periods(NewPeriods {
        desk_ids: vec![desks[0]],
        rule: PeriodRule::MonthlyNth { weekday: Weekday::Saturday, nths: vec![2, 4] },
        start: Time::new(9, 0, 0, 0)?,
        end: Time::new(12, 0, 0, 0)?,
    })
    .await
    .context("demo Saturday period")?;
    let deposit = hall
        .add_meeting_type(NewMeetingType {
            label: "Dépôt de dossier".into(),
            slug: None,
            duration_minutes: 30,
        })
        .await
        .context("demo meeting type")?;
    hall.add_meeting_type(NewMeetingType {
        label: "Retrait de titre".into(),
        slug: None,
        duration_minutes: 15,
    })
    .await
    .context("demo meeting type")?;
    let in_a_week = today.checked_add(7.days()).context("demo date")?;
    let paris = actors::time::paris();
    hall.add_exception(NewException {
        desk_ids: vec![desks[1]],
        starts_at: in_a_week.to_zoned(paris.clone())?.timestamp(),
        ends_at: in_a_week.tomorrow()?.to_zoned(paris)?.timestamp(),
        label: "Formation des agents".into(),
    })
    .await
    .context("demo exception")?;
    // The first free slots of the coming days go to demo citizens.
    let until = today.checked_add(14.days()).context("demo date")?;
    let slots = hall.slots(deposit.id, today, until, None, false).await.context("demo slots")?;
    for (slot, who) in slots.iter().step_by(5).zip(citizens) {
        hall.book(SlotRequest {
            meeting_type_id: deposit.id,
            starts_at: slot.starts_at,
            account_id: Some(*who),
            booked_by: Some(*who),
            lock_code: None,
            ignore_delays: false,
        })
        .await
        .context("demo appointment")?;
    }
    Ok(())
}

/// A street-report form ("signalement voirie") on a four-status workflow, and two reports filed
/// by demo citizens.
async fn load_street_reports(services: &Services) -> anyhow::Result<()> {
    use actors::demands::Submission;
    use actors::demands::form::FormDef;
    use actors::demands::model::{DemandError, SubmissionChannel};
    use actors::demands::workflow::WorkflowDef;
    use actors::ids::{FormId, WorkflowId};
    use serde_json::json;

    let workflow: WorkflowDef = serde_json::from_value(json!({
        "id": WorkflowId::new(), "slug": "signalement", "name": "Signalement", "functions": ["receiver"],
        "statuses": [
            { "id": "recu", "name": "Reçu", "items": [
                { "id": "accuse", "kind": { "type": "notify", "to": [{ "kind": "submitter" }],
                  "subject": "Signalement reçu : {{ form_digest }}",
                  "body": "Bonjour {{ form_user_display_name }},\n\nvotre signalement « {{ form_digest }} » est bien reçu." } },
                { "id": "prendre", "kind": { "type": "button", "label": "Prendre en charge",
                  "by": [{ "kind": "function", "name": "receiver" }], "target": "en-cours", "with_comment": true } },
                { "id": "corriger", "kind": { "type": "edit", "label": "Corriger le signalement",
                  "by": [{ "kind": "function", "name": "receiver" }], "fields": ["type", "adresse"] } } ] },
            { "id": "en-cours", "name": "En cours", "items": [
                { "id": "traiter", "kind": { "type": "button", "label": "Marquer traité",
                  "by": [{ "kind": "function", "name": "receiver" }], "target": "traite", "with_comment": true } },
                { "id": "rejeter", "kind": { "type": "button", "label": "Rejeter",
                  "by": [{ "kind": "function", "name": "receiver" }], "target": "rejete", "with_comment": true } },
                { "id": "precision", "kind": { "type": "comment", "label": "Apporter une précision",
                  "by": [{ "kind": "submitter" }] } },
                { "id": "photo-intervention", "kind": { "type": "attach", "label": "Joindre une photo de l'intervention",
                  "by": [{ "kind": "function", "name": "receiver" }], "types": ["image/*"] } } ] },
            { "id": "traite", "name": "Traité", "items": [
                { "id": "informer", "kind": { "type": "notify", "to": [{ "kind": "submitter" }],
                  "subject": "Signalement traité", "body": "Votre signalement « {{ form_digest }} » a été traité. Merci !" } } ] },
            { "id": "rejete", "name": "Rejeté" }
        ]
    }))
    .context("demo workflow")?;
    let workflow = match services.demands.save_workflow(workflow, None, None).await {
        Ok(w) => w,
        // Already loaded.
        Err(DemandError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(e).context("demo workflow"),
    };
    let form: FormDef = serde_json::from_value(json!({
        "id": FormId::new(), "slug": "signalement-voirie", "title": "Signaler un problème de voirie",
        "description": "Nid-de-poule, éclairage en panne, dépôt sauvage : dites-nous où.",
        "category": "voirie", "workflow_id": workflow.id,
        "function_roles": { "receiver": "voirie" }, "summary_roles": ["etat-civil"],
        "backoffice_submission_roles": ["voirie"], "allow_anonymous": true,
        "digest_template": "{{ form_var_type }} — {{ form_var_adresse }}",
        "fields": [
            { "id": "type", "label": "Type de problème", "required": "always", "in_listing": true,
              "kind": { "type": "item", "choices": { "source": "static", "items": [
                { "id": "chaussee", "text": "Chaussée abîmée" }, { "id": "eclairage", "text": "Éclairage en panne" },
                { "id": "depot", "text": "Dépôt sauvage" } ] } } },
            { "id": "adresse", "label": "Adresse", "required": "always", "in_listing": true, "kind": { "type": "string" } },
            { "id": "description", "label": "Description", "kind": { "type": "text" } },
            { "id": "photo", "label": "Photo", "kind": { "type": "file", "max_bytes": 10485760, "types": ["image/*"] } },
            { "id": "courriel", "label": "Courriel pour être tenu informé", "required": "front_office", "kind": { "type": "email" },
              "prefill": { "source": "user", "value": "email" } }
        ]
    }))
    .context("demo form")?;
    services.demands.save_form(form, None, None).await.context("demo form")?;
    let reports = [
        (
            "camille.martin@demo.guichet.localhost",
            "chaussee",
            "12 rue de la République",
            "Un nid-de-poule profond devant l'école.",
        ),
        (
            "louis.bernard@demo.guichet.localhost",
            "eclairage",
            "Place du Marché",
            "Le lampadaire près de la fontaine ne s'allume plus.",
        ),
    ];
    for (email, kind, address, text) in reports {
        let account =
            services.accounts.verify(email, DEMO_PASSWORD).await.context("demo citizen")?;
        let principal =
            actors::access::Principal::Account { id: account.id, roles: Roles::citizen() };
        let answers =
            json!({ "type": kind, "adresse": address, "description": text, "courriel": email });
        let submission = Submission {
            form_slug: "signalement-voirie".into(),
            answers: answers.as_object().cloned().unwrap_or_default(),
            channel: SubmissionChannel::Web,
            on_behalf_of: None,
            draft: None,
        };
        services.demands.submit(&principal, submission).await.context("demo report")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use actors::Services;
    use actors::session::SessionPolicy;
    use actors::store::Store;

    #[test]
    fn the_demo_town_loads_twice_without_duplicates() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_stack_size(10 << 20)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let store = Store::open("mem://").await.expect("store");
                let services = Services::start(store, SessionPolicy::default()).expect("actors");
                super::load(&services).await.expect("first load");
                super::load(&services).await.expect("second load");
                let forms = services.demands.forms().await.expect("forms");
                assert_eq!(forms.len(), 1);
                let camille = services
                    .accounts
                    .verify("camille.martin@demo.guichet.localhost", super::DEMO_PASSWORD)
                    .await
                    .expect("camille");
                let hers = services.demands.of_account(camille.id, 10).await.expect("demands");
                assert_eq!(hers.len(), 1, "loading twice files no second report");
                assert_eq!(hers[0].demand.digest, "Chaussée abîmée — 12 rue de la République");
                services.runtime.shutdown();
            });
    }
}
