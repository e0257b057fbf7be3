//! The demo town of `guichet serve --demo`: a swimming pool, a library and a vaccination centre
//! with upcoming events, an agent, a few citizens and their bookings. Loading twice changes
//! nothing.

use actors::Services;
use actors::access::Roles;
use actors::account::{AccountError, NewAccount};
use actors::agenda::model::{
    AgendaError, AgendaKind, BookRequest, FillNotifications, NewAgenda, NewEvent,
};
use anyhow::Context as _;
use jiff::civil::{Date, Time};
use jiff::{Timestamp, ToSpan};

/// Demo accounts share this password; the README shows it.
pub const DEMO_PASSWORD: &str = "guichet-demo";

struct DemoAgenda {
    slug: &'static str,
    label: &'static str,
    services: &'static [&'static str],
    events: &'static [(&'static str, u32, i8, i64, i64)],
}

/// (label, days from today, hour, places, waiting-list places)
const AGENDAS: &[DemoAgenda] = &[
    DemoAgenda {
        slug: "piscine-municipale",
        label: "Piscine municipale",
        services: &["sport"],
        events: &[
            ("Aquagym", 3, 10, 20, 5),
            ("Bébés nageurs", 5, 9, 8, 4),
            ("Aquagym", 10, 10, 20, 5),
            ("Stage natation enfants", 14, 14, 12, 0),
        ],
    },
    DemoAgenda {
        slug: "mediatheque",
        label: "Médiathèque Jules Verne",
        services: &["culture"],
        events: &[("Heure du conte", 2, 16, 15, 5), ("Atelier numérique seniors", 7, 10, 6, 3)],
    },
    DemoAgenda {
        slug: "centre-vaccination",
        label: "Centre de vaccination",
        services: &["sante"],
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
        Roles { admin: false, agent_roles: vec!["sport".into(), "culture".into(), "sante".into()] },
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
                    may_see_unpublished: false,
                };
                services.agendas.book(request).await.context("demo booking")?;
            }
        }
    }
    tracing::info!("demo town loaded; demo accounts use the password {DEMO_PASSWORD:?}");
    Ok(())
}
