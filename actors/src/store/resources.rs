//! Resources and their reservations. A reservation is written only after the transaction has
//! bumped its resource's `version`: two transactions reserving one resource write that record,
//! so one of them fails and retries, and the overlap check inside each sees every committed
//! reservation (count-then-insert alone overbooks under snapshot isolation; see pitfalls).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Store, StoreError, parse_id};
use crate::ids::ResourceId;
use crate::resources::{Reservation, Resource};
use crate::time::{from_micros, to_micros};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResourceRecord {
    id: String,
    slug: String,
    label: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReservationRecord {
    resource: String,
    owner: String,
    starts_us: i64,
    ends_us: i64,
    #[serde(default)]
    until_us: Option<i64>,
}

/// The statements that replace the reservations of `$reserve` rows (`owner`, `resources`,
/// `starts_us`, `ends_us`; no resources releases them), refusing an overlap with `THROW`.
pub(super) const RESERVE: &str = "FOR $x IN $reserve {
    DELETE resource_booking WHERE owner = $x.owner RETURN NONE;
    FOR $r IN $x.resources {
        LET $lock = (UPDATE type::record('resource', $r) SET version += 1 RETURN id);
        IF array::len($lock) == 0 { THROW 'unknown resource ' + $r };
        LET $busy = (SELECT VALUE owner FROM resource_booking
            WHERE resource = $r AND starts_us < $x.ends_us AND ends_us > $x.starts_us
                AND (until_us = NONE OR until_us = NULL OR until_us > $x.now_us) LIMIT 1);
        IF array::len($busy) > 0 { THROW 'resource busy ' + $r + ' by ' + $busy[0] };
        CREATE resource_booking CONTENT { resource: $r, owner: $x.owner, starts_us: $x.starts_us, ends_us: $x.ends_us, until_us: $x.until_us } RETURN NONE;
    };
};\n";

/// One row of `$reserve`; a reservation with `until` (a hold) stops counting then.
pub(super) fn reserve_row(
    owner: &str,
    resources: &[ResourceId],
    starts_at: Timestamp,
    ends_at: Timestamp,
    until: Option<Timestamp>,
) -> Value {
    serde_json::json!({
        "owner": owner,
        "resources": resources.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "starts_us": to_micros(starts_at),
        "ends_us": to_micros(ends_at),
        "until_us": until.map(to_micros),
        "now_us": to_micros(Timestamp::now()),
    })
}

impl Store {
    /// Creates a resource; `Duplicate` when the slug is taken.
    pub async fn create_resource(&self, r: &Resource, now: Timestamp) -> Result<(), StoreError> {
        self.write(
            "BEGIN TRANSACTION;
             CREATE type::record('resource_slug', $slug) SET resource = $id;
             CREATE type::record('resource', $id) CONTENT { slug: $slug, label: $label, version: 0, created_us: $now };
             COMMIT TRANSACTION;",
            vec![
                ("id", r.id.to_string().into()),
                ("slug", r.slug.clone().into()),
                ("label", r.label.clone().into()),
                ("now", to_micros(now).into()),
            ],
        )
        .await
        .map(drop)
    }

    /// Every resource, by label.
    pub async fn resources(&self) -> Result<Vec<Resource>, StoreError> {
        let recs: Vec<ResourceRecord> = self
            .rows("SELECT *, record::id(id) AS id FROM resource ORDER BY label", vec![])
            .await?;
        recs.into_iter()
            .map(|r| Ok(Resource { id: parse_id(&r.id)?, slug: r.slug, label: r.label }))
            .collect()
    }

    /// The reservations of a resource overlapping `from..to`.
    pub async fn reservations(
        &self,
        resource: ResourceId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reservation>, StoreError> {
        let recs: Vec<ReservationRecord> = self
            .rows(
                "SELECT resource, owner, starts_us, ends_us, until_us FROM resource_booking
                 WHERE resource = $r AND starts_us < $to AND ends_us > $from
                    AND (until_us = NONE OR until_us = NULL OR until_us > $now) ORDER BY starts_us",
                vec![
                    ("r", resource.to_string().into()),
                    ("from", to_micros(from).into()),
                    ("to", to_micros(to).into()),
                    ("now", to_micros(Timestamp::now()).into()),
                ],
            )
            .await?;
        recs.into_iter()
            .map(|r| {
                Ok(Reservation {
                    resource: parse_id(&r.resource)?,
                    owner: r.owner,
                    starts_at: from_micros(r.starts_us),
                    ends_at: from_micros(r.ends_us),
                })
            })
            .collect()
    }
}
